//! The local cluster (`deploy/dev/cluster.sh`): a broker, ClickHouse, one `edgelens ingest`, three
//! `edgelens aggregate` and one `edgelens query`, each its own process on loopback — a private
//! cluster on free ports, so it runs beside the other tests. Logpush pushes go to the receiver; the
//! query API (reading ClickHouse) must then answer exactly what a query service over `edgelens
//! replay` of the same events answers, and the totals must equal an independent recount.

mod support;

use std::time::{Duration, Instant};

use support::answers::*;
use support::*;

struct Cluster {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    ingest_port: u16,
    query_port: u16,
}

impl Cluster {
    fn up() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (ingest_port, query_port) = (free_port(), free_port());
        let env = vec![
            ("EDGELENS_DEV_DIR".to_owned(), dir.path().display().to_string()),
            ("EDGELENS_KAFKA_PORT".to_owned(), free_port().to_string()),
            ("EDGELENS_CH_HTTP_PORT".to_owned(), free_port().to_string()),
            ("EDGELENS_CH_TCP_PORT".to_owned(), free_port().to_string()),
            ("EDGELENS_CLUSTER_INGEST_PORT".to_owned(), ingest_port.to_string()),
            ("EDGELENS_CLUSTER_QUERY_PORT".to_owned(), query_port.to_string()),
            ("EDGELENS_CLUSTER_PG_PORT".to_owned(), free_port().to_string()),
            ("EDGELENS_BIN".to_owned(), env!("CARGO_BIN_EXE_edgelens").to_owned()),
            // Shorter idle close so the last windows are written soon after the last push.
            ("EDGELENS__AGGREGATE__IDLE_TIMEOUT_MS".to_owned(), "3000".to_owned()),
        ];
        let c = Cluster { dir, env, ingest_port, query_port };
        c.script("up");
        c
    }

    fn script(&self, cmd: &str) {
        let env: Vec<(&str, String)> = self.env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        dev_script("cluster.sh", cmd, &env, &format!("role logs:\n{}", self.logs()));
    }

    fn logs(&self) -> String {
        let dir = self.dir.path().join("cluster");
        let mut out = String::new();
        for f in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if f.path().extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(f.path()).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                out += &format!("--- {}\n{}\n", f.path().display(), lines[lines.len().saturating_sub(10)..].join("\n"));
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| self.script("down"));
    }
}

fn sum_requests(svc: &QueryService) -> u64 {
    let (status, body) = svc.sql("SELECT SUM(requests) AS r FROM site_rates_10s", "application/json");
    if status != 200 {
        return 0;
    }
    json(&body, "sum").get(0).and_then(|r| r["r"].as_u64()).unwrap_or(0)
}

#[test]
fn logpush_through_the_local_cluster_gives_exact_api_answers() {
    let cluster = Cluster::up();
    let tmp = tempfile::tempdir().unwrap();
    let raw = generate(tmp.path(), "mixed", 61, "7m", 250, 30);
    let expected = recount(&raw);

    // Push as Logpush does: gzip NDJSON batches, retried on 429/503.
    let text = std::fs::read(&raw).unwrap();
    let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    for batch in lines.chunks(1000) {
        let body = batch.join(&b'\n');
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, _, resp) = post_logpush_gzip(cluster.ingest_port, &body);
            if status == 200 {
                break;
            }
            assert!([429, 503].contains(&status), "receiver answered {status}: {resp}");
            assert!(Instant::now() < deadline, "receiver kept refusing: {status} {resp}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    let api = QueryService::at(cluster.query_port);
    let deadline = Instant::now() + Duration::from_secs(180);
    while sum_requests(&api) != expected.valid {
        assert!(Instant::now() < deadline, "the API shows {} of {} requests after 180 s\n{}", sum_requests(&api), expected.valid, cluster.logs());
        std::thread::sleep(Duration::from_millis(500));
    }
    // Settle: nothing more arrives (no double counting after the total was reached).
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(sum_requests(&api), expected.valid, "requests counted twice after the total was reached");

    let lake = tmp.path().join("replay-lake");
    run_ok(edgelens().args(["replay", "--data-dir"]).arg(&lake).arg(&raw));
    let reference = QueryService::start(&["--data-dir", lake.to_str().unwrap()], &[]);
    let sites = top_sites(&reference, 4);
    let compared = assert_same_answers(&api, &reference, &api_requests(&sites));
    eprintln!("{compared} answers of the cluster equal those over replay; {} requests", expected.valid);

    // Regression: `down` then `up` (the broker on memory storage starts empty) started
    // aggregators that refused the new topic at once, while `up` said the cluster was up. Now the
    // new topic is counted as another group, beside the earlier rollups.
    cluster.script("down");
    cluster.script("up");
    let body = lines[..1000].join(&b'\n');
    let deadline = Instant::now() + Duration::from_secs(60);
    while post_logpush_gzip(cluster.ingest_port, &body).0 != 200 {
        assert!(Instant::now() < deadline, "the receiver refused the push after the second up");
        std::thread::sleep(Duration::from_millis(500));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while sum_requests(&api) <= expected.valid {
        assert!(Instant::now() < deadline, "nothing counted after the second up\n{}", cluster.logs());
        std::thread::sleep(Duration::from_millis(500));
    }
}
