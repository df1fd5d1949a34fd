//! The Logpush HTTP receiver: `POST /v1/logpush` takes a batch of `http_requests` NDJSON lines
//! (gzip or plain, as Cloudflare Logpush's HTTP destination pushes them), validates every line,
//! appends the valid events to the events topic (key = the site's registrable domain; one message
//! per key and time slice, see [`Packer`]) and the rejected lines to the dead-letters topic, and answers only after the log
//! has acknowledged all of them.
//!
//! Answers:
//! - 200 `{"accepted": N, "dead_letters": M}` — everything of the batch is durable.
//! - 200 `{"accepted": 0, "dead_letters": 0, "destination_check": true}` — the body is Cloudflare's
//!   destination check (`{"content":"tests"}`, pushed when a Logpush job is created or changed):
//!   nothing is appended, it is counted in `edgelens_ingest_destination_checks_total`.
//! - 401 — the shared-secret header is missing or wrong (when a secret is configured).
//! - 400 — the body is not valid gzip.
//! - 413 — the body, or its decompressed size (gzip bombs), is over the limit, its rejected lines
//!   would take more memory as dead letters than a batch's may ([`DecodeBudget`]), or the batch
//!   needs more messages than the producer's queue holds (`producer_queue_messages`).
//! - 415 — a `Content-Encoding` other than gzip (`x-gzip`) or identity: the body is not decoded.
//! - 429 + `Retry-After` — too many batches in flight, the batches in flight hold the whole
//!   decompression budget (`max_decompressed_bytes_total`, see [`DecodeBudget`]), or the producer
//!   queue is full.
//! - 503 + `Retry-After` — the log did not acknowledge in time (broker down).
//!
//! A body not needed for the answer (401, 413, 415, 429 answered before it is read) is read and
//! thrown away after the answer ([`discard_unread`]), so that a client that sends its whole body
//! before it reads gets the answer rather than a reset connection.
//!
//! Nothing is dropped silently: a batch is either acknowledged (200) or the client is told to
//! send it again. The receiver remembers the batches it has not answered 200 yet
//! ([`Unfinished`]: in flight, refused, or given up by their client); a batch sent again is
//! packed into the same messages with the same ids ([`crate::log::MESSAGE_ID_HEADER`]), keyed by
//! the site registry its first attempt was keyed by (even if it was read again since), and
//! they are marked as resent ([`crate::log::RESEND_HEADER`]): those of them that reached the log
//! the first time are not counted again downstream, whether their events carry `RayID` or not. A
//! batch equal to one answered 200 is another batch, counted again: its messages' ids are its
//! own (they carry the batch's instance number), so its resends are not taken for the earlier
//! batch's messages. The rejected lines of a batch sent again are not appended again when an earlier
//! attempt's dead letters were all acknowledged.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use edgelens_schemas::net::{ConnectionLimits, LimitedListener};
use edgelens_schemas::settings;
use edgelens_schemas::sites::HostSites;
use futures::StreamExt;
use tokio::sync::Semaphore;

use crate::dead_letter::{now_nanos, DeadLetter};
use crate::error::LogError;
use crate::log::{EventLog, Packer, Record};
use crate::reader::{starts_like_gzip, GzipMembers, LineReader};

/// Settings of the ingest role (`[ingest]` in the config file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Address of the HTTP receiver: `IP:PORT` or `HOST:PORT`.
    #[serde(deserialize_with = "edgelens_schemas::net::listen_addr::deserialize")]
    pub listen: SocketAddr,
    /// Kafka bootstrap servers, `host:port[,host:port…]`.
    pub brokers: String,
    pub events_topic: String,
    pub dead_letters_topic: String,
    /// Header that must carry `secret` (Logpush sends it via the destination's `header_…`
    /// parameter). No check when `secret` is empty.
    pub secret_header: String,
    pub secret: String,
    /// Largest accepted request body (compressed), bytes.
    pub max_body_bytes: usize,
    /// Largest accepted decompressed batch, bytes.
    pub max_decompressed_bytes: usize,
    /// Decompressed bytes all batches in flight may hold together (at least
    /// `max_decompressed_bytes`); a batch that would go over gets 429. Bounds the memory of many
    /// concurrent large batches or gzip bombs, each under `max_decompressed_bytes`.
    pub max_decompressed_bytes_total: usize,
    /// Longest accepted line; longer ones are dead-lettered.
    pub max_line_bytes: usize,
    /// Batches handled at once; more get 429.
    pub max_inflight_batches: usize,
    /// How long a batch waits for the broker's acknowledgements before 503, milliseconds.
    pub ack_timeout_ms: u64,
    /// `Retry-After` of 429/503 answers, seconds.
    pub retry_after_secs: u32,
    /// Upper bound of messages in the producer's local queue.
    pub producer_queue_messages: u32,
    /// Seconds a client has to send a whole request body; a slower one gets 408.
    pub body_timeout_secs: u64,
    /// Connections open at once; more wait in the accept queue until one closes.
    pub max_connections: usize,
    /// Seconds without traffic before a connection is closed (kept at least the body and
    /// acknowledgement timeouts + 5 s, so a batch being received or acknowledged is never cut).
    pub idle_timeout_secs: u64,
    /// Seconds a client has to send a request's headers (however slowly they trickle in); also
    /// how long a keep-alive connection waits for its next request.
    pub header_timeout_secs: u64,
    /// `ingest file`: how long to wait for the brokers to answer (and know the events topic)
    /// before failing with the reason, milliseconds. Once they answered, a broker that goes away
    /// is waited for, batch by batch.
    pub connect_timeout_ms: u64,
    /// The lake whose site registry (`sites`) is read, now and every 30 s, to key a line by the
    /// site its host belongs to, as the aggregators count it (read only). Unset: the
    /// `[aggregate] data_dir` of the same config. A lake without a registry, or none at this path
    /// (a warning says so), keys every line by its site's registrable domain, which splits only
    /// the hosts of registered sites that are public suffixes themselves (`nhs.uk`) or have list
    /// rules below them (`kobe.jp`).
    pub data_dir: Option<std::path::PathBuf>,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8090".parse().expect("valid default address"),
            brokers: "127.0.0.1:9092".into(),
            events_topic: crate::log::EVENTS_TOPIC.into(),
            dead_letters_topic: crate::log::DEAD_LETTERS_TOPIC.into(),
            secret_header: "x-edgelens-secret".into(),
            secret: String::new(),
            max_body_bytes: 64 << 20,
            max_decompressed_bytes: 512 << 20,
            max_decompressed_bytes_total: 1 << 30,
            max_line_bytes: crate::reader::DEFAULT_MAX_LINE,
            max_inflight_batches: 16,
            ack_timeout_ms: 10_000,
            retry_after_secs: 5,
            producer_queue_messages: 1_000_000,
            body_timeout_secs: 60,
            max_connections: 1024,
            idle_timeout_secs: 120,
            header_timeout_secs: 30,
            connect_timeout_ms: 30_000,
            data_dir: None,
        }
    }
}

