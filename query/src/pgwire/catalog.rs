//! The PostgreSQL catalog as edgelens shows it to Postgres clients, answered from the schema
//! registry ([`ALL_TABLES`], plus the lake's `date` partition column when the backend is the lake).
//!
//! What it owns:
//! - the server's settings ([`Settings`]): the values sent as `ParameterStatus` at startup, shown by
//!   `SHOW` and `current_setting()`, remembered per session by `SET`;
//! - a small in-memory catalog queried with DataFusion: `information_schema.tables`, `.columns`,
//!   `.schemata`; `pg_catalog.pg_namespace`, `pg_class`, `pg_attribute`, `pg_type`, `pg_database`,
//!   `pg_roles`, `pg_am`, `pg_settings`, `pg_tables`, `pg_description`, and empty `pg_views`,
//!   `pg_matviews`, `pg_extension`, `pg_index`, `pg_constraint`, `pg_trigger`, `pg_inherits`,
//!   `pg_proc`, `pg_attrdef`, `pg_collation`; functions `version()`, `current_database()`,
//!   `current_schema()`, `current_schemas(bool)`, `current_user`, `session_user`,
//!   `current_setting(name)`, `pg_backend_pid()`, `quote_ident()`, `format_type()`,
//!   `pg_get_userbyid()`, `pg_table_is_visible()`, `obj_description()`, `col_description()`,
//!   `has_table_privilege()` and friends. Client SQL is lightly rewritten first (`pg_catalog.`
//!   qualifiers, `OPERATOR(pg_catalog.~)`, `COLLATE`, `::oid`/`::regclass` casts);
//! - answers for the statements of known clients that DataFusion cannot run: psql's `\d`, `\dt`,
//!   `\d name` (relation list, relation lookup, table info, columns, and the footers about indexes,
//!   constraints, policies, statistics, publications and inheritance — always empty here) and
//!   Grafana's query-builder lists of tables and of a table's columns.
//!
//! The catalog never holds contract data: a statement that reads the catalog cannot also read an
//! edgelens table. Everything here is read-only; DataFusion plans are checked with the same
//! read-only options as user SQL.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use arrow::array::{Array, ArrayRef, AsArray, ListArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{MemTable, MemorySchemaProvider};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use datafusion::execution::{FunctionRegistry, SessionState};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::sqlparser::ast::{Expr, SelectItem, SetExpr, Statement};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use edgelens_schemas::tables::{ALL_TABLES, TableDef};
use pgwire::api::Type;
use regex::Regex;

use super::sql_text::{Escapes, Tok, lex};
use super::types::pg_type;
use crate::error::{QueryError, Result};
use crate::lake::QueryResult;
use crate::sql_guard;

/// The PostgreSQL release whose protocol and catalog edgelens speaks (psql 15 sends its catalog
/// queries for this version without a warning).
pub const SERVER_VERSION: &str = "15.0";
pub const SERVER_VERSION_NUM: &str = "150000";
/// Database and schema every edgelens table is in.
pub const DATABASE: &str = "edgelens";
pub const SCHEMA: &str = "public";
/// The owner shown for every relation.
pub const OWNER: &str = "edgelens";

const NS_PG_CATALOG: i64 = 11;
const NS_PUBLIC: i64 = 2200;
const NS_INFORMATION_SCHEMA: i64 = 13_183;
const DATABASE_OID: i64 = 16_383;
const OWNER_OID: i64 = 10;
/// `pg_class` oid of the `n`-th contract table (in [`ALL_TABLES`] order).
const FIRST_TABLE_OID: i64 = 16_384;

/// `version()`.
pub fn version_string() -> String {
    format!(
        "PostgreSQL {SERVER_VERSION} (edgelens {}: read-only CDN edge analytics over the PostgreSQL wire protocol)",
        env!("CARGO_PKG_VERSION")
    )
}

/// Settings a client can read (`SHOW`, `current_setting`, `pg_settings`) and change for its session
/// (`SET`, without effect on how edgelens answers: text is UTF-8, timestamps are UTC in ISO style).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Settings {
    values: BTreeMap<String, String>,
    /// Values the client gave in its startup message (`application_name`): what `RESET` returns
    /// to, shown with source `client` in `pg_settings`.
    client: BTreeMap<String, String>,
}

/// The session a catalog statement is asked in: its login (`current_user`, `session_user`) and
/// its settings as `SET` left them (`current_setting()`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Asker {
    pub user: String,
    pub settings: Settings,
}

