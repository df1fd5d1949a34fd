//! The HTTP service: REST API, read-only SQL and the dashboard, over one [`Backend`] (the lake or
//! ClickHouse).
//!
//! Routes:
//! - `GET /healthz` — 200 `ok` while the process serves;
//! - `GET /readyz` — 200 `ready` once the backend is open and while it answers (ClickHouse: within
//!   2 s, in UTC, with the edgelens tables in its database; the lake: its directory readable), 503
//!   with the reason otherwise;
//! - `GET /v1/traffic-share?from&to&step&by&top&min_confidence&format` — see [`traffic_share`];
//! - `GET /v1/sites/{site}/rates?from&to&step&format` — see [`site_rates`];
//! - `GET /v1/incidents?from&to&site&entity&min_confidence&status&vector&limit&format` — incidents
//!   overlapping the range (with `entity`: on its sites while attributed to it)
//!   (default: the 7 days before `to`), current state, newest first; JSON or CSV (see [`incidents`]);
//! - `GET /v1/incidents/{id}?format=json|csv|md|html` — one incident's report; 404 for an unknown id;
//! - `GET /v1/reports/entities/{entity}?from&to&step&min_confidence&format=json|csv|md|html&part` —
//!   the compliance report of an entity (see [`entity_report`]); default: 30 days per day; as CSV
//!   one of its tables, `part=sites` (default), `series` or `incidents`;
//! - `POST /v1/registry/import?format=csv|json&file&dry_run` — a registry file from an admin token,
//!   audited with the token's name (see [`registry_api`](crate::registry_api));
//! - `POST /v1/sql` — body: the SQL text, or JSON `{"sql": "..."}`; one read-only statement (see
//!   [`sql_guard`](crate::sql_guard)); the result in the format the `Accept` header asks for (JSON
//!   array of row objects by default, `text/csv`, `application/vnd.apache.arrow.stream`,
//!   `application/vnd.apache.parquet`, `text/plain` for a table) or `?format=json|csv|arrow|parquet|table`;
//! - `GET /v1/openapi.json` — the OpenAPI 3.0 document of all of these (`assets/openapi.json`);
//! - `GET /metrics` — Prometheus metrics (see [`metrics`](crate::metrics));
//! - `GET /` — the dashboard (one self-contained HTML page).
//!
//! Errors are JSON `{"error": "..."}`: 400 for the caller's mistakes, 503 while starting, 500 for
//! ours (details logged, the body says what failed).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Path, Query, Request, State};
use axum::middleware::{self, Next};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::QueryConfig;
use crate::error::{QueryError, Result};
use crate::format::{OutputFormat, render};
use crate::auth::{Auth, Principal};
use crate::backend::{Backend, View};
use crate::metrics::{MoreMetrics, QueryMetrics, endpoint_of};
use crate::registry_api::RegistryWriter;
use edgelens_schemas::net::{ConnectionLimits, LimitedListener};
use edgelens_schemas::registry::Format as RegistryFormat;
use crate::tenant_sql::TenantScope;
use crate::params::{SeriesFormat, ShareBy, Step, TimeRange, parse_min_confidence, parse_top};
use crate::entity_report::{self, EntityReport, EntityReportRequest};
use crate::incidents::{self, IncidentListRequest, IncidentReport};
use crate::site_rates::{self, SiteRatesRequest};
use crate::traffic_share::{self, TrafficShareRequest};

const DASHBOARD_HTML: &str = include_str!("../assets/index.html");

/// The API's OpenAPI 3.0 document, served at `/v1/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../assets/openapi.json");

/// Shared state of the handlers: the backend (lake or ClickHouse), once it is open, and who may
/// ask.
#[derive(Clone, Debug, Default)]
pub struct AppState {
    backend: Arc<OnceLock<Backend>>,
    auth: Arc<Auth>,
    metrics: Arc<QueryMetrics>,
    registry_writer: Option<Arc<dyn RegistryWriter>>,
    limits: Arc<HttpLimits>,
    /// Metrics of another part of the process, served after the service's own (the demo's pipeline).
    more_metrics: Option<Arc<dyn MoreMetrics>>,
}

