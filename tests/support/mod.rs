//! Helpers shared by the end-to-end tests: run the real binary, read the lake with the parquet
//! crate (not with edgelens' query code), and recount raw NDJSON independently with serde_json.

#![allow(dead_code)]

pub mod answers;
pub mod openapi;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{TimestampMicrosecondType, UInt32Type, UInt64Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// The checkout being tested: `CARGO_MANIFEST_DIR` as set at run time by cargo/nextest (a shared
/// target directory may hold a test binary first compiled in another clone).
pub fn repo_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

pub fn edgelens() -> Command {
    Command::new(env!("CARGO_BIN_EXE_edgelens"))
}

/// Run and require success; returns stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out: Output = cmd.output().expect("spawn edgelens");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

pub fn generate(dir: &Path, scenario: &str, seed: u64, duration: &str, rps: u32, sites: u32) -> PathBuf {
    let out = dir.join(format!("{scenario}-{seed}.ndjson"));
    run_ok(edgelens().args(["generate", "--scenario", scenario, "--seed", &seed.to_string(), "--duration", duration]).args([
        "--rps",
        &rps.to_string(),
        "--sites",
        &sites.to_string(),
        "--out",
        out.to_str().unwrap(),
    ]));
    out
}

/// A copy of the generated NDJSON file `path` whose events carry no `RayID` (as a Logpush job
/// without that field pushes them), beside it.
#[allow(dead_code)]
pub fn without_ray_ids(path: &Path) -> PathBuf {
    let out = path.with_extension("no-rayid.ndjson");
    let mut text = String::new();
    for line in std::fs::read_to_string(path).unwrap().lines().filter(|l| !l.trim().is_empty()) {
        let mut v: serde_json::Value = serde_json::from_str(line).expect("generated lines are valid JSON");
        v.as_object_mut().expect("an event is an object").remove("RayID");
        text.push_str(&v.to_string());
        text.push('\n');
    }
    std::fs::write(&out, text).unwrap();
    out
}

/// Every Parquet file of a lake table.
pub fn table_files(lake: &Path, table: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(dates) = std::fs::read_dir(lake.join(table)) else { return files };
    for d in dates.flatten() {
        assert!(d.file_name().to_string_lossy().starts_with("date="), "hive partition dirs only: {:?}", d.path());
        for f in std::fs::read_dir(d.path()).unwrap().flatten() {
            files.push(f.path());
        }
    }
    files.sort();
    files
}

pub fn read_table(lake: &Path, table: &str) -> Vec<RecordBatch> {
    table_files(lake, table)
        .into_iter()
        .flat_map(|p| {
            ParquetRecordBatchReaderBuilder::try_new(File::open(&p).unwrap())
                .unwrap()
                .build()
                .unwrap()
                .map(|b| b.unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A cell rendered as text (sketch bytes left out: compared through their estimate column).
fn cell(col: &dyn Array, i: usize) -> String {
    if col.is_null(i) {
        return "NULL".into();
    }
    use arrow::datatypes::DataType as D;
    match col.data_type() {
        D::Utf8 => col.as_string::<i32>().value(i).to_owned(),
        D::UInt64 => col.as_primitive::<UInt64Type>().value(i).to_string(),
        D::UInt32 => col.as_primitive::<UInt32Type>().value(i).to_string(),
        D::Timestamp(_, _) => col.as_primitive::<TimestampMicrosecondType>().value(i).to_string(),
        D::Binary => "<sketch>".into(),
        other => panic!("unexpected column type {other}"),
    }
}

/// All rows of a table as sorted text lines (columns in schema order, `|`-separated).
pub fn table_rows(lake: &Path, table: &str) -> Vec<String> {
    let mut rows = Vec::new();
    for b in read_table(lake, table) {
        for i in 0..b.num_rows() {
            rows.push(b.columns().iter().map(|c| cell(c.as_ref(), i)).collect::<Vec<_>>().join("|"));
        }
    }
    rows.sort();
    rows
}

/// Sum measure columns per key of a rollup table: key columns → summed measures.
pub fn summed(lake: &Path, table: &str, keys: &[&str], measures: &[&str]) -> BTreeMap<Vec<String>, Vec<u64>> {
    let mut out: BTreeMap<Vec<String>, Vec<u64>> = BTreeMap::new();
    for b in read_table(lake, table) {
        let kc: Vec<_> = keys.iter().map(|k| b.column_by_name(k).unwrap_or_else(|| panic!("{table}.{k}"))).collect();
        let mc: Vec<_> = measures.iter().map(|m| b.column_by_name(m).unwrap().as_primitive::<UInt64Type>()).collect();
        for i in 0..b.num_rows() {
            let key = kc.iter().map(|c| cell(c.as_ref(), i)).collect();
            let e = out.entry(key).or_insert_with(|| vec![0; measures.len()]);
            for (j, m) in mc.iter().enumerate() {
                e[j] += m.value(i);
            }
        }
    }
    out
}

/// Independent recount of a generated file, following the documented rules (DESIGN.md §3 and
/// schemas::event docs) with serde_json, not edgelens' parser.
#[derive(Debug, Default)]
pub struct Recount {
    pub lines: u64,
    pub valid: u64,
    /// (10 s window start µs, site) → [requests, bytes, 2xx, 3xx, 4xx, 5xx, cache_hits, blocked]
    pub rates: BTreeMap<Vec<String>, Vec<u64>>,
    /// (minute µs, site, country, colo, status_class, cache_status) → [requests, bytes]
    pub traffic: BTreeMap<Vec<String>, Vec<u64>>,
    /// (minute µs, site, asn, country) → [requests, bytes]
    pub asn: BTreeMap<Vec<String>, Vec<u64>>,
}

pub fn recount(path: &Path) -> Recount {
    use std::io::BufRead;
    let mut r = Recount::default();
    let f = std::io::BufReader::new(File::open(path).unwrap());
    for line in f.split(b'\n') {
        let line = line.unwrap();
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        r.lines += 1;
        let v: serde_json::Value = serde_json::from_slice(&line).expect("generated lines are valid JSON");
        let ts_ns = v["EdgeStartTimestamp"].as_i64().expect("generator writes unix ns");
        let site = v["ZoneName"].as_str().unwrap().to_lowercase();
        let status = v["EdgeResponseStatus"].as_u64().unwrap();
        let bytes = v["EdgeResponseBytes"].as_u64().unwrap_or(0);
        let country = v["ClientCountry"].as_str().unwrap_or("").to_lowercase();
        let colo = v["EdgeColoCode"].as_str().unwrap_or("").to_uppercase();
        let cache = v["CacheCacheStatus"].as_str().unwrap_or("").to_owned();
        let asn = v["ClientASN"].as_u64().unwrap_or(0);
        let action = v["SecurityAction"].as_str().unwrap_or("");
        r.valid += 1;
        let us = ts_ns.div_euclid(1000);
        let w10 = us - us.rem_euclid(10_000_000);
        let m1 = us - us.rem_euclid(60_000_000);
        let class = status / 100;
        let e = r.rates.entry(vec![w10.to_string(), site.clone()]).or_insert_with(|| vec![0; 8]);
        e[0] += 1;
        e[1] += bytes;
        if (2..=5).contains(&class) {
            e[class as usize] += 1;
        }
        e[6] += u64::from(matches!(cache.as_str(), "hit" | "stale" | "updating" | "revalidated"));
        // Stopped at the edge: blocked, connection closed, challenge served or failed.
        e[7] += u64::from(matches!(
            action,
            "block" | "connectionClose" | "forceConnectionClose" | "challenge" | "jschallenge" | "managedChallenge" | "challengeFailed" | "jschallengeFailed" | "managedChallengeFailed"
        ));
        let t = r
            .traffic
            .entry(vec![m1.to_string(), site.clone(), country.clone(), colo, format!("{class}xx"), cache])
            .or_insert_with(|| vec![0; 2]);
        t[0] += 1;
        t[1] += bytes;
        let a = r.asn.entry(vec![m1.to_string(), site, asn.to_string(), country]).or_insert_with(|| vec![0; 2]);
        a[0] += 1;
        a[1] += bytes;
    }
    r
}

/// A port free now, never one this process was given before: the system may hand out a port it
/// just freed again, and two servers of one test were given the same one (the ClickHouse of a
/// local cluster found its port taken by the broker).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// An `edgelens ingest` receiver process on a free port (killed on drop).
pub struct Receiver(pub Child, pub u16);

impl Receiver {
    pub fn start(brokers: &str, envs: &[(&str, &str)]) -> Self {
        let port = free_port();
        let child = edgelens()
            .args(["ingest", "--brokers", brokers, "--listen", &format!("127.0.0.1:{port}")])
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "receiver did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Receiver(child, port)
    }

    /// POST a gzip body; returns (status, Retry-After, body).
    pub fn post_gzip(&self, ndjson: &[u8]) -> (u16, Option<String>, String) {
        post_logpush_gzip(self.1, ndjson)
    }
}

/// GET `path` of a listener on 127.0.0.1:`port`; (status, body).
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, resp.split("\r\n\r\n").nth(1).unwrap_or("").to_owned())
}

/// POST a gzip NDJSON body to the Logpush receiver on 127.0.0.1:`port`; returns (status,
/// Retry-After, body).
pub fn post_logpush_gzip(port: u16, ndjson: &[u8]) -> (u16, Option<String>, String) {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(ndjson).unwrap();
    let body = gz.finish().unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(s, "POST /v1/logpush HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).unwrap();
    s.write_all(&body).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.split(' ').nth(1).unwrap().parse().unwrap();
    let retry = resp.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("retry-after: ").map(str::to_owned));
    (status, retry, resp.split("\r\n\r\n").nth(1).unwrap_or("").to_owned())
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}


#[path = "../../aggregate/tests/ch_support/mod.rs"]
mod ch_support;

/// The ClickHouse server of the tests (`$EDGELENS_TEST_CLICKHOUSE`); fails, never skips, without it.
pub fn clickhouse_url() -> String {
    ch_support::server_url()
}

/// A database of its own on a ClickHouse server, dropped at the end of the test.
pub struct ChDatabase {
    pub url: String,
    pub name: String,
}

impl ChDatabase {
    pub fn new(url: &str, prefix: &str) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        ChDatabase { url: url.to_owned(), name: format!("{prefix}_{}_{nanos}", std::process::id()) }
    }

    pub fn config(&self) -> edgelens_schemas::clickhouse::ClickHouseConfig {
        edgelens_schemas::clickhouse::ClickHouseConfig { database: self.name.clone(), ..edgelens_schemas::clickhouse::ClickHouseConfig::for_url(&self.url) }
    }

    /// Environment variables pointing a role at this database.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![("EDGELENS__CLICKHOUSE__URL".into(), self.url.clone()), ("EDGELENS__CLICKHOUSE__DATABASE".into(), self.name.clone())]
    }

    /// Every row of a contract table, in the lake's Arrow schema.
    pub fn table(&self, table: &edgelens_schemas::TableDef) -> Vec<RecordBatch> {
        let backend = edgelens_query::clickhouse::ClickHouseBackend::new(&self.config());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(backend.table_batches(table)).unwrap_or_else(|e| panic!("reading {} from ClickHouse {}: {e}", table.name, self.url))
    }
}

impl Drop for ChDatabase {
    fn drop(&mut self) {
        let _ = Command::new("curl")
            .args(["-fsS", "--max-time", "20", &format!("{}/", self.url), "--data-binary", &format!("DROP DATABASE IF EXISTS `{}`", self.name)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Run `deploy/dev/<script> <cmd>` with `env`; panics with its stderr and `hint` when it fails.
pub fn dev_script(script: &str, cmd: &str, env: &[(&str, String)], hint: &str) {
    let path = repo_root().join("deploy/dev").join(script);
    let out = Command::new("bash").arg(&path).arg(cmd).envs(env.iter().map(|(k, v)| (k, v))).output().unwrap();
    assert!(out.status.success(), "{} {cmd} failed ({hint}):\n{}", path.display(), String::from_utf8_lossy(&out.stderr));
}

/// A ClickHouse server of one test's own (free ports, data in a temp dir), started and stopped with
/// `deploy/dev/clickhouse.sh`; `cluster` = `EDGELENS_CH_CLUSTER` (see that script).
pub struct PrivateClickHouse {
    pub dir: tempfile::TempDir,
    pub http_port: u16,
    pub tcp_port: u16,
    pub cluster: String,
}

impl PrivateClickHouse {
    pub fn new(cluster: &str) -> Self {
        PrivateClickHouse { dir: tempfile::tempdir().unwrap(), http_port: free_port(), tcp_port: free_port(), cluster: cluster.to_owned() }
    }

    pub fn start_new() -> Self {
        let ch = Self::new("");
        ch.script("start");
        ch
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    pub fn script(&self, cmd: &str) {
        self.script_with(cmd, &[]);
    }

    /// [`Self::script`] with more environment (e.g. `EDGELENS_CH_TIMEZONE`).
    pub fn script_with(&self, cmd: &str, more: &[(&str, String)]) {
        let mut env = vec![
            ("EDGELENS_DEV_DIR", self.dir.path().display().to_string()),
            ("EDGELENS_CH_HTTP_PORT", self.http_port.to_string()),
            ("EDGELENS_CH_TCP_PORT", self.tcp_port.to_string()),
            ("EDGELENS_CH_CLUSTER", self.cluster.clone()),
        ];
        env.extend(more.iter().cloned());
        dev_script("clickhouse.sh", cmd, &env, "is clickhouse-server installed? deploy/dev/install.sh");
    }
}

impl Drop for PrivateClickHouse {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| self.script("stop"));
    }
}

/// Resident memory of a process in MiB (Linux `/proc`).
pub fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok()).map_or(0, |kb| kb / 1024)
}

/// An `edgelens query` service on a free port (killed on drop), spoken to with curl.
pub struct QueryService(pub Option<Child>, pub u16);

impl QueryService {
    /// A service started by someone else, on 127.0.0.1:`port`.
    pub fn at(port: u16) -> Self {
        QueryService(None, port)
    }

