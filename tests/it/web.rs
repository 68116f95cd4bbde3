//! Endpoint security end to end: the exporter-toolkit web configuration (TLS, mTLS, basic
//! auth, headers, reloads) with certificates generated at test time and a real rustls
//! client, the plain probe port, and the HTTP limits under abusive clients.
//!
//! Time-dependent cases run in real time with short limits: tokio's paused clock would need
//! its `test-util` feature (a rebuild of everything on tokio for tests) and would also fire
//! the daemon's SDK timeouts whenever the runtime idles.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use workmail_pat_monitor::app::{Daemon, Options};
use workmail_pat_monitor::cli::{self, Cli};
use workmail_pat_monitor::httpd::ServeOptions;
use workmail_pat_monitor::sim::SimServer;
use workmail_pat_monitor::webconfig::LiveWebConfig;

use crate::monitor::{BASIC, base_config};
use crate::support::*;

/// A guard against hangs; never a synchronisation point.
const GUARD: Duration = Duration::from_secs(20);

// === Certificates ===

/// A test CA, and a directory of PEM files it issued: `server.crt`/`server.key` for
/// localhost and 127.0.0.1, `client.crt`/`client.key`, and `ca.crt`.
struct Pki {
    dir: tempfile::TempDir,
    ca: Issuer<'static, KeyPair>,
    ca_der: CertificateDer<'static>,
}

struct Issued {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

impl Pki {
    fn new() -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "workmail-pat-monitor test CA");
        let cert = params.self_signed(&key).unwrap();
        let pki = Self {
            dir: tempfile::tempdir().unwrap(),
            ca_der: cert.der().clone(),
            ca: Issuer::new(params, key),
        };
        pki.write("ca.crt", &cert.pem());
        let server = pki.server("server one");
        pki.install(&server);
        let client = pki.issue("scraper", ExtendedKeyUsagePurpose::ClientAuth);
        pki.write("client.crt", &client.cert_pem);
        pki.write("client.key", &client.key_pem);
        pki
    }

    fn issue(&self, name: &str, usage: ExtendedKeyUsagePurpose) -> Issued {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.ca).unwrap();
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    fn server(&self, name: &str) -> Issued {
        self.issue(name, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// Makes `issued` the served certificate and key.
    fn install(&self, issued: &Issued) {
        self.write("server.crt", &issued.cert_pem);
        self.write("server.key", &issued.key_pem);
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Replaces a file the way a deployment does: write aside, then rename over it.
    fn write(&self, name: &str, text: &str) {
        let tmp = self.path(&format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.path(name)).unwrap();
    }

    /// Writes `web.yml` and loads it, checking for changes on every connection and request.
    fn web(&self, yaml: &str) -> Arc<LiveWebConfig> {
        self.write("web.yml", yaml);
        Arc::new(
            LiveWebConfig::load(&self.path("web.yml"))
                .unwrap_or_else(|e| panic!("{e}"))
                .with_check_interval(Duration::ZERO),
        )
    }

    fn client_config(&self, client_cert: bool) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        let builder = ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        Arc::new(if client_cert {
            let certs = CertificateDer::pem_file_iter(self.path("client.crt"))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(self.path("client.key")).unwrap();
            builder.with_client_auth_cert(certs, key).unwrap()
        } else {
            builder.with_no_client_auth()
        })
    }
}

/// `tls_server_config` for the PKI's server certificate (relative paths: they resolve
/// against web.yml's directory).
const TLS: &str = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";

// === Requests ===

/// One GET on an open connection (kept alive), with optional basic-auth credentials.
async fn get<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    path: &str,
    auth: Option<(&str, &str)>,
) -> std::io::Result<Reply> {
    let creds = auth.map(|(user, password)| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    });
    let headers: Vec<(&str, &str)> = creds
        .iter()
        .map(|c| ("Authorization", c.as_str()))
        .collect();
    exchange(s, "localhost", "GET", path, &headers, b"").await
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

async fn tls_connect(addr: SocketAddr, config: Arc<ClientConfig>) -> std::io::Result<Tls> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    TlsConnector::from(config).connect(name, tcp).await
}

/// A GET on a fresh TLS connection.
async fn tls_get(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    path: &str,
    auth: Option<(&str, &str)>,
) -> std::io::Result<Reply> {
    let mut s = tls_connect(addr, config).await?;
    get(&mut s, path, auth).await
}

