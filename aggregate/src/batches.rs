//! Rollup rows and dead letters as Arrow record batches, in the column order of the table
//! definitions in `edgelens_schemas::tables` (the schema is taken from there, never restated).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, Float64Array, RecordBatch, StringBuilder, TimestampMicrosecondBuilder, UInt32Builder,
    UInt64Builder,
};
use arrow::error::ArrowError;
use edgelens_ingest::dead_letter::DeadLetter;
use edgelens_schemas::tables::{ASN_1M, DEAD_LETTERS, INCIDENTS, INCIDENT_TIMELINE, SITE_RATES_10S, TRAFFIC_1M};
use edgelens_schemas::{Nanos, TableDef};

use crate::detect::{IncidentRow, TimelineRow};
use crate::windows::{Asn1m, SiteRate10s, Traffic1m};

fn micros(ts: Nanos) -> i64 {
    ts.div_euclid(1_000)
}

fn ts_builder(n: usize) -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC")
}

fn u64_col(rows: impl ExactSizeIterator<Item = u64>) -> ArrayRef {
    let mut b = UInt64Builder::with_capacity(rows.len());
    for v in rows {
        b.append_value(v);
    }
    Arc::new(b.finish())
}

fn str_col<'a>(rows: impl ExactSizeIterator<Item = &'a str>) -> ArrayRef {
    let mut b = StringBuilder::with_capacity(rows.len(), rows.len() * 12);
    for v in rows {
        b.append_value(v);
    }
    Arc::new(b.finish())
}

fn ts_col(rows: impl ExactSizeIterator<Item = Nanos>) -> ArrayRef {
    let mut b = ts_builder(rows.len());
    for v in rows {
        b.append_value(micros(v));
    }
    Arc::new(b.finish())
}

fn batch(table: &TableDef, cols: Vec<ArrayRef>) -> Result<RecordBatch, ArrowError> {
    RecordBatch::try_new(table.arrow_schema(), cols)
}

pub fn site_rates_batch(rows: &[SiteRate10s]) -> Result<RecordBatch, ArrowError> {
    let mut sketches = BinaryBuilder::with_capacity(rows.len(), rows.len() * 64);
    for r in rows {
        sketches.append_value(r.clients.to_bytes());
    }
    batch(
        &SITE_RATES_10S,
        vec![
            ts_col(rows.iter().map(|r| r.ts)),
            str_col(rows.iter().map(|r| &*r.site)),
            u64_col(rows.iter().map(|r| r.m.requests)),
            u64_col(rows.iter().map(|r| r.m.bytes)),
            u64_col(rows.iter().map(|r| r.m.status_2xx)),
            u64_col(rows.iter().map(|r| r.m.status_3xx)),
            u64_col(rows.iter().map(|r| r.m.status_4xx)),
            u64_col(rows.iter().map(|r| r.m.status_5xx)),
            u64_col(rows.iter().map(|r| r.m.cache_hits)),
            u64_col(rows.iter().map(|r| r.m.blocked)),
            // An estimate can come out a little above the requests (≈1.6 %): never more clients
            // than requests.
            u64_col(rows.iter().map(|r| r.clients.estimate_u64().min(r.m.requests))),
            Arc::new(sketches.finish()),
        ],
    )
}

pub fn traffic_batch(rows: &[Traffic1m]) -> Result<RecordBatch, ArrowError> {
    batch(
        &TRAFFIC_1M,
        vec![
            ts_col(rows.iter().map(|r| r.ts)),
            str_col(rows.iter().map(|r| &*r.site)),
            str_col(rows.iter().map(|r| &*r.country)),
            str_col(rows.iter().map(|r| &*r.colo)),
            str_col(rows.iter().map(|r| r.status_class)),
            str_col(rows.iter().map(|r| &*r.cache_status)),
            u64_col(rows.iter().map(|r| r.requests)),
            u64_col(rows.iter().map(|r| r.bytes)),
        ],
    )
}

