//! The aggregator role: a Kafka consumer group member that runs one [`PartitionAggregator`] per
//! assigned partition of `edge-requests` (and `edge-dead-letters`) into the Parquet lake.
//!
//! One thread polls a `BaseConsumer`; rebalances run on that thread, inside `poll`, before the
//! assignment changes:
//! - **assign**: for every new partition, read the group's committed offset, resume the partition
//!   from the checkpoint at that offset (discarding writes made after it), and start reading there;
//! - **revoke** (another member joins or leaves, or shutdown): checkpoint every partition, commit
//!   the positions synchronously, then give the partitions up. The next owner resumes exactly there.
//!
//! Offsets are committed only after the checkpoint at that offset is durable (and with it every
//! row flushed before it). Any failure of a sink or of the checkpoint store stops the process with
//! an error instead of skipping input: a restart resumes from the last commit, exactly once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use serde::Deserialize;

use crate::checkpoint::{CheckpointError, CheckpointStore};
use crate::partition::{PartitionAggregator, PartitionConfig, PartitionError, TopicKind};
use crate::pipeline::PipelineConfig;
use crate::sink::parquet::ParquetLake;
use crate::windows::WindowConfig;
use crate::SinkError;

/// `[aggregate]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AggregateConfig {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// Consumer group: aggregators of one group share the partitions.
    pub group: String,
    /// Topic of Logpush events.
    pub events_topic: String,
    /// Topic of upstream dead letters (empty: not consumed).
    pub dead_letters_topic: String,
    /// The Parquet lake.
    pub data_dir: PathBuf,
    /// Checkpoints of open windows, shared by the group's aggregators (default `<data_dir>/_checkpoints`).
    pub checkpoint_dir: Option<PathBuf>,
    pub flush_interval_ms: u64,
    pub idle_timeout_ms: u64,
    pub checkpoint_interval_ms: u64,
    pub allowed_disorder_secs: u64,
    pub allowed_lateness_secs: u64,
    pub dedup_ray_ids: bool,
    pub max_line_bytes: usize,
    /// Flush when this many closed rows are pending, whatever the interval.
    pub flush_rows: usize,
    /// Group session timeout: how long a dead member keeps its partitions.
    pub session_timeout_ms: u64,
}

impl Default for AggregateConfig {
    fn default() -> Self {
        let windows = WindowConfig::default();
        let pipeline = PipelineConfig::default();
        Self {
            brokers: "127.0.0.1:9092".into(),
            group: "edgelens-aggregate".into(),
            events_topic: edgelens_ingest::log::EVENTS_TOPIC.into(),
            dead_letters_topic: edgelens_ingest::log::DEAD_LETTERS_TOPIC.into(),
            data_dir: PathBuf::from("edgelens-data"),
            checkpoint_dir: None,
            flush_interval_ms: 1000,
            idle_timeout_ms: 5000,
            checkpoint_interval_ms: 10_000,
            allowed_disorder_secs: (windows.allowed_disorder / edgelens_schemas::time::NANOS_PER_SEC) as u64,
            allowed_lateness_secs: (windows.allowed_lateness / edgelens_schemas::time::NANOS_PER_SEC) as u64,
            dedup_ray_ids: windows.dedup_ray_ids,
            max_line_bytes: pipeline.max_line,
            flush_rows: pipeline.flush_rows,
            session_timeout_ms: 10_000,
        }
    }
}

