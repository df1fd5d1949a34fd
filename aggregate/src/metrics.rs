//! Prometheus metrics of the aggregator role, served on `[aggregate] metrics_listen`
//! (`GET /metrics` in text format 0.0.4, `GET /healthz`, `GET /readyz`), rendered by hand like the
//! ingest receiver's.
//!
//! `/healthz` is the liveness of the pipeline, not only of the listener: the consumer loop beats
//! on every round of its timers ([`AggregateMetrics::beat`]), and a loop that has not beaten for
//! `[aggregate] stall_timeout_secs` while it runs (a stuck disk, a thread blocked) makes it 503,
//! so that the orchestrator restarts the process and its partitions' leases pass to the others.
//!
//! Labels come from small fixed sets only: the stage a dead letter was rejected at, its reason code
//! ([`InvalidReason::CODES`] and `unknown`), the table, the sink, and topic/partition of the
//! partitions this process owns. Never a site. The hot path does not touch these counters: each
//! partition reports the deltas of its plain counters on the aggregator's timer (every 100 ms) and
//! when it is given up; the sinks count once per flush.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use edgelens_schemas::tables::{ASN_1M, DEAD_LETTERS, INCIDENTS, INCIDENT_TIMELINE, SITE_RATES_10S, TRAFFIC_1M};
use edgelens_schemas::InvalidReason;

use crate::consumer::AggregateStats;
use crate::partition::TopicKind;
use crate::pipeline::{EmbeddedPipeline, PipelineStats};
use crate::sink::{RollupSink, SinkBatch};

/// Where the events came from: the topic kinds, as the `topic` label of consumed messages.
const TOPIC_KINDS: [&str; 2] = ["events", "dead_letters"];

/// Where a dead letter was rejected: by this aggregator (events topic) or upstream by the ingest
/// role (read from the dead-letters topic).
const STAGES: [&str; 2] = ["aggregate", "ingest"];

/// Dead-letter reasons: every code, then `unknown` (an upstream reason this build does not know).
const N_REASONS: usize = InvalidReason::CODES.len() + 1;

/// The index of a topic kind in [`TOPIC_KINDS`].
fn kind_index(kind: TopicKind) -> usize {
    match kind {
        TopicKind::Events => 0,
        TopicKind::DeadLetters => 1,
    }
}

fn reason_label(i: usize) -> &'static str {
    InvalidReason::CODES.get(i).copied().unwrap_or("unknown")
}

/// The tables the sinks write, in the order of [`SinkBatch::rows_by_table`].
pub const WRITTEN_TABLES: [&str; 6] = [SITE_RATES_10S.name, TRAFFIC_1M.name, ASN_1M.name, DEAD_LETTERS.name, INCIDENTS.name, INCIDENT_TIMELINE.name];

/// A sink, as the `sink` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    Lake = 0,
    ClickHouse = 1,
    IncidentsTopic = 2,
}

const SINK_LABELS: [&str; 3] = ["lake", "clickhouse", "incidents_topic"];

/// Flush latency histogram bucket bounds, seconds (a ClickHouse write that waits for a mutation or
/// retries through an outage takes seconds to minutes).
const FLUSH_BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0];

/// Offsets of one partition owned by this process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// Next offset to read.
    pub position: u64,
    /// Offset committed to the group (`None`: never committed).
    pub committed: Option<u64>,
    /// The broker's high watermark as last seen by the consumer (`None`: not known yet).
    pub high_watermark: Option<u64>,
}

impl PartitionOffsets {
    /// Messages the group has not committed yet: high watermark − committed offset (what a
    /// restart would read again, as Kafka's consumer-group tools report it).
    pub fn lag(&self) -> Option<u64> {
        self.high_watermark.map(|hw| hw.saturating_sub(self.committed.unwrap_or(0)))
    }
}

/// Counter deltas of one partition since it last reported (see
/// [`crate::partition::PartitionAggregator::report`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct PartitionDelta {
    pub messages: u64,
    pub counted: u64,
    pub late: u64,
    pub unjudged: u64,
    pub duplicates: u64,
    pub dead_letters: [u64; N_REASONS],
    pub incidents_opened: u64,
    pub checkpoints: u64,
    /// Messages from before the position delivered again unasked, skipped as counted.
    pub redelivered: u64,
}