/// Bounds on the HTTP listener (from [`QueryConfig`]).
#[derive(Debug)]
pub struct HttpLimits {
    pub max_body_bytes: usize,
    pub request_timeout: std::time::Duration,
    pub connections: ConnectionLimits,
    inflight: tokio::sync::Semaphore,
}

impl HttpLimits {
    /// Limits with the default number of connections, each closed once idle 5 s longer than
    /// `request_timeout`.
    pub fn new(max_body_bytes: usize, max_concurrent_requests: usize, request_timeout: std::time::Duration) -> Self {
        let defaults = QueryConfig::default();
        HttpLimits::with_connections(max_body_bytes, max_concurrent_requests, request_timeout, defaults.max_connections, 0, defaults.header_timeout_secs)
    }

    pub fn of(config: &QueryConfig) -> Self {
        let request_timeout = std::time::Duration::from_secs(config.request_timeout_secs.max(1));
        HttpLimits::with_connections(
            config.max_body_bytes,
            config.max_concurrent_requests,
            request_timeout,
            config.max_connections,
            config.idle_timeout_secs,
            config.header_timeout_secs,
        )
    }

    fn with_connections(
        max_body_bytes: usize,
        max_concurrent_requests: usize,
        request_timeout: std::time::Duration,
        max_connections: usize,
        idle_timeout_secs: u64,
        header_timeout_secs: u64,
    ) -> Self {
        let (idle, header) = (std::time::Duration::from_secs(idle_timeout_secs), std::time::Duration::from_secs(header_timeout_secs.max(1)));
        let connections = ConnectionLimits::outlasting(max_connections, idle, header, request_timeout);
        HttpLimits { max_body_bytes, request_timeout, connections, inflight: tokio::sync::Semaphore::new(max_concurrent_requests.max(1)) }
    }
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits::of(&QueryConfig::default())
    }
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

    /// The same state with `auth` deciding who may ask (default: auth off).
    pub fn with_auth(mut self, auth: Auth) -> Self {
        self.auth = Arc::new(auth);
        self
    }

    /// The same state with other HTTP limits.
    pub fn with_limits(mut self, limits: HttpLimits) -> Self {
        self.limits = Arc::new(limits);
        self
    }

    /// The same state with `writer` accepting registry imports (`POST /v1/registry/import`).
    pub fn with_registry_writer(mut self, writer: Arc<dyn RegistryWriter>) -> Self {
        self.registry_writer = Some(writer);
        self
    }

    /// Serve `more`'s metrics on `/metrics` too, after the service's own.
    pub fn with_more_metrics(mut self, more: Arc<dyn MoreMetrics>) -> Self {
        self.more_metrics = Some(more);
        self
    }

    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    pub fn metrics(&self) -> &QueryMetrics {
        &self.metrics
    }

    /// The service's counters, to keep beyond a borrow of the state.
    pub fn metrics_handle(&self) -> Arc<QueryMetrics> {
        Arc::clone(&self.metrics)
    }

    /// `principal` with what it may see, resolved against the registry.
    pub async fn caller(&self, principal: Principal) -> Result<Caller> {
        let scope = self.auth.scope(self.backend()?, &principal).await?;
        Ok(Caller { principal, scope })
    }
}

/// An authenticated caller and the rows it may see (an extractor: handlers taking a `Caller`
/// answer 401 without a valid token when auth is on).
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    scope: Option<Arc<TenantScope>>,
}

impl Caller {
    /// `backend` as this caller sees it.
    pub fn view<'a>(&'a self, backend: &'a Backend) -> View<'a> {
        match &self.scope {
            None => View::all(backend),
            Some(scope) => View::tenant(backend, scope),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = QueryError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let header = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let principal = state.auth.from_header(header)?;
        state.caller(principal).await
    }
}

/// The service's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_handler))
        .route("/v1/openapi.json", get(|| async { body_response("application/json", OPENAPI_JSON) }))
        .route("/v1/traffic-share", get(traffic_share_handler))
        .route("/v1/sites/{site}/rates", get(site_rates_handler))
        .route("/v1/incidents", get(incidents_handler))
        .route("/v1/incidents/{id}", get(incident_report_handler))
        .route("/v1/reports/entities/{entity}", get(entity_report_handler))
        .route("/v1/registry/import", post(registry_import_handler))
        .route("/v1/sql", post(sql_handler))
        .fallback(|| async { error_response(StatusCode::NOT_FOUND, "not found") })
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn_with_state(state.clone(), bounded))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes))
        .with_state(state)
}

