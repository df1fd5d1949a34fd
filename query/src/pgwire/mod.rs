//! The Postgres wire protocol listener of the query service (default `127.0.0.1:5433`), so that
//! `psql`, Grafana's PostgreSQL data source and Postgres drivers read edgelens tables.
//!
//! - [`session`]: [`authenticate`](session::authenticate) and [`run_sql`](session::run_sql), the one
//!   path of every statement (the read-only path of `POST /v1/sql`, or the catalog);
//! - [`handler`]: startup, password authentication, simple and extended query protocol;
//! - [`catalog`]: settings, `information_schema` / `pg_catalog` and the statements psql and
//!   Grafana send, answered from the schema registry;
//! - [`types`]: Arrow ↔ PostgreSQL types, text and binary cells, parameters as literals;
//! - [`sql_text`]: statement splitting, classification and `$n` substitution;
//! - [`frames`]: the client's stream cut into whole, well-formed messages before they are decoded.
//!
//! This module owns the listener: it shares the HTTP service's [`AppState`] (same backend) and
//! shutdown, and keeps the listener from being exhausted — at most [`PgLimits::max_connections`]
//! sessions (one more is answered `53300 too many connections` and closed), a deadline for startup
//! and authentication, an idle timeout between messages, a maximum size of any client message
//! (checked on the length prefix, before the message is buffered), and no message reaches the
//! decoder unless its body holds exactly the fields of its type (`08P01` otherwise). Errors of statements never end a
//! connection; protocol errors, timeouts and shutdown end it with a `FATAL` error response.
//! Not supported: TLS (`SSLRequest` is refused, clients fall back to plain TCP), `COPY`, query
//! cancellation, `LISTEN`/`NOTIFY`.

pub mod catalog;
pub mod frames;
pub mod handler;
pub mod session;
pub mod sql_text;
pub mod types;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use pgwire::api::{ClientInfo, DefaultClient, NoopHandler, PgWireConnectionState};
use pgwire::error::{ErrorInfo, PgWireError};
use pgwire::messages::response::{GssEncResponse, SslResponse};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage, SslNegotiationMetaMessage};
use pgwire::tokio::server::{PgWireMessageServerCodec, process_error, process_message};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_util::codec::Framed;

use crate::QueryConfig;
use crate::api::AppState;
use crate::error::Result;

pub use frames::{FrameError, MessageFrames};

use handler::{PgConnection, PgStatement};

/// Limits that keep the listener from being exhausted.
#[derive(Debug, Clone, Copy)]
pub struct PgLimits {
    /// Sessions served at once; one more is refused with `53300`.
    pub max_connections: usize,
    /// Time from connect to the end of authentication.
    pub startup_timeout: Duration,
    /// Longest wait for the next message of an authenticated client.
    pub idle_timeout: Duration,
    /// Largest client message (a query, a `Bind` with its parameters), in bytes.
    pub max_message_bytes: usize,
}

impl Default for PgLimits {
    fn default() -> Self {
        PgLimits {
            max_connections: 64,
            startup_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(3600),
            max_message_bytes: 1 << 20,
        }
    }
}

/// Bind the configured Postgres address, `None` when `pg_listen` is disabled. The default address
/// is optional: when it is taken (another edgelens, or a second local PostgreSQL cluster, which
/// Debian puts on 5433) the service runs without the Postgres listener and says so; an address
/// configured explicitly must be free.
pub async fn bind(config: &QueryConfig) -> Result<Option<TcpListener>> {
    let Some(addr) = config.pg_listen else { return Ok(None) };
    match TcpListener::bind(addr).await {
        Ok(listener) => Ok(Some(listener)),
        Err(e) if default_address_taken(addr, &e) => {
            tracing::warn!(%addr, "postgres wire protocol disabled: the default address is in use (set [query] pg_listen or --pg-listen)");
            Ok(None)
        }
        Err(e) => Err(crate::QueryError::Io(io::Error::new(e.kind(), format!("postgres listener on {addr}: {e}")))),
    }
}

/// Whether `error`, binding `addr`, is the default address being in use: then the service runs
/// without the Postgres listener and warns, as documented, rather than failing (a second local
/// PostgreSQL cluster takes 5433 on Debian). Any other address, or error, fails.
pub fn default_address_taken(addr: std::net::SocketAddr, error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::AddrInUse && addr.to_string() == QueryConfig::DEFAULT_PG_LISTEN
}

/// `pg_listen` as text: an address, or `""` (also JSON `null`) for no Postgres listener; written
/// back the same way, so the setting round-trips through TOML.
pub mod listen_address {
    use std::net::SocketAddr;

    use serde::{Deserialize, Deserializer, Serializer};

    /// `pg_listen` as written in a config file or on the command line: an address, or `off` (or
    /// an empty value) for no Postgres listener.
    pub fn parse(text: &str) -> Result<Option<SocketAddr>, String> {
        match text.trim() {
            "" | "off" => Ok(None),
            addr => edgelens_schemas::net::listen_addr::parse(addr).map(Some).map_err(|e| format!("pg_listen: {e}, or off")),
        }
    }

