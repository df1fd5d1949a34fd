//! What a site's normal traffic looks like: per attribute, its most frequent values and their
//! shares, exponentially decayed (half-life [`HALF_LIFE_SECS`]) so the profile follows the site.
//!
//! Each attribute keeps a Space-Saving summary of [`SLOTS`] values: a value's stored weight is
//! never below its true decayed weight, and a value not in a full summary has a weight of at
//! most the smallest stored one. [`SiteProfile::share`] therefore returns an *upper bound* of
//! a value's normal share, which keeps signature precision estimates conservative.
//!
//! Weights use forward decay: an observation at second `t` weighs `2^((t − landmark)/H)`; the
//! landmark moves forward (all weights rescaled) before the exponent grows large. Fixed size:
//! about 1.3 KB per site whatever its traffic.

use super::attrs::{Tuple, N_ATTRS};
use crate::checkpoint::{Dec, Enc};

pub const HALF_LIFE_SECS: f64 = 600.0;
pub const SLOTS: usize = 8;
/// Rescale once the landmark is this many half-lives behind.
const RESCALE_AFTER: f64 = 40.0;

#[derive(Debug, Clone, PartialEq)]
pub struct SiteProfile {
    landmark: i64,
    total: f32,
    ids: [[u64; SLOTS]; N_ATTRS],
    weights: [[f32; SLOTS]; N_ATTRS],
}

impl SiteProfile {
    pub fn new(now_sec: i64) -> Self {
        Self { landmark: now_sec, total: 0.0, ids: [[0; SLOTS]; N_ATTRS], weights: [[0.0; SLOTS]; N_ATTRS] }
    }

    /// Decayed number of observations (relative to "now" at the last update).
    pub fn observations(&self, now_sec: i64) -> f64 {
        f64::from(self.total) / self.weight(now_sec)
    }

    fn weight(&self, sec: i64) -> f64 {
        2f64.powf((sec - self.landmark) as f64 / HALF_LIFE_SECS)
    }

    fn rescale(&mut self, sec: i64) {
        let w = self.weight(sec) as f32;
        self.total /= w;
        for ws in &mut self.weights {
            for x in ws {
                *x /= w;
            }
        }
        self.landmark = sec;
    }

    /// The site was silent for `secs` seconds: its audience is what it was, so the profile ages
    /// by one half-life at most over the silence, not by all of it. (Aged by a night without
    /// requests, a profile fell below what a site is judged on, and the site's next morning, on
    /// its rate alone, read as an attack on the baseline the night left.)
    pub fn skip_silence(&mut self, secs: i64) {
        let skipped = secs - HALF_LIFE_SECS as i64;
        if skipped > 0 {
            self.landmark += skipped;
        }
    }

    /// Learn the sampled requests `tuples` of second `sec`.
    pub fn add(&mut self, sec: i64, tuples: &[Tuple]) {
        if tuples.is_empty() {
            return;
        }
        if (sec - self.landmark) as f64 > RESCALE_AFTER * HALF_LIFE_SECS {
            self.rescale(sec);
        }
        let w = self.weight(sec) as f32;
        for t in tuples {
            self.total += w;
            for (a, &id) in t.iter().enumerate() {
                let (ids, ws) = (&mut self.ids[a], &mut self.weights[a]);
                if let Some(i) = (0..SLOTS).find(|&i| ids[i] == id && ws[i] > 0.0) {
                    ws[i] += w;
                } else if let Some(i) = (0..SLOTS).find(|&i| ws[i] == 0.0) {
                    ids[i] = id;
                    ws[i] = w;
                } else {
                    // Space-Saving: the new value takes the smallest slot and inherits its weight.
                    let i = (0..SLOTS).min_by(|&x, &y| ws[x].total_cmp(&ws[y]).then(x.cmp(&y))).expect("slots");
                    ids[i] = id;
                    ws[i] += w;
                }
            }
        }
    }

    /// Upper bound of the share of requests with value `id` of attribute `a` (0 for a site with
    /// no profile yet).
    pub fn share(&self, a: usize, id: u64) -> f64 {
        if self.total <= 0.0 {
            return 0.0;
        }
        let (ids, ws) = (&self.ids[a], &self.weights[a]);
        let w = match (0..SLOTS).find(|&i| ids[i] == id && ws[i] > 0.0) {
            Some(i) => ws[i],
            None if ws.iter().all(|&w| w > 0.0) => ws.iter().copied().fold(f32::INFINITY, f32::min),
            None => 0.0,
        };
        (f64::from(w) / f64::from(self.total)).min(1.0)
    }

    pub fn encode(&self, e: &mut Enc) {
        e.i64(self.landmark);
        e.u32(self.total.to_bits());
        for a in 0..N_ATTRS {
            for i in 0..SLOTS {
                e.u64(self.ids[a][i]);
                e.u32(self.weights[a][i].to_bits());
            }
        }
    }

    pub fn decode(d: &mut Dec<'_>) -> Result<Self, String> {
        let mut p = SiteProfile::new(d.i64()?);
        p.total = f32::from_bits(d.u32()?);
        for a in 0..N_ATTRS {
            for i in 0..SLOTS {
                p.ids[a][i] = d.u64()?;
                p.weights[a][i] = f32::from_bits(d.u32()?);
            }
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: u64) -> Tuple {
        [v; N_ATTRS]
    }

    #[test]
    fn shares_and_upper_bounds() {
        let mut p = SiteProfile::new(0);
        let mut tuples = Vec::new();
        for i in 0..1000u64 {
            tuples.push(t(if i % 2 == 0 { 1 } else { 2 + i % 50 }));
        }
        p.add(0, &tuples);
        assert!((p.share(0, 1) - 0.5).abs() < 0.01, "{}", p.share(0, 1));
        // An unseen value in a full summary: bounded by the smallest slot, never 0.
        let unseen = p.share(0, 999);
        assert!(unseen > 0.0 && unseen < 0.5);
        // Every stored weight is an upper bound of the true share.
        assert!(p.share(0, 4) >= 10.0 / 1000.0);
    }

    #[test]
    fn old_traffic_fades() {
        let mut p = SiteProfile::new(0);
        p.add(0, &vec![t(1); 100]);
        p.add(6000, &vec![t(2); 100]);
        // Ten half-lives later the first value weighs ~1/1024 of the second.
        assert!(p.share(0, 1) < 0.01);
        assert!(p.share(0, 2) > 0.99);
        // Rescaling keeps shares.
        let before = p.share(0, 2);
        p.add(100_000, &[t(2)]);
        assert!(p.share(0, 2) >= before - 1e-6);
    }

    #[test]
    fn round_trips() {
        let mut p = SiteProfile::new(5);
        p.add(7, &[t(3), t(4)]);
        let mut e = Enc::new();
        p.encode(&mut e);
        let bytes = e.into_bytes();
        assert_eq!(SiteProfile::decode(&mut Dec::new(&bytes)).unwrap(), p);
    }
}
