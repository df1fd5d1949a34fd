//! Values between Arrow and the Postgres wire: which PostgreSQL type an Arrow column is sent as,
//! how each cell is written in text and in binary format, how `Bind` parameters are read, and how a
//! parameter becomes a SQL literal of the backend's dialect.
//!
//! Type mapping (Arrow → PostgreSQL): `Int8`/`Int16`/`UInt8` → `int2`; `Int32`/`UInt16` → `int4`;
//! `Int64`/`UInt32`/`UInt64` → `int8` (a `UInt64` above `i64::MAX` is an error, never a wrapped
//! value); `Float16`/`Float32` → `float4`; `Float64` → `float8`; `Decimal*` → `numeric`; `Boolean` →
//! `bool`; `Utf8*` → `text`; `Binary*` → `bytea`; `Date32`/`Date64` → `date`; `Time32`/`Time64` →
//! `time` (microseconds, as PostgreSQL); `Timestamp(_, Some(UTC))`
//! → `timestamptz`, `Timestamp(_, None)` → `timestamp` (microseconds, as PostgreSQL) and a timestamp
//! of another zone (`ts AT TIME ZONE 'Europe/Berlin'`) → `timestamp`, the wall-clock time there;
//! `Interval`/`Duration` → `interval` (`max(ts) - min(ts)`, `interval '5 minutes'`); dictionary
//! columns as their values; everything else as `text` in Arrow's display form.
//!
//! Text output follows PostgreSQL's (`DateStyle = ISO`, `TimeZone = UTC`): `t`/`f`, timestamps
//! `2026-11-01 23:58:00+00`, bytea `\x0102`. Binary output is PostgreSQL's binary send format for
//! every mapped type. Pure: no I/O.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{
    DataType, Date32Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, IntervalMonthDayNanoType, IntervalUnit, Time64MicrosecondType,
    TimeUnit, TimestampMicrosecondType,
};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use bytes::{BufMut, BytesMut};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use pgwire::api::Type;

use crate::backend::Dialect;
use crate::sql_compat::MAX_ARRAY_ELEMENTS;
use crate::error::{QueryError, Result};
use crate::format::is_utc_zone;

/// Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch for binary dates.
const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01, PostgreSQL's epoch for binary timestamps.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// The PostgreSQL type an Arrow column is sent as.
pub fn pg_type(dt: &DataType) -> Type {
    match dt {
        DataType::Boolean => Type::BOOL,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => Type::INT2,
        DataType::Int32 | DataType::UInt16 => Type::INT4,
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => Type::INT8,
        DataType::Float16 | DataType::Float32 => Type::FLOAT4,
        DataType::Float64 => Type::FLOAT8,
        DataType::Decimal32(..) | DataType::Decimal64(..) | DataType::Decimal128(..) | DataType::Decimal256(..) => {
            Type::NUMERIC
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => Type::BYTEA,
        DataType::Date32 | DataType::Date64 => Type::DATE,
        DataType::Time32(_) | DataType::Time64(_) => Type::TIME,
        DataType::Timestamp(_, Some(zone)) if is_utc_zone(zone) => Type::TIMESTAMPTZ,
        // `ts AT TIME ZONE 'Europe/Berlin'`: as in PostgreSQL, the wall-clock time there.
        DataType::Timestamp(_, Some(_)) => Type::TIMESTAMP,
        DataType::Timestamp(_, None) => Type::TIMESTAMP,
        DataType::Interval(_) | DataType::Duration(_) => Type::INTERVAL,
        DataType::Dictionary(_, value) => pg_type(value),
        _ => Type::TEXT,
    }
}


/// Timestamps of a zone other than UTC as the naive wall-clock time of that zone, same unit.
pub(crate) fn wall_clock(array: &ArrayRef) -> Result<Option<ArrayRef>> {
    use arrow::array::timezone::Tz;
    use arrow::datatypes::{TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType};
    use chrono::{Offset, TimeZone};
    let DataType::Timestamp(unit, Some(zone)) = array.data_type() else { return Ok(None) };
    if is_utc_zone(zone) {
        return Ok(None);
    }
    let tz: Tz = zone.parse().map_err(|e| QueryError::InvalidParameter(format!("time zone {zone:?}: {e}")))?;
    let per_second: i64 = match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    };
    let local = |v: i64| -> i64 {
        let utc = DateTime::from_timestamp(v.div_euclid(per_second), 0).unwrap_or_default().naive_utc();
        let offset = i64::from(tz.offset_from_utc_datetime(&utc).fix().local_minus_utc());
        v.saturating_add(offset.saturating_mul(per_second))
    };
    fn naive<T: arrow::datatypes::ArrowTimestampType>(a: &ArrayRef, f: impl Fn(i64) -> i64) -> ArrayRef {
        // `unary` gives the naive type of the unit.
        Arc::new(a.as_primitive::<T>().unary::<_, T>(f))
    }
    Ok(Some(match unit {
        TimeUnit::Second => naive::<TimestampSecondType>(array, local),
        TimeUnit::Millisecond => naive::<TimestampMillisecondType>(array, local),
        TimeUnit::Microsecond => naive::<TimestampMicrosecondType>(array, local),
        TimeUnit::Nanosecond => naive::<TimestampNanosecondType>(array, local),
    }))
}

/// Durations (`max(ts) - min(ts)`: DataFusion's difference of two times) as intervals of days
/// and time, each whole 24 hours a day, as PostgreSQL gives the difference of two timestamps
/// (`4 days 01:30:00`, `-4 days -01:30:00`); `None` for any other column.
pub(crate) fn duration_as_interval(array: &ArrayRef) -> Result<Option<ArrayRef>> {
    use arrow::array::IntervalMonthDayNanoArray;
    use arrow::datatypes::{DurationNanosecondType, IntervalMonthDayNano};
    if !matches!(array.data_type(), DataType::Duration(_)) {
        return Ok(None);
    }
    let nanos = cast_with_options(array, &DataType::Duration(TimeUnit::Nanosecond), &CastOptions { safe: false, ..Default::default() })
        .map_err(|e| QueryError::InvalidParameter(format!("a duration cannot be sent as an interval: {e}")))?;
    const DAY: i64 = 86_400_000_000_000;
    let intervals: IntervalMonthDayNanoArray = nanos
        .as_primitive::<DurationNanosecondType>()
        .iter()
        .map(|v| v.map(|ns| IntervalMonthDayNano::new(0, i32::try_from(ns / DAY).unwrap_or(i32::MAX), ns % DAY)))
        .collect();
    Ok(Some(Arc::new(intervals)))
}

/// The Arrow type a column is converted to before its cells are written as `ty`; `None` for
/// `numeric` (decimals are written from their own text) and for types rendered by Arrow's display.
fn canonical_arrow(ty: &Type, source: &DataType) -> Option<DataType> {
    Some(match *ty {
        Type::BOOL => DataType::Boolean,
        Type::INT2 => DataType::Int16,
        Type::INT4 => DataType::Int32,
        Type::INT8 => DataType::Int64,
        Type::FLOAT4 => DataType::Float32,
        Type::FLOAT8 => DataType::Float64,
        Type::BYTEA => DataType::Binary,
        Type::DATE => DataType::Date32,
        Type::TIME => DataType::Time64(TimeUnit::Microsecond),
        Type::TIMESTAMPTZ => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Type::TIMESTAMP => DataType::Timestamp(TimeUnit::Microsecond, None),
        Type::INTERVAL => DataType::Interval(IntervalUnit::MonthDayNano),
        Type::TEXT if matches!(source, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(..)) => {
            DataType::Utf8
        }
        _ => return None,
    })
}

/// A result column ready to be written cell by cell as `ty`.
#[derive(Debug)]
pub struct PgColumn {
    ty: Type,
    array: ArrayRef,
    /// For `text` of non-string types and for `numeric`: each cell's display text.
    display: bool,
}

