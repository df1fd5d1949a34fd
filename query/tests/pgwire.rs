//! The Postgres wire protocol end to end: a lake with a few `traffic_1m` rows, the HTTP service and
//! the Postgres listener on 127.0.0.1:0 over the same state, and `tokio-postgres` (which uses the
//! extended protocol with binary results for `query`, the simple protocol for `simple_query`).
//!
//! Test data, `traffic_1m` (requests; bytes = requests × 1000):
//!
//! | date       | ts    | site         | country | requests |
//! |------------|-------|--------------|---------|----------|
//! | 2026-11-01 | 23:58 | shop.example | US      | 100      |
//! | 2026-11-01 | 23:58 | blog.example | DE      | 50       |
//! | 2026-11-01 | 23:59 | shop.example | US      | 30       |
//! | 2026-11-02 | 00:00 | shop.example | US      | 40       |
//! | 2026-11-02 | 00:00 | news.example | GB      | 15       |

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray, UInt64Array};
use edgelens_query::pgwire::{PgLimits, serve_pg_on};
use edgelens_query::{AppState, Lake, SqlLimits, serve_on};
use edgelens_schemas::tables::{ALL_TABLES, TRAFFIC_1M};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

const T_2026_11_01: i64 = 1_793_491_200;

fn at(h: i64, m: i64) -> i64 {
    T_2026_11_01 + h * 3600 + m * 60
}

fn write_traffic(dir: &Path, date: &str, rows: &[(i64, &str, &str, u64)]) {
    let n = rows.len();
    let strings = |v: Vec<&str>| Arc::new(StringArray::from(v)) as ArrayRef;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMicrosecondArray::from(rows.iter().map(|r| r.0 * 1_000_000).collect::<Vec<_>>()).with_timezone("UTC")),
        strings(rows.iter().map(|r| r.1).collect()),
        strings(rows.iter().map(|r| r.2).collect()),
        strings(vec!["FRA"; n]),
        strings(vec!["2xx"; n]),
        strings(vec!["hit"; n]),
        Arc::new(UInt64Array::from(rows.iter().map(|r| r.3).collect::<Vec<_>>())),
        Arc::new(UInt64Array::from(rows.iter().map(|r| r.3 * 1000).collect::<Vec<_>>())),
    ];
    let batch = RecordBatch::try_new(TRAFFIC_1M.arrow_schema(), columns).unwrap();
    let part = dir.join(TRAFFIC_1M.name).join(format!("date={date}"));
    std::fs::create_dir_all(&part).unwrap();
    let file = std::fs::File::create(part.join("part-0.parquet")).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

fn write_fixture(dir: &Path) {
    write_traffic(
        dir,
        "2026-11-01",
        &[
            (at(23, 58), "shop.example", "US", 100),
            (at(23, 58), "blog.example", "DE", 50),
            (at(23, 59), "shop.example", "US", 30),
        ],
    );
    write_traffic(dir, "2026-11-02", &[(at(24, 0), "shop.example", "US", 40), (at(24, 0), "news.example", "GB", 15)]);
}

