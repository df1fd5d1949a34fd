//! The query service end to end: Parquet files written with the schemas' Arrow schemas into a lake
//! directory, the router served on 127.0.0.1:0, requests over a plain TCP HTTP/1.1 client.
//!
//! Test data (all numbers below are computed by hand from it), `traffic_1m`:
//!
//! | date       | ts    | site         | country | colo | requests |
//! |------------|-------|--------------|---------|------|----------|
//! | 2026-11-01 | 23:58 | shop.example | US      | FRA  | 100      |
//! | 2026-11-01 | 23:58 | shop.example | US      | FRA  | 10 (delta row, same key, second file) |
//! | 2026-11-01 | 23:58 | blog.example | DE      | FRA  | 50       |
//! | 2026-11-01 | 23:59 | shop.example | US      | FRA  | 30       |
//! | 2026-11-01 | 23:59 | news.example | US      | AMS  | 20       |
//! | 2026-11-01 | 23:59 | tiny.example | FR      | CDG  | 5        |
//! | 2026-11-02 | 00:00 | shop.example | US      | FRA  | 40       |
//! | 2026-11-02 | 00:00 | blog.example | DE      | FRA  | 60       |
//! | 2026-11-02 | 00:01 | news.example | GB      | AMS  | 15       |
//! | 2026-11-02 | 00:01 | tiny.example | FR      | CDG  | 5        |
//!
//! With 2-minute steps from 23:58 to 00:02: step 23:58 has shop 140, blog 50, news 20, tiny 5
//! (total 215); step 00:00 has shop 40, blog 60, news 15, tiny 5 (total 120); range total 335.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray, UInt32Array, UInt64Array,
};
use edgelens_query::{AppState, Lake, serve_on};
use edgelens_schemas::tables::{ASN_1M, INCIDENTS, SITES, SITE_ENTITIES, SITE_RATES_10S, TRAFFIC_1M, TableDef};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const T_2026_11_01: i64 = 1_793_491_200; // 2026-11-01T00:00:00Z

/// Unix seconds of 2026-11-01 + `h:m:s`, where h may be 24+ for the next day.
fn at(h: i64, m: i64, s: i64) -> i64 {
    T_2026_11_01 + h * 3600 + m * 60 + s
}

fn ts_array(secs: &[i64]) -> ArrayRef {
    Arc::new(
        TimestampMicrosecondArray::from(secs.iter().map(|s| s * 1_000_000).collect::<Vec<_>>()).with_timezone("UTC"),
    )
}

fn strings(v: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from(v.to_vec()))
}

fn u64s(v: &[u64]) -> ArrayRef {
    Arc::new(UInt64Array::from(v.to_vec()))
}

/// Write a Parquet file the way the aggregator does: elsewhere, then renamed into the lake.
fn write_parquet(dir: &Path, table: &TableDef, date: &str, name: &str, columns: Vec<ArrayRef>) {
    let batch = RecordBatch::try_new(table.arrow_schema(), columns).unwrap();
    let part = dir.join(table.name).join(format!("date={date}"));
    std::fs::create_dir_all(&part).unwrap();
    let tmp = dir.join(format!(".{}-{date}-{name}.tmp", table.name));
    let file = std::fs::File::create(&tmp).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    std::fs::rename(&tmp, part.join(format!("{name}.parquet"))).unwrap();
}

/// `traffic_1m` rows: (unix seconds, site, country, colo, requests).
fn write_traffic(dir: &Path, date: &str, name: &str, rows: &[(i64, &str, &str, &str, u64)]) {
    let n = rows.len();
    write_parquet(
        dir,
        &TRAFFIC_1M,
        date,
        name,
        vec![
            ts_array(&rows.iter().map(|r| r.0).collect::<Vec<_>>()),
            strings(&rows.iter().map(|r| r.1).collect::<Vec<_>>()),
            strings(&rows.iter().map(|r| r.2).collect::<Vec<_>>()),
            strings(&rows.iter().map(|r| r.3).collect::<Vec<_>>()),
            strings(&vec!["2xx"; n]),
            strings(&vec!["hit"; n]),
            u64s(&rows.iter().map(|r| r.4).collect::<Vec<_>>()),
            u64s(&rows.iter().map(|r| r.4 * 1000).collect::<Vec<_>>()),
        ],
    );
}

/// `asn_1m` rows: (unix seconds, site, asn, requests, distinct_clients).
fn write_asn(dir: &Path, date: &str, name: &str, rows: &[(i64, &str, u32, u64, u64)]) {
    let n = rows.len();
    write_parquet(
        dir,
        &ASN_1M,
        date,
        name,
        vec![
            ts_array(&rows.iter().map(|r| r.0).collect::<Vec<_>>()),
            strings(&rows.iter().map(|r| r.1).collect::<Vec<_>>()),
            Arc::new(UInt32Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())),
            strings(&vec!["US"; n]),
            u64s(&rows.iter().map(|r| r.3).collect::<Vec<_>>()),
            u64s(&rows.iter().map(|r| r.3 * 1000).collect::<Vec<_>>()),
            u64s(&rows.iter().map(|r| r.4).collect::<Vec<_>>()),
            Arc::new(BinaryArray::from(vec![&b""[..]; n])),
        ],
    );
}

/// Serialized sketch of the clients 10.0.0.0 .. 10.0.0.0 + n (rows with the same `n` share clients).
fn clients_sketch(n: u64) -> Vec<u8> {
    let mut s = edgelens_schemas::sketch::ClientSketch::new();
    for i in 0..n {
        s.insert(std::net::IpAddr::V4(std::net::Ipv4Addr::from_bits(0x0a00_0000 + i as u32)));
    }
    s.to_bytes()
}