impl PgColumn {
    /// Prepare `array` to be sent as `ty` (normally [`pg_type`] of its type). Integer narrowing that
    /// loses a value (a `UInt64` above `i64::MAX` as `int8`) is an error.
    pub fn new(array: &ArrayRef, ty: Type) -> Result<PgColumn> {
        let strict = CastOptions { safe: false, ..Default::default() };
        let local;
        let array = match (&ty, wall_clock(array)?, duration_as_interval(array)?) {
            (&Type::TIMESTAMP, Some(wall), _) => {
                local = wall;
                &local
            }
            (&Type::INTERVAL, _, Some(interval)) => {
                local = interval;
                &local
            }
            _ => array,
        };
        match canonical_arrow(&ty, array.data_type()) {
            Some(target) if &target == array.data_type() => Ok(PgColumn { ty, array: Arc::clone(array), display: false }),
            Some(target) => {
                let array = cast_with_options(array, &target, &strict).map_err(|e| {
                    QueryError::InvalidParameter(format!("a {} value cannot be sent as {}: {e}", array.data_type(), ty.name()))
                })?;
                Ok(PgColumn { ty, array, display: false })
            }
            None => Ok(PgColumn { ty, array: Arc::clone(array), display: true }),
        }
    }

    pub fn pg_type(&self) -> &Type {
        &self.ty
    }

    /// Cell `row` in text format, as [`PgColumn::write_cell`] sends it; `None` for NULL.
    pub fn text(&self, row: usize) -> Result<Option<String>> {
        if self.array.logical_nulls().is_some_and(|n| n.is_null(row)) {
            return Ok(None);
        }
        if self.display {
            return display_text(&self.array, row).map(Some);
        }
        let mut buf = BytesMut::new();
        self.write_text(row, &mut buf);
        Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
    }

    /// Append cell `row` as a DataRow field: its length (or -1 for NULL) and its bytes.
    pub fn write_cell(&self, row: usize, binary: bool, buf: &mut BytesMut) -> Result<()> {
        // Logical nulls: a `Null` column or a dictionary's null values are NULL too.
        if self.array.logical_nulls().is_some_and(|n| n.is_null(row)) {
            buf.put_i32(-1);
            return Ok(());
        }
        let len_at = buf.len();
        buf.put_i32(0);
        if self.display {
            let text = display_text(&self.array, row)?;
            if binary && self.ty == Type::NUMERIC {
                numeric_binary(&text, buf)?;
            } else {
                buf.put_slice(text.as_bytes());
            }
        } else if binary {
            self.write_binary(row, buf);
        } else {
            self.write_text(row, buf);
        }
        let len = i32::try_from(buf.len() - len_at - 4)
            .map_err(|_| QueryError::InvalidParameter("a value larger than 2 GiB cannot be sent".into()))?;
        buf[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }

    fn write_text(&self, row: usize, buf: &mut BytesMut) {
        let a = &self.array;
        match self.ty {
            Type::BOOL => buf.put_slice(if a.as_boolean().value(row) { b"t" } else { b"f" }),
            Type::INT2 => buf.put_slice(a.as_primitive::<Int16Type>().value(row).to_string().as_bytes()),
            Type::INT4 => buf.put_slice(a.as_primitive::<Int32Type>().value(row).to_string().as_bytes()),
            Type::INT8 => buf.put_slice(a.as_primitive::<Int64Type>().value(row).to_string().as_bytes()),
            Type::FLOAT4 => buf.put_slice(float4_text(a.as_primitive::<Float32Type>().value(row)).as_bytes()),
            Type::FLOAT8 => buf.put_slice(float_text(a.as_primitive::<Float64Type>().value(row)).as_bytes()),
            Type::BYTEA => {
                buf.put_slice(b"\\x");
                for b in a.as_binary::<i32>().value(row) {
                    buf.put_slice(format!("{b:02x}").as_bytes());
                }
            }
            Type::DATE => buf.put_slice(date_text(a.as_primitive::<Date32Type>().value(row)).as_bytes()),
            Type::TIME => buf.put_slice(clock_text(a.as_primitive::<Time64MicrosecondType>().value(row).unsigned_abs()).as_bytes()),
            Type::TIMESTAMPTZ => {
                buf.put_slice(timestamp_text(a.as_primitive::<TimestampMicrosecondType>().value(row), true).as_bytes())
            }
            Type::TIMESTAMP => {
                buf.put_slice(timestamp_text(a.as_primitive::<TimestampMicrosecondType>().value(row), false).as_bytes())
            }
            Type::INTERVAL => buf.put_slice(interval_text(a.as_primitive::<IntervalMonthDayNanoType>().value(row)).as_bytes()),
            _ => buf.put_slice(a.as_string::<i32>().value(row).as_bytes()),
        }
    }

    fn write_binary(&self, row: usize, buf: &mut BytesMut) {
        let a = &self.array;
        match self.ty {
            Type::BOOL => buf.put_u8(u8::from(a.as_boolean().value(row))),
            Type::INT2 => buf.put_i16(a.as_primitive::<Int16Type>().value(row)),
            Type::INT4 => buf.put_i32(a.as_primitive::<Int32Type>().value(row)),
            Type::INT8 => buf.put_i64(a.as_primitive::<Int64Type>().value(row)),
            Type::FLOAT4 => buf.put_f32(a.as_primitive::<Float32Type>().value(row)),
            Type::FLOAT8 => buf.put_f64(a.as_primitive::<Float64Type>().value(row)),
            Type::BYTEA => buf.put_slice(a.as_binary::<i32>().value(row)),
            Type::DATE => buf.put_i32(a.as_primitive::<Date32Type>().value(row) - PG_EPOCH_DAYS),
            Type::TIME => buf.put_i64(a.as_primitive::<Time64MicrosecondType>().value(row)),
            Type::TIMESTAMPTZ | Type::TIMESTAMP => {
                buf.put_i64(a.as_primitive::<TimestampMicrosecondType>().value(row) - PG_EPOCH_MICROS)
            }
            Type::INTERVAL => {
                let v = a.as_primitive::<IntervalMonthDayNanoType>().value(row);
                buf.put_i64(v.nanoseconds.div_euclid(1000));
                buf.put_i32(v.days);
                buf.put_i32(v.months);
            }
            _ => buf.put_slice(a.as_string::<i32>().value(row).as_bytes()),
        }
    }
}

fn display_text(array: &ArrayRef, row: usize) -> Result<String> {
    let options = FormatOptions::default().with_display_error(true);
    Ok(ArrayFormatter::try_new(array.as_ref(), &options)?.value(row).to_string())
}

/// PostgreSQL's text form of an interval (`IntervalStyle = postgres`): `1 year 2 mons 3 days
/// 04:05:06.5`, `00:05:00`, `-00:00:01`; hours are not carried into days, microseconds are the
/// finest part (as PostgreSQL keeps them).
pub fn interval_text(v: arrow::datatypes::IntervalMonthDayNano) -> String {
    let mut parts = Vec::new();
    // After a negative part, a positive one is written with its sign (`-1 days +02:00:00`).
    let mut negative_before = false;
    let (years, months) = (v.months / 12, v.months % 12);
    for (n, one, many) in [(years, "year", "years"), (months, "mon", "mons"), (v.days, "day", "days")] {
        if n == 0 {
            continue;
        }
        let sign = if negative_before && n > 0 { "+" } else { "" };
        // PostgreSQL writes the singular for 1 only (`-1 days`).
        parts.push(format!("{sign}{n} {}", if n == 1 { one } else { many }));
        negative_before |= n < 0;
    }
    let micros = v.nanoseconds / 1000;
    if micros != 0 || parts.is_empty() {
        let sign = if micros < 0 {
            "-"
        } else if negative_before && micros > 0 {
            "+"
        } else {
            ""
        };
        parts.push(format!("{sign}{}", clock_text(micros.unsigned_abs())));
    }
    parts.join(" ")
}

/// PostgreSQL's text form of a float: shortest round-trip digits, `NaN`, `Infinity`, `-Infinity`;
/// in exponent form below 1e-4 and from 1e15 (`1e-05`, `1.5e+15`), as PostgreSQL writes them.
pub fn float_text(v: f64) -> String {
    shortest_text(v, format!("{v}"), format!("{v:e}"), 15)
}

/// [`float_text`] of a `real`: its own shortest digits (`1.1`, not the `f64` widening's), in
/// exponent form from 1e6 (`1.234567e+06`).
pub fn float4_text(v: f32) -> String {
    shortest_text(f64::from(v), format!("{v}"), format!("{v:e}"), 6)
}

/// A float's text given its shortest digits in fixed (`fixed`) and exponent (`exp`, Rust's
/// `1.5e-7`) form: the exponent form when the exponent is below -4 or from `digits` (PostgreSQL's
/// `DBL_DIG`/`FLT_DIG` rule), with a sign and two digits at least (`1.5e-07`).
fn shortest_text(v: f64, fixed: String, exp: String, digits: i32) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    let Some((mantissa, e)) = exp.split_once('e') else { return fixed };
    let exponent: i32 = e.parse().unwrap_or(0);
    if v == 0.0 || (-4..digits).contains(&exponent) {
        return fixed;
    }
    let (sign, magnitude) = if exponent < 0 { ("-", -exponent) } else { ("+", exponent) };
    format!("{mantissa}e{sign}{magnitude:02}")
}