    pub fn start(args: &[&str], envs: &[(String, String)]) -> Self {
        let svc = Self::spawn(args, envs);
        svc.wait_ready();
        svc
    }

    /// [`Self::start`] without waiting for `/readyz`: once `/healthz` answers.
    pub fn spawn(args: &[&str], envs: &[(String, String)]) -> Self {
        let port = free_port();
        let child = edgelens()
            .args(["query", "--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let svc = QueryService(Some(child), port);
        let deadline = Instant::now() + Duration::from_secs(30);
        while svc.get("/healthz").0 != 200 {
            assert!(Instant::now() < deadline, "query service on {port} does not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
        svc
    }

    /// Wait (up to 30 s) until `/readyz` answers 200.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.get("/readyz").0 != 200 {
            assert!(Instant::now() < deadline, "query service on {} not ready: {}", self.1, self.get("/readyz").1);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn curl(&self, extra: &[&str], path: &str) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "60", "-w", "\n%{http_code}"])
            .args(extra)
            .arg(format!("http://127.0.0.1:{}{path}", self.1))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }

    /// GET; (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        self.curl(&[], path)
    }

    /// POST /v1/sql with `accept`; (status, body).
    pub fn sql(&self, sql: &str, accept: &str) -> (u16, String) {
        self.curl(&["-H", &format!("Accept: {accept}"), "-H", "Content-Type: text/plain", "--data-binary", sql], "/v1/sql")
    }

