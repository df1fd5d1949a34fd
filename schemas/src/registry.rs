//! The site registry as imported from a file: sites and their tenants (`sites`), time-versioned
//! many-to-many attributions of sites to entities (`site_entities`) and tags such as a watchlist
//! name (`site_tags`). Parsing and validation only, no I/O: the whole file is checked first and
//! every bad row reported with its line, so an import writes all of its rows or none.
//!
//! Formats:
//! - CSV with a header row. The header names the table: `site,entity,source,confidence,valid_from,
//!   valid_to` → `site_entities`; `site,tag,source,valid_from,valid_to` → `site_tags`;
//!   `site,tenant,created_at,removed_at` → `sites` (columns in any order; RFC 4180 quoting).
//! - JSON: `{"sites": [...], "entities": [...], "tags": [...]}` (any of the three), each an array
//!   of objects with the same fields as the CSV columns; or a bare array of entity objects.
//!
//! Values: times are RFC 3339 (or unix seconds), kept to the second; an empty or missing
//! `valid_to` / `removed_at` is open. `confidence` is in [0, 1]. Site names are host names, normalised: lower case, no trailing
//! dot (a leading `www.` is kept: it may be a zone of its own); a host name below a registered site (`api.shop.example` when
//! `shop.example` is a site of this import or of the registry) is recorded against that site — except a row whose key
//! the registry already keeps under the host name (imported before the site was registered): that row is a new
//! version of the stored one, so importing it with a `valid_to` ends it, and an export imports back unchanged.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray, UInt64Array};

use crate::tables::{REGISTRY_AUDIT, SITE_ENTITIES, SITE_TAGS, SITES, TableDef};
use crate::time::{Nanos, parse_timestamp_str};

/// One `sites` row.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteRow {
    pub site: String,
    pub tenant: String,
    pub created_at: Nanos,
    pub removed_at: Option<Nanos>,
}

/// One `site_entities` row.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityRow {
    pub site: String,
    pub entity: String,
    pub source: String,
    pub confidence: f64,
    pub valid_from: Nanos,
    pub valid_to: Option<Nanos>,
}

/// One `site_tags` row.
#[derive(Debug, Clone, PartialEq)]
pub struct TagRow {
    pub site: String,
    pub tag: String,
    pub source: String,
    pub valid_from: Nanos,
    pub valid_to: Option<Nanos>,
}

/// A validated import.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegistryImport {
    pub sites: Vec<SiteRow>,
    pub entities: Vec<EntityRow>,
    pub tags: Vec<TagRow>,
}

impl RegistryImport {
    pub fn len(&self) -> usize {
        self.sites.len() + self.entities.len() + self.tags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows as record batches of their tables (tables without rows left out), each stamped
    /// `imported_at` = `imported_at` (the newest import of a key is its current version).
    pub fn batches(&self, imported_at: Nanos) -> Result<Vec<(&'static TableDef, RecordBatch)>, arrow::error::ArrowError> {
        let us = |ns: Nanos| ns.div_euclid(1_000);
        let ts = |v: Vec<Option<i64>>| -> ArrayRef { Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC")) };
        let stamp = |n: usize| ts(vec![Some(us(imported_at)); n]);
        let text = |v: Vec<&str>| -> ArrayRef { Arc::new(StringArray::from(v)) };
        let mut out = Vec::new();
        if !self.sites.is_empty() {
            let r = &self.sites;
            out.push((
                &SITES,
                RecordBatch::try_new(
                    SITES.arrow_schema(),
                    vec![
                        text(r.iter().map(|x| x.site.as_str()).collect()),
                        text(r.iter().map(|x| x.tenant.as_str()).collect()),
                        ts(r.iter().map(|x| Some(us(x.created_at))).collect()),
                        ts(r.iter().map(|x| x.removed_at.map(us)).collect()),
                        stamp(r.len()),
                    ],
                )?,
            ));
        }
        if !self.entities.is_empty() {
            let r = &self.entities;
            out.push((
                &SITE_ENTITIES,
                RecordBatch::try_new(
                    SITE_ENTITIES.arrow_schema(),
                    vec![
                        text(r.iter().map(|x| x.site.as_str()).collect()),
                        text(r.iter().map(|x| x.entity.as_str()).collect()),
                        text(r.iter().map(|x| x.source.as_str()).collect()),
                        Arc::new(Float64Array::from(r.iter().map(|x| x.confidence).collect::<Vec<_>>())),
                        ts(r.iter().map(|x| Some(us(x.valid_from))).collect()),
                        ts(r.iter().map(|x| x.valid_to.map(us)).collect()),
                        stamp(r.len()),
                    ],
                )?,
            ));
        }
        if !self.tags.is_empty() {
            let r = &self.tags;
            out.push((
                &SITE_TAGS,
                RecordBatch::try_new(
                    SITE_TAGS.arrow_schema(),
                    vec![
                        text(r.iter().map(|x| x.site.as_str()).collect()),
                        text(r.iter().map(|x| x.tag.as_str()).collect()),
                        text(r.iter().map(|x| x.source.as_str()).collect()),
                        ts(r.iter().map(|x| Some(us(x.valid_from))).collect()),
                        ts(r.iter().map(|x| x.valid_to.map(us)).collect()),
                        stamp(r.len()),
                    ],
                )?,
            ));
        }
        Ok(out)
    }
}

/// One `registry_audit` row: who changed the registry, when and how.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    pub ts: Nanos,
    /// The token's name (HTTP) or `--actor` (CLI).
    pub actor: String,
    /// `import`.
    pub action: String,
    /// The file name given, or `-`.
    pub file: String,
    /// [`content_id`] of the file.
    pub import_id: String,
    /// Rows of each table the import wrote (new or changed; rows already registered are not).
    pub sites: u64,
    pub entities: u64,
    pub tags: u64,
}

impl AuditRow {
    /// The audit row of importing `import` (the bytes' [`content_id`] is `import_id`) at `ts`,
    /// counting every row of it (the writer counts what it wrote instead).
    pub fn import(ts: Nanos, actor: &str, file: &str, import_id: &str, import: &RegistryImport) -> AuditRow {
        AuditRow {
            ts,
            actor: actor.to_owned(),
            action: "import".to_owned(),
            file: file.to_owned(),
            import_id: import_id.to_owned(),
            sites: import.sites.len() as u64,
            entities: import.entities.len() as u64,
            tags: import.tags.len() as u64,
        }
    }

