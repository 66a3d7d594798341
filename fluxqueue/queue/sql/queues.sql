-- name: queue_usage
-- What the units holding an allocation ask, per (namespace, queue label): the controller resolves the queue.
SELECT u.namespace, u.queue, count(*) AS units, sum(d.cpu_millis)::bigint AS cpu_millis,
       sum(d.memory_bytes)::bigint AS memory_bytes, sum(d.gpus)::bigint AS gpus
FROM fluxqueue.allocations a
JOIN fluxqueue.units u ON u.id = a.unit_id
CROSS JOIN LATERAL fluxqueue.unit_demand(u.pod_sets) AS d
WHERE a.released_at IS NULL
GROUP BY u.namespace, u.queue;

-- name: queue_pending
-- What the waiting units ask, per (namespace, queue label).
SELECT u.namespace, u.queue, count(*) AS units, sum(d.cpu_millis)::bigint AS cpu_millis,
       sum(d.memory_bytes)::bigint AS memory_bytes, sum(d.gpus)::bigint AS gpus
FROM fluxqueue.units u
CROSS JOIN LATERAL fluxqueue.unit_demand(u.pod_sets) AS d
WHERE u.state IN ('Queued', 'Reserved')
GROUP BY u.namespace, u.queue;

-- name: mirror_queues
-- The Queue objects as they are now ($1: JSON array of {name, namespaces, quota, limit, weight, share, decayed,
-- decayed_age}); queues no longer declared are removed. decayed is the usage decayed over the half-life,
-- computed decayed_age wall seconds ago; without it what is stored stays.
WITH given AS (
    SELECT * FROM jsonb_to_recordset($1::jsonb)
        AS i(name text, namespaces text[], quota jsonb, "limit" jsonb, weight double precision,
             share double precision, decayed jsonb, decayed_age double precision)
), gone AS (
    DELETE FROM fluxqueue.queues q WHERE NOT EXISTS (SELECT 1 FROM given g WHERE g.name = q.name)
)
INSERT INTO fluxqueue.queues AS q
    (name, namespaces, quota, "limit", weight, share, updated_at, decayed_usage, decayed_at)
SELECT name, namespaces, quota, "limit", weight, share, now(), decayed,
       CASE WHEN decayed IS NOT NULL THEN now() - make_interval(secs => coalesce(decayed_age, 0)) END
FROM given
ON CONFLICT (name) DO UPDATE
SET namespaces = excluded.namespaces, quota = excluded.quota, "limit" = excluded."limit",
    weight = excluded.weight, share = excluded.share, updated_at = now(),
    decayed_usage = coalesce(excluded.decayed_usage, q.decayed_usage),
    decayed_at = CASE WHEN excluded.decayed_usage IS NOT NULL THEN excluded.decayed_at ELSE q.decayed_at END;

-- name: decayed_usage
-- What the last leader's fair share remembered per queue, and how many wall seconds ago it computed it (by
-- PostgreSQL's clock, which also stamped it: the replicas' clocks need not agree).
SELECT name, decayed_usage,
       greatest(0, extract(epoch FROM now() - decayed_at))::double precision AS age_seconds
FROM fluxqueue.queues
WHERE decayed_usage IS NOT NULL AND decayed_at IS NOT NULL;

-- name: queue_usage_view
SELECT * FROM fluxqueue.queue_usage;

-- name: fair_share_view
SELECT * FROM fluxqueue.fair_share;

-- name: holders
-- Every unit holding an allocation, with its Fluxion job and per-node shares: the candidates for preemption.
SELECT u.id, u.namespace, u.name, u.kind, u.queue, u.priority, u.state, u.pod_sets, u.owner_uid,
       a.fluxion_jobid, a.epoch, a.allocated_at,
       (SELECT jsonb_agg(jsonb_build_array(n.node, n.cores, n.memory_bytes, n.gpus))
          FROM fluxqueue.allocation_nodes n WHERE n.unit_id = u.id) AS shares,
       -- a victim of this placement already (a requeued unit placed again may be chosen again)
       EXISTS (SELECT 1 FROM fluxqueue.preemptions p
               WHERE p.victim_id = u.id AND p.decided_at >= a.allocated_at) AS preempted
FROM fluxqueue.allocations a JOIN fluxqueue.units u ON u.id = a.unit_id
WHERE a.released_at IS NULL;

-- name: preempting
-- Preemptors whose victims still hold an allocation (their room is not free yet).
-- (A victim requeued and placed again holds a later allocation, not the one it was evicted from.)
SELECT DISTINCT p.preemptor_id FROM fluxqueue.preemptions p
JOIN fluxqueue.allocations a ON a.unit_id = p.victim_id AND a.released_at IS NULL
                               AND a.allocated_at <= p.decided_at;

-- name: record_preemptions
-- One row per victim ($2), all in this one statement.
INSERT INTO fluxqueue.preemptions (preemptor_id, victim_id, cause, reason)
SELECT $1, v, $3, $4 FROM unnest($2::bigint[]) AS v
RETURNING id, victim_id;

-- name: unevicted_preemptions
SELECT id, victim_id, reason, decided_at FROM fluxqueue.preemptions WHERE evicted_at IS NULL ORDER BY id;

-- name: mark_evicted
UPDATE fluxqueue.preemptions SET evicted_at = now() WHERE id = ANY($1::bigint[]) AND evicted_at IS NULL;

-- name: preemption_history_view
SELECT * FROM fluxqueue.preemption_history;

-- name: pending_queues
-- The queue each pending unit belongs to, while Queue objects exist (nothing otherwise).
SELECT u.namespace, u.name, fluxqueue.queue_of(u.namespace, u.queue) AS queue
FROM fluxqueue.units u
WHERE u.state IN ('Queued', 'Reserved') AND EXISTS (SELECT 1 FROM fluxqueue.queues);
