//! Writing one Logpush `http_requests` NDJSON line by hand: fixed field order (alphabetical, as a
//! Logpush job with these fields selected sends them), numbers through `itoa`, IPs and ray ids
//! through lookup tables. No allocation; every string value is JSON-safe by construction (the
//! generator's tables are checked by a test), so nothing is escaped.

use super::sites::Ip;

/// The values of one line. Strings are borrowed from the generator's tables and scratch buffers.
pub(crate) struct Line<'a> {
    pub bot_score: u8,
    pub cache: &'static str,
    pub asn: u32,
    pub country: &'static str,
    pub ip: Ip,
    pub host: &'a [u8],
    pub method: &'static str,
    pub path: &'a [u8],
    /// Query string including its `?`, or empty.
    pub query: &'a [u8],
    pub protocol: &'static str,
    pub user_agent: &'static str,
    pub tls: &'static str,
    pub colo: &'static str,
    pub bytes: u64,
    pub status: u16,
    pub ts_ns: i64,
    pub ttfb_ms: u32,
    pub ja3: &'static str,
    pub ja4: &'static str,
    pub origin_status: u16,
    pub ray: u64,
    pub action: &'static str,
    pub waf: u8,
    pub zone: &'a [u8],
}

const DEC: [[u8; 4]; 256] = {
    let mut t = [[0u8; 4]; 256];
    let mut i = 0;
    while i < 256 {
        let (h, te, o) = ((i / 100) as u8, ((i / 10) % 10) as u8, (i % 10) as u8);
        t[i] = if i >= 100 {
            [b'0' + h, b'0' + te, b'0' + o, 3]
        } else if i >= 10 {
            [b'0' + te, b'0' + o, 0, 2]
        } else {
            [b'0' + o, 0, 0, 1]
        };
        i += 1;
    }
    t
};

const HEX: &[u8; 16] = b"0123456789abcdef";

#[inline]
fn push_octet(out: &mut Vec<u8>, o: u8) {
    let d = &DEC[o as usize];
    out.extend_from_slice(&d[..d[3] as usize]);
}

#[inline]
pub(crate) fn push_ipv4(out: &mut Vec<u8>, ip: u32) {
    push_octet(out, (ip >> 24) as u8);
    out.push(b'.');
    push_octet(out, (ip >> 16) as u8);
    out.push(b'.');
    push_octet(out, (ip >> 8) as u8);
    out.push(b'.');
    push_octet(out, ip as u8);
}

/// One IPv6 group: lower-case hex without leading zeros.
#[inline]
fn push_group(out: &mut Vec<u8>, g: u16) {
    let digits = if g >= 0x1000 {
        4
    } else if g >= 0x100 {
        3
    } else if g >= 0x10 {
        2
    } else {
        1
    };
    for i in (0..digits).rev() {
        out.push(HEX[((g >> (i * 4)) & 0xf) as usize]);
    }
}

/// All eight groups, no `::` compression (valid RFC 4291 text; parsers accept it).
#[inline]
pub(crate) fn push_ipv6(out: &mut Vec<u8>, top: u32, mid: u32, low: u64) {
    let groups = [
        (top >> 16) as u16,
        top as u16,
        (mid >> 16) as u16,
        mid as u16,
        (low >> 48) as u16,
        (low >> 32) as u16,
        (low >> 16) as u16,
        low as u16,
    ];
    for (i, g) in groups.into_iter().enumerate() {
        if i > 0 {
            out.push(b':');
        }
        push_group(out, g);
    }
}

#[inline]
pub(crate) fn push_ip(out: &mut Vec<u8>, ip: Ip) {
    match ip {
        Ip::V4(v) => push_ipv4(out, v),
        Ip::V6 { top, mid, low } => push_ipv6(out, top, mid, low),
    }
}

/// `v` as exactly `n` lower-case hex digits (the low `4n` bits).
#[inline]
pub(crate) fn push_hex_fixed(out: &mut Vec<u8>, v: u64, n: u32) {
    let mut buf = [0u8; 16];
    for i in 0..n as usize {
        buf[i] = HEX[((v >> ((n as usize - 1 - i) * 4)) & 0xf) as usize];
    }
    out.extend_from_slice(&buf[..n as usize]);
}

