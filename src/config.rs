//! The config file of the distributed roles: one TOML file with a section per role (`[query]`, …),
//! overlaid by environment variables, then by command-line flags.
//!
//! `EDGELENS__<SECTION>__<KEY>=value` sets `key` in `[section]` (e.g. `EDGELENS__QUERY__LISTEN=
//! 127.0.0.1:9080`, `EDGELENS__QUERY__DATA_DIR=/lake`). A value is read as a TOML value when it parses
//! as one (numbers, booleans, arrays), else as a string; a setting that is text (a password, a
//! group name) takes the variable's text as written, so `EDGELENS__CLICKHOUSE__PASSWORD=0123` is
//! the password `0123`. Unknown sections and keys — from the file or the environment — are errors,
//! reported with where they came from.

use std::path::Path;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Sections the binary knows; an `EDGELENS__<OTHER>__…` variable is an error.
pub const SECTIONS: &[&str] = &["aggregate", "clickhouse", "ingest", "query"];

/// The config document: the file's sections overlaid by the environment.
#[derive(Debug, Default)]
pub struct Doc {
    table: toml::Table,
    /// `(section, key, text)` of each environment value that did not read as a TOML string: a
    /// text setting takes the text as written (see [`section`]).
    env_text: Vec<(String, String, String)>,
    /// `(section, key, variable)` of each setting the environment gave, so a problem with it
    /// names the variable to fix rather than a key no file holds.
    env_vars: Vec<(String, String, String)>,
}

impl Doc {
    /// A document of one setting: `key = value` in `[section]`, read as in `like` (an
    /// environment value's text kept for a text setting).
    pub fn with_section(section: &str, key: &str, value: toml::Value, like: &Doc) -> Doc {
        let mut table = toml::Table::new();
        table.insert(key.to_owned(), value);
        let mut doc = toml::Table::new();
        doc.insert(section.to_owned(), toml::Value::Table(table));
        let same = |(s, k, _): &&(String, String, String)| s == section && k == key;
        let env_text = like.env_text.iter().filter(same).cloned().collect();
        let env_vars = like.env_vars.iter().filter(same).cloned().collect();
        Doc { table: doc, env_text, env_vars }
    }

    /// `key` of `[section]` as a problem names it: the key, and the variable that set it when
    /// the environment did (`listn (from EDGELENS__QUERY__LISTN)`).
    fn origin(&self, section: &str, key: &str) -> String {
        match self.env_vars.iter().rev().find(|(s, k, _)| s == section && k == key) {
            Some((_, _, var)) => format!("{key} (from {var})"),
            None => key.to_owned(),
        }
    }
}

impl std::ops::Deref for Doc {
    type Target = toml::Table;
    fn deref(&self) -> &toml::Table {
        &self.table
    }
}

