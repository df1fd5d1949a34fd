//! The event log ingest appends to: the Kafka topics in the distributed mode ([`crate::kafka`]),
//! an in-memory log in tests and the embedded mode ([`MemoryLog`]).
//!
//! Owns the message format on the topics, which other producers may write too:
//! - `edge-requests`: key = the partition key of the events' site, UTF-8: the registrable domain
//!   of the site (lower-case `ZoneName`, else the registered site the host of `ClientRequestHost`
//!   belongs to, else that host) — its public suffix plus one label, after the ICANN section of
//!   the Public Suffix List (`schemas/data/public_suffixes.dat`; see [`edgelens_schemas::suffix`]):
//!   `shop.example` for `www.shop.example`, `api.shop.example` and `eu.shop.example`. For a zone
//!   that is its own registrable domain, as most are, the key is the zone name; a site that is a
//!   public suffix itself is its own key (`nhs.uk`, and `www.nhs.uk` when `nhs.uk` is
//!   registered). Value = NDJSON: one or more
//!   Cloudflare Logpush `http_requests` JSON objects of that key, each exactly as received, one per
//!   line (`\n`; a trailing `\n`, `\r\n` line ends and blank lines are allowed). A message of one
//!   event is simply its line. edgelens partitions by the key with murmur2
//!   (`partitioner=murmur2_random`, the Java client's default), so all events of a site share one
//!   partition, including those of hosts the aggregators count under their registered site;
//!   other producers should do the same. Totals are exact whatever partition an event is on, but
//!   a site's attack detection sees only the events of the partition it is judged on, and a
//!   redelivered event (same `RayID`) is recognised as a duplicate only on the partition that
//!   counted it first. Events should carry `RayID`.
//!
//!   A message may carry the header `edgelens-message-id` ([`MESSAGE_ID_HEADER`]): an id naming
//!   the message, unique among the producer's messages of its key. A message sent again because
//!   its first sending may have reached the topic also carries `edgelens-resend`
//!   ([`RESEND_HEADER`]); when a message with its key and id was taken on its partition while
//!   that one's newest event (not in the future) is within the lateness horizon, none of its
//!   events count again, with or without `RayID`. A message without `edgelens-resend` always
//!   counts: two equal batches sent on purpose are two. edgelens' own producers set the id to the
//!   hash of the batch's lines (rejected ones included), the input line the batch starts at and
//!   the message's place in the batch ([`Packer::take`]), so a batch sent again — the same body posted again after a 503, a file's batch appended again
//!   — gets the same messages with the same ids; the receiver adds the batch's instance number,
//!   so that an equal batch posted on purpose has other ids; see [`crate::receiver`] for when it
//!   is a resend.
//!
//!   edgelens' own producers pack the events of a batch into messages per key ([`Packer`]), so
//!   that the per-message cost of the broker and its clients is paid once per key and second
//!   instead of once per event. Packing keeps each key's events in their order. It moves an
//!   event ahead of other keys' events only if its event time lies in the same second as the
//!   newest event time before those, or an earlier one: the newest event time any event is read
//!   after stays in the second it would be in unpacked, so the watermark's second, and with it
//!   which windows and detector seconds are closed when an event arrives, is unchanged. An event
//!   further ahead of the wall clock than [`PACK_MAX_FUTURE`], which the aggregators reject, does
//!   not count as newest.
//! - `edge-dead-letters`: key = the reason code; value = a JSON object
//!   `{"ts": unix ns, "source": "logpush", "offset": line in batch, "reason": code, "detail": text,
//!   "raw": excerpt}`.
//!
//! Guarantee of [`EventLog::append`]: when it returns `Ok`, every record of the batch is durably
//! in the log (acknowledged by the broker with `acks=all`); on `Err` some may be and some not, and
//! the caller must retry the whole batch (the messages that reached the log already are removed
//! downstream by their id).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Mutex;

