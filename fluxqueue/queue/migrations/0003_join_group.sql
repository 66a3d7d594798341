-- A pod group member joins its group in one round trip (it took a transaction of six statements, then two
-- more to write the count as the reason: most of the database's work per pod for gangs).
--
-- sub: the group's submission (the columns of fluxqueue.units as JSON, state 'Waiting'); returns the unit as
-- it stands after the join and its member count. The first member creates the unit; the last one moves it
-- Waiting -> Queued; the ones in between write "waiting for group members: n of size present". The row lock
-- taken before counting makes members joining at once see each other, so exactly one of them queues it.
CREATE FUNCTION fluxqueue.join_group(sub jsonb, member_pod text, member_uid text,
                                     OUT unit fluxqueue.units, OUT members bigint)
LANGUAGE plpgsql AS $$
DECLARE
    joined_id bigint;
BEGIN
    FOR attempt IN 1..3 LOOP
        INSERT INTO fluxqueue.units (namespace, name, kind, object_name, owner_uid, size, cpu_millis,
                                     memory_bytes, gpus, exclusive, duration_s, priority, group_name, queue,
                                     jobspec, state, reason, placement)
        SELECT s.namespace, s.name, s.kind, s.object_name, s.owner_uid, s.size, s.cpu_millis, s.memory_bytes,
               s.gpus, s.exclusive, s.duration_s, s.priority, s.group_name, s.queue, s.jobspec, s.state,
               s.reason, s.placement
        FROM jsonb_populate_record(NULL::fluxqueue.units, sub) AS s
        ON CONFLICT DO NOTHING
        RETURNING id INTO joined_id;
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
    'one pod group member joins: creates the group on the first, queues it on the last (see 0003_join_group.sql)';
