//! The Parquet lake as a DataFusion session.
//!
//! Owns one [`SessionContext`] in which every table of
//! [`ALL_TABLES`](edgelens_schemas::tables::ALL_TABLES) is registered as a `ListingTable` over
//! `DIR/<table>/`, with the schema from the schemas crate plus the hive partition column `date`
//! (`Utf8`, `YYYY-MM-DD`). Guarantees:
//! - files are listed anew for every query: the session has no list-files cache, so a file renamed
//!   into the lake while the service runs is visible to the next query;
//! - a table whose directory does not exist (yet) reads as empty, and its rows appear once the
//!   aggregator creates the directory;
//! - only files ending in `.parquet` are read, so the writers' temporary files are ignored.
//!
//! Rows with the same key columns are deltas of one group: readers sum them (this module does not).
//! The registry tables (`sites`, `site_entities`, `site_tags`) are the exception: their files keep
//! every imported version of a row, and their names are views showing the current version of
//! each key ([`current_versions`]), so SQL, joins and reports never see a replaced version.

use std::collections::HashSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use futures::StreamExt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::scalar::ScalarValue;
use datafusion::datasource::{ViewTable, provider_as_source};
use edgelens_schemas::tables::{ALL_TABLES, Latest, TableDef, VERSION_COLUMN};

use crate::SqlLimits;
use crate::error::{QueryError, Result};
use crate::sql_guard;

/// Name of the hive partition column every lake table has.
pub const PARTITION_COLUMN: &str = "date";

/// The result of a query: the schema is known even when there are no rows.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl QueryResult {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }
}

/// The lake at one directory, queryable with SQL.
#[derive(Clone)]
pub struct Lake {
    /// The service's own queries.
    ctx: SessionContext,
    /// User SQL, within the memory pool of [`SqlLimits`].
    user_ctx: SessionContext,
    dir: PathBuf,
    limits: SqlLimits,
    /// Files last found to read back whole ([`corrupt_files`]).
    whole: Arc<Mutex<WholeFiles>>,
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lake").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl Lake {
    /// Open the lake rooted at `dir` (which need not exist yet) and register every table, with the
    /// default [`SqlLimits`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Lake> {
        Lake::open_with(dir, SqlLimits::default())
    }

    /// [`Lake::open`] with `limits` on user SQL: its statements share a memory pool of
    /// `limits.memory_bytes` (a statement needing more fails, nothing spills to disk) and are
    /// bounded in time and rows. The service's own queries (the API's) run in a session of their
    /// own, without that pool, so no user statement can make them fail.
    /// The limits on user SQL.
    pub fn sql_limits(&self) -> SqlLimits {
        self.limits
    }

    pub fn open_with(dir: impl AsRef<Path>, limits: SqlLimits) -> Result<Lake> {
        let dir = dir.as_ref();
        let lake_err = |source| QueryError::Lake { path: dir.display().to_string(), source };
        let dir = std::path::absolute(dir).map_err(lake_err)?;
        if dir.exists() && !dir.is_dir() {
            return Err(lake_err(std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory")));
        }
        if !dir.exists() {
            // The query service may start before anything wrote the lake; it answers 503 until
            // the directory appears, then tables appear as written.
            tracing::warn!(dir = %dir.display(), "no lake at this path yet: queries answer 503 until replay, demo or an aggregator writes it");
        }
        let bounded = RuntimeEnvBuilder::new()
            .with_memory_limit(usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX), 1.0)
            .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled));
        let user_ctx = session(&dir, bounded, Counts::Bigint)?;
        let ctx = session(&dir, RuntimeEnvBuilder::new(), Counts::Unsigned)?;
        tracing::debug!(dir = %dir.display(), tables = ALL_TABLES.len(), "lake opened");
        Ok(Lake { ctx, user_ctx, dir, limits, whole: Arc::default() })
    }

    /// The lake's root directory (absolute).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Run trusted SQL (no read-only guard) and collect the batches.
    pub async fn sql(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        Ok(self.query(sql, Vec::new()).await?.batches)
    }

    /// `Ok` once the lake's directory exists; until then every table would read as empty, which
    /// is no answer: nothing has written the lake yet, or `data_dir` names another directory.
    fn present(&self) -> Result<()> {
        if self.dir.is_dir() {
            return Ok(());
        }
        Err(QueryError::NoSchema(format!(
            "there is no lake at {}: no replay, demo or aggregator has written one there yet, or data_dir names another directory",
            self.dir.display()
        )))
    }

    /// Run trusted SQL with positional parameters (`$1`, `$2`, ...) and collect the result.
    pub async fn query(&self, sql: &str, params: Vec<ScalarValue>) -> Result<QueryResult> {
        self.present()?;
        let (this, sql) = (self.clone(), sql.to_owned());
        match on_exec(async move { this.query_unchecked(&sql, params).await }).await {
            Err(e) => Err(self.name_corrupt_files(e).await),
            ok => ok,
        }
    }

    async fn query_unchecked(&self, sql: &str, params: Vec<ScalarValue>) -> Result<QueryResult> {
        let mut df = self.ctx.sql(sql).await?;
        if !params.is_empty() {
            df = df.with_param_values(params)?;
        }
        let logical: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await?;
        // The batches' own schema: the logical plan's may type a column otherwise (a decimal's
        // precision and scale), and the answer is rendered by the schema.
        let schema = batches.first().map_or(logical, |b| b.schema());
        Ok(QueryResult { schema, batches })
    }

    /// Run SQL from a user: only one read-only statement is accepted (see [`sql_guard`]); parse and
    /// plan errors are reported as the user's ([`QueryError::InvalidSql`]).
    pub async fn user_sql(&self, sql: &str) -> Result<QueryResult> {
        let (this, sql) = (self.clone(), sql.to_owned());
        // The time limit runs here, not on the execution runtime: an operator that does not yield
        // (a join whose condition rejects every pair) would keep it from firing there. Running
        // out of time drops the task, which stops at its next yield.
        let limit = self.limits.timeout;
        let run = tokio::time::timeout(limit, on_exec(async move { this.user_sql_unchecked(&sql).await }));
        match run.await.unwrap_or_else(|_| Err(QueryError::LimitExceeded(format!("the query ran longer than the limit of {} s", limit.as_secs())))) {
            Err(e) => Err(self.name_corrupt_files(e).await),
            ok => ok,
        }
    }

    /// A query that failed on an unreadable Parquet file: find the lake's unreadable files (a
    /// footer that does not parse, or a page that does not decode) so the error names them.
    /// Queries that do not read them (other tables, other `date` partitions) are unaffected.
    async fn name_corrupt_files(&self, e: QueryError) -> QueryError {
        let text = e.to_string();
        if !text.to_ascii_lowercase().contains("parquet") {
            return e;
        }
        let (dir, whole) = (self.dir.clone(), Arc::clone(&self.whole));
        let bad = tokio::task::spawn_blocking(move || corrupt_files(&dir, &whole)).await.unwrap_or_default();
        if bad.is_empty() {
            return e;
        }
        QueryError::CorruptFiles {
            paths: bad.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
            cause: text,
        }
    }

    /// The plan of a user statement (checked by [`sql_guard::check`]) in the user SQL session, for
    /// running it or describing it (the Postgres wire's `Describe`): as DataFusion plans it, with
    /// sums divided as PostgreSQL divides them ([`crate::fraction`]), verified to read only.
    pub async fn user_plan(&self, statement: datafusion::sql::parser::Statement) -> Result<datafusion::logical_expr::LogicalPlan> {
        let state = self.user_ctx.state();
        let plan = match state.statement_to_plan(statement.clone()).await {
            // Two columns written differently that DataFusion names alike: each named as written.
            Err(e) if e.to_string().contains("Projections require unique expression names") => {
                let mut statement = statement;
                crate::sql_compat::alias_every_output(&mut statement);
                state.statement_to_plan(statement).await.map_err(|_| e)
            }
            planned => planned,
        };
        let plan = plan.and_then(crate::fraction::fractional_sums).map_err(QueryError::from_user_sql)?;
        sql_guard::verify_plan(&plan)?;
        Ok(plan)
    }

    async fn user_sql_unchecked(&self, sql: &str) -> Result<QueryResult> {
        let statement = sql_guard::check(sql)?;
        // Without a lake, a statement that reads no edgelens table (`SELECT 1`, a client's health
        // check, the catalogues) still answers.
        if let Err(missing) = self.present() {
            let tables = self.user_ctx.state().resolve_table_references(&statement).map_err(QueryError::from_user_sql)?;
            if tables.iter().any(|t| ALL_TABLES.iter().any(|c| c.name == t.table())) {
                return Err(missing);
            }
        }
        let plan = self.user_plan(statement).await?;
        let df = self.user_ctx.execute_logical_plan(plan).await?;
        let limits = self.limits;
        let task = Arc::new(df.task_ctx());
        let physical = df.create_physical_plan().await.map_err(QueryError::from_user_sql)?;
        // The schema of the batches the plan makes: the logical plan's may type a column
        // otherwise (a decimal's precision and scale), and every format renders by the schema.
        let schema = physical.schema();
        let pairs = join_pairs(physical.as_ref()).1;
        if pairs > u128::from(limits.max_join_pairs) {
            return Err(QueryError::LimitExceeded(format!(
                "the query's joins without an equality condition would compare about {pairs} row pairs, over the limit of {}: join on equal columns, or narrow the joined rows first",
                limits.max_join_pairs
            )));
        }
        let collect = async move {
            let mut stream = datafusion::physical_plan::execute_stream(physical, task).map_err(QueryError::from_user_sql)?;
            let mut batches = Vec::new();
            let mut rows = 0u64;
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(QueryError::from_user_sql)?;
                rows += batch.num_rows() as u64;
                if rows > limits.max_rows {
                    return Err(QueryError::LimitExceeded(format!(
                        "the result has more than {} rows; add a LIMIT or aggregate",
                        limits.max_rows
                    )));
                }
                batches.push(batch);
            }
            Ok(batches)
        };
        // The time limit is kept by the caller ([`Self::user_sql`]).
        let batches = collect.await?;
        Ok(QueryResult { schema, batches })
    }

    /// Whether `table` has at least one row.
    pub async fn has_rows(&self, table: &str) -> Result<bool> {
        let batches = self.sql(&format!("SELECT 1 FROM \"{table}\" LIMIT 1")).await?;
        Ok(batches.iter().any(|b| b.num_rows() > 0))
    }
}

