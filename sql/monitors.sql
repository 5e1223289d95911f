-- Monitors and scans (SPEC §3.4): a monitor watches one of the user's tables
-- (kind + options, validated and turned into a query by src/monitor);
-- vigil.scan() runs the enabled monitors, raises, deduplicates, groups and
-- auto-resolves alerts and records the run. early_kill monitors decide in a
-- trigger on the interactions table, inside the writing transaction.

CREATE TABLE vigil.monitors (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name           text        NOT NULL UNIQUE CHECK (btrim(name) <> ''),
    -- One of vigil.monitor_kinds(), checked with the options by
    -- vigil._monitors_guard (the list is written once, in src/monitor/kinds).
    kind           text        NOT NULL,
    -- Names survive dump/restore (and pg_upgrade refuses reg* columns);
    -- source_oid pins the relation they named when the row was written
    -- (vigil._monitors_guard sets it): a scan never follows a name to
    -- another relation.
    source_schema  name        NOT NULL,
    source_table   name        NOT NULL,
    source_oid     oid,
    -- The role whose SELECT rights bound what the monitor may report;
    -- set to the writing role by vigil._monitors_guard.
    created_by     name        NOT NULL DEFAULT current_user,
    timeout_ms     int         CHECK (timeout_ms > 0),
    options        jsonb       NOT NULL CHECK (jsonb_typeof(options) = 'object'),
    enabled        bool        NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    last_scan_at   timestamptz,
    last_anomalies int,
    last_error     text
);
COMMENT ON TABLE vigil.monitors IS
    'Monitors: kind, source table and options (with defaults filled in); written through vigil.create_monitor';
COMMENT ON COLUMN vigil.monitors.last_error IS 'SQLSTATE and message of the last scan of this monitor, NULL when it succeeded';
SELECT pg_catalog.pg_extension_config_dump('vigil.monitors', '');
SELECT pg_catalog.pg_extension_config_dump('vigil.monitors_id_seq', '');

CREATE TABLE vigil.variant_monitoring (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    monitor          text        NOT NULL REFERENCES vigil.monitors (name) ON UPDATE CASCADE ON DELETE CASCADE,
    variant          text        NOT NULL CHECK (btrim(variant) <> ''),
    persona          text,
    post             text,
    expected_rate    float8      NOT NULL CHECK (expected_rate > 0 AND expected_rate < 'Infinity'),
    kill_threshold   float8      NOT NULL CHECK (kill_threshold > 0 AND kill_threshold <= 1),
    min_interactions int         NOT NULL CHECK (min_interactions > 0),
    timeout          interval    NOT NULL CHECK (timeout > interval '0'),
    status           text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'killed', 'expired')),
    started_at       timestamptz NOT NULL DEFAULT now(),
    decided_at       timestamptz,
    reason           text,
    views            bigint      NOT NULL DEFAULT 0,
    interactions     bigint      NOT NULL DEFAULT 0,
    alert_id         bigint,
    notification_id  bigint,
    UNIQUE (monitor, variant)
);
COMMENT ON TABLE vigil.variant_monitoring IS
    'Variants under early-kill monitoring (scenario 3): counts since registration, and the decision (killed, expired) with its reason';
SELECT pg_catalog.pg_extension_config_dump('vigil.variant_monitoring', '');
SELECT pg_catalog.pg_extension_config_dump('vigil.variant_monitoring_id_seq', '');

-- Planning ---------------------------------------------------------------

CREATE FUNCTION vigil._source_columns(source regclass) RETURNS jsonb
LANGUAGE sql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(jsonb_object_agg(a.attname, jsonb_build_object(
        'category', CASE
            WHEN a.atttypid IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype) THEN 'time'
            WHEN t.typcategory = 'N' THEN 'numeric'
            WHEN t.typcategory = 'S' THEN 'text'
            WHEN t.typcategory = 'B' THEN 'bool'
            ELSE 'other' END,
        'type', vigil._base_type(a.atttypid, a.atttypmod))), '{}')
    FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
    WHERE a.attrelid = source AND a.attnum > 0 AND NOT a.attisdropped
