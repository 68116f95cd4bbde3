//! The Prometheus exporter-toolkit web configuration (`--web.config.file`): the raw serde shape
//! of the YAML (unknown keys are errors), a validated [`WebConfig`], the rustls server
//! configuration and the basic-auth check built from it, and [`LiveWebConfig`], which re-reads
//! the files when they change so that certificates rotate without a restart.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use serde::Deserialize;
use serde::de::IgnoredAny;
use sha2::Sha256;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::client::danger::HandshakeSignatureValid;
use tokio_rustls::rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use tokio_rustls::rustls::{
    self, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};

/// How often, at most, the files are checked for changes (on new connections and requests).
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// How long a successful basic-auth check is remembered, so that scrapes do not each pay for
/// a bcrypt.
const AUTH_CACHE_TTL: Duration = Duration::from_secs(60);

/// At most this many remembered checks; when full, expired ones go first, then failures, so
/// that a flood of guesses cannot evict the scrapers' successes.
const AUTH_CACHE_MAX: usize = 1024;

/// How long a wrong password is remembered (by HMAC), so that repeating it costs no bcrypt.
const AUTH_FAILURE_TTL: Duration = Duration::from_secs(10);

/// The headers `http_server_config.headers` may set, with their allowed values (empty: any),
/// exactly as exporter-toolkit allows them.
const SETTABLE_HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

/// A web configuration that cannot be used: where, and why.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    /// The web configuration file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The YAML did not parse, or had unknown keys or wrong types.
    #[error("{origin}: {message}")]
    Parse {
        /// The file.
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value is missing, out of range or inconsistent, or a file it names is unusable.
    #[error("{origin}: {key}: {message}")]
    Invalid {
        /// The file.
        origin: String,
        /// The dotted key, e.g. `tls_server_config.cert_file`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

// === The raw shape ===

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    basic_auth_users: Option<BTreeMap<String, String>>,
    // Known to exporter-toolkit but not implemented here: refused by name rather than ignored.
    rate_limit: Option<IgnoredAny>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Option<String>,
    key_file: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
    // Go has ignored it since 1.18; accepted for compatibility and ignored here too.
    #[serde(rename = "prefer_server_cipher_suites")]
    _prefer_server_cipher_suites: Option<bool>,
    // Known to exporter-toolkit but not implemented here.
    cert: Option<IgnoredAny>,
    key: Option<IgnoredAny>,
    client_ca: Option<IgnoredAny>,
    cipher_suites: Option<IgnoredAny>,
    curve_preferences: Option<IgnoredAny>,
    client_allowed_sans: Option<IgnoredAny>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    // This server speaks HTTP/1.1 only, so `http2` has no effect either way.
    #[serde(rename = "http2")]
    _http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

// === The validated configuration ===

/// A validated web configuration. Paths are absolute or relative to the working directory
/// (relative paths in the file are relative to the file's directory, as in exporter-toolkit).
#[derive(Clone, PartialEq, Eq)]
pub struct WebConfig {
    /// TLS settings, when `tls_server_config` is set.
    pub tls: Option<TlsSettings>,
    /// Extra response headers (`http_server_config.headers`).
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// User name → bcrypt hash. Private so that the hashes never reach a log through `Debug`.
    users: BTreeMap<String, String>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls)
            .field("headers", &self.headers)
            .field("basic_auth_users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// `tls_server_config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The server certificate chain (PEM).
    pub cert_file: PathBuf,
    /// The server's private key (PEM).
    pub key_file: PathBuf,
    /// Whether and how client certificates are requested and verified.
    pub client_auth: ClientAuth,
    /// The CAs client certificates must chain to.
    pub client_ca_file: Option<PathBuf>,
    /// The lowest protocol version accepted.
    pub min_version: TlsVersion,
    /// The highest protocol version accepted.
    pub max_version: TlsVersion,
}

/// `client_auth_type`, with Go's `crypto/tls` meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate is requested.
    NoClientCert,
    /// A certificate is requested but neither required nor verified.
    RequestClientCert,
    /// A certificate is required (proof of its key included) but not verified against a CA.
    RequireAnyClientCert,
    /// A certificate is optional, but verified against `client_ca_file` when given.
    VerifyClientCertIfGiven,
    /// A certificate is required and verified against `client_ca_file`.
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    const NAMES: &'static str = "NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert";

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "" | "NoClientCert" => Self::NoClientCert,
            "RequestClientCert" => Self::RequestClientCert,
            // "RequireClientCert" is exporter-toolkit's older spelling.
            "RequireAnyClientCert" | "RequireClientCert" => Self::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => Self::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => Self::RequireAndVerifyClientCert,
            _ => return None,
        })
    }

    fn verifies(self) -> bool {
        matches!(
            self,
            Self::VerifyClientCertIfGiven | Self::RequireAndVerifyClientCert
        )
    }
}

