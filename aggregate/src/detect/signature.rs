//! Attack signatures: the attribute values that separate a surge's extra traffic from the site's
//! normal traffic, as ANDed predicates (`asn in {…} AND user_agent in {…} AND …`), each with an
//! estimated precision and coverage.
//!
//! Input: a uniform sample of the surge's requests ([`Tuple`]s), the expected fraction of them
//! that is normal traffic (the baseline rate over the observed rate), and the site's
//! [`SiteProfile`] (upper bounds of each value's normal share). For a value `v` seen `c` times in
//! the sample of `n`, normal traffic explains at most `e = n_normal · share(v)` of them; its risk
//! is `(c − e) / c`, the estimated fraction of its requests that are attack. A predicate of an
//! attribute collects the values with risk ≥ [`MIN_VALUE_PRECISION`] that at least
//! [`MIN_VALUE_SAMPLE_SHARE`] of the sample has. Each attribute is
//! considered at every level of generality it has (address → /24 or /48 prefix → ASN; the
//! coarsest that is as good wins), and predicates are combined greedily: start with the one
//! explaining the most attack traffic, add the one that raises precision most while keeping
//! coverage, stop at [`TARGET_PRECISION`]. The normal share of a conjunction is bounded by the
//! smallest of its predicates' shares, so precision estimates stay conservative.

use ahash::HashMap;

use serde::{Deserialize, Serialize};

use super::attrs::{Attr, Tuple};
use super::profile::SiteProfile;
use crate::checkpoint::{Dec, Enc};

pub const MIN_VALUE_PRECISION: f64 = 0.8;
/// A value (and a predicate) must be at least this many times more frequent in the surge than in
/// normal traffic: a surge of the usual audience (risk ratio ≈ 1) explains its excess with any
/// value, but is not distinguished by any.
pub const MIN_RISK_RATIO: f64 = 4.0;
pub const TARGET_PRECISION: f64 = 0.995;
/// Most values in one predicate.
pub const MAX_VALUES: usize = 64;
const MIN_PREDICATE_COVERAGE: f64 = 0.2;
const MAX_PREDICATES: usize = 4;
/// Fewer sampled requests than this give no signature.
pub const MIN_SAMPLE: usize = 20;
/// A value joins a predicate only if at least this fraction of the sample has it: a legitimate
/// client with a value the profile has not seen (a crawler's fingerprint, a rare browser) sends a
/// handful of requests during a surge, and would otherwise be named as an attacker.
pub const MIN_VALUE_SAMPLE_SHARE: f64 = 0.002;

/// `attr ∈ values`.
#[derive(Debug, Clone, PartialEq)]
pub struct Predicate {
    pub attr: Attr,
    /// Sorted value ids.
    pub values: Vec<u64>,
    /// Estimated on its own: the fraction of requests it matches that are attack traffic…
    pub precision: f64,
    /// …and the fraction of attack traffic it matches.
    pub coverage: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    pub predicates: Vec<Predicate>,
    /// Estimates for the conjunction.
    pub precision: f64,
    pub coverage: f64,
}

impl Predicate {
    pub fn matches(&self, t: &Tuple) -> bool {
        self.values.binary_search(&t[self.attr as usize]).is_ok()
    }
}

impl Signature {
    pub fn matches(&self, t: &Tuple) -> bool {
        self.predicates.iter().all(|p| p.matches(t))
    }

    /// An upper bound of the share of the site's normal requests (by `profile`) that match the
    /// signature: the smallest of its predicates' (each the sum of its values' shares).
    pub fn normal_share(&self, profile: &SiteProfile) -> f64 {
        self.predicates
            .iter()
            .map(|p| p.values.iter().map(|&v| profile.share(p.attr as usize, v)).sum::<f64>().min(1.0))
            .fold(1.0, f64::min)
    }

    /// Whether the signature names who sends the traffic or a request shape no normal client
    /// produces, not only which page is asked for: a surge to one hot page is what a flash
    /// crowd looks like.
    pub fn is_discriminating(&self) -> bool {
        self.predicates.iter().any(|p| discriminating(p.attr))
    }

    pub fn encode(&self, e: &mut Enc) {
        e.u64(self.precision.to_bits());
        e.u64(self.coverage.to_bits());
        e.len(self.predicates.len());
        for p in &self.predicates {
            e.u8(p.attr as u8);
            e.u64(p.precision.to_bits());
            e.u64(p.coverage.to_bits());
            e.len(p.values.len());
            for &v in &p.values {
                e.u64(v);
            }
        }
    }

