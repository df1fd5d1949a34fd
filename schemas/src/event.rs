//! The edge event: Cloudflare Logpush `http_requests` NDJSON, field names unchanged.
//!
//! [`parse_line`] turns one NDJSON line into a validated [`EdgeEvent`] or a typed [`InvalidReason`];
//! it never panics on any input. Strings are borrowed from the line where JSON escapes allow it, so
//! the hot path allocates nothing per event. Unknown fields are skipped. A line of the usual shape
//! (one flat object, no escapes) is read by [`crate::flat_scan`]; every other line by the general
//! deserializer ([`deserialize`]), with the same result wherever both read it.
//!
//! Required: `EdgeStartTimestamp` (unix ns/µs/ms/s integer, fractional seconds, or RFC 3339),
//! `ClientIP`, `EdgeResponseStatus` (100..=599) and a site (`ZoneName`, else `ClientRequestHost`).
//! A field present with the wrong JSON type is an error even when the field is optional: a producer
//! that sends `"ClientASN": "x"` is broken and its events are dead-lettered rather than half-read.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::time::{from_unix_float, from_unix_int, parse_timestamp_str, Nanos, Secs};

/// Longest raw excerpt kept with a dead letter.
pub const MAX_EXCERPT_BYTES: usize = 1024;

/// `EdgeStartTimestamp` as it appeared on the wire, converted to nanoseconds (or not, if invalid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireTimestamp(pub Option<Nanos>);

impl<'de> Deserialize<'de> for WireTimestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = WireTimestamp;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a unix timestamp (integer or float) or an RFC 3339 string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<WireTimestamp, E> {
                Ok(WireTimestamp(from_unix_int(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<WireTimestamp, E> {
                Ok(WireTimestamp(i64::try_from(v).ok().and_then(from_unix_int)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<WireTimestamp, E> {
                Ok(WireTimestamp(from_unix_float(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<WireTimestamp, E> {
                Ok(WireTimestamp(parse_timestamp_str(v)))
            }
        }
        d.deserialize_any(V)
    }
}

/// `Option<Cow<str>>` that borrows from the input when the JSON string has no escapes (serde's own
/// `Cow` support only borrows for a bare `Cow`, not inside `Option`).
fn opt_cow<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string or null")
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(v)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_owned())))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v)))
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_str(self)
        }
    }
    d.deserialize_option(V)
}

/// One Logpush line as deserialized, before validation. All fields optional.
#[derive(Debug, Default, PartialEq, Deserialize)]
pub struct RawEvent<'a> {
    #[serde(rename = "EdgeStartTimestamp")]
    pub edge_start_timestamp: Option<WireTimestamp>,
    #[serde(rename = "ClientIP", borrow, default, deserialize_with = "opt_cow")]
    pub client_ip: Option<Cow<'a, str>>,
    #[serde(rename = "EdgeResponseStatus")]
    pub edge_response_status: Option<u16>,
    #[serde(rename = "ZoneName", borrow, default, deserialize_with = "opt_cow")]
    pub zone_name: Option<Cow<'a, str>>,
    #[serde(rename = "ClientRequestHost", borrow, default, deserialize_with = "opt_cow")]
    pub client_request_host: Option<Cow<'a, str>>,
    #[serde(rename = "RayID", borrow, default, deserialize_with = "opt_cow")]
    pub ray_id: Option<Cow<'a, str>>,
    #[serde(rename = "ClientASN")]
    pub client_asn: Option<u32>,
    #[serde(rename = "ClientCountry", borrow, default, deserialize_with = "opt_cow")]
    pub client_country: Option<Cow<'a, str>>,
    #[serde(rename = "EdgeColoCode", borrow, default, deserialize_with = "opt_cow")]
    pub edge_colo_code: Option<Cow<'a, str>>,
    #[serde(rename = "ClientRequestMethod", borrow, default, deserialize_with = "opt_cow")]
    pub client_request_method: Option<Cow<'a, str>>,
    #[serde(rename = "ClientRequestURI", borrow, default, deserialize_with = "opt_cow")]
    pub client_request_uri: Option<Cow<'a, str>>,
    #[serde(rename = "ClientRequestPath", borrow, default, deserialize_with = "opt_cow")]
    pub client_request_path: Option<Cow<'a, str>>,
    #[serde(rename = "ClientRequestProtocol", borrow, default, deserialize_with = "opt_cow")]
    pub client_request_protocol: Option<Cow<'a, str>>,
    #[serde(rename = "ClientRequestUserAgent", borrow, default, deserialize_with = "opt_cow")]
    pub client_request_user_agent: Option<Cow<'a, str>>,
    #[serde(rename = "ClientSSLProtocol", borrow, default, deserialize_with = "opt_cow")]
    pub client_ssl_protocol: Option<Cow<'a, str>>,
    #[serde(rename = "JA3Hash", borrow, default, deserialize_with = "opt_cow")]
    pub ja3_hash: Option<Cow<'a, str>>,
    #[serde(rename = "JA4", borrow, default, deserialize_with = "opt_cow")]
    pub ja4: Option<Cow<'a, str>>,
    #[serde(rename = "EdgeResponseBytes")]
    pub edge_response_bytes: Option<u64>,
    #[serde(rename = "OriginResponseStatus")]
    pub origin_response_status: Option<u16>,
    #[serde(rename = "CacheCacheStatus", borrow, default, deserialize_with = "opt_cow")]
    pub cache_cache_status: Option<Cow<'a, str>>,
    #[serde(rename = "EdgeTimeToFirstByteMs")]
    pub edge_time_to_first_byte_ms: Option<u32>,
    #[serde(rename = "SecurityAction", borrow, default, deserialize_with = "opt_cow")]
    pub security_action: Option<Cow<'a, str>>,
    #[serde(rename = "BotScore")]
    pub bot_score: Option<u8>,
    #[serde(rename = "WAFAttackScore")]
    pub waf_attack_score: Option<u8>,
}

