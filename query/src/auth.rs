//! Who is asking: bearer tokens (HTTP) and passwords (Postgres wire) from the `[[query.tokens]]`
//! config, each naming an admin or a tenant, and the tenant's sites from the `sites` registry.
//!
//! - No tokens configured: auth is off and every caller is an admin (the embedded demo, a
//!   loopback-only service). With tokens, every `/v1/...` request needs `Authorization: Bearer
//!   <token>`; `/`, `/healthz`, `/readyz` and `/metrics` stay open (the dashboard page itself holds
//!   no data; its API calls carry the token).
//! - A tenant sees the rows of the sites the `sites` table assigns to it (every row naming the
//!   tenant, removed sites included, so history stays visible), and the registry's rows kept
//!   under host names of those sites; looked up when first needed and cached for [`SCOPE_TTL`].
//!   Everything it reads goes through a tenant [`View`](crate::backend::View).
//! - Token comparison takes the same time whatever the first differing byte.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::backend::{Backend, View};
use crate::error::{QueryError, Result};
use crate::lake::{column_i64, column_string};
use crate::tenant_sql::{SitePeriod, TenantScope};

/// How long a tenant's site list is reused before the registry is read again.
pub const SCOPE_TTL: Duration = Duration::from_secs(10);

/// Shortest accepted token.
pub const MIN_TOKEN_LEN: usize = 16;

/// One `[[query.tokens]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds the token: in logs, and the Postgres user name.
    pub name: String,
    /// The bearer token, also the Postgres password of user `name`.
    pub token: String,
    /// The tenant whose sites the token sees; without it the token is an admin's (sees all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Sees everything; `name` is the token's name (`anonymous` with auth off).
    Admin { name: String },
    /// Sees its tenant's sites only.
    Tenant { name: String, tenant: String },
}

impl Principal {
    pub fn name(&self) -> &str {
        match self {
            Principal::Admin { name } | Principal::Tenant { name, .. } => name,
        }
    }
}

/// The configured tokens and the tenants' cached site lists.
#[derive(Debug, Default)]
pub struct Auth {
    tokens: Vec<TokenConfig>,
    scopes: Mutex<HashMap<String, (Instant, Arc<TenantScope>)>>,
}

impl Auth {
    /// Check the configured tokens: names and tokens unique, tokens long enough, tenants named.
    pub fn new(tokens: Vec<TokenConfig>) -> Result<Auth> {
        let mut problems = Vec::new();
        for (i, t) in tokens.iter().enumerate() {
            if t.name.trim().is_empty() {
                problems.push(format!("token #{}: empty name", i + 1));
            }
            if t.token.len() < MIN_TOKEN_LEN {
                problems.push(format!("token {:?}: shorter than {MIN_TOKEN_LEN} characters", t.name));
            }
            if t.tenant.as_deref().is_some_and(|x| x.trim().is_empty()) {
                problems.push(format!("token {:?}: empty tenant (leave it out for an admin token)", t.name));
            }
            if tokens[..i].iter().any(|o| o.name == t.name) {
                problems.push(format!("token name {:?} appears twice", t.name));
            }
            if tokens[..i].iter().any(|o| o.token == t.token) {
                problems.push(format!("token {:?} reuses the token of another entry", t.name));
            }
        }
        if !problems.is_empty() {
            return Err(QueryError::InvalidParameter(format!("[[query.tokens]]: {}", problems.join("; "))));
        }
        Ok(Auth { tokens, scopes: Mutex::default() })
    }