/// A TLS protocol version (rustls implements 1.2 and 1.3 only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

impl TlsVersion {
    fn parse(s: &str) -> Result<Self, String> {
        match s {
            "TLS12" => Ok(Self::Tls12),
            "TLS13" => Ok(Self::Tls13),
            "TLS10" | "TLS11" => Err(format!(
                "{s} is not supported: rustls implements TLS12 and TLS13"
            )),
            _ => Err(format!("unknown version {s:?} (expected TLS12 or TLS13)")),
        }
    }

    fn rustls(self) -> &'static rustls::SupportedProtocolVersion {
        match self {
            Self::Tls12 => &rustls::version::TLS12,
            Self::Tls13 => &rustls::version::TLS13,
        }
    }
}

impl WebConfig {
    /// Reads and validates a web configuration file. The files it names are not read here.
    pub fn load(path: &Path) -> Result<Self, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(
            &text,
            &path.display().to_string(),
            path.parent().unwrap_or(Path::new("")),
        )
    }

    /// Parses and validates the YAML text of a web configuration. `origin` names it in errors;
    /// relative paths are taken relative to `dir`.
    pub fn parse(text: &str, origin: &str, dir: &Path) -> Result<Self, WebConfigError> {
        // An empty document is a valid, empty configuration, as in exporter-toolkit.
        let raw: Raw = if text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            Raw::default()
        } else {
            serde_norway::from_str(text).map_err(|e| WebConfigError::Parse {
                origin: origin.to_owned(),
                message: e.to_string(),
            })?
        };
        let invalid = |key: &str, message: String| WebConfigError::Invalid {
            origin: origin.to_owned(),
            key: key.to_owned(),
            message,
        };
        if raw.rate_limit.is_some() {
            return Err(invalid("rate_limit", "is not supported".to_owned()));
        }
        let tls = raw
            .tls_server_config
            .map(|t| tls_settings(t, dir, &invalid))
            .transpose()?;

        let mut headers = Vec::new();
        for (name, value) in raw
            .http_server_config
            .and_then(|h| h.headers)
            .unwrap_or_default()
        {
            let key = format!("http_server_config.headers.{name}");
            let Some((_, allowed)) = SETTABLE_HEADERS.iter().find(|(n, _)| *n == name) else {
                let names: Vec<&str> = SETTABLE_HEADERS.iter().map(|(n, _)| *n).collect();
                return Err(invalid(
                    &key,
                    format!(
                        "this header cannot be configured (allowed: {})",
                        names.join(", ")
                    ),
                ));
            };
            if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
                return Err(invalid(
                    &key,
                    format!(
                        "invalid value {value:?} (expected one of: {})",
                        allowed.join(", ")
                    ),
                ));
            }
            let v = http::HeaderValue::from_str(&value)
                .map_err(|_| invalid(&key, "not a valid header value".to_owned()))?;
            let n = http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(&key, "not a valid header name".to_owned()))?;
            headers.push((n, v));
        }

        let users = raw.basic_auth_users.unwrap_or_default();
        for (user, hash) in &users {
            let key = format!("basic_auth_users.{user}");
            if user.contains(':') {
                return Err(invalid(
                    &key,
                    "a user name cannot contain ':' (basic auth splits on it)".to_owned(),
                ));
            }
            match hash.parse::<bcrypt::HashParts>() {
                Ok(p) if (4..=31).contains(&p.get_cost()) => {}
                Ok(p) => {
                    return Err(invalid(
                        &key,
                        format!("bcrypt cost {} out of range (4 to 31)", p.get_cost()),
                    ));
                }
                // The message says what is wrong with the format, never the hash itself.
                Err(e) => return Err(invalid(&key, format!("not a bcrypt hash: {e}"))),
            }
        }
        Ok(Self {
            tls,
            headers,
            users,
        })
    }

    /// Whether `basic_auth_users` protects the endpoints.
    pub fn basic_auth(&self) -> bool {
        !self.users.is_empty()
    }

    /// The files whose changes trigger a reload, besides the web configuration itself.
    fn files(&self) -> Vec<PathBuf> {
        let Some(t) = &self.tls else {
            return Vec::new();
        };
        let mut v = vec![t.cert_file.clone(), t.key_file.clone()];
        v.extend(t.client_ca_file.clone());
        v
    }
}