/// The settings a new session starts with (names lower-case).
fn default_settings() -> BTreeMap<String, String> {
    [
        ("server_version", SERVER_VERSION),
        ("server_version_num", SERVER_VERSION_NUM),
        ("server_encoding", "UTF8"),
        ("client_encoding", "UTF8"),
        ("datestyle", "ISO, MDY"),
        ("timezone", "UTC"),
        ("intervalstyle", "postgres"),
        ("integer_datetimes", "on"),
        ("standard_conforming_strings", "on"),
        ("search_path", "\"$user\", public"),
        ("transaction_isolation", "read committed"),
        ("transaction_read_only", "on"),
        ("default_transaction_read_only", "on"),
        ("default_transaction_isolation", "read committed"),
        ("is_superuser", "off"),
        ("in_hot_standby", "off"),
        ("max_identifier_length", "63"),
        ("lc_collate", "C"),
        ("lc_ctype", "C"),
        ("application_name", ""),
        ("statement_timeout", "0"),
        ("lock_timeout", "0"),
        ("idle_in_transaction_session_timeout", "0"),
        ("extra_float_digits", "1"),
        ("bytea_output", "hex"),
        ("client_min_messages", "notice"),
        ("block_size", "8192"),
        ("max_index_keys", "32"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Settings reported to the client at startup (`ParameterStatus`), with PostgreSQL's spelling.
const REPORTED: &[(&str, &str)] = &[
    ("server_version", "server_version"),
    ("server_encoding", "server_encoding"),
    ("client_encoding", "client_encoding"),
    ("DateStyle", "datestyle"),
    ("TimeZone", "timezone"),
    ("IntervalStyle", "intervalstyle"),
    ("integer_datetimes", "integer_datetimes"),
    ("standard_conforming_strings", "standard_conforming_strings"),
    ("is_superuser", "is_superuser"),
    ("default_transaction_read_only", "default_transaction_read_only"),
    ("in_hot_standby", "in_hot_standby"),
    ("application_name", "application_name"),
];

/// PostgreSQL's spelling of a setting's name (`TimeZone` for `timezone`): names are kept lower case.
fn postgres_spelling(key: &str) -> &str {
    REPORTED.iter().find(|(_, k)| *k == key).map_or(key, |(wire, _)| *wire)
}

impl Default for Settings {
    fn default() -> Self {
        Settings { values: default_settings(), client: BTreeMap::new() }
    }
}

impl Settings {
    /// `ParameterStatus` pairs for the startup of a session of `user`.
    pub fn reported(&self, user: &str) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> =
            REPORTED.iter().map(|(wire, key)| ((*wire).to_owned(), self.values.get(*key).cloned().unwrap_or_default())).collect();
        out.push(("session_authorization".into(), user.to_owned()));
        out
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    /// `SET name = value`. Read-only settings and encodings other than UTF-8 are refused.
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        let name = name.to_ascii_lowercase();
        match name.as_str() {
            "server_version" | "server_version_num" | "server_encoding" | "integer_datetimes" | "is_superuser"
            | "lc_collate" | "lc_ctype" | "block_size" | "max_identifier_length" | "max_index_keys" | "in_hot_standby" => {
                return Err(QueryError::InvalidParameter(format!("parameter \"{name}\" cannot be changed")));
            }
            "client_encoding" if !matches!(value.to_ascii_lowercase().replace('-', "").as_str(), "utf8" | "unicode") => {
                return Err(QueryError::InvalidParameter(format!(
                    "client_encoding {value:?} is not supported: edgelens speaks UTF8 only"
                )));
            }
            "transaction_read_only" | "default_transaction_read_only" if !matches!(value.to_ascii_lowercase().as_str(), "on" | "true" | "1") => {
                return Err(QueryError::SqlRefused("edgelens is read-only: transactions cannot be read-write".into()));
            }
            _ => {}
        }
        self.values.insert(name, value.to_owned());
        Ok(())
    }

    /// A setting from the client's startup message: as `SET`, and also the value `RESET` returns to.
    pub fn set_from_client(&mut self, name: &str, value: &str) -> Result<()> {
        self.set(name, value)?;
        self.client.insert(name.to_ascii_lowercase(), value.to_owned());
        Ok(())
    }

    /// The value `RESET name` returns to: the client's startup value, else the default.
    fn reset_value(&self, name: &str) -> Option<String> {
        self.client.get(name).cloned().or_else(|| default_settings().remove(name))
    }

    /// `RESET name`, `RESET ALL` (`None`): back to the client's startup values and the defaults.
    pub fn reset(&mut self, name: Option<&str>) {
        match name {
            None => {
                self.values = default_settings();
                self.values.extend(self.client.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            Some(n) => {
                let n = n.to_ascii_lowercase();
                match self.reset_value(&n) {
                    Some(v) => self.values.insert(n, v),
                    None => self.values.remove(&n),
                };
            }
        }
    }

    /// `SHOW name` (one row, one column named after the setting) or `SHOW ALL` (`None`: name,
    /// setting, description).
    pub fn show(&self, name: Option<&str>) -> Result<QueryResult> {
        match name {
            Some(name) => {
                let value = self.get(name).ok_or_else(|| {
                    QueryError::InvalidParameter(format!("unrecognized configuration parameter \"{name}\""))
                })?;
                text_result(&[name], vec![vec![Some(value.to_owned())]])
            }
            None => text_result(
                &["name", "setting", "description"],
                self.values.iter().map(|(k, v)| vec![Some(postgres_spelling(k).to_owned()), Some(v.clone()), Some(String::new())]).collect(),
            ),
        }
    }
}

/// A result of text columns.
pub fn text_result(names: &[&str], rows: Vec<Vec<Option<String>>>) -> Result<QueryResult> {
    let schema: SchemaRef = Arc::new(Schema::new(names.iter().map(|n| Field::new(*n, DataType::Utf8, true)).collect::<Vec<_>>()));
    let columns: Vec<ArrayRef> = (0..names.len())
        .map(|i| Arc::new(rows.iter().map(|r| r.get(i).cloned().flatten()).collect::<StringArray>()) as ArrayRef)
        .collect();
    Ok(QueryResult { schema: Arc::clone(&schema), batches: vec![RecordBatch::try_new(schema, columns)?] })
}

/// PostgreSQL types the catalog knows: oid, name, SQL name (`format_type`, `data_type`), length,
/// category.
const PG_TYPES: &[(u32, &str, &str, i16, &str)] = &[
    (16, "bool", "boolean", 1, "B"),
    (17, "bytea", "bytea", -1, "U"),
    (18, "char", "\"char\"", 1, "S"),
    (19, "name", "name", 64, "S"),
    (20, "int8", "bigint", 8, "N"),
    (21, "int2", "smallint", 2, "N"),
    (23, "int4", "integer", 4, "N"),
    (25, "text", "text", -1, "S"),
    (26, "oid", "oid", 4, "N"),
    (114, "json", "json", -1, "U"),
    (700, "float4", "real", 4, "N"),
    (701, "float8", "double precision", 8, "N"),
    (705, "unknown", "unknown", -2, "X"),
    (1043, "varchar", "character varying", -1, "S"),
    (1082, "date", "date", 4, "D"),
    (1083, "time", "time without time zone", 8, "D"),
    (1114, "timestamp", "timestamp without time zone", 8, "D"),
    (1184, "timestamptz", "timestamp with time zone", 8, "D"),
    (1186, "interval", "interval", 16, "T"),
    (1700, "numeric", "numeric", -1, "N"),
];

/// The oid of a type named as PostgreSQL's `to_regtype` takes it (`int8`, `bigint`,
/// `pg_catalog.text`, any case); `None` for a type edgelens does not have.
fn type_oid(name: &str) -> Option<i64> {
    let name = name.trim().to_ascii_lowercase();
    let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
    PG_TYPES
        .iter()
        .find(|t| t.1 == name || t.2 == name)
        .map(|t| i64::from(t.0))
        .or_else(|| super::types::type_by_name(name).map(|t| i64::from(t.oid())))
}

/// `pg_type.typlen` of type `oid` (-1: variable length).
pub fn type_length(oid: u32) -> i16 {
    PG_TYPES.iter().find(|t| t.0 == oid).map_or(-1, |t| t.3)
}

/// The SQL name of type `oid` (`format_type`), `???` when unknown (as PostgreSQL).
pub fn format_type(oid: i64) -> String {
    PG_TYPES.iter().find(|t| i64::from(t.0) == oid).map_or_else(|| "???".to_owned(), |t| t.2.to_owned())
}

/// One column of a contract table as the catalog lists it.
#[derive(Debug, Clone)]
pub struct CatalogColumn {
    pub name: String,
    pub ty: Type,
    pub nullable: bool,
}

/// One contract table as the catalog lists it.
#[derive(Debug, Clone)]
pub struct CatalogTable {
    pub oid: i64,
    pub name: &'static str,
    pub doc: &'static str,
    pub columns: Vec<CatalogColumn>,
}

/// The contract tables with the columns the backend exposes (`schema_of` gives each table's Arrow
/// schema: the lake's includes `date`).
pub fn catalog_tables(schema_of: impl Fn(&TableDef) -> SchemaRef) -> Vec<CatalogTable> {
    ALL_TABLES
        .iter()
        .enumerate()
        .map(|(i, t)| CatalogTable {
            oid: FIRST_TABLE_OID + i as i64,
            name: t.name,
            doc: t.doc,
            columns: schema_of(t)
                .fields()
                .iter()
                .map(|f| CatalogColumn { name: f.name().clone(), ty: pg_type(f.data_type()), nullable: f.is_nullable() })
                .collect(),
        })
        .collect()
}

fn table_by_oid(tables: &[CatalogTable], oid: i64) -> Option<&CatalogTable> {
    tables.iter().find(|t| t.oid == oid)
}

/// Rows of one in-memory catalog table.
struct Rows {
    fields: Vec<Field>,
    rows: Vec<Vec<ScalarValue>>,
}

impl Rows {
    fn new(fields: &[(&str, DataType)]) -> Rows {
        Rows { fields: fields.iter().map(|(n, t)| Field::new(*n, t.clone(), true)).collect(), rows: Vec::new() }
    }

    fn push(&mut self, row: Vec<ScalarValue>) {
        debug_assert_eq!(row.len(), self.fields.len());
        self.rows.push(row);
    }

    fn into_table(self) -> Result<MemTable> {
        let schema = Arc::new(Schema::new(self.fields));
        let columns = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                if self.rows.is_empty() {
                    return Ok(arrow::array::new_empty_array(f.data_type()));
                }
                Ok(ScalarValue::iter_to_array(self.rows.iter().map(|r| r[i].clone()))?)
            })
            .collect::<Result<Vec<_>>>()?;
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
        Ok(MemTable::try_new(schema, vec![vec![batch]])?)
    }
}

fn s(v: &str) -> ScalarValue {
    ScalarValue::Utf8(Some(v.to_owned()))
}
fn i(v: i64) -> ScalarValue {
    ScalarValue::Int64(Some(v))
}
fn b(v: bool) -> ScalarValue {
    ScalarValue::Boolean(Some(v))
}
fn null_text() -> ScalarValue {
    ScalarValue::Utf8(None)
}

const U: DataType = DataType::Utf8;
const I: DataType = DataType::Int64;
const B: DataType = DataType::Boolean;

/// Catalog tables that are empty in edgelens (no views, indexes, constraints, triggers,
/// inheritance, functions, defaults), with the columns clients select from them.
const EMPTY_TABLES: &[(&str, &[&str])] = &[
    ("pg_views", &["schemaname", "viewname", "viewowner", "definition"]),
    ("pg_matviews", &["schemaname", "matviewname", "matviewowner", "definition"]),
    ("pg_extension", &["oid", "extname", "extowner", "extnamespace", "extrelocatable", "extversion"]),
    ("pg_index", &["indexrelid", "indrelid", "indisunique", "indisprimary", "indisclustered", "indisvalid", "indkey"]),
    ("pg_constraint", &["oid", "conname", "connamespace", "contype", "conrelid", "confrelid", "conkey", "confkey"]),
    ("pg_trigger", &["oid", "tgrelid", "tgname", "tgenabled", "tgisinternal"]),
    ("pg_inherits", &["inhrelid", "inhparent", "inhseqno", "inhdetachpending"]),
    ("pg_proc", &["oid", "proname", "pronamespace", "proowner", "prokind", "prorettype"]),
    ("pg_attrdef", &["oid", "adrelid", "adnum", "adbin"]),
    ("pg_collation", &["oid", "collname", "collnamespace", "collprovider"]),
    ("pg_enum", &["oid", "enumtypid", "enumsortorder", "enumlabel"]),
    ("pg_sequence", &["seqrelid", "seqtypid", "seqstart", "seqincrement"]),
    ("pg_opclass", &["oid", "opcname", "opcmethod", "opcdefault"]),
    // Cursors are the session's; drivers ask here only whether one they did not declare exists.
    ("pg_cursors", &["name", "statement", "is_holdable", "is_binary", "is_scrollable", "creation_time"]),
];

/// Columns of [`EMPTY_TABLES`] that are `bool` (the others are text).
const EMPTY_TABLE_BOOLEANS: &[&str] =
    &["opcdefault", "is_holdable", "is_binary", "is_scrollable", "indisunique", "indisprimary", "indisclustered", "indisvalid", "extrelocatable", "tgisinternal", "inhdetachpending"];

/// Catalogs whose rows, for edgelens tables, are always none: a psql footer query that reads one of
/// them is answered with no rows.
const ALWAYS_EMPTY: &[&str] = &[
    "pg_index",
    "pg_constraint",
    "pg_trigger",
    "pg_policy",
    "pg_inherits",
    "pg_rewrite",
    "pg_statistic_ext",
    "pg_publication",
    "pg_publication_rel",
    "pg_publication_namespace",
    "pg_partitioned_table",
    "pg_foreign_table",
    "pg_attrdef",
    "pg_sequence",
    "pg_event_trigger",
    "pg_subscription",
];

fn build_tables(tables: &[CatalogTable], settings: &Settings) -> Result<Vec<(&'static str, &'static str, MemTable)>> {
    let mut out = Vec::new();
    let schema_oid = |n: &str| match n {
        "pg_catalog" => NS_PG_CATALOG,
        "information_schema" => NS_INFORMATION_SCHEMA,
        _ => NS_PUBLIC,
    };

    let mut ns = Rows::new(&[("oid", I), ("nspname", U), ("nspowner", I), ("nspacl", U)]);
    for n in ["pg_catalog", "public", "information_schema"] {
        ns.push(vec![i(schema_oid(n)), s(n), i(OWNER_OID), null_text()]);
    }
    out.push(("pg_catalog", "pg_namespace", ns.into_table()?));

    let mut class = Rows::new(&[
        ("oid", I),
        ("relname", U),
        ("relnamespace", I),
        ("reltype", I),
        ("relowner", I),
        ("relam", I),
        ("relkind", U),
        ("relnatts", I),
        ("relhasindex", B),
        ("relpersistence", U),
        ("relispartition", B),
        ("relchecks", I),
        ("relhasrules", B),
        ("relhastriggers", B),
        ("relrowsecurity", B),
        ("relforcerowsecurity", B),
        ("reltablespace", I),
        ("reloftype", I),
        ("relreplident", U),
        ("reltuples", DataType::Float64),
        ("relpages", I),
        ("reltoastrelid", I),
        ("relisshared", B),
        ("relhassubclass", B),
        ("reloptions", U),
        ("relacl", U),
    ]);
    for t in tables {
        class.push(vec![
            i(t.oid),
            s(t.name),
            i(NS_PUBLIC),
            i(0),
            i(OWNER_OID),
            i(2),
            s("r"),
            i(t.columns.len() as i64),
            b(false),
            s("p"),
            b(false),
            i(0),
            b(false),
            b(false),
            b(false),
            b(false),
            i(0),
            i(0),
            s("d"),
            ScalarValue::Float64(Some(-1.0)),
            i(0),
            i(0),
            b(false),
            b(false),
            null_text(),
            null_text(),
        ]);
    }
    out.push(("pg_catalog", "pg_class", class.into_table()?));

    let mut attr = Rows::new(&[
        ("attrelid", I),
        ("attname", U),
        ("atttypid", I),
        ("attnum", I),
        ("attlen", I),
        ("attnotnull", B),
        ("atttypmod", I),
        ("attisdropped", B),
        ("atthasdef", B),
        ("attidentity", U),
        ("attgenerated", U),
        ("attcollation", I),
        ("attstattarget", I),
        ("attndims", I),
        ("attislocal", B),
    ]);
    let mut columns = Rows::new(&[
        ("table_catalog", U),
        ("table_schema", U),
        ("table_name", U),
        ("column_name", U),
        ("ordinal_position", I),
        ("column_default", U),
        ("is_nullable", U),
        ("data_type", U),
        ("character_maximum_length", I),
        ("numeric_precision", I),
        ("datetime_precision", I),
        ("udt_catalog", U),
        ("udt_schema", U),
        ("udt_name", U),
        ("is_updatable", U),
    ]);
    for t in tables {
        for (n, c) in t.columns.iter().enumerate() {
            let oid = i64::from(c.ty.oid());
            let len = PG_TYPES.iter().find(|x| x.0 == c.ty.oid()).map_or(-1, |x| i64::from(x.3));
            attr.push(vec![
                i(t.oid),
                s(&c.name),
                i(oid),
                i(n as i64 + 1),
                i(len),
                b(!c.nullable),
                i(-1),
                b(false),
                b(false),
                s(""),
                s(""),
                i(0),
                i(-1),
                i(0),
                b(true),
            ]);
            let precision = match c.ty {
                Type::INT2 => Some(16),
                Type::INT4 => Some(32),
                Type::INT8 => Some(64),
                Type::FLOAT4 => Some(24),
                Type::FLOAT8 => Some(53),
                _ => None,
            };
            let datetime = matches!(c.ty, Type::TIMESTAMP | Type::TIMESTAMPTZ).then_some(6).or((c.ty == Type::DATE).then_some(0));
            columns.push(vec![
                s(DATABASE),
                s(SCHEMA),
                s(t.name),
                s(&c.name),
                i(n as i64 + 1),
                null_text(),
                s(if c.nullable { "YES" } else { "NO" }),
                s(&format_type(oid)),
                ScalarValue::Int64(None),
                ScalarValue::Int64(precision),
                ScalarValue::Int64(datetime),
                s(DATABASE),
                s("pg_catalog"),
                s(c.ty.name()),
                s("NO"),
            ]);
        }
    }
    out.push(("pg_catalog", "pg_attribute", attr.into_table()?));
    out.push(("information_schema", "columns", columns.into_table()?));

    let mut info_tables = Rows::new(&[
        ("table_catalog", U),
        ("table_schema", U),
        ("table_name", U),
        ("table_type", U),
        ("is_insertable_into", U),
        ("is_typed", U),
    ]);
    let mut pg_tables = Rows::new(&[
        ("schemaname", U),
        ("tablename", U),
        ("tableowner", U),
        ("tablespace", U),
        ("hasindexes", B),
        ("hasrules", B),
        ("hastriggers", B),
        ("rowsecurity", B),
    ]);
    let mut description = Rows::new(&[("objoid", I), ("classoid", I), ("objsubid", I), ("description", U)]);
    for t in tables {
        info_tables.push(vec![s(DATABASE), s(SCHEMA), s(t.name), s("BASE TABLE"), s("NO"), s("NO")]);
        pg_tables.push(vec![s(SCHEMA), s(t.name), s(OWNER), null_text(), b(false), b(false), b(false), b(false)]);
        description.push(vec![i(t.oid), i(1259), i(0), s(t.doc)]);
    }
    out.push(("information_schema", "tables", info_tables.into_table()?));
    out.push(("pg_catalog", "pg_tables", pg_tables.into_table()?));
    out.push(("pg_catalog", "pg_description", description.into_table()?));

    let mut schemata = Rows::new(&[("catalog_name", U), ("schema_name", U), ("schema_owner", U)]);
    for n in ["pg_catalog", "public", "information_schema"] {
        schemata.push(vec![s(DATABASE), s(n), s(OWNER)]);
    }
    out.push(("information_schema", "schemata", schemata.into_table()?));

    let mut types = Rows::new(&[
        ("oid", I),
        ("typname", U),
        ("typnamespace", I),
        ("typowner", I),
        ("typlen", I),
        ("typbyval", B),
        ("typtype", U),
        ("typcategory", U),
        ("typisdefined", B),
        ("typdelim", U),
        ("typrelid", I),
        ("typelem", I),
        ("typarray", I),
        ("typnotnull", B),
        ("typbasetype", I),
        ("typtypmod", I),
        ("typndims", I),
        ("typcollation", I),
    ]);
    for (oid, name, _, len, category) in PG_TYPES {
        types.push(vec![
            i(i64::from(*oid)),
            s(name),
            i(NS_PG_CATALOG),
            i(OWNER_OID),
            i(i64::from(*len)),
            b(*len > 0 && *len <= 8),
            s("b"),
            s(category),
            b(true),
            s(","),
            i(0),
            i(0),
            i(0),
            b(false),
            i(0),
            i(-1),
            i(0),
            i(0),
        ]);
    }
    out.push(("pg_catalog", "pg_type", types.into_table()?));

    let mut db = Rows::new(&[
        ("oid", I),
        ("datname", U),
        ("datdba", I),
        ("encoding", I),
        ("datcollate", U),
        ("datctype", U),
        ("datistemplate", B),
        ("datallowconn", B),
        ("datconnlimit", I),
        ("dattablespace", I),
        ("datlocprovider", U),
        ("daticulocale", U),
        ("datacl", DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))),
    ]);
    let no_acl = ScalarValue::List(Arc::new(ListArray::new_null(Arc::new(Field::new_list_field(DataType::Utf8, true)), 1)));
    db.push(vec![
        i(DATABASE_OID),
        s(DATABASE),
        i(OWNER_OID),
        i(6),
        s("C"),
        s("C"),
        b(false),
        b(true),
        i(-1),
        i(1663),
        s("c"),
        null_text(),
        no_acl,
    ]);
    out.push(("pg_catalog", "pg_database", db.into_table()?));

    let mut roles = Rows::new(&[
        ("oid", I),
        ("rolname", U),
        ("rolsuper", B),
        ("rolinherit", B),
        ("rolcreaterole", B),
        ("rolcreatedb", B),
        ("rolcanlogin", B),
        ("rolreplication", B),
        ("rolconnlimit", I),
        ("rolbypassrls", B),
    ]);
    roles.push(vec![i(OWNER_OID), s(OWNER), b(false), b(true), b(false), b(false), b(true), b(false), i(-1), b(false)]);
    out.push(("pg_catalog", "pg_roles", roles.into_table()?));

    let mut am = Rows::new(&[("oid", I), ("amname", U), ("amtype", U)]);
    am.push(vec![i(2), s("heap"), s("t")]);
    out.push(("pg_catalog", "pg_am", am.into_table()?));

    let mut pg_settings = Rows::new(&[
        ("name", U),
        ("setting", U),
        ("unit", U),
        ("category", U),
        ("short_desc", U),
        ("context", U),
        ("vartype", U),
        ("source", U),
        ("boot_val", U),
        ("reset_val", U),
    ]);
    let defaults = default_settings();
    for (k, v) in &settings.values {
        // PostgreSQL's spelling of the name (`TimeZone`); the value a new session starts with, and
        // the one `RESET` returns to (the client's startup value, if it gave one).
        let name = postgres_spelling(k);
        let boot = defaults.get(k).map_or("", String::as_str);
        let client = settings.client.get(k);
        let reset = client.map_or(boot, String::as_str);
        let source = match client {
            Some(c) if c == v => "client",
            _ if boot == v => "default",
            _ => "session",
        };
        pg_settings.push(vec![s(name), s(v), null_text(), s("edgelens"), s(""), s("user"), s("string"), s(source), s(boot), s(reset)]);
    }
    out.push(("pg_catalog", "pg_settings", pg_settings.into_table()?));

    for (name, cols) in EMPTY_TABLES {
        let fields: Vec<(&str, DataType)> = cols.iter().map(|c| (*c, if EMPTY_TABLE_BOOLEANS.contains(c) { B } else { U })).collect();
        out.push(("pg_catalog", name, Rows::new(&fields).into_table()?));
    }
    Ok(out)
}

