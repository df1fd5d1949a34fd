//! Sinks: where closed windows and dead letters go. Every sink implements [`RollupSink`]; a write is
//! tied to the [`OffsetSpan`] of input it covers and is idempotent for that span (writing the same
//! span again replaces, never adds), which is what makes replay after a crash exact. [`Sinks`] is
//! what the roles write to: the lake, and ClickHouse when configured.

pub mod alerts;
pub mod clickhouse;
pub mod memory;
pub mod parquet;

use edgelens_ingest::dead_letter::DeadLetter;

use crate::error::SinkError;
use crate::windows::ClosedWindows;
use crate::detect::DetectorOutput;

/// A `(from, to]` range of input offsets of one source partition (line numbers for files, Kafka
/// offsets for topics). File names and dedup keys are derived from it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OffsetSpan {
    /// Source name, e.g. `replay` or a topic name; only `[A-Za-z0-9_-]` (others replaced by `_`).
    pub source: String,
    pub partition: i32,
    pub from: u64,
    pub to: u64,
}

impl OffsetSpan {
    /// Whether [`RollupSink::discard_after`] removes this span.
    pub fn written_after(&self, position: u64, keep_empty: bool) -> bool {
        self.from > position || (self.from == position && (self.to > position || !keep_empty))
    }

    pub fn new(source: &str, partition: i32, from: u64, to: u64) -> Self {
        Self { source: Self::sanitize_source(source), partition, from, to }
    }

    /// A source name as spans use it: `[A-Za-z0-9_-]` only, others replaced by `_`.
    pub fn sanitize_source(source: &str) -> String {
        source.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
    }

    /// Stable identifier used in file names: `<source>-p<partition>-<from>-<to>`.
    pub fn id(&self) -> String {
        format!("{}-p{:04}-{:020}-{:020}", self.source, self.partition, self.from, self.to)
    }

    /// Parse a span id produced by [`Self::id`] for `source`/`partition`; `None` for other ids.
    pub fn parse_id(id: &str, source: &str, partition: i32) -> Option<Self> {
        let rest = id.strip_prefix(source)?.strip_prefix(&format!("-p{partition:04}-"))?;
        let (from, to) = rest.split_once('-')?;
        if from.len() != 20 || to.len() != 20 {
            return None;
        }
        Some(Self { source: source.to_owned(), partition, from: from.parse().ok()?, to: to.parse().ok()? })
    }
}

/// Everything one flush hands to the sinks.
#[derive(Debug, Default)]
pub struct SinkBatch {
    pub closed: ClosedWindows,
    pub dead_letters: Vec<DeadLetter>,
    /// Incident rows and per-second timeline rows from the attack detector.
    pub incidents: DetectorOutput,
}

impl SinkBatch {
    pub fn is_empty(&self) -> bool {
        self.closed.is_empty() && self.dead_letters.is_empty() && self.incidents.is_empty()
    }

    pub fn rows(&self) -> usize {
        self.closed.len() + self.dead_letters.len() + self.incidents.len()
    }

    /// Rows per table, in the order of [`crate::metrics::WRITTEN_TABLES`].
    pub fn rows_by_table(&self) -> [usize; 6] {
        [
            self.closed.rates.len(),
            self.closed.traffic.len(),
            self.closed.asn.len(),
            self.dead_letters.len(),
            self.incidents.incidents.len(),
            self.incidents.timeline.len(),
        ]
    }
}

/// A destination of rollups. `write` returns only once the rows are durable.
pub trait RollupSink {
    fn write(&mut self, batch: &SinkBatch, span: &OffsetSpan) -> Result<(), SinkError>;

    /// Remove the writes of `source`/`partition` made after the checkpoint at `position` by a
    /// process that then died: every span starting after `position`, and those starting at it —
    /// except the empty-input span `(position, position]` when `keep_empty` (written *before* that
    /// checkpoint, by an idle close). Returns how many writes (files, for the lake) were removed.
    fn discard_after(&mut self, source: &str, partition: i32, position: u64, keep_empty: bool) -> Result<u64, SinkError>;

    /// The replays recorded in this sink (see [`ReplayRun`]); none for a sink that keeps no record.
    fn replay_runs(&self) -> Result<Vec<ReplayRun>, SinkError> {
        Ok(Vec::new())
    }

