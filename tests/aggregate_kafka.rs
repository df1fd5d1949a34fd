//! End-to-end: the distributed path on the real broker at `$EDGELENS_TEST_KAFKA` (never skipped;
//! `deploy/dev/test.sh` starts it). Files and Logpush pushes go through `edgelens ingest` into the
//! topics, `edgelens aggregate` processes (a consumer group) turn them into a lake, and the lake
//! must hold exactly what `edgelens replay` of the same input gives — through `kill -9`s of
//! aggregators, a plain Kafka client as producer, and a broker outage.

mod support;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use edgelens_aggregate::batches::{merged_groups, MergedGroup};
use edgelens_aggregate::detect::eval::{latest_incidents, IncidentRecord};
use edgelens_schemas::tables::{ASN_1M, DEAD_LETTERS, INCIDENTS, INCIDENT_TIMELINE, SITE_RATES_10S, TRAFFIC_1M};
use rand::{Rng, SeedableRng};
use support::*;

#[path = "../ingest/tests/support/mod.rs"]
mod kafka;
use kafka::{broker, unique};

/// The tables as readers see them: rows merged by key.
type Merged = BTreeMap<&'static str, BTreeMap<Vec<String>, MergedGroup>>;

/// The rollups. The detector's tables are compared separately, in the one test whose producer
/// never stalls: a partition idle longer than `idle_timeout` (a broker outage, a paused producer)
/// has its open detector seconds judged at once, by design (an attack's end must not wait for
/// more traffic), so events of those seconds that arrive later count in the rollups but not in
/// the detector's view.
fn merged(lake: &Path) -> Merged {
    [&SITE_RATES_10S, &TRAFFIC_1M, &ASN_1M].into_iter().map(|t| (t.name, merged_groups(t, &read_table(lake, t.name)).unwrap())).collect()
}

/// The current state of every incident in a lake.
fn incidents(lake: &Path) -> Vec<IncidentRecord> {
    latest_incidents(&read_table(lake, INCIDENTS.name)).unwrap()
}

/// Every message of a one-partition topic, until none arrives for a few seconds.
fn drain_topic(broker: &str, topic: &str) -> Vec<serde_json::Value> {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("group.id", unique("edgelens-test-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning).unwrap();
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(5) {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            out.push(serde_json::from_slice(m.payload().unwrap_or_default()).unwrap());
            quiet_since = Instant::now();
        }
    }
    out
}

fn dead_letters(lake: &Path) -> usize {
    read_table(lake, DEAD_LETTERS.name).iter().map(|b| b.num_rows()).sum()
}

fn total_requests(lake: &Path) -> u64 {
    summed(lake, SITE_RATES_10S.name, &[], &["requests"]).values().map(|v| v[0]).sum()
}

fn assert_same_tables(got: &Path, want: &Path) {
    assert_same(&merged(got), dead_letters(got), want, "lake");
}

/// The ClickHouse tables of `db`, merged like the lake's.
fn assert_clickhouse_equals_lake(db: &ChDatabase, want: &Path) {
    let g: Merged = [&SITE_RATES_10S, &TRAFFIC_1M, &ASN_1M].into_iter().map(|t| (t.name, merged_groups(t, &db.table(t)).unwrap())).collect();
    let dead = db.table(&DEAD_LETTERS).iter().map(|b| b.num_rows()).sum();
    assert_same(&g, dead, want, "ClickHouse");
}

fn assert_same(g: &Merged, dead: usize, want: &Path, what: &str) {
    let w = merged(want);
    for (table, want_groups) in &w {
        let got_groups = &g[table];
        let missing: Vec<_> = want_groups.iter().filter(|(k, v)| got_groups.get(*k) != Some(v)).take(5).collect();
        let extra: Vec<_> = got_groups.keys().filter(|k| !want_groups.contains_key(*k)).take(5).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{what} {table}: {} groups expected, {} found; first differences {missing:?} (found {:?}); unexpected {extra:?}",
            want_groups.len(),
            got_groups.len(),
            missing.iter().map(|(k, _)| got_groups.get(*k)).collect::<Vec<_>>()
        );
    }
    assert_eq!(dead, dead_letters(want), "{what}: dead letters");
}

/// Topics and group of one test, isolated from the others.
struct Setup {
    broker: String,
    events: String,
    dead: String,
    group: String,
    partitions: i32,
    /// Topic of incident alerts.
    incidents: String,
    /// ClickHouse written by the aggregators next to the lake, if any.
    ch: Option<ChDatabase>,
}

impl Setup {
    fn new(broker: String, partitions: i32) -> Self {
        let s = Setup { broker, events: unique("edge-requests"), dead: unique("edge-dead-letters"), group: unique("edgelens-aggregate"), partitions, incidents: unique("incidents"), ch: None };
        kafka::create_topics_blocking(&s.broker, &[(&s.events, partitions), (&s.dead, 1)]);
        s
    }

