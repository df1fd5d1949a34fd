//! Every table of the public contract, defined once as data.
//!
//! The Arrow schema (Parquet lake, DataFusion) and the ClickHouse DDL are derived from these
//! definitions, so a column added here appears everywhere. Conventions:
//! - timestamps are UTC, Arrow `Timestamp(Microsecond, "UTC")`, ClickHouse `DateTime`;
//! - `Key` columns identify a row's group; two rows with the same keys are deltas of one group and
//!   are summed by readers (late events produce such delta rows); except in the registry tables
//!   (`latest` set), whose rows of one key are its versions and whose name shows the current one;
//! - `Measure` columns are exact counts and add up;
//! - `Sketch` columns hold a serialized Apache DataSketches HLL (mergeable with a union); the
//!   matching `Estimate` column is that sketch's estimate for the row alone.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Timestamp,
    String,
    UInt16,
    UInt32,
    UInt64,
    Float64,
    /// Serialized sketch bytes.
    Binary,
    /// A JSON document stored as a string.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Key,
    Measure,
    Estimate,
    Sketch,
    Attribute,
}

#[derive(Debug, Clone, Copy)]
pub struct ColumnDef {
    pub name: &'static str,
    pub ty: ColumnType,
    pub role: Role,
    pub nullable: bool,
    /// ClickHouse schema version that added the column (1 = the initial tables).
    pub since: u32,
}

const fn col(name: &'static str, ty: ColumnType, role: Role) -> ColumnDef {
    ColumnDef { name, ty, role, nullable: false, since: 1 }
}
const fn key(name: &'static str, ty: ColumnType) -> ColumnDef {
    col(name, ty, Role::Key)
}
const fn measure(name: &'static str) -> ColumnDef {
    col(name, ColumnType::UInt64, Role::Measure)
}
const fn attr(name: &'static str, ty: ColumnType) -> ColumnDef {
    col(name, ty, Role::Attribute)
}
/// A column added by schema version `v` (ClickHouse adds it with a migration).
const fn since(mut c: ColumnDef, v: u32) -> ColumnDef {
    c.since = v;
    c
}
const fn nullable(mut c: ColumnDef) -> ColumnDef {
    c.nullable = true;
    c
}

#[derive(Debug)]
pub struct TableDef {
    pub name: &'static str,
    pub doc: &'static str,
    /// The event-time column that decides the `date=` partition.
    pub time_column: &'static str,
    pub columns: &'static [ColumnDef],
    /// The ClickHouse schema version that added the table (1: the initial tables).
    pub since: u32,
    /// For the registry tables: every imported version of a row is stored, and the table's name
    /// shows only the current one of each key, see [`Latest`].
    pub latest: Option<Latest>,
}

/// How the current version of a key is chosen among its stored rows: the one with the latest
/// [`VERSION_COLUMN`]; among rows with the same (or no) import time, such as rows imported before
/// the column existed, the one with the latest `end` (a row with an end before an open one), so
/// an import that ends or corrects an attribution replaces it instead of adding a second one.
#[derive(Debug, Clone, Copy)]
pub struct Latest {
    /// The columns naming one registry row, whose versions the imports are.
    pub key: &'static [&'static str],
    /// The nullable column ending the row's validity (`valid_to`, `removed_at`).
    pub end: &'static str,
}

/// The column stamping each version of a registry row with the time of its import.
pub const VERSION_COLUMN: &str = "imported_at";

use ColumnType::*;

pub static SITE_RATES_10S: TableDef = TableDef {
    name: "site_rates_10s",
    doc: "Per-site request rates in 10-second windows.",
    time_column: "ts",
    columns: &[
        key("ts", Timestamp),
        key("site", String),
        measure("requests"),
        measure("bytes"),
        measure("status_2xx"),
        measure("status_3xx"),
        measure("status_4xx"),
        measure("status_5xx"),
        measure("cache_hits"),
        measure("blocked"),
        col("distinct_clients", UInt64, Role::Estimate),
        col("clients_sketch", Binary, Role::Sketch),
    ],
    since: 1,
    latest: None,
};