/// The in-memory PostgreSQL catalog of one query service.
#[derive(Clone)]
pub struct Catalog {
    ctx: SessionContext,
    tables: Arc<Vec<CatalogTable>>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").field("tables", &self.tables.len()).finish_non_exhaustive()
    }
}

impl Catalog {
    /// The catalog of `tables` (see [`catalog_tables`]).
    pub fn new(tables: Vec<CatalogTable>) -> Result<Catalog> {
        Self::with_settings(tables, &Settings::default())
    }

    /// The catalog of `tables` as a session with `settings` sees it (its `pg_settings`).
    fn with_settings(tables: Vec<CatalogTable>, settings: &Settings) -> Result<Catalog> {
        let mut config = SessionConfig::new()
            .with_default_catalog_and_schema(DATABASE, SCHEMA)
            .with_information_schema(false)
            .set_str("datafusion.sql_parser.dialect", "PostgreSQL");
        // UTC, as the lake's session and the wire's `TimeZone` are: `now()` is a `timestamptz`.
        config.options_mut().execution.time_zone = Some("UTC".into());
        let ctx = SessionContext::new_with_config(config);
        let catalog = ctx
            .catalog(DATABASE)
            .ok_or_else(|| QueryError::InvalidParameter("the catalog session has no default catalog".into()))?;
        for schema in ["pg_catalog", "information_schema"] {
            catalog.register_schema(schema, Arc::new(MemorySchemaProvider::new()))?;
        }
        for (schema, name, table) in build_tables(&tables, settings)? {
            let table = Arc::new(table);
            ctx.register_table(format!("{schema}.{name}"), Arc::clone(&table) as _)?;
            if schema == "pg_catalog" {
                // `pg_catalog.` is stripped from client SQL (PostgreSQL searches it first anyway).
                ctx.register_table(name, table)?;
            }
        }
        for f in functions(None) {
            ctx.register_udf(f);
        }
        crate::lake::register_postgres_forms(&ctx);
        Ok(Catalog { ctx, tables: Arc::new(tables) })
    }

    pub fn tables(&self) -> &[CatalogTable] {
        &self.tables
    }

    /// Answer a catalog statement: a known client shape, else the statement rewritten and run on
    /// the in-memory catalog, as a session with the default settings logged in as the owner.
    pub async fn query(&self, sql: &str) -> Result<QueryResult> {
        self.query_as(sql, None).await
    }

    /// [`Catalog::query`] asked in a session: `current_user` is its login and `current_setting()`
    /// reads its settings.
    pub async fn query_as(&self, sql: &str, asker: Option<&Asker>) -> Result<QueryResult> {
        if let Some(answer) = self.client_statement(sql) {
            return answer;
        }
        match self.run(&rewrite(sql), asker).await {
            Ok(r) => Ok(r),
            // psql's footers (policies, statistics, publications, partitions …) read catalogs
            // that have no rows for edgelens tables; answered with none when DataFusion cannot plan them.
            Err(QueryError::InvalidSql(_)) if reads_always_empty(sql) => empty_result(projection_items(sql)),
            Err(QueryError::InvalidSql(m)) if let Some(e) = edgelens_table_in_catalog(&m) => Err(e),
            Err(QueryError::InvalidSql(m)) => Err(QueryError::InvalidSql(format!(
                "{m} (edgelens answers only part of the PostgreSQL catalog; see docs/operations.md)"
            ))),
            Err(other) => Err(other),
        }
    }

    /// Parameter types (`None`: not inferable) and result schema of a catalog statement with `$n`
    /// placeholders, without running it.
    pub async fn describe(&self, sql: &str) -> Result<(Vec<Option<DataType>>, SchemaRef)> {
        if let Some(answer) = self.client_statement(sql) {
            return Ok((Vec::new(), answer?.schema));
        }
        let planned = async {
            let plan = self.plan(&self.ctx.state(), &rewrite(sql)).await?;
            sql_guard::verify_plan(&plan)?;
            let types = plan.get_parameter_types().map_err(QueryError::from_user_sql)?;
            Ok((placeholder_types(&types), Arc::new(plan.schema().as_arrow().clone())))
        };
        match planned.await {
            Err(QueryError::InvalidSql(_)) if reads_always_empty(sql) => Ok((Vec::new(), empty_result(projection_items(sql))?.schema)),
            Err(QueryError::InvalidSql(m)) if let Some(e) = edgelens_table_in_catalog(&m) => Err(e),
            other => other,
        }
    }

    /// The plan of a catalog statement; one DataFusion cannot plan as written is tried again in
    /// the [`catalog_forms`] that give the same answer on the catalog's rows.
    async fn plan(&self, state: &SessionState, sql: &str) -> Result<datafusion::logical_expr::LogicalPlan> {
        let statement = sql_guard::check(sql)?;
        let plan = match state.statement_to_plan(statement.clone()).await {
            Ok(plan) => plan,
            Err(first) => {
                let mut statement = statement;
                catalog_forms(&mut statement);
                state.statement_to_plan(statement).await.map_err(|_| QueryError::from_user_sql(first))?
            }
        };
        crate::fraction::fractional_sums(plan).map_err(QueryError::from_user_sql)
    }

