//! One contract for both query backends: the same generated traffic is replayed once into the lake
//! and ClickHouse (`edgelens replay --clickhouse`), then two `edgelens query` services — one on the
//! lake, one on ClickHouse (`--clickhouse`) — must give identical answers to every API query and
//! to a set of SQL queries, and refuse the same writes. `edgelens sql --clickhouse` is checked
//! against `edgelens sql` on the lake too.
//!
//! Needs the ClickHouse server at `$EDGELENS_TEST_CLICKHOUSE` (fails, never skips, without it).

mod support;

use serde_json::Value;
use support::*;

/// API requests answered by both backends.
fn api_requests(sites: &[String]) -> Vec<String> {
    let range = "from=2026-11-01T00:00:00Z&to=2026-11-01T00:07:00Z";
    let mut reqs = Vec::new();
    for by in ["site", "country", "colo", "asn"] {
        for (step, top) in [("1m", 5), ("5m", 3), ("7m", 50)] {
            reqs.push(format!("/v1/traffic-share?{range}&by={by}&step={step}&top={top}"));
        }
    }
    reqs.push(format!("/v1/traffic-share?from=2026-11-01T00:01:30Z&to=2026-11-01T00:04:00Z&by=site&step=1m&top=4&format=csv"));
    for site in sites.iter().take(4) {
        reqs.push(format!("/v1/sites/{site}/rates?{range}&step=10s"));
        reqs.push(format!("/v1/sites/{site}/rates?{range}&step=1m&format=csv"));
    }
    reqs.push(format!("/v1/sites/no-such-site.example/rates?{range}&step=1m"));
    reqs
}