pub static TRAFFIC_1M: TableDef = TableDef {
    name: "traffic_1m",
    doc: "1-minute traffic rollup by site, country, colo, status class and cache status.",
    time_column: "ts",
    columns: &[
        key("ts", Timestamp),
        key("site", String),
        key("country", String),
        key("colo", String),
        key("status_class", String),
        key("cache_status", String),
        measure("requests"),
        measure("bytes"),
    ],
    since: 1,
    latest: None,
};

pub static ASN_1M: TableDef = TableDef {
    name: "asn_1m",
    doc: "1-minute traffic rollup by site, client ASN and country, with distinct clients.",
    time_column: "ts",
    columns: &[
        key("ts", Timestamp),
        key("site", String),
        key("asn", UInt32),
        key("country", String),
        measure("requests"),
        measure("bytes"),
        col("distinct_clients", UInt64, Role::Estimate),
        col("clients_sketch", Binary, Role::Sketch),
    ],
    since: 1,
    latest: None,
};

/// The values of `incidents.vector`. Append only: the detector's checkpoints store a vector as
/// its index here.
pub const INCIDENT_VECTORS: [&str; 5] = ["http_flood", "cache_busting", "credential_stuffing", "scraping", "origin_error_surge"];

pub static INCIDENTS: TableDef = TableDef {
    name: "incidents",
    doc: "Detected attacks, one row per incident state change or update: the row with the latest updated_ts of an incident_id is its current state.",
    time_column: "start_ts",
    columns: &[
        key("incident_id", String),
        attr("site", String),
        attr("vector", String),
        attr("status", String),
        attr("start_ts", Timestamp),
        attr("detected_ts", Timestamp),
        attr("peak_ts", Timestamp),
        nullable(attr("end_ts", Timestamp)),
        attr("peak_rps", Float64),
        attr("baseline_rps", Float64),
        attr("attack_requests", UInt64),
        attr("distinct_ips", UInt64),
        attr("signature", Json),
        attr("top_attackers", Json),
        since(attr("updated_ts", Timestamp), 2),
    ],
    since: 1,
    latest: None,
};

pub static INCIDENT_TIMELINE: TableDef = TableDef {
    name: "incident_timeline",
    doc: "Per-second timeline of an incident's site traffic.",
    time_column: "ts",
    columns: &[
        key("incident_id", String),
        key("ts", Timestamp),
        measure("requests"),
        measure("matched_requests"),
        measure("status_2xx"),
        measure("status_3xx"),
        measure("status_4xx"),
        measure("status_5xx"),
    ],
    since: 1,
    latest: None,
};

pub static SITES: TableDef = TableDef {
    name: "sites",
    doc: "Site registry: the tenants sites belong to, each from created_at until removed_at (the latest import of a (site, created_at) is current).",
    time_column: "created_at",
    columns: &[
        key("site", String),
        attr("tenant", String),
        attr("created_at", Timestamp),
        nullable(attr("removed_at", Timestamp)),
        since(nullable(attr("imported_at", Timestamp)), 4),
    ],
    since: 1,
    latest: Some(Latest { key: &["site", "created_at"], end: "removed_at" }),
};

pub static SITE_ENTITIES: TableDef = TableDef {
    name: "site_entities",
    doc: "Many-to-many, time-versioned attribution of sites to entities (organisations); the latest import of a (site, entity, valid_from) is current.",
    time_column: "valid_from",
    columns: &[
        key("site", String),
        key("entity", String),
        attr("source", String),
        attr("confidence", Float64),
        key("valid_from", Timestamp),
        nullable(attr("valid_to", Timestamp)),
        since(nullable(attr("imported_at", Timestamp)), 4),
    ],
    since: 1,
    latest: Some(Latest { key: &["site", "entity", "valid_from"], end: "valid_to" }),
};

pub static SITE_TAGS: TableDef = TableDef {
    name: "site_tags",
    doc: "Tags of sites (e.g. a watchlist name); the latest import of a (site, tag, valid_from) is current.",
    time_column: "valid_from",
    columns: &[
        key("site", String),
        key("tag", String),
        attr("source", String),
        key("valid_from", Timestamp),
        nullable(attr("valid_to", Timestamp)),
        since(nullable(attr("imported_at", Timestamp)), 4),
    ],
    since: 1,
    latest: Some(Latest { key: &["site", "tag", "valid_from"], end: "valid_to" }),
};

