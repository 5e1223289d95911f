//! `early_kill`: decides in a statement trigger on the interactions table,
//! inside the writing transaction (scenario 3). `vigil._early_kill_trigger`
//! counts the statement's views and interactions into each registered
//! variant, decides (`crate::scoring::early_kill_decision`) and records a
//! kill (action webhook, alert) or an expiry; scans only expire its
//! variants (`expire`). It has no scan query and no findings.

use super::{no_cross_checks, Actions, KindDef, OnWrite};
use crate::monitor::options::{def, key, req, Key, Opt, ANY};
use crate::monitor::report::{float_text, percent, TypeSummary};
use crate::monitor::scan::internal;
use crate::scoring::{early_kill_decision, interval_span_micros, EarlyKillInputs, KillDecision};
use pgrx::pg_sys::panic::{CaughtError, ErrorReport};
use pgrx::prelude::*;
use pgrx::{JsonB, PgLogLevel};
use serde_json::{json, Map, Value};

const KEYS: &[Key] = &[
    req("variant", Opt::Column(ANY)),
    req("event", Opt::Column(ANY)),
    def("view_events", Opt::TextList, r#"["view"]"#),
    def("kill_threshold", Opt::Number(f64::MIN_POSITIVE, 1.0), "0.5"),
    def("min_interactions", Opt::Int(1, 1_000_000_000), "10"),
    def("timeout", Opt::Interval, "\"10 minutes\""),
    key("action_channel", Opt::Text),
    def("anomaly_type", Opt::Text, "\"early_kill\""),
    def("expires_in", Opt::Interval, "\"48 hours\""),
    key("alertname", Opt::LabelValue),
    key("labels", Opt::Labels),
];

/// Scenario 3 (variant early kill).
const ACTIONS: &[Actions] = &[(
    "early_kill",
    None,
    &[
        "Cancel the scheduled post for the killed variant",
        "Shift traffic to the best performing variant",
        "Review the persona and content of the variant",
    ],
)];

pub(super) const DEF: KindDef = KindDef {
    name: "early_kill",
    keys: KEYS,
    common_keys: false,
    anomaly_type: "early_kill",
    metric_name: None,
    check: no_cross_checks,
    query: None,
    report_metric_name: |_| None,
    insight,
    rollup: None,
    trigger: Some(&OnWrite {
        function: "vigil._early_kill_trigger",
        expire: EXPIRE,
    }),
    actions: ACTIONS,
};

/// Kills are alerts raised by the trigger, never scan findings; a report
/// line for completeness.
fn insight(t: &TypeSummary) -> String {
    format!("{} {} killed early.", t.n, t.label())
}

/// What an expiry writes on a variant's row `t` (a macro: `EXPIRE` is
/// built from it at compile time).
macro_rules! expired {
    () => {
        "status = 'expired', decided_at = pg_catalog.now(), \
         reason = pg_catalog.format('no decision within %s (%s interactions, %s views)', t.timeout, t.interactions, t.views)"
    };
}
const EXPIRED: &str = expired!();

/// A scan's turn of an early_kill monitor ($1 its name): expires its
/// active variants whose timeout has passed. A writer's open transaction
/// may hold a variant's row (the trigger counts into it): that one is
/// skipped and expires on a later scan.
const EXPIRE: &str = concat!(
    "WITH v AS MATERIALIZED (
         SELECT t.id FROM vigil.variant_monitoring t
         WHERE t.monitor OPERATOR(pg_catalog.=) $1 AND t.status OPERATOR(pg_catalog.=) 'active'
           AND t.started_at OPERATOR(pg_catalog.+) t.timeout OPERATOR(pg_catalog.<=) pg_catalog.now()
         ORDER BY t.id FOR UPDATE SKIP LOCKED)
     UPDATE vigil.variant_monitoring t SET ",
    expired!(),
    " FROM v WHERE t.id OPERATOR(pg_catalog.=) v.id"
);

fn protocol_error(message: String) -> ! {
    ereport!(
        ERROR,
        PgSqlErrorCode::ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
        message
    );
}

/// The monitor a trigger was made for, as the trigger reads it.
struct Monitor {
    name: String,
    options: Map<String, Value>,
}

/// A registered variant after the statement's counts were added.
struct Variant {
    id: i64,
    variant: String,
    persona: Option<String>,
    post: Option<String>,
    expected_rate: f64,
    kill_threshold: f64,
    min_interactions: i32,
    timeout: Interval,
    started_at: i64,
    views: i64,
    interactions: i64,
}

