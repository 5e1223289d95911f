-- vigil.statsagg: mergeable summary (n, mean, M2, min, max) and its aggregates.

CREATE TYPE vigil.statsagg (
    INPUT = vigil.statsagg_in,
    OUTPUT = vigil.statsagg_out,
    SEND = vigil.statsagg_send,
    RECEIVE = vigil.statsagg_recv,
    INTERNALLENGTH = VARIABLE,
    STORAGE = plain
);
COMMENT ON TYPE vigil.statsagg IS
    'Mergeable statistics summary: count, mean, M2, min, max. Text form (n:3,mean:2.0,m2:2.0,min:1.0,max:3.0)';

CREATE FUNCTION vigil.stats_agg_trans(internal, float8) RETURNS internal
    AS 'MODULE_PATHNAME', 'vigil_stats_agg_trans'
    LANGUAGE c IMMUTABLE PARALLEL SAFE;

-- SSPACE: the state is 48 bytes plus its allocation header. Left unset, the
-- planner assumes 8 kB per group for an internal state and avoids hash
-- aggregation for a few thousand groups (a dashboard's GROUP BY entity).
CREATE AGGREGATE vigil.stats_agg(float8) (
    SFUNC = vigil.stats_agg_trans,
    STYPE = internal,
    SSPACE = 64,
    FINALFUNC = vigil.stats_agg_final,
    COMBINEFUNC = vigil.stats_agg_combine,
    SERIALFUNC = vigil.stats_agg_serial,
    DESERIALFUNC = vigil.stats_agg_deserial,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE vigil.stats_agg(float8) IS
    'Summarise values into a vigil.statsagg (NULLs skipped; NaN/Infinity rejected)';

CREATE AGGREGATE vigil.rollup(vigil.statsagg) (
    SFUNC = vigil.stats_rollup_trans,
    STYPE = internal,
    SSPACE = 64,
    FINALFUNC = vigil.stats_agg_final,
    COMBINEFUNC = vigil.stats_agg_combine,
    SERIALFUNC = vigil.stats_agg_serial,
    DESERIALFUNC = vigil.stats_agg_deserial,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE vigil.rollup(vigil.statsagg) IS
    'Merge stored vigil.statsagg summaries into one';