/// Read `path` (if any), overlay the environment, and return the document. Every section is read
/// as the role it configures reads it, whichever role starts: an unknown key or a value of the
/// wrong type in a section the starting role does not use is an error too, as `check-config`
/// reports it (one file configures every role; a mistake in it must not wait for the role that
/// reads it).
pub fn load(path: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Doc> {
    let (doc, mut problems) = load_all(path, env)?;
    sections(&doc, &mut problems);
    if !problems.is_empty() {
        anyhow::bail!("{}", problem_list(&problems));
    }
    Ok(doc)
}

/// Every section of the file, typed as the role it configures reads it; `None` for a section with
/// problems (see [`sections`]).
pub struct Sections {
    pub ingest: Option<edgelens_ingest::IngestConfig>,
    pub aggregate: Option<edgelens_aggregate::AggregateConfig>,
    pub query: Option<edgelens_query::QueryConfig>,
    pub clickhouse: Option<edgelens_schemas::clickhouse::ClickHouseConfig>,
}

/// Every section of `doc` ([`checked_section`]), their problems added to `problems`.
pub fn sections(doc: &Doc, problems: &mut Vec<String>) -> Sections {
    Sections {
        ingest: checked_section(doc, "ingest", problems),
        aggregate: checked_section(doc, "aggregate", problems),
        query: checked_section(doc, "query", problems),
        clickhouse: checked_section(doc, "clickhouse", problems),
    }
}

/// [`load`], with every unknown section and misnamed variable returned as a problem instead of
/// stopping at the first (`check-config`); those are left out of the document. A file that cannot
/// be read or is not TOML is still an error.
pub fn load_all(path: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<(Doc, Vec<String>)> {
    let mut doc = match path {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading config {}", p.display()))?;
            text.parse::<toml::Table>().with_context(|| format!("invalid TOML in {}", p.display()))?
        }
        None => toml::Table::new(),
    };
    let mut problems = Vec::new();
    let unknown: Vec<String> = doc.keys().filter(|k| !SECTIONS.contains(&k.as_str())).cloned().collect();
    for key in unknown {
        problems.push(format!("unknown config section [{key}] (known: {})", SECTIONS.join(", ")));
        doc.remove(&key);
    }
    let (mut env_text, mut env_vars) = (Vec::new(), Vec::new());
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("EDGELENS__") else { continue };
        let Some((section, key)) = rest.split_once("__").map(|(s, k)| (s.to_ascii_lowercase(), k.to_ascii_lowercase())) else {
            problems.push(format!("environment variable {name}: expected EDGELENS__<SECTION>__<KEY>"));
            continue;
        };
        if !SECTIONS.contains(&section.as_str()) {
            problems.push(format!("environment variable {name}: unknown config section [{section}]"));
            continue;
        }
        let parsed = format!("v = {value}").parse::<toml::Table>().ok().and_then(|mut t| t.remove("v"));
        let value = match parsed {
            Some(v @ toml::Value::String(_)) => v,
            Some(v) => {
                env_text.push((section.clone(), key.clone(), value));
                v
            }
            None => toml::Value::String(value),
        };
        let table = doc.entry(section.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let table = table.as_table_mut().with_context(|| format!("config: [{section}] is not a table"))?;
        env_vars.push((section.clone(), key.clone(), name));
        table.insert(key, value);
    }
    Ok((Doc { table: doc, env_text, env_vars }, problems))
}

/// Problems as one message: each on a line of its own (the TOML reader's messages span lines).
pub fn problem_list(problems: &[String]) -> String {
    let lines: Vec<String> = problems.iter().map(|p| p.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    if let [one] = lines.as_slice() { one.clone() } else { format!("{} problem(s):\n  {}", lines.len(), lines.join("\n  ")) }
}

/// The typed settings of one section (its defaults when the section is absent), or an error
/// naming every problem of it: each unknown key, and each value of the wrong type or out of range.
pub fn section<T: DeserializeOwned + Serialize + Default>(doc: &Doc, name: &str) -> Result<T> {
    let mut problems = Vec::new();
    match checked_section(doc, name, &mut problems) {
        Some(t) if problems.is_empty() => Ok(t),
        _ => anyhow::bail!("{}", problem_list(&problems)),
    }
}

/// Section `name` of `doc`, or `None` with its problems added to `problems`: every unknown key,
/// then every bad value of the other keys.
pub fn checked_section<T: DeserializeOwned + Serialize + Default>(doc: &Doc, name: &str, problems: &mut Vec<String>) -> Option<T> {
    let defaults = serde_json::to_value(T::default()).ok();
    let mut known: Vec<&str> = defaults.as_ref().and_then(|v| v.as_object()).map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
    // Keys left out of the default's serialization while empty.
    if name == "query" {
        known.push("tokens");
    }
    let mut doc_known = None;
    if let Some(toml::Value::Table(t)) = doc.get(name) {
        let unknown: Vec<String> = t.keys().filter(|k| !known.contains(&k.as_str())).map(|k| doc.origin(name, k)).collect();
        if !unknown.is_empty() {
            problems.push(format!("[{name}]: unknown keys {} (known: {})", unknown.join(", "), known.join(", ")));
            // The other keys are still checked.
            let mut kept = t.clone();
            kept.retain(|k, _| known.contains(&k));
            let mut table = doc.table.clone();
            table.insert(name.to_owned(), toml::Value::Table(kept));
            doc_known = Some(Doc { table, env_text: doc.env_text.clone(), env_vars: doc.env_vars.clone() });
        }
    }
    let unknown_keys = doc_known.is_some();
    let doc = doc_known.as_ref().unwrap_or(doc);
    match section_value(doc, name) {
        Ok(t) if !unknown_keys => Some(t),
        Ok(_) => None,
        Err(e) => {
            // serde stops at the first bad value: each key alone names every one of them.
            let mut bad: Vec<String> = Vec::new();
            if let Some(toml::Value::Table(t)) = doc.get(name) {
                for (key, value) in t {
                    let alone = Doc::with_section(name, key, value.clone(), doc);
                    if let Err(e) = section_value::<T>(&alone, name) {
                        let from = doc.origin(name, key);
                        let from = from.strip_prefix(key.as_str()).unwrap_or("");
                        bad.push(format!("{}{from}", error_text(&e)));
                    }
                }
            }
            if bad.is_empty() {
                problems.push(error_text(&e));
            }
            problems.extend(bad);
            None
        }
    }
}

/// An error and its causes, `: `-separated, each cause left out when the text before already
/// says it (errors that print their source in their own message).
pub fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain().map(ToString::to_string) {
        if text.is_empty() {
            text = cause;
        } else if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// The typed settings of one section as serde reads them (stops at the first problem).
///
/// An environment value that read as a number, boolean or array is taken as its text when the
/// setting is text (its default is a string), or when only the text makes the section valid (an
/// optional text setting).
fn section_value<T: DeserializeOwned + Serialize + Default>(doc: &Doc, name: &str) -> Result<T> {
    let Some(v) = doc.table.get(name) else { return Ok(T::default()) };
    let context = || format!("invalid [{name}] settings (file or EDGELENS__{}__* variables)", name.to_ascii_uppercase());
    let env_text: Vec<&(String, String, String)> = doc.env_text.iter().filter(|(s, _, _)| s == name).collect();
    let mut v = v.clone();
    if env_text.is_empty() {
        return v.try_into().with_context(context);
    }
    let defaults = serde_json::to_value(T::default()).ok();
    let default_of = |key: &str| defaults.as_ref().and_then(|d| d.get(key));
    let as_text = |v: &mut toml::Value, text_wanted: &dyn Fn(&str) -> bool| {
        if let Some(t) = v.as_table_mut() {
            for (_, key, text) in env_text.iter().filter(|(_, k, _)| text_wanted(k)) {
                t.insert(key.clone(), toml::Value::String(text.clone()));
            }
        }
    };
    as_text(&mut v, &|k| default_of(k).is_some_and(serde_json::Value::is_string));
    match v.clone().try_into() {
        Ok(t) => Ok(t),
        Err(e) => {
            as_text(&mut v, &|k| default_of(k).is_none_or(serde_json::Value::is_null));
            v.try_into().or_else(|_| Err(e)).with_context(context)
        }
    }
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
        let err = load(Some(&f), env(&[])).unwrap_err();
        assert!(format!("{err:#}").contains("listen_addr"), "{err:#}");

        std::fs::write(&f, "[qeury]\n").unwrap();
        assert!(format!("{:#}", load(Some(&f), env(&[])).unwrap_err()).contains("unknown config section [qeury]"));

        // Regression: a key set through the environment did not name its variable.
        let err = load(None, env(&[("EDGELENS__QUERY__LISTN", "x")])).unwrap_err();
        assert!(format!("{err:#}").contains("listn (from EDGELENS__QUERY__LISTN)"), "{err:#}");

        // Regression: a role read its own section only, so a mistake in another section of the
        // one file (an unknown key, a value of the wrong type) went unnoticed until the role
        // that reads it started.
        std::fs::write(&f, "[query]\nlisten = \"127.0.0.1:9000\"\n[ingest]\nlistne = \"x\"\n[aggregate]\nflush_interval_ms = \"oops\"\n").unwrap();
        let err = format!("{:#}", load(Some(&f), env(&[])).unwrap_err());
        assert!(err.contains("[ingest]: unknown keys listne") && err.contains("flush_interval_ms"), "{err}");
        let err = format!("{:#}", load(None, env(&[("EDGELENS__INGEST__LISTNE", "x")])).unwrap_err());
        assert!(err.contains("listne (from EDGELENS__INGEST__LISTNE)"), "{err}");
        assert!(format!("{:#}", load(None, env(&[("EDGELENS__QEURY__LISTEN", "x")])).unwrap_err()).contains("[qeury]"));
    }

    #[test]
    fn text_settings_take_the_variable_text_as_written() {
        use edgelens_schemas::clickhouse::ClickHouseConfig;
        let doc = load(
            None,
            env(&[
                ("EDGELENS__CLICKHOUSE__PASSWORD", "0123"),
                ("EDGELENS__CLICKHOUSE__USER", "1.50"),
                ("EDGELENS__CLICKHOUSE__DATABASE", "\"42\""),
                ("EDGELENS__CLICKHOUSE__CLUSTER", "true"),
                ("EDGELENS__CLICKHOUSE__MAX_BACKOFF_MS", "2500"),
                ("EDGELENS__AGGREGATE__GROUP", "7"),
            ]),
        )
        .unwrap();
        let ch: ClickHouseConfig = section(&doc, "clickhouse").unwrap();
        assert_eq!((ch.password.as_str(), ch.user.as_str(), ch.database.as_str(), ch.cluster.as_str()), ("0123", "1.50", "42", "true"));
        assert_eq!(ch.max_backoff_ms, 2500, "a number setting still reads the number");
        let agg: edgelens_aggregate::AggregateConfig = section(&doc, "aggregate").unwrap();
        assert_eq!(agg.group, "7");
        // A number setting given text is still refused, naming the section and the variable.
        let err = format!("{:#}", load(None, env(&[("EDGELENS__CLICKHOUSE__MAX_BACKOFF_MS", "soon")])).unwrap_err());
        assert!(err.contains("[clickhouse]") && err.contains("(from EDGELENS__CLICKHOUSE__MAX_BACKOFF_MS)"), "{err}");
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