    pub fn decode(d: &mut Dec<'_>) -> Result<Self, String> {
        let precision = f64::from_bits(d.u64()?);
        let coverage = f64::from_bits(d.u64()?);
        let n = d.len()?;
        let mut predicates = Vec::with_capacity(n.min(16));
        for _ in 0..n {
            let a = d.u8()? as usize;
            let attr = *Attr::ALL.get(a).ok_or_else(|| format!("bad attribute {a}"))?;
            let precision = f64::from_bits(d.u64()?);
            let coverage = f64::from_bits(d.u64()?);
            let k = d.len()?;
            let mut values = Vec::with_capacity(k.min(MAX_VALUES));
            for _ in 0..k {
                values.push(d.u64()?);
            }
            predicates.push(Predicate { attr, values, precision, coverage });
        }
        Ok(Signature { predicates, precision, coverage })
    }
}

/// A predicate on it names who sends the requests, or a request shape no normal client produces.
fn discriminating(a: Attr) -> bool {
    a.is_client() || a == Attr::Query
}

/// A predicate naming the senders goes first when its score is at least this fraction of the
/// best candidate's.
const NEAR_BEST: f64 = 0.95;

/// Per-attribute candidate with the normal share of its values (for conjunction bounds).
struct Candidate {
    pred: Predicate,
    normal_share: f64,
}

/// Derive the signature of a surge. `normal_fraction` is the expected fraction of the sample
/// that is normal traffic. `None` when the sample is too small or nothing separates the surge
/// from normal traffic.
pub fn derive(sample: &[Tuple], normal_fraction: f64, profile: &SiteProfile) -> Option<Signature> {
    let n = sample.len();
    if n < MIN_SAMPLE {
        return None;
    }
    let n_normal = normal_fraction.clamp(0.0, 1.0) * n as f64;
    let n_attack = n as f64 - n_normal;
    if n_attack < 8.0 {
        return None;
    }
    let mut cands: Vec<Candidate> = Attr::ALL.iter().filter_map(|&a| candidate(a, sample, n_normal, n_attack, profile)).collect();
    cands.retain(|c| c.pred.coverage >= MIN_PREDICATE_COVERAGE && c.pred.precision >= 0.5);
    if cands.is_empty() {
        return None;
    }
    let score = |c: &Candidate| c.pred.precision * c.pred.coverage;
    let better = |&i: &usize, &j: &usize| {
        let (a, b) = (&cands[i], &cands[j]);
        score(a).total_cmp(&score(b)).then(b.pred.attr.generality().cmp(&a.pred.attr.generality())).then(b.pred.attr.cmp(&a.pred.attr))
    };
    // A signature is for telling the attack's senders apart: a predicate naming them (or a request
    // shape no normal client sends) about as good as the best goes first. Otherwise a property
    // the attack shares with few normal requests (its protocol, its method) could reach the
    // target precision alone, and the conjunction would stop without naming anyone.
    let best = cands.iter().map(score).fold(0.0, f64::max);
    let first = (0..cands.len())
        .filter(|&i| discriminating(cands[i].pred.attr) && score(&cands[i]) >= NEAR_BEST * best)
        .max_by(better)
        .or_else(|| (0..cands.len()).max_by(better))
        .expect("non-empty");
    let mut chosen = vec![cands.swap_remove(first)];
    let (mut precision, mut coverage) = (chosen[0].pred.precision, chosen[0].pred.coverage);
    while precision < TARGET_PRECISION && chosen.len() < MAX_PREDICATES && !cands.is_empty() {
        let mut best: Option<(usize, f64, f64)> = None;
        for (i, c) in cands.iter().enumerate() {
            let (p, cov) = conjunction(chosen.iter().chain(std::iter::once(c)), sample, n_normal, n_attack);
            if cov < 0.95 * coverage || p < precision + 0.002 {
                continue;
            }
            let better = match best {
                None => true,
                Some((j, bp, bc)) => {
                    p > bp + 1e-12
                        || ((p - bp).abs() <= 1e-12
                            && (cov > bc || (cov == bc && c.pred.attr.generality() < cands[j].pred.attr.generality())))
                }
            };
            if better {
                best = Some((i, p, cov));
            }
        }
        let Some((i, p, cov)) = best else { break };
        chosen.push(cands.swap_remove(i));
        precision = p;
        coverage = cov;
    }
    if !chosen.iter().any(|c| discriminating(c.pred.attr)) && chosen.len() < MAX_PREDICATES {
        // Nothing names the senders yet: the predicate that does, keeping the most of the
        // conjunction's precision and coverage, is added even when it adds no precision.
        let named = cands
            .iter()
            .enumerate()
            .filter(|(_, c)| discriminating(c.pred.attr))
            .map(|(i, c)| (i, conjunction(chosen.iter().chain(std::iter::once(c)), sample, n_normal, n_attack)))
            .filter(|&(_, (p, cov))| cov >= 0.95 * coverage && p >= precision - 0.002)
            .max_by(|a, b| (a.1 .0 * a.1 .1).total_cmp(&(b.1 .0 * b.1 .1)));
        if let Some((i, (p, cov))) = named {
            chosen.push(cands.swap_remove(i));
            precision = p;
            coverage = cov;
        }
    }
    let mut predicates: Vec<Predicate> = chosen.into_iter().map(|c| c.pred).collect();
    predicates.sort_by_key(|p| p.attr);
    Some(Signature { predicates, precision, coverage })
}

