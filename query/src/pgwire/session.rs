//! One Postgres client's session: who it is ([`authenticate`]), its settings, and [`run_sql`], the
//! single function every statement of the wire protocol goes through — simple or extended
//! protocol, after parameters are bound.
//!
//! `run_sql` answers transaction control, `SET`/`RESET`/`SHOW` itself, sends statements that read
//! the PostgreSQL catalog to the [`Catalog`], and everything else to
//! [`Backend::user_sql`](crate::Backend::user_sql): the same read-only path as `POST /v1/sql`, so
//! DDL, DML, `COPY` and file access are refused over the wire exactly as over HTTP.
//!
//! Cursors (`DECLARE … CURSOR FOR query`, `FETCH`, `MOVE`, `CLOSE`), as psql sends them with
//! `FETCH_COUNT` and drivers for server-side cursors: `DECLARE` runs the query through the same
//! path, within the same limits, and keeps its rows; `FETCH` hands them out forward only. A cursor
//! without `WITH HOLD` may only be declared in a transaction block and ends with it (as in
//! PostgreSQL, `25P01` outside one); one `WITH HOLD` outlives the `COMMIT` of its transaction, not
//! its `ROLLBACK`. `DISCARD ALL` closes every cursor (and resets the settings). A session holds at most [`MAX_CURSORS`],
//! whose rows together take at most the backend's SQL memory limit (`sql_memory_mb`).
//!
//! Settings follow transactions as in PostgreSQL: a `ROLLBACK` undoes the `SET`s and `RESET`s of
//! its transaction, a `SET LOCAL` lasts until its transaction ends (outside one it does nothing),
//! and `RESET` returns to the value the client gave at startup (`application_name`) or the default.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use crate::api::AppState;
use crate::auth::Principal;
use crate::tenant_sql::TenantScope;
use crate::backend::{Backend, Dialect};
use crate::error::{QueryError, Result};
use crate::lake::{QueryResult, lake_schema};

use super::catalog::{Asker, Catalog, FUNCTION_NAMES, Settings, catalog_tables, with_postgres_names};
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
    /// Open cursors by name.
    cursors: HashMap<String, Cursor>,
    /// Whether the client is in a transaction block (set before each statement).
    pub in_transaction: bool,
    /// Settings as the open transaction found them, and as its `COMMIT` leaves them (its `SET`s
    /// without its `SET LOCAL`s); `None` until a statement of the transaction changes one.
    transaction_settings: Option<(Settings, Settings)>,
}

/// Most cursors a session may have open at once (each holds its query's rows).
pub const MAX_CURSORS: usize = 8;

/// A declared cursor: its query's rows and how many were handed out.
#[derive(Debug, Clone)]
struct Cursor {
    result: QueryResult,
    position: usize,
    hold: bool,
    /// Declared in the transaction still open: a `ROLLBACK` closes it even `WITH HOLD`.
    uncommitted: bool,
    /// Memory its rows take.
    bytes: usize,
}

impl Cursor {
    /// The next `count` rows (`None`: all that are left), moving past them.
    fn take(&mut self, count: Option<u64>) -> QueryResult {
        let left = self.result.num_rows() - self.position;
        let n = count.map_or(left, |c| usize::try_from(c).unwrap_or(usize::MAX).min(left));
        let (start, end) = (self.position, self.position + n);
        self.position = end;
        let mut batches = Vec::new();
        let mut offset = 0;
        for batch in &self.result.batches {
            let (from, to) = (start.max(offset), end.min(offset + batch.num_rows()));
            if from < to {
                batches.push(batch.slice(from - offset, to - from));
            }
            offset += batch.num_rows();
        }
        QueryResult { schema: Arc::clone(&self.result.schema), batches }
    }
}

impl Session {
    pub fn backend(&self) -> Result<&Backend> {
        self.state.backend()
    }

    /// The result schema of open cursor `name`.
    pub fn cursor_schema(&self, name: &str) -> Result<arrow::datatypes::SchemaRef> {
        self.cursors.get(name).map(|c| Arc::clone(&c.result.schema)).ok_or_else(|| no_cursor(name))
    }

    /// Close the cursors that end with a transaction: all but `WITH HOLD` ones, and on `ROLLBACK`
    /// those declared in it too.
    pub fn end_transaction(&mut self, committed: bool) {
        if let Some((at_begin, after_commit)) = self.transaction_settings.take() {
            self.settings = if committed { after_commit } else { at_begin };
        }
        self.cursors.retain(|_, c| c.hold && (committed || !c.uncommitted));
        for c in self.cursors.values_mut() {
            c.uncommitted = false;
        }
    }

