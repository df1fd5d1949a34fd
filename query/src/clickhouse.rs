//! ClickHouse as a query backend: SQL sent to the server's contract views (database from
//! `[clickhouse]`), answers decoded into Arrow record batches so that every output format and API
//! shape is produced by the same code as for the lake.
//!
//! - Every request runs with `readonly = 1`: the server itself refuses writes, DDL and table
//!   functions (`file`, `url`, `remote`…). User SQL is additionally limited to one statement of a
//!   reading kind, a time limit and a result-row limit. (Not `join_use_nulls = 1`, which would
//!   make an outer join's missing side NULL as in SQL: 18.16 crashes on some joins with it.)
//! - Results travel as `TabSeparatedWithNamesAndTypes` (the richest text format of the oldest
//!   supported server, 18.16) and are decoded by [`decode_tsv`]: integer, float, `String`,
//!   `DateTime` (→ `Timestamp(µs, UTC)`, as in the lake; `DateTime('zone')`, say of `toTimeZone`, keeps
//!   its zone and is shown with its offset), `Date`, `Nullable(..)`; other types arrive
//!   as their text. A `String` column holding bytes that are not UTF-8, or named as a sketch column
//!   of the tables (`clients_sketch`), becomes `Binary`.
//! - `DateTime` text is in the server's time zone, and string literals compared with `DateTime`
//!   are read in it: the server must run in UTC. The first query checks (`timezone()`) and every
//!   query fails, saying how to set it, while it does not.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, BinaryBuilder, Date32Builder, Float64Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder, UInt64Builder, new_null_array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use clickhouse::{Client, Compression};
use edgelens_schemas::clickhouse::ClickHouseConfig;

use crate::SqlLimits;
use crate::error::{QueryError, Result};
use crate::lake::QueryResult;

/// How long a server that let a statement run out its time gets to answer `SELECT 1`.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A ClickHouse server (or a cluster's entry server) queried through the contract views.
#[derive(Clone)]
pub struct ClickHouseBackend {
    client: Client,
    url: String,
    database: String,
    limits: SqlLimits,
    /// Set once the server was found to run in UTC.
    utc: Arc<tokio::sync::OnceCell<()>>,
}

impl std::fmt::Debug for ClickHouseBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseBackend").field("url", &self.url).field("database", &self.database).finish()
    }
}

impl ClickHouseBackend {
    pub fn new(cfg: &ClickHouseConfig) -> Self {
        let url = cfg.read_server().to_owned();
        let mut client = Client::default()
            .with_url(&url)
            .with_validation(false)
            .with_compression(Compression::None)
            .with_user(&cfg.user)
            .with_database(&cfg.database)
            .with_setting("readonly", "1");
        if !cfg.password.is_empty() {
            client = client.with_password(&cfg.password);
        }
        ClickHouseBackend { client, url, database: cfg.database.clone(), limits: SqlLimits::default(), utc: Arc::default() }
    }

    /// The limits on user SQL.
    pub fn sql_limits(&self) -> SqlLimits {
        self.limits
    }

    /// The same backend with `limits` on user SQL.
    pub fn with_limits(mut self, limits: SqlLimits) -> Self {
        self.limits = limits;
        self
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    /// Run trusted SQL (the service's own queries) and decode the answer.
    pub async fn query(&self, sql: &str) -> Result<QueryResult> {
        self.fetch(self.client.query(sql), Source::Service).await
    }

    /// Run SQL from a user: one statement of a reading kind (`SELECT`, `WITH`, `SHOW`, `DESCRIBE`,
    /// `EXISTS`), within the backend's limits; the server's `readonly = 1` refuses anything else
    /// as well.
    pub async fn user_sql(&self, sql: &str) -> Result<QueryResult> {
        let limits = self.limits;
        let sql = for_clickhouse(check_read_only(sql)?);
        let q = self
            .client
            .query(&sql)
            .with_setting("max_execution_time", limits.timeout.as_secs().max(1).to_string())
            .with_setting("max_result_rows", limits.max_rows.to_string())
            .with_setting("result_overflow_mode", "throw")
            .with_setting("max_memory_usage", limits.memory_bytes.to_string());
        match tokio::time::timeout(limits.timeout + Duration::from_secs(5), self.fetch(q, Source::User)).await {
            Ok(r) => r,
            // A server that does not answer at all is not the statement's fault.
            Err(_) => Err(match self.probe_within(PROBE_TIMEOUT).await {
                Err(e) => e,
                Ok(()) => QueryError::LimitExceeded(format!("the query ran longer than the limit of {} s", limits.timeout.as_secs())),
            }),
        }
    }

    /// Every row of contract table `table`, in the lake's Arrow schema (same column types as the
    /// Parquet files: `UInt32` ASNs, `Binary` sketches).
    pub async fn table_batches(&self, table: &edgelens_schemas::TableDef) -> Result<Vec<RecordBatch>> {
        let cols: Vec<String> = table.columns.iter().map(|c| format!("`{}`", c.name)).collect();
        let r = self.query(&format!("SELECT {} FROM `{}`", cols.join(", "), table.name)).await?;
        let schema = table.arrow_schema();
        r.batches
            .iter()
            .map(|b| {
                let cols = schema.fields().iter().zip(b.columns()).map(|(f, c)| arrow::compute::cast(c, f.data_type())).collect::<std::result::Result<Vec<_>, _>>()?;
                Ok(RecordBatch::try_new(Arc::clone(&schema), cols)?)
            })
            .collect()
    }

    /// `Ok` when the server answers `SELECT 1` within `limit`; else why not, as
    /// [`QueryError::BackendUnavailable`].
    pub async fn probe_within(&self, limit: Duration) -> Result<()> {
        match tokio::time::timeout(limit, self.fetch(self.client.clone().with_database("system").query("SELECT 1"), Source::Service)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e @ QueryError::BackendUnavailable(_))) => Err(e),
            Ok(Err(e)) => Err(QueryError::BackendUnavailable(e.to_string())),
            Err(_) => Err(QueryError::BackendUnavailable(format!("the server at {} did not answer SELECT 1 within {limit:?}", self.url))),
        }
    }

    /// Whether the server answers, runs in UTC and has the contract's tables in its database
    /// (asked in `system`: the database may not exist before a writer creates it).
    pub async fn ping(&self) -> Result<()> {
        let sql = format!("SELECT name FROM system.tables WHERE database = {}", edgelens_schemas::clickhouse::string_literal(&self.database));
        let found = self.fetch(self.client.clone().with_database("system").query(&sql), Source::Service).await?;
        let mut names = std::collections::BTreeSet::new();
        for b in &found.batches {
            let col = b.column(0).as_any().downcast_ref::<arrow::array::StringArray>().ok_or_else(|| QueryError::Backend("system.tables: name is not text".into()))?;
            names.extend(col.iter().flatten().map(str::to_owned));
        }
        let missing: Vec<&str> = edgelens_schemas::tables::ALL_TABLES.iter().map(|t| t.name).filter(|t| !names.contains(*t)).collect();
        if missing.is_empty() { Ok(()) } else { Err(self.no_schema(&missing.join(", "))) }
    }

    /// Whether `name` is the configured database or one of the contract's tables.
    fn is_contract_name(&self, name: &str) -> bool {
        name == self.database || edgelens_schemas::tables::ALL_TABLES.iter().any(|t| t.name == name)
    }

    /// The error of a database without the contract's table(s) `missing` (or without the
    /// database itself).
    fn no_schema(&self, missing: &str) -> QueryError {
        let what = if missing == self.database { "does not exist".to_owned() } else { format!("has no table {missing}") };
        QueryError::NoSchema(format!(
            "the ClickHouse database {} at {} {what}: no aggregator, replay or registry import has created the edgelens schema there yet, or [clickhouse] database names another database",
            self.database, self.url
        ))
    }

    /// Whether `table` (a contract view) has at least one row.
    pub async fn has_rows(&self, table: &str) -> Result<bool> {
        Ok(self.query(&format!("SELECT 1 FROM `{table}` LIMIT 1")).await?.num_rows() > 0)
    }

    async fn fetch(&self, q: clickhouse::query::Query, source: Source) -> Result<QueryResult> {
        self.utc.get_or_try_init(|| self.check_utc()).await?;
        match answer(q, "TabSeparatedWithNamesAndTypes", source).await {
            Ok(body) => decode_tsv(&body),
            // A contract table or the database missing is a database without the schema, not a
            // mistake of the request (the service's own SQL reads only contract tables).
            Err(QueryError::InvalidSql(m)) if is_missing_table_or_database(&m) && (source == Source::Service || self.is_contract_name(&missing_name(&m))) => {
                Err(self.no_schema(&missing_name(&m)))
            }
            Err(QueryError::BackendUnavailable(m)) => Err(QueryError::BackendUnavailable(format!("{m} (server {})", self.url))),
            Err(e) => Err(e),
        }
    }
}

impl ClickHouseBackend {
    /// `Ok` when the server's time zone is UTC (by any of its names).
    async fn check_utc(&self) -> Result<()> {
        // In `system`, which every server has: the contract's database may not exist yet.
        let body = answer(self.client.clone().with_database("system").query("SELECT timezone()"), "TabSeparated", Source::Service).await?;
        let tz = String::from_utf8_lossy(&body).trim().to_owned();
        if is_utc(&tz) {
            return Ok(());
        }
        Err(QueryError::Backend(format!(
            "the ClickHouse server at {} runs in the time zone {tz:?}: it would show every DateTime shifted and read time literals in it; set <timezone>UTC</timezone> in its config (as deploy/dev/clickhouse.sh does) and restart it",
            self.url
        )))
    }
}

/// The whole answer to `q` in `format`, server errors classified.
/// Whose SQL a statement is: the service's own, or a user's (whose mistakes are the caller's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Service,
    User,
}

async fn answer(q: clickhouse::query::Query, format: &str, source: Source) -> Result<bytes::Bytes> {
    let mut cursor = q.fetch_bytes(format).map_err(|e| classify(e, source))?;
    cursor.collect().await.map_err(|e| classify(e, source))
}

/// Names of UTC in the tz database.
fn is_utc(tz: &str) -> bool {
    let name = tz.strip_prefix("Etc/").unwrap_or(tz);
    matches!(name, "UTC" | "UCT" | "Universal" | "Zulu" | "GMT" | "GMT0" | "GMT+0" | "GMT-0" | "Greenwich")
}

/// A server error: SQL mistakes (syntax, unknown identifiers, types, limits, refused in read-only
/// mode) are the caller's; a user statement's failures on the values it met or on ClickHouse's
/// typing too (the same in the service's own SQL is a defect of ours, reported as one); an
/// unreachable, silent or busy server is a 503; anything else (server failure) is ours.
fn classify(e: clickhouse::error::Error, source: Source) -> QueryError {
    use clickhouse::error::Error as E;
    let msg = e.to_string();
    // Codes: 6x syntax/identifier/type errors, 4x bad arguments, 131 a string too long for its
    // type (an RFC 3339 literal compared with a DateTime), 164 readonly, 16x/17x unknown
    // table/function; limits: 158/396 result size, 159 timeout, 241 memory.
    const USER: &[u32] = &[
        1, 6, 27, 36, 41, 42, 43, 44, 46, 47, 48, 49, 50, 53, 59, 60, 62, 69, 70, 72, 73, 81, 131, 164, 169, 170, 179, 184, 190, 215, 352,
    ];
    // More of the statement's own: 51 no columns, 63 unknown aggregate, 80 incorrect query, 133/134
    // aggregate parameters, 181 illegal FINAL (a tenant's table is a subquery), 182 illegal
    // PREWHERE, 183 unexpected expression, 258 UNION ALL structures differ, 386 no common type,
    // 403 bad JOIN ON.
    const MORE_USER: &[u32] = &[51, 63, 80, 133, 134, 181, 182, 183, 258, 386, 403];
    // Failures on the values met: 128 array too large, 135 zero index, 153 division by zero,
    // 321 value out of range, 349 a NULL cast to a type without NULL, 395 throwIf, 407 decimal
    // overflow.
    const DATA: &[u32] = &[128, 135, 153, 321, 349, 395, 407];
    // 160: the statement would run too long (or sleeps longer than allowed); 191 set too large.
    const LIMIT: &[u32] = &[158, 159, 160, 191, 241, 396];
    // The server (or a shard behind a distributed table) is busy or out of reach right now: 202
    // too many queries, 203 no free connection, 209 socket timeout, 210 network error, 279 no
    // replica reachable.
    const BUSY: &[u32] = &[202, 203, 209, 210, 279];
    let user = source == Source::User;
    match &e {
        E::BadResponse(m) => match edgelens_schemas::clickhouse::error_code(m) {
            Some(c) if USER.contains(&c) || (user && MORE_USER.contains(&c)) => QueryError::InvalidSql(first_line(m)),
            Some(c) if user && DATA.contains(&c) => QueryError::DataError(first_line(m)),
            Some(c) if LIMIT.contains(&c) => QueryError::LimitExceeded(first_line(m)),
            Some(c) if BUSY.contains(&c) => QueryError::BackendUnavailable(format!("busy: {}", first_line(m))),
            _ => QueryError::Backend(msg),
        },
        // Not reached, or no answer in time: the server is down or overloaded, not the request wrong.
        E::Network(_) | E::TimedOut => QueryError::BackendUnavailable(msg),
        _ => QueryError::Backend(msg),
    }
}

