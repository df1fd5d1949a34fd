//! Query results rendered for people and programs: an aligned text table, CSV with a header row, a
//! JSON array of row objects, an Arrow IPC stream, Parquet.
//!
//! Guarantees, the same in every text format: timestamps are RFC 3339 in UTC ending in `Z` (second
//! precision unless the value has a fraction), whatever the column's unit or zone; integers stay
//! integers in JSON (`u64` included); non-finite floats are JSON `null`; dictionary columns are
//! rendered as their values; other types (decimals, lists, structs, binary) as Arrow's display
//! text. Pure: no I/O.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, UInt64Array,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, SchemaRef, TimeUnit, UInt64Type};
use arrow::error::ArrowError;
use arrow::ipc::writer::StreamWriter;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use edgelens_schemas::time::format_rfc3339;
use serde_json::{Map, Value};

use crate::error::{QueryError, Result};
use crate::lake::QueryResult;

/// An output format of query results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Aligned text table for terminals.
    Table,
    /// CSV with a header row.
    Csv,
    /// JSON array of row objects.
    Json,
    /// Arrow IPC stream.
    ArrowIpc,
    /// A Parquet file.
    Parquet,
}

impl OutputFormat {
    pub const ALL: [OutputFormat; 5] =
        [OutputFormat::Table, OutputFormat::Csv, OutputFormat::Json, OutputFormat::ArrowIpc, OutputFormat::Parquet];

    /// The format's short name (`--format`, `?format=`).
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Table => "table",
            OutputFormat::Csv => "csv",
            OutputFormat::Json => "json",
            OutputFormat::ArrowIpc => "arrow",
            OutputFormat::Parquet => "parquet",
        }
    }

    pub fn from_name(name: &str) -> Option<OutputFormat> {
        OutputFormat::ALL.into_iter().find(|f| f.name() == name)
    }

    pub fn content_type(self) -> &'static str {
        match self {
            OutputFormat::Table => "text/plain; charset=utf-8",
            OutputFormat::Csv => "text/csv; charset=utf-8",
            OutputFormat::Json => "application/json",
            OutputFormat::ArrowIpc => "application/vnd.apache.arrow.stream",
            OutputFormat::Parquet => "application/vnd.apache.parquet",
        }
    }

    /// The format an HTTP `Accept` header asks for (RFC 9110): of the formats we produce, the one
    /// it gives the highest `q`, a type named outright ruling over a wildcard (`*/*`, `text/*`,
    /// `application/*`, which stand for the formats not named, JSON first); listed first on a tie;
    /// JSON without a header. `None`: it accepts none of them (406).
    pub fn from_accept(accept: Option<&str>) -> Option<OutputFormat> {
        let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else { return Some(OutputFormat::Json) };
        let mut named: Vec<(OutputFormat, f64)> = Vec::new();
        let mut wildcards: Vec<(&[OutputFormat], f64)> = Vec::new();
        for part in accept.split(',') {
            let mut params = part.split(';');
            let media = params.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = params
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .map_or(1.0, |(_, v)| v.trim().parse::<f64>().unwrap_or(0.0));
            let format = match media.as_str() {
                "*/*" => {
                    wildcards.push((&[OutputFormat::Json, OutputFormat::Csv, OutputFormat::ArrowIpc, OutputFormat::Parquet, OutputFormat::Table], q));
                    continue;
                }
                "application/*" => {
                    wildcards.push((&[OutputFormat::Json, OutputFormat::ArrowIpc, OutputFormat::Parquet], q));
                    continue;
                }
                "text/*" => {
                    wildcards.push((&[OutputFormat::Csv, OutputFormat::Table], q));
                    continue;
                }
                "application/json" => OutputFormat::Json,
                "text/csv" => OutputFormat::Csv,
                "application/vnd.apache.arrow.stream" => OutputFormat::ArrowIpc,
                "application/vnd.apache.parquet" | "application/x-parquet" | "application/parquet" => OutputFormat::Parquet,
                "text/plain" => OutputFormat::Table,
                _ => continue,
            };
            if !named.iter().any(|(f, _)| *f == format) {
                named.push((format, q));
            }
        }
        let mut best: Option<(f64, OutputFormat)> = None;
        let candidates = named.iter().copied().chain(wildcards.iter().flat_map(|(formats, q)| {
            formats.iter().filter(|f| !named.iter().any(|(n, _)| n == *f)).map(move |f| (*f, *q))
        }));
        for (format, q) in candidates {
            if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, format));
            }
        }
        best.map(|(_, f)| f)
    }
}

