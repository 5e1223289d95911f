-- A COMMENT ON every function and aggregate pg_vigil defines in Rust (the
-- SQL-defined ones carry theirs beside their definition). Runs last
-- (finalize); pg_functions_have_comments (src/sql_tests.rs) fails the
-- build when a function has none.

-- Types' I/O and aggregate support ------------------------------------------
COMMENT ON FUNCTION vigil.statsagg_in(cstring) IS 'Input of vigil.statsagg: (n:…,mean:…,m2:…,min:…,max:…); refuses summaries no values could produce';
COMMENT ON FUNCTION vigil.statsagg_out(vigil.statsagg) IS 'Output of vigil.statsagg, exact (round-trips through statsagg_in)';
COMMENT ON FUNCTION vigil.statsagg_send(vigil.statsagg) IS 'Binary output of vigil.statsagg (COPY BINARY, binary protocol): its stored bytes';
COMMENT ON FUNCTION vigil.statsagg_recv(internal) IS 'Binary input of vigil.statsagg: the bytes statsagg_send wrote, checked like stored ones';
COMMENT ON FUNCTION vigil.sketch_send(vigil.sketch) IS 'Binary output of vigil.sketch (COPY BINARY, binary protocol): its stored bytes';
COMMENT ON FUNCTION vigil.sketch_recv(internal) IS 'Binary input of vigil.sketch: the bytes sketch_send wrote, checked like stored ones';
COMMENT ON FUNCTION vigil.sketch_in(cstring) IS 'Input of vigil.sketch (the text form sketch_out prints)';
COMMENT ON FUNCTION vigil.sketch_out(vigil.sketch) IS 'Output of vigil.sketch: relative error, count and runs of buckets';
COMMENT ON FUNCTION vigil.stats_agg_trans(vigil.stats_state, double precision) IS 'Internal: transition of vigil.stats_agg(float8)';
COMMENT ON FUNCTION vigil.stats_rollup_trans(vigil.stats_state, vigil.statsagg) IS 'Internal: transition of vigil.rollup(statsagg)';
COMMENT ON FUNCTION vigil.stats_agg_combine(vigil.stats_state, vigil.stats_state) IS 'Internal: combine function of the statsagg aggregates (parallel workers, Citus coordinators)';
COMMENT ON FUNCTION vigil.stats_agg_final(vigil.stats_state) IS 'Internal: final function of the statsagg aggregates';
COMMENT ON FUNCTION vigil.stats_state_in(cstring) IS 'Internal: text input of vigil.stats_state';
COMMENT ON FUNCTION vigil.stats_state_out(vigil.stats_state) IS 'Internal: text output of vigil.stats_state';
COMMENT ON FUNCTION vigil.stats_state_recv(internal) IS 'Internal: binary input of vigil.stats_state';
COMMENT ON FUNCTION vigil.stats_state_send(vigil.stats_state) IS 'Internal: binary output of vigil.stats_state';
COMMENT ON FUNCTION vigil.percentile_agg_trans(vigil.sketch_state, double precision) IS 'Internal: transition of vigil.percentile_agg(float8) at the default relative error';
COMMENT ON FUNCTION vigil.percentile_agg_trans(vigil.sketch_state, double precision, double precision) IS 'Internal: transition of vigil.percentile_agg(float8, relative_error)';
COMMENT ON FUNCTION vigil.sketch_rollup_trans(vigil.sketch_state, vigil.sketch) IS 'Internal: transition of vigil.rollup(sketch)';
COMMENT ON FUNCTION vigil.sketch_combine(vigil.sketch_state, vigil.sketch_state) IS 'Internal: combine function of the sketch aggregates (parallel workers, Citus coordinators)';
COMMENT ON FUNCTION vigil.sketch_final(vigil.sketch_state) IS 'Internal: final function of the sketch aggregates';
COMMENT ON FUNCTION vigil.sketch_state_in(cstring) IS 'Internal: text input of vigil.sketch_state (the text form of vigil.sketch)';
COMMENT ON FUNCTION vigil.sketch_state_out(vigil.sketch_state) IS 'Internal: text output of vigil.sketch_state';
COMMENT ON FUNCTION vigil.sketch_state_recv(internal) IS 'Internal: binary input of vigil.sketch_state';
COMMENT ON FUNCTION vigil.sketch_state_send(vigil.sketch_state) IS 'Internal: binary output of vigil.sketch_state';