    pub fn batch(&self) -> Result<RecordBatch, arrow::error::ArrowError> {
        let text = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v])) };
        let n = |v: u64| -> ArrayRef { Arc::new(UInt64Array::from(vec![v])) };
        RecordBatch::try_new(
            REGISTRY_AUDIT.arrow_schema(),
            vec![
                Arc::new(TimestampMicrosecondArray::from(vec![self.ts.div_euclid(1_000)]).with_timezone("UTC")),
                text(&self.actor),
                text(&self.action),
                text(&self.file),
                text(&self.import_id),
                n(self.sites),
                n(self.entities),
                n(self.tags),
            ],
        )
    }
}

/// A stable 64-bit hash of an import file's bytes (FNV-1a), as 16 hex digits: the import's id, so
/// importing the same file again rewrites the same rows instead of adding them twice.
pub fn content_id(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// One problem of an import file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line of the row (of the object's start in JSON); 0 for the file as a whole.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 { write!(f, "{}", self.message) } else { write!(f, "line {}: {}", self.line, self.message) }
    }
}

/// Every problem found; nothing of the file may be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RegistryErrors(pub Vec<RowError>);

impl fmt::Display for RegistryErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} problem(s), nothing imported:", self.0.len())?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

/// The file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

impl Format {
    /// From a file name's extension (`.csv`, `.json`).
    pub fn of_path(path: &str) -> Option<Format> {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".csv") {
            Some(Format::Csv)
        } else if lower.ends_with(".json") {
            Some(Format::Json)
        } else {
            None
        }
    }
}

/// What the registry already holds that decides the names an import's rows are recorded under.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// The registered sites.
    pub sites: BTreeSet<String>,
    /// The keys of the stored `site_entities` rows: site (or host name), entity, `valid_from`.
    pub entity_keys: BTreeSet<(String, String, Nanos)>,
    /// The keys of the stored `site_tags` rows: site (or host name), tag, `valid_from`.
    pub tag_keys: BTreeSet<(String, String, Nanos)>,
}

impl Known {
    /// Only the registered sites (no rows kept under host names).
    pub fn sites(sites: impl IntoIterator<Item = String>) -> Self {
        Self { sites: sites.into_iter().collect(), ..Self::default() }
    }
}

