//! The fast path of [`crate::event::parse_line`]: a strict scanner for the usual shape of a
//! Logpush line, one flat JSON object whose strings have no escapes and whose numbers are plain
//! integers (fractions in fields edgelens does not read).
//!
//! [`scan`] returns `None` for anything else — an escape, a nested object or array, an exponent, a
//! negative or out-of-range number in a field edgelens reads, a repeated field, any syntax error —
//! and the line then takes the general deserializer, which decides what it is. Whatever [`scan`]
//! accepts, the general deserializer accepts with an equal [`RawEvent`]: tests compare both on
//! generated traffic and hand-made edge cases, and the `parse_line` fuzz target compares them on
//! every input it tries.
//!
//! A Logpush job writes its fields in the same order on every line, so each key is first compared
//! with the key that followed the same field on the last line the thread scanned (a per-thread
//! table the scanner keeps); only a key that differs is scanned and looked up by name. Either way
//! the key read is the same.

use std::borrow::Cow;
use std::cell::Cell;

use crate::event::{RawEvent, WireTimestamp};
use crate::time::{from_unix_int, parse_timestamp_str};

/// Read `text` as one flat Logpush object, or `None` when the general deserializer must decide.
pub fn scan(text: &str) -> Option<RawEvent<'_>> {
    if text.len() > MAX_SCANNED_LINE {
        return None;
    }
    let mut s = Scanner { text, b: text.as_bytes(), i: 0 };
    let mut raw = RawEvent::default();
    let mut seen = 0u32;
    // Logpush writes a job's fields in one order on every line: the key after each field is
    // checked against the one that followed it on this thread's last line before it is scanned.
    let mut next = NEXT_FIELD.with(Cell::get);
    let mut learned = false;
    let mut prev = START;
    s.ws();
    s.eat(b'{')?;
    s.ws();
    if s.peek() == Some(b'}') {
        s.i += 1;
    } else {
        loop {
            let field = match s.expected_key(next[prev]) {
                Some(f) => Some(f),
                None => {
                    let f = Field::of(s.string()?);
                    if let Some(f) = f {
                        next[prev] = f as u8;
                        learned = true;
                    }
                    f
                }
            };
            s.colon()?;
            match field {
                Some(f) => {
                    let bit = 1u32 << f as u32;
                    if seen & bit != 0 {
                        return None;
                    }
                    seen |= bit;
                    s.field(f, &mut raw)?;
                    prev = f as usize;
                }
                None => s.skip_value()?,
            }
            s.ws();
            match s.next()? {
                b',' => s.ws(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    s.ws();
    if learned {
        NEXT_FIELD.with(|c| c.set(next));
    }
    (s.i == s.b.len()).then_some(raw)
}

/// Index of [`NEXT_FIELD`] for the start of the object.
const START: usize = NAMES.len();

thread_local! {
    /// The field (index into [`NAMES`]; `u8::MAX`: none yet) that followed each field, and the
    /// object's start at [`START`], on the last line this thread scanned.
    static NEXT_FIELD: Cell<[u8; NAMES.len() + 1]> = const { Cell::new([u8::MAX; NAMES.len() + 1]) };
}

/// The fields of [`RawEvent`], by their Logpush names.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Field {
    EdgeStartTimestamp,
    ClientIp,
    EdgeResponseStatus,
    ZoneName,
    ClientRequestHost,
    RayId,
    ClientAsn,
    ClientCountry,
    EdgeColoCode,
    ClientRequestMethod,
    ClientRequestUri,
    ClientRequestPath,
    ClientRequestProtocol,
    ClientRequestUserAgent,
    ClientSslProtocol,
    Ja3Hash,
    Ja4,
    EdgeResponseBytes,
    OriginResponseStatus,
    CacheCacheStatus,
    EdgeTimeToFirstByteMs,
    SecurityAction,
    BotScore,
    WafAttackScore,
}

/// The fields by name.
const NAMES: [(&str, Field); 24] = [
    ("EdgeStartTimestamp", Field::EdgeStartTimestamp),
    ("ClientIP", Field::ClientIp),
    ("EdgeResponseStatus", Field::EdgeResponseStatus),
    ("ZoneName", Field::ZoneName),
    ("ClientRequestHost", Field::ClientRequestHost),
    ("RayID", Field::RayId),
    ("ClientASN", Field::ClientAsn),
    ("ClientCountry", Field::ClientCountry),
    ("EdgeColoCode", Field::EdgeColoCode),
    ("ClientRequestMethod", Field::ClientRequestMethod),
    ("ClientRequestURI", Field::ClientRequestUri),
    ("ClientRequestPath", Field::ClientRequestPath),
    ("ClientRequestProtocol", Field::ClientRequestProtocol),
    ("ClientRequestUserAgent", Field::ClientRequestUserAgent),
    ("ClientSSLProtocol", Field::ClientSslProtocol),
    ("JA3Hash", Field::Ja3Hash),
    ("JA4", Field::Ja4),
    ("EdgeResponseBytes", Field::EdgeResponseBytes),
    ("OriginResponseStatus", Field::OriginResponseStatus),
    ("CacheCacheStatus", Field::CacheCacheStatus),
    ("EdgeTimeToFirstByteMs", Field::EdgeTimeToFirstByteMs),
    ("SecurityAction", Field::SecurityAction),
    ("BotScore", Field::BotScore),
    ("WAFAttackScore", Field::WafAttackScore),
];

/// A hash of a non-empty key that puts each of [`NAMES`] in a slot of its own (checked at compile
/// time by [`SLOTS`]), so a key is compared with one name at most.
const fn slot(key: &[u8]) -> usize {
    (key.len() * 20 + key[key.len() - 1] as usize + key[key.len() / 2] as usize) % 64
}

/// Index into [`NAMES`] by [`slot`] (`u8::MAX`: no field).
static SLOTS: [u8; 64] = {
    let mut t = [u8::MAX; 64];
    let mut i = 0;
    while i < NAMES.len() {
        let s = slot(NAMES[i].0.as_bytes());
        assert!(t[s] == u8::MAX, "two field names share a slot");
        t[s] = i as u8;
        i += 1;
    }
    t
};

impl Field {
    fn of(key: &str) -> Option<Field> {
        if key.is_empty() {
            return None;
        }
        let (name, field) = NAMES.get(usize::from(SLOTS[slot(key.as_bytes())]))?;
        same_bytes(name.as_bytes(), key.as_bytes()).then_some(*field)
    }
}

/// `a == b` for short keys, eight bytes at a time and inline (a key is compared with a name on
/// every field of every line; a call into `memcmp` costs more than the comparison).
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let w8 = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8 bytes"));
    let w4 = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().expect("4 bytes"));
    match n {
        0..4 => a.iter().zip(b).all(|(x, y)| x == y),
        4..8 => w4(a, 0) == w4(b, 0) && w4(a, n - 4) == w4(b, n - 4),
        8..=16 => w8(a, 0) == w8(b, 0) && w8(a, n - 8) == w8(b, n - 8),
        17..=24 => w8(a, 0) == w8(b, 0) && w8(a, 8) == w8(b, 8) && w8(a, n - 8) == w8(b, n - 8),
        _ => a == b,
    }
}

