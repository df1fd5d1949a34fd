//! The per-partition exactly-once protocol under crashes, without a broker: a partition's
//! messages are processed by a succession of aggregators, each killed at a random moment (some
//! right after saving a checkpoint they never committed), each successor resuming at the last
//! committed position. The merged tables must equal one uninterrupted run over the same input.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edgelens_aggregate::batches::{merged_groups, MergedGroup};
use edgelens_aggregate::checkpoint::CheckpointStore;
use edgelens_aggregate::partition::{EndReport, PartitionAggregator, PartitionConfig, Taken, TopicKind, IDLE_WITHOUT_END_FACTOR};
use edgelens_aggregate::pipeline::{EmbeddedPipeline, MessageName, PipelineConfig};
use edgelens_aggregate::sink::memory::MemorySink;
use edgelens_ingest::generate::{GenerateConfig, Scenario, TrafficGenerator};
use edgelens_ingest::log::message_lines;
use edgelens_ingest::reader::Line;
use edgelens_schemas::tables::{ASN_1M, DEAD_LETTERS, SITE_RATES_10S, TRAFFIC_1M};
use edgelens_schemas::TableDef;
use proptest::prelude::*;

/// The clock of the lines fed (2030-01-01): after every generated event, so none is in the future.
const NOW: i64 = 1_893_456_000_000_000_000;

type Tables = Vec<(&'static str, BTreeMap<Vec<String>, MergedGroup>, usize)>;

/// A partition's messages: generated Logpush lines, a few broken ones and a few redeliveries.
fn messages(seed: u64) -> Vec<Vec<u8>> {
    let cfg = GenerateConfig { scenario: Scenario::Mixed, seed, duration_secs: 150, rps: 120.0, sites: 15, ..GenerateConfig::default() };
    let mut g = TrafficGenerator::new(cfg).unwrap();
    let mut out = Vec::new();
    while g.next_second(&mut out).is_some() {}
    let mut msgs: Vec<Vec<u8>> = out.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect();
    let n = msgs.len();
    for i in (0..n).step_by(997) {
        msgs.insert(i, b"{\"EdgeStartTimestamp\": broken".to_vec());
    }
    for i in (500..msgs.len()).step_by(1009) {
        let again = msgs[i - 300].clone();
        msgs.insert(i, again);
    }
    msgs
}

/// The same lines as `edge-requests` messages of several events each (1 to 7 lines, `\n` or
/// `\r\n` between them, broken lines among them), plus messages with nothing to count.
fn packed(lines: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = lines;
    let mut n = 0;
    while !rest.is_empty() {
        let k = (n % 7 + 1).min(rest.len());
        let sep: &[u8] = if n % 5 == 0 { b"\r\n" } else { b"\n" };
        out.push(rest[..k].join(sep));
        rest = &rest[k..];
        n += 1;
        if n % 211 == 0 {
            out.push(if n % 2 == 0 { Vec::new() } else { b"\n\n".to_vec() });
        }
    }
    out
}

fn tables(sink: &MemorySink) -> Tables {
    [&SITE_RATES_10S, &TRAFFIC_1M, &ASN_1M]
        .into_iter()
        .map(|t: &TableDef| {
            let batches = sink.table(t.name);
            let rows = batches.iter().map(|b| b.num_rows()).sum();
            (t.name, merged_groups(t, &batches).unwrap(), rows)
        })
        .chain(std::iter::once((DEAD_LETTERS.name, BTreeMap::new(), sink.table(DEAD_LETTERS.name).iter().map(|b| b.num_rows()).sum())))
        .collect()
}

fn reference(msgs: &[Vec<u8>]) -> Tables {
    let mut p = EmbeddedPipeline::new(PipelineConfig::default(), MemorySink::default());
    for (i, m) in msgs.iter().enumerate() {
        for line in message_lines(m) {
            p.push_line(Line::Complete(line), "ref", i as u64, NOW).unwrap();
        }
    }
    let (_, sink) = p.finish().unwrap();
    tables(&sink)
}

fn cfg() -> PartitionConfig {
    PartitionConfig {
        pipeline: PipelineConfig { flush_rows: 300, ..PipelineConfig::default() },
        flush_interval: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(5),
        checkpoint_interval: Duration::from_secs(2),
    }
}

/// A crash: at message index `at`; `saved_uncommitted` = a checkpoint was saved just before, but
/// its commit never happened.
#[derive(Debug, Clone, Copy)]
struct Crash {
    at: usize,
    saved_uncommitted: bool,
}

type Part = PartitionAggregator<Arc<Mutex<MemorySink>>>;

/// One partition's sink and checkpoint store, shared by its successive owners.
struct Fixture {
    sink: Arc<Mutex<MemorySink>>,
    store: CheckpointStore,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self { sink: Arc::default(), store: CheckpointStore::open(dir.path()).unwrap(), _dir: dir }
    }

    /// A new owner of the partition, resuming at the group's committed position.
    fn resume(&self, committed: Option<u64>, cfg: PartitionConfig, clock: Instant) -> Part {
        PartitionAggregator::resume("grp", "edge-requests", 0, TopicKind::Events, committed, cfg, Arc::clone(&self.sink), self.store.clone(), clock).unwrap()
    }

    /// A first owner takes the first `n` messages, checkpoints, commits and stops; returns the
    /// committed position.
    fn first_owner(&self, msgs: &[Vec<u8>], n: usize, clock: Instant) -> u64 {
        let mut part = self.resume(None, cfg(), clock);
        for (i, m) in msgs.iter().enumerate().take(n) {
            assert_eq!(part.take(i as i64, m, None).unwrap(), Taken::Done);
        }
        let x = part.checkpoint(clock).unwrap().unwrap();
        part.committed(x).unwrap();
        x
    }

    fn tables(&self) -> Tables {
        tables(&self.sink.lock().unwrap())
    }

    /// Rows written to `site_rates_10s` so far.
    fn rate_rows(&self) -> usize {
        self.sink.lock().unwrap().table(SITE_RATES_10S.name).iter().map(|b| b.num_rows()).sum()
    }
}