/// A batch split into what goes to which topic.
#[derive(Debug, Default)]
pub struct DecodedBatch {
    /// The valid events, packed into messages per site ([`Packer`]).
    pub messages: Vec<Record>,
    /// The batch's name, its rejected lines included ([`Packer::take_unnamed`]): each attempt
    /// names the messages after it ([`Attempt::message_name`]).
    pub name: String,
    /// Number of valid events in `messages`.
    pub events: u64,
    pub dead_letters: Vec<DeadLetter>,
    /// The body was Logpush's destination check ([`is_destination_check`]), not log lines.
    pub destination_check: bool,
}

/// Whether a decompressed body is the check Cloudflare pushes to an HTTP destination before it
/// creates (or changes) a Logpush job: one object `{"content":"tests"}`. It is not a log line; taken
/// as one it was a dead letter for every job set up.
pub fn is_destination_check(text: &[u8]) -> bool {
    const CHECK: &[u8] = br#"{"content":"tests"}"#;
    text.len() < 64 && text.iter().copied().filter(|b| !b.is_ascii_whitespace()).eq(CHECK.iter().copied())
}

/// Why a batch was refused as a whole (nothing of it is appended).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    #[error("decompressed batch exceeds {limit} bytes")]
    TooLarge { limit: usize },
    #[error("body is not valid gzip: {0}")]
    BadGzip(String),
    /// The batches in flight hold the whole decompression budget: retry later (HTTP 429).
    #[error("the batches being received hold the decompression budget of {limit} bytes; retry later")]
    Busy { limit: usize },
    /// The batch's rejected lines, each kept as a dead letter with its reason and excerpt, would
    /// take more memory than a batch's dead letters may ([`DecodeBudget::shared`]; HTTP 413): a
    /// few KB of gzip can hold millions of bad lines.
    #[error("the batch's rejected lines, as dead letters, take more than {limit} bytes (after {lines} of them): send NDJSON of http_requests events, in smaller batches")]
    TooManyRejected { lines: usize, limit: usize },
}

impl IngestConfig {
    /// Settings that cannot work together: every one of them, a line each.
    pub fn validate(&self) -> Result<(), String> {
        let secret = || {
            if self.secret.is_empty() {
                return Ok(());
            }
            if HeaderName::from_bytes(self.secret_header.as_bytes()).is_err() {
                return Err(format!(
                    "ingest.secret_header {:?} is not an HTTP header name: no push could carry the secret, every one would get 401",
                    self.secret_header
                ));
            }
            if HeaderValue::from_str(&self.secret).is_err() {
                return Err("ingest.secret holds characters an HTTP header value cannot (control characters, line breaks): every push would get 401".into());
            }
            if self.secret.trim() != self.secret {
                return Err("ingest.secret starts or ends with white space, which HTTP drops from header values: every push would get 401".into());
            }
            Ok(())
        };
        settings::all([
            settings::not_empty("ingest", &[("brokers", &self.brokers), ("events_topic", &self.events_topic), ("dead_letters_topic", &self.dead_letters_topic)]),
            if self.brokers.trim().is_empty() { Ok(()) } else { crate::kafka::check_brokers(&self.brokers).map_err(|e| format!("ingest.brokers {e}")) },
            // Each 0 would turn the role off in its own way (every batch 413 or 503, every
            // connection closed at once, clients told to retry at once).
            settings::at_least_one(
                "ingest",
                &[
                    ("max_body_bytes", self.max_body_bytes as u64),
                    ("max_decompressed_bytes", self.max_decompressed_bytes as u64),
                    ("max_line_bytes", self.max_line_bytes as u64),
                    ("max_inflight_batches", self.max_inflight_batches as u64),
                    ("ack_timeout_ms", self.ack_timeout_ms),
                    ("retry_after_secs", u64::from(self.retry_after_secs)),
                    ("producer_queue_messages", u64::from(self.producer_queue_messages)),
                    ("body_timeout_secs", self.body_timeout_secs),
                    ("max_connections", self.max_connections as u64),
                    ("idle_timeout_secs", self.idle_timeout_secs),
                    ("header_timeout_secs", self.header_timeout_secs),
                    ("connect_timeout_ms", self.connect_timeout_ms),
                ],
            ),
            if self.max_decompressed_bytes_total < self.max_decompressed_bytes {
                Err(format!(
                    "ingest.max_decompressed_bytes_total ({}) is below ingest.max_decompressed_bytes ({}): a batch of that size could never be taken",
                    self.max_decompressed_bytes_total, self.max_decompressed_bytes
                ))
            } else {
                Ok(())
            },
            secret(),
        ])
    }
}

