//! Injected traffic: volumetric HTTP floods and flash crowds. An [`Injection`] knows its site, its
//! timing and rate curve, who sends it (a botnet, or the site's own audience), and counts exactly
//! what was emitted for the ground truth.

use std::collections::HashSet;

use rand::RngCore;
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};

use super::sampling::{below, below64, normal, range_u64, uniform};
use super::sites::{host_in, Site};
use super::world::{pick_cum, Class, Query, World, ATTACK_UAS, BOTNET_COUNTRIES};

/// Floods never peak below this many requests per second, however quiet the site.
pub(crate) const MIN_FLOOD_PEAK_RPS: f64 = 50.0;

/// One machine of a botnet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bot {
    pub ip: u32,
    pub asn: u16,
    pub country: u16,
    pub colo: u16,
    /// Index into the flood's user agents.
    pub ua: u8,
}

pub(crate) struct Flood {
    pub bots: Vec<Bot>,
    /// Requests sent per bot so far (same order as `bots`).
    pub hits: Vec<u32>,
    /// Indices into [`ATTACK_UAS`].
    pub uas: Vec<usize>,
    /// The prefixes the bots were drawn from.
    pub prefixes: Vec<(u32, u8)>,
    pub method: &'static str,
    pub path: Box<[u8]>,
    /// Fixed query (with `?`) when not randomized; empty otherwise.
    pub query: Box<[u8]>,
    pub random_query: bool,
    pub class: Class,
    /// Second (relative to the flood's start) from which the site's WAF rule blocks part of it.
    pub block_after: Option<u32>,
}

pub(crate) struct Crowd {
    /// Path entry and id of the page everybody is sent to.
    pub hot_entry: usize,
    pub hot_id: u32,
    /// Size of the pool of new visitors.
    pub pool: u64,
    /// Client keys of new visitors start here (disjoint from the site's regular key space).
    pub key_base: u64,
}

pub(crate) enum Body {
    Flood(Flood),
    Crowd(Crowd),
}

pub(crate) struct Injection {
    /// `flood-N` / `flash-crowd-N`.
    pub id: String,
    pub site: usize,
    /// Second index (relative to the generator start) of the first second.
    pub start_sec: u64,
    pub len: u32,
    pub ramp_up: u32,
    pub baseline_rps: f64,
    /// Flood: peak attack rate / baseline. Flash crowd: peak site total / baseline.
    pub factor: f64,
    /// Flood: peak attack rate. Flash crowd: peak extra rate on top of the baseline.
    pub peak_rate: f64,
    pub body: Body,
    pub requests: u64,
    /// Events per emission second, from `start_sec`.
    pub timeline: Vec<u32>,
    pub min_ts_ns: i64,
    pub max_ts_ns: i64,
}