/// A validated edge event. Optional Logpush fields keep their wire value (`None` / empty when absent).
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeEvent<'a> {
    /// `EdgeStartTimestamp`, unix nanoseconds.
    pub ts: Nanos,
    /// The site (zone) the request belongs to, lower case.
    pub site: Cow<'a, str>,
    /// The site is the request's host (`ClientRequestHost`: the line has no `ZoneName`), which
    /// the pipeline maps to its registered site when the site registry knows one.
    pub site_from_host: bool,
    pub client_ip: IpAddr,
    pub status: u16,
    pub ray_id: Option<Cow<'a, str>>,
    /// 0 when unknown.
    pub asn: u32,
    /// ISO 3166 alpha-2, lower case as Logpush sends it; empty when unknown.
    pub country: Cow<'a, str>,
    /// IATA colo code, upper case; empty when unknown.
    pub colo: Cow<'a, str>,
    /// `CacheCacheStatus` (hit, miss, expired, dynamic, …), lower case; empty when absent.
    pub cache_status: Cow<'a, str>,
    pub method: Option<Cow<'a, str>>,
    pub uri: Option<Cow<'a, str>>,
    pub path: Option<Cow<'a, str>>,
    pub protocol: Option<Cow<'a, str>>,
    pub user_agent: Option<Cow<'a, str>>,
    pub ssl_protocol: Option<Cow<'a, str>>,
    pub ja3: Option<Cow<'a, str>>,
    pub ja4: Option<Cow<'a, str>>,
    pub bytes: u64,
    pub origin_status: Option<u16>,
    pub ttfb_ms: Option<u32>,
    pub security_action: Option<Cow<'a, str>>,
    pub bot_score: Option<u8>,
    pub waf_attack_score: Option<u8>,
}

impl EdgeEvent<'_> {
    /// Cache statuses counted as served from cache (`cache_hits` in `site_rates_10s`).
    pub fn is_cache_hit(&self) -> bool {
        is_cache_hit_status(&self.cache_status)
    }

    /// `SecurityAction` that stopped the request at the edge (`blocked` in `site_rates_10s`).
    pub fn is_blocked(&self) -> bool {
        self.security_action.as_deref().is_some_and(is_blocking_action)
    }

    /// 1..=5 for 1xx..5xx.
    pub fn status_class(&self) -> u8 {
        (self.status / 100) as u8
    }
}

/// `hit`, `stale`, `updating` and `revalidated` are answered from cache.
pub fn is_cache_hit_status(s: &str) -> bool {
    matches!(s, "hit" | "stale" | "updating" | "revalidated")
}

/// The `SecurityAction`s that stop a request at the edge: `block`, closing the connection, a
/// challenge served, a challenge failed. (A challenge solved or bypassed lets it through.)
pub fn is_blocking_action(s: &str) -> bool {
    matches!(
        s,
        "block"
            | "connectionClose"
            | "forceConnectionClose"
            | "challenge"
            | "jschallenge"
            | "managedChallenge"
            | "challengeFailed"
            | "jschallengeFailed"
            | "managedChallengeFailed"
    )
}

/// Why a line was not accepted. `code()` is the stable value written to `dead_letters.reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidReason {
    #[error("line is not valid UTF-8 (first bad byte at {0})")]
    InvalidUtf8(usize),
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("wrong field type: {0}")]
    WrongType(String),
    #[error("missing required field {0}")]
    MissingField(&'static str),
    #[error("invalid EdgeStartTimestamp (expected RFC 3339 with a UTC offset, or unix seconds, milli-, micro- or nanoseconds, between 2000 and 2100)")]
    InvalidTimestamp,
    #[error("invalid ClientIP {0:?}")]
    InvalidClientIp(String),
    #[error("invalid EdgeResponseStatus {0} (expected 100..=599)")]
    InvalidStatus(u16),
    #[error("invalid site name {0:?}")]
    InvalidSite(String),
    #[error("invalid EdgeResponseBytes {0} (expected at most {MAX_RESPONSE_BYTES})")]
    InvalidBytes(u64),
    #[error("line of {len} bytes exceeds the limit of {limit} bytes")]
    LineTooLong { len: usize, limit: usize },
    #[error("event time {} behind the watermark, past the allowed lateness of {}", Secs(*.behind), Secs(*.limit))]
    TooLate { behind: Nanos, limit: Nanos },
    /// Later than the clock allows (a shipper's clock, or a timestamp in the wrong unit): counted,
    /// it would move the watermark ahead and make every event after it too late.
    #[error("event time {} ahead of the clock, past the allowed future of {}", Secs(*.ahead), Secs(*.limit))]
    FutureTimestamp { ahead: Nanos, limit: Nanos },
}