/// The decompressed bytes the batches in flight may hold together. A batch reserves its text as it
/// inflates (chunks of at most [`INFLATE_STEP`]) and keeps the reservation until it is answered,
/// since its packed messages take about as much; a batch whose next chunk does not fit is
/// refused as [`BatchError::Busy`].
#[derive(Debug)]
pub struct DecodeBudget {
    limit: usize,
    used: AtomicUsize,
    /// The most one batch's dead letters may hold: half its share of the budget when every batch
    /// in flight holds as much (the other half for its text, which for a batch of rejected lines
    /// is far less), so that batches refused for their rejected lines (413) are not refused as
    /// busy (429, retried for good) because others like them hold the rest.
    dead_letters_share: usize,
}

/// The most a batch inflates at a time.
pub const INFLATE_STEP: usize = 1 << 20;

impl DecodeBudget {
    pub fn new(limit: usize) -> Arc<Self> {
        Self::shared(limit, 1)
    }

    /// A budget of `limit` bytes for at most `batches` batches in flight; a batch's dead letters
    /// may hold half of `limit / batches`.
    pub fn shared(limit: usize, batches: usize) -> Arc<Self> {
        Arc::new(DecodeBudget { limit, used: AtomicUsize::new(0), dead_letters_share: limit / batches.max(1) / 2 })
    }

    /// No limit (tests, fuzzing).
    pub fn unlimited() -> Arc<Self> {
        Self::new(usize::MAX)
    }

    /// Bytes reserved by the batches in flight.
    pub fn in_use(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// An empty reservation, grown with [`Reservation::grow_to`]; released when dropped.
    pub fn reservation(self: &Arc<Self>) -> Reservation {
        Reservation { budget: Arc::clone(self), bytes: 0 }
    }
}

/// Bytes of a [`DecodeBudget`] held by one batch.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<DecodeBudget>,
    bytes: usize,
}

impl Reservation {
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Hold `bytes` in all (never less than now); false, holding what it held, when the budget
    /// has not that much left.
    pub fn grow_to(&mut self, bytes: usize) -> bool {
        let Some(more) = bytes.checked_sub(self.bytes).filter(|&m| m > 0) else { return true };
        let limit = self.budget.limit;
        let taken = self.budget.used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| u.checked_add(more).filter(|&n| n <= limit));
        if taken.is_ok() {
            self.bytes = bytes;
        }
        taken.is_ok()
    }

    fn shrink_to(&mut self, bytes: usize) {
        if bytes < self.bytes {
            self.budget.used.fetch_sub(self.bytes - bytes, Ordering::AcqRel);
            self.bytes = bytes;
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.shrink_to(0);
    }
}

/// Inflate a gzip body (every member, zero padding after the last ignored) into at most `max`
/// bytes; the output's allocation is reserved in `held` before it is made.
fn inflate(body: &[u8], max: usize, held: &mut Reservation) -> Result<Vec<u8>, BatchError> {
    let mut decoder = GzipMembers::new(body);
    let mut out = Vec::new();
    let mut chunk = vec![0u8; INFLATE_STEP];
    loop {
        let n = match decoder.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(BatchError::BadGzip(e.to_string())),
        };
        if out.len() + n > max {
            return Err(BatchError::TooLarge { limit: max });
        }
        let need = out.len() + n;
        if need > out.capacity() {
            // Double as a Vec would, within `max`; exactly what is needed when the budget has
            // no room for more.
            let doubled = need.max(out.capacity().saturating_mul(2)).min(max);
            let cap = if held.grow_to(doubled) {
                doubled
            } else if held.grow_to(need) {
                need
            } else {
                return Err(BatchError::Busy { limit: held.budget.limit });
            };
            out.reserve_exact(cap - out.len());
        }
        out.extend_from_slice(&chunk[..n]);
    }
    Ok(out)
}