    /// The settings the open transaction's `COMMIT` will leave, noting first what it found (for
    /// its `ROLLBACK`).
    fn after_commit(&mut self) -> &mut Settings {
        let settings = &self.settings;
        &mut self.transaction_settings.get_or_insert_with(|| (settings.clone(), settings.clone())).1
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
    Ok(Session { state: state.clone(), principal, user: user.to_owned(), database: user.to_owned(), settings: Settings::default(), cursors: HashMap::new(), in_transaction: false, transaction_settings: None })
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
    /// `MOVE`: how many rows the cursor moved.
    Moved(usize),
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
    session.state.metrics().pg_queries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let backend = session.backend()?;
    Ok(match classify(sql, session.escapes()) {
        StatementKind::Begin => Answer::Begin,
        StatementKind::Commit => {
            session.end_transaction(true);
            Answer::Commit
        }
        StatementKind::Rollback => {
            session.end_transaction(false);
            Answer::Rollback
        }
        StatementKind::Declare { name, query, hold } => {
            if session.cursors.contains_key(&name) {
                return Err(QueryError::Sql { state: "42P03", message: format!("cursor \"{name}\" already exists") });
            }
            if !hold && !session.in_transaction {
                return Err(QueryError::Sql {
                    state: "25P01",
                    message: "DECLARE CURSOR can only be used in transaction blocks (BEGIN first, or DECLARE … WITH HOLD)".into(),
                });
            }
            if session.cursors.len() >= MAX_CURSORS {
                return Err(QueryError::LimitExceeded(format!("at most {MAX_CURSORS} cursors may be open in a session; CLOSE one first")));
            }
            if classify(&query, session.escapes()) != StatementKind::Query {
                return Err(QueryError::InvalidSql("syntax error: DECLARE CURSOR needs a query (SELECT, VALUES, WITH …)".into()));
            }
            let budget = usize::try_from(backend.sql_limits().memory_bytes).unwrap_or(usize::MAX);
            let Answer::Rows(result, _) = Box::pin(run_sql(session, &query)).await? else {
                return Err(QueryError::InvalidSql("syntax error: DECLARE CURSOR needs a query that returns rows".into()));
            };
            let bytes: usize = result.batches.iter().map(|b| b.get_array_memory_size()).sum();
            let held: usize = session.cursors.values().map(|c| c.bytes).sum();
            if held.saturating_add(bytes) > budget {
                return Err(QueryError::LimitExceeded(format!(
                    "the session's cursors would hold {} MiB, more than the {} MiB allowed (sql_memory_mb); CLOSE one first",
                    (held + bytes) >> 20,
                    budget >> 20
                )));
            }
            let uncommitted = session.in_transaction;
            session.cursors.insert(name, Cursor { result, position: 0, hold, uncommitted, bytes });
            Answer::Command("DECLARE CURSOR")
        }
        StatementKind::Fetch { name, count, move_only } => {
            let cursor = session.cursors.get_mut(&name).ok_or_else(|| no_cursor(&name))?;
            let rows = cursor.take(count);
            if move_only { Answer::Moved(rows.num_rows()) } else { Answer::Rows(rows, "FETCH") }
        }
        StatementKind::Close(Some(name)) => {
            session.cursors.remove(&name).ok_or_else(|| no_cursor(&name))?;
            Answer::Command("CLOSE CURSOR")
        }
        StatementKind::Close(None) => {
            session.cursors.clear();
            Answer::Command("CLOSE CURSOR ALL")
        }
        StatementKind::Unsupported { state, reason } => return Err(QueryError::Sql { state, message: reason }),
        StatementKind::NoOp("DISCARD ALL") => {
            if sql.split_whitespace().nth(1).is_some_and(|w| w.trim_end_matches(';').eq_ignore_ascii_case("all")) {
                if session.in_transaction {
                    return Err(QueryError::Sql { state: "25001", message: "DISCARD ALL cannot run inside a transaction block".into() });
                }
                session.cursors.clear();
                session.settings.reset(None);
            }
            Answer::Command("DISCARD ALL")
        }
        StatementKind::NoOp(tag @ ("SAVEPOINT" | "RELEASE" | "ROLLBACK")) if !session.in_transaction => {
            let what = if tag == "ROLLBACK" { "ROLLBACK TO SAVEPOINT" } else { tag };
            return Err(QueryError::Sql { state: "25P01", message: format!("{what} can only be used in transaction blocks") });
        }
        StatementKind::NoOp(tag) => Answer::Command(tag),
        StatementKind::Set { name, value, local } => {
            if session.in_transaction {
                // As in PostgreSQL: a `ROLLBACK` undoes the transaction's `SET`s, and a `SET
                // LOCAL` lasts until the transaction ends either way.
                let after_commit = session.after_commit();
                if !local {
                    after_commit.set(&name, &value)?;
                }
                session.settings.set(&name, &value)?;
            } else if !local {
                session.settings.set(&name, &value)?;
            }
            // `SET LOCAL` outside a transaction block has no effect (PostgreSQL warns).
            Answer::Command("SET")
        }
        StatementKind::Reset(name) => {
            if session.in_transaction {
                session.after_commit().reset(name.as_deref());
            }
            session.settings.reset(name.as_deref());
            Answer::Command("RESET")
        }
        StatementKind::ShowSetting(name) => Answer::Rows(session.settings.show(name.as_deref())?, "SHOW"),
        StatementKind::Query if is_catalog_statement(sql) => {
            let asker = Asker { user: session.user.clone(), settings: session.settings.clone() };
            Answer::Rows(with_postgres_names(sql, catalog_for(backend)?.query_as(sql, Some(&asker)).await?)?, "SELECT")
        }
        StatementKind::Query => {
            tracing::debug!(user = %session.user, "pg statement to backend");
            let caller = session.state.caller(session.principal.clone()).await?;
            Answer::Rows(with_postgres_names(sql, caller.view(backend).user_sql(sql).await?)?, "SELECT")
        }
    })
}

fn no_cursor(name: &str) -> QueryError {
    QueryError::Sql { state: "34000", message: format!("cursor \"{name}\" does not exist") }
}