impl PartitionDelta {
    /// The difference of two snapshots of one pipeline's counters.
    pub fn between(now: &PipelineStats, before: &PipelineStats) -> Self {
        let mut d = PartitionDelta {
            messages: now.messages - before.messages,
            counted: now.counted - before.counted,
            late: now.late - before.late,
            unjudged: now.unjudged - before.unjudged,
            duplicates: now.duplicates - before.duplicates,
            ..PartitionDelta::default()
        };
        for (i, code) in InvalidReason::CODES.iter().enumerate() {
            d.dead_letters[i] = now.dead_letters.get(code) - before.dead_letters.get(code);
        }
        d.dead_letters[N_REASONS - 1] = now.unknown_dead_letters - before.unknown_dead_letters;
        d
    }
}

/// A pipeline's counters as last reported, so that each report adds only what was counted since.
#[derive(Debug, Clone, Default)]
pub struct Reported {
    stats: PipelineStats,
    incidents: u64,
}

impl Reported {
    /// `pipeline`'s counters now (what a restored pipeline brought along is not counted again).
    pub fn of<S: RollupSink>(pipeline: &EmbeddedPipeline<S>) -> Self {
        Reported { stats: pipeline.stats().clone(), incidents: pipeline.detector().map_or(0, |d| d.stats().incidents) }
    }

    /// What `pipeline` counted since the last call (or [`Self::of`]): its counters' and detector
    /// incidents' deltas (checkpoints and messages delivered again are the partition's to add).
    pub fn delta<S: RollupSink>(&mut self, pipeline: &EmbeddedPipeline<S>) -> PartitionDelta {
        let now = Self::of(pipeline);
        let mut d = PartitionDelta::between(&now.stats, &self.stats);
        d.incidents_opened = now.incidents.saturating_sub(self.incidents);
        *self = now;
        d
    }
}

#[derive(Debug, Default)]
struct Histogram {
    /// One slot per bucket (last: +Inf); cumulative counts are computed when rendering.
    buckets: [AtomicU64; FLUSH_BUCKETS.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let b = FLUSH_BUCKETS.iter().position(|&le| secs <= le).unwrap_or(FLUSH_BUCKETS.len());
        self.buckets[b].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

/// The counters of one aggregator process.
#[derive(Debug, Default)]
pub struct AggregateMetrics {
    /// By topic kind.
    messages: [AtomicU64; 2],
    /// By topic kind: fetched from the broker (librdkafka's count).
    fetched: [AtomicU64; 2],
    counted: AtomicU64,
    late: AtomicU64,
    unjudged: AtomicU64,
    duplicates: AtomicU64,
    /// By stage, then reason.
    dead_letters: [[AtomicU64; N_REASONS]; 2],
    incidents_opened: AtomicU64,
    checkpoints: AtomicU64,
    redelivered: AtomicU64,
    /// By sink (lake, ClickHouse), then table.
    rows: [[AtomicU64; WRITTEN_TABLES.len()]; 2],
    incidents_published: AtomicU64,
    flush: Histogram,
    /// By sink.
    sink_errors: [AtomicU64; 3],
    sink_retries: [AtomicU64; 3],
    /// Mirrors of the process's [`AggregateStats`].
    commits: AtomicU64,
    commit_failures: AtomicU64,
    acquired: AtomicU64,
    rebalances: AtomicU64,
    discarded_writes: AtomicU64,
    /// The partitions owned now, by (topic, partition).
    partitions: Mutex<BTreeMap<(String, i32), PartitionOffsets>>,
    ready: AtomicBool,
    /// [`monotonic_ms`] at the consumer loop's last beat (0: none yet).
    beat_ms: AtomicU64,
    /// How long the loop may go without a beat before `/healthz` is 503 (0: forever).
    stall_after_ms: AtomicU64,
}

/// Milliseconds on a monotonic clock (from the first call), never 0.
fn monotonic_ms() -> u64 {
    static ORIGIN: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);
    ORIGIN.elapsed().as_millis() as u64 + 1
}

impl AggregateMetrics {
    /// Add one partition's counter deltas.
    pub fn add_partition_delta(&self, kind: TopicKind, d: &PartitionDelta) {
        let k = kind_index(kind);
        let add = |c: &AtomicU64, n: u64| {
            if n > 0 {
                c.fetch_add(n, Ordering::Relaxed);
            }
        };
        add(&self.messages[k], d.messages);
        add(&self.counted, d.counted);
        add(&self.late, d.late);
        add(&self.unjudged, d.unjudged);
        add(&self.duplicates, d.duplicates);
        for (c, n) in self.dead_letters[k].iter().zip(d.dead_letters) {
            add(c, n);
        }
        add(&self.incidents_opened, d.incidents_opened);
        add(&self.checkpoints, d.checkpoints);
        add(&self.redelivered, d.redelivered);
    }

