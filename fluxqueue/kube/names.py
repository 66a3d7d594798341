"""Names users and other components see. Keep them stable: they are fluxqueue's public contract."""

# The scheduler name set on every pod we manage; no other scheduler serves it, so only we bind these pods.
SCHEDULER_NAME = "fluxqueue"
# The scheduling gate held on bare pods until fluxqueue has placed them.
SCHEDULING_GATE = "fluxqueue.io/queued"

PREFIX = "fluxqueue.io/"

# Labels (or annotations) a user may set on a Job, Pod or pod template.
LABEL_GROUP_NAME = PREFIX + "group-name"  # pods sharing it are one gang
LABEL_GROUP_SIZE = PREFIX + "group-size"  # how many members the gang waits for
LABEL_DURATION = PREFIX + "duration"  # walltime in seconds (drives backfill)
LABEL_EXCLUSIVE = PREFIX + "exclusive"  # "true": whole nodes
LABEL_SKIP = PREFIX + "skip"  # "true": fluxqueue leaves the object alone
LABEL_QUEUE = PREFIX + "queue"  # named queue (informational ordering key)
# Annotation: what the workload waits for, in sbatch(1) --dependency syntax ("afterok:prep,afterany:a?b" ...).
ANNOTATION_DEPENDENCY = PREFIX + "dependency"

# Set by the webhook on what it mutated (objects and pod templates), so we recognise our own.
LABEL_MANAGED = PREFIX + "managed"
# Annotations written by the controller once a unit is placed (annotations: node lists exceed 63 chars).
ANNOTATION_NODES = PREFIX + "nodes"
ANNOTATION_FLUXION_JOBID = PREFIX + "fluxion-jobid"
ANNOTATION_FLUXJOB = PREFIX + "fluxjob"
# Set by the webhook on a Job the user created suspended: it stays the user's (not queued) until they
# unsuspend it; the webhook then re-suspends it and removes this annotation, which queues it.
ANNOTATION_USER_SUSPENDED = PREFIX + "user-suspended"

# The FluxJob custom resource.
CRD_GROUP = "fluxqueue.io"
CRD_VERSION = "v1alpha1"
CRD_KIND = "FluxJob"
CRD_PLURAL = "fluxjobs"
CRD_SHORT_NAME = "fj"
CRD_NAME = f"{CRD_PLURAL}.{CRD_GROUP}"

# Simulation-only annotations understood by the emulator's kubelets.
SIM_PREFIX = "sim.fluxqueue.io/"
SIM_RUNTIME = SIM_PREFIX + "runtime"  # e.g. "30s", "2m", "1h"; how long the container "runs"
SIM_FAIL = SIM_PREFIX + "fail"  # "true": the container exits non-zero at the end of its runtime
SIM_SUBMIT_AT = SIM_PREFIX + "submit-at"  # `fluxqueue sim run`: when (sim time) to submit a manifest

# Well-known Kubernetes labels we read.
LABEL_HOSTNAME = "kubernetes.io/hostname"
LABEL_ZONE = "topology.kubernetes.io/zone"
LABEL_RACK = "fluxqueue.io/rack"  # the emulator labels nodes with a rack; real sites may set it too
LABEL_CONTROL_PLANE = "node-role.kubernetes.io/control-plane"
LABEL_JOB_COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
ANNOTATION_JOB_COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
ANNOTATION_MIRROR_POD = "kubernetes.io/config.mirror"  # static pods' API mirrors (kubelet)

# Group labels of the ecosystem, read as ours (users migrating keep their labels).
LABEL_KUEUE_POD_GROUP = "kueue.x-k8s.io/pod-group-name"  # Kueue's plain-pod integration
ANNOTATION_KUEUE_GROUP_COUNT = "kueue.x-k8s.io/pod-group-total-count"
LABEL_COSCHEDULING_POD_GROUP = "scheduling.x-k8s.io/pod-group"  # scheduler-plugins coscheduling
# The workload a pod belongs to when its owner chain is longer than one step (a JobSet's child Job's pods, an
# MPIJob's launcher Job's pod), "<kind>/<name>/<uid>": set by the webhook on the child Job's pod template
# (the Job's ownerReference names the workload; the pod's names only the Job).
ANNOTATION_WORKLOAD = PREFIX + "workload"
