//! `health`: pg_vigil watching itself (seed 004's meta-alerts) — rollups
//! not kept exact (`vigil.rollups.status`), enabled monitors whose last scan
//! failed, a worker that is not running or has not beaten for
//! `worker_heartbeat_s`, an outbox whose oldest pending notification is
//! older than `outbox_age_s`. Its source is `vigil.health` and nothing
//! else; its query runs as the monitor's creator (who needs vigil_reader),
//! never as vigil's owner. The alerts go through the channels like any.

use super::{metric_name_option, no_cross_checks, Actions, Fields, KindDef, Query};
use crate::monitor::options::{def, Key, Opt};
use crate::monitor::report::TypeSummary;

/// The one source of this kind.
pub(in crate::monitor) const SOURCE: &str = "vigil.health";

const KEYS: &[Key] = &[
    def("worker_heartbeat_s", Opt::Int(5, 86_400), "120"),
    def("outbox_age_s", Opt::Int(5, 864_000), "900"),
    def("label", Opt::Text, "\"pg_vigil problems\""),
];

const ACTIONS: &[Actions] = &[(
    "vigil_health",
    None,
    &[
        "Look at vigil.health and the failing monitor's last_error",
        "Check that the pg_vigil worker and the scheduled scans are running",
    ],
)];

pub(super) const DEF: KindDef = KindDef {
    name: "health",
    keys: KEYS,
    common_keys: true,
    anomaly_type: "vigil_health",
    metric_name: Some(|_| "health".to_string()),
    check: no_cross_checks,
    query: Some(query),
    report_metric_name: metric_name_option,
    insight,
    rollup: None,
    trigger: None,
    actions: ACTIONS,
};

fn insight(t: &TypeSummary) -> String {
    format!(
        "{} {}: {}.",
        t.n,
        t.label(),
        t.categories.as_deref().unwrap_or_default()
    )
}

fn query(q: &Query) -> String {
    // vigil.health once (its counts are subqueries); the other checks
    // read the catalog views the creator may read as vigil_reader. The
    // monitor itself ($2) is not reported as failing by its own scan.
    let inner = format!(
        "WITH h AS MATERIALIZED (SELECT * FROM {src} t)\n\
         SELECT x.entity, x.what, x.detail, x.age, x.sev::vigil.severity AS severity FROM (\n\
           SELECT 'rollup ' || r.name::text AS entity, 'rollup' AS what, r.status AS detail,\n\
                  NULL::float8 AS age, 'critical' AS sev\n\
           FROM vigil.rollups r WHERE r.status <> 'ok'\n\
           UNION ALL\n\
           SELECT 'monitor ' || m.name, 'monitor', m.last_error, NULL, 'high'\n\
           FROM vigil.monitors m WHERE m.enabled AND m.last_error IS NOT NULL AND m.name <> $2\n\
           UNION ALL\n\
           SELECT 'worker', 'worker',\n\
                  CASE WHEN NOT coalesce(h.worker_running, false) THEN 'the delivery worker is not running'\n\
                       ELSE format('no worker heartbeat for %s s', round(h.worker_heartbeat_age_s::numeric)) END,\n\
                  h.worker_heartbeat_age_s, 'critical'\n\
           FROM h WHERE NOT coalesce(h.worker_running, false)\n\
                     OR h.worker_heartbeat_age_s > ($1->>'worker_heartbeat_s')::float8\n\
           UNION ALL\n\
           SELECT 'outbox', 'outbox',\n\
                  format('the oldest pending notification is %s s old', round(h.oldest_pending_age_s::numeric)),\n\
                  h.oldest_pending_age_s, 'high'\n\
           FROM h WHERE h.oldest_pending_age_s > ($1->>'outbox_age_s')::float8) x",
        src = q.source,
    );
    q.finish(
        &inner,
        &Fields {
            anomaly_type: None,
            urgency: "vigil.urgency_score(f.severity)".into(),
            title: "CASE f.what WHEN 'rollup' THEN 'Rollup not kept exact' WHEN 'monitor' THEN 'Monitor failing' \
                    WHEN 'worker' THEN 'Delivery worker down' ELSE 'Notifications backing up' END"
                .into(),
            summary: "format('%s: %s', f.entity, f.detail)".into(),
            details: "jsonb_build_object('check', f.what, 'detail', f.detail, 'age_s', f.age)".into(),
            metric: "f.age".into(),
            category: Some("f.what".into()),
            key_suffix: None,
            prediction: None,
        },
    )
}
