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

-- The aggregates' state: a concrete type rather than internal, so that
-- Citus pushes stats_agg and rollup(statsagg) down to its workers (partial
-- aggregation per shard; it ships partial states as their text form). The
-- support functions update it in place when an aggregate calls them
-- (src/stats/state.rs), as fast as an internal state.
CREATE FUNCTION vigil.stats_state_in(cstring) RETURNS vigil.stats_state
    AS 'MODULE_PATHNAME', 'vigil_stats_state_in' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vigil.stats_state_out(vigil.stats_state) RETURNS cstring
    AS 'MODULE_PATHNAME', 'vigil_stats_state_out' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vigil.stats_state_recv(internal) RETURNS vigil.stats_state
    AS 'MODULE_PATHNAME', 'vigil_stats_state_recv' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vigil.stats_state_send(vigil.stats_state) RETURNS bytea
    AS 'MODULE_PATHNAME', 'vigil_stats_state_send' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE TYPE vigil.stats_state (
    INPUT = vigil.stats_state_in,
    OUTPUT = vigil.stats_state_out,
    SEND = vigil.stats_state_send,
    RECEIVE = vigil.stats_state_recv,
    INTERNALLENGTH = VARIABLE,
    ALIGNMENT = double,
    STORAGE = plain
);
COMMENT ON TYPE vigil.stats_state IS
    'Transition state of vigil.stats_agg and vigil.rollup(statsagg) (count, sums, extremes); text form '
    '"stats_state:" and hex, lossless, as Citus ships partial aggregates between nodes';

CREATE FUNCTION vigil.stats_agg_trans(vigil.stats_state, float8) RETURNS vigil.stats_state
    AS 'MODULE_PATHNAME', 'vigil_stats_state_trans' LANGUAGE c IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION vigil.stats_rollup_trans(vigil.stats_state, vigil.statsagg) RETURNS vigil.stats_state
    AS 'MODULE_PATHNAME', 'vigil_stats_state_rollup_trans' LANGUAGE c IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION vigil.stats_agg_combine(vigil.stats_state, vigil.stats_state) RETURNS vigil.stats_state
    AS 'MODULE_PATHNAME', 'vigil_stats_state_combine' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vigil.stats_agg_final(vigil.stats_state) RETURNS vigil.statsagg
    AS 'MODULE_PATHNAME', 'vigil_stats_state_final' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;

-- SSPACE: the state is 56 bytes. Left unset, the planner guesses for a
-- variable-length type and may avoid hash aggregation for a few thousand
-- groups (a dashboard's GROUP BY entity).
CREATE AGGREGATE vigil.stats_agg(float8) (
    SFUNC = vigil.stats_agg_trans,
    STYPE = vigil.stats_state,
    SSPACE = 56,
    FINALFUNC = vigil.stats_agg_final,
    COMBINEFUNC = vigil.stats_agg_combine,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE vigil.stats_agg(float8) IS
    'Summarise values into a vigil.statsagg (NULLs skipped; NaN/Infinity rejected)';

CREATE AGGREGATE vigil.rollup(vigil.statsagg) (
    SFUNC = vigil.stats_rollup_trans,
    STYPE = vigil.stats_state,
    SSPACE = 56,
    FINALFUNC = vigil.stats_agg_final,
    COMBINEFUNC = vigil.stats_agg_combine,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE vigil.rollup(vigil.statsagg) IS
    'Merge stored vigil.statsagg summaries into one';
