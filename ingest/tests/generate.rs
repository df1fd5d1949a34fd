//! The synthetic traffic generator: determinism, valid Logpush lines, traffic shape, and ground
//! truth that matches what was written.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use edgelens_ingest::generate::{
    GenerateConfig, GenerateError, GroundTruth, InjectionKind, Scenario, TrafficGenerator, LIVE_DURATION,
};
use edgelens_schemas::parse_line;

const NANOS: i64 = 1_000_000_000;

fn cfg(scenario: Scenario, seed: u64, duration_secs: u64, rps: f64, sites: usize) -> GenerateConfig {
    GenerateConfig { scenario, seed, duration_secs, rps, sites, ..GenerateConfig::default() }
}

fn run(cfg: GenerateConfig) -> (Vec<u8>, GroundTruth, TrafficGenerator) {
    let mut g = TrafficGenerator::new(cfg).unwrap();
    let mut out = Vec::new();
    let mut counted = 0;
    while let Some(n) = g.next_second(&mut out) {
        counted += n;
    }
    assert_eq!(counted, out.iter().filter(|&&b| b == b'\n').count(), "returned counts = lines written");
    let truth = g.truth();
    (out, truth, g)
}

fn lines(out: &[u8]) -> impl Iterator<Item = &[u8]> {
    assert_eq!(out.last(), Some(&b'\n'));
    out[..out.len() - 1].split(|&b| b == b'\n')
}

#[test]
fn same_seed_same_bytes_and_truth() {
    let c = cfg(Scenario::Mixed, 7, 150, 200.0, 300);
    let (a, ta, _) = run(c.clone());
    let (b, tb, _) = run(c.clone());
    assert!(a == b, "same config must give byte-identical output");
    assert_eq!(ta, tb);
    assert_eq!(serde_json::to_string(&ta).unwrap(), serde_json::to_string(&tb).unwrap());
    let (d, _, _) = run(GenerateConfig { seed: 8, ..c });
    assert!(a != d, "another seed gives other traffic");
}

#[test]
fn every_line_parses_and_ray_ids_are_unique() {
    let (out, truth, _) = run(cfg(Scenario::Flood, 3, 120, 400.0, 200));
    let mut rays = HashSet::new();
    let mut n = 0u64;
    let mut hosts_differ = 0;
    for line in lines(&out) {
        let ev = parse_line(line).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(line)));
        let ray = ev.ray_id.as_deref().expect("RayID present");
        assert_eq!(ray.len(), 16);
        assert!(ray.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert!(rays.insert(ray.to_owned()), "duplicate RayID {ray}");
        assert!(ev.asn > 0 && ev.country.len() == 2 && ev.colo.len() == 3);
        assert!(ev.method.is_some() && ev.uri.is_some() && ev.path.is_some() && ev.user_agent.is_some());
        assert!(ev.ja3.as_deref().is_some_and(|j| j.len() == 32) && ev.ja4.is_some());
        assert!(ev.uri.as_deref().unwrap().starts_with(ev.path.as_deref().unwrap()));
        assert!(ev.bot_score.is_some_and(|b| (1..=99).contains(&b)));
        assert!(ev.waf_attack_score.is_some_and(|b| (1..=99).contains(&b)));
        assert!(ev.origin_status.is_some() && ev.ttfb_ms.is_some());
        let raw: serde_json::Value = serde_json::from_slice(line).unwrap();
        assert!(raw["EdgeStartTimestamp"].is_i64(), "unix nanoseconds as an integer");
        let host = raw["ClientRequestHost"].as_str().unwrap();
        assert!(host == ev.site || host.ends_with(&format!(".{}", ev.site)));
        hosts_differ += usize::from(host != ev.site);
        n += 1;
    }
    assert_eq!(n, truth.total_events);
    assert!(hosts_differ > 0 && hosts_differ < n as usize, "a mix of apex and www./api. hosts");
}

/// Every generated line, of every scenario, takes the parser's fast path and reads exactly as the
/// general deserializer reads it (so replays of generated traffic measure the fast path).
#[test]
fn every_generated_line_takes_the_fast_path_unchanged() {
    for scenario in Scenario::ALL {
        let seconds = if scenario == Scenario::Eval { 1800 } else { 120 };
        let (out, _, _) = run(cfg(scenario, 5, seconds, 40.0, 60));
        let mut n = 0;
        for line in lines(&out) {
            let text = std::str::from_utf8(line).unwrap();
            let fast = edgelens_schemas::flat_scan::scan(text).unwrap_or_else(|| panic!("{scenario:?} line left to the general path: {text}"));
            assert_eq!(edgelens_schemas::event::deserialize(text).as_ref(), Ok(&fast), "{text}");
            n += 1;
        }
        assert!(n > 1000, "{scenario:?}: {n} lines");
    }
}

