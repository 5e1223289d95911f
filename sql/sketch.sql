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

CREATE FUNCTION vigil.percentile_agg_trans(internal, float8) RETURNS internal
    AS 'MODULE_PATHNAME', 'vigil_percentile_agg_trans'
    LANGUAGE c IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION vigil.percentile_agg_trans(internal, float8, float8) RETURNS internal
    AS 'MODULE_PATHNAME', 'vigil_percentile_agg_trans'
    LANGUAGE c IMMUTABLE PARALLEL SAFE;

CREATE AGGREGATE vigil.percentile_agg(float8) (
    SFUNC = vigil.percentile_agg_trans,
    STYPE = internal,
    SSPACE = 16384,
    FINALFUNC = vigil.sketch_final,
    COMBINEFUNC = vigil.sketch_combine,
    SERIALFUNC = vigil.sketch_serial,
    DESERIALFUNC = vigil.sketch_deserial,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE vigil.percentile_agg(float8) IS
    'Quantile sketch of the values at 1% relative error (NULLs skipped; NaN/Infinity rejected)';

CREATE AGGREGATE vigil.percentile_agg(float8, relative_error float8) (
    SFUNC = vigil.percentile_agg_trans,
    STYPE = internal,
    SSPACE = 16384,
    FINALFUNC = vigil.sketch_final,
    COMBINEFUNC = vigil.sketch_combine,
    SERIALFUNC = vigil.sketch_serial,
    DESERIALFUNC = vigil.sketch_deserial,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE vigil.percentile_agg(float8, float8) IS
    'Quantile sketch of the values at the given relative error (0.0001 to 0.5)';

CREATE AGGREGATE vigil.rollup(vigil.sketch) (
    SFUNC = vigil.sketch_rollup_trans,
    STYPE = internal,
    SSPACE = 16384,
    FINALFUNC = vigil.sketch_final,
    COMBINEFUNC = vigil.sketch_combine,
    SERIALFUNC = vigil.sketch_serial,
    DESERIALFUNC = vigil.sketch_deserial,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE vigil.rollup(vigil.sketch) IS
    'Merge stored vigil.sketch values into one';
