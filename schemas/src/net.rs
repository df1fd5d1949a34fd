//! The connection limits every edgelens HTTP listener shares (the Logpush receiver, the query
//! service, the aggregator's metrics endpoint), and the HTTP/1 server loop that applies them
//! ([`serve`]):
//! - at most `max_connections` open at once — beyond that, new connections wait in the kernel's
//!   accept queue until one closes;
//! - a connection on which nothing was read or written for `idle_timeout` is closed (a client that
//!   stopped half-way through its body);
//! - a request's head (request line and headers) must arrive whole within `header_timeout`, however
//!   slowly its bytes trickle in; a keep-alive connection waiting for its next request is closed
//!   after that time too.
//!
//! Also how a listen address is written ([`listen_addr`]): `IP:PORT` or `HOST:PORT`.
//!
//! Behind the `net` feature.
//!
//! The idle timeout must be longer than the longest a request may take to answer (the query
//! service's `request_timeout_secs`, the receiver's `ack_timeout_ms`): while a request is being
//! answered nothing moves on its connection.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Limits of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub header_timeout: Duration,
}

impl ConnectionLimits {
    /// Limits whose idle timeout is `idle_timeout`, but at least 5 s longer than `longest_request`
    /// (the longest a request may take to be received and answered), so that a request in progress
    /// is never cut.
    pub fn outlasting(max_connections: usize, idle_timeout: Duration, header_timeout: Duration, longest_request: Duration) -> Self {
        ConnectionLimits { max_connections, idle_timeout: idle_timeout.max(longest_request + Duration::from_secs(5)), header_timeout }
    }
}

/// A TCP listener that hands out at most `max_connections` connections at once, each closed after
/// `idle_timeout` without traffic. Serve it with [`serve`].
pub struct LimitedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    idle_timeout: Duration,
    header_timeout: Duration,
}

impl LimitedListener {
    pub fn new(inner: TcpListener, limits: ConnectionLimits) -> Self {
        LimitedListener {
            inner,
            permits: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            idle_timeout: limits.idle_timeout,
            header_timeout: limits.header_timeout.max(Duration::from_millis(1)),
        }
    }
}