/// The certificate the server at `addr` presents.
async fn served_cert(addr: SocketAddr, pki: &Pki) -> CertificateDer<'static> {
    let s = tls_connect(addr, pki.client_config(false)).await.unwrap();
    s.get_ref().1.peer_certificates().unwrap()[0].clone()
}

/// Sends raw bytes on a fresh plain connection and reads until the server closes it.
async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The server may close before reading everything: a failed write is part of the answer.
    let _ = s.write_all(bytes).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(GUARD, s.read_to_end(&mut buf))
        .await
        .expect("the server closes the connection");
    buf
}

// === The daemon ===

async fn start(web: Option<Arc<LiveWebConfig>>, http: ServeOptions) -> (SimServer, Daemon) {
    let server = start_scenario(BASIC).await;
    let mut config = base_config("");
    config.server.probe_listen = Some("127.0.0.1:0".parse().unwrap());
    let (opts, _clock) = options();
    let opts = Options { web, http, ..opts };
    let daemon = Daemon::start(config, source(&server), opts).await.unwrap();
    (server, daemon)
}

async fn stop(server: SimServer, daemon: Daemon) {
    daemon.stop().await;
    server.stop().await;
}

fn bcrypt_hash(password: &str) -> String {
    // The lowest cost keeps the debug-build tests fast; the cost is the operator's choice.
    bcrypt::hash(password, 4).unwrap()
}

// === Tests ===

#[tokio::test]
async fn metrics_are_scraped_over_tls_and_plain_http_is_refused() {
    let pki = Pki::new();
    let (server, daemon) = start(Some(pki.web(TLS)), ServeOptions::default()).await;

    let reply = tls_get(daemon.addr, pki.client_config(false), "/metrics", None)
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.head);
    assert!(
        reply.text().contains("# TYPE workmail_pat_"),
        "{}",
        reply.text()
    );

    // Plain HTTP to the TLS port gets no HTTP answer, only a closed connection (perhaps
    // after a TLS alert): never the metrics over plain text.
    let answer = raw_exchange(
        daemon.addr,
        b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .await;
    assert!(
        !answer.starts_with(b"HTTP/"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // The probe port stays plain and serves only the probes.
    let probe = format!("http://{}", daemon.probe_addr.unwrap());
    assert_eq!(http_get(&format!("{probe}/healthz")).await.0, 200);
    assert_eq!(http_get(&format!("{probe}/metrics")).await.0, 404);
    stop(server, daemon).await;
}

#[tokio::test]
async fn each_client_auth_type_accepts_and_refuses_as_in_go() {
    let pki = Pki::new();
    // A client whose certificate comes from another CA.
    let other = Pki::new();
    let stranger = other.issue("stranger", ExtendedKeyUsagePurpose::ClientAuth);
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca_der.clone()).unwrap();
    let key = PrivateKeyDer::from_pem_slice(stranger.key_pem.as_bytes()).unwrap();
    let stranger = Arc::new(
        ClientConfig::builder_with_provider(
            Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        )
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![stranger.der.clone()], key)
        .unwrap(),
    );
    let clients = [
        ("no certificate", pki.client_config(false)),
        ("certificate from the CA", pki.client_config(true)),
        ("certificate from another CA", stranger),
    ];
    // Whether each client above is served.
    let cases: &[(&str, [bool; 3])] = &[
        ("NoClientCert", [true, true, true]),
        ("RequestClientCert", [true, true, true]),
        ("RequireAnyClientCert", [false, true, true]),
        ("VerifyClientCertIfGiven", [true, true, false]),
        ("RequireAndVerifyClientCert", [false, true, false]),
    ];
    for (auth, want) in cases {
        let ca = if *auth == "NoClientCert" {
            ""
        } else {
            "  client_ca_file: ca.crt\n"
        };
        let web = pki.web(&format!("{TLS}  client_auth_type: {auth}\n{ca}"));
        let (server, daemon) = start(Some(web), ServeOptions::default()).await;
        for ((client, config), want) in clients.iter().zip(want) {
            // A refusal shows in the handshake or, in TLS 1.3, at the first read after it.
            let reply = tls_get(daemon.addr, config.clone(), "/metrics", None).await;
            assert_eq!(
                reply.as_ref().is_ok_and(|r| r.status == 200),
                *want,
                "{auth}, {client}: {:?}",
                reply.map(|r| r.head)
            );
        }
        stop(server, daemon).await;
    }
}

