//! Memory of the attack detector per tracked site: feeds `SITES` sites (default 1 000 000) a few
//! requests each over a learning period, so every site has a baseline and a traffic profile, and
//! then lets them go idle; prints the process's resident memory before and after, per site.
//!
//! `cargo run --release -p edgelens-aggregate --example detector_memory [SITES]`

use edgelens_aggregate::detect::{AttackDetector, DetectorConfig};
use edgelens_schemas::parse_line;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0)
}

fn main() {
    let sites: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let before = rss_kib();
    let mut det = AttackDetector::new(DetectorConfig::default());
    let t0 = 1_793_491_200i64;
    let started = std::time::Instant::now();
    let mut events = 0u64;
    // 8 requests per site spread over 80 s (one every 10 s), then a last second far later so every
    // open second is judged and the sites are idle.
    for round in 0..8u64 {
        for s in 0..sites {
            let ts = (t0 + (round * 10) as i64) * 1_000_000_000 + ((s % 1000) as i64) * 1_000_000;
            let line = format!(
                r#"{{"EdgeStartTimestamp":{ts},"ClientIP":"10.{}.{}.{}","EdgeResponseStatus":200,"ZoneName":"site-{s}.example","RayID":"{:016x}","ClientASN":{},"ClientCountry":"de","ClientRequestMethod":"GET","ClientRequestPath":"/p/{}","ClientRequestUserAgent":"Mozilla/5.0"}}"#,
                (s >> 16) & 255,
                (s >> 8) & 255,
                s & 255,
                s * 8 + round,
                64_500 + s % 100,
                round
            );
            det.observe(&parse_line(line.as_bytes()).expect("valid"));
            events += 1;
        }
    }
    det.finish();
    let _ = det.take_output();
    let elapsed = started.elapsed();
    let after = rss_kib();
    let state = det.encode_state().len();
    println!(
        "{} tracked sites: RSS {} MiB → {} MiB, {:.0} bytes per site in memory, checkpoint {:.0} bytes per site; {} events in {:.2} s ({:.0} ns/event)",
        det.tracked_sites(),
        before / 1024,
        after / 1024,
        (after.saturating_sub(before) * 1024) as f64 / sites as f64,
        state as f64 / sites as f64,
        events,
        elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / events as f64
    );
}
