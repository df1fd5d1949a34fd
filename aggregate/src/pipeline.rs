//! The embedded pipeline: input lines → parse/validate → [`SiteWindows`] and [`AttackDetector`] →
//! [`RollupSink`], with dead letters for everything not counted. `edgelens replay` and `edgelens demo` both run it; the
//! distributed aggregator runs the same core per Kafka partition.
//!
//! Offsets: every input line gets the next offset of the pipeline's stream; a flush writes the rows
//! closed so far under the span `(last flushed offset, current offset]`. Flushes happen on row
//! counts and input position only (never on the wall clock) in batch mode, so replaying the same
//! input writes the same files.

use std::path::PathBuf;

use edgelens_ingest::dead_letter::{DeadLetter, DeadLetterCounts};
use edgelens_ingest::log::message_lines;
use edgelens_schemas::privacy::ClientIpPolicy;
pub use edgelens_ingest::dead_letter::now_nanos;
use edgelens_ingest::reader::{file_name, open_file, open_file_buffered, Line, LineReader, DEFAULT_MAX_LINE};
use edgelens_schemas::time::NANOS_PER_SEC;
use edgelens_schemas::{EdgeEvent, InvalidReason, Nanos};

use crate::checkpoint::{Dec, Enc};
use crate::detect::{AttackDetector, DetectorConfig, InputEnd};
use crate::error::{PipelineError, SinkError};
use crate::sink::{OffsetSpan, ReplayFile, ReplayRun, RollupSink, SinkBatch};
use crate::sites::HostSites;
use crate::windows::{Observed, SiteWindows, WindowConfig};

/// Lines between two watermark checks.
const ADVANCE_EVERY: u64 = 1024;

/// How an `edge-requests` message is named for deduplication (see [`edgelens_ingest::log`]).
#[derive(Debug, Clone, Copy)]
pub struct MessageName<'a> {
    /// The message's key (its site).
    pub key: &'a [u8],
    /// Its [`edgelens_ingest::log::MESSAGE_ID_HEADER`].
    pub id: &'a [u8],
    /// Whether it is sent again ([`edgelens_ingest::log::RESEND_HEADER`]).
    pub resend: bool,
}

/// A line parsed: the event, or why it is rejected and its excerpt.
type Parsed<'a> = Result<EdgeEvent<'a>, (InvalidReason, &'a [u8])>;

/// A line with what it parses to.
fn parse(line: Line<'_>) -> (Line<'_>, Parsed<'_>) {
    let parsed = line.parse();
    (line, parsed)
}

#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub windows: WindowConfig,
    /// Longest accepted input line.
    pub max_line: usize,
    /// Flush once this many closed rows and dead letters are pending.
    pub flush_rows: usize,
    /// Source name used in offset spans (file names).
    pub source: String,
    pub partition: i32,
    /// What of client addresses reaches the windows (and so storage) and dead-letter excerpts.
    pub client_ip: ClientIpPolicy,
    /// Attack detection (`incidents`, `incident_timeline`); `None` turns it off.
    pub detector: Option<DetectorConfig>,
    /// The registered sites that lines without `ZoneName` are counted under (by host).
    pub sites: HostSites,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            windows: WindowConfig::default(),
            max_line: DEFAULT_MAX_LINE,
            flush_rows: 200_000,
            source: "replay".into(),
            partition: 0,
            client_ip: ClientIpPolicy::Keep,
            detector: Some(DetectorConfig::default()),
            sites: HostSites::default(),
        }
    }
}

/// Counters of one pipeline run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineStats {
    /// Input messages: a line of a file, a message of a topic (an events message may hold several
    /// lines).
    pub messages: u64,
    /// Non-blank input lines.
    pub lines: u64,
    /// Events counted in the rollups (on time or late).
    pub counted: u64,
    /// Of those, counted as late delta rows.
    pub late: u64,
    /// Of the counted events, those the attack detector did not judge: more than its allowed
    /// disorder behind the stream's clock (see [`crate::detect`]).
    pub unjudged: u64,
    /// Redelivered events (same RayID), and lines of resent messages taken before, not counted
    /// again.
    pub duplicates: u64,
    pub dead_letters: DeadLetterCounts,
    /// Upstream dead letters whose reason code this build does not know (not in `dead_letters`).
    pub unknown_dead_letters: u64,
    pub rows_written: u64,
    pub flushes: u64,
}

pub struct EmbeddedPipeline<S> {
    cfg: PipelineConfig,
    windows: SiteWindows,
    detector: Option<AttackDetector>,
    sink: S,
    pending: SinkBatch,
    /// Offset of the last line taken (lines are numbered from 1 in spans; 0 = nothing yet).
    offset: u64,
    flushed_to: u64,
    stats: PipelineStats,
    /// Events up to this time are within `max_future` of the clock as last read: only a later
    /// event reads the clock (through the `now` of the lines) to move it.
    future_limit: Nanos,
}

impl<S: RollupSink> EmbeddedPipeline<S> {
    pub fn new(cfg: PipelineConfig, sink: S) -> Self {
        Self {
            windows: SiteWindows::new(cfg.windows),
            detector: detector_for(&cfg).map(AttackDetector::new),
            cfg,
            sink,
            pending: SinkBatch::default(),
            offset: 0,
            flushed_to: 0,
            stats: PipelineStats::default(),
            future_limit: Nanos::MIN,
        }
    }

    pub fn stats(&self) -> &PipelineStats {
        &self.stats
    }

    pub fn config(&self) -> &PipelineConfig {
        &self.cfg
    }

    pub fn windows(&self) -> &SiteWindows {
        &self.windows
    }

    pub fn detector(&self) -> Option<&AttackDetector> {
        self.detector.as_ref()
    }