impl Injection {
    /// A flood on `site` starting at `start_sec` for `len` seconds.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn flood(
        number: usize,
        world: &World,
        site: &Site,
        site_index: usize,
        start_sec: u64,
        len: u32,
        baseline_rps: f64,
        rng: &mut Pcg64Mcg,
    ) -> Injection {
        let factor = uniform(rng, 15.0, 30.0);
        let peak_rate = (factor * baseline_rps).max(MIN_FLOOD_PEAK_RPS);
        let ramp_up = range_u64(rng, 6, 10) as u32;
        let (bots, prefixes) = botnet(world, site, rng);
        let n_uas = if rng.next_u64().is_multiple_of(3) { 2 } else { 1 };
        let mut uas = Vec::new();
        while uas.len() < n_uas {
            let u = below(rng.next_u64() as u32, ATTACK_UAS.len() as u32) as usize;
            if !uas.contains(&u) {
                uas.push(u);
            }
        }
        let bots = bots.into_iter().map(|mut b| {
            b.ua = below(b.ip.wrapping_mul(0x9e37_79b9), n_uas as u32) as u8;
            b
        });
        let bots: Vec<Bot> = bots.collect();
        // Half the floods bust the cache with random query strings on `/`, half hammer one
        // dynamic URL (a login form gets POSTs).
        let (method, path, query, random_query, class) = if rng.next_u64() & 1 == 0 {
            ("GET", b"/".to_vec(), Vec::new(), true, Class::Html)
        } else {
            let dynamic: Vec<usize> = (0..site.paths.len()).filter(|&i| !site.paths[i].class.is_static()).collect();
            let e = &site.paths[dynamic[below(rng.next_u64() as u32, dynamic.len() as u32) as usize]];
            let mut path = e.head.to_vec();
            if e.id_max > 0 {
                path.extend_from_slice(below(rng.next_u64() as u32, e.id_max.min(100)).to_string().as_bytes());
                path.extend_from_slice(&e.tail);
            }
            let posts = e.methods.iter().any(|&(m, _)| m == "POST");
            let query = if e.query == Query::Search { b"?q=test".to_vec() } else { Vec::new() };
            (if posts { "POST" } else { "GET" }, path, query, false, e.class)
        };
        let block_after = rng.next_u64().is_multiple_of(2).then(|| range_u64(rng, 20, 45) as u32);
        let hits = vec![0; bots.len()];
        Injection {
            id: format!("flood-{number}"),
            site: site_index,
            start_sec,
            len,
            ramp_up,
            baseline_rps,
            factor,
            peak_rate,
            body: Body::Flood(Flood {
                bots,
                hits,
                uas,
                prefixes,
                method,
                path: path.into(),
                query: query.into(),
                random_query,
                class,
                block_after,
            }),
            requests: 0,
            timeline: Vec::new(),
            min_ts_ns: i64::MAX,
            max_ts_ns: i64::MIN,
        }
    }

    /// A flash crowd on `site`: the total reaches `factor` × baseline.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn crowd(
        number: usize,
        site: &Site,
        site_index: usize,
        start_sec: u64,
        len: u32,
        baseline_rps: f64,
        factor: f64,
        rng: &mut Pcg64Mcg,
    ) -> Injection {
        let peak_rate = (factor - 1.0) * baseline_rps;
        let ramp_up = (len / 4).clamp(10, 60);
        let pages: Vec<usize> =
            (0..site.paths.len()).filter(|&i| site.paths[i].class == Class::Html && site.paths[i].id_max > 0).collect();
        let (hot_entry, hot_id) = if pages.is_empty() {
            (0, 0)
        } else {
            let e = pages[below(rng.next_u64() as u32, pages.len() as u32) as usize];
            (e, below(rng.next_u64() as u32, site.paths[e].id_max.min(50)))
        };
        Injection {
            id: format!("flash-crowd-{number}"),
            site: site_index,
            start_sec,
            len,
            ramp_up,
            baseline_rps,
            factor,
            peak_rate,
            body: Body::Crowd(Crowd {
                hot_entry,
                hot_id,
                pool: (peak_rate * 120.0).max(1000.0) as u64,
                key_base: (1u64 << 63) | ((number as u64) << 44),
            }),
            requests: 0,
            timeline: Vec::new(),
            min_ts_ns: i64::MAX,
            max_ts_ns: i64::MIN,
        }
    }

    pub(crate) fn end_sec(&self) -> u64 {
        self.start_sec + self.len as u64
    }

    /// Mean rate for second `k` of the injection (0-based), with a little noise.
    pub(crate) fn rate(&self, k: u32, rng: &mut Pcg64Mcg) -> f64 {
        if k >= self.len {
            return 0.0;
        }
        let noise = (1.0 + 0.08 * normal(rng)).clamp(0.8, 1.2);
        let up = ((k + 1) as f64 / self.ramp_up as f64).min(1.0);
        let shape = match self.body {
            // Straight up, flat, and stops within two seconds.
            Body::Flood(_) => {
                let left = self.len - k;
                if left <= 2 { up * left as f64 / 3.0 } else { up }
            }
            // Builds up, holds, then fades over the last third as the link goes stale.
            Body::Crowd(_) => {
                let fade_from = self.len - self.len / 3;
                if k >= fade_from {
                    let t = (k - fade_from) as f64 / (self.len - fade_from) as f64;
                    up * (1.0 - 0.85 * t)
                } else {
                    up
                }
            }
        };
        self.peak_rate * shape * noise
    }

    /// Index of the bot sending the next flood request: a few bots send far more than most.
    #[inline]
    pub(crate) fn pick_bot(n: usize, r: u32) -> usize {
        let skew = ((r as u64 * r as u64) >> 32) as u32;
        below(skew, n as u32) as usize
    }

    pub(crate) fn record(&mut self, ts_ns: i64) {
        self.requests += 1;
        self.min_ts_ns = self.min_ts_ns.min(ts_ns);
        self.max_ts_ns = self.max_ts_ns.max(ts_ns);
    }
}

