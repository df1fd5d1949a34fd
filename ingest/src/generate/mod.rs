//! Synthetic Cloudflare Logpush `http_requests` traffic with ground truth.
//!
//! Owns: the model of many sites' normal traffic and of injected attacks and legitimate surprises
//! (floods, flash crowds, and in the `eval` scenario every attack vector and hard negative), writing
//! it as NDJSON lines (field names as in [`edgelens_schemas::RawEvent`]), and the ground truth of
//! what was injected. Pure library code: no clock, no I/O; the caller decides where bytes go and
//! how fast seconds pass (`edgelens generate` as fast as possible, `edgelens demo` one per
//! wall-clock second).
//!
//! Guarantees:
//! - Deterministic: the same [`GenerateConfig`] yields the same bytes and the same truth.
//! - Every line passes [`edgelens_schemas::parse_line`]; every `RayID` (16 hex digits) is unique
//!   within one generator's output.
//! - Disorder is bounded: every event's `EdgeStartTimestamp` is at least the largest timestamp
//!   of all earlier lines minus `jitter_ms` (which must be below the 5 s the pipeline allows), and
//!   never before `start_ts_secs`. With `jitter_ms >= 1000` the lines of one second are in random
//!   order; below that they come in arrival order, each possibly delayed by up to `jitter_ms`.
//! - Memory does not grow with `duration_secs` (live mode runs with `u64::MAX`): per second only
//!   that second's events are buffered; the truth grows by one entry per injection and, while an
//!   injection emits, by one timeline count per second (the eval crawlers emit for the whole run,
//!   which is one reason eval runs at most 24 h).
//! - Generation stops by itself before event time would leave the accepted range (year 2100).
//!
//! The traffic model, in short: `sites` sites with Zipf(1.1) popularity share `rps` baseline
//! events per second (Poisson per second). Each site's rate follows a daily sine (peak 15:00, trough
//! 03:00 in the site's main timezone); the total stays `rps`, so the curve shifts share between
//! sites. A site has an audience (3–9 countries of its region), clients from those countries'
//! access networks with IPs inside the networks' prefixes and colos of their country, a pool of
//! recurring clients, a URL layout by kind (shop, news, blog, api, media, saas) with cacheable
//! static assets and dynamic pages, and the usual mixes of user agents (with matching JA3/JA4),
//! methods, statuses, cache statuses, sizes and timings. A few requests are blocked by the WAF.
//!
//! Scenarios (see [`Scenario`]) add injections, listed in [`GroundTruth::injections`] once they
//! have started, with exact counts:
//! - flood: a botnet of 1 500–5 000 IPv4 hosts in 3–5 countries the site never sees traffic from
//!   (one access network each) plus one or two hosting networks; one or two user agents / JA3;
//!   either random query strings on `/` (`cache_busting` in the truth) or one dynamic URL
//!   (`http_flood`); ramps linearly to 15–30× the site's
//!   baseline (at least 50 rps) in 6–10 s, holds, stops within 2 s. Half of the floods get
//!   partly blocked by a WAF rule after 20–45 s; the origin degrades (503 / 522 / 524) as it goes.
//! - flash crowd: the site's own audience, mostly new visitors from its usual networks, pushes
//!   the site to 5–10× its baseline; a third of the extra requests go to one hot page, the rest
//!   browse normally; ramps up over a quarter of its length, fades over the last third.
//!
//! The `eval` scenario (for scoring an attack detector; 30 min to 24 h, 60 min recommended, at
//! least 24 sites) runs every attack vector and every hard negative below, 24 injections on 24
//! distinct sites among the 80 most popular (see `eval.rs` for the schedule). Every injection
//! other than the crawlers emits between 10 min into the run and 4 min before its end, in pairs
//! that overlap in time (the pairs spread over the run); the crawlers run from the first second to
//! the last. The run also spans the sites' daily rise (or fall, by timezone) of the daily curve,
//! which is not an injection: normal traffic a detector must take in its stride. Attacks peak at
//! 3–20× the site's baseline, but never below 50 rps (on a quiet site the floor makes the factor in
//! the truth larger); every attacker IP belongs to one attack only and is never used by anyone else
//! on that site (it lies in networks the site's own clients never come from), so an event is
//! attack `A`'s exactly when its site, second and client IP match `A` (see [`InjectionTruth`]):
//! - `http_flood`, shape `fast`, ×3: the flood above on one dynamic URL (fixed, no random query),
//!   8–20×, 2.5–4 min; one of them with every bot in one hosting network's /16s.
//! - `http_flood`, shape `slow_ramp`, ×2: linear ramp over 4–8 min to 4–8×, hold 1–2 min, stop.
//! - `http_flood`, shape `burst`, ×3: 30–60 s, up in 2–3 s, 5–20×.
//! - `cache_busting`, ×2: the flood with random query strings on `/` (never blocked, so every
//!   response is `dynamic`), 6–15×, 2.5–4 min.
//! - `credential_stuffing`, ×2: POSTs to one login path (`/login`, `/wp-login.php`,
//!   `/api/v1/auth/login` or `/account/signin` by site kind) from 3 000–8 000 residential IPs in
//!   access networks of 8–14 countries the site never sees, one or two automation user agents;
//!   73–88% answered 401/403, the rest 200; never cached; 3–8×, 3–5 min.
//! - `scraping`, ×2: one to three IPs in one hosting prefix, the user agent `Mozilla/5.0
//!   (compatible; DataHarvest/3.2; +http://example.net/bot)`, GETs walking the site's pages
//!   (ids counting up: hundreds to thousands of distinct paths), 3–8×, 3–5 min.
//! - `origin_error_surge`, ×1: a botnet flood on one uncacheable dynamic URL, 6–12×, 2.5–4 min,
//!   on a site most of whose requests go to the origin (an API or app if there is one); from 3–6 s
//!   in the origin gives way: most attack responses and, within seconds, 70–86% of the site's own
//!   requests that reach the origin fail with 502/503/504 (origin status the same) or 522/524
//!   (origin status 0).
//!
//! Hard negatives, legitimate (`kind` other than `attack`):
//! - `flash_crowd`, ×3: as above, 5–10×, 4–6 min, on web (non-API) sites.
//! - `cache_purge`, ×2: for 2–5 min every cacheable request of the site is a `miss` (origin
//!   status set, slower first byte); same rate, same clients, no extra requests.
//! - `origin_outage`, ×2: for 3–5 min 78–90% of the site's requests that reach the origin fail
//!   with 502/522/524; the site's own clients retry (10–20% extra requests, the injection's count).
//! - `crawler`, ×2: Googlebot (AS15169) and bingbot (AS8075), 4–10 IPs in one /24 of the
//!   crawler's network, GETs walking the site's pages at 0.5–1× its baseline for the whole run.