/// Run a partition's timers at `clock`; a checkpoint that falls due is taken and committed, and
/// its position returned.
fn timer(part: &mut Part, clock: Instant) -> Option<u64> {
    if !part.on_timer(clock).unwrap() {
        return None;
    }
    let p = part.checkpoint(clock).unwrap().unwrap();
    part.committed(p).unwrap();
    Some(p)
}

/// Run `msgs` through successive aggregators, crashing as told; `pause_at` inserts a 6 s quiet
/// spell (idle close, then late deltas for the closed windows).
fn run_with_crashes(msgs: &[Vec<u8>], crashes: Vec<Crash>, pause_at: usize) -> (Tables, u64) {
    run_named_with_crashes(msgs, &[], crashes, pause_at)
}

/// [`run_with_crashes`] of messages named by `ids` (`edgelens-message-id`, and whether resent;
/// messages past its end have none).
fn run_named_with_crashes(msgs: &[Vec<u8>], ids: &[(Vec<u8>, bool)], mut crashes: Vec<Crash>, pause_at: usize) -> (Tables, u64) {
    crashes.sort_by_key(|c| c.at);
    crashes.dedup_by_key(|c| c.at);
    let fx = Fixture::new();
    let mut committed: Option<u64> = None;
    let mut clock = Instant::now();
    let mut discarded = 0;
    let mut crashes = crashes.into_iter().peekable();
    'owners: loop {
        let mut part = fx.resume(committed, cfg(), clock);
        discarded += part.discarded_writes;
        let start = committed.unwrap_or(0) as usize;
        for (i, m) in msgs.iter().enumerate().skip(start) {
            if crashes.peek().is_some_and(|c| c.at <= i) {
                let c = crashes.next().unwrap();
                if c.saved_uncommitted {
                    let _ = part.checkpoint(clock).unwrap();
                }
                continue 'owners; // killed: nothing else happens
            }
            clock += if i == pause_at { Duration::from_secs(6) } else { Duration::from_millis(7) };
            if i == pause_at {
                // The consumer had read everything there was: the next message came later.
                reached_end(&mut part);
            }
            // Timers run every 40 messages, and once the quiet spell is over (before its message).
            if (i % 40 == 0 || i == pause_at)
                && let Some(p) = timer(&mut part, clock)
            {
                committed = Some(p);
            }
            let name = ids.get(i).map(|(id, resend)| MessageName { key: b"", id, resend: *resend });
            assert_eq!(part.take(i as i64, m, name).unwrap(), Taken::Done);
        }
        // End of input: the partition goes idle, checkpoints, then closes everything.
        go_idle(&mut part, &mut clock, &mut committed);
        // The owner stops after that; a successor resuming there (and stopping before its own
        // idle timeout) keeps the idle close's rows.
        drop(part);
        let part = fx.resume(committed, cfg(), clock);
        discarded += part.discarded_writes;
        break;
    }
    assert_eq!(committed, Some(msgs.len() as u64));
    (fx.tables(), discarded)
}