/// HTTP and Postgres over one lake.
struct Service {
    http: std::net::SocketAddr,
    pg: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Service {
    async fn start(limits: PgLimits) -> Service {
        Service::start_with(limits, SqlLimits::default()).await
    }

    async fn start_with(limits: PgLimits, sql: SqlLimits) -> Service {
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path());
        let state = AppState::new(Lake::open_with(dir.path(), sql).unwrap());
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pg = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (http_addr, pg_addr) = (http.local_addr().unwrap(), pg.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (http_stop, pg_stop) = edgelens_query::pgwire::split_shutdown(async {
            let _ = stopped.await;
        });
        let s = state.clone();
        let tasks = vec![
            tokio::spawn(async move { serve_on(http, s, http_stop).await.unwrap() }),
            tokio::spawn(async move { serve_pg_on(pg, state, limits, pg_stop).await.unwrap() }),
        ];
        Service { http: http_addr, pg: pg_addr, stop: Some(stop), tasks, _dir: dir }
    }

    async fn connect(&self) -> Client {
        self.try_connect().await.unwrap()
    }

    async fn try_connect(&self) -> Result<Client, tokio_postgres::Error> {
        let config = format!("host=127.0.0.1 port={} user=tester password=secret dbname=edgelens", self.pg.port());
        let (client, connection) = tokio_postgres::connect(&config, NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// The value of the metric `name` of `GET /metrics`.
    async fn metric(&self, name: &str) -> u64 {
        let mut stream = TcpStream::connect(self.http).await.unwrap();
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        let text = String::from_utf8(raw).unwrap();
        let line = text.lines().find(|l| l.split(' ').next() == Some(name)).unwrap_or_else(|| panic!("no {name} in\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    /// POST /v1/sql, JSON rows.
    async fn http_sql(&self, sql: &str) -> Value {
        let mut stream = TcpStream::connect(self.http).await.unwrap();
        let head = format!(
            "POST /v1/sql HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
            sql.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(sql.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
        serde_json::from_str(body).unwrap()
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        for t in self.tasks.drain(..) {
            tokio::time::timeout(Duration::from_secs(10), t).await.expect("service stops").unwrap();
        }
    }
}

fn code(e: &tokio_postgres::Error) -> SqlState {
    e.code().cloned().unwrap_or_else(|| panic!("no SQLSTATE in {e:?}"))
}

fn simple_rows(messages: &[SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect()),
            _ => None,
        })
        .collect()
}

const PER_SITE: &str = "SELECT site, SUM(requests) AS requests, SUM(bytes) AS bytes FROM traffic_1m GROUP BY site ORDER BY site";

#[tokio::test]
async fn simple_and_extended_queries_match_http_sql() {
    let svc = Service::start(PgLimits::default()).await;
    let client = svc.connect().await;

    let http = svc.http_sql(PER_SITE).await;
    let http: Vec<(String, i64, i64)> = http
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["site"].as_str().unwrap().to_owned(), r["requests"].as_i64().unwrap(), r["bytes"].as_i64().unwrap()))
        .collect();
    assert_eq!(http, vec![("blog.example".into(), 50, 50_000), ("news.example".into(), 15, 15_000), ("shop.example".into(), 170, 170_000)]);

    // Extended protocol, binary results.
    let rows = client.query(PER_SITE, &[]).await.unwrap();
    let pg: Vec<(String, i64, i64)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(pg, http);
    assert_eq!(rows[0].columns()[1].type_(), &tokio_postgres::types::Type::INT8);

    // Simple protocol, text results, two statements in one message.
    let messages = client.simple_query(&format!("{PER_SITE}; SELECT 'it''s' AS quote, 1 + 1 AS two")).await.unwrap();
    let rows = simple_rows(&messages);
    assert_eq!(rows.len(), 4);
    for (row, (site, requests, bytes)) in rows.iter().zip(&http) {
        assert_eq!(row, &vec![Some(site.clone()), Some(requests.to_string()), Some(bytes.to_string())]);
    }
    assert_eq!(rows[3], vec![Some("it's".to_owned()), Some("2".to_owned())]);
    let completions = messages.iter().filter(|m| matches!(m, SimpleQueryMessage::CommandComplete(_))).count();
    assert_eq!(completions, 2);

    // Parameters: a text and a timestamp (binary, as tokio-postgres sends them), inferred types.
    let from = UNIX_EPOCH + Duration::from_secs(at(23, 59) as u64);
    let rows = client
        .query(
            "SELECT site, SUM(requests) AS requests, MIN(ts) AS first FROM traffic_1m WHERE site = $1 AND ts >= $2 GROUP BY site",
            &[&"shop.example", &from],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>("site"), "shop.example");
    assert_eq!(rows[0].get::<_, i64>("requests"), 70);
    assert_eq!(rows[0].get::<_, SystemTime>("first"), from);
    let http = svc.http_sql(&format!("SELECT SUM(requests) AS r FROM traffic_1m WHERE site = 'shop.example' AND ts >= to_timestamp({})", at(23, 59))).await;
    assert_eq!(http[0]["r"], 70);

    // A parameter that would break out of a literal is only ever a value.
    let rows = client.query("SELECT COUNT(*) AS n FROM traffic_1m WHERE site = $1", &[&"x' OR '1'='1"]).await.unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 0);
    // Typed parameters of a prepared statement, reused.
    let stmt = client.prepare("SELECT COUNT(*) AS n FROM traffic_1m WHERE requests >= $1 AND country = $2").await.unwrap();
    assert_eq!(stmt.params(), &[tokio_postgres::types::Type::INT8, tokio_postgres::types::Type::TEXT]);
    assert_eq!(stmt.columns()[0].name(), "n");
    assert_eq!(client.query_one(&stmt, &[&40i64, &"US"]).await.unwrap().get::<_, i64>(0), 2);
    assert_eq!(client.query_one(&stmt, &[&100i64, &"US"]).await.unwrap().get::<_, i64>(0), 1);
    // LIMIT with a parameter.
    let rows = client.query("SELECT site FROM traffic_1m ORDER BY requests DESC LIMIT $1", &[&2i64]).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>(), ["shop.example", "blog.example"]);

    // A column written twice is answered twice, under PostgreSQL's names.
    let rows = client.query("SELECT site, site, count(*), count(*) FROM traffic_1m WHERE site = $1 GROUP BY site", &[&"shop.example"]).await.unwrap();
    let names: Vec<&str> = rows[0].columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["site", "site", "count", "count"]);
    assert_eq!(rows[0].get::<_, i64>(2), rows[0].get::<_, i64>(3));
    let simple = client.simple_query("SELECT count(*), count(*) FROM traffic_1m").await.unwrap();
    let SimpleQueryMessage::RowDescription(columns) = &simple[0] else { panic!("{simple:?}") };
    assert_eq!(columns.iter().map(|c| c.name()).collect::<Vec<_>>(), ["count", "count"]);
    // Regression: two columns aliased alike were refused ("Projections require unique expression
    // names"); PostgreSQL answers both under the alias.
    let rows = client.query("SELECT site AS s, count(*) AS s, 'x' AS \"S\" FROM traffic_1m WHERE site = $1 GROUP BY site", &[&"shop.example"]).await.unwrap();
    let names: Vec<&str> = rows[0].columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["s", "s", "S"]);
    assert_eq!((rows[0].get::<_, String>(0).as_str(), rows[0].get::<_, i64>(1) > 0), ("shop.example", true));
    let simple = client.simple_query("SELECT 1 AS a, 2 AS a").await.unwrap();
    let SimpleQueryMessage::RowDescription(columns) = &simple[0] else { panic!("{simple:?}") };
    assert_eq!(columns.iter().map(|c| c.name()).collect::<Vec<_>>(), ["a", "a"]);

    // Empty statements.
    assert!(simple_rows(&client.simple_query("").await.unwrap()).is_empty());
    assert!(simple_rows(&client.simple_query(" ; -- nothing\n").await.unwrap()).is_empty());
    drop(client);
    svc.stop().await;
}

