//! The aggregator role: a member of a group of aggregators that runs one [`PartitionAggregator`]
//! per owned partition of `edge-requests` (and `edge-dead-letters`) into the Parquet lake. One
//! thread polls a `BaseConsumer` and runs the partitions' timers. Who owns which partition:
//!
//! - **leases** (default, [`run_leases`]): the aggregators divide the partitions with file leases
//!   in the shared checkpoint directory ([`crate::lease`]); the broker stores the group's committed
//!   offsets (manual assignment, changed incrementally: partitions kept are not fetched again). A
//!   partition is handed over with checkpoint → commit → unlock, or its lease dies with its owner.
//! - **group** ([`run_group`]): the broker's consumer-group rebalancing (eager `range`). Rebalances
//!   run on the polling thread, inside `poll`: on *revoke* every partition is checkpointed and its
//!   position committed synchronously before it is given up; on *assign* each partition resumes
//!   from the checkpoint at the group's committed offset.
//!
//! Either way a new owner reads the group's committed offset, resumes from the checkpoint taken
//! there (discarding writes made after it) and reads on from it. Offsets are committed only after
//! the checkpoint at that offset is durable (and with it every row flushed before it). A sink or
//! checkpoint failure stops the process with an error instead of skipping input: a restart resumes
//! from the last commit, exactly once.
//!
//! A partition's open windows are closed as idle only once librdkafka's statistics show its
//! consumer at the partition's end ([`EndReports`]), not on a quiet clock alone.
//!
//! [`run`] also serves the role's [`crate::metrics`] on `metrics_listen`; partitions report their
//! counts on the timer, never per message.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{CheckpointError, CheckpointStore};
use crate::lease::{fair_share, Lease, Membership};
use crate::metrics::{AggregateMetrics, PartitionOffsets};
use crate::partition::{EndReport, PartitionAggregator, PartitionConfig, PartitionError, Taken, TopicKind};
use crate::pipeline::{MessageName, PipelineConfig};
use crate::sink::Sinks;
use crate::sites::HostSites;
use edgelens_schemas::privacy::ClientIpPolicy;
use edgelens_schemas::settings;
use crate::windows::WindowConfig;
use edgelens_ingest::log::{MESSAGE_ID_HEADER, RESEND_HEADER};
use crate::SinkError;

/// How the aggregators of a group divide the partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AssignmentMode {
    /// Leases in the shared checkpoint directory ([`crate::lease`]): works with any broker.
    Leases,
    /// The broker's consumer-group rebalancing (eager `range`); needs a coordinator that revokes
    /// every member before assigning (Apache Kafka does; tansu 0.6 does not reassign a dead
    /// member's partitions).
    Group,
}

/// `[aggregate]` settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
    /// How far ahead of this process's clock an event may be; later ones are dead letters
    /// (`future_timestamp`). 0: no limit.
    pub max_future_secs: u64,
    pub dedup_ray_ids: bool,
    pub max_line_bytes: usize,
    /// Flush when this many closed rows are pending, whatever the interval.
    pub flush_rows: usize,
    /// Group session timeout: how long a dead member keeps its partitions.
    pub session_timeout_ms: u64,
    /// Member name, unique per replica (e.g. the pod name of a StatefulSet): the lease member file,
    /// or with `assignment = "group"` the static membership id (`group.instance.id`). Empty: pid
    /// and start time (leases), dynamic membership (group).
    pub instance_id: String,
    /// `leases` (default) or `group`, see [`AssignmentMode`].
    pub assignment: AssignmentMode,
    /// What of a client's IP address is stored: `keep`, `truncate` (/24, /48) or `hash` (keyed,
    /// with `client_ip_key`); see [`edgelens_schemas::privacy`]. Every writer of one lake must use
    /// the same setting (and key), or its sketches stop being comparable.
    pub client_ip: String,
    /// The secret of `client_ip = "hash"` (e.g. from `EDGELENS__AGGREGATE__CLIENT_IP_KEY`).
    pub client_ip_key: String,
    /// Detect attacks (tables `incidents`, `incident_timeline`).
    pub detect: bool,
    /// Topic every incident row is published to as JSON (empty: none); created if missing.
    pub incidents_topic: String,
    /// Address of the HTTP listener with `/metrics`, `/healthz` and `/readyz` ([`crate::metrics`]);
    /// `""` (or `"off"`) turns it off. One per process: aggregators sharing a host need one each.
    #[serde(deserialize_with = "optional_listen_addr")]
    pub metrics_listen: Option<SocketAddr>,
    /// `/healthz` answers 503 once the consumer loop has not run for this long while it should
    /// (a stuck disk or thread), so the liveness probe restarts the process and its partitions
    /// move to the others. A sink retrying ClickHouse, or waiting for its deletions, is not
    /// stuck; one ClickHouse request, a flush or a hand-over runs without a beat, so this must be
    /// longer than those (and than `[clickhouse] request_timeout_ms`). 0: never.
    pub stall_timeout_secs: u64,
    /// ClickHouse, written next to the lake when enabled: the config file's `[clickhouse]` section
    /// (shared with the query role), not a key of `[aggregate]`.
    #[serde(skip)]
    pub clickhouse: edgelens_schemas::clickhouse::ClickHouseConfig,
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
            max_future_secs: (windows.max_future / edgelens_schemas::time::NANOS_PER_SEC) as u64,
            dedup_ray_ids: windows.dedup_ray_ids,
            max_line_bytes: pipeline.max_line,
            flush_rows: pipeline.flush_rows,
            session_timeout_ms: 10_000,
            instance_id: String::new(),
            assignment: AssignmentMode::Leases,
            client_ip: "keep".into(),
            client_ip_key: String::new(),
            detect: true,
            incidents_topic: crate::sink::alerts::INCIDENTS_TOPIC.into(),
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], DEFAULT_METRICS_PORT))),
            stall_timeout_secs: 300,
            clickhouse: edgelens_schemas::clickhouse::ClickHouseConfig::default(),
        }
    }
}

/// Default port of `[aggregate] metrics_listen`.
pub const DEFAULT_METRICS_PORT: u16 = 9464;

/// `HOST:PORT`, or `""` / `"off"` for none.
fn optional_listen_addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    let text = text.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    edgelens_schemas::net::listen_addr::parse(text).map(Some).map_err(|e| serde::de::Error::custom(format!("{e}, or \"\" to turn the listener off")))
}

impl AggregateConfig {
    /// The topics read: the events topic and, if set, the dead-letters topic.
    pub fn topics(&self) -> Vec<&str> {
        let mut topics = vec![self.events_topic.as_str()];
        if !self.dead_letters_topic.is_empty() {
            topics.push(self.dead_letters_topic.as_str());
        }
        topics
    }

    /// What `topic` carries.
    pub fn kind_of(&self, topic: &str) -> TopicKind {
        if topic == self.events_topic { TopicKind::Events } else { TopicKind::DeadLetters }
    }