    async fn run(&self, sql: &str, asker: Option<&Asker>) -> Result<QueryResult> {
        // A session that changed settings reads them in its own `pg_settings`: a catalog of its
        // own for this statement (the shared one has the defaults).
        let own;
        let ctx = match asker {
            Some(a) if a.settings != Settings::default() && sql.to_ascii_lowercase().contains("pg_settings") => {
                own = Self::with_settings(self.tables.as_ref().clone(), &a.settings)?;
                &own.ctx
            }
            _ => &self.ctx,
        };
        // The session's own functions, planned into this statement only: the catalog is shared.
        let mut state = ctx.state();
        if let Some(asker) = asker {
            let asker = Arc::new(asker.clone());
            for f in functions(Some(&asker)) {
                state.register_udf(Arc::new(f))?;
            }
        }
        let plan = self.plan(&state, sql).await?;
        sql_guard::verify_plan(&plan)?;
        let df = datafusion::dataframe::DataFrame::new(state, plan);
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await.map_err(QueryError::from_user_sql)?;
        Ok(QueryResult { schema, batches })
    }

    /// Statements of known clients that the in-memory catalog cannot plan, answered directly.
    fn client_statement(&self, sql: &str) -> Option<Result<QueryResult>> {
        let lower = sql.to_ascii_lowercase();
        let projection = || projection_items(sql);
        // psql `\d name`, step 2: table info of one relation.
        if lower.contains("c.relchecks") && lower.contains("from pg_catalog.pg_class c") {
            let oid = oid_literal(&lower, "c.oid = '")?;
            return Some(self.rows_for_relation(projection(), table_by_oid(&self.tables, oid)));
        }
        // psql `\d name`, step 3: columns of one relation.
        if lower.contains("from pg_catalog.pg_attribute a") && lower.contains("a.attrelid = '") {
            let oid = oid_literal(&lower, "a.attrelid = '")?;
            return Some(self.attribute_rows(projection(), oid));
        }
        // psql `\d`, `\dt`, `\d name` (step 1): relations of pg_class by kind list and name pattern.
        // Only psql's own forms: other statements over the same tables (another kind test, a
        // LIKE, a LIMIT, an aggregate) were given psql's answer, whatever they asked; they go to
        // the catalog tables instead.
        let psql_form = lower.contains("c.relkind in (") || lower.contains("c.relname operator(pg_catalog.~)");
        let other_clauses = [" limit ", "count(", "sum(", " like ", " ilike ", "c.relkind =", "c.relname ="].iter().any(|w| lower.contains(w));
        if lower.contains("from pg_catalog.pg_class c") && lower.contains("pg_catalog.pg_table_is_visible(c.oid)") && psql_form && !other_clauses {
            return Some(self.relation_list(sql, &lower, projection()));
        }
        // Grafana's query builder: tables, and the columns of one table.
        if lower.contains("information_schema.tables") && (lower.contains("generate_series") || lower.contains("current_schemas")) {
            return Some(self.grafana_tables(projection()));
        }
        if lower.contains("information_schema.columns") && lower.contains("parse_ident(") {
            return Some(self.grafana_columns(&lower, projection()));
        }
        None
    }

    fn relation_list(&self, sql: &str, lower: &str, items: Vec<Item>) -> Result<QueryResult> {
        // Only ordinary tables ('r') exist; a kind list without 'r' lists nothing.
        let kinds_ok = match lower.find("c.relkind in (") {
            Some(at) => lower[at..].split(')').next().is_some_and(|list| list.contains("'r'")),
            None => true,
        };
        let name_re = pattern_after(sql, "c.relname OPERATOR(pg_catalog.~) ");
        let schema_re = pattern_after(sql, "n.nspname OPERATOR(pg_catalog.~) ");
        let schema_ok = schema_re.as_ref().is_none_or(|re| re.is_match(SCHEMA))
            && !(lower.contains("n.nspname = 'pg_catalog'") || lower.contains("n.nspname = 'information_schema'"));
        let mut rows = Vec::new();
        if kinds_ok && schema_ok {
            // psql orders by schema and name.
            let mut tables: Vec<&CatalogTable> = self.tables.iter().collect();
            tables.sort_by_key(|t| t.name);
            for t in tables {
                if name_re.as_ref().is_none_or(|re| re.is_match(t.name)) {
                    rows.push(relation_row(&items, t));
                }
            }
        }
        items_result(&items, rows)
    }

    fn rows_for_relation(&self, items: Vec<Item>, table: Option<&CatalogTable>) -> Result<QueryResult> {
        let rows = table.map(|t| vec![relation_row(&items, t)]).unwrap_or_default();
        items_result(&items, rows)
    }

    fn attribute_rows(&self, items: Vec<Item>, oid: i64) -> Result<QueryResult> {
        let mut rows = Vec::new();
        if let Some(t) = table_by_oid(&self.tables, oid) {
            for (n, c) in t.columns.iter().enumerate() {
                rows.push(
                    items
                        .iter()
                        .map(|item| {
                            let e = item.expr.as_str();
                            if e.ends_with("attname") {
                                Some(c.name.clone())
                            } else if e.contains("format_type") {
                                Some(format_type(i64::from(c.ty.oid())))
                            } else if e.ends_with("attnotnull") {
                                Some(if c.nullable { "f" } else { "t" }.to_owned())
                            } else if e.ends_with("attnum") {
                                Some((n + 1).to_string())
                            } else if e.ends_with("attidentity") || e.ends_with("attgenerated") || e.contains("attcompression") {
                                Some(String::new())
                            } else if e.contains("attstorage") {
                                Some(if matches!(c.ty, Type::TEXT | Type::BYTEA | Type::NUMERIC) { "x" } else { "p" }.to_owned())
                            } else {
                                None
                            }
                        })
                        .collect(),
                );
            }
        }
        items_result(&items, rows)
    }

    fn grafana_tables(&self, items: Vec<Item>) -> Result<QueryResult> {
        let rows = self.tables.iter().map(|t| items.iter().map(|_| Some(t.name.to_owned())).collect()).collect();
        items_result(&items, rows)
    }

    fn grafana_columns(&self, lower: &str, items: Vec<Item>) -> Result<QueryResult> {
        let wanted = lower.split("parse_ident('").nth(1).and_then(|r| r.split('\'').next()).unwrap_or("");
        let wanted = wanted.rsplit('.').next().unwrap_or(wanted).trim_matches('"');
        let mut rows = Vec::new();
        if let Some(t) = self.tables.iter().find(|t| t.name == wanted) {
            for c in &t.columns {
                rows.push(
                    items
                        .iter()
                        .map(|item| {
                            if item.expr.contains("column_name") {
                                Some(c.name.clone())
                            } else if item.expr.contains("data_type") {
                                Some(format_type(i64::from(c.ty.oid())))
                            } else {
                                None
                            }
                        })
                        .collect(),
                );
            }
        }
        items_result(&items, rows)
    }
}

/// One projection item of a client statement: its output name and its expression text (lower-case).
#[derive(Debug, Clone)]
struct Item {
    name: String,
    expr: String,
}

/// The projection of the statement's first `SELECT` (PostgreSQL dialect), or nothing when it does
/// not parse.
fn projection_items(sql: &str) -> Vec<Item> {
    let Ok(statements) = crate::sql_parse::statements(sql, &PostgreSqlDialect {}) else { return Vec::new() };
    let Some(Statement::Query(query)) = statements.first() else { return Vec::new() };
    let mut body = query.body.as_ref();
    loop {
        match body {
            SetExpr::SetOperation { left, .. } => body = left.as_ref(),
            SetExpr::Query(q) => body = q.body.as_ref(),
            SetExpr::Select(select) => {
                return select
                    .projection
                    .iter()
                    .map(|item| match item {
                        SelectItem::ExprWithAlias { expr, alias } => {
                            Item { name: alias.value.clone(), expr: expr.to_string().to_ascii_lowercase() }
                        }
                        SelectItem::UnnamedExpr(expr) => Item { name: output_name(expr), expr: expr.to_string().to_ascii_lowercase() },
                        other => Item { name: "?column?".into(), expr: other.to_string().to_ascii_lowercase() },
                    })
                    .collect();
            }
            _ => return Vec::new(),
        }
    }
}

/// PostgreSQL's names of a query's output columns where they differ from the planner's
/// (`count(*)` → `count`, `1 + 1` → `?column?`, `'x'::text` → `text`, an alias as written where
/// [`crate::sql_compat`] gave a repeated one another): one entry per item of the first `SELECT`;
/// `None` overall when the projection has a wildcard or the statement is not a query.
pub fn postgres_column_names(sql: &str) -> Option<Vec<Option<String>>> {
    let statements = crate::sql_parse::statements(sql, &PostgreSqlDialect {}).ok()?;
    let Some(Statement::Query(query)) = statements.first() else { return None };
    let mut body = query.body.as_ref();
    let select = loop {
        match body {
            SetExpr::SetOperation { left, .. } => body = left.as_ref(),
            SetExpr::Query(q) => body = q.body.as_ref(),
            SetExpr::Select(select) => break select,
            _ => return None,
        }
    };
    select
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(expr) => Some(postgres_name(expr)),
            SelectItem::ExprWithAlias { alias, .. } => Some(Some(crate::sql_compat::folded(alias))),
            _ => None,
        })
        .collect()
}

/// PostgreSQL's output name of an unaliased expression (its `FigureColname`).
fn postgres_name(expr: &Expr) -> Option<String> {
    match expr {
        // The planner's own name, except where `sql_compat` aliased a repeated column (`site_2`).
        Expr::Identifier(id) => Some(crate::sql_compat::folded(id)),
        Expr::CompoundIdentifier(ids) => ids.last().map(crate::sql_compat::folded),
        Expr::Nested(inner) => postgres_name(inner),
        Expr::Function(f) => f.name.0.last().map(|p| p.to_string().trim_matches('"').to_ascii_lowercase()),
        // A cast is named as what it casts, but a literal: as its type (`(ts)::date` is `ts`).
        Expr::Cast { expr, data_type, .. } => match crate::sql_compat::unnested(expr) {
            e @ (Expr::Identifier(_) | Expr::CompoundIdentifier(_)) => postgres_name(e),
            e @ (Expr::Function(_) | Expr::Cast { .. } | Expr::Case { .. } | Expr::AtTimeZone { .. }) => postgres_name(e),
            _ => Some(type_column_name(data_type)),
        },
        // `timestamp '2026-11-28 10:15'`, `date '…'`.
        Expr::TypedString(t) => Some(type_column_name(&t.data_type)),
        Expr::Case { .. } => Some("case".into()),
        // The forms PostgreSQL turns into calls of a function, named after it.
        Expr::Position { .. } => Some("position".into()),
        Expr::Substring { .. } => Some("substring".into()),
        Expr::Extract { .. } => Some("extract".into()),
        Expr::Ceil { .. } => Some("ceil".into()),
        Expr::Floor { .. } => Some("floor".into()),
        Expr::Overlay { .. } => Some("overlay".into()),
        Expr::Trim { trim_where, .. } => Some(
            match trim_where {
                Some(datafusion::sql::sqlparser::ast::TrimWhereField::Leading) => "ltrim",
                Some(datafusion::sql::sqlparser::ast::TrimWhereField::Trailing) => "rtrim",
                _ => "btrim",
            }
            .into(),
        ),
        Expr::Interval(_) => Some("interval".into()),
        // PostgreSQL calls `timezone(z, x)` for `x AT TIME ZONE z`.
        Expr::AtTimeZone { .. } => Some("timezone".into()),
        Expr::Value(v) if matches!(v.value, datafusion::sql::sqlparser::ast::Value::Boolean(_)) => Some("bool".into()),
        _ => Some("?column?".into()),
    }
}

