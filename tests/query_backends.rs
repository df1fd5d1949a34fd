//! One contract for both query backends: the same generated traffic is replayed once into the lake
//! and ClickHouse (`edgelens replay --clickhouse`), then two `edgelens query` services — one on the
//! lake, one on ClickHouse (`--clickhouse`) — must give identical answers to every API query and
//! to a set of SQL queries, and refuse the same writes. `edgelens sql --clickhouse` is checked
//! against `edgelens sql` on the lake too.
//!
//! Needs the ClickHouse server at `$EDGELENS_TEST_CLICKHOUSE` (fails, never skips, without it).

mod support;

use support::answers::*;
use support::*;

/// The clock of the lines fed (2030-01-01): after every generated event, so none is in the future.
const NOW: i64 = 1_893_456_000_000_000_000;

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
            ts(vec![None; entities.len()]),
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
            ts(vec![None; tags.len()]),
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

    let (lake_pg, ch_pg) = (free_port(), free_port());
    let on_lake = QueryService::start(&["--data-dir", lake.to_str().unwrap(), "--pg-listen", &format!("127.0.0.1:{lake_pg}")], &[]);
    let on_ch = QueryService::start(&["--clickhouse", &db.url, "--pg-listen", &format!("127.0.0.1:{ch_pg}")], &db.env());

    let sites = top_sites(&on_lake, 4);
    assert_eq!(sites.len(), 4);
    write_registry(&lake, &db, &sites);

    let range = "from=2026-11-01T00:00:00Z&to=2026-11-01T00:07:00Z";
    let mut requests = api_requests(&sites);
    for by in ["entity", "tag"] {
        requests.push(format!("/v1/traffic-share?{range}&by={by}&step=1m&top=5"));
        requests.push(format!("/v1/traffic-share?{range}&by={by}&step=7m&top=1&format=csv"));
    }
    requests.push(format!("/v1/traffic-share?{range}&by=entity&step=1m&min_confidence=0.5"));
    let compared = assert_same_answers(&on_lake, &on_ch, &requests);
    assert!(SQL.iter().all(|sql| json(&on_lake.sql(sql, "application/json").1, sql).as_array().is_some_and(|r| !r.is_empty())), "a SQL query of the contract has no rows");
    let incidents_checked = assert_incidents(&on_lake, &on_ch, &raw, range);
    let validated = assert_documented(&on_lake, &on_ch, &requests, range);
    // Writes are refused by both, as the caller's error.
    for bad in ["DROP TABLE traffic_1m", "INSERT INTO dead_letters SELECT * FROM dead_letters", "SELECT 1; SELECT 2"] {
        assert_eq!(on_lake.sql(bad, "application/json").0, 400, "lake accepted {bad}");
        assert_eq!(on_ch.sql(bad, "application/json").0, 400, "clickhouse accepted {bad}");
    }
    // Regression: ClickHouse 18.16 refused RFC 3339 literals compared with its DateTime (400), as
    // Grafana's `$__timeFilter` writes them; both backends answer alike, fractions of a second
    // and offsets included.
    for sql in [
        "SELECT count(*) AS n, sum(requests) AS r FROM traffic_1m WHERE ts BETWEEN '2026-11-01T00:01:00Z' AND '2026-11-01T00:04:59.999Z'",
        "SELECT count(*) AS n, sum(requests) AS r FROM site_rates_10s WHERE ts >= '2026-11-01T00:00:10.5Z' AND ts < '2026-11-01T02:03:00.001+02:00'",
        "SELECT count(*) AS n FROM site_rates_10s WHERE '2026-11-01T00:00:20.5Z' < ts AND ts <= '2026-11-01T00:02:00.5Z'",
        // Offsets without a colon or minutes, parentheses, `NOT BETWEEN` (which 18.16 cannot
        // parse), a fraction finer than the lake's microseconds.
        "SELECT count(*) AS n FROM site_rates_10s WHERE ts >= '2026-11-01T02:00:20+0200' AND ts < '2026-11-01 03:02:00+03'",
        "SELECT count(*) AS n FROM site_rates_10s WHERE ts >= ('2026-11-01T00:00:20.5Z') AND (ts) < ('2026-11-01T00:02:00.5Z')",
        "SELECT count(*) AS n FROM site_rates_10s WHERE ts NOT BETWEEN '2026-11-01T00:00:20.5Z' AND '2026-11-01T00:02:00.5Z'",
        "SELECT count(*) AS n FROM site_rates_10s WHERE ts >= '2026-11-01T00:00:20.0000001Z' AND ts <= '2026-11-01T00:02:00.9999999Z'",
        // `NOT` binds looser than `IS NOT NULL`: the rewrite keeps the lake's reading.
        "SELECT count(*) AS n FROM site_rates_10s WHERE ts NOT BETWEEN '2026-11-01T00:00:20Z' AND '2026-11-01T00:02:00Z' IS NOT NULL",
        // `NOT BETWEEN` with `x` in parentheses or a comment inside it (a ClickHouse syntax
        // error before).
        "SELECT count(*) AS n FROM site_rates_10s WHERE (ts) NOT /* c */ BETWEEN '2026-11-01T00:00:20Z' AND '2026-11-01T00:02:00Z' AND -(1) NOT BETWEEN -5 AND -2",
        // A fraction under `=` and `<>` (a ClickHouse error before): equal to no whole second.
        "SELECT count(*) AS n FROM site_rates_10s WHERE ts = '2026-11-01T00:00:20.5Z' OR ts = '2026-11-01T00:00:30Z'",
        "SELECT count(*) AS n FROM site_rates_10s WHERE ts <> '2026-11-01T00:00:20.5Z' AND ('2026-11-01T00:00:30.000001Z') <> ts",
        // … but compared with text it stays text (it became a number ClickHouse cannot compare
        // with a string).
        "SELECT count(*) AS n FROM site_rates_10s WHERE site <> '2026-11-01T00:00:20.5Z' AND ts <> CAST('2026-11-01T00:00:20.5Z' AS TIMESTAMP)",
        // A whole second in a `CASE` on a time (a ClickHouse type error before).
        "SELECT sum(CASE ts WHEN '2026-11-01T00:00:20Z' THEN 1 WHEN '2026-11-01T00:00:30+00:00' THEN 1 ELSE 0 END) AS n FROM site_rates_10s",
    ] {
        let want = json(&on_lake.sql(sql, "application/json").1, sql);
        assert!(want[0]["n"].as_u64().is_some_and(|n| n > 0), "{sql}: {want}");
        let (code, body) = on_ch.sql(sql, "application/json");
        assert_eq!((code, json(&body, sql)), (200, want), "{sql}");
    }
    // Regression: ClickHouse 18.16 sorted and limited only a `UNION ALL`'s last branch (every
    // row of the first came back, then the top of the last), and took positions for constants.
    for (sql, rows) in [
        ("SELECT site, sum(requests) AS n FROM traffic_1m WHERE ts < '2026-11-01T00:03:00Z' GROUP BY site UNION ALL SELECT site, sum(requests) AS n FROM traffic_1m WHERE ts >= '2026-11-01T00:03:00Z' GROUP BY site ORDER BY n DESC, site LIMIT 5", 5),
        ("SELECT site, count(*) AS n FROM site_rates_10s GROUP BY site UNION ALL SELECT site, count(*) AS n FROM traffic_1m GROUP BY site ORDER BY 2 DESC, 1 LIMIT 3", 3),
    ] {
        let want = json(&on_lake.sql(sql, "application/json").1, sql);
        assert_eq!(want.as_array().map(Vec::len), Some(rows), "{sql}: {want}");
        let (code, body) = on_ch.sql(sql, "application/json");
        assert_eq!((code, json(&body, sql)), (200, want), "{sql}");
    }
    // Regression: a ratio of sums divided integers on the lake (0 for a cache hit ratio), where
    // ClickHouse, like PostgreSQL, gives the fraction.
    for sql in [
        "SELECT site, sum(cache_hits) / sum(requests) AS r FROM site_rates_10s GROUP BY site ORDER BY site LIMIT 20",
        "SELECT 100 * sum(bytes) / sum(requests) AS r FROM traffic_1m",
        "SELECT site, COALESCE(sum(cache_hits), 0) / (SELECT sum(requests) FROM site_rates_10s) AS r FROM site_rates_10s GROUP BY site ORDER BY site LIMIT 20",
        // Sums named in a subquery.
        "SELECT site, hits / reqs AS r FROM (SELECT site, sum(cache_hits) AS hits, sum(requests) AS reqs FROM site_rates_10s GROUP BY site) AS s ORDER BY site LIMIT 20",
    ] {
        let want = json(&on_lake.sql(sql, "application/json").1, sql);
        let fractions = want.as_array().unwrap().iter().filter(|row| row["r"].as_f64().is_some_and(|r| r.fract() != 0.0)).count();
        assert!(fractions > 0, "{sql}: {want}");
        let (code, body) = on_ch.sql(sql, "application/json");
        assert_eq!((code, json(&body, sql)), (200, want), "{sql}");
    }
    // Regression: the lake's user SQL took the counts for unsigned: a difference wrapped around.
    let sql = "SELECT site, min(cache_hits - requests) AS r, max(requests + 1) AS p FROM site_rates_10s GROUP BY site ORDER BY site LIMIT 20";
    let want = json(&on_lake.sql(sql, "application/json").1, sql);
    assert!(want.as_array().unwrap().iter().all(|row| row["r"].as_i64().is_some_and(|r| r < 0)), "{sql}: {want}");
    let (code, body) = on_ch.sql(sql, "application/json");
    assert_eq!((code, json(&body, sql)), (200, want), "{sql}");
    // Regression: with `join_use_nulls` (tried for outer joins' NULLs), 18.16 crashed on this
    // right join of a function of the nullable side, and every request after failed.
    let sql = "SELECT k, upper(v) AS u FROM (SELECT 1 AS k, 'a' AS v) s ALL RIGHT JOIN (SELECT arrayJoin([1, 2]) AS k) e USING k ORDER BY k";
    let (code, body) = on_ch.sql(sql, "application/json");
    assert_eq!((code, json(&body, sql)), (200, serde_json::json!([{"k": 1, "u": "A"}, {"k": 2, "u": ""}])), "{sql}");
    assert_eq!(on_ch.sql("SELECT 1 AS one", "application/json").0, 200, "ClickHouse still answers");
    // Regression: ClickHouse sorted NULLs last under `DESC`, the lake (as PostgreSQL) first.
    let sql = "SELECT site, CASE WHEN site < 'm' THEN NULL ELSE sum(requests) END AS x FROM traffic_1m GROUP BY site ORDER BY x DESC, site LIMIT 4";
    let want = json(&on_lake.sql(sql, "application/json").1, sql);
    assert!(want[0]["x"].is_null(), "{sql}: {want}");
    let (code, body) = on_ch.sql(sql, "application/json");
    assert_eq!((code, json(&body, sql)), (200, want), "{sql}");
    // Regression: a timestamp parameter bound over the Postgres protocol was cut to its second on
    // ClickHouse, so `BETWEEN` took in the second of its low bound (twice the lake's rows).
    let out = std::process::Command::new("python3").arg(repo_root().join("tests/pgwire_params.py")).args([lake_pg.to_string(), ch_pg.to_string()]).output().unwrap();
    assert!(out.status.success(), "tests/pgwire_params.py (psycopg: `bash deploy/dev/install.sh` installs it):\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // Regression: a column position naming an unaliased expression with such a literal was
    // replaced by the expression as written, literal unchanged (400). The backends name such a
    // column differently: the values are compared.
    for sql in [
        "SELECT CASE WHEN ts < '2026-11-01T00:01:00.5Z' THEN 1 ELSE 0 END, count(*) AS n FROM site_rates_10s GROUP BY 1 ORDER BY 1",
        "SELECT CASE WHEN ts NOT BETWEEN '2026-11-01T00:00:20Z' AND '2026-11-01T00:01:00Z' THEN 1 ELSE 0 END, count(*) AS n FROM site_rates_10s GROUP BY 1 ORDER BY 1",
    ] {
        let values = |body: &str| -> Vec<Vec<serde_json::Value>> { json(body, sql).as_array().unwrap().iter().map(|r| r.as_object().unwrap().values().cloned().collect()).collect() };
        let want = values(&on_lake.sql(sql, "application/json").1);
        assert_eq!(want.len(), 2, "{sql}: {want:?}");
        let (code, body) = on_ch.sql(sql, "application/json");
        assert_eq!((code, values(&body)), (200, want), "{sql}");
    }
    // Regression: these were 500s on ClickHouse — a statement failing on a value, or one that
    // ClickHouse cannot type or run — though the caller's as on the lake.
    for bad in [
        "SELECT intDiv(1, 0) AS x",
        "SELECT throwIf(1) AS x",
        "SELECT 1 AS x UNION ALL SELECT 'a' AS x",
        "SELECT nope(site) FROM traffic_1m",
        // A NULL cast to a type without one (`ORDER BY CAST(end_ts AS TIMESTAMP)` of incidents
        // under way).
        "SELECT CAST(x AS TIMESTAMP) AS y FROM (SELECT CAST(NULL AS Nullable(DateTime)) AS x)",
    ] {
        let (code, body) = on_ch.sql(bad, "application/json");
        assert_eq!(code, 400, "{bad}: {body}");
    }
    let (code, body) = on_ch.sql("SELECT site, SUM(requests) AS n FROM traffic_1m GROUP BY site WITH TOTALS", "application/json");
    assert!(code == 400 && body.contains("WITH TOTALS"), "{code} {body}");
    // Regression: the newest time of no rows is ClickHouse's zero time, which failed to decode
    // (500); it is NULL, as on the lake.
    let last_seen = "SELECT max(ts) AS last_seen FROM traffic_1m WHERE site = 'none.example'";
    for svc in [&on_lake, &on_ch] {
        let (code, body) = svc.sql(last_seen, "application/json");
        assert_eq!((code, json(&body, last_seen)), (200, serde_json::json!([{ "last_seen": null }])), "{body}");
    }
    // Regression: a time moved to another zone came back as that zone's wall clock labelled UTC;
    // it is the same instant, shown with the zone's offset, on ClickHouse as on the lake.
    for (svc, sql) in [
        (&on_ch, "SELECT toTimeZone(min(ts), 'Europe/Berlin') AS t FROM traffic_1m"),
        (&on_lake, "SELECT min(ts) AT TIME ZONE 'Europe/Berlin' AS t FROM traffic_1m"),
    ] {
        let (code, body) = svc.sql(sql, "application/json");
        assert_eq!((code, json(&body, sql)), (200, serde_json::json!([{ "t": "2026-11-01T01:00:00+01:00" }])), "{sql}: {body}");
    }
    // Regression: ClickHouse read column positions as constants: `ORDER BY 2` ordered by nothing
    // (a wrong top-N) and the README's `GROUP BY 1` was refused.
    for sql in [
        "SELECT site, sum(requests) FROM traffic_1m GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5",
        "SELECT country, sum(requests) AS r FROM traffic_1m GROUP BY country ORDER BY 2 DESC, 1 LIMIT 3",
    ] {
        let (lake_code, on_lake_body) = on_lake.sql(sql, "text/csv");
        let (ch_code, on_ch_body) = on_ch.sql(sql, "text/csv");
        assert_eq!((lake_code, ch_code), (200, 200), "{sql}: {on_lake_body} / {on_ch_body}");
        let rows = |body: &str| body.lines().skip(1).map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(rows(&on_lake_body), rows(&on_ch_body), "{sql}");
    }
    // The CLI on both backends.
    let cli = |args: &[&str]| run_ok(edgelens().args(["sql", "--format", "json"]).args(args).arg(SQL[0]).envs(db.env()));
    assert_eq!(normalized(json(&cli(&["--data-dir", lake.to_str().unwrap()]), "cli lake")), normalized(json(&cli(&["--clickhouse", &db.url]), "cli clickhouse")));
    eprintln!(
        "{compared} answers identical on both backends, {incidents_checked} incident reports recounted, {validated} answers match the OpenAPI document"
    );
}