/// Parse and validate `text`. Host names below the registry's sites (`known.sites`) or below a
/// site of this import are recorded against them, unless `known` holds the row's key under the
/// host name itself.
pub fn parse(text: &str, format: Format, known: &Known) -> Result<RegistryImport, RegistryErrors> {
    // A byte order mark, as spreadsheet programs write, is no part of the content.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let records = match format {
        Format::Csv => csv_records(text),
        Format::Json => json_records(text),
    }
    .map_err(|e| RegistryErrors(vec![e]))?;
    let mut errors = Vec::new();
    let mut out = RegistryImport::default();
    let mut built_ok = Vec::with_capacity(records.len());
    for r in &records {
        let built = build(r);
        built_ok.push(built.is_ok());
        match built {
            Ok(Built::Site(s)) => out.sites.push(s),
            Ok(Built::Entity(e)) => out.entities.push(e),
            Ok(Built::Tag(t)) => out.tags.push(t),
            Err(msgs) => errors.extend(msgs.into_iter().map(|message| RowError { line: r.line, message })),
        }
    }
    // Host names below a site map to that site, but a key the registry keeps under the host
    // name stays there: the row is a new version of that one.
    let mut sites: BTreeSet<String> = known.sites.clone();
    sites.extend(out.sites.iter().map(|s| s.site.clone()));
    let to_site = |host: &mut String, kept: &BTreeSet<(String, String, Nanos)>, name: &str, from: Nanos| {
        if kept.contains(&(host.clone(), name.to_owned(), from)) {
            return;
        }
        if let Some(site) = parent_site(host, &sites) {
            *host = site;
        }
    };
    out.entities.iter_mut().for_each(|e| to_site(&mut e.site, &known.entity_keys, &e.entity, e.valid_from));
    out.tags.iter_mut().for_each(|t| to_site(&mut t.site, &known.tag_keys, &t.tag, t.valid_from));
    // The same key twice in one file is a mistake, not a version. (Several records may share a
    // line, in JSON written on one line: each is checked.)
    let mut seen: HashMap<String, usize> = HashMap::new();
    let (mut si, mut ei, mut ti) = (0, 0, 0);
    for (r, built) in records.iter().zip(&built_ok) {
        let line = &r.line;
        let key = match r.kind {
            Kind::Site if *built => {
                let s = &out.sites[si];
                si += 1;
                format!("registration of {} from {}", s.site, crate::time::format_rfc3339(s.created_at))
            }
            Kind::Entity if *built => {
                let e = &out.entities[ei];
                ei += 1;
                format!("mapping {} → {} from {}", e.site, e.entity, crate::time::format_rfc3339(e.valid_from))
            }
            Kind::Tag if *built => {
                let t = &out.tags[ti];
                ti += 1;
                format!("tag {} on {} from {}", t.tag, t.site, crate::time::format_rfc3339(t.valid_from))
            }
            _ => continue,
        };
        if let Some(first) = seen.insert(key.clone(), *line) {
            errors.push(RowError { line: *line, message: format!("{key} already given on line {first}") });
        }
    }
    if out.is_empty() && errors.is_empty() {
        errors.push(RowError { line: 0, message: "the file has no rows".into() });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        errors.sort_by_key(|e| e.line);
        Err(RegistryErrors(errors))
    }
}

/// The registered site `host` belongs to: itself, or the longest registered suffix.
fn parent_site(host: &str, sites: &BTreeSet<String>) -> Option<String> {
    registered_site(host, |s| sites.contains(s)).map(str::to_owned)
}

/// The site a host name (normalised: lower case, no trailing dot) belongs to among the sites
/// `registered` knows: the host itself, else its longest registered parent domain
/// (`www.shop.example` and `api.shop.example` → `shop.example`); `None` when neither is.
pub fn registered_site<'h>(host: &'h str, registered: impl Fn(&str) -> bool) -> Option<&'h str> {
    let mut rest = host;
    loop {
        if registered(rest) {
            return Some(rest);
        }
        rest = rest.split_once('.')?.1;
    }
}

/// `host` normalised as a site name, or why it is not one.
pub fn normalize_site(host: &str) -> Result<String, String> {
    // `www.` is kept: `www.corp.example` may be a zone of its own; a host below a registered
    // site is recorded against that site by `registered_site`.
    let h = host.trim().trim_end_matches('.');
    let h = crate::event::ascii_domain(h).unwrap_or_else(|| h.to_ascii_lowercase());
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if h.is_empty() {
        return Err("site is empty".into());
    }
    if h.len() > 253 || !h.split('.').all(valid_label) {
        return Err(format!("site {host:?} is not a host name"));
    }
    Ok(h)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Site,
    Entity,
    Tag,
}

/// One row as text fields, with its line and table.
#[derive(Debug)]
struct Record {
    line: usize,
    kind: Kind,
    fields: HashMap<String, String>,
}

enum Built {
    Site(SiteRow),
    Entity(EntityRow),
    Tag(TagRow),
}

/// Field holding why a record could not be read as a row at all.
const NOT_A_ROW: &str = "\u{0}";

const SITE_FIELDS: &[&str] = &["site", "tenant", "created_at", "removed_at"];
const ENTITY_FIELDS: &[&str] = &["site", "entity", "source", "confidence", "valid_from", "valid_to"];
const TAG_FIELDS: &[&str] = &["site", "tag", "source", "valid_from", "valid_to"];

fn fields_of(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Site => SITE_FIELDS,
        Kind::Entity => ENTITY_FIELDS,
        Kind::Tag => TAG_FIELDS,
    }
}

