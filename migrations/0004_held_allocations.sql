-- The allocations still held (what Fluxion must hold) are read on every reload of Fluxion and counted every
-- second by the scheduling loop, which checks that Fluxion holds as many: without an index both scanned the
-- whole history of allocations.
CREATE INDEX allocations_held ON fluxqueue.allocations (epoch) WHERE released_at IS NULL;
