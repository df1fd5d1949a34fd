//! Attack detection: per-site baselines, anomaly triggers, signatures and the incident lifecycle.
//! Pure: no clock, no I/O. The caller feeds counted events ([`AttackDetector::observe`]); the
//! detector closes event-time seconds behind its own watermark and queues `incidents` and
//! `incident_timeline` rows ([`AttackDetector::take_output`]).
//!
//! Per site and closed second:
//! 1. **Baseline** ([`baseline::RateBaseline`]): robust EWMA of requests per second; a second is
//!    *anomalous* when it exceeds the mean by ≥ 6σ, ≥ 100 % and ≥ 10 requests, or when the last
//!    10 seconds together (but those anomalous on their own) exceed theirs by ≥ 6σ of the sum,
//!    ≥ 50 % and ≥ 8 requests a second (a ramp stands out of the noise over ten seconds long
//!    before it does in one); an incident under way goes on at the single second's floor.
//!    The expectation is at least 80 % of what this hour of the day usually brings
//!    ([`season::DailyCycle`], learned over days), so a steep daily rise is not a surge.
//! 2. **Profile** ([`profile::SiteProfile`]): what normal requests look like, learned from a
//!    1-in-[`DetectorConfig::sample_one_in`] hash sample of normal seconds only.
//! 3. **Suspect** on the first anomalous second: the sampled requests of anomalous seconds are
//!    kept (a bottom-k sample by event hash, the same whatever the arrival order).
//! 4. **Active** (detected) once a [`signature`] separates the surge from the profile with
//!    estimated precision ≥ 0.9 and coverage ≥ 0.6 and names who sends it or a request shape
//!    no normal client has. A surge of the site's usual audience (a flash crowd, the daily
//!    peak) has none and never becomes an incident; after 10 calm seconds the suspicion is
//!    dropped.
//! 5. **Cooling** after 5 calm seconds; an anomalous second re-activates the same incident (so
//!    re-triggers within [`DetectorConfig::cooling_secs`] merge); **ended** after that long calm.
//!    The baseline is frozen while an incident is under way, so from `watch_from` on a second
//!    whose requests show none of the signature's traffic carries the attack only if its other
//!    requests still hold the attack's volume (`Incident::attack_in`): the site's own traffic
//!    rising meanwhile does not keep the incident alive, an attack that changed its senders does.
//!    On confirmation, the suspected seconds before the first whose sample shows the signature's
//!    traffic are left out of the incident.
//!
//! Determinism: every decision is a function of the site's events per closed second, so the
//! embedded replay and any number of aggregators (a site lives in one partition) produce the same
//! incidents. Requests are matched against the signature exactly from `watch_from` = start + the
//! allowed disorder + 2 s ([`DetectorConfig::watch_delay`], 7 s by default: every event of those
//! seconds arrives after the start second closed); the seconds before are
//! estimated from the sample. State is checkpointed with the windows ([`AttackDetector::encode_state`]).
//!
//! A site's seconds close [`DetectorConfig::allowed_disorder`] behind its clock: the newest time of
//! its events, held to the stream's clock, which is the newest time of the stream's last events
//! not counting the edge (colo) furthest ahead among them (`RecentEdges`), so one edge whose clock
//! runs ahead of the others does not make all their events late. Each site on its own clock: a
//! stream (a Kafka partition) holds many sites, whose Logpush jobs deliver independently, one's
//! batches behind another's; its events are judged as if they had come alone, while they are
//! within [`DetectorConfig::max_site_lag`] (60 s) of the stream's clock. A site whose events are
//! all further behind than that (gone quiet, or further behind) has its open seconds closed then,
//! and an incident under way there judges its silent seconds, so it cools down and ends without
//! more traffic of its site. A quiet input ([`AttackDetector::finish`]: an idle partition) closes
//! each site's open seconds up to its own newest, not the stream's.
//!
//! An event for a second already judged (more than [`DetectorConfig::allowed_disorder`] late, and
//! so not too late for the rollups) changes no decision, but an incident under way at that second
//! counts it: its timeline gets a row adding it to that second, its attack requests, peak and
//! attackers include it — so an incident's timeline adds up to the site's rates for its seconds.
//! Not so for an incident already ended when the event arrives (it is closed), and the peak only
//! for seconds within [`LATE_HORIZON_SECS`] of the incident's newest.

pub mod attrs;
pub mod baseline;
pub mod eval;
pub mod profile;
pub mod season;
pub mod signature;

use std::collections::{BinaryHeap, VecDeque};

use ahash::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use edgelens_schemas::time::NANOS_PER_SEC;
use edgelens_schemas::{EdgeEvent, Nanos};
use serde::Serialize;

use self::attrs::{event_hash, tuple, value_id, value_text, Attr, Tuple, N_ATTRS};
use self::baseline::{RateBaseline, RecentCounts, Thresholds};
use self::profile::SiteProfile;
use self::season::DailyCycle;
use self::signature::{derive, Signature};
use crate::checkpoint::{Dec, Enc};
use crate::sketch::ClientSketch;
use crate::windows::SortedName;

/// Detector settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorConfig {
    pub thresholds: Thresholds,
    /// A site's seconds close this far behind its clock (the windows' allowed disorder; see the
    /// module docs).
    pub allowed_disorder: Nanos,
    /// A site whose events are all this far behind the stream's clock (at least the allowed
    /// disorder) has its open seconds closed (see the module docs).
    pub max_site_lag: Nanos,
    /// One request in this many (by event hash) feeds profiles and signatures.
    pub sample_one_in: u64,
    /// Bottom-k size of an incident's sample.
    pub sample_cap: usize,
    /// Calm seconds after which an incident ends (re-triggers before merge into it).
    pub cooling_secs: i64,
    /// Write an updated incident row at least this often while it is active or cooling.
    pub update_every_secs: i64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            thresholds: Thresholds::default(),
            allowed_disorder: 5 * NANOS_PER_SEC,
            max_site_lag: 60 * NANOS_PER_SEC,
            sample_one_in: 4,
            sample_cap: 8192,
            cooling_secs: 180,
            update_every_secs: 10,
        }
    }
}

impl DetectorConfig {
    /// Seconds from an incident's start after which every request is matched exactly: the
    /// allowed disorder and 2 s more (7 s by default). The incident is made when its start second
    /// closes, once the site's clock is the allowed disorder past it (or the stream's is further
    /// on, the site's events not being there yet), so every event of the site of a second at
    /// least that far on comes after it (the slack covers the one edge the clock leaves out).
    pub fn watch_delay(&self) -> i64 {
        (self.allowed_disorder + NANOS_PER_SEC - 1).div_euclid(NANOS_PER_SEC) + 2
    }

    /// How far behind the stream's clock a site's events may all be before its open seconds
    /// close by the stream's clock.
    pub fn site_lag(&self) -> Nanos {
        self.max_site_lag.max(self.allowed_disorder)
    }
}

const CONFIRM_PRECISION: f64 = 0.9;
const CONFIRM_COVERAGE: f64 = 0.6;
const CALM_TO_COOL: u32 = 5;
const CALM_TO_DROP_SUSPECT: u32 = 10;
/// A suspicion not confirmed after this long is a new normal: the baseline learns it.
const SUSPECT_ADAPT_SECS: i64 = 600;
/// A suspicion whose seconds span twice this long unconfirmed keeps the last this many only, for
/// its sample and its timeline-to-be ([`Incident::keep_recent`]): a legitimate rise it began with
/// (the site's traffic stepped up) otherwise filled its sample, and an attack that came on top of
/// the rise minutes later never showed a signature there (a 500 rps flood 5 to 25 minutes after a
/// site went from 60 to 150 requests a second for good was never reported).
const SUSPECT_RECENT_SECS: i64 = 60;
/// With fewer profiled requests than this, a site is judged on its rate alone.
const MIN_PROFILE: f64 = 30.0;
/// Rate-only confirmation: this many anomalous seconds at this multiple of the baseline.
const RATE_ONLY_SECS: u32 = 3;
const RATE_ONLY_RATIO: f64 = 5.0;
/// Rate-only confirmation also needs this many requests a second over the surge so far: a crowd
/// of a few dozen users at a site too quiet to profile is not told from an attack by its rate.
const RATE_ONLY_MIN_RPS: f64 = 30.0;
/// Watched seconds whose every request (not only the hash sample) joins the incident's sample:
/// a surge at a small site has few requests a second, and a signature needs [`signature::MIN_SAMPLE`].
const DENSE_SAMPLE_SECS: i64 = 60;
/// Requests matching an incident's signature, beyond what the second's other requests would send
/// matching it, from which a second shows the attack (at least; see [`shows_attack`]).
const ATTACK_MATCHES: f64 = 5.0;
/// Whether a second of `requests`, `matched` of them matching an incident's signature, shows the
/// attack: the matching ones exceed what the site's normal traffic beside the others would send
/// matching it (`normal_share` of its normal requests match it: `share / (1 - share)` per request
/// that does not) by [`ATTACK_MATCHES`], and by three standard deviations of that count. A
/// signature naming a value the site's own audience has (a country that sends an eighth of its
/// requests) otherwise read the site's own traffic of that value as the attack going on, and the
/// incident never ended.
fn shows_attack(matched: f64, requests: u64, normal_share: f64) -> bool {
    let others = (requests as f64 - matched).max(0.0);
    let normal = others * normal_share / (1.0 - normal_share).max(0.05);
    matched - normal >= ATTACK_MATCHES.max(3.0 * normal.sqrt())
}