/// `YYYY-MM-DD` of days since 1970-01-01.
pub fn date_text(days: i32) -> String {
    NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|d| d.checked_add_signed(chrono::Duration::days(i64::from(days))))
        .map_or_else(|| days.to_string(), |d| d.format("%Y-%m-%d").to_string())
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` (+ `+00` with a zone) of microseconds since 1970-01-01 UTC; the
/// fraction without trailing zeros, as PostgreSQL prints it.
pub fn timestamp_text(micros: i64, with_zone: bool) -> String {
    let Some(t) = DateTime::<Utc>::from_timestamp_micros(micros) else { return micros.to_string() };
    let mut s = t.format("%Y-%m-%d ").to_string();
    s.push_str(&clock_text(micros.rem_euclid(86_400_000_000).unsigned_abs()));
    if with_zone {
        s.push_str("+00");
    }
    s
}

/// `HH:MM:SS[.ffffff]` of `micros` (hours not carried into days), the fraction without trailing
/// zeros: the clock of a timestamp, a `time` and an interval, as PostgreSQL writes them.
pub fn clock_text(micros: u64) -> String {
    let (secs, frac) = (micros / 1_000_000, micros % 1_000_000);
    let mut s = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if frac != 0 {
        s.push_str(format!(".{frac:06}").trim_end_matches('0'));
    }
    s
}

/// PostgreSQL's binary `numeric` of a decimal text (`-12.3400`, `NaN`): base-10000 digit groups
/// aligned on the decimal point, weight of the first group, sign, display scale.
pub fn numeric_binary(text: &str, buf: &mut BytesMut) -> Result<()> {
    let bad = || QueryError::InvalidParameter(format!("not a decimal number: {text:?}"));
    let text = text.trim();
    if text.eq_ignore_ascii_case("nan") {
        buf.put_slice(&[0, 0, 0, 0, 0xC0, 0, 0, 0]);
        return Ok(());
    }
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part.bytes().chain(frac_part.bytes()).all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let dscale = u16::try_from(frac_part.len()).map_err(|_| bad())?;
    // Pad the integer part on the left and the fraction on the right to whole groups of 4.
    let int_pad = (4 - int_part.len() % 4) % 4;
    let frac_pad = (4 - frac_part.len() % 4) % 4;
    let padded: String = "0".repeat(int_pad) + int_part + frac_part + &"0".repeat(frac_pad);
    let mut groups: Vec<i16> =
        padded.as_bytes().chunks(4).map(|c| c.iter().fold(0i16, |acc, d| acc * 10 + i16::from(d - b'0'))).collect();
    let int_groups = (int_part.len() + int_pad) / 4;
    let mut weight = int_groups as i64 - 1;
    let leading = groups.iter().take_while(|&&g| g == 0).count();
    groups.drain(..leading);
    weight -= leading as i64;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let ndigits = i16::try_from(groups.len()).map_err(|_| bad())?;
    let weight = i16::try_from(weight).map_err(|_| bad())?;
    buf.put_i16(ndigits);
    buf.put_i16(weight);
    buf.put_u16(if negative && !groups.is_empty() { 0x4000 } else { 0 });
    buf.put_u16(dscale);
    for g in groups {
        buf.put_i16(g);
    }
    Ok(())
}

/// Decimal text of PostgreSQL's binary `numeric`.
pub fn numeric_from_binary(raw: &[u8]) -> Result<String> {
    let bad = || QueryError::InvalidParameter("malformed binary numeric parameter".into());
    let word = |i: usize| raw.get(i * 2..i * 2 + 2).map(|b| u16::from_be_bytes([b[0], b[1]])).ok_or_else(bad);
    let (ndigits, weight, sign, dscale) = (word(0)? as usize, word(1)? as i16, word(2)?, word(3)? as usize);
    if sign == 0xC000 {
        return Ok("NaN".into());
    }
    let digits: Vec<u16> = (0..ndigits).map(|i| word(4 + i)).collect::<Result<_>>()?;
    if digits.iter().any(|&d| d > 9999) {
        return Err(bad());
    }
    let mut int_part = String::new();
    let mut frac_part = String::new();
    let weight = i32::from(weight);
    // Group i has weight `weight - i`: >= 0 is integer part, < 0 fraction.
    let last_weight = weight.min(-1).min(weight - ndigits as i32 + 1);
    for w in (last_weight..=weight.max(0)).rev() {
        let idx = weight - w;
        let g = if idx >= 0 && (idx as usize) < digits.len() { digits[idx as usize] } else { 0 };
        if w >= 0 {
            int_part.push_str(&format!("{g:04}"));
        } else {
            frac_part.push_str(&format!("{g:04}"));
        }
    }
    let int_part = int_part.trim_start_matches('0');
    let mut out = String::new();
    if sign == 0x4000 {
        out.push('-');
    }
    out.push_str(if int_part.is_empty() { "0" } else { int_part });
    if dscale > 0 {
        let mut frac: String = frac_part.chars().take(dscale).collect();
        while frac.len() < dscale {
            frac.push('0');
        }
        out.push('.');
        out.push_str(&frac);
    }
    Ok(out)
}

/// A `Bind` parameter, read according to its type.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// Validated decimal text.
    Numeric(String),
    Text(String),
    Bytes(Vec<u8>),
    /// Microseconds since 1970-01-01 UTC.
    Timestamp(i64),
    /// Days since 1970-01-01.
    Date(i32),
    /// An interval (a driver's `timedelta`, or text PostgreSQL reads as one).
    Interval(crate::time_text::Interval),
    /// A one-dimensional array (`text[]`, `int8[]`, …): a list parameter of `x = ANY ($1)`.
    Array(Vec<ParamValue>),
}


/// The element type of an array type (`None` for other types).
fn element_type(ty: &Type) -> Option<Type> {
    Some(match *ty {
        Type::BOOL_ARRAY => Type::BOOL,
        Type::INT2_ARRAY => Type::INT2,
        Type::INT4_ARRAY => Type::INT4,
        Type::INT8_ARRAY => Type::INT8,
        Type::OID_ARRAY => Type::OID,
        Type::FLOAT4_ARRAY => Type::FLOAT4,
        Type::FLOAT8_ARRAY => Type::FLOAT8,
        Type::NUMERIC_ARRAY => Type::NUMERIC,
        Type::BYTEA_ARRAY => Type::BYTEA,
        Type::DATE_ARRAY => Type::DATE,
        Type::TIMESTAMP_ARRAY => Type::TIMESTAMP,
        Type::TIMESTAMPTZ_ARRAY => Type::TIMESTAMPTZ,
        Type::TEXT_ARRAY => Type::TEXT,
        Type::VARCHAR_ARRAY => Type::VARCHAR,
        Type::BPCHAR_ARRAY => Type::BPCHAR,
        Type::NAME_ARRAY => Type::NAME,
        Type::CHAR_ARRAY => Type::CHAR,
        _ => return None,
    })
}

/// The type a cast names (`int`, `bigint`, `double precision`, `timestamptz`, `text[]`, as
/// [`super::sql_text::placeholder_casts`] returns them); `None` for names not mapped here.
pub fn type_by_name(name: &str) -> Option<Type> {
    if let Some(elem) = name.strip_suffix("[]") {
        return type_by_name(elem).map(|t| array_type(&t));
    }
    Some(match name {
        "bool" | "boolean" => Type::BOOL,
        "int2" | "smallint" => Type::INT2,
        "int" | "int4" | "integer" => Type::INT4,
        "int8" | "bigint" => Type::INT8,
        "float4" | "real" => Type::FLOAT4,
        "float8" | "float" | "double precision" => Type::FLOAT8,
        "numeric" | "decimal" => Type::NUMERIC,
        "text" => Type::TEXT,
        "varchar" | "character varying" => Type::VARCHAR,
        "bytea" => Type::BYTEA,
        "date" => Type::DATE,
        "timestamp" | "timestamp without time zone" => Type::TIMESTAMP,
        "timestamptz" | "timestamp with time zone" => Type::TIMESTAMPTZ,
        _ => return None,
    })
}

/// The array type of `elem` (`text[]` for types without a mapped array type).
pub fn array_type(elem: &Type) -> Type {
    match *elem {
        Type::BOOL => Type::BOOL_ARRAY,
        Type::INT2 => Type::INT2_ARRAY,
        Type::INT4 => Type::INT4_ARRAY,
        Type::INT8 => Type::INT8_ARRAY,
        Type::FLOAT4 => Type::FLOAT4_ARRAY,
        Type::FLOAT8 => Type::FLOAT8_ARRAY,
        Type::NUMERIC => Type::NUMERIC_ARRAY,
        Type::BYTEA => Type::BYTEA_ARRAY,
        Type::DATE => Type::DATE_ARRAY,
        Type::TIMESTAMP => Type::TIMESTAMP_ARRAY,
        Type::TIMESTAMPTZ => Type::TIMESTAMPTZ_ARRAY,
        Type::VARCHAR => Type::VARCHAR_ARRAY,
        _ => Type::TEXT_ARRAY,
    }
}

fn param_error(ty: &Type, detail: impl std::fmt::Display) -> QueryError {
    QueryError::InvalidParameter(format!("invalid input for a parameter of type {}: {detail}", ty.name()))
}

/// Read parameter bytes (`None` = NULL) in `binary` or text format as type `ty`. Types without a
/// dedicated reading are text.
pub fn decode_param(raw: Option<&[u8]>, binary: bool, ty: &Type) -> Result<ParamValue> {
    let Some(raw) = raw else { return Ok(ParamValue::Null) };
    if binary {
        return decode_binary_param(raw, ty);
    }
    let text = std::str::from_utf8(raw).map_err(|_| param_error(ty, "not UTF-8"))?;
    let t = text.trim();
    if let Some(elem) = element_type(ty) {
        let items = array_text_elements(t).ok_or_else(|| param_error(ty, format!("{text:?} is not a one-dimensional array")))?;
        if items.len() > MAX_ARRAY_ELEMENTS {
            return Err(param_error(ty, format!("{} elements; at most {MAX_ARRAY_ELEMENTS} are accepted", items.len())));
        }
        return Ok(ParamValue::Array(
            items.iter().map(|item| decode_param(item.as_deref().map(str::as_bytes), false, &elem)).collect::<Result<_>>()?,
        ));
    }
    Ok(match *ty {
        Type::BOOL => match t.to_ascii_lowercase().as_str() {
            "t" | "true" | "yes" | "y" | "on" | "1" => ParamValue::Bool(true),
            "f" | "false" | "no" | "n" | "off" | "0" => ParamValue::Bool(false),
            _ => return Err(param_error(ty, format!("{text:?}"))),
        },
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => {
            ParamValue::Int(t.parse().map_err(|_| param_error(ty, format!("{text:?} is not an integer")))?)
        }
        Type::FLOAT4 | Type::FLOAT8 => ParamValue::Float(match t.to_ascii_lowercase().as_str() {
            "nan" => f64::NAN,
            "infinity" | "inf" => f64::INFINITY,
            "-infinity" | "-inf" => f64::NEG_INFINITY,
            _ => t.parse().map_err(|_| param_error(ty, format!("{text:?} is not a number")))?,
        }),
        Type::NUMERIC => {
            // Validated by encoding it.
            numeric_binary(t, &mut BytesMut::new()).map_err(|_| param_error(ty, format!("{text:?} is not a decimal")))?;
            ParamValue::Numeric(t.trim_start_matches('+').to_owned())
        }
        Type::BYTEA => ParamValue::Bytes(match t.strip_prefix("\\x") {
            Some(hex) => decode_hex(hex).ok_or_else(|| param_error(ty, "bad hex"))?,
            None => raw.to_vec(),
        }),
        Type::DATE => ParamValue::Date(
            NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .map_err(|e| param_error(ty, format!("{text:?}: {e}")))?
                .signed_duration_since(NaiveDate::default())
                .num_days()
                .try_into()
                .map_err(|_| param_error(ty, "out of range"))?,
        ),
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            ParamValue::Timestamp(parse_timestamp(t).ok_or_else(|| param_error(ty, format!("{text:?} is not a timestamp")))?)
        }
        Type::INTERVAL => ParamValue::Interval(
            crate::time_text::interval_of_text(t).ok_or_else(|| param_error(ty, format!("{text:?} is not an interval")))?,
        ),
        _ => ParamValue::Text(text.to_owned()),
    })
}

fn decode_binary_param(raw: &[u8], ty: &Type) -> Result<ParamValue> {
    if let Some(elem) = element_type(ty) {
        return decode_binary_array(raw, ty, &elem);
    }
    let fixed = |n: usize| -> Result<&[u8]> {
        if raw.len() == n { Ok(raw) } else { Err(param_error(ty, format!("binary value of {} bytes, expected {n}", raw.len()))) }
    };
    Ok(match *ty {
        Type::BOOL => ParamValue::Bool(fixed(1)?[0] != 0),
        Type::INT2 => ParamValue::Int(i64::from(i16::from_be_bytes(fixed(2)?.try_into().unwrap_or_default()))),
        Type::INT4 => ParamValue::Int(i64::from(i32::from_be_bytes(fixed(4)?.try_into().unwrap_or_default()))),
        Type::OID => ParamValue::Int(i64::from(u32::from_be_bytes(fixed(4)?.try_into().unwrap_or_default()))),
        Type::INT8 => ParamValue::Int(i64::from_be_bytes(fixed(8)?.try_into().unwrap_or_default())),
        Type::FLOAT4 => ParamValue::Float(f64::from(f32::from_be_bytes(fixed(4)?.try_into().unwrap_or_default()))),
        Type::FLOAT8 => ParamValue::Float(f64::from_be_bytes(fixed(8)?.try_into().unwrap_or_default())),
        Type::NUMERIC => ParamValue::Numeric(numeric_from_binary(raw)?),
        Type::BYTEA => ParamValue::Bytes(raw.to_vec()),
        Type::DATE => ParamValue::Date(i32::from_be_bytes(fixed(4)?.try_into().unwrap_or_default()).saturating_add(PG_EPOCH_DAYS)),
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            ParamValue::Timestamp(i64::from_be_bytes(fixed(8)?.try_into().unwrap_or_default()).saturating_add(PG_EPOCH_MICROS))
        }
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::JSON | Type::CHAR => {
            ParamValue::Text(String::from_utf8(raw.to_vec()).map_err(|_| param_error(ty, "not UTF-8"))?)
        }
        // Microseconds, days, months (a driver's `timedelta`, `Duration`).
        Type::INTERVAL => {
            let raw = fixed(16)?;
            let int = |r: std::ops::Range<usize>| raw[r].iter().fold(0i64, |acc, b| (acc << 8) | i64::from(*b));
            let micros = int(0..8);
            let (days, months) = (i64::from(int(8..12) as u32 as i32), i64::from(int(12..16) as u32 as i32));
            ParamValue::Interval(crate::time_text::Interval { months, days, micros })
        }
        _ => {
            return Err(QueryError::InvalidParameter(format!(
                "binary parameters of type {} are not supported: send the parameter in text format",
                ty.name()
            )));
        }
    })
}

/// An array in PostgreSQL's binary format: dimensions, flags, element type, then per dimension its
/// length and lower bound, then each element as a length (-1 = NULL) and its bytes.
fn decode_binary_array(raw: &[u8], ty: &Type, elem: &Type) -> Result<ParamValue> {
    struct Reader<'a>(&'a [u8]);
    impl<'a> Reader<'a> {
        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            let (head, tail) = (self.0.get(..n)?, self.0.get(n..)?);
            self.0 = tail;
            Some(head)
        }
        fn int(&mut self) -> Option<i32> {
            Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
        }
    }
    let mut reader = Reader(raw);
    let short = |what: &str| param_error(ty, format!("binary array ends before its {what}"));
    let dims = reader.int().ok_or_else(|| short("dimensions"))?;
    let _flags = reader.int().ok_or_else(|| short("flags"))?;
    let _elem_oid = reader.int().ok_or_else(|| short("element type"))?;
    let len = match dims {
        0 => 0,
        1 => {
            let len = reader.int().ok_or_else(|| short("length"))?;
            let _lower = reader.int().ok_or_else(|| short("lower bound"))?;
            usize::try_from(len).map_err(|_| param_error(ty, "negative length"))?
        }
        n => return Err(param_error(ty, format!("{n} dimensions; only one-dimensional arrays are accepted"))),
    };
    if len > MAX_ARRAY_ELEMENTS {
        return Err(param_error(ty, format!("{len} elements; at most {MAX_ARRAY_ELEMENTS} are accepted")));
    }
    let mut items = Vec::with_capacity(len);
    for _ in 0..len {
        let n = reader.int().ok_or_else(|| short("element length"))?;
        match usize::try_from(n) {
            Ok(n) => items.push(decode_binary_param(reader.take(n).ok_or_else(|| short("element"))?, elem)?),
            Err(_) => items.push(ParamValue::Null),
        }
    }
    if !reader.0.is_empty() {
        return Err(param_error(ty, "bytes after the last element of a binary array"));
    }
    Ok(ParamValue::Array(items))
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect()
}

/// Microseconds since 1970 of a PostgreSQL or RFC 3339 timestamp text; without an offset, UTC.
/// The forms [`crate::time_text::complete_time_text`] completes are read too (`2026/11/01 0:30`,
/// `… utc`).
pub fn parse_timestamp(t: &str) -> Option<i64> {
    let completed = crate::time_text::complete_time_text(t);
    let t = completed.as_deref().unwrap_or(t).trim();
    let t = t.strip_suffix(" UTC").or_else(|| t.strip_suffix(" GMT")).map_or_else(|| t.to_owned(), |t| format!("{t}Z"));
    let t = t.as_str();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.timestamp_micros());
    }
    let t = t.replacen('T', " ", 1);
    // PostgreSQL writes offsets as +00, +05:30 or +0530.
    for fmt in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%#z", "%Y-%m-%d %H:%M%#z"] {
        if let Ok(d) = DateTime::parse_from_str(&t, fmt) {
            return Some(d.timestamp_micros());
        }
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(&t, fmt) {
            return Some(d.and_utc().timestamp_micros());
        }
    }
    NaiveDate::parse_from_str(&t, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|d| d.and_utc().timestamp_micros())
}

/// The elements of a one-dimensional array in PostgreSQL's text form (`{a,"b c",NULL,"x\\"y"}`):
/// `None` for an element written `NULL` (unquoted, any case), else its text (quotes and
/// backslash escapes removed, white space around unquoted elements dropped). `None` when `text` is
/// not such an array (no braces, nested arrays, stray quotes).
pub fn array_text_elements(text: &str) -> Option<Vec<Option<String>>> {
    let inner = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    if inner.trim().is_empty() {
        return Some(Vec::new());
    }
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut item = String::new();
        let quoted = chars.next_if_eq(&'"').is_some();
        if quoted {
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => item.push(chars.next()?),
                    c => item.push(c),
                }
            }
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
        } else {
            // White space after the element is dropped, unless escaped; an escaped `NULL` is text.
            let (mut kept, mut escaped) = (0, false);
            while let Some(c) = chars.next_if(|c| *c != ',') {
                match c {
                    '{' | '}' | '"' => return None,
                    '\\' => {
                        item.push(chars.next()?);
                        kept = item.len();
                        escaped = true;
                    }
                    c => {
                        item.push(c);
                        if !c.is_whitespace() {
                            kept = item.len();
                        }
                    }
                }
            }
            item.truncate(kept);
            if item.is_empty() {
                return None;
            }
            if !escaped && item.eq_ignore_ascii_case("null") {
                out.push(None);
                match chars.next() {
                    None => return Some(out),
                    Some(',') => continue,
                    Some(_) => return None,
                }
            }
        }
        out.push(Some(item));
        match chars.next() {
            None => return Some(out),
            Some(',') => {}
            Some(_) => return None,
        }
    }
}