$$;
COMMENT ON FUNCTION vigil._source_columns(regclass) IS
    'Internal: {"column": {"category": time|numeric|text|bool|other, "type": ...}} for the monitor planner (domains as their base type)';

CREATE FUNCTION vigil._source_rollup(source regclass) RETURNS jsonb
LANGUAGE sql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce((SELECT jsonb_build_object(
        'bucket_seconds', extract(epoch FROM d.bucket), 'group_by', to_jsonb(d.group_by),
        'measures', coalesce((SELECT jsonb_object_agg(m.key, m.value->>'agg') FROM jsonb_each(d.measures) m), '{}'))
    FROM vigil.rollup_defs d WHERE d.summary = $1), 'null')
$$;
COMMENT ON FUNCTION vigil._source_rollup(regclass) IS
    'Internal: for a rollup''s summary table, {"bucket_seconds", "group_by", "measures": {"name": agg}} for the monitor '
    'planner (monitors read its buckets instead of raw rows); JSON null for any other relation';

-- Every write of a monitor's definition, through create_monitor or direct
-- DML, is validated here the same way (SPEC §3.6): the source is resolved
-- by name and pinned by oid, the writer becomes created_by and must be
-- able to SELECT it, and the options are checked and normalised by the
-- planner. A superuser's write (dump/restore) keeps the created_by given.
CREATE FUNCTION vigil._monitors_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    src regclass;
    relkind "char";
    sch name;
    is_super bool := (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user);
BEGIN
    IF TG_OP = 'UPDATE' AND (NEW.kind, NEW.source_schema, NEW.source_table, NEW.source_oid, NEW.options, NEW.created_by)
            IS NOT DISTINCT FROM (OLD.kind, OLD.source_schema, OLD.source_table, OLD.source_oid, OLD.options, OLD.created_by) THEN
        RETURN NEW;
    END IF;
    IF NOT is_super OR NEW.created_by IS NULL THEN
        NEW.created_by := current_user;
    ELSIF NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = NEW.created_by) THEN
        RAISE EXCEPTION USING ERRCODE = '42704', MESSAGE = format('created_by: role "%s" does not exist', NEW.created_by);
    END IF;
    src := to_regclass(format('%I.%I', NEW.source_schema, NEW.source_table));
    IF src IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '42P01',
            MESSAGE = format('source: relation %I.%I does not exist', NEW.source_schema, NEW.source_table);
    END IF;
    SELECT c.relkind, n.nspname INTO relkind, sch FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = src;
    -- A kind that decides on write adds a trigger to its source
    -- (vigil._monitor_kind_trigger): a table, not a view.
    IF relkind NOT IN ('r', 'p', 'v', 'm', 'f')
       OR (vigil._monitor_kind_trigger(NEW.kind) IS NOT NULL AND relkind NOT IN ('r', 'p')) THEN
        RAISE EXCEPTION USING ERRCODE = '42809',
            MESSAGE = format('source %s must be a %s', src,
                             CASE WHEN vigil._monitor_kind_trigger(NEW.kind) IS NOT NULL
                                  THEN format('table (%s adds a trigger to it)', NEW.kind)
                                  ELSE 'table, view or materialized view' END);
    END IF;
    -- vigil.health is the one pg_vigil relation a monitor may watch (the
    -- health kind, which the planner pins to it; it runs as the creator).
    IF (sch IN ('vigil', 'pg_catalog', 'information_schema') OR sch LIKE 'pg\_toast%')
       AND src IS DISTINCT FROM 'vigil.health'::regclass THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('source %s is a pg_vigil or system table', src);
    END IF;
    -- A superuser's write may be a restore, run before the source's grants:
    -- every scan checks again.
    IF NOT is_super AND NOT has_table_privilege(NEW.created_by, src, 'SELECT') THEN
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = format('permission denied: source %s is not readable by %s', src, NEW.created_by);
    END IF;
    NEW.source_oid := src;
    PERFORM vigil._require_sane_json(NEW.options, 'options');
    NEW.options := vigil._monitor_plan(NEW.kind, NEW.options, format('%I.%I', NEW.source_schema, NEW.source_table),
                                       vigil._source_columns(src), vigil._source_rollup(src))->'options';
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION vigil._monitors_guard() IS
    'Internal: validates every insert or definition change of vigil.monitors like vigil.create_monitor (source pinned by oid, '
    'writer recorded as created_by and able to SELECT it, options checked)';
