//! Injected traffic: attacks (volumetric HTTP floods, cache busting, credential stuffing,
//! scraping, origin error surges) and the legitimate events an attack detector must not flag
//! (flash crowds, cache purges, origin outages, search crawlers). An [`Injection`] knows its
//! site, its timing and rate curve, who sends it (a botnet, the site's own audience, a crawler),
//! how it changes the site's normal responses, and counts exactly what was emitted for the ground
//! truth.

use std::collections::HashSet;

use rand::RngCore;
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};

use super::line::{write_line, Line};
use super::sampling::{below, below64, normal, range_u64, uniform};
use super::sites::{host_in, Ip, Site};
use super::world::{
    pick_cum, Class, HostSel, Query, World, ATTACK_UAS, AUTOMATION_UAS, BOTNET_COUNTRIES, SCRAPER_UA, USER_AGENTS,
};

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

/// A user agent with its JA3 and JA4 fingerprints.
pub(crate) type Agent = (&'static str, &'static str, &'static str);

/// What an attack does; its name is the truth's `vector`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Vector {
    /// Many bots, one URL.
    HttpFlood,
    /// Random query strings on `/`: every request goes to the origin.
    CacheBusting,
    /// POSTs to a login form from a large pool of residential IPs, mostly rejected.
    CredentialStuffing,
    /// One to three hosting IPs walking the site's pages.
    Scraping,
    /// A flood on one uncacheable URL that overloads the origin: most responses of the site fail.
    OriginErrorSurge,
}

impl Vector {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Vector::HttpFlood => "http_flood",
            Vector::CacheBusting => "cache_busting",
            Vector::CredentialStuffing => "credential_stuffing",
            Vector::Scraping => "scraping",
            Vector::OriginErrorSurge => "origin_error_surge",
        }
    }

    /// Prefix of the truth id (`flood-N` for HTTP floods, as in the other scenarios).
    pub(crate) fn id_prefix(self) -> &'static str {
        match self {
            Vector::HttpFlood => "flood",
            Vector::CacheBusting => "cache-busting",
            Vector::CredentialStuffing => "credential-stuffing",
            Vector::Scraping => "scraping",
            Vector::OriginErrorSurge => "origin-error-surge",
        }
    }
}

/// Rate curve of an attack; its name is the truth's `shape`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Up within ~10 s, flat for minutes, stops within 2 s.
    Fast,
    /// Linear ramp over minutes, a short hold, stop.
    SlowRamp,
    /// Up within 3 s, lasts under a minute.
    Burst,
}

impl Shape {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Shape::Fast => "fast",
            Shape::SlowRamp => "slow_ramp",
            Shape::Burst => "burst",
        }
    }
}

/// Pages walked in order: entry `pages[i % n]`, ids counting up, so nearly every request asks for
/// a page not asked for before.
pub(crate) struct Walk {
    /// Path entries of the site (pages with ids first).
    pub pages: Vec<usize>,
    pub next: u64,
    /// First id.
    pub offset: u32,
}

impl Walk {
    /// The site's pages with ids (an API's resources if it has none); `with_plain`: also its
    /// pages without ids (a crawler comes back to `/` now and then).
    fn new(site: &Site, rng: &mut Pcg64Mcg, with_plain: bool) -> Walk {
        let entries = |keep: &dyn Fn(&super::sites::PathEntry) -> bool| -> Vec<usize> {
            (0..site.paths.len()).filter(|&i| keep(&site.paths[i])).collect()
        };
        let mut pages = entries(&|e| e.class == Class::Html && e.id_max > 0);
        if pages.is_empty() {
            pages = entries(&|e| e.class == Class::Api && e.id_max > 0);
        }
        if pages.is_empty() {
            pages = entries(&|e| e.id_max > 0);
        }
        if with_plain || pages.is_empty() {
            pages.extend(entries(&|e| e.class == Class::Html && e.id_max == 0));
        }
        if pages.is_empty() {
            pages.push(0);
        }
        Walk { pages, next: 0, offset: below(rng.next_u64() as u32, 50) }
    }

    /// The next page: (path entry, id).
    pub(crate) fn step(&mut self, site: &Site) -> (usize, u32) {
        let n = self.pages.len() as u64;
        let e = self.pages[(self.next % n) as usize];
        let round = self.next / n;
        self.next += 1;
        let id_max = site.paths[e].id_max;
        let id = if id_max > 0 { ((round + self.offset as u64) % id_max as u64) as u32 } else { 0 };
        (e, id)
    }

