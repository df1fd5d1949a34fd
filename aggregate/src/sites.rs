//! The site registry of the lake, read into [`HostSites`] (the host → site mapping the pipelines
//! share, `edgelens_schemas::sites`): [`from_lake`] when a pipeline or receiver starts,
//! [`reload_from_lake`] again and again while it runs ([`watch`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, StringArray, TimestampMicrosecondArray};
use edgelens_schemas::tables::{SITES, VERSION_COLUMN};

pub use edgelens_schemas::sites::{HostSites, Sites};

use crate::error::SinkError;
use crate::sink::parquet::ParquetLake;

/// The sites of the lake at `dir` (none when it has no registry).
pub fn from_lake(dir: &Path) -> Result<HostSites, SinkError> {
    let s = HostSites::default();
    reload_from_lake(&s, dir)?;
    Ok(s)
}

/// Read the lake's `sites` table into `host_sites` again; returns how many sites it has.
pub fn reload_from_lake(host_sites: &HostSites, dir: &Path) -> Result<usize, SinkError> {
    // (site, created_at) → (version, removal): the current version of a registration is its
    // latest import, and among versions imported together (or before imports were stamped)
    // the latest removal, a removal before none, as the lake's `sites` view chooses.
    let mut current: HashMap<(String, i64), (Option<i64>, Option<i64>)> = HashMap::new();
    for b in ParquetLake::read_table(dir, &SITES)? {
        let col = |name: &str| b.column_by_name(name).ok_or_else(|| SinkError::Encode(format!("sites has no column {name}")));
        let times = |name: &str| -> Result<Option<&TimestampMicrosecondArray>, SinkError> {
            b.column_by_name(name)
                .map(|c| c.as_any().downcast_ref::<TimestampMicrosecondArray>().ok_or_else(|| SinkError::Encode(format!("sites.{name} is not a timestamp"))))
                .transpose()
        };
        let site = col("site")?.as_any().downcast_ref::<StringArray>().ok_or_else(|| SinkError::Encode("sites.site is not a string".into()))?;
        let removed = times("removed_at")?.ok_or_else(|| SinkError::Encode("sites has no column removed_at".into()))?;
        let created = times("created_at")?.ok_or_else(|| SinkError::Encode("sites has no column created_at".into()))?;
        // Files written before imports were stamped have no `imported_at`.
        let imported = times(VERSION_COLUMN)?;
        let value = |a: Option<&TimestampMicrosecondArray>, i: usize| a.filter(|a| !a.is_null(i)).map(|a| a.value(i));
        for i in (0..b.num_rows()).filter(|&i| !site.is_null(i)) {
            let version = (value(imported, i), value(Some(removed), i));
            let rank = |(at, end): (Option<i64>, Option<i64>)| (at, end.map_or((false, 0), |e| (true, e)));
            let key = (site.value(i).to_owned(), value(Some(created), i).unwrap_or(0));
            match current.get_mut(&key) {
                Some(v) if rank(*v) >= rank(version) => {}
                Some(v) => *v = version,
                None => {
                    current.insert(key, version);
                }
            }
        }
    }
    // A site registered more than once (by one tenant after another) maps until its latest
    // removal, or always while one registration is open.
    let mut sites = Sites::new();
    for ((site, _), (_, removed)) in current {
        let until = removed.unwrap_or(i64::MAX);
        let at = sites.entry(site).or_insert(until);
        *at = (*at).max(until);
    }
    let n = sites.len();
    host_sites.replace(sites);
    Ok(n)
}

/// How often a running pipeline or receiver reads the site registry again.
pub const REGISTRY_EVERY: Duration = Duration::from_secs(30);