/// `site_rates_10s` rows: (unix seconds, site, requests, status_5xx, distinct_clients); each row's
/// sketch holds the clients 10.0.0.0 .. + distinct_clients, so rows overlap in their clients.
fn write_rates(dir: &Path, date: &str, name: &str, rows: &[(i64, &str, u64, u64, u64)]) {
    let n = rows.len();
    let req: Vec<u64> = rows.iter().map(|r| r.2).collect();
    let s5: Vec<u64> = rows.iter().map(|r| r.3).collect();
    let s2: Vec<u64> = rows.iter().map(|r| r.2 - r.3).collect();
    write_parquet(
        dir,
        &SITE_RATES_10S,
        date,
        name,
        vec![
            ts_array(&rows.iter().map(|r| r.0).collect::<Vec<_>>()),
            strings(&rows.iter().map(|r| r.1).collect::<Vec<_>>()),
            u64s(&req),
            u64s(&req.iter().map(|r| r * 100).collect::<Vec<_>>()),
            u64s(&s2),
            u64s(&vec![0; n]),
            u64s(&vec![0; n]),
            u64s(&s5),
            u64s(&req.iter().map(|r| r / 2).collect::<Vec<_>>()),
            u64s(&vec![1; n]),
            u64s(&rows.iter().map(|r| r.4).collect::<Vec<_>>()),
            Arc::new(BinaryArray::from(rows.iter().map(|r| clients_sketch(r.4)).collect::<Vec<_>>().iter().map(|b| &b[..]).collect::<Vec<_>>())),
        ],
    );
}

/// `site_entities` rows: (site, entity, confidence), valid from 2026-01-01, open-ended.
fn write_entities(dir: &Path, rows: &[(&str, &str, f64)]) {
    let n = rows.len();
    let valid_from = 1_767_225_600; // 2026-01-01T00:00:00Z
    write_parquet(
        dir,
        &SITE_ENTITIES,
        "2026-01-01",
        "registry",
        vec![
            strings(&rows.iter().map(|r| r.0).collect::<Vec<_>>()),
            strings(&rows.iter().map(|r| r.1).collect::<Vec<_>>()),
            strings(&vec!["test"; n]),
            Arc::new(Float64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())),
            ts_array(&vec![valid_from; n]),
            Arc::new(TimestampMicrosecondArray::from(vec![None::<i64>; n]).with_timezone("UTC")),
            Arc::new(TimestampMicrosecondArray::from(vec![None::<i64>; n]).with_timezone("UTC")),
        ],
    );
}

fn write_fixture(dir: &Path) {
    write_traffic(
        dir,
        "2026-11-01",
        "part-0",
        &[
            (at(23, 58, 0), "shop.example", "US", "FRA", 100),
            (at(23, 58, 0), "blog.example", "DE", "FRA", 50),
            (at(23, 59, 0), "shop.example", "US", "FRA", 30),
            (at(23, 59, 0), "news.example", "US", "AMS", 20),
            (at(23, 59, 0), "tiny.example", "FR", "CDG", 5),
        ],
    );
    // Late data: a delta row with the same key as the first row.
    write_traffic(dir, "2026-11-01", "part-1", &[(at(23, 58, 0), "shop.example", "US", "FRA", 10)]);
    write_traffic(
        dir,
        "2026-11-02",
        "part-0",
        &[
            (at(24, 0, 0), "shop.example", "US", "FRA", 40),
            (at(24, 0, 0), "blog.example", "DE", "FRA", 60),
            (at(24, 1, 0), "news.example", "GB", "AMS", 15),
            (at(24, 1, 0), "tiny.example", "FR", "CDG", 5),
        ],
    );
    write_asn(
        dir,
        "2026-11-01",
        "part-0",
        &[(at(23, 59, 0), "shop.example", 13335, 70, 7), (at(23, 59, 0), "shop.example", 15169, 30, 3)],
    );
    write_asn(dir, "2026-11-01", "part-1", &[(at(23, 59, 0), "shop.example", 13335, 5, 1)]);
    write_rates(
        dir,
        "2026-11-01",
        "part-0",
        &[
            (at(23, 59, 0), "shop.example", 20, 2, 4),
            (at(23, 59, 10), "shop.example", 30, 0, 5),
            (at(23, 59, 0), "blog.example", 99, 0, 9),
        ],
    );
    write_rates(dir, "2026-11-01", "part-1", &[(at(23, 59, 0), "shop.example", 10, 1, 2)]);
    write_rates(dir, "2026-11-02", "part-0", &[(at(24, 0, 0), "shop.example", 60, 6, 8)]);
}

/// A running service over a lake directory.
struct Service {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Service {
    async fn start(dir: &Path) -> Service {
        Service::start_with(dir, AppState::new(Lake::open(dir).unwrap())).await
    }

    async fn start_with(_dir: &Path, state: AppState) -> Service {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            serve_on(listener, state, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Service { addr, stop: Some(stop), task: Some(task) }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
    }

    async fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let mut stream = TcpStream::connect(self.addr).await.unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        Reply::parse(&raw)
    }

    async fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], b"").await
    }

    async fn sql(&self, sql: &str, accept: &str) -> Reply {
        self.request("POST", "/v1/sql", &[("Accept", accept), ("Content-Type", "text/plain")], sql.as_bytes()).await
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn parse(raw: &[u8]) -> Reply {
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("end of headers");
        let head = std::str::from_utf8(&raw[..split]).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (k, v) = l.split_once(':').unwrap();
                (k.trim().to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect();
        let mut body = raw[split + 4..].to_vec();
        if headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked")) {
            body = dechunk(&body);
        }
        Reply { status, headers, body }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&data[..line_end]).unwrap().trim(), 16).unwrap();
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn approx(a: &Value, b: f64) -> bool {
    (a.as_f64().unwrap() - b).abs() < 1e-12
}

fn point(ts: &str, requests: u64, share: f64) -> Value {
    json!({"ts": ts, "requests": requests, "share": share})
}

const RANGE: &str = "from=2026-11-01T23:58:00Z&to=2026-11-02T00:02:00Z";

