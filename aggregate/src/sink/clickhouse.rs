//! The ClickHouse sink: rollups and dead letters into the `T_local` tables of
//! [`edgelens_schemas::clickhouse`], exactly once.
//!
//! - Every row carries its write's provenance (`_source`, `_partition`, `_from`, `_to`), so the
//!   writes of a span can be found and removed: [`RollupSink::discard_after`] deletes a crashed
//!   writer's spans (`ALTER TABLE ... DELETE`, waiting for the mutation), exactly as the lake deletes
//!   its files. Each span is recorded in a small manifest table before its rows are inserted; a span
//!   found there (a replay of the same input, a retried or half-done insert) has its rows deleted
//!   before they are inserted again, so a rewrite replaces and never doubles rows.
//! - Writes block until ClickHouse accepted them: retryable errors (unreachable server, timeouts,
//!   "too many parts", memory limits…) are retried with capped exponential backoff until they
//!   succeed or the process is stopped. Meanwhile the caller consumes nothing and commits no offset:
//!   the broker holds the backlog and memory stays bounded.
//! - One source partition writes to one shard (hash of `(source, partition)` over the configured
//!   shards), so a shard's `T_local` holds whole spans; discards ask every shard.
//! - [`migrate`] creates or upgrades the schema (versioned, see [`Layout::migrations`]) and then
//!   checks that every table has exactly the columns this build writes; a newer or different schema
//!   is an error, never silently used.
//!
//! The `clickhouse` crate is async; this sink is called from the aggregator's blocking thread and
//! drives it on its own single-threaded runtime. Settings that the oldest supported server (18.16)
//! needs: no row validation, no compression, client-side literals.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arrow::array::{Array, BinaryArray, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray, UInt16Array, UInt32Array, UInt64Array};
use bytes::Bytes;
use clickhouse::{Client, Compression};
use edgelens_schemas::clickhouse::{ClickHouseConfig, Layout, MIGRATIONS_TABLE, SPANS_TABLE, string_literal};
use edgelens_schemas::tables::{ALL_TABLES, ColumnType, TableDef};

use crate::batches;
use crate::checkpoint::Fnv1a;
use crate::error::SinkError;
use crate::sink::{OffsetSpan, RollupSink, SinkBatch};

/// Counters of one sink.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ClickHouseStats {
    pub inserts: u64,
    pub rows: u64,
    pub retries: u64,
    pub spans_deleted: u64,
}

pub struct ClickHouseSink {
    rt: tokio::runtime::Runtime,
    shards: Vec<Client>,
    layout: Layout,
    max_backoff: Duration,
    stop: Arc<AtomicBool>,
    /// While connecting with [`ClickHouseSink::connect_within`]: when retrying stops.
    give_up_at: Option<std::time::Instant>,
    /// The servers written to, for messages.
    servers: String,
    pub stats: ClickHouseStats,
    /// Where each failed attempt is counted as it happens (the aggregator's `/metrics`), so an
    /// outage shows while it lasts, not once the write that waited it out went through.
    pub metrics: Option<Arc<crate::metrics::AggregateMetrics>>,
}

impl std::fmt::Debug for ClickHouseSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseSink").field("shards", &self.shards.len()).field("layout", &self.layout).field("stats", &self.stats).finish()
    }
}

/// A client for one server with the settings every edgelens request uses.
pub fn client(url: &str, cfg: &ClickHouseConfig) -> Client {
    let mut c = Client::default().with_url(url).with_validation(false).with_compression(Compression::None).with_user(&cfg.user);
    if !cfg.password.is_empty() {
        c = c.with_password(&cfg.password);
    }
    c
}

impl ClickHouseSink {
    /// Connect to every write server and migrate its schema. While a server is unreachable this
    /// retries (like a write) until `stop` is set.
    pub fn connect(cfg: &ClickHouseConfig, stop: Arc<AtomicBool>) -> Result<Self, SinkError> {
        Self::connect_within(cfg, stop, None)
    }