fn candidate(a: Attr, sample: &[Tuple], n_normal: f64, n_attack: f64, profile: &SiteProfile) -> Option<Candidate> {
    let ai = a as usize;
    let n = sample.len() as f64;
    let mut counts: HashMap<u64, u32> = HashMap::with_capacity_and_hasher(sample.len(), Default::default());
    for t in sample {
        *counts.entry(t[ai]).or_default() += 1;
    }
    let least = (MIN_VALUE_SAMPLE_SHARE * n).ceil().max(2.0) as u32;
    let mut vals: Vec<(u64, f64, f64, f64)> = counts
        .into_iter()
        .filter(|&(_, c)| c >= least)
        .filter_map(|(v, c)| {
            let share = profile.share(ai, v);
            let c = f64::from(c);
            let attack = (c - n_normal * share).max(0.0);
            (attack / c >= MIN_VALUE_PRECISION && c >= MIN_RISK_RATIO * share * n).then_some((v, c, attack, share))
        })
        .collect();
    if vals.is_empty() {
        return None;
    }
    vals.sort_by(|x, y| y.2.total_cmp(&x.2).then(x.0.cmp(&y.0)));
    vals.truncate(MAX_VALUES);
    // Every kept value has more sampled requests than normal traffic explains, so the matched
    // count is the attack estimate plus the normal bound.
    let (attack, share) = vals.iter().fold((0.0, 0.0), |acc, v| (acc.0 + v.2, acc.1 + v.3));
    let share = f64::min(share, 1.0);
    // The predicate as a whole: clearly over-represented, beyond sampling noise.
    let m: f64 = vals.iter().map(|v| v.1).sum();
    let expected = share * n;
    if m < MIN_RISK_RATIO * expected || m - expected < 3.0 * expected.sqrt() + 2.0 {
        return None;
    }
    let mut values: Vec<u64> = vals.iter().map(|v| v.0).collect();
    values.sort_unstable();
    let pred = Predicate { attr: a, values, precision: attack / (attack + n_normal * share).max(1e-9), coverage: (attack / n_attack).min(1.0) };
    Some(Candidate { pred, normal_share: share })
}

fn conjunction<'a>(preds: impl Iterator<Item = &'a Candidate> + Clone, sample: &[Tuple], n_normal: f64, n_attack: f64) -> (f64, f64) {
    let m = sample.iter().filter(|t| preds.clone().all(|c| c.pred.matches(t))).count() as f64;
    let normal = n_normal * preds.clone().map(|c| c.normal_share).fold(1.0, f64::min);
    let attack = (m - normal).max(0.0);
    if m == 0.0 {
        return (0.0, 0.0);
    }
    (attack / (attack + normal).max(1e-9), (attack / n_attack).min(1.0))
}

/// One predicate as stored in the `signature` JSON of `incidents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredicateJson {
    pub attr: String,
    pub op: String,
    pub values: Vec<String>,
    pub precision: f64,
    pub coverage: f64,
}

/// The `signature` JSON of `incidents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignatureJson {
    pub predicates: Vec<PredicateJson>,
    pub precision: f64,
    pub coverage: f64,
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