fn tls_settings(
    t: RawTls,
    dir: &Path,
    invalid: &dyn Fn(&str, String) -> WebConfigError,
) -> Result<TlsSettings, WebConfigError> {
    let unsupported = [
        ("cert", t.cert.is_some(), "use cert_file"),
        ("key", t.key.is_some(), "use key_file"),
        ("client_ca", t.client_ca.is_some(), "use client_ca_file"),
        (
            "cipher_suites",
            t.cipher_suites.is_some(),
            "rustls's default suites are used",
        ),
        (
            "curve_preferences",
            t.curve_preferences.is_some(),
            "rustls's default groups are used",
        ),
        ("client_allowed_sans", t.client_allowed_sans.is_some(), ""),
    ];
    for (key, set, hint) in unsupported {
        if set {
            let sep = if hint.is_empty() { "" } else { "; " };
            return Err(invalid(
                &format!("tls_server_config.{key}"),
                format!("is not supported{sep}{hint}"),
            ));
        }
    }
    // Empty strings count as unset, as in exporter-toolkit.
    let path = |v: Option<String>| v.filter(|s| !s.is_empty()).map(|s| dir.join(s));
    // Unlike exporter-toolkit, which serves plain HTTP when `tls_server_config` names no
    // files, a present but incomplete section is an error: TLS is never silently off.
    let cert_file = path(t.cert_file).ok_or_else(|| {
        invalid(
            "tls_server_config.cert_file",
            "missing (required with tls_server_config)".to_owned(),
        )
    })?;
    let key_file = path(t.key_file).ok_or_else(|| {
        invalid(
            "tls_server_config.key_file",
            "missing (required with tls_server_config)".to_owned(),
        )
    })?;
    let name = t.client_auth_type.unwrap_or_default();
    let client_auth = ClientAuth::parse(&name).ok_or_else(|| {
        invalid(
            "tls_server_config.client_auth_type",
            format!("unknown value {name:?} (expected {})", ClientAuth::NAMES),
        )
    })?;
    let client_ca_file = path(t.client_ca_file);
    match (client_auth, &client_ca_file) {
        (ClientAuth::NoClientCert, Some(_)) => {
            return Err(invalid(
                "tls_server_config.client_ca_file",
                "set without a client_auth_type that requests client certificates".to_owned(),
            ));
        }
        (a, None) if a.verifies() => {
            return Err(invalid(
                "tls_server_config.client_ca_file",
                format!("missing (required with client_auth_type {a:?})"),
            ));
        }
        _ => {}
    }
    let version = |key: &str, v: Option<String>, default| match v {
        None => Ok(default),
        Some(s) => {
            TlsVersion::parse(&s).map_err(|m| invalid(&format!("tls_server_config.{key}"), m))
        }
    };
    let min_version = version("min_version", t.min_version, TlsVersion::Tls12)?;
    let max_version = version("max_version", t.max_version, TlsVersion::Tls13)?;
    if min_version > max_version {
        return Err(invalid(
            "tls_server_config.min_version",
            "higher than max_version".to_owned(),
        ));
    }
    Ok(TlsSettings {
        cert_file,
        key_file,
        client_auth,
        client_ca_file,
        min_version,
        max_version,
    })
}

// === TLS ===

