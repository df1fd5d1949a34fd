//! SQL function `hll_merge(clients_sketch) -> Int64` (PostgreSQL's `bigint`, as user SQL sees the
//! tables' counts): the distinct-client estimate of the union of
//! the sketches it aggregates (the `clients_sketch` cells of `site_rates_10s` / `asn_1m`), e.g.
//! `SELECT site, hll_merge(clients_sketch) FROM asn_1m GROUP BY site`. Unlike summing
//! `distinct_clients`, a client seen in several rows counts once (within the sketch's ≈1.6 %).
//! NULL cells are skipped; a cell that is not a sketch is an error, not a silent zero.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{create_udaf, Accumulator, AggregateUDF, Volatility};
use edgelens_schemas::sketch::SketchUnion;

pub const NAME: &str = "hll_merge";

/// The `hll_merge` aggregate, to register on a session.
pub fn hll_merge() -> AggregateUDF {
    create_udaf(
        NAME,
        vec![DataType::Binary],
        Arc::new(DataType::Int64),
        Volatility::Immutable,
        Arc::new(|_| Ok(Box::new(HllMerge::default()))),
        Arc::new(vec![DataType::Binary]),
    )
}

#[derive(Debug, Default)]
struct HllMerge {
    union: Option<SketchUnion>,
}

impl HllMerge {
    fn add_column(&mut self, col: &ArrayRef) -> Result<()> {
        let bin = col.as_binary_opt::<i32>().ok_or_else(|| DataFusionError::Plan(format!("{NAME} takes a Binary sketch column, got {}", col.data_type())))?;
        for cell in bin.iter().flatten() {
            self.union
                .get_or_insert_with(SketchUnion::new)
                .add_bytes(cell)
                .map_err(|e| DataFusionError::Execution(format!("{NAME}: not a client sketch: {e}")))?;
        }
        Ok(())
    }
}

impl Accumulator for HllMerge {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add_column(&values[0])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.add_column(&states[0])
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Binary(self.union.as_ref().map(|u| u.to_sketch().to_bytes()))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Int64(Some(self.union.as_ref().map_or(0, |u| i64::try_from(u.to_sketch().estimate_u64()).unwrap_or(i64::MAX)))))
    }

    fn size(&self) -> usize {
        // lg_k 12 HLL_8 registers plus bookkeeping.
        std::mem::size_of::<Self>() + if self.union.is_some() { (1 << edgelens_schemas::sketch::LG_K) + 64 } else { 0 }
    }
}
