//! NATS JetStream ingest against a real `nats-server` with JetStream (`TEST_NATS_URL`,
//! default 127.0.0.1:4222; `.ci/run` makes sure one runs). Each test has a stream and a
//! durable consumer of its own, deleted afterwards.
//!
//! Counted, then acked; `kill -9` mid-stream and between COMMIT and ack, with nothing lost
//! and nothing doubled; two gatherers on one durable consumer; a MySQL outage that stops
//! the fetching; invalid messages that end as dead letters without blocking the stream.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use detect::synth::Rng;
use futures_util::StreamExt;
use gatherer::configuration::Settings;
use gatherer::startup::Application;
use serde_json::{json, Value};

use crate::helpers::{poll_until, spawn_app_with, table_totals, test_settings, TestDb};
use crate::outage::{spawn_app_behind_proxy, CuttableProxy};
use crate::process::{signal, start_with};

pub fn nats_url() -> String {
    std::env::var("TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// A stream (and its durable consumer) for one test, deleted when dropped.
pub struct TestStream {
    pub name: String,
    pub url: String,
}

impl TestStream {
    pub fn new() -> Self {
        Self::on(nats_url())
    }

    fn on(url: String) -> Self {
        use std::hash::{BuildHasher, RandomState};
        let name = format!(
            "pulse_test_{:016x}",
            RandomState::new().hash_one(std::time::SystemTime::now())
        );
        TestStream { name, url }
    }

    pub fn subject(&self) -> String {
        format!("{}.events", self.name)
    }

    pub fn dead_subject(&self) -> String {
        format!("{}.dead", self.name)
    }

    /// Points a gatherer's `[nats]` at this stream.
    pub fn configure(&self, s: &mut Settings) {
        s.nats.url = self.url.clone().into();
        s.nats.stream = self.name.clone();
        s.nats.subjects = vec![self.subject()];
        s.nats.durable = "gatherer".to_owned();
        s.nats.ack_wait = Duration::from_secs(5);
    }

    /// The same as environment variables, for the real binary.
    pub fn env(&self, url: &str) -> Vec<(String, String)> {
        vec![
            ("GATHERER__NATS__URL".into(), url.to_owned()),
            ("GATHERER__NATS__STREAM".into(), self.name.clone()),
            (
                "GATHERER__NATS__SUBJECTS".into(),
                format!("[\"{}\"]", self.subject()),
            ),
            ("GATHERER__NATS__ACK_WAIT".into(), "5s".into()),
        ]
    }

    pub async fn context(&self) -> jetstream::Context {
        let client = async_nats::connect(&self.url)
            .await
            .expect("connect to NATS");
        jetstream::new(client)
    }

    /// Creates the stream as the gatherer would, so that messages published before a
    /// gatherer starts are kept.
    pub async fn create(&self) -> jetstream::Context {
        let context = self.context().await;
        context
            .get_or_create_stream(jetstream::stream::Config {
                name: self.name.clone(),
                subjects: vec![self.subject()],
                retention: jetstream::stream::RetentionPolicy::WorkQueue,
                ..Default::default()
            })
            .await
            .expect("create the stream");
        context
    }

    /// (messages not yet delivered, delivered but not acked) of the durable consumer.
    pub async fn consumer_backlog(&self, context: &jetstream::Context) -> Option<(u64, usize)> {
        let stream = context.get_stream(&self.name).await.ok()?;
        let mut consumer = stream.get_consumer::<pull::Config>("gatherer").await.ok()?;
        let info = consumer.info().await.ok()?;
        Some((info.num_pending, info.num_ack_pending))
    }

    /// Waits until every message was delivered and acknowledged.
    pub async fn wait_all_acked(&self, context: &jetstream::Context, within: Duration) {
        poll_until(within, "every message acknowledged", || async {
            (self.consumer_backlog(context).await == Some((0, 0))).then_some(())
        })
        .await;
    }
}

impl Drop for TestStream {
    fn drop(&mut self) {
        let (name, url) = (self.name.clone(), self.url.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let client = async_nats::connect(url).await?;
                let _ = jetstream::new(client).delete_stream(&name).await;
                Ok::<_, async_nats::Error>(())
            })?;
            Ok::<_, async_nats::Error>(())
        })
        .join();
    }
}