    /// [`ClickHouseSink::connect`], giving up after `patience` (when given) with the last error:
    /// for one-shot commands, where a wrong address or a server that is not running must fail
    /// the command rather than keep it waiting. Writes after the connection retry as always.
    pub fn connect_within(cfg: &ClickHouseConfig, stop: Arc<AtomicBool>, patience: Option<Duration>) -> Result<Self, SinkError> {
        if !cfg.enabled() {
            return Err(SinkError::Config("ClickHouse sink without [clickhouse] url or shards".to_owned()));
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| SinkError::Config(format!("cannot start the ClickHouse client runtime: {e}")))?;
        let shards: Vec<Client> = cfg.write_servers().iter().map(|u| client(u, cfg)).collect();
        let mut sink = ClickHouseSink {
            rt,
            shards,
            layout: cfg.layout(),
            max_backoff: Duration::from_millis(cfg.max_backoff_ms.max(1)),
            stop,
            give_up_at: patience.map(|p| std::time::Instant::now() + p),
            servers: cfg.write_servers().join(", "),
            stats: ClickHouseStats::default(),
            metrics: None,
        };
        let timeout = Duration::from_millis(cfg.request_timeout_ms.max(1));
        for i in 0..sink.shards.len() {
            let applied = sink.with_retries(&format!("migrating shard {i}"), |s| {
                let c = s.shards[i].clone();
                let layout = s.layout.clone();
                s.rt.block_on(async move { tokio::time::timeout(timeout, migrate(&c, &layout)).await.unwrap_or(Err(SinkError::ClickHouse { message: "schema migration timed out".to_owned(), retryable: true })) })
            })?;
            let server: String = sink.rt.block_on(sink.shards[i].query("SELECT version()").fetch_one()).map_err(SinkError::clickhouse)?;
            tracing::info!(shard = i, server, applied, version = sink.layout.latest_version(), "ClickHouse schema ready");
        }
        sink.give_up_at = None;
        Ok(sink)
    }

    /// The shard that holds the writes of `source`/`partition`.
    pub fn shard_for(&self, source: &str, partition: i32) -> usize {
        let mut h = Fnv1a::new();
        h.update(source.as_bytes());
        h.update(&partition.to_le_bytes());
        (h.finish() % self.shards.len() as u64) as usize
    }