/// A plan's estimated output rows (`None`: not known), and the row pairs its nested-loop and
/// cross joins compare: every row of one side against every row of the other. Rows are
/// DataFusion's estimates where it has them (table row counts, filters, limits), else an upper
/// bound: an operator gives at most the rows of its inputs, a join on equal keys taken as its
/// larger side. A grouping (`GROUP BY`, `DISTINCT`) gives an unknown number (DataFusion takes its
/// input's, which for a grid of distinct sites × minutes is far too many); so does anything over
/// it, and a join with an unknown side is not counted.
fn join_pairs(plan: &dyn datafusion::physical_plan::ExecutionPlan) -> (Option<u128>, u128) {
    join_pairs_with(plan, &datafusion::physical_plan::StatisticsContext::new())
}

fn join_pairs_with(plan: &dyn datafusion::physical_plan::ExecutionPlan, stats: &datafusion::physical_plan::StatisticsContext) -> (Option<u128>, u128) {
    use datafusion::common::stats::Precision;
    use datafusion::physical_plan::aggregates::AggregateExec;
    use datafusion::physical_plan::joins::{CrossJoinExec, NestedLoopJoinExec};
    let inputs: Vec<(Option<u128>, u128)> = plan.children().into_iter().map(|c| join_pairs_with(c.as_ref(), stats)).collect();
    let below = inputs.iter().fold(0u128, |n, i| n.saturating_add(i.1));
    let sides: Option<Vec<u128>> = inputs.iter().map(|i| i.0).collect();
    if plan.is::<NestedLoopJoinExec>() || plan.is::<CrossJoinExec>() {
        let pairs = sides.map(|s| s.iter().fold(1u128, |n, r| n.saturating_mul(*r)));
        return (pairs, below.saturating_add(pairs.unwrap_or(0)));
    }
    let args = datafusion::physical_plan::StatisticsArgs::new();
    let estimate = stats.compute(plan, &args).ok().map(|s| s.num_rows);
    let rows = match estimate {
        Some(Precision::Exact(n)) => Some(n as u128),
        _ if plan.is::<AggregateExec>() || sides.is_none() => None,
        Some(Precision::Inexact(n)) => Some(n as u128),
        _ if plan.name().contains("Join") => sides.map(|s| s.into_iter().max().unwrap_or(0)),
        _ => sides.map(|s| s.into_iter().fold(0u128, u128::saturating_add)),
    };
    (rows, below)
}

/// A session over every table of the lake at `dir`, on a runtime built from `runtime`.
/// How a session's tables type their unsigned counts (`requests`, `bytes`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counts {
    /// As stored (`UInt64`): the service's own queries.
    Unsigned,
    /// As PostgreSQL's `bigint` (`Int64`), which the Postgres wire calls them: user SQL. Arithmetic
    /// on them then stays integer, as in PostgreSQL: `requests - bytes` may be negative,
    /// `-requests` and `requests + 1` are integers. As stored, DataFusion wraps a difference
    /// around (18446744073709…) and makes unsigned and signed operands a decimal, written as text.
    Bigint,
}

/// Register on `ctx` what every session that plans user SQL (the lake's, the Postgres catalog's)
/// needs to answer PostgreSQL's forms: the functions the plan rewrites call ([`crate::fraction`],
/// [`crate::time_text`] and its analyzer rule), PostgreSQL's time functions and arithmetic on
/// time spans ([`crate::time_udf`]) and `pg_typeof`.
pub(crate) fn register_postgres_forms(ctx: &SessionContext) {
    let config = ctx.state().config_options().clone();
    let time_functions = crate::time_udf::local_times()
        .into_iter()
        .chain(crate::time_udf::to_timestamps(&config))
        .chain([crate::time_udf::age(), crate::time_udf::date_part()])
        .chain(crate::time_udf::interval_scaling());
    let functions = time_functions.chain(crate::time_text::udfs()).chain(crate::fraction::udfs()).chain([crate::pgwire::catalog::pg_typeof()]);
    for f in functions {
        ctx.register_udf(f);
    }
    ctx.add_analyzer_rule(Arc::new(crate::time_text::PostgresTimeText));
    // Appended, so DataFusion's own planners of binary operators are asked first.
    let _ = datafusion::execution::FunctionRegistry::register_expr_planner(&mut *ctx.state_ref().write(), Arc::new(crate::time_udf::SpanArithmetic));
}

fn session(dir: &Path, runtime: RuntimeEnvBuilder, counts: Counts) -> Result<SessionContext> {
    // No list-files cache: its default entries never expire, which would hide new files.
    let cache = CacheManagerConfig::default().with_list_files_cache_limit(0);
    let runtime = runtime.with_cache_manager(cache).build_arc()?;
    let mut config = SessionConfig::new().with_information_schema(true);
    // The session's zone is UTC, as the lake's times are: `now()` and `to_timestamp(..)` are UTC
    // instants (PostgreSQL's `timestamptz`), not zoneless times that `AT TIME ZONE` would read as
    // that zone's wall clock (`from_unixtime(..)` is made one below).
    config.options_mut().execution.time_zone = Some("UTC".into());
    // DataFusion's planner can give a `UNION ALL` of a tenant's registry rows a nullable column
    // that its logical plan has as non-null, and an aggregate above it then fails its own schema
    // check ("Physical input schema should be the same …", nullability only). The option exists
    // for such planner bugs; the values are the same either way.
    config.options_mut().execution.skip_physical_aggregate_schema_check = true;
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    // This rule rebuilds a grouping's projection by display names, under which a cast is named as
    // the column it casts: `SELECT ts, ts::date … GROUP BY 1, 2` failed ("Projections require
    // unique expression names"). It only drops constant grouping keys; without it they stay.
    ctx.remove_optimizer_rule("eliminate_group_by_constant");
    ctx.register_udaf(crate::sketch_udf::hll_merge());
    ctx.register_udf(crate::time_udf::from_unixtime());
    ctx.register_udf(crate::time_udf::coalesce());
    register_postgres_forms(&ctx);
    for table in ALL_TABLES {
        let provider = Arc::new(listing_table(dir, table, counts)?);
        match table.latest {
            Some(latest) => ctx.register_table(table.name, Arc::new(current_versions(table, latest, provider)?))?,
            None => ctx.register_table(table.name, provider)?,
        };
    }
    Ok(ctx)
}

