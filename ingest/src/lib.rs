//! edgelens ingest: where edge events enter the system.
//!
//! - [`reader`]: streaming NDJSON / NDJSON.gz reader with a bounded line length (memory is bounded
//!   by the buffer, never by the file).
//! - [`dead_letter`]: the record kept for every input that was not counted, with its reason.
//! - [`generate`]: deterministic synthetic Logpush traffic with ground truth.

pub mod dead_letter;
pub mod reader;
pub mod generate;
