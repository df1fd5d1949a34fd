//! The event log ingest appends to: the Kafka topics in the distributed mode ([`crate::kafka`]),
//! an in-memory log in tests and the embedded mode ([`MemoryLog`]).
//!
//! Owns the message format on the topics, which other producers may write too:
//! - `edge-requests`: key = the site (lower-case zone name, UTF-8); value = one Cloudflare Logpush
//!   `http_requests` JSON object, exactly as received (UTF-8, no trailing newline). edgelens
//!   partitions by the key with murmur2 (`partitioner=murmur2_random`, the Java client's default),
//!   so a site's events share one partition; other producers should do the same. Totals are exact
//!   whatever partition an event is on, but a redelivered event (same `RayID`) is recognised as a
//!   duplicate only on the partition that counted it first. Events should carry `RayID`.
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
        Record { key: d.reason.as_bytes().to_vec(), value: value.to_string().into_bytes() }
    }
}

/// An append-only, partitioned log of records.
pub trait EventLog: Send + Sync + 'static {
    /// Append `records` to `topic`; resolves when all are durable (see the module docs).
    fn append(&self, topic: &str, records: &[Record]) -> impl Future<Output = Result<(), LogError>> + Send;
}

/// A shared log is a log.
impl<L: EventLog> EventLog for std::sync::Arc<L> {
    fn append(&self, topic: &str, records: &[Record]) -> impl Future<Output = Result<(), LogError>> + Send {
        L::append(self, topic, records)
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgelens_schemas::InvalidReason;

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
