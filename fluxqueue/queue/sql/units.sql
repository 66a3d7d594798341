-- name: insert_unit
-- Idempotent: a second submission of the same wrapped object (or live group) returns nothing.
INSERT INTO fluxqueue.units (namespace, name, kind, object_name, owner_uid, size, pod_sets, exclusive,
                             duration_s, priority, group_name, queue, state, queued_at, reason, placement)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, CASE WHEN $13 = 'Queued' THEN now() END, $14,
        $15)
ON CONFLICT DO NOTHING
RETURNING *;

-- name: insert_units
-- insert_unit for a batch ($1: a JSON array of submissions, ids given in its order); returns the rows created
-- (a submission whose unit exists already is left out and looked up on its own).
INSERT INTO fluxqueue.units (namespace, name, kind, object_name, owner_uid, size, pod_sets, exclusive,
                             duration_s, priority, group_name, queue, state, queued_at, reason, placement)
SELECT i.namespace, i.name, i.kind, i.object_name, i.owner_uid, i.size, i.pod_sets, i.exclusive,
       i.duration_s, i.priority, i.group_name, i.queue, i.state, CASE WHEN i.state = 'Queued' THEN now() END,
       i.reason, i.placement
FROM ROWS FROM (
    jsonb_to_recordset($1::jsonb) AS (namespace text, name text, kind text, object_name text, owner_uid text,
                                      size integer, pod_sets jsonb, exclusive boolean, duration_s integer,
                                      priority integer, group_name text, queue text, state text, reason text,
                                      placement jsonb)
) WITH ORDINALITY AS i
ORDER BY i.ordinality
ON CONFLICT DO NOTHING
RETURNING *;

-- name: unit_by_owner
SELECT * FROM fluxqueue.units WHERE owner_uid = $1 AND kind <> 'PodGroup';

-- name: live_group
SELECT * FROM fluxqueue.units
WHERE kind = 'PodGroup' AND namespace = $1 AND group_name = $2
  AND state IN ('Waiting', 'Held', 'Queued', 'Reserved', 'Scheduled', 'Running');

-- name: unit_by_id
SELECT * FROM fluxqueue.units WHERE id = $1;

-- name: unit_by_name
SELECT * FROM fluxqueue.units WHERE namespace = $1 AND name = $2 ORDER BY id DESC LIMIT 1;

-- name: units_by_names
-- The newest unit of each (namespace $1[i], name $2[i]) (index units_by_name).
SELECT DISTINCT ON (u.namespace, u.name) u.*
FROM unnest($1::text[], $2::text[]) AS k(namespace, name)
JOIN fluxqueue.units u ON u.namespace = k.namespace AND u.name = k.name
ORDER BY u.namespace, u.name, u.id DESC;

-- name: pending_units
-- The scheduling order (index units_schedule_order).
SELECT * FROM fluxqueue.units
WHERE state IN ('Queued', 'Reserved')
ORDER BY priority DESC, submitted_at ASC, id ASC;

-- name: pending_units_head
-- The first $1 units in scheduling order (a pass that matches at most queue-depth units reads no more).
SELECT * FROM fluxqueue.units
WHERE state IN ('Queued', 'Reserved')
ORDER BY priority DESC, submitted_at ASC, id ASC
LIMIT $1;

-- name: active_units
SELECT * FROM fluxqueue.units
WHERE state IN ('Waiting', 'Held', 'Queued', 'Reserved', 'Scheduled', 'Running', 'Preempted')
ORDER BY id;

-- name: exclusive_units
SELECT id FROM fluxqueue.units WHERE id = ANY($1::bigint[]) AND exclusive;

-- name: set_state
-- Conditional on the expected current states, so two actors cannot both make the same transition.
UPDATE fluxqueue.units
SET state = $2, reason = $3, attempts = attempts + $5,
    queued_at = CASE WHEN $2 = 'Queued' AND queued_at IS NULL THEN now() ELSE queued_at END,
    finished_at = CASE WHEN $2 IN ('Succeeded', 'Failed', 'Unsatisfiable', 'Cancelled') THEN now()
                       ELSE finished_at END
WHERE id = $1 AND state = ANY($4::text[])
RETURNING *;

-- name: set_waiting_reasons
-- The reasons a pass gives the units it leaves waiting, in one statement ($1..$3 side by side: unit id,
-- reason, attempts to add); a unit placed or ended meanwhile keeps the reason it has.
UPDATE fluxqueue.units u SET reason = i.reason, attempts = u.attempts + i.attempt
FROM unnest($1::bigint[], $2::text[], $3::integer[]) AS i(id, reason, attempt)
WHERE u.id = i.id AND u.state IN ('Queued', 'Reserved') AND u.reason IS DISTINCT FROM i.reason;

