//! TLS: the certificates behind `ssl:` and `tls:` server endpoints (loading, pairing, SNI,
//! reload) and the client configuration behind `tls:HOST:PORT` client endpoints.
//!
//! Everything here is rustls with the `ring` provider. Certificates and keys are read from PEM
//! files; every load error names the file and what is wrong with it:
//!
//! ```
//! use weft_core::tls::{CertSource, ServerTls, ServerTlsOptions, TlsError};
//!
//! let opts = ServerTlsOptions::new(CertSource::files("/nonexistent/key.pem", None, None));
//! let err = ServerTls::load(&opts).unwrap_err();
//! assert!(matches!(err, TlsError::Read { .. }));
//! assert!(err.to_string().starts_with("/nonexistent/key.pem: cannot read"));
//! ```
//!
//! A [`ServerTls`] holds its certificates behind a resolver that [`ServerTls::reload`] swaps:
//! connections made afterwards see the new certificates, established ones keep theirs, and a
//! reload that fails keeps the old set.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Default time a client gets to complete the TLS handshake (10 s).
///
/// ```
/// assert_eq!(weft_core::tls::DEFAULT_HANDSHAKE_TIMEOUT.as_secs(), 10);
/// ```
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The lowest TLS version a server accepts (`sslmethod=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3 (`TLSv1_2_METHOD`; also the default).
    Tls12,
    /// TLS 1.3 only (`TLSv1_3_METHOD`).
    Tls13,
}

impl TlsVersion {
    /// Parses Twisted's `sslmethod=` value (an `OpenSSL.SSL` method name).
    ///
    /// `None` for the methods rustls cannot serve (SSLv3, TLS 1.0, TLS 1.1).
    ///
    /// ```
    /// use weft_core::tls::TlsVersion;
    /// assert_eq!(TlsVersion::from_method("TLSv1_3_METHOD"), Some(Some(TlsVersion::Tls13)));
    /// assert_eq!(TlsVersion::from_method("TLS_METHOD"), Some(None)); // the default
    /// assert_eq!(TlsVersion::from_method("SSLv3_METHOD"), None);
    /// ```
    pub fn from_method(method: &str) -> Option<Option<TlsVersion>> {
        match method {
            "TLSv1_2_METHOD" => Some(Some(TlsVersion::Tls12)),
            "TLSv1_3_METHOD" => Some(Some(TlsVersion::Tls13)),
            "SSLv23_METHOD" | "TLS_METHOD" => Some(None),
            _ => None,
        }
    }

    /// The `sslmethod=` name.
    pub fn method(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "TLSv1_2_METHOD",
            TlsVersion::Tls13 => "TLSv1_3_METHOD",
        }
    }

    fn versions(min: Option<TlsVersion>) -> &'static [&'static rustls::SupportedProtocolVersion] {
        match min {
            Some(TlsVersion::Tls13) => TLS13_ONLY,
            _ => rustls::ALL_VERSIONS,
        }
    }
}

static TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// Where a server's certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertSource {
    /// `ssl:`: one key, its certificate (first in `cert`, followed by any chain in the same
    /// file) and an optional chain file.
    Files {
        /// The private key (`privateKey=`).
        private_key: PathBuf,
        /// The certificate (`certKey=`; the key file itself when absent).
        cert: Option<PathBuf>,
        /// More chain certificates (`extraCertChain=`).
        chain: Option<PathBuf>,
    },
    /// `tls:`: every `*.pem` file under the directory (recursively); keys are paired with
    /// certificates by public key, chains built from the leftover certificates, and the
    /// certificate chosen by SNI (exact name, then wildcard; the first one without SNI).
    Directory(PathBuf),
}

impl CertSource {
    /// `ssl:`'s files: the key, the certificate (defaults to the key file), a chain file.
    ///
    /// See the [module](self) for an example.
    pub fn files(
        private_key: impl Into<PathBuf>,
        cert: Option<PathBuf>,
        chain: Option<PathBuf>,
    ) -> Self {
        CertSource::Files {
            private_key: private_key.into(),
            cert,
            chain,
        }
    }
}