#[tokio::test]
async fn refused_and_invalid_sql_are_errors_and_the_connection_stays_usable() {
    let svc = Service::start(PgLimits::default()).await;
    let client = svc.connect().await;
    for sql in [
        "DROP TABLE traffic_1m",
        "INSERT INTO traffic_1m SELECT * FROM traffic_1m",
        "COPY traffic_1m TO '/tmp/edgelens-pgwire-copy.parquet'",
        // psql's `\copy ... to file` sends these.
        "COPY sites TO STDOUT",
        "/* x */ copy (SELECT 1) TO STDOUT WITH CSV",
        "CREATE EXTERNAL TABLE passwd STORED AS CSV LOCATION '/etc/passwd'",
        "CREATE TABLE x AS SELECT 1",
        "DELETE FROM traffic_1m",
    ] {
        let e = client.simple_query(sql).await.unwrap_err();
        assert_eq!(code(&e), SqlState::INSUFFICIENT_PRIVILEGE, "{sql}: {e:?}");
        let db = e.as_db_error().unwrap();
        assert!(db.message().contains("not allowed"), "{sql}: {}", db.message());
        // Extended protocol too.
        let e = client.query(sql, &[]).await.unwrap_err();
        assert_eq!(code(&e), SqlState::INSUFFICIENT_PRIVILEGE, "{sql}: {e:?}");
        // Still usable.
        assert_eq!(client.query_one("SELECT 1 AS one", &[]).await.unwrap().get::<_, i64>(0), 1);
    }
    assert!(!Path::new("/tmp/edgelens-pgwire-copy.parquet").exists());
    assert_eq!(code(&client.simple_query("SELEC 1").await.unwrap_err()), SqlState::SYNTAX_ERROR);
    assert_eq!(code(&client.simple_query("SELECT * FROM no_such_table").await.unwrap_err()), SqlState::UNDEFINED_TABLE);
    assert_eq!(code(&client.query("SELECT no_such_column FROM traffic_1m", &[]).await.unwrap_err()), SqlState::UNDEFINED_COLUMN);
    // A failing statement stops the rest of a multi-statement query.
    let e = client.simple_query("SELECT 1; DROP TABLE traffic_1m; SELECT 2").await.unwrap_err();
    assert_eq!(code(&e), SqlState::INSUFFICIENT_PRIVILEGE);
    // Transactions: BEGIN/COMMIT are accepted; after an error, only ROLLBACK.
    client.batch_execute("BEGIN").await.unwrap();
    assert_eq!(client.query_one("SELECT 2 AS two", &[]).await.unwrap().get::<_, i64>(0), 2);
    client.batch_execute("COMMIT").await.unwrap();
    client.batch_execute("BEGIN").await.unwrap();
    assert!(client.simple_query("SELECT * FROM no_such_table").await.is_err());
    assert_eq!(code(&client.simple_query("SELECT 1").await.unwrap_err()), SqlState::IN_FAILED_SQL_TRANSACTION);
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(client.query_one("SELECT 3 AS three", &[]).await.unwrap().get::<_, i64>(0), 3);
    drop(client);
    svc.stop().await;
}

#[tokio::test]
async fn catalog_and_session_statements() {
    let svc = Service::start(PgLimits::default()).await;
    let client = svc.connect().await;
    let one = |messages: Vec<SimpleQueryMessage>| simple_rows(&messages)[0][0].clone().unwrap();

    assert!(one(client.simple_query("SELECT version()").await.unwrap()).starts_with("PostgreSQL 15.0 (edgelens"));
    assert_eq!(one(client.simple_query("SHOW server_version").await.unwrap()), "15.0");
    assert_eq!(one(client.simple_query("select current_database()").await.unwrap()), "edgelens");
    assert_eq!(one(client.simple_query("SELECT current_schema()").await.unwrap()), "public");
    client.batch_execute("SET application_name = 'grafana'; SET extra_float_digits TO 3").await.unwrap();
    assert_eq!(one(client.simple_query("SHOW application_name").await.unwrap()), "grafana");
    assert_eq!(one(client.simple_query("SHOW extra_float_digits").await.unwrap()), "3");
    // Regression: the catalog's functions answered the owner and the default settings for every
    // session; they answer the session's login and what its SETs left.
    assert_eq!(one(client.simple_query("SELECT current_user").await.unwrap()), "tester");
    assert_eq!(one(client.simple_query("SELECT session_user").await.unwrap()), "tester");
    assert_eq!(one(client.simple_query("SELECT current_setting('application_name')").await.unwrap()), "grafana");
    let other = svc.connect().await;
    assert_eq!(one(other.simple_query("SELECT current_setting('application_name')").await.unwrap()), "", "another session's SET leaked");
    drop(other);
    assert_eq!(code(&client.simple_query("SHOW no_such_setting").await.unwrap_err()), SqlState::UNDEFINED_OBJECT);
    assert_eq!(code(&client.simple_query("SET transaction_read_only = off").await.unwrap_err()), SqlState::INSUFFICIENT_PRIVILEGE);

    // information_schema lists the contract tables and their columns (with the lake's `date`).
    let rows = client
        .query("SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name", &[&"public"])
        .await
        .unwrap();
    let mut want: Vec<&str> = ALL_TABLES.iter().map(|t| t.name).collect();
    want.sort();
    assert_eq!(rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>(), want);
    let rows = client
        .query(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'traffic_1m' ORDER BY ordinal_position",
            &[],
        )
        .await
        .unwrap();
    let columns: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(columns.len(), TRAFFIC_1M.columns.len() + 1);
    assert_eq!(columns[0], ("ts".into(), "timestamp with time zone".into()));
    assert_eq!(columns[6], ("requests".into(), "bigint".into()));
    assert_eq!(columns.last().unwrap(), &("date".into(), "text".into()));
    // pg_catalog: relations as psql's \dt lists them.
    let rows = client
        .simple_query(
            "SELECT n.nspname, c.relname FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r','p') AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 1, 2",
        )
        .await
        .unwrap();
    assert_eq!(simple_rows(&rows).len(), ALL_TABLES.len());
    // Unknown parts of the catalog are a clear error, and the connection goes on.
    let e = client.simple_query("SELECT * FROM pg_catalog.pg_stat_activity").await.unwrap_err();
    assert!(e.as_db_error().unwrap().message().contains("PostgreSQL catalog"), "{e:?}");
    assert_eq!(one(client.simple_query("SELECT 'still here'").await.unwrap()), "still here");
    drop(client);
    svc.stop().await;
}

