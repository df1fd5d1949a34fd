//! The protocol side of one Postgres connection, on top of the `pgwire` crate's handler traits:
//! startup and cleartext-password authentication, the simple query protocol (several statements in
//! one `Query`, answered in order until the first error) and the extended protocol (`Parse`,
//! `Bind`, `Describe`, `Execute`, `Sync` with `$n` parameters).
//!
//! Guarantees:
//! - every statement runs through [`run_sql`]; parameters are decoded by their declared type (or
//!   the type the planner infers, else `text`) and substituted as literals of the backend's dialect;
//! - `Describe` of a statement reports the row description without running it on the lake (the
//!   plan's schema) and with a `LIMIT 0` probe on ClickHouse; rows of a later `Execute` are sent as
//!   the described types;
//! - errors become `ErrorResponse`s with a SQLSTATE ([`error_info`]) and the connection stays
//!   usable; inside a transaction block, statements after an error are refused (`25P02`) until
//!   `ROLLBACK`, as in PostgreSQL.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use bytes::BytesMut;
use futures::Sink;
use futures::sink::SinkExt;
use pgwire::api::auth::{
    ServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata,
};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler, send_describe_response};
use pgwire::api::results::{
    DescribePortalResponse, DescribeStatementResponse, FieldFormat, FieldInfo, QueryResponse, Response, Tag,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{ClientInfo, ClientPortalStore, DEFAULT_NAME, METADATA_APPLICATION_NAME, METADATA_DATABASE, METADATA_USER, PgWireConnectionState, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;
use pgwire::messages::extendedquery::{Bind, BindComplete, Describe};
use pgwire::messages::response::TransactionStatus;
use pgwire::messages::startup::{Authentication, SecretKey};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use tokio::sync::Mutex;

use crate::api::AppState;
use crate::backend::{Backend, Dialect};
use crate::error::{QueryError, Result};
use crate::lake::QueryResult;
use crate::sql_guard;

use super::catalog::{Settings, ordered_placeholder_types, postgres_column_names, text_result, type_length};
use super::session::{Answer, Session, authenticate, catalog_for, escapes_of, is_catalog_statement, run_sql, scope_of};
use crate::auth::Principal;
use crate::tenant_sql::{TenantScope, scope_sql};
use super::sql_text::{
    Escapes, StatementKind, classify, parameter_count, placeholder_casts, row_count_parameters, split_statements, substitute_parameters,
};
use super::types::{PgColumn, ParamValue, array_type, decode_param, literal, pg_type, type_by_name};
use crate::sql_compat::array_placeholders;

/// The SQLSTATE and message of an error, as sent to the client.
pub fn error_info(e: &QueryError) -> ErrorInfo {
    let message = e.to_string();
    let code = match e {
        QueryError::SqlRefused(_) => "42501",
        QueryError::InvalidSql(m) => sql_error_code(m),
        QueryError::Sql { state, .. } => state,
        QueryError::DataError(m) if m.starts_with("Divide by zero") => "22012",
        QueryError::DataError(m) if m.contains("overflow") => "22003",
        QueryError::DataError(m) if m.starts_with("Cast error") || m.starts_with("Parser error") => "22P02",
        QueryError::DataError(_) => "22000",
        QueryError::InvalidParameter(m) if m.starts_with("unrecognized configuration parameter") => "42704",
        QueryError::InvalidParameter(m) if m.starts_with("invalid input for a parameter") => "22P02",
        QueryError::InvalidParameter(m) if m.contains("cannot be changed") => "55P02",
        QueryError::InvalidParameter(_) => "22023",
        QueryError::NotReady | QueryError::BackendUnavailable(_) => "57P03",
        QueryError::NoSchema(_) => "42P01",
        QueryError::LimitExceeded(m) if m.contains("ran longer than") => "57014",
        QueryError::LimitExceeded(m) if m.contains("more memory") => "53200",
        QueryError::LimitExceeded(_) => "54000",
        _ => "XX000",
    };
    if code == "XX000" {
        tracing::error!(error = %e, retryable = e.is_retryable(), "pg statement failed");
    }
    ErrorInfo::new("ERROR".to_owned(), code.to_owned(), message)
}

/// SQLSTATE of a planning or parsing error, from the backend's message: syntax `42601`, unknown
/// table `42P01`, unknown column `42703`, unknown function `42883`, other `42000`.
pub fn sql_error_code(message: &str) -> &'static str {
    let m = message.to_ascii_lowercase();
    let missing = m.contains("not found") || m.contains("doesn't exist") || m.contains("does not exist") || m.contains("unknown");
    if m.contains("parsererror") || m.contains("syntax error") || m.contains("expected:") || m.contains("expected ") && m.contains("found") {
        "42601"
    } else if (m.contains("table") || m.contains("relation")) && missing {
        "42P01"
    } else if m.contains("no field named") || m.contains("missing column") || ((m.contains("column") || m.contains("identifier")) && missing) {
        "42703"
    } else if m.contains("function") && (missing || m.contains("invalid function")) {
        "42883"
    } else {
        "42000"
    }
}

fn user_error(severity: &str, code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(severity.to_owned(), code.to_owned(), message.into())))
}

