//! Criterion micro-benchmarks of the hot paths, on generated traffic (`edgelens generate`'s mixed
//! scenario, 10 000 sites): parsing and validating a Logpush line (the fast path and the general
//! deserializer), a window update (one event into
//! the open 10 s / 1 min windows, RayID dedup included), merging distinct-client sketches (in
//! memory and from their stored bytes, as queries do), and the attack detector (per event, and its
//! per-second tick with 10 000 sites tracked). `bash bench/micro.sh` runs them and prints the
//! table kept in `bench/RESULTS.md`.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use edgelens_aggregate::detect::{AttackDetector, DetectorConfig};
use edgelens_aggregate::sketch::{ClientSketch, SketchUnion};
use edgelens_aggregate::{SiteWindows, WindowConfig};
use edgelens_ingest::generate::{GenerateConfig, Scenario, TrafficGenerator};
use edgelens_schemas::{EdgeEvent, parse_line};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

/// `seconds` of generated traffic at `rps` events/s over `sites` sites, as NDJSON lines.
fn lines(seconds: u64, rps: f64, sites: usize) -> Vec<Vec<u8>> {
    let cfg = GenerateConfig { scenario: Scenario::Mixed, seed: 42, duration_secs: seconds, rps, sites, ..GenerateConfig::default() };
    let mut generator = TrafficGenerator::new(cfg).expect("valid generator config");
    let mut out = Vec::new();
    while generator.next_second(&mut out).is_some() {}
    out.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect()
}

fn parsed(lines: &[Vec<u8>]) -> Vec<EdgeEvent<'_>> {
    lines.iter().filter_map(|l| parse_line(l).ok()).collect()
}

fn hot_paths(c: &mut Criterion) {
    let input = lines(120, 2_000.0, 10_000);
    let events = parsed(&input);
    let bytes: u64 = input.iter().map(|l| l.len() as u64 + 1).sum();

    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(input.len() as u64));
    g.bench_function("parse_line", |b| b.iter(|| input.iter().filter(|l| parse_line(black_box(l)).is_ok()).count()));
    // The same lines through the general deserializer alone (what every line took before the
    // fast path, and what lines of another shape take).
    g.bench_function("parse_line_general", |b| {
        b.iter(|| {
            input
                .iter()
                .filter(|l| std::str::from_utf8(black_box(l)).ok().and_then(|t| edgelens_schemas::event::deserialize(t).ok()).and_then(|raw| edgelens_schemas::event::validate(raw).ok()).is_some())
                .count()
        })
    });
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("parse_line_bytes", |b| b.iter(|| input.iter().filter(|l| parse_line(black_box(l)).is_ok()).count()));
    g.finish();

    let mut g = c.benchmark_group("windows");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("observe", |b| {
        b.iter_batched(
            || SiteWindows::new(WindowConfig::default()),
            |mut w| {
                for ev in &events {
                    let _ = w.observe(black_box(ev));
                }
                w
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("observe_and_close", |b| {
        b.iter_batched(
            || SiteWindows::new(WindowConfig::default()),
            |mut w| {
                for ev in &events {
                    let _ = w.observe(black_box(ev));
                }
                w.close_all()
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();

    // 1 000 sketches of 200 clients each: a site's minute across colos, or a day of minutes.
    let sketches: Vec<ClientSketch> = (0..1000u32)
        .map(|i| {
            let mut s = ClientSketch::new();
            for j in 0..200u32 {
                s.insert(IpAddr::V4(Ipv4Addr::from(i.wrapping_mul(7919).wrapping_add(j * 104_729))));
            }
            s
        })
        .collect();
    let stored: Vec<Vec<u8>> = sketches.iter().map(ClientSketch::to_bytes).collect();
    let mut g = c.benchmark_group("sketch");
    g.throughput(Throughput::Elements(sketches.len() as u64));
    g.bench_function("merge", |b| {
        b.iter(|| {
            let mut u = SketchUnion::new();
            for s in &sketches {
                u.add(black_box(s));
            }
            u.to_sketch().estimate_u64()
        })
    });
    g.bench_function("merge_stored_bytes", |b| {
        b.iter(|| {
            let mut u = SketchUnion::new();
            for s in &stored {
                u.add_bytes(black_box(s)).expect("valid sketch");
            }
            u.to_sketch().estimate_u64()
        })
    });
    g.throughput(Throughput::Elements(200));
    g.bench_function("insert_200_clients", |b| {
        b.iter(|| {
            let mut s = ClientSketch::new();
            for j in 0..200u32 {
                s.insert(IpAddr::V4(Ipv4Addr::from(black_box(j) * 104_729)));
            }
            s.estimate_u64()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("detector");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("observe", |b| {
        b.iter_batched(
            || AttackDetector::new(DetectorConfig::default()),
            |mut d| {
                for ev in &events {
                    d.observe(black_box(ev));
                }
                d.take_output()
            },
            BatchSize::LargeInput,
        )
    });
    // Per-second ticks with many sites tracked: the detector has seen the 10 000 sites; then one
    // event per second for 60 s moves the clock, and each second is judged (per tick, not per
    // site: idle sites cost nothing per tick).
    let mut warmed = AttackDetector::new(DetectorConfig::default());
    for ev in &events {
        warmed.observe(ev);
    }
    let tracked = warmed.tracked_sites() as u64;
    let state = warmed.encode_state();
    let last_line = String::from_utf8(input.last().expect("input").clone()).expect("utf-8");
    let later: Vec<String> = (1..=60i64).map(|s| shift_seconds(&last_line, s)).collect();
    let later_events: Vec<EdgeEvent<'_>> = later.iter().map(|l| parse_line(l.as_bytes()).expect("valid shifted line")).collect();
    eprintln!("detector/tick: {tracked} sites tracked");
    g.throughput(Throughput::Elements(later_events.len() as u64));
    g.bench_function("tick_10k_sites", |b| {
        b.iter_batched(
            || AttackDetector::decode_state(DetectorConfig::default(), &state).expect("own state decodes"),
            |mut d| {
                for ev in &later_events {
                    d.observe(black_box(ev));
                }
                d.take_output()
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// `line` with its `EdgeStartTimestamp` moved `secs` seconds later (and a distinct RayID).
fn shift_seconds(line: &str, secs: i64) -> String {
    let mut v: serde_json::Value = serde_json::from_str(line).expect("generated line is JSON");
    let ts = &mut v["EdgeStartTimestamp"];
    let shifted = match ts {
        serde_json::Value::Number(n) => serde_json::Value::from(n.as_i64().expect("nanoseconds") + secs * 1_000_000_000),
        serde_json::Value::String(s) => {
            let t = chrono::DateTime::parse_from_rfc3339(s).expect("RFC 3339 timestamp") + chrono::Duration::seconds(secs);
            serde_json::Value::from(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        }
        _ => panic!("unexpected EdgeStartTimestamp {ts}"),
    };
    *ts = shifted;
    v["RayID"] = serde_json::Value::from(format!("{:016x}", 0xbe00_0000_0000u64 + secs as u64));
    v.to_string()
}

fn config() -> Criterion {
    Criterion::default().sample_size(10).warm_up_time(std::time::Duration::from_secs(1)).measurement_time(std::time::Duration::from_secs(4))
}

criterion_group! { name = benches; config = config(); targets = hot_paths }
criterion_main!(benches);