use edgelens_schemas::sites::HostSites;
use edgelens_schemas::suffix::partition_key;
use edgelens_schemas::time::NANOS_PER_SEC;
use edgelens_schemas::Nanos;

use crate::dead_letter::DeadLetter;
use crate::error::LogError;
use crate::reader::Line;

pub const EVENTS_TOPIC: &str = "edge-requests";
pub const DEAD_LETTERS_TOPIC: &str = "edge-dead-letters";
/// Header of an `edge-requests` message naming it, so that a redelivered message counts once (see
/// the module docs).
pub const MESSAGE_ID_HEADER: &str = "edgelens-message-id";
/// Header of an `edge-requests` message sent again (any value), see the module docs.
pub const RESEND_HEADER: &str = "edgelens-resend";

/// Largest value [`Packer`] builds (a single longer line still gets a message of its own; brokers
/// accept 1 MB messages by default).
pub const PACK_MAX_BYTES: usize = 256 << 10;

/// One message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// The message's [`MESSAGE_ID_HEADER`], if it has one.
    pub id: Option<Vec<u8>>,
    /// Sent again ([`RESEND_HEADER`]).
    pub resend: bool,
}

/// The events of an `edge-requests` message value: its non-blank lines, without `\r\n` / `\n`. A
/// value without any (empty or blank) is returned whole, so that it still becomes a dead letter.
pub fn message_lines(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let blank = |l: &[u8]| l.iter().all(|b| b.is_ascii_whitespace());
    let whole = blank(value).then_some(value);
    // `split` on a closure goes a byte at a time; memchr looks for the line ends a vector at a time.
    let mut rest = Some(value);
    std::iter::from_fn(move || {
        let v = rest?;
        let (line, next) = match memchr::memchr(b'\n', v) {
            Some(i) => (&v[..i], Some(&v[i + 1..])),
            None => (v, None),
        };
        rest = next;
        Some(line)
    })
    .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
    .filter(move |l| !blank(l))
    .chain(whole)
}

/// How far ahead of the wall clock an event moves the packer's newest event time: the
/// aggregators' default `max_future`, beyond which they reject an event (`future_timestamp`)
/// and their event time does not follow it. Had it moved the packer's, every site's message
/// would stay open for the rest of the batch and take events ahead of other sites' ones, later
/// than the aggregators allow (unjudged by the detector).
pub const PACK_MAX_FUTURE: Nanos = 300 * NANOS_PER_SEC;

/// Packs valid events into `edge-requests` messages (see the module docs): valid lines go in
/// with [`Packer::push`], invalid ones come back as dead letters; [`Packer::take`] hands out the
/// messages so far, in order.
///
/// An event joins its key's open message unless that message is full or the event's second is
/// later than the second of the newest event time seen when the message was opened; then it
/// opens a new message, after every message so far. Whatever it is moved ahead of came after
/// that opening, so saw at least that newest time.
#[derive(Debug)]
pub struct Packer {
    max_bytes: usize,
    messages: Vec<Record>,
    /// Open message of each key: index into `messages`, second of the newest event time seen
    /// when it opened.
    open: HashMap<Vec<u8>, (usize, Nanos)>,
    /// Newest event time seen so far.
    newest: Nanos,
    events: u64,
    /// XXH64 of the lines taken since the last take (the rejected ones with their line numbers),
    /// and the input line number of the first packed.
    lines_hash: twox_hash::XxHash64,
    first_line: Option<u64>,
    /// The registered sites a line's host maps to: a line is keyed by its site's key.
    sites: HostSites,
}

impl Default for Packer {
    fn default() -> Self {
        Self::new(PACK_MAX_BYTES)
    }
}

impl Packer {
    /// A packer whose messages hold at most `max_bytes` (unless a single line is longer).
    pub fn new(max_bytes: usize) -> Self {
        Self { max_bytes, messages: Vec::new(), open: HashMap::new(), newest: Nanos::MIN, events: 0, lines_hash: twox_hash::XxHash64::with_seed(0), first_line: None, sites: HostSites::default() }
    }

