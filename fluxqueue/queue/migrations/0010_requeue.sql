-- Preempted workloads that can be suspended again (Job, JobSet, MPIJob) are requeued, not ended (issue 16):
-- the unit goes Scheduled/Running -> 'Preempted' (its workload suspended, its pods stopping within their
-- grace period, its allocation still held so that nothing is placed onto resources in use) -> 'Queued' once
-- no pod of it is left on a node, with its original submitted_at (it keeps its place in its queue's order).
-- The allocation it gave up moves to fluxqueue.past_allocations in the same transaction as the move to
-- 'Queued', so fluxqueue.allocations keeps one row per unit (the current placement) and a person can still
-- see where every run of a unit ran. Slurm's words: the job was PREEMPTED and REQUEUED; units.requeues is
-- its restart count.

ALTER TABLE fluxqueue.units DROP CONSTRAINT units_state_check;
ALTER TABLE fluxqueue.units ADD CONSTRAINT units_state_check
    CHECK (state IN ('Waiting', 'Held', 'Queued', 'Reserved', 'Scheduled', 'Running', 'Preempted',
                     'Succeeded', 'Failed', 'Unsatisfiable', 'Cancelled'));
COMMENT ON COLUMN fluxqueue.units.state IS
    'Waiting (pod group still filling) -> (Held: its dependency does not hold yet) -> Queued -> (Reserved) -> '
    'Scheduled -> Running -> Succeeded/Failed; or Unsatisfiable / Cancelled; '
    'Scheduled/Running -> Preempted (suspended, its pods stopping) -> Queued (requeued)';

ALTER TABLE fluxqueue.units ADD COLUMN requeues integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN fluxqueue.units.requeues IS 'times the unit was preempted and requeued (Slurm: Restarts)';

DROP INDEX fluxqueue.units_active;
CREATE INDEX units_active ON fluxqueue.units (state)
    WHERE state IN ('Waiting', 'Held', 'Scheduled', 'Running', 'Preempted');

CREATE TABLE fluxqueue.past_allocations (
    id              bigserial PRIMARY KEY,
    unit_id         bigint NOT NULL REFERENCES fluxqueue.units (id) ON DELETE CASCADE,
    fluxion_jobid   bigint NOT NULL,
    epoch           bigint NOT NULL,
    allocated_at    timestamptz NOT NULL,
    released_at     timestamptz NOT NULL,
    nodes           jsonb NOT NULL,   -- [{node, cores, memory_bytes, gpus, slots}]: what it held on each node
    bindings        jsonb NOT NULL,   -- [{pod, pod_uid, node}]: where its pods ran
    reason          text NOT NULL     -- why it was given up
);
CREATE INDEX past_allocations_unit ON fluxqueue.past_allocations (unit_id, id);
COMMENT ON TABLE fluxqueue.past_allocations IS
    'placements a unit gave up when it was preempted and requeued (the current one is in allocations)';

-- A preempted unit requeued wakes the loop as a new one does (it may start again, and what it held is free).
CREATE OR REPLACE FUNCTION fluxqueue.record_state_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.state IS DISTINCT FROM OLD.state THEN
        INSERT INTO fluxqueue.state_changes (unit_id, from_state, to_state, reason)
        VALUES (NEW.id, CASE WHEN TG_OP = 'UPDATE' THEN OLD.state END, NEW.state, NEW.reason);
        -- Wake the scheduling loop when work arrives or resources are freed (an end also releases or dooms
        -- the units that depend on it). Reserved -> Queued is the pass's own bookkeeping and wakes nobody.
        IF (NEW.state = 'Queued' AND (TG_OP = 'INSERT' OR OLD.state IN ('Waiting', 'Held', 'Preempted')))
           OR NEW.state IN ('Succeeded', 'Failed', 'Cancelled') THEN
            PERFORM pg_notify('fluxqueue_wakeup', NEW.state || ' ' || NEW.id);
        END IF;
    END IF;
    RETURN NEW;
END $$;

-- Every run of every unit, the current one and those given up: `SELECT * FROM fluxqueue.runs WHERE name = ..`.
CREATE VIEW fluxqueue.runs AS
SELECT u.namespace, u.name, u.kind, r.run, r.allocated_at, r.released_at, r.nodes, r.reason, u.id AS unit_id
FROM fluxqueue.units u
JOIN LATERAL (
    SELECT row_number() OVER (ORDER BY p.id) AS run, p.allocated_at, p.released_at,
           (SELECT string_agg(n->>'node', ',' ORDER BY n->>'node') FROM jsonb_array_elements(p.nodes) n) AS nodes,
           p.reason
    FROM fluxqueue.past_allocations p WHERE p.unit_id = u.id
    UNION ALL
    SELECT (SELECT count(*) FROM fluxqueue.past_allocations p WHERE p.unit_id = u.id) + 1, a.allocated_at,
           a.released_at,
           (SELECT string_agg(n.node, ',' ORDER BY n.node) FROM fluxqueue.allocation_nodes n
             WHERE n.unit_id = u.id),
           CASE WHEN a.released_at IS NULL THEN 'holding' ELSE u.state END
    FROM fluxqueue.allocations a WHERE a.unit_id = u.id
) r ON true
ORDER BY u.id, r.run;
COMMENT ON VIEW fluxqueue.runs IS 'each placement of each unit: several when it was preempted and requeued';
