//! TLS on the public listener: each accepted connection's handshake, bounded in time, with
//! the configuration of the snapshot current at accept (so a reloaded certificate serves
//! every connection accepted after the reload), and what the handshake settled: the ALPN
//! protocol and the verified client certificate.

use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// The verified client certificate of a mutual-TLS connection (`tls_client_ca`): the DER of
/// the end-entity certificate the client presented and rustls verified against the
/// configured CAs. Every request on such a connection carries it in its extensions
/// (`req.extensions().get::<ClientCertificate>()`), for certificate-bound access tokens
/// (RFC 8705 § 3: `cnf.x5t#S256` is the SHA-256 of exactly these bytes). Absent on plain
/// connections and when an optional certificate was not presented.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertificate(Arc<[u8]>);

impl ClientCertificate {
    /// The certificate, DER-encoded.
    pub fn der(&self) -> &[u8] {
        &self.0
    }
}

/// The HTTP version ALPN settled on (RFC 7301).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alpn {
    /// `h2`: HTTP/2 only on this connection.
    H2,
    /// `http/1.1`: HTTP/1.1 only on this connection.
    Http11,
    /// The client offered no ALPN: the connection's first bytes decide, as on plain TCP.
    None,
}

/// A finished handshake.
#[derive(Debug)]
pub struct Accepted<IO> {
    /// The decrypted stream.
    pub stream: TlsStream<IO>,
    /// The protocol ALPN settled on.
    pub alpn: Alpn,
    /// The verified client certificate, if the client presented one.
    pub client_cert: Option<ClientCertificate>,
}

/// Why a connection's handshake did not finish. Logged per connection; the server goes on.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The client did not finish the handshake in time (a slow or idle client holding a
    /// socket, the TLS form of slowloris).
    #[error("TLS handshake not finished within {0:?}")]
    Timeout(Duration),
    /// The handshake failed: not TLS, no common parameters, or a client certificate that is
    /// missing where required or does not chain to `tls_client_ca`.
    #[error("TLS handshake failed: {0}")]
    Failed(#[source] std::io::Error),
}

