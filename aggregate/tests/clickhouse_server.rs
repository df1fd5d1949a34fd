//! Integration test against the real ClickHouse server at `$EDGELENS_TEST_CLICKHOUSE`
//! (Debian's 18.16 in dev and CI), through the `clickhouse` crate.
//!
//! Checks that the project's own DDL (`edgelens_schemas::tables`) is accepted by the server and
//! that rows written with `Client::insert` (RowBinary) read back with `fetch_all` add up. Uses the
//! settings that work on 18.16 (DESIGN.md §4): validation off, no compression, client-side `?`
//! binding instead of server-side parameters.
//!
//! Never skipped: without a server the test fails and says how to start one
//! (`deploy/dev/clickhouse.sh start`, or run everything with `deploy/dev/test.sh`).

mod ch_support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clickhouse::{Client, Compression, Row};
use edgelens_schemas::{clickhouse::Layout, tables::TRAFFIC_1M};
use serde::{Deserialize, Serialize};
use tokio::time::timeout;

const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// One `traffic_1m` row; `DateTime` travels as seconds since the epoch (u32) in RowBinary.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
struct Traffic1m {
    ts: u32,
    site: String,
    country: String,
    colo: String,
    status_class: String,
    cache_status: String,
    requests: u64,
    bytes: u64,
}

#[derive(Debug, PartialEq, Row, Deserialize)]
struct SiteTotal {
    site: String,
    requests: u64,
    bytes: u64,
}

fn client(url: &str) -> Client {
    Client::default().with_url(url).with_validation(false).with_compression(Compression::None)
}

