//! Random sampling primitives on top of a fast PRNG: bounded integers, unit floats, Poisson counts
//! and Vose alias tables. Nothing here allocates per draw.

use rand::RngCore;
use rand_pcg::Pcg64Mcg;

/// SplitMix64 finalizer: a bijection on u64 with good avalanche. Used both to hash ids into
/// attributes (same input → same client) and, being a bijection, to turn a counter into unique
/// ray ids.
#[inline]
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Uniform integer in `0..n` from 32 random bits (Lemire's multiply-shift; bias < n / 2^32).
#[inline]
pub(crate) fn below(r32: u32, n: u32) -> u32 {
    ((r32 as u64 * n as u64) >> 32) as u32
}

/// Uniform integer in `0..n` for a u64 bound.
#[inline]
pub(crate) fn below64(r: u64, n: u64) -> u64 {
    ((r as u128 * n as u128) >> 64) as u64
}

/// Uniform float in [0, 1).
#[inline]
pub(crate) fn unit(rng: &mut Pcg64Mcg) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Uniform float in [lo, hi).
#[inline]
pub(crate) fn uniform(rng: &mut Pcg64Mcg, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * unit(rng)
}

/// Uniform integer in `lo..=hi`.
#[inline]
pub(crate) fn range_u64(rng: &mut Pcg64Mcg, lo: u64, hi: u64) -> u64 {
    lo + below64(rng.next_u64(), hi - lo + 1)
}

/// Standard normal (Box–Muller).
pub(crate) fn normal(rng: &mut Pcg64Mcg) -> f64 {
    let u1 = 1.0 - unit(rng); // (0, 1]
    let u2 = unit(rng);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Poisson-distributed count with mean `lambda`: exact (Knuth) below 30, normal approximation
/// above (relative error of the approximation is negligible at those means).
pub(crate) fn poisson(rng: &mut Pcg64Mcg, lambda: f64) -> u64 {
    if lambda.is_nan() || lambda <= 0.0 {
        return 0;
    }
    if lambda < 30.0 {
        let limit = (-lambda).exp();
        let mut k = 0u64;
        let mut p = unit(rng);
        while p > limit {
            k += 1;
            p *= unit(rng);
        }
        k
    } else {
        let x = lambda + lambda.sqrt() * normal(rng);
        if x <= 0.0 { 0 } else { x.round() as u64 }
    }
}

/// Vose alias table: O(1) sampling from a discrete distribution. Rebuilt in place.
#[derive(Default)]
pub(crate) struct AliasTable {
    /// Acceptance threshold of each column, out of 2^32.
    prob: Vec<u32>,
    alias: Vec<u32>,
    small: Vec<u32>,
    large: Vec<u32>,
    scaled: Vec<f64>,
}

impl AliasTable {
    /// Rebuild for `weights` (non-negative, not all zero).
    pub(crate) fn rebuild(&mut self, weights: impl ExactSizeIterator<Item = f64>) {
        let n = weights.len();
        self.scaled.clear();
        self.scaled.extend(weights);
        let total: f64 = self.scaled.iter().sum();
        for w in &mut self.scaled {
            *w = *w * n as f64 / total;
        }
        self.prob.clear();
        self.prob.resize(n, u32::MAX);
        self.alias.clear();
        self.alias.extend(0..n as u32);
        self.small.clear();
        self.large.clear();
        for (i, &w) in self.scaled.iter().enumerate() {
            if w < 1.0 { self.small.push(i as u32) } else { self.large.push(i as u32) }
        }
        while let (Some(&s), Some(&l)) = (self.small.last(), self.large.last()) {
            self.small.pop();
            let ws = self.scaled[s as usize];
            self.prob[s as usize] = (ws * u32::MAX as f64) as u32;
            self.alias[s as usize] = l;
            let wl = self.scaled[l as usize] + ws - 1.0;
            self.scaled[l as usize] = wl;
            if wl < 1.0 {
                self.large.pop();
                self.small.push(l);
            }
        }
        // Leftovers (rounding) keep probability 1.
    }

    /// Draw an index with one 64-bit random value.
    #[inline]
    pub(crate) fn sample(&self, r: u64) -> usize {
        let col = below(r as u32, self.prob.len() as u32) as usize;
        if ((r >> 32) as u32) <= self.prob[col] { col } else { self.alias[col] as usize }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn alias_matches_weights() {
        let mut rng = Pcg64Mcg::seed_from_u64(3);
        let weights = [5.0, 1.0, 0.0, 3.0, 1.0];
        let mut t = AliasTable::default();
        t.rebuild(weights.iter().copied());
        let mut counts = [0u32; 5];
        let n = 200_000;
        for _ in 0..n {
            counts[t.sample(rng.next_u64())] += 1;
        }
        assert_eq!(counts[2], 0);
        for (c, w) in counts.iter().zip(weights) {
            let expect = w / 10.0 * n as f64;
            assert!((*c as f64 - expect).abs() < 0.02 * n as f64, "{counts:?}");
        }
    }

    #[test]
    fn poisson_mean() {
        let mut rng = Pcg64Mcg::seed_from_u64(9);
        for lambda in [0.3, 4.0, 29.0, 31.0, 5000.0] {
            let n = 20_000;
            let sum: u64 = (0..n).map(|_| poisson(&mut rng, lambda)).sum();
            let mean = sum as f64 / n as f64;
            assert!((mean - lambda).abs() < 0.05 * lambda.max(1.0), "{lambda}: {mean}");
        }
        assert_eq!(poisson(&mut rng, 0.0), 0);
        assert_eq!(poisson(&mut rng, f64::NAN), 0);
    }

    #[test]
    fn mix_is_bijective_on_a_sample() {
        let mut seen: Vec<u64> = (0..100_000u64).map(mix64).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 100_000);
    }
}
