//! End-to-end: `edgelens generate` → `edgelens replay` → Parquet lake, checked against an
//! independent recount of the raw file, against DuckDB reading the same lake, and against a replay
//! of the same events in another order.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use rand::{Rng, SeedableRng};
use support::*;

fn replay(files: &[&Path], lake: &Path) -> serde_json::Value {
    let mut cmd = edgelens();
    cmd.arg("replay").args(files).arg("--data-dir").arg(lake);
    serde_json::from_str(&run_ok(&mut cmd)).expect("replay prints a JSON summary")
}

fn malformed_lines() -> Vec<(Vec<u8>, &'static str)> {
    let ok_prefix = r#"{"EdgeStartTimestamp":1793491230000000000,"ClientIP":"198.51.100.1","EdgeResponseStatus":200,"#;
    vec![
        (br#"{"ClientIP":"1.2.3.4","EdgeStartTimestamp":"#.to_vec(), "malformed_json"),
        (b"not json at all".to_vec(), "malformed_json"),
        (b"{\"ZoneName\":\"caf\xe9.example\",\"ClientIP\":\"1.2.3.4\"}".to_vec(), "invalid_utf8"),
        (format!(r#"{ok_prefix}"ZoneName":"x.example","ClientASN":"AS13335"}}"#).into_bytes(), "wrong_type"),
        (br#"{"EdgeStartTimestamp":"yesterday","ClientIP":"1.2.3.4","EdgeResponseStatus":200,"ZoneName":"x.example"}"#.to_vec(), "invalid_timestamp"),
        (br#"{"EdgeStartTimestamp":1793491230,"EdgeResponseStatus":200,"ZoneName":"x.example"}"#.to_vec(), "missing_field"),
        (br#"{"EdgeStartTimestamp":1793491230,"ClientIP":"1.2.3.4","ZoneName":"x.example"}"#.to_vec(), "missing_field"),
        (format!(r#"{ok_prefix}"RayID":"x"}}"#).into_bytes(), "missing_field"),
        (format!(r#"{{"EdgeStartTimestamp":1793491230,"ClientIP":"1.2.3.4","EdgeResponseStatus":200,"ZoneName":"x.example","ClientRequestUserAgent":"{}"}}"#, "A".repeat(10 << 20)).into_bytes(), "line_too_long"),
    ]
}

#[test]
fn replay_equals_independent_recount_and_duckdb() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = generate(tmp.path(), "mixed", 7, "4m", 1500, 300);
    let expected = recount(&raw);
    assert!(expected.valid > 300_000, "generated {} events", expected.valid);

    // Same events, with malformed lines in the middle, gzip-compressed.
    let text = std::fs::read(&raw).unwrap();
    let mid = text[..text.len() / 2].iter().rposition(|&b| b == b'\n').unwrap() + 1;
    let bad = malformed_lines();
    let gz_path = tmp.path().join("with-bad-lines.ndjson.gz");
    let mut gz = flate2::write::GzEncoder::new(std::fs::File::create(&gz_path).unwrap(), flate2::Compression::fast());
    gz.write_all(&text[..mid]).unwrap();
    for (l, _) in &bad {
        gz.write_all(l).unwrap();
        gz.write_all(b"\n").unwrap();
    }
    gz.write_all(&text[mid..]).unwrap();
    gz.finish().unwrap();

    let lake = tmp.path().join("lake");
    let summary = replay(&[&gz_path], &lake);
    let lines = expected.lines + bad.len() as u64;
    assert_eq!(summary["lines"], lines, "{summary}");
    assert_eq!(summary["counted"], expected.valid, "{summary}");
    assert_eq!(summary["duplicates"], 0);
    assert_eq!(summary["dead_letters"], bad.len() as u64);

    // Rollups equal the independent recount, group by group.
    let rates = summed(&lake, "site_rates_10s", &["ts", "site"], &["requests", "bytes", "status_2xx", "status_3xx", "status_4xx", "status_5xx", "cache_hits", "blocked"]);
    assert_eq!(rates.len(), expected.rates.len());
    assert!(rates == expected.rates, "site_rates_10s differs from the recount");
    let traffic = summed(&lake, "traffic_1m", &["ts", "site", "country", "colo", "status_class", "cache_status"], &["requests", "bytes"]);
    assert!(traffic == expected.traffic, "traffic_1m differs from the recount");
    let asn = summed(&lake, "asn_1m", &["ts", "site", "asn", "country"], &["requests", "bytes"]);
    assert!(asn == expected.asn, "asn_1m differs from the recount");

    // Dead letters: one per malformed line, with the right reason; requests + dead letters = lines.
    let mut reasons: Vec<String> = table_rows(&lake, "dead_letters").iter().map(|r| r.split('|').nth(3).unwrap().to_owned()).collect();
    reasons.sort();
    let mut want: Vec<String> = bad.iter().map(|(_, r)| (*r).to_owned()).collect();
    want.sort();
    assert_eq!(reasons, want);
    let total_requests: u64 = rates.values().map(|v| v[0]).sum();
    assert_eq!(total_requests + reasons.len() as u64, lines);

    // DuckDB reads the lake with the same totals.
    let out = Command::new("python3").arg("tests/duckdb_totals.py").arg(&lake).current_dir(repo_root()).output().unwrap();
    assert!(out.status.success(), "duckdb check failed: {}", String::from_utf8_lossy(&out.stderr));
    let duck: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let bytes: u64 = expected.rates.values().map(|v| v[1]).sum();
    assert_eq!(duck["site_rates_10s"]["requests"], expected.valid);
    assert_eq!(duck["site_rates_10s"]["bytes"], bytes);
    assert_eq!(duck["traffic_1m"]["requests"], expected.valid);
    assert_eq!(duck["traffic_1m"]["bytes"], bytes);
    assert_eq!(duck["asn_1m"]["requests"], expected.valid);
    assert_eq!(duck["dead_letters"], bad.len() as u64);
    assert_eq!(duck["ts_type"], "TIMESTAMP WITH TIME ZONE");

    // No temporary or partial files are left where readers look.
    for table in ["site_rates_10s", "traffic_1m", "asn_1m", "dead_letters"] {
        for f in table_files(&lake, table) {
            assert!(f.extension().is_some_and(|e| e == "parquet"), "{f:?}");
        }
    }
    assert_eq!(std::fs::read_dir(lake.join(".tmp")).unwrap().count(), 0);
}

#[test]
fn reordering_within_allowed_disorder_gives_identical_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = generate(tmp.path(), "flood", 11, "3m", 1200, 150);
    let text = std::fs::read_to_string(&raw).unwrap();
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(99);
    // Arrival = event time + up to 4 s: no event more than 4 s behind the newest (< 5 s allowed).
    let mut lines: Vec<(i64, i64, &str)> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let ts = v["EdgeStartTimestamp"].as_i64().unwrap();
            (ts, ts + rng.random_range(0..4_000_000_000i64), l)
        })
        .collect();
    lines.sort_by_key(|l| l.0);
    let sorted: String = lines.iter().map(|l| format!("{}\n", l.2)).collect();
    lines.sort_by_key(|l| l.1);
    let shuffled: String = lines.iter().map(|l| format!("{}\n", l.2)).collect();
    assert_ne!(sorted, shuffled);
    let (a, b) = (tmp.path().join("sorted.ndjson"), tmp.path().join("shuffled.ndjson"));
    std::fs::write(&a, sorted).unwrap();
    std::fs::write(&b, shuffled).unwrap();
    let (lake_a, lake_b) = (tmp.path().join("lake-a"), tmp.path().join("lake-b"));
    let (sa, sb) = (replay(&[&a], &lake_a), replay(&[&b], &lake_b));
    assert_eq!(sa["late"], 0);
    assert_eq!(sb["late"], 0);
    assert_eq!(sa["counted"], sb["counted"]);
    for table in ["site_rates_10s", "traffic_1m", "asn_1m"] {
        let (ra, rb) = (table_rows(&lake_a, table), table_rows(&lake_b, table));
        assert!(!ra.is_empty());
        assert!(ra == rb, "{table} differs between arrival orders");
    }
}

#[test]
fn replay_of_missing_file_fails_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let out = edgelens().args(["replay", "/nonexistent/x.ndjson", "--data-dir"]).arg(tmp.path()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/x.ndjson"), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "the cause said once: {err}");
}

/// Regression: a replay of a pipe (`/dev/stdin`, `<(zcat …)`) read it whole to recognise it,
/// then counted nothing and exited 0; a FIFO hung for ever. It is refused, saying why.
#[test]
fn replay_of_a_pipe_is_refused_clearly() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let mut child = edgelens()
        .args(["replay", "/dev/stdin", "--data-dir"])
        .arg(tmp.path().join("lake"))
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The refusal comes before anything is read: the pipe may close under the write.
    let _ = child.stdin.take().unwrap().write_all(b"{\"ZoneName\":\"a.example\"}\n");
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/dev/stdin") && err.contains("not a regular file"), "{err}");
    // Regression: `-` read as a file name ("cannot read -: No such file or directory").
    let out = edgelens().args(["replay", "-", "--data-dir"]).arg(tmp.path().join("lake")).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("not standard input"), "{err}");
}

/// `edgelens sql` on a directory that does not exist says so instead of answering with no rows;
/// a run-time error of the statement (division by zero) is reported as the statement's.
#[test]
fn sql_on_a_missing_lake_or_a_failing_statement_fails_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-lake");
    let out = edgelens().args(["sql", "--data-dir"]).arg(&missing).arg("SELECT count(*) FROM traffic_1m").output().unwrap();
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no lake at") && err.contains("no-such-lake"), "{err}");
    // Regression: a file given as the lake was "a directory that does not exist".
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let out = edgelens().args(["sql", "--data-dir"]).arg(&file).arg("SELECT 1").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("it is a file, not a directory"), "{err}");
    // Nothing but the answer and errors on a terminal's stderr: no log line per run.
    let out = edgelens().args(["sql", "--data-dir"]).arg(tmp.path()).arg("SELECT 1 AS one").output().unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = edgelens().args(["sql", "--data-dir"]).arg(tmp.path()).arg("SELECT 1/0").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the query failed on a value: Divide by zero"), "{err}");
}

#[test]
fn replays_into_one_lake_add_up_and_a_repeated_replay_is_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    // Same event-time range (same date partition) and the same number of lines, other sites.
    let a = generate(tmp.path(), "baseline", 1, "2m", 400, 50);
    let b = tmp.path().join("other-sites.ndjson");
    std::fs::write(&b, std::fs::read_to_string(&a).unwrap().replace(".example\"", ".test\"")).unwrap();
    let (ra, rb) = (recount(&a), recount(&b));
    let lake = tmp.path().join("lake");
    let total = |lake: &Path| -> u64 {
        summed(lake, "site_rates_10s", &["ts", "site"], &["requests"]).values().map(|v| v[0]).sum()
    };
    replay(&[&a], &lake);
    assert_eq!(total(&lake), ra.valid);
    replay(&[&b], &lake);
    assert_eq!(total(&lake), ra.valid + rb.valid, "the second file's rows must not replace the first's");
    let files = table_files(&lake, "site_rates_10s").len();
    replay(&[&a], &lake);
    assert_eq!(total(&lake), ra.valid + rb.valid, "replaying the same file again must not count it twice");
    assert_eq!(table_files(&lake, "site_rates_10s").len(), files);
}

/// Files of the same hours (one per zone, as Logpush jobs write them) are merged by event time.
/// Regression: they were read one after the other, and the second file's events more than the
/// allowed lateness behind the first's end were dead letters (`too_late`); a file whose first event
/// lay beyond its first 64 KiB was read first, whatever its time; a file given twice counted twice.
#[test]
fn overlapping_files_are_merged_by_event_time_and_each_read_once() {
    let tmp = tempfile::tempdir().unwrap();
    let t0: i64 = 1_793_491_200;
    let event = |ts: i64, zone: &str, extra: &str| format!("{{\"EdgeStartTimestamp\":{ts},\"ClientIP\":\"192.0.2.4\",\"EdgeResponseStatus\":200,\"ZoneName\":\"{zone}\"{extra}}}\n");
    let write = |name: &str, text: String| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    // Three zones over the same 30 minutes, one event every 2 s each.
    let zones: Vec<PathBuf> = ["a.example", "b.example", "c.example"]
        .iter()
        .map(|z| write(&format!("{z}.ndjson"), (0..1800).step_by(2).map(|s| event(t0 + s, z, "")).collect()))
        .collect();
    let lake = tmp.path().join("lake");
    let zone_refs: Vec<&Path> = zones.iter().map(PathBuf::as_path).collect();
    let summary = replay(&zone_refs, &lake);
    assert_eq!((summary["counted"].as_u64(), summary["dead_letters"].as_u64()), (Some(2700), Some(0)), "{summary}");
    let per_site = summed(&lake, "traffic_1m", &["site"], &["requests"]);
    assert_eq!(per_site.values().map(|v| v[0]).collect::<Vec<_>>(), [900, 900, 900], "{per_site:?}");

    // A later file whose first event follows a 70 KB line, given after an earlier one; and the
    // earlier one given again under another name.
    let small = write("small.ndjson", (0..600).step_by(5).map(|s| event(t0 + 3600 + s, "y.example", "")).collect());
    let head = event(t0 + 5400, "x.example", &format!(",\"ClientRequestUserAgent\":\"{}\"", "A".repeat(70_000)));
    let big = write("big-first.ndjson", head + &(0..600).step_by(5).map(|s| event(t0 + 5400 + s, "x.example", "")).collect::<String>());
    let copy = tmp.path().join("small-copy.ndjson");
    std::fs::copy(&small, &copy).unwrap();
    let lake = tmp.path().join("lake2");
    let summary = replay(&[&small, &big, &copy, &small], &lake);
    assert_eq!((summary["counted"].as_u64(), summary["dead_letters"].as_u64()), (Some(120 + 121), Some(0)), "{summary}");
}

/// Merged files give the tables and incidents of the same events in one file in time order, with
/// no event late, when a file is quiet for long stretches or holds a timestamp far ahead of its
/// others. Regression: a file's next line was taken before the merge knew its time (a quiet
/// file's next event, minutes ahead, made the busy files' events late, and a flood went
/// undetected), and one far-ahead or future timestamp held its file back until the others
/// ended, its remaining events too late.
#[test]
fn merged_files_count_as_their_events_in_time_order() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = generate(tmp.path(), "flood", 5, "6m", 200, 3);
    let text = std::fs::read_to_string(&raw).unwrap();
    let ts_of = |l: &str| serde_json::from_str::<serde_json::Value>(l).unwrap()["EdgeStartTimestamp"].as_i64().unwrap();
    let t0 = ts_of(text.lines().next().unwrap());
    let mut per_site: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let site = v["ZoneName"].as_str().or(v["ClientRequestHost"].as_str()).unwrap().to_owned();
        per_site.entry(site).or_default().push(l.to_owned());
    }
    let quiet_line = |ts: i64, i: u32| format!("{{\"EdgeStartTimestamp\":{ts},\"ClientIP\":\"198.51.100.{i}\",\"EdgeResponseStatus\":200,\"ZoneName\":\"quiet.example\"}}");
    let quiet: Vec<String> = (0..20).map(|i| quiet_line(t0 + i64::from(i) * 30_000_000_000, i)).collect();
    // Far ahead (5 h), and in the future (2099), in the middle of the busiest file.
    let busiest = per_site.values_mut().max_by_key(|v| v.len()).unwrap();
    let middle = busiest.len() / 2;
    busiest.insert(middle, quiet_line(t0 + 5 * 3_600_000_000_000, 250));
    busiest.insert(middle, quiet_line(4_070_908_800_000_000_000, 251));
    let mut files = Vec::new();
    let mut all: Vec<String> = quiet.clone();
    for (i, lines) in per_site.values().chain(std::iter::once(&quiet)).enumerate() {
        let p = tmp.path().join(format!("zone-{i}.ndjson"));
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
        files.push(p);
        if i < per_site.len() {
            all.extend(lines.iter().cloned());
        }
    }
    all.sort_by_cached_key(|l| ts_of(l));
    let one = tmp.path().join("one.ndjson");
    std::fs::write(&one, all.join("\n") + "\n").unwrap();

    let (merged, single) = (tmp.path().join("merged"), tmp.path().join("single"));
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let a = replay(&refs, &merged);
    let b = replay(&[&one], &single);
    for key in ["lines", "counted", "late", "duplicates", "dead_letters_by_reason"] {
        assert_eq!(a[key], b[key], "{key}: merged {a} single {b}");
    }
    assert_eq!(a["late"], 0, "{a}");
    assert_eq!(a["dead_letters_by_reason"], serde_json::json!({"future_timestamp": 1}), "{a}");
    for (table, keys, measures) in [("traffic_1m", &["ts", "site"][..], &["requests"][..]), ("site_rates_10s", &["ts", "site"][..], &["requests", "status_5xx"][..])] {
        assert_eq!(summed(&merged, table, keys, measures), summed(&single, table, keys, measures), "{table}");
    }
    let incidents = |lake: &Path| {
        let out = run_ok(edgelens().args(["sql", "--format", "csv", "--data-dir"]).arg(lake).arg("SELECT DISTINCT site, vector, start_ts FROM incidents ORDER BY 1, 3"));
        out
    };
    let found = incidents(&merged);
    assert!(found.lines().count() > 1, "the flood is detected: {found}");
    assert_eq!(found, incidents(&single));
}

