//! TLS material from PEM files: the listener's certificate chain and key, the CAs client
//! certificates must chain to (mTLS), and the trust anchors for upstreams.
//!
//! Everything here is loaded while a configuration compiles, so a bad file is a
//! configuration error naming its field, and a reload whose files are bad changes nothing:
//! the running snapshot keeps the material it was built with. The crypto provider is
//! aws-lc-rs, as everywhere else in the crate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use thiserror::Error;

/// The ALPN protocol ids the listener offers, in its order of preference (RFC 7301; "h2" is
/// RFC 9113 § 3.2's id for HTTP/2 over TLS).
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Whether a client must present a certificate (`tls_client_auth`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// A handshake without a certificate that chains to `tls_client_ca` is refused. The
    /// default when `tls_client_ca` is set.
    #[default]
    Required,
    /// A client may present no certificate; one it presents must still chain to
    /// `tls_client_ca`, or the handshake is refused.
    Optional,
}

impl ClientAuth {
    /// The configuration spelling: `"required"` or `"optional"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Required => "required",
            Self::Optional => "optional",
        }
    }
}

/// Where the listener's TLS material comes from (`[server]`), paths resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerFiles {
    /// `tls_cert`: PEM certificate chain, end-entity certificate first.
    pub cert: PathBuf,
    /// `tls_key`: PEM private key (PKCS#8, PKCS#1 or SEC1), the first one in the file.
    pub key: PathBuf,
    /// `tls_client_ca` and `tls_client_auth`: client-certificate verification; off when
    /// `None`.
    pub client_ca: Option<(PathBuf, ClientAuth)>,
}

impl ListenerFiles {
    /// Every file the material is read from.
    pub fn paths(&self) -> Vec<&Path> {
        let mut v = vec![self.cert.as_path(), self.key.as_path()];
        v.extend(self.client_ca.as_ref().map(|(p, _)| p.as_path()));
        v
    }
}

/// The listener's TLS configuration, as one snapshot holds it.
#[derive(Debug, Clone)]
pub struct ListenerTls {
    /// What it was loaded from.
    pub files: ListenerFiles,
    /// The rustls configuration every new connection of this snapshot handshakes with.
    pub config: Arc<ServerConfig>,
}

/// The trust anchors for `https://` upstreams (`upstream_ca`).
#[derive(Debug, Clone)]
pub struct UpstreamCa {
    /// The PEM file they were read from.
    pub file: PathBuf,
    /// A verifier trusting exactly those anchors (hostname checks included).
    pub verifier: Arc<WebPkiServerVerifier>,
}

/// Why TLS material could not be loaded. Messages name the file, never its contents.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The file could not be read (missing, permissions).
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file holds no PEM section of the expected kind.
    #[error("{path} holds no PEM {what}")]
    Missing {
        /// The file.
        path: PathBuf,
        /// What was looked for: `CERTIFICATE`, `PRIVATE KEY`.
        what: &'static str,
    },
    /// A PEM section could not be decoded.
    #[error("{path}: malformed PEM: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// The PEM decoder's reason.
        reason: String,
    },
    /// The key is not usable (unsupported algorithm, malformed, or not the certificate's).
    #[error("{path}: {reason}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What rustls refused.
        reason: String,
    },
    /// A CA certificate is not a usable trust anchor.
    #[error("{path}: certificate #{index} is not a usable trust anchor: {reason}")]
    Anchor {
        /// The CA file.
        path: PathBuf,
        /// 1-based position in the file.
        index: usize,
        /// What webpki refused.
        reason: String,
    },
    /// rustls refused to build a configuration from otherwise readable material.
    #[error("{0}")]
    Config(String),
}

/// The crypto provider every TLS configuration of the crate uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The operating system's trust store, read once per process; Mozilla's roots
/// (webpki-roots) when it has none, as hyper-rustls does. What `https://` upstreams without
/// `upstream_ca`, and every remote key set (`jwks_uri`), are verified against.
pub fn platform_roots() -> Arc<RootCertStore> {
    static ROOTS: std::sync::OnceLock<Arc<RootCertStore>> = std::sync::OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            for e in &native.errors {
                tracing::debug!(error = %e, "while loading the platform's trust store");
            }
            let (added, ignored) = roots.add_parsable_certificates(native.certs);
            if ignored > 0 {
                tracing::debug!(ignored, "platform trust store certificates not usable as anchors");
            }
            if added == 0 {
                tracing::warn!("the platform's trust store is empty; outbound TLS uses Mozilla's roots");
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
            Arc::new(roots)
        })
        .clone()
}