/// Serve `router` over HTTP/1.1 on `listener` until `shutdown` resolves; then stop accepting, let
/// every connection finish the request it is answering, and return once all are closed.
///
/// `axum::serve` sets no header-read timeout (it gives hyper no timer): a client sending its headers
/// a byte at a time, each within the idle timeout, kept its connection — and its slot — for good,
/// and `max_connections` of them shut every other client out. Here hyper's own HTTP/1 server is
/// driven with a timer and the listener's `header_timeout`.
pub async fn serve(mut listener: LimitedListener, router: axum::Router, shutdown: impl Future<Output = ()> + Send + 'static) -> io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let header_timeout = listener.header_timeout;
    // Each connection holds a receiver until it has closed: `closed()` on the sender then means
    // every connection is done.
    let (stop, stopping) = tokio::sync::watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (io, _addr) = tokio::select! {
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
            () = &mut shutdown => break,
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
            let mut conn = std::pin::pin!(builder.serve_connection(TokioIo::new(io), service));
            tokio::select! {
                // The connection's own errors (a client gone, a timeout) concern that client only.
                _ = conn.as_mut() => return,
                _ = stopping.changed() => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    let addr = axum::serve::Listener::local_addr(&listener)?;
    // New clients are refused from now on, not left waiting in the accept queue until the end.
    drop(listener);
    drop(stopping);
    let open = stop.receiver_count();
    tracing::info!(%addr, connections = open, "stopping: new connections refused, the requests in flight are finished");
    // No connection may be listening yet (then there is nothing to wait for).
    let _ = stop.send(());
    stop.closed().await;
    tracing::info!(%addr, "stopped");
    Ok(())
}

impl axum::serve::Listener for LimitedListener {
    type Io = LimitedConnection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let permit = Arc::clone(&self.permits).acquire_owned().await.expect("the semaphore is never closed");
        let (stream, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        let idle = Box::pin(tokio::time::sleep(self.idle_timeout));
        (LimitedConnection { stream, _permit: permit, idle_timeout: self.idle_timeout, idle }, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection of a [`LimitedListener`]: holds its slot until dropped, and fails its reads and
/// writes once it has been idle for the timeout.
pub struct LimitedConnection {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    idle_timeout: Duration,
    idle: Pin<Box<Sleep>>,
}

impl LimitedConnection {
    /// The outcome of one I/O poll: a completed one restarts the idle deadline; a pending one
    /// becomes an error once the deadline has passed.
    fn track<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(result) => {
                self.idle.as_mut().reset(Instant::now() + self.idle_timeout);
                Poll::Ready(result)
            }
            Poll::Pending => match self.idle.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "connection idle for too long"))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncRead for LimitedConnection {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_read(cx, buf);
        this.track(cx, poll)
    }
}

impl AsyncWrite for LimitedConnection {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.track(cx, poll)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.track(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// A listen address as written in a config file or on the command line: `IP:PORT` (`[::1]:PORT`
/// for IPv6), or `HOST:PORT` with a host name the machine resolves (`localhost:8080`), taken as
/// its first IPv4 address if it has one, else its first address.
pub mod listen_addr {
    use std::net::{SocketAddr, ToSocketAddrs};

    use serde::{Deserialize, Deserializer};

    pub fn parse(text: &str) -> Result<SocketAddr, String> {
        let text = text.trim();
        if let Ok(addr) = text.parse() {
            return Ok(addr);
        }
        if !text.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok()) {
            return Err(format!("{text:?} is not an address: expected IP:PORT or HOST:PORT"));
        }
        let addrs: Vec<SocketAddr> = text.to_socket_addrs().map_err(|e| format!("{text:?}: the host name does not resolve: {e}"))?.collect();
        addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()).copied().ok_or_else(|| format!("{text:?}: the host name has no address"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
        parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn listen_addresses_are_ip_literals_or_host_names() {
        use super::listen_addr::parse;
        assert_eq!(parse("127.0.0.1:8080").unwrap().to_string(), "127.0.0.1:8080");
        assert_eq!(parse(" [::1]:5433 ").unwrap().to_string(), "[::1]:5433");
        let local = parse("localhost:8080").unwrap();
        assert!(local.ip().is_loopback() && local.port() == 8080 && local.is_ipv4(), "{local}");
        for bad in ["localhost", "8080", ":8080", "localhost:http", "localhost:70000", ""] {
            assert!(parse(bad).unwrap_err().contains("is not an address"), "{bad}");
        }
        assert!(parse("no-such-host.invalid:80").unwrap_err().contains("does not resolve"));
    }

    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn serve_ok(limits: ConnectionLimits) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/", get(|| async { "ok" }));
        tokio::spawn(async move { serve(LimitedListener::new(listener, limits), app, std::future::pending()).await.unwrap() });
        addr
    }

    async fn get_on(stream: &mut TcpStream) -> String {
        stream.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
        let mut buf = vec![0; 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await.expect("an answer").unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[tokio::test]
    async fn connections_beyond_the_limit_wait_for_a_free_slot() {
        let addr = serve_ok(ConnectionLimits { max_connections: 2, idle_timeout: Duration::from_secs(60), header_timeout: Duration::from_secs(60) }).await;
        let mut a = TcpStream::connect(addr).await.unwrap();
        let mut b = TcpStream::connect(addr).await.unwrap();
        assert!(get_on(&mut a).await.ends_with("ok"));
        assert!(get_on(&mut b).await.ends_with("ok"));
        // The third is accepted by the kernel but not served while two are open.
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
        let mut buf = [0; 256];
        assert!(tokio::time::timeout(Duration::from_millis(500), c.read(&mut buf)).await.is_err(), "served beyond the limit");
        drop(a);
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf)).await.expect("served once a slot is free").unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).ends_with("ok"));
        assert!(get_on(&mut b).await.ends_with("ok"));
    }

    #[tokio::test]
    async fn idle_and_half_sent_connections_are_closed() {
        let addr = serve_ok(ConnectionLimits { max_connections: 1, idle_timeout: Duration::from_millis(300), header_timeout: Duration::from_secs(60) }).await;
        // Half a request, then silence: closed, and the slot is free again.
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nhost").await.unwrap();
        let mut buf = [0; 256];
        let n = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut buf)).await.expect("closed by the server").unwrap_or(0);
        assert_eq!(n, 0, "{:?}", String::from_utf8_lossy(&buf[..n]));
        // A keep-alive connection that goes quiet after a request: closed too.
        let mut quiet = TcpStream::connect(addr).await.unwrap();
        assert!(get_on(&mut quiet).await.ends_with("ok"));
        let n = tokio::time::timeout(Duration::from_secs(5), quiet.read(&mut buf)).await.expect("closed by the server").unwrap_or(0);
        assert_eq!(n, 0);
        // An active client keeps its connection past the timeout.
        let mut busy = TcpStream::connect(addr).await.unwrap();
        for _ in 0..5 {
            assert!(get_on(&mut busy).await.ends_with("ok"));
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    #[tokio::test]
    async fn a_request_head_trickling_in_is_cut_at_the_header_timeout() {
        let limits = ConnectionLimits { max_connections: 1, idle_timeout: Duration::from_secs(60), header_timeout: Duration::from_millis(600) };
        let addr = serve_ok(limits).await;
        // One byte every 100 ms: never idle, never done with its headers.
        let slow = TcpStream::connect(addr).await.unwrap();
        let (mut slow_read, mut slow_write) = slow.into_split();
        let trickle = tokio::spawn(async move {
            slow_write.write_all(b"GET / HTTP/1.1\r\nx-pad: ").await.unwrap();
            for _ in 0..100 {
                if slow_write.write_all(b"a").await.is_err() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        });
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), slow_read.read_to_end(&mut answer)).await;
        assert!(read.is_ok(), "the trickling connection was still open after 5 s");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
        // Its slot is free again: the one connection allowed is served.
        let mut next = TcpStream::connect(addr).await.unwrap();
        assert!(get_on(&mut next).await.ends_with("ok"));
        trickle.abort();
    }

    /// Shutdown stops accepting at once (regression: the listening socket stayed open until the
    /// end, and a new client was accepted by the kernel, then hung until the process ended), lets
    /// the request in progress finish, and returns once its connection is closed.
    #[tokio::test]
    async fn shutdown_refuses_new_clients_and_lets_the_request_in_progress_finish() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let started = Arc::new(tokio::sync::Notify::new());
        let app = {
            let started = Arc::clone(&started);
            axum::Router::new().route(
                "/",
                get(move || async move {
                    started.notify_one();
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    "done"
                }),
            )
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let limits = ConnectionLimits { max_connections: 4, idle_timeout: Duration::from_secs(60), header_timeout: Duration::from_secs(60) };
        let server = tokio::spawn(serve(LimitedListener::new(listener, limits), app, async move {
            let _ = stopped.await;
        }));
        let mut busy = TcpStream::connect(addr).await.unwrap();
        busy.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
        // Shut down while the request is being answered.
        started.notified().await;
        stop.send(()).unwrap();
        // Refused well before the request in progress (1.5 s) is answered.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while TcpStream::connect(addr).await.is_ok() {
            assert!(tokio::time::Instant::now() < deadline, "new clients were accepted during shutdown");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), busy.read_to_end(&mut answer)).await.expect("answered and closed").unwrap();
        assert!(String::from_utf8_lossy(&answer).ends_with("done"), "{}", String::from_utf8_lossy(&answer));
        tokio::time::timeout(Duration::from_secs(5), server).await.expect("serve returns once its connections are closed").unwrap().unwrap();
    }
}