#[tokio::test]
async fn traffic_share_by_site_top_n_and_other() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path());
    let svc = Service::start(dir.path()).await;

    let reply = svc.get(&format!("/v1/traffic-share?{RANGE}&step=2m&top=2")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let v = reply.json();
    let (b1, b2) = ("2026-11-01T23:58:00Z", "2026-11-02T00:00:00Z");
    let expected = json!({
        "by": "site", "step": "2m", "from": b1, "to": "2026-11-02T00:02:00Z", "total": 335,
        "series": [
            {"key": "shop.example", "requests": 180, "share": 180.0 / 335.0,
             "points": [point(b1, 140, 140.0 / 215.0), point(b2, 40, 40.0 / 120.0)]},
            {"key": "blog.example", "requests": 110, "share": 110.0 / 335.0,
             "points": [point(b1, 50, 50.0 / 215.0), point(b2, 60, 60.0 / 120.0)]},
            {"key": "other", "folded": true, "requests": 45, "share": 45.0 / 335.0,
             "points": [point(b1, 25, 25.0 / 215.0), point(b2, 20, 20.0 / 120.0)]},
        ]
    });
    assert_eq!(v, expected);

    // Default top (10): every site, no "other"; shares of a step add up to 1.
    let v = svc.get(&format!("/v1/traffic-share?{RANGE}&step=2m")).await.json();
    let keys: Vec<&str> = v["series"].as_array().unwrap().iter().map(|s| s["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["shop.example", "blog.example", "news.example", "tiny.example"]);
    for i in 0..2 {
        let sum: f64 = v["series"].as_array().unwrap().iter().map(|s| s["points"][i]["share"].as_f64().unwrap()).sum();
        assert!((sum - 1.0).abs() < 1e-12);
    }

    // CSV: ts,key,requests,share,folded ordered by ts, then series order.
    let reply = svc.get(&format!("/v1/traffic-share?{RANGE}&step=2m&top=2&format=csv")).await;
    assert_eq!(reply.status, 200);
    assert!(reply.header("content-type").unwrap().starts_with("text/csv"));
    let expected_csv = format!(
        "ts,key,requests,share,folded\n\
         {b1},shop.example,140,{},false\n{b1},blog.example,50,{},false\n{b1},other,25,{},true\n\
         {b2},shop.example,40,{},false\n{b2},blog.example,60,{},false\n{b2},other,20,{},true\n",
        140.0 / 215.0,
        50.0 / 215.0,
        25.0 / 215.0,
        40.0 / 120.0,
        60.0 / 120.0,
        20.0 / 120.0
    );
    assert_eq!(reply.text(), expected_csv);

    // One step per day, unix-seconds bounds, across both date partitions.
    let v = svc.get(&format!("/v1/traffic-share?from={}&to={}&step=1d&top=1", at(0, 0, 0), at(48, 0, 0))).await.json();
    assert_eq!(v["step"], "1d");
    assert_eq!(v["series"][0]["key"], "shop.example");
    assert_eq!(
        v["series"][0]["points"],
        json!([point("2026-11-01T00:00:00Z", 140, 140.0 / 215.0), point(b2, 40, 40.0 / 120.0)])
    );
    assert_eq!(v["series"][1]["key"], "other");
    assert_eq!(v["series"][1]["requests"], 155);

    // A range cutting the first minute away: 23:59 onwards, hourly steps.
    let v = svc.get("/v1/traffic-share?from=2026-11-01T23:59:00Z&to=2026-11-02T01:00:00Z&step=1h&top=1").await.json();
    assert_eq!(v["total"], 55 + 120);
    assert_eq!(v["series"][0]["points"][0], point("2026-11-01T23:00:00Z", 30, 30.0 / 55.0));

    // A range off the minute: the minutes that start in it, and the answer says which range
    // they cover (23:58:30–00:00:30 → the minutes 23:59 and 00:00, 23:59–00:01).
    let v = svc.get("/v1/traffic-share?from=2026-11-01T23:58:30Z&to=2026-11-02T00:00:30Z&step=1m&top=1").await.json();
    assert_eq!((&v["from"], &v["to"], &v["total"]), (&json!("2026-11-01T23:59:00Z"), &json!("2026-11-02T00:01:00Z"), &json!(55 + 100)));

    svc.stop().await;
}

#[tokio::test]
async fn traffic_share_by_country_colo_asn() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path());
    let svc = Service::start(dir.path()).await;

    let v = svc.get(&format!("/v1/traffic-share?{RANGE}&step=2m&by=country")).await.json();
    assert_eq!(v["by"], "country");
    let summary: Vec<(String, u64)> = v["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["key"].as_str().unwrap().to_owned(), s["requests"].as_u64().unwrap()))
        .collect();
    assert_eq!(summary, [("US".to_owned(), 200), ("DE".to_owned(), 110), ("GB".to_owned(), 15), ("FR".to_owned(), 10)]);
    // GB had no traffic in the first step: a zero point keeps the series aligned.
    assert_eq!(v["series"][2]["points"][0], point("2026-11-01T23:58:00Z", 0, 0.0));

    let v = svc.get(&format!("/v1/traffic-share?{RANGE}&step=4m&by=colo&top=1")).await.json();
    assert_eq!(v["series"][0]["key"], "FRA");
    assert_eq!(v["series"][0]["requests"], 290);
    assert!(approx(&v["series"][0]["share"], 290.0 / 335.0));
    // 4-minute steps are aligned to the epoch: 23:56 and 00:00.
    assert_eq!(v["series"][0]["points"][0], point("2026-11-01T23:56:00Z", 190, 190.0 / 215.0));

    // by=asn from asn_1m, delta rows summed.
    let v = svc.get(&format!("/v1/traffic-share?{RANGE}&step=1m&by=asn")).await.json();
    assert_eq!(v["total"], 105);
    assert_eq!(v["series"][0]["key"], "13335");
    assert_eq!(v["series"][0]["points"], json!([point("2026-11-01T23:59:00Z", 75, 75.0 / 105.0)]));
    assert_eq!(v["series"][1]["key"], "15169");

    svc.stop().await;
}

#[tokio::test]
async fn traffic_share_by_entity_needs_registry() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path());
    let svc = Service::start(dir.path()).await;

    let reply = svc.get(&format!("/v1/traffic-share?{RANGE}&step=2m&by=entity")).await;
    assert_eq!(reply.status, 400);
    assert!(reply.json()["error"].as_str().unwrap().contains("registry not loaded"), "{}", reply.text());
    let reply = svc.get(&format!("/v1/traffic-share?{RANGE}&step=2m&by=tag")).await;
    assert_eq!(reply.status, 400);
    assert!(reply.text().contains("registry not loaded"));

    // Registry appears while the service runs: shop belongs to two entities, blog to one with low
    // confidence; the repeated attribution must not count twice.
    write_entities(
        dir.path(),
        &[
            ("shop.example", "Acme", 0.9),
            ("shop.example", "Acme", 0.9),
            ("shop.example", "Shops Inc", 0.8),
            ("blog.example", "Acme", 0.4),
        ],
    );
    let reply = svc.get(&format!("/v1/traffic-share?{RANGE}&step=2m&by=entity")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let v = reply.json();
    assert_eq!(v["total"], 335);
    assert_eq!(v["series"][0]["key"], "Acme");
    assert_eq!(v["series"][0]["requests"], 290);
    assert_eq!(v["series"][0]["points"][0], point("2026-11-01T23:58:00Z", 190, 190.0 / 215.0));
    assert_eq!(v["series"][1]["key"], "Shops Inc");
    assert_eq!(v["series"][1]["requests"], 180);
    assert_eq!(v["series"].as_array().unwrap().len(), 2);

    let v = svc.get(&format!("/v1/traffic-share?{RANGE}&step=2m&by=entity&min_confidence=0.5")).await.json();
    assert_eq!(v["series"][0]["key"], "Acme");
    assert_eq!(v["series"][0]["requests"], 180);

    // The report states the range its minute rows cover (the asked one rounded up to minutes),
    // as traffic share does.
    let report = svc.get("/v1/reports/entities/Acme?from=2026-11-01T23:58:30Z&to=2026-11-02T00:01:10Z&step=1m").await.json();
    assert_eq!((report["from"].as_str(), report["to"].as_str()), (Some("2026-11-01T23:59:00Z"), Some("2026-11-02T00:02:00Z")), "{report}");

    // A mistyped entity is 404 for its incidents as for its report, not an empty list.
    assert_eq!(svc.get(&format!("/v1/incidents?{RANGE}&entity=Acme")).await.status, 200);
    let reply = svc.get(&format!("/v1/incidents?{RANGE}&entity=Acme%20Corp")).await;
    assert_eq!(reply.status, 404, "{}", reply.text());
    assert!(reply.text().contains("no site is attributed to the entity"), "{}", reply.text());

    svc.stop().await;
}

