//! Scoring detected incidents against a generator's ground truth (`edgelens eval`).
//!
//! Matching: an incident belongs to an injection on the same site when their event-time
//! intervals overlap (with [`MATCH_SLACK_SECS`] on each side). Per attack, its first incident by
//! detection time is *the* detection; more incidents on it count as splits. An incident that
//! belongs to no attack is a false alert, attributed to the negative injection it overlaps
//! (flash crowd, cache purge, …) or to `baseline` (plain traffic, including the daily rise).
//!
//! Signatures are scored against labelled events when the generated files are given: an event
//! is attack traffic of attack A iff it is on A's site, within A's window, from one of A's
//! attacker addresses (the generator guarantees no other event uses them). Precision = labelled
//! among the site's events in the incident window that match the signature; coverage = matched
//! among A's labelled events.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, TimestampMicrosecondType, UInt64Type};
use serde::{Deserialize, Serialize};

use super::signature::{Signature, SignatureJson};
use super::event_matches;

/// Seconds of tolerance when matching an incident to an injection.
pub const MATCH_SLACK_SECS: i64 = 30;

/// The detector's absolute floor of an anomalous second's excess (`Thresholds::min_excess`).
pub const ONSET_MIN_RPS: f64 = 10.0;

/// Seconds (centred on the second judged) over which an attack's rate is taken for its onset.
pub const ONSET_RATE_SECS: usize = 11;

/// The parts of the generator's truth file the scorer reads (other fields are ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct TruthFile {
    pub scenario: String,
    pub seed: u64,
    pub injections: Vec<TruthInjection>,
    /// The generated event time: from `start_ts`, `seconds_generated` seconds (absent in truth
    /// files of before these fields: every incident is then scored).
    #[serde(default)]
    pub start_ts: Option<i64>,
    #[serde(default)]
    pub seconds_generated: Option<u64>,
}

