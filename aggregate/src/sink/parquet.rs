//! Parquet lake sink: `DIR/<table>/date=YYYY-MM-DD/part-<span id>.parquet`, zstd-compressed.
//!
//! Guarantees:
//! - readers never see a partial file: each file is written under `DIR/.tmp/`, synced, then renamed
//!   into its partition directory (same file system, atomic); a write that fails (a full disk)
//!   removes its temporary file and reports the I/O error with the path;
//! - idempotent per span: the file name is derived from the table, the date and the offset span, so
//!   writing the same span again replaces the file instead of adding rows.
//!
//! Replays into the lake are recorded in `DIR/.replays/<source>.json` ([`ReplayRun`]), written
//! like the data files (temporary file, sync, rename).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use arrow::array::{Array, RecordBatch, TimestampMicrosecondArray, UInt32Array};
use arrow::compute::take;
use edgelens_schemas::time::{date_of, NANOS_PER_SEC};
use edgelens_schemas::tables::Role;
use edgelens_schemas::TableDef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::{OffsetSpan, ReplayRun, RollupSink, SinkBatch};
use crate::batches;
use crate::error::SinkError;

/// Name of the directory, inside the lake, where files are written before they are renamed in.
pub const TMP_DIR: &str = ".tmp";

/// Name of the directory, inside the lake, of the replays' records.
pub const REPLAYS_DIR: &str = ".replays";

/// A temporary file older than this is a crashed writer's leftover.
const STALE_TMP: std::time::Duration = std::time::Duration::from_secs(3600);

#[derive(Debug, Clone)]
pub struct ParquetLake {
    dir: PathBuf,
    props: WriterProperties,
    files_written: u64,
}

impl ParquetLake {
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, SinkError> {
        let dir = dir.into();
        let tmp = dir.join(TMP_DIR);
        fs::create_dir_all(&tmp).map_err(SinkError::io(&tmp))?;
        // Leftovers of a crash mid-write are never visible to readers; remove them. Several
        // aggregators share one lake, so only files too old to be another writer's work in
        // progress are removed.
        if let Ok(entries) = fs::read_dir(&tmp) {
            for e in entries.flatten() {
                let stale = e.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).is_some_and(|age| age > STALE_TMP);
                if stale {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(Self { dir, props: writer_properties()?, files_written: 0 })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every row of `table` in the lake at `dir` (all dates, files in name order).
    pub fn read_table(dir: &Path, table: &TableDef) -> Result<Vec<RecordBatch>, SinkError> {
        let tdir = dir.join(table.name);
        let mut files = Vec::new();
        let dates = match fs::read_dir(&tdir) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(SinkError::io(&tdir)(e)),
        };
        for d in dates.flatten().filter(|d| d.file_name().to_string_lossy().starts_with("date=")) {
            for f in fs::read_dir(d.path()).map_err(SinkError::io(&d.path()))?.flatten() {
                if f.path().extension().is_some_and(|e| e == "parquet") {
                    files.push(f.path());
                }
            }
        }
        files.sort();
        let mut out = Vec::new();
        for p in files {
            let file = fs::File::open(&p).map_err(SinkError::io(&p))?;
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                .and_then(|b| b.build())
                .map_err(|e| SinkError::Encode(format!("{}: {e}", p.display())))?;
            for b in reader {
                out.push(b.map_err(|e| SinkError::Encode(format!("{}: {e}", p.display())))?);
            }
        }
        Ok(out)
    }

    pub fn files_written(&self) -> u64 {
        self.files_written
    }

    /// Write one table's rows for a span; rows are split into one file per UTC date.
    pub fn write_table(&mut self, table: &TableDef, batch: &RecordBatch, span: &OffsetSpan) -> Result<Vec<PathBuf>, SinkError> {
        let mut paths = Vec::new();
        for (date, part) in split_by_date(table, batch)? {
            let part_dir = self.dir.join(table.name).join(format!("date={date}"));
            fs::create_dir_all(&part_dir).map_err(SinkError::io(&part_dir))?;
            let final_path = part_dir.join(format!("part-{}.parquet", span.id()));
            let tmp_path = self.dir.join(TMP_DIR).join(format!("{}-{date}-{}.{}.parquet", table.name, span.id(), std::process::id()));
            let written = self.write_file(&tmp_path, &part).and_then(|()| fs::rename(&tmp_path, &final_path).map_err(SinkError::io(&final_path)));
            if let Err(e) = written {
                // Nothing partial stays behind, neither visible nor holding the space of a full disk.
                let _ = fs::remove_file(&tmp_path);
                return Err(e);
            }
            sync_dir(&part_dir);
            self.files_written += 1;
            paths.push(final_path);
        }
        Ok(paths)
    }

    fn write_file(&self, path: &Path, batch: &RecordBatch) -> Result<(), SinkError> {
        let file = File::create(path).map_err(SinkError::io(path))?;
        let first_error = Arc::new(Mutex::new(None));
        let out = FirstIoError { file, first: Arc::clone(&first_error) };
        let written = ArrowWriter::try_new(out, batch.schema(), Some(self.props.clone())).and_then(|mut w| {
            w.write(batch)?;
            w.into_inner()
        });
        match written {
            Ok(out) => out.file.sync_all().map_err(SinkError::io(path)),
            // The Parquet writer passes some I/O errors on only as text (its buffered writer's
            // final flush): report the file's own error, with its kind (ENOSPC) and the path.
            Err(e) => Err(match first_error.lock().unwrap_or_else(PoisonError::into_inner).take() {
                Some(io) => SinkError::io(path)(io),
                None => SinkError::Parquet(e),
            }),
        }
    }
}

/// A file that keeps its first I/O error where the caller can still read it once the Parquet
/// writer (which owns the file) has turned the error into text.
struct FirstIoError {
    file: File,
    first: Arc<Mutex<Option<std::io::Error>>>,
}

impl FirstIoError {
    fn keep(&self, e: std::io::Error) -> std::io::Error {
        if e.kind() == std::io::ErrorKind::Interrupted {
            return e;
        }
        let copy = std::io::Error::new(e.kind(), e.to_string());
        self.first.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert(e);
        copy
    }
}

impl Write for FirstIoError {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf).map_err(|e| self.keep(e))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush().map_err(|e| self.keep(e))
    }
}