    /// This packer keying a line by the partition key of the site `sites` maps its host to, as
    /// the aggregators count it: every host of a registered site goes with the site, including
    /// one no registrable domain covers (`www.nhs.uk` when `nhs.uk`, itself a public suffix, is
    /// registered).
    pub fn with_sites(mut self, sites: HostSites) -> Self {
        self.sites = sites;
        self
    }

    /// Take one line: packed when valid, else the dead letter that takes its place. A rejected
    /// line names the batch too: batches differing only in their rejected lines are other batches,
    /// with other message ids.
    pub fn push(&mut self, line: &Line<'_>, source: &str, line_no: u64, now: Nanos) -> Result<(), DeadLetter> {
        use std::hash::Hasher;
        match line.parse() {
            Ok(mut ev) => {
                self.first_line.get_or_insert(line_no);
                self.sites.apply(&mut ev);
                // An event the aggregators will reject as from the future does not move their
                // event time: nor does it move the packer's.
                let clocked = ev.ts <= now.saturating_add(PACK_MAX_FUTURE);
                self.pack(partition_key(&ev.site).as_bytes(), ev.ts, line.raw(), clocked);
                Ok(())
            }
            Err((reason, raw)) => {
                self.lines_hash.write_u64(line_no);
                self.lines_hash.write(line.raw());
                self.lines_hash.write(b"\n");
                Err(DeadLetter::new(now, source, line_no, &reason, raw))
            }
        }
    }

    /// Pack one valid event of partition key `key` at event time `ts` whose line is `raw`.
    pub fn push_event(&mut self, key: &[u8], ts: Nanos, raw: &[u8]) {
        self.pack(key, ts, raw, true);
    }

    /// [`Self::push_event`]; `clocked`: whether the event moves the newest event time.
    fn pack(&mut self, key: &[u8], ts: Nanos, raw: &[u8], clocked: bool) {
        use std::hash::Hasher;
        self.lines_hash.write(raw);
        self.lines_hash.write(b"\n");
        self.events += 1;
        if clocked {
            self.newest = self.newest.max(ts);
        }
        if let Some(&(i, newest_then)) = self.open.get(key) {
            let value = &mut self.messages[i].value;
            if ts.div_euclid(NANOS_PER_SEC) <= newest_then && value.len() + 1 + raw.len() <= self.max_bytes {
                value.push(b'\n');
                value.extend_from_slice(raw);
                return;
            }
        }
        self.open.insert(key.to_vec(), (self.messages.len(), self.newest.div_euclid(NANOS_PER_SEC)));
        self.messages.push(Record { key: key.to_vec(), value: raw.to_vec(), id: None, resend: false });
    }

    /// Events packed so far and not yet taken.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The messages packed so far, in order; the packer starts afresh. Each message gets its id
    /// ([`MESSAGE_ID_HEADER`]): `<XXH64 of the lines taken, 16 hex digits>-<line number of the
    /// first packed>/<index of the message>`, the same whenever the same lines are taken again
    /// from the same place in their input.
    pub fn take(&mut self) -> Vec<Record> {
        let (batch, mut messages) = self.take_unnamed();
        name_messages(&mut messages, &batch);
        messages
    }

    /// [`Self::take`] without the ids: the name of the batch (the ids' part before `/`) and its
    /// messages, which the caller names ([`name_messages`]).
    pub fn take_unnamed(&mut self) -> (String, Vec<Record>) {
        use std::hash::Hasher;
        let batch = format!("{:016x}-{}", self.lines_hash.finish(), self.first_line.unwrap_or(0));
        self.open.clear();
        self.newest = Nanos::MIN;
        self.events = 0;
        self.lines_hash = twox_hash::XxHash64::with_seed(0);
        self.first_line = None;
        (batch, std::mem::take(&mut self.messages))
    }
}