async fn exec(client: &Client, sql: &str) {
    timeout(STEP_TIMEOUT, client.query(sql).execute())
        .await
        .unwrap_or_else(|_| panic!("timed out: {sql}"))
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn rows() -> Vec<Traffic1m> {
    // 2026-11-01T00:00:00Z and the next day: two partitions of toYYYYMMDD(ts).
    let day1 = 1_793_491_200u32;
    let day2 = day1 + 86_400;
    let mut rows = Vec::new();
    for (i, site) in ["shop.example", "blog.example", "api.example"].into_iter().enumerate() {
        for minute in 0..10u32 {
            for (ts, country) in [(day1 + minute * 60, "DE"), (day2 + minute * 60, "US")] {
                rows.push(Traffic1m {
                    ts,
                    site: site.to_owned(),
                    country: country.to_owned(),
                    colo: "FRA".to_owned(),
                    status_class: if minute % 3 == 0 { "5xx" } else { "2xx" }.to_owned(),
                    cache_status: "hit".to_owned(),
                    requests: (i as u64 + 1) * 100 + u64::from(minute),
                    bytes: (i as u64 + 1) * 10_000 + u64::from(minute) * 7,
                });
            }
        }
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_1m_ddl_insert_and_select_roundtrip() {
    let url = ch_support::server_url();
    let admin = client(&url);
    match timeout(Duration::from_secs(10), admin.query("SELECT 1").fetch_one::<u8>()).await {
        Ok(Ok(1)) => {}
        other => panic!(
            "ClickHouse at {url} (EDGELENS_TEST_CLICKHOUSE) is unreachable or broken ({other:?}). \
             Start it with `deploy/dev/clickhouse.sh start`, or run the tests through `deploy/dev/test.sh`."
        ),
    }

    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let db = format!("edgelens_test_{}_{nanos}", std::process::id());
    exec(&admin, &format!("CREATE DATABASE `{db}`")).await;

    // Run the checks in a task so the database is dropped even when one of them panics.
    let outcome = tokio::spawn(roundtrip(url.clone(), db.clone())).await;
    exec(&admin, &format!("DROP DATABASE IF EXISTS `{db}`")).await;
    let (all, totals, filtered, expected) = outcome.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));

    let mut want_rows = rows();
    want_rows.sort_by(|a, b| (&a.site, a.ts).cmp(&(&b.site, b.ts)));
    assert_eq!(all, want_rows, "rows read back equal rows written");
    assert_eq!(totals, expected, "per-site sums");
    assert_eq!(filtered, 10, "client-side bound filter: shop.example rows on day 2");
}

/// Creates the table, inserts, reads back. Returns (all rows, per-site totals, count for a bound
/// filter, expected per-site totals).
async fn roundtrip(url: String, db: String) -> (Vec<Traffic1m>, Vec<SiteTotal>, u64, Vec<SiteTotal>) {
    let client = client(&url).with_database(&db);
    let layout = Layout::single(&db);
    for _ in 0..2 {
        // Idempotent DDL: IF NOT EXISTS.
        exec(&client, &layout.local_ddl(&TRAFFIC_1M)).await;
        exec(&client, &layout.view_ddl(&TRAFFIC_1M)).await;
    }

    let rows = rows();
    let mut insert = client.insert::<Traffic1m>(&Layout::local_name(&TRAFFIC_1M)).await.expect("start insert");
    for row in &rows {
        insert.write(row).await.expect("write row");
    }
    timeout(STEP_TIMEOUT, insert.end()).await.expect("insert timed out").expect("insert end");

    let all = timeout(
        STEP_TIMEOUT,
        client.query("SELECT ?fields FROM traffic_1m ORDER BY site, ts").fetch_all::<Traffic1m>(),
    )
    .await
    .expect("select timed out")
    .expect("select rows");

    let totals = timeout(
        STEP_TIMEOUT,
        client
            .query("SELECT site, sum(requests) AS requests, sum(bytes) AS bytes FROM traffic_1m GROUP BY site ORDER BY site")
            .fetch_all::<SiteTotal>(),
    )
    .await
    .expect("aggregate timed out")
    .expect("aggregate rows");

    let filtered = timeout(
        STEP_TIMEOUT,
        client
            .query("SELECT count() FROM traffic_1m WHERE site = ? AND toYYYYMMDD(ts) = ?")
            .bind("shop.example")
            .bind(20261102u32)
            .fetch_one::<u64>(),
    )
    .await
    .expect("filtered count timed out")
    .expect("filtered count");

    let mut expected: Vec<SiteTotal> = Vec::new();
    for r in &rows {
        match expected.iter_mut().find(|t| t.site == r.site) {
            Some(t) => {
                t.requests += r.requests;
                t.bytes += r.bytes;
            }
            None => expected.push(SiteTotal { site: r.site.clone(), requests: r.requests, bytes: r.bytes }),
        }
    }
    expected.sort_by(|a, b| a.site.cmp(&b.site));
    (all, totals, filtered, expected)
}

/// Schema migrations on the real server: a fresh database is created at the latest version, a
/// second start applies nothing, a database from a newer build and a table whose columns differ
/// are refused with an error that says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_is_migrated_once_and_mismatches_are_refused() {
    use edgelens_aggregate::sink::clickhouse::migrate;
    let url = ch_support::server_url();
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let db = format!("edgelens_migrate_{}_{nanos}", std::process::id());
    let c = client(&url);
    let layout = Layout::single(&db);
    let outcome = tokio::spawn({
        let (c, layout, db) = (c.clone(), layout.clone(), db.clone());
        async move {
            assert_eq!(migrate(&c, &layout).await.expect("fresh database"), layout.latest_version());
            assert_eq!(migrate(&c, &layout).await.expect("current database"), 0);
            // A newer build recorded version 99.
            exec(&c, &format!("INSERT INTO `{db}`.schema_migrations (version, name, applied_at) VALUES (99, 'future', now())")).await;
            let e = migrate(&c, &layout).await.unwrap_err().to_string();
            assert!(e.contains("newer than this edgelens build"), "{e}");
            exec(&c, &format!("ALTER TABLE `{db}`.schema_migrations DELETE WHERE version = 99")).await;
            // Mutations apply in the background: wait until the row is gone.
            let deadline = std::time::Instant::now() + STEP_TIMEOUT;
            while c.query(&format!("SELECT count() FROM `{db}`.schema_migrations WHERE version = 99")).fetch_one::<u64>().await.unwrap() > 0 {
                assert!(std::time::Instant::now() < deadline, "the version 99 row was not deleted");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // A table someone altered by hand.
            exec(&c, &format!("ALTER TABLE `{db}`.traffic_1m_local DROP COLUMN bytes")).await;
            let e = migrate(&c, &layout).await.unwrap_err().to_string();
            assert!(e.contains("traffic_1m_local") && e.contains("does not have the columns"), "{e}");
        }
    })
    .await;
    exec(&c, &format!("DROP DATABASE IF EXISTS `{db}`")).await;
    outcome.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
}

/// A database created by a build at schema version 1 is upgraded in place: the columns added
/// since (`incidents.updated_ts`) appear in the storage table and the view, the tables added since
/// (`registry_audit`) are created, and a migration interrupted after its `ADD COLUMN` runs again
/// without error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_database_is_upgraded_in_place() {
    use edgelens_aggregate::sink::clickhouse::migrate;
    let url = ch_support::server_url();
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let db = format!("edgelens_upgrade_{}_{nanos}", std::process::id());
    let c = client(&url);
    let layout = Layout::single(&db);
    let outcome = tokio::spawn({
        let (c, layout, db) = (c.clone(), layout.clone(), db.clone());
        async move {
            // What a version-1 build left behind.
            for st in layout.migrations_table_ddl() {
                exec(&c, &st).await;
            }
            let v1 = &layout.migrations()[0];
            assert_eq!(v1.version, 1);
            for st in &v1.statements {
                exec(&c, st).await;
            }
            exec(&c, &format!("INSERT INTO `{db}`.schema_migrations (version, name, applied_at) VALUES (1, 'initial', now())")).await;
            let cols = |c: Client, table: &'static str| {
                let db = db.clone();
                async move {
                    c.query(&format!("SELECT name FROM system.columns WHERE database = '{db}' AND table = '{table}'")).fetch_all::<String>().await.unwrap()
                }
            };
            assert!(!cols(c.clone(), "incidents_local").await.contains(&"updated_ts".to_owned()));
            assert!(cols(c.clone(), "registry_audit_local").await.is_empty(), "version 1 had no registry_audit");
            // An attribution imported open, then again with an end, by version-1 builds.
            exec(&c, &format!(
                "INSERT INTO `{db}`.site_entities_local VALUES ('a.example', 'Org', 'whois', 0.9, '2026-11-01 00:00:00', NULL, 'registry-x', 0, 0, 1), \
                 ('a.example', 'Org', 'whois', 0.9, '2026-11-01 00:00:00', '2026-11-02 00:00:00', 'registry-y', 0, 0, 1)"
            ))
            .await;
            // Interrupted: the column was added, the version not recorded.
            exec(&c, &format!("ALTER TABLE `{db}`.incidents_local ADD COLUMN `updated_ts` DateTime AFTER `top_attackers`")).await;
            assert_eq!(migrate(&c, &layout).await.expect("upgrade"), layout.latest_version() - 1);
            assert!(cols(c.clone(), "incidents_local").await.contains(&"updated_ts".to_owned()));
            assert!(cols(c.clone(), "incidents").await.contains(&"updated_ts".to_owned()), "the view shows the new column");
            assert!(cols(c.clone(), "registry_audit").await.contains(&"actor".to_owned()), "registry_audit was added");
            // Version 4: registry rows carry their import time, and the view shows one version of
            // each key; of unstamped versions, the one with an end.
            assert!(cols(c.clone(), "site_entities").await.contains(&"imported_at".to_owned()));
            let current = c
                .query(&format!("SELECT ifNull(toString(valid_to), 'open') FROM `{db}`.site_entities"))
                .fetch_all::<String>()
                .await
                .unwrap();
            assert_eq!(current, ["2026-11-02 00:00:00"]);
            assert_eq!(migrate(&c, &layout).await.expect("current database"), 0);
        }
    })
    .await;
    exec(&c, &format!("DROP DATABASE IF EXISTS `{db}`")).await;
    outcome.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
}
