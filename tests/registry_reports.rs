//! The site registry end to end, on the lake and on ClickHouse: `edgelens registry import` of CSV
//! files with overlapping, many-to-many, time-versioned attributions (host names given as `www.`
//! and subdomains of registered sites), a bad file that writes nothing, a repeated import that
//! changes nothing; then the entity report, traffic share by entity and incidents by entity, whose
//! numbers must equal a recount from the raw generated events with the mapping valid at each
//! minute applied independently here.
//!
//! Needs the ClickHouse server at `$EDGELENS_TEST_CLICKHOUSE` (fails, never skips, without it).
//! `EDGELENS_UPDATE_DOCS=1` rewrites the example report in `docs/examples/`.

mod support;

use std::collections::BTreeMap;

use support::answers::*;
use support::*;

const T0: i64 = 1_793_491_200_000_000; // 2026-11-01T00:00:00Z in µs

fn minute(m: i64) -> String {
    format!("2026-11-01T00:{m:02}:00Z")
}

/// (site index, entity, confidence, from minute, to minute)
type Attr = (usize, &'static str, f64, i64, Option<i64>);

#[test]
fn registry_import_and_entity_reports_match_a_recount() {
    let db = ChDatabase::new(&clickhouse_url(), "edgelens_registry");
    let tmp = tempfile::tempdir().unwrap();
    let raw = generate(tmp.path(), "mixed", 52, "8m", 250, 20);
    let lake = tmp.path().join("lake");
    run_ok(edgelens().args(["replay", "--data-dir"]).arg(&lake).args(["--clickhouse", &db.url]).arg(&raw).envs(db.env()));
    let lake_s = lake.to_str().unwrap().to_owned();
    let targets = ["--data-dir", lake_s.as_str(), "--clickhouse", db.url.as_str()];

    // Requests per (minute µs, site), counted from the raw events.
    let counts = recount(&raw);
    let mut per_minute: BTreeMap<(i64, String), u64> = BTreeMap::new();
    for (k, v) in &counts.rates {
        let w: i64 = k[0].parse().unwrap();
        *per_minute.entry((w - w.rem_euclid(60_000_000), k[1].clone())).or_default() += v[0];
    }
    let mut by_site: BTreeMap<String, u64> = BTreeMap::new();
    for ((_, s), n) in &per_minute {
        *by_site.entry(s.clone()).or_default() += n;
    }
    let open = QueryService::start(&["--data-dir", &lake_s], &[]);
    let range = "from=2026-11-01T00:00:00Z&to=2026-11-01T00:08:00Z";
    let attacked = json(&open.get(&format!("/v1/incidents?{range}")).1, "incidents")["incidents"][0]["site"]
        .as_str()
        .expect("the mixed scenario has an incident")
        .to_owned();
    drop(open);
    let mut sites: Vec<String> = by_site.keys().filter(|s| **s != attacked).take(3).cloned().collect();
    sites.push(attacked.clone());

    // The registry: sites first, then attributions naming some sites by host names below them.
    let write = |name: &str, text: String| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let sites_csv = write(
        "sites.csv",
        format!("site,tenant,created_at,removed_at\n{}", sites.iter().map(|s| format!("{s},acme,2026-01-01T00:00:00Z,\n")).collect::<String>()),
    );
    let attrs: [Attr; 7] = [
        (0, "Org A", 0.9, 0, None),
        (1, "Org A", 0.4, 0, Some(5)),
        (1, "Org B", 0.9, 3, None),
        (2, "Org B", 0.8, 1, Some(4)),
        (0, "Org C", 0.95, 2, None),
        (3, "Org A", 0.7, 0, None),
        (0, "Org B", 0.6, 0, None),
    ];
    let host = |i: usize| match i {
        0 => format!("www.{}", sites[0]),
        2 => format!("api.{}", sites[2]),
        _ => sites[i].clone(),
    };
    let entities_csv = write(
        "entities.csv",
        format!(
            "site,entity,source,confidence,valid_from,valid_to\n{}",
            attrs
                .iter()
                .map(|(i, e, c, f, t)| format!("{},{e},\"registrar, test\",{c},{},{}\n", host(*i), minute(*f), t.map(minute).unwrap_or_default()))
                .collect::<String>()
        ),
    );
    let tags_csv = write("tags.csv", format!("site,tag,source,valid_from,valid_to\n{},watchlist-x,ofac,{},\n", sites[1], minute(2)));
    for f in [&sites_csv, &entities_csv, &tags_csv] {
        run_ok(edgelens().args(["registry", "import", f, "--actor", "registrar-bot"]).args(targets).envs(db.env()));
    }
    let export = |backend: &[&str]| run_ok(edgelens().args(["registry", "export"]).args(backend).envs(db.env()));
    let before = export(&["--data-dir", &lake_s]);
    assert_eq!(
        normalized(json(&before, "lake export")),
        normalized(json(&export(&["--clickhouse", &db.url]), "clickhouse export")),
        "the lake and ClickHouse hold the same registry"
    );
    // A bad file: every problem reported with its line, nothing written; a repeat changes nothing.
    let bad = write("bad.csv", format!("site,entity,source,confidence,valid_from,valid_to\n{},Org Z,x,0.5,{},\nnot a host,Org Z,x,7,soon,\n", sites[0], minute(0)));
    let out = edgelens().args(["registry", "import", &bad]).args(targets).envs(db.env()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in ["line 3: site \"not a host\" is not a host name", "line 3: valid_from \"soon\"", "line 3: confidence \"7\"", "nothing imported"] {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
    run_ok(edgelens().args(["registry", "import", &entities_csv]).args(targets).envs(db.env()));
    assert_eq!(export(&["--data-dir", &lake_s]), before, "a bad or repeated import changed the registry");
    let exported = json(&before, "export");
    assert_eq!(exported["entities"].as_array().unwrap().len(), attrs.len());
    assert!(exported["entities"].as_array().unwrap().iter().all(|e| sites.contains(&e["site"].as_str().unwrap().to_owned())), "host names map to sites");

    let on_lake = QueryService::start(&["--data-dir", &lake_s], &[]);
    let on_ch = QueryService::start(&["--clickhouse", &db.url], &db.env());
    // Every successful import is audited (the bad one is not): who, which file, how many rows.
    let audit_sql = "SELECT actor, action, file, sites, entities, tags FROM registry_audit ORDER BY actor, file";
    let audit = json(&on_lake.sql(audit_sql, "application/json").1, "audit");
    assert_eq!(normalized(audit.clone()), normalized(json(&on_ch.sql(audit_sql, "application/json").1, "audit")));
    let rows: Vec<(String, String, u64, u64, u64)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["actor"].as_str().unwrap().to_owned(), r["file"].as_str().unwrap().rsplit('/').next().unwrap().to_owned(), r["sites"].as_u64().unwrap(), r["entities"].as_u64().unwrap(), r["tags"].as_u64().unwrap()))
        .collect();
    let bot = |f: &str, s, e, t| ("registrar-bot".to_owned(), f.to_owned(), s, e, t);
    assert_eq!(rows.len(), 4, "{audit}");
    // The repeated import ran without --actor: $USER, else `cli`.
    let user = std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "cli".into());
    let (mine, others): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| r.0 == "registrar-bot");
    assert_eq!(mine, [bot("entities.csv", 0, attrs.len() as u64, 0), bot("sites.csv", 4, 0, 0), bot("tags.csv", 0, 0, 1)], "{audit}");
    // It wrote nothing: every row was registered already.
    assert_eq!(others, [(user, "entities.csv".to_owned(), 0, 0, 0)], "{audit}");
    let spec = support::openapi::Spec::fetch(&on_lake);
    let mut reports = 0;
    // An entity no site is attributed to (a typo, another case) is not found, not an entity
    // without traffic.
    for name in ["Nobody", "org%20a"] {
        let path = format!("/v1/reports/entities/{name}?{range}&step=2m");
        assert_eq!((spec.get(&on_lake, &path, None).0, spec.get(&on_ch, &path, None).0), (404, 404), "{path}");
    }
    for (entity, min_conf) in [("Org A", 0.5), ("Org A", 0.0), ("Org B", 0.0), ("Org C", 0.0)] {
        let path = format!("/v1/reports/entities/{}?{range}&step=2m&min_confidence={min_conf}", entity.replace(' ', "%20"));
        let (a, b) = (spec.get(&on_lake, &path, None), spec.get(&on_ch, &path, None));
        assert_eq!((a.0, b.0), (200, 200), "{path}: {} / {}", a.1, b.1);
        let report = json(&a.1, &path);
        assert_eq!(normalized(report.clone()), normalized(json(&b.1, &path)), "{path}: backends differ");

        // Independent recount: each minute, a site counts once toward the entity if any of its
        // attributions with enough confidence holds.
        let holds: Vec<&Attr> = attrs.iter().filter(|a| a.1 == entity && a.2 >= min_conf).collect();
        let at = |a: &Attr, m: i64| m >= a.3 && a.4.is_none_or(|t| m < t);
        let (mut entity_total, mut all_total) = (0u64, 0u64);
        let mut per_step: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
        let mut per_attr = vec![0u64; holds.len()];
        for ((t, site), n) in &per_minute {
            let m = (t - T0) / 60_000_000;
            if !(0..8).contains(&m) {
                continue;
            }
            let step = per_step.entry(m / 2).or_default();
            step.1 += n;
            all_total += n;
            let mut counted = false;
            for (k, a) in holds.iter().enumerate() {
                if sites[a.0] == *site && at(a, m) {
                    per_attr[k] += n;
                    counted = true;
                }
            }
            if counted {
                step.0 += n;
                entity_total += n;
            }
        }
        assert_eq!(report["requests"].as_u64(), Some(entity_total), "{path}");
        assert_eq!(report["total_requests"].as_u64(), Some(all_total), "{path}");
        let series: Vec<(u64, f64)> = report["series"].as_array().unwrap().iter().map(|p| (p["requests"].as_u64().unwrap(), p["share"].as_f64().unwrap())).collect();
        let expected: Vec<(u64, f64)> = per_step.values().map(|&(e, all)| (e, e as f64 / all as f64)).collect();
        assert_eq!(series.len(), expected.len(), "{path}");
        for (got, want) in series.iter().zip(&expected) {
            assert_eq!(got.0, want.0, "{path}");
            assert!((got.1 - want.1).abs() < 1e-12, "{path}: share {} vs {}", got.1, want.1);
        }
        let mut got_attrs: Vec<(String, u64)> = report["sites"].as_array().unwrap().iter().map(|a| (format!("{}@{}", a["site"].as_str().unwrap(), a["valid_from"].as_str().unwrap()), a["requests"].as_u64().unwrap())).collect();
        let mut want_attrs: Vec<(String, u64)> = holds.iter().zip(&per_attr).map(|(a, &n)| (format!("{}@{}", sites[a.0], minute(a.3)), n)).collect();
        got_attrs.sort();
        want_attrs.sort();
        assert_eq!(got_attrs, want_attrs, "{path}: attributions");
        assert!(report["sites"].as_array().unwrap().iter().all(|a| a["source"] == "registrar, test"), "provenance kept");

        // Traffic share by entity agrees with the report's series.
        {
            let share = json(&on_lake.get(&format!("/v1/traffic-share?{range}&by=entity&step=2m&top=10&min_confidence={min_conf}")).1, "share");
            let s = share["series"].as_array().unwrap().iter().find(|s| s["key"] == entity).expect("entity in traffic share");
            let points: BTreeMap<String, u64> = s["points"].as_array().unwrap().iter().map(|p| (p["ts"].as_str().unwrap().to_owned(), p["requests"].as_u64().unwrap())).collect();
            for p in report["series"].as_array().unwrap() {
                assert_eq!(points.get(p["ts"].as_str().unwrap()).copied().unwrap_or(0), p["requests"].as_u64().unwrap(), "{entity} at {}", p["ts"]);
            }
        }
        // Incidents against the entity's sites: the attacked site is Org A's for the whole range.
        let incidents = report["incidents"].as_array().unwrap();
        assert_eq!(incidents.iter().any(|i| i["site"] == attacked.as_str()), entity == "Org A", "{path}: {incidents:?}");
        let listed = json(&spec.get(&on_ch, &format!("/v1/incidents?{range}&entity={}&min_confidence={min_conf}", entity.replace(' ', "%20")), None).1, "incidents");
        assert_eq!(listed["incidents"], report["incidents"], "{path}: /v1/incidents?entity=");
        for format in ["csv", "md", "html"] {
            let (a, b) = (spec.get(&on_lake, &format!("{path}&format={format}"), None), spec.get(&on_ch, &format!("{path}&format={format}"), None));
            assert_eq!((a.0, b.0), (200, 200));
            assert_eq!(a.1, b.1, "{path} as {format}");
        }
        reports += 1;
    }
    // With top=1 the other entities fold into one series, in which a site attributed to several
    // of them (Org B and Org C share sites[0]) counts once a minute: no share above 1.
    let path = format!("/v1/traffic-share?{range}&by=entity&step=2m&top=1");
    let share = json(&on_lake.get(&path).1, &path);
    assert_eq!(normalized(share.clone()), normalized(json(&on_ch.get(&path).1, &path)), "{path}: backends differ");
    let at = |a: &Attr, m: i64| m >= a.3 && a.4.is_none_or(|t| m < t);
    let held = |site: &str, m: i64| -> std::collections::BTreeSet<&str> { attrs.iter().filter(|a| sites[a.0] == site && at(a, m)).map(|a| a.1).collect() };
    let in_range: Vec<(i64, &String, u64)> =
        per_minute.iter().map(|((t, s), n)| ((t - T0) / 60_000_000, s, *n)).filter(|(m, _, _)| (0..8).contains(m)).collect();
    let mut per_entity: BTreeMap<&str, u64> = BTreeMap::new();
    for (m, site, n) in &in_range {
        for e in held(site, *m) {
            *per_entity.entry(e).or_default() += n;
        }
    }
    let top = *per_entity.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))).unwrap().0;
    let mut rest: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut overlapped = 0u64;
    for (m, site, n) in &in_range {
        let step = rest.entry(minute(m / 2 * 2)).or_default();
        step.1 += n;
        let folded = held(site, *m).into_iter().filter(|e| *e != top).count();
        if folded > 0 {
            step.0 += n;
        }
        if folded > 1 {
            overlapped += n;
        }
    }
    assert!(overlapped > 0, "the registry has sites in more than one folded entity");
    let series = share["series"].as_array().unwrap();
    assert_eq!((series.len(), series[0]["key"].as_str(), series[1]["folded"].as_bool()), (2, Some(top), Some(true)), "{share}");
    let got: BTreeMap<String, (u64, f64)> = series[1]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["ts"].as_str().unwrap().to_owned(), (p["requests"].as_u64().unwrap(), p["share"].as_f64().unwrap())))
        .collect();
    let want: BTreeMap<String, (u64, f64)> = rest.iter().map(|(ts, &(r, all))| (ts.clone(), (r, r as f64 / all as f64))).collect();
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{share}");
    for (ts, (r, sh)) in &want {
        assert_eq!(got[ts].0, *r, "folded rest at {ts}: {share}");
        assert!((got[ts].1 - sh).abs() < 1e-12 && got[ts].1 <= 1.0, "folded share at {ts}: {share}");
    }

    // The report of an entity, as an example in the docs.
    let example = format!("/v1/reports/entities/Org%20A?{range}&step=2m&min_confidence=0.5");
    let md = on_lake.get(&format!("{example}&format=md")).1;
    assert!(md.contains("## Incidents mitigated") && md.contains(&attacked) && md.contains("registrar, test"));
    if std::env::var_os("EDGELENS_UPDATE_DOCS").is_some() {
        let dir = repo_root().join("docs/examples");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("entity-report.md"), &md).unwrap();
        std::fs::write(dir.join("entity-report.html"), on_lake.get(&format!("{example}&format=html")).1).unwrap();
    }
    assert_eq!(on_lake.get("/v1/reports/entities/Org%20A?format=pdf").0, 400);
    eprintln!("{reports} entity reports equal on both backends and to the recount");
}