/// Regression: `SET LOCAL` outlived its transaction, a `ROLLBACK` kept the transaction's `SET`s,
/// and the `application_name` of the startup message showed as set by the session (and `RESET`
/// dropped it).
#[tokio::test]
async fn settings_follow_transactions_and_the_startup_message() {
    let svc = Service::start(PgLimits::default()).await;
    let config = format!("host=127.0.0.1 port={} user=tester password=secret dbname=edgelens application_name=dash", svc.pg.port());
    let (client, connection) = tokio_postgres::connect(&config, NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let show = async |name: &str| simple_rows(&client.simple_query(&format!("SHOW {name}")).await.unwrap())[0][0].clone().unwrap();
    let setting = async |name: &str| {
        let sql = format!("SELECT setting, source, reset_val FROM pg_settings WHERE name = '{name}'");
        simple_rows(&client.simple_query(&sql).await.unwrap())[0].iter().map(|v| v.clone().unwrap()).collect::<Vec<_>>()
    };

    assert_eq!(show("application_name").await, "dash");
    assert_eq!(setting("application_name").await, ["dash", "client", "dash"]);
    client.batch_execute("SET application_name = 'other'").await.unwrap();
    assert_eq!(setting("application_name").await, ["other", "session", "dash"]);
    client.batch_execute("RESET application_name").await.unwrap();
    assert_eq!(show("application_name").await, "dash");

    // SET LOCAL lasts until its transaction ends, COMMIT or ROLLBACK.
    client.batch_execute("BEGIN").await.unwrap();
    client.batch_execute("SET LOCAL extra_float_digits = 3").await.unwrap();
    assert_eq!(show("extra_float_digits").await, "3");
    client.batch_execute("COMMIT").await.unwrap();
    assert_eq!(show("extra_float_digits").await, "1");
    // A ROLLBACK undoes the transaction's SETs and RESETs; a COMMIT keeps its SETs, not its SET LOCALs.
    client.batch_execute("BEGIN; SET extra_float_digits = 2; SET LOCAL TIME ZONE 'Europe/Berlin'").await.unwrap();
    assert_eq!(show("timezone").await, "Europe/Berlin");
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!((show("extra_float_digits").await, show("timezone").await), ("1".into(), "UTC".into()));
    client.batch_execute("BEGIN; SET extra_float_digits = 2; SET LOCAL extra_float_digits = 3; SET LOCAL TIME ZONE 'Europe/Berlin'; COMMIT").await.unwrap();
    assert_eq!((show("extra_float_digits").await, show("timezone").await), ("2".into(), "UTC".into()));
    client.batch_execute("SET extra_float_digits = 0").await.unwrap();
    client.batch_execute("BEGIN; RESET extra_float_digits; ROLLBACK").await.unwrap();
    assert_eq!(show("extra_float_digits").await, "0");
    // A failed transaction block's COMMIT is its ROLLBACK, for settings too.
    client.batch_execute("BEGIN; SET extra_float_digits = 2").await.unwrap();
    assert!(client.simple_query("SELECT no_such_column FROM traffic_1m").await.is_err());
    client.batch_execute("COMMIT").await.unwrap();
    assert_eq!(show("extra_float_digits").await, "0");
    // Several statements of one simple query are one transaction: a SET LOCAL lasts to its end.
    let rows = simple_rows(&client.simple_query("SET LOCAL extra_float_digits = 3; SHOW extra_float_digits").await.unwrap());
    assert_eq!(rows[0][0].as_deref(), Some("3"));
    assert_eq!(show("extra_float_digits").await, "0");
    // Outside a transaction block SET LOCAL does nothing.
    client.batch_execute("SET LOCAL extra_float_digits = 3").await.unwrap();
    assert_eq!(show("extra_float_digits").await, "0");
    // Regression: savepoints were accepted outside a transaction block.
    for sql in ["SAVEPOINT a", "RELEASE a", "ROLLBACK TO SAVEPOINT a"] {
        let e = client.simple_query(sql).await.unwrap_err();
        assert_eq!(code(&e), SqlState::NO_ACTIVE_SQL_TRANSACTION, "{sql}");
    }
    client.batch_execute("BEGIN; SAVEPOINT a; RELEASE a; SAVEPOINT b; ROLLBACK TO SAVEPOINT b; COMMIT").await.unwrap();
    // DISCARD ALL resets the settings (to the startup values).
    client.batch_execute("SET application_name = 'x'; SET extra_float_digits = 2").await.unwrap();
    client.batch_execute("DISCARD ALL").await.unwrap();
    assert_eq!((show("application_name").await, show("extra_float_digits").await), ("dash".into(), "1".into()));
    drop(client);
    svc.stop().await;
}

#[tokio::test]
async fn cursors_hand_out_a_query_in_pieces() {
    let svc = Service::start(PgLimits::default()).await;
    let client = svc.connect().await;
    let all = "SELECT site, requests FROM traffic_1m ORDER BY ts, site";
    let want = simple_rows(&client.simple_query(all).await.unwrap());
    assert_eq!(want.len(), 5);
    let completed = |messages: &[SimpleQueryMessage]| {
        messages.iter().find_map(|m| if let SimpleQueryMessage::CommandComplete(n) = m { Some(*n) } else { None }).unwrap()
    };

    // What psql sends with FETCH_COUNT = 2.
    client.batch_execute(&format!("BEGIN; DECLARE _psql_cursor NO SCROLL CURSOR FOR\n{all}")).await.unwrap();
    let mut got = Vec::new();
    loop {
        let messages = client.simple_query("FETCH FORWARD 2 FROM _psql_cursor").await.unwrap();
        let rows = simple_rows(&messages);
        assert_eq!(completed(&messages), rows.len() as u64);
        let last = rows.len() < 2;
        got.extend(rows);
        if last {
            break;
        }
    }
    assert_eq!(got, want);
    client.batch_execute("CLOSE _psql_cursor; COMMIT").await.unwrap();

    // MOVE skips, FETCH ALL takes the rest, the extended protocol describes a FETCH.
    client.batch_execute(&format!("BEGIN; DECLARE \"Big C\" CURSOR FOR {all}")).await.unwrap();
    assert_eq!(completed(&client.simple_query("MOVE FORWARD 3 IN \"Big C\"").await.unwrap()), 3);
    let rows = client.query("FETCH ALL FROM \"Big C\"", &[]).await.unwrap();
    assert_eq!(rows[0].columns()[1].name(), "requests");
    let rest: Vec<Vec<Option<String>>> =
        rows.iter().map(|r| vec![Some(r.get::<_, String>(0)), Some(r.get::<_, i64>(1).to_string())]).collect();
    assert_eq!(rest, want[3..]);
    assert!(client.query("FETCH 1 FROM \"Big C\"", &[]).await.unwrap().is_empty());
    // A cursor without WITH HOLD ends with its transaction; one WITH HOLD stays.
    client.batch_execute(&format!("DECLARE held CURSOR WITH HOLD FOR {all}; COMMIT")).await.unwrap();
    assert_eq!(code(&client.simple_query("FETCH 1 FROM \"Big C\"").await.unwrap_err()), SqlState::INVALID_CURSOR_NAME);
    assert_eq!(simple_rows(&client.simple_query("FETCH 1 FROM held").await.unwrap()), want[..1]);
    assert_eq!(code(&client.simple_query(&format!("DECLARE held CURSOR FOR {all}")).await.unwrap_err()), SqlState::DUPLICATE_CURSOR);
    client.batch_execute("CLOSE ALL").await.unwrap();
    assert_eq!(code(&client.simple_query("CLOSE held").await.unwrap_err()), SqlState::INVALID_CURSOR_NAME);
    // What a cursor cannot do is an error, and what its query may not do is refused as without one.
    assert!(client.simple_query(&format!("DECLARE b BINARY CURSOR FOR {all}")).await.is_err());
    client.batch_execute(&format!("DECLARE fw CURSOR WITH HOLD FOR {all}")).await.unwrap();
    assert_eq!(code(&client.simple_query("FETCH BACKWARD 1 FROM fw").await.unwrap_err()), SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE);
    // As in PostgreSQL: a cursor without WITH HOLD only in a transaction block; a WITH HOLD one
    // does not outlive the ROLLBACK of its transaction; DISCARD ALL closes every cursor.
    let e = client.simple_query(&format!("DECLARE outside CURSOR FOR {all}")).await.unwrap_err();
    assert_eq!(code(&e), SqlState::NO_ACTIVE_SQL_TRANSACTION);
    client.batch_execute(&format!("BEGIN; DECLARE rolled CURSOR WITH HOLD FOR {all}; ROLLBACK")).await.unwrap();
    assert_eq!(code(&client.simple_query("FETCH 1 FROM rolled").await.unwrap_err()), SqlState::INVALID_CURSOR_NAME);
    assert_eq!(simple_rows(&client.simple_query("FETCH 1 FROM fw").await.unwrap()), want[..1]);
    client.batch_execute("DISCARD ALL").await.unwrap();
    assert_eq!(code(&client.simple_query("FETCH 1 FROM fw").await.unwrap_err()), SqlState::INVALID_CURSOR_NAME);
    // The COMMIT of a failed transaction is its ROLLBACK: a WITH HOLD cursor declared in it ends.
    client.batch_execute(&format!("BEGIN; DECLARE failed CURSOR WITH HOLD FOR {all}")).await.unwrap();
    assert!(client.simple_query("SELECT 1/0").await.is_err());
    client.batch_execute("COMMIT").await.unwrap();
    assert_eq!(code(&client.simple_query("FETCH 1 FROM failed").await.unwrap_err()), SqlState::INVALID_CURSOR_NAME);
    // Statements of one simple query are one transaction: a cursor lives to its end.
    let rows = simple_rows(&client.simple_query(&format!("DECLARE implicit CURSOR FOR {all}; FETCH 2 FROM implicit")).await.unwrap());
    assert_eq!(rows, want[..2]);
    assert_eq!(code(&client.simple_query("FETCH 1 FROM implicit").await.unwrap_err()), SqlState::INVALID_CURSOR_NAME);
    // DISCARD ALL only outside a transaction block.
    client.batch_execute("BEGIN").await.unwrap();
    assert_eq!(code(&client.simple_query("DISCARD ALL").await.unwrap_err()), SqlState::ACTIVE_SQL_TRANSACTION);
    client.batch_execute("ROLLBACK").await.unwrap();
    // Drivers ask pg_cursors whether a cursor they did not declare exists before closing it.
    assert!(simple_rows(&client.simple_query("SELECT 1 FROM pg_catalog.pg_cursors WHERE name = 'x'").await.unwrap()).is_empty());
    let e = client.simple_query("DECLARE d CURSOR WITH HOLD FOR DELETE FROM traffic_1m").await.unwrap_err();
    assert_eq!(code(&e), SqlState::INSUFFICIENT_PRIVILEGE);
    // A cursor is declared for a query only, not for another cursor (nested, each level ran the one
    // inside it, and a hundred exhausted the stack) or a setting.
    let nested = format!("{}SELECT 1", "DECLARE d CURSOR WITH HOLD FOR ".repeat(100));
    for sql in ["DECLARE d CURSOR WITH HOLD FOR DECLARE e CURSOR WITH HOLD FOR SELECT 1", nested.as_str(), "DECLARE d CURSOR WITH HOLD FOR SHOW ALL", "DECLARE d CURSOR WITH HOLD FOR SET application_name = 'x'"] {
        assert_eq!(code(&client.simple_query(sql).await.unwrap_err()), SqlState::SYNTAX_ERROR, "{sql}");
    }
    assert_eq!(code(&client.simple_query("CLOSE e").await.unwrap_err()), SqlState::INVALID_CURSOR_NAME);
    assert_eq!(code(&client.simple_query("CLOSE d").await.unwrap_err()), SqlState::INVALID_CURSOR_NAME);
    assert_ne!(simple_rows(&client.simple_query("SHOW application_name").await.unwrap())[0][0].as_deref(), Some("x"));
    drop(client);
    svc.stop().await;
}

#[tokio::test]
async fn the_rows_a_session_keeps_in_cursors_are_bounded() {
    // Each cursor holds five rows of about 12 KB.
    let sql = SqlLimits { memory_bytes: 256 << 10, ..SqlLimits::default() };
    let svc = Service::start_with(PgLimits::default(), sql).await;
    let client = svc.connect().await;
    let mut declared = 0;
    let e = loop {
        match client.simple_query(&format!("DECLARE c{declared} CURSOR WITH HOLD FOR SELECT repeat(site, 1000) AS s FROM traffic_1m")).await {
            Ok(_) => declared += 1,
            Err(e) => break e,
        }
        assert!(declared < 8, "eight cursors of the table fit in {} bytes", sql.memory_bytes);
    };
    assert!(declared >= 1, "{e:?}");
    assert_eq!(code(&e), SqlState::PROGRAM_LIMIT_EXCEEDED, "{e:?}");
    assert!(e.as_db_error().unwrap().message().contains("sql_memory_mb"), "{e:?}");
    client.batch_execute("CLOSE ALL").await.unwrap();
    client.batch_execute("DECLARE again CURSOR WITH HOLD FOR SELECT * FROM traffic_1m").await.unwrap();
    drop(client);
    svc.stop().await;
}

#[tokio::test]
async fn list_parameters_and_any_arrays() {
    let svc = Service::start(PgLimits::default()).await;
    let client = svc.connect().await;
    let sites = |rows: Vec<tokio_postgres::Row>| rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>();
    // A list parameter: described as text[], sent by the driver as a binary array.
    let stmt = client.prepare("SELECT DISTINCT site FROM traffic_1m WHERE site = ANY($1) ORDER BY site").await.unwrap();
    assert_eq!(stmt.params(), &[tokio_postgres::types::Type::TEXT_ARRAY]);
    let rows = client.query(&stmt, &[&vec!["news.example", "shop.example", "x' OR '1'='1"]]).await.unwrap();
    assert_eq!(sites(rows), ["news.example", "shop.example"]);
    assert!(client.query(&stmt, &[&Vec::<String>::new()]).await.unwrap().is_empty());
    let rows = client
        .query("SELECT DISTINCT site FROM traffic_1m WHERE requests <> ALL($1) AND requests > ANY($2) ORDER BY site", &[&vec![100i64, 30], &vec![20i64, 60]])
        .await
        .unwrap();
    assert_eq!(sites(rows), ["blog.example", "shop.example"]);
    // A placeholder cast where it is written has the cast's type (not text).
    let stmt = client.prepare("SELECT COUNT(*) AS n FROM traffic_1m WHERE requests > $1::int AND ts >= $2::timestamptz").await.unwrap();
    assert_eq!(stmt.params(), &[tokio_postgres::types::Type::INT4, tokio_postgres::types::Type::TIMESTAMPTZ]);
    assert_eq!(client.query_one(&stmt, &[&40i32, &UNIX_EPOCH]).await.unwrap().get::<_, i64>(0), 2);
    // Long chains of AND and OR, up to the guard's limit, plan (the optimizer rebuilds a
    // conjunction as a chain; 650 exhausted the stack).
    for op in [" AND ", " OR "] {
        let chain = (0..400).map(|i| format!("site <> 'x{i}'")).collect::<Vec<_>>().join(op);
        let rows = client.query(&format!("SELECT COUNT(*) AS n FROM traffic_1m WHERE {chain}"), &[]).await.unwrap();
        assert_eq!(rows[0].get::<_, i64>(0), 5, "{op}");
    }
    // The forms drivers that bind on the client side write.
    for (sql, want) in [
        ("SELECT DISTINCT site FROM traffic_1m WHERE site = ANY (ARRAY['news.example', 'blog.example']) ORDER BY site", &["blog.example", "news.example"][..]),
        ("SELECT DISTINCT site FROM traffic_1m WHERE site = ANY ('{news.example,\"blog.example\",NULL}') ORDER BY site", &["blog.example", "news.example"]),
        ("SELECT DISTINCT site FROM traffic_1m WHERE site <> ALL ('{news.example}'::text[]) ORDER BY site", &["blog.example", "shop.example"]),
        // `_` escaped: no site has one; with no escape character `\` is a plain character.
        ("SELECT DISTINCT site FROM traffic_1m WHERE site LIKE '%/_%' ESCAPE '/' OR site LIKE 'n%s.example' ESCAPE '' ORDER BY site", &["news.example"]),
    ] {
        let rows = simple_rows(&client.simple_query(sql).await.unwrap());
        let want: Vec<Vec<Option<String>>> = want.iter().map(|s| vec![Some((*s).to_owned())]).collect();
        assert_eq!(rows, want, "{sql}");
    }
    drop(client);
    svc.stop().await;
}

#[tokio::test]
async fn at_time_zone_gives_the_wall_clock_time_there() {
    let svc = Service::start(PgLimits::default()).await;
    let client = svc.connect().await;
    // The first row is 2026-11-01 23:58 UTC: 00:58 the next day in Berlin, 18:58 in New York.
    let sql = "SELECT ts, ts AT TIME ZONE 'Europe/Berlin' AS berlin, date_trunc('day', ts AT TIME ZONE 'America/New_York') AS ny_day \
               FROM traffic_1m ORDER BY ts LIMIT 1";
    let rows = simple_rows(&client.simple_query(sql).await.unwrap());
    assert_eq!(rows, vec![vec![Some("2026-11-01 23:58:00+00".to_owned()), Some("2026-11-02 00:58:00".into()), Some("2026-11-01 00:00:00".into())]]);
    let row = client.query_one(sql, &[]).await.unwrap();
    assert_eq!(row.columns()[1].type_(), &tokio_postgres::types::Type::TIMESTAMP);
    assert_eq!(row.get::<_, SystemTime>(1), UNIX_EPOCH + Duration::from_secs((at(23, 58) + 3600) as u64));
    // Unaliased, it is named `timezone` as in PostgreSQL (it was `?column?`), also next to
    // `ORDER BY ts`, which the lake refused for two columns named `ts`.
    let sql = "SELECT ts AT TIME ZONE 'Europe/Berlin', (ts AT TIME ZONE 'Asia/Tokyo') FROM traffic_1m ORDER BY ts LIMIT 1";
    let row = client.query_one(sql, &[]).await.unwrap();
    let names: Vec<&str> = row.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["timezone", "timezone"]);
    assert_eq!(row.get::<_, SystemTime>(0), UNIX_EPOCH + Duration::from_secs((at(23, 58) + 3600) as u64));
    // A zone no time can be shown in: the statement's mistake.
    let e = client.simple_query("SELECT ts AT TIME ZONE 'Bogus/Zone' FROM traffic_1m LIMIT 1").await.unwrap_err();
    assert!(e.as_db_error().is_some_and(|d| d.code().code().starts_with("22") || d.code().code().starts_with("42")), "{e:?}");
    drop(client);
    svc.stop().await;
}