    fn env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self.ch.as_ref().map(ChDatabase::env).unwrap_or_default();
        env.extend([
            ("EDGELENS__INGEST__EVENTS_TOPIC".into(), self.events.clone()),
            ("EDGELENS__INGEST__DEAD_LETTERS_TOPIC".into(), self.dead.clone()),
            ("EDGELENS__AGGREGATE__EVENTS_TOPIC".into(), self.events.clone()),
            ("EDGELENS__AGGREGATE__DEAD_LETTERS_TOPIC".into(), self.dead.clone()),
            ("EDGELENS__AGGREGATE__INCIDENTS_TOPIC".into(), self.incidents.clone()),
            ("EDGELENS__AGGREGATE__IDLE_TIMEOUT_MS".into(), "3000".into()),
            ("EDGELENS__AGGREGATE__CHECKPOINT_INTERVAL_MS".into(), "2000".into()),
            ("EDGELENS__AGGREGATE__FLUSH_INTERVAL_MS".into(), "500".into()),
            ("EDGELENS__AGGREGATE__SESSION_TIMEOUT_MS".into(), "6000".into()),
            // Aggregators of parallel tests share the host: each its own free metrics port.
            ("EDGELENS__AGGREGATE__METRICS_LISTEN".into(), "127.0.0.1:0".into()),
        ]);
        env
    }

    /// Aggregator replica `slot` (its static group member id).
    fn aggregator(&self, lake: &Path, log: &Path, slot: usize) -> Proc {
        self.aggregator_with(lake, log, slot, &[])
    }

    /// Aggregator replica `slot` with extra environment variables.
    fn aggregator_with(&self, lake: &Path, log: &Path, slot: usize, extra_env: &[(&str, String)]) -> Proc {
        let log = File::options().create(true).append(true).open(log).unwrap();
        Proc(Some(edgelens()
            .args(["aggregate", "--brokers", &self.broker, "--group", &self.group, "--data-dir"])
            .arg(lake)
            .envs(self.env())
            .env("EDGELENS__AGGREGATE__INSTANCE_ID", format!("aggregator-{slot}"))
            .envs(extra_env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()))
    }

    /// True once the group committed every message of both topics. (tansu 0.6 reports the base
    /// offset of a partition's last record batch as its end offset, so a complete commit is at or
    /// past the reported end.)
    fn all_committed(&self) -> bool {
        let done = |topic: &str, partitions| kafka::group_progress(&self.broker, &self.group, topic, partitions).iter().all(|&(c, end)| end == 0 || c >= end);
        done(&self.events, self.partitions) && done(&self.dead, 1)
    }

    /// Wait until the group committed everything and the lake holds `requests` requests.
    fn wait_done(&self, lake: &Path, requests: u64, limit: Duration, logs: &[PathBuf]) {
        self.wait_until(lake, requests, None, limit, logs)
    }

    /// [`Self::wait_done`], and until the lake holds as many dead letters as the lake `want` (the
    /// broker's end of the dead-letters topic can lag behind its last message, so "all committed"
    /// alone may come before the last dead letters are read).
    fn wait_same(&self, lake: &Path, want: &Path, requests: u64, limit: Duration, logs: &[PathBuf]) {
        self.wait_until(lake, requests, Some(dead_letters(want)), limit, logs)
    }

    fn wait_until(&self, lake: &Path, requests: u64, dead: Option<usize>, limit: Duration, logs: &[PathBuf]) {
        let deadline = Instant::now() + limit;
        loop {
            if self.all_committed() && total_requests(lake) == requests && dead.is_none_or(|d| dead_letters(lake) == d) {
                return;
            }
            if Instant::now() > deadline {
                let tails: Vec<String> = logs.iter().map(|l| {
                    let text = std::fs::read_to_string(l).unwrap_or_default();
                    let lines: Vec<&str> = text.lines().collect();
                    format!("--- {}\n{}", l.display(), lines[lines.len().saturating_sub(15)..].join("\n"))
                }).collect();
                panic!(
                    "not done within {limit:?}: committed/end {:?}, lake has {} of {requests} requests, {} of {dead:?} dead letters\n{}",
                    kafka::group_progress(&self.broker, &self.group, &self.events, self.partitions),
                    total_requests(lake),
                    dead_letters(lake),
                    tails.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// A child process killed (SIGKILL) when dropped, so a failing test leaves no aggregator behind.
struct Proc(Option<Child>);

impl Proc {
    fn kill9(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn take(mut self) -> Child {
        self.0.take().unwrap()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// SIGTERM and wait: the aggregator checkpoints, commits and leaves the group.
fn stop_gracefully(p: Proc) {
    let mut child = p.take();
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "aggregator exited with {status}");
            return;
        }
        assert!(Instant::now() < deadline, "aggregator did not stop within 60 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn replay(input: &Path, lake: &Path) {
    run_ok(edgelens().args(["replay", "--data-dir"]).arg(lake).arg(input));
}

/// Must show of the Kafka path: a ≥1M-event file through `edgelens ingest file` → 8 partitions →
/// 3 aggregators of one group, with 5 `kill -9`s of aggregators at random moments (each restarted),
/// gives the tables `edgelens replay` gives for the same file — in the lake and in ClickHouse.
#[test]
fn million_events_through_three_aggregators_with_kills_equal_replay() {
    let mut setup = Setup::new(broker(), 8);
    setup.ch = Some(ChDatabase::new(&clickhouse_url(), "edgelens_kafka"));
    let tmp = tempfile::tempdir().unwrap();
    let raw = generate(tmp.path(), "mixed", 21, "20m", 880, 300);
    let mut text = std::fs::read(&raw).unwrap();
    text.extend_from_slice(b"{\"half\":\n\xff\xfe\n{\"ClientIP\":\"1.2.3.4\",\"EdgeResponseStatus\":200,\"ZoneName\":\"a.example\"}\n");
    let input = tmp.path().join("input.ndjson");
    std::fs::write(&input, &text).unwrap();
    drop(text);
    let expected = recount(&raw);
    assert!(expected.valid >= 1_000_000, "the input has {} events", expected.valid);

    let want = tmp.path().join("replay-lake");
    replay(&input, &want);
    let lake = tmp.path().join("lake");
    let logs: Vec<PathBuf> = (0..3).map(|i| tmp.path().join(format!("aggregator-{i}.log"))).collect();
    // The detector's tables are compared too, so no partition may go idle while the input still
    // flows (see `merged`): an idle close judges the open detector seconds. A partition closes as
    // idle only once its consumer has read to its end (a restarted aggregator does not close one
    // before its first fetch), but the producer itself can pause for longer than the 3 s the other
    // tests use on a loaded machine (two cores shared by three aggregators, the producer, the
    // broker and the other tests). Hence a longer idle timeout here.
    let idle = [("EDGELENS__AGGREGATE__IDLE_TIMEOUT_MS", "15000".to_owned())];
    let start = |slot: usize| setup.aggregator_with(&lake, &logs[slot], slot, &idle);
    let mut aggs: Vec<Proc> = (0..logs.len()).map(start).collect();
    let ingest = Proc(Some(
        edgelens()
            .args(["ingest", "--brokers", &setup.broker, "file"])
            .arg(&input)
            .envs(setup.env())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    ));

    let seed: u64 = rand::random();
    eprintln!("kill schedule seed {seed}");
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    for k in 0..5 {
        std::thread::sleep(Duration::from_millis(rng.random_range(2000..6000)));
        let victim = rng.random_range(0..aggs.len());
        aggs[victim].kill9();
        eprintln!("kill {k}: aggregator {victim} killed");
        std::thread::sleep(Duration::from_millis(rng.random_range(0..1500)));
        aggs[victim] = start(victim);
    }
    let status = ingest.take().wait().unwrap();
    assert!(status.success(), "ingest file failed: {status}");

    setup.wait_same(&lake, &want, expected.valid, Duration::from_secs(300), &logs);
    for a in aggs {
        stop_gracefully(a);
    }
    assert_same_tables(&lake, &want);
    assert_clickhouse_equals_lake(setup.ch.as_ref().unwrap(), &want);

    // Attack detection: the same incidents (every field of their current state, signatures
    // included) and timelines as replay, in the lake and in ClickHouse; each state published.
    let want_incidents = incidents(&want);
    assert!(!want_incidents.is_empty(), "the mixed scenario's flood is detected by replay");
    assert_eq!(incidents(&lake), want_incidents, "incidents: Kafka path vs replay");
    let ch_incidents = latest_incidents(&setup.ch.as_ref().unwrap().table(&INCIDENTS)).unwrap();
    assert_eq!(ch_incidents, want_incidents, "incidents: ClickHouse vs replay");
    let timeline = |batches: Vec<arrow::array::RecordBatch>| merged_groups(&INCIDENT_TIMELINE, &batches).unwrap();
    let want_timeline = timeline(read_table(&want, INCIDENT_TIMELINE.name));
    assert!(timeline(read_table(&lake, INCIDENT_TIMELINE.name)) == want_timeline, "incident timeline: Kafka path vs replay");
    assert!(timeline(setup.ch.as_ref().unwrap().table(&INCIDENT_TIMELINE)) == want_timeline, "incident timeline: ClickHouse vs replay");
    let messages = drain_topic(&setup.broker, &setup.incidents);
    for inc in &want_incidents {
        let last = messages.iter().rev().find(|m| m["incident_id"] == inc.incident_id.as_str()).unwrap_or_else(|| panic!("{} never published", inc.incident_id));
        assert_eq!(last["status"], inc.status.as_str(), "{}: last published state", inc.incident_id);
        assert_eq!(last["attack_requests"], inc.attack_requests, "{}", inc.incident_id);
    }
}

/// Another producer than edgelens (Python `confluent-kafka`), following the documented message
/// format (messages of one to four events of a site), feeds the aggregator; the lake equals
/// `edgelens replay` of the same lines.
#[test]
fn events_from_a_plain_kafka_client_are_aggregated() {
    let setup = Setup::new(broker(), 4);
    let tmp = tempfile::tempdir().unwrap();
    let raw = generate(tmp.path(), "flood", 5, "2m", 400, 40);
    let expected = recount(&raw);
    let script = repo_root().join("tests/produce_confluent.py");
    let out = Command::new("python3").arg(&script).args(["--brokers", &setup.broker, "--topic", &setup.events, "--pack", "4"]).arg(&raw).output().unwrap();
    assert!(out.status.success(), "{}: {}", script.display(), String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), expected.valid.to_string(), "events produced");

    let want = tmp.path().join("replay-lake");
    replay(&raw, &want);
    let lake = tmp.path().join("lake");
    let log = tmp.path().join("aggregator.log");
    let agg = setup.aggregator(&lake, &log, 0);
    setup.wait_same(&lake, &want, expected.valid, Duration::from_secs(180), &[log]);
    stop_gracefully(agg);
    assert_same_tables(&lake, &want);
}

/// Regression: lines without `ZoneName` were keyed on the topic by their host, so a site's hosts
/// (the zone, `www.`, `api.`) went to several partitions and each partition's detector judged part
/// of the site's traffic: other incidents, baselines and timelines than `edgelens replay`. Keyed by
/// the registrable domain, a registered site's hosts share a partition, and the Kafka path over 8
/// partitions gives replay's incidents.
///
/// Regression too: a registered site that is a public suffix itself (`nhs.uk`) or has a list rule
/// below it (`*.nagoya.jp` under `nagoya.jp`) has hosts that are their own registrable domains
/// (`www.nhs.uk`, `www.nagoya.jp`), so those were still split. `ingest file` reads the lake's
/// registry (`[ingest] data_dir`) and keys them by their site. A third of the generated sites are
/// renamed to each kind.
#[test]
fn a_registered_sites_hosts_are_judged_together_on_the_kafka_path() {
    let setup = Setup::new(broker(), 8);
    let tmp = tempfile::tempdir().unwrap();
    let raw = generate(tmp.path(), "flood", 11, "4m", 500, 12);
    let events: Vec<serde_json::Value> = std::fs::read_to_string(&raw).unwrap().lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect();
    let zones: std::collections::BTreeSet<String> = events.iter().map(|v| v["ZoneName"].as_str().expect("generated lines name their zone").to_owned()).collect();
    // Sites that are public suffixes, sites with a wildcard rule below them, ordinary sites.
    let (suffixes, wildcard_parents) = (["nhs.uk", "gov.uk", "police.uk", "ac.uk"], ["nagoya.jp", "kobe.jp", "yokohama.jp", "sch.uk"]);
    let renamed: std::collections::HashMap<&str, &str> = zones
        .iter()
        .enumerate()
        .filter_map(|(i, z)| match i % 3 {
            0 => suffixes.get(i / 3).map(|n| (z.as_str(), *n)),
            1 => wildcard_parents.get(i / 3).map(|n| (z.as_str(), *n)),
            _ => None,
        })
        .collect();
    let site_of = |zone: &str| renamed.get(zone).copied().unwrap_or(zone).to_owned();
    let sites: std::collections::BTreeSet<String> = zones.iter().map(|z| site_of(z)).collect();
    let (mut text, mut zoned) = (String::new(), String::new());
    for mut v in events {
        let o = v.as_object_mut().unwrap();
        let zone = o.remove("ZoneName").unwrap();
        let zone = zone.as_str().unwrap();
        let host = o["ClientRequestHost"].as_str().unwrap();
        let below = host.strip_suffix(zone).expect("a generated host is at or below its zone");
        o["ClientRequestHost"] = format!("{below}{}", site_of(zone)).into();
        text.push_str(&v.to_string());
        text.push('\n');
        v.as_object_mut().unwrap().insert("ZoneName".into(), site_of(zone).into());
        zoned.push_str(&v.to_string());
        zoned.push('\n');
    }
    let input = tmp.path().join("hosts.ndjson");
    std::fs::write(&input, text).unwrap();
    // The same events, their site named by the zone.
    let zoned_input = tmp.path().join("zoned.ndjson");
    std::fs::write(&zoned_input, zoned).unwrap();
    let expected = recount(&zoned_input);
    let csv = tmp.path().join("sites.csv");
    let rows: String = sites.iter().map(|s| format!("{s},t1,2026-01-01T00:00:00Z,\n")).collect();
    std::fs::write(&csv, format!("site,tenant,created_at,removed_at\n{rows}")).unwrap();
    let import = |lake: &Path| run_ok(edgelens().args(["registry", "import"]).arg(&csv).arg("--data-dir").arg(lake));

    let want = tmp.path().join("replay-lake");
    import(&want);
    replay(&input, &want);
    let want_incidents = incidents(&want);
    assert!(!want_incidents.is_empty(), "the flood is detected by replay");
    assert!(want_incidents.iter().all(|i| sites.contains(&i.site)), "replay counts the hosts under their sites: {want_incidents:?}");
    assert!(want_incidents.iter().any(|i| renamed.values().any(|r| *r == i.site)), "an incident of a renamed site: {want_incidents:?}");
    assert!(want_incidents == incidents(&{
        let zoned_lake = tmp.path().join("zoned-lake");
        replay(&zoned_input, &zoned_lake);
        zoned_lake
    }), "replay of the hosts counts as replay of the zones");

    let lake = tmp.path().join("lake");
    import(&lake);
    let log = tmp.path().join("aggregator.log");
    // No partition may close as idle while the input flows (see `merged`).
    let agg = setup.aggregator_with(&lake, &log, 0, &[("EDGELENS__AGGREGATE__IDLE_TIMEOUT_MS", "15000".to_owned())]);
    run_ok(edgelens().args(["ingest", "--brokers", &setup.broker, "file"]).arg(&input).envs(setup.env()).env("EDGELENS__INGEST__DATA_DIR", &lake));
    setup.wait_same(&lake, &want, expected.valid, Duration::from_secs(180), &[log]);
    stop_gracefully(agg);
    assert_same_tables(&lake, &want);
    // A partition gone quiet may go on, so it ends no incident; replay's end of the data ends the
    // incidents cooling down (`InputEnd`). Every other field must match.
    let mut got = incidents(&lake);
    for (g, w) in got.iter_mut().zip(&want_incidents) {
        if g.status == "cooling" && w.status == "ended" {
            g.status.clone_from(&w.status);
        }
    }
    assert_eq!(got, want_incidents, "incidents: Kafka path vs replay");
    let timeline = |lake: &Path| merged_groups(&INCIDENT_TIMELINE, &read_table(lake, INCIDENT_TIMELINE.name)).unwrap();
    assert!(timeline(&lake) == timeline(&want), "incident timeline: Kafka path vs replay");
}

/// A broker of this test's own on free ports, started and stopped with `deploy/dev/kafka.sh`, on
/// `memory` storage or on `s3` storage (an object store that outlives the broker process, so that
/// the broker can be stopped and started again without losing records or committed offsets).
struct PrivateBroker {
    dir: tempfile::TempDir,
    port: u16,
    s3_port: u16,
    storage: &'static str,
}

impl PrivateBroker {
    fn start(storage: &'static str) -> Self {
        let b = PrivateBroker { dir: tempfile::tempdir().unwrap(), port: free_port(), s3_port: free_port(), storage };
        b.script("start");
        b
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn script(&self, cmd: &str) {
        let env = [
            ("EDGELENS_DEV_DIR", self.dir.path().display().to_string()),
            ("EDGELENS_KAFKA_PORT", self.port.to_string()),
            ("EDGELENS_KAFKA_STORAGE", self.storage.to_owned()),
            ("EDGELENS_KAFKA_S3_PORT", self.s3_port.to_string()),
            ("EDGELENS_KAFKA_TOPICS", "edge-requests:1".to_owned()),
        ];
        dev_script("kafka.sh", cmd, &env, "is tansu installed? deploy/dev/install.sh");
    }
}

impl PrivateBroker {
    fn signal(&self, sig: &str) {
        let pid = std::fs::read_to_string(self.dir.path().join("kafka/tansu.pid")).unwrap();
        let status = Command::new("kill").args([sig, pid.trim()]).status().unwrap();
        assert!(status.success(), "kill {sig} {pid}");
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        // A frozen broker must run to stop; a stopped one has no pid to signal.
        if self.dir.path().join("kafka/tansu.pid").exists() {
            let _ = std::panic::catch_unwind(|| self.signal("-CONT"));
        }
        let _ = std::panic::catch_unwind(|| self.script("stop"));
    }
}

/// Regression: a broker restarted on storage that does not keep producer state (memory) answered
/// the receiver's producer with `UnknownProducerId` for good: librdkafka retried until the
/// messages timed out, no delivery error said the producer was broken, and the receiver answered
/// 503 to every batch (for minutes, until a new producer of another process fenced it) while its
/// `/readyz` said ready. Once the brokers answer but acknowledge nothing, the producer is replaced.
#[test]
fn a_receiver_writes_again_to_a_broker_restarted_without_its_state() {
    let pb = PrivateBroker::start("memory");
    let setup = Setup::new(pb.addr(), 2);
    let mut env = setup.env();
    env.push(("EDGELENS__INGEST__ACK_TIMEOUT_MS".into(), "2000".into()));
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let rx = Receiver::start(&setup.broker, &env_refs);
    let line = br#"{"EdgeStartTimestamp":1793491200,"ClientIP":"1.2.3.4","EdgeResponseStatus":200,"ZoneName":"a.example"}"#;
    assert_eq!(rx.post_gzip(line).0, 200);
    pb.script("stop-broker");
    pb.script("start");
    kafka::create_topics_blocking(&setup.broker, &[(&setup.events, 2), (&setup.dead, 1)]);
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut answers = Vec::new();
    loop {
        let (status, _, body) = rx.post_gzip(line);
        answers.push(status);
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "no batch acknowledged within 90 s of the restart: {answers:?}, last: {body}");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(http_get(rx.1, "/readyz").0, 200, "not ready again after a batch was acknowledged");
}

/// How the broker goes away for 30 s in the middle of a run.
#[derive(Debug, Clone, Copy)]
enum Outage {
    /// The process frozen (SIGSTOP, then SIGCONT): connections stay open and nothing answers.
    Frozen,
    /// The process stopped (SIGTERM) and a new one started on the same durable storage:
    /// connections are refused, then every client reconnects to the new process.
    Restart,
}

/// Must show of the Kafka path: the broker frozen for 30 s in the middle of a run of Logpush
/// pushes; see [`broker_outage_run`].
#[test]
fn broker_frozen_for_30s_gives_503_then_exact_totals() {
    broker_outage_run(Outage::Frozen);
}

/// Must show of the Kafka path (and the broker-restart fault): the broker stopped for 30 s in the
/// middle of a run of Logpush pushes, then started again; see [`broker_outage_run`].
#[test]
fn broker_restart_gives_503_then_exact_totals() {
    broker_outage_run(Outage::Restart);
}

/// The broker is gone for 30 s in the middle of a run of Logpush pushes. Meanwhile the receiver
/// answers 503 with Retry-After; the client retries; once the broker is back the aggregator
/// resumes, and the totals are exact (events the broker took before a batch was refused, then sent
/// again by the client, are counted once). With the broker frozen the events carry no `RayID`:
/// the messages a frozen broker took in before the receiver gave up are recognised by their ids
/// alone.
fn broker_outage_run(outage: Outage) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let pb = PrivateBroker::start(match outage {
        Outage::Frozen => "memory",
        Outage::Restart => "s3",
    });
    let setup = Setup::new(pb.addr(), 4);
    let tmp = tempfile::tempdir().unwrap();
    let raw = generate(tmp.path(), "baseline", 9, "3m", 300, 40);
    let raw = match outage {
        Outage::Frozen => without_ray_ids(&raw),
        Outage::Restart => raw,
    };
    let expected = recount(&raw);
    let want = tmp.path().join("replay-lake");
    replay(&raw, &want);

    let mut env = setup.env();
    env.push(("EDGELENS__INGEST__ACK_TIMEOUT_MS".into(), "3000".into()));
    env.push(("EDGELENS__INGEST__RETRY_AFTER_SECS".into(), "1".into()));
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let rx = Arc::new(Receiver::start(&setup.broker, &env_refs));
    let rx_port = rx.1;
    assert_eq!(http_get(rx_port, "/readyz").0, 200, "the receiver is not ready with its broker up");
    let lake = tmp.path().join("lake");
    let log = tmp.path().join("aggregator.log");
    let agg = setup.aggregator(&lake, &log, 0);

    let text = std::fs::read(&raw).unwrap();
    let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    let batches: Vec<Vec<u8>> = lines.chunks(500).map(|c| c.join(&b'\n')).collect();
    let n_batches = batches.len();
    let posted = Arc::new(AtomicUsize::new(0));
    let client = {
        let posted = Arc::clone(&posted);
        let rx = Arc::clone(&rx);
        std::thread::spawn(move || {
            let mut refused = Vec::new();
            for batch in batches {
                loop {
                    let (status, retry, body) = rx.post_gzip(&batch);
                    match status {
                        200 => break,
                        429 | 503 => {
                            assert!(retry.is_some(), "{status} without Retry-After: {body}");
                            refused.push(status);
                            std::thread::sleep(Duration::from_millis(500));
                        }
                        other => panic!("unexpected {other}: {body}"),
                    }
                }
                posted.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
            refused
        })
    };
    while posted.load(Ordering::Relaxed) < n_batches / 3 {
        std::thread::sleep(Duration::from_millis(50));
    }
    match outage {
        Outage::Frozen => pb.signal("-STOP"),
        Outage::Restart => pb.script("stop-broker"),
    }
    let stopped_at = posted.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(5));
    let (status, body) = http_get(rx_port, "/readyz");
    assert_eq!(status, 503, "the receiver said ready with its broker down: {body}");
    std::thread::sleep(Duration::from_secs(25));
    let during = posted.load(Ordering::Relaxed) - stopped_at;
    match outage {
        Outage::Frozen => pb.signal("-CONT"),
        Outage::Restart => pb.script("start"),
    }
    let refused = client.join().unwrap();
    assert!(refused.contains(&503), "the receiver never answered 503 while the broker was down");
    assert_eq!(http_get(rx_port, "/readyz").0, 200, "the receiver is not ready again with its broker back");
    assert!(during <= 1, "{during} batches were acknowledged while the broker was down");

    setup.wait_same(&lake, &want, expected.valid, Duration::from_secs(240), &[log]);
    stop_gracefully(agg);
    assert_same_tables(&lake, &want);
}

/// Must show of the ClickHouse sink: ClickHouse is unreachable for 60 s in the middle of a run.
/// Meanwhile the aggregator commits no offset (its writes wait), its memory stays bounded, and once
/// the server is back it catches up: lake and ClickHouse equal `edgelens replay` of the same input.
#[test]
fn clickhouse_outage_of_60s_stops_commits_then_totals_are_exact() {
    let ch = PrivateClickHouse::start_new();
    let mut setup = Setup::new(broker(), 2);
    setup.ch = Some(ChDatabase::new(&ch.url(), "edgelens_outage"));
    let tmp = tempfile::tempdir().unwrap();
    let raw = generate(tmp.path(), "baseline", 17, "4m", 500, 40);
    let expected = recount(&raw);
    let want = tmp.path().join("replay-lake");
    replay(&raw, &want);
    let text = std::fs::read(&raw).unwrap();
    let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    let (first, second) = lines.split_at(lines.len() / 2);
    let parts: Vec<PathBuf> = [first, second]
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let p = tmp.path().join(format!("part{i}.ndjson"));
            let mut body = part.join(&b'\n');
            body.push(b'\n');
            std::fs::write(&p, body).unwrap();
            p
        })
        .collect();
    let ingest = |file: &Path| run_ok(edgelens().args(["ingest", "--brokers", &setup.broker, "file"]).arg(file).envs(setup.env()));

    let lake = tmp.path().join("lake");
    let log = tmp.path().join("aggregator.log");
    let agg = setup.aggregator(&lake, &log, 0);
    ingest(&parts[0]);
    let committed = || kafka::group_progress(&setup.broker, &setup.group, &setup.events, setup.partitions).iter().map(|&(c, _)| c).sum::<i64>();
    let deadline = Instant::now() + Duration::from_secs(120);
    while committed() == 0 || total_requests(&lake) == 0 {
        assert!(Instant::now() < deadline, "nothing committed within 120 s");
        std::thread::sleep(Duration::from_millis(300));
    }

    ch.script("stop");
    let outage = Instant::now();
    ingest(&parts[1]);
    // A commit already on its way may land just after the stop; after that, nothing moves.
    std::thread::sleep(Duration::from_secs(5));
    let frozen = committed();
    let pid = agg.0.as_ref().unwrap().id();
    let mut peak_rss = 0;
    while outage.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(committed(), frozen, "offsets committed while ClickHouse was unreachable ({:?} into the outage)", outage.elapsed());
        peak_rss = peak_rss.max(rss_mib(pid));
    }
    assert!(frozen < expected.valid as i64, "everything was committed before the outage began; the test proves nothing");
    eprintln!("during the 60 s outage: offsets stayed at {frozen}, aggregator peak RSS {peak_rss} MiB");
    assert!(peak_rss < 512, "aggregator memory grew to {peak_rss} MiB during the outage");
    // Regression: a SIGTERM during the outage exited 1 with the connect error. It is a stop: exit
    // 0, nothing more committed, and the next aggregator reads the uncommitted events again.
    stop_gracefully(agg);
    assert_eq!(committed(), frozen, "offsets committed by a stop during the outage");
    let stopped = std::fs::read_to_string(&log).unwrap();
    assert!(stopped.contains("stopped while a sink was unavailable"), "{stopped}");
    ch.script("start");
    let log2 = tmp.path().join("aggregator2.log");
    let agg = setup.aggregator(&lake, &log2, 0);

    setup.wait_same(&lake, &want, expected.valid, Duration::from_secs(240), &[log.clone(), log2.clone()]);
    let db = setup.ch.as_ref().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let in_ch: u64 = db.table(&SITE_RATES_10S).iter().map(|b| {
            let c = b.column_by_name("requests").unwrap();
            arrow::compute::sum(c.as_any().downcast_ref::<arrow::array::UInt64Array>().unwrap()).unwrap_or(0)
        }).sum();
        if in_ch == expected.valid {
            break;
        }
        assert!(Instant::now() < deadline, "ClickHouse has {in_ch} of {} requests 120 s after the lake was complete", expected.valid);
        std::thread::sleep(Duration::from_millis(500));
    }
    stop_gracefully(agg);
    assert_same_tables(&lake, &want);
    assert_clickhouse_equals_lake(db, &want);
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(log_text.contains("retrying"), "the aggregator log shows no ClickHouse retries");
}

/// SIGTERM while the aggregator is consuming and flushing, three times, each time restarted: every
/// stop is clean (exit 0, within the timeout), leaves the group's committed offsets at checkpoints
/// that exist, and the final lake equals `edgelens replay`.
#[test]
fn sigterm_during_flush_stops_cleanly_with_consistent_offsets() {
    let setup = Setup::new(broker(), 3);
    let tmp = tempfile::tempdir().unwrap();
    let raw = generate(tmp.path(), "mixed", 23, "6m", 900, 60);
    let expected = recount(&raw);
    let want = tmp.path().join("replay-lake");
    replay(&raw, &want);
    let lake = tmp.path().join("lake");
    let log = tmp.path().join("aggregator.log");
    let mut agg = setup.aggregator(&lake, &log, 0);
    let ingest = Proc(Some(
        edgelens().args(["ingest", "--brokers", &setup.broker, "file"]).arg(&raw).envs(setup.env()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap(),
    ));
    for round in 0..3 {
        std::thread::sleep(Duration::from_millis(2500 + 700 * round));
        stop_gracefully(agg);
        // Every committed offset is a position with a checkpoint on disk.
        let ckpt = lake.join("_checkpoints").join(edgelens_aggregate::partition::span_source(&setup.group, &setup.events));
        let mut checked = 0;
        for (p, (committed, _)) in kafka::group_progress(&setup.broker, &setup.group, &setup.events, setup.partitions).into_iter().enumerate() {
            if committed <= 0 {
                continue;
            }
            checked += 1;
            let file = ckpt.join(format!("p{p:04}")).join(format!("{committed:020}.ckpt"));
            assert!(file.exists(), "round {round}: partition {p} committed at {committed} but {} is missing", file.display());
        }
        assert!(checked > 0, "round {round}: nothing committed yet; the stop proves nothing");
        agg = setup.aggregator(&lake, &log, 0);
    }
    let status = ingest.take().wait().unwrap();
    assert!(status.success(), "ingest file failed: {status}");
    setup.wait_same(&lake, &want, expected.valid, Duration::from_secs(180), &[log]);
    stop_gracefully(agg);
    assert_same_tables(&lake, &want);
}

/// GET `path` from 127.0.0.1:`port`; (status, body), status 0 when nothing answers.
fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return (0, String::new()) };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    if write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").is_err() {
        return (0, String::new());
    }
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let status = resp.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, resp.split("\r\n\r\n").nth(1).unwrap_or("").to_owned())
}

