-- CREATE EXTENSION adopts a schema "vigil" that already exists. Refuse one
-- that the installing role does not own, or in which any other role may
-- create objects: its owner could later rename it or plant objects that
-- superusers read (SPEC §3.6).
DO $$
DECLARE
    owner_ok bool;
    others text;
BEGIN
    SELECT n.nspowner = (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)
    INTO owner_ok FROM pg_catalog.pg_namespace n WHERE n.nspname = 'vigil';
    IF NOT owner_ok THEN
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = format('schema vigil already exists and is owned by %s, not by %s who installs pg_vigil',
                             (SELECT n.nspowner::regrole FROM pg_catalog.pg_namespace n WHERE n.nspname = 'vigil'), current_user),
            HINT = 'Drop or rename that schema (after checking what is in it), then CREATE EXTENSION pg_vigil again.';
    END IF;
    SELECT string_agg(CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END, ', ')
    INTO others
    FROM pg_catalog.pg_namespace n, LATERAL pg_catalog.aclexplode(n.nspacl) a
    WHERE n.nspname = 'vigil' AND a.privilege_type = 'CREATE' AND a.grantee <> n.nspowner;
    IF others IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '42501',
            MESSAGE = format('schema vigil already exists and %s may create objects in it', others),
            HINT = 'REVOKE CREATE ON SCHEMA vigil from them (after checking what is in it), then CREATE EXTENSION pg_vigil again.';
    END IF;
END
$$;

-- Enum types shared by every pg_vigil module. Created first (bootstrap) so
-- that functions and tables can use them.

CREATE TYPE vigil.severity AS ENUM ('info', 'low', 'medium', 'high', 'critical');
COMMENT ON TYPE vigil.severity IS
    'Alert severity, ordered: info < low < medium < high < critical';

CREATE TYPE vigil.saturation AS ENUM ('GREEN', 'YELLOW', 'RED', 'UNKNOWN');
COMMENT ON TYPE vigil.saturation IS
    'Audience saturation traffic light; UNKNOWN when the inputs cannot tell';

-- Shell types, completed in stats.sql and sketch.sql once their input and
-- output functions exist.
CREATE TYPE vigil.statsagg;
CREATE TYPE vigil.stats_state;
CREATE TYPE vigil.sketch;
CREATE TYPE vigil.sketch_state;