    pub fn sink(&self) -> &S {
        &self.sink
    }

    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    /// Take one input line. `source`/`line_no` identify it in dead letters; `now` stamps them.
    pub fn push_line(&mut self, line: Line<'_>, source: &str, line_no: u64, now: Nanos) -> Result<(), SinkError> {
        self.push_parsed_at(std::iter::once(parse(line)), None, source, line_no, || now, self.offset + 1)
    }

    /// Take the events of one `edge-requests` message (NDJSON, see
    /// [`edgelens_ingest::log::message_lines`]) at stream `position` (for Kafka: its offset + 1,
    /// so the position after it is the offset to commit); its dead letters are numbered `line_no`.
    ///
    /// A named message is remembered by its key, its id and its newest event not in the future,
    /// for as long as that event is within the lateness horizon (as RayIDs are). A resent one
    /// remembered under any minute of its events is a redelivery: its lines count as duplicates
    /// only, and none is recorded as a dead letter again.
    pub fn push_message_at(&mut self, value: &[u8], name: Option<MessageName<'_>>, source: &str, line_no: u64, now: impl Fn() -> Nanos, position: u64) -> Result<(), SinkError> {
        let lines = message_lines(value).map(Line::Complete);
        let Some(name) = name.filter(|n| n.resend && self.cfg.windows.dedup_ray_ids) else {
            return self.push_parsed_at(lines.map(parse), name, source, line_no, now, position);
        };
        // Resent (rare): look at its events before counting any.
        let parsed: Vec<(Line<'_>, Parsed<'_>)> = lines.map(parse).collect();
        if self.remembers_parsed(&parsed, name) {
            let before = self.begin_message(position);
            let n = parsed.len() as u64;
            self.stats.lines += n;
            self.stats.duplicates += n;
            self.windows.count_duplicates(n);
            return self.tick_every(before);
        }
        self.push_parsed_at(parsed.into_iter(), Some(name), source, line_no, now, position)
    }

    /// Whether the message `value` named `name` was taken before: remembered by its key and id
    /// under a minute of its events (see [`Self::push_message_at`]; never without RayID
    /// deduplication, which keeps that memory).
    pub fn remembers_message(&self, value: &[u8], name: MessageName<'_>) -> bool {
        if !self.cfg.windows.dedup_ray_ids {
            return false;
        }
        let parsed: Vec<(Line<'_>, Parsed<'_>)> = message_lines(value).map(Line::Complete).map(parse).collect();
        self.remembers_parsed(&parsed, name)
    }

    fn remembers_parsed(&self, parsed: &[(Line<'_>, Parsed<'_>)], name: MessageName<'_>) -> bool {
        let times = parsed.iter().filter_map(|(_, p)| p.as_ref().ok()).map(|ev| ev.ts);
        let span = times.clone().min().zip(times.max());
        span.is_some_and(|(from, to)| self.windows.remembers_message(from, to, name.key, name.id))
    }

