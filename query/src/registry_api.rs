//! `POST /v1/registry/import`: a registry file (CSV or JSON, as `edgelens registry import` takes)
//! sent by an admin token, validated as a whole, written through the [`RegistryWriter`] the
//! service was given, and audited in `registry_audit` with the token's name. Tenant tokens get
//! 403; a service started without a writer answers 503.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use edgelens_schemas::registry::{self, AuditRow, Format, RegistryImport};
use edgelens_schemas::tables::{TableDef, SITES, SITE_ENTITIES, SITE_TAGS};
use serde::{Deserialize, Serialize};

use crate::auth::Principal;
use crate::backend::{Dialect, View};
use crate::error::{QueryError, Result};
use crate::lake::column_string;

/// Where registry rows are written (the lake and/or ClickHouse), provided by whoever starts the
/// service: the query crate reads, the sinks that write live in the aggregate crate.
pub trait RegistryWriter: Send + Sync + std::fmt::Debug {
    /// Write `tables` durably as span `source`; writing the same source again replaces its rows.
    fn write(&self, tables: &[(&'static TableDef, RecordBatch)], source: &str) -> std::result::Result<(), String>;
}

/// The answer: what was (or, with `dry_run`, would be) imported: the rows written of each table,
/// and how many rows of the file the registry already held as current (not written again).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportOutcome {
    pub import_id: String,
    pub sites: u64,
    pub entities: u64,
    pub tags: u64,
    pub already_registered: u64,
    pub dry_run: bool,
    pub actor: String,
}

/// Rows an import writes, per table, and the rows of its file already registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Written {
    pub sites: u64,
    pub entities: u64,
    pub tags: u64,
    pub already_registered: u64,
}

impl Written {
    fn of(batches: &[(&'static TableDef, RecordBatch)], already_registered: u64) -> Self {
        let rows = |table: &TableDef| batches.iter().filter(|(t, _)| t.name == table.name).map(|(_, b)| b.num_rows() as u64).sum::<u64>();
        Self { sites: rows(&SITES), entities: rows(&SITE_ENTITIES), tags: rows(&SITE_TAGS), already_registered }
    }
}

/// The sites already registered (none while ClickHouse has no `sites` table yet: its writers
/// create the schema).
pub async fn known_sites(view: View<'_>) -> Result<BTreeSet<String>> {
    let result = match view.query("SELECT DISTINCT site FROM sites").await {
        Ok(r) => r,
        Err(QueryError::NoSchema(_)) => return Ok(BTreeSet::new()),
        Err(e) => return Err(e),
    };
    let mut known = BTreeSet::new();
    for b in result.batches {
        let col = column_string(&b, "site")?;
        known.extend((0..b.num_rows()).filter(|&i| !col.is_null(i)).map(|i| col.value(i).to_owned()));
    }
    Ok(known)
}

/// What an import's rows are named by ([`registry::Known`]): the registered sites and the keys of
/// the attributions and tags kept under host names of theirs.
pub async fn known_registry(view: View<'_>) -> Result<registry::Known> {
    let sites = known_sites(view).await?;
    let mut known = registry::Known { sites, ..Default::default() };
    if known.sites.is_empty() {
        return Ok(known);
    }
    let d = view.dialect();
    for (table, name) in [("site_entities", "entity"), ("site_tags", "tag")] {
        let sql = format!("SELECT DISTINCT site, {name} AS name, {} AS from_us FROM {table}", d.epoch_us("valid_from"));
        let batches = match view.query(&sql).await {
            Ok(r) => r.batches,
            Err(QueryError::NoSchema(_)) => continue,
            Err(e) => return Err(e),
        };
        let keys = if table == "site_entities" { &mut known.entity_keys } else { &mut known.tag_keys };
        for b in batches {
            let (site, key, from) = (column_string(&b, "site")?, column_string(&b, "name")?, crate::lake::column_i64(&b, "from_us")?);
            for i in (0..b.num_rows()).filter(|&i| !site.is_null(i) && !key.is_null(i) && !from.is_null(i)) {
                let host = site.value(i);
                if site_of_host(host, &known.sites).is_some() {
                    keys.insert((host.to_owned(), key.value(i).to_owned(), from.value(i).saturating_mul(1_000)));
                }
            }
        }
    }
    Ok(known)
}

/// The rows of registry tables `tables` (`site_entities`, `site_tags`) kept under a host name that
/// now belongs to a registered site (imported before the site was registered: an import maps host
/// names to the sites registered at the time), as `(host, site)`. Questions over attributions
/// read such a row as the site's and as the host name's: it counts the site's traffic, and the
/// traffic recorded under the host name before the site was registered (which stays under it).
/// Other rows count the traffic recorded under their own name only, so one row never changes what
/// another counts.
pub async fn hosts_of_sites(view: View<'_>, tables: &[&str]) -> Result<Vec<(String, String)>> {
    let known = known_sites(view).await?;
    if known.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for table in tables {
        for b in view.query(&format!("SELECT DISTINCT site FROM {table}")).await?.batches {
            let col = column_string(&b, "site")?;
            for host in (0..b.num_rows()).filter(|&i| !col.is_null(i)).map(|i| col.value(i)) {
                if let Some(site) = site_of_host(host, &known) {
                    out.push((host.to_owned(), site.to_owned()));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The registered site of `known` that `host`, a name below it (not a site itself), belongs to.
pub fn site_of_host<'h>(host: &'h str, known: &BTreeSet<String>) -> Option<&'h str> {
    registry::registered_site(host, |s| known.contains(s)).filter(|s| *s != host)
}

/// SQL of `column` with the hosts of [`hosts_of_sites`] read as their sites.
pub fn site_of_host_sql(dialect: Dialect, column: &str, hosts: &[(String, String)]) -> String {
    if hosts.is_empty() {
        return column.to_owned();
    }
    let arms: Vec<String> = hosts.iter().map(|(h, s)| format!("WHEN {} THEN {}", dialect.string(h), dialect.string(s))).collect();
    format!("CASE {column} {} ELSE {column} END", arms.join(" "))
}

/// The columns of each registry table that make a row (`registry export` writes the same).
const ROW_COLUMNS: [(&str, &str); 3] = [
    ("sites", "site, tenant, created_at, removed_at"),
    ("site_entities", "site, entity, source, confidence, valid_from, valid_to"),
    ("site_tags", "site, tag, source, valid_from, valid_to"),
];

/// `tables` without the rows the registry already holds as current, identical in every column
/// of [`ROW_COLUMNS`]: importing a file again, a file that extends an earlier one, or an export
/// adds only what is new. A row that differs in any value (a `valid_to` that ends an attribution,
/// a corrected confidence) is a new version of its key and replaces the current one. Returns the
/// rows left and how many were already registered.
pub async fn unregistered(view: View<'_>, tables: Vec<(&'static TableDef, RecordBatch)>) -> Result<(Vec<(&'static TableDef, RecordBatch)>, u64)> {
    let mut out = Vec::new();
    let mut known = 0u64;
    for (table, batch) in tables {
        let Some((_, columns)) = ROW_COLUMNS.iter().find(|(t, _)| *t == table.name) else {
            out.push((table, batch));
            continue;
        };
        let stored = match view.query(&format!("SELECT DISTINCT {columns} FROM {}", table.name)).await {
            Ok(r) => r.batches,
            Err(QueryError::NoSchema(_)) => Vec::new(),
            Err(e) => return Err(e),
        };
        let names: Vec<&str> = columns.split(", ").collect();
        let key = |row: serde_json::Map<String, serde_json::Value>| names.iter().map(|n| row.get(*n).cloned().unwrap_or_default()).collect::<Vec<_>>();
        let stored: std::collections::HashSet<Vec<serde_json::Value>> = crate::format::to_json_rows(&stored)?.into_iter().map(key).collect();
        let fresh: Vec<bool> = crate::format::to_json_rows(std::slice::from_ref(&batch))?.into_iter().map(|r| !stored.contains(&key(r))).collect();
        known += fresh.iter().filter(|f| !**f).count() as u64;
        let batch = arrow::compute::filter_record_batch(&batch, &arrow::array::BooleanArray::from(fresh))?;
        if batch.num_rows() > 0 {
            out.push((table, batch));
        }
    }
    Ok((out, known))
}

/// What importing `parsed` at `now` would write, written nowhere (a dry run).
pub async fn would_write(view: View<'_>, parsed: &RegistryImport, now: i64) -> Result<Written> {
    let (batches, known) = unregistered(view, parsed.batches(now)?).await?;
    Ok(Written::of(&batches, known))
}

/// Validate and write one import.
pub async fn import(
    view: View<'_>,
    writer: Option<Arc<dyn RegistryWriter>>,
    principal: &Principal,
    body: &[u8],
    format: Format,
    file: &str,
    dry_run: bool,
) -> Result<ImportOutcome> {
    let actor = match principal {
        Principal::Admin { name } => name.clone(),
        Principal::Tenant { .. } => {
            return Err(QueryError::Forbidden("registry changes need an admin token".into()));
        }
    };
    let text = std::str::from_utf8(body).map_err(|_| QueryError::InvalidParameter("the registry file is not UTF-8".into()))?;
    let known = known_registry(view).await?;
    let parsed = registry::parse(text, format, &known).map_err(|e| QueryError::InvalidParameter(e.to_string()))?;
    let import_id = registry::content_id(body);
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    let written = if dry_run {
        would_write(view, &parsed, now).await?
    } else {
        let writer = writer.ok_or_else(|| QueryError::Unavailable("this service was started without a registry writer".into()))?;
        write_import(view, writer, &parsed, now, &actor, file, &import_id).await?
    };
    let outcome = ImportOutcome {
        import_id,
        sites: written.sites,
        entities: written.entities,
        tags: written.tags,
        already_registered: written.already_registered,
        dry_run,
        actor,
    };
    if !dry_run {
        tracing::info!(actor = %outcome.actor, import_id = %outcome.import_id, sites = outcome.sites, entities = outcome.entities, tags = outcome.tags, already_registered = outcome.already_registered, "registry import");
    }
    Ok(outcome)
}

/// Write a validated import made at `now` (ns) through `writer`: the rows the registry does not
/// hold as current (see [`unregistered`]), stamped `imported_at = now` under a source of their
/// own (`registry-<now>-<import id>`, so no import replaces another's rows), then its
/// `registry_audit` row (counting the rows written). Returns the rows written and how many were
/// already registered. Shared by `POST /v1/registry/import` and `edgelens registry import`.
pub async fn write_import(
    view: View<'_>,
    writer: Arc<dyn RegistryWriter>,
    parsed: &RegistryImport,
    now: i64,
    actor: &str,
    file: &str,
    import_id: &str,
) -> Result<Written> {
    let (batches, known) = unregistered(view, parsed.batches(now)?).await?;
    // The audit counts what the import changed: rows already registered are not written.
    let written = Written::of(&batches, known);
    let mut audit = AuditRow::import(now, actor, file, import_id, parsed);
    (audit.sites, audit.entities, audit.tags) = (written.sites, written.entities, written.tags);
    let audit_batch = audit.batch()?;
    let (rows, audit_source) = (format!("registry-{now:020}-{import_id}"), format!("registry-audit-{import_id}-{now}"));
    tokio::task::spawn_blocking(move || -> std::result::Result<(), String> {
        if !batches.is_empty() {
            writer.write(&batches, &rows)?;
        }
        writer.write(&[(&edgelens_schemas::tables::REGISTRY_AUDIT, audit_batch)], &audit_source)
    })
    .await
    .map_err(|e| QueryError::Backend(format!("registry write task: {e}")))?
    .map_err(QueryError::Backend)?;
    Ok(written)
}