    pub fn serialize<S: Serializer>(addr: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&addr.map(|a| a.to_string()).unwrap_or_default())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

/// One shutdown future as two: both resolve when `shutdown` does (for the HTTP and the Postgres
/// listener of one service).
pub fn split_shutdown(
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> (impl Future<Output = ()> + Send + 'static, impl Future<Output = ()> + Send + 'static) {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    let wait = |mut rx: watch::Receiver<bool>| async move { stopped(&mut rx).await };
    (wait(rx.clone()), wait(rx))
}

/// Serve the Postgres protocol on `listener` (if any) until `shutdown` completes.
pub async fn serve_pg(
    listener: Option<TcpListener>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    match listener {
        Some(l) => serve_pg_on(l, state, PgLimits::default(), shutdown).await,
        None => Ok(()),
    }
}

/// Serve the Postgres protocol on an already bound listener until `shutdown` completes; then close
/// every connection at its next message boundary and wait for them.
pub async fn serve_pg_on(
    listener: TcpListener,
    state: AppState,
    limits: PgLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "postgres wire protocol listening");
    let sessions = Arc::new(Semaphore::new(limits.max_connections));
    // Connections over the limit are told so, but only this many at a time; more are just closed.
    let refusals = Arc::new(Semaphore::new(limits.max_connections.max(8)));
    let next_pid = AtomicI32::new(1);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let session_permit = Arc::clone(&sessions).try_acquire_owned().ok();
                    let refusal_permit = match session_permit {
                        Some(_) => None,
                        None => match Arc::clone(&refusals).try_acquire_owned() {
                            Ok(p) => Some(p),
                            Err(_) => {
                                state.metrics().pg_connections_refused.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(%peer, "postgres connection dropped: too many connections");
                                continue;
                            }
                        },
                    };
                    let admitted = session_permit.is_some();
                    let metrics = state.metrics_handle();
                    if admitted {
                        metrics.pg_connections_total.fetch_add(1, Ordering::Relaxed);
                        metrics.pg_connections_open.fetch_add(1, Ordering::Relaxed);
                    } else {
                        metrics.pg_connections_refused.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%peer, max = limits.max_connections, "postgres connection refused: too many connections");
                    }
                    let pid = next_pid.fetch_add(1, Ordering::Relaxed);
                    let conn = Arc::new(PgConnection::new(state.clone(), admitted, limits.max_connections, pid));
                    let stop = stop_rx.clone();
                    connections.spawn(async move {
                        let _permits = (session_permit, refusal_permit);
                        if let Err(e) = serve_connection(stream, peer, conn, limits, stop).await {
                            tracing::debug!(%peer, error = %e, "postgres connection ended with an error");
                        }
                        if admitted {
                            metrics.pg_connections_open.fetch_sub(1, Ordering::Relaxed);
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "postgres accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = done {
                    tracing::error!(error = %e, "postgres connection task failed");
                }
            }
        }
    }
    let _ = stop_tx.send(true);
    drop(listener);
    while connections.join_next().await.is_some() {}
    tracing::info!("postgres wire protocol stopped");
    Ok(())
}

/// Resolves once the value is `true` (or the sender is gone).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

type PgSocket = Framed<MessageGuard<TcpStream>, PgWireMessageServerCodec<PgStatement>>;

fn fatal(code: &str, message: impl Into<String>) -> PgWireBackendMessage {
    PgWireBackendMessage::ErrorResponse(ErrorInfo::new("FATAL".to_owned(), code.to_owned(), message.into()).into())
}