/// Regression: over the wire, times cast to text were RFC 3339 (`2026-11-01T23:58:00Z`), a time of
/// day had nanoseconds and was sent as text, a time without seconds was refused, `pg_typeof`
/// was sent to the catalog (whose `now()` had no zone), and `position(…)`, `substring(…)`,
/// `trim(…)` were named `?column?`.
#[tokio::test]
async fn times_and_their_text_are_postgres_times() {
    let svc = Service::start(PgLimits::default()).await;
    let client = svc.connect().await;
    let sql = "SELECT ts::text, 'at ' || ts, (ts AT TIME ZONE 'europe/berlin')::text, pg_typeof(ts), pg_typeof(now()), now()::text LIKE '20%+00', \
               position('x' in site), substring(site from 1 for 1), trim(site) \
               FROM traffic_1m WHERE ts >= '2026-11-01 23:58' AND ts < '2026-11-1 23:59' ORDER BY ts LIMIT 1";
    let rows = simple_rows(&client.simple_query(sql).await.unwrap());
    let want = ["2026-11-01 23:58:00+00", "at 2026-11-01 23:58:00+00", "2026-11-02 00:58:00", "timestamp with time zone", "timestamp with time zone", "t"];
    assert_eq!(rows[0][..6], want.map(|w| Some(w.to_owned())), "{rows:?}");
    let row = client.query_one(sql, &[]).await.unwrap();
    let names: Vec<&str> = row.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names[6..], ["position", "substring", "btrim"]);
    // Named as PostgreSQL names them, also where DataFusion named two alike (it refused them).
    let row = client.query_one("SELECT (ts)::date, (ts::time)::text, pg_typeof(1), pg_typeof(1::bigint), round(2.5::float8), round(2.5) FROM traffic_1m LIMIT 1", &[]).await.unwrap();
    let names: Vec<&str> = row.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["ts", "ts", "pg_typeof", "pg_typeof", "round", "round"]);
    let row = client.query_one("SELECT current_time, localtime", &[]).await.unwrap();
    assert_eq!(row.columns()[0].type_(), &tokio_postgres::types::Type::TIME);
    let text = simple_rows(&client.simple_query("SELECT current_time::text, localtime").await.unwrap());
    for cell in &text[0] {
        let cell = cell.as_deref().unwrap();
        // HH:MM:SS and at most six digits of a second.
        assert!(cell.len() >= 8 && cell.len() <= 15 && cell.as_bytes()[2] == b':', "{cell}");
    }
    drop(client);
    svc.stop().await;
}