/// Whether a server error says a database or table does not exist (codes 81, 60).
fn is_missing_table_or_database(m: &str) -> bool {
    matches!(edgelens_schemas::clickhouse::error_code(m), Some(60 | 81))
}

/// The table or database a "doesn't exist" error names (`Table db.t doesn't exist`), or the
/// first line of the error.
fn missing_name(m: &str) -> String {
    let line = first_line(m);
    line.split_whitespace()
        .collect::<Vec<_>>()
        .windows(3)
        .find(|w| w[2].starts_with("doesn") && matches!(w[0], "Table" | "Database"))
        .map(|w| w[1].trim_end_matches(['.', ',']).rsplit('.').next().unwrap_or(w[1]).to_owned())
        .unwrap_or(line)
}

fn first_line(m: &str) -> String {
    m.lines().next().unwrap_or(m).replace(", e.what() = DB::Exception", "")
}

/// Words that start a statement ClickHouse or PostgreSQL knows and that does not only read: refused
/// by the read-only check (any other first word is a syntax error).
const STATEMENT_WORDS: &[&str] = &[
    "INSERT", "CREATE", "DROP", "ALTER", "TRUNCATE", "RENAME", "OPTIMIZE", "KILL", "SYSTEM", "SET", "USE", "GRANT", "REVOKE", "ATTACH", "DETACH",
    "DELETE", "UPDATE", "EXPLAIN", "CHECK", "WATCH", "EXCHANGE", "MOVE", "BACKUP", "RESTORE", "UNDROP", "COPY", "MERGE", "REPLACE", "UPSERT",
    "VALUES", "TABLE", "CALL", "DO", "BEGIN", "START", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "PREPARE", "EXECUTE", "DEALLOCATE", "DECLARE",
    "FETCH", "CLOSE", "LOCK", "UNLOCK", "ANALYZE", "VACUUM", "REINDEX", "CLUSTER", "COMMENT", "DISCARD", "LISTEN", "NOTIFY", "UNLISTEN", "LOAD",
    "RESET", "REFRESH", "SECURITY", "ABORT", "END", "IMPORT", "REASSIGN", "CHECKPOINT", "FROM", "(",
];

/// The read-only check for user SQL on ClickHouse: exactly one statement, of a reading kind, and no
/// `FORMAT`/`INTO OUTFILE`/`SETTINGS` clause of its own (the service picks the format and limits).
pub fn check_read_only(sql: &str) -> Result<&str> {
    let trimmed = sql.trim().trim_end_matches(';').trim_end();
    if trimmed.is_empty() {
        return Err(QueryError::SqlRefused("empty query".into()));
    }
    crate::sql_guard::check_nesting(trimmed, &datafusion::sql::sqlparser::dialect::ClickHouseDialect {})?;
    let tokens = tokens_outside_literals(trimmed)?;
    if tokens.iter().any(|t| t == ";") {
        return Err(QueryError::SqlRefused("only one statement per request".into()));
    }
    let first = tokens.first().map(|t| t.to_ascii_uppercase()).unwrap_or_default();
    if !["SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS"].contains(&first.as_str()) {
        // A word that starts no statement at all is a syntax error (a typo), as on the lake.
        if !STATEMENT_WORDS.contains(&first.as_str()) {
            return Err(QueryError::InvalidSql(format!("syntax error: expected an SQL statement, found {}", tokens.first().map_or("", String::as_str))));
        }
        return Err(QueryError::SqlRefused(format!("only read-only queries (SELECT, WITH, SHOW, DESCRIBE) are accepted, not {first}")));
    }
    for (i, t) in tokens.iter().enumerate() {
        let up = t.to_ascii_uppercase();
        if up == "FORMAT" || up == "SETTINGS" || (up == "INTO" && tokens.get(i + 1).is_some_and(|n| n.eq_ignore_ascii_case("OUTFILE"))) {
            return Err(QueryError::SqlRefused(format!("{up} clauses are not accepted; choose the output format with the Accept header")));
        }
        // The totals row comes apart from the rows, in no format a result here can take.
        if up == "WITH" && tokens.get(i + 1).is_some_and(|n| n.eq_ignore_ascii_case("TOTALS")) {
            return Err(QueryError::SqlRefused("WITH TOTALS is not accepted; add the totals row with UNION ALL".into()));
        }
    }
    Ok(trimmed)
}