/// Every answer of both services — successes, the caller's errors, formats — matches the OpenAPI
/// document the service serves. Returns how many answers were validated.
fn assert_documented(a: &QueryService, b: &QueryService, requests: &[String], range: &str) -> usize {
    use support::openapi::Spec;
    let spec = Spec::fetch(a);
    let incidents = json(&a.get(&format!("/v1/incidents?{range}")).1, "incidents");
    let report = incidents["incidents"][0]["report"].as_str().unwrap().to_owned();
    // Regression: a list cut by `limit` did not say so; `total` counts what the request selects.
    assert_eq!(incidents["total"].as_u64(), Some(incidents["incidents"].as_array().unwrap().len() as u64));
    let cut = json(&a.get(&format!("/v1/incidents?{range}&limit=1")).1, "incidents");
    assert_eq!((cut["total"].clone(), cut["incidents"].as_array().unwrap().len()), (incidents["total"].clone(), 1));
    let mut paths: Vec<String> = requests.to_vec();
    paths.extend([
        format!("/v1/incidents?{range}"),
        format!("/v1/incidents?{range}&format=csv&limit=3"),
        format!("/v1/incidents?{range}&site=none.example&status=active&vector=http_flood"),
        report.clone(),
        format!("{report}?format=csv"),
        format!("{report}?format=md"),
        format!("{report}?format=html"),
        "/v1/incidents/none".into(),
        format!("{report}?format=pdf"),
        "/v1/incidents?status=over".into(),
        format!("/v1/traffic-share?{range}&step=7s"),
        format!("/v1/traffic-share?{range}&by=planet"),
        format!("/v1/sites/x.example/rates?from=tomorrow"),
        "/v1/openapi.json".into(),
        "/healthz".into(),
        "/readyz".into(),
        "/metrics".into(),
        "/".into(),
    ]);
    let mut n = 0;
    for svc in [a, b] {
        for path in &paths {
            spec.get(svc, path, None);
            n += 1;
        }
        for accept in ["application/json", "text/csv", "application/vnd.apache.arrow.stream", "application/vnd.apache.parquet", "text/plain"] {
            assert_eq!(spec.sql(svc, SQL[0], accept).0, 200, "{accept}");
            n += 1;
        }
        for bad in ["DROP TABLE traffic_1m", "SELECT nope FROM traffic_1m"] {
            assert_eq!(spec.sql(svc, bad, "application/json").0, 400, "{bad}");
            n += 1;
        }
    }
    n
}