impl TlsSettings {
    /// Reads the certificate, key and CA files and builds the rustls server configuration.
    pub fn server_config(&self, origin: &str) -> Result<Arc<ServerConfig>, WebConfigError> {
        let invalid = |key: &str, message: String| WebConfigError::Invalid {
            origin: origin.to_owned(),
            key: format!("tls_server_config.{key}"),
            message,
        };
        let read = |key: &str, p: &Path| {
            std::fs::read(p).map_err(|e| invalid(key, format!("{}: cannot read: {e}", p.display())))
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());

        let pem = read("cert_file", &self.cert_file)?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid("cert_file", format!("{}: {e}", self.cert_file.display())))?;
        if certs.is_empty() {
            return Err(invalid(
                "cert_file",
                format!("{}: no PEM certificate found", self.cert_file.display()),
            ));
        }
        let pem = read("key_file", &self.key_file)?;
        let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
            let e = match e {
                rustls::pki_types::pem::Error::NoItemsFound => "no PEM private key found".into(),
                e => e.to_string(),
            };
            invalid("key_file", format!("{}: {e}", self.key_file.display()))
        })?;

        let roots = match &self.client_ca_file {
            None => None,
            Some(ca) => {
                let bad = |e: &dyn std::fmt::Display| {
                    invalid("client_ca_file", format!("{}: {e}", ca.display()))
                };
                let pem = read("client_ca_file", ca)?;
                let mut roots = RootCertStore::empty();
                for c in CertificateDer::pem_slice_iter(&pem) {
                    roots.add(c.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
                }
                if roots.is_empty() {
                    return Err(bad(&"no PEM certificate found"));
                }
                Some(roots)
            }
        };
        let verifier: Arc<dyn ClientCertVerifier> = match (self.client_auth, roots) {
            (ClientAuth::NoClientCert, _) => WebPkiClientVerifier::no_client_auth(),
            (a @ (ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert), roots) => {
                // The CAs, when given, only hint which certificate to send.
                let hints = roots.map(|r| r.subjects()).unwrap_or_default();
                Arc::new(AnyClientCert::new(a, hints, &provider))
            }
            (a, Some(roots)) => {
                let builder =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
                let builder = if a == ClientAuth::VerifyClientCertIfGiven {
                    builder.allow_unauthenticated()
                } else {
                    builder
                };
                builder
                    .build()
                    .map_err(|e| invalid("client_ca_file", e.to_string()))?
            }
            // Validation requires a CA for the verifying modes; refuse rather than trust all.
            (_, None) => return Err(invalid("client_ca_file", "missing".to_owned())),
        };

        let versions: Vec<&'static rustls::SupportedProtocolVersion> =
            [TlsVersion::Tls12, TlsVersion::Tls13]
                .into_iter()
                .filter(|v| (self.min_version..=self.max_version).contains(v))
                .map(TlsVersion::rustls)
                .collect();
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| invalid("min_version", e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .map_err(|e| {
                invalid(
                    "key_file",
                    format!(
                        "{} cannot be used with the certificate in {}: {e}",
                        self.key_file.display(),
                        self.cert_file.display()
                    ),
                )
            })?;
        // Only HTTP/1.1 is served: say so, so that clients offering h2 fall back.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Go's `RequestClientCert` and `RequireAnyClientCert`: a client certificate is asked for
/// (or required), and the client must prove it holds its key, but the chain is not verified.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl AnyClientCert {
    fn new(auth: ClientAuth, hints: Vec<DistinguishedName>, provider: &CryptoProvider) -> Self {
        Self {
            mandatory: auth == ClientAuth::RequireAnyClientCert,
            hints,
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

// === The live configuration ===

/// One loaded generation of the web configuration: the validated file and what was built
/// from the files it names.
pub struct Loaded {
    /// The configuration.
    pub config: WebConfig,
    /// The TLS acceptor, when TLS is on.
    pub tls: Option<TlsAcceptor>,
}

/// The outcome of reading the web configuration and the files it names, with each file's
/// stamp taken just before it was read, so that a change made meanwhile shows at the next
/// check. `paths` are the files the outcome depends on (the web configuration first).
struct Reading {
    paths: Vec<PathBuf>,
    stamps: Vec<Option<FileStamp>>,
    result: Result<Loaded, WebConfigError>,
}

impl Reading {
    fn read(path: &Path) -> Self {
        let mut paths = vec![path.to_owned()];
        let mut stamps = stamp(&paths);
        let config = match WebConfig::load(path) {
            Ok(c) => c,
            Err(e) => {
                return Self {
                    paths,
                    stamps,
                    result: Err(e),
                };
            }
        };
        let files = config.files();
        stamps.extend(stamp(&files));
        paths.extend(files);
        let result = match &config.tls {
            Some(t) => t
                .server_config(&path.display().to_string())
                .map(|c| Some(TlsAcceptor::from(c))),
            None => Ok(None),
        }
        .map(|tls| Loaded { config, tls });
        Self {
            paths,
            stamps,
            result,
        }
    }
}

/// What identifies a version of a file without reading it: a replaced file (a rename, or a
/// Kubernetes Secret volume's symlink swap) has a new inode; one rewritten in place a new
/// mtime, ctime or size.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    ids: (u64, u64, i64, i64),
}

fn stamp(paths: &[PathBuf]) -> Vec<Option<FileStamp>> {
    paths
        .iter()
        .map(|p| {
            // `metadata` follows symlinks, so a swapped link shows as a changed file.
            let m = std::fs::metadata(p).ok()?;
            Some(FileStamp {
                modified: m.modified().ok(),
                len: m.len(),
                #[cfg(unix)]
                ids: {
                    use std::os::unix::fs::MetadataExt as _;
                    (m.dev(), m.ino(), m.ctime(), m.ctime_nsec())
                },
            })
        })
        .collect()
}

/// How the last reload of the web configuration went, as Prometheus reports its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadStatus {
    /// Whether the last attempt to load a changed file succeeded.
    pub successful: bool,
    /// When a configuration last took effect (the start counts).
    pub last_success: SystemTime,
}

struct Current {
    active: Arc<Loaded>,
    reload: ReloadStatus,
    /// The files watched (the web configuration first) and their stamps when last read,
    /// successfully or not.
    paths: Vec<PathBuf>,
    stamps: Vec<Option<FileStamp>>,
    checked: Instant,
}

/// The web configuration in force, re-read when the file or the certificate, key or CA
/// files it names change. Checks run on new connections and requests, at most once per
/// check interval (a few `stat` calls). A change that does not load (a bad file, a key that
/// does not match its certificate, TLS turned on or off) is logged as an error and the last
/// good configuration stays in force; it is tried again when the files change again.
pub struct LiveWebConfig {
    path: PathBuf,
    check_interval: Duration,
    current: Mutex<Current>,
    auth: AuthCache,
}

impl std::fmt::Debug for LiveWebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveWebConfig")
            .field("path", &self.path)
            .field("check_interval", &self.check_interval)
            .finish_non_exhaustive()
    }
}