impl InvalidReason {
    /// Stable machine-readable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidUtf8(_) => "invalid_utf8",
            Self::MalformedJson(_) => "malformed_json",
            Self::WrongType(_) => "wrong_type",
            Self::MissingField(_) => "missing_field",
            Self::InvalidTimestamp => "invalid_timestamp",
            Self::InvalidClientIp(_) => "invalid_client_ip",
            Self::InvalidStatus(_) => "invalid_status",
            Self::InvalidSite(_) => "invalid_site",
            Self::InvalidBytes(_) => "invalid_bytes",
            Self::LineTooLong { .. } => "line_too_long",
            Self::TooLate { .. } => "too_late",
            Self::FutureTimestamp { .. } => "future_timestamp",
        }
    }

    /// Every reason code, for metrics and docs.
    pub const CODES: [&'static str; 12] = [
        "invalid_utf8",
        "malformed_json",
        "wrong_type",
        "missing_field",
        "invalid_timestamp",
        "invalid_client_ip",
        "invalid_status",
        "invalid_site",
        "invalid_bytes",
        "line_too_long",
        "too_late",
        "future_timestamp",
    ];
}

/// The largest `EdgeResponseBytes` taken (1 TiB): larger is a broken value, and sums of such
/// values would overflow.
pub const MAX_RESPONSE_BYTES: u64 = 1 << 40;

/// Parse and validate one NDJSON line (without its trailing newline).
pub fn parse_line(line: &[u8]) -> Result<EdgeEvent<'_>, InvalidReason> {
    // The SIMD check says only whether the line is valid; the standard one says where it is not.
    let text = match simdutf8::basic::from_utf8(line) {
        Ok(text) => text,
        Err(_) => std::str::from_utf8(line).map_err(|e| InvalidReason::InvalidUtf8(e.valid_up_to()))?,
    };
    let raw = match crate::flat_scan::scan(text) {
        Some(raw) => raw,
        None => deserialize(text)?,
    };
    validate(raw)
}

/// The general deserializer of one line (any valid JSON, escapes decoded); [`parse_line`] uses it
/// when [`crate::flat_scan::scan`] leaves the line to it.
pub fn deserialize(text: &str) -> Result<RawEvent<'_>, InvalidReason> {
    // An array would be read as the fields in declaration order, and named as one of them.
    if text.trim_start().starts_with('[') {
        return Err(InvalidReason::WrongType("a line is one JSON object (one event), not an array".into()));
    }
    // The deserializer recurses once per level: a deep enough line would overflow the stack.
    if json_nesting_exceeds(text, MAX_JSON_DEPTH) {
        return Err(InvalidReason::MalformedJson(format!("nested deeper than {MAX_JSON_DEPTH} levels")));
    }
    sonic_rs::from_str(text).map_err(|e| {
        let msg = truncate_msg(e.to_string());
        // A repeated key is reported as a type mismatch, but it is the line's syntax that is wrong.
        let wrong_type = matches!(e.classify(), sonic_rs::error::Category::TypeUnmatched | sonic_rs::error::Category::NotFound) && !msg.starts_with("duplicate field");
        if wrong_type { InvalidReason::WrongType(msg) } else { InvalidReason::MalformedJson(msg) }
    })
}

/// The deepest nesting of arrays and objects the JSON readers take (as serde_json's default).
pub const MAX_JSON_DEPTH: usize = 128;

