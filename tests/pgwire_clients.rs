//! End to end with real Postgres clients: `edgelens replay` writes a lake, `edgelens query` serves
//! it on free HTTP and Postgres ports, then the real `psql` (Debian postgresql-client) runs queries
//! and its describe commands, and `tests/pgwire_clients.py` drives psycopg 3 (extended protocol,
//! server-side parameters, text and binary results) and `tests/pgwire_sqlalchemy.py` SQLAlchemy
//! and pandas over psycopg2 and psycopg 3. Answers are compared with POST /v1/sql.
//! `edgelens demo --pg-listen` is checked to serve the same protocol.
//!
//! psql and the Python packages are required: `bash deploy/dev/install.sh` installs them.

mod support;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use edgelens_schemas::tables::{ALL_TABLES, TRAFFIC_1M};
use support::*;

const INSTALL_HINT: &str = "run `bash deploy/dev/install.sh` (installs Debian postgresql-client, psycopg, psycopg2, SQLAlchemy and pandas)";

fn require_psql() {
    let ok = Command::new("psql").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(ok, "psql is not installed: {INSTALL_HINT}");
}

fn require_psycopg() {
    let ok = Command::new("python3").args(["-c", "import psycopg, psycopg2, sqlalchemy, pandas"]).output().is_ok_and(|o| o.status.success());
    assert!(ok, "python3 with psycopg, psycopg2, sqlalchemy and pandas is not available: {INSTALL_HINT}");
}