#[tokio::test]
async fn basic_auth_guards_every_route_of_the_main_listener_and_headers_are_added() {
    let pki = Pki::new();
    let yaml = |user: &str, password: &str| {
        format!(
            "{TLS}http_server_config:\n  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n    Strict-Transport-Security: max-age=31536000\nbasic_auth_users:\n  {user}: '{}'\n",
            bcrypt_hash(password)
        )
    };
    let web = pki.web(&yaml("prometheus", "s3cret"));
    let (server, daemon) = start(Some(web), ServeOptions::default()).await;
    let tls = pki.client_config(false);
    let scrape = |path: &'static str, auth: Option<(&'static str, &'static str)>| {
        let tls = tls.clone();
        let addr = daemon.addr;
        async move { tls_get(addr, tls, path, auth).await.unwrap() }
    };

    type Creds<'a> = Option<(&'a str, &'a str)>;
    let cases: &[(&str, &str, Creds, u16)] = &[
        ("no credentials", "/metrics", None, 401),
        (
            "wrong password",
            "/metrics",
            Some(("prometheus", "guess")),
            401,
        ),
        ("unknown user", "/metrics", Some(("admin", "s3cret")), 401),
        ("empty password", "/metrics", Some(("prometheus", "")), 401),
        (
            "right password",
            "/metrics",
            Some(("prometheus", "s3cret")),
            200,
        ),
        (
            "cached success",
            "/metrics",
            Some(("prometheus", "s3cret")),
            200,
        ),
        ("health without credentials", "/healthz", None, 401),
        ("status page without credentials", "/", None, 401),
        ("unknown path without credentials", "/nope", None, 401),
        ("health", "/healthz", Some(("prometheus", "s3cret")), 200),
        ("unknown path", "/nope", Some(("prometheus", "s3cret")), 404),
    ];
    for (case, path, auth, want) in cases {
        let reply = scrape(path, *auth).await;
        assert_eq!(reply.status, *want, "case: {case}: {}", reply.head);
        if *want == 401 {
            assert_eq!(
                reply.header("www-authenticate"),
                Some("Basic"),
                "case: {case}"
            );
        }
        // The configured headers are on every answer of the main listener, refusals too.
        assert_eq!(
            reply.header("x-frame-options"),
            Some("deny"),
            "case: {case}"
        );
        assert_eq!(
            reply.header("x-content-type-options"),
            Some("nosniff"),
            "case: {case}"
        );
        assert_eq!(
            reply.header("strict-transport-security"),
            Some("max-age=31536000"),
            "case: {case}"
        );
    }

    // The probe port needs no credentials and is outside the web configuration.
    let mut probe = TcpStream::connect(daemon.probe_addr.unwrap())
        .await
        .unwrap();
    let reply = get(&mut probe, "/healthz", None).await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-frame-options"), None);

    // Users are re-read with the file: the old password stops working, the new one works.
    pki.write("web.yml", &yaml("prometheus", "n3w"));
    assert_eq!(
        scrape("/metrics", Some(("prometheus", "s3cret")))
            .await
            .status,
        401
    );
    assert_eq!(
        scrape("/metrics", Some(("prometheus", "n3w"))).await.status,
        200
    );
    stop(server, daemon).await;
}

#[tokio::test]
async fn certificates_rotate_without_a_restart_and_a_bad_change_keeps_the_last_good_one() {
    let pki = Pki::new();
    let first = std::fs::read(pki.path("server.crt")).unwrap();
    let first = CertificateDer::from_pem_slice(&first).unwrap();
    let web = pki.web(TLS);
    let (server, daemon) = start(Some(web.clone()), ServeOptions::default()).await;
    assert_eq!(served_cert(daemon.addr, &pki).await, first);

    // A new certificate and key are served from the next connection on.
    let second = pki.server("server two");
    pki.install(&second);
    assert_eq!(served_cert(daemon.addr, &pki).await, second.der);

    // A broken certificate is refused with the key named; the last good one stays.
    pki.write("server.crt", "not a certificate\n");
    let err = web.check().unwrap_err().to_string();
    assert!(err.contains("tls_server_config.cert_file"), "{err}");
    assert_eq!(served_cert(daemon.addr, &pki).await, second.der);

    // So is a key that does not fit the certificate.
    let third = pki.server("server three");
    pki.write("server.crt", &third.cert_pem);
    let err = web.check().unwrap_err().to_string();
    assert!(err.contains("tls_server_config.key_file"), "{err}");
    assert_eq!(served_cert(daemon.addr, &pki).await, second.der);
    pki.write("server.key", &third.key_pem);
    assert_eq!(served_cert(daemon.addr, &pki).await, third.der);

    // TLS cannot be turned off by a reload: the listener never falls back to plain HTTP.
    pki.write("web.yml", "basic_auth_users: {}\n");
    let err = web.check().unwrap_err().to_string();
    assert!(
        err.contains("tls_server_config: TLS cannot be turned off"),
        "{err}"
    );
    assert_eq!(served_cert(daemon.addr, &pki).await, third.der);
    stop(server, daemon).await;
}

