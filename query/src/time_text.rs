//! Times and intervals read from text, written as text and compared the way PostgreSQL does, on
//! every session that plans user SQL (the lake's and the Postgres catalog's), by the analyzer rule
//! [`PostgresTimeText`], which runs after DataFusion's type coercion and so sees its casts as well
//! as the statement's:
//!
//! - A text cast to a time (`ts >= '2026-11-28 10:15'`, `'2026-11-28 9:05'::timestamptz`,
//!   `timestamp '2026-11-28T10:15Z'`) is first completed by `edgelens_time_in`
//!   ([`complete_time_text`]): a time of day without seconds gets `:00`, one-digit fields a
//!   leading zero. PostgreSQL reads these; Arrow's cast refused them ("error parsing time").
//! - A text cast to an interval (`'1 day 02:00:00'::interval`, as the text of an interval is
//!   written) is first rewritten by `edgelens_interval_in` into the amounts and units Arrow's cast
//!   reads ([`interval_of_text`]: PostgreSQL's interval input, `HH:MM:SS` parts, `ago`).
//! - A time cast to text (`ts::text`, `'at ' || ts`, `current_time::text`, an interval's) is
//!   written by `edgelens_time_text` as PostgreSQL writes it, the same text the Postgres wire sends
//!   for the value itself: `2026-11-28 10:15:00+00` for a UTC time, the wall clock without a zone
//!   for a time of another zone (`ts AT TIME ZONE 'Europe/Paris'`, a `timestamp` in PostgreSQL)
//!   or without one, microseconds at most and no trailing zeros, `17:28:27.351449` for a time of
//!   day, `1 day 02:00:00` for an interval, `4 days 01:30:00` for the difference of two times.
//!   Arrow wrote `2026-11-28T10:15:00Z`, `17:28:27.351449835`, `0 years 0 mons 1 days 2 hours …`
//!   and `0 days 97 hours 30 mins …`. A float cast to text is written as PostgreSQL writes it
//!   too (`30`, where Arrow wrote `30.0`; `1e+20`).
//! - A comparison of two time spans (`=`, `<`, …, `BETWEEN`, `IN`: intervals, differences of
//!   times) compares their lengths through `edgelens_span_length`, as PostgreSQL compares
//!   intervals (a month 30 days, a day 24 hours): `interval '1 day' = interval '24 hours'`,
//!   `now() - ts > interval '1 day'`; so does `ORDER BY` an interval (`ORDER BY age(ts)`, `ORDER
//!   BY (max(ts) - min(ts)) / n`). DataFusion compared them field by field.
//!
//! The functions are named in a plan as their argument is, as the cast they sit in is, so no
//! column changes its name. [`scaled_interval`] multiplies or divides an interval by a number as
//! PostgreSQL does (a fraction of a month carried into days at 30 a day, of a day into time), for
//! [`crate::sql_compat`]'s literals and [`crate::time_udf`]'s `edgelens_interval_mul`. Pure: no
//! I/O.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, IntervalMonthDayNanoType, IntervalUnit, TimeUnit};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, DataFusionError, Result, exec_err};
use datafusion::logical_expr::expr::{Between, BinaryExpr, Cast, InList, TryCast};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarUDF};
use datafusion::optimizer::AnalyzerRule;

use crate::pgwire::types::{PgColumn, pg_type};
use crate::rewrite_udf::{Rewrite, call, udf};

/// The analyzer rule of the module header, to add to a session after DataFusion's own.
#[derive(Debug, Default)]
pub struct PostgresTimeText;

