-- The durable queue: one row per scheduling unit (one per FluxJob), its allocation in Fluxion, the pods bound
-- to it, transient reservations and an append-only history of every state change. Views at the end are meant
-- for a person at psql: `SELECT * FROM fluxqueue.queue;`.

CREATE TABLE fluxqueue.units (
    id              bigserial PRIMARY KEY,
    namespace       text NOT NULL,
    name            text NOT NULL,                 -- the FluxJob's name
    kind            text NOT NULL CHECK (kind IN ('Job', 'Pod', 'PodGroup')),
    object_name     text NOT NULL,                 -- the wrapped Job/Pod name, or the group name
    owner_uid       text NOT NULL,                 -- the wrapped object's uid ('group:<ns>/<name>' for groups)
    size            integer NOT NULL CHECK (size > 0),
    cpu_millis      bigint NOT NULL DEFAULT 0,     -- per pod
    memory_bytes    bigint NOT NULL DEFAULT 0,     -- per pod
    gpus            integer NOT NULL DEFAULT 0,    -- per pod
    exclusive       boolean NOT NULL DEFAULT false,
    duration_s      integer NOT NULL CHECK (duration_s >= 0),
    priority        integer NOT NULL DEFAULT 0,
    group_name      text,
    queue           text NOT NULL DEFAULT 'default',
    jobspec         jsonb NOT NULL,                -- as generated at submission (shown on the FluxJob)
    placement       jsonb NOT NULL DEFAULT '{}',   -- nodeSelector/affinity/tolerations: the jobspec is
                                                   -- regenerated from these whenever the graph changes
    state           text NOT NULL CHECK (state IN ('Waiting', 'Queued', 'Reserved', 'Scheduled', 'Running',
                                                   'Succeeded', 'Failed', 'Unsatisfiable', 'Cancelled')),
    submitted_at    timestamptz NOT NULL DEFAULT now(),
    queued_at       timestamptz,
    scheduled_at    timestamptz,
    finished_at     timestamptz,
    reason          text NOT NULL DEFAULT '',
    fluxion_jobid   bigint,
    attempts        integer NOT NULL DEFAULT 0,    -- Fluxion match calls made for this unit
    released        boolean NOT NULL DEFAULT false -- Kubernetes side of the placement done (unsuspended/bound)
);
COMMENT ON TABLE fluxqueue.units IS
    'one row per FluxJob: a Job, a bare pod or a pod group, with its state machine';
COMMENT ON COLUMN fluxqueue.units.state IS
    'Waiting (pod group still filling) -> Queued -> (Reserved) -> Scheduled -> Running -> Succeeded/Failed; '
    'or Unsatisfiable / Cancelled';

-- Idempotent submission: a wrapped object is queued once, whatever the number of watch events.
CREATE UNIQUE INDEX units_owner ON fluxqueue.units (owner_uid) WHERE kind <> 'PodGroup';
-- A group name may be reused once the previous group with that name has finished.
CREATE UNIQUE INDEX units_live_group ON fluxqueue.units (namespace, group_name)
    WHERE kind = 'PodGroup' AND state IN ('Waiting', 'Queued', 'Reserved', 'Scheduled', 'Running');
-- The scheduling order: priority first, then first come first served.
CREATE INDEX units_schedule_order ON fluxqueue.units (priority DESC, submitted_at ASC, id ASC)
    WHERE state IN ('Queued', 'Reserved');
CREATE INDEX units_active ON fluxqueue.units (state)
    WHERE state IN ('Waiting', 'Scheduled', 'Running');
CREATE INDEX units_by_name ON fluxqueue.units (namespace, name);

-- Members of pod groups, recorded as they arrive (the unit waits in 'Waiting' until it has `size` of them).
CREATE TABLE fluxqueue.group_members (
    unit_id     bigint NOT NULL REFERENCES fluxqueue.units (id) ON DELETE CASCADE,
    pod         text NOT NULL,
    pod_uid     text NOT NULL,
    joined_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (unit_id, pod)
);

-- What Fluxion granted. Written in the same transaction as the move to 'Scheduled', before any Kubernetes
-- side effect, so a crash anywhere after the match is recovered from here (and never matched twice).
CREATE TABLE fluxqueue.allocations (
    unit_id         bigint PRIMARY KEY REFERENCES fluxqueue.units (id) ON DELETE CASCADE,
    fluxion_jobid   bigint NOT NULL,
    epoch           bigint NOT NULL,              -- the Fluxion graph epoch the id was issued in
    r               text NOT NULL,                -- the allocation (JGF R) to replay after a Fluxion restart
    allocated_at    timestamptz NOT NULL DEFAULT now(),
    released_at     timestamptz                   -- cancelled in Fluxion
);
COMMENT ON TABLE fluxqueue.allocations IS 'Fluxion allocations; released_at IS NULL while the unit holds them';

CREATE TABLE fluxqueue.allocation_nodes (
    unit_id         bigint NOT NULL REFERENCES fluxqueue.allocations (unit_id) ON DELETE CASCADE,
    node            text NOT NULL,
    cores           integer NOT NULL,
    memory_bytes    bigint NOT NULL,
    gpus            integer NOT NULL,
    slots           integer NOT NULL,             -- pods of the unit that go on this node
    PRIMARY KEY (unit_id, node)
);