    /// Record a replay before it writes anything, replacing a record of the same source.
    fn record_replay_run(&mut self, _run: &ReplayRun) -> Result<(), SinkError> {
        Ok(())
    }

    /// Drop the record of a replay whose writes were removed.
    fn forget_replay_run(&mut self, _source: &str) -> Result<(), SinkError> {
        Ok(())
    }
}

/// A replay's input files and the source its writes carry, recorded where it writes before it
/// writes anything: a later replay including every file of it replaces its writes, one including
/// some of them is refused (it would count those twice).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRun {
    pub source: String,
    pub files: Vec<ReplayFile>,
}

/// One input of a replay: its name when replayed, and its identity (XXH64 and length of its
/// bytes: the same for a copy under another name or path).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayFile {
    pub name: String,
    pub identity: String,
}

/// The sinks of one aggregator or replay: the Parquet lake always, ClickHouse when configured.
/// Every write and discard goes to both; both are idempotent per span, so a crash between the two
/// is repaired by the successor's discard and re-write. Clones share the ClickHouse connection.
#[derive(Debug, Clone)]
pub struct Sinks {
    pub lake: parquet::ParquetLake,
    pub clickhouse: Option<std::sync::Arc<std::sync::Mutex<clickhouse::ClickHouseSink>>>,
    /// The `incidents` topic, published to once the lake (and ClickHouse) accepted a flush.
    pub alerts: Option<std::sync::Arc<std::sync::Mutex<alerts::IncidentTopic<edgelens_ingest::kafka::KafkaLog>>>>,
    /// Where flushes, rows, errors and retries are counted (the aggregator role's `/metrics`;
    /// [`Sinks::set_metrics`]).
    metrics: Option<std::sync::Arc<crate::metrics::AggregateMetrics>>,
}

impl Sinks {
    /// The lake at `data_dir`, plus ClickHouse (schema migrated) when `ch` is enabled. `stop` ends
    /// the retries of an unreachable ClickHouse.
    pub fn open(
        data_dir: &std::path::Path,
        ch: &edgelens_schemas::clickhouse::ClickHouseConfig,
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> Result<Self, SinkError> {
        Self::open_within(data_dir, ch, stop, None)
    }

    /// [`Sinks::open`], giving up on ClickHouse after `patience` when given (one-shot commands;
    /// see [`clickhouse::ClickHouseSink::connect_within`]).
    pub fn open_within(
        data_dir: &std::path::Path,
        ch: &edgelens_schemas::clickhouse::ClickHouseConfig,
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
        patience: Option<std::time::Duration>,
    ) -> Result<Self, SinkError> {
        let lake = parquet::ParquetLake::open(data_dir)?;
        let clickhouse = if ch.enabled() {
            Some(std::sync::Arc::new(std::sync::Mutex::new(clickhouse::ClickHouseSink::connect_within(ch, stop, patience)?)))
        } else {
            None
        };
        Ok(Sinks { lake, clickhouse, alerts: None, metrics: None })
    }

    /// Count flushes, rows, errors and retries in `metrics`, ClickHouse's failed attempts as
    /// they happen.
    pub fn set_metrics(&mut self, metrics: std::sync::Arc<crate::metrics::AggregateMetrics>) {
        if let Some(ch) = &self.clickhouse {
            ch.lock().unwrap_or_else(std::sync::PoisonError::into_inner).metrics = Some(std::sync::Arc::clone(&metrics));
        }
        self.metrics = Some(metrics);
    }

    /// Counters of the ClickHouse sink, if there is one.
    pub fn clickhouse_stats(&self) -> Option<clickhouse::ClickHouseStats> {
        self.clickhouse.as_ref().map(|c| c.lock().unwrap_or_else(std::sync::PoisonError::into_inner).stats)
    }
}

impl RollupSink for Sinks {
    fn write(&mut self, batch: &SinkBatch, span: &OffsetSpan) -> Result<(), SinkError> {
        use crate::metrics::SinkKind;
        let started = std::time::Instant::now();
        let metrics = self.metrics.as_deref();
        let failed = |sink: SinkKind| {
            move |e: SinkError| {
                if let Some(m) = metrics {
                    m.sink_failures(sink, 1, 0);
                }
                e
            }
        };
        self.lake.write(batch, span).map_err(failed(SinkKind::Lake))?;
        if let Some(m) = metrics {
            m.rows_written(SinkKind::Lake, batch);
        }
        if let Some(ch) = &self.clickhouse {
            let mut ch = ch.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let res = ch.write(batch, span);
            if let Some(m) = metrics {
                // Retried attempts were counted as they failed; a final failure is one more.
                m.sink_failures(SinkKind::ClickHouse, u64::from(res.is_err()), 0);
                if res.is_ok() {
                    m.rows_written(SinkKind::ClickHouse, batch);
                }
            }
            res?;
        }
        if let Some(a) = self.alerts.as_ref().filter(|_| !batch.incidents.incidents.is_empty()) {
            a.lock().unwrap_or_else(std::sync::PoisonError::into_inner).publish(&batch.incidents.incidents).map_err(failed(SinkKind::IncidentsTopic))?;
            if let Some(m) = metrics {
                m.rows_written(SinkKind::IncidentsTopic, batch);
            }
        }
        if let Some(m) = metrics {
            m.observe_flush(started.elapsed());
        }
        Ok(())
    }