/// Open the configured backend (the lake at `config.data_dir`, or ClickHouse), bind
/// `config.listen` and `config.pg_listen` (the Postgres wire protocol, unless disabled) and serve
/// both until `shutdown` completes.
pub async fn serve(config: QueryConfig, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
    serve_with(config, None, None, shutdown).await
}

/// [`serve`], with registry imports over HTTP written by `registry_writer` and `more_metrics`
/// on `/metrics`, when given.
pub async fn serve_with(
    config: QueryConfig,
    registry_writer: Option<Arc<dyn RegistryWriter>>,
    more_metrics: Option<Arc<dyn MoreMetrics>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let mut state = AppState::starting().with_auth(Auth::new(config.tokens.clone())?).with_limits(HttpLimits::of(&config));
    if let Some(w) = registry_writer {
        state = state.with_registry_writer(w);
    }
    if let Some(m) = more_metrics {
        state = state.with_more_metrics(m);
    }
    state.set_backend(config.open_backend()?);
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| QueryError::Io(std::io::Error::new(e.kind(), format!("HTTP listener on {}: {e}", config.listen))))?;
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
    let listener = LimitedListener::new(listener, state.limits.connections);
    edgelens_schemas::net::serve(listener, router(state), shutdown).await?;
    Ok(())
}

impl IntoResponse for QueryError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(error = %self, retryable = self.is_retryable(), "request failed");
        }
        let mut response = error_response(status, &self.to_string());
        response.extensions_mut().insert(ErrorKind::of(&self));
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"edgelens\""));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE && self.is_retryable() {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

/// The errors the framework answers itself on `/v1` (a body over the limit, a method the path
/// does not take, a query string that does not parse) as `{"error": ...}`, as every other error
/// there, keeping their status and headers (`Allow`). The probes keep their plain text.
async fn json_errors(request: Request, next: Next) -> Response {
    let v1 = request.uri().path().starts_with("/v1/");
    let response = next.run(request).await;
    let status = response.status();
    let json = response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !v1 || json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024).await.map(|b| String::from_utf8_lossy(&b).trim().to_owned()).unwrap_or_default();
    let message = if text.is_empty() { status.canonical_reason().unwrap_or("error").to_ascii_lowercase() } else { text };
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(serde_json::json!({ "error": message }).to_string()))
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

/// What went wrong, attached to error responses for the metrics middleware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorKind {
    Refused,
    Limit,
    Unauthorized,
    Other,
}

impl ErrorKind {
    fn of(e: &QueryError) -> Self {
        match e {
            QueryError::SqlRefused(_) => ErrorKind::Refused,
            QueryError::LimitExceeded(_) => ErrorKind::Limit,
            QueryError::Unauthorized(_) => ErrorKind::Unauthorized,
            _ => ErrorKind::Other,
        }
    }
}

/// Count every request by endpoint, status class and latency, and errors by kind.
async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let endpoint = endpoint_of(request.extensions().get::<MatchedPath>().map(MatchedPath::as_str));
    let response = next.run(request).await;
    let m = &state.metrics;
    m.observe(endpoint, response.status().as_u16(), start.elapsed());
    match response.extensions().get::<ErrorKind>() {
        Some(ErrorKind::Refused) => m.sql_refused.fetch_add(1, Ordering::Relaxed),
        Some(ErrorKind::Limit) => m.limit_exceeded.fetch_add(1, Ordering::Relaxed),
        Some(ErrorKind::Unauthorized) => m.unauthorized.fetch_add(1, Ordering::Relaxed),
        _ => 0,
    };
    response
}