/// Regressions from replaying Logpush-style archives: more than 32 zone files of the same hours
/// lost a third of their events (the files beyond 32 waited, then were too late); a file whose
/// first line was far ahead waited behind every other; two empty files (the same bytes) of other
/// zones made one zone's replay refuse the next as part of it.
#[test]
fn many_zone_files_outliers_and_empty_files_count_every_event() {
    use flate2::write::GzEncoder;
    let tmp = tempfile::tempdir().unwrap();
    let t0: i64 = 1_793_491_200;
    let mut files = Vec::new();
    let mut n = 0u64;
    for zone in 0..40 {
        for slice in 0..2 {
            let mut text = String::new();
            if zone == 3 && slice == 0 {
                text.push_str(&format!("{{\"EdgeStartTimestamp\":{},\"ClientIP\":\"192.0.2.1\",\"EdgeResponseStatus\":200,\"ZoneName\":\"z3.example\"}}\n", t0 + 86_400));
                n += 1;
            }
            for s in (slice * 600..(slice + 1) * 600).step_by(10) {
                text.push_str(&format!("{{\"EdgeStartTimestamp\":{},\"ClientIP\":\"192.0.2.{zone}\",\"EdgeResponseStatus\":200,\"ZoneName\":\"z{zone}.example\"}}\n", t0 + s));
                n += 1;
            }
            let p = tmp.path().join(format!("z{zone:02}-{slice}.log.gz"));
            let mut gz = GzEncoder::new(std::fs::File::create(&p).unwrap(), flate2::Compression::fast());
            gz.write_all(text.as_bytes()).unwrap();
            gz.finish().unwrap();
            files.push(p);
        }
    }
    let empty = |name: &str| {
        let p = tmp.path().join(name);
        GzEncoder::new(std::fs::File::create(&p).unwrap(), flate2::Compression::fast()).finish().unwrap();
        p
    };
    let (empty_a, empty_b) = (empty("a-empty.log.gz"), empty("b-empty.log.gz"));
    assert_eq!(std::fs::read(&empty_a).unwrap(), std::fs::read(&empty_b).unwrap(), "the same bytes");
    let lake = tmp.path().join("lake");
    // 40 zone files of the same 10 minutes each time.
    let mut first: Vec<&Path> = files.iter().step_by(2).map(PathBuf::as_path).collect();
    first.push(&empty_a);
    let mut second: Vec<&Path> = files.iter().skip(1).step_by(2).map(PathBuf::as_path).collect();
    second.push(&empty_b);
    let (a, b) = (replay(&first, &lake), replay(&second, &lake));
    for r in [&a, &b] {
        assert_eq!((r["late"].as_u64(), r["dead_letters"].as_u64()), (Some(0), Some(0)), "{r}");
    }
    assert_eq!(a["counted"].as_u64().unwrap() + b["counted"].as_u64().unwrap(), n);
    let total: u64 = summed(&lake, "traffic_1m", &["site"], &["requests"]).values().map(|v| v[0]).sum();
    assert_eq!(total, n);
}