    /// Consumer settings both assignment modes share: the group's offsets, committed by hand only.
    fn consumer_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "100")
            .set("statistics.interval.ms", stats_interval_ms(self.idle_timeout_ms).to_string());
        c
    }

    /// The sinks of this aggregator: the lake, ClickHouse when configured, the incidents topic
    /// when detection is on and a topic is set.
    fn open_sinks(&self, stop: &Arc<AtomicBool>, metrics: &Arc<AggregateMetrics>) -> Result<Sinks, AggregateError> {
        let mut sinks = match Sinks::open(&self.data_dir, &self.clickhouse, Arc::clone(stop)) {
            Ok(sinks) => sinks,
            // Stopped while waiting for ClickHouse at start: a clean stop, nothing was read.
            Err(e) if e.is_retryable() && stop.load(Ordering::Relaxed) => return Err(AggregateError::StoppedAtStart),
            Err(e) => return Err(e.into()),
        };
        sinks.set_metrics(Arc::clone(metrics));
        if self.detect && !self.incidents_topic.is_empty() {
            // Brokers unreachable at start (an outage, a restart before the broker's): wait for
            // them, as the consumer does, instead of failing; a stop ends the wait.
            let mut warned = false;
            while let Err(e) = crate::sink::alerts::ensure_topic(&self.brokers, &self.incidents_topic) {
                if !e.is_retryable() {
                    return Err(e.into());
                }
                if !warned {
                    tracing::warn!(brokers = %self.brokers, error = %e, "brokers unreachable at start; retrying until they answer");
                    warned = true;
                }
                for _ in 0..20 {
                    if stop.load(Ordering::Relaxed) {
                        return Err(AggregateError::StoppedAtStart);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            let log = edgelens_ingest::kafka::KafkaLog::new(&edgelens_ingest::kafka::KafkaLogConfig {
                brokers: self.brokers.clone(),
                ack_timeout: Duration::from_secs(60),
                queue_max_messages: 100_000,
                max_message_bytes: edgelens_ingest::log::PACK_MAX_BYTES,
            })
            .map_err(|e| AggregateError::Config(format!("incidents topic producer: {e}")))?;
            let topic = crate::sink::alerts::IncidentTopic::new(log, self.incidents_topic.clone())?;
            sinks.alerts = Some(Arc::new(Mutex::new(topic)));
        }
        Ok(sinks)
    }

    pub fn checkpoint_dir(&self) -> PathBuf {
        self.checkpoint_dir.clone().unwrap_or_else(|| self.data_dir.join("_checkpoints"))
    }

    /// Settings that cannot work: empty brokers, group, events topic or directories, zero intervals, a bad
    /// client-IP policy or ClickHouse address. Checked before anything starts (`check-config` too).
    pub fn validate(&self) -> Result<(), AggregateError> {
        let dirs = [self.data_dir.to_string_lossy(), self.checkpoint_dir.as_deref().map_or_else(|| "-".into(), Path::to_string_lossy)];
        settings::all([
            settings::not_empty(
                "aggregate",
                &[("brokers", &self.brokers), ("group", &self.group), ("events_topic", &self.events_topic), ("data_dir", &dirs[0]), ("checkpoint_dir", &dirs[1])],
            ),
            if self.brokers.trim().is_empty() { Ok(()) } else { edgelens_ingest::kafka::check_brokers(&self.brokers).map_err(|e| format!("aggregate.brokers {e}")) },
            settings::at_least_one(
                "aggregate",
                &[
                    ("flush_interval_ms", self.flush_interval_ms),
                    ("idle_timeout_ms", self.idle_timeout_ms),
                    ("checkpoint_interval_ms", self.checkpoint_interval_ms),
                    ("max_line_bytes", self.max_line_bytes as u64),
                    ("flush_rows", self.flush_rows as u64),
                    ("session_timeout_ms", self.session_timeout_ms),
                ],
            ),
            ClientIpPolicy::from_config(&self.client_ip, &self.client_ip_key).map(drop),
            self.clickhouse.validate(),
            // One ClickHouse request may take request_timeout_ms without a beat.
            match self.stall_timeout_secs {
                s if s > 0 && self.clickhouse.enabled() && u128::from(s) * 1000 <= u128::from(self.clickhouse.request_timeout_ms) => Err(format!(
                    "aggregate.stall_timeout_secs ({s}) must be longer than clickhouse.request_timeout_ms ({} ms): a healthy aggregator waiting on one ClickHouse request would be reported stalled",
                    self.clickhouse.request_timeout_ms
                )),
                _ => Ok(()),
            },
        ])
        .map_err(AggregateError::Config)
    }

    /// The client-IP policy of `client_ip` / `client_ip_key`.
    pub fn client_ip_policy(&self) -> Result<ClientIpPolicy, AggregateError> {
        ClientIpPolicy::from_config(&self.client_ip, &self.client_ip_key).map_err(AggregateError::Config)
    }

    /// The partitions' settings; lines without `ZoneName` count under the registered site of
    /// their host among `sites`.
    pub fn partition_config(&self, sites: &HostSites) -> Result<PartitionConfig, AggregateError> {
        let ns = edgelens_schemas::time::NANOS_PER_SEC;
        Ok(PartitionConfig {
            pipeline: PipelineConfig {
                client_ip: self.client_ip_policy()?,
                windows: WindowConfig {
                    allowed_disorder: self.allowed_disorder_secs as i64 * ns,
                    allowed_lateness: self.allowed_lateness_secs as i64 * ns,
                    dedup_ray_ids: self.dedup_ray_ids,
                    max_future: i64::try_from(self.max_future_secs).unwrap_or(i64::MAX / ns).saturating_mul(ns),
                },
                max_line: self.max_line_bytes,
                flush_rows: self.flush_rows,
                detector: self.detect.then(crate::detect::DetectorConfig::default),
                sites: sites.clone(),
                ..PipelineConfig::default()
            },
            flush_interval: Duration::from_millis(self.flush_interval_ms),
            idle_timeout: Duration::from_millis(self.idle_timeout_ms),
            checkpoint_interval: Duration::from_millis(self.checkpoint_interval_ms),
        })
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
    #[error("the aggregator thread panicked")]
    Panicked,
    /// Told to stop while it was still starting (e.g. waiting for the brokers): nothing was read.
    #[error("stopped before it started")]
    StoppedAtStart,
    #[error("leases in {path}: {source}")]
    Lease { path: PathBuf, source: std::io::Error },
    #[error("invalid [aggregate] settings: {0}")]
    Config(String),
}

impl AggregateError {
    /// A write a sink could not take for now (unreachable server, full disk…), as opposed to one
    /// it never will.
    pub fn is_sink_unavailable(&self) -> bool {
        match self {
            Self::Sink(e) | Self::Partition(PartitionError::Sink { source: e, .. }) => e.is_retryable(),
            _ => false,
        }
    }
}

/// Counters of one aggregator process, for logs and tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct AggregateStats {
    pub messages: u64,
    pub checkpoints: u64,
    pub rebalances: u64,
    /// Partitions taken over (leases) or assigned (group).
    pub acquired: u64,
    pub discarded_writes: u64,
    /// Offsets committed after a checkpoint, and commits that failed (retried later).
    pub commits: u64,
    pub commit_failures: u64,
}

type Key = (String, i32);

struct Partitions {
    cfg: AggregateConfig,
    pcfg: PartitionConfig,
    lake: Sinks,
    store: CheckpointStore,
    parts: Parts,
    /// The first error met inside a rebalance; the poll loop stops with it.
    fatal: Option<AggregateError>,
    /// Stopping after an error: take no partitions and commit nothing more.
    frozen: bool,
    /// Checkpointed positions whose commit failed, to retry.
    uncommitted: HashMap<Key, u64>,
    stats: AggregateStats,
    metrics: Arc<AggregateMetrics>,
}

impl Partitions {
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
            let offset = resume_position(&self.store, &self.cfg, el.topic(), el.partition(), offset)?;
            let part = PartitionAggregator::resume(
                &self.cfg.group,
                el.topic(),
                el.partition(),
                self.cfg.kind_of(el.topic()),
                offset,
                self.pcfg.clone(),
                self.lake.clone(),
                self.store.clone(),
                now,
            )?;
            self.stats.acquired += 1;
            self.stats.discarded_writes += part.discarded_writes;
            tracing::info!(topic = el.topic(), partition = el.partition(), committed = ?offset, discarded_writes = part.discarded_writes, "partition assigned");
            start.add_partition_offset(el.topic(), el.partition(), offset.map_or(Offset::Beginning, |o| Offset::Offset(o as i64)))?;
            self.parts.insert((el.topic().to_owned(), el.partition()), part);
        }
        Ok(start)
    }

    /// Checkpoint, commit and drop every partition.
    fn revoke_all(&mut self, consumer: &BaseConsumer<GroupContext>) -> Result<(), AggregateError> {
        let parts = std::mem::take(&mut self.parts);
        let n = parts.len();
        let mut first_err = None;
        for (_, part) in parts {
            if let Err(e) = hand_over(consumer, part, &mut self.stats, &mut self.uncommitted, &self.metrics, "revoke") {
                first_err.get_or_insert(e);
            }
        }
        self.uncommitted.clear();
        tracing::info!(partitions = n, "partitions revoked");
        first_err.map_or(Ok(()), Err)
    }
}