/// Whether the `Content-Encoding` says gzip (`gzip`, `x-gzip`); `identity` or none is plain.
/// Any other coding (deflate, br, zstd, …) is refused rather than read as plain text: its lines
/// would all be dead letters under a 200 that tells the shipper the batch is done.
pub fn gzip_encoding(headers: &HeaderMap) -> Result<bool, String> {
    let mut gzip = false;
    for value in headers.get_all(header::CONTENT_ENCODING) {
        let text = value.to_str().map_err(|_| "Content-Encoding is not text".to_owned())?;
        for coding in text.split(',').map(|c| c.trim().to_ascii_lowercase()).filter(|c| !c.is_empty()) {
            match coding.as_str() {
                "identity" => {}
                "gzip" | "x-gzip" if !gzip => gzip = true,
                "gzip" | "x-gzip" => return Err(format!("Content-Encoding {text:?} compresses the body more than once: send it compressed once, as gzip, or plain NDJSON")),
                other => return Err(format!("Content-Encoding {other:?} is not supported: send the batch as gzip or plain NDJSON")),
            }
        }
    }
    Ok(gzip)
}

/// Decompress (when gzip: by header or by magic bytes) and validate a batch. Pure apart from the
/// decompression; `now` stamps the dead letters.
pub fn decode_batch(body: &[u8], gzip_header: bool, max_decompressed: usize, max_line: usize, now: i64) -> Result<DecodedBatch, BatchError> {
    decode_batch_within(body, gzip_header, max_decompressed, max_line, now, &DecodeBudget::unlimited(), &HostSites::default()).map(|(batch, _)| batch)
}

/// [`decode_batch`] holding the batch's text in `budget` (the reservation returned is to be kept
/// until the batch is answered: its messages take about as much memory), its events keyed by the
/// sites `sites` maps their hosts to ([`Packer::with_sites`]).
pub fn decode_batch_within(
    body: &[u8],
    gzip_header: bool,
    max_decompressed: usize,
    max_line: usize,
    now: i64,
    budget: &Arc<DecodeBudget>,
    sites: &HostSites,
) -> Result<(DecodedBatch, Reservation), BatchError> {
    let gz = gzip_header || starts_like_gzip(body);
    let mut held = budget.reservation();
    let owned;
    let text: &[u8] = if gz {
        owned = inflate(body, max_decompressed, &mut held)?;
        // A body compressed twice would otherwise be taken as lines of binary, each a dead letter.
        if starts_like_gzip(&owned) {
            return Err(BatchError::BadGzip("it is gzip inside gzip: compress the body once".into()));
        }
        &owned
    } else {
        if body.len() > max_decompressed {
            return Err(BatchError::TooLarge { limit: max_decompressed });
        }
        if !held.grow_to(body.len()) {
            return Err(BatchError::Busy { limit: budget.limit });
        }
        body
    };
    let mut batch = DecodedBatch::default();
    if is_destination_check(text) {
        batch.destination_check = true;
        return Ok((batch, held));
    }
    let mut packer = Packer::default().with_sites(sites.clone());
    let mut lines = LineReader::new(text, max_line);
    // The dead letters' memory, held with the text: within the batch's limit, its share of the
    // budget, and the budget.
    let mut dead_bytes = 0usize;
    let dead_limit = max_decompressed.min(budget.dead_letters_share);
    loop {
        let Some((line_no, line)) = lines.next_numbered().expect("reading from memory cannot fail") else { break };
        if let Err(dead) = packer.push(&line, "logpush", line_no, now) {
            dead_bytes += dead_letter_bytes(&dead);
            batch.dead_letters.push(dead);
            let lines = batch.dead_letters.len();
            if dead_bytes > dead_limit {
                return Err(BatchError::TooManyRejected { lines, limit: dead_limit });
            }
            if !held.grow_to(held.bytes().max(text.len() + dead_bytes)) {
                return Err(BatchError::Busy { limit: budget.limit });
            }
        }
    }
    batch.events = packer.events();
    (batch.name, batch.messages) = packer.take_unnamed();
    // The text's spare capacity goes with it; its messages hold about as much as the text.
    held.shrink_to(text.len() + dead_bytes);
    Ok((batch, held))
}

/// About the memory a dead letter takes until its batch is answered: itself and the record
/// appended for it.
fn dead_letter_bytes(d: &DeadLetter) -> usize {
    2 * (std::mem::size_of::<DeadLetter>() + d.source.len() + d.detail.len() + d.raw.len()) + 64
}

/// Counters of the receiver (exported on `/metrics`).
#[derive(Debug, Default)]
pub struct ReceiverMetrics {
    pub batches_accepted: AtomicU64,
    pub destination_checks: AtomicU64,
    pub events_accepted: AtomicU64,
    pub dead_letters: AtomicU64,
    pub rejected_busy: AtomicU64,
    pub rejected_unavailable: AtomicU64,
    pub rejected_too_large: AtomicU64,
    pub rejected_bad_request: AtomicU64,
    pub rejected_unauthorized: AtomicU64,
    pub rejected_timeout: AtomicU64,
    pub rejected_unsupported: AtomicU64,
    pub rejected_by_log: AtomicU64,
    pub failed: AtomicU64,
}