CREATE TRIGGER monitors_guard BEFORE INSERT OR UPDATE ON vigil.monitors
    FOR EACH ROW EXECUTE FUNCTION vigil._monitors_guard();

CREATE FUNCTION vigil._monitor_by_name(name text) RETURNS vigil.monitors
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    m vigil.monitors;
BEGIN
    PERFORM vigil._require_text(name, 'name');
    SELECT * INTO m FROM vigil.monitors t WHERE t.name = _monitor_by_name.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = '42704', MESSAGE = format('monitor "%s" does not exist', name);
    END IF;
    RETURN m;
END
$$;

-- Administration ---------------------------------------------------------

CREATE FUNCTION vigil.create_monitor(name text, kind text, source regclass, options jsonb DEFAULT '{}') RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp SET standard_conforming_strings = on AS $$
#variable_conflict use_variable
DECLARE
    sch name;
    tbl name;
    relkind "char";
    plan jsonb;
    cols jsonb;
    new_id bigint;
    key text;
    col text;
    vals jsonb;
    err_state text;
    err_text text;
    citus_table bool := false;
    -- The trigger function of a kind that decides on write (else NULL).
    on_write text := vigil._monitor_kind_trigger(kind);
BEGIN
    PERFORM vigil._require_text(name, 'name'), vigil._require_text(kind, 'kind');
    IF source IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'source must not be NULL';
    END IF;
    IF options IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'options must not be NULL (pass ''{}'' for defaults)';
    END IF;
    PERFORM vigil._require_sane_json(options, 'options');
    SELECT n.nspname, c.relname, c.relkind INTO sch, tbl, relkind
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = source;
    IF relkind NOT IN ('r', 'p', 'v', 'm', 'f') OR (on_write IS NOT NULL AND relkind NOT IN ('r', 'p')) THEN
        RAISE EXCEPTION USING ERRCODE = '42809',
            MESSAGE = format('source %s must be a %s', source,
                             CASE WHEN on_write IS NOT NULL THEN format('table (%s adds a trigger to it)', kind)
                                  ELSE 'table, view or materialized view' END);
    END IF;
    -- Citus fires a distributed table's triggers on its workers' shards,
    -- where vigil's tables are not: a kind that decides on write needs a
    -- local table.
    IF on_write IS NOT NULL AND to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
        EXECUTE 'SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid OPERATOR(pg_catalog.=) $1)'
            INTO citus_table USING source;
    END IF;
    IF citus_table THEN
        RAISE EXCEPTION USING ERRCODE = '0A000',
            MESSAGE = format('source %s is a table Citus manages; %s monitors need a local table (their trigger runs where the rows are written)', source, kind);
    END IF;
    IF sch = 'vigil' AND source IS DISTINCT FROM 'vigil.health'::regclass THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('source %s is one of pg_vigil''s own tables', source);
    END IF;
    IF NOT has_table_privilege(source, 'SELECT') THEN
        RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = format('permission denied: source %s is not readable by %s', source, current_user);
    END IF;
    IF EXISTS (SELECT 1 FROM vigil.monitors m WHERE m.name = name) THEN
        RAISE EXCEPTION USING ERRCODE = '42710', MESSAGE = format('name: monitor "%s" already exists', name);
    END IF;

    cols := vigil._source_columns(source);
    plan := vigil._monitor_plan(kind, options, format('%I.%I', sch, tbl), cols, vigil._source_rollup(source));
    -- Filter values must read as the column's type. Checked here, as the
    -- caller, only for pg_catalog's types: a cast to any other type may be
    -- its owner's code (CREATE CAST), so those values are checked by the
    -- try-run below, which runs as the source's owner, restricted.
    FOR key, col, vals IN
        SELECT k.key, f.key, f.value
        FROM unnest(ARRAY['filter', 'converted']) AS k(key), jsonb_each(plan->'options'->k.key) AS f
        WHERE jsonb_typeof(f.value) = 'array'
          AND (SELECT t.typnamespace = 'pg_catalog'::regnamespace FROM pg_type t
               WHERE t.oid = (cols->f.key->>'type')::regtype)
    LOOP
        BEGIN
            EXECUTE format('SELECT ARRAY(SELECT jsonb_array_elements_text($1))::%s[]', cols->col->>'type') USING vals;
        EXCEPTION WHEN data_exception THEN
            GET STACKED DIAGNOSTICS err_state = RETURNED_SQLSTATE, err_text = MESSAGE_TEXT;
            RAISE EXCEPTION USING ERRCODE = err_state, MESSAGE = format('options.%s.%s: %s', key, col, err_text);
        END;
    END LOOP;
    INSERT INTO vigil.monitors (name, kind, source_schema, source_table, options)
    VALUES (name, kind, sch, tbl, plan->'options')
    RETURNING id INTO new_id;

    IF on_write IS NOT NULL THEN
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %I.%I REFERENCING NEW TABLE AS vigil_new '
                       'FOR EACH STATEMENT EXECUTE FUNCTION %s(%L)',
                       'vigil_' || kind || '_' || new_id, sch, tbl, on_write::regproc, new_id);
    ELSE
        -- Run the query once, the way scans run it (as the source's owner,
        -- restricted), so that what only the executor can check fails now.
        PERFORM vigil._monitor_run(new_id);
    END IF;
    RETURN new_id;