/// `--log-format json`: every log line on stderr is one JSON object with level, target and fields.
#[test]
fn json_logs_are_one_object_per_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = edgelens().args(["--log-format", "json", "--log", "edgelens_query=debug", "sql", "--format", "csv", "--data-dir"]).arg(tmp.path()).arg("SELECT 1 AS one").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(!lines.is_empty(), "no log lines");
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["level"].is_string() && v["target"].is_string() && v["fields"]["message"].is_string(), "{l}");
    }
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), "one\n1");
}

/// A `--log` filter that does not parse is refused, not replaced by `info` in silence.
#[test]
fn a_log_filter_that_does_not_parse_is_refused() {
    let out = edgelens().args(["--log", "edgelens=loud", "check-config"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--log") && err.contains("edgelens=loud"), "{err}");
    assert!(edgelens().args(["--log", "warn,edgelens_query=debug", "check-config"]).output().unwrap().status.success());
}

/// `generate --out -` writes the events to stdout, and `--out X.GZ` compresses as `.gz` does.
#[test]
fn generate_writes_to_stdout_or_gzip_in_any_case() {
    let tmp = tempfile::tempdir().unwrap();
    let args = ["generate", "--duration", "2m", "--rps", "20", "--seed", "5", "--out"];
    let out = edgelens().args(args).arg("-").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!tmp.path().join("-").exists() && !Path::new("-").exists(), "a file named - was written");
    let plain = tmp.path().join("events.ndjson");
    run_ok(edgelens().args(args).arg(&plain));
    assert_eq!(out.stdout, std::fs::read(&plain).unwrap(), "stdout holds what the file holds");
    assert!(out.stdout.len() > 1000 && out.stdout.ends_with(b"\n"));
    let upper = tmp.path().join("events.ndjson.GZ");
    run_ok(edgelens().args(args).arg(&upper));
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(std::fs::File::open(&upper).unwrap()), &mut unzipped).unwrap();
    assert_eq!(unzipped, out.stdout);
}

