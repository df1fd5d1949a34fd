//! The request attributes attack signatures are made of, and their compact value ids.
//!
//! Every attribute value has a canonical text (what a signature shows, e.g. `"198.51.100.0/24"`,
//! `"64496"`, `"POST"`) and a 64-bit id. The detector works on ids taken straight from an event
//! ([`value_id`], no formatting on the hot path); a stored signature is matched against events
//! by turning its texts back into ids ([`id_of_text`]). `id_of_text(a, &value_text(a, ev)) ==
//! Some(value_id(a, ev))` for every attribute and event (tested), so both paths agree.
//!
//! Ids are the same in every process, platform and build (no seeded hashers): the detector state
//! is checkpointed and resumed by another aggregator.

use std::net::IpAddr;

use edgelens_schemas::EdgeEvent;

/// One attribute of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Attr {
    /// The client address.
    Ip,
    /// Its /24 (IPv4) or /48 (IPv6).
    Prefix,
    Asn,
    Country,
    UserAgent,
    Ja3,
    Ja4,
    Path,
    /// The query string's shape: `none`, or its parameter names (sorted, random-looking ones as `*`).
    Query,
    Method,
    Protocol,
    /// The edge response status code.
    Status,
    CacheStatus,
}

pub const N_ATTRS: usize = 13;

/// Value ids of one request, indexed by `Attr as usize`.
pub type Tuple = [u64; N_ATTRS];

impl Attr {
    pub const ALL: [Attr; N_ATTRS] = [
        Attr::Ip,
        Attr::Prefix,
        Attr::Asn,
        Attr::Country,
        Attr::UserAgent,
        Attr::Ja3,
        Attr::Ja4,
        Attr::Path,
        Attr::Query,
        Attr::Method,
        Attr::Protocol,
        Attr::Status,
        Attr::CacheStatus,
    ];

    /// The name used in signatures.
    pub fn name(self) -> &'static str {
        match self {
            Attr::Ip => "client_ip",
            Attr::Prefix => "ip_prefix",
            Attr::Asn => "asn",
            Attr::Country => "country",
            Attr::UserAgent => "user_agent",
            Attr::Ja3 => "ja3",
            Attr::Ja4 => "ja4",
            Attr::Path => "path",
            Attr::Query => "query",
            Attr::Method => "method",
            Attr::Protocol => "protocol",
            Attr::Status => "status",
            Attr::CacheStatus => "cache_status",
        }
    }

    pub fn from_name(name: &str) -> Option<Attr> {
        Attr::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Who sends the request (as opposed to what is asked and what was answered).
    pub fn is_client(self) -> bool {
        matches!(self, Attr::Ip | Attr::Prefix | Attr::Asn | Attr::Country | Attr::UserAgent | Attr::Ja3 | Attr::Ja4)
    }

    /// How specific the attribute is, coarsest first: between two equally good predicates a
    /// signature prefers the coarser (an ASN over its prefixes over their addresses).
    pub fn generality(self) -> u8 {
        match self {
            Attr::Country | Attr::Method | Attr::Protocol | Attr::Status | Attr::CacheStatus | Attr::Query => 0,
            Attr::Asn | Attr::UserAgent | Attr::Ja3 | Attr::Ja4 | Attr::Path => 1,
            Attr::Prefix => 2,
            Attr::Ip => 3,
        }
    }
}

/// A stable 64-bit hash (the same everywhere): 8 bytes at a time, multiply-xorshift mixed.
pub fn stable_hash(tag: u64, bytes: &[u8]) -> u64 {
    let mut h = 0x9e37_79b9_7f4a_7c15u64 ^ tag.wrapping_mul(0xff51_afd7_ed55_8ccd) ^ (bytes.len() as u64);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        h = mix(h ^ u64::from_le_bytes(c.try_into().expect("8 bytes")));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut buf = [0u8; 8];
        buf[..rest.len()].copy_from_slice(rest);
        h = mix(h ^ u64::from_le_bytes(buf));
    }
    mix(h)
}

#[inline]
pub fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// Ids of IPv4-derived values carry this bit; hashed ids never do.
const V4: u64 = 1 << 63;
const HASHED: u64 = !V4;

fn text_id(attr: Attr, s: &str) -> u64 {
    stable_hash(attr as u64 + 1, s.as_bytes()) & HASHED
}