    /// The URL patterns walked (`{id}` for the counting part).
    fn patterns(&self, site: &Site) -> Vec<String> {
        self.pages
            .iter()
            .map(|&e| {
                let p = &site.paths[e];
                let mut s = String::from_utf8_lossy(&p.head).into_owned();
                if p.id_max > 0 {
                    s.push_str("{id}");
                    s.push_str(&String::from_utf8_lossy(&p.tail));
                }
                s
            })
            .collect()
    }
}

pub(crate) struct Flood {
    pub vector: Vector,
    pub shape: Shape,
    pub bots: Vec<Bot>,
    /// Requests sent per bot so far (same order as `bots`).
    pub hits: Vec<u32>,
    /// User agents with fingerprints; each bot uses one.
    pub uas: Vec<Agent>,
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
    /// Credential stuffing: share (of 256) of attempts rejected with 401/403. Origin error surge:
    /// share (of 256) of the site's own origin-bound requests that fail once the origin is down.
    pub fail_256: u32,
    /// Origin error surge: second (relative to the start) from which the origin fails.
    pub onset: u32,
    /// Scraping: the pages walked.
    pub walk: Option<Walk>,
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

/// What happens to a site's own traffic without an attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EffectKind {
    /// Cacheable requests all miss; the origin answers a little slower.
    CachePurge,
    /// The origin fails (502/522/524) for most requests that reach it; clients retry a little.
    OriginOutage,
}

pub(crate) struct Effect {
    pub kind: EffectKind,
    /// Share (of 256) of origin-bound requests that fail.
    pub fail_256: u32,
}

/// A legitimate search crawler: one network, a handful of IPs in one /24, walking pages.
pub(crate) struct Crawler {
    /// World ASN index and [`USER_AGENTS`] index.
    pub asn: u16,
    pub ua: usize,
    pub ips: Vec<u32>,
    pub walk: Walk,
}

/// How one request of the site's own traffic changes this second.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SiteEffect {
    pub site: usize,
    /// Every cacheable request misses the cache.
    pub purge: bool,
    /// Share (of 256) of requests that reach the origin and fail.
    pub fail_256: u32,
    /// Overloaded origin (502/503/504/522/524) rather than an unreachable one (502/522/524).
    pub overload: bool,
}

pub(crate) enum Body {
    Flood(Flood),
    Crowd(Crowd),
    /// Cache purge or origin outage: changes the site's own requests (plus the retries).
    Effect(Effect),
    Crawler(Crawler),
}

/// An attack of the eval scenario as planned by its schedule.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AttackPlan {
    pub vector: Vector,
    pub shape: Shape,
    /// Every bot in one hosting network (HTTP floods only).
    pub single_asn: bool,
    pub start: u64,
    pub len: u32,
    pub ramp_up: u32,
    /// Peak attack rate / the site's baseline (before the [`MIN_FLOOD_PEAK_RPS`] floor).
    pub factor: f64,
}