mod eval;
mod inject;
mod line;
mod sampling;
mod sites;
mod world;

use std::fmt;
use std::str::FromStr;

use rand::{RngCore, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};

pub use inject::{AttackerCount, AttackerSet, InjectionKind, InjectionTruth, RequestPattern};

use eval::{EvalItem, EVAL_INJECTIONS, EVAL_MAX_DURATION, EVAL_MIN_DURATION, EVAL_SITE_RANKS};
use inject::{AttackPlan, Body, EffectKind, Injection, SiteEffect};
use line::{push_hex_fixed, write_line, Line};
use sampling::{below, below64, mix64, poisson, range_u64, uniform, AliasTable};
use sites::{zipf_shares, Site};
use world::{pick_cum, Class, HostSel, Query, SiteKind, World, SEARCH_WORDS, USER_AGENTS, UTM_SOURCES};

/// What happens on top of the baseline traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Normal traffic only.
    Baseline,
    /// One volumetric HTTP flood on one of the 20 most popular sites, starting after a quarter of
    /// the duration (at most 30 min in) and lasting 3–4 min (less if the run is short).
    Flood,
    /// One flash crowd on a popular (rank 2–15) web site, starting after a quarter of the duration
    /// and lasting 4–6 min (less if the run is short).
    FlashCrowd,
    /// A flood and, overlapping it, a flash crowd on a different site.
    Mixed,
    /// Live demo: a flood on one of the top-20 sites every ~4 min (first after ~90 s) lasting
    /// ~60 s, and a flash crowd every 7–11 min (first after ~5.5 min) lasting 2–3 min.
    Demo,
    /// Detector evaluation: every attack vector and every hard negative (flash crowd, cache
    /// purge, origin outage, search crawler) on distinct popular sites, with exact ground truth.
    /// Runs 30 min to 24 h (60 min recommended) on at least 24 sites. See the module docs.
    Eval,
}

impl Scenario {
    pub const ALL: [Scenario; 6] =
        [Scenario::Baseline, Scenario::Flood, Scenario::FlashCrowd, Scenario::Mixed, Scenario::Demo, Scenario::Eval];

    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Baseline => "baseline",
            Scenario::Flood => "flood",
            Scenario::FlashCrowd => "flash-crowd",
            Scenario::Mixed => "mixed",
            Scenario::Demo => "demo",
            Scenario::Eval => "eval",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scenario {
    type Err = GenerateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        Scenario::ALL
            .into_iter()
            .find(|sc| sc.as_str().eq_ignore_ascii_case(t) || (t.eq_ignore_ascii_case("flash_crowd") && *sc == Scenario::FlashCrowd))
            .ok_or_else(|| GenerateError::UnknownScenario(s.to_owned()))
    }
}

/// Generator settings. `Default` gives the CLI defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateConfig {
    pub scenario: Scenario,
    pub seed: u64,
    /// Event time of the first second (unix seconds).
    pub start_ts_secs: i64,
    /// Seconds of event time to generate; [`LIVE_DURATION`] for an endless live stream.
    pub duration_secs: u64,
    /// Mean baseline events per second, all sites together (injections come on top).
    pub rps: f64,
    pub sites: usize,
    /// Maximum out-of-order displacement in event time, in ms; below 5000.
    pub jitter_ms: u32,
}

/// `duration_secs` of a live stream that runs until stopped.
pub const LIVE_DURATION: u64 = u64::MAX;
/// Largest accepted `jitter_ms`: the pipeline tolerates 5 s of disorder.
pub const MAX_JITTER_MS: u32 = 4999;
/// Largest accepted number of sites.
pub const MAX_SITES: usize = 1_000_000;
/// Largest accepted `rps`.
pub const MAX_RPS: f64 = 50_000_000.0;

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig {
            scenario: Scenario::Baseline,
            seed: 1,
            start_ts_secs: 1_793_491_200, // 2026-11-01T00:00:00Z
            duration_secs: 600,
            rps: 1000.0,
            sites: 1000,
            jitter_ms: 1500,
        }
    }
}

/// A config the generator refuses, or an unknown scenario name. Never retryable: the same input
/// fails the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenerateError {
    #[error("unknown scenario {0:?} (expected one of baseline, flood, flash-crowd, mixed, demo, eval)")]
    UnknownScenario(String),
    #[error("invalid generator config: {0}")]
    InvalidConfig(String),
}

impl GenerateError {
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// Everything injected so far, with exact counts. Serializes to the `--truth` JSON file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    /// Version of this format.
    pub format: u32,
    pub scenario: Scenario,
    pub seed: u64,
    /// First second of event time (RFC 3339 and unix seconds).
    pub start: String,
    pub start_ts: i64,
    /// Configured duration (`null` for a live stream).
    pub duration_secs: Option<u64>,
    /// Seconds generated so far.
    pub seconds_generated: u64,
    pub rps: f64,
    pub sites: usize,
    pub jitter_ms: u32,
    /// Lines written so far; `baseline_events` of them are normal traffic, the rest are counted
    /// in `injections[].requests`.
    pub total_events: u64,
    pub baseline_events: u64,
    /// Injections that have started, in start order.
    pub injections: Vec<InjectionTruth>,
}

/// A site as the generator models it (for the demo's site registry and for tests).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteProfile {
    pub name: String,
    /// 1-based popularity rank.
    pub rank: usize,
    /// Share of baseline traffic over a day.
    pub share: f64,
    /// shop, news, blog, api, media or saas.
    pub kind: String,
    pub region: String,
    /// UTC offset of the site's main audience, minutes.
    pub utc_offset_minutes: i32,
    /// Audience countries with their shares, largest first.
    pub countries: Vec<(String, f64)>,
    /// Every ASN the site's normal traffic (and its flash crowds) come from, sorted.
    pub asns: Vec<u32>,
    /// Host names requests use.
    pub hosts: Vec<String>,
}