/// Everything an `ssl:` or `tls:` server endpoint says about TLS.
///
/// ```
/// use weft_core::tls::{CertSource, ServerTlsOptions, TlsVersion};
/// let opts = ServerTlsOptions::new(CertSource::Directory("./pems".into()))
///     .alpn(["h2", "http/1.1"])
///     .min_version(TlsVersion::Tls13);
/// assert_eq!(opts.alpn, ["h2", "http/1.1"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct ServerTlsOptions {
    /// The certificates.
    pub certs: CertSource,
    /// The lowest accepted version (`None`: TLS 1.2).
    pub min_version: Option<TlsVersion>,
    /// ALPN protocols offered, most preferred first (`alpn=h2,http/1.1`).
    pub alpn: Vec<String>,
    /// Time a client gets to finish the handshake (`handshakeTimeout=`, default 10 s).
    pub handshake_timeout: Duration,
    /// A PEM file of CA certificates: when set, clients must present a certificate signed
    /// by one of them (`clientCA=`, mutual TLS).
    pub client_ca: Option<PathBuf>,
}

impl ServerTlsOptions {
    /// Defaults around `certs`: TLS 1.2 and 1.3, no ALPN, 10 s handshake timeout, no client
    /// certificates.
    pub fn new(certs: CertSource) -> Self {
        Self {
            certs,
            min_version: None,
            alpn: Vec::new(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            client_ca: None,
        }
    }

    /// Sets the ALPN protocols, most preferred first.
    pub fn alpn<I: IntoIterator<Item = S>, S: Into<String>>(mut self, protos: I) -> Self {
        self.alpn = protos.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the lowest accepted version.
    pub fn min_version(mut self, v: TlsVersion) -> Self {
        self.min_version = Some(v);
        self
    }

    /// Sets the handshake timeout.
    pub fn handshake_timeout(mut self, d: Duration) -> Self {
        self.handshake_timeout = d;
        self
    }

    /// Requires client certificates signed by a CA in `path`.
    pub fn client_ca(mut self, path: impl Into<PathBuf>) -> Self {
        self.client_ca = Some(path.into());
        self
    }
}

/// What is wrong with a TLS configuration; file errors name the file.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file or directory could not be read (missing, permissions).
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: Arc<io::Error>,
    },
    /// The file is not valid PEM.
    #[error("{}: not valid PEM: {reason}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What the PEM parser said.
        reason: String,
    },
    /// The file holds no certificate (`-----BEGIN CERTIFICATE-----`).
    #[error("{}: no certificate in it (expected a PEM block -----BEGIN CERTIFICATE-----)", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The file holds no private key.
    #[error("{}: no private key in it (expected a PEM block -----BEGIN PRIVATE KEY----- or BEGIN RSA/EC PRIVATE KEY)", path.display())]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// The key is not one rustls can sign with.
    #[error("{}: unusable private key: {reason}", path.display())]
    BadKey {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A certificate does not parse.
    #[error("{}: unusable certificate: {reason}", path.display())]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The private key is not the key of the certificate.
    #[error("{}: the private key does not match the certificate in {}", key.display(), cert.display())]
    KeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
    },
    /// A `tls:` directory held no certificate with its private key.
    #[error("{}: no certificate with a matching private key in any *.pem file{}", dir.display(), details(.notes))]
    NoCertificates {
        /// The directory.
        dir: PathBuf,
        /// What was found instead (unused keys, certificates without keys).
        notes: Vec<String>,
    },
    /// No trust roots (a client without `trustRoots=` on a system without a CA store).
    #[error("no trust roots: {0}")]
    NoTrustRoots(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(rustls::Error),
    /// Not a name (or IP address) a TLS client can verify a server certificate for.
    #[error("{0:?}: not a valid TLS server name")]
    ServerName(String),
}

fn details(notes: &[String]) -> String {
    if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join("; "))
    }
}