#[tokio::test]
async fn limits_protect_the_listener() {
    let limits = PgLimits {
        max_connections: 2,
        startup_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_millis(700),
        max_message_bytes: 4096,
    };
    let svc = Service::start(limits).await;
    let a = svc.connect().await;
    let b = svc.connect().await;
    let Err(e) = svc.try_connect().await else { panic!("a third connection is refused") };
    assert_eq!(code(&e), SqlState::TOO_MANY_CONNECTIONS, "{e:?}");
    assert!(e.as_db_error().unwrap().message().contains("too many clients"));
    // Regression: the Postgres listener's metrics stayed 0.
    assert_eq!(b.query_one("SELECT 1", &[]).await.unwrap().get::<_, i64>(0), 1);
    assert_eq!(svc.metric("edgelens_query_pg_connections_total").await, 2);
    assert_eq!(svc.metric("edgelens_query_pg_connections_open").await, 2);
    assert_eq!(svc.metric("edgelens_query_pg_connections_refused_total").await, 1);
    assert!(svc.metric("edgelens_query_pg_queries_total").await >= 1);
    drop(b);
    // The slot is free again once the session ends.
    let mut c = None;
    for _ in 0..50 {
        if let Ok(client) = svc.try_connect().await {
            c = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let c = c.expect("a connection after one closed");

    // An oversized message ends that connection with 54000; others are unaffected.
    let huge = format!("SELECT '{}'", "x".repeat(10_000));
    let e = c.simple_query(&huge).await.unwrap_err();
    assert!(e.code() == Some(&SqlState::PROGRAM_LIMIT_EXCEEDED) || c.is_closed(), "{e:?}");
    assert_eq!(a.query_one("SELECT 1", &[]).await.unwrap().get::<_, i64>(0), 1);

    // A silent client is disconnected after the idle timeout.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(a.query_one("SELECT 1", &[]).await.is_err());
    assert!(a.is_closed());

    // A client that never finishes startup is dropped after the startup timeout.
    let mut raw = TcpStream::connect(svc.pg).await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), raw.read_to_end(&mut buf)).await.expect("closed by the server");
    assert!(started.elapsed() >= Duration::from_millis(1500));
    svc.stop().await;
}