/// Slot layout: event time offset in the second (30 bits) | source (10 bits) | site (24 bits).
const SLOT_SITE_BITS: u32 = 24;
const SLOT_SRC_BITS: u32 = 10;
const SLOT_TIME_SHIFT: u32 = SLOT_SITE_BITS + SLOT_SRC_BITS;
const NANOS: i64 = 1_000_000_000;
/// Amplitude of the daily curve: the rate swings ±45% around the site's daily mean.
const DIURNAL_AMPLITUDE: f64 = 0.45;
/// Share of events delivered late (displaced back in event time), in 1/256.
const LATE_SHARE_256: u64 = 26;
/// Seconds between rebuilds of the site sampling table (the daily curve moves slowly).
const ALIAS_REFRESH_SECS: i64 = 10;

/// Streams a scenario second by second. See the module docs.
pub struct TrafficGenerator {
    cfg: GenerateConfig,
    world: World,
    sites: Vec<Site>,
    /// Distinct timezones (minutes) and the total share of the sites in each.
    tz_minutes: Vec<i32>,
    tz_share: Vec<f64>,
    alias: AliasTable,
    alias_ts: Option<i64>,
    rng: Pcg64Mcg,
    sched_rng: Pcg64Mcg,
    sec: u64,
    ray_base: u64,
    ray_counter: u64,
    /// Started injections (the truth), in start order.
    injections: Vec<Injection>,
    /// Planned, not yet started; the next one last.
    pending: Vec<Injection>,
    /// Indices into `injections` still emitting.
    active: Vec<usize>,
    demo_next_flood: u64,
    demo_next_crowd: u64,
    floods: usize,
    crowds: usize,
    slots: Vec<u64>,
    path_buf: Vec<u8>,
    query_buf: Vec<u8>,
    total_events: u64,
    /// Per-site scratch for the daily factor while rebuilding the alias table.
    tz_factor: Vec<f64>,
    /// How active injections change their sites' own requests this second (eval only).
    site_effects: Vec<SiteEffect>,
}

fn stream_rng(seed: u64, stream: u64) -> Pcg64Mcg {
    Pcg64Mcg::seed_from_u64(mix64(seed ^ mix64(stream)))
}

/// Daily factor (mean 1 over a day) at unix second `ts` for a timezone.
fn diurnal(ts: i64, tz_minutes: i32) -> f64 {
    let local = (ts + tz_minutes as i64 * 60).rem_euclid(86_400) as f64 / 86_400.0;
    1.0 + DIURNAL_AMPLITUDE * (std::f64::consts::TAU * (local - 9.0 / 24.0)).sin()
}

fn validate(cfg: &GenerateConfig) -> Result<(), GenerateError> {
    let mut errs = Vec::new();
    let max_start = edgelens_schemas::time::MAX_TS / NANOS;
    let min_start = edgelens_schemas::time::MIN_TS / NANOS;
    if !(min_start..max_start).contains(&cfg.start_ts_secs) {
        errs.push(format!("start_ts_secs {} is not between 2000 and 2100", cfg.start_ts_secs));
    }
    if cfg.duration_secs == 0 {
        errs.push("duration_secs must be at least 1".to_owned());
    }
    if !(cfg.rps.is_finite() && cfg.rps > 0.0 && cfg.rps <= MAX_RPS) {
        errs.push(format!("rps {} must be above 0 and at most {MAX_RPS}", cfg.rps));
    }
    if !(1..=MAX_SITES).contains(&cfg.sites) {
        errs.push(format!("sites {} must be between 1 and {MAX_SITES}", cfg.sites));
    }
    if cfg.jitter_ms > MAX_JITTER_MS {
        errs.push(format!("jitter_ms {} must be below 5000 (the pipeline allows 5 s of disorder)", cfg.jitter_ms));
    }
    let min_duration = match cfg.scenario {
        Scenario::Flood | Scenario::FlashCrowd => 60,
        Scenario::Mixed => 120,
        Scenario::Eval => EVAL_MIN_DURATION,
        Scenario::Baseline | Scenario::Demo => 1,
    };
    if cfg.duration_secs < min_duration {
        errs.push(format!("scenario {} needs a duration of at least {min_duration} s", cfg.scenario));
    }
    if cfg.scenario == Scenario::Eval && cfg.duration_secs > EVAL_MAX_DURATION {
        errs.push(format!("scenario eval runs at most {EVAL_MAX_DURATION} s (no live stream)"));
    }
    if cfg.scenario == Scenario::Mixed && cfg.sites < 2 {
        errs.push("scenario mixed needs at least 2 sites".to_owned());
    }
    if cfg.scenario == Scenario::Eval && cfg.sites < EVAL_INJECTIONS {
        errs.push(format!("scenario eval needs at least {EVAL_INJECTIONS} sites (one per injection)"));
    }
    if errs.is_empty() { Ok(()) } else { Err(GenerateError::InvalidConfig(errs.join("; "))) }
}

impl TrafficGenerator {
    pub fn new(cfg: GenerateConfig) -> Result<Self, GenerateError> {
        validate(&cfg)?;
        let world = World::build();
        let shares = zipf_shares(cfg.sites);
        let mut site_rng = stream_rng(cfg.seed, 1);
        let mut taken = std::collections::HashSet::with_capacity(cfg.sites);
        let mut sites: Vec<Site> = shares
            .iter()
            .enumerate()
            .map(|(i, &share)| Site::build(&world, i, share, cfg.rps * share, &mut site_rng, &mut taken))
            .collect();
        let mut tz_minutes: Vec<i32> = sites.iter().map(|s| s.tz_minutes).collect();
        tz_minutes.sort_unstable();
        tz_minutes.dedup();
        let mut tz_share = vec![0.0; tz_minutes.len()];
        for s in &mut sites {
            s.tz_group = tz_minutes.binary_search(&s.tz_minutes).expect("listed");
            tz_share[s.tz_group] += s.share;
        }
        let mut ray_rng = stream_rng(cfg.seed, 4);
        let mut g = TrafficGenerator {
            world,
            sites,
            tz_factor: vec![0.0; tz_minutes.len()],
            tz_minutes,
            tz_share,
            alias: AliasTable::default(),
            alias_ts: None,
            rng: stream_rng(cfg.seed, 2),
            sched_rng: stream_rng(cfg.seed, 3),
            sec: 0,
            ray_base: ray_rng.next_u64(),
            ray_counter: 0,
            injections: Vec::new(),
            pending: Vec::new(),
            active: Vec::new(),
            demo_next_flood: 0,
            demo_next_crowd: 0,
            floods: 0,
            crowds: 0,
            slots: Vec::new(),
            path_buf: Vec::with_capacity(256),
            query_buf: Vec::with_capacity(64),
            total_events: 0,
            site_effects: Vec::new(),
            cfg,
        };
        g.plan();
        Ok(g)
    }