impl AnalyzerRule for PostgresTimeText {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            let mut schema = merge_schema(&plan.inputs());
            if let LogicalPlan::TableScan(scan) = &plan {
                schema.merge(&DFSchema::try_from_qualified_schema(scan.table_name.clone(), &scan.source.schema())?);
            }
            // A sort key that is an interval sorts by its length (a sort's keys are its input's).
            let sort = matches!(plan, LogicalPlan::Sort(_));
            // Output columns keep their names (an aggregate ordered by an interval is renamed).
            let names = NamePreserver::new(&plan);
            plan.map_expressions(|e| {
                let name = (!sort).then(|| names.save(&e));
                let e = e.transform_up(|e| Ok(rewrite(e, &schema)))?.transform_data(|e| Ok(if sort { by_length(e, &schema) } else { Transformed::no(e) }))?;
                Ok(match name {
                    Some(name) if e.transformed => e.update_data(|e| name.restore(e)),
                    _ => e,
                })
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "edgelens_postgres_time_text"
    }
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn is_time(t: &DataType) -> bool {
    matches!(t, DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 | DataType::Time32(_) | DataType::Time64(_))
}

/// Written by `edgelens_time_text` (dates are already written as PostgreSQL writes them).
fn written(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Timestamp(..)
            | DataType::Time32(_)
            | DataType::Time64(_)
            | DataType::Interval(IntervalUnit::MonthDayNano)
            | DataType::Duration(_)
            | DataType::Float32
            | DataType::Float64
    )
}

/// A time span: an interval, or the difference of two times (DataFusion's duration).
pub(crate) fn is_span(t: &DataType) -> bool {
    matches!(t, DataType::Interval(_) | DataType::Duration(_))
}

/// A sort key `e`: its length if it is an interval, which PostgreSQL sorts by length.
fn by_length(e: Expr, schema: &DFSchema) -> Transformed<Expr> {
    match e.get_type(schema) {
        Ok(DataType::Interval(_)) => Transformed::yes(call(Kind::SpanLength, e)),
        _ => Transformed::no(e),
    }
}

/// `e` with a cast between text and a time going through this module's functions, a
/// comparison of time spans comparing their lengths, and an aggregate's `ORDER BY` an interval
/// ordering by its length.
fn rewrite(e: Expr, schema: &DFSchema) -> Transformed<Expr> {
    let span = |e: &Expr| e.get_type(schema).is_ok_and(|t| is_span(&t));
    match e {
        Expr::BinaryExpr(b)
            if matches!(b.op, Operator::Eq | Operator::NotEq | Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq | Operator::IsDistinctFrom | Operator::IsNotDistinctFrom)
                && span(&b.left) && span(&b.right) => {
            return Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(Box::new(call(Kind::SpanLength, *b.left)), b.op, Box::new(call(Kind::SpanLength, *b.right)))));
        }
        Expr::Between(b) if span(&b.expr) && span(&b.low) && span(&b.high) => {
            let length = |e: Box<Expr>| Box::new(call(Kind::SpanLength, *e));
            return Transformed::yes(Expr::Between(Between::new(length(b.expr), b.negated, length(b.low), length(b.high))));
        }
        Expr::InList(l) if span(&l.expr) && !l.list.is_empty() && l.list.iter().all(span) => {
            let list = l.list.into_iter().map(|e| call(Kind::SpanLength, e)).collect();
            return Transformed::yes(Expr::InList(InList::new(Box::new(call(Kind::SpanLength, *l.expr)), list, l.negated)));
        }
        Expr::AggregateFunction(mut a) => {
            let mut lengths = false;
            for key in &mut a.params.order_by {
                let e = std::mem::replace(&mut key.expr, Expr::Literal(datafusion::common::ScalarValue::Null, None));
                let keyed = by_length(e, schema);
                lengths |= keyed.transformed;
                key.expr = keyed.data;
            }
            return Transformed::new_transformed(Expr::AggregateFunction(a), lengths);
        }
        _ => {}
    }
    let (inner, field, try_cast) = match &e {
        Expr::Cast(Cast { expr, field }) => (expr, field, false),
        Expr::TryCast(TryCast { expr, field }) => (expr, field, true),
        _ => return Transformed::no(e),
    };
    let to = field.data_type();
    let Ok(from) = inner.get_type(schema) else { return Transformed::no(e) };
    let cast_to = |e: Expr| match try_cast {
        false => Expr::Cast(Cast::new_from_field(Box::new(e), Arc::clone(field))),
        true => Expr::TryCast(TryCast::new_from_field(Box::new(e), Arc::clone(field))),
    };
    let already = |f: Kind| matches!(inner.as_ref(), Expr::ScalarFunction(s) if s.name() == f.name());
    if is_text(&from) && is_time(to) && !already(Kind::In) {
        return Transformed::yes(cast_to(call(Kind::In, inner.as_ref().clone())));
    }
    if is_text(&from) && matches!(to, DataType::Interval(_)) && !already(Kind::IntervalIn) {
        return Transformed::yes(cast_to(call(Kind::IntervalIn, inner.as_ref().clone())));
    }
    if written(&from) && is_text(to) {
        let text = call(Kind::Text, inner.as_ref().clone());
        return Transformed::yes(if *to == DataType::Utf8 { text } else { cast_to(text) });
    }
    Transformed::no(e)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// `edgelens_time_in`: a time's text completed for Arrow's cast.
    In,
    /// `edgelens_time_text`: a time as PostgreSQL's text.
    Text,
    /// `edgelens_interval_in`: an interval's text in the amounts and units Arrow's cast reads.
    IntervalIn,
    /// `edgelens_span_length`: a time span's length in microseconds as PostgreSQL compares spans
    /// (a month 30 days, a day 24 hours).
    SpanLength,
}

