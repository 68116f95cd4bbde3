//! A small HTTP/1.1 server loop on hyper 1 shared by the admin server and the emulator:
//! bounded connections, a header-read timeout, a write timeout (a client that stops reading
//! is cut off), bounded header size, optional TLS and a graceful drain. Response bodies are
//! in memory or produced a chunk at a time as the client reads.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Limits of one server.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// How long a client may take to send its request headers (and, with TLS, to finish the
    /// handshake before that).
    pub header_read_timeout: Duration,
    /// How long a write may wait for the client to read: a client that stops reading its
    /// answer is cut off after this long, and its connection closed.
    pub write_timeout: Duration,
    /// Connections served at once; further ones wait in the kernel's accept queue. High
    /// enough that idle and slow clients, each cut off by the timeouts above, do not starve
    /// a scrape or a probe.
    pub max_connections: usize,
    /// The read buffer, which bounds the size of a request head (at least 8 KiB).
    pub max_header_bytes: usize,
    /// How long in-flight requests may take to finish once shutdown starts.
    pub drain_timeout: Duration,
    /// Counts the connections open now (shared by the clones of these options).
    pub connections: Connections,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            max_connections: 512,
            max_header_bytes: 16 * 1024,
            drain_timeout: Duration::from_secs(10),
            connections: Connections::default(),
        }
    }
}

/// The number of connections a server has open.
#[derive(Debug, Clone, Default)]
pub struct Connections(Arc<std::sync::atomic::AtomicUsize>);

impl Connections {
    /// Open now.
    pub fn open(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn enter(&self) -> ConnectionGuard {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ConnectionGuard(self.clone())
    }
}

struct ConnectionGuard(Connections);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        (self.0)
            .0
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The response type of every handler.
pub type Resp = Response<Body>;

/// A response body: chunks in memory, or chunks produced one at a time as the client reads
/// them (so that a large body is never whole in memory).
pub struct Body {
    kind: Kind,
    left: u64,
}

enum Kind {
    Chunks(VecDeque<Bytes>),
    Stream(Box<dyn Iterator<Item = Bytes> + Send>),
}

impl Body {
    /// No body.
    pub fn empty() -> Self {
        Self::chunks(Vec::new())
    }

    /// These chunks, in order.
    pub fn chunks(chunks: Vec<Bytes>) -> Self {
        let left = chunks.iter().map(|c| c.len() as u64).sum();
        Self {
            kind: Kind::Chunks(chunks.into()),
            left,
        }
    }

    /// The chunks `iter` produces, `len` bytes in all (the `Content-Length`).
    pub fn stream(iter: impl Iterator<Item = Bytes> + Send + 'static, len: u64) -> Self {
        Self {
            kind: Kind::Stream(Box::new(iter)),
            left: len,
        }
    }

    /// Every chunk, produced now (tests, and clients in the same process).
    pub fn into_chunks_blocking(self) -> Vec<Bytes> {
        match self.kind {
            Kind::Chunks(c) => c.into(),
            Kind::Stream(s) => s.collect(),
        }
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        Self::chunks(vec![b])
    }
}

impl From<String> for Body {
    fn from(s: String) -> Self {
        Bytes::from(s).into()
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Self {
        Bytes::from_static(s.as_bytes()).into()
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Self {
        Bytes::from(v).into()
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let next = match &mut self.kind {
            Kind::Chunks(c) => c.pop_front(),
            Kind::Stream(s) => s.next(),
        };
        if let Some(b) = &next {
            self.left = self.left.saturating_sub(b.len() as u64);
        }
        Poll::Ready(next.map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Chunks(c) => c.iter().all(|b| b.is_empty()),
            Kind::Stream(_) => self.left == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

/// The client's address, in every request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub std::net::SocketAddr);

/// Supplies the TLS acceptor for each new connection, so that certificates can change
/// between connections.
pub trait TlsSource: Send + Sync + 'static {
    /// The acceptor for the next connection. `None` refuses the connection: a TLS listener
    /// never falls back to plain HTTP.
    fn tls_acceptor(&self) -> Option<TlsAcceptor>;
}

/// Serves `handler` on `listener` until `shutdown` is cancelled, then drains open
/// connections for at most `drain_timeout`.
pub async fn serve<H, F>(
    listener: TcpListener,
    opts: ServeOptions,
    shutdown: CancellationToken,
    handler: H,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Resp> + Send + 'static,
{
    serve_inner(listener, opts, shutdown, None, handler).await;
}

/// [`serve`], with every connection over TLS.
pub async fn serve_tls<H, F>(
    listener: TcpListener,
    opts: ServeOptions,
    shutdown: CancellationToken,
    tls: Arc<dyn TlsSource>,
    handler: H,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Resp> + Send + 'static,
{
    serve_inner(listener, opts, shutdown, Some(tls), handler).await;
}

async fn serve_inner<H, F>(
    listener: TcpListener,
    opts: ServeOptions,
    shutdown: CancellationToken,
    tls: Option<Arc<dyn TlsSource>>,
    handler: H,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Resp> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(opts.max_connections.max(1)));
    let tracker = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Running out of file descriptors must not end the server: wait and retry.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let handler = handler.clone();
        let shutdown = shutdown.clone();
        let opts = opts.clone();
        let tls = tls.clone();
        let open = opts.connections.enter();
        tracker.spawn(async move {
            let _permit = permit;
            let _open = open;
            let Some(tls) = tls else {
                return serve_connection(stream, peer, &opts, &shutdown, handler).await;
            };
            let Some(acceptor) = tls.tls_acceptor() else {
                tracing::warn!("no TLS configuration; connection refused");
                return;
            };
            // A stalled handshake holds a connection slot like a stalled request head, so it
            // gets the same deadline.
            let handshake = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = tokio::time::timeout(opts.header_read_timeout, acceptor.accept(stream)) => r,
            };
            match handshake {
                Ok(Ok(stream)) => serve_connection(stream, peer, &opts, &shutdown, handler).await,
                // Scanners and misconfigured clients are routine: not worth more than debug.
                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        });
    }
    tracker.close();
    let _ = tokio::time::timeout(opts.drain_timeout, tracker.wait()).await;
}

async fn serve_connection<IO, H, F>(
    io: IO,
    peer: std::net::SocketAddr,
    opts: &ServeOptions,
    shutdown: &CancellationToken,
    handler: H,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Resp> + Send + 'static,
{
    let svc = service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(Peer(peer));
        let fut = handler(req);
        async move { Ok::<_, Infallible>(fut.await) }
    });
    // A write that makes no progress for this long fails, and hyper closes the connection:
    // a client that does not read its answer holds its slot no longer than that.
    let mut io = tokio_io_timeout::TimeoutStream::new(io);
    io.set_write_timeout(Some(opts.write_timeout));
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(opts.header_read_timeout)
        .max_buf_size(opts.max_header_bytes.max(8192))
        .serve_connection(TokioIo::new(Box::pin(io)), svc);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(opts.drain_timeout, conn).await;
        }
    }
}

/// A response with a status, a content type and a body.
pub fn respond(status: u16, content_type: &str, body: impl Into<Body>) -> Resp {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    resp
}