-- Statistics ------------------------------------------------------------------
COMMENT ON FUNCTION vigil.num_vals(vigil.statsagg) IS 'Number of values summarised';
COMMENT ON FUNCTION vigil.mean(vigil.statsagg) IS 'Mean of the summarised values; NULL when empty';
COMMENT ON FUNCTION vigil.stddev(vigil.statsagg) IS 'Sample standard deviation (n - 1); NULL for fewer than 2 values';
COMMENT ON FUNCTION vigil.stddev_pop(vigil.statsagg) IS 'Population standard deviation (n); NULL when empty';
COMMENT ON FUNCTION vigil.variance(vigil.statsagg) IS 'Sample variance (n - 1); NULL for fewer than 2 values';
COMMENT ON FUNCTION vigil.variance_pop(vigil.statsagg) IS 'Population variance (n); NULL when empty';
COMMENT ON FUNCTION vigil.min_val(vigil.statsagg) IS 'Smallest summarised value; NULL when empty or after a removal took away the minimum';
COMMENT ON FUNCTION vigil.max_val(vigil.statsagg) IS 'Largest summarised value; NULL when empty or after a removal took away the maximum';
COMMENT ON FUNCTION vigil.zscore(vigil.statsagg, double precision) IS 'z-score of value against the summary: (value - mean) / stddev; NULL without spread';
COMMENT ON FUNCTION vigil.zscore(double precision, double precision, double precision) IS 'z-score (value - mean) / stddev; NULL when stddev is 0 or NULL';
COMMENT ON FUNCTION vigil.is_anomaly(double precision, double precision) IS 'Whether |z| is strictly above threshold (default 3)';
COMMENT ON FUNCTION vigil.add_value(vigil.statsagg, double precision) IS 'The summary with one more value';
COMMENT ON FUNCTION vigil.remove_value(vigil.statsagg, double precision) IS 'The summary without one value it holds; min/max become unknown (NULL) when that value was an extreme';
COMMENT ON FUNCTION vigil.merge(vigil.statsagg, vigil.statsagg) IS 'The summary of both summaries'' values (exact parallel combination)';
COMMENT ON FUNCTION vigil.subtract(vigil.statsagg, vigil.statsagg) IS 'The summary of a''s values without b''s (b must be part of a); rounding residue clamped';
COMMENT ON FUNCTION vigil._stats_of(double precision) IS 'Internal: the summary of one value (what a rollup adds for a single-row INSERT)';
COMMENT ON FUNCTION vigil._stats_with_extremes(vigil.statsagg, double precision, double precision) IS 'Internal: rollup repair; the summary with the group''s recomputed min and max (NULLs: unchanged)';
COMMENT ON FUNCTION vigil.hour_of_week(timestamp with time zone, text) IS 'Hour of the week 0-167 on the wall clock of time zone tz (default UTC): Monday 00:00 is 0, Sunday 23:00 is 167';

-- Sketches --------------------------------------------------------------------
COMMENT ON FUNCTION vigil.num_vals(vigil.sketch) IS 'Number of values counted in the sketch';
COMMENT ON FUNCTION vigil.relative_error(vigil.sketch) IS 'The relative error the sketch guarantees for its quantiles';
COMMENT ON FUNCTION vigil.approx_percentile(vigil.sketch, double precision) IS 'Value at quantile q (0-1), within the sketch''s relative error; NULL for an empty sketch';
COMMENT ON FUNCTION vigil.approx_median(vigil.sketch) IS 'approx_percentile(sketch, 0.5)';
COMMENT ON FUNCTION vigil.add_value(vigil.sketch, double precision) IS 'The sketch with one more value';
COMMENT ON FUNCTION vigil.remove_value(vigil.sketch, double precision) IS 'The sketch without one value it counts; ERROR 22023 for a value it does not hold';
COMMENT ON FUNCTION vigil.merge(vigil.sketch, vigil.sketch) IS 'The sketch of both sketches'' values (same relative error)';
COMMENT ON FUNCTION vigil.subtract(vigil.sketch, vigil.sketch) IS 'The sketch of a''s values without b''s; ERROR 22023 when b is not part of a';
COMMENT ON FUNCTION vigil._sketch_of(double precision, double precision) IS 'Internal: the sketch of one value at a relative error (what a rollup adds for a single-row INSERT)';

