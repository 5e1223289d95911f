-- Metric rules (SPEC §3.4, scenario 4): applications push values with
-- vigil.check_metric, which records them and raises an alert for each enabled
-- rule on that metric whose condition holds, honouring the rule's cooldown.

-- Ids 1-999 are reserved for shipped default rules (vigil.default_rules),
-- so a default has the same id in every install and a restore can tell it
-- apart from the user's rules.
CREATE TABLE vigil.rules (
    id           bigint         GENERATED ALWAYS AS IDENTITY (START WITH 1000) PRIMARY KEY,
    name         text           NOT NULL UNIQUE CHECK (btrim(name) <> ''),
    metric       text           NOT NULL CHECK (btrim(metric) <> ''),
    operator     text           NOT NULL
                 CHECK (operator IN ('<', '<=', '>', '>=', '=', '!=', 'pct_drop', 'pct_rise')),
    threshold    float8         NOT NULL CHECK (threshold > '-Infinity' AND threshold < 'Infinity'),
    severity     vigil.severity NOT NULL,
    lookback     interval       NOT NULL DEFAULT '1 hour' CHECK (lookback >= interval '0'),
    cooldown     interval       NOT NULL DEFAULT '0' CHECK (cooldown >= interval '0'),
    anomaly_type text           NOT NULL DEFAULT 'rule' CHECK (btrim(anomaly_type) <> ''),
    description  text,
    enabled      bool           NOT NULL DEFAULT true,
    created_at   timestamptz    NOT NULL DEFAULT now(),
    updated_at   timestamptz    NOT NULL DEFAULT now(),
    CHECK (operator NOT IN ('pct_drop', 'pct_rise') OR (threshold > 0 AND lookback > interval '0')),
    -- 0.2.0: the alerts' alertname label (NULL: the rule's name) and labels.
    alertname    text           CHECK (btrim(alertname) <> ''),
    labels       jsonb          NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(labels) = 'object')
);
CREATE INDEX rules_metric_idx ON vigil.rules (metric) WHERE enabled;
COMMENT ON TABLE vigil.rules IS
    'Alert rules on pushed metrics: value <op> threshold, or pct_drop / pct_rise (percent change vs the entity''s '
    'average over lookback) >= threshold. cooldown: no new alert for the same rule and entity that soon after the last one '
    'closed';
COMMENT ON COLUMN vigil.rules.lookback IS
    'Window of earlier values the pct_drop / pct_rise baseline averages over; for plain comparisons, the window the '
    'pushed value is expected to describe (informational, copied into the alert details)';
COMMENT ON COLUMN vigil.rules.alertname IS
    'The alertname label of the rule''s alerts (NULL: the rule''s name); the defaults carry the seed''s names, e.g. ROAS_DROP';
COMMENT ON COLUMN vigil.rules.labels IS 'String labels added to every alert of the rule, e.g. {"team": "ads"}';
COMMENT ON COLUMN vigil.rules.cooldown IS
    'After the rule''s alert for an entity closed (resolved, dismissed, or last seen when it expired), no new alert '
    'for that entity until this has passed (repeats still bump the open alert); as a threshold monitor''s cooldown';