impl ReceiverMetrics {
    fn prometheus(&self) -> String {
        let c = |n: &AtomicU64| n.load(Ordering::Relaxed);
        let mut s = String::new();
        for (name, help, v) in [
            ("edgelens_ingest_batches_accepted_total", "Batches acknowledged with 200.", c(&self.batches_accepted)),
            ("edgelens_ingest_events_accepted_total", "Valid events appended to the events topic.", c(&self.events_accepted)),
            ("edgelens_ingest_dead_letters_total", "Rejected lines appended to the dead-letters topic.", c(&self.dead_letters)),
            ("edgelens_ingest_destination_checks_total", "Logpush destination checks answered 200 (nothing appended).", c(&self.destination_checks)),
        ] {
            s += &format!("# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n");
        }
        let name = "edgelens_ingest_batches_rejected_total";
        s += &format!("# HELP {name} Batches answered with an error, by status.\n# TYPE {name} counter\n");
        for (status, v) in [
            ("429", c(&self.rejected_busy)),
            ("503", c(&self.rejected_unavailable)),
            ("413", c(&self.rejected_too_large)),
            ("400", c(&self.rejected_bad_request)),
            ("401", c(&self.rejected_unauthorized)),
            ("408", c(&self.rejected_timeout)),
            ("415", c(&self.rejected_unsupported)),
            ("502", c(&self.rejected_by_log)),
            ("500", c(&self.failed)),
        ] {
            s += &format!("{name}{{status=\"{status}\"}} {v}\n");
        }
        s
    }
}

struct ReceiverState<L> {
    cfg: IngestConfig,
    log: Arc<L>,
    sites: HostSites,
    inflight: Semaphore,
    budget: Arc<DecodeBudget>,
    metrics: ReceiverMetrics,
    unfinished: Unfinished,
}

/// The batches (by name) the receiver took in but has not answered 200: in flight, refused with
/// 429/503, or whose client gave up waiting. Part of such a batch may be in the log, so when it
/// comes again its messages are marked as resent; and when its dead letters were all
/// acknowledged before, they are not appended again. A name goes once an attempt was answered 200
/// and no other attempt of it is in flight. Bounded: names older than [`Self::KEEP`] go, and
/// beyond [`Self::MAX`] names the older half goes (with a warning: their resends count again).
///
/// Each batch taken in gets an instance number, kept by its attempts: its messages' ids carry it
/// ([`Attempt::message_name`]), so that a batch equal to one answered 200 before (another batch)
/// has ids of its own, and its resends are told from the earlier batch's messages downstream.
#[derive(Debug)]
pub struct Unfinished {
    names: std::sync::Mutex<std::collections::HashMap<String, UnfinishedBatch>>,
    /// The next instance number: from the wall clock at start (ns), so that a restarted receiver
    /// does not give the numbers of before.
    next_instance: AtomicU64,
}

impl Default for Unfinished {
    fn default() -> Self {
        Unfinished { names: Default::default(), next_instance: AtomicU64::new(now_nanos().max(0) as u64) }
    }
}

#[derive(Debug)]
struct UnfinishedBatch {
    /// When an attempt of it last started.
    started: std::time::Instant,
    in_flight: u32,
    /// An earlier attempt had all its dead letters acknowledged.
    dead_letters_in: bool,
    /// The instance of the batch its attempts are of.
    instance: u64,
    /// The registry its first attempt was keyed by: its attempts are keyed alike.
    keyed_by: HostSites,
}

/// What the receiver knows of a batch when an attempt of it starts ([`Unfinished::start`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// An earlier attempt was taken in and not answered 200: part of it may be in the log.
    pub resend: bool,
    /// An earlier attempt's dead letters are all in the log.
    pub dead_letters_in: bool,
    /// The batch's instance: the same for every attempt of it, another for an equal batch taken
    /// in after one was answered 200.
    pub instance: u64,
}

impl Attempt {
    /// The name the messages of batch `name` are given in this attempt (the part of their ids
    /// before `/`).
    pub fn message_name(&self, name: &str) -> String {
        format!("{name}.{:x}", self.instance)
    }
}

impl Unfinished {
    /// Longer than the default lateness horizon (10 min): a batch resent later is too late
    /// downstream anyway, as long as event time moved on.
    pub const KEEP: Duration = Duration::from_secs(15 * 60);
    pub const MAX: usize = 100_000;

    /// Note that an attempt of batch `name`, keyed by the registry `keyed_by`, starts; what is
    /// known of earlier ones.
    pub fn start(&self, name: &str, keyed_by: &HostSites) -> Attempt {
        let now = std::time::Instant::now();
        let mut names = self.names.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if names.len() >= Self::MAX && !names.contains_key(name) {
            names.retain(|_, b| now.duration_since(b.started) < Self::KEEP);
            if names.len() >= Self::MAX {
                let mut times: Vec<std::time::Instant> = names.values().map(|b| b.started).collect();
                let middle = times.len() / 2;
                let (_, cut, _) = times.select_nth_unstable(middle);
                let cut = *cut;
                names.retain(|_, b| b.started > cut);
                tracing::warn!(kept = names.len(), "too many unfinished Logpush batches: the older half is forgotten, and their resends are counted again unless their events carry RayID");
            }
        }
        match names.get_mut(name) {
            Some(b) if now.duration_since(b.started) < Self::KEEP => {
                b.started = now;
                b.in_flight += 1;
                Attempt { resend: true, dead_letters_in: b.dead_letters_in, instance: b.instance }
            }
            _ => {
                let instance = self.next_instance.fetch_add(1, Ordering::Relaxed);
                let batch = UnfinishedBatch { started: now, in_flight: 1, dead_letters_in: false, instance, keyed_by: keyed_by.snapshot() };
                names.insert(name.to_owned(), batch);
                Attempt { resend: false, dead_letters_in: false, instance }
            }
        }
    }