-- name: schedule_units
-- Pending -> Scheduled with allocation and per-node shares, for a batch of units in one statement ($1: a JSON
-- array of {unit_id, reason, jobid, epoch, nodes: [{node, cores, memory_bytes, gpus, slots}]}). Returns the
-- units moved; one no longer pending (deleted, or placed elsewhere meanwhile) is left out.
WITH input AS (
    SELECT * FROM jsonb_to_recordset($1::jsonb)
        AS i(unit_id bigint, reason text, jobid bigint, epoch bigint, nodes jsonb)
), unit AS (
    UPDATE fluxqueue.units u
    SET state = 'Scheduled', reason = i.reason, scheduled_at = now(),
        attempts = u.attempts + 1
    FROM input i
    WHERE u.id = i.unit_id AND u.state IN ('Queued', 'Reserved')
    RETURNING u.*
), allocation AS (
    INSERT INTO fluxqueue.allocations (unit_id, fluxion_jobid, epoch)
    SELECT i.unit_id, i.jobid, i.epoch FROM input i JOIN unit ON unit.id = i.unit_id
    RETURNING unit_id
), shares AS (
    INSERT INTO fluxqueue.allocation_nodes (unit_id, node, cores, memory_bytes, gpus, slots)
    SELECT i.unit_id, s.node, s.cores, s.memory_bytes, s.gpus, s.slots
    FROM input i JOIN allocation a ON a.unit_id = i.unit_id,
         jsonb_to_recordset(i.nodes) AS s(node text, cores integer, memory_bytes bigint, gpus integer,
                                          slots integer)
)
SELECT * FROM unit;

-- name: record_bindings
-- Pods bound ($1..$4 side by side: unit id, pod, pod uid, node), and the units in $5 marked started.
WITH bound AS (
    INSERT INTO fluxqueue.pod_bindings (unit_id, pod, pod_uid, node)
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[])
    ON CONFLICT DO NOTHING
)
UPDATE fluxqueue.units SET started = true WHERE id = ANY($5::bigint[]) AND NOT started;

-- name: set_running_units
-- Scheduled -> Running for a batch of units; returns those moved.
UPDATE fluxqueue.units SET state = 'Running', reason = $2
WHERE id = ANY($1::bigint[]) AND state = 'Scheduled'
RETURNING *;

-- name: join_group
-- One member joins its pod group (migrations/0003_join_group.sql): the unit after the join and its member count.
SELECT (j.unit).*, j.members FROM fluxqueue.join_group($1::jsonb, $2, $3) AS j;

-- name: join_groups
-- join_group for members arriving together, in the order given ($1..$3 side by side: submission, pod, uid).
SELECT (j.unit).*, j.members
FROM unnest($1::jsonb[], $2::text[], $3::text[]) WITH ORDINALITY AS i(sub, pod, pod_uid, ord)
CROSS JOIN LATERAL fluxqueue.join_group(i.sub, i.pod, i.pod_uid) AS j
ORDER BY i.ord;

-- name: group_members
SELECT pod, pod_uid, joined_at FROM fluxqueue.group_members WHERE unit_id = $1 ORDER BY joined_at, pod;

-- name: history
SELECT id, unit_id, at, from_state, to_state, reason FROM fluxqueue.state_changes
WHERE unit_id = $1 ORDER BY id;

-- name: queue_view
SELECT position, namespace, name, kind, size, pod_sets, priority, duration_s, state, waiting, reason
FROM fluxqueue.queue;

-- name: running_view
SELECT namespace, name, kind, size, pod_sets, state, fluxion_jobid, nodes, scheduled_at, running_for
FROM fluxqueue.running;

-- name: nodes_view
SELECT node, units, pods, cores, memory, gpus FROM fluxqueue.nodes;

-- name: queue_position
SELECT position FROM fluxqueue.queue WHERE id = $1;

-- name: state_counts
SELECT state, count(*) AS n FROM fluxqueue.units
WHERE state IN ('Waiting', 'Held', 'Queued', 'Reserved', 'Scheduled', 'Running', 'Preempted')
GROUP BY state;

-- name: requeue_unsatisfiable
-- The cluster grew or changed: units judged never satisfiable get another look. A pod group is queued again
-- only when no live group of its name exists (units_live_group: one live group per name), and of several
-- unsatisfiable groups of one name only the newest.
UPDATE fluxqueue.units u
SET state = 'Queued', reason = $1, finished_at = NULL
WHERE u.state = 'Unsatisfiable'
  AND (u.kind <> 'PodGroup' OR (
        NOT EXISTS (SELECT 1 FROM fluxqueue.units g
                    WHERE g.kind = 'PodGroup' AND g.namespace = u.namespace AND g.group_name = u.group_name
                      AND g.state IN ('Waiting', 'Held', 'Queued', 'Reserved', 'Scheduled', 'Running'))
        AND u.id = (SELECT max(d.id) FROM fluxqueue.units d
                    WHERE d.kind = 'PodGroup' AND d.state = 'Unsatisfiable' AND d.namespace = u.namespace
                      AND d.group_name = u.group_name)))
RETURNING *;

-- name: preempt_unit
-- Scheduled/Running -> Preempted: its workload is being suspended; the allocation stays held until no pod of
-- it is left on a node (then requeue_unit).
UPDATE fluxqueue.units SET state = 'Preempted', reason = $2, started = false
WHERE id = $1 AND state IN ('Scheduled', 'Running')
RETURNING *;

-- name: requeue_unit
-- Preempted -> Queued, keeping submitted_at (its place in the queue's order); run in one transaction with
-- archive_allocation and drop_allocation.
UPDATE fluxqueue.units SET state = 'Queued', reason = $2, scheduled_at = NULL, requeues = requeues + 1
WHERE id = $1 AND state = 'Preempted'
RETURNING *;