/// Performs the server side of the handshake on `io` with `config`, within `bound`.
pub async fn accept<IO>(config: Arc<ServerConfig>, io: IO, bound: Duration) -> Result<Accepted<IO>, HandshakeError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let stream = tokio::time::timeout(bound, TlsAcceptor::from(config).accept(io))
        .await
        .map_err(|_| HandshakeError::Timeout(bound))?
        .map_err(HandshakeError::Failed)?;
    let (_, conn) = stream.get_ref();
    let alpn = match conn.alpn_protocol() {
        Some(b"h2") => Alpn::H2,
        Some(b"http/1.1") => Alpn::Http11,
        // rustls only settles on a protocol the server offered (crate::tls::ALPN).
        _ => Alpn::None,
    };
    // NB: rustls reports peer certificates only after its verifier accepted them, so this is
    // never an unverified certificate.
    let client_cert = conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|c| ClientCertificate(Arc::from(c.as_ref())));
    Ok(Accepted {
        stream,
        alpn,
        client_cert,
    })
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair};
    use rustls::pki_types::{PrivateKeyDer, ServerName};
    use tokio_rustls::TlsConnector;

    use super::*;
    use crate::tls::{ClientAuth, ListenerFiles};

    type Ca = CertifiedIssuer<'static, KeyPair>;

    fn ca(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| panic!("{e}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        CertifiedIssuer::self_signed(params, key).unwrap_or_else(|e| panic!("{e}"))
    }

    fn leaf(ca: &Ca, name: &str, usage: ExtendedKeyUsagePurpose) -> (rcgen::Certificate, KeyPair) {
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap_or_else(|e| panic!("{e}"));
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let cert = params.signed_by(&key, ca).unwrap_or_else(|e| panic!("{e}"));
        (cert, key)
    }

    fn write(dir: &Path, name: &str, pem: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, pem).unwrap_or_else(|e| panic!("{e}"));
        p
    }

    /// Handshakes a client presenting `client_cert` (offering ALPN `h2`) with a listener
    /// whose client certificates are optional but must chain to `client_ca`; returns what
    /// the listener's side settled.
    async fn handshake(
        client_ca: &Ca,
        client_cert: Option<&(rcgen::Certificate, KeyPair)>,
    ) -> Result<Accepted<tokio::io::DuplexStream>, HandshakeError> {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let server_ca = ca("server ca");
        let (server, server_key) = leaf(&server_ca, "gw.test", ExtendedKeyUsagePurpose::ServerAuth);
        let files = ListenerFiles {
            cert: write(dir.path(), "cert.pem", &server.pem()),
            key: write(dir.path(), "key.pem", &server_key.serialize_pem()),
            client_ca: Some((write(dir.path(), "ca.pem", &client_ca.pem()), ClientAuth::Optional)),
        };
        let listener = crate::tls::server_config(&files).unwrap_or_else(|e| panic!("{e}"));
        let mut roots = rustls::RootCertStore::empty();
        roots.add(server_ca.der().clone()).unwrap_or_else(|e| panic!("{e}"));
        let builder = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|e| panic!("{e}"))
            .with_root_certificates(roots);
        let mut config = match client_cert {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let key = PrivateKeyDer::try_from(key.serialize_der()).unwrap_or_else(|e| panic!("{e}"));
                builder
                    .with_client_auth_cert(vec![cert.der().clone()], key)
                    .unwrap_or_else(|e| panic!("{e}"))
            }
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        let (c, s) = tokio::io::duplex(64 * 1024);
        let name = ServerName::try_from("gw.test").unwrap_or_else(|e| panic!("{e}"));
        // The client runs beside the server: each waits on the other's flights.
        // Both sides at once, and the client's end kept open until the server is done (it
        // writes session tickets after the client's last flight).
        let connector = TlsConnector::from(Arc::new(config));
        let (_client, accepted) = tokio::join!(
            connector.connect(name, c),
            accept(listener.config, s, Duration::from_secs(30))
        );
        accepted
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_never_says_hello_is_dropped_at_the_bound() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let pki = ca("server ca");
        let (server, key) = leaf(&pki, "gw.test", ExtendedKeyUsagePurpose::ServerAuth);
        let files = ListenerFiles {
            cert: write(dir.path(), "cert.pem", &server.pem()),
            key: write(dir.path(), "key.pem", &key.serialize_pem()),
            client_ca: None,
        };
        let listener = crate::tls::server_config(&files).unwrap_or_else(|e| panic!("{e}"));
        // The client's end stays open and silent; the paused clock jumps to the bound.
        let (_client, s) = tokio::io::duplex(1024);
        let r = accept(listener.config, s, Duration::from_secs(10)).await;
        assert!(
            matches!(r, Err(HandshakeError::Timeout(d)) if d == Duration::from_secs(10)),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn the_verified_client_certificate_and_alpn_are_reported() {
        let client_ca = ca("client ca");
        let good = leaf(&client_ca, "client.test", ExtendedKeyUsagePurpose::ClientAuth);
        let a = handshake(&client_ca, Some(&good))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.alpn, Alpn::H2);
        assert_eq!(
            a.client_cert.as_ref().map(ClientCertificate::der),
            Some(good.0.der().as_ref())
        );

        // Optional: no certificate is accepted, and none is reported.
        let a = handshake(&client_ca, None).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.client_cert, None);

        // A certificate from another CA is refused, optional or not.
        let other = ca("other ca");
        let stranger = leaf(&other, "client.test", ExtendedKeyUsagePurpose::ClientAuth);
        let refused = handshake(&client_ca, Some(&stranger)).await;
        assert!(matches!(refused, Err(HandshakeError::Failed(_))), "{refused:?}");
    }
}