fn read_err(path: &Path, e: io::Error) -> TlsError {
    TlsError::Read {
        path: path.to_owned(),
        source: Arc::new(e),
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// One PEM file, split into its certificates and keys.
struct PemFile {
    path: PathBuf,
    certs: Vec<CertificateDer<'static>>,
    keys: Vec<PrivateKeyDer<'static>>,
}

fn read_pem(path: &Path) -> Result<PemFile, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| read_err(path, e))?;
    let mut file = PemFile {
        path: path.to_owned(),
        certs: Vec::new(),
        keys: Vec::new(),
    };
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(&bytes) {
        let (kind, der) = section.map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        match kind {
            SectionKind::Certificate => file.certs.push(CertificateDer::from(der)),
            SectionKind::PrivateKey => file.keys.push(PrivateKeyDer::Pkcs8(der.into())),
            SectionKind::RsaPrivateKey => file.keys.push(PrivateKeyDer::Pkcs1(der.into())),
            SectionKind::EcPrivateKey => file.keys.push(PrivateKeyDer::Sec1(der.into())),
            _ => {}
        }
    }
    Ok(file)
}

/// What weft reads from a certificate besides what rustls needs.
struct CertInfo {
    names: Vec<String>,
    subject: Vec<u8>,
    issuer: Vec<u8>,
    not_after: i64,
    not_after_text: String,
}

fn cert_info(path: &Path, der: &CertificateDer<'_>) -> Result<CertInfo, TlsError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| TlsError::BadCertificate {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(n) = name {
                names.push(n.to_ascii_lowercase());
            }
        }
    }
    if names.is_empty() {
        names.extend(
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(str::to_ascii_lowercase),
        );
    }
    let not_after = cert.validity().not_after;
    Ok(CertInfo {
        names,
        subject: cert.subject().as_raw().to_vec(),
        issuer: cert.issuer().as_raw().to_vec(),
        not_after: not_after.timestamp(),
        not_after_text: not_after.to_string(),
    })
}

fn warn_if_expired(path: &Path, info: &CertInfo, warnings: &mut Vec<String>) {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if info.not_after < now {
        let w = format!(
            "{}: certificate for {} expired on {} (clients will refuse it)",
            path.display(),
            if info.names.is_empty() {
                "(no name)".to_owned()
            } else {
                info.names.join(", ")
            },
            info.not_after_text
        );
        tracing::warn!("{w}");
        warnings.push(w);
    }
}

fn signing_key(
    provider: &CryptoProvider,
    path: &Path,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<dyn rustls::sign::SigningKey>, TlsError> {
    provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::BadKey {
            path: path.to_owned(),
            reason: e.to_string(),
        })
}

/// The certificates a server offers, by name.
#[derive(Debug, Default)]
struct CertSet {
    /// Lower-case DNS names (wildcards as `*.example.com`).
    by_name: HashMap<String, Arc<CertifiedKey>>,
    /// Served without SNI (and, for `ssl:`, whatever the client asks for).
    default: Option<Arc<CertifiedKey>>,
    /// `ssl:` serves its one certificate whatever name the client asks for.
    any_name: bool,
    warnings: Vec<String>,
}

impl CertSet {
    fn load(source: &CertSource, provider: &CryptoProvider) -> Result<CertSet, TlsError> {
        match source {
            CertSource::Files {
                private_key,
                cert,
                chain,
            } => Self::load_files(provider, private_key, cert.as_deref(), chain.as_deref()),
            CertSource::Directory(dir) => Self::load_dir(provider, dir),
        }
    }

    fn load_files(
        provider: &CryptoProvider,
        key_path: &Path,
        cert_path: Option<&Path>,
        chain_path: Option<&Path>,
    ) -> Result<CertSet, TlsError> {
        let key_file = read_pem(key_path)?;
        let key = key_file
            .keys
            .into_iter()
            .next()
            .ok_or_else(|| TlsError::NoPrivateKey {
                path: key_path.to_owned(),
            })?;
        let (cert_path, mut certs) = match cert_path {
            Some(p) => (p, read_pem(p)?.certs),
            None => (key_path, key_file.certs),
        };
        if certs.is_empty() {
            return Err(TlsError::NoCertificate {
                path: cert_path.to_owned(),
            });
        }
        if let Some(p) = chain_path {
            let chain = read_pem(p)?.certs;
            if chain.is_empty() {
                return Err(TlsError::NoCertificate { path: p.to_owned() });
            }
            certs.extend(chain);
        }
        let mut warnings = Vec::new();
        let info = cert_info(cert_path, &certs[0])?;
        warn_if_expired(cert_path, &info, &mut warnings);
        let key = signing_key(provider, key_path, key)?;
        let ck = CertifiedKey::new(certs, key);
        if ck.keys_match().is_err() {
            return Err(TlsError::KeyMismatch {
                key: key_path.to_owned(),
                cert: cert_path.to_owned(),
            });
        }
        Ok(CertSet {
            by_name: HashMap::new(),
            default: Some(Arc::new(ck)),
            any_name: true,
            warnings,
        })
    }