fn to_pg(e: QueryError) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(&e)))
}

/// A statement of the extended protocol, as stored by `Parse`.
#[derive(Debug, Clone)]
pub struct PgStatement {
    sql: String,
    kind: StatementKind,
    /// `$1..$n`: declared by the client, else inferred, else `text`.
    param_types: Vec<Type>,
    /// Result column types once the statement was described: execution sends these.
    described: Arc<OnceLock<Vec<Type>>>,
}

/// `Parse`: classifies the statement and settles its parameter types.
#[derive(Debug)]
pub struct PgParser {
    state: AppState,
    /// Who logged in on this connection (set once authenticated).
    principal: Arc<OnceLock<Principal>>,
}

#[async_trait]
impl QueryParser for PgParser {
    type Statement = PgStatement;

    async fn parse_sql<C>(&self, _client: &C, sql: &str, types: &[Option<Type>]) -> PgWireResult<Option<PgStatement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let backend = self.state.backend().map_err(to_pg)?;
        let escapes = escapes_of(backend);
        let statements = split_statements(sql, escapes);
        let sql = match statements.as_slice() {
            [] => return Ok(None),
            [one] => (*one).to_owned(),
            _ => return Err(user_error("ERROR", "42601", "cannot insert multiple commands into a prepared statement")),
        };
        let kind = classify(&sql, escapes);
        let count = parameter_count(&sql, escapes).max(types.len());
        let mut inferred = Vec::new();
        if count > 0 && kind == StatementKind::Query {
            // Parse errors surface at Execute, with the parameters bound; inference is best effort.
            let principal = self.principal.get().ok_or_else(|| user_error("FATAL", "08P01", "statement before authentication"))?;
            let scope = scope_of(&self.state, principal).await.map_err(to_pg)?;
            if let Ok((types, _)) = plan_description(backend, &sql, scope.as_deref()).await {
                inferred = types;
            }
        }
        let row_counts = row_count_parameters(&sql, escapes);
        // `x = ANY ($n)`: planned as `x = $n`, so `$n` is a list of what was inferred.
        let lists = if count > 0 && kind == StatementKind::Query { array_placeholders(&sql) } else { Vec::new() };
        let casts = placeholder_casts(&sql, escapes);
        let param_types = (0..count)
            .map(|i| {
                let inferred = || inferred.get(i).cloned().flatten().filter(|dt| !dt.is_null()).map(|dt| pg_type(&dt));
                let cast = casts.iter().find(|(n, _)| *n == i + 1).and_then(|(_, name)| type_by_name(name));
                types.get(i).cloned().flatten().filter(|t| *t != Type::UNKNOWN).or(cast).unwrap_or_else(|| {
                    if lists.contains(&(i + 1)) {
                        return array_type(&inferred().unwrap_or(Type::TEXT));
                    }
                    inferred().or_else(|| row_counts.contains(&(i + 1)).then_some(Type::INT8)).unwrap_or(Type::TEXT)
                })
            })
            .collect();
        Ok(Some(PgStatement { sql, kind, param_types, described: Arc::new(OnceLock::new()) }))
    }

    fn get_parameter_types(&self, stmt: &PgStatement) -> PgWireResult<Vec<Type>> {
        Ok(stmt.param_types.clone())
    }

    /// Unused: `Describe` is answered by [`PgConnection`], which plans or runs the statement.
    fn get_result_schema(&self, _stmt: &PgStatement, _format: Option<&Format>) -> PgWireResult<Vec<FieldInfo>> {
        Ok(Vec::new())
    }
}