/// Seek a partition back (see [`Taken::Rewind`]); a failed seek is retried by the next gap.
fn seek<C: ConsumerContext>(consumer: &BaseConsumer<C>, key: &Key, offset: u64) {
    if let Err(e) = consumer.seek(&key.0, key.1, Offset::Offset(offset as i64), Duration::from_secs(10)) {
        tracing::warn!(topic = %key.0, partition = key.1, offset, error = %e, "seek failed");
    }
}

fn commit<C: ConsumerContext>(consumer: &BaseConsumer<C>, topic: &str, partition: i32, position: u64) -> Result<(), KafkaError> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(position as i64))?;
    consumer.commit(&tpl, CommitMode::Sync)
}

struct GroupContext {
    state: Mutex<Partitions>,
    ends: EndReports,
}

impl ClientContext for GroupContext {
    fn stats_raw(&self, statistics: &[u8]) {
        self.ends.record(statistics);
    }
}

impl ConsumerContext for GroupContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let mut st = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        st.stats.rebalances += 1;
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                if st.fatal.is_some() || st.frozen {
                    return;
                }
                for el in tpl.elements() {
                    self.ends.forget(&(el.topic().to_owned(), el.partition()));
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
/// error stops it. Blocking: run it on its own thread. Counts into `metrics`, ready while the
/// consumer loop runs.
pub fn run_blocking(cfg: &AggregateConfig, stop: &Arc<AtomicBool>, metrics: &Arc<AggregateMetrics>) -> Result<AggregateStats, AggregateError> {
    cfg.validate()?;
    let watch_done = Arc::new(AtomicBool::new(false));
    watch_high_watermarks(&cfg.brokers, Arc::clone(metrics), Arc::clone(&watch_done));
    let sites = HostSites::default();
    crate::sites::watch(cfg.data_dir.clone(), sites.clone(), Arc::clone(&watch_done));
    let res = match cfg.assignment {
        AssignmentMode::Leases => run_leases(cfg, &sites, stop, metrics),
        AssignmentMode::Group => run_group(cfg, &sites, stop, metrics),
    };
    let res = match res {
        Err(AggregateError::StoppedAtStart) => {
            tracing::info!("stopped while starting; nothing was read");
            Ok(AggregateStats::default())
        }
        // A stop during a sink's outage ends the retries of its writes: nothing more was
        // committed, which is the hand-over (a stop, not a failure).
        Err(e) if stop.load(Ordering::Relaxed) && e.is_sink_unavailable() => {
            tracing::warn!(error = %e, "stopped while a sink was unavailable: nothing more was committed; the partitions' next owner reads their uncommitted events again");
            Ok(AggregateStats::default())
        }
        res => res,
    };
    watch_done.store(true, Ordering::Relaxed);
    metrics.set_ready(false);
    metrics.set_partitions(Default::default());
    res
}

/// Group mode: the broker's consumer-group protocol assigns the partitions.
fn run_group(cfg: &AggregateConfig, sites: &HostSites, stop: &Arc<AtomicBool>, metrics: &Arc<AggregateMetrics>) -> Result<AggregateStats, AggregateError> {
    let lake = cfg.open_sinks(stop, metrics)?;
    let store = CheckpointStore::open(cfg.checkpoint_dir())?;
    let ctx = GroupContext {
        state: Mutex::new(Partitions {
            cfg: cfg.clone(),
            pcfg: cfg.partition_config(sites)?,
            lake,
            store,
            parts: Parts::default(),
            fatal: None,
            frozen: false,
            uncommitted: HashMap::new(),
            stats: AggregateStats::default(),
            metrics: Arc::clone(metrics),
        }),
        ends: EndReports::default(),
    };
    let mut client = cfg.consumer_config();
    if !cfg.instance_id.is_empty() {
        client.set("group.instance.id", &cfg.instance_id);
    }
    let consumer: BaseConsumer<GroupContext> = client
        .set("partition.assignment.strategy", "range")
        .set("session.timeout.ms", cfg.session_timeout_ms.to_string())
        .set("heartbeat.interval.ms", (cfg.session_timeout_ms / 5).max(100).to_string())
        .create_with_context(ctx)?;
    let topics = cfg.topics();
    consumer.subscribe(&topics)?;
    tracing::info!(group = %cfg.group, topics = ?topics, brokers = %cfg.brokers, "aggregator started");

    let timer_every = Duration::from_millis(100);
    let mut last_timers = Instant::now();
    let mut last_key: Key = (String::new(), -1);
    let mut last_commit_retry = Instant::now();
    let mut last_publish = Instant::now();
    let mut clock = Clock::new();
    metrics.set_ready(true);
    let result = loop {
        if stop.load(Ordering::Relaxed) {
            break Ok(());
        }
        let (polled, now) = poll(&consumer, timer_every, &mut clock);
        match polled {
            Some(Ok(msg)) => {
                let mut st = consumer.context().state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                st.stats.messages += 1;
                match take_message(&consumer, &mut st.parts, &mut last_key, &msg) {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!(topic = msg.topic(), partition = msg.partition(), "message of a partition not assigned here; skipped"),
                    Err(e) => break Err(e),
                }
            }
            Some(Err(e)) => tracing::warn!(error = %e, "consumer error"),
            None => {}
        }
        let mut st = consumer.context().state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(e) = st.fatal.take() {
            break Err(e);
        }
        if now.duration_since(last_timers) >= timer_every {
            last_timers = now;
            metrics.beat();
            let st = &mut *st;
            if !st.uncommitted.is_empty() && now.duration_since(last_commit_retry) >= Duration::from_secs(1) {
                last_commit_retry = now;
                if let Err(e) = retry_commits(&consumer, &mut st.parts, &mut st.uncommitted, &mut st.stats) {
                    break Err(e);
                }
            }
            if let Err(e) = run_timers(&consumer, &mut st.parts, &consumer.context().ends, now, &mut st.stats, &mut st.uncommitted, metrics) {
                break Err(e);
            }
            if now.duration_since(last_publish) >= PUBLISH_EVERY {
                last_publish = now;
                publish(cfg, &st.parts, &st.stats, &consumer.context().ends, metrics);
            }
            clock.expire();
        }
    };
    metrics.set_ready(false);
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
            metrics.set_stats(&st.stats);
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

/// Run the aggregator role until `shutdown` resolves, with its metrics listener on
/// `cfg.metrics_listen` (started first, so `/healthz` answers while the sinks open).
pub async fn run(cfg: AggregateConfig, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Result<AggregateStats, AggregateError> {
    let metrics = Arc::new(AggregateMetrics::default());
    metrics.set_stall_timeout(Duration::from_secs(cfg.stall_timeout_secs));
    let server = match cfg.metrics_listen {
        Some(addr) => crate::metrics::serve(addr, Arc::clone(&metrics)).await,
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let stop = Arc::clone(&stop);
        tokio::task::spawn_blocking(move || run_blocking(&cfg, &stop, &metrics))
    };
    tokio::pin!(worker);
    let res = tokio::select! {
        res = &mut worker => res,
        () = shutdown => {
            stop.store(true, Ordering::Relaxed);
            worker.await
        }
    };
    if let Some(server) = server {
        server.abort();
    }
    res.map_err(|_| AggregateError::Panicked)?
}

/// Lease mode: the aggregators of a group share the partitions through [`crate::lease`]; the
/// broker only stores the group's committed offsets (manual assignment, no group rebalancing).
fn run_leases(cfg: &AggregateConfig, sites: &HostSites, stop: &Arc<AtomicBool>, metrics: &Arc<AggregateMetrics>) -> Result<AggregateStats, AggregateError> {
    let lake = cfg.open_sinks(stop, metrics)?;
    let ckpt_dir = cfg.checkpoint_dir();
    let store = CheckpointStore::open(&ckpt_dir)?;
    let lease_err = |source| AggregateError::Lease { path: ckpt_dir.clone(), source };
    let member = if cfg.instance_id.is_empty() {
        format!("{}-{}", std::process::id(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()))
    } else {
        cfg.instance_id.clone()
    };
    let session = Duration::from_millis(cfg.session_timeout_ms);
    let membership = Membership::join(&ckpt_dir, &crate::partition::span_source(&cfg.group, ""), &member, session).map_err(lease_err)?;
    let consumer: BaseConsumer<LeaseContext> = cfg.consumer_config().create_with_context(LeaseContext::default())?;
    let topics = cfg.topics();
    let pcfg = cfg.partition_config(sites)?;
    tracing::info!(group = %cfg.group, member = %member, topics = ?topics, brokers = %cfg.brokers, "aggregator started (lease assignment)");

    let mut stats = AggregateStats::default();
    // Partitions owned, each under the lease kept beside it.
    let mut owned = Parts::default();
    let mut leases: HashMap<Key, Lease> = HashMap::new();
    let mut uncommitted: HashMap<Key, u64> = HashMap::new();
    let mut all: Vec<Key> = Vec::new();
    let mut last_metadata: Option<Instant> = None;
    // Topics said to be missing (each said once).
    let mut missing_warned: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut last_balance = Instant::now() - Duration::from_secs(60);
    let mut last_timers = Instant::now();
    let mut last_key: Key = (String::new(), -1);
    let timer_every = Duration::from_millis(100);
    // Where this member starts looking for free partitions, so members spread out.
    let start_at = member.bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
    let mut last_publish = Instant::now();
    let mut clock = Clock::new();
    metrics.set_ready(true);

    let result: Result<(), AggregateError> = loop {
        if stop.load(Ordering::Relaxed) {
            break Ok(());
        }
        let (polled, now) = poll(&consumer, timer_every, &mut clock);
        if let Some(res) = polled {
            match res {
                Ok(msg) => {
                    stats.messages += 1;
                    if let Err(e) = take_message(&consumer, &mut owned, &mut last_key, &msg) {
                        break Err(e);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "consumer error"),
            }
        }
        if now.duration_since(last_timers) >= timer_every {
            last_timers = now;
            metrics.beat();
            if let Err(e) = run_timers(&consumer, &mut owned, &consumer.context().ends, now, &mut stats, &mut uncommitted, metrics) {
                break Err(e);
            }
            if now.duration_since(last_publish) >= PUBLISH_EVERY {
                last_publish = now;
                publish(cfg, &owned, &stats, &consumer.context().ends, metrics);
            }
            clock.expire();
        }
        if now.duration_since(last_balance) < Duration::from_secs(1) {
            continue;
        }
        last_balance = now;
        clock.expire();
        if let Err(e) = membership.heartbeat() {
            tracing::warn!(error = %e, "membership heartbeat failed");
        }
        if let Err(e) = retry_commits(&consumer, &mut owned, &mut uncommitted, &mut stats) {
            break Err(e);
        }
        if last_metadata.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(30)) {
            match partitions_of(&consumer, &topics) {
                Ok(p) => {
                    for topic in topics.iter().filter(|t| !p.iter().any(|(pt, _)| pt == *t)) {
                        if missing_warned.insert((*topic).to_owned()) {
                            tracing::error!(topic = %topic, "the brokers have no topic {topic}: nothing to read from it until it exists (create it, or fix [aggregate] events_topic / dead_letters_topic)");
                        }
                    }
                    all = p;
                    last_metadata = Some(now);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "topic metadata unavailable");
                    continue;
                }
            }
        }
        if all.is_empty() {
            continue;
        }
        let members = match membership.live_members() {
            Ok(n) => n,
            Err(e) => break Err(lease_err(e)),
        };
        let fair = fair_share(all.len(), members);
        // The assignment changes incrementally: partitions kept go on fetching where they are,
        // without dropping what the consumer has already fetched for them.
        let mut given_up = TopicPartitionList::new();
        let mut taken = TopicPartitionList::new();
        // Above the fair share: hand partitions over (checkpoint, commit, unlock).
        if owned.len() > fair {
            let mut keys: Vec<Key> = owned.keys().cloned().collect();
            keys.sort();
            for key in keys.into_iter().rev().take(owned.len() - fair) {
                let part = owned.remove(&key).expect("owned");
                // A failure is logged; the next owner resumes from the previous commit.
                let _ = hand_over(&consumer, part, &mut stats, &mut uncommitted, metrics, "hand-over");
                leases.remove(&key); // unlock only after the checkpoint and commit
                given_up.add_partition(&key.0, key.1);
            }
        }
        // Below it: take free partitions.
        let mut fatal: Option<AggregateError> = None;
        if owned.len() < fair {
            let n = all.len();
            for i in 0..n {
                if owned.len() >= fair {
                    break;
                }
                let key = &all[(start_at + i) % n];
                if owned.contains_key(key) {
                    continue;
                }
                let source = crate::partition::span_source(&cfg.group, &key.0);
                let lease = match Lease::try_acquire(&ckpt_dir, &source, key.1) {
                    Ok(Some(l)) => l,
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "lease");
                        continue;
                    }
                };
                let committed = match committed_offset(&consumer, &key.0, key.1) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(topic = %key.0, partition = key.1, error = %e, "committed offset unavailable; not taking the partition yet");
                        continue;
                    }
                };
                let committed = match resume_position(&store, cfg, &key.0, key.1, committed) {
                    Ok(c) => c,
                    Err(AggregateError::Kafka(e)) => {
                        tracing::warn!(topic = %key.0, partition = key.1, error = %e, "the partition's end is unknown; not taking the partition yet");
                        continue;
                    }
                    Err(e) => {
                        // Unlock by dropping the lease: nothing was read, nothing is lost.
                        drop(lease);
                        fatal = Some(e);
                        break;
                    }
                };
                let part = match PartitionAggregator::resume(&cfg.group, &key.0, key.1, cfg.kind_of(&key.0), committed, pcfg.clone(), lake.clone(), store.clone(), Instant::now()) {
                    Ok(p) => p,
                    Err(e) => {
                        // Unlock by dropping the lease: nothing was read, nothing is lost.
                        drop(lease);
                        fatal = Some(e.into());
                        break;
                    }
                };
                stats.acquired += 1;
                stats.discarded_writes += part.discarded_writes;
                tracing::info!(topic = %key.0, partition = key.1, committed = ?committed, discarded_writes = part.discarded_writes, members, "partition taken");
                consumer.context().ends.forget(key);
                let pos = part.position();
                let offset = if pos == 0 { Offset::Beginning } else { Offset::Offset(pos as i64) };
                if let Err(e) = taken.add_partition_offset(&key.0, key.1, offset) {
                    fatal = Some(e.into());
                    break;
                }
                owned.insert(key.clone(), part);
                leases.insert(key.clone(), lease);
            }
        }
        if let Some(e) = fatal {
            break Err(e);
        }
        if given_up.count() + taken.count() > 0 {
            stats.rebalances += 1;
            let res = if given_up.count() > 0 { consumer.incremental_unassign(&given_up) } else { Ok(()) };
            if let Err(e) = res.and_then(|()| if taken.count() > 0 { consumer.incremental_assign(&taken) } else { Ok(()) }) {
                break Err(e.into());
            }
        }
    };
    metrics.set_ready(false);
    match result {
        Ok(()) => {
            for (_, part) in owned.drain() {
                let _ = hand_over(&consumer, part, &mut stats, &mut uncommitted, metrics, "shutdown");
            }
            drop(leases);
            membership.leave();
            tracing::info!(messages = stats.messages, checkpoints = stats.checkpoints, "aggregator stopped");
            metrics.set_stats(&stats);
            Ok(stats)
        }
        Err(e) => {
            // Nothing more is committed; the leases are released.
            drop(leases);
            membership.leave();
            Err(e)
        }
    }
}