-- Scoring ---------------------------------------------------------------------
COMMENT ON FUNCTION vigil.severity_above(double precision, double precision, double precision, double precision) IS 'Severity of a value that is worse when larger: critical/high/medium at or above those thresholds, else NULL';
COMMENT ON FUNCTION vigil.severity_below(double precision, double precision, double precision, double precision) IS 'Severity of a value that is worse when smaller: critical/high/medium at or below those thresholds, else NULL';
COMMENT ON FUNCTION vigil.saturation_status(double precision, double precision, double precision, double precision) IS 'Audience saturation RED / YELLOW / GREEN / UNKNOWN from 24 h conversion and volume against their baselines (SPEC §3.2)';
COMMENT ON FUNCTION vigil.saturation_predicted(double precision, double precision, integer) IS 'Whether saturation is predicted from the conversion and volume z-scores and consecutive days of decline; NULL when unknown';
COMMENT ON FUNCTION vigil.exhaustion_score(double precision, double precision, double precision, double precision, integer) IS 'Audience exhaustion score 0-100 from conversion, volume and consecutive days of decline; NULL when unknown';
COMMENT ON FUNCTION vigil.urgency_score(vigil.severity, double precision, text, double precision, numeric, integer, double precision) IS 'Urgency 0-100 from severity and optional aggravating factors (drop points, health zone, stall days, deal value, failures, wait hours)';
COMMENT ON FUNCTION vigil.urgency_band(integer) IS 'Response band of an urgency score: immediate, hours, within 24h, this week, backlog';
COMMENT ON FUNCTION vigil.dedup_key(text, text, timestamp with time zone) IS '{type}_{entity}_{YYYY-MM-DD} with the UTC date of at (default now())';
COMMENT ON FUNCTION vigil.early_kill_decision(double precision, bigint, bigint, timestamp with time zone, timestamp with time zone, double precision, integer, interval) IS 'kill, expired or continue for a variant under test (scenario 3)';

-- Rollups ---------------------------------------------------------------------
COMMENT ON FUNCTION vigil._create_rollup(text, oid, text, interval, text[], jsonb) IS 'Internal: vigil.create_rollup''s work, as the source''s owner';
COMMENT ON FUNCTION vigil._verify_rollup(oid) IS 'Internal: vigil.verify_rollup''s work';
COMMENT ON FUNCTION vigil._rebuild_rollup(oid) IS 'Internal: vigil.rebuild_rollup''s work';
COMMENT ON FUNCTION vigil._drop_rollup(oid) IS 'Internal: vigil.drop_rollup''s work';
COMMENT ON FUNCTION vigil._create_rolling(text, oid, interval) IS 'Internal: vigil.create_rolling''s work, as the source''s owner';
COMMENT ON FUNCTION vigil._age_rolling(oid) IS 'Internal: vigil.age_rolling''s work';
COMMENT ON FUNCTION vigil._verify_rolling(oid) IS 'Internal: vigil.verify_rolling''s work';
COMMENT ON FUNCTION vigil._drop_rolling(oid) IS 'Internal: vigil.drop_rolling''s work';
COMMENT ON FUNCTION vigil._rolling_stats(oid) IS 'Internal: cutoff, groups and unfolded slot rows of a rolling total, read as its owner';
COMMENT ON FUNCTION vigil._set_rollup_on_detach(oid, text) IS 'Internal: vigil.set_rollup_on_detach''s work';
COMMENT ON FUNCTION vigil._early_kill_trigger() IS
    'Internal: statement trigger of early_kill monitors; counts views and interactions per registered variant and decides';
COMMENT ON FUNCTION vigil._rollup_trigger() IS 'Internal: the statement trigger every rollup shares (INSERT, UPDATE, DELETE, TRUNCATE); runs as the source''s owner, restricted';
COMMENT ON FUNCTION vigil._rollup_slot(oid, integer) IS 'Internal: the slot of a group that no other inserting transaction holds (never waits)';
COMMENT ON FUNCTION vigil._rollup_slot_held(oid, integer, integer) IS 'Internal: whether a removal may lock and fold a slot row (at commit, only the slot rows this transaction holds)';
COMMENT ON FUNCTION vigil._rollup_size(regclass) IS 'Internal: a summary''s size for vigil.rollups, NULL while another transaction locks it';
COMMENT ON FUNCTION vigil._rollup_stats(oid) IS 'Internal: rows and groups of a summary, read as its owner';

