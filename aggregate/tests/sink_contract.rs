//! The contract every [`RollupSink`] keeps, run against the in-memory fake, the Parquet lake and
//! the real ClickHouse server (`$EDGELENS_TEST_CLICKHOUSE`):
//! - what is written reads back as the same tables (groups merged: measures summed, sketches
//!   unioned; dead letters counted);
//! - writing the same spans again replaces them (a replay never doubles);
//! - `discard_after` removes exactly the spans the in-memory reference removes, including the
//!   `keep_empty` rule, and the tables then equal the reference's.
//!
//! The ClickHouse part never skips: without a server it fails and says how to start one.

mod ch_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use edgelens_aggregate::batches::{MergedGroup, merged_groups};
use edgelens_aggregate::pipeline::{EmbeddedPipeline, PipelineConfig};
use edgelens_aggregate::sink::RollupSink;
use edgelens_aggregate::sink::clickhouse::ClickHouseSink;
use edgelens_aggregate::sink::memory::MemorySink;
use edgelens_aggregate::sink::parquet::ParquetLake;
use edgelens_ingest::generate::{GenerateConfig, Scenario, TrafficGenerator};
use edgelens_ingest::reader::Line;
use edgelens_query::clickhouse::ClickHouseBackend;
use edgelens_schemas::TableDef;
use edgelens_schemas::clickhouse::ClickHouseConfig;
use edgelens_schemas::tables::{ASN_1M, DEAD_LETTERS, SITE_RATES_10S, TRAFFIC_1M};

/// The clock of the lines fed (2030-01-01): after every generated event, so none is in the future.
const NOW: i64 = 1_893_456_000_000_000_000;

type Tables = Vec<(&'static str, BTreeMap<Vec<String>, MergedGroup>, usize)>;

const ROLLUPS: [&TableDef; 3] = [&SITE_RATES_10S, &TRAFFIC_1M, &ASN_1M];
const SOURCE: &str = "contract.events";
const PARTITION: i32 = 3;

fn lines(seed: u64) -> Vec<Vec<u8>> {
    let cfg = GenerateConfig { scenario: Scenario::Mixed, seed, duration_secs: 200, rps: 60.0, sites: 12, ..GenerateConfig::default() };
    let mut g = TrafficGenerator::new(cfg).unwrap();
    let mut out = Vec::new();
    while g.next_second(&mut out).is_some() {}
    let mut v: Vec<Vec<u8>> = out.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect();
    for i in (0..v.len()).step_by(1500) {
        v.insert(i, b"{\"EdgeStartTimestamp\": oops".to_vec());
    }
    v
}

/// Feed `lines` through the embedded pipeline into `sink`, as source partition [`PARTITION`]
/// with offsets = line numbers; small flushes make many spans.
fn feed<S: RollupSink>(sink: S, lines: &[Vec<u8>]) -> S {
    let cfg = PipelineConfig { flush_rows: 250, source: SOURCE.into(), partition: PARTITION, ..PipelineConfig::default() };
    let mut p = EmbeddedPipeline::new(cfg, sink);
    for (i, l) in lines.iter().enumerate() {
        p.push_line(Line::Complete(l), SOURCE, i as u64, NOW).unwrap();
    }
    p.finish().unwrap().1
}

fn tables_of(read: impl Fn(&TableDef) -> Vec<RecordBatch>, dead_letters: usize) -> Tables {
    ROLLUPS
        .into_iter()
        .map(|t| {
            let b = read(t);
            (t.name, merged_groups(t, &b).unwrap(), b.iter().map(RecordBatch::num_rows).sum::<usize>())
        })
        .chain(std::iter::once((DEAD_LETTERS.name, BTreeMap::new(), dead_letters)))
        .collect()
}

fn memory_tables(m: &MemorySink) -> Tables {
    tables_of(|t| m.table(t.name), m.table(DEAD_LETTERS.name).iter().map(RecordBatch::num_rows).sum())
}

fn lake_batches(dir: &Path, table: &str) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    let Ok(dates) = std::fs::read_dir(dir.join(table)) else { return out };
    for d in dates.flatten() {
        for f in std::fs::read_dir(d.path()).unwrap().flatten() {
            if f.path().extension().is_some_and(|e| e == "parquet") {
                let file = std::fs::File::open(f.path()).unwrap();
                let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
                out.extend(r.map(Result::unwrap));
            }
        }
    }
    out
}