/// The partitions an aggregator owns (ahash: looked up for every message).
type Parts = ahash::HashMap<Key, PartitionAggregator<Sinks>>;

/// Hand one message to its partition; seek back when the partition asks to. `Ok(false)`: the
/// partition is not owned here (a message fetched before the assignment changed).
/// `last_key` is the key of the previous message, reused while messages come from the same
/// partition (they come in runs), so a message costs no allocation to find its partition.
fn take_message<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    parts: &mut Parts,
    last_key: &mut Key,
    msg: &BorrowedMessage<'_>,
) -> Result<bool, AggregateError> {
    if last_key.1 != msg.partition() || last_key.0 != msg.topic() {
        *last_key = (msg.topic().to_owned(), msg.partition());
    }
    let Some(part) = parts.get_mut(&*last_key) else { return Ok(false) };
    match part.take(msg.offset(), msg.payload().unwrap_or_default(), message_name(msg))? {
        Taken::Done => {}
        Taken::Rewind(to) => seek(consumer, last_key, to),
    }
    Ok(true)
}

/// The message's name for deduplication, from its headers (see [`edgelens_ingest::log`]).
fn message_name<'a>(msg: &'a BorrowedMessage<'_>) -> Option<MessageName<'a>> {
    let headers = msg.headers()?;
    let (mut id, mut resend) = (None, false);
    for i in 0..headers.count() {
        // rdkafka panics on a header name that is not UTF-8 (another producer's header, which
        // is none of ours): skip it instead of stopping at that offset for good.
        let Ok(Some(h)) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| headers.try_get(i))) else { continue };
        match h.key {
            MESSAGE_ID_HEADER => id = h.value,
            RESEND_HEADER => resend = true,
            _ => {}
        }
    }
    Some(MessageName { key: msg.key().unwrap_or_default(), id: id?, resend })
}