impl LiveWebConfig {
    /// Loads the web configuration and every file it names; any problem is an error.
    pub fn load(path: &Path) -> Result<Self, WebConfigError> {
        let Reading {
            paths,
            stamps,
            result,
        } = Reading::read(path);
        Ok(Self {
            path: path.to_owned(),
            check_interval: DEFAULT_CHECK_INTERVAL,
            current: Mutex::new(Current {
                active: Arc::new(result?),
                reload: ReloadStatus {
                    successful: true,
                    last_success: SystemTime::now(),
                },
                paths,
                stamps,
                checked: Instant::now(),
            }),
            auth: AuthCache::new(),
        })
    }

    /// Sets how often, at most, the files are checked (zero: on every connection and
    /// request, as tests do).
    pub fn with_check_interval(mut self, interval: Duration) -> Self {
        self.check_interval = interval;
        self
    }

    fn lock(&self) -> MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The configuration in force, after a check for changed files when one is due.
    pub fn current(&self) -> Arc<Loaded> {
        let due = self.lock().checked.elapsed() >= self.check_interval;
        if due {
            // A failure is logged by `check` and leaves the current configuration in force.
            let _ = self.check();
        }
        self.lock().active.clone()
    }

    /// How the last reload went.
    pub fn reload_status(&self) -> ReloadStatus {
        self.lock().reload
    }

    /// Checks the files now and reloads them if any changed since they were last read.
    /// Returns whether a new configuration took effect. On error the current configuration
    /// stays in force and the error is also logged.
    pub fn check(&self) -> Result<bool, WebConfigError> {
        let paths = {
            let mut cur = self.lock();
            cur.checked = Instant::now();
            cur.paths.clone()
        };
        let now = stamp(&paths);
        {
            let mut cur = self.lock();
            if cur.stamps == now {
                return Ok(false);
            }
            // Claimed: a concurrent check now sees no change and does not reload too.
            cur.stamps = now;
        }
        let reading = Reading::read(&self.path);
        let (had_tls, had_users) = {
            let cur = self.lock();
            (cur.active.tls.is_some(), cur.active.config.basic_auth())
        };
        let loaded = reading.result.and_then(|a| {
            let refuse = |key: &str, message: String| WebConfigError::Invalid {
                origin: self.path.display().to_string(),
                key: key.to_owned(),
                message,
            };
            if had_tls != a.tls.is_some() {
                return Err(refuse(
                    "tls_server_config",
                    format!(
                        "TLS cannot be turned {} without a restart",
                        if had_tls { "off" } else { "on" }
                    ),
                ));
            }
            // An emptied or half-written file must not open every route: removing
            // authentication takes a restart.
            if had_users && !a.config.basic_auth() {
                return Err(refuse(
                    "basic_auth_users",
                    "the new file has no users, which would turn authentication off (an empty or partial file?); that needs a restart".to_owned(),
                ));
            }
            Ok(a)
        });
        // Watch what this outcome depends on, good or bad: a bad file is read again only once
        // something changes.
        let watch = |cur: &mut Current| {
            cur.paths = reading.paths;
            cur.stamps = reading.stamps;
        };
        match loaded {
            Ok(active) => {
                tracing::info!(
                    file = %self.path.display(),
                    tls = active.tls.is_some(),
                    basic_auth_users = active.config.users.len(),
                    "web configuration reloaded"
                );
                let mut cur = self.lock();
                watch(&mut cur);
                cur.active = Arc::new(active);
                cur.reload = ReloadStatus {
                    successful: true,
                    last_success: SystemTime::now(),
                };
                Ok(true)
            }
            Err(e) => {
                let mut cur = self.lock();
                watch(&mut cur);
                cur.reload.successful = false;
                drop(cur);
                tracing::error!(error = %e, "web configuration not reloaded; the previous one stays in force");
                Err(e)
            }
        }
    }