/// `incidents` rows, one state each: (site, start unix seconds), 60 s long, ended.
fn write_incidents(dir: &Path, rows: &[(&str, i64)]) {
    let n = rows.len();
    let starts: Vec<i64> = rows.iter().map(|r| r.1).collect();
    let ends: Vec<i64> = starts.iter().map(|s| s + 60).collect();
    write_parquet(
        dir,
        &INCIDENTS,
        "2026-11-01",
        "incidents",
        vec![
            strings(&rows.iter().enumerate().map(|(i, r)| format!("{}-{i}", r.0)).collect::<Vec<_>>().iter().map(String::as_str).collect::<Vec<_>>()),
            strings(&rows.iter().map(|r| r.0).collect::<Vec<_>>()),
            strings(&vec!["http_flood"; n]),
            strings(&vec!["ended"; n]),
            ts_array(&starts),
            ts_array(&starts),
            ts_array(&starts),
            ts_array(&ends),
            Arc::new(Float64Array::from(vec![500.0; n])),
            Arc::new(Float64Array::from(vec![10.0; n])),
            u64s(&vec![1000; n]),
            u64s(&vec![50; n]),
            strings(&vec!["{}"; n]),
            strings(&vec!["[]"; n]),
            ts_array(&ends),
        ],
    );
}

/// Regression: an entity's incidents were taken from the first 10,000 of its sites' (the most
/// one list answer may hold), so its `total` and its report stopped there.
#[tokio::test]
async fn an_entity_counts_every_incident_of_its_sites() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path());
    write_entities(dir.path(), &[("shop.example", "Acme", 0.9)]);
    let n = 10_003;
    let rows: Vec<(&str, i64)> = (0..n).map(|i| ("shop.example", at(0, 0, 0) + i)).collect();
    write_incidents(dir.path(), &rows);
    let svc = Service::start(dir.path()).await;

    let range = "from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z";
    let list = svc.get(&format!("/v1/incidents?{range}&limit=5")).await.json();
    assert_eq!((list["total"].as_u64(), list["incidents"].as_array().unwrap().len()), (Some(n as u64), 5));
    let list = svc.get(&format!("/v1/incidents?{range}&entity=Acme&limit=5")).await.json();
    assert_eq!((list["total"].as_u64(), list["incidents"].as_array().unwrap().len()), (Some(n as u64), 5), "entity list");
    let report = svc.get(&format!("/v1/reports/entities/Acme?{range}&step=1h")).await.json();
    assert_eq!(report["incidents"].as_array().map(Vec::len), Some(n as usize), "entity report");
    // Regression: a name with spaces around it (imports store names trimmed) was 404.
    let padded = svc.get(&format!("/v1/reports/entities/%20Acme%09?{range}&step=1h")).await.json();
    assert_eq!((padded["entity"].as_str(), padded["incidents"].as_array().map(Vec::len)), (Some("Acme"), Some(n as usize)), "padded name");
    let padded = svc.get(&format!("/v1/incidents?{range}&entity=%20Acme%20&limit=5")).await.json();
    assert_eq!(padded["total"].as_u64(), Some(n as u64), "padded entity=");

    // Regression: CSV and Markdown reports had no file name (browsers saved `shop.csv`).
    let id = list["incidents"][0]["incident_id"].as_str().unwrap().to_owned();
    // Names are also sent as RFC 5987 UTF-8 (`filename*`), for names that are not ASCII.
    let named = |f: &str| Some(format!("attachment; filename=\"{f}\"; filename*=UTF-8''{f}"));
    for (format, disposition) in [("csv", named(&format!("{id}.csv"))), ("md", named(&format!("{id}.md"))), ("html", None)] {
        let reply = svc.get(&format!("/v1/incidents/{id}?format={format}")).await;
        assert_eq!((reply.status, reply.header("content-disposition").map(str::to_owned)), (200, disposition), "{format}");
    }
    let reply = svc.get(&format!("/v1/reports/entities/Acme?{range}&format=md")).await;
    assert_eq!(reply.header("content-disposition").map(str::to_owned), named("entity-Acme.md"));

    svc.stop().await;
}

/// `shop.example` in the lake's site registry (tenant `t1`, since 2026-01-01).
fn register_shop_example(dir: &Path) {
    write_parquet(
        dir,
        &SITES,
        "2026-01-01",
        "registry",
        vec![strings(&["shop.example"]), strings(&["t1"]), ts_array(&[1_767_225_600]), Arc::new(TimestampMicrosecondArray::from(vec![None::<i64>]).with_timezone("UTC")), ts_array(&[1_767_225_600])],
    );
}

