//! edgelens query: reads the Parquet lake through DataFusion and serves it.
//!
//! - [`lake`]: the lake as a DataFusion [`SessionContext`](datafusion::prelude::SessionContext), every
//!   table of the contract registered, files re-listed on every query.
//! - [`auth`]: bearer tokens and Postgres passwords → admin or tenant; tenants' site lists.
//! - [`backend`]: [`Backend`] = the lake or ClickHouse, and the SQL dialect of each.
//! - [`clickhouse`]: ClickHouse as the backend instead of the lake (read-only, answers as Arrow).
//! - [`params`]: the API's parameters (time range, step, `by`) parsed and validated; pure.
//! - [`traffic_share`] and [`site_rates`]: the time-series endpoints' SQL and their answer shapes.
//! - [`incidents`] and [`report`]: the incidents list, incident reports (JSON, CSV, Markdown, HTML
//!   with an SVG timeline).
//! - [`entity_report`]: the compliance report of one entity: attributed sites with provenance,
//!   their traffic and share over time, incidents on them.
//! - [`registry_api`]: registry imports over HTTP by admin tokens, audited; [`RegistryWriter`](registry_api::RegistryWriter).
//! - [`sketch_udf`], [`time_udf`]: SQL functions of the lake (`hll_merge`, `from_unixtime` in UTC).
//! - [`fraction`]: on the plan of each statement DataFusion plans, divisions of sums made fractions
//!   and casts of fractions to integers rounded, as PostgreSQL does them (`edgelens_fraction`,
//!   `edgelens_round`, `edgelens_rint`, `edgelens_numeric`).
//! - [`time_text`]: on every session that plans user SQL, casts between text and times read and
//!   write PostgreSQL's text (`'2026-11-28 10:15'`, `ts::text`), and time spans compare by length.
//! - [`rewrite_udf`]: the one-argument functions those plan rewrites insert, named as their argument.
//! - [`sql_guard`]: the read-only check applied to user SQL before it is planned.
//! - [`sql_parse`]: user SQL parsed within a budget of parser steps.
//! - [`tenant_sql`]: the rewrite that confines a tenant's SQL to its sites' rows.
//! - [`format`]: record batches rendered as text table, CSV, JSON, Arrow IPC stream, Parquet.
//! - [`metrics`]: the service's Prometheus counters and latency histograms.
//! - [`api`]: the HTTP service (axum router, `serve`), including the dashboard at `/`.
//! - [`pgwire`]: the Postgres wire protocol listener (psql, Grafana, drivers) over the same backend.
//! - [`error`]: [`QueryError`], which says whether an error is the caller's (400) or ours (500).
//!
//! Configuration is [`QueryConfig`]: typed, defaults embedded, unknown keys rejected.

pub mod api;
pub mod auth;
pub mod backend;
pub mod clickhouse;
pub mod entity_report;
pub mod error;
pub mod format;
pub mod fraction;
pub mod incidents;
pub mod metrics;
pub mod lake;
pub mod params;
pub mod pgwire;
pub mod registry_api;
pub mod report;
pub mod rewrite_udf;
pub mod site_rates;
pub mod sketch_udf;
pub mod sql_compat;
pub mod sql_guard;
pub mod sql_parse;
pub mod tenant_sql;
pub mod time_text;
pub mod time_udf;
pub mod traffic_share;

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use api::{AppState, router, serve, serve_on};
pub use backend::Backend;

pub use error::{QueryError, Result};
pub use format::OutputFormat;
pub use lake::{Lake, QueryResult};

