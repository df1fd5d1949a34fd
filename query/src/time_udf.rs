//! SQL functions on the lake that read times as PostgreSQL does, in place of DataFusion's:
//! - `from_unixtime(seconds[, zone])`: without a zone the instant is UTC (`timestamptz`, `…Z`)
//!   rather than a zoneless time, as `now()` and `to_timestamp(..)` are in the lake's UTC session.
//!   A zoneless time would be read by `AT TIME ZONE` as that zone's wall clock, moving the instant.
//! - `to_timestamp(..)` and its `_seconds`, `_millis`, `_micros`, `_nanos` forms: DataFusion's,
//!   whose answer is made the UTC time its plan says it is. Of a column of text or dates it was
//!   a zoneless time, which failed the statement ("column types must match schema types").
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