/// `sql` in forms ClickHouse 18.16 reads as the lake does; the rest of the text is kept as
/// written, and a statement that does not parse is left to ClickHouse.
///
/// - The column positions of `GROUP BY` and `ORDER BY` (`GROUP BY 1 ORDER BY 2 DESC`, as
///   PostgreSQL, Grafana and the lake take them) are replaced by the columns they name: the alias
///   of an aliased column, else its expression. ClickHouse 18.16 reads them as constants
///   (ordering by nothing; grouping by nothing, then refusing the other columns). A position that
///   names no column (`*`, out of range) is left.
/// - Time literals in RFC 3339 or ISO 8601 form (`'2026-11-01T00:00:00Z'`,
///   `'2026-11-01T02:00:00.250+02:00'`, `'2026-11-01T00:00:00'`, `'2026-11-01 00:00:00.5'` — as
///   Grafana's `$__timeFilter` writes them), which 18.16 cannot compare with a `DateTime`, are
///   written `'2026-11-01 00:00:00'` in UTC. `DateTime` holds whole seconds, so a fraction is
///   rounded the way that keeps a comparison's answer: up for the lower bound (`>=`, `>`'s
///   complement, `BETWEEN`'s low end), down for the upper one; elsewhere (`=`, a function's
///   argument) a literal with a fraction is left as written, but for `toDateTime('…')`'s, which
///   is cut to the second. Literals in parentheses or as `toDateTime`'s argument count as bare;
///   a fraction finer than a microsecond is cut first, as the lake does; offsets may be written
///   `Z`, `+02:00`, `+0200` or `+02`. A string column compared with such a text is compared with
///   (or shows) the rewritten text. A column position's copy of its expression has its literals
///   rewritten alike.
/// - A compared time before 1970 or after 2105, which 18.16 reads as another time, is written as
///   its seconds since the epoch, a number ClickHouse compares a `DateTime` with exactly; so is a
///   `toDateTime('…')` with a fraction (a bound timestamp parameter) under `=`, `<>` and `IN`
///   (where ClickHouse then refuses the list rather than matching the second).
/// - `ORDER BY x DESC` is written `x DESC NULLS FIRST`, as PostgreSQL and the lake sort (18.16
///   sorts NULLs last whatever the direction).
/// - `x NOT BETWEEN a AND b`, which 18.16 cannot parse, is written `(NOT (x BETWEEN a AND b))`
///   when `x` is a name, a literal or a call and `b` a name, a literal (signed) or a call, with
///   nothing but spaces between `NOT` and `BETWEEN`.
pub fn for_clickhouse(sql: &str) -> std::borrow::Cow<'_, str> {
    use datafusion::sql::sqlparser::ast::{visit_expressions_mut, BinaryOperator, Expr, GroupByExpr, OrderByKind, Query, SelectItem, SetExpr, Value, ValueWithSpan, Visit, Visitor};
    use datafusion::sql::sqlparser::tokenizer::{Location, Span};
    use std::ops::ControlFlow;

    /// Byte offset of a location (line and column from 1, columns counting characters).
    fn offset(sql: &str, at: Location) -> Option<usize> {
        let mut line_start = 0;
        for _ in 1..at.line {
            line_start += sql[line_start..].find('\n')? + 1;
        }
        let column = usize::try_from(at.column).ok()?.checked_sub(1)?;
        sql[line_start..].char_indices().map(|(i, _)| line_start + i).chain(std::iter::once(sql.len())).nth(column)
    }
    let range = |span: Span| {
        let (start, end) = (offset(sql, span.start)?, offset(sql, span.end)?);
        (span != Span::empty() && start < end && sql.is_char_boundary(start)).then_some(start..end)
    };
    struct Edits<'s, F> {
        sql: &'s str,
        range: F,
        edits: Vec<(std::ops::Range<usize>, String)>,
        /// Time literals rewritten (by their start): not rewritten again when the visit reaches
        /// them on their own, and rewritten alike in the copies of column positions.
        times: std::collections::HashMap<usize, String>,
        /// Column positions naming an unaliased expression: the expression is written in their
        /// place once the visit has rewritten its time literals.
        positions: Vec<(std::ops::Range<usize>, Expr)>,
        /// `toDateTime('…')` calls with a fraction written as their seconds (by their literal's
        /// start), for `=`, `<>` and `IN`.
        seconds: std::collections::HashMap<usize, String>,
    }
    /// The literal `e` is, within any parentheses or as the one argument of `toDateTime`; whether
    /// it is bare (not `toDateTime`'s).
    fn literal(e: &Expr) -> Option<(&ValueWithSpan, bool)> {
        match e {
            Expr::Value(v) => Some((v, true)),
            Expr::Nested(inner) => literal(inner),
            // Cast to a time (`CAST($1 AS TIMESTAMP)`, as drivers write parameters): rounded as
            // an ordering comparison needs (under `=` and `<>` the cast is made one to a number,
            // see `exact_seconds`).
            e if time_cast(e).is_some() => time_cast(e).and_then(literal).map(|(v, _)| (v, false)),
            e => to_datetime_arg(e).map(|v| (v, false)),
        }
    }
    /// The argument of `e` when it is a cast to a time.
    fn time_cast(e: &Expr) -> Option<&Expr> {
        use datafusion::sql::sqlparser::ast::DataType;
        match e {
            Expr::Cast { expr, data_type: DataType::Timestamp(..) | DataType::Datetime(_) | DataType::Datetime64(..), .. } => Some(expr),
            _ => None,
        }
    }
    /// `key` when it is a column position (`ORDER BY 2`): its literal, and the item of `select`
    /// it names (none when out of range).
    fn position<'s, 'k>(select: &'s datafusion::sql::sqlparser::ast::Select, key: &'k Expr) -> Option<(&'k ValueWithSpan, Option<&'s SelectItem>)> {
        let Expr::Value(v) = key else { return None };
        let Value::Number(n, _) = &v.value else { return None };
        Some((v, n.parse::<usize>().ok().and_then(|n| n.checked_sub(1)).and_then(|i| select.projection.get(i))))
    }
    /// The name of a selected column outside its query, when it has one: its alias, or the
    /// column it is.
    fn column_name(item: &SelectItem) -> Option<&datafusion::sql::sqlparser::ast::Ident> {
        match item {
            SelectItem::ExprWithAlias { alias, .. } => Some(alias),
            SelectItem::UnnamedExpr(Expr::Identifier(id)) => Some(id),
            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(ids)) => ids.last(),
            _ => None,
        }
    }
    /// Whether `e` is a time: a column the tables declare a timestamp (by its name), a
    /// `toDateTime(…)` (a bound parameter) or a cast to a time, within any parentheses. A
    /// literal with a fraction of a second is made a number only against one: compared with
    /// text (`site = '…'`), it stays text.
    fn timeish(e: &Expr) -> bool {
        use edgelens_schemas::tables::{ColumnType, ALL_TABLES};
        let column = |name: &str| ALL_TABLES.iter().flat_map(|t| t.columns).any(|c| c.ty == ColumnType::Timestamp && c.name.eq_ignore_ascii_case(name));
        match e {
            Expr::Nested(inner) => timeish(inner),
            Expr::Identifier(id) => column(&id.value),
            Expr::CompoundIdentifier(ids) => ids.last().is_some_and(|id| column(&id.value)),
            e => to_datetime_arg(e).is_some() || time_cast(e).is_some(),
        }
    }
    /// The literal of `toDateTime('…')`: 18.16 reads no fraction nor offset there, so it is
    /// rewritten like a bare one; outside a comparison a fraction is cut, as `toDateTime` cuts a
    /// number's. (Timestamp parameters with a fraction of a second take this form, see
    /// `pgwire::types::literal`.)
    fn to_datetime_arg(e: &Expr) -> Option<&ValueWithSpan> {
        use datafusion::sql::sqlparser::ast::{FunctionArg, FunctionArgExpr, FunctionArguments};
        let Expr::Function(f) = e else { return None };
        let FunctionArguments::List(list) = &f.args else { return None };
        match (f.name.to_string().eq_ignore_ascii_case("toDateTime"), list.args.as_slice()) {
            (true, [FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v)))]) => Some(v),
            _ => None,
        }
    }
    impl<F: Fn(Span) -> Option<std::ops::Range<usize>>> Edits<'_, F> {
        /// Write `text` in place of the time literal at `at` (and in the copies of column
        /// positions).
        fn record(&mut self, at: std::ops::Range<usize>, text: String) {
            self.times.insert(at.start, text.clone());
            self.edits.push((at, text));
        }

        /// Rewrite `v` if it is a time literal; `round`: how a fraction of a second is rounded
        /// (`None`: a literal with one is left).
        fn time(&mut self, v: &ValueWithSpan, round: Option<Round>) {
            let Value::SingleQuotedString(text) = &v.value else { return };
            let Some(at) = (self.range)(v.span) else { return };
            if self.times.contains_key(&at.start) {
                return;
            }
            if let Some(t) = clickhouse_time(text, round) {
                self.record(at, format!("'{t}'"));
            }
        }

        /// [`Self::time`] for a literal compared with something, rounded by `round`; a bare one
        /// outside the years 18.16 reads as `DateTime` text (which it would read as another
        /// time) is written as its seconds, a number ClickHouse compares a `DateTime` with
        /// exactly.
        fn compared_time(&mut self, v: &ValueWithSpan, round: Option<Round>, bare: bool) {
            self.time(v, round);
            let Value::SingleQuotedString(text) = &v.value else { return };
            let Some(at) = (self.range)(v.span) else { return };
            if !bare || self.times.contains_key(&at.start) {
                return;
            }
            if let Some(secs) = parse_time(text).filter(|t| !in_datetime_range(*t)).map(seconds_text) {
                self.record(at, secs);
            }
        }

        /// `x NOT BETWEEN a AND b` (which 18.16 cannot parse) as `(NOT (x BETWEEN a AND b))`,
        /// when the starts and ends of `x` and `b` are known: from their spans (names, literals),
        /// the parentheses and signs the spans leave out, or a call's parentheses.
        fn not_between(&mut self, x: &Expr, low: &Expr, high: &Expr) {
            use datafusion::sql::sqlparser::ast::Spanned;
            let (Some(x), Some(low), Some(high)) = (self.whole(x), (self.range)(low.span()), self.whole(high)) else { return };
            let high_end = high.end;
            let Some(between) = self.sql.get(x.end..low.start) else { return };
            // Comments blanked (a comment may hold any words); quoted text there is no `NOT BETWEEN`.
            let mut clean = between.to_owned();
            let mut i = 0;
            while let Some(c) = between[i..].chars().next() {
                match quoted_end(between, i) {
                    Some(_) if matches!(c, '\'' | '"' | '`') => return,
                    Some((end, _)) => {
                        clean.replace_range(i..end, &" ".repeat(end - i));
                        i = end;
                    }
                    None => i += c.len_utf8(),
                }
            }
            // `NOT BETWEEN` and nothing else between `x` and `low` (whose span may leave out a
            // sign or parentheses before it).
            let up = clean.trim_end_matches(|c: char| matches!(c, '(' | '-' | '+') || c.is_whitespace()).to_ascii_uppercase();
            let words: Vec<&str> = up.split_whitespace().collect();
            if words != ["NOT", "BETWEEN"] {
                return;
            }
            let at = up.find("NOT").unwrap_or(0);
            let rest = up[at + 3..].trim_start();
            let not = x.end + at..x.end + up.len() - rest.len();
            // Parenthesised whole: `NOT` binds looser than what may follow (`IS NULL`, `=`).
            self.edits.push((x.start..x.start, "(NOT (".into()));
            self.edits.push((not, String::new()));
            self.edits.push((high_end..high_end, "))".into()));
        }

        /// The text of `e` when it is a name, a literal, a call, or one of them in parentheses or
        /// with a sign: from its span, moved out over the parentheses and sign the span leaves
        /// out, or to the parenthesis closing a call's arguments (where its span may stop short).
        fn whole(&self, e: &Expr) -> Option<std::ops::Range<usize>> {
            use datafusion::sql::sqlparser::ast::{Spanned, UnaryOperator};
            match e {
                Expr::Identifier(_) | Expr::CompoundIdentifier(_) | Expr::Value(_) => (self.range)(e.span()),
                Expr::Function(_) => {
                    let r = (self.range)(e.span())?;
                    Some(r.start..call_end(self.sql, r.start)?)
                }
                Expr::Nested(inner) => {
                    let r = self.whole(inner)?;
                    let before = self.sql[..r.start].trim_end();
                    let after = &self.sql[r.end..];
                    let close = r.end + (after.len() - after.trim_start().len());
                    (before.ends_with('(') && after.trim_start().starts_with(')')).then(|| before.len() - 1..close + 1)
                }
                Expr::UnaryOp { op: UnaryOperator::Minus | UnaryOperator::Plus, expr } => {
                    let r = self.whole(expr)?;
                    let before = self.sql[..r.start].trim_end();
                    before.ends_with(['-', '+']).then(|| before.len() - 1..r.end)
                }
                _ => None,
            }
        }

        /// `e`, when it is a time literal with a fraction of a second (in any parentheses),
        /// written as its seconds with the fraction (`toFloat64(1793491270.5)`), for `=` and `<>`
        /// as [`Self::exact_seconds`] (18.16 cannot read the fraction: it was an error).
        fn exact_literal(&mut self, e: &Expr) {
            self.bare_literal(e, |text| fractional_seconds(text).map(|secs| format!("toFloat64({secs})")));
        }

        /// `e`, when it is a time literal of a whole second (in any parentheses), written
        /// `toDateTime('…')` in UTC: a `CASE` on a time compares it as a time.
        fn case_time(&mut self, e: &Expr) {
            use chrono::Timelike;
            let whole = |t: &chrono::NaiveDateTime| t.nanosecond() == 0 && in_datetime_range(*t);
            self.bare_literal(e, |text| parse_time(text).filter(whole).map(|t| format!("toDateTime('{}')", t.format("%Y-%m-%d %H:%M:%S"))));
        }

        /// `e`, when it is a bare literal (in any parentheses) not rewritten yet, written as `to`
        /// gives its text (nothing when `to` gives nothing).
        fn bare_literal(&mut self, e: &Expr, to: impl FnOnce(&str) -> Option<String>) {
            let Some((v, true)) = literal(e) else { return };
            let Value::SingleQuotedString(text) = &v.value else { return };
            let Some(at) = (self.range)(v.span).filter(|at| !self.times.contains_key(&at.start)) else { return };
            if let Some(written) = to(text) {
                self.record(at, written);
            }
        }

        /// `e`, when it is `toDateTime('…')` with a fraction of a second (a bound timestamp
        /// parameter), written as its seconds with the fraction (`toFloat64(1793491270.5)`):
        /// ClickHouse compares a `DateTime` with a number exactly, so `=` and `<>` answer as on
        /// the lake, where cutting the fraction would make `=` true for the second. Also under
        /// `CAST(… AS TIMESTAMP)`, a parameter or a literal, the cast then made one to `Float64`
        /// (a cast to `DateTime` would cut the fraction again).
        fn exact_seconds(&mut self, e: &Expr) {
            use datafusion::sql::sqlparser::ast::{CastKind, Spanned};
            let mut e = e;
            while let Expr::Nested(inner) = e {
                e = inner;
            }
            if let Expr::Cast { kind: CastKind::Cast, expr, .. } = e
                && time_cast(e).is_some()
            {
                let mut inner = expr.as_ref();
                while let Expr::Nested(i) = inner {
                    inner = i;
                }
                let (v, call) = match (inner, to_datetime_arg(inner)) {
                    (Expr::Function(f), Some(v)) => (v, Some(f)),
                    (Expr::Value(v), None) => (v, None),
                    _ => return,
                };
                let Value::SingleQuotedString(text) = &v.value else { return };
                let Some(at) = (self.range)(v.span) else { return };
                let (Some(secs), false) = (fractional_seconds(text), self.times.contains_key(&at.start)) else { return };
                // The type: `AS <type>)` after the cast's argument.
                let end = match call {
                    Some(f) => (self.range)(f.name.span()).and_then(|r| call_end(self.sql, r.start)),
                    None => Some(at.end),
                };
                let Some(mut end) = end.filter(|&end| self.sql[at.end..end].chars().all(|c| c == ')' || c.is_whitespace())) else { return };
                // Past the parentheses around the argument, and comments.
                loop {
                    let rest = &self.sql[end..];
                    let skipped = rest.len() - rest.trim_start().len();
                    match quoted_end(self.sql, end + skipped) {
                        Some((after, true)) if self.sql[end + skipped..].starts_with(['-', '/']) => end = after,
                        _ if rest.trim_start().starts_with(')') => end += skipped + 1,
                        _ => break,
                    }
                }
                let rest = &self.sql[end..];
                let after_as = rest.trim_start();
                let Some(ty) = after_as.get(..2).filter(|w| w.eq_ignore_ascii_case("AS")).map(|_| &after_as[2..]) else { return };
                if !ty.starts_with(char::is_whitespace) {
                    return;
                }
                let Some(close) = ty.find(')').filter(|&c| !ty[..c].contains(['(', '\'', '"'])) else { return };
                let ty_start = end + (rest.len() - ty.len()) + (ty.len() - ty.trim_start().len());
                let ty_end = end + (rest.len() - ty.len()) + ty[..close].trim_end().len();
                match call {
                    Some(f) => {
                        let Some(name) = (self.range)(f.name.span()) else { return };
                        self.call_as_seconds(name, at, text, secs);
                    }
                    None => self.record(at, format!("toFloat64({secs})")),
                }
                self.edits.push((ty_start..ty_end, "Float64".into()));
                return;
            }
            let (Some(v), Expr::Function(f)) = (to_datetime_arg(e), e) else { return };
            let Value::SingleQuotedString(text) = &v.value else { return };
            let (Some(at), Some(name)) = ((self.range)(v.span), (self.range)(f.name.span())) else { return };
            let Some(secs) = fractional_seconds(text) else { return };
            if self.times.contains_key(&at.start) {
                return;
            }
            self.call_as_seconds(name, at, text, secs);
        }

        /// `toDateTime('<text>')`, its name at `name` and its literal at `at`, written
        /// `toFloat64(<secs>)` (and so in the copies of column positions).
        fn call_as_seconds(&mut self, name: std::ops::Range<usize>, at: std::ops::Range<usize>, text: &str, secs: String) {
            self.times.insert(at.start, format!("'{text}'"));
            self.seconds.insert(at.start, secs.clone());
            self.edits.push((name, "toFloat64".into()));
            self.edits.push((at, secs));
        }

        /// `NULLS FIRST` after the `DESC` that follows sort key `key`: the first word `DESC`
        /// outside parentheses, quotes and comments from its start, before a `,` or the end of
        /// what encloses it (spans of some expressions stop short of their end).
        fn nulls_first_after_desc(&mut self, key: &Expr) {
            use datafusion::sql::sqlparser::ast::Spanned;
            let Some(r) = (self.range)(key.span()) else { return };
            let b = self.sql.as_bytes();
            // A parenthesised key's span starts inside its parentheses.
            let start = self.sql[..r.start].trim_end_matches(|c: char| c == '(' || c.is_whitespace()).len();
            let (mut i, mut depth) = (start, 0usize);
            while i < b.len() {
                if let Some((end, _)) = quoted_end(self.sql, i) {
                    i = end;
                    continue;
                }
                match b[i] {
                    b'(' => depth += 1,
                    b')' if depth == 0 => return,
                    b')' => depth -= 1,
                    b',' | b';' if depth == 0 => return,
                    c if c.is_ascii_alphanumeric() || c == b'_' => {
                        let word = i + self.sql[i..].find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(self.sql.len() - i);
                        if depth == 0 && self.sql[i..word].eq_ignore_ascii_case("DESC") {
                            self.edits.push((word..word, " NULLS FIRST".into()));
                            return;
                        }
                        i = word;
                        continue;
                    }
                    _ => {}
                }
                i += 1;
            }
        }

        /// `a UNION ALL b ORDER BY x LIMIT n` as `SELECT * FROM (a UNION ALL b) ORDER BY x LIMIT n`,
        /// its column positions named (by the first branch's aliases or column names), when its
        /// first branch is a plain `SELECT` whose columns have distinct names, its positions name
        /// columns with names, and its `ORDER BY` or `LIMIT` keyword is found before the first
        /// expression of that clause; otherwise as written.
        fn whole_set_operation(&mut self, query: &Query) {
            use datafusion::sql::sqlparser::ast::{LimitClause, Select, Spanned};
            fn leftmost(body: &SetExpr) -> Option<&Select> {
                match body {
                    SetExpr::Select(s) => Some(s),
                    SetExpr::SetOperation { left, .. } => leftmost(left),
                    _ => None,
                }
            }
            let order = match query.order_by.as_ref().map(|o| &o.kind) {
                Some(OrderByKind::Expressions(exprs)) => exprs.first().map(|o| (&o.expr, &["ORDER", "BY"][..])),
                Some(_) => return,
                None => None,
            };
            let limit = match &query.limit_clause {
                Some(LimitClause::LimitOffset { limit: Some(limit), limit_by, .. }) if limit_by.is_empty() => Some(limit),
                Some(LimitClause::OffsetCommaLimit { offset, .. }) => Some(offset),
                Some(_) => return,
                None => None,
            };
            let Some((first, keywords)) = order.or(limit.map(|l| (l, &["LIMIT"][..]))) else { return };
            if query.fetch.is_some() {
                return;
            }
            let Some(select) = leftmost(&query.body) else { return };
            // 18.16's `SELECT *` of a subquery keeps one column of each name: the first branch's
            // must be distinct (by their aliases, names, or text), and `*` alone.
            let names: Vec<String> = select.projection.iter().map(|item| column_name(item).map_or_else(|| item.to_string(), |id| id.value.clone())).collect();
            let wildcard = select.projection.iter().any(|i| matches!(i, SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)));
            if (wildcard && names.len() > 1) || names.iter().enumerate().any(|(i, n)| names[..i].contains(n)) {
                return;
            }
            // Each position must name a column by its name outside the subquery.
            let positions: Vec<(std::ops::Range<usize>, String)> = match query.order_by.as_ref().map(|o| &o.kind) {
                Some(OrderByKind::Expressions(exprs)) => {
                    let mut named = Vec::new();
                    for key in exprs {
                        let Some((v, item)) = position(select, &key.expr) else { continue };
                        let (Some(name), Some(at)) = (item.and_then(column_name), (self.range)(v.span)) else { return };
                        named.push((at, name.to_string()));
                    }
                    named
                }
                _ => Vec::new(),
            };
            let (Some(start), Some(clause)) = ((self.range)(select.select_token.0.span), (self.range)(first.span())) else { return };
            if !self.sql[start.start..].get(..6).is_some_and(|w| w.eq_ignore_ascii_case("SELECT")) {
                return;
            }
            // The clause's keywords, and only they, right before its first expression. The
            // parenthesis goes right before them (not after the text before: a comment may end it).
            let mut end = clause.start;
            for word in keywords.iter().rev() {
                let before = self.sql[..end].trim_end();
                if !before.len().checked_sub(word.len()).and_then(|at| before.get(at..)).is_some_and(|w| w.eq_ignore_ascii_case(word)) {
                    return;
                }
                end = before.len() - word.len();
            }
            if !self.sql[..end].ends_with(char::is_whitespace) {
                return;
            }
            self.edits.push((start.start..start.start, "SELECT * FROM (".into()));
            self.edits.push((end..end, ") ".into()));
            self.edits.extend(positions);
        }
    }
    impl<F: Fn(Span) -> Option<std::ops::Range<usize>>> Visitor for Edits<'_, F> {
        type Break = ();
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
            use datafusion::sql::sqlparser::ast::Select;
            /// The `SELECT`s of a body: itself, or each branch of a `UNION` (…).
            fn selects<'q>(body: &'q SetExpr, out: &mut Vec<&'q Select>) {
                match body {
                    SetExpr::Select(s) => out.push(s),
                    SetExpr::SetOperation { left, right, .. } => {
                        selects(left, out);
                        selects(right, out);
                    }
                    _ => {}
                }
            }
            let mut branches = Vec::new();
            selects(&query.body, &mut branches);
            // Each branch's `GROUP BY`; the query's `ORDER BY` when it has one branch.
            let mut keys: Vec<(&Select, &Expr)> = Vec::new();
            for select in &branches {
                if let GroupByExpr::Expressions(exprs, _) = &select.group_by {
                    keys.extend(exprs.iter().map(|e| (*select, e)));
                }
            }
            if let (SetExpr::Select(select), Some(OrderByKind::Expressions(exprs))) = (query.body.as_ref(), query.order_by.as_ref().map(|o| &o.kind)) {
                keys.extend(exprs.iter().map(|o| (select.as_ref(), &o.expr)));
            }
            // PostgreSQL (and the lake) sort NULLs first under `DESC`, 18.16 last: said outright.
            if let Some(OrderByKind::Expressions(exprs)) = query.order_by.as_ref().map(|o| &o.kind) {
                for o in exprs.iter().filter(|o| o.options.asc == Some(false) && o.options.nulls_first.is_none() && o.with_fill.is_none()) {
                    self.nulls_first_after_desc(&o.expr);
                }
            }
            // 18.16 applies a `UNION`'s `ORDER BY` and `LIMIT` to its last branch only (and
            // takes a position for a constant): they are made the whole's, as a subquery's.
            if let SetExpr::SetOperation { .. } = query.body.as_ref() {
                self.whole_set_operation(query);
            }
            for (select, key) in keys {
                let Some((v, Some(item))) = position(select, key) else { continue };
                let Some(at) = (self.range)(v.span) else { continue };
                match item {
                    SelectItem::ExprWithAlias { alias, .. } => self.edits.push((at, alias.to_string())),
                    // Written as the parser writes it back (the spans of some expressions stop
                    // short), after the visit.
                    SelectItem::UnnamedExpr(e) => self.positions.push((at, e.clone())),
                    _ => {}
                }
            }
            ControlFlow::Continue(())
        }

        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            match expr {
                Expr::BinaryOp { left, op, right } => {
                    // `x >= t`: true from ceil(t) on; `x > t`, `x <= t`: from / up to floor(t);
                    // `x < t`: up to ceil(t) exclusive. Mirrored with the literal on the left.
                    let round = |literal_right: bool| match (op, literal_right) {
                        (BinaryOperator::GtEq | BinaryOperator::Lt, true) | (BinaryOperator::LtEq | BinaryOperator::Gt, false) => Some(Round::Up),
                        (BinaryOperator::Gt | BinaryOperator::LtEq, true) | (BinaryOperator::Lt | BinaryOperator::GtEq, false) => Some(Round::Down),
                        _ => None,
                    };
                    if matches!(op, BinaryOperator::Eq | BinaryOperator::NotEq) {
                        for (side, other) in [(left, right), (right, left)] {
                            self.exact_seconds(side);
                            if timeish(other) {
                                self.exact_literal(side);
                            }
                        }
                    }
                    if let Some((v, bare)) = literal(right) {
                        self.compared_time(v, round(true), bare);
                    }
                    if let Some((v, bare)) = literal(left) {
                        self.compared_time(v, round(false), bare);
                    }
                }
                // `NOT BETWEEN` is `< low OR > high`: rounded alike; a time with a fraction
                // between them is compared as its exact seconds.
                Expr::Between { expr, negated, low, high } => {
                    self.exact_seconds(expr);
                    if timeish(low) || timeish(high) {
                        self.exact_literal(expr);
                    }
                    if let Some((v, bare)) = literal(low) {
                        self.compared_time(v, Some(Round::Up), bare);
                    }
                    if let Some((v, bare)) = literal(high) {
                        self.compared_time(v, Some(Round::Down), bare);
                    }
                    if *negated {
                        self.not_between(expr, low, high);
                    }
                }
                // `CASE x WHEN t`: `x = t`.
                Expr::Case { operand: Some(operand), conditions, .. } => {
                    let whens = || conditions.iter().map(|c| &c.condition);
                    let time = timeish(operand) || whens().any(timeish);
                    for e in std::iter::once(operand.as_ref()).chain(whens()) {
                        self.exact_seconds(e);
                        if time {
                            self.exact_literal(e);
                        }
                    }
                    // A whole second as a `DateTime`: 18.16 matches a `DateTime` only with
                    // values of its type there (text is a type error, a number never matches).
                    if timeish(operand) {
                        for e in whens() {
                            self.case_time(e);
                        }
                    }
                }
                Expr::Value(v) => self.time(v, None),
                // A parameter with a fraction is equal to no whole second: as its seconds,
                // ClickHouse refuses the list (a type mismatch) instead of matching the second.
                Expr::InList { list, .. } => {
                    for item in list {
                        self.exact_seconds(item);
                    }
                }
                e => {
                    if let Some(v) = to_datetime_arg(e) {
                        self.time(v, Some(Round::Down));
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let Ok(statements) = datafusion::sql::sqlparser::parser::Parser::parse_sql(&datafusion::sql::sqlparser::dialect::ClickHouseDialect {}, sql) else {
        return cut_time_calls(sql);
    };
    let mut found = Edits { sql, range, edits: Vec::new(), times: Default::default(), positions: Vec::new(), seconds: Default::default() };
    let _ = statements.visit(&mut found);
    let Edits { range, mut edits, times, positions, seconds, .. } = found;
    for (at, mut e) in positions {
        let _ = visit_expressions_mut(&mut e, |e| {
            if let Some(secs) = to_datetime_arg(e).and_then(|v| range(v.span)).and_then(|r| seconds.get(&r.start)).cloned() {
                // As the statement's text has it: `toFloat64(<seconds>)`.
                if let Expr::Function(f) = e {
                    f.name = datafusion::sql::sqlparser::ast::ObjectName::from(vec![datafusion::sql::sqlparser::ast::Ident::new("toFloat64")]);
                    if let datafusion::sql::sqlparser::ast::FunctionArguments::List(list) = &mut f.args {
                        if let Some(datafusion::sql::sqlparser::ast::FunctionArg::Unnamed(datafusion::sql::sqlparser::ast::FunctionArgExpr::Expr(Expr::Value(v)))) = list.args.first_mut() {
                            v.value = Value::Number(secs, false);
                        }
                    }
                }
            } else if let Expr::Value(v) = e {
                let start = range(v.span).map(|r| r.start);
                if let Some(t) = start.filter(|s| !seconds.contains_key(s)).and_then(|s| times.get(&s)) {
                    v.value = match t.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
                        Some(text) => Value::SingleQuotedString(text.to_owned()),
                        None => Value::Number(t.clone(), false),
                    };
                }
            } else if let Expr::Between { negated: negated @ true, .. } = e {
                // 18.16 has no `NOT BETWEEN` (see `not_between`).
                *negated = false;
                let between = std::mem::replace(e, Expr::Value(Value::Null.into()));
                *e = Expr::Nested(Box::new(Expr::UnaryOp { op: datafusion::sql::sqlparser::ast::UnaryOperator::Not, expr: Box::new(Expr::Nested(Box::new(between))) }));
            }
            ControlFlow::<()>::Continue(())
        });
        edits.push((at, format!("({e})")));
    }
    if edits.is_empty() {
        return sql.into();
    }
    // From the end; at one place a replacement before an insertion.
    edits.sort_by_key(|(r, _)| std::cmp::Reverse((r.start, r.end)));
    let mut out = sql.to_owned();
    for (at, text) in edits {
        out.replace_range(at, &text);
    }
    out.into()
}

/// The end of the call starting at `start` of `sql`: after the parenthesis closing its arguments
/// (quoted text and comments skipped).
fn call_end(sql: &str, start: usize) -> Option<usize> {
    let b = sql.as_bytes();
    let mut i = start + sql.get(start..)?.find('(')?;
    let mut depth = 0usize;
    while i < b.len() {
        if let Some((end, _)) = quoted_end(sql, i) {
            i = end;
            continue;
        }
        match b[i] {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// `sql`, which does not parse, with the literal of each `toDateTime('…')` call (the form of a
/// timestamp parameter with a fraction) cut to its second, as `toDateTime` cuts a number's: 18.16
/// reads no fraction there.
fn cut_time_calls(sql: &str) -> std::borrow::Cow<'_, str> {
    const CALL: &str = "toDateTime('";
    let b = sql.as_bytes();
    let mut edits = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(CALL.as_bytes()) {
            let start = i + CALL.len();
            let Some(len) = sql[start..].find('\'') else { break };
            let literal = &sql[start..start + len];
            if let Some(t) = clickhouse_time(literal, Some(Round::Down)) {
                edits.push((start..start + len, t));
            }
            i = start + len + 1;
            continue;
        }
        // Quoted text and comments are skipped whole: a call named in them is none.
        i = quoted_end(sql, i).map_or(i + 1, |(end, _)| end);
    }
    if edits.is_empty() {
        return sql.into();
    }
    let mut out = sql.to_owned();
    for (at, t) in edits.into_iter().rev() {
        out.replace_range(at, &t);
    }
    out.into()
}

/// The seconds since the epoch of the time `text`, with its fraction (`1793491270.5`), when it is a
/// time in RFC 3339 / ISO 8601 form with a fraction of a second within `DateTime`'s range.
fn fractional_seconds(text: &str) -> Option<String> {
    use chrono::Timelike;
    let utc = parse_time(text)?;
    let micros = utc.nanosecond() / 1_000;
    (micros != 0 && in_datetime_range(utc)).then(|| seconds_text(utc))
}

/// `t` as seconds since the epoch, with six decimals when it has a fraction (`1793491270.500000`,
/// `-60.250000`).
pub(crate) fn seconds_text(t: chrono::NaiveDateTime) -> String {
    let us = t.and_utc().timestamp_micros();
    let (sign, abs) = (if us < 0 { "-" } else { "" }, us.unsigned_abs());
    match abs % 1_000_000 {
        0 => format!("{sign}{}", abs / 1_000_000),
        frac => format!("{sign}{}.{frac:06}", abs / 1_000_000),
    }
}

/// Whether `t` is within the times ClickHouse 18.16 reads as `DateTime` text: 1970 to 2105 (it
/// holds seconds up to 2106-02-07, but reads text of 2106 as another time).
pub(crate) fn in_datetime_range(t: chrono::NaiveDateTime) -> bool {
    use chrono::Datelike;
    t.and_utc().timestamp() >= 0 && t.year() <= 2105
}

/// The time `text` in RFC 3339 / ISO 8601 form, in UTC, cut to microseconds as the lake compares
/// it.
fn parse_time(text: &str) -> Option<chrono::NaiveDateTime> {
    use chrono::Timelike;
    let b = text.as_bytes();
    // A date, then `T` or a space and a time: the form is settled before any parsing.
    if b.len() < 19 || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ') || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return None;
    }
    // With an offset: `Z`, `+02:00`, `+0200` or `+02`, after `T` or a space; else a UTC time.
    let zoned = chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .or_else(|| ["%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z"].iter().find_map(|f| chrono::DateTime::parse_from_str(text, f).ok()));
    let utc = match zoned {
        Some(t) => t.naive_utc(),
        None => ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"].iter().find_map(|f| chrono::NaiveDateTime::parse_from_str(text, f).ok())?,
    };
    utc.with_nanosecond(utc.nanosecond() / 1_000 * 1_000)
}

/// How a time literal's fraction of a second is rounded to a whole second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    Up,
    Down,
}