pub(crate) struct Injection {
    /// `flood-N` / `flash-crowd-N` / `<kind or vector>-N`.
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
        let (bots, uas) = assign_uas(bots, ATTACK_UAS, rng);
        // Half the floods bust the cache with random query strings on `/`, half hammer one
        // dynamic URL (a login form gets POSTs).
        let (method, path, query, random_query, class) = if rng.next_u64() & 1 == 0 {
            ("GET", b"/".to_vec(), Vec::new(), true, Class::Html)
        } else {
            dynamic_url(site, rng, |_| true)
        };
        let block_after = rng.next_u64().is_multiple_of(2).then(|| range_u64(rng, 20, 45) as u32);
        let hits = vec![0; bots.len()];
        let body = Body::Flood(Flood {
            // The truth names what the flood does: random queries on `/` bust the cache.
            vector: if random_query { Vector::CacheBusting } else { Vector::HttpFlood },
            shape: Shape::Fast,
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
            fail_256: 0,
            onset: 0,
            walk: None,
        });
        Injection::with_body(format!("flood-{number}"), site_index, start_sec, len, ramp_up, baseline_rps, factor, peak_rate, body)
    }

    #[allow(clippy::too_many_arguments)]
    fn with_body(
        id: String,
        site: usize,
        start_sec: u64,
        len: u32,
        ramp_up: u32,
        baseline_rps: f64,
        factor: f64,
        peak_rate: f64,
        body: Body,
    ) -> Injection {
        Injection {
            id,
            site,
            start_sec,
            len,
            ramp_up,
            baseline_rps,
            factor,
            peak_rate,
            body,
            requests: 0,
            timeline: Vec::new(),
            min_ts_ns: i64::MAX,
            max_ts_ns: i64::MIN,
        }
    }

    /// An attack of the eval scenario: `factor` × baseline (at least [`MIN_FLOOD_PEAK_RPS`]) at
    /// its peak. Attacker IPs are drawn outside `taken`, and added to it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn attack(
        id: String,
        world: &World,
        site: &Site,
        site_index: usize,
        plan: AttackPlan,
        baseline_rps: f64,
        taken: &mut HashSet<u32>,
        rng: &mut Pcg64Mcg,
    ) -> Injection {
        let peak_rate = (plan.factor * baseline_rps).max(MIN_FLOOD_PEAK_RPS);
        let (bots, prefixes) = match plan.vector {
            Vector::HttpFlood | Vector::CacheBusting | Vector::OriginErrorSurge => {
                eval_botnet(world, site, plan.single_asn, taken, rng)
            }
            Vector::CredentialStuffing => residential_pool(world, site, taken, rng),
            Vector::Scraping => scrapers(world, taken, rng),
        };
        taken.extend(bots.iter().map(|b| b.ip));
        let agents: &[Agent] = match plan.vector {
            Vector::CredentialStuffing => AUTOMATION_UAS,
            Vector::Scraping => std::slice::from_ref(&SCRAPER_UA),
            _ => ATTACK_UAS,
        };
        let (bots, uas) = assign_uas(bots, agents, rng);
        let mut fail_256 = 0;
        let mut onset = 0;
        let mut walk = None;
        let mut block_after = None;
        let (method, path, query, random_query, class) = match plan.vector {
            Vector::HttpFlood => {
                block_after = rng.next_u64().is_multiple_of(2).then(|| range_u64(rng, 20, 45) as u32);
                dynamic_url(site, rng, |_| true)
            }
            Vector::CacheBusting => ("GET", b"/".to_vec(), Vec::new(), true, Class::Html),
            Vector::OriginErrorSurge => {
                onset = range_u64(rng, 3, 6) as u32;
                fail_256 = range_u64(rng, 180, 220) as u32;
                // Uncacheable and expensive: no search query the edge could cache.
                dynamic_url(site, rng, |e| e.query != Query::Search)
            }
            Vector::CredentialStuffing => {
                fail_256 = range_u64(rng, 186, 226) as u32; // 73%..88%
                ("POST", login_path(site).as_bytes().to_vec(), Vec::new(), false, Class::Html)
            }
            Vector::Scraping => {
                walk = Some(Walk::new(site, rng, false));
                ("GET", Vec::new(), Vec::new(), false, Class::Html)
            }
        };
        let hits = vec![0; bots.len()];
        let body = Body::Flood(Flood {
            vector: plan.vector,
            shape: plan.shape,
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
            fail_256,
            onset,
            walk,
        });
        let factor = peak_rate / baseline_rps.max(f64::MIN_POSITIVE);
        Injection::with_body(id, site_index, plan.start, plan.len, plan.ramp_up, baseline_rps, factor, peak_rate, body)
    }

    /// A cache purge or an origin outage on `site`. `retry_share`: extra requests (retries of the
    /// site's own clients) as a share of the baseline.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn effect(
        id: String,
        kind: EffectKind,
        site_index: usize,
        start_sec: u64,
        len: u32,
        baseline_rps: f64,
        retry_share: f64,
        rng: &mut Pcg64Mcg,
    ) -> Injection {
        let (fail_256, retry_share) = match kind {
            EffectKind::CachePurge => (0, 0.0),
            EffectKind::OriginOutage => (range_u64(rng, 200, 232) as u32, retry_share),
        };
        let peak_rate = retry_share * baseline_rps;
        let body = Body::Effect(Effect { kind, fail_256 });
        Injection::with_body(id, site_index, start_sec, len, 0, baseline_rps, 1.0 + retry_share, peak_rate, body)
    }

    /// A search crawler (`which` of the world's crawlers) on `site` at `factor` × baseline, steady.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn crawler(
        id: String,
        world: &World,
        site: &Site,
        site_index: usize,
        which: usize,
        len: u32,
        baseline_rps: f64,
        factor: f64,
        rng: &mut Pcg64Mcg,
    ) -> Injection {
        let (asn, ua) = world.crawlers[which % world.crawlers.len()];
        let a = &world.asns[asn as usize];
        let slash24: Vec<(u32, u8)> = a.v4.iter().copied().filter(|p| p.1 == 24).collect();
        let prefix = if slash24.is_empty() {
            let (net, _) = a.v4[0];
            (net | (below(rng.next_u64() as u32, 256) << 8), 24)
        } else {
            slash24[below(rng.next_u64() as u32, slash24.len() as u32) as usize]
        };
        let n = range_u64(rng, 4, 10) as usize;
        let mut ips = Vec::with_capacity(n);
        while ips.len() < n {
            let ip = host_in(prefix, rng.next_u64() as u32);
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        let walk = Walk::new(site, rng, true);
        let body = Body::Crawler(Crawler { asn, ua, ips, walk });
        Injection::with_body(id, site_index, 0, len, 0, baseline_rps, factor, factor * baseline_rps, body)
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
        let up = ((k + 1) as f64 / self.ramp_up.max(1) as f64).min(1.0);
        let shape = match self.body {
            // Straight (or, slow ramp, linearly) up, flat, and stops within two seconds.
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
            // Retries while the origin is down; a crawler's steady pace.
            Body::Effect(_) | Body::Crawler(_) => 1.0,
        };
        self.peak_rate * shape * noise
    }

    /// Index of the bot sending the next flood request: a few bots send far more than most.
    #[inline]
    pub(crate) fn pick_bot(n: usize, r: u32) -> usize {
        let skew = ((r as u64 * r as u64) >> 32) as u32;
        below(skew, n as u32) as usize
    }

    /// How the injection changes its site's own requests in second `sec` (none for most kinds).
    pub(crate) fn site_effect(&self, sec: u64) -> Option<SiteEffect> {
        let k = sec.saturating_sub(self.start_sec) as u32;
        match &self.body {
            Body::Effect(e) => Some(SiteEffect {
                site: self.site,
                purge: e.kind == EffectKind::CachePurge,
                fail_256: e.fail_256,
                overload: false,
            }),
            Body::Flood(f) if f.vector == Vector::OriginErrorSurge => Some(SiteEffect {
                site: self.site,
                purge: false,
                fail_256: if k < f.onset { 0 } else { ((k - f.onset + 1) * 32).min(f.fail_256) },
                overload: true,
            }),
            _ => None,
        }
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
    let n = range_u64(rng, 1500, 5000) as usize;
    let bots = fill_pool(world, &sources, n, &HashSet::new(), rng);
    let prefixes = sources.iter().map(|s| s.0).collect();
    (bots, prefixes)
}

/// Number of addresses [`host_in`] can give inside a prefix.
fn hosts_in((_, len): (u32, u8)) -> u64 {
    if len >= 24 { 254 } else { 254 * (((0xff00 & !(u32::MAX << (32 - len as u32))) >> 8) as u64 + 1) }
}

/// `n` bots with distinct IPs, none in `exclude`, from `sources` (prefix, ASN, weight).
fn fill_pool(world: &World, sources: &[((u32, u8), u16, f64)], n: usize, exclude: &HashSet<u32>, rng: &mut Pcg64Mcg) -> Vec<Bot> {
    let cum = super::world::cumulative(&sources.iter().enumerate().map(|(i, s)| (i, s.2)).collect::<Vec<_>>());
    // Never ask for more distinct addresses than the prefixes hold.
    let capacity: u64 = sources.iter().map(|s| hosts_in(s.0)).sum();
    let n = n.min(capacity as usize);
    let mut seen = HashSet::with_capacity(n);
    let mut bots = Vec::with_capacity(n);
    while bots.len() < n {
        let r = rng.next_u64();
        let (prefix, asn, _) = sources[pick_cum(&cum, r as u32)];
        let ip = host_in(prefix, (r >> 32) as u32);
        if !exclude.contains(&ip) && seen.insert(ip) {
            let a = &world.asns[asn as usize];
            let colos = &world.countries[a.country as usize].colos;
            bots.push(Bot { ip, asn, country: a.country, colo: pick_cum(colos, mix(ip)), ua: 0 });
        }
    }
    bots
}

/// One of the /16 prefixes of a network (every network has at least one).
fn a_slash16(world: &World, asn: u16, rng: &mut Pcg64Mcg) -> (u32, u8) {
    let v4 = &world.asns[asn as usize].v4;
    let big: Vec<(u32, u8)> = v4.iter().copied().filter(|p| p.1 <= 16).collect();
    let from = if big.is_empty() { v4.as_slice() } else { big.as_slice() };
    from[below(rng.next_u64() as u32, from.len() as u32) as usize]
}

fn shuffle<T>(v: &mut [T], rng: &mut Pcg64Mcg) {
    for i in (1..v.len()).rev() {
        v.swap(i, below64(rng.next_u64(), i as u64 + 1) as usize);
    }
}

/// The eval scenario's botnets: like [`botnet`] (3–5 countries the site never sees plus one or
/// two hosting networks), or, `single_asn`, every bot in one hosting network's /16s.
fn eval_botnet(
    world: &World,
    site: &Site,
    single_asn: bool,
    exclude: &HashSet<u32>,
    rng: &mut Pcg64Mcg,
) -> (Vec<Bot>, Vec<(u32, u8)>) {
    let mut sources: Vec<((u32, u8), u16, f64)> = Vec::new();
    if single_asn {
        let h = world.hosting[below(rng.next_u64() as u32, world.hosting.len() as u32) as usize];
        for &p in world.asns[h as usize].v4.iter().filter(|p| p.1 <= 16) {
            sources.push((p, h, 1.0));
        }
        if sources.is_empty() {
            sources.push((world.asns[h as usize].v4[0], h, 1.0));
        }
    } else {
        let site_countries: HashSet<u16> = site.country_weights.iter().map(|&(c, _)| c).collect();
        let mut countries: Vec<u16> = BOTNET_COUNTRIES
            .iter()
            .filter_map(|code| world.country_index(code))
            .filter(|c| !site_countries.contains(c))
            .collect();
        shuffle(&mut countries, rng);
        countries.truncate(range_u64(rng, 3, 5) as usize);
        let mut asns: Vec<u16> = countries
            .iter()
            .map(|&c| {
                let table = &world.countries[c as usize].asns;
                table[below(rng.next_u64() as u32, table.len() as u32) as usize].0
            })
            .collect();
        let n_hosting = range_u64(rng, 1, 2);
        while asns.len() < countries.len() + n_hosting as usize {
            let h = world.hosting[below(rng.next_u64() as u32, world.hosting.len() as u32) as usize];
            if !asns.contains(&h) {
                asns.push(h);
            }
        }
        for a in asns {
            sources.push((a_slash16(world, a, rng), a, uniform(rng, 0.5, 2.0)));
        }
    }
    let n = range_u64(rng, 1500, 5000) as usize;
    let bots = fill_pool(world, &sources, n, exclude, rng);
    (bots, sources.iter().map(|s| s.0).collect())
}

/// Credential stuffing's proxies: 3 000 – 8 000 residential IPs in access networks of 8–14
/// countries the site never sees (so no IP of the site's own clients is among them).
fn residential_pool(
    world: &World,
    site: &Site,
    exclude: &HashSet<u32>,
    rng: &mut Pcg64Mcg,
) -> (Vec<Bot>, Vec<(u32, u8)>) {
    let site_countries: HashSet<u16> = site.country_weights.iter().map(|&(c, _)| c).collect();
    let mut countries: Vec<u16> =
        (0..world.countries.len() as u16).filter(|c| !site_countries.contains(c)).collect();
    shuffle(&mut countries, rng);
    countries.truncate(range_u64(rng, 8, 14) as usize);
    let mut sources: Vec<((u32, u8), u16, f64)> = Vec::new();
    for c in countries {
        let table = &world.countries[c as usize].asns;
        let first = below(rng.next_u64() as u32, table.len() as u32) as usize;
        let k = (range_u64(rng, 1, 2) as usize).min(table.len());
        for j in 0..k {
            let a = table[(first + j) % table.len()].0;
            sources.push((a_slash16(world, a, rng), a, uniform(rng, 0.5, 2.0)));
        }
    }
    let n = range_u64(rng, 3000, 8000) as usize;
    let bots = fill_pool(world, &sources, n, exclude, rng);
    (bots, sources.iter().map(|s| s.0).collect())
}

/// A scraper: one to three IPs in one prefix of a hosting network.
fn scrapers(world: &World, exclude: &HashSet<u32>, rng: &mut Pcg64Mcg) -> (Vec<Bot>, Vec<(u32, u8)>) {
    let h = world.hosting[below(rng.next_u64() as u32, world.hosting.len() as u32) as usize];
    let v4 = &world.asns[h as usize].v4;
    let prefix = v4[below(rng.next_u64() as u32, v4.len() as u32) as usize];
    let n = range_u64(rng, 1, 3) as usize;
    (fill_pool(world, &[(prefix, h, 1.0)], n, exclude, rng), vec![prefix])
}

/// One or two agents from `agents`, and each bot's (by its IP).
fn assign_uas(bots: Vec<Bot>, agents: &[Agent], rng: &mut Pcg64Mcg) -> (Vec<Bot>, Vec<Agent>) {
    let n_uas = if rng.next_u64().is_multiple_of(3) { 2 } else { 1 };
    let n_uas = n_uas.min(agents.len());
    let mut picked: Vec<usize> = Vec::new();
    while picked.len() < n_uas {
        let u = below(rng.next_u64() as u32, agents.len() as u32) as usize;
        if !picked.contains(&u) {
            picked.push(u);
        }
    }
    let bots = bots
        .into_iter()
        .map(|mut b| {
            b.ua = below(b.ip.wrapping_mul(0x9e37_79b9), n_uas as u32) as u8;
            b
        })
        .collect();
    (bots, picked.into_iter().map(|u| agents[u]).collect())
}

/// One dynamic URL of the site (among the entries `keep` accepts, if any): method, path, query,
/// random query (false) and class. A form that takes POSTs gets POSTs.
fn dynamic_url(
    site: &Site,
    rng: &mut Pcg64Mcg,
    keep: impl Fn(&super::sites::PathEntry) -> bool,
) -> (&'static str, Vec<u8>, Vec<u8>, bool, Class) {
    let mut dynamic: Vec<usize> =
        (0..site.paths.len()).filter(|&i| !site.paths[i].class.is_static() && keep(&site.paths[i])).collect();
    if dynamic.is_empty() {
        dynamic = (0..site.paths.len()).filter(|&i| !site.paths[i].class.is_static()).collect();
    }
    let e = &site.paths[dynamic[below(rng.next_u64() as u32, dynamic.len() as u32) as usize]];
    let mut path = e.head.to_vec();
    if e.id_max > 0 {
        path.extend_from_slice(below(rng.next_u64() as u32, e.id_max.min(100)).to_string().as_bytes());
        path.extend_from_slice(&e.tail);
    }
    let posts = e.methods.iter().any(|&(m, _)| m == "POST");
    let query = if e.query == Query::Search { b"?q=test".to_vec() } else { Vec::new() };
    (if posts { "POST" } else { "GET" }, path, query, false, e.class)
}

/// The login form credential stuffing posts to.
fn login_path(site: &Site) -> &'static str {
    use super::world::SiteKind;
    match site.kind {
        SiteKind::Blog => "/wp-login.php",
        SiteKind::SaaS => "/login",
        SiteKind::Api => "/api/v1/auth/login",
        SiteKind::Shop | SiteKind::News | SiteKind::Media => "/account/signin",
    }
}

