//! Host names → registered sites. A Logpush line without `ZoneName` is counted under its
//! `ClientRequestHost`; when the site registry (`sites`, imported with `edgelens registry
//! import`) knows the host or one of its parent domains, the line counts under that site
//! instead (`www.shop.example`, `api.shop.example` → `shop.example`), the same mapping the
//! registry import applies to its own rows.
//!
//! [`HostSites`] is the set of registered sites the pipelines share: loaded from the lake's
//! `sites` table when a pipeline starts, and reloaded by the aggregator while it runs, so sites
//! registered later apply from then on (lines counted before keep the site they were counted
//! under). Only lines whose site came from the host are looked up; a site that was removed
//! (`removed_at`) maps the hosts of requests made before its removal only.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use arrow::array::{Array, StringArray, TimestampMicrosecondArray};
use edgelens_schemas::event::EdgeEvent;
use edgelens_schemas::registry::registered_site;
use edgelens_schemas::tables::{SITES, VERSION_COLUMN};

use crate::error::SinkError;
use crate::sink::parquet::ParquetLake;

/// The registered sites, shared by every pipeline of a process (cloning shares them).
#[derive(Debug, Clone, Default)]
pub struct HostSites {
    sites: Arc<RwLock<Arc<Sites>>>,
}

/// Registered site → when it was removed (µs; `i64::MAX` while it is not).
type Sites = HashMap<String, i64>;

impl HostSites {
    /// Sites registered and never removed.
    pub fn new(sites: impl IntoIterator<Item = String>) -> Self {
        let s = Self::default();
        s.replace(sites.into_iter().map(|site| (site, i64::MAX)).collect());
        s
    }

    /// The sites of the lake at `dir` (none when it has no registry).
    pub fn from_lake(dir: &Path) -> Result<Self, SinkError> {
        let s = Self::default();
        s.reload_from_lake(dir)?;
        Ok(s)
    }

    /// Read the lake's `sites` table again; returns how many sites it has.
    pub fn reload_from_lake(&self, dir: &Path) -> Result<usize, SinkError> {
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
        self.replace(sites);
        Ok(n)
    }

    fn replace(&self, sites: Sites) {
        *self.sites.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(sites);
    }

    /// Count `ev` under the registered site of its host, if its site is a host with one
    /// (registered and not removed before the request).
    #[inline]
    pub fn apply(&self, ev: &mut EdgeEvent<'_>) {
        if ev.site_from_host {
            self.map_host(ev);
        }
    }

    fn map_host(&self, ev: &mut EdgeEvent<'_>) {
        let sites = Arc::clone(&self.sites.read().unwrap_or_else(PoisonError::into_inner));
        let at_us = ev.ts / 1_000;
        if let Some(site) = registered_site(&ev.site, |s| sites.get(s).is_some_and(|&until| at_us < until)) {
            if site.len() != ev.site.len() {
                ev.site = site.to_owned().into();
            }
        }
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
    fn hosts_count_under_their_registered_site() {
        let line = |zone: &str, host: &str| {
            let zone = if zone.is_empty() { String::new() } else { format!(r#""ZoneName":"{zone}","#) };
            format!(r#"{{{zone}"ClientRequestHost":"{host}","ClientIP":"192.0.2.1","EdgeStartTimestamp":1793491200,"EdgeResponseStatus":200}}"#)
        };
        let sites = HostSites::new(["shop.example".to_owned()]);
        assert_eq!(site_of(&sites, &line("", "www.shop.example")), "shop.example");
        assert_eq!(site_of(&sites, &line("", "API.Shop.Example:443")), "shop.example");
        assert_eq!(site_of(&sites, &line("", "shop.example")), "shop.example");
        assert_eq!(site_of(&sites, &line("", "www.other.example")), "www.other.example", "not registered: the host");
        assert_eq!(site_of(&sites, &line("sub.shop.example", "www.shop.example")), "sub.shop.example", "ZoneName is the site");
        assert_eq!(site_of(&HostSites::default(), &line("", "www.shop.example")), "www.shop.example", "no registry");
        // Clones share the set: a reload reaches every pipeline.
        let shared = sites.clone();
        sites.replace(Sites::from([("other.example".to_owned(), i64::MAX)]));
        assert_eq!(site_of(&shared, &line("", "www.other.example")), "other.example");
    }

    #[test]
    fn the_lakes_registry_maps_until_a_site_is_removed() {
        use edgelens_schemas::registry::{parse, Format, RegistryImport};
        use crate::sink::OffsetSpan;
        let dir = tempfile::tempdir().unwrap();
        assert!(HostSites::from_lake(dir.path()).unwrap().sites.read().unwrap().is_empty(), "a lake without a registry");
        let csv = "site,tenant,created_at,removed_at\nshop.example,t1,2026-01-01T00:00:00Z,\nold.example,t1,2020-01-01T00:00:00Z,2026-11-01T00:00:10Z\n";
        let import: RegistryImport = parse(csv, Format::Csv, &Default::default()).unwrap();
        let mut lake = ParquetLake::open(dir.path()).unwrap();
        for (table, batch) in import.batches(1_000).unwrap() {
            lake.write_table(table, &batch, &OffsetSpan::new("registry-test", 0, 0, 1)).unwrap();
        }
        let sites = HostSites::from_lake(dir.path()).unwrap();
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
        sites.reload_from_lake(dir.path()).unwrap();
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
        sites.reload_from_lake(dir.path()).unwrap();
        assert_eq!(site_of(&sites, &line("www.late.example", 1_793_491_205)), "late.example", "before its created_at");
    }
}