#[test]
fn traffic_shape_zipf_count_and_mixes() {
    let rps = 500.0;
    let secs = 300;
    let (out, truth, g) = run(cfg(Scenario::Baseline, 11, secs, rps, 1000));
    let expected = rps * secs as f64;
    let got = truth.baseline_events as f64;
    assert!((got - expected).abs() < 0.02 * expected, "{got} events, expected about {expected}");
    assert_eq!(truth.total_events, truth.baseline_events);
    assert!(truth.injections.is_empty());

    let mut per_site: HashMap<String, u64> = HashMap::new();
    let mut status: BTreeMap<u16, u64> = BTreeMap::new();
    let mut cache: HashMap<String, u64> = HashMap::new();
    let mut blocked = 0u64;
    let mut site_ips: HashMap<String, HashSet<IpAddr>> = HashMap::new();
    let mut v6 = 0u64;
    for line in lines(&out) {
        let ev = parse_line(line).unwrap();
        *per_site.entry(ev.site.to_string()).or_default() += 1;
        *status.entry(ev.status).or_default() += 1;
        *cache.entry(ev.cache_status.to_string()).or_default() += 1;
        blocked += u64::from(ev.is_blocked());
        v6 += u64::from(ev.client_ip.is_ipv6());
        site_ips.entry(ev.site.to_string()).or_default().insert(ev.client_ip);
    }
    let profiles = g.site_profiles();
    let top = &profiles[0].name;
    let mut counts: Vec<u64> = profiles.iter().map(|p| per_site.get(&p.name).copied().unwrap_or(0)).collect();
    let top_count = counts[0];
    counts.sort_unstable();
    let median = counts[counts.len() / 2].max(1);
    assert!(top_count > 100 * median, "top site {top} has {top_count}, median site {median}");
    assert!(per_site.len() > 500, "most sites get some traffic");

    let total = truth.total_events as f64;
    let share = |s: u16| status.get(&s).copied().unwrap_or(0) as f64 / total;
    assert!(share(200) > 0.8, "{status:?}");
    assert!(share(304) > 0.005 && share(404) > 0.002, "{status:?}");
    assert!(status.range(500..600).map(|(_, c)| c).sum::<u64>() > 0, "{status:?}");
    for c in ["hit", "miss", "dynamic", "expired"] {
        assert!(cache.get(c).copied().unwrap_or(0) > 0, "{c}: {cache:?}");
    }
    assert!(blocked > 0 && (blocked as f64) < total * 0.01, "{blocked} blocked");
    assert!(v6 > 0 && (v6 as f64) < total * 0.4);
    // Clients recur: the top site sees far fewer distinct IPs than requests.
    let distinct = site_ips[top].len() as f64;
    assert!(distinct < 0.6 * top_count as f64 && distinct > 0.02 * top_count as f64, "{distinct} IPs");
}