/// Whether `text` opens more than `max` arrays or objects inside each other, outside strings.
/// Only brackets and strings are read: whether the text is valid JSON is the parser's question.
pub fn json_nesting_exceeds(text: &str, max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in text.as_bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

fn truncate_msg(mut s: String) -> String {
    // sonic-rs quotes a window of the input in its messages; keep reasons short.
    if let Some(i) = s.find('\n') {
        s.truncate(i);
    }
    if s.len() > 200 {
        let mut end = 200;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Validate a deserialized line.
pub fn validate(raw: RawEvent<'_>) -> Result<EdgeEvent<'_>, InvalidReason> {
    let ts = match raw.edge_start_timestamp {
        None => return Err(InvalidReason::MissingField("EdgeStartTimestamp")),
        Some(WireTimestamp(None)) => return Err(InvalidReason::InvalidTimestamp),
        Some(WireTimestamp(Some(ts))) => ts,
    };
    let ip_text = raw.client_ip.ok_or(InvalidReason::MissingField("ClientIP"))?;
    // An IPv4 client written as an IPv4-mapped IPv6 address is that IPv4 client.
    let client_ip = parse_ip(ip_text.trim()).map(|ip| ip.to_canonical()).ok_or_else(|| InvalidReason::InvalidClientIp(excerpt_str(&ip_text, 64)))?;
    let status = raw.edge_response_status.ok_or(InvalidReason::MissingField("EdgeResponseStatus"))?;
    if !(100..=599).contains(&status) {
        return Err(InvalidReason::InvalidStatus(status));
    }
    let bytes = raw.edge_response_bytes.unwrap_or(0);
    if bytes > MAX_RESPONSE_BYTES {
        return Err(InvalidReason::InvalidBytes(bytes));
    }
    let (site, site_from_host) = match (raw.zone_name, raw.client_request_host) {
        (Some(z), _) if !z.is_empty() => (normalize_site(z)?, false),
        (_, Some(h)) if !h.is_empty() => (normalize_site(strip_port(h))?, true),
        _ => return Err(InvalidReason::MissingField("ZoneName (or ClientRequestHost)")),
    };
    Ok(EdgeEvent {
        ts,
        site,
        site_from_host,
        client_ip,
        status,
        ray_id: raw.ray_id.filter(|r| !r.is_empty()),
        asn: raw.client_asn.unwrap_or(0),
        country: lower(raw.client_country.unwrap_or_default()),
        colo: upper(raw.edge_colo_code.unwrap_or_default()),
        // Cloudflare writes these in lower case; other producers may not (a "HIT" was its own
        // group, and not a cache hit).
        cache_status: lower(raw.cache_cache_status.unwrap_or_default()),
        method: raw.client_request_method,
        uri: raw.client_request_uri,
        path: raw.client_request_path,
        protocol: raw.client_request_protocol,
        user_agent: raw.client_request_user_agent,
        ssl_protocol: raw.client_ssl_protocol,
        ja3: raw.ja3_hash,
        ja4: raw.ja4,
        bytes,
        origin_status: raw.origin_response_status,
        ttfb_ms: raw.edge_time_to_first_byte_ms,
        security_action: raw.security_action,
        bot_score: raw.bot_score,
        waf_attack_score: raw.waf_attack_score,
    })
}

/// `text.parse::<IpAddr>()`, with the usual client addresses, a plain dotted quad and IPv6 in hex
/// groups, read directly.
fn parse_ip(text: &str) -> Option<IpAddr> {
    if let Some(v4) = dotted_quad(text.as_bytes()) {
        return Some(IpAddr::V4(v4));
    }
    if let Some(v6) = hex_groups(text.as_bytes()) {
        return Some(IpAddr::V6(v6));
    }
    text.parse().ok()
}

/// IPv6 as groups of one to four hex digits between colons: eight of them, or fewer with one
/// `::` standing for at least one zero group. `None` for anything else, an embedded IPv4 or a
/// zone included (the standard parser then decides; it reads these forms the same way).
fn hex_groups(b: &[u8]) -> Option<Ipv6Addr> {
    let mut groups = [0u16; 8];
    let mut n = 0;
    // Where `::` stands: the number of groups before it.
    let mut gap = None;
    let mut i = 0;
    if b.starts_with(b"::") {
        gap = Some(0);
        i = 2;
        if i == b.len() {
            return Some(Ipv6Addr::UNSPECIFIED);
        }
    }
    loop {
        let start = i;
        let mut v = 0u16;
        while i - start < 4 {
            let d = match b.get(i) {
                Some(&c @ b'0'..=b'9') => c - b'0',
                Some(&c @ b'a'..=b'f') => c - b'a' + 10,
                Some(&c @ b'A'..=b'F') => c - b'A' + 10,
                _ => break,
            };
            v = (v << 4) | u16::from(d);
            i += 1;
        }
        if i == start || n == 8 {
            return None;
        }
        groups[n] = v;
        n += 1;
        if i == b.len() {
            break;
        }
        // After a group: a colon, or two for the gap (a fifth digit or any other byte is not this form).
        (b[i] == b':').then_some(())?;
        i += 1;
        if b.get(i) == Some(&b':') {
            if gap.is_some() {
                return None;
            }
            gap = Some(n);
            i += 1;
            if i == b.len() {
                break;
            }
        } else if i == b.len() {
            return None;
        }
    }
    match gap {
        None => (n == 8).then(|| Ipv6Addr::from(groups)),
        Some(_) if n == 8 => None,
        Some(g) => {
            let mut out = [0u16; 8];
            out[..g].copy_from_slice(&groups[..g]);
            out[8 - (n - g)..].copy_from_slice(&groups[g..n]);
            Some(Ipv6Addr::from(out))
        }
    }
}

/// Four octets of one to three digits without a leading zero, each at most 255, between three
/// dots; `None` for anything else (the standard parser then decides, and accepts no more than
/// these in IPv4 form).
fn dotted_quad(b: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (n, octet) in octets.iter_mut().enumerate() {
        if n > 0 {
            (b.get(i) == Some(&b'.')).then_some(())?;
            i += 1;
        }
        let start = i;
        let mut v = 0u32;
        while let Some(&c @ b'0'..=b'9') = b.get(i) {
            (i - start < 3).then_some(())?;
            v = v * 10 + u32::from(c - b'0');
            i += 1;
        }
        let digits = i - start;
        (digits > 0 && (digits == 1 || b[start] != b'0')).then_some(())?;
        *octet = u8::try_from(v).ok()?;
    }
    (i == b.len()).then(|| Ipv4Addr::from(octets))
}

fn strip_port(h: Cow<'_, str>) -> Cow<'_, str> {
    // "host:443" → "host"; bracketed IPv6 literals are left alone (and rejected as sites below).
    match h {
        Cow::Borrowed(b) => Cow::Borrowed(b.rsplit_once(':').filter(|(_, p)| p.bytes().all(|c| c.is_ascii_digit())).map_or(b, |(h, _)| h)),
        Cow::Owned(o) => {
            let cut = o.rsplit_once(':').filter(|(_, p)| p.bytes().all(|c| c.is_ascii_digit())).map(|(h, _)| h.len());
            Cow::Owned(cut.map_or(o.clone(), |n| o[..n].to_owned()))
        }
    }
}

/// A site name as the events' sites are stored (see [`normalize_site`]), for looking sites up:
/// whatever an event can be counted under can be asked for.
pub fn stored_site_name(s: &str) -> Result<String, InvalidReason> {
    normalize_site(Cow::Borrowed(s.trim())).map(Cow::into_owned)
}

/// `name`'s ASCII form when it is an internationalised domain name (`bücher.example` →
/// `xn--bcher-kva.example`, after UTS #46, as browsers send it in `Host`); `None` when it is ASCII
/// already or no domain name.
pub fn ascii_domain(name: &str) -> Option<String> {
    if name.is_ascii() {
        return None;
    }
    idna::domain_to_ascii(name).ok().filter(|a| !a.is_empty())
}

/// Sites are DNS names: lower case, no trailing dot, at most 253 bytes of `[a-z0-9.-_*]`; an
/// internationalised name is taken in its ASCII form ([`ascii_domain`]).
fn normalize_site(s: Cow<'_, str>) -> Result<Cow<'_, str>, InvalidReason> {
    let trimmed_len = s.trim_end_matches('.').len();
    // One pass: every byte allowed, and whether any is upper case.
    let (valid_bytes, upper) = s.as_bytes()[..trimmed_len]
        .iter()
        .fold((true, false), |(ok, up), &c| (ok & (c.is_ascii_alphanumeric() | matches!(c, b'.' | b'-' | b'_' | b'*')), up | c.is_ascii_uppercase()));
    let valid = trimmed_len > 0 && trimmed_len <= 253 && valid_bytes;
    if !valid {
        if let Some(ascii) = ascii_domain(&s) {
            return normalize_site(Cow::Owned(ascii)).map_err(|_| InvalidReason::InvalidSite(excerpt_str(&s, 64)));
        }
        return Err(InvalidReason::InvalidSite(excerpt_str(&s, 64)));
    }
    let needs_change = trimmed_len != s.len() || upper;
    if !needs_change {
        return Ok(s);
    }
    Ok(Cow::Owned(s[..trimmed_len].to_ascii_lowercase()))
}

fn lower(s: Cow<'_, str>) -> Cow<'_, str> {
    if s.bytes().any(|c| c.is_ascii_uppercase()) { Cow::Owned(s.to_ascii_lowercase()) } else { s }
}

fn upper(s: Cow<'_, str>) -> Cow<'_, str> {
    if s.bytes().any(|c| c.is_ascii_lowercase()) { Cow::Owned(s.to_ascii_uppercase()) } else { s }
}

/// At most `max` bytes of `s`, cut at a char boundary.
pub fn excerpt_str(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// The raw excerpt stored with a dead letter: the first [`MAX_EXCERPT_BYTES`] bytes, invalid UTF-8
/// replaced so the excerpt is always a valid string.
pub fn raw_excerpt(line: &[u8]) -> String {
    let cut = &line[..line.len().min(MAX_EXCERPT_BYTES)];
    match std::str::from_utf8(cut) {
        Ok(s) => s.to_owned(),
        // A multi-byte char cut at the limit is not an error of the line: drop the partial tail.
        Err(e) if e.error_len().is_none() => String::from_utf8_lossy(&cut[..e.valid_up_to()]).into_owned(),
        Err(_) => String::from_utf8_lossy(cut).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"ClientIP":"203.0.113.7","ClientRequestHost":"www.shop.example","EdgeStartTimestamp":1793491200123456789,"EdgeResponseStatus":200,"ZoneName":"shop.example","RayID":"7d2a1b3c4d5e6f70","ClientASN":64500,"ClientCountry":"US","EdgeColoCode":"sjc","CacheCacheStatus":"hit","EdgeResponseBytes":5120,"SecurityAction":"","NewField":{"x":[1,2]}}"#;

    #[test]
    fn parses_and_normalizes() {
        let ev = parse_line(LINE.as_bytes()).unwrap();
        assert_eq!(ev.ts, 1_793_491_200_123_456_789);
        assert_eq!(ev.site, "shop.example");
        assert_eq!(ev.client_ip.to_string(), "203.0.113.7");
        assert_eq!(ev.country, "us");
        assert_eq!(ev.colo, "SJC");
        assert_eq!(ev.asn, 64500);
        assert!(ev.is_cache_hit());
        assert!(!ev.is_blocked());
        assert!(matches!(ev.site, Cow::Borrowed(_)), "no allocation for a clean site name");
        // Regression: a cache status in upper case was a group of its own, and not a hit.
        let line = LINE.replace(r#""hit""#, r#""HIT""#);
        let upper = parse_line(line.as_bytes()).unwrap();
        assert_eq!(upper.cache_status, "hit");
        assert!(upper.is_cache_hit());
    }

    /// Regression: a line nested deeper than the stack allows (20,000 brackets in a field edgelens
    /// does not read, 40 KB) overflowed the stack of the receiver, the aggregators and `replay`.
    #[test]
    fn a_line_nested_too_deep_is_malformed_not_a_crash() {
        let nested = |depth: usize| LINE.replace(r#"{"x":[1,2]}"#, &format!("{}{}", "[".repeat(depth), "]".repeat(depth)));
        let deep = nested(200_000);
        match parse_line(deep.as_bytes()) {
            Err(InvalidReason::MalformedJson(m)) => assert!(m.contains("nested deeper than 128 levels"), "{m}"),
            other => panic!("{other:?}"),
        }
        let deepest = nested(MAX_JSON_DEPTH - 1);
        let ev = parse_line(deepest.as_bytes()).expect("128 levels with the line's own object");
        assert_eq!(ev.site, "shop.example");
        // Brackets inside strings are text, not nesting.
        let ua = format!(r#""SecurityAction":"","UA":"{}\"{}""#, "[".repeat(500), "{".repeat(500));
        let quoted = LINE.replace(r#""SecurityAction":"""#, &ua);
        assert!(!json_nesting_exceeds(&quoted, MAX_JSON_DEPTH));
        assert_eq!(parse_line(quoted.as_bytes()).unwrap().site, "shop.example");
    }

    /// Regression: a line naming a field twice was a `wrong_type` dead letter.
    #[test]
    fn a_repeated_field_is_malformed_json() {
        let line = LINE.replace(r#""ClientASN":64500"#, r#""ClientASN":64500,"ZoneName":"other.example""#);
        match parse_line(line.as_bytes()) {
            Err(InvalidReason::MalformedJson(m)) => assert!(m.contains("duplicate field `ZoneName`"), "{m}"),
            other => panic!("{other:?}"),
        }
        let line = LINE.replace(r#""ClientASN":64500"#, r#""ClientASN":"AS64500""#);
        assert!(matches!(parse_line(line.as_bytes()), Err(InvalidReason::WrongType(_))), "a real type mismatch stays one");
        let line = LINE.replace(r#""ClientASN":64500"#, r#""ClientASN":"duplicate field""#);
        assert!(matches!(parse_line(line.as_bytes()), Err(InvalidReason::WrongType(_))), "whatever the value says");
    }

    #[test]
    fn actions_that_stop_a_request_at_the_edge_are_blocked() {
        for a in ["block", "connectionClose", "forceConnectionClose", "challenge", "jschallenge", "managedChallenge", "challengeFailed", "jschallengeFailed", "managedChallengeFailed"] {
            assert!(is_blocking_action(a), "{a}");
        }
        for a in ["", "allow", "log", "skip", "bypass", "challengeSolved", "jschallengeSolved", "managedChallengeInteractiveSolved", "challengeBypassed", "rewrite"] {
            assert!(!is_blocking_action(a), "{a}");
        }
    }

    #[test]
    fn host_fallback_strips_port_and_case() {
        let ev = parse_line(br#"{"ClientIP":"2001:db8::1","ClientRequestHost":"API.Example.COM:8443","EdgeStartTimestamp":"2026-10-31T00:00:00Z","EdgeResponseStatus":503}"#).unwrap();
        assert_eq!(ev.site, "api.example.com");
        assert!(ev.site_from_host);
        assert_eq!(ev.status_class(), 5);
        assert!(!parse_line(LINE.as_bytes()).unwrap().site_from_host, "ZoneName is the site");
    }

    /// Regression: an internationalised host (`Host: bücher.example`, sent by clients that do not
    /// encode it) was dead-lettered as `invalid_site`; it is counted under its ASCII form, the
    /// name browsers send and zones are registered under.
    #[test]
    fn internationalised_names_are_their_ascii_form() {
        let line = |field: &str, name: &str| format!(r#"{{"ClientIP":"192.0.2.1","{field}":"{name}","EdgeStartTimestamp":1793491200,"EdgeResponseStatus":200}}"#);
        for (field, name, site) in [
            ("ClientRequestHost", "Bücher.Example:443", "xn--bcher-kva.example"),
            ("ClientRequestHost", "www.bücher.example.", "www.xn--bcher-kva.example"),
            ("ZoneName", "BÜCHER.example", "xn--bcher-kva.example"),
            ("ZoneName", "例え.テスト", "xn--r8jz45g.xn--zckzah"),
        ] {
            assert_eq!(parse_line(line(field, name).as_bytes()).unwrap().site, site, "{name}");
        }
        assert_eq!(stored_site_name("bücher.example").unwrap(), "xn--bcher-kva.example");
        // Not a domain name in any form.
        for name in ["bü cher.example", "ü/x.example", "ü<x.example"] {
            let e = parse_line(line("ZoneName", name).as_bytes()).unwrap_err();
            assert_eq!(e.code(), "invalid_site", "{name}");
        }
    }

    #[test]
    fn reasons() {
        let cases: &[(&[u8], &str)] = &[
            (b"{\"ClientIP\":\"1.2.3.4\"", "malformed_json"),
            (b"[1,2]", "wrong_type"),
            (b"\xff\xfe{}", "invalid_utf8"),
            (br#"{"ClientIP":"1.2.3.4","EdgeStartTimestamp":1793491200,"EdgeResponseStatus":"200","ZoneName":"a.example"}"#, "wrong_type"),
            (br#"{"ClientIP":"1.2.3.4","EdgeStartTimestamp":1793491200,"EdgeResponseStatus":200,"ZoneName":"a.example","ClientASN":"x"}"#, "wrong_type"),
            (br#"{"ClientIP":"1.2.3.4","EdgeResponseStatus":200,"ZoneName":"a.example"}"#, "missing_field"),
            (br#"{"EdgeStartTimestamp":1793491200,"EdgeResponseStatus":200,"ZoneName":"a.example"}"#, "missing_field"),
            (br#"{"ClientIP":"1.2.3.4","EdgeStartTimestamp":1793491200,"ZoneName":"a.example"}"#, "missing_field"),
            (br#"{"ClientIP":"1.2.3.4","EdgeStartTimestamp":1793491200,"EdgeResponseStatus":200}"#, "missing_field"),
            (br#"{"ClientIP":"1.2.3.4","EdgeStartTimestamp":12,"EdgeResponseStatus":200,"ZoneName":"a.example"}"#, "invalid_timestamp"),
            (br#"{"ClientIP":"1.2.3.400","EdgeStartTimestamp":1793491200,"EdgeResponseStatus":200,"ZoneName":"a.example"}"#, "invalid_client_ip"),
            (br#"{"ClientIP":"1.2.3.4","EdgeStartTimestamp":1793491200,"EdgeResponseStatus":999,"ZoneName":"a.example"}"#, "invalid_status"),
            (br#"{"ClientIP":"1.2.3.4","EdgeStartTimestamp":1793491200,"EdgeResponseStatus":200,"ZoneName":"bad site/"}"#, "invalid_site"),
            (br#"{"ClientIP":"1.2.3.4","EdgeStartTimestamp":1793491200,"EdgeResponseStatus":200,"ZoneName":"a.example","EdgeResponseBytes":18446744073709551615}"#, "invalid_bytes"),
            (b"", "malformed_json"),
            (b"null", "wrong_type"),
            (br#"[{"ClientIP":"1.2.3.4","EdgeStartTimestamp":1793491200,"EdgeResponseStatus":200,"ZoneName":"a.example"}]"#, "wrong_type"),
        ];
        for (line, code) in cases {
            let err = parse_line(line).unwrap_err();
            assert_eq!(err.code(), *code, "{:?} -> {err}", String::from_utf8_lossy(line));
        }
        let array = parse_line(br#"[{"ClientIP":"1.2.3.4"}]"#).unwrap_err().to_string();
        assert!(array.contains("not an array"), "{array}");
    }

    /// Regression: `::ffff:1.2.3.4` counted as a client apart from `1.2.3.4` (and a /48 under
    /// truncation, merging unrelated IPv4 networks).
    #[test]
    fn an_ipv4_mapped_client_is_its_ipv4_client() {
        for ip in ["::ffff:1.2.3.4", "::FFFF:0102:0304", "1.2.3.4"] {
            let line = format!(r#"{{"ClientIP":"{ip}","EdgeStartTimestamp":1793491200,"EdgeResponseStatus":200,"ZoneName":"a.example"}}"#);
            assert_eq!(parse_line(line.as_bytes()).unwrap().client_ip, IpAddr::from([1, 2, 3, 4]), "{ip}");
        }
        let line = br#"{"ClientIP":"2001:db8::1","EdgeStartTimestamp":1793491200,"EdgeResponseStatus":200,"ZoneName":"a.example"}"#;
        assert!(parse_line(line).unwrap().client_ip.is_ipv6());
    }

    #[test]
    fn escaped_strings_are_owned_and_correct() {
        let ev = parse_line(br#"{"ClientIP":"1.2.3.4","EdgeStartTimestamp":1793491200,"EdgeResponseStatus":200,"ZoneName":"a.example","ClientRequestUserAgent":"Mozilla\/5.0 \"x\" \u00e9"}"#).unwrap();
        assert_eq!(ev.user_agent.as_deref(), Some("Mozilla/5.0 \"x\" é"));
    }

    #[test]
    fn dotted_quads_read_as_the_standard_parser_reads_them() {
        for text in ["0.0.0.0", "1.2.3.4", "255.255.255.255", "203.0.113.7", "10.0.200.99"] {
            assert_eq!(dotted_quad(text.as_bytes()).map(IpAddr::V4), text.parse().ok(), "{text}");
            assert!(dotted_quad(text.as_bytes()).is_some(), "{text}");
        }
        for text in ["", "1.2.3", "1.2.3.4.", "1.2.3.4.5", "01.2.3.4", "1.2.3.256", "1.2.3.1000", "1..3.4", "1.2.3.4 ", "+1.2.3.4", "::1", "2001:db8::1", "::ffff:1.2.3.4"] {
            assert_eq!(dotted_quad(text.as_bytes()), None, "{text}");
        }
        assert_eq!(parse_ip("2001:db8::1"), "2001:db8::1".parse().ok());
        assert_eq!(parse_ip("1.2.3.256"), None);
    }

    #[test]
    fn hex_groups_read_as_the_standard_parser_reads_them() {
        let good = [
            "::",
            "::1",
            "1::",
            "2001:db8::1",
            "2001:DB8:0:0:8:800:200C:417A",
            "2a00:c6b0:103d:474e:8a62:e575:3d99:36c",
            "1:2:3:4:5:6:7::",
            "::2:3:4:5:6:7:8",
            "1:2:3::6:7:8",
            "0000:0000:0000:0000:0000:0000:0000:0001",
            "fe80::",
        ];
        for text in good {
            assert_eq!(hex_groups(text.as_bytes()).map(IpAddr::V6), text.parse().ok(), "{text}");
            assert!(hex_groups(text.as_bytes()).is_some(), "{text}");
        }
        let bad = [
            "", ":", ":::", "1", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7:8::", "::1:2:3:4:5:6:7:8", "1::2::3", "1:::2", ":1::",
            "1:2:3:4:5:6:7:8:", "12345::", "g::", "1:2:3:4:5:6:7:8 ", "::ffff:1.2.3.4", "fe80::1%eth0", "[::1]", "1.2.3.4",
        ];
        for text in bad {
            assert_eq!(hex_groups(text.as_bytes()), None, "{text}");
        }
        // Forms left to the standard parser still read.
        assert_eq!(parse_ip("::ffff:1.2.3.4"), "::ffff:1.2.3.4".parse().ok());
    }

    proptest::proptest! {
        /// Whatever the direct reading accepts, the standard parser reads as the same address.
        #[test]
        fn the_direct_reading_never_disagrees_with_the_standard_parser(text in "[0-9.:a-f]{0,18}") {
            if let Some(v4) = dotted_quad(text.as_bytes()) {
                proptest::prop_assert_eq!(Ok(IpAddr::V4(v4)), text.parse::<IpAddr>());
            }
            proptest::prop_assert_eq!(parse_ip(&text), text.parse::<IpAddr>().ok());
        }

        /// The same for IPv6-looking text: whatever the group reading accepts, the standard parser
        /// reads as the same address.
        #[test]
        fn the_group_reading_never_disagrees_with_the_standard_parser(text in "[0-9a-fA-F:.]{0,41}|[0aF:]{0,24}") {
            if let Some(v6) = hex_groups(text.as_bytes()) {
                proptest::prop_assert_eq!(Ok(IpAddr::V6(v6)), text.parse::<IpAddr>());
            }
            proptest::prop_assert_eq!(parse_ip(&text), text.parse::<IpAddr>().ok());
        }

        /// Every address written as std writes it (compressed) or as eight full groups is read
        /// directly, to the same address.
        #[test]
        fn every_written_ipv6_address_is_read_directly(segs in proptest::array::uniform8(proptest::prop_oneof![proptest::strategy::Just(0u16), proptest::num::u16::ANY]), upper: bool) {
            let addr = Ipv6Addr::from(segs);
            let full = segs.iter().map(|s| format!("{s:x}")).collect::<Vec<_>>().join(":");
            for text in [addr.to_string(), full] {
                let text = if upper { text.to_ascii_uppercase() } else { text };
                if text.contains('.') {
                    continue; // IPv4-mapped forms are the standard parser's
                }
                proptest::prop_assert_eq!(hex_groups(text.as_bytes()), Some(addr), "{}", text);
            }
        }
    }

    #[test]
    fn excerpt_is_bounded_and_valid() {
        let long = "é".repeat(2000);
        let ex = raw_excerpt(long.as_bytes());
        assert!(ex.len() <= MAX_EXCERPT_BYTES);
        assert!(ex.chars().all(|c| c == 'é'));
        assert_eq!(raw_excerpt(b"\xffab"), "\u{fffd}ab");
    }
}