/// Render a result in `format`.
pub fn render(result: &QueryResult, format: OutputFormat) -> Result<Vec<u8>> {
    let (schema, batches) = (&result.schema, result.batches.as_slice());
    Ok(match format {
        OutputFormat::Table => to_table(schema, batches)?.into_bytes(),
        OutputFormat::Csv => to_csv(schema, batches)?.into_bytes(),
        OutputFormat::Json => to_json(batches)?.into_bytes(),
        OutputFormat::ArrowIpc => to_arrow_ipc(schema, batches)?,
        OutputFormat::Parquet => to_parquet(schema, batches)?,
    })
}

/// Aligned text table with a header, a separator and a row count; numbers are right-aligned.
pub fn to_table(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<String> {
    let headers: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let numeric: Vec<bool> = schema.fields().iter().map(|f| f.data_type().is_numeric()).collect();
    let mut rows: Vec<Vec<String>> = Vec::new();
    for batch in batches {
        let columns = column_views(batch)?;
        for row in 0..batch.num_rows() {
            rows.push(columns.iter().map(|c| c.text(row).unwrap_or_default()).collect());
        }
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String], out: &mut String| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(
                |(i, c)| if numeric[i] { format!("{c:>w$}", w = widths[i]) } else { format!("{c:<w$}", w = widths[i]) },
            )
            .collect();
        out.push_str(padded.join(" | ").trim_end());
        out.push('\n');
    };
    let mut out = String::new();
    line(&headers, &mut out);
    out.push_str(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("-+-"));
    out.push('\n');
    for row in &rows {
        line(row, &mut out);
    }
    out.push_str(&format!("({} row{})\n", rows.len(), if rows.len() == 1 { "" } else { "s" }));
    Ok(out)
}

/// CSV with a header row; nulls are empty fields, empty texts `""` (as PostgreSQL's CSV tells
/// them apart).
pub fn to_csv(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<String> {
    let mut out = String::new();
    let header: Vec<String> = schema.fields().iter().map(|f| csv_field(f.name())).collect();
    out.push_str(&header.join(","));
    out.push('\n');
    for batch in batches {
        let columns = column_views(batch)?;
        for row in 0..batch.num_rows() {
            let cells: Vec<String> =
                columns.iter().map(|c| c.text(row).map(|t| if t.is_empty() { "\"\"".to_owned() } else { csv_field(&t) }).unwrap_or_default()).collect();
            out.push_str(&cells.join(","));
            out.push('\n');
        }
    }
    Ok(out)
}

/// A text of the API's report CSVs (site names, registry sources and entities, incident ids):
/// [`csv_field`], and a text a spreadsheet would run as a formula (starting with `=`, `+`, `-`,
/// `@`, a tab or a carriage return) gets a leading `'`, which spreadsheets show as text. Registry
/// names come from imported lists. SQL results stay as they are: they are data, not reports.
pub fn csv_text(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) { csv_field(&format!("'{s}")) } else { csv_field(s) }
}

/// Quote a CSV field when it needs it (RFC 4180).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// JSON array of row objects, keys in column order (written here: a `serde_json` map orders its
/// keys by name).
pub fn to_json(batches: &[RecordBatch]) -> Result<String> {
    let mut out = String::from("[");
    for batch in batches {
        let schema = batch.schema();
        let columns = column_views(batch)?;
        let keys: Vec<String> = schema.fields().iter().map(|f| Value::from(f.name().as_str()).to_string()).collect();
        for row in 0..batch.num_rows() {
            if out.len() > 1 {
                out.push(',');
            }
            out.push('{');
            for (i, (key, column)) in keys.iter().zip(&columns).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(key);
                out.push(':');
                out.push_str(&column.json(row).to_string());
            }
            out.push('}');
        }
    }
    out.push(']');
    Ok(out)
}

/// The rows as JSON objects (keys in name order).
pub fn to_json_rows(batches: &[RecordBatch]) -> Result<Vec<Map<String, Value>>> {
    let mut rows = Vec::new();
    for batch in batches {
        let schema = batch.schema();
        let columns = column_views(batch)?;
        for row in 0..batch.num_rows() {
            let mut obj = Map::with_capacity(columns.len());
            for (field, column) in schema.fields().iter().zip(&columns) {
                obj.insert(field.name().clone(), column.json(row));
            }
            rows.push(obj);
        }
    }
    Ok(rows)
}

