"""Job dependencies: the ``fluxqueue.io/dependency`` annotation (Slurm's ``sbatch --dependency`` syntax), what
it means (:mod:`.spec`) and how it is decided against the states of the units it names (:mod:`.resolve`)."""