/// Regression: `replay --clickhouse` of a server that does not answer retried for ever; a
/// one-shot command gives up after `[clickhouse] connect_timeout_ms`, saying why.
#[test]
fn replay_into_a_clickhouse_that_does_not_answer_fails_in_time() {
    let tmp = tempfile::tempdir().unwrap();
    let events = tmp.path().join("events.ndjson");
    run_ok(edgelens().args(["generate", "--duration", "2m", "--rps", "5", "--out"]).arg(&events));
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = std::time::Instant::now();
    let out = edgelens()
        .arg("replay")
        .arg(&events)
        .arg("--data-dir")
        .arg(tmp.path().join("lake"))
        .args(["--clickhouse", &format!("http://127.0.0.1:{port}")])
        .env("EDGELENS__CLICKHOUSE__CONNECT_TIMEOUT_MS", "1500")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("ClickHouse http://127.0.0.1:{port}")) && err.contains("no answer in time"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "gave up only after {:?}", started.elapsed());
}

/// `--client-ip truncate|hash`: no client address of the input reaches the lake (dead-letter
/// excerpts included), counts are unchanged, distinct clients count networks (truncate) or stay
/// the same up to sketch error (keyed hash).
#[test]
fn client_ip_privacy_keeps_addresses_out_of_the_lake() {
    use edgelens_aggregate::batches::merged_groups;
    use edgelens_schemas::tables::ASN_1M;
    let tmp = tempfile::tempdir().unwrap();
    let raw = generate(tmp.path(), "mixed", 77, "3m", 300, 20);
    let mut text = std::fs::read(&raw).unwrap();
    // Rejected lines that carry addresses: an invalid status, and broken JSON.
    text.extend_from_slice(b"{\"ClientIP\":\"198.51.100.23\",\"EdgeStartTimestamp\":1793491230,\"EdgeResponseStatus\":999,\"ZoneName\":\"a.example\"}\n");
    text.extend_from_slice(b"{\"ClientIP\": \"2001:db8:77::5\", \"EdgeStartTimestamp\": broken\n");
    let input = tmp.path().join("input.ndjson");
    std::fs::write(&input, &text).unwrap();
    let lake = |mode: &str| {
        let dir = tmp.path().join(format!("lake-{mode}"));
        run_ok(edgelens().args(["replay", "--client-ip", mode, "--data-dir"]).arg(&dir).arg(&input).env("EDGELENS_CLIENT_IP_KEY", if mode == "hash" { "s3cret" } else { "" }));
        dir
    };
    let (keep, truncate, hash) = (lake("keep"), lake("truncate"), lake("hash"));
    let distinct = |dir: &Path| -> u64 { merged_groups(&ASN_1M, &read_table(dir, ASN_1M.name)).unwrap().values().map(|g| g.distinct[0]).sum() };
    let requests = |dir: &Path| -> u64 { summed(dir, "asn_1m", &[], &["requests"]).values().map(|v| v[0]).sum() };
    assert_eq!(requests(&truncate), requests(&keep));
    assert_eq!(requests(&hash), requests(&keep));
    let (dk, dt, dh) = (distinct(&keep), distinct(&truncate), distinct(&hash));
    assert!(dt < dk, "truncated addresses count networks: {dt} vs {dk}");
    assert!((dh as f64 - dk as f64).abs() <= 0.05 * dk as f64, "hashed addresses keep distinct counts: {dh} vs {dk}");

    // Every address of the input, and where it may not appear.
    let input_ips: std::collections::BTreeSet<String> = text
        .split(|&b| b == b'\n')
        .filter_map(|l| {
            let l = std::str::from_utf8(l).ok()?;
            let at = l.find("\"ClientIP\"")?;
            let v = l[at + 10..].trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
            Some(v[..v.find('"')?].to_owned())
        })
        .collect();
    assert!(input_ips.len() > 100);
    let dead_keep = table_rows(&keep, "dead_letters").join("\n");
    assert!(dead_keep.contains("198.51.100.23") && dead_keep.contains("2001:db8:77::5"), "keep stores excerpts as received");
    for dir in [&truncate, &hash] {
        let dead = table_rows(dir, "dead_letters");
        assert_eq!(dead.len(), table_rows(&keep, "dead_letters").len());
        let dead = dead.join("\n");
        for ip in ["198.51.100.23", "2001:db8:77::5"] {
            assert!(!dead.contains(ip), "{}: {ip} stored in dead_letters", dir.display());
        }
        // Nothing else stored as text carries an address either: every string cell of every table.
        for table in edgelens_schemas::ALL_TABLES {
            for row in table_rows(dir, table.name) {
                for cell in row.split('|') {
                    assert!(!input_ips.contains(cell), "{}: {} holds input address {cell}", dir.display(), table.name);
                }
            }
        }
    }
    assert!(table_rows(&truncate, "dead_letters").join("\n").contains("198.51.100.0"));
}

