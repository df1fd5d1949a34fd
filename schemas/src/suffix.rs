//! The key a site's events are partitioned by on the `edge-requests` topic: the site's
//! registrable domain — its public suffix plus one label (`www.shop.example.co.uk` →
//! `example.co.uk`) — after the ICANN section of the Public Suffix List
//! (`schemas/data/public_suffixes.dat`, written by `schemas/data/public_suffixes.py`).
//!
//! A line's site is its `ZoneName`, or else its host; the aggregators count a host under the
//! registered site it lies below (`www.shop.example`, `api.shop.example` → `shop.example`, see
//! [`crate::sites::HostSites`]). Keying by the site itself would put a site's hosts on several
//! partitions, and each partition's detector would see part of the site's traffic. A site whose
//! registrable domain is at or above it — a zone below a public suffix, as nearly every site is —
//! has the key of every host below it, whatever the registry says and whenever it changes. Sites
//! below one registrable domain (`eu.shop.example`, `us.shop.example`) share a partition.
//!
//! That fails for a site that is a public suffix itself (`nhs.uk`: `www.nhs.uk` is a registrable
//! domain of its own) or has list rules below it (`kobe.jp` under `*.kobe.jp`): no key of the host
//! alone tells such a site's hosts from the sites of a suffix. Ingest therefore keys a line by its
//! host's registered site first ([`crate::sites::HostSites::apply`], then [`partition_key`]), and
//! these sites' hosts are together while the receiver's registry knows them.
//!
//! Only the ICANN section is used: a site registered at a private suffix (`workers.dev`) keys its
//! hosts (`a.workers.dev`) with itself. A name that is a public suffix itself, or an IPv4
//! literal, is its own key.

use std::collections::HashSet;
use std::sync::LazyLock;

/// The list's rules: plain, wildcard (`*.kobe.jp`, kept as `kobe.jp`) and exception
/// (`!city.kobe.jp`, kept as `city.kobe.jp`).
struct Rules {
    plain: HashSet<&'static str>,
    wildcard: HashSet<&'static str>,
    exception: HashSet<&'static str>,
}

static RULES: LazyLock<Rules> = LazyLock::new(|| {
    let mut r = Rules { plain: HashSet::new(), wildcard: HashSet::new(), exception: HashSet::new() };
    for line in include_str!("../data/public_suffixes.dat").lines().filter(|l| !l.is_empty() && !l.starts_with("//")) {
        if let Some(rule) = line.strip_prefix('!') {
            r.exception.insert(rule);
        } else if let Some(rule) = line.strip_prefix("*.") {
            r.wildcard.insert(rule);
        } else {
            r.plain.insert(line);
        }
    }
    r
});

/// The registrable domain of `name` (lower case, no trailing dot, as site names are): its
/// public suffix plus one label; `None` when `name` is a public suffix itself.
pub fn registrable_domain(name: &str) -> Option<&str> {
    let rules = &*RULES;
    // Suffixes from the top-level label down: `example`, `shop.example`, `www.shop.example`.
    // The longest public one is the public suffix; with no rule, the top-level label is (the
    // list's default rule `*`). An exception makes its parent the public suffix. Offsets are of
    // label starts: `public`, the public suffix so far; `parent`, the suffix checked last.
    let tld_dot = name.rfind('.')?;
    let mut public = tld_dot + 1;
    let mut parent = public;
    loop {
        let start = name[..parent - 1].rfind('.').map_or(0, |i| i + 1);
        let suffix = &name[start..];
        if rules.exception.contains(suffix) {
            public = parent;
            break;
        }
        if rules.plain.contains(suffix) || rules.wildcard.contains(&name[parent..]) {
            public = start;
        }
        if start == 0 {
            break;
        }
        parent = start;
    }
    let public = public.checked_sub(1)?;
    Some(&name[name[..public].rfind('.').map_or(0, |i| i + 1)..])
}