    fn load_dir(provider: &CryptoProvider, dir: &Path) -> Result<CertSet, TlsError> {
        let mut paths = Vec::new();
        collect_pems(dir, &mut paths, 0)?;
        paths.sort();
        let mut certs: Vec<(PathBuf, CertificateDer<'static>, CertInfo)> = Vec::new();
        let mut keys: Vec<(PathBuf, Arc<dyn rustls::sign::SigningKey>)> = Vec::new();
        for path in &paths {
            let file = read_pem(path)?;
            for c in file.certs {
                let info = cert_info(&file.path, &c)?;
                certs.push((file.path.clone(), c, info));
            }
            for k in file.keys {
                keys.push((file.path.clone(), signing_key(provider, &file.path, k)?));
            }
        }
        let mut set = CertSet::default();
        let mut notes = Vec::new();
        // Pair each certificate with the key of the same public key.
        let mut leaves = Vec::new();
        let mut key_used = vec![false; keys.len()];
        let mut is_leaf = vec![false; certs.len()];
        for (ci, (_, der, _)) in certs.iter().enumerate() {
            for (ki, (_, key)) in keys.iter().enumerate() {
                if CertifiedKey::new(vec![der.clone()], key.clone())
                    .keys_match()
                    .is_ok()
                {
                    key_used[ki] = true;
                    is_leaf[ci] = true;
                    leaves.push((ci, ki));
                    break;
                }
            }
        }
        for (ki, (path, _)) in keys.iter().enumerate() {
            if !key_used[ki] {
                let n = format!(
                    "{}: private key matches no certificate (unused)",
                    path.display()
                );
                tracing::warn!("{n}");
                notes.push(n);
            }
        }
        for (ci, ki) in leaves {
            let (path, der, info) = &certs[ci];
            warn_if_expired(path, info, &mut set.warnings);
            // The chain: follow issuer to subject through the certificates without a key.
            let mut chain = vec![der.clone()];
            let mut issuer = &info.issuer;
            let mut subject = &info.subject;
            while issuer != subject && chain.len() < 10 {
                let Some((_, next, next_info)) = certs
                    .iter()
                    .enumerate()
                    .find(|(i, (_, _, inf))| !is_leaf[*i] && &inf.subject == issuer)
                    .map(|(_, c)| c)
                else {
                    break;
                };
                chain.push(next.clone());
                issuer = &next_info.issuer;
                subject = &next_info.subject;
            }
            let ck = Arc::new(CertifiedKey::new(chain, keys[ki].1.clone()));
            for name in &info.names {
                set.by_name
                    .entry(name.clone())
                    .or_insert_with(|| ck.clone());
            }
            if set.default.is_none() {
                set.default = Some(ck);
            }
        }
        if set.default.is_none() {
            if keys.is_empty() {
                notes.push(format!("{} files, no private key", paths.len()));
            }
            if certs.is_empty() {
                notes.push(format!("{} files, no certificate", paths.len()));
            }
            return Err(TlsError::NoCertificates {
                dir: dir.to_owned(),
                notes,
            });
        }
        set.warnings.extend(notes);
        Ok(set)
    }

    fn lookup(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = name else {
            return self.default.clone();
        };
        if self.any_name {
            return self.default.clone();
        }
        let name = name.to_ascii_lowercase();
        if let Some(ck) = self.by_name.get(&name) {
            return Some(ck.clone());
        }
        let wildcard = name.split_once('.').map(|(_, rest)| format!("*.{rest}"))?;
        self.by_name.get(&wildcard).cloned()
    }
}

fn collect_pems(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<(), TlsError> {
    let entries = std::fs::read_dir(dir).map_err(|e| read_err(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| read_err(dir, e))?;
        let path = entry.path();
        let ty = entry.file_type().map_err(|e| read_err(&path, e))?;
        if ty.is_dir() && depth < 8 {
            collect_pems(&path, out, depth + 1)?;
        } else if path.extension().is_some_and(|e| e == "pem") {
            out.push(path);
        }
    }
    Ok(())
}

/// Chooses the certificate for each handshake from a set that [`ServerTls::reload`] swaps.
struct Resolver {
    set: RwLock<Arc<CertSet>>,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = self.current();
        f.debug_struct("Resolver")
            .field("names", &set.by_name.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Resolver {
    fn current(&self) -> Arc<CertSet> {
        self.set.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // Never touches the disk: an unknown name is refused, not a reason to re-read.
        let found = self.current().lookup(hello.server_name());
        if found.is_none() {
            tracing::debug!(name = ?hello.server_name(), "no server certificate for this name");
        }
        found
    }
}

/// A loaded server TLS configuration: the rustls `ServerConfig` of an `ssl:`/`tls:` endpoint
/// and the certificates behind it, reloadable.
///
/// ```no_run
/// use weft_core::tls::{CertSource, ServerTls, ServerTlsOptions};
/// let tls = ServerTls::load(&ServerTlsOptions::new(CertSource::Directory("./pems".into())))?;
/// // ... later, after renewing the certificates:
/// tls.reload()?;
/// # Ok::<(), weft_core::tls::TlsError>(())
/// ```
#[derive(Clone)]
pub struct ServerTls {
    options: ServerTlsOptions,
    resolver: Arc<Resolver>,
    /// The configuration new handshakes use: swapped whole by a reload under `clientCA=`
    /// (the client verifier is part of it); shared by every clone.
    config: Arc<RwLock<Arc<ServerConfig>>>,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("options", &self.options)
            .field("resolver", &self.resolver)
            .finish()
    }
}

impl ServerTls {
    /// Reads the certificates and builds the server configuration.
    ///
    /// # Errors
    /// A [`TlsError`] naming the file and what is wrong with it. An expired certificate is not
    /// an error: it is logged as a warning and listed in [`warnings`](Self::warnings).
    pub fn load(options: &ServerTlsOptions) -> Result<ServerTls, TlsError> {
        let provider = provider();
        let set = CertSet::load(&options.certs, &provider)?;
        let resolver = Arc::new(Resolver {
            set: RwLock::new(Arc::new(set)),
        });
        let config = build_config(options, &provider, &resolver)?;
        Ok(ServerTls {
            options: options.clone(),
            resolver,
            config: Arc::new(RwLock::new(Arc::new(config))),
            provider,
        })
    }

    /// Re-reads the certificate files, and the `clientCA=` file if there is one, and swaps
    /// them in for new connections; connections already up keep theirs.
    ///
    /// # Errors
    /// As [`load`](Self::load) (a bad `clientCA=` file named too); the certificates and
    /// client CAs in use all stay as they were.
    pub fn reload(&self) -> Result<(), TlsError> {
        let loaded = CertSet::load(&self.options.certs, &self.provider).and_then(|set| {
            // Under clientCA=, a new configuration with a verifier built from the file as it
            // is now (the same resolver: it gets the new certificates below).
            let config = match &self.options.client_ca {
                Some(_) => Some(build_config(&self.options, &self.provider, &self.resolver)?),
                None => None,
            };
            Ok((set, config))
        });
        match loaded {
            Ok((set, config)) => {
                tracing::info!(names = set.by_name.len(), "TLS certificates reloaded");
                *self.resolver.set.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
                if let Some(config) = config {
                    *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
                }
                Ok(())
            }
            Err(e) => {
                // The caller gets the error (and reports it): logged here for the record only.
                tracing::info!(error = %e, "TLS reload failed; keeping the certificates in use");
                Err(e)
            }
        }
    }

    /// The rustls configuration new handshakes use now (for `tokio_rustls::TlsAcceptor`):
    /// ask again after a [`reload`](Self::reload) under `clientCA=`, which replaces it (a
    /// reload of the certificates alone is seen by configurations taken before, too).
    pub fn config(&self) -> Arc<ServerConfig> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The options it was loaded from.
    pub fn options(&self) -> &ServerTlsOptions {
        &self.options
    }

    /// Warnings of the last load (expired certificates, unused keys).
    pub fn warnings(&self) -> Vec<String> {
        self.resolver.current().warnings.clone()
    }

    /// The names served by SNI (lower case; wildcards as `*.example.com`), sorted; empty for
    /// `ssl:`, which serves its one certificate whatever the name.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.resolver.current().by_name.keys().cloned().collect();
        names.sort();
        names
    }
}

/// The server configuration of `options` around `resolver`: versions, the client verifier
/// (`clientCA=`, read now), ALPN.
fn build_config(
    options: &ServerTlsOptions,
    provider: &Arc<CryptoProvider>,
    resolver: &Arc<Resolver>,
) -> Result<ServerConfig, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(TlsVersion::versions(options.min_version))
        .map_err(TlsError::Config)?;
    let builder = match &options.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let roots = read_roots(path)?;
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| TlsError::BadCertificate {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(resolver.clone());
    config.alpn_protocols = options.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(config)
}

fn read_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut files = Vec::new();
    if path.is_dir() {
        collect_pems(path, &mut files, 0)?;
        files.sort();
    } else {
        files.push(path.to_owned());
    }
    let mut roots = RootCertStore::empty();
    for f in &files {
        for c in read_pem(f)?.certs {
            roots.add(c).map_err(|e| TlsError::BadCertificate {
                path: f.clone(),
                reason: e.to_string(),
            })?;
        }
    }
    if roots.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(roots)
}

/// What a `tls:HOST:PORT` client endpoint says about TLS.
///
/// ```
/// use weft_core::tls::ClientTlsOptions;
/// let opts = ClientTlsOptions::default().trust_roots("ca.pem");
/// assert!(opts.certificate.is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct ClientTlsOptions {
    /// CA certificates to trust, a PEM file or a directory of them (`trustRoots=`); the
    /// system's roots when absent.
    pub trust_roots: Option<PathBuf>,
    /// Client certificate (`certificate=`), for servers that ask for one.
    pub certificate: Option<PathBuf>,
    /// Its key (`privateKey=`; the certificate file when absent).
    pub private_key: Option<PathBuf>,
    /// ALPN protocols offered.
    pub alpn: Vec<String>,
}