    /// Run `attempt` until it succeeds, fails for good, or the process is asked to stop.
    fn with_retries<T>(&mut self, what: &str, mut attempt: impl FnMut(&mut Self) -> Result<T, SinkError>) -> Result<T, SinkError> {
        let mut backoff = Duration::from_millis(100);
        loop {
            match attempt(self) {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() && self.give_up_at.is_some_and(|t| std::time::Instant::now() >= t) => {
                    return Err(SinkError::ClickHouse { message: format!("{what}: no answer in time, giving up ({e}); is the server running at {}?", self.servers), retryable: false });
                }
                Err(e) if e.is_retryable() && !self.stop.load(Ordering::Relaxed) => {
                    self.stats.retries += 1;
                    if let Some(m) = &self.metrics {
                        m.sink_failures(crate::metrics::SinkKind::ClickHouse, 1, 1);
                    }
                    tracing::warn!(servers = %self.servers, error = %e, retry_in_ms = backoff.as_millis() as u64, "ClickHouse: {what} failed; retrying");
                    let deadline = std::time::Instant::now() + backoff;
                    while std::time::Instant::now() < deadline && !self.stop.load(Ordering::Relaxed) {
                        // Waiting on ClickHouse, knowingly: the consumer loop is not stalled.
                        if let Some(m) = &self.metrics {
                            m.beat();
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    backoff = (backoff * 2).min(self.max_backoff);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Delete the rows matching `cond` (a predicate on the provenance columns) from every table of
    /// `shard` (and from the span manifest when `manifest`), waiting until the deletion is applied.
    /// Returns how many tables had such rows.
    fn delete_where(&self, shard: usize, cond: &str, manifest: bool) -> Result<u64, SinkError> {
        let c = self.shards[shard].clone();
        let layout = self.layout.clone();
        let cond = cond.to_owned();
        let metrics = self.metrics.clone();
        self.rt.block_on(async move {
            let mut tables = 0;
            let mut names: Vec<String> = ALL_TABLES.iter().map(|t| Layout::local_name(t)).collect();
            if manifest {
                names.push(SPANS_TABLE.to_owned());
            }
            for name in names {
                let local = layout.qualified(&name);
                let n: u64 = c.query(&format!("SELECT count() FROM {local} WHERE {cond}")).fetch_one().await.map_err(SinkError::clickhouse)?;
                if n == 0 {
                    continue;
                }
                exec(&c, &format!("ALTER TABLE {local} DELETE WHERE {cond}")).await?;
                wait_for_mutations(&c, &layout.database, &name, metrics.as_deref()).await?;
                tables += 1;
            }
            Ok(tables)
        })
    }

    /// Write rows of any contract tables (columns in each table's order) as one span, with the same
    /// guarantees as [`RollupSink::write`]: idempotent per span, retried until accepted.
    pub fn write_tables(&mut self, tables: &[(&'static TableDef, RecordBatch)], span: &OffsetSpan) -> Result<(), SinkError> {
        let mut encoded = Vec::new();
        let mut rows = 0;
        for (table, rb) in tables {
            rows += rb.num_rows() as u64;
            encoded.push((*table, Bytes::from(encode_row_binary(table, rb, span)?)));
        }
        if encoded.is_empty() {
            return Ok(());
        }
        let shard = self.shard_for(&span.source, span.partition);
        self.with_retries("insert", |s| {
            // A span in the manifest was written before (a replay of the same input, or an attempt
            // that failed half-way): its rows are removed before they are inserted again.
            if s.span_known(shard, span)? {
                s.stats.spans_deleted += s.delete_where(shard, &span_condition(span), false)?;
            } else {
                s.record_span(shard, span)?;
            }
            s.insert_all(shard, &encoded)
        })?;
        self.stats.inserts += encoded.len() as u64;
        self.stats.rows += rows;
        Ok(())
    }

    /// Whether `span` is in `shard`'s manifest (written before, completely or not).
    fn span_known(&self, shard: usize, span: &OffsetSpan) -> Result<bool, SinkError> {
        let sql = format!("SELECT count() FROM {} WHERE {}", self.layout.qualified(SPANS_TABLE), span_condition(span));
        let n: u64 = self.rt.block_on(self.shards[shard].query(&sql).fetch_one()).map_err(SinkError::clickhouse)?;
        Ok(n > 0)
    }

    fn record_span(&self, shard: usize, span: &OffsetSpan) -> Result<(), SinkError> {
        let sql = format!(
            "INSERT INTO {} (_source, _partition, _from, _to, written_at) VALUES ({}, {}, {}, {}, now())",
            self.layout.qualified(SPANS_TABLE),
            string_literal(&span.source),
            span.partition,
            span.from,
            span.to
        );
        self.rt.block_on(exec(&self.shards[shard], &sql))
    }

    fn insert_all(&self, shard: usize, encoded: &[(&'static TableDef, Bytes)]) -> Result<(), SinkError> {
        let c = self.shards[shard].clone();
        let layout = &self.layout;
        self.rt.block_on(async move {
            for (table, data) in encoded {
                let cols: Vec<String> = Layout::expected_local_columns(table).into_iter().map(|(n, _)| format!("`{n}`")).collect();
                let sql = format!("INSERT INTO {} ({}) FORMAT RowBinary", layout.qualified(&Layout::local_name(table)), cols.join(", "));
                let mut insert = c.insert_formatted_with(sql);
                insert.send(data.clone()).await.map_err(SinkError::clickhouse)?;
                insert.end().await.map_err(SinkError::clickhouse)?;
            }
            Ok(())
        })
    }
}

/// Predicate on the provenance columns: exactly this span.
fn span_condition(span: &OffsetSpan) -> String {
    format!("_source = {} AND _partition = {} AND _from = {} AND _to = {}", string_literal(&span.source), span.partition, span.from, span.to)
}

/// Predicate on the provenance columns: [`OffsetSpan::written_after`] as SQL.
fn written_after_condition(source: &str, partition: i32, position: u64, keep_empty: bool) -> String {
    let source = OffsetSpan::sanitize_source(source);
    let empty = if keep_empty { "0" } else { "1" };
    format!(
        "_source = {} AND _partition = {partition} AND (_from > {position} OR (_from = {position} AND (_to > {position} OR {empty})))",
        string_literal(&source)
    )
}

impl RollupSink for ClickHouseSink {
    fn write(&mut self, batch: &SinkBatch, span: &OffsetSpan) -> Result<(), SinkError> {
        self.write_tables(&batches::sink_batches(batch)?, span)
    }

    fn discard_after(&mut self, source: &str, partition: i32, position: u64, keep_empty: bool) -> Result<u64, SinkError> {
        let cond = written_after_condition(source, partition, position, keep_empty);
        let mut removed = 0;
        for shard in 0..self.shards.len() {
            removed += self.with_retries("discarding uncommitted spans", |s| s.delete_where(shard, &cond, true))?;
        }
        self.stats.spans_deleted += removed;
        Ok(removed)
    }
}

async fn exec(c: &Client, sql: &str) -> Result<(), SinkError> {
    c.query(sql).execute().await.map_err(SinkError::clickhouse)
}

/// Wait until the mutations of `table` are done, beating `metrics` (waiting on ClickHouse, the
/// consumer loop is not stalled).
async fn wait_for_mutations(c: &Client, database: &str, table: &str, metrics: Option<&crate::metrics::AggregateMetrics>) -> Result<(), SinkError> {
    let sql = format!(
        "SELECT count() FROM system.mutations WHERE database = {} AND table = {} AND is_done = 0",
        string_literal(database),
        string_literal(table)
    );
    let mut pause = Duration::from_millis(20);
    loop {
        let pending: u64 = c.query(&sql).fetch_one().await.map_err(SinkError::clickhouse)?;
        if pending == 0 {
            return Ok(());
        }
        if let Some(m) = metrics {
            m.beat();
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// Create or upgrade the schema on one server; returns how many migrations ran. Fails when the
/// server's schema is newer than this build or a table's columns differ from what it writes.
pub async fn migrate(c: &Client, layout: &Layout) -> Result<u32, SinkError> {
    for st in layout.migrations_table_ddl() {
        exec(c, &st).await?;
    }
    let current: u32 = c
        .query(&format!("SELECT toUInt32(max(version)) FROM {}", layout.qualified(MIGRATIONS_TABLE)))
        .fetch_one()
        .await
        .map_err(SinkError::clickhouse)?;
    let latest = layout.latest_version();
    if current > latest {
        return Err(SinkError::Schema(format!(
            "database `{}` is at schema version {current}, newer than this edgelens build supports ({latest}); upgrade edgelens",
            layout.database
        )));
    }
    let mut applied = 0;
    for m in layout.migrations().into_iter().filter(|m| m.version > current) {
        for st in &m.statements {
            match exec(c, st).await {
                // Re-running a migration that added this column before it was recorded.
                Err(SinkError::ClickHouse { message, .. }) if st.contains(" ADD COLUMN ") && message.contains("already exists") => {}
                r => r?,
            }
        }
        exec(
            c,
            &format!("INSERT INTO {} (version, name, applied_at) VALUES ({}, {}, now())", layout.qualified(MIGRATIONS_TABLE), m.version, string_literal(m.name)),
        )
        .await?;
        applied += 1;
    }
    verify_columns(c, layout).await?;
    Ok(applied)
}

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct ColumnRow {
    name: String,
    r#type: String,
}

async fn verify_columns(c: &Client, layout: &Layout) -> Result<(), SinkError> {
    for t in ALL_TABLES {
        let local = Layout::local_name(t);
        let found: Vec<ColumnRow> = c
            .query(&format!(
                "SELECT name, type FROM system.columns WHERE database = {} AND table = {}",
                string_literal(&layout.database),
                string_literal(&local)
            ))
            .fetch_all()
            .await
            .map_err(SinkError::clickhouse)?;
        let found: Vec<(String, String)> = found.into_iter().map(|r| (r.name, r.r#type)).collect();
        let want = Layout::expected_local_columns(t);
        if found != want {
            return Err(SinkError::Schema(format!(
                "table `{}`.`{local}` does not have the columns this build writes: expected {want:?}, found {found:?}",
                layout.database
            )));
        }
    }
    Ok(())
}

/// One column of a batch, downcast once.
enum Col<'a> {
    Ts(&'a TimestampMicrosecondArray),
    Str(&'a StringArray),
    Bin(&'a BinaryArray),
    U16(&'a UInt16Array),
    U32(&'a UInt32Array),
    U64(&'a UInt64Array),
    F64(&'a Float64Array),
}

fn downcast<'a, T: 'static>(table: &TableDef, name: &str, a: &'a dyn Array) -> Result<&'a T, SinkError> {
    a.as_any().downcast_ref::<T>().ok_or_else(|| SinkError::Encode(format!("{}.{name}: unexpected Arrow type {}", table.name, a.data_type())))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Encode `batch` (columns in `table`'s order) as ClickHouse RowBinary rows of `T_local`: the
/// contract columns, then the span's provenance. `DateTime` is seconds since the epoch (u32).
pub fn encode_row_binary(table: &TableDef, batch: &RecordBatch, span: &OffsetSpan) -> Result<Vec<u8>, SinkError> {
    if batch.num_columns() != table.columns.len() {
        return Err(SinkError::Encode(format!("{}: batch has {} columns, table {}", table.name, batch.num_columns(), table.columns.len())));
    }
    let mut cols = Vec::with_capacity(table.columns.len());
    for (def, a) in table.columns.iter().zip(batch.columns()) {
        let a = a.as_ref();
        cols.push(match def.ty {
            ColumnType::Timestamp => Col::Ts(downcast(table, def.name, a)?),
            ColumnType::String | ColumnType::Json => Col::Str(downcast(table, def.name, a)?),
            ColumnType::Binary => Col::Bin(downcast(table, def.name, a)?),
            ColumnType::UInt16 => Col::U16(downcast(table, def.name, a)?),
            ColumnType::UInt32 => Col::U32(downcast(table, def.name, a)?),
            ColumnType::UInt64 => Col::U64(downcast(table, def.name, a)?),
            ColumnType::Float64 => Col::F64(downcast(table, def.name, a)?),
        });
    }
    let mut tail = Vec::new();
    put_bytes(&mut tail, span.source.as_bytes());
    tail.extend_from_slice(&span.partition.to_le_bytes());
    tail.extend_from_slice(&span.from.to_le_bytes());
    tail.extend_from_slice(&span.to.to_le_bytes());

    let mut out = Vec::with_capacity(batch.num_rows() * (64 + tail.len()));
    for row in 0..batch.num_rows() {
        for (def, col) in table.columns.iter().zip(&cols) {
            let null = match col {
                Col::Ts(a) => a.is_null(row),
                Col::Str(a) => a.is_null(row),
                Col::Bin(a) => a.is_null(row),
                Col::U16(a) => a.is_null(row),
                Col::U32(a) => a.is_null(row),
                Col::U64(a) => a.is_null(row),
                Col::F64(a) => a.is_null(row),
            };
            if def.nullable {
                out.push(u8::from(null));
                if null {
                    continue;
                }
            } else if null {
                return Err(SinkError::Encode(format!("{}.{}: null in a non-nullable column", table.name, def.name)));
            }
            match col {
                Col::Ts(a) => {
                    let secs = a.value(row).div_euclid(1_000_000);
                    let secs = u32::try_from(secs).map_err(|_| SinkError::Encode(format!("{}.{}: {secs} s is outside DateTime", table.name, def.name)))?;
                    out.extend_from_slice(&secs.to_le_bytes());
                }
                Col::Str(a) => put_bytes(&mut out, a.value(row).as_bytes()),
                Col::Bin(a) => put_bytes(&mut out, a.value(row)),
                Col::U16(a) => out.extend_from_slice(&a.value(row).to_le_bytes()),
                Col::U32(a) => out.extend_from_slice(&a.value(row).to_le_bytes()),
                Col::U64(a) => out.extend_from_slice(&a.value(row).to_le_bytes()),
                Col::F64(a) => out.extend_from_slice(&a.value(row).to_le_bytes()),
            }
        }
        out.extend_from_slice(&tail);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc as StdArc;

    use arrow::array::ArrayRef;
    use edgelens_schemas::tables::{SITES, TRAFFIC_1M};

    #[test]
    fn row_binary_layout() {
        let span = OffsetSpan::new("g.t", 2, 10, 20);
        let cols: Vec<ArrayRef> = vec![
            StdArc::new(TimestampMicrosecondArray::from(vec![1_000_000_500i64]).with_timezone("UTC")),
            StdArc::new(StringArray::from(vec!["s"])),
            StdArc::new(StringArray::from(vec!["DE"])),
            StdArc::new(StringArray::from(vec!["FRA"])),
            StdArc::new(StringArray::from(vec!["2xx"])),
            StdArc::new(StringArray::from(vec!["hit"])),
            StdArc::new(UInt64Array::from(vec![3u64])),
            StdArc::new(UInt64Array::from(vec![300u64])),
        ];
        let rb = RecordBatch::try_new(TRAFFIC_1M.arrow_schema(), cols).unwrap();
        let got = encode_row_binary(&TRAFFIC_1M, &rb, &span).unwrap();
        let mut want = 1000u32.to_le_bytes().to_vec();
        for s in ["s", "DE", "FRA", "2xx", "hit"] {
            want.push(s.len() as u8);
            want.extend_from_slice(s.as_bytes());
        }
        want.extend_from_slice(&3u64.to_le_bytes());
        want.extend_from_slice(&300u64.to_le_bytes());
        want.push(3);
        want.extend_from_slice(b"g_t");
        want.extend_from_slice(&2i32.to_le_bytes());
        want.extend_from_slice(&10u64.to_le_bytes());
        want.extend_from_slice(&20u64.to_le_bytes());
        assert_eq!(got, want);
    }

    #[test]
    fn nullable_columns_get_a_null_marker() {
        let span = OffsetSpan::new("r", 0, 0, 1);
        let cols: Vec<ArrayRef> = vec![
            StdArc::new(StringArray::from(vec!["a.example"])),
            StdArc::new(StringArray::from(vec!["t1"])),
            StdArc::new(TimestampMicrosecondArray::from(vec![0i64]).with_timezone("UTC")),
            StdArc::new(TimestampMicrosecondArray::from(vec![None::<i64>]).with_timezone("UTC")),
            StdArc::new(TimestampMicrosecondArray::from(vec![Some(2_000_000i64)]).with_timezone("UTC")),
        ];
        let rb = RecordBatch::try_new(SITES.arrow_schema(), cols).unwrap();
        let got = encode_row_binary(&SITES, &rb, &span).unwrap();
        // site, tenant, created_at (4 bytes), removed_at null marker, imported_at (not null, 2 s),
        // then provenance.
        assert_eq!(&got[..10], &[9, b'a', b'.', b'e', b'x', b'a', b'm', b'p', b'l', b'e']);
        assert_eq!(got[10..13], [2, b't', b'1']);
        assert_eq!(got[13..17], [0, 0, 0, 0]);
        assert_eq!(got[17], 1);
        assert_eq!(got[18..23], [0, 2, 0, 0, 0]);
        assert_eq!(got[23], 1, "source length");
    }

    #[test]
    fn varints() {
        let mut v = Vec::new();
        put_varint(&mut v, 300);
        assert_eq!(v, [0xac, 0x02]);
    }

    #[test]
    fn discard_condition_matches_written_after() {
        let c = written_after_condition("g.t", 3, 50, true);
        assert_eq!(c, "_source = 'g_t' AND _partition = 3 AND (_from > 50 OR (_from = 50 AND (_to > 50 OR 0)))");
        assert!(written_after_condition("g", 0, 5, false).ends_with("OR 1)))"));
    }

    /// Regression: failed attempts were counted only once the write that waited out an outage
    /// went through, so `sink_errors_total` stayed 0 for as long as ClickHouse was down.
    #[test]
    fn failed_attempts_count_while_the_outage_lasts() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let cfg = ClickHouseConfig { url: format!("http://127.0.0.1:{port}"), ..ClickHouseConfig::default() };
        let metrics = StdArc::new(crate::metrics::AggregateMetrics::default());
        let stop = StdArc::new(AtomicBool::new(false));
        let mut sink = ClickHouseSink {
            rt: tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(),
            shards: vec![client(&cfg.url, &cfg)],
            layout: cfg.layout(),
            max_backoff: Duration::from_millis(20),
            stop: StdArc::clone(&stop),
            give_up_at: None,
            servers: cfg.url.clone(),
            stats: ClickHouseStats::default(),
            metrics: Some(StdArc::clone(&metrics)),
        };
        let mut batch = SinkBatch::default();
        batch.dead_letters.push(edgelens_ingest::dead_letter::DeadLetter::new(0, "t", 0, &edgelens_schemas::InvalidReason::InvalidTimestamp, b"x"));
        let writer = std::thread::spawn(move || sink.write(&batch, &OffsetSpan::new("g.t", 0, 0, 1)));
        let counted = |name: &str| -> f64 {
            let text = metrics.render();
            let line = text.lines().find(|l| l.starts_with(&format!("{name}{{sink=\"clickhouse\"}}"))).unwrap_or_default().to_owned();
            line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0.0)
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while counted("edgelens_aggregate_sink_retries_total") < 3.0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!writer.is_finished(), "the write is still waiting for ClickHouse");
        assert!(counted("edgelens_aggregate_sink_retries_total") >= 3.0, "{}", metrics.render());
        assert!(counted("edgelens_aggregate_sink_errors_total") >= 3.0, "{}", metrics.render());
        stop.store(true, Ordering::Relaxed);
        assert!(writer.join().unwrap().is_err());
    }
}