END
$$;
COMMENT ON FUNCTION vigil.create_monitor(text, text, regclass, jsonb) IS
    'Create a monitor of one of the kinds vigil.monitor_kinds() lists on a table; options are validated '
    '(unknown keys, types, columns, threshold order) and the scan query is tried once. early_kill adds an AFTER INSERT '
    'statement trigger to the table. Returns the monitor id';

CREATE FUNCTION vigil.drop_monitor(name text) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    m vigil.monitors := vigil._monitor_by_name(name);
BEGIN
    IF vigil._monitor_kind_trigger(m.kind) IS NOT NULL AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = m.source_oid) THEN
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', 'vigil_' || m.kind || '_' || m.id, m.source_oid::regclass);
    END IF;
    DELETE FROM vigil.monitors t WHERE t.id = m.id;
END
$$;
COMMENT ON FUNCTION vigil.drop_monitor(text) IS
    'Drop a monitor (and its early_kill trigger and variants); its alerts stay';

CREATE FUNCTION vigil._set_monitor_enabled(name text, enabled bool) RETURNS vigil.monitors
LANGUAGE sql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
    UPDATE vigil.monitors t SET enabled = $2, updated_at = now()
    WHERE t.id = (vigil._monitor_by_name($1)).id
    RETURNING *
$$;

CREATE FUNCTION vigil.enable_monitor(name text) RETURNS vigil.monitors
LANGUAGE sql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT vigil._set_monitor_enabled($1, true)
$$;
COMMENT ON FUNCTION vigil.enable_monitor(text) IS 'Enable a monitor: scans run it again (early_kill: its trigger decides again)';

CREATE FUNCTION vigil.disable_monitor(name text) RETURNS vigil.monitors
LANGUAGE sql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT vigil._set_monitor_enabled($1, false)
$$;
COMMENT ON FUNCTION vigil.disable_monitor(text) IS
    'Disable a monitor: scans skip it and do not auto-resolve its alerts (early_kill: its trigger does nothing)';