/// A line without `ZoneName` counts under its `ClientRequestHost`, mapped to the site the
/// registry knows for it (`www.` and deeper names → the registered site); unknown hosts, and hosts
/// of a site removed before the request, stay as they are. Lines with `ZoneName` keep it.
#[test]
fn host_only_lines_count_under_their_registered_site() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("lake");
    let sites = tmp.path().join("sites.csv");
    std::fs::write(&sites, "site,tenant,created_at,removed_at\nshop.example,t1,2026-01-01T00:00:00Z,\nold.example,t1,2020-01-01T00:00:00Z,2026-11-01T00:00:30Z\n").unwrap();
    run_ok(edgelens().args(["registry", "import"]).arg(&sites).arg("--data-dir").arg(&lake));
    // 2026-11-01T00:00:00Z + s seconds.
    let line = |zone: &str, host: &str, s: u64| {
        let zone = if zone.is_empty() { String::new() } else { format!(r#""ZoneName":"{zone}","#) };
        format!("{{{zone}\"ClientRequestHost\":\"{host}\",\"ClientIP\":\"192.0.2.1\",\"EdgeStartTimestamp\":{},\"EdgeResponseStatus\":200}}\n", 1_793_491_200 + s)
    };
    let input = tmp.path().join("hosts.ndjson");
    let text = [
        line("", "www.shop.example", 1),
        line("", "API.Shop.Example:8443", 2),
        line("shop.example", "www.shop.example", 3),
        line("", "www.elsewhere.example", 4),
        line("", "cdn.old.example", 5),
        line("", "cdn.old.example", 40),
        line("sub.shop.example", "sub.shop.example", 41),
    ]
    .concat();
    std::fs::write(&input, text).unwrap();
    replay(&[&input], &lake);
    let counts = summed(&lake, "site_rates_10s", &["site"], &["requests"]);
    let got: Vec<(String, u64)> = counts.into_iter().map(|(k, v)| (k[0].clone(), v[0])).collect();
    let want = [("cdn.old.example", 1), ("old.example", 1), ("shop.example", 3), ("sub.shop.example", 1), ("www.elsewhere.example", 1)];
    assert_eq!(got, want.map(|(s, n)| (s.to_owned(), n)));
}

/// One event dated an hour after the others (a shipper's bad clock) is counted, but does not make
/// the events after it too late; events dated after the wall clock are `future_timestamp` dead
/// letters, since a stream of them would move event time past the present.
#[test]
fn a_bad_timestamp_does_not_make_the_events_after_it_too_late() {
    let tmp = tempfile::tempdir().unwrap();
    let t0 = 1_793_577_600i64; // 2026-11-02T00:00:00Z
    let event = |secs: i64, site: &str, ray: String| {
        format!(r#"{{"EdgeStartTimestamp":{},"ClientIP":"198.51.100.7","EdgeResponseStatus":200,"ZoneName":"{site}","RayID":"{ray}"}}"#, secs * 1_000_000_000) + "\n"
    };
    // The very first event too: an hour and a half ahead.
    let mut text = event(t0 + 5400, "d.example", "d".repeat(16));
    for s in 0..600 {
        text += &event(t0 + s, "a.example", format!("{s:016x}"));
        if s == 300 {
            text += &event(t0 + s + 3600, "b.example", "b".repeat(16));
            for k in 0..5 {
                text += &event(4_070_908_800 + 5 * k, "c.example", format!("c{k:015}")); // 2099-01-01
            }
        }
    }
    let file = tmp.path().join("bad-clock.ndjson");
    std::fs::write(&file, text).unwrap();
    let lake = tmp.path().join("lake");
    let summary = replay(&[&file], &lake);
    assert_eq!(summary["counted"], 602, "{summary}");
    assert_eq!(summary["dead_letters_by_reason"], serde_json::json!({"future_timestamp": 5}), "{summary}");
    let per_site = summed(&lake, "site_rates_10s", &["site"], &["requests"]);
    let counts: Vec<(String, u64)> = per_site.into_iter().map(|(k, v)| (k[0].clone(), v[0])).collect();
    assert_eq!(counts, [("a.example".to_owned(), 600), ("b.example".to_owned(), 1), ("d.example".to_owned(), 1)]);
    // Without the limit, the 2099 events are counted, move event time, and every event after them
    // is too late.
    let mut cmd = edgelens();
    cmd.arg("replay").arg(&file).arg("--data-dir").arg(tmp.path().join("unlimited")).args(["--max-future", "0"]);
    let unlimited: serde_json::Value = serde_json::from_str(&run_ok(&mut cmd)).unwrap();
    assert_eq!(unlimited["dead_letters_by_reason"]["too_late"], 299, "{unlimited}");
}

/// A replay that fails half-way (here on a truncated gzip file after flushes of the good file
/// before it) removes what it wrote: replaying the repaired input then counts every event once.
#[test]
fn a_failed_replay_leaves_nothing_to_count_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let good = generate(tmp.path(), "baseline", 3, "2m", 300, 20);
    let bytes = std::fs::read(&good).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&bytes[..bytes.len() / 2]).unwrap();
    let whole = gz.finish().unwrap();
    let truncated = tmp.path().join("truncated.ndjson.gz");
    std::fs::write(&truncated, &whole[..whole.len() / 2]).unwrap();
    let lake = tmp.path().join("lake");
    let out = edgelens().arg("replay").arg(&good).arg(&truncated).args(["--flush-rows", "100", "--data-dir"]).arg(&lake).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // Every file is read once before anything is written (to know it by its text): the damage
    // is found then.
    assert!(err.contains("truncated.ndjson.gz"), "{err}");
    for table in ["site_rates_10s", "traffic_1m", "asn_1m", "dead_letters"] {
        assert!(table_files(&lake, table).is_empty(), "{table}: {:?}", table_files(&lake, table));
    }
    replay(&[&good], &lake);
    let total = |lake: &Path| -> u64 { summed(lake, "site_rates_10s", &["site"], &["requests"]).values().map(|v| v[0]).sum() };
    assert_eq!(total(&lake), recount(&good).valid);

    // The same input replayed again replaces the earlier replay's output, whatever spans it
    // cuts: with other flushes it counts each event once; damaged, it is another file, whose
    // replay fails before writing and leaves the earlier output as it was.
    let gz_path = tmp.path().join("good.ndjson.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&bytes).unwrap();
    let mut packed = gz.finish().unwrap();
    assert!(packed.len() > 200 << 10, "{}", packed.len());
    std::fs::write(&gz_path, &packed).unwrap();
    let lake2 = tmp.path().join("lake2");
    replay(&[&gz_path], &lake2);
    run_ok(edgelens().arg("replay").arg(&gz_path).args(["--flush-rows", "100", "--data-dir"]).arg(&lake2));
    assert_eq!(total(&lake2), recount(&good).valid, "a replay with other flushes counted twice");
    let n = packed.len();
    for b in &mut packed[n - 100_000..n - 99_000] {
        *b = !*b;
    }
    std::fs::write(&gz_path, &packed).unwrap();
    let out = edgelens().arg("replay").arg(&gz_path).args(["--flush-rows", "100", "--data-dir"]).arg(&lake2).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("good.ndjson.gz"), "{err}");
    assert_eq!(total(&lake2), recount(&good).valid);
}

