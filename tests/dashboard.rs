//! The dashboard at `/`, end to end in headless Chromium (Debian's `/usr/bin/chromium`, driven by
//! playwright-core from Node.js; both installed by `bash deploy/dev/install.sh`): `edgelens
//! generate` → `edgelens replay` → `edgelens query`, then the scripts in `tests/dashboard/` open the
//! page and hold it to the API's answers (see their headers for what they check).
//!
//! The tests fail, never skip, when Node.js, Chromium or playwright-core is missing. With
//! `EDGELENS_UPDATE_SCREENSHOT=1` the screenshot of the data test replaces `docs/dashboard.png`;
//! otherwise it goes to a temporary directory, so test runs leave the tree alone.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// Longest a browser script may run before it and its browser are killed.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

const INSTALL_HINT: &str = "run `bash deploy/dev/install.sh` (installs Debian's chromium and playwright-core)";

/// Where playwright-core is: `$EDGELENS_NODE_MODULES`, else the dev scripts' default
/// (`$EDGELENS_DEV_DIR/node/node_modules`, `EDGELENS_DEV_DIR` defaulting to ~/.cache/edgelens/dev).
fn node_modules() -> PathBuf {
    if let Some(dir) = std::env::var_os("EDGELENS_NODE_MODULES").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let dev_dir = std::env::var_os("EDGELENS_DEV_DIR").filter(|d| !d.is_empty()).map_or_else(
        || PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/edgelens/dev"),
        PathBuf::from,
    );
    dev_dir.join("node/node_modules")
}

fn chromium() -> PathBuf {
    std::env::var_os("EDGELENS_CHROMIUM").filter(|c| !c.is_empty()).map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// The browser tools, or a failure that says how to install them.
fn browser_tools() -> (PathBuf, PathBuf) {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "Node.js (`node`) is needed for the dashboard tests: {INSTALL_HINT} ({node:?})"
    );
    let chromium = chromium();
    assert!(chromium.is_file(), "Chromium not found at {}: {INSTALL_HINT}", chromium.display());
    let modules = node_modules();
    assert!(
        modules.join("playwright-core/package.json").is_file(),
        "playwright-core not found in {}: {INSTALL_HINT}",
        modules.display()
    );
    (modules, chromium)
}

/// Run `node tests/dashboard/<script>` with `envs`, in a process group of its own; panics with its
/// output when it fails or runs longer than [`SCRIPT_TIMEOUT`].
fn run_script(script: &str, envs: &[(&str, String)], out_dir: &Path) {
    use std::os::unix::process::CommandExt;
    let (modules, chromium) = browser_tools();
    let log_path = out_dir.join(format!("{script}.log"));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new("node")
        .arg(repo_root().join("tests/dashboard").join(script))
        .current_dir(repo_root())
        .env("EDGELENS_NODE_MODULES", &modules)
        .env("EDGELENS_CHROMIUM", &chromium)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0)
        .spawn()
        .expect("spawn node");
    // The script's own 90-second limit closes its browser; this one is the backstop. SIGTERM
    // first: playwright-core then kills the browser it launched (in a process group of its own).
    let pgid = child.id();
    let signal_group = |signal: &str| {
        let _ = Command::new("kill").args([signal, "--", &format!("-{pgid}")]).stderr(Stdio::null()).status();
    };
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            signal_group("-TERM");
            let grace = Instant::now() + Duration::from_secs(5);
            while child.try_wait().unwrap().is_none() && Instant::now() < grace {
                std::thread::sleep(Duration::from_millis(100));
            }
            signal_group("-KILL");
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    match status {
        Some(s) if s.success() => {}
        Some(s) => panic!("tests/dashboard/{script} failed ({s}):\n{output}"),
        None => panic!("tests/dashboard/{script} did not finish within {SCRIPT_TIMEOUT:?}:\n{output}"),
    }
}

/// Generated traffic with a detected flood, replayed into a lake and served: the page shows the
/// API's traffic share, top sites, request rate and incidents, and drills into the flood's report.
#[test]
fn dashboard_shows_the_api_data_and_drills_into_an_incident() {
    browser_tools();
    let tmp = tempfile::tempdir().unwrap();
    // Ten minutes from 2026-11-01T00:00:00Z: an HTTP flood on one site and a flash crowd on another.
    let raw = generate(tmp.path(), "mixed", 7, "10m", 200, 40);
    let lake = tmp.path().join("lake");
    run_ok(edgelens().arg("replay").arg(&raw).arg("--data-dir").arg(&lake));
    let svc = QueryService::start(&["--data-dir", lake.to_str().unwrap()], &[]);

    let screenshot = if std::env::var("EDGELENS_UPDATE_SCREENSHOT").is_ok_and(|v| v == "1") {
        repo_root().join("docs/dashboard.png")
    } else {
        tmp.path().join("dashboard.png")
    };
    run_script(
        "dashboard.mjs",
        &[
            ("EDGELENS_URL", format!("http://127.0.0.1:{}", svc.1)),
            ("EDGELENS_END", "2026-11-01T00:10:00Z".into()),
            ("EDGELENS_SPAN", "10m".into()),
            ("EDGELENS_SCREENSHOT", screenshot.display().to_string()),
        ],
        tmp.path(),
    );
    let png = std::fs::read(&screenshot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "screenshot {} is not a PNG of the page", screenshot.display());
}

/// An empty lake and answers replaced in the browser: empty panels, API errors, a 401 and the
/// token input, incidents with little data, a bad end time, live mode.
#[test]
fn dashboard_handles_empty_data_errors_and_tokens() {
    browser_tools();
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("lake");
    std::fs::create_dir_all(&lake).unwrap();
    let svc = QueryService::start(&["--data-dir", lake.to_str().unwrap()], &[]);
    run_script("states.mjs", &[("EDGELENS_URL", format!("http://127.0.0.1:{}", svc.1))], tmp.path());
}
