//! client_credentials token requests (RFC 6749 § 4.4): the one that fetches the tokens a
//! resource load carries, and the requests of a load against a token endpoint itself,
//! authenticated with `client_secret_basic` or `private_key_jwt` (a fresh assertion per
//! request, RFC 7523, since an assertion's `jti` is single use).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::HeaderValue;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http_body_util::{BodyExt, Full};
use josekit::jws::JwsSigner;
use serde_json::Value;

use super::conn::Conn;
use super::tokens::{invalid_variant, pool};
use super::{Fail, Params};

const FORM: HeaderValue = HeaderValue::from_static("application/x-www-form-urlencoded");

/// What a client_credentials request sends.
#[derive(Clone)]
pub(super) struct FetchParams {
    client_id: String,
    client_secret: String,
    scope: Option<String>,
    resource: Option<String>,
}

impl FetchParams {
    /// From the command line (clap requires the client's id and secret with --token-url).
    pub(super) fn of(p: &Params) -> Self {
        Self {
            client_id: p.client_id.clone().unwrap_or_default(),
            client_secret: p.client_secret.clone().unwrap_or_default(),
            scope: p.scope.clone(),
            resource: p.resource_server.clone(),
        }
    }
}

/// The form of a client_credentials request, with `scope` and `resource` when given.
fn form(scope: Option<&str>, resource: Option<&str>) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "client_credentials");
    if let Some(s) = scope {
        form.append_pair("scope", s);
    }
    if let Some(r) = resource {
        form.append_pair("resource", r);
    }
    form.finish()
}

/// `Basic` credentials (RFC 6749 § 2.3.1), as the gateway's own clients send them.
fn basic(id: &str, secret: &str) -> Result<HeaderValue, Fail> {
    portcullis::model::secret::basic_authorization(id, secret)
        .ok_or_else(|| (1, "the client id is not a header value".into()))
}

/// A token from `url` by client_credentials with `client_secret_basic`, and its lifetime.
pub(super) async fn fetch(url: &str, p: &FetchParams) -> Result<(String, Option<Duration>), Fail> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| (super::super::EXIT_CONFIG, format!("{url:?} is not a URL")))?;
    let mut conn = Conn::open(&uri, false).await?;
    let req = conn
        .request(&http::Method::POST, &uri)
        .header(AUTHORIZATION, basic(&p.client_id, &p.client_secret)?)
        .header(CONTENT_TYPE, FORM)
        .body(Full::new(Bytes::from(form(p.scope.as_deref(), p.resource.as_deref()))))
        .map_err(|e| (1, e.to_string()))?;
    let resp = conn
        .send
        .send(req)
        .await
        .map_err(|e| (1, format!("token endpoint: {e}")))?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| (1, e.to_string()))?
        .to_bytes();
    let v: Value =
        serde_json::from_slice(&body).map_err(|_| (1, format!("token endpoint answered {status} without JSON")))?;
    let token = v["access_token"]
        .as_str()
        .ok_or_else(|| (1, format!("token endpoint answered {status}: {v}")))?
        .to_owned();
    Ok((token, v["expires_in"].as_u64().map(Duration::from_secs)))
}

/// The requests of a load against a token endpoint.
pub(super) struct Grant {
    form: String,
    /// The invalid variant's form: a `resource` no authorization server serves, refused
    /// with `invalid_target` after the client authenticated. (A wrong secret or a bad
    /// assertion would soon throttle the client at the load's one address, and the load
    /// would measure the throttle.)
    invalid_form: String,
    auth: ClientAuth,
}

enum ClientAuth {
    /// `client_secret_basic`.
    Basic(HeaderValue),
    /// `private_key_jwt`.
    Assertion(Box<Assertions>),
}

struct Assertions {
    client_id: String,
    audience: String,
    signer: Box<dyn JwsSigner>,
    kid: Option<String>,
    clock: portcullis::time::SharedClock,
    /// Minted before the load (`--premint`), each sent once; then minted per request.
    premint: Vec<String>,
    next: AtomicUsize,
}

/// How long a pre-minted assertion is valid: long enough for a load of a few minutes.
const PREMINTED_LIFETIME: i64 = 300;

/// The `resource` of the invalid variant.
const NO_SUCH_RESOURCE: &str = "https://no-such-resource.invalid/";

impl Grant {
    /// From the command line: `--client-id` with `--client-secret` or `--client-key`.
    pub(super) fn new(p: &Params) -> Result<Self, Fail> {
        let usage = |m: String| (super::super::EXIT_CONFIG, m);
        let id = p
            .client_id
            .clone()
            .ok_or_else(|| usage("--client-credentials needs --client-id".into()))?;
        let auth = match (&p.client_secret, &p.client_key) {
            (Some(secret), None) => ClientAuth::Basic(basic(&id, secret)?),
            (None, Some(file)) => {
                let (signer, kid) = assertion_signer(file).map_err(usage)?;
                let mut a = Assertions {
                    client_id: id,
                    audience: p.assertion_audience.clone().unwrap_or_else(|| p.target.clone()),
                    signer,
                    kid,
                    clock: portcullis::time::system(),
                    premint: Vec::new(),
                    next: AtomicUsize::new(0),
                };
                if let Some(n) = p.premint {
                    // The generator then spends its time sending, not signing.
                    a.premint = pool(n, |_| a.mint(PREMINTED_LIFETIME))?;
                }
                ClientAuth::Assertion(Box::new(a))
            }
            _ => {
                return Err(usage(
                    "--client-credentials needs one of --client-secret and --client-key".into(),
                ));
            }
        };
        Ok(Self {
            form: form(p.scope.as_deref(), p.resource_server.as_deref()),
            invalid_form: form(p.scope.as_deref(), Some(NO_SUCH_RESOURCE)),
            auth,
        })
    }

