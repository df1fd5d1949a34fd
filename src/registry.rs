//! `edgelens registry import|export`: the site registry (sites, entity attributions, tags) from a
//! CSV or JSON file into the lake and/or ClickHouse, and back out as JSON. Parsing and validation
//! live in `edgelens_schemas::registry`; this module only reads what the registry holds (its sites,
//! the keys it keeps under host names), writes the batches through the aggregate crate's sinks and
//! prints.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use edgelens_aggregate::sink::OffsetSpan;
use edgelens_aggregate::sink::clickhouse::ClickHouseSink;
use edgelens_aggregate::sink::parquet::ParquetLake;
use edgelens_query::Backend;
use edgelens_query::registry_api::RegistryWriter;
use edgelens_schemas::registry::{self, Format};

#[derive(Args, Debug)]
pub struct RegistryArgs {
    #[command(subcommand)]
    cmd: RegistryCmd,
}

#[derive(Subcommand, Debug)]
enum RegistryCmd {
    /// Validate FILE (.csv or .json) and add its rows; with any bad row every problem is printed
    /// with its line and nothing is written. Importing the same file again changes nothing.
    Import(ImportArgs),
    /// Print the registry (sites, entities, tags) as JSON in the import format.
    Export(ExportArgs),
}

#[derive(Args, Debug)]
struct ImportArgs {
    file: PathBuf,
    /// Lake directory (the default target when --clickhouse is not given).
    #[arg(long, value_parser = crate::cli::dir_arg)]
    data_dir: Option<PathBuf>,
    /// Write to the ClickHouse server at this HTTP URL (database and credentials from
    /// `EDGELENS__CLICKHOUSE__*`); with --data-dir too, to both.
    #[arg(long)]
    clickhouse: Option<String>,
    /// Only validate; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Who imports, recorded in `registry_audit` (default: $USER, else `cli`).
    #[arg(long)]
    actor: Option<String>,
}

#[derive(Args, Debug)]
struct ExportArgs {
    /// Lake directory.
    #[arg(long, default_value = "./edgelens-data", value_parser = crate::cli::dir_arg)]
    data_dir: PathBuf,
    /// Read the ClickHouse server at this HTTP URL instead of the lake.
    #[arg(long)]
    clickhouse: Option<String>,
}

pub fn run(a: RegistryArgs) -> Result<()> {
    match a.cmd {
        RegistryCmd::Import(a) => import(a),
        RegistryCmd::Export(a) => export(a),
    }
}

fn backends(data_dir: Option<&PathBuf>, clickhouse: Option<&str>) -> Result<Vec<Backend>> {
    let mut out: Vec<Backend> = Vec::new();
    if let Some(url) = clickhouse {
        out.push(edgelens_query::clickhouse::ClickHouseBackend::new(&crate::cli::clickhouse_from_env(Some(url))?).into());
    }
    if let Some(dir) = data_dir {
        out.push(edgelens_query::Lake::open(dir)?.into());
    }
    Ok(out)
}

fn import(a: ImportArgs) -> Result<()> {
    let name = a.file.display().to_string();
    let Some(format) = Format::of_path(&name) else { bail!("{name}: expected a .csv or .json file") };
    let bytes = std::fs::read(&a.file).with_context(|| format!("reading {name}"))?;
    let text = std::str::from_utf8(&bytes).with_context(|| format!("{name} is not UTF-8"))?;
    let data_dir = match (&a.data_dir, &a.clickhouse) {
        (None, None) => Some(PathBuf::from("./edgelens-data")),
        (d, _) => d.clone(),
    };
    let targets = backends(data_dir.as_ref(), a.clickhouse.as_deref())?;
    let rt = crate::cli::runtime()?;
    let mut known = registry::Known::default();
    for b in &targets {
        let k = rt.block_on(edgelens_query::registry_api::known_registry(b.into()))?;
        known.sites.extend(k.sites);
        known.entity_keys.extend(k.entity_keys);
        known.tag_keys.extend(k.tag_keys);
    }
    let parsed = registry::parse(text, format, &known).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let summary = format!("{} sites, {} entity attributions, {} tags", parsed.sites.len(), parsed.entities.len(), parsed.tags.len());
    let now = edgelens_aggregate::pipeline::now_nanos();
    if a.dry_run {
        // What an import would write: the rows the registry does not hold as current yet.
        let would = rt.block_on(edgelens_query::registry_api::would_write((&targets[0]).into(), &parsed, now))?;
        crate::cli::print_out(&format!("{}; nothing written (--dry-run)", import_summary(&name, &summary, &would, true)))?;
        return Ok(());
    }
    let import_id = registry::content_id(&bytes);
    let actor = a.actor.or_else(|| std::env::var("USER").ok()).filter(|s| !s.is_empty()).unwrap_or_else(|| "cli".into());
    let writer = Arc::new(SinkWriter {
        lake: data_dir.clone(),
        clickhouse: a.clickhouse.as_deref().map(|u| crate::cli::clickhouse_from_env(Some(u))).transpose()?,
    });
    // Rows the registry already holds as current (the first target's) are not written again.
    let written = rt.block_on(edgelens_query::registry_api::write_import((&targets[0]).into(), writer, &parsed, now, &actor, &name, &import_id))?;
    crate::cli::print_out(&import_summary(&name, &summary, &written, false))?;
    Ok(())
}