/// Importing rows the registry already holds adds nothing: an export imported again, and a file
/// that extends an earlier one, leave one row per attribution (a compliance join over
/// `site_entities` would otherwise count a site's traffic once per copy).
#[test]
fn imports_add_only_rows_not_yet_registered() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("lake");
    let write = |name: &str, text: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let import = |file: &std::path::Path| run_ok(edgelens().args(["registry", "import"]).arg(file).arg("--data-dir").arg(&lake));
    let head = "site,entity,source,confidence,valid_from,valid_to\n";
    let first = format!("{head}shop.example,Acme Corp,whois,0.9,2026-01-01T00:00:00Z,\nwww.other.example,Foo,manual,0.5,2026-01-01T00:00:00Z,2026-06-01T00:00:00Z\n");
    import(&write("first.csv", &first));
    let extended = format!("{first}third.example,Acme Corp,whois,0.8,2026-01-01T00:00:00Z,\n");
    // Regression: a dry run counted the file's rows (3), not what an import would write.
    let dry = run_ok(edgelens().args(["registry", "import", "--dry-run"]).arg(write("extended.csv", &extended)).arg("--data-dir").arg(&lake));
    assert!(dry.ends_with(": valid; would import 0 sites, 1 entity attributions, 0 tags (2 rows of the file already registered, not written again); nothing written (--dry-run)\n"), "{dry}");
    let dry = run_ok(edgelens().args(["registry", "import", "--dry-run"]).arg(write("first-again.csv", &first)).arg("--data-dir").arg(&lake));
    assert!(dry.contains(": valid; nothing new; all 2 rows of it"), "{dry}");
    let out = import(&write("extended.csv", &extended));
    assert!(out.ends_with("imported 0 sites, 1 entity attributions, 0 tags (2 rows of the file already registered, not written again)\n"), "{out}");
    let export = || run_ok(edgelens().args(["registry", "export", "--data-dir"]).arg(&lake));
    let before = export();
    let out = import(&write("export.json", &before));
    // Regression: this said "imported 0 sites, 3 entity attributions, 0 tags" though it wrote none of them.
    assert!(out.ends_with("nothing new; all 3 rows of it (0 sites, 3 entity attributions, 0 tags) already registered\n"), "{out}");
    let missing = edgelens().args(["registry", "export", "--data-dir"]).arg(tmp.path().join("no-lake")).output().unwrap();
    assert!(!missing.status.success() && String::from_utf8_lossy(&missing.stderr).contains("no lake at"), "{missing:?}");
    assert_eq!(export(), before);
    let rows = run_ok(edgelens().args(["sql", "--format", "csv", "--data-dir"]).arg(&lake).arg("SELECT site, entity, count(*) AS n FROM site_entities GROUP BY site, entity ORDER BY site"));
    // `www.other.example` is no host of a registered site: it is a site of its own.
    assert_eq!(rows, "site,entity,n\nshop.example,Acme Corp,1\nthird.example,Acme Corp,1\nwww.other.example,Foo,1\n");
    // A row that differs in a value is new.
    let out = import(&write("changed.csv", &format!("{head}shop.example,Acme Corp,whois,0.7,2026-01-01T00:00:00Z,\n")));
    assert!(!out.contains("already registered"), "{out}");
}