fn build(r: &Record) -> Result<Built, Vec<String>> {
    if let Some(problem) = r.fields.get(NOT_A_ROW) {
        return Err(vec![problem.clone()]);
    }
    let mut errs = Vec::new();
    for k in r.fields.keys() {
        if !fields_of(r.kind).contains(&k.as_str()) {
            errs.push(format!("unknown field {k:?} (expected {})", fields_of(r.kind).join(", ")));
        }
    }
    let get = |name: &str| r.fields.get(name).map(|s| s.trim()).unwrap_or("");
    let required = |name: &str, errs: &mut Vec<String>| -> String {
        let v = get(name);
        if v.is_empty() {
            errs.push(format!("{name} is missing"));
        }
        v.to_owned()
    };
    let time = |name: &str, errs: &mut Vec<String>, needed: bool| -> Option<Nanos> {
        let v = get(name);
        if v.is_empty() {
            if needed {
                errs.push(format!("{name} is missing"));
            }
            return None;
        }
        let t = parse_timestamp_str(v);
        if t.is_none() {
            errs.push(format!("{name} {v:?} is not an RFC 3339 time or unix seconds"));
        }
        // Whole seconds, as ClickHouse stores them: a key differing in a fraction of a second
        // would be two rows in the lake and one in ClickHouse.
        t.map(|t| t - t.rem_euclid(crate::time::NANOS_PER_SEC))
    };
    let site = match normalize_site(get("site")) {
        Ok(s) => s,
        Err(e) => {
            errs.push(e);
            String::new()
        }
    };
    let built = match r.kind {
        Kind::Site => {
            let tenant = required("tenant", &mut errs);
            let created_at = time("created_at", &mut errs, true);
            let removed_at = time("removed_at", &mut errs, false);
            if let (Some(c), Some(rm)) = (created_at, removed_at)
                && rm <= c
            {
                errs.push("removed_at must be after created_at".into());
            }
            Built::Site(SiteRow { site, tenant, created_at: created_at.unwrap_or(0), removed_at })
        }
        Kind::Entity | Kind::Tag => {
            let source = required("source", &mut errs);
            let valid_from = time("valid_from", &mut errs, true);
            let valid_to = time("valid_to", &mut errs, false);
            // `valid_to` = `valid_from` withdraws a row: it holds at no time.
            if let (Some(f), Some(t)) = (valid_from, valid_to)
                && t < f
            {
                errs.push("valid_to must not be before valid_from (equal to it withdraws the row)".into());
            }
            if r.kind == Kind::Entity {
                let entity = required("entity", &mut errs);
                let c = get("confidence");
                let confidence = match c.parse::<f64>() {
                    // `-0` is 0.
                    Ok(x) if (0.0..=1.0).contains(&x) => x + 0.0,
                    _ => {
                        errs.push(if c.is_empty() { "confidence is missing".into() } else { format!("confidence {c:?} is not a number in [0, 1]") });
                        0.0
                    }
                };
                Built::Entity(EntityRow { site, entity, source, confidence, valid_from: valid_from.unwrap_or(0), valid_to })
            } else {
                let tag = required("tag", &mut errs);
                Built::Tag(TagRow { site, tag, source, valid_from: valid_from.unwrap_or(0), valid_to })
            }
        }
    };
    if errs.is_empty() { Ok(built) } else { Err(errs) }
}

/// The table a CSV header names.
fn kind_of_header(header: &[String]) -> Option<Kind> {
    let has = |f: &str| header.iter().any(|h| h == f);
    if has("entity") {
        Some(Kind::Entity)
    } else if has("tag") {
        Some(Kind::Tag)
    } else if has("tenant") {
        Some(Kind::Site)
    } else {
        None
    }
}

fn csv_records(text: &str) -> Result<Vec<Record>, RowError> {
    let rows = csv_rows(text)?;
    let mut rows = rows.into_iter().filter(|(_, fields)| !(fields.len() == 1 && fields[0].trim().is_empty()));
    let Some((_, header)) = rows.next() else {
        return Err(RowError { line: 0, message: "the file is empty".into() });
    };
    let header: Vec<String> = header.iter().map(|h| h.trim().to_ascii_lowercase()).collect();
    if let Some(twice) = header.iter().enumerate().find_map(|(i, h)| header[..i].contains(h).then_some(h)) {
        return Err(RowError { line: 1, message: format!("the header names the column {twice:?} twice") });
    }
    let kind = kind_of_header(&header).ok_or_else(|| RowError {
        line: 1,
        message: format!(
            "header {:?} names no registry table: expected {} | {} | {}",
            header.join(","),
            ENTITY_FIELDS.join(","),
            TAG_FIELDS.join(","),
            SITE_FIELDS.join(",")
        ),
    })?;
    let mut out = Vec::new();
    for (line, fields) in rows {
        if fields.len() != header.len() {
            out.push(Record {
                line,
                kind,
                fields: HashMap::from([(
                    NOT_A_ROW.to_owned(),
                    format!("{} fields where the header has {}", fields.len(), header.len()),
                )]),
            });
            continue;
        }
        out.push(Record { line, kind, fields: header.iter().cloned().zip(fields).collect() });
    }
    Ok(out)
}

