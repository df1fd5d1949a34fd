//! Parameters of the time-series endpoints, parsed and validated. Pure: no clock (the caller passes
//! "now"), no I/O. Every error is an [`QueryError::InvalidParameter`] with a message meant for the
//! API user.
//!
//! - time range `[from, to)`: RFC 3339 or unix time (seconds, or ms/µs/ns told apart by magnitude);
//!   `to` defaults to now, `from` to one hour before `to`;
//! - step: `<n>s|m|h|d` (or bare seconds); it must be a whole multiple of the table's granularity,
//!   and a range may hold at most [`MAX_STEPS`] steps;
//! - steps are aligned to the unix epoch (so `1d` steps are UTC days); a point's `ts` is the start
//!   of its step.

use std::fmt;

use edgelens_schemas::time::{date_of, format_rfc3339, parse_timestamp_str, MAX_TS, MIN_TS};

use crate::error::{QueryError, Result};
use crate::lake::PARTITION_COLUMN;

/// Most steps one request may span (e.g. 10 s over 11.5 days, or 1 m over 69 days).
pub const MAX_STEPS: i64 = 100_000;

const MICROS_PER_SEC: i64 = 1_000_000;

fn invalid(msg: impl Into<String>) -> QueryError {
    QueryError::InvalidParameter(msg.into())
}

/// A series step, in whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Step {
    seconds: i64,
}

impl Step {
    pub const TEN_SECONDS: Step = Step { seconds: 10 };
    pub const MINUTE: Step = Step { seconds: 60 };
    pub const HOUR: Step = Step { seconds: 3_600 };
    pub const DAY: Step = Step { seconds: 86_400 };
    pub const MONTH: Step = Step { seconds: 30 * 86_400 };
    pub const WEEK: Step = Step { seconds: 7 * 86_400 };

    /// The longest step: the span events may have (2000 to 2100). Anything longer is no use, and
    /// its microseconds would overflow.
    pub const MAX_SECONDS: i64 = (MAX_TS - MIN_TS) / 1_000_000_000;

    /// A step of `seconds`, if in `1..=MAX_SECONDS`.
    pub fn from_seconds(seconds: i64) -> Option<Step> {
        (1..=Self::MAX_SECONDS).contains(&seconds).then_some(Step { seconds })
    }

    /// Parse `10s`, `1m`, `5m`, `1h`, `1d`, or bare seconds (`60`).
    pub fn parse(s: &str) -> Result<Step> {
        let s = s.trim();
        let bad = || invalid(format!("invalid step {s:?}: expected a positive duration like 10s, 1m, 5m, 1h, 1d, of at most 36525d (100 years)"));
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(split);
        let n: i64 = digits.parse().map_err(|_| bad())?;
        let unit_seconds = match unit {
            "" | "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            _ => return Err(bad()),
        };
        n.checked_mul(unit_seconds).and_then(Step::from_seconds).ok_or_else(bad)
    }

    pub fn seconds(self) -> i64 {
        self.seconds
    }

    pub fn micros(self) -> i64 {
        self.seconds * MICROS_PER_SEC
    }

    /// The step must be a whole multiple of the table's granularity (a 1-minute table has no
    /// 30-second or 90-second steps).
    pub fn check_granularity(self, granularity: Step, table: &str) -> Result<()> {
        if self.seconds % granularity.seconds != 0 {
            return Err(invalid(format!(
                "step {self} does not fit {table}, whose rows are {granularity} apart: use a multiple of {granularity}"
            )));
        }
        Ok(())
    }
}

impl fmt::Display for Step {
    /// The largest unit that divides the step: `3600` → `1h`, `90` → `90s`, `120` → `2m`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.seconds;
        if s % 86_400 == 0 {
            write!(f, "{}d", s / 86_400)
        } else if s % 3_600 == 0 {
            write!(f, "{}h", s / 3_600)
        } else if s % 60 == 0 {
            write!(f, "{}m", s / 60)
        } else {
            write!(f, "{s}s")
        }
    }
}

/// A half-open time range `[from, to)` in unix microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub from_us: i64,
    pub to_us: i64,
}

