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
CREATE TYPE vigil.sketch;