/// Give the messages of a batch their ids ([`MESSAGE_ID_HEADER`]): `<name>/<index>`.
pub fn name_messages(messages: &mut [Record], name: &str) {
    for (i, m) in messages.iter_mut().enumerate() {
        m.id = Some(format!("{name}/{i}").into_bytes());
    }
}

impl Record {
    /// Read an `edge-dead-letters` message back. A message that is not a dead letter (another
    /// producer's mistake) still becomes one, `malformed_json`, with its bytes as the excerpt, so
    /// nothing on the topic is lost.
    pub fn parse_dead_letter(value: &[u8], topic_offset: u64) -> DeadLetter {
        #[derive(serde::Deserialize)]
        struct Wire {
            ts: Nanos,
            source: String,
            offset: u64,
            reason: String,
            #[serde(default)]
            detail: String,
            #[serde(default)]
            raw: String,
        }
        match serde_json::from_slice::<Wire>(value) {
            Ok(w) => DeadLetter {
                ts: w.ts,
                source: w.source,
                offset: w.offset,
                reason: edgelens_schemas::InvalidReason::CODES.iter().find(|c| **c == w.reason).copied().unwrap_or("unknown"),
                detail: if w.detail.is_empty() { w.reason } else { w.detail },
                raw: w.raw,
            },
            Err(e) => DeadLetter::new(
                crate::dead_letter::now_nanos(),
                DEAD_LETTERS_TOPIC,
                topic_offset,
                &edgelens_schemas::InvalidReason::MalformedJson(format!("not a dead-letter message: {e}")),
                value,
            ),
        }
    }

    /// The `edge-dead-letters` message of a dead letter.
    pub fn dead_letter(d: &DeadLetter) -> Self {
        let value = serde_json::json!({
            "ts": d.ts,
            "source": d.source,
            "offset": d.offset,
            "reason": d.reason,
            "detail": d.detail,
            "raw": d.raw,
        });
        Record { key: d.reason.as_bytes().to_vec(), value: value.to_string().into_bytes(), id: None, resend: false }
    }
}

/// An append-only, partitioned log of records.
pub trait EventLog: Send + Sync + 'static {
    /// Append `records` to `topic`; resolves when all are durable (see the module docs).
    fn append(&self, topic: &str, records: &[Record]) -> impl Future<Output = Result<(), LogError>> + Send;

    /// Whether the log can take appends to `topic` now (readiness): its brokers answer and know
    /// the topic. A log always there needs no check.
    fn probe(&self, topic: &str) -> impl Future<Output = Result<(), LogError>> + Send {
        let _ = topic;
        async { Ok(()) }
    }
}

/// A shared log is a log.
impl<L: EventLog> EventLog for std::sync::Arc<L> {
    fn append(&self, topic: &str, records: &[Record]) -> impl Future<Output = Result<(), LogError>> + Send {
        L::append(self, topic, records)
    }

    fn probe(&self, topic: &str) -> impl Future<Output = Result<(), LogError>> + Send {
        L::probe(self, topic)
    }
}

/// In-memory [`EventLog`]: records per topic in append order. `fail_with` makes appends fail, to
/// test how callers react to an unavailable or full log.
#[derive(Debug, Default)]
pub struct MemoryLog {
    topics: Mutex<BTreeMap<String, Vec<Record>>>,
    failure: Mutex<Option<LogError>>,
}

impl MemoryLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every record of `topic`, in append order.
    pub fn records(&self, topic: &str) -> Vec<Record> {
        self.topics.lock().expect("memory log lock").get(topic).cloned().unwrap_or_default()
    }

    /// Make every following append fail with `err` (`None`: succeed again).
    pub fn fail_with(&self, err: Option<LogError>) {
        *self.failure.lock().expect("memory log lock") = err;
    }
}

