//! Shared helpers: start the emulator, build SDK clients and daemons against it.

use std::time::Duration;

use aws_sdk_workmail::Client;
use aws_sdk_workmail::config::retry::RetryConfig;
use chrono::{DateTime, Utc};
use workmail_pat_monitor::app::{self, Options, Source};
use workmail_pat_monitor::clock::Clock;
use workmail_pat_monitor::config::Config;
use workmail_pat_monitor::sim::{Scenario, Sim, SimConfig, SimServer, World};
use workmail_pat_monitor::workmail::ClientFactory;

/// The fixed instant fixtures are relative to.
pub fn now() -> DateTime<Utc> {
    workmail_pat_monitor::sim::world::fixed_now()
}

/// Starts an emulator holding `world` on a free loopback port.
pub async fn start_sim(world: World, config: SimConfig) -> SimServer {
    Sim::new(world, config)
        .start("127.0.0.1:0".parse().unwrap())
        .await
        .expect("bind emulator")
}

/// Starts an emulator from scenario text, times relative to [`now`].
pub async fn start_scenario(text: &str) -> SimServer {
    start_scenario_with(text, SimConfig::default()).await
}

/// [`start_scenario`] with an emulator configuration.
pub async fn start_scenario_with(text: &str, config: SimConfig) -> SimServer {
    let world = Scenario::parse(text).unwrap().build(now()).unwrap();
    start_sim(world, config).await
}

/// A loopback address no one listens on (the port was free a moment ago).
pub fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A real SDK client against the emulator, with fast retries.
pub fn sdk_client(server: &SimServer) -> Client {
    sdk_client_with(server, RetryConfig::standard().with_max_attempts(3))
}

/// A real SDK client with a given retry configuration.
pub fn sdk_client_with(server: &SimServer, retry: RetryConfig) -> Client {
    let sdk = ClientFactory::static_sdk_config(&server.endpoint(), server.sim.region());
    // Every call has a deadline: a stalled emulator fails the test instead of hanging it.
    let conf = aws_sdk_workmail::config::Builder::from(&sdk)
        .retry_config(retry.with_initial_backoff(Duration::from_millis(1)))
        .timeout_config(
            aws_sdk_workmail::config::timeout::TimeoutConfig::builder()
                .operation_timeout(DEADLINE)
                .build(),
        )
        .build();
    Client::from_conf(conf)
}

/// The daemon's source for an emulator.
pub fn source(server: &SimServer) -> Source {
    Source::Sdk(Box::new(ClientFactory::static_sdk_config(
        &server.endpoint(),
        server.sim.region(),
    )))
}

/// Options with a manual clock at [`now`] and fast retries.
pub fn options() -> (Options, Clock) {
    let clock = Clock::manual(now());
    (
        Options {
            clock: clock.clone(),
            initial_backoff: Duration::from_millis(1),
            ..Default::default()
        },
        clock,
    )
}

/// Parses a config (panicking with the error).
pub fn config(text: &str) -> Config {
    Config::parse(text, "test.toml").unwrap_or_else(|e| panic!("{e}"))
}

/// Runs one scan (and cleanup, when configured) of every organization.
pub async fn once(server: &SimServer, config: Config) -> (app::OnceOutcome, Clock) {
    let (opts, clock) = options();
    let out = app::once(config, source(server), opts, None).await.unwrap();
    (out, clock)
}

/// Value of one series in a text exposition (labels given as `k="v"` fragments, all of
/// which must appear).
pub fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b'{') | Some(b' '))
        })
        .find(|l| labels.iter().all(|f| l.contains(f)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// How many series of a metric there are.
pub fn series_count(text: &str, name: &str) -> usize {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b'{') | Some(b' '))
        })
        .count()
}

// === The one HTTP client of the tests ===

/// An HTTP/1.1 answer, as read off the wire.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The head, as sent.
    pub head: String,
    /// The headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body, dechunked (not decoded).
    pub body: Vec<u8>,
}

