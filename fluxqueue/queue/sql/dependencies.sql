-- name: insert_dependencies
-- The terms of a unit's fluxqueue.io/dependency ($2: a JSON array of {condition, target, delay_s, joined}).
INSERT INTO fluxqueue.dependencies (unit_id, term, condition, target, delay_s, joined)
SELECT $1, t.ord - 1, t.condition, t.target, t.delay_s, t.joined
FROM ROWS FROM (
    jsonb_to_recordset($2::jsonb) AS (condition text, target text, delay_s integer, joined text)
) WITH ORDINALITY AS t(condition, target, delay_s, joined, ord)
ON CONFLICT DO NOTHING;

-- name: held_units
-- Every held unit with its terms, in the queue's order (of several held singletons the first goes first).
SELECT u.*, (SELECT jsonb_agg(jsonb_build_object('condition', d.condition, 'target', d.target,
                                                 'delay_s', d.delay_s, 'joined', d.joined) ORDER BY d.term)
             FROM fluxqueue.dependencies d WHERE d.unit_id = u.id) AS terms
FROM fluxqueue.units u
WHERE u.state = 'Held'
ORDER BY u.priority DESC, u.submitted_at ASC, u.id ASC;

-- name: units_named
-- Every unit of the FluxJob names in $2 (namespaces in $1 side by side): a workload name's units, found by
-- the FluxJob names its kinds give it (index units_by_name).
SELECT u.id, u.namespace, u.object_name, u.state, u.scheduled_at, u.finished_at,
       EXISTS (SELECT 1 FROM fluxqueue.dependencies d WHERE d.unit_id = u.id AND d.condition = 'singleton')
           AS singleton
FROM unnest($1::text[], $2::text[]) AS k(namespace, name)
JOIN fluxqueue.units u ON u.namespace = k.namespace AND u.name = k.name;

-- name: singleton_peers
-- Live units with a singleton term of the names in $2 (namespaces in $1 side by side).
SELECT u.id, u.namespace, d.target, u.state
FROM unnest($1::text[], $2::text[]) AS k(namespace, target)
JOIN fluxqueue.dependencies d ON d.condition = 'singleton' AND d.target = k.target
JOIN fluxqueue.units u ON u.id = d.unit_id AND u.namespace = k.namespace
WHERE u.state IN ('Held', 'Queued', 'Reserved', 'Scheduled', 'Running');

-- name: release_held
-- Held -> Queued ($1, $2 side by side: unit id, reason); submitted_at is kept, so each takes its place in the
-- queue as of its submission. Returns the units moved.
UPDATE fluxqueue.units u SET state = 'Queued', reason = i.reason, queued_at = coalesce(u.queued_at, now())
FROM unnest($1::bigint[], $2::text[]) AS i(id, reason)
WHERE u.id = i.id AND u.state = 'Held'
RETURNING u.*;

-- name: set_held_reasons
-- What each held unit waits for, in words ($1, $2 side by side); returns the units whose reason changed.
UPDATE fluxqueue.units u SET reason = i.reason
FROM unnest($1::bigint[], $2::text[]) AS i(id, reason)
WHERE u.id = i.id AND u.state = 'Held' AND u.reason IS DISTINCT FROM i.reason
RETURNING u.*;

-- name: held_view
SELECT namespace, name, kind, size, pod_sets, dependency, waiting, reason FROM fluxqueue.held;

-- name: waits_view
SELECT namespace, waiting, state, condition, target, delay_s, joined, target_fluxjob, target_state
FROM fluxqueue.waits;

-- name: insert_held_unit
-- insert_unit for a unit with a dependency ($16, as written): it starts in state $13, Held.
INSERT INTO fluxqueue.units (namespace, name, kind, object_name, owner_uid, size, pod_sets, exclusive,
                             duration_s, priority, group_name, queue, state, reason, placement, dependency)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
ON CONFLICT DO NOTHING
RETURNING *;
