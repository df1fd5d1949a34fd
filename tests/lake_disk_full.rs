//! Fault test: the lake's file system runs out of space. The lake lives on a small tmpfs that the
//! test mounts and fills with a ballast file; deleting the ballast gives the space back. Mounting
//! needs root (CI runs the tests as root): without it these tests fail with a message, they never
//! skip. The aggregator test also needs the real broker at `$EDGELENS_TEST_KAFKA`.
//!
//! What must hold while the disk is full: the write fails with an error naming the path and
//! ENOSPC; no partial or corrupt `.parquet` file becomes visible (and no temporary file stays
//! behind holding the space); no offset is committed and no checkpoint taken past unwritten data.
//! Once space is back, a rerun completes with exactly the tables of a run that never failed.

mod support;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use edgelens_aggregate::batches::{merged_groups, MergedGroup};
use edgelens_schemas::tables::{ASN_1M, DEAD_LETTERS, SITE_RATES_10S, TRAFFIC_1M};
use support::*;

#[path = "../ingest/tests/support/mod.rs"]
mod kafka;

/// A tmpfs of `size_kib` mounted on a temporary directory, unmounted when dropped (also when the
/// test panics), with a ballast file that fills it.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size_kib: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_kib}k,mode=0755"), "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run mount: {e}; this test makes a full disk with a tmpfs and needs root (as in CI)"));
        assert!(
            out.status.success(),
            "mounting a {size_kib} KiB tmpfs on {} failed: {}; this test makes a full disk with a tmpfs and needs root or CAP_SYS_ADMIN (as in CI)",
            dir.path().display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn ballast(&self) -> PathBuf {
        self.path().join("ballast")
    }

    /// Fill the file system until a write fails with ENOSPC, then give `leave_kib` back.
    fn fill(&self, leave_kib: u64) {
        let mut f = File::options().create(true).append(true).open(self.ballast()).unwrap();
        let chunk = vec![0xa5u8; 64 << 10];
        let err = loop {
            if let Err(e) = f.write_all(&chunk) {
                break e;
            }
        };
        assert_eq!(err.kind(), std::io::ErrorKind::StorageFull, "filling {}: {err}", self.path().display());
        let len = f.metadata().unwrap().len();
        f.set_len(len.saturating_sub(leave_kib << 10)).unwrap();
        f.sync_all().unwrap();
    }

    /// Give the space back.
    fn free(&self) {
        std::fs::remove_file(self.ballast()).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let umount = |lazy: bool| {
            let mut c = Command::new("umount");
            if lazy {
                c.arg("-l");
            }
            c.arg(self.dir.path()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
        };
        // A process of a failed test may still have a file open there: detach lazily then.
        if !umount(false) && !umount(true) {
            eprintln!("could not unmount {}", self.dir.path().display());
        }
    }
}

/// The invalid lines mixed into the inputs.
const INVALID: [&str; 3] = ["{\"half\":", "{\"ClientIP\":\"1.2.3.4\",\"EdgeResponseStatus\":200,\"ZoneName\":\"a.example\"}", "not json"];

/// A generated input with invalid lines spread through it; returns (file, valid events).
fn input_with_dead_letters(dir: &Path, seed: u64) -> (PathBuf, u64) {
    let raw = generate(dir, "baseline", seed, "3m", 200, 30);
    let valid = recount(&raw).valid;
    let text = std::fs::read_to_string(&raw).unwrap();
    let invalid = INVALID;
    let mut out = String::with_capacity(text.len() + 1024);
    for (i, line) in text.lines().enumerate() {
        if i % 9000 == 4500 {
            out.push_str(invalid[(i / 9000) % invalid.len()]);
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
    }
    let path = dir.join("input.ndjson");
    std::fs::write(&path, out).unwrap();
    (path, valid)
}

/// Every `.parquet` file of the contract tables that readers see: path relative to the lake.
fn visible_files(lake: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for table in edgelens_schemas::tables::ALL_TABLES {
        for f in table_files(lake, table.name) {
            if f.extension().is_some_and(|e| e == "parquet") {
                out.push(f.strip_prefix(lake).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// Every visible file opens and reads to the end as Parquet (none is partial or corrupt).
fn assert_all_readable(lake: &Path) {
    for rel in visible_files(lake) {
        let path = lake.join(&rel);
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap())
            .and_then(|b| b.build())
            .unwrap_or_else(|e| panic!("{} is not a complete Parquet file: {e}", path.display()));
        for b in reader {
            b.unwrap_or_else(|e| panic!("{} is not a complete Parquet file: {e}", path.display()));
        }
    }
}

/// Files left in a directory (temporary files of failed writes), if it exists.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries.flatten().map(|e| e.path()).collect()
}

/// Dead-letter rows without their `ts` (the wall clock of the run that rejected them).
fn dead_letter_rows(lake: &Path) -> Vec<String> {
    table_rows(lake, DEAD_LETTERS.name).into_iter().map(|r| r.split_once('|').unwrap().1.to_owned()).collect()
}

fn replay_cmd(input: &Path, lake: &Path) -> Command {
    let mut c = edgelens();
    c.args(["replay", "--flush-rows", "500", "--data-dir"]).arg(lake).arg(input);
    c
}

/// `edgelens replay` into a lake whose disk fills up part-way: it exits with an error naming the
/// file and ENOSPC, having removed the files it had renamed into place (so nothing of the input
/// is counted until it is replayed again), and nothing is left in the temporary directory. After
/// the ballast is deleted, replaying the same input into the same lake gives exactly the clean
/// run's files.
#[test]
fn replay_into_a_full_lake_fails_cleanly_and_a_rerun_equals_a_clean_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, valid) = input_with_dead_letters(tmp.path(), 41);
    let clean = tmp.path().join("clean-lake");
    run_ok(&mut replay_cmd(&input, &clean));
    let clean_files = visible_files(&clean);

    let disk = SmallDisk::mount(2048);
    let lake = disk.path().join("lake");
    disk.fill(200);
    let out = replay_cmd(&input, &lake).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "replay succeeded on a full disk; the test proves nothing:\n{stderr}");
    assert!(
        stderr.contains(&lake.display().to_string()) && stderr.contains("No space left on device") && stderr.contains("ENOSPC"),
        "the error names neither the lake path nor ENOSPC:\n{stderr}"
    );

    // Files were written before the disk was full (the failure came part-way), and the failed
    // replay removed them again: nothing of the input is in the lake.
    let removed = stderr.split("removed the ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse::<usize>().ok());
    assert!(removed.is_some_and(|n| n > 0 && n < clean_files.len()), "{removed:?} of {} files written before the disk was full; adjust the ballast:\n{stderr}", clean_files.len());
    assert!(visible_files(&lake).is_empty(), "left after the failed replay: {:?}", visible_files(&lake));
    let tmp_dir = lake.join(edgelens_aggregate::sink::parquet::TMP_DIR);
    assert!(leftovers(&tmp_dir).is_empty(), "temporary files left behind after the failed write: {:?}", leftovers(&tmp_dir));

    disk.free();
    let summary: serde_json::Value = serde_json::from_str(&run_ok(&mut replay_cmd(&input, &lake))).unwrap();
    assert_eq!(summary["counted"], valid);
    assert_eq!(visible_files(&lake), clean_files, "the rerun's files are the clean run's, none added");
    for rel in clean_files.iter().filter(|r| !r.starts_with(DEAD_LETTERS.name)) {
        assert!(std::fs::read(lake.join(rel)).unwrap() == std::fs::read(clean.join(rel)).unwrap(), "{} differs from the clean run's", rel.display());
    }
    assert_eq!(dead_letter_rows(&lake), dead_letter_rows(&clean));
    assert_eq!(dead_letter_rows(&lake).len(), 4);
    assert!(leftovers(&tmp_dir).is_empty());

    // A replay of these files and more (which replaces the replay above once it succeeds) that
    // fails part-way leaves that replay's output as it was, and its own rerun replaces it.
    let more = tmp.path().join("more-sites.ndjson");
    // Other sites and other RayIDs: other events.
    std::fs::write(&more, std::fs::read_to_string(&input).unwrap().replace(".example\"", ".test\"").replace("\"RayID\":\"", "\"RayID\":\"x")).unwrap();
    let both = || {
        let mut c = edgelens();
        c.args(["replay", "--flush-rows", "500", "--data-dir"]).arg(&lake).arg(&input).arg(&more);
        c
    };
    disk.fill(200);
    let out = both().output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("ENOSPC"), "{stderr}");
    assert_eq!(visible_files(&lake), clean_files, "the replay it would have replaced is gone:\n{stderr}");
    assert_eq!(total_requests(&lake), valid);
    disk.free();
    let summary: serde_json::Value = serde_json::from_str(&run_ok(&mut both())).unwrap();
    assert_eq!(summary["counted"], 2 * valid);
    assert_eq!(total_requests(&lake), 2 * valid, "each file counts once");
}

/// Rollup tables as readers see them: rows merged by key.
type Merged = BTreeMap<&'static str, BTreeMap<Vec<String>, MergedGroup>>;

/// The rollups as readers see them, and the dead letters.
fn tables(lake: &Path) -> (Merged, Vec<String>) {
    let rollups = [&SITE_RATES_10S, &TRAFFIC_1M, &ASN_1M].into_iter().map(|t| (t.name, merged_groups(t, &read_table(lake, t.name)).unwrap())).collect();
    (rollups, dead_letter_rows(lake))
}

fn total_requests(lake: &Path) -> u64 {
    summed(lake, SITE_RATES_10S.name, &[], &["requests"]).values().map(|v| v[0]).sum()
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Topics {
    broker: String,
    events: String,
    dead: String,
    group: String,
}

impl Topics {
    const PARTITIONS: i32 = 2;

    fn new() -> Self {
        let t = Topics { broker: kafka::broker(), events: kafka::unique("edge-requests"), dead: kafka::unique("edge-dead-letters"), group: kafka::unique("edgelens-aggregate") };
        kafka::create_topics_blocking(&t.broker, &[(&t.events, Self::PARTITIONS), (&t.dead, 1)]);
        t
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("EDGELENS__INGEST__EVENTS_TOPIC", self.events.clone()),
            ("EDGELENS__INGEST__DEAD_LETTERS_TOPIC", self.dead.clone()),
            ("EDGELENS__AGGREGATE__EVENTS_TOPIC", self.events.clone()),
            ("EDGELENS__AGGREGATE__DEAD_LETTERS_TOPIC", self.dead.clone()),
            ("EDGELENS__AGGREGATE__INCIDENTS_TOPIC", String::new()),
            ("EDGELENS__AGGREGATE__IDLE_TIMEOUT_MS", "3000".into()),
            // Checkpoints when a partition goes idle, else rarely: the write that meets the full
            // disk is a flush of rows to the lake (a checkpoint's is tested in the unit tests).
            ("EDGELENS__AGGREGATE__CHECKPOINT_INTERVAL_MS", "60000".into()),
            ("EDGELENS__AGGREGATE__FLUSH_INTERVAL_MS", "500".into()),
            ("EDGELENS__AGGREGATE__METRICS_LISTEN", String::new()),
        ]
    }

    fn ingest(&self, file: &Path) {
        run_ok(edgelens().args(["ingest", "--brokers", &self.broker, "file"]).arg(file).envs(self.env()));
    }

    fn aggregator(&self, lake: &Path, log: &Path) -> Proc {
        let log = File::options().create(true).append(true).open(log).unwrap();
        Proc(
            edgelens()
                .args(["aggregate", "--brokers", &self.broker, "--group", &self.group, "--data-dir"])
                .arg(lake)
                .envs(self.env())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        )
    }

    /// (topic, partition, committed offset, end offset) of both topics.
    fn progress(&self) -> Vec<(String, i32, i64, i64)> {
        let mut out = Vec::new();
        for (topic, n) in [(&self.events, Self::PARTITIONS), (&self.dead, 1)] {
            for (p, (c, end)) in kafka::group_progress(&self.broker, &self.group, topic, n).into_iter().enumerate() {
                out.push((topic.clone(), p as i32, c, end));
            }
        }
        out
    }

    /// Everything committed (tansu reports the base offset of the last record batch as the end).
    fn all_committed(&self) -> bool {
        self.progress().iter().all(|&(_, _, c, end)| end == 0 || c >= end)
    }

    fn wait(&self, what: &str, limit: Duration, log: &Path, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while !done() {
            assert!(Instant::now() < deadline, "{what}: not within {limit:?}; progress {:?}\n{}", self.progress(), tail(log));
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// The committed offset of every partition is a position with a checkpoint on disk.
fn assert_committed_have_checkpoints(t: &Topics, ckpt_dir: &Path) {
    for (topic, p, committed, _) in t.progress() {
        if committed <= 0 {
            continue;
        }
        let source = edgelens_aggregate::partition::span_source(&t.group, &topic);
        let file = ckpt_dir.join(source).join(format!("p{p:04}")).join(format!("{committed:020}.ckpt"));
        assert!(file.exists(), "{topic}/{p} committed at {committed} but {} is missing", file.display());
    }
}

/// Temporary checkpoint files (`.<position>.<pid>.tmp`) anywhere under the checkpoint directory.
fn checkpoint_leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "tmp") {
                out.push(p);
            }
        }
    }
    out
}

/// An aggregator whose lake disk fills up while input flows: it stops with an error naming the
/// path and ENOSPC; the group's offsets stay where they were when the disk filled (each at a
/// checkpoint that exists), nothing partial is visible or left in the temporary directories.
/// After the ballast is deleted a restarted aggregator completes the input, and the lake equals
/// `edgelens replay` of the same input.
#[test]
fn aggregator_on_a_full_lake_stops_without_committing_and_recovers_exactly() {
    let t = Topics::new();
    let tmp = tempfile::tempdir().unwrap();
    let (input, valid) = input_with_dead_letters(tmp.path(), 43);
    let want = tmp.path().join("replay-lake");
    run_ok(edgelens().args(["replay", "--data-dir"]).arg(&want).arg(&input));
    let text = std::fs::read_to_string(&input).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (first, second) = lines.split_at(lines.len() / 2);
    let first_valid = first.iter().filter(|l| !INVALID.contains(l)).count() as u64;
    let halves: Vec<PathBuf> = [first, second]
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let p = tmp.path().join(format!("half{i}.ndjson"));
            std::fs::write(&p, part.join("\n") + "\n").unwrap();
            p
        })
        .collect();

    let disk = SmallDisk::mount(16 << 10);
    let lake = disk.path().join("lake");
    let ckpt_dir = lake.join("_checkpoints");
    let log = tmp.path().join("aggregator.log");
    let mut agg = t.aggregator(&lake, &log);
    t.ingest(&halves[0]);
    // Committed, and the idle partitions' windows closed and written: nothing is pending when
    // the disk fills, so the failing write is the second half's.
    t.wait("first half committed and written", Duration::from_secs(120), &log, || t.all_committed() && total_requests(&lake) == first_valid);

    disk.fill(0);
    // A commit of a checkpoint written just before the disk filled may still land; after that,
    // nothing can be checkpointed, so nothing can be committed.
    std::thread::sleep(Duration::from_secs(2));
    let before: Vec<(String, i32, i64)> = t.progress().into_iter().map(|(topic, p, c, _)| (topic, p, c)).collect();
    assert!(before.iter().any(|&(_, _, c)| c > 0), "nothing committed before the disk filled; the test proves nothing");
    t.ingest(&halves[1]);

    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = agg.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the aggregator kept running on a full disk for 60 s:\n{}", tail(&log));
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(!status.success(), "the aggregator exited 0 on a full disk:\n{}", tail(&log));
    let log_text = std::fs::read_to_string(&log).unwrap();
    let error = log_text.lines().find(|l| l.starts_with("edgelens: error:")).unwrap_or_else(|| panic!("no error in the log:\n{}", tail(&log)));
    eprintln!("aggregator on the full disk: {error}");
    assert!(
        error.contains(&lake.join(edgelens_aggregate::sink::parquet::TMP_DIR).display().to_string()) && error.contains("No space left on device") && error.contains("ENOSPC"),
        "the error names neither the lake file nor ENOSPC: {error}"
    );

    let after: Vec<(String, i32, i64)> = t.progress().into_iter().map(|(topic, p, c, _)| (topic, p, c)).collect();
    assert_eq!(after, before, "offsets were committed while the lake's disk was full");
    let end: i64 = t.progress().iter().map(|&(_, _, _, end)| end).sum();
    assert!(end > before.iter().map(|&(_, _, c)| c).sum::<i64>(), "the second half is not behind the committed offsets; the test proves nothing");
    assert_committed_have_checkpoints(&t, &ckpt_dir);
    assert_all_readable(&lake);
    let tmp_dir = lake.join(edgelens_aggregate::sink::parquet::TMP_DIR);
    assert!(leftovers(&tmp_dir).is_empty(), "temporary Parquet files left behind: {:?}", leftovers(&tmp_dir));
    assert!(checkpoint_leftovers(&ckpt_dir).is_empty(), "temporary checkpoint files left behind: {:?}", checkpoint_leftovers(&ckpt_dir));
    assert!(total_requests(&lake) < valid, "the lake is complete although the disk was full");

    disk.free();
    agg = t.aggregator(&lake, &log);
    t.wait("everything committed after space returned", Duration::from_secs(120), &log, || t.all_committed() && total_requests(&lake) == valid);
    Command::new("kill").args(["-TERM", &agg.0.id().to_string()]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while agg.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "aggregator did not stop within 60 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_committed_have_checkpoints(&t, &ckpt_dir);
    let (got, want_tables) = (tables(&lake), tables(&want));
    for (table, groups) in &want_tables.0 {
        assert!(&got.0[table] == groups, "{table}: {} groups after recovery, {} in replay", got.0[table].len(), groups.len());
    }
    let mut got_dead = got.1.clone();
    let mut want_dead = want_tables.1.clone();
    // The source names the input (kafka:<topic>/<partition> vs replay:<file>): compare reason and raw excerpt.
    let strip = |rows: &mut Vec<String>| {
        for r in rows.iter_mut() {
            let cols: Vec<&str> = r.split('|').collect();
            *r = cols[2..].join("|");
        }
        rows.sort();
    };
    strip(&mut got_dead);
    strip(&mut want_dead);
    assert_eq!(got_dead, want_dead, "dead letters after recovery");
}
