//! The scan loop (SPEC §3.4), `vigil.scan()`: for each enabled monitor, in
//! a subtransaction of its own, plan its query, run it as the source's
//! owner in a security-restricted operation (`super::sql::run`), raise
//! and deduplicate its findings as alerts, auto-resolve what no longer
//! fires; then group the new alerts and build the report
//! (`super::report`). It knows no kinds: what differs per kind is in
//! `super::kinds`. `vigil.scan` (sql/monitors.sql) is its SECURITY DEFINER
//! wrapper, with the search path and TimeZone pinned.

use super::report::{self, Reported, Totals};
use super::{Finding, Kind};
use crate::security::{catching_failure, Failure};
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Map, Value};
use std::time::Instant;

/// An SPI failure of vigil's own statements (a bug, not the user's input)
/// as an internal error naming the scan.
trait OrFail<T> {
    fn or_raise(self) -> T;
}

impl<T> OrFail<T> for Result<T, pgrx::spi::Error> {
    fn or_raise(self) -> T {
        self.unwrap_or_else(|e| internal(format!("scan: {e}")))
    }
}

/// A cancel (the user's, or statement_timeout) ends the scan, as it ended
/// PL/pgSQL's: only the monitor's own timeout (54000) is that monitor's
/// failure.
fn cancelled(message: String) -> ! {
    ereport!(ERROR, PgSqlErrorCode::ERRCODE_QUERY_CANCELED, message);
}

/// An internal error (vigil's own statement failed: a bug, not the input).
pub(in crate::monitor) fn internal(message: String) -> ! {
    ereport!(ERROR, PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, message);
}

/// A monitor as the loop reads it.
struct Monitor {
    id: i64,
    name: String,
    kind: Kind,
    /// The role of created_by (None: it no longer exists; the run fails).
    creator: Option<pg_sys::Oid>,
    /// Its timeout (vigil.monitors.timeout_ms, else vigil.monitor_timeout_ms),
    /// which bounds its query and each of its actions.
    timeout_ms: i32,
}

/// What one monitor's turn gave.
enum Turn {
    /// Another scan holds it.
    Skipped,
    /// An early_kill monitor: how many of its variants timed out.
    Expired(i64),
    Scanned(Scanned),
}

#[derive(Default)]
struct Scanned {
    findings: Vec<Reported>,
    new_ids: Vec<i64>,
    predictions: Vec<Value>,
    resolved: i64,
    /// Actions run, and those that failed ({alert_id, action, error}).
    actions: usize,
    action_errors: Vec<Value>,
}

fn text(v: &Map<String, Value>, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(String::from)
}

/// The labels a monitor gives its alerts: options.labels, options.alertname
/// and `subkey` (the finding's key suffix, e.g. a saturation status).
pub(in crate::monitor) fn labels(options: &Map<String, Value>, subkey: Option<&str>) -> Value {
    let mut out = match options.get("labels") {
        Some(Value::Object(l)) => l.clone(),
        _ => Map::new(),
    };
    if let Some(a) = text(options, "alertname") {
        out.insert("alertname".into(), a.into());
    }
    if let Some(s) = subkey {
        out.insert("subkey".into(), s.into());
    }
    Value::Object(out)
}

/// `vigil._monitor_labels(options, subkey)`: `labels` for SQL (early kill).
#[pg_extern(immutable, parallel_safe, name = "_monitor_labels")]
fn monitor_labels(options: Option<JsonB>, subkey: Option<&str>) -> JsonB {
    let options = match options {
        Some(JsonB(Value::Object(o))) => o,
        _ => Map::new(),
    };
    JsonB(labels(&options, subkey))
}

