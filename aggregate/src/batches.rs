//! Rollup rows and dead letters as Arrow record batches, in the column order of the table
//! definitions in `edgelens_schemas::tables` (the schema is taken from there, never restated).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder, UInt32Builder, UInt64Builder,
};
use arrow::error::ArrowError;
use edgelens_ingest::dead_letter::DeadLetter;
use edgelens_schemas::tables::{ASN_1M, DEAD_LETTERS, SITE_RATES_10S, TRAFFIC_1M};
use edgelens_schemas::{Nanos, TableDef};

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
            u64_col(rows.iter().map(|r| r.clients.estimate_u64())),
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
            u64_col(rows.iter().map(|r| r.clients.estimate_u64())),
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
    Ok(out)
}