/// Run every partition's timers; checkpoint and commit those that are due; report the
/// partitions' counters to the metrics.
fn run_timers<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    parts: &mut Parts,
    ends: &EndReports,
    now: Instant,
    stats: &mut AggregateStats,
    uncommitted: &mut HashMap<Key, u64>,
    metrics: &AggregateMetrics,
) -> Result<(), AggregateError> {
    for (key, report) in ends.take_all() {
        if let Some(part) = parts.get_mut(&key) {
            part.end_report(report);
        }
    }
    for part in parts.values_mut() {
        let due = part.on_timer(now);
        let res = match due {
            Ok(true) => checkpoint_and_commit(consumer, part, stats, uncommitted),
            Ok(false) => Ok(()),
            Err(e) => Err(e.into()),
        };
        part.report(metrics);
        res?;
    }
    Ok(())
}

/// The consumer context of lease mode: it only keeps the [`EndReports`].
#[derive(Default)]
struct LeaseContext {
    ends: EndReports,
}

impl ClientContext for LeaseContext {
    fn stats_raw(&self, statistics: &[u8]) {
        self.ends.record(statistics);
    }
}

impl ConsumerContext for LeaseContext {}

/// How often librdkafka reports its statistics, from which the [`EndReports`] come: often
/// enough that an idle partition is closed soon after its idle timeout, at most once a second.
fn stats_interval_ms(idle_timeout_ms: u64) -> u64 {
    (idle_timeout_ms / 4).clamp(100, 1000)
}