/// A finding's dedup key: `{type}_{entity}[_{suffix}]_{UTC date}`, or with
/// options.dedup_by = hour `…_{UTC date}T{hour}`, at the transaction's
/// start (`now()`).
fn finding_key(f: &Finding, anomaly_type: &str, dedup_by: Option<&str>) -> Option<String> {
    let entity = f.entity.as_deref()?;
    let entity = match &f.key_suffix {
        Some(s) => format!("{entity}_{s}"),
        None => entity.to_string(),
    };
    // SAFETY: reads the transaction's start time.
    let now = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
    let day = crate::scoring::dedup_key(anomaly_type, &entity, now).ok()?;
    if dedup_by == Some("hour") {
        let hour = now.div_euclid(3_600_000_000).rem_euclid(24);
        Some(format!("{day}T{hour:02}"))
    } else {
        Some(day)
    }
}

/// The alert a monitor's action receives.
fn action_payload(m: &Monitor, f: &Finding, severity: &str, alert_id: i64) -> Value {
    let details = f
        .details_text
        .as_deref()
        .and_then(|d| serde_json::from_str::<Value>(d).ok())
        .unwrap_or(Value::Null);
    json!({
        "action": "monitor_fired", "monitor": m.name, "kind": m.kind.name(), "alert_id": alert_id,
        "anomaly_type": f.anomaly_type, "entity": f.entity, "severity": severity,
        "title": f.title, "summary": f.summary, "details": details,
    })
}

/// The procedure options.action_procedure names, resolved with a
/// catalog-only search path (so it must be schema-qualified): its
/// `schema.name` quoted, when it takes one jsonb and the creator may
/// EXECUTE it.
fn action_procedure(name: &str, creator: pg_sys::Oid) -> Result<String, String> {
    let found = Spi::get_two_with_args::<String, bool>(
        "SELECT pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) \
                pg_catalog.quote_ident(p.proname), \
                pg_catalog.has_function_privilege($2, p.oid, 'EXECUTE') \
         FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace \
         WHERE p.oid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure($1 OPERATOR(pg_catalog.||) '(jsonb)') \
           AND p.prokind OPERATOR(pg_catalog.=) 'p'",
        &[name.into(), creator.into()],
    );
    match found {
        Ok((Some(qualified), Some(true))) => Ok(qualified),
        Ok((Some(_), _)) => Err(format!(
            "options.action_procedure: the monitor's creator may not EXECUTE {name}"
        )),
        _ => Err(format!(
            "options.action_procedure: no procedure {name}(jsonb) (schema-qualified)"
        )),
    }
}

/// Runs one action in a subtransaction under the monitor's timeout: its
/// error as text, or None. A cancel that is not the timeout's (the user's,
/// statement_timeout) ends the scan, as everywhere else in it.
fn attempt(m: &Monitor, f: impl FnOnce() -> Result<(), String>) -> Option<String> {
    let timer = super::sql::MonitorTimer::start(m.timeout_ms);
    let result = catching_failure(f);
    let fired = timer.fired();
    drop(timer);
    match result {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(e) if e.sqlstate == "57014" && fired => Some(format!(
            "54000: exceeded the monitor's timeout of {} ms",
            m.timeout_ms
        )),
        Err(e) if e.sqlstate == "57014" => cancelled(e.message),
        Err(e) => Some(format!("{}: {}", e.sqlstate, e.message)),
    }
}