/// Weight of a second that shows the attack in the levels `Incident::shown` averages.
const SHOWN_WEIGHT: f64 = 0.2;
const TOP_ATTACKERS: usize = 20;
const MAX_TRACKED_IPS: usize = 65_536;
/// Pre-detection seconds whose sampled requests are kept for the timeline.
const MAX_PRE_DETECTION_TUPLES: usize = 65_536;

/// One `incidents` row.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentRow {
    pub incident_id: String,
    pub site: Arc<str>,
    pub vector: &'static str,
    pub status: &'static str,
    pub start_ts: Nanos,
    pub detected_ts: Nanos,
    pub peak_ts: Nanos,
    pub end_ts: Option<Nanos>,
    pub peak_rps: f64,
    pub baseline_rps: f64,
    pub attack_requests: u64,
    pub distinct_ips: u64,
    pub signature: String,
    /// JSON `[{"ip", "requests"}]`, most requests first: each address's signature-matching
    /// requests counted from `watch_from` on, plus those of the sampled requests before it —
    /// never more than the address sent.
    pub top_attackers: String,
    /// Event time of the state this row describes (the latest row of an incident wins).
    pub updated_ts: Nanos,
}

/// One `incident_timeline` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineRow {
    pub ts: Nanos,
    pub requests: u64,
    pub matched_requests: u64,
    pub status: [u64; 4],
}

/// Rows queued by the detector; timeline rows carry their incident id.
#[derive(Debug, Default, Clone)]
pub struct DetectorOutput {
    pub incidents: Vec<IncidentRow>,
    pub timeline: Vec<(Arc<str>, TimelineRow)>,
}

impl DetectorOutput {
    pub fn len(&self) -> usize {
        self.incidents.len() + self.timeline.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn append(&mut self, mut other: DetectorOutput) {
        self.incidents.append(&mut other.incidents);
        self.timeline.append(&mut other.timeline);
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DetectorStats {
    pub seconds_closed: u64,
    /// Events for seconds already closed (counted in the rollups, not seen by the detector).
    pub late_events: u64,
    pub suspicions: u64,
    pub incidents: u64,
    /// Sites learned afresh after their first rate and profile turned out not to be their
    /// normal ([`baseline::RateBaseline::outgrown`]).
    pub relearned: u64,
}

/// A sampled request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sampled {
    hash: u64,
    tuple: Tuple,
    ip: IpAddr,
}

impl PartialOrd for Sampled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Sampled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.hash.cmp(&other.hash).then(self.tuple.cmp(&other.tuple)).then(self.ip.cmp(&other.ip))
    }
}

/// One open second of one site.
#[derive(Debug, Clone, Default)]
struct Bucket {
    sec: i64,
    requests: u64,
    status: [u64; 4],
    sampled: Vec<Sampled>,
    /// Every request, once the site's incident watches this second.
    full: Vec<Sampled>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Suspect,
    Active,
    Cooling,
}

/// A second before detection, kept to write the timeline once detected.
#[derive(Debug, Clone)]
struct PreSecond {
    sec: i64,
    requests: u64,
    status: [u64; 4],
    sampled: Vec<Sampled>,
}

#[derive(Debug, Clone)]
struct Incident {
    phase: Phase,
    start: i64,
    watch_from: i64,
    detected: Option<i64>,
    anomalous_secs: u32,
    calm_run: u32,
    last_anomalous: i64,
    baseline_rps: f64,
    /// Bottom-k by hash of the sampled requests of anomalous seconds.
    sample: BinaryHeap<Sampled>,
    sum_requests: f64,
    sum_expected: f64,
    signature: Option<Signature>,
    vector: &'static str,
    pre: Vec<PreSecond>,
    pre_tuples: usize,
    peak_rps: u64,
    peak_sec: i64,
    attack_requests: u64,
    ips: ClientSketch,
    top: HashMap<IpAddr, u64>,
    /// Texts of the values seen from `watch_from` on (for rendering the signature).
    names: HashMap<(u8, u64), String>,
    last_row_sec: i64,
    last_signature_sec: i64,
    /// Requests a second not matching and matching the signature, averaged over the seconds
    /// that showed the attack (see [`Incident::attack_in`]); `None` before the first.
    shown: Option<(f64, f64)>,
    /// Requests of the incident's timeline seconds within [`LATE_HORIZON_SECS`] of the newest,
    /// for counting late events into the peak.
    recent_totals: VecDeque<(i64, u64)>,
}

/// How far back an incident keeps its seconds' totals (the windows' default allowed lateness).
const LATE_HORIZON_SECS: i64 = 600;

#[derive(Debug, Clone, Default)]
struct SiteState {
    baseline: RateBaseline,
    /// The last seconds' counts, for the window test.
    recent: RecentCounts,
    /// Each hour of the day's usual rate.
    cycle: DailyCycle,
    last_sec: Option<i64>,
    profile: Option<Box<SiteProfile>>,
    buckets: Vec<Bucket>,
    incident: Option<Box<Incident>>,
    /// The site was learned afresh once ([`baseline::RateBaseline::outgrown`]): never again, so
    /// traffic that rises and falls cannot keep it warming up (and unjudged).
    relearned: bool,
    /// The newest time of the site's events (not past the stream's event time).
    newest: Option<Nanos>,
    /// Every second of the site before this one is closed (by its own clock; the stream's
    /// `closed_before` may be further on).
    closed_before: Option<i64>,
}

/// A tracked site: its name and its state.
#[derive(Debug)]
struct Tracked {
    name: SortedName,
    state: SiteState,
}

/// The detector of one stream (the embedded pipeline, or one Kafka partition).
pub struct AttackDetector {
    cfg: DetectorConfig,
    /// Where each site's state is in `states` (one lookup per event).
    index: ahash::HashMap<Arc<str>, u32>,
    /// Every tracked site; sites are never dropped, so positions stay valid.
    states: Vec<Tracked>,
    max_ts: Option<Nanos>,
    /// The last events' edges and times, for the clock seconds close behind ([`RecentEdges`]).
    edges: RecentEdges,
    /// Every second before this one is closed.
    closed_before: Option<i64>,
    out: DetectorOutput,
    /// Where in `out.timeline` the row of late events of (site position, second) is.
    late_rows: ahash::HashMap<(u32, i64), usize>,
    stats: DetectorStats,
}

/// Events of the stream the detector's clock looks at.
const RECENT_EDGES: usize = 32;

/// The edge (colo) and time of each of the stream's last [`RECENT_EDGES`] events. The detector's
/// clock is the newest time among them of any edge but the one with the newest time of all (the
/// newest time of all when they are of one edge): an edge whose clock runs ahead of the others
/// moves it only while it alone sends; an edge that sends a small share of the events, and is not
/// among the last ones, does not hold it back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct RecentEdges {
    /// (edge, time), oldest first once full; `next` is where the next one goes.
    events: Vec<(u64, Nanos)>,
    next: usize,
}

impl RecentEdges {
    fn push(&mut self, colo: &str, ts: Nanos) {
        // The code (three or four letters) in a number; longer texts share one by their first 8.
        let edge = colo.bytes().take(8).fold(0u64, |x, b| (x << 8) | u64::from(b));
        if self.events.len() < RECENT_EDGES {
            self.events.push((edge, ts));
        } else {
            self.events[self.next] = (edge, ts);
        }
        self.next = (self.next + 1) % RECENT_EDGES;
    }