impl ClientTlsOptions {
    /// Trusts the CA certificates in `path` (a file or a directory of `*.pem`).
    pub fn trust_roots(mut self, path: impl Into<PathBuf>) -> Self {
        self.trust_roots = Some(path.into());
        self
    }

    /// Presents this client certificate (and key; `None`: in the certificate file).
    pub fn client_certificate(mut self, cert: impl Into<PathBuf>, key: Option<PathBuf>) -> Self {
        self.certificate = Some(cert.into());
        self.private_key = key;
        self
    }

    /// Builds the rustls client configuration (hostname verification is always on).
    ///
    /// # Errors
    /// A [`TlsError`] naming the file that could not be used; [`TlsError::NoTrustRoots`]
    /// when the system has no CA store and `trust_roots` is not set.
    pub fn config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let provider = provider();
        let roots = match &self.trust_roots {
            Some(p) => read_roots(p)?,
            None => {
                let found = rustls_native_certs::load_native_certs();
                let mut roots = RootCertStore::empty();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(TlsError::NoTrustRoots(format!(
                        "the system's CA store gave none ({} errors); give trustRoots=",
                        found.errors.len()
                    )));
                }
                roots
            }
        };
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(rustls::ALL_VERSIONS)
            .map_err(TlsError::Config)?
            .with_root_certificates(roots);
        let mut config = match &self.certificate {
            None => builder.with_no_client_auth(),
            Some(cert_path) => {
                let key_path = self.private_key.as_deref().unwrap_or(cert_path);
                let certs = read_pem(cert_path)?.certs;
                if certs.is_empty() {
                    return Err(TlsError::NoCertificate {
                        path: cert_path.clone(),
                    });
                }
                let key = read_pem(key_path)?.keys.into_iter().next().ok_or_else(|| {
                    TlsError::NoPrivateKey {
                        path: key_path.to_owned(),
                    }
                })?;
                let signing = signing_key(&provider, key_path, key.clone_key())?;
                if CertifiedKey::new(certs.clone(), signing)
                    .keys_match()
                    .is_err()
                {
                    return Err(TlsError::KeyMismatch {
                        key: key_path.to_owned(),
                        cert: cert_path.clone(),
                    });
                }
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(TlsError::Config)?
            }
        };
        config.alpn_protocols = self.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Ok(Arc::new(config))
    }
}

