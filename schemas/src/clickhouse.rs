//! The ClickHouse side of the table contract: DDL and versioned migrations, derived from
//! [`crate::tables`] (no column list is written twice). No I/O: the statements are run by the
//! aggregate crate's migrator.
//!
//! Layout of one table `T` (names in the configured database):
//! - `T_local` — MergeTree storage ordered by `T`'s key columns, partitioned by day. Besides the
//!   contract columns it carries the provenance of each row: [`PROVENANCE`] = the source
//!   (`<group>_<topic>` or `replay`), partition and `(from, to]` offset span of the write. Rows are
//!   deltas (readers sum them); a span is removed with `ALTER TABLE ... DELETE` when a crashed
//!   writer's work is discarded, which is what makes the sink exactly-once.
//! - `T_all` (clusters only) — a `Distributed` table over every shard's `T_local`.
//! - `T` — a view with exactly the contract columns over `T_local` (or `T_all`), so `SELECT *`,
//!   SQL and the query service see the same columns as in the Parquet lake.
//!
//! Everything here works on ClickHouse 18.16 (the oldest server supported): `DateTime`, `String`,
//! `MergeTree()` with `PARTITION BY`, `ALTER ... DELETE`, `Distributed`, views. Newer-only features
//! (TTL, LowCardinality, CODEC, DateTime64) are not used.

use serde::{Deserialize, Serialize};

use crate::tables::{ColumnType, TableDef, ALL_TABLES, VERSION_COLUMN};

/// Provenance columns of every `_local` table: `(name, ClickHouse type)`.
pub const PROVENANCE: [(&str, &str); 4] = [("_source", "String"), ("_partition", "Int32"), ("_from", "UInt64"), ("_to", "UInt64")];

/// Internal table of the spans written to a server (the sink's manifest): a span is recorded
/// before its rows are inserted, so writing a span that is already there is detected cheaply and
/// turned into delete-then-insert.
pub const SPANS_TABLE: &str = "_spans_local";

/// Table that records which migrations ran on a server.
pub const MIGRATIONS_TABLE: &str = "schema_migrations";

/// How edgelens reaches ClickHouse (`[clickhouse]` in the config file, shared by the aggregate and
/// query roles). ClickHouse is used only when `url` (or `shards`) is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// HTTP interface of the server the query role reads (and, without `shards`, the one written).
    pub url: String,
    /// HTTP interfaces of a cluster's shards, one server each. The schema is migrated on every
    /// shard; all writes of one source partition go to one shard, chosen by hashing
    /// `(source, partition)` over this list (so keep its order when adding shards). Empty: `[url]`.
    pub shards: Vec<String>,
    pub database: String,
    /// Cluster name of the shards in the servers' `remote_servers` config ("" = one server): adds
    /// the `T_all` Distributed tables, and the contract views read through them.
    pub cluster: String,
    /// Use `ON CLUSTER` DDL (ZooKeeper-backed distributed DDL) instead of running the migrations on
    /// each shard.
    pub on_cluster: bool,
    pub user: String,
    pub password: String,
    /// Longest wait between retries of a failed write; writes are retried until they succeed or the
    /// process is stopped, and meanwhile no offset is committed (backpressure).
    pub max_backoff_ms: u64,
    /// Time limit of one request.
    pub request_timeout_ms: u64,
    /// One-shot commands (`replay --clickhouse`, `registry import`, the query service's registry
    /// imports): how long to wait for the servers to answer before failing with the reason. The
    /// aggregator waits until they answer.
    pub connect_timeout_ms: u64,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        ClickHouseConfig {
            url: String::new(),
            shards: Vec::new(),
            database: "edgelens".to_owned(),
            cluster: String::new(),
            on_cluster: false,
            user: "default".to_owned(),
            password: String::new(),
            max_backoff_ms: 5_000,
            request_timeout_ms: 60_000,
            connect_timeout_ms: 30_000,
        }
    }
}