/// Overlapping, many-to-many, time-versioned registry rows for `sites`, written to the lake and
/// to ClickHouse alike.
fn write_registry(lake: &std::path::Path, db: &ChDatabase, sites: &[String]) {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
    use edgelens_aggregate::sink::OffsetSpan;
    use edgelens_schemas::tables::{SITE_ENTITIES, SITE_TAGS};
    let t = |minute: i64| 1_793_491_200_000_000 + minute * 60_000_000;
    let ts = |v: Vec<Option<i64>>| -> ArrayRef { Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC")) };
    let s = |v: Vec<&str>| -> ArrayRef { Arc::new(StringArray::from(v)) };
    let site = |i: usize| sites[i].as_str();
    // (site, entity, confidence, from minute, to minute)
    let entities = [(0, "Org A", 0.9, 0, None), (1, "Org A", 0.4, 0, Some(5)), (1, "Org B", 0.9, 3, None), (2, "Org B", 0.8, 1, Some(4)), (0, "Org C", 0.95, 2, None)];
    let e = RecordBatch::try_new(
        SITE_ENTITIES.arrow_schema(),
        vec![
            s(entities.iter().map(|r| site(r.0)).collect()),
            s(entities.iter().map(|r| r.1).collect()),
            s(vec!["test"; entities.len()]),
            Arc::new(Float64Array::from(entities.iter().map(|r| r.2).collect::<Vec<_>>())),
            ts(entities.iter().map(|r| Some(t(r.3))).collect()),
            ts(entities.iter().map(|r| r.4.map(t)).collect()),
        ],
    )
    .unwrap();
    let tags = [(0, "watchlist-x", 0, None), (2, "watchlist-x", 2, Some(6)), (1, "watchlist-y", 0, None), (3, "watchlist-y", 4, None)];
    let g = RecordBatch::try_new(
        SITE_TAGS.arrow_schema(),
        vec![
            s(tags.iter().map(|r| site(r.0)).collect()),
            s(tags.iter().map(|r| r.1).collect()),
            s(vec!["test"; tags.len()]),
            ts(tags.iter().map(|r| Some(t(r.2))).collect()),
            ts(tags.iter().map(|r| r.3.map(t)).collect()),
        ],
    )
    .unwrap();
    let span = OffsetSpan::new("registry", 0, 0, 1);
    let mut parquet = edgelens_aggregate::sink::parquet::ParquetLake::open(lake).unwrap();
    parquet.write_table(&SITE_ENTITIES, &e, &span).unwrap();
    parquet.write_table(&SITE_TAGS, &g, &span).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut ch = edgelens_aggregate::sink::clickhouse::ClickHouseSink::connect(&db.config(), stop).unwrap();
    ch.write_tables(&[(&SITE_ENTITIES, e), (&SITE_TAGS, g)], &span).unwrap();
}

/// SQL that both dialects accept, with deterministic order.
const SQL: &[&str] = &[
    "SELECT site, SUM(requests) AS requests, SUM(bytes) AS bytes FROM traffic_1m GROUP BY site ORDER BY requests DESC, site LIMIT 20",
    "SELECT country, SUM(requests) AS r FROM traffic_1m WHERE status_class = '5xx' GROUP BY country ORDER BY r DESC, country",
    "SELECT ts, SUM(requests) AS r, SUM(status_4xx) AS e4 FROM site_rates_10s GROUP BY ts ORDER BY ts LIMIT 60",
    "SELECT asn, country, SUM(requests) AS r FROM asn_1m GROUP BY asn, country ORDER BY r DESC, asn, country LIMIT 15",
    "SELECT cache_status, SUM(bytes) AS b FROM traffic_1m WHERE ts >= '2026-11-01 00:02:00' AND ts < '2026-11-01 00:04:00' GROUP BY cache_status ORDER BY cache_status",
    "SELECT COUNT(*) AS n FROM dead_letters",
    "SELECT reason, COUNT(*) AS n FROM dead_letters GROUP BY reason ORDER BY reason",
    "SELECT site, SUM(blocked) AS blocked, SUM(cache_hits) AS hits FROM site_rates_10s WHERE site IN (SELECT site FROM traffic_1m GROUP BY site ORDER BY SUM(requests) DESC, site LIMIT 3) GROUP BY site ORDER BY site",
    "SELECT e.entity, SUM(t.requests) AS r FROM traffic_1m t JOIN site_entities e ON t.site = e.site WHERE e.confidence >= 0.5 GROUP BY e.entity ORDER BY e.entity",
    "SELECT tag, COUNT(*) AS n FROM site_tags GROUP BY tag ORDER BY tag",
];

fn json(body: &str, what: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {body}"))
}

/// JSON numbers compared by value (a count is `Int64` in DataFusion and `UInt64` in ClickHouse).
fn normalized(v: Value) -> Value {
    match v {
        Value::Number(n) => n.as_u64().map(Value::from).or_else(|| n.as_i64().map(Value::from)).unwrap_or(Value::Number(n)),
        Value::Array(a) => Value::Array(a.into_iter().map(normalized).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, normalized(v))).collect()),
        other => other,
    }
}