    /// See the type's docs; `None` before the first event.
    fn clock(&self) -> Option<Nanos> {
        let &(ahead, newest) = self.events.iter().max_by_key(|(_, ts)| *ts)?;
        Some(self.events.iter().filter(|(e, _)| *e != ahead).map(|(_, ts)| *ts).max().unwrap_or(newest))
    }

    fn encode(&self, e: &mut Enc) {
        e.len(self.events.len());
        // Oldest first, so that the order of replacement survives.
        let start = if self.events.len() < RECENT_EDGES { 0 } else { self.next };
        for i in 0..self.events.len() {
            let (edge, ts) = self.events[(start + i) % self.events.len()];
            e.u64(edge);
            e.i64(ts);
        }
    }

    fn decode(d: &mut Dec<'_>) -> Result<Self, String> {
        let n = d.len()?;
        if n > RECENT_EDGES {
            return Err(format!("{n} recent edges in the detector state, more than {RECENT_EDGES}"));
        }
        let mut events = Vec::with_capacity(n);
        for _ in 0..n {
            events.push((d.u64()?, d.i64()?));
        }
        Ok(RecentEdges { next: n % RECENT_EDGES, events })
    }
}

fn sec_of(ts: Nanos) -> i64 {
    ts.div_euclid(NANOS_PER_SEC)
}

fn status_slot(status: u16) -> Option<usize> {
    match status / 100 {
        2 => Some(0),
        3 => Some(1),
        4 => Some(2),
        5 => Some(3),
        _ => None,
    }
}

impl AttackDetector {
    pub fn new(cfg: DetectorConfig) -> Self {
        Self {
            cfg,
            index: ahash::HashMap::default(),
            states: Vec::new(),
            max_ts: None,
            edges: RecentEdges::default(),
            closed_before: None,
            out: DetectorOutput::default(),
            late_rows: ahash::HashMap::default(),
            stats: DetectorStats::default(),
        }
    }

    pub fn config(&self) -> &DetectorConfig {
        &self.cfg
    }

    pub fn stats(&self) -> DetectorStats {
        self.stats
    }

    pub fn tracked_sites(&self) -> usize {
        self.states.len()
    }

    /// The position of `name`'s state, tracking the site from now on if it is new.
    fn site_position(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = u32::try_from(self.states.len()).expect("fewer than 2^32 sites per stream");
        let name: Arc<str> = Arc::from(name);
        self.index.insert(name.clone(), i);
        self.states.push(Tracked { name: SortedName::new(name), state: SiteState::default() });
        i
    }

    /// Rows queued since the last call.
    pub fn take_output(&mut self) -> DetectorOutput {
        self.late_rows.clear();
        std::mem::take(&mut self.out)
    }

    pub fn pending_rows(&self) -> usize {
        self.out.len()
    }

    /// Take one counted event. Seconds the newest event puts behind the watermark are closed
    /// first, so an event never lands in a second that is judged already. `false` when its own
    /// second was judged already (an event more than the allowed disorder late).
    pub fn observe(&mut self, ev: &EdgeEvent<'_>) -> bool {
        self.observe_at(ev, Some(ev.ts))
    }

    /// [`Self::observe`] with the stream's event time given (the windows', which an event far
    /// ahead of it does not move by itself; `None` before it starts): a site's seconds close
    /// behind its clock, and at the latest behind the stream's (see the module docs), never past
    /// `event_time`, not behind `ev.ts`.
    pub fn observe_at(&mut self, ev: &EdgeEvent<'_>, event_time: Option<Nanos>) -> bool {
        let sec = sec_of(ev.ts);
        let mut pos = self.index.get(ev.site.as_ref()).copied();
        if let Some(event_time) = event_time {
            let ts = ev.ts.min(event_time);
            self.edges.push(&ev.colo, ts);
            // Every site's seconds close the site lag behind the newest time of the last events'
            // edges but the one furthest ahead: one edge whose clock runs ahead of the others
            // does not make their events late (and unjudged). Computed only when a second may
            // close.
            let lag = self.cfg.site_lag();
            if self.closed_before.is_none_or(|c| sec_of(event_time - lag) > c) {
                let clock = self.edges.clock().unwrap_or(event_time).min(event_time);
                if self.max_ts.is_none_or(|m| clock > m) {
                    self.max_ts = Some(clock);
                    let wm_sec = sec_of(clock - lag);
                    if self.closed_before.is_none_or(|c| wm_sec > c) {
                        self.close_before(wm_sec);
                    }
                }
            }
            if pos.is_none() && !self.closed_before.is_some_and(|c| sec < c) {
                pos = Some(self.site_position(ev.site.as_ref()));
            }
            // The site's own seconds close the allowed disorder behind its newest event, held
            // to the stream's clock (which leaves out the edge furthest ahead): a site whose
            // events come later than the others' (its Logpush job behind theirs) is judged on
            // its own time.
            if let (Some(p), Some(clock)) = (pos, self.max_ts) {
                let st = &mut self.states[p as usize].state;
                let newest = st.newest.map_or(ts, |n| n.max(ts));
                st.newest = Some(newest);
                let wm_sec = sec_of(newest.min(clock) - self.cfg.allowed_disorder);
                if st.closed_before.is_none_or(|c| wm_sec > c) {
                    self.close_site(p, wm_sec);
                }
            }
        }
        // A tracked site's own closed seconds (the stream's closing sets them for the sites it
        // closes); the stream's for a site not tracked yet.
        let closed = match pos {
            Some(p) => self.states[p as usize].state.closed_before,
            None => self.closed_before,
        };
        if closed.is_some_and(|c| sec < c) {
            self.stats.late_events += 1;
            self.late_event(ev, sec);
            return false;
        }
        let pos = pos.unwrap_or_else(|| self.site_position(ev.site.as_ref()));
        let st = &mut self.states[pos as usize].state;
        let bi = match st.buckets.iter().position(|b| b.sec == sec) {
            Some(bi) => bi,
            None => {
                st.buckets.push(Bucket { sec, ..Bucket::default() });
                st.buckets.len() - 1
            }
        };
        let watched = st.incident.as_ref().is_some_and(|i| sec >= i.watch_from);
        let b = &mut st.buckets[bi];
        b.requests += 1;
        if let Some(s) = status_slot(ev.status) {
            b.status[s] += 1;
        }
        let hash = event_hash(ev);
        let sampled = hash.is_multiple_of(self.cfg.sample_one_in.max(1));
        if sampled || watched {
            let t = tuple(ev);
            if sampled {
                b.sampled.push(Sampled { hash, tuple: t, ip: ev.client_ip });
            }
            if watched {
                b.full.push(Sampled { hash, tuple: t, ip: ev.client_ip });
                if sampled || st.incident.as_ref().is_some_and(|i| i.samples_every_request(sec)) {
                    let inc = st.incident.as_mut().expect("watched");
                    for a in Attr::ALL {
                        let decodable = matches!(a, Attr::Asn | Attr::Status) || (matches!(a, Attr::Ip | Attr::Prefix) && ev.client_ip.is_ipv4());
                        if !decodable {
                            inc.names.entry((a as u8, t[a as usize])).or_insert_with(|| value_text(a, ev));
                        }
                    }
                }
            }
        }
        true
    }