#[tokio::test]
async fn shutdown_closes_sessions() {
    let svc = Service::start(PgLimits::default()).await;
    let client = svc.connect().await;
    assert_eq!(client.query_one("SELECT 1", &[]).await.unwrap().get::<_, i64>(0), 1);
    svc.stop().await;
    assert!(client.query_one("SELECT 1", &[]).await.is_err());
}

/// A Postgres message from the server: type byte and body.
async fn read_message(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let kind = stream.read_u8().await.unwrap();
    let len = stream.read_i32().await.unwrap() as usize;
    let mut body = vec![0; len - 4];
    stream.read_exact(&mut body).await.unwrap();
    (kind, body)
}

fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![kind];
    m.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// The SQLSTATE field of an ErrorResponse body.
fn sqlstate(body: &[u8]) -> String {
    body.split(|b| *b == 0).find_map(|f| f.strip_prefix(b"C")).map(|c| String::from_utf8_lossy(c).into_owned()).unwrap_or_default()
}

/// A raw connection through startup and password authentication, at ReadyForQuery.
async fn raw_session(svc: &Service) -> TcpStream {
    let mut s = TcpStream::connect(svc.pg).await.unwrap();
    let mut startup = 196_608i32.to_be_bytes().to_vec();
    startup.extend_from_slice(b"user\0raw\0database\0edgelens\0\0");
    let mut packet = (startup.len() as i32 + 4).to_be_bytes().to_vec();
    packet.extend_from_slice(&startup);
    s.write_all(&packet).await.unwrap();
    // The server asks for a cleartext password (authentication request 3).
    let (kind, body) = read_message(&mut s).await;
    assert_eq!((kind, &body[..]), (b'R', &3i32.to_be_bytes()[..]));
    s.write_all(&message(b'p', b"whatever\0")).await.unwrap();
    loop {
        let (kind, _) = read_message(&mut s).await;
        if kind == b'Z' {
            break;
        }
        assert_ne!(kind, b'E');
    }
    s
}

