//! The schedule of the `eval` scenario: which injection runs on which site, when, how long and how
//! strong. Pure: a duration, the candidate sites and a random stream in, the plan out; the
//! generator turns each [`EvalSlot`] into an [`Injection`](super::inject::Injection).
//!
//! Guarantees (for every duration in [`EVAL_MIN_DURATION`]`..=`[`EVAL_MAX_DURATION`] and at least
//! [`EVAL_INJECTIONS`] candidate sites):
//! - exactly the injections of [`EVAL_MIX`], each on its own site (no two on one site);
//! - every injection but the crawlers emits only in seconds `EVAL_FIRST_START..duration -
//!   EVAL_TAIL`, so with the at most 5 s of event-time jitter its events lie between 10 min into
//!   the run and 4 min before its end; the crawlers run from second 0 to the end;
//! - the timed injections come in pairs that overlap in time, the pairs spread over the run.

use rand::RngCore;
use rand_pcg::Pcg64Mcg;

use super::inject::{Shape, Vector};
use super::sampling::{below64, range_u64, uniform};

/// Shortest accepted run: 30 min.
pub(crate) const EVAL_MIN_DURATION: u64 = 1800;
/// Longest accepted run: a day (the crawlers' timelines hold one entry per second).
pub(crate) const EVAL_MAX_DURATION: u64 = 86_400;
/// Injections only use sites of these popularity ranks (1-based, inclusive).
pub(crate) const EVAL_SITE_RANKS: usize = 80;
/// First second an injection (other than a crawler) may emit in: 10 min of history plus the 5 s
/// events may be moved back by the jitter.
pub(crate) const EVAL_FIRST_START: u64 = 605;
/// Calm seconds left after the last injection (other than a crawler): 4 min and a little.
pub(crate) const EVAL_TAIL: u64 = 245;

/// What one slot of the schedule is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum EvalItem {
    Attack { vector: Vector, shape: Shape, single_asn: bool },
    FlashCrowd,
    CachePurge,
    OriginOutage,
    /// Index into the world's crawlers (0 Googlebot, 1 bingbot).
    Crawler { which: usize },
}

impl EvalItem {
    /// Prefix of the truth id.
    pub(crate) fn id_prefix(self) -> &'static str {
        match self {
            EvalItem::Attack { vector, .. } => vector.id_prefix(),
            EvalItem::FlashCrowd => "flash-crowd",
            EvalItem::CachePurge => "cache-purge",
            EvalItem::OriginOutage => "origin-outage",
            EvalItem::Crawler { .. } => "crawler",
        }
    }

    /// Whether the item wants a particular kind of site, and if so whether `site` is one: flash
    /// crowds and cache purges want cacheable pages and a browsing audience (not an API), an
    /// origin error surge a site most of whose requests go to the origin.
    fn fits(self, site: &SiteTraits) -> Option<bool> {
        match self {
            EvalItem::FlashCrowd | EvalItem::CachePurge => Some(!site.api),
            EvalItem::Attack { vector: Vector::OriginErrorSurge, .. } => Some(site.dynamic_share >= 0.6),
            _ => None,
        }
    }
}

impl EvalItem {
    fn is_choosy(self) -> bool {
        matches!(
            self,
            EvalItem::FlashCrowd | EvalItem::CachePurge | EvalItem::Attack { vector: Vector::OriginErrorSurge, .. }
        )
    }
}

/// What the schedule needs to know of a candidate site.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SiteTraits {
    pub api: bool,
    /// Share of the site's requests to dynamic (uncacheable) URLs.
    pub dynamic_share: f64,
}

const fn attack(vector: Vector, shape: Shape, single_asn: bool) -> EvalItem {
    EvalItem::Attack { vector, shape, single_asn }
}

/// Every injection of the scenario, with its number of instances.
pub(crate) const EVAL_MIX: &[(EvalItem, usize)] = &[
    (attack(Vector::HttpFlood, Shape::Fast, true), 1),
    (attack(Vector::HttpFlood, Shape::Fast, false), 2),
    (attack(Vector::HttpFlood, Shape::SlowRamp, false), 2),
    (attack(Vector::HttpFlood, Shape::Burst, false), 3),
    (attack(Vector::CacheBusting, Shape::Fast, false), 2),
    (attack(Vector::CredentialStuffing, Shape::Fast, false), 2),
    (attack(Vector::Scraping, Shape::Fast, false), 2),
    (attack(Vector::OriginErrorSurge, Shape::Fast, false), 1),
    (EvalItem::FlashCrowd, 3),
    (EvalItem::CachePurge, 2),
    (EvalItem::OriginOutage, 2),
    (EvalItem::Crawler { which: 0 }, 1),
    (EvalItem::Crawler { which: 1 }, 1),
];