/// The incidents list and every incident's report (JSON, CSV, Markdown, HTML) are identical on
/// both backends; each report's per-second timeline equals a recount of the site's raw events;
/// unknown ids are 404 and bad parameters 400. Returns the number of incidents checked.
fn assert_incidents(a: &QueryService, b: &QueryService, raw: &std::path::Path, range: &str) -> usize {
    use std::collections::BTreeMap;
    use std::io::BufRead;

    let list = json(&a.get(&format!("/v1/incidents?{range}")).1, "incidents");
    let incidents = list["incidents"].as_array().expect("incidents array").clone();
    assert!(!incidents.is_empty(), "the mixed scenario's flood was not reported: {list}");
    let mut paths = vec![
        format!("/v1/incidents?{range}"),
        format!("/v1/incidents?{range}&format=csv"),
        format!("/v1/incidents?{range}&status={}&limit=5", incidents[0]["status"].as_str().unwrap()),
    ];
    for inc in &incidents {
        let report = inc["report"].as_str().unwrap();
        for f in ["", "?format=csv", "?format=md", "?format=html"] {
            paths.push(format!("{report}{f}"));
        }
    }
    assert_same_api_answers(a, b, &paths);
    // Per-second requests of each incident's site, counted from the generated file.
    let sites: Vec<String> = incidents.iter().map(|i| i["site"].as_str().unwrap().to_owned()).collect();
    let mut per_second: BTreeMap<(String, i64), u64> = BTreeMap::new();
    for line in std::io::BufReader::new(std::fs::File::open(raw).unwrap()).split(b'\n') {
        let v: serde_json::Value = serde_json::from_slice(&line.unwrap()).unwrap();
        let site = v["ZoneName"].as_str().unwrap().to_lowercase();
        if sites.contains(&site) {
            let sec = v["EdgeStartTimestamp"].as_i64().unwrap().div_euclid(1_000_000_000);
            *per_second.entry((site, sec)).or_default() += 1;
        }
    }
    for inc in &incidents {
        let report = json(&a.get(inc["report"].as_str().unwrap()).1, "report");
        assert_eq!(report["incident"]["incident_id"], inc["incident_id"]);
        let site = inc["site"].as_str().unwrap().to_owned();
        let timeline = report["timeline"].as_array().unwrap();
        assert!(timeline.len() >= 10, "{} has a timeline of {} seconds", inc["incident_id"], timeline.len());
        for p in timeline {
            let sec = chrono::DateTime::parse_from_rfc3339(p["ts"].as_str().unwrap()).unwrap().timestamp();
            let expected = per_second.get(&(site.clone(), sec)).copied().unwrap_or(0);
            assert_eq!(p["requests"].as_u64().unwrap(), expected, "{} at {}", inc["incident_id"], p["ts"]);
            assert!(p["matched_requests"].as_u64().unwrap() <= expected);
        }
        // Regression: the incident's current state lagged its timeline by up to
        // `update_every_secs` at the end of the input.
        let matched: u64 = timeline.iter().map(|p| p["matched_requests"].as_u64().unwrap()).sum();
        assert_eq!(report["incident"]["attack_requests"].as_u64(), Some(matched), "{}: attack requests against its timeline", inc["incident_id"]);
        let last = timeline.last().unwrap()["ts"].as_str().unwrap();
        let last = chrono::DateTime::parse_from_rfc3339(last).unwrap().timestamp();
        let updated = chrono::DateTime::parse_from_rfc3339(report["incident"]["updated_ts"].as_str().unwrap()).unwrap().timestamp();
        // (An incident the end of the input ended, right after a row of its last second, has
        // its ended row a second later: it must be the latest.)
        let ended_at_end = report["incident"]["status"] == "ended" && updated == last + 2;
        assert!(updated == last + 1 || ended_at_end, "{}: updated_ts {updated} against its timeline's last second {last}", inc["incident_id"]);
        // An incident over [start, end) is not listed for a range starting at its end.
        if let Some(end) = report["incident"]["end_ts"].as_str() {
            let from_end = format!("/v1/incidents?from={end}&to=2100-01-01T00:00:00Z");
            let listed = json(&a.get(&from_end).1, "incidents");
            assert!(!listed["incidents"].as_array().unwrap().iter().any(|i| i["incident_id"] == inc["incident_id"]), "{from_end}: {listed}");
            let end = chrono::DateTime::parse_from_rfc3339(end).unwrap() - chrono::Duration::seconds(1);
            let from_before = format!("/v1/incidents?from={}&to=2100-01-01T00:00:00Z", end.format("%Y-%m-%dT%H:%M:%SZ"));
            let listed = json(&a.get(&from_before).1, "incidents");
            assert!(listed["incidents"].as_array().unwrap().iter().any(|i| i["incident_id"] == inc["incident_id"]), "{from_before}: {listed}");
        }
        let html = a.get(&format!("{}?format=html", inc["report"].as_str().unwrap())).1;
        assert!(html.contains("<svg class=\"timeline\"") && html.contains("class=\"matched\""), "report without chart");
    }
    assert_eq!(a.get("/v1/incidents/no-such-incident").0, 404);
    assert_eq!(b.get("/v1/incidents/no-such-incident?format=html").0, 404);
    assert_eq!(a.get("/v1/incidents?status=over").0, 400);
    let first = incidents[0]["report"].as_str().unwrap();
    assert_eq!(a.get(&format!("{first}?format=pdf")).0, 400);
    incidents.len()
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
                pipeline.push_line(Line::Complete(l), "shard-test", i as u64, NOW).unwrap();
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
    let sites = top_sites(&on_single, 4);
    assert_same_answers(&on_cluster, &on_single, &api_requests(&sites));
}