fn mix(ip: u32) -> u32 {
    super::sampling::mix64(ip as u64) as u32
}

/// What an injection is. Everything but `attack` is legitimate: a detector should stay silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InjectionKind {
    /// Malicious traffic (see `vector`).
    Attack,
    /// A legitimate surge of the site's own audience.
    FlashCrowd,
    /// The site's cache was purged: its cacheable requests all miss for a few minutes, at the
    /// usual rate from the usual clients (no extra requests).
    CachePurge,
    /// The site's origin is down for a few minutes (502/522/524 for most requests that reach
    /// it); its own clients retry a little (the extra requests).
    OriginOutage,
    /// A search engine crawler (Googlebot or bingbot from its own network) walking the site's
    /// pages at a steady pace for the whole run.
    Crawler,
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
    /// `ClientRequestPath` of every attack request; empty when the attack walks many pages
    /// (scraping: see `paths`).
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
    /// Scraping: the URL patterns walked, `{id}` standing for ids that count up (so nearly every
    /// request asks for a page not asked for before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
}

/// One injected attack or legitimate event, as ground truth.
///
/// An event belongs to attack `A` exactly when its site is `A.site`, its second
/// (`EdgeStartTimestamp`, floored) is in `A.start_ts..A.end_ts` and its `ClientIP` is one of
/// `A.attackers.ips`: no other event of that site ever uses an attacker's IP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InjectionTruth {
    /// `<kind or vector>-N`, numbered per prefix from 1 in start order: `flood-N` (HTTP floods),
    /// `cache-busting-N`, `credential-stuffing-N`, `scraping-N`, `origin-error-surge-N`,
    /// `flash-crowd-N`, `cache-purge-N`, `origin-outage-N`, `crawler-N`.
    pub id: String,
    pub kind: InjectionKind,
    /// Attacks only: `http_flood`, `cache_busting`, `credential_stuffing`, `scraping` or
    /// `origin_error_surge`.
    pub vector: Option<String>,
    /// Attacks only: the rate curve, `fast` (up in ≤ 10 s, flat, stops), `slow_ramp` (linear
    /// over minutes, short hold, stops) or `burst` (up in ≤ 3 s, under a minute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<String>,
    pub site: String,
    /// 1-based popularity rank of the site.
    pub site_rank: usize,
    /// Event-time window: every event of the injection has `start_ts <= EdgeStartTimestamp <
    /// end_ts` (unix seconds; RFC 3339 in `start` / `end`). While ongoing, `end` is the last event so far.
    /// Cache purges, origin outages and crawlers: the window also covers every second in which the
    /// site's own traffic was changed (or the crawler was present).
    pub start: String,
    pub end: String,
    pub start_ts: i64,
    pub end_ts: i64,
    /// Still emitting when the truth was taken.
    pub ongoing: bool,
    /// Exact number of events emitted by this injection (on top of the site's baseline): 0 for a
    /// cache purge, the retries of an origin outage, every request of a crawler.
    pub requests: u64,
    /// Most events in one second, and that second (unix).
    pub peak_rps: u64,
    pub peak_ts: i64,
    /// The site's expected baseline rate (events/s) when the injection started.
    pub baseline_rps: f64,
    /// Planned peak: attack rate / baseline for floods (eval attacks: after the 50 rps floor),
    /// site total / baseline for flash crowds and origin outages (1 for cache purges), crawler
    /// rate / baseline for crawlers.
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
        let (mut start_ts, mut end_ts) = if self.requests == 0 {
            (timeline_start_ts, timeline_start_ts)
        } else {
            (self.min_ts_ns.div_euclid(1_000_000_000), self.max_ts_ns.div_euclid(1_000_000_000) + 1)
        };
        if matches!(self.body, Body::Effect(_) | Body::Crawler(_)) {
            // The seconds the site's traffic was changed (or the crawler was there) count too.
            let emitted_end = timeline_start_ts + self.timeline.len() as i64;
            if self.requests == 0 {
                (start_ts, end_ts) = (timeline_start_ts, emitted_end);
            } else {
                (start_ts, end_ts) = (start_ts.min(timeline_start_ts), end_ts.max(emitted_end));
            }
        }
        let mut shape = None;
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
                    user_agents: f.uas.iter().map(|u| u.0.to_owned()).collect(),
                    ja3: f.uas.iter().map(|u| u.1.to_owned()).collect(),
                    ja4: f.uas.iter().map(|u| u.2.to_owned()).collect(),
                    blocked_from_ts: f.block_after.map(|b| timeline_start_ts + b as i64),
                    paths: f.walk.as_ref().map(|w| w.patterns(site)),
                };
                shape = Some(f.shape.name().to_owned());
                (InjectionKind::Attack, Some(f.vector.name().to_owned()), Some(attackers), Some(pattern), None)
            }
            Body::Effect(e) => {
                let kind = match e.kind {
                    EffectKind::CachePurge => InjectionKind::CachePurge,
                    EffectKind::OriginOutage => InjectionKind::OriginOutage,
                };
                (kind, None, None, None, None)
            }
            Body::Crawler(_) => (InjectionKind::Crawler, None, None, None, None),
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
            shape,
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