/// The consumer reports that it has read everything up to the partition's current position and
/// that this is the partition's end.
fn reached_end(part: &mut Part) {
    let end = part.position();
    part.end_report(EndReport { reached: Some(end), handed: Some(end) });
}

/// Run the timers of a quiet partition: checkpoint (committed) before the idle close, then the
/// idle close itself.
fn go_idle(part: &mut Part, clock: &mut Instant, committed: &mut Option<u64>) {
    reached_end(part);
    // A flush at the last position first (the flush interval is shorter than the idle timeout),
    // then the idle timeout.
    for wait in [Duration::from_millis(1500), Duration::from_secs(6)] {
        *clock += wait;
        if let Some(p) = timer(part, *clock) {
            *committed = Some(p);
        }
    }
    *clock += Duration::from_millis(100);
    assert!(!part.on_timer(*clock).unwrap(), "idle close at a checkpointed position");
    assert_eq!(part.checkpoint(*clock).unwrap(), None);
}

fn assert_same(got: &Tables, want: &Tables) {
    for ((name, g, g_rows), (_, w, w_rows)) in got.iter().zip(want) {
        if *name == DEAD_LETTERS.name {
            assert_eq!(g_rows, w_rows, "dead letters");
            continue;
        }
        assert_eq!(g.len(), w.len(), "{name}: groups");
        for (k, v) in w {
            assert_eq!(g.get(k), Some(v), "{name} {k:?}");
        }
        assert!(g_rows >= &w.len());
    }
}

#[test]
fn uninterrupted_partition_equals_replay() {
    let msgs = messages(7);
    let want = reference(&msgs);
    assert!(want[3].2 > 0, "the input has dead letters");
    let (got, discarded) = run_with_crashes(&msgs, Vec::new(), usize::MAX);
    assert_eq!(discarded, 0, "nothing was written after a checkpoint and then discarded");
    assert_same(&got, &want);
}

#[test]
fn crash_after_an_uncommitted_checkpoint_discards_its_writes() {
    let msgs = messages(11);
    let want = reference(&msgs);
    let crashes = vec![Crash { at: msgs.len() / 3, saved_uncommitted: true }, Crash { at: msgs.len() / 2, saved_uncommitted: false }];
    let (got, discarded) = run_with_crashes(&msgs, crashes, msgs.len() / 4);
    assert!(discarded > 0, "the killed owners' writes after their last commit were discarded");
    assert_same(&got, &want);
}