/// Number of injections (and so of distinct sites needed).
pub(crate) const EVAL_INJECTIONS: usize = 24;

/// One planned injection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct EvalSlot {
    pub item: EvalItem,
    /// Site index (0-based rank).
    pub site: usize,
    /// First second (relative to the run's start) and number of seconds it emits in.
    pub start: u64,
    pub len: u32,
    pub ramp_up: u32,
    /// Attacks: peak attack rate / baseline (before the 50 rps floor). Flash crowds: site total /
    /// baseline. Origin outages: retries / baseline. Crawlers: crawler rate / baseline. Cache
    /// purges: 0.
    pub factor: f64,
}

/// Length (s), ramp (s) and factor of one item.
fn size(item: EvalItem, rng: &mut Pcg64Mcg) -> (u32, u32, f64) {
    let r = |rng: &mut Pcg64Mcg, lo: u64, hi: u64| range_u64(rng, lo, hi) as u32;
    match item {
        EvalItem::Attack { shape: Shape::SlowRamp, .. } => {
            let ramp = r(rng, 240, 480);
            let hold = r(rng, 60, 120);
            (ramp + hold, ramp, uniform(rng, 4.0, 8.0))
        }
        EvalItem::Attack { shape: Shape::Burst, .. } => {
            let len = r(rng, 30, 60);
            (len, r(rng, 2, 3), uniform(rng, 5.0, 20.0))
        }
        EvalItem::Attack { vector, .. } => {
            let len = r(rng, 150, 240);
            let ramp = r(rng, 6, 10);
            let factor = match vector {
                Vector::HttpFlood => uniform(rng, 8.0, 20.0),
                Vector::CacheBusting => uniform(rng, 6.0, 15.0),
                Vector::OriginErrorSurge => uniform(rng, 6.0, 12.0),
                Vector::CredentialStuffing | Vector::Scraping => uniform(rng, 3.0, 8.0),
            };
            match vector {
                Vector::CredentialStuffing | Vector::Scraping => (len + r(rng, 30, 60), ramp, factor),
                _ => (len, ramp, factor),
            }
        }
        EvalItem::FlashCrowd => (r(rng, 240, 360), 0, uniform(rng, 5.0, 10.0)),
        EvalItem::CachePurge => (r(rng, 120, 300), 0, 0.0),
        EvalItem::OriginOutage => (r(rng, 180, 300), 0, uniform(rng, 0.1, 0.2)),
        EvalItem::Crawler { .. } => (0, 0, uniform(rng, 0.5, 1.0)),
    }
}

fn shuffle<T>(v: &mut [T], rng: &mut Pcg64Mcg) {
    for i in (1..v.len()).rev() {
        v.swap(i, below64(rng.next_u64(), i as u64 + 1) as usize);
    }
}

