//! Client IP privacy: what of a client's address may reach storage. Pure; applied by the pipeline
//! to every event before it is counted (so sketches, and everything derived from the address, see
//! only the transformed value) and to the raw excerpt of every dead letter.
//!
//! - `keep`: addresses as received.
//! - `truncate`: IPv4 to its /24, IPv6 to its /48 — distinct clients then count networks.
//! - `hash`: a keyed SipHash-2-4 of the address, written as an IPv6 address in `fd00::/8`. The same
//!   address and key give the same value in every process and run (distinct counts stay exact up
//!   to sketch error; sketches of different runs stay mergeable), and without the key the address
//!   cannot be recovered by trying all 2³² IPv4 addresses.

use std::hash::Hasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The configured policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientIpPolicy {
    #[default]
    Keep,
    Truncate,
    Hash { key: (u64, u64) },
}

impl ClientIpPolicy {
    /// From the config values `client_ip` (`keep`, `truncate`, `hash`) and `client_ip_key` (any
    /// secret text; required by, and only allowed with, `hash`).
    pub fn from_config(mode: &str, key: &str) -> Result<Self, String> {
        match (mode, key.is_empty()) {
            ("keep", true) => Ok(Self::Keep),
            ("truncate", true) => Ok(Self::Truncate),
            ("hash", false) => Ok(Self::Hash { key: derive_key(key) }),
            ("hash", true) => Err("client_ip = \"hash\" needs client_ip_key (a secret)".into()),
            ("keep" | "truncate", false) => Err(format!("client_ip_key is only used with client_ip = \"hash\", not {mode:?}")),
            (other, _) => Err(format!("client_ip must be keep, truncate or hash, not {other:?}")),
        }
    }

    /// The address as it may be stored. An IPv4-mapped IPv6 address (`::ffff:198.51.100.7`) is
    /// its IPv4 address, as the events count it.
    pub fn apply(self, ip: IpAddr) -> IpAddr {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match self {
            Self::Keep => ip,
            Self::Truncate => match ip {
                IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) & 0xffff_ff00)),
                IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (u128::MAX << 80))),
            },
            Self::Hash { key } => {
                let bytes = match ip {
                    IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
                    IpAddr::V6(v6) => v6.octets(),
                };
                let h = |domain: u8| {
                    #[allow(deprecated)] // SipHash-2-4 itself: its output is fixed by definition.
                    let mut s = std::hash::SipHasher::new_with_keys(key.0, key.1);
                    s.write_u8(domain);
                    s.write(&bytes);
                    s.finish()
                };
                let v = (u128::from(h(0)) << 64) | u128::from(h(1));
                IpAddr::V6(Ipv6Addr::from((v & (u128::MAX >> 8)) | (0xfd_u128 << 120)))
            }
        }
    }

    /// `raw` (a received line, possibly broken) with every IP address in it — the `ClientIP`
    /// member's, whatever its spelling (`"Client\u0049P"`) or nesting, and any other — replaced by
    /// its transformed address, and a `"ClientIP"` value that is no address by `redacted`.
    pub fn redact(self, raw: &str) -> String {
        if self == Self::Keep {
            return raw.to_owned();
        }
        let masked = self.mask_addresses(raw);
        let mut out = String::with_capacity(masked.len());
        let mut rest = masked.as_str();
        while let Some(at) = rest.find("\"ClientIP\"") {
            let after = at + "\"ClientIP\"".len();
            out.push_str(&rest[..after]);
            rest = &rest[after..];
            let colon = rest.len() - rest.trim_start().len();
            let Some(value) = rest[colon..].strip_prefix(':') else { continue };
            let ws = value.len() - value.trim_start().len();
            let Some(quoted) = value[ws..].strip_prefix('"') else { continue };
            let end = quoted.find('"').unwrap_or(quoted.len());
            // Addresses are transformed already; anything else is no address to keep.
            let replacement = if quoted[..end].parse::<IpAddr>().is_ok() { &quoted[..end] } else { "redacted" };
            out.push_str(&rest[..colon + 1 + ws + 1]);
            out.push_str(replacement);
            rest = &quoted[end..];
        }
        out.push_str(rest);
        out
    }

    /// `text` with every IPv4 or IPv6 address literal in it transformed: in each run of hex
    /// digits, `.` and `:`, from each position, the longest address that ends before a `.`, a `:`
    /// or the run's end (`198.51.100.7.` at a sentence's end, `2001:db8::1:443`). Text is looked
    /// at once, so transformed addresses are not transformed again.
    fn mask_addresses(self, text: &str) -> String {
        let addr_char = |b: u8| b.is_ascii_hexdigit() || b == b'.' || b == b':';
        let bytes = text.as_bytes();
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        while i < bytes.len() {
            let start = i;
            let in_run = addr_char(bytes[i]);
            while i < bytes.len() && addr_char(bytes[i]) == in_run {
                i += 1;
            }
            if in_run {
                self.mask_run(&text[start..i], &mut out);
            } else {
                out.push_str(&text[start..i]);
            }
        }
        out
    }

    /// One run of hex digits, `.` and `:` onto `out`, its addresses transformed.
    fn mask_run(self, run: &str, out: &mut String) {
        // The longest textual address: IPv6 with an embedded IPv4 address.
        const LONGEST: usize = 45;
        let mut rest = run;
        while let Some(first) = rest.chars().next() {
            let found = (1..=rest.len().min(LONGEST))
                .rev()
                .filter(|&end| end == rest.len() || matches!(rest.as_bytes()[end], b'.' | b':'))
                .find_map(|end| rest[..end].parse::<IpAddr>().ok().filter(|_| rest[..end].contains(['.', ':'])).map(|ip| (ip, end)));
            match found {
                Some((ip, end)) => {
                    out.push_str(&self.apply(ip).to_string());
                    rest = &rest[end..];
                }
                None => {
                    out.push(first);
                    rest = &rest[first.len_utf8()..];
                }
            }
        }
    }
}