fn ip_id(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => V4 | u64::from(u32::from(v4)),
        IpAddr::V6(v6) => stable_hash(100, &v6.octets()) & HASHED,
    }
}

fn prefix_id(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => V4 | (1 << 40) | u64::from(u32::from(v4) & 0xffff_ff00),
        IpAddr::V6(v6) => stable_hash(101, &v6.octets()[..6]) & HASHED,
    }
}

fn prefix_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{}/24", std::net::Ipv4Addr::from(u32::from(v4) & 0xffff_ff00)),
        IpAddr::V6(v6) => {
            let mut o = v6.octets();
            o[6..].fill(0);
            format!("{}/48", std::net::Ipv6Addr::from(o))
        }
    }
}

/// `none`, or the parameter names of the query (sorted, deduplicated, random-looking names as
/// `*`) behind `keys:`. Cache-busting floods put a fresh random parameter on every request: all
/// of them have the shape `keys:*`, which no ordinary page has.
pub fn query_shape(query: &str) -> String {
    if query.is_empty() {
        return "none".to_owned();
    }
    let mut keys: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let k = p.split('=').next().unwrap_or("");
            if looks_random(k) { "*" } else { k }
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let mut out = String::from("keys:");
    for (i, k) in keys.iter().take(8).enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.extend(k.chars().take(32));
    }
    out
}

/// A parameter name nobody would choose: long enough, alphanumeric, and mixing digits with letters.
fn looks_random(k: &str) -> bool {
    k.len() >= 6
        && k.bytes().all(|b| b.is_ascii_alphanumeric())
        && k.bytes().any(|b| b.is_ascii_digit())
        && k.bytes().any(|b| b.is_ascii_alphabetic())
}

fn split_uri<'a>(ev: &'a EdgeEvent<'_>) -> (&'a str, &'a str) {
    let uri = ev.uri.as_deref().unwrap_or("");
    let (upath, query) = uri.split_once('?').unwrap_or((uri, ""));
    let path = ev.path.as_deref().filter(|p| !p.is_empty()).unwrap_or(upath);
    (path, query)
}

fn or_none(s: Option<&str>) -> &str {
    s.filter(|s| !s.is_empty()).unwrap_or("none")
}

/// The canonical text of `attr` in `ev`.
pub fn value_text(attr: Attr, ev: &EdgeEvent<'_>) -> String {
    match attr {
        Attr::Ip => ev.client_ip.to_string(),
        Attr::Prefix => prefix_text(ev.client_ip),
        Attr::Asn => ev.asn.to_string(),
        Attr::Country => or_none(Some(&ev.country)).to_owned(),
        Attr::UserAgent => or_none(ev.user_agent.as_deref()).to_owned(),
        Attr::Ja3 => or_none(ev.ja3.as_deref()).to_owned(),
        Attr::Ja4 => or_none(ev.ja4.as_deref()).to_owned(),
        Attr::Path => or_none(Some(split_uri(ev).0)).to_owned(),
        Attr::Query => query_shape(split_uri(ev).1),
        Attr::Method => or_none(ev.method.as_deref()).to_owned(),
        Attr::Protocol => or_none(ev.protocol.as_deref()).to_owned(),
        Attr::Status => ev.status.to_string(),
        Attr::CacheStatus => or_none(Some(&ev.cache_status)).to_owned(),
    }
}

/// The id of `attr` in `ev`, without formatting numbers or addresses.
pub fn value_id(attr: Attr, ev: &EdgeEvent<'_>) -> u64 {
    match attr {
        Attr::Ip => ip_id(ev.client_ip),
        Attr::Prefix => prefix_id(ev.client_ip),
        Attr::Asn => u64::from(ev.asn),
        Attr::Status => u64::from(ev.status),
        Attr::Query => {
            let q = split_uri(ev).1;
            if q.is_empty() { text_id(attr, "none") } else { text_id(attr, &query_shape(q)) }
        }
        Attr::Country => text_id(attr, or_none(Some(&ev.country))),
        Attr::UserAgent => text_id(attr, or_none(ev.user_agent.as_deref())),
        Attr::Ja3 => text_id(attr, or_none(ev.ja3.as_deref())),
        Attr::Ja4 => text_id(attr, or_none(ev.ja4.as_deref())),
        Attr::Path => text_id(attr, or_none(Some(split_uri(ev).0))),
        Attr::Method => text_id(attr, or_none(ev.method.as_deref())),
        Attr::Protocol => text_id(attr, or_none(ev.protocol.as_deref())),
        Attr::CacheStatus => text_id(attr, or_none(Some(&ev.cache_status))),
    }
}