    /// Any request with extra `headers` and an optional body; (status, content type, body).
    pub fn fetch(&self, method: &str, path: &str, headers: &[&str], body: Option<&str>) -> (u16, String, String) {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "60", "-X", method, "-w", "\n%{http_code} %{content_type}"]);
        for h in headers {
            cmd.args(["-H", h]);
        }
        if let Some(b) = body {
            cmd.args(["--data-binary", b]);
        }
        let out = cmd.arg(format!("http://127.0.0.1:{}{path}", self.1)).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, tail) = text.rsplit_once('\n').unwrap_or(("", "0 "));
        let (code, ct) = tail.split_once(' ').unwrap_or((tail, ""));
        (code.trim().parse().unwrap_or(0), ct.trim().to_owned(), body.to_owned())
    }

    /// A request with an optional body; (status, response headers, body).
    pub fn fetch_with_headers(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String, String) {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "60", "-i", "-X", method, "-w", "\n%{http_code}"]);
        if let Some(b) = body {
            cmd.args(["-H", "Content-Type: text/plain", "--data-binary", b]);
        }
        let out = cmd.arg(format!("http://127.0.0.1:{}{path}", self.1)).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (response, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        let (headers, body) = response.split_once("\r\n\r\n").unwrap_or((response, ""));
        (code.trim().parse().unwrap_or(0), headers.to_owned(), body.to_owned())
    }

    /// GET with `Authorization: Bearer <token>`; (status, body).
    pub fn get_as(&self, token: &str, path: &str) -> (u16, String) {
        self.curl(&["-H", &format!("Authorization: Bearer {token}")], path)
    }

    /// POST /v1/sql as JSON with a bearer token; (status, body).
    pub fn sql_as(&self, token: &str, sql: &str) -> (u16, String) {
        let auth = format!("Authorization: Bearer {token}");
        self.curl(&["-H", &auth, "-H", "Accept: application/json", "-H", "Content-Type: text/plain", "--data-binary", sql], "/v1/sql")
    }
}

impl Drop for QueryService {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The text of the log file at `path` once it contains `needle`, or as it is after `limit`.
pub fn log_containing(path: &Path, needle: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