    pub fn config(&self) -> &GenerateConfig {
        &self.cfg
    }

    /// Seconds generated so far.
    pub fn seconds_generated(&self) -> u64 {
        self.sec
    }

    /// Lines written so far.
    pub fn events_generated(&self) -> u64 {
        self.total_events
    }

    /// Unix second the next [`next_second`](Self::next_second) call generates.
    pub fn next_ts_secs(&self) -> i64 {
        self.cfg.start_ts_secs.saturating_add(i64::try_from(self.sec).unwrap_or(i64::MAX))
    }

    /// Profiles of all sites, most popular first.
    pub fn site_profiles(&self) -> Vec<SiteProfile> {
        self.sites
            .iter()
            .map(|s| SiteProfile {
                name: s.name.clone(),
                rank: s.rank,
                share: s.share,
                kind: s.kind.name().to_owned(),
                region: s.region.name().to_owned(),
                utc_offset_minutes: s.tz_minutes,
                countries: s
                    .country_weights
                    .iter()
                    .map(|&(c, w)| (self.world.countries[c as usize].code.to_owned(), w))
                    .collect(),
                asns: {
                    let mut v: Vec<u32> =
                        s.asn_indices(&self.world).iter().map(|&a| self.world.asns[a as usize].number).collect();
                    v.sort_unstable();
                    v
                },
                hosts: s.hosts.iter().map(|h| String::from_utf8_lossy(h).into_owned()).collect(),
            })
            .collect()
    }

    /// Expected baseline events per second of `site` at unix second `ts_secs`.
    pub fn site_baseline_rps(&self, site: &str, ts_secs: i64) -> Option<f64> {
        self.sites.iter().position(|s| s.name == site).map(|i| self.site_rate(i, ts_secs))
    }

    fn site_rate(&self, i: usize, ts: i64) -> f64 {
        let norm: f64 =
            self.tz_minutes.iter().zip(&self.tz_share).map(|(&tz, &w)| w * diurnal(ts, tz)).sum();
        let s = &self.sites[i];
        self.cfg.rps * s.share * diurnal(ts, s.tz_minutes) / norm
    }

    /// Ground truth so far: every injection that has started, with its counts up to now.
    pub fn truth(&self) -> GroundTruth {
        let start = self.cfg.start_ts_secs;
        let injected: u64 = self.injections.iter().map(|i| i.requests).sum();
        GroundTruth {
            format: 1,
            scenario: self.cfg.scenario,
            seed: self.cfg.seed,
            start: chrono::DateTime::from_timestamp(start, 0)
                .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default(),
            start_ts: start,
            duration_secs: (self.cfg.duration_secs != LIVE_DURATION).then_some(self.cfg.duration_secs),
            seconds_generated: self.sec,
            rps: self.cfg.rps,
            sites: self.cfg.sites,
            jitter_ms: self.cfg.jitter_ms,
            total_events: self.total_events,
            baseline_events: self.total_events - injected,
            injections: self
                .injections
                .iter()
                .enumerate()
                .map(|(i, inj)| inj.truth(&self.world, &self.sites, start, self.active.contains(&i)))
                .collect(),
        }
    }

    /// Plan the injections of a fixed scenario (the demo plans as it goes).
    fn plan(&mut self) {
        if self.cfg.scenario == Scenario::Eval {
            self.plan_eval();
            return;
        }
        let d = self.cfg.duration_secs;
        let n = self.sites.len();
        // Leave the detector some calm traffic after the injections too.
        let tail = (d / 10).clamp(10, 60);
        let mut planned = Vec::new();
        let mut flood_site = None;
        if matches!(self.cfg.scenario, Scenario::Flood | Scenario::Mixed) {
            let start = (d / 4).min(1800) + range_u64(&mut self.sched_rng, 0, (d / 20).min(30));
            let len = range_u64(&mut self.sched_rng, 180, 240).min(d - start - tail) as u32;
            let site = below(self.sched_rng.next_u64() as u32, n.min(20) as u32) as usize;
            flood_site = Some(site);
            planned.push(self.new_flood(site, start, len));
        }
        if matches!(self.cfg.scenario, Scenario::FlashCrowd | Scenario::Mixed) {
            let start = if self.cfg.scenario == Scenario::Mixed {
                (d / 3).min(2400) + range_u64(&mut self.sched_rng, 0, (d / 20).min(30))
            } else {
                (d / 4).min(1800) + range_u64(&mut self.sched_rng, 0, (d / 20).min(30))
            };
            let len = range_u64(&mut self.sched_rng, 240, 360).min(d - start - tail) as u32;
            let site = self.pick_crowd_site(flood_site);
            let factor = uniform(&mut self.sched_rng, 6.0, 9.0);
            planned.push(self.new_crowd(site, start, len, factor));
        }
        planned.sort_by_key(|i| std::cmp::Reverse(i.start_sec));
        self.pending = planned;
        if self.cfg.scenario == Scenario::Demo {
            self.demo_next_flood = range_u64(&mut self.sched_rng, 80, 100);
            self.demo_next_crowd = range_u64(&mut self.sched_rng, 300, 360);
        }
    }