/// Message bodies of a shop's traffic, in all three shapes `/gather` takes: one event,
/// arrays, NDJSON; entities of very different sizes, jittering prices. Returns the bodies
/// and the totals they add.
pub fn shop_messages(
    seed: u64,
    messages: usize,
    events_each: usize,
    ts: Option<i64>,
) -> (Vec<String>, (i128, u64)) {
    let mut rng = Rng::new(seed);
    let mut totals = (0i128, 0u64);
    let mut bodies = Vec::with_capacity(messages);
    for m in 0..messages {
        let mut events = Vec::with_capacity(events_each);
        for _ in 0..events_each {
            let (label, value) = if rng.uniform() < 0.6 {
                ("checkout", 1 + rng.overdispersed(2.0, 0.5) as i64)
            } else {
                (
                    "price",
                    (2_499.0 * (1.0 + 0.04 * rng.normal())).round() as i64,
                )
            };
            let id = rng.between(0.0, 500f64.ln()).exp() as i64;
            totals.0 += i128::from(value);
            totals.1 += 1;
            let mut event = json!({"label": label, "id": id, "value": value});
            if let Some(ts) = ts {
                event["ts"] = json!(ts);
            }
            events.push(event);
        }
        let body = match (events_each, m % 3) {
            (1, _) => events[0].to_string(),
            (_, 0) => json!(events).to_string(),
            _ => events
                .iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        };
        bodies.push(body);
    }
    (bodies, totals)
}

pub async fn publish_all(context: &jetstream::Context, subject: &str, bodies: &[String]) {
    let mut acks = Vec::with_capacity(bodies.len());
    for body in bodies {
        acks.push(
            context
                .publish(subject.to_owned(), body.clone().into())
                .await
                .expect("publish"),
        );
    }
    for ack in acks {
        ack.await.expect("the stream stored the message");
    }
}

/// The value of metric `name` whose labels include every one of `labels` (0 if absent).
pub fn labelled(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(name) && line[name.len()..].starts_with('{'))
        .filter(|line| {
            labels
                .iter()
                .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|line| line.rsplit(' ').next()?.trim().parse::<f64>().ok())
        .sum()
}

async fn metric(base: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    labelled(&text, name, labels)
}

