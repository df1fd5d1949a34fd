//! The HTTP service: REST API, read-only SQL and the dashboard, over one [`Backend`] (the lake or
//! ClickHouse).
//!
//! Routes:
//! - `GET /healthz` — 200 `ok` while the process serves;
//! - `GET /readyz` — 200 `ready` once the lake is open, 503 before;
//! - `GET /v1/traffic-share?from&to&step&by&top&min_confidence&format` — see [`traffic_share`];
//! - `GET /v1/sites/{site}/rates?from&to&step&format` — see [`site_rates`];
//! - `POST /v1/sql` — body: the SQL text, or JSON `{"sql": "..."}`; one read-only statement (see
//!   [`sql_guard`](crate::sql_guard)); the result in the format the `Accept` header asks for (JSON
//!   array of row objects by default, `text/csv`, `application/vnd.apache.arrow.stream`,
//!   `application/vnd.apache.parquet`, `text/plain` for a table) or `?format=json|csv|arrow|parquet|table`;
//! - `GET /` — the dashboard (one self-contained HTML page).
//!
//! Errors are JSON `{"error": "..."}`: 400 for the caller's mistakes, 503 while starting, 500 for
//! ours (details logged, the body says what failed).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::QueryConfig;
use crate::error::{QueryError, Result};
use crate::format::{OutputFormat, render};
use crate::backend::Backend;
use crate::params::{SeriesFormat, ShareBy, Step, TimeRange, parse_min_confidence, parse_top};
use crate::site_rates::{self, SiteRatesRequest};
use crate::traffic_share::{self, TrafficShareRequest};

const DASHBOARD_HTML: &str = include_str!("../assets/index.html");

/// Shared state of the handlers: the backend (lake or ClickHouse), once it is open.
#[derive(Clone, Debug, Default)]
pub struct AppState {
    backend: Arc<OnceLock<Backend>>,
}

impl AppState {
    /// State with the backend open (ready at once).
    pub fn new(backend: impl Into<Backend>) -> Self {
        let state = AppState::starting();
        state.set_backend(backend);
        state
    }

    /// State of a service that is still opening its backend: `/readyz` answers 503, queries too.
    pub fn starting() -> Self {
        AppState::default()
    }

    /// Make the backend available; later calls are ignored.
    pub fn set_backend(&self, backend: impl Into<Backend>) {
        let _ = self.backend.set(backend.into());
    }

    pub fn backend(&self) -> Result<&Backend> {
        self.backend.get().ok_or(QueryError::NotReady)
    }
}

/// The service's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/v1/traffic-share", get(traffic_share_handler))
        .route("/v1/sites/{site}/rates", get(site_rates_handler))
        .route("/v1/sql", post(sql_handler))
        .fallback(|| async { error_response(StatusCode::NOT_FOUND, "not found") })
        .with_state(state)
}

/// Open the configured backend (the lake at `config.data_dir`, or ClickHouse), bind
/// `config.listen` and `config.pg_listen` (the Postgres wire protocol, unless disabled) and serve
/// both until `shutdown` completes.
pub async fn serve(config: QueryConfig, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
    let state = AppState::starting();
    state.set_backend(config.open_backend()?);
    let listener = TcpListener::bind(config.listen).await?;
    let pg_listener = crate::pgwire::bind(&config).await?;
    let (shutdown, pg_shutdown) = crate::pgwire::split_shutdown(shutdown);
    tokio::try_join!(serve_on(listener, state.clone(), shutdown), crate::pgwire::serve_pg(pg_listener, state, pg_shutdown))?;
    Ok(())
}

/// Serve on an already bound listener (tests and embedders bind `127.0.0.1:0` themselves).
pub async fn serve_on(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "query service listening");
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await?;
    Ok(())
}

impl IntoResponse for QueryError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(error = %self, retryable = self.is_retryable(), "request failed");
        }
        error_response(status, &self.to_string())
    }
}