pub fn asn_batch(rows: &[Asn1m]) -> Result<RecordBatch, ArrowError> {
    let mut asn = UInt32Builder::with_capacity(rows.len());
    let mut sketches = BinaryBuilder::with_capacity(rows.len(), rows.len() * 64);
    for r in rows {
        asn.append_value(r.asn);
        sketches.append_value(r.clients.to_bytes());
    }
    batch(
        &ASN_1M,
        vec![
            ts_col(rows.iter().map(|r| r.ts)),
            str_col(rows.iter().map(|r| &*r.site)),
            Arc::new(asn.finish()),
            str_col(rows.iter().map(|r| &*r.country)),
            u64_col(rows.iter().map(|r| r.requests)),
            u64_col(rows.iter().map(|r| r.bytes)),
            u64_col(rows.iter().map(|r| r.clients.estimate_u64().min(r.requests))),
            Arc::new(sketches.finish()),
        ],
    )
}

pub fn dead_letters_batch(rows: &[DeadLetter]) -> Result<RecordBatch, ArrowError> {
    batch(
        &DEAD_LETTERS,
        vec![
            ts_col(rows.iter().map(|r| r.ts)),
            str_col(rows.iter().map(|r| r.source.as_str())),
            u64_col(rows.iter().map(|r| r.offset)),
            str_col(rows.iter().map(|r| r.reason)),
            str_col(rows.iter().map(|r| r.detail.as_str())),
            str_col(rows.iter().map(|r| r.raw.as_str())),
        ],
    )
}

/// `incidents` rows.
pub fn incidents_batch(rows: &[IncidentRow]) -> Result<RecordBatch, ArrowError> {
    let f64_col = |f: fn(&IncidentRow) -> f64| -> ArrayRef { Arc::new(rows.iter().map(f).collect::<Float64Array>()) };
    let mut end = ts_builder(rows.len());
    for r in rows {
        end.append_option(r.end_ts.map(micros));
    }
    batch(
        &INCIDENTS,
        vec![
            str_col(rows.iter().map(|r| r.incident_id.as_str())),
            str_col(rows.iter().map(|r| &*r.site)),
            str_col(rows.iter().map(|r| r.vector)),
            str_col(rows.iter().map(|r| r.status)),
            ts_col(rows.iter().map(|r| r.start_ts)),
            ts_col(rows.iter().map(|r| r.detected_ts)),
            ts_col(rows.iter().map(|r| r.peak_ts)),
            Arc::new(end.finish()),
            f64_col(|r| r.peak_rps),
            f64_col(|r| r.baseline_rps),
            u64_col(rows.iter().map(|r| r.attack_requests)),
            u64_col(rows.iter().map(|r| r.distinct_ips)),
            str_col(rows.iter().map(|r| r.signature.as_str())),
            str_col(rows.iter().map(|r| r.top_attackers.as_str())),
            ts_col(rows.iter().map(|r| r.updated_ts)),
        ],
    )
}

/// `incident_timeline` rows.
pub fn timeline_batch(rows: &[(Arc<str>, TimelineRow)]) -> Result<RecordBatch, ArrowError> {
    batch(
        &INCIDENT_TIMELINE,
        vec![
            str_col(rows.iter().map(|(id, _)| &**id)),
            ts_col(rows.iter().map(|(_, r)| r.ts)),
            u64_col(rows.iter().map(|(_, r)| r.requests)),
            u64_col(rows.iter().map(|(_, r)| r.matched_requests)),
            u64_col(rows.iter().map(|(_, r)| r.status[0])),
            u64_col(rows.iter().map(|(_, r)| r.status[1])),
            u64_col(rows.iter().map(|(_, r)| r.status[2])),
            u64_col(rows.iter().map(|(_, r)| r.status[3])),
        ],
    )
}

/// The non-empty tables of a sink batch.
pub fn sink_batches(b: &crate::sink::SinkBatch) -> Result<Vec<(&'static TableDef, RecordBatch)>, ArrowError> {
    let mut out = Vec::new();
    if !b.closed.rates.is_empty() {
        out.push((&SITE_RATES_10S, site_rates_batch(&b.closed.rates)?));
    }
    if !b.closed.traffic.is_empty() {
        out.push((&TRAFFIC_1M, traffic_batch(&b.closed.traffic)?));
    }
    if !b.closed.asn.is_empty() {
        out.push((&ASN_1M, asn_batch(&b.closed.asn)?));
    }
    if !b.dead_letters.is_empty() {
        out.push((&DEAD_LETTERS, dead_letters_batch(&b.dead_letters)?));
    }
    if !b.incidents.incidents.is_empty() {
        out.push((&INCIDENTS, incidents_batch(&b.incidents.incidents)?));
    }
    if !b.incidents.timeline.is_empty() {
        out.push((&INCIDENT_TIMELINE, timeline_batch(&b.incidents.timeline)?));
    }
    Ok(out)
}