impl ClickHouseConfig {
    /// Settings that cannot work: a server address that is not an HTTP(S) URL, an empty database.
    pub fn validate(&self) -> Result<(), String> {
        let urls = std::iter::once(&self.url).filter(|u| !u.is_empty()).chain(&self.shards).map(|url| {
            let scheme_ok = ["http://", "https://"].iter().any(|s| url.len() > s.len() && url[..s.len()].eq_ignore_ascii_case(s));
            if scheme_ok { Ok(()) } else { Err(format!("clickhouse url {url:?} is not an HTTP interface: expected http://HOST:PORT or https://HOST:PORT")) }
        });
        let mut seen = std::collections::BTreeSet::new();
        let twice = match self.shards.iter().find(|s| !seen.insert(s.trim().trim_end_matches('/').to_ascii_lowercase())) {
            Some(twice) => Err(format!("clickhouse.shards lists {twice:?} twice: each shard would get the writes of two")),
            None => Ok(()),
        };
        let others = [
            if self.database.is_empty() { Err("clickhouse.database is empty".to_owned()) } else { Ok(()) },
            crate::settings::at_least_one("clickhouse", &[("max_backoff_ms", self.max_backoff_ms), ("request_timeout_ms", self.request_timeout_ms), ("connect_timeout_ms", self.connect_timeout_ms)]),
            twice,
        ];
        crate::settings::all(urls.chain(others))
    }

    /// A config for one server at `url`, other settings default.
    pub fn for_url(url: &str) -> Self {
        ClickHouseConfig { url: url.to_owned(), ..Self::default() }
    }

    pub fn enabled(&self) -> bool {
        !self.url.trim().is_empty() || !self.shards.is_empty()
    }

    /// The servers written to and migrated: `shards`, or `[url]`.
    pub fn write_servers(&self) -> Vec<String> {
        if self.shards.is_empty() { vec![self.url.clone()] } else { self.shards.clone() }
    }

    /// The server queries go to: `url`, or the first shard.
    pub fn read_server(&self) -> &str {
        if self.url.trim().is_empty() { self.shards.first().map_or("", String::as_str) } else { &self.url }
    }

    pub fn layout(&self) -> Layout {
        Layout {
            database: self.database.clone(),
            cluster: (!self.cluster.trim().is_empty()).then(|| self.cluster.clone()),
            on_cluster: self.on_cluster,
        }
    }
}

/// Where and how the tables are created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Database holding every table (created by the first migration).
    pub database: String,
    /// Cluster name from the servers' `remote_servers` config: when set, `T_all` Distributed tables
    /// are created and the views read through them.
    pub cluster: Option<String>,
    /// Add `ON CLUSTER <cluster>` to every statement (needs ZooKeeper-backed distributed DDL).
    /// Without it, the migrator runs the same statements on each shard itself.
    pub on_cluster: bool,
}

impl Layout {
    pub fn single(database: &str) -> Self {
        Layout { database: database.to_owned(), cluster: None, on_cluster: false }
    }

    fn on_cluster(&self) -> String {
        match (&self.cluster, self.on_cluster) {
            (Some(c), true) => format!(" ON CLUSTER `{c}`"),
            _ => String::new(),
        }
    }

    /// `` `db`.`name` ``.
    pub fn qualified(&self, name: &str) -> String {
        format!("`{}`.`{name}`", self.database)
    }

    /// Name of the storage table of `table`.
    pub fn local_name(table: &TableDef) -> String {
        format!("{}_local", table.name)
    }

    /// Name of the Distributed table of `table`.
    pub fn all_name(table: &TableDef) -> String {
        format!("{}_all", table.name)
    }

    /// The table the contract view reads: `T_all` on a cluster, `T_local` otherwise.
    pub fn read_name(&self, table: &TableDef) -> String {
        if self.cluster.is_some() { Self::all_name(table) } else { Self::local_name(table) }
    }

    /// Column type as declared in ClickHouse.
    pub fn column_type(c: &crate::ColumnDef) -> String {
        let ty = c.ty.clickhouse();
        if c.nullable { format!("Nullable({ty})") } else { ty.to_owned() }
    }

    /// `CREATE TABLE IF NOT EXISTS T_local`: contract columns, then provenance, MergeTree ordered
    /// by the non-nullable key columns and partitioned by day of the time column.
    pub fn local_ddl(&self, table: &TableDef) -> String {
        self.local_ddl_at(table, u32::MAX)
    }

    /// [`Self::local_ddl`] with the columns of schema version `version`.
    pub fn local_ddl_at(&self, table: &TableDef, version: u32) -> String {
        let mut cols: Vec<String> = table.columns.iter().filter(|c| c.since <= version).map(|c| format!("    `{}` {}", c.name, Self::column_type(c))).collect();
        cols.extend(PROVENANCE.iter().map(|(n, t)| format!("    `{n}` {t}")));
        let order: Vec<_> = table.key_columns().filter(|c| !c.nullable).map(|c| format!("`{}`", c.name)).collect();
        let order = if order.is_empty() { "tuple()".to_owned() } else { format!("({})", order.join(", ")) };
        let partition = match table.column(table.time_column) {
            Some(c) if !c.nullable && c.ty == ColumnType::Timestamp => format!("\nPARTITION BY toYYYYMMDD(`{}`)", table.time_column),
            _ => String::new(),
        };
        format!(
            "CREATE TABLE IF NOT EXISTS {}{} (\n{}\n) ENGINE = MergeTree(){partition}\nORDER BY {order}",
            self.qualified(&Self::local_name(table)),
            self.on_cluster(),
            cols.join(",\n")
        )
    }