impl TimeRange {
    /// Parse the `from`/`to` parameters; missing `to` is `now_us` rounded up to the whole second
    /// (the answers echo it, and no stored time is finer), missing `from` is `default_span`
    /// before `to`.
    pub fn parse(from: Option<&str>, to: Option<&str>, now_us: i64, default_span: Step) -> Result<TimeRange> {
        let to_us = match to {
            Some(s) => parse_time("to", s)?,
            None => now_us.div_euclid(MICROS_PER_SEC) * MICROS_PER_SEC + if now_us.rem_euclid(MICROS_PER_SEC) > 0 { MICROS_PER_SEC } else { 0 },
        };
        let from_us = match from {
            Some(s) => parse_time("from", s)?,
            None => to_us - default_span.micros(),
        };
        if from_us >= to_us {
            // Say when the ends were cut to the years events can have (the asked-for times then
            // differ from the ones shown).
            let cut = [from, to].into_iter().flatten().any(|s| parse_timestamp_str(s).is_none());
            return Err(invalid(format!(
                "from ({}) must be before to ({}){}",
                format_rfc3339(from_us * 1_000),
                format_rfc3339(to_us * 1_000),
                if cut { "; times before 2000 or after 2100 are cut to those years, where every event lies" } else { "" }
            )));
        }
        Ok(TimeRange { from_us, to_us })
    }

    /// The range that rows `granularity` apart (each holding the traffic from its `ts` on)
    /// cover when they are selected by `from <= ts < to`: both ends rounded up to the
    /// granularity. Answers report this range, not the one asked for.
    pub fn covered_by_rows(&self, granularity: Step) -> TimeRange {
        let g = granularity.micros();
        let up = |us: i64| us.div_euclid(g) * g + if us.rem_euclid(g) == 0 { 0 } else { g };
        TimeRange { from_us: up(self.from_us), to_us: up(self.to_us) }
    }

    /// Reject ranges that would produce more than [`MAX_STEPS`] steps.
    pub fn check_steps(&self, step: Step) -> Result<()> {
        let first = self.from_us.div_euclid(step.micros());
        let last = (self.to_us - 1).div_euclid(step.micros());
        let steps = last - first + 1;
        if steps > MAX_STEPS {
            return Err(invalid(format!(
                "range holds {steps} steps of {step}, at most {MAX_STEPS} are allowed: use a larger step or a shorter range"
            )));
        }
        Ok(())
    }

    pub fn from_rfc3339(&self) -> String {
        format_rfc3339(self.from_us * 1_000)
    }

    pub fn to_rfc3339(&self) -> String {
        format_rfc3339(self.to_us * 1_000)
    }

    /// SQL predicate selecting `column` in the range, plus the matching `date` partitions (so only
    /// those directories are listed and read).
    pub fn sql_predicate(&self, column: &str) -> String {
        let first_date = date_of(self.from_us * 1_000);
        let last_date = date_of((self.to_us - 1) * 1_000);
        format!(
            "{column} >= {from} AND {column} < {to} AND {PARTITION_COLUMN} >= '{first_date}' AND {PARTITION_COLUMN} <= '{last_date}'",
            from = timestamp_literal(self.from_us),
            to = timestamp_literal(self.to_us),
        )
    }
}

/// A SQL literal of the lake's timestamp type, `Timestamp(Microsecond, "UTC")`.
pub fn timestamp_literal(us: i64) -> String {
    format!("arrow_cast({us}, 'Timestamp(Microsecond, Some(\"UTC\"))')")
}

/// SQL expression: the start of `column`'s step, as unix microseconds (`BIGINT`).
pub fn step_start_sql(column: &str, step: Step) -> String {
    let us = step.micros();
    format!("((CAST({column} AS BIGINT) / {us}) * {us})")
}

/// Unix microseconds as RFC 3339 UTC (`...Z`).
pub fn rfc3339_us(us: i64) -> String {
    format_rfc3339(us.saturating_mul(1_000))
}

fn parse_time(name: &str, s: &str) -> Result<i64> {
    if let Some(ns) = parse_timestamp_str(s) {
        // Rounded up to the microsecond (the finest stored time): a time inside a microsecond is
        // after its start, as one inside a minute is after the minute's row.
        return Ok(ns.div_euclid(1_000) + i64::from(ns.rem_euclid(1_000) > 0));
    }
    // A time before 2000 or after 2100 (`from=0` for "from the start"): no event is outside those
    // years, so the range is cut to them.
    let (min_us, max_us) = (MIN_TS / 1_000, MAX_TS / 1_000);
    let t = s.trim();
    let outside = match t.parse::<i64>() {
        // Seconds before 2000, or after 2100 while still read as seconds (up to 11 digits).
        Ok(secs) if (0..=min_us / 1_000_000).contains(&secs) => Some(min_us),
        Ok(secs) if (max_us / 1_000_000..100_000_000_000).contains(&secs) => Some(max_us),
        Ok(_) => None,
        Err(_) => chrono::DateTime::parse_from_rfc3339(t).ok().map(|dt| dt.timestamp_micros().clamp(min_us, max_us)),
    };
    outside.ok_or_else(|| {
        // A `+` in a query string is a space: `+05:30` arrives as ` 05:30`.
        let plus = if t.contains(' ') { " (a '+' in a URL's query string reads as a space: write it as %2B)" } else { "" };
        invalid(format!(
            "invalid {name} {s:?}: expected RFC 3339 (2026-11-01T00:00:00Z) or unix seconds (milli-, micro- and nanoseconds are told by their size){plus}"
        ))
    })
}

