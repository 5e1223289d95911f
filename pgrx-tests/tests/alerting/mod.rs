//! End-to-end test of routing, silences, inhibition and escalation (issue
//! 15) with the preloaded worker delivering to a real HTTP sink on
//! 127.0.0.1: what is held back stays back, what is released arrives, and
//! escalations page on time and stop at acknowledge.

use pg_vigil_e2e::sink::Sink;
use pg_vigil_e2e::{wait_for, Cluster};
use postgres::Client;
use serde_json::Value;
use std::time::Duration;

fn clean_db(c: &Cluster) -> Client {
    let mut db = c.connect("postgres");
    db.batch_execute(
        "CREATE EXTENSION IF NOT EXISTS pg_vigil;
         DELETE FROM vigil.routes; DELETE FROM vigil.escalation_policies; DELETE FROM vigil.silences;
         DELETE FROM vigil.inhibit_rules; DELETE FROM vigil.notifications; DELETE FROM vigil.notification_groups;
         DELETE FROM vigil.channels; DELETE FROM vigil.alerts;",
    )
    .unwrap();
    db
}

/// (path, body) of every request so far.
fn bodies(sink: &Sink) -> Vec<(String, Value)> {
    sink.requests()
        .iter()
        .map(|r| {
            let body = r.body_str();
            (
                r.path.clone(),
                serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}")),
            )
        })
        .collect()
}