#[inline]
fn push_num<I: itoa::Integer>(out: &mut Vec<u8>, v: I) {
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b.format(v).as_bytes());
}

/// Append the line and its `\n`.
#[inline]
pub(crate) fn write_line(out: &mut Vec<u8>, l: &Line<'_>) {
    out.extend_from_slice(b"{\"BotScore\":");
    push_num(out, l.bot_score);
    out.extend_from_slice(b",\"CacheCacheStatus\":\"");
    out.extend_from_slice(l.cache.as_bytes());
    out.extend_from_slice(b"\",\"ClientASN\":");
    push_num(out, l.asn);
    out.extend_from_slice(b",\"ClientCountry\":\"");
    out.extend_from_slice(l.country.as_bytes());
    out.extend_from_slice(b"\",\"ClientIP\":\"");
    push_ip(out, l.ip);
    out.extend_from_slice(b"\",\"ClientRequestHost\":\"");
    out.extend_from_slice(l.host);
    out.extend_from_slice(b"\",\"ClientRequestMethod\":\"");
    out.extend_from_slice(l.method.as_bytes());
    out.extend_from_slice(b"\",\"ClientRequestPath\":\"");
    out.extend_from_slice(l.path);
    out.extend_from_slice(b"\",\"ClientRequestProtocol\":\"");
    out.extend_from_slice(l.protocol.as_bytes());
    out.extend_from_slice(b"\",\"ClientRequestURI\":\"");
    out.extend_from_slice(l.path);
    out.extend_from_slice(l.query);
    out.extend_from_slice(b"\",\"ClientRequestUserAgent\":\"");
    out.extend_from_slice(l.user_agent.as_bytes());
    out.extend_from_slice(b"\",\"ClientSSLProtocol\":\"");
    out.extend_from_slice(l.tls.as_bytes());
    out.extend_from_slice(b"\",\"EdgeColoCode\":\"");
    out.extend_from_slice(l.colo.as_bytes());
    out.extend_from_slice(b"\",\"EdgeResponseBytes\":");
    push_num(out, l.bytes);
    out.extend_from_slice(b",\"EdgeResponseStatus\":");
    push_num(out, l.status);
    out.extend_from_slice(b",\"EdgeStartTimestamp\":");
    push_num(out, l.ts_ns);
    out.extend_from_slice(b",\"EdgeTimeToFirstByteMs\":");
    push_num(out, l.ttfb_ms);
    out.extend_from_slice(b",\"JA3Hash\":\"");
    out.extend_from_slice(l.ja3.as_bytes());
    out.extend_from_slice(b"\",\"JA4\":\"");
    out.extend_from_slice(l.ja4.as_bytes());
    out.extend_from_slice(b"\",\"OriginResponseStatus\":");
    push_num(out, l.origin_status);
    out.extend_from_slice(b",\"RayID\":\"");
    push_hex_fixed(out, l.ray, 16);
    out.extend_from_slice(b"\",\"SecurityAction\":\"");
    out.extend_from_slice(l.action.as_bytes());
    out.extend_from_slice(b"\",\"WAFAttackScore\":");
    push_num(out, l.waf);
    out.extend_from_slice(b",\"ZoneName\":\"");
    out.extend_from_slice(l.zone);
    out.extend_from_slice(b"\"}\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut v = Vec::new();
        f(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn addresses_round_trip() {
        for ip in [0u32, 0x0102_0304, 0xffff_ffff, 0x0a00_00ff, 0xc0a8_6401] {
            let text = s(|o| push_ipv4(o, ip));
            assert_eq!(text.parse::<std::net::Ipv4Addr>().unwrap(), std::net::Ipv4Addr::from(ip));
        }
        for (top, mid, low) in [(0x2a00_1234u32, 0u32, 1u64), (0x2a0f_0000, 0xdead_beef, 0x0001_0000_00ff_1000), (0, 0, 0)] {
            let text = s(|o| push_ipv6(o, top, mid, low));
            let want = ((top as u128) << 96) | ((mid as u128) << 64) | low as u128;
            assert_eq!(text.parse::<std::net::Ipv6Addr>().unwrap(), std::net::Ipv6Addr::from(want), "{text}");
        }
        assert_eq!(s(|o| push_hex_fixed(o, 0xab, 16)), "00000000000000ab");
    }
}
