//! Event-time windows: the pure core that turns validated events into the rollup tables
//! `site_rates_10s`, `traffic_1m` and `asn_1m`. No clock, no I/O: the caller feeds events with
//! [`SiteWindows::observe`] and collects closed windows with [`SiteWindows::advance`].
//!
//! Rules (DESIGN.md §3 "Exactly once"):
//! - watermark = max event time seen − `allowed_disorder` (or a later watermark the caller passes,
//!   e.g. from an idle-source timer); a window `[start, end)` closes once `end <= watermark`;
//! - an event whose window already closed but which is at most `allowed_lateness` behind the
//!   watermark is counted in a *delta* row: its window is reopened and closes again at the next
//!   `advance`, emitting a second row with the same key (all measures add up, sketches merge);
//! - an event further behind is rejected with [`InvalidReason::TooLate`] (the caller dead-letters it);
//! - an event whose `RayID` was already counted within the lateness horizon is a duplicate
//!   (shippers redeliver) and is not counted again; the caller remembers named messages the same
//!   way ([`SiteWindows::remember_message`]) to recognise resent ones;
//! - an event more than the lateness (at least a minute) ahead of the newest event time is counted
//!   but does not move event time by itself: one bad timestamp would otherwise put every event
//!   after it behind the watermark. Event time jumps there once [`JUMP_EVENTS`] such events,
//!   near each other and spanning [`JUMP_SPAN`] of event time, confirm it (the stream resumed
//!   after a gap, or the next day's file). Event time starts the same way, so not even the
//!   first events set it with bad timestamps.
//!
//! Output is deterministic: the same events in any order that stays within `allowed_disorder`
//! produce the same rows, and rows of one `advance` are sorted by their key.

use std::collections::{BTreeMap, HashSet};
use std::hash::BuildHasher;
use std::sync::Arc;

use ahash::HashMap;
use edgelens_schemas::time::{floor_to, NANOS_PER_SEC};
use edgelens_schemas::{EdgeEvent, InvalidReason, Nanos};

use crate::checkpoint::{Dec, Enc};
use crate::sketch::{ClientHash, ClientSketch};

pub const RATE_WINDOW: Nanos = 10 * NANOS_PER_SEC;
pub const MINUTE: Nanos = 60 * NANOS_PER_SEC;
/// Events far ahead of event time that confirm a jump, at least.
pub const JUMP_EVENTS: u32 = 3;
/// Event time the events confirming a jump span, at least.
pub const JUMP_SPAN: Nanos = 10 * NANOS_PER_SEC;

/// Events seen far ahead of event time, not yet confirming a jump to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ahead {
    min: Nanos,
    max: Nanos,
    events: u32,
}

/// Event time as a stream's events move it (see the module docs): the newest event time, except
/// that an event more than `jump` ahead of it moves it only once [`JUMP_EVENTS`] such events near
/// each other and spanning [`JUMP_SPAN`] confirm it. Also kept per input file by a replay's merge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventClock {
    max_ts: Option<Nanos>,
    /// Events far ahead of `max_ts` that did not move it (yet).
    ahead: Option<Ahead>,
}

impl EventClock {
    /// Event time, once started.
    pub fn time(&self) -> Option<Nanos> {
        self.max_ts
    }

    /// Take an event at `ts` (see [`WindowConfig::jump`]).
    pub fn note(&mut self, ts: Nanos, jump: Nanos) {
        match self.max_ts {
            Some(max) if ts <= max => return,
            Some(max) if ts - max <= jump => {
                self.max_ts = Some(ts);
                if self.ahead.is_some_and(|a| a.max <= ts.saturating_add(jump)) {
                    self.ahead = None;
                }
                return;
            }
            // Far ahead, or before event time started: event time starts and jumps alike, on a
            // run of events near each other, so no few events can set it with bad timestamps.
            _ => {}
        }
        let a = self.ahead_with(ts, jump);
        if a.events >= JUMP_EVENTS && a.max - a.min >= JUMP_SPAN {
            self.max_ts = Some(a.max);
            self.ahead = None;
        } else {
            self.ahead = Some(a);
        }
    }

    /// The events ahead with one at `ts`: added to them when it is within `jump` of them, else
    /// the first of new ones.
    fn ahead_with(&self, ts: Nanos, jump: Nanos) -> Ahead {
        match self.ahead {
            Some(a) if ts >= a.min.saturating_sub(jump) && ts <= a.max.saturating_add(jump) => Ahead { min: a.min.min(ts), max: a.max.max(ts), events: a.events + 1 },
            _ => Ahead { min: ts, max: ts, events: 1 },
        }
    }
}

/// Event-time settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowConfig {
    /// How far behind the newest event another event may arrive without being late.
    pub allowed_disorder: Nanos,
    /// How far behind the watermark a late event is still counted (as a delta row).
    pub allowed_lateness: Nanos,
    /// Drop events whose RayID was already counted within the lateness horizon, and resent
    /// messages taken before (see [`SiteWindows::remember_message`]).
    pub dedup_ray_ids: bool,
    /// How far ahead of the wall clock an event may be (edge clocks differ a little); a later one
    /// is rejected as [`InvalidReason::FutureTimestamp`] by the pipeline (this core has no clock).
    /// Kept below `allowed_lateness`, one event at the limit moves the watermark so little that
    /// the events of the present are still counted (as late deltas at worst). 0: no limit.
    pub max_future: Nanos,
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self { allowed_disorder: 5 * NANOS_PER_SEC, allowed_lateness: 600 * NANOS_PER_SEC, dedup_ray_ids: true, max_future: 300 * NANOS_PER_SEC }
    }
}

impl WindowConfig {
    /// How far ahead of event time an event moves it by itself (the lateness, at least a minute).
    pub fn jump(&self) -> Nanos {
        self.allowed_lateness.max(MINUTE)
    }

    /// The latest event time taken at wall-clock `now`: later events are dead letters
    /// (`future_timestamp`), unless `max_future` is 0 (no limit).
    pub fn future_limit(&self, now: Nanos) -> Nanos {
        if self.max_future > 0 { now.saturating_add(self.max_future) } else { Nanos::MAX }
    }
}

/// What happened to an observed event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// Counted in open windows.
    Counted,
    /// Counted as a delta of a window that had already closed.
    Late,
    /// Same RayID already counted: not counted again.
    Duplicate,
}

/// Counters of the core.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowStats {
    pub counted: u64,
    pub late: u64,
    pub too_late: u64,
    pub duplicates: u64,
}

/// One `site_rates_10s` row.
#[derive(Debug, Clone)]
pub struct SiteRate10s {
    pub ts: Nanos,
    pub site: Arc<str>,
    pub m: RateMeasures,
    pub clients: ClientSketch,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateMeasures {
    pub requests: u64,
    pub bytes: u64,
    pub status_2xx: u64,
    pub status_3xx: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
    pub cache_hits: u64,
    pub blocked: u64,
}

/// One `traffic_1m` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Traffic1m {
    pub ts: Nanos,
    pub site: Arc<str>,
    pub country: Arc<str>,
    pub colo: Arc<str>,
    pub status_class: &'static str,
    pub cache_status: Arc<str>,
    pub requests: u64,
    pub bytes: u64,
}

/// One `asn_1m` row.
#[derive(Debug, Clone)]
pub struct Asn1m {
    pub ts: Nanos,
    pub site: Arc<str>,
    pub asn: u32,
    pub country: Arc<str>,
    pub requests: u64,
    pub bytes: u64,
    pub clients: ClientSketch,
}

