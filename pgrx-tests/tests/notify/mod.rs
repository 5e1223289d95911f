//! End-to-end tests of notification delivery: the preloaded worker drains
//! `vigil.notifications` to a real HTTP sink on 127.0.0.1 (see `sink.rs`),
//! through failures, throttling, timeouts, refused connections, a `kill -9`
//! of the worker and an immediate server restart.

use pg_vigil_e2e::sink::{refused_url, Reply, Sink};
use pg_vigil_e2e::{wait_for, Cluster};
use postgres::fallible_iterator::FallibleIterator;
use postgres::Client;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// The worker's database, with the extension and no channels or queue left
/// over from an earlier test.
fn worker_db(c: &Cluster) -> Client {
    let mut db = c.connect("postgres");
    db.batch_execute(
        "CREATE EXTENSION IF NOT EXISTS pg_vigil;
         DELETE FROM vigil.routes; DELETE FROM vigil.escalation_policies;
         DELETE FROM vigil.notifications; DELETE FROM vigil.channels; DELETE FROM vigil.alerts;",
    )
    .unwrap();
    db
}

fn set_config(db: &mut Client, statements: &[&str]) {
    pg_vigil_e2e::set_config(db, statements);
    // The worker applies the change at its next wake-up.
    std::thread::sleep(Duration::from_millis(300));
}

fn reset_config(db: &mut Client) {
    set_config(
        db,
        &[
            "ALTER SYSTEM RESET vigil.poll_interval_ms",
            "ALTER SYSTEM RESET vigil.max_attempts",
            "ALTER SYSTEM RESET vigil.http_timeout_ms",
        ],
    );
}

fn channel(db: &mut Client, name: &str, kind: &str, url: &str, extra: &str) -> i64 {
    let sql = format!("SELECT vigil.create_channel($1, $2, $3{extra}, group_by => NULL)");
    db.query_one(&sql, &[&name, &kind, &url]).unwrap().get(0)
}

/// (status, attempts, last_http_status, last_error) of a notification.
fn row(db: &mut Client, id: i64) -> (String, i32, Option<i32>, Option<String>) {
    let r = db
        .query_one(
            "SELECT status::text, attempts, last_http_status, last_error FROM vigil.notifications WHERE id = $1",
            &[&id],
        )
        .unwrap();
    (r.get(0), r.get(1), r.get(2), r.get(3))
}