/// At most `max_concurrent_requests` requests at once (503 with `Retry-After` beyond, never a
/// queue), each answered within `request_timeout` (503 otherwise; its work is dropped). Probes
/// and metrics are exempt, so an overloaded service still says so.
async fn bounded(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if matches!(path, "/healthz" | "/readyz" | "/metrics") {
        return next.run(request).await;
    }
    let Ok(_permit) = state.limits.inflight.try_acquire() else {
        let mut r = error_response(StatusCode::SERVICE_UNAVAILABLE, "too many requests in flight; retry shortly");
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    };
    match tokio::time::timeout(state.limits.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let secs = state.limits.request_timeout.as_secs();
            // A ClickHouse server that does not answer at all is the reason, not the request's size.
            let silent = match state.backend() {
                Ok(Backend::ClickHouse(c)) => c.probe_within(READY_PROBE_TIMEOUT).await.err(),
                _ => None,
            };
            match silent {
                Some(e) => {
                    let mut r = error_response(StatusCode::SERVICE_UNAVAILABLE, &format!("no answer within {secs} s: {e}"));
                    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                    r
                }
                None => error_response(StatusCode::SERVICE_UNAVAILABLE, &format!("no answer within {secs} s; narrow the request")),
            }
        }
    }
}

async fn metrics_handler(State(state): State<AppState>) -> Response {
    let mut body = state.metrics.render();
    if let Some(more) = &state.more_metrics {
        body.push_str(&more.render());
    }
    body_response("text/plain; version=0.0.4", body)
}

/// How long `/readyz` waits for the backend's answer.
const READY_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

async fn readyz(State(state): State<AppState>) -> Response {
    let Ok(backend) = state.backend() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting").into_response();
    };
    let not_ready = |why: String| (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}")).into_response();
    match tokio::time::timeout(READY_PROBE_TIMEOUT, backend.probe()).await {
        Ok(Ok(())) => "ready".into_response(),
        Ok(Err(e)) => not_ready(format!("the {} backend does not answer: {e}", backend.name())),
        Err(_) => not_ready(format!("the {} backend did not answer within {READY_PROBE_TIMEOUT:?}", backend.name())),
    }
}

/// Query parameters of the series endpoints, all as text so that every mistake gets our message;
/// an unknown (misspelled) one is an error, not a default silently applied.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeriesParams {
    from: Option<String>,
    to: Option<String>,
    step: Option<String>,
    by: Option<String>,
    top: Option<String>,
    min_confidence: Option<String>,
    format: Option<String>,
}

/// Query parameters of a site's rates; an unknown one is an error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RatesParams {
    from: Option<String>,
    to: Option<String>,
    step: Option<String>,
    format: Option<String>,
}

/// Query parameters of an entity report; an unknown one is an error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntityReportParams {
    from: Option<String>,
    to: Option<String>,
    step: Option<String>,
    min_confidence: Option<String>,
    format: Option<String>,
    part: Option<String>,
}

/// An endpoint's query parameters, or the 400 saying what is wrong with them.
fn params<T>(query: Result<Query<T>, QueryRejection>) -> Result<T> {
    query.map(|Query(p)| p).map_err(|e| QueryError::InvalidParameter(e.body_text()))
}

/// The wall clock, unix microseconds.
pub(crate) fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// A site named in a request, as sites are stored: lower case, no trailing dot. Any name an event
/// can be counted under is taken (the registry's rule for the sites it registers is stricter).
fn site_param(site: &str) -> Result<String> {
    edgelens_schemas::event::stored_site_name(site).map_err(|e| QueryError::InvalidParameter(format!("{e}: a site is a DNS name of letters, digits and . - _ *")))
}

/// `value` of parameter `name`, which names something: empty, it is a 400 (as every other
/// parameter's empty value), not the parameter left out.
fn non_empty<'a>(name: &str, value: &'a str) -> Result<&'a str> {
    if value.is_empty() {
        return Err(QueryError::InvalidParameter(format!("{name}= is empty: name one, or leave the parameter out")));
    }
    Ok(value)
}

/// An entity named in a request, without the spaces around it, as registry imports store names.
fn entity_param(entity: &str) -> Result<String> {
    match entity.trim() {
        "" => Err(QueryError::InvalidParameter("entity must not be empty".into())),
        name => Ok(name.to_owned()),
    }
}

/// Without `from`, a series covers the hour before `to`.
const DEFAULT_SPAN: Step = Step::HOUR;

