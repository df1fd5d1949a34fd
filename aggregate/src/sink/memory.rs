//! In-memory sink for tests: keeps every write by span, replacing an earlier write of the same span
//! (the idempotency every real sink guarantees).

use std::collections::BTreeMap;

use arrow::array::RecordBatch;

use super::{OffsetSpan, ReplayRun, RollupSink, SinkBatch};
use crate::batches;
use crate::error::SinkError;

#[derive(Debug, Default)]
pub struct MemorySink {
    /// span → (table name, batch)
    pub writes: BTreeMap<OffsetSpan, Vec<(&'static str, RecordBatch)>>,
    /// Replays recorded, by source.
    pub replays: BTreeMap<String, ReplayRun>,
}

impl MemorySink {
    /// All batches of one table, in span order.
    pub fn table(&self, name: &str) -> Vec<RecordBatch> {
        self.writes.values().flatten().filter(|(t, _)| *t == name).map(|(_, b)| b.clone()).collect()
    }
}

impl RollupSink for MemorySink {
    fn write(&mut self, batch: &SinkBatch, span: &OffsetSpan) -> Result<(), SinkError> {
        let tables = batches::sink_batches(batch)?;
        self.writes.insert(span.clone(), tables.into_iter().map(|(t, b)| (t.name, b)).collect());
        Ok(())
    }

    fn discard_after(&mut self, source: &str, partition: i32, position: u64, keep_empty: bool) -> Result<u64, SinkError> {
        let before = self.writes.len();
        let source = OffsetSpan::sanitize_source(source);
        self.writes.retain(|s, _| !(s.source == source && s.partition == partition && s.written_after(position, keep_empty)));
        Ok((before - self.writes.len()) as u64)
    }

    fn replay_runs(&self) -> Result<Vec<ReplayRun>, SinkError> {
        Ok(self.replays.values().cloned().collect())
    }

    fn record_replay_run(&mut self, run: &ReplayRun) -> Result<(), SinkError> {
        self.replays.insert(run.source.clone(), run.clone());
        Ok(())
    }

    fn forget_replay_run(&mut self, source: &str) -> Result<(), SinkError> {
        self.replays.remove(source);
        Ok(())
    }
}