fn wait_status(db: &mut Client, id: i64, want: &str, timeout: Duration) {
    wait_for(&format!("notification {id} {want}"), timeout, || {
        (row(db, id).0 == want).then_some(())
    });
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

pub fn alerts_reach_slack_webhook_and_pg_notify_channels(c: &Cluster) {
    let mut db = worker_db(c);
    let sink = Sink::start();
    // A long poll interval: delivery within it proves the commit wakes the worker.
    set_config(
        &mut db,
        &["ALTER SYSTEM SET vigil.poll_interval_ms = 60000"],
    );
    channel(
        &mut db,
        "ops-slack",
        "slack",
        &sink.url("/slack"),
        ", send_resolved => true",
    );
    channel(
        &mut db,
        "ops-hook",
        "webhook",
        &sink.url("/hook"),
        ", headers => '{\"Authorization\": \"Bearer s3cret\"}'",
    );
    channel(
        &mut db,
        "critical-only",
        "webhook",
        &sink.url("/critical"),
        ", min_severity => 'critical'",
    );
    channel(
        &mut db,
        "other-type",
        "webhook",
        &sink.url("/other"),
        ", anomaly_types => '{deal_stalled}'",
    );
    channel(&mut db, "listeners", "pg_notify", "vigil_test_out", "");
    let mut listener = c.connect("postgres");
    listener.batch_execute("LISTEN vigil_test_out").unwrap();

    let t0 = Instant::now();
    let alert: i64 = db
        .query_one(
            "SELECT alert_id FROM vigil.raise_alert('health_drop', '<!channel> acme', 'high',
                 'Health dropped 18 points', 'Acme health 62 vs 80', '{\"drop_points\": 18}')",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        sink.wait_for_count(2, Duration::from_secs(10)),
        "got {}",
        sink.count()
    );
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "delivery waited for the poll interval: {:?}",
        t0.elapsed()
    );
    let by_path: HashMap<String, _> = sink
        .requests()
        .into_iter()
        .map(|r| (r.path.clone(), r))
        .collect();
    assert_eq!(
        by_path.len(),
        2,
        "only the matching channels: {:?}",
        by_path.keys()
    );

    let slack = &by_path["/slack"];
    let keys: Vec<String> = db
        .query(
            "SELECT n.idempotency_key FROM vigil.notifications n JOIN vigil.channels c ON c.id = n.channel_id
             WHERE c.name = 'ops-slack'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(slack.header("idempotency-key"), Some(keys[0].as_str()));
    assert_eq!(slack.header("content-type"), Some("application/json"));
    let m = json(&slack.body_str());
    assert!(m["text"]
        .as_str()
        .unwrap()
        .contains("Health dropped 18 points"));
    assert!(
        m["text"].as_str().unwrap().contains("&lt;!channel&gt;"),
        "entity not escaped: {m}"
    );
    let att = &m["attachments"][0];
    assert_eq!(att["color"], "#E01E5A");
    let blocks = att["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["text"], "Health dropped 18 points");
    let fields: Vec<String> = blocks
        .iter()
        .filter_map(|b| b["fields"].as_array())
        .flatten()
        .map(|f| f["text"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        fields.contains(&"*Urgency*\n70/100 (hours)".to_string()),
        "{fields:?}"
    );
    assert!(
        fields.contains(&"*Drop points*\n18".to_string()),
        "{fields:?}"
    );
    assert!(
        blocks.iter().any(|b| b["text"]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("*Recommended actions*\n• "))),
        "{blocks:?}"
    );
    let context = blocks.last().unwrap()["elements"][0]["text"]
        .as_str()
        .unwrap();
    assert!(context.contains(" · last seen <!date^"), "{context}");

    let hook = &by_path["/hook"];
    assert_eq!(hook.header("authorization"), Some("Bearer s3cret"));
    let w = json(&hook.body_str());
    assert_eq!(w["version"], "4");
    assert_eq!(w["status"], "firing");
    assert_eq!(w["receiver"], "ops-hook");
    assert_eq!(w["alerts"][0]["labels"]["severity"], "high");
    assert_eq!(w["alerts"][0]["labels"]["anomaly_type"], "health_drop");
    assert_eq!(w["vigil"]["alert"]["id"], alert);

    let note = listener
        .notifications()
        .timeout_iter(Duration::from_secs(10))
        .next()
        .unwrap()
        .expect("NOTIFY on vigil_test_out");
    let n = json(note.payload());
    assert_eq!(n["id"], alert);
    assert_eq!(n["event"], "new");

    // A repeat inside the dedup window only bumps the alert: nothing is sent.
    db.batch_execute("SELECT vigil.raise_alert('health_drop', '<!channel> acme', 'high', 'Health dropped 18 points')")
        .unwrap();
    // An escalation is news; the critical-only channel now matches too.
    db.batch_execute("SELECT vigil.raise_alert('health_drop', '<!channel> acme', 'critical', 'Health dropped 30 points')")
        .unwrap();
    assert!(
        sink.wait_for_count(5, Duration::from_secs(10)),
        "got {}",
        sink.count()
    );
    let escalations: Vec<String> = sink.requests()[2..]
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert!(
        escalations.contains(&"/critical".to_string()),
        "{escalations:?}"
    );
    let slack2 = sink
        .requests()
        .into_iter()
        .filter(|r| r.path == "/slack")
        .nth(1)
        .unwrap();
    assert!(json(&slack2.body_str())["text"]
        .as_str()
        .unwrap()
        .starts_with("ESCALATED: "));

    // Resolving notifies only the channel that asked for resolved events.
    db.execute("SELECT vigil.resolve($1, 'oncall')", &[&alert])
        .unwrap();
    assert!(
        sink.wait_for_count(6, Duration::from_secs(10)),
        "got {}",
        sink.count()
    );
    std::thread::sleep(Duration::from_millis(300));
    let last = sink.requests();
    assert_eq!(
        last.len(),
        6,
        "resolved went to more than the slack channel"
    );
    let resolved = json(&last[5].body_str());
    assert_eq!(last[5].path, "/slack");
    validators_accept(
        &last
            .iter()
            .filter(|r| r.path == "/slack")
            .map(|r| ("slack", r.body_str().into_owned()))
            .collect::<Vec<_>>(),
    );
    assert!(resolved["text"].as_str().unwrap().starts_with("RESOLVED: "));
    assert_eq!(resolved["attachments"][0]["color"], "#2EB67D");

    // The alert fires again right after being resolved, inside the
    // channels' repeat interval: Slack, which was told it was resolved,
    // hears that it fires again; the webhook, which was not, is not told
    // the same thing twice.
    let on = |sink: &Sink, path: &str| sink.requests().iter().filter(|r| r.path == path).count();
    let hooks_before = on(&sink, "/hook");
    db.batch_execute("SELECT vigil.raise_alert('health_drop', '<!channel> acme', 'high', 'Health dropped 18 points')")
        .unwrap();
    wait_for("the re-fire on Slack", Duration::from_secs(10), || {
        (on(&sink, "/slack") == 4).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        on(&sink, "/hook"),
        hooks_before,
        "a repeat inside repeat_interval was sent"
    );

    let health = db
        .query_one(
            "SELECT notification_queue_depth, deliveries_1h FROM vigil.health",
            &[],
        )
        .unwrap();
    assert_eq!(health.get::<_, i64>(0), 0);
    assert!(health.get::<_, i64>(1) >= 6);
    reset_config(&mut db);
}

pub fn failed_deliveries_retry_honour_retry_after_and_go_dead(c: &Cluster) {
    let mut db = worker_db(c);
    let sink = Sink::start();
    set_config(
        &mut db,
        &[
            "ALTER SYSTEM SET vigil.max_attempts = 3",
            "ALTER SYSTEM SET vigil.http_timeout_ms = 500",
        ],
    );
    channel(&mut db, "flaky", "webhook", &sink.url("/flaky"), "");
    channel(&mut db, "throttled", "webhook", &sink.url("/throttled"), "");
    channel(&mut db, "rejects", "webhook", &sink.url("/rejects"), "");
    channel(&mut db, "slow", "webhook", &sink.url("/slow"), "");
    channel(&mut db, "down", "webhook", &refused_url("/down"), "");
    sink.push("/flaky", [Reply::Status(500), Reply::Status(503)]);
    sink.push(
        "/throttled",
        [Reply::StatusWith(
            429,
            vec![("Retry-After".into(), "2".into())],
        )],
    );
    sink.push("/rejects", [Reply::Status(400)]);
    sink.push("/slow", [Reply::Delay(Duration::from_secs(2), 200)]);

    let mut ids = HashMap::new();
    for name in ["flaky", "throttled", "rejects", "slow", "down"] {
        let id: i64 = db
            .query_one("SELECT vigil.test_channel($1)", &[&name])
            .unwrap()
            .get(0);
        ids.insert(name, id);
    }
    let limit = Duration::from_secs(30);
    wait_status(&mut db, ids["flaky"], "sent", limit);
    wait_status(&mut db, ids["throttled"], "sent", limit);
    wait_status(&mut db, ids["rejects"], "failed", limit);
    wait_status(&mut db, ids["slow"], "sent", limit);
    wait_status(&mut db, ids["down"], "dead", limit);

    let reqs = sink.requests();
    let on = |path: &str| -> Vec<Instant> {
        reqs.iter()
            .filter(|r| r.path == path)
            .map(|r| r.received_at)
            .collect()
    };
    assert_eq!(on("/flaky").len(), 3, "500, 503, then 200");
    assert_eq!(row(&mut db, ids["flaky"]).1, 3);
    let throttled = on("/throttled");
    assert_eq!(throttled.len(), 2);
    let gap = throttled[1] - throttled[0];
    assert!(
        gap >= Duration::from_secs(2),
        "retried {gap:?} after a Retry-After: 2"
    );
    assert_eq!(on("/rejects").len(), 1, "a 400 must not be retried");
    let (_, attempts, status, error) = row(&mut db, ids["rejects"]);
    assert_eq!((attempts, status), (1, Some(400)));
    assert!(error.unwrap().starts_with("HTTP 400"));
    // The slow sink answered after the 500 ms limit: the first try timed out.
    assert_eq!(on("/slow").len(), 2);
    let (_, attempts, _, _) = row(&mut db, ids["slow"]);
    assert_eq!(attempts, 2);
    // Refused connections: dead after max_attempts, the error kept, the
    // secret URL not in it.
    let (_, attempts, status, error) = row(&mut db, ids["down"]);
    let error = error.unwrap();
    assert_eq!((attempts, status), (3, None));
    assert!(
        error.contains("Connection refused") && error.contains("gave up after 3 attempts"),
        "{error}"
    );
    assert!(!error.contains("/down"), "{error}");

    // A dead letter comes back once the channel points somewhere that works.
    db.execute(
        "UPDATE vigil.channels SET url = $1 WHERE name = 'down'",
        &[&sink.url("/recovered")],
    )
    .unwrap();
    let replayed: i64 = db
        .query_one("SELECT vigil.replay_notifications('down')", &[])
        .unwrap()
        .get(0);
    assert_eq!(replayed, 1);
    wait_status(&mut db, ids["down"], "sent", limit);
    let recovered: Vec<_> = sink
        .requests()
        .into_iter()
        .filter(|r| r.path == "/recovered")
        .collect();
    assert_eq!(recovered.len(), 1);
    let key: String = db
        .query_one(
            "SELECT idempotency_key FROM vigil.notifications WHERE id = $1",
            &[&ids["down"]],
        )
        .unwrap()
        .get(0);
    assert_eq!(recovered[0].header("idempotency-key"), Some(key.as_str()));
    reset_config(&mut db);
}

pub fn a_receiver_outage_within_the_deadline_is_delivered_not_dead(c: &Cluster) {
    let mut db = worker_db(c);
    let sink = Sink::start();
    // The safety bound would end retries before the deadline if it still
    // were what decides: the default must not.
    let max_attempts: String = db.query_one("SHOW vigil.max_attempts", &[]).unwrap().get(0);
    assert_eq!(max_attempts, "20000");
    channel(
        &mut db,
        "recovering",
        "webhook",
        &sink.url("/recovering"),
        "",
    );
    sink.push(
        "/recovering",
        [
            Reply::Status(503),
            Reply::Status(502),
            Reply::Status(503),
            Reply::Status(503),
        ],
    );
    let id: i64 = db
        .query_one("SELECT vigil.test_channel('recovering')", &[])
        .unwrap()
        .get(0);
    // Backoff 0.5-1, 1-2, 2-4, 4-8 s: delivered within about 15 s.
    wait_status(&mut db, id, "sent", Duration::from_secs(30));
    let (_, attempts, status, error) = row(&mut db, id);
    assert_eq!((attempts, status, error), (5, Some(200), None));
    let times: Vec<Instant> = sink
        .requests()
        .iter()
        .filter(|r| r.path == "/recovering")
        .map(|r| r.received_at)
        .collect();
    assert_eq!(times.len(), 5, "four failures, then the delivery");
    for (n, pair) in times.windows(2).enumerate() {
        // Equal jitter: never sooner than half the nominal 1 s * 2^n.
        let floor = Duration::from_millis(500 << n);
        assert!(
            pair[1] - pair[0] >= floor,
            "retry {n} after {:?}",
            pair[1] - pair[0]
        );
    }
}

pub fn a_notification_still_failing_at_its_deadline_goes_dead_and_replay_restarts_it(c: &Cluster) {
    let mut db = worker_db(c);
    let sink = Sink::start();
    sink.set_default(Reply::Status(503));
    // Verbose: the log shows each line's SQLSTATE.
    set_config(&mut db, &["ALTER SYSTEM SET log_error_verbosity = verbose"]);
    channel(
        &mut db,
        "short-deadline",
        "webhook",
        &sink.url("/short"),
        ", delivery_deadline => '2 seconds'",
    );
    let id: i64 = db
        .query_one("SELECT vigil.test_channel('short-deadline')", &[])
        .unwrap()
        .get(0);
    wait_status(&mut db, id, "dead", Duration::from_secs(20));
    let (_, attempts, status, error) = row(&mut db, id);
    let error = error.unwrap();
    assert_eq!(status, Some(503));
    assert!(
        error.contains("the delivery deadline passed")
            && error.contains(&format!("gave up after {attempts} attempts")),
        "{error}"
    );
    // Retried while time was left, the last attempt at the deadline, dead only after it.
    let (created_us, dead_us): (i64, i64) = {
        let r = db
            .query_one(
                "SELECT (extract(epoch FROM created_at) * 1e6)::int8, (extract(epoch FROM updated_at) * 1e6)::int8
                 FROM vigil.notifications WHERE id = $1",
                &[&id],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    let sent: Vec<i64> = sink
        .requests()
        .iter()
        .filter(|r| r.path == "/short")
        .map(|r| r.received_unix_us)
        .collect();
    assert_eq!(sent.len() as i32, attempts);
    assert!((2..=5).contains(&attempts), "{attempts} attempts in 2 s");
    let deadline_us = created_us + 2_000_000;
    assert!(
        sent[sent.len() - 2] < deadline_us,
        "a retry before the deadline"
    );
    assert!(
        *sent.last().unwrap() >= deadline_us,
        "last attempt {} us before the deadline",
        deadline_us - sent.last().unwrap()
    );
    assert!(
        dead_us >= deadline_us,
        "dead {} us before the deadline",
        deadline_us - dead_us
    );

    // Retries and the dead row are logged with a SQLSTATE that says so, not 00000.
    let log = c.log();
    for line in [
        format!("LOG:  08006: pg_vigil worker: notification {id} (channel "),
        // (The sink answers its 503s with the body "ok".)
        format!(") is dead: HTTP 503: ok (gave up after {attempts} attempts: the delivery deadline passed)"),
    ] {
        assert!(log.contains(&line), "{line:?} not in the server log");
    }
    assert!(
        log.lines()
            .any(|l| l.contains("LOG:  08006: pg_vigil worker: notification")
                && l.contains("retrying in")),
        "no first-retry line in the server log"
    );
    set_config(&mut db, &["ALTER SYSTEM RESET log_error_verbosity"]);

    // A replay gets a fresh deadline: one more failure is retried, not dead.
    sink.set_default(Reply::Status(200));
    sink.push("/short", [Reply::Status(503)]);
    let replayed: i64 = db
        .query_one("SELECT vigil.replay_notifications('short-deadline')", &[])
        .unwrap()
        .get(0);
    assert_eq!(replayed, 1);
    wait_status(&mut db, id, "sent", Duration::from_secs(20));
    assert_eq!(row(&mut db, id).1, 2, "a 503, then the delivery");
}

pub fn slack_channels_are_rate_limited_to_one_message_per_second(c: &Cluster) {
    let mut db = worker_db(c);
    let sink = Sink::start();
    channel(&mut db, "slack-rl", "slack", &sink.url("/rl"), "");
    // Four messages at once (not test_channel: that allows one per 10 s).
    db.batch_execute(
        "SELECT vigil.send_webhook('slack-rl', jsonb_build_object('text', 'm' || g))
         FROM generate_series(1, 4) g",
    )
    .unwrap();
    assert!(sink.wait_for_count(4, Duration::from_secs(20)));
    let times: Vec<Instant> = sink.requests().iter().map(|r| r.received_at).collect();
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(900),
            "two messages {gap:?} apart"
        );
    }
}

/// Enqueues `n` webhooks in one transaction; returns their idempotency keys.
fn enqueue_bulk(db: &mut Client, channel: &str, n: i32) -> HashSet<String> {
    let ids: Vec<i64> = db
        .query(
            "SELECT vigil.send_webhook($1, jsonb_build_object('n', g)) FROM generate_series(1, $2) g",
            &[&channel, &n],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    db.query(
        "SELECT idempotency_key FROM vigil.notifications WHERE id = ANY($1)",
        &[&ids],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Drains 10 000 notifications, interrupting the worker with `crash` once
/// some have arrived, then checks that every one arrived, and that repeats
/// carry the key of a notification that was in flight.
fn drain_survives(c: &Cluster, name: &str, crash: impl FnOnce(&Cluster)) {
    const N: i32 = 10_000;
    let mut db = worker_db(c);
    let sink = Sink::start();
    // A little latency per request so the drain is still going when we strike.
    sink.set_default(Reply::Delay(Duration::from_millis(2), 200));
    channel(&mut db, name, "webhook", &sink.url("/bulk"), "");
    let keys = enqueue_bulk(&mut db, name, N);
    assert_eq!(keys.len(), N as usize);
    assert!(
        sink.wait_for_count(1500, Duration::from_secs(60)),
        "drain did not start"
    );
    crash(c);
    // The server may still be tearing down or recovering: any failure just
    // means "ask again".
    wait_for("all notifications sent", Duration::from_secs(180), || {
        let mut db = c.try_connect("postgres").ok()?;
        let left: i64 = db
            .query_one(
                "SELECT count(*) FROM vigil.notifications WHERE status <> 'sent'",
                &[],
            )
            .ok()?
            .get(0);
        (left == 0).then_some(())
    });
    sink.stop();
    let received: Vec<String> = sink
        .requests()
        .iter()
        .map(|r| r.header("idempotency-key").unwrap_or("").to_string())
        .collect();
    let unique: HashSet<String> = received.iter().cloned().collect();
    assert_eq!(unique.len(), N as usize, "lost notifications");
    assert!(unique.is_subset(&keys), "a request carried an unknown key");
    let repeats = received.len() - unique.len();
    println!(
        "  {name}: {} requests for {N} notifications ({repeats} repeats, all with the same key)",
        received.len()
    );
    assert!(
        repeats <= 2000,
        "{repeats} repeats: more than were in flight"
    );
}

pub fn kill_9_of_the_worker_mid_drain_loses_nothing(c: &Cluster) {
    drain_survives(c, "kill9", |c| {
        let pid: i32 = c
            .connect("postgres")
            .query_one(
                "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_vigil worker'",
                &[],
            )
            .unwrap()
            .get(0);
        let ok = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -9 {pid}");
    });
}

pub fn immediate_restart_mid_drain_loses_nothing(c: &Cluster) {
    drain_survives(c, "restart", |c| {
        c.pg_ctl_stop("immediate");
        c.pg_ctl_start();
    });
}

pub fn channel_secrets_are_for_vigil_admin_only(c: &Cluster) {
    let mut db = worker_db(c);
    channel(
        &mut db,
        "secret",
        "webhook",
        "https://hooks.example.com/T0/B0/s3cret",
        "",
    );
    let denied = |db: &mut Client, role: &str, sql: &str| {
        db.batch_execute(&format!("SET ROLE {role}")).unwrap();
        let err = db.batch_execute(sql).expect_err(sql);
        db.batch_execute("RESET ROLE").unwrap();
        let code = err.as_db_error().map(|e| e.code().code().to_string());
        assert_eq!(code.as_deref(), Some("42501"), "{role}: {sql}: {err}");
    };
    let allowed = |db: &mut Client, role: &str, sql: &str| {
        db.batch_execute(&format!("SET ROLE {role}")).unwrap();
        let r = db.batch_execute(sql);
        db.batch_execute("RESET ROLE").unwrap();
        r.unwrap_or_else(|e| panic!("{role}: {sql}: {e}"));
    };
    for role in ["vigil_reader", "vigil_operator"] {
        denied(&mut db, role, "SELECT url FROM vigil.channels");
        denied(&mut db, role, "SELECT headers FROM vigil.channels");
        denied(&mut db, role, "SELECT options FROM vigil.channels");
        denied(&mut db, role, "SELECT * FROM vigil.channels");
        denied(&mut db, role, "UPDATE vigil.channels SET enabled = false");
        denied(
            &mut db,
            role,
            "SELECT vigil.create_channel('x', 'webhook', 'http://127.0.0.1:1/', group_by => NULL)",
        );
        allowed(
            &mut db,
            role,
            "SELECT name, kind, enabled FROM vigil.channels",
        );
        allowed(&mut db, role, "SELECT * FROM vigil.notification_queue");
        allowed(&mut db, role, "SELECT * FROM vigil.health");
        allowed(&mut db, role, "SELECT * FROM vigil.active_alerts");
    }
    denied(
        &mut db,
        "vigil_reader",
        "SELECT vigil.test_channel('secret')",
    );
    allowed(
        &mut db,
        "vigil_operator",
        "SELECT vigil.test_channel('secret')",
    );
    allowed(
        &mut db,
        "vigil_admin",
        "SELECT url, headers FROM vigil.channels",
    );
    allowed(
        &mut db,
        "vigil_admin",
        "UPDATE vigil.channels SET enabled = false WHERE name = 'secret'",
    );
    db.batch_execute("DELETE FROM vigil.notifications; DELETE FROM vigil.channels")
        .unwrap();
}

/// Issue 15, identity and lifecycle: a scan's finding keeps one alert (one
/// fingerprint, one notification) while its condition holds, even as the
/// UTC date in its dedup key changes; a dismissed alert stays dismissed
/// while the condition holds and a new one fires only after it cleared;
/// dismiss and expire send closing notifications to send_resolved
/// channels; the webhook carries the monitor's alertname and labels.
pub fn an_ongoing_condition_is_one_alert_across_midnight_and_dismiss_means_dismissed(c: &Cluster) {
    let mut db = worker_db(c);
    let sink = Sink::start();
    db.batch_execute(
        "DROP TABLE IF EXISTS public.busy;
         CREATE TABLE public.busy (entity text NOT NULL, ts timestamptz NOT NULL DEFAULT now());
         INSERT INTO public.busy (entity) SELECT 'acme' FROM generate_series(1, 5);
         SELECT vigil.drop_monitor('busy') FROM vigil.monitors WHERE name = 'busy';
         SELECT vigil.create_monitor('busy', 'count', 'public.busy',
             '{\"entity\": \"entity\", \"time\": \"ts\", \"window\": \"1 day\", \"thresholds\": {\"high\": 3},
               \"alertname\": \"BUSY_ENTITY\", \"labels\": {\"team\": \"growth\"}}');",
    )
    .unwrap();
    // repeat_interval 0: the alert that fires again after its condition
    // cleared is not held back as a flap.
    channel(
        &mut db,
        "hook",
        "webhook",
        &sink.url("/hook"),
        ", send_resolved => true, repeat_interval => '0 seconds'",
    );
    let scan = |db: &mut Client| {
        db.batch_execute("SELECT vigil.scan('busy')").unwrap();
    };
    let open = |db: &mut Client| -> Vec<(i64, i32, String)> {
        db.query(
            "SELECT id, occurrences, fingerprint FROM vigil.alerts
             WHERE monitor = 'busy' AND status IN ('firing', 'acknowledged') ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
    };

    scan(&mut db);
    assert!(
        sink.wait_for_count(1, Duration::from_secs(10)),
        "the new alert is notified"
    );
    let first = open(&mut db);
    assert_eq!(first.len(), 1, "{first:?}");
    let hook = json(&sink.requests()[0].body_str());
    assert_eq!(hook["alerts"][0]["labels"]["alertname"], "BUSY_ENTITY");
    assert_eq!(hook["alerts"][0]["labels"]["team"], "growth");
    assert_eq!(hook["groupLabels"]["alertname"], "BUSY_ENTITY");
    assert_eq!(hook["alerts"][0]["fingerprint"], first[0].2.as_str());

    // The alert as if raised yesterday: its dated key says yesterday's UTC
    // date, which is all that differs for a scan after midnight.
    db.batch_execute(
        "UPDATE vigil.alerts SET created_at = created_at - interval '1 day',
             dedup_key = replace(dedup_key, to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
                                 to_char((now() - interval '1 day') AT TIME ZONE 'UTC', 'YYYY-MM-DD'))
         WHERE monitor = 'busy'",
    )
    .unwrap();
    scan(&mut db);
    let after = open(&mut db);
    assert_eq!(after.len(), 1, "still one alert: {after:?}");
    assert_eq!(
        (after[0].0, after[0].1),
        (first[0].0, 2),
        "the same alert, seen again"
    );
    assert_eq!(
        one_i64(
            &mut db,
            "SELECT count(*) FROM vigil.alerts WHERE monitor = 'busy'"
        ),
        1,
        "nothing resolved and raised again"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(sink.count(), 1, "no second notification");

    // Dismissed: a closing notification, then silence while it holds.
    db.batch_execute(&format!(
        "SELECT vigil.dismiss({}, 'oncall', 'known batch job')",
        first[0].0
    ))
    .unwrap();
    assert!(
        sink.wait_for_count(2, Duration::from_secs(10)),
        "dismiss closes it"
    );
    let closing = json(&sink.requests()[1].body_str());
    assert_eq!(closing["status"], "resolved");
    assert_eq!(closing["vigil"]["event"], "dismissed");
    scan(&mut db);
    assert!(
        open(&mut db).is_empty(),
        "a dismissed alert is not raised again"
    );
    assert_eq!(
        one_i64(
            &mut db,
            &format!(
                "SELECT occurrences::bigint FROM vigil.alerts WHERE id = {}",
                first[0].0
            )
        ),
        3,
        "repeats land on the dismissed alert"
    );
    // The condition clears, then returns: a new alert.
    db.batch_execute("DELETE FROM public.busy").unwrap();
    scan(&mut db);
    db.batch_execute("INSERT INTO public.busy (entity) SELECT 'acme' FROM generate_series(1, 5)")
        .unwrap();
    scan(&mut db);
    let again = open(&mut db);
    assert_eq!(again.len(), 1, "{again:?}");
    assert_ne!(
        again[0].0, first[0].0,
        "a new alert after the condition cleared"
    );
    assert_eq!(again[0].2, first[0].2, "with the same identity");
    assert!(
        sink.wait_for_count(3, Duration::from_secs(10)),
        "and it is notified"
    );

    // Expired: a closing notification too.
    db.batch_execute(
        "UPDATE vigil.alerts SET expires_at = now() - interval '1 second' WHERE monitor = 'busy' AND status = 'firing';
         SELECT vigil.expire_alerts();",
    )
    .unwrap();
    assert!(
        sink.wait_for_count(4, Duration::from_secs(10)),
        "expire closes it"
    );
    let expired = json(&sink.requests()[3].body_str());
    assert_eq!(
        (
            expired["status"].as_str(),
            expired["vigil"]["event"].as_str()
        ),
        (Some("resolved"), Some("expired"))
    );
    // Every body decodes into Alertmanager's own Go types, and each alert's
    // fingerprint is the one Alertmanager computes from its labels.
    let bodies: Vec<String> = sink
        .requests()
        .iter()
        .map(|r| r.body_str().into_owned())
        .collect();
    alertmanager_decodes(&bodies);
    sink.stop();
}

/// Feeds webhook bodies to `pgrx-tests/go/amdecode`, built against
/// Debian's golang-github-prometheus-alertmanager-dev (GOPATH mode,
/// offline), and asserts each decodes and checks out.
pub fn alertmanager_decodes(bodies: &[String]) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let dir = std::env::temp_dir().join(format!("pg_vigil_amdecode_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("amdecode");
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("go/amdecode");
    let built = Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg(".")
        .current_dir(&src)
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOCACHE", dir.join("cache"))
        .output()
        .expect("go (golang-go, installed by scripts/setup.sh)");
    assert!(
        built.status.success(),
        "building amdecode: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let mut child = Command::new(&bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        for b in bodies {
            // One document per line: serde_json's compact form has no newlines.
            let compact = serde_json::to_string(&json(b)).unwrap();
            writeln!(stdin, "{compact}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "Alertmanager's types refuse a body:\n{report}"
    );
    assert_eq!(
        report.lines().filter(|l| l.starts_with("ok ")).count(),
        bodies.len(),
        "{report}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `payload_validators.py` — the providers' own tooling: PyPI's
/// slack-sdk (Block Kit models and validators), PagerDuty's OpenAPI request
/// schema and Microsoft's Adaptive Card 1.4 schema (PyPI jsonschema), in
/// the venv scripts/setup.sh makes — over (kind, body) pairs; Ok("valid N")
/// or Err(what it refused).
fn validator_verdict(bodies: &[(&str, String)]) -> Result<String, String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var_os("VIGIL_TEST_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| here.join("../target/test-venv/bin/python"));
    let mut child = Command::new(python)
        .arg(here.join("tests/notify/payload_validators.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the test venv (scripts/setup.sh makes target/test-venv)");
    {
        let mut stdin = child.stdin.take().unwrap();
        for (kind, b) in bodies {
            writeln!(
                stdin,
                "{kind}\t{}",
                serde_json::to_string(&json(b)).unwrap()
            )
            .unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if out.status.success() {
        Ok(report)
    } else {
        Err(report)
    }
}

fn validators_accept(bodies: &[(&str, String)]) {
    assert!(!bodies.is_empty());
    match validator_verdict(bodies) {
        Ok(report) => assert_eq!(report, format!("valid {}", bodies.len())),
        Err(report) => panic!("a provider's validation refuses a body:\n{report}"),
    }
}

/// `bodies` as Slack messages for the validators.
fn as_slack(bodies: &[String]) -> Vec<(&'static str, String)> {
    bodies.iter().map(|b| ("slack", b.clone())).collect()
}

/// A session with the link settings set and alerts to render: one with
/// details and urgency, 30 of one name for grouped messages.
fn render_db(c: &Cluster) -> Client {
    let mut db = worker_db(c);
    db.batch_execute(
        "SET vigil.external_url = 'https://vigil.example/alerts';
         SET vigil.generator_url = 'https://grafana.example/d/vigil?var-alert={id}&var-entity={entity}';
         SELECT vigil.raise_alert('signup_drop', 'checkout <!channel>', 'high', 'Signups dropped',
             'Signups fell 18 points', '{\"drop_points\": 18, \"current\": 62.5}', urgency => 80);
         SELECT vigil.raise_alert('many', 'e' || g, 'medium', 'Many ' || g) FROM generate_series(1, 30) g;",
    )
    .unwrap();
    db
}

/// `kind`'s body (`vigil.<kind>_payload`) for every event of: the stored
/// alerts (with recommended actions), an empty, a mistyped and three
/// worst-case documents (texts of 120 000 emoji, control characters,
/// quotes, `<&`; 40 details; 50 actions); then its grouped messages over
/// the 30 alerts of one name (kinds that group), capped at 64 and 8 KiB.
fn render_all(db: &mut Client, kind: &str) -> Vec<String> {
    let worst = "CASE WHEN g % 3 = 0 THEN repeat('😀<&', 40000) WHEN g % 3 = 1 THEN repeat(E'\\u0001\"', 40000) \
                 ELSE repeat('é', 120000) END";
    let docs = [
        "SELECT to_jsonb(a) || '{\"recommended_actions\": [\"Check the form\", \"Compare with last week\"]}'
         FROM vigil.alerts a ORDER BY a.id"
            .to_owned(),
        "SELECT '{}'::jsonb".to_owned(),
        "SELECT '{\"id\": \"7\", \"severity\": 3, \"urgency\": \"95\", \"title\": [\"x\"], \"details\": [1], \
         \"recommended_actions\": \"Restart it\", \"occurrences\": 2.0}'::jsonb"
            .to_owned(),
        format!(
            "SELECT jsonb_build_object('id', g, 'title', {worst}, 'summary', {worst}, 'entity', {worst},
                 'severity', {worst}, 'anomaly_type', {worst}, 'urgency', 99, 'occurrences', 5, 'affected_count', 3,
                 'last_seen_at', now(), 'created_at', now() - interval '1 hour',
                 'details', (SELECT jsonb_object_agg({worst} || k, {worst}) FROM generate_series(1, 40) k),
                 'recommended_actions', (SELECT jsonb_agg({worst} || k) FROM generate_series(1, 50) k))
             FROM generate_series(0, 2) g"
        ),
    ];
    let mut bodies: Vec<String> = Vec::new();
    for doc in &docs {
        let sql = format!(
            "SELECT vigil.{kind}_payload(d, e)::text FROM ({doc}) AS x(d),
                 unnest(ARRAY['new', 'escalated', 'acknowledged', 'resolved', 'dismissed', 'expired', 'test']) e"
        );
        bodies.extend(
            db.query(&sql, &[])
                .unwrap()
                .iter()
                .map(|r| r.get::<_, String>(0)),
        );
    }
    if kind == "pagerduty" {
        return bodies;
    }
    for (labels, cap) in [
        ("{\"alertname\": \"many\"}", 65_536),
        (
            "{\"alertname\": \"many\", \"escalation_policy\": \"p\", \"escalation_step\": \"2\"}",
            8_192,
        ),
    ] {
        let sql = format!(
            "SELECT vigil._group_message('{kind}', 'ops', array_agg(id ORDER BY id), '{labels}', {cap})::text
             FROM vigil.alerts WHERE anomaly_type = 'many'"
        );
        bodies.push(db.query_one(&sql, &[]).unwrap().get(0));
    }
    bodies
}

/// Every PagerDuty event and Teams message pg_vigil renders (each event;
/// plain, empty, mistyped and worst-case alerts; grouped cards) validates
/// against the provider's published schema — PagerDuty's Events API v2
/// OpenAPI request schema, Microsoft's Adaptive Card 1.4 JSON schema — and
/// their documented size limits (issue 16); bodies breaking them are
/// refused by the same check.
pub fn pagerduty_and_teams_bodies_match_the_providers_published_schemas(c: &Cluster) {
    let mut db = render_db(c);
    let mut bodies: Vec<(&str, String)> = Vec::new();
    for kind in ["pagerduty", "msteams"] {
        bodies.extend(render_all(&mut db, kind).into_iter().map(|b| (kind, b)));
    }
    assert!(bodies.len() > 400, "{}", bodies.len());
    validators_accept(&bodies);

    let first = |kind: &str| json(&bodies.iter().find(|(k, _)| *k == kind).unwrap().1);
    let mut severity = first("pagerduty");
    severity["payload"]["severity"] = json!("high");
    let mut extra = first("pagerduty");
    extra["payload"]["urgency"] = json!("hours");
    let mut summary = first("pagerduty");
    summary["payload"]["summary"] = json!("x".repeat(1025));
    let mut size = first("msteams");
    size["attachments"][0]["content"]["body"][0]["size"] = json!("gigantic");
    let mut version = first("msteams");
    version["attachments"][0]["content"]["version"] = json!("2.0");
    for (kind, broken) in [
        ("pagerduty", severity),
        ("pagerduty", extra),
        ("pagerduty", summary),
        ("msteams", size),
        ("msteams", version),
    ] {
        let verdict = validator_verdict(&[(kind, broken.to_string())]);
        assert!(verdict.is_err(), "{verdict:?} for {broken}");
    }
    db.batch_execute("DELETE FROM vigil.alerts").unwrap();
}

/// Every Slack message pg_vigil renders — each event, plain, empty,
/// mistyped and worst-case alerts, links set, grouped messages with more
/// alerts than fit — is a Block Kit body that Slack's own SDK accepts
/// (issue 16); a message breaking one of Block Kit's limits is refused by
/// the same check, so the check can fail.
pub fn slack_messages_are_block_kit_that_slack_sdk_accepts(c: &Cluster) {
    let mut db = render_db(c);
    let bodies = render_all(&mut db, "slack");
    let group = json(&bodies[bodies.len() - 2]);
    assert_eq!(
        group["attachments"].as_array().unwrap().len(),
        21,
        "20 alerts and the rest"
    );
    let linked = json(&bodies[0]);
    let buttons = linked["attachments"][0]["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "actions")
        .expect("buttons when the links are set")["elements"]
        .clone();
    assert_eq!(buttons[1]["url"], "https://vigil.example/alerts");
    assert!(buttons[0]["url"]
        .as_str()
        .unwrap()
        .starts_with("https://grafana.example/d/vigil?var-alert="));
    assert!(bodies.len() > 60, "{}", bodies.len());
    validators_accept(&as_slack(&bodies));

    // The check refuses what Slack would: a header over 150 characters, a
    // section with 11 fields, a legacy field beside blocks.
    let mut long_header = json(&bodies[0]);
    long_header["attachments"][0]["blocks"][0]["text"]["text"] = json!("x".repeat(151));
    let mut eleven = json(&bodies[0]);
    eleven["attachments"][0]["blocks"][2]["fields"] =
        json!(vec![json!({"type": "mrkdwn", "text": "*a*\nb"}); 11]);
    let mut legacy = json(&bodies[0]);
    legacy["attachments"][0]["title"] = json!("legacy");
    for broken in [long_header, eleven, legacy] {
        let verdict = validator_verdict(&[("slack", broken.to_string())]);
        assert!(verdict.is_err(), "{verdict:?} for {broken}");
    }
    db.batch_execute("DELETE FROM vigil.alerts").unwrap();
}

fn one_i64(db: &mut Client, sql: &str) -> i64 {
    db.query_one(sql, &[]).unwrap().get(0)
}

/// Issue 15, grouping: a grouped channel sends one message per group (by
/// `group_by` labels) after `group_wait`, listing its alerts; reminders
/// every `repeat_interval` while an alert of the group fires
/// unacknowledged, none once all are acknowledged; a resolved alert goes
/// out in its group's next message (send_resolved). Every body decodes
/// into Alertmanager's Go types.
pub fn grouped_channels_send_one_message_per_group(c: &Cluster) {
    let mut db = worker_db(c);
    db.batch_execute("DELETE FROM vigil.notification_groups")
        .unwrap();
    let sink = Sink::start();
    db.query_one(
        "SELECT vigil.create_channel('grouped', 'webhook', $1, send_resolved => true,
             group_wait => '1 second', group_interval => '1 second', repeat_interval => '3 seconds')",
        &[&sink.url("/grouped")],
    )
    .unwrap();
    db.batch_execute(
        "SELECT vigil.raise_alert('queue_depth', 'queue-' || i, 'high', 'queue ' || i || ' is deep')
         FROM generate_series(1, 6) i;
         SELECT vigil.raise_alert('sync_failure', 'source-' || i, 'critical', 'source ' || i || ' fails')
         FROM generate_series(1, 2) i;",
    )
    .unwrap();
    assert!(
        sink.wait_for_count(2, Duration::from_secs(15)),
        "got {}",
        sink.count()
    );
    std::thread::sleep(Duration::from_millis(500));
    let first: Vec<Value> = sink
        .requests()
        .iter()
        .map(|r| json(&r.body_str()))
        .collect();
    let by_name = |msgs: &[Value], name: &str| -> Vec<Value> {
        msgs.iter()
            .filter(|m| m["groupLabels"]["alertname"] == name)
            .cloned()
            .collect()
    };
    let queue = by_name(&first, "queue_depth");
    assert_eq!(
        queue.len(),
        1,
        "one message for the queue_depth group: {first:?}"
    );
    assert_eq!(queue[0]["alerts"].as_array().unwrap().len(), 6);
    assert_eq!(queue[0]["status"], "firing");
    assert_eq!(queue[0]["commonLabels"]["anomaly_type"], "queue_depth");
    assert!(
        queue[0]["commonLabels"].get("entity").is_none(),
        "entities differ"
    );
    assert_eq!(
        by_name(&first, "sync_failure")[0]["alerts"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Reminders while unacknowledged; acknowledging the queue alerts stops
    // theirs, the other group goes on.
    let count_for = |sink: &Sink, name: &str| {
        let msgs: Vec<Value> = sink
            .requests()
            .iter()
            .map(|r| json(&r.body_str()))
            .collect();
        by_name(&msgs, name).len()
    };
    wait_for(
        "a reminder for queue_depth",
        Duration::from_secs(15),
        || (count_for(&sink, "queue_depth") >= 2).then_some(()),
    );
    db.batch_execute(
        "SELECT vigil.acknowledge(id, 'oncall') FROM vigil.alerts WHERE anomaly_type = 'queue_depth' AND status = 'firing'",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let acked_at = count_for(&sink, "queue_depth");
    wait_for(
        "a reminder for sync_failure",
        Duration::from_secs(15),
        || (count_for(&sink, "sync_failure") >= 3).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        count_for(&sink, "queue_depth"),
        acked_at,
        "no reminders once every alert of the group is acknowledged"
    );
    // A resolved alert is reported in its group's next message.
    db.batch_execute(
        "SELECT vigil.resolve(id) FROM vigil.alerts WHERE entity = 'source-1' AND status = 'firing'",
    )
    .unwrap();
    let resolved = wait_for(
        "the resolved alert in its group",
        Duration::from_secs(15),
        || {
            let msgs: Vec<Value> = sink
                .requests()
                .iter()
                .map(|r| json(&r.body_str()))
                .collect();
            by_name(&msgs, "sync_failure").into_iter().find(|m| {
                m["alerts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|a| a["status"] == "resolved" && a["labels"]["entity"] == "source-1")
            })
        },
    );
    assert_eq!(resolved["status"], "firing", "source-2 still fires");
    let bodies: Vec<String> = sink
        .requests()
        .iter()
        .map(|r| r.body_str().into_owned())
        .collect();
    alertmanager_decodes(&bodies);
    // Two transactions raising alerts of two groups in opposite orders never
    // wait on each other (raisers only append group events).
    let mut t1 = c.connect("postgres");
    let mut t2 = c.connect("postgres");
    t1.batch_execute(
        "BEGIN; SET LOCAL lock_timeout = '2s'; SELECT vigil.raise_alert('queue_age', 'x1', 'high', 'x1')",
    )
    .unwrap();
    t2.batch_execute(
        "BEGIN; SET LOCAL lock_timeout = '2s'; SELECT vigil.raise_alert('lead_unresponded', 'y1', 'high', 'y1')",
    )
    .unwrap();
    t1.batch_execute("SELECT vigil.raise_alert('lead_unresponded', 'x2', 'high', 'x2'); COMMIT")
        .unwrap();
    t2.batch_execute("SELECT vigil.raise_alert('queue_age', 'y2', 'high', 'y2'); COMMIT")
        .unwrap();
    wait_for("both new groups sent", Duration::from_secs(15), || {
        let msgs: Vec<Value> = sink
            .requests()
            .iter()
            .map(|r| json(&r.body_str()))
            .collect();
        (by_name(&msgs, "queue_age").len() == 1 && by_name(&msgs, "lead_unresponded").len() == 1)
            .then_some(())
    });
    sink.stop();
    db.batch_execute("DELETE FROM vigil.channels WHERE name = 'grouped'")
        .unwrap();
}

/// A private CA (`ca.pem`) and a certificate for 127.0.0.1 it signed
/// (`server.pem`, `server.key`), made by openssl in `dir`, valid two days.
fn make_private_ca(dir: &std::path::Path) {
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=pg_vigil test private CA",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
}

/// An HTTPS receiver behind a private CA (issue 16), on 127.0.0.1: with the
/// public and system roots only, the certificate is refused and the
/// notification fails for good with an error saying what to do; a
/// `vigil.ssl_ca_file` that holds no certificate is a WARNING naming it;
/// once it names the CA's PEM a replay is delivered.
pub fn a_private_ca_receiver_is_reached_once_vigil_ssl_ca_file_names_its_ca(c: &Cluster) {
    let mut db = worker_db(c);
    let dir = std::env::temp_dir().join(format!("vigil-private-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    make_private_ca(&dir);
    std::fs::write(dir.join("not-a-bundle.pem"), "no certificates here\n").unwrap();
    // A real TLS server (Python's ssl module) that records what it got.
    std::fs::write(
        dir.join("serve.py"),
        r#"import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
        with open('received', 'ab') as f:
            f.write(body + b'\n')
        self.send_response(200); self.send_header('Content-Length', '2'); self.end_headers(); self.wfile.write(b'ok')
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain('server.pem', 'server.key')
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
"#,
    )
    .unwrap();
    let port = pg_vigil_e2e::free_port();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Kill(
        std::process::Command::new("python3")
            .args(["serve.py", &port.to_string()])
            .current_dir(&dir)
            .spawn()
            .expect("python3 runs"),
    );
    wait_for("the TLS server to listen", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .map(|_| ())
    });
    let ca = dir.join("ca.pem").display().to_string();
    let bad = dir.join("not-a-bundle.pem").display().to_string();
    set_config(&mut db, &["ALTER SYSTEM SET vigil.poll_interval_ms = 100"]);
    channel(
        &mut db,
        "private",
        "webhook",
        &format!("https://127.0.0.1:{port}/hook"),
        "",
    );
    let id: i64 = db
        .query_one("SELECT vigil.test_channel('private')", &[])
        .unwrap()
        .get(0);
    // A certificate no trusted root vouches for: failed for good (retrying
    // cannot fix it), with an error that says what to do.
    wait_status(&mut db, id, "failed", Duration::from_secs(30));
    let error = row(&mut db, id).3.unwrap_or_default();
    assert!(
        error.contains("TLS certificate refused") && error.contains("vigil.ssl_ca_file"),
        "the error says what to do: {error}"
    );
    assert!(
        error.contains("UnknownIssuer"),
        "and names rustls' reason: {error}"
    );
    set_config(
        &mut db,
        &[&format!("ALTER SYSTEM SET vigil.ssl_ca_file = '{bad}'")],
    );
    wait_for(
        "the WARNING naming vigil.ssl_ca_file",
        Duration::from_secs(30),
        || {
            c.log()
                .contains(&format!("vigil.ssl_ca_file \"{bad}\" is not used"))
                .then_some(())
        },
    );
    set_config(
        &mut db,
        &[&format!("ALTER SYSTEM SET vigil.ssl_ca_file = '{ca}'")],
    );
    wait_for(
        "the worker to trust the CA",
        Duration::from_secs(30),
        || {
            c.log()
                .contains("certificate(s) of vigil.ssl_ca_file")
                .then_some(())
        },
    );
    db.batch_execute("SELECT vigil.replay_notifications('private', '{failed}')")
        .unwrap();
    wait_status(&mut db, id, "sent", Duration::from_secs(60));
    let received = std::fs::read_to_string(dir.join("received")).unwrap_or_default();
    assert!(
        received.contains("pg_vigil test notification"),
        "the receiver got the message: {received}"
    );
    set_config(
        &mut db,
        &[
            "ALTER SYSTEM RESET vigil.ssl_ca_file",
            "ALTER SYSTEM RESET vigil.poll_interval_ms",
        ],
    );
    db.batch_execute("DELETE FROM vigil.notifications; DELETE FROM vigil.channels")
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// PagerDuty and Teams channels: what each kind needs is checked (never
/// echoed), the routing key joins the body only as it is sent, PagerDuty
/// hears trigger → acknowledge → resolve under one dedup_key, and Teams
/// gets an Adaptive Card per alert event or per group.
pub fn pagerduty_and_teams_channels_follow_the_alert_lifecycle(c: &Cluster) {
    let mut db = worker_db(c);
    db.batch_execute("DELETE FROM vigil.notification_groups")
        .unwrap();
    let sink = Sink::start();
    let key = "Rk7Q2mXW9aL0pZ3vB8nT4cY6dE1fG5hJ";
    let refused = |db: &mut Client, sql: &str| {
        let err = db.batch_execute(sql).unwrap_err();
        let db_err = err.as_db_error().expect("a database error");
        assert_eq!(db_err.code().code(), "22023", "{sql}: {db_err:?}");
        assert!(
            !db_err.message().contains(key),
            "the key was echoed: {}",
            db_err.message()
        );
        db_err.message().to_string()
    };
    let url = sink.url("/pd");
    let msg = refused(
        &mut db,
        &format!("SELECT vigil.create_channel('pd', 'pagerduty', '{url}')"),
    );
    assert!(msg.contains("options.routing_key is required"), "{msg}");
    let msg = refused(
        &mut db,
        &format!("SELECT vigil.create_channel('pd', 'pagerduty', '{url}', options => '{{\"routing_key\": \"{key}x\"}}')"),
    );
    assert!(msg.contains("32 letters and digits"), "{msg}");
    let msg = refused(
        &mut db,
        &format!("SELECT vigil.create_channel('t', 'msteams', '{url}', options => '{{\"routing_key\": \"{key}\"}}')"),
    );
    assert!(msg.contains("takes no options"), "{msg}");
    // PagerDuty: never grouped, always told of closes, whatever was asked.
    db.query_one(
        "SELECT vigil.create_channel('pd', 'pagerduty', $1, send_resolved => false,
                                     options => jsonb_build_object('routing_key', $2::text))",
        &[&url, &key],
    )
    .unwrap();
    let (grouped, resolved): (bool, bool) = {
        let r = db
            .query_one(
                "SELECT group_by IS NOT NULL, send_resolved FROM vigil.channels WHERE name = 'pd'",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((grouped, resolved), (false, true));
    channel(
        &mut db,
        "teams",
        "msteams",
        &sink.url("/teams"),
        ", send_resolved => true",
    );
    db.query_one(
        "SELECT vigil.create_channel('teams-grouped', 'msteams', $1, send_resolved => true,
             group_wait => '1 second', group_interval => '1 second')",
        &[&sink.url("/teams-grouped")],
    )
    .unwrap();

    let alert: i64 = db
        .query_one(
            "SELECT alert_id FROM vigil.raise_alert('health_drop', 'acme [click](http://evil.example)', 'high',
                 'Health dropped 18 points', 'Acme health 62 vs 80', '{\"drop_points\": 18}')",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        sink.wait_for_count(3, Duration::from_secs(15)),
        "got {}",
        sink.count()
    );
    let on = |sink: &Sink, path: &str| -> Vec<Value> {
        sink.requests()
            .iter()
            .filter(|r| r.path == path)
            .map(|r| json(&r.body_str()))
            .collect()
    };
    let pd = on(&sink, "/pd");
    assert_eq!(pd.len(), 1, "{pd:?}");
    let fingerprint: String = db
        .query_one(
            "SELECT fingerprint FROM vigil.alerts WHERE id = $1",
            &[&alert],
        )
        .unwrap()
        .get(0);
    assert_eq!(pd[0]["routing_key"], key);
    assert_eq!(pd[0]["event_action"], "trigger");
    assert_eq!(pd[0]["dedup_key"], fingerprint.as_str());
    assert_eq!(pd[0]["payload"]["severity"], "error");
    assert_eq!(
        pd[0]["payload"]["source"],
        "acme [click](http://evil.example)"
    );
    assert_eq!(
        pd[0]["payload"]["summary"],
        "Health dropped 18 points: Acme health 62 vs 80"
    );
    assert_eq!(pd[0]["payload"]["custom_details"]["Drop points"], "18");
    // The outbox never held the key.
    let stored: i64 = db
        .query_one(
            "SELECT count(*) FROM vigil.notifications n JOIN vigil.channels c ON c.id = n.channel_id
             WHERE c.name = 'pd' AND n.payload::text LIKE '%' || $1 || '%'",
            &[&key],
        )
        .unwrap()
        .get(0);
    assert_eq!(stored, 0);
    let teams = on(&sink, "/teams");
    assert_eq!(teams.len(), 1);
    let card = &teams[0]["attachments"][0]["content"];
    assert_eq!(teams[0]["type"], "message");
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["body"][0]["text"], "[HIGH] Health dropped 18 points");
    let facts = card["body"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "FactSet")
        .expect("facts");
    assert!(
        facts["facts"].as_array().unwrap().iter().any(
            |f| f["title"] == "Entity" && f["value"] == "acme \\[click\\](http://evil.example)"
        ),
        "{facts}"
    );
    let grouped = on(&sink, "/teams-grouped");
    // What the receivers got (routing key included) is what the providers'
    // schemas describe.
    let received_validate = |sink: &Sink| {
        let bodies: Vec<(&str, String)> = [
            ("/pd", "pagerduty"),
            ("/teams", "msteams"),
            ("/teams-grouped", "msteams"),
        ]
        .into_iter()
        .flat_map(|(path, kind)| {
            on(sink, path)
                .into_iter()
                .map(move |b| (kind, b.to_string()))
        })
        .collect();
        validators_accept(&bodies);
    };
    received_validate(&sink);
    assert_eq!(grouped.len(), 1);
    let head = &grouped[0]["attachments"][0]["content"]["body"][0]["text"];
    assert_eq!(head, "[FIRING:1] alertname=health\\_drop");

    // Acknowledging tells PagerDuty only.
    sink.clear();
    db.execute("SELECT vigil.acknowledge($1, 'oncall')", &[&alert])
        .unwrap();
    assert!(sink.wait_for_count(1, Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(1500));
    let got = sink.take_requests();
    assert_eq!(
        got.len(),
        1,
        "{:?}",
        got.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    let ack = json(&got[0].body_str());
    assert_eq!(got[0].path, "/pd");
    assert_eq!(ack["event_action"], "acknowledge");
    assert_eq!(ack["dedup_key"], fingerprint.as_str());
    assert_eq!(ack["routing_key"], key);
    assert!(ack.get("payload").is_none());

    // Resolving resolves the PagerDuty alert and turns the cards green.
    db.execute("SELECT vigil.resolve($1, 'oncall')", &[&alert])
        .unwrap();
    assert!(
        sink.wait_for_count(3, Duration::from_secs(15)),
        "got {}",
        sink.count()
    );
    let pd = on(&sink, "/pd");
    assert_eq!(pd.len(), 1);
    assert_eq!(pd[0]["event_action"], "resolve");
    assert_eq!(pd[0]["dedup_key"], fingerprint.as_str());
    let teams = on(&sink, "/teams");
    let head = &teams[0]["attachments"][0]["content"]["body"][0];
    assert_eq!(head["color"], "good");
    assert!(
        head["text"].as_str().unwrap().starts_with("RESOLVED: "),
        "{head}"
    );
    let grouped = on(&sink, "/teams-grouped");
    received_validate(&sink);
    assert_eq!(
        grouped[0]["attachments"][0]["content"]["body"][0]["text"],
        "[RESOLVED:1] alertname=health\\_drop"
    );
    // A receiver that refuses the event (PagerDuty's 400: invalid event)
    // fails it, as for any HTTP channel.
    sink.push("/pd", [Reply::Status(400)]);
    let again: i64 = db
        .query_one(
            "SELECT alert_id FROM vigil.raise_alert('health_drop', 'other', 'critical', 'Other dropped')",
            &[],
        )
        .unwrap()
        .get(0);
    let id: i64 = db
        .query_one(
            "SELECT n.id FROM vigil.notifications n JOIN vigil.channels c ON c.id = n.channel_id
             WHERE c.name = 'pd' AND n.alert_id = $1",
            &[&again],
        )
        .unwrap()
        .get(0);
    wait_status(&mut db, id, "failed", Duration::from_secs(10));
    db.batch_execute("DELETE FROM vigil.channels; DELETE FROM vigil.notification_groups")
        .unwrap();
}

/// A real Alertmanager (Debian's `prometheus-alertmanager`) on loopback,
/// its webhook receiver pointed at the sink; killed when dropped.
struct Alertmanager {
    child: std::process::Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Alertmanager {
    fn start(port: u16, dir: &std::path::Path, receiver: &str) -> Alertmanager {
        let config = dir.join("alertmanager.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  resolve_timeout: 2s\n\
                 route:\n  receiver: sink\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
                 receivers:\n- name: sink\n  webhook_configs:\n  - url: {receiver}\n    send_resolved: true\n"
            ),
        )
        .unwrap();
        // A fresh storage directory: a restart forgets every alert.
        let storage = dir.join(format!("data-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&storage);
        let child = std::process::Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", storage.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("alertmanager.log")).unwrap())
            .spawn()
            .expect("prometheus-alertmanager (Debian package prometheus-alertmanager; scripts/setup.sh installs it)");
        let am = Alertmanager {
            child,
            port,
            dir: dir.to_path_buf(),
        };
        wait_for("Alertmanager ready", Duration::from_secs(20), || {
            am.amtool(&["alert", "query", "-o", "json"])
                .ok()
                .map(|_| ())
        });
        am
    }

    fn amtool(&self, args: &[&str]) -> Result<String, String> {
        let out = std::process::Command::new("amtool")
            .arg(format!("--alertmanager.url=http://127.0.0.1:{}", self.port))
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// (alertname, entity, state) of every alert Alertmanager holds.
    fn alerts(&self) -> Vec<(String, String, String)> {
        let out = self
            .amtool(&["alert", "query", "-a", "-s", "-i", "-o", "json"])
            .unwrap();
        json(&out)
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["labels"]["alertname"].as_str().unwrap_or("").to_string(),
                    a["labels"]["entity"].as_str().unwrap_or("").to_string(),
                    a["status"]["state"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let log = std::fs::read_to_string(self.dir.join("alertmanager.log")).unwrap_or_default();
        if std::thread::panicking() {
            eprintln!("alertmanager log:\n{log}");
        }
    }
}

/// The alertmanager channel against a real Alertmanager: an open alert
/// stays active past `resolve_timeout` and its own `endsAt` because the
/// worker re-posts it, an `amtool` silence suppresses it, an Alertmanager
/// restart (which forgets everything) heals on the next re-post, and
/// `vigil.resolve` makes Alertmanager send its resolved notification.
pub fn alertmanager_channels_keep_open_alerts_active_and_resolve_them(c: &Cluster) {
    let mut db = worker_db(c);
    let sink = Sink::start();
    let dir = tempdir_for("alertmanager");
    let port = pg_vigil_e2e::free_port();
    let mut am = Alertmanager::start(port, &dir, &sink.url("/am"));
    set_config(
        &mut db,
        &["ALTER SYSTEM SET vigil.alertmanager_resend_interval = 1"],
    );
    let err = db
        .batch_execute(&format!(
            "SELECT vigil.create_channel('am', 'alertmanager', 'http://127.0.0.1:{port}/')"
        ))
        .unwrap_err();
    assert_eq!(
        err.as_db_error()
            .map(|e| e.code().code().to_string())
            .as_deref(),
        Some("22023"),
        "{err}"
    );
    db.query_one(
        "SELECT vigil.create_channel('am', 'alertmanager', $1)",
        &[&format!("http://127.0.0.1:{port}/api/v2/alerts")],
    )
    .unwrap();
    let alert: i64 = db
        .query_one(
            "SELECT alert_id FROM vigil.raise_alert('health_drop', 'acme', 'high', 'Health dropped 18 points')",
            &[],
        )
        .unwrap()
        .get(0);
    let active = |am: &Alertmanager| {
        am.alerts()
            .into_iter()
            .any(|(n, e, s)| n == "health_drop" && e == "acme" && s == "active")
    };
    wait_for(
        "the alert active in Alertmanager",
        Duration::from_secs(15),
        || active(&am).then_some(()),
    );
    // endsAt is 4 s ahead and resolve_timeout 2 s: only re-posts keep it.
    std::thread::sleep(Duration::from_secs(7));
    assert!(active(&am), "gone from Alertmanager: {:?}", am.alerts());
    let resends: i64 = db
        .query_one(
            "SELECT count(*) FROM vigil.notifications WHERE event = 'resend' AND status = 'sent'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(resends >= 3, "{resends} re-posts in 7 s");
    // Alertmanager notified its receiver of the firing alert.
    wait_for(
        "Alertmanager's firing notification",
        Duration::from_secs(15),
        || {
            sink.requests()
                .iter()
                .any(|r| r.path == "/am" && json(&r.body_str())["status"] == "firing")
                .then_some(())
        },
    );

    // An amtool silence suppresses it.
    let silence = am
        .amtool(&[
            "silence",
            "add",
            "alertname=health_drop",
            "--comment=maintenance",
            "--author=e2e",
            "--duration=1h",
        ])
        .unwrap();
    let silence = silence.trim().to_string();
    wait_for("the alert suppressed", Duration::from_secs(10), || {
        am.alerts()
            .into_iter()
            .any(|(n, _, s)| n == "health_drop" && s == "suppressed")
            .then_some(())
    });
    am.amtool(&["silence", "expire", &silence]).unwrap();

    // A restart forgets every alert; the next re-post brings it back.
    drop(am);
    am = Alertmanager::start(port, &dir, &sink.url("/am"));
    wait_for(
        "the alert back after a restart",
        Duration::from_secs(15),
        || active(&am).then_some(()),
    );

    // Resolving posts endsAt = resolved_at: Alertmanager sends "resolved".
    sink.clear();
    db.execute("SELECT vigil.resolve($1, 'oncall')", &[&alert])
        .unwrap();
    wait_for(
        "Alertmanager's resolved notification",
        Duration::from_secs(20),
        || {
            sink.requests()
                .iter()
                .any(|r| {
                    let b = json(&r.body_str());
                    r.path == "/am"
                        && b["status"] == "resolved"
                        && b["alerts"][0]["labels"]["entity"] == "acme"
                })
                .then_some(())
        },
    );
    // No more re-posts of it: it stays resolved.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        am.alerts()
            .into_iter()
            .all(|(n, _, s)| n != "health_drop" || s != "active"),
        "{:?}",
        am.alerts()
    );
    drop(am);
    db.batch_execute("DELETE FROM vigil.channels").unwrap();
    set_config(
        &mut db,
        &["ALTER SYSTEM RESET vigil.alertmanager_resend_interval"],
    );
}

fn tempdir_for(what: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pg_vigil_e2e_{what}_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A real SMTP server (`smtp_sink.py`, aiosmtpd) on loopback; stopped when
/// dropped.
struct SmtpSink {
    child: std::process::Child,
    port: u16,
    out: std::path::PathBuf,
}

impl SmtpSink {
    fn start(dir: &std::path::Path) -> SmtpSink {
        SmtpSink::start_with(dir, "mail", &[])
    }

    /// A sink writing to `dir/<name>.jsonl`, with smtp_sink.py's `options`
    /// (`--starttls CERT KEY`, `--implicit-tls CERT KEY`, `--auth USER PASSWORD`).
    fn start_with(dir: &std::path::Path, name: &str, options: &[&str]) -> SmtpSink {
        use std::io::BufRead;
        let port = pg_vigil_e2e::free_port();
        let out = dir.join(format!("{name}.jsonl"));
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/notify/smtp_sink.py");
        // Debian's interpreter, where python3-aiosmtpd is (a python3 earlier
        // on PATH, pyenv's say, lacks it).
        let mut child = std::process::Command::new("/usr/bin/python3")
            .arg(script)
            .arg(port.to_string())
            .arg(&out)
            .args(options)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 with aiosmtpd (Debian package python3-aiosmtpd; scripts/setup.sh installs it)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "smtp_sink.py did not start");
        SmtpSink { child, port, out }
    }

    /// Every message accepted so far, as smtp_sink.py recorded it
    /// (`from`, `to`, `data`, `tls`, `login`).
    fn records(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(json)
            .collect()
    }

    /// (envelope recipients, raw message) of every message accepted so far.
    fn messages(&self) -> Vec<(Vec<String>, String)> {
        self.records()
            .into_iter()
            .map(|v| {
                let to = v["to"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap().to_string())
                    .collect();
                (to, v["data"].as_str().unwrap().to_string())
            })
            .collect()
    }

    fn wait_for(&self, what: &str, f: impl Fn(&(Vec<String>, String)) -> bool) -> String {
        wait_for(what, Duration::from_secs(20), || {
            self.messages().into_iter().find(|m| f(m)).map(|m| m.1)
        })
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Email channels against a real SMTP server: one message per alert event
/// (or group) with a text and an HTML part, a 4xx reply retried, a 5xx
/// reply failed, the options checked and never echoed.
pub fn email_channels_deliver_by_smtp_and_retry_only_what_the_server_defers(c: &Cluster) {
    let mut db = worker_db(c);
    db.batch_execute("DELETE FROM vigil.notification_groups")
        .unwrap();
    let dir = tempdir_for("smtp");
    let smtp = SmtpSink::start(&dir);
    let url = format!("smtp://127.0.0.1:{}", smtp.port);
    let opts = |to: &str| {
        format!(
            r#"{{"from": "pg_vigil <vigil@example.com>", "to": ["{to}"], "tls": "none", "username": null, "password": null}}"#
        )
    };
    // What an email channel needs is checked, by key, never echoing values.
    for (options, want) in [
        (
            r#"{"to": ["a@example.com"]}"#.to_string(),
            "missing field `from`",
        ),
        (
            r#"{"from": "v@example.com", "to": ["a@example.com"], "password": "hunter2"}"#
                .to_string(),
            "go together",
        ),
        (
            r#"{"from": "v@example.com", "to": []}"#.to_string(),
            "at least one",
        ),
    ] {
        let err = db
            .execute(
                "SELECT vigil.create_channel('bad', 'email', $1, options => $2::text::jsonb)",
                &[&url, &options],
            )
            .unwrap_err();
        let e = err.as_db_error().unwrap();
        assert_eq!(e.code().code(), "22023", "{e:?}");
        assert!(e.message().contains(want), "{}", e.message());
        assert!(!e.message().contains("hunter2"), "{}", e.message());
    }
    for (name, to, grouped) in [
        ("mail", "oncall@example.com", false),
        ("mail-temp", "tempfail@example.com", false),
        ("mail-reject", "reject@example.com", false),
        ("mail-grouped", "team@example.com", true),
    ] {
        let group = if grouped {
            ", group_wait => '1 second', group_interval => '1 second'"
        } else {
            ", group_by => NULL"
        };
        db.execute(
            &format!(
                "SELECT vigil.create_channel($1, 'email', $2, send_resolved => true, options => $3::text::jsonb{group})"
            ),
            &[&name, &url, &opts(to)],
        )
        .unwrap();
    }
    let alert: i64 = db
        .query_one(
            "SELECT alert_id FROM vigil.raise_alert('health_drop', 'acme', 'high',
                 'Health dropped 18 points', 'Acme health 62 vs 80', '{\"drop_points\": 18}')",
            &[],
        )
        .unwrap()
        .get(0);
    let msg = smtp.wait_for("the alert's email", |(to, _)| {
        to == &["oncall@example.com".to_string()]
    });
    for want in [
        "Subject: [FIRING:1] Health dropped 18 points (acme)",
        "From: pg_vigil <vigil@example.com>",
        "To: oncall@example.com",
        "@pg_vigil>",
        "multipart/alternative",
        "Content-Type: text/plain",
        "Content-Type: text/html",
        "Severity: high",
        "Drop points: 18",
    ] {
        assert!(msg.contains(want), "{want} not in:\n{msg}");
    }
    let grouped = smtp.wait_for("the group's email", |(to, _)| {
        to == &["team@example.com".to_string()]
    });
    assert!(
        grouped.contains("Subject: [FIRING:1] alertname=health_drop"),
        "{grouped}"
    );
    // 451 on the first try: retried, then delivered.
    smtp.wait_for("the deferred email, retried", |(to, _)| {
        to == &["tempfail@example.com".to_string()]
    });
    let state = |db: &mut Client, name: &str| -> (String, i32, Option<String>) {
        let r = db
            .query_one(
                "SELECT n.status::text, n.attempts, n.last_error FROM vigil.notifications n
                 JOIN vigil.channels c ON c.id = n.channel_id WHERE c.name = $1 AND n.alert_id = $2",
                &[&name, &alert],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    wait_for("mail-temp sent", Duration::from_secs(10), || {
        (state(&mut db, "mail-temp").0 == "sent").then_some(())
    });
    assert_eq!(state(&mut db, "mail-temp").1, 2, "one retry after the 451");
    // 550: failed at once.
    wait_for("mail-reject failed", Duration::from_secs(10), || {
        (state(&mut db, "mail-reject").0 == "failed").then_some(())
    });
    let (_, attempts, error) = state(&mut db, "mail-reject");
    assert_eq!(attempts, 1);
    assert!(
        error.as_deref().unwrap_or("").contains("SMTP 550"),
        "{error:?}"
    );

    db.execute("SELECT vigil.resolve($1, 'oncall')", &[&alert])
        .unwrap();
    smtp.wait_for("the resolved email", |(to, m)| {
        to == &["oncall@example.com".to_string()]
            && m.contains("Subject: [RESOLVED] Health dropped 18 points (acme)")
    });
    db.batch_execute("DELETE FROM vigil.channels; DELETE FROM vigil.notification_groups")
        .unwrap();
}

/// Email channels over TLS against real TLS SMTP servers on 127.0.0.1
/// (`smtp_sink.py`, a private CA made here): `smtp://` does STARTTLS and
/// `smtps://` implicit TLS, each logging in; until `vigil.ssl_ca_file`
/// names the CA both fail for good, once, with an error naming it, and a
/// replay then delivers them; a server offering no STARTTLS gets nothing
/// in clear; a refused login (535) fails for good, and neither password
/// is ever in an error or the server log.
pub fn email_channels_use_starttls_and_smtps_with_a_login_behind_a_private_ca(c: &Cluster) {
    let mut db = worker_db(c);
    db.batch_execute("DELETE FROM vigil.notification_groups")
        .unwrap();
    let dir = tempdir_for("smtp_tls");
    make_private_ca(&dir);
    let (cert, key) = (
        dir.join("server.pem").display().to_string(),
        dir.join("server.key").display().to_string(),
    );
    let ca = dir.join("ca.pem").display().to_string();
    let (user, password, wrong) = ("vigil-mailer", "Sm7pS3cret-4q8z", "Wr0ngPa55-9f3k");
    let starttls = SmtpSink::start_with(
        &dir,
        "starttls",
        &["--starttls", &cert, &key, "--auth", user, password],
    );
    let smtps = SmtpSink::start_with(
        &dir,
        "smtps",
        &["--implicit-tls", &cert, &key, "--auth", user, password],
    );
    let plain = SmtpSink::start_with(&dir, "plain", &[]);
    set_config(
        &mut db,
        &[
            "ALTER SYSTEM RESET vigil.ssl_ca_file",
            "ALTER SYSTEM SET vigil.poll_interval_ms = 100",
        ],
    );
    let opts = |pw: &str| {
        format!(
            r#"{{"from": "pg_vigil <vigil@example.com>", "to": ["oncall@example.com"], "username": "{user}", "password": "{pw}"}}"#
        )
    };
    let email_channel = |db: &mut Client, name: &str, url: &str, options: &str| {
        db.execute(
            "SELECT vigil.create_channel($1, 'email', $2, options => $3::text::jsonb, group_by => NULL)",
            &[&name, &url, &options],
        )
        .unwrap();
    };
    let test = |db: &mut Client, name: &str| -> i64 {
        db.query_one("SELECT vigil.test_channel($1)", &[&name])
            .unwrap()
            .get(0)
    };
    email_channel(
        &mut db,
        "mail-starttls",
        &format!("smtp://127.0.0.1:{}", starttls.port),
        &opts(password),
    );
    email_channel(
        &mut db,
        "mail-smtps",
        &format!("smtps://127.0.0.1:{}", smtps.port),
        &opts(password),
    );
    // A certificate no trusted root vouches for: failed for good after one
    // attempt (retrying cannot fix it), saying what to do.
    let first = [test(&mut db, "mail-starttls"), test(&mut db, "mail-smtps")];
    for id in first {
        wait_status(&mut db, id, "failed", Duration::from_secs(30));
        let (_, attempts, _, error) = row(&mut db, id);
        let error = error.unwrap_or_default();
        assert_eq!(attempts, 1, "not retried: {error}");
        assert!(
            error.contains("vigil.ssl_ca_file") && error.contains("UnknownIssuer"),
            "the error says what to do and why: {error}"
        );
    }
    assert!(starttls.records().is_empty() && smtps.records().is_empty());
    set_config(
        &mut db,
        &[&format!("ALTER SYSTEM SET vigil.ssl_ca_file = '{ca}'")],
    );
    wait_for(
        "the worker to trust the CA",
        Duration::from_secs(30),
        || {
            c.log()
                .contains(&format!("certificate(s) of vigil.ssl_ca_file \"{ca}\""))
                .then_some(())
        },
    );
    db.batch_execute("SELECT vigil.replay_notifications(NULL, '{failed}')")
        .unwrap();
    for (id, sink) in first.iter().zip([&starttls, &smtps]) {
        wait_status(&mut db, *id, "sent", Duration::from_secs(60));
        let got = sink.records();
        assert_eq!(got.len(), 1, "one message: {got:?}");
        let m = &got[0];
        assert!(
            m["tls"].as_str().is_some_and(|v| v.starts_with("TLSv1.")),
            "the server saw TLS: {:?}",
            m["tls"]
        );
        assert_eq!(m["login"], user, "and the login");
        assert_eq!(m["to"][0], "oncall@example.com");
        assert!(
            m["data"]
                .as_str()
                .unwrap()
                .contains("pg_vigil test notification"),
            "{m}"
        );
    }
    // The wrong password: the server's 535 fails the notification for
    // good, and the password is not in the error.
    // A test message on a new channel that fails at its first attempt, for
    // good; its error.
    let fails_for_good = |db: &mut Client, name: &str, url: String, options: &str| {
        email_channel(db, name, &url, options);
        let id = test(db, name);
        wait_status(db, id, "failed", Duration::from_secs(30));
        let (_, attempts, _, error) = row(db, id);
        let error = error.unwrap_or_default();
        assert_eq!(attempts, 1, "not retried: {error}");
        error
    };
    let error = fails_for_good(
        &mut db,
        "mail-wrong-login",
        format!("smtp://127.0.0.1:{}", starttls.port),
        &opts(wrong),
    );
    assert!(error.contains("SMTP 535"), "{error}");
    assert_eq!(starttls.records().len(), 1, "nothing more was accepted");
    // smtp:// requires STARTTLS: a server that does not offer it gets
    // nothing (it would accept the message in clear), and the notification
    // fails for good.
    let error = fails_for_good(
        &mut db,
        "mail-no-starttls",
        format!("smtp://127.0.0.1:{}", plain.port),
        &opts(password),
    );
    assert!(error.contains("STARTTLS"), "{error}");
    assert!(plain.records().is_empty(), "sent in clear");
    // No password in any notification's error, nor in the server log.
    let errors: Vec<String> = db
        .query(
            "SELECT coalesce(last_error, '') FROM vigil.notifications",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let log = c.log();
    for pw in [password, wrong] {
        assert!(!errors.iter().any(|e| e.contains(pw)), "{errors:?}");
        assert!(!log.contains(pw), "a password in the server log");
    }
    set_config(
        &mut db,
        &[
            "ALTER SYSTEM RESET vigil.ssl_ca_file",
            "ALTER SYSTEM RESET vigil.poll_interval_ms",
        ],
    );
    db.batch_execute("DELETE FROM vigil.notifications; DELETE FROM vigil.channels")
        .unwrap();
    drop((starttls, smtps, plain));
    let _ = std::fs::remove_dir_all(&dir);
}