/// `vigil._early_kill_trigger('<monitor id>')`, AFTER INSERT … FOR EACH
/// STATEMENT with the new rows as `vigil_new`: counts the statement's views
/// (`options.event` in `options.view_events`) and other interactions per
/// registered active variant (`options.variant`), then decides each.
///
/// SECURITY DEFINER (the extension's owner: the counters and alerts are
/// vigil's tables) with a catalog-only search path. The writer's rows are
/// read only through their type's output function (`format('%s')`, never
/// a cast a type's owner could define), so no code the writer or the
/// table's owner controls runs as that role. It refuses (39P01) to count
/// for any table but the one `create_monitor` pinned, or without the
/// transition table it made (a relation named `vigil_new` elsewhere is not
/// read: the name resolves to the trigger's own transition table).
#[pg_trigger(
    sql = "CREATE FUNCTION vigil._early_kill_trigger() RETURNS trigger LANGUAGE c SECURITY DEFINER \
           SET search_path = pg_catalog, pg_temp AS 'MODULE_PATHNAME', 'early_kill_trigger_wrapper';"
)]
fn early_kill_trigger<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgHeapTupleError> {
    let data = trigger.trigger_data();
    let tg = trigger.trigger();
    let event = data.tg_event;
    let shape = event & pg_sys::TRIGGER_EVENT_ROW == 0
        && event & pg_sys::TRIGGER_EVENT_TIMINGMASK == pg_sys::TRIGGER_EVENT_AFTER
        && event & pg_sys::TRIGGER_EVENT_OPMASK == pg_sys::TRIGGER_EVENT_INSERT
        && tg.tgnargs == 1;
    if !shape {
        protocol_error(
            "vigil._early_kill_trigger must fire AFTER INSERT FOR EACH STATEMENT with one argument, the monitor id"
                .into(),
        );
    }
    // SAFETY: tgnargs == 1, so tgargs holds one C string.
    let arg = unsafe { std::ffi::CStr::from_ptr(*tg.tgargs) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: the relation of a firing trigger is open.
    let table = unsafe { (*data.tg_relation).rd_id };
    let refused = || -> ! {
        protocol_error(format!(
            "vigil._early_kill_trigger: monitor {arg} does not watch {} with this trigger",
            crate::sqlglue::read_one::<String>(&format!(
                "SELECT {}::pg_catalog.regclass::text",
                table.to_u32()
            ))
            .ok()
            .flatten()
            .unwrap_or_default()
        ))
    };
    // As the cast of the PL/pgSQL trigger did, spaces around the number
    // are allowed.
    let Ok(id) = arg.trim().parse::<i64>() else {
        refused()
    };
    // SAFETY: the trigger's catalog row; NULL when it has no NEW TABLE.
    let transition = !tg.tgnewtable.is_null()
        && unsafe { std::ffi::CStr::from_ptr(tg.tgnewtable) }.to_bytes() == b"vigil_new"
        && !data.tg_newtable.is_null();
    Spi::connect_mut(|c| {
        let found = c
            .select(
                "SELECT t.name, t.kind, t.enabled, t.source_oid, t.options FROM vigil.monitors t \
                 WHERE t.id OPERATOR(pg_catalog.=) $1",
                Some(1),
                &[id.into()],
            )
            .and_then(|rows| {
                let Some(r) = rows.into_iter().next() else {
                    return Ok(None);
                };
                Ok(Some((
                    r.get::<String>(1)?.unwrap_or_default(),
                    r.get::<String>(2)?.unwrap_or_default(),
                    r.get::<bool>(3)?.unwrap_or(false),
                    r.get::<pg_sys::Oid>(4)?,
                    r.get::<JsonB>(5)?,
                )))
            })
            .unwrap_or_else(|e| internal(format!("vigil._early_kill_trigger: {e}")));
        let Some((name, kind, enabled, source, options)) = found else {
            return;
        };
        if !enabled {
            return;
        }
        if kind != DEF.name || source != Some(table) || !transition {
            refused();
        }
        let options = match options {
            Some(JsonB(Value::Object(o))) => o,
            _ => Map::new(),
        };
        let m = Monitor { name, options };
        // SAFETY: this SPI connection's transition tables are the firing
        // trigger's (what PL/pgSQL registers for its triggers).
        unsafe {
            pg_sys::SPI_register_trigger_data(data as *const _ as *mut _);
        }
        // An error of the counting statement (a renamed or retyped column
        // of the watched table) names the monitor, as PL/pgSQL's context
        // line did; its SQLSTATE and detail stay. Caught only to be raised
        // again, so nothing is used after the error.
        let counted = PgTryBuilder::new(std::panic::AssertUnwindSafe(|| count(c, &m)))
            .catch_others(|e| match e {
                CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => {
                    let mut report = ErrorReport::new(
                        r.sql_error_code(),
                        format!("early_kill monitor \"{}\": {}", m.name, r.message()),
                        "vigil._early_kill_trigger",
                    );
                    if let Some(d) = r.detail() {
                        report = report.set_detail(d);
                    }
                    report.report(PgLogLevel::ERROR);
                    unreachable!("an ERROR does not return")
                }
                other => other.rethrow(),
            })
            .execute()
            .unwrap_or_else(|e| internal(format!("monitor \"{}\": {e}", m.name)));
        // SAFETY: reads the transaction's start time (`now()`).
        let now = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
        for v in counted {
            let decision = early_kill_decision(EarlyKillInputs {
                expected_rate: v.expected_rate,
                interactions: v.interactions,
                views: v.views,
                elapsed_micros: i128::from(now) - i128::from(v.started_at),
                kill_threshold: v.kill_threshold,
                min_interactions: v.min_interactions,
                timeout_micros: interval_span_micros(
                    v.timeout.months(),
                    v.timeout.days(),
                    v.timeout.micros(),
                ),
            })
            .unwrap_or_else(|e| {
                internal(format!(
                    "monitor \"{}\", variant \"{}\": {e}",
                    m.name, v.variant
                ))
            });
            let decided = match decision {
                KillDecision::Continue => continue,
                KillDecision::Expired => c
                    .update(
                        format!("UPDATE vigil.variant_monitoring t SET {EXPIRED} WHERE t.id OPERATOR(pg_catalog.=) $1")
                            .as_str(),
                        None,
                        &[v.id.into()],
                    )
                    .map(drop),
                KillDecision::Kill => kill(c, &m, &v),
            };
            decided.unwrap_or_else(|e| {
                internal(format!(
                    "monitor \"{}\", variant \"{}\": {e}",
                    m.name, v.variant
                ))
            });
        }
    });
    Ok(None)
}

/// Adds the statement's views and interactions to the monitor's active
/// variants, locked in id order so that concurrent writers touching several
/// variants cannot deadlock; the variants as they are now.
fn count(c: &mut pgrx::spi::SpiClient<'_>, m: &Monitor) -> pgrx::spi::SpiResult<Vec<Variant>> {
    let column = |key: &str| {
        crate::rollup::ident(
            m.options
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default(),
        )
    };
    let (variant, event) = (column("variant"), column("event"));
    let views: Vec<String> = match m.options.get("view_events") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        _ => Vec::new(),
    };
    let sql = format!(
        "WITH c AS (
             SELECT pg_catalog.format('%s', n.{variant}) AS variant,
                    pg_catalog.count(*) FILTER (WHERE pg_catalog.format('%s', n.{event}) OPERATOR(pg_catalog.=) ANY ($2)) AS views,
                    pg_catalog.count(*) FILTER (WHERE pg_catalog.format('%s', n.{event}) OPERATOR(pg_catalog.<>) ALL ($2)) AS interactions
             FROM vigil_new n WHERE n.{variant} IS NOT NULL GROUP BY 1),
         l AS (
             SELECT vm.id, c.views, c.interactions
             FROM vigil.variant_monitoring vm JOIN c ON c.variant OPERATOR(pg_catalog.=) vm.variant
             WHERE vm.monitor OPERATOR(pg_catalog.=) $1 AND vm.status OPERATOR(pg_catalog.=) 'active'
             ORDER BY vm.id FOR UPDATE OF vm)
         UPDATE vigil.variant_monitoring vm
         SET views = vm.views OPERATOR(pg_catalog.+) l.views,
             interactions = vm.interactions OPERATOR(pg_catalog.+) l.interactions
         FROM l WHERE vm.id OPERATOR(pg_catalog.=) l.id
         RETURNING vm.id, vm.variant, vm.persona, vm.post, vm.expected_rate, vm.kill_threshold,
                   vm.min_interactions, vm.timeout, vm.started_at, vm.views, vm.interactions"
    );
    c.update(sql.as_str(), None, &[m.name.as_str().into(), views.into()])?
        .map(|r| {
            Ok(Variant {
                id: r.get(1)?.unwrap_or_default(),
                variant: r.get(2)?.unwrap_or_default(),
                persona: r.get(3)?,
                post: r.get(4)?,
                expected_rate: r.get(5)?.unwrap_or_default(),
                kill_threshold: r.get(6)?.unwrap_or_default(),
                min_interactions: r.get(7)?.unwrap_or_default(),
                timeout: r.get(8)?.unwrap_or_else(|| Interval::from_micros(0)),
                started_at: r
                    .get::<TimestampWithTimeZone>(9)?
                    .map(pg_sys::TimestampTz::from)
                    .unwrap_or_default(),
                views: r.get(10)?.unwrap_or_default(),
                interactions: r.get(11)?.unwrap_or_default(),
            })
        })
        .collect()
}