CREATE FUNCTION vigil.set_monitor_timeout(name text, timeout interval) RETURNS vigil.monitors
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    m vigil.monitors := vigil._monitor_by_name(name);
    ms float8;
BEGIN
    IF timeout IS NOT NULL THEN
        ms := extract(epoch FROM timeout) * 1000;
        IF NOT (ms >= 1 AND ms <= 2147483647) THEN
            RAISE EXCEPTION USING ERRCODE = '22023',
                MESSAGE = format('timeout must be between 1 ms and 24 days, got %s', timeout);
        END IF;
    END IF;
    UPDATE vigil.monitors t SET timeout_ms = ms::int, updated_at = now() WHERE t.id = m.id RETURNING * INTO m;
    RETURN m;
END
$$;
COMMENT ON FUNCTION vigil.set_monitor_timeout(text, interval) IS
    'Set how long one scan of the monitor may run, lock waits included (NULL: vigil.monitor_timeout_ms); '
    'a monitor that takes longer is reported as failed (54000) and the scan goes on';

-- Early kill (scenario 3) -------------------------------------------------

CREATE FUNCTION vigil.register_variant(
    monitor text,
    variant text,
    expected_rate float8,
    persona text DEFAULT NULL,
    post text DEFAULT NULL,
    kill_threshold float8 DEFAULT NULL,
    min_interactions int DEFAULT NULL,
    timeout interval DEFAULT NULL
) RETURNS vigil.variant_monitoring
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    m vigil.monitors := vigil._monitor_by_name(monitor);
    v vigil.variant_monitoring;
BEGIN
    IF m.kind <> 'early_kill' THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('monitor: "%s" is a %s monitor; variants register with an early_kill monitor', monitor, m.kind);
    END IF;
    PERFORM vigil._require_text(variant, 'variant');
    IF expected_rate IS NULL OR NOT (expected_rate > 0 AND expected_rate < 'Infinity') THEN
        RAISE EXCEPTION USING ERRCODE = '22003',
            MESSAGE = format('expected_rate must be a positive finite rate, got %s', coalesce(expected_rate::text, 'NULL'));
    END IF;
    kill_threshold := coalesce(kill_threshold, (m.options->>'kill_threshold')::float8);
    IF NOT (kill_threshold > 0 AND kill_threshold <= 1) THEN
        RAISE EXCEPTION USING ERRCODE = '22003', MESSAGE = format('kill_threshold must be in (0, 1], got %s', kill_threshold);
    END IF;
    min_interactions := coalesce(min_interactions, (m.options->>'min_interactions')::int);
    IF min_interactions < 1 THEN
        RAISE EXCEPTION USING ERRCODE = '22003', MESSAGE = format('min_interactions must be at least 1, got %s', min_interactions);
    END IF;
    timeout := coalesce(timeout, (m.options->>'timeout')::interval);
    IF timeout <= interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('timeout must be a positive interval, got %s', timeout);
    END IF;
    INSERT INTO vigil.variant_monitoring AS t
        (monitor, variant, persona, post, expected_rate, kill_threshold, min_interactions, timeout)
    VALUES (m.name, variant, persona, post, expected_rate, kill_threshold, min_interactions, timeout)
    ON CONFLICT ON CONSTRAINT variant_monitoring_monitor_variant_key DO NOTHING
    RETURNING * INTO v;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = '42710',
            MESSAGE = format('variant: "%s" is already registered with monitor "%s"', variant, m.name);
    END IF;
    RETURN v;
END
$$;
COMMENT ON FUNCTION vigil.register_variant(text, text, float8, text, text, float8, int, interval) IS
    'Start early-kill monitoring of a variant: interactions inserted from now on are counted and decided on '
    '(kill_threshold, min_interactions, timeout default to the monitor''s options)';

-- vigil._early_kill_trigger (src/monitor/kinds/early_kill.rs), the
-- trigger create_monitor adds for the kind, counts, decides and records.