/// The message loop of one connection.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    conn: Arc<PgConnection>,
    limits: PgLimits,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let io = MessageGuard::new(stream, limits.max_message_bytes);
    let mut socket: PgSocket = Framed::new(io, PgWireMessageServerCodec::new(DefaultClient::new(peer, false)));
    let startup_deadline = tokio::time::Instant::now() + limits.startup_timeout;
    let copy = Arc::new(NoopHandler);
    let cancel = Arc::new(NoopHandler);
    loop {
        let starting = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingSslRequest
                | PgWireConnectionState::AwaitingStartup
                | PgWireConnectionState::AuthenticationInProgress
        );
        let deadline = if starting { startup_deadline } else { tokio::time::Instant::now() + limits.idle_timeout };
        let next = tokio::select! {
            next = tokio::time::timeout_at(deadline, socket.next()) => next,
            () = stopped(&mut stop) => {
                let _ = socket.send(fatal("57P01", "terminating connection: the edgelens query service is shutting down")).await;
                return Ok(());
            }
        };
        let message = match next {
            Err(_) => {
                let what = if starting { "startup and authentication took too long" } else { "idle-session timeout" };
                tracing::debug!(%peer, what, "postgres connection timed out");
                let _ = socket.send(fatal(if starting { "08006" } else { "57P05" }, format!("terminating connection: {what}"))).await;
                return Ok(());
            }
            Ok(None) => return Ok(()),
            Ok(Some(Err(e))) => {
                let (code, message) = match &e {
                    PgWireError::IoError(io) if io.get_ref().is_some_and(|inner| inner.is::<FrameError>()) => {
                        let too_large = matches!(io.get_ref().and_then(|e| e.downcast_ref()), Some(FrameError::TooLarge { .. }));
                        (if too_large { "54000" } else { "08P01" }, io.to_string())
                    }
                    PgWireError::IoError(_) => return Ok(()),
                    other => ("08P01", format!("invalid message: {other}")),
                };
                tracing::debug!(%peer, code, message, "postgres protocol error");
                let _ = socket.send(fatal(code, message)).await;
                return Ok(());
            }
            Ok(Some(Ok(m))) => m,
        };
        match message {
            PgWireFrontendMessage::Terminate(_) => return Ok(()),
            // No TLS: refuse SSL and GSS encryption requests; the client goes on in plain text.
            PgWireFrontendMessage::SslNegotiation(SslNegotiationMetaMessage::PostgresSsl(_)) => {
                socket.send(PgWireBackendMessage::SslResponse(SslResponse::Refuse)).await?;
                continue;
            }
            PgWireFrontendMessage::SslNegotiation(SslNegotiationMetaMessage::PostgresGss(_)) => {
                socket.send(PgWireBackendMessage::GssEncResponse(GssEncResponse::Refuse)).await?;
                continue;
            }
            PgWireFrontendMessage::SslNegotiation(SslNegotiationMetaMessage::None) => {
                socket.set_state(PgWireConnectionState::AwaitingStartup);
                continue;
            }
            message => {
                let extended = match socket.state() {
                    PgWireConnectionState::CopyInProgress(extended) => extended,
                    _ => message.is_extended_query(),
                };
                let cancel_request = matches!(message, PgWireFrontendMessage::CancelRequest(_));
                let result = process_message(
                    message,
                    &mut socket,
                    Arc::clone(&conn),
                    Arc::clone(&conn),
                    Arc::clone(&conn),
                    Arc::clone(&copy),
                    Arc::clone(&cancel),
                )
                .await;
                if let Err(e) = result {
                    let fatal = e.is_fatal();
                    process_error(&mut socket, e, extended).await?;
                    if fatal {
                        return Ok(());
                    }
                }
                if cancel_request {
                    return Ok(());
                }
            }
        }
    }
}

/// A client stream that passes on only whole, well-formed messages ([`MessageFrames`]) and fails
/// as soon as a message header announces more than the limit, so that no oversized message is ever
/// buffered and the `pgwire` decoder never reads past a message's own bytes.
pub struct MessageGuard<S> {
    inner: S,
    limit: usize,
    frames: MessageFrames,
    /// Checked bytes not yet read, from `ready_at`.
    ready: Vec<u8>,
    ready_at: usize,
}

impl<S> MessageGuard<S> {
    pub fn new(inner: S, limit: usize) -> Self {
        MessageGuard { inner, limit, frames: MessageFrames::default(), ready: Vec::new(), ready_at: 0 }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for MessageGuard<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.ready_at < this.ready.len() {
                let n = buf.remaining().min(this.ready.len() - this.ready_at);
                buf.put_slice(&this.ready[this.ready_at..this.ready_at + n]);
                this.ready_at += n;
                if this.ready_at == this.ready.len() {
                    this.ready.clear();
                    this.ready_at = 0;
                }
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 8192];
            let mut read = ReadBuf::new(&mut chunk);
            std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                return Poll::Ready(Ok(())); // end of stream
            }
            let limit = this.limit;
            if let Err(e) = this.frames.push(read.filled(), limit, &mut this.ready) {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for MessageGuard<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pg_listen_defaults_disables_and_round_trips() {
        assert_eq!(crate::QueryConfig::default().pg_listen, Some("127.0.0.1:5433".parse().unwrap()));
        let off: crate::QueryConfig = serde_json::from_str(r#"{"pg_listen": ""}"#).unwrap();
        assert_eq!(off.pg_listen, None);
        let off: crate::QueryConfig = serde_json::from_str(r#"{"pg_listen": null}"#).unwrap();
        assert_eq!(off.pg_listen, None);
        let on: crate::QueryConfig = serde_json::from_str(r#"{"pg_listen": "0.0.0.0:6543"}"#).unwrap();
        assert_eq!(on.pg_listen.unwrap().port(), 6543);
        assert!(serde_json::from_str::<crate::QueryConfig>(r#"{"pg_listen": "nowhere"}"#).is_err());
        for config in [off, on, crate::QueryConfig::default()] {
            let json = serde_json::to_string(&config).unwrap();
            assert_eq!(serde_json::from_str::<crate::QueryConfig>(&json).unwrap(), config);
            let value = toml::Value::try_from(&config).unwrap();
            assert_eq!(value.clone().try_into::<crate::QueryConfig>().unwrap(), config, "{value:?}");
        }
        let off: crate::QueryConfig = toml::from_str("pg_listen = \"\"").unwrap();
        assert_eq!(off.pg_listen, None);
    }
}