/// The entities (and statuses) a message lists: `entity:status`.
fn listed(msg: &Value) -> Vec<String> {
    msg["alerts"]
        .as_array()
        .map(|alerts| {
            alerts
                .iter()
                .map(|a| {
                    format!(
                        "{}:{}",
                        a["labels"]["entity"].as_str().unwrap_or(""),
                        a["status"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn seen_on(sink: &Sink, path: &str) -> Vec<String> {
    bodies(sink)
        .iter()
        .filter(|(p, _)| p == path)
        .flat_map(|(_, m)| listed(m))
        .collect()
}

pub fn routes_silences_inhibition_and_escalation_with_the_worker(c: &Cluster) {
    let mut db = clean_db(c);
    let sink = Sink::start();
    db.execute(
        "SELECT vigil.create_channel('team', 'webhook', $1, group_by => NULL, send_resolved => true)",
        &[&sink.url("/team")],
    )
    .unwrap();
    db.execute(
        "SELECT vigil.create_channel('grouped', 'webhook', $1, send_resolved => true,
             group_wait => '1 second', group_interval => '1 second')",
        &[&sink.url("/grouped")],
    )
    .unwrap();
    db.execute(
        "SELECT vigil.create_channel('pager', 'webhook', $1, group_by => NULL)",
        &[&sink.url("/pager")],
    )
    .unwrap();
    // Every alert goes to team and grouped; pager only hears escalations.
    db.batch_execute(
        r#"SELECT vigil.create_route('everything', '{team,grouped}');
           SELECT vigil.create_inhibit_rule('critical-mutes-medium', ARRAY['severity=critical'],
                                            ARRAY['severity=medium'], '{entity}');
           SELECT vigil.create_escalation_policy('oncall', '[{"after": "2 seconds", "channels": ["pager"]}]',
                                                 min_severity => 'critical', "repeat" => false);"#,
    )
    .unwrap();
    let silence: i64 = db
        .query_one(
            "SELECT vigil.create_silence(ARRAY['entity=\"db-1\"'], now() + interval '1 hour', 'db maintenance')",
            &[],
        )
        .unwrap()
        .get(0);
    db.batch_execute(
        "SELECT vigil.raise_alert('sync_failure', 'db-1', 'high', 'db-1 fails');
         SELECT vigil.raise_alert('queue_age', 'web-1', 'critical', 'web-1 stuck');
         SELECT vigil.raise_alert('queue_depth', 'web-1', 'medium', 'web-1 deep');
         SELECT vigil.raise_alert('queue_depth', 'api-1', 'medium', 'api-1 deep');",
    )
    .unwrap();
    wait_for(
        "team, grouped and pager messages",
        Duration::from_secs(20),
        || {
            let team = seen_on(&sink, "/team");
            let grouped = seen_on(&sink, "/grouped");
            (team.len() >= 2 && grouped.len() >= 2 && !seen_on(&sink, "/pager").is_empty())
                .then_some(())
        },
    );
    // Give held-back notifications every chance to leak.
    std::thread::sleep(Duration::from_secs(3));
    let mut team = seen_on(&sink, "/team");
    team.sort();
    assert_eq!(
        team,
        ["api-1:firing", "web-1:firing"],
        "silenced db-1, inhibited web-1 medium held back"
    );
    let mut grouped = seen_on(&sink, "/grouped");
    grouped.sort();
    assert_eq!(grouped, ["api-1:firing", "web-1:firing"]);
    let pages = bodies(&sink)
        .into_iter()
        .filter(|(p, _)| p == "/pager")
        .collect::<Vec<_>>();
    assert_eq!(
        pages.len(),
        1,
        "one page for the unacknowledged critical: {pages:?}"
    );
    assert_eq!(listed(&pages[0].1), ["web-1:firing"]);
    assert_eq!(pages[0].1["groupLabels"]["escalation_policy"], "oncall");

    // The silence ends: db-1, still firing, is notified on both channels.
    db.execute("SELECT vigil.expire_silence($1)", &[&silence])
        .unwrap();
    wait_for("db-1 after its silence", Duration::from_secs(20), || {
        (seen_on(&sink, "/team").contains(&"db-1:firing".to_string())
            && seen_on(&sink, "/grouped").contains(&"db-1:firing".to_string()))
        .then_some(())
    });
    // The inhibiting critical resolves: the medium alert of web-1 is sent.
    db.batch_execute(
        "SELECT vigil.resolve(id) FROM vigil.alerts WHERE anomaly_type = 'queue_age' AND entity = 'web-1'",
    )
    .unwrap();
    wait_for(
        "web-1 medium after its inhibitor resolved",
        Duration::from_secs(20),
        || {
            let team = seen_on(&sink, "/team");
            (team.contains(&"web-1:resolved".to_string())
                && team.iter().filter(|e| *e == "web-1:firing").count() == 2)
                .then_some(())
        },
    );
    // An escalation stops at acknowledge: web-2, acknowledged at once, is
    // never paged.
    db.batch_execute(
        "SELECT vigil.acknowledge((vigil.raise_alert('queue_age', 'web-2', 'critical', 'web-2 stuck')).alert_id, 'ann')",
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        !seen_on(&sink, "/pager")
            .iter()
            .any(|e| e.starts_with("web-2")),
        "acknowledged alerts are not escalated"
    );
    let raw: Vec<String> = sink
        .requests()
        .iter()
        .map(|r| r.body_str().into_owned())
        .collect();
    crate::notify::alertmanager_decodes(&raw);
    sink.stop();
    clean_db(c);
}

/// A flush sends only groups it has locked, and decides suppression for
/// exactly their alerts: with an earlier due group locked by another
/// session and room for one group, the flush takes the next group, whose
/// only alert is silenced, and must hold it rather than send it. (The
/// suppression set used to come from an unlocked query, here the locked
/// group's alerts.) Run in a database of its own, where no worker flushes.
pub fn a_flush_decides_suppression_for_the_groups_it_locked(c: &Cluster) {
    let mut su = c.connect("postgres");
    su.batch_execute("DROP DATABASE IF EXISTS flush_locks WITH (FORCE)")
        .unwrap();
    su.batch_execute("CREATE DATABASE flush_locks").unwrap();
    let mut db = c.connect("flush_locks");
    db.batch_execute(
        "CREATE EXTENSION pg_vigil;
         SELECT vigil.create_channel('grouped', 'webhook', 'https://hooks.example.com/g', group_by => '{entity}');
         SELECT vigil.create_silence(ARRAY['entity=\"b\"'], now() + interval '1 hour', 'maintenance of b');
         SELECT vigil.raise_alert('queue_age', 'a', 'high', 'a is slow');
         SELECT vigil.raise_alert('queue_age', 'b', 'high', 'b is slow');
         SELECT vigil._flush_groups();
         UPDATE vigil.notification_groups SET flush_at = now() - interval '2 minutes' WHERE group_labels ->> 'entity' = 'a';
         UPDATE vigil.notification_groups SET flush_at = now() - interval '1 minute' WHERE group_labels ->> 'entity' = 'b';",
    )
    .unwrap();
    let groups: i64 = db
        .query_one("SELECT count(*) FROM vigil.notification_groups", &[])
        .unwrap()
        .get(0);
    assert_eq!(groups, 2, "one group per entity");
    let mut locker = c.connect("flush_locks");
    locker
        .batch_execute(
            "BEGIN; SELECT 1 FROM vigil.notification_groups WHERE group_labels ->> 'entity' = 'a' FOR UPDATE",
        )
        .unwrap();
    let queued: i32 = db
        .query_one("SELECT vigil._flush_groups(1)", &[])
        .unwrap()
        .get(0);
    let b: i64 = db
        .query_one("SELECT id FROM vigil.alerts WHERE entity = 'b'", &[])
        .unwrap()
        .get(0);
    let sent: i64 = db
        .query_one("SELECT count(*) FROM vigil.notifications", &[])
        .unwrap()
        .get(0);
    let held: Vec<i64> = db
        .query_one(
            "SELECT held FROM vigil.notification_groups WHERE group_labels ->> 'entity' = 'b'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!((queued, sent), (0, 0), "the silenced alert of b was sent");
    assert_eq!(held, [b], "b's alert is held while silenced");
    locker.batch_execute("COMMIT").unwrap();
    let queued: i32 = db
        .query_one("SELECT vigil._flush_groups(1)", &[])
        .unwrap()
        .get(0);
    assert_eq!(queued, 1, "a is sent once its lock is gone");
    drop(db);
    drop(locker);
    su.batch_execute("DROP DATABASE flush_locks WITH (FORCE)")
        .unwrap();
}