/// `ClientRequestProtocol` and `ClientSSLProtocol` that go with a JA4 fingerprint.
fn protocols(ja4: &str) -> (&'static str, &'static str) {
    let http = if ja4.as_bytes().get(9) == Some(&b'2') { "HTTP/2" } else { "HTTP/1.1" };
    let tls = if ja4.get(1..3) == Some("13") { "TLSv1.3" } else { "TLSv1.2" };
    (http, tls)
}

/// Write `head` + id + `tail` of a path entry.
fn push_path(buf: &mut Vec<u8>, e: &super::sites::PathEntry, id: u32) {
    buf.clear();
    buf.extend_from_slice(&e.head);
    if e.id_max > 0 {
        buf.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
        buf.extend_from_slice(&e.tail);
    }
}

/// The host serving a path entry.
fn host_for<'a>(s: &'a Site, e: &super::sites::PathEntry) -> &'a [u8] {
    if e.host == HostSel::Api && s.kind.has_api_host() { &s.hosts[2] } else { &s.hosts[0] }
}

/// One login attempt of a credential-stuffing attack: mostly rejected (401, some 403), never
/// cached, from a proxy of the pool (all equally busy).
pub(crate) fn credential_event(
    out: &mut Vec<u8>,
    world: &World,
    s: &Site,
    f: &mut Flood,
    rng: &mut Pcg64Mcg,
    ts_ns: i64,
    ray: u64,
) {
    let r = rng.next_u64();
    let r2 = rng.next_u64();
    let bi = below(r as u32, f.bots.len() as u32) as usize;
    f.hits[bi] += 1;
    let bot = f.bots[bi];
    let (ua, ja3, ja4) = f.uas[bot.ua as usize];
    let (protocol, tls) = protocols(ja4);
    let rejected = ((r >> 32) & 0xff) < f.fail_256 as u64;
    let status = if !rejected {
        200
    } else if (r >> 40).is_multiple_of(4) {
        403
    } else {
        401
    };
    let r16 = (r2 >> 48) as u32;
    let bytes = if status == 200 { 900 + (r16 % 700) as u64 } else { 280 + (r16 % 260) as u64 };
    let line = Line {
        bot_score: 2 + (r16 % 28) as u8,
        cache: "dynamic",
        asn: world.asns[bot.asn as usize].number,
        country: world.countries[bot.country as usize].code,
        ip: Ip::V4(bot.ip),
        host: if s.kind.has_api_host() { &s.hosts[2] } else { &s.hosts[0] },
        method: f.method,
        path: &f.path,
        query: &f.query,
        protocol,
        user_agent: ua,
        tls,
        colo: world.colos[bot.colo as usize],
        bytes,
        status,
        ts_ns,
        // Password hashing at the origin.
        ttfb_ms: 120 + (r2 as u32) % 380,
        ja3,
        ja4,
        origin_status: status,
        ray,
        action: "",
        waf: 30 + (r16 % 60) as u8,
        zone: s.name.as_bytes(),
    };
    write_line(out, &line);
}