/// Longest line the scanner reads (16 MiB, far above the receivers' line limits): the general
/// deserializer refuses input of 4 GiB and more, so the scanner must not accept it.
pub const MAX_SCANNED_LINE: usize = 16 << 20;

/// Longest number (in characters) skipped in a field edgelens does not read; longer ones, and any
/// with an exponent, are left to the general deserializer.
const MAX_SKIPPED_NUMBER: usize = 40;

/// A byte of 1 in each of the eight bytes of a word (the word-at-a-time helpers below multiply it
/// by the byte they look for).
const ONES: u64 = 0x0101_0101_0101_0101;

/// How many ASCII digits `b` starts with, eight bytes at a time (a number's end is found without a
/// branch per digit).
fn digit_run(b: &[u8]) -> usize {
    let mut n = 0;
    while let Some(word) = b.get(n..n + 8) {
        // A digit becomes 0..=9; every other byte becomes 10 or more, and gets its high bit set
        // when 0x76 is added to its low seven bits (no carry crosses into the next byte).
        let x = u64::from_le_bytes(word.try_into().expect("8 bytes")) ^ (ONES * 0x30);
        let other = (((x & (ONES * 0x7f)) + ONES * 0x76) | x) & (ONES * 0x80);
        if other != 0 {
            return n + (other.trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    n + b[n..].iter().take_while(|c| c.is_ascii_digit()).count()
}

/// The value of eight ASCII digits, most significant first, in three multiplications (pairs, then
/// fours, then the eight).
fn eight_digits(digits: &[u8; 8]) -> u64 {
    let v = u64::from_le_bytes(*digits) & 0x0f0f_0f0f_0f0f_0f0f;
    let v = (v.wrapping_mul(10 << 8 | 1) >> 8) & 0x00ff_00ff_00ff_00ff;
    let v = (v.wrapping_mul(100 << 16 | 1) >> 16) & 0x0000_ffff_0000_ffff;
    v.wrapping_mul(10_000 << 32 | 1) >> 32
}

struct Scanner<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
}

/// A mask whose lowest set bit is the high bit of the first byte of the 8 in `w` (little-endian)
/// that is a quote, a backslash or a control character (< 0x20); zero when there is none. (Bytes
/// after the first such byte may be flagged wrongly; the first is exact.)
fn special_bytes(w: u64) -> u64 {
    const HIGH: u64 = ONES * 0x80;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    zero_byte(w ^ (ONES * u64::from(b'"'))) | zero_byte(w ^ (ONES * u64::from(b'\\'))) | below_space
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i.checked_add(word.len())?;
        (self.b.get(self.i..end)? == word).then(|| self.i = end)
    }

    /// The key `next` (an index into [`NAMES`]) if the line has it here, quoted, and nothing
    /// else: exactly what [`Self::string`] and [`Field::of`] would read there, without the scan.
    fn expected_key(&mut self, next: u8) -> Option<Field> {
        let (name, field) = NAMES.get(usize::from(next))?;
        let n = name.len();
        let at = self.i;
        let quoted = self.b.get(at..at + n + 2)?;
        (quoted[0] == b'"' && quoted[n + 1] == b'"' && same_bytes(name.as_bytes(), &quoted[1..=n])).then(|| {
            self.i = at + n + 2;
            *field
        })
    }

    /// `:` between a key and its value, with any whitespace around it.
    fn colon(&mut self) -> Option<()> {
        if self.peek() == Some(b':') {
            self.i += 1;
        } else {
            self.ws();
            self.eat(b':')?;
        }
        self.ws();
        Some(())
    }

    /// A string without escapes or control characters, borrowed from the line.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let k = self.string_end(start)?;
        self.i = k + 1;
        // Quotes are ASCII, so both ends are char boundaries of the valid UTF-8 line.
        Some(&self.text[start..k])
    }

    /// The quote that ends a string whose text starts at `j`, or `None` if an escape or a
    /// control character comes first or the line ends.
    fn string_end(&self, mut j: usize) -> Option<usize> {
        loop {
            // Eight bytes at a time; past the end of the line, padded with quotes (a quote found
            // there is the end of the line, not of the string).
            let word = match self.b.get(j..j + 8) {
                Some(w) => u64::from_le_bytes(w.try_into().expect("8 bytes")),
                None => {
                    let mut padded = [b'"'; 8];
                    let rest = self.b.get(j..)?;
                    padded[..rest.len()].copy_from_slice(rest);
                    u64::from_le_bytes(padded)
                }
            };
            let mask = special_bytes(word);
            if mask == 0 {
                j += 8;
                continue;
            }
            let k = j + (mask.trailing_zeros() / 8) as usize;
            return (k < self.b.len() && self.b[k] == b'"').then_some(k);
        }
    }

    /// An unsigned integer without sign, fraction or exponent (`None` past `u64::MAX`).
    fn uint(&mut self) -> Option<u64> {
        let v = self.int_part()?;
        (!matches!(self.peek(), Some(b'.' | b'e' | b'E'))).then_some(v)
    }

    /// The integer part of a number: `0` or digits without a leading zero (`None` past `u64::MAX`).
    fn int_part(&mut self) -> Option<u64> {
        let start = self.i;
        let digits = digit_run(&self.b[start..]);
        let text = &self.b[start..start + digits];
        let digit = |c: &u8| u64::from(c - b'0');
        // Up to 19 digits cannot pass u64::MAX; 20 may.
        let v = if digits <= 19 {
            let mut eights = text.chunks_exact(8);
            let v = eights.by_ref().fold(0u64, |v, c| v * 100_000_000 + eight_digits(c.try_into().expect("8 bytes")));
            eights.remainder().iter().fold(v, |v, c| v * 10 + digit(c))
        } else {
            text.iter().try_fold(0u64, |v, c| v.checked_mul(10)?.checked_add(digit(c)))?
        };
        self.i = start + digits;
        (digits == 1 || (digits > 1 && text[0] != b'0')).then_some(v)
    }

    fn opt_str(&mut self) -> Option<Option<Cow<'a, str>>> {
        match self.peek()? {
            b'"' => Some(Some(Cow::Borrowed(self.string()?))),
            b'n' => self.literal(b"null").map(|()| None),
            _ => None,
        }
    }

    fn opt_uint<T: TryFrom<u64>>(&mut self) -> Option<Option<T>> {
        match self.peek()? {
            b'0'..=b'9' => Some(Some(T::try_from(self.uint()?).ok()?)),
            b'n' => self.literal(b"null").map(|()| None),
            _ => None,
        }
    }

    fn field(&mut self, f: Field, raw: &mut RawEvent<'a>) -> Option<()> {
        match f {
            Field::EdgeStartTimestamp => {
                raw.edge_start_timestamp = Some(match self.peek()? {
                    b'"' => WireTimestamp(parse_timestamp_str(self.string()?)),
                    b'0'..=b'9' => WireTimestamp(i64::try_from(self.uint()?).ok().and_then(from_unix_int)),
                    _ => return None,
                });
            }
            Field::ClientIp => raw.client_ip = self.opt_str()?,
            Field::EdgeResponseStatus => raw.edge_response_status = self.opt_uint()?,
            Field::ZoneName => raw.zone_name = self.opt_str()?,
            Field::ClientRequestHost => raw.client_request_host = self.opt_str()?,
            Field::RayId => raw.ray_id = self.opt_str()?,
            Field::ClientAsn => raw.client_asn = self.opt_uint()?,
            Field::ClientCountry => raw.client_country = self.opt_str()?,
            Field::EdgeColoCode => raw.edge_colo_code = self.opt_str()?,
            Field::ClientRequestMethod => raw.client_request_method = self.opt_str()?,
            Field::ClientRequestUri => raw.client_request_uri = self.opt_str()?,
            Field::ClientRequestPath => raw.client_request_path = self.opt_str()?,
            Field::ClientRequestProtocol => raw.client_request_protocol = self.opt_str()?,
            Field::ClientRequestUserAgent => raw.client_request_user_agent = self.opt_str()?,
            Field::ClientSslProtocol => raw.client_ssl_protocol = self.opt_str()?,
            Field::Ja3Hash => raw.ja3_hash = self.opt_str()?,
            Field::Ja4 => raw.ja4 = self.opt_str()?,
            Field::EdgeResponseBytes => raw.edge_response_bytes = self.opt_uint()?,
            Field::OriginResponseStatus => raw.origin_response_status = self.opt_uint()?,
            Field::CacheCacheStatus => raw.cache_cache_status = self.opt_str()?,
            Field::EdgeTimeToFirstByteMs => raw.edge_time_to_first_byte_ms = self.opt_uint()?,
            Field::SecurityAction => raw.security_action = self.opt_str()?,
            Field::BotScore => raw.bot_score = self.opt_uint()?,
            Field::WafAttackScore => raw.waf_attack_score = self.opt_uint()?,
        }
        Some(())
    }

    /// The value of a field edgelens does not read: a string without escapes, `true`, `false`,
    /// `null`, or a number of at most [`MAX_SKIPPED_NUMBER`] characters without exponent (`-12`,
    /// `0.25`).
    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => {
                let start = self.i;
                if self.peek() == Some(b'-') {
                    self.i += 1;
                }
                self.int_part()?;
                if self.peek() == Some(b'.') {
                    self.i += 1;
                    let digits = digit_run(&self.b[self.i..]);
                    if digits == 0 {
                        return None;
                    }
                    self.i += digits;
                }
                let exponent = matches!(self.peek(), Some(b'e' | b'E'));
                (!exponent && self.i - start <= MAX_SKIPPED_NUMBER).then_some(())
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::deserialize;
    use proptest::prelude::*;

    const LINE: &str = r#"{"BotScore":22,"CacheCacheStatus":"dynamic","ClientASN":28573,"ClientCountry":"br","ClientIP":"8.188.106.227","ClientRequestHost":"api.cleverfashion.example","ClientRequestMethod":"GET","ClientRequestPath":"/v1/items/24492","ClientRequestProtocol":"HTTP/2","ClientRequestURI":"/v1/items/24492?a=1&b=2","ClientRequestUserAgent":"curl/8.5.0","ClientSSLProtocol":"TLSv1.3","EdgeColoCode":"GRU","EdgeResponseBytes":4047,"EdgeResponseStatus":200,"EdgeStartTimestamp":1793491200267253956,"EdgeTimeToFirstByteMs":31,"JA3Hash":"456523fc94726331a4d5a2e1d40b2cd7","JA4":"t13d4907h2_0d8feac7bc37_7395dae3b2f3","OriginResponseStatus":200,"RayID":"18b23cf66478b4fd","SecurityAction":"","WAFAttackScore":93,"ZoneName":"cleverfashion.example"}"#;

    /// The property every line must have: what the scanner accepts, the general deserializer
    /// accepts with an equal event.
    fn agrees(text: &str) -> bool {
        match scan(text) {
            None => true,
            Some(fast) => deserialize(text).as_ref() == Ok(&fast),
        }
    }

    #[test]
    fn reads_a_full_line_as_the_general_deserializer_does() {
        let fast = scan(LINE).expect("the usual shape takes the fast path");
        assert_eq!(Ok(&fast), deserialize(LINE).as_ref());
        assert_eq!(fast.edge_start_timestamp, Some(WireTimestamp(Some(1_793_491_200_267_253_956))));
        assert_eq!(fast.client_request_uri.as_deref(), Some("/v1/items/24492?a=1&b=2"));
        assert_eq!(fast.bot_score, Some(22));
        assert!(matches!(fast.zone_name, Some(Cow::Borrowed(_))));
    }

    #[test]
    fn takes_the_plain_shapes_and_leaves_the_rest() {
        let taken = [
            "{}",
            " \t{ } \r\n",
            r#"{ "ClientIP" : "1.2.3.4" , "EdgeStartTimestamp" : "2026-10-31T00:00:00Z" }"#,
            r#"{"EdgeStartTimestamp":0,"ClientASN":null,"ClientIP":null,"Other":-0.5,"X":true}"#,
            r#"{"Unknown":"é ü","Neg":-12,"Frac":10.0001,"F":false,"N":null,"EdgeResponseStatus":599}"#,
            r#"{"EdgeStartTimestamp":18446744073709551615,"BotScore":255}"#,
        ];
        for text in taken {
            assert!(scan(text).is_some(), "{text} should take the fast path");
            assert!(agrees(text), "{text}");
        }
        let left = [
            r#"{"ClientRequestUserAgent":"Mozilla\/5.0"}"#,
            r#"{"Unknown":"a\"b"}"#,
            r#"{"Nested":{"a":1}}"#,
            r#"{"List":[1,2]}"#,
            r#"{"EdgeStartTimestamp":1.793491200e9}"#,
            r#"{"EdgeStartTimestamp":1793491200.5}"#,
            r#"{"EdgeStartTimestamp":-1}"#,
            r#"{"EdgeStartTimestamp":null}"#,
            r#"{"EdgeStartTimestamp":18446744073709551616}"#,
            r#"{"BotScore":256}"#,
            r#"{"ClientASN":-3}"#,
            r#"{"ClientASN":007}"#,
            r#"{"ClientASN":"7"}"#,
            r#"{"ClientIP":1}"#,
            r#"{"ClientIP":"a","ClientIP":"b"}"#,
            r#"{"ZoneName":null,"ZoneName":"a.example"}"#,
            r#"{"Big":1e400}"#,
            r#"{"Long":12345678901234567890123456789012345678901}"#,
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{"a":1}x"#,
            r#"{"a":1}{"#,
            "{\"a\":\"tab\there\"}",
            r#"{"a":tru}"#,
            r#"{"a":1."#,
            r#"{"a":.5}"#,
            r#"{"ZoneName":"abc"#,
            r#"{"ZoneName":"abcdefgh"#,
            r#"{"ZoneName":"#,
            "[1]",
            "",
            "\u{feff}{}",
        ];
        for text in left {
            assert!(scan(text).is_none(), "{text} should be left to the general deserializer");
        }
    }

    /// The field names serde's derive gives [`RawEvent`] (captured from its `deserialize_struct`).
    fn raw_event_field_names() -> &'static [&'static str] {
        use serde::de::{self, Deserialize, Deserializer, Visitor};
        struct Capture(&'static [&'static str]);
        impl<'de> Deserializer<'de> for &mut Capture {
            type Error = de::value::Error;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
                Err(de::Error::custom("only a struct"))
            }
            fn deserialize_struct<V: Visitor<'de>>(self, _: &'static str, fields: &'static [&'static str], _: V) -> Result<V::Value, Self::Error> {
                self.0 = fields;
                Err(de::Error::custom("captured"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
                option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
                ignored_any
            }
        }
        let mut capture = Capture(&[]);
        let _ = RawEvent::deserialize(&mut capture);
        capture.0
    }

    #[test]
    fn the_scanner_reads_every_field_of_raw_event_and_no_other() {
        let mut names: Vec<&str> = NAMES.iter().map(|(name, _)| *name).collect();
        let mut fields = raw_event_field_names().to_vec();
        names.sort_unstable();
        fields.sort_unstable();
        assert_eq!(names, fields, "flat_scan::NAMES and RawEvent's serde names must list the same fields");
    }

    #[test]
    fn every_field_name_finds_its_field_and_no_other_key_does() {
        for (name, field) in NAMES {
            assert_eq!(Field::of(name), Some(field));
            assert_eq!(Field::of(&name.to_lowercase()), None);
            assert_eq!(Field::of(&name[1..]), None);
        }
        assert_eq!(Field::of(""), None);
        assert_eq!(Field::of("ClientRequestReferer"), None);
        // Same length and slot as a name, one byte different anywhere.
        for (name, _) in NAMES {
            for at in 0..name.len() {
                let mut other = name.as_bytes().to_vec();
                other[at] ^= 0x20;
                let other = String::from_utf8(other).unwrap();
                assert_eq!(Field::of(&other), None, "{other}");
            }
        }
    }

    proptest! {
        /// Integers of any length read as the standard parser reads them (none past `u64::MAX`).
        #[test]
        fn integers_read_as_the_standard_parser_reads_them(digits in "[0-9]{1,21}", tail in "[^0-9]{0,9}") {
            let text = format!("{digits}{tail}");
            let mut s = Scanner { text: &text, b: text.as_bytes(), i: 0 };
            let expected = digits.parse::<u64>().ok().filter(|_| digits.len() == 1 || !digits.starts_with('0'));
            prop_assert_eq!(s.int_part(), expected);
            if expected.is_some() {
                prop_assert_eq!(s.i, digits.len());
            }
        }

        /// The eight-at-a-time count of leading digits equals a byte-by-byte one, whatever the bytes.
        #[test]
        fn digit_runs_are_counted_exactly(bytes in prop::collection::vec(prop::sample::select(vec![b'0', b'5', b'9', b'/', b':', b'a', b' ', 0x80, 0xb9, 0xff, 0x00, 0x3a, 0x2f]), 0..40)) {
            prop_assert_eq!(digit_run(&bytes), bytes.iter().take_while(|c| c.is_ascii_digit()).count());
        }
    }

    #[test]
    fn eight_digits_read_every_digit_in_its_place() {
        for text in ["00000000", "12345678", "99999999", "90000001", "01020304"] {
            assert_eq!(eight_digits(text.as_bytes().try_into().unwrap()), text.parse::<u64>().unwrap(), "{text}");
        }
    }

    #[test]
    fn a_line_past_the_limit_is_left_to_the_general_deserializer() {
        let pad = "x".repeat(MAX_SCANNED_LINE);
        let text = format!(r#"{{"Unknown":"{pad}"}}"#);
        assert!(scan(&text).is_none());
        let text = format!(r#"{{"Unknown":"{}"}}"#, &pad[..MAX_SCANNED_LINE - 14]);
        assert_eq!(text.len(), MAX_SCANNED_LINE);
        assert!(scan(&text).is_some());
    }

    #[test]
    fn finds_quotes_and_control_characters_in_every_position_of_a_word() {
        for pad in 0..20 {
            let s = "x".repeat(pad);
            let text = format!(r#"{{"ZoneName":"{s}","RayID":"{s}y"}}"#);
            let raw = scan(&text).expect("plain strings");
            assert_eq!(raw.zone_name.as_deref(), Some(s.as_str()));
            assert_eq!(raw.ray_id.as_deref(), Some(format!("{s}y").as_str()));
            for bad in ["\u{1}", "\\n", "\u{1f}"] {
                let text = format!(r#"{{"ZoneName":"{s}{bad}{s}"}}"#);
                assert!(scan(&text).is_none(), "{text:?}");
                assert!(agrees(&text));
            }
        }
    }

    /// The fields of [`LINE`] in a given order, as the general deserializer must see them too.
    fn reordered(order: &[usize]) -> String {
        let body = &LINE[1..LINE.len() - 1];
        let mut fields: Vec<&str> = Vec::new();
        let mut rest = body;
        while !rest.is_empty() {
            // The test line has no commas inside its values.
            let (field, tail) = rest.split_once(',').unwrap_or((rest, ""));
            fields.push(field);
            rest = tail;
        }
        let picked: Vec<&str> = order.iter().map(|&i| fields[i % fields.len()]).collect();
        format!("{{{}}}", picked.join(","))
    }

    #[test]
    fn a_line_whose_keys_come_in_another_order_than_the_last_ones_reads_the_same() {
        let n = NAMES.len();
        let forward: Vec<usize> = (0..n).collect();
        let backward: Vec<usize> = (0..n).rev().collect();
        let shifted: Vec<usize> = (0..n).map(|i| (i + 5) % n).collect();
        for order in [&forward, &backward, &forward, &shifted, &shifted, &backward] {
            let text = reordered(order);
            let fast = scan(&text).expect("plain fields");
            assert_eq!(Ok(&fast), deserialize(&text).as_ref(), "{text}");
            assert_eq!(fast, scan(LINE).unwrap(), "the same fields in any order are the same event");
        }
        // A key that starts like the field expected there is another key.
        scan(r#"{"ClientIP":"1.2.3.4","ZoneName":"a.example"}"#).unwrap();
        for text in [r#"{"ClientIP":"1.2.3.4","ZoneNameX":"b.example"}"#, r#"{"ClientIP":"1.2.3.4","ZoneNam":"b.example"}"#] {
            assert_eq!(scan(text).unwrap().zone_name, None, "{text}");
            assert!(agrees(text));
        }
        scan(r#"{"ClientIP":"1.2.3.4","ZoneName":"a.example"}"#).unwrap();
        let escaped = r#"{"ClientIP":"1.2.3.4","ZoneName\u0058":"b.example"}"#;
        assert!(scan(escaped).is_none());
        assert_eq!(deserialize(escaped).unwrap().zone_name, None);
    }

    /// Bytes that make or break JSON, for the edits below.
    fn json_byte() -> impl Strategy<Value = char> {
        prop::sample::select(vec!['"', '\\', ',', ':', '{', '}', '[', ']', '-', '.', 'e', '0', '1', '9', ' ', 'n', 't', 'a', '\u{1}', 'é'])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Any edit of a real line — bytes replaced, inserted or removed anywhere — never makes
        /// the two paths disagree.
        #[test]
        fn edited_lines_never_disagree(edits in prop::collection::vec((0usize..LINE.len(), 0u8..3, json_byte()), 1..4)) {
            let mut chars: Vec<char> = LINE.chars().collect();
            for (at, op, c) in edits {
                let at = at % chars.len().max(1);
                match op {
                    0 => chars[at] = c,
                    1 => chars.insert(at, c),
                    _ => { chars.remove(at); }
                }
            }
            let text: String = chars.into_iter().collect();
            prop_assert!(agrees(&text), "{}", text);
        }

        /// Lines whose fields come in random orders, one after another, read as the general
        /// deserializer reads them (each line's keys are checked against the last line's order).
        #[test]
        fn lines_in_changing_field_orders_never_disagree(orders in prop::collection::vec(prop::collection::vec(0usize..40, 1..30), 1..5)) {
            for order in orders {
                let text = reordered(&order);
                prop_assert!(agrees(&text), "{}", text);
            }
        }
    }
}