/// The samples of a Prometheus text exposition: `name{labels}` (as written) → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' ').map(|(k, v)| (k.to_owned(), v.parse().unwrap_or_else(|_| panic!("not a number: {l}")))))
        .collect()
}

/// The sum of every sample of `name` whose labels contain all of `labels` (`key="value"`).
fn sum_of(m: &BTreeMap<String, f64>, name: &str, labels: &[&str]) -> f64 {
    m.iter()
        .filter(|(k, _)| k.split('{').next() == Some(name) && labels.iter().all(|l| k.contains(l)))
        .map(|(_, v)| v)
        .sum()
}

/// Must show of the aggregator's observability: `/metrics` of an aggregator that processed a
/// small input counts exactly that input — counted events = valid events, dead letters = invalid
/// lines by stage and reason (rejected by the ingest role, or by the aggregator for lines put on
/// the events topic by another producer), rows written = rows in the lake; consumer lag reaches 0
/// once everything is committed; flushes were timed; `/healthz` and `/readyz` answer 200.
#[test]
fn aggregator_metrics_count_the_input_and_lag_reaches_zero() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    let setup = Setup::new(broker(), 3);
    let tmp = tempfile::tempdir().unwrap();
    let raw = generate(tmp.path(), "baseline", 31, "2m", 200, 30);
    let expected = recount(&raw);
    // Invalid lines through the ingest role: dead-lettered there (stage "ingest").
    let mut text = std::fs::read(&raw).unwrap();
    text.extend_from_slice(b"{\"half\":\n\xff\xfe\n{\"ClientIP\":\"1.2.3.4\",\"EdgeResponseStatus\":200,\"ZoneName\":\"a.example\"}\n");
    let input = tmp.path().join("input.ndjson");
    std::fs::write(&input, &text).unwrap();
    drop(text);
    let ingest_invalid = [("malformed_json", 1.0), ("invalid_utf8", 1.0), ("missing_field", 1.0)];

    let lake = tmp.path().join("lake");
    let log = tmp.path().join("aggregator.log");
    let port = free_port();
    // A stall timeout far below the run's length: the consumer loop must beat all along.
    let env = [("EDGELENS__AGGREGATE__METRICS_LISTEN", format!("127.0.0.1:{port}")), ("EDGELENS__AGGREGATE__STALL_TIMEOUT_SECS", "2".to_owned())];
    let agg = setup.aggregator_with(&lake, &log, 0, &env);
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_get(port, "/readyz").0 != 200 {
        assert!(Instant::now() < deadline, "aggregator not ready within 60 s:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(http_get(port, "/healthz").0, 200);

    run_ok(edgelens().args(["ingest", "--brokers", &setup.broker, "file"]).arg(&input).envs(setup.env()));
    // Lines another producer put straight on the events topic: dead-lettered by the aggregator.
    let producer: BaseProducer = rdkafka::ClientConfig::new().set("bootstrap.servers", &setup.broker).create().unwrap();
    for line in [&b"not json"[..], b"{\"EdgeStartTimestamp\":1793491200,\"ClientIP\":\"1.2.3.4\",\"EdgeResponseStatus\":999,\"ZoneName\":\"a.example\"}"] {
        producer.send(BaseRecord::<(), [u8]>::to(&setup.events).payload(line)).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let aggregate_invalid = [("malformed_json", 1.0), ("invalid_status", 1.0)];

    setup.wait_done(&lake, expected.valid, Duration::from_secs(120), std::slice::from_ref(&log));
    // Offsets and high watermarks are published every few seconds: wait for lag 0 everywhere.
    let deadline = Instant::now() + Duration::from_secs(60);
    let m = loop {
        let (status, body) = http_get(port, "/metrics");
        assert_eq!(status, 200, "{body}");
        let m = samples(&body);
        let lags: Vec<f64> = m.iter().filter(|(k, _)| k.starts_with("edgelens_aggregate_consumer_lag{")).map(|(_, v)| *v).collect();
        if lags.len() == 4 && lags.iter().all(|&l| l == 0.0) {
            break m;
        }
        assert!(Instant::now() < deadline, "consumer lag not 0 on every partition within 60 s: {lags:?}\n{body}");
        std::thread::sleep(Duration::from_millis(500));
    };

    let valid = expected.valid as f64;
    assert_eq!(sum_of(&m, "edgelens_aggregate_events_counted_total", &[]), valid, "counted events");
    assert_eq!(sum_of(&m, "edgelens_aggregate_events_duplicate_total", &[]), 0.0);
    // The ingest role packs events into fewer messages; every message on the topic was consumed.
    let on_topic = kafka::read_event_messages(&setup.broker, &setup.events, setup.partitions, expected.valid as usize + aggregate_invalid.len()).len();
    assert!((on_topic as f64) < valid / 2.0, "{on_topic} messages for {valid} events");
    assert_eq!(sum_of(&m, "edgelens_aggregate_messages_consumed_total", &["topic=\"events\""]), on_topic as f64);
    assert_eq!(sum_of(&m, "edgelens_aggregate_messages_consumed_total", &["topic=\"dead_letters\""]), ingest_invalid.len() as f64);
    for (stage, reasons) in [("ingest", &ingest_invalid[..]), ("aggregate", &aggregate_invalid[..])] {
        for (reason, n) in reasons {
            assert_eq!(sum_of(&m, "edgelens_aggregate_dead_letters_total", &[&format!("stage=\"{stage}\""), &format!("reason=\"{reason}\"")]), *n, "{stage} {reason}");
        }
        let total: f64 = reasons.iter().map(|(_, n)| n).sum();
        assert_eq!(sum_of(&m, "edgelens_aggregate_dead_letters_total", &[&format!("stage=\"{stage}\"")]), total, "{stage} dead letters");
    }
    assert_eq!(dead_letters(&lake) as f64, (ingest_invalid.len() + aggregate_invalid.len()) as f64, "dead letters in the lake");
    // Lag 0 says every message was taken, not that the last windows were flushed (an idle
    // partition closes them a little later): rows written and rows in the lake are compared once
    // both have settled, metrics read after the lake.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let in_lake: Vec<usize> = [SITE_RATES_10S.name, TRAFFIC_1M.name, ASN_1M.name, DEAD_LETTERS.name].iter().map(|t| read_table(&lake, t).iter().map(|b| b.num_rows()).sum()).collect();
        let now = samples(&http_get(port, "/metrics").1);
        let written: Vec<f64> = [SITE_RATES_10S.name, TRAFFIC_1M.name, ASN_1M.name, DEAD_LETTERS.name]
            .iter()
            .map(|t| sum_of(&now, "edgelens_aggregate_rows_written_total", &["sink=\"lake\"", &format!("table=\"{t}\"")]))
            .collect();
        if written.iter().zip(&in_lake).all(|(w, l)| *w == *l as f64) {
            break;
        }
        assert!(Instant::now() < deadline, "rows written {written:?} and rows in the lake {in_lake:?} differ");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(sum_of(&m, "edgelens_aggregate_flush_duration_seconds_count", &[]) > 0.0, "no flush timed");
    assert_eq!(
        sum_of(&m, "edgelens_aggregate_flush_duration_seconds_bucket", &["le=\"+Inf\""]),
        sum_of(&m, "edgelens_aggregate_flush_duration_seconds_count", &[])
    );
    assert!(sum_of(&m, "edgelens_aggregate_checkpoints_total", &[]) > 0.0);
    assert!(sum_of(&m, "edgelens_aggregate_commits_total", &[]) > 0.0);
    assert_eq!(sum_of(&m, "edgelens_aggregate_sink_errors_total", &[]), 0.0);
    assert_eq!(sum_of(&m, "edgelens_aggregate_partitions_owned", &[]), 4.0);
    assert_eq!(sum_of(&m, "edgelens_aggregate_ready", &[]), 1.0);
    // Every partition's committed offset is its position (the whole input committed).
    for p in 0..setup.partitions {
        let labels = [format!("topic=\"{}\"", setup.events), format!("partition=\"{p}\"")];
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        assert_eq!(sum_of(&m, "edgelens_aggregate_committed_offset", &labels), sum_of(&m, "edgelens_aggregate_position", &labels), "partition {p}");
    }
    // Idle now, long after its start: not stalled (the loop runs its timers with nothing to read).
    std::thread::sleep(Duration::from_secs(3));
    let (status, body) = http_get(port, "/healthz");
    assert_eq!(status, 200, "{body}");
    let idle = sum_of(&metrics_of(port), "edgelens_aggregate_loop_idle_seconds", &[]);
    assert!(idle < 1.0, "the consumer loop last ran {idle} s ago");
    stop_gracefully(agg);
}

/// The metrics of an aggregator's `/metrics` on `port` (empty while nothing answers).
fn metrics_of(port: u16) -> BTreeMap<String, f64> {
    let (status, body) = http_get(port, "/metrics");
    if status == 200 { samples(&body) } else { BTreeMap::new() }
}

/// Lease mode changes an aggregator's assignment incrementally: when a second member joins, the
/// first gives up a partition without fetching again the one it keeps. The first works through a
/// backlog of one message per event on partition 0 while the second joins and takes partition 1;
/// in the end every message the first fetched is one it took (librdkafka drops what it had
/// fetched for a partition whose assignment is redone, and fetches it again).
#[test]
fn a_member_joining_leaves_the_partitions_kept_fetching() {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    let setup = Setup::new(broker(), 2);
    let tmp = tempfile::tempdir().unwrap();
    let raw = generate(tmp.path(), "baseline", 37, "150s", 2000, 40);
    let expected = recount(&raw);
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &setup.broker)
        .set("compression.type", "lz4")
        .set("linger.ms", "20")
        .create()
        .unwrap();
    let text = std::fs::read(&raw).unwrap();
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        loop {
            match producer.send(BaseRecord::<(), [u8]>::to(&setup.events).partition(0).payload(line)) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => panic!("produce: {e}"),
            }
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    let messages = expected.lines as f64;

    let lake = tmp.path().join("lake");
    let logs = [tmp.path().join("first.log"), tmp.path().join("second.log")];
    let ports = [free_port(), free_port()];
    let listen = |port: u16| [("EDGELENS__AGGREGATE__METRICS_LISTEN", format!("127.0.0.1:{port}"))];
    let consumed = |m: &BTreeMap<String, f64>| sum_of(m, "edgelens_aggregate_messages_consumed_total", &["topic=\"events\""]);
    let fetched = |m: &BTreeMap<String, f64>| sum_of(m, "edgelens_aggregate_messages_fetched_total", &["topic=\"events\""]);
    let first = setup.aggregator_with(&lake, &logs[0], 0, &listen(ports[0]));
    let deadline = Instant::now() + Duration::from_secs(60);
    while consumed(&metrics_of(ports[0])) == 0.0 {
        assert!(Instant::now() < deadline, "the first aggregator took nothing within 60 s:\n{}", std::fs::read_to_string(&logs[0]).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(100));
    }
    let second = setup.aggregator_with(&lake, &logs[1], 1, &listen(ports[1]));
    // The first hands partition 1 over (of three partitions, the last by topic and number).
    let deadline = Instant::now() + Duration::from_secs(60);
    let at_hand_over = loop {
        let m = metrics_of(ports[0]);
        if sum_of(&m, "edgelens_aggregate_partitions_owned", &[]) == 2.0 {
            break consumed(&m);
        }
        assert!(Instant::now() < deadline, "no hand-over within 60 s:\n{}", std::fs::read_to_string(&logs[0]).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(at_hand_over < messages * 0.9, "the backlog was gone before the second member joined ({at_hand_over} of {messages} taken): nothing to show");
    setup.wait_done(&lake, expected.valid, Duration::from_secs(300), &logs);
    let m = metrics_of(ports[1]);
    let topic = format!("topic=\"{}\"", setup.events);
    assert!(m.keys().any(|k| k.starts_with("edgelens_aggregate_position{") && k.contains(&topic) && k.contains("partition=\"1\"")), "the second member owns partition 1: {m:?}");
    // Statistics reach the metrics within about two seconds.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = metrics_of(ports[0]);
        if consumed(&m) == messages && fetched(&m) == messages {
            break;
        }
        assert!(Instant::now() < deadline, "the first aggregator took {} messages and fetched {} (of {messages}): what it kept was fetched again", consumed(&m), fetched(&m));
        std::thread::sleep(Duration::from_millis(250));
    }
    stop_gracefully(second);
    stop_gracefully(first);
}

/// An aggregator started while the brokers are unreachable waits for them (it may be restarted
/// during an outage) instead of failing, and a SIGTERM during the wait stops it cleanly.
#[test]
fn an_aggregator_waits_for_unreachable_brokers_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("aggregator.log");
    // An aggregator of brokers nobody answers at, with `extra` arguments, logging into `log`.
    let waiting = |extra: &[&str], lake: &str| {
        let child = edgelens()
            .args(["aggregate", "--brokers", "127.0.0.1:1", "--group", &unique("waiting")])
            .args(extra)
            .arg("--data-dir")
            .arg(tmp.path().join(lake))
            .env("EDGELENS__AGGREGATE__METRICS_LISTEN", "off")
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Proc(Some(child))
    };
    let mut agg = waiting(&[], "lake");
    std::thread::sleep(Duration::from_secs(8));
    let still = agg.0.as_mut().unwrap().try_wait().unwrap();
    assert!(still.is_none(), "exited while the brokers were unreachable ({still:?}):\n{}", std::fs::read_to_string(&log).unwrap_or_default());
    let started = Instant::now();
    stop_gracefully(agg);
    assert!(started.elapsed() < Duration::from_secs(10), "SIGTERM took {:?}", started.elapsed());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("brokers unreachable at start") && text.contains("brokers=127.0.0.1:1"), "{text}");
    // Regression: a SIGTERM while waiting for an unreachable ClickHouse at start exited 1, and the
    // retries did not say which server they waited for.
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let agg = waiting(&["--clickhouse", &nobody], "lake2");
    std::thread::sleep(Duration::from_secs(4));
    stop_gracefully(agg);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("migrating shard 0 failed; retrying") && text.contains(&format!("servers={nobody}")), "{text}");
}