/// What a TLS connection negotiated, from [`Transport::tls`](crate::Transport::tls): the
/// version, ALPN protocol, the name the client asked for, and the peer's verified certificate
/// chain (a client certificate under `clientCA=`, the server's for a client).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsInfo {
    /// `TLSv1_3` or `TLSv1_2`.
    pub version: Option<rustls::ProtocolVersion>,
    /// The ALPN protocol agreed on, if any.
    pub alpn: Option<Vec<u8>>,
    /// The SNI name the client sent (server side), or the name verified (client side).
    pub server_name: Option<String>,
    /// The peer's certificate chain, leaf first; empty when it sent none.
    pub peer_certificates: Vec<CertificateDer<'static>>,
}

impl TlsInfo {
    /// What `conn` negotiated; `server_name` is the name a client verified (a server reads
    /// the SNI name from `conn`).
    pub(crate) fn new(conn: &rustls::Connection, server_name: Option<&str>) -> Self {
        let sni = match conn {
            rustls::Connection::Server(s) => s.server_name(),
            rustls::Connection::Client(_) => server_name,
        };
        TlsInfo {
            version: conn.protocol_version(),
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
            server_name: sni.map(str::to_owned),
            peer_certificates: conn
                .peer_certificates()
                .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                .unwrap_or_default(),
        }
    }