/// The partitions' [`EndReport`]s from librdkafka's statistics, which the consumer emits every
/// [`stats_interval_ms`] and serves inside `poll`; the timers hand each to its partition. They
/// come from the consumer's own fetch responses (no broker round trip) and name the topic, which
/// librdkafka's partition-EOF events, as `rdkafka` passes them on, do not.
#[derive(Default)]
struct EndReports {
    reports: Mutex<HashMap<Key, EndReport>>,
    /// Messages fetched from each topic so far (librdkafka's `rxmsgs`, summed over the topic's
    /// partitions, from the latest statistics).
    fetched: Mutex<HashMap<String, u64>>,
    /// An unreadable statistics document was logged (once per consumer).
    warned: AtomicBool,
}

/// The part of librdkafka's statistics JSON an [`EndReport`] is made from (the rest is ignored).
#[derive(Deserialize)]
struct RawStats {
    #[serde(default)]
    topics: HashMap<String, RawTopic>,
}

#[derive(Deserialize)]
struct RawTopic {
    #[serde(default)]
    partitions: HashMap<String, RawPartition>,
}

/// A field librdkafka leaves out reads as unknown (-1001, its "invalid offset"): that partition
/// then has no end to report, and the rest of the document still counts.
#[derive(Deserialize)]
struct RawPartition {
    partition: i32,
    #[serde(default)]
    fetch_state: String,
    /// The next offset to fetch.
    #[serde(default = "invalid_offset")]
    next_offset: i64,
    /// The offset after the last message handed to the application.
    #[serde(default = "invalid_offset")]
    app_offset: i64,
    /// The end a fetch can reach: the last stable offset (the high watermark unless the topic
    /// has open transactions). Kept across assignments: it may come from an earlier one.
    #[serde(default = "invalid_offset")]
    ls_offset: i64,
    /// The end at which a fetch response of the current fetch (since the last assignment or seek)
    /// found nothing more to read; unknown until one did.
    #[serde(default = "invalid_offset")]
    eof_offset: i64,
    /// Messages (and transaction markers) this consumer has fetched from the partition, including
    /// any it dropped unread because the partition was given up or sought meanwhile.
    #[serde(default)]
    rxmsgs: u64,
}

fn invalid_offset() -> i64 {
    -1001
}

impl RawPartition {
    fn report(&self) -> EndReport {
        let end = u64::try_from(self.ls_offset).ok();
        // A response of the current fetch found the end, and it is still the latest end known
        // (`ls_offset` alone may be left from an earlier assignment of the partition).
        let fetched_to_end = self.fetch_state == "active" && end.is_some() && self.eof_offset == self.ls_offset && self.next_offset >= self.ls_offset;
        EndReport { reached: end.filter(|_| fetched_to_end), handed: u64::try_from(self.app_offset).ok() }
    }
}