/// `edgelens run` runs the roles in one process from one configuration: a Logpush batch posted
/// to its receiver is aggregated into its lake and answered by its query service; SIGTERM stops
/// all of them.
#[test]
fn run_serves_ingest_aggregate_and_query_in_one_process() {
    let setup = Setup::new(broker(), 2);
    let tmp = tempfile::tempdir().unwrap();
    let raw = generate(tmp.path(), "baseline", 43, "1m", 100, 10);
    let expected = recount(&raw);
    let lake = tmp.path().join("lake");
    let (ingest_port, query_port, pg_port) = (free_port(), free_port(), free_port());
    let log = tmp.path().join("run.log");
    let lake_s = lake.to_str().unwrap().to_owned();
    let child = edgelens()
        .args(["run", "--roles", "ingest,aggregate,query"])
        .envs(setup.env())
        .envs([
            ("EDGELENS__INGEST__BROKERS", setup.broker.clone()),
            ("EDGELENS__INGEST__LISTEN", format!("127.0.0.1:{ingest_port}")),
            ("EDGELENS__AGGREGATE__BROKERS", setup.broker.clone()),
            ("EDGELENS__AGGREGATE__GROUP", setup.group.clone()),
            ("EDGELENS__AGGREGATE__DATA_DIR", lake_s.clone()),
            ("EDGELENS__QUERY__DATA_DIR", lake_s),
            ("EDGELENS__QUERY__LISTEN", format!("127.0.0.1:{query_port}")),
            ("EDGELENS__QUERY__PG_LISTEN", format!("127.0.0.1:{pg_port}")),
        ])
        .stdout(Stdio::null())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let run = Proc(Some(child));
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_get(ingest_port, "/healthz").0 != 200 || http_get(query_port, "/healthz").0 != 200 {
        assert!(Instant::now() < deadline, "roles not up within 60 s:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, _, body) = post_logpush_gzip(ingest_port, &std::fs::read(&raw).unwrap());
    assert_eq!(status, 200, "{body}");
    let query = QueryService::at(query_port);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, body) = query.sql("SELECT sum(requests) AS n FROM site_rates_10s", "text/csv");
        if status == 200 && body.lines().nth(1).is_some_and(|n| n.trim() == expected.valid.to_string()) {
            break;
        }
        assert!(Instant::now() < deadline, "the query service does not show the {} events ({status}: {body}):\n{}", expected.valid, std::fs::read_to_string(&log).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(500));
    }
    stop_gracefully(run);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("roles started"), "{text}");
    // Regression: the receiver and the query service stopped without a word in the log.
    assert!(text.contains("shutting down") && text.contains("SIGTERM"), "{text}");
    for port in [ingest_port, query_port] {
        let stopped = |what: &str| text.lines().any(|l| l.contains(what) && l.contains(&format!("127.0.0.1:{port}")));
        assert!(stopped("stopping: new connections refused") && stopped("stopped"), "no stop of 127.0.0.1:{port} in the log:\n{text}");
    }
}