    /// The peer's leaf certificate (DER), if it sent one.
    pub fn peer_certificate(&self) -> Option<&CertificateDer<'static>> {
        self.peer_certificates.first()
    }
}

/// Connects over TCP to `addr` and runs a TLS client handshake verifying `server_name`: the
/// stream form of [`Reactor::connect_tls`](crate::Reactor::connect_tls), for code that wants
/// `AsyncRead`/`AsyncWrite` (`weft connect`).
///
/// # Errors
/// Resolution and connect errors; a failed handshake is `InvalidData` carrying the
/// [`rustls::Error`]; an invalid `server_name` is `InvalidInput`.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use tokio::io::AsyncWriteExt;
/// let config = weft_core::tls::ClientTlsOptions::default().config()?;
/// let mut s = weft_core::tls::connect_stream("example.com:443", "example.com", config).await?;
/// s.write_all(b"HEAD / HTTP/1.0\r\n\r\n").await?;
/// # Ok(()) }
/// ```
pub async fn connect_stream(
    addr: impl tokio::net::ToSocketAddrs,
    server_name: &str,
    config: Arc<ClientConfig>,
) -> io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let _ = tcp.set_nodelay(true);
    client_handshake(tcp, server_name, config).await
}

/// Runs a TLS client handshake over any connected stream (a Unix socket for `tls:`'s
/// `endpoint=unix\:/path`), verifying `server_name`.
///
/// # Errors
/// As [`connect_stream`].
pub async fn client_handshake<IO>(
    io: IO,
    server_name: &str,
    config: Arc<ClientConfig>,
) -> io::Result<tokio_rustls::client::TlsStream<IO>>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let name = rustls_pki_types::ServerName::try_from(server_name.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, io)
        .await
}