/// A botnet of 1 500 – 5 000 IPv4 hosts from 3–5 countries the site never sees normal traffic
/// from (one access network each) plus one or two hosting networks. Returns the bots (distinct
/// IPs) and the prefixes they were drawn from.
fn botnet(world: &World, site: &Site, rng: &mut Pcg64Mcg) -> (Vec<Bot>, Vec<(u32, u8)>) {
    let site_countries: HashSet<u16> = site.country_weights.iter().map(|&(c, _)| c).collect();
    let mut candidates: Vec<u16> = BOTNET_COUNTRIES
        .iter()
        .filter_map(|code| world.country_index(code))
        .filter(|c| !site_countries.contains(c))
        .collect();
    for i in (1..candidates.len()).rev() {
        candidates.swap(i, below64(rng.next_u64(), i as u64 + 1) as usize);
    }
    candidates.truncate(range_u64(rng, 3, 5) as usize);
    let mut asns: Vec<u16> = candidates
        .iter()
        .map(|&c| {
            let table = &world.countries[c as usize].asns;
            table[below(rng.next_u64() as u32, table.len() as u32) as usize].0
        })
        .collect();
    for _ in 0..range_u64(rng, 1, 2) {
        loop {
            let h = world.hosting[below(rng.next_u64() as u32, world.hosting.len() as u32) as usize];
            if !asns.contains(&h) {
                asns.push(h);
                break;
            }
        }
    }
    // Each network contributes from one or two of its prefixes, in uneven shares.
    let mut sources: Vec<((u32, u8), u16, f64)> = Vec::new();
    for &a in &asns {
        let v4 = &world.asns[a as usize].v4;
        let share = uniform(rng, 0.5, 2.0);
        let k = (range_u64(rng, 1, 2) as usize).min(v4.len());
        let first = below(rng.next_u64() as u32, v4.len() as u32) as usize;
        for j in 0..k {
            sources.push((v4[(first + j) % v4.len()], a, share / k as f64));
        }
    }
    let cum = super::world::cumulative(&sources.iter().enumerate().map(|(i, s)| (i, s.2)).collect::<Vec<_>>());
    let n = range_u64(rng, 1500, 5000) as usize;
    let mut seen = HashSet::with_capacity(n);
    let mut bots = Vec::with_capacity(n);
    while bots.len() < n {
        let r = rng.next_u64();
        let (prefix, asn, _) = sources[pick_cum(&cum, r as u32)];
        let ip = host_in(prefix, (r >> 32) as u32);
        if seen.insert(ip) {
            let a = &world.asns[asn as usize];
            let colos = &world.countries[a.country as usize].colos;
            bots.push(Bot { ip, asn, country: a.country, colo: pick_cum(colos, mix(ip)), ua: 0 });
        }
    }
    let prefixes = sources.iter().map(|s| s.0).collect();
    (bots, prefixes)
}

fn mix(ip: u32) -> u32 {
    super::sampling::mix64(ip as u64) as u32
}

/// What an injection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InjectionKind {
    /// Malicious traffic (see `vector`).
    Attack,
    /// A legitimate surge of the site's own audience.
    FlashCrowd,
}

/// The botnet of an attack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttackerSet {
    /// Number of distinct attacker IPs (all IPv4).
    pub count: usize,
    pub asns: Vec<u32>,
    /// ISO codes, lower case as in the events.
    pub countries: Vec<String>,
    /// CIDR prefixes every attacker IP lies in.
    pub prefixes: Vec<String>,
    /// Every attacker IP, sorted numerically.
    pub ips: Vec<String>,
    /// The attackers that sent the most requests, most first (at most 20).
    pub top: Vec<AttackerCount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttackerCount {
    pub ip: String,
    pub requests: u64,
}

/// What an attack's requests look like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestPattern {
    pub method: String,
    /// `ClientRequestPath` of every attack request.
    pub path: String,
    /// True: every request has a random query string (cache busting); false: every request has
    /// exactly `query` (possibly empty).
    pub random_query: bool,
    pub query: String,
    pub user_agents: Vec<String>,
    pub ja3: Vec<String>,
    pub ja4: Vec<String>,
    /// Event-time second (unix) from which part of the flood is blocked by a WAF rule
    /// (`SecurityAction` "block", status 403); none if never.
    pub blocked_from_ts: Option<i64>,
}

/// One injected attack or surge, as ground truth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InjectionTruth {
    /// `flood-N` or `flash-crowd-N`, numbered per kind from 1 in start order.
    pub id: String,
    pub kind: InjectionKind,
    /// `http_flood` for attacks; none for flash crowds.
    pub vector: Option<String>,
    pub site: String,
    /// 1-based popularity rank of the site.
    pub site_rank: usize,
    /// Event-time window: every event of the injection has `start_ts <= EdgeStartTimestamp <
    /// end_ts` (unix seconds; RFC 3339 in `start` / `end`). While ongoing, `end` is the last event so far.
    pub start: String,
    pub end: String,
    pub start_ts: i64,
    pub end_ts: i64,
    /// Still emitting when the truth was taken.
    pub ongoing: bool,
    /// Exact number of events emitted by this injection (on top of the site's baseline).
    pub requests: u64,
    /// Most events in one second, and that second (unix).
    pub peak_rps: u64,
    pub peak_ts: i64,
    /// The site's expected baseline rate (events/s) when the injection started.
    pub baseline_rps: f64,
    /// Planned peak: attack rate / baseline for floods, site total / baseline for flash crowds.
    pub factor: f64,
    pub ramp_up_secs: u32,
    /// Events per second of emission: `timeline[i]` events were generated for second
    /// `timeline_start_ts + i` (before the event-time jitter).
    pub timeline_start_ts: i64,
    pub timeline: Vec<u32>,
    /// Attacks only.
    pub attackers: Option<AttackerSet>,
    pub request_pattern: Option<RequestPattern>,
    /// Flash crowds only: the page everybody is sent to (`ClientRequestPath`).
    pub hot_path: Option<String>,
}