/// The schedule for a run of `duration` seconds; `sites[i]` describes the site of rank `i + 1`
/// (only the first [`EVAL_SITE_RANKS`] are used). Sorted by start (crawlers first).
///
/// Panics if `duration` is out of range or there are fewer than [`EVAL_INJECTIONS`] candidates
/// (the generator validates both first).
pub(crate) fn schedule(duration: u64, sites_traits: &[SiteTraits], rng: &mut Pcg64Mcg) -> Vec<EvalSlot> {
    assert!((EVAL_MIN_DURATION..=EVAL_MAX_DURATION).contains(&duration), "eval duration {duration}");
    let candidates = sites_traits.len().min(EVAL_SITE_RANKS);
    assert!(candidates >= EVAL_INJECTIONS, "eval needs {EVAL_INJECTIONS} sites, got {candidates}");

    let mut slots: Vec<EvalSlot> = Vec::with_capacity(EVAL_INJECTIONS);
    for &(item, count) in EVAL_MIX {
        for _ in 0..count {
            let (len, ramp_up, factor) = size(item, rng);
            slots.push(EvalSlot { item, site: usize::MAX, start: 0, len, ramp_up, factor });
        }
    }
    debug_assert_eq!(slots.len(), EVAL_INJECTIONS);

    // Sites: distinct, from a shuffled list of the popular ranks; the items that want a kind of
    // site pick first.
    let mut sites: Vec<usize> = (0..candidates).collect();
    shuffle(&mut sites, rng);
    let mut used = vec![false; candidates];
    for choosy in [true, false] {
        for slot in slots.iter_mut().filter(|s| s.item.is_choosy() == choosy) {
            let pick = sites
                .iter()
                .position(|&c| !used[c] && slot.item.fits(&sites_traits[c]) != Some(false))
                .or_else(|| sites.iter().position(|&c| !used[c]))
                .expect("enough candidate sites");
            used[sites[pick]] = true;
            slot.site = sites[pick];
        }
    }

    // Times: crawlers for the whole run; the others in pairs that overlap, the pairs spread over
    // `EVAL_FIRST_START..duration - EVAL_TAIL` in random order.
    let end = duration - EVAL_TAIL;
    let mut timed: Vec<usize> = Vec::new();
    for (i, slot) in slots.iter_mut().enumerate() {
        if let EvalItem::Crawler { .. } = slot.item {
            slot.start = 0;
            slot.len = duration as u32;
        } else {
            timed.push(i);
        }
    }
    shuffle(&mut timed, rng);
    let pairs = timed.len().div_ceil(2);
    for (p, pair) in timed.chunks(2).enumerate() {
        let first = pair[0];
        let latest = end - slots[first].len as u64;
        let frac = (p as f64 + uniform(rng, 0.0, 1.0)) / pairs as f64;
        let start = EVAL_FIRST_START + ((latest - EVAL_FIRST_START) as f64 * frac) as u64;
        slots[first].start = start.min(latest);
        if let Some(&second) = pair.get(1) {
            // Starts while the first is still running (ends by `end` if it must start earlier).
            let offset = range_u64(rng, 0, slots[first].len as u64 / 2);
            let latest2 = end - slots[second].len as u64;
            slots[second].start = (slots[first].start + offset).min(latest2).max(EVAL_FIRST_START);
        }
    }
    slots.sort_by_key(|s| s.start);
    slots
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn overlap(a: &EvalSlot, b: &EvalSlot) -> bool {
        a.start < b.start + b.len as u64 && b.start < a.start + a.len as u64
    }

    #[test]
    fn mix_adds_up() {
        assert_eq!(EVAL_MIX.iter().map(|m| m.1).sum::<usize>(), EVAL_INJECTIONS);
    }

    #[test]
    fn schedules_keep_their_promises() {
        for seed in 0..200u64 {
            let mut rng = Pcg64Mcg::seed_from_u64(seed);
            let d = [1800, 1801, 2400, 3600, 7200, 86_400][seed as usize % 6];
            let n = [24, 30, 80, 200, 1000][seed as usize % 5];
            let traits: Vec<SiteTraits> = (0..n)
                .map(|i| SiteTraits { api: (i * 7 + seed as usize).is_multiple_of(5), dynamic_share: (i % 10) as f64 / 10.0 })
                .collect();
            let slots = schedule(d, &traits, &mut rng);
            assert_eq!(slots.len(), EVAL_INJECTIONS);
            let mut sites: Vec<usize> = slots.iter().map(|s| s.site).collect();
            sites.sort_unstable();
            sites.dedup();
            assert_eq!(sites.len(), EVAL_INJECTIONS, "distinct sites");
            assert!(sites.iter().all(|&s| s < EVAL_SITE_RANKS.min(n)));
            for w in slots.windows(2) {
                assert!(w[0].start <= w[1].start, "sorted by start");
            }
            let mut overlapping = 0;
            for (i, s) in slots.iter().enumerate() {
                if let EvalItem::Crawler { .. } = s.item {
                    assert_eq!((s.start, s.len as u64), (0, d));
                    continue;
                }
                assert!(s.start >= EVAL_FIRST_START && s.start + s.len as u64 <= d - EVAL_TAIL, "{s:?} in {d}");
                assert!(s.len > 0);
                if n >= 80 {
                    assert_ne!(s.item.fits(&traits[s.site]), Some(false), "{s:?} on {:?}", traits[s.site]);
                }
                if let EvalItem::Attack { shape, .. } = s.item {
                    assert!(s.factor >= 3.0 && s.factor <= 20.0);
                    match shape {
                        Shape::SlowRamp => assert!((240..=480).contains(&s.ramp_up) && (300..=600).contains(&s.len)),
                        Shape::Burst => assert!(s.ramp_up <= 3 && (30..=60).contains(&s.len)),
                        Shape::Fast => assert!(s.ramp_up <= 10 && s.len >= 150),
                    }
                }
                overlapping += slots[i + 1..]
                    .iter()
                    .filter(|o| !matches!(o.item, EvalItem::Crawler { .. }) && overlap(s, o))
                    .count();
            }
            assert!(overlapping >= 5, "several overlap: {overlapping} in {d}");
        }
    }
}