/// What [`Transport::start_tls`](crate::Transport::start_tls) upgrades a live connection to:
/// the server or client side of a TLS session (a rustls configuration, and the name a client
/// verifies), and how long the handshake may take (default
/// [`DEFAULT_HANDSHAKE_TIMEOUT`]; past it the connection is lost with
/// [`DisconnectReason::TimedOut`](crate::DisconnectReason::TimedOut)`(`[`TimeoutKind::Handshake`](crate::TimeoutKind::Handshake)`)`).
///
/// Cheap to clone (the configuration is shared): build it once and clone it per connection.
///
/// ```
/// use std::time::Duration;
/// use weft_core::tls::{ClientTlsOptions, TlsUpgrade};
///
/// let dir = std::env::temp_dir().join(format!("weft-upgrade-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
/// std::fs::write(dir.join("ca.pem"), cert.cert.pem())?;
///
/// let config = ClientTlsOptions::default().trust_roots(dir.join("ca.pem")).config()?;
/// let upgrade = TlsUpgrade::client(config, "localhost")?.handshake_timeout(Duration::from_secs(5));
/// assert!(format!("{upgrade:?}").contains("localhost"));
/// assert!(TlsUpgrade::client(ClientTlsOptions::default().trust_roots(dir.join("ca.pem")).config()?, "not a name!").is_err());
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct TlsUpgrade {
    side: UpgradeSide,
    handshake_timeout: Duration,
}

#[derive(Clone)]
enum UpgradeSide {
    Server(Arc<ServerConfig>),
    /// A loaded configuration, asked for its current configuration at each upgrade (so a
    /// reload is seen, `clientCA=` included).
    Loaded(ServerTls),
    Client(
        Arc<ClientConfig>,
        rustls_pki_types::ServerName<'static>,
        String,
    ),
}

impl fmt::Debug for TlsUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TlsUpgrade");
        match &self.side {
            UpgradeSide::Server(_) | UpgradeSide::Loaded(_) => d.field("side", &"server"),
            UpgradeSide::Client(_, _, name) => {
                d.field("side", &"client").field("server_name", name)
            }
        };
        d.field("handshake_timeout", &self.handshake_timeout)
            .finish()
    }
}

impl TlsUpgrade {
    /// The server side, with this configuration (for a reloadable one, `TlsUpgrade::from(&server_tls)`).
    pub fn server(config: Arc<ServerConfig>) -> Self {
        Self {
            side: UpgradeSide::Server(config),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// The client side, verifying the server's certificate for `server_name` (a DNS name or an
    /// IP address).
    ///
    /// # Errors
    /// [`TlsError::ServerName`] when `server_name` is neither.
    pub fn client(config: Arc<ClientConfig>, server_name: &str) -> Result<Self, TlsError> {
        let name = rustls_pki_types::ServerName::try_from(server_name.to_owned())
            .map_err(|_| TlsError::ServerName(server_name.to_owned()))?;
        Ok(Self {
            side: UpgradeSide::Client(config, name, server_name.to_owned()),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        })
    }

    /// Sets the time the peer gets to finish the handshake.
    pub fn handshake_timeout(mut self, d: Duration) -> Self {
        self.handshake_timeout = d;
        self
    }

    /// The handshake timeout.
    pub fn timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// A new rustls connection for this side, and the name a client verifies.
    pub(crate) fn connection(&self) -> Result<(rustls::Connection, Option<String>), rustls::Error> {
        Ok(match &self.side {
            UpgradeSide::Server(config) => {
                (rustls::ServerConnection::new(config.clone())?.into(), None)
            }
            UpgradeSide::Loaded(tls) => (rustls::ServerConnection::new(tls.config())?.into(), None),
            UpgradeSide::Client(config, name, text) => (
                rustls::ClientConnection::new(config.clone(), name.clone())?.into(),
                Some(text.clone()),
            ),
        })
    }
}

impl From<&ServerTls> for TlsUpgrade {
    /// The server side of a loaded (and reloadable: later handshakes see a reload)
    /// configuration, with its handshake timeout.
    fn from(tls: &ServerTls) -> Self {
        TlsUpgrade {
            side: UpgradeSide::Loaded(tls.clone()),
            handshake_timeout: tls.options().handshake_timeout,
        }
    }
}

/// Why [`Transport::start_tls`](crate::Transport::start_tls) refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StartTlsError {
    /// The connection already runs TLS (an `ssl:`/`tls:` endpoint, or an earlier
    /// `start_tls`).
    #[error("the connection already uses TLS")]
    AlreadyTls,
    /// The connection is closing (or its write side was shut down): nothing more can be
    /// sent, so no handshake either.
    #[error("the connection is closing")]
    Closing,
}