async fn traffic_share_handler(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<SeriesParams>, QueryRejection>,
) -> Result<Response> {
    let p = params(query)?;
    let format = SeriesFormat::parse(p.format.as_deref())?;
    let by = p.by.as_deref().map(ShareBy::parse).transpose()?.unwrap_or(ShareBy::Site);
    // Only attributions to entities have a confidence: elsewhere it would be ignored unseen.
    if p.min_confidence.is_some() && by != ShareBy::Entity {
        return Err(QueryError::InvalidParameter(format!(
            "min_confidence applies to by=entity only (attributions to entities have a confidence; by={} has none)",
            by.as_str()
        )));
    }
    let req = TrafficShareRequest {
        range: TimeRange::parse(p.from.as_deref(), p.to.as_deref(), now_us(), DEFAULT_SPAN)?,
        step: p.step.as_deref().map(Step::parse).transpose()?.unwrap_or(traffic_share::GRANULARITY),
        by,
        top: parse_top(p.top.as_deref())?,
        min_confidence: parse_min_confidence(p.min_confidence.as_deref())?,
    };
    let share = traffic_share::traffic_share(caller.view(state.backend()?), &req).await?;
    match format {
        SeriesFormat::Json => json_response(&share),
        SeriesFormat::Csv => Ok(body_response(OutputFormat::Csv.content_type(), share.to_csv())),
    }
}

async fn site_rates_handler(
    State(state): State<AppState>,
    caller: Caller,
    Path(site): Path<String>,
    query: Result<Query<RatesParams>, QueryRejection>,
) -> Result<Response> {
    let p = params(query)?;
    let format = SeriesFormat::parse(p.format.as_deref())?;
    let site = site_param(&site)?;
    let view = caller.view(state.backend()?);
    let req = SiteRatesRequest {
        registered_site: registered_site_of(view, &site).await?,
        site,
        range: TimeRange::parse(p.from.as_deref(), p.to.as_deref(), now_us(), DEFAULT_SPAN)?,
        step: p.step.as_deref().map(Step::parse).transpose()?.unwrap_or(site_rates::GRANULARITY),
    };
    let rates = site_rates::site_rates(view, &req).await?;
    match format {
        SeriesFormat::Json => json_response(&rates),
        SeriesFormat::Csv => Ok(body_response(OutputFormat::Csv.content_type(), rates.to_csv())),
    }
}

/// Query parameters of the incidents endpoints; an unknown one is an error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IncidentParams {
    from: Option<String>,
    to: Option<String>,
    site: Option<String>,
    entity: Option<String>,
    min_confidence: Option<String>,
    status: Option<String>,
    vector: Option<String>,
    limit: Option<String>,
    format: Option<String>,
}

/// Query parameters of an incident's report: its format only.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportParams {
    format: Option<String>,
}

/// `site`, and the registered site it is a host of when it is one (`www.shop.example` →
/// `shop.example`): its traffic is counted, and its attacks judged, under that site (and under
/// the host name only before the site was registered).
async fn with_registered_site(view: View<'_>, site: String) -> Result<Vec<String>> {
    let parent = registered_site_of(view, &site).await?;
    Ok(std::iter::once(site).chain(parent).collect())
}

/// The registered site `site` is a host of, if it is one (in the caller's view).
async fn registered_site_of(view: View<'_>, site: &str) -> Result<Option<String>> {
    let known = crate::registry_api::known_sites(view).await?;
    Ok(crate::registry_api::site_of_host(site, &known).map(str::to_owned))
}

/// Without `from`, the incidents list covers the week before `to`.
const DEFAULT_INCIDENT_SPAN: Step = Step::WEEK;

