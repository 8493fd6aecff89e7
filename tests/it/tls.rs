//! Issue 5, TLS, end to end on loopback sockets: termination with ALPN `h2` and `http/1.1`,
//! `X-Forwarded-Proto: https`, client certificates (mTLS) required and optional, upstream
//! TLS against the platform's roots or `upstream_ca`, certificate rotation on reload, and
//! the configuration errors of every TLS field.
//!
//! Every CA and certificate is generated here with rcgen. Waits are bounded by [`GUARD`]
//! only so that a regression fails instead of hanging; nothing asserts how long anything
//! takes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use portcullis::config::ConfigError;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::support::*;

/// The name the gateway's certificates are issued for; clients connect to 127.0.0.1 and
/// ask for this name (SNI), so hostname verification is real.
const GW_NAME: &str = "gw.test";

// ---------------------------------------------------------------------------------------
// A small PKI.

type Ca = CertifiedIssuer<'static, KeyPair>;

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    CertifiedIssuer::self_signed(params, key).unwrap()
}

/// A leaf certificate and its key.
struct Leaf {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Leaf {
    fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::try_from(self.key.serialize_der()).unwrap()
    }
}

/// A leaf for `names` (DNS names or IP addresses) signed by `ca`.
fn leaf(ca: &Ca, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Leaf {
    let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, ca).unwrap();
    Leaf { cert, key }
}

fn server_leaf(ca: &Ca, names: &[&str]) -> Leaf {
    leaf(ca, names, ExtendedKeyUsagePurpose::ServerAuth)
}

