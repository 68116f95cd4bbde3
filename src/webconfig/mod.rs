//! The Prometheus exporter-toolkit web configuration (`--web.config.file`): here, the raw
//! serde shape of the YAML (unknown keys are errors) and the validated [`WebConfig`]; in
//! [`tls`], the rustls server configuration built from it; in [`live`], [`LiveWebConfig`],
//! which re-reads the files when they change (certificates rotate without a restart, and a
//! change that would weaken the configuration is refused); in [`auth`], the basic-auth check.

mod auth;
mod live;
mod tls;

pub use auth::{Auth, AuthStats, MAX_CHECKS_PER_CLIENT, MAX_QUEUED_CHECKS};
pub use live::{LiveWebConfig, Loaded, ReloadStatus};

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

/// A web configuration that cannot be used: where (file, key), and why.
///
/// The same three cases as the main configuration file (unreadable, does not parse, a value is
/// wrong), so one error type serves both files.
pub type WebConfigError = crate::config::ConfigError;

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
}