/// The functions the rule calls, to register on every session it is added to (a plan may be
/// described and planned again from its text).
pub fn udfs() -> [ScalarUDF; 4] {
    [Kind::In, Kind::Text, Kind::IntervalIn, Kind::SpanLength].map(udf)
}

impl Rewrite for Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::In => "edgelens_time_in",
            Kind::Text => "edgelens_time_text",
            Kind::IntervalIn => "edgelens_interval_in",
            Kind::SpanLength => "edgelens_span_length",
        }
    }

    fn return_type(self, _t: &DataType) -> Result<DataType> {
        Ok(if self == Kind::SpanLength { DataType::Int64 } else { DataType::Utf8 })
    }

    fn invoke(self, v: &ColumnarValue) -> Result<ColumnarValue> {
        let scalar = matches!(v, ColumnarValue::Scalar(_));
        let array = v.to_array(1)?;
        // Each text as `f` rewrites it, or as it is (not copied) when `f` leaves it.
        let texts = |f: fn(&str) -> Option<String>| -> Result<ArrayRef> {
            let text = cast(&array, &DataType::Utf8)?;
            let text = text.as_string::<i32>();
            let mut out = datafusion::arrow::array::StringBuilder::with_capacity(text.len(), text.value_data().len());
            for s in text.iter() {
                match s.map(|s| (f(s), s)) {
                    Some((Some(rewritten), _)) => out.append_value(rewritten),
                    Some((None, s)) => out.append_value(s),
                    None => out.append_null(),
                }
            }
            Ok(Arc::new(out.finish()))
        };
        let out: ArrayRef = match self {
            Kind::In => texts(complete_time_text)?,
            Kind::Text => Arc::new(time_text(&array)?),
            Kind::IntervalIn => texts(|s| interval_of_text(s).map(|iv| iv.arrow_text()))?,
            Kind::SpanLength => span_length(&array)?,
        };
        crate::time_udf::columnar(out, scalar)
    }
}

/// The length of each span of `array` (an interval or a duration) in microseconds, as PostgreSQL
/// compares intervals: a month 30 days, a day 24 hours (`interval '1 day' = interval '24 hours'`,
/// `now() - ts > interval '1 day'`). DataFusion compared intervals field by field (months, then
/// days, then nanoseconds), so a difference of 3 days was less than `interval '1 day'`.
fn span_length(array: &ArrayRef) -> Result<ArrayRef> {
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::DurationMicrosecondType;
    const DAY: i64 = 86_400_000_000;
    let lengths: Int64Array = match array.data_type() {
        DataType::Duration(_) => cast(array, &DataType::Duration(TimeUnit::Microsecond))?.as_primitive::<DurationMicrosecondType>().unary(|v| v),
        DataType::Interval(_) => cast(array, &DataType::Interval(IntervalUnit::MonthDayNano))?
            .as_primitive::<IntervalMonthDayNanoType>()
            .unary(|v| i64::from(v.months).saturating_mul(30 * DAY).saturating_add(i64::from(v.days).saturating_mul(DAY)).saturating_add(v.nanoseconds / 1000)),
        other => return exec_err!("edgelens_span_length of a {other}"),
    };
    Ok(Arc::new(lengths))
}