/// A registry table's current rows: of the rows of each key, the one with the latest
/// `imported_at`, then the latest end (`valid_to` / `removed_at`, an end before none), as
/// [`edgelens_schemas::tables::Latest`] says and the ClickHouse view chooses.
fn current_versions(table: &TableDef, latest: Latest, stored: Arc<ListingTable>) -> Result<ViewTable> {
    use datafusion::logical_expr::{LogicalPlanBuilder, col};
    let keys: Vec<_> = latest.key.iter().map(|c| col(*c)).collect();
    let columns: Vec<_> = lake_schema(table).fields().iter().map(|f| col(f.name().as_str())).collect();
    let mut order: Vec<_> = keys.iter().map(|k| k.clone().sort(true, false)).collect();
    order.push(col(VERSION_COLUMN).sort(false, false));
    order.push(col(latest.end).sort(false, false));
    order.extend(table.latest_tie_break().map(|c| col(c).sort(true, false)));
    let plan = LogicalPlanBuilder::scan(table.name, provider_as_source(stored), None)?.distinct_on(keys, columns, Some(order))?.build()?;
    Ok(ViewTable::new(plan, None))
}

/// Stack of each thread of [`exec_runtime`] (address space; pages are used as touched).
const EXEC_STACK_BYTES: usize = 64 << 20;

/// The runtime queries execute on: its own threads, so CPU-heavy plans (DataFusion polls them
/// without yielding) never starve the listeners and their timeouts on the caller's runtime.
fn exec_runtime() -> &'static tokio::runtime::Runtime {
    static EXEC: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    EXEC.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(std::thread::available_parallelism().map_or(2, usize::from))
            .thread_name("edgelens-query-exec")
            // Planning and running recurse once per level of a statement (a chain of operators,
            // of `UNION`s, of nested queries): room for the limits `sql_compat` allows, in a
            // debug build too (2 MiB, the default, held about 140 `UNION ALL` branches there).
            .thread_stack_size(EXEC_STACK_BYTES)
            .enable_all()
            .build()
            .expect("query execution runtime")
    })
}

/// Run `fut` on the execution runtime; dropping the returned future (a timeout, a closed
/// connection) aborts it there.
async fn on_exec<T: Send + 'static>(fut: impl Future<Output = Result<T>> + Send + 'static) -> Result<T> {
    struct AbortOnDrop(tokio::task::AbortHandle);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let task = exec_runtime().spawn(fut);
    let _abort = AbortOnDrop(task.abort_handle());
    match task.await {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(QueryError::Execution(datafusion::error::DataFusionError::External(Box::new(e)))),
    }
}

/// Lake files that read back whole when last checked, each with its length and modification
/// time: a lake file is written once (a rewrite replaces it with a new one), so it is read again
/// only when it changed.
type WholeFiles = HashSet<(PathBuf, u64, SystemTime)>;

/// `.parquet` files under `dir` (one level of tables, then partitions) that do not read back:
/// their footer does not parse or one of their pages does not decode. Every file is read whole,
/// except those `whole` holds unchanged since they last read back; `whole` is left holding the
/// files that read back now. `whole` stays locked meanwhile, so queries failing together wait
/// for one look at the lake instead of each reading all of it.
fn corrupt_files(dir: &Path, whole: &Mutex<WholeFiles>) -> Vec<PathBuf> {
    let mut whole = whole.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let known = std::mem::take(&mut *whole);
    let mut now = WholeFiles::new();
    let mut bad = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "parquet") {
                let Some(stamp) = std::fs::metadata(&path).ok().and_then(|m| Some((m.len(), m.modified().ok()?))) else {
                    continue; // gone since it was listed
                };
                let key = (path, stamp.0, stamp.1);
                if known.contains(&key) || reads_whole(&key.0) {
                    now.insert(key);
                } else {
                    bad.push(key.0);
                }
            }
        }
    }
    *whole = now;
    bad.sort();
    bad
}

/// Whether every row group, column and page of the Parquet file at `path` decodes.
fn reads_whole(path: &Path) -> bool {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let Ok(file) = std::fs::File::open(path) else { return false };
    match ParquetRecordBatchReaderBuilder::try_new(file).and_then(|b| b.build()) {
        Ok(mut reader) => reader.all(|batch| batch.is_ok()),
        Err(_) => false,
    }
}