#[test]
fn flood_is_ten_times_baseline_and_counted_exactly() {
    let rps = 300.0;
    let (out, truth, g) = run(cfg(Scenario::Flood, 5, 300, rps, 200));
    assert_eq!(truth.injections.len(), 1);
    let f = &truth.injections[0];
    assert_eq!(f.kind, InjectionKind::Attack);
    assert!(!f.ongoing && f.site_rank <= 20);
    let atk = f.attackers.as_ref().unwrap();
    assert_eq!(atk.ips.len(), atk.count);
    assert!((1500..=5000).contains(&atk.count));
    assert!(atk.asns.len() >= 3 && atk.asns.len() <= 7, "{:?}", atk.asns);
    let ips: HashSet<IpAddr> = atk.ips.iter().map(|s| s.parse().unwrap()).collect();
    assert_eq!(ips.len(), atk.count, "attacker IPs are distinct");
    let pattern = f.request_pattern.as_ref().unwrap();
    // The truth names what the flood does: random queries on `/` bust the cache.
    assert_eq!(f.vector.as_deref(), Some(if pattern.random_query { "cache_busting" } else { "http_flood" }));

    let profile = g.site_profiles().into_iter().find(|p| p.name == f.site).unwrap();
    assert!(atk.asns.iter().all(|a| !profile.asns.contains(a)), "attack ASNs are atypical for the site");
    assert!(
        atk.countries.iter().any(|c| !profile.countries.iter().any(|(pc, _)| pc == c)),
        "attack countries are atypical for the site"
    );

    let mut per_sec: BTreeMap<i64, u64> = BTreeMap::new();
    let mut attack_per_sec: BTreeMap<i64, u64> = BTreeMap::new();
    let mut attack_events = 0u64;
    let mut top: HashMap<IpAddr, u64> = HashMap::new();
    for line in lines(&out) {
        let ev = parse_line(line).unwrap();
        if ev.site != f.site.as_str() {
            continue;
        }
        let sec = ev.ts.div_euclid(NANOS);
        *per_sec.entry(sec).or_default() += 1;
        if ips.contains(&ev.client_ip) {
            attack_events += 1;
            *attack_per_sec.entry(sec).or_default() += 1;
            *top.entry(ev.client_ip).or_default() += 1;
            assert!(sec >= f.start_ts && sec < f.end_ts, "attack event outside the truth window");
            assert!(pattern.user_agents.iter().any(|u| Some(u.as_str()) == ev.user_agent.as_deref()));
            assert_eq!(ev.path.as_deref(), Some(pattern.path.as_str()));
            assert_eq!(ev.method.as_deref(), Some(pattern.method.as_str()));
        }
    }
    assert_eq!(attack_events, f.requests, "truth counts every attack event exactly");
    assert_eq!(f.timeline.iter().map(|&c| c as u64).sum::<u64>(), f.requests);
    assert_eq!(f.peak_rps, *f.timeline.iter().max().unwrap() as u64);
    assert_eq!(truth.baseline_events + f.requests, truth.total_events);
    let (top_ip, top_n) = top.iter().max_by_key(|(ip, n)| (**n, std::cmp::Reverse(**ip))).unwrap();
    assert_eq!(atk.top[0].ip, top_ip.to_string());
    assert_eq!(atk.top[0].requests, *top_n);

    // Baseline before the flood vs the site's rate while it runs (after the ramp).
    let before: Vec<u64> = (truth.start_ts + 5..f.start_ts - 2).map(|s| per_sec.get(&s).copied().unwrap_or(0)).collect();
    let baseline = before.iter().sum::<u64>() as f64 / before.len() as f64;
    let plateau: Vec<u64> =
        (f.start_ts + 10..f.end_ts - 3).map(|s| attack_per_sec.get(&s).copied().unwrap_or(0)).collect();
    let flood_rate = plateau.iter().sum::<u64>() as f64 / plateau.len() as f64;
    assert!(flood_rate >= 10.0 * baseline, "flood {flood_rate}/s vs baseline {baseline}/s");
    assert!(plateau.iter().all(|&c| c as f64 >= 5.0 * baseline), "no gaps in the flood");
    // Ramp: ≥10× within about ten seconds.
    let ramp_sec = (f.start_ts..f.end_ts).find(|s| attack_per_sec.get(s).copied().unwrap_or(0) as f64 >= 10.0 * baseline);
    assert!(ramp_sec.is_some_and(|s| s - f.start_ts <= 12), "ramp too slow: {ramp_sec:?}");
    // And it stops.
    let after: u64 = (f.end_ts..truth.start_ts + 300).map(|s| attack_per_sec.get(&s).copied().unwrap_or(0)).sum();
    assert_eq!(after, 0);
    assert!((f.end_ts - f.start_ts) >= 120, "lasts minutes");
}

#[test]
fn flash_crowd_comes_from_the_sites_usual_networks() {
    let (out, truth, g) = run(cfg(Scenario::FlashCrowd, 21, 400, 400.0, 300));
    assert_eq!(truth.injections.len(), 1);
    let c = &truth.injections[0];
    assert_eq!(c.kind, InjectionKind::FlashCrowd);
    assert!(c.attackers.is_none() && c.vector.is_none() && c.hot_path.is_some());
    let profile = g.site_profiles().into_iter().find(|p| p.name == c.site).unwrap();
    let usual: HashSet<u32> = profile.asns.iter().copied().collect();

    let mut per_sec: BTreeMap<i64, u64> = BTreeMap::new();
    let mut ips_before = HashSet::new();
    let mut ips_during = HashSet::new();
    let mut hot = 0u64;
    let mut during = 0u64;
    for line in lines(&out) {
        let ev = parse_line(line).unwrap();
        if ev.site != c.site.as_str() {
            continue;
        }
        assert!(usual.contains(&ev.asn), "ASN {} is not one of the site's usual networks", ev.asn);
        let sec = ev.ts.div_euclid(NANOS);
        *per_sec.entry(sec).or_default() += 1;
        if sec < c.start_ts {
            ips_before.insert(ev.client_ip);
        } else if sec < c.end_ts {
            ips_during.insert(ev.client_ip);
            during += 1;
            hot += u64::from(ev.path.as_deref() == c.hot_path.as_deref());
        }
    }
    let before: Vec<u64> = (truth.start_ts + 5..c.start_ts - 2).map(|s| per_sec.get(&s).copied().unwrap_or(0)).collect();
    let baseline = before.iter().sum::<u64>() as f64 / before.len() as f64;
    let plateau_from = c.start_ts + c.ramp_up_secs as i64 + 2;
    let plateau_to = c.start_ts + (c.end_ts - c.start_ts) * 2 / 3 - 2;
    let plateau: Vec<u64> = (plateau_from..plateau_to).map(|s| per_sec.get(&s).copied().unwrap_or(0)).collect();
    let rate = plateau.iter().sum::<u64>() as f64 / plateau.len() as f64;
    assert!(rate >= 4.0 * baseline && rate <= 12.0 * baseline, "crowd {rate}/s vs baseline {baseline}/s");
    let new_ips = ips_during.difference(&ips_before).count();
    assert!(new_ips as f64 > 0.5 * ips_during.len() as f64, "mostly new visitors: {new_ips} of {}", ips_during.len());
    assert!(hot as f64 > 0.15 * during as f64, "a hot page: {hot} of {during}");
}