/// What `/v1/traffic-share` groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareBy {
    Site,
    Country,
    Asn,
    Colo,
    /// Many-to-many through `site_entities`.
    Entity,
    /// Many-to-many through `site_tags`.
    Tag,
}

impl ShareBy {
    pub const ALL: [ShareBy; 6] =
        [ShareBy::Site, ShareBy::Country, ShareBy::Asn, ShareBy::Colo, ShareBy::Entity, ShareBy::Tag];

    pub fn parse(s: &str) -> Result<ShareBy> {
        ShareBy::ALL
            .into_iter()
            .find(|b| b.as_str() == s)
            .ok_or_else(|| invalid(format!("invalid by {s:?}: expected one of site, country, asn, colo, entity, tag")))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ShareBy::Site => "site",
            ShareBy::Country => "country",
            ShareBy::Asn => "asn",
            ShareBy::Colo => "colo",
            ShareBy::Entity => "entity",
            ShareBy::Tag => "tag",
        }
    }
}

/// `json` (default) or `csv`, for the time-series endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SeriesFormat {
    #[default]
    Json,
    Csv,
}

impl SeriesFormat {
    pub fn parse(s: Option<&str>) -> Result<SeriesFormat> {
        match s {
            None | Some("json") => Ok(SeriesFormat::Json),
            Some("csv") => Ok(SeriesFormat::Csv),
            Some(other) => Err(invalid(format!("invalid format {other:?}: expected json or csv"))),
        }
    }
}

/// `top=N`: 1 to 1000, default 10.
pub fn parse_top(s: Option<&str>) -> Result<usize> {
    match s {
        None => Ok(10),
        Some(s) => match s.trim().parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => Ok(n),
            _ => Err(invalid(format!("invalid top {s:?}: expected an integer from 1 to 1000"))),
        },
    }
}