    /// An event for a second already closed: counted by the site's incident if one was under
    /// way then (see the module docs).
    fn late_event(&mut self, ev: &EdgeEvent<'_>, sec: i64) {
        let Some(&pos) = self.index.get(ev.site.as_ref()) else { return };
        let Tracked { name, state: st } = &mut self.states[pos as usize];
        let Some(inc) = st.incident.as_mut().filter(|i| sec >= i.start) else { return };
        let slot = status_slot(ev.status);
        if inc.phase == Phase::Suspect {
            // Its seconds are written once it is confirmed, with these counts.
            if let Some(p) = inc.pre.iter_mut().find(|p| p.sec == sec) {
                p.requests += 1;
                if let Some(s) = slot {
                    p.status[s] += 1;
                }
            }
            return;
        }
        let total = inc.recent_totals.iter_mut().find(|(s, _)| *s == sec).map(|(_, n)| {
            *n += 1;
            *n
        });
        let matched = match &inc.signature {
            Some(sig) => sig.matches(&tuple(ev)),
            // Confirmed on its rate: the excess over the baseline grows by this request.
            None => total.is_some_and(|n| (n as f64 - inc.baseline_rps).max(0.0).round() > (n as f64 - 1.0 - inc.baseline_rps).max(0.0).round()),
        };
        if matched {
            inc.attack_requests += 1;
            inc.ips.insert(ev.client_ip);
            count_ip(&mut inc.top, ev.client_ip, 1);
        }
        if let Some(n) = total.filter(|&n| n > inc.peak_rps) {
            inc.peak_rps = n;
            inc.peak_sec = sec;
        }
        let out = &mut self.out;
        let i = *self.late_rows.entry((pos, sec)).or_insert_with(|| {
            let id: Arc<str> = Arc::from(incident_id(&name.name, inc.start));
            out.timeline.push((id, TimelineRow { ts: sec * NANOS_PER_SEC, requests: 0, matched_requests: 0, status: [0; 4] }));
            out.timeline.len() - 1
        });
        let row = &mut out.timeline[i].1;
        row.requests += 1;
        row.matched_requests += u64::from(matched);
        if let Some(s) = slot {
            row.status[s] += 1;
        }
    }

    /// The input went quiet: judge every open second, and write the current state of every
    /// incident still open. Its row is otherwise written every `update_every_secs`: the input's
    /// last seconds were in its timeline but not in its attack requests, distinct IPs or peak.
    /// Incidents stay open (a quiet partition may go on).
    pub fn finish(&mut self) {
        self.end(InputEnd::Quiet);
    }

    /// The end of an input nothing continues (a replayed file set; not a partition, which only
    /// goes quiet): [`Self::finish`], except that an incident cooling down — its attack over, the
    /// cool-down waiting for it to come back — has ended. One still under attack stays active:
    /// the data ends, not necessarily the attack.
    pub fn end_input(&mut self) {
        self.end(InputEnd::Data);
    }

    /// Judge every open second and write the state of every incident still open, as `end` has
    /// it: [`InputEnd::Quiet`] ends none, [`InputEnd::Data`] those cooling down,
    /// [`InputEnd::Traffic`] all of them, at their last second.
    pub fn end(&mut self, end: InputEnd) {
        // Each site's open seconds, up to its newest: a site whose events come behind the
        // others' goes on from there when the input does.
        for pos in 0..self.states.len() {
            if let Some(last) = self.states[pos].state.buckets.iter().map(|b| b.sec).max() {
                self.close_site(pos as u32, last + 1);
            }
        }
        for Tracked { name, state: st } in &mut self.states {
            let (Some(inc), Some(last)) = (st.incident.as_mut(), st.last_sec) else { continue };
            let mut ctx = Ctx { cfg: &self.cfg, out: &mut self.out, stats: &mut self.stats, site: &name.name };
            let ends = match end {
                InputEnd::Quiet => false,
                InputEnd::Data => inc.phase == Phase::Cooling,
                InputEnd::Traffic => inc.phase != Phase::Suspect,
            };
            if ends {
                // At its last second, unless a row is there already: the ended row must be the
                // latest, not tie with it.
                ctx.emit_status(inc, if inc.last_row_sec < last { last } else { last + 1 }, "ended");
                st.incident = None;
            } else if inc.phase != Phase::Suspect && inc.last_row_sec < last {
                ctx.emit(inc, last);
            }
        }
    }

    /// Close the open seconds of the site at `pos` before `before`, oldest first.
    fn close_site(&mut self, pos: u32, before: i64) {
        let Tracked { name, state: st } = &mut self.states[pos as usize];
        let mut ctx = Ctx { cfg: &self.cfg, out: &mut self.out, stats: &mut self.stats, site: &name.name };
        ctx.close_until(st, before);
    }

    /// The stream's clock is the site lag past `before`: every site whose events are all before
    /// it (gone quiet, or further behind than the site lag) has its open seconds closed, and an
    /// incident under way there judges the quiet seconds up to it (so that it cools down and ends
    /// without more traffic of its site). Sites with events from `before` on are left to their
    /// own clocks, so one within the site lag of the stream is judged on its own time only.
    fn close_before(&mut self, before: i64) {
        let before_ns = before.saturating_mul(NANOS_PER_SEC);
        for Tracked { name, state: st } in &mut self.states {
            if st.newest.is_some_and(|n| n >= before_ns) || st.closed_before.is_some_and(|c| c >= before) {
                continue;
            }
            let mut ctx = Ctx { cfg: &self.cfg, out: &mut self.out, stats: &mut self.stats, site: &name.name };
            ctx.close_until(st, before);
            if st.incident.is_some() {
                ctx.quiet_until(st, before);
            }
        }
        self.closed_before = Some(self.closed_before.map_or(before, |c| c.max(before)));
    }
}

/// How an input ended, for the incidents still open (see [`AttackDetector::end`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputEnd {
    /// It went quiet and may go on (a partition): no incident ends.
    Quiet,
    /// The data ended (a replay), the traffic it records may go on: an incident cooling down has
    /// ended, one under attack stays active.
    Data,
    /// The traffic stopped with it (the demo's generator was stopped): every incident has ended.
    /// Left active, an incident of a stopped demo stayed active for good, over restarts too.
    Traffic,
}

/// What closing a second needs besides the site's state.
struct Ctx<'a> {
    cfg: &'a DetectorConfig,
    out: &'a mut DetectorOutput,
    stats: &'a mut DetectorStats,
    site: &'a Arc<str>,
}