/// The reason of a kill, as the variant's row and the alert give it.
pub(in crate::monitor) fn kill_reason(
    observed: f64,
    kill_threshold: f64,
    expected_rate: f64,
    interactions: i64,
    views: i64,
) -> String {
    format!(
        "engagement {}% is below {} x the expected {}% after {interactions} interactions and {views} views",
        percent(Some(observed), 2),
        float_text(Some(kill_threshold)),
        percent(Some(expected_rate), 2),
    )
}

/// Records a kill: the action webhook on options.action_channel (key
/// `early_kill:<monitor>:<variant>`, so a retried statement sends once), the
/// alert, and the decision on the variant's row.
fn kill(c: &mut pgrx::spi::SpiClient<'_>, m: &Monitor, v: &Variant) -> pgrx::spi::SpiResult<()> {
    let observed = v.interactions as f64 / v.views as f64;
    let note = kill_reason(
        observed,
        v.kill_threshold,
        v.expected_rate,
        v.interactions,
        v.views,
    );
    let key = format!("early_kill:{}:{}", m.name, v.variant);
    let mut payload = json!({
        "action": "cancel_post", "monitor": m.name, "variant": v.variant, "persona": v.persona,
        "post": v.post, "reason": note, "interactions": v.interactions, "views": v.views,
        "expected_rate": v.expected_rate, "observed_rate": observed,
    });
    // As `to_jsonb(now())` writes it: in the session's TimeZone, like the
    // alert's own timestamps in the payloads that carry it.
    payload["killed_at"] = c
        .select("SELECT pg_catalog.to_jsonb(pg_catalog.now())", Some(1), &[])?
        .first()
        .get::<JsonB>(1)?
        .map_or(Value::Null, |j| j.0);
    let text = |k: &str| m.options.get(k).and_then(Value::as_str).map(String::from);
    let mut notification: Option<i64> = None;
    if let Some(channel) = text("action_channel") {
        let missing = c
            .select(
                "SELECT 1 FROM vigil.channels t WHERE t.name OPERATOR(pg_catalog.=) $1",
                Some(1),
                &[channel.as_str().into()],
            )?
            .is_empty();
        if !missing {
            notification = c
                .update(
                    "SELECT vigil.send_webhook($1, $2, $3)",
                    Some(1),
                    &[
                        channel.as_str().into(),
                        JsonB(payload.clone()).into(),
                        key.as_str().into(),
                    ],
                )?
                .first()
                .get::<i64>(1)?;
        } else {
            payload["action_webhook"] = format!("channel \"{channel}\" does not exist").into();
        }
    }
    let mut details = payload.clone();
    if let Value::Object(d) = &mut details {
        for k in ["action", "monitor", "variant"] {
            d.remove(k);
        }
    }
    let alert = c
        .update(
            "SELECT r.alert_id FROM vigil.raise_alert($1, $2, 'high', $3, $4, $5, monitor => $6, dedup_key => $7, \
                    expires_in => $8::pg_catalog.interval, labels => $9) r",
            Some(1),
            &[
                text("anomaly_type").into(),
                v.variant.as_str().into(),
                format!("Variant {} killed early", v.variant).into(),
                note.as_str().into(),
                JsonB(details).into(),
                m.name.as_str().into(),
                key.as_str().into(),
                text("expires_in").into(),
                JsonB(crate::monitor::scan::labels(&m.options, None)).into(),
            ],
        )?
        .first()
        .get::<i64>(1)?;
    c.update(
        "UPDATE vigil.variant_monitoring t SET status = 'killed', decided_at = pg_catalog.now(), reason = $2, \
             alert_id = $3, notification_id = $4 WHERE t.id OPERATOR(pg_catalog.=) $1",
        None,
        &[v.id.into(), note.as_str().into(), alert.into(), notification.into()],
    )?;
    Ok(())
}
