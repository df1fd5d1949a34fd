//! Times read from text and written as text the way PostgreSQL does, on every session that plans
//! user SQL (the lake's and the Postgres catalog's), by the analyzer rule [`PostgresTimeText`],
//! which runs after DataFusion's type coercion and so sees its casts as well as the statement's:
//!
//! - A text cast to a time (`ts >= '2026-11-28 10:15'`, `'2026-11-28 9:05'::timestamptz`,
//!   `timestamp '2026-11-28T10:15Z'`) is first completed by `edgelens_time_in`: a time of day
//!   without seconds gets `:00`, one-digit months, days and hours a leading zero. PostgreSQL reads
//!   these; Arrow's cast refused them ("error parsing time").
//! - A time cast to text (`ts::text`, `'at ' || ts`, `current_time::text`, an interval's) is
//!   written by `edgelens_time_text` as PostgreSQL writes it, the same text the Postgres wire sends
//!   for the value itself: `2026-11-28 10:15:00+00` for a UTC time, the wall clock without a zone
//!   for a time of another zone (`ts AT TIME ZONE 'Europe/Paris'`, a `timestamp` in PostgreSQL)
//!   or without one, microseconds at most and no trailing zeros, `17:28:27.351449` for a time of
//!   day, `1 day 02:00:00` for an interval, `4 days 01:30:00` for the difference of two times.
//!   Arrow wrote `2026-11-28T10:15:00Z`, `17:28:27.351449835`, `0 years 0 mons 1 days 2 hours …`
//!   and `0 days 97 hours 30 mins …`.
//!
//! Both functions are named in a plan as their argument is, as the cast they sit in is, so no
//! column changes its name. Pure: no I/O.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, IntervalMonthDayNanoType, IntervalUnit, Time64MicrosecondType, TimeUnit, TimestampMicrosecondType};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, DataFusionError, Result, exec_err};
use datafusion::logical_expr::expr::{Cast, ScalarFunction, TryCast};
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{ColumnarValue, Expr, ExprSchemable, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use datafusion::optimizer::AnalyzerRule;

use crate::format::is_utc_zone;
use crate::pgwire::types::{duration_as_interval, interval_text, timestamp_text, wall_clock};

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
            plan.map_expressions(|e| e.transform_up(|e| Ok(rewrite(e, &schema))))
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
    matches!(t, DataType::Timestamp(..) | DataType::Time32(_) | DataType::Time64(_) | DataType::Interval(IntervalUnit::MonthDayNano) | DataType::Duration(_))
}

/// `e` with a cast between text and a time going through this module's functions.
fn rewrite(e: Expr, schema: &DFSchema) -> Transformed<Expr> {
    let (inner, field, try_cast) = match &e {
        Expr::Cast(Cast { expr, field }) => (expr, field, false),
        Expr::TryCast(TryCast { expr, field }) => (expr, field, true),
        _ => return Transformed::no(e),
    };
    let to = field.data_type();
    let Ok(from) = inner.get_type(schema) else { return Transformed::no(e) };
    let cast_to = |e: Expr, _: &DataType| match try_cast {
        false => Expr::Cast(Cast::new_from_field(Box::new(e), Arc::clone(field))),
        true => Expr::TryCast(TryCast::new_from_field(Box::new(e), Arc::clone(field))),
    };
    let already = |f: Kind| matches!(inner.as_ref(), Expr::ScalarFunction(s) if s.name() == f.name());
    if is_text(&from) && is_time(to) && !already(Kind::In) {
        return Transformed::yes(cast_to(call(Kind::In, inner.as_ref().clone()), to));
    }
    if written(&from) && is_text(to) {
        let text = call(Kind::Text, inner.as_ref().clone());
        return Transformed::yes(if *to == DataType::Utf8 { text } else { cast_to(text, to) });
    }
    Transformed::no(e)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// `edgelens_time_in`: a time's text completed for Arrow's cast.
    In,
    /// `edgelens_time_text`: a time as PostgreSQL's text.
    Text,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::In => "edgelens_time_in",
            Kind::Text => "edgelens_time_text",
        }
    }
}

/// The functions the rule calls, to register on every session it is added to (a plan may be
/// described and planned again from its text).
pub fn udfs() -> [ScalarUDF; 2] {
    [Kind::In, Kind::Text].map(udf)
}

fn udf(kind: Kind) -> ScalarUDF {
    ScalarUDF::new_from_impl(Udf { kind, signature: Signature::any(1, Volatility::Immutable) })
}

