-- Retention: every table that grows with use has a purge function that
-- deletes old, finished rows and keeps whatever open alerts, queued
-- notifications, cooldowns, baselines and vigil.health still read.
-- Each call deletes at most max_rows (oldest first, skipping rows another
-- transaction has locked), so a large backlog is cleared by short
-- transactions called again and again rather than one long one.

CREATE FUNCTION vigil._retention_cutoff(older_than interval, max_rows bigint) RETURNS timestamptz
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF older_than IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'older_than must not be NULL';
    END IF;
    IF older_than < interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('older_than must be a non-negative interval, got %s', older_than);
    END IF;
    IF max_rows IS NOT NULL AND max_rows < 1 THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('max_rows must be at least 1 (NULL: no limit), got %s', max_rows);
    END IF;
    RETURN now() - older_than;
EXCEPTION WHEN datetime_field_overflow THEN
    RAISE EXCEPTION USING ERRCODE = '22008',
        MESSAGE = format('older_than is too large: now() - %s is out of the timestamp range', older_than);
END
$$;
COMMENT ON FUNCTION vigil._retention_cutoff(interval, bigint) IS
    'Internal: now() - older_than for the purge functions; ERROR 22004 for a NULL older_than, 22023 for a negative '
    'one or max_rows < 1, 22008 when the cutoff is out of the timestamp range';

CREATE FUNCTION vigil.purge_notifications(older_than interval DEFAULT '7 days', max_rows bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cutoff timestamptz := vigil._retention_cutoff(older_than, max_rows);
    n bigint;
BEGIN
    -- pending and sending rows are work still to do: never purged.
    DELETE FROM vigil.notifications t
    WHERE t.id IN (SELECT x.id FROM vigil.notifications x
                   WHERE x.status IN ('sent', 'failed', 'dead') AND x.updated_at < cutoff
                   ORDER BY x.id LIMIT max_rows
                   FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION vigil.purge_notifications(interval, bigint) IS
    'Delete finished (sent, failed, dead) notifications last changed before now() - older_than, at most max_rows '
    '(NULL: all), oldest first; pending and sending rows are kept. Returns how many';

CREATE FUNCTION vigil.purge_alerts(older_than interval DEFAULT '90 days', max_rows bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cutoff timestamptz := vigil._retention_cutoff(older_than, max_rows);
    n bigint;
BEGIN
    DELETE FROM vigil.alerts t
    WHERE t.id IN (
        SELECT a.id FROM vigil.alerts a
        WHERE a.status IN ('resolved', 'dismissed', 'expired')
          -- closed, and neither seen nor closed since the cutoff
          AND greatest(a.created_at, a.last_seen_at, a.resolved_at, a.dismissed_at,
                       CASE WHEN a.status = 'expired' THEN a.expires_at END) < cutoff
          -- its notifications still queued may be replayed or rendered
          AND NOT EXISTS (SELECT 1 FROM vigil.notifications q
                          WHERE q.alert_id = a.id AND q.status IN ('pending', 'sending'))
          -- a rule's and a threshold monitor's cooldown count from the
          -- closing of the last alert (its last sighting if it expired)
          AND NOT EXISTS (SELECT 1 FROM vigil.rules r
                          WHERE r.name = a.rule
                            AND coalesce(a.resolved_at, a.dismissed_at, a.last_seen_at) > now() - r.cooldown)
          AND NOT EXISTS (SELECT 1 FROM vigil.monitors m
                          WHERE m.name = a.monitor AND m.kind = 'threshold' AND m.options ? 'cooldown'
                            AND coalesce(a.resolved_at, a.dismissed_at, a.last_seen_at)
                                > now() - (m.options ->> 'cooldown')::interval)
        ORDER BY a.id LIMIT max_rows
        FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS n = ROW_COUNT;
    -- Groups whose alerts are all gone.
    DELETE FROM vigil.alert_groups g
    WHERE g.created_at < cutoff
      AND NOT EXISTS (SELECT 1 FROM vigil.alerts a WHERE a.group_id = g.id);
    RETURN n;
END
$$;
COMMENT ON FUNCTION vigil.purge_alerts(interval, bigint) IS
    'Delete closed (resolved, dismissed, expired) alerts neither seen nor closed since now() - older_than, at most '
    'max_rows (NULL: all), oldest first, then the alert groups older than that with no alert left. Keeps open and '
    'acknowledged alerts, alerts with pending or sending notifications, and alerts a rule or threshold monitor '
    'cooldown still counts from. Returns how many alerts';

CREATE FUNCTION vigil.purge_metric_values(older_than interval DEFAULT '30 days', max_rows bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cutoff timestamptz := vigil._retention_cutoff(older_than, max_rows);
    n bigint;
BEGIN
    DELETE FROM vigil.metric_values t
    WHERE t.id IN (
        SELECT m.id FROM vigil.metric_values m
        WHERE m.recorded_at < cutoff
          -- the baseline of a pct_drop / pct_rise rule on the metric
          AND NOT EXISTS (SELECT 1 FROM vigil.rules r
                          WHERE r.metric = m.metric AND r.operator IN ('pct_drop', 'pct_rise')
                            AND m.recorded_at >= now() - r.lookback)
        ORDER BY m.id LIMIT max_rows
        FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION vigil.purge_metric_values(interval, bigint) IS
    'Delete pushed metric values recorded before now() - older_than, at most max_rows (NULL: all), oldest first; '
    'values inside the lookback of a pct_drop / pct_rise rule on their metric are kept. Returns how many';

CREATE FUNCTION vigil.purge_scan_runs(older_than interval DEFAULT '30 days', max_rows bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cutoff timestamptz := vigil._retention_cutoff(older_than, max_rows);
    n bigint;
BEGIN
    DELETE FROM vigil.scan_runs t
    WHERE t.id IN (
        SELECT s.id FROM vigil.scan_runs s
        WHERE s.started_at < cutoff
          -- vigil.health reports the last scan
          AND s.id <> (SELECT l.id FROM vigil.scan_runs l ORDER BY l.started_at DESC, l.id DESC LIMIT 1)
        ORDER BY s.id LIMIT max_rows
        FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION vigil.purge_scan_runs(interval, bigint) IS
    'Delete scan reports started before now() - older_than, at most max_rows (NULL: all), oldest first; the latest '
    'run (what vigil.health shows) is kept, and alert groups keep their alerts with scan_id set to NULL. '
    'Returns how many';

REVOKE EXECUTE ON FUNCTION
    vigil.purge_notifications(interval, bigint),
    vigil.purge_alerts(interval, bigint),
    vigil.purge_metric_values(interval, bigint),
    vigil.purge_scan_runs(interval, bigint)
FROM PUBLIC;
