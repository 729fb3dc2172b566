//! HTTPS: the `[tls]` certificate chain and key (PEM), a rustls server
//! limited to TLS 1.3 and 1.2 that offers HTTP/2 and HTTP/1.1 by ALPN, and a
//! certificate that can be replaced while the gateway runs (SIGHUP).
//!
//! The certificate is chosen per handshake by [`Certificates`], so a reload
//! changes what new connections see and never touches open ones: a TLS
//! session keeps the keys it negotiated. A reload that fails keeps the
//! certificate being served: a half-written file during a renewal must not
//! take HTTPS down.

use std::{
    path::PathBuf,
    sync::{Arc, PoisonError, RwLock},
};

use rustls::{
    ServerConfig,
    crypto::{CryptoProvider, aws_lc_rs},
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

/// ALPN, in the server's order of preference.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Why the certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file named by `tls.cert` or `tls.key` is unreadable, is not PEM,
    /// holds nothing usable, or the key does not belong to the certificate.
    #[error("{key}: {}: {message}", path.display())]
    File {
        /// The setting naming the file: `tls.cert` or `tls.key`.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// rustls refused the server configuration.
    #[error("tls: {0}")]
    Config(rustls::Error),
}

/// The certificate being served, replaceable while connections are open.
#[derive(Debug)]
pub(crate) struct Certificates {
    files: TlsConfig,
    provider: Arc<CryptoProvider>,
    // A plain lock, not a lock-free swap: it is read once per handshake and
    // written once per reload, and only to swap an `Arc`.
    current: RwLock<Arc<CertifiedKey>>,
}

impl Certificates {
    /// Reads the files again and serves the new certificate to new
    /// connections. On failure the current certificate stays and the error
    /// (naming the file) is logged and returned.
    pub(crate) fn reload(&self) -> Result<(), TlsError> {
        match load(&self.files, &self.provider) {
            Ok(key) => {
                let fingerprint = fingerprint(&key);
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
                tracing::info!(
                    target: "mcp_guard",
                    cert = %self.files.cert.display(),
                    sha256 = fingerprint,
                    "tls_certificate_reloaded"
                );
                Ok(())
            }
            Err(e) => {
                tracing::error!(target: "mcp_guard", error = %e, "tls_certificate_reload_failed");
                Err(e)
            }
        }
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // A poisoned lock still holds a whole certificate: writers only swap an `Arc`.
        Some(Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner)))
    }
}

/// Loads the certificate and key and builds the acceptor that serves them.
pub(crate) fn acceptor(files: &TlsConfig) -> Result<(TlsAcceptor, Arc<Certificates>), TlsError> {
    // aws-lc-rs, the provider the rest of the workspace uses; passed
    // explicitly so no process-wide default provider has to be installed.
    let provider = Arc::new(aws_lc_rs::default_provider());
    let key = load(files, &provider)?;
    tracing::info!(target: "mcp_guard", cert = %files.cert.display(), sha256 = fingerprint(&key), "tls_enabled");
    let certificates = Arc::new(Certificates {
        files: files.clone(),
        provider: Arc::clone(&provider),
        current: RwLock::new(Arc::new(key)),
    });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::clone(&certificates) as Arc<dyn ResolvesServerCert>);
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok((TlsAcceptor::from(Arc::new(config)), certificates))
}

fn load(files: &TlsConfig, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let cert_error = |message: String| TlsError::File { key: "tls.cert", path: files.cert.clone(), message };
    let key_error = |message: String| TlsError::File { key: "tls.key", path: files.key.clone(), message };
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| cert_error(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_error("no PEM `CERTIFICATE` block".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        key_error(match e {
            rustls::pki_types::pem::Error::NoItemsFound => "no PEM private key block (PKCS#8, PKCS#1 or SEC1)".into(),
            other => other.to_string(),
        })
    })?;
    let signer = provider.key_provider.load_private_key(key).map_err(|e| key_error(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signer);
    match certified.keys_match() {
        // Unknown: the key type cannot report its public key; rustls accepts that too.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(_)) => {
            Err(key_error(format!("does not match the certificate in {}", files.cert.display())))
        }
        // Anything else is the leaf certificate failing to parse.
        Err(e) => Err(cert_error(format!("the first certificate is invalid: {e}"))),
    }
}

/// SHA-256 of the leaf certificate, so a log line says which one is served.
fn fingerprint(key: &CertifiedKey) -> String {
    let leaf = key.cert.first().map_or(&[][..], |c| c.as_ref());
    let digest = ::aws_lc_rs::digest::digest(&::aws_lc_rs::digest::SHA256, leaf);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}