/// Regression: `/v1/incidents?site=www.shop.example` listed nothing when `shop.example` is
/// registered, though the host's traffic is judged, and its attacks recorded, under the site.
#[tokio::test]
async fn a_host_of_a_registered_site_lists_the_sites_incidents() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path());
    write_incidents(dir.path(), &[("shop.example", at(0, 1, 0)), ("www.shop.example", at(0, 2, 0)), ("other.example", at(0, 3, 0))]);
    let range = "from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z";
    let sites_of = |v: Value| -> Vec<String> { v["incidents"].as_array().unwrap().iter().map(|i| i["site"].as_str().unwrap().to_owned()).collect() };
    // Without a registry, a host is a site of its own.
    let svc = Service::start(dir.path()).await;
    assert_eq!(sites_of(svc.get(&format!("/v1/incidents?{range}&site=www.shop.example")).await.json()), ["www.shop.example"]);
    svc.stop().await;

    register_shop_example(dir.path());
    let svc = Service::start(dir.path()).await;
    // The host's incidents from before the registration, and its site's.
    assert_eq!(sites_of(svc.get(&format!("/v1/incidents?{range}&site=www.shop.example")).await.json()), ["www.shop.example", "shop.example"]);
    assert_eq!(sites_of(svc.get(&format!("/v1/incidents?{range}&site=shop.example")).await.json()), ["shop.example"]);
    assert_eq!(sites_of(svc.get(&format!("/v1/incidents?{range}&site=api.other.example")).await.json()), Vec::<String>::new());
    svc.stop().await;
}

/// Regression: `/v1/sites/www.shop.example/rates` gave no sign that `shop.example` is registered,
/// under which the host's traffic is counted since: the answer names it (`registered_site`), and
/// the points stay the host's own (from before), not the site's, whose rows hold its other hosts'.
#[tokio::test]
async fn a_host_of_a_registered_site_names_the_site_its_traffic_is_counted_under() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path());
    // The host's rows from before the registration.
    write_rates(dir.path(), "2026-11-01", "part-2", &[(at(23, 59, 0), "www.shop.example", 7, 0, 3)]);
    let url = "/v1/sites/www.shop.example/rates?from=2026-11-01T23:59:00Z&to=2026-11-02T00:01:00Z&step=1m";
    let requests = |v: &Value| -> Vec<u64> { v["points"].as_array().unwrap().iter().map(|p| p["requests"].as_u64().unwrap()).collect() };
    // Without a registry, a host is a site of its own.
    let svc = Service::start(dir.path()).await;
    let v = svc.get(url).await.json();
    assert_eq!((requests(&v), v["registered_site"].clone()), (vec![7], Value::Null), "{v}");
    svc.stop().await;

    register_shop_example(dir.path());
    let svc = Service::start(dir.path()).await;
    let v = svc.get(url).await.json();
    assert_eq!((requests(&v), v["registered_site"].clone(), v["site"].clone()), (vec![7], json!("shop.example"), json!("www.shop.example")), "{v}");
    let reply = svc.get(&format!("{url}&format=csv")).await;
    assert_eq!(reply.text().lines().skip(1).map(|l| l.split(',').take(2).collect::<Vec<_>>().join(",")).collect::<Vec<_>>(), ["2026-11-01T23:59:00Z,7"], "{}", reply.text());
    // The site itself, and a host of no registered site, name none.
    let v = svc.get("/v1/sites/shop.example/rates?from=2026-11-01T23:59:00Z&to=2026-11-02T00:01:00Z&step=1m").await.json();
    assert_eq!((requests(&v), v["registered_site"].clone()), (vec![60, 60], Value::Null), "{v}");
    let v = svc.get("/v1/sites/api.blog.example/rates?from=2026-11-01T23:59:00Z&to=2026-11-02T00:01:00Z").await.json();
    assert_eq!((requests(&v), v["registered_site"].clone()), (vec![], Value::Null), "{v}");
    svc.stop().await;
}

#[tokio::test]
async fn site_rates_series() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path());
    let svc = Service::start(dir.path()).await;

    let reply = svc.get("/v1/sites/shop.example/rates?from=2026-11-01T23:59:00Z&to=2026-11-02T00:01:00Z").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let v = reply.json();
    assert_eq!(v["site"], "shop.example");
    assert_eq!(v["step"], "10s");
    let points = v["points"].as_array().unwrap();
    assert_eq!(points.len(), 3);
    assert_eq!(
        points[0],
        json!({"ts": "2026-11-01T23:59:00Z", "requests": 30, "rps": 3.0, "bytes": 3000, "status_2xx": 27,
               "status_3xx": 0, "status_4xx": 0, "status_5xx": 3, "cache_hits": 15, "blocked": 2,
               "distinct_clients": 4})
    );
    assert_eq!(points[1]["ts"], "2026-11-01T23:59:10Z");
    assert_eq!(points[2]["ts"], "2026-11-02T00:00:00Z");
    assert_eq!(points[2]["requests"], 60);

    let v =
        svc.get("/v1/sites/shop.example/rates?from=2026-11-01T23:59:00Z&to=2026-11-02T00:01:00Z&step=1m").await.json();
    let points = v["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    assert_eq!(points[0]["requests"], 60);
    assert!(approx(&points[0]["rps"], 1.0));

    let reply = svc
        .get("/v1/sites/shop.example/rates?from=2026-11-01T23:59:00Z&to=2026-11-02T00:01:00Z&step=1m&format=csv")
        .await;
    assert_eq!(
        reply.text(),
        "ts,requests,rps,bytes,status_2xx,status_3xx,status_4xx,status_5xx,cache_hits,blocked,distinct_clients\n\
         2026-11-01T23:59:00Z,60,1,6000,57,0,0,3,30,3,5\n\
         2026-11-02T00:00:00Z,60,1,6000,54,0,0,6,30,1,8\n"
    );

    // Steps on the epoch's grid that the range covers in part: the rate is over the covered part
    // (23:59:10–00:00:20 with 1 m steps: 50 s of the first, 20 s of the second).
    let v = svc.get("/v1/sites/shop.example/rates?from=2026-11-01T23:59:10Z&to=2026-11-02T00:00:20Z&step=1m").await.json();
    let points = v["points"].as_array().unwrap();
    assert_eq!(points.len(), 2, "{v}");
    assert_eq!((points[0]["ts"].as_str(), points[0]["requests"].as_u64()), (Some("2026-11-01T23:59:00Z"), Some(30)), "{v}");
    assert!(approx(&points[0]["rps"], 30.0 / 50.0), "{v}");
    assert_eq!(points[1]["requests"].as_u64(), Some(60), "{v}");
    assert!(approx(&points[1]["rps"], 60.0 / 20.0), "{v}");

    // A site name that would break naive SQL quoting is no site name.
    let reply = svc.get("/v1/sites/x'%20OR%20'1'='1/rates?from=2026-11-01T23:00:00Z&to=2026-11-02T01:00:00Z").await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    // Site names are matched as stored: lower case, without a trailing dot.
    let range = "from=2026-11-01T23:59:00Z&to=2026-11-02T00:01:00Z";
    let lower = svc.get(&format!("/v1/sites/shop.example/rates?{range}")).await.json();
    assert_eq!(svc.get(&format!("/v1/sites/Shop.EXAMPLE./rates?{range}")).await.json(), lower);
    svc.stop().await;

    // Regression: sites the events were counted under, but that are no host names the registry
    // takes (`*.wild.example`, `a..b.example`, a label of 64 characters), were refused with 400.
    let long = format!("{}.example", "l".repeat(64));
    let odd = ["*.wild.example", "a..b.example", "-x.example", long.as_str()];
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<(i64, &str, u64, u64, u64)> = odd.iter().map(|s| (at(12, 0, 0), *s, 7, 0, 1)).collect();
    write_rates(dir.path(), "2026-11-01", "odd", &rows);
    let svc = Service::start(dir.path()).await;
    for site in odd {
        let reply = svc.get(&format!("/v1/sites/{}/rates?from=2026-11-01T12:00:00Z&to=2026-11-01T12:01:00Z", site.replace('*', "%2A"))).await;
        assert_eq!(reply.status, 200, "{site}: {}", reply.text());
        assert_eq!(reply.json()["points"][0]["requests"], 7, "{site}");
    }
    svc.stop().await;
}