#[test]
fn mixed_puts_flood_and_crowd_on_different_sites() {
    let (_, truth, _) = run(cfg(Scenario::Mixed, 2, 600, 100.0, 100));
    let kinds: Vec<InjectionKind> = truth.injections.iter().map(|i| i.kind).collect();
    assert_eq!(kinds.len(), 2);
    assert!(kinds.contains(&InjectionKind::Attack) && kinds.contains(&InjectionKind::FlashCrowd));
    assert_ne!(truth.injections[0].site, truth.injections[1].site);
    let (a, b) = (&truth.injections[0], &truth.injections[1]);
    assert!(a.start_ts < b.end_ts && b.start_ts < a.end_ts, "they overlap in time");
}

fn assert_disorder_bounded(out: &[u8], start_ts: i64, jitter_ms: u32) -> (u64, bool) {
    let mut max_seen = i64::MIN;
    let mut worst = 0i64;
    let mut out_of_order = false;
    for line in lines(out) {
        let ev = parse_line(line).unwrap();
        assert!(ev.ts >= start_ts * NANOS, "event before the start");
        if ev.ts < max_seen {
            out_of_order = true;
            worst = worst.max(max_seen - ev.ts);
        }
        max_seen = max_seen.max(ev.ts);
    }
    assert!(worst <= jitter_ms as i64 * 1_000_000, "disorder {worst} ns above {jitter_ms} ms");
    (worst as u64, out_of_order)
}

#[test]
fn jitter_is_bounded() {
    for jitter_ms in [1500, 4999, 1000, 300, 0] {
        let c = GenerateConfig { jitter_ms, ..cfg(Scenario::Flood, 4, 90, 200.0, 100) };
        let (out, truth, _) = run(c);
        let (worst, out_of_order) = assert_disorder_bounded(&out, truth.start_ts, jitter_ms);
        if jitter_ms >= 1000 {
            assert!(out_of_order && worst > 800_000_000, "jitter {jitter_ms}: lines in random order");
        }
        if jitter_ms == 0 {
            assert!(!out_of_order, "no jitter: in order");
        }
    }
}

#[test]
fn live_demo_recurs_and_does_not_depend_on_duration() {
    let start = 1_800_000_000;
    let c = GenerateConfig {
        scenario: Scenario::Demo,
        start_ts_secs: start,
        duration_secs: LIVE_DURATION,
        rps: 20.0,
        sites: 50,
        ..GenerateConfig::default()
    };
    let mut g = TrafficGenerator::new(c.clone()).unwrap();
    let mut out = Vec::new();
    let mut mid_truth = None;
    for s in 0..1200 {
        out.clear();
        assert_eq!(g.next_ts_secs(), start + s);
        g.next_second(&mut out).expect("live mode never ends");
        if s == 130 {
            mid_truth = Some(g.truth());
        }
    }
    let mid = mid_truth.unwrap();
    assert_eq!(mid.duration_secs, None);
    assert_eq!(mid.injections.len(), 1, "first flood within ~100 s");
    assert!(mid.injections[0].ongoing);
    let t = g.truth();
    let floods: Vec<_> = t.injections.iter().filter(|i| i.kind == InjectionKind::Attack).collect();
    let crowds = t.injections.iter().filter(|i| i.kind == InjectionKind::FlashCrowd).count();
    assert!((4..=6).contains(&floods.len()), "a flood every ~4 min: {}", floods.len());
    assert!(crowds >= 1, "a flash crowd now and then");
    for w in floods.windows(2) {
        let gap = w[1].timeline_start_ts - w[0].timeline_start_ts;
        assert!((200..=280).contains(&gap), "flood gap {gap}");
    }
    for f in &floods {
        assert!(f.site_rank <= 20);
        let len = f.timeline.len();
        assert!((45..=75).contains(&len) || f.ongoing, "flood length {len}");
    }
    // The same config is deterministic in live mode too.
    let mut g2 = TrafficGenerator::new(c).unwrap();
    for _ in 0..1200 {
        out.clear();
        g2.next_second(&mut out).unwrap();
    }
    assert_eq!(g2.truth(), t);
}