-- Monitors, notifications, the worker ----------------------------------------
COMMENT ON FUNCTION vigil._monitor_plan(text, jsonb, text, jsonb) IS 'Internal: a monitor''s options checked and defaulted, and its scan query (a source that is no rollup''s summary)';
COMMENT ON FUNCTION vigil._monitor_plan(text, jsonb, text, jsonb, jsonb) IS 'Internal: a monitor''s options checked and defaulted, and its scan query, over a rollup''s summary when the last argument is its definition (vigil._source_rollup)';
COMMENT ON FUNCTION vigil._monitor_run(bigint) IS 'Internal: runs one monitor''s query as its source''s owner, restricted, under its timeout; jsonb rows';
COMMENT ON FUNCTION vigil._scan(text) IS 'Internal: the scan loop of vigil.scan() (src/monitor/scan.rs), run by its SECURITY DEFINER wrapper';
COMMENT ON FUNCTION vigil._monitor_labels(jsonb, text) IS
    'Internal: the labels a monitor gives its alerts: options.labels, options.alertname, and subkey (the finding''s key '
    'suffix, e.g. a stall monitor''s status) when there is one';
COMMENT ON FUNCTION vigil._kind_default_actions() IS 'Internal: the recommended actions each monitor kind ships for its anomaly types (src/monitor/kinds), which fill vigil.default_recommended_actions';
COMMENT ON FUNCTION vigil._monitor_kind_trigger(text) IS 'Internal: the statement trigger function a monitor kind that decides on write adds to its source (early_kill), NULL for a kind that scans';
COMMENT ON FUNCTION vigil.monitor_kinds() IS 'The kinds vigil.create_monitor accepts, in the order its errors list them';
COMMENT ON FUNCTION vigil._base_type(oid, integer) IS 'Internal: format_type of a type''s base type (itself unless a domain), NULL for no type';
COMMENT ON FUNCTION vigil._channel_kind_traits(text) IS 'Internal: what a channel kind decides for its rows (groups, always_resolved, default_max_per_second), applied by the channels trigger; NULL for a kind that is none';
COMMENT ON FUNCTION vigil._is_notification_event(text) IS 'Internal: whether a queued notification may carry this event (the CHECK of vigil.notifications.event); the list is the library''s';
COMMENT ON FUNCTION vigil._check_channel(text, text, jsonb) IS 'Internal: ERROR 22004/22023 naming what is wrong with a channel''s kind, url or headers (never repeating the URL)';
COMMENT ON FUNCTION vigil._json_size(text, text, integer) IS 'Internal: size in bytes of a JSON document; ERROR 54000 when nested too deep, 22023 when unreadable';
COMMENT ON FUNCTION vigil.redact_url(text) IS 'Scheme and host of a URL, for messages and logs (the rest may hold secrets)';
COMMENT ON FUNCTION vigil._pg_notify_payload(jsonb, text) IS 'Internal: what LISTENers get for an alert event (channel vigil_alerts, pg_notify channels): {"id", "event"} only, since any role can LISTEN';
COMMENT ON FUNCTION vigil.slack_payload(jsonb, text) IS 'The Slack message (a Block Kit body in the severity''s colour) for an alert (to_jsonb of a vigil.alerts row) and an event';
COMMENT ON FUNCTION vigil.pagerduty_payload(jsonb, text) IS 'The PagerDuty Events API v2 event (trigger, acknowledge or resolve; dedup_key the alert fingerprint) for an alert and an event, without the routing key (the worker adds it from the channel''s options)';
COMMENT ON FUNCTION vigil.alertmanager_payload(jsonb, text) IS 'The Alertmanager API v2 body (an array of one postableAlert) for an alert and an event: endsAt four vigil.alertmanager_resend_intervals ahead while open, the closing time once closed';
COMMENT ON FUNCTION vigil._alertmanager_batches(bigint[], int) IS 'Internal: the Alertmanager bodies re-posting these open alerts (at most 200 read), each within cap bytes';
COMMENT ON FUNCTION vigil._alertmanager_resend_seconds() IS 'Internal: vigil.alertmanager_resend_interval, in seconds';
COMMENT ON FUNCTION vigil.email_payload(jsonb, text) IS 'The email (subject, text and HTML parts, as a JSON object) for an alert and an event';
COMMENT ON FUNCTION vigil.msteams_payload(jsonb, text) IS 'The Microsoft Teams Workflows webhook message (an Adaptive Card) for an alert and an event';
COMMENT ON FUNCTION vigil._check_channel_options(text, jsonb) IS 'Internal: ERROR 22023 naming what is wrong when a channel''s options do not suit its kind (pagerduty: routing_key); never repeats the values';
COMMENT ON FUNCTION vigil.webhook_payload(jsonb, text, text) IS 'The webhook body (Alertmanager webhook v4 plus vigil) for an alert, an event and a receiver name';
COMMENT ON FUNCTION vigil._group_message(text, text, bigint[], jsonb, integer) IS 'Internal: the Slack message or webhook (Alertmanager''s grouped shape) for a group of alerts, read from vigil.alerts (at most 200, open first, worst and newest first, long texts cut, large details dropped), within a byte cap; alerts left out are counted in truncatedAlerts';
COMMENT ON FUNCTION vigil._wake_worker() IS 'Internal: wakes the pg_vigil worker at commit';
COMMENT ON FUNCTION vigil._metrics() IS 'The counters vigil.metrics shows (name, channel_kind, severity, le, value), read from shared memory; no rows unless pg_vigil is preloaded';
COMMENT ON FUNCTION vigil._count_alert(text, text) IS 'Internal: counts an alert event (new, resolved, dismissed, expired; others are not counted) of a severity in vigil.metrics when the transaction commits';
COMMENT ON FUNCTION vigil._count_scan(integer) IS 'Internal: counts a vigil.scan() run and its failed monitors in vigil.metrics when the transaction commits';
COMMENT ON FUNCTION vigil.worker_status() IS 'The pg_vigil worker as it last reported itself in shared memory: running, pid, state, database, heartbeat';