impl Ctx<'_> {
    /// Close the site's open seconds before `before`, oldest first; its seconds before `before`
    /// are closed from now on.
    fn close_until(&mut self, st: &mut SiteState, before: i64) {
        while let Some(i) = st.buckets.iter().enumerate().filter(|(_, b)| b.sec < before).min_by_key(|(_, b)| b.sec).map(|(i, _)| i) {
            let bucket = st.buckets.swap_remove(i);
            self.close_second(st, bucket);
        }
        st.closed_before = Some(st.closed_before.map_or(before, |c| c.max(before)));
    }

    fn close_second(&mut self, st: &mut SiteState, b: Bucket) {
        self.quiet_until(st, b.sec);
        st.last_sec = Some(b.sec);
        self.stats.seconds_closed += 1;
        self.judge(st, b);
    }

    /// Judge the seconds without requests from the site's last closed second to `before`.
    fn quiet_until(&mut self, st: &mut SiteState, before: i64) {
        if let Some(last) = st.last_sec.filter(|&l| before > l + 1) {
            self.quiet_seconds(st, last + 1, before - last - 1);
            if let Some(p) = st.profile.as_mut() {
                p.skip_silence(before - last - 1);
            }
            st.last_sec = Some(before - 1);
        }
    }

    /// `n` seconds from `from` without a request.
    fn quiet_seconds(&mut self, st: &mut SiteState, from: i64, n: i64) {
        let mut sec = from;
        while sec < from + n && st.incident.is_some() {
            self.judge(st, Bucket { sec, ..Bucket::default() });
            sec += 1;
        }
        let silence = (from + n - sec) as u64;
        st.baseline.update_quiet(st.baseline.learnable_silence(silence));
    }

    fn judge(&mut self, st: &mut SiteState, b: Bucket) {
        let x = b.requests as f64;
        let t = self.cfg.thresholds;
        st.cycle.count(b.sec, b.requests, st.incident.as_ref().is_some_and(|i| i.phase != Phase::Suspect));
        st.baseline.floor = st.cycle.floor(b.sec);
        // `surge`: the rate's judgement; `anomalous`: the attack's, once an incident is under way.
        // The window's lower floor finds surges; an incident under way, and calm, are judged at
        // the full floor ([`Thresholds::at_full_floor`]).
        let full = t.at_full_floor();
        let under_way = st.incident.as_ref().is_some_and(|i| i.phase != Phase::Suspect);
        let surge = st.baseline.judge(&mut st.recent, b.sec, x, if under_way { &full } else { &t });
        let (mut anomalous, mut calm) = (surge, st.baseline.is_calm_in(x, &full));
        if let Some(inc) = st.incident.as_mut().filter(|i| i.phase != Phase::Suspect) {
            (anomalous, calm) = inc.attack_in(&b, surge, calm, st.profile.as_deref());
        }
        let Some(mut inc) = st.incident.take() else {
            if anomalous {
                self.stats.suspicions += 1;
                let mut inc = Box::new(Incident::new(b.sec, st.baseline.expected(), self.cfg.watch_delay()));
                self.suspect_second(st, &mut inc, b, true);
                st.incident = Some(inc);
            } else {
                if !st.relearned && st.baseline.outgrown(&st.recent) {
                    // The site's first rate and profile were not its normal (an attack during
                    // the warm-up): learn both afresh, from this second on.
                    self.stats.relearned += 1;
                    st.relearned = true;
                    st.baseline = RateBaseline::new();
                    st.profile = None;
                    st.cycle.disturb();
                }
                let typical = st.baseline.is_typical(x);
                st.baseline.update(x);
                if typical && !b.sampled.is_empty() {
                    let p = st.profile.get_or_insert_with(|| Box::new(SiteProfile::new(b.sec)));
                    let tuples: Vec<Tuple> = b.sampled.iter().map(|s| s.tuple).collect();
                    p.add(b.sec, &tuples);
                }
            }
            return;
        };
        if anomalous {
            inc.anomalous_secs += 1;
            inc.calm_run = 0;
            inc.last_anomalous = b.sec;
        } else if calm {
            inc.calm_run += 1;
        }
        match inc.phase {
            Phase::Suspect => {
                if !anomalous && calm && inc.calm_run >= CALM_TO_DROP_SUSPECT {
                    // A blip: forget it; the baseline learns this second.
                    st.baseline.update(x);
                    return;
                }
                if b.sec - inc.start >= SUSPECT_ADAPT_SECS {
                    st.baseline.update_unclamped(x);
                }
                if inc.pre.first().is_some_and(|p| b.sec - p.sec >= 2 * SUSPECT_RECENT_SECS) {
                    inc.keep_recent(b.sec - SUSPECT_RECENT_SECS, st.baseline.expected(), self.cfg.sample_cap);
                }
                self.suspect_second(st, &mut inc, b, anomalous);
                st.incident = Some(inc);
            }
            Phase::Active | Phase::Cooling => {
                if anomalous {
                    self.add_sample(&mut inc, &b, st.baseline.expected());
                    if inc.phase == Phase::Cooling {
                        // A new wave may come from other senders: the signature follows it from
                        // its first second, as the timeline counts that second by it.
                        self.refresh_signature(&mut inc, st, b.sec);
                        inc.phase = Phase::Active;
                        self.timeline_second(&mut inc, &b);
                        self.emit(&mut inc, b.sec);
                        st.incident = Some(inc);
                        return;
                    }
                    if b.sec - inc.last_signature_sec >= self.cfg.update_every_secs {
                        self.refresh_signature(&mut inc, st, b.sec);
                    }
                }
                self.timeline_second(&mut inc, &b);
                if inc.phase == Phase::Active && inc.calm_run >= CALM_TO_COOL {
                    inc.phase = Phase::Cooling;
                    self.emit(&mut inc, b.sec);
                } else if inc.phase == Phase::Cooling && b.sec - inc.last_anomalous >= self.cfg.cooling_secs {
                    self.emit_status(&mut inc, b.sec, "ended");
                    st.baseline.update(x);
                    return;
                } else if b.sec - inc.last_row_sec >= self.cfg.update_every_secs {
                    self.emit(&mut inc, b.sec);
                }
                st.incident = Some(inc);
            }
        }
    }

    /// A second while suspected: keep it for the timeline, sample it if anomalous, and try to
    /// confirm.
    fn suspect_second(&mut self, st: &mut SiteState, inc: &mut Incident, b: Bucket, anomalous: bool) {
        if anomalous {
            self.add_sample(inc, &b, st.baseline.expected());
        }
        inc.pre_tuples += b.sampled.len();
        inc.pre.push(PreSecond { sec: b.sec, requests: b.requests, status: b.status, sampled: b.sampled });
        while inc.pre_tuples > MAX_PRE_DETECTION_TUPLES && inc.pre.len() > 1 {
            // Drop the oldest seconds' requests; their timeline falls back to the excess estimate.
            let first = inc.pre.iter_mut().find(|p| !p.sampled.is_empty()).expect("tuples remain");
            inc.pre_tuples -= first.sampled.len();
            first.sampled = Vec::new();
        }
        if anomalous && inc.anomalous_secs >= 2 && self.confirm(st, inc, b.sec) {
            inc.phase = Phase::Active;
            inc.detected = Some(b.sec);
            self.stats.incidents += 1;
            inc.skip_seconds_before_the_attack(st.profile.as_deref());
            // The timeline from the start: exact counts, matches estimated from the sample.
            let pre = std::mem::take(&mut inc.pre);
            for p in pre {
                let matched = match &inc.signature {
                    _ if p.requests == 0 => 0,
                    Some(sig) if !p.sampled.is_empty() => {
                        let m: Vec<&Sampled> = p.sampled.iter().filter(|s| sig.matches(&s.tuple)).collect();
                        let scale = p.requests as f64 / p.sampled.len() as f64;
                        for s in &m {
                            inc.ips.insert(s.ip);
                            // The requests seen, not scaled up: an address that sent one request
                            // of a rotating flood was listed with the sample's scale (4 or 5).
                            count_ip(&mut inc.top, s.ip, 1);
                        }
                        ((m.len() as f64 * scale).round() as u64).min(p.requests)
                    }
                    _ => (p.requests as f64 - inc.baseline_rps).max(0.0).round() as u64,
                };
                self.push_timeline(inc, p.sec, p.requests, matched, p.status);
            }
            inc.pre_tuples = 0;
            self.emit(inc, b.sec);
        }
    }

    fn confirm(&mut self, st: &SiteState, inc: &mut Incident, sec: i64) -> bool {
        let profiled = st.profile.as_ref().map_or(0.0, |p| p.observations(sec));
        // Deriving costs a pass over the sample: every second for the first 30, then every 5.
        let age = sec - inc.start;
        if age > 30 && age % 5 != 0 {
            return false;
        }
        self.refresh_signature(inc, st, sec);
        if profiled < MIN_PROFILE {
            // Over the seconds its sums hold ([`Incident::keep_recent`]).
            let held = sec - inc.pre.first().map_or(inc.start, |p| p.sec);
            let rate = inc.sum_requests / (held + 1).max(1) as f64;
            return inc.anomalous_secs >= RATE_ONLY_SECS && inc.sum_requests >= RATE_ONLY_RATIO * inc.sum_expected.max(1.0) && rate >= RATE_ONLY_MIN_RPS;
        }
        inc.signature.as_ref().is_some_and(|s| s.precision >= CONFIRM_PRECISION && s.coverage >= CONFIRM_COVERAGE && s.is_discriminating())
    }

    fn refresh_signature(&mut self, inc: &mut Incident, st: &SiteState, sec: i64) {
        inc.last_signature_sec = sec;
        let empty = SiteProfile::new(sec);
        let profile = st.profile.as_deref().unwrap_or(&empty);
        let sample: Vec<Tuple> = inc.sample.iter().map(|s| s.tuple).collect();
        let normal_fraction = if inc.sum_requests > 0.0 { inc.sum_expected / inc.sum_requests } else { 1.0 };
        // A signature naming the senders is not replaced by one that names nobody (a later
        // sample dominated by the page the attack asks for).
        let keeps_naming = |sig: &Signature| sig.is_discriminating() || !inc.signature.as_ref().is_some_and(Signature::is_discriminating);
        if let Some(sig) = derive(&sample, normal_fraction, profile).filter(keeps_naming) {
            inc.vector = classify(&sig, &inc.sample, &inc.names);
            inc.signature = Some(sig);
        }
    }

    fn add_sample(&mut self, inc: &mut Incident, b: &Bucket, expected: f64) {
        inc.sum_requests += b.requests as f64;
        inc.sum_expected += expected.min(b.requests as f64);
        let requests = if inc.samples_every_request(b.sec) { &b.full } else { &b.sampled };
        inc.add_to_sample(requests, self.cfg.sample_cap);
    }

    /// A second of an active or cooling incident: every request matched.
    fn timeline_second(&mut self, inc: &mut Incident, b: &Bucket) {
        let mut matched = 0u64;
        if inc.signature.is_none() {
            // Confirmed on its rate alone: the excess over the baseline.
            matched = (b.requests as f64 - inc.baseline_rps).max(0.0).round() as u64;
        }
        if let Some(sig) = &inc.signature {
            if b.sec >= inc.watch_from {
                for s in &b.full {
                    if sig.matches(&s.tuple) {
                        matched += 1;
                        inc.ips.insert(s.ip);
                        count_ip(&mut inc.top, s.ip, 1);
                    }
                }
            } else if !b.sampled.is_empty() {
                let m = b.sampled.iter().filter(|s| sig.matches(&s.tuple)).count();
                matched = ((m as f64 * b.requests as f64 / b.sampled.len() as f64).round() as u64).min(b.requests);
            }
        }
        self.push_timeline(inc, b.sec, b.requests, matched, b.status);
    }

    fn push_timeline(&mut self, inc: &mut Incident, sec: i64, requests: u64, matched: u64, status: [u64; 4]) {
        inc.attack_requests += matched;
        inc.recent_totals.push_back((sec, requests));
        while inc.recent_totals.front().is_some_and(|&(s, _)| s < sec - LATE_HORIZON_SECS) {
            inc.recent_totals.pop_front();
        }
        if requests > inc.peak_rps {
            inc.peak_rps = requests;
            inc.peak_sec = sec;
        }
        let id: Arc<str> = Arc::from(incident_id(self.site, inc.start));
        self.out.timeline.push((id, TimelineRow { ts: sec * NANOS_PER_SEC, requests, matched_requests: matched, status }));
    }

    fn emit(&mut self, inc: &mut Incident, sec: i64) {
        let status = match inc.phase {
            Phase::Active => "active",
            Phase::Cooling => "cooling",
            Phase::Suspect => return,
        };
        self.emit_status(inc, sec, status);
    }

    fn emit_status(&mut self, inc: &mut Incident, sec: i64, status: &'static str) {
        inc.last_row_sec = sec;
        let end_ts = matches!(status, "cooling" | "ended").then_some((inc.last_anomalous + 1) * NANOS_PER_SEC);
        let names = &inc.names;
        let signature = inc.signature.as_ref().map(|s| s.to_json(|a, v| value_name(names, a, v)));
        let mut top: Vec<(IpAddr, u64)> = inc.top.iter().map(|(ip, n)| (*ip, *n)).collect();
        top.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        top.truncate(TOP_ATTACKERS);
        let top: Vec<TopAttacker> = top.into_iter().map(|(ip, requests)| TopAttacker { ip: ip.to_string(), requests }).collect();
        self.out.incidents.push(IncidentRow {
            incident_id: incident_id(self.site, inc.start),
            site: self.site.clone(),
            vector: inc.vector,
            status,
            start_ts: inc.start * NANOS_PER_SEC,
            detected_ts: (inc.detected.unwrap_or(sec) + 1) * NANOS_PER_SEC,
            peak_ts: inc.peak_sec * NANOS_PER_SEC,
            end_ts,
            peak_rps: inc.peak_rps as f64,
            baseline_rps: (inc.baseline_rps * 1000.0).round() / 1000.0,
            attack_requests: inc.attack_requests,
            distinct_ips: inc.ips.estimate_u64(),
            signature: serde_json::to_string(&signature).expect("serializable"),
            top_attackers: serde_json::to_string(&top).expect("serializable"),
            updated_ts: (sec + 1) * NANOS_PER_SEC,
        });
    }
}

