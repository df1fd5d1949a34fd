//! Errors of the aggregate crate, each saying whether retrying can help.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("I/O error on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("Parquet encoding failed: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("Arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

impl SinkError {
    /// I/O errors (disk full, permissions being fixed, a remote mount back) may pass; encoding
    /// errors are bugs or bad data and will not.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Io { .. })
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("cannot read {path}: {source}")]
    Input { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Sink(#[from] SinkError),
}
