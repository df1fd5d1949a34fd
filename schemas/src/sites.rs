//! Host names → registered sites. A Logpush line without `ZoneName` is counted under its
//! `ClientRequestHost`; when the site registry (`sites`, imported with `edgelens registry
//! import`) knows the host or one of its parent domains, the line counts under that site
//! instead (`www.shop.example`, `api.shop.example` → `shop.example`), the same mapping the
//! registry import applies to its own rows.
//!
//! [`HostSites`] is the set of registered sites a process shares: the aggregators count a line
//! under the site it maps to, and ingest keys the line's message by that site's partition key
//! ([`crate::suffix::partition_key`]). Who holds it loads it from the lake's `sites` table and
//! reloads it while running (`edgelens_aggregate::sites`), so sites registered later apply from
//! then on (lines counted before keep the site they were counted under). Only lines whose site
//! came from the host are looked up; a site that was removed (`removed_at`) maps the hosts of
//! requests made before its removal only.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use crate::event::EdgeEvent;
use crate::registry::registered_site;

/// The registered sites, shared by every pipeline and receiver of a process (cloning shares them).
#[derive(Debug, Clone, Default)]
pub struct HostSites {
    sites: Arc<RwLock<Arc<Sites>>>,
}

/// Registered site → when it was removed (µs; `i64::MAX` while it is not).
pub type Sites = HashMap<String, i64>;

impl HostSites {
    /// Sites registered and never removed.
    pub fn new(sites: impl IntoIterator<Item = String>) -> Self {
        let s = Self::default();
        s.replace(sites.into_iter().map(|site| (site, i64::MAX)).collect());
        s
    }

    /// Make `sites` (registered site → when it was removed, µs; `i64::MAX` while it is not) the
    /// registered sites.
    pub fn replace(&self, sites: Sites) {
        *self.sites.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(sites);
    }

    /// The sites registered now, not changed by later [`Self::replace`]s of `self`: what a
    /// receiver keys a batch by, kept for its resends.
    pub fn snapshot(&self) -> Self {
        let now = Arc::clone(&self.sites.read().unwrap_or_else(PoisonError::into_inner));
        Self { sites: Arc::new(RwLock::new(now)) }
    }

    /// Whether `self` and `other` hold the same registry now (one read of the lake's, not two
    /// equal ones).
    pub fn same_as(&self, other: &Self) -> bool {
        let current = |s: &Self| Arc::clone(&s.sites.read().unwrap_or_else(PoisonError::into_inner));
        Arc::ptr_eq(&current(self), &current(other))
    }

    /// How many sites are registered (removed ones included).
    pub fn len(&self) -> usize {
        self.sites.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether no site is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
    use crate::event::parse_line;

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
        // A snapshot keeps the registry it was taken of.
        let kept = sites.snapshot();
        assert!(kept.same_as(&sites) && shared.same_as(&sites));
        sites.replace(Sites::from([("shop.example".to_owned(), i64::MAX)]));
        assert!(!kept.same_as(&sites) && shared.same_as(&sites));
        assert_eq!(site_of(&kept, &line("", "www.other.example")), "other.example");
        assert_eq!(site_of(&kept, &line("", "www.shop.example")), "www.shop.example");
    }
}