pub static DEAD_LETTERS: TableDef = TableDef {
    name: "dead_letters",
    doc: "Input that was not counted in the rollups, with the reason and a raw excerpt.",
    time_column: "ts",
    columns: &[
        attr("ts", Timestamp),
        attr("source", String),
        attr("offset", UInt64),
        attr("reason", String),
        attr("detail", String),
        attr("raw", String),
    ],
    since: 1,
    latest: None,
};

pub static REGISTRY_AUDIT: TableDef = TableDef {
    name: "registry_audit",
    doc: "Every change of the site registry: when, by whom (the token's name or --actor), what (rows written per table).",
    time_column: "ts",
    columns: &[
        attr("ts", Timestamp),
        attr("actor", String),
        attr("action", String),
        attr("file", String),
        attr("import_id", String),
        attr("sites", UInt64),
        attr("entities", UInt64),
        attr("tags", UInt64),
    ],
    since: 3,
    latest: None,
};

/// All tables, in a stable order.
pub static ALL_TABLES: [&TableDef; 10] = [
    &SITE_RATES_10S,
    &TRAFFIC_1M,
    &ASN_1M,
    &INCIDENTS,
    &INCIDENT_TIMELINE,
    &SITES,
    &SITE_ENTITIES,
    &SITE_TAGS,
    &DEAD_LETTERS,
    &REGISTRY_AUDIT,
];

/// Look a table up by name.
pub fn table(name: &str) -> Option<&'static TableDef> {
    ALL_TABLES.iter().copied().find(|t| t.name == name)
}

impl ColumnType {
    pub fn arrow(self) -> DataType {
        match self {
            Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            String | Json => DataType::Utf8,
            UInt16 => DataType::UInt16,
            UInt32 => DataType::UInt32,
            UInt64 => DataType::UInt64,
            Float64 => DataType::Float64,
            Binary => DataType::Binary,
        }
    }

    /// ClickHouse type name (works on 18.16 and later).
    pub fn clickhouse(self) -> &'static str {
        match self {
            Timestamp => "DateTime",
            String | Json | Binary => "String",
            UInt16 => "UInt16",
            UInt32 => "UInt32",
            UInt64 => "UInt64",
            Float64 => "Float64",
        }
    }
}

impl TableDef {
    pub fn arrow_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns.iter().map(|c| Field::new(c.name, c.ty.arrow(), c.nullable)).collect::<Vec<_>>(),
        ))
    }

    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn key_columns(&self) -> impl Iterator<Item = &ColumnDef> {
        self.columns.iter().filter(|c| c.role == Role::Key)
    }

    /// For a registry table: the columns ordering, ascending, versions that tie on import time
    /// and end (rows imported before `imported_at` existed), so that every reader picks the same.
    pub fn latest_tie_break(&self) -> impl Iterator<Item = &'static str> + '_ {
        let latest = self.latest;
        self.columns
            .iter()
            .map(|c| c.name)
            .filter(move |n| latest.is_some_and(|l| !l.key.contains(n) && *n != l.end && *n != VERSION_COLUMN))
    }

    pub fn measure_columns(&self) -> impl Iterator<Item = &ColumnDef> {
        self.columns.iter().filter(|c| c.role == Role::Measure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_versions_are_named_by_columns_of_their_table() {
        for t in ALL_TABLES.iter().filter(|t| t.latest.is_some()) {
            let latest = t.latest.unwrap();
            for c in latest.key.iter().chain([&latest.end, &VERSION_COLUMN]) {
                assert!(t.column(c).is_some(), "{}.{c}", t.name);
            }
            assert!(t.column(latest.end).unwrap().nullable && t.column(VERSION_COLUMN).unwrap().nullable, "{}", t.name);
        }
    }

    #[test]
    fn names_unique_and_schemas_derive() {
        let mut names: Vec<_> = ALL_TABLES.iter().map(|t| t.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ALL_TABLES.len());
        for t in ALL_TABLES {
            let s = t.arrow_schema();
            assert_eq!(s.fields().len(), t.columns.len());
            assert!(t.column(t.time_column).is_some(), "{}: time column", t.name);
        }
    }
}
