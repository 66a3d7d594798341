-- name: allocation
SELECT * FROM fluxqueue.allocations WHERE unit_id = $1;

-- name: allocation_nodes
SELECT node, cores, memory_bytes, gpus, slots FROM fluxqueue.allocation_nodes WHERE unit_id = $1 ORDER BY node;

-- name: held_allocations
-- Allocations Fluxion must hold: replayed after a Fluxion or controller restart.
SELECT a.*, u.duration_s, u.scheduled_at, u.owner_uid FROM fluxqueue.allocations a
JOIN fluxqueue.units u ON u.id = a.unit_id
WHERE a.released_at IS NULL ORDER BY a.unit_id;

-- name: held_allocation_nodes
-- The node shares of every held allocation at once (not one query per allocation).
SELECT n.unit_id, n.node, n.cores, n.memory_bytes, n.gpus, n.slots
FROM fluxqueue.allocation_nodes n JOIN fluxqueue.allocations a ON a.unit_id = n.unit_id
WHERE a.released_at IS NULL ORDER BY n.unit_id, n.node;

-- name: release_allocation
UPDATE fluxqueue.allocations SET released_at = now() WHERE unit_id = $1 AND released_at IS NULL
RETURNING fluxion_jobid, epoch;

-- name: set_allocation_epoch
-- Returns the units moved (an allocation released meanwhile is left as it was).
UPDATE fluxqueue.allocations SET epoch = $2 WHERE unit_id = ANY($1::bigint[]) AND released_at IS NULL
RETURNING unit_id;

-- name: update_allocation_id
-- After a replay under a new id (a server that cannot reuse ids).
UPDATE fluxqueue.allocations SET fluxion_jobid = $2, epoch = $3 WHERE unit_id = $1;

-- name: requeue_unreserved
-- Units reserved in an earlier pass that this pass did not reserve again go back to plain Queued.
UPDATE fluxqueue.units SET state = 'Queued', reason = ''
WHERE state = 'Reserved' AND NOT (id = ANY($1::bigint[])) RETURNING id;

-- name: try_pass_lock
SELECT pg_try_advisory_lock($1);

-- name: pass_unlock
SELECT pg_advisory_unlock($1);

-- name: draining_units
SELECT u.* FROM fluxqueue.units u JOIN fluxqueue.allocations a ON a.unit_id = u.id
WHERE a.released_at IS NULL
  AND u.state IN ('Succeeded', 'Failed', 'Unsatisfiable', 'Cancelled', 'Preempted')
ORDER BY u.id;

-- name: count_held_in_load
-- Allocations held under Fluxion load $1 (index allocations_held).
SELECT count(*) FROM fluxqueue.allocations WHERE released_at IS NULL AND epoch = $1;

-- name: archive_allocation
-- The allocation of a requeued unit, its node shares and its pods' bindings, kept in past_allocations ($2:
-- why it was given up); returns what Fluxion must cancel when it was still held.
WITH given_up AS (
    INSERT INTO fluxqueue.past_allocations (unit_id, fluxion_jobid, epoch, allocated_at, released_at, nodes,
                                            bindings, reason)
    SELECT a.unit_id, a.fluxion_jobid, a.epoch, a.allocated_at, coalesce(a.released_at, now()),
           coalesce((SELECT jsonb_agg(jsonb_build_object('node', n.node, 'cores', n.cores,
                                                         'memory_bytes', n.memory_bytes, 'gpus', n.gpus,
                                                         'slots', n.slots) ORDER BY n.node)
                     FROM fluxqueue.allocation_nodes n WHERE n.unit_id = a.unit_id), '[]'),
           coalesce((SELECT jsonb_agg(jsonb_build_object('pod', b.pod, 'pod_uid', b.pod_uid, 'node', b.node)
                                      ORDER BY b.pod)
                     FROM fluxqueue.pod_bindings b WHERE b.unit_id = a.unit_id), '[]'),
           $2
    FROM fluxqueue.allocations a WHERE a.unit_id = $1
    RETURNING fluxion_jobid, epoch
)
SELECT g.fluxion_jobid, g.epoch FROM given_up g
JOIN fluxqueue.allocations a ON a.unit_id = $1 AND a.released_at IS NULL;

-- name: drop_allocation
-- After archive_allocation: the unit holds nothing and has bound no pod (its next run starts afresh).
WITH bindings AS (DELETE FROM fluxqueue.pod_bindings WHERE unit_id = $1)
DELETE FROM fluxqueue.allocations WHERE unit_id = $1;

-- name: runs_view
-- Units placed more than once (preempted and requeued), each run on a line.
SELECT namespace, name, kind, run, nodes, allocated_at, released_at, reason FROM fluxqueue.runs
WHERE unit_id IN (SELECT unit_id FROM fluxqueue.past_allocations)
ORDER BY unit_id, run;