#[test]
fn lake_and_clickhouse_backends_answer_identically() {
    let db = ChDatabase::new(&clickhouse_url(), "edgelens_backends");
    let tmp = tempfile::tempdir().unwrap();
    let raw = generate(tmp.path(), "mixed", 33, "7m", 300, 30);
    let mut text = std::fs::read(&raw).unwrap();
    text.extend_from_slice(b"{\"broken\": \n{\"ClientIP\":\"1.2.3.4\"}\n");
    let input = tmp.path().join("input.ndjson");
    std::fs::write(&input, text).unwrap();
    let lake = tmp.path().join("lake");
    let summary = run_ok(edgelens().args(["replay", "--data-dir"]).arg(&lake).args(["--clickhouse", &db.url]).arg(&input).envs(db.env()));
    assert!(summary.contains("clickhouse_rows"), "replay did not write ClickHouse: {summary}");

    let on_lake = QueryService::start(&["--data-dir", lake.to_str().unwrap()], &[]);
    let on_ch = QueryService::start(&["--clickhouse", &db.url], &db.env());

    let top = json(&on_lake.sql("SELECT site FROM traffic_1m GROUP BY site ORDER BY SUM(requests) DESC, site LIMIT 4", "application/json").1, "top sites");
    let sites: Vec<String> = top.as_array().unwrap().iter().map(|r| r["site"].as_str().unwrap().to_owned()).collect();
    assert_eq!(sites.len(), 4);
    write_registry(&lake, &db, &sites);

    let mut compared = 0;
    let range = "from=2026-11-01T00:00:00Z&to=2026-11-01T00:07:00Z";
    let mut requests = api_requests(&sites);
    for by in ["entity", "tag"] {
        requests.push(format!("/v1/traffic-share?{range}&by={by}&step=1m&top=5"));
        requests.push(format!("/v1/traffic-share?{range}&by={by}&step=7m&top=1&format=csv"));
    }
    requests.push(format!("/v1/traffic-share?{range}&by=entity&step=1m&min_confidence=0.5"));
    for path in requests {
        let (a, b) = (on_lake.get(&path), on_ch.get(&path));
        assert_eq!(a.0, 200, "lake {path}: {}", a.1);
        assert_eq!(b.0, 200, "clickhouse {path}: {}", b.1);
        if path.contains("format=csv") {
            assert_eq!(a.1, b.1, "{path}");
            assert!(a.1.lines().count() > 1, "{path}: no rows");
        } else {
            let (ja, jb) = (json(&a.1, &path), json(&b.1, &path));
            assert_eq!(ja, jb, "{path}");
            let rows = ja.get("series").or_else(|| ja.get("points")).and_then(Value::as_array).map_or(0, Vec::len);
            assert!(rows > 0 || path.contains("no-such-site"), "{path}: empty answer {ja}");
        }
        compared += 1;
    }
    for sql in SQL {
        let (a, b) = (on_lake.sql(sql, "application/json"), on_ch.sql(sql, "application/json"));
        assert_eq!((a.0, b.0), (200, 200), "{sql}\nlake: {}\nclickhouse: {}", a.1, b.1);
        let (ja, jb) = (normalized(json(&a.1, sql)), normalized(json(&b.1, sql)));
        assert!(ja.as_array().is_some_and(|r| !r.is_empty()), "{sql}: no rows");
        assert_eq!(ja, jb, "{sql}");
        let (ca, cb) = (on_lake.sql(sql, "text/csv").1, on_ch.sql(sql, "text/csv").1);
        assert_eq!(ca, cb, "{sql} as CSV");
        compared += 1;
    }
    // Writes are refused by both, as the caller's error.
    for bad in ["DROP TABLE traffic_1m", "INSERT INTO dead_letters SELECT * FROM dead_letters", "SELECT 1; SELECT 2"] {
        assert_eq!(on_lake.sql(bad, "application/json").0, 400, "lake accepted {bad}");
        assert_eq!(on_ch.sql(bad, "application/json").0, 400, "clickhouse accepted {bad}");
    }
    // The CLI on both backends.
    let cli = |args: &[&str]| run_ok(edgelens().args(["sql", "--format", "json"]).args(args).arg(SQL[0]).envs(db.env()));
    assert_eq!(normalized(json(&cli(&["--data-dir", lake.to_str().unwrap()]), "cli lake")), normalized(json(&cli(&["--clickhouse", &db.url]), "cli clickhouse")));
    eprintln!("{compared} answers identical on both backends");
}

