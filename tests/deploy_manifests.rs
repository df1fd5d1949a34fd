//! The deployment files stay true to the binary: `deploy/compose.yaml`, every manifest under
//! `deploy/k8s/` and the `Dockerfile` are parsed, and
//! - every edgelens container's command is accepted by the real binary (`edgelens <args> --help`);
//! - every config file they mount (and the `EDGELENS__*` variables they set) passes
//!   `edgelens check-config` — unknown sections or keys fail it;
//! - published/container ports are the ports the mounted config makes the role listen on;
//! - HTTP probe paths answer 200 from the role itself (started here on a free port);
//! - aggregator replicas do not exceed the events topic's partitions; referenced ConfigMaps and
//!   volume claims exist.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_yaml::Value;
use support::*;

/// Partitions of the events topic that the deployments create (compose: KAFKA_NUM_PARTITIONS; the
/// dev scripts: EDGELENS_KAFKA_TOPICS).
const PARTITIONS: u64 = 8;

fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text).map(|d| serde::Deserialize::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence().map(|s| s.iter().map(|x| x.as_str().expect("string arg").to_owned()).collect()).unwrap_or_default()
}

/// The binary accepts `args` (clap parses them before `--help` prints and exits 0).
fn assert_command_accepted(args: &[String], what: &str) {
    assert!(!args.is_empty(), "{what}: no command");
    let out = edgelens().args(args).arg("--help").output().unwrap();
    assert!(out.status.success(), "{what}: `edgelens {}` is not a valid command: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// `edgelens check-config` of `config` with `env`; the effective settings as JSON.
fn check_config(config: &Path, env: &[(String, String)], what: &str) -> serde_json::Value {
    let out = edgelens().args(["check-config", "--config"]).arg(config).envs(env.iter().map(|(k, v)| (k, v))).output().unwrap();
    assert!(out.status.success(), "{what}: config rejected: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The ports `role` listens on, by the name the manifests give them: `http` (`listen`), the query
/// service's `pg` (`pg_listen`), the aggregator's `metrics` (`metrics_listen`).
fn listen_ports(settings: &serde_json::Value, role: &str) -> BTreeMap<&'static str, u16> {
    let keys: &[(&str, &str)] = match role {
        "aggregate" => &[("metrics", "metrics_listen")],
        "query" => &[("http", "listen"), ("pg", "pg_listen")],
        _ => &[("http", "listen")],
    };
    keys.iter()
        .filter_map(|(name, key)| {
            let listen = settings[role][key].as_str()?;
            Some((*name, listen.rsplit(':').next().unwrap().parse().unwrap()))
        })
        .collect()
}

/// Start `role` on a free port and GET `path`: the probe target must answer 200.
fn assert_probe_path(role: &str, path: &str) {
    let port = free_port();
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = edgelens();
    cmd.arg(role);
    match role {
        "query" => cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--pg-listen", "off"]).arg("--data-dir").arg(tmp.path()),
        "aggregate" => cmd
            .env("EDGELENS__AGGREGATE__METRICS_LISTEN", format!("127.0.0.1:{port}"))
            .args(["--brokers", "127.0.0.1:1", "--data-dir"])
            .arg(tmp.path()),
        // The receiver starts without a reachable broker; /healthz is about the process.
        _ => cmd.args(["--listen", &format!("127.0.0.1:{port}")]).args(["--brokers", "127.0.0.1:1"]),
    };
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let svc = QueryService::at(port);
    let deadline = Instant::now() + Duration::from_secs(30);
    // Without a broker an aggregator or a receiver is alive but not ready: its /readyz says so
    // ("starting", "not ready: ... the brokers did not answer").
    let not_ready_ok = role != "query" && path == "/readyz";
    let status = loop {
        let (status, body) = svc.get(path);
        let says_not_ready = body.contains("starting") || body.contains("not ready");
        if status == 200 || (not_ready_ok && status == 503 && says_not_ready) || Instant::now() > deadline {
            break if not_ready_ok && status == 503 { 200 } else { status };
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 200, "{role} does not answer {path}");
    eprintln!("{role} answers {path}");
}

#[test]
fn compose_file_matches_the_binary() {
    let dir = repo_root().join("deploy");
    let mut doc = yaml_docs(&dir.join("compose.yaml")).remove(0);
    doc.apply_merge().unwrap();
    let doc = &doc;
    let services = doc["services"].as_mapping().unwrap();
    let partitions: u64 = doc["services"]["kafka"]["environment"]["KAFKA_NUM_PARTITIONS"].as_str().unwrap().parse().unwrap();
    assert!(partitions >= PARTITIONS);
    let mut roles = Vec::new();
    for (name, svc) in services {
        let name = name.as_str().unwrap();
        if svc["image"].as_str() != Some("edgelens:latest") {
            continue;
        }
        let args = strings(&svc["command"]);
        assert_command_accepted(&args, &format!("compose service {name}"));
        let role = args[0].clone();
        // The mounted config file, from the host side of the volume.
        let mount = strings(&svc["volumes"]).into_iter().find(|v| v.contains("/etc/edgelens/edgelens.toml")).expect("config mount");
        let host = dir.join(mount.split(':').next().unwrap());
        let settings = check_config(&host, &[], &format!("compose service {name}"));
        let config_arg = args.iter().position(|a| a == "--config").map(|i| args[i + 1].clone());
        assert_eq!(config_arg.as_deref(), Some("/etc/edgelens/edgelens.toml"), "{name}: --config points elsewhere than the mount");
        if let Some(ports) = svc["ports"].as_sequence() {
            let mut published: Vec<u16> = ports.iter().map(|p| p.as_str().unwrap().rsplit(':').next().unwrap().parse().unwrap()).collect();
            published.sort_unstable();
            let listening: Vec<u16> = listen_ports(&settings, &role).into_values().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
            assert_eq!(published, listening, "{name}: the published container ports are not the configured listeners");
        }
        if role == "aggregate" {
            let replicas = svc["deploy"]["replicas"].as_u64().unwrap_or(1);
            assert!(replicas <= partitions, "{name}: {replicas} replicas for {partitions} partitions");
        }
        roles.push(role);
    }
    roles.sort();
    assert_eq!(roles, ["aggregate", "ingest", "query"], "compose runs every role");
    let dockerfile = std::fs::read_to_string(repo_root().join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("--bin edgelens") && dockerfile.contains("ENTRYPOINT [\"edgelens\"]"), "Dockerfile builds and runs the edgelens binary");
    assert_eq!(doc["x-edgelens"]["build"]["dockerfile"].as_str(), Some("Dockerfile"));
}

#[test]
fn kubernetes_manifests_match_the_binary() {
    let dir = repo_root().join("deploy/k8s");
    let mut objects: Vec<(PathBuf, Value)> = Vec::new();
    for f in std::fs::read_dir(&dir).unwrap().flatten() {
        if f.path().extension().is_some_and(|e| e == "yaml") {
            objects.extend(yaml_docs(&f.path()).into_iter().map(|d| (f.path(), d)));
        }
    }
    let by_kind = |kind: &'static str| objects.iter().filter(move |(_, o)| o["kind"].as_str() == Some(kind));
    let name_of = |o: &Value| o["metadata"]["name"].as_str().unwrap().to_owned();
    let config_maps: BTreeMap<String, &Value> = by_kind("ConfigMap").map(|(_, o)| (name_of(o), o)).collect();
    let claims: Vec<String> = by_kind("PersistentVolumeClaim").map(|(_, o)| name_of(o)).collect();
    let tmp = tempfile::tempdir().unwrap();

    let mut roles = Vec::new();
    for (path, o) in by_kind("Deployment").chain(by_kind("StatefulSet")) {
        let what = format!("{} {}", path.display(), name_of(o));
        let pod = &o["spec"]["template"]["spec"];
        for vol in pod["volumes"].as_sequence().unwrap() {
            if let Some(cm) = vol["configMap"]["name"].as_str() {
                assert!(config_maps.contains_key(cm), "{what}: no ConfigMap {cm}");
            }
            if let Some(claim) = vol["persistentVolumeClaim"]["claimName"].as_str() {
                assert!(claims.contains(&claim.to_owned()), "{what}: no PersistentVolumeClaim {claim}");
            }
        }
        for c in pod["containers"].as_sequence().unwrap() {
            let args = strings(&c["args"]);
            assert_command_accepted(&args, &what);
            let role = args[0].clone();
            // The config file the container mounts, with the variables it sets.
            let cm_name = pod["volumes"].as_sequence().unwrap().iter().find_map(|v| v["configMap"]["name"].as_str()).expect("config volume");
            let text = config_maps[cm_name]["data"]["edgelens.toml"].as_str().expect("edgelens.toml in the ConfigMap");
            let file = tmp.path().join(format!("{cm_name}.toml"));
            std::fs::write(&file, text).unwrap();
            let env: Vec<(String, String)> = c["env"]
                .as_sequence()
                .map(|e| e.iter().map(|v| (v["name"].as_str().unwrap().to_owned(), v["value"].as_str().unwrap_or("from-field").to_owned())).collect())
                .unwrap_or_default();
            assert!(env.iter().all(|(k, _)| k.starts_with("EDGELENS__")), "{what}: unexpected variables {env:?}");
            let settings = check_config(&file, &env, &what);
            let ports: BTreeMap<String, u64> = c["ports"]
                .as_sequence()
                .map(|ps| ps.iter().map(|p| (p["name"].as_str().unwrap().to_owned(), p["containerPort"].as_u64().unwrap())).collect())
                .unwrap_or_default();
            let listening = listen_ports(&settings, &role);
            let named: BTreeMap<&str, u64> = listening.iter().map(|(k, v)| (*k, u64::from(*v))).collect();
            let declared: BTreeMap<&str, u64> = ports.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            assert_eq!(declared, named, "{what}: the container ports are not the configured listeners");
            for probe in ["readinessProbe", "livenessProbe"] {
                if let Some(p) = c[probe]["httpGet"]["path"].as_str() {
                    let port = c[probe]["httpGet"]["port"].as_str().unwrap();
                    assert!(ports.contains_key(port), "{what}: {probe} uses unknown port {port}");
                    assert_probe_path(&role, p);
                }
            }
            assert!(c["resources"]["requests"]["cpu"].as_str().is_some() && c["resources"]["requests"]["memory"].as_str().is_some(), "{what}: resource requests");
            if role == "aggregate" {
                let replicas = o["spec"]["replicas"].as_u64().unwrap();
                assert!(replicas <= PARTITIONS, "{what}: {replicas} aggregators for {PARTITIONS} partitions");
                assert!(env.iter().any(|(k, _)| k == "EDGELENS__AGGREGATE__INSTANCE_ID"), "{what}: aggregators need a stable member id");
            }
            roles.push(role);
        }
    }
    for (path, svc) in by_kind("Service") {
        let selector = svc["spec"]["selector"]["app.kubernetes.io/component"].as_str().unwrap();
        let target = objects.iter().find(|(_, o)| o["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"].as_str() == Some(selector));
        let (_, workload) = target.unwrap_or_else(|| panic!("{}: Service selects no workload", path.display()));
        let container_ports: Vec<String> = workload["spec"]["template"]["spec"]["containers"][0]["ports"].as_sequence().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect();
        for p in svc["spec"]["ports"].as_sequence().unwrap() {
            let t = p["targetPort"].as_str().unwrap().to_owned();
            assert!(container_ports.contains(&t), "{}: targetPort {t} is not a container port", path.display());
        }
    }
    roles.sort();
    assert_eq!(roles, ["aggregate", "ingest", "query"], "the manifests run every role");
}

/// `edgelens check-config` prints every setting of every role as it will be used (file, then
/// environment), and secrets only as set or not.
#[test]
fn check_config_prints_every_setting_and_hides_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("edgelens.toml");
    std::fs::write(&file, "[ingest]\nevents_topic = \"from-file\"\nsecret = \"s3cret\"\n[clickhouse]\npassword = \"pw\"\n").unwrap();
    let env = [("EDGELENS__AGGREGATE__FLUSH_INTERVAL_MS".to_owned(), "250".to_owned())];
    let settings = check_config(&file, &env, "check-config");
    assert_eq!(settings["ingest"]["events_topic"], "from-file");
    assert_eq!(settings["ingest"]["max_decompressed_bytes"], edgelens_ingest::IngestConfig::default().max_decompressed_bytes as u64);
    assert_eq!(settings["aggregate"]["flush_interval_ms"], 250);
    assert_eq!(settings["aggregate"]["incidents_topic"], edgelens_aggregate::AggregateConfig::default().incidents_topic);
    assert_eq!(settings["query"]["sql_timeout_secs"], edgelens_query::QueryConfig::default().sql_timeout_secs);
    assert_eq!((&settings["ingest"]["secret"], &settings["clickhouse"]["password"], &settings["aggregate"]["client_ip_key"]), (&serde_json::json!("(set)"), &serde_json::json!("(set)"), &serde_json::json!("")));
    let text = settings.to_string();
    assert!(!text.contains("s3cret") && !text.contains("\"pw\""), "{text}");
}

/// `edgelens check-config` finds what the roles would refuse when they start, all of it at once:
/// every unknown key of every section, tokens too short or reused, a decompression budget below
/// one batch.
#[test]
fn check_config_reports_every_problem_the_roles_would_refuse() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bad.toml");
    std::fs::write(
        &file,
        "[query]\nlistn = \"x\"\nsql_max_row = 3\n[[query.tokens]]\nname = \"a\"\ntoken = \"abc\"\n[[query.tokens]]\nname = \"b\"\ntoken = \"abc\"\n[ingest]\nlistn = \"y\"\n",
    )
    .unwrap();
    let out = edgelens().args(["check-config", "--config"]).arg(&file).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in ["[query]: unknown keys listn, sql_max_row", "[ingest]: unknown keys listn"] {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
    std::fs::write(&file, "[[query.tokens]]\nname = \"a\"\ntoken = \"abc\"\n[[query.tokens]]\nname = \"b\"\ntoken = \"abc\"\n[ingest]\nmax_decompressed_bytes_total = 10\n").unwrap();
    let out = edgelens().args(["check-config", "--config"]).arg(&file).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in ["token \"a\": shorter than 16 characters", "token \"b\" reuses the token of another entry", "max_decompressed_bytes_total (10) is below"] {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
    // Regression: an empty group (librdkafka's "consumer queue not available" at start), a
    // ClickHouse address that is not HTTP, zero intervals and empty topics were accepted.
    std::fs::write(&file, "[aggregate]
group = \"\"
[clickhouse]
url = \"ftp://x\"
[ingest]
events_topic = \"\"
").unwrap();
    let out = edgelens().args(["check-config", "--config"]).arg(&file).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in ["aggregate.group is empty", "[clickhouse]: clickhouse url \"ftp://x\" is not an HTTP interface", "ingest.events_topic is empty"] {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
    let out = edgelens().args(["check-config", "--config"]).arg(&file).env("EDGELENS__AGGREGATE__GROUP", "g").env("EDGELENS__AGGREGATE__FLUSH_INTERVAL_MS", "0").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("aggregate.flush_interval_ms is 0"), "{}", String::from_utf8_lossy(&out.stderr));
    // Regression: only the first bad value of a section was reported.
    std::fs::write(&file, "[aggregate]\nflush_interval_ms = -1\ngroup = \"g\"\nmax_line_bytes = \"x\"\n[query]\nsql_max_rows = \"many\"\n").unwrap();
    let out = edgelens().args(["check-config", "--config"]).arg(&file).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("3 problem(s)"), "{err}");
    for key in ["in `flush_interval_ms`", "in `max_line_bytes`", "in `sql_max_rows`"] {
        assert!(err.lines().any(|l| l.contains(key) && l.contains("invalid [")), "{key} not on a line of its own in {err}");
    }
    // Regression: an unknown section hid every other problem, and an unknown key hid the bad
    // values of the section's other keys; a role reported the first problem of its section only.
    std::fs::write(&file, "[ingest]\nmax_body_byte = 100\n[aggregate]\ngrup = \"x\"\nflush_interval_ms = \"fast\"\n[query]\nbackend = \"duckdb\"\n[bogus]\na = 1\n").unwrap();
    let out = edgelens().args(["check-config", "--config"]).arg(&file).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("5 problem(s)"), "{err}");
    for needle in ["unknown config section [bogus]", "[ingest]: unknown keys max_body_byte", "[aggregate]: unknown keys grup", "in `flush_interval_ms`", "in `backend`"] {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
    std::fs::write(&file, "[ingest]\nmax_body_bytes = \"big\"\nretry_after_secs = -1\nlisten = \"nope\"\n").unwrap();
    let out = edgelens().args(["ingest", "--config"]).arg(&file).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("3 problem(s)"), "{err}");
    // Regression: settings whose 0 turns a role off were accepted (every batch 413, retries at
    // once), and a shard listed twice.
    for (env, says) in [
        ("EDGELENS__INGEST__MAX_BODY_BYTES", "ingest.max_body_bytes is 0"),
        ("EDGELENS__INGEST__RETRY_AFTER_SECS", "ingest.retry_after_secs is 0"),
        ("EDGELENS__AGGREGATE__FLUSH_ROWS", "aggregate.flush_rows is 0"),
        ("EDGELENS__QUERY__SQL_MAX_ROWS", "query.sql_max_rows is 0"),
        ("EDGELENS__CLICKHOUSE__MAX_BACKOFF_MS", "clickhouse.max_backoff_ms is 0"),
    ] {
        let out = edgelens().args(["check-config"]).env(env, "0").output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(says), "{env}: {err}");
    }
    // Regression: an empty data dir was accepted (the lake landed in the working directory), and
    // a section's checks named its first problem only.
    let out = edgelens()
        .args(["check-config"])
        .env("EDGELENS__AGGREGATE__DATA_DIR", "")
        .env("EDGELENS__QUERY__DATA_DIR", " ")
        .env("EDGELENS__INGEST__MAX_BODY_BYTES", "0")
        .env("EDGELENS__INGEST__RETRY_AFTER_SECS", "0")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("4 problem(s)"), "{err}");
    for needle in ["[aggregate]: aggregate.data_dir is empty", "[query]: query.data_dir is empty", "[ingest]: ingest.max_body_bytes is 0", "[ingest]: ingest.retry_after_secs is 0"] {
        assert!(err.lines().any(|l| l.trim() == needle || l.trim().starts_with(&format!("{needle}:"))), "{needle:?} not on a line of its own in {err}");
    }
    for args in [&["replay", "--data-dir", "", "events.ndjson"][..], &["sql", "--data-dir", "", "SELECT 1"], &["query", "--data-dir", ""]] {
        let out = edgelens().args(args).output().unwrap();
        assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("an empty path"), "{args:?}: {out:?}");
    }
    let out = edgelens().args(["check-config"]).env("EDGELENS__CLICKHOUSE__SHARDS", r#"["http://a:8123", "http://A:8123/"]"#).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("twice"), "{out:?}");
    // Regression: a query service reading ClickHouse without its address passed the check and
    // then refused to start.
    std::fs::write(&file, "[query]\nbackend = \"clickhouse\"\n").unwrap();
    let out = edgelens().args(["check-config", "--config"]).arg(&file).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("backend = \"clickhouse\" needs [clickhouse] url"), "{out:?}");
    std::fs::write(&file, "[query]\nbackend = \"clickhouse\"\n[clickhouse]\nurl = \"http://127.0.0.1:8123\"\n").unwrap();
    assert!(edgelens().args(["check-config", "--config"]).arg(&file).output().unwrap().status.success());
    let out = edgelens().args(["query", "--clickhouse", "ftp://x", "--listen", "127.0.0.1:0"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not an HTTP interface"), "{out:?}");
}
