-- The allocations still held (what Fluxion must hold) are read on every reload of Fluxion and counted every
-- second by the scheduling loop, which checks that Fluxion holds as many: without an index both scanned the
-- whole history of allocations.
CREATE INDEX allocations_held ON fluxqueue.allocations (epoch) WHERE released_at IS NULL;

-- The id a Fluxion job has means something only in the load of Fluxion (Init + replay) that issued or
-- replayed it: an Init forgets every job and issues ids from 1 again.
COMMENT ON COLUMN fluxqueue.allocations.epoch IS
    'the load of Fluxion (Init + replay) fluxion_jobid belongs to; 0: Fluxion no longer holds it';
