-- Routing, silences, inhibition and escalation: Alertmanager's route tree,
-- silences and inhibit_rules, and Grafana OnCall's escalation chains, over
-- the alert labels (SPEC §3.4). Matchers are Alertmanager's (`name op
-- value`, op =, !=, =~, !~), parsed and matched by vigil.labels_match (RE2
-- regexes matched in linear time, anchored, a missing label reads "").

-- Routes ----------------------------------------------------------------

CREATE TABLE vigil.routes (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text        NOT NULL UNIQUE CHECK (btrim(name) <> ''),
    sort_order int         NOT NULL,
    matchers   text[]      NOT NULL DEFAULT '{}',
    channels   text[]      NOT NULL CHECK (cardinality(channels) > 0),
    "continue" bool        NOT NULL DEFAULT false,
    enabled    bool        NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE vigil.routes IS
    'Where alerts go, by their labels (Alertmanager''s routes): walked by sort_order (then name), the first route whose matchers all '
    'hold sends the alert to its channels, and so does every later matching one while the matched route has continue. '
    'An alert no route matches goes to the channels no enabled route names (with no routes: every channel)';
COMMENT ON COLUMN vigil.routes.matchers IS 'Alertmanager matchers (name op "value"), all must hold; empty: every alert';
COMMENT ON COLUMN vigil.routes.channels IS 'Channel names; a channel a route names can be renamed but not dropped';
COMMENT ON COLUMN vigil.routes."continue" IS 'After this route matched, keep walking the later routes';
SELECT pg_catalog.pg_extension_config_dump('vigil.routes', '');
SELECT pg_catalog.pg_extension_config_dump('vigil.routes_id_seq', '');

-- Channel names of a route or an escalation step: canonical (no
-- duplicates), each an existing channel (42704 naming it).
CREATE FUNCTION vigil._distinct_names(names text[]) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT ARRAY(SELECT n FROM unnest(names) WITH ORDINALITY u(n, i) GROUP BY n ORDER BY min(i))
$$;
COMMENT ON FUNCTION vigil._distinct_names(text[]) IS
    'Internal: the names without repeats, each where it first appears';

CREATE FUNCTION vigil._channel_names(names text[], argument text) RETURNS text[]
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    missing text;
BEGIN
    IF names IS NULL OR cardinality(names) = 0 OR array_position(names, NULL) IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('%s must name at least one channel, and no NULL', argument);
    END IF;
    SELECT n INTO missing FROM unnest(names) n
    WHERE NOT EXISTS (SELECT 1 FROM vigil.channels ch WHERE ch.name = n) LIMIT 1;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '42704',
            MESSAGE = format('%s: channel "%s" does not exist', argument, missing);
    END IF;
    RETURN vigil._distinct_names(names);
END
$$;
COMMENT ON FUNCTION vigil._channel_names(text[], text) IS
    'Internal: channel names without repeats, or ERROR 22023 (none, NULL) / 42704 (unknown) naming the argument';

-- Common checks of the routing tables' bookkeeping columns; returns the
-- updated_at to store (now() on UPDATE).
CREATE FUNCTION vigil._config_row_check(enabled bool, created_at timestamptz, updated_at timestamptz, op text)
RETURNS timestamptz
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF enabled IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'enabled must not be NULL';
    END IF;
    IF created_at IS NULL OR updated_at IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'created_at and updated_at must not be NULL';
    END IF;
    RETURN CASE WHEN op = 'UPDATE' THEN now() ELSE updated_at END;
END
$$;
COMMENT ON FUNCTION vigil._config_row_check(bool, timestamptz, timestamptz, text) IS
    'Internal: ERROR 22004 when enabled, created_at or updated_at is NULL; else the updated_at to store (now() on UPDATE)';

CREATE FUNCTION vigil._routes_check() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM vigil._require_text(NEW.name, 'name');
    NEW.matchers := vigil._matchers(NEW.matchers, 'matchers');
    NEW.channels := vigil._channel_names(NEW.channels, 'channels');
    IF NEW.sort_order IS NULL THEN
        NEW.sort_order := coalesce((SELECT max(r.sort_order) FROM vigil.routes r), 0) + 10;
    END IF;
    IF NEW."continue" IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'continue must not be NULL';
    END IF;
    NEW.updated_at := vigil._config_row_check(NEW.enabled, NEW.created_at, NEW.updated_at, TG_OP);
    RETURN NEW;
END
$$;
CREATE TRIGGER routes_check BEFORE INSERT OR UPDATE ON vigil.routes
    FOR EACH ROW EXECUTE FUNCTION vigil._routes_check();

CREATE FUNCTION vigil.create_route(
    name text,
    channels text[],
    matchers text[] DEFAULT '{}',
    "continue" bool DEFAULT false,
    sort_order int DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    new_id bigint;
BEGIN
    IF EXISTS (SELECT 1 FROM vigil.routes r WHERE r.name = create_route.name) THEN
        RAISE EXCEPTION USING ERRCODE = '42710', MESSAGE = format('route "%s" already exists', create_route.name);
    END IF;
    INSERT INTO vigil.routes AS r (name, channels, matchers, "continue", sort_order)
    VALUES (create_route.name, create_route.channels, create_route.matchers,
            create_route."continue", create_route.sort_order)
    RETURNING r.id INTO new_id;
    RETURN new_id;
END
$$;
COMMENT ON FUNCTION vigil.create_route(text, text[], text[], bool, int) IS
    'Add a route: alerts whose labels satisfy every matcher (Alertmanager syntax, e.g. team="payments", '
    'severity=~"high|critical") go to these channels; routes are walked by sort_order (default: after the last), the '
    'first match wins unless it has continue. Channels keep their min_severity/anomaly_types filters. Returns the id';

CREATE FUNCTION vigil.drop_route(name text) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM vigil.routes r WHERE r.name = vigil._require_text(drop_route.name, 'name');
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = '42704', MESSAGE = format('route "%s" does not exist', drop_route.name);
    END IF;
END
$$;
COMMENT ON FUNCTION vigil.drop_route(text) IS 'Remove a route; ERROR 42704 when there is none of that name';

-- The channels the enabled routes send an alert with these labels to, in
-- route order; NULL when no route matches (then: the unrouted channels).
CREATE FUNCTION vigil.route_alert(labels jsonb) RETURNS text[]
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r record;
    out text[];
BEGIN
    FOR r IN SELECT t.matchers, t.channels, t."continue" AS cont FROM vigil.routes t
             WHERE t.enabled ORDER BY t.sort_order, t.name
    LOOP
        IF vigil.labels_match(labels, r.matchers) THEN
            out := coalesce(out, '{}') || r.channels;
            EXIT WHEN NOT r.cont;
        END IF;
    END LOOP;
    IF out IS NULL THEN
        -- No route matched: the channels no enabled route names.
        RETURN ARRAY(SELECT ch.name FROM vigil.channels ch
                     WHERE NOT EXISTS (SELECT 1 FROM vigil.routes t WHERE t.enabled AND ch.name = ANY (t.channels))
                     ORDER BY ch.id);
    END IF;
    RETURN vigil._distinct_names(out);
END
$$;
COMMENT ON FUNCTION vigil.route_alert(jsonb) IS
    'The channels an alert with these labels is routed to (before each channel''s own severity and type filters): '
    'those of the first matching enabled route, and of later matching ones while a matched route has continue; '
    'with no matching route, every channel no enabled route names';

-- Silences --------------------------------------------------------------

CREATE TABLE vigil.silences (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    matchers     text[]      NOT NULL,
    starts_at    timestamptz NOT NULL DEFAULT now(),
    ends_at      timestamptz NOT NULL,
    created_by   text        NOT NULL,
    created_role name        NOT NULL DEFAULT session_user,
    comment      text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT silences_ends_after_start CHECK (ends_at >= starts_at)
);
CREATE INDEX silences_ends_at_idx ON vigil.silences (ends_at);
COMMENT ON TABLE vigil.silences IS
    'Silences (Alertmanager''s): from starts_at to ends_at, open alerts whose labels satisfy every matcher are still '
    'recorded but not notified; when the silence ends (or is expired), those still firing are notified';
COMMENT ON COLUMN vigil.silences.created_by IS 'Who asked for the silence, as the caller typed it';
COMMENT ON COLUMN vigil.silences.created_role IS 'The database role (session_user) that created it';
SELECT pg_catalog.pg_extension_config_dump('vigil.silences', '');
SELECT pg_catalog.pg_extension_config_dump('vigil.silences_id_seq', '');

CREATE FUNCTION vigil._silences_check() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    NEW.matchers := vigil._matchers(NEW.matchers, 'matchers');
    -- As Alertmanager: at least one matcher that the empty string does not
    -- satisfy, so a silence never matches every alert by accident.
    IF vigil.labels_match('{}', NEW.matchers) THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = 'matchers must include one that an absent label does not satisfy (e.g. alertname="X"): '
                      'this silence would match every alert';
    END IF;
    PERFORM vigil._require_text(NEW.comment, 'comment');
    PERFORM vigil._cap_text(NEW.comment, 'comment');
    PERFORM vigil._require_text(NEW.created_by, 'created_by');
    PERFORM vigil._cap_text(NEW.created_by, 'created_by');
    IF NEW.starts_at IS NULL OR NEW.ends_at IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'starts_at and ends_at must not be NULL';
    END IF;
    IF NOT isfinite(NEW.starts_at) OR NOT isfinite(NEW.ends_at) THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'starts_at and ends_at must be finite timestamps';
    END IF;
    IF NEW.ends_at < NEW.starts_at THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('ends_at (%s) must not be before starts_at (%s)', NEW.ends_at, NEW.starts_at);
    END IF;
    -- (A restore copies ended silences too: "in the future" is checked by
    -- vigil.create_silence, not here.)
    IF NEW.ends_at - NEW.starts_at > interval '1 year' THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('a silence lasts at most 1 year; this one would last %s', NEW.ends_at - NEW.starts_at);
    END IF;
    IF NEW.created_role IS NULL OR NEW.created_at IS NULL OR NEW.updated_at IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'created_role, created_at and updated_at must not be NULL';
    END IF;
    IF TG_OP = 'UPDATE' THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER silences_check BEFORE INSERT OR UPDATE ON vigil.silences
    FOR EACH ROW EXECUTE FUNCTION vigil._silences_check();

CREATE FUNCTION vigil.create_silence(
    matchers text[],
    ends_at timestamptz,
    comment text,
    created_by text DEFAULT NULL,
    starts_at timestamptz DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    new_id bigint;
BEGIN
    IF create_silence.ends_at IS NOT NULL AND create_silence.ends_at <= now() THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('ends_at must be in the future, got %s', create_silence.ends_at);
    END IF;
    -- Every active silence is matched against every alert event: bounded.
    -- (The lock makes concurrent creators take turns at the count.)
    LOCK TABLE vigil.silences IN SHARE ROW EXCLUSIVE MODE;
    IF (SELECT count(*) FROM vigil.silences s WHERE s.ends_at > now()) >= 1000 THEN
        RAISE EXCEPTION USING ERRCODE = '54000',
            MESSAGE = 'there are already 1000 pending or active silences; expire some first';
    END IF;
    INSERT INTO vigil.silences AS s (matchers, starts_at, ends_at, created_by, created_role, comment)
    VALUES (create_silence.matchers, coalesce(create_silence.starts_at, now()), create_silence.ends_at,
            coalesce(create_silence.created_by, session_user), session_user, create_silence.comment)
    RETURNING s.id INTO new_id;
    RETURN new_id;
END
$$;
COMMENT ON FUNCTION vigil.create_silence(text[], timestamptz, text, text, timestamptz) IS
    'Silence alerts whose labels satisfy every matcher (Alertmanager syntax) from starts_at (default now) to ends_at: '
    'they are recorded but not notified (nor escalated), and notified when the silence ends if still firing. '
    'created_by defaults to the session user; comment is required; at most 1 year long and 1000 silences pending or '
    'active at once (54000). Returns the id';

CREATE FUNCTION vigil.expire_silence(silence_id bigint) RETURNS vigil.silences
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s vigil.silences;
BEGIN
    IF expire_silence.silence_id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'silence_id must not be NULL';
    END IF;
    SELECT * INTO s FROM vigil.silences t WHERE t.id = expire_silence.silence_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('silence %s does not exist', expire_silence.silence_id);
    END IF;
    IF s.ends_at <= now() THEN
        RAISE EXCEPTION USING ERRCODE = '55000',
            MESSAGE = format('silence %s already ended at %s', s.id, s.ends_at);
    END IF;
    UPDATE vigil.silences t SET ends_at = now(), starts_at = least(t.starts_at, now())
    WHERE t.id = s.id RETURNING * INTO s;
    -- What it held back goes out at the worker's next round.
    PERFORM vigil._wake_worker();
    RETURN s;
END
$$;
COMMENT ON FUNCTION vigil.expire_silence(bigint) IS
    'End a pending or active silence now; alerts it held back that still fire are notified. ERROR P0002 when there '
    'is no such silence, 55000 when it already ended';

CREATE VIEW vigil.active_silences AS
SELECT s.id,
       CASE WHEN s.starts_at > now() THEN 'pending' ELSE 'active' END AS state,
       s.matchers, s.starts_at, s.ends_at, s.created_by, s.created_role, s.comment,
       (SELECT count(*) FROM vigil.alerts a
        WHERE a.status IN ('firing', 'acknowledged') AND vigil.labels_match(a.labels, s.matchers)) AS matching_alerts
FROM vigil.silences s
WHERE s.ends_at > now()
ORDER BY s.ends_at, s.id;
COMMENT ON VIEW vigil.active_silences IS
    'Silences not ended yet (pending: not started), with how many open alerts they match now';

-- Inhibition ------------------------------------------------------------

CREATE TABLE vigil.inhibit_rules (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text        NOT NULL UNIQUE CHECK (btrim(name) <> ''),
    source_matchers text[]      NOT NULL,
    target_matchers text[]      NOT NULL,
    equal           text[]      NOT NULL DEFAULT '{}',
    enabled         bool        NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE vigil.inhibit_rules IS
    'Inhibition (Alertmanager''s inhibit_rules): an open alert matching target_matchers is not notified while another '
    'open alert matches source_matchers and has the same values of the equal labels (an absent label equals an absent '
    'one); an alert matching both sides is inhibited only by one that does not';
SELECT pg_catalog.pg_extension_config_dump('vigil.inhibit_rules', '');
SELECT pg_catalog.pg_extension_config_dump('vigil.inhibit_rules_id_seq', '');

CREATE FUNCTION vigil._inhibit_rules_check() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM vigil._require_text(NEW.name, 'name');
    NEW.source_matchers := vigil._matchers(NEW.source_matchers, 'source_matchers');
    NEW.target_matchers := vigil._matchers(NEW.target_matchers, 'target_matchers');
    IF cardinality(NEW.source_matchers) = 0 OR cardinality(NEW.target_matchers) = 0 THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = 'source_matchers and target_matchers must each hold at least one matcher';
    END IF;
    IF NEW.equal IS NULL OR cardinality(NEW.equal) > 32 OR EXISTS (
            SELECT 1 FROM unnest(NEW.equal) l WHERE l IS NULL OR l !~ '^[A-Za-z_][A-Za-z0-9_]{0,127}$') THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = 'equal must be at most 32 label names ([A-Za-z_][A-Za-z0-9_]*)';
    END IF;
    NEW.equal := ARRAY(SELECT DISTINCT l FROM unnest(NEW.equal) l ORDER BY l);
    NEW.updated_at := vigil._config_row_check(NEW.enabled, NEW.created_at, NEW.updated_at, TG_OP);
    RETURN NEW;
END
$$;
CREATE TRIGGER inhibit_rules_check BEFORE INSERT OR UPDATE ON vigil.inhibit_rules
    FOR EACH ROW EXECUTE FUNCTION vigil._inhibit_rules_check();

CREATE FUNCTION vigil.create_inhibit_rule(
    name text,
    source_matchers text[],
    target_matchers text[],
    equal text[] DEFAULT '{}'
) RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    new_id bigint;
BEGIN
    IF EXISTS (SELECT 1 FROM vigil.inhibit_rules r WHERE r.name = create_inhibit_rule.name) THEN
        RAISE EXCEPTION USING ERRCODE = '42710',
            MESSAGE = format('inhibit rule "%s" already exists', create_inhibit_rule.name);
    END IF;
    INSERT INTO vigil.inhibit_rules AS r (name, source_matchers, target_matchers, equal)
    VALUES (create_inhibit_rule.name, create_inhibit_rule.source_matchers, create_inhibit_rule.target_matchers,
            coalesce(create_inhibit_rule.equal, '{}'))
    RETURNING r.id INTO new_id;
    RETURN new_id;
END
$$;
COMMENT ON FUNCTION vigil.create_inhibit_rule(text, text[], text[], text[]) IS
    'Add an inhibition rule: while an open alert matches source_matchers, open alerts matching target_matchers with '
    'the same equal labels are not notified (e.g. source severity="critical", target severity=~"low|medium", equal '
    '{entity}); when the source closes, those still firing are notified. Returns the id';

CREATE FUNCTION vigil.drop_inhibit_rule(name text) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM vigil.inhibit_rules r WHERE r.name = vigil._require_text(drop_inhibit_rule.name, 'name');
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = '42704',
            MESSAGE = format('inhibit rule "%s" does not exist', drop_inhibit_rule.name);
    END IF;
END
$$;
COMMENT ON FUNCTION vigil.drop_inhibit_rule(text) IS
    'Remove an inhibition rule (what it held back is notified at the worker''s next rounds); ERROR 42704 when unknown';

-- Suppression -----------------------------------------------------------

-- Alerts by labels, for the inhibition probe (labels @> ...). Not partial:
-- the probe filters on status outside an optimisation fence, so this index
-- is the one the planner can use even before the alerts were analyzed (the
-- partial indexes on open alerts would otherwise look cheaper). A short
-- pending list: a scan raising thousands of alerts probes right after
-- inserting them and every probe reads the list, while inserting straight
-- into the tree (fastupdate off) costs each raise about a third more.
CREATE INDEX alerts_labels_idx ON vigil.alerts USING gin (labels jsonb_path_ops) WITH (gin_pending_list_limit = 64);

CREATE FUNCTION vigil.alert_suppressed_by(alert vigil.alerts) RETURNS text
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    why text;
    r vigil.inhibit_rules;
    probe jsonb;
    both_sides bool;
    src bigint;
BEGIN
    IF alert.status NOT IN ('firing', 'acknowledged') THEN
        RETURN NULL;
    END IF;
    -- Active silences first (an index range), only then their matchers.
    SELECT 'silence ' || s.id INTO why
    FROM (SELECT t.id, t.matchers FROM vigil.silences t WHERE t.ends_at > now() AND t.starts_at <= now()
          OFFSET 0) s
    WHERE vigil.labels_match(alert.labels, s.matchers)
    ORDER BY s.id LIMIT 1;
    IF why IS NOT NULL THEN
        RETURN why;
    END IF;
    FOR r IN SELECT * FROM vigil.inhibit_rules t WHERE t.enabled ORDER BY t.name LOOP
        CONTINUE WHEN NOT vigil.labels_match(alert.labels, r.target_matchers);
        both_sides := vigil.labels_match(alert.labels, r.source_matchers);
        -- What a source must contain: the source side's equalities and the
        -- alert's values of the equal labels (the open-labels index).
        probe := vigil._matchers_equalities(r.source_matchers)
            || (SELECT coalesce(jsonb_object_agg(e, alert.labels ->> e), '{}')
                FROM unnest(r.equal) e WHERE alert.labels ? e);
        SELECT x.id INTO src
        FROM (SELECT s.id, s.status, s.labels FROM vigil.alerts s WHERE probe <> '{}' AND s.labels @> probe
              UNION ALL
              -- Nothing to probe by: the open alerts (their partial index).
              SELECT s.id, s.status, s.labels FROM vigil.alerts s
              WHERE probe = '{}' AND s.status IN ('firing', 'acknowledged')
              OFFSET 0) x
        WHERE x.status IN ('firing', 'acknowledged') AND x.id <> alert.id
          AND vigil.labels_match(x.labels, r.source_matchers)
          AND NOT EXISTS (SELECT 1 FROM unnest(r.equal) e WHERE NOT alert.labels ? e AND x.labels ? e)
          AND NOT (both_sides AND vigil.labels_match(x.labels, r.target_matchers))
        ORDER BY x.id LIMIT 1;
        IF src IS NOT NULL THEN
            RETURN format('inhibit rule %s (alert %s)', r.name, src);
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;
-- The probe must use the labels index: right after a scan raised many
-- alerts (not analyzed yet) the planner prefers a sequential scan of all of
-- them, once per alert checked. The setting holds for this function only.
ALTER FUNCTION vigil.alert_suppressed_by(vigil.alerts) SET enable_seqscan = off;
COMMENT ON FUNCTION vigil.alert_suppressed_by(vigil.alerts) IS
    'Why an open alert is not notified now: ''silence <id>'' (an active silence matches it), ''inhibit rule <name> '
    '(alert <id>)'' (an open source alert inhibits it), or NULL';

-- vigil.alert_suppressed_by for a set of alerts at once (the flush): the
-- active silences, the enabled rules and each rule's open source alerts
-- are read once for the whole set, and targets meet sources in a hash join
-- on the equal labels' values, instead of one index probe per alert.
-- Same rules and same reasons as alert_suppressed_by (the alerting pg tests
-- run both paths over the same cases).
CREATE FUNCTION vigil._suppressed_alerts(ids bigint[]) RETURNS TABLE (alert_id bigint, reason text)
LANGUAGE sql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    WITH sil AS MATERIALIZED (
        SELECT x.id, x.matchers FROM vigil.silences x WHERE x.ends_at > now() AND x.starts_at <= now()),
    t AS MATERIALIZED (
        SELECT a.id, a.labels,
               (SELECT min(s.id) FROM sil s WHERE vigil.labels_match(a.labels, s.matchers)) AS silence
        FROM vigil.alerts a
        WHERE a.id = ANY (ids) AND a.status IN ('firing', 'acknowledged')),
    rules AS MATERIALIZED (
        SELECT r.name, r.source_matchers, r.target_matchers, r.equal FROM vigil.inhibit_rules r WHERE r.enabled),
    targets AS MATERIALIZED (
        SELECT r.name, r.source_matchers, t.id, t.labels, ARRAY(SELECT t.labels -> e FROM unnest(r.equal) e) AS k
        FROM rules r JOIN t ON t.silence IS NULL AND vigil.labels_match(t.labels, r.target_matchers)),
    -- An absent label equals an absent one: the keys hold NULL for it,
    -- and array equality takes two NULL elements as equal.
    sources AS MATERIALIZED (
        SELECT r.name, r.target_matchers, s.id, s.labels, ARRAY(SELECT s.labels -> e FROM unnest(r.equal) e) AS k
        FROM rules r JOIN vigil.alerts s ON s.status IN ('firing', 'acknowledged')
        WHERE r.name IN (SELECT tg.name FROM targets tg) AND vigil.labels_match(s.labels, r.source_matchers)),
    -- A target matching both sides is inhibited only by a source that
    -- does not (checked only for the pairs that meet).
    inhibited AS (
        SELECT DISTINCT ON (tg.id) tg.id, format('inhibit rule %s (alert %s)', tg.name, src.id) AS reason
        FROM targets tg
        JOIN sources src ON src.name = tg.name AND src.k = tg.k AND src.id <> tg.id
        WHERE NOT (vigil.labels_match(tg.labels, tg.source_matchers)
                   AND vigil.labels_match(src.labels, src.target_matchers))
        ORDER BY tg.id, tg.name, src.id)
    SELECT t.id, 'silence ' || t.silence FROM t WHERE t.silence IS NOT NULL
    UNION ALL
    SELECT i.id, i.reason FROM inhibited i
$$;
-- Once per flush: the joins of targets and sources must hash (the CTEs'
-- row estimates are 1, which would pick a nested loop over every pair);
-- the cost that setting adds to the unavoidable nested loops must not
-- trigger JIT compilation (seconds, for a query that runs once).
ALTER FUNCTION vigil._suppressed_alerts(bigint[]) SET enable_nestloop = off;
ALTER FUNCTION vigil._suppressed_alerts(bigint[]) SET jit = off;
COMMENT ON FUNCTION vigil._suppressed_alerts(bigint[]) IS
    'Internal: vigil.alert_suppressed_by for a set of alerts at once (the open ones of ids that are suppressed, and '
    'why), reading the silences, rules and source alerts once';

-- Whether anything can suppress an alert now (lets hot paths skip the check).
CREATE FUNCTION vigil._suppression_active() RETURNS bool
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM vigil.silences s WHERE s.ends_at > now() AND s.starts_at <= now())
        OR EXISTS (SELECT 1 FROM vigil.inhibit_rules r WHERE r.enabled)
$$;
COMMENT ON FUNCTION vigil._suppression_active() IS
    'Internal: whether a silence is active or an inhibition rule enabled now';

-- Notifications an ungrouped channel did not get because the alert was
-- suppressed; released (sent) when it no longer is, dropped when it closes.
CREATE TABLE vigil.held_notifications (
    channel_id bigint      NOT NULL REFERENCES vigil.channels (id) ON DELETE CASCADE,
    alert_id   bigint      NOT NULL REFERENCES vigil.alerts (id) ON DELETE CASCADE,
    event      text        NOT NULL CHECK (event IN ('new', 'escalated')),
    reason     text        NOT NULL,
    held_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel_id, alert_id)
);
CREATE INDEX held_notifications_alert_id_idx ON vigil.held_notifications (alert_id);
COMMENT ON TABLE vigil.held_notifications IS
    'Alert notifications of ungrouped channels held back by a silence or an inhibition: sent by the worker when the '
    'alert is no longer suppressed and still open, dropped (with its closing notification) when it closes first';
SELECT pg_catalog.pg_extension_config_dump('vigil.held_notifications', '');

-- Escalation ------------------------------------------------------------

CREATE TABLE vigil.escalation_policies (
    id           bigint         GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text           NOT NULL UNIQUE CHECK (btrim(name) <> ''),
    matchers     text[]         NOT NULL DEFAULT '{}',
    min_severity vigil.severity NOT NULL DEFAULT 'high',
    steps        jsonb          NOT NULL CHECK (jsonb_typeof(steps) = 'array'),
    "repeat"     bool           NOT NULL DEFAULT true,
    enabled      bool           NOT NULL DEFAULT true,
    created_at   timestamptz    NOT NULL DEFAULT now(),
    updated_at   timestamptz    NOT NULL DEFAULT now()
);
COMMENT ON TABLE vigil.escalation_policies IS
    'Escalation chains (Grafana OnCall''s): an alert at or above min_severity matching the matchers that is still '
    'firing unacknowledged after a step''s wait notifies that step''s channels, step after step (and, with repeat, '
    'the chain again) until it is acknowledged or closed';
COMMENT ON COLUMN vigil.escalation_policies.steps IS
    'JSON array of {"after": interval, "channels": [names]}: "after" counts from the alert firing (first step) or '
    'from the previous step';
SELECT pg_catalog.pg_extension_config_dump('vigil.escalation_policies', '');
SELECT pg_catalog.pg_extension_config_dump('vigil.escalation_policies_id_seq', '');

CREATE FUNCTION vigil._escalation_policies_check() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    st jsonb;
    i int := 0;
    after interval;
    total interval := interval '0';
    canonical jsonb := '[]';
BEGIN
    PERFORM vigil._require_text(NEW.name, 'name');
    NEW.matchers := vigil._matchers(NEW.matchers, 'matchers');
    IF NEW.min_severity IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'min_severity must not be NULL';
    END IF;
    IF NEW.steps IS NULL OR jsonb_typeof(NEW.steps) <> 'array'
       OR jsonb_array_length(NEW.steps) NOT BETWEEN 1 AND 20 THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = 'steps must be a JSON array of 1 to 20 {"after": interval, "channels": [names]}';
    END IF;
    FOR st IN SELECT x FROM jsonb_array_elements(NEW.steps) x LOOP
        i := i + 1;
        IF jsonb_typeof(st) <> 'object' OR jsonb_typeof(st -> 'after') IS DISTINCT FROM 'string'
           OR jsonb_typeof(st -> 'channels') IS DISTINCT FROM 'array'
           OR EXISTS (SELECT 1 FROM jsonb_object_keys(st) k WHERE k NOT IN ('after', 'channels'))
           OR EXISTS (SELECT 1 FROM jsonb_array_elements(st -> 'channels') c WHERE jsonb_typeof(c) <> 'string') THEN
            RAISE EXCEPTION USING ERRCODE = '22023',
                MESSAGE = format('steps[%s] must be {"after": interval, "channels": [channel names]}', i);
        END IF;
        BEGIN
            after := (st ->> 'after')::interval;
        EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow
                       OR invalid_parameter_value THEN
            RAISE EXCEPTION USING ERRCODE = '22023',
                MESSAGE = format('steps[%s].after is not an interval: %s', i, left(st ->> 'after', 100));
        END;
        -- Days and time only, none negative: what the check adds up is what
        -- the clock will add (months and mixed signs are not).
        IF extract(year FROM after) <> 0 OR extract(month FROM after) <> 0 OR extract(day FROM after) < 0
           OR after - make_interval(days => extract(day FROM after)::int) < interval '0' THEN
            RAISE EXCEPTION USING ERRCODE = '22023',
                MESSAGE = format('steps[%s].after must be days and time, none negative (no months), got %s', i, after);
        END IF;
        IF after > interval '7 days' THEN
            RAISE EXCEPTION USING ERRCODE = '22023',
                MESSAGE = format('steps[%s].after must be from 0 to 7 days, got %s', i, after);
        END IF;
        total := total + after;
        canonical := canonical || jsonb_build_array(jsonb_build_object(
            'after', after::text,
            'channels', to_jsonb(vigil._channel_names(
                ARRAY(SELECT jsonb_array_elements_text(st -> 'channels')), format('steps[%s].channels', i)))));
    END LOOP;
    IF NEW."repeat" IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'repeat must not be NULL';
    END IF;
    -- A chain that repeats pages at most once a minute.
    IF NEW."repeat" AND total < interval '1 minute' THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('a repeating chain must take at least 1 minute in all; its steps take %s', total);
    END IF;
    NEW.steps := canonical;
    NEW.updated_at := vigil._config_row_check(NEW.enabled, NEW.created_at, NEW.updated_at, TG_OP);
    RETURN NEW;
END
$$;
CREATE TRIGGER escalation_policies_check BEFORE INSERT OR UPDATE ON vigil.escalation_policies
    FOR EACH ROW EXECUTE FUNCTION vigil._escalation_policies_check();

CREATE FUNCTION vigil.create_escalation_policy(
    name text,
    steps jsonb,
    matchers text[] DEFAULT '{}',
    min_severity vigil.severity DEFAULT 'high',
    "repeat" bool DEFAULT true
) RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    new_id bigint;
BEGIN
    IF EXISTS (SELECT 1 FROM vigil.escalation_policies p WHERE p.name = create_escalation_policy.name) THEN
        RAISE EXCEPTION USING ERRCODE = '42710',
            MESSAGE = format('escalation policy "%s" already exists', create_escalation_policy.name);
    END IF;
    INSERT INTO vigil.escalation_policies AS p (name, steps, matchers, min_severity, "repeat")
    VALUES (create_escalation_policy.name, create_escalation_policy.steps, create_escalation_policy.matchers,
            create_escalation_policy.min_severity, create_escalation_policy."repeat")
    RETURNING p.id INTO new_id;
    RETURN new_id;
END
$$;
COMMENT ON FUNCTION vigil.create_escalation_policy(text, jsonb, text[], vigil.severity, bool) IS
    'Add an escalation chain, e.g. steps ''[{"after": "10 minutes", "channels": ["oncall"]}, {"after": "20 minutes", '
    '"channels": ["manager"]}]'': a firing alert at or above min_severity (default high) matching the matchers that '
    'nobody acknowledged within 10 minutes pages oncall, 20 minutes later manager, and (repeat, the default) then the '
    'chain again, until acknowledged or closed. One message per step and channel lists every alert due. Returns the id';

CREATE FUNCTION vigil.drop_escalation_policy(name text) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM vigil.escalation_policies p WHERE p.name = vigil._require_text(drop_escalation_policy.name, 'name');
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = '42704',
            MESSAGE = format('escalation policy "%s" does not exist', drop_escalation_policy.name);
    END IF;
END
$$;
COMMENT ON FUNCTION vigil.drop_escalation_policy(text) IS
    'Remove an escalation policy and stop its running escalations; ERROR 42704 when unknown';

-- One row per alert a policy escalates: the next step and when it is due.
CREATE TABLE vigil.escalations (
    policy_id    bigint      NOT NULL REFERENCES vigil.escalation_policies (id) ON DELETE CASCADE,
    alert_id     bigint      NOT NULL REFERENCES vigil.alerts (id) ON DELETE CASCADE,
    step         int         NOT NULL DEFAULT 0 CHECK (step >= 0),
    cycles       int         NOT NULL DEFAULT 0 CHECK (cycles >= 0),
    next_at      timestamptz NOT NULL,
    last_step_at timestamptz,
    started_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (policy_id, alert_id)
);
CREATE INDEX escalations_next_at_idx ON vigil.escalations (next_at);
CREATE INDEX escalations_alert_id_idx ON vigil.escalations (alert_id);
COMMENT ON TABLE vigil.escalations IS
    'Running escalations: per policy and alert, the next step (0-based), how many times the chain ran, when it is due';
SELECT pg_catalog.pg_extension_config_dump('vigil.escalations', '');

-- Called for an alert that fires (new, or escalated into a policy's range)
-- in the raising transaction: starts the policies it falls under.
CREATE FUNCTION vigil._start_escalations(alert vigil.alerts) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF alert.status <> 'firing' THEN
        RETURN;
    END IF;
    INSERT INTO vigil.escalations (policy_id, alert_id, next_at)
    SELECT p.id, alert.id, now() + (p.steps -> 0 ->> 'after')::interval
    FROM vigil.escalation_policies p
    WHERE p.enabled AND alert.severity >= p.min_severity AND vigil.labels_match(alert.labels, p.matchers)
    ON CONFLICT (policy_id, alert_id) DO NOTHING;
END
$$;
COMMENT ON FUNCTION vigil._start_escalations(vigil.alerts) IS
    'Internal: starts the escalation of a firing alert under every enabled policy it matches';

-- The alerts of a message: at most 200, firing first, worst and newest
-- first, with long texts cut; listed says how many went in.
CREATE FUNCTION vigil._run_escalations(max_rows int DEFAULT 1000) RETURNS int
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    e record;
    nsteps int;
    nstep int;
    ncycles int;
    due jsonb := '[]';     -- each due escalation: what it pages and where its chain goes next
    b record;
    c vigil.channels;
    alertname text;
    sent int;
    queued int := 0;
    failure text;
BEGIN
    -- Acknowledged or closed: the chain stops.
    DELETE FROM vigil.escalations t USING vigil.alerts a
    WHERE a.id = t.alert_id AND a.status <> 'firing';
    FOR e IN
        SELECT t.policy_id, t.alert_id, t.step, t.cycles, p.name, p.steps, p."repeat" AS rep, p.enabled,
               a AS alert
        FROM vigil.escalations t
        JOIN vigil.escalation_policies p ON p.id = t.policy_id
        JOIN vigil.alerts a ON a.id = t.alert_id
        WHERE t.next_at <= now()
        ORDER BY t.next_at
        LIMIT max_rows
        FOR UPDATE OF t SKIP LOCKED
    LOOP
        IF NOT e.enabled OR (e.alert).status <> 'firing' THEN
            DELETE FROM vigil.escalations t WHERE t.policy_id = e.policy_id AND t.alert_id = e.alert_id;
            CONTINUE;
        END IF;
        -- Silenced or inhibited: no page now; the chain waits where it is.
        IF vigil.alert_suppressed_by(e.alert) IS NOT NULL THEN
            UPDATE vigil.escalations t SET next_at = now() + interval '1 minute'
            WHERE t.policy_id = e.policy_id AND t.alert_id = e.alert_id;
            CONTINUE;
        END IF;
        nsteps := jsonb_array_length(e.steps);
        nstep := e.step + 1;
        ncycles := e.cycles;
        IF nstep >= nsteps THEN
            -- The last step: without repeat the chain ends once it paged.
            nstep := CASE WHEN e.rep THEN 0 END;
            ncycles := ncycles + 1;
        END IF;
        due := due || jsonb_build_array(jsonb_build_object(
            'policy', e.name, 'policy_id', e.policy_id, 'step', least(e.step, nsteps - 1), 'alert', e.alert_id,
            'next', nstep, 'cycles', ncycles,
            'next_at', now() + (e.steps -> coalesce(nstep, 0) ->> 'after')::interval));
    END LOOP;
    -- One message per policy, step and channel, listing the alerts due.
    -- Each policy and step on its own: one that cannot be sent is retried
    -- in a minute (its chains stay where they are) and never holds back the
    -- others.
    FOR b IN
        SELECT x ->> 'policy' AS policy, (x ->> 'step')::int AS step,
               array_agg((x ->> 'alert')::bigint ORDER BY (x ->> 'alert')::bigint) AS ids, jsonb_agg(x) AS items
        FROM jsonb_array_elements(due) x
        GROUP BY 1, 2
        ORDER BY 1, 2
    LOOP
        BEGIN
            -- alertname: the one the alerts share, else the policy's name.
            SELECT CASE WHEN count(DISTINCT a.labels ->> 'alertname') = 1 THEN min(a.labels ->> 'alertname')
                        ELSE b.policy END
            INTO alertname FROM vigil.alerts a WHERE a.id = ANY (b.ids);
            sent := 0;
            FOR c IN
                SELECT ch.* FROM vigil.channels ch
                JOIN vigil.escalation_policies p ON p.name = b.policy
                WHERE ch.enabled AND ch.name IN (SELECT jsonb_array_elements_text(p.steps -> b.step -> 'channels'))
                ORDER BY ch.id
            LOOP
                INSERT INTO vigil.notifications (channel_id, alert_id, event, notify_key, payload)
                VALUES (c.id, CASE WHEN cardinality(b.ids) = 1 THEN b.ids[1] END, 'escalation',
                        'escalation:' || b.policy || ':' || (b.step + 1),
                        CASE WHEN c.kind = 'pg_notify'
                             THEN jsonb_build_object('event', 'escalation', 'policy', left(b.policy, 200),
                                                     'step', b.step + 1, 'alert_ids', to_jsonb(b.ids[1:300]))
                             ELSE vigil._group_message(c.kind, c.name, b.ids,
                                      jsonb_build_object('alertname', alertname, 'escalation_policy', b.policy,
                                                         'escalation_step', (b.step + 1)::text),
                                      vigil._max_payload_bytes()) END);
                sent := sent + 1;
            END LOOP;
            -- Paged: the chains move on (or end).
            DELETE FROM vigil.escalations t USING jsonb_array_elements(b.items) x
            WHERE x -> 'next' = 'null'::jsonb
              AND t.policy_id = (x ->> 'policy_id')::bigint AND t.alert_id = (x ->> 'alert')::bigint;
            UPDATE vigil.escalations t
            SET step = (x ->> 'next')::int, cycles = (x ->> 'cycles')::int, last_step_at = now(),
                next_at = (x ->> 'next_at')::timestamptz
            FROM jsonb_array_elements(b.items) x
            WHERE x -> 'next' <> 'null'::jsonb
              AND t.policy_id = (x ->> 'policy_id')::bigint AND t.alert_id = (x ->> 'alert')::bigint;
            queued := queued + sent;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS failure = MESSAGE_TEXT;
            RAISE WARNING USING ERRCODE = '08006',
                MESSAGE = format('pg_vigil: escalation %s step %s could not be sent (retried in 1 minute): %s',
                                 b.policy, b.step + 1, failure);
            UPDATE vigil.escalations t SET next_at = now() + interval '1 minute'
            FROM jsonb_array_elements(b.items) x
            WHERE t.policy_id = (x ->> 'policy_id')::bigint AND t.alert_id = (x ->> 'alert')::bigint;
        END;
    END LOOP;
    RETURN queued;
END
$$;
COMMENT ON FUNCTION vigil._run_escalations(int) IS
    'Internal (the worker, each round): stops the escalations of alerts acknowledged or closed, runs the due steps '
    '(a silenced or inhibited alert waits), one message per policy, step and channel (a policy step that cannot be '
    'sent warns and is retried in a minute, its chains unmoved); returns how many were queued';

-- Release ---------------------------------------------------------------

CREATE FUNCTION vigil._release_held(max_rows int DEFAULT 5000) RETURNS int
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    h record;
    released int := 0;
BEGIN
    -- Ungrouped channels: what was held is sent once the alert is no longer
    -- suppressed (a closed alert's row went with its closing event).
    FOR h IN
        SELECT t.channel_id, t.alert_id, t.event, a AS alert, ch AS channel
        FROM vigil.held_notifications t
        JOIN vigil.alerts a ON a.id = t.alert_id
        JOIN vigil.channels ch ON ch.id = t.channel_id
        ORDER BY t.held_at
        LIMIT max_rows
        FOR UPDATE OF t SKIP LOCKED
    LOOP
        IF (h.alert).status IN ('firing', 'acknowledged') AND vigil.alert_suppressed_by(h.alert) IS NOT NULL THEN
            CONTINUE;
        END IF;
        DELETE FROM vigil.held_notifications t WHERE t.channel_id = h.channel_id AND t.alert_id = h.alert_id;
        IF (h.alert).status IN ('firing', 'acknowledged') THEN
            released := released + vigil._enqueue_to(h.channel, h.alert, h.event);
        END IF;
    END LOOP;
    -- Grouped channels: a group holding an alert that is no longer
    -- suppressed (or closed) is due now; the flush sends what changed.
    UPDATE vigil.notification_groups g SET flush_at = now()
    WHERE cardinality(g.held) > 0 AND (g.flush_at IS NULL OR g.flush_at > now())
      AND EXISTS (SELECT 1 FROM vigil.alerts a WHERE a.id = ANY (g.held)
                  AND (a.status NOT IN ('firing', 'acknowledged') OR vigil.alert_suppressed_by(a) IS NULL));
    RETURN released;
END
$$;
COMMENT ON FUNCTION vigil._release_held(int) IS
    'Internal (the worker, every few seconds while anything is held): sends the held notifications of alerts no '
    'longer silenced or inhibited (at most max_rows held rows per call, oldest first), and makes groups holding such '
    'alerts due; returns how many rows it queued';

-- Channels named by routes and escalation steps --------------------------

CREATE FUNCTION vigil._channel_references() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    user_name text;
BEGIN
    IF TG_OP = 'DELETE' THEN
        SELECT 'route "' || r.name || '"' INTO user_name FROM vigil.routes r WHERE OLD.name = ANY (r.channels) LIMIT 1;
        IF user_name IS NULL THEN
            SELECT 'escalation policy "' || p.name || '"' INTO user_name FROM vigil.escalation_policies p
            WHERE EXISTS (SELECT 1 FROM jsonb_array_elements(p.steps) st
                          WHERE st -> 'channels' ? OLD.name) LIMIT 1;
        END IF;
        IF user_name IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = '2BP01',
                MESSAGE = format('cannot drop channel "%s": %s sends to it', OLD.name, user_name),
                HINT = 'Remove the channel from the route or policy first.';
        END IF;
        RETURN OLD;
    END IF;
    -- A rename follows into the routes and policies that name the channel.
    UPDATE vigil.routes r SET channels = array_replace(r.channels, OLD.name, NEW.name)
    WHERE OLD.name = ANY (r.channels);
    UPDATE vigil.escalation_policies p
    SET steps = (SELECT jsonb_agg(jsonb_set(st, '{channels}',
                     (SELECT jsonb_agg(CASE WHEN c = to_jsonb(OLD.name) THEN to_jsonb(NEW.name) ELSE c END)
                      FROM jsonb_array_elements(st -> 'channels') c)) ORDER BY i)
                 FROM jsonb_array_elements(p.steps) WITH ORDINALITY s(st, i))
    WHERE EXISTS (SELECT 1 FROM jsonb_array_elements(p.steps) st WHERE st -> 'channels' ? OLD.name);
    RETURN NEW;
END
$$;
CREATE TRIGGER channels_references_delete BEFORE DELETE ON vigil.channels
    FOR EACH ROW EXECUTE FUNCTION vigil._channel_references();
CREATE TRIGGER channels_references_rename AFTER UPDATE OF name ON vigil.channels
    FOR EACH ROW WHEN (OLD.name IS DISTINCT FROM NEW.name) EXECUTE FUNCTION vigil._channel_references();

REVOKE ALL ON vigil.routes, vigil.silences, vigil.inhibit_rules, vigil.escalation_policies, vigil.escalations,
    vigil.held_notifications FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION
    vigil.create_route(text, text[], text[], bool, int),
    vigil.drop_route(text),
    vigil.create_silence(text[], timestamptz, text, text, timestamptz),
    vigil.expire_silence(bigint),
    vigil.create_inhibit_rule(text, text[], text[], text[]),
    vigil.drop_inhibit_rule(text),
    vigil.create_escalation_policy(text, jsonb, text[], vigil.severity, bool),
    vigil.drop_escalation_policy(text),
    vigil._start_escalations(vigil.alerts),
    vigil._run_escalations(int),
    vigil._release_held(int)
FROM PUBLIC;