/// Runs the monitor's actions for a new alert. A failing action is
/// reported (and rolled back by itself); the alert stays raised.
fn act(m: &Monitor, o: &Map<String, Value>, payload: &Value, alert_id: i64, out: &mut Scanned) {
    let mut failed = |action: &str, error: String| {
        pgrx::warning!(
            "monitor \"{}\": action {action} for alert {alert_id} failed: {error}",
            m.name
        );
        out.action_errors
            .push(json!({"alert_id": alert_id, "action": action, "error": error}));
    };
    if let Some(channel) = text(o, "action_channel") {
        let sent = attempt(m, || {
            Spi::run_with_args(
                "SELECT vigil.send_webhook($1, $2, $3)",
                &[
                    channel.as_str().into(),
                    JsonB(payload.clone()).into(),
                    format!("action:{}:{alert_id}", m.name).into(),
                ],
            )
            .map_err(|e| e.to_string())
        });
        match sent {
            None => out.actions += 1,
            Some(e) => failed("webhook", e),
        }
    }
    if let Some(name) = text(o, "action_procedure") {
        let Some(creator) = m.creator else {
            return failed(
                "procedure",
                "the monitor's creator role no longer exists".into(),
            );
        };
        // As the creator, in a security-restricted operation: the procedure
        // acts with that role's rights, never the scan's.
        let called = attempt(m, || {
            let qualified = action_procedure(&name, creator)?;
            let _as = crate::security::Restricted::as_role(creator);
            Spi::run_with_args(
                &format!("CALL {qualified}($1)"),
                &[JsonB(payload.clone()).into()],
            )
            .map_err(|e| e.to_string())
        });
        match called {
            None => out.actions += 1,
            Some(e) => failed("procedure", e),
        }
    }
}

/// Raises one finding; (alert id, whether it is new).
fn raise(m: &Monitor, o: &Map<String, Value>, f: &Finding, severity: &str) -> (i64, bool) {
    let anomaly_type = f.anomaly_type.clone().or_else(|| text(o, "anomaly_type"));
    let key = anomaly_type
        .as_deref()
        .and_then(|t| finding_key(f, t, o.get("dedup_by").and_then(Value::as_str)));
    Spi::connect(|c| {
        let rows = c.select(
            "SELECT r.alert_id, r.is_new FROM vigil.raise_alert($1, $2, $3::vigil.severity, $4, $5, $6::pg_catalog.jsonb, $7, $8, \
                    NULL, $9, $10::pg_catalog.interval, $11::pg_catalog.interval, $12) r",
            Some(1),
            &[
                anomaly_type.into(),
                f.entity.clone().into(),
                severity.into(),
                f.title.clone().into(),
                f.summary.clone().into(),
                f.details_text.clone().into(),
                f.urgency.into(),
                m.name.as_str().into(),
                key.into(),
                text(o, "dedup_window").into(),
                text(o, "expires_in").into(),
                JsonB(labels(o, f.key_suffix.as_deref())).into(),
            ],
        )?;
        let r = rows.first();
        Ok::<_, pgrx::spi::Error>((
            r.get::<i64>(1)?.unwrap_or_default(),
            r.get::<bool>(2)?.unwrap_or(false),
        ))
    })
    .or_raise()
}

fn scan_monitor(m: &Monitor) -> Turn {
    // Concurrent scans of one monitor (a manual scan during a pg_cron one)
    // never both run it: the second skips it (reported under skipped)
    // instead of waiting. The lock is a row lock, outside the advisory-lock
    // space any role can take; only roles that may UPDATE vigil.monitors
    // can hold it, and then scans skip, never wait.
    let locked = Spi::get_one_with_args::<i32>(
        "SELECT 1 FROM vigil.monitors t WHERE t.id OPERATOR(pg_catalog.=) $1 FOR UPDATE SKIP LOCKED",
        &[m.id.into()],
    );
    if !matches!(locked, Ok(Some(_))) {
        return Turn::Skipped;
    }
    if let Some(on_write) = m.kind.def().trigger {
        // A kind that decides in its trigger: scans only expire.
        let n = Spi::connect_mut(|c| {
            c.update(on_write.expire, None, &[m.name.as_str().into()])
                .map(|t| t.len() as i64)
        })
        .or_raise();
        succeeded(m, 0);
        return Turn::Expired(n);
    }
    let ran = super::sql::run(m.id);
    let o = &ran.options;
    let mut out = Scanned::default();
    let mut raised = Vec::new();
    for row in ran.rows {
        let f: Finding = serde_json::from_value(row).unwrap_or_else(|e| {
            internal(format!(
                "monitor \"{}\": a finding of kind {} does not read: {e}",
                m.name,
                m.kind.name()
            ))
        });
        if let Some(Value::Object(mut p)) = f.prediction.clone() {
            p.insert("monitor".into(), m.name.as_str().into());
            out.predictions.push(Value::Object(p));
        }
        let Some(severity) = f.severity.as_deref() else {
            continue;
        };
        let (id, is_new) = raise(m, o, &f, severity);
        raised.push(id);
        if is_new {
            out.new_ids.push(id);
            if o.contains_key("action_channel") || o.contains_key("action_procedure") {
                let payload = action_payload(m, &f, severity, id);
                act(m, o, &payload, id, &mut out);
            }
        }
        out.findings.push(Reported {
            kind: m.kind,
            anomaly_type: f.anomaly_type.clone().unwrap_or_default(),
            severity: severity.to_string(),
            urgency: f.urgency,
            metric: f.metric,
            category: f.category.clone(),
            is_new,
            label: text(o, "label"),
            metric_name: (m.kind.def().report_metric_name)(o),
            group_name: text(o, "group_column"),
        });
    }
    // The identities still firing: their fingerprints, which (unlike the
    // dated keys) are the same tomorrow.
    out.resolved = Spi::get_one_with_args::<i64>(
        "SELECT vigil.auto_resolve($1, ARRAY(SELECT a.fingerprint FROM vigil.alerts a \
                                       WHERE a.id OPERATOR(pg_catalog.=) ANY ($2)))",
        &[m.name.as_str().into(), raised.into()],
    )
    .or_raise()
    .unwrap_or(0);
    succeeded(m, out.findings.len());
    Turn::Scanned(out)
}

