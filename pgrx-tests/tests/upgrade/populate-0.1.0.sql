-- What a 0.1.0 user has before ALTER EXTENSION pg_vigil UPDATE (the
-- upgrade test runs this with 0.1.0 installed): rollups (plain and
-- partitioned source, owned by a plain role and by the superuser), monitors
-- (one early kill), edited, deleted and added rules and recommended
-- actions, a channel and queued notifications.
CREATE ROLE app_owner LOGIN;
CREATE SCHEMA app AUTHORIZATION app_owner;
CREATE TABLE app.events (
    id bigserial, entity text NOT NULL, ts timestamptz NOT NULL,
    amount numeric(12,2), latency float8, kind text
);
ALTER TABLE app.events OWNER TO app_owner;
INSERT INTO app.events (entity, ts, amount, latency, kind)
SELECT 'e' || (i % 7), timestamptz '2026-11-01 00:00+00' + i * interval '7 minutes',
       (i % 13) * 1.25, (i % 17) * 3.5, CASE WHEN i % 3 = 0 THEN 'paid' ELSE 'free' END
FROM generate_series(1, 3000) i;
SELECT vigil.create_rollup('app.events_1h', 'app.events', 'ts', '1 hour', ARRAY['entity'],
    '{"n": {"agg": "count"},
      "paid": {"agg": "count", "filter": "kind = ''paid''"},
      "revenue": {"agg": "sum", "column": "amount"},
      "lat": {"agg": "stats", "column": "latency"},
      "p": {"agg": "percentile", "column": "latency"},
      "worst": {"agg": "max", "column": "latency"}}');

CREATE TABLE public.measures (ts timestamptz NOT NULL, site text NOT NULL, v float8)
    PARTITION BY RANGE (ts);
CREATE TABLE public.measures_2026_11 PARTITION OF public.measures
    FOR VALUES FROM ('2026-11-01') TO ('2026-12-01');
CREATE TABLE public.measures_2026_12 PARTITION OF public.measures
    FOR VALUES FROM ('2026-12-01') TO ('2027-01-01');
INSERT INTO public.measures
SELECT timestamptz '2026-11-20 00:00+00' + i * interval '13 minutes', 's' || (i % 3), i % 11
FROM generate_series(1, 4000) i;
SELECT vigil.create_rollup('public.measures_1d', 'public.measures', 'ts', '1 day', ARRAY['site'],
    '{"n": {"agg": "count"}, "total": {"agg": "sum", "column": "v"}, "low": {"agg": "min", "column": "v"}}');

-- A rollup the update cannot make a 0.2.0 one (0.2.0 refuses inheritance
-- around a source, and its owner gave it a child): it must not stop the
-- update for everyone else, nor keep any of 0.1.0's code.
CREATE TABLE app.clicks (ts timestamptz NOT NULL, entity text NOT NULL);
ALTER TABLE app.clicks OWNER TO app_owner;
INSERT INTO app.clicks SELECT timestamptz '2026-11-01 00:00+00' + i * interval '1 hour', 'e' || (i % 2)
FROM generate_series(1, 50) i;
SELECT vigil.create_rollup('app.clicks_1d', 'app.clicks', 'ts', '1 day', ARRAY['entity'], '{"n": {"agg": "count"}}');
SET ROLE app_owner;
CREATE TABLE app.clicks_more () INHERITS (app.clicks);
RESET ROLE;

SELECT vigil.create_monitor('busy_entities', 'count', 'app.events',
    '{"entity": "entity", "time": "ts", "window": "500 weeks", "thresholds": {"high": 10}}') > 0;
CREATE TABLE app.interactions (variant text NOT NULL, event text NOT NULL, at timestamptz NOT NULL DEFAULT now());
ALTER TABLE app.interactions OWNER TO app_owner;
SELECT vigil.create_monitor('kill_variants', 'early_kill', 'app.interactions',
    '{"variant": "variant", "event": "event", "view_events": ["view"],
      "kill_threshold": 0.5, "min_interactions": 10, "timeout": "10 minutes"}') > 0;

UPDATE vigil.rules SET threshold = 1.5 WHERE name = 'roas_below_2';
DELETE FROM vigil.rules WHERE name = 'impressions_below_1000';
SELECT vigil.create_rule('my_rule', 'signups', '<', 5, 'low') > 0;
DELETE FROM vigil.recommended_actions WHERE (anomaly_type, severity) IN
    (SELECT anomaly_type, severity FROM vigil.recommended_actions ORDER BY 1, 2 NULLS LAST LIMIT 1);

-- An open alert of a default rule (0.2.0 names its alerts ROAS_DROP).
SELECT count(*) > 0 FROM vigil.check_metric('roas', 1.0, 'campaign-1');
SELECT vigil.create_channel('hook', 'webhook', 'http://127.0.0.1:9/hook') > 0;
SELECT (vigil.raise_alert('spike', 'e1', 'high', 'spike on e1')).is_new;
SELECT (vigil.raise_alert('spike', 'e2', 'critical', 'spike on e2')).is_new;
