//! The config file of the distributed roles: one TOML file with a section per role (`[query]`, …),
//! overlaid by environment variables, then by command-line flags.
//!
//! `EDGELENS__<SECTION>__<KEY>=value` sets `key` in `[section]` (e.g. `EDGELENS__QUERY__LISTEN=
//! 127.0.0.1:9080`, `EDGELENS__QUERY__DATA_DIR=/lake`). A value is read as a TOML value when it parses
//! as one (numbers, booleans, arrays), else as a string. Unknown sections and keys — from the file
//! or the environment — are errors, reported with where they came from.

use std::path::Path;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;

/// Sections the binary knows; an `EDGELENS__<OTHER>__…` variable is an error.
pub const SECTIONS: &[&str] = &["aggregate", "clickhouse", "ingest", "query"];

/// Read `path` (if any), overlay the environment, and return the document.
pub fn load(path: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<toml::Table> {
    let mut doc = match path {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading config {}", p.display()))?;
            text.parse::<toml::Table>().with_context(|| format!("invalid TOML in {}", p.display()))?
        }
        None => toml::Table::new(),
    };
    for key in doc.keys() {
        anyhow::ensure!(SECTIONS.contains(&key.as_str()), "unknown config section [{key}] (known: {})", SECTIONS.join(", "));
    }
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("EDGELENS__") else { continue };
        let Some((section, key)) = rest.split_once("__").map(|(s, k)| (s.to_ascii_lowercase(), k.to_ascii_lowercase())) else {
            anyhow::bail!("environment variable {name}: expected EDGELENS__<SECTION>__<KEY>");
        };
        anyhow::ensure!(SECTIONS.contains(&section.as_str()), "environment variable {name}: unknown config section [{section}]");
        let parsed = format!("v = {value}").parse::<toml::Table>().ok().and_then(|mut t| t.remove("v"));
        let value = parsed.unwrap_or(toml::Value::String(value));
        let table = doc.entry(section.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let table = table.as_table_mut().with_context(|| format!("config: [{section}] is not a table"))?;
        table.insert(key, value);
    }
    Ok(doc)
}

/// The typed settings of one section (its defaults when the section is absent).
pub fn section<T: DeserializeOwned + Default>(doc: &toml::Table, name: &str) -> Result<T> {
    match doc.get(name) {
        Some(v) => v.clone().try_into().with_context(|| format!("invalid [{name}] settings (file or EDGELENS__{}__* variables)", name.to_ascii_uppercase())),
        None => Ok(T::default()),
    }
}

/// The settings of role `name`: file (if any), then the process environment.
pub fn role<T: DeserializeOwned + Default>(path: Option<&Path>, name: &str) -> Result<T> {
    section(&load(path, process_env())?, name)
}

/// The process environment, for [`load`].
pub fn process_env() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgelens_query::QueryConfig;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn file_then_env() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("edgelens.toml");
        std::fs::write(&f, "[query]\nlisten = \"127.0.0.1:9000\"\ndata_dir = \"/from/file\"\n").unwrap();
        let doc = load(Some(&f), env(&[("EDGELENS__QUERY__DATA_DIR", "/from/env"), ("EDGELENS_LOG", "debug"), ("HOME", "/root")])).unwrap();
        let q: QueryConfig = section(&doc, "query").unwrap();
        assert_eq!(q.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(q.data_dir, Path::new("/from/env"));
    }

    #[test]
    fn defaults_without_file_or_env() {
        let q: QueryConfig = section(&load(None, env(&[])).unwrap(), "query").unwrap();
        assert_eq!(q, QueryConfig::default());
    }

    #[test]
    fn unknown_keys_and_sections_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.toml");
        std::fs::write(&f, "[query]\nlisten_addr = \"127.0.0.1:9000\"\n").unwrap();
        let err = section::<QueryConfig>(&load(Some(&f), env(&[])).unwrap(), "query").unwrap_err();
        assert!(format!("{err:#}").contains("listen_addr"), "{err:#}");

        std::fs::write(&f, "[qeury]\n").unwrap();
        assert!(format!("{:#}", load(Some(&f), env(&[])).unwrap_err()).contains("unknown config section [qeury]"));

        let doc = load(None, env(&[("EDGELENS__QUERY__LISTN", "x")])).unwrap();
        assert!(format!("{:#}", section::<QueryConfig>(&doc, "query").unwrap_err()).contains("listn"));
        assert!(format!("{:#}", load(None, env(&[("EDGELENS__QEURY__LISTEN", "x")])).unwrap_err()).contains("[qeury]"));
    }

    #[test]
    fn example_configs_parse() {
        // The checkout being tested (runtime), not where the test binary was first compiled.
        let root = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf(), std::path::PathBuf::from);
        let dir = root.join("deploy/config");
        let mut n = 0;
        for f in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = f.path();
            if !p.to_string_lossy().ends_with(".example.toml") {
                continue;
            }
            let doc = load(Some(&p), env(&[])).unwrap();
            let _: QueryConfig = section(&doc, "query").unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
            let _: edgelens_ingest::IngestConfig = section(&doc, "ingest").unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
            let _: edgelens_aggregate::AggregateConfig = section(&doc, "aggregate").unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
            let _: edgelens_schemas::clickhouse::ClickHouseConfig = section(&doc, "clickhouse").unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
            n += 1;
        }
        assert!(n > 0, "no example configs in {}", dir.display());
    }
}