    /// Request `i`'s `Authorization` and body; invalid for the first `share` of each
    /// hundred.
    pub(super) fn for_request(&self, i: u64, share: f64) -> Result<(Option<HeaderValue>, Bytes), Fail> {
        let form = match invalid_variant(i, share, 1) {
            Some(_) => &self.invalid_form,
            None => &self.form,
        };
        match &self.auth {
            ClientAuth::Basic(header) => Ok((Some(header.clone()), Bytes::from(form.clone()))),
            ClientAuth::Assertion(a) => {
                let mut body = form_urlencoded::Serializer::new(form.clone());
                body.append_pair("client_assertion_type", portcullis::issuer::JWT_BEARER);
                body.append_pair("client_assertion", &a.next()?);
                Ok((None, Bytes::from(body.finish())))
            }
        }
    }

    /// The content type of every request.
    pub(super) fn content_type() -> HeaderValue {
        FORM
    }
}

impl Assertions {
    /// The next client assertion: a pre-minted one while they last, else a new one with a
    /// minute to live. Each has `iss` = `sub` = the client, `aud` the token endpoint and a
    /// random single-use `jti`.
    fn next(&self) -> Result<String, Fail> {
        match self.premint.get(self.next.fetch_add(1, Ordering::Relaxed)) {
            Some(a) => Ok(a.clone()),
            None => self.mint(60),
        }
    }

    /// A new assertion valid for `lifetime` seconds.
    fn mint(&self, lifetime: i64) -> Result<String, Fail> {
        let now = self.clock.now();
        let mut payload = josekit::jwt::JwtPayload::new();
        payload.set_issuer(&self.client_id);
        payload.set_subject(&self.client_id);
        payload.set_audience(vec![self.audience.as_str()]);
        let mut jti = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut jti);
        payload.set_jwt_id(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(jti));
        let at = |s: i64| std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(s).unwrap_or(0));
        payload.set_issued_at(&at(now));
        payload.set_expires_at(&at(now + lifetime));
        let mut header = josekit::jws::JwsHeader::new();
        header.set_token_type("JWT");
        if let Some(kid) = &self.kid {
            header.set_key_id(kid);
        }
        josekit::jwt::encode_with_signer(&payload, &header, &*self.signer).map_err(|e| (1, e.to_string()))
    }
}

/// The signer of a private JWK file (or the first key of a JWK set): its `alg`, else the
/// usual one for its key type.
fn assertion_signer(file: &std::path::Path) -> Result<(Box<dyn JwsSigner>, Option<String>), String> {
    use josekit::jws::{ES256, ES384, ES512, EdDSA, PS256, PS384, PS512, RS256, RS384, RS512};
    let text = std::fs::read(file).map_err(|e| format!("--client-key {}: {e}", file.display()))?;
    let value: Value =
        serde_json::from_slice(&text).map_err(|e| format!("--client-key {}: not JSON: {e}", file.display()))?;
    let map = value
        .get("keys")
        .and_then(|k| k.get(0))
        .unwrap_or(&value)
        .as_object()
        .cloned()
        .ok_or_else(|| format!("--client-key {}: not a JWK", file.display()))?;
    let jwk = josekit::jwk::Jwk::from_map(map).map_err(|e| format!("--client-key {}: {e}", file.display()))?;
    let alg = match (jwk.algorithm(), jwk.key_type(), jwk.curve()) {
        (Some(a), _, _) => a.to_owned(),
        (None, "EC", Some("P-384")) => "ES384".into(),
        (None, "EC", Some("P-521")) => "ES512".into(),
        (None, "EC", _) => "ES256".into(),
        (None, "OKP", _) => "EdDSA".into(),
        (None, _, _) => "RS256".into(),
    };
    let e = |e: josekit::JoseError| format!("--client-key {}: {e}", file.display());
    let signer: Box<dyn JwsSigner> = match alg.as_str() {
        "ES256" => Box::new(ES256.signer_from_jwk(&jwk).map_err(e)?),
        "ES384" => Box::new(ES384.signer_from_jwk(&jwk).map_err(e)?),
        "ES512" => Box::new(ES512.signer_from_jwk(&jwk).map_err(e)?),
        "EdDSA" => Box::new(EdDSA.signer_from_jwk(&jwk).map_err(e)?),
        "RS256" => Box::new(RS256.signer_from_jwk(&jwk).map_err(e)?),
        "RS384" => Box::new(RS384.signer_from_jwk(&jwk).map_err(e)?),
        "RS512" => Box::new(RS512.signer_from_jwk(&jwk).map_err(e)?),
        "PS256" => Box::new(PS256.signer_from_jwk(&jwk).map_err(e)?),
        "PS384" => Box::new(PS384.signer_from_jwk(&jwk).map_err(e)?),
        "PS512" => Box::new(PS512.signer_from_jwk(&jwk).map_err(e)?),
        other => return Err(format!("--client-key {}: cannot sign with {other:?}", file.display())),
    };
    Ok((signer, jwk.key_id().map(str::to_owned)))
}