/// RFC 4180 rows with the line each starts on.
fn csv_rows(text: &str) -> Result<Vec<(usize, Vec<String>)>, RowError> {
    let mut rows = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    let mut row_line = 1;
    let mut row: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut at_field_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                c => {
                    if c == '\n' {
                        line += 1;
                    }
                    field.push(c);
                }
            }
            continue;
        }
        match c {
            '"' if at_field_start => {
                quoted = true;
                at_field_start = false;
            }
            ',' => {
                row.push(std::mem::take(&mut field));
                at_field_start = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push((row_line, std::mem::take(&mut row)));
                line += 1;
                row_line = line;
                at_field_start = true;
            }
            c => {
                field.push(c);
                at_field_start = false;
            }
        }
    }
    if quoted {
        return Err(RowError { line: row_line, message: "unterminated quoted field".into() });
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push((row_line, row));
    }
    Ok(rows)
}

fn json_records(text: &str) -> Result<Vec<Record>, RowError> {
    use crate::event::{MAX_JSON_DEPTH, json_nesting_exceeds};
    // The parser recurses once per level: a deep enough file would overflow the stack.
    if json_nesting_exceeds(text, MAX_JSON_DEPTH) {
        return Err(RowError { line: 0, message: format!("not JSON: nested deeper than {MAX_JSON_DEPTH} levels") });
    }
    let value: sonic_rs::Value =
        sonic_rs::from_str(text).map_err(|e| RowError { line: 0, message: format!("not JSON: {e}") })?;
    let lines = element_lines(text);
    use sonic_rs::{JsonContainerTrait, JsonValueTrait};
    let mut out = Vec::new();
    let mut push_array = |kind: Kind, arr: &sonic_rs::Array, lines: &[usize]| {
        for (i, item) in arr.iter().enumerate() {
            let line = lines.get(i).copied().unwrap_or(0);
            let mut fields = HashMap::new();
            match item.as_object() {
                Some(obj) => {
                    let mut twice = None;
                    for (k, v) in obj.iter() {
                        let text = if let Some(s) = v.as_str() {
                            s.to_owned()
                        } else if v.is_null() {
                            String::new()
                        } else {
                            v.to_string()
                        };
                        // A field given twice is a mistake, as a column named twice in a CSV
                        // header is: neither value is taken.
                        if fields.insert(k.to_ascii_lowercase(), text).is_some() {
                            twice.get_or_insert_with(|| k.to_ascii_lowercase());
                        }
                    }
                    if let Some(k) = twice {
                        fields = HashMap::from([(NOT_A_ROW.to_owned(), format!("the field {k:?} is given twice"))]);
                    }
                }
                None => {
                    fields.insert(NOT_A_ROW.to_owned(), "not an object".to_owned());
                }
            }
            out.push(Record { line, kind, fields });
        }
    };
    if let Some(arr) = value.as_array() {
        push_array(Kind::Entity, arr, lines.get("").map_or(&[], Vec::as_slice));
    } else if let Some(obj) = value.as_object() {
        for (k, v) in obj.iter() {
            let kind = match k {
                "sites" => Kind::Site,
                "entities" => Kind::Entity,
                "tags" => Kind::Tag,
                other => {
                    return Err(RowError { line: 0, message: format!("unknown key {other:?}: expected sites, entities, tags") });
                }
            };
            let arr = v.as_array().ok_or_else(|| RowError { line: 0, message: format!("{k} must be an array") })?;
            push_array(kind, arr, lines.get(k).map_or(&[], Vec::as_slice));
        }
    } else {
        return Err(RowError { line: 0, message: "expected an object {\"sites\", \"entities\", \"tags\"} or an array".into() });
    }
    Ok(out)
}