/// PostgreSQL's text of each value of `array` (a timestamp, a time of day, an interval, a
/// difference of two times, a float): the cell the Postgres wire sends for it ([`PgColumn`]).
fn time_text(array: &ArrayRef) -> Result<StringArray> {
    let external = |e: crate::error::QueryError| DataFusionError::External(Box::new(e));
    let column = PgColumn::new(array, pg_type(array.data_type())).map_err(external)?;
    (0..array.len()).map(|row| column.text(row).map_err(external)).collect()
}

/// A date and time of day PostgreSQL reads (`2026-11-28 10:15`, `2026/11/28T9:5+02`,
/// `2026-1-5 10:15:30.5 utc`, `epoch`) written as Arrow's cast reads it (`2026-11-28 10:15:00`,
/// `2026-11-28 09:05:00+02`, `2026-01-05 10:15:30.5 UTC`, `1970-01-01 00:00:00+00`); `None` when
/// `text` needs nothing or is not such a time (the cast then says what is wrong with it).
pub fn complete_time_text(text: &str) -> Option<String> {
    static FORM: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"^\s*(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?:(?:T|\s+)(\d{1,2}):(\d{1,2})(?::(\d{1,2})(\.\d+)?)?)?(.*?)\s*$")
            .expect("a valid pattern")
    });
    // The forms Arrow reads as they are (a date, a date and time with seconds, in the ISO
    // layout), told apart without the pattern: a column of them is cast row by row.
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let iso_date = b.len() >= 10 && digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-' && digits(8..10);
    if iso_date && (b.len() == 10 || (b.len() >= 19 && matches!(b[10], b' ' | b'T') && digits(11..13) && b[13] == b':' && digits(14..16) && b[16] == b':' && digits(17..19) && !b[19..].iter().any(|c| c.is_ascii_lowercase() || *c == b' '))) {
        return None;
    }
    if text.trim().eq_ignore_ascii_case("epoch") {
        return Some("1970-01-01 00:00:00+00".into());
    }
    let c = FORM.captures(text)?;
    let part = |i: usize| c.get(i).map_or("", |m| m.as_str());
    let mut out = format!("{}-{:0>2}-{:0>2}", part(1), part(2), part(3));
    let rest = part(8);
    if c.get(4).is_some() {
        let seconds = c.get(6).map_or("00", |m| m.as_str());
        out.push_str(&format!(" {:0>2}:{:0>2}:{seconds:0>2}{}", part(4), part(5), part(7)));
    } else if !rest.is_empty() {
        // A date followed by something else: not a form this completes.
        return None;
    }
    // Zone names in any case, as PostgreSQL reads them (`utc`, ` z`).
    match rest.trim().to_ascii_uppercase().as_str() {
        "Z" => out.push('Z'),
        zone @ ("UTC" | "GMT") => {
            out.push(' ');
            out.push_str(zone);
        }
        _ => out.push_str(rest),
    }
    (out != text).then_some(out)
}

/// An interval as PostgreSQL keeps one: months, days and microseconds, each with its own sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub months: i64,
    pub days: i64,
    pub micros: i64,
}

const MICROS_PER_DAY: f64 = 86_400_000_000.0;

impl Interval {
    /// The text Arrow's interval cast reads (`14 months -3 days 14706500000 microseconds`).
    pub fn arrow_text(&self) -> String {
        let mut parts = Vec::new();
        if self.months != 0 {
            parts.push(format!("{} months", self.months));
        }
        if self.days != 0 {
            parts.push(format!("{} days", self.days));
        }
        if self.micros != 0 || parts.is_empty() {
            parts.push(format!("{} microseconds", self.micros));
        }
        parts.join(" ")
    }
}