/// PostgreSQL's name of a column that is a literal cast to `data_type` (`'x'::text`, `timestamp
/// '…'`): the type's own name.
fn type_column_name(data_type: &datafusion::sql::sqlparser::ast::DataType) -> String {
    let ty = data_type.to_string().to_ascii_lowercase();
    match ty.as_str() {
        "int" | "integer" | "int4" => "int4",
        "bigint" | "int8" => "int8",
        "smallint" | "int2" => "int2",
        "double precision" | "double" | "float8" => "float8",
        "real" | "float4" => "float4",
        "boolean" | "bool" => "bool",
        "varchar" | "character varying" => "varchar",
        "timestamp with time zone" | "timestamptz" => "timestamptz",
        "timestamp" | "timestamp without time zone" => "timestamp",
        other => other,
    }
    .to_owned()
}

/// `result` with the output columns renamed as PostgreSQL names them (see
/// [`postgres_column_names`]).
pub fn with_postgres_names(sql: &str, result: QueryResult) -> Result<QueryResult> {
    let Some(names) = postgres_column_names(sql) else { return Ok(result) };
    if names.len() != result.schema.fields().len() || names.iter().all(Option::is_none) {
        return Ok(result);
    }
    let fields: Vec<Field> = result
        .schema
        .fields()
        .iter()
        .zip(&names)
        .map(|(f, n)| match n {
            Some(n) => f.as_ref().clone().with_name(n),
            None => f.as_ref().clone(),
        })
        .collect();
    let schema: SchemaRef = Arc::new(Schema::new_with_metadata(fields, result.schema.metadata().clone()));
    let batches = result
        .batches
        .into_iter()
        .map(|b| RecordBatch::try_new(Arc::clone(&schema), b.columns().to_vec()))
        .collect::<std::result::Result<_, _>>()?;
    Ok(QueryResult { schema, batches })
}

/// PostgreSQL's name of an unaliased output column: a column's own name, a function's name, else
/// `?column?`.
fn output_name(expr: &Expr) -> String {
    match expr {
        Expr::Identifier(id) => id.value.clone(),
        Expr::CompoundIdentifier(ids) => ids.last().map_or_else(|| "?column?".into(), |id| id.value.clone()),
        Expr::Function(f) => f.name.0.last().map_or_else(|| "?column?".into(), |p| p.to_string().trim_matches('"').to_owned()),
        Expr::Cast { expr, .. } | Expr::Nested(expr) => output_name(expr),
        _ => "?column?".into(),
    }
}

/// The row of `items` describing relation `t` (psql's relation list, lookup and table info).
fn relation_row(items: &[Item], t: &CatalogTable) -> Vec<Option<String>> {
    items
        .iter()
        .map(|item| {
            let e = item.expr.as_str();
            let v = |x: &str| Some(x.to_owned());
            if e.starts_with("case") && e.contains("relkind") {
                v("table")
            } else if e.starts_with("case") && e.contains("relpersistence") {
                v("permanent")
            } else if e.ends_with(".oid") || e == "oid" {
                Some(t.oid.to_string())
            } else if e.ends_with("nspname") {
                v(SCHEMA)
            } else if e.ends_with("relname") {
                v(t.name)
            } else if e.contains("pg_get_userbyid") {
                v(OWNER)
            } else if e.contains("obj_description") {
                v(t.doc)
            } else if e.contains("pg_size_pretty") {
                v("0 bytes")
            } else if e.ends_with("amname") {
                v("heap")
            } else if e.ends_with("relkind") {
                v("r")
            } else if e.ends_with("relpersistence") {
                v("p")
            } else if e.ends_with("relreplident") {
                v("d")
            } else if e.ends_with("relchecks") || e.ends_with("reltablespace") {
                v("0")
            } else if e.ends_with("relhasindex")
                || e.ends_with("relhasrules")
                || e.ends_with("relhastriggers")
                || e.ends_with("relrowsecurity")
                || e.ends_with("relforcerowsecurity")
                || e.ends_with("relispartition")
                || item.name == "relhasoids"
            {
                v("f")
            } else if e.starts_with("case") && e.contains("reloftype") {
                v("")
            } else {
                None
            }
        })
        .collect()
}

/// A text result with one column per item.
fn items_result(items: &[Item], rows: Vec<Vec<Option<String>>>) -> Result<QueryResult> {
    let names: Vec<&str> = items.iter().map(|i| i.name.as_str()).collect();
    text_result(&names, rows)
}

fn empty_result(items: Vec<Item>) -> Result<QueryResult> {
    items_result(&items, Vec::new())
}

/// The number in `'123'` right after `marker` (psql quotes oids).
fn oid_literal(lower: &str, marker: &str) -> Option<i64> {
    lower.split(marker).nth(1)?.split('\'').next()?.parse().ok()
}

/// The regular expression in the literal after `marker` (psql's `OPERATOR(pg_catalog.~) '^(x)$'`).
fn pattern_after(sql: &str, marker: &str) -> Option<Regex> {
    let rest = &sql[sql.find(marker)? + marker.len()..];
    let literal = rest.strip_prefix('\'')?;
    let mut pattern = String::new();
    let mut chars = literal.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            if chars.peek() == Some(&'\'') {
                chars.next();
                pattern.push('\'');
            } else {
                break;
            }
        } else {
            pattern.push(c);
        }
    }
    // An invalid pattern matches nothing rather than everything.
    Some(Regex::new(&pattern).unwrap_or_else(|_| Regex::new("$^").expect("valid regex")))
}

/// Whether a statement reads a catalog that never has rows for edgelens tables.
fn reads_always_empty(sql: &str) -> bool {
    catalog_relations(sql).iter().any(|r| ALWAYS_EMPTY.contains(&r.as_str()))
}

/// The catalog relations (`pg_*` names after `pg_catalog.` or bare) a statement reads.
fn catalog_relations(sql: &str) -> Vec<String> {
    lex(sql, Escapes::Standard)
        .iter()
        .filter(|t| t.tok == Tok::Word)
        .map(|t| sql[t.start..t.end].to_ascii_lowercase())
        .filter(|w| w.starts_with("pg_") && !FUNCTION_NAMES.contains(&w.as_str()))
        .collect()
}

/// The oid of a relation named as `'name'::regclass` takes it (`pg_catalog.pg_class`,
/// `public.traffic_1m`, `traffic_1m`): an edgelens table, or a system catalog whose rows edgelens
/// refers to (`pg_description.classoid`); `None` for others.
fn relation_oid(name: &str) -> Option<i64> {
    let name = name.trim().to_ascii_lowercase();
    let bare = name.rsplit('.').next().unwrap_or(&name);
    let system = [("pg_class", 1259), ("pg_type", 1247), ("pg_proc", 1255), ("pg_attribute", 1249), ("pg_namespace", 2615), ("pg_constraint", 2606), ("pg_index", 2610), ("pg_description", 2609), ("pg_trigger", 2620), ("pg_database", 1262)];
    if let Some((_, oid)) = system.iter().find(|(n, _)| *n == bare) {
        return Some(*oid);
    }
    let position = ALL_TABLES.iter().position(|t| t.name == bare)?;
    Some(FIRST_TABLE_OID + i64::try_from(position).ok()?)
}

/// Catalog statements in forms DataFusion plans, with the same answer on the catalog's rows (tried
/// only when the statement as written does not plan):
/// `'name'::regclass` (or `CAST('name' AS regclass)`) is the relation's oid ([`relation_oid`]),
/// another `regclass` cast is to text, and the other PostgreSQL-only types are cast as [`rewrite`]
/// casts them with `::`;
/// a scalar subquery that reads a table that is always empty here ([`EMPTY_TABLES`], joined
/// without `OUTER`) is `NULL`; one that selects a single column without aggregating takes its
/// `max` (DataFusion plans a correlated scalar subquery only when aggregated; a catalog lookup by
/// oid has at most one row). SQLAlchemy's column reflection needs both.
fn catalog_forms(statement: &mut datafusion::sql::parser::Statement) {
    use std::ops::ControlFlow;
    use datafusion::sql::parser::Statement as DfStatement;
    use datafusion::sql::sqlparser::ast::{DataType as SqlType, JoinOperator, Query, TableFactor, Value, VisitMut, VisitorMut};
    fn table_name(factor: &TableFactor) -> Option<String> {
        match factor {
            TableFactor::Table { name, .. } => name.0.last()?.as_ident().map(|i| i.value.to_ascii_lowercase()),
            _ => None,
        }
    }
    fn always_empty(query: &Query) -> bool {
        let SetExpr::Select(select) = query.body.as_ref() else { return false };
        select.from.iter().any(|from| {
            let empty = |f: &TableFactor| table_name(f).is_some_and(|n| EMPTY_TABLES.iter().any(|(t, _)| *t == n));
            empty(&from.relation)
                || from.joins.iter().any(|j| {
                    matches!(j.join_operator, JoinOperator::Join(_) | JoinOperator::Inner(_) | JoinOperator::CrossJoin(_)) && empty(&j.relation)
                })
        })
    }
    const AGGREGATES: &[&str] = &["max", "min", "count", "sum", "avg", "array_agg", "string_agg", "bool_and", "bool_or", "every"];
    struct Forms;
    impl VisitorMut for Forms {
        type Break = ();
        fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            if let Expr::Cast { data_type, expr: inner, .. } = expr {
                let name = match &*data_type {
                    SqlType::Regclass => Some("regclass".to_owned()),
                    SqlType::Custom(n, _) => n.0.last().and_then(|p| p.as_ident()).map(|i| i.value.to_ascii_lowercase()),
                    _ => None,
                };
                // `'traffic_1m'::regclass`: the relation's oid.
                let relation = match (name.as_deref(), inner.as_ref()) {
                    (Some("regclass"), Expr::Value(v)) => match &v.value {
                        Value::SingleQuotedString(relation) => Some(relation_oid(relation)),
                        _ => None,
                    },
                    _ => None,
                };
                if let Some(oid) = relation {
                    *expr = Expr::value(oid.map_or(Value::Null, |oid| Value::Number(oid.to_string(), false)));
                    return ControlFlow::Continue(());
                }
                match name.as_deref().and_then(postgres_only_type) {
                    Some("BIGINT") => *data_type = SqlType::BigInt(None),
                    Some(_) => *data_type = SqlType::Text,
                    None => {}
                }
            }
            let Expr::Subquery(query) = expr else { return ControlFlow::Continue(()) };
            let SetExpr::Select(select) = query.body.as_ref() else { return ControlFlow::Continue(()) };
            let aggregates = select.projection.iter().any(|item| {
                let text = item.to_string().to_ascii_lowercase();
                AGGREGATES.iter().any(|a| text.contains(&format!("{a}("))) || text.contains("_agg(")
            });
            if aggregates {
                return ControlFlow::Continue(());
            }
            if always_empty(query) {
                *expr = Expr::value(Value::Null);
                return ControlFlow::Continue(());
            }
            let ordered = query.order_by.is_some() || query.limit_clause.is_some() || query.fetch.is_some();
            if !ordered
                && let SetExpr::Select(select) = query.body.as_mut()
                && select.distinct.is_none()
                && select.group_by == datafusion::sql::sqlparser::ast::GroupByExpr::Expressions(Vec::new(), Vec::new())
                && let [item] = select.projection.as_mut_slice()
                && let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item
            {
                let inner = std::mem::replace(e, Expr::value(Value::Null));
                *e = crate::sql_compat::function_call("max", vec![inner]);
            }
            ControlFlow::Continue(())
        }
    }
    if let DfStatement::Statement(s) = statement {
        let _ = s.visit(&mut Forms);
    }
}

