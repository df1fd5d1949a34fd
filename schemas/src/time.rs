//! Timestamps: edgelens keeps event time as unix nanoseconds (`i64`). This module owns the accepted
//! encodings of `EdgeStartTimestamp` and of API time parameters: unix nanoseconds, microseconds,
//! milliseconds or seconds as integers (told apart by magnitude), fractional seconds, and RFC 3339.

use chrono::{DateTime, TimeZone, Utc};

/// Unix time in nanoseconds.
pub type Nanos = i64;

pub const NANOS_PER_SEC: i64 = 1_000_000_000;

/// Earliest and latest accepted event time (2000-01-01 .. 2100-01-01): anything outside is a broken
/// clock or a misread unit, never a real edge request.
pub const MIN_TS: Nanos = 946_684_800 * NANOS_PER_SEC;
pub const MAX_TS: Nanos = 4_102_444_800 * NANOS_PER_SEC;

/// Integer timestamp to nanoseconds, unit chosen by magnitude: ≥1e17 ns, ≥1e14 µs, ≥1e11 ms, else s.
pub fn from_unix_int(v: i64) -> Option<Nanos> {
    let a = v.unsigned_abs();
    let ns = if a >= 100_000_000_000_000_000 {
        Some(v)
    } else if a >= 100_000_000_000_000 {
        v.checked_mul(1_000)
    } else if a >= 100_000_000_000 {
        v.checked_mul(1_000_000)
    } else {
        v.checked_mul(NANOS_PER_SEC)
    }?;
    in_range(ns)
}

/// Fractional unix seconds to nanoseconds.
pub fn from_unix_float(v: f64) -> Option<Nanos> {
    if !v.is_finite() {
        return None;
    }
    // Large values are integer timestamps in other units that happen to be written as floats.
    if v.abs() >= 1e11 {
        return from_unix_int(v as i64);
    }
    // Whole seconds and fraction apart: `v * 1e9` would exceed f64's 53-bit mantissa and turn
    // `.25` into `.249999872`. At today's magnitudes an f64 resolves ~0.25 µs, so the fraction is
    // rounded to whole microseconds, but never up into the next second (`59.9999996` stays in
    // second 59, as the same time written as text does: it is truncated).
    let secs = v.floor();
    let micros = (((v - secs) * 1e6).round() as i64).min(999_999);
    in_range((secs as i64).checked_mul(NANOS_PER_SEC)?.checked_add(micros * 1_000)?)
}

/// `SECS.FRACTION` written in decimal, converted exactly (up to nanoseconds; further digits are
/// truncated). `None` when `s` is not of that form.
fn parse_decimal_secs(s: &str) -> Option<Nanos> {
    let (int, frac) = s.split_once('.')?;
    let neg = int.starts_with('-');
    let digits = int.strip_prefix('-').unwrap_or(int);
    if digits.is_empty() || frac.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if neg || digits.len() > 10 {
        // Not seconds since 1970 in the accepted range; let the float path decide.
        return None;
    }
    let secs: i64 = digits.parse().ok()?;
    let mut ns: i64 = 0;
    for i in 0..9 {
        ns = ns * 10 + frac.as_bytes().get(i).map_or(0, |b| i64::from(b - b'0'));
    }
    in_range(secs.checked_mul(NANOS_PER_SEC)?.checked_add(ns)?)
}

/// RFC 3339 (`2026-11-01T12:00:00Z`, with optional fraction and offset), or a plain integer/float
/// unix time written as a string.
pub fn parse_timestamp_str(s: &str) -> Option<Nanos> {
    let s = s.trim();
    if let Ok(v) = s.parse::<i64>() {
        return from_unix_int(v);
    }
    if let Some(ts) = parse_decimal_secs(s) {
        return Some(ts);
    }
    if let Ok(v) = s.parse::<f64>() {
        return from_unix_float(v);
    }
    let dt = DateTime::parse_from_rfc3339(s).ok()?;
    in_range(dt.timestamp_nanos_opt()?)
}

fn in_range(ns: Nanos) -> Option<Nanos> {
    (MIN_TS..MAX_TS).contains(&ns).then_some(ns)
}

/// Floor `ts` to a multiple of `width` (both in nanoseconds).
#[inline]
pub fn floor_to(ts: Nanos, width: Nanos) -> Nanos {
    ts.div_euclid(width) * width
}

/// RFC 3339 with `Z`, second precision unless there is a fraction.
pub fn format_rfc3339(ts: Nanos) -> String {
    let dt = Utc.timestamp_nanos(ts);
    if ts.rem_euclid(NANOS_PER_SEC) == 0 {
        dt.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        dt.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    }
}

/// A span of time shown in seconds, in messages: whole seconds as `600 s`, others with up to three
/// decimals rounded up (`600.001 s` for 600 s and a nanosecond), so a span past a limit never reads
/// as the limit itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Secs(pub Nanos);

impl std::fmt::Display for Secs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let millis = self.0.div_euclid(1_000_000) + i64::from(self.0.rem_euclid(1_000_000) != 0);
        let (secs, frac) = (millis.div_euclid(1000), millis.rem_euclid(1000));
        if frac == 0 {
            write!(f, "{secs} s")
        } else {
            let digits = format!("{frac:03}");
            write!(f, "{secs}.{} s", digits.trim_end_matches('0'))
        }
    }
}