    /// The registry the attempts of batch `name` are keyed by, if it is unfinished: the one its
    /// first attempt was keyed by. Keyed by a registry read again since, a host's lines might go
    /// under another key, to another partition, where the events of the earlier attempt that
    /// reached the log are not known, and would count twice.
    pub fn keyed_by(&self, name: &str) -> Option<HostSites> {
        let names = self.names.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        names.get(name).filter(|b| b.started.elapsed() < Self::KEEP).map(|b| b.keyed_by.clone())
    }

    /// An attempt of batch `name` ended: answered 200 (`ok`) or not, its dead letters all
    /// acknowledged (`dead_letters_in`) or not. An attempt whose client went away ends not
    /// answered 200 ([`AttemptGuard`]): its name stays until an attempt is, or it is
    /// [`Self::KEEP`] old.
    pub fn end(&self, name: &str, ok: bool, dead_letters_in: bool) {
        let mut names = self.names.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(b) = names.get_mut(name) {
            b.in_flight = b.in_flight.saturating_sub(1);
            b.dead_letters_in |= dead_letters_in;
            if ok && b.in_flight == 0 {
                names.remove(name);
            }
        }
    }
}

/// An attempt of a batch in flight: ends it as not answered 200 when dropped before
/// [`AttemptGuard::end`] (its client went away and the request's handler was dropped). Such an
/// attempt kept its batch in flight for good, so every later equal batch, even one answered 200
/// long after, was marked resent and dropped downstream.
struct AttemptGuard<'a> {
    unfinished: &'a Unfinished,
    name: &'a str,
    ended: bool,
}

impl AttemptGuard<'_> {
    fn end(mut self, ok: bool, dead_letters_in: bool) {
        self.ended = true;
        self.unfinished.end(self.name, ok, dead_letters_in);
    }
}

impl Drop for AttemptGuard<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.unfinished.end(self.name, false, false);
        }
    }
}

/// The receiver's routes: `POST /v1/logpush`, `GET /healthz` (the process answers), `GET /readyz`
/// (the event log takes appends to the events and dead-letters topics: 503 with the reason
/// otherwise), `GET /metrics`. Events are keyed by the sites `sites` maps their hosts to.
/// A configuration [`IngestConfig::validate`] refuses for its budget below one batch gets the
/// budget of one batch, with a warning.
pub fn router<L: EventLog>(cfg: IngestConfig, log: Arc<L>, sites: HostSites) -> Router {
    if cfg.max_decompressed_bytes_total < cfg.max_decompressed_bytes {
        tracing::warn!(
            total = cfg.max_decompressed_bytes_total,
            batch = cfg.max_decompressed_bytes,
            "max_decompressed_bytes_total is below max_decompressed_bytes: raised to it"
        );
    }
    let budget = DecodeBudget::shared(cfg.max_decompressed_bytes_total.max(cfg.max_decompressed_bytes), cfg.max_inflight_batches);
    let state = Arc::new(ReceiverState {
        inflight: Semaphore::new(cfg.max_inflight_batches.max(1)),
        budget,
        cfg,
        log,
        sites,
        metrics: ReceiverMetrics::default(),
        unfinished: Unfinished::default(),
    });
    Router::new()
        .route("/v1/logpush", post(logpush::<L>))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready::<L>))
        .route("/metrics", get(metrics::<L>))
        .with_state(state)
}

async fn ready<L: EventLog>(State(st): State<Arc<ReceiverState<L>>>) -> Response {
    // Both topics: a batch with one invalid line needs the dead-letters topic as much as the
    // events topic, and gets 503 without it.
    let probes = async {
        let (events, dead_letters) = tokio::join!(st.log.probe(&st.cfg.events_topic), st.log.probe(&st.cfg.dead_letters_topic));
        events.and(dead_letters)
    };
    match tokio::time::timeout(Duration::from_secs(3), probes).await {
        Ok(Ok(())) => "ready".into_response(),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}")).into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "not ready: the event log did not answer within 3 s").into_response(),
    }
}

async fn metrics<L: EventLog>(State(st): State<Arc<ReceiverState<L>>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], st.metrics.prometheus())
}

