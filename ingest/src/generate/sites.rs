//! The synthetic sites: name, Zipf share of all traffic, main timezone, audience (country mix and
//! so the access networks its clients come from), user-agent mix, URL layout and cache hit ratio.
//!
//! Clients are not stored: client number `key` of a site is hashed into its country, ASN, IP (from
//! the ASN's prefixes), colo, user agent and TLS traits, so a client keeps the same attributes every
//! time it comes back and memory does not grow with the number of clients. Regular clients come
//! from a small pool per site (they return often), occasional ones from a pool fifty times larger.

use rand::RngCore;
use rand_pcg::Pcg64Mcg;

use super::sampling::{below, below64, mix64, range_u64, uniform};
use super::world::{
    cumulative, pick_cum, Class, HostSel, NetKind, Query, Region, SiteKind, World, NAME_ADJECTIVES, NAME_NOUNS,
    USER_AGENTS,
};

/// Zipf exponent of site popularity.
pub(crate) const ZIPF_S: f64 = 1.1;
/// Share of clients (in u32 space) that are search-engine crawlers: ~2%.
const CRAWLER_SHARE: u32 = (u32::MAX / 100) * 2;
/// Share of access-network clients on IPv6: ~22%.
const V6_SHARE: u32 = (u32::MAX / 100) * 22;

/// A client IP address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ip {
    V4(u32),
    /// Top 32 bits (the ASN's /32), next 32 bits (customer network), low 64 bits (interface id).
    V6 { top: u32, mid: u32, low: u64 },
}

/// A client's stable attributes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Client {
    pub ip: Ip,
    pub asn: u16,
    pub country: u16,
    pub colo: u16,
    pub ua: u16,
    /// 1 = HTTP/1.1, 2 = HTTP/2, 3 = HTTP/3.
    pub proto: u8,
    pub tls13: bool,
    pub bot_score: u8,
}