/// An import that ends, corrects or reopens an attribution (or a tag, or a site's tenant)
/// replaces its current version: the latest import of a key wins, on the lake and on
/// ClickHouse alike. A site's traffic counts toward its entity once, and only while the
/// current version says the attribution holds.
#[test]
fn a_later_import_ends_corrects_or_reopens_an_attribution() {
    let db = ChDatabase::new(&clickhouse_url(), "edgelens_registry_versions");
    let tmp = tempfile::tempdir().unwrap();
    let raw = generate(tmp.path(), "baseline", 11, "4m", 100, 3);
    let lake = tmp.path().join("lake");
    run_ok(edgelens().args(["replay", "--data-dir"]).arg(&lake).args(["--clickhouse", &db.url]).arg(&raw).envs(db.env()));
    let lake_s = lake.to_str().unwrap().to_owned();
    let targets = ["--data-dir", lake_s.as_str(), "--clickhouse", db.url.as_str()];
    let mut per_minute: BTreeMap<(String, i64), u64> = BTreeMap::new();
    for (k, v) in &recount(&raw).rates {
        let m = (k[0].parse::<i64>().unwrap() - T0).div_euclid(60_000_000);
        *per_minute.entry((k[1].clone(), m)).or_default() += v[0];
    }
    let site = per_minute.keys().next().unwrap().0.clone();
    let requests = |minutes: std::ops::Range<i64>| minutes.map(|m| per_minute.get(&(site.clone(), m)).copied().unwrap_or(0)).sum::<u64>();
    assert!(requests(0..2) > 0 && requests(2..4) > 0, "traffic in every minute");

    let import = |name: &str, text: String| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        run_ok(edgelens().arg("registry").arg("import").arg(&p).args(targets).envs(db.env()))
    };
    let entity = |conf: f64, to: &str| format!("site,entity,source,confidence,valid_from,valid_to\n{site},Org A,whois,{conf},{},{to}\n", minute(0));
    let tag = |to: &str| format!("site,tag,source,valid_from,valid_to\n{site},watchlist-x,ofac,{},{to}\n", minute(0));
    let tenant = |t: &str| format!("site,tenant,created_at,removed_at\n{site},{t},2026-01-01T00:00:00Z,\n");
    let on_lake = QueryService::start(&["--data-dir", &lake_s], &[]);
    let on_ch = QueryService::start(&["--clickhouse", &db.url], &db.env());
    let range = "from=2026-11-01T00:00:00Z&to=2026-11-01T00:04:00Z&step=4m";
    // (rows of the site in each registry table, Org A's and watchlist-x's requests) on both backends.
    let state = |min_conf: f64| {
        let mut seen = Vec::new();
        for svc in [&on_lake, &on_ch] {
            let count = |table: &str| {
                let sql = format!("SELECT count(*) AS n FROM {table} WHERE site = '{site}'");
                json(&svc.sql(&sql, "application/json").1, table)[0]["n"].as_u64().unwrap()
            };
            let share = |by: &str, key: &str| {
                let confidence = if by == "entity" { format!("&min_confidence={min_conf}") } else { String::new() };
                let body = svc.get(&format!("/v1/traffic-share?{range}&by={by}{confidence}")).1;
                let share = json(&body, "share");
                let series = share["series"].as_array().unwrap().iter().find(|s| s["key"] == key).cloned();
                series.map_or(0, |s| s["points"].as_array().unwrap().iter().map(|p| p["requests"].as_u64().unwrap()).sum::<u64>())
            };
            let tenant = json(&svc.sql(&format!("SELECT tenant FROM sites WHERE site = '{site}'"), "application/json").1, "sites");
            seen.push(((count("site_entities"), count("site_tags"), count("sites")), share("entity", "Org A"), share("tag", "watchlist-x"), tenant.to_string()));
        }
        assert_eq!(seen[0], seen[1], "the lake and ClickHouse differ");
        seen.remove(0)
    };

    import("e1.csv", entity(0.9, ""));
    import("t1.csv", tag(""));
    import("s1.csv", tenant("acme"));
    assert_eq!(state(0.5), ((1, 1, 1), requests(0..4), requests(0..4), r#"[{"tenant":"acme"}]"#.into()));
    // Ended after two minutes: one row, the traffic of the first two minutes only.
    import("e2.csv", entity(0.9, &minute(2)));
    import("t2.csv", tag(&minute(2)));
    import("s2.csv", tenant("globex"));
    assert_eq!(state(0.5), ((1, 1, 1), requests(0..2), requests(0..2), r#"[{"tenant":"globex"}]"#.into()));
    // Corrected confidence, open again.
    let out = import("e3.csv", entity(0.4, ""));
    assert!(!out.contains("already registered"), "{out}");
    assert_eq!(state(0.5).1, 0, "below the confidence asked for");
    assert_eq!(state(0.0).1, requests(0..4));
    // Importing an earlier file again makes it current again.
    let out = import("e1.csv", entity(0.9, ""));
    assert!(!out.contains("already registered"), "{out}");
    assert_eq!(state(0.5).0, (1, 1, 1));
    assert_eq!(state(0.5).1, requests(0..4));
    let exported = json(&run_ok(edgelens().args(["registry", "export", "--data-dir", &lake_s])), "export");
    assert_eq!(exported["entities"].as_array().unwrap().len(), 1, "{exported}");
    assert_eq!(exported["entities"][0]["confidence"].as_f64(), Some(0.9), "{exported}");
    // Regression: a wrong attribution or tag could not be withdrawn (a `valid_to` equal to
    // `valid_from` was refused, and the shortest period left still counted a minute). Withdrawn,
    // it holds at no time: no traffic, no report row, no incident.
    import("e4.csv", entity(0.9, &minute(0)));
    import("t4.csv", tag(&minute(0)));
    assert_eq!(state(0.0), ((1, 1, 1), 0, 0, r#"[{"tenant":"globex"}]"#.into()));
    let report = json(&on_lake.get(&format!("/v1/reports/entities/Org%20A?{range}")).1, "report");
    assert_eq!((report["requests"].as_u64(), report["sites"].as_array().map(Vec::len)), (Some(0), Some(0)), "{report}");
}

/// Regression: an attribution (or tag) imported under a host name before its site was registered
/// stayed under the host name, which no traffic is recorded under once the site is known: the
/// entity counted nothing of the site, and the total depended on the order of the imports. Such
/// rows now count as their site's too (and still as the host's, whose traffic recorded before the
/// registration stays under it), in reports and traffic share, on the lake and ClickHouse.
#[test]
fn an_attribution_imported_before_its_site_counts_the_sites_traffic() {
    let db = ChDatabase::new(&clickhouse_url(), "edgelens_registry_order");
    let tmp = tempfile::tempdir().unwrap();
    let raw = generate(tmp.path(), "baseline", 12, "4m", 100, 3);
    let lake = tmp.path().join("lake");
    run_ok(edgelens().args(["replay", "--data-dir"]).arg(&lake).args(["--clickhouse", &db.url]).arg(&raw).envs(db.env()));
    let lake_s = lake.to_str().unwrap().to_owned();
    let targets = ["--data-dir", lake_s.as_str(), "--clickhouse", db.url.as_str()];
    let mut per_site: BTreeMap<String, u64> = BTreeMap::new();
    for (k, v) in &recount(&raw).rates {
        *per_site.entry(k[1].clone()).or_default() += v[0];
    }
    let (site, site_requests) = per_site.iter().next().map(|(s, n)| (s.clone(), *n)).unwrap();
    // The site's requests before 00:02 (rates are keyed by 10 s window start in µs, then site).
    let two_minutes = 1_793_491_320_000_000i64;
    let site_early: u64 = recount(&raw).rates.iter().filter(|(k, _)| k[1] == site && k[0].parse::<i64>().unwrap() < two_minutes).map(|(_, v)| v[0]).sum();
    // Traffic of api.<site> recorded before the site is registered: under the host name.
    let hosts = tmp.path().join("host.ndjson");
    let host_lines: Vec<String> = std::fs::read_to_string(&raw)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["ZoneName"] == site.as_str())
        .take(500)
        .map(|mut v| {
            let o = v.as_object_mut().unwrap();
            o.remove("ZoneName");
            o.insert("ClientRequestHost".into(), format!("api.{site}").into());
            let ray = format!("{}f", o["RayID"].as_str().unwrap_or_default());
            o.insert("RayID".into(), ray.into());
            v.to_string()
        })
        .collect();
    let host_requests = host_lines.len() as u64;
    let host_early = host_lines.iter().filter(|l| json(l, "host line")["EdgeStartTimestamp"].as_i64().unwrap() / 1000 < two_minutes).count() as u64;
    std::fs::write(&hosts, host_lines.join("\n") + "\n").unwrap();
    run_ok(edgelens().args(["replay", "--data-dir"]).arg(&lake).args(["--clickhouse", &db.url]).arg(&hosts).envs(db.env()));
    let import = |name: &str, text: String| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        run_ok(edgelens().arg("registry").arg("import").arg(&p).args(targets).envs(db.env()))
    };
    import("e.csv", format!("site,entity,source,confidence,valid_from,valid_to\napi.{site},Org H,whois,0.9,2026-01-01T00:00:00Z,\n"));
    import("t.csv", format!("site,tag,source,valid_from,valid_to\napi.{site},watchlist-h,ofac,2026-01-01T00:00:00Z,\n"));
    let on_lake = QueryService::start(&["--data-dir", &lake_s], &[]);
    let on_ch = QueryService::start(&["--clickhouse", &db.url], &db.env());
    let range = "from=2026-11-01T00:00:00Z&to=2026-11-01T00:05:00Z";
    let counted = || {
        let mut seen = Vec::new();
        for svc in [&on_lake, &on_ch] {
            let share = |by: &str, key: &str| {
                let body = svc.get(&format!("/v1/traffic-share?{range}&step=5m&by={by}")).1;
                let share = json(&body, "share");
                let series = share["series"].as_array().unwrap_or_else(|| panic!("{by}: {body}"));
                series.iter().find(|s| s["key"] == key).map_or(0, |s| s["requests"].as_u64().unwrap())
            };
            let report = json(&svc.get(&format!("/v1/reports/entities/Org%20H?{range}&step=5m")).1, "report");
            seen.push((share("entity", "Org H"), share("tag", "watchlist-h"), report["requests"].as_u64().unwrap()));
        }
        assert_eq!(seen[0], seen[1], "the lake and ClickHouse differ");
        seen[0]
    };
    let h = host_requests;
    assert_eq!(counted(), (h, h, h), "the traffic recorded under api.{site}");
    import("s.csv", format!("site,tenant,created_at,removed_at\n{site},acme,2026-01-01T00:00:00Z,\n"));
    let both = site_requests + host_requests;
    assert_eq!(counted(), (both, both, both), "the attribution counts {site}'s traffic, and the host's recorded before");
    // Regression: the site's row showed the host's attribution as if `site_entities` held it for
    // the site; it now says which host name it was imported under, on both backends. The
    // attribution is listed once, as the site's (the host's traffic counts as the site's).
    for svc in [&on_lake, &on_ch] {
        let report = json(&svc.get(&format!("/v1/reports/entities/Org%20H?{range}&step=5m")).1, "report");
        let rows: Vec<(String, Option<String>)> =
            report["sites"].as_array().unwrap().iter().map(|a| (a["site"].as_str().unwrap().to_owned(), a["attributed_as"].as_str().map(str::to_owned))).collect();
        assert_eq!(rows, [(site.clone(), Some(format!("api.{site}")))], "{report}");
        let csv = svc.get(&format!("/v1/reports/entities/Org%20H?{range}&step=5m&format=csv")).1;
        assert!(csv.starts_with("site,source,confidence,valid_from,valid_to,requests,share,incidents,attributed_as\n"), "{csv}");
        assert!(csv.lines().any(|l| l.starts_with(&format!("{site},whois,")) && l.ends_with(&format!(",api.{site}"))), "{csv}");
        let md = svc.get(&format!("/v1/reports/entities/Org%20H?{range}&step=5m&format=md")).1;
        assert!(md.contains(&format!("| {site} (attributed as api.{site}) | whois |")), "{md}");
    }
    // Regression: once the site was registered, the same file imported again was rewritten to the
    // site and added a second attribution; it is the row the registry holds.
    let again = import("e.csv", format!("site,entity,source,confidence,valid_from,valid_to\napi.{site},Org H,whois,0.9,2026-01-01T00:00:00Z,\n"));
    assert!(again.contains("nothing new"), "{again}");
    // Regression: an attribution of the site itself, ended, next to the open one kept under the
    // host name with the same start and source, replaced it in the entity's reports (which then
    // counted nothing of the site after the end), though traffic share still counted it.
    let direct = format!("{site},Org H,whois,0.9,2026-01-01T00:00:00Z,2026-11-01T00:02:00Z");
    import("d.csv", format!("site,entity,source,confidence,valid_from,valid_to\n{direct}\n"));
    assert_eq!(counted(), (both, both, both), "the attribution kept under api.{site} still holds");
    // Regression: ending it by the name it was imported under (as the export and the reports name
    // it) added an ended attribution of the site instead, and the one kept under the host held on.
    import("end.csv", format!("site,entity,source,confidence,valid_from,valid_to\napi.{site},Org H,whois,0.9,2026-01-01T00:00:00Z,2026-11-01T00:00:00Z\n"));
    // What is left is the site's own attribution, to 00:02: the site's traffic then (the host
    // name's counts only for the attribution kept under it).
    assert!(host_early > 0 && site_early > 0 && site_early < both);
    assert_eq!(counted(), (site_early, both, site_early), "the attribution kept under api.{site} ended at the start of the range");
    // The export imports back unchanged.
    let exported = run_ok(edgelens().args(["registry", "export", "--data-dir", &lake_s]));
    let back = import("export.json", exported);
    assert!(back.contains("nothing new"), "{back}");
}

/// Regression: another entity's attribution kept under `api.<site>` made an attribution of the
/// site itself count the traffic recorded under `api.<site>` (but not `www.<site>`'s), while a tag
/// of the site counted neither: one entity's row changed another's figure. Each attribution counts
/// the names it was imported under, on both backends.
#[test]
fn one_entitys_rows_never_change_anothers_figure() {
    let db = ChDatabase::new(&clickhouse_url(), "edgelens_registry_hosts");
    let tmp = tempfile::tempdir().unwrap();
    let raw = generate(tmp.path(), "baseline", 17, "4m", 100, 3);
    let lake = tmp.path().join("lake");
    let lake_s = lake.to_str().unwrap().to_owned();
    let replay = |file: &std::path::Path| run_ok(edgelens().args(["replay", "--data-dir", &lake_s, "--clickhouse", &db.url]).arg(file).envs(db.env()));
    replay(&raw);
    let mut per_site: BTreeMap<String, u64> = BTreeMap::new();
    for (k, v) in &recount(&raw).rates {
        *per_site.entry(k[1].clone()).or_default() += v[0];
    }
    let (site, site_requests) = per_site.iter().next().map(|(s, n)| (s.clone(), *n)).unwrap();
    // 600 of its events again, without `ZoneName`, under `api.` and `www.` in turn: no site is
    // registered yet, so they are recorded under the host names.
    let host_lines: Vec<String> = std::fs::read_to_string(&raw)
        .unwrap()
        .lines()
        .map(|l| json(l, "event"))
        .filter(|v| v["ZoneName"] == site.as_str())
        .take(600)
        .enumerate()
        .map(|(i, mut v)| {
            let o = v.as_object_mut().unwrap();
            o.remove("ZoneName");
            o.insert("ClientRequestHost".into(), format!("{}.{site}", ["api", "www"][i % 2]).into());
            let ray = format!("{}e", o["RayID"].as_str().unwrap_or_default());
            o.insert("RayID".into(), ray.into());
            v.to_string()
        })
        .collect();
    assert_eq!(host_lines.len(), 600);
    let hosts = tmp.path().join("hosts.ndjson");
    std::fs::write(&hosts, host_lines.join("\n") + "\n").unwrap();
    replay(&hosts);
    let import = |name: &str, text: String| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        run_ok(edgelens().args(["registry", "import"]).arg(&p).args(["--data-dir", &lake_s, "--clickhouse", &db.url]).envs(db.env()));
    };
    // Another entity's attribution kept under `api.<site>`, imported before the site is registered.
    import("h.csv", format!("site,entity,source,confidence,valid_from,valid_to\napi.{site},Host Org,whois,0.9,2026-01-01T00:00:00Z,\n"));
    import("s.csv", format!("site,tenant,created_at,removed_at\n{site},acme,2026-01-01T00:00:00Z,\n"));
    import("e.csv", format!("site,entity,source,confidence,valid_from,valid_to\n{site},Site Org,registrar,0.9,2026-01-01T00:00:00Z,\n"));
    import("t.csv", format!("site,tag,source,valid_from,valid_to\n{site},watchlist,ofac,2026-01-01T00:00:00Z,\n"));
    let api = 300;
    let range = "from=2026-11-01T00:00:00Z&to=2026-11-01T00:05:00Z";
    for svc in [QueryService::start(&["--data-dir", &lake_s, "--pg-listen", "off"], &[]), QueryService::start(&["--clickhouse", &db.url, "--pg-listen", "off"], &db.env())] {
        let share = |by: &str, key: &str| {
            let body = svc.get(&format!("/v1/traffic-share?{range}&step=5m&by={by}")).1;
            json(&body, "share")["series"].as_array().unwrap_or_else(|| panic!("{body}")).iter().find(|s| s["key"] == key).map_or(0, |s| s["requests"].as_u64().unwrap())
        };
        assert_eq!(share("entity", "Site Org"), site_requests, "the site's attribution: the site's traffic");
        assert_eq!(share("entity", "Host Org"), site_requests + api, "the attribution kept under api.{site}: the site's and api.{site}'s");
        assert_eq!(share("tag", "watchlist"), site_requests, "the site's tag, as its attribution");
        let report = json(&svc.get(&format!("/v1/reports/entities/Site%20Org?{range}&step=5m")).1, "report");
        assert_eq!(report["requests"].as_u64(), Some(site_requests), "{report}");
        let report = json(&svc.get(&format!("/v1/reports/entities/Host%20Org?{range}&step=5m")).1, "report");
        assert_eq!(report["requests"].as_u64(), Some(site_requests + api), "{report}");
    }
}

/// The incidents of traffic recorded under a host name, before its site was registered, are the
/// site's for an attribution kept under that host name: in the entity's report and in
/// `/v1/incidents?entity=`, as its traffic is.
#[test]
fn incidents_recorded_under_a_host_name_are_the_entitys() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = generate(tmp.path(), "flood", 5, "6m", 200, 3);
    let lake = tmp.path().join("lake");
    let lake_s = lake.to_str().unwrap().to_owned();
    // Every event under `api.<site>`, the host name: no site is registered yet.
    let lines: Vec<String> = std::fs::read_to_string(&raw)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v = json(l, "event");
            let o = v.as_object_mut().unwrap();
            let site = o.remove("ZoneName").unwrap();
            o.insert("ClientRequestHost".into(), format!("api.{}", site.as_str().unwrap()).into());
            v.to_string()
        })
        .collect();
    let hosts = tmp.path().join("hosts.ndjson");
    std::fs::write(&hosts, lines.join("\n") + "\n").unwrap();
    run_ok(edgelens().args(["replay", "--data-dir", &lake_s]).arg(&hosts));
    let svc = QueryService::start(&["--data-dir", &lake_s, "--pg-listen", "off"], &[]);
    let range = "from=2026-11-01T00:00:00Z&to=2026-11-01T00:06:00Z";
    let all = json(&svc.get(&format!("/v1/incidents?{range}")).1, "incidents");
    let host = all["incidents"][0]["site"].as_str().expect("the flood is an incident").to_owned();
    let site = host.strip_prefix("api.").unwrap().to_owned();
    let of_host = all["incidents"].as_array().unwrap().iter().filter(|i| i["site"] == host.as_str()).count();
    let import = |name: &str, text: String| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        run_ok(edgelens().args(["registry", "import"]).arg(&p).args(["--data-dir", &lake_s]));
    };
    import("e.csv", format!("site,entity,source,confidence,valid_from,valid_to\n{host},Org F,whois,0.9,2026-01-01T00:00:00Z,\n"));
    import("s.csv", format!("site,tenant,created_at,removed_at\n{site},acme,2026-01-01T00:00:00Z,\n"));
    let listed = json(&svc.get(&format!("/v1/incidents?{range}&entity=Org%20F")).1, "entity incidents");
    assert_eq!(listed["total"].as_u64(), Some(of_host as u64), "{listed}");
    assert!(listed["incidents"].as_array().unwrap().iter().all(|i| i["site"] == host.as_str()), "{listed}");
    let report = json(&svc.get(&format!("/v1/reports/entities/Org%20F?{range}&step=1m")).1, "report");
    assert_eq!(report["incidents"].as_array().map(Vec::len), Some(of_host), "{report}");
    assert_eq!(report["sites"][0]["attributed_as"].as_str(), Some(host.as_str()), "{report}");
    let csv = svc.get(&format!("/v1/reports/entities/Org%20F?{range}&step=1m&format=csv")).1;
    let row = csv.lines().nth(1).unwrap_or_default();
    assert_eq!(row.split(',').nth(7), Some(of_host.to_string().as_str()), "the row's incidents: {csv}");
    // The report's other tables as CSV: its traffic per step and its incidents, as in its JSON
    // and in `/v1/incidents?entity=`'s CSV.
    let series = svc.get(&format!("/v1/reports/entities/Org%20F?{range}&step=1m&format=csv&part=series")).1;
    assert_eq!(series.lines().next(), Some("ts,requests,share"), "{series}");
    let rows: Vec<(String, u64, f64)> = series
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_owned(), f[1].parse().unwrap(), f[2].parse().unwrap())
        })
        .collect();
    let expected: Vec<(String, u64, f64)> = report["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["ts"].as_str().unwrap().to_owned(), p["requests"].as_u64().unwrap(), p["share"].as_f64().unwrap()))
        .collect();
    // serde_json reads floats to within an ulp or so (without its float_roundtrip feature).
    let close = rows.len() == expected.len() && rows.iter().zip(&expected).all(|(a, b)| a.0 == b.0 && a.1 == b.1 && (a.2 - b.2).abs() < 1e-12);
    assert!(close, "{series}\n{report}");
    assert_eq!(series.lines().count(), 7, "a row per minute of the 6: {series}");
    assert!(series.lines().skip(1).map(|l| l.split(',').nth(1).unwrap().parse::<u64>().unwrap()).sum::<u64>() == report["requests"].as_u64().unwrap(), "{series}");
    let incidents = svc.get(&format!("/v1/reports/entities/Org%20F?{range}&step=1m&format=csv&part=incidents")).1;
    assert_eq!(incidents, svc.get(&format!("/v1/incidents?{range}&entity=Org%20F&format=csv")).1);
    assert_eq!(incidents.lines().count(), 1 + of_host, "{incidents}");
    assert!(incidents.starts_with("incident_id,site,vector,status,start_ts,"), "{incidents}");
    let (code, _, body) = svc.fetch("GET", &format!("/v1/reports/entities/Org%20F?{range}&format=csv&part=attacks"), &[], None);
    assert_eq!((code, body.contains("expected sites, series or incidents")), (400, true), "{body}");
    let (code, _, body) = svc.fetch("GET", &format!("/v1/reports/entities/Org%20F?{range}&format=md&part=series"), &[], None);
    assert_eq!((code, body.contains("part applies to format=csv")), (400, true), "{body}");
    // Regression: a report from a second inside a minute left out an incident that ended in that
    // minute, which `/v1/incidents?entity=` lists for the same range: its minute rows start at the
    // next minute, and its incidents were cut to them too.
    let end = listed["incidents"].as_array().unwrap().iter().find_map(|i| i["end_ts"].as_str()).expect("the flood ended");
    let end = chrono::DateTime::parse_from_rfc3339(end).unwrap().timestamp();
    let from = if (end - 1) % 60 == 0 { end - 2 } else { end - 1 };
    let fmt = |t: i64| chrono::DateTime::from_timestamp(t, 0).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let inside = format!("from={}&to={}", fmt(from), fmt(from + 300));
    let listed = json(&svc.get(&format!("/v1/incidents?{inside}&entity=Org%20F")).1, "entity incidents");
    let report = json(&svc.get(&format!("/v1/reports/entities/Org%20F?{inside}&step=1m")).1, "report");
    assert!(listed["total"].as_u64() > Some(0), "{listed}");
    assert_eq!(report["incidents"].as_array().map(Vec::len), listed["total"].as_u64().map(|n| n as usize), "{report}\n{listed}");
}

/// Regression: `edgelens demo` answered `POST /v1/registry/import` with 503 ("started without a
/// registry writer"), a retry-later status for what never worked. The demo writes imports into
/// its lake, as `edgelens query` does, and its SQL sees them.
#[test]
fn the_demo_takes_registry_imports_over_http() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = edgelens()
        .args(["demo", "--rps", "50", "--sites", "5", "--pg-listen", "off", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(tmp.path().join("data"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed on drop.
    let svc = QueryService(Some(child), port);
    svc.wait_ready();
    let csv = "site,entity,source,confidence,valid_from,valid_to\nshop.example,Acme Corp,whois,0.9,2026-01-01T00:00:00Z,\n";
    let (code, _, body) = svc.fetch("POST", "/v1/registry/import?file=acme.csv", &["Content-Type: text/csv"], Some(csv));
    assert_eq!(code, 200, "{body}");
    let (code, body) = svc.sql("SELECT site, entity, confidence FROM site_entities", "text/csv");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("shop.example") && body.contains("Acme Corp"), "{body}");
}