/// Regression: a batch sent again (a client retrying after a 503, when part of it had reached the
/// broker) counted its events twice when they carried no `RayID`. Its messages come again with
/// the ids they had the first time; each counts once, across crashes too.
#[test]
fn messages_sent_again_count_once_by_their_ids_across_crashes() {
    let lines: Vec<Vec<u8>> = messages(13)
        .into_iter()
        .map(|l| match serde_json::from_slice::<serde_json::Value>(&l) {
            Ok(mut v) => {
                v.as_object_mut().unwrap().remove("RayID");
                v.to_string().into_bytes()
            }
            Err(_) => l,
        })
        .collect();
    // Some messages start with a line that is no event: its dead letter is recorded once too.
    let distinct: Vec<Vec<u8>> = packed(&lines).into_iter().enumerate().map(|(i, m)| if i % 7 == 3 { [&b"{\"broken\n"[..], &m].concat() } else { m }).collect();
    let want = reference(&distinct);
    let has_event = |m: &[u8]| message_lines(m).any(|l| serde_json::from_slice::<serde_json::Value>(l).is_ok());
    // Every 50th message, those of the ten before it with an event (a message of edgelens'
    // producers always has one) come again, as a retried batch's messages that reached the broker
    // the first time.
    let (mut msgs, mut ids) = (Vec::new(), Vec::new());
    for (i, m) in distinct.iter().enumerate() {
        msgs.push(m.clone());
        ids.push((format!("batch-{}/{}", i / 10, i % 10).into_bytes(), false));
        if i % 50 == 49 {
            for j in (i - 9..i - 2).filter(|&j| has_event(&distinct[j])) {
                msgs.push(distinct[j].clone());
                ids.push((format!("batch-{}/{}", j / 10, j % 10).into_bytes(), true));
            }
        }
    }
    assert!(msgs.len() > distinct.len() + 100);
    let (got, _) = run_named_with_crashes(&msgs, &ids, Vec::new(), usize::MAX);
    assert_same(&got, &want);
    let crashes = vec![Crash { at: msgs.len() / 3, saved_uncommitted: true }, Crash { at: msgs.len() / 2 + 1, saved_uncommitted: false }];
    let (got, _) = run_named_with_crashes(&msgs, &ids, crashes, msgs.len() / 4);
    assert_same(&got, &want);
}

/// Checkpoint at X, then the partition goes idle (its windows are closed and written at X), then
/// a crash: the successor resumes at X and must neither lose those rows nor count them twice.
#[test]
fn idle_close_after_a_checkpoint_survives_a_crash() {
    let msgs = messages(3);
    let want = reference(&msgs);
    let fx = Fixture::new();
    let mut clock = Instant::now();
    let half = msgs.len() / 2;
    let mut part = fx.resume(None, cfg(), clock);
    for (i, m) in msgs.iter().enumerate().take(half) {
        clock += Duration::from_millis(7);
        assert_eq!(part.take(i as i64, m, None).unwrap(), Taken::Done);
    }
    let x = part.checkpoint(clock).unwrap().unwrap();
    part.committed(x).unwrap();
    reached_end(&mut part);
    clock += Duration::from_secs(6);
    assert!(!part.on_timer(clock).unwrap(), "idle close at the checkpointed position: nothing new to checkpoint");
    assert_eq!(part.checkpoint(clock).unwrap(), None, "a position is checkpointed once");
    drop(part);
    let mut part = fx.resume(Some(x), cfg(), clock);
    assert_eq!(part.discarded_writes, 0, "the idle close's rows are in the checkpoint's account");
    for (i, m) in msgs.iter().enumerate().skip(half) {
        clock += Duration::from_millis(7);
        assert_eq!(part.take(i as i64, m, None).unwrap(), Taken::Done);
    }
    let mut committed = Some(x);
    go_idle(&mut part, &mut clock, &mut committed);
    assert_same(&fx.tables(), &want);
}

/// All input taken, a timed flush at the last position, then the idle timeout, then a crash: the
/// idle close must come after the checkpoint at that position (else the successor, resuming
/// there, discards the idle close's rows while its checkpoint no longer holds those windows).
#[test]
fn idle_close_after_a_flush_at_the_same_position_survives_a_crash() {
    let msgs = messages(5);
    let want = reference(&msgs);
    let fx = Fixture::new();
    let cfg = PartitionConfig { checkpoint_interval: Duration::from_secs(3600), ..cfg() };
    let mut clock = Instant::now();
    let mut committed = None;
    let mut part = fx.resume(None, cfg.clone(), clock);
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(part.take(i as i64, m, None).unwrap(), Taken::Done);
    }
    reached_end(&mut part);
    // The flush interval (rows closed so far are written), the idle timeout, one more timer.
    for wait in [Duration::from_millis(1500), Duration::from_secs(6), Duration::from_millis(100)] {
        clock += wait;
        committed = timer(&mut part, clock).or(committed);
    }
    drop(part); // killed
    let mut part = fx.resume(committed, cfg, clock);
    reached_end(&mut part);
    for wait in [Duration::from_secs(6), Duration::from_millis(100)] {
        clock += wait;
        timer(&mut part, clock);
    }
    assert_same(&fx.tables(), &want);
}