fn derive_key(secret: &str) -> (u64, u64) {
    let part = |seed: u64| {
        #[allow(deprecated)]
        let mut s = std::hash::SipHasher::new_with_keys(seed, !seed);
        s.write(secret.as_bytes());
        s.finish()
    };
    (part(0x6564_6765_6c65_6e73), part(0x636c_6965_6e74_6970))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_mapped_address_is_truncated_as_its_ipv4_address() {
        // Regression: in a dead letter's excerpt `::ffff:198.51.100.23` became `::` (an IPv6 /48),
        // while the events counted it as 198.51.100.0/24.
        let t = ClientIpPolicy::Truncate;
        assert_eq!(t.apply(ip("::ffff:198.51.100.23")), ip("198.51.100.0"));
        assert_eq!(t.redact(r#"{"ClientIP":"::ffff:198.51.100.23","x":1"#), r#"{"ClientIP":"198.51.100.0","x":1"#);
    }

    #[test]
    fn truncation_keeps_the_network() {
        let t = ClientIpPolicy::Truncate;
        assert_eq!(t.apply(ip("203.0.113.77")), ip("203.0.113.0"));
        assert_eq!(t.apply(ip("2001:db8:1234:5678::9")), ip("2001:db8:1234::"));
    }

    #[test]
    fn hashing_is_keyed_stable_and_distinct() {
        let a = ClientIpPolicy::from_config("hash", "secret-a").unwrap();
        let b = ClientIpPolicy::from_config("hash", "secret-b").unwrap();
        let x = ip("203.0.113.77");
        assert_eq!(a.apply(x), a.apply(x));
        assert_ne!(a.apply(x), b.apply(x));
        assert_ne!(a.apply(x), a.apply(ip("203.0.113.78")));
        assert!(a.apply(x).to_string().starts_with("fd"), "{}", a.apply(x));
        // Fixed output (SipHash-2-4 is defined): a change here would split every stored sketch.
        assert_eq!(a.apply(x).to_string(), "fd6e:f6c4:cd66:6531:a5f2:8f24:c232:46cd");
        let distinct: std::collections::HashSet<_> = (0..=255u8).map(|i| a.apply(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)))).collect();
        assert_eq!(distinct.len(), 256);
    }

    #[test]
    fn config_is_checked() {
        assert_eq!(ClientIpPolicy::from_config("keep", ""), Ok(ClientIpPolicy::Keep));
        assert!(ClientIpPolicy::from_config("hash", "").is_err());
        assert!(ClientIpPolicy::from_config("truncate", "k").is_err());
        assert!(ClientIpPolicy::from_config("mask", "").is_err());
    }

    #[test]
    fn raw_lines_are_redacted() {
        let t = ClientIpPolicy::Truncate;
        assert_eq!(t.redact(r#"{"ClientIP": "198.51.100.23","x":1}"#), r#"{"ClientIP": "198.51.100.0","x":1}"#);
        assert_eq!(t.redact(r#"{"ClientIP":"not an ip","ZoneName":"a"}"#), r#"{"ClientIP":"redacted","ZoneName":"a"}"#);
        assert_eq!(t.redact(r#"{"ClientIP":"198.51.100.23"#), r#"{"ClientIP":"198.51.100.0"#);
        assert_eq!(t.redact(r#"{"ClientIP":5}"#), r#"{"ClientIP":5}"#);
        assert_eq!(ClientIpPolicy::Keep.redact(r#"{"ClientIP":"1.2.3.4"}"#), r#"{"ClientIP":"1.2.3.4"}"#);
        let h = ClientIpPolicy::from_config("hash", "k").unwrap();
        assert!(!h.redact(r#"{"ClientIP":"1.2.3.4","a":{"ClientIP":"5.6.7.8"}}"#).contains("1.2.3.4"));
        assert!(!h.redact(r#"{"ClientIP":"1.2.3.4","a":{"ClientIP":"5.6.7.8"}}"#).contains("5.6.7.8"));
        // Whatever the key's spelling or the value's nesting, and in any other member.
        for line in [
            r#"{"Client\u0049P":"198.51.100.23","x":"#,
            r#"{"ClientIP":["198.51.100.23"],"EdgeStartTimestamp":"2026-11-01T00:00:00Z"}"#,
            r#"{"ClientRequestUserAgent":"proxy for 198.51.100.23 via 2001:db8::7","v":"a198.51.100.23"}"#,
            r#"{"ClientIP":"[2001:db8::7]:443"}"#,
            r#"{"ua":"proxy for 198.51.100.23. and 2001:db8::7.","h":"198.51.100.23.nip.io","x":"2001:db8::7:443"}"#,
        ] {
            for p in [t, h] {
                let out = p.redact(line);
                assert!(!out.contains("198.51.100.23") && !out.contains("2001:db8::7"), "{out}");
            }
        }
        // Transformed once: a truncated address stays the truncated address.
        assert_eq!(t.redact(r#"{"ClientIP":"198.51.100.23","ts":"2026-11-01T00:00:00.5Z","ua":"Chrome/120.0.6099.109"}"#), r#"{"ClientIP":"198.51.100.0","ts":"2026-11-01T00:00:00.5Z","ua":"Chrome/120.0.6099.109"}"#);
    }
}