-- Shipped defaults (scenario 4; percentages in percent: budget_utilization 80
-- = 80%). vigil.rules starts as a copy; users edit, disable and delete those
-- copies. Dump/restore keeps those changes (see "Dump and restore" below).
CREATE TABLE vigil.default_rules (
    id           bigint         PRIMARY KEY CHECK (id BETWEEN 1 AND 999),
    name         text           NOT NULL UNIQUE,
    metric       text           NOT NULL,
    operator     text           NOT NULL,
    threshold    float8         NOT NULL,
    severity     vigil.severity NOT NULL,
    lookback     interval       NOT NULL,
    cooldown     interval       NOT NULL,
    anomaly_type text           NOT NULL DEFAULT 'rule',
    description  text,
    enabled      bool           NOT NULL DEFAULT true,
    alertname    text,
    labels       jsonb          NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE vigil.default_rules IS
    'The rules pg_vigil ships, as CREATE EXTENSION copied them into vigil.rules (same ids). Read-only reference: '
    'edit vigil.rules';

INSERT INTO vigil.default_rules (id, name, metric, operator, threshold, severity, lookback, cooldown, description,
                                 alertname) VALUES
    (1, 'roas_below_2', 'roas', '<', 2.0, 'high', '60 minutes', '30 minutes',
     'Return on ad spend below 2.0', 'ROAS_DROP'),
    (2, 'roas_below_3', 'roas', '<', 3.0, 'medium', '120 minutes', '60 minutes',
     'Return on ad spend below 3.0', 'ROAS_DROP'),
    (3, 'budget_80pct', 'budget_utilization', '>=', 80, 'medium', '24 hours', '6 hours',
     'Budget utilization at or above 80%', 'BUDGET_WARNING'),
    (4, 'budget_100pct', 'budget_utilization', '>=', 100, 'critical', '24 hours', '12 hours',
     'Budget exhausted: utilization at or above 100%', 'BUDGET_DEPLETED'),
    (5, 'ad_disapproved', 'ad_disapprovals', '>=', 1, 'critical', '10 minutes', '0',
     'At least one ad disapproved', 'AD_DISAPPROVED'),
    (6, 'ctr_drop_20pct', 'ctr', 'pct_drop', 20, 'medium', '60 minutes', '2 hours',
     'Click-through rate at least 20% below its 60-minute average', 'CTR_ANOMALY'),
    (7, 'conversion_spike_50pct', 'conversions', 'pct_rise', 50, 'low', '60 minutes', '2 hours',
     'Conversions at least 50% above their 60-minute average', 'CONVERSION_SPIKE'),
    (8, 'prediction_error_30pct', 'prediction_error', '>=', 30, 'low', '4 hours', '6 hours',
     'Prediction error at or above 30%', 'PREDICTION_MISS'),
    (9, 'cpa_above_100', 'cpa', '>', 100, 'high', '2 hours', '1 hour',
     'Cost per acquisition above 100', 'HIGH_CPA'),
    (10, 'impressions_below_1000', 'impressions', '<', 1000, 'medium', '1 hour', '2 hours',
     'Fewer than 1000 impressions', 'LOW_IMPRESSIONS');

INSERT INTO vigil.rules
    (id, name, metric, operator, threshold, severity, lookback, cooldown, anomaly_type, description, enabled,
     alertname, labels)
OVERRIDING SYSTEM VALUE
SELECT id, name, metric, operator, threshold, severity, lookback, cooldown, anomaly_type, description, enabled,
       alertname, labels
FROM vigil.default_rules ORDER BY id;

CREATE TABLE vigil.metric_values (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    metric      text        NOT NULL,
    entity      text        NOT NULL,
    value       float8      NOT NULL CHECK (value > '-Infinity' AND value < 'Infinity'),
    context     jsonb       NOT NULL DEFAULT '{}',
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX metric_values_lookback_idx ON vigil.metric_values (metric, entity, recorded_at) INCLUDE (value);
COMMENT ON TABLE vigil.metric_values IS
    'Every value pushed through vigil.check_metric; pct_drop / pct_rise rules average the entity''s values over their lookback';
SELECT pg_catalog.pg_extension_config_dump('vigil.metric_values', '');
SELECT pg_catalog.pg_extension_config_dump('vigil.metric_values_id_seq', '');

-- Dump and restore ------------------------------------------------------
-- A restore runs CREATE EXTENSION (which seeds the defaults again) and then
-- loads the dumped rows. So the dump holds only rules that differ from
-- their default (edited, renamed, disabled, or the user's own), plus a
-- tombstone per deleted default; on restore, a loaded rule replaces the
-- fresh default it collides with, and a loaded tombstone deletes its
-- default. Both work in either order of loading.

CREATE FUNCTION vigil._rule_is_default(rule vigil.rules) RETURNS bool
LANGUAGE sql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (
        SELECT 1 FROM vigil.default_rules d
        WHERE d.id = rule.id
          AND (d.name, d.metric, d.operator, d.threshold, d.severity, d.lookback, d.cooldown, d.anomaly_type, d.enabled)
              = (rule.name, rule.metric, rule.operator, rule.threshold, rule.severity, rule.lookback, rule.cooldown,
                 rule.anomaly_type, rule.enabled)
          AND d.description IS NOT DISTINCT FROM rule.description
          AND d.alertname IS NOT DISTINCT FROM rule.alertname AND d.labels = rule.labels)
$$;
COMMENT ON FUNCTION vigil._rule_is_default(vigil.rules) IS
    'Internal: true when the rule is a shipped default exactly as shipped (timestamps aside); such rows are left '
    'out of dumps, CREATE EXTENSION recreates them';
SELECT pg_catalog.pg_extension_config_dump('vigil.rules', 'WHERE NOT vigil._rule_is_default(rules)');
SELECT pg_catalog.pg_extension_config_dump('vigil.rules_id_seq', '');

CREATE TABLE vigil.deleted_default_rules (
    id         bigint      PRIMARY KEY,
    name       text        NOT NULL,
    deleted_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE vigil.deleted_default_rules IS
    'Default rules that are no longer in vigil.rules (by default id), kept by triggers: dumped, so that a restore '
    'deletes them again';
SELECT pg_catalog.pg_extension_config_dump('vigil.deleted_default_rules', '');

-- SECURITY DEFINER: vigil_admin's own DELETE on vigil.rules records the
-- tombstone in a table it cannot write.
CREATE FUNCTION vigil._rules_track_deleted_defaults() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_RELID <> 'vigil.rules'::regclass OR TG_WHEN <> 'AFTER' OR TG_LEVEL <> 'STATEMENT' THEN
        RAISE EXCEPTION USING ERRCODE = '39P01',
            MESSAGE = 'vigil._rules_track_deleted_defaults() runs only as the AFTER statement trigger of vigil.rules';
    END IF;
    INSERT INTO vigil.deleted_default_rules AS t (id, name)
    SELECT d.id, d.name FROM vigil.default_rules d
    WHERE NOT EXISTS (SELECT 1 FROM vigil.rules r WHERE r.id = d.id)
    ON CONFLICT (id) DO NOTHING;
    DELETE FROM vigil.deleted_default_rules t WHERE EXISTS (SELECT 1 FROM vigil.rules r WHERE r.id = t.id);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION vigil._rules_track_deleted_defaults() IS
    'Internal: AFTER statement trigger of vigil.rules; vigil.deleted_default_rules lists exactly the default ids '
    'missing from vigil.rules';
CREATE TRIGGER rules_track_deleted_defaults AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON vigil.rules
    FOR EACH STATEMENT EXECUTE FUNCTION vigil._rules_track_deleted_defaults();

-- Only a superuser's INSERT (a restore: CREATE EXTENSION pg_vigil needs
-- one) replaces a default; anyone else's collides as usual (23505), and
-- create_rule checks the name itself (42710).
CREATE FUNCTION vigil._rules_restore_replaces_default() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF coalesce((SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user), false)
       AND EXISTS (SELECT 1 FROM vigil.rules t
                   WHERE (t.id = NEW.id OR t.name = NEW.name) AND vigil._rule_is_default(t)) THEN
        DELETE FROM vigil.rules t WHERE (t.id = NEW.id OR t.name = NEW.name) AND vigil._rule_is_default(t);
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION vigil._rules_restore_replaces_default() IS
    'Internal: BEFORE INSERT row trigger of vigil.rules; a superuser''s INSERT (a restore) of a rule with the id or '
    'name of an unchanged default replaces that default';
CREATE TRIGGER rules_restore_replaces_default BEFORE INSERT ON vigil.rules
    FOR EACH ROW EXECUTE FUNCTION vigil._rules_restore_replaces_default();

CREATE FUNCTION vigil._deleted_default_rules_apply() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- Deleting fires the tracking trigger, which records this very id.
    IF EXISTS (SELECT 1 FROM vigil.rules r WHERE r.id = NEW.id AND vigil._rule_is_default(r)) THEN
        DELETE FROM vigil.rules r WHERE r.id = NEW.id AND vigil._rule_is_default(r);
    END IF;
    -- A tombstone is kept only for a default that is gone, and once.
    IF EXISTS (SELECT 1 FROM vigil.rules r WHERE r.id = NEW.id)
       OR EXISTS (SELECT 1 FROM vigil.deleted_default_rules t WHERE t.id = NEW.id) THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION vigil._deleted_default_rules_apply() IS
    'Internal: BEFORE INSERT row trigger of vigil.deleted_default_rules; a loaded tombstone deletes its default rule '
    'if that is still unchanged, and is skipped when the id is still in vigil.rules or already recorded';
CREATE TRIGGER deleted_default_rules_apply BEFORE INSERT ON vigil.deleted_default_rules
    FOR EACH ROW EXECUTE FUNCTION vigil._deleted_default_rules_apply();

-- Rule administration ---------------------------------------------------

CREATE FUNCTION vigil._check_rule(rule vigil.rules) RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM vigil._require_text(rule.name, 'name'),
            vigil._require_text(rule.metric, 'metric'),
            vigil._require_text(rule.anomaly_type, 'anomaly_type'),
            vigil._check_labels(coalesce(rule.labels, '{}'), 'labels');
    IF rule.alertname IS NOT NULL THEN
        PERFORM vigil._require_text(rule.alertname, 'alertname');
        PERFORM vigil._check_labels(jsonb_build_object('alertname', rule.alertname), 'alertname');
    END IF;
    IF rule.operator IS NULL OR rule.operator NOT IN ('<', '<=', '>', '>=', '=', '!=', 'pct_drop', 'pct_rise') THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('operator must be one of <, <=, >, >=, =, !=, pct_drop, pct_rise, got %s',
                             coalesce(quote_literal(rule.operator), 'NULL'));
    END IF;
    IF rule.threshold IS NULL OR rule.threshold IN ('NaN', 'Infinity', '-Infinity') THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('threshold must be a finite number, got %s', coalesce(rule.threshold::text, 'NULL'));
    END IF;
    IF rule.operator IN ('pct_drop', 'pct_rise') AND rule.threshold <= 0 THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('threshold of a %s rule must be a percentage > 0, got %s', rule.operator, rule.threshold);
    END IF;
    IF rule.severity IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004',
            MESSAGE = 'severity must not be NULL (allowed: info, low, medium, high, critical)';
    END IF;
    IF rule.lookback IS NULL OR rule.lookback < interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('lookback must be an interval >= 0, got %s', coalesce(rule.lookback::text, 'NULL'));
    END IF;
    IF rule.operator IN ('pct_drop', 'pct_rise') AND rule.lookback = interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('lookback of a %s rule must be > 0: it is the window of the baseline average', rule.operator);
    END IF;
    IF rule.cooldown IS NULL OR rule.cooldown < interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('cooldown must be an interval >= 0, got %s', coalesce(rule.cooldown::text, 'NULL'));
    END IF;
END
$$;
COMMENT ON FUNCTION vigil._check_rule(vigil.rules) IS
    'Internal: ERROR (22004, 22023) naming the first invalid field of a rule';

CREATE FUNCTION vigil.create_rule(
    name text,
    metric text,
    operator text,
    threshold float8,
    severity vigil.severity,
    lookback interval DEFAULT '1 hour',
    cooldown interval DEFAULT '0',
    description text DEFAULT NULL,
    anomaly_type text DEFAULT 'rule',
    alertname text DEFAULT NULL,
    labels jsonb DEFAULT '{}'
) RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    r vigil.rules;
BEGIN
    r.name := create_rule.name;
    r.metric := create_rule.metric;
    r.operator := create_rule.operator;
    r.threshold := create_rule.threshold;
    r.severity := create_rule.severity;
    r.lookback := create_rule.lookback;
    r.cooldown := create_rule.cooldown;
    r.anomaly_type := create_rule.anomaly_type;
    r.alertname := create_rule.alertname;
    r.labels := coalesce(create_rule.labels, '{}');
    PERFORM vigil._check_rule(r);
    -- Checked here, not only by the unique index: create_rule runs as a
    -- superuser, whose INSERT would replace an unchanged default.
    IF EXISTS (SELECT 1 FROM vigil.rules t WHERE t.name = r.name) THEN
        RAISE unique_violation;
    END IF;
    INSERT INTO vigil.rules (name, metric, operator, threshold, severity, lookback, cooldown, anomaly_type, description,
                             alertname, labels)
    VALUES (r.name, r.metric, r.operator, r.threshold, r.severity, r.lookback, r.cooldown, r.anomaly_type,
            create_rule.description, r.alertname, r.labels)
    RETURNING id INTO r.id;
    RETURN r.id;
EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION USING ERRCODE = '42710',
        MESSAGE = format('rule %s already exists', quote_literal(create_rule.name)),
        HINT = 'Use vigil.update_rule to change it, or pick another name.';
END
$$;
COMMENT ON FUNCTION vigil.create_rule(text, text, text, float8, vigil.severity, interval, interval, text, text, text, jsonb) IS
    'Create an enabled rule; returns its id. alertname (default the rule''s name) and labels go on its alerts. '
    'ERROR 42710 when the name is taken, 22023 for an unknown operator, a negative interval or bad labels';

CREATE FUNCTION vigil._rule_by_name(name text) RETURNS vigil.rules
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r vigil.rules;
BEGIN
    PERFORM vigil._require_text(name, 'name');
    SELECT * INTO r FROM vigil.rules t WHERE t.name = _rule_by_name.name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('rule %s does not exist', quote_literal(name));
    END IF;
    RETURN r;
END
$$;
COMMENT ON FUNCTION vigil._rule_by_name(text) IS
    'Internal: lock and return a rule by name; ERROR P0002 when there is none';

CREATE FUNCTION vigil.update_rule(
    name text,
    metric text DEFAULT NULL,
    operator text DEFAULT NULL,
    threshold float8 DEFAULT NULL,
    severity vigil.severity DEFAULT NULL,
    lookback interval DEFAULT NULL,
    cooldown interval DEFAULT NULL,
    description text DEFAULT NULL,
    anomaly_type text DEFAULT NULL,
    enabled bool DEFAULT NULL,
    alertname text DEFAULT NULL,
    labels jsonb DEFAULT NULL
) RETURNS vigil.rules
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    r vigil.rules := vigil._rule_by_name(update_rule.name);
BEGIN
    r.metric := coalesce(update_rule.metric, r.metric);
    r.operator := coalesce(update_rule.operator, r.operator);
    r.threshold := coalesce(update_rule.threshold, r.threshold);
    r.severity := coalesce(update_rule.severity, r.severity);
    r.lookback := coalesce(update_rule.lookback, r.lookback);
    r.cooldown := coalesce(update_rule.cooldown, r.cooldown);
    r.description := coalesce(update_rule.description, r.description);
    r.anomaly_type := coalesce(update_rule.anomaly_type, r.anomaly_type);
    r.enabled := coalesce(update_rule.enabled, r.enabled);
    r.alertname := coalesce(update_rule.alertname, r.alertname);
    r.labels := coalesce(update_rule.labels, r.labels);
    PERFORM vigil._check_rule(r);
    UPDATE vigil.rules t
    SET metric = r.metric, operator = r.operator, threshold = r.threshold, severity = r.severity,
        lookback = r.lookback, cooldown = r.cooldown, description = r.description,
        anomaly_type = r.anomaly_type, enabled = r.enabled, alertname = r.alertname, labels = r.labels,
        updated_at = now()
    WHERE t.id = r.id
    RETURNING * INTO r;
    RETURN r;
END
$$;
COMMENT ON FUNCTION vigil.update_rule(text, text, text, float8, vigil.severity, interval, interval, text, text, bool, text, jsonb) IS
    'Change the given fields of a rule (NULL leaves a field unchanged); returns the updated rule. ERROR P0002 for an '
    'unknown name, 22023 for invalid values';

CREATE FUNCTION vigil.enable_rule(name text) RETURNS vigil.rules
LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT vigil.update_rule(name, enabled => true)
$$;
COMMENT ON FUNCTION vigil.enable_rule(text) IS 'Enable a rule; returns it. ERROR P0002 for an unknown name';

CREATE FUNCTION vigil.disable_rule(name text) RETURNS vigil.rules
LANGUAGE sql VOLATILE PARALLEL UNSAFE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT vigil.update_rule(name, enabled => false)
$$;
COMMENT ON FUNCTION vigil.disable_rule(text) IS
    'Disable a rule (check_metric skips it; its open alerts stay open); returns it. ERROR P0002 for an unknown name';

CREATE FUNCTION vigil.delete_rule(name text) RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r vigil.rules := vigil._rule_by_name(name);
BEGIN
    DELETE FROM vigil.rules t WHERE t.id = r.id;
    RETURN r.id;
END
$$;
COMMENT ON FUNCTION vigil.delete_rule(text) IS
    'Delete a rule; returns its id. Its alerts are kept (alerts.rule holds the name). ERROR P0002 for an unknown name';

-- Evaluation ------------------------------------------------------------

CREATE FUNCTION vigil.check_metric(metric text, value float8, entity text, context jsonb DEFAULT '{}')
RETURNS SETOF vigil.alerts
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    val float8 := check_metric.value;
    ctx jsonb := coalesce(check_metric.context, '{}');
    r vigil.rules;
    baseline numeric;
    change numeric;
    breached bool;
    dk text;
    title text;
    details jsonb;
    raised bigint[] := '{}';
    res record;
BEGIN
    PERFORM vigil._require_text(check_metric.metric, 'metric'),
            vigil._require_text(check_metric.entity, 'entity');
    IF val IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'value must not be NULL';
    END IF;
    IF val IN ('NaN', 'Infinity', '-Infinity') THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('value must be a finite number, got %s', val);
    END IF;
    IF jsonb_typeof(ctx) <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('context must be a JSON object, got %s', jsonb_typeof(ctx));
    END IF;

    FOR r IN
        SELECT * FROM vigil.rules t WHERE t.metric = check_metric.metric AND t.enabled ORDER BY t.name
    LOOP
        change := NULL;
        baseline := NULL;
        IF r.operator IN ('pct_drop', 'pct_rise') THEN
            -- Earlier values only: this one is recorded after the rules ran.
            -- In numeric so that a drop of exactly the threshold (0.05 -> 0.04 is 20%) counts.
            SELECT avg(m.value::numeric) INTO baseline
            FROM vigil.metric_values m
            WHERE m.metric = check_metric.metric AND m.entity = check_metric.entity
              AND m.recorded_at >= now() - r.lookback;
            CONTINUE WHEN baseline IS NULL OR baseline = 0;
            change := (val::numeric - baseline) / abs(baseline) * 100;
            breached := CASE r.operator
                WHEN 'pct_drop' THEN -change >= r.threshold::numeric
                ELSE change >= r.threshold::numeric
            END;
        ELSE
            breached := CASE r.operator
                WHEN '<' THEN val < r.threshold
                WHEN '<=' THEN val <= r.threshold
                WHEN '>' THEN val > r.threshold
                WHEN '>=' THEN val >= r.threshold
                WHEN '=' THEN val = r.threshold
                WHEN '!=' THEN val <> r.threshold
            END;
        END IF;
        CONTINUE WHEN NOT breached;

        -- One incident per rule and entity (no date in the key): repeats bump
        -- the open alert. The cooldown only holds back a *new* alert after the
        -- last one was closed, so a flapping metric does not page again at once.
        dk := format('rule:%s:%s', r.name, check_metric.entity);
        CONTINUE WHEN r.cooldown > interval '0'
            AND EXISTS (SELECT 1 FROM vigil.alerts a
                        WHERE a.dedup_key = dk
                          AND coalesce(a.resolved_at, a.dismissed_at, a.last_seen_at) > now() - r.cooldown)
            AND NOT EXISTS (SELECT 1 FROM vigil.alerts a
                            WHERE a.dedup_key = dk AND a.status IN ('firing', 'acknowledged'));

        IF change IS NULL THEN
            title := format('%s: %s %s %s %s for %s', r.name, r.metric, val, r.operator, r.threshold, check_metric.entity);
        ELSE
            title := format('%s: %s %s is %s%% %s its %s-minute average %s for %s',
                            r.name, r.metric, val, trim_scale(round(abs(change), 1)),
                            CASE WHEN change < 0 THEN 'below' ELSE 'above' END,
                            trim_scale(round(extract(epoch FROM r.lookback) / 60, 1)),
                            trim_scale(round(baseline, 6)), check_metric.entity);
        END IF;
        details := jsonb_build_object(
            'metric', r.metric, 'value', val, 'operator', r.operator, 'threshold', r.threshold,
            'lookback_seconds', trim_scale(extract(epoch FROM r.lookback)), 'context', ctx);
        IF change IS NOT NULL THEN
            details := details || jsonb_build_object('baseline', trim_scale(round(baseline, 6)), 'pct_change', trim_scale(round(change, 2)));
        END IF;

        -- The window covers the cooldown so that a repeat inside the cooldown
        -- always finds the open alert rather than starting a new one.
        SELECT * INTO res FROM vigil.raise_alert(
            anomaly_type => r.anomaly_type, entity => check_metric.entity, severity => r.severity,
            title => title, summary => r.description, details => details, rule => r.name,
            dedup_key => dk, dedup_window => greatest(interval '24 hours', r.cooldown),
            labels => r.labels || jsonb_strip_nulls(jsonb_build_object('alertname', r.alertname)));
        raised := raised || res.alert_id;
    END LOOP;

    INSERT INTO vigil.metric_values (metric, entity, value, context)
    VALUES (check_metric.metric, check_metric.entity, val, ctx);

    RETURN QUERY SELECT * FROM vigil.alerts a WHERE a.id = ANY (raised) ORDER BY a.id;
END
$$;
COMMENT ON FUNCTION vigil.check_metric(text, float8, text, jsonb) IS
    'Record a metric value and evaluate the enabled rules on that metric; returns the alerts raised or bumped. '
    'Dedup key rule:{rule}:{entity}. Within a rule''s cooldown a breach bumps the open alert but never creates a new one. '
    'ERROR 22023 for NaN/Infinity';

-- Views -----------------------------------------------------------------

CREATE VIEW vigil.rule_history AS
SELECT a.id AS alert_id, a.rule, a.details ->> 'metric' AS metric, a.details ->> 'operator' AS operator,
       (a.details ->> 'threshold')::float8 AS threshold, (a.details ->> 'value')::float8 AS last_value,
       a.entity, a.severity, a.urgency, a.status, a.occurrences,
       a.created_at, a.last_seen_at, a.acknowledged_by, a.acknowledged_at, a.resolved_by, a.resolved_at, a.title
FROM vigil.alerts a
WHERE a.rule IS NOT NULL
ORDER BY a.created_at DESC, a.id DESC;
COMMENT ON VIEW vigil.rule_history IS
    'Alerts raised by rules, newest first, with the rule condition and the last value seen';

CREATE VIEW vigil.rule_stats AS
SELECT r.id, r.name, r.metric, r.operator, r.threshold, r.severity, r.lookback, r.cooldown, r.enabled,
       count(a.id) AS times_fired,
       coalesce(sum(a.occurrences), 0) AS total_occurrences,
       max(a.created_at) AS last_fired,
       max(a.last_seen_at) AS last_seen,
       count(a.id) FILTER (WHERE a.status IN ('firing', 'acknowledged')) AS open_alerts
FROM vigil.rules r
LEFT JOIN vigil.alerts a ON a.rule = r.name
GROUP BY r.id
ORDER BY r.name;
COMMENT ON VIEW vigil.rule_stats IS
    'Per rule: alerts raised (times_fired), total occurrences, last fired and last seen, open alerts';

-- Writers go through these functions; roles get EXECUTE in the roles module.
REVOKE EXECUTE ON FUNCTION
    vigil.create_rule(text, text, text, float8, vigil.severity, interval, interval, text, text, text, jsonb),
    vigil.update_rule(text, text, text, float8, vigil.severity, interval, interval, text, text, bool, text, jsonb),
    vigil.enable_rule(text),
    vigil.disable_rule(text),
    vigil.delete_rule(text),
    vigil.check_metric(text, float8, text, jsonb),
    vigil._rule_by_name(text),
    vigil._rules_track_deleted_defaults(),
    vigil._rules_restore_replaces_default(),
    vigil._deleted_default_rules_apply()
FROM PUBLIC;