/// A client configuration trusting [`platform_roots`], on the crate's provider. `None` only
/// if the provider supports no safe protocol version (it always does).
pub fn platform_client_config() -> Option<rustls::ClientConfig> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(platform_roots())
        .with_no_client_auth();
    Some(config)
}

/// How a TLS file is read: the configuration compiler passes its own reader, which
/// remembers what each file held.
pub type ReadFile<'r> = &'r mut dyn FnMut(&Path) -> std::io::Result<Vec<u8>>;

/// A PEM certificate chain, end-entity first.
pub fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    load_chain_with(path, &mut |p| std::fs::read(p))
}

/// [`load_chain`], reading with `read`.
fn load_chain_with(path: &Path, read: ReadFile<'_>) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_with(read, path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Missing {
            path: path.to_path_buf(),
            what: "CERTIFICATE",
        });
    }
    Ok(chain)
}

/// The first private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    load_key_with(path, &mut |p| std::fs::read(p))
}

fn load_key_with(path: &Path, read: ReadFile<'_>) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_with(read, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::Missing {
            path: path.to_path_buf(),
            what: "PRIVATE KEY",
        },
        e => TlsError::Pem {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
    })
}

/// Every certificate of a PEM file as a trust anchor; any that is not usable is an error
/// (a half-read CA bundle would silently trust less, or differently, than written).
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    load_roots_with(path, &mut |p| std::fs::read(p))
}

fn load_roots_with(path: &Path, read: ReadFile<'_>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for (i, cert) in load_chain_with(path, read)?.into_iter().enumerate() {
        roots.add(cert).map_err(|e| TlsError::Anchor {
            path: path.to_path_buf(),
            index: i + 1,
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// Why the listener's TLS configuration could not be built: the `[server]` field at fault
/// and the cause.
#[derive(Debug, Error)]
#[error("{error}")]
pub struct ListenerError {
    /// `tls_cert`, `tls_key` or `tls_client_ca`.
    pub field: &'static str,
    /// The cause.
    pub error: TlsError,
}

/// The listener's rustls configuration: TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`, and
/// client-certificate verification when `client_ca` is set.
pub fn server_config(files: &ListenerFiles) -> Result<ListenerTls, ListenerError> {
    server_config_with(files, &mut |p| std::fs::read(p))
}

/// [`server_config`], reading the files with `read`.
pub fn server_config_with(files: &ListenerFiles, read: ReadFile<'_>) -> Result<ListenerTls, ListenerError> {
    let at = |field: &'static str| move |error: TlsError| ListenerError { field, error };
    let chain = load_chain_with(&files.cert, read).map_err(at("tls_cert"))?;
    let key = load_key_with(&files.key, read).map_err(at("tls_key"))?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| at("tls_cert")(TlsError::Config(e.to_string())))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some((ca, auth)) => {
            let roots = Arc::new(load_roots_with(ca, read).map_err(at("tls_client_ca"))?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider());
            let verifier = match auth {
                ClientAuth::Required => verifier,
                ClientAuth::Optional => verifier.allow_unauthenticated(),
            };
            let verifier = verifier
                .build()
                .map_err(|e| at("tls_client_ca")(TlsError::Config(format!("{}: {e}", ca.display()))))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    // NB: with_single_cert compares the key's public half with the certificate's SPKI, so a
    // certificate rotated without its key (or the reverse) fails here, at load, and not at
    // every handshake.
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        at("tls_key")(TlsError::Key {
            path: files.key.clone(),
            reason: match e {
                rustls::Error::InconsistentKeys(_) => {
                    format!("is not the key of the certificate in {}", files.cert.display())
                }
                e => format!("unusable key: {e}"),
            },
        })
    })?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(ListenerTls {
        files: files.clone(),
        config: Arc::new(config),
    })
}

/// A verifier for upstream certificates that trusts only the anchors in `path`.
pub fn upstream_ca(path: &Path) -> Result<UpstreamCa, TlsError> {
    upstream_ca_with(path, &mut |p| std::fs::read(p))
}

/// [`upstream_ca`], reading the file with `read`.
pub fn upstream_ca_with(path: &Path, read: ReadFile<'_>) -> Result<UpstreamCa, TlsError> {
    let roots = Arc::new(load_roots_with(path, read)?);
    let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(|e| TlsError::Config(format!("{}: {e}", path.display())))?;
    Ok(UpstreamCa {
        file: path.to_path_buf(),
        verifier,
    })
}

fn read_with(read: ReadFile<'_>, path: &Path) -> Result<Vec<u8>, TlsError> {
    read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}
