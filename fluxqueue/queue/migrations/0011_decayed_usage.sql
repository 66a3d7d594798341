-- The fair share's memory of past usage (usage decayed over --queue-half-life) was kept only in the leader's
-- memory: a restart or a failover forgot it, and a queue that had just used a lot ranked as if it had not (a
-- team could win by timing). The leader now writes it with the queue mirror (same statement, same cadence as
-- the Queue status) and the next leader reads it back before its first pass, decaying it over the time that
-- passed in between (wall-clock, PostgreSQL's now(), so the replicas' clocks need not agree).

ALTER TABLE fluxqueue.queues ADD COLUMN decayed_usage jsonb;
ALTER TABLE fluxqueue.queues ADD COLUMN decayed_at timestamptz;
COMMENT ON COLUMN fluxqueue.queues.decayed_usage IS
    'usage decayed over the half-life: resource -> mean amount (cpu in millicores, memory in bytes, as quota); '
    'NULL until a leader computed it';
COMMENT ON COLUMN fluxqueue.queues.decayed_at IS
    'wall-clock time decayed_usage was computed at (a new leader decays it from there)';
COMMENT ON COLUMN fluxqueue.queues.share IS 'fair-share value at the last status update';

-- Adds the decayed usage, readable (CPUs, memory), after the existing columns.
CREATE OR REPLACE VIEW fluxqueue.fair_share AS
SELECT name AS queue, round(share::numeric, 4) AS share, weight, updated_at,
       round((decayed_usage->>'cpu')::numeric / 1000, 3) AS cpus_decayed,
       pg_size_pretty(round((decayed_usage->>'memory')::numeric)) AS memory_decayed,
       round((decayed_usage->>'nvidia.com/gpu')::numeric, 3) AS gpus_decayed,
       decayed_at
FROM fluxqueue.queues ORDER BY share, name;
COMMENT ON VIEW fluxqueue.fair_share IS
    'who borrows next: the lowest fair-share value first; the usage decayed over the half-life it counts';
