-- Realtime rollups: the catalog of definitions and the SQL entry points.
-- The work is done by the vigil._*_rollup functions (src/rollup/).

CREATE TABLE vigil.rollup_defs (
    summary     regclass    PRIMARY KEY,
    source      regclass    NOT NULL,
    time_column name        NOT NULL,
    bucket      interval    NOT NULL,
    group_by    name[]      NOT NULL,
    -- The source columns the group columns read, where renames made them
    -- differ from group_by (the summary's column names); NULL = group_by.
    group_source name[],
    measures    jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- What a partition that leaves a partitioned source (DETACH) does to
    -- the summary: keep its rows as history, or subtract them.
    on_detach   text        NOT NULL DEFAULT 'keep' CONSTRAINT rollup_defs_on_detach_check
                            CHECK (on_detach IN ('keep', 'subtract'))
);
COMMENT ON TABLE vigil.rollup_defs IS 'Definitions of trigger-maintained rollups (one row per summary table)';
SELECT pg_catalog.pg_extension_config_dump('vigil.rollup_defs', '');

-- JSON arguments reach Rust (serde_json, recursion limit 128) only when
-- they are shallow and of sane size: deeper or larger input is refused here
-- with the argument named, never an internal error.
CREATE FUNCTION vigil._require_sane_json(value jsonb, argument text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF value IS NULL THEN
        RETURN NULL;
    END IF;
    IF pg_column_size(value) > 1048576 THEN
        RAISE EXCEPTION USING ERRCODE = '54000',
            MESSAGE = format('%s is %s bytes; at most 1 MiB is accepted', argument, pg_column_size(value));
    END IF;
    IF jsonb_path_exists(value, 'strict $.**{32 to last}') THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('%s is nested more than 32 levels deep', argument);
    END IF;
    RETURN value;
END
$$;
COMMENT ON FUNCTION vigil._require_sane_json(jsonb, text) IS
    'Internal: refuses (54000, 22023) a JSON argument over 1 MiB or nested deeper than 32 levels, naming the argument';

-- Who may rename or fill a schema decides what a name in it means. Work
-- that runs as `owner` and names objects in `schema` (a rollup's
-- statements, a monitor's query) is only safe when nobody but `owner` or a
-- superuser can do that: the schema belongs to `owner` or a superuser
-- (pg_database_owner means the database's owner), and no other role may
-- CREATE in it. NULL when that holds, else why not.
CREATE FUNCTION vigil._untrusted_schema(schema oid, owner oid) RETURNS text
LANGUAGE sql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    WITH n AS (
        SELECT n.nspname, n.nspowner, n.nspacl,
               CASE WHEN n.nspowner = 'pg_database_owner'::regrole
                    THEN (SELECT d.datdba FROM pg_database d WHERE d.datname = current_database())
                    ELSE n.nspowner END AS effective
        FROM pg_namespace n WHERE n.oid = schema),
    others AS (
        SELECT string_agg(CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END, ', ') AS who
        FROM n, aclexplode(n.nspacl) a LEFT JOIN pg_roles g ON g.oid = a.grantee
        WHERE a.privilege_type = 'CREATE' AND a.grantee NOT IN (n.nspowner, n.effective, owner)
          AND NOT coalesce(g.rolsuper, false))
    SELECT CASE
        WHEN n.nspname IS NULL THEN format('schema %s does not exist', schema)
        WHEN n.effective <> owner AND NOT r.rolsuper
            THEN format('schema %I belongs to %s, neither %s nor a superuser', n.nspname, n.effective::regrole, owner::regrole)
        WHEN o.who IS NOT NULL
            THEN format('%s may create objects in schema %I', o.who, n.nspname)
        END
    FROM n JOIN pg_roles r ON r.oid = n.effective, others o
$$;
COMMENT ON FUNCTION vigil._untrusted_schema(oid, oid) IS
    'Internal: why work run as owner cannot trust the names in schema (owned by another non-superuser, or others may CREATE in it); NULL when it can';

CREATE FUNCTION vigil.create_rollup(
    name text, source regclass, time_column name, bucket interval,
    group_by name[], measures jsonb
) RETURNS regclass
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    missing text := CASE
        WHEN name IS NULL THEN 'name' WHEN source IS NULL THEN 'source'
        WHEN time_column IS NULL THEN 'time_column' WHEN bucket IS NULL THEN 'bucket'
        WHEN group_by IS NULL THEN 'group_by' WHEN measures IS NULL THEN 'measures' END;
BEGIN
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = missing || ' must not be NULL';
    END IF;
    PERFORM vigil._require_sane_json(measures, 'measures');
    RETURN vigil._create_rollup(name, source, time_column, bucket, group_by::text[], measures)::regclass;
END
$$;
COMMENT ON FUNCTION vigil.create_rollup(text, regclass, name, interval, name[], jsonb) IS
    'Create a summary table kept exact by triggers on source, backfill it, and register it';

CREATE FUNCTION vigil.verify_rollup(name regclass) RETURNS bigint
LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$ SELECT vigil._verify_rollup(name) $$;
COMMENT ON FUNCTION vigil.verify_rollup(regclass) IS
    'Number of groups that differ from a full recompute (0 when exact)';

CREATE FUNCTION vigil.rebuild_rollup(name regclass) RETURNS bigint
LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$ SELECT vigil._rebuild_rollup(name) $$;
COMMENT ON FUNCTION vigil.rebuild_rollup(regclass) IS
    'Recompute a rollup from its source (blocks writers meanwhile); returns the number of groups';

CREATE FUNCTION vigil.set_rollup_on_detach(name regclass, mode text) RETURNS void
LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$ SELECT vigil._set_rollup_on_detach(name, mode) $$;
COMMENT ON FUNCTION vigil.set_rollup_on_detach(regclass, text) IS
    'What a partition detached from a partitioned source does to the rollup: keep (default: its rows stay as history, '
    'like continuous aggregates after drop_chunks) or subtract (the buckets it covered are recomputed from what the '
    'source still holds). Needs the source owner''s rights; ERROR 22023 for another mode';

CREATE FUNCTION vigil.drop_rollup(name regclass) RETURNS void
LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$ SELECT vigil._drop_rollup(name) $$;
COMMENT ON FUNCTION vigil.drop_rollup(regclass) IS
    'Drop a rollup: its summary table, triggers, window function and views';

-- Rolling totals (src/rollup/rolling.rs): a view with one row per group
-- over a rollup's last `since`, read from a table of per-group totals kept
-- exact at commit and aged by the worker as buckets leave the window.
CREATE TABLE vigil.rolling_defs (
    totals     regclass    PRIMARY KEY,
    summary    regclass    NOT NULL,
    view       regclass    NOT NULL,
    since      interval    NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE vigil.rolling_defs IS 'Rolling totals of rollups: the totals table, its summary, the view that reads it, the window';
SELECT pg_catalog.pg_extension_config_dump('vigil.rolling_defs', '');

-- What a rolling total's view reads: its board query over a plan kept for
-- the session, for callers with SELECT on that view (src/rollup/rolling.rs).
CREATE FUNCTION vigil._rolling_read(totals regclass) RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'vigil_rolling_read' LANGUAGE c STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION vigil._rolling_read(regclass) IS
    'Internal: the rows of a rolling total''s view (read it through the view; needs SELECT on the view)';

CREATE FUNCTION vigil.create_rolling(name text, rollup regclass, since interval) RETURNS regclass
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    missing text := CASE WHEN name IS NULL THEN 'name' WHEN rollup IS NULL THEN 'rollup'
                         WHEN since IS NULL THEN 'since' END;
BEGIN
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = missing || ' must not be NULL';
    END IF;
    RETURN vigil._create_rolling(name, rollup, since)::regclass;
END
$$;
COMMENT ON FUNCTION vigil.create_rolling(text, regclass, interval) IS
    'Create a view with one row per group of a rollup''s count and sum measures over its last since '
    '(bucket-aligned, as <rollup>_since(since)), read from per-group totals kept exact at commit and aged by the worker';

CREATE FUNCTION vigil.age_rolling(name regclass DEFAULT NULL) RETURNS bigint
LANGUAGE sql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$ SELECT vigil._age_rolling(name) $$;
COMMENT ON FUNCTION vigil.age_rolling(regclass) IS
    'Move a rolling total''s window (the worker does this every poll): subtract the buckets that left it. '
    'NULL: every rolling total (superuser). Returns how many moved';

CREATE FUNCTION vigil.verify_rolling(name regclass) RETURNS bigint
LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$ SELECT vigil._verify_rolling(name) $$;
COMMENT ON FUNCTION vigil.verify_rolling(regclass) IS
    'Number of groups where a rolling total''s view differs from its rollup''s buckets in the window (0 when exact)';

CREATE FUNCTION vigil.drop_rolling(name regclass) RETURNS void
LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$ SELECT vigil._drop_rolling(name) $$;
COMMENT ON FUNCTION vigil.drop_rolling(regclass) IS
    'Drop a rolling total: its view and totals table';

CREATE FUNCTION vigil._rolling_size(totals regclass, OUT cutoff timestamptz, OUT groups bigint, OUT unfolded bigint)
LANGUAGE sql STABLE PARALLEL RESTRICTED SET search_path = pg_catalog, pg_temp AS $$
    SELECT (j->>'cutoff')::timestamptz, (j->>'groups')::bigint, (j->>'unfolded')::bigint FROM vigil._rolling_stats(totals) j
$$;
COMMENT ON FUNCTION vigil._rolling_size(regclass) IS
    'Internal: a rolling total''s cutoff, groups and unfolded slot rows for vigil.rolling, NULL while another transaction locks its table';

CREATE VIEW vigil.rolling AS
SELECT r.view AS name, r.summary AS rollup, r.since, s.cutoff,
       date_bin(d.bucket, now() - r.since, '2000-01-03 00:00:00+00') - s.cutoff AS lag,
       s.groups, s.unfolded, r.totals, r.created_at
FROM vigil.rolling_defs r JOIN vigil.rollup_defs d ON d.summary = r.summary,
     LATERAL vigil._rolling_size(r.totals) s;
COMMENT ON VIEW vigil.rolling IS
    'Rolling totals: the window''s first bucket they count from (cutoff), how far the ager is behind now''s window (lag: 0 when current; the view stays exact either way, only slower to read), groups, slot rows not folded yet';

CREATE FUNCTION vigil._rollup_size(summary regclass, OUT rows bigint, OUT latest_bucket timestamptz)
LANGUAGE sql STABLE PARALLEL RESTRICTED SET search_path = pg_catalog, pg_temp AS $$
    SELECT (j->>'rows')::bigint, (j->>'latest_bucket')::timestamptz FROM vigil._rollup_stats(summary) j
$$;

CREATE VIEW vigil.rollups AS
SELECT d.summary AS name, d.source, d.time_column, d.bucket, d.group_by, d.measures,
       s.rows, s.latest_bucket, d.created_at, vigil._rollup_status(d.summary) AS status
FROM vigil.rollup_defs d, LATERAL vigil._rollup_size(d.summary) s;
COMMENT ON VIEW vigil.rollups IS
    'Rollups with their summary row count, latest bucket and status (ok, or why the summary is not being kept exact)';
COMMENT ON FUNCTION vigil._rollup_status(oid) IS
    'Internal: ok, or why the rollup of a summary is not kept exact (a trigger missing or disabled, the source gone)';
COMMENT ON FUNCTION vigil._rollup_ddl(oid, oid) IS
    'Internal: keeps the rollups that involve an object just created or altered working (follows renames and owner changes, records dependencies, registers a restored trigger''s definition) or refuses the change';

-- Dropping a summary table (DROP TABLE … CASCADE: the rollup's triggers
-- depend on it) forgets its definition, so the source's writes go on and
-- vigil.rollups lists only live rollups.
-- Which summary each linked rollup trigger maintains (src/rollup/ddl.rs):
-- the sql_drop event trigger looks up the triggers a command dropped here.
-- Rebuilt as triggers are linked (create_rollup, restores), never dumped.
CREATE TABLE vigil.rollup_triggers (
    trigger   oid  PRIMARY KEY,
    summary   oid  NOT NULL,
    on_source bool NOT NULL
);
COMMENT ON TABLE vigil.rollup_triggers IS
    'Internal: the summary each linked rollup trigger maintains, and whether it is on the source itself (not a partition)';

-- Partitions detached from a rollup's source whose rows the summary keeps
-- (history, like a continuous aggregate after drop_chunks). Attaching one
-- again adds nothing: its rows are in the summary already.
CREATE TABLE vigil.rollup_detached (
    summary     oid         NOT NULL,
    rel         oid         NOT NULL,
    detached_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (summary, rel)
);
COMMENT ON TABLE vigil.rollup_detached IS
    'Internal: partitions detached from a rollup''s source whose rows its summary keeps as history; attaching one again adds nothing';

-- Dropping a summary table forgets its definition. A rollup whose source
-- triggers a CASCADE dropped (DROP COLUMN ... CASCADE, DROP FUNCTION ...
-- CASCADE of a filter's function) is dropped whole; a DROP TRIGGER of one
-- of a rollup's triggers is refused (vigil._rollup_dropped). Either way the
-- source's writes never meet half a rollup.
CREATE FUNCTION vigil._forget_dropped_rollups() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM vigil.rollup_defs d
    USING pg_event_trigger_dropped_objects() o
    WHERE o.classid = 'pg_class'::regclass AND o.objsubid = 0 AND d.summary::oid = o.objid;
    DELETE FROM vigil.rolling_defs r
    USING pg_event_trigger_dropped_objects() o
    WHERE o.classid = 'pg_class'::regclass AND o.objsubid = 0 AND o.objid IN (r.totals::oid, r.summary::oid, r.view::oid);
    DELETE FROM vigil.rollup_detached d
    USING pg_event_trigger_dropped_objects() o
    WHERE o.classid = 'pg_class'::regclass AND o.objsubid = 0 AND o.objid IN (d.summary, d.rel);
    IF EXISTS (SELECT 1 FROM pg_event_trigger_dropped_objects() o WHERE o.object_type = 'trigger') THEN
        PERFORM vigil._rollup_dropped();
    END IF;
END
$$;
COMMENT ON FUNCTION vigil._forget_dropped_rollups() IS
    'Internal: event trigger that forgets dropped summaries, drops a rollup whose source triggers a CASCADE dropped, and refuses dropping one of its triggers alone';
COMMENT ON FUNCTION vigil._rollup_dropped() IS
    'Internal: for the sql_drop event trigger; the rollups that lost a trigger in this command are dropped (CASCADE) or the command refused (DROP TRIGGER)';
REVOKE EXECUTE ON FUNCTION vigil._forget_dropped_rollups() FROM PUBLIC;
COMMENT ON FUNCTION vigil._upgrade_rollup(oid) IS
    'Internal: run by ALTER EXTENSION pg_vigil UPDATE; makes a rollup an older version created into one of this '
    'version''s (source owner''s objects, shared trigger, dependencies) and recomputes it. NULL, or why it was left unlinked';
REVOKE EXECUTE ON FUNCTION vigil._upgrade_rollup(oid) FROM PUBLIC;
CREATE EVENT TRIGGER vigil_forget_dropped_rollups ON sql_drop
    EXECUTE FUNCTION vigil._forget_dropped_rollups();

-- DDL on a source or summary (ALTER TABLE, RENAME, SET SCHEMA, OWNER TO,
-- ATTACH/DETACH PARTITION), a new partition of a source (CREATE TABLE …
-- PARTITION OF) and every CREATE TRIGGER (a restore re-creates rollup
-- triggers): see
-- src/rollup/ddl.rs. Runs as the role that issued the DDL; vigil._rollup_ddl
-- switches identity itself and only brings rollups in line with the
-- catalogs (or refuses the command).
CREATE FUNCTION vigil._rollup_ddl_event() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT DISTINCT e.classid, e.objid FROM pg_event_trigger_ddl_commands() e
             WHERE e.classid IN ('pg_class'::regclass, 'pg_trigger'::regclass, 'pg_type'::regclass, 'pg_namespace'::regclass)
             ORDER BY 1, 2
    LOOP
        PERFORM vigil._rollup_ddl(c.classid, c.objid);
    END LOOP;
END
$$;
COMMENT ON FUNCTION vigil._rollup_ddl_event() IS
    'Internal: event trigger (ddl_command_end) that keeps rollups working across DDL on their tables and restores';
CREATE EVENT TRIGGER vigil_rollup_ddl ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'CREATE TABLE', 'CREATE TRIGGER', 'ALTER TYPE', 'ALTER SCHEMA')
    EXECUTE FUNCTION vigil._rollup_ddl_event();