    /// Whether callers must present a token.
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The caller of an HTTP request, from its `Authorization` header value.
    pub fn from_header(&self, authorization: Option<&str>) -> Result<Principal> {
        if !self.enabled() {
            return Ok(Principal::Admin { name: "anonymous".into() });
        }
        let Some(value) = authorization else {
            return Err(QueryError::Unauthorized("this service needs a bearer token (Authorization: Bearer <token>)".into()));
        };
        // The scheme name is case-insensitive (RFC 7235 §2.1).
        let token = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token)
            .ok_or_else(|| QueryError::Unauthorized("the Authorization header must be 'Bearer <token>'".into()))?;
        self.find(|t| constant_time_eq(t.token.trim().as_bytes(), token.trim().as_bytes()))
            .ok_or_else(|| QueryError::Unauthorized("unknown token".into()))
    }

    /// The caller of a Postgres connection, from its user name and password.
    pub fn from_password(&self, user: &str, password: &str) -> Result<Principal> {
        if !self.enabled() {
            return Ok(Principal::Admin { name: user.to_owned() });
        }
        // Every entry is compared, so the time taken does not say which user exists.
        let mut found = None;
        for t in &self.tokens {
            let ok = constant_time_eq(t.token.as_bytes(), password.as_bytes()) & (t.name == user);
            if ok {
                found = Some(principal_of(t));
            }
        }
        found.ok_or_else(|| QueryError::Unauthorized(format!("password authentication failed for user {user:?}")))
    }

    fn find(&self, matches: impl Fn(&TokenConfig) -> bool) -> Option<Principal> {
        let mut found = None;
        for t in &self.tokens {
            if matches(t) && found.is_none() {
                found = Some(principal_of(t));
            }
        }
        found
    }

    /// The tenant scope of `principal` (`None` for an admin), from the `sites` registry.
    pub async fn scope(&self, backend: &Backend, principal: &Principal) -> Result<Option<Arc<TenantScope>>> {
        let Principal::Tenant { tenant, .. } = principal else {
            return Ok(None);
        };
        if let Some((at, scope)) = self.scopes.lock().expect("scope cache").get(tenant)
            && at.elapsed() < SCOPE_TTL
        {
            return Ok(Some(Arc::clone(scope)));
        }
        let d = backend.dialect();
        // Every registration of the tenant's sites, whoever holds it: a registration lasts until
        // its `removed_at` or the site's next registration, whichever comes first, so a site
        // registered for another tenant later is no longer this one's from then on.
        let sql = format!(
            "SELECT DISTINCT site, tenant, {} AS from_us, {} AS to_us FROM sites WHERE site IN (SELECT site FROM sites WHERE tenant = {t}) ORDER BY site, from_us",
            d.epoch_us("created_at"),
            d.epoch_us("removed_at"),
            t = d.string(tenant)
        );
        let mut registrations: Vec<(String, String, i64, Option<i64>)> = Vec::new();
        for batch in backend.query(&sql).await?.batches {
            let (site, holder) = (column_string(&batch, "site")?, column_string(&batch, "tenant")?);
            let (from, to) = (column_i64(&batch, "from_us")?, column_i64(&batch, "to_us")?);
            for i in 0..batch.num_rows() {
                let to = (!arrow::array::Array::is_null(&to, i)).then(|| to.value(i));
                registrations.push((site.value(i).to_owned(), holder.value(i).to_owned(), from.value(i), to));
            }
        }
        let sites = own_periods(&registrations, tenant);
        // Registry rows kept under a host name of one of its sites (imported before the site was
        // registered) count as the site's, and so are the tenant's (its other tables' rows under
        // such a host name are not).
        let hosts = crate::registry_api::hosts_of_sites(View::all(backend), &["site_entities", "site_tags"]).await?;
        // (Each host once: `hosts_of_sites` lists distinct pairs, and a host belongs to one site.)
        let registry_hosts: Vec<(String, String)> = hosts.into_iter().filter(|(_, site)| sites.iter().any(|p| &p.site == site)).collect();
        let scope = Arc::new(TenantScope { tenant: tenant.clone(), sites, registry_hosts });
        self.scopes.lock().expect("scope cache").insert(tenant.clone(), (Instant::now(), Arc::clone(&scope)));
        Ok(Some(scope))
    }
}

/// The periods `tenant` held sites, from `(site, tenant, from_us, to_us)` registrations: each of
/// its registrations from its start until its end or the next registration of the site.
fn own_periods(registrations: &[(String, String, i64, Option<i64>)], tenant: &str) -> Vec<SitePeriod> {
    // By site and start: a registration's successor is the next later one of its site.
    let mut sorted: Vec<_> = registrations.iter().collect();
    sorted.sort_by(|a, b| (&a.0, a.2).cmp(&(&b.0, b.2)));
    let mut out = Vec::new();
    for (i, (site, holder, from, to)) in sorted.iter().map(|r| (&r.0, &r.1, r.2, r.3)).enumerate() {
        if holder != tenant {
            continue;
        }
        let next = sorted[i + 1..].iter().take_while(|n| n.0 == *site).find(|n| n.2 > from).map(|n| n.2);
        out.push(SitePeriod { site: site.clone(), from_us: Some(from), to_us: [to, next].into_iter().flatten().min() });
    }
    out
}

