//! End-to-end: the `edgelens ingest` role against the real broker at `$EDGELENS_TEST_KAFKA`
//! (never skipped; `deploy/dev/test.sh` starts it). Files go into the events topic packed into
//! messages per site's partition key (every valid line in exactly one), rejected lines into the
//! dead-letters topic; the HTTP receiver acknowledges a Logpush batch only once it is in the
//! topic, and answers 503 with Retry-After while the broker is unreachable.

mod support;

use support::*;

/// The broker helpers of the ingest crate's tests (`$EDGELENS_TEST_KAFKA`, never skipped).
#[path = "../ingest/tests/support/mod.rs"]
mod kafka;
use kafka::{broker, unique};

fn create_topics(broker: &str, topics: &[(&str, i32)]) {
    kafka::create_topics_blocking(broker, topics);
}

/// Every message value of `topic`, waiting until exactly `want` arrived (bounded).
fn read_values(broker: &str, topic: &str, partitions: i32, want: usize) -> Vec<Vec<u8>> {
    kafka::read_topic(broker, topic, partitions, want).into_iter().map(|(_, _, v)| v).collect()
}

/// Every event line of an events topic, waiting until exactly `want` arrived (bounded); checks
/// that each message holds events of its key only (the sites' registrable domain), and that
/// events came several to a message.
fn read_event_lines(broker: &str, topic: &str, partitions: i32, want: usize) -> Vec<Vec<u8>> {
    let messages = kafka::read_event_messages(broker, topic, partitions, want);
    let mut lines = Vec::new();
    for (_, key, value) in &messages {
        for line in edgelens_ingest::log::message_lines(value) {
            let ev = edgelens_schemas::parse_line(line).unwrap();
            assert_eq!(edgelens_schemas::suffix::partition_key(&ev.site).as_bytes(), key.as_slice(), "an event in a message of another key");
            lines.push(line.to_vec());
        }
    }
    assert!(messages.len() < want, "{want} events in {} messages: not packed", messages.len());
    lines
}

/// `edgelens ingest file` of `file` into the topics `events` and `dead`: its JSON summary.
fn ingest_file(broker: &str, file: &std::path::Path, events: &str, dead: &str) -> serde_json::Value {
    let out = run_ok(
        edgelens()
            .args(["ingest", "--brokers", broker, "file"])
            .arg(file)
            .env("EDGELENS__INGEST__EVENTS_TOPIC", events)
            .env("EDGELENS__INGEST__DEAD_LETTERS_TOPIC", dead),
    );
    serde_json::from_str(&out).unwrap()
}

#[test]
fn ingest_file_puts_every_line_in_one_of_the_two_topics() {
    let broker = broker();
    let (events, dead) = (unique("edge-requests"), unique("edge-dead-letters"));
    create_topics(&broker, &[(&events, 4), (&dead, 1)]);
    let tmp = tempfile::tempdir().unwrap();
    let raw = generate(tmp.path(), "flood", 3, "1m", 500, 40);
    let expected = recount(&raw);
    let mut text = std::fs::read(&raw).unwrap();
    text.extend_from_slice(b"{\"half\":\n\xff\xfe\n{\"ClientIP\":\"1.2.3.4\",\"EdgeResponseStatus\":200,\"ZoneName\":\"a.example\"}\n");
    let file = tmp.path().join("with-bad.ndjson");
    std::fs::write(&file, &text).unwrap();

    let summary = ingest_file(&broker, &file, &events, &dead);
    assert_eq!(summary["lines"], expected.lines + 3, "{summary}");
    assert_eq!(summary["events"], expected.valid, "{summary}");
    assert_eq!(summary["dead_letters"], 3, "{summary}");

    let got = read_event_lines(&broker, &events, 4, expected.valid as usize);
    let mut got: Vec<String> = got.into_iter().map(|v| String::from_utf8(v).unwrap()).collect();
    let mut want: Vec<String> = std::fs::read_to_string(&raw).unwrap().lines().map(str::to_owned).collect();
    got.sort();
    want.sort();
    assert!(got == want, "topic content differs from the file's lines");
    let reasons: Vec<String> = read_values(&broker, &dead, 1, 3)
        .iter()
        .map(|v| serde_json::from_slice::<serde_json::Value>(v).unwrap()["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(reasons, ["malformed_json", "invalid_utf8", "missing_field"]);
}

#[test]
fn receiver_acknowledges_only_what_is_in_the_topic() {
    let broker = broker();
    let (events, dead) = (unique("edge-requests"), unique("edge-dead-letters"));
    create_topics(&broker, &[(&events, 4), (&dead, 1)]);
    let tmp = tempfile::tempdir().unwrap();
    let raw = generate(tmp.path(), "baseline", 5, "20s", 300, 20);
    let text = std::fs::read(&raw).unwrap();
    let n = recount(&raw).valid as usize;
    let rx = Receiver::start(&broker, &[("EDGELENS__INGEST__EVENTS_TOPIC", &events), ("EDGELENS__INGEST__DEAD_LETTERS_TOPIC", &dead)]);
    let (status, _, body) = rx.post_gzip(&text);
    assert_eq!(status, 200, "{body}");
    let ack: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ack["accepted"], n);
    assert_eq!(read_event_lines(&broker, &events, 4, n).len(), n);
}

#[test]
fn receiver_answers_503_with_retry_after_while_the_broker_is_unreachable() {
    // Nothing listens on port 1: every batch times out unacknowledged.
    let rx = Receiver::start("127.0.0.1:1", &[("EDGELENS__INGEST__ACK_TIMEOUT_MS", "2000"), ("EDGELENS__INGEST__RETRY_AFTER_SECS", "3")]);
    let line = br#"{"EdgeStartTimestamp":1793491200,"ClientIP":"1.2.3.4","EdgeResponseStatus":200,"ZoneName":"a.example"}"#;
    let (status, retry, body) = rx.post_gzip(line);
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry.as_deref(), Some("3"));
}

