//! Dead letters: input that edgelens did not count, kept with the reason and a raw excerpt so that
//! nothing is lost silently. Written to the `dead_letters` table (embedded mode) or topic.

use edgelens_schemas::event::raw_excerpt;
use edgelens_schemas::{InvalidReason, Nanos};

/// One rejected input line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// When it was rejected (wall clock, unix ns).
    pub ts: Nanos,
    /// Where it came from, e.g. `replay:access.ndjson.gz` or `logpush`.
    pub source: String,
    /// Line number (0-based) in the source, or offset in the topic partition.
    pub offset: u64,
    /// Stable reason code ([`InvalidReason::code`]).
    pub reason: &'static str,
    /// Human-readable detail.
    pub detail: String,
    /// The first bytes of the input, invalid UTF-8 replaced.
    pub raw: String,
}

impl DeadLetter {
    pub fn new(ts: Nanos, source: &str, offset: u64, reason: &InvalidReason, raw: &[u8]) -> Self {
        Self {
            ts,
            source: source.to_owned(),
            offset,
            reason: reason.code(),
            detail: reason.to_string(),
            raw: raw_excerpt(raw),
        }
    }
}

/// Wall clock as unix nanoseconds: when a dead letter was rejected.
pub fn now_nanos() -> Nanos {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as Nanos)
}

/// Dead letters counted by reason code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterCounts {
    counts: [u64; InvalidReason::CODES.len()],
}

impl DeadLetterCounts {
    pub fn add(&mut self, reason: &str) {
        if let Some(i) = InvalidReason::CODES.iter().position(|c| *c == reason) {
            self.counts[i] += 1;
        }
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn get(&self, reason: &str) -> u64 {
        InvalidReason::CODES.iter().position(|c| *c == reason).map_or(0, |i| self.counts[i])
    }

    /// Non-zero counts, by reason code.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        InvalidReason::CODES.iter().zip(self.counts).filter(|(_, n)| *n > 0).map(|(c, n)| (*c, n))
    }
}