/// One URL pattern of a site, ready to write: `head` + id + `tail`.
pub(crate) struct PathEntry {
    pub head: Box<[u8]>,
    /// 0: no id; else ids are drawn below this, skewed to small ones (popular items).
    pub id_max: u32,
    pub tail: Box<[u8]>,
    pub class: Class,
    pub query: Query,
    /// (method, cumulative threshold).
    pub methods: Vec<(&'static str, u32)>,
    pub host: HostSel,
    /// Fixes the size of each static object.
    pub size_salt: u64,
}

pub(crate) struct Site {
    pub name: String,
    /// 1-based popularity rank.
    pub rank: usize,
    /// Zipf share of baseline traffic (all sites sum to 1).
    pub share: f64,
    pub kind: SiteKind,
    pub region: Region,
    pub tz_minutes: i32,
    /// Index into the generator's timezone groups.
    pub tz_group: usize,
    /// Host names: [primary, secondary (apex or www), api].
    pub hosts: [Box<[u8]>; 3],
    /// (world country index, weight), largest first.
    pub country_weights: Vec<(u16, f64)>,
    pub countries: Vec<(u16, u32)>,
    pub uas: Vec<(u16, u32)>,
    pub paths: Vec<PathEntry>,
    pub path_cum: Vec<u32>,
    pub regulars: u64,
    pub occasionals: u64,
    pub salt: u64,
    /// Cache hit threshold (u32 space) for static objects.
    pub hit_threshold: u32,
}

fn pick_weighted<T: Copy>(rng: &mut Pcg64Mcg, items: &[(T, u32)]) -> T {
    let total: u64 = items.iter().map(|&(_, w)| w as u64).sum();
    let mut r = below64(rng.next_u64(), total);
    for &(t, w) in items {
        if r < w as u64 {
            return t;
        }
        r -= w as u64;
    }
    items[items.len() - 1].0
}

/// Zipf shares of `n` sites.
pub(crate) fn zipf_shares(n: usize) -> Vec<f64> {
    let raw: Vec<f64> = (1..=n).map(|k| (k as f64).powf(-ZIPF_S)).collect();
    let total: f64 = raw.iter().sum();
    raw.into_iter().map(|w| w / total).collect()
}

fn site_name(rng: &mut Pcg64Mcg, taken: &mut std::collections::HashSet<String>) -> String {
    for attempt in 0..8 {
        let adj = NAME_ADJECTIVES[below(rng.next_u64() as u32, NAME_ADJECTIVES.len() as u32) as usize];
        let noun = NAME_NOUNS[below(rng.next_u64() as u32, NAME_NOUNS.len() as u32) as usize];
        let sep = if rng.next_u64() & 1 == 0 { "" } else { "-" };
        let mut name = format!("{adj}{sep}{noun}");
        if attempt == 7 {
            // The word space is exhausted for large site counts: number the name.
            let mut n = 2;
            while taken.contains(&format!("{name}{n}.example")) {
                n += 1;
            }
            name = format!("{name}{n}");
        }
        let name = format!("{name}.example");
        if taken.insert(name.clone()) {
            return name;
        }
    }
    unreachable!("the numbered name is always new")
}

impl Site {
    /// Build site number `index` (0-based rank) with mean baseline rate `mean_rps`.
    pub(crate) fn build(
        world: &World,
        index: usize,
        share: f64,
        mean_rps: f64,
        rng: &mut Pcg64Mcg,
        taken: &mut std::collections::HashSet<String>,
    ) -> Site {
        let name = site_name(rng, taken);
        let kind = pick_weighted(rng, &SiteKind::ALL);
        let region = pick_weighted(rng, &Region::ALL);
        let tzs = region.timezones();
        let tz_minutes = tzs[below(rng.next_u64() as u32, tzs.len() as u32) as usize];

        // Audience: the region's countries, reweighted per site, keeping the 3..=9 largest.
        let mut cw: Vec<(u16, f64)> = region
            .countries()
            .iter()
            .map(|&(code, w)| {
                let f = uniform(rng, 0.2, 1.8);
                (world.country_index(code).expect("region country in world"), w as f64 * f * f)
            })
            .collect();
        cw.sort_by(|a, b| b.1.total_cmp(&a.1));
        cw.truncate(range_u64(rng, 3, 9) as usize);
        let total: f64 = cw.iter().map(|c| c.1).sum();
        for c in &mut cw {
            c.1 /= total;
        }
        let countries = cumulative(&cw);

        let uas = cumulative(&kind.ua_mix().iter().map(|&(i, w)| (i as u16, w as f64)).collect::<Vec<_>>());

        let build_hash = format!("{:08x}", rng.next_u64() as u32);
        let mut paths = Vec::new();
        let mut path_w = Vec::new();
        for t in kind.paths() {
            let pattern = t.pattern.replace("{h}", &build_hash);
            let (head, tail) = match pattern.split_once("{id}") {
                Some((h, t)) => (h.to_owned(), t.to_owned()),
                None => (pattern.clone(), String::new()),
            };
            let methods = cumulative(&t.methods.iter().map(|&(m, w)| (m, w as f64)).collect::<Vec<_>>());
            // Each site weighs its pages a little differently.
            path_w.push(t.weight as f64 * uniform(rng, 0.6, 1.4));
            paths.push(PathEntry {
                head: head.into_bytes().into(),
                id_max: t.id_max,
                tail: tail.into_bytes().into(),
                class: t.class,
                query: t.query,
                methods,
                host: t.host,
                size_salt: rng.next_u64(),
            });
        }
        let path_cum = cumulative(&path_w.iter().enumerate().map(|(i, &w)| (i, w)).collect::<Vec<_>>())
            .into_iter()
            .map(|(_, th)| th)
            .collect();

        let www = format!("www.{name}");
        let (primary, secondary) = if rng.next_u64() % 10 < 6 { (www, name.clone()) } else { (name.clone(), www) };
        let hosts = [
            primary.into_bytes().into(),
            secondary.into_bytes().into(),
            format!("api.{name}").into_bytes().into(),
        ];
        let regulars = (mean_rps * 40.0).clamp(20.0, 1e8) as u64;
        let occasionals = (mean_rps * 2000.0).clamp(200.0, 1e10) as u64;
        let hit_threshold = (uniform(rng, 0.78, 0.96) * u32::MAX as f64) as u32;
        Site {
            name,
            rank: index + 1,
            share,
            kind,
            region,
            tz_minutes,
            tz_group: 0,
            hosts,
            country_weights: cw,
            countries,
            uas,
            paths,
            path_cum,
            regulars,
            occasionals,
            salt: rng.next_u64(),
            hit_threshold,
        }
    }

    /// Pick a path entry with 32 random bits.
    #[inline]
    pub(crate) fn pick_path(&self, r: u32) -> usize {
        self.path_cum.partition_point(|&th| th < r).min(self.paths.len() - 1)
    }

