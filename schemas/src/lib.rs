//! edgelens schemas: the one place that says what an edge event is and what every table looks like.
//!
//! - [`event`]: the Logpush `http_requests` event (field names unchanged), parsing of one NDJSON line
//!   and validation into an [`EdgeEvent`] or a typed [`InvalidReason`]; [`flat_scan`] is its fast
//!   path for the usual shape of a line.
//! - [`tables`]: every table of the public contract, defined once as data; the Arrow schema (Parquet
//!   lake, DataFusion) and the ClickHouse DDL are both derived from these definitions.
//! - [`clickhouse`]: the ClickHouse DDL (storage, Distributed and view per table) and versioned
//!   migrations, derived from [`tables`].
//! - [`privacy`]: the client-IP policy (keep, truncate, keyed hash) applied before storage.
//! - [`registry`]: registry import files (sites, entity attributions, tags) parsed and validated.
//! - [`sketch`]: the distinct-client sketch and its stored format (`clients_sketch` columns).
//! - [`settings`]: checks the roles' typed settings share.
//! - [`sites`]: host names → registered sites (the registry's mapping the aggregators count by
//!   and ingest keys by).
//! - [`suffix`]: the partition key of a site's events (its registrable domain).
//!
//! - [`net`] (feature `net`): the connection limits of the HTTP listeners.
//!
//! No I/O happens in this crate, but for [`net`].

pub mod clickhouse;
pub mod event;
pub mod flat_scan;
#[cfg(feature = "net")]
pub mod net;
pub mod privacy;
pub mod registry;
pub mod settings;
pub mod sites;
pub mod sketch;
pub mod suffix;
pub mod tables;
pub mod time;

pub use event::{EdgeEvent, InvalidReason, RawEvent, parse_line, MAX_EXCERPT_BYTES};
pub use tables::{ColumnDef, ColumnType, Role, TableDef, ALL_TABLES};
pub use time::{parse_duration, parse_timestamp_str, Nanos};
