-- State that only repeated other state goes, and one name says one thing:
-- * units.fluxion_jobid mirrored allocations.fluxion_jobid (the allocation is the record of what Fluxion holds);
-- * allocations.r (the R text) was written and never read: a replay is made from the per-node shares;
-- * reservations lived one pass and were read by nothing (a reserved unit's start is in its state and reason);
-- * units.released meant "started in Kubernetes" (unsuspended, pods bound), while "release" elsewhere means
--   giving an allocation back (allocations.released_at): it is now units.started.

DROP VIEW fluxqueue.running;
ALTER TABLE fluxqueue.units DROP COLUMN fluxion_jobid;
ALTER TABLE fluxqueue.units RENAME COLUMN released TO started;
COMMENT ON COLUMN fluxqueue.units.started IS
    'the Kubernetes side of the placement is done: workload unsuspended, its pods bound';
ALTER TABLE fluxqueue.allocations DROP COLUMN r;
DROP TABLE fluxqueue.reservations;

CREATE VIEW fluxqueue.running AS
SELECT u.namespace, u.name, u.kind, u.size, fluxqueue.describe_pod_sets(u.pod_sets) AS pod_sets, u.state,
       a.fluxion_jobid,
       (SELECT string_agg(n.node, ',' ORDER BY n.node) FROM fluxqueue.allocation_nodes n
         WHERE n.unit_id = u.id) AS nodes,
       u.scheduled_at, now() - u.scheduled_at AS running_for, u.duration_s, u.id
FROM fluxqueue.units u JOIN fluxqueue.allocations a ON a.unit_id = u.id
WHERE u.state IN ('Scheduled', 'Running') AND a.released_at IS NULL
ORDER BY u.scheduled_at, u.id;
COMMENT ON VIEW fluxqueue.running IS 'units holding an allocation';