#[tokio::test]
async fn a_bad_web_config_stops_the_start_with_the_file_and_key_named() {
    let pki = Pki::new();
    let load = |yaml: &str| {
        pki.write("web.yml", yaml);
        LiveWebConfig::load(&pki.path("web.yml"))
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let web_yml = pki.path("web.yml").display().to_string();
    let cases: &[(&str, String, &str)] = &[
        (
            "unknown key",
            format!("{TLS}  client_auth: RequireAndVerifyClientCert\n"),
            "unknown field `client_auth`",
        ),
        (
            "bad client auth type",
            format!("{TLS}  client_auth_type: Always\n"),
            "tls_server_config.client_auth_type: unknown value \"Always\"",
        ),
        (
            "missing certificate file",
            "tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\n".to_owned(),
            "tls_server_config.cert_file: ",
        ),
        (
            "key of another certificate",
            "tls_server_config:\n  cert_file: client.crt\n  key_file: server.key\n".to_owned(),
            "tls_server_config.key_file: ",
        ),
        (
            "CA file without certificates",
            format!(
                "{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: server.key\n"
            ),
            "tls_server_config.client_ca_file: ",
        ),
        (
            "refused header",
            "http_server_config:\n  headers:\n    Server: me\n".to_owned(),
            "http_server_config.headers.Server: this header cannot be configured",
        ),
    ];
    for (case, yaml, want) in cases {
        let err = load(yaml);
        assert!(
            err.starts_with(&format!("{web_yml}: ")),
            "case: {case}: {err}"
        );
        assert!(err.contains(want), "case: {case}: {err}");
    }

    // Through the command line: `run` exits with the configuration error code before it
    // binds anything, rather than serving plain HTTP.
    pki.write("web.yml", &format!("{TLS}  client_auth_type: Always\n"));
    pki.write(
        "config.toml",
        "[server]\nlisten = \"127.0.0.1:0\"\n[[organizations]]\nid = \"m-00000000000000000000000000000001\"\nregion = \"us-east-1\"\n",
    );
    let config_toml = pki.path("config.toml").display().to_string();
    let args = [
        "workmail-pat-monitor",
        "run",
        "--config",
        &config_toml,
        "--web.config.file",
        &web_yml,
    ];
    let cli = <Cli as clap::Parser>::try_parse_from(args).unwrap();
    let code = tokio::time::timeout(GUARD, cli::execute(cli, None))
        .await
        .expect("run returns at once")
        .unwrap();
    assert_eq!(code, cli::EXIT_CONFIG);
}

#[tokio::test]
async fn slow_loris_clients_are_cut_off_at_the_header_read_timeout() {
    let pki = Pki::new();
    let limit = Duration::from_millis(300);
    let http = ServeOptions {
        header_read_timeout: limit,
        ..Default::default()
    };
    let (server, daemon) = start(Some(pki.web(TLS)), http).await;
    let probe = daemon.probe_addr.unwrap();

    // Plain HTTP (the probe port): a request head that never ends.
    let started = tokio::time::Instant::now();
    let answer = raw_exchange(
        probe,
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ",
    )
    .await;
    assert!(started.elapsed() >= limit - Duration::from_millis(50));
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );

    // TLS: a handshake that never starts, then one that finishes but sends half a head.
    let started = tokio::time::Instant::now();
    let mut stalled = TcpStream::connect(daemon.addr).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(GUARD, stalled.read_to_end(&mut buf))
        .await
        .expect("a stalled handshake is cut off")
        .unwrap();
    assert!(started.elapsed() >= limit - Duration::from_millis(50));

    let mut half = tls_connect(daemon.addr, pki.client_config(false))
        .await
        .unwrap();
    half.write_all(b"GET /metrics HTTP/1.1\r\nHost: local")
        .await
        .unwrap();
    half.flush().await.unwrap();
    let mut buf = Vec::new();
    // The server closes the connection; rustls may report the missing close_notify.
    let _ = tokio::time::timeout(GUARD, half.read_to_end(&mut buf))
        .await
        .expect("a stalled request head is cut off");
    let answer = String::from_utf8_lossy(&buf);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );

    // Meanwhile and afterwards, well-behaved clients are served.
    let mut ok = TcpStream::connect(probe).await.unwrap();
    assert_eq!(get(&mut ok, "/healthz", None).await.unwrap().status, 200);
    let reply = tls_get(daemon.addr, pki.client_config(false), "/healthz", None)
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    stop(server, daemon).await;
}