/// `min_confidence`: a number in [0, 1], default 0.
pub fn parse_min_confidence(s: Option<&str>) -> Result<f64> {
    match s {
        None => Ok(0.0),
        Some(s) => match s.trim().parse::<f64>() {
            Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
            _ => Err(invalid(format!("invalid min_confidence {s:?}: expected a number from 0 to 1"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps() {
        assert_eq!(Step::parse("10s").unwrap().seconds(), 10);
        assert_eq!(Step::parse("5m").unwrap().seconds(), 300);
        assert_eq!(Step::parse("1h").unwrap().to_string(), "1h");
        assert_eq!(Step::parse("1d").unwrap().seconds(), 86_400);
        assert_eq!(Step::parse("60").unwrap().to_string(), "1m");
        assert_eq!(Step::parse("90s").unwrap().to_string(), "90s");
        for bad in ["", "0s", "-1m", "1w", "m", "1.5h", "99999999999999999999d", "99999999999999d", "9223372036854775800", "36526d"] {
            assert!(Step::parse(bad).is_err(), "{bad}");
        }
        // The longest step still has its microseconds (a longer one overflowed them: a panic).
        assert_eq!(Step::parse("36525d").unwrap().micros(), 36_525 * 86_400 * 1_000_000);
        assert!(Step::parse("30s").unwrap().check_granularity(Step::MINUTE, "traffic_1m").is_err());
        assert!(Step::parse("90s").unwrap().check_granularity(Step::MINUTE, "traffic_1m").is_err());
        assert!(Step::parse("2m").unwrap().check_granularity(Step::MINUTE, "traffic_1m").is_ok());
    }

    #[test]
    fn ranges() {
        let now = 1_793_534_400 * MICROS_PER_SEC;
        let r = TimeRange::parse(None, None, now, Step::parse("1h").unwrap()).unwrap();
        assert_eq!(r.to_us - r.from_us, 3_600 * MICROS_PER_SEC);
        assert_eq!(r.to_us, now);
        // A default end is now rounded up to the whole second (it was echoed to the microsecond).
        let r = TimeRange::parse(None, None, now + 1, Step::WEEK).unwrap();
        assert_eq!((r.from_us, r.to_us), (now + MICROS_PER_SEC - 7 * 86_400 * MICROS_PER_SEC, now + MICROS_PER_SEC));
        assert_eq!(r.to_rfc3339(), "2026-11-01T12:00:01Z");
        let r = TimeRange::parse(Some("2026-11-01T00:00:00Z"), Some("1793494800"), now, Step::MINUTE).unwrap();
        assert_eq!(r.from_rfc3339(), "2026-11-01T00:00:00Z");
        assert_eq!(r.to_rfc3339(), "2026-11-01T01:00:00Z");
        // Regression: a time finer than the microsecond was cut, so `from` a nanosecond after a
        // minute's start still counted that minute.
        let r = TimeRange::parse(Some("2026-11-01T00:00:00.000000001Z"), Some("2026-11-01T00:10:00Z"), now, Step::MINUTE).unwrap();
        assert_eq!(r.covered_by_rows(Step::MINUTE).from_rfc3339(), "2026-11-01T00:01:00Z");
        assert!(
            TimeRange::parse(Some("2026-11-02T00:00:00Z"), Some("2026-11-01T00:00:00Z"), now, Step::MINUTE).is_err()
        );
        assert!(TimeRange::parse(Some("yesterday"), None, now, Step::MINUTE).is_err());
        // An offset's `+` not URL-encoded arrives as a space: the error says so.
        let err = TimeRange::parse(Some("2026-11-01T05:30:00 05:30"), None, now, Step::MINUTE).unwrap_err().to_string();
        assert!(err.contains("%2B"), "{err}");
        // Before 2000 (from=0: "from the start") or after 2100: cut to those years, where every
        // event is; the message of a time that is none names the units.
        let r = TimeRange::parse(Some("0"), Some("2026-11-01T00:00:00Z"), now, Step::MINUTE).unwrap();
        assert_eq!(r.from_rfc3339(), "2000-01-01T00:00:00Z");
        // Regression: a range wholly before 2000 was refused as from = to = 2000-01-01, without
        // saying why the times shown were not the ones asked for.
        let e = TimeRange::parse(Some("0"), Some("1"), 0, Step::DAY).unwrap_err().to_string();
        assert!(e.contains("must be before") && e.contains("cut to those years"), "{e}");
        let r = TimeRange::parse(Some("1970-01-02T00:00:00Z"), Some("2200-01-01T00:00:00Z"), now, Step::MINUTE).unwrap();
        assert_eq!((r.from_rfc3339(), r.to_rfc3339()), ("2000-01-01T00:00:00Z".to_owned(), "2100-01-01T00:00:00Z".to_owned()));
        let r = TimeRange::parse(Some("2026-11-01T00:00:00Z"), Some("9999999999"), now, Step::MINUTE).unwrap();
        assert_eq!(r.to_rfc3339(), "2100-01-01T00:00:00Z");
        let e = TimeRange::parse(Some("-5"), None, now, Step::MINUTE).unwrap_err().to_string();
        assert!(e.contains("unix seconds (milli-, micro- and nanoseconds are told by their size)"), "{e}");
        // Minute rows selected by from <= ts < to cover whole minutes: both ends rounded up.
        let covered = |from: &str, to: &str, g: Step| {
            let r = TimeRange::parse(Some(from), Some(to), now, Step::MINUTE).unwrap().covered_by_rows(g);
            (r.from_rfc3339(), r.to_rfc3339())
        };
        let s = |t: &str| t.to_owned();
        assert_eq!(covered("2026-11-01T00:10:30Z", "2026-11-01T00:12:30Z", Step::MINUTE), (s("2026-11-01T00:11:00Z"), s("2026-11-01T00:13:00Z")));
        assert_eq!(covered("2026-11-01T00:11:00Z", "2026-11-01T00:13:00Z", Step::MINUTE), (s("2026-11-01T00:11:00Z"), s("2026-11-01T00:13:00Z")));
        assert_eq!(covered("2026-11-01T00:12:00Z", "2026-11-01T00:12:01Z", Step::MINUTE), (s("2026-11-01T00:12:00Z"), s("2026-11-01T00:13:00Z")));
        assert_eq!(covered("2026-11-01T00:11:59Z", "2026-11-01T00:12:00Z", Step::MINUTE), (s("2026-11-01T00:12:00Z"), s("2026-11-01T00:12:00Z")), "no row starts in it");
        assert_eq!(covered("2026-11-01T00:13:05Z", "2026-11-01T00:13:35Z", Step::TEN_SECONDS), (s("2026-11-01T00:13:10Z"), s("2026-11-01T00:13:40Z")));
        let day =
            TimeRange::parse(Some("2026-11-01T00:00:00Z"), Some("2026-11-02T00:00:00Z"), now, Step::MINUTE).unwrap();
        assert!(day.check_steps(Step::TEN_SECONDS).is_ok());
        assert!(day.sql_predicate("ts").contains("date <= '2026-11-01'"));
    }
}