/// Placeholder types and result schema of a statement with `$n` placeholders: planned by DataFusion
/// for the lake and the catalog; for ClickHouse, placeholders are NULL and the statement is run
/// with `LIMIT 0`. A tenant's statement is rewritten to its rows first, as for execution, so not
/// even a probe reads other rows.
async fn plan_description(backend: &Backend, sql: &str, scope: Option<&TenantScope>) -> Result<(Vec<Option<DataType>>, SchemaRef)> {
    if is_catalog_statement(sql) {
        return catalog_for(backend)?.describe(sql).await;
    }
    let scoped;
    let sql = match scope {
        Some(scope) => {
            scoped = scope_sql(sql, backend.dialect(), scope)?;
            scoped.as_str()
        }
        None => sql,
    };
    match backend {
        Backend::Lake(lake) => {
            let plan = lake.user_plan(sql_guard::check(sql)?).await?;
            let types = plan.get_parameter_types().map_err(QueryError::from_user_sql)?;
            Ok((ordered_placeholder_types(&types), Arc::new(plan.schema().as_arrow().clone())))
        }
        Backend::ClickHouse(_) => {
            let with_nulls = substitute_parameters::<QueryError>(sql, Escapes::Backslash, |_| Ok("NULL".into()))?;
            let first = with_nulls.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
            let probe = if first == "select" || first == "with" {
                format!("SELECT * FROM ({}) AS edgelens_describe LIMIT 0", with_nulls.trim_end().trim_end_matches(';'))
            } else {
                with_nulls
            };
            Ok((Vec::new(), backend.user_sql(&probe).await?.schema))
        }
    }
}

fn field(name: &str, ty: Type, format: FieldFormat) -> FieldInfo {
    let size = type_length(ty.oid());
    FieldInfo::new(name.to_owned(), None, None, ty, format).with_type_size(size)
}

/// Result formats of `count` columns from `Bind`'s format codes (none = text, one = all, else one
/// per column).
fn result_formats(format: &Format, count: usize) -> PgWireResult<Vec<FieldFormat>> {
    match format {
        Format::UnifiedText => Ok(vec![FieldFormat::Text; count]),
        Format::UnifiedBinary => Ok(vec![FieldFormat::Binary; count]),
        Format::Individual(codes) if codes.len() == count => Ok(codes.iter().map(|c| FieldFormat::from(*c)).collect()),
        Format::Individual(codes) => Err(user_error(
            "ERROR",
            "08P01",
            format!("bind message has {} result formats but the query has {count} columns", codes.len()),
        )),
    }
}

/// A result as a `QueryResponse`: column types from `types` when the statement was described,
/// else from the Arrow types.
fn query_response(result: &QueryResult, tag: &str, formats: &[FieldFormat], types: Option<&[Type]>) -> Result<QueryResponse> {
    let schema = &result.schema;
    let types: Vec<Type> = match types {
        Some(t) if t.len() == schema.fields().len() => t.to_vec(),
        _ => schema.fields().iter().map(|f| pg_type(f.data_type())).collect(),
    };
    let fields: Vec<FieldInfo> = schema
        .fields()
        .iter()
        .zip(&types)
        .zip(formats)
        .map(|((f, ty), format)| field(f.name(), ty.clone(), *format))
        .collect();
    let mut rows: Vec<PgWireResult<DataRow>> = Vec::with_capacity(result.num_rows());
    let ncols = i16::try_from(fields.len()).map_err(|_| QueryError::InvalidParameter("more than 32767 columns".into()))?;
    for batch in &result.batches {
        let columns: Vec<PgColumn> =
            batch.columns().iter().zip(&types).map(|(a, ty)| PgColumn::new(a, ty.clone())).collect::<Result<_>>()?;
        for row in 0..batch.num_rows() {
            let mut buf = BytesMut::with_capacity(16 * columns.len());
            for (col, format) in columns.iter().zip(formats) {
                col.write_cell(row, *format == FieldFormat::Binary, &mut buf)?;
            }
            rows.push(Ok(DataRow::new(buf, ncols)));
        }
    }
    let mut response = QueryResponse::new(Arc::new(fields), futures::stream::iter(rows));
    response.set_command_tag(tag);
    Ok(response)
}