/// A broker that answers a fetch from inside a record batch with the next batch (tansu 0.6):
/// the partition asks to seek back instead of counting past the hole, and the result is exact.
/// A real hole (messages before it arrived, the next one is still beyond) is accepted.
#[test]
fn skipped_offsets_are_fetched_again() {
    let msgs = messages(13);
    let want = reference(&msgs);
    let fx = Fixture::new();
    let mut clock = Instant::now();
    let c = 5000;
    let x = fx.first_owner(&msgs, c, clock);
    let mut part = fx.resume(Some(x), cfg(), clock);
    // The broker starts 700 messages late: seek back, twice (64, then 256 back, then 1024 back).
    assert_eq!(part.take(c as i64 + 700, &msgs[c + 700], None).unwrap(), Taken::Rewind(c as u64 - 64));
    // That message was handed over, not taken: a report of the consumer past it at the end does
    // not make the partition idle while the offsets before it are unread.
    let end = c as u64 + 701;
    part.end_report(EndReport { reached: Some(end), handed: Some(end) });
    assert!(!part.consumer_at_end(), "at the end with a seek back pending");
    assert_eq!(part.take(c as i64 + 200, &msgs[c + 200], None).unwrap(), Taken::Rewind(c as u64 - 256));
    // Now it delivers from before the position: those are skipped, then everything follows.
    for (i, m) in msgs.iter().enumerate().skip(c - 256) {
        assert_eq!(part.take(i as i64, m, None).unwrap(), Taken::Done, "offset {i}");
    }
    reached_end(&mut part);
    assert!(part.consumer_at_end(), "at the end once the expected offsets came");
    go_idle(&mut part, &mut clock, &mut Some(x));
    assert_eq!(part.rewinds(), 2);
    assert_same(&fx.tables(), &want);

    // A real hole: after the seek, earlier messages arrive, then the next one is beyond.
    let mut part = PartitionAggregator::resume("grp2", "edge-requests", 0, TopicKind::Events, None, cfg(), MemorySink::default(), fx.store.clone(), clock).unwrap();
    for (i, m) in msgs.iter().enumerate().take(100) {
        part.take(i as i64, m, None).unwrap();
    }
    assert_eq!(part.take(150, &msgs[150], None).unwrap(), Taken::Rewind(36));
    assert_eq!(part.take(99, &msgs[99], None).unwrap(), Taken::Done);
    assert_eq!(part.take(150, &msgs[150], None).unwrap(), Taken::Done, "accepted");
    assert_eq!(part.position(), 151);
}

/// Regression: a partition whose offsets started again (a recreated topic; the client, its
/// position out of range, went back to the start) delivered new messages below the position,
/// which were skipped as counted. Unasked offsets before the position stop the partition; after
/// a seek back of its own they are skipped as before.
#[test]
fn offsets_that_start_again_are_refused_not_skipped() {
    let msgs = messages(14);
    let fx = Fixture::new();
    let clock = Instant::now();
    let x = fx.first_owner(&msgs, 300, clock);
    let mut part = fx.resume(Some(x), cfg(), clock);
    let e = part.take(0, &msgs[0], None).unwrap_err();
    assert!(matches!(e, edgelens_aggregate::partition::PartitionError::OffsetsRestarted { position: 300, offset: 0, .. }), "{e}");
    assert!(e.to_string().contains("another --group"), "{e}");
    assert_eq!(part.position(), 300, "nothing taken");
}

