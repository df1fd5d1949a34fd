//! One Postgres client's session: who it is ([`authenticate`]), its settings, and [`run_sql`], the
//! single function every statement of the wire protocol goes through — simple or extended
//! protocol, after parameters are bound.
//!
//! `run_sql` answers transaction control, `SET`/`RESET`/`SHOW` itself, sends statements that read
//! the PostgreSQL catalog to the [`Catalog`], and everything else to
//! [`Backend::user_sql`](crate::Backend::user_sql): the same read-only path as `POST /v1/sql`, so
//! DDL, DML, `COPY` and file access are refused over the wire exactly as over HTTP.

use std::sync::{Arc, OnceLock};

use crate::api::AppState;
use crate::auth::Principal;
use crate::tenant_sql::TenantScope;
use crate::backend::{Backend, Dialect};
use crate::error::{QueryError, Result};
use crate::lake::{QueryResult, lake_schema};

use super::catalog::{Catalog, FUNCTION_NAMES, Settings, catalog_tables, with_postgres_names};
use super::sql_text::{Escapes, StatementKind, classify, reads_catalog};

/// An authenticated client of the Postgres listener.
#[derive(Debug, Clone)]
pub struct Session {
    state: AppState,
    /// Who logged in: an admin, or a tenant whose statements see only its sites' rows.
    pub principal: Principal,
    /// The user name the client logged in with.
    pub user: String,
    /// The database the client asked for (every name reaches the same tables).
    pub database: String,
    pub settings: Settings,
}

impl Session {
    pub fn backend(&self) -> Result<&Backend> {
        self.state.backend()
    }

    /// How this session's SQL quotes string literals.
    pub fn escapes(&self) -> Escapes {
        self.state.backend().map_or(Escapes::Standard, escapes_of)
    }
}

/// How SQL for `backend` quotes string literals (ClickHouse also escapes with backslashes).
pub fn escapes_of(backend: &Backend) -> Escapes {
    match backend.dialect() {
        Dialect::DataFusion => Escapes::Standard,
        Dialect::ClickHouse => Escapes::Backslash,
    }
}

/// Check a login and open its session: with `[[query.tokens]]` configured, the user is a token's
/// `name` and the password its token (an admin, or a tenant whose statements [`run_sql`] confines
/// to its sites); without tokens auth is off and every login is an admin. The password is asked
/// for in cleartext either way (no TLS: keep the listener on loopback or a private network).
pub fn authenticate(state: &AppState, user: &str, password: &str) -> Result<Session> {
    if user.is_empty() {
        return Err(QueryError::InvalidParameter("no user name given".into()));
    }
    let principal = state.auth().from_password(user, password)?;
    Ok(Session { state: state.clone(), principal, user: user.to_owned(), database: user.to_owned(), settings: Settings::default() })
}

/// The rows `principal` may see: `None` for an admin, else its tenant's scope (from the registry,
/// cached briefly).
pub async fn scope_of(state: &AppState, principal: &Principal) -> Result<Option<Arc<TenantScope>>> {
    state.auth().scope(state.backend()?, principal).await
}

/// What a statement answered.
#[derive(Debug)]
pub enum Answer {
    /// Rows, with PostgreSQL's command tag (`SELECT`, `SHOW`).
    Rows(QueryResult, &'static str),
    /// A statement without rows: its command tag.
    Command(&'static str),
    Begin,
    Commit,
    Rollback,
}

/// The catalog matching the backend's tables (the lake adds the `date` partition column).
pub fn catalog_for(backend: &Backend) -> Result<&'static Catalog> {
    static LAKE: OnceLock<Catalog> = OnceLock::new();
    static CLICKHOUSE: OnceLock<Catalog> = OnceLock::new();
    let (cell, lake) = match backend {
        Backend::Lake(_) => (&LAKE, true),
        Backend::ClickHouse(_) => (&CLICKHOUSE, false),
    };
    if let Some(c) = cell.get() {
        return Ok(c);
    }
    let catalog = Catalog::new(catalog_tables(|t| if lake { lake_schema(t) } else { t.arrow_schema() }))?;
    Ok(cell.get_or_init(|| catalog))
}

/// Whether `sql` (one statement) is answered by the catalog rather than the backend.
pub fn is_catalog_statement(sql: &str) -> bool {
    reads_catalog(sql, FUNCTION_NAMES)
}

/// Run one statement (parameters already bound) for `session`.
pub async fn run_sql(session: &mut Session, sql: &str) -> Result<Answer> {
    let backend = session.backend()?;
    Ok(match classify(sql, session.escapes()) {
        StatementKind::Begin => Answer::Begin,
        StatementKind::Commit => Answer::Commit,
        StatementKind::Rollback => Answer::Rollback,
        StatementKind::NoOp(tag) => Answer::Command(tag),
        StatementKind::Set { name, value } => {
            session.settings.set(&name, &value)?;
            Answer::Command("SET")
        }
        StatementKind::Reset(name) => {
            session.settings.reset(name.as_deref());
            Answer::Command("RESET")
        }
        StatementKind::ShowSetting(name) => Answer::Rows(session.settings.show(name.as_deref())?, "SHOW"),
        StatementKind::Query if is_catalog_statement(sql) => {
            Answer::Rows(with_postgres_names(sql, catalog_for(backend)?.query(sql).await?)?, "SELECT")
        }
        StatementKind::Query => {
            tracing::debug!(user = %session.user, "pg statement to backend");
            let caller = session.state.caller(session.principal.clone()).await?;
            Answer::Rows(with_postgres_names(sql, caller.view(backend).user_sql(sql).await?)?, "SELECT")
        }
    })
}
