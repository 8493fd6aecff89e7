//! The embedded issuer: per realm with signing keys, RFC 8414 metadata, the public JWKS,
//! the `client_credentials` token endpoint, RFC 7662 introspection and RFC 7009
//! revocation, served on the gateway's listener under the realm's issuer URL path; and an
//! authorization endpoint that refuses every request, so the metadata names one.

pub(crate) mod client_auth;
mod error;
pub(crate) mod form;
mod gate;
mod introspect;
mod mint;
mod secrets;
mod throttle;
mod token_endpoint;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{Value, json};

pub use client_auth::{HMAC_ALGS, JWT_BEARER, SeenAssertions};
pub use error::OAuthError;
pub use mint::{MintError, MintRequest, mint};
pub use secrets::{SecretChecker, SecretError, check_phc, hash_secret};
pub use throttle::Source;
pub use token_endpoint::Issued;

use crate::jwks::alg_name;
use crate::model::{IssuerEndpoint, RealmRef};
use crate::respond;
use crate::snapshot::Snapshot;
use crate::store::Store;
use crate::verifier::Verifier;

/// Runtime state of the embedded issuers (all realms).
#[derive(Debug)]
pub struct Issuer {
    verifier: Arc<Verifier>,
    secrets: SecretChecker,
    seen: SeenAssertions,
    /// Where revocations are committed (none when embedded without one).
    store: Option<Store>,
}

/// What an issuer request came to, for the access log and metrics. Never a token, secret or
/// assertion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The RFC 6749 § 5.2 error code answered; `None` on success.
    pub error: Option<&'static str>,
    /// The refusal in words (the `error_description` the client got).
    pub detail: Option<String>,
    /// The client an access token was issued to.
    pub client_id: Option<String>,
    /// The resource server an access token was issued for.
    pub resource_server: Option<String>,
}

impl Issuer {
    /// An issuer deciding with `verifier`'s snapshot, cache and revocation list, committing
    /// revocations and assertion `jti`s to `store` when there is one (then they hold across
    /// restarts and replicas).
    pub fn new(verifier: Arc<Verifier>, store: Option<Store>) -> Self {
        let secrets = SecretChecker::new(verifier.clock().clone());
        Self {
            verifier,
            secrets,
            seen: SeenAssertions::new(store.clone()),
            store,
        }
    }

    /// The secret checker client authentication uses: its gate and failure throttle bound
    /// every other argon2 check of the gateway too (the Management API's static token).
    pub fn secrets(&self) -> &SecretChecker {
        &self.secrets
    }

    /// Forgets remembered secret checks (on reload: secrets may have changed).
    pub fn forget_secrets(&self) {
        self.secrets.forget();
    }

    /// Answers a request for `endpoint` of `realm` from the peer at `remote`, and says what
    /// came of it (for the access log and metrics, which the server writes).
    pub async fn handle(
        &self,
        snap: &Snapshot,
        realm: RealmRef,
        endpoint: IssuerEndpoint,
        req: Request<Incoming>,
        remote: SocketAddr,
    ) -> (Response<Full<Bytes>>, Outcome) {
        let source = Source::of(remote.ip());
        let realm_name = snap.realms[realm].name.as_str().to_owned();
        let allow = endpoint.allow();
        if !allow.split(", ").any(|m| m == req.method().as_str()) {
            let mut resp = respond::json(
                StatusCode::METHOD_NOT_ALLOWED,
                &json!({ "error": "invalid_request", "error_description": "method not allowed" }),
            );
            resp.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
            let outcome = Outcome {
                error: Some("invalid_request"),
                detail: Some("method not allowed".into()),
                ..Outcome::default()
            };
            return (resp, outcome);
        }
        let plain = |r: Result<Response<Full<Bytes>>, OAuthError>| r.map(|resp| (resp, Outcome::default()));
        let result = match endpoint {
            IssuerEndpoint::Metadata => plain(Ok(respond::json(StatusCode::OK, &metadata(snap, realm)))),
            IssuerEndpoint::Jwks => {
                let keys: Vec<&serde_json::Map<String, Value>> =
                    snap.realms[realm].signing.keys().iter().map(|k| &k.public).collect();
                let mut resp = respond::json(StatusCode::OK, &json!({ "keys": keys }));
                resp.headers_mut()
                    .insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
                resp.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/jwk-set+json"));
                plain(Ok(resp))
            }
            IssuerEndpoint::Token => self.token(snap, realm, req, source).await,
            IssuerEndpoint::Introspect => plain(self.introspect(snap, realm, req, source).await),
            IssuerEndpoint::Revoke => plain(self.revoke(snap, realm, req, source).await),
            // RFC 6749 § 4.1.2.1 would redirect the error to the client's redirection URI,
            // but no client registers one (client_credentials needs none), and redirecting to
            // an unregistered `redirect_uri` would make an open redirector (§ 10.15): so
            // always the 400 JSON error, to the user agent itself.
            IssuerEndpoint::Authorize => Err(OAuthError::UnsupportedResponseType),
        };
        result.unwrap_or_else(|e| {
            let outcome = Outcome {
                error: Some(e.code()),
                detail: Some(e.to_string()),
                ..Outcome::default()
            };
            (e.response(&realm_name), outcome)
        })
    }