impl Reply {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request on an open connection (plain or TLS, kept alive or not), and its answer:
/// the body is read by its `Content-Length`, its chunks, or to the end of the connection.
/// `headers` are added after `Host`; `body` is sent with its length.
pub async fn exchange<S>(
    s: &mut S,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Reply>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    within(
        &format!("an answer to {method} {path}"),
        DEADLINE,
        exchange_inner(s, host, method, path, headers, body),
    )
    .await
}

async fn exchange_inner<S>(
    s: &mut S,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Reply>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await?;
    s.write_all(body).await?;
    s.flush().await?;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let eof = std::io::ErrorKind::UnexpectedEof;
    let head_len = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(eof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_len - 4]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut reply = Reply {
        status,
        head: head.clone(),
        headers,
        body: Vec::new(),
    };
    let mut rest = buf.split_off(head_len);
    let chunked = reply
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let length: Option<usize> = reply.header("content-length").and_then(|v| v.parse().ok());
    if method == "HEAD" || matches!(status, 204 | 304) {
        return Ok(reply);
    }
    if let (Some(n), false) = (length, chunked) {
        while rest.len() < n {
            let k = s.read(&mut chunk).await?;
            if k == 0 {
                return Err(eof.into());
            }
            rest.extend_from_slice(&chunk[..k]);
        }
        rest.truncate(n);
        reply.body = rest;
        return Ok(reply);
    }
    if chunked {
        // Until the last chunk (`0\r\n\r\n`) has arrived.
        while !rest.windows(5).any(|w| w == b"0\r\n\r\n") {
            let k = s.read(&mut chunk).await?;
            if k == 0 {
                break;
            }
            rest.extend_from_slice(&chunk[..k]);
        }
        reply.body = dechunk(&rest);
        return Ok(reply);
    }
    s.read_to_end(&mut rest).await?;
    reply.body = rest;
    Ok(reply)
}

/// One request on a fresh connection to `addr` (`Connection: close`).
pub async fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut s = within(
        &format!("a connection to {addr}"),
        DEADLINE,
        tokio::net::TcpStream::connect(addr),
    )
    .await
    .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let mut all = vec![("Connection", "close")];
    all.extend_from_slice(headers);
    exchange(&mut s, addr, method, path, &all, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"))
}

/// A GET over a fresh connection: (status, body).
pub async fn http_get(url: &str) -> (u16, String) {
    http_request(url, "GET").await
}

/// A request without a body over a fresh connection: (status, body).
pub async fn http_request(url: &str, method: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let r = request(host, method, path, &[], b"").await;
    (r.status, r.text())
}

/// Decodes a chunked HTTP/1.1 body (chunks may split UTF-8 sequences, so bytes).
pub fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&rest[..eol]);
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        let data = &rest[eol + 2..];
        if n == 0 || data.len() < n {
            break;
        }
        out.extend_from_slice(&data[..n]);
        rest = data[n..].strip_prefix(b"\r\n").unwrap_or(&data[n..]);
    }
    out
}

// === Waiting, always with a deadline ===
//
// Every wait in the tests goes through one of these, so that a regression fails with a
// message naming what never happened instead of hanging CI.

/// How long a test waits for something that takes milliseconds when all is well.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Awaits `fut`; fails the test, naming `what`, if it takes longer than `timeout`.
pub async fn within<T>(
    what: &str,
    timeout: Duration,
    fut: impl std::future::Future<Output = T>,
) -> T {
    tokio::time::timeout(timeout, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// Polls `cond` every 10 ms until it holds; fails the test, naming `what`, once `timeout`
/// has passed.
pub async fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// [`wait_for`] with an asynchronous check (one that asks another process, say), polled
/// every 250 ms.
pub async fn wait_for_async(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits, on the daemon's change notifications, until `cond` holds of its published state.
pub async fn wait_for_state(
    what: &str,
    shared: &workmail_pat_monitor::state::Shared,
    mut cond: impl FnMut(&workmail_pat_monitor::state::Shared) -> bool,
) {
    let mut changes = shared.subscribe();
    within(what, DEADLINE, async {
        while !cond(shared) {
            changes
                .changed()
                .await
                .expect("the daemon's state is alive");
        }
    })
    .await;
}

/// Waits until the daemon at `addr` answers `/readyz` with 200: every organization had a
/// scan attempt and `/metrics` shows it.
pub async fn wait_ready(addr: std::net::SocketAddr) {
    let url = format!("http://{addr}/readyz");
    wait_for_async(&format!("{url} to answer 200"), DEADLINE, async || {
        // Not listening yet is not ready yet.
        tokio::net::TcpStream::connect(addr).await.is_ok() && http_get(&url).await.0 == 200
    })
    .await;
}

/// Runs a command to its end (killed on the deadline), naming it if it never ends.
pub async fn output_of(what: &str, cmd: &mut tokio::process::Command) -> std::process::Output {
    cmd.kill_on_drop(true);
    within(what, DEADLINE * 2, cmd.output())
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// The binary, with an environment that points the AWS chain at `server` and at nothing
/// else (static credentials, no profile, no instance metadata).
pub fn bin_against(server: &SimServer) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_workmail-pat-monitor"));
    cmd.env_clear()
        .env("AWS_ENDPOINT_URL", server.endpoint())
        .env("AWS_REGION", server.sim.region())
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("NO_COLOR", "1")
        .kill_on_drop(true);
    cmd
}

/// A fresh path for a file a test needs but does not look at (a ledger, say), under Cargo's
/// scratch directory for integration tests.
pub fn scratch_file(name: &str) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("it-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name).display().to_string()
}