    /// Whether a request with this `Authorization` header, from `client`, may proceed under
    /// `active`: always when no users are configured; otherwise only with a user's right
    /// password. A success is remembered, so a scraper pays for bcrypt once per
    /// [`AUTH_CACHE_TTL`], never behind anyone else's checks. Checks that need bcrypt are
    /// bounded: at most [`MAX_CHECKS_PER_CLIENT`] per client address in flight and
    /// [`MAX_QUEUED_CHECKS`] waiting in all; beyond that the answer is [`Auth::Busy`] at once,
    /// without hashing, so a flood of wrong passwords costs one core at most and delays no
    /// one whose login is cached.
    pub async fn authorize(
        &self,
        active: &Loaded,
        header: Option<&http::HeaderValue>,
        client: Option<IpAddr>,
    ) -> Auth {
        if active.config.users.is_empty() {
            return Auth::Allowed;
        }
        let Some((user, password)) = header.and_then(parse_basic) else {
            return Auth::Denied;
        };
        let users = &active.config.users;
        let (hash, known) = match std::str::from_utf8(&user).ok().and_then(|u| users.get(u)) {
            Some(h) => (h.clone(), true),
            // An unknown user still costs a bcrypt, at a configured cost, so that timing does
            // not tell unknown users from wrong passwords. The result is ignored.
            None => match users.values().next() {
                Some(h) => (h.clone(), false),
                None => return Auth::Denied,
            },
        };
        let key = self.auth.key(&user, &hash, &password);
        let cached = |cache: &AuthCache| match cache.hit(&key) {
            Some(true) if known => Some(Auth::Allowed),
            Some(_) => Some(Auth::Denied),
            None => None,
        };
        if let Some(answer) = cached(&self.auth) {
            return answer;
        }
        let Some(_slot) = self.auth.admit(client, key) else {
            return Auth::Busy;
        };
        // bcrypt is slow on purpose: run it off the async workers, one at a time, so that a
        // flood of wrong passwords costs at most one core.
        let Ok(_permit) = self.auth.gate.acquire().await else {
            return Auth::Denied;
        };
        // Concurrent checks of the same credentials wait here; one bcrypt serves all.
        if let Some(answer) = cached(&self.auth) {
            return answer;
        }
        self.auth.runs.fetch_add(1, Ordering::Relaxed);
        let verified = tokio::task::spawn_blocking(move || {
            // Go's bcrypt refuses passwords over 72 bytes rather than truncating them.
            password.len() <= 72 && bcrypt::verify(&password, &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        let ok = verified && known;
        self.auth.insert(key, ok);
        if ok { Auth::Allowed } else { Auth::Denied }
    }

    /// What basic auth has cost so far.
    pub fn auth_stats(&self) -> AuthStats {
        AuthStats {
            bcrypt_runs: self.auth.runs.load(Ordering::Relaxed),
            refused_busy: self.auth.busy.load(Ordering::Relaxed),
            max_in_flight_per_client: self.auth.max_per_client.load(Ordering::Relaxed),
        }
    }
}

/// The answer of [`LiveWebConfig::authorize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Proceed.
    Allowed,
    /// 401: no or wrong credentials.
    Denied,
    /// 429: too many checks in flight from this client, or in all.
    Busy,
}

/// Counters of basic-auth work, for tests and diagnosis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuthStats {
    /// bcrypt verifications run.
    pub bcrypt_runs: u64,
    /// Checks refused because too many were in flight.
    pub refused_busy: u64,
    /// The most checks one client address had in flight at once.
    pub max_in_flight_per_client: usize,
}

/// Checks that need bcrypt, in flight (waiting or running) from one client address.
pub const MAX_CHECKS_PER_CLIENT: usize = 2;
/// Checks that need bcrypt, in flight from all clients together.
pub const MAX_QUEUED_CHECKS: usize = 32;

/// A check admitted past the bounds; gives its place back when dropped. A check of
/// credentials already being checked joins that check and takes no place of its own.
struct Slot<'a> {
    cache: &'a AuthCache,
    client: Option<IpAddr>,
    key: [u8; 32],
    joined: bool,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut inflight = self
            .cache
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = inflight.keys.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                inflight.keys.remove(&self.key);
            }
        }
        if self.joined {
            return;
        }
        inflight.total = inflight.total.saturating_sub(1);
        if let Some(ip) = self.client
            && let Some(n) = inflight.per_client.get_mut(&ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                inflight.per_client.remove(&ip);
            }
        }
    }
}

/// bcrypt checks in flight: in all, per client address, and per credentials.
#[derive(Default)]
struct InFlight {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
    keys: HashMap<[u8; 32], usize>,
}

/// Splits `Basic base64(user:password)`.
fn parse_basic(v: &http::HeaderValue) -> Option<(Vec<u8>, Vec<u8>)> {
    let v = v.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let colon = raw.iter().position(|b| *b == b':')?;
    Some((raw[..colon].to_vec(), raw[colon + 1..].to_vec()))
}

/// Basic-auth checks, remembered for [`AUTH_CACHE_TTL`] (failures for [`AUTH_FAILURE_TTL`]),
/// and the bounds on checks in flight. Entries are keyed by an
/// HMAC (with a per-process random key) of user, hash and password, so neither passwords
/// nor fast unkeyed hashes of them are kept.
struct AuthCache {
    secret: [u8; 32],
    entries: Mutex<HashMap<[u8; 32], (Instant, bool)>>,
    gate: tokio::sync::Semaphore,
    inflight: Mutex<InFlight>,
    runs: AtomicU64,
    busy: AtomicU64,
    max_per_client: AtomicUsize,
}