-- SQL-defined helpers -----------------------------------------------------------
COMMENT ON FUNCTION vigil._channels_check() IS 'Internal: BEFORE trigger of vigil.channels; every check of a channel row, with messages that never print its URL or headers';
COMMENT ON FUNCTION vigil._cron_job_name(text) IS 'Internal: the pg_cron job name of a scan schedule (vigil_scan, or vigil_scan:<monitor>)';
COMMENT ON FUNCTION vigil._require_cron() IS 'Internal: ERROR 55000 with a hint unless pg_cron is installed in this database';
COMMENT ON FUNCTION vigil._monitor_by_name(text) IS 'Internal: the monitor of that name, or ERROR 42704';
COMMENT ON FUNCTION vigil._set_monitor_enabled(text, boolean) IS 'Internal: enables or disables a monitor by name; returns it';

-- Routing, silences, inhibition, escalation ------------------------------------
COMMENT ON FUNCTION vigil._matchers(text[], text) IS 'Internal: Alertmanager matchers parsed and written canonically (name op "value"); ERROR 22023 naming argument[i] when one is malformed or its regex does not compile';
COMMENT ON FUNCTION vigil.labels_match(jsonb, text[]) IS 'Whether labels satisfy every matcher (Alertmanager syntax and semantics: =, !=, =~, !~; regexes RE2, anchored, linear time; a missing label reads as ""); an empty list always holds';
COMMENT ON FUNCTION vigil._matchers_equalities(text[]) IS 'Internal: the = matchers with a non-empty value as a labels object (what a matching alert''s labels contain)';
COMMENT ON FUNCTION vigil._routes_check() IS 'Internal: BEFORE trigger of vigil.routes: canonical matchers, existing channels, default position';
COMMENT ON FUNCTION vigil._silences_check() IS 'Internal: BEFORE trigger of vigil.silences: canonical matchers (one not matching an absent label), comment, times';
COMMENT ON FUNCTION vigil._inhibit_rules_check() IS 'Internal: BEFORE trigger of vigil.inhibit_rules: canonical matchers on both sides, equal label names';
COMMENT ON FUNCTION vigil._escalation_policies_check() IS 'Internal: BEFORE trigger of vigil.escalation_policies: canonical steps (intervals, existing channels), matchers';
COMMENT ON FUNCTION vigil._channel_references() IS 'Internal: triggers of vigil.channels: a channel a route or escalation step names cannot be dropped (2BP01); a rename follows into them';