/// A process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `psql` against 127.0.0.1:`port` with `args` (unaligned, no psqlrc); the output.
fn psql(port: u16, args: &[&str]) -> Output {
    Command::new("psql")
        .args(["-X", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", "edgelens", "-d", "edgelens"])
        .args(args)
        .env("PGPASSWORD", "any")
        .env("PGCONNECT_TIMEOUT", "10")
        // psql's default: asks for TLS, which edgelens refuses, then goes on in plain text.
        .env("PGSSLMODE", "prefer")
        .env_remove("PGSERVICE")
        .env_remove("PGOPTIONS")
        .output()
        .expect("run psql")
}

fn psql_ok(port: u16, args: &[&str]) -> String {
    let out = psql(port, args);
    assert!(
        out.status.success(),
        "psql {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn wait_ready(http_port: u16, child: &mut Child) {
    let svc = QueryService::at(http_port);
    let deadline = Instant::now() + Duration::from_secs(60);
    while svc.get("/readyz").0 != 200 {
        assert!(child.try_wait().unwrap().is_none(), "edgelens exited before it was ready");
        assert!(Instant::now() < deadline, "edgelens on {http_port} not ready");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn psql_and_psycopg_read_the_lake() {
    require_psql();
    require_psycopg();
    let tmp = tempfile::tempdir().unwrap();
    let raw = generate(tmp.path(), "mixed", 11, "3m", 300, 25);
    let lake = tmp.path().join("lake");
    run_ok(edgelens().args(["replay", "--data-dir"]).arg(&lake).arg(&raw));

    let (http_port, pg_port) = (free_port(), free_port());
    let mut child = edgelens()
        .args(["query", "--listen", &format!("127.0.0.1:{http_port}"), "--pg-listen", &format!("127.0.0.1:{pg_port}")])
        .arg("--data-dir")
        .arg(&lake)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(http_port, &mut child);
    let _service = Proc(child);
    let http = QueryService::at(http_port);

    // A query: the same rows as over HTTP (CSV without its header).
    let sql = "SELECT site, SUM(requests) AS requests, SUM(bytes) AS bytes FROM traffic_1m GROUP BY site ORDER BY requests DESC, site LIMIT 10";
    let (status, csv) = http.sql(sql, "text/csv");
    assert_eq!(status, 200, "{csv}");
    let want: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(want.len(), 10, "{csv}");
    let got = psql_ok(pg_port, &["-A", "-t", "-F", ",", "-c", sql]);
    assert_eq!(got.lines().collect::<Vec<_>>(), want);

    // With FETCH_COUNT psql reads the rows through a cursor, a few at a time: the same rows.
    let got = psql_ok(pg_port, &["-A", "-t", "-F", ",", "-v", "FETCH_COUNT=3", "-c", sql]);
    assert_eq!(got.lines().collect::<Vec<_>>(), want);

    // \dt lists every contract table.
    let dt = psql_ok(pg_port, &["-c", "\\dt"]);
    assert!(dt.contains("List of relations"), "{dt}");
    for table in ALL_TABLES {
        assert!(dt.lines().any(|l| l.contains(&format!(" {} ", table.name)) && l.contains("table")), "\\dt lacks {}:\n{dt}", table.name);
    }
    // \d traffic_1m describes its columns, including the lake's date partition.
    let d = psql_ok(pg_port, &["-c", "\\d traffic_1m"]);
    assert!(d.contains("Table \"public.traffic_1m\""), "{d}");
    let column_type = |name: &str| {
        d.lines()
            .find(|l| l.split('|').next().is_some_and(|c| c.trim() == name))
            .map(|l| l.split('|').nth(1).unwrap_or("").trim().to_owned())
            .unwrap_or_else(|| panic!("\\d lacks column {name}:\n{d}"))
    };
    assert_eq!(column_type("ts"), "timestamp with time zone");
    assert_eq!(column_type("site"), "text");
    assert_eq!(column_type("requests"), "bigint");
    assert_eq!(column_type("date"), "text");
    assert_eq!(d.lines().filter(|l| l.contains(" | ")).count(), TRAFFIC_1M.columns.len() + 2, "header + columns + date:\n{d}");
    // \d+ and \dt+ (descriptions from the schema registry) work too.
    let dtp = psql_ok(pg_port, &["-c", "\\dt+ traffic_1m"]);
    assert!(dtp.contains(TRAFFIC_1M.doc), "{dtp}");
    psql_ok(pg_port, &["-c", "\\d+ asn_1m"]);
    // An unknown relation is reported the way psql does for PostgreSQL.
    let out = psql(pg_port, &["-c", "\\d no_such_table"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Did not find any relation named \"no_such_table\""), "{out:?}");

    // Refused statements: a 42501 error, and the next command of the same session still runs.
    let out = psql(pg_port, &["-v", "VERBOSITY=verbose", "-c", "DROP TABLE traffic_1m", "-c", "SELECT 40 + 2 AS answer"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ERROR:  42501"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("42"), "{out:?}");
    let out = psql(pg_port, &["-v", "ON_ERROR_STOP=1", "-c", "COPY traffic_1m TO '/tmp/edgelens-psql-copy.csv'"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not allowed"), "{out:?}");
    assert!(!std::path::Path::new("/tmp/edgelens-psql-copy.csv").exists());
    // Session statements psql users type.
    let v = psql_ok(pg_port, &["-A", "-t", "-c", "SET application_name = 'psql-test'", "-c", "SHOW application_name", "-c", "SELECT version()"]);
    assert!(v.contains("psql-test") && v.contains("PostgreSQL 15.0 (edgelens"), "{v}");

    // psycopg 3: server-side parameters, binary results, refusals, catalog.
    let summary = python_client("tests/pgwire_clients.py", pg_port, http_port);
    assert_eq!(summary["tables"], ALL_TABLES.len(), "{summary}");
    assert!(summary["sites"].as_u64().unwrap() >= 3, "{summary}");

    // SQLAlchemy (psycopg2 and psycopg 3 dialects) and pandas: reflection, read_sql with list
    // parameters and in chunks, read_sql_table.
    let summary = python_client("tests/pgwire_sqlalchemy.py", pg_port, http_port);
    assert_eq!(summary["psycopg2"], summary["psycopg"], "{summary}");
    assert!(summary["psycopg2"].as_u64().unwrap() >= 3, "{summary}");
}

/// Run a Python client script against the service; its JSON summary line.
fn python_client(script: &str, pg_port: u16, http_port: u16) -> serde_json::Value {
    let out = Command::new("python3")
        .arg(repo_root().join(script))
        .args([pg_port.to_string(), http_port.to_string()])
        .env("PGSSLMODE", "prefer")
        .env_remove("PGOPTIONS")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn demo_serves_the_postgres_protocol() {
    require_psql();
    let tmp = tempfile::tempdir().unwrap();
    let (http_port, pg_port) = (free_port(), free_port());
    // Regression: a Postgres port in use was announced, then the demo failed; now it fails first.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port();
    let out = edgelens()
        .args(["demo", "--listen", &format!("127.0.0.1:{http_port}"), "--pg-listen", &format!("127.0.0.1:{busy_port}"), "--data-dir"])
        .arg(tmp.path().join("busy"))
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--pg-listen"), "{out:?}");
    assert!(out.stdout.is_empty() && !tmp.path().join("busy").exists(), "announced or wrote before failing: {out:?}");
    drop(busy);
    // Host names are taken as listen addresses (regression: only IP literals were).
    let mut child = edgelens()
        .args(["demo", "--rps", "200", "--sites", "20", "--listen", &format!("localhost:{http_port}")])
        .args(["--pg-listen", &format!("127.0.0.1:{pg_port}"), "--data-dir"])
        .arg(tmp.path().join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(http_port, &mut child);
    let _demo = Proc(child);
    // The demo's first windows close after a few seconds of live traffic.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let out = psql(pg_port, &["-A", "-t", "-c", "SELECT COUNT(*) FROM site_rates_10s"]);
        let n: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
        if out.status.success() && n > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no site_rates_10s rows over the demo's Postgres port: {out:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    // Regression: the demo's `/metrics` had the query service's counters only, none of its
    // pipeline's (events counted, rows written, dead letters).
    let (status, body) = http_get(http_port, "/metrics");
    assert_eq!(status, 200, "{body}");
    let sample = |prefix: &str| -> f64 {
        body.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit_once(' ')?.1.parse().ok()).unwrap_or_else(|| panic!("no {prefix} in:\n{body}"))
    };
    assert!(sample("edgelens_aggregate_events_counted_total ") > 0.0, "{body}");
    assert!(sample("edgelens_aggregate_rows_written_total{sink=\"lake\",table=\"site_rates_10s\"} ") > 0.0, "{body}");
    assert!(body.contains("edgelens_query_"), "the query service's own metrics: {body}");
}

/// Regression: with the default Postgres address (127.0.0.1:5433) taken, `edgelens demo` exited,
/// while `edgelens query` warns and serves without the listener, as documented. The demo now does
/// as the query service: it warns, leaves the Postgres line out of its banner, and serves.
#[test]
fn demo_runs_without_postgres_when_the_default_address_is_taken() {
    let tmp = tempfile::tempdir().unwrap();
    // Held for the test (if another process holds it, the address is taken all the same).
    let _held = std::net::TcpListener::bind("127.0.0.1:5433");
    let http_port = free_port();
    let (out, err) = (tmp.path().join("out"), tmp.path().join("err"));
    let mut child = edgelens()
        .args(["demo", "--rps", "50", "--sites", "5", "--listen", &format!("127.0.0.1:{http_port}"), "--data-dir"])
        .arg(tmp.path().join("data"))
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    wait_ready(http_port, &mut child);
    let _demo = Proc(child);
    let (stdout, stderr) = (std::fs::read_to_string(&out).unwrap(), std::fs::read_to_string(&err).unwrap());
    assert!(stdout.contains(&format!("http://127.0.0.1:{http_port}")), "{stdout}");
    assert!(!stdout.contains("Postgres wire protocol on"), "announced a Postgres listener it does not have:\n{stdout}");
    assert!(stderr.contains("Postgres wire protocol off") && stderr.contains("127.0.0.1:5433"), "no warning:\n{stderr}");
}

/// Regression: a lake write failing in the demo (a full disk) ended its pipeline silently: the
/// demo served on, ready, its data no longer growing, and said nothing until Ctrl-C. It now stops
/// at once, naming the error, with a non-zero status, as `aggregate` and `replay` do.
#[test]
fn the_demo_stops_when_its_lake_cannot_be_written() {
    let tmp = tempfile::tempdir().unwrap();
    let http_port = free_port();
    let data = tmp.path().join("data");
    let err = tmp.path().join("err");
    let mut child = edgelens()
        .args(["demo", "--rps", "50", "--sites", "5", "--pg-listen", "off", "--listen", &format!("127.0.0.1:{http_port}"), "--data-dir"])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    wait_ready(http_port, &mut child);
    // The lake's files are written in `.tmp` first: a file in its place fails every write.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !data.join("site_rates_10s").exists() {
        assert!(Instant::now() < deadline, "the demo wrote nothing");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::remove_dir_all(data.join(".tmp")).unwrap();
    std::fs::write(data.join(".tmp"), b"in the way").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the demo served on with a lake it cannot write:\n{}", std::fs::read_to_string(&err).unwrap());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stderr = std::fs::read_to_string(&err).unwrap();
    assert!(!status.success(), "{status}");
    assert!(stderr.contains("the demo pipeline stopped") && stderr.contains(".tmp"), "{stderr}");
}
