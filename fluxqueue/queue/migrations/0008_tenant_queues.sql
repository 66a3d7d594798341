-- Tenant queues (queues.fluxqueue.io). The Queue objects are the source of truth; the controller mirrors each
-- one here (spec and last computed status) so that psql can show usage against quota and the fair-share
-- order. units.queue keeps the fluxqueue.io/queue label as written ('default' when absent); the queue a unit
-- belongs to is resolved with the namespaces each Queue lists (fluxqueue.queue_of, as the controller does).

CREATE TABLE fluxqueue.queues (
    name        text PRIMARY KEY,
    namespaces  text[] NOT NULL DEFAULT '{}',
    quota       jsonb NOT NULL DEFAULT '{}',    -- resource -> amount (cpu in millicores, memory in bytes)
    "limit"     jsonb NOT NULL DEFAULT '{}',
    weight      double precision NOT NULL DEFAULT 1,
    share       double precision NOT NULL DEFAULT 0,  -- fair-share value at the last status update
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE fluxqueue.queues IS 'mirror of the Queue objects (written by the controller; read by the views)';

-- What a unit asks in all: each pod set's per-pod requests times its count.
CREATE FUNCTION fluxqueue.unit_demand(sets jsonb, OUT cpu_millis bigint, OUT memory_bytes bigint, OUT gpus bigint)
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(sum((s->>'count')::bigint * coalesce((s->>'cpu_millis')::bigint, 0)), 0),
           coalesce(sum((s->>'count')::bigint * coalesce((s->>'memory_bytes')::bigint, 0)), 0),
           coalesce(sum((s->>'count')::bigint * coalesce((s->>'gpus')::bigint, 0)), 0)
    FROM jsonb_array_elements(sets) AS s
$$;

-- The queue a unit belongs to: its label's, else the first Queue (by name) listing its namespace, else default.
CREATE FUNCTION fluxqueue.queue_of(unit_namespace text, label text) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN label <> 'default' THEN label
                ELSE coalesce((SELECT q.name FROM fluxqueue.queues q WHERE unit_namespace = ANY (q.namespaces)
                               ORDER BY q.name LIMIT 1), 'default') END
$$;

CREATE VIEW fluxqueue.queue_usage AS
WITH per_unit AS (
    SELECT fluxqueue.queue_of(u.namespace, u.queue) AS queue,
           a.unit_id IS NOT NULL AS holding, u.state IN ('Queued', 'Reserved') AS pending, d.*
    FROM fluxqueue.units u
    LEFT JOIN fluxqueue.allocations a ON a.unit_id = u.id AND a.released_at IS NULL
    CROSS JOIN LATERAL fluxqueue.unit_demand(u.pod_sets) AS d
    WHERE u.state IN ('Queued', 'Reserved', 'Scheduled', 'Running') OR a.unit_id IS NOT NULL
)
SELECT coalesce(q.name, p.queue) AS queue,
       count(*) FILTER (WHERE p.holding) AS running,
       count(*) FILTER (WHERE p.pending) AS pending,
       round(coalesce(sum(p.cpu_millis) FILTER (WHERE p.holding), 0) / 1000.0, 3) AS cpus_used,
       round((q.quota->>'cpu')::numeric / 1000, 3) AS cpus_quota,
       round((q."limit"->>'cpu')::numeric / 1000, 3) AS cpus_limit,
       pg_size_pretty(coalesce(sum(p.memory_bytes) FILTER (WHERE p.holding), 0)) AS memory_used,
       pg_size_pretty((q.quota->>'memory')::bigint) AS memory_quota,
       coalesce(sum(p.gpus) FILTER (WHERE p.holding), 0) AS gpus_used,
       (q.quota->>'nvidia.com/gpu')::bigint AS gpus_quota,
       round(coalesce(sum(p.cpu_millis) FILTER (WHERE p.pending), 0) / 1000.0, 3) AS cpus_pending,
       q.weight, round(q.share::numeric, 4) AS share
FROM fluxqueue.queues q
FULL JOIN per_unit p ON p.queue = q.name
GROUP BY coalesce(q.name, p.queue), q.quota, q."limit", q.weight, q.share
ORDER BY 1;
COMMENT ON VIEW fluxqueue.queue_usage IS 'each queue: units running and pending, usage against quota and limit';

CREATE VIEW fluxqueue.fair_share AS
SELECT name AS queue, round(share::numeric, 4) AS share, weight, updated_at
FROM fluxqueue.queues ORDER BY share, name;
COMMENT ON VIEW fluxqueue.fair_share IS 'who borrows next: the lowest fair-share value first';