    fn auth_context<'a>(
        &'a self,
        snap: &'a Snapshot,
        realm: RealmRef,
        audiences: &'a [String],
        source: Source,
    ) -> client_auth::AuthContext<'a> {
        client_auth::AuthContext {
            realm: &snap.realms[realm],
            audiences,
            now: self.verifier.clock().now(),
            secrets: &self.secrets,
            seen: &self.seen,
            source,
        }
    }

    async fn token(
        &self,
        snap: &Snapshot,
        realm: RealmRef,
        req: Request<Incoming>,
        source: Source,
    ) -> Result<(Response<Full<Bytes>>, Outcome), OAuthError> {
        let (parts, body) = req.into_parts();
        let form = form::read(&parts.headers, body).await?;
        let r = &snap.realms[realm];
        // RFC 7523 § 3: the assertion's aud is the token endpoint URL; the issuer is also
        // accepted, as OIDC Core § 9 and most clients use one of the two.
        let audiences = [endpoint_url(&r.issuer, IssuerEndpoint::Token), r.issuer.clone()];
        let cx = self.auth_context(snap, realm, &audiences, source);
        let issued = token_endpoint::token(&cx, snap, realm, &parts.headers, &form).await?;
        // The access line (written by the server) names client and target, never the token.
        let outcome = Outcome {
            client_id: Some(issued.client_id.clone()),
            resource_server: Some(issued.resource_server.clone()),
            ..Outcome::default()
        };
        let mut body = json!({
            "access_token": issued.access_token,
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
        });
        if !issued.scope.is_empty() {
            body["scope"] = issued.scope.into();
        }
        Ok((respond::json(StatusCode::OK, &body), outcome))
    }

    async fn introspect(
        &self,
        snap: &Snapshot,
        realm: RealmRef,
        req: Request<Incoming>,
        source: Source,
    ) -> Result<Response<Full<Bytes>>, OAuthError> {
        let (parts, body) = req.into_parts();
        let form = form::read(&parts.headers, body).await?;
        // Resource servers authenticate with secrets only; no assertion audience applies.
        let cx = self.auth_context(snap, realm, &[], source);
        let asking = match introspect::authenticate_caller(&cx, snap, realm, &parts.headers, &form, false).await? {
            introspect::Caller::ResourceServer(i) => i,
            introspect::Caller::Client(_) => return Err(OAuthError::ServerError),
        };
        let answer = introspect::introspect(&self.verifier, snap, asking, &form).await?;
        Ok(respond::json(StatusCode::OK, &answer))
    }

    async fn revoke(
        &self,
        snap: &Snapshot,
        realm: RealmRef,
        req: Request<Incoming>,
        source: Source,
    ) -> Result<Response<Full<Bytes>>, OAuthError> {
        let (parts, body) = req.into_parts();
        let form = form::read(&parts.headers, body).await?;
        let r = &snap.realms[realm];
        // A client's assertion here names the revocation endpoint, the token endpoint (RFC
        // 7523 § 3 names it, and clients reuse their assertion code) or the issuer.
        let audiences = [
            endpoint_url(&r.issuer, IssuerEndpoint::Revoke),
            endpoint_url(&r.issuer, IssuerEndpoint::Token),
            r.issuer.clone(),
        ];
        let cx = self.auth_context(snap, realm, &audiences, source);
        let caller = introspect::authenticate_caller(&cx, snap, realm, &parts.headers, &form, true).await?;
        introspect::revoke(&self.verifier, self.store.as_ref(), snap, realm, caller, &form).await?;
        let mut resp = Response::new(Full::new(Bytes::new()));
        resp.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(resp)
    }
}

/// An endpoint's absolute URL.
pub fn endpoint_url(issuer: &str, endpoint: IssuerEndpoint) -> String {
    format!("{}{}", issuer.trim_end_matches('/'), endpoint.suffix())
}

/// RFC 8414 § 2 metadata for a realm.
fn metadata(snap: &Snapshot, realm: RealmRef) -> Value {
    let r = &snap.realms[realm];
    let mut scopes: Vec<&str> = Vec::new();
    for rs in snap.resource_servers.iter().filter(|rs| rs.realm == realm) {
        for s in rs.scopes.iter() {
            if !scopes.contains(&s.as_str()) {
                scopes.push(s.as_str());
            }
        }
    }
    let mut assertion_algs: Vec<&str> = r.algorithms.iter().map(|a| alg_name(*a)).collect();
    assertion_algs.extend(HMAC_ALGS.iter().map(|a| alg_name(*a)));
    let secret_methods = ["client_secret_basic", "client_secret_post"];
    let client_methods = [
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
        "private_key_jwt",
    ];
    // RFC 9728 § 4: the resources its tokens are for.
    let resources: Vec<&str> = snap
        .resource_servers
        .iter()
        .filter(|rs| rs.realm == realm)
        .map(|rs| rs.audience.as_str())
        .collect();
    json!({
        "issuer": r.issuer,
        // RFC 8414 § 2 requires both whenever a grant type uses the authorization endpoint
        // (client_credentials does not), and the MCP SDKs reject metadata without them. The
        // endpoint refuses every request with `unsupported_response_type`; `none` (OAuth 2.0
        // Multiple Response Type Encoding Practices § 5) is the one registered response type
        // that hands out nothing, so no flow is claimed that is not served.
        "authorization_endpoint": endpoint_url(&r.issuer, IssuerEndpoint::Authorize),
        "response_types_supported": ["none"],
        "token_endpoint": endpoint_url(&r.issuer, IssuerEndpoint::Token),
        "jwks_uri": endpoint_url(&r.issuer, IssuerEndpoint::Jwks),
        "introspection_endpoint": endpoint_url(&r.issuer, IssuerEndpoint::Introspect),
        "revocation_endpoint": endpoint_url(&r.issuer, IssuerEndpoint::Revoke),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": client_methods,
        "token_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "introspection_endpoint_auth_methods_supported": secret_methods,
        // RFC 7009 § 2.1: clients revoke their own tokens with their registered method;
        // resource servers theirs with their own credentials.
        "revocation_endpoint_auth_methods_supported": client_methods,
        "revocation_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "scopes_supported": scopes,
        "protected_resources": resources,
    })
}