impl EndReports {
    /// Keep the report of every partition in one statistics document (the latest wins).
    fn record(&self, statistics: &[u8]) {
        let stats: RawStats = match serde_json::from_slice(statistics) {
            Ok(s) => s,
            Err(e) => {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "unreadable consumer statistics; idle partitions close only after the long idle timeout");
                }
                return;
            }
        };
        let mut ends = self.reports.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut fetched = self.fetched.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (topic, t) in stats.topics {
            let parts = t.partitions.values().filter(|p| p.partition >= 0);
            fetched.insert(topic.clone(), parts.clone().map(|p| p.rxmsgs).sum());
            for p in parts {
                ends.insert((topic.clone(), p.partition), p.report());
            }
        }
    }

    /// Messages fetched so far, by topic.
    fn fetched(&self) -> HashMap<String, u64> {
        self.fetched.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// A partition was (re)assigned: reports made before describe an earlier assignment.
    fn forget(&self, key: &Key) {
        self.reports.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(key);
    }

    fn take_all(&self) -> HashMap<Key, EndReport> {
        std::mem::take(&mut *self.reports.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

/// How often the owned partitions' offsets and the process counters are published.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// The polling thread's clock (librdkafka reads the clock several times per poll already; one
/// more reading per message was a measurable share of the consumer's CPU). It is read after
/// every poll that may have waited, after the loop's other work (timers, balancing), and
/// otherwise once every [`Clock::EVERY`] messages: between readings only messages that were
/// already fetched are taken. An old reading only makes the loop's timers run later; partitions
/// stamp their input time at their own timer ([`PartitionAggregator::on_timer`]).
struct Clock {
    now: Instant,
    unread: u32,
}

impl Clock {
    const EVERY: u32 = 32;

    fn new() -> Self {
        Self { now: Instant::now(), unread: 0 }
    }

    /// The time after a poll; `waited` when it may have waited for a message.
    fn after_poll(&mut self, waited: bool) -> Instant {
        self.unread += 1;
        if waited || self.unread >= Self::EVERY {
            self.now = Instant::now();
            self.unread = 0;
        }
        self.now
    }

    /// The loop did other work: read the clock after the next poll.
    fn expire(&mut self) {
        self.unread = Self::EVERY;
    }
}

/// The next message or event: one already fetched if there is one, else whatever comes within
/// `wait`; and the time after it.
fn poll<'c, C: ConsumerContext>(consumer: &'c BaseConsumer<C>, wait: Duration, clock: &mut Clock) -> (Option<KafkaResult<BorrowedMessage<'c>>>, Instant) {
    let mut polled = consumer.poll(Duration::ZERO);
    let waited = polled.is_none();
    if waited {
        polled = consumer.poll(wait);
    }
    (polled, clock.after_poll(waited))
}

/// Publish the owned partitions' offsets and the process counters (high watermarks come from
/// [`watch_high_watermarks`]).
fn publish(cfg: &AggregateConfig, parts: &Parts, stats: &AggregateStats, ends: &EndReports, metrics: &AggregateMetrics) {
    let owned = parts
        .iter()
        .map(|((topic, partition), part)| ((topic.clone(), *partition), PartitionOffsets { position: part.position(), committed: part.committed_position(), high_watermark: None }))
        .collect();
    metrics.set_partitions(owned);
    metrics.set_stats(stats);
    let topics = cfg.topics();
    for (topic, n) in ends.fetched() {
        if topics.contains(&topic.as_str()) {
            metrics.set_fetched(cfg.kind_of(&topic), n);
        }
    }
}

/// How often the high watermarks of the owned partitions are asked for.
const WATERMARKS_EVERY: Duration = Duration::from_secs(3);

/// A thread of its own, with a client of its own, that asks the brokers for the high watermark
/// of every partition the metrics list as owned, every few seconds, until `done`: consumer lag
/// without a broker round trip on the polling thread (a slow or unreachable broker delays only
/// the lag).
fn watch_high_watermarks(brokers: &str, metrics: Arc<AggregateMetrics>, done: Arc<AtomicBool>) {
    let client: BaseConsumer = match ClientConfig::new().set("bootstrap.servers", brokers).create() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "no client for high watermarks; consumer lag is not reported");
            return;
        }
    };
    let spawned = std::thread::Builder::new().name("edgelens-watermarks".into()).spawn(move || {
        let mut next = Instant::now();
        while !done.load(Ordering::Relaxed) {
            if Instant::now() < next {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            next = Instant::now() + WATERMARKS_EVERY;
            for (topic, partition) in metrics.owned_partitions() {
                if done.load(Ordering::Relaxed) {
                    break;
                }
                match client.fetch_watermarks(&topic, partition, Duration::from_secs(2)) {
                    Ok((_, high)) => metrics.set_high_watermark(&topic, partition, u64::try_from(high).unwrap_or(0)),
                    Err(e) => tracing::debug!(topic, partition, error = %e, "high watermark unavailable"),
                }
            }
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the high-watermark thread; consumer lag is not reported");
    }
}

/// Retry the commits that failed, until one fails again (the broker is still unreachable).
fn retry_commits<C: ConsumerContext>(consumer: &BaseConsumer<C>, parts: &mut Parts, uncommitted: &mut HashMap<Key, u64>, stats: &mut AggregateStats) -> Result<(), AggregateError> {
    let pending: Vec<(Key, u64)> = uncommitted.iter().map(|(k, p)| (k.clone(), *p)).collect();
    for (key, position) in pending {
        let Some(part) = parts.get_mut(&key) else {
            uncommitted.remove(&key);
            continue;
        };
        if commit(consumer, &key.0, key.1, position).is_err() {
            stats.commit_failures += 1;
            break;
        }
        stats.commits += 1;
        uncommitted.remove(&key);
        part.committed(position)?;
        tracing::info!(topic = %key.0, partition = key.1, position, "commit retried successfully");
    }
    Ok(())
}

/// Give a partition up (revocation, hand-over, shutdown): checkpoint and commit it. A failure is
/// logged and returned; the next owner then resumes from the previous commit, just as exactly.
fn hand_over<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    mut part: PartitionAggregator<Sinks>,
    stats: &mut AggregateStats,
    uncommitted: &mut HashMap<Key, u64>,
    metrics: &AggregateMetrics,
    why: &str,
) -> Result<(), AggregateError> {
    let res = checkpoint_and_commit(consumer, &mut part, stats, uncommitted);
    part.report(metrics);
    uncommitted.remove(&(part.topic().to_owned(), part.partition()));
    match &res {
        Ok(()) => tracing::info!(topic = part.topic(), partition = part.partition(), position = part.position(), why, "partition given up"),
        Err(e) => tracing::error!(topic = part.topic(), partition = part.partition(), error = %e, why, "checkpoint failed; the next owner resumes from the previous commit"),
    }
    res
}

/// Checkpoint one partition and commit its position. A failed commit (broker unreachable) is not
/// an error: the checkpoint stays, the commit is retried later, and until then a restart resumes
/// from the previous commit, which is just as exact.
fn checkpoint_and_commit<C: ConsumerContext>(consumer: &BaseConsumer<C>, part: &mut PartitionAggregator<Sinks>, stats: &mut AggregateStats, uncommitted: &mut HashMap<Key, u64>) -> Result<(), AggregateError> {
    let Some(position) = part.checkpoint(Instant::now())? else { return Ok(()) };
    stats.checkpoints += 1;
    let key = (part.topic().to_owned(), part.partition());
    match commit(consumer, part.topic(), part.partition(), position) {
        Ok(()) => {
            stats.commits += 1;
            uncommitted.remove(&key);
            part.committed(position)?;
        }
        Err(e) => {
            stats.commit_failures += 1;
            tracing::warn!(topic = part.topic(), partition = part.partition(), position, error = %e, "commit failed; retrying later");
            uncommitted.insert(key, position);
        }
    }
    Ok(())
}

fn partitions_of<C: ConsumerContext>(consumer: &BaseConsumer<C>, topics: &[&str]) -> Result<Vec<Key>, KafkaError> {
    let mut out = Vec::new();
    for &t in topics {
        let md = consumer.fetch_metadata(Some(t), Duration::from_secs(10))?;
        for topic in md.topics() {
            if topic.name() == t {
                out.extend(topic.partitions().iter().map(|p| (t.to_owned(), p.id())));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The position to resume a partition at: the group's committed one; without one, the newest
/// checkpoint this lake holds for the group there, if the partition reaches it (see
/// [`crate::partition::resume_without_commit`]) — never the beginning while the lake holds the
/// group's checkpointed work there, which would discard it all.
fn resume_position(store: &CheckpointStore, cfg: &AggregateConfig, topic: &str, partition: i32, committed: Option<u64>) -> Result<Option<u64>, AggregateError> {
    if committed.is_some() {
        return Ok(committed);
    }
    let checkpoints = store.positions(&crate::partition::span_source(&cfg.group, topic), partition)?;
    if checkpoints.iter().all(|&p| p == 0) {
        return Ok(None);
    }
    let end = partition_end(&cfg.brokers, topic, partition)?;
    let resumed = crate::partition::resume_without_commit(topic, partition, &checkpoints, end)?;
    if let Some(p) = resumed {
        tracing::warn!(topic, partition, checkpoint = p, end, "the group has no committed offset here (the broker lost or expired it): resuming from this lake's checkpoint");
    }
    Ok(resumed)
}

/// The offset after a partition's last message. A broker's high watermark says so, but tansu 0.6
/// answers the first offset of the partition's last record batch: the messages from just before
/// it are read, and the last one's offset counts.
fn partition_end(brokers: &str, topic: &str, partition: i32) -> Result<u64, KafkaError> {
    let probe: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "edgelens-end-probe")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()?;
    let (low, high) = probe.fetch_watermarks(topic, partition, Duration::from_secs(10))?;
    let mut end = u64::try_from(high).unwrap_or(0);
    if high <= low {
        return Ok(end);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset((high - 1).max(low)))?;
    probe.assign(&tpl)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match probe.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => end = end.max(u64::try_from(m.offset()).unwrap_or(0) + 1),
            Some(Err(KafkaError::PartitionEOF(_))) => return Ok(end),
            Some(Err(e)) => return Err(e),
            None => {}
        }
    }
    Ok(end)
}

fn committed_offset<C: ConsumerContext>(consumer: &BaseConsumer<C>, topic: &str, partition: i32) -> Result<Option<u64>, KafkaError> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    let c = consumer.committed_offsets(tpl, Duration::from_secs(10))?;
    Ok(match c.find_partition(topic, partition).map(|e| e.offset()) {
        Some(Offset::Offset(o)) if o >= 0 => Some(o as u64),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<AggregateConfig, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn the_stall_timeout_must_outlast_a_clickhouse_request() {
        let mut cfg = AggregateConfig { stall_timeout_secs: 60, ..AggregateConfig::default() };
        // Without ClickHouse any timeout goes.
        assert!(cfg.validate().is_ok());
        cfg.clickhouse.url = "http://127.0.0.1:8123".into();
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("aggregate.stall_timeout_secs (60) must be longer than clickhouse.request_timeout_ms (60000 ms)"), "{e}");
        cfg.stall_timeout_secs = 61;
        assert!(cfg.validate().is_ok());
        cfg.stall_timeout_secs = 0;
        assert!(cfg.validate().is_ok());
        assert_eq!(AggregateConfig::default().stall_timeout_secs, 300);
    }

    #[test]
    fn clock_is_read_every_32_polls_after_every_wait_and_after_other_work() {
        let mut clock = Clock::new();
        let first = clock.after_poll(false);
        std::thread::sleep(Duration::from_millis(2));
        for _ in 2..Clock::EVERY {
            assert_eq!(clock.after_poll(false), first, "read before the 32nd poll");
        }
        let read = clock.after_poll(false);
        assert!(read > first, "the 32nd poll reads the clock");
        std::thread::sleep(Duration::from_millis(2));
        let waited = clock.after_poll(true);
        assert!(waited > read, "a poll that may have waited reads the clock");
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(clock.after_poll(false), waited, "the count starts again after a reading");
        clock.expire();
        std::thread::sleep(Duration::from_millis(2));
        assert!(clock.after_poll(false) > waited, "other work of the loop makes the next poll read the clock");
    }

    #[test]
    fn metrics_listen_defaults_on_and_turns_off() {
        assert_eq!(AggregateConfig::default().metrics_listen, Some(SocketAddr::from(([127, 0, 0, 1], DEFAULT_METRICS_PORT))));
        assert_eq!(parse("{}").unwrap().metrics_listen, AggregateConfig::default().metrics_listen);
        assert_eq!(parse(r#"{"metrics_listen": "0.0.0.0:9100"}"#).unwrap().metrics_listen, Some("0.0.0.0:9100".parse().unwrap()));
        assert_eq!(parse(r#"{"metrics_listen": ""}"#).unwrap().metrics_listen, None);
        assert_eq!(parse(r#"{"metrics_listen": "off"}"#).unwrap().metrics_listen, None);
        let err = parse(r#"{"metrics_listen": "localhost"}"#).unwrap_err().to_string();
        assert!(err.contains("\"localhost\" is not an address") && err.contains("to turn the listener off"), "{err}");
        let local = parse(r#"{"metrics_listen": "localhost:9109"}"#).unwrap().metrics_listen.unwrap();
        assert!(local.ip().is_loopback() && local.port() == 9109, "{local}");
        assert!(parse(r#"{"metrics_listn": ""}"#).is_err(), "unknown keys are rejected");
    }

    /// librdkafka's statistics (captured from a consumer of a two-partition topic, golden files):
    /// a partition without a fetch response yet has no end; one fetched and handed over to its
    /// end reports it; the unassigned pseudo-partition -1 is left out.
    #[test]
    fn end_reports_come_from_librdkafka_statistics() {
        let key = |p| ("stats-capture".to_owned(), p);
        let ends = EndReports::default();
        ends.record(include_bytes!("../tests/golden/librdkafka-stats-fetching.json"));
        let r = ends.take_all();
        assert_eq!(r.len(), 2, "{:?}", r.keys());
        assert_eq!(r[&key(0)], EndReport { reached: None, handed: None });
        // Fetched and handed over up to the end, but no response found nothing more yet.
        assert_eq!(r[&key(1)], EndReport { reached: None, handed: Some(3) });
        ends.record(include_bytes!("../tests/golden/librdkafka-stats-at-end.json"));
        let r = ends.take_all();
        assert_eq!(r[&key(0)], EndReport { reached: Some(4), handed: Some(4) });
        assert_eq!(r[&key(1)], EndReport { reached: Some(3), handed: Some(3) });
        assert!(ends.take_all().is_empty(), "taken once");
        assert_eq!(ends.fetched(), HashMap::from([("stats-capture".to_owned(), 7)]), "messages fetched, summed over the partitions");

        // Fetching behind the end (a backlog), a stopped fetcher, an end left from an earlier
        // assignment (no response of the current fetch yet), a missing field, then something
        // unreadable.
        let doc = |state: &str, next: i64, eof: i64| {
            format!(r#"{{"name":"c","topics":{{"t":{{"topic":"t","partitions":{{"0":{{"partition":0,"fetch_state":"{state}","next_offset":{next},"app_offset":120,"ls_offset":120,"hi_offset":120,"eof_offset":{eof}}}}}}}}}}}"#)
        };
        let t0 = ("t".to_owned(), 0);
        ends.record(doc("active", 120, 120).as_bytes());
        assert_eq!(ends.take_all()[&t0], EndReport { reached: Some(120), handed: Some(120) });
        ends.record(doc("active", 100, 100).as_bytes());
        assert_eq!(ends.take_all()[&t0], EndReport { reached: None, handed: Some(120) });
        ends.record(doc("stopped", 120, 120).as_bytes());
        assert_eq!(ends.take_all()[&t0].reached, None);
        ends.record(doc("active", 130, -1001).as_bytes());
        assert_eq!(ends.take_all()[&t0].reached, None, "an end from before the assignment");
        ends.record(br#"{"topics":{"t":{"partitions":{"0":{"partition":0,"fetch_state":"active","next_offset":5,"ls_offset":5,"eof_offset":5}}}}}"#);
        assert_eq!(ends.take_all()[&t0], EndReport { reached: Some(5), handed: None }, "app_offset missing");
        assert!(!ends.warned.load(Ordering::Relaxed));
        ends.record(doc("active", 120, 120).as_bytes());
        ends.forget(&("t".to_owned(), 0));
        assert!(ends.take_all().is_empty(), "forgotten on reassignment");
        ends.record(b"{not json");
        assert!(ends.take_all().is_empty());
        assert!(ends.warned.load(Ordering::Relaxed));
    }

    #[test]
    fn statistics_come_often_enough_for_the_idle_timeout() {
        assert_eq!(stats_interval_ms(5000), 1000);
        assert_eq!(stats_interval_ms(2000), 500);
        assert_eq!(stats_interval_ms(100), 100);
    }
}