/// A receiver configured with a topic the brokers do not have says so in its log at start (its
/// batches get 503, naming the topic, until the topic exists).
#[test]
fn receiver_names_a_missing_topic() {
    let broker = broker();
    let missing = unique("no-such-topic");
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("ingest.log");
    // A receiver of `brokers` with `envs`, logging into `log`.
    let start = |brokers: &str, envs: &[(&str, &str)]| {
        let port = free_port();
        let child = edgelens()
            .args(["ingest", "--brokers", brokers, "--listen", &format!("127.0.0.1:{port}")])
            .envs(envs.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Receiver(child, port)
    };
    let mut rx = start(&broker, &[("EDGELENS__INGEST__EVENTS_TOPIC", &missing), ("EDGELENS__INGEST__ACK_TIMEOUT_MS", "2000")]);
    let text = log_containing(&log, "the brokers have no topic", std::time::Duration::from_secs(30));
    assert!(text.contains(&format!("the brokers have no topic {missing}")), "{text}");
    let line = br#"{"EdgeStartTimestamp":1793491200,"ClientIP":"1.2.3.4","EdgeResponseStatus":200,"ZoneName":"a.example"}"#;
    let (status, _, body) = rx.post_gzip(line);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(&missing), "{body}");
    let _ = rx.0.kill();
    let _ = rx.0.wait();
    // Regression: a receiver whose brokers do not answer logged only that it listens.
    let nobody = format!("127.0.0.1:{}", free_port());
    let mut rx = start(&nobody, &[]);
    let text = log_containing(&log, "did not answer", std::time::Duration::from_secs(30));
    assert!(text.contains(&format!("the brokers at {nobody} did not answer")), "{text}");
    let _ = rx.0.kill();
    let _ = rx.0.wait();
}

/// Regression: `ingest file` against brokers that do not answer retried each batch for minutes;
/// it now fails once `[ingest] connect_timeout_ms` has passed, and names a topic the brokers do
/// not have at once. Nothing is appended in either case.
#[test]
fn ingest_file_fails_clearly_without_brokers_or_topic() {
    let broker = broker();
    let tmp = tempfile::tempdir().unwrap();
    let raw = generate(tmp.path(), "flood", 3, "1m", 50, 5);
    let nobody = format!("127.0.0.1:{}", free_port());
    let out = edgelens().args(["ingest", "--brokers", &nobody, "file"]).arg(&raw).env("EDGELENS__INGEST__CONNECT_TIMEOUT_MS", "1500").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains(&format!("brokers {nobody}")) && err.contains("not ready for topic edge-requests"), "{err}");
    let missing = unique("no-such-topic");
    let out = edgelens().args(["ingest", "--brokers", &broker, "file"]).arg(&raw).env("EDGELENS__INGEST__EVENTS_TOPIC", &missing).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains(&format!("the brokers do not have topic {missing}")), "{err}");
    // A broker list that could never connect is refused before anything is tried (it waited out
    // the connect timeout).
    let started = std::time::Instant::now();
    let out = edgelens().args(["ingest", "--brokers", "127.0.0.1:99999", "file"]).arg(&raw).env("EDGELENS__INGEST__CONNECT_TIMEOUT_MS", "60000").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("ingest.brokers entry \"127.0.0.1:99999\" has port \"99999\""), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "refused at once, not after the timeout");
}