/// An interval's text as PostgreSQL reads it (`IntervalStyle = postgres` input): amounts with
/// units (`1 year 2 mons`, `-3 days`, `1.5 hours`, `2 weeks`, `10 ms`; units in any case,
/// singular, plural or abbreviated), `[-]HH:MM[:SS[.f]]` time parts (`1 day 02:30:00`, `-00:00:01`,
/// `+02:00:00`), an `@` in front and `ago` at the end (which negates it). A fraction of a year
/// becomes months, of a month days (30 a day), of a week or a day time, as PostgreSQL carries them.
/// `None` for any other text (ISO 8601 `P1D`, a bare number).
pub fn interval_of_text(text: &str) -> Option<Interval> {
    let mut words: Vec<&str> = text.split_whitespace().collect();
    if words.first() == Some(&"@") {
        words.remove(0);
    }
    let ago = words.last().is_some_and(|w| w.eq_ignore_ascii_case("ago"));
    if ago {
        words.pop();
    }
    if words.is_empty() {
        return None;
    }
    let (mut months, mut days, mut micros) = (0f64, 0f64, 0f64);
    let mut sign = 1.0;
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        // `1 month - 1 day`: a sign apart from its amount.
        if w == "-" || w == "+" {
            if sign != 1.0 || i + 1 == words.len() {
                return None;
            }
            sign = if w == "-" { -1.0 } else { 1.0 };
            i += 1;
            continue;
        }
        if w.contains(':') {
            micros += sign * time_part(w)?;
            sign = 1.0;
            i += 1;
            continue;
        }
        let amount: f64 = sign * w.parse::<f64>().ok().filter(|a| a.is_finite())?;
        sign = 1.0;
        let unit = words.get(i + 1)?.to_ascii_lowercase();
        let unit = unit.trim_end_matches(',');
        match unit {
            "year" | "years" | "y" | "yr" | "yrs" => months += amount * 12.0,
            "month" | "months" | "mon" | "mons" => months += amount,
            "week" | "weeks" | "w" => days += amount * 7.0,
            "day" | "days" | "d" => days += amount,
            "hour" | "hours" | "h" | "hr" | "hrs" => micros += amount * 3_600_000_000.0,
            "minute" | "minutes" | "min" | "mins" | "m" => micros += amount * 60_000_000.0,
            "second" | "seconds" | "sec" | "secs" | "s" => micros += amount * 1_000_000.0,
            "millisecond" | "milliseconds" | "ms" | "msec" | "msecs" => micros += amount * 1_000.0,
            "microsecond" | "microseconds" | "us" | "usec" | "usecs" => micros += amount,
            _ => return None,
        }
        i += 2;
    }
    // Fractions carried down, as PostgreSQL's input does.
    let whole_months = months.trunc();
    days += (months - whole_months) * 30.0;
    let whole_days = days.trunc();
    micros += (days - whole_days) * MICROS_PER_DAY;
    let sign = if ago { -1 } else { 1 };
    Some(Interval { months: sign * whole_months as i64, days: sign * whole_days as i64, micros: sign * micros.round() as i64 })
}

/// Microseconds of a `[+-]H:MM[:SS[.f]]` time part.
fn time_part(w: &str) -> Option<f64> {
    let (sign, rest) = match w.as_bytes().first()? {
        b'-' => (-1.0, &w[1..]),
        b'+' => (1.0, &w[1..]),
        _ => (1.0, w),
    };
    let fields: Vec<&str> = rest.split(':').collect();
    let number = |f: &str| -> Option<f64> { (!f.is_empty() && f.chars().all(|c| c.is_ascii_digit() || c == '.')).then(|| f.parse().ok()).flatten() };
    let (h, m, s) = match fields.as_slice() {
        [h, m] => (number(h)?, number(m)?, 0.0),
        [h, m, s] => (number(h)?, number(m)?, number(s)?),
        _ => return None,
    };
    Some(sign * ((h * 3600.0 + m * 60.0) * 1_000_000.0 + s * 1_000_000.0))
}

