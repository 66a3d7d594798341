-- A unit is one or more pod sets (milestone 2): each with a name, a count, what each of its pods asks for and
-- where its pods may run. They replace the unit's one per-pod shape (cpu_millis, memory_bytes, gpus) and the
-- placement rules kept beside it; the jobspec is not stored (it is regenerated against the current graph at
-- every match, and shown on the FluxJob).
--
-- pod_sets: a JSON array of {name, count, cpu_millis, memory_bytes, gpus, node_selector?, node_affinity_terms?,
-- tolerations?}; `SELECT * FROM fluxqueue.pod_sets` lists them one per row.

ALTER TABLE fluxqueue.units ADD COLUMN pod_sets jsonb NOT NULL DEFAULT '[]';
COMMENT ON COLUMN fluxqueue.units.pod_sets IS
    'the unit''s pod sets: [{name, count, cpu_millis, memory_bytes, gpus, node_selector, node_affinity_terms, '
    'tolerations}], one slot shape each in the jobspec';

UPDATE fluxqueue.units u
SET pod_sets = jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
        'name', 'main', 'count', u.size, 'cpu_millis', u.cpu_millis, 'memory_bytes', u.memory_bytes,
        'gpus', u.gpus,
        'node_selector', nullif(u.placement->'node_selector', '{}'::jsonb),
        'node_affinity_terms', nullif(u.placement->'node_affinity_terms', '[]'::jsonb),
        'tolerations', nullif(u.placement->'tolerations', '[]'::jsonb)))),
    placement = u.placement - 'node_selector' - 'node_affinity_terms' - 'tolerations';
COMMENT ON COLUMN fluxqueue.units.placement IS 'what placing the pods needs besides the pod sets: {indexed, uid}';

-- Kinds are the workload adapters' (fluxqueue/workloads): a new kind needs no migration.
ALTER TABLE fluxqueue.units DROP CONSTRAINT IF EXISTS units_kind_check;
COMMENT ON COLUMN fluxqueue.units.kind IS 'the workload kind: Job, Pod, PodGroup, JobSet, MPIJob, ...';

DROP VIEW fluxqueue.queue;
ALTER TABLE fluxqueue.units DROP COLUMN cpu_millis, DROP COLUMN memory_bytes, DROP COLUMN gpus,
    DROP COLUMN jobspec;

-- "launcher 1 x 8 CPU, worker 2 x 1 CPU, 4 GiB, 1 GPU": how people read a unit's pod sets.
CREATE FUNCTION fluxqueue.describe_pod_sets(sets jsonb) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT string_agg(
        format('%s %s x %s CPU', s->>'name', s->>'count',
               trim(trailing '.' FROM trim(trailing '0' FROM round((s->>'cpu_millis')::numeric / 1000, 3)::text)))
        || CASE WHEN coalesce((s->>'memory_bytes')::bigint, 0) > 0
                THEN ', ' || pg_size_pretty((s->>'memory_bytes')::bigint) ELSE '' END
        || CASE WHEN coalesce((s->>'gpus')::int, 0) > 0 THEN ', ' || (s->>'gpus') || ' GPU' ELSE '' END,
        ', ' ORDER BY ord)
    FROM jsonb_array_elements(sets) WITH ORDINALITY AS e(s, ord)
$$;

CREATE VIEW fluxqueue.queue AS
SELECT row_number() OVER (ORDER BY u.priority DESC, u.submitted_at ASC, u.id ASC) AS position,
       u.namespace, u.name, u.kind, u.size, fluxqueue.describe_pod_sets(u.pod_sets) AS pod_sets,
       u.priority, u.duration_s, u.state, now() - u.submitted_at AS waiting, u.reason, u.id
FROM fluxqueue.units u
WHERE u.state IN ('Queued', 'Reserved')
ORDER BY u.priority DESC, u.submitted_at ASC, u.id ASC;
COMMENT ON VIEW fluxqueue.queue IS 'pending units in the order the scheduler walks them';

CREATE VIEW fluxqueue.pod_sets AS
SELECT u.namespace, u.name AS fluxjob, u.kind, u.state, s->>'name' AS pod_set, (s->>'count')::int AS pods,
       round((s->>'cpu_millis')::numeric / 1000, 3) AS cpus_per_pod,
       pg_size_pretty((s->>'memory_bytes')::bigint) AS memory_per_pod, (s->>'gpus')::int AS gpus_per_pod,
       s->'node_selector' AS node_selector, u.id AS unit_id
FROM fluxqueue.units u, jsonb_array_elements(u.pod_sets) WITH ORDINALITY AS e(s, ord)
ORDER BY u.id, e.ord;
COMMENT ON VIEW fluxqueue.pod_sets IS 'every unit''s pod sets, one per row';

-- A member joins its group (as in 0003) and its pod set: the set of its shape (requests and placement
-- rules) counts one more, or the member starts a set. So a group's sets come from its members whatever order
-- they arrive in (a launcher after its workers included); sub.pod_sets holds the member's own set of one.
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
                                     priority, group_name, queue, state, reason, placement, pod_sets)
        SELECT s.namespace, s.name, s.kind, s.object_name, s.owner_uid, s.size, s.exclusive, s.duration_s,
               s.priority, s.group_name, s.queue, s.state, s.reason, s.placement, s.pod_sets
        FROM jsonb_populate_record(NULL::fluxqueue.units, sub) AS s
        ON CONFLICT DO NOTHING
        RETURNING id INTO joined_id;
        created := joined_id IS NOT NULL;
        IF joined_id IS NULL THEN
            SELECT id INTO joined_id FROM fluxqueue.units u
            WHERE u.kind = 'PodGroup' AND u.namespace = sub->>'namespace' AND u.group_name = sub->>'group_name'
              AND u.state IN ('Waiting', 'Queued', 'Reserved', 'Scheduled', 'Running');
        END IF;
        -- Not found: the live group ended between the two statements; this member starts a new one.
        EXIT WHEN joined_id IS NOT NULL;
    END LOOP;
    IF joined_id IS NULL THEN
        RAISE EXCEPTION 'pod group %/% changed too often to join', sub->>'namespace', sub->>'group_name';
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
    IF unit.state = 'Waiting' AND members >= unit.size THEN
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
    'one pod group member joins: creates the group on the first, adds the member to the pod set of its shape, '
    'queues the group on the last (see 0005_pod_sets.sql)';
