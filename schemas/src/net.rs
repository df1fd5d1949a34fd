//! The connection limits every edgelens HTTP listener shares (the Logpush receiver, the query
//! service, the aggregator's metrics endpoint): at most `max_connections` open at once — beyond
//! that, new connections wait in the kernel's accept queue until one closes — and a connection on
//! which nothing was read or written for `idle_timeout` is closed (a keep-alive connection left
//! open, a client that stopped half-way through its headers or body). Behind the `net` feature.
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
}

impl ConnectionLimits {
    /// Limits whose idle timeout is `idle_timeout`, but at least 5 s longer than `longest_request`
    /// (the longest a request may take to be received and answered), so that a request in progress
    /// is never cut.
    pub fn outlasting(max_connections: usize, idle_timeout: Duration, longest_request: Duration) -> Self {
        ConnectionLimits { max_connections, idle_timeout: idle_timeout.max(longest_request + Duration::from_secs(5)) }
    }
}

/// A TCP listener that hands out at most `max_connections` connections at once, each closed after
/// `idle_timeout` without traffic. Serve it with `axum::serve`.
pub struct LimitedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    idle_timeout: Duration,
}

impl LimitedListener {
    pub fn new(inner: TcpListener, limits: ConnectionLimits) -> Self {
        LimitedListener { inner, permits: Arc::new(Semaphore::new(limits.max_connections.max(1))), idle_timeout: limits.idle_timeout }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn serve(limits: ConnectionLimits) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/", get(|| async { "ok" }));
        tokio::spawn(async move { axum::serve(LimitedListener::new(listener, limits), app).await.unwrap() });
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
        let addr = serve(ConnectionLimits { max_connections: 2, idle_timeout: Duration::from_secs(60) }).await;
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
        let addr = serve(ConnectionLimits { max_connections: 1, idle_timeout: Duration::from_millis(300) }).await;
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
}