async fn incidents_handler(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<IncidentParams>, QueryRejection>,
) -> Result<Response> {
    let p = params(query)?;
    let format = SeriesFormat::parse(p.format.as_deref())?;
    let site = p.site.as_deref().map(|s| non_empty("site", s).and_then(site_param)).transpose()?;
    let view = caller.view(state.backend()?);
    let sites = match site {
        Some(site) => Some(with_registered_site(view, site).await?),
        None => None,
    };
    let req = IncidentListRequest {
        range: TimeRange::parse(p.from.as_deref(), p.to.as_deref(), now_us(), DEFAULT_INCIDENT_SPAN)?,
        sites,
        status: incidents::parse_status(p.status.as_deref())?,
        vector: incidents::parse_vector(p.vector.as_deref())?,
        limit: incidents::parse_limit(p.limit.as_deref())?,
    };
    let list = match p.entity.as_deref().map(entity_param).transpose()? {
        None if p.min_confidence.is_some() => return Err(QueryError::InvalidParameter("min_confidence applies to entity=".into())),
        None => incidents::list(view, &req).await?,
        Some(entity) => {
            let min_confidence = parse_min_confidence(p.min_confidence.as_deref())?;
            entity_report::entity_incidents(view, &entity, min_confidence, &req).await?
        }
    };
    match format {
        SeriesFormat::Json => json_response(&list),
        SeriesFormat::Csv => Ok(body_response(OutputFormat::Csv.content_type(), list.to_csv())),
    }
}

async fn incident_report_handler(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<ReportParams>, QueryRejection>,
) -> Result<Response> {
    let p = params(query)?;
    let format = ReportFormat::parse(p.format.as_deref())?;
    let report = incidents::report(caller.view(state.backend()?), &id)
        .await?
        .ok_or_else(|| QueryError::NotFound(format!("no incident {id:?}")))?;
    format.respond(&report, &id, IncidentReport::to_csv, crate::report::markdown, crate::report::html)
}

/// `format=` of the report endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReportFormat {
    Json,
    Csv,
    Markdown,
    Html,
}

/// `Content-Disposition` of a saved report `<name>.<ext>`: `filename` made safe (ASCII), and the
/// name as it is in RFC 6266's `filename*` (UTF-8, RFC 5987) for clients that read it.
fn attachment(name: &str, ext: &str) -> String {
    let safe: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    let exact: String = format!("{name}.{ext}")
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) { char::from(b).to_string() } else { format!("%{b:02X}") })
        .collect();
    format!("attachment; filename=\"{safe}.{ext}\"; filename*=UTF-8''{exact}")
}

impl ReportFormat {
    fn parse(s: Option<&str>) -> Result<ReportFormat> {
        match s.unwrap_or("json") {
            "json" => Ok(ReportFormat::Json),
            "csv" => Ok(ReportFormat::Csv),
            "md" => Ok(ReportFormat::Markdown),
            "html" => Ok(ReportFormat::Html),
            other => Err(QueryError::InvalidParameter(format!("invalid format {other:?}: expected json, csv, md or html"))),
        }
    }

    /// `report` in this format: JSON, or rendered by `csv`, `md` or `html`. CSV and Markdown are
    /// files to save, named `<name>.csv` / `<name>.md` (`name` made safe for a file name).
    fn respond<T: serde::Serialize>(self, report: &T, name: &str, csv: impl Fn(&T) -> String, md: fn(&T) -> String, html: fn(&T) -> String) -> Result<Response> {
        let saved = |mut response: Response, ext: &str| {
            if let Ok(v) = HeaderValue::from_str(&attachment(name, ext)) {
                response.headers_mut().insert(header::CONTENT_DISPOSITION, v);
            }
            response
        };
        Ok(match self {
            ReportFormat::Json => json_response(report)?,
            ReportFormat::Csv => saved(body_response(OutputFormat::Csv.content_type(), csv(report)), "csv"),
            ReportFormat::Markdown => saved(body_response("text/markdown; charset=utf-8", md(report)), "md"),
            ReportFormat::Html => body_response("text/html; charset=utf-8", html(report)),
        })
    }
}

/// `part=` of the entity report's CSV, which holds one of the report's tables: the attributions
/// (the default), the entity's traffic per step, or the incidents on its sites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReportPart {
    Sites,
    Series,
    Incidents,
}

impl ReportPart {
    fn parse(s: Option<&str>, format: ReportFormat) -> Result<ReportPart> {
        let part = match s.unwrap_or("sites") {
            "sites" => ReportPart::Sites,
            "series" => ReportPart::Series,
            "incidents" => ReportPart::Incidents,
            other => return Err(QueryError::InvalidParameter(format!("invalid part {other:?}: expected sites, series or incidents"))),
        };
        if s.is_some() && format != ReportFormat::Csv {
            return Err(QueryError::InvalidParameter("part applies to format=csv (the other formats hold every part)".into()));
        }
        Ok(part)
    }
}

