//! The rustls server configuration built from `tls_server_config`, and the client
//! certificate verifier of `RequireAnyClientCert`.

use super::*;

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