/// `interval * factor` (or `/ factor` with `divide`) as PostgreSQL computes it (`interval_mul`,
/// `interval_div`): each field scaled and cut toward zero, a month's remainder carried into days
/// at 30 a day and a day's into time, to the microsecond. `None` when the result is out of range
/// or the divisor is 0.
pub fn scaled_interval(iv: Interval, factor: f64, divide: bool) -> Option<Interval> {
    if !factor.is_finite() || (divide && factor == 0.0) {
        return None;
    }
    let apply = |x: f64| if divide { x / factor } else { x * factor };
    let round_micro = |x: f64| (x * 1e6).round_ties_even() / 1e6;
    let months = apply(iv.months as f64);
    let days = apply(iv.days as f64);
    let (result_months, mut result_days) = (months.trunc(), days.trunc());
    let month_remainder_days = round_micro((months - result_months) * 30.0);
    let mut sec_remainder = round_micro((days - result_days + month_remainder_days - month_remainder_days.trunc()) * 86_400.0);
    if sec_remainder.abs() >= 86_400.0 {
        let whole = (sec_remainder / 86_400.0).trunc();
        result_days += whole;
        sec_remainder -= whole * 86_400.0;
    }
    result_days += month_remainder_days.trunc();
    let micros = (apply(iv.micros as f64) + sec_remainder * 1e6).round_ties_even();
    let fits = |x: f64, max: f64| x.is_finite() && x.abs() <= max;
    (fits(result_months, f64::from(i32::MAX)) && fits(result_days, f64::from(i32::MAX)) && fits(micros, 9.2e18))
        .then(|| Interval { months: result_months as i64, days: result_days as i64, micros: micros as i64 })
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;

    use super::*;

    #[test]
    fn times_postgres_reads_are_completed_for_arrow() {
        for (text, completed) in [
            ("2026-11-28 10:15", Some("2026-11-28 10:15:00")),
            ("2026-11-28T10:15", Some("2026-11-28 10:15:00")),
            ("2026-11-28 9:05+02", Some("2026-11-28 09:05:00+02")),
            ("2026-11-28 10:15Z", Some("2026-11-28 10:15:00Z")),
            ("2026-11-28 10:15 UTC", Some("2026-11-28 10:15:00 UTC")),
            ("2026-11-28 10:15:00 utc", Some("2026-11-28 10:15:00 UTC")),
            ("2026-11-28 00:10:00 Z", Some("2026-11-28 00:10:00Z")),
            ("2024-02-29 1:2", Some("2024-02-29 01:02:00")),
            ("2026/11/28 10:15", Some("2026-11-28 10:15:00")),
            ("Epoch", Some("1970-01-01 00:00:00+00")),
            ("2026-11-28 10:15:00+02:00", None),
            ("2026-11-28T10:15:00.123Z", None),
            ("2026-11-28T10:15:00.123 utc", Some("2026-11-28 10:15:00.123 UTC")),
            ("2026-11-28 10:15:00 Z", Some("2026-11-28 10:15:00Z")),
            ("2026-1-5 10:15:30.5", Some("2026-01-05 10:15:30.5")),
            (" 2026-11-28 ", Some("2026-11-28")),
            ("2026-1-5", Some("2026-01-05")),
            ("2026-11-28 10:15:00", None),
            ("2026-11-28", None),
            ("2026-11-28 tomorrow", None),
            ("yesterday", None),
            ("", None),
        ] {
            assert_eq!(complete_time_text(text).as_deref(), completed, "{text:?}");
        }
    }

    #[test]
    fn intervals_are_read_as_postgres_reads_them() {
        let iv = |months, days, micros| Some(Interval { months, days, micros });
        for (text, want) in [
            ("1 day 02:00:00", iv(0, 1, 7_200_000_000)),
            ("26:00:00", iv(0, 0, 93_600_000_000)),
            ("1 year 2 mons -3 days +04:05:06.5", iv(14, -3, 14_706_500_000)),
            ("-1 days +02:00:00", iv(0, -1, 7_200_000_000)),
            ("-00:00:01", iv(0, 0, -1_000_000)),
            ("1:30", iv(0, 0, 5_400_000_000)),
            ("1.5 hours", iv(0, 0, 5_400_000_000)),
            ("2 Weeks 3 DAYS", iv(0, 17, 0)),
            ("1.5 months", iv(1, 15, 0)),
            ("0.5 year", iv(6, 0, 0)),
            ("2 hours ago", iv(0, 0, -7_200_000_000)),
            ("@ 1 min", iv(0, 0, 60_000_000)),
            ("10 ms", iv(0, 0, 10_000)),
            ("1 month - 1 day", iv(1, -1, 0)),
            ("1 day 02:00", iv(0, 1, 7_200_000_000)),
            (" 1 hour ", iv(0, 0, 3_600_000_000)),
            ("1 day -", None),
            // As drivers write a duration (psycopg: Python's text of a `timedelta`, or SQL-standard).
            ("-1 day 22:00:00", iv(0, -1, 79_200_000_000)),
            ("1 day, 2:00:00", iv(0, 1, 7_200_000_000)),
            ("+1 day +7200 second +5 microsecond", iv(0, 1, 7_200_000_005)),
            ("P1D", None),
            ("5", None),
            ("1 fortnight", None),
            ("", None),
        ] {
            assert_eq!(interval_of_text(text), want, "{text:?}");
        }
        assert_eq!(Interval { months: 14, days: -3, micros: 5 }.arrow_text(), "14 months -3 days 5 microseconds");
        assert_eq!(Interval { months: 0, days: 0, micros: 0 }.arrow_text(), "0 microseconds");
    }

    #[test]
    fn intervals_are_scaled_as_postgres_scales_them() {
        let iv = |months, days, micros| Interval { months, days, micros };
        let hour = 3_600_000_000;
        for (interval, factor, divide, want) in [
            (iv(0, 1, 0), 3.0, true, iv(0, 0, 8 * hour)),
            (iv(1, 0, 0), 3.0, true, iv(0, 10, 0)),
            (iv(0, 0, hour), 7.0, true, iv(0, 0, 514_285_714)),
            (iv(0, 2, 0), 1.5, true, iv(0, 1, 8 * hour)),
            (iv(12, 0, 0), 12.0, true, iv(1, 0, 0)),
            (iv(12, 0, 0), 5.0, true, iv(2, 12, 0)),
            (iv(1, 0, 0), 1.01, false, iv(1, 0, 7 * hour + 12 * 60_000_000)),
            (iv(0, 0, 1_000_000), 0.1234567, false, iv(0, 0, 123_457)),
            (iv(0, 1, 2 * hour + 30 * 60_000_000), 2.0, false, iv(0, 2, 5 * hour)),
            (iv(0, 0, hour), -2.0, false, iv(0, 0, -2 * hour)),
        ] {
            assert_eq!(scaled_interval(interval, factor, divide), Some(want), "{interval:?} {factor} {divide}");
        }
        assert_eq!(scaled_interval(iv(0, 1, 0), 0.0, true), None);
    }

    #[test]
    fn times_of_day_are_written_as_postgres_writes_them() {
        use crate::pgwire::types::clock_text;
        assert_eq!(clock_text(0), "00:00:00");
        assert_eq!(clock_text(62_727_351_449), "17:25:27.351449");
        assert_eq!(clock_text(3_600_500_000), "01:00:00.5");
    }

    async fn one(ctx: &SessionContext, sql: &str) -> Result<String> {
        let batches = ctx.sql(sql).await?.collect().await?;
        let column = batches[0].column(0);
        Ok(datafusion::arrow::util::display::ArrayFormatter::try_new(column.as_ref(), &Default::default())?.value(0).to_string())
    }

    fn session(with_rule: bool) -> SessionContext {
        let mut config = datafusion::prelude::SessionConfig::new();
        config.options_mut().execution.time_zone = Some("UTC".into());
        let ctx = SessionContext::new_with_config(config);
        if with_rule {
            ctx.add_analyzer_rule(Arc::new(PostgresTimeText));
            for f in udfs() {
                ctx.register_udf(f);
            }
        }
        ctx
    }

    #[tokio::test]
    async fn casts_between_text_and_times_read_and_write_postgres_text() {
        let ctx = session(true);
        for (sql, want) in [
            ("SELECT timestamptz '2026-11-28 10:15'", "2026-11-28T10:15:00Z"),
            ("SELECT CAST('2026-11-28T9:05+02' AS timestamptz)", "2026-11-28T07:05:00Z"),
            ("SELECT count(*) FROM (VALUES (timestamptz '2026-11-28 10:15:30')) t(ts) WHERE ts >= '2026-11-28 10:15'", "1"),
            ("SELECT count(*) FROM (VALUES (timestamptz '2026-11-28 10:15:30')) t(ts) WHERE ts < '2026-11-28 10:15'", "0"),
            ("SELECT TRY_CAST(s AS timestamp) FROM (VALUES ('2026-11-28 10:15')) t(s)", "2026-11-28T10:15:00"),
            ("SELECT timestamptz '2026-11-28 10:15:00.120'::text", "2026-11-28 10:15:00.12+00"),
            ("SELECT 'at ' || timestamptz '2026-11-28 10:15:00Z'", "at 2026-11-28 10:15:00+00"),
            ("SELECT CAST(timestamp '2026-11-28 10:15:00' AS varchar)", "2026-11-28 10:15:00"),
            ("SELECT (timestamptz '2026-11-28 10:15:00Z' AT TIME ZONE 'Europe/Paris')::text", "2026-11-28 11:15:00"),
            ("SELECT (interval '1 day 2 hours')::text", "1 day 02:00:00"),
            ("SELECT (timestamptz '2026-11-29 10:00' - timestamptz '2026-11-25 08:30')::text", "4 days 01:30:00"),
            ("SELECT (timestamptz '2026-11-25 08:30' - timestamptz '2026-11-29 10:00')::text", "-4 days -01:30:00"),
            ("SELECT length(now()::text) > 0", "true"),
            ("SELECT 30.0::float8::text || ' ' || CAST(1e20 AS double) || ' ' || 0.5::real::text", "30 1e+20 0.5"),
            ("SELECT interval '1 day' IN (interval '24 hours', interval '1 hour')", "true"),
            // The text of an interval reads back as the interval.
            ("SELECT (interval '26 hours')::text::interval = interval '26 hours'", "true"),
            ("SELECT CAST('-1 days +02:00:00' AS interval)::text", "-1 days +02:00:00"),
        ] {
            assert_eq!(one(&ctx, sql).await.unwrap(), want, "{sql}");
        }
        // The names of the columns are the cast's.
        let plain = session(false);
        for sql in ["SELECT timestamptz '2026-11-28 10:15:00Z'::text", "SELECT CAST('2026-11-28 10:15:00' AS timestamp)"] {
            let (a, b) = (ctx.sql(sql).await.unwrap(), plain.sql(sql).await.unwrap());
            assert_eq!(a.schema().field(0).name(), b.schema().field(0).name(), "{sql}");
            let collected = a.collect().await.unwrap();
            assert_eq!(collected[0].schema().field(0).name(), b.schema().field(0).name(), "{sql}");
        }
        // Without the rule, Arrow refuses the first and writes the second otherwise.
        assert!(one(&plain, "SELECT timestamptz '2026-11-28 10:15'").await.is_err());
        assert_eq!(one(&plain, "SELECT timestamptz '2026-11-28 10:15:00Z'::text").await.unwrap(), "2026-11-28T10:15:00Z");
        // A text that is no time is still refused, with the cast's own error.
        assert!(one(&ctx, "SELECT timestamptz '2026-11-28 lunch'").await.is_err());
    }

    /// Regression: `ORDER BY` an interval sorted field by field, so `1 day` came after `25 hours`
    /// and `2 days 46:00:00` before `3 days`. PostgreSQL 15 sorts by length.
    #[tokio::test]
    async fn intervals_sort_by_their_length() {
        let ctx = session(true);
        let values = "(VALUES (interval '1 day', 'a'), (interval '25 hours', 'b'), (interval '1 mon', 'c'), (interval '29 days 23 hours', 'd'), \
                      (interval '2 days 46 hours', 'e'), (interval '3 days', 'f'), (NULL, 'g')) v(iv, k)";
        let ordered = ctx.sql(&format!("SELECT k FROM {values} ORDER BY iv")).await.unwrap().collect().await.unwrap();
        let keys: String = ordered.iter().flat_map(|b| b.column(0).as_string::<i32>().iter().map(|k| k.unwrap_or_default().to_owned()).collect::<Vec<_>>()).collect();
        assert_eq!(keys, "abfedcg");
        for (sql, want) in [
            (format!("SELECT string_agg(k, '' ORDER BY iv) FROM {values}"), "abfedcg"),
            (format!("SELECT k FROM {values} ORDER BY iv DESC NULLS LAST LIMIT 1"), "c"),
            (format!("SELECT k FROM (SELECT k, iv FROM {values} ORDER BY iv LIMIT 2) t ORDER BY k DESC LIMIT 1"), "b"),
            (format!("SELECT k FROM {values} ORDER BY iv, k DESC LIMIT 1"), "a"),
        ] {
            assert_eq!(one(&ctx, &sql).await.unwrap(), want, "{sql}");
        }
        // The column itself is answered, not its length.
        let batches = ctx.sql(&format!("SELECT iv FROM {values} ORDER BY iv LIMIT 1")).await.unwrap().collect().await.unwrap();
        assert_eq!(batches[0].schema().field(0).data_type(), &DataType::Interval(IntervalUnit::MonthDayNano));
    }
}