fn answer_response(answer: Answer, formats: Option<&Format>, types: Option<&[Type]>) -> PgWireResult<Response> {
    Ok(match answer {
        Answer::Rows(result, tag) => {
            let formats = match formats {
                Some(f) => result_formats(f, result.schema.fields().len())?,
                None => vec![FieldFormat::Text; result.schema.fields().len()],
            };
            Response::Query(query_response(&result, tag, &formats, types).map_err(to_pg)?)
        }
        Answer::Command(tag) => Response::Execution(Tag::new(tag)),
        Answer::Moved(rows) => Response::Execution(Tag::new("MOVE").with_rows(rows)),
        Answer::Begin => Response::TransactionStart(Tag::new("BEGIN")),
        Answer::Commit => Response::TransactionEnd(Tag::new("COMMIT")),
        Answer::Rollback => Response::TransactionEnd(Tag::new("ROLLBACK")),
    })
}

/// Server parameters of a session, reported after authentication.
struct SessionParameters(Vec<(String, String)>);

impl ServerParameterProvider for SessionParameters {
    fn server_parameters<C: ClientInfo>(&self, _client: &C) -> Option<HashMap<String, String>> {
        Some(self.0.iter().cloned().collect())
    }
}

/// The handlers of one connection (startup, simple and extended protocol) and its session.
#[derive(Debug)]
pub struct PgConnection {
    state: AppState,
    /// False when the connection limit was reached: startup answers `53300` and closes.
    admitted: bool,
    max_connections: usize,
    pid: i32,
    session: Mutex<Option<Session>>,
    parser: Arc<PgParser>,
}

impl PgConnection {
    pub fn new(state: AppState, admitted: bool, max_connections: usize, pid: i32) -> PgConnection {
        let parser = Arc::new(PgParser { state: state.clone(), principal: Arc::new(OnceLock::new()) });
        PgConnection { state, admitted, max_connections, pid, session: Mutex::new(None), parser }
    }

    /// Run `sql` (one statement, parameters bound) and say what it answered; in a failed
    /// transaction block only its end is accepted.
    /// `implicit`: the statement is one of several in a simple query, which run as one transaction
    /// unless they open one themselves.
    async fn answer(&self, sql: &str, status: TransactionStatus, implicit: bool) -> PgWireResult<Answer> {
        let mut guard = self.session.lock().await;
        let session = guard.as_mut().ok_or_else(|| user_error("FATAL", "08P01", "query before authentication"))?;
        let kind = classify(sql, session.escapes());
        if status == TransactionStatus::Error && !matches!(kind, StatementKind::Commit | StatementKind::Rollback | StatementKind::NoOp("ROLLBACK")) {
            return Err(user_error(
                "ERROR",
                "25P02",
                "current transaction is aborted, commands ignored until end of transaction block",
            ));
        }
        session.in_transaction = status != TransactionStatus::Idle || implicit;
        // The COMMIT of a failed transaction block is its ROLLBACK (its cursors end as on one).
        let sql = if status == TransactionStatus::Error && kind == StatementKind::Commit { "ROLLBACK" } else { sql };
        run_sql(session, sql).await.map_err(to_pg)
    }

    /// The end of the implicit transaction of a simple query of several statements.
    async fn end_implicit_transaction(&self, committed: bool) {
        if let Some(session) = self.session.lock().await.as_mut() {
            session.end_transaction(committed);
        }
    }