/// Arrow IPC stream (schema message, then the batches); valid with zero batches.
pub fn to_arrow_ipc(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let mut writer = StreamWriter::try_new(Vec::new(), schema)?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    Ok(writer.into_inner()?)
}

/// One Parquet file holding the batches.
pub fn to_parquet(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>> {
    use datafusion::parquet::arrow::ArrowWriter;
    let external = |e: datafusion::parquet::errors::ParquetError| ArrowError::ExternalError(Box::new(e));
    let mut writer = ArrowWriter::try_new(Vec::new(), schema.clone(), None).map_err(external)?;
    for batch in batches {
        writer.write(batch).map_err(external)?;
    }
    Ok(writer.into_inner().map_err(external)?)
}

/// One column prepared for cell-by-cell rendering.
enum ColumnView {
    Null,
    Bool(BooleanArray),
    Int(Int64Array),
    UInt(UInt64Array),
    Float(Float64Array),
    Str(StringArray),
    /// Epoch values and nanoseconds per unit.
    Timestamp(Int64Array, i64),
    /// Arrow's display text, precomputed.
    Text(Vec<Option<String>>),
}

fn column_views(batch: &RecordBatch) -> Result<Vec<ColumnView>> {
    batch.columns().iter().map(column_view).collect()
}

fn column_view(array: &ArrayRef) -> Result<ColumnView> {
    let array = match array.data_type() {
        DataType::Dictionary(_, value_type) => cast(array, value_type)?,
        _ => Arc::clone(array),
    };
    Ok(match array.data_type() {
        DataType::Null => ColumnView::Null,
        DataType::Boolean => ColumnView::Bool(array.as_boolean().clone()),
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            ColumnView::Int(cast(&array, &DataType::Int64)?.as_primitive::<Int64Type>().clone())
        }
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            ColumnView::UInt(cast(&array, &DataType::UInt64)?.as_primitive::<UInt64Type>().clone())
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            ColumnView::Float(cast(&array, &DataType::Float64)?.as_primitive::<Float64Type>().clone())
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            ColumnView::Str(cast(&array, &DataType::Utf8)?.as_string::<i32>().clone())
        }
        // A timestamp of another zone (`ts AT TIME ZONE 'Europe/Berlin'`) is shown in it, with
        // its offset (Arrow's text below): shown in UTC, the conversion would read as a no-op.
        DataType::Timestamp(unit, tz) if tz.as_deref().is_none_or(is_utc_zone) => {
            let nanos_per_unit = match unit {
                TimeUnit::Second => 1_000_000_000,
                TimeUnit::Millisecond => 1_000_000,
                TimeUnit::Microsecond => 1_000,
                TimeUnit::Nanosecond => 1,
            };
            // Arrow stores zoned timestamps as UTC epoch values: the raw value is what we render.
            let values = array.to_data().into_builder().data_type(DataType::Int64).build()?;
            ColumnView::Timestamp(Int64Array::from(values), nanos_per_unit)
        }
        DataType::Timestamp(_, Some(tz)) if tz.parse::<arrow::array::timezone::Tz>().is_err() => {
            // Planned, but not a zone a time can be shown in (`UTC+3`, a typo): the statement's
            // mistake, as over the Postgres wire.
            return Err(QueryError::InvalidSql(format!(
                "time zone {tz:?} is not known: name one as Europe/Berlin, UTC, or an offset as +03:00"
            )));
        }
        _ => {
            let options = FormatOptions::default().with_null("");
            let formatter = ArrayFormatter::try_new(array.as_ref(), &options)?;
            ColumnView::Text(
                (0..array.len()).map(|i| array.is_valid(i).then(|| formatter.value(i).to_string())).collect(),
            )
        }
    })
}

impl ColumnView {
    fn is_null(&self, row: usize) -> bool {
        match self {
            ColumnView::Null => true,
            ColumnView::Bool(a) => a.is_null(row),
            ColumnView::Int(a) => a.is_null(row),
            ColumnView::UInt(a) => a.is_null(row),
            ColumnView::Float(a) => a.is_null(row),
            ColumnView::Str(a) => a.is_null(row),
            ColumnView::Timestamp(a, _) => a.is_null(row),
            ColumnView::Text(v) => v[row].is_none(),
        }
    }