    /// Take the lines of one input message at `position`; positions must increase; a `named`
    /// message is remembered by its newest event not in the future. The watermark is checked
    /// only between messages (whenever the line count crosses a multiple of `ADVANCE_EVERY`), so
    /// a flush never splits a message. `now` is read only for dead letters and future events.
    fn push_parsed_at<'a>(
        &mut self,
        lines: impl Iterator<Item = (Line<'a>, Parsed<'a>)>,
        named: Option<MessageName<'_>>,
        source: &str,
        line_no: u64,
        now: impl Fn() -> Nanos,
        position: u64,
    ) -> Result<(), SinkError> {
        let before = self.begin_message(position);
        let mut newest: Option<Nanos> = None;
        for (line, parsed) in lines {
            if let Some(ts) = self.take_parsed(line, parsed, source, line_no, &now) {
                newest = newest.max(Some(ts));
            }
        }
        if let (Some(n), Some(ts)) = (named, newest) {
            self.windows.remember_message(ts, n.key, n.id);
        }
        self.tick_every(before)
    }

    /// Take the next input message at `position` (positions must increase); the line count
    /// before it.
    fn begin_message(&mut self, position: u64) -> u64 {
        debug_assert!(position > self.offset, "positions increase");
        self.offset = position;
        self.stats.messages += 1;
        self.stats.lines
    }

    /// Check the watermark when the line count crossed a multiple of `ADVANCE_EVERY` since
    /// `lines_before`.
    fn tick_every(&mut self, lines_before: u64) -> Result<(), SinkError> {
        if self.stats.lines / ADVANCE_EVERY != lines_before / ADVANCE_EVERY {
            self.tick()?;
        }
        Ok(())
    }

    /// Whether an event at `ts` is further ahead of the clock than `max_future` allows; reads
    /// the clock only for events past the limit computed at the last read.
    fn in_future(&mut self, ts: Nanos, now: &impl Fn() -> Nanos) -> Option<InvalidReason> {
        if ts <= self.future_limit {
            return None;
        }
        let now = now();
        self.future_limit = self.cfg.windows.future_limit(now);
        (ts > self.future_limit).then(|| InvalidReason::FutureTimestamp { ahead: ts - now, limit: self.cfg.windows.max_future })
    }

    /// Count one parsed line, or keep it as a dead letter; the time of its event unless it has
    /// none or is in the future.
    fn take_parsed(&mut self, line: Line<'_>, parsed: Parsed<'_>, source: &str, line_no: u64, now: &impl Fn() -> Nanos) -> Option<Nanos> {
        self.stats.lines += 1;
        let ts = parsed.as_ref().ok().map(|ev| ev.ts);
        let rejected = match parsed {
            Err(rejected) => Some(rejected),
            Ok(ev) if let Some(reason) = self.in_future(ev.ts, now) => {
                self.reject(reason, line.raw(), source, line_no, now);
                return None;
            }
            Ok(mut ev) => {
                ev.client_ip = self.cfg.client_ip.apply(ev.client_ip);
                self.cfg.sites.apply(&mut ev);
                match self.windows.observe(&ev) {
                    Ok(observed @ (Observed::Counted | Observed::Late)) => {
                        self.stats.counted += 1;
                        self.stats.late += u64::from(observed == Observed::Late);
                        if let Some(d) = &mut self.detector {
                            self.stats.unjudged += u64::from(!d.observe_at(&ev, self.windows.event_time()));
                        }
                        None
                    }
                    Ok(Observed::Duplicate) => {
                        self.stats.duplicates += 1;
                        None
                    }
                    Err(reason) => Some((reason, line.raw())),
                }
            }
        };
        if let Some((reason, raw)) = rejected {
            self.reject(reason, raw, source, line_no, now);
        }
        ts
    }

    /// Keep a line as a dead letter.
    fn reject(&mut self, reason: InvalidReason, raw: &[u8], source: &str, line_no: u64, now: &impl Fn() -> Nanos) {
        self.stats.dead_letters.add(reason.code());
        let mut dead = DeadLetter::new(now(), source, line_no, &reason, raw);
        dead.raw = self.cfg.client_ip.redact(&dead.raw);
        self.pending.dead_letters.push(dead);
    }

    /// Take a dead letter rejected upstream (e.g. by the ingest receiver) at stream `position`:
    /// it goes to the `dead_letters` table like the pipeline's own.
    pub fn push_dead_letter(&mut self, mut dead: DeadLetter, position: u64) -> Result<(), SinkError> {
        debug_assert!(position > self.offset, "positions increase");
        dead.raw = self.cfg.client_ip.redact(&dead.raw);
        self.offset = position;
        self.stats.messages += 1;
        self.stats.lines += 1;
        if edgelens_schemas::InvalidReason::CODES.contains(&dead.reason) {
            self.stats.dead_letters.add(dead.reason);
        } else {
            self.stats.unknown_dead_letters += 1;
        }
        self.pending.dead_letters.push(dead);
        self.flush_if_full()
    }

    /// Position of the last input taken (0 = none).
    pub fn position(&self) -> u64 {
        self.offset
    }

    /// Rows and dead letters waiting for the next flush.
    pub fn pending_rows(&self) -> usize {
        self.pending.rows()
    }

    /// The input went quiet: close every open window (see [`SiteWindows::close_idle`]).
    pub fn close_idle(&mut self) {
        let closed = self.windows.close_idle();
        self.pending.closed.append(closed);
        // The detector judges its open seconds too (a quiet partition must not hold back the
        // end of an attack); events for them that still arrive are late for detection only.
        if let Some(d) = &mut self.detector {
            d.finish();
        }
        self.take_detector_output();
    }

    /// Flush everything closed, then return the open state at [`Self::position`]: with the sinks'
    /// rows up to here, it is everything needed to resume after this position.
    pub fn checkpoint(&mut self) -> Result<Vec<u8>, SinkError> {
        self.tick()?;
        self.flush()?;
        let mut e = Enc::new();
        e.bytes(&self.windows.encode_state());
        match &self.detector {
            Some(d) => {
                e.u8(1);
                e.bytes(&d.encode_state());
            }
            None => e.u8(0),
        }
        Ok(e.into_bytes())
    }

    /// Resume at `position` from a [`Self::checkpoint`] state (`None`: start empty).
    pub fn restore(cfg: PipelineConfig, sink: S, position: u64, state: Option<&[u8]>) -> Result<Self, String> {
        let (windows, detector_state) = match state {
            Some(bytes) => {
                let mut d = Dec::new(bytes);
                let windows = SiteWindows::decode_state(cfg.windows, d.bytes()?)?;
                let detector = if d.u8()? == 1 { Some(d.bytes()?) } else { None };
                (windows, detector)
            }
            None => (SiteWindows::new(cfg.windows), None),
        };
        // A checkpoint without detector state (older, or detection was off) starts detection
        // afresh; detector state without detection configured is dropped.
        let detector = match (detector_for(&cfg), detector_state) {
            (Some(dc), Some(bytes)) => Some(AttackDetector::decode_state(dc, bytes)?),
            (Some(dc), None) => Some(AttackDetector::new(dc)),
            (None, _) => None,
        };
        Ok(Self {
            windows,
            detector,
            cfg,
            sink,
            pending: SinkBatch::default(),
            offset: position,
            flushed_to: position,
            stats: PipelineStats::default(),
            future_limit: Nanos::MIN,
        })
    }

    /// Close the windows the watermark has passed; flush when enough rows are pending.
    pub fn tick(&mut self) -> Result<(), SinkError> {
        match self.windows.watermark() {
            Some(wm) => self.advance_to(wm),
            None => self.flush_if_full(),
        }
    }

    /// Advance to an external watermark (e.g. wall clock − disorder for a live source that went
    /// quiet), then flush when enough rows are pending.
    pub fn advance_to(&mut self, watermark: Nanos) -> Result<(), SinkError> {
        let closed = self.windows.advance(watermark);
        self.pending.closed.append(closed);
        self.take_detector_output();
        self.flush_if_full()
    }

    fn take_detector_output(&mut self) {
        if let Some(d) = self.detector.as_mut().filter(|d| d.pending_rows() > 0) {
            self.pending.incidents.append(d.take_output());
        }
    }

    /// Flush once `flush_rows` rows are pending.
    fn flush_if_full(&mut self) -> Result<(), SinkError> {
        if self.pending.rows() >= self.cfg.flush_rows {
            self.flush()?;
        }
        Ok(())
    }

    /// Write everything pending (closed windows and dead letters) under the span of input taken
    /// since the previous flush.
    pub fn flush(&mut self) -> Result<(), SinkError> {
        self.take_detector_output();
        if self.pending.is_empty() {
            // Nothing to write for this span, but the next span starts here: every span starts
            // at the previous flush position, which a checkpoint relies on (spans starting at or
            // after a checkpoint are exactly the ones written after it).
            self.flushed_to = self.offset;
            return Ok(());
        }
        let span = OffsetSpan::new(&self.cfg.source, self.cfg.partition, self.flushed_to, self.offset);
        self.sink.write(&self.pending, &span)?;
        self.stats.rows_written += self.pending.rows() as u64;
        self.stats.flushes += 1;
        self.flushed_to = self.offset;
        self.pending = SinkBatch::default();
        Ok(())
    }

    /// End of input: close every window, flush, and hand back the sink. An incident still under
    /// attack stays active ([`InputEnd::Data`]).
    pub fn finish(mut self) -> Result<(PipelineStats, S), SinkError> {
        self.close_all_and_flush(InputEnd::Data)?;
        Ok((self.stats, self.sink))
    }

    /// [`Self::finish`] for an input whose traffic stops with it (the demo's generator): every
    /// incident has ended.
    pub fn finish_traffic(mut self) -> Result<(PipelineStats, S), SinkError> {
        self.close_all_and_flush(InputEnd::Traffic)?;
        Ok((self.stats, self.sink))
    }

    /// Close every window and flush (what [`Self::finish`] does before handing the sink back).
    fn close_all_and_flush(&mut self, end: InputEnd) -> Result<(), SinkError> {
        let closed = self.windows.close_all();
        self.pending.closed.append(closed);
        if let Some(d) = &mut self.detector {
            d.end(end);
        }
        self.flush()?;
        let ws = self.windows.stats();
        debug_assert_eq!(ws.counted + ws.late, self.stats.counted);
        Ok(())
    }
}

