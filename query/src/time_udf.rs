//! SQL functions on the lake that read times as PostgreSQL does, in place of DataFusion's:
//! - `from_unixtime(seconds[, zone])`: without a zone the instant is UTC (`timestamptz`, `…Z`)
//!   rather than a zoneless time, as `now()` and `to_timestamp(..)` are in the lake's UTC session.
//!   A zoneless time would be read by `AT TIME ZONE` as that zone's wall clock, moving the instant.
//! - `to_timestamp(..)` and its `_seconds`, `_millis`, `_micros`, `_nanos` forms: DataFusion's,
//!   whose answer is made the UTC time its plan says it is. Of a column of text or dates it was
//!   a zoneless time, which failed the statement ("column types must match schema types").
//! - `age(a, b)` and `age(a)` (from midnight of the statement's day): PostgreSQL's symbolic
//!   difference in years, months, days and time (`1 year 2 mons 3 days 04:00:00`), each field
//!   borrowed from the next as PostgreSQL borrows it. DataFusion has none.
//! - `edgelens_interval_mul(interval, factor)` and `edgelens_interval_div(interval, divisor)`:
//!   an interval scaled as PostgreSQL scales it ([`crate::time_text::scaled_interval`]), which
//!   [`crate::sql_compat`] writes for an interval literal times or divided by a number, and
//!   [`SpanArithmetic`] plans for any time span (an interval column, the difference of two times:
//!   `(max(ts) - min(ts)) / 60`, `2 * (end_ts - start_ts)`); DataFusion multiplies no interval
//!   and no duration. A difference of two times is first the interval of days and time
//!   PostgreSQL makes of it (so `(b - a) * 3` is `3 days 69:00:00` as in PostgreSQL). A division
//!   by 0 is an error, a NULL gives NULL.
//! - `date_part(part, t)` (and `EXTRACT`, which DataFusion plans as it): DataFusion's, but the
//!   seconds keep their fraction (`30.5`, a `double precision`; DataFusion's were whole), and the
//!   difference of two times is read as the interval PostgreSQL makes of it, in days and time
//!   (`extract(hour from b - a)` is the hours after the whole days; DataFusion counted every hour
//!   of the difference, and overflowed on its microseconds); the epoch of an interval counts a
//!   year as 365.25 days, as PostgreSQL's does (DataFusion's, 360).
//! - `localtimestamp` and `localtime`: the session's wall clock when the statement started, as a
//!   `timestamp` and a `time` (DataFusion has neither, and read them as column names).
//! - `coalesce(..)`: a text beside a time is read as a time (`COALESCE(end_ts,
//!   '2026-11-01T00:00:00Z')`, PostgreSQL's `unknown` literal), as comparisons, `CASE`,
//!   `GREATEST` and `NULLIF` already read it; DataFusion found no common type for the two.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef, TimeUnit};
use datafusion::arrow;
use datafusion::common::Result;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{ColumnarValue, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature};