#[derive(Debug, Serialize)]
struct TopAttacker {
    ip: String,
    requests: u64,
}

fn count_ip(top: &mut HashMap<IpAddr, u64>, ip: IpAddr, n: u64) {
    if let Some(c) = top.get_mut(&ip) {
        *c += n;
    } else if top.len() < MAX_TRACKED_IPS {
        top.insert(ip, n);
    }
}

/// `<site>-<start as YYYYMMDDTHHMMSSZ>`: stable, readable, unique per site and start second.
pub fn incident_id(site: &str, start_sec: i64) -> String {
    let t = chrono::DateTime::from_timestamp(start_sec, 0).unwrap_or_default();
    format!("{site}-{}", t.format("%Y%m%dT%H%M%SZ"))
}

/// The text of a value id: numbers and IPv4 values are decoded; other texts come from the
/// requests seen (an id never seen with its text is shown as `#<hex>`).
fn value_name(names: &HashMap<(u8, u64), String>, a: Attr, v: u64) -> String {
    const V4: u64 = 1 << 63;
    match a {
        Attr::Asn | Attr::Status => v.to_string(),
        Attr::Ip if v & V4 != 0 => std::net::Ipv4Addr::from(v as u32).to_string(),
        Attr::Prefix if v & V4 != 0 => format!("{}/24", std::net::Ipv4Addr::from(v as u32)),
        _ => names.get(&(a as u8, v)).cloned().unwrap_or_else(|| format!("#{v:016x}")),
    }
}

/// The attack vector, from what the requests matching the signature have in common.
fn classify(sig: &Signature, sample: &BinaryHeap<Sampled>, names: &HashMap<(u8, u64), String>) -> &'static str {
    let matched: Vec<&Sampled> = sample.iter().filter(|s| sig.matches(&s.tuple)).collect();
    if matched.is_empty() {
        return "http_flood";
    }
    let n = matched.len() as f64;
    let share = |f: &dyn Fn(&Sampled) -> bool| matched.iter().filter(|s| f(s)).count() as f64 / n;
    let text = |s: &Sampled, a: Attr| names.get(&(a as u8, s.tuple[a as usize])).map(String::as_str).unwrap_or("");
    let auth_fail = share(&|s| matches!(s.tuple[Attr::Status as usize], 401 | 403));
    let login = share(&|s| {
        let p = text(s, Attr::Path).to_ascii_lowercase();
        ["login", "signin", "sign-in", "auth", "session", "password", "account"].iter().any(|w| p.contains(w))
    });
    let posts = share(&|s| text(s, Attr::Method) == "POST");
    if auth_fail >= 0.3 && login >= 0.5 && posts >= 0.5 {
        return "credential_stuffing";
    }
    if share(&|s| text(s, Attr::Query).contains('*')) >= 0.5 {
        return "cache_busting";
    }
    if share(&|s| s.tuple[Attr::Status as usize] >= 500) >= 0.5 {
        return "origin_error_surge";
    }
    let mut ips: Vec<IpAddr> = matched.iter().map(|s| s.ip).collect();
    ips.sort_unstable();
    ips.dedup();
    let mut paths: Vec<u64> = matched.iter().map(|s| s.tuple[Attr::Path as usize]).collect();
    paths.sort_unstable();
    paths.dedup();
    if ips.len() <= 8 && paths.len() >= 20 {
        return "scraping";
    }
    "http_flood"
}

impl Incident {
    /// Whether second `b` of an active or cooling incident carries the attack (`anomalous`) or
    /// is calm, given the site's judgement of its rate (`surge`, `calm`). The baseline is frozen
    /// while an incident is under way, so the site's own traffic rising meanwhile (back from a
    /// silence, a legitimate surge the attack joined) must not keep the incident alive: once
    /// every request is matched, a second shows the attack when its requests matching the
    /// signature exceed what its other requests would send matching it (by the site's profile)
    /// by [`ATTACK_MATCHES`]; it is judged on its rate then. A second that shows none carries
    /// the attack only if it surges with the attack's volume still in its other requests.
    fn attack_in(&mut self, b: &Bucket, surge: bool, calm: bool, profile: Option<&SiteProfile>) -> (bool, bool) {
        let Some(sig) = self.signature.as_ref().filter(|_| b.sec >= self.watch_from) else {
            return (surge, calm);
        };
        let matched = b.full.iter().filter(|s| sig.matches(&s.tuple)).count() as f64;
        let others = (b.requests as f64 - matched).max(0.0);
        if shows_attack(matched, b.requests, profile.map_or(0.0, |p| sig.normal_share(p))) {
            self.shown = Some(match self.shown {
                None => (others, matched),
                Some((o, m)) => (o + SHOWN_WEIGHT * (others - o), m + SHOWN_WEIGHT * (matched - m)),
            });
            return (surge, calm);
        }
        // None of it shows: the attack goes on unmatched while its volume is still there (it
        // changed its senders; the signature follows it from the samples of these seconds), and
        // is over when what is left is about the other traffic of the seconds that showed it.
        let persists = surge && self.shown.is_none_or(|(o, m)| others >= o + 0.5 * m);
        (persists, !persists)
    }