/// One page of a scraper's walk.
#[allow(clippy::too_many_arguments)]
pub(crate) fn scrape_event(
    out: &mut Vec<u8>,
    world: &World,
    s: &Site,
    f: &mut Flood,
    rng: &mut Pcg64Mcg,
    path_buf: &mut Vec<u8>,
    ts_ns: i64,
    ray: u64,
) {
    let r = rng.next_u64();
    let bi = below(r as u32, f.bots.len() as u32) as usize;
    f.hits[bi] += 1;
    let bot = f.bots[bi];
    let (ua, ja3, ja4) = f.uas[bot.ua as usize];
    let (protocol, tls) = protocols(ja4);
    let (ei, id) = f.walk.as_mut().expect("a scraper walks pages").step(s);
    let e = &s.paths[ei];
    push_path(path_buf, e, id);
    // Walking ids past the end of the catalogue finds a few holes.
    let status = if ((r >> 32) & 0xff) < 8 { 404 } else { 200 };
    let r16 = (r >> 40) as u32 & 0xffff;
    let line = Line {
        bot_score: 3 + (r16 % 20) as u8,
        cache: if e.class.is_static() { "miss" } else { "dynamic" },
        asn: world.asns[bot.asn as usize].number,
        country: world.countries[bot.country as usize].code,
        ip: Ip::V4(bot.ip),
        host: host_for(s, e),
        method: f.method,
        path: path_buf,
        query: b"",
        protocol,
        user_agent: ua,
        tls,
        colo: world.colos[bot.colo as usize],
        bytes: super::response_bytes(e, id, status, (r >> 24) as u32),
        status,
        ts_ns,
        ttfb_ms: 60 + r16 % 500,
        ja3,
        ja4,
        origin_status: status,
        ray,
        action: "",
        waf: 75 + (r16 % 24) as u8,
        zone: s.name.as_bytes(),
    };
    write_line(out, &line);
}