/// Regression: replaying the same files again removed the earlier output before it read a line,
/// so a second replay stopped half-way (Ctrl-C, a kill, a full disk) left the lake with part of
/// the events. The earlier output now stays until the new replay succeeded (both count while it
/// runs), and the next replay replaces both.
#[test]
fn a_replay_of_the_same_files_stopped_half_way_leaves_the_earlier_output() {
    let tmp = tempfile::tempdir().unwrap();
    let file = generate(tmp.path(), "baseline", 21, "4m", 600, 40);
    let lake = tmp.path().join("lake");
    replay(&[&file], &lake);
    let valid = recount(&file).valid;
    let total = |lake: &Path| -> u64 { summed(lake, "site_rates_10s", &["site"], &["requests"]).values().map(|v| v[0]).sum() };
    assert_eq!(total(&lake), valid);
    let before = table_files(&lake, "site_rates_10s");
    let mut child = edgelens().arg("replay").arg(&file).args(["--flush-rows", "50", "--data-dir"]).arg(&lake).stdout(std::process::Stdio::null()).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    // Stopped once it wrote files of its own.
    while table_files(&lake, "site_rates_10s").iter().filter(|f| !before.contains(f)).count() < 3 {
        assert!(std::time::Instant::now() < deadline, "the second replay wrote nothing");
        assert!(child.try_wait().unwrap().is_none(), "the second replay ended before it could be stopped");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    for f in &before {
        assert!(f.exists(), "{} of the earlier replay was removed", f.display());
    }
    assert!(total(&lake) > valid, "the stopped replay's writes count until the next replay");
    replay(&[&file], &lake);
    assert_eq!(total(&lake), valid, "the next replay replaces both");
    replay(&[&file], &lake);
    assert_eq!(total(&lake), valid);
}

/// A replay including every file of an earlier replay replaces it — the same files again, with
/// files added, in another order, under another name — so each event counts once; one
/// including only some files of an earlier replay is refused and changes nothing. Files given
/// out of time order are read in the order of their first events, not dead-lettered as too late.
#[test]
fn replays_of_growing_or_reordered_file_sets_count_each_event_once() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = generate(tmp.path(), "baseline", 12, "30m", 40, 20);
    let text = std::fs::read_to_string(&whole).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let third = lines.len() / 3;
    let part = |name: &str, from: usize, to: usize| {
        let path = tmp.path().join(name);
        std::fs::write(&path, lines[from..to].join("\n") + "\n").unwrap();
        path
    };
    let (a, b, c) = (part("a.ndjson", 0, third), part("b.ndjson", third, 2 * third), part("c.ndjson", 2 * third, lines.len()));
    let expected = recount(&whole).valid;
    let total = |lake: &Path| -> u64 { summed(lake, "site_rates_10s", &["site"], &["requests"]).values().map(|v| v[0]).sum() };
    let counted = |summary: &serde_json::Value| summary["counted"].as_u64().unwrap();

    let lake = tmp.path().join("lake");
    replay(&[&a], &lake);
    replay(&[&b], &lake);
    assert_eq!(counted(&replay(&[&a, &b], &lake)), recount(&a).valid + recount(&b).valid);
    assert_eq!(total(&lake), recount(&a).valid + recount(&b).valid, "a replay of a and b replaces the replays of each");
    // The last ten minutes first, and `a` copied under another name.
    let a_copy = tmp.path().join("renamed.ndjson");
    std::fs::copy(&a, &a_copy).unwrap();
    let summary = replay(&[&c, &b, &a_copy], &lake);
    assert_eq!(summary["dead_letters"], 0, "read in time order: {summary}");
    assert_eq!(counted(&summary), expected);
    assert_eq!(total(&lake), expected);

    // `b` and `c` were replayed with `a`: replaying them without it would count them twice.
    let files = table_files(&lake, "site_rates_10s");
    let out = edgelens().arg("replay").arg(&b).arg(&c).arg("--data-dir").arg(&lake).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("was replayed into this output before, together with renamed.ndjson, which this replay leaves out"), "{err}");
    assert_eq!(table_files(&lake, "site_rates_10s"), files);
    assert_eq!(total(&lake), expected);

    // A fresh lake, the files given in reverse: the same tables as the whole file's.
    let (fresh, once) = (tmp.path().join("fresh"), tmp.path().join("once"));
    replay(&[&c, &b, &a], &fresh);
    replay(&[&whole], &once);
    for table in ["site_rates_10s", "traffic_1m"] {
        let keys: &[&str] = if table == "traffic_1m" { &["ts", "site", "country"] } else { &["ts", "site"] };
        assert_eq!(summed(&fresh, table, keys, &["requests"]), summed(&once, table, keys, &["requests"]), "{table}");
    }
}