/// One group of a rollup table after merging its delta rows: summed measures (in column order)
/// and, per sketch column, the estimate of the union of the rows' sketches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedGroup {
    pub measures: Vec<u64>,
    pub distinct: Vec<u64>,
}

/// A rollup table as readers see it: rows with the same key columns merged (measures summed,
/// sketches unioned), keyed by the key columns' display text. Two runs that counted the same
/// events give equal maps, however their rows were split into deltas.
pub fn merged_groups(table: &TableDef, batches: &[RecordBatch]) -> Result<std::collections::BTreeMap<Vec<String>, MergedGroup>, ArrowError> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::UInt64Type;
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    use edgelens_schemas::tables::Role;

    use crate::sketch::SketchUnion;

    let cols = |role: Role| table.columns.iter().filter(move |c| c.role == role).map(|c| c.name).collect::<Vec<_>>();
    let (keys, measures, sketches) = (cols(Role::Key), cols(Role::Measure), cols(Role::Sketch));
    let mut acc: std::collections::BTreeMap<Vec<String>, (Vec<u64>, Vec<SketchUnion>)> = std::collections::BTreeMap::new();
    let opts = FormatOptions::default();
    for b in batches {
        let col = |name: &str| b.column_by_name(name).cloned().ok_or_else(|| ArrowError::SchemaError(format!("{}: no column {name}", table.name)));
        // Timestamps as their integer microseconds (formatting a zoned timestamp needs tz data).
        let as_key = |c: ArrayRef| match c.data_type() {
            arrow::datatypes::DataType::Timestamp(..) => arrow::compute::cast(&c, &arrow::datatypes::DataType::Int64),
            _ => Ok(c),
        };
        let key_cols = keys.iter().map(|k| col(k).and_then(as_key)).collect::<Result<Vec<_>, _>>()?;
        let fmts = key_cols.iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &opts)).collect::<Result<Vec<_>, _>>()?;
        let m_cols = measures.iter().map(|m| col(m)).collect::<Result<Vec<_>, _>>()?;
        let s_cols = sketches.iter().map(|s| col(s)).collect::<Result<Vec<_>, _>>()?;
        for i in 0..b.num_rows() {
            let key = fmts.iter().map(|f| f.value(i).to_string()).collect();
            let e = acc.entry(key).or_insert_with(|| (vec![0; measures.len()], (0..sketches.len()).map(|_| SketchUnion::new()).collect()));
            for (j, c) in m_cols.iter().enumerate() {
                e.0[j] += c.as_primitive::<UInt64Type>().value(i);
            }
            for (j, c) in s_cols.iter().enumerate() {
                let c = c.as_binary::<i32>();
                if !c.is_null(i) {
                    e.1[j].add_bytes(c.value(i)).map_err(|e| ArrowError::ParseError(format!("{} sketch: {e}", table.name)))?;
                }
            }
        }
    }
    Ok(acc
        .into_iter()
        .map(|(k, (measures, unions))| (k, MergedGroup { measures, distinct: unions.iter().map(|u| u.to_sketch().estimate_u64()).collect() }))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::windows::RateMeasures;
    use arrow::array::{Array, UInt64Array};
    use crate::sketch::ClientSketch;

    /// Regression: a row's distinct clients (an estimate) could exceed its requests.
    #[test]
    fn distinct_clients_never_exceed_requests() {
        let mut clients = ClientSketch::new();
        for i in 0..5_000u32 {
            clients.insert(std::net::IpAddr::from(i.to_be_bytes()));
        }
        let requests = clients.estimate_u64().min(5_000) - 1;
        let rate = SiteRate10s { ts: 0, site: Arc::from("a.example"), m: RateMeasures { requests, ..RateMeasures::default() }, clients: clients.clone() };
        let asn = Asn1m { ts: 0, site: Arc::from("a.example"), asn: 1, country: Arc::from("us"), requests, bytes: 0, clients };
        for batch in [site_rates_batch(&[rate]).unwrap(), asn_batch(&[asn]).unwrap()] {
            let col = batch.column_by_name("distinct_clients").unwrap().as_any().downcast_ref::<UInt64Array>().unwrap();
            assert_eq!((col.len(), col.value(0)), (1, requests));
        }
    }
}