/// Settings of the query role (`[query]` in the config file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryConfig {
    /// Address of the HTTP service (REST API, SQL, dashboard): `IP:PORT` or `HOST:PORT`.
    #[serde(deserialize_with = "edgelens_schemas::net::listen_addr::deserialize")]
    pub listen: SocketAddr,
    /// Root of the Parquet lake: `DATA_DIR/<table>/date=YYYY-MM-DD/<name>.parquet`.
    pub data_dir: PathBuf,
    /// `lake` (default) or `clickhouse`: what the API, SQL and dashboard read.
    pub backend: BackendKind,
    /// Address of the Postgres wire protocol listener; `"off"` (or `""`) disables it.
    #[serde(with = "crate::pgwire::listen_address")]
    pub pg_listen: Option<SocketAddr>,
    /// ClickHouse, read when `backend = "clickhouse"`: the config file's `[clickhouse]` section
    /// (shared with the aggregate role), not a key of `[query]`.
    #[serde(skip)]
    pub clickhouse: edgelens_schemas::clickhouse::ClickHouseConfig,
    /// Bearer tokens (`[[query.tokens]]`: name, token, optional tenant). None: auth off, every
    /// caller sees everything — keep such a service on loopback.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<auth::TokenConfig>,
    /// HTTP: largest request body (SQL text, registry files), in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// HTTP: requests served at once; more get 503 with `Retry-After` at once instead of queueing.
    pub max_concurrent_requests: usize,
    /// HTTP: seconds before a request that has not been answered gets 503.
    pub request_timeout_secs: u64,
    /// HTTP: connections open at once; more wait in the accept queue until one closes.
    pub max_connections: usize,
    /// HTTP: seconds without traffic before a connection is closed (kept at least
    /// `request_timeout_secs` + 5, so a request being answered is never cut).
    pub idle_timeout_secs: u64,
    /// HTTP: seconds a client has to send a request's headers (however slowly they trickle in);
    /// also how long a keep-alive connection waits for its next request.
    pub header_timeout_secs: u64,
    /// User SQL (HTTP and Postgres wire): seconds before a query is cancelled.
    pub sql_timeout_secs: u64,
    /// User SQL: most rows in one answer; a larger answer is an error (add a LIMIT).
    pub sql_max_rows: u64,
    /// Memory for query execution, in MiB: on the lake the pool all running queries share, on
    /// ClickHouse the per-query `max_memory_usage`.
    pub sql_memory_mb: u64,
    /// User SQL on the lake: most row pairs the joins without an equality condition (cross joins,
    /// range or expression joins) may compare, estimated from the tables' row counts before the
    /// query runs. Such a join compares every row of one side with every row of the other, and
    /// cannot be stopped half-way through its work: a larger one is refused.
    pub sql_max_join_pairs: u64,
}

/// Limits on user SQL, from [`QueryConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlLimits {
    pub timeout: std::time::Duration,
    pub max_rows: u64,
    pub memory_bytes: u64,
    pub max_join_pairs: u64,
}

impl Default for SqlLimits {
    fn default() -> Self {
        QueryConfig::default().sql_limits()
    }
}

/// What the query service reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    #[default]
    Lake,
    ClickHouse,
}

impl QueryConfig {
    /// Settings that cannot work: an empty lake directory (on the lake backend), a 0 that would
    /// refuse or cut every request. Every problem is named, a line each.
    pub fn validate(&self) -> Result<(), String> {
        use edgelens_schemas::settings;
        let data_dir = if self.backend == BackendKind::Lake { self.data_dir.to_string_lossy() } else { "-".into() };
        settings::all([
            settings::not_empty("query", &[("data_dir", &data_dir)]),
            settings::at_least_one(
                "query",
                &[
                    ("max_body_bytes", self.max_body_bytes as u64),
                    ("max_concurrent_requests", self.max_concurrent_requests as u64),
                    ("request_timeout_secs", self.request_timeout_secs),
                    ("max_connections", self.max_connections as u64),
                    ("idle_timeout_secs", self.idle_timeout_secs),
                    ("header_timeout_secs", self.header_timeout_secs),
                    ("sql_timeout_secs", self.sql_timeout_secs),
                    ("sql_max_rows", self.sql_max_rows),
                    ("sql_memory_mb", self.sql_memory_mb),
                ],
            ),
        ])
    }

