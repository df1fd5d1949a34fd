//! The event log ingest appends to: the Kafka topics in the distributed mode ([`crate::kafka`]),
//! an in-memory log in tests and the embedded mode ([`MemoryLog`]).
//!
//! Owns the message format on the topics, which other producers may write too:
//! - `edge-requests`: key = the site (lower-case zone name, UTF-8); value = one Cloudflare Logpush
//!   `http_requests` JSON object, exactly as received (UTF-8, no trailing newline). The key only
//!   spreads sites over partitions (the same site always lands on one partition with the default
//!   partitioner); the aggregator is correct whatever partition an event is on. Events should carry
//!   `RayID`: a redelivered event is then counted once.
//! - `edge-dead-letters`: key = the reason code; value = a JSON object
//!   `{"ts": unix ns, "source": "logpush", "offset": line in batch, "reason": code, "detail": text,
//!   "raw": excerpt}`.
//!
//! Guarantee of [`EventLog::append`]: when it returns `Ok`, every record of the batch is durably
//! in the log (acknowledged by the broker with `acks=all`); on `Err` some may be and some not, and
//! the caller must retry the whole batch (duplicates are removed downstream by `RayID`).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;

use edgelens_schemas::Nanos;

use crate::dead_letter::DeadLetter;
use crate::error::LogError;
use crate::reader::Line;

pub const EVENTS_TOPIC: &str = "edge-requests";
pub const DEAD_LETTERS_TOPIC: &str = "edge-dead-letters";

/// One message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

impl Record {
    /// The `edge-requests` record of a valid line (key = site, value = the line as received), or
    /// the dead letter that takes the place of an invalid one.
    pub fn from_line(line: &Line<'_>, source: &str, line_no: u64, now: Nanos) -> Result<Record, DeadLetter> {
        match line.parse() {
            Ok(ev) => Ok(Record { key: ev.site.as_bytes().to_vec(), value: line.raw().to_vec() }),
            Err((reason, raw)) => Err(DeadLetter::new(now, source, line_no, &reason, raw)),
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
        Record { key: d.reason.as_bytes().to_vec(), value: value.to_string().into_bytes() }
    }
}

/// An append-only, partitioned log of records.
pub trait EventLog: Send + Sync + 'static {
    /// Append `records` to `topic`; resolves when all are durable (see the module docs).
    fn append(&self, topic: &str, records: &[Record]) -> impl Future<Output = Result<(), LogError>> + Send;
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
}