/// Regression: a broker answering a fetch with a whole record batch from before the position
/// (tansu on `s3` storage) stopped every aggregator as if the topic had been recreated, advising a
/// recount. Messages of edgelens' producers already counted are known by their ids and skipped,
/// also by a successor resuming from the checkpoint; one not counted still stops the partition.
#[test]
fn messages_delivered_again_before_the_position_are_known_by_their_ids() {
    let msgs = packed(&messages(15));
    let ids: Vec<Vec<u8>> = (0..msgs.len()).map(|i| format!("m-{i}").into_bytes()).collect();
    let name = |i: usize| Some(MessageName { key: b"", id: &ids[i], resend: false });
    let fx = Fixture::new();
    let clock = Instant::now();
    let n = msgs.len() / 2;
    let mut part = fx.resume(None, cfg(), clock);
    for i in 0..n {
        assert_eq!(part.take(i as i64, &msgs[i], name(i)).unwrap(), Taken::Done);
    }
    // The last batch again, then the messages after it.
    let again = n - 5..n;
    for i in again.clone() {
        assert_eq!(part.take(i as i64, &msgs[i], name(i)).unwrap(), Taken::Done);
    }
    assert_eq!((part.position(), part.redelivered()), (n as u64, 5));
    let x = part.checkpoint(clock).unwrap().unwrap();
    part.committed(x).unwrap();
    drop(part);
    let mut part = fx.resume(Some(x), cfg(), clock);
    for i in again.clone().chain(n..msgs.len()) {
        assert_eq!(part.take(i as i64, &msgs[i], name(i)).unwrap(), Taken::Done);
    }
    let mut committed = Some(x);
    let mut clock = clock;
    go_idle(&mut part, &mut clock, &mut committed);
    assert_same(&fx.tables(), &reference(&msgs));
    // A message before the position that was never counted (another id): new, not skipped.
    let other = b"not-counted".to_vec();
    let e = part.take(3, &msgs[3], Some(MessageName { key: b"", id: &other, resend: false })).unwrap_err();
    assert!(matches!(e, edgelens_aggregate::partition::PartitionError::OffsetsRestarted { offset: 3, .. }), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// Killed at any moments, in any state: the merged tables equal one clean run.
    #[test]
    fn killed_anywhere_counts_exactly_once(
        seed in 1u64..1000,
        crashes in proptest::collection::vec((0.0f64..1.0, any::<bool>()), 1..6),
        pause in 0.0f64..1.0,
    ) {
        killed_at(&messages(seed), crashes, pause);
    }

    /// The same with messages of several events each: a message is counted whole or not at all.
    #[test]
    fn killed_anywhere_counts_packed_messages_exactly_once(
        seed in 1u64..1000,
        crashes in proptest::collection::vec((0.0f64..1.0, any::<bool>()), 1..6),
        pause in 0.0f64..1.0,
    ) {
        killed_at(&packed(&messages(seed)), crashes, pause);
    }
}

/// Run `msgs` with crashes at the given fractions of the input (and a pause at `pause`); the
/// merged tables must equal one clean run.
fn killed_at(msgs: &[Vec<u8>], crashes: Vec<(f64, bool)>, pause: f64) {
    let want = reference(msgs);
    let n = msgs.len();
    let crashes = crashes.into_iter().map(|(f, s)| Crash { at: (f * n as f64) as usize, saved_uncommitted: s }).collect();
    let (got, _) = run_with_crashes(msgs, crashes, (pause * n as f64) as usize);
    assert_same(&got, &want);
}

#[test]
fn packed_messages_count_every_event_and_dead_letter_the_rest() {
    let lines = messages(5);
    let msgs = packed(&lines);
    assert!(msgs.len() < lines.len() / 3, "{} messages for {} lines", msgs.len(), lines.len());
    let want = reference(&lines);
    // Every broken line, and every message with nothing in it, is a dead letter.
    let broken = lines.iter().filter(|l| l.starts_with(b"{\"EdgeStartTimestamp\": broken")).count();
    let empty = msgs.iter().filter(|m| m.iter().all(u8::is_ascii_whitespace)).count();
    assert!(broken > 0 && empty > 0);
    let (got, discarded) = run_with_crashes(&msgs, Vec::new(), usize::MAX);
    assert_eq!(discarded, 0);
    assert_eq!(got[3].2, want[3].2 + empty, "dead letters");
    assert!(want[3].2 >= broken);
    for (g, w) in got.iter().zip(&want).take(3) {
        assert_eq!(g.1, w.1, "{}", g.0);
    }
}

/// Idle time counts from the first timer run that saw the input, not from a clock reading the
/// caller took before the message (its poll may have waited long for it).
#[test]
fn idle_time_counts_from_the_first_timer_after_the_input() {
    let fx = Fixture::new();
    let t0 = Instant::now();
    let mut part = fx.resume(None, cfg(), t0);
    let line = br#"{"EdgeStartTimestamp":1793491200000000000,"ClientIP":"192.0.2.1","EdgeResponseStatus":200,"ZoneName":"a.example","RayID":"r1"}"#;
    // The message comes 4.9 s after the partition last heard anything.
    assert_eq!(part.take(0, line, None).unwrap(), Taken::Done);
    reached_end(&mut part);
    let first = t0 + Duration::from_millis(4_900);
    timer(&mut part, first);
    timer(&mut part, first + Duration::from_millis(4_900));
    assert_eq!(fx.rate_rows(), 0, "closed as idle less than the idle timeout after the input was seen");
    timer(&mut part, first + Duration::from_millis(5_000));
    assert_eq!(fx.rate_rows(), 1, "closed as idle once the idle timeout passed");
}

/// A quiet clock alone does not close a partition's windows: a restarted aggregator before its
/// first fetch (or one starved of CPU) looks idle while the next events of its open seconds are
/// still in the topic. The close waits for an [`EndReport`] made after the last message taken that
/// shows nothing left to read, or for [`IDLE_WITHOUT_END_FACTOR`] idle timeouts.
#[test]
fn idle_close_waits_for_the_consumer_to_reach_the_end() {
    let msgs = messages(17);
    let want = reference(&msgs);
    let fx = Fixture::new();
    let rows = || fx.rate_rows();
    let mut clock = Instant::now();
    let x = fx.first_owner(&msgs, msgs.len() / 2, clock);

    // Restarted at x with the windows of the last seconds open; its first fetch is slow.
    let mut part = fx.resume(Some(x), cfg(), clock);
    let before = rows();
    clock += Duration::from_secs(6);
    timer(&mut part, clock);
    assert_eq!(rows(), before, "closed on the clock alone, before any fetch");
    // The fetch brought the end of the partition, not yet handed over.
    part.end_report(EndReport { reached: Some(x + 50), handed: None });
    clock += Duration::from_secs(6);
    timer(&mut part, clock);
    assert_eq!(rows(), before, "closed with messages fetched and not taken");
    // A report made before the last message taken says nothing of what came after it.
    assert_eq!(part.take(x as i64, &msgs[x as usize], None).unwrap(), Taken::Done);
    part.end_report(EndReport { reached: Some(x), handed: Some(x) });
    clock += Duration::from_secs(6);
    timer(&mut part, clock);
    assert_eq!(rows(), before, "closed on a report older than the last message");
    // At the end (a transaction marker after the last message: handed over and end one further).
    part.end_report(EndReport { reached: Some(x + 2), handed: Some(x + 2) });
    clock += Duration::from_secs(6);
    timer(&mut part, clock); // checkpoint at x + 1 first
    clock += Duration::from_millis(100);
    timer(&mut part, clock);
    let closed = rows();
    assert!(closed > before, "not closed at the end of the partition");

    // The rest of the input, then no report at all: closed after the long timeout only.
    for (i, m) in msgs.iter().enumerate().skip(x as usize + 1) {
        assert_eq!(part.take(i as i64, m, None).unwrap(), Taken::Done);
    }
    clock += Duration::from_millis(100);
    timer(&mut part, clock);
    let flushed = rows();
    assert!(flushed > closed);
    let long = cfg().idle_timeout * IDLE_WITHOUT_END_FACTOR;
    clock += long - Duration::from_secs(1);
    timer(&mut part, clock);
    timer(&mut part, clock);
    assert_eq!(rows(), flushed, "closed before the long timeout without a report");
    clock += Duration::from_secs(1);
    timer(&mut part, clock);
    clock += Duration::from_millis(100);
    timer(&mut part, clock);
    assert!(rows() > flushed, "never closed without a report");
    drop(part);
    assert_same(&fx.tables(), &want);
}