/// Regression: the newest step of a range reaching the present was divided by seconds whose
/// windows were still open (no rows yet): its rate dropped falsely at the dashboard's right edge.
#[tokio::test]
async fn the_newest_step_of_a_live_range_is_a_rate_over_its_closed_windows() {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    // Closed windows of the last 5 minutes up to 30 s ago, 70 requests each (7 per second).
    let closed_until = (now - 30).div_euclid(10) * 10;
    let rows: Vec<(i64, &str, u64, u64, u64)> = (1..=30).map(|i| (closed_until - i * 10, "live.example", 70, 0, 1)).collect();
    let dir = tempfile::tempdir().unwrap();
    let day = |t: i64| chrono::DateTime::from_timestamp(t, 0).unwrap().format("%Y-%m-%d").to_string();
    let mut dates: Vec<String> = rows.iter().map(|r| day(r.0)).collect();
    dates.dedup();
    for (i, date) in dates.iter().enumerate() {
        let in_day: Vec<_> = rows.iter().copied().filter(|r| day(r.0) == *date).collect();
        write_rates(dir.path(), date, &format!("live{i}"), &in_day);
    }
    let svc = Service::start(dir.path()).await;
    let v = svc.get("/v1/sites/live.example/rates?step=1m").await.json();
    let points = v["points"].as_array().unwrap();
    let newest = points.last().unwrap();
    assert!(approx(&newest["rps"], 7.0), "{v}");
    svc.stop().await;
}

#[tokio::test]
async fn bad_parameters_are_400_with_json_error() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path());
    let svc = Service::start(dir.path()).await;

    for path in [
        format!("/v1/traffic-share?{RANGE}&step=30s"),
        format!("/v1/traffic-share?{RANGE}&step=90s"),
        format!("/v1/traffic-share?{RANGE}&step=fast"),
        format!("/v1/traffic-share?{RANGE}&by=planet"),
        format!("/v1/traffic-share?{RANGE}&top=0"),
        format!("/v1/traffic-share?{RANGE}&top=ten"),
        format!("/v1/traffic-share?{RANGE}&format=xml"),
        format!("/v1/traffic-share?{RANGE}&by=entity&min_confidence=2"),
        // Only entities' attributions have a confidence (it was ignored for tags, unseen).
        format!("/v1/traffic-share?{RANGE}&by=tag&min_confidence=0.9"),
        format!("/v1/traffic-share?{RANGE}&min_confidence=0.9"),
        "/v1/traffic-share?from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z".to_owned(),
        "/v1/traffic-share?from=yesterday".to_owned(),
        "/v1/traffic-share?from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z&step=1m".to_owned(),
        format!("/v1/sites/shop.example/rates?{RANGE}&step=5s"),
        format!("/v1/sites/shop.example/rates?{RANGE}&step=15s"),
        // Misspelled or misplaced parameters are refused, not ignored for a default.
        format!("/v1/traffic-share?{RANGE}&stpe=1h"),
        format!("/v1/sites/shop.example/rates?{RANGE}&by=site&top=3"),
        format!("/v1/incidents?{RANGE}&sites=shop.example"),
        format!("/v1/incidents?{RANGE}&min_confidence=0.5"),
        "/v1/incidents/shop.example-1793491200?site=shop.example".to_owned(),
        format!("/v1/incidents?{RANGE}&site=bad%20site"),
        // Empty names are refused like every other empty value (they were taken as left out).
        format!("/v1/incidents?{RANGE}&site="),
        format!("/v1/incidents?{RANGE}&entity="),
        format!("/v1/incidents?{RANGE}&vector="),
        format!("/v1/reports/entities/Acme?{RANGE}&stpe=1h"),
        // Steps whose microseconds overflow (the service panicked, the client got no answer).
        format!("/v1/traffic-share?{RANGE}&step=99999999999999d"),
        format!("/v1/traffic-share?{RANGE}&step=9223372036854775800"),
        format!("/v1/sites/shop.example/rates?{RANGE}&step=99999999999999d"),
        format!("/v1/reports/entities/Acme?{RANGE}&step=99999999999999d"),
    ] {
        let reply = svc.get(&path).await;
        assert_eq!(reply.status, 400, "{path}: {}", reply.text());
        assert_eq!(reply.header("content-type"), Some("application/json"), "{path}");
        assert!(reply.json()["error"].as_str().is_some_and(|e| !e.is_empty()), "{path}");
    }

    assert_eq!(svc.get("/v1/nothing-here").await.status, 404);
    let health = svc.get("/healthz").await;
    assert_eq!((health.status, health.text()), (200, "ok"));
    assert_eq!(svc.get("/readyz").await.status, 200);
    // Regression: /readyz said ready while the backend could not answer. The lake's directory
    // gone (an unmounted disk): not ready, and why; back: ready again.
    let moved = dir.path().with_extension("moved");
    std::fs::rename(dir.path(), &moved).unwrap();
    let reply = svc.get("/readyz").await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert!(reply.text().contains("lake") && reply.text().contains("not readable"), "{}", reply.text());
    // Plain text, as documented for the probes (the JSON errors are /v1's).
    assert!(reply.header("content-type").is_some_and(|t| t.starts_with("text/plain")), "{:?}", reply.header("content-type"));
    // The API and SQL say so too, instead of answering with no data.
    for path in [format!("/v1/traffic-share?{RANGE}"), "/v1/incidents".to_owned()] {
        let reply = svc.get(&path).await;
        assert_eq!(reply.status, 503, "{path}: {}", reply.text());
        assert!(reply.json()["error"].as_str().is_some_and(|e| e.contains("no lake at")), "{path}: {}", reply.text());
    }
    assert_eq!(svc.sql("SELECT count(*) FROM traffic_1m", "application/json").await.status, 503);
    // A statement that reads no edgelens table (a client's health check) still answers.
    assert_eq!(svc.sql("SELECT 1 AS one", "application/json").await.status, 200);
    std::fs::rename(&moved, dir.path()).unwrap();
    assert_eq!(svc.get("/readyz").await.status, 200);
    let page = svc.get("/").await;
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    assert!(page.text().contains("/v1/traffic-share"));

    svc.stop().await;
}