/// For each top-level array (key "" for a bare array, else its key in the top object), the line
/// each element starts on. A scanner over the text: the parser does not report positions.
fn element_lines(text: &str) -> HashMap<String, Vec<usize>> {
    let mut out: HashMap<String, Vec<usize>> = HashMap::new();
    let (mut depth, mut line) = (0usize, 1usize);
    let (mut in_string, mut escaped) = (false, false);
    let mut current_key = String::new();
    let mut last_string = String::new();
    let mut string_buf = String::new();
    let mut top_is_array = false;
    let mut expect_element = false;
    for c in text.chars() {
        if c == '\n' {
            line += 1;
        }
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
                last_string = std::mem::take(&mut string_buf);
            } else {
                string_buf.push(c);
            }
            continue;
        }
        let element_depth = if top_is_array { 1 } else { 2 };
        if expect_element && !c.is_whitespace() && c != ']' {
            out.entry(current_key.clone()).or_default().push(line);
            expect_element = false;
        }
        match c {
            '"' => in_string = true,
            ':' if depth == 1 && !top_is_array => current_key = last_string.clone(),
            '[' | '{' => {
                if depth == 0 && c == '[' {
                    top_is_array = true;
                    current_key.clear();
                }
                depth += 1;
                // Its own depth: a bare array's `[` has just made the elements' depth 1.
                if c == '[' && depth == if top_is_array { 1 } else { 2 } {
                    expect_element = true;
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            ',' if depth == element_depth => expect_element = true,
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: in a bare array the first element's line was not found, so every element was
    /// given the next one's line (and the last none).
    #[test]
    fn json_elements_have_their_lines_in_a_bare_array_and_under_keys() {
        let bare = "[\n  {\"site\": \"a.example\"},\n\n  {\"site\": \"b.example\"}\n]\n";
        assert_eq!(element_lines(bare).get(""), Some(&vec![2, 4]));
        let keyed = "{\"entities\": [\n {\"site\": \"a.example\"},\n {\"site\": \"b.example\"}],\n \"tags\": [{\"site\": \"c.example\"}]}";
        let lines = element_lines(keyed);
        assert_eq!((lines.get("entities"), lines.get("tags")), (Some(&vec![2, 3]), Some(&vec![4])));
        let e = parse(
            "[\n {\"site\":\"a.example\",\"entity\":\"A\",\"source\":\"s\",\"confidence\":\"7\",\"valid_from\":\"2026-11-01T00:00:00Z\"}\n]",
            Format::Json,
            &Known::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 2"), "{e}");
    }

    /// Regression: a JSON registry nested deeper than the stack allows crashed the import.
    #[test]
    fn a_json_registry_nested_too_deep_is_refused() {
        let deep = format!("{{\"entities\": {}{}}}", "[".repeat(200_000), "]".repeat(200_000));
        let e = parse(&deep, Format::Json, &Known::default()).unwrap_err().to_string();
        assert!(e.contains("nested deeper than 128 levels"), "{e}");
    }

    #[test]
    fn a_host_belongs_to_itself_or_its_longest_registered_parent() {
        let sites: BTreeSet<String> = ["shop.example", "eu.shop.example", "other.example"].map(String::from).into();
        let of = |h| registered_site(h, |s| sites.contains(s));
        assert_eq!(of("shop.example"), Some("shop.example"));
        assert_eq!(of("www.shop.example"), Some("shop.example"));
        assert_eq!(of("a.b.shop.example"), Some("shop.example"));
        assert_eq!(of("cdn.eu.shop.example"), Some("eu.shop.example"), "the longest registered suffix");
        assert_eq!(of("myshop.example"), None, "a suffix only at a label boundary");
        assert_eq!(of("example"), None);
        assert_eq!(of("unknown.test"), None);
    }

    fn t(s: &str) -> Nanos {
        parse_timestamp_str(s).unwrap()
    }

    #[test]
    fn csv_entities_with_quotes_and_open_ends() {
        let text = "site,entity,source,confidence,valid_from,valid_to\n\
                    WWW.Shop.Example.,\"Org, Inc.\",registrar,0.9,2026-11-01T00:00:00Z,\n\
                    api.shop.example,Org B,\"press \"\"report\"\"\",0.5,2026-11-01T00:00:00Z,2026-11-02T00:00:00Z\r\n";
        let known = Known::sites(["shop.example".to_owned()]);
        let r = parse(text, Format::Csv, &known).unwrap();
        assert_eq!(r.entities.len(), 2);
        assert_eq!(r.entities[0].site, "shop.example");
        assert_eq!(r.entities[0].entity, "Org, Inc.");
        assert_eq!(r.entities[0].valid_to, None);
        assert_eq!(r.entities[1].site, "shop.example", "a host below a site maps to it");
        assert_eq!(r.entities[1].source, "press \"report\"");
        assert_eq!(r.entities[1].valid_to, Some(t("2026-11-02T00:00:00Z")));
    }

    /// Regression: a row of a key the registry keeps under a host name (imported before its site
    /// was registered) was recorded under the site, as a second attribution: a `valid_to` did not
    /// end the stored one, and an export imported back added rows.
    #[test]
    fn a_key_kept_under_a_host_name_stays_there() {
        let text = "site,entity,source,confidence,valid_from,valid_to
                    www.h.example,OrgH,whois,0.9,2026-11-01T00:00:00Z,2026-11-01T00:03:00Z
                    www.h.example,OrgI,whois,0.9,2026-11-01T00:00:00Z,
                    www.h.example,OrgH,whois,0.9,2026-11-02T00:00:00Z,
";
        let tags = "site,tag,source,valid_from,valid_to
www.h.example,watch,list,2026-11-01T00:00:00Z,
www.h.example,other,list,2026-11-01T00:00:00Z,
";
        let mut known = Known::sites(["h.example".to_owned()]);
        known.entity_keys.insert(("www.h.example".into(), "OrgH".into(), t("2026-11-01T00:00:00Z")));
        known.tag_keys.insert(("www.h.example".into(), "watch".into(), t("2026-11-01T00:00:00Z")));
        let r = parse(text, Format::Csv, &known).unwrap();
        let sites: Vec<&str> = r.entities.iter().map(|e| e.site.as_str()).collect();
        // The stored key stays under the host; another entity or another start is the site's.
        assert_eq!(sites, ["www.h.example", "h.example", "h.example"]);
        let r = parse(tags, Format::Csv, &known).unwrap();
        assert_eq!(r.tags.iter().map(|t| t.site.as_str()).collect::<Vec<_>>(), ["www.h.example", "h.example"]);
        // Without the stored key, the host name maps to its site as before.
        let r = parse(text, Format::Csv, &Known::sites(["h.example".to_owned()])).unwrap();
        assert!(r.entities.iter().all(|e| e.site == "h.example"));
    }

    #[test]
    fn every_bad_row_is_reported_with_its_line() {
        let text = "site,entity,source,confidence,valid_from,valid_to\n\
                    a.example,Org,src,0.9,2026-11-01T00:00:00Z,\n\
                    bad host!,Org,src,1.5,yesterday,\n\
                    b.example,,src,0.5,2026-11-01T00:00:00Z,2026-10-01T00:00:00Z\n\
                    a.example,Org,src,0.7,2026-11-01T00:00:00Z,\n\
                    c.example,Org\n";
        let e = parse(text, Format::Csv, &Known::default()).unwrap_err();
        let lines: Vec<usize> = e.0.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![3, 3, 3, 4, 4, 5, 6], "{e}");
        let text = e.to_string();
        for needle in ["line 3: site \"bad host!\" is not a host name", "confidence \"1.5\"", "valid_from \"yesterday\"", "line 4: entity is missing", "valid_to must not be before valid_from", "line 5: mapping a.example → Org from 2026-11-01T00:00:00Z already given on line 2", "line 6: 2 fields where the header has 6"] {
            assert!(text.contains(needle), "{needle:?} not in {text}");
        }
    }

    /// Regressions: JSON written on one line reported only its first repeated key (the records
    /// after an error on a line were skipped, and could be paired with another record's row); a
    /// column named twice in a CSV header was taken, the last value winning; a JSON file with a
    /// byte order mark was "not JSON" (a CSV one was read); a confidence of `-0` stayed `-0`; a
    /// field given twice in a JSON record was taken too, the last value winning.
    #[test]
    fn one_line_json_repeated_columns_byte_order_marks() {
        let e = |from: &str| format!(r#"{{"site":"a.example","entity":"Org","source":"s","confidence":0.5,"valid_from":"{from}"}}"#);
        let t = |tag: &str| format!(r#"{{"site":"a.example","tag":"{tag}","source":"s","valid_from":"2026-11-01T00:00:00Z"}}"#);
        let one_line = format!(
            r#"{{"entities":[{},{},{},{}],"tags":[{},{},{}]}}"#,
            e("2026-11-01T00:00:00Z"),
            e("2026-11-01T00:00:00Z"),
            e("2026-11-02T00:00:00Z"),
            e("2026-11-01T00:00:00Z"),
            t("w"),
            t("w"),
            t("x")
        );
        let err = parse(&one_line, Format::Json, &Known::default()).unwrap_err();
        assert_eq!(err.0.len(), 3, "{err}");
        assert_eq!(err.to_string().matches("mapping a.example → Org from 2026-11-01T00:00:00Z already given on line 1").count(), 2, "{err}");
        assert!(err.to_string().contains("tag w on a.example from 2026-11-01T00:00:00Z already given on line 1"), "{err}");

        let twice = "site,entity,source,confidence,valid_from,valid_to,entity\nx.example,E1,s,0.5,2026-11-01T00:00:00Z,,E2\n";
        let err = parse(twice, Format::Csv, &Known::default()).unwrap_err().to_string();
        assert!(err.contains("line 1: the header names the column \"entity\" twice"), "{err}");

        let twice = r#"[{"site":"a.example","site":"b.example","entity":"Org","source":"s","confidence":0.5,"valid_from":"2026-11-01T00:00:00Z"}]"#;
        let err = parse(twice, Format::Json, &Known::default()).unwrap_err().to_string();
        assert!(err.contains("the field \"site\" is given twice"), "{err}");
        let bom = format!("\u{feff}[{}]", e("2026-11-01T00:00:00Z").replace("0.5", "-0"));
        let r = parse(&bom, Format::Json, &Known::default()).unwrap();
        assert_eq!(r.entities[0].confidence.to_bits(), 0.0f64.to_bits(), "-0 is 0");
        let r = parse("\u{feff}site,tag,source,valid_from,valid_to\r\nx.example,w,s,2026-11-01T00:00:00Z,\r\n", Format::Csv, &Known::default()).unwrap();
        assert_eq!(r.tags.len(), 1);
    }

    #[test]
    fn json_with_all_tables_and_lines() {
        let text = r#"{
  "sites": [
    {"site": "shop.example", "tenant": "acme", "created_at": "2026-01-01T00:00:00Z"},
    {"site": "blog.example", "tenant": "acme", "created_at": "2026-01-01T00:00:00Z", "removed_at": null}
  ],
  "entities": [
    {"site": "cdn.shop.example", "entity": "Org A", "source": "whois", "confidence": 0.8, "valid_from": "2026-11-01T00:00:00Z"},
    {"site": "blog.example", "entity": "Org A", "source": "whois", "confidence": 2, "valid_from": "2026-11-01T00:00:00Z"}
  ],
  "tags": [
    {"site": "blog.example", "tag": "watchlist-x", "source": "ofac", "valid_from": "2026-11-01T00:00:00Z", "extra": 1}
  ]
}"#;
        let e = parse(text, Format::Json, &Known::default()).unwrap_err();
        assert_eq!(e.0.iter().map(|e| e.line).collect::<Vec<_>>(), vec![8, 11], "{e}");
        let ok = text.replace("\"confidence\": 2", "\"confidence\": 0.2").replace(", \"extra\": 1", "");
        let r = parse(&ok, Format::Json, &Known::default()).unwrap();
        assert_eq!((r.sites.len(), r.entities.len(), r.tags.len()), (2, 2, 1));
        assert_eq!(r.entities[0].site, "shop.example", "mapped to the site of this import");
        assert_eq!(r.sites[1].removed_at, None);
    }

    #[test]
    fn headers_name_the_table() {
        let r = parse("site,tag,source,valid_from,valid_to\nx.example,wl,src,1793491200,\n", Format::Csv, &Known::default()).unwrap();
        assert_eq!(r.tags[0].valid_from, t("2026-11-01T00:00:00Z"));
        let r = parse("tenant,site,created_at,removed_at\nacme,x.example,2026-01-01T00:00:00Z,\n", Format::Csv, &Known::default()).unwrap();
        assert_eq!(r.sites[0].tenant, "acme");
        assert!(parse("a,b\n1,2\n", Format::Csv, &Known::default()).is_err());
        assert!(parse("", Format::Csv, &Known::default()).is_err());
        assert!(parse("site,tag,source,valid_from,valid_to\n", Format::Csv, &Known::default()).is_err());
    }

    #[test]
    fn rows_become_batches_of_their_tables() {
        let text = "site,entity,source,confidence,valid_from,valid_to\na.example,Org,src,0.9,2026-11-01T00:00:00Z,\n";
        let r = parse(text, Format::Csv, &Known::default()).unwrap();
        let b = r.batches(1_793_491_200_000_000_000).unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].0.name, "site_entities");
        assert_eq!(b[0].1.num_rows(), 1);
        assert_eq!(b[0].1.column(5).null_count(), 1);
        let stamped = b[0].1.column_by_name("imported_at").unwrap().as_any().downcast_ref::<TimestampMicrosecondArray>().unwrap().value(0);
        assert_eq!(stamped, 1_793_491_200_000_000, "each row carries the import's time");
        assert_eq!(content_id(b"abc"), content_id(b"abc"));
        let audit = AuditRow::import(t("2026-11-02T00:00:00Z"), "ops", "e.csv", &content_id(text.as_bytes()), &r);
        assert_eq!((audit.sites, audit.entities, audit.tags), (0, 1, 0));
        assert_eq!(audit.batch().unwrap().num_rows(), 1);
        assert_ne!(content_id(b"abc"), content_id(b"abd"));
    }

    #[test]
    fn site_names() {
        assert_eq!(normalize_site(" WWW.Example.COM. ").unwrap(), "www.example.com", "a www. zone is a zone of its own");
        assert!(normalize_site("-bad.example").is_err());
        assert!(normalize_site("a..example").is_err());
        assert!(normalize_site("").is_err());
        // An internationalised name in its ASCII form, as events are counted.
        assert_eq!(normalize_site("Bücher.Example.").unwrap(), "xn--bcher-kva.example");
        assert!(normalize_site("bü cher.example").is_err());
    }
}