/// The type DataFusion has for a PostgreSQL-only type of catalog columns and casts (lower-cased
/// name): an oid (`oid`, `xid`) is `BIGINT`; a name of a relation, type, namespace or function
/// (`regclass`, `regtype`, …), `name`, `"char"` and `bpchar` are `TEXT`.
fn postgres_only_type(name: &str) -> Option<&'static str> {
    match name {
        "oid" | "xid" => Some("BIGINT"),
        "regclass" | "regtype" | "regnamespace" | "regproc" | "regprocedure" | "name" | "char" | "bpchar" => Some("TEXT"),
        _ => None,
    }
}

/// PostgreSQL-specific syntax rewritten so that DataFusion's PostgreSQL dialect can plan it:
/// `pg_catalog.` qualifiers dropped, `OPERATOR(pg_catalog.~)` → `~`, `COLLATE x` dropped, casts to
/// `oid`/`regtype`/`regnamespace`/`regproc` → `BIGINT`/`TEXT`, `name` and `"char"` → `TEXT`
/// (`regclass` is [`catalog_forms`]'s).
pub fn rewrite(sql: &str) -> String {
    let tokens = lex(sql, Escapes::Standard);
    let word = |i: usize| -> Option<String> {
        let t = tokens.get(i)?;
        match &t.tok {
            Tok::Word => Some(sql[t.start..t.end].to_ascii_lowercase()),
            Tok::Quoted(q) => Some(q.clone()),
            _ => None,
        }
    };
    let is = |i: usize, c: char| tokens.get(i).is_some_and(|t| t.tok == Tok::Other(c));
    let mut out = String::with_capacity(sql.len());
    let mut copied = 0;
    let mut skip_until = 0;
    let replace = |out: &mut String, copied: &mut usize, from: usize, to: usize, with: &str| {
        out.push_str(&sql[*copied..from]);
        out.push_str(with);
        *copied = to;
    };
    for idx in 0..tokens.len() {
        if idx < skip_until {
            continue;
        }
        let t = &tokens[idx];
        match word(idx).as_deref() {
            Some("pg_catalog") if matches!(t.tok, Tok::Word) && is(idx + 1, '.') => {
                replace(&mut out, &mut copied, t.start, tokens[idx + 1].end, "");
                skip_until = idx + 2;
            }
            Some("operator") if tokens.get(idx + 1).is_some_and(|n| n.tok == Tok::LParen) => {
                // OPERATOR ( [schema .] op ) → op
                let close = (idx + 2..tokens.len()).find(|&j| is(j, ')'));
                if let Some(close) = close {
                    let op: String = tokens[idx + 2..close]
                        .iter()
                        .filter(|x| matches!(x.tok, Tok::Other(_)) && x.tok != Tok::Other('.'))
                        .map(|x| &sql[x.start..x.end])
                        .collect();
                    replace(&mut out, &mut copied, t.start, tokens[close].end, &op);
                    skip_until = close + 1;
                }
            }
            Some("collate") if matches!(t.tok, Tok::Word) => {
                // COLLATE [schema .] name
                let mut end = idx + 1;
                while word(end).is_some() && is(end + 1, '.') {
                    end += 2;
                }
                if word(end).is_some() {
                    replace(&mut out, &mut copied, t.start, tokens[end].end, "");
                    skip_until = end + 1;
                }
            }
            _ if is(idx, ':') && is(idx + 1, ':') => {
                let mut at = idx + 2;
                if word(at).as_deref() == Some("pg_catalog") && is(at + 1, '.') {
                    at += 2;
                }
                let target = match word(at).as_deref() {
                    // `::regclass` is left to `catalog_forms` (a name's oid, or text).
                    Some("regclass") | None => None,
                    Some(name) => postgres_only_type(name),
                };
                if let Some(target) = target {
                    replace(&mut out, &mut copied, t.start, tokens[at].end, &format!("::{target}"));
                    skip_until = at + 1;
                }
            }
            _ => {}
        }
    }
    out.push_str(&sql[copied..]);
    out
}

fn placeholder_types(types: &std::collections::HashMap<String, Option<DataType>>) -> Vec<Option<DataType>> {
    let max = types.keys().filter_map(|k| k.strip_prefix('$')?.parse::<usize>().ok()).max().unwrap_or(0);
    (1..=max).map(|n| types.get(&format!("${n}")).cloned().flatten()).collect()
}

/// Placeholder types of a DataFusion plan's `get_parameter_types`, in `$1..$n` order.
pub fn ordered_placeholder_types(types: &std::collections::HashMap<String, Option<DataType>>) -> Vec<Option<DataType>> {
    placeholder_types(types)
}

// ---------------------------------------------------------------------------------------------
// Catalog functions.

/// Names of the catalog's functions: a statement calling one of them is a catalog statement.
pub const FUNCTION_NAMES: &[&str] = &[
    "version",
    "current_database",
    "current_schema",
    "current_schemas",
    "current_setting",
    "pg_backend_pid",
    "quote_ident",
    "format_type",
    "pg_get_userbyid",
    "pg_table_is_visible",
    "pg_type_is_visible",
    "obj_description",
    "col_description",
    "shobj_description",
    "has_table_privilege",
    "has_schema_privilege",
    "has_database_privilege",
    "pg_encoding_to_char",
    "pg_is_in_recovery",
    "pg_get_expr",
    "pg_get_constraintdef",
    "pg_get_indexdef",
    "array_to_string",
    "pg_function_is_visible",
    "pg_get_function_result",
    "pg_get_function_arguments",
    "to_regtype",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum FnKind {
    Version,
    Database,
    Schema,
    Schemas,
    User,
    Setting,
    BackendPid,
    QuoteIdent,
    FormatType,
    Owner,
    True,
    False,
    Null,
    ObjDescription,
    Encoding,
    ArrayToString,
    ToRegtype,
}

/// `pg_typeof(x)`: the PostgreSQL type `x` is sent as over the wire, named as PostgreSQL's
/// `regtype` prints it (`bigint`, `text`, `timestamp with time zone`). To register on every session
/// that plans user SQL.
pub fn pg_typeof() -> ScalarUDF {
    ScalarUDF::new_from_impl(PgTypeof { signature: Signature::any(1, Volatility::Immutable) })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct PgTypeof {
    signature: Signature,
}

impl ScalarUDFImpl for PgTypeof {
    fn name(&self) -> &str {
        "pg_typeof"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::common::Result<ColumnarValue> {
        let ty = args.arg_fields.first().map_or(Type::UNKNOWN, |f| pg_type(f.data_type()));
        let name = PG_TYPES.iter().find(|t| t.0 == ty.oid()).map_or_else(|| ty.name().to_owned(), |t| t.2.to_owned());
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(name))))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CatalogFunction {
    name: &'static str,
    kind: FnKind,
    signature: Signature,
    /// The session asking, for the functions that answer per session (`current_user`,
    /// `current_setting`); none: the owner and the default settings.
    asker: Option<Arc<Asker>>,
}


/// The catalog's functions; for `asker`, only those that answer per session (`current_user`,
/// `current_setting()`), answering for it.
fn functions(asker: Option<&Arc<Asker>>) -> Vec<ScalarUDF> {
    use FnKind::*;
    let list: &[(&'static str, FnKind)] = &[
        ("version", Version),
        ("current_database", Database),
        ("current_catalog", Database),
        ("current_schema", Schema),
        ("current_schemas", Schemas),
        ("current_user", User),
        ("session_user", User),
        ("current_role", User),
        ("user", User),
        ("current_setting", Setting),
        ("pg_backend_pid", BackendPid),
        ("quote_ident", QuoteIdent),
        ("format_type", FormatType),
        ("pg_get_userbyid", Owner),
        ("pg_table_is_visible", True),
        ("pg_type_is_visible", True),
        ("pg_function_is_visible", True),
        ("has_table_privilege", True),
        ("has_schema_privilege", True),
        ("has_database_privilege", True),
        ("pg_is_in_recovery", False),
        ("obj_description", ObjDescription),
        ("col_description", Null),
        ("shobj_description", Null),
        ("pg_get_expr", Null),
        ("pg_get_constraintdef", Null),
        ("pg_get_indexdef", Null),
        ("pg_get_function_result", Null),
        ("pg_get_function_arguments", Null),
        ("pg_encoding_to_char", Encoding),
        ("array_to_string", ArrayToString),
        ("to_regtype", ToRegtype),
    ];
    list.iter()
        .filter(|(_, kind)| asker.is_none() || matches!(kind, User | Setting))
        .map(|&(name, kind)| {
            let signature =
                Signature::one_of(vec![TypeSignature::Nullary, TypeSignature::VariadicAny], Volatility::Stable);
            ScalarUDF::new_from_impl(CatalogFunction { name, kind, signature, asker: asker.cloned() })
        })
        .collect()
}

static SETTINGS: LazyLock<Settings> = LazyLock::new(Settings::default);

/// `quote_ident`: the identifier as is when it needs no quotes, else double-quoted.
pub fn quote_ident(ident: &str) -> String {
    let plain = ident.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && ident.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain { ident.to_owned() } else { format!("\"{}\"", ident.replace('"', "\"\"")) }
}

impl ScalarUDFImpl for CatalogFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(match self.kind {
            FnKind::BackendPid => DataType::Int32,
            FnKind::ToRegtype => DataType::Int64,
            FnKind::True | FnKind::False => DataType::Boolean,
            FnKind::Schemas => DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
            _ => DataType::Utf8,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::common::Result<ColumnarValue> {
        use FnKind::*;
        let constant = |v: &str| Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(v.to_owned()))));
        match self.kind {
            Version => constant(&version_string()),
            Database => constant(DATABASE),
            Schema => constant(SCHEMA),
            User => constant(self.asker.as_ref().map_or(OWNER, |a| a.user.as_str())),
            Owner => constant(OWNER),
            Encoding => constant("UTF8"),
            True => Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true)))),
            False => Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(false)))),
            Null => Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None))),
            BackendPid => Ok(ColumnarValue::Scalar(ScalarValue::Int32(Some(std::process::id() as i32)))),
            Schemas => {
                let with_catalog = match args.args.first() {
                    Some(ColumnarValue::Scalar(ScalarValue::Boolean(Some(b)))) => *b,
                    _ => false,
                };
                let mut names = vec![Some(SCHEMA)];
                if with_catalog {
                    names.insert(0, Some("pg_catalog"));
                }
                let values = StringArray::from(names);
                let offsets = arrow::buffer::OffsetBuffer::from_lengths([values.len()]);
                let list = ListArray::try_new(Arc::new(Field::new_list_field(DataType::Utf8, true)), offsets, Arc::new(values), None)?;
                Ok(ColumnarValue::Scalar(ScalarValue::List(Arc::new(list))))
            }
            ToRegtype => {
                let arrays = ColumnarValue::values_to_arrays(&args.args)?;
                let Some(names) = arrays.first() else {
                    return Ok(ColumnarValue::Scalar(ScalarValue::Int64(None)));
                };
                let names = arrow::compute::cast(names, &DataType::Utf8)?;
                let oids: arrow::array::Int64Array = names.as_string::<i32>().iter().map(|n| n.and_then(type_oid)).collect();
                if args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
                    Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&oids, 0)?))
                } else {
                    Ok(ColumnarValue::Array(Arc::new(oids)))
                }
            }
            ArrayToString => {
                let arrays = ColumnarValue::values_to_arrays(&args.args)?;
                let (Some(lists), Some(sep)) = (arrays.first(), arrays.get(1)) else {
                    return Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)));
                };
                let sep = arrow::compute::cast(sep, &DataType::Utf8)?;
                let sep = sep.as_string::<i32>();
                let out: StringArray = match lists.as_list_opt::<i32>() {
                    Some(lists) => (0..lists.len())
                        .map(|row| {
                            if lists.is_null(row) {
                                return Ok(None);
                            }
                            let items = arrow::compute::cast(&lists.value(row), &DataType::Utf8)?;
                            let items = items.as_string::<i32>();
                            let at = row.min(sep.len().saturating_sub(1));
                            let sep = if sep.is_empty() || sep.is_null(at) { "" } else { sep.value(at) };
                            Ok(Some(items.iter().flatten().collect::<Vec<_>>().join(sep)))
                        })
                        .collect::<datafusion::common::Result<_>>()?,
                    None => (0..lists.len()).map(|_| None::<String>).collect(),
                };
                Ok(ColumnarValue::Array(Arc::new(out)))
            }
            Setting | QuoteIdent | FormatType | ObjDescription => {
                let arrays = ColumnarValue::values_to_arrays(&args.args)?;
                let text = |i: usize| -> datafusion::common::Result<Option<ArrayRef>> {
                    arrays.get(i).map(|a| arrow::compute::cast(a, &DataType::Utf8)).transpose().map_err(Into::into)
                };
                let first = text(0)?;
                let n = args.number_rows.max(first.as_ref().map_or(1, |a| a.len()));
                let value = |row: usize| -> Option<String> {
                    let a = first.as_ref()?;
                    let a = a.as_string::<i32>();
                    let row = if a.len() == 1 { 0 } else { row };
                    (!a.is_null(row)).then(|| a.value(row).to_owned())
                };
                let out: StringArray = (0..n)
                    .map(|row| {
                        let v = value(row)?;
                        match self.kind {
                            Setting => self.asker.as_ref().map_or(&*SETTINGS, |a| &a.settings).get(&v).map(str::to_owned),
                            QuoteIdent => Some(quote_ident(&v)),
                            FormatType => v.parse::<i64>().ok().map(format_type),
                            _ => v
                                .parse::<i64>()
                                .ok()
                                .and_then(|oid| ALL_TABLES.get(usize::try_from(oid - FIRST_TABLE_OID).ok()?))
                                .map(|t| t.doc.to_owned()),
                        }
                    })
                    .collect();
                if args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
                    Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
                } else {
                    Ok(ColumnarValue::Array(Arc::new(out)))
                }
            }
        }
    }
}

