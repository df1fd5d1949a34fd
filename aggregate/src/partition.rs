//! One topic partition inside an aggregator: the embedded pipeline plus the exactly-once protocol
//! (resume from a checkpoint, periodic checkpoints, idle handling). Synchronous and free of Kafka
//! types, so the whole protocol — crashes included — is tested without a broker; [`crate::consumer`]
//! drives it from the consumer group.
//!
//! Exactly once, per partition:
//! 1. **Resume** at the group's committed position `c` (the next offset to read): load the
//!    checkpoint taken at `c`, discard every sink write whose span starts at or after `c` and every
//!    other checkpoint (a crashed owner's work after `c`), and read on from `c`.
//! 2. **Take** messages: position = offset + 1. Rows are flushed to the sinks under spans
//!    `(previous flush, position]`, on row counts and on the flush interval, so closed windows are
//!    visible within a second.
//! 3. **Checkpoint** (interval, revocation, shutdown): flush, save the open state at the current
//!    position; the caller then commits that position to the group and calls
//!    [`PartitionAggregator::committed`], which drops older checkpoints.
//!
//! A crash anywhere leaves committed position `c` with its checkpoint; everything written after
//! it is discarded and rewritten from the same input, so nothing is lost or counted twice.

use std::time::{Duration, Instant};

use edgelens_ingest::log::Record;

use crate::checkpoint::{CheckpointError, CheckpointStore};
use crate::error::SinkError;
use crate::metrics::{AggregateMetrics, Reported};
use crate::pipeline::{now_nanos, EmbeddedPipeline, MessageName, PipelineConfig, PipelineStats};
use crate::sink::{OffsetSpan, RollupSink};

/// What a topic carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    /// Logpush events, one or more per message (`edge-requests`).
    Events,
    /// Dead letters from upstream (`edge-dead-letters`), written to the `dead_letters` table.
    DeadLetters,
}

/// Timing of one partition's flushes and checkpoints.
#[derive(Debug, Clone)]
pub struct PartitionConfig {
    pub pipeline: PipelineConfig,
    /// Write closed windows at least this often (freshness).
    pub flush_interval: Duration,
    /// With no message for this long, and the consumer at the partition's end (see
    /// [`EndReport`]), close the partition's open windows (an idle partition does not hold its
    /// last windows back forever).
    pub idle_timeout: Duration,
    /// Checkpoint (and commit) at least this often while input flows.
    pub checkpoint_interval: Duration,
}

impl Default for PartitionConfig {
    fn default() -> Self {
        Self {
            pipeline: PipelineConfig::default(),
            flush_interval: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(5),
            checkpoint_interval: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error("{topic}/{partition}: {source}")]
    Sink { topic: String, partition: i32, source: SinkError },
    #[error("{topic}/{partition}: {source}")]
    Checkpoint { topic: String, partition: i32, source: CheckpointError },
    #[error("{topic}/{partition}: checkpoint at position {position} cannot be restored: {reason}")]
    BadState { topic: String, partition: i32, position: u64, reason: String },
    #[error(
        "{topic}/{partition}: the broker delivered offset {offset}, below this aggregator's position {position}, unasked: \
         the partition's offsets started again {RESTARTED}"
    )]
    OffsetsRestarted { topic: String, partition: i32, position: u64, offset: u64 },
    #[error(
        "{topic}/{partition}: the group has no committed offset here, and the partition ends at offset {end}, before this lake's \
         checkpoint at {checkpoint}: its offsets started again {RESTARTED}"
    )]
    EndBelowCheckpoint { topic: String, partition: i32, checkpoint: u64, end: u64 },
}

/// What a partition whose offsets started again means, and what to do: the end of both errors.
const RESTARTED: &str = "(the topic was recreated, or the broker lost its storage). Nothing was discarded, nor counted: the \
     rollups of the earlier topic stay. Count the new topic with another --group (its rollups are written beside them; the \
     earlier topic's messages are gone, so nothing is counted twice)";

/// Where a partition resumes when its group has no committed position there (the broker lost or
/// expired the group's offsets, or the group is new), from the positions of the checkpoints this
/// lake holds for the group there: the newest past the beginning, as if committed — resuming from
/// the beginning would discard everything the group wrote there, counted long ago, while the
/// broker may no longer have those events — or `None` (the beginning: a first owner's writes
/// made before its first checkpoint are discarded and written again). A partition that ends
/// before that checkpoint (`end`, the offset after its last message) had its offsets start again:
/// refused ([`PartitionError::EndBelowCheckpoint`]), nothing discarded.
pub fn resume_without_commit(topic: &str, partition: i32, checkpoints: &[u64], end: u64) -> Result<Option<u64>, PartitionError> {
    match checkpoints.iter().copied().filter(|&p| p > 0).max() {
        Some(p) if p > end => Err(PartitionError::EndBelowCheckpoint { topic: topic.to_owned(), partition, checkpoint: p, end }),
        resumed => Ok(resumed),
    }
}