#[test]
fn stops_before_timestamps_leave_the_accepted_range() {
    let last = 4_102_444_800 - 10; // 10 s before 2100-01-01
    let c = GenerateConfig { start_ts_secs: last, duration_secs: LIVE_DURATION, rps: 50.0, sites: 10, ..GenerateConfig::default() };
    let (out, truth, _) = run(c);
    assert!(truth.seconds_generated < 10);
    for line in lines(&out) {
        parse_line(line).unwrap();
    }
}

#[test]
fn config_is_validated_all_at_once() {
    let bad = GenerateConfig { rps: 0.0, jitter_ms: 5000, sites: 0, ..GenerateConfig::default() };
    let Err(GenerateError::InvalidConfig(msg)) = TrafficGenerator::new(bad) else { panic!("accepted a bad config") };
    assert!(msg.contains("rps") && msg.contains("jitter_ms") && msg.contains("sites"), "{msg}");
    let short = GenerateConfig { scenario: Scenario::Flood, duration_secs: 30, ..GenerateConfig::default() };
    assert!(TrafficGenerator::new(short).is_err());
    let lonely = GenerateConfig { scenario: Scenario::Mixed, sites: 1, ..GenerateConfig::default() };
    assert!(TrafficGenerator::new(lonely).is_err());
    assert!(TrafficGenerator::new(GenerateConfig { sites: 1, rps: 1.0, ..GenerateConfig::default() }).is_ok());
}

#[test]
fn scenario_names() {
    for s in Scenario::ALL {
        assert_eq!(s.to_string().parse::<Scenario>().unwrap(), s);
        assert_eq!(serde_json::to_value(s).unwrap(), serde_json::Value::String(s.to_string()));
    }
    assert_eq!("flash-crowd".parse::<Scenario>().unwrap(), Scenario::FlashCrowd);
    assert_eq!("Mixed".parse::<Scenario>().unwrap(), Scenario::Mixed);
    assert!(matches!("ddos".parse::<Scenario>(), Err(GenerateError::UnknownScenario(_))));
}

#[test]
fn truth_round_trips_through_json() {
    let (_, truth, _) = run(cfg(Scenario::Mixed, 9, 200, 100.0, 50));
    let text = serde_json::to_string_pretty(&truth).unwrap();
    let back: GroundTruth = serde_json::from_str(&text).unwrap();
    assert_eq!(back, truth);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["scenario"], "mixed");
    assert!(v["injections"][0]["start"].as_str().unwrap().ends_with('Z'));
}

/// Per-injection tallies of one eval run, recounted from the written lines.
#[derive(Default)]
struct EvalTally {
    /// Events of the attack by the labelling rule (site, window, attacker IP).
    labelled: u64,
    /// Events of the attack's site using one of its attacker IPs outside its window.
    stray: u64,
    rejected: u64,
    posts_to_path: u64,
    not_cached: u64,
    ips: HashSet<IpAddr>,
    paths: HashSet<String>,
    errors_5xx: u64,
    /// The site's other events in the window: all, those that reached the origin, failed ones.
    site_events: u64,
    site_origin: u64,
    site_failed: u64,
    site_hits: u64,
    site_static: u64,
    site_static_miss: u64,
}

fn eval_cfg(seed: u64) -> GenerateConfig {
    GenerateConfig { scenario: Scenario::Eval, seed, duration_secs: 1800, rps: 150.0, sites: 200, ..GenerateConfig::default() }
}