/// The error of a catalog statement that also reads an edgelens table (`SELECT
/// pg_typeof(requests) FROM traffic_1m`), which the catalog's planning error `m` calls not found.
fn edgelens_table_in_catalog(m: &str) -> Option<QueryError> {
    let table = ALL_TABLES.iter().find(|t| m.contains(&format!("{}' not found", t.name)))?;
    Some(QueryError::Sql {
        state: "0A000",
        message: format!(
            "{} is an edgelens table, and this statement also reads the PostgreSQL catalog (a pg_ table or function, information_schema, version(), current_setting(…)), which is answered apart from the tables: read them in separate statements",
            table.name
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lake_catalog() -> Catalog {
        Catalog::new(catalog_tables(crate::lake::lake_schema)).unwrap()
    }

    /// Regression: a statement reading an edgelens table and the catalog failed with "table
    /// 'edgelens.public.traffic_1m' not found", as if the table did not exist.
    #[tokio::test]
    async fn a_statement_mixing_the_catalog_and_edgelens_tables_says_so() {
        let e = lake_catalog().query("SELECT pg_typeof(requests), count(*) FROM traffic_1m GROUP BY 1").await.unwrap_err();
        assert!(matches!(e, QueryError::Sql { state: "0A000", .. }) && e.to_string().contains("traffic_1m is an edgelens table"), "{e}");
        let e = lake_catalog().describe("SELECT pg_typeof(requests) FROM site_rates_10s WHERE site = $1").await.unwrap_err();
        assert!(e.to_string().contains("site_rates_10s is an edgelens table"), "{e}");
        let e = lake_catalog().query("SELECT * FROM pg_class, nope").await.unwrap_err();
        assert!(matches!(e, QueryError::InvalidSql(ref m) if m.contains("not found")), "{e}");
    }

    fn cells(r: &QueryResult) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        for b in &r.batches {
            let cols: Vec<ArrayRef> = b.columns().iter().map(|c| arrow::compute::cast(c, &DataType::Utf8).unwrap()).collect();
            for row in 0..b.num_rows() {
                out.push(
                    cols.iter()
                        .map(|c| {
                            let c = c.as_string::<i32>();
                            if c.is_null(row) { "NULL".into() } else { c.value(row).to_owned() }
                        })
                        .collect(),
                );
            }
        }
        out
    }

    /// Regression: `pg_settings` showed the defaults whatever the session had set, and named
    /// `TimeZone` and `DateStyle` in lower case, so `WHERE name = 'TimeZone'` found nothing.
    #[tokio::test]
    async fn pg_settings_shows_the_sessions_settings() {
        let catalog = lake_catalog();
        let sql = "SELECT name, setting, source, reset_val FROM pg_settings WHERE name IN ('TimeZone', 'application_name') ORDER BY name";
        let mut settings = Settings::default();
        settings.set("application_name", "grafana").unwrap();
        let asker = Asker { user: "ops".into(), settings };
        assert_eq!(
            cells(&catalog.query_as(sql, Some(&asker)).await.unwrap()),
            [["TimeZone", "UTC", "default", "UTC"], ["application_name", "grafana", "session", ""]].map(|r| r.map(str::to_owned).to_vec())
        );
        // `SHOW ALL` spells them as `pg_settings` does.
        let all = cells(&asker.settings.show(None).unwrap());
        assert!(all.iter().any(|r| r[0] == "TimeZone") && all.iter().any(|r| r[0] == "DateStyle") && !all.iter().any(|r| r[0] == "timezone"), "{all:?}");
        // Other sessions and the shared catalog keep the defaults.
        assert_eq!(
            cells(&catalog.query(sql).await.unwrap()),
            [["TimeZone", "UTC", "default", "UTC"], ["application_name", "", "default", ""]].map(|r| r.map(str::to_owned).to_vec())
        );
    }

    #[test]
    fn settings_show_set_reset() {
        let mut s = Settings::default();
        assert_eq!(cells(&s.show(Some("server_version")).unwrap()), vec![vec![SERVER_VERSION.to_owned()]]);
        s.set("application_name", "psql").unwrap();
        assert_eq!(s.get("APPLICATION_NAME"), Some("psql"));
        s.set("Client_Encoding", "utf-8").unwrap();
        assert!(s.set("client_encoding", "LATIN1").is_err());
        assert!(s.set("server_version", "16").is_err());
        assert!(s.set("transaction_read_only", "off").is_err());
        s.reset(Some("application_name"));
        assert_eq!(s.get("application_name"), Some(""));
        assert!(s.show(Some("no_such_thing")).is_err());
        assert!(s.reported("alice").contains(&("session_authorization".to_owned(), "alice".to_owned())));
        assert!(s.reported("alice").contains(&("DateStyle".to_owned(), "ISO, MDY".to_owned())));
    }

    #[test]
    fn output_columns_are_named_as_postgres_names_them() {
        let names = postgres_column_names("SELECT site, t.requests, count(*), 1 + 1, 'x'::text, ts::date, sum(bytes) AS b, true, CASE WHEN 1 = 1 THEN 1 END FROM t").unwrap();
        let names: Vec<Option<&str>> = names.iter().map(Option::as_deref).collect();
        assert_eq!(
            names,
            [Some("site"), Some("requests"), Some("count"), Some("?column?"), Some("text"), Some("ts"), Some("b"), Some("bool"), Some("case")]
        );
        // Forms PostgreSQL turns into function calls are named after the function.
        let names = postgres_column_names(
            "SELECT position('b' in site), substring(site from 2), extract(hour from ts), trim(site), trim(leading 'x' from site), \
             ceil(1.5), floor(1.5), interval '1 hour', timestamp '2026-11-28 10:15', date '2026-11-28' FROM t",
        )
        .unwrap();
        let names: Vec<Option<&str>> = names.iter().map(Option::as_deref).collect();
        assert_eq!(
            names,
            [
                Some("position"),
                Some("substring"),
                Some("extract"),
                Some("btrim"),
                Some("ltrim"),
                Some("ceil"),
                Some("floor"),
                Some("interval"),
                Some("timestamp"),
                Some("date")
            ]
        );
        // A typed literal cast again is named by the type it is cast to.
        let names = postgres_column_names("SELECT date '2026-11-28'::timestamptz, (date '2026-11-01')::text, CAST(time '10:00' AS text) FROM t").unwrap();
        assert_eq!(names, [Some("timestamptz".into()), Some("text".into()), Some("text".into())]);
        assert_eq!(postgres_column_names("SELECT * FROM t"), None);
        assert_eq!(postgres_column_names("SHOW TABLES"), None);
        let result = text_result(&["Int64(1)", "x"], vec![vec![Some("1".into()), Some("2".into())]]).unwrap();
        let renamed = with_postgres_names("SELECT 1, x FROM t", result).unwrap();
        assert_eq!(renamed.schema.field(0).name(), "?column?");
        assert_eq!(renamed.batches[0].schema().field(0).name(), "?column?");
        assert_eq!(renamed.schema.field(1).name(), "x");
    }

    #[test]
    fn rewrites_postgres_syntax() {
        assert_eq!(
            rewrite("SELECT pg_catalog.format_type(a.atttypid, NULL) FROM pg_catalog.pg_attribute a"),
            "SELECT format_type(a.atttypid, NULL) FROM pg_attribute a"
        );
        assert_eq!(
            rewrite("WHERE c.relname OPERATOR(pg_catalog.~) '^(x)$' COLLATE pg_catalog.default AND c.oid = 1"),
            "WHERE c.relname ~ '^(x)$'  AND c.oid = 1"
        );
        assert_eq!(rewrite("SELECT c.oid::pg_catalog.regclass, 'pg_catalog.x'::name"), "SELECT c.oid::regclass, 'pg_catalog.x'::TEXT");
        assert_eq!(rewrite("SELECT 1::int"), "SELECT 1::int");
        assert_eq!(quote_ident("traffic_1m"), "traffic_1m");
        assert_eq!(quote_ident("Mixed\"Case"), "\"Mixed\"\"Case\"");
    }

    #[tokio::test]
    async fn information_schema_lists_the_contract_tables() {
        let c = lake_catalog();
        let r = c.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1").await.unwrap();
        let mut want: Vec<Vec<String>> = ALL_TABLES.iter().map(|t| vec![t.name.to_owned()]).collect();
        want.sort();
        assert_eq!(cells(&r), want);
        let r = c
            .query("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'traffic_1m' ORDER BY ordinal_position")
            .await
            .unwrap();
        let rows = cells(&r);
        assert_eq!(rows[0], vec!["ts", "timestamp with time zone"]);
        assert_eq!(rows[1], vec!["site", "text"]);
        assert_eq!(rows[6], vec!["requests", "bigint"]);
        assert_eq!(rows.last().unwrap(), &vec!["date".to_owned(), "text".to_owned()]);
    }

    #[tokio::test]
    async fn session_functions() {
        let c = lake_catalog();
        let r = c.query("SELECT version(), current_database(), current_schema(), current_user").await.unwrap();
        let row = &cells(&r)[0];
        assert!(row[0].starts_with("PostgreSQL 15.0 (edgelens"), "{row:?}");
        assert_eq!(&row[1..], &["edgelens", "public", "edgelens"]);
        let r = c.query("SELECT current_setting('server_version_num')::int/100 AS version").await.unwrap();
        assert_eq!(cells(&r), vec![vec!["1500"]]);
        let r = c.query("SELECT array_to_string(current_schemas(true), ',')").await.unwrap();
        assert_eq!(cells(&r), vec![vec!["pg_catalog,public"]]);
        let r = c.query("SELECT pg_catalog.quote_ident(relname) FROM pg_catalog.pg_class WHERE relname = 'asn_1m'").await.unwrap();
        assert_eq!(cells(&r), vec![vec!["asn_1m"]]);
        let err = c.query("SELECT * FROM pg_catalog.pg_stat_activity").await.unwrap_err();
        assert!(err.is_user_error() && err.to_string().contains("part of the PostgreSQL catalog"), "{err}");
    }

    #[tokio::test]
    async fn driver_statements_with_arrays_and_type_lookups() {
        let c = lake_catalog();
        // psycopg 3's TypeInfo.fetch (the SQLAlchemy psycopg dialect asks for hstore on connect).
        let info = "SELECT\n    typname AS name, oid, typarray AS array_oid,\n    oid::regtype::text AS regtype, typdelim AS delimiter\nFROM pg_type t\nWHERE t.oid = to_regtype('hstore')\nORDER BY t.oid";
        assert_eq!(c.query(info).await.unwrap().num_rows(), 0);
        let r = c.query(&info.replace("'hstore'", "'bigint'")).await.unwrap();
        assert_eq!(cells(&r)[0][..2], ["int8", "20"]);
        let r = c.query("SELECT to_regtype('pg_catalog.TEXT') AS a, to_regtype('nope') AS b").await.unwrap();
        assert_eq!(cells(&r), vec![vec!["25", "NULL"]]);
        // SQLAlchemy's has_table (psycopg2 interpolates the list parameter as ARRAY[...]).
        let has_table = "SELECT pg_catalog.pg_class.relname \nFROM pg_catalog.pg_class JOIN pg_catalog.pg_namespace ON pg_catalog.pg_namespace.oid = pg_catalog.pg_class.relnamespace \nWHERE pg_catalog.pg_class.relname = 'traffic_1m' AND pg_catalog.pg_class.relkind = ANY (ARRAY['r', 'p', 'f', 'v', 'm']) AND pg_catalog.pg_table_is_visible(pg_catalog.pg_class.oid) AND pg_catalog.pg_namespace.nspname != 'pg_catalog'";
        assert_eq!(cells(&c.query(has_table).await.unwrap()), vec![vec!["traffic_1m"]]);
        assert_eq!(c.query(&has_table.replace("'traffic_1m'", "'nope'")).await.unwrap().num_rows(), 0);
        let like = "SELECT relname FROM pg_class WHERE relname LIKE 'traffic/_1%' ESCAPE '/' AND relname NOT LIKE 'trafficX1m'";
        assert_eq!(cells(&c.query(like).await.unwrap()), vec![vec!["traffic_1m"]]);
        // SQLAlchemy 2's column reflection: scalar subqueries over always-empty catalogs (defaults,
        // sequences, collations) and one not aggregated, json_build_object, CAST(… AS REGCLASS).
        let columns = include_str!("../../tests/clients/sqlalchemy_columns.sql");
        let r = c.query(columns).await.unwrap();
        let rows = cells(&r);
        let names: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
        assert_eq!(names, ["ts", "site", "country", "colo", "status_class", "cache_status", "requests", "bytes", "date"]);
        assert_eq!(rows[0][1], "timestamp with time zone");
        assert_eq!(rows[6][1], "bigint");
        assert!(rows.iter().all(|r| r[2] == "NULL" && r[4] == "traffic_1m"), "{rows:?}");
        let r = c.query("SELECT CAST('pg_catalog.pg_class' AS REGCLASS) AS a, CAST('public.traffic_1m' AS REGCLASS) AS b, CAST('nope' AS REGCLASS) AS c").await.unwrap();
        let oid = catalog_tables(crate::lake::lake_schema).iter().find(|t| t.name == "traffic_1m").unwrap().oid;
        assert_eq!(cells(&r), vec![vec!["1259".to_owned(), oid.to_string(), "NULL".to_owned()]]);
        let r = c.query("SELECT relname FROM pg_class WHERE oid = 'traffic_1m'::regclass").await.unwrap();
        assert_eq!(cells(&r), vec![vec!["traffic_1m"]]);
        let r = c.query("SELECT to_regtype('int') AS a, to_regtype('text[]') AS b, to_regtype('double precision') AS c").await.unwrap();
        assert_eq!(cells(&r), vec![vec!["23", "1009", "701"]]);
        // The forms apply only to what does not plan as written: aggregates over empty catalogs
        // keep their answer.
        let r = c.query("SELECT (SELECT count(*) FROM pg_enum) AS n, (SELECT coalesce(max(enumlabel), 'none') FROM pg_enum) AS l").await.unwrap();
        assert_eq!(cells(&r), vec![vec!["0", "none"]]);
        let r = c.query("SELECT (SELECT nspname FROM pg_namespace ORDER BY nspname LIMIT 1) AS first").await.unwrap();
        assert_eq!(cells(&r), vec![vec!["information_schema"]]);
    }

    #[tokio::test]
    async fn psql_describe_statements() {
        let c = lake_catalog();
        // \dt
        let list = "SELECT n.nspname as \"Schema\",\n  c.relname as \"Name\",\n  CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' END as \"Type\",\n  pg_catalog.pg_get_userbyid(c.relowner) as \"Owner\"\nFROM pg_catalog.pg_class c\n     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace\n     LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam\nWHERE c.relkind IN ('r','p','')\n      AND n.nspname <> 'pg_catalog'\n      AND n.nspname !~ '^pg_toast'\n      AND n.nspname <> 'information_schema'\n  AND pg_catalog.pg_table_is_visible(c.oid)\nORDER BY 1,2;";
        let r = c.query(list).await.unwrap();
        assert_eq!(r.schema.field(1).name(), "Name");
        let rows = cells(&r);
        assert_eq!(rows.len(), ALL_TABLES.len());
        assert!(rows.contains(&vec!["public".into(), "traffic_1m".into(), "table".into(), "edgelens".into()]));
        // \dv lists nothing.
        assert!(cells(&c.query(&list.replace("('r','p','')", "('v','')")).await.unwrap()).is_empty());
        // \d traffic_1m, step 1
        let lookup = "SELECT c.oid,\n  n.nspname,\n  c.relname\nFROM pg_catalog.pg_class c\n     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace\nWHERE c.relname OPERATOR(pg_catalog.~) '^(traffic_1m)$' COLLATE pg_catalog.default\n  AND pg_catalog.pg_table_is_visible(c.oid)\nORDER BY 2, 3;";
        let rows = cells(&c.query(lookup).await.unwrap());
        assert_eq!(rows, vec![vec!["16385".to_owned(), "public".into(), "traffic_1m".into()]]);
        // step 3
        let attrs = "SELECT a.attname,\n  pg_catalog.format_type(a.atttypid, a.atttypmod),\n  (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true)\n   FROM pg_catalog.pg_attrdef d\n   WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.atthasdef),\n  a.attnotnull,\n  (SELECT c.collname FROM pg_catalog.pg_collation c, pg_catalog.pg_type t\n   WHERE c.oid = a.attcollation AND t.oid = a.atttypid AND a.attcollation <> t.typcollation) AS attcollation,\n  a.attidentity,\n  a.attgenerated\nFROM pg_catalog.pg_attribute a\nWHERE a.attrelid = '16385' AND a.attnum > 0 AND NOT a.attisdropped\nORDER BY a.attnum;";
        let rows = cells(&c.query(attrs).await.unwrap());
        assert_eq!(rows[0], vec!["ts", "timestamp with time zone", "NULL", "t", "NULL", "", ""]);
        assert_eq!(rows.len(), TRAFFIC_COLUMNS);
        // Regression: other statements with the same FROM and visibility test got psql's list,
        // whatever else they asked.
        let visible = "FROM pg_catalog.pg_class c WHERE pg_catalog.pg_table_is_visible(c.oid)";
        assert!(cells(&c.query(&format!("SELECT c.relname {visible} AND c.relkind = 'v'")).await.unwrap()).is_empty());
        let rows = cells(&c.query(&format!("SELECT c.relname {visible} AND c.relname LIKE 'site%' ORDER BY 1")).await.unwrap());
        assert!(!rows.is_empty() && rows.iter().all(|r| r[0].starts_with("site")), "{rows:?}");
        assert_eq!(cells(&c.query(&format!("SELECT c.relname {visible} ORDER BY 1 LIMIT 2")).await.unwrap()).len(), 2);
        assert_eq!(cells(&c.query(&format!("SELECT count(*) {visible}")).await.unwrap()), vec![vec![ALL_TABLES.len().to_string()]]);
        // footers are empty
        let r = c.query("SELECT * FROM pg_catalog.pg_index").await.unwrap();
        assert_eq!((r.num_rows(), r.schema.field(1).name().as_str()), (0, "indrelid"));
        let policies = "SELECT pol.polname, pol.polpermissive\nFROM pg_catalog.pg_policy pol\nWHERE pol.polrelid = '16385' ORDER BY 1;";
        let r = c.query(policies).await.unwrap();
        assert_eq!(r.num_rows(), 0);
        assert_eq!(r.schema.fields().len(), 2);
    }

    const TRAFFIC_COLUMNS: usize = 9;

    #[tokio::test]
    async fn grafana_builder_statements() {
        let c = lake_catalog();
        let tables = "SELECT\n CASE WHEN quote_ident(table_schema) IN (SELECT CASE WHEN trim(s[i]) = '\"$user\"' THEN user ELSE trim(s[i]) END FROM generate_series(array_lower(string_to_array(current_setting('search_path'),','),1), array_upper(string_to_array(current_setting('search_path'),','),1)) as i, string_to_array(current_setting('search_path'),',') s) THEN quote_ident(table_name) ELSE quote_ident(table_schema) || '.' || quote_ident(table_name) END AS \"table\"\n FROM information_schema.tables\n WHERE quote_ident(table_schema) NOT IN ('information_schema', 'pg_catalog')\n ORDER BY 1";
        let r = c.query(tables).await.unwrap();
        assert_eq!(r.schema.field(0).name(), "table");
        assert_eq!(r.num_rows(), ALL_TABLES.len());
        let columns = "SELECT quote_ident(column_name) AS \"column\", data_type AS \"type\" FROM information_schema.columns WHERE CASE WHEN array_length(parse_ident('public.asn_1m'),1) = 2 THEN quote_ident(table_schema) = (parse_ident('public.asn_1m'))[1] AND quote_ident(table_name) = (parse_ident('public.asn_1m'))[2] ELSE quote_ident(table_name) = 'public.asn_1m' END";
        let rows = cells(&c.query(columns).await.unwrap());
        assert!(rows.contains(&vec!["asn".to_owned(), "bigint".to_owned()]), "{rows:?}");
        // Version and TimescaleDB detection of the data source settings page.
        let r = c.query("SELECT current_setting('server_version_num')::int/100 as version").await.unwrap();
        assert_eq!(cells(&r), vec![vec!["1500"]]);
        let r = c.query("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").await.unwrap();
        assert_eq!(r.num_rows(), 0);
    }
}