/// The id of a canonical text of `attr` (`None` if the text is not a valid value).
pub fn id_of_text(attr: Attr, text: &str) -> Option<u64> {
    match attr {
        Attr::Ip => text.parse::<IpAddr>().ok().map(ip_id),
        Attr::Prefix => {
            let (addr, len) = text.split_once('/')?;
            let ip: IpAddr = addr.parse().ok()?;
            match (ip, len) {
                (IpAddr::V4(_), "24") | (IpAddr::V6(_), "48") => Some(prefix_id(ip)),
                _ => None,
            }
        }
        Attr::Asn => text.parse::<u32>().ok().map(u64::from),
        Attr::Status => text.parse::<u16>().ok().map(u64::from),
        _ => Some(text_id(attr, text)),
    }
}

/// Every attribute's id.
pub fn tuple(ev: &EdgeEvent<'_>) -> Tuple {
    Attr::ALL.map(|a| value_id(a, ev))
}

/// A per-event hash that decides sampling: the same event gets the same hash in every run and
/// every process (RayID when present, else time and address).
pub fn event_hash(ev: &EdgeEvent<'_>) -> u64 {
    match ev.ray_id.as_deref() {
        Some(r) if !r.is_empty() => stable_hash(7, r.as_bytes()),
        _ => mix(stable_hash(8, ev.site.as_bytes()) ^ (ev.ts as u64) ^ ip_id(ev.client_ip).rotate_left(17)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgelens_schemas::parse_line;

    #[test]
    fn text_and_id_agree_for_every_attribute() {
        let lines = [
            r#"{"EdgeStartTimestamp":1793491200,"ClientIP":"198.51.100.7","EdgeResponseStatus":403,"ZoneName":"a.example","ClientASN":64496,"ClientCountry":"de","ClientRequestMethod":"POST","ClientRequestURI":"/login?user=x&3fa9c0d1=88","ClientRequestPath":"/login","ClientRequestProtocol":"HTTP/2","ClientRequestUserAgent":"curl/8.0","JA3Hash":"abc","JA4":"t13d","CacheCacheStatus":"dynamic"}"#,
            r#"{"EdgeStartTimestamp":1793491200,"ClientIP":"2001:db8:1:2::9","EdgeResponseStatus":200,"ZoneName":"a.example"}"#,
        ];
        for line in lines {
            let ev = parse_line(line.as_bytes()).unwrap();
            for a in Attr::ALL {
                let text = value_text(a, &ev);
                assert_eq!(id_of_text(a, &text), Some(value_id(a, &ev)), "{a:?} {text}");
                assert_eq!(Attr::from_name(a.name()), Some(a));
            }
        }
        let ev = parse_line(lines[0].as_bytes()).unwrap();
        assert_eq!(value_text(Attr::Prefix, &ev), "198.51.100.0/24");
        assert_eq!(value_text(Attr::Query, &ev), "keys:*&user");
        let ev6 = parse_line(lines[1].as_bytes()).unwrap();
        assert_eq!(value_text(Attr::Prefix, &ev6), "2001:db8:1::/48");
        assert_eq!(value_text(Attr::Query, &ev6), "none");
    }

    #[test]
    fn query_shapes() {
        assert_eq!(query_shape("q=shoes&page=2"), "keys:page&q");
        assert_eq!(query_shape("a1b2c3d4=x"), "keys:*");
        assert_eq!(query_shape("utm_source=news"), "keys:utm_source");
        assert_eq!(query_shape(""), "none");
    }

    const GOLDEN: u64 = 4_390_689_316_822_305_562;

    #[test]
    fn hash_is_stable() {
        // Fixed: checkpoints and signatures written by one build are read by another.
        assert_eq!(stable_hash(1, b"edgelens"), stable_hash(1, b"edgelens"));
        assert_ne!(stable_hash(1, b"edgelens"), stable_hash(2, b"edgelens"));
        assert_eq!(stable_hash(0, b""), 11_286_133_854_226_296_554);
        assert_eq!(stable_hash(1, b"edgelens"), GOLDEN);
    }
}