/// One page of a search crawler's walk.
#[allow(clippy::too_many_arguments)]
pub(crate) fn crawler_event(
    out: &mut Vec<u8>,
    world: &World,
    s: &Site,
    c: &mut Crawler,
    rng: &mut Pcg64Mcg,
    path_buf: &mut Vec<u8>,
    ts_ns: i64,
    ray: u64,
) {
    let r = rng.next_u64();
    let ip = c.ips[below(r as u32, c.ips.len() as u32) as usize];
    let (ei, id) = c.walk.step(s);
    let e = &s.paths[ei];
    push_path(path_buf, e, id);
    let x = (r >> 32) & 0xff;
    let status = match x {
        0..5 => 404,
        5..9 => 301,
        9..12 => 304,
        _ => 200,
    };
    let a = &world.asns[c.asn as usize];
    let country = &world.countries[a.country as usize];
    let agent = &USER_AGENTS[c.ua];
    let t = (r >> 40) as u32;
    let (cache, origin, ttfb) = if e.class.is_static() {
        ("hit", 0, 1 + t % 18)
    } else {
        ("dynamic", status, 25 + t % 320)
    };
    let line = Line {
        bot_score: 1,
        cache,
        asn: a.number,
        country: country.code,
        ip: Ip::V4(ip),
        host: host_for(s, e),
        method: "GET",
        path: path_buf,
        query: b"",
        protocol: "HTTP/2",
        user_agent: agent.ua,
        tls: "TLSv1.3",
        colo: world.colos[pick_cum(&country.colos, mix(ip)) as usize],
        bytes: super::response_bytes(e, id, status, t.rotate_left(7)),
        status,
        ts_ns,
        ttfb_ms: ttfb,
        ja3: agent.ja3,
        ja4: agent.ja4,
        origin_status: origin,
        ray,
        action: "",
        waf: 85 + (t % 14) as u8,
        zone: s.name.as_bytes(),
    };
    write_line(out, &line);
}
