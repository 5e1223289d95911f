-- vigil.sketch: mergeable quantile sketch (DDSketch-style, relative-error
-- bound) and its aggregates.

CREATE TYPE vigil.sketch (
    INPUT = vigil.sketch_in,
    OUTPUT = vigil.sketch_out,
    SEND = vigil.sketch_send,
    RECEIVE = vigil.sketch_recv,
    INTERNALLENGTH = VARIABLE,
    STORAGE = extended
);
COMMENT ON TYPE vigil.sketch IS
    'Mergeable quantile sketch: every quantile within relative_error of the true value';

-- The aggregates' state: a concrete type rather than internal, so that
-- Citus pushes percentile_agg and rollup(sketch) down to its workers
-- (partial aggregation per shard, partial states shipped as their text
-- form). Inside an aggregate it is an expanded object updated in place
-- (src/sketch/state.rs); its flat form is a vigil.sketch's bytes.
CREATE FUNCTION vigil.sketch_state_in(cstring) RETURNS vigil.sketch_state
    AS 'MODULE_PATHNAME', 'vigil_sketch_state_in' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vigil.sketch_state_out(vigil.sketch_state) RETURNS cstring
    AS 'MODULE_PATHNAME', 'vigil_sketch_state_out' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vigil.sketch_state_recv(internal) RETURNS vigil.sketch_state
    AS 'MODULE_PATHNAME', 'vigil_sketch_state_recv' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vigil.sketch_state_send(vigil.sketch_state) RETURNS bytea
    AS 'MODULE_PATHNAME', 'vigil_sketch_state_send' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE TYPE vigil.sketch_state (
    INPUT = vigil.sketch_state_in,
    OUTPUT = vigil.sketch_state_out,
    SEND = vigil.sketch_state_send,
    RECEIVE = vigil.sketch_state_recv,
    INTERNALLENGTH = VARIABLE,
    STORAGE = extended
);
COMMENT ON TYPE vigil.sketch_state IS
    'Transition state of vigil.percentile_agg and vigil.rollup(sketch); text form that of vigil.sketch, '
    'lossless, as Citus ships partial aggregates between nodes';

CREATE FUNCTION vigil.percentile_agg_trans(vigil.sketch_state, float8) RETURNS vigil.sketch_state
    AS 'MODULE_PATHNAME', 'vigil_sketch_state_trans' LANGUAGE c IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION vigil.percentile_agg_trans(vigil.sketch_state, float8, float8) RETURNS vigil.sketch_state
    AS 'MODULE_PATHNAME', 'vigil_sketch_state_trans' LANGUAGE c IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION vigil.sketch_rollup_trans(vigil.sketch_state, vigil.sketch) RETURNS vigil.sketch_state
    AS 'MODULE_PATHNAME', 'vigil_sketch_state_rollup_trans' LANGUAGE c IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION vigil.sketch_combine(vigil.sketch_state, vigil.sketch_state) RETURNS vigil.sketch_state
    AS 'MODULE_PATHNAME', 'vigil_sketch_state_combine' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vigil.sketch_final(vigil.sketch_state) RETURNS vigil.sketch
    AS 'MODULE_PATHNAME', 'vigil_sketch_state_final' LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE;

CREATE AGGREGATE vigil.percentile_agg(float8) (
    SFUNC = vigil.percentile_agg_trans,
    STYPE = vigil.sketch_state,
    SSPACE = 16384,
    FINALFUNC = vigil.sketch_final,
    COMBINEFUNC = vigil.sketch_combine,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE vigil.percentile_agg(float8) IS
    'Quantile sketch of the values at 1% relative error (NULLs skipped; NaN/Infinity rejected)';

CREATE AGGREGATE vigil.percentile_agg(float8, relative_error float8) (
    SFUNC = vigil.percentile_agg_trans,
    STYPE = vigil.sketch_state,
    SSPACE = 16384,
    FINALFUNC = vigil.sketch_final,
    COMBINEFUNC = vigil.sketch_combine,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE vigil.percentile_agg(float8, float8) IS
    'Quantile sketch of the values at the given relative error (0.0001 to 0.5)';

CREATE AGGREGATE vigil.rollup(vigil.sketch) (
    SFUNC = vigil.sketch_rollup_trans,
    STYPE = vigil.sketch_state,
    SSPACE = 16384,
    FINALFUNC = vigil.sketch_final,
    COMBINEFUNC = vigil.sketch_combine,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE vigil.rollup(vigil.sketch) IS
    'Merge stored vigil.sketch values into one';