/// `text` as ClickHouse's `DateTime` text (`YYYY-MM-DD HH:MM:SS`, UTC) when it is a time in RFC
/// 3339 / ISO 8601 form that is not already one; a fraction of a second is rounded by `round`
/// (`None`: no answer for a time with one) after cutting it to microseconds, as the lake does.
/// Dates and times outside `DateTime`'s range are left.
fn clickhouse_time(text: &str, round: Option<Round>) -> Option<String> {
    use chrono::Timelike;
    let utc = parse_time(text)?;
    let whole = utc.with_nanosecond(0)?;
    let t = match (utc == whole, round) {
        (true, _) => whole,
        (false, Some(Round::Down)) => whole,
        (false, Some(Round::Up)) => whole + chrono::Duration::seconds(1),
        (false, None) => return None,
    };
    let out = t.format("%Y-%m-%d %H:%M:%S").to_string();
    (out != text && in_datetime_range(t)).then_some(out)
}

/// Where quoted text (`'…'`, `"…"`, `` `…` ``, with backslash escapes) or a comment (`-- …` up to
/// its line's end, `/* … */`) starting at byte `i` of `sql` ends: the byte after it, and whether
/// quoted text was closed; `None` when none starts there.
fn quoted_end(sql: &str, i: usize) -> Option<(usize, bool)> {
    let b = sql.as_bytes();
    match (b.get(i)?, b.get(i + 1)) {
        (&q @ (b'\'' | b'"' | b'`'), _) => {
            let mut j = i + 1;
            while j < b.len() && b[j] != q {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            Some(if j < b.len() { (j + 1, true) } else { (b.len(), false) })
        }
        (b'-', Some(b'-')) => Some((sql[i..].find('\n').map_or(b.len(), |p| i + p), true)),
        (b'/', Some(b'*')) => Some((sql[i + 2..].find("*/").map_or(b.len(), |p| i + 2 + p + 2), true)),
        _ => None,
    }
}

/// Words and `;` of `sql`, skipping string literals, quoted identifiers and comments.
fn tokens_outside_literals(sql: &str) -> Result<Vec<String>> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if let Some((end, closed)) = quoted_end(sql, i) {
            if !closed {
                return Err(QueryError::InvalidSql("unterminated quoted text".into()));
            }
            i = end;
            continue;
        }
        let c = b[i];
        match c {
            b';' => {
                out.push(";".to_owned());
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                out.push(sql[start..i].to_owned());
            }
            _ => i += 1,
        }
    }
    Ok(out)
}