/// `from_unixtime`, to register on a session in place of DataFusion's.
pub fn from_unixtime() -> ScalarUDF {
    ScalarUDF::new_from_impl(FromUnixtimeUtc { inner: datafusion::functions::datetime::from_unixtime() })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct FromUnixtimeUtc {
    /// DataFusion's function: the signature, and every call that names a zone.
    inner: Arc<ScalarUDF>,
}

fn utc() -> DataType {
    DataType::Timestamp(TimeUnit::Second, Some("UTC".into()))
}

impl ScalarUDFImpl for FromUnixtimeUtc {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        datafusion::common::internal_err!("call return_field_from_args instead")
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        match args.arg_fields.len() {
            1 => Ok(Arc::new(Field::new(self.name(), utc(), true))),
            _ => self.inner.return_field_from_args(args),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match args.args.as_slice() {
            [seconds] if seconds.data_type() == DataType::Int64 => seconds.cast_to(&utc(), None),
            _ => self.inner.invoke_with_args(args),
        }
    }
}

/// `coalesce`, to register on a session in place of DataFusion's.
pub fn coalesce() -> ScalarUDF {
    ScalarUDF::new_from_impl(CoalesceTimes { inner: datafusion::functions::core::coalesce() })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CoalesceTimes {
    /// DataFusion's function: everything but the coercion of texts beside a time.
    inner: Arc<ScalarUDF>,
}

/// `types` with every text read as the first time among them (a literal PostgreSQL would read as
/// that time); `None` when they hold no time or no text.
fn texts_as_time(types: &[DataType]) -> Option<Vec<DataType>> {
    let is_text = |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    let time = types.iter().find(|t| matches!(t, DataType::Timestamp(..) | DataType::Date32 | DataType::Date64))?;
    types.iter().any(is_text).then(|| types.iter().map(|t| if is_text(t) { time.clone() } else { t.clone() }).collect())
}

impl ScalarUDFImpl for CoalesceTimes {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        datafusion::common::internal_err!("call return_field_from_args instead")
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types).or_else(|e| match texts_as_time(arg_types) {
            Some(times) => self.inner.coerce_types(&times),
            None => Err(e),
        })
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        self.inner.simplify(args, info)
    }

    fn conditional_arguments<'a>(&self, args: &'a [Expr]) -> Option<(Vec<&'a Expr>, Vec<&'a Expr>)> {
        self.inner.conditional_arguments(args)
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        self.inner.invoke_with_args(args)
    }
}

/// `out`, the values of a call, as the call's answer: its one value when every argument was one
/// (a literal, folded when the statement is planned), else the column.
pub(crate) fn columnar(out: datafusion::arrow::array::ArrayRef, scalar: bool) -> Result<ColumnarValue> {
    Ok(if scalar { ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&out, 0)?) } else { ColumnarValue::Array(out) })
}

/// `localtimestamp` and `localtime`, to register on a session.
pub fn local_times() -> [ScalarUDF; 2] {
    [LocalTime { timestamp: true }, LocalTime { timestamp: false }]
        .map(|f| ScalarUDF::new_from_impl(LocalNow { inner: f, signature: Signature::nullary(datafusion::logical_expr::Volatility::Stable) }))
}