#[tokio::test]
async fn sql_endpoint_formats_and_read_only_guard() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path());
    let svc = Service::start(dir.path()).await;
    let query = "SELECT site, SUM(requests) AS requests, MIN(ts) AS first FROM traffic_1m GROUP BY site ORDER BY site";

    // Time spans are ordered by their lengths, as PostgreSQL orders them (DataFusion ordered
    // intervals field by field: a difference of days was less than `interval '1 day'`).
    let all = svc.sql("SELECT COUNT(*) AS n FROM traffic_1m", "application/json").await.json();
    for sql in [
        "SELECT COUNT(*) AS n FROM traffic_1m WHERE now() - ts > interval '1 day'",
        "SELECT COUNT(*) AS n FROM traffic_1m WHERE ts < now() - interval '1 day'",
        "SELECT COUNT(*) AS n FROM traffic_1m WHERE interval '1 day' = interval '24 hours' AND interval '1 mon' > interval '29 days'",
        "SELECT COUNT(*) AS n FROM traffic_1m WHERE now() - ts BETWEEN interval '1 hour' AND interval '100 years'",
    ] {
        let reply = svc.sql(sql, "application/json").await;
        assert_eq!(reply.json(), all, "{sql}: {}", reply.text());
    }

    // Content negotiation by q-value; a header naming no format of ours is 406, not JSON.
    let reply = svc.sql(query, "application/json;q=0.5, text/csv").await;
    assert!(reply.text().starts_with("site,requests,first\n"), "{}", reply.text());
    let reply = svc.sql(query, "application/vnd.apache.arrow.file").await;
    assert_eq!(reply.status, 406, "{}", reply.text());
    assert!(reply.text().contains("application/vnd.apache.arrow.stream"), "{}", reply.text());

    let reply = svc.sql(query, "application/json").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!([
            {"site": "blog.example", "requests": 110, "first": "2026-11-01T23:58:00Z"},
            {"site": "news.example", "requests": 35, "first": "2026-11-01T23:59:00Z"},
            {"site": "shop.example", "requests": 180, "first": "2026-11-01T23:58:00Z"},
            {"site": "tiny.example", "requests": 10, "first": "2026-11-01T23:59:00Z"},
        ])
    );

    let reply = svc.sql(query, "text/csv").await;
    assert!(reply.header("content-type").unwrap().starts_with("text/csv"));
    assert_eq!(
        reply.text(),
        "site,requests,first\nblog.example,110,2026-11-01T23:58:00Z\nnews.example,35,2026-11-01T23:59:00Z\n\
         shop.example,180,2026-11-01T23:58:00Z\ntiny.example,10,2026-11-01T23:59:00Z\n"
    );

    // JSON body, no Accept header: JSON rows; partition column `date` is queryable.
    let body = json!({"sql": "SELECT date, COUNT(*) AS n FROM traffic_1m GROUP BY date ORDER BY date"}).to_string();
    let reply = svc.request("POST", "/v1/sql", &[("Content-Type", "application/json")], body.as_bytes()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json(), json!([{"date": "2026-11-01", "n": 6}, {"date": "2026-11-02", "n": 4}]));

    // Arrow IPC stream.
    let reply = svc.sql("SELECT site FROM traffic_1m WHERE requests > 50", "application/vnd.apache.arrow.stream").await;
    assert_eq!(reply.header("content-type"), Some("application/vnd.apache.arrow.stream"));
    let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(reply.body), None).unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 2);

    // SHOW TABLES lists the lake's tables.
    let reply = svc.sql("SHOW TABLES", "application/json").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.text().contains("site_rates_10s"));

    for refused in [
        "DROP TABLE traffic_1m",
        "INSERT INTO traffic_1m SELECT * FROM traffic_1m",
        "COPY traffic_1m TO '/tmp/edgelens-copy-test.parquet'",
        "CREATE EXTERNAL TABLE etc STORED AS CSV LOCATION '/etc/'",
        "CREATE TABLE t AS SELECT 1",
        "SELECT 1; SELECT 2",
        "SELECT 1; DROP TABLE traffic_1m",
        "SET datafusion.execution.batch_size = 1",
        "SELECT * FROM no_such_table",
        "SELEC 1",
        "",
    ] {
        let reply = svc.sql(refused, "application/json").await;
        assert_eq!(reply.status, 400, "{refused}: {}", reply.text());
        assert!(reply.json()["error"].is_string(), "{refused}");
    }
    // The table is still there.
    assert_eq!(svc.sql("SELECT COUNT(*) AS n FROM traffic_1m", "application/json").await.json(), json!([{"n": 10}]));

    svc.stop().await;
}