    /// Text of a cell, `None` for null.
    fn text(&self, row: usize) -> Option<String> {
        if self.is_null(row) {
            return None;
        }
        Some(match self {
            ColumnView::Null => return None,
            ColumnView::Bool(a) => a.value(row).to_string(),
            ColumnView::Int(a) => a.value(row).to_string(),
            ColumnView::UInt(a) => a.value(row).to_string(),
            ColumnView::Float(a) => a.value(row).to_string(),
            ColumnView::Str(a) => a.value(row).to_owned(),
            ColumnView::Timestamp(a, nanos_per_unit) => timestamp_text(a.value(row), *nanos_per_unit),
            ColumnView::Text(v) => v[row].clone()?,
        })
    }

    fn json(&self, row: usize) -> Value {
        if self.is_null(row) {
            return Value::Null;
        }
        match self {
            ColumnView::Null => Value::Null,
            ColumnView::Bool(a) => Value::Bool(a.value(row)),
            ColumnView::Int(a) => Value::from(a.value(row)),
            ColumnView::UInt(a) => Value::from(a.value(row)),
            ColumnView::Float(a) => {
                serde_json::Number::from_f64(a.value(row)).map(Value::Number).unwrap_or(Value::Null)
            }
            ColumnView::Str(a) => Value::String(a.value(row).to_owned()),
            ColumnView::Timestamp(a, nanos_per_unit) => Value::String(timestamp_text(a.value(row), *nanos_per_unit)),
            ColumnView::Text(v) => v[row].clone().map(Value::String).unwrap_or(Value::Null),
        }
    }
}

/// Whether an Arrow timestamp's zone is UTC (the lake's zone, and `now()`'s), by any of the names
/// DataFusion and clients give it.
pub fn is_utc_zone(zone: &str) -> bool {
    ["utc", "etc/utc", "z", "+00:00", "+00", "+0000", "-00:00", "gmt", "etc/gmt"].contains(&zone.trim().to_ascii_lowercase().as_str())
}

