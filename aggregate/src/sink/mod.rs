//! Sinks: where closed windows and dead letters go. Every sink implements [`RollupSink`]; a write is
//! tied to the [`OffsetSpan`] of input it covers and is idempotent for that span (writing the same
//! span again replaces, never adds), which is what makes replay after a crash exact.

pub mod memory;
pub mod parquet;

use edgelens_ingest::dead_letter::DeadLetter;

use crate::error::SinkError;
use crate::windows::ClosedWindows;

/// A `(from, to]` range of input offsets of one source partition (line numbers for files, Kafka
/// offsets for topics). File names and dedup keys are derived from it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OffsetSpan {
    /// Source name, e.g. `replay` or a topic name; only `[A-Za-z0-9_-]` (others replaced by `_`).
    pub source: String,
    pub partition: i32,
    pub from: u64,
    pub to: u64,
}

impl OffsetSpan {
    pub fn new(source: &str, partition: i32, from: u64, to: u64) -> Self {
        let source = source.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
        Self { source, partition, from, to }
    }

    /// Stable identifier used in file names: `<source>-p<partition>-<from>-<to>`.
    pub fn id(&self) -> String {
        format!("{}-p{:04}-{:020}-{:020}", self.source, self.partition, self.from, self.to)
    }
}

/// Everything one flush hands to the sinks.
#[derive(Debug, Default)]
pub struct SinkBatch {
    pub closed: ClosedWindows,
    pub dead_letters: Vec<DeadLetter>,
}

impl SinkBatch {
    pub fn is_empty(&self) -> bool {
        self.closed.is_empty() && self.dead_letters.is_empty()
    }

    pub fn rows(&self) -> usize {
        self.closed.len() + self.dead_letters.len()
    }
}

/// A destination of rollups. `write` returns only once the rows are durable.
pub trait RollupSink {
    fn write(&mut self, batch: &SinkBatch, span: &OffsetSpan) -> Result<(), SinkError>;
}