fn lake_tables(dir: &Path) -> Tables {
    tables_of(|t| lake_batches(dir, t.name), lake_batches(dir, DEAD_LETTERS.name).iter().map(RecordBatch::num_rows).sum())
}

fn ch_tables(rt: &tokio::runtime::Runtime, ch: &ClickHouseBackend) -> Tables {
    let dead = rt.block_on(ch.query("SELECT count() AS n FROM dead_letters")).unwrap();
    let n = arrow::compute::cast(dead.batches[0].column(0), &DataType::UInt64).unwrap();
    let n = n.as_any().downcast_ref::<arrow::array::UInt64Array>().unwrap().value(0) as usize;
    tables_of(|t| rt.block_on(ch.table_batches(t)).unwrap(), n)
}

/// The contract, for any sink: `read` gives its tables as readers see them.
fn contract<S: RollupSink>(sink: S, read: impl Fn(&S) -> Tables) {
    let input = lines(7);
    let reference = feed(MemorySink::default(), &input);
    let want = memory_tables(&reference);
    assert!(want[0].1.len() > 50 && want[3].2 > 0, "test input too small: {} groups, {} dead letters", want[0].1.len(), want[3].2);

    let sink = feed(sink, &input);
    assert_eq!(read(&sink), want, "one run reads back as written");

    let mut sink = feed(sink, &input);
    assert_eq!(read(&sink), want, "writing the same spans again replaces them");

    // Discard from a position inside the input, as a successor of a crashed writer does.
    let mut reference = reference;
    let spans: Vec<_> = reference.writes.keys().cloned().collect();
    assert!(spans.len() >= 4, "too few spans: {spans:?}");
    let cut = &spans[1];
    for (position, keep_empty) in [(cut.to + 1, true), (cut.from, false)] {
        let want_removed = reference.discard_after(&cut.source, PARTITION, position, keep_empty).unwrap();
        assert!(want_removed > 0, "position {position}: no reference span removed; spans {:?}", spans.iter().map(|s| (s.from, s.to)).collect::<Vec<_>>());
        let removed = sink.discard_after(SOURCE, PARTITION, position, keep_empty).unwrap();
        assert!(removed > 0, "discard_after({position}) removed nothing");
        assert_eq!(read(&sink), memory_tables(&reference), "after discard_after({position}, keep_empty={keep_empty})");
    }
    // Another partition's writes are untouched by this partition's discards.
    assert_eq!(sink.discard_after(SOURCE, PARTITION + 1, 0, false).unwrap(), 0);
}

#[test]
fn memory_sink_keeps_the_contract() {
    contract(MemorySink::default(), memory_tables);
}

#[test]
fn parquet_lake_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    contract(ParquetLake::open(dir.path()).unwrap(), move |_| lake_tables(&path));
}

#[test]
fn clickhouse_sink_keeps_the_contract() {
    let url = ch_support::server_url();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let db = format!("edgelens_contract_{}_{nanos}", std::process::id());
    let cfg = ClickHouseConfig { database: db.clone(), ..ClickHouseConfig::for_url(&url) };
    let sink = ClickHouseSink::connect(&cfg, Arc::new(AtomicBool::new(false)))
        .unwrap_or_else(|e| panic!("ClickHouse at {url}: {e} (start it with `deploy/dev/clickhouse.sh start`)"));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let backend = ClickHouseBackend::new(&cfg);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| contract(sink, |_| ch_tables(&rt, &backend))));
    // A second connect finds the schema current: nothing to migrate, columns verified.
    let again = ClickHouseSink::connect(&cfg, Arc::new(AtomicBool::new(false)));
    let admin = edgelens_aggregate::sink::clickhouse::client(&url, &cfg);
    rt.block_on(admin.query(&format!("DROP DATABASE IF EXISTS `{db}`")).execute()).unwrap();
    if let Err(p) = outcome {
        std::panic::resume_unwind(p);
    }
    again.unwrap();
}