/// The detector settings of a pipeline: its seconds close behind the windows' allowed disorder.
fn detector_for(cfg: &PipelineConfig) -> Option<DetectorConfig> {
    cfg.detector.clone().map(|mut d| {
        d.allowed_disorder = cfg.windows.allowed_disorder;
        d
    })
}

/// Progress of a replay, reported every few thousand lines.
#[derive(Debug, Clone, Copy)]
pub struct ReplayProgress {
    /// Bytes read from disk so far, over all files (compressed bytes for gzip).
    pub bytes_read: u64,
    pub bytes_total: u64,
    pub lines: u64,
}

/// Run files through the embedded pipeline into `sink` as one stream, merged by event time: the
/// file whose newest event read so far is the oldest is read next ([`MERGE_SLACK`] at a time), and
/// a file joins the merge when event time reaches its first event. Files of the same hours (one
/// per zone, as Logpush writes them) interleave as their events did, instead of a file being read
/// whole behind the others' event time (its events too late); files of successive periods are
/// read one after the other. At most [`MERGE_OPEN_FILES`] files are read at once. A file given
/// twice (the same bytes under any name) is read once.
///
/// Replays are recorded in the sink ([`ReplayRun`]); a file is known by its bytes (so a renamed
/// copy is the same file). A replay whose files include every file of an
/// earlier replay replaces it — the earlier writes are removed once this replay succeeded — so
/// replaying a file set again, or with files added, counts nothing twice; a replay including only
/// some files of an earlier one is refused before it writes anything, naming the files it leaves
/// out.
pub fn replay_files<S: RollupSink>(
    paths: &[PathBuf],
    mut cfg: PipelineConfig,
    sink: S,
    mut progress: impl FnMut(ReplayProgress),
) -> Result<(PipelineStats, S), PipelineError> {
    let max_line = cfg.max_line;
    let now = now_nanos();
    let (inputs, legacy) = survey_inputs(paths, max_line, &cfg.windows, now)?;
    // Of the files read (one given twice is read once).
    let bytes_total = inputs.iter().filter_map(|i| std::fs::metadata(&i.path).ok()).map(|m| m.len()).sum();
    let jump = cfg.windows.jump();
    // Events further ahead are dead letters (`future_timestamp`): they move no event time.
    let future_limit = cfg.windows.future_limit(now);
    // Lake file names derive from the source and the line span: the input set's fingerprint in
    // the source gives each set names of its own.
    let legacy_source = format!("{}-{legacy:016x}", cfg.source);
    let earlier = sink.replay_runs()?;
    // The same file set replayed before (or a replay of it that died) keeps its writes until this
    // run succeeded: this run writes under a source of its own (`…-r2`, `…-r3`, the first free).
    let set = format!("{}-{:016x}", cfg.source, set_fingerprint(&inputs));
    let source = std::iter::once(set.clone())
        .chain((2u32..).map(|n| format!("{set}-r{n}")))
        .find(|s| earlier.iter().all(|r| r.source != *s))
        .expect("a free source");
    let run = ReplayRun { source, files: inputs.iter().map(|i| ReplayFile { name: file_name(&i.path), identity: i.identity.clone() }).collect() };
    cfg.source = run.source.clone();
    let partition = cfg.partition;
    let mut pipeline = EmbeddedPipeline::new(cfg, sink);
    let sink = pipeline.sink_mut();
    let replaced: Vec<String> = replaced_runs(&earlier, &run)?;
    // Recorded before anything is written, so the writes of a replay that dies half-way are found
    // and replaced by the next replay including its files.
    sink.record_replay_run(&run)?;
    // Writes under this run's source not recorded as a run (left by a replay that died between
    // recording its run and forgetting it): never this run's, which writes them afresh.
    let removed = sink.discard_after(&run.source, partition, 0, false)?;
    if removed > 0 {
        tracing::info!(source = %run.source, writes = removed, "removed writes of an unrecorded replay under this replay's name");
    }
    let mut read_all = || -> Result<(), PipelineError> {
        let mut merge = Merge::new(&inputs, max_line);
        let mut reported = 0;
        while let Some(bound) = merge.next_file()? {
            let reading = merge.reading();
            let input_err = |source| PipelineError::Input { path: reading.path.clone(), source };
            let mut taken = 0;
            while taken < MERGE_BATCH {
                let Some((line_no, line)) = reading.lines.next_numbered().map_err(input_err)? else {
                    reading.done = true;
                    break;
                };
                let (line, parsed) = parse(line);
                let ts = parsed.as_ref().ok().map(|ev| ev.ts).filter(|&ts| ts <= future_limit);
                if let Some(ts) = ts {
                    // The file's event time as this event would move it (an outlier far ahead
                    // does not, as in the windows): past the bound, the other files go first,
                    // and this line waits to be read again.
                    let mut clock = reading.clock;
                    clock.note(ts, jump);
                    // Before the file's event time starts (its first events), the event's own,
                    // unless it is far ahead of where the file starts (an outlier: taken now).
                    let start = reading.first_ts.unwrap_or(ts);
                    let at = clock.time().unwrap_or(if ts > start.saturating_add(jump) { start } else { ts });
                    if at > bound {
                        // A line with an event time is a complete line: it can be read again.
                        let _ = (line, parsed);
                        let again = reading.lines.unread();
                        debug_assert!(again, "a complete line is kept");
                        reading.waiting = Some(at);
                        break;
                    }
                    reading.clock = clock;
                }
                reading.waiting = None;
                let position = pipeline.offset + 1;
                pipeline.push_parsed_at(std::iter::once((line, parsed)), None, &reading.source, line_no, || now, position)?;
                taken += 1;
            }
            if pipeline.stats.lines >= reported + 65_536 {
                reported = pipeline.stats.lines;
                progress(ReplayProgress { bytes_read: merge.bytes_read(), bytes_total, lines: pipeline.stats.lines });
            }
        }
        progress(ReplayProgress { bytes_read: merge.bytes_read(), bytes_total, lines: pipeline.stats.lines });
        Ok(())
    };
    // A replay that fails half-way (a truncated file, a full disk) takes back what it wrote: the
    // repaired input's replay might be another input set, which would not replace it. The final
    // flush is part of it. Earlier replays it would have replaced stay as they were.
    let outcome = read_all().and_then(|()| pipeline.close_all_and_flush(InputEnd::Data).map_err(PipelineError::from));
    let sink = pipeline.sink_mut();
    if let Err(cause) = outcome {
        let cause = Box::new(cause);
        return Err(match sink.discard_after(&run.source, partition, 0, false).and_then(|removed| sink.forget_replay_run(&run.source).map(|()| removed)) {
            Ok(removed) => PipelineError::Aborted { cause, removed },
            Err(discard) => PipelineError::AbortedPartly { cause, discard },
        });
    }
    // Done: the earlier replays of these files go (and one made before replays were recorded, of
    // the same files under the same names in the same order).
    let mut replace = || -> Result<u64, SinkError> {
        let mut removed = 0;
        for source in replaced.iter().chain([&legacy_source]) {
            removed += sink.discard_after(source, partition, 0, false)?;
            sink.forget_replay_run(source)?;
        }
        Ok(removed)
    };
    match replace() {
        Ok(removed) if removed > 0 => tracing::info!(source = %run.source, replaced = ?replaced, writes = removed, "removed the earlier replays of these files"),
        Ok(_) => {}
        Err(cause) => return Err(PipelineError::NotReplaced { replaced, cause }),
    }
    Ok((pipeline.stats, pipeline.sink))
}