/// The answer of a simple query returning one text cell.
async fn simple_answer(s: &mut TcpStream, sql: &str) -> Option<String> {
    s.write_all(&message(b'Q', format!("{sql}\0").as_bytes())).await.unwrap();
    let mut row = None;
    loop {
        let (kind, body) = read_message(s).await;
        if kind == b'D' {
            let len = i32::from_be_bytes(body[2..6].try_into().unwrap()) as usize;
            row = Some(String::from_utf8(body[6..6 + len].to_vec()).unwrap());
        }
        if kind == b'Z' {
            return row;
        }
    }
}

#[tokio::test]
async fn malformed_extended_messages_are_errors_not_disconnects() {
    let svc = Service::start(PgLimits::default()).await;
    let mut s = raw_session(&svc).await;
    // Parse a statement with one parameter, bind none: an error at Bind, the Execute is skipped,
    // and Sync answers ReadyForQuery.
    let mut batch = message(b'P', b"\0SELECT $1 AS x\0\0\0");
    batch.extend(message(b'B', b"\0\0\0\0\0\0\0\0"));
    batch.extend(message(b'E', b"\0\0\0\0\0"));
    batch.extend(message(b'S', b""));
    s.write_all(&batch).await.unwrap();
    let mut kinds = Vec::new();
    let mut state = String::new();
    loop {
        let (kind, body) = read_message(&mut s).await;
        kinds.push(kind);
        if kind == b'E' {
            state = sqlstate(&body);
        }
        if kind == b'Z' {
            break;
        }
    }
    assert_eq!(kinds, vec![b'1', b'E', b'Z'], "ParseComplete, ErrorResponse, ReadyForQuery");
    assert_eq!(state, "08P01");
    // Result format codes that do not match the columns: an error too.
    let mut batch = message(b'P', b"\0SELECT 1 AS a, 2 AS b\0\0\0");
    batch.extend(message(b'B', b"\0\0\0\0\0\0\0\x03\0\x01\0\x01\0\x01"));
    batch.extend(message(b'E', b"\0\0\0\0\0"));
    batch.extend(message(b'S', b""));
    s.write_all(&batch).await.unwrap();
    let mut state = String::new();
    loop {
        let (kind, body) = read_message(&mut s).await;
        if kind == b'E' {
            state = sqlstate(&body);
        }
        if kind == b'Z' {
            break;
        }
    }
    assert_eq!(state, "08P01");
    // The session goes on.
    assert_eq!(simple_answer(&mut s, "SELECT 41 + 1 AS answer").await.as_deref(), Some("42"));
    s.write_all(&message(b'X', b"")).await.unwrap();
    svc.stop().await;
}

/// A message whose body does not hold exactly the fields of its type (the decoder would read past
/// it: a panic at the end of the buffer, or the next message taken as its fields) ends that
/// connection with a FATAL 08P01 naming the message; other sessions go on.
#[tokio::test]
async fn bodies_that_do_not_match_their_fields_end_only_that_connection() {
    let svc = Service::start(PgLimits::default()).await;
    let mut other = raw_session(&svc).await;
    for (bad, name) in [
        (message(b'E', b"\0"), "Execute"),
        (message(b'Q', b"SELECT 1"), "Query"),
        (message(b'B', b"\0\0\0\0\0\x01\0\0\0\x09ab"), "Bind"),
        (message(b'D', b"S"), "Describe"),
    ] {
        let mut s = raw_session(&svc).await;
        let mut stream = bad;
        stream.extend(message(b'S', b""));
        s.write_all(&stream).await.unwrap();
        let (kind, body) = read_message(&mut s).await;
        assert_eq!(kind, b'E', "{name}: an ErrorResponse");
        assert_eq!(sqlstate(&body), "08P01", "{name}");
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("FATAL") && text.contains(&format!("malformed {name} message")), "{text}");
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
        assert!(matches!(closed, Ok(Ok(0))), "{name}: the connection is closed after the error, got {rest:?}");
        assert_eq!(simple_answer(&mut other, "SELECT 41 + 1 AS answer").await.as_deref(), Some("42"), "{name}");
    }
    svc.stop().await;
}