    /// `CREATE TABLE IF NOT EXISTS T_all ... ENGINE = Distributed(...)`; `None` without a cluster.
    /// Rows are never inserted through it (the sink writes each source partition to one shard's
    /// `T_local`), so the sharding key only matters for other writers.
    pub fn distributed_ddl(&self, table: &TableDef) -> Option<String> {
        let cluster = self.cluster.as_ref()?;
        Some(format!(
            "CREATE TABLE IF NOT EXISTS {}{} AS {} ENGINE = Distributed(`{cluster}`, `{}`, `{}`, rand())",
            self.qualified(&Self::all_name(table)),
            self.on_cluster(),
            self.qualified(&Self::local_name(table)),
            self.database,
            Self::local_name(table)
        ))
    }

    /// `CREATE VIEW IF NOT EXISTS T AS SELECT <contract columns> FROM T_local|T_all`.
    pub fn view_ddl(&self, table: &TableDef) -> String {
        self.view_ddl_at(table, u32::MAX)
    }

    /// [`Self::view_ddl`] with the columns of schema version `version`. A registry table's view
    /// (from the version that stamps its rows with [`VERSION_COLUMN`]) shows the current version
    /// of each key only, chosen as [`crate::tables::Latest`] says; imports in the same second
    /// (`DateTime`) are ordered by their source, which starts with the import's time in
    /// nanoseconds. The rows are read through a subquery, so on a cluster the choice is made
    /// over every shard's rows.
    pub fn view_ddl_at(&self, table: &TableDef, version: u32) -> String {
        let cols: Vec<_> = table.columns.iter().filter(|c| c.since <= version).map(|c| format!("`{}`", c.name)).collect();
        let from = self.qualified(&self.read_name(table));
        let versioned = table.column(VERSION_COLUMN).is_some_and(|c| c.since <= version);
        let select = match table.latest.filter(|_| versioned) {
            Some(latest) => {
                let keys: Vec<_> = latest.key.iter().map(|c| format!("`{c}`")).collect();
                let keys = keys.join(", ");
                let rest: String = table.latest_tie_break().map(|c| format!(", `{c}`")).collect();
                format!(
                    "SELECT {} FROM (SELECT * FROM {from}) ORDER BY {keys}, `{VERSION_COLUMN}` DESC NULLS LAST, \
                     if(isNull(`{VERSION_COLUMN}`), '', `_source`) DESC, `{}` DESC NULLS LAST{rest} LIMIT 1 BY {keys}",
                    cols.join(", "),
                    latest.end
                )
            }
            None => format!("SELECT {} FROM {from}", cols.join(", ")),
        };
        format!("CREATE VIEW IF NOT EXISTS {}{} AS {select}", self.qualified(table.name), self.on_cluster())
    }

    /// Every column a `_local` table must have, in order: `(name, type)`.
    pub fn expected_local_columns(table: &TableDef) -> Vec<(String, String)> {
        let mut cols: Vec<_> = table.columns.iter().map(|c| (c.name.to_owned(), Self::column_type(c))).collect();
        cols.extend(PROVENANCE.iter().map(|(n, t)| ((*n).to_owned(), (*t).to_owned())));
        cols
    }

    /// `CREATE TABLE IF NOT EXISTS _spans_local`, see [`SPANS_TABLE`].
    pub fn spans_ddl(&self) -> String {
        let cols: Vec<_> = PROVENANCE.iter().map(|(n, t)| format!("`{n}` {t}")).collect();
        format!(
            "CREATE TABLE IF NOT EXISTS {}{} ({}, `written_at` DateTime) ENGINE = MergeTree() ORDER BY (`_source`, `_partition`, `_from`, `_to`)",
            self.qualified(SPANS_TABLE),
            self.on_cluster(),
            cols.join(", ")
        )
    }

    /// The migrations table itself (created before any migration runs).
    pub fn migrations_table_ddl(&self) -> [String; 2] {
        [
            format!("CREATE DATABASE IF NOT EXISTS `{}`{}", self.database, self.on_cluster()),
            format!(
                "CREATE TABLE IF NOT EXISTS {}{} (`version` UInt32, `name` String, `applied_at` DateTime) ENGINE = MergeTree() ORDER BY `version`",
                self.qualified(MIGRATIONS_TABLE),
                self.on_cluster()
            ),
        ]
    }