/// An input file of a replay, surveyed before it is read.
#[derive(Debug)]
struct Input {
    path: PathBuf,
    /// XXH64 and length of its bytes as stored: `<hash>:<length>`.
    identity: String,
    /// The time of its first valid event.
    first_ts: Option<Nanos>,
}

/// How far (in event time) a file is read past the oldest other file's newest event before the
/// merge looks again: below the allowed disorder, so merging adds at most this much disorder.
pub const MERGE_SLACK: Nanos = NANOS_PER_SEC;

/// Lines read from one file before the merge looks again.
const MERGE_BATCH: usize = 4096;

/// Files read at once by the merge (file descriptors, and with many inputs about 400 KiB of
/// buffers each). When more overlap in time, the later ones wait for a file to end, and their
/// events may be too late: a warning says so.
pub const MERGE_OPEN_FILES: usize = 512;

/// With more inputs than this, each file is read with small buffers (about 400 KiB a file open).
const MERGE_SMALL_BUFFERS_FROM: usize = 8;

/// A file being read by the merge.
struct Reading {
    path: PathBuf,
    source: String,
    lines: LineReader<Box<dyn std::io::Read + Send>>,
    counter: edgelens_ingest::reader::ByteCounter,
    /// Its event time as its events read so far moved it.
    clock: crate::windows::EventClock,
    /// The event time its next line (read, then given back) will move it to.
    waiting: Option<Nanos>,
    /// Its first event's time (from the survey), before its event time starts.
    first_ts: Option<Nanos>,
    done: bool,
}

impl Reading {
    /// Where the file is in event time, for the merge to choose the one furthest behind.
    fn at(&self) -> Nanos {
        self.waiting.or(self.clock.time()).or(self.first_ts).unwrap_or(Nanos::MIN)
    }
}

