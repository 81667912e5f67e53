//! TLS for the bench: one self-signed certificate every TLS server under test serves, the
//! load generator's client configuration (TLS 1.3, AES-128-GCM, no resumption) and the
//! reference server's configuration.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::ring as provider;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// The name the certificate is for and the client verifies.
pub const SERVER_NAME: &str = "localhost";

/// A certificate and its key written to a directory (removed on drop).
#[derive(Debug)]
pub struct CertFiles {
    dir: PathBuf,
    /// The private key (PKCS#8 PEM).
    pub key: PathBuf,
    /// The certificate (PEM).
    pub cert: PathBuf,
}

impl CertFiles {
    /// Makes a self-signed ECDSA P-256 certificate for `localhost` and 127.0.0.1 (rcgen's
    /// default key type, what `weft cert self-signed` makes) in a fresh temporary directory.
    pub fn generate() -> io::Result<Self> {
        let ck = rcgen::generate_simple_self_signed(vec![
            SERVER_NAME.to_string(),
            "127.0.0.1".to_string(),
        ])
        .map_err(io::Error::other)?;
        let dir = std::env::temp_dir().join(format!("weft-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let files = Self {
            key: dir.join("key.pem"),
            cert: dir.join("cert.pem"),
            dir,
        };
        std::fs::write(&files.key, ck.signing_key.serialize_pem())?;
        std::fs::write(&files.cert, ck.cert.pem())?;
        Ok(files)
    }
}

impl Drop for CertFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn certs(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))
}

/// The load generator's client: TLS 1.3 with AES-128-GCM only (so every server negotiates
/// the same cipher), trusting `cert`, and without session resumption, so every connection
/// of the handshake-rate mode is a full handshake.
pub fn client_config(cert: &Path) -> io::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for c in certs(cert)? {
        roots.add(c).map_err(io::Error::other)?;
    }
    let mut p = provider::default_provider();
    p.cipher_suites = vec![provider::cipher_suite::TLS13_AES_128_GCM_SHA256];
    let mut config = ClientConfig::builder_with_provider(Arc::new(p))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// The name the client verifies.
pub fn server_name() -> ServerName<'static> {
    ServerName::try_from(SERVER_NAME).expect("a valid DNS name")
}

/// The reference server's configuration: rustls' defaults with the ring provider (as weft's
/// `ssl:` endpoint), one certificate.
pub fn server_config(key: &Path, cert: &Path) -> io::Result<Arc<ServerConfig>> {
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| io::Error::other(format!("{}: {e}", key.display())))?;
    let config = ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(certs(cert)?, key)
        .map_err(io::Error::other)?;
    Ok(Arc::new(config))
}