    /// All migrations, oldest first. A server at version `v` runs those with `version > v`, in
    /// order, recording each in [`MIGRATIONS_TABLE`]. Statements are idempotent (`IF NOT EXISTS`),
    /// so a migration interrupted half-way is simply run again. New schema changes are appended as
    /// new versions; released ones are never edited.
    pub fn migrations(&self) -> Vec<Migration> {
        let mut initial = vec![self.spans_ddl()];
        initial.extend(self.added_tables(1));
        vec![
            Migration { version: 1, name: "initial tables: T_local storage, T_all on clusters, T views, span manifest", statements: initial },
            Migration { version: 2, name: "incidents.updated_ts", statements: self.added_columns(2) },
            Migration { version: 3, name: "registry_audit", statements: self.added_tables(3) },
            Migration {
                version: 4,
                name: "registry tables: imported_at, views show the current version of each key",
                statements: self.added_columns(4),
            },
        ]
    }

    /// Statements creating the tables of schema version `version` (storage, `Distributed` table on
    /// clusters, view), with the columns they had in that version.
    fn added_tables(&self, version: u32) -> Vec<String> {
        let mut out = Vec::new();
        for t in ALL_TABLES.iter().filter(|t| t.since == version) {
            out.push(self.local_ddl_at(t, version));
            out.extend(self.distributed_ddl(t));
            out.push(self.view_ddl_at(t, version));
        }
        out
    }

    /// Statements adding the columns of schema version `version`: `ADD COLUMN` on `T_local`
    /// (and `T_all`), then the view recreated. An `ADD COLUMN` whose column exists already (a
    /// migration interrupted after it) fails with "already exists", which the runner accepts.
    fn added_columns(&self, version: u32) -> Vec<String> {
        let mut out = Vec::new();
        for t in ALL_TABLES {
            let mut changed = false;
            for (i, c) in t.columns.iter().enumerate().filter(|(_, c)| c.since == version) {
                let after = i.checked_sub(1).map(|p| format!(" AFTER `{}`", t.columns[p].name)).unwrap_or_default();
                let mut targets = vec![Self::local_name(t)];
                if self.cluster.is_some() {
                    targets.push(Self::all_name(t));
                }
                for target in targets {
                    out.push(format!(
                        "ALTER TABLE {}{} ADD COLUMN `{}` {}{after}",
                        self.qualified(&target),
                        self.on_cluster(),
                        c.name,
                        Self::column_type(c)
                    ));
                }
                changed = true;
            }
            if changed {
                // The view with the columns of this version: a later version's columns are not
                // there yet when an old database is upgraded through this step.
                out.push(format!("DROP TABLE IF EXISTS {}{}", self.qualified(t.name), self.on_cluster()));
                out.push(self.view_ddl_at(t, version));
            }
        }
        out
    }

    /// The newest schema version this build knows.
    pub fn latest_version(&self) -> u32 {
        self.migrations().last().map_or(0, |m| m.version)
    }
}

/// One schema version step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub statements: Vec<String>,
}