-- Scanning ---------------------------------------------------------------

-- vigil._scan (src/monitor/scan.rs) runs the loop: each monitor in a
-- subtransaction of its own, its query as the source's owner in a
-- security-restricted operation; findings raised, deduplicated, grouped
-- and auto-resolved; the report built and kept in vigil.scan_runs.
CREATE FUNCTION vigil.scan(monitor text DEFAULT NULL) RETURNS jsonb
LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' SET standard_conforming_strings = on
AS $$ SELECT vigil._scan(monitor) $$;
COMMENT ON FUNCTION vigil.scan(text) IS
    'Run the enabled monitors (or one): raise and deduplicate alerts, auto-resolve cleared ones, expire old alerts and '
    'timed-out variants, group new alerts per type; returns the report (also kept in vigil.scan_runs). A failing monitor '
    'is reported under errors and does not stop the others; one another scan is running is reported under skipped. Each '
    'monitor runs as its source''s owner in a security-restricted operation under vigil.monitor_timeout_ms';

-- pg_cron ----------------------------------------------------------------

CREATE FUNCTION vigil._cron_job_name(monitor text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN monitor IS NULL THEN 'vigil_scan' ELSE 'vigil_scan:' || monitor END
$$;

CREATE FUNCTION vigil._require_cron() RETURNS void
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
        RAISE EXCEPTION USING ERRCODE = '55000',
            MESSAGE = 'pg_cron is not installed in this database',
            HINT = 'Add pg_cron to shared_preload_libraries, restart, then CREATE EXTENSION pg_cron in the database named by cron.database_name';
    END IF;
END
$$;

CREATE FUNCTION vigil.schedule_scan(cron text DEFAULT '*/5 * * * *', monitor text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    command text;
    job bigint;
BEGIN
    PERFORM vigil._require_cron();
    PERFORM vigil._require_text(cron, 'cron');
    IF monitor IS NOT NULL THEN
        PERFORM vigil._monitor_by_name(monitor);
    END IF;
    command := format('SELECT vigil.scan(%L)', monitor);
    IF current_database() = current_setting('cron.database_name', true) THEN
        EXECUTE 'SELECT cron.schedule($1, $2, $3)' INTO job USING vigil._cron_job_name(monitor), cron, command;
    ELSE
        EXECUTE 'SELECT cron.schedule_in_database($1, $2, $3, $4)' INTO job
            USING vigil._cron_job_name(monitor), cron, command, current_database();
    END IF;
    RETURN job;
END
$$;
COMMENT ON FUNCTION vigil.schedule_scan(text, text) IS
    'Schedule vigil.scan(monitor) with pg_cron (job vigil_scan or vigil_scan:<monitor>, replaced when scheduled again); '
    'ERROR 55000 when pg_cron is not installed. Returns the pg_cron job id';

CREATE FUNCTION vigil.unschedule_scan(monitor text DEFAULT NULL) RETURNS bool
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    done bool;
BEGIN
    PERFORM vigil._require_cron();
    IF NOT EXISTS (SELECT 1 FROM cron.job j WHERE j.jobname = vigil._cron_job_name(monitor) AND j.username = current_user) THEN
        RETURN false;
    END IF;
    EXECUTE 'SELECT cron.unschedule($1)' INTO done USING vigil._cron_job_name(monitor);
    RETURN done;
END
$$;
COMMENT ON FUNCTION vigil.unschedule_scan(text) IS 'Remove the pg_cron job of schedule_scan(…, monitor); false when there was none';

REVOKE EXECUTE ON FUNCTION
    vigil.create_monitor(text, text, regclass, jsonb),
    vigil.drop_monitor(text),
    vigil._set_monitor_enabled(text, bool),
    vigil.enable_monitor(text),
    vigil.disable_monitor(text),
    vigil.register_variant(text, text, float8, text, text, float8, int, interval),
    vigil._early_kill_trigger(),
    vigil.scan(text),
    vigil._scan(text),
    vigil.schedule_scan(text, text),
    vigil.unschedule_scan(text),
    vigil.set_monitor_timeout(text, interval),
    vigil._monitor_run(bigint),
    vigil._monitors_guard()
FROM PUBLIC;

-- The saturation kind's per-entity aggregate (src/scoring/agg.rs): each
-- entity's rows and conversions summed per day back from now, returned as the
-- figures its query scores. One hashed aggregate over the rows read.
CREATE FUNCTION vigil._saturation_days_trans(internal, timestamptz, timestamptz, float8, float8) RETURNS internal
    AS 'MODULE_PATHNAME', 'vigil_saturation_days_trans' LANGUAGE c IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION vigil._saturation_days_trans(internal, timestamptz, timestamptz, float8, float8) IS
    'Internal: transition of vigil._saturation_days';
CREATE FUNCTION vigil._saturation_days_final(internal) RETURNS float8[]
    AS 'MODULE_PATHNAME', 'vigil_saturation_days_final' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vigil._saturation_days_final(internal) IS
    'Internal: final function of vigil._saturation_days';
CREATE FUNCTION vigil._saturation_days_combine(internal, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'vigil_saturation_days_combine' LANGUAGE c IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION vigil._saturation_days_combine(internal, internal) IS
    'Internal: combine function of vigil._saturation_days (parallel aggregation)';
CREATE FUNCTION vigil._saturation_days_serial(internal) RETURNS bytea
    AS 'MODULE_PATHNAME', 'vigil_saturation_days_serial' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vigil._saturation_days_serial(internal) IS
    'Internal: serialization of vigil._saturation_days''s state (parallel aggregation)';
CREATE FUNCTION vigil._saturation_days_deserial(bytea, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'vigil_saturation_days_deserial' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vigil._saturation_days_deserial(bytea, internal) IS
    'Internal: deserialization of vigil._saturation_days''s state (parallel aggregation)';
-- SSPACE: the header and the first 32 days.
CREATE AGGREGATE vigil._saturation_days(now timestamptz, at timestamptz, rows float8, converted float8) (
    SFUNC = vigil._saturation_days_trans,
    STYPE = internal,
    SSPACE = 544,
    FINALFUNC = vigil._saturation_days_final,
    COMBINEFUNC = vigil._saturation_days_combine,
    SERIALFUNC = vigil._saturation_days_serial,
    DESERIALFUNC = vigil._saturation_days_deserial,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE vigil._saturation_days(timestamptz, timestamptz, float8, float8) IS
    'Internal: the saturation kind''s figures per entity from its rows by whole days from at back to now (0 = the last 24 hours, up to 366): '
    '{rows_24h, converted_24h, rows_baseline, converted_baseline, rows_baseline_sq, rate_mean, rate_sd, decline_days}';

-- The drop kind's per-entity aggregate over a rollup (src/scoring/agg.rs):
-- each bucket's slot rows merged (merge: vigil's BucketMerge number), then
-- the latest bucket's value, the sum of the buckets' values and their count.
CREATE FUNCTION vigil._drop_buckets_trans(internal, timestamptz, float8, float8, float8, int) RETURNS internal
    AS 'MODULE_PATHNAME', 'vigil_drop_buckets_trans' LANGUAGE c IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION vigil._drop_buckets_trans(internal, timestamptz, float8, float8, float8, int) IS
    'Internal: transition of vigil._drop_buckets';
CREATE FUNCTION vigil._drop_buckets_final(internal) RETURNS float8[]
    AS 'MODULE_PATHNAME', 'vigil_drop_buckets_final' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vigil._drop_buckets_final(internal) IS
    'Internal: final function of vigil._drop_buckets';
CREATE FUNCTION vigil._drop_buckets_combine(internal, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'vigil_drop_buckets_combine' LANGUAGE c IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION vigil._drop_buckets_combine(internal, internal) IS
    'Internal: combine function of vigil._drop_buckets (parallel aggregation)';
CREATE FUNCTION vigil._drop_buckets_serial(internal) RETURNS bytea
    AS 'MODULE_PATHNAME', 'vigil_drop_buckets_serial' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vigil._drop_buckets_serial(internal) IS
    'Internal: serialization of vigil._drop_buckets''s state (parallel aggregation)';
CREATE FUNCTION vigil._drop_buckets_deserial(bytea, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'vigil_drop_buckets_deserial' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vigil._drop_buckets_deserial(bytea, internal) IS
    'Internal: deserialization of vigil._drop_buckets''s state (parallel aggregation)';
-- SSPACE: the header and 32 rows of 48 bytes.
CREATE AGGREGATE vigil._drop_buckets(at timestamptz, rows float8, a float8, b float8, merge int) (
    SFUNC = vigil._drop_buckets_trans,
    STYPE = internal,
    SSPACE = 1576,
    FINALFUNC = vigil._drop_buckets_final,
    COMBINEFUNC = vigil._drop_buckets_combine,
    SERIALFUNC = vigil._drop_buckets_serial,
    DESERIALFUNC = vigil._drop_buckets_deserial,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE vigil._drop_buckets(timestamptz, float8, float8, float8, int) IS
    'Internal: the drop kind''s samples over a rollup from one entity''s slot rows (each bucket merged by merge: '
    '0 sum(a)/sum(b), 1 sum(a) when sum(b) > 0, 2 sum(a), 3 min(a), 4 max(a); buckets with no rows or no value left out): '
    '{latest, total, samples}, NULL without samples';

-- The drop kind's per-entity aggregate over raw float8 rows (src/scoring/agg.rs):
-- the latest row's value (the greatest of a tie), the values' sum and count,
-- in a fixed-size state.
CREATE FUNCTION vigil._drop_latest_trans(internal, timestamptz, float8) RETURNS internal
    AS 'MODULE_PATHNAME', 'vigil_drop_latest_trans' LANGUAGE c IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION vigil._drop_latest_trans(internal, timestamptz, float8) IS
    'Internal: transition of vigil._drop_latest';
CREATE FUNCTION vigil._drop_latest_final(internal) RETURNS float8[]
    AS 'MODULE_PATHNAME', 'vigil_drop_latest_final' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vigil._drop_latest_final(internal) IS
    'Internal: final function of vigil._drop_latest';
CREATE FUNCTION vigil._drop_latest_combine(internal, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'vigil_drop_latest_combine' LANGUAGE c IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION vigil._drop_latest_combine(internal, internal) IS
    'Internal: combine function of vigil._drop_latest (parallel aggregation)';
CREATE FUNCTION vigil._drop_latest_serial(internal) RETURNS bytea
    AS 'MODULE_PATHNAME', 'vigil_drop_latest_serial' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vigil._drop_latest_serial(internal) IS
    'Internal: serialization of vigil._drop_latest''s state (parallel aggregation)';
CREATE FUNCTION vigil._drop_latest_deserial(bytea, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'vigil_drop_latest_deserial' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vigil._drop_latest_deserial(bytea, internal) IS
    'Internal: deserialization of vigil._drop_latest''s state (parallel aggregation)';
-- SSPACE: the whole state.
CREATE AGGREGATE vigil._drop_latest(at timestamptz, v float8) (
    SFUNC = vigil._drop_latest_trans,
    STYPE = internal,
    SSPACE = 40,
    FINALFUNC = vigil._drop_latest_final,
    COMBINEFUNC = vigil._drop_latest_combine,
    SERIALFUNC = vigil._drop_latest_serial,
    DESERIALFUNC = vigil._drop_latest_deserial,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE vigil._drop_latest(timestamptz, float8) IS
    'Internal: the drop kind''s samples over one entity''s raw rows (rows with a NULL time or value left out): '
    '{latest, total, samples}, the latest being the greatest value of the latest time; NULL without rows';