    /// A sink accepted `batch`: count its rows per table (lake and ClickHouse) or its incident
    /// rows (incidents topic).
    pub fn rows_written(&self, sink: SinkKind, batch: &SinkBatch) {
        match sink {
            SinkKind::IncidentsTopic => {
                self.incidents_published.fetch_add(batch.incidents.incidents.len() as u64, Ordering::Relaxed);
            }
            SinkKind::Lake | SinkKind::ClickHouse => {
                for (c, n) in self.rows[sink as usize].iter().zip(batch.rows_by_table()) {
                    if n > 0 {
                        c.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// A whole flush (every sink) took `elapsed`.
    pub fn observe_flush(&self, elapsed: Duration) {
        self.flush.observe(elapsed);
    }

    /// `errors` failed attempts at `sink`, `retries` of them tried again.
    pub fn sink_failures(&self, sink: SinkKind, errors: u64, retries: u64) {
        self.sink_errors[sink as usize].fetch_add(errors, Ordering::Relaxed);
        self.sink_retries[sink as usize].fetch_add(retries, Ordering::Relaxed);
    }

    /// Messages the consumer has fetched from the topic of `kind` so far (its client's count;
    /// more than were taken when fetched messages were dropped, e.g. at a reassignment).
    pub fn set_fetched(&self, kind: TopicKind, fetched: u64) {
        self.fetched[kind_index(kind)].store(fetched, Ordering::Relaxed);
    }

    /// The process's counters (monotonic over its life).
    pub fn set_stats(&self, s: &AggregateStats) {
        self.commits.store(s.commits, Ordering::Relaxed);
        self.commit_failures.store(s.commit_failures, Ordering::Relaxed);
        self.acquired.store(s.acquired, Ordering::Relaxed);
        self.rebalances.store(s.rebalances, Ordering::Relaxed);
        self.discarded_writes.store(s.discarded_writes, Ordering::Relaxed);
    }

    /// The partitions owned now, replacing the previous set; a partition still owned keeps its
    /// high watermark unless `owned` brings one.
    pub fn set_partitions(&self, mut owned: BTreeMap<(String, i32), PartitionOffsets>) {
        let mut parts = self.partitions.lock().unwrap_or_else(PoisonError::into_inner);
        for (key, p) in &mut owned {
            if p.high_watermark.is_none() {
                p.high_watermark = parts.get(key).and_then(|old| old.high_watermark);
            }
        }
        *parts = owned;
    }

    /// The partitions owned now.
    pub fn owned_partitions(&self) -> Vec<(String, i32)> {
        self.partitions.lock().unwrap_or_else(PoisonError::into_inner).keys().cloned().collect()
    }

    /// The broker's high watermark of an owned partition (ignored for one no longer owned).
    pub fn set_high_watermark(&self, topic: &str, partition: i32, high_watermark: u64) {
        if let Some(p) = self.partitions.lock().unwrap_or_else(PoisonError::into_inner).get_mut(&(topic.to_owned(), partition)) {
            p.high_watermark = Some(high_watermark);
        }
    }

    /// The offsets last published for a partition.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<PartitionOffsets> {
        self.partitions.lock().unwrap_or_else(PoisonError::into_inner).get(&(topic.to_owned(), partition)).copied()
    }

    /// Ready: the sinks are open and the consumer loop runs (see [`router`]).
    pub fn set_ready(&self, ready: bool) {
        if ready {
            self.beat();
        }
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// The consumer loop ran (a round of its timers), or a sink is knowingly waiting (retrying
    /// ClickHouse): it is not stalled.
    pub fn beat(&self) {
        self.beat_ms.store(monotonic_ms(), Ordering::Relaxed);
    }

    /// How long the consumer loop may go without [`beat`](Self::beat) before `/healthz` says it
    /// is stalled (`Duration::ZERO`: never).
    pub fn set_stall_timeout(&self, after: Duration) {
        self.stall_after_ms.store(u64::try_from(after.as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Time since the consumer loop's last beat, while it runs.
    fn since_beat(&self) -> Option<Duration> {
        let beat = self.beat_ms.load(Ordering::Relaxed);
        (self.is_ready() && beat > 0).then(|| Duration::from_millis(monotonic_ms().saturating_sub(beat)))
    }

    /// Time since the last beat when that is longer than the stall timeout: the loop is stuck.
    pub fn stalled_for(&self) -> Option<Duration> {
        let after = self.stall_after_ms.load(Ordering::Relaxed);
        self.since_beat().filter(|d| after > 0 && d.as_millis() as u64 > after)
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let c = |n: &AtomicU64| n.load(Ordering::Relaxed);
        let mut s = String::new();
        let head = |s: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };

        let name = "edgelens_aggregate_messages_consumed_total";
        head(&mut s, name, "counter", "Messages taken from the topics, by topic kind (events: Logpush events, one or more per message; dead_letters: lines rejected by the ingest role).");
        for (label, n) in TOPIC_KINDS.iter().zip(&self.messages) {
            let _ = writeln!(s, "{name}{{topic=\"{label}\"}} {}", c(n));
        }
        let name = "edgelens_aggregate_messages_fetched_total";
        head(&mut s, name, "counter", "Messages fetched from the topics by the consumer, by topic kind; above messages_consumed_total by what was fetched but dropped unread (a seek back, a partition given up with messages still queued).");
        for (label, n) in TOPIC_KINDS.iter().zip(&self.fetched) {
            let _ = writeln!(s, "{name}{{topic=\"{label}\"}} {}", c(n));
        }
        for (name, help, n) in [
            ("edgelens_aggregate_events_counted_total", "Events counted in the rollups (on time or late).", &self.counted),
            ("edgelens_aggregate_events_late_total", "Of the counted events, those counted late (as delta rows).", &self.late),
            ("edgelens_aggregate_events_unjudged_total", "Of the counted events, those the attack detector did not judge: more than the allowed disorder behind the time of their partition's latest events (a late batch, a producer that stalled). They count in an incident under way, but start none.", &self.unjudged),
            ("edgelens_aggregate_events_duplicate_total", "Redelivered events (same RayID) and lines of resent messages counted before, within the lateness horizon, not counted again.", &self.duplicates),
        ] {
            head(&mut s, name, "counter", help);
            let _ = writeln!(s, "{name} {}", c(n));
        }
        let name = "edgelens_aggregate_dead_letters_total";
        head(&mut s, name, "counter", "Lines not counted, written to dead_letters, by the stage that rejected them and reason.");
        for (stage, reasons) in STAGES.iter().zip(&self.dead_letters) {
            for (i, n) in reasons.iter().enumerate() {
                let _ = writeln!(s, "{name}{{stage=\"{stage}\",reason=\"{}\"}} {}", reason_label(i), c(n));
            }
        }
        let name = "edgelens_aggregate_rows_written_total";
        head(&mut s, name, "counter", "Rows a sink accepted, by sink and table.");
        for (sink, tables) in SINK_LABELS.iter().zip(&self.rows) {
            for (table, n) in WRITTEN_TABLES.iter().zip(tables) {
                let _ = writeln!(s, "{name}{{sink=\"{sink}\",table=\"{table}\"}} {}", c(n));
            }
        }
        for (name, help, n) in [
            ("edgelens_aggregate_incidents_published_total", "Incident rows published to the incidents topic.", &self.incidents_published),
            ("edgelens_aggregate_incidents_opened_total", "Incidents opened by the attack detector.", &self.incidents_opened),
            ("edgelens_aggregate_checkpoints_total", "Checkpoints of open state written.", &self.checkpoints),
            ("edgelens_aggregate_messages_redelivered_total", "Messages from before a partition's position the broker delivered again unasked, skipped as counted (known by their ids).", &self.redelivered),
            ("edgelens_aggregate_commits_total", "Offsets committed to the group after a checkpoint.", &self.commits),
            ("edgelens_aggregate_commit_failures_total", "Offset commits that failed (retried later; the checkpoint stays).", &self.commit_failures),
            ("edgelens_aggregate_partitions_acquired_total", "Partitions taken over or assigned.", &self.acquired),
            ("edgelens_aggregate_rebalances_total", "Changes of the set of partitions owned.", &self.rebalances),
            ("edgelens_aggregate_discarded_writes_total", "Sink writes of a previous owner discarded at resume (written after its last commit).", &self.discarded_writes),
        ] {
            head(&mut s, name, "counter", help);
            let _ = writeln!(s, "{name} {}", c(n));
        }

        let name = "edgelens_aggregate_flush_duration_seconds";
        head(&mut s, name, "histogram", "Time to write one flush of closed windows and dead letters to every sink (retries included); the count is the number of flushes.");
        let mut cumulative = 0;
        for (i, le) in FLUSH_BUCKETS.iter().enumerate() {
            cumulative += c(&self.flush.buckets[i]);
            let _ = writeln!(s, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        cumulative += c(&self.flush.buckets[FLUSH_BUCKETS.len()]);
        let _ = writeln!(s, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(s, "{name}_sum {}", c(&self.flush.sum_us) as f64 / 1e6);
        let _ = writeln!(s, "{name}_count {cumulative}");

        for (name, help, by_sink) in [
            ("edgelens_aggregate_sink_errors_total", "Failed sink write attempts, by sink (retried ones included).", &self.sink_errors),
            ("edgelens_aggregate_sink_retries_total", "Sink write attempts repeated after a retryable error, by sink.", &self.sink_retries),
        ] {
            head(&mut s, name, "counter", help);
            for (sink, n) in SINK_LABELS.iter().zip(by_sink) {
                let _ = writeln!(s, "{name}{{sink=\"{sink}\"}} {}", c(n));
            }
        }

        let parts = self.partitions.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let name = "edgelens_aggregate_partitions_owned";
        head(&mut s, name, "gauge", "Partitions this aggregator owns now.");
        let _ = writeln!(s, "{name} {}", parts.len());
        type Gauge = (&'static str, &'static str, fn(&PartitionOffsets) -> Option<u64>);
        let gauges: [Gauge; 4] = [
            ("edgelens_aggregate_position", "Next offset to read, per owned partition.", |p| Some(p.position)),
            ("edgelens_aggregate_committed_offset", "Offset committed to the group, per owned partition.", |p| p.committed),
            ("edgelens_aggregate_high_watermark", "The broker's high watermark as last seen, per owned partition.", |p| p.high_watermark),
            ("edgelens_aggregate_consumer_lag", "High watermark minus committed offset, per owned partition.", PartitionOffsets::lag),
        ];
        for (name, help, value) in gauges {
            head(&mut s, name, "gauge", help);
            for ((topic, partition), p) in &parts {
                if let Some(v) = value(p) {
                    let _ = writeln!(s, "{name}{{topic=\"{}\",partition=\"{partition}\"}} {v}", escape(topic));
                }
            }
        }
        let name = "edgelens_aggregate_ready";
        head(&mut s, name, "gauge", "1 while the consumer loop runs (as /readyz).");
        let _ = writeln!(s, "{name} {}", u8::from(self.is_ready()));
        let name = "edgelens_aggregate_loop_idle_seconds";
        head(&mut s, name, "gauge", "Seconds since the consumer loop last ran a round of its timers (about every 100 ms); above [aggregate] stall_timeout_secs, /healthz is 503. Absent while the loop does not run.");
        if let Some(d) = self.since_beat() {
            let _ = writeln!(s, "{name} {:.3}", d.as_secs_f64());
        }
        s
    }
}

/// A label value in the text format: backslash, quote and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The routes: `GET /metrics`, `GET /healthz` (200 while the process serves, 503 while the
/// consumer loop is stalled, see the module header), `GET /readyz` (200 once the sinks are open
/// and the consumer loop runs, 503 before and after).
pub fn router(metrics: Arc<AggregateMetrics>) -> axum::Router {
    use axum::http::{header, StatusCode};
    use axum::routing::get;
    let m = Arc::clone(&metrics);
    let h = Arc::clone(&metrics);
    let health = move || async move {
        match h.stalled_for() {
            Some(d) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("stalled: the consumer loop has not run for {} s ([aggregate] stall_timeout_secs)", d.as_secs()),
            ),
            None => (StatusCode::OK, "ok".to_owned()),
        }
    };
    axum::Router::new()
        .route("/metrics", get(move || async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], metrics.render()) }))
        .route("/healthz", get(health))
        .route("/readyz", get(move || async move { if m.is_ready() { (StatusCode::OK, "ready") } else { (StatusCode::SERVICE_UNAVAILABLE, "starting") } }))
}

/// Serve [`router`] on `addr` until the returned task is aborted. A listener that cannot be bound
/// (address in use, no permission) is logged as an error and the aggregator runs without it:
/// metrics must not stop the data.
pub async fn serve(addr: SocketAddr, metrics: Arc<AggregateMetrics>) -> Option<tokio::task::JoinHandle<()>> {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, error = %e, "metrics listener not started ([aggregate] metrics_listen); the aggregator runs without /metrics");
            return None;
        }
    };
    tracing::info!(addr = %listener.local_addr().unwrap_or(addr), "aggregator metrics listening");
    // A scrape endpoint: a few connections at once, none left idle.
    let limits = edgelens_schemas::net::ConnectionLimits {
        max_connections: 64,
        idle_timeout: std::time::Duration::from_secs(30),
        header_timeout: std::time::Duration::from_secs(10),
    };
    let listener = edgelens_schemas::net::LimitedListener::new(listener, limits);
    Some(tokio::spawn(async move {
        if let Err(e) = edgelens_schemas::net::serve(listener, router(metrics), std::future::pending()).await {
            tracing::error!(error = %e, "metrics listener failed");
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
        text.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no line {prefix}\n{text}"))
    }

    #[test]
    fn counters_histogram_and_partitions_render() {
        let m = AggregateMetrics::default();
        let mut now = PipelineStats { messages: 10, lines: 14, counted: 7, late: 2, unjudged: 3, duplicates: 1, ..PipelineStats::default() };
        now.dead_letters.add("malformed_json");
        now.dead_letters.add("too_late");
        let mut d = PartitionDelta::between(&now, &PipelineStats::default());
        d.incidents_opened = 1;
        d.checkpoints = 3;
        d.redelivered = 2;
        m.add_partition_delta(TopicKind::Events, &d);
        let mut upstream = PipelineStats { messages: 4, lines: 4, unknown_dead_letters: 1, ..PipelineStats::default() };
        for _ in 0..3 {
            upstream.dead_letters.add("invalid_status");
        }
        m.add_partition_delta(TopicKind::DeadLetters, &PartitionDelta::between(&upstream, &PipelineStats::default()));
        let mut batch = SinkBatch::default();
        batch.dead_letters.push(edgelens_ingest::dead_letter::DeadLetter::new(0, "t", 0, &InvalidReason::InvalidTimestamp, b"x"));
        m.rows_written(SinkKind::Lake, &batch);
        m.rows_written(SinkKind::ClickHouse, &batch);
        m.observe_flush(Duration::from_millis(3));
        m.observe_flush(Duration::from_secs(100));
        m.sink_failures(SinkKind::ClickHouse, 3, 2);
        m.set_stats(&AggregateStats { commits: 5, ..AggregateStats::default() });
        m.set_fetched(TopicKind::Events, 12);
        m.set_fetched(TopicKind::Events, 13);
        m.set_partitions(BTreeMap::from([
            (("edge-requests".to_owned(), 0), PartitionOffsets { position: 100, committed: Some(90), high_watermark: None }),
            (("edge-requests".to_owned(), 1), PartitionOffsets { position: 0, committed: None, high_watermark: None }),
        ]));
        m.set_high_watermark("edge-requests", 0, 130);
        m.set_high_watermark("edge-requests", 7, 1); // not owned: ignored
        m.set_partitions(BTreeMap::from([
            (("edge-requests".to_owned(), 0), PartitionOffsets { position: 120, committed: Some(100), high_watermark: None }),
            (("edge-requests".to_owned(), 1), PartitionOffsets { position: 0, committed: None, high_watermark: None }),
        ]));
        m.set_ready(true);

        let text = m.render();
        for want in [
            "edgelens_aggregate_messages_consumed_total{topic=\"events\"} 10",
            "edgelens_aggregate_messages_consumed_total{topic=\"dead_letters\"} 4",
            "edgelens_aggregate_messages_fetched_total{topic=\"events\"} 13",
            "edgelens_aggregate_messages_fetched_total{topic=\"dead_letters\"} 0",
            "edgelens_aggregate_events_counted_total 7",
            "edgelens_aggregate_events_late_total 2",
            "edgelens_aggregate_events_unjudged_total 3",
            "edgelens_aggregate_events_duplicate_total 1",
            "edgelens_aggregate_dead_letters_total{stage=\"aggregate\",reason=\"malformed_json\"} 1",
            "edgelens_aggregate_dead_letters_total{stage=\"aggregate\",reason=\"too_late\"} 1",
            "edgelens_aggregate_dead_letters_total{stage=\"ingest\",reason=\"invalid_status\"} 3",
            "edgelens_aggregate_dead_letters_total{stage=\"ingest\",reason=\"unknown\"} 1",
            "edgelens_aggregate_dead_letters_total{stage=\"ingest\",reason=\"too_late\"} 0",
            "edgelens_aggregate_rows_written_total{sink=\"lake\",table=\"dead_letters\"} 1",
            "edgelens_aggregate_rows_written_total{sink=\"clickhouse\",table=\"dead_letters\"} 1",
            "edgelens_aggregate_rows_written_total{sink=\"lake\",table=\"site_rates_10s\"} 0",
            "edgelens_aggregate_incidents_opened_total 1",
            "edgelens_aggregate_checkpoints_total 3",
            "edgelens_aggregate_messages_redelivered_total 2",
            "edgelens_aggregate_commits_total 5",
            "edgelens_aggregate_flush_duration_seconds_bucket{le=\"0.0025\"} 0",
            "edgelens_aggregate_flush_duration_seconds_bucket{le=\"0.005\"} 1",
            "edgelens_aggregate_flush_duration_seconds_bucket{le=\"60\"} 1",
            "edgelens_aggregate_flush_duration_seconds_bucket{le=\"+Inf\"} 2",
            "edgelens_aggregate_flush_duration_seconds_count 2",
            "edgelens_aggregate_sink_errors_total{sink=\"clickhouse\"} 3",
            "edgelens_aggregate_sink_retries_total{sink=\"clickhouse\"} 2",
            "edgelens_aggregate_sink_errors_total{sink=\"lake\"} 0",
            "edgelens_aggregate_partitions_owned 2",
            "edgelens_aggregate_position{topic=\"edge-requests\",partition=\"0\"} 120",
            "edgelens_aggregate_committed_offset{topic=\"edge-requests\",partition=\"0\"} 100",
            "edgelens_aggregate_consumer_lag{topic=\"edge-requests\",partition=\"0\"} 30",
            "edgelens_aggregate_ready 1",
        ] {
            assert!(text.lines().any(|l| l == want), "missing {want:?} in\n{text}");
        }
        // Unknown offsets are left out rather than reported as 0.
        assert!(!text.contains("edgelens_aggregate_consumer_lag{topic=\"edge-requests\",partition=\"1\"}"), "{text}");
        assert!(!text.contains("edgelens_aggregate_committed_offset{topic=\"edge-requests\",partition=\"1\"}"), "{text}");
        assert!(!text.contains("partition=\"7\""), "{text}");
        assert_eq!(m.owned_partitions(), vec![("edge-requests".to_owned(), 0), ("edge-requests".to_owned(), 1)]);
        assert_eq!(line(&text, "edgelens_aggregate_flush_duration_seconds_sum"), "edgelens_aggregate_flush_duration_seconds_sum 100.003");
        // Every sample belongs to a declared metric family, each declared once.
        let mut families = std::collections::HashSet::new();
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                assert!(families.insert(rest.split(' ').next().unwrap().to_owned()), "declared twice: {l}");
            } else if !l.starts_with('#') {
                let metric = l.split(['{', ' ']).next().unwrap();
                let family = ["_bucket", "_sum", "_count"].iter().find_map(|s| metric.strip_suffix(s)).filter(|f| families.contains(*f)).unwrap_or(metric);
                assert!(families.contains(family), "sample without TYPE: {l}");
            }
        }
    }

    #[test]
    fn lag_is_high_watermark_minus_committed() {
        let p = PartitionOffsets { position: 50, committed: Some(40), high_watermark: Some(45) };
        assert_eq!(p.lag(), Some(5));
        // tansu reports the base offset of the last record batch as the end: never below zero.
        assert_eq!(PartitionOffsets { committed: Some(50), ..p }.lag(), Some(0));
        assert_eq!(PartitionOffsets { committed: None, ..p }.lag(), Some(45));
        assert_eq!(PartitionOffsets { high_watermark: None, ..p }.lag(), None);
    }

    #[tokio::test]
    async fn probes_answer_and_readiness_follows_the_consumer() {
        use std::future::IntoFuture;
        let m = Arc::new(AggregateMetrics::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(axum::serve(listener, router(Arc::clone(&m))).into_future());
        let get = |path: &'static str| async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
            let mut resp = String::new();
            s.read_to_string(&mut resp).await.unwrap();
            resp
        };
        assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get("/readyz").await.starts_with("HTTP/1.1 503"));
        m.set_ready(true);
        assert!(get("/readyz").await.starts_with("HTTP/1.1 200"));
        let metrics = get("/metrics").await;
        assert!(metrics.starts_with("HTTP/1.1 200") && metrics.contains("text/plain; version=0.0.4") && metrics.contains("edgelens_aggregate_ready 1"), "{metrics}");
        assert!(metrics.contains("\nedgelens_aggregate_loop_idle_seconds 0."), "{metrics}");

        // Regression: a consumer loop stuck while the process served was alive to the probe, so
        // its partitions' leases stayed with it. Without a beat for longer than the timeout,
        // /healthz is 503 (readiness aside); a beat makes it 200 again.
        m.set_stall_timeout(Duration::from_millis(200));
        assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
        tokio::time::sleep(Duration::from_millis(400)).await;
        let health = get("/healthz").await;
        assert!(health.starts_with("HTTP/1.1 503") && health.contains("stalled: the consumer loop has not run for"), "{health}");
        m.beat();
        assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
        // Not judged while the loop does not run (starting, stopping), nor with the timeout 0.
        tokio::time::sleep(Duration::from_millis(400)).await;
        m.set_ready(false);
        assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(!get("/metrics").await.contains("\nedgelens_aggregate_loop_idle_seconds "));
        m.set_ready(true);
        // Regression: a timeout beyond u64 milliseconds wrapped around to a few hundred ms.
        m.set_stall_timeout(Duration::from_secs(18_446_744_073_709_552));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
        m.set_stall_timeout(Duration::ZERO);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
        server.abort();
    }
}