    /// The limits on user SQL.
    pub fn sql_limits(&self) -> SqlLimits {
        SqlLimits {
            timeout: std::time::Duration::from_secs(self.sql_timeout_secs.max(1)),
            max_rows: self.sql_max_rows.max(1),
            memory_bytes: self.sql_memory_mb.max(1).saturating_mul(1 << 20),
            max_join_pairs: self.sql_max_join_pairs.max(1),
        }
    }

    /// Open the configured backend.
    pub fn open_backend(&self) -> Result<Backend> {
        Ok(match self.backend {
            BackendKind::Lake => Backend::Lake(Lake::open_with(&self.data_dir, self.sql_limits())?),
            BackendKind::ClickHouse => {
                if !self.clickhouse.enabled() {
                    return Err(QueryError::InvalidParameter("backend = \"clickhouse\" needs [clickhouse] url".into()));
                }
                Backend::ClickHouse(clickhouse::ClickHouseBackend::new(&self.clickhouse).with_limits(self.sql_limits()))
            }
        })
    }

    pub const DEFAULT_LISTEN: &'static str = "127.0.0.1:8080";
    pub const DEFAULT_PG_LISTEN: &'static str = "127.0.0.1:5433";
    pub const DEFAULT_DATA_DIR: &'static str = "./edgelens-data";
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            listen: Self::DEFAULT_LISTEN.parse().expect("valid default listen address"),
            data_dir: PathBuf::from(Self::DEFAULT_DATA_DIR),
            backend: BackendKind::Lake,
            pg_listen: Some(Self::DEFAULT_PG_LISTEN.parse().expect("valid default Postgres listen address")),
            clickhouse: edgelens_schemas::clickhouse::ClickHouseConfig::default(),
            tokens: Vec::new(),
            max_body_bytes: 16 << 20,
            max_concurrent_requests: 64,
            request_timeout_secs: 120,
            max_connections: 1024,
            idle_timeout_secs: 300,
            header_timeout_secs: 30,
            sql_timeout_secs: 30,
            sql_max_rows: 1_000_000,
            sql_memory_mb: 2_048,
            sql_max_join_pairs: 10_000_000_000,
        }
    }
}

/// The crate's folder in the checkout being tested (set at run time by cargo/nextest), not where
/// the test binary was first compiled: a shared target directory may hold a binary built from
/// another clone, whose `env!("CARGO_MANIFEST_DIR")` no longer exists.
#[cfg(test)]
pub(crate) fn crate_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_unknown_keys() {
        let config: QueryConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config, QueryConfig::default());
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        let config: QueryConfig = serde_json::from_str(r#"{"listen": "0.0.0.0:9000", "data_dir": "/lake"}"#).unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.data_dir, PathBuf::from("/lake"));
        assert!(serde_json::from_str::<QueryConfig>(r#"{"listen_addr": "0.0.0.0:9000"}"#).is_err());
    }

    /// Regression: `pg_listen = "off"` was refused in a config file while `--pg-listen off` worked.
    #[test]
    fn pg_listen_off_disables_the_listener_in_a_file_as_on_the_command_line() {
        for off in ["off", "", " off "] {
            let config: QueryConfig = serde_json::from_value(serde_json::json!({ "pg_listen": off })).unwrap();
            assert_eq!(config.pg_listen, None, "{off:?}");
        }
        let config: QueryConfig = serde_json::from_str(r#"{"pg_listen": "127.0.0.1:6543"}"#).unwrap();
        assert_eq!(config.pg_listen.map(|a| a.port()), Some(6543));
        let err = serde_json::from_str::<QueryConfig>(r#"{"pg_listen": "nowhere"}"#).unwrap_err().to_string();
        assert!(err.contains("expected IP:PORT or HOST:PORT, or off"), "{err}");
        // Host names are resolved, in the file as on the command line.
        let config: QueryConfig = serde_json::from_str(r#"{"pg_listen": "localhost:6543", "listen": "localhost:9080"}"#).unwrap();
        assert!(config.pg_listen.is_some_and(|a| a.ip().is_loopback() && a.port() == 6543), "{config:?}");
        assert!(config.listen.ip().is_loopback() && config.listen.port() == 9080, "{config:?}");
    }
}