impl AuthCache {
    fn new() -> Self {
        let mut secret = [0u8; 32];
        // Should the system's random source fail, the cache key is still an HMAC of the
        // password; only its unpredictability is lost.
        let _ = rustls::crypto::aws_lc_rs::default_provider()
            .secure_random
            .fill(&mut secret);
        Self {
            secret,
            entries: Mutex::new(HashMap::new()),
            gate: tokio::sync::Semaphore::new(1),
            inflight: Mutex::new(InFlight::default()),
            runs: AtomicU64::new(0),
            busy: AtomicU64::new(0),
            max_per_client: AtomicUsize::new(0),
        }
    }

    /// A place for one bcrypt check of `key` from `client`, within the bounds; `None` when
    /// full.
    fn admit(&self, client: Option<IpAddr>, key: [u8; 32]) -> Option<Slot<'_>> {
        let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = inflight.keys.get_mut(&key) {
            *n += 1;
            return Some(Slot {
                cache: self,
                client,
                key,
                joined: true,
            });
        }
        let mine = client.map_or(0, |ip| inflight.per_client.get(&ip).copied().unwrap_or(0));
        if inflight.total >= MAX_QUEUED_CHECKS || mine >= MAX_CHECKS_PER_CLIENT {
            self.busy.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        inflight.total += 1;
        inflight.keys.insert(key, 1);
        if let Some(ip) = client {
            let n = inflight.per_client.entry(ip).or_default();
            *n += 1;
            self.max_per_client.fetch_max(*n, Ordering::Relaxed);
        }
        Some(Slot {
            cache: self,
            client,
            key,
            joined: false,
        })
    }