/// The partition key of the events of `site`: its registrable domain, or the site itself when
/// it is a public suffix or an IPv4 literal.
pub fn partition_key(site: &str) -> &str {
    if site.rsplit('.').next().is_some_and(|tld| !tld.is_empty() && tld.bytes().all(|b| b.is_ascii_digit())) {
        return site;
    }
    registrable_domain(site).unwrap_or(site)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Cases of the list's own test file (publicsuffix.org `tests.txt`), those of ICANN rules.
    #[test]
    fn registrable_domains_as_the_list_defines_them() {
        let cases: &[(&str, Option<&str>)] = &[
            ("com", None),
            ("example.com", Some("example.com")),
            ("www.example.com", Some("example.com")),
            // Unlisted top-level domain: the default rule `*`.
            ("example", None),
            ("example.example", Some("example.example")),
            ("b.example.example", Some("example.example")),
            ("a.b.example.example", Some("example.example")),
            // One- and two-level rules.
            ("biz", None),
            ("domain.biz", Some("domain.biz")),
            ("b.domain.biz", Some("domain.biz")),
            ("test.ac", Some("test.ac")),
            ("co.uk", None),
            ("example.co.uk", Some("example.co.uk")),
            ("www.example.co.uk", Some("example.co.uk")),
            // Wildcards and exceptions.
            ("mm", None),
            ("c.mm", None),
            ("b.c.mm", Some("b.c.mm")),
            ("a.b.c.mm", Some("b.c.mm")),
            ("jp", None),
            ("test.jp", Some("test.jp")),
            ("www.test.jp", Some("test.jp")),
            ("ac.jp", None),
            ("test.ac.jp", Some("test.ac.jp")),
            ("kyoto.jp", None),
            ("test.kyoto.jp", Some("test.kyoto.jp")),
            ("ide.kyoto.jp", None),
            ("b.ide.kyoto.jp", Some("b.ide.kyoto.jp")),
            ("a.b.ide.kyoto.jp", Some("b.ide.kyoto.jp")),
            ("c.kobe.jp", None),
            ("b.c.kobe.jp", Some("b.c.kobe.jp")),
            ("a.b.c.kobe.jp", Some("b.c.kobe.jp")),
            ("city.kobe.jp", Some("city.kobe.jp")),
            ("www.city.kobe.jp", Some("city.kobe.jp")),
            ("ck", None),
            ("test.ck", None),
            ("b.test.ck", Some("b.test.ck")),
            ("www.ck", Some("www.ck")),
            ("www.www.ck", Some("www.ck")),
            ("us", None),
            ("test.us", Some("test.us")),
            ("ak.us", None),
            ("test.ak.us", Some("test.ak.us")),
            ("k12.ak.us", None),
            ("test.k12.ak.us", Some("test.k12.ak.us")),
            // IDNA (ASCII form): 食狮.com.cn, 食狮.公司.cn, 中国.
            ("xn--85x722f.com.cn", Some("xn--85x722f.com.cn")),
            ("www.xn--85x722f.xn--55qx5d.cn", Some("xn--85x722f.xn--55qx5d.cn")),
            ("xn--55qx5d.cn", None),
            ("shishi.xn--fiqs8s", Some("shishi.xn--fiqs8s")),
            ("xn--fiqs8s", None),
        ];
        for &(name, want) in cases {
            assert_eq!(registrable_domain(name), want, "{name}");
        }
    }

    #[test]
    fn partition_keys() {
        assert_eq!(partition_key("api.shop.example"), "shop.example");
        assert_eq!(partition_key("eu.shop.example.co.uk"), "example.co.uk");
        assert_eq!(partition_key("co.uk"), "co.uk", "a public suffix is its own key");
        assert_eq!(partition_key("localhost"), "localhost");
        assert_eq!(partition_key("192.0.2.10"), "192.0.2.10", "an IPv4 literal");
        assert_eq!(partition_key("a.workers.dev"), "workers.dev", "private suffixes are not used");
    }

    proptest! {
        /// Every host below a site has the site's key: a site's events share one partition,
        /// whichever of its hosts or its zone name they carry.
        #[test]
        fn hosts_below_a_site_have_its_key(
            site in prop::sample::select(vec!["shop.example", "example.co.uk", "b.c.kobe.jp", "city.kobe.jp", "test.k12.ak.us", "eu.shop.example", "www.ck", "x.github.io"]),
            labels in prop::collection::vec("[a-z0-9-]{1,8}", 0..4),
        ) {
            let mut host = labels.join(".");
            if !host.is_empty() {
                host.push('.');
            }
            host.push_str(site);
            prop_assert_eq!(partition_key(&host), partition_key(site));
        }

        /// Any name has a key: itself or a suffix of it starting at a label.
        #[test]
        fn a_key_is_a_suffix_of_labels(name in "[a-z.]{0,12}(\\.(jp|kobe\\.jp|ck|uk|co\\.uk|[0-9]{1,3}))?") {
            let key = partition_key(&name);
            prop_assert!(name.ends_with(key));
            prop_assert!(key.len() == name.len() || name.as_bytes()[name.len() - key.len() - 1] == b'.', "{} of {}", key, name);
        }
    }
}