#[tokio::test]
async fn a_hundred_thousand_events_in_a_thousand_messages_are_counted_exactly_then_acked() {
    let stream = TestStream::new();
    let context = stream.create().await;
    let (bodies, expected) = shop_messages(1701, 1_000, 100, None);
    publish_all(&context, &stream.subject(), &bodies).await;

    let mut app = spawn_app_with(|s| stream.configure(s)).await;
    let pool = app.db.pool().await;
    poll_until(Duration::from_secs(60), "every event counted", || async {
        (table_totals(&pool).await == expected).then_some(())
    })
    .await;
    stream
        .wait_all_acked(&context, Duration::from_secs(30))
        .await;
    let ready: Value = app.get("/health/ready").await.json().await.unwrap();
    assert_eq!(ready["nats"], "up");
    let report = app.shutdown().await;
    assert_eq!(report.unflushed_events, 0);
    assert_eq!(
        table_totals(&pool).await,
        expected,
        "counted more than once"
    );
    // The sequences committed cover all 1 000 messages, each wholly, once.
    let covered: Vec<(u64, u64)> = sqlx::query_as(
        "SELECT first_seq, last_seq FROM nats_consumed WHERE covered_ms = 9223372036854775807",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let messages: u64 = covered.iter().map(|(f, l)| l - f + 1).sum();
    assert_eq!(messages, 1_000);
}

/// A TCP forwarder in front of NATS: cut, the gatherer can neither fetch nor acknowledge.
async fn nats_proxy() -> (CuttableProxy, String) {
    let upstream = nats_url().trim_start_matches("nats://").to_owned();
    let proxy = CuttableProxy::start(upstream).await;
    let url = format!("nats://127.0.0.1:{}", proxy.port);
    (proxy, url)
}

#[tokio::test]
async fn kill_9_mid_stream_and_between_commit_and_ack_loses_nothing_and_doubles_nothing() {
    let db = TestDb::new("pulse_test");
    let stream = TestStream::new();
    let context = stream.create().await;
    let (proxy, via_proxy) = nats_proxy().await;
    let env: Vec<(String, String)> = stream.env(&via_proxy);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let add = |expected: &mut (i128, u64), totals: (i128, u64)| {
        expected.0 += totals.0;
        expected.1 += totals.1;
    };
    let mut expected = (0i128, 0u64);

    // Round 1, mid-stream: messages stamped 20 s ahead stay in an open bucket, recorded
    // but not committed, when the gatherer is killed. Acked early, they would be lost.
    let ahead = chrono::Utc::now().timestamp() + 20;
    let (held, held_totals) = shop_messages(1702, 100, 20, Some(ahead));
    let (now, now_totals) = shop_messages(1703, 100, 20, None);
    publish_all(&context, &stream.subject(), &held).await;
    publish_all(&context, &stream.subject(), &now).await;
    add(&mut expected, held_totals);
    add(&mut expected, now_totals);
    let (child, base) = start_with(&db, &env).await;
    let pool = db.pool().await;
    poll_until(
        Duration::from_secs(20),
        "the first round fetched",
        || async {
            (metric(
                &base,
                "gatherer_nats_messages_total",
                &[("outcome", "fetched")],
            )
            .await
                >= 200.0)
                .then_some(())
        },
    )
    .await;
    poll_until(
        Duration::from_secs(20),
        "the current events committed",
        || async { (table_totals(&pool).await.1 >= now_totals.1).then_some(()) },
    )
    .await;
    assert!(
        table_totals(&pool).await.1 < expected.1,
        "the held events committed too early"
    );
    signal(&child, "KILL");
    drop(child);

    // Round 2, between COMMIT and ack: the gatherer fetches, NATS is cut so no ack can
    // leave, its flush commits, and it is killed.
    let (more, more_totals) = shop_messages(1704, 200, 20, None);
    publish_all(&context, &stream.subject(), &more).await;
    add(&mut expected, more_totals);
    let before = table_totals(&pool).await;
    let (child, base) = start_with(&db, &env).await;
    poll_until(
        Duration::from_secs(20),
        "the second round fetched",
        || async {
            (metric(
                &base,
                "gatherer_nats_messages_total",
                &[("outcome", "fetched")],
            )
            .await
                >= 50.0)
                .then_some(())
        },
    )
    .await;
    proxy.cut();
    poll_until(
        Duration::from_secs(20),
        "a commit whose ack cannot leave",
        || async { (table_totals(&pool).await.1 > before.1).then_some(()) },
    )
    .await;
    signal(&child, "KILL");
    drop(child);
    proxy.restore();

    // Round 3: a gatherer that gets the redeliveries finds the committed ones and drops
    // them, and counts the rest.
    let (mut child, base) = start_with(&db, &env).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let found = table_totals(&pool).await;
        assert!(
            found.1 <= expected.1,
            "counted twice: {found:?}, expected {expected:?}"
        );
        if found == expected && stream.consumer_backlog(&context).await == Some((0, 0)) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "after the kills: {found:?}, expected {expected:?}, consumer {:?}",
            stream.consumer_backlog(&context).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deduplicated = metric(
        &base,
        "gatherer_nats_messages_total",
        &[("outcome", "deduplicated")],
    )
    .await;
    assert!(
        deduplicated >= 1.0,
        "no redelivery of a committed message was dropped: the kill missed the window"
    );
    signal(&child, "TERM");
    assert!(child.wait().await.unwrap().success());
    assert_eq!(table_totals(&pool).await, expected);
}

/// Builds and runs a gatherer on an existing database.
async fn run_on(
    db_url: &str,
    configure: impl FnOnce(&mut Settings),
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<gatherer::flusher::FlushReport>>,
) {
    let mut settings = test_settings(db_url);
    configure(&mut settings);
    let app = Application::build(settings).await.expect("starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    (base, stop, task)
}

#[tokio::test]
async fn two_gatherers_on_one_durable_consumer_count_each_message_once_and_both_take_part() {
    let db = TestDb::new("pulse_test");
    let stream = TestStream::new();
    let context = stream.create().await;
    let (a, stop_a, task_a) = run_on(&db.url, |s| {
        stream.configure(s);
        s.nats.batch = 20;
    })
    .await;
    let (b, stop_b, task_b) = run_on(&db.url, |s| {
        stream.configure(s);
        s.nats.batch = 20;
    })
    .await;
    let pool = db.pool().await;
    let (bodies, expected) = shop_messages(1705, 1_000, 50, None);
    publish_all(&context, &stream.subject(), &bodies).await;
    poll_until(Duration::from_secs(60), "every event counted", || async {
        (table_totals(&pool).await == expected).then_some(())
    })
    .await;
    stream
        .wait_all_acked(&context, Duration::from_secs(30))
        .await;
    for (base, stop, task) in [(a, stop_a, task_a), (b, stop_b, task_b)] {
        let _ = reqwest::get(format!("{base}/health/live")).await;
        let _ = stop.send(());
        assert_eq!(task.await.unwrap().unwrap().unflushed_events, 0);
    }
    assert_eq!(table_totals(&pool).await, expected);
    // Each gatherer's NATS batches are named after its instance.
    let instances: Vec<(Vec<u8>,)> =
        sqlx::query_as("SELECT DISTINCT SUBSTRING_INDEX(batch_id, '-', 1) FROM nats_consumed")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(instances.len(), 2, "only {instances:?} took part");
}

#[tokio::test]
async fn while_mysql_is_away_the_consumer_stops_fetching_and_everything_lands_once_after() {
    let stream = TestStream::new();
    let context = stream.create().await;
    let (mut app, proxy) = spawn_app_behind_proxy(|s| stream.configure(s)).await;
    let pool = app.db.pool().await;
    let (first, first_totals) = shop_messages(1706, 50, 20, None);
    publish_all(&context, &stream.subject(), &first).await;
    poll_until(
        Duration::from_secs(20),
        "the first messages counted",
        || async { (table_totals(&pool).await == first_totals).then_some(()) },
    )
    .await;

    // Messages stamped a little ahead are fetched before the cut; their bucket closes
    // early in the outage and their drain then waits for MySQL much longer than ack_wait.
    // Reported in progress all along, they are never redelivered.
    let ahead_ts = chrono::Utc::now().timestamp() + 2;
    let (ahead, ahead_totals) = shop_messages(1709, 40, 10, Some(ahead_ts));
    publish_all(&context, &stream.subject(), &ahead).await;
    poll_until(
        Duration::from_secs(10),
        "the ahead messages fetched",
        || async {
            let text = app.get("/metrics").await.text().await.ok()?;
            let fetched = labelled(
                &text,
                "gatherer_nats_messages_total",
                &[("stream", &stream.name), ("outcome", "fetched")],
            );
            (fetched >= 90.0).then_some(())
        },
    )
    .await;

    proxy.cut();
    let cut_at = tokio::time::Instant::now();
    // Paused: the consumer decided so at the top of its loop, with no pull outstanding.
    poll_until(Duration::from_secs(15), "the fetching paused", || async {
        let text = app.get("/metrics").await.text().await.ok()?;
        let paused = labelled(&text, "gatherer_nats_paused", &[("stream", &stream.name)]);
        (paused == 1.0).then_some(())
    })
    .await;
    let (during, during_totals) = shop_messages(1707, 300, 20, None);
    publish_all(&context, &stream.subject(), &during).await;
    // The messages wait in the stream: none is fetched while MySQL is away, for longer than
    // ack_wait (5 s) and past the ahead bucket's close.
    poll_until(
        Duration::from_secs(30),
        "an outage longer than ack_wait",
        || async {
            let (undelivered, _) = stream.consumer_backlog(&context).await?;
            assert_eq!(undelivered, 300, "fetched while MySQL was away");
            (cut_at.elapsed() >= Duration::from_secs(14)).then_some(())
        },
    )
    .await;
    let ready: Value = app.get("/health/ready").await.json().await.unwrap();
    assert_eq!(ready["database"], "down");
    assert_eq!(
        table_totals(&pool).await,
        first_totals,
        "nothing lands while MySQL is away"
    );

    proxy.restore();
    let expected = (
        first_totals.0 + ahead_totals.0 + during_totals.0,
        first_totals.1 + ahead_totals.1 + during_totals.1,
    );
    poll_until(
        Duration::from_secs(60),
        "everything after the outage",
        || async { (table_totals(&pool).await == expected).then_some(()) },
    )
    .await;
    stream
        .wait_all_acked(&context, Duration::from_secs(30))
        .await;
    // A pull consumer redelivers only when pulled: a message whose ack deadline passed
    // during the outage would have come back with the first pull after it.
    let text = app.get("/metrics").await.text().await.unwrap();
    let redelivered = labelled(
        &text,
        "gatherer_nats_messages_total",
        &[("stream", &stream.name), ("outcome", "redelivered")],
    );
    assert_eq!(
        redelivered, 0.0,
        "messages held through the outage were redelivered"
    );
    app.shutdown().await;
    assert_eq!(table_totals(&pool).await, expected);
}

/// A private `nats-server` with JetStream whose messages may be 16 MiB (the default is
/// 1 MiB), killed when dropped.
struct BigServer {
    _child: tokio::process::Child,
    _dir: crate::wal::TempDir,
    url: String,
}

impl BigServer {
    async fn start() -> Self {
        let dir = crate::wal::TempDir::new("nats");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.0.join("nats.conf");
        std::fs::write(
            &config,
            format!(
                "listen: 127.0.0.1:{port}\nmax_payload: 16777216\njetstream {{ store_dir: \"{}\" }}\n",
                dir.0.join("store").display()
            ),
        )
        .unwrap();
        let child = tokio::process::Command::new(
            std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".to_owned()),
        )
        .arg("-c")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("nats-server (apt-get install nats-server, or set NATS_SERVER)");
        let url = format!("nats://127.0.0.1:{port}");
        poll_until(
            Duration::from_secs(10),
            "the private nats-server",
            || async { async_nats::connect(&url).await.ok().map(drop) },
        )
        .await;
        BigServer {
            _child: child,
            _dir: dir,
            url,
        }
    }
}

#[tokio::test]
async fn invalid_messages_become_dead_letters_and_never_block_the_stream() {
    let server = BigServer::start().await;
    let stream = TestStream::on(server.url.clone());
    let context = stream.create().await;
    let client = async_nats::connect(&server.url).await.unwrap();
    let mut dead = client.subscribe(stream.dead_subject()).await.unwrap();
    client.flush().await.unwrap();

    // A 10 MB NDJSON message: valid lines, with a bad one every thousand.
    let mut rng = Rng::new(1708);
    let mut big = String::new();
    let (mut big_totals, mut big_bad) = ((0i128, 0u64), 0);
    let mut line = 0;
    while big.len() < 10_000_000 {
        if line % 1_000 == 999 {
            big.push_str("{\"label\":\"\",\"id\":1,\"value\":1}\n");
            big_bad += 1;
        } else {
            let value = 1 + rng.overdispersed(3.0, 0.5) as i64;
            let id = rng.between(0.0, 1_000f64.ln()).exp() as i64;
            big.push_str(&format!(
                "{{\"label\":\"visit\",\"id\":{id},\"value\":{value}}}\n"
            ));
            big_totals.0 += i128::from(value);
            big_totals.1 += 1;
        }
        line += 1;
    }
    let partly = json!([
        {"label": "checkout", "id": 1, "value": 5},
        {"label": "checkout", "id": 2, "value": 1.5},
        {"label": "checkout", "id": 3, "value": 7}
    ])
    .to_string();
    let bodies = vec![
        "this is not JSON".to_owned(),
        "[]".to_owned(),
        partly,
        big,
        json!({"label": "after", "id": 9, "value": 100}).to_string(),
    ];
    publish_all(&context, &stream.subject(), &bodies).await;

    let mut app = spawn_app_with(|s| stream.configure(s)).await;
    let pool = app.db.pool().await;
    let expected = (big_totals.0 + 5 + 7 + 100, big_totals.1 + 3);
    poll_until(
        Duration::from_secs(60),
        "the valid events counted",
        || async { (table_totals(&pool).await == expected).then_some(()) },
    )
    .await;
    stream
        .wait_all_acked(&context, Duration::from_secs(30))
        .await;

    let mut letters: HashMap<String, (String, Option<String>, usize)> = HashMap::new();
    for _ in 0..4 {
        let letter = tokio::time::timeout(Duration::from_secs(10), dead.next())
            .await
            .expect("a dead letter")
            .unwrap();
        let headers = letter.headers.clone().expect("headers");
        let error = headers.get("Pulse-Error").unwrap().to_string();
        let rejected = headers.get("Pulse-Rejected").map(ToString::to_string);
        let key =
            String::from_utf8_lossy(&letter.payload[..letter.payload.len().min(16)]).into_owned();
        letters.insert(key, (error, rejected, letter.payload.len()));
    }
    let not_json = &letters["this is not JSON"];
    assert!(not_json.0.contains("malformed"), "{not_json:?}");
    assert!(
        letters["[]"].0.contains("no valid event"),
        "{:?}",
        letters["[]"]
    );
    let partly = letters.iter().find(|(k, _)| k.starts_with("[{")).unwrap().1;
    assert!(
        partly.1.as_deref().unwrap().contains("\"index\":1"),
        "{partly:?}"
    );
    let big = letters.iter().find(|(_, v)| v.2 >= 10_000_000).unwrap().1;
    assert!(big.0.contains(&format!("{big_bad} of")), "{big:?}");

    let text = app.get("/metrics").await.text().await.unwrap();
    let ours = |name: &str, key: &str, value: &str| {
        labelled(
            &text,
            name,
            &[("stream", stream.name.as_str()), (key, value)],
        )
    };
    assert_eq!(
        ours("gatherer_nats_messages_total", "outcome", "terminated"),
        2.0
    );
    assert_eq!(
        ours(
            "gatherer_nats_dead_letters_total",
            "reason",
            "invalid_message"
        ),
        2.0
    );
    assert_eq!(
        ours(
            "gatherer_nats_dead_letters_total",
            "reason",
            "rejected_events"
        ),
        2.0
    );
    app.shutdown().await;
    drop(server);
}