/// Records a monitor's successful run on its row (in its subtransaction).
fn succeeded(m: &Monitor, anomalies: usize) {
    Spi::run_with_args(
        "UPDATE vigil.monitors t SET last_scan_at = pg_catalog.now(), last_anomalies = $2, last_error = NULL \
         WHERE t.id OPERATOR(pg_catalog.=) $1",
        &[m.id.into(), (anomalies as i32).into()],
    )
    .or_raise();
}

/// `vigil._scan(monitor)`: the body of `vigil.scan()`.
#[pg_extern(volatile, parallel_unsafe, name = "_scan")]
fn scan(monitor: Option<&str>) -> JsonB {
    let _path = crate::security::Restricted::enter();
    crate::version::require();
    // A scan writes (its run, alerts): refused in a read-only transaction
    // and on a standby with PostgreSQL's own 25006, before pgrx's SPI asks
    // for a transaction id (which a standby cannot assign).
    // SAFETY: raises ERROR when the transaction is read-only.
    unsafe { pg_sys::PreventCommandIfReadOnly(c"vigil.scan()".as_ptr()) };
    let t0 = Instant::now();
    if let Some(name) = monitor {
        Spi::run_with_args("SELECT vigil._monitor_by_name($1)", &[name.into()]).or_raise();
    }
    let scan_id = Spi::get_one_with_args::<i64>(
        "INSERT INTO vigil.scan_runs (started_at, monitor) VALUES (pg_catalog.clock_timestamp(), $1) RETURNING id",
        &[monitor.into()],
    )
    .or_raise()
    .unwrap_or_default();
    let expired = Spi::get_one::<i64>("SELECT vigil.expire_alerts()")
        .or_raise()
        .unwrap_or(0);
    let monitors: Vec<Monitor> = Spi::connect(|c| {
        let rows = c.select(
            "SELECT t.id, t.name, t.kind, r.oid, t.timeout_ms FROM vigil.monitors t \
             LEFT JOIN pg_catalog.pg_roles r ON r.rolname OPERATOR(pg_catalog.=) t.created_by \
             WHERE t.enabled AND ($1::pg_catalog.text IS NULL OR t.name OPERATOR(pg_catalog.=) $1) \
             ORDER BY t.name",
            None,
            &[monitor.into()],
        )?;
        let mut out = Vec::new();
        for r in rows {
            let kind: String = r.get(3)?.unwrap_or_default();
            out.push(Monitor {
                id: r.get(1)?.unwrap_or_default(),
                name: r.get(2)?.unwrap_or_default(),
                kind: Kind::parse(&kind).unwrap_or_else(|e| crate::sqlglue::raise(e)),
                creator: r.get(4)?,
                timeout_ms: r
                    .get::<i32>(5)?
                    .unwrap_or_else(crate::gucs::monitor_timeout_ms),
            });
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .or_raise();

    let mut findings: Vec<Reported> = Vec::new();
    let mut new_ids: Vec<i64> = Vec::new();
    let mut t = Totals {
        scan_id,
        expired,
        ..Totals::default()
    };
    for m in &monitors {
        let mt0 = Instant::now();
        // What a failing monitor's subtransaction rolls back leaves the
        // report too: its results are merged only when it succeeds.
        match catching_failure(|| scan_monitor(m)) {
            Ok(Turn::Skipped) => {
                t.skipped.push(m.name.clone());
                continue;
            }
            Ok(Turn::Expired(n)) => {
                t.variants_expired += n;
                t.monitors.push(json!({"monitor": m.name, "kind": m.kind.name(), "anomalies": 0,
                                       "duration_ms": report::millis(mt0.elapsed().as_secs_f64() * 1000.0)}));
            }
            Ok(Turn::Scanned(s)) => {
                let mut entry = json!({"monitor": m.name, "kind": m.kind.name(), "anomalies": s.findings.len(),
                                       "duration_ms": report::millis(mt0.elapsed().as_secs_f64() * 1000.0)});
                if s.actions > 0 || !s.action_errors.is_empty() {
                    entry["actions"] = json!(s.actions);
                    entry["action_errors"] = json!(s.action_errors);
                }
                t.monitors.push(entry);
                findings.extend(s.findings);
                new_ids.extend(s.new_ids);
                t.predictions.extend(s.predictions);
                t.resolved += s.resolved;
            }
            Err(Failure { sqlstate, message }) if sqlstate == "57014" => cancelled(message),
            Err(Failure { sqlstate, message }) => {
                Spi::run_with_args(
                    "UPDATE vigil.monitors t SET last_scan_at = pg_catalog.now(), last_error = $2 \
                     WHERE t.id OPERATOR(pg_catalog.=) $1",
                    &[m.id.into(), format!("{sqlstate}: {message}").into()],
                )
                .or_raise();
                t.errors
                    .push(json!({"monitor": m.name, "sqlstate": sqlstate, "error": message}));
            }
        }
    }

    if !new_ids.is_empty() {
        let groups = Spi::get_one_with_args::<JsonB>(
            "SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                        'id', g.id, 'type', g.anomaly_type, 'severity', g.severity, 'urgency', g.urgency,
                        'affected_count', g.affected_count, 'entities', g.entities) ORDER BY g.anomaly_type), '[]'::pg_catalog.jsonb)
             FROM vigil.group_alerts($1, $2) g",
            &[scan_id.into(), new_ids.into()],
        )
        .or_raise();
        if let Some(JsonB(Value::Array(g))) = groups {
            t.groups = g;
        }
    }
    let failed = t.errors.len();
    t.duration_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let result = report::build(&findings, t);
    Spi::run_with_args(
        "UPDATE vigil.scan_runs t SET finished_at = pg_catalog.clock_timestamp(), \
                duration_ms = ($2 OPERATOR(pg_catalog.->>) 'duration_ms')::pg_catalog.float8, \
                report = $2, success = failed OPERATOR(pg_catalog.=) 0 \
         FROM (SELECT $3::pg_catalog.int4 AS failed) f WHERE t.id OPERATOR(pg_catalog.=) $1",
        &[
            scan_id.into(),
            JsonB(result.clone()).into(),
            (failed as i32).into(),
        ],
    )
    .or_raise();
    // vigil.metrics: counted in shared memory when this transaction commits
    // (no row to update, so concurrent scans never wait on each other).
    crate::metrics::sql::count_scan(failed as i32);
    JsonB(result)
}