/// A ClickHouse server not running in UTC shows every `DateTime` shifted and reads time literals in
/// its own zone: the query side refuses it, saying how to fix it.
#[test]
fn a_clickhouse_server_not_in_utc_is_refused_with_the_fix() {
    let ch = PrivateClickHouse::new("");
    ch.script_with("start", &[("EDGELENS_CH_TIMEZONE", "Asia/Kolkata".to_owned())]);
    let out = edgelens().args(["sql", "--clickhouse", &ch.url(), "SELECT 1 AS one"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("Asia/Kolkata") && err.contains("<timezone>UTC</timezone>"), "{err}");
}

/// Create the edgelens schema in `ch` (a registry import writes it, as any writer would).
fn create_schema(ch: &PrivateClickHouse) {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("sites.csv");
    std::fs::write(&csv, "site,tenant,created_at,removed_at\nshop.example,acme,2026-11-01T00:00:00Z,\n").unwrap();
    run_ok(edgelens().args(["registry", "import"]).arg(&csv).arg("--data-dir").arg(tmp.path().join("lake")).args(["--clickhouse", &ch.url()]));
}

/// Regression: a ClickHouse server that accepted connections but answered nothing (hung) made
/// `SELECT 1` a 400 "the query ran longer than the limit", blaming the statement, and an API
/// request a 503 advising to narrow it. Both are 503s now that say the server does not answer.
#[test]
fn a_silent_clickhouse_is_unavailable_not_a_slow_query() {
    let ch = PrivateClickHouse::start_new();
    create_schema(&ch);
    let env: Vec<(String, String)> = [("EDGELENS__QUERY__SQL_TIMEOUT_SECS", "1"), ("EDGELENS__QUERY__REQUEST_TIMEOUT_SECS", "10")]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let svc = QueryService::start(&["--clickhouse", &ch.url(), "--pg-listen", "off"], &env);
    let pid = std::fs::read_to_string(ch.dir.path().join("clickhouse/clickhouse.pid")).unwrap().trim().to_owned();
    let signal = |sig: &str| assert!(std::process::Command::new("kill").args([sig, &pid]).status().unwrap().success());
    struct Resume<F: Fn(&str)>(F);
    impl<F: Fn(&str)> Drop for Resume<F> {
        fn drop(&mut self) {
            (self.0)("-CONT");
        }
    }
    signal("-STOP");
    let _resume = Resume(signal);
    let (status, text) = svc.sql("SELECT 1 AS one", "application/json");
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("ClickHouse is unavailable") && text.contains("did not answer SELECT 1"), "{text}");
    let (status, headers, text) = svc.fetch_with_headers("GET", "/v1/traffic-share?from=2026-11-01T00:00:00Z&to=2026-11-01T01:00:00Z&step=1m", None);
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("no answer within 10 s") && text.contains("did not answer SELECT 1") && !text.contains("narrow"), "{text}");
    assert!(headers.to_ascii_lowercase().contains("retry-after: 5"), "{headers}");
}