    /// The portal's statement with its parameters substituted.
    fn bound_sql(&self, portal: &Portal<PgStatement>) -> PgWireResult<String> {
        let stmt = &portal.statement.statement;
        let backend = self.state.backend().map_err(to_pg)?;
        let escapes = escapes_of(backend);
        let needed = parameter_count(&stmt.sql, escapes);
        let given = portal.parameter_len();
        if given < needed || given < stmt.param_types.len() {
            return Err(user_error(
                "ERROR",
                "08P01",
                format!("bind message supplies {given} parameters, but the prepared statement requires {}", needed.max(stmt.param_types.len())),
            ));
        }
        let binary = |i: usize| -> PgWireResult<bool> {
            match &portal.parameter_format {
                Format::UnifiedText => Ok(false),
                Format::UnifiedBinary => Ok(true),
                Format::Individual(codes) if codes.len() == given => Ok(codes[i] == 1),
                Format::Individual(codes) => Err(user_error(
                    "ERROR",
                    "08P01",
                    format!("bind message has {} parameter formats but {given} parameters", codes.len()),
                )),
            }
        };
        let values: Vec<ParamValue> = (0..given)
            .map(|i| {
                let ty = stmt.param_types.get(i).cloned().unwrap_or(Type::TEXT);
                decode_param(portal.parameters[i].as_deref(), binary(i)?, &ty).map_err(to_pg)
            })
            .collect::<PgWireResult<_>>()?;
        let dialect = if is_catalog_statement(&stmt.sql) { Dialect::DataFusion } else { backend.dialect() };
        substitute_parameters(&stmt.sql, escapes, |n| {
            values
                .get(n.wrapping_sub(1))
                .map(|v| literal(dialect, v))
                .ok_or_else(|| user_error("ERROR", "42P02", format!("there is no parameter ${n}")))
        })
    }

    /// Result column types of a statement: from the settings for `SHOW`, else planned (lake,
    /// catalog) or probed (ClickHouse). `None` for statements without rows.
    async fn describe_types(&self, stmt: &PgStatement) -> PgWireResult<Option<(Vec<String>, Vec<Type>)>> {
        let schema = match &stmt.kind {
            StatementKind::ShowSetting(Some(name)) => text_result(&[name.as_str()], Vec::new()).map_err(to_pg)?.schema,
            StatementKind::ShowSetting(None) => Settings::default().show(None).map_err(to_pg)?.schema,
            StatementKind::Fetch { name, move_only: false, .. } => {
                let guard = self.session.lock().await;
                let session = guard.as_ref().ok_or_else(|| user_error("FATAL", "08P01", "statement before authentication"))?;
                session.cursor_schema(name).map_err(to_pg)?
            }
            StatementKind::Query => {
                let backend = self.state.backend().map_err(to_pg)?;
                let principal = self.parser.principal.get().ok_or_else(|| user_error("FATAL", "08P01", "statement before authentication"))?;
                let scope = scope_of(&self.state, principal).await.map_err(to_pg)?;
                plan_description(backend, &stmt.sql, scope.as_deref()).await.map_err(to_pg)?.1
            }
            _ => return Ok(None),
        };
        let mut names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        if let Some(pg_names) = postgres_column_names(&stmt.sql).filter(|n| n.len() == names.len()) {
            for (name, pg) in names.iter_mut().zip(pg_names) {
                if let Some(pg) = pg {
                    *name = pg;
                }
            }
        }
        let types = schema.fields().iter().map(|f| pg_type(f.data_type())).collect();
        Ok(Some((names, types)))
    }
}

#[async_trait]
impl StartupHandler for PgConnection {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(startup) => {
                protocol_negotiation(client, &startup).await?;
                save_startup_parameters_to_metadata(client, &startup);
                if !self.admitted {
                    return Err(user_error(
                        "FATAL",
                        "53300",
                        format!("sorry, too many clients already (edgelens accepts {} Postgres connections)", self.max_connections),
                    ));
                }
                client.set_pid_and_secret_key(self.pid, SecretKey::I32(0));
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client.send(PgWireBackendMessage::Authentication(Authentication::CleartextPassword)).await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(message) => {
                let password = message.into_password()?;
                let metadata = client.metadata();
                let user = metadata.get(METADATA_USER).cloned().unwrap_or_default();
                let mut session = authenticate(&self.state, &user, &password.password).map_err(|e| {
                    tracing::info!(%user, error = %e, "pg authentication failed");
                    user_error("FATAL", "28P01", format!("password authentication failed for user \"{user}\""))
                })?;
                if let Some(db) = metadata.get(METADATA_DATABASE) {
                    session.database = db.clone();
                }
                if let Some(app) = metadata.get(METADATA_APPLICATION_NAME) {
                    let _ = session.settings.set_from_client("application_name", app);
                }
                let _ = self.parser.principal.set(session.principal.clone());
                let parameters = SessionParameters(session.settings.reported(&session.user));
                tracing::debug!(user = %session.user, database = %session.database, peer = %client.socket_addr(), "pg session authenticated");
                *self.session.lock().await = Some(session);
                finish_authentication(client, &parameters).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

#[async_trait]
impl SimpleQueryHandler for PgConnection {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let escapes = match self.state.backend() {
            Ok(b) => escapes_of(b),
            Err(e) => return Ok(vec![Response::Error(Box::new(error_info(&e)))]),
        };
        let mut status = client.transaction_status();
        let mut out = Vec::new();
        let statements = split_statements(query, escapes);
        let implicit = statements.len() > 1;
        let mut failed = false;
        for sql in statements {
            let response = match self.answer(sql, status, implicit).await {
                Ok(answer) => answer_response(answer, None, None),
                Err(e) => Err(e),
            };
            match response {
                Ok(r) => {
                    status = match &r {
                        Response::TransactionStart(_) => status.to_in_transaction_state(),
                        Response::TransactionEnd(_) => status.to_idle_state(),
                        _ => status,
                    };
                    out.push(r);
                }
                Err(PgWireError::UserError(info)) => {
                    out.push(Response::Error(info));
                    failed = true;
                    break;
                }
                Err(other) => return Err(other),
            }
        }
        if implicit && status == TransactionStatus::Idle {
            self.end_implicit_transaction(!failed).await;
        }
        if out.is_empty() {
            out.push(Response::EmptyQuery);
        }
        Ok(out)
    }
}

#[async_trait]
impl ExtendedQueryHandler for PgConnection {
    type Statement = PgStatement;
    type QueryParser = PgParser;