#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
struct LocalTime {
    /// `localtimestamp`, else `localtime`.
    timestamp: bool,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct LocalNow {
    inner: LocalTime,
    signature: Signature,
}

impl ScalarUDFImpl for LocalNow {
    fn name(&self) -> &str {
        if self.inner.timestamp { "localtimestamp" } else { "localtime" }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(if self.inner.timestamp { DataType::Timestamp(TimeUnit::Nanosecond, None) } else { DataType::Time64(TimeUnit::Nanosecond) })
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        datafusion::common::internal_err!("{} is replaced by its value when the statement is planned", self.name())
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        use chrono::{TimeZone, Timelike};
        use datafusion::common::ScalarValue;
        let Some(now) = info.query_execution_start_time() else { return Ok(ExprSimplifyResult::Original(args)) };
        let zone = info.config_options().execution.time_zone.as_ref().and_then(|tz| tz.parse::<arrow::array::timezone::Tz>().ok());
        let local = match zone {
            Some(tz) => tz.from_utc_datetime(&now.naive_utc()).naive_local(),
            None => now.naive_utc(),
        };
        let value = if self.inner.timestamp {
            ScalarValue::TimestampNanosecond(local.and_utc().timestamp_nanos_opt(), None)
        } else {
            let time = local.time();
            ScalarValue::Time64Nanosecond(Some(i64::from(time.num_seconds_from_midnight()) * 1_000_000_000 + i64::from(time.nanosecond())))
        };
        Ok(ExprSimplifyResult::Simplified(Expr::Literal(value, None)))
    }
}

/// `to_timestamp` and its forms of a unit, to register in place of DataFusion's on a session with
/// `config` (its zone).
pub fn to_timestamps(config: &datafusion::common::config::ConfigOptions) -> Vec<ScalarUDF> {
    use datafusion::functions::datetime as dt;
    [dt::to_timestamp(config), dt::to_timestamp_seconds(config), dt::to_timestamp_millis(config), dt::to_timestamp_micros(config), dt::to_timestamp_nanos(config)]
        .into_iter()
        .map(|inner| ScalarUDF::new_from_impl(TimestampAsPlanned { inner }))
        .collect()
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct TimestampAsPlanned {
    /// DataFusion's function, made with the session's settings (its zone).
    inner: Arc<ScalarUDF>,
}

impl ScalarUDFImpl for TimestampAsPlanned {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn with_updated_config(&self, config: &datafusion::common::config::ConfigOptions) -> Option<ScalarUDF> {
        let inner = self.inner.inner().with_updated_config(config)?;
        Some(ScalarUDF::new_from_impl(TimestampAsPlanned { inner: Arc::new(inner) }))
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        self.inner.simplify(args, info)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let planned = args.return_field.data_type().clone();
        // The function itself, not its `ScalarUDF`, which checks the type in debug builds.
        let value = self.inner.inner().invoke_with_args(args)?;
        // A zoneless time counted from 1970 UTC: the same instants in the planned zone (UTC).
        match value.data_type() {
            t if t == planned => Ok(value),
            _ => value.cast_to(&planned, None),
        }
    }
}

/// `age`, to register on a session.
pub fn age() -> ScalarUDF {
    ScalarUDF::new_from_impl(Age { signature: Signature::user_defined(datafusion::logical_expr::Volatility::Stable) })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Age {
    signature: Signature,
}

/// Arguments of `age` read as UTC times in microseconds.
fn age_argument() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

impl ScalarUDFImpl for Age {
    fn name(&self) -> &str {
        "age"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types.len() {
            1 | 2 => Ok(vec![age_argument(); arg_types.len()]),
            n => datafusion::common::plan_err!("age takes one or two times, not {n} arguments"),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Interval(datafusion::arrow::datatypes::IntervalUnit::MonthDayNano))
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        use datafusion::common::ScalarValue;
        // `age(t)`: from midnight of the statement's day.
        match (args.as_slice(), info.query_execution_start_time()) {
            ([t], Some(now)) => {
                let midnight = now.date_naive().and_hms_opt(0, 0, 0).map(|m| m.and_utc().timestamp_micros());
                let from = Expr::Literal(ScalarValue::TimestampMicrosecond(midnight, Some("UTC".into())), None);
                Ok(ExprSimplifyResult::Simplified(Expr::ScalarFunction(datafusion::logical_expr::expr::ScalarFunction::new_udf(
                    Arc::new(age()),
                    vec![from, t.clone()],
                ))))
            }
            _ => Ok(ExprSimplifyResult::Original(args)),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::array::{Array, AsArray, IntervalMonthDayNanoArray};
        use datafusion::arrow::datatypes::TimestampMicrosecondType;
        let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = args.number_rows;
        let arrays: Vec<_> = args.args.iter().map(|a| Ok(datafusion::arrow::compute::cast(&a.to_array(rows)?, &age_argument())?)).collect::<Result<_>>()?;
        let (from, to) = match arrays.as_slice() {
            [to] => {
                let midnight = chrono::Utc::now().date_naive().and_hms_opt(0, 0, 0).map(|m| m.and_utc().timestamp_micros());
                (vec![midnight; to.len()], to.as_primitive::<TimestampMicrosecondType>().iter().collect::<Vec<_>>())
            }
            [from, to] => (
                from.as_primitive::<TimestampMicrosecondType>().iter().collect(),
                to.as_primitive::<TimestampMicrosecondType>().iter().collect(),
            ),
            _ => return datafusion::common::exec_err!("age takes one or two times"),
        };
        let ages: IntervalMonthDayNanoArray = from.iter().zip(&to).map(|(a, b)| a.zip(*b).and_then(|(a, b)| age_of(a, b))).collect();
        columnar(Arc::new(ages), scalar)
    }
}

/// PostgreSQL's `age(a, b)` of two UTC times in microseconds (its `timestamp_age`): the fields of
/// the later less those of the earlier, each negative one borrowed from the next (a day as one of
/// the month of `b`'s date, or of `a`'s when `a` is the earlier), with the sign of `a - b`.
pub fn age_of(a: i64, b: i64) -> Option<arrow::datatypes::IntervalMonthDayNano> {
    use chrono::{Datelike, Timelike};
    let (t1, t2) = (chrono::DateTime::from_timestamp_micros(a)?.naive_utc(), chrono::DateTime::from_timestamp_micros(b)?.naive_utc());
    let fields = |t: chrono::NaiveDateTime| {
        [
            i64::from(t.year()),
            i64::from(t.month()),
            i64::from(t.day()),
            i64::from(t.hour()),
            i64::from(t.minute()),
            i64::from(t.second()),
            i64::from(t.nanosecond() / 1000),
        ]
    };
    let (f1, f2) = (fields(t1), fields(t2));
    let mut d: [i64; 7] = std::array::from_fn(|i| f1[i] - f2[i]);
    let negative = a < b;
    if negative {
        d.iter_mut().for_each(|v| *v = -*v);
    }
    let [year, mon, mday, hour, min, sec, usec] = &mut d;
    while *usec < 0 {
        *usec += 1_000_000;
        *sec -= 1;
    }
    while *sec < 0 {
        *sec += 60;
        *min -= 1;
    }
    while *min < 0 {
        *min += 60;
        *hour -= 1;
    }
    while *hour < 0 {
        *hour += 24;
        *mday -= 1;
    }
    // A day borrowed is one of the month of the earlier time's fields, as PostgreSQL takes it.
    let borrowed = if negative { t1 } else { t2 };
    let month_days = days_in_month(borrowed.year(), borrowed.month());
    while *mday < 0 {
        *mday += month_days;
        *mon -= 1;
    }
    while *mon < 0 {
        *mon += 12;
        *year -= 1;
    }
    let sign = if negative { -1 } else { 1 };
    let months = i32::try_from(sign * (*year * 12 + *mon)).ok()?;
    let days = i32::try_from(sign * *mday).ok()?;
    let nanos = sign * ((((*hour * 60 + *min) * 60 + *sec) * 1_000_000 + *usec) * 1000);
    Some(arrow::datatypes::IntervalMonthDayNano::new(months, days, nanos))
}

fn days_in_month(year: i32, month: u32) -> i64 {
    let next = if month == 12 { chrono::NaiveDate::from_ymd_opt(year + 1, 1, 1) } else { chrono::NaiveDate::from_ymd_opt(year, month + 1, 1) };
    let first = chrono::NaiveDate::from_ymd_opt(year, month, 1);
    first.zip(next).map_or(30, |(f, n)| (n - f).num_days())
}

/// `edgelens_interval_mul` and `edgelens_interval_div`, to register on a session.
pub fn interval_scaling() -> [ScalarUDF; 2] {
    [false, true].map(interval_scaling_udf)
}

fn interval_scaling_udf(divide: bool) -> ScalarUDF {
    ScalarUDF::new_from_impl(IntervalScale { divide, signature: Signature::user_defined(datafusion::logical_expr::Volatility::Immutable) })
}

/// Plans `span * x`, `x * span` and `span / x` for a time span `span` (an interval or a
/// difference of two times, by its type) and a number `x` as `edgelens_interval_mul` /
/// `edgelens_interval_div`, where DataFusion's planner refused them (`Cannot coerce arithmetic
/// expression Duration(µs) / Int64`). Register it on a session with the functions.
#[derive(Debug, Default)]
pub struct SpanArithmetic;

impl datafusion::logical_expr::planner::ExprPlanner for SpanArithmetic {
    fn plan_binary_op(
        &self,
        expr: datafusion::logical_expr::planner::RawBinaryExpr,
        schema: &datafusion::common::DFSchema,
    ) -> Result<datafusion::logical_expr::planner::PlannerResult<datafusion::logical_expr::planner::RawBinaryExpr>> {
        use datafusion::logical_expr::ExprSchemable;
        use datafusion::logical_expr::planner::PlannerResult;
        use datafusion::sql::sqlparser::ast::BinaryOperator;
        let type_of = |e: &Expr| e.get_type(schema).ok();
        let span = |t: &Option<DataType>| t.as_ref().is_some_and(crate::time_text::is_span);
        let number = |t: &Option<DataType>| t.as_ref().is_some_and(|t| t.is_numeric() || t.is_null());
        // A quoted number (`iv * '2'`): PostgreSQL reads the literal as the factor.
        let factor = |e: &Expr, t: &Option<DataType>| number(t) || (matches!(e, Expr::Literal(..)) && matches!(t, Some(DataType::Utf8 | DataType::Utf8View)));
        let divide = match expr.op {
            BinaryOperator::Multiply => false,
            BinaryOperator::Divide => true,
            _ => return Ok(PlannerResult::Original(expr)),
        };
        let (left, right) = (type_of(&expr.left), type_of(&expr.right));
        let (span_expr, factor) = match expr {
            e if span(&left) && factor(&e.right, &right) => (e.left, e.right),
            e if !divide && factor(&e.left, &left) && span(&right) => (e.right, e.left),
            e => return Ok(PlannerResult::Original(e)),
        };
        let call = datafusion::logical_expr::expr::ScalarFunction::new_udf(Arc::new(interval_scaling_udf(divide)), vec![span_expr, factor]);
        Ok(PlannerResult::Planned(Expr::ScalarFunction(call)))
    }
}

/// The name of the function scaling an interval (`divide`: by the inverse).
pub fn interval_scaling_name(divide: bool) -> &'static str {
    if divide { "edgelens_interval_div" } else { "edgelens_interval_mul" }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct IntervalScale {
    divide: bool,
    signature: Signature,
}

impl ScalarUDFImpl for IntervalScale {
    fn name(&self) -> &str {
        interval_scaling_name(self.divide)
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            // A difference of two times is made an interval of days and time when called.
            [duration @ DataType::Duration(_), _] => Ok(vec![duration.clone(), DataType::Float64]),
            [_, _] => Ok(vec![DataType::Interval(datafusion::arrow::datatypes::IntervalUnit::MonthDayNano), DataType::Float64]),
            _ => datafusion::common::plan_err!("{} takes an interval and a number", self.name()),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Interval(datafusion::arrow::datatypes::IntervalUnit::MonthDayNano))
    }

    /// Named as the operation written (`max(ts) - min(ts) / 60`), as DataFusion names `a / b`.
    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        let [span, factor] = args else { return datafusion::common::plan_err!("{} takes two arguments", self.name()) };
        Ok(format!("{} {} {}", span.schema_name(), if self.divide { "/" } else { "*" }, factor.schema_name()))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::array::{AsArray, IntervalMonthDayNanoArray};
        use datafusion::arrow::datatypes::{Float64Type, IntervalMonthDayNano, IntervalMonthDayNanoType};
        use crate::time_text::{Interval, scaled_interval};
        let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = args.number_rows;
        let [interval, factor] = args.args.as_slice() else { return datafusion::common::exec_err!("{} takes two arguments", self.name()) };
        let (interval, factor) = (interval.to_array(rows)?, factor.to_array(rows)?);
        let interval = crate::pgwire::types::duration_as_interval(&interval)
            .map_err(|e| datafusion::common::DataFusionError::External(Box::new(e)))?
            .unwrap_or(interval);
        let (intervals, factors) = (interval.as_primitive::<IntervalMonthDayNanoType>(), factor.as_primitive::<Float64Type>());
        let mut out = Vec::with_capacity(rows);
        for (iv, f) in intervals.iter().zip(factors.iter()) {
            let (Some(iv), Some(f)) = (iv, f) else {
                out.push(None);
                continue;
            };
            if self.divide && f == 0.0 {
                return datafusion::common::exec_err!("division by zero (an interval divided by 0)");
            }
            let read = Interval { months: i64::from(iv.months), days: i64::from(iv.days), micros: iv.nanoseconds / 1000 };
            let Some(scaled) = scaled_interval(read, f, self.divide) else { return datafusion::common::exec_err!("interval out of range") };
            let (months, days) = (i32::try_from(scaled.months), i32::try_from(scaled.days));
            let (Ok(months), Ok(days), Some(nanos)) = (months, days, scaled.micros.checked_mul(1000)) else {
                return datafusion::common::exec_err!("interval out of range");
            };
            out.push(Some(IntervalMonthDayNano::new(months, days, nanos)));
        }
        columnar(Arc::new(IntervalMonthDayNanoArray::from(out)), scalar)
    }
}

/// `date_part`, to register on a session in place of DataFusion's.
pub fn date_part() -> ScalarUDF {
    ScalarUDF::new_from_impl(DatePart { inner: datafusion::functions::datetime::date_part() })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct DatePart {
    /// DataFusion's function: every other part and type.
    inner: Arc<ScalarUDF>,
}

/// The names of the seconds as a part.
const SECONDS: &[&str] = &["second", "seconds", "s", "sec", "secs"];

/// Whether `part` (a literal) is one of `names`, in any case.
fn is_part(part: Option<&datafusion::common::ScalarValue>, names: &[&str]) -> bool {
    part.and_then(|p| p.try_as_str().flatten()).is_some_and(|p| names.iter().any(|s| p.trim().eq_ignore_ascii_case(s)))
}

impl ScalarUDFImpl for DatePart {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        datafusion::common::internal_err!("call return_field_from_args instead")
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        if is_part(args.scalar_arguments.first().copied().flatten(), SECONDS) {
            let nullable = args.arg_fields.get(1).is_none_or(|f| f.is_nullable());
            return Ok(Arc::new(Field::new(self.name(), DataType::Float64, nullable)));
        }
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let part = match args.args.first() {
            Some(ColumnarValue::Scalar(part)) => Some(part.clone()),
            _ => None,
        };
        let seconds = is_part(part.as_ref(), SECONDS);
        let Some(value) = args.args.get(1).cloned() else { return self.inner.invoke_with_args(args) };
        // A difference of two times: the interval of days and time PostgreSQL makes of it.
        let value = match value.data_type() {
            DataType::Duration(_) => {
                let array = value.to_array(args.number_rows)?;
                let interval = crate::pgwire::types::duration_as_interval(&array)
                    .map_err(|e| datafusion::common::DataFusionError::External(Box::new(e)))?
                    .unwrap_or(array);
                ColumnarValue::Array(interval)
            }
            _ => value,
        };
        let epoch = is_part(part.as_ref(), &["epoch"]) && matches!(value.data_type(), DataType::Interval(_));
        if seconds || epoch {
            let scalar = matches!(args.args.get(1), Some(ColumnarValue::Scalar(_)));
            let array = value.to_array(args.number_rows)?;
            let out = if seconds { seconds_of(&array)? } else { interval_epoch(&array)? };
            return columnar(out, scalar);
        }
        args.args[1] = value;
        if let Some(field) = args.arg_fields.get_mut(1) {
            *field = Arc::new(field.as_ref().clone().with_data_type(args.args[1].data_type()));
        }
        // The function itself, not its `ScalarUDF`, which checks the type in debug builds.
        self.inner.inner().invoke_with_args(args)
    }
}

/// The seconds an interval spans, as PostgreSQL's `extract(epoch from interval)` counts them: a
/// year 365.25 days, a month beyond whole years 30 days, a day 24 hours (DataFusion counted a
/// year as 360 days).
fn interval_epoch(array: &datafusion::arrow::array::ArrayRef) -> Result<datafusion::arrow::array::ArrayRef> {
    use datafusion::arrow::array::{AsArray, Float64Array};
    use datafusion::arrow::datatypes::{IntervalMonthDayNanoType, IntervalUnit};
    const DAY: f64 = 86_400.0;
    let iv = datafusion::arrow::compute::cast(array, &DataType::Interval(IntervalUnit::MonthDayNano))?;
    let out: Float64Array = iv.as_primitive::<IntervalMonthDayNanoType>().unary(|v| {
        f64::from(v.months / 12) * 365.25 * DAY + f64::from(v.months % 12) * 30.0 * DAY + f64::from(v.days) * DAY + v.nanoseconds as f64 / 1e9
    });
    Ok(Arc::new(out))
}

/// The seconds of each time, with their fraction, as PostgreSQL's `date_part('second', …)`: of a
/// time of day or a timestamp (at its zone's wall clock) 0 to 59.999999, of an interval its
/// seconds field with its sign; a date has none (0).
fn seconds_of(array: &datafusion::arrow::array::ArrayRef) -> Result<datafusion::arrow::array::ArrayRef> {
    use datafusion::arrow::array::{AsArray, Float64Array};
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::{IntervalMonthDayNanoType, IntervalUnit, Time64NanosecondType, TimestampNanosecondType};
    const MINUTE: i64 = 60_000_000_000;
    let seconds = |ns: i64| ns as f64 / 1e9;
    let out: Float64Array = match array.data_type() {
        DataType::Timestamp(_, _) => {
            let wall = crate::pgwire::types::wall_clock(array).map_err(|e| datafusion::common::DataFusionError::External(Box::new(e)))?;
            let ns = cast(wall.as_ref().unwrap_or(array), &DataType::Timestamp(TimeUnit::Nanosecond, None))?;
            ns.as_primitive::<TimestampNanosecondType>().unary(|v| seconds(v.rem_euclid(MINUTE)))
        }
        DataType::Time32(_) | DataType::Time64(_) => {
            let ns = cast(array, &DataType::Time64(TimeUnit::Nanosecond))?;
            ns.as_primitive::<Time64NanosecondType>().unary(|v| seconds(v.rem_euclid(MINUTE)))
        }
        DataType::Interval(_) => {
            let iv = cast(array, &DataType::Interval(IntervalUnit::MonthDayNano))?;
            iv.as_primitive::<IntervalMonthDayNanoType>().unary(|v| seconds(v.nanoseconds % MINUTE))
        }
        DataType::Date32 | DataType::Date64 | DataType::Null => {
            Float64Array::from_iter((0..array.len()).map(|i| (!array.is_null(i)).then_some(0.0)))
        }
        other => return datafusion::common::exec_err!("date_part('second', …) of a {other}"),
    };
    Ok(Arc::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_is_postgres_age() {
        let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros();
        let text = |a: &str, b: &str| crate::pgwire::types::interval_text(age_of(t(a), t(b)).unwrap());
        // Answers of PostgreSQL 15.
        assert_eq!(text("2026-11-29T10:00:00Z", "2025-09-15T12:30:00Z"), "1 year 2 mons 13 days 21:30:00");
        assert_eq!(text("2026-03-01T00:00:00Z", "2026-01-31T00:00:00Z"), "1 mon 1 day");
        assert_eq!(text("2026-01-31T00:00:00Z", "2026-03-01T00:00:00Z"), "-1 mons -1 days");
        assert_eq!(text("2026-11-29T10:00:00Z", "2026-11-29T10:00:00Z"), "00:00:00");
        assert_eq!(text("2024-03-01T00:00:00Z", "2024-02-28T23:00:00Z"), "1 day 01:00:00");
        assert_eq!(text("2026-11-25T08:30:00Z", "2026-11-29T10:00:00Z"), "-4 days -01:30:00");
        assert_eq!(text("2026-03-31T00:00:00Z", "2026-02-28T12:00:00Z"), "1 mon 2 days 12:00:00");
        assert_eq!(text("2026-02-28T12:00:00Z", "2026-03-31T00:00:00Z"), "-1 mons -2 days -12:00:00");
    }
}