/// Output piped into a reader that stops early (`edgelens ... | head`) ends the command quietly,
/// with success, not with a panic.
#[test]
fn a_closed_output_pipe_is_not_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = generate(tmp.path(), "baseline", 5, "2m", 100, 5);
    let lake = tmp.path().join("lake");
    for args in [vec!["replay".to_owned(), raw.to_str().unwrap().to_owned()], vec!["sql".to_owned(), "--format".into(), "csv".into(), "SELECT * FROM traffic_1m".into()]] {
        let mut child = edgelens()
            .args(&args)
            .arg("--data-dir")
            .arg(&lake)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && !err.contains("panicked"), "{args:?}: {:?} {err}", out.status);
    }
}

/// Arguments that could only lose data are refused before anything is written: `generate` with a
/// truth file it cannot create writes no events; `replay --max-line-bytes 0` would dead-letter
/// every line.
#[test]
fn arguments_that_could_only_lose_data_are_refused_first() {
    let tmp = tempfile::tempdir().unwrap();
    let events = tmp.path().join("events.ndjson");
    let out = edgelens()
        .args(["generate", "--duration", "2m", "--rps", "10", "--out"])
        .arg(&events)
        .arg("--truth")
        .arg(tmp.path().join("no-such-dir/truth.json"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-dir/truth.json"));
    assert!(!events.exists(), "events written without their truth");
    std::fs::write(&events, "{}\n").unwrap();
    let out = edgelens().arg("replay").arg(&events).args(["--max-line-bytes", "0", "--data-dir"]).arg(tmp.path().join("lake")).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-line-bytes must be at least 1"));
    assert!(!tmp.path().join("lake").exists());
}
