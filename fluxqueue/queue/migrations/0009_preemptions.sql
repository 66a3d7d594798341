-- Preemption decisions (tenant queues, issue 16): written before any eviction, so a controller or database
-- connection lost half way finishes the same evictions (rows with evicted_at IS NULL) and never makes new
-- ones for the same preemptor while its victims still hold their allocations.

CREATE TABLE fluxqueue.preemptions (
    id            bigserial PRIMARY KEY,
    decided_at    timestamptz NOT NULL DEFAULT now(),
    preemptor_id  bigint NOT NULL REFERENCES fluxqueue.units (id) ON DELETE CASCADE,
    victim_id     bigint NOT NULL REFERENCES fluxqueue.units (id) ON DELETE CASCADE,
    cause         text NOT NULL CHECK (cause IN ('reclaim', 'priority')),
    reason        text NOT NULL,            -- what the victim is told
    evicted_at    timestamptz               -- NULL until the victim was ended and its pods deleted
);
CREATE INDEX preemptions_not_evicted ON fluxqueue.preemptions (id) WHERE evicted_at IS NULL;
CREATE INDEX preemptions_victim ON fluxqueue.preemptions (victim_id);
COMMENT ON TABLE fluxqueue.preemptions IS 'each eviction decided to make room for a waiting unit';

CREATE VIEW fluxqueue.preemption_history AS
SELECT p.decided_at, p.cause, w.namespace || '/' || w.name AS preemptor, fluxqueue.queue_of(w.namespace, w.queue) AS preemptor_queue,
       v.namespace || '/' || v.name AS victim, fluxqueue.queue_of(v.namespace, v.queue) AS victim_queue,
       p.evicted_at, p.reason, p.id
FROM fluxqueue.preemptions p
JOIN fluxqueue.units w ON w.id = p.preemptor_id
JOIN fluxqueue.units v ON v.id = p.victim_id
ORDER BY p.id DESC;
COMMENT ON VIEW fluxqueue.preemption_history IS 'preemptions, newest first: who made room for whom, and why';