/// Generates the run second by second (nothing kept but tallies) and returns the truth, a hash of
/// every byte written, the number of lines and the tallies (same order as `truth.injections`).
fn eval_run(c: GenerateConfig, check: bool) -> (GroundTruth, u64, u64, Vec<EvalTally>, u64) {
    use std::hash::Hasher;
    let mut g = TrafficGenerator::new(c).unwrap();
    // The plan is fixed up front; the truth lists injections once started, so take it at the end.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let mut buf = Vec::new();
    let mut all_lines = Vec::new();
    while g.next_second(&mut buf).is_some() {
        hasher.write(&buf);
        if check {
            all_lines.push(std::mem::take(&mut buf));
        }
        buf.clear();
    }
    let truth = g.truth();
    if !check {
        return (truth, hasher.finish(), 0, Vec::new(), 0);
    }
    let attack_ips: Vec<HashSet<IpAddr>> = truth
        .injections
        .iter()
        .map(|i| i.attackers.as_ref().map_or_else(HashSet::new, |a| a.ips.iter().map(|s| s.parse().unwrap()).collect()))
        .collect();
    let by_site: HashMap<&str, Vec<usize>> = truth.injections.iter().enumerate().fold(HashMap::new(), |mut m, (i, inj)| {
        m.entry(inj.site.as_str()).or_default().push(i);
        m
    });
    let mut tallies: Vec<EvalTally> = truth.injections.iter().map(|_| EvalTally::default()).collect();
    let mut rays = HashSet::new();
    let mut n_lines = 0u64;
    let mut scraper_ua_elsewhere = 0u64;
    for chunk in &all_lines {
        for line in chunk[..chunk.len().saturating_sub(1)].split(|&b| b == b'\n') {
            let ev = parse_line(line).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(line)));
            n_lines += 1;
            assert!(rays.insert(u64::from_str_radix(ev.ray_id.as_deref().unwrap(), 16).unwrap()), "duplicate RayID");
            let sec = ev.ts.div_euclid(NANOS);
            let mut is_scrape = false;
            for &i in by_site.get(ev.site.as_ref()).map(Vec::as_slice).unwrap_or(&[]) {
                let inj = &truth.injections[i];
                let t = &mut tallies[i];
                let in_window = sec >= inj.start_ts && sec < inj.end_ts;
                let attacker = attack_ips[i].contains(&ev.client_ip);
                if attacker && in_window {
                    t.labelled += 1;
                    t.ips.insert(ev.client_ip);
                    t.paths.insert(ev.path.as_deref().unwrap().to_owned());
                    let p = inj.request_pattern.as_ref().unwrap();
                    t.posts_to_path += u64::from(ev.method.as_deref() == Some("POST") && ev.path.as_deref() == Some(p.path.as_str()));
                    t.rejected += u64::from(ev.status == 401 || ev.status == 403);
                    t.not_cached += u64::from(!ev.is_cache_hit() && ev.cache_status != "miss" || ev.cache_status == "dynamic");
                    t.errors_5xx += u64::from(ev.status >= 500);
                    assert!(p.user_agents.iter().any(|u| Some(u.as_str()) == ev.user_agent.as_deref()));
                    is_scrape |= inj.vector.as_deref() == Some("scraping");
                } else if attacker {
                    t.stray += 1;
                } else if in_window {
                    // Away from the window's edges, where jitter mixes in neighbouring seconds.
                    if sec >= inj.start_ts + 15 && sec < inj.end_ts - 5 {
                        t.site_events += 1;
                        let hit = ev.is_cache_hit();
                        t.site_hits += u64::from(hit);
                        let origin_bound = !hit && !ev.is_blocked();
                        t.site_origin += u64::from(origin_bound);
                        t.site_failed += u64::from(origin_bound && matches!(ev.status, 502 | 503 | 504 | 522 | 524));
                        let path = ev.path.as_deref().unwrap();
                        let is_static = ["css", "js", "jpg", "webp", "woff2", "ico", "svg", "xml", "txt", "ts", "m3u8"]
                            .iter()
                            .any(|x| path.ends_with(&format!(".{x}")));
                        if is_static && !ev.is_blocked() && ev.user_agent.as_deref().is_some_and(|u| !u.contains("bot")) {
                            t.site_static += 1;
                            t.site_static_miss += u64::from(ev.cache_status == "miss");
                        }
                    }
                }
            }
            if !is_scrape && ev.user_agent.as_deref().is_some_and(|u| u.contains("DataHarvest")) {
                scraper_ua_elsewhere += 1;
            }
        }
    }
    (truth, hasher.finish(), n_lines, tallies, scraper_ua_elsewhere)
}

#[test]
fn eval_has_every_vector_and_negative_with_exact_truth() {
    check_eval(eval_cfg(5));
}