/// The files of a replay, merged by event time (see [`replay_files`]).
struct Merge<'a> {
    inputs: &'a [Input],
    max_line: usize,
    /// The next input to open (inputs are in the order of their first events).
    next: usize,
    open: Vec<Reading>,
    /// The one being read.
    current: Option<usize>,
    bytes_done: u64,
    warned: bool,
}

impl<'a> Merge<'a> {
    fn new(inputs: &'a [Input], max_line: usize) -> Self {
        Merge { inputs, max_line, next: 0, open: Vec::new(), current: None, bytes_done: 0, warned: false }
    }

    /// Bytes read so far, over all files (compressed bytes for gzip).
    fn bytes_read(&self) -> u64 {
        self.bytes_done + self.open.iter().map(|r| r.counter.get()).sum::<u64>()
    }

    /// The file being read (after [`Merge::next_file`]).
    fn reading(&mut self) -> &mut Reading {
        &mut self.open[self.current.expect("a file chosen by next_file")]
    }

    /// Choose the file to read from next, and return the newest event time it may reach before
    /// the merge looks again; `None` when every file is read.
    fn next_file(&mut self) -> Result<Option<Nanos>, PipelineError> {
        if let Some(i) = self.current.take()
            && self.open[i].done
        {
            let r = self.open.remove(i);
            self.bytes_done += r.counter.get();
        }
        // Open the files event time has reached (a file without valid events at once).
        loop {
            let oldest = self.open.iter().map(Reading::at).min();
            let Some(input) = self.inputs.get(self.next) else { break };
            let due = match (input.first_ts, oldest) {
                (_, None) | (None, _) => true,
                (Some(first), Some(oldest)) => first <= oldest.saturating_add(MERGE_SLACK),
            };
            if !due {
                break;
            }
            if self.open.len() >= MERGE_OPEN_FILES {
                if !self.warned {
                    self.warned = true;
                    tracing::warn!(
                        open = MERGE_OPEN_FILES,
                        waiting = %input.path.display(),
                        "more input files overlap in time than are read at once: the later ones are read when others end, and their events may be too late"
                    );
                }
                break;
            }
            let path = input.path.clone();
            let small = self.inputs.len() > MERGE_SMALL_BUFFERS_FROM;
            let opened = if small { open_file_buffered(&path, 64 << 10) } else { open_file(&path) };
            let (reader, counter) = opened.map_err(|source| PipelineError::Input { path: path.clone(), source })?;
            let source = format!("replay:{}", file_name(&path));
            let lines = if small { LineReader::with_chunk(reader, self.max_line, 256 << 10) } else { LineReader::new(reader, self.max_line) };
            self.open.push(Reading { path, source, lines, counter, clock: Default::default(), waiting: None, first_ts: input.first_ts, done: false });
            self.next += 1;
        }
        // The file furthest behind in event time; ties go to the one opened first (given first).
        let Some((i, _)) = self.open.iter().enumerate().min_by_key(|(_, r)| r.at()) else { return Ok(None) };
        let others = self.open.iter().enumerate().filter(|&(j, _)| j != i).map(|(_, r)| r.at()).min();
        // A file waiting for room does not hold the others back.
        let pending = self.inputs.get(self.next).filter(|_| self.open.len() < MERGE_OPEN_FILES).and_then(|input| input.first_ts);
        let limit = others.into_iter().chain(pending).min();
        self.current = Some(i);
        Ok(Some(limit.map_or(Nanos::MAX, |t| t.saturating_add(MERGE_SLACK))))
    }
}

/// How much of a file's bytes, with its name and length, named its input set before replays
/// were recorded.
const LEGACY_HEAD: usize = 64 << 10;

/// Identify each input by its bytes (hashing them costs little next to reading them as events)
/// and order them by their first event (files without one first: they hold nothing to count);
/// ties keep the order given. Also, from the same read, how replays named the input set before
/// they were recorded: FNV-1a over each input's file name, length and first 64 KiB (as stored),
/// in the order given.
fn survey_inputs(paths: &[PathBuf], max_line: usize, windows: &WindowConfig, now: Nanos) -> Result<(Vec<Input>, u64), PipelineError> {
    use std::hash::Hasher;
    use std::io::Read;
    let mut inputs = Vec::with_capacity(paths.len());
    let mut legacy = crate::checkpoint::Fnv1a::new();
    for path in paths {
        let err = |source| PipelineError::Input { path: path.clone(), source };
        // A pipe, FIFO or terminal could be read only once (the second read counted nothing, or
        // waited for a writer for ever).
        if !std::fs::metadata(path).map_err(err)?.is_file() {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file: a replay reads each input twice (to know a replay of the same files again, then to count it); save the stream to a file first",
            )));
        }
        let mut file = std::fs::File::open(path).map_err(err)?;
        let mut hash = twox_hash::XxHash64::with_seed(0);
        let (mut len, mut raw_head) = (0u64, Vec::with_capacity(LEGACY_HEAD));
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(err(e)),
            };
            hash.write(&buf[..n]);
            len += n as u64;
            let room = LEGACY_HEAD - raw_head.len();
            raw_head.extend_from_slice(&buf[..n.min(room)]);
        }
        legacy.update(file_name(path).as_bytes());
        legacy.update(&len.to_le_bytes());
        legacy.update(&raw_head);
        let identity = format!("{:016x}:{len}", hash.finish());
        if let Some(same) = inputs.iter().find(|i: &&Input| i.identity == identity) {
            tracing::warn!(file = %path.display(), same_as = %same.path.display(), "the same file is given twice: it is read once");
            continue;
        }
        let first = first_events(path, max_line, windows, now);
        if first == FirstEvents::Empty {
            // Nothing to count or dead-letter: it takes no part in the replay (nor in its identity:
            // two empty files of other zones are the same bytes).
            tracing::debug!(file = %path.display(), "empty file: nothing to read");
            continue;
        }
        let first_ts = if let FirstEvents::At(ts) = first { Some(ts) } else { None };
        inputs.push(Input { path: path.clone(), identity, first_ts });
    }
    inputs.sort_by_key(|i| i.first_ts);
    Ok((inputs, legacy.finish()))
}