/// A thread of its own that reads the lake's site registry into `sites` now and every
/// [`REGISTRY_EVERY`] until `done` (a registry import reaches running aggregators and receivers
/// without a restart). The first read happens before this returns, so what starts next starts
/// with it.
pub fn watch(lake: PathBuf, sites: HostSites, done: Arc<AtomicBool>) {
    let read = move |sites: &HostSites| match reload_from_lake(sites, &lake) {
        Ok(n) => tracing::debug!(sites = n, "site registry read"),
        Err(e) => tracing::warn!(error = %e, "site registry unreadable; host names keep the sites they had"),
    };
    read(&sites);
    let spawned = std::thread::Builder::new().name("edgelens-registry".into()).spawn(move || {
        let mut next = Instant::now() + REGISTRY_EVERY;
        while !done.load(Ordering::Relaxed) {
            if Instant::now() >= next {
                read(&sites);
                next = Instant::now() + REGISTRY_EVERY;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no registry thread; the site registry is read only at start");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgelens_schemas::event::parse_line;

    fn site_of(sites: &HostSites, line: &str) -> String {
        let mut ev = parse_line(line.as_bytes()).unwrap();
        sites.apply(&mut ev);
        ev.site.into_owned()
    }

    #[test]
    fn the_lakes_registry_maps_until_a_site_is_removed() {
        use edgelens_schemas::registry::{parse, Format, RegistryImport};
        use crate::sink::OffsetSpan;
        let dir = tempfile::tempdir().unwrap();
        assert!(from_lake(dir.path()).unwrap().is_empty(), "a lake without a registry");
        let csv = "site,tenant,created_at,removed_at\nshop.example,t1,2026-01-01T00:00:00Z,\nold.example,t1,2020-01-01T00:00:00Z,2026-11-01T00:00:10Z\n";
        let import: RegistryImport = parse(csv, Format::Csv, &Default::default()).unwrap();
        let mut lake = ParquetLake::open(dir.path()).unwrap();
        for (table, batch) in import.batches(1_000).unwrap() {
            lake.write_table(table, &batch, &OffsetSpan::new("registry-test", 0, 0, 1)).unwrap();
        }
        let sites = from_lake(dir.path()).unwrap();
        // 2026-11-01T00:00:00Z and 20 s later.
        let line = |host: &str, ts: u64| format!(r#"{{"ClientRequestHost":"{host}","ClientIP":"192.0.2.1","EdgeStartTimestamp":{ts},"EdgeResponseStatus":200}}"#);
        assert_eq!(site_of(&sites, &line("www.shop.example", 1_793_491_220)), "shop.example");
        assert_eq!(site_of(&sites, &line("www.old.example", 1_793_491_200)), "old.example", "before its removal");
        assert_eq!(site_of(&sites, &line("www.old.example", 1_793_491_220)), "www.old.example", "after it");

        // A later import is the current version of its sites: shop.example removed, old.example
        // registered again without a removal.
        let csv = "site,tenant,created_at,removed_at
shop.example,t1,2026-01-01T00:00:00Z,2026-11-01T00:00:10Z
old.example,t1,2020-01-01T00:00:00Z,
";
        let import: RegistryImport = parse(csv, Format::Csv, &Default::default()).unwrap();
        for (table, batch) in import.batches(2_000).unwrap() {
            lake.write_table(table, &batch, &OffsetSpan::new("registry-test-2", 0, 0, 1)).unwrap();
        }
        reload_from_lake(&sites, dir.path()).unwrap();
        assert_eq!(site_of(&sites, &line("www.shop.example", 1_793_491_200)), "shop.example", "before its removal");
        assert_eq!(site_of(&sites, &line("www.shop.example", 1_793_491_220)), "www.shop.example", "after it");
        assert_eq!(site_of(&sites, &line("www.old.example", 1_793_491_220)), "old.example", "no longer removed");

        // Requests from before a registration's created_at map too: logs replayed once a site is
        // registered (a backfill) count under it.
        let csv = "site,tenant,created_at,removed_at\nlate.example,t1,2026-11-01T00:00:30Z,\n";
        let import: RegistryImport = parse(csv, Format::Csv, &Default::default()).unwrap();
        for (table, batch) in import.batches(3_000).unwrap() {
            lake.write_table(table, &batch, &OffsetSpan::new("registry-test-3", 0, 0, 1)).unwrap();
        }
        reload_from_lake(&sites, dir.path()).unwrap();
        assert_eq!(site_of(&sites, &line("www.late.example", 1_793_491_205)), "late.example", "before its created_at");
    }
}