/// Regression: `/readyz` said ready while ClickHouse was down, so a load balancer kept sending
/// queries that could only fail. It probes the server: not ready (and why) while it is stopped,
/// ready again once it is back.
#[test]
fn readiness_follows_the_clickhouse_server() {
    let ch = PrivateClickHouse::start_new();
    let svc = QueryService::spawn(&["--clickhouse", &ch.url()], &[]);
    // Regression: a database without the edgelens schema (before any writer created it, or
    // another database configured) was "ready", and every endpoint answered 400 "invalid SQL".
    let (status, body) = svc.get("/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("the ClickHouse database edgelens at") && body.contains("has no table site_rates_10s"), "{body}");
    let (status, text) = svc.get("/v1/traffic-share?from=2026-11-01T00:00:00Z&to=2026-11-01T01:00:00Z&step=1m");
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("the ClickHouse database edgelens at") && text.contains("does not exist") && text.contains("[clickhouse] database"), "{text}");
    let (status, text) = svc.sql("SELECT count() AS n FROM incidents", "application/json");
    assert_eq!(status, 503, "{text}");
    // Once a writer created the schema the service is ready; a user's own misspelt table is
    // the user's mistake.
    create_schema(&ch);
    svc.wait_ready();
    let (status, text) = svc.sql("SELECT count() AS n FROM incidentz", "application/json");
    assert_eq!(status, 400, "{text}");
    ch.script("stop");
    let (status, body) = svc.get("/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("clickhouse backend"), "{body}");
    // Regression: requests were 500s while the server was down; they are 503 (try again), as
    // documented, with Retry-After.
    for (method, path, body) in [
        ("GET", "/v1/traffic-share?from=2026-11-01T00:00:00Z&to=2026-11-01T01:00:00Z&step=1m", None),
        ("POST", "/v1/sql", Some("SELECT count() AS n FROM traffic_1m")),
    ] {
        let (status, headers, text) = svc.fetch_with_headers(method, path, body);
        assert_eq!(status, 503, "{path}: {text}");
        assert!(text.contains("ClickHouse is unavailable, try again later"), "{text}");
        assert!(headers.to_ascii_lowercase().contains("retry-after: 5"), "{headers}");
    }
    ch.script("start");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while svc.get("/readyz").0 != 200 {
        assert!(std::time::Instant::now() < deadline, "not ready again after ClickHouse came back");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