    fn key(&self, user: &[u8], hash: &str, password: &[u8]) -> [u8; 32] {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes keys of any length");
        for part in [user, hash.as_bytes(), password] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 32], (Instant, bool)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh answer for these credentials: `Some(true)` (right), `Some(false)` (wrong,
    /// remembered for [`AUTH_FAILURE_TTL`] so that repeating a guess costs no bcrypt).
    fn hit(&self, key: &[u8; 32]) -> Option<bool> {
        self.lock().get(key).and_then(|(at, ok)| {
            let ttl = if *ok {
                AUTH_CACHE_TTL
            } else {
                AUTH_FAILURE_TTL
            };
            (at.elapsed() < ttl).then_some(*ok)
        })
    }

    fn insert(&self, key: [u8; 32], ok: bool) {
        let mut entries = self.lock();
        if entries.len() >= AUTH_CACHE_MAX {
            entries.retain(|_, (at, _)| at.elapsed() < AUTH_CACHE_TTL);
            if entries.len() >= AUTH_CACHE_MAX {
                // Keep the successes: a flood of guesses must not evict the scrapers.
                entries.retain(|_, (_, ok)| *ok);
                if entries.len() >= AUTH_CACHE_MAX {
                    entries.clear();
                }
            }
        }
        entries.insert(key, (Instant::now(), ok));
    }
}

impl crate::httpd::TlsSource for LiveWebConfig {
    fn tls_acceptor(&self) -> Option<TlsAcceptor> {
        self.current().tls.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash() -> String {
        bcrypt::hash("hunter2", 4).unwrap()
    }

    fn parse(text: &str) -> Result<WebConfig, String> {
        WebConfig::parse(text, "web.yml", Path::new("/etc/wpm")).map_err(|e| e.to_string())
    }

    #[test]
    fn valid_configurations() {
        let hash = hash();
        let c = parse("").unwrap();
        assert!(c.tls.is_none() && !c.basic_auth() && c.headers.is_empty());

        let c = parse(&format!(
            "tls_server_config:\n  cert_file: tls.crt\n  key_file: /abs/tls.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  min_version: TLS13\n  prefer_server_cipher_suites: true\nhttp_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000\nbasic_auth_users:\n  prometheus: '{hash}'\n"
        ))
        .unwrap();
        let t = c.tls.as_ref().unwrap();
        assert_eq!(t.cert_file, Path::new("/etc/wpm/tls.crt"));
        assert_eq!(t.key_file, Path::new("/abs/tls.key"));
        assert_eq!(
            t.client_ca_file.as_deref(),
            Some(Path::new("/etc/wpm/ca.crt"))
        );
        assert_eq!(t.client_auth, ClientAuth::RequireAndVerifyClientCert);
        assert_eq!(
            (t.min_version, t.max_version),
            (TlsVersion::Tls13, TlsVersion::Tls13)
        );
        assert!(c.basic_auth());
        assert_eq!(c.headers.len(), 2);
        // Hashes never show in Debug output.
        assert!(!format!("{c:?}").contains(&hash));
    }

    #[test]
    fn errors_name_the_key() {
        let hash = hash();
        let tls = "tls_server_config:\n  cert_file: c\n  key_file: k\n";
        let cases: &[(&str, String, &str)] = &[
            (
                "unknown top-level key",
                "tls_config: {}\n".into(),
                "unknown field `tls_config`",
            ),
            (
                "unknown tls key",
                format!("{tls}  cert_fille: x\n"),
                "unknown field `cert_fille`",
            ),
            (
                "missing cert",
                "tls_server_config:\n  key_file: k\n".into(),
                "web.yml: tls_server_config.cert_file: missing",
            ),
            (
                "empty tls section",
                "tls_server_config: {}\n".into(),
                "tls_server_config.cert_file: missing",
            ),
            (
                "missing key",
                "tls_server_config:\n  cert_file: c\n".into(),
                "tls_server_config.key_file: missing",
            ),
            (
                "client auth",
                format!("{tls}  client_auth_type: Sometimes\n"),
                "tls_server_config.client_auth_type: unknown value \"Sometimes\"",
            ),
            (
                "verify without CA",
                format!("{tls}  client_auth_type: RequireAndVerifyClientCert\n"),
                "tls_server_config.client_ca_file: missing",
            ),
            (
                "CA without client auth",
                format!("{tls}  client_ca_file: ca\n"),
                "tls_server_config.client_ca_file: set without",
            ),
            (
                "old TLS",
                format!("{tls}  min_version: TLS11\n"),
                "tls_server_config.min_version: TLS11 is not supported",
            ),
            (
                "bogus version",
                format!("{tls}  max_version: SSL3\n"),
                "tls_server_config.max_version: unknown version",
            ),
            (
                "min above max",
                format!("{tls}  min_version: TLS13\n  max_version: TLS12\n"),
                "tls_server_config.min_version: higher than max_version",
            ),
            (
                "inline cert",
                format!("{tls}  cert: abc\n"),
                "tls_server_config.cert: is not supported",
            ),
            (
                "SAN allow-list",
                format!("{tls}  client_allowed_sans: [a]\n"),
                "tls_server_config.client_allowed_sans: is not supported",
            ),
            (
                "rate limit",
                "rate_limit:\n  burst: 1\n".into(),
                "rate_limit: is not supported",
            ),
            (
                "refused header",
                "http_server_config:\n  headers:\n    Content-Type: text/html\n".into(),
                "http_server_config.headers.Content-Type: this header cannot be configured",
            ),
            (
                "header value",
                "http_server_config:\n  headers:\n    X-Frame-Options: allow\n".into(),
                "http_server_config.headers.X-Frame-Options: invalid value \"allow\"",
            ),
            (
                "not a hash",
                "basic_auth_users:\n  alice: secret\n".into(),
                "basic_auth_users.alice: not a bcrypt hash",
            ),
            (
                "colon in user",
                format!("basic_auth_users:\n  'a:b': '{hash}'\n"),
                "basic_auth_users.a:b: a user name cannot contain ':'",
            ),
            (
                "wrong type",
                "basic_auth_users: [a]\n".into(),
                "web.yml: basic_auth_users: invalid type",
            ),
        ];
        for (case, text, want) in cases {
            let err = parse(text)
                .err()
                .unwrap_or_else(|| panic!("case: {case}: accepted"));
            assert!(err.contains(want), "case: {case}: {err:?} lacks {want:?}");
            assert!(err.starts_with("web.yml: "), "case: {case}: {err}");
            assert!(
                !err.contains("secret"),
                "case: {case}: echoes the value: {err}"
            );
        }
    }

    #[test]
    fn basic_credentials_parse() {
        let h = |s: &str| http::HeaderValue::from_str(s).unwrap();
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        type Creds<'a> = Option<(&'a str, &'a str)>;
        let cases: &[(&str, String, Creds)] = &[
            ("plain", format!("Basic {}", b64("u:p")), Some(("u", "p"))),
            (
                "scheme case",
                format!("bAsIc {}", b64("u:p:q")),
                Some(("u", "p:q")),
            ),
            (
                "empty password",
                format!("Basic {}", b64("u:")),
                Some(("u", "")),
            ),
            ("no colon", format!("Basic {}", b64("up")), None),
            ("bearer", "Bearer abc".to_owned(), None),
            ("bad base64", "Basic %%%".to_owned(), None),
        ];
        for (case, header, want) in cases {
            let got = parse_basic(&h(header));
            let want = want.map(|(u, p)| (u.as_bytes().to_vec(), p.as_bytes().to_vec()));
            assert_eq!(got, want, "case: {case}");
        }
    }
}