/// `value` as a SQL literal of `dialect`. Text is quoted and escaped; numbers, booleans, dates and
/// timestamps are written from their parsed value, so no parameter can change the statement's shape.
pub fn literal(dialect: Dialect, value: &ParamValue) -> String {
    match value {
        ParamValue::Null => "NULL".into(),
        // ClickHouse 18.16 has no TRUE/FALSE: its booleans are UInt8.
        ParamValue::Bool(b) => match dialect {
            Dialect::DataFusion => if *b { "TRUE" } else { "FALSE" }.into(),
            Dialect::ClickHouse => if *b { "1" } else { "0" }.into(),
        },
        ParamValue::Int(i) => {
            // A negative literal in parentheses keeps `x-$1` from becoming a comment (`x--1`).
            if *i < 0 { format!("({i})") } else { i.to_string() }
        }
        ParamValue::Float(f) if f.is_finite() => {
            let s = format!("{f:?}");
            if *f < 0.0 { format!("({s})") } else { s }
        }
        ParamValue::Float(f) => {
            let name = if f.is_nan() { "nan" } else if *f > 0.0 { "inf" } else { "-inf" };
            match dialect {
                Dialect::DataFusion => format!("CAST('{name}' AS DOUBLE)"),
                Dialect::ClickHouse => format!("toFloat64('{name}')"),
            }
        }
        ParamValue::Numeric(n) if n.eq_ignore_ascii_case("nan") => match dialect {
            Dialect::DataFusion => "CAST('nan' AS DOUBLE)".into(),
            Dialect::ClickHouse => "nan".into(),
        },
        ParamValue::Numeric(n) => {
            if n.starts_with('-') { format!("({n})") } else { n.clone() }
        }
        ParamValue::Text(s) => dialect.string(s),
        ParamValue::Bytes(b) => {
            let hex: String = b.iter().map(|x| format!("{x:02X}")).collect();
            match dialect {
                Dialect::DataFusion => format!("X'{hex}'"),
                Dialect::ClickHouse => format!("unhex('{hex}')"),
            }
        }
        ParamValue::Timestamp(us) => {
            let text = DateTime::<Utc>::from_timestamp_micros(*us)
                .map_or_else(|| us.to_string(), |t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string());
            match dialect {
                Dialect::DataFusion => format!("CAST('{text}' AS TIMESTAMP)"),
                // `DateTime` holds whole seconds. With a fraction the text is kept for
                // `clickhouse::for_clickhouse`, which rounds it as each comparison needs (a
                // bound's second cut would widen `BETWEEN`) and cuts it elsewhere.
                // Outside the years 18.16 reads as `DateTime` (it would wrap them), its seconds: a
                // number ClickHouse compares a `DateTime` with exactly.
                Dialect::ClickHouse => match DateTime::<Utc>::from_timestamp_micros(*us).map(|t| t.naive_utc()) {
                    Some(t) if !crate::clickhouse::in_datetime_range(t) => format!("toFloat64({})", crate::clickhouse::seconds_text(t)),
                    None => format!("toFloat64({})", *us as f64 / 1e6),
                    _ if us.rem_euclid(1_000_000) == 0 => format!("toDateTime({})", us.div_euclid(1_000_000)),
                    _ => format!("toDateTime('{text}')"),
                },
            }
        }
        ParamValue::Date(days) => match dialect {
            Dialect::DataFusion => format!("CAST('{}' AS DATE)", date_text(*days)),
            Dialect::ClickHouse => format!("toDate('{}')", date_text(*days)),
        },
        ParamValue::Interval(iv) => match dialect {
            Dialect::DataFusion => format!("INTERVAL '{}'", iv.arrow_text()),
            // ClickHouse's intervals have one unit: seconds, a month 30 days.
            Dialect::ClickHouse => {
                let micros = (i128::from(iv.months) * 30 + i128::from(iv.days)) * 86_400_000_000 + i128::from(iv.micros);
                format!("toIntervalSecond({})", micros / 1_000_000)
            }
        },
        ParamValue::Array(items) => {
            let items: Vec<String> = items.iter().map(|v| literal(dialect, v)).collect();
            match dialect {
                Dialect::DataFusion => format!("ARRAY[{}]", items.join(", ")),
                Dialect::ClickHouse => format!("[{}]", items.join(", ")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int32Array, StringArray,
        TimestampMicrosecondArray, UInt32Array, UInt64Array,
    };

    fn cell(array: ArrayRef, binary: bool) -> Option<Vec<u8>> {
        let col = PgColumn::new(&array, pg_type(array.data_type())).unwrap();
        let mut buf = BytesMut::new();
        col.write_cell(0, binary, &mut buf).unwrap();
        let len = i32::from_be_bytes(buf[..4].try_into().unwrap());
        if len < 0 {
            return None;
        }
        assert_eq!(len as usize, buf.len() - 4);
        Some(buf[4..].to_vec())
    }

    fn text(array: ArrayRef) -> String {
        String::from_utf8(cell(array, false).unwrap()).unwrap()
    }

    #[test]
    fn maps_arrow_types() {
        use arrow::datatypes::DataType as D;
        assert_eq!(pg_type(&D::UInt64), Type::INT8);
        assert_eq!(pg_type(&D::UInt32), Type::INT8);
        assert_eq!(pg_type(&D::UInt16), Type::INT4);
        assert_eq!(pg_type(&D::Int16), Type::INT2);
        assert_eq!(pg_type(&D::Float64), Type::FLOAT8);
        assert_eq!(pg_type(&D::Utf8View), Type::TEXT);
        assert_eq!(pg_type(&D::Binary), Type::BYTEA);
        assert_eq!(pg_type(&D::Date32), Type::DATE);
        assert_eq!(pg_type(&D::Decimal128(10, 2)), Type::NUMERIC);
        assert_eq!(pg_type(&D::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))), Type::TIMESTAMPTZ);
        assert_eq!(pg_type(&D::Timestamp(TimeUnit::Nanosecond, None)), Type::TIMESTAMP);
        assert_eq!(pg_type(&D::Dictionary(Box::new(D::Int32), Box::new(D::Utf8))), Type::TEXT);
        assert_eq!(pg_type(&D::Null), Type::TEXT);
        assert_eq!(pg_type(&D::Interval(arrow::datatypes::IntervalUnit::MonthDayNano)), Type::INTERVAL);
        assert_eq!(pg_type(&D::Duration(TimeUnit::Microsecond)), Type::INTERVAL);
    }

    #[test]
    fn text_cells_look_like_postgres() {
        assert_eq!(text(Arc::new(UInt64Array::from(vec![42u64]))), "42");
        assert_eq!(text(Arc::new(BooleanArray::from(vec![true]))), "t");
        assert_eq!(text(Arc::new(Float64Array::from(vec![0.5]))), "0.5");
        assert_eq!(text(Arc::new(Float64Array::from(vec![f64::NAN]))), "NaN");
        assert_eq!(text(Arc::new(BinaryArray::from(vec![&[1u8, 0xab][..]]))), "\\x01ab");
        assert_eq!(text(Arc::new(Date32Array::from(vec![20_758]))), "2026-11-01");
        let ts = TimestampMicrosecondArray::from(vec![1_793_577_480_000_000]).with_timezone("UTC");
        assert_eq!(text(Arc::new(ts)), "2026-11-01 23:58:00+00");
        let ts = TimestampMicrosecondArray::from(vec![1_793_577_480_120_000]);
        assert_eq!(text(Arc::new(ts)), "2026-11-01 23:58:00.12");
        let ts = arrow::array::TimestampSecondArray::from(vec![0]).with_timezone("UTC");
        assert_eq!(text(Arc::new(ts)), "1970-01-01 00:00:00+00");
        let dec = Decimal128Array::from(vec![-123_450]).with_precision_and_scale(10, 3).unwrap();
        assert_eq!(text(Arc::new(dec)), "-123.450");
        // `current_time`: a time of day, in microseconds at most.
        let time: ArrayRef = Arc::new(arrow::array::Time64NanosecondArray::from(vec![62_727_351_449_835]));
        assert_eq!(pg_type(time.data_type()), Type::TIME);
        assert_eq!(text(Arc::clone(&time)), "17:25:27.351449");
        assert_eq!(cell(time, true), Some(62_727_351_449i64.to_be_bytes().to_vec()));
        assert_eq!(text(Arc::new(StringArray::from(vec!["é'x"]))), "é'x");
        assert_eq!(cell(Arc::new(StringArray::from(vec![None::<&str>])), false), None);
        assert_eq!(cell(Arc::new(arrow::array::NullArray::new(1)), false), None);
        assert_eq!(cell(Arc::new(arrow::array::NullArray::new(1)), true), None);
        assert_eq!(text(Arc::new(arrow::array::Float32Array::from(vec![1.1f32]))), "1.1");
        assert_eq!(float_text(1e20), "1e+20");
        assert_eq!(float_text(1.5e-7), "1.5e-07");
        assert_eq!(float_text(-3.0), "-3");
        // PostgreSQL 15's answers: exponent form below 1e-4 and from 1e15 (`real`: 1e6).
        for (v, text) in [(1e15, "1e+15"), (1e14, "100000000000000"), (123456789012345.0, "123456789012345"), (1234567890123456.0, "1.234567890123456e+15"), (0.0001, "0.0001"), (0.00001, "1e-05"), (-1e15, "-1e+15")] {
            assert_eq!(float_text(v), text, "{v}");
        }
        for (v, text) in [(123456f32, "123456"), (1234567f32, "1.234567e+06"), (0.0001f32, "0.0001"), (0.00001f32, "1e-05"), (1e14f32, "1e+14"), (100000f32, "100000"), (1.1f32, "1.1")] {
            assert_eq!(float4_text(v), text, "{v}");
        }
    }

    /// Regression: intervals (`max(ts) - min(ts)`, `now() - ts`, `interval '90 seconds'`) were
    /// text in Arrow's forms (`PT2370590S`, `1 mins 30.000000000 secs`): they are PostgreSQL's
    /// `interval`, in its text and binary forms.
    #[test]
    fn intervals_are_postgres_intervals() {
        use arrow::array::{DurationMicrosecondArray, DurationSecondArray, IntervalMonthDayNanoArray};
        use arrow::datatypes::IntervalMonthDayNano as I;
        let iv = |months, days, nanos| Arc::new(IntervalMonthDayNanoArray::from(vec![I::new(months, days, nanos)])) as ArrayRef;
        assert_eq!(text(iv(0, 0, 300_000_000_000)), "00:05:00");
        assert_eq!(text(iv(0, 0, 90_000_000_000)), "00:01:30");
        assert_eq!(text(iv(14, 3, 14_706_500_000_000)), "1 year 2 mons 3 days 04:05:06.5");
        assert_eq!(text(iv(0, 1, 0)), "1 day");
        assert_eq!(text(iv(0, -2, -1_000_000_000)), "-2 days -00:00:01");
        // Mixed signs: a positive part after a negative one has its `+`.
        assert_eq!(text(iv(0, -1, 7_200_000_000_000)), "-1 days +02:00:00");
        assert_eq!(text(iv(14, -3, 14_706_500_000_000)), "1 year 2 mons -3 days +04:05:06.5");
        assert_eq!(text(iv(-1, 0, -7_200_000_000_000)), "-1 mons -02:00:00");
        assert_eq!(text(iv(-13, 2, 0)), "-1 years -1 mons +2 days");
        assert_eq!(text(iv(0, 0, 0)), "00:00:00");
        // A difference of two times (`max(ts) - min(ts)`) in days and time, as PostgreSQL's.
        assert_eq!(text(Arc::new(DurationSecondArray::from(vec![2_370_590]))), "27 days 10:29:50");
        assert_eq!(text(Arc::new(DurationMicrosecondArray::from(vec![190_201_950_000]))), "2 days 04:50:01.95");
        assert_eq!(text(Arc::new(DurationSecondArray::from(vec![-86_401]))), "-1 days -00:00:01");
        let mut want = Vec::new();
        want.extend_from_slice(&1_500_000i64.to_be_bytes());
        want.extend_from_slice(&2i32.to_be_bytes());
        want.extend_from_slice(&3i32.to_be_bytes());
        assert_eq!(cell(iv(3, 2, 1_500_000_000), true), Some(want));
    }

    #[test]
    fn timestamps_of_another_zone_are_its_wall_clock_time() {
        // 2026-11-01 23:58:00 UTC is 2026-11-02 00:58 in Berlin (CET) and 18:58 in New York (EST).
        let instant = 1_793_577_480_000_000;
        let berlin: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![instant]).with_timezone("Europe/Berlin"));
        assert_eq!(pg_type(berlin.data_type()), Type::TIMESTAMP);
        assert_eq!(text(berlin), "2026-11-02 00:58:00");
        let ny: ArrayRef = Arc::new(arrow::array::TimestampNanosecondArray::from(vec![instant * 1000]).with_timezone("America/New_York"));
        assert_eq!(text(ny), "2026-11-01 18:58:00");
        let fixed: ArrayRef = Arc::new(arrow::array::TimestampSecondArray::from(vec![instant / 1_000_000]).with_timezone("+05:30"));
        assert_eq!(text(fixed), "2026-11-02 05:28:00");
        for utc in ["UTC", "+00:00"] {
            let a: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![instant]).with_timezone(utc));
            assert_eq!(pg_type(a.data_type()), Type::TIMESTAMPTZ);
            assert_eq!(text(a), "2026-11-01 23:58:00+00");
        }
    }

    #[test]
    fn binary_cells_use_send_formats() {
        assert_eq!(cell(Arc::new(UInt32Array::from(vec![13335u32])), true).unwrap(), 13335i64.to_be_bytes());
        assert_eq!(cell(Arc::new(Int32Array::from(vec![-2])), true).unwrap(), (-2i32).to_be_bytes());
        assert_eq!(cell(Arc::new(Float64Array::from(vec![1.5])), true).unwrap(), 1.5f64.to_be_bytes());
        let ts = TimestampMicrosecondArray::from(vec![PG_EPOCH_MICROS + 7]).with_timezone("UTC");
        assert_eq!(cell(Arc::new(ts), true).unwrap(), 7i64.to_be_bytes());
        assert_eq!(cell(Arc::new(Date32Array::from(vec![PG_EPOCH_DAYS + 1])), true).unwrap(), 1i32.to_be_bytes());
        assert_eq!(cell(Arc::new(BooleanArray::from(vec![false])), true).unwrap(), vec![0]);
        // 123.45 = digits [123, 4500], weight 0, positive, scale 2.
        let dec = Decimal128Array::from(vec![12_345]).with_precision_and_scale(10, 2).unwrap();
        assert_eq!(cell(Arc::new(dec), true).unwrap(), vec![0, 2, 0, 0, 0, 0, 0, 2, 0, 123, 0x11, 0x94]);
    }

    #[test]
    fn uint64_beyond_int8_is_an_error() {
        let array: ArrayRef = Arc::new(UInt64Array::from(vec![u64::MAX]));
        assert!(PgColumn::new(&array, Type::INT8).is_err());
    }

    #[test]
    fn numeric_binary_round_trips() {
        for (text, want) in [
            ("0", "0"),
            ("0.0001", "0.0001"),
            ("-12.3400", "-12.3400"),
            ("100000000", "100000000"),
            ("98765.4321", "98765.4321"),
            ("+7", "7"),
            ("NaN", "NaN"),
            (".5", "0.5"),
        ] {
            let mut buf = BytesMut::new();
            numeric_binary(text, &mut buf).unwrap();
            assert_eq!(numeric_from_binary(&buf).unwrap(), want, "{text}");
        }
        let mut buf = BytesMut::new();
        numeric_binary("0.0001", &mut buf).unwrap();
        assert_eq!(&buf[..], &[0, 1, 0xff, 0xff, 0, 0, 0, 4, 0, 1]);
        for bad in ["", "1e5", "1.2.3", "--1", "abc"] {
            assert!(numeric_binary(bad, &mut BytesMut::new()).is_err(), "{bad}");
        }
    }

    #[test]
    fn parameters_decode_by_type_and_format() {
        assert_eq!(decode_param(Some(b"42"), false, &Type::INT8).unwrap(), ParamValue::Int(42));
        assert_eq!(decode_param(Some(&42i32.to_be_bytes()), true, &Type::INT4).unwrap(), ParamValue::Int(42));
        assert_eq!(decode_param(Some(b"true"), false, &Type::BOOL).unwrap(), ParamValue::Bool(true));
        assert_eq!(decode_param(None, false, &Type::TEXT).unwrap(), ParamValue::Null);
        assert_eq!(decode_param(Some(b"it's"), false, &Type::UNKNOWN).unwrap(), ParamValue::Text("it's".into()));
        assert_eq!(decode_param(Some(b"\\x0aff"), false, &Type::BYTEA).unwrap(), ParamValue::Bytes(vec![10, 255]));
        assert_eq!(decode_param(Some(b"1.25"), false, &Type::NUMERIC).unwrap(), ParamValue::Numeric("1.25".into()));
        let ts = decode_param(Some(b"2026-11-01 23:58:00+00"), false, &Type::TIMESTAMPTZ).unwrap();
        assert_eq!(ts, ParamValue::Timestamp(1_793_577_480_000_000));
        assert_eq!(decode_param(Some(b"2026-11-01T23:58:00Z"), false, &Type::TIMESTAMPTZ).unwrap(), ts);
        assert_eq!(decode_param(Some(b"2026-11-02 00:58:00+01:00"), false, &Type::TIMESTAMPTZ).unwrap(), ts);
        assert_eq!(decode_param(Some(b"2026-11-01 23:58:00"), false, &Type::TIMESTAMP).unwrap(), ts);
        // The forms a literal takes: without seconds, slashes, a zone name in any case.
        for text in ["2026/11/01 23:58", "2026-11-01 23:58 utc", "2026-11-1 23:58:00 Z", "2026-11-01T23:58Z"] {
            assert_eq!(decode_param(Some(text.as_bytes()), false, &Type::TIMESTAMPTZ).unwrap(), ts, "{text}");
        }
        let bin = (1_793_577_480_000_000i64 - PG_EPOCH_MICROS).to_be_bytes();
        assert_eq!(decode_param(Some(&bin), true, &Type::TIMESTAMPTZ).unwrap(), ts);
        assert_eq!(decode_param(Some(b"2026-11-01"), false, &Type::DATE).unwrap(), ParamValue::Date(20_758));
        for (raw, ty) in [(&b"1; DROP TABLE x"[..], Type::INT8), (b"maybe", Type::BOOL), (b"1e5", Type::NUMERIC), (b"noon", Type::TIMESTAMPTZ)] {
            let err = decode_param(Some(raw), false, &ty).unwrap_err();
            assert!(err.is_user_error(), "{err}");
        }
        assert!(decode_param(Some(&[0, 1]), true, &Type::INT4).is_err());
        assert!(decode_param(Some(&[0]), true, &Type::INTERVAL).is_err());
        let mut interval = 7_200_000_000i64.to_be_bytes().to_vec();
        interval.extend_from_slice(&(-1i32).to_be_bytes());
        interval.extend_from_slice(&14i32.to_be_bytes());
        let read = ParamValue::Interval(crate::time_text::Interval { months: 14, days: -1, micros: 7_200_000_000 });
        assert_eq!(decode_param(Some(&interval), true, &Type::INTERVAL).unwrap(), read);
        assert_eq!(decode_param(Some(b"1 year 2 mons -1 days +02:00:00"), false, &Type::INTERVAL).unwrap(), read);
        assert_eq!(literal(Dialect::DataFusion, &read), "INTERVAL '14 months -1 days 7200000000 microseconds'");
        assert!(decode_param(Some(b"soon"), false, &Type::INTERVAL).is_err());
    }

    #[test]
    fn array_parameters_decode_in_text_and_binary() {
        let text = |raw: &str, ty: &Type| decode_param(Some(raw.as_bytes()), false, ty);
        let strings = |items: &[Option<&str>]| {
            ParamValue::Array(items.iter().map(|i| i.map_or(ParamValue::Null, |s| ParamValue::Text(s.to_owned()))).collect())
        };
        assert_eq!(text("{a,\"b c\",NULL,\"NULL\",\"x\\\"y\", z }", &Type::TEXT_ARRAY).unwrap(), strings(&[Some("a"), Some("b c"), None, Some("NULL"), Some("x\"y"), Some("z")]));
        assert_eq!(text("{}", &Type::TEXT_ARRAY).unwrap(), ParamValue::Array(Vec::new()));
        assert_eq!(text("{\\NULL,a\\ , b }", &Type::TEXT_ARRAY).unwrap(), strings(&[Some("NULL"), Some("a "), Some("b")]));
        assert_eq!(text("{1,-2}", &Type::INT8_ARRAY).unwrap(), ParamValue::Array(vec![ParamValue::Int(1), ParamValue::Int(-2)]));
        for bad in ["1,2", "{1,{2}}", "{\"a}", "{a,,b}", "{1,x}"] {
            assert!(text(bad, &Type::INT4_ARRAY).unwrap_err().is_user_error(), "{bad}");
        }
        // Binary: 1 dimension, no nulls flag, int8 elements, [3, NULL].
        let mut raw = Vec::new();
        for v in [1i32, 1, 20, 2, 1] {
            raw.extend(v.to_be_bytes());
        }
        raw.extend(8i32.to_be_bytes());
        raw.extend(3i64.to_be_bytes());
        raw.extend((-1i32).to_be_bytes());
        let want = ParamValue::Array(vec![ParamValue::Int(3), ParamValue::Null]);
        assert_eq!(decode_param(Some(&raw), true, &Type::INT8_ARRAY).unwrap(), want);
        assert!(decode_param(Some(&raw[..raw.len() - 2]), true, &Type::INT8_ARRAY).is_err());
        let empty: Vec<u8> = [0i32, 0, 25].iter().flat_map(|v| v.to_be_bytes()).collect();
        assert_eq!(decode_param(Some(&empty), true, &Type::TEXT_ARRAY).unwrap(), ParamValue::Array(Vec::new()));
        assert_eq!(literal(Dialect::DataFusion, &want), "ARRAY[3, NULL]");
        assert_eq!(literal(Dialect::DataFusion, &strings(&[Some("it's")])), "ARRAY['it''s']");
        assert_eq!(literal(Dialect::ClickHouse, &ParamValue::Array(vec![ParamValue::Int(1)])), "[1]");
        assert_eq!(type_by_name("double precision"), Some(Type::FLOAT8));
        assert_eq!(type_by_name("bigint[]"), Some(Type::INT8_ARRAY));
        assert_eq!(type_by_name("hstore"), None);
    }

    #[test]
    fn literals_are_quoted_for_each_dialect() {
        let df = Dialect::DataFusion;
        let ch = Dialect::ClickHouse;
        assert_eq!(literal(df, &ParamValue::Text("it's".into())), "'it''s'");
        assert_eq!(literal(ch, &ParamValue::Text("a\\'b".into())), "'a\\\\\\'b'");
        assert_eq!(literal(df, &ParamValue::Int(-5)), "(-5)");
        assert_eq!(literal(df, &ParamValue::Float(2.0)), "2.0");
        assert_eq!(literal(df, &ParamValue::Float(f64::NAN)), "CAST('nan' AS DOUBLE)");
        assert_eq!(literal(df, &ParamValue::Null), "NULL");
        assert_eq!(literal(df, &ParamValue::Bool(true)), "TRUE");
        // Regression: ClickHouse 18.16 refused TRUE/FALSE (unknown identifier).
        assert_eq!((literal(ch, &ParamValue::Bool(true)), literal(ch, &ParamValue::Bool(false))), ("1".into(), "0".into()));
        assert_eq!(literal(df, &ParamValue::Bytes(vec![1, 0xab])), "X'01AB'");
        assert_eq!(literal(ch, &ParamValue::Bytes(vec![1, 0xab])), "unhex('01AB')");
        let ts = ParamValue::Timestamp(1_793_577_480_000_000);
        assert_eq!(literal(df, &ts), "CAST('2026-11-01T23:58:00.000000Z' AS TIMESTAMP)");
        assert_eq!(literal(ch, &ts), "toDateTime(1793577480)");
        // A fraction of a second is kept, for the comparison it is in to round.
        assert_eq!(literal(ch, &ParamValue::Timestamp(1_793_577_480_500_000)), "toDateTime('2026-11-01T23:58:00.500000Z')");
        // Outside the years 18.16 reads as `DateTime`: seconds, compared exactly.
        assert_eq!(literal(ch, &ParamValue::Timestamp(-60_250_000)), "toFloat64(-60.250000)");
        assert_eq!(literal(ch, &ParamValue::Timestamp(5_364_662_400_000_000)), "toFloat64(5364662400)");
        assert_eq!(literal(df, &ParamValue::Date(20_758)), "CAST('2026-11-01' AS DATE)");
        assert_eq!(literal(df, &ParamValue::Numeric("-1.5".into())), "(-1.5)");
    }
}
