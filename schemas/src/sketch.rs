//! Distinct-client sketch: an Apache DataSketches HLL (lg_k = 12, ≈1.6 % relative error), mergeable
//! through a union, serialized in the DataSketches compact format (readable by the Java/C++/Python
//! DataSketches libraries) into the `clients_sketch` columns.

use std::net::IpAddr;

use datasketches::hll::{Coupon, HllSketch, HllType, HllUnion};

/// log2 of the number of HLL buckets.
pub const LG_K: u8 = 12;

#[derive(Debug, Clone)]
pub struct ClientSketch(HllSketch);

impl Default for ClientSketch {
    fn default() -> Self {
        Self(HllSketch::new(LG_K, HllType::Hll8).expect("LG_K is within 4..=21"))
    }
}

impl ClientSketch {
    pub fn new() -> Self {
        Self::default()
    }

    #[inline]
    pub fn insert(&mut self, ip: IpAddr) {
        self.insert_hashed(ClientHash::of(ip));
    }

    /// Insert a client hashed once for all the sketches it goes into.
    #[inline]
    pub fn insert_hashed(&mut self, client: ClientHash) {
        self.0.update_with_coupon(client.0);
    }

    /// Union of two sketches.
    pub fn merge(&mut self, other: &ClientSketch) {
        let mut u = HllUnion::new(LG_K).expect("LG_K is within 4..=21");
        u.update(&self.0);
        u.update(&other.0);
        self.0 = u.to_sketch(HllType::Hll8);
    }

    /// Estimate from the sketch's registers alone (DataSketches' composite estimator), so the
    /// same set of clients gives the same estimate whatever order they arrived in.
    pub fn estimate(&self) -> f64 {
        self.0.composite_estimate()
    }

    /// Rounded estimate, as stored in the `distinct_clients` columns.
    pub fn estimate_u64(&self) -> u64 {
        self.estimate().round() as u64
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.serialize()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        HllSketch::deserialize(bytes).map(Self).map_err(|e| e.to_string())
    }
}

/// A client address as the sketches hash it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientHash(Coupon);

impl ClientHash {
    #[inline]
    pub fn of(ip: IpAddr) -> Self {
        Self(match ip {
            IpAddr::V4(v4) => Coupon::from_value(v4.to_bits()),
            IpAddr::V6(v6) => Coupon::from_value(v6.to_bits()),
        })
    }
}

/// Union of many sketches, e.g. the `clients_sketch` cells of the rows one query step groups.
#[derive(Debug, Clone)]
pub struct SketchUnion(HllUnion);

impl Default for SketchUnion {
    fn default() -> Self {
        Self(HllUnion::new(LG_K).expect("LG_K is within 4..=21"))
    }
}

impl SketchUnion {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, s: &ClientSketch) {
        self.0.update(&s.0);
    }

    /// Add a serialized sketch.
    pub fn add_bytes(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.add(&ClientSketch::from_bytes(bytes)?);
        Ok(())
    }

    pub fn to_sketch(&self) -> ClientSketch {
        ClientSketch(self.0.to_sketch(HllType::Hll8))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn sketch_of(ips: &[u32]) -> ClientSketch {
        let mut s = ClientSketch::new();
        for ip in ips {
            s.insert(IpAddr::V4(Ipv4Addr::from_bits(*ip)));
        }
        s
    }

    #[test]
    fn small_sets_are_exact_and_roundtrip() {
        let s = sketch_of(&[1, 2, 3, 3, 2]);
        assert_eq!(s.estimate_u64(), 3);
        let back = ClientSketch::from_bytes(&s.to_bytes()).unwrap();
        assert_eq!(back.estimate_u64(), 3);
    }

    #[test]
    fn large_set_within_error() {
        let ips: Vec<u32> = (0..100_000u32).map(|i| i.wrapping_mul(2_654_435_761)).collect();
        let est = sketch_of(&ips).estimate();
        assert!((est - 100_000.0).abs() / 100_000.0 < 0.05, "{est}");
    }

    proptest! {
        /// The union of sketches of parts estimates the distinct count of the whole within the
        /// sketch's error bound, whatever the split, and the order of the parts moves the estimate
        /// by less than that. The relative standard error at lg_k 12 is 1.04/√4096 ≈ 1.6 %; a run
        /// draws 256 random inputs, so the bound is 5.2 standard errors (8.5 %): at 3 (5 %) about
        /// one run in twelve failed on an ordinary 3.6-σ input (kept in proptest-regressions).
        #[test]
        fn merge_estimates_union(a in proptest::collection::vec(0u32..5000, 0..800), b in proptest::collection::vec(0u32..5000, 0..800)) {
            let mut merged = sketch_of(&a);
            merged.merge(&sketch_of(&b));
            let mut all = a.clone();
            all.extend(&b);
            all.sort_unstable();
            all.dedup();
            let exact = all.len() as f64;
            let m = merged.estimate();
            prop_assert!((m - exact).abs() <= exact * 0.085 + 1.0, "merged {} exact {}", m, exact);
            let mut rev = sketch_of(&b);
            rev.merge(&sketch_of(&a));
            prop_assert!((rev.estimate() - m).abs() <= m * 0.02 + 1.0, "order changed the union beyond the error bound");
        }
    }
}