impl AggregateConfig {
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.checkpoint_dir.clone().unwrap_or_else(|| self.data_dir.join("_checkpoints"))
    }

    pub fn partition_config(&self) -> PartitionConfig {
        let ns = edgelens_schemas::time::NANOS_PER_SEC;
        PartitionConfig {
            pipeline: PipelineConfig {
                windows: WindowConfig {
                    allowed_disorder: self.allowed_disorder_secs as i64 * ns,
                    allowed_lateness: self.allowed_lateness_secs as i64 * ns,
                    dedup_ray_ids: self.dedup_ray_ids,
                },
                max_line: self.max_line_bytes,
                flush_rows: self.flush_rows,
                ..PipelineConfig::default()
            },
            flush_interval: Duration::from_millis(self.flush_interval_ms),
            idle_timeout: Duration::from_millis(self.idle_timeout_ms),
            checkpoint_interval: Duration::from_millis(self.checkpoint_interval_ms),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Partition(#[from] PartitionError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("committing {topic}/{partition} at {position}: {source}")]
    Commit { topic: String, partition: i32, position: u64, source: KafkaError },
    #[error("the aggregator thread panicked")]
    Panicked,
}

/// Counters of one aggregator process, for logs and tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct AggregateStats {
    pub messages: u64,
    pub checkpoints: u64,
    pub rebalances: u64,
    pub discarded_writes: u64,
}

type Key = (String, i32);

struct Partitions {
    group: String,
    events_topic: String,
    cfg: PartitionConfig,
    lake: ParquetLake,
    store: CheckpointStore,
    parts: HashMap<Key, PartitionAggregator<ParquetLake>>,
    /// The first error met inside a rebalance; the poll loop stops with it.
    fatal: Option<AggregateError>,
    /// Stopping after an error: take no partitions and commit nothing more.
    frozen: bool,
    stats: AggregateStats,
}

impl Partitions {
    fn kind(&self, topic: &str) -> TopicKind {
        if topic == self.events_topic { TopicKind::Events } else { TopicKind::DeadLetters }
    }

    /// Resume every partition of `tpl`; returns the assignment with the offsets to start at.
    fn assign(&mut self, consumer: &BaseConsumer<GroupContext>, tpl: &TopicPartitionList) -> Result<TopicPartitionList, AggregateError> {
        let committed = consumer.committed_offsets(tpl.clone(), Duration::from_secs(30))?;
        let mut start = TopicPartitionList::new();
        let now = Instant::now();
        for el in committed.elements() {
            let offset = match el.offset() {
                Offset::Offset(o) if o >= 0 => Some(o as u64),
                _ => None,
            };
            let part = PartitionAggregator::resume(
                &self.group,
                el.topic(),
                el.partition(),
                self.kind(el.topic()),
                offset,
                self.cfg.clone(),
                self.lake.clone(),
                self.store.clone(),
                now,
            )?;
            self.stats.discarded_writes += part.discarded_writes;
            tracing::info!(topic = el.topic(), partition = el.partition(), committed = ?offset, discarded_writes = part.discarded_writes, "partition assigned");
            start.add_partition_offset(el.topic(), el.partition(), offset.map_or(Offset::Beginning, |o| Offset::Offset(o as i64)))?;
            self.parts.insert((el.topic().to_owned(), el.partition()), part);
        }
        Ok(start)
    }

    /// Checkpoint and commit one partition.
    fn checkpoint(consumer: &BaseConsumer<GroupContext>, part: &mut PartitionAggregator<ParquetLake>, stats: &mut AggregateStats) -> Result<(), AggregateError> {
        let Some(position) = part.checkpoint(Instant::now())? else { return Ok(()) };
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(part.topic(), part.partition(), Offset::Offset(position as i64))?;
        consumer.commit(&tpl, CommitMode::Sync).map_err(|source| AggregateError::Commit {
            topic: part.topic().to_owned(),
            partition: part.partition(),
            position,
            source,
        })?;
        part.committed(position)?;
        stats.checkpoints += 1;
        tracing::debug!(topic = part.topic(), partition = part.partition(), position, "checkpoint committed");
        Ok(())
    }

    /// Checkpoint, commit and drop every partition.
    fn revoke_all(&mut self, consumer: &BaseConsumer<GroupContext>) -> Result<(), AggregateError> {
        let mut parts = std::mem::take(&mut self.parts);
        let mut first_err = None;
        for part in parts.values_mut() {
            if let Err(e) = Self::checkpoint(consumer, part, &mut self.stats) {
                tracing::error!(topic = part.topic(), partition = part.partition(), error = %e, "checkpoint on revoke failed; the next owner resumes from the previous commit");
                first_err.get_or_insert(e);
            }
        }
        tracing::info!(partitions = parts.len(), "partitions revoked");
        first_err.map_or(Ok(()), Err)
    }
}

struct GroupContext {
    state: Mutex<Partitions>,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let mut st = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        st.stats.rebalances += 1;
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                if st.fatal.is_some() || st.frozen {
                    return;
                }
                match st.assign(consumer, tpl) {
                    Ok(start) => {
                        if let Err(e) = consumer.assign(&start) {
                            st.fatal = Some(e.into());
                        }
                    }
                    // Not assigning: nothing is read that could not be resumed exactly.
                    Err(e) => st.fatal = Some(e),
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                if st.frozen {
                    st.parts.clear();
                } else if let Err(e) = st.revoke_all(consumer) {
                    st.fatal.get_or_insert(e);
                }
                if let Err(e) = consumer.unassign() {
                    st.fatal.get_or_insert(e.into());
                }
            }
            other => tracing::error!(error = ?other, "rebalance error"),
        }
    }
}