#[tokio::test]
async fn files_added_after_open_are_seen() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing at all yet: no answer, but why (regression: every table read as empty, so a
    // mistyped data_dir answered 200 with no data while /readyz said 503).
    let lake = Lake::open(dir.path().join("lake")).unwrap();
    match lake.sql("SELECT COUNT(*) FROM traffic_1m").await {
        Err(e @ edgelens_query::QueryError::NoSchema(_)) => assert!(e.to_string().contains("no lake at") && e.to_string().contains("lake"), "{e}"),
        other => panic!("{other:?}"),
    }
    // The directory, nothing in it yet: every table reads as empty.
    std::fs::create_dir(dir.path().join("lake")).unwrap();
    let count = |lake: Lake| async move {
        let batches = lake.sql("SELECT COUNT(*) AS n FROM traffic_1m WHERE date >= '2026-11-01'").await.unwrap();
        edgelens_query::format::to_json(&batches).unwrap()
    };
    assert_eq!(count(lake.clone()).await, r#"[{"n":0}]"#);
    for table in edgelens_schemas::ALL_TABLES {
        let batches = lake.sql(&format!("SELECT * FROM {}", table.name)).await.unwrap();
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 0, "{}", table.name);
    }

    // The table directory and a first file appear.
    write_traffic(&dir.path().join("lake"), "2026-11-01", "a", &[(at(10, 0, 0), "a.example", "US", "FRA", 1)]);
    assert_eq!(count(lake.clone()).await, r#"[{"n":1}]"#);

    // More files, in the same and in a new partition.
    write_traffic(&dir.path().join("lake"), "2026-11-01", "b", &[(at(10, 1, 0), "a.example", "US", "FRA", 1)]);
    write_traffic(&dir.path().join("lake"), "2026-11-02", "a", &[(at(30, 0, 0), "a.example", "US", "FRA", 1)]);
    assert_eq!(count(lake.clone()).await, r#"[{"n":3}]"#);

    // Through the API too.
    let svc = Service::start(&dir.path().join("lake")).await;
    let v = svc.get("/v1/traffic-share?from=2026-11-01T00:00:00Z&to=2026-11-03T00:00:00Z&step=1d").await.json();
    assert_eq!(v["total"], 3);
    write_traffic(&dir.path().join("lake"), "2026-11-02", "b", &[(at(30, 5, 0), "b.example", "US", "FRA", 2)]);
    let v = svc.get("/v1/traffic-share?from=2026-11-01T00:00:00Z&to=2026-11-03T00:00:00Z&step=1d").await.json();
    assert_eq!(v["total"], 5);
    assert_eq!(v["series"][1]["key"], "b.example");
    svc.stop().await;
}

#[tokio::test]
async fn empty_lake_answers_empty_series() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::start(dir.path()).await;
    let v = svc.get(&format!("/v1/traffic-share?{RANGE}")).await.json();
    assert_eq!(v["total"], 0);
    assert_eq!(v["series"], json!([]));
    let v = svc.get(&format!("/v1/sites/a.example/rates?{RANGE}")).await.json();
    assert_eq!(v["points"], json!([]));
    let reply = svc.get(&format!("/v1/traffic-share?{RANGE}&format=csv")).await;
    assert_eq!(reply.text(), "ts,key,requests,share,folded\n");
    svc.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_by_endpoint_status_and_error_kind() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path());
    let svc = Service::start(dir.path()).await;
    assert_eq!(svc.get(&format!("/v1/traffic-share?{RANGE}&step=2m")).await.status, 200);
    assert_eq!(svc.get(&format!("/v1/traffic-share?{RANGE}&step=7s")).await.status, 400);
    assert_eq!(svc.sql("DROP TABLE traffic_1m", "application/json").await.status, 400);
    assert_eq!(svc.sql("SELECT 1 AS one", "application/json").await.status, 200);
    assert_eq!(svc.get("/v1/incidents/none").await.status, 404);
    let reply = svc.get("/metrics").await;
    assert_eq!(reply.status, 200);
    assert!(reply.header("content-type").unwrap().starts_with("text/plain; version=0.0.4"));
    let text = reply.text();
    for line in [
        "edgelens_query_requests_total{endpoint=\"traffic_share\",status=\"2xx\"} 1",
        "edgelens_query_requests_total{endpoint=\"traffic_share\",status=\"4xx\"} 1",
        "edgelens_query_requests_total{endpoint=\"sql\",status=\"2xx\"} 1",
        "edgelens_query_requests_total{endpoint=\"sql\",status=\"4xx\"} 1",
        "edgelens_query_requests_total{endpoint=\"incident_report\",status=\"4xx\"} 1",
        "edgelens_query_request_duration_seconds_count{endpoint=\"sql\"} 2",
        "edgelens_query_sql_refused_total 1",
        "edgelens_query_limit_exceeded_total 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    // No per-site labels.
    assert!(!text.contains("shop.example"));
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_limits_bound_bodies_concurrency_and_time() {
    use edgelens_query::api::HttpLimits;
    let dir = tempfile::tempdir().unwrap();
    write_fixture(dir.path());
    let limits = HttpLimits::new(1024, 1, std::time::Duration::from_secs(1));
    let state = AppState::new(Lake::open(dir.path()).unwrap()).with_limits(limits);
    let svc = Arc::new(Service::start_with(dir.path(), state).await);
    let big = format!("SELECT 1 AS one -- {}", "x".repeat(2000));
    // Regression: the framework's own errors were plain text (413) or empty (405), not the JSON
    // error every other answer is.
    let too_big = svc.sql(&big, "application/json").await;
    assert_eq!((too_big.status, too_big.header("content-type")), (413, Some("application/json")));
    assert!(too_big.json()["error"].as_str().unwrap().contains("length limit exceeded"), "{}", too_big.text());
    let wrong_method = svc.get("/v1/sql").await;
    assert_eq!((wrong_method.status, wrong_method.header("allow")), (405, Some("POST")));
    assert_eq!(wrong_method.json()["error"], "method not allowed");
    // A query running longer than the request timeout: 503, while it holds the only slot the
    // next request gets 503 at once.
    let slow = "SELECT SUM(a.value * b.value) AS n FROM range(300000) a CROSS JOIN range(300000) b";
    let busy = tokio::spawn({
        let svc = Arc::clone(&svc);
        async move { svc.sql(slow, "application/json").await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let refused = svc.sql("SELECT 1 AS one", "application/json").await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(svc.get("/healthz").await.status, 200, "probes are exempt");
    let timed_out = busy.await.unwrap();
    assert_eq!(timed_out.status, 503, "{}", timed_out.text());
    assert!(timed_out.text().contains("no answer within 1 s"));
    // The slot is free again once the cancelled query's work has stopped.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let r = svc.sql("SELECT 1 AS one", "application/json").await;
        if r.status == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still {} after the timeout: {}", r.status, r.text());
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