    /// On confirmation: the incident starts at the first suspected second whose sample shows the
    /// attack (as [`Incident::attack_in`] judges a second, on the sample scaled up), not at an
    /// earlier rise of the site's own traffic the attack joined. Seconds whose sample was dropped
    /// stay. It starts at the first second its suspicion kept at the latest
    /// ([`Incident::keep_recent`]): its timeline starts there.
    fn skip_seconds_before_the_attack(&mut self, profile: Option<&SiteProfile>) {
        if let Some(sig) = &self.signature {
            let normal_share = profile.map_or(0.0, |p| sig.normal_share(p));
            let carries = |p: &PreSecond| {
                if p.sampled.is_empty() {
                    return p.requests > 0;
                }
                let matched = p.sampled.iter().filter(|s| sig.matches(&s.tuple)).count() as f64 * p.requests as f64 / p.sampled.len() as f64;
                shows_attack(matched, p.requests, normal_share)
            };
            if let Some(first) = self.pre.iter().position(carries).filter(|&i| i > 0) {
                self.pre.drain(..first);
                self.pre_tuples = self.pre.iter().map(|p| p.sampled.len()).sum();
            }
        }
        if let Some(first) = self.pre.first().map(|p| p.sec).filter(|&f| f > self.start) {
            self.start = first;
            self.peak_sec = first;
            self.last_row_sec = first;
        }
    }

    /// Add `requests` to the sample: the `cap` of the lowest hashes seen.
    fn add_to_sample(&mut self, requests: &[Sampled], cap: usize) {
        for s in requests {
            if self.sample.len() < cap {
                self.sample.push(*s);
            } else if self.sample.peek().is_some_and(|top| s < top) {
                self.sample.pop();
                self.sample.push(*s);
            }
        }
    }

    /// Keep the seconds from `from` on of a suspicion, for its sample (rebuilt from their hash
    /// samples), its sums and its timeline-to-be ([`SUSPECT_RECENT_SECS`]). Its start stays, so
    /// that the baseline learns a suspicion that old as the site's new normal.
    fn keep_recent(&mut self, from: i64, expected: f64, cap: usize) {
        self.pre.retain(|p| p.sec >= from);
        self.pre_tuples = self.pre.iter().map(|p| p.sampled.len()).sum();
        self.sample.clear();
        self.signature = None;
        (self.sum_requests, self.sum_expected) = (0.0, 0.0);
        let pre = std::mem::take(&mut self.pre);
        for p in &pre {
            self.sum_requests += p.requests as f64;
            self.sum_expected += expected.min(p.requests as f64);
            self.add_to_sample(&p.sampled, cap);
        }
        self.pre = pre;
    }

    /// Whether every request of second `sec`, not only its hash sample, joins the incident's
    /// sample: the first [`DENSE_SAMPLE_SECS`] watched seconds (a small site's surge has few).
    fn samples_every_request(&self, sec: i64) -> bool {
        (self.watch_from..self.watch_from + DENSE_SAMPLE_SECS).contains(&sec)
    }

    /// An incident suspected from second `start`, matching every request exactly `watch_delay`
    /// seconds later ([`DetectorConfig::watch_delay`]).
    fn new(start: i64, baseline_rps: f64, watch_delay: i64) -> Self {
        Incident {
            phase: Phase::Suspect,
            start,
            watch_from: start + watch_delay,
            detected: None,
            anomalous_secs: 0,
            calm_run: 0,
            last_anomalous: start,
            baseline_rps,
            sample: BinaryHeap::new(),
            sum_requests: 0.0,
            sum_expected: 0.0,
            signature: None,
            vector: "http_flood",
            pre: Vec::new(),
            pre_tuples: 0,
            peak_rps: 0,
            peak_sec: start,
            attack_requests: 0,
            ips: ClientSketch::new(),
            top: HashMap::default(),
            names: HashMap::default(),
            last_row_sec: start,
            last_signature_sec: start,
            shown: None,
            recent_totals: VecDeque::new(),
        }
    }
}

// ---- checkpointing ----

/// Version 2 added each site's recent counts and daily cycle; a version-1 state is read with them
/// empty. Version 3 added each incident's recent seconds' totals (read as none before). Version 4
/// added the daily cycle's disturbed hours and whether the site was learned afresh (read as none
/// and no before). Version 5 added the last events' edges the clock follows (read as none before:
/// the clock then follows the newest event until they are known again) and each incident's
/// levels of the seconds that showed its attack (read as none). Version 6 added each site's
/// newest event time and the seconds its own clock closed (read as none: the site's seconds close
/// behind the stream's until its next event). Version 7 keeps which seconds of a site's window were
/// anomalous on their own, where version 6 kept the latest such second (read as that one).
const STATE_VERSION: u8 = 7;
use edgelens_schemas::tables::INCIDENT_VECTORS as VECTORS;

fn enc_sampled(e: &mut Enc, s: &Sampled) {
    e.u64(s.hash);
    for v in s.tuple {
        e.u64(v);
    }
    enc_ip(e, s.ip);
}

fn dec_sampled(d: &mut Dec<'_>) -> Result<Sampled, String> {
    let hash = d.u64()?;
    let mut tuple = [0u64; N_ATTRS];
    for v in &mut tuple {
        *v = d.u64()?;
    }
    Ok(Sampled { hash, tuple, ip: dec_ip(d)? })
}

fn enc_ip(e: &mut Enc, ip: IpAddr) {
    match ip {
        IpAddr::V4(v) => {
            e.u8(4);
            e.u32(u32::from(v));
        }
        IpAddr::V6(v) => {
            e.u8(6);
            e.bytes(&v.octets());
        }
    }
}

fn dec_ip(d: &mut Dec<'_>) -> Result<IpAddr, String> {
    match d.u8()? {
        4 => Ok(IpAddr::V4(d.u32()?.into())),
        6 => {
            let b: [u8; 16] = d.bytes()?.try_into().map_err(|_| "bad IPv6".to_string())?;
            Ok(IpAddr::V6(b.into()))
        }
        t => Err(format!("bad address tag {t}")),
    }
}

fn enc_f64(e: &mut Enc, v: f64) {
    e.u64(v.to_bits());
}

fn dec_f64(d: &mut Dec<'_>) -> Result<f64, String> {
    Ok(f64::from_bits(d.u64()?))
}

fn enc_samples(e: &mut Enc, v: &[Sampled]) {
    e.len(v.len());
    for s in v {
        enc_sampled(e, s);
    }
}

fn dec_samples(d: &mut Dec<'_>) -> Result<Vec<Sampled>, String> {
    let n = d.len()?;
    let mut v = Vec::with_capacity(n.min(1 << 16));
    for _ in 0..n {
        v.push(dec_sampled(d)?);
    }
    Ok(v)
}

impl AttackDetector {
    /// The detector's open state (sites, open seconds, incidents), for a checkpoint.
    pub fn encode_state(&self) -> Vec<u8> {
        let mut e = Enc::new();
        e.u8(STATE_VERSION);
        e.opt_i64(self.max_ts);
        e.opt_i64(self.closed_before);
        let mut sites: Vec<&Tracked> = self.states.iter().collect();
        sites.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        e.len(sites.len());
        for Tracked { name, state: st } in sites {
            let name = &name.name;
            e.str(name);
            enc_f64(&mut e, st.baseline.mean);
            enc_f64(&mut e, st.baseline.slow);
            enc_f64(&mut e, st.baseline.var);
            e.u32(st.baseline.seconds);
            e.opt_i64(st.recent.last);
            for c in st.recent.counts {
                e.u32(c);
            }
            e.u32(u32::from(st.recent.spikes));
            st.cycle.encode(&mut e);
            e.u8(u8::from(st.relearned));
            e.opt_i64(st.last_sec);
            e.opt_i64(st.newest);
            e.opt_i64(st.closed_before);
            match &st.profile {
                Some(p) => {
                    e.u8(1);
                    p.encode(&mut e);
                }
                None => e.u8(0),
            }
            e.len(st.buckets.len());
            for b in &st.buckets {
                e.i64(b.sec);
                e.u64(b.requests);
                for s in b.status {
                    e.u64(s);
                }
                enc_samples(&mut e, &b.sampled);
                enc_samples(&mut e, &b.full);
            }
            match &st.incident {
                Some(inc) => {
                    e.u8(1);
                    inc.encode(&mut e);
                }
                None => e.u8(0),
            }
        }
        self.edges.encode(&mut e);
        e.into_bytes()
    }