impl TruthFile {
    /// Whether `inc` lies in the generated event time (give or take the matching slack): incidents
    /// of other replays into the same lake are not this truth's to score.
    fn covers(&self, inc: &IncidentRecord) -> bool {
        let (Some(start), Some(secs)) = (self.start_ts, self.seconds_generated) else { return true };
        let end = start.saturating_add(i64::try_from(secs).unwrap_or(i64::MAX));
        inc.start_ts < end + MATCH_SLACK_SECS && inc.end_ts.unwrap_or(i64::MAX) > start - MATCH_SLACK_SECS
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct TruthInjection {
    pub id: String,
    pub kind: String,
    #[serde(default)]
    pub vector: Option<String>,
    #[serde(default)]
    pub shape: Option<String>,
    pub site: String,
    pub start_ts: i64,
    pub end_ts: i64,
    pub requests: u64,
    #[serde(default)]
    pub peak_rps: u64,
    #[serde(default)]
    pub baseline_rps: f64,
    #[serde(default)]
    pub factor: f64,
    #[serde(default)]
    pub attackers: Option<TruthAttackers>,
    /// Events emitted per second from `timeline_start_ts`.
    #[serde(default)]
    pub timeline_start_ts: i64,
    #[serde(default)]
    pub timeline: Vec<u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TruthAttackers {
    pub count: usize,
    pub ips: Vec<String>,
}

impl TruthInjection {
    pub fn is_attack(&self) -> bool {
        self.kind == "attack"
    }

    /// The first second at which the attack's own rate reaches the site's baseline (the site's
    /// traffic doubles) and [`ONSET_MIN_RPS`]: before it, a slow ramp is indistinguishable from
    /// noise, and the detector never treats fewer extra requests per second as an incident. The
    /// rate at a second is the mean of the attack's counts over the [`ONSET_RATE_SECS`] seconds
    /// centred on it: one second's count of a ramp at a few requests a second is mostly Poisson
    /// noise, and the first second whose count reaches the level comes well before the rate does
    /// ([`Self::first_second_at_level_ts`]). When the rate never reaches the level, the first
    /// second that does; the start when none does or the timeline is unknown.
    pub fn onset_ts(&self) -> i64 {
        let level = self.onset_level();
        let half = (ONSET_RATE_SECS / 2) as i64;
        let n = self.timeline.len() as i64;
        let count = |i: i64| if (0..n).contains(&i) { self.timeline[i as usize] as f64 } else { 0.0 };
        let mut sum: f64 = (-half..=half).map(count).sum();
        for i in 0..n {
            if sum / ONSET_RATE_SECS as f64 >= level {
                return self.timeline_ts(i as usize);
            }
            sum += count(i + half + 1) - count(i - half);
        }
        self.first_second_at_level_ts()
    }

    /// The first second whose own count reaches the onset level (the start when none does).
    pub fn first_second_at_level_ts(&self) -> i64 {
        let level = self.onset_level();
        self.timeline.iter().position(|&n| n as f64 >= level).map_or(self.start_ts, |i| self.timeline_ts(i))
    }

    /// The second of timeline entry `i` (never before the start).
    fn timeline_ts(&self, i: usize) -> i64 {
        (self.timeline_start_ts + i as i64).max(self.start_ts)
    }

    fn onset_level(&self) -> f64 {
        self.baseline_rps.max(ONSET_MIN_RPS)
    }
}

/// The current state of one incident (its latest `incidents` row).
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentRecord {
    pub incident_id: String,
    pub site: String,
    pub vector: String,
    pub status: String,
    pub start_ts: i64,
    pub detected_ts: i64,
    pub end_ts: Option<i64>,
    pub peak_rps: f64,
    pub baseline_rps: f64,
    pub attack_requests: u64,
    pub distinct_ips: u64,
    pub signature: Option<SignatureJson>,
    pub updated_ts: i64,
}

/// Latest row per incident from `incidents` batches (any number of rows per incident, any order).
pub fn latest_incidents(batches: &[RecordBatch]) -> Result<Vec<IncidentRecord>, String> {
    let mut latest: BTreeMap<String, IncidentRecord> = BTreeMap::new();
    for b in batches {
        let col = |name: &str| b.column_by_name(name).ok_or_else(|| format!("incidents: no column {name}"));
        let s = |name: &str| -> Result<_, String> { Ok(col(name)?.as_string::<i32>().clone()) };
        let ts = |name: &str| -> Result<_, String> { Ok(col(name)?.as_primitive::<TimestampMicrosecondType>().clone()) };
        let (id, site, vector, status, sig) = (s("incident_id")?, s("site")?, s("vector")?, s("status")?, s("signature")?);
        let (start, detected, end, updated) = (ts("start_ts")?, ts("detected_ts")?, ts("end_ts")?, ts("updated_ts")?);
        let peak = col("peak_rps")?.as_primitive::<Float64Type>().clone();
        let base = col("baseline_rps")?.as_primitive::<Float64Type>().clone();
        let attack = col("attack_requests")?.as_primitive::<UInt64Type>().clone();
        let ips = col("distinct_ips")?.as_primitive::<UInt64Type>().clone();
        for i in 0..b.num_rows() {
            let secs = |v: i64| v.div_euclid(1_000_000);
            let rec = IncidentRecord {
                incident_id: id.value(i).to_owned(),
                site: site.value(i).to_owned(),
                vector: vector.value(i).to_owned(),
                status: status.value(i).to_owned(),
                start_ts: secs(start.value(i)),
                detected_ts: secs(detected.value(i)),
                end_ts: (!end.is_null(i)).then(|| secs(end.value(i))),
                peak_rps: peak.value(i),
                baseline_rps: base.value(i),
                attack_requests: attack.value(i),
                distinct_ips: ips.value(i),
                signature: serde_json::from_str::<Option<SignatureJson>>(sig.value(i)).map_err(|e| format!("incident {}: signature: {e}", id.value(i)))?,
                updated_ts: secs(updated.value(i)),
            };
            match latest.get(&rec.incident_id) {
                Some(old) if (old.updated_ts, old.attack_requests) >= (rec.updated_ts, rec.attack_requests) => {}
                _ => {
                    latest.insert(rec.incident_id.clone(), rec);
                }
            }
        }
    }
    Ok(latest.into_values().collect())
}

/// The score of one attack.
#[derive(Debug, Clone, Serialize)]
pub struct AttackScore {
    pub id: String,
    pub site: String,
    pub vector: String,
    pub shape: Option<String>,
    pub factor: f64,
    pub detected: bool,
    pub incident_id: Option<String>,
    /// Incidents on this attack beyond the first.
    pub splits: usize,
    pub detected_vector: Option<String>,
    pub delay_secs: Option<i64>,
    /// Event time from the attack's onset (see [`TruthInjection::onset_ts`]) to detection.
    pub delay_from_onset_secs: Option<i64>,
    /// Event time from the first second whose own count reaches the onset level (see
    /// [`TruthInjection::first_second_at_level_ts`]) to detection.
    pub delay_from_first_second_at_level_secs: Option<i64>,
    /// |incident peak − (truth peak + baseline)| / (truth peak + baseline).
    pub peak_rps_error: Option<f64>,
    pub signature_precision: Option<f64>,
    pub signature_coverage: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Distribution {
    pub n: usize,
    pub min: Option<f64>,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub max: Option<f64>,
}

impl Distribution {
    fn of(mut v: Vec<f64>) -> Self {
        v.sort_by(f64::total_cmp);
        let q = |p: f64| v.get(((v.len() as f64 * p).ceil() as usize).saturating_sub(1).min(v.len().saturating_sub(1))).copied();
        Distribution { n: v.len(), min: v.first().copied(), p50: q(0.5), p95: q(0.95), max: v.last().copied() }
    }
}

/// The whole evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub scenario: String,
    pub seed: u64,
    pub attacks: usize,
    pub detected: usize,
    /// Over attacks of at least 3× their site's baseline.
    pub recall_3x: Option<f64>,
    /// Incidents that belong to an attack, over all incidents.
    pub precision: Option<f64>,
    pub incidents: usize,
    /// False alerts by the negative they overlap (`baseline` for plain traffic).
    pub false_alerts: BTreeMap<String, usize>,
    /// Negative injections per kind (so zero alerts can be read against how many there were).
    pub negatives: BTreeMap<String, usize>,
    /// Detection delay from the attack's first event, and from its onset.
    pub delay_secs: Distribution,
    pub delay_from_onset_secs: Distribution,
    pub peak_rps_error: Distribution,
    pub vector_agreement: Option<f64>,
    /// Signature precision and coverage over the distributed floods (`http_flood` with at least
    /// 100 attacker addresses), when events were given.
    pub flood_signature_precision: Distribution,
    pub flood_signature_coverage: Distribution,
    pub signature_precision: Distribution,
    pub signature_coverage: Distribution,
    pub per_attack: Vec<AttackScore>,
    pub false_alert_incidents: Vec<String>,
}

fn overlaps(inc: &IncidentRecord, inj: &TruthInjection) -> bool {
    let inc_end = inc.end_ts.unwrap_or(i64::MAX);
    inc.site == inj.site && inc.start_ts < inj.end_ts + MATCH_SLACK_SECS && inc_end > inj.start_ts - MATCH_SLACK_SECS
}

/// Score `incidents` against `truth`. `events` are the generated files (for signature scores).
pub fn evaluate(truth: &TruthFile, incidents: &[IncidentRecord], events: &[PathBuf]) -> Result<EvalReport, String> {
    let incidents: Vec<IncidentRecord> = incidents.iter().filter(|i| truth.covers(i)).cloned().collect();
    let incidents = &incidents[..];
    let attacks: Vec<&TruthInjection> = truth.injections.iter().filter(|i| i.is_attack()).collect();
    let mut per_attack = Vec::new();
    let mut used: HashSet<&str> = HashSet::new();
    for a in &attacks {
        let mut mine: Vec<&IncidentRecord> = incidents.iter().filter(|i| overlaps(i, a)).collect();
        mine.sort_by_key(|i| (i.detected_ts, i.incident_id.clone()));
        used.extend(mine.iter().map(|i| i.incident_id.as_str()));
        let first = mine.first();
        let truth_peak = a.peak_rps as f64 + a.baseline_rps;
        per_attack.push(AttackScore {
            id: a.id.clone(),
            site: a.site.clone(),
            vector: a.vector.clone().unwrap_or_default(),
            shape: a.shape.clone(),
            factor: a.factor,
            detected: first.is_some(),
            incident_id: first.map(|i| i.incident_id.clone()),
            splits: mine.len().saturating_sub(1),
            detected_vector: first.map(|i| i.vector.clone()),
            delay_secs: first.map(|i| i.detected_ts - a.start_ts),
            delay_from_onset_secs: first.map(|i| i.detected_ts - a.onset_ts()),
            delay_from_first_second_at_level_secs: first.map(|i| i.detected_ts - a.first_second_at_level_ts()),
            peak_rps_error: first.filter(|_| truth_peak > 0.0).map(|i| (i.peak_rps - truth_peak).abs() / truth_peak),
            signature_precision: None,
            signature_coverage: None,
        });
    }
    let mut false_alerts: BTreeMap<String, usize> = BTreeMap::new();
    let mut false_alert_incidents = Vec::new();
    for inc in incidents.iter().filter(|i| !used.contains(i.incident_id.as_str())) {
        let kind = truth.injections.iter().find(|n| !n.is_attack() && overlaps(inc, n)).map_or("baseline".to_owned(), |n| n.kind.clone());
        *false_alerts.entry(kind).or_default() += 1;
        false_alert_incidents.push(inc.incident_id.clone());
    }
    let mut negatives: BTreeMap<String, usize> = BTreeMap::new();
    for n in truth.injections.iter().filter(|i| !i.is_attack()) {
        *negatives.entry(n.kind.clone()).or_default() += 1;
        false_alerts.entry(n.kind.clone()).or_default();
    }
    false_alerts.entry("baseline".into()).or_default();

    if !events.is_empty() {
        score_signatures(&attacks, incidents, &mut per_attack, events)?;
    }

    let big: Vec<&AttackScore> = per_attack.iter().filter(|s| s.factor >= 3.0 || s.factor == 0.0).collect();
    let detected = per_attack.iter().filter(|s| s.detected).count();
    let ratio = |a: usize, b: usize| (b > 0).then(|| a as f64 / b as f64);
    let distributed: HashSet<&str> = attacks
        .iter()
        .filter(|a| a.vector.as_deref() == Some("http_flood") && a.attackers.as_ref().is_some_and(|s| s.count >= 100))
        .map(|a| a.id.as_str())
        .collect();
    let collect = |f: &dyn Fn(&AttackScore) -> Option<f64>, only: Option<&HashSet<&str>>| {
        Distribution::of(per_attack.iter().filter(|s| only.is_none_or(|o| o.contains(s.id.as_str()))).filter_map(f).collect())
    };
    Ok(EvalReport {
        scenario: truth.scenario.clone(),
        seed: truth.seed,
        attacks: attacks.len(),
        detected,
        recall_3x: ratio(big.iter().filter(|s| s.detected).count(), big.len()),
        precision: ratio(used.len(), incidents.len()),
        incidents: incidents.len(),
        false_alerts,
        negatives,
        delay_secs: collect(&|s| s.delay_secs.map(|d| d as f64), None),
        delay_from_onset_secs: collect(&|s| s.delay_from_onset_secs.map(|d| d as f64), None),
        peak_rps_error: collect(&|s| s.peak_rps_error, None),
        vector_agreement: ratio(
            per_attack.iter().filter(|s| s.detected && s.detected_vector.as_deref() == Some(s.vector.as_str())).count(),
            detected,
        ),
        flood_signature_precision: collect(&|s| s.signature_precision, Some(&distributed)),
        flood_signature_coverage: collect(&|s| s.signature_coverage, Some(&distributed)),
        signature_precision: collect(&|s| s.signature_precision, None),
        signature_coverage: collect(&|s| s.signature_coverage, None),
        per_attack,
        false_alert_incidents,
    })
}

/// Counts per detected attack: (signature matches, of which labelled, labelled events, of which matched).
#[derive(Default, Clone, Copy)]
struct Counts {
    matched: u64,
    matched_attack: u64,
    attack: u64,
    attack_matched: u64,
}

fn score_signatures(attacks: &[&TruthInjection], incidents: &[IncidentRecord], scores: &mut [AttackScore], events: &[PathBuf]) -> Result<(), String> {
    use edgelens_ingest::reader::{open_file, LineReader, DEFAULT_MAX_LINE};
    struct Target {
        score: usize,
        site: String,
        /// Labelled window and addresses.
        start: i64,
        end: i64,
        ips: HashSet<IpAddr>,
        /// The incident's window and signature.
        inc_start: i64,
        inc_end: i64,
        signature: Signature,
    }
    let by_id: HashMap<&str, &IncidentRecord> = incidents.iter().map(|i| (i.incident_id.as_str(), i)).collect();
    let mut targets = Vec::new();
    for (k, (a, s)) in attacks.iter().zip(scores.iter()).enumerate() {
        let Some(inc) = s.incident_id.as_deref().and_then(|id| by_id.get(id)) else { continue };
        let Some(sig) = &inc.signature else { continue };
        let ips = a.attackers.as_ref().map(|s| s.ips.iter().filter_map(|ip| ip.parse().ok()).collect()).unwrap_or_default();
        targets.push(Target {
            score: k,
            site: a.site.clone(),
            start: a.start_ts,
            end: a.end_ts,
            ips,
            inc_start: inc.start_ts,
            inc_end: inc.end_ts.unwrap_or(i64::MAX),
            signature: sig.matcher(),
        });
    }
    let mut by_site: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, t) in targets.iter().enumerate() {
        by_site.entry(t.site.clone()).or_default().push(i);
    }
    let mut counts = vec![Counts::default(); targets.len()];
    for path in events {
        let (reader, _) = open_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut lines = LineReader::new(reader, DEFAULT_MAX_LINE);
        while let Some(line) = lines.next_line().map_err(|e| format!("{}: {e}", path.display()))? {
            let Ok(ev) = line.parse() else { continue };
            let Some(ts) = by_site.get(ev.site.as_ref()) else { continue };
            let sec = ev.ts.div_euclid(1_000_000_000);
            for &i in ts {
                let t = &targets[i];
                let labelled = sec >= t.start && sec < t.end && t.ips.contains(&ev.client_ip);
                let in_incident = sec >= t.inc_start && sec < t.inc_end;
                if !labelled && !in_incident {
                    continue;
                }
                let m = event_matches(&t.signature, &ev);
                let c = &mut counts[i];
                if in_incident && m {
                    c.matched += 1;
                    c.matched_attack += u64::from(labelled);
                }
                if labelled {
                    c.attack += 1;
                    c.attack_matched += u64::from(m);
                }
            }
        }
    }
    for (t, c) in targets.iter().zip(counts) {
        let s = &mut scores[t.score];
        s.signature_precision = (c.matched > 0).then(|| c.matched_attack as f64 / c.matched as f64).or(Some(0.0));
        s.signature_coverage = (c.attack > 0).then(|| c.attack_matched as f64 / c.attack as f64);
    }
    Ok(())
}

/// A short human-readable summary of a report.
pub fn summary(r: &EvalReport) -> String {
    let f = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}"));
    let mut out = format!(
        "scenario {} seed {}: {} attacks, {} detected, recall(≥3x) {}, incident precision {} ({} incidents)\n",
        r.scenario, r.seed, r.attacks, r.detected, f(r.recall_3x), f(r.precision), r.incidents
    );
    out += &format!(
        "detection delay from start p50 {} s, p95 {} s, max {} s; from onset p50 {} s, p95 {} s, max {} s; peak-rps error p50 {}, p95 {}; vector agreement {}\n",
        f(r.delay_secs.p50),
        f(r.delay_secs.p95),
        f(r.delay_secs.max),
        f(r.delay_from_onset_secs.p50),
        f(r.delay_from_onset_secs.p95),
        f(r.delay_from_onset_secs.max),
        f(r.peak_rps_error.p50),
        f(r.peak_rps_error.p95),
        f(r.vector_agreement)
    );
    out += &format!(
        "signatures on distributed floods: precision p50 {} min {}, coverage p50 {} min {}; all attacks: precision p50 {}, coverage p50 {}\n",
        f(r.flood_signature_precision.p50),
        f(r.flood_signature_precision.min),
        f(r.flood_signature_coverage.p50),
        f(r.flood_signature_coverage.min),
        f(r.signature_precision.p50),
        f(r.signature_coverage.p50)
    );
    out += "false alerts:";
    for (k, v) in &r.false_alerts {
        out += &format!(" {k}={v}/{}", r.negatives.get(k).map_or("-".to_owned(), |n| n.to_string()));
    }
    out.push('\n');
    for a in &r.per_attack {
        out += &format!(
            "  {:<24} {:<20} {:<10} {:>5.1}x  {}  delay {:>4} (onset {:>3})  vector {:<20} sig p {} c {}\n",
            a.id,
            a.vector,
            a.shape.as_deref().unwrap_or("-"),
            a.factor,
            if a.detected { "detected" } else { "MISSED  " },
            a.delay_secs.map_or("-".into(), |d| d.to_string()),
            a.delay_from_onset_secs.map_or("-".into(), |d| d.to_string()),
            a.detected_vector.as_deref().unwrap_or("-"),
            f(a.signature_precision),
            f(a.signature_coverage)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inj(id: &str, kind: &str, site: &str, start: i64, end: i64) -> TruthInjection {
        TruthInjection {
            id: id.into(),
            kind: kind.into(),
            vector: (kind == "attack").then(|| "http_flood".into()),
            shape: None,
            site: site.into(),
            start_ts: start,
            end_ts: end,
            requests: 100,
            peak_rps: 90,
            baseline_rps: 10.0,
            factor: 9.0,
            attackers: None,
            timeline_start_ts: start,
            timeline: vec![1, 5, 20, 90],
        }
    }

    fn inc(id: &str, site: &str, start: i64, detected: i64, end: Option<i64>) -> IncidentRecord {
        IncidentRecord {
            incident_id: id.into(),
            site: site.into(),
            vector: "http_flood".into(),
            status: "ended".into(),
            start_ts: start,
            detected_ts: detected,
            end_ts: end,
            peak_rps: 110.0,
            baseline_rps: 10.0,
            attack_requests: 100,
            distinct_ips: 10,
            signature: None,
            updated_ts: detected,
        }
    }

    #[test]
    fn a_ramps_onset_is_when_its_rate_reaches_the_level_not_its_first_loud_second() {
        // A site of 1 request a second; the ramp adds one request a second every 10 seconds, and
        // a noisy second already brings 12 at second 40.
        let mut ramp = inj("ramp-1", "attack", "a.example", 1000, 1300);
        ramp.baseline_rps = 1.0;
        ramp.timeline = (0..300).map(|i| if i == 40 { 12 } else { i / 10 }).collect();
        assert_eq!(ramp.first_second_at_level_ts(), 1040);
        // Seconds 95..=105 bring 9·5 + 10·6 = 105 < 110; 96..=106 bring 9·4 + 10·7 = 106; the
        // mean first reaches 10 over 100..=110 (10·10 + 11 = 111 ≥ 110), centred on 105.
        assert_eq!(ramp.onset_ts(), 1105);
        // A flood that is at its level from its first second has its onset at its start.
        let mut flood = inj("flood-1", "attack", "a.example", 1000, 1100);
        flood.timeline = vec![60; 100];
        assert_eq!((flood.onset_ts(), flood.first_second_at_level_ts()), (1000, 1000));
        // No timeline: the start.
        flood.timeline.clear();
        assert_eq!(flood.onset_ts(), 1000);
    }

    #[test]
    fn matches_attacks_and_attributes_false_alerts() {
        let truth = TruthFile {
            scenario: "eval".into(),
            seed: 1,
            injections: vec![
                inj("flood-1", "attack", "a.example", 1000, 1100),
                inj("flood-2", "attack", "b.example", 1000, 1100),
                inj("flash-crowd-1", "flash_crowd", "c.example", 2000, 2300),
            ],
            start_ts: None,
            seconds_generated: None,
        };
        let incidents = vec![
            inc("a1", "a.example", 999, 1004, Some(1100)),
            inc("a2", "a.example", 1050, 1060, Some(1090)),
            inc("c1", "c.example", 2100, 2110, None),
            inc("d1", "d.example", 10, 20, Some(30)),
        ];
        let r = evaluate(&truth, &incidents, &[]).unwrap();
        assert_eq!(r.detected, 1);
        assert_eq!(r.recall_3x, Some(0.5));
        assert_eq!(r.per_attack[0].delay_secs, Some(4));
        // The attack sends its site's baseline (10/s) in its third second; its rate over the
        // 11 seconds around its first second is already 116 / 11.
        assert_eq!(r.per_attack[0].delay_from_first_second_at_level_secs, Some(2));
        assert_eq!(r.per_attack[0].delay_from_onset_secs, Some(4));
        assert_eq!(r.per_attack[0].splits, 1);
        assert_eq!(r.false_alerts["flash_crowd"], 1);
        assert_eq!(r.false_alerts["baseline"], 1);
        assert_eq!(r.precision, Some(0.5));
        assert!((r.per_attack[0].peak_rps_error.unwrap() - 0.1).abs() < 1e-9);
        assert!(summary(&r).contains("MISSED"));

        // Regression: with the generated time known, the incidents of other replays into the
        // same lake (another day) are not false alerts of this one.
        let dated = TruthFile { start_ts: Some(900), seconds_generated: Some(1500), ..truth.clone() };
        let other_day = inc("e1", "e.example", 90_000, 90_010, Some(90_100));
        let r = evaluate(&dated, &[incidents.clone(), vec![other_day]].concat(), &[]).unwrap();
        assert_eq!((r.false_alerts["baseline"], r.precision), (0, Some(2.0 / 3.0)), "d1 (before) and e1 (after) are outside");
    }
}