fn ipv4_text(ip: u32) -> String {
    std::net::Ipv4Addr::from(ip).to_string()
}

fn rfc3339(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

impl Injection {
    pub(crate) fn truth(&self, world: &World, sites: &[Site], start_ts_secs: i64, ongoing: bool) -> InjectionTruth {
        let site = &sites[self.site];
        let timeline_start_ts = start_ts_secs + self.start_sec as i64;
        let (peak_i, peak) = self
            .timeline
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))
            .map_or((0, 0), |(i, &c)| (i, c));
        let (start_ts, end_ts) = if self.requests == 0 {
            (timeline_start_ts, timeline_start_ts)
        } else {
            (self.min_ts_ns.div_euclid(1_000_000_000), self.max_ts_ns.div_euclid(1_000_000_000) + 1)
        };
        let (kind, vector, attackers, request_pattern, hot_path) = match &self.body {
            Body::Flood(f) => {
                let mut asns: Vec<u32> = f.bots.iter().map(|b| world.asns[b.asn as usize].number).collect();
                asns.sort_unstable();
                asns.dedup();
                let mut countries: Vec<String> =
                    f.bots.iter().map(|b| world.countries[b.country as usize].code.to_owned()).collect();
                countries.sort_unstable();
                countries.dedup();
                let mut ips: Vec<u32> = f.bots.iter().map(|b| b.ip).collect();
                ips.sort_unstable();
                let mut top: Vec<(u32, u64)> = f.bots.iter().zip(&f.hits).map(|(b, &h)| (b.ip, h as u64)).collect();
                top.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                top.retain(|t| t.1 > 0);
                top.truncate(20);
                let mut prefixes: Vec<(u32, u8)> = f.prefixes.clone();
                prefixes.sort_unstable();
                prefixes.dedup();
                let attackers = AttackerSet {
                    count: f.bots.len(),
                    asns,
                    countries,
                    prefixes: prefixes.iter().map(|&(n, l)| format!("{}/{l}", ipv4_text(n))).collect(),
                    ips: ips.into_iter().map(ipv4_text).collect(),
                    top: top.into_iter().map(|(ip, requests)| AttackerCount { ip: ipv4_text(ip), requests }).collect(),
                };
                let pattern = RequestPattern {
                    method: f.method.to_owned(),
                    path: String::from_utf8_lossy(&f.path).into_owned(),
                    random_query: f.random_query,
                    query: String::from_utf8_lossy(&f.query).into_owned(),
                    user_agents: f.uas.iter().map(|&u| ATTACK_UAS[u].0.to_owned()).collect(),
                    ja3: f.uas.iter().map(|&u| ATTACK_UAS[u].1.to_owned()).collect(),
                    ja4: f.uas.iter().map(|&u| ATTACK_UAS[u].2.to_owned()).collect(),
                    blocked_from_ts: f.block_after.map(|b| timeline_start_ts + b as i64),
                };
                (InjectionKind::Attack, Some("http_flood".to_owned()), Some(attackers), Some(pattern), None)
            }
            Body::Crowd(c) => {
                let e = &site.paths[c.hot_entry];
                let mut p = String::from_utf8_lossy(&e.head).into_owned();
                if e.id_max > 0 {
                    p.push_str(&c.hot_id.to_string());
                    p.push_str(&String::from_utf8_lossy(&e.tail));
                }
                (InjectionKind::FlashCrowd, None, None, None, Some(p))
            }
        };
        InjectionTruth {
            id: self.id.clone(),
            kind,
            vector,
            site: site.name.clone(),
            site_rank: site.rank,
            start: rfc3339(start_ts),
            end: rfc3339(end_ts),
            start_ts,
            end_ts,
            ongoing,
            requests: self.requests,
            peak_rps: peak as u64,
            peak_ts: timeline_start_ts + peak_i as i64,
            baseline_rps: self.baseline_rps,
            factor: self.factor,
            ramp_up_secs: self.ramp_up,
            timeline_start_ts,
            timeline: self.timeline.clone(),
            attackers,
            request_pattern,
            hot_path,
        }
    }
}