fn error_response(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn body_response(content_type: &'static str, body: impl Into<axum::body::Body>) -> Response {
    let mut response = Response::new(body.into());
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn json_response<T: serde::Serialize>(value: &T) -> Result<Response> {
    let body = serde_json::to_vec(value).map_err(|e| QueryError::Io(std::io::Error::other(e)))?;
    Ok(body_response("application/json", body))
}

async fn dashboard() -> Html<&'static str> {
    Html(DASHBOARD_HTML)
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.backend() {
        Ok(_) => "ready".into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "starting").into_response(),
    }
}

/// Query parameters of the series endpoints, all as text so that every mistake gets our message.
#[derive(Debug, Default, Deserialize)]
struct SeriesParams {
    from: Option<String>,
    to: Option<String>,
    step: Option<String>,
    by: Option<String>,
    top: Option<String>,
    min_confidence: Option<String>,
    format: Option<String>,
}

fn params(query: Result<Query<SeriesParams>, QueryRejection>) -> Result<SeriesParams> {
    query.map(|Query(p)| p).map_err(|e| QueryError::InvalidParameter(e.body_text()))
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Without `from`, a series covers the hour before `to`.
const DEFAULT_SPAN: Step = Step::HOUR;

async fn traffic_share_handler(
    State(state): State<AppState>,
    query: Result<Query<SeriesParams>, QueryRejection>,
) -> Result<Response> {
    let p = params(query)?;
    let format = SeriesFormat::parse(p.format.as_deref())?;
    let req = TrafficShareRequest {
        range: TimeRange::parse(p.from.as_deref(), p.to.as_deref(), now_us(), DEFAULT_SPAN)?,
        step: p.step.as_deref().map(Step::parse).transpose()?.unwrap_or(traffic_share::GRANULARITY),
        by: p.by.as_deref().map(ShareBy::parse).transpose()?.unwrap_or(ShareBy::Site),
        top: parse_top(p.top.as_deref())?,
        min_confidence: parse_min_confidence(p.min_confidence.as_deref())?,
    };
    let share = traffic_share::traffic_share(state.backend()?, &req).await?;
    match format {
        SeriesFormat::Json => json_response(&share),
        SeriesFormat::Csv => Ok(body_response(OutputFormat::Csv.content_type(), share.to_csv())),
    }
}

async fn site_rates_handler(
    State(state): State<AppState>,
    Path(site): Path<String>,
    query: Result<Query<SeriesParams>, QueryRejection>,
) -> Result<Response> {
    let p = params(query)?;
    let format = SeriesFormat::parse(p.format.as_deref())?;
    if site.is_empty() {
        return Err(QueryError::InvalidParameter("site must not be empty".into()));
    }
    let req = SiteRatesRequest {
        site,
        range: TimeRange::parse(p.from.as_deref(), p.to.as_deref(), now_us(), DEFAULT_SPAN)?,
        step: p.step.as_deref().map(Step::parse).transpose()?.unwrap_or(site_rates::GRANULARITY),
    };
    let rates = site_rates::site_rates(state.backend()?, &req).await?;
    match format {
        SeriesFormat::Json => json_response(&rates),
        SeriesFormat::Csv => Ok(body_response(OutputFormat::Csv.content_type(), rates.to_csv())),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlBody {
    sql: String,
}

async fn sql_handler(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let format = match query.get("format") {
        Some(name) => OutputFormat::from_name(name).ok_or_else(|| {
            QueryError::InvalidParameter(format!(
                "invalid format {name:?}: expected json, csv, arrow, parquet or table"
            ))
        })?,
        None => OutputFormat::from_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok())),
    };
    let text =
        std::str::from_utf8(&body).map_err(|_| QueryError::InvalidParameter("the request body is not UTF-8".into()))?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("application/json"))
        || text.trim_start().starts_with('{');
    let sql = if is_json {
        serde_json::from_str::<SqlBody>(text)
            .map_err(|e| QueryError::InvalidParameter(format!("expected a JSON body {{\"sql\": \"...\"}}: {e}")))?
            .sql
    } else {
        text.to_owned()
    };
    if sql.trim().is_empty() {
        return Err(QueryError::InvalidParameter("no SQL given: send it as the body or as {\"sql\": \"...\"}".into()));
    }
    let result = state.backend()?.user_sql(&sql).await?;
    Ok(body_response(format.content_type(), render(&result, format)?))
}