#[tokio::test]
async fn oversized_heads_and_garbage_are_refused_and_the_daemon_keeps_answering() {
    let (server, daemon) = start(None, ServeOptions::default()).await;
    let max = ServeOptions::default().max_header_bytes;

    let huge = format!(
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
        "a".repeat(4 * max)
    );
    let answer = raw_exchange(daemon.addr, huge.as_bytes()).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );

    let many = format!(
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\n{}\r\n",
        (0..2000)
            .map(|i| format!("X-H{i}: v\r\n"))
            .collect::<String>()
    );
    let answer = raw_exchange(daemon.addr, many.as_bytes()).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty()
            || answer.starts_with("HTTP/1.1 431")
            || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );

    for garbage in [
        &b"\x00\x01\x02\xff\xfe garbage \r\n\r\n"[..],
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"GET /metrics SPDY/9\r\n\r\n",
        b"GET\r\n\r\n",
    ] {
        let answer = raw_exchange(daemon.addr, garbage).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
            "{garbage:?}: {answer}"
        );
    }

    // A request body is refused.
    let answer = raw_exchange(
        daemon.addr,
        b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .await;
    assert!(
        answer.starts_with(b"HTTP/1.1 413"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    let (status, body) = http_get(&format!("http://{}/metrics", daemon.addr)).await;
    assert_eq!(status, 200);
    assert!(body.contains("# TYPE workmail_pat_"));
    stop(server, daemon).await;
}

#[tokio::test]
async fn a_bounded_flood_of_authenticated_tls_scrapes_is_all_answered() {
    const CONNECTIONS: usize = 50;
    const REQUESTS: usize = 10;
    let pki = Pki::new();
    let web = pki.web(&format!(
        "{TLS}basic_auth_users:\n  prometheus: '{}'\n",
        bcrypt_hash("s3cret")
    ));
    let (server, daemon) = start(Some(web), ServeOptions::default()).await;
    let tls = pki.client_config(false);

    let mut set = tokio::task::JoinSet::new();
    for _ in 0..CONNECTIONS {
        let tls = tls.clone();
        let addr = daemon.addr;
        set.spawn(async move {
            let mut s = tls_connect(addr, tls).await.unwrap();
            let mut ok = 0;
            for _ in 0..REQUESTS {
                let reply = get(&mut s, "/metrics", Some(("prometheus", "s3cret")))
                    .await
                    .unwrap();
                assert_eq!(reply.status, 200, "{}", reply.head);
                assert!(reply.text().contains("# TYPE workmail_pat_"));
                ok += 1;
            }
            ok
        });
    }
    let answered: usize = tokio::time::timeout(GUARD * 3, set.join_all())
        .await
        .expect("the flood is answered")
        .into_iter()
        .sum();
    assert_eq!(answered, CONNECTIONS * REQUESTS);

    let reply = tls_get(daemon.addr, tls, "/healthz", Some(("prometheus", "s3cret")))
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    stop(server, daemon).await;
}

#[tokio::test]
async fn a_reload_that_would_remove_authentication_keeps_the_last_good_configuration() {
    let pki = Pki::new();
    let good = format!(
        "basic_auth_users:\n  prometheus: '{}'\n",
        bcrypt_hash("s3cret")
    );
    let web = pki.web(&good);
    let (server, daemon) = start(Some(web), ServeOptions::default()).await;
    let request = |path: &'static str, auth: Option<(&'static str, &'static str)>| {
        let addr = daemon.addr;
        async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            get(&mut s, path, auth).await.unwrap()
        }
    };
    let reloaded = |body: &str| {
        (
            sample(body, "workmail_pat_web_config_last_reload_successful", &[]),
            sample(
                body,
                "workmail_pat_web_config_last_reload_success_timestamp_seconds",
                &[],
            ),
        )
    };
    let creds = Some(("prometheus", "s3cret"));
    let first = request("/metrics", creds).await;
    assert_eq!(first.status, 200);
    let (ok, started_at) = reloaded(&first.text());
    assert_eq!(ok, Some(1.0));
    assert!(started_at.unwrap() > 1.7e9, "{started_at:?}");

    let path = pki.path("web.yml");
    let cases: &[(&str, &str)] = &[
        ("emptied in place", ""),
        ("truncated mid-key", "basic_auth_us"),
        ("cut before the users", "basic_auth_users:\n"),
        ("no users where there were some", "basic_auth_users: {}\n"),
        (
            "only headers left",
            "http_server_config:\n  headers:\n    X-Frame-Options: deny\n",
        ),
    ];
    for (case, text) in cases {
        // In place, as a truncating writer or a full disk would leave it.
        std::fs::write(&path, text).unwrap();
        let refused = request("/metrics", None).await;
        assert_eq!(refused.status, 401, "case: {case}: still guarded");
        let reply = request("/metrics", creds).await;
        assert_eq!(reply.status, 200, "case: {case}");
        assert_eq!(reloaded(&reply.text()).0, Some(0.0), "case: {case}");
        assert_eq!(
            reloaded(&reply.text()).1,
            started_at,
            "case: {case}: no new success"
        );
    }
    // A good file again (a new password) takes effect and says so.
    pki.write(
        "web.yml",
        &format!(
            "basic_auth_users:\n  prometheus: '{}'\n",
            bcrypt_hash("n3w")
        ),
    );
    assert_eq!(request("/metrics", creds).await.status, 401);
    let reply = request("/metrics", Some(("prometheus", "n3w"))).await;
    assert_eq!(reply.status, 200);
    let (ok, at) = reloaded(&reply.text());
    assert_eq!(ok, Some(1.0));
    assert!(at >= started_at, "{at:?} {started_at:?}");
    stop(server, daemon).await;
}