/// Rows of windows closed by one `advance`.
#[derive(Debug, Default)]
pub struct ClosedWindows {
    pub rates: Vec<SiteRate10s>,
    pub traffic: Vec<Traffic1m>,
    pub asn: Vec<Asn1m>,
}

impl ClosedWindows {
    pub fn is_empty(&self) -> bool {
        self.rates.is_empty() && self.traffic.is_empty() && self.asn.is_empty()
    }

    pub fn len(&self) -> usize {
        self.rates.len() + self.traffic.len() + self.asn.len()
    }

    pub fn append(&mut self, mut other: ClosedWindows) {
        self.rates.append(&mut other.rates);
        self.traffic.append(&mut other.traffic);
        self.asn.append(&mut other.asn);
    }
}

const STATUS_CLASSES: [&str; 6] = ["0xx", "1xx", "2xx", "3xx", "4xx", "5xx"];

/// A shared name that sorts as its string does, mostly without comparing strings: it carries its
/// first eight bytes as a big-endian number (zero-padded), which orders two names as strings
/// whenever it differs; only when it is equal are the full names compared.
#[derive(Debug, Clone)]
pub(crate) struct SortedName {
    pub(crate) name: Arc<str>,
    prefix: u64,
}

impl SortedName {
    pub(crate) fn new(name: Arc<str>) -> Self {
        let mut b = [0u8; 8];
        let n = name.len().min(8);
        b[..n].copy_from_slice(&name.as_bytes()[..n]);
        Self { prefix: u64::from_be_bytes(b), name }
    }
}

impl Ord for SortedName {
    #[inline]
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.prefix.cmp(&other.prefix).then_with(|| self.name.cmp(&other.name))
    }
}

impl PartialOrd for SortedName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for SortedName {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for SortedName {}

/// String interner: small ids for the hot path, shared names for output rows.
#[derive(Debug, Default)]
struct Names {
    ids: HashMap<Arc<str>, u32>,
    names: Vec<SortedName>,
}

impl Names {
    #[inline]
    fn id(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let name: Arc<str> = Arc::from(s);
        let id = self.names.len() as u32;
        self.names.push(SortedName::new(name.clone()));
        self.ids.insert(name, id);
        id
    }

    fn name(&self, id: u32) -> &Arc<str> {
        &self.names[id as usize].name
    }