/// Where a file starts in event time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FirstEvents {
    /// Its event time starts here.
    At(Nanos),
    /// Lines, but no event to place it by (or it could not be read: that is found when it is).
    Unplaced,
    /// No line at all, read to its end.
    Empty,
}

/// Where a file starts in event time: its first events as its event time starts on them (see
/// [`crate::windows::EventClock`]: a first event far ahead, or in the future, does not place the
/// file, which would then wait behind every other), wherever they are in the file.
fn first_events(path: &std::path::Path, max_line: usize, windows: &WindowConfig, now: Nanos) -> FirstEvents {
    let Ok((reader, _)) = open_file(path) else { return FirstEvents::Unplaced };
    let mut lines = LineReader::new(reader, max_line);
    let future_limit = windows.future_limit(now);
    let (jump, mut clock, mut seen) = (windows.jump(), crate::windows::EventClock::default(), Vec::new());
    let mut any_line = false;
    loop {
        match lines.next_line() {
            Ok(Some(line)) => {
                any_line = true;
                let Ok(ev) = line.parse() else { continue };
                if ev.ts > future_limit {
                    continue;
                }
                seen.push(ev.ts);
                clock.note(ev.ts, jump);
                if let Some(t) = clock.time() {
                    return seen.iter().copied().filter(|&s| s >= t.saturating_sub(jump)).min().map_or(FirstEvents::Unplaced, FirstEvents::At);
                }
                if seen.len() >= 10_000 {
                    break;
                }
            }
            Ok(None) if !any_line => return FirstEvents::Empty,
            Ok(None) => break,
            Err(_) => return FirstEvents::Unplaced,
        }
    }
    seen.iter().copied().min().map_or(FirstEvents::Unplaced, FirstEvents::At)
}

/// The input set's fingerprint: whatever order and names its files were given in.
fn set_fingerprint(inputs: &[Input]) -> u64 {
    let mut ids: Vec<&str> = inputs.iter().map(|i| i.identity.as_str()).collect();
    ids.sort_unstable();
    let mut h = crate::checkpoint::Fnv1a::new();
    for id in ids {
        h.update(id.as_bytes());
        h.update(b"\n");
    }
    h.finish()
}