/// The span source (lake file names, checkpoint directory) of a topic read by a group: several
/// groups or topics can share one lake without touching each other's files.
pub fn span_source(group: &str, topic: &str) -> String {
    OffsetSpan::sanitize_source(&format!("{group}.{topic}"))
}

pub struct PartitionAggregator<S> {
    topic: String,
    partition: i32,
    kind: TopicKind,
    /// Span source: `<group>.<topic>`, sanitized.
    source: String,
    /// Source named in dead letters: `kafka:<topic>/<partition>`.
    dl_source: String,
    cfg: PartitionConfig,
    pipeline: EmbeddedPipeline<S>,
    store: CheckpointStore,
    /// When input was last seen, as stamped by the timer that first ran after it (so that a
    /// caller's clock reading, however old, can only make an idle close later, never earlier).
    last_input: Instant,
    /// A message was taken since the last timer run.
    input_since_timer: bool,
    idle_closed: bool,
    /// Where the consumer was last told to fetch from (resume, seek): where it
    /// stands when an [`EndReport`] says it handed nothing over yet.
    fetch_start: u64,
    /// An [`EndReport`] made after the last message taken showed nothing left to read.
    at_end: bool,
    last_flush: Instant,
    last_checkpoint: Instant,
    /// Position of the last checkpoint (what is, or is about to be, committed).
    checkpointed: u64,
    /// Sink writes discarded at resume.
    pub discarded_writes: u64,
    /// The next message must be at the expected offset: set once resumed at a committed position
    /// or after the first message (a fresh partition may start after offset 0).
    contiguous: bool,
    rewind: Option<Rewind>,
    rewinds: u64,
    redelivered: u64,
    /// The position committed to the group (`None`: never).
    committed: Option<u64>,
    /// Checkpoints written (idle-close rewrites included).
    checkpoints_saved: u64,
    /// What [`Self::report`] last reported: the counters, detector incidents, checkpoints and
    /// messages delivered again.
    reported: (Reported, u64, u64),
    /// Unjudged events not yet logged, and when they last were (a warning at most a minute).
    unjudged_unlogged: (u64, Option<Instant>),
}

/// How often a partition warns of events the detector did not judge, at most.
const UNJUDGED_WARN_EVERY: Duration = Duration::from_secs(60);

/// What the consumer last said of a partition's end (librdkafka's statistics, read by
/// [`crate::consumer`]). An idle close needs one made after the last message taken that shows
/// nothing left to read: a quiet clock alone does not tell an idle partition from a consumer that
/// has not fetched yet (a restarted aggregator before its first fetch, a polling thread starved
/// of CPU), and closing then would judge detector seconds whose events are still in the topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndReport {
    /// The partition's end (its last stable offset) in the consumer's latest fetch response,
    /// when the consumer had fetched up to it; `None` while it had not, or had no response yet.
    pub reached: Option<u64>,
    /// The offset after the last message the consumer had handed over (transaction markers,
    /// never handed over, included); `None` when it had handed nothing since the partition was
    /// assigned or sought.
    pub handed: Option<u64>,
}

/// A partition quiet for this many idle timeouts is closed even without an [`EndReport`] showing
/// its end (a broker unreachable since before the first fetch, an end never reported): windows
/// are not held back forever, and what comes later still counts in the rollups (only the
/// detector has judged those seconds).
pub const IDLE_WITHOUT_END_FACTOR: u32 = 12;

/// What the caller must do after [`PartitionAggregator::take`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    Done,
    /// Seek the partition to this offset: the broker skipped messages.
    Rewind(u64),
}

#[derive(Debug, Clone, Copy)]
struct Rewind {
    back: u64,
    seek_to: u64,
    /// A message before the expected offset arrived since the seek.
    saw_before: bool,
}