    /// The order of the names of two ids, as strings.
    #[inline]
    fn cmp(&self, a: u32, b: u32) -> std::cmp::Ordering {
        if a == b {
            return std::cmp::Ordering::Equal;
        }
        self.names[a as usize].cmp(&self.names[b as usize])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct TrafficKey {
    site: u32,
    country: u32,
    colo: u32,
    cache_status: u32,
    status_class: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct AsnKey {
    site: u32,
    asn: u32,
    country: u32,
}

#[derive(Debug, Default)]
struct RateAcc {
    m: RateMeasures,
    clients: ClientSketch,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    requests: u64,
    bytes: u64,
}

#[derive(Debug, Default)]
struct AsnAcc {
    c: Counts,
    clients: ClientSketch,
}

/// RayIDs seen, bucketed by event-time minute so the horizon can be dropped cheaply.
///
/// A RayID is kept with its site as their [`ray_hash`], which checkpoints store: it must be the
/// same in every build, platform and version of edgelens, or a RayID counted before a restart
/// would not be recognised after it. A RayID repeats only as a redelivery of the same request, so
/// the same RayID on another site is another request. Checkpoints of formats 4 and 5 stored the
/// RayID's hash alone ([`ray_only_hash`]), of format 3 and older another hash
/// ([`legacy_ray_hash`]); their RayIDs are kept apart in `ray_only` and `legacy`, looked up by
/// those hashes until the horizon drops them.
#[derive(Debug, Default)]
struct RayDedup {
    buckets: BTreeMap<Nanos, HashSet<u64, NoHash>>,
    ray_only: BTreeMap<Nanos, HashSet<u64, NoHash>>,
    legacy: BTreeMap<Nanos, HashSet<u64, NoHash>>,
}

/// The hash a RayID of a site is remembered by: XXH64 (seed 0) of the site, a zero byte and the
/// RayID, a specified function.
fn ray_hash(site: &str, ray: &str) -> u64 {
    pair_hash(0, site.as_bytes(), ray.as_bytes())
}

/// The hash a message id ([`edgelens_ingest::log::MESSAGE_ID_HEADER`]) of a message key is
/// remembered by, among the RayIDs: XXH64 of the key, a zero byte and the id, with a seed of its
/// own, a specified function like [`ray_hash`].
fn message_id_hash(key: &[u8], id: &[u8]) -> u64 {
    pair_hash(MESSAGE_ID_SEED, key, id)
}

/// XXH64 with `seed` of `a`, a zero byte and `b`.
fn pair_hash(seed: u64, a: &[u8], b: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = twox_hash::XxHash64::with_seed(seed);
    h.write(a);
    h.write(&[0]);
    h.write(b);
    h.finish()
}

/// "msg-id" in ASCII.
const MESSAGE_ID_SEED: u64 = 0x6d73_672d_6964;

/// The hash checkpoints of formats 4 and 5 stored for a RayID: XXH64 (seed 0) of its bytes.
fn ray_only_hash(ray: &str) -> u64 {
    twox_hash::XxHash64::oneshot(0, ray.as_bytes())
}

/// The hash checkpoints of format 3 and older stored for a RayID: ahash with fixed seeds, whose
/// output ahash does not promise to keep across its versions or target features.
fn legacy_ray_hash(ray: &str) -> u64 {
    ahash::RandomState::with_seeds(0x5eed, 0xed9e, 0x1e25, 0xface).hash_one(ray)
}

/// The set stores hashes already: no second hashing.
#[derive(Debug, Default, Clone, Copy)]
struct NoHash;
impl BuildHasher for NoHash {
    type Hasher = NoHashHasher;
    fn build_hasher(&self) -> NoHashHasher {
        NoHashHasher(0)
    }
}
#[derive(Debug)]
struct NoHashHasher(u64);
impl std::hash::Hasher for NoHashHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

impl RayDedup {
    /// True when the site's RayID was not seen before (and records it) in the event-time minute
    /// starting at `minute`.
    fn first_time(&mut self, minute: Nanos, site: &str, ray: &str) -> bool {
        // RayIDs of older checkpoints, by the hash they were stored with (hashed only while any
        // are left).
        let known = |sets: &BTreeMap<Nanos, HashSet<u64, NoHash>>, hash: fn(&str) -> u64| {
            !sets.is_empty() && sets.get(&minute).is_some_and(|set| set.contains(&hash(ray)))
        };
        if known(&self.legacy, legacy_ray_hash) || known(&self.ray_only, ray_only_hash) {
            return false;
        }
        self.buckets.entry(minute).or_default().insert(ray_hash(site, ray))
    }

    fn forget_before(&mut self, ts: Nanos) {
        let from = floor_to(ts, MINUTE);
        self.buckets = self.buckets.split_off(&from);
        self.ray_only = self.ray_only.split_off(&from);
        self.legacy = self.legacy.split_off(&from);
    }

    fn len(&self) -> usize {
        self.buckets.values().chain(self.ray_only.values()).chain(self.legacy.values()).map(HashSet::len).sum()
    }

    fn encode(buckets: &BTreeMap<Nanos, HashSet<u64, NoHash>>, e: &mut Enc) {
        e.len(buckets.len());
        for (minute, set) in buckets {
            e.i64(*minute);
            e.len(set.len());
            for h in set {
                e.u64(*h);
            }
        }
    }

    fn decode(d: &mut Dec<'_>, buckets: &mut BTreeMap<Nanos, HashSet<u64, NoHash>>) -> Result<(), String> {
        for _ in 0..d.len()? {
            let minute = d.i64()?;
            let n = d.len()?;
            let set = buckets.entry(minute).or_default();
            set.reserve(n.min(1 << 24));
            for _ in 0..n {
                set.insert(d.u64()?);
            }
        }
        Ok(())
    }
}

/// Groups in the last window of each table that closed: a new window's map starts at that
/// size instead of growing to it by doubling.
#[derive(Debug, Default, Clone, Copy)]
struct Sizes {
    rates: usize,
    traffic: usize,
    asn: usize,
}

/// The accumulator of group `key` in the window starting at `start`; a new window's map starts
/// with room for `size` groups.
fn group<K: std::hash::Hash + Eq, V: Default>(windows: &mut BTreeMap<Nanos, HashMap<K, V>>, start: Nanos, size: usize, key: K) -> &mut V {
    windows.entry(start).or_insert_with(|| HashMap::with_capacity_and_hasher(size, Default::default())).entry(key).or_default()
}

/// Open windows of one input stream (a file, or one Kafka partition).
#[derive(Debug)]
pub struct SiteWindows {
    cfg: WindowConfig,
    names: Names,
    /// Event time, moved by events as the module docs say.
    clock: EventClock,
    /// Highest watermark passed to `advance`.
    advanced: Option<Nanos>,
    /// Windows ending at or before this were closed (by `advance` or `close_idle`): an event for
    /// them is a late delta.
    closed_until: Option<Nanos>,
    rates: BTreeMap<Nanos, HashMap<u32, RateAcc>>,
    traffic: BTreeMap<Nanos, HashMap<TrafficKey, Counts>>,
    asn: BTreeMap<Nanos, HashMap<AsnKey, AsnAcc>>,
    dedup: RayDedup,
    sizes: Sizes,
    stats: WindowStats,
}

impl SiteWindows {
    pub fn new(cfg: WindowConfig) -> Self {
        Self {
            cfg,
            names: Names::default(),
            clock: EventClock::default(),
            advanced: None,
            closed_until: None,
            rates: BTreeMap::new(),
            traffic: BTreeMap::new(),
            asn: BTreeMap::new(),
            dedup: RayDedup::default(),
            sizes: Sizes::default(),
            stats: WindowStats::default(),
        }
    }

    pub fn config(&self) -> &WindowConfig {
        &self.cfg
    }

    pub fn stats(&self) -> WindowStats {
        self.stats
    }

    /// Current watermark: max event time − allowed disorder, or a later one passed to `advance`.
    pub fn watermark(&self) -> Option<Nanos> {
        let from_events = self.clock.max_ts.map(|t| t - self.cfg.allowed_disorder);
        match (from_events, self.advanced) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Number of open window groups (rows that would be emitted if everything closed now).
    pub fn open_groups(&self) -> usize {
        self.rates.values().map(HashMap::len).sum::<usize>()
            + self.traffic.values().map(HashMap::len).sum::<usize>()
            + self.asn.values().map(HashMap::len).sum::<usize>()
    }

    /// RayIDs and message ids remembered for deduplication.
    pub fn remembered_ray_ids(&self) -> usize {
        self.dedup.len()
    }

    /// Remember the message of `key` named `id` whose newest event (not in the future) is at
    /// `ts`, like a RayID: while `ts` is within the lateness horizon.
    pub fn remember_message(&mut self, ts: Nanos, key: &[u8], id: &[u8]) {
        if self.cfg.dedup_ray_ids {
            self.dedup.buckets.entry(floor_to(ts, MINUTE)).or_default().insert(message_id_hash(key, id));
        }
    }

    /// Whether the message of `key` named `id`, whose events lie between `from` and `to`, is
    /// remembered: under any minute of that span, since which of its events were in the future
    /// when it was remembered depended on the clock then.
    pub fn remembers_message(&self, from: Nanos, to: Nanos, key: &[u8], id: &[u8]) -> bool {
        let hash = message_id_hash(key, id);
        self.cfg.dedup_ray_ids && self.dedup.buckets.range(floor_to(from, MINUTE)..=floor_to(to, MINUTE)).any(|(_, set)| set.contains(&hash))
    }

    /// Count `n` lines of a resent message, taken before, as duplicates.
    pub fn count_duplicates(&mut self, n: u64) {
        self.stats.duplicates += n;
    }

    /// Count one event.
    pub fn observe(&mut self, ev: &EdgeEvent<'_>) -> Result<Observed, InvalidReason> {
        if let Some(wm) = self.watermark()
            && ev.ts < wm - self.cfg.allowed_lateness
        {
            self.stats.too_late += 1;
            return Err(InvalidReason::TooLate { behind: wm - ev.ts, limit: self.cfg.allowed_lateness });
        }
        let minute = floor_to(ev.ts, MINUTE);
        if self.cfg.dedup_ray_ids
            && let Some(ray) = ev.ray_id.as_deref()
            && !self.dedup.first_time(minute, &ev.site, ray)
        {
            self.stats.duplicates += 1;
            return Ok(Observed::Duplicate);
        }
        let window = floor_to(ev.ts, RATE_WINDOW);
        let late = self.closed_until.is_some_and(|c| window + RATE_WINDOW <= c);
        self.note_event_time(ev.ts);

        let site = self.names.id(&ev.site);
        let class = ev.status_class().min(5);
        let sizes = self.sizes;
        let rate = group(&mut self.rates, window, sizes.rates, site);
        let m = &mut rate.m;
        m.requests += 1;
        m.bytes = m.bytes.saturating_add(ev.bytes);
        match class {
            2 => m.status_2xx += 1,
            3 => m.status_3xx += 1,
            4 => m.status_4xx += 1,
            5 => m.status_5xx += 1,
            _ => {}
        }
        m.cache_hits += u64::from(ev.is_cache_hit());
        m.blocked += u64::from(ev.is_blocked());
        let client = ClientHash::of(ev.client_ip);
        rate.clients.insert_hashed(client);

        let country = self.names.id(&ev.country);
        let key = TrafficKey {
            site,
            country,
            colo: self.names.id(&ev.colo),
            cache_status: self.names.id(&ev.cache_status),
            status_class: class,
        };
        let t = group(&mut self.traffic, minute, sizes.traffic, key);
        t.requests += 1;
        t.bytes = t.bytes.saturating_add(ev.bytes);

        let a = group(&mut self.asn, minute, sizes.asn, AsnKey { site, asn: ev.asn, country });
        a.c.requests += 1;
        a.c.bytes = a.c.bytes.saturating_add(ev.bytes);
        a.clients.insert_hashed(client);

        if late {
            self.stats.late += 1;
            Ok(Observed::Late)
        } else {
            self.stats.counted += 1;
            Ok(Observed::Counted)
        }
    }

    /// The newest event time (that the watermark follows), see the module docs for events far
    /// ahead of it.
    pub fn event_time(&self) -> Option<Nanos> {
        self.clock.time()
    }

    fn note_event_time(&mut self, ts: Nanos) {
        self.clock.note(ts, self.cfg.jump());
    }

    /// Close every window that ends at or before `watermark` (and re-close windows reopened by
    /// late events). A watermark lower than the current one changes nothing.
    pub fn advance(&mut self, watermark: Nanos) -> ClosedWindows {
        let wm = self.watermark().map_or(watermark, |w| w.max(watermark));
        self.advanced = Some(wm);
        self.closed_until = Some(self.closed_until.map_or(wm, |c| c.max(wm)));
        self.dedup.forget_before(wm - self.cfg.allowed_lateness - MINUTE);
        self.close_until(wm)
    }

    /// Close every open window because the input went quiet (an idle partition), without moving
    /// the watermark: the lateness horizon still follows event time, so events that arrive later
    /// for these windows are counted as delta rows, not rejected as too late.
    pub fn close_idle(&mut self) -> ClosedWindows {
        let ends = [
            self.rates.last_key_value().map(|(t, _)| t + RATE_WINDOW),
            self.traffic.last_key_value().map(|(t, _)| t + MINUTE),
            self.asn.last_key_value().map(|(t, _)| t + MINUTE),
        ];
        if let Some(end) = ends.into_iter().flatten().max() {
            self.closed_until = Some(self.closed_until.map_or(end, |c| c.max(end)));
        }
        self.close_until(Nanos::MAX)
    }

    /// Close everything (end of input).
    pub fn close_all(&mut self) -> ClosedWindows {
        self.close_until(Nanos::MAX)
    }

    fn close_until(&mut self, wm: Nanos) -> ClosedWindows {
        let mut out = ClosedWindows::default();
        let names = &self.names;
        while let Some(entry) = self.rates.first_entry() {
            if entry.key().saturating_add(RATE_WINDOW) > wm {
                break;
            }
            let (ts, groups) = entry.remove_entry();
            self.sizes.rates = groups.len();
            let mut groups: Vec<(u32, RateAcc)> = groups.into_iter().collect();
            groups.sort_unstable_by(|a, b| names.cmp(a.0, b.0));
            out.rates.extend(groups.into_iter().map(|(site, acc)| SiteRate10s {
                ts,
                site: names.name(site).clone(),
                m: acc.m,
                clients: acc.clients,
            }));
        }
        while let Some(entry) = self.traffic.first_entry() {
            if entry.key().saturating_add(MINUTE) > wm {
                break;
            }
            let (ts, groups) = entry.remove_entry();
            self.sizes.traffic = groups.len();
            let mut groups: Vec<(TrafficKey, Counts)> = groups.into_iter().collect();
            groups.sort_unstable_by(|(a, _), (b, _)| {
                names
                    .cmp(a.site, b.site)
                    .then_with(|| names.cmp(a.country, b.country))
                    .then_with(|| names.cmp(a.colo, b.colo))
                    .then(a.status_class.cmp(&b.status_class))
                    .then_with(|| names.cmp(a.cache_status, b.cache_status))
            });
            out.traffic.extend(groups.into_iter().map(|(k, c)| Traffic1m {
                ts,
                site: names.name(k.site).clone(),
                country: names.name(k.country).clone(),
                colo: names.name(k.colo).clone(),
                status_class: STATUS_CLASSES[k.status_class as usize],
                cache_status: names.name(k.cache_status).clone(),
                requests: c.requests,
                bytes: c.bytes,
            }));
        }
        while let Some(entry) = self.asn.first_entry() {
            if entry.key().saturating_add(MINUTE) > wm {
                break;
            }
            let (ts, groups) = entry.remove_entry();
            self.sizes.asn = groups.len();
            let mut groups: Vec<(AsnKey, AsnAcc)> = groups.into_iter().collect();
            groups.sort_unstable_by(|(a, _), (b, _)| names.cmp(a.site, b.site).then(a.asn.cmp(&b.asn)).then_with(|| names.cmp(a.country, b.country)));
            out.asn.extend(groups.into_iter().map(|(k, acc)| Asn1m {
                ts,
                site: names.name(k.site).clone(),
                asn: k.asn,
                country: names.name(k.country).clone(),
                requests: acc.c.requests,
                bytes: acc.c.bytes,
                clients: acc.clients,
            }));
        }
        out
    }
}


/// Checkpointing: the open state as bytes ([`crate::checkpoint`] frames and stores them).
impl SiteWindows {
    /// Encode the open windows, the watermark state and the RayIDs within the dedup horizon.
    /// Only names used by open windows are kept, so a checkpoint/restore also compacts the interner.
    pub fn encode_state(&self) -> Vec<u8> {
        let mut local: HashMap<u32, u32> = HashMap::default();
        let mut names: Vec<u32> = Vec::new();
        let mut id = |n: u32| {
            *local.entry(n).or_insert_with(|| {
                names.push(n);
                (names.len() - 1) as u32
            })
        };
        let mut body = Enc::new();
        body.len(self.rates.len());
        for (ts, groups) in &self.rates {
            body.i64(*ts);
            body.len(groups.len());
            for (site, acc) in groups {
                body.u32(id(*site));
                let m = &acc.m;
                for v in [m.requests, m.bytes, m.status_2xx, m.status_3xx, m.status_4xx, m.status_5xx, m.cache_hits, m.blocked] {
                    body.u64(v);
                }
                body.bytes(&acc.clients.to_bytes());
            }
        }
        body.len(self.traffic.len());
        for (ts, groups) in &self.traffic {
            body.i64(*ts);
            body.len(groups.len());
            for (k, c) in groups {
                for n in [k.site, k.country, k.colo, k.cache_status] {
                    body.u32(id(n));
                }
                body.u8(k.status_class);
                body.u64(c.requests);
                body.u64(c.bytes);
            }
        }
        body.len(self.asn.len());
        for (ts, groups) in &self.asn {
            body.i64(*ts);
            body.len(groups.len());
            for (k, acc) in groups {
                body.u32(id(k.site));
                body.u32(k.asn);
                body.u32(id(k.country));
                body.u64(acc.c.requests);
                body.u64(acc.c.bytes);
                body.bytes(&acc.clients.to_bytes());
            }
        }
        // RayIDs of a format-4 or -5 checkpoint still in the horizon (where those formats kept
        // all of theirs).
        RayDedup::encode(&self.dedup.ray_only, &mut body);
        // From checkpoint format 4 on: the RayIDs of a format-3 checkpoint still in the horizon.
        RayDedup::encode(&self.dedup.legacy, &mut body);
        // From checkpoint format 5 on: the events ahead of event time.
        body.opt_i64(self.clock.ahead.map(|a| a.min));
        body.opt_i64(self.clock.ahead.map(|a| a.max));
        body.u32(self.clock.ahead.map_or(0, |a| a.events));
        // From checkpoint format 6 on: RayIDs by site.
        RayDedup::encode(&self.dedup.buckets, &mut body);
        let mut e = Enc::new();
        e.opt_i64(self.clock.max_ts);
        e.opt_i64(self.advanced);
        e.opt_i64(self.closed_until);
        for v in [self.stats.counted, self.stats.late, self.stats.too_late, self.stats.duplicates] {
            e.u64(v);
        }
        e.len(names.len());
        for n in names {
            e.str(self.names.name(n));
        }
        e.append(body);
        e.into_bytes()
    }

    /// Rebuild windows from [`Self::encode_state`] output, with `cfg` (settings may change across
    /// a restart; the state does not depend on them).
    pub fn decode_state(cfg: WindowConfig, bytes: &[u8]) -> Result<Self, String> {
        let mut d = Dec::new(bytes);
        let mut w = SiteWindows::new(cfg);
        w.clock.max_ts = d.opt_i64()?;
        w.advanced = d.opt_i64()?;
        w.closed_until = d.opt_i64()?;
        w.stats = WindowStats { counted: d.u64()?, late: d.u64()?, too_late: d.u64()?, duplicates: d.u64()? };
        let n = d.len()?;
        let mut ids = Vec::with_capacity(n.min(1 << 20));
        for _ in 0..n {
            let name = d.str()?;
            ids.push(w.names.id(name));
        }
        let name = |i: u32| ids.get(i as usize).copied().ok_or_else(|| format!("name index {i} out of range"));
        let sketch = |b: &[u8]| ClientSketch::from_bytes(b).map_err(|e| format!("client sketch: {e}"));
        for _ in 0..d.len()? {
            let ts = d.i64()?;
            let groups = w.rates.entry(ts).or_default();
            for _ in 0..d.len()? {
                let site = name(d.u32()?)?;
                let m = RateMeasures {
                    requests: d.u64()?,
                    bytes: d.u64()?,
                    status_2xx: d.u64()?,
                    status_3xx: d.u64()?,
                    status_4xx: d.u64()?,
                    status_5xx: d.u64()?,
                    cache_hits: d.u64()?,
                    blocked: d.u64()?,
                };
                groups.insert(site, RateAcc { m, clients: sketch(d.bytes()?)? });
            }
        }
        for _ in 0..d.len()? {
            let ts = d.i64()?;
            let groups = w.traffic.entry(ts).or_default();
            for _ in 0..d.len()? {
                let key = TrafficKey {
                    site: name(d.u32()?)?,
                    country: name(d.u32()?)?,
                    colo: name(d.u32()?)?,
                    cache_status: name(d.u32()?)?,
                    status_class: d.u8()?.min(5),
                };
                groups.insert(key, Counts { requests: d.u64()?, bytes: d.u64()? });
            }
        }
        for _ in 0..d.len()? {
            let ts = d.i64()?;
            let groups = w.asn.entry(ts).or_default();
            for _ in 0..d.len()? {
                let key = AsnKey { site: name(d.u32()?)?, asn: d.u32()?, country: name(d.u32()?)? };
                let c = Counts { requests: d.u64()?, bytes: d.u64()? };
                groups.insert(key, AsnAcc { c, clients: sketch(d.bytes()?)? });
            }
        }
        // Format 3 and older end here, with their RayIDs hashed the old way.
        let mut first = BTreeMap::new();
        RayDedup::decode(&mut d, &mut first)?;
        if d.is_empty() {
            w.dedup.legacy = first;
        } else {
            w.dedup.ray_only = first;
            RayDedup::decode(&mut d, &mut w.dedup.legacy)?;
        }
        // Format 4 ends here.
        if !d.is_empty() {
            let (min, max, events) = (d.opt_i64()?, d.opt_i64()?, d.u32()?);
            w.clock.ahead = min.zip(max).map(|(min, max)| Ahead { min, max, events });
        }
        // Format 5 ends here.
        if !d.is_empty() {
            RayDedup::decode(&mut d, &mut w.dedup.buckets)?;
        }
        if !d.is_empty() {
            return Err("trailing bytes after the window state".into());
        }
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgelens_schemas::parse_line;
    use proptest::prelude::*;

    #[test]
    fn names_get_one_id_each_whatever_their_length() {
        let mut names = Names::default();
        let texts = ["", "a", "a\0", "us", "US", "GRU", "dynamic", "revalidated", &"x".repeat(31), &"x".repeat(32), &"x".repeat(300), "shop.example", "www.shop.example"];
        let ids: Vec<u32> = texts.iter().map(|t| names.id(t)).collect();
        for (i, t) in texts.iter().enumerate() {
            assert_eq!(names.id(t), ids[i], "{t:?} keeps its id");
            assert_eq!(names.name(ids[i]).as_ref(), *t);
            for (j, _) in texts.iter().enumerate().filter(|&(j, _)| j != i) {
                assert_ne!(ids[i], ids[j], "{t:?} and {:?}", texts[j]);
            }
        }
    }

    const T0: Nanos = 1_793_491_200 * NANOS_PER_SEC; // 2026-11-01T00:00:00Z

    fn line(ts: Nanos, site: &str, ip: &str, status: u16, ray: &str) -> String {
        format!(
            r#"{{"EdgeStartTimestamp":{ts},"ClientIP":"{ip}","EdgeResponseStatus":{status},"ZoneName":"{site}","RayID":"{ray}","ClientCountry":"de","EdgeColoCode":"FRA","ClientASN":3320,"CacheCacheStatus":"hit","EdgeResponseBytes":100}}"#
        )
    }

    fn feed(w: &mut SiteWindows, l: &str) -> Result<Observed, InvalidReason> {
        w.observe(&parse_line(l.as_bytes()).unwrap())
    }

    /// Canonical, order-independent view of rows (keys and measures; sketches by estimate).
    fn canon(c: &ClosedWindows) -> Vec<String> {
        let mut v: Vec<String> = c
            .rates
            .iter()
            .map(|r| format!("R {} {} {:?} {}", r.ts, r.site, r.m, r.clients.estimate_u64()))
            .chain(c.traffic.iter().map(|r| format!("T {r:?}")))
            .chain(c.asn.iter().map(|r| format!("A {} {} {} {} {} {} {}", r.ts, r.site, r.asn, r.country, r.requests, r.bytes, r.clients.estimate_u64())))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn windows_close_at_watermark() {
        let mut w = SiteWindows::new(WindowConfig::default());
        feed(&mut w, &line(T0 + NANOS_PER_SEC, "a.example", "10.0.0.1", 200, "r1")).unwrap();
        feed(&mut w, &line(T0 + 9 * NANOS_PER_SEC, "a.example", "10.0.0.2", 404, "r2")).unwrap();
        // Two events spanning 8 s: event time has not started, nothing closes.
        assert_eq!(w.watermark(), None);
        assert!(w.advance(T0).is_empty());
        feed(&mut w, &line(T0 + 15 * NANOS_PER_SEC, "a.example", "10.0.0.1", 503, "r3")).unwrap();
        // max 15 s → watermark 10 s: the first 10 s window closes.
        let closed = w.advance(w.watermark().unwrap());
        assert_eq!(closed.rates.len(), 1);
        let r = &closed.rates[0];
        assert_eq!((r.ts, &*r.site, r.m.requests, r.m.status_2xx, r.m.status_4xx, r.m.bytes), (T0, "a.example", 2, 1, 1, 200));
        assert_eq!(r.clients.estimate_u64(), 2);
        assert!(closed.traffic.is_empty(), "the minute is still open");
        let rest = w.close_all();
        assert_eq!(rest.rates.len(), 1);
        assert_eq!(rest.traffic.iter().map(|t| t.requests).sum::<u64>(), 3);
        assert_eq!(rest.asn.len(), 1);
        assert_eq!(rest.asn[0].clients.estimate_u64(), 2);
    }

    #[test]
    fn late_event_becomes_delta_row_and_too_late_is_rejected() {
        let mut w = SiteWindows::new(WindowConfig::default());
        feed(&mut w, &line(T0, "a.example", "10.0.0.1", 200, "r1")).unwrap();
        feed(&mut w, &line(T0 + 5 * NANOS_PER_SEC, "a.example", "10.0.0.1", 200, "r0")).unwrap();
        feed(&mut w, &line(T0 + 120 * NANOS_PER_SEC, "a.example", "10.0.0.1", 200, "r2")).unwrap();
        let first = w.advance(w.watermark().unwrap());
        assert_eq!(first.rates.len(), 1);
        // 2 minutes behind: late but within 10 min → delta row with the same key.
        assert_eq!(feed(&mut w, &line(T0 + NANOS_PER_SEC, "a.example", "10.0.0.9", 200, "r3")).unwrap(), Observed::Late);
        let delta = w.advance(w.watermark().unwrap());
        assert_eq!(delta.rates.len(), 1);
        assert_eq!((delta.rates[0].ts, delta.rates[0].m.requests), (T0, 1));
        assert_eq!(delta.traffic.len(), 1);
        // 20 minutes behind: too late (event time moved on by a stream of events, see
        // `one_event_far_ahead_does_not_move_event_time`).
        for (i, s) in [1400, 1405, 1410].into_iter().enumerate() {
            feed(&mut w, &line(T0 + s * NANOS_PER_SEC, "a.example", "10.0.0.1", 200, &format!("r4-{i}"))).unwrap();
        }
        let err = feed(&mut w, &line(T0 + 2 * NANOS_PER_SEC, "a.example", "10.0.0.1", 200, "r5")).unwrap_err();
        assert_eq!(err.code(), "too_late");
        assert_eq!(err.to_string(), "event time 1403 s behind the watermark, past the allowed lateness of 600 s");
        // Half a second past the lateness reads as such, not as the limit itself.
        let wm = w.watermark().unwrap();
        let err = feed(&mut w, &line(wm - 600 * NANOS_PER_SEC - NANOS_PER_SEC / 2, "a.example", "10.0.0.1", 200, "r6")).unwrap_err();
        assert_eq!(err.to_string(), "event time 600.5 s behind the watermark, past the allowed lateness of 600 s");
        assert_eq!(w.stats().too_late, 2);
        assert_eq!(w.stats().late, 1);
    }

    /// The very first events an hour ahead: event time still starts with the stream behind them.
    #[test]
    fn a_first_event_far_ahead_does_not_set_event_time() {
        let s = |x: i64| T0 + x * NANOS_PER_SEC;
        let mut w = SiteWindows::new(WindowConfig::default());
        // Two of them, a second apart: still no run that starts event time.
        assert_eq!(feed(&mut w, &line(s(3600), "b.example", "10.0.0.2", 200, "b")).unwrap(), Observed::Counted);
        assert_eq!(feed(&mut w, &line(s(3601), "b.example", "10.0.0.2", 200, "b2")).unwrap(), Observed::Counted);
        assert_eq!(w.event_time(), None);
        for x in 0..600 {
            feed(&mut w, &line(s(x), "a.example", "10.0.0.1", 200, &format!("a{x}"))).unwrap();
        }
        assert_eq!((w.event_time(), w.stats().too_late, w.stats().counted), (Some(s(599)), 0, 602));
    }

    /// One event an hour ahead (a bad clock) is counted, but event time stays with the stream, so
    /// the events after it are not too late; a stream that really moved on (events ahead that
    /// span some event time) moves it.
    #[test]
    fn one_event_far_ahead_does_not_move_event_time() {
        let s = |x: i64| T0 + x * NANOS_PER_SEC;
        let mut w = SiteWindows::new(WindowConfig::default());
        let mut out = ClosedWindows::default();
        for x in 0..600 {
            feed(&mut w, &line(s(x), "a.example", "10.0.0.1", 200, &format!("a{x}"))).unwrap();
            if x == 300 {
                // Also a few more at the same instant: a burst of one timestamp is no stream.
                for k in 0..5 {
                    assert_eq!(feed(&mut w, &line(s(3600), "b.example", "10.0.0.2", 200, &format!("b{k}"))).unwrap(), Observed::Counted);
                }
                assert_eq!(w.event_time(), Some(s(300)));
            }
            if let Some(wm) = w.watermark() {
                out.append(w.advance(wm));
            }
        }
        assert_eq!(w.stats().too_late, 0);
        assert_eq!(w.event_time(), Some(s(599)));
        // State survives a checkpoint, the events ahead included.
        let mut w = SiteWindows::decode_state(WindowConfig::default(), &w.encode_state()).unwrap();
        // Three events ahead over 10 s: the stream jumped (the next file, a gap); older events
        // are now too late.
        for (k, x) in [7200, 7205, 7210].into_iter().enumerate() {
            feed(&mut w, &line(s(x), "a.example", "10.0.0.1", 200, &format!("c{k}"))).unwrap();
        }
        assert_eq!(w.event_time(), Some(s(7210)));
        assert_eq!(feed(&mut w, &line(s(599), "a.example", "10.0.0.1", 200, "late")).unwrap_err().code(), "too_late");
        out.append(w.close_all());
        let count = |site: &str| out.rates.iter().filter(|r| &*r.site == site).map(|r| r.m.requests).sum::<u64>();
        assert_eq!((count("a.example"), count("b.example")), (603, 5));
    }

    #[test]
    fn duplicate_ray_id_counted_once() {
        let mut w = SiteWindows::new(WindowConfig::default());
        let l = line(T0, "a.example", "10.0.0.1", 200, "dup");
        assert_eq!(feed(&mut w, &l).unwrap(), Observed::Counted);
        assert_eq!(feed(&mut w, &l).unwrap(), Observed::Duplicate);
        let all = w.close_all();
        assert_eq!(all.rates[0].m.requests, 1);
        assert_eq!(w.stats().duplicates, 1);
        // Without dedup both count.
        let mut w = SiteWindows::new(WindowConfig { dedup_ray_ids: false, ..WindowConfig::default() });
        feed(&mut w, &l).unwrap();
        feed(&mut w, &l).unwrap();
        assert_eq!(w.close_all().rates[0].m.requests, 2);
    }

    /// Regression: a RayID seen on one site made the same RayID on another site a duplicate (a
    /// 404 of b.example dropped after a.example's request); a redelivery is of the same site.
    #[test]
    fn the_same_ray_id_on_another_site_is_another_request() {
        let mut w = SiteWindows::new(WindowConfig::default());
        assert_eq!(feed(&mut w, &line(T0, "a.example", "10.0.0.1", 200, "r1")).unwrap(), Observed::Counted);
        assert_eq!(feed(&mut w, &line(T0 + 4 * NANOS_PER_SEC, "b.example", "10.0.0.2", 404, "r1")).unwrap(), Observed::Counted);
        assert_eq!(feed(&mut w, &line(T0 + 1, "a.example", "10.0.0.1", 200, "r1")).unwrap(), Observed::Duplicate);
        // Across a checkpoint too.
        let mut restored = SiteWindows::decode_state(WindowConfig::default(), &w.encode_state()).unwrap();
        assert_eq!(feed(&mut restored, &line(T0 + 4 * NANOS_PER_SEC, "b.example", "10.0.0.2", 404, "r1")).unwrap(), Observed::Duplicate);
        assert_eq!(feed(&mut restored, &line(T0 + 5 * NANOS_PER_SEC, "c.example", "10.0.0.3", 200, "r1")).unwrap(), Observed::Counted);
    }

    #[test]
    fn external_watermark_closes_idle_windows() {
        let mut w = SiteWindows::new(WindowConfig::default());
        feed(&mut w, &line(T0, "a.example", "10.0.0.1", 200, "r1")).unwrap();
        assert!(w.advance(T0).is_empty());
        let closed = w.advance(T0 + 61 * NANOS_PER_SEC);
        assert_eq!((closed.rates.len(), closed.traffic.len(), closed.asn.len()), (1, 1, 1));
    }

    #[test]
    fn idle_close_flushes_everything_but_keeps_the_lateness_horizon() {
        let mut w = SiteWindows::new(WindowConfig::default());
        feed(&mut w, &line(T0, "a.example", "10.0.0.1", 200, "r1")).unwrap();
        feed(&mut w, &line(T0 + 30 * NANOS_PER_SEC, "a.example", "10.0.0.2", 200, "r2")).unwrap();
        let wm = w.watermark();
        let closed = w.close_idle();
        assert_eq!((closed.rates.len(), closed.traffic.len(), closed.asn.len()), (2, 1, 1));
        assert_eq!(w.open_groups(), 0);
        assert_eq!(w.watermark(), wm, "closing idle windows does not move event time");
        // An event for a closed window is a delta row, not too late, and not a duplicate.
        assert_eq!(feed(&mut w, &line(T0 + 31 * NANOS_PER_SEC, "a.example", "10.0.0.3", 200, "r3")).unwrap(), Observed::Late);
        assert_eq!(feed(&mut w, &line(T0 + 31 * NANOS_PER_SEC, "a.example", "10.0.0.3", 200, "r1")).unwrap(), Observed::Duplicate);
        let delta = w.close_all();
        assert_eq!(delta.rates.iter().map(|r| r.m.requests).sum::<u64>(), 1);
    }

    #[test]
    fn state_round_trip_keeps_windows_dedup_and_watermark() {
        let mut w = SiteWindows::new(WindowConfig::default());
        for i in 0..50 {
            let site = ["a.example", "b.example"][i % 2];
            feed(&mut w, &line(T0 + i as i64 * NANOS_PER_SEC, site, &format!("10.0.{}.1", i % 7), 200 + (i as u16 % 4) * 100, &format!("r{i}"))).unwrap();
        }
        let _ = w.advance(w.watermark().unwrap());
        let bytes = w.encode_state();
        let mut restored = SiteWindows::decode_state(WindowConfig::default(), &bytes).unwrap();
        assert_eq!(restored.watermark(), w.watermark());
        assert_eq!(restored.open_groups(), w.open_groups());
        assert_eq!(restored.remembered_ray_ids(), w.remembered_ray_ids());
        assert_eq!(restored.stats(), w.stats());
        assert_eq!(feed(&mut restored, &line(T0 + 49 * NANOS_PER_SEC, "b.example", "10.0.0.1", 200, "r3")).unwrap(), Observed::Duplicate);
        assert_eq!(canon(&restored.close_all()), canon(&w.close_all()));
        assert!(SiteWindows::decode_state(WindowConfig::default(), &bytes[..bytes.len() - 3]).is_err());
    }

    #[test]
    fn ray_ids_are_remembered_by_their_xxh64() {
        // XXH64 with seed 0 (values from the reference implementation): a checkpoint's RayIDs
        // mean the same to every build of edgelens, whatever its dependencies' versions.
        assert_eq!(ray_only_hash(""), 0xef46_db37_51d8_e999);
        assert_eq!(ray_only_hash("18b23cf66478b4fd"), 0x1c59_fd80_ee88_85ac);
        // The site, a zero byte and the RayID, hashed as one string.
        assert_eq!(ray_hash("a.example", "18b23cf66478b4fd"), ray_only_hash("a.example\018b23cf66478b4fd"));
        let mut w = SiteWindows::new(WindowConfig::default());
        feed(&mut w, &line(T0, "a.example", "10.0.0.1", 200, "18b23cf66478b4fd")).unwrap();
        let state = w.encode_state();
        let h = ray_hash("a.example", "18b23cf66478b4fd");
        assert!(state.windows(8).any(|b| b == h.to_le_bytes()), "the state holds the site's RayID's XXH64");
    }

    /// `w`'s state as checkpoint format 5 wrote it: `rays` (by minute) hashed by `hash` in the
    /// first section, no section of RayIDs by site at the end.
    fn format_5_state(w: &SiteWindows, rays: &BTreeMap<Nanos, Vec<String>>, hash: fn(&str) -> u64) -> Vec<u8> {
        let mut old = SiteWindows::decode_state(WindowConfig::default(), &w.encode_state()).unwrap();
        old.dedup = RayDedup::default();
        for (minute, rays) in rays {
            old.dedup.ray_only.insert(*minute, rays.iter().map(|r| hash(r)).collect());
        }
        let mut bytes = old.encode_state();
        // The empty last section: its count, four zero bytes.
        assert_eq!(bytes.split_off(bytes.len() - 4), [0u8; 4]);
        bytes
    }

    /// Cut the (empty) section of events ahead off the end of a state.
    fn strip_no_events_ahead(bytes: &mut Vec<u8>) {
        let mut none = Enc::new();
        none.opt_i64(None);
        none.opt_i64(None);
        none.u32(0);
        let none = none.into_bytes();
        assert_eq!(bytes.split_off(bytes.len() - none.len()), none);
    }

    /// As checkpoint format 4 wrote it (`w` with no events ahead): also without the section of
    /// events ahead.
    fn format_4_state(w: &SiteWindows, rays: &BTreeMap<Nanos, Vec<String>>) -> Vec<u8> {
        assert!(w.clock.ahead.is_none());
        let mut bytes = format_5_state(w, rays, ray_only_hash);
        strip_no_events_ahead(&mut bytes);
        bytes
    }

    /// As checkpoint format 3 wrote it: RayIDs by [`legacy_ray_hash`], and no section after them.
    fn format_3_state(w: &SiteWindows, rays: &BTreeMap<Nanos, Vec<String>>) -> Vec<u8> {
        let mut bytes = format_5_state(w, rays, legacy_ray_hash);
        strip_no_events_ahead(&mut bytes);
        // The empty second section: its count, four zero bytes.
        assert_eq!(bytes.split_off(bytes.len() - 4), [0u8; 4]);
        bytes
    }

    #[test]
    fn a_format_4_state_reads_with_no_events_ahead() {
        let mut w = SiteWindows::new(WindowConfig::default());
        let mut rays: BTreeMap<Nanos, Vec<String>> = BTreeMap::new();
        for (k, x) in [0, 5, 10].into_iter().enumerate() {
            feed(&mut w, &line(T0 + x * NANOS_PER_SEC, "a.example", "10.0.0.1", 200, &format!("r{k}"))).unwrap();
            rays.entry(floor_to(T0 + x * NANOS_PER_SEC, MINUTE)).or_default().push(format!("r{k}"));
        }
        let mut restored = SiteWindows::decode_state(WindowConfig::default(), &format_4_state(&w, &rays)).unwrap();
        assert_eq!((restored.clock.ahead, restored.event_time(), restored.remembered_ray_ids()), (None, Some(T0 + 10 * NANOS_PER_SEC), 3));
        // Its RayIDs (stored without their site) are still known.
        assert_eq!(feed(&mut restored, &line(T0 + 5 * NANOS_PER_SEC, "a.example", "10.0.0.1", 200, "r1")).unwrap(), Observed::Duplicate);
    }

    #[test]
    fn ray_ids_of_a_format_3_checkpoint_are_still_recognised() {
        // Event `i`, every 5 s, with a RayID of its own.
        let event = |i: i64| (T0 + i * 5 * NANOS_PER_SEC, format!("{:016x}", 0x18b2_3cf6_6478_0000 + i));
        let again = |i: i64| {
            let (ts, ray) = event(i);
            line(ts, "a.example", "10.0.0.1", 200, &ray)
        };
        let mut w = SiteWindows::new(WindowConfig::default());
        let mut rays: BTreeMap<Nanos, Vec<String>> = BTreeMap::new();
        for i in 0..20 {
            feed(&mut w, &again(i)).unwrap();
            let (ts, ray) = event(i);
            rays.entry(floor_to(ts, MINUTE)).or_default().push(ray);
        }
        let mut restored = SiteWindows::decode_state(WindowConfig::default(), &format_3_state(&w, &rays)).unwrap();
        assert_eq!(restored.remembered_ray_ids(), 20);
        // A redelivered event counted before the restart is a duplicate; a new RayID counts.
        assert_eq!(feed(&mut restored, &again(19)).unwrap(), Observed::Duplicate);
        assert_eq!(feed(&mut restored, &line(T0 + 95 * NANOS_PER_SEC, "a.example", "10.0.0.1", 200, "fresh")).unwrap(), Observed::Counted);
        // Checkpointed again, the old RayIDs keep their old hashes and are still known.
        let mut again_restored = SiteWindows::decode_state(WindowConfig::default(), &restored.encode_state()).unwrap();
        assert_eq!(again_restored.remembered_ray_ids(), 21);
        assert_eq!(feed(&mut again_restored, &again(18)).unwrap(), Observed::Duplicate);
        assert_eq!(feed(&mut again_restored, &line(T0 + 96 * NANOS_PER_SEC, "a.example", "10.0.0.1", 200, "fresh")).unwrap(), Observed::Duplicate);
        // Past the horizon, they are forgotten like any others.
        let _ = again_restored.advance(T0 + 3_600 * NANOS_PER_SEC);
        assert_eq!(again_restored.remembered_ray_ids(), 0);
    }

    fn run(lines: &[String], step: usize) -> Vec<String> {
        let mut w = SiteWindows::new(WindowConfig::default());
        let mut out = ClosedWindows::default();
        for (i, l) in lines.iter().enumerate() {
            assert_ne!(feed(&mut w, l).unwrap(), Observed::Late);
            if i % step == 0 {
                if let Some(wm) = w.watermark() {
                    out.append(w.advance(wm));
                }
            }
        }
        out.append(w.close_all());
        canon(&out)
    }

    /// `run`, with the state encoded and decoded (as by a checkpoint and a restore on another
    /// aggregator) before line `cut`.
    fn run_with_restore(lines: &[String], step: usize, cut: usize) -> Vec<String> {
        let mut w = SiteWindows::new(WindowConfig::default());
        let mut out = ClosedWindows::default();
        for (i, l) in lines.iter().enumerate() {
            if i == cut {
                w = SiteWindows::decode_state(WindowConfig::default(), &w.encode_state()).unwrap();
            }
            feed(&mut w, l).unwrap();
            if i % step == 0 {
                if let Some(wm) = w.watermark() {
                    out.append(w.advance(wm));
                }
            }
        }
        out.append(w.close_all());
        canon(&out)
    }

    #[test]
    fn rows_of_one_advance_are_sorted_by_their_names() {
        // Names that share their first eight bytes, one of them a prefix of another, and other
        // fields whose values differ in later bytes; first seen in reverse order.
        let sites = ["shop.example.org", "shop.example", "shop.exa", "shop.example.com", "a.example"];
        let countries = ["de", "d", "us"];
        let colos = ["FRA", "FRA2", "AMS"];
        let caches = ["revalidated", "revalidate", "hit", "miss"];
        let mut w = SiteWindows::new(WindowConfig::default());
        let mut i = 0;
        for site in sites.iter().rev() {
            for (c, country) in countries.iter().enumerate() {
                let colo = colos[(i + c) % colos.len()];
                let cache = caches[i % caches.len()];
                let l = format!(
                    r#"{{"EdgeStartTimestamp":{},"ClientIP":"10.0.0.{i}","EdgeResponseStatus":{},"ZoneName":"{site}","RayID":"r{i}","ClientCountry":"{country}","EdgeColoCode":"{colo}","ClientASN":{},"CacheCacheStatus":"{cache}"}}"#,
                    T0 + i as i64 * 1_000_000,
                    [200, 404, 503][i % 3],
                    64_496 + (i % 2) as u32,
                );
                feed(&mut w, &l).unwrap();
                i += 1;
            }
        }
        let out = w.close_all();
        assert!(out.rates.is_sorted_by(|a, b| a.site <= b.site));
        assert!(out.traffic.is_sorted_by_key(|r| (r.site.clone(), r.country.clone(), r.colo.clone(), r.status_class, r.cache_status.clone())));
        assert!(out.asn.is_sorted_by_key(|r| (r.site.clone(), r.asn, r.country.clone())));
        assert_eq!(out.rates.len(), sites.len());
        assert_eq!(out.traffic.len(), sites.len() * countries.len());
    }

    proptest! {
        /// Names ordered by their prefixes, then in full, are ordered as strings.
        #[test]
        fn name_order_is_string_order(a in "(shop\\.exa|\\x00|é|[a-z.]){0,6}", b in "(shop\\.exa|\\x00|é|[a-z.]){0,6}") {
            prop_assert_eq!(SortedName::new(Arc::from(a.as_str())).cmp(&SortedName::new(Arc::from(b.as_str()))), a.cmp(&b));
            let mut names = Names::default();
            let (ia, ib) = (names.id(&a), names.id(&b));
            prop_assert_eq!(names.cmp(ia, ib), a.cmp(&b));
        }

        /// Any arrival order in which no event is more than `allowed_disorder` behind the newest
        /// one, and any advance cadence, yields the same rows.
        #[test]
        fn reorder_within_disorder_is_invariant(
            evs in proptest::collection::vec((0i64..180_000, 0usize..4, 0u8..6, 0u8..4, 0i64..4_000), 1..300),
            step in 1usize..50,
        ) {
            let sites = ["a.example", "b.example", "c.example", "d.example"];
            // Arrival order = event time + a displacement below 4 s: no event arrives more than
            // 4 s behind the newest one, within the 5 s allowed disorder.
            let mut evs: Vec<(Nanos, Nanos, String)> = evs.iter().enumerate().map(|(i, (ms, s, st, ip, d))| {
                let ts = T0 + ms * 1_000_000;
                let status = [200, 200, 301, 404, 500, 503][*st as usize];
                (ts, ts + d * 1_000_000, line(ts, sites[*s], &format!("10.0.0.{ip}"), status, &format!("ray{i}")))
            }).collect();
            evs.sort_by_key(|e| e.0);
            let in_order: Vec<String> = evs.iter().map(|e| e.2.clone()).collect();
            evs.sort_by_key(|e| e.1);
            let shuffled: Vec<String> = evs.into_iter().map(|e| e.2).collect();
            prop_assert_eq!(run(&in_order, 1), run(&shuffled, step));
        }

        /// A checkpoint/restore at any point of any stream changes no row.
        #[test]
        fn restore_anywhere_is_invisible(
            evs in proptest::collection::vec((0i64..180_000, 0usize..4, 0u8..4, 0u8..3), 1..200),
            step in 1usize..20,
            cut in 0usize..200,
        ) {
            let sites = ["a.example", "b.example", "c.example", "d.example"];
            // Arrival order is ascending event time; every third RayID repeats (redeliveries).
            let mut ts: Vec<i64> = evs.iter().map(|e| e.0).collect();
            ts.sort_unstable();
            let lines: Vec<String> = evs.iter().zip(ts).enumerate().map(|(i, ((_, s, ip, _), ms))| {
                line(T0 + ms * 1_000_000, sites[*s], &format!("10.0.0.{ip}"), 200, &format!("ray{}", i - i % 3 * usize::from(i % 3 == 2)))
            }).collect();
            prop_assert_eq!(run_with_restore(&lines, step, usize::MAX), run_with_restore(&lines, step, cut.min(lines.len())));
        }
    }
}