/// Regression: a valid line a little over 1,000,000 bytes (librdkafka's default message size,
/// below the default line limit of 1 MiB) was refused by the producer on every attempt, and with
/// it the whole file (or a receiver's whole batch, answered 502 on every retry).
#[test]
fn a_line_up_to_the_line_limit_goes_into_the_topic() {
    let broker = broker();
    let (events, dead) = (unique("edge-requests"), unique("edge-dead-letters"));
    create_topics(&broker, &[(&events, 1), (&dead, 1)]);
    let tmp = tempfile::tempdir().unwrap();
    let line = |i: u32, ua: &str| {
        format!(
            r#"{{"EdgeStartTimestamp":{},"ClientIP":"10.0.0.{i}","EdgeResponseStatus":200,"ZoneName":"a.example","RayID":"{i:016x}","ClientRequestUserAgent":"{ua}"}}"#,
            1_793_491_200_000_000_000i64 + i64::from(i) * 1_000_000
        )
    };
    let mut text: String = (0..10).map(|i| line(i, "Mozilla/5.0") + "\n").collect();
    let big = line(10, &"x".repeat(1_030_000));
    assert!(big.len() > 1_000_000 && big.len() < 1 << 20, "{}", big.len());
    text += &big;
    text.push('\n');
    let file = tmp.path().join("big-line.ndjson");
    std::fs::write(&file, &text).unwrap();
    let summary = ingest_file(&broker, &file, &events, &dead);
    assert_eq!((summary["events"].as_u64(), summary["dead_letters"].as_u64()), (Some(11), Some(0)), "{summary}");
    let lines = read_event_lines(&broker, &events, 1, 11);
    assert!(lines.iter().any(|l| l.len() == big.len()), "the long line is in the topic");
}

/// `ingest file` keys a line without `ZoneName` by the registered site of its host, read from the
/// aggregators' lake when `[ingest] data_dir` is unset: the hosts of `nhs.uk`, a registered site
/// that is a public suffix itself, share its key. A `data_dir` with no lake is warned of.
#[test]
fn ingest_file_keys_hosts_by_the_registry_of_the_aggregators_lake() {
    let broker = broker();
    let (events, other, dead) = (unique("edge-requests"), unique("edge-requests"), unique("edge-dead-letters"));
    create_topics(&broker, &[(&events, 4), (&other, 4), (&dead, 1)]);
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("lake");
    let csv = tmp.path().join("sites.csv");
    std::fs::write(&csv, "site,tenant,created_at,removed_at\nnhs.uk,t1,2026-01-01T00:00:00Z,\n").unwrap();
    run_ok(edgelens().args(["registry", "import"]).arg(&csv).arg("--data-dir").arg(&lake));
    let line = |host: &str| format!(r#"{{"ClientIP":"192.0.2.1","ClientRequestHost":"{host}","EdgeStartTimestamp":1793491200,"EdgeResponseStatus":200}}"#);
    let file = tmp.path().join("hosts.ndjson");
    std::fs::write(&file, [line("www.nhs.uk"), line("api.nhs.uk"), line("nhs.uk")].join("\n")).unwrap();
    let config = tmp.path().join("edgelens.toml");
    std::fs::write(&config, format!("[aggregate]\ndata_dir = {:?}\n", lake.display().to_string())).unwrap();
    let ingest = |topic: &str, data_dir: Option<&std::path::Path>| {
        let mut cmd = edgelens();
        cmd.args(["ingest", "--config"]).arg(&config).args(["--brokers", &broker, "file"]).arg(&file);
        cmd.env("EDGELENS__INGEST__EVENTS_TOPIC", topic).env("EDGELENS__INGEST__DEAD_LETTERS_TOPIC", &dead).env("EDGELENS_LOG", "info");
        if let Some(d) = data_dir {
            cmd.env("EDGELENS__INGEST__DATA_DIR", d);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let log = ingest(&events, None);
    assert!(!log.contains("no lake at"), "{log}");
    let keys: Vec<Vec<u8>> = kafka::read_topic(&broker, &events, 4, 1).into_iter().map(|(_, k, _)| k).collect();
    assert_eq!(keys, [b"nhs.uk".to_vec()]);

    let log = ingest(&other, Some(&tmp.path().join("nowhere")));
    assert!(log.contains("no lake at [ingest] data_dir"), "{log}");
    let mut keys: Vec<Vec<u8>> = kafka::read_topic(&broker, &other, 4, 3).into_iter().map(|(_, k, _)| k).collect();
    keys.sort();
    assert_eq!(keys, [b"api.nhs.uk".to_vec(), b"nhs.uk".to_vec(), b"www.nhs.uk".to_vec()], "without the registry, each host its own key");
}
