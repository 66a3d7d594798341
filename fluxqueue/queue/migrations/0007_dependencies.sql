-- Job dependencies (Slurm's sbatch --dependency, as the annotation fluxqueue.io/dependency): a unit whose
-- dependency does not hold yet is 'Held', a state the pass never reads (never matched, never reserved for).
-- What it waits for is one row per term in fluxqueue.dependencies; the controller evaluates the held units
-- whenever units end (the NOTIFY of the units_state_history trigger wakes it) and moves them to 'Queued'
-- (with their original submitted_at, so they keep their place) or ends them (DependencyNeverSatisfied).
-- `SELECT * FROM fluxqueue.waits;` shows who waits for whom, and why.

ALTER TABLE fluxqueue.units DROP CONSTRAINT units_state_check;
ALTER TABLE fluxqueue.units ADD CONSTRAINT units_state_check
    CHECK (state IN ('Waiting', 'Held', 'Queued', 'Reserved', 'Scheduled', 'Running',
                     'Succeeded', 'Failed', 'Unsatisfiable', 'Cancelled'));
COMMENT ON COLUMN fluxqueue.units.state IS
    'Waiting (pod group still filling) -> (Held: its dependency does not hold yet) -> Queued -> (Reserved) -> '
    'Scheduled -> Running -> Succeeded/Failed; or Unsatisfiable / Cancelled';

ALTER TABLE fluxqueue.units ADD COLUMN dependency text;
COMMENT ON COLUMN fluxqueue.units.dependency IS
    'the fluxqueue.io/dependency annotation as written (NULL: none); its terms are in fluxqueue.dependencies';

CREATE TABLE fluxqueue.dependencies (
    unit_id     bigint NOT NULL REFERENCES fluxqueue.units (id) ON DELETE CASCADE,
    term        integer NOT NULL,              -- position in the annotation
    condition   text NOT NULL CHECK (condition IN ('after', 'afterany', 'afterok', 'afternotok', 'singleton')),
    target      text NOT NULL,                 -- a workload name in the unit's namespace (singleton: its own)
    delay_s     integer NOT NULL DEFAULT 0 CHECK (delay_s >= 0),  -- after:name+minutes
    joined      text NOT NULL CHECK (joined IN ('all', 'any')),   -- ',' (all) or '?' (any)
    PRIMARY KEY (unit_id, term)
);
COMMENT ON TABLE fluxqueue.dependencies IS
    'what each unit with a fluxqueue.io/dependency waits for: one row per term (sbatch(1) --dependency)';
CREATE INDEX dependencies_singleton ON fluxqueue.dependencies (target) WHERE condition = 'singleton';

-- A held pod group is still the live group of its name (its members keep joining it, not a new one).
DROP INDEX fluxqueue.units_live_group;
CREATE UNIQUE INDEX units_live_group ON fluxqueue.units (namespace, group_name)
    WHERE kind = 'PodGroup' AND state IN ('Waiting', 'Held', 'Queued', 'Reserved', 'Scheduled', 'Running');
DROP INDEX fluxqueue.units_active;
CREATE INDEX units_active ON fluxqueue.units (state)
    WHERE state IN ('Waiting', 'Held', 'Scheduled', 'Running');

-- Held -> Queued wakes the loop as Waiting -> Queued does.
CREATE OR REPLACE FUNCTION fluxqueue.record_state_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.state IS DISTINCT FROM OLD.state THEN
        INSERT INTO fluxqueue.state_changes (unit_id, from_state, to_state, reason)
        VALUES (NEW.id, CASE WHEN TG_OP = 'UPDATE' THEN OLD.state END, NEW.state, NEW.reason);
        -- Wake the scheduling loop when work arrives or resources are freed (an end also releases or dooms
        -- the units that depend on it). Reserved -> Queued is the pass's own bookkeeping and wakes nobody.
        IF (NEW.state = 'Queued' AND (TG_OP = 'INSERT' OR OLD.state IN ('Waiting', 'Held')))
           OR NEW.state IN ('Succeeded', 'Failed', 'Cancelled') THEN
            PERFORM pg_notify('fluxqueue_wakeup', NEW.state || ' ' || NEW.id);
        END IF;
    END IF;
    RETURN NEW;
END $$;

-- A member joins its group (as in 0005); the group's dependency comes with its first member, and a group with
-- one is 'Held', not 'Queued', once its last member is present.
DROP FUNCTION fluxqueue.join_group(jsonb, text, text);
CREATE FUNCTION fluxqueue.join_group(sub jsonb, member_pod text, member_uid text,
                                     OUT unit fluxqueue.units, OUT members bigint)
LANGUAGE plpgsql AS $$
DECLARE
    joined_id bigint;
    created boolean := false;
    member jsonb := sub->'pod_sets'->0;
    shape_keys text[] := ARRAY['cpu_millis', 'memory_bytes', 'gpus', 'node_selector', 'node_affinity_terms',
                               'tolerations'];
    sets jsonb;
    found_at int;
    set_name text;
    n int;
BEGIN
    FOR attempt IN 1..3 LOOP
        INSERT INTO fluxqueue.units (namespace, name, kind, object_name, owner_uid, size, exclusive, duration_s,
                                     priority, group_name, queue, state, reason, placement, pod_sets, dependency)
        SELECT s.namespace, s.name, s.kind, s.object_name, s.owner_uid, s.size, s.exclusive, s.duration_s,
               s.priority, s.group_name, s.queue, s.state, s.reason, s.placement, s.pod_sets, s.dependency
        FROM jsonb_populate_record(NULL::fluxqueue.units, sub) AS s
        ON CONFLICT DO NOTHING
        RETURNING id INTO joined_id;
        created := joined_id IS NOT NULL;
        IF joined_id IS NULL THEN
            SELECT id INTO joined_id FROM fluxqueue.units u
            WHERE u.kind = 'PodGroup' AND u.namespace = sub->>'namespace' AND u.group_name = sub->>'group_name'
              AND u.state IN ('Waiting', 'Held', 'Queued', 'Reserved', 'Scheduled', 'Running');
        END IF;
        -- Not found: the live group ended between the two statements; this member starts a new one.
        EXIT WHEN joined_id IS NOT NULL;
    END LOOP;
    IF joined_id IS NULL THEN
        RAISE EXCEPTION 'pod group %/% changed too often to join', sub->>'namespace', sub->>'group_name';
    END IF;
    IF created AND jsonb_typeof(sub->'dependency_terms') = 'array' THEN
        INSERT INTO fluxqueue.dependencies (unit_id, term, condition, target, delay_s, joined)
        SELECT joined_id, t.ord - 1, t.d->>'condition', t.d->>'target', (t.d->>'delay_s')::int, t.d->>'joined'
        FROM jsonb_array_elements(sub->'dependency_terms') WITH ORDINALITY AS t(d, ord);
    END IF;
    SELECT * INTO unit FROM fluxqueue.units WHERE id = joined_id FOR UPDATE;
    INSERT INTO fluxqueue.group_members (unit_id, pod, pod_uid) VALUES (joined_id, member_pod, member_uid)
    ON CONFLICT DO NOTHING;
    IF FOUND AND NOT created AND member IS NOT NULL AND unit.state = 'Waiting' THEN
        sets := unit.pod_sets;
        SELECT e.ord - 1 INTO found_at
        FROM jsonb_array_elements(sets) WITH ORDINALITY AS e(s, ord)
        WHERE NOT EXISTS (SELECT 1 FROM unnest(shape_keys) k
                          WHERE (e.s->k) IS DISTINCT FROM (member->k))
        ORDER BY e.ord LIMIT 1;
        IF found_at IS NOT NULL THEN
            sets := jsonb_set(sets, ARRAY[found_at::text, 'count'],
                              to_jsonb((sets->found_at->>'count')::int + 1));
        ELSE
            set_name := member->>'name';
            n := 2;
            WHILE EXISTS (SELECT 1 FROM jsonb_array_elements(sets) s WHERE s->>'name' = set_name) LOOP
                set_name := (member->>'name') || '-' || n;
                n := n + 1;
            END LOOP;
            sets := sets || jsonb_build_array(jsonb_set(member, '{name}', to_jsonb(set_name)));
        END IF;
        UPDATE fluxqueue.units SET pod_sets = sets, duration_s = greatest(duration_s, (sub->>'duration_s')::int),
            priority = greatest(priority, (sub->>'priority')::int),
            exclusive = exclusive OR (sub->>'exclusive')::boolean
        WHERE id = joined_id RETURNING * INTO unit;
    END IF;
    SELECT count(*) INTO members FROM fluxqueue.group_members WHERE unit_id = joined_id;
    IF unit.state = 'Waiting' AND members >= unit.size AND unit.dependency IS NOT NULL THEN
        UPDATE fluxqueue.units
        SET state = 'Held', reason = format('all %s members present; waiting for its dependency', unit.size)
        WHERE id = joined_id
        RETURNING * INTO unit;
    ELSIF unit.state = 'Waiting' AND members >= unit.size THEN
        UPDATE fluxqueue.units
        SET state = 'Queued', reason = format('all %s members present', unit.size),
            queued_at = coalesce(queued_at, now())
        WHERE id = joined_id
        RETURNING * INTO unit;
    ELSIF unit.state = 'Waiting' THEN
        UPDATE fluxqueue.units
        SET reason = format('waiting for group members: %s of %s present', members, unit.size)
        WHERE id = joined_id
        RETURNING * INTO unit;
    END IF;
END
$$;
COMMENT ON FUNCTION fluxqueue.join_group(jsonb, text, text) IS
    'one pod group member joins: creates the group (and its dependency) on the first, adds the member to the '
    'pod set of its shape, queues (or holds) the group on the last (see 0007_dependencies.sql)';

-- For people: every held unit's terms, with the state of what each names.
CREATE VIEW fluxqueue.waits AS
SELECT u.namespace, u.name AS waiting, u.state, d.condition, d.target, d.delay_s, d.joined,
       t.name AS target_fluxjob, t.state AS target_state, u.reason, u.id AS unit_id
FROM fluxqueue.dependencies d
JOIN fluxqueue.units u ON u.id = d.unit_id
LEFT JOIN LATERAL (
    SELECT x.name, x.state FROM fluxqueue.units x
    WHERE x.namespace = u.namespace AND x.object_name = d.target AND x.id <> u.id
    ORDER BY x.id DESC LIMIT 1
) t ON d.condition <> 'singleton'
ORDER BY u.id, d.term;
COMMENT ON VIEW fluxqueue.waits IS 'who waits for whom (fluxqueue.io/dependency), and the state of each target';

CREATE VIEW fluxqueue.held AS
SELECT u.namespace, u.name, u.kind, u.size, fluxqueue.describe_pod_sets(u.pod_sets) AS pod_sets,
       u.dependency, now() - u.submitted_at AS waiting, u.reason, u.id
FROM fluxqueue.units u
WHERE u.state = 'Held'
ORDER BY u.priority DESC, u.submitted_at ASC, u.id ASC;
COMMENT ON VIEW fluxqueue.held IS 'units held until their dependency holds, and what each waits for';