    /// A client key of this site's normal traffic: 85% regulars (skewed: some return very often),
    /// 15% occasional visitors.
    #[inline]
    pub(crate) fn baseline_key(&self, r: u64) -> u64 {
        let u = (r >> 32) as u32;
        if (r as u32) < (u32::MAX / 100) * 85 {
            let skew = ((u as u64 * u as u64) >> 32) as u32;
            below64((skew as u64) << 32, self.regulars)
        } else {
            self.regulars + below64((u as u64) << 32 | (r & 0xffff_ffff), self.occasionals)
        }
    }

    /// Client `key` of this site. Same key → same client. Its ASN is always one of
    /// [`Site::asn_indices`].
    #[inline]
    pub(crate) fn client(&self, world: &World, key: u64) -> Client {
        let h1 = mix64(self.salt ^ key.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let h2 = mix64(h1 ^ 0x5851_f42d_4c95_7f2d);
        let h3 = mix64(h2 ^ 0x1405_7b7e_f767_814f);
        if (h1 as u32) < CRAWLER_SHARE {
            let (asn, ua) = world.crawlers[below((h1 >> 32) as u32, world.crawlers.len() as u32) as usize];
            let a = &world.asns[asn as usize];
            let c = &world.countries[a.country as usize];
            return Client {
                ip: Ip::V4(host_in(a.v4[below(h2 as u32, a.v4.len() as u32) as usize], (h2 >> 32) as u32)),
                asn,
                country: a.country,
                colo: pick_cum(&c.colos, h3 as u32),
                ua: ua as u16,
                proto: 2,
                tls13: true,
                bot_score: 1,
            };
        }
        let country = pick_cum(&self.countries, (h1 >> 32) as u32);
        let c = &world.countries[country as usize];
        let asn = pick_cum(&c.asns, h2 as u32);
        let a = &world.asns[asn as usize];
        let h4 = mix64(h3 ^ 0x2545_f491_4f6c_dd1d);
        let ip = if ((h2 >> 32) as u32) < V6_SHARE {
            Ip::V6 { top: a.v6_top, mid: h4 as u32, low: mix64(h4) }
        } else {
            Ip::V4(host_in(a.v4[below(h4 as u32, a.v4.len() as u32) as usize], (h4 >> 32) as u32))
        };
        let ua = pick_cum(&self.uas, (h3 >> 32) as u32);
        let agent = &USER_AGENTS[ua as usize];
        let b = mix64(h4 ^ 0x94d0_49bb_1331_11eb);
        let proto = if agent.h3 && (b & 0xff) < 45 {
            3
        } else if agent.h2 && (b & 0xff) < 240 {
            2
        } else {
            1
        };
        let bot_score = match agent.kind {
            super::world::UaKind::Browser => 30 + ((b >> 8) % 70) as u8,
            super::world::UaKind::MobileApp => 20 + ((b >> 8) % 60) as u8,
            super::world::UaKind::Crawler => 1,
            super::world::UaKind::Tool => 2 + ((b >> 8) % 28) as u8,
        };
        Client {
            ip,
            asn,
            country,
            colo: pick_cum(&c.colos, h3 as u32),
            ua,
            proto,
            tls13: proto == 3 || ((b >> 16) & 0xff) < 232,
            bot_score,
        }
    }

    /// Every ASN (world indices) the site's normal traffic can come from, sorted.
    pub(crate) fn asn_indices(&self, world: &World) -> Vec<u16> {
        let mut v: Vec<u16> = self
            .country_weights
            .iter()
            .flat_map(|&(c, _)| world.countries[c as usize].asns.iter().map(|&(a, _)| a))
            .chain(world.crawlers.iter().map(|&(a, _)| a))
            .collect();
        v.sort_unstable();
        v.dedup();
        debug_assert!(v.iter().all(|&a| world.asns[a as usize].kind != NetKind::Hosting));
        v
    }
}

/// A host address inside `(net, len)` from 32 random bits, avoiding .0 and .255.
#[inline]
pub(crate) fn host_in((net, len): (u32, u8), r: u32) -> u32 {
    let last = 1 + below(r, 254);
    if len >= 24 { net | last } else { net | ((r >> 8) & 0xff00 & !(u32::MAX << (32 - len))) | last }
}