impl EventLog for MemoryLog {
    async fn append(&self, topic: &str, records: &[Record]) -> Result<(), LogError> {
        if let Some(e) = self.failure.lock().expect("memory log lock").clone() {
            return Err(e);
        }
        self.topics.lock().expect("memory log lock").entry(topic.to_owned()).or_default().extend_from_slice(records);
        Ok(())
    }

    /// Not ready while appends are made to fail as unavailable ([`MemoryLog::fail_with`]).
    async fn probe(&self, _topic: &str) -> Result<(), LogError> {
        match self.failure.lock().expect("memory log lock").clone() {
            Some(e @ LogError::Unavailable(_)) => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgelens_schemas::InvalidReason;
    use proptest::prelude::*;

    #[test]
    fn message_lines_split_ndjson_and_keep_a_blank_value_whole() {
        let lines: Vec<&[u8]> = message_lines(b"{\"a\":1}\r\n\n  \n{\"b\":2}\n").collect();
        assert_eq!(lines, [b"{\"a\":1}".as_slice(), b"{\"b\":2}"]);
        assert_eq!(message_lines(b"{\"a\":1}").collect::<Vec<_>>(), [b"{\"a\":1}".as_slice()]);
        // Nothing to count still leaves one line, which becomes a dead letter.
        assert_eq!(message_lines(b"").collect::<Vec<_>>(), [b"".as_slice()]);
        assert_eq!(message_lines(b" \n").collect::<Vec<_>>(), [b" \n".as_slice()]);
    }

    /// The wall clock of the packing tests: the events' day.
    const NOW: Nanos = 1_793_491_260_000_000_000;

    /// Regression: one event of a batch stamped years ahead (which the aggregators reject) moved
    /// the packer's newest time, after which every site's message took the rest of the batch's
    /// events of that site, ahead of other sites' events by as much as the batch spans: the
    /// detector left most of them unjudged.
    #[test]
    fn an_event_from_the_future_does_not_move_the_packers_time() {
        let line = |site: &str, ms: i64| format!(r#"{{"EdgeStartTimestamp":{},"ClientIP":"192.0.2.1","EdgeResponseStatus":200,"ZoneName":"{site}"}}"#, 1_793_491_200_000_000_000i64 + ms * 1_000_000);
        let mut p = Packer::default();
        let input = [line("a.example", 0), line("a.example", 2_100_000_000_000 - 1_793_491_200_000), line("b.example", 10), line("a.example", 20_000)];
        for (i, l) in input.iter().enumerate() {
            p.push(&Line::Complete(l.as_bytes()), "logpush", i as u64, NOW).unwrap();
        }
        let got: Vec<(String, usize)> = p.take().into_iter().map(|r| (String::from_utf8(r.key).unwrap(), message_lines(&r.value).count())).collect();
        // a.example's event 20 s later is not moved ahead of b.example's (into the message the
        // future event opened).
        assert_eq!(got, [("a.example", 1), ("a.example", 1), ("b.example", 1), ("a.example", 1)].map(|(s, n)| (s.to_owned(), n)));
        // Within the aggregators' future limit, an event moves it as before.
        let mut p = Packer::default();
        for (i, l) in [line("a.example", 0), line("a.example", 100_000), line("b.example", 10), line("a.example", 20_000)].iter().enumerate() {
            p.push(&Line::Complete(l.as_bytes()), "logpush", i as u64, NOW).unwrap();
        }
        let got: Vec<usize> = p.take().iter().map(|r| message_lines(&r.value).count()).collect();
        assert_eq!(got, [1, 2, 1]);
    }

    #[test]
    fn packer_parses_lines_and_hands_back_dead_letters() {
        let line = |site: &str, ms: i64| format!(r#"{{"EdgeStartTimestamp":{},"ClientIP":"192.0.2.1","EdgeResponseStatus":200,"ZoneName":"{site}","RayID":"{ms:016x}"}}"#, 1_793_491_200_000_000_000i64 + ms * 1_000_000);
        let mut p = Packer::default();
        for (i, (site, ms)) in [("A.example", 0), ("b.example", 10), ("a.example", 20), ("b.example", 900), ("a.example", 1500)].into_iter().enumerate() {
            p.push(&Line::Complete(line(site, ms).as_bytes()), "logpush", i as u64, NOW).unwrap();
        }
        let dead = p.push(&Line::Complete(b"{\"broken\""), "logpush", 5, 7).unwrap_err();
        assert_eq!((dead.reason, dead.offset, dead.ts), ("malformed_json", 5, 7));
        assert_eq!(p.events(), 5);
        let got: Vec<(String, String)> = p.take().into_iter().map(|r| (String::from_utf8(r.key).unwrap(), String::from_utf8(r.value).unwrap())).collect();
        // 1500 ms is a second later than the newest time when a.example's message opened.
        let want = [
            ("a.example", format!("{}\n{}", line("A.example", 0), line("a.example", 20))),
            ("b.example", format!("{}\n{}", line("b.example", 10), line("b.example", 900))),
            ("a.example", line("a.example", 1500)),
        ];
        assert_eq!(got, want.map(|(k, v)| (k.to_owned(), v)));
        assert_eq!(p.events(), 0);
        assert!(p.take().is_empty());
    }

    /// Regression: lines without `ZoneName` were keyed by their host, so the hosts of one site
    /// (`www.`, `api.`, the zone itself) went to several partitions, and each partition's detector
    /// judged part of the site's traffic. They are keyed by the registrable domain now, as are
    /// lines of a zone below it.
    #[test]
    fn a_sites_hosts_and_zones_below_it_share_a_key() {
        let host = |host: &str, ms: i64| format!(r#"{{"EdgeStartTimestamp":{},"ClientIP":"192.0.2.1","EdgeResponseStatus":200,"ClientRequestHost":"{host}"}}"#, 1_793_491_200_000_000_000i64 + ms * 1_000_000);
        let zone = |zone: &str, ms: i64| format!(r#"{{"EdgeStartTimestamp":{},"ClientIP":"192.0.2.1","EdgeResponseStatus":200,"ZoneName":"{zone}","ClientRequestHost":"x.{zone}"}}"#, 1_793_491_200_000_000_000i64 + ms * 1_000_000);
        let lines = [host("www.shop.example", 0), host("API.shop.example:443", 10), zone("eu.shop.example", 20), host("shop.example", 30), host("www.shop.example.co.uk", 40), host("other.example", 50)];
        let mut p = Packer::default();
        for (i, l) in lines.iter().enumerate() {
            p.push(&Line::Complete(l.as_bytes()), "logpush", i as u64, NOW).unwrap();
        }
        let got: Vec<(String, usize)> = p.take().into_iter().map(|r| (String::from_utf8(r.key).unwrap(), message_lines(&r.value).count())).collect();
        assert_eq!(got, [("shop.example", 4), ("example.co.uk", 1), ("other.example", 1)].map(|(k, n)| (k.to_owned(), n)));
    }

    /// Regression: a registered site that is a public suffix itself (`nhs.uk`), or has a list
    /// rule below it (`*.kobe.jp`), has hosts that are their own registrable domains
    /// (`www.nhs.uk`, `www.kobe.jp`): keyed by that, its hosts went to several partitions. With the
    /// registry they are keyed by their site; without it, as before.
    #[test]
    fn hosts_of_a_registered_public_suffix_share_their_sites_key() {
        let host = |host: &str, ms: i64| format!(r#"{{"EdgeStartTimestamp":{},"ClientIP":"192.0.2.1","EdgeResponseStatus":200,"ClientRequestHost":"{host}"}}"#, 1_793_491_200_000_000_000i64 + ms * 1_000_000);
        let zone = |zone: &str, ms: i64| format!(r#"{{"EdgeStartTimestamp":{},"ClientIP":"192.0.2.1","EdgeResponseStatus":200,"ZoneName":"{zone}","ClientRequestHost":"www.{zone}"}}"#, 1_793_491_200_000_000_000i64 + ms * 1_000_000);
        let lines = [host("www.nhs.uk", 0), host("api.nhs.uk", 10), zone("nhs.uk", 20), host("www.kobe.jp", 30), host("kobe.jp", 40), host("www.gov.uk", 50), host("www.shop.example", 60)];
        let keys = |p: Packer| -> Vec<(String, usize)> {
            let mut p = p;
            for (i, l) in lines.iter().enumerate() {
                p.push(&Line::Complete(l.as_bytes()), "logpush", i as u64, NOW).unwrap();
            }
            p.take().into_iter().map(|r| (String::from_utf8(r.key).unwrap(), message_lines(&r.value).count())).collect()
        };
        let sites = HostSites::new(["nhs.uk", "kobe.jp", "shop.example"].map(String::from));
        let want = [("nhs.uk", 3), ("kobe.jp", 2), ("www.gov.uk", 1), ("shop.example", 1)];
        assert_eq!(keys(Packer::default().with_sites(sites)), want.map(|(k, n)| (k.to_owned(), n)));
        let unregistered = [("www.nhs.uk", 1), ("api.nhs.uk", 1), ("nhs.uk", 1), ("www.kobe.jp", 1), ("kobe.jp", 1), ("www.gov.uk", 1), ("shop.example", 1)];
        assert_eq!(keys(Packer::default()), unregistered.map(|(k, n)| (k.to_owned(), n)));
    }

    #[test]
    fn messages_are_named_by_their_batch_and_their_place_in_it() {
        let line = |site: &str, ms: i64| format!(r#"{{"EdgeStartTimestamp":{},"ClientIP":"192.0.2.1","EdgeResponseStatus":200,"ZoneName":"{site}"}}"#, 1_793_491_200_000_000_000i64 + ms * 1_000_000);
        let batch = [line("a.example", 0), line("b.example", 10), line("a.example", 1500)];
        let mut p = Packer::default();
        let mut ids = |lines: &[String], first: u64| -> Vec<String> {
            p.push(&Line::Complete(b"{\"broken\""), "logpush", first, 0).unwrap_err();
            for (i, l) in lines.iter().enumerate() {
                p.push(&Line::Complete(l.as_bytes()), "logpush", first + 1 + i as u64, NOW).unwrap();
            }
            p.take().into_iter().map(|r| String::from_utf8(r.id.expect("named")).unwrap()).collect()
        };
        let first = ids(&batch, 0);
        let (name, _) = first[0].split_once('/').unwrap();
        assert_eq!(first, [0, 1, 2].map(|i| format!("{name}/{i}")));
        assert!(name.ends_with("-1"), "{name}: the first packed line is line 1");
        // The same batch again, e.g. posted again after a 503: the same ids.
        assert_eq!(ids(&batch, 0), first);
        // The same lines from another place of their input, or other lines: other ids.
        assert!(ids(&batch, 40).iter().all(|id| !first.contains(id)));
        let other = [line("a.example", 0), line("b.example", 10), line("a.example", 1501)];
        assert!(ids(&other, 0).iter().all(|id| !first.contains(id)));
        // Dead letters are not named.
        assert_eq!(Record::dead_letter(&DeadLetter::new(0, "logpush", 0, &InvalidReason::InvalidTimestamp, b"x")).id, None);
    }

    #[test]
    fn packer_starts_a_new_message_at_the_size_limit() {
        let mut p = Packer::new(10);
        for raw in [&b"aaaa"[..], b"bbbb", b"cc", b"dddddddddddddddd", b"e"] {
            p.push_event(b"s", 0, raw);
        }
        let values: Vec<Vec<u8>> = p.take().into_iter().map(|r| r.value).collect();
        assert_eq!(values, [b"aaaa\nbbbb".to_vec(), b"cc".to_vec(), b"dddddddddddddddd".to_vec(), b"e".to_vec()]);
    }

    proptest! {
        /// Over any bytes, the lines are those of splitting at `\n`, less a trailing `\r` each,
        /// with blank ones left out (and the whole value if nothing else is left).
        #[test]
        fn message_lines_are_the_non_blank_lines(value in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), Just(b' '), Just(b'x')], 0..40)) {
            let blank = |l: &[u8]| l.iter().all(|b| b.is_ascii_whitespace());
            let mut want: Vec<&[u8]> = value.split(|b| *b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l)).filter(|l| !blank(l)).collect();
            if want.is_empty() {
                want.push(&value);
            }
            prop_assert_eq!(message_lines(&value).collect::<Vec<_>>(), want);
        }

        /// Whatever the input: every event is in exactly one message of its site, each site's
        /// events keep their order, no event is read after one of a later second than every event
        /// before it in the input, and no message outgrows the limit unless it holds
        /// a single line.
        #[test]
        fn packing_keeps_events_sites_and_order(
            events in proptest::collection::vec((0u8..6, -3_000i64..3_000, 1usize..40), 0..300),
            max_bytes in 1usize..200,
        ) {
            let mut p = Packer::new(max_bytes);
            let mut ts = 0i64;
            let mut input = Vec::new();
            for (i, &(site, step_ms, len)) in events.iter().enumerate() {
                ts += step_ms * 1_000_000 / 4;
                let raw = format!("{i}:{}", "x".repeat(len));
                p.push_event(format!("s{site}").as_bytes(), ts, raw.as_bytes());
                input.push((format!("s{site}"), ts, raw));
            }
            prop_assert_eq!(p.events(), events.len() as u64);
            let mut out = Vec::new();
            for m in p.take() {
                let lines: Vec<&[u8]> = message_lines(&m.value).collect();
                prop_assert!(m.value.len() <= max_bytes || lines.len() == 1, "{} bytes in {} lines", m.value.len(), lines.len());
                for l in lines {
                    let raw = String::from_utf8(l.to_vec()).unwrap();
                    let i: usize = raw.split(':').next().unwrap().parse().unwrap();
                    prop_assert_eq!(&input[i].0.as_bytes(), &m.key.as_slice());
                    prop_assert_eq!(&input[i].2, &raw);
                    out.push(i);
                }
            }
            let mut sorted = out.clone();
            sorted.sort_unstable();
            prop_assert_eq!(sorted, (0..events.len()).collect::<Vec<_>>());
            // Newest event time up to and including each input event.
            let newest: Vec<i64> = input.iter().scan(i64::MIN, |m, e| { *m = (*m).max(e.1); Some(*m) }).collect();
            for (a, &i) in out.iter().enumerate() {
                for &j in &out[a + 1..] {
                    if j < i {
                        prop_assert!(input[i].0 != input[j].0, "events {} and {} of one site swapped", j, i);
                        prop_assert!(input[i].1.div_euclid(NANOS_PER_SEC) <= newest[j].div_euclid(NANOS_PER_SEC), "event {} read before event {} though of a later second than the newest before it", i, j);
                    }
                }
            }
        }
    }

    #[test]
    fn dead_letter_messages_read_back() {
        let d = DeadLetter::new(1_700_000_000_000_000_123, "logpush", 17, &InvalidReason::InvalidTimestamp, b"{\"EdgeStartTimestamp\":\"x\"}");
        let rec = Record::dead_letter(&d);
        assert_eq!(rec.key, b"invalid_timestamp");
        assert_eq!(Record::parse_dead_letter(&rec.value, 99), d);
        // Something else on the topic is kept as a dead letter of its own.
        let other = Record::parse_dead_letter(b"not json at all", 42);
        assert_eq!((other.reason, other.offset, other.source.as_str(), other.raw.as_str()), ("malformed_json", 42, DEAD_LETTERS_TOPIC, "not json at all"));
    }
}