/// The earlier replays `run` replaces (every file of theirs is one of its files); an error when
/// one shares only some of its files with it.
fn replaced_runs(earlier: &[ReplayRun], run: &ReplayRun) -> Result<Vec<String>, PipelineError> {
    let ours: std::collections::HashSet<&str> = run.files.iter().map(|f| f.identity.as_str()).collect();
    let mut replaced = Vec::new();
    for r in earlier {
        let (inside, outside): (Vec<&ReplayFile>, Vec<&ReplayFile>) = r.files.iter().partition(|f| ours.contains(f.identity.as_str()));
        if inside.is_empty() {
            continue;
        }
        if !outside.is_empty() {
            let shared = run.files.iter().find(|f| f.identity == inside[0].identity).map_or(&inside[0].name, |f| &f.name);
            return Err(PipelineError::PartOfAnEarlierReplay {
                file: shared.clone(),
                left_out: outside.iter().map(|f| f.name.clone()).collect(),
            });
        }
        replaced.push(r.source.clone());
    }
    Ok(replaced)
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::memory::MemorySink;

    /// The clock of the test (2030-01-01).
    const NOW: Nanos = 1_893_456_000_000_000_000;

    fn line(ts: Nanos) -> String {
        format!(r#"{{"EdgeStartTimestamp":{ts},"ClientIP":"192.0.2.7","EdgeResponseStatus":200,"ZoneName":"a.example"}}"#)
    }

    /// Three unnamed events up to `ts` (at positions from `position`): event time starts (or
    /// jumps) there.
    fn event_time_at(p: &mut EmbeddedPipeline<MemorySink>, ts: Nanos, position: &mut u64) {
        for back in [20, 10, 0] {
            *position += 1;
            p.push_message_at(line(ts - back * NANOS_PER_SEC).as_bytes(), None, "t", 0, || NOW, *position).unwrap();
        }
    }

    fn name(id: &[u8], resend: bool) -> Option<MessageName<'_>> {
        Some(MessageName { key: b"a.example", id, resend })
    }

    /// Events behind the detector's seconds (here: events of one edge after one of its events
    /// 8 s ahead of them) are counted in the rollups and in `unjudged`: before, nothing but the
    /// rollups' counts said that the detector never saw them.
    #[test]
    fn events_the_detector_did_not_judge_are_counted_as_unjudged() {
        let mut p = EmbeddedPipeline::new(PipelineConfig::default(), MemorySink::default());
        let t0 = NOW - 3600 * NANOS_PER_SEC;
        let mut position = 0;
        event_time_at(&mut p, t0, &mut position);
        assert_eq!(p.stats().unjudged, 0);
        for ts in [t0 + 8 * NANOS_PER_SEC, t0 + NANOS_PER_SEC, t0 + NANOS_PER_SEC, t0 + 3 * NANOS_PER_SEC, t0 + 4 * NANOS_PER_SEC] {
            position += 1;
            p.push_message_at(line(ts).as_bytes(), None, "t", 0, || NOW, position).unwrap();
        }
        // The detector closed the seconds before t0 + 3 (8 s − the allowed disorder of 5 s).
        assert_eq!((p.stats().counted, p.stats().late, p.stats().unjudged), (3 + 5, 0, 2));
    }

    /// Regression: an event 300.5 s ahead of the clock read "300 s ahead", the limit itself.
    #[test]
    fn a_future_dead_letter_says_how_far_ahead_and_the_limit() {
        let mut p = EmbeddedPipeline::new(PipelineConfig::default(), MemorySink::default());
        assert!(p.in_future(NOW + 300 * NANOS_PER_SEC, &|| NOW).is_none());
        let reason = p.in_future(NOW + 300 * NANOS_PER_SEC + NANOS_PER_SEC / 2, &|| NOW).unwrap();
        assert_eq!(reason.to_string(), "event time 300.5 s ahead of the clock, past the allowed future of 300 s");
    }

    /// Regression: a message was remembered by the minute of its first event even when that was
    /// far in the future (a dead letter), so its id stayed in the dedup state for that long.
    #[test]
    fn a_message_is_remembered_by_its_newest_event_not_in_the_future() {
        let mut p = EmbeddedPipeline::new(PipelineConfig::default(), MemorySink::default());
        let t0 = NOW - 3600 * NANOS_PER_SEC;
        let mut position = 0;
        event_time_at(&mut p, t0, &mut position);
        let msg = format!("{}\n{}", line(NOW + 86_400 * NANOS_PER_SEC), line(t0));
        p.push_message_at(msg.as_bytes(), name(b"batch/0", false), "t", 0, || NOW, 4).unwrap();
        p.push_message_at(msg.as_bytes(), name(b"batch/0", true), "t", 0, || NOW, 5).unwrap();
        assert_eq!((p.stats().counted, p.stats().duplicates), (3 + 1, 2), "sent again, counted once");
        assert_eq!(p.stats().dead_letters.get("future_timestamp"), 1, "its dead letter recorded once");
        // 20 minutes of event time later the message's minute is past the horizon: nothing of it
        // is left.
        position = 5;
        event_time_at(&mut p, t0 + 1200 * NANOS_PER_SEC, &mut position);
        p.checkpoint().unwrap();
        assert_eq!(p.windows().remembered_ray_ids(), 0);
    }

    /// Regression: a message was remembered by the minute of its first event, so one starting with
    /// an event older than the horizon was forgotten at once, and its newer events counted again
    /// when it was resent.
    #[test]
    fn a_message_starting_with_an_old_event_is_remembered_by_its_newest() {
        let mut p = EmbeddedPipeline::new(PipelineConfig::default(), MemorySink::default());
        let t0 = NOW - 3600 * NANOS_PER_SEC;
        let mut position = 0;
        event_time_at(&mut p, t0 + 1200 * NANOS_PER_SEC, &mut position);
        // 12 minutes behind the newest event (a minute the horizon has left), then events at the
        // newest time.
        let msg = [line(t0 + 470 * NANOS_PER_SEC), line(t0 + 1200 * NANOS_PER_SEC), line(t0 + 1200 * NANOS_PER_SEC)].join("\n");
        p.push_message_at(msg.as_bytes(), name(b"batch/7", false), "t", 0, || NOW, 4).unwrap();
        p.checkpoint().unwrap();
        p.push_message_at(msg.as_bytes(), name(b"batch/7", true), "t", 0, || NOW, 5).unwrap();
        assert_eq!(p.stats().counted, 3 + 2, "the two newer events of the message, once");
        assert_eq!(p.stats().dead_letters.get("too_late"), 1, "the old event, once");
        assert_eq!(p.stats().duplicates, 3);
    }

    /// Regression: a resent message was looked up by its newest event not in the future, which
    /// depends on the clock: an event in the future when the message was first taken but no
    /// longer when it came again sent the lookup to another minute, and it counted twice.
    #[test]
    fn a_resent_message_is_recognised_whatever_the_clock_says_now() {
        let mut p = EmbeddedPipeline::new(PipelineConfig::default(), MemorySink::default());
        let mut position = 0;
        event_time_at(&mut p, NOW - 60 * NANOS_PER_SEC, &mut position);
        let ahead = NOW + p.cfg.windows.max_future + 20 * NANOS_PER_SEC;
        let msg = format!("{}\n{}", line(NOW - 50 * NANOS_PER_SEC), line(ahead));
        p.push_message_at(msg.as_bytes(), name(b"batch/3", false), "t", 0, || NOW, 4).unwrap();
        let later = NOW + 60 * NANOS_PER_SEC;
        p.push_message_at(msg.as_bytes(), name(b"batch/3", true), "t", 0, || later, 5).unwrap();
        assert_eq!((p.stats().counted, p.stats().duplicates), (3 + 1, 2), "the resent message counted nothing");
    }

    /// Equal batches sent on purpose count twice; an id counts per key.
    #[test]
    fn only_a_resent_message_taken_before_is_a_redelivery() {
        let mut p = EmbeddedPipeline::new(PipelineConfig::default(), MemorySink::default());
        let msg = line(NOW - 60 * NANOS_PER_SEC);
        p.push_message_at(msg.as_bytes(), name(b"b/0", false), "t", 0, || NOW, 1).unwrap();
        p.push_message_at(msg.as_bytes(), name(b"b/0", false), "t", 0, || NOW, 2).unwrap();
        assert_eq!(p.stats().counted, 2, "not resent: another batch that happens to be equal");
        let other_site = msg.replace("a.example", "b.example");
        p.push_message_at(other_site.as_bytes(), Some(MessageName { key: b"b.example", id: b"b/0", resend: true }), "t", 0, || NOW, 3).unwrap();
        assert_eq!(p.stats().counted, 3, "the same id under another key is another message");
        p.push_message_at(msg.as_bytes(), name(b"b/0", true), "t", 0, || NOW, 4).unwrap();
        assert_eq!((p.stats().counted, p.stats().duplicates), (3, 1));
    }
}
