//! Errors of the query service. Every error knows whose fault it is: the caller's (a bad parameter,
//! refused or invalid SQL → HTTP 400) or ours (storage, execution → HTTP 500), and whether trying the
//! same request again may succeed.

use datafusion::error::DataFusionError;
use arrow::error::ArrowError;

pub type Result<T, E = QueryError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A request parameter is missing, malformed or out of range.
    #[error("{0}")]
    InvalidParameter(String),
    /// No or an unknown credential (HTTP 401).
    #[error("{0}")]
    Unauthorized(String),
    /// The caller may not do this (HTTP 403).
    #[error("{0}")]
    Forbidden(String),
    /// A part of the service this request needs is not configured (HTTP 503).
    #[error("{0}")]
    Unavailable(String),
    /// The ClickHouse database has not (all) the edgelens tables, or there is no lake at the
    /// configured path: no writer created them yet, or the configuration names another database
    /// or directory (HTTP 503).
    #[error("{0}")]
    NoSchema(String),
    /// The requested object (e.g. an incident id) does not exist (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// The request's `Accept` header names no format the answer can be given in (HTTP 406).
    #[error("not acceptable: {0}")]
    NotAcceptable(String),
    /// User SQL refused by the read-only guard.
    #[error("refused: {0}")]
    SqlRefused(String),
    /// User SQL that does not parse or plan (syntax, unknown table or column, type error).
    #[error("invalid SQL: {0}")]
    InvalidSql(String),
    /// User SQL that failed on the values it met (division by zero, overflow, a cast or parse
    /// of a value): the statement's fault, not the service's.
    #[error("the query failed on a value: {0}")]
    DataError(String),
    /// A statement refused with a SQLSTATE of its own (the cursor and transaction rules of the
    /// Postgres wire protocol): the caller's fault.
    #[error("invalid SQL: {message}")]
    Sql { state: &'static str, message: String },
    /// User SQL exceeded a limit (time, rows, memory): the caller must ask for less.
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    /// The lake is not open yet (the service is starting).
    #[error("lake not open yet")]
    NotReady,
    /// The lake directory cannot be used.
    #[error("lake at {path}: {source}")]
    Lake { path: String, source: std::io::Error },
    /// Planning or executing an internal query failed.
    #[error("query execution failed: {0}")]
    Execution(#[from] DataFusionError),
    /// Rendering results failed.
    #[error("rendering results failed: {0}")]
    Render(#[from] arrow::error::ArrowError),
    /// Lake files that cannot be read (their footer does not parse); move them aside to serve the
    /// rest of their partition again.
    #[error("corrupt Parquet file(s) in the lake: {paths} (queries that do not read them still work; move them out of the lake) — {cause}")]
    CorruptFiles { paths: String, cause: String },
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The ClickHouse backend failed (server error, undecodable answer).
    #[error("ClickHouse: {0}")]
    Backend(String),
    /// The ClickHouse server is unreachable, does not answer in time or is too busy (HTTP 503 with
    /// `Retry-After`): the same request may succeed later.
    #[error("ClickHouse is unavailable, try again later: {0}")]
    BackendUnavailable(String),
}

impl QueryError {
    /// The caller's fault: answering the same request again gives the same error (HTTP 400).
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            QueryError::InvalidParameter(_)
                | QueryError::SqlRefused(_)
                | QueryError::InvalidSql(_)
                | QueryError::Sql { .. }
                | QueryError::DataError(_)
                | QueryError::LimitExceeded(_)
        )
    }

    /// Trying again later may succeed (the service is starting, or storage had a transient problem).
    pub fn is_retryable(&self) -> bool {
        matches!(self, QueryError::NotReady | QueryError::Io(_) | QueryError::Lake { .. } | QueryError::Backend(_) | QueryError::BackendUnavailable(_))
            || matches!(self, QueryError::Execution(e) if matches!(e.find_root(), DataFusionError::IoError(_) | DataFusionError::ObjectStore(_)))
    }

    /// HTTP status code for this error.
    pub fn http_status(&self) -> u16 {
        if matches!(self, QueryError::NotFound(_)) {
            404
        } else if matches!(self, QueryError::NotAcceptable(_)) {
            406
        } else if matches!(self, QueryError::Unauthorized(_)) {
            401
        } else if matches!(self, QueryError::Forbidden(_)) {
            403
        } else if matches!(self, QueryError::Unavailable(_) | QueryError::NoSchema(_)) {
            503
        } else if self.is_user_error() {
            400
        } else if matches!(self, QueryError::NotReady | QueryError::BackendUnavailable(_)) {
            503
        } else {
            500
        }
    }

    /// Classify an error from planning user SQL: parse, plan and schema errors are the user's.
    pub fn from_user_sql(e: DataFusionError) -> Self {
        match e.find_root() {
            DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_) => QueryError::InvalidSql(e.strip_backtrace()),
            // Bytes (a sketch) read as text: `length(clients_sketch)`.
            DataFusionError::ArrowError(ae, _) if matches!(ae.as_ref(), ArrowError::InvalidArgumentError(m) if m.contains("non UTF-8")) => {
                QueryError::DataError(format!("{ae} (bytes, such as a sketch, read as text: length(encode(x, 'hex')) / 2 is their size, hll_merge(x) the distinct count)"))
            }
            DataFusionError::ArrowError(ae, _)
                if matches!(
                    ae.as_ref(),
                    ArrowError::DivideByZero | ArrowError::ArithmeticOverflow(_) | ArrowError::CastError(_) | ArrowError::ParseError(_)
                ) =>
            {
                match ae.as_ref() {
                    // `site = 5`, `requests = 'abc'`: DataFusion reads the text as a number, and
                    // names the first value that is none as if the data were wrong.
                    ArrowError::CastError(m) if m.starts_with("Cannot cast string '") => QueryError::DataError(format!(
                        "{ae} (text compared or combined with a number is read as a number: compare text with text, as in site = '5', and numbers with numbers, as in requests > 5)"
                    )),
                    _ => QueryError::DataError(ae.to_string()),
                }
            }
            // A function refusing the values it was given (`sqrt(-1)`, `make_date(2026, 13, 1)`,
            // `date_trunc('fortnight', ts)`, an invalid regular expression): the statement's.
            DataFusionError::Execution(_) => QueryError::DataError(e.strip_backtrace()),
            DataFusionError::ArrowError(ae, _) if matches!(ae.as_ref(), ArrowError::ComputeError(_) | ArrowError::InvalidArgumentError(_)) => {
                QueryError::DataError(ae.to_string())
            }
            DataFusionError::External(x) if x.to_string().starts_with("regex parse error") => QueryError::DataError(x.to_string()),
            DataFusionError::ResourcesExhausted(msg) => {
                QueryError::LimitExceeded(format!("the query needs more memory than the service allows ({msg})"))
            }
            _ => QueryError::Execution(e),
        }
    }
}
