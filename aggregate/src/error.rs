//! Errors of the aggregate crate, each saying whether retrying can help.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("I/O error on {}: {source}{}", path.display(), io_hint(source))]
    Io { path: PathBuf, source: std::io::Error },
    #[error("Parquet encoding failed: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("Arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("ClickHouse: {message}")]
    ClickHouse { message: String, retryable: bool },
    #[error("ClickHouse schema: {0}")]
    Schema(String),
    #[error("cannot encode rows: {0}")]
    Encode(String),
    #[error("sink configuration: {0}")]
    Config(String),
    #[error("incidents topic: {message}")]
    Alerts { message: String, retryable: bool },
}

impl SinkError {
    /// I/O errors (disk full, permissions being fixed, a remote mount back) may pass; encoding
    /// errors are bugs or bad data and will not.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Io { .. } => true,
            Self::ClickHouse { retryable, .. } | Self::Alerts { retryable, .. } => *retryable,
            _ => false,
        }
    }

    /// A `clickhouse` crate error, classified: network errors, timeouts and the server errors that
    /// pass (overload, too many parts, memory, read-only while a replica recovers…) are retryable;
    /// SQL, type and format errors are not.
    pub fn clickhouse(e: clickhouse::error::Error) -> Self {
        use clickhouse::error::Error as E;
        let retryable = match &e {
            E::Network(_) | E::TimedOut => true,
            E::BadResponse(msg) => edgelens_schemas::clickhouse::error_code(msg).is_none_or(|code| RETRYABLE_CLICKHOUSE_CODES.contains(&code)),
            _ => false,
        };
        Self::ClickHouse { message: e.to_string(), retryable }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}

/// A full file system or an exceeded quota named as such in messages, next to the OS's words.
pub fn io_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::StorageFull => " (ENOSPC: the file system is full)",
        std::io::ErrorKind::QuotaExceeded => " (EDQUOT: the disk quota is exceeded)",
        _ => "",
    }
}

/// Server error codes after which the same request may succeed: TIMEOUT_EXCEEDED, READONLY,
/// TOO_MANY_SIMULTANEOUS_QUERIES, NO_FREE_CONNECTION, SOCKET_TIMEOUT, NETWORK_ERROR,
/// MEMORY_LIMIT_EXCEEDED, TABLE_IS_READ_ONLY, TOO_MANY_PARTS, TOO_FEW_LIVE_REPLICAS,
/// UNKNOWN_STATUS_OF_INSERT, ALL_CONNECTION_TRIES_FAILED, SYSTEM_ERROR.
const RETRYABLE_CLICKHOUSE_CODES: &[u32] = &[159, 164, 202, 203, 209, 210, 241, 242, 252, 285, 319, 279, 425];

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("cannot read {path}: {source}")]
    Input { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// A replay stopped by an error, its writes removed again (`removed` files or inserts), so a
    /// replay of the repaired input counts nothing twice.
    #[error("{cause}; the replay stopped{}", if *removed == 0 { " before writing anything".to_owned() } else { format!(" and removed the {removed} writes it had made, so nothing of it is in the output") })]
    Aborted { cause: Box<PipelineError>, removed: u64 },
    /// A replay including some, not all, of the files of an earlier replay into the same output:
    /// those would be counted twice.
    #[error("{file} was replayed into this output before, together with {}, which this replay leaves out: replay them all together (a replay including every file of an earlier one replaces it)", names(left_out))]
    PartOfAnEarlierReplay { file: String, left_out: Vec<String> },
    /// A replay that succeeded, but could not remove the earlier replays it replaces.
    #[error("the replay is written, but removing the earlier replays of these files failed ({cause}): they are counted besides it until a replay of these files succeeds in removing them ({})", replaced.join(", "))]
    NotReplaced { replaced: Vec<String>, cause: SinkError },
    /// A replay stopped by an error whose writes could not all be removed.
    #[error("{cause}; the replay stopped, and removing the writes it had made failed ({discard}): replaying the same files again replaces them")]
    AbortedPartly { cause: Box<PipelineError>, discard: SinkError },
}

/// At most five names, and how many more.
fn names(all: &[String]) -> String {
    let mut text = all.iter().take(5).map(String::as_str).collect::<Vec<_>>().join(", ");
    if all.len() > 5 {
        text += &format!(" and {} more", all.len() - 5);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clickhouse_errors_are_classified() {
        let too_many_parts = SinkError::clickhouse(clickhouse::error::Error::BadResponse("Code: 252, e.displayText() = DB::Exception: Too many parts (300)".into()));
        assert!(too_many_parts.is_retryable());
        let syntax = SinkError::clickhouse(clickhouse::error::Error::BadResponse("Code: 62, e.displayText() = DB::Exception: Syntax error".into()));
        assert!(!syntax.is_retryable());
        assert!(SinkError::clickhouse(clickhouse::error::Error::TimedOut).is_retryable());
        assert!(!SinkError::Schema("x".into()).is_retryable());
    }

    #[test]
    fn a_full_disk_is_named_with_the_path() {
        let e = SinkError::io("/lake/.tmp/x.parquet")(std::io::Error::from_raw_os_error(28));
        let msg = e.to_string();
        assert!(msg.contains("/lake/.tmp/x.parquet") && msg.contains("No space left on device") && msg.contains("ENOSPC"), "{msg}");
        assert!(e.is_retryable());
        let other = SinkError::io("/lake/a")(std::io::Error::from(std::io::ErrorKind::PermissionDenied)).to_string();
        assert!(!other.contains("ENOSPC"), "{other}");
    }
}