    pub fn decode_state(cfg: DetectorConfig, bytes: &[u8]) -> Result<Self, String> {
        let mut d = Dec::new(bytes);
        let v = d.u8()?;
        if !(1..=STATE_VERSION).contains(&v) {
            return Err(format!("detector state version {v}, this edgelens reads 1 to {STATE_VERSION}"));
        }
        let mut det = AttackDetector::new(cfg);
        det.max_ts = d.opt_i64()?;
        det.closed_before = d.opt_i64()?;
        for _ in 0..d.len()? {
            let name = d.str()?;
            if det.index.contains_key(name) {
                return Err(format!("site {name} appears twice in the detector state"));
            }
            let pos = det.site_position(name);
            let mut st = SiteState::default();
            st.baseline.mean = dec_f64(&mut d)?;
            st.baseline.slow = dec_f64(&mut d)?;
            st.baseline.var = dec_f64(&mut d)?;
            st.baseline.seconds = d.u32()?;
            if v >= 2 {
                st.recent.last = d.opt_i64()?;
                // Before version 7: the latest spike only (as the window's one spike).
                let last_spike = if v < 7 { d.opt_i64()? } else { None };
                for c in &mut st.recent.counts {
                    *c = d.u32()?;
                }
                if v >= 7 {
                    st.recent.spikes = u16::try_from(d.u32()?).map_err(|_| "detector state: spikes out of range".to_owned())?;
                } else if let (Some(spike), Some(last)) = (last_spike, st.recent.last)
                    && last - spike < baseline::WINDOW_SECS as i64
                {
                    st.recent.spikes = 1 << spike.rem_euclid(baseline::WINDOW_SECS as i64);
                }
                st.cycle = DailyCycle::decode(&mut d, v >= 4)?;
            }
            if v >= 4 {
                st.relearned = d.u8()? != 0;
            }
            st.last_sec = d.opt_i64()?;
            if v >= 6 {
                st.newest = d.opt_i64()?;
                st.closed_before = d.opt_i64()?;
            } else {
                // Before version 6 every site's seconds closed with the stream's.
                st.closed_before = det.closed_before;
            }
            if d.u8()? == 1 {
                st.profile = Some(Box::new(SiteProfile::decode(&mut d)?));
            }
            for _ in 0..d.len()? {
                let mut b = Bucket { sec: d.i64()?, requests: d.u64()?, ..Bucket::default() };
                for s in &mut b.status {
                    *s = d.u64()?;
                }
                b.sampled = dec_samples(&mut d)?;
                if v >= 2 {
                    b.full = dec_samples(&mut d)?;
                } else {
                    // Version 1 kept no hash of the watched requests: ordered by position instead.
                    for i in 0..d.len()? {
                        let mut tuple = [0u64; N_ATTRS];
                        for x in &mut tuple {
                            *x = d.u64()?;
                        }
                        b.full.push(Sampled { hash: i as u64, tuple, ip: dec_ip(&mut d)? });
                    }
                }
                st.buckets.push(b);
            }
            if d.u8()? == 1 {
                st.incident = Some(Box::new(Incident::decode(&mut d, v)?));
            }
            det.states[pos as usize].state = st;
        }
        if v >= 5 {
            det.edges = RecentEdges::decode(&mut d)?;
        }
        if !d.is_empty() {
            return Err("trailing bytes after the detector state".into());
        }
        Ok(det)
    }
}

impl Incident {
    fn encode(&self, e: &mut Enc) {
        e.u8(match self.phase {
            Phase::Suspect => 0,
            Phase::Active => 1,
            Phase::Cooling => 2,
        });
        e.i64(self.start);
        e.i64(self.watch_from);
        e.opt_i64(self.detected);
        e.u32(self.anomalous_secs);
        e.u32(self.calm_run);
        e.i64(self.last_anomalous);
        enc_f64(e, self.baseline_rps);
        let mut sample: Vec<Sampled> = self.sample.iter().copied().collect();
        sample.sort_unstable();
        enc_samples(e, &sample);
        enc_f64(e, self.sum_requests);
        enc_f64(e, self.sum_expected);
        match &self.signature {
            Some(s) => {
                e.u8(1);
                s.encode(e);
            }
            None => e.u8(0),
        }
        e.u8(VECTORS.iter().position(|v| *v == self.vector).unwrap_or(0) as u8);
        e.len(self.pre.len());
        for p in &self.pre {
            e.i64(p.sec);
            e.u64(p.requests);
            for s in p.status {
                e.u64(s);
            }
            enc_samples(e, &p.sampled);
        }
        e.u64(self.pre_tuples as u64);
        e.u64(self.peak_rps);
        e.i64(self.peak_sec);
        e.u64(self.attack_requests);
        e.bytes(&self.ips.to_bytes());
        let mut top: Vec<(&IpAddr, &u64)> = self.top.iter().collect();
        top.sort_unstable();
        e.len(top.len());
        for (ip, n) in top {
            enc_ip(e, *ip);
            e.u64(*n);
        }
        let mut names: Vec<(&(u8, u64), &String)> = self.names.iter().collect();
        names.sort_unstable();
        e.len(names.len());
        for ((a, v), s) in names {
            e.u8(*a);
            e.u64(*v);
            e.str(s);
        }
        e.i64(self.last_row_sec);
        e.i64(self.last_signature_sec);
        e.len(self.recent_totals.len());
        for &(sec, n) in &self.recent_totals {
            e.i64(sec);
            e.u64(n);
        }
        match self.shown {
            Some((o, m)) => {
                e.u8(1);
                enc_f64(e, o);
                enc_f64(e, m);
            }
            None => e.u8(0),
        }
    }

    fn decode(d: &mut Dec<'_>, version: u8) -> Result<Self, String> {
        let phase = match d.u8()? {
            0 => Phase::Suspect,
            1 => Phase::Active,
            2 => Phase::Cooling,
            p => return Err(format!("bad incident phase {p}")),
        };
        let start = d.i64()?;
        let mut inc = Incident::new(start, 0.0, 0);
        inc.phase = phase;
        inc.watch_from = d.i64()?;
        inc.detected = d.opt_i64()?;
        inc.anomalous_secs = d.u32()?;
        inc.calm_run = d.u32()?;
        inc.last_anomalous = d.i64()?;
        inc.baseline_rps = dec_f64(d)?;
        inc.sample = dec_samples(d)?.into_iter().collect();
        inc.sum_requests = dec_f64(d)?;
        inc.sum_expected = dec_f64(d)?;
        if d.u8()? == 1 {
            inc.signature = Some(Signature::decode(d)?);
        }
        inc.vector = VECTORS.get(d.u8()? as usize).copied().ok_or("bad vector")?;
        for _ in 0..d.len()? {
            let sec = d.i64()?;
            let requests = d.u64()?;
            let mut status = [0u64; 4];
            for s in &mut status {
                *s = d.u64()?;
            }
            inc.pre.push(PreSecond { sec, requests, status, sampled: dec_samples(d)? });
        }
        inc.pre_tuples = d.u64()? as usize;
        inc.peak_rps = d.u64()?;
        inc.peak_sec = d.i64()?;
        inc.attack_requests = d.u64()?;
        inc.ips = ClientSketch::from_bytes(d.bytes()?)?;
        for _ in 0..d.len()? {
            let ip = dec_ip(d)?;
            inc.top.insert(ip, d.u64()?);
        }
        for _ in 0..d.len()? {
            let a = d.u8()?;
            let v = d.u64()?;
            inc.names.insert((a, v), d.str()?.to_owned());
        }
        inc.last_row_sec = d.i64()?;
        inc.last_signature_sec = d.i64()?;
        if version >= 3 {
            for _ in 0..d.len()? {
                inc.recent_totals.push_back((d.i64()?, d.u64()?));
            }
        }
        if version >= 5 && d.u8()? == 1 {
            inc.shown = Some((dec_f64(d)?, dec_f64(d)?));
        }
        Ok(inc)
    }
}

/// Whether `ev` matches a stored signature (for scoring against labelled traffic).
pub fn event_matches(sig: &Signature, ev: &EdgeEvent<'_>) -> bool {
    sig.predicates.iter().all(|p| p.values.binary_search(&value_id(p.attr, ev)).is_ok())
}

#[cfg(test)]
mod tests;