/// Write `lines` through ClickHouse sinks configured by `cfg`, as six source partitions (lines
/// split by a hash of the line's site), the way six aggregator partitions would.
fn write_partitions(cfg: &edgelens_schemas::clickhouse::ClickHouseConfig, lines: &[&[u8]]) {
    use edgelens_aggregate::pipeline::{EmbeddedPipeline, PipelineConfig};
    use edgelens_aggregate::sink::clickhouse::ClickHouseSink;
    use edgelens_ingest::reader::Line;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let parts = 6;
    for p in 0..parts {
        let sink = ClickHouseSink::connect(cfg, stop.clone()).unwrap_or_else(|e| panic!("ClickHouse {cfg:?}: {e}"));
        let pcfg = PipelineConfig { source: "shard-test".into(), partition: p, flush_rows: 2_000, ..PipelineConfig::default() };
        let mut pipeline = EmbeddedPipeline::new(pcfg, sink);
        for (i, l) in lines.iter().enumerate() {
            let site = l.windows(11).position(|w| w == b"\"ZoneName\":").map_or(0, |at| l[at..].iter().take(40).map(|&b| b as usize).sum::<usize>());
            if site % parts as usize == p as usize {
                pipeline.push_line(Line::Complete(l), "shard-test", i as u64, 0).unwrap();
            }
        }
        pipeline.finish().unwrap();
    }
}

/// Two local ClickHouse servers as the two shards of a cluster (`remote_servers`), written by the
/// sink (each source partition to one shard) and read through the `Distributed` tables: every API
/// and SQL answer equals the one from a single server holding the same data.
#[test]
fn two_shards_through_distributed_tables_equal_one_server() {
    let name = "edgelens_test";
    let (mut a, mut b) = (PrivateClickHouse::new(""), PrivateClickHouse::new(""));
    let cluster = format!("{name}=127.0.0.1:{},127.0.0.1:{}", a.tcp_port, b.tcp_port);
    a.cluster.clone_from(&cluster);
    b.cluster = cluster;
    a.script("start");
    b.script("start");
    let single = ChDatabase::new(&clickhouse_url(), "edgelens_single");

    let tmp = tempfile::tempdir().unwrap();
    let raw = generate(tmp.path(), "mixed", 41, "7m", 300, 30);
    let text = std::fs::read(&raw).unwrap();
    let lines: Vec<&[u8]> = text.split(|&x| x == b'\n').filter(|l| !l.is_empty()).collect();

    let sharded = edgelens_schemas::clickhouse::ClickHouseConfig {
        url: a.url(),
        shards: vec![a.url(), b.url()],
        cluster: name.into(),
        ..edgelens_schemas::clickhouse::ClickHouseConfig::default()
    };
    write_partitions(&sharded, &lines);
    write_partitions(&single.config(), &lines);

    // Both shards hold part of the data.
    for shard in [&a, &b] {
        let out = std::process::Command::new("curl")
            .args(["-fsS", &format!("{}/", shard.url()), "--data-binary", "SELECT sum(requests) FROM edgelens.traffic_1m_local"])
            .output()
            .unwrap();
        let n: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
        assert!(n > 0, "shard {} holds no traffic", shard.url());
    }

    let env = |extra: &[(&str, &str)]| extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<Vec<_>>();
    let on_cluster = QueryService::start(&["--clickhouse", &a.url()], &env(&[("EDGELENS__CLICKHOUSE__CLUSTER", name)]));
    let on_single = QueryService::start(&["--clickhouse", &single.url], &single.env());
    let top = json(&on_single.sql("SELECT site FROM traffic_1m GROUP BY site ORDER BY SUM(requests) DESC, site LIMIT 4", "application/json").1, "top sites");
    let sites: Vec<String> = top.as_array().unwrap().iter().map(|r| r["site"].as_str().unwrap().to_owned()).collect();
    for path in api_requests(&sites) {
        let (x, y) = (on_cluster.get(&path), on_single.get(&path));
        assert_eq!((x.0, y.0), (200, 200), "{path}\ncluster: {}\nsingle: {}", x.1, y.1);
        assert_eq!(x.1, y.1, "{path}");
    }
    for sql in SQL {
        let (x, y) = (on_cluster.sql(sql, "application/json"), on_single.sql(sql, "application/json"));
        assert_eq!((x.0, y.0), (200, 200), "{sql}\ncluster: {}\nsingle: {}", x.1, y.1);
        assert_eq!(normalized(json(&x.1, sql)), normalized(json(&y.1, sql)), "{sql}");
    }
}