fn error(status: StatusCode, msg: String, retry_after: Option<u32>) -> Response {
    let mut r = (status, Json(serde_json::json!({ "error": msg }))).into_response();
    if let Some(s) = retry_after {
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

fn announced_length(headers: &HeaderMap) -> Option<usize> {
    headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok())
}

/// A request body the answer does not need (401, 413, 415, 429 answered before it is read), read
/// and thrown away in the background: at most `budget` bytes, within `within`.
///
/// Most HTTP clients send a whole body before they read the answer, and a connection closed with
/// bytes of the body unread is reset: such a client got a broken pipe instead of its answer. A
/// body announced larger than `budget` is not waited for, nor one its client sends only once told
/// to continue (`Expect: 100-continue`: it reads the answer first).
fn discard_unread(headers: &HeaderMap, body: Body, budget: usize, within: Duration) {
    let awaits_continue = headers.get(header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if awaits_continue || announced_length(headers).is_some_and(|n| n > budget) {
        return;
    }
    discard_rest(body.into_data_stream(), budget, within);
}

/// What is left of a body, read and thrown away in the background (see [`discard_unread`]).
fn discard_rest(mut stream: axum::body::BodyDataStream, budget: usize, within: Duration) {
    tokio::spawn(tokio::time::timeout(within, async move {
        let mut read = 0usize;
        while let Some(Ok(chunk)) = stream.next().await {
            read += chunk.len();
            if read > budget {
                return;
            }
        }
    }));
}

/// The request body: at most `limit` bytes (413 beyond), all of it within `deadline` (408 after).
/// The rest of a body found too large is thrown away in the background ([`discard_unread`]).
async fn read_body(headers: &HeaderMap, body: Body, limit: usize, deadline: Duration) -> Result<Vec<u8>, (StatusCode, String)> {
    let too_large = || (StatusCode::PAYLOAD_TOO_LARGE, format!("request body larger than {limit} bytes"));
    let announced = announced_length(headers);
    if announced.is_some_and(|n| n > limit) {
        // A body somewhat over the limit is read through, so that its client sees the 413.
        discard_unread(headers, body, limit.saturating_mul(2), deadline);
        return Err(too_large());
    }
    let read = async {
        let mut stream = body.into_data_stream();
        let mut buf = Vec::with_capacity(announced.unwrap_or(0));
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| (StatusCode::BAD_REQUEST, format!("reading the request body: {e}")))?;
            if buf.len() + chunk.len() > limit {
                discard_rest(stream, limit, deadline);
                return Err(too_large());
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf)
    };
    tokio::time::timeout(deadline, read).await.unwrap_or_else(|_| {
        Err((StatusCode::REQUEST_TIMEOUT, format!("the request body did not arrive within {} s", deadline.as_secs_f64())))
    })
}

/// A decoded batch, or the answer to its decoding's failure.
fn decoded(
    res: Result<Result<(DecodedBatch, Reservation), BatchError>, tokio::task::JoinError>,
    m: &ReceiverMetrics,
    retry_after_secs: u32,
) -> Result<(DecodedBatch, Reservation), Response> {
    match res {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(e @ BatchError::Busy { .. })) => {
            m.rejected_busy.fetch_add(1, Ordering::Relaxed);
            Err(error(StatusCode::TOO_MANY_REQUESTS, e.to_string(), Some(retry_after_secs)))
        }
        Ok(Err(e @ (BatchError::TooLarge { .. } | BatchError::TooManyRejected { .. }))) => {
            m.rejected_too_large.fetch_add(1, Ordering::Relaxed);
            Err(error(StatusCode::PAYLOAD_TOO_LARGE, e.to_string(), None))
        }
        Ok(Err(e @ BatchError::BadGzip(_))) => {
            m.rejected_bad_request.fetch_add(1, Ordering::Relaxed);
            Err(error(StatusCode::BAD_REQUEST, e.to_string(), None))
        }
        Err(e) => {
            m.failed.fetch_add(1, Ordering::Relaxed);
            Err(error(StatusCode::INTERNAL_SERVER_ERROR, format!("decoding task failed: {e}"), None))
        }
    }
}