/// Run one aggregator until `stop` is set (then checkpoint, commit and leave the group) or an
/// error stops it. Blocking: run it on its own thread.
pub fn run_blocking(cfg: &AggregateConfig, stop: &AtomicBool) -> Result<AggregateStats, AggregateError> {
    let lake = ParquetLake::open(&cfg.data_dir)?;
    let store = CheckpointStore::open(cfg.checkpoint_dir())?;
    let ctx = GroupContext {
        state: Mutex::new(Partitions {
            group: cfg.group.clone(),
            events_topic: cfg.events_topic.clone(),
            cfg: cfg.partition_config(),
            lake,
            store,
            parts: HashMap::new(),
            fatal: None,
            frozen: false,
            stats: AggregateStats::default(),
        }),
    };
    let consumer: BaseConsumer<GroupContext> = ClientConfig::new()
        .set("bootstrap.servers", &cfg.brokers)
        .set("group.id", &cfg.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "range")
        .set("session.timeout.ms", cfg.session_timeout_ms.to_string())
        .set("heartbeat.interval.ms", (cfg.session_timeout_ms / 5).max(100).to_string())
        .set("fetch.wait.max.ms", "100")
        .create_with_context(ctx)?;
    let mut topics = vec![cfg.events_topic.as_str()];
    if !cfg.dead_letters_topic.is_empty() {
        topics.push(cfg.dead_letters_topic.as_str());
    }
    consumer.subscribe(&topics)?;
    tracing::info!(group = %cfg.group, topics = ?topics, brokers = %cfg.brokers, "aggregator started");

    let timer_every = Duration::from_millis(100);
    let mut last_timers = Instant::now();
    let result = loop {
        if stop.load(Ordering::Relaxed) {
            break Ok(());
        }
        match consumer.poll(timer_every) {
            Some(Ok(msg)) => {
                let mut st = consumer.context().state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                st.stats.messages += 1;
                let key = (msg.topic().to_owned(), msg.partition());
                if let Some(part) = st.parts.get_mut(&key) {
                    if let Err(e) = part.take(msg.offset(), msg.payload().unwrap_or_default(), Instant::now()) {
                        break Err(e.into());
                    }
                } else {
                    tracing::warn!(topic = msg.topic(), partition = msg.partition(), "message of a partition not assigned here; skipped");
                }
            }
            Some(Err(e)) => tracing::warn!(error = %e, "consumer error"),
            None => {}
        }
        let mut st = consumer.context().state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(e) = st.fatal.take() {
            break Err(e);
        }
        let now = Instant::now();
        if now.duration_since(last_timers) >= timer_every {
            last_timers = now;
            let st = &mut *st;
            let mut failed = None;
            for part in st.parts.values_mut() {
                let due = match part.on_timer(now) {
                    Ok(due) => due,
                    Err(e) => {
                        failed = Some(e.into());
                        break;
                    }
                };
                if due {
                    if let Err(e) = Partitions::checkpoint(&consumer, part, &mut st.stats) {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = failed {
                break Err(e);
            }
        }
    };
    let stats = {
        let st = consumer.context().state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        st.stats
    };
    match result {
        Ok(()) => {
            // Leaving the group revokes every partition: checkpoint and commit each.
            consumer.unsubscribe();
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let _ = consumer.poll(Duration::from_millis(100));
                let st = consumer.context().state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if st.parts.is_empty() || Instant::now() >= deadline {
                    break;
                }
            }
            let mut st = consumer.context().state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(e) = st.fatal.take() {
                return Err(e);
            }
            tracing::info!(messages = stats.messages, checkpoints = st.stats.checkpoints, "aggregator stopped");
            Ok(st.stats)
        }
        Err(e) => {
            // Leave without committing anything more: the next owner resumes from the last commit.
            let mut st = consumer.context().state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            st.parts.clear();
            st.frozen = true;
            drop(st);
            Err(e)
        }
    }
}

/// Run the aggregator role until `shutdown` resolves.
pub async fn run(cfg: AggregateConfig, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Result<AggregateStats, AggregateError> {
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let stop = Arc::clone(&stop);
        tokio::task::spawn_blocking(move || run_blocking(&cfg, &stop))
    };
    tokio::pin!(worker);
    tokio::select! {
        res = &mut worker => return res.map_err(|_| AggregateError::Panicked)?,
        () = shutdown => stop.store(true, Ordering::Relaxed),
    }
    worker.await.map_err(|_| AggregateError::Panicked)?
}