    /// The eval scenario: every injection of its schedule, numbered per id prefix in start order.
    fn plan_eval(&mut self) {
        let traits: Vec<eval::SiteTraits> = self
            .sites
            .iter()
            .take(EVAL_SITE_RANKS)
            .map(|s| {
                let mut prev = 0u64;
                let mut dynamic = 0u64;
                for (e, &th) in s.paths.iter().zip(&s.path_cum) {
                    if !e.class.is_static() {
                        dynamic += th as u64 - prev;
                    }
                    prev = th as u64;
                }
                eval::SiteTraits { api: s.kind == SiteKind::Api, dynamic_share: dynamic as f64 / u32::MAX as f64 }
            })
            .collect();
        let slots = eval::schedule(self.cfg.duration_secs, &traits, &mut self.sched_rng);
        let mut taken = std::collections::HashSet::new();
        let mut numbers: Vec<(&'static str, usize)> = Vec::new();
        let mut planned = Vec::with_capacity(slots.len());
        for slot in slots {
            let prefix = slot.item.id_prefix();
            let number = match numbers.iter_mut().find(|n| n.0 == prefix) {
                Some(n) => {
                    n.1 += 1;
                    n.1
                }
                None => {
                    numbers.push((prefix, 1));
                    1
                }
            };
            let id = format!("{prefix}-{number}");
            let baseline = self.site_rate(slot.site, self.cfg.start_ts_secs + slot.start as i64);
            let rng = &mut self.sched_rng;
            let site = &self.sites[slot.site];
            let inj = match slot.item {
                EvalItem::Attack { vector, shape, single_asn } => {
                    let plan = AttackPlan {
                        vector,
                        shape,
                        single_asn,
                        start: slot.start,
                        len: slot.len,
                        ramp_up: slot.ramp_up,
                        factor: slot.factor,
                    };
                    Injection::attack(id, &self.world, site, slot.site, plan, baseline, &mut taken, rng)
                }
                EvalItem::FlashCrowd => {
                    Injection::crowd(number, site, slot.site, slot.start, slot.len, baseline, slot.factor, rng)
                }
                EvalItem::CachePurge | EvalItem::OriginOutage => {
                    let kind =
                        if slot.item == EvalItem::CachePurge { EffectKind::CachePurge } else { EffectKind::OriginOutage };
                    Injection::effect(id, kind, slot.site, slot.start, slot.len, baseline, slot.factor, rng)
                }
                EvalItem::Crawler { which } => {
                    Injection::crawler(id, &self.world, site, slot.site, which, slot.len, baseline, slot.factor, rng)
                }
            };
            planned.push(inj);
        }
        // The next one last.
        planned.reverse();
        self.pending = planned;
    }

    fn new_flood(&mut self, site: usize, start: u64, len: u32) -> Injection {
        self.floods += 1;
        let baseline = self.site_rate(site, self.cfg.start_ts_secs + start as i64);
        Injection::flood(self.floods, &self.world, &self.sites[site], site, start, len, baseline, &mut self.sched_rng)
    }

    fn new_crowd(&mut self, site: usize, start: u64, len: u32, factor: f64) -> Injection {
        self.crowds += 1;
        let baseline = self.site_rate(site, self.cfg.start_ts_secs + start as i64);
        Injection::crowd(self.crowds, &self.sites[site], site, start, len, baseline, factor, &mut self.sched_rng)
    }

    /// A popular (rank 2–15) web site, not `avoid` and not under another injection.
    fn pick_crowd_site(&mut self, avoid: Option<usize>) -> usize {
        let n = self.sites.len();
        let (lo, hi) = if n > 2 { (1, n.min(15)) } else { (0, n) };
        let busy: Vec<usize> = self.active.iter().map(|&i| self.injections[i].site).chain(avoid).collect();
        let mut fallback = None;
        for _ in 0..64 {
            let s = lo + below(self.sched_rng.next_u64() as u32, (hi - lo) as u32) as usize;
            if busy.contains(&s) {
                continue;
            }
            if self.sites[s].kind != SiteKind::Api {
                return s;
            }
            fallback.get_or_insert(s);
        }
        fallback.unwrap_or_else(|| (0..n).find(|s| !busy.contains(s)).unwrap_or(0))
    }

    /// Demo: start the next flood / flash crowd when due.
    fn schedule_demo(&mut self, sec: u64) {
        if sec == self.demo_next_flood {
            let n = self.sites.len();
            let busy: Vec<usize> = self.active.iter().map(|&i| self.injections[i].site).collect();
            let mut site = below(self.sched_rng.next_u64() as u32, n.min(20) as u32) as usize;
            for _ in 0..16 {
                if !busy.contains(&site) {
                    break;
                }
                site = below(self.sched_rng.next_u64() as u32, n.min(20) as u32) as usize;
            }
            let len = range_u64(&mut self.sched_rng, 50, 70) as u32;
            let inj = self.new_flood(site, sec, len);
            self.pending.push(inj);
            self.demo_next_flood = sec + range_u64(&mut self.sched_rng, 210, 270);
        }
        if sec == self.demo_next_crowd {
            let site = self.pick_crowd_site(None);
            let len = range_u64(&mut self.sched_rng, 120, 180) as u32;
            let factor = uniform(&mut self.sched_rng, 5.0, 8.0);
            let inj = self.new_crowd(site, sec, len, factor);
            self.pending.push(inj);
            self.demo_next_crowd = sec + range_u64(&mut self.sched_rng, 420, 660);
        }
    }

    fn rebuild_alias(&mut self, ts: i64) {
        for (f, &tz) in self.tz_factor.iter_mut().zip(&self.tz_minutes) {
            *f = diurnal(ts, tz);
        }
        let tz_factor = &self.tz_factor;
        self.alias.rebuild(self.sites.iter().map(|s| s.share * tz_factor[s.tz_group]));
        self.alias_ts = Some(ts);
    }

    /// Append the NDJSON lines (each ending in `\n`) for the next second of event time; returns
    /// the number of events written, or `None` when the duration is over (or event time would
    /// pass the year 2100).
    pub fn next_second(&mut self, out: &mut Vec<u8>) -> Option<usize> {
        let sec = self.sec;
        if sec >= self.cfg.duration_secs {
            return None;
        }
        let ts = self.cfg.start_ts_secs.checked_add(i64::try_from(sec).ok()?)?;
        if ts >= edgelens_schemas::time::MAX_TS / NANOS - 1 {
            return None;
        }
        if self.alias_ts.is_none_or(|t| ts - t >= ALIAS_REFRESH_SECS) {
            self.rebuild_alias(ts);
        }
        if self.cfg.scenario == Scenario::Demo {
            self.schedule_demo(sec);
        }
        while self.pending.last().is_some_and(|p| p.start_sec <= sec) {
            let inj = self.pending.pop().expect("checked");
            self.injections.push(inj);
            self.active.push(self.injections.len() - 1);
        }
        self.site_effects.clear();
        for &ii in &self.active {
            if let Some(fx) = self.injections[ii].site_effect(sec) {
                self.site_effects.push(fx);
            }
        }

        let mut slots = std::mem::take(&mut self.slots);
        slots.clear();
        let n_base = poisson(&mut self.rng, self.cfg.rps);
        slots.reserve(n_base as usize);
        for _ in 0..n_base {
            let r = self.rng.next_u64();
            let site = self.alias.sample(r) as u64;
            let t0 = below(self.rng.next_u64() as u32, NANOS as u32) as u64;
            slots.push((t0 << SLOT_TIME_SHIFT) | site);
        }
        for (ai, &ii) in self.active.iter().enumerate() {
            let inj = &mut self.injections[ii];
            let k = (sec - inj.start_sec) as u32;
            let rate = inj.rate(k, &mut self.rng);
            let n = poisson(&mut self.rng, rate);
            inj.timeline.push(n as u32);
            let src = ((ai as u64 + 1) & ((1 << SLOT_SRC_BITS) - 1)) << SLOT_SITE_BITS;
            slots.reserve(n as usize);
            for _ in 0..n {
                let t0 = below(self.rng.next_u64() as u32, NANOS as u32) as u64;
                slots.push((t0 << SLOT_TIME_SHIFT) | src | inj.site as u64);
            }
        }
        // Random order within the second when the jitter allows a full second of disorder,
        // arrival order otherwise.
        let shuffle = self.cfg.jitter_ms >= 1000;
        if shuffle {
            for i in (1..slots.len()).rev() {
                let j = below64(self.rng.next_u64(), i as u64 + 1) as usize;
                slots.swap(i, j);
            }
        } else {
            slots.sort_unstable();
        }
        let max_delay_ns = if shuffle { self.cfg.jitter_ms as u64 - 1000 } else { self.cfg.jitter_ms as u64 } * 1_000_000;
        let sec_ns = ts * NANOS;
        let floor_ns = self.cfg.start_ts_secs * NANOS;

        out.reserve(slots.len() * 720);
        for &slot in &slots {
            let site = (slot & ((1 << SLOT_SITE_BITS) - 1)) as usize;
            let src = ((slot >> SLOT_SITE_BITS) & ((1 << SLOT_SRC_BITS) - 1)) as usize;
            let t0 = (slot >> SLOT_TIME_SHIFT) as i64;
            let r = self.rng.next_u64();
            let delay = if max_delay_ns > 0 && (r & 0xff) < LATE_SHARE_256 {
                below64(self.rng.next_u64(), max_delay_ns + 1) as i64
            } else {
                0
            };
            let ts_ns = (sec_ns + t0 - delay).max(floor_ns);
            let ray = mix64(self.ray_base.wrapping_add(self.ray_counter));
            self.ray_counter += 1;
            if src == 0 {
                let key = self.sites[site].baseline_key(self.rng.next_u64());
                self.legit_event(out, site, key, None, ts_ns, ray);
            } else {
                let ii = self.active[src - 1];
                self.injections[ii].record(ts_ns);
                let k = (sec - self.injections[ii].start_sec) as u32;
                self.injected_event(out, ii, k, ts_ns, ray);
            }
        }
        let count = slots.len();
        self.slots = slots;
        let injections = &self.injections;
        self.active.retain(|&i| injections[i].end_sec() > sec + 1);
        self.total_events += count as u64;
        self.sec += 1;
        Some(count)
    }

    fn injected_event(&mut self, out: &mut Vec<u8>, ii: usize, k: u32, ts_ns: i64, ray: u64) {
        let site = self.injections[ii].site;
        match &mut self.injections[ii].body {
            Body::Effect(_) => {
                // A retry of one of the site's own clients (to an origin that is down).
                let key = self.sites[site].baseline_key(self.rng.next_u64());
                self.legit_event(out, site, key, None, ts_ns, ray);
                return;
            }
            Body::Crawler(c) => {
                inject::crawler_event(out, &self.world, &self.sites[site], c, &mut self.rng, &mut self.path_buf, ts_ns, ray);
                return;
            }
            Body::Flood(f) if f.vector == inject::Vector::CredentialStuffing => {
                inject::credential_event(out, &self.world, &self.sites[site], f, &mut self.rng, ts_ns, ray);
                return;
            }
            Body::Flood(f) if f.vector == inject::Vector::Scraping => {
                inject::scrape_event(out, &self.world, &self.sites[site], f, &mut self.rng, &mut self.path_buf, ts_ns, ray);
                return;
            }
            Body::Flood(_) | Body::Crowd(_) => {}
        }
        if let Body::Crowd(c) = &self.injections[ii].body {
            let (key_base, pool, hot_page) = (c.key_base, c.pool, (c.hot_entry, c.hot_id));
            let r = self.rng.next_u64();
            // Mostly new visitors (from the site's usual networks), some regulars.
            let key = if (r as u32) < (u32::MAX / 4) * 3 {
                key_base + below64(r, pool)
            } else {
                self.sites[site].baseline_key(mix64(r))
            };
            let hot = ((r >> 32) as u32) < u32::MAX / 3;
            self.legit_event(out, site, key, hot.then_some(hot_page), ts_ns, ray);
            return;
        }
        match &mut self.injections[ii].body {
            Body::Crowd(_) | Body::Effect(_) | Body::Crawler(_) => unreachable!("handled above"),
            Body::Flood(f) => {
                let rng = &mut self.rng;
                let r = rng.next_u64();
                let r2 = rng.next_u64();
                let bi = Injection::pick_bot(f.bots.len(), r as u32);
                f.hits[bi] += 1;
                let bot = f.bots[bi];
                let (ua, ja3, ja4) = f.uas[bot.ua as usize];
                self.query_buf.clear();
                if f.random_query {
                    self.query_buf.push(b'?');
                    push_hex_fixed(&mut self.query_buf, r2, 8);
                    self.query_buf.push(b'=');
                    push_hex_fixed(&mut self.query_buf, r2 >> 32, 8);
                } else {
                    self.query_buf.extend_from_slice(&f.query);
                }
                let blocked = f.block_after.is_some_and(|b| k >= b) && ((r >> 32) & 0xff) < 90;
                let surge = f.vector == inject::Vector::OriginErrorSurge;
                // The origin degrades as the flood goes on (gives way within seconds in a surge).
                let err_256 = if !surge {
                    (k as u64 * 256 / 300).min(80)
                } else if k < f.onset {
                    0
                } else {
                    ((k - f.onset + 1) as u64 * 48).min(224)
                };
                let e = (r >> 40) & 0xff;
                let (status, origin, cache, action) = if blocked {
                    (403, 0, "unknown", "block")
                } else if e < err_256 && surge {
                    match e % 5 {
                        0 => (502, 502, "dynamic", ""),
                        1 => (503, 503, "dynamic", ""),
                        2 => (504, 504, "dynamic", ""),
                        3 => (522, 0, "dynamic", ""),
                        _ => (524, 0, "dynamic", ""),
                    }
                } else if e < err_256 {
                    match e % 8 {
                        0 => (522, 0, "dynamic", ""),
                        1 => (524, 0, "dynamic", ""),
                        _ => (503, 503, "dynamic", ""),
                    }
                } else {
                    (200, 200, if f.class.is_static() { "hit" } else { "dynamic" }, "")
                };
                let r16 = (r2 >> 48) as u32;
                let (bytes, ttfb) = match status {
                    200 => (18_000 + (r16 % 4000) as u64, 250 + (k * 12).min(2500) + r16 % 300),
                    403 => (4_200 + (r16 % 900) as u64, 1 + r16 % 8),
                    503 => (600 + (r16 % 500) as u64, 40 + r16 % 200),
                    502 | 504 => (600 + (r16 % 1900) as u64, 30 + r16 % 3000),
                    522 => (3_300 + (r16 % 600) as u64, 15_000 + r16 % 4000),
                    _ => (3_300 + (r16 % 600) as u64, 100_000 + r16 % 500),
                };
                let s = &self.sites[site];
                let line = Line {
                    bot_score: 1 + (r16 % 9) as u8,
                    cache,
                    asn: self.world.asns[bot.asn as usize].number,
                    country: self.world.countries[bot.country as usize].code,
                    ip: sites::Ip::V4(bot.ip),
                    host: &s.hosts[0],
                    method: f.method,
                    path: &f.path,
                    query: &self.query_buf,
                    protocol: if ja4.as_bytes()[9] == b'2' { "HTTP/2" } else { "HTTP/1.1" },
                    user_agent: ua,
                    tls: if &ja4[1..3] == "13" { "TLSv1.3" } else { "TLSv1.2" },
                    colo: self.world.colos[bot.colo as usize],
                    bytes,
                    status,
                    ts_ns,
                    ttfb_ms: ttfb,
                    ja3,
                    ja4,
                    origin_status: origin,
                    ray,
                    action,
                    waf: 70 + (r16 % 30) as u8,
                    zone: s.name.as_bytes(),
                };
                write_line(out, &line);
            }
        }
    }

    /// One request of the site's audience: client `key`, a path from the site's mix (or the
    /// forced page), and the usual outcome mixes.
    fn legit_event(&mut self, out: &mut Vec<u8>, site: usize, key: u64, forced: Option<(usize, u32)>, ts_ns: i64, ray: u64) {
        let s = &self.sites[site];
        let c = s.client(&self.world, key);
        let agent = &USER_AGENTS[c.ua as usize];
        let r1 = self.rng.next_u64();
        let r2 = self.rng.next_u64();
        let r3 = self.rng.next_u64();
        let (ei, id) = match forced {
            Some(f) => f,
            None => {
                let ei = s.pick_path(r1 as u32);
                let u = (r1 >> 32) as u32;
                let u3 = ((((u as u64 * u as u64) >> 32) * u as u64) >> 32) as u32;
                (ei, below(u3, s.paths[ei].id_max.max(1)))
            }
        };
        let e = &s.paths[ei];
        self.path_buf.clear();
        self.path_buf.extend_from_slice(&e.head);
        if e.id_max > 0 {
            self.path_buf.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
            self.path_buf.extend_from_slice(&e.tail);
        }
        self.query_buf.clear();
        let q = (r2 >> 8) as u32;
        match e.query {
            Query::None => {}
            Query::Search => {
                self.query_buf.extend_from_slice(b"?q=");
                self.query_buf.extend_from_slice(SEARCH_WORDS[below(q, SEARCH_WORDS.len() as u32) as usize].as_bytes());
            }
            Query::Page => {
                if q & 0xff < 64 {
                    self.query_buf.extend_from_slice(b"?page=");
                    self.query_buf.extend_from_slice(itoa::Buffer::new().format(2 + (q >> 8) % 19).as_bytes());
                }
            }
            Query::Utm => {
                if q & 0xff < 30 {
                    self.query_buf.push(b'?');
                    self.query_buf.extend_from_slice(UTM_SOURCES[below(q, UTM_SOURCES.len() as u32) as usize].as_bytes());
                }
            }
            Query::Seq => {
                self.query_buf.extend_from_slice(b"?seq=");
                self.query_buf.extend_from_slice(itoa::Buffer::new().format((q >> 8) % 900).as_bytes());
            }
        }
        let method = pick_cum(&e.methods, (r2 >> 32) as u32);
        let host: &[u8] = if e.host == HostSel::Api && s.kind.has_api_host() {
            &s.hosts[2]
        } else if (r3 & 0xff) < 20 {
            &s.hosts[1]
        } else {
            &s.hosts[0]
        };

        // Outcome.
        let dynamic = !e.class.is_static();
        let tool = matches!(agent.kind, world::UaKind::Tool);
        let block_65536 = if !dynamic { 0 } else if tool { 1500 } else { 25 };
        let r16 = ((r3 >> 8) & 0xffff) as u32;
        let rb = (r3 >> 24) as u32; // 40 bits left; use the low 32
        let mut waf = 80 + (rb % 20) as u8;
        let (status, origin, cache, action) = if r16 < block_65536 {
            waf = 5 + (rb % 30) as u8;
            (403, 0, "unknown", "block")
        } else if dynamic {
            let st = pick_status(if e.class == Class::Api { API_STATUS } else { HTML_STATUS }, below(rb, 10_000));
            let st = if st == 201 && method != "POST" { 200 } else { st };
            (st, if (520..=527).contains(&st) { 0 } else { st }, "dynamic", "")
        } else if rb < s.hit_threshold {
            (if (r3 >> 56) < 12 { 304 } else { 200 }, 0, "hit", "")
        } else {
            let m = rb % 100;
            if m < 6 {
                (304, 304, "revalidated", "")
            } else {
                let st = pick_status(STATIC_MISS_STATUS, below(rb.rotate_left(13), 10_000));
                (st, st, if m < 30 { "expired" } else { "miss" }, "")
            }
        };
        let r4 = self.rng.next_u64();
        let bytes = response_bytes(e, id, status, r4 as u32);
        let t = (r4 >> 32) as u32;
        let ttfb = match (cache, status) {
            (_, 522) => 15_000 + t % 4000,
            (_, 524) => 100_000 + t % 500,
            (_, 403) if action == "block" => 1 + t % 6,
            ("hit", _) => 1 + t % 18 + if t.is_multiple_of(50) { t % 120 } else { 0 },
            ("dynamic", _) => 25 + t % 320 + if t.is_multiple_of(40) { t % 2200 } else { 0 },
            _ => 35 + t % 260 + if t.is_multiple_of(40) { t % 900 } else { 0 },
        };
        let (mut status, mut origin, mut cache, mut bytes, mut ttfb) = (status, origin, cache, bytes, ttfb);
        if let Some(fx) = self.site_effects.iter().find(|f| f.site == site)
            && action != "block"
        {
            let h = mix64(r4 ^ r3.rotate_left(29));
            let u = h as u32;
            if fx.purge {
                if dynamic {
                    ttfb += ttfb / 3;
                } else {
                    // Purged: every cacheable object comes from the origin again.
                    cache = "miss";
                    origin = status;
                    ttfb = 70 + u % 520 + if u.is_multiple_of(30) { u % 1800 } else { 0 };
                }
            }
            if fx.fail_256 > 0 && cache != "hit" && ((h >> 32) & 0xff) < fx.fail_256 as u64 {
                let pick = (h >> 40) % if fx.overload { 5 } else { 3 };
                (status, origin) = match (fx.overload, pick) {
                    (_, 0) => (502, 502),
                    (false, 1) | (true, 3) => (522, 0),
                    (false, _) | (true, 4) => (524, 0),
                    (true, 1) => (503, 503),
                    (true, _) => (504, 504),
                };
                if !dynamic {
                    cache = "miss";
                }
                bytes = response_bytes(e, id, status, (h >> 48) as u32);
                ttfb = match status {
                    522 => 15_000 + u % 4000,
                    524 => 100_000 + u % 500,
                    _ => 30 + u % 3000,
                };
            }
        }
        let protocol = match c.proto {
            3 => "HTTP/3",
            2 => "HTTP/2",
            _ => "HTTP/1.1",
        };
        let line = Line {
            bot_score: c.bot_score,
            cache,
            asn: self.world.asns[c.asn as usize].number,
            country: self.world.countries[c.country as usize].code,
            ip: c.ip,
            host,
            method,
            path: &self.path_buf,
            query: &self.query_buf,
            protocol,
            user_agent: agent.ua,
            tls: if c.tls13 { "TLSv1.3" } else { "TLSv1.2" },
            colo: self.world.colos[c.colo as usize],
            bytes,
            status,
            ts_ns,
            ttfb_ms: ttfb,
            ja3: agent.ja3,
            ja4: agent.ja4,
            origin_status: origin,
            ray,
            action,
            waf,
            zone: s.name.as_bytes(),
        };
        write_line(out, &line);
    }
}

/// (status, weight out of 10 000).
const HTML_STATUS: &[(u16, u32)] = &[
    (200, 9200),
    (301, 150),
    (302, 150),
    (304, 100),
    (404, 250),
    (403, 30),
    (500, 40),
    (502, 30),
    (503, 30),
    (504, 10),
    (520, 4),
    (522, 3),
    (524, 3),
];
const API_STATUS: &[(u16, u32)] = &[
    (200, 8600),
    (201, 300),
    (204, 200),
    (400, 200),
    (401, 300),
    (403, 50),
    (404, 200),
    (429, 50),
    (500, 50),
    (502, 30),
    (503, 20),
];
const STATIC_MISS_STATUS: &[(u16, u32)] = &[(200, 9600), (404, 300), (502, 30), (503, 40), (504, 30)];

#[inline]
fn pick_status(table: &[(u16, u32)], mut r: u32) -> u16 {
    for &(s, w) in table {
        if r < w {
            return s;
        }
        r -= w;
    }
    table[0].0
}

/// `EdgeResponseBytes`: a static object always has the same size; pages and API answers vary.
#[inline]
fn response_bytes(e: &sites::PathEntry, id: u32, status: u16, r: u32) -> u64 {
    let r = r as u64;
    match status {
        200 | 201 => {
            let (lo, hi) = e.class.size_range();
            let h = mix64(e.size_salt ^ id as u64) as u32 as u64;
            let base = lo as u64 + ((((h * h) >> 32) * (hi - lo) as u64) >> 32);
            if e.class.is_static() { base } else { base * (870 + r % 260) / 1000 }
        }
        204 => 150 + r % 150,
        301 | 302 => 250 + r % 300,
        304 => 180 + r % 240,
        403 => 4_200 + r % 1000,
        404 => 1_200 + r % 2800,
        400..=499 => 120 + r % 800,
        520..=527 => 3_200 + r % 800,
        _ => 600 + r % 1900,
    }
}