async fn logpush<L: EventLog>(State(st): State<Arc<ReceiverState<L>>>, headers: HeaderMap, body: Body) -> Response {
    let m = &st.metrics;
    let body_timeout = Duration::from_secs(st.cfg.body_timeout_secs.max(1));
    let unread = |body| discard_unread(&headers, body, st.cfg.max_body_bytes, body_timeout);
    if !st.cfg.secret.is_empty() {
        let ok = headers.get(st.cfg.secret_header.as_str()).is_some_and(|v| v.as_bytes() == st.cfg.secret.as_bytes());
        if !ok {
            m.rejected_unauthorized.fetch_add(1, Ordering::Relaxed);
            unread(body);
            return error(StatusCode::UNAUTHORIZED, format!("missing or wrong {} header", st.cfg.secret_header), None);
        }
    }
    let gzip_header = match gzip_encoding(&headers) {
        Ok(gz) => gz,
        Err(msg) => {
            m.rejected_unsupported.fetch_add(1, Ordering::Relaxed);
            unread(body);
            return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, msg, None);
        }
    };
    let Ok(_permit) = st.inflight.try_acquire() else {
        m.rejected_busy.fetch_add(1, Ordering::Relaxed);
        unread(body);
        return error(StatusCode::TOO_MANY_REQUESTS, "too many batches in flight".into(), Some(st.cfg.retry_after_secs));
    };
    // Read under the batch's slot, so that at most `max_inflight_batches` bodies are in memory.
    let body = match read_body(&headers, body, st.cfg.max_body_bytes, body_timeout).await {
        Ok(b) => b,
        Err((status, msg)) => {
            let counter = match status {
                StatusCode::PAYLOAD_TOO_LARGE => &m.rejected_too_large,
                StatusCode::REQUEST_TIMEOUT => &m.rejected_timeout,
                _ => &m.rejected_bad_request,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            return error(status, msg, None);
        }
    };
    let (max_dec, max_line) = (st.cfg.max_decompressed_bytes, st.cfg.max_line_bytes);
    let now = now_nanos();
    let body = Arc::new(body);
    let decode = |sites: HostSites| {
        let (budget, body) = (Arc::clone(&st.budget), Arc::clone(&body));
        tokio::task::spawn_blocking(move || decode_batch_within(&body, gzip_header, max_dec, max_line, now, &budget, &sites))
    };
    let mut sites = st.sites.snapshot();
    // The reservation is held until the answer: the batch's messages are in memory until then.
    let (mut batch, mut _held) = match decoded(decode(sites.clone()).await, m, st.cfg.retry_after_secs) {
        Ok(b) => b,
        Err(answer) => return answer,
    };
    // A resend is keyed as its first attempt was, whatever registry was read since.
    if let Some(first) = st.unfinished.keyed_by(&batch.name)
        && !first.same_as(&sites)
    {
        // Its memory is in the budget: given back before the batch is decoded again.
        drop((batch, _held));
        (batch, _held) = match decoded(decode(first.clone()).await, m, st.cfg.retry_after_secs) {
            Ok(b) => b,
            Err(answer) => return answer,
        };
        sites = first;
    }
    drop(body);
    if batch.destination_check {
        m.destination_checks.fetch_add(1, Ordering::Relaxed);
        tracing::info!("Logpush destination check answered");
        return Json(serde_json::json!({ "accepted": 0, "dead_letters": 0, "destination_check": true })).into_response();
    }
    let (n_events, n_dead) = (batch.events, batch.dead_letters.len() as u64);
    // More messages than the producer's queue holds can never be taken: 429 would be retried
    // for good (and each retry record its dead letters again).
    let records = batch.messages.len() + batch.dead_letters.len();
    if records > st.cfg.producer_queue_messages as usize {
        m.rejected_too_large.fetch_add(1, Ordering::Relaxed);
        let msg = format!(
            "the batch needs {records} messages, more than the producer queue holds ({}): send smaller batches (Logpush max_upload_records)",
            st.cfg.producer_queue_messages
        );
        return error(StatusCode::PAYLOAD_TOO_LARGE, msg, None);
    }
    let attempt = st.unfinished.start(&batch.name, &sites);
    let guard = AttemptGuard { unfinished: &st.unfinished, name: &batch.name, ended: false };
    crate::log::name_messages(&mut batch.messages, &attempt.message_name(&batch.name));
    if attempt.resend {
        for m in &mut batch.messages {
            m.resend = true;
        }
    }
    // An earlier attempt's dead letters are in the log already: recorded once, not per attempt.
    let dead: Vec<Record> = if attempt.dead_letters_in { Vec::new() } else { batch.dead_letters.iter().map(Record::dead_letter).collect() };
    let events_fut = async {
        if batch.messages.is_empty() { Ok(()) } else { st.log.append(&st.cfg.events_topic, &batch.messages).await }
    };
    let dead_fut = async {
        if dead.is_empty() { Ok(()) } else { st.log.append(&st.cfg.dead_letters_topic, &dead).await }
    };
    let (a, b) = tokio::join!(events_fut, dead_fut);
    guard.end(a.is_ok() && b.is_ok(), b.is_ok());
    // Counted once acknowledged, whatever the answer: a retry does not append them again.
    if b.is_ok() {
        m.dead_letters.fetch_add(dead.len() as u64, Ordering::Relaxed);
    }
    if let Err(e) = a.and(b) {
        let retry = Some(st.cfg.retry_after_secs);
        return match e {
            LogError::QueueFull => {
                m.rejected_busy.fetch_add(1, Ordering::Relaxed);
                error(StatusCode::TOO_MANY_REQUESTS, e.to_string(), retry)
            }
            LogError::Unavailable(_) => {
                m.rejected_unavailable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "batch not acknowledged");
                error(StatusCode::SERVICE_UNAVAILABLE, e.to_string(), retry)
            }
            LogError::Rejected(_) | LogError::Config(_) => {
                m.rejected_by_log.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "batch refused by the event log");
                error(StatusCode::BAD_GATEWAY, e.to_string(), None)
            }
        };
    }
    m.batches_accepted.fetch_add(1, Ordering::Relaxed);
    m.events_accepted.fetch_add(n_events, Ordering::Relaxed);
    Json(serde_json::json!({ "accepted": n_events, "dead_letters": n_dead })).into_response()
}

/// The receiver's connection limits: the idle timeout is kept longer than the body and
/// acknowledgement timeouts, so that a batch being received or acknowledged is never cut.
pub fn connection_limits(cfg: &IngestConfig) -> ConnectionLimits {
    let busy = Duration::from_secs(cfg.body_timeout_secs.max(1)).max(Duration::from_millis(cfg.ack_timeout_ms));
    let header = Duration::from_secs(cfg.header_timeout_secs.max(1));
    ConnectionLimits::outlasting(cfg.max_connections, Duration::from_secs(cfg.idle_timeout_secs), header, busy)
}

/// Serve the receiver on `listener` until `shutdown` resolves; in-flight batches finish first.
pub async fn serve_on<L: EventLog>(
    listener: tokio::net::TcpListener,
    cfg: IngestConfig,
    log: Arc<L>,
    sites: HostSites,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "logpush receiver listening");
    let listener = LimitedListener::new(listener, connection_limits(&cfg));
    edgelens_schemas::net::serve(listener, router(cfg, log, sites), shutdown).await
}