fn call(kind: Kind, e: Expr) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(Arc::new(udf(kind)), vec![e]))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Udf {
    kind: Kind,
    signature: Signature,
}

impl ScalarUDFImpl for Udf {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        Ok(args.first().map(|a| a.schema_name().to_string()).unwrap_or_default())
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [v] = args.args.as_slice() else { return exec_err!("{} takes one argument", self.name()) };
        let scalar = matches!(v, ColumnarValue::Scalar(_));
        let array = v.to_array(1)?;
        let out: ArrayRef = match self.kind {
            Kind::In => {
                let text = cast(&array, &DataType::Utf8)?;
                Arc::new(text.as_string::<i32>().iter().map(|s| s.map(|s| complete_time_text(s).unwrap_or_else(|| s.to_owned()))).collect::<StringArray>())
            }
            Kind::Text => Arc::new(time_text(&array)?),
        };
        Ok(if scalar { ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&out, 0)?) } else { ColumnarValue::Array(out) })
    }
}

/// PostgreSQL's text of each time of `array` (a timestamp, a time of day, an interval).
fn time_text(array: &ArrayRef) -> Result<StringArray> {
    let external = |e: crate::error::QueryError| DataFusionError::External(Box::new(e));
    match array.data_type() {
        DataType::Timestamp(_, zone) => {
            let utc = zone.as_deref().is_some_and(is_utc_zone);
            // Another zone's times are its wall clock (PostgreSQL's `timestamp`).
            let local = wall_clock(array).map_err(external)?;
            let micros = cast(local.as_ref().unwrap_or(array), &DataType::Timestamp(TimeUnit::Microsecond, None))?;
            Ok(micros.as_primitive::<TimestampMicrosecondType>().iter().map(|v| v.map(|v| timestamp_text(v, utc))).collect())
        }
        DataType::Time32(_) | DataType::Time64(_) => {
            let micros = cast(array, &DataType::Time64(TimeUnit::Microsecond))?;
            Ok(micros.as_primitive::<Time64MicrosecondType>().iter().map(|v| v.map(time_of_day_text)).collect())
        }
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            Ok(array.as_primitive::<IntervalMonthDayNanoType>().iter().map(|v| v.map(interval_text)).collect())
        }
        DataType::Duration(_) => match duration_as_interval(array).map_err(external)? {
            Some(interval) => time_text(&interval),
            None => exec_err!("edgelens_time_text of a {}", array.data_type()),
        },
        other => exec_err!("edgelens_time_text of a {other}"),
    }
}

/// `HH:MM:SS[.ffffff]` of microseconds since midnight, as PostgreSQL writes a `time`.
pub fn time_of_day_text(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let mut s = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if frac != 0 {
        s.push('.');
        s.push_str(format!("{frac:06}").trim_end_matches('0'));
    }
    s
}

/// A date and time of day PostgreSQL reads (`2026-11-28 10:15`, `2026-11-28T9:05+02`,
/// `2026-1-5 10:15:30.5 UTC`) written as Arrow's cast reads it (`2026-11-28 10:15:00`,
/// `2026-11-28 09:05:00+02`, `2026-01-05 10:15:30.5 UTC`); `None` when `text` needs nothing or is
/// not such a time (the cast then says what is wrong with it).
pub fn complete_time_text(text: &str) -> Option<String> {
    static FORM: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})(?:(?:T|\s+)(\d{1,2}):(\d{2})(:\d{2}(?:\.\d+)?)?)?(.*?)\s*$").expect("a valid pattern")
    });
    let c = FORM.captures(text)?;
    let part = |i: usize| c.get(i).map_or("", |m| m.as_str());
    let rest = part(7);
    let mut out = format!("{}-{:0>2}-{:0>2}", part(1), part(2), part(3));
    if c.get(4).is_some() {
        let seconds = c.get(6).map_or(":00", |m| m.as_str());
        out.push_str(&format!(" {:0>2}:{}{seconds}", part(4), part(5)));
    } else if !rest.is_empty() {
        // A date followed by something else: not a form this completes.
        return None;
    }
    out.push_str(rest);
    (out != text).then_some(out)
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
    fn times_of_day_are_written_as_postgres_writes_them() {
        assert_eq!(time_of_day_text(0), "00:00:00");
        assert_eq!(time_of_day_text(62_727_351_449), "17:25:27.351449");
        assert_eq!(time_of_day_text(3_600_500_000), "01:00:00.5");
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
}
