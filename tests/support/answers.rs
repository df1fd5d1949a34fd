//! Questions asked of a query service in the end-to-end tests, and how answers are compared.

use serde_json::Value;

/// API requests answered by both backends.
pub fn api_requests(sites: &[String]) -> Vec<String> {
    let range = "from=2026-11-01T00:00:00Z&to=2026-11-01T00:07:00Z";
    let mut reqs = Vec::new();
    for by in ["site", "country", "colo", "asn"] {
        for (step, top) in [("1m", 5), ("5m", 3), ("7m", 50)] {
            reqs.push(format!("/v1/traffic-share?{range}&by={by}&step={step}&top={top}"));
        }
    }
    reqs.push("/v1/traffic-share?from=2026-11-01T00:01:30Z&to=2026-11-01T00:04:00Z&by=site&step=1m&top=4&format=csv".to_owned());
    for site in sites.iter().take(4) {
        reqs.push(format!("/v1/sites/{site}/rates?{range}&step=10s"));
        reqs.push(format!("/v1/sites/{site}/rates?{range}&step=1m&format=csv"));
    }
    reqs.push(format!("/v1/sites/no-such-site.example/rates?{range}&step=1m"));
    reqs
}

/// SQL that both dialects accept, with deterministic order.
pub const SQL: &[&str] = &[
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

pub fn json(body: &str, what: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {body}"))
}

/// JSON numbers compared by value (a count is `Int64` in DataFusion and `UInt64` in ClickHouse).
pub fn normalized(v: Value) -> Value {
    match v {
        Value::Number(n) => n.as_u64().map(Value::from).or_else(|| n.as_i64().map(Value::from)).unwrap_or(Value::Number(n)),
        Value::Array(a) => Value::Array(a.into_iter().map(normalized).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, normalized(v))).collect()),
        other => other,
    }
}


/// The top `n` sites by requests, as service `svc` answers.
pub fn top_sites(svc: &super::QueryService, n: usize) -> Vec<String> {
    let sql = format!("SELECT site FROM traffic_1m GROUP BY site ORDER BY SUM(requests) DESC, site LIMIT {n}");
    let top = json(&svc.sql(&sql, "application/json").1, "top sites");
    top.as_array().unwrap().iter().map(|r| r["site"].as_str().unwrap().to_owned()).collect()
}

/// Ask `a` and `b` every API request in `paths` and every query of [`SQL`]: both answer 200 with
/// the same answer (JSON numbers compared by value, CSV byte for byte), and series have points.
/// Returns how many answers were compared.
pub fn assert_same_answers(a: &super::QueryService, b: &super::QueryService, paths: &[String]) -> usize {
    let mut compared = assert_same_api_answers(a, b, paths);
    for sql in SQL {
        let (x, y) = (a.sql(sql, "application/json"), b.sql(sql, "application/json"));
        assert_eq!((x.0, y.0), (200, 200), "{sql}\nfirst: {}\nsecond: {}", x.1, y.1);
        assert_eq!(normalized(json(&x.1, sql)), normalized(json(&y.1, sql)), "{sql}");
        let (cx, cy) = (a.sql(sql, "text/csv").1, b.sql(sql, "text/csv").1);
        assert_eq!(cx, cy, "{sql} as CSV");
        compared += 1;
    }
    compared
}

/// Ask `a` and `b` every API request in `paths`: both answer 200 with the same answer (JSON
/// compared as values; CSV, Markdown and HTML byte for byte), and answers have rows. Returns how
/// many answers were compared.
pub fn assert_same_api_answers(a: &super::QueryService, b: &super::QueryService, paths: &[String]) -> usize {
    for path in paths {
        let (x, y) = (a.get(path), b.get(path));
        assert_eq!((x.0, y.0), (200, 200), "{path}\nfirst: {}\nsecond: {}", x.1, y.1);
        if ["format=csv", "format=md", "format=html"].iter().any(|f| path.contains(f)) {
            assert_eq!(x.1, y.1, "{path}");
            assert!(x.1.lines().count() > 1, "{path}: no rows");
        } else {
            let (jx, jy) = (json(&x.1, path), json(&y.1, path));
            assert_eq!(jx, jy, "{path}");
            let rows = ["series", "points", "incidents", "timeline"]
                .iter()
                .find_map(|k| jx.get(*k))
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            assert!(rows > 0 || path.contains("no-such-site"), "{path}: empty answer {jx}");
        }
    }
    paths.len()
}
