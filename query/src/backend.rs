//! The storage a query service reads: the Parquet lake (DataFusion) or ClickHouse. The API's own
//! queries are written once and rendered per [`Dialect`] (time literals, step arithmetic, casts);
//! answers come back as Arrow in both cases, so shapes and formats are shared.

use edgelens_schemas::clickhouse::string_literal as ch_string;

use crate::clickhouse::ClickHouseBackend;
use crate::error::{QueryError, Result};
use crate::lake::{Lake, QueryResult};
use crate::params::{Step, TimeRange};
use crate::tenant_sql::{TenantScope, scope_sql};

/// Where queries go. One per service, so the variants' size difference does not matter.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Backend {
    Lake(Lake),
    ClickHouse(ClickHouseBackend),
}

/// The SQL dialect of a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    DataFusion,
    ClickHouse,
}

impl From<Lake> for Backend {
    fn from(l: Lake) -> Self {
        Backend::Lake(l)
    }
}

impl From<ClickHouseBackend> for Backend {
    fn from(c: ClickHouseBackend) -> Self {
        Backend::ClickHouse(c)
    }
}

impl Backend {
    pub fn dialect(&self) -> Dialect {
        match self {
            Backend::Lake(_) => Dialect::DataFusion,
            Backend::ClickHouse(_) => Dialect::ClickHouse,
        }
    }

    /// The limits on user SQL.
    pub fn sql_limits(&self) -> crate::SqlLimits {
        match self {
            Backend::Lake(l) => l.sql_limits(),
            Backend::ClickHouse(c) => c.sql_limits(),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Lake(_) => "lake",
            Backend::ClickHouse(_) => "clickhouse",
        }
    }

    /// Run trusted SQL written in this backend's dialect.
    pub async fn query(&self, sql: &str) -> Result<QueryResult> {
        match self {
            Backend::Lake(l) => l.query(sql, Vec::new()).await,
            Backend::ClickHouse(c) => c.query(sql).await,
        }
    }

    /// Whether the backend answers now (for `/readyz`): ClickHouse runs `SELECT 1` (see
    /// [`ClickHouseBackend::ping`]), the lake's directory must be readable.
    pub async fn probe(&self) -> Result<()> {
        match self {
            Backend::Lake(l) => std::fs::read_dir(l.dir())
                .map(drop)
                .map_err(|e| QueryError::Unavailable(format!("the lake {} is not readable: {e}", l.dir().display()))),
            Backend::ClickHouse(c) => c.ping().await,
        }
    }

    /// Run SQL from a user, read-only.
    pub async fn user_sql(&self, sql: &str) -> Result<QueryResult> {
        match self {
            Backend::Lake(l) => l.user_sql(sql).await,
            Backend::ClickHouse(c) => c.user_sql(sql).await,
        }
    }

    /// Whether contract table `table` has at least one row.
    pub async fn has_rows(&self, table: &str) -> Result<bool> {
        match self {
            Backend::Lake(l) => l.has_rows(table).await,
            Backend::ClickHouse(c) => c.has_rows(table).await,
        }
    }
}

/// A backend as one caller sees it: all of it (an admin, or a service without auth), or the rows of
/// one tenant's sites. Every query of the API and every user statement goes through a view; a
/// tenant's are rewritten by [`scope_sql`] first.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    backend: &'a Backend,
    tenant: Option<&'a TenantScope>,
}

impl<'a> View<'a> {
    /// Everything.
    pub fn all(backend: &'a Backend) -> Self {
        View { backend, tenant: None }
    }

    /// The rows of `scope`'s sites only.
    pub fn tenant(backend: &'a Backend, scope: &'a TenantScope) -> Self {
        View { backend, tenant: Some(scope) }
    }

    pub fn backend(&self) -> &'a Backend {
        self.backend
    }

    pub fn dialect(&self) -> Dialect {
        self.backend.dialect()
    }

    /// Run trusted SQL (the API's own) in this backend's dialect, within the view.
    pub async fn query(&self, sql: &str) -> Result<QueryResult> {
        match self.tenant {
            None => self.backend.query(sql).await,
            Some(scope) => self.backend.query(&scope_sql(sql, self.dialect(), scope)?).await,
        }
    }

    /// Run SQL from a user, read-only, within the view.
    pub async fn user_sql(&self, sql: &str) -> Result<QueryResult> {
        match self.tenant {
            None => self.backend.user_sql(sql).await,
            Some(scope) => self.backend.user_sql(&scope_sql(sql, self.dialect(), scope)?).await,
        }
    }

    /// Whether contract table `table` has at least one row in the view.
    pub async fn has_rows(&self, table: &str) -> Result<bool> {
        match self.tenant {
            None => self.backend.has_rows(table).await,
            Some(_) => Ok(self.query(&format!("SELECT 1 AS one FROM {table} LIMIT 1")).await?.num_rows() > 0),
        }
    }
}

impl<'a> From<&'a Backend> for View<'a> {
    fn from(backend: &'a Backend) -> Self {
        View::all(backend)
    }
}

impl Dialect {
    /// Predicate selecting timestamp `column` within `range`. On the lake it also names the `date`
    /// partitions, so only those directories are listed and read.
    pub fn range_predicate(self, range: &TimeRange, column: &str) -> String {
        match self {
            Dialect::DataFusion => range.sql_predicate(column),
            // `DateTime` holds whole seconds: ts_us >= from_us  ⇔  ts_s >= ceil(from_us / 1e6).
            Dialect::ClickHouse => format!(
                "{column} >= toDateTime({}) AND {column} < toDateTime({})",
                range.from_us.div_euclid(1_000_000) + i64::from(range.from_us.rem_euclid(1_000_000) != 0),
                range.to_us.div_euclid(1_000_000) + i64::from(range.to_us.rem_euclid(1_000_000) != 0)
            ),
        }
    }

    /// Expression: the start of `column`'s step as unix microseconds (64-bit integer).
    pub fn step_start(self, column: &str, step: Step) -> String {
        match self {
            Dialect::DataFusion => crate::params::step_start_sql(column, step),
            Dialect::ClickHouse => {
                let s = step.seconds();
                format!("(intDiv(toInt64(toUInt32({column})), {s}) * {s} * 1000000)")
            }
        }
    }

    /// Expression: timestamp `column` as unix microseconds (64-bit integer; NULL stays NULL).
    pub fn epoch_us(self, column: &str) -> String {
        match self {
            Dialect::DataFusion => format!("CAST({column} AS BIGINT)"),
            Dialect::ClickHouse => format!("(toInt64(toUInt32({column})) * 1000000)"),
        }
    }

    /// Expression: `expr` as text.
    pub fn to_text(self, expr: &str) -> String {
        match self {
            Dialect::DataFusion => format!("CAST({expr} AS VARCHAR)"),
            Dialect::ClickHouse => format!("toString({expr})"),
        }
    }

    /// A string literal.
    pub fn string(self, s: &str) -> String {
        match self {
            Dialect::DataFusion => format!("'{}'", s.replace('\'', "''")),
            Dialect::ClickHouse => ch_string(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clickhouse_range_rounds_up_to_whole_seconds() {
        let r = TimeRange { from_us: 1_500_000, to_us: 4_000_000 };
        assert_eq!(Dialect::ClickHouse.range_predicate(&r, "ts"), "ts >= toDateTime(2) AND ts < toDateTime(4)");
        assert_eq!(Dialect::ClickHouse.string("a'b"), "'a\\'b'");
        assert_eq!(Dialect::DataFusion.string("a'b"), "'a''b'");
    }
}