fn client_leaf(ca: &Ca) -> Leaf {
    leaf(ca, &["client.test"], ExtendedKeyUsagePurpose::ClientAuth)
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Where the gateway's TLS files live, apart from the harness' configuration directory.
struct TlsFiles {
    dir: tempfile::TempDir,
}

impl TlsFiles {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `leaf` as `cert.pem` and `key.pem`.
    fn install(&self, leaf: &Leaf) {
        write(&self.path("cert.pem"), &leaf.cert.pem());
        write(&self.path("key.pem"), &leaf.key.serialize_pem());
    }

    /// Writes `ca`'s certificate as `name`.
    fn ca(&self, name: &str, ca: &Ca) -> PathBuf {
        let p = self.path(name);
        write(&p, &ca.pem());
        p
    }

    /// `[server]` lines for the listener certificate.
    fn server_table(&self, extra: &str) -> String {
        format!(
            "[server]\ntls_cert = {:?}\ntls_key = {:?}\n{extra}\n",
            self.path("cert.pem").display().to_string(),
            self.path("key.pem").display().to_string()
        )
    }

    /// A gateway on the default test configuration, serving TLS with the installed
    /// certificate and `extra` lines in its `[server]` table.
    async fn start(&self, extra: &str) -> Harness {
        Harness::builder()
            .config(format!("{}{}", self.server_table(extra), default_config()))
            .start()
            .await
    }

    /// A gateway as [`Self::start`] that asks for client certificates of `clients` in
    /// `mode` (`required` or `optional`).
    async fn start_with_client_ca(&self, clients: &Ca, mode: &str) -> Harness {
        let client_ca = self.ca("clients.pem", clients);
        let extra = format!(
            "tls_client_ca = {:?}\ntls_client_auth = \"{mode}\"",
            client_ca.display().to_string()
        );
        self.start(&extra).await
    }
}

// ---------------------------------------------------------------------------------------
// A TLS client that reports what the handshake settled.

/// What one request over a fresh TLS connection got.
#[derive(Debug)]
struct Reply {
    /// The protocol ALPN settled on.
    alpn: Option<Vec<u8>>,
    /// The gateway's end-entity certificate.
    server_cert: Vec<u8>,
    version: Version,
    status: StatusCode,
    body: String,
}

/// A client configuration trusting `ca`, offering `alpn`, presenting `client` if given.
fn client_config(ca: &Ca, alpn: &[&[u8]], client: Option<&Leaf>) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let builder = ClientConfig::builder_with_provider(portcullis::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some(leaf) => builder.with_client_auth_cert(vec![leaf.der()], leaf.key_der()).unwrap(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// Opens a TLS connection to `addr` as [`GW_NAME`] and sends `GET path` with `token`, over
/// HTTP/2 if ALPN settled on `h2`, else HTTP/1.1. `Err` says where it failed.
async fn tls_get(addr: SocketAddr, config: ClientConfig, path: &str, token: &str) -> Result<Reply, String> {
    within("TLS request", async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
        let name = ServerName::try_from(GW_NAME).unwrap();
        let tls = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let (_, conn) = tls.get_ref();
        let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
        let server_cert = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec())
            .unwrap_or_default();
        let io = TokioIo::new(tls);
        let resp: Response<Incoming> = if alpn.as_deref() == Some(b"h2") {
            let req = Request::get(format!("https://{GW_NAME}{path}"))
                .header("authorization", format!("Bearer {token}"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| format!("h2 handshake: {e}"))?;
            tokio::spawn(conn);
            sender.send_request(req).await.map_err(|e| format!("request: {e}"))?
        } else {
            let req = Request::get(path)
                .header("host", GW_NAME)
                .header("authorization", format!("Bearer {token}"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| format!("http/1.1 handshake: {e}"))?;
            tokio::spawn(conn);
            sender.send_request(req).await.map_err(|e| format!("request: {e}"))?
        };
        let version = resp.version();
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok(Reply {
            alpn,
            server_cert,
            version,
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    })
    .await
}

/// Expects the gateway to refuse the handshake and returns the TLS alert it sent. In TLS 1.3
/// the client finishes its side before the server has judged the client certificate, so the
/// refusal may come as the answer to the handshake or as the first thing read after it.
async fn refused(addr: SocketAddr, config: ClientConfig) -> String {
    within("TLS refusal", async {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = ServerName::try_from(GW_NAME).unwrap();
        let mut tls = match TlsConnector::from(Arc::new(config)).connect(name, tcp).await {
            Err(e) => return e.to_string(),
            Ok(tls) => tls,
        };
        match tls.read(&mut [0u8; 1]).await {
            Err(e) => e.to_string(),
            Ok(n) => panic!("the handshake was accepted ({n} bytes read)"),
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------
// A TLS upstream.

/// An upstream that speaks only TLS with `leaf`'s certificate.
async fn tls_upstream(leaf: &Leaf) -> Upstream {
    Upstream::builder().tls(leaf.der(), leaf.key_der()).start().await
}

/// The default test configuration with the resource server's upstream at `upstream` and
/// the `[server]` table `server` in front.
fn config_with(server: &str, upstream: &str) -> String {
    format!(
        "{server}\n{}",
        default_config().replace("upstream = \"http://{upstream}\"", &format!("upstream = {upstream:?}"))
    )
}

// ---------------------------------------------------------------------------------------
// Termination.

#[tokio::test]
async fn h2_and_http1_over_tls_are_forwarded_with_x_forwarded_proto_https() {
    let pki = ca("gateway ca");
    let files = TlsFiles::new();
    files.install(&server_leaf(&pki, &[GW_NAME]));
    let h = files.start("").await;
    let token = h.key.sign(&claims("read"));
    let addr = h.gateway.local_addr();

    // (ALPN offered, ALPN settled, HTTP version served)
    type Case = (&'static [&'static [u8]], Option<&'static [u8]>, Version);
    let cases: [Case; 3] = [
        (&[b"h2", b"http/1.1"], Some(b"h2"), Version::HTTP_2),
        (&[b"http/1.1"], Some(b"http/1.1"), Version::HTTP_11),
        // No ALPN at all: the first bytes decide, as on a plain listener.
        (&[], None, Version::HTTP_11),
    ];
    for (i, (offer, settled, version)) in cases.into_iter().enumerate() {
        let r = tls_get(addr, client_config(&pki, offer, None), "/items/7", &token)
            .await
            .unwrap_or_else(|e| panic!("offer {offer:?}: {e}"));
        assert_eq!(r.alpn.as_deref(), settled, "offer {offer:?}");
        assert_eq!(r.version, version, "offer {offer:?}");
        assert_eq!(r.status, StatusCode::OK, "offer {offer:?}: {}", r.body);
        assert!(r.body.starts_with("upstream saw GET /items/7"), "{}", r.body);
        assert_eq!(h.upstream.hits(), i + 1);
        let seen = h.upstream.last().await;
        assert_eq!(
            seen.headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()),
            Some("https"),
            "offer {offer:?}"
        );
    }

    // Refusals are answered over TLS the same way as over plain HTTP.
    let r = tls_get(addr, client_config(&pki, &[b"h2"], None), "/items/7", "not-a-token")
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(h.upstream.hits(), 3);
}

#[tokio::test]
async fn the_tls_listener_does_not_speak_plain_http() {
    let pki = ca("gateway ca");
    let files = TlsFiles::new();
    files.install(&server_leaf(&pki, &[GW_NAME]));
    let h = files.start("").await;
    let token = h.key.sign(&claims("read"));
    let mut tcp = TcpStream::connect(h.gateway.local_addr()).await.unwrap();
    let req = format!(
        "GET /items/7 HTTP/1.1\r\nHost: {GW_NAME}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    // The handshake fails: at most a TLS alert comes back, then the connection closes.
    let _ = within("reading the refusal", tcp.read_to_end(&mut buf)).await;
    assert!(!buf.starts_with(b"HTTP/"), "{:?}", String::from_utf8_lossy(&buf));
    assert_eq!(h.upstream.hits(), 0);
}

// ---------------------------------------------------------------------------------------
// Client certificates.

#[tokio::test]
async fn required_client_certificates_refuse_none_and_strangers() {
    let pki = ca("gateway ca");
    let clients = ca("client ca");
    let stranger_ca = ca("stranger ca");
    let files = TlsFiles::new();
    files.install(&server_leaf(&pki, &[GW_NAME]));
    let h = files.start_with_client_ca(&clients, "required").await;
    let token = h.key.sign(&claims("read"));
    let addr = h.gateway.local_addr();

    // No certificate: RFC 8446 § 4.4.2.4's certificate_required alert.
    let alert = refused(addr, client_config(&pki, &[b"h2"], None)).await;
    assert!(alert.contains("CertificateRequired"), "{alert}");
    // A client certificate of another CA: unknown_ca.
    let stranger = client_leaf(&stranger_ca);
    let alert = refused(addr, client_config(&pki, &[b"h2"], Some(&stranger))).await;
    assert!(alert.contains("UnknownCA"), "{alert}");
    // And through a full request attempt: no answer, nothing forwarded.
    let r = tls_get(
        addr,
        client_config(&pki, &[b"http/1.1"], Some(&stranger)),
        "/items/7",
        &token,
    )
    .await;
    assert!(r.is_err(), "{r:?}");
    assert_eq!(h.upstream.hits(), 0);

    let good = client_leaf(&clients);
    for alpn in [b"h2".as_slice(), b"http/1.1"] {
        let r = tls_get(addr, client_config(&pki, &[alpn], Some(&good)), "/items/7", &token)
            .await
            .unwrap();
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    assert_eq!(h.upstream.hits(), 2);
}

#[tokio::test]
async fn optional_client_certificates_admit_none_but_refuse_strangers() {
    let pki = ca("gateway ca");
    let clients = ca("client ca");
    let files = TlsFiles::new();
    files.install(&server_leaf(&pki, &[GW_NAME]));
    let h = files.start_with_client_ca(&clients, "optional").await;
    let token = h.key.sign(&claims("read"));
    let addr = h.gateway.local_addr();

    let none = tls_get(addr, client_config(&pki, &[b"h2"], None), "/items/7", &token)
        .await
        .unwrap();
    assert_eq!(none.status, StatusCode::OK);
    let good = tls_get(
        addr,
        client_config(&pki, &[b"h2"], Some(&client_leaf(&clients))),
        "/items/7",
        &token,
    )
    .await
    .unwrap();
    assert_eq!(good.status, StatusCode::OK);
    let stranger = client_leaf(&ca("stranger ca"));
    let alert = refused(addr, client_config(&pki, &[b"h2"], Some(&stranger))).await;
    assert!(alert.contains("UnknownCA"), "{alert}");
    assert_eq!(h.upstream.hits(), 2);
}

// ---------------------------------------------------------------------------------------
// Rotation.

#[tokio::test]
async fn a_reload_rotates_the_certificate_and_a_bad_one_keeps_the_old() {
    let pki = ca("gateway ca");
    let files = TlsFiles::new();
    let first = server_leaf(&pki, &[GW_NAME]);
    files.install(&first);
    let h = files.start("").await;
    let token = h.key.sign(&claims("read"));
    let addr = h.gateway.local_addr();
    let served = |r: Reply| {
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.server_cert
    };
    let r = tls_get(addr, client_config(&pki, &[b"h2"], None), "/items/7", &token).await;
    assert_eq!(served(r.unwrap()), first.der().to_vec());

    // A new certificate and key: new connections get them after the reload.
    let second = server_leaf(&pki, &[GW_NAME]);
    files.install(&second);
    h.gateway.reload().await.unwrap();
    let r = tls_get(addr, client_config(&pki, &[b"h2"], None), "/items/7", &token).await;
    assert_eq!(served(r.unwrap()), second.der().to_vec());

    // A certificate without its key: the reload is refused, naming the field, and the
    // second certificate goes on serving.
    let third = server_leaf(&pki, &[GW_NAME]);
    write(&files.path("cert.pem"), &third.cert.pem());
    let errors = h.gateway.reload().await.expect_err("a mismatched key was accepted");
    assert!(
        errors
            .0
            .iter()
            .any(|e| e.field.as_deref() == Some("tls_key") && e.message.contains("is not the key of the certificate")),
        "{errors}"
    );
    let r = tls_get(addr, client_config(&pki, &[b"http/1.1"], None), "/items/7", &token).await;
    assert_eq!(served(r.unwrap()), second.der().to_vec());
}

#[tokio::test]
async fn a_reload_cannot_turn_tls_off() {
    let pki = ca("gateway ca");
    let files = TlsFiles::new();
    files.install(&server_leaf(&pki, &[GW_NAME]));
    let h = files.start("").await;
    let path = h.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let plain: String = text
        .lines()
        .filter(|l| !l.starts_with("tls_") && *l != "[server]")
        .collect::<Vec<_>>()
        .join("\n");
    write(&path, &plain);
    let errors = h.gateway.reload().await.expect_err("TLS was turned off");
    assert!(
        errors
            .0
            .iter()
            .any(|e| e.field.as_deref() == Some("tls_cert") && e.message.contains("restart")),
        "{errors}"
    );
    let token = h.key.sign(&claims("read"));
    let r = tls_get(
        h.gateway.local_addr(),
        client_config(&pki, &[b"h2"], None),
        "/items/7",
        &token,
    )
    .await
    .unwrap();
    assert_eq!(r.status, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------
// Upstream TLS.

#[tokio::test]
async fn an_https_upstream_chaining_to_upstream_ca_is_served_with_sni() {
    let pki = ca("upstream ca");
    let up = tls_upstream(&server_leaf(&pki, &["localhost"])).await;
    let files = TlsFiles::new();
    let ca_file = files.ca("upstream-ca.pem", &pki);
    let server = format!("[server]\nupstream_ca = {:?}\n", ca_file.display().to_string());
    let h = Harness::builder()
        .config(config_with(&server, &format!("https://localhost:{}", up.addr.port())))
        .start()
        .await;
    let a = h.get("/items/7", &h.key.sign(&claims("read"))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body, "upstream saw GET /items/7 (0 body bytes)");
    assert_eq!(up.hits(), 1);
    assert_eq!(up.sni().await.as_deref(), Some("localhost"));
}

#[tokio::test]
async fn an_upstream_with_an_untrusted_certificate_is_a_502() {
    let trusted = ca("upstream ca");
    let untrusted = ca("someone else's ca");
    let files = TlsFiles::new();
    let ca_file = files.ca("upstream-ca.pem", &trusted);
    let with_ca = format!("[server]\nupstream_ca = {:?}\n", ca_file.display().to_string());
    let cases = [
        // Signed by a CA the gateway does not know, with upstream_ca set...
        ("another CA", with_ca.clone(), server_leaf(&untrusted, &["127.0.0.1"])),
        // ... and with the platform's roots.
        ("platform roots", String::new(), server_leaf(&untrusted, &["127.0.0.1"])),
        // The right CA, but issued for another name: hostname verification refuses it.
        ("another name", with_ca, server_leaf(&trusted, &["elsewhere.test"])),
    ];
    for (what, server, leaf) in cases {
        let up = tls_upstream(&leaf).await;
        let h = Harness::builder()
            .config(config_with(&server, &format!("https://{}", up.addr)))
            .start()
            .await;
        let a = h.get("/items/7", &h.key.sign(&claims("read"))).await;
        assert_eq!(a.status, StatusCode::BAD_GATEWAY, "{what}: {}", a.body);
        assert_eq!(a.error(), "upstream_unavailable", "{what}");
        assert_eq!(up.hits(), 0, "{what}");
        h.gateway.shutdown().await;
    }
}

#[tokio::test]
async fn upstream_trust_follows_a_reload() {
    let old = ca("old upstream ca");
    let new = ca("new upstream ca");
    let up = tls_upstream(&server_leaf(&new, &["127.0.0.1"])).await;
    let files = TlsFiles::new();
    let ca_file = files.ca("upstream-ca.pem", &old);
    let server = format!("[server]\nupstream_ca = {:?}\n", ca_file.display().to_string());
    let h = Harness::builder()
        .config(config_with(&server, &format!("https://{}", up.addr)))
        .start()
        .await;
    let token = h.key.sign(&claims("read"));
    assert_eq!(h.get("/items/7", &token).await.status, StatusCode::BAD_GATEWAY);
    files.ca("upstream-ca.pem", &new);
    h.gateway.reload().await.unwrap();
    let a = h.get("/items/7", &token).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(up.hits(), 1);
}

// ---------------------------------------------------------------------------------------
// Configuration errors.

/// Compiles a configuration whose `[server]` table is `server` (with `{dir}` replaced by a
/// directory holding `good-cert.pem`, `good-key.pem`, `other-key.pem`, `ca.pem`) and returns
/// its errors, checking each names the configuration file and the `server` entity.
fn server_errors(server: &str) -> Vec<ConfigError> {
    let pki = ca("gateway ca");
    let files = TlsFiles::new();
    let good = server_leaf(&pki, &[GW_NAME]);
    write(&files.path("good-cert.pem"), &good.cert.pem());
    write(&files.path("good-key.pem"), &good.key.serialize_pem());
    write(
        &files.path("other-key.pem"),
        &server_leaf(&pki, &[GW_NAME]).key.serialize_pem(),
    );
    files.ca("ca.pem", &pki);
    let key = TestKey::es256("k1");
    write(&files.path("keys.json"), &public_jwks(&[&key]));
    let config = files.path("portcullis.toml");
    let server = server.replace("{dir}", &files.dir.path().display().to_string());
    let text = format!("{server}\n{}", default_config())
        .replace("{upstream}", "127.0.0.1:9")
        .replace("{keys}", &files.path("keys.json").display().to_string());
    write(&config, &text);
    let errors = match portcullis::app::load_snapshot(&config, portcullis::time::system(), None) {
        Ok(_) => Vec::new(),
        Err(e) => e.0,
    };
    for e in &errors {
        assert_eq!(e.file, config, "{e}");
        assert_eq!(e.entity, "server", "{e}");
    }
    errors
}

#[test]
fn tls_configuration_errors_name_file_entity_and_field() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "missing key file",
            "tls_cert = \"{dir}/good-cert.pem\"\ntls_key = \"{dir}/nope.pem\"",
            "tls_key",
        ),
        (
            "certificate and key do not match",
            "tls_cert = \"{dir}/good-cert.pem\"\ntls_key = \"{dir}/other-key.pem\"",
            "tls_key",
        ),
        (
            "key without certificate",
            "tls_key = \"{dir}/good-key.pem\"",
            "tls_cert",
        ),
        (
            "certificate without key",
            "tls_cert = \"{dir}/good-cert.pem\"",
            "tls_key",
        ),
        (
            "a key where the certificate goes",
            "tls_cert = \"{dir}/good-key.pem\"\ntls_key = \"{dir}/good-key.pem\"",
            "tls_cert",
        ),
        (
            "a certificate where the key goes",
            "tls_cert = \"{dir}/good-cert.pem\"\ntls_key = \"{dir}/good-cert.pem\"",
            "tls_key",
        ),
        (
            "empty path",
            "tls_cert = \"\"\ntls_key = \"{dir}/good-key.pem\"",
            "tls_cert",
        ),
        (
            "unreadable client CA",
            "tls_cert = \"{dir}/good-cert.pem\"\ntls_key = \"{dir}/good-key.pem\"\ntls_client_ca = \"{dir}/nope.pem\"",
            "tls_client_ca",
        ),
        (
            "client CA file without certificates",
            "tls_cert = \"{dir}/good-cert.pem\"\ntls_key = \"{dir}/good-key.pem\"\ntls_client_ca = \"{dir}/good-key.pem\"",
            "tls_client_ca",
        ),
        (
            "client auth without client CA",
            "tls_cert = \"{dir}/good-cert.pem\"\ntls_key = \"{dir}/good-key.pem\"\ntls_client_auth = \"required\"",
            "tls_client_auth",
        ),
        (
            "unknown client auth mode",
            "tls_cert = \"{dir}/good-cert.pem\"\ntls_key = \"{dir}/good-key.pem\"\ntls_client_ca = \"{dir}/ca.pem\"\ntls_client_auth = \"sometimes\"",
            "tls_client_auth",
        ),
        (
            "client CA without TLS",
            "tls_client_ca = \"{dir}/ca.pem\"",
            "tls_client_ca",
        ),
        (
            "unreadable upstream CA",
            "upstream_ca = \"{dir}/nope.pem\"",
            "upstream_ca",
        ),
        (
            "upstream CA without certificates",
            "upstream_ca = \"{dir}/good-key.pem\"",
            "upstream_ca",
        ),
    ];
    for (what, server, field) in cases {
        let errors = server_errors(&format!("[server]\n{server}"));
        assert!(
            errors.iter().any(|e| e.field.as_deref() == Some(*field)),
            "{what}: expected an error on `{field}`, got {errors:?}"
        );
    }

    // The same files, well formed, compile.
    let ok = server_errors(
        "[server]\ntls_cert = \"{dir}/good-cert.pem\"\ntls_key = \"{dir}/good-key.pem\"\ntls_client_ca = \"{dir}/ca.pem\"\nupstream_ca = \"{dir}/ca.pem\"",
    );
    assert!(ok.is_empty(), "{ok:?}");
}

#[test]
fn a_misspelled_tls_field_is_an_error() {
    let errors = server_errors("[server]\ntls_certificate = \"{dir}/good-cert.pem\"");
    assert!(
        errors
            .iter()
            .any(|e| e.field.as_deref() == Some("tls_certificate") || e.message.contains("tls_certificate")),
        "{errors:?}"
    );
}