/// How one ClickHouse column type is decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    UInt,
    Int,
    Float,
    Str,
    /// `DateTime`, or `DateTime('zone')`: its text is the wall clock in that zone.
    DateTime(Option<String>),
    Date,
    Nothing,
    /// Any other type: its text.
    Text,
}

fn kind_of(ty: &str) -> (Kind, bool) {
    let (inner, nullable) = match ty.strip_prefix("Nullable(").and_then(|t| t.strip_suffix(')')) {
        Some(t) => (t, true),
        None => (ty, false),
    };
    let kind = match inner {
        "UInt8" | "UInt16" | "UInt32" | "UInt64" => Kind::UInt,
        "Int8" | "Int16" | "Int32" | "Int64" => Kind::Int,
        "Float32" | "Float64" => Kind::Float,
        "String" => Kind::Str,
        t if t.starts_with("FixedString(") => Kind::Str,
        "DateTime" => Kind::DateTime(None),
        t if t.starts_with("DateTime(") => Kind::DateTime(datetime_zone(t)),
        "Date" => Kind::Date,
        "Nothing" => Kind::Nothing,
        _ => Kind::Text,
    };
    let nullable = nullable || kind == Kind::Nothing;
    (kind, nullable)
}

/// The zone of a `DateTime('Europe/Berlin')` type; `None` for UTC, which is how edgelens' own
/// columns are shown.
fn datetime_zone(ty: &str) -> Option<String> {
    let zone = ty.strip_prefix("DateTime(")?.strip_suffix(')')?.trim().trim_matches('\'').trim();
    (!zone.is_empty() && !crate::format::is_utc_zone(zone)).then(|| zone.to_string())
}

/// Undo TSV escaping (`\t`, `\n`, `\\`, `\'`, `\0`, `\b`, `\f`, `\r`).
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\' && i + 1 < field.len() {
            out.push(match field[i + 1] {
                b't' => b'\t',
                b'n' => b'\n',
                b'r' => b'\r',
                b'0' => 0,
                b'b' => 8,
                b'f' => 12,
                other => other,
            });
            i += 2;
        } else {
            out.push(field[i]);
            i += 1;
        }
    }
    out
}

fn split_fields(line: &[u8]) -> Vec<&[u8]> {
    line.split(|&b| b == b'\t').collect()
}

fn bad(msg: String) -> QueryError {
    QueryError::Backend(format!("cannot decode the ClickHouse answer: {msg}"))
}

fn text(v: &[u8]) -> Result<&str> {
    std::str::from_utf8(v).map_err(|e| bad(e.to_string()))
}

/// Whether `name` is a column the lake's tables hold bytes in (the sketches).
fn is_sketch_column(name: &str) -> bool {
    edgelens_schemas::tables::ALL_TABLES.iter().flat_map(|t| t.columns).any(|c| c.name == name && c.ty == edgelens_schemas::tables::ColumnType::Binary)
}

/// Decode a `TabSeparatedWithNamesAndTypes` answer into one record batch.
pub fn decode_tsv(body: &[u8]) -> Result<QueryResult> {
    let body = body.strip_suffix(b"\n").unwrap_or(body);
    let mut lines = body.split(|&b| b == b'\n');
    let names: Vec<String> = match lines.next() {
        Some(l) if !l.is_empty() => split_fields(l).into_iter().map(|f| String::from_utf8_lossy(&unescape(f)).into_owned()).collect(),
        _ => return Err(bad("no header".into())),
    };
    // Types are escaped as the fields are: `DateTime(\'Europe/Berlin\')`.
    let types: Vec<(Kind, bool)> = lines.next().map(|l| split_fields(l).into_iter().map(|t| kind_of(&String::from_utf8_lossy(&unescape(t)))).collect()).ok_or_else(|| bad("no types line".into()))?;
    if types.len() != names.len() {
        return Err(bad(format!("{} names but {} types", names.len(), types.len())));
    }
    let mut cells: Vec<Vec<Option<Vec<u8>>>> = vec![Vec::new(); names.len()];
    for line in lines {
        let fields = split_fields(line);
        if fields.len() != names.len() {
            return Err(bad(format!("row with {} fields, expected {}", fields.len(), names.len())));
        }
        for (col, f) in cells.iter_mut().zip(fields) {
            col.push(if f == b"\\N" { None } else { Some(unescape(f)) });
        }
    }
    let rows = cells.first().map_or(0, Vec::len);
    let mut fields = Vec::with_capacity(names.len());
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(names.len());
    for ((name, (kind, nullable)), col) in names.iter().zip(&types).zip(&cells) {
        let array: ArrayRef = match kind {
            Kind::UInt => {
                let mut b = UInt64Builder::with_capacity(rows);
                for v in col {
                    b.append_option(v.as_deref().map(|v| text(v)?.parse::<u64>().map_err(|e| bad(format!("{name}: {e}")))).transpose()?);
                }
                Arc::new(b.finish())
            }
            Kind::Int => {
                let mut b = Int64Builder::with_capacity(rows);
                for v in col {
                    b.append_option(v.as_deref().map(|v| text(v)?.parse::<i64>().map_err(|e| bad(format!("{name}: {e}")))).transpose()?);
                }
                Arc::new(b.finish())
            }
            Kind::Float => {
                let mut b = Float64Builder::with_capacity(rows);
                for v in col {
                    b.append_option(v.as_deref().map(|v| parse_float(text(v)?).ok_or_else(|| bad(format!("{name}: not a number")))).transpose()?);
                }
                Arc::new(b.finish())
            }
            Kind::DateTime(zone) => {
                let tz = match zone {
                    Some(z) => Some(z.parse::<arrow::array::timezone::Tz>().map_err(|e| bad(format!("{name}: time zone {z:?}: {e}")))?),
                    None => None,
                };
                let mut b = TimestampMicrosecondBuilder::with_capacity(rows).with_timezone(zone.as_deref().unwrap_or("UTC"));
                for v in col {
                    // A zoned column shows the zero time as its zone's wall clock of the epoch
                    // (or as zeros): `1970-01-01 00:00:00` there is another time.
                    let v = v.as_deref().filter(|v| if tz.is_some() { !v.starts_with(b"0000-00-00") } else { !is_zero_time(v) });
                    let us = v.map(|v| datetime_us(text(v)?, tz.as_ref()).ok_or_else(|| bad(format!("{name}: not a DateTime")))).transpose()?;
                    b.append_option(us.filter(|&us| tz.is_none() || us != 0));
                }
                Arc::new(b.finish())
            }
            Kind::Date => {
                let mut b = Date32Builder::with_capacity(rows);
                for v in col {
                    let v = v.as_deref().filter(|v| !is_zero_time(v));
                    b.append_option(v.map(|v| date_days(text(v)?).ok_or_else(|| bad(format!("{name}: not a Date")))).transpose()?);
                }
                Arc::new(b.finish())
            }
            Kind::Nothing => new_null_array(&DataType::Null, rows),
            Kind::Str | Kind::Text => {
                // A sketch column is bytes even when its values happen to be UTF-8 (the type of
                // an answer must not depend on its rows).
                let bytes = *kind == Kind::Str && is_sketch_column(name);
                if !bytes && col.iter().flatten().all(|v| std::str::from_utf8(v).is_ok()) {
                    let mut b = StringBuilder::with_capacity(rows, 0);
                    for v in col {
                        b.append_option(v.as_deref().map(|v| std::str::from_utf8(v).unwrap_or_default()));
                    }
                    Arc::new(b.finish())
                } else {
                    let mut b = BinaryBuilder::with_capacity(rows, 0);
                    for v in col {
                        b.append_option(v.as_deref());
                    }
                    Arc::new(b.finish())
                }
            }
        };
        fields.push(Field::new(name, array.data_type().clone(), *nullable || array.null_count() > 0));
        arrays.push(array);
    }
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new_with_options(Arc::clone(&schema), arrays, &arrow::array::RecordBatchOptions::new().with_row_count(Some(rows)))?;
    Ok(QueryResult { schema, batches: if rows == 0 { Vec::new() } else { vec![batch] } })
}