/// Without `from`, an entity report covers the 30 days before `to`, per day.
const DEFAULT_REPORT_SPAN: Step = Step::MONTH;

async fn entity_report_handler(
    State(state): State<AppState>,
    caller: Caller,
    Path(entity): Path<String>,
    query: Result<Query<EntityReportParams>, QueryRejection>,
) -> Result<Response> {
    let p = params(query)?;
    let format = ReportFormat::parse(p.format.as_deref())?;
    let req = EntityReportRequest {
        entity: entity_param(&entity)?,
        range: TimeRange::parse(p.from.as_deref(), p.to.as_deref(), now_us(), DEFAULT_REPORT_SPAN)?,
        step: p.step.as_deref().map(Step::parse).transpose()?.unwrap_or(Step::DAY),
        min_confidence: parse_min_confidence(p.min_confidence.as_deref())?,
    };
    let part = ReportPart::parse(p.part.as_deref(), format)?;
    let name = match part {
        ReportPart::Sites => format!("entity-{}", req.entity),
        ReportPart::Series => format!("entity-{}-series", req.entity),
        ReportPart::Incidents => format!("entity-{}-incidents", req.entity),
    };
    let report = entity_report::entity_report(caller.view(state.backend()?), &req).await?;
    let csv = |r: &EntityReport| match part {
        ReportPart::Sites => r.to_csv(),
        ReportPart::Series => r.series_csv(),
        ReportPart::Incidents => incidents::incidents_csv(&r.incidents),
    };
    format.respond(&report, &name, csv, crate::report::entity_markdown, crate::report::entity_html)
}

/// Query parameters of `POST /v1/registry/import`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportParams {
    format: Option<String>,
    file: Option<String>,
    dry_run: Option<bool>,
}

async fn registry_import_handler(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ImportParams>, QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let p = params(query)?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let format = match (p.format.as_deref(), content_type) {
        (Some("csv"), _) => RegistryFormat::Csv,
        (Some("json"), _) => RegistryFormat::Json,
        (Some(other), _) => return Err(QueryError::InvalidParameter(format!("invalid format {other:?}: expected csv or json"))),
        (None, ct) if ct.starts_with("application/json") => RegistryFormat::Json,
        (None, ct) if ct.starts_with("text/csv") => RegistryFormat::Csv,
        (None, _) => {
            return Err(QueryError::InvalidParameter("say format=csv|json or send Content-Type text/csv or application/json".into()));
        }
    };
    let outcome = crate::registry_api::import(
        caller.view(state.backend()?),
        state.registry_writer.clone(),
        &caller.principal,
        &body,
        format,
        p.file.as_deref().unwrap_or("-"),
        p.dry_run.unwrap_or(false),
    )
    .await?;
    json_response(&outcome)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlBody {
    sql: String,
}

async fn sql_handler(
    State(state): State<AppState>,
    caller: Caller,
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
        None => {
            let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
            OutputFormat::from_accept(accept).ok_or_else(|| {
                QueryError::NotAcceptable(format!(
                    "Accept {:?} names no format of the answer: application/json, text/csv, application/vnd.apache.arrow.stream, application/vnd.apache.parquet or text/plain (or ?format=)",
                    accept.unwrap_or_default()
                ))
            })?
        }
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
    let result = caller.view(state.backend()?).user_sql(&sql).await?;
    Ok(body_response(format.content_type(), render(&result, format)?))
}

#[cfg(test)]
mod tests {
    /// Regression: a report of an entity named otherwise than in ASCII was saved under a name of
    /// underscores (`entity-B_cher.md` for `Bücher`): the name as it is goes in `filename*`.
    #[test]
    fn a_report_file_keeps_its_name_in_utf8() {
        assert_eq!(super::attachment("entity-Bücher \"x\"", "md"), "attachment; filename=\"entity-B_cher__x_.md\"; filename*=UTF-8''entity-B%C3%BCcher%20%22x%22.md");
        assert!(axum::http::HeaderValue::from_str(&super::attachment("entity-é\r\n", "csv")).is_ok());
    }
}
