//! Golden tests: hand-written Logpush `http_requests` lines (field names and encodings as
//! Logpush documents them) parse to exactly the recorded events or rejection reasons, and every
//! table's Arrow schema and ClickHouse DDL stay as recorded.
//!
//! After an intended change, regenerate with `EDGELENS_UPDATE_GOLDEN=1 cargo test -p
//! edgelens-schemas --test golden` and review the diff.

use std::fmt::Write as _;
use std::path::PathBuf;

use edgelens_schemas::{clickhouse::Layout, parse_line, tables::ALL_TABLES, time::format_rfc3339};

fn golden_path(name: &str) -> PathBuf {
    // The checkout being tested (set at run time by cargo/nextest), not where this binary was
    // first compiled: a shared target directory may hold a binary built from another clone.
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from).join("tests/golden").join(name)
}

fn check_golden(name: &str, actual: &str) {
    let path = golden_path(name);
    if std::env::var_os("EDGELENS_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if want != actual {
        let first = want.lines().zip(actual.lines()).position(|(a, b)| a != b).unwrap_or(want.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from the output at line {}:\n  golden: {:?}\n  actual: {:?}\n(EDGELENS_UPDATE_GOLDEN=1 rewrites it)",
            path.display(),
            first + 1,
            want.lines().nth(first),
            actual.lines().nth(first)
        );
    }
}

#[test]
fn logpush_lines_parse_as_recorded() {
    let input = std::fs::read(golden_path("logpush_http_requests.ndjson")).unwrap();
    let mut out = String::new();
    for (i, line) in input.split(|&b| b == b'\n').enumerate().filter(|(_, l)| !l.is_empty()) {
        match parse_line(line) {
            Ok(ev) => {
                writeln!(out, "line {}: ok, ts {}", i + 1, format_rfc3339(ev.ts)).unwrap();
                writeln!(out, "  cache_hit={} blocked={} status_class={}xx", ev.is_cache_hit(), ev.is_blocked(), ev.status_class()).unwrap();
                writeln!(out, "{ev:#?}").unwrap();
            }
            Err(e) => writeln!(out, "line {}: {} — {e}", i + 1, e.code()).unwrap(),
        }
    }
    check_golden("logpush_http_requests.parsed.txt", &out);
}

#[test]
fn table_schemas_and_ddl_as_recorded() {
    let mut out = String::new();
    for t in ALL_TABLES {
        writeln!(out, "-- {}: {}", t.name, t.doc).unwrap();
        for f in t.arrow_schema().fields() {
            writeln!(out, "--   {} {} nullable={}", f.name(), f.data_type(), f.is_nullable()).unwrap();
        }
        let layout = Layout::single("edgelens");
        writeln!(out, "{};\n{};\n", layout.local_ddl(t), layout.view_ddl(t)).unwrap();
    }
    check_golden("tables.txt", &out);
}