    fn query_parser(&self) -> Arc<PgParser> {
        Arc::clone(&self.parser)
    }

    /// `Describe`; a portal named like an open cursor and not bound by the client is that cursor
    /// (PostgreSQL's `DECLARE` makes a portal: psycopg 3's named cursors describe it).
    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = PgStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if message.target_type == b'P'
            && let Some(name) = message.name.as_deref().filter(|n| !n.is_empty())
            && client.portal_store().get_portal(name).is_none()
        {
            let schema = {
                let guard = self.session.lock().await;
                guard.as_ref().and_then(|s| s.cursor_schema(name).ok())
            };
            if let Some(schema) = schema {
                let fields = schema.fields().iter().map(|f| field(f.name(), pg_type(f.data_type()), FieldFormat::Text)).collect();
                return send_describe_response(client, &DescribePortalResponse::new(fields)).await;
            }
        }
        self._on_describe(client, message).await
    }

    /// `Bind`, checked as PostgreSQL checks it: as many parameters as the statement has, and format
    /// codes that are 0 or 1, one for all or one per parameter.
    async fn on_bind<C>(&self, client: &mut C, message: Bind) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = PgStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statement_name = message.statement_name.as_deref().unwrap_or(DEFAULT_NAME);
        let portal_name = message.portal_name.as_deref().unwrap_or(DEFAULT_NAME);
        let given = message.parameters.len();
        let formats = message.parameter_format_codes.len();
        if formats > 1 && formats != given {
            return Err(user_error("ERROR", "08P01", format!("bind message has {formats} parameter formats but {given} parameters")));
        }
        if message.parameter_format_codes.iter().chain(&message.result_column_format_codes).any(|c| !matches!(c, 0 | 1)) {
            return Err(user_error("ERROR", "08P01", "unsupported format code: only 0 (text) and 1 (binary) exist"));
        }
        let display = if statement_name == DEFAULT_NAME { String::new() } else { statement_name.to_owned() };
        match client.portal_store().get_statement(statement_name) {
            Some(Entry::Value(statement)) => {
                let needed = statement.statement.param_types.len();
                if given != needed {
                    return Err(user_error(
                        "ERROR",
                        "08P01",
                        format!("bind message supplies {given} parameters, but prepared statement \"{display}\" requires {needed}"),
                    ));
                }
                let portal = Portal::try_new(&message, statement)?;
                client.portal_store().put_portal(Arc::new(portal));
            }
            Some(Entry::Empty) if given == 0 => client.portal_store().put_empty_portal(portal_name),
            Some(Entry::Empty) => {
                return Err(user_error(
                    "ERROR",
                    "08P01",
                    format!("bind message supplies {given} parameters, but prepared statement \"{display}\" requires 0"),
                ));
            }
            None => return Err(PgWireError::StatementNotFound(statement_name.to_owned())),
        }
        client.send(PgWireBackendMessage::BindComplete(BindComplete::new())).await?;
        Ok(())
    }