/// The `Code: N` of a ClickHouse server error message.
pub fn error_code(msg: &str) -> Option<u32> {
    let rest = &msg[msg.find("Code: ")? + 6..];
    let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// SQL string literal for ClickHouse (single quotes, backslash escapes).
pub fn string_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for ch in s.chars() {
        match ch {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_are_http_urls() {
        assert!(ClickHouseConfig::default().validate().is_ok(), "no server configured");
        assert!(ClickHouseConfig::for_url("http://127.0.0.1:8123").validate().is_ok());
        assert!(ClickHouseConfig::for_url("HTTPS://ch.example:8443").validate().is_ok());
        for bad in ["ftp://x", "127.0.0.1:8123", "http://"] {
            let e = ClickHouseConfig::for_url(bad).validate().unwrap_err();
            assert!(e.contains("not an HTTP interface"), "{bad}: {e}");
        }
        let shards = ClickHouseConfig { shards: vec!["http://a:8123".into(), "tcp://b:9000".into()], ..ClickHouseConfig::default() };
        assert!(shards.validate().unwrap_err().contains("tcp://b:9000"));
        assert!(ClickHouseConfig { database: String::new(), ..ClickHouseConfig::for_url("http://a:1") }.validate().is_err());
    }
    use crate::tables::{SITES, SITE_ENTITIES, SITE_RATES_10S};
    // The DDL of every table is also recorded in tests/golden/tables.txt.

    #[test]
    fn cluster_layout_reads_through_distributed_tables() {
        let l = Layout { database: "edgelens".into(), cluster: Some("edge".into()), on_cluster: true };
        let d = l.distributed_ddl(&SITE_RATES_10S).unwrap();
        assert!(d.contains("`edgelens`.`site_rates_10s_all` ON CLUSTER `edge` AS `edgelens`.`site_rates_10s_local`"), "{d}");
        assert!(d.ends_with("Distributed(`edge`, `edgelens`, `site_rates_10s_local`, rand())"), "{d}");
        let v = l.view_ddl(&SITE_RATES_10S);
        assert!(v.contains("ON CLUSTER `edge`") && v.ends_with("FROM `edgelens`.`site_rates_10s_all`"), "{v}");
        assert!(Layout::single("edgelens").distributed_ddl(&SITE_RATES_10S).is_none());
        assert!(Layout::single("x").local_ddl(&SITES).contains("PARTITION BY toYYYYMMDD(`created_at`)\nORDER BY (`site`)"));
    }

    #[test]
    fn migrations_are_increasing_and_cover_every_table() {
        let l = Layout::single("edgelens");
        let ms = l.migrations();
        assert!(ms.windows(2).all(|w| w[0].version < w[1].version));
        assert_eq!(l.latest_version(), ms.last().unwrap().version);
        let all: String = ms.iter().flat_map(|m| m.statements.iter()).cloned().collect::<Vec<_>>().join("\n");
        for t in ALL_TABLES {
            assert!(all.contains(&format!("`edgelens`.`{}_local`", t.name)), "{}", t.name);
            assert!(all.contains(&format!("CREATE VIEW IF NOT EXISTS `edgelens`.`{}`", t.name)), "{}", t.name);
        }
    }

    #[test]
    fn registry_views_show_the_current_version_of_each_key_from_version_4() {
        let l = Layout { database: "edgelens".into(), cluster: Some("edge".into()), on_cluster: false };
        let v1 = l.view_ddl_at(&SITE_ENTITIES, 3);
        assert!(v1.ends_with("FROM `edgelens`.`site_entities_all`") && !v1.contains("imported_at"), "{v1}");
        let v = l.view_ddl(&SITE_ENTITIES);
        assert!(v.contains("FROM (SELECT * FROM `edgelens`.`site_entities_all`)"), "{v}");
        assert!(v.contains("`imported_at` DESC NULLS LAST"), "{v}");
        assert!(v.ends_with("`valid_to` DESC NULLS LAST, `source`, `confidence` LIMIT 1 BY `site`, `entity`, `valid_from`"), "{v}");
        assert!(l.view_ddl(&SITES).ends_with("`removed_at` DESC NULLS LAST, `tenant` LIMIT 1 BY `site`, `created_at`"));
        let m4 = l.migrations().into_iter().find(|m| m.version == 4).unwrap().statements.join("\n");
        for t in ["sites", "site_entities", "site_tags"] {
            assert!(m4.contains(&format!("ALTER TABLE `edgelens`.`{t}_local` ADD COLUMN `imported_at` Nullable(DateTime)")), "{m4}");
            assert!(m4.contains(&format!("ALTER TABLE `edgelens`.`{t}_all` ADD COLUMN `imported_at`")), "{m4}");
            assert!(m4.contains(&format!("DROP TABLE IF EXISTS `edgelens`.`{t}`")), "{m4}");
        }
        assert!(!m4.contains("traffic_1m"), "{m4}");
    }

    #[test]
    fn config_defaults_and_servers() {
        let c: ClickHouseConfig = serde_json::from_str("{}").unwrap();
        assert!(!c.enabled());
        assert_eq!(c.layout(), Layout::single("edgelens"));
        let c = ClickHouseConfig { shards: vec!["http://a".into(), "http://b".into()], cluster: "edge".into(), ..ClickHouseConfig::default() };
        assert!(c.enabled());
        assert_eq!(c.read_server(), "http://a");
        assert_eq!(c.write_servers().len(), 2);
        assert_eq!(c.layout().cluster.as_deref(), Some("edge"));
        assert!(serde_json::from_str::<ClickHouseConfig>(r#"{"urls": []}"#).is_err());
    }

    #[test]
    fn error_codes() {
        assert_eq!(error_code("bad response: Code: 252, e.displayText() = DB::Exception: Too many parts"), Some(252));
        assert_eq!(error_code("connection refused"), None);
    }

    #[test]
    fn string_literals_escape() {
        assert_eq!(string_literal(r"a'b\c"), r"'a\'b\\c'");
    }
}