/// The schema of `table` as the lake exposes it: the table's columns plus `date`.
pub fn lake_schema(table: &TableDef) -> SchemaRef {
    let file_schema = table.arrow_schema();
    let mut fields: Vec<Field> = file_schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(PARTITION_COLUMN, DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

fn listing_table(dir: &Path, table: &TableDef, counts: Counts) -> Result<ListingTable> {
    // A trailing separator makes the URL a collection even when the directory does not exist yet.
    let mut path = dir.join(table.name).into_os_string();
    path.push(std::path::MAIN_SEPARATOR_STR);
    let path = path.into_string().map_err(|p| QueryError::Lake {
        path: format!("{}", PathBuf::from(p).display()),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "path is not UTF-8"),
    })?;
    let url = ListingTableUrl::parse(&path)?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(vec![(PARTITION_COLUMN.to_owned(), DataType::Utf8)]);
    let schema = match counts {
        Counts::Unsigned => table.arrow_schema(),
        Counts::Bigint => {
            let signed = |f: &Arc<Field>| match f.data_type() {
                DataType::UInt64 => f.as_ref().clone().with_data_type(DataType::Int64),
                _ => f.as_ref().clone(),
            };
            Arc::new(Schema::new(table.arrow_schema().fields().iter().map(signed).collect::<Vec<_>>()))
        }
    };
    let config = ListingTableConfig::new(url).with_listing_options(options).with_schema(schema);
    Ok(ListingTable::try_new(config)?)
}

/// Column `name` of `batch` cast to `Int64`.
pub(crate) fn column_i64(batch: &RecordBatch, name: &str) -> Result<arrow::array::Int64Array> {
    use arrow::array::AsArray;
    let array = arrow::compute::cast(batch_column(batch, name)?, &DataType::Int64)?;
    Ok(array.as_primitive::<arrow::datatypes::Int64Type>().clone())
}

/// Column `name` of `batch` cast to `UInt64` (a null sum — no rows — reads as 0 via `value`).
pub(crate) fn column_u64(batch: &RecordBatch, name: &str) -> Result<arrow::array::UInt64Array> {
    use arrow::array::AsArray;
    let array = arrow::compute::cast(batch_column(batch, name)?, &DataType::UInt64)?;
    Ok(array.as_primitive::<arrow::datatypes::UInt64Type>().clone())
}

/// Column `name` of `batch` cast to `Float64`.
pub(crate) fn column_f64(batch: &RecordBatch, name: &str) -> Result<arrow::array::Float64Array> {
    use arrow::array::AsArray;
    let array = arrow::compute::cast(batch_column(batch, name)?, &DataType::Float64)?;
    Ok(array.as_primitive::<arrow::datatypes::Float64Type>().clone())
}

/// Column `name` of `batch` cast to `Utf8`.
pub(crate) fn column_string(batch: &RecordBatch, name: &str) -> Result<arrow::array::StringArray> {
    use arrow::array::AsArray;
    let array = arrow::compute::cast(batch_column(batch, name)?, &DataType::Utf8)?;
    Ok(array.as_string::<i32>().clone())
}

fn batch_column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a arrow::array::ArrayRef> {
    batch.column_by_name(name).ok_or_else(|| {
        QueryError::Execution(datafusion::error::DataFusionError::Internal(format!("result has no column {name}")))
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn open_lake(limits: SqlLimits) -> (tempfile::TempDir, Lake) {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open_with(dir.path(), limits).unwrap();
        (dir, lake)
    }

    /// A lake with `traffic_1m` rows on two dates, one file per date.
    fn two_dates(dir: &Path) -> Vec<PathBuf> {
        [("2026-11-01", 1_793_491_200_000_000i64), ("2026-11-02", 1_793_577_600_000_000)]
            .into_iter()
            .map(|(date, us)| traffic_file(dir, date, us, 1))
            .collect()
    }

    /// A `traffic_1m` file of `rows` rows (requests 7 in the first, then 1, 2, …) on `date`.
    fn traffic_file(dir: &Path, date: &str, us: i64, rows: usize) -> PathBuf {
        use arrow::array::{ArrayRef, StringArray, TimestampMicrosecondArray, UInt64Array};
        use edgelens_schemas::tables::TRAFFIC_1M;
        let text = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v; rows])) };
        let batch = RecordBatch::try_new(
            TRAFFIC_1M.arrow_schema(),
            TRAFFIC_1M
                .columns
                .iter()
                .map(|c| match c.name {
                    "ts" => Arc::new(TimestampMicrosecondArray::from(vec![us; rows]).with_timezone("UTC")) as ArrayRef,
                    "requests" | "bytes" => Arc::new(UInt64Array::from_iter_values((0..rows as u64).map(|i| if i == 0 { 7 } else { i }))),
                    _ => text("x"),
                })
                .collect(),
        )
        .unwrap();
        let part = dir.join("traffic_1m").join(format!("date={date}"));
        std::fs::create_dir_all(&part).unwrap();
        let path = part.join("a.parquet");
        let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        path
    }

    /// Text bound into a statement (a Postgres wire parameter, an entity name in a REST path)
    /// comes back as it was, backslashes and quotes included: DataFusion's parser takes `\` as
    /// an ordinary character inside `'…'`.
    #[tokio::test]
    async fn text_literals_keep_backslashes_and_quotes() {
        let (_dir, lake) = open_lake(SqlLimits::default());
        for value in ["a\\b", "a\\'b", "x\\", "'\\''", "\\\\n", "a''b"] {
            let sql = format!("SELECT {} AS v", crate::backend::Dialect::DataFusion.string(value));
            let r = lake.user_sql(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            assert_eq!(crate::format::to_json_rows(&r.batches).unwrap()[0]["v"], value, "{sql}");
        }
    }

    /// Regression: `now()`, `to_timestamp(..)` and `from_unixtime(..)` were zoneless, so `AT TIME
    /// ZONE` read their UTC time as that zone's wall clock (midnight UTC became midnight in Berlin,
    /// an hour early).
    #[tokio::test]
    async fn now_to_timestamp_and_from_unixtime_are_utc_instants() {
        let (_dir, lake) = open_lake(SqlLimits::default());
        let sql = "SELECT to_timestamp(1793491200) AT TIME ZONE 'Europe/Berlin' AS a, \
                   to_timestamp('2026-11-01T00:00:00') AT TIME ZONE 'Europe/Berlin' AS b, \
                   to_timestamp(1793491200) AS c, \
                   now() AT TIME ZONE 'Europe/Berlin' = now() AS same_instant, \
                   from_unixtime(1793491200) AS d, \
                   from_unixtime(1793491200) AT TIME ZONE 'Europe/Berlin' AS e, \
                   from_unixtime(1793491200, 'America/New_York') AS f, \
                   from_unixtime(CAST(NULL AS BIGINT)) AS g";
        let r = lake.user_sql(sql).await.unwrap();
        assert_eq!(
            crate::format::to_json(&r.batches).unwrap(),
            r#"[{"a":"2026-11-01T01:00:00+01:00","b":"2026-11-01T01:00:00+01:00","c":"2026-11-01T00:00:00Z","same_instant":true,"d":"2026-11-01T00:00:00Z","e":"2026-11-01T01:00:00+01:00","f":"2026-10-31T20:00:00-04:00","g":null}]"#
        );
        // A column of seconds, and a time range on it.
        let r = lake.user_sql("SELECT count(*) AS n FROM (VALUES (1793491200), (1793491260)) t(s) WHERE from_unixtime(s) >= to_timestamp(1793491230)").await.unwrap();
        assert_eq!(crate::format::to_json(&r.batches).unwrap(), r#"[{"n":1}]"#);
    }

    /// Regression: `COALESCE(end_ts, '2026-…Z')` (an incident under way ends "now") failed to plan:
    /// DataFusion found no common type for a time and a text, which PostgreSQL reads as a time.
    #[tokio::test]
    async fn coalesce_reads_a_text_beside_a_time_as_a_time() {
        let (_dir, lake) = open_lake(SqlLimits::default());
        let sql = "SELECT COALESCE(t, '2026-11-01T00:00:30Z') AS a, COALESCE(CAST(NULL AS TIMESTAMP), t, '2026-11-01T00:00:30Z') AS b, \
                   COALESCE(t, NULL, '2026-11-01 00:00:30+01:00') AS c, COALESCE(d, '2026-11-02') AS e, COALESCE(n, 5) AS f \
                   FROM (VALUES (to_timestamp(1793491200), CAST('2026-11-01' AS DATE), 1), (CAST(NULL AS TIMESTAMP), CAST(NULL AS DATE), CAST(NULL AS BIGINT))) v(t, d, n) ORDER BY a";
        let r = lake.user_sql(sql).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            crate::format::to_json(&r.batches).unwrap(),
            r#"[{"a":"2026-11-01T00:00:00Z","b":"2026-11-01T00:00:00Z","c":"2026-11-01T00:00:00Z","e":"2026-11-01","f":1},{"a":"2026-11-01T00:00:30Z","b":"2026-11-01T00:00:30Z","c":"2026-10-31T23:00:30Z","e":"2026-11-02","f":5}]"#
        );
        // Types no text is read as stay refused.
        let err = lake.user_sql("SELECT COALESCE(to_timestamp(1793491200), true)").await.unwrap_err();
        assert!(err.to_string().contains("coalesce"), "{err}");
    }

    /// Regression: a column grouped next to a cast of it (`ts, ts::date`, `CAST(ts AS date)`) failed
    /// in DataFusion's optimizer, as both had one display name, aliased or not.
    #[tokio::test]
    async fn a_column_groups_next_to_a_cast_of_it() {
        let dir = tempfile::tempdir().unwrap();
        two_dates(dir.path());
        let lake = Lake::open_with(dir.path(), SqlLimits::default()).unwrap();
        for sql in [
            "SELECT ts, ts::date AS d, sum(requests) AS n FROM traffic_1m GROUP BY 1, 2 ORDER BY 1",
            "SELECT ts, CAST(ts AS date) AS d, sum(requests) AS n FROM traffic_1m GROUP BY ts, d ORDER BY 1",
            "SELECT ts, ts::date, sum(requests) AS n FROM traffic_1m GROUP BY 1, 2 ORDER BY 1",
        ] {
            let r = lake.user_sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            let rows = crate::format::to_json_rows(&r.batches).unwrap();
            assert_eq!(rows.len(), 2, "{sql}: {rows:?}");
            assert_eq!(rows[0]["n"], 7, "{sql}: {rows:?}");
            assert_eq!(rows[1].values().filter(|v| **v == "2026-11-02").count(), 1, "{sql}: {rows:?}");
        }
        // Constant grouping keys still group.
        let r = lake.user_sql("SELECT 1 AS one, sum(requests) AS n FROM traffic_1m GROUP BY 1").await.unwrap();
        assert_eq!(crate::format::to_json(&r.batches).unwrap(), r#"[{"one":1,"n":14}]"#);
    }

    /// Regression: the answer's schema was the logical plan's, which typed the quotient of an
    /// unsigned count as `Decimal128(20, 0)` while its values were `Decimal128(24, 4)`: the Arrow
    /// stream said 15000 for 1.5, Parquet output failed, and the Postgres wire refused the rows.
    #[tokio::test]
    async fn the_answer_is_typed_as_its_values_are() {
        let (_dir, lake) = open_lake(SqlLimits::default());
        let sql = "SELECT arrow_cast(3, 'UInt64') / 2 AS h, max(arrow_cast(7, 'UInt64')) / count(*) AS avg";
        let r = lake.user_sql(sql).await.unwrap();
        for b in &r.batches {
            assert_eq!(b.schema().fields(), r.schema.fields());
        }
        let ipc = crate::format::render(&r, crate::format::OutputFormat::ArrowIpc).unwrap();
        let read: Vec<RecordBatch> = datafusion::arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(ipc), None).unwrap().collect::<std::result::Result<_, _>>().unwrap();
        assert_eq!(crate::format::to_json(&read).unwrap(), crate::format::to_json(&r.batches).unwrap());
        assert_eq!(crate::format::to_json(&read).unwrap(), r#"[{"h":"1.5000","avg":"7.0000"}]"#);
    }

    #[tokio::test]
    async fn a_corrupt_file_is_named_and_the_rest_is_served() {
        let (dir, lake) = open_lake(SqlLimits::default());
        let files = two_dates(dir.path());
        let count = "SELECT SUM(requests) AS n FROM traffic_1m";
        assert_eq!(lake.user_sql(count).await.unwrap().num_rows(), 1);
        std::fs::write(&files[1], b"PAR1 not really parquet").unwrap();
        let e = lake.user_sql(count).await.unwrap_err();
        assert!(matches!(e, QueryError::CorruptFiles { .. }), "{e}");
        assert!(e.to_string().contains(&files[1].display().to_string()), "{e}");
        assert_eq!(e.http_status(), 500);
        let e = lake.sql(count).await.unwrap_err();
        assert!(e.to_string().contains("date=2026-11-02"), "{e}");
        // The other date and other tables are still served.
        let r = lake.user_sql("SELECT SUM(requests) AS n FROM traffic_1m WHERE date = '2026-11-01'").await.unwrap();
        assert_eq!(crate::format::to_json(&r.batches).unwrap(), r#"[{"n":7}]"#);
        assert!(lake.user_sql("SELECT COUNT(*) FROM site_rates_10s").await.is_ok());
    }

    /// Regression: a ratio of sums divided integers (0 here), where PostgreSQL and ClickHouse
    /// give the fraction.
    #[tokio::test]
    async fn a_ratio_of_sums_is_a_fraction() {
        let (dir, lake) = open_lake(SqlLimits::default());
        two_dates(dir.path());
        let answer = |sql: &'static str| {
            let lake = lake.clone();
            async move { crate::format::to_json(&lake.user_sql(sql).await.unwrap().batches).unwrap() }
        };
        assert_eq!(answer("SELECT sum(requests) / (sum(bytes) * 4) AS r FROM traffic_1m").await, r#"[{"r":0.25}]"#);
        assert_eq!(
            answer("SELECT date, sum(requests) / sum(sum(requests)) OVER () AS share FROM traffic_1m GROUP BY date ORDER BY date").await,
            r#"[{"date":"2026-11-01","share":0.5},{"date":"2026-11-02","share":0.5}]"#
        );
        // Sums of a CTE's sums, and a scalar subquery's.
        assert_eq!(
            answer("WITH t AS (SELECT date, sum(requests) AS r, sum(bytes) AS b FROM traffic_1m GROUP BY date) SELECT sum(r) / sum(b * 4) AS x, max(r) / (SELECT sum(requests) FROM traffic_1m) AS y FROM t").await,
            r#"[{"x":0.25,"y":0.5}]"#
        );
        // Sums named in a CTE (regression: they divided as integers).
        assert_eq!(
            answer("WITH t AS (SELECT date, sum(requests) AS r, sum(bytes) * 2 AS b FROM traffic_1m GROUP BY date) SELECT date, r / b AS f, (r * 3 / b)::bigint AS n FROM t ORDER BY date").await,
            r#"[{"date":"2026-11-01","f":0.5,"n":2},{"date":"2026-11-02","f":0.5,"n":2}]"#
        );
        // Casts to integers round: EXTRACT is a numeric (half away from zero), date_part a double
        // precision (half to even), as in PostgreSQL; DataFusion's casts cut both.
        assert_eq!(
            answer("SELECT (EXTRACT(EPOCH FROM ts) / 512)::bigint - 3502912 AS e, (date_part('epoch', ts) / 512)::bigint - 3502912 AS d FROM traffic_1m WHERE date = '2026-11-01'").await,
            r#"[{"e":1,"d":0}]"#
        );
        // The mark changes no type (regression: it made `EXTRACT(MINUTE …)` a float, `2.0`).
        assert_eq!(answer("SELECT arrow_typeof(EXTRACT(MINUTE FROM ts)) AS t FROM traffic_1m WHERE date = '2026-11-01'").await, r#"[{"t":"Int32"}]"#);
        // Output columns that are sums, divided in HAVING and ORDER BY.
        assert_eq!(
            answer("SELECT date, sum(requests) AS r, sum(bytes) * 2 AS b FROM traffic_1m GROUP BY date HAVING r / b > 0.4 ORDER BY r / b, date").await,
            r#"[{"date":"2026-11-01","r":7,"b":14},{"date":"2026-11-02","r":7,"b":14}]"#
        );
        // Named as without the rewrite; a sum of floats divides as before.
        assert_eq!(answer("SELECT sum(requests) / sum(bytes) FROM traffic_1m").await, r#"[{"sum(traffic_1m.requests) / sum(traffic_1m.bytes)":1.0}]"#);
        assert_eq!(answer("SELECT sum(requests * 0.5) / count(*) AS h FROM traffic_1m").await, r#"[{"h":3.5}]"#);
        // The sum is the fraction, before the arithmetic on it: 14 × 4·10¹⁸ does not wrap around.
        let big: serde_json::Value = serde_json::from_str(&answer("SELECT sum(bytes) * 4000000000000000000 / sum(requests) AS b FROM traffic_1m").await).unwrap();
        assert_eq!(big[0]["b"].as_f64(), Some(4e18), "{big}");
    }

    /// Regression: about 600 `UNION ALL` branches (140 in a debug build) overflowed the stack of
    /// the query's thread, which aborted the whole service; as many as `sql_compat` allows run,
    /// as do as many `WITH` queries each reading the last.
    #[tokio::test]
    async fn a_statement_of_as_many_unions_as_allowed_runs() {
        let (dir, lake) = open_lake(SqlLimits::default());
        two_dates(dir.path());
        let branches = (0..=crate::sql_compat::MAX_STATEMENT_PARTS).map(|i| format!("SELECT site FROM traffic_1m WHERE requests > {i}")).collect::<Vec<_>>();
        let sql = format!("SELECT count(*) AS n FROM ({}) AS u", branches.join(" UNION ALL "));
        let r = lake.user_sql(&sql).await.unwrap();
        assert_eq!(crate::format::to_json(&r.batches).unwrap(), r#"[{"n":14}]"#);
        let n = crate::sql_compat::MAX_STATEMENT_PARTS;
        let links = (1..n).map(|i| format!("c{i} AS (SELECT requests + 1 AS requests FROM c{})", i - 1)).collect::<Vec<_>>();
        let sql = format!("WITH c0 AS (SELECT requests FROM traffic_1m WHERE requests = 7), {} SELECT max(requests) AS m FROM c{}", links.join(", "), n - 1);
        let r = lake.user_sql(&sql).await.unwrap();
        assert_eq!(crate::format::to_json(&r.batches).unwrap(), format!(r#"[{{"m":{}}}]"#, 7 + n - 1));
    }

    /// Regression: `site = 5` failed with "Cannot cast string 'x' to value of Int64 type", which
    /// blames a value of the data; the error now says what to write.
    #[tokio::test]
    async fn text_compared_with_a_number_says_what_to_write() {
        let (dir, lake) = open_lake(SqlLimits::default());
        two_dates(dir.path());
        let e = lake.user_sql("SELECT count(*) FROM traffic_1m WHERE site = 5").await.unwrap_err();
        assert!(matches!(e, QueryError::DataError(_)) && e.to_string().contains("compare text with text"), "{e}");
        assert_eq!(e.http_status(), 400);
    }

    /// Regression: `length(clients_sketch)` was a 500 (an internal error): bytes read as text are
    /// the statement's error, and it says what to write.
    #[tokio::test]
    async fn a_sketch_read_as_text_is_the_statements_error() {
        let (_dir, lake) = open_lake(SqlLimits::default());
        let e = lake.user_sql("SELECT length(CAST(X'FF00' AS BYTEA)) AS n").await.unwrap_err();
        assert!(matches!(e, QueryError::DataError(_)) && e.to_string().contains("encode(x, 'hex')"), "{e}");
        assert_eq!(e.http_status(), 400);
        let r = lake.user_sql("SELECT length(encode(CAST(X'FF00' AS BYTEA), 'hex')) / 2 AS n").await.unwrap();
        assert_eq!(crate::format::to_json(&r.batches).unwrap(), r#"[{"n":2}]"#);
    }

    /// Regression: `x::float` was single precision (`sum(a)::float / sum(b)` lost digits), `2 ^ 10`
    /// was a bitwise XOR (8), and `generate_series(1, 3) g` had no column `g`: PostgreSQL's
    /// meanings now.
    #[tokio::test]
    async fn float_power_and_series_aliases_mean_what_they_mean_in_postgres() {
        // (`mod` and `sign` too: they were unknown functions.)
        let (_dir, lake) = open_lake(SqlLimits::default());
        let sql = "SELECT 1::float / 3 AS a, CAST(123456789 AS float) AS b, CAST(1 AS float(53)) / 3 AS c, 1::real / 3 AS d, \
                   CAST(1 AS float(10)) / 3 AS e, 2 ^ 10 AS f, 2.0 ^ 3 AS g, 2 * 3 ^ 2 AS h, 10 - 2 ^ 2 AS i, 2 ^ 2 + 1 AS j, 1 + 2 ^ 3 * 2 AS k, 2 ^ 3 ^ 2 AS l, float '1.1' AS m, -2 ^ 2 AS n, - 2 ^ 3 * 2 AS o, -(2 ^ 2) AS p, 1 - -2 ^ 2 AS q, +2 ^ 2 AS r, \
                   mod(-7, 1 + 2) AS s, MOD(7.5, 2) AS t, sign(-2.5) AS u, sign(0) AS v, sign(3) AS w";
        let r = lake.user_sql(sql).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            crate::format::to_json(&r.batches).unwrap(),
            r#"[{"a":0.3333333333333333,"b":123456789.0,"c":0.3333333333333333,"d":0.3333333432674408,"e":0.3333333432674408,"f":1024.0,"g":8.0,"h":18.0,"i":6.0,"j":5.0,"k":17.0,"l":64.0,"m":1.1,"n":4.0,"o":-16.0,"p":-4.0,"q":-3.0,"r":4.0,"s":-1,"t":1.5,"u":-1.0,"v":0.0,"w":1.0}]"#
        );
        let types: Vec<&DataType> = r.schema.fields().iter().map(|f| f.data_type()).collect();
        assert_eq!(types[..5], [&DataType::Float64, &DataType::Float64, &DataType::Float64, &DataType::Float32, &DataType::Float32]);
        for sql in ["SELECT g FROM generate_series(1, 3) g ORDER BY g", "SELECT g.g FROM generate_series(1, 3) AS g ORDER BY 1", "SELECT x FROM generate_series(1, 3) AS g(x)"] {
            let r = lake.user_sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            let rows = crate::format::to_json_rows(&r.batches).unwrap();
            assert_eq!(rows.len(), 3, "{sql}: {rows:?}");
        }
    }

    /// Regression: times written as PostgreSQL reads and writes them failed on the lake: a time
    /// without seconds ("error parsing time"), a zone name in lower case, `localtimestamp` (read
    /// as a column), an interval times a number, `to_timestamp` with PostgreSQL's template,
    /// `pg_typeof`; `ts::text` was RFC 3339.
    #[tokio::test]
    async fn times_in_postgres_forms_are_read_and_written_as_postgres_does() {
        let (dir, lake) = open_lake(SqlLimits::default());
        two_dates(dir.path());
        let sql = "SELECT count(*) FILTER (WHERE ts >= '2026-11-01 00:00') AS a, min(ts)::text AS b, \
                   date_trunc('hour', min(ts) AT TIME ZONE 'utc')::text AS c, (min(ts) AT TIME ZONE 'europe/paris')::text AS d, \
                   (timestamptz '2026-11-28 10:15' - interval '1 hour 30 minutes' * 2)::text AS e, \
                   (timestamptz '2026-11-28 10:15' + 2 * interval '1 day' - interval '1 hour' / 4)::text AS f, \
                   to_timestamp('28/11/2026 10:15', 'DD/MM/YYYY HH24:MI')::text AS g, to_date('28/11/2026', 'DD/MM/YYYY') AS h, \
                   pg_typeof(sum(requests)) AS i, pg_typeof(min(ts)) AS j, pg_typeof(min(site)) AS k, \
                   localtimestamp <= now() AT TIME ZONE 'UTC' AS l, pg_typeof(localtimestamp) AS m, pg_typeof(localtime) AS n \
                   FROM traffic_1m";
        let r = lake.user_sql(sql).await.unwrap_or_else(|e| panic!("{e}"));
        let rows = crate::format::to_json_rows(&r.batches).unwrap();
        let row = &rows[0];
        let text = |k: &str| row[k].as_str().unwrap_or_else(|| panic!("{k}: {row:?}")).to_owned();
        assert!(row["a"].as_i64().unwrap() > 0, "{row:?}");
        assert_eq!(text("b"), "2026-11-01 00:00:00+00");
        assert_eq!(text("c"), "2026-11-01 00:00:00+00");
        assert_eq!(text("d"), "2026-11-01 01:00:00");
        assert_eq!(text("e"), "2026-11-28 07:15:00+00");
        assert_eq!(text("f"), "2026-11-30 10:00:00+00");
        assert_eq!(text("g"), "2026-11-28 10:15:00+00");
        assert_eq!(text("h"), "2026-11-28");
        assert_eq!((text("i"), text("j"), text("k")), ("bigint".into(), "timestamp with time zone".into(), "text".into()));
        assert_eq!(row["l"], serde_json::json!(true));
        assert_eq!((text("m"), text("n")), ("timestamp without time zone".into(), "time without time zone".into()));
        // Found by a comparison with PostgreSQL 15.
        let sql = "SELECT (interval '26 hours')::text::interval::text AS a, (interval '1 day' / 3)::text AS b, (interval '1 year' / 5)::text AS c, \
                   (-interval '1 hour' * 2)::text AS d, (interval '1 day 02:30:00' * 2)::text AS e, (interval '1 month' * 1.01)::text AS f, \
                   to_timestamp(min(date) || ' 10:15', 'YYYY-MM-DD HH:MI')::text AS g, to_date('2026-11', 'YYYY-MM') AS h, \
                   to_timestamp('28 NOV 2026', 'DD MON YYYY')::text AS i, (min(ts) - '1 hour')::text AS j, ceiling(1.5) AS k, \
                   pg_typeof(1) AS l, pg_typeof(1::bigint) AS m, (timestamptz '2026-11-28 10:00' - timestamptz '2026-11-25 08:30')::text AS n, \
                   count(*) FILTER (WHERE ts >= '2026/11/1 0:0 utc') AS o, \
                   extract(second from timestamptz '2026-11-28 10:15:30.5+00') AS p, date_part('SECOND', min(ts) + interval '1.25 seconds') AS q, \
                   date_trunc('day', min(ts) + interval '12 hours', 'america/new_york')::text AS r, timezone('Asia/Tokyo', min(ts))::text AS s, \
                   age(timestamptz '2026-11-29 10:00', min(ts))::text AS t, age(min(ts)) IS NOT NULL AS u, \
                   to_timestamp('2026-11-28 10', 'YYYY-MM-DD HH24')::text AS v, to_timestamp('2026112812', 'YYYYMMDDHH12')::text AS w, \
                   (min(ts) + '1 day 02:00')::text AS x, (interval '1 month - 1 day')::text AS y, (min(ts) + interval '@ 1 hour ago')::text AS z, \
                   (min(ts) + min(requests) * interval '1 minute')::text AS aa, ('1 hour'::interval / (1 + 1))::text AS ab, \
                   (interval '1 hour' * CAST(NULL AS int)) IS NULL AS ac, \
                   extract(hour from timestamptz '2026-11-03 05:00' - min(ts)) AS ad, date_part('second', timestamptz '2026-11-03 05:00:30.5' - min(ts)) AS ae, \
                   extract(second from interval '1 min 30.5 sec') AS af, date_part('day', timestamptz '2026-11-03 05:00' - min(ts)) AS ag, \
                   round(2.5::float8) AS ah, round(2.5) AS ai, round(-3.5::float8) AS aj, round(sum(requests) / 4) AS ak, \
                   (SELECT string_agg(round(x)::text, ' ' ORDER BY x) FROM (VALUES (0.5), (1.5), (2.5), (-0.5)) v(x)) AS ap, \
                   (date '2026-11-01' + interval '30 minutes')::text AS al, (min(ts)::date - interval '1 hour')::text AS am, pg_typeof(current_date + '6 hours') AS an, \
                   count(*) FILTER (WHERE ts >= '2026-11-01'::date + interval '30 minutes') AS ao, \
                   (max(ts::date) + interval '6 hours')::text AS aq, (to_date('2026-11-01', 'YYYY-MM-DD') + interval '6 hours')::text AS ar, \
                   (SELECT x::text FROM (VALUES (date '2026-11-01' + interval '1 hour')) v(x)) AS as_, \
                   (WITH RECURSIVE s(t) AS (SELECT date '2026-11-01' + interval '0 hour' UNION ALL SELECT t + interval '12 hours' FROM s WHERE t < timestamp '2026-11-02') \
                    SELECT max(t)::text FROM s) AS at_, \
                   extract(epoch from interval '1 year') AS au, date_part('epoch', interval '1 mon 2 days 03:00:00') AS av \
                   FROM traffic_1m";
        let r = lake.user_sql(sql).await.unwrap_or_else(|e| panic!("{e}"));
        let rows = crate::format::to_json_rows(&r.batches).unwrap();
        let row = &rows[0];
        let text = |k: &str| row[k].as_str().unwrap_or_else(|| panic!("{k}: {row:?}")).to_owned();
        for (k, want) in [
            ("a", "26:00:00"),
            ("b", "08:00:00"),
            ("c", "2 mons 12 days"),
            ("d", "-02:00:00"),
            ("e", "2 days 05:00:00"),
            ("f", "1 mon 07:12:00"),
            ("g", "2026-11-01 10:15:00+00"),
            ("h", "2026-11-01"),
            ("i", "2026-11-28 00:00:00+00"),
            ("j", "2026-10-31 23:00:00+00"),
            ("l", "bigint"),
            ("m", "bigint"),
            ("n", "3 days 01:30:00"),
            ("r", "2026-11-01 04:00:00+00"),
            ("s", "2026-11-01 09:00:00"),
            ("t", "28 days 10:00:00"),
            ("v", "2026-11-28 10:00:00+00"),
            ("w", "2026-11-28 00:00:00+00"),
            ("x", "2026-11-02 02:00:00+00"),
            ("y", "1 mon -1 days"),
            ("z", "2026-10-31 23:00:00+00"),
            ("aa", "2026-11-01 00:07:00+00"),
            ("ab", "00:30:00"),
            ("al", "2026-11-01 00:30:00"),
            ("am", "2026-10-31 23:00:00"),
            ("an", "timestamp without time zone"),
            ("ap", "-1 1 2 3"),
            ("aq", "2026-11-02 06:00:00"),
            ("ar", "2026-11-01 06:00:00"),
            // Regression: `VALUES` and a recursive query's anchor failed once typed anew on the plan.
            ("as_", "2026-11-01 01:00:00"),
            ("at_", "2026-11-02 00:00:00"),
        ] {
            assert_eq!(text(k), want, "{k}: {row:?}");
        }
        assert_eq!(row["k"], serde_json::json!(2.0));
        assert_eq!(row["o"], serde_json::json!(2));
        assert_eq!((row["p"].as_f64(), row["q"].as_f64()), (Some(30.5), Some(1.25)), "{row:?}");
        assert_eq!(row["ac"], serde_json::json!(true));
        // Only the second day's row is at or after 00:30 on the first.
        assert_eq!(row["ao"], serde_json::json!(1));
        // Of the difference of two times, as of PostgreSQL's interval: 2 days 05:00:30.5.
        assert_eq!((row["ad"].as_f64(), row["ae"].as_f64(), row["af"].as_f64(), row["ag"].as_f64()), (Some(5.0), Some(30.5), Some(30.5), Some(2.0)), "{row:?}");
        // PostgreSQL 15: 31557600 (a year of 365.25 days) and 2775600.
        assert_eq!((row["au"].as_f64(), row["av"].as_f64()), (Some(31_557_600.0), Some(2_775_600.0)), "{row:?}");
        // `round` of a double half to even, of a numeric (a fractional literal, a sum's fraction) half away.
        assert_eq!([&row["ah"], &row["ai"], &row["aj"], &row["ak"]], [2.0, 3.0, -4.0, 4.0].map(|v| serde_json::json!(v)).each_ref(), "{row:?}");
        let e = lake.user_sql("SELECT interval '1 day' / 0").await.unwrap_err();
        assert!(e.to_string().contains("division by zero"), "{e}");
    }

    /// Regression: a time span that is no interval literal (the difference of two times, an
    /// interval column) could not be multiplied or divided: `(max(ts) - min(ts)) / 60` failed to
    /// plan ("Cannot coerce arithmetic expression Duration(µs) / Int64"). Answers of PostgreSQL 15.
    #[tokio::test]
    async fn time_spans_are_multiplied_and_divided_as_postgres_does() {
        let (dir, lake) = open_lake(SqlLimits::default());
        two_dates(dir.path());
        let d = "(timestamptz '2026-11-28 10:00' - timestamptz '2026-11-25 08:30')";
        let sql = format!(
            "SELECT ({d} / 60)::text AS a, (2 * {d})::text AS b, ({d} * 1.5)::text AS c, \
             ((max(t) - min(t)) / count(*))::text AS d, extract(epoch from (max(t) - min(t)) / 4) AS e, \
             (max(t) - min(t)) / 4 = interval '30 minutes' AS f, pg_typeof((max(t) - min(t)) * 2) AS g, \
             ((max(t) - min(t)) * sum(n))::text AS h, (interval '1 day 02:00' * max(n) / 2)::text AS i, \
             (sum(n) * 2)::text AS j, ((max(t) - min(t)) * CAST(NULL AS int)) IS NULL AS k \
             FROM (VALUES (timestamptz '2026-11-01 00:00', 1), (timestamptz '2026-11-01 01:00', 2), (timestamptz '2026-11-01 02:00', 3)) v(t, n)"
        );
        let r = lake.user_sql(&sql).await.unwrap_or_else(|e| panic!("{e}"));
        let rows = crate::format::to_json_rows(&r.batches).unwrap();
        let row = &rows[0];
        let text = |k: &str| row[k].as_str().unwrap_or_else(|| panic!("{k}: {row:?}")).to_owned();
        for (k, want) in [
            ("a", "01:13:30"),
            ("b", "6 days 03:00:00"),
            ("c", "4 days 14:15:00"),
            ("d", "00:40:00"),
            ("g", "interval"),
            ("h", "12:00:00"),
            ("i", "1 day 15:00:00"),
            ("j", "12"),
        ] {
            assert_eq!(text(k), want, "{k}: {row:?}");
        }
        assert_eq!((row["e"].as_f64(), &row["f"], &row["k"]), (Some(1800.0), &serde_json::json!(true), &serde_json::json!(true)), "{row:?}");
        // Each row's span by each row's number.
        let sql = "SELECT (iv * n)::text AS s FROM (VALUES (interval '1 day', 2), (interval '90 minutes', 3)) v(iv, n) ORDER BY n";
        let r = lake.user_sql(sql).await.unwrap_or_else(|e| panic!("{e}"));
        let rows = crate::format::to_json_rows(&r.batches).unwrap();
        assert_eq!(rows.iter().map(|r| r["s"].as_str().unwrap_or_default()).collect::<Vec<_>>(), ["2 days", "04:30:00"], "{rows:?}");
        let e = lake.user_sql(&format!("SELECT {d} / 0")).await.unwrap_err();
        assert!(e.to_string().contains("division by zero"), "{e}");
        // A span divided by a span, or a number by a span, is no PostgreSQL operator either.
        for sql in [format!("SELECT {d} / {d}"), format!("SELECT 60 / {d}")] {
            assert!(lake.user_sql(&sql).await.is_err(), "{sql}");
        }
        // A scaled difference of times orders and compares by its length (1 day 23 h × 3 is
        // longer than 2 days × 2), and keeps PostgreSQL's days and time (`3 days 69:00:00`).
        let v = "(VALUES (timestamp '2026-01-01', timestamp '2026-01-02 23:00', 3), (timestamp '2026-01-01', timestamp '2026-01-03', 2)) v(a, b, n)";
        for (sql, want) in [
            (format!("SELECT string_agg(n::text, ',' ORDER BY (b - a) * n DESC) AS s FROM {v}"), "3,2"),
            (format!("SELECT string_agg(((b - a) * n)::text || '/' || extract(hour from (b - a) * n), ',' ORDER BY n DESC) AS s FROM {v}"), "3 days 69:00:00/69,4 days/0"),
            (format!("SELECT count(*)::text AS s FROM {v} WHERE (b - a) * n > interval '5 days'"), "1"),
            // A quoted number is the factor, as PostgreSQL reads it.
            ("SELECT (interval '1 day' * '2')::text AS s".to_owned(), "2 days"),
            (format!("SELECT ({d} * '2')::text AS s"), "6 days 03:00:00"),
        ] {
            let r = lake.user_sql(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            let rows = crate::format::to_json_rows(&r.batches).unwrap();
            assert_eq!(rows[0]["s"].as_str(), Some(want), "{sql}: {rows:?}");
        }
        // Intervals sort by length too (1 day × 1 is less than 30 hours × 3, more than 2 hours × 2).
        let sql = "SELECT n FROM (VALUES (interval '1 day', 1), (interval '2 hours', 2), (interval '30 hours', 3)) v(iv, n) ORDER BY iv * n DESC";
        let r = lake.user_sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        let rows = crate::format::to_json_rows(&r.batches).unwrap();
        assert_eq!(rows.iter().map(|r| r["n"].as_i64().unwrap()).collect::<Vec<_>>(), [3, 1, 2], "{rows:?}");
        // Unaliased, the column is named as the operation written, not as the function planned.
        let r = lake.user_sql(&format!("SELECT (b - a) / 2 FROM {v} LIMIT 1")).await.unwrap();
        assert_eq!(r.schema.field(0).name(), "v.b - v.a / Int64(2)");
    }

    /// Regression: a function refusing the values of the statement (`sqrt(-1)`, a month 13, an
    /// unknown `date_trunc` unit, an invalid regular expression) was an internal error (500).
    #[tokio::test]
    async fn a_function_refusing_its_arguments_is_the_statements_error() {
        let (dir, lake) = open_lake(SqlLimits::default());
        two_dates(dir.path());
        for sql in [
            "SELECT sqrt(-1)",
            "SELECT make_date(2026, 13, 1)",
            "SELECT chr(-1)",
            "SELECT date_trunc('fortnight', ts) FROM traffic_1m",
            "SELECT 'x' ~ '['",
            "SELECT arrow_cast(1, 'Foo')",
        ] {
            let e = lake.user_sql(sql).await.unwrap_err();
            assert_eq!(e.http_status(), 400, "{sql}: {e}");
        }
    }

    /// Regression: user SQL saw the counts as unsigned, as stored: `requests - bytes - 1` wrapped
    /// around to 18446744073709551615, `-requests` was refused, and `requests + 1` or
    /// `requests / 2` was a decimal, written as text. They are PostgreSQL's `bigint`s, as the
    /// Postgres wire calls them.
    #[tokio::test]
    async fn user_sql_counts_are_postgres_bigints() {
        let (dir, lake) = open_lake(SqlLimits::default());
        two_dates(dir.path());
        let r = lake.user_sql("SELECT requests - bytes - 1 AS d, -requests AS n, requests + 1 AS p, requests / 2 AS q, coalesce(requests, 0) AS c FROM traffic_1m WHERE date = '2026-11-01'").await.unwrap();
        assert_eq!(crate::format::to_json(&r.batches).unwrap(), r#"[{"d":-1,"n":-7,"p":8,"q":3,"c":7}]"#);
        assert!(r.schema.fields().iter().all(|f| f.data_type() == &DataType::Int64), "{:?}", r.schema);
        // The service's own queries read them as stored.
        let own = lake.sql("SELECT requests FROM traffic_1m LIMIT 1").await.unwrap();
        assert_eq!(own[0].schema().field(0).data_type(), &DataType::UInt64);
    }

    /// Regression: a file whose footer parses but whose pages do not decode failed queries with
    /// the decoder's error, which named no file.
    #[tokio::test]
    async fn a_file_with_a_corrupt_page_is_named() {
        let (dir, lake) = open_lake(SqlLimits::default());
        let files = two_dates(dir.path());
        let good: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
        // Everything between the leading magic and the footer overwritten: the footer still parses.
        let corrupt = |i: usize| {
            let mut bytes = good[i].clone();
            let n = bytes.len();
            let footer = u32::from_le_bytes(bytes[n - 8..n - 4].try_into().unwrap()) as usize;
            bytes[4..n - 8 - footer].fill(0xff);
            std::fs::write(&files[i], &bytes).unwrap();
        };
        let count = "SELECT SUM(requests) AS n FROM traffic_1m";
        corrupt(1);
        let e = lake.user_sql(count).await.unwrap_err();
        assert!(matches!(e, QueryError::CorruptFiles { .. }), "{e}");
        let named = |e: &QueryError, i: usize| e.to_string().contains(&files[i].display().to_string());
        assert!(named(&e, 1) && !named(&e, 0), "{e}");
        assert!(named(&lake.sql(count).await.unwrap_err(), 1));
        // Mended, it is served; a file that read back whole before and changed since is read again.
        std::fs::write(&files[1], &good[1]).unwrap();
        assert_eq!(crate::format::to_json(&lake.user_sql(count).await.unwrap().batches).unwrap(), r#"[{"n":14}]"#);
        corrupt(0);
        let later = std::time::SystemTime::now() + Duration::from_secs(5); // a later write, whatever the clock's grain
        std::fs::File::options().write(true).open(&files[0]).unwrap().set_modified(later).unwrap();
        let e = lake.user_sql(count).await.unwrap_err();
        assert!(named(&e, 0) && !named(&e, 1), "{e}");
    }

    /// Regression: `SELECT count(*), count(*)` (and any column written twice) was refused
    /// ("Projections require unique expression names"); PostgreSQL answers it.
    #[tokio::test]
    async fn a_column_written_twice_is_answered_twice() {
        let (_dir, lake) = open_lake(SqlLimits::default());
        for sql in ["SELECT count(*), COUNT(*) FROM range(3)", "SELECT value, r.value FROM range(3) r", "SELECT value, VALUE FROM range(3)"] {
            assert_eq!(lake.user_sql(sql).await.map(|r| r.num_rows()).unwrap_or_else(|e| panic!("{sql}: {e}")), if sql.contains("count") { 1 } else { 3 });
        }
        let r = lake.user_sql("SELECT count(*), count(*), value % 2, value % 2 FROM range(3) GROUP BY value % 2 ORDER BY 3").await.unwrap();
        assert_eq!(
            crate::format::to_json(&r.batches).unwrap(),
            r#"[{"count(*)":2,"count(*)_2":2,"range().value % Int64(2)":0,"value % 2_2":0},{"count(*)":1,"count(*)_2":1,"range().value % Int64(2)":1,"value % 2_2":1}]"#
        );
    }

    #[tokio::test]
    async fn user_sql_is_bounded_in_rows_time_and_memory() {
        let limits = SqlLimits { timeout: Duration::from_secs(1), max_rows: 1_000, memory_bytes: 4 << 20, max_join_pairs: u64::MAX };
        let (_dir, lake) = open_lake(limits);
        assert_eq!(lake.user_sql("SELECT * FROM range(1000)").await.unwrap().num_rows(), 1_000);
        let too_many = lake.user_sql("SELECT * FROM range(1001)").await.unwrap_err();
        assert!(matches!(too_many, QueryError::LimitExceeded(_)), "{too_many}");
        assert_eq!(too_many.http_status(), 400);
        let big = lake
            .user_sql("SELECT value % 3000000 AS k, COUNT(*) AS n FROM range(6000000) GROUP BY k ORDER BY n DESC LIMIT 1")
            .await
            .unwrap_err();
        assert!(matches!(big, QueryError::LimitExceeded(ref m) if m.contains("memory")), "{big}");
        // The service's own queries are not bound by the user pool.
        assert!(lake.query("SELECT value % 3000000 AS k, COUNT(*) AS n FROM range(6000000) GROUP BY k ORDER BY n DESC LIMIT 1", Vec::new()).await.is_ok());
        // The same query fits with the default limits.
        let (_dir, roomy) = open_lake(SqlLimits::default());
        assert!(roomy.user_sql("SELECT value % 3000 AS k FROM range(6000) GROUP BY k").await.is_ok());
        // Last: a query stopped by its time limit goes on until its next yield.
        let slow = lake.user_sql("SELECT COUNT(*) FROM range(200000) a CROSS JOIN range(200000) b").await.unwrap_err();
        assert!(matches!(slow, QueryError::LimitExceeded(ref m) if m.contains("longer than")), "{slow}");
    }

    /// Regression: a join whose condition rejects every pair never yields, so the time limit kept
    /// on the execution runtime never fired; the client waited for the request timeout and every
    /// later query behind it. The limit now fires on the caller's side, and such joins beyond
    /// `max_join_pairs` are refused before they run.
    #[tokio::test]
    async fn a_join_without_equality_is_bounded_before_and_while_it_runs() {
        // 10^10 pairs of 100 000 rows, none of which matches.
        let runaway = "SELECT COUNT(*) FROM traffic_1m a, traffic_1m b WHERE a.requests * b.requests = 3";
        let limits = SqlLimits { timeout: Duration::from_secs(1), max_rows: 1_000, memory_bytes: 64 << 20, max_join_pairs: u64::MAX };
        let (dir, guarded) = open_lake(SqlLimits { max_join_pairs: 1_000_000_000, ..limits });
        traffic_file(dir.path(), "2026-11-01", 1_793_491_200_000_000, 100_000);
        let refused = guarded.user_sql(runaway).await.unwrap_err();
        assert!(matches!(refused, QueryError::LimitExceeded(ref m) if m.contains("row pairs")), "{refused}");
        assert_eq!(refused.http_status(), 400);
        // A grid of distinct values (a gap-filling query) is sized by its groups, not its table:
        // DataFusion takes a grouping's input rows as its estimate (10^10 pairs here).
        let grid = "SELECT COUNT(*) FROM (SELECT DISTINCT requests FROM traffic_1m) s CROSS JOIN (SELECT DISTINCT ts FROM traffic_1m) t";
        assert_eq!(crate::format::to_json(&guarded.user_sql(grid).await.unwrap().batches).unwrap(), r#"[{"count(*)":99999}]"#);
        // Below the limit, and joins on equal columns, run.
        assert!(guarded.user_sql("SELECT COUNT(*) FROM range(1000) a, range(1000) b WHERE a.value < b.value").await.is_ok());
        assert!(guarded.user_sql("SELECT COUNT(*) FROM range(100000) a JOIN range(100000) b ON a.value = b.value").await.is_ok());
        // Without the guard the join runs, and its time limit fires on time (it goes on running
        // until its next yield, which is why this comes last).
        let lake = Lake::open_with(dir.path(), limits).unwrap();
        let started = std::time::Instant::now();
        let slow = lake.user_sql(runaway).await.unwrap_err();
        assert!(matches!(slow, QueryError::LimitExceeded(ref m) if m.contains("longer than")), "{slow}");
        assert!(started.elapsed() < Duration::from_secs(20), "answered after {:?}", started.elapsed());
    }
}