impl Signature {
    /// As stored, with value ids turned into their texts by `text`.
    pub fn to_json(&self, mut text: impl FnMut(Attr, u64) -> String) -> SignatureJson {
        SignatureJson {
            predicates: self
                .predicates
                .iter()
                .map(|p| {
                    let mut values: Vec<String> = p.values.iter().map(|&v| text(p.attr, v)).collect();
                    values.sort();
                    PredicateJson { attr: p.attr.name().to_owned(), op: "in".into(), values, precision: round4(p.precision), coverage: round4(p.coverage) }
                })
                .collect(),
            precision: round4(self.precision),
            coverage: round4(self.coverage),
        }
    }
}

impl SignatureJson {
    /// Back to a matcher over events (values that are not valid texts of their attribute, and
    /// unknown attributes, make the predicate match nothing).
    pub fn matcher(&self) -> Signature {
        let predicates = self
            .predicates
            .iter()
            .map(|p| match Attr::from_name(&p.attr) {
                Some(attr) => {
                    let mut values: Vec<u64> = p.values.iter().filter_map(|t| super::attrs::id_of_text(attr, t)).collect();
                    values.sort_unstable();
                    values.dedup();
                    Predicate { attr, values, precision: p.precision, coverage: p.coverage }
                }
                None => Predicate { attr: Attr::Ip, values: Vec::new(), precision: p.precision, coverage: p.coverage },
            })
            .collect();
        Signature { predicates, precision: self.precision, coverage: self.coverage }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::attrs::N_ATTRS;

    /// Normal traffic: values 0..40 spread over every attribute. Attack: attribute 2 (ASN) in
    /// {1000, 1001}, attribute 4 (UA) = 2000, attribute 0 (IP) random.
    fn normal(i: u64) -> Tuple {
        let mut t = [0; N_ATTRS];
        for (a, x) in t.iter_mut().enumerate() {
            *x = (i * 7 + a as u64 * 3) % 40;
        }
        t
    }

    fn attack(i: u64) -> Tuple {
        let mut t = normal(i);
        t[Attr::Ip as usize] = 1_000_000 + i;
        t[Attr::Prefix as usize] = 500_000 + i % 300;
        t[Attr::Asn as usize] = 1000 + i % 2;
        t[Attr::UserAgent as usize] = 2000;
        t
    }

    fn profile() -> SiteProfile {
        let mut p = SiteProfile::new(0);
        p.add(0, &(0..4000).map(normal).collect::<Vec<_>>());
        p
    }

    #[test]
    fn finds_the_attack_attributes() {
        let p = profile();
        let mut sample: Vec<Tuple> = (0..100).map(normal).collect();
        sample.extend((0..900).map(attack));
        let sig = derive(&sample, 0.1, &p).expect("signature");
        let attrs: Vec<Attr> = sig.predicates.iter().map(|p| p.attr).collect();
        assert!(attrs.contains(&Attr::Asn) || attrs.contains(&Attr::UserAgent), "{sig:?}");
        assert!(!attrs.contains(&Attr::Ip), "addresses generalise: {sig:?}");
        assert!(sig.precision >= 0.9 && sig.coverage >= 0.9, "{sig:?}");
        assert!(sig.is_discriminating());
        let matched_attack = (0..900).map(attack).filter(|t| sig.matches(t)).count();
        let matched_normal = (0..4000).map(normal).filter(|t| sig.matches(t)).count();
        assert_eq!(matched_attack, 900);
        assert_eq!(matched_normal, 0);
    }

    /// Regression: a legitimate client whose value the profile had not seen (a crawler's user
    /// agent, a rare browser) and that sent a few requests during a flood was named in the
    /// signature with the attack's value, at precision 1.0: a block rule made from it would
    /// block that client.
    #[test]
    fn a_few_requests_of_a_value_new_to_the_site_do_not_join_the_signature() {
        let site = |i: u64| {
            let mut t = normal(i);
            t[Attr::UserAgent as usize] = i % 4;
            t
        };
        let mut p = SiteProfile::new(0);
        p.add(0, &(0..4000).map(site).collect::<Vec<_>>());
        let flood = |i: u64| {
            let mut t = site(i);
            t[Attr::UserAgent as usize] = 2000;
            t
        };
        let crawler = |i: u64| {
            let mut t = site(i);
            t[Attr::UserAgent as usize] = 3000;
            t
        };
        let mut sample: Vec<Tuple> = (0..100).map(site).collect();
        sample.extend((0..3000).map(flood));
        sample.extend((0..5).map(crawler));
        let sig = derive(&sample, 100.0 / 3105.0, &p).expect("signature");
        let ua = sig.predicates.iter().find(|p| p.attr == Attr::UserAgent).expect("the flood's user agent");
        assert_eq!(ua.values, [2000], "{sig:?}");
        // A value that is a real part of the attack stays.
        sample.extend((0..60).map(crawler));
        let sig = derive(&sample, 100.0 / 3165.0, &p).expect("signature");
        let ua = sig.predicates.iter().find(|p| p.attr == Attr::UserAgent).expect("the flood's user agents");
        assert_eq!(ua.values, [2000, 3000], "{sig:?}");
    }

    #[test]
    fn a_surge_that_looks_normal_has_no_signature() {
        let p = profile();
        let sample: Vec<Tuple> = (10_000..11_000).map(normal).collect();
        let sig = derive(&sample, 0.2, &p);
        assert!(sig.as_ref().is_none_or(|s| s.coverage < 0.5), "{sig:?}");
    }

    /// Regression: with a surge ten times the baseline, any value "explains" the excess. A small
    /// site's flash crowd from an audience wider than the profile's summaries (12 networks, 8
    /// slots) got a signature on its usual networks; values must be over-represented too.
    #[test]
    fn a_tenfold_surge_of_a_wide_audience_has_no_confirming_signature() {
        let wide = |i: u64| {
            let mut t = [0; N_ATTRS];
            for (a, x) in t.iter_mut().enumerate() {
                *x = (attrs_mix(i) >> (a * 4)) % 12;
            }
            t
        };
        let mut p = SiteProfile::new(0);
        p.add(0, &(0..300).map(wide).collect::<Vec<_>>());
        for n in [20u64, 30, 60] {
            let sample: Vec<Tuple> = (1000..1000 + n).map(wide).collect();
            let sig = derive(&sample, 0.1, &p);
            assert!(
                sig.as_ref().is_none_or(|s| s.precision < 0.9 || s.coverage < 0.6 || !s.is_discriminating()),
                "n={n}: {sig:?}"
            );
        }
    }

    fn attrs_mix(i: u64) -> u64 {
        crate::detect::attrs::mix(i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    /// Regression: a burst whose protocol and TLS fingerprint the site never sees otherwise got
    /// the protocol alone as its signature (equally good, and coarser), which names nobody, so
    /// the burst was never confirmed.
    #[test]
    fn a_predicate_naming_the_senders_goes_before_an_equally_good_request_property() {
        let p = profile();
        let burst = |i: u64| {
            let mut t = normal(i);
            t[Attr::Protocol as usize] = 7_000;
            t[Attr::Ja3 as usize] = 8_000;
            t
        };
        let mut sample: Vec<Tuple> = (0..10).map(normal).collect();
        sample.extend((0..300).map(burst));
        let sig = derive(&sample, 10.0 / 310.0, &p).expect("signature");
        assert!(sig.is_discriminating(), "{sig:?}");
        assert_eq!(sig.predicates.iter().map(|p| p.attr).collect::<Vec<_>>(), [Attr::Ja3], "{sig:?}");
        // Where only a request property separates the burst, it stays the signature (and the
        // detector does not confirm on it).
        let shape_only = |i: u64| {
            let mut t = normal(i);
            t[Attr::Protocol as usize] = 7_000;
            t
        };
        let mut sample: Vec<Tuple> = (0..10).map(normal).collect();
        sample.extend((0..300).map(shape_only));
        let sig = derive(&sample, 10.0 / 310.0, &p).expect("signature");
        assert!(!sig.is_discriminating(), "{sig:?}");
    }

    #[test]
    fn encodes_and_renders() {
        let p = profile();
        let mut sample: Vec<Tuple> = (0..50).map(normal).collect();
        sample.extend((0..450).map(attack));
        let sig = derive(&sample, 0.1, &p).unwrap();
        let mut e = Enc::new();
        sig.encode(&mut e);
        let bytes = e.into_bytes();
        assert_eq!(Signature::decode(&mut Dec::new(&bytes)).unwrap(), sig);
        let json = sig.to_json(|a, v| format!("{}:{v}", a.name()));
        assert_eq!(json.predicates.len(), sig.predicates.len());
        assert!(json.predicates.iter().all(|p| p.op == "in" && !p.values.is_empty()));
    }
}