impl<S: RollupSink> PartitionAggregator<S> {
    /// Resume `topic`/`partition` at the group's committed position (`None`: the group never
    /// committed one, start from the beginning with empty state).
    #[allow(clippy::too_many_arguments)]
    pub fn resume(
        group: &str,
        topic: &str,
        partition: i32,
        kind: TopicKind,
        committed: Option<u64>,
        cfg: PartitionConfig,
        mut sink: S,
        store: CheckpointStore,
        now: Instant,
    ) -> Result<Self, PartitionError> {
        let source = span_source(group, topic);
        let err_ckpt = |source| PartitionError::Checkpoint { topic: topic.to_owned(), partition, source };
        let position = committed.unwrap_or(0);
        let state = match committed {
            Some(c) => Some(store.load(&source, partition, c).map_err(err_ckpt)?.ok_or_else(|| {
                err_ckpt(CheckpointError::Missing { dir: store.dir().to_path_buf(), source_name: source.clone(), partition, position: c })
            })?),
            None => None,
        };
        // A checkpoint starts with a flag byte: 1 = taken after an idle close at its position, whose
        // empty-input span was written before it and stays.
        let (idle_closed, state) = match state.as_deref() {
            None => (false, None),
            Some([flag, body @ ..]) if *flag <= 1 => (*flag == 1, Some(body.to_vec())),
            Some(_) => {
                return Err(PartitionError::BadState { topic: topic.to_owned(), partition, position, reason: "unknown checkpoint flags".into() });
            }
        };
        let discarded_writes = sink
            .discard_after(&source, partition, position, idle_closed)
            .map_err(|source| PartitionError::Sink { topic: topic.to_owned(), partition, source })?;
        store.retain_only(&source, partition, position).map_err(err_ckpt)?;
        let mut pcfg = cfg.pipeline.clone();
        pcfg.source = source.clone();
        pcfg.partition = partition;
        let pipeline = EmbeddedPipeline::restore(pcfg, sink, position, state.as_deref())
            .map_err(|reason| PartitionError::BadState { topic: topic.to_owned(), partition, position, reason })?;
        let reported = (Reported::of(&pipeline), 0, 0);
        Ok(Self {
            topic: topic.to_owned(),
            partition,
            kind,
            dl_source: format!("kafka:{topic}/{partition}"),
            source,
            cfg,
            pipeline,
            store,
            last_input: now,
            input_since_timer: false,
            idle_closed,
            fetch_start: position,
            at_end: false,
            last_flush: now,
            last_checkpoint: now,
            checkpointed: position,
            discarded_writes,
            contiguous: committed.is_some(),
            rewind: None,
            rewinds: 0,
            redelivered: 0,
            committed,
            checkpoints_saved: 0,
            reported,
            unjudged_unlogged: (0, None),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// Position of the last message taken (the offset to commit after a checkpoint).
    pub fn position(&self) -> u64 {
        self.pipeline.position()
    }

    pub fn stats(&self) -> &PipelineStats {
        self.pipeline.stats()
    }

    /// What the topic carries.
    pub fn kind(&self) -> TopicKind {
        self.kind
    }

    /// The position last committed to the group (`None`: never).
    pub fn committed_position(&self) -> Option<u64> {
        self.committed
    }

    /// Add what was counted since the last report to `metrics` (called on the aggregator's timer
    /// and before the partition is given up, never per message).
    pub fn report(&mut self, metrics: &AggregateMetrics) {
        let (pipeline, checkpoints_before, redelivered_before) = &mut self.reported;
        let mut delta = pipeline.delta(&self.pipeline);
        delta.checkpoints = self.checkpoints_saved - *checkpoints_before;
        delta.redelivered = self.redelivered - *redelivered_before;
        metrics.add_partition_delta(self.kind, &delta);
        (*checkpoints_before, *redelivered_before) = (self.checkpoints_saved, self.redelivered);
        let (unlogged, logged_at) = &mut self.unjudged_unlogged;
        *unlogged += delta.unjudged;
        if *unlogged > 0 && logged_at.is_none_or(|t| t.elapsed() >= UNJUDGED_WARN_EVERY) {
            tracing::warn!(
                topic = %self.topic,
                partition = self.partition,
                events = *unlogged,
                allowed_disorder_secs = self.pipeline.config().windows.allowed_disorder / edgelens_schemas::time::NANOS_PER_SEC,
                "events more than the allowed disorder behind the time of the partition's latest events were counted but not judged for attacks (a late batch, a producer that stalled); --allowed-disorder widens the margin"
            );
            *unlogged = 0;
            *logged_at = Some(Instant::now());
        }
    }

    fn sink_err(&self) -> impl FnOnce(SinkError) -> PartitionError + '_ {
        move |source| PartitionError::Sink { topic: self.topic.clone(), partition: self.partition, source }
    }

    fn ckpt_err(&self) -> impl FnOnce(CheckpointError) -> PartitionError + '_ {
        move |source| PartitionError::Checkpoint { topic: self.topic.clone(), partition: self.partition, source }
    }

    /// Take the message at `offset`. Messages before the current position (redelivered after a
    /// seek) are skipped: they are already counted.
    ///
    /// A message *after* the next expected offset means the broker skipped messages: tansu 0.6
    /// answers a fetch from an offset inside a record batch with the *next* batch. Then nothing
    /// is counted and [`Taken::Rewind`] asks the caller to seek back (exponentially further) until
    /// the expected offset is delivered. Only when messages before the expected offset arrive and
    /// the next one is still beyond it is the gap real (compaction, aborted transactions) and
    /// accepted.
    pub fn take(&mut self, offset: i64, payload: &[u8], name: Option<MessageName<'_>>) -> Result<Taken, PartitionError> {
        self.at_end = false;
        if offset < 0 {
            return Ok(Taken::Done);
        }
        let offset = offset as u64;
        let expected = self.pipeline.position();
        if offset < expected {
            // Only a seek back of ours brings offsets before the position (the client drops the
            // ones of a fetched batch before the offset asked for). Unasked, the partition's
            // offsets started again — a recreated topic, a broker that lost its storage — and the
            // client, finding the position out of range, went back to its start: these are new
            // messages, which skipping as counted would lose.
            //
            // Except that a broker may answer a fetch with a whole record batch from before the
            // position (tansu on `s3` storage, after it reported an end below the records it
            // holds): a message of edgelens' producers remembered by its id is one of those,
            // already counted, and is skipped.
            let Some(r) = self.rewind.as_mut() else {
                if self.kind == TopicKind::Events && name.is_some_and(|n| self.pipeline.remembers_message(payload, n)) {
                    self.redelivered += 1;
                    // Whole batches come again: say so once per thousand.
                    if self.redelivered % 1000 == 1 {
                        tracing::warn!(topic = %self.topic, partition = self.partition, position = expected, offset, skipped = self.redelivered, "the broker delivered messages from before the position again, unasked; skipped, their ids show they were counted");
                    }
                    return Ok(Taken::Done);
                }
                return Err(PartitionError::OffsetsRestarted { topic: self.topic.clone(), partition: self.partition, position: expected, offset });
            };
            r.saw_before = true;
            return Ok(Taken::Done);
        }
        if offset > expected && self.contiguous {
            match self.rewind {
                Some(r) if r.saw_before || r.seek_to == 0 => {
                    tracing::warn!(topic = %self.topic, partition = self.partition, expected, offset, "offsets missing from the partition; going on from the next one");
                }
                _ => {
                    let back = self.rewind.map_or(64, |r| r.back.saturating_mul(4));
                    let seek_to = expected.saturating_sub(back);
                    self.rewind = Some(Rewind { back, seek_to, saw_before: false });
                    self.fetch_start = seek_to;
                    self.rewinds += 1;
                    tracing::debug!(topic = %self.topic, partition = self.partition, expected, offset, seek_to, "broker skipped offsets; seeking back");
                    return Ok(Taken::Rewind(seek_to));
                }
            }
        }
        self.rewind = None;
        self.contiguous = true;
        let position = offset + 1;
        self.input_since_timer = true;
        self.idle_closed = false;
        let res = match self.kind {
            TopicKind::Events => self.pipeline.push_message_at(payload, name, &self.dl_source, offset, now_nanos, position),
            TopicKind::DeadLetters => self.pipeline.push_dead_letter(Record::parse_dead_letter(payload, offset), position),
        };
        res.map_err(self.sink_err())?;
        Ok(Taken::Done)
    }

    /// Seeks back asked for so far (broker skipped offsets).
    pub fn rewinds(&self) -> u64 {
        self.rewinds
    }

    /// Messages before the position delivered unasked and skipped as already counted (known by
    /// their ids).
    pub fn redelivered(&self) -> u64 {
        self.redelivered
    }

    /// Take the consumer's latest [`EndReport`]. It counts only if it was made after the last
    /// message taken: a message taken after it has an offset at or past what it says was handed
    /// over (or, when nothing was, nothing was taken since the consumer was told where to fetch
    /// from). While a seek back is pending ([`Taken::Rewind`]) nothing counts: the message that asked for
    /// it was handed over, not taken, and the offsets before it are still unread.
    pub fn end_report(&mut self, report: EndReport) {
        let position = self.pipeline.position();
        let current = match report.handed {
            Some(handed) => handed >= position,
            None => position == self.fetch_start,
        };
        self.at_end = current && self.rewind.is_none() && report.reached.is_some_and(|end| report.handed.unwrap_or(position) >= end);
    }

    /// The consumer was last seen at the partition's end, after the last message taken.
    pub fn consumer_at_end(&self) -> bool {
        self.at_end
    }

    /// Run the timers: flush closed windows, close an idle partition's windows. Returns true when
    /// a checkpoint is due (the caller checkpoints and commits).
    pub fn on_timer(&mut self, now: Instant) -> Result<bool, PartitionError> {
        if std::mem::take(&mut self.input_since_timer) {
            self.last_input = now;
        }
        let quiet = now.duration_since(self.last_input);
        if !self.idle_closed && quiet >= self.cfg.idle_timeout && (self.at_end || quiet >= self.cfg.idle_timeout * IDLE_WITHOUT_END_FACTOR) {
            if self.pipeline.position() != self.checkpointed {
                // Checkpoint first (with the windows still open): every write at a position must
                // come after that position's checkpoint, so that whoever resumes there can discard
                // it and derive it again. The idle close happens at the next timer.
                return Ok(true);
            }
            // (Nothing was ever taken at position 0: nothing is open, nothing to warn about.)
            if !self.at_end && self.pipeline.position() > 0 {
                tracing::warn!(topic = %self.topic, partition = self.partition, quiet_ms = u64::try_from(quiet.as_millis()).unwrap_or(u64::MAX), position = self.pipeline.position(), "partition quiet without its consumer reporting the end; closing its windows");
            }
            self.pipeline.close_idle();
            self.idle_closed = true;
            self.last_flush = now;
            self.pipeline.flush().map_err(self.sink_err())?;
            // Replace the checkpoint at this position by the closed state, flagged so that whoever
            // resumes here keeps the idle close's rows (a crash before this point discards them
            // and resumes with the windows open, which is just as exact).
            let state = self.pipeline.checkpoint().map_err(self.sink_err())?;
            self.save(self.checkpointed, true, &state)?;
            return Ok(false);
        }
        if now.duration_since(self.last_flush) >= self.cfg.flush_interval {
            self.last_flush = now;
            self.pipeline.tick().map_err(self.sink_err())?;
            if self.pipeline.pending_rows() > 0 {
                self.pipeline.flush().map_err(self.sink_err())?;
            }
        }
        Ok(self.pipeline.position() != self.checkpointed && now.duration_since(self.last_checkpoint) >= self.cfg.checkpoint_interval)
    }

    /// Flush and save the open state; returns the position to commit to the group, or `None`
    /// when nothing was taken since the last checkpoint.
    ///
    /// A position is checkpointed once: what happens at the same position afterwards (an idle
    /// close, a watermark advance) only re-derives rows from that checkpoint's state, and its sink
    /// writes (spans starting at that position) are discarded and redone by whoever resumes there.
    /// Saving a second, different state at the same position would make those writes ambiguous.
    pub fn checkpoint(&mut self, now: Instant) -> Result<Option<u64>, PartitionError> {
        let position = self.pipeline.position();
        if position == self.checkpointed {
            return Ok(None);
        }
        let state = self.pipeline.checkpoint().map_err(self.sink_err())?;
        self.save(position, false, &state)?;
        self.checkpointed = position;
        self.last_checkpoint = now;
        self.last_flush = now;
        Ok(Some(position))
    }

    fn save(&mut self, position: u64, idle_closed: bool, state: &[u8]) -> Result<(), PartitionError> {
        let mut body = Vec::with_capacity(state.len() + 1);
        body.push(u8::from(idle_closed));
        body.extend_from_slice(state);
        self.store
            .save(&self.source, self.partition, position, &body)
            .map_err(self.ckpt_err())?;
        self.checkpoints_saved += 1;
        Ok(())
    }

    /// The group committed `position`: other checkpoints are no longer needed (checkpoint and
    /// commit run one after the other on the aggregator's thread, so none is newer).
    pub fn committed(&mut self, position: u64) -> Result<(), PartitionError> {
        self.committed = Some(position);
        self.store
            .retain_only(&self.source, self.partition, position)
            .map_err(self.ckpt_err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_commit_a_partition_resumes_at_its_newest_checkpoint() {
        let at = |checkpoints: &[u64], end| resume_without_commit("t", 3, checkpoints, end);
        assert!(matches!(at(&[], 100), Ok(None)), "nothing checkpointed: from the beginning");
        assert!(matches!(at(&[0], 0), Ok(None)));
        assert!(matches!(at(&[40, 70], 100), Ok(Some(70))), "the newest");
        assert!(matches!(at(&[70], 70), Ok(Some(70))), "at the end");
        let e = at(&[40, 70], 12).unwrap_err();
        assert!(matches!(e, PartitionError::EndBelowCheckpoint { checkpoint: 70, end: 12, partition: 3, .. }), "{e}");
        assert!(e.to_string().contains("Nothing was discarded"), "{e}");
    }
}