fn parse_float(s: &str) -> Option<f64> {
    match s {
        "inf" | "+inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        "nan" | "-nan" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// ClickHouse's zero `DateTime` and `Date` (what `max`/`any` of no rows give, ClickHouse having no
/// NULL there): read as NULL, as the lake answers; edgelens stores no time before 2000.
/// Servers before 20.7 print it `0000-00-00 00:00:00`, later ones as the epoch.
fn is_zero_time(v: &[u8]) -> bool {
    matches!(v, b"0000-00-00 00:00:00" | b"0000-00-00" | b"1970-01-01 00:00:00" | b"1970-01-01")
}

/// `YYYY-MM-DD hh:mm:ss` as unix µs: a wall clock in `zone` (a `DateTime('zone')` column), else
/// in UTC, the server's time zone in edgelens deployments. A wall clock a change to summer time
/// skips does not exist and fails; one that the change back shows twice is read as the earlier
/// instant, the text not telling which it was.
fn datetime_us(s: &str, zone: Option<&arrow::array::timezone::Tz>) -> Option<i64> {
    use chrono::TimeZone;
    let dt = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").ok()?;
    let secs = match zone {
        Some(tz) => tz.from_local_datetime(&dt).earliest()?.timestamp(),
        None => dt.and_utc().timestamp(),
    };
    Some(secs * 1_000_000)
}

fn date_days(s: &str) -> Option<i32> {
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    i32::try_from(d.signed_duration_since(chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?).num_days()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};

    /// Regression: ClickHouse 18.16 sorted NULLs last under `DESC` too, where PostgreSQL and the
    /// lake sort them first.
    #[test]
    fn desc_sorts_nulls_first_as_on_the_lake() {
        for (sql, want) in [
            ("SELECT a, b FROM t ORDER BY a DESC, b", "SELECT a, b FROM t ORDER BY a DESC NULLS FIRST, b"),
            ("SELECT a AS x, b FROM t ORDER BY 1 desc\n, f(b)  DESC LIMIT 3", "SELECT a AS x, b FROM t ORDER BY x desc NULLS FIRST\n, f(b)  DESC NULLS FIRST LIMIT 3"),
            ("SELECT a FROM t ORDER BY a DESC NULLS LAST", "SELECT a FROM t ORDER BY a DESC NULLS LAST"),
            ("SELECT a FROM (SELECT a FROM t ORDER BY a DESC LIMIT 2) ORDER BY a ASC", "SELECT a FROM (SELECT a FROM t ORDER BY a DESC NULLS FIRST LIMIT 2) ORDER BY a ASC"),
            ("SELECT a FROM t ORDER BY a /* desc */ DESC", "SELECT a FROM t ORDER BY a /* desc */ DESC NULLS FIRST"),
            ("SELECT \"desc\" FROM t ORDER BY \"desc\" DESC, desc_x", "SELECT \"desc\" FROM t ORDER BY \"desc\" DESC NULLS FIRST, desc_x"),
            ("SELECT a FROM t ORDER BY (a + 1) DESC, count(DISTINCT g(a, 'x)')) DESC", "SELECT a FROM t ORDER BY (a + 1) DESC NULLS FIRST, count(DISTINCT g(a, 'x)')) DESC NULLS FIRST"),
        ] {
            assert_eq!(for_clickhouse(sql), want, "{sql}");
        }
    }

    /// Regression: ClickHouse 18.16 read `ORDER BY 2` as ordering by a constant (the top-N was
    /// wrong, silently) and `GROUP BY 1` as grouping by one (refusing the other columns).
    #[test]
    fn column_positions_are_named_for_clickhouse() {
        assert_eq!(
            for_clickhouse("SELECT site, sum(requests) FROM traffic_1m GROUP BY 1 ORDER BY 2 DESC LIMIT 5"),
            "SELECT site, sum(requests) FROM traffic_1m GROUP BY (site) ORDER BY (sum(requests)) DESC NULLS FIRST LIMIT 5"
        );
        assert_eq!(
            for_clickhouse("SELECT country, sum(requests) AS r FROM traffic_1m\nGROUP BY country ORDER BY 2 DESC, 1"),
            "SELECT country, sum(requests) AS r FROM traffic_1m\nGROUP BY country ORDER BY r DESC NULLS FIRST, (country)"
        );
        // Multi-byte text before a position, and a subquery's own positions.
        assert_eq!(
            for_clickhouse("SELECT 'ü€', n FROM (SELECT site AS s, count() AS n FROM t GROUP BY 1) ORDER BY 2"),
            "SELECT 'ü€', n FROM (SELECT site AS s, count() AS n FROM t GROUP BY s) ORDER BY (n)"
        );
        // Left as written: no positions, `*`, out of range, numbers elsewhere, text that does not parse.
        // In each branch of a `UNION`.
        assert_eq!(
            for_clickhouse("SELECT a, count() AS n FROM t GROUP BY 1 UNION ALL SELECT b, count() AS n FROM u GROUP BY 1 ORDER BY n"),
            "SELECT * FROM (SELECT a, count() AS n FROM t GROUP BY (a) UNION ALL SELECT b, count() AS n FROM u GROUP BY (b) ) ORDER BY n"
        );
        for sql in ["SELECT site FROM t ORDER BY site", "SELECT * FROM t ORDER BY 1", "SELECT a FROM t ORDER BY 3", "SELECT a + 1 FROM t WHERE b = 2", "SELEC 1 ORDER BY 1"] {
            assert_eq!(for_clickhouse(sql), sql);
        }
    }

    /// Regression: 18.16 sorted and limited only the last branch of a `UNION ALL` (all rows of
    /// the first and the top of the last came back), and took a position for a constant.
    #[test]
    fn a_unions_order_and_limit_are_the_wholes() {
        for (sql, want) in [
            (
                "SELECT site, sum(requests) AS r FROM a GROUP BY site UNION ALL SELECT site, sum(requests) AS r FROM b GROUP BY site ORDER BY r DESC LIMIT 5",
                "SELECT * FROM (SELECT site, sum(requests) AS r FROM a GROUP BY site UNION ALL SELECT site, sum(requests) AS r FROM b GROUP BY site ) ORDER BY r DESC NULLS FIRST LIMIT 5",
            ),
            ("select x from a union all select y from b\n  limit 3", "SELECT * FROM (select x from a union all select y from b\n  ) limit 3"),
            ("SELECT t.site, 1 AS k FROM t UNION ALL SELECT site, 2 FROM u UNION ALL SELECT site, 3 FROM v ORDER BY 2 DESC, 1", "SELECT * FROM (SELECT t.site, 1 AS k FROM t UNION ALL SELECT site, 2 FROM u UNION ALL SELECT site, 3 FROM v ) ORDER BY k DESC NULLS FIRST, site"),
            ("SELECT n FROM (SELECT 1 AS n UNION ALL SELECT 2 ORDER BY n LIMIT 1) WHERE n > 0", "SELECT n FROM (SELECT * FROM (SELECT 1 AS n UNION ALL SELECT 2 ) ORDER BY n LIMIT 1) WHERE n > 0"),
            ("SELECT a FROM t UNION ALL SELECT b FROM u LIMIT 10, 5", "SELECT * FROM (SELECT a FROM t UNION ALL SELECT b FROM u ) LIMIT 10, 5"),
        ] {
            assert_eq!(for_clickhouse(sql), want, "{sql}");
        }
        assert_eq!(for_clickhouse("SELECT * FROM t UNION ALL SELECT * FROM u ORDER BY site"), "SELECT * FROM (SELECT * FROM t UNION ALL SELECT * FROM u ) ORDER BY site");
        // As written: no `ORDER BY` or `LIMIT`, a first branch in parentheses, `LIMIT … BY`, a
        // position naming a column without a name, columns of one name (18.16's `SELECT *` of
        // the subquery would keep one of them).
        for sql in [
            "SELECT a FROM t UNION ALL SELECT b FROM u",
            "(SELECT a FROM t) UNION ALL SELECT b FROM u ORDER BY a",
            "SELECT a FROM t UNION ALL SELECT b FROM u LIMIT 1 BY a",
            "SELECT a + 1 FROM t UNION ALL SELECT b FROM u ORDER BY 1",
            "SELECT * FROM t UNION ALL SELECT * FROM u ORDER BY 3",
            "SELECT site, requests, requests FROM t UNION ALL SELECT site, requests, bytes FROM u ORDER BY site LIMIT 2",
            "SELECT site, 1, 1 FROM t UNION ALL SELECT site, 2, 2 FROM u ORDER BY site",
            "SELECT *, site FROM t UNION ALL SELECT *, site FROM u ORDER BY site",
            "SELECT x AS site, site FROM t UNION ALL SELECT a, b FROM u LIMIT 1",
        ] {
            assert_eq!(for_clickhouse(sql), sql);
        }
    }

    /// Regression: ClickHouse 18.16 refused RFC 3339 literals compared with a `DateTime`, as
    /// Grafana's `$__timeFilter` writes them (`ts BETWEEN '…T…Z' AND '…T…Z'`).
    #[test]
    fn time_literals_are_written_as_clickhouse_reads_them() {
        let cases = [
            (
                "SELECT ts FROM traffic_1m WHERE ts BETWEEN '2026-11-01T00:00:00Z' AND '2026-11-01T01:00:00.999Z' ORDER BY 1",
                "SELECT ts FROM traffic_1m WHERE ts BETWEEN '2026-11-01 00:00:00' AND '2026-11-01 01:00:00' ORDER BY (ts)",
            ),
            // A lower bound's fraction rounds up, an upper bound's down, whichever side it is on.
            ("SELECT 1 FROM t WHERE ts >= '2026-11-01T00:00:00.250Z' AND ts < '2026-11-01T00:01:00.5Z'", "SELECT 1 FROM t WHERE ts >= '2026-11-01 00:00:01' AND ts < '2026-11-01 00:01:01'"),
            ("SELECT 1 FROM t WHERE ts > '2026-11-01T00:00:00.250Z' OR ts <= '2026-11-01T00:01:00.5Z'", "SELECT 1 FROM t WHERE ts > '2026-11-01 00:00:00' OR ts <= '2026-11-01 00:01:00'"),
            ("SELECT 1 FROM t WHERE '2026-11-01T00:00:00.2Z' <= ts AND '2026-11-01T00:00:09.2Z' > ts", "SELECT 1 FROM t WHERE '2026-11-01 00:00:01' <= ts AND '2026-11-01 00:00:10' > ts"),
            // 18.16 has no `NOT BETWEEN`: written as `NOT (… BETWEEN …)`.
            // Parenthesised whole, as `NOT` binds looser than `IS NULL` or `=` after it.
            ("SELECT 1 FROM t WHERE ts NOT BETWEEN '2026-11-01 00:00:00.1' AND '2026-11-01T00:00:09.9'", "SELECT 1 FROM t WHERE (NOT (ts BETWEEN '2026-11-01 00:00:01' AND '2026-11-01 00:00:09'))"),
            ("SELECT 1 FROM t WHERE t.ts not  between 1 and x OR 2 NOT BETWEEN 1 AND 3", "SELECT 1 FROM t WHERE (NOT (t.ts between 1 and x)) OR (NOT (2 BETWEEN 1 AND 3))"),
            ("SELECT 1 FROM t WHERE f('NOT', x) NOT BETWEEN 1 AND -2", "SELECT 1 FROM t WHERE (NOT (f('NOT', x) BETWEEN 1 AND -2))"),
            ("SELECT 1 FROM t WHERE x NOT BETWEEN 1 AND 2 IS NULL", "SELECT 1 FROM t WHERE (NOT (x BETWEEN 1 AND 2)) IS NULL"),
            (
                "SELECT 1 FROM t WHERE ts NOT BETWEEN toDateTime(1793491270) AND toDateTime('2026-11-01T00:00:09.500000Z')",
                "SELECT 1 FROM t WHERE (NOT (ts BETWEEN toDateTime(1793491270) AND toDateTime('2026-11-01 00:00:09')))",
            ),
            (
                "SELECT x NOT BETWEEN 1 AND 2, count() FROM t GROUP BY 1",
                "SELECT (NOT (x BETWEEN 1 AND 2)), count() FROM t GROUP BY ((NOT (x BETWEEN 1 AND 2)))",
            ),
            // A parameter with a fraction under `=` or `<>`: its exact seconds, which ClickHouse
            // compares with a `DateTime` as numbers.
            (
                "SELECT ts = toDateTime('2026-11-01T00:00:00.500000Z') FROM t WHERE (toDateTime('2026-11-01T00:00:01.250000Z')) <> ts GROUP BY 1",
                "SELECT ts = toFloat64(1793491200.500000) FROM t WHERE (toFloat64(1793491201.250000)) <> ts GROUP BY (ts = toFloat64(1793491200.500000))",
            ),
            (
                "SELECT 1 FROM t WHERE ts IN (toDateTime('2026-11-01T00:00:00.500000Z'), toDateTime(1793491200)) OR ts = ((toDateTime('2026-11-01T00:00:00.500000Z')))",
                "SELECT 1 FROM t WHERE ts IN (toFloat64(1793491200.500000), toDateTime(1793491200)) OR ts = ((toFloat64(1793491200.500000)))",
            ),
            // So is a literal with a fraction (18.16 cannot read it), in a column position's copy
            // too.
            (
                "SELECT ts <> '2026-11-01T00:00:00.5Z' AS x, count() FROM t WHERE ('2026-11-01T01:00:00.25+01:00') = ts OR ts = '2026-11-01T00:00:01Z' GROUP BY 1, ts = '2026-11-01T00:00:02.5Z' ORDER BY 2",
                "SELECT ts <> toFloat64(1793491200.500000) AS x, count() FROM t WHERE (toFloat64(1793491200.250000)) = ts OR ts = '2026-11-01 00:00:01' GROUP BY x, ts = toFloat64(1793491202.500000) ORDER BY (count())",
            ),
            // As `x` of `BETWEEN` and in a simple `CASE`; under a cast to a time, rounded.
            (
                "SELECT CASE ts WHEN toDateTime('2026-11-01T00:00:00.500000Z') THEN 1 WHEN '2026-11-01T00:00:01Z' THEN 2 END FROM t WHERE toDateTime('2026-11-01T00:00:00.500000Z') NOT BETWEEN ts AND ts",
                "SELECT CASE ts WHEN toFloat64(1793491200.500000) THEN 1 WHEN toDateTime('2026-11-01 00:00:01') THEN 2 END FROM t WHERE (NOT (toFloat64(1793491200.500000) BETWEEN ts AND ts))",
            ),
            (
                "SELECT 1 FROM t WHERE ts >= CAST(toDateTime('2026-11-01T00:00:00.500000Z') AS TIMESTAMP) AND ts < CAST('2026-11-01T00:00:09.5Z' AS DateTime)",
                "SELECT 1 FROM t WHERE ts >= CAST(toDateTime('2026-11-01 00:00:01') AS TIMESTAMP) AND ts < CAST('2026-11-01 00:00:10' AS DateTime)",
            ),
            // Under a cast to a time, made a cast to a number (the cast would cut it again).
            (
                "SELECT 1 FROM t WHERE ts = CAST(toDateTime('2026-11-01T00:00:20.500000Z') AS TIMESTAMP) OR CAST( '2026-11-01T00:00:20.5Z'  AS timestamp with time zone ) <> ts",
                "SELECT 1 FROM t WHERE ts = CAST(toFloat64(1793491220.500000) AS Float64) OR CAST( toFloat64(1793491220.500000)  AS Float64 ) <> ts",
            ),
            // … with parentheses or comments around its argument.
            (
                "SELECT 1 FROM t WHERE ts = CAST((toDateTime('2026-11-01T00:00:20.500000Z')) /* x */ AS TIMESTAMP) OR ts = CAST( /* a */ ( '2026-11-01T00:00:20.5Z' ) -- b\n AS TIMESTAMP)",
                "SELECT 1 FROM t WHERE ts = CAST((toFloat64(1793491220.500000)) /* x */ AS Float64) OR ts = CAST( /* a */ ( toFloat64(1793491220.500000) ) -- b\n AS Float64)",
            ),
            (
                "SELECT CASE ts WHEN '2026-11-01T00:00:20Z' THEN 1 WHEN ('2026-11-01 01:00:30+01:00') THEN 2 END, CASE site WHEN '2026-11-01T00:00:20Z' THEN 1 END FROM t",
                "SELECT CASE ts WHEN toDateTime('2026-11-01 00:00:20') THEN 1 WHEN (toDateTime('2026-11-01 00:00:30')) THEN 2 END, CASE site WHEN '2026-11-01 00:00:20' THEN 1 END FROM t",
            ),
            ("SELECT CASE ts WHEN CAST(toDateTime('2026-11-01T00:00:20.500000Z') AS DateTime) THEN 1 END FROM t", "SELECT CASE ts WHEN CAST(toFloat64(1793491220.500000) AS Float64) THEN 1 END FROM t"),
            ("SELECT ts = '2026-11-01T00:00:00.5Z', count() FROM t GROUP BY 1", "SELECT ts = toFloat64(1793491200.500000), count() FROM t GROUP BY (ts = toFloat64(1793491200.500000))"),
            // Compared times outside the years 18.16 reads as text: their seconds.
            (
                "SELECT 1 FROM t WHERE ts < '2150-01-01 00:00:00' AND ts > '1969-12-31T23:59:00Z' AND '2150-01-01T00:00:00.5Z' > ts",
                "SELECT 1 FROM t WHERE ts < 5680281600 AND ts > -60 AND 5680281600.500000 > ts",
            ),
            ("SELECT 1 FROM t WHERE ts >= '1900-01-01T00:00:00Z' AND ts <= '2106-02-07T06:28:15Z'", "SELECT 1 FROM t WHERE ts >= -2208988800 AND ts <= 4294967295"),
            // Elsewhere, left.
            ("SELECT '2150-01-01 00:00:00' AS t", "SELECT '2150-01-01 00:00:00' AS t"),
            ("SELECT ts < '2150-01-01 00:00:00', count() FROM t GROUP BY 1", "SELECT ts < 5680281600, count() FROM t GROUP BY (ts < 5680281600)"),
            // A sign or parentheses around `x`; comments.
            ("SELECT -10 NOT BETWEEN 5 AND 15 AS b", "SELECT (NOT (-10 BETWEEN 5 AND 15)) AS b"),
            ("SELECT 1 FROM t WHERE ( ts ) NOT BETWEEN 1 AND 2 OR -(x) NOT BETWEEN (1) AND ((2))", "SELECT 1 FROM t WHERE (NOT (( ts ) BETWEEN 1 AND 2)) OR (NOT (-(x) BETWEEN (1) AND ((2))))"),
            ("SELECT 1 FROM t WHERE f(x) NOT /* c */ BETWEEN 1 AND 2", "SELECT 1 FROM t WHERE (NOT (f(x) BETWEEN 1 AND 2))"),
            ("SELECT 1 FROM t WHERE x NOT BETWEEN -- NOT BETWEEN\n 1 AND 2", "SELECT 1 FROM t WHERE (NOT (x BETWEEN -- NOT BETWEEN\n 1 AND 2))"),
            // A sign or parentheses before the low bound; a comment inside a call.
            ("SELECT 1 FROM t WHERE x NOT BETWEEN -5 AND (500)", "SELECT 1 FROM t WHERE (NOT (x BETWEEN -5 AND (500)))"),
            ("SELECT 1 FROM t WHERE x NOT BETWEEN (0) AND 5", "SELECT 1 FROM t WHERE (NOT (x BETWEEN (0) AND 5))"),
            (
                "SELECT 1 FROM t WHERE x NOT BETWEEN 0 AND greatest(1 /* don't ) */, 500) AND y < 1",
                "SELECT 1 FROM t WHERE (NOT (x BETWEEN 0 AND greatest(1 /* don't ) */, 500))) AND y < 1",
            ),
            // In parentheses, and in a column position's copy of its expression.
            ("SELECT 1 FROM t WHERE ts >= ('2026-11-01T00:00:00.5Z')", "SELECT 1 FROM t WHERE ts >= ('2026-11-01 00:00:01')"),
            (
                "SELECT site, ts < '2026-11-01T00:00:00.5Z', count() FROM t GROUP BY 1, 2 ORDER BY 2",
                "SELECT site, ts < '2026-11-01 00:00:01', count() FROM t GROUP BY (site), (ts < '2026-11-01 00:00:01') ORDER BY (ts < '2026-11-01 00:00:01')",
            ),
            // Offsets in every form; a fraction below a microsecond is cut, as the lake does.
            ("SELECT 1 FROM t WHERE ts >= '2026-11-01T02:00:00+0200' AND ts < '2026-11-01 03:00:00+02'", "SELECT 1 FROM t WHERE ts >= '2026-11-01 00:00:00' AND ts < '2026-11-01 01:00:00'"),
            ("SELECT 1 FROM t WHERE ts >= '2026-11-01T00:00:00.0000009Z'", "SELECT 1 FROM t WHERE ts >= '2026-11-01 00:00:00'"),
            // As `toDateTime`'s argument (timestamp parameters with a fraction): rounded in a
            // comparison, cut elsewhere.
            (
                "SELECT toDateTime('2026-11-01T00:00:00.500000Z') AS t FROM x WHERE ts BETWEEN toDateTime('2026-11-01T00:00:00.500000Z') AND (toDateTime('2026-11-01T00:00:09.500000Z'))",
                "SELECT toDateTime('2026-11-01 00:00:00') AS t FROM x WHERE ts BETWEEN toDateTime('2026-11-01 00:00:01') AND (toDateTime('2026-11-01 00:00:09'))",
            ),
            // The last second of the years 18.16 reads as `DateTime` text.
            ("SELECT 1 FROM t WHERE ts <= '2105-12-31T23:59:59Z'", "SELECT 1 FROM t WHERE ts <= '2105-12-31 23:59:59'"),
            // A statement the parser does not read: a parameter's literal is cut to its second.
            ("SELECT 1 FROM t ARRAY JOIN [1] AS one WHERE ts >= toDateTime('2026-11-01T00:00:00.500000Z')", "SELECT 1 FROM t ARRAY JOIN [1] AS one WHERE ts >= toDateTime('2026-11-01 00:00:00')"),
            (
                "SELECT 'toDateTime(' AS s, 'ü€' AS u /* toDateTime('x */ FROM t ARRAY JOIN [1] AS one WHERE ts >= toDateTime('2026-11-01T00:00:00.500000Z')",
                "SELECT 'toDateTime(' AS s, 'ü€' AS u /* toDateTime('x */ FROM t ARRAY JOIN [1] AS one WHERE ts >= toDateTime('2026-11-01 00:00:00')",
            ),
            // Offsets are moved to UTC; whole seconds are rewritten anywhere.
            ("SELECT count() FROM t WHERE ts = '2026-11-01T02:00:00+02:00'", "SELECT count() FROM t WHERE ts = '2026-11-01 00:00:00'"),
            ("SELECT toStartOfHour(toDateTime('2026-11-01T00:30:00Z')) AS h", "SELECT toStartOfHour(toDateTime('2026-11-01 00:30:00')) AS h"),
            ("SELECT 1 FROM t WHERE ts IN ('2026-11-01T00:00:00Z', '2026-11-01T00:01:00Z')", "SELECT 1 FROM t WHERE ts IN ('2026-11-01 00:00:00', '2026-11-01 00:01:00')"),
        ];
        for (sql, want) in cases {
            assert_eq!(for_clickhouse(sql), want, "{sql}");
        }
        // Left as written: ClickHouse's own form, dates, other text, a fraction where no rounding
        // keeps the answer, times outside DateTime's range, text that does not parse.
        for sql in [
            "SELECT 1 FROM t WHERE ts >= '2026-11-01 00:00:00' AND d = '2026-11-01'",
            "SELECT 1 FROM t WHERE site = 'shop.example' AND path LIKE '2026-11-01T%'",
            "SELECT 1 FROM t WHERE ts IN ('2026-11-01T00:00:00.5Z')",
            // Text compared with text stays text.
            "SELECT 1 FROM t WHERE site = '2026-11-01T00:00:20.5Z' OR '2026-11-01T00:00:20.5Z' <> lower(site) OR '2026-11-01T00:00:20.5Z' BETWEEN site AND site",
            "SELECT CASE site WHEN '2026-11-01T00:00:20.5Z' THEN 1 END FROM t",
            "SELECT 1 FROM t WHERE x NOT 'a' BETWEEN 1 AND 2",
            "SELECT 1 FROM t WHERE x + 1 NOT BETWEEN 1 AND 2",
            "SELECT 1 FROM t WHERE ts >= '2026-13-01T00:00:00Z'",
            "SELEC 1 WHERE ts >= '2026-11-01T00:00:00Z'",
        ] {
            assert_eq!(for_clickhouse(sql), sql);
        }
    }

    #[test]
    fn utc_is_known_by_its_names() {
        for tz in ["UTC", "Etc/UTC", "Etc/UCT", "Universal", "Etc/GMT", "GMT", "Zulu"] {
            assert!(is_utc(tz), "{tz}");
        }
        for tz in ["Asia/Kolkata", "Europe/London", "Etc/GMT+1", "America/New_York", ""] {
            assert!(!is_utc(tz), "{tz}");
        }
    }

    #[test]
    fn decodes_types_nulls_and_escapes() {
        let body = b"t\ts\tn\tz\tarr\td\tf\tc\tb\nDateTime\tString\tNullable(UInt8)\tNullable(Nothing)\tArray(UInt8)\tDate\tFloat64\tUInt64\tString\n\
2026-11-01 00:00:00\ta\\tb\t1\t\\N\t[1,2]\t2026-11-01\t1.5\t7\t\xff\\0\n\
2026-11-01 00:00:10\tx\\\\y\t\\N\t\\N\t[]\t1970-01-02\t-inf\t8\t\n";
        let r = decode_tsv(body).unwrap();
        let b = &r.batches[0];
        assert_eq!(b.num_rows(), 2);
        assert_eq!(r.schema.field(0).data_type(), &DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into())));
        assert_eq!(b.column(0).as_primitive::<arrow::datatypes::TimestampMicrosecondType>().value(1), 1_793_491_210_000_000);
        assert_eq!(b.column(1).as_string::<i32>().value(0), "a\tb");
        assert_eq!(b.column(1).as_string::<i32>().value(1), "x\\y");
        assert!(b.column(2).is_null(1) && r.schema.field(2).is_nullable());
        assert_eq!(b.column(3).data_type(), &DataType::Null);
        assert_eq!(b.column(4).as_string::<i32>().value(0), "[1,2]");
        assert_eq!(b.column(5).as_primitive::<arrow::datatypes::Date32Type>().value(1), 1);
        assert_eq!(b.column(6).as_primitive::<arrow::datatypes::Float64Type>().value(1), f64::NEG_INFINITY);
        assert_eq!(b.column(7).as_primitive::<arrow::datatypes::UInt64Type>().value(0), 7);
        assert_eq!(b.column(8).as_binary::<i32>().value(0), b"\xff\0");
        let empty = decode_tsv(b"a\nUInt64\n").unwrap();
        assert_eq!((empty.num_rows(), empty.schema.fields().len()), (0, 1));
        // Regression: a sketch whose bytes happened to be UTF-8 (a small one) came back as text,
        // and so did every sketch of an answer without rows (the Postgres wire's `Describe`).
        for body in [&b"clients_sketch\nString\n\\x02\\x01\\x074\n"[..], b"clients_sketch\nNullable(String)\n", b"clients_sketch\nString\n\xff\n"] {
            let r = decode_tsv(body).unwrap();
            assert_eq!(r.schema.field(0).data_type(), &DataType::Binary, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn a_zoned_datetime_is_its_wall_clock_in_that_zone() {
        // As the server sends them: quotes in the types line escaped.
        let r = decode_tsv(b"b\tu\tp\nDateTime(\\'Europe/Berlin\\')\tDateTime('UTC')\tNullable(DateTime(\\'America/New_York\\'))\n2026-11-01 01:00:00\t2026-11-01 00:00:00\t2026-10-31 20:00:00\n2026-10-25 02:30:00\t2026-11-01 00:00:00\t\\N\n").unwrap();
        let b = &r.batches[0];
        let ts = |c: usize, row: usize| b.column(c).as_primitive::<arrow::datatypes::TimestampMicrosecondType>().value(row);
        let zone = |c: usize| match r.schema.field(c).data_type() {
            DataType::Timestamp(_, tz) => tz.as_deref().map(str::to_string),
            other => panic!("{other}"),
        };
        assert_eq!((zone(0).as_deref(), zone(1).as_deref(), zone(2).as_deref()), (Some("Europe/Berlin"), Some("UTC"), Some("America/New_York")));
        // 01:00 in Berlin (UTC+1 in November) and 20:00 in New York (UTC-4) are midnight UTC.
        assert_eq!((ts(0, 0), ts(1, 0), ts(2, 0)), (1_793_491_200_000_000, 1_793_491_200_000_000, 1_793_491_200_000_000));
        // 02:30 on the night summer time ends comes twice: the earlier, still summer time (UTC+2).
        assert_eq!(ts(0, 1), 1_792_888_200_000_000);
        assert!(b.column(2).is_null(1));
        assert_eq!(crate::format::to_json(&r.batches).unwrap(), r#"[{"b":"2026-11-01T01:00:00+01:00","u":"2026-11-01T00:00:00Z","p":"2026-10-31T20:00:00-04:00"},{"b":"2026-10-25T02:30:00+02:00","u":"2026-11-01T00:00:00Z","p":null}]"#);
        assert!(decode_tsv(b"t\nDateTime('Mars/Olympus')\n2026-11-01 00:00:00\n").is_err(), "an unknown zone is an error, not UTC");
        // Regression: midnight of 1970-01-01 in New York (5 h after the epoch) read as the zero
        // time (NULL); the epoch itself, shown in the zone, is the zero time.
        let r = decode_tsv(b"t\nDateTime('America/New_York')\n1970-01-01 00:00:00\n1969-12-31 19:00:00\n0000-00-00 00:00:00\n").unwrap();
        let c = r.batches[0].column(0).as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!((c.value(0), c.is_null(1), c.is_null(2)), (18_000_000_000, true, true));
    }

    #[test]
    fn read_only_check() {
        assert!(check_read_only("SELECT 1;").is_ok());
        assert!(check_read_only(" with x as (select 1) select * from x").is_ok());
        assert!(check_read_only("SELECT ';' AS a -- ; comment").is_ok());
        for bad in [
            "INSERT INTO t VALUES (1)",
            "SELECT 1; DROP TABLE t",
            "SELECT 1 FORMAT CSV",
            "SELECT 1 INTO OUTFILE '/tmp/x'",
            "SELECT 1 SETTINGS readonly = 0",
            "ALTER TABLE t DELETE WHERE 1",
            "SELECT site, count() FROM traffic_1m GROUP BY site WITH TOTALS",
            "",
        ] {
            assert!(matches!(check_read_only(bad), Err(QueryError::SqlRefused(_))), "{bad}");
        }
        // Regression: a typo was refused as a writing statement (SQLSTATE 42501), not reported as
        // the syntax error it is (42601, as on the lake).
        match check_read_only("SELEC 1") {
            Err(QueryError::InvalidSql(m)) => assert_eq!(m, "syntax error: expected an SQL statement, found SELEC"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_missing_table_or_database_is_named() {
        let table = "bad response: Code: 60, e.displayText() = DB::Exception: Table edgelens_empty.traffic_1m doesn't exist., e.what() = DB::Exception";
        let database = "bad response: Code: 81, e.displayText() = DB::Exception: Database edgelens_new doesn't exist, e.what() = DB::Exception";
        assert!(is_missing_table_or_database(table) && is_missing_table_or_database(database));
        assert!(!is_missing_table_or_database("bad response: Code: 62, e.displayText() = DB::Exception: Syntax error"));
        assert_eq!(missing_name(table), "traffic_1m");
        assert_eq!(missing_name(database), "edgelens_new");
    }

    #[test]
    fn server_errors_are_classified() {
        let e = classify(clickhouse::error::Error::BadResponse("Code: 60, e.displayText() = DB::Exception: Table x doesn't exist., e.what() = DB::Exception".into()), Source::Service);
        assert!(matches!(e, QueryError::InvalidSql(_)), "{e:?}");
        let error = |c: u32| clickhouse::error::Error::BadResponse(format!("Code: {c}, e.displayText() = DB::Exception: x, e.what() = DB::Exception"));
        let code = |c: u32| classify(error(c), Source::User);
        // Regression: these were 500s (the service's fault) though the statement's.
        for c in [181, 258, 386] {
            assert!(matches!(code(c), QueryError::InvalidSql(_)), "{c}");
        }
        for c in [153, 395] {
            assert!(matches!(code(c), QueryError::DataError(_)), "{c}");
        }
        assert_eq!(code(160).http_status(), 400);
        assert!(matches!(code(1000), QueryError::Backend(_)), "a server failure stays ours");
        assert!(matches!(classify(error(386), Source::Service), QueryError::Backend(_)), "the service's own SQL failing is its defect");
        // Regression: an unreachable or silent server was a 500; it is a 503 (try again later).
        let down = classify(clickhouse::error::Error::TimedOut, Source::Service);
        assert!(matches!(down, QueryError::BackendUnavailable(_)) && down.http_status() == 503, "{down:?}");
        assert_eq!((code(202).http_status(), code(210).http_status()), (503, 503));
    }

    /// Regression: ClickHouse's zero time (the `max` of no rows) failed the whole answer.
    #[test]
    fn the_zero_time_is_null() {
        let r = decode_tsv(b"t\td\tn\nDateTime\tDate\tUInt64\n0000-00-00 00:00:00\t0000-00-00\t1\n1970-01-01 00:00:00\t1970-01-01\t2\n").unwrap();
        let batch = &r.batches[0];
        assert!((0..2).all(|row| batch.column(0).is_null(row) && batch.column(1).is_null(row)), "as older and newer servers print it");
        assert!(r.schema.field(0).is_nullable() && r.schema.field(1).is_nullable());
        assert!(decode_tsv(b"t\nDateTime\n2026-13-01 00:00:00\n").is_err(), "other bad times still fail");
    }
}