/// zstd pages of at most 256 Ki rows per row group. Sketch columns are written plain, without
/// statistics: every sketch differs (a dictionary only grows until the writer falls back) and
/// nobody filters on a sketch's bytes.
fn writer_properties() -> Result<WriterProperties, SinkError> {
    let mut props = WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?)).set_max_row_group_row_count(Some(256 * 1024));
    for table in edgelens_schemas::tables::ALL_TABLES {
        for c in table.columns.iter().filter(|c| c.role == Role::Sketch) {
            props = props
                .set_column_dictionary_enabled(ColumnPath::from(c.name), false)
                .set_column_statistics_enabled(ColumnPath::from(c.name), EnabledStatistics::None);
        }
    }
    Ok(props.build())
}

fn sync_dir(dir: &Path) {
    // Directory fsync makes the rename durable; not supported everywhere, so best effort.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Group a batch's rows by the UTC date of the table's time column.
fn split_by_date(table: &TableDef, batch: &RecordBatch) -> Result<Vec<(String, RecordBatch)>, SinkError> {
    let idx = batch.schema().index_of(table.time_column)?;
    let ts = batch
        .column(idx)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .expect("time columns are Timestamp(Microsecond)");
    let day = |i: usize| if ts.is_null(i) { 0 } else { ts.value(i).div_euclid(86_400_000_000) };
    let mut days: Vec<i64> = (0..batch.num_rows()).map(day).collect();
    days.sort_unstable();
    days.dedup();
    if days.len() <= 1 {
        let d = days.first().copied().unwrap_or(0);
        return Ok(vec![(date_of(d * 86_400 * NANOS_PER_SEC), batch.clone())]);
    }
    let mut out = Vec::with_capacity(days.len());
    for d in days {
        let indices: UInt32Array = (0..batch.num_rows() as u32).filter(|&i| day(i as usize) == d).collect();
        let cols = batch.columns().iter().map(|c| take(c, &indices, None)).collect::<Result<Vec<_>, _>>()?;
        out.push((date_of(d * 86_400 * NANOS_PER_SEC), RecordBatch::try_new(Arc::clone(&batch.schema()), cols)?));
    }
    Ok(out)
}

impl RollupSink for ParquetLake {
    fn write(&mut self, batch: &SinkBatch, span: &OffsetSpan) -> Result<(), SinkError> {
        for (table, rows) in batches::sink_batches(batch)? {
            self.write_table(table, &rows, span)?;
        }
        Ok(())
    }

    fn discard_after(&mut self, source: &str, partition: i32, position: u64, keep_empty: bool) -> Result<u64, SinkError> {
        // File names carry the sanitized source.
        let source = &OffsetSpan::sanitize_source(source);
        let mut removed = 0;
        for table in edgelens_schemas::tables::ALL_TABLES {
            let table_dir = self.dir.join(table.name);
            let Ok(dates) = fs::read_dir(&table_dir) else { continue };
            for date in dates.flatten() {
                let Ok(files) = fs::read_dir(date.path()) else { continue };
                for f in files.flatten() {
                    let name = f.file_name();
                    let Some(id) = name.to_str().and_then(|n| n.strip_prefix("part-")?.strip_suffix(".parquet")) else { continue };
                    if OffsetSpan::parse_id(id, source, partition).is_some_and(|s| s.written_after(position, keep_empty)) {
                        let path = f.path();
                        match fs::remove_file(&path) {
                            Ok(()) => removed += 1,
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                            Err(e) => return Err(SinkError::Io { path, source: e }),
                        }
                    }
                }
                sync_dir(&date.path());
            }
        }
        Ok(removed)
    }

    fn replay_runs(&self) -> Result<Vec<ReplayRun>, SinkError> {
        let dir = self.dir.join(REPLAYS_DIR);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(SinkError::Io { path: dir, source: e }),
        };
        let mut runs = Vec::new();
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let text = fs::read(&path).map_err(SinkError::io(&path))?;
            let run = serde_json::from_slice(&text).map_err(|e| SinkError::Schema(format!("{}: not a replay record: {e}", path.display())))?;
            runs.push(run);
        }
        runs.sort_by(|a: &ReplayRun, b| a.source.cmp(&b.source));
        Ok(runs)
    }

    fn record_replay_run(&mut self, run: &ReplayRun) -> Result<(), SinkError> {
        let dir = self.dir.join(REPLAYS_DIR);
        fs::create_dir_all(&dir).map_err(SinkError::io(&dir))?;
        let name = format!("{}.json", OffsetSpan::sanitize_source(&run.source));
        let tmp = self.dir.join(TMP_DIR).join(&name);
        let text = serde_json::to_vec_pretty(run).map_err(|e| SinkError::Schema(e.to_string()))?;
        let written = File::create(&tmp).and_then(|mut f| {
            f.write_all(&text)?;
            f.sync_all()
        });
        if let Err(e) = written.and_then(|()| fs::rename(&tmp, dir.join(&name))) {
            let _ = fs::remove_file(&tmp);
            return Err(SinkError::Io { path: dir.join(name), source: e });
        }
        sync_dir(&dir);
        Ok(())
    }

    fn forget_replay_run(&mut self, source: &str) -> Result<(), SinkError> {
        let dir = self.dir.join(REPLAYS_DIR);
        let path = dir.join(format!("{}.json", OffsetSpan::sanitize_source(source)));
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(SinkError::Io { path, source: e }),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::windows::{ClosedWindows, SiteRate10s};

    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut lake = ParquetLake::open(dir.path()).unwrap();
        let row = SiteRate10s { ts: 1_793_491_200_000_000_000, site: Arc::from("a.example"), m: Default::default(), clients: Default::default() };
        let batch = SinkBatch { closed: ClosedWindows { rates: vec![row], ..ClosedWindows::default() }, ..SinkBatch::default() };
        let span = OffsetSpan::new("src", 0, 0, 10);
        // A directory where the file goes makes the rename fail, after the file was written.
        let target = dir.path().join("site_rates_10s/date=2026-11-01").join(format!("part-{}.parquet", span.id()));
        fs::create_dir_all(target.join("x")).unwrap();
        let err = lake.write(&batch, &span).unwrap_err().to_string();
        assert!(err.contains(&target.display().to_string()), "{err}");
        let left: Vec<_> = fs::read_dir(dir.path().join(TMP_DIR)).unwrap().flatten().map(|e| e.path()).collect();
        assert!(left.is_empty(), "temporary files left behind: {left:?}");
        // Once the way is clear the same span is written.
        fs::remove_dir_all(&target).unwrap();
        lake.write(&batch, &span).unwrap();
        assert_eq!(ParquetLake::read_table(dir.path(), &edgelens_schemas::tables::SITE_RATES_10S).unwrap()[0].num_rows(), 1);
    }

    #[test]
    fn sketch_columns_are_plain_without_statistics_and_read_back() {
        use parquet::basic::Encoding;
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let dir = tempfile::tempdir().unwrap();
        let mut lake = ParquetLake::open(dir.path()).unwrap();
        let rows: Vec<SiteRate10s> = (0..50u8)
            .map(|i| {
                let mut clients = crate::sketch::ClientSketch::default();
                clients.insert(std::net::IpAddr::from([198, 51, 100, i]));
                SiteRate10s { ts: 1_793_491_200_000_000_000, site: Arc::from(format!("s{i}.example")), m: Default::default(), clients }
            })
            .collect();
        let sketches: Vec<Vec<u8>> = rows.iter().map(|r| r.clients.to_bytes()).collect();
        let batch = SinkBatch { closed: ClosedWindows { rates: rows, ..ClosedWindows::default() }, ..SinkBatch::default() };
        let paths = lake.write_table(&edgelens_schemas::tables::SITE_RATES_10S, &batches::sink_batches(&batch).unwrap()[0].1, &OffsetSpan::new("src", 0, 0, 50)).unwrap();
        let meta = SerializedFileReader::new(File::open(&paths[0]).unwrap()).unwrap().metadata().clone();
        for rg in meta.row_groups() {
            for c in rg.columns() {
                let name = c.column_path().string();
                let sketch = name == "clients_sketch";
                assert_eq!(c.encodings().any(|e| e == Encoding::RLE_DICTIONARY), !sketch, "{name}: {:?}", c.encodings().collect::<Vec<_>>());
                assert_eq!(c.statistics().is_some(), !sketch, "{name}");
            }
        }
        let read = ParquetLake::read_table(dir.path(), &edgelens_schemas::tables::SITE_RATES_10S).unwrap();
        let col = read[0].column_by_name("clients_sketch").unwrap().as_any().downcast_ref::<arrow::array::BinaryArray>().unwrap();
        let mut got: Vec<Vec<u8>> = col.iter().map(|b| b.unwrap().to_vec()).collect();
        let mut want = sketches;
        got.sort();
        want.sort();
        assert_eq!(got, want);
    }
}