    async fn do_describe_statement<C>(
        &self,
        _client: &mut C,
        target: &StoredStatement<PgStatement>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = PgStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let stmt = &target.statement;
        let fields = match self.describe_types(stmt).await? {
            Some((names, types)) => {
                let _ = stmt.described.set(types.clone());
                names.iter().zip(types).map(|(n, t)| field(n, t, FieldFormat::Text)).collect()
            }
            None => Vec::new(),
        };
        Ok(DescribeStatementResponse::new(stmt.param_types.clone(), fields))
    }

    async fn do_describe_portal<C>(&self, client: &mut C, portal: &Portal<PgStatement>) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = PgStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let stmt = &portal.statement.statement;
        if !matches!(stmt.kind, StatementKind::Query | StatementKind::ShowSetting(_) | StatementKind::Fetch { move_only: false, .. }) {
            return Ok(DescribePortalResponse::new(Vec::new()));
        }
        // The portal's rows are computed now (parameters are bound) and kept for `Execute`, so the
        // description is exactly what will be sent.
        let Response::Query(response) = ExtendedQueryHandler::do_query(self, client, portal, 0).await? else {
            return Ok(DescribePortalResponse::new(Vec::new()));
        };
        let fields = response.row_schema().as_ref().clone();
        portal.start(response).await;
        Ok(DescribePortalResponse::new(fields))
    }

    async fn do_query<C>(&self, client: &mut C, portal: &Portal<PgStatement>, _max_rows: usize) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = PgStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let sql = self.bound_sql(portal)?;
        let answer = self.answer(&sql, client.transaction_status(), false).await?;
        let described = portal.statement.statement.described.get().map(Vec::as_slice);
        answer_response(answer, Some(&portal.result_column_format), described)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_say_what_went_wrong() {
        let code = |e: QueryError| error_info(&e).code;
        assert_eq!(code(QueryError::SqlRefused("DROP is not allowed".into())), "42501");
        assert_eq!(code(QueryError::InvalidSql("SQL error: ParserError(\"Expected: an expression, found: EOF\")".into())), "42601");
        assert_eq!(code(QueryError::InvalidSql("Error during planning: table 'edgelens.public.nope' not found".into())), "42P01");
        assert_eq!(code(QueryError::InvalidSql("Schema error: No field named nope. Valid fields are traffic_1m.ts".into())), "42703");
        assert_eq!(code(QueryError::InvalidSql("Code: 60, DB::Exception: Table edgelens.nope doesn't exist.".into())), "42P01");
        assert_eq!(code(QueryError::InvalidSql("Error during planning: Invalid function 'nope'".into())), "42883");
        assert_eq!(code(QueryError::InvalidParameter("unrecognized configuration parameter \"x\"".into())), "42704");
        assert_eq!(code(QueryError::InvalidParameter("invalid input for a parameter of type int8: \"x\"".into())), "22P02");
        assert_eq!(code(QueryError::NotReady), "57P03");
        assert_eq!(code(QueryError::Sql { state: "34000", message: "cursor \"c\" does not exist".into() }), "34000");
        let data = |e: arrow::error::ArrowError| code(QueryError::from_user_sql(datafusion::error::DataFusionError::from(e)));
        assert_eq!(data(arrow::error::ArrowError::DivideByZero), "22012");
        assert_eq!(data(arrow::error::ArrowError::ArithmeticOverflow("Overflow happened on: 1 * 2".into())), "22003");
        assert_eq!(data(arrow::error::ArrowError::CastError("Cannot cast string 'x' to value of Int64 type".into())), "22P02");
        assert_eq!(code(QueryError::Backend("connection refused".into())), "XX000");
        assert_eq!(error_info(&QueryError::SqlRefused("x".into())).severity, "ERROR");
    }

    #[test]
    fn result_formats_follow_bind() {
        assert_eq!(result_formats(&Format::UnifiedText, 2).unwrap(), vec![FieldFormat::Text; 2]);
        assert_eq!(result_formats(&Format::UnifiedBinary, 1).unwrap(), vec![FieldFormat::Binary]);
        assert_eq!(result_formats(&Format::Individual(vec![0, 1]), 2).unwrap(), vec![FieldFormat::Text, FieldFormat::Binary]);
        assert!(result_formats(&Format::Individual(vec![0, 1]), 3).is_err());
    }
}
