//! The TLS client: which roots are trusted, whether verification is skipped, and what a failed
//! handshake is called. rustls with the ring provider: pure Rust plus a little C and assembly
//! that `cc` builds, so no cmake or system OpenSSL on a fresh machine.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::crypto::{self, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    self, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// What `--ca-cert` and `--insecure` asked for.
#[derive(Debug, Default)]
pub struct TlsSettings {
    /// Certificates trusted in addition to the system's roots.
    extra_roots: Vec<CertificateDer<'static>>,
    /// `--insecure`: any certificate is accepted (the handshake's signatures are still checked).
    pub insecure: bool,
    /// Built on first use: plain-ws runs never read the system's store.
    config: OnceLock<Arc<ClientConfig>>,
    /// How many system roots were found, once the configuration is built.
    system_roots: OnceLock<usize>,
}

/// The ring provider: it builds with `cc` alone, where aws-lc-rs adds minutes of C to every
/// build. rustls 0.23.48 deprecates it for lacking post-quantum key exchange, which a test
/// client can do without; the server side uses the same provider.
#[allow(deprecated)]
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(crypto::ring::default_provider())
}

/// A `--ca-cert` file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaCertError {
    #[error("--ca-cert {path}: cannot read it: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("--ca-cert {path}: {reason}; give a PEM file with one or more `-----BEGIN CERTIFICATE-----` blocks")]
    NotPem { path: PathBuf, reason: String },
}

impl TlsSettings {
    pub fn new(ca_files: &[PathBuf], insecure: bool) -> Result<TlsSettings, CaCertError> {
        let mut extra_roots = Vec::new();
        for path in ca_files {
            extra_roots.extend(read_certificates(path)?);
        }
        Ok(TlsSettings { extra_roots, insecure, config: OnceLock::new(), system_roots: OnceLock::new() })
    }

    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.config.get_or_init(|| Arc::new(self.build())).clone()
    }

    fn build(&self) -> ClientConfig {
        let provider = provider();
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        let (system, _) = roots.add_parsable_certificates(native.certs);
        let _ = self.system_roots.set(system);
        for certificate in &self.extra_roots {
            // Checked when the file was read; a certificate rustls cannot use as a root is
            // reported then, so this cannot fail for a reason the user could fix here.
            let _ = roots.add(certificate.clone());
        }
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default protocol versions");
        let mut config = builder.with_root_certificates(roots).with_no_client_auth();
        if self.insecure {
            config.dangerous().set_certificate_verifier(Arc::new(AnyCertificate(provider)));
        }
        // WebSocket upgrades are HTTP/1.1; a proxy that also speaks h2 must not pick it.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config
    }

    /// A hint for an unknown-issuer failure: where trust could come from.
    fn roots_hint(&self) -> String {
        match (self.system_roots.get().copied().unwrap_or(0), self.extra_roots.len()) {
            (0, 0) => "no system roots were found (install ca-certificates) and no --ca-cert was given".into(),
            (_, 0) => "pass the server's CA with --ca-cert FILE, or --insecure to skip verification".into(),
            (_, n) => format!("the {n} certificate(s) from --ca-cert did not sign it either"),
        }
    }
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, CaCertError> {
    let text =
        std::fs::read(path).map_err(|e| CaCertError::Unreadable { path: path.to_path_buf(), reason: e.to_string() })?;
    let not_pem = |reason: String| CaCertError::NotPem { path: path.to_path_buf(), reason };
    let certificates: Vec<_> = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<_, _>>()
        .map_err(|e| not_pem(format!("not valid PEM ({e})")))?;
    if certificates.is_empty() {
        return Err(not_pem("no certificate in it".into()));
    }
    let mut probe = RootCertStore::empty();
    for (index, certificate) in certificates.iter().enumerate() {
        probe.add(certificate.clone()).map_err(|e| not_pem(format!("certificate {} is not usable: {e}", index + 1)))?;
    }
    Ok(certificates)
}

/// `--insecure`: trusts any certificate, but still checks that the server holds its key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The name the certificate must carry, from the URL's host (an IP address is checked against
/// the certificate's IP entries, as browsers do).
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string()).map_err(|e| format!("{host:?} cannot be used as a TLS server name: {e}"))
}

/// What went wrong in a TLS handshake, in the words a user acts on; the first words name the
/// cause (unknown issuer, name mismatch, expired, handshake alert).
pub fn describe_failure(error: &io::Error, host: &str, settings: &TlsSettings) -> String {
    let Some(tls) = error.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) else {
        return match error.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => {
                format!("the connection ended during the TLS handshake ({error}); is the endpoint TLS at all?")
            }
            _ => format!("TLS handshake failed: {error}"),
        };
    };
    match tls {
        rustls::Error::InvalidCertificate(certificate) => match certificate {
            CertificateError::UnknownIssuer => {
                format!(
                    "unknown issuer: the certificate of {host} is not signed by a trusted root; {}",
                    settings.roots_hint()
                )
            }
            CertificateError::NotValidForName => format!("name mismatch: the certificate is not valid for {host}"),
            CertificateError::NotValidForNameContext { presented, .. } => format!(
                "name mismatch: the certificate is not valid for {host}; it names {}",
                if presented.is_empty() { "no host".to_string() } else { presented.join(", ") }
            ),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("expired: the certificate of {host} is past its validity ({certificate})")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!("not yet valid: the certificate of {host} ({certificate}); check this machine's clock")
            }
            other => format!("invalid certificate: {other}"),
        },
        rustls::Error::AlertReceived(alert) => {
            format!("handshake alert: the server sent {alert:?} and ended the TLS handshake")
        }
        rustls::Error::InvalidMessage(_) => {
            format!("handshake failed: the server did not answer with TLS ({tls}); is it a plain ws:// endpoint?")
        }
        other => format!("handshake failed: {other}"),
    }
}