/// What an import wrote, in the counts of what it wrote: rows the registry already held are
/// named apart, and an import of nothing new says so.
fn import_summary(name: &str, file_rows: &str, w: &edgelens_query::registry_api::Written, dry_run: bool) -> String {
    let known = w.already_registered;
    let name = if dry_run { format!("{name}: valid;") } else { format!("{name}:") };
    if w.sites + w.entities + w.tags == 0 {
        return format!("{name} nothing new; all {known} rows of it ({file_rows}) already registered");
    }
    let verb = if dry_run { "would import" } else { "imported" };
    let wrote = format!("{name} {verb} {} sites, {} entity attributions, {} tags", w.sites, w.entities, w.tags);
    if known > 0 { format!("{wrote} ({known} rows of the file already registered, not written again)") } else { wrote }
}

/// Registry rows into the lake and/or ClickHouse through the aggregate crate's sinks; used by the
/// CLI and given to the query service for `POST /v1/registry/import`.
#[derive(Debug, Clone)]
pub struct SinkWriter {
    pub lake: Option<PathBuf>,
    pub clickhouse: Option<edgelens_schemas::clickhouse::ClickHouseConfig>,
}

impl RegistryWriter for SinkWriter {
    fn write(
        &self,
        tables: &[(&'static edgelens_schemas::TableDef, arrow::array::RecordBatch)],
        source: &str,
    ) -> std::result::Result<(), String> {
        let rows: usize = tables.iter().map(|(_, b)| b.num_rows()).sum();
        let span = OffsetSpan::new(source, 0, 0, rows as u64);
        if let Some(dir) = &self.lake {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
            let mut lake = ParquetLake::open(dir).map_err(|e| e.to_string())?;
            for (table, batch) in tables {
                lake.write_table(table, batch, &span).map_err(|e| e.to_string())?;
            }
        }
        if let Some(cfg) = &self.clickhouse {
            let patience = Some(std::time::Duration::from_millis(cfg.connect_timeout_ms));
            let mut ch = ClickHouseSink::connect_within(cfg, Arc::new(AtomicBool::new(false)), patience).map_err(|e| e.to_string())?;
            ch.write_tables(tables, &span).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

fn export(a: ExportArgs) -> Result<()> {
    let data_dir = if a.clickhouse.is_some() { None } else { Some(a.data_dir.clone()) };
    // A mistyped path would otherwise print an empty registry.
    if let Some(d) = &data_dir {
        crate::cli::require_lake_dir(d, "the --data-dir the registry was imported into")?;
    }
    let backend = backends(data_dir.as_ref(), a.clickhouse.as_deref())?.pop().expect("one backend");
    let rt = crate::cli::runtime()?;
    // Timestamps come back as RFC 3339 UTC in the JSON rows, the import format.
    let queries = [
        ("sites", "SELECT DISTINCT site, tenant, created_at, removed_at FROM sites ORDER BY site, created_at"),
        ("entities", "SELECT DISTINCT site, entity, source, confidence, valid_from, valid_to FROM site_entities ORDER BY site, entity, valid_from"),
        ("tags", "SELECT DISTINCT site, tag, source, valid_from, valid_to FROM site_tags ORDER BY site, tag, valid_from"),
    ];
    let mut out = serde_json::Map::new();
    for (key, sql) in queries {
        let result = rt.block_on(backend.query(sql))?;
        let rows = edgelens_query::format::to_json_rows(&result.batches)?;
        out.insert(key.to_owned(), serde_json::Value::Array(rows.into_iter().map(serde_json::Value::Object).collect()));
    }
    crate::cli::print_out(&serde_json::to_string_pretty(&serde_json::Value::Object(out))?)?;
    Ok(())
}