fn principal_of(t: &TokenConfig) -> Principal {
    match &t.tenant {
        Some(tenant) => Principal::Tenant { name: t.name.clone(), tenant: tenant.clone() },
        None => Principal::Admin { name: t.name.clone() },
    }
}

/// Equality whose time depends on the lengths only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registration_lasts_until_its_end_or_the_next_one() {
        let r = |site: &str, t: &str, from: i64, to: Option<i64>| (site.to_owned(), t.to_owned(), from, to);
        let regs = [r("a", "acme", 0, None), r("a", "globex", 100, None), r("a", "acme", 200, Some(300)), r("b", "acme", 50, Some(60)), r("b", "globex", 70, None)];
        let p = |site: &str, from: i64, to: Option<i64>| SitePeriod { site: site.into(), from_us: Some(from), to_us: to };
        assert_eq!(own_periods(&regs, "acme"), [p("a", 0, Some(100)), p("a", 200, Some(300)), p("b", 50, Some(60))]);
        assert_eq!(own_periods(&regs, "globex"), [p("a", 100, Some(200)), p("b", 70, None)]);
    }

    fn auth() -> Auth {
        Auth::new(vec![
            TokenConfig { name: "ops".into(), token: "admin-token-0123456789".into(), tenant: None },
            TokenConfig { name: "acme-ro".into(), token: "tenant-token-0123456789".into(), tenant: Some("acme".into()) },
        ])
        .unwrap()
    }

    #[test]
    fn bearer_tokens_name_the_caller() {
        let a = auth();
        assert_eq!(a.from_header(Some("Bearer admin-token-0123456789")).unwrap(), Principal::Admin { name: "ops".into() });
        assert_eq!(
            a.from_header(Some("Bearer tenant-token-0123456789")).unwrap(),
            Principal::Tenant { name: "acme-ro".into(), tenant: "acme".into() }
        );
        // Regression: `BEARER` was refused; the scheme is case-insensitive.
        for scheme in ["bearer", "BEARER", "BeArEr"] {
            assert_eq!(a.from_header(Some(&format!("{scheme} admin-token-0123456789"))).unwrap(), Principal::Admin { name: "ops".into() });
        }
        for bad in [None, Some("Bearer nope-nope-nope-nope"), Some("Basic b3BzOnB3"), Some("Bearer "), Some("admin-token-0123456789"), Some("Bearerx admin-token-0123456789")] {
            let e = a.from_header(bad).unwrap_err();
            assert_eq!(e.http_status(), 401, "{bad:?}");
        }
        let off = Auth::new(Vec::new()).unwrap();
        assert!(matches!(off.from_header(None).unwrap(), Principal::Admin { .. }));
    }

    #[test]
    fn passwords_belong_to_their_user() {
        let a = auth();
        assert!(matches!(a.from_password("acme-ro", "tenant-token-0123456789").unwrap(), Principal::Tenant { .. }));
        assert!(a.from_password("ops", "tenant-token-0123456789").is_err());
        assert!(a.from_password("acme-ro", "").is_err());
    }

    #[test]
    fn bad_token_configs_are_refused() {
        let t = |name: &str, token: &str, tenant: Option<&str>| TokenConfig {
            name: name.into(),
            token: token.into(),
            tenant: tenant.map(Into::into),
        };
        assert!(Auth::new(vec![t("a", "short", None)]).is_err());
        assert!(Auth::new(vec![t("a", "0123456789abcdef", None), t("a", "0123456789abcdeg", None)]).is_err());
        assert!(Auth::new(vec![t("a", "0123456789abcdef", None), t("b", "0123456789abcdef", None)]).is_err());
        assert!(Auth::new(vec![t("a", "0123456789abcdef", Some(" "))]).is_err());
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(constant_time_eq(b"abc", b"abc"));
    }
}
