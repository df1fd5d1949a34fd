//! Errors of the ingest crate, each saying whether retrying can help.

/// Why an append to the event log failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// The producer's local queue is full: back off and retry (HTTP 429).
    #[error("producer queue is full")]
    QueueFull,
    /// The broker did not acknowledge in time or cannot be reached: retry later (HTTP 503).
    #[error("event log unavailable: {0}")]
    Unavailable(String),
    /// The broker refused the records for a reason retrying will not fix (e.g. too large).
    #[error("event log rejected the records: {0}")]
    Rejected(String),
    /// The client could not be set up (bad settings).
    #[error("event log client: {0}")]
    Config(String),
}

impl LogError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, LogError::QueueFull | LogError::Unavailable(_))
    }
}