/// An aggregator configured with a topic the brokers do not have says so in its log.
#[test]
fn an_aggregator_names_a_missing_topic() {
    let broker = broker();
    let missing = unique("no-such-events");
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("aggregator.log");
    let child = edgelens()
        .args(["aggregate", "--brokers", &broker, "--group", &unique("missing"), "--data-dir"])
        .arg(tmp.path().join("lake"))
        .env("EDGELENS__AGGREGATE__EVENTS_TOPIC", &missing)
        .env("EDGELENS__AGGREGATE__INCIDENTS_TOPIC", "")
        .env("EDGELENS__AGGREGATE__METRICS_LISTEN", "off")
        .stdout(Stdio::null())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let agg = Proc(Some(child));
    let text = log_containing(&log, "the brokers have no topic", Duration::from_secs(30));
    assert!(text.contains(&format!("the brokers have no topic {missing}")), "{text}");
    stop_gracefully(agg);
}

/// Regression: an aggregator whose group had no committed offset (a broker restarted on memory
/// storage, offsets expired or deleted) resumed from the beginning and so discarded every write of
/// the group — the lake's and ClickHouse's whole history of the topic. Now it resumes from the
/// lake's newest checkpoint (the same events again: nothing doubled), and stops, discarding
/// nothing, when the partition now ends before it (its offsets started again).
#[test]
fn lost_group_offsets_never_discard_the_history() {
    let pb = PrivateBroker::start("memory");
    let setup = Setup::new(pb.addr(), 2);
    let tmp = tempfile::tempdir().unwrap();
    let first = generate(tmp.path(), "baseline", 3, "2m", 200, 20);
    let more = tmp.path().join("more.ndjson");
    run_ok(edgelens().args(["generate", "--scenario", "baseline", "--seed", "4", "--duration", "1m", "--rps", "200", "--sites", "20", "--start", "2026-11-01T00:05:00Z", "--out"]).arg(&more));
    let (n1, n2) = (recount(&first).valid, recount(&more).valid);
    let ingest = |file: &Path| run_ok(edgelens().args(["ingest", "--brokers", &setup.broker, "file"]).arg(file).envs(setup.env()));
    let restart_broker = || {
        pb.script("stop-broker");
        pb.script("start");
        kafka::create_topics_blocking(&setup.broker, &[(&setup.events, setup.partitions), (&setup.dead, 1)]);
    };
    let lake = tmp.path().join("lake");
    let log = tmp.path().join("aggregator.log");
    ingest(&first);
    let agg = setup.aggregator(&lake, &log, 0);
    setup.wait_done(&lake, n1, Duration::from_secs(180), &[log.clone()]);
    stop_gracefully(agg);

    // The broker forgets the group's offsets; its topic gets the same messages again, and more.
    restart_broker();
    ingest(&first);
    ingest(&more);
    let agg = setup.aggregator(&lake, &log, 0);
    setup.wait_done(&lake, n1 + n2, Duration::from_secs(180), &[log.clone()]);
    stop_gracefully(agg);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("resuming from this lake's checkpoint"), "{text}");

    // Offsets lost again, the topic the same and read to its end: the checkpoint is at the end,
    // which tansu reports lower (the start of the last record batch); resumed, nothing new.
    restart_broker();
    ingest(&first);
    ingest(&more);
    let caught_up = tmp.path().join("caught-up.log");
    let agg = setup.aggregator(&lake, &caught_up, 0);
    log_containing(&caught_up, "resuming from this lake's checkpoint", Duration::from_secs(60));
    // Every partition taken (nothing is left to read, so nothing is committed to wait for).
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&caught_up).unwrap().matches("partition taken").count() < setup.partitions as usize + 1 {
        assert!(Instant::now() < deadline, "{}", std::fs::read_to_string(&caught_up).unwrap());
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(5));
    stop_gracefully(agg);
    let text = std::fs::read_to_string(&caught_up).unwrap();
    assert!(!text.contains("another --group"), "{text}");
    assert_eq!(total_requests(&lake), n1 + n2);

    // The topic starts again with fewer messages than were read: refused, nothing discarded.
    restart_broker();
    ingest(&more);
    let mut agg = setup.aggregator(&lake, &log, 0);
    let text = log_containing(&log, "another --group", Duration::from_secs(60));
    assert!(text.contains("its offsets started again"), "{text}");
    let status = agg.0.as_mut().unwrap().wait().unwrap();
    assert!(!status.success(), "the aggregator went on: {status}");
    assert_eq!(total_requests(&lake), n1 + n2, "the lake lost rows");
}