/// `YYYY-MM-DD` (UTC) of a timestamp: the hive partition value of the lake.
pub fn date_of(ts: Nanos) -> String {
    Utc.timestamp_nanos(ts).format("%Y-%m-%d").to_string()
}

/// A duration like `500ms`, `10s`, `5m`, `1h`, `7d` (or plain seconds) in nanoseconds.
pub fn parse_duration(s: &str) -> Option<Nanos> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: i64 = num.parse().ok()?;
    let mult = match unit {
        "" | "s" => NANOS_PER_SEC,
        "ms" => 1_000_000,
        "m" | "min" => 60 * NANOS_PER_SEC,
        "h" => 3_600 * NANOS_PER_SEC,
        "d" => 86_400 * NANOS_PER_SEC,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_by_magnitude() {
        let s = 1_793_491_200_i64; // 2026-11-01T00:00:00Z
        let ns = s * NANOS_PER_SEC;
        assert_eq!(from_unix_int(s), Some(ns));
        assert_eq!(from_unix_int(s * 1_000), Some(ns));
        assert_eq!(from_unix_int(s * 1_000_000), Some(ns));
        assert_eq!(from_unix_int(ns), Some(ns));
        assert_eq!(from_unix_float(s as f64 + 0.5), Some(ns + 500_000_000));
        assert_eq!(parse_timestamp_str("2026-11-01T00:00:00Z"), Some(ns));
        assert_eq!(parse_timestamp_str("2026-11-01T01:00:00.25+01:00"), Some(ns + 250_000_000));
        assert_eq!(parse_timestamp_str("1793491200"), Some(ns));
    }

    #[test]
    fn a_span_past_a_limit_never_reads_as_the_limit() {
        assert_eq!(Secs(600 * NANOS_PER_SEC).to_string(), "600 s");
        // Regression: 600.5 s behind a lateness of 600 s read "600 s behind".
        assert_eq!(Secs(600 * NANOS_PER_SEC + NANOS_PER_SEC / 2).to_string(), "600.5 s");
        assert_eq!(Secs(600 * NANOS_PER_SEC + 1).to_string(), "600.001 s");
        assert_eq!(Secs(1_250_000_000).to_string(), "1.25 s");
        assert_eq!(Secs(0).to_string(), "0 s");
    }

    #[test]
    fn a_fraction_never_rounds_into_the_next_second() {
        // Regression: as a JSON number this landed in the next second (and the next 10-second
        // window and minute), as text in its own.
        let as_number = from_unix_float(1_793_491_259.999_999_6).unwrap();
        let as_text = parse_timestamp_str("1793491259.9999996").unwrap();
        assert_eq!(floor_to(as_number, NANOS_PER_SEC), floor_to(as_text, NANOS_PER_SEC));
        assert_eq!(floor_to(as_number, NANOS_PER_SEC), 1_793_491_259 * NANOS_PER_SEC);
    }

    #[test]
    fn fractional_seconds_keep_their_fraction() {
        let ns = 1_793_491_200_i64 * NANOS_PER_SEC;
        // A naive `v * 1e9` gives ...249_999_872 here.
        assert_eq!(from_unix_float(1_793_491_205.25), Some(ns + 5_250_000_000));
        assert_eq!(from_unix_float(1_793_491_200.123_456), Some(ns + 123_456_000));
        assert_eq!(parse_timestamp_str("1793491200.123456789"), Some(ns + 123_456_789));
        assert_eq!(parse_timestamp_str("1793491200.5"), Some(ns + 500_000_000));
        assert_eq!(parse_timestamp_str("1793491200.1234567891"), Some(ns + 123_456_789));
    }

    #[test]
    fn out_of_range_rejected() {
        assert_eq!(from_unix_int(0), None);
        assert_eq!(from_unix_int(-5), None);
        assert_eq!(parse_timestamp_str("1970-01-01T00:00:00Z"), None);
        assert_eq!(parse_timestamp_str("yesterday"), None);
        assert_eq!(from_unix_float(f64::NAN), None);
    }

    #[test]
    fn ten_digit_decimal_seconds_beyond_i64_nanoseconds_are_rejected_not_overflowed() {
        // Found by the parse_line fuzz target: 9855000001 s × 1e9 overflows i64.
        assert_eq!(parse_timestamp_str("9855000001.1"), None);
        assert_eq!(parse_timestamp_str("9999999999.999999999"), None);
        assert!(crate::parse_line(br#"{"ClientIP":"1.2.3.4","EdgeStartTimestamp":"9855000001.1","EdgeResponseStatus":200,"ZoneName":"a.example"}"#).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m"), Some(600 * NANOS_PER_SEC));
        assert_eq!(parse_duration("1h"), Some(3600 * NANOS_PER_SEC));
        assert_eq!(parse_duration("250ms"), Some(250_000_000));
        assert_eq!(parse_duration("30"), Some(30 * NANOS_PER_SEC));
        assert_eq!(parse_duration("1y"), None);
        assert_eq!(parse_duration("m"), None);
    }

    #[test]
    fn floor_and_format() {
        let ns = 1_793_491_207 * NANOS_PER_SEC + 3;
        assert_eq!(floor_to(ns, 10 * NANOS_PER_SEC), 1_793_491_200 * NANOS_PER_SEC);
        assert_eq!(format_rfc3339(1_793_491_200 * NANOS_PER_SEC), "2026-11-01T00:00:00Z");
        assert_eq!(date_of(ns), "2026-11-01");
    }
}