CREATE TABLE fluxqueue.pod_bindings (
    unit_id     bigint NOT NULL REFERENCES fluxqueue.units (id) ON DELETE CASCADE,
    pod         text NOT NULL,
    pod_uid     text NOT NULL,
    node        text NOT NULL,
    bound_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (unit_id, pod_uid)
);

-- Reservations live only inside one scheduling pass; the pass clears them (and cancels them in Fluxion).
CREATE TABLE fluxqueue.reservations (
    unit_id         bigint PRIMARY KEY REFERENCES fluxqueue.units (id) ON DELETE CASCADE,
    fluxion_jobid   bigint NOT NULL,
    start_at        timestamptz NOT NULL,
    made_at         timestamptz NOT NULL DEFAULT now()
);

-- Append-only history, written by a trigger so no transition can forget it.
CREATE TABLE fluxqueue.state_changes (
    id          bigserial PRIMARY KEY,
    unit_id     bigint NOT NULL REFERENCES fluxqueue.units (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    from_state  text,
    to_state    text NOT NULL,
    reason      text NOT NULL DEFAULT ''
);
CREATE INDEX state_changes_unit ON fluxqueue.state_changes (unit_id, id);

CREATE FUNCTION fluxqueue.record_state_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.state IS DISTINCT FROM OLD.state THEN
        INSERT INTO fluxqueue.state_changes (unit_id, from_state, to_state, reason)
        VALUES (NEW.id, CASE WHEN TG_OP = 'UPDATE' THEN OLD.state END, NEW.state, NEW.reason);
        -- Wake the scheduling loop when work arrives or resources are freed.
        -- (Reserved -> Queued is the pass's own bookkeeping and wakes nobody.)
        IF (NEW.state = 'Queued' AND (TG_OP = 'INSERT' OR OLD.state = 'Waiting'))
           OR NEW.state IN ('Succeeded', 'Failed', 'Cancelled') THEN
            PERFORM pg_notify('fluxqueue_wakeup', NEW.state || ' ' || NEW.id);
        END IF;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER units_state_history AFTER INSERT OR UPDATE OF state ON fluxqueue.units
    FOR EACH ROW EXECUTE FUNCTION fluxqueue.record_state_change();

CREATE FUNCTION fluxqueue.forbid_history_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'fluxqueue.state_changes is append-only';
END $$;
CREATE TRIGGER state_changes_append_only BEFORE UPDATE ON fluxqueue.state_changes
    FOR EACH ROW EXECUTE FUNCTION fluxqueue.forbid_history_changes();

-- Views for people.
CREATE VIEW fluxqueue.queue AS
SELECT row_number() OVER (ORDER BY u.priority DESC, u.submitted_at ASC, u.id ASC) AS position,
       u.namespace, u.name, u.kind, u.size,
       round(u.cpu_millis / 1000.0, 3) AS cpus_per_pod,
       pg_size_pretty(u.memory_bytes) AS memory_per_pod,
       u.gpus AS gpus_per_pod, u.priority, u.duration_s, u.state,
       now() - u.submitted_at AS waiting, u.reason, u.id
FROM fluxqueue.units u
WHERE u.state IN ('Queued', 'Reserved')
ORDER BY u.priority DESC, u.submitted_at ASC, u.id ASC;
COMMENT ON VIEW fluxqueue.queue IS 'pending units in the order the scheduler walks them';

CREATE VIEW fluxqueue.running AS
SELECT u.namespace, u.name, u.kind, u.size, u.state, a.fluxion_jobid,
       (SELECT string_agg(n.node, ',' ORDER BY n.node) FROM fluxqueue.allocation_nodes n
         WHERE n.unit_id = u.id) AS nodes,
       u.scheduled_at, now() - u.scheduled_at AS running_for, u.duration_s, u.id
FROM fluxqueue.units u JOIN fluxqueue.allocations a ON a.unit_id = u.id
WHERE u.state IN ('Scheduled', 'Running') AND a.released_at IS NULL
ORDER BY u.scheduled_at, u.id;
COMMENT ON VIEW fluxqueue.running IS 'units holding an allocation';

CREATE VIEW fluxqueue.nodes AS
SELECT n.node, count(*) AS units, sum(n.slots) AS pods, sum(n.cores) AS cores,
       pg_size_pretty(sum(n.memory_bytes)) AS memory, sum(n.gpus) AS gpus,
       sum(n.memory_bytes) AS memory_bytes
FROM fluxqueue.allocation_nodes n JOIN fluxqueue.allocations a USING (unit_id)
WHERE a.released_at IS NULL
GROUP BY n.node ORDER BY n.node;
COMMENT ON VIEW fluxqueue.nodes IS 'what fluxqueue has allocated on each node right now';

CREATE VIEW fluxqueue.history AS
SELECT c.at, u.namespace, u.name, u.kind, c.from_state, c.to_state, c.reason, c.unit_id
FROM fluxqueue.state_changes c JOIN fluxqueue.units u ON u.id = c.unit_id
ORDER BY c.id;
COMMENT ON VIEW fluxqueue.history IS 'every state change, oldest first';