    fn discard_after(&mut self, source: &str, partition: i32, position: u64, keep_empty: bool) -> Result<u64, SinkError> {
        use crate::metrics::SinkKind;
        let metrics = self.metrics.as_deref();
        let mut removed = self.lake.discard_after(source, partition, position, keep_empty).inspect_err(|_| {
            if let Some(m) = metrics {
                m.sink_failures(SinkKind::Lake, 1, 0);
            }
        })?;
        if let Some(ch) = &self.clickhouse {
            let mut ch = ch.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let res = ch.discard_after(source, partition, position, keep_empty);
            if let (Some(m), true) = (metrics, res.is_err()) {
                m.sink_failures(SinkKind::ClickHouse, 1, 0);
            }
            removed += res?;
        }
        Ok(removed)
    }

    fn replay_runs(&self) -> Result<Vec<ReplayRun>, SinkError> {
        self.lake.replay_runs()
    }

    fn record_replay_run(&mut self, run: &ReplayRun) -> Result<(), SinkError> {
        self.lake.record_replay_run(run)
    }

    fn forget_replay_run(&mut self, source: &str) -> Result<(), SinkError> {
        self.lake.forget_replay_run(source)
    }
}

/// One sink shared by several pipelines (the partitions of one aggregator).
impl<S: RollupSink> RollupSink for std::sync::Arc<std::sync::Mutex<S>> {
    fn write(&mut self, batch: &SinkBatch, span: &OffsetSpan) -> Result<(), SinkError> {
        self.lock().unwrap_or_else(std::sync::PoisonError::into_inner).write(batch, span)
    }

    fn discard_after(&mut self, source: &str, partition: i32, position: u64, keep_empty: bool) -> Result<u64, SinkError> {
        self.lock().unwrap_or_else(std::sync::PoisonError::into_inner).discard_after(source, partition, position, keep_empty)
    }

    fn replay_runs(&self) -> Result<Vec<ReplayRun>, SinkError> {
        self.lock().unwrap_or_else(std::sync::PoisonError::into_inner).replay_runs()
    }

    fn record_replay_run(&mut self, run: &ReplayRun) -> Result<(), SinkError> {
        self.lock().unwrap_or_else(std::sync::PoisonError::into_inner).record_replay_run(run)
    }

    fn forget_replay_run(&mut self, source: &str) -> Result<(), SinkError> {
        self.lock().unwrap_or_else(std::sync::PoisonError::into_inner).forget_replay_run(source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_ids_parse_back_only_for_their_source_and_partition() {
        let span = OffsetSpan::new("grp.edge-requests", 3, 0, 1234);
        assert_eq!(span.source, "grp_edge-requests");
        let id = span.id();
        assert_eq!(OffsetSpan::parse_id(&id, "grp_edge-requests", 3), Some(span));
        assert_eq!(OffsetSpan::parse_id(&id, "grp_edge-requests", 4), None);
        assert_eq!(OffsetSpan::parse_id(&id, "grp_edge", 3), None);
        assert_eq!(OffsetSpan::parse_id("grp_edge-requests-p0003-12-34", "grp_edge-requests", 3), None);
    }
}