fn check_eval(c: GenerateConfig) {
    let run_start = c.start_ts_secs;
    let run_end = run_start + c.duration_secs as i64;
    let (truth, hash, n_lines, tallies, scraper_ua_elsewhere) = eval_run(c.clone(), true);
    let profiles = TrafficGenerator::new(c.clone()).unwrap().site_profiles();

    // Totals.
    assert_eq!(n_lines, truth.total_events, "every line is counted");
    assert_eq!(truth.baseline_events + truth.injections.iter().map(|i| i.requests).sum::<u64>(), truth.total_events);
    assert_eq!(truth.seconds_generated, 1800);
    assert_eq!(scraper_ua_elsewhere, 0, "only the scraper uses its user agent");

    // The mix.
    let mut mix: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for i in &truth.injections {
        let kind = serde_json::to_value(i.kind).unwrap().as_str().unwrap().to_owned();
        *mix.entry((kind, i.vector.clone().unwrap_or_default(), i.shape.clone().unwrap_or_default())).or_default() += 1;
    }
    let want: BTreeMap<(String, String, String), usize> = [
        ("attack", "http_flood", "fast", 3),
        ("attack", "http_flood", "slow_ramp", 2),
        ("attack", "http_flood", "burst", 3),
        ("attack", "cache_busting", "fast", 2),
        ("attack", "credential_stuffing", "fast", 2),
        ("attack", "scraping", "fast", 2),
        ("attack", "origin_error_surge", "fast", 1),
        ("flash_crowd", "", "", 3),
        ("cache_purge", "", "", 2),
        ("origin_outage", "", "", 2),
        ("crawler", "", "", 2),
    ]
    .into_iter()
    .map(|(k, v, s, n)| ((k.to_owned(), v.to_owned(), s.to_owned()), n))
    .collect();
    assert_eq!(mix, want);
    let sites: HashSet<&str> = truth.injections.iter().map(|i| i.site.as_str()).collect();
    assert_eq!(sites.len(), truth.injections.len(), "one injection per site");
    let mut ids: Vec<&str> = truth.injections.iter().map(|i| i.id.as_str()).collect();
    ids.sort_unstable();
    for id in ["flood-1", "flood-8", "cache-busting-2", "credential-stuffing-2", "scraping-2", "origin-error-surge-1",
        "flash-crowd-3", "cache-purge-2", "origin-outage-2", "crawler-2"]
    {
        assert!(ids.binary_search(&id).is_ok(), "{id} in {ids:?}");
    }
    for w in truth.injections.windows(2) {
        assert!(w[0].timeline_start_ts <= w[1].timeline_start_ts, "in start order");
    }

    let mut overlapping_attacks = 0;
    for (i, inj) in truth.injections.iter().enumerate() {
        let t = &tallies[i];
        assert!(inj.site_rank <= 80 && !inj.ongoing, "{}", inj.id);
        assert_eq!(inj.timeline.iter().map(|&c| c as u64).sum::<u64>(), inj.requests, "{}", inj.id);
        if inj.kind == InjectionKind::Crawler {
            assert_eq!((inj.start_ts, inj.end_ts), (run_start, run_end), "{} runs the whole time", inj.id);
            assert_eq!(inj.timeline.len(), 1800);
            assert!((0.5..=1.0).contains(&inj.factor));
            assert!(inj.requests as f64 > 0.3 * inj.baseline_rps * 1800.0, "{}: {}", inj.id, inj.requests);
            continue;
        }
        assert!(inj.start_ts >= run_start + 600, "{} starts {} s in", inj.id, inj.start_ts - run_start);
        assert!(inj.end_ts <= run_end - 240, "{} ends {} s before the end", inj.id, run_end - inj.end_ts);
        match inj.kind {
            InjectionKind::Attack => {
                let atk = inj.attackers.as_ref().unwrap();
                assert_eq!(atk.count, atk.ips.len());
                assert_eq!(t.labelled, inj.requests, "{}: truth counts every labelled event", inj.id);
                assert_eq!(t.stray, 0, "{}: attacker IPs outside the attack", inj.id);
                assert!(inj.factor >= 3.0 && inj.peak_rps as f64 >= 3.0 * inj.baseline_rps && inj.peak_rps >= 40, "{}", inj.id);
                let profile = profiles.iter().find(|p| p.name == inj.site).unwrap();
                assert!(atk.asns.iter().all(|a| !profile.asns.contains(a)), "{}: attack ASNs are not the site's", inj.id);
                for o in &truth.injections[i + 1..] {
                    overlapping_attacks += usize::from(o.kind == InjectionKind::Attack && o.start_ts < inj.end_ts && inj.start_ts < o.end_ts);
                }
                let p = inj.request_pattern.as_ref().unwrap();
                let len = inj.timeline.len();
                match (inj.vector.as_deref().unwrap(), inj.shape.as_deref().unwrap()) {
                    ("http_flood", shape) => {
                        assert!(!p.random_query && !p.path.is_empty());
                        match shape {
                            "slow_ramp" => assert!((240..=480).contains(&inj.ramp_up_secs) && (300..=600).contains(&len)),
                            "burst" => assert!(inj.ramp_up_secs <= 3 && (30..=60).contains(&len)),
                            _ => assert!(atk.count >= 1500),
                        }
                    }
                    ("cache_busting", _) => {
                        assert!(p.random_query && p.path == "/");
                        assert_eq!(t.not_cached, t.labelled, "{}: never from cache", inj.id);
                    }
                    ("credential_stuffing", _) => {
                        assert!(["/login", "/wp-login.php", "/api/v1/auth/login", "/account/signin"].contains(&p.path.as_str()));
                        assert_eq!(t.posts_to_path, t.labelled, "{}: POSTs to the login path", inj.id);
                        let share = t.rejected as f64 / t.labelled as f64;
                        assert!((0.7..=0.9).contains(&share), "{}: {share} rejected", inj.id);
                        assert_eq!(t.not_cached, t.labelled);
                        assert!(atk.count >= 3000 && atk.countries.len() >= 8 && t.ips.len() > 1000, "{}: many IPs", inj.id);
                        assert!(p.user_agents.len() <= 2);
                    }
                    ("scraping", _) => {
                        assert!(atk.count <= 3 && t.ips.len() <= 3 && atk.asns.len() == 1, "{}", inj.id);
                        assert!(t.paths.len() >= 100, "{}: {} distinct paths", inj.id, t.paths.len());
                        assert!(p.paths.as_ref().is_some_and(|v| !v.is_empty()));
                    }
                    ("origin_error_surge", _) => {
                        assert!(t.errors_5xx as f64 > 0.6 * t.labelled as f64, "{}: attack responses fail", inj.id);
                        let failed = t.site_failed as f64 / t.site_events as f64;
                        assert!(failed > 0.25, "{}: {failed} of the site's responses fail", inj.id);
                        assert!(t.site_failed as f64 > 0.6 * t.site_origin as f64);
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            InjectionKind::FlashCrowd => {
                assert!(inj.attackers.is_none() && (5.0..=10.0).contains(&inj.factor));
            }
            InjectionKind::CachePurge => {
                assert_eq!(inj.requests, 0, "no extra requests");
                assert!((120..=300).contains(&(inj.end_ts - inj.start_ts)));
                assert!(t.site_static > 0 && t.site_static_miss == t.site_static, "{}: every cacheable request misses", inj.id);
                assert!((t.site_failed as f64) < 0.02 * t.site_origin as f64, "the origin answers as usual");
            }
            InjectionKind::OriginOutage => {
                let dur = (inj.end_ts - inj.start_ts) as f64;
                assert!((180.0..=306.0).contains(&dur), "{}: {dur} s", inj.id);
                assert!(inj.requests as f64 <= 0.3 * inj.baseline_rps * dur + 30.0, "{}: retries {}", inj.id, inj.requests);
                assert!(t.site_failed as f64 > 0.6 * t.site_origin as f64, "{}: the origin fails", inj.id);
            }
            InjectionKind::Crawler => unreachable!(),
        }
    }
    assert!(overlapping_attacks >= 2, "attacks overlap in time: {overlapping_attacks}");
    let single_asn = truth
        .injections
        .iter()
        .filter(|i| i.vector.as_deref() == Some("http_flood") && i.shape.as_deref() == Some("fast"))
        .filter(|i| i.attackers.as_ref().unwrap().asns.len() == 1)
        .count();
    assert_eq!(single_asn, 1, "one single-ASN flood");

    // Deterministic.
    let (truth2, hash2, ..) = eval_run(c.clone(), false);
    assert_eq!(hash, hash2, "same seed, same bytes");
    assert_eq!(truth, truth2);
    // (Floats may differ in the last bit after a JSON round trip; the structure must not.)
    let text = serde_json::to_string(&truth).unwrap();
    let back: GroundTruth = serde_json::from_str(&text).unwrap();
    assert_eq!(back.injections.len(), truth.injections.len());
    assert!(text.contains("\"scenario\":\"eval\"") && text.contains("\"kind\":\"cache_purge\""));
    assert!(text.contains("\"shape\":\"slow_ramp\"") && text.contains("\"vector\":\"credential_stuffing\""));
}

#[test]
fn eval_needs_half_an_hour_and_enough_sites() {
    let short = GenerateConfig { duration_secs: 1799, ..eval_cfg(1) };
    let Err(GenerateError::InvalidConfig(msg)) = TrafficGenerator::new(short) else { panic!("accepted 1799 s") };
    assert!(msg.contains("1800"), "{msg}");
    assert!(TrafficGenerator::new(GenerateConfig { duration_secs: LIVE_DURATION, ..eval_cfg(1) }).is_err());
    assert!(TrafficGenerator::new(GenerateConfig { sites: 23, ..eval_cfg(1) }).is_err());
    assert!(TrafficGenerator::new(GenerateConfig { sites: 24, ..eval_cfg(1) }).is_ok());
    assert!(TrafficGenerator::new(GenerateConfig { duration_secs: 3600, ..eval_cfg(1) }).is_ok());
    assert_eq!("eval".parse::<Scenario>().unwrap(), Scenario::Eval);
}
