//! edgelens aggregate: from validated events to rollup tables.
//!
//! - [`windows`]: the pure event-time window core (watermarks, late deltas, RayID dedup).
//! - [`sketch`]: the mergeable distinct-client sketch (defined in `edgelens_schemas`, whose stored format it is).
//! - [`detect`]: the pure attack detector (baselines, signatures, incident lifecycle).
//! - [`batches`]: rollup rows as Arrow batches in the schemas' column order.
//! - [`sink`]: the [`sink::RollupSink`] trait, the Parquet lake and an in-memory sink.
//! - [`pipeline`]: the embedded pipeline (lines → parse → windows → sink) used by `replay` and `demo`.
//! - [`checkpoint`]: durable snapshots of a partition's open state.
//! - [`partition`]: one topic partition with the exactly-once protocol (resume, flush, checkpoint).
//! - [`lease`]: partition ownership among the aggregators of a group (file leases).
//! - [`consumer`]: the aggregator role, a Kafka consumer group member ([`consumer::run`]).
//! - [`metrics`]: the aggregator's Prometheus metrics and its `/metrics`, `/healthz`, `/readyz`.
//! - [`sites`]: host names of lines without `ZoneName` → their registered sites.

pub mod batches;
pub mod checkpoint;
pub mod consumer;
pub mod detect;
pub mod error;
pub mod lease;
pub mod metrics;
pub mod partition;
pub mod pipeline;
pub mod sink;
pub mod sites;
pub use edgelens_schemas::sketch;
pub mod windows;

pub use error::{PipelineError, SinkError};
pub use sink::{OffsetSpan, RollupSink, SinkBatch};
pub use windows::{ClosedWindows, SiteWindows, WindowConfig};
pub use consumer::{run, AggregateConfig, AggregateError};
