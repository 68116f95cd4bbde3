//! A small HTTP/1.1 server loop on hyper 1 shared by the admin server and the emulator:
//! bounded connections, a header-read timeout, bounded header size, optional TLS and a
//! graceful drain.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
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
    /// Connections served at once; further ones wait in the kernel's accept queue.
    pub max_connections: usize,
    /// The read buffer, which bounds the size of a request head (at least 8 KiB).
    pub max_header_bytes: usize,
    /// How long in-flight requests may take to finish once shutdown starts.
    pub drain_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 64,
            max_header_bytes: 16 * 1024,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// The response type of every handler.
pub type Resp = Response<Full<Bytes>>;

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
        tracker.spawn(async move {
            let _permit = permit;
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
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(opts.header_read_timeout)
        .max_buf_size(opts.max_header_bytes.max(8192))
        .serve_connection(TokioIo::new(io), svc);
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
pub fn respond(status: u16, content_type: &str, body: impl Into<Bytes>) -> Resp {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    resp
}