fn timestamp_text(value: i64, nanos_per_unit: i64) -> String {
    match value.checked_mul(nanos_per_unit) {
        Some(ns) => format_rfc3339(ns),
        // Outside the nanosecond range (before 1677 or after 2262): whole seconds.
        None => {
            let secs = value / (1_000_000_000 / nanos_per_unit);
            chrono::DateTime::from_timestamp(secs, 0)
                .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_else(|| value.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{TimestampMicrosecondArray, UInt64Array};
    use arrow::datatypes::{Field, Schema};

    fn sample() -> (SchemaRef, Vec<RecordBatch>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
            Field::new("site", DataType::Utf8, true),
            Field::new("requests", DataType::UInt64, false),
            Field::new("share", DataType::Float64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(
                    TimestampMicrosecondArray::from(vec![1_793_491_200_000_000, 1_793_491_200_500_000])
                        .with_timezone("UTC"),
                ),
                Arc::new(StringArray::from(vec![Some("shop.example"), None])),
                Arc::new(UInt64Array::from(vec![u64::MAX, 7])),
                Arc::new(Float64Array::from(vec![0.5, f64::NAN])),
            ],
        )
        .unwrap();
        (schema, vec![batch])
    }

    /// Regression: `ts AT TIME ZONE 'Europe/Berlin'` (a timestamp of that zone) was shown in UTC,
    /// as if the conversion had done nothing; it is shown in its zone, with its offset.
    #[test]
    fn a_timestamp_of_another_zone_is_shown_in_it() {
        let zoned = |tz: &str| {
            let a: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![1_793_491_200_500_000]).with_timezone(tz));
            let schema = Arc::new(Schema::new(vec![Field::new("t", a.data_type().clone(), false)]));
            to_json(&[RecordBatch::try_new(schema, vec![a]).unwrap()])
        };
        assert_eq!(zoned("Europe/Berlin").unwrap(), r#"[{"t":"2026-11-01T01:00:00.500+01:00"}]"#);
        assert_eq!(zoned("America/New_York").unwrap(), r#"[{"t":"2026-10-31T20:00:00.500-04:00"}]"#);
        assert_eq!(zoned("UTC").unwrap(), r#"[{"t":"2026-11-01T00:00:00.500Z"}]"#);
        // A zone no time can be shown in is the statement's mistake, not a failure of ours.
        for bad in ["Bogus/Zone", "UTC+3"] {
            let e = zoned(bad).unwrap_err();
            assert!(matches!(e, QueryError::InvalidSql(_)) && e.to_string().contains("is not known"), "{bad}: {e}");
        }
    }

    #[test]
    fn json_rows() {
        let (_, batches) = sample();
        let json: Value = serde_json::from_str(&to_json(&batches).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                {"ts": "2026-11-01T00:00:00Z", "site": "shop.example", "requests": u64::MAX, "share": 0.5},
                {"ts": "2026-11-01T00:00:00.500Z", "site": null, "requests": 7, "share": null}
            ])
        );
        let text = to_json(&batches).unwrap();
        assert!(text.starts_with(r#"[{"ts":"2026-11-01T00:00:00Z","site":"shop.example","requests":"#), "keys in column order: {text}");
        assert_eq!(to_json(&[]).unwrap(), "[]");
    }

    #[test]
    fn csv_and_table() {
        let (schema, batches) = sample();
        let csv = to_csv(&schema, &batches).unwrap();
        assert_eq!(
            csv,
            format!(
                "ts,site,requests,share\n2026-11-01T00:00:00Z,shop.example,{},0.5\n2026-11-01T00:00:00.500Z,,7,NaN\n",
                u64::MAX
            )
        );
        // Regression: an empty text was written as a null is, an empty field.
        let text_schema: SchemaRef = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
        let texts = RecordBatch::try_new(Arc::clone(&text_schema), vec![Arc::new(StringArray::from(vec![Some(""), None, Some("x")])) as ArrayRef]).unwrap();
        assert_eq!(to_csv(&text_schema, &[texts]).unwrap(), "s\n\"\"\n\nx\n");
        let table = to_table(&schema, &batches).unwrap();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 5);
        assert!(lines[0].starts_with("ts "));
        assert!(lines[1].contains("-+-"));
        assert_eq!(lines[4], "(2 rows)");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn report_texts_never_start_a_formula() {
        assert_eq!(csv_text("=HYPERLINK(\"http://x\",\"y\")"), "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"");
        assert_eq!(csv_text("+1"), "'+1");
        assert_eq!(csv_text("-2+3"), "'-2+3");
        assert_eq!(csv_text("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_text("\tx"), "'\tx");
        assert_eq!(csv_text("Acme, Inc."), "\"Acme, Inc.\"");
        assert_eq!(csv_text("shop.example"), "shop.example");
        assert_eq!(csv_field("-5"), "-5", "SQL results are data");
    }

    #[test]
    fn arrow_ipc_round_trip() {
        let (schema, batches) = sample();
        let bytes = to_arrow_ipc(&schema, &batches).unwrap();
        let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
        let back: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
        assert_eq!(back, batches);
        let empty = to_arrow_ipc(&schema, &[]).unwrap();
        assert!(!empty.is_empty());
    }

    #[test]
    fn accept_negotiation() {
        let f = OutputFormat::from_accept;
        assert_eq!(f(None), Some(OutputFormat::Json));
        assert_eq!(f(Some("*/*")), Some(OutputFormat::Json));
        assert_eq!(f(Some("text/csv, application/json")), Some(OutputFormat::Csv), "first on a tie");
        assert_eq!(f(Some("text/csv;q=0.9, application/json")), Some(OutputFormat::Json), "the higher q");
        assert_eq!(f(Some("application/json;q=0.5, text/csv")), Some(OutputFormat::Csv));
        assert_eq!(f(Some("application/vnd.apache.arrow.stream")), Some(OutputFormat::ArrowIpc));
        assert_eq!(f(Some("application/parquet")), Some(OutputFormat::Parquet));
        assert_eq!(f(Some("text/html, */*;q=0.1")), Some(OutputFormat::Json));
        assert_eq!(f(Some("text/html")), None);
        assert_eq!(f(Some("application/vnd.apache.arrow.file")), None, "the IPC file format is not the stream");
        assert_eq!(f(Some("application/json;q=0")), None);
        // A type refused outright is not what a wildcard stands for.
        assert_eq!(f(Some("application/json;q=0, */*")), Some(OutputFormat::Csv));
        assert_eq!(f(Some("text/csv;q=0, text/*;q=0.5")), Some(OutputFormat::Table));
        assert_eq!(f(Some("*/*;q=0.1, text/csv")), Some(OutputFormat::Csv));
    }
}
