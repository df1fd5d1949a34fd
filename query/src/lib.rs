//! edgelens query: reads the Parquet lake through DataFusion and serves it.
//!
//! - [`lake`]: the lake as a DataFusion [`SessionContext`](datafusion::prelude::SessionContext), every
//!   table of the contract registered, files re-listed on every query.
//! - [`backend`]: [`Backend`] = the lake or ClickHouse, and the SQL dialect of each.
//! - [`clickhouse`]: ClickHouse as the backend instead of the lake (read-only, answers as Arrow).
//! - [`params`]: the API's parameters (time range, step, `by`) parsed and validated; pure.
//! - [`traffic_share`] and [`site_rates`]: the time-series endpoints' SQL and their answer shapes.
//! - [`sql_guard`]: the read-only check applied to user SQL before it is planned.
//! - [`format`]: record batches rendered as text table, CSV, JSON, Arrow IPC stream, Parquet.
//! - [`api`]: the HTTP service (axum router, `serve`), including the dashboard at `/`.
//! - [`pgwire`]: the Postgres wire protocol listener (psql, Grafana, drivers) over the same backend.
//! - [`error`]: [`QueryError`], which says whether an error is the caller's (400) or ours (500).
//!
//! Configuration is [`QueryConfig`]: typed, defaults embedded, unknown keys rejected.

pub mod api;
pub mod backend;
pub mod clickhouse;
pub mod error;
pub mod format;
pub mod lake;
pub mod params;
pub mod pgwire;
pub mod site_rates;
pub mod sketch_udf;
pub mod sql_guard;
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
    /// Address of the HTTP service (REST API, SQL, dashboard).
    pub listen: SocketAddr,
    /// Root of the Parquet lake: `DATA_DIR/<table>/date=YYYY-MM-DD/<name>.parquet`.
    pub data_dir: PathBuf,
    /// `lake` (default) or `clickhouse`: what the API, SQL and dashboard read.
    pub backend: BackendKind,
    /// Address of the Postgres wire protocol listener; `""` disables it.
    #[serde(with = "crate::pgwire::listen_address")]
    pub pg_listen: Option<SocketAddr>,
    /// ClickHouse, read when `backend = "clickhouse"`: the config file's `[clickhouse]` section
    /// (shared with the aggregate role), not a key of `[query]`.
    #[serde(skip)]
    pub clickhouse: edgelens_schemas::clickhouse::ClickHouseConfig,
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
    /// Open the configured backend.
    pub fn open_backend(&self) -> Result<Backend> {
        Ok(match self.backend {
            BackendKind::Lake => Backend::Lake(Lake::open(&self.data_dir)?),
            BackendKind::ClickHouse => {
                if !self.clickhouse.enabled() {
                    return Err(QueryError::InvalidParameter("backend = \"clickhouse\" needs [clickhouse] url".into()));
                }
                Backend::ClickHouse(clickhouse::ClickHouseBackend::new(&self.clickhouse))
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
        }
    }
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
}