#[tokio::test]
async fn a_flood_of_wrong_passwords_is_bounded_and_does_not_delay_a_cached_login() {
    const FLOODERS: usize = 48;
    let pki = Pki::new();
    // A realistic cost, so that every check the flood gets through costs real time.
    let hash = bcrypt::hash("s3cret", 10).unwrap();
    let web = pki.web(&format!("basic_auth_users:\n  prometheus: '{hash}'\n"));
    let (server, daemon) = start(Some(web.clone()), ServeOptions::default()).await;
    let addr = daemon.addr;
    let creds = Some(("prometheus", "s3cret"));
    // Prometheus's first scrape pays for bcrypt once; later ones are cached.
    let mut prom = TcpStream::connect(addr).await.unwrap();
    assert_eq!(get(&mut prom, "/healthz", creds).await.unwrap().status, 200);
    let runs_before = web.auth_stats().bcrypt_runs;

    let stop_flood = tokio_util::sync::CancellationToken::new();
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..FLOODERS {
        let stop_flood = stop_flood.clone();
        flood.spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let mut statuses = Vec::new();
            while !stop_flood.is_cancelled() {
                let password = format!("guess-{i}");
                let reply = get(&mut s, "/healthz", Some(("prometheus", &password)))
                    .await
                    .unwrap();
                statuses.push(reply.status);
            }
            statuses
        });
    }
    wait_for("the flood to start running bcrypt checks", GUARD, || {
        web.auth_stats().bcrypt_runs > runs_before
    })
    .await;
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = std::time::Instant::now();
        let reply = tokio::time::timeout(GUARD, get(&mut prom, "/healthz", creds))
            .await
            .expect("a cached login is answered during the flood")
            .unwrap();
        slowest = slowest.max(started.elapsed());
        assert_eq!(reply.status, 200);
    }
    stop_flood.cancel();
    let statuses: Vec<u16> = tokio::time::timeout(GUARD, flood.join_all())
        .await
        .expect("the flood ends")
        .into_iter()
        .flatten()
        .collect();
    let stats = web.auth_stats();
    println!("cached login during the flood: slowest {slowest:?}; {stats:?}");
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&429),
        "the bound refused some checks outright"
    );
    assert!(stats.refused_busy > 0);
    assert!(
        stats.max_in_flight_per_client <= workmail_pat_monitor::webconfig::MAX_CHECKS_PER_CLIENT,
        "{stats:?}"
    );
    // Generous (real time, a loaded CI machine); the benchmark reports the figure.
    assert!(slowest < Duration::from_secs(1), "{slowest:?}");
    stop(server, daemon).await;
}
