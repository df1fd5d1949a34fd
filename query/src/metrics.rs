//! Prometheus metrics of the query service (`GET /metrics`, text format 0.0.4): requests and
//! latency per endpoint (a fixed set of labels, never per site or tenant), answers by status class,
//! and errors by kind (refused SQL, limits, unauthorized). Updated by a middleware on every route
//! and by the Postgres listener; lock-free counters.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Endpoints, as labels.
pub const ENDPOINTS: [&str; 11] = [
    "traffic_share",
    "site_rates",
    "incidents",
    "incident_report",
    "entity_report",
    "registry_import",
    "sql",
    "openapi",
    "dashboard",
    "probe",
    "other",
];

/// Latency histogram bucket bounds, seconds.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

const CLASSES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];

#[derive(Debug, Default)]
struct Endpoint {
    by_class: [AtomicU64; 4],
    /// Cumulative counts are computed when rendering; each slot counts one bucket (last: +Inf).
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_us: AtomicU64,
}

/// Metrics of another part of the process, in the same text format, served after the service's
/// own (the demo's pipeline: the query crate does not know the aggregator's counters).
pub trait MoreMetrics: Send + Sync + std::fmt::Debug {
    fn render(&self) -> String;
}

/// The service's counters.
#[derive(Debug, Default)]
pub struct QueryMetrics {
    endpoints: [Endpoint; ENDPOINTS.len()],
    pub sql_refused: AtomicU64,
    pub limit_exceeded: AtomicU64,
    pub unauthorized: AtomicU64,
    pub pg_connections_total: AtomicU64,
    pub pg_connections_refused: AtomicU64,
    pub pg_connections_open: AtomicU64,
    pub pg_queries: AtomicU64,
}

/// The endpoint label of a matched route path.
pub fn endpoint_of(route: Option<&str>) -> &'static str {
    match route {
        Some("/v1/traffic-share") => "traffic_share",
        Some("/v1/sites/{site}/rates") => "site_rates",
        Some("/v1/incidents") => "incidents",
        Some("/v1/incidents/{id}") => "incident_report",
        Some("/v1/reports/entities/{entity}") => "entity_report",
        Some("/v1/registry/import") => "registry_import",
        Some("/v1/sql") => "sql",
        Some("/v1/openapi.json") => "openapi",
        Some("/") => "dashboard",
        Some("/healthz" | "/readyz" | "/metrics") => "probe",
        _ => "other",
    }
}

impl QueryMetrics {
    /// Count one answered request.
    pub fn observe(&self, endpoint: &str, status: u16, elapsed: Duration) {
        let i = ENDPOINTS.iter().position(|e| *e == endpoint).unwrap_or(ENDPOINTS.len() - 1);
        let e = &self.endpoints[i];
        let class = usize::from((status / 100).clamp(2, 5) - 2);
        e.by_class[class].fetch_add(1, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        let b = BUCKETS.iter().position(|&le| secs <= le).unwrap_or(BUCKETS.len());
        e.buckets[b].fetch_add(1, Ordering::Relaxed);
        e.sum_us.fetch_add(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let c = |n: &AtomicU64| n.load(Ordering::Relaxed);
        let mut s = String::new();
        let name = "edgelens_query_requests_total";
        let _ = writeln!(s, "# HELP {name} HTTP requests answered, by endpoint and status class.\n# TYPE {name} counter");
        for (label, e) in ENDPOINTS.iter().zip(&self.endpoints) {
            for (class, n) in CLASSES.iter().zip(&e.by_class) {
                let _ = writeln!(s, "{name}{{endpoint=\"{label}\",status=\"{class}\"}} {}", c(n));
            }
        }
        let name = "edgelens_query_request_duration_seconds";
        let _ = writeln!(s, "# HELP {name} Time to answer an HTTP request, by endpoint.\n# TYPE {name} histogram");
        for (label, e) in ENDPOINTS.iter().zip(&self.endpoints) {
            let mut cumulative = 0;
            for (i, le) in BUCKETS.iter().enumerate() {
                cumulative += c(&e.buckets[i]);
                let _ = writeln!(s, "{name}_bucket{{endpoint=\"{label}\",le=\"{le}\"}} {cumulative}");
            }
            cumulative += c(&e.buckets[BUCKETS.len()]);
            let _ = writeln!(s, "{name}_bucket{{endpoint=\"{label}\",le=\"+Inf\"}} {cumulative}");
            let _ = writeln!(s, "{name}_sum{{endpoint=\"{label}\"}} {}", c(&e.sum_us) as f64 / 1e6);
            let _ = writeln!(s, "{name}_count{{endpoint=\"{label}\"}} {cumulative}");
        }
        for (name, help, kind, v) in [
            ("edgelens_query_sql_refused_total", "User SQL refused (writes, other tables, tenant escapes).", "counter", c(&self.sql_refused)),
            ("edgelens_query_limit_exceeded_total", "User SQL stopped by a time, row or memory limit.", "counter", c(&self.limit_exceeded)),
            ("edgelens_query_unauthorized_total", "Requests and connections refused for a missing or wrong credential.", "counter", c(&self.unauthorized)),
            ("edgelens_query_pg_connections_total", "Postgres wire connections accepted.", "counter", c(&self.pg_connections_total)),
            ("edgelens_query_pg_connections_refused_total", "Postgres wire connections refused at the connection limit.", "counter", c(&self.pg_connections_refused)),
            ("edgelens_query_pg_connections_open", "Postgres wire connections open now.", "gauge", c(&self.pg_connections_open)),
            ("edgelens_query_pg_queries_total", "Statements run over the Postgres wire protocol.", "counter", c(&self.pg_queries)),
        ] {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_and_counters_render() {
        let m = QueryMetrics::default();
        m.observe("sql", 200, Duration::from_millis(3));
        m.observe("sql", 400, Duration::from_secs(20));
        m.observe("nonsense", 503, Duration::from_millis(1));
        let text = m.render();
        assert!(text.contains("edgelens_query_requests_total{endpoint=\"sql\",status=\"2xx\"} 1\n"), "{text}");
        assert!(text.contains("edgelens_query_requests_total{endpoint=\"sql\",status=\"4xx\"} 1\n"));
        assert!(text.contains("edgelens_query_requests_total{endpoint=\"other\",status=\"5xx\"} 1\n"));
        assert!(text.contains("edgelens_query_request_duration_seconds_bucket{endpoint=\"sql\",le=\"0.0025\"} 0\n"));
        assert!(text.contains("edgelens_query_request_duration_seconds_bucket{endpoint=\"sql\",le=\"0.005\"} 1\n"));
        assert!(text.contains("edgelens_query_request_duration_seconds_bucket{endpoint=\"sql\",le=\"10\"} 1\n"));
        assert!(text.contains("edgelens_query_request_duration_seconds_bucket{endpoint=\"sql\",le=\"+Inf\"} 2\n"));
        assert!(text.contains("edgelens_query_request_duration_seconds_count{endpoint=\"sql\"} 2\n"));
        assert_eq!(endpoint_of(Some("/v1/incidents/{id}")), "incident_report");
    }
}
