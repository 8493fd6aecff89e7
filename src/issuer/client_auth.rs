//! Client authentication at the token, introspection and revocation endpoints:
//! `client_secret_basic` / `client_secret_post` (RFC 6749 § 2.3.1), and JWT assertions
//! for `client_secret_jwt` / `private_key_jwt` (RFC 7523 § 2.2, § 3).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use http::header::AUTHORIZATION;
use jsonwebtoken::{Algorithm, DecodingKey};
use moka::sync::Cache;

use super::OAuthError;
use super::form::Form;
use super::secrets::{SecretChecker, SecretError};
use super::throttle::Source;
use crate::jwks::RealmKeys;
use crate::model::{Client, ClientAuth, Realm};
use crate::store::{Store, StoreError};
use crate::time::OwnTtl;
use crate::token::{Claims, jws};

/// RFC 7523 § 2.2 `client_assertion_type`.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Largest client assertion accepted.
pub(crate) const MAX_ASSERTION_BYTES: usize = 8 * 1024;

/// Longest remaining lifetime an assertion may have; bounds the replay memory.
pub(crate) const MAX_ASSERTION_LIFETIME: i64 = 3600;

/// The HMAC algorithms `client_secret_jwt` may use.
pub const HMAC_ALGS: [Algorithm; 3] = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];

/// Credentials as presented, before checking.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Presented {
    /// `Authorization: Basic`.
    Basic {
        /// The client id.
        id: String,
        /// The secret.
        secret: String,
    },
    /// `client_id` + `client_secret` in the body.
    Post {
        /// The client id.
        id: String,
        /// The secret.
        secret: String,
    },
    /// `client_assertion` (+ optional `client_id`).
    Assertion {
        /// The JWT.
        jwt: String,
        /// `client_id`, if sent.
        id: Option<String>,
    },
}

impl std::fmt::Debug for Presented {
    // NB: never print secrets or assertions.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Basic { id, .. } => write!(f, "Basic({id:?})"),
            Self::Post { id, .. } => write!(f, "Post({id:?})"),
            Self::Assertion { id, .. } => write!(f, "Assertion({id:?})"),
        }
    }
}

impl Presented {
    /// Whether HTTP Basic was used (failures then answer 401 + `WWW-Authenticate: Basic`).
    pub(crate) fn is_basic(&self) -> bool {
        matches!(self, Self::Basic { .. })
    }

    /// The client id the request claims, before any check: from the credentials, or for an
    /// assertion without `client_id`, from its (not yet verified) `sub`.
    pub(crate) fn claimed_id(&self) -> Option<String> {
        match self {
            Self::Basic { id, .. } | Self::Post { id, .. } => Some(id.clone()),
            Self::Assertion { id: Some(id), .. } => Some(id.clone()),
            Self::Assertion { jwt, id: None } => {
                let payload = jwt.split('.').nth(1)?;
                let claims = Claims::parse(&jws::b64(payload).ok()?).ok()?;
                claims.sub().map(str::to_owned)
            }
        }
    }

    /// The presented secret, for the secret-based methods.
    pub(crate) fn secret(&self) -> Option<&str> {
        match self {
            Self::Basic { secret, .. } | Self::Post { secret, .. } => Some(secret),
            Self::Assertion { .. } => None,
        }
    }
}

fn invalid_client(message: &str, basic: bool) -> OAuthError {
    OAuthError::InvalidClient {
        message: message.to_owned(),
        basic,
    }
}

/// The one authentication method the request uses (RFC 6749 § 2.3: "MUST NOT use more than
/// one authentication method in each request").
pub(crate) fn presented(headers: &HeaderMap, form: &Form) -> Result<Presented, OAuthError> {
    let mut found = Vec::with_capacity(1);
    if let Some(v) = headers.get(AUTHORIZATION) {
        let v = v
            .to_str()
            .map_err(|_| invalid_client("malformed Authorization header", true))?;
        if let Some((scheme, rest)) = v.split_once(' ')
            && scheme.eq_ignore_ascii_case("basic")
        {
            let decoded = STANDARD
                .decode(rest.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| invalid_client("malformed Basic credentials", true))?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or_else(|| invalid_client("malformed Basic credentials", true))?;
            // RFC 6749 § 2.3.1: both parts are form-urlencoded before Base64.
            let id = form_decode(id);
            // A body `client_id` beside Basic credentials must name the same client: the
            // request would otherwise be about two clients at once.
            if form.get("client_id").is_some_and(|body_id| body_id != id) {
                return Err(OAuthError::InvalidRequest(
                    "client_id in the body differs from the client of the Basic credentials".into(),
                ));
            }
            found.push(Presented::Basic {
                id,
                secret: form_decode(secret),
            });
        }
    }
    if let Some(secret) = form.get("client_secret") {
        let id = form
            .get("client_id")
            .ok_or_else(|| OAuthError::InvalidRequest("client_secret without client_id".into()))?;
        found.push(Presented::Post {
            id: id.to_owned(),
            secret: secret.to_owned(),
        });
    }
    if let Some(jwt) = form.get("client_assertion") {
        if form.get("client_assertion_type") != Some(JWT_BEARER) {
            return Err(OAuthError::InvalidRequest(format!(
                "client_assertion_type must be {JWT_BEARER}"
            )));
        }
        found.push(Presented::Assertion {
            jwt: jwt.to_owned(),
            id: form.get("client_id").map(str::to_owned),
        });
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(invalid_client("client authentication is required", false)),
        _ => Err(OAuthError::InvalidRequest(
            "more than one client authentication method".into(),
        )),
    }
}

fn form_decode(s: &str) -> String {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8_lossy()
        .into_owned()
}

/// Assertion `jti`s seen, each kept until its assertion expires (RFC 7523 § 3 item 7): in
/// memory, and in the store when there is one, so a `jti` is single use across replicas and
/// restarts.
#[derive(Clone)]
pub struct SeenAssertions {
    inner: Cache<Arc<str>, Duration>,
    store: Option<Store>,
}

impl std::fmt::Debug for SeenAssertions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeenAssertions").finish_non_exhaustive()
    }
}

impl Default for SeenAssertions {
    fn default() -> Self {
        Self::new(None)
    }
}

impl SeenAssertions {
    /// An empty memory, backed by `store` when there is one.
    pub fn new(store: Option<Store>) -> Self {
        Self {
            inner: Cache::builder().max_capacity(1_000_000).expire_after(OwnTtl).build(),
            store,
        }
    }

    /// Records `key` until `expires_at`; false if it was already used (a replay), here or on
    /// any replica sharing the store.
    ///
    /// NB: fails closed. When the store cannot say, the assertion is refused (503) rather
    /// than accepted without its replay check, and the memory forgets it so that the
    /// client's retry is judged afresh.
    async fn first_use(&self, key: &str, expires_at: i64, now: i64) -> Result<bool, StoreError> {
        let ttl = Duration::from_secs(u64::try_from(expires_at.saturating_sub(now)).unwrap_or(1).max(1));
        let key: Arc<str> = Arc::from(key);
        let entry = self.inner.entry(key.clone()).or_insert_with(|| ttl);
        if !entry.is_fresh() {
            return Ok(false);
        }
        let Some(store) = &self.store else {
            return Ok(true);
        };
        match store
            .first_use(&crate::token::sha256(key.as_bytes()), expires_at, now)
            .await
        {
            Ok(first) => Ok(first),
            Err(e) => {
                self.inner.invalidate(&key);
                Err(e)
            }
        }
    }
}

/// What authenticating a client needs.
pub(crate) struct AuthContext<'a> {
    /// The realm of the endpoint.
    pub realm: &'a Realm,
    /// Accepted `aud` values for assertions: the token endpoint URL and the issuer.
    pub audiences: &'a [String],
    /// Now, Unix seconds.
    pub now: i64,
    /// Secret checks.
    pub secrets: &'a SecretChecker,
    /// Assertion replay memory.
    pub seen: &'a SeenAssertions,
    /// Where the request came from (failures are throttled per client and source).
    pub source: Source,
}

/// Authenticates `presented` as `client` (already looked up by id).
pub(crate) async fn authenticate(
    cx: &AuthContext<'_>,
    presented: &Presented,
    client: &Client,
    keys: Option<&Arc<RealmKeys>>,
) -> Result<(), OAuthError> {
    let basic = presented.is_basic();
    let wrong_method = || invalid_client("the client must use its registered authentication method", basic);
    match (presented, &client.auth) {
        (Presented::Basic { secret, .. }, ClientAuth::SecretBasic { hash })
        | (Presented::Post { secret, .. }, ClientAuth::SecretPost { hash }) => {
            check_secret(cx, client.client_id.as_str(), secret, hash, basic).await
        }
        (Presented::Assertion { jwt, .. }, ClientAuth::SecretJwt { secret }) => {
            let key = DecodingKey::from_secret(secret);
            check_assertion(cx, jwt, client, AssertionKey::Hmac(&key, secret.len())).await
        }
        (Presented::Assertion { jwt, .. }, ClientAuth::PrivateKeyJwt) => {
            let keys = keys.ok_or_else(|| invalid_client("no keys for this client", false))?;
            check_assertion(cx, jwt, client, AssertionKey::Public(keys)).await
        }
        _ => Err(wrong_method()),
    }
}

/// Checks a secret against a stored hash (the resource servers' credentials use this too).
pub(crate) async fn check_secret(
    cx: &AuthContext<'_>,
    id: &str,
    presented: &str,
    hash: &str,
    basic: bool,
) -> Result<(), OAuthError> {
    match cx.secrets.verify(id, presented, hash, cx.source).await {
        Ok(()) => Ok(()),
        Err(e) => Err(secret_refusal(e, basic)),
    }
}

/// The refusal for a client id nobody has: for secret-based methods, only after the same
/// throttle and the same (dummy) verification a known id gets, so neither the answer nor
/// its timing tells whether the id exists.
pub(crate) async fn refuse_unknown(cx: &AuthContext<'_>, presented: &Presented, message: &str) -> OAuthError {
    let basic = presented.is_basic();
    if let (Some(id), Some(secret)) = (presented.claimed_id(), presented.secret()) {
        match cx.secrets.verify_unknown(&id, secret, cx.source).await {
            e @ (SecretError::Throttled(_) | SecretError::Busy) => return secret_refusal(e, basic),
            SecretError::Mismatch | SecretError::BadHash => {}
        }
    }
    invalid_client(message, basic)
}

fn secret_refusal(e: SecretError, basic: bool) -> OAuthError {
    match e {
        SecretError::Throttled(retry_after) => OAuthError::SlowDown { retry_after, basic },
        SecretError::Busy => OAuthError::TemporarilyUnavailable,
        SecretError::BadHash => {
            tracing::error!("a stored client secret hash could not be checked");
            invalid_client("client authentication failed", basic)
        }
        SecretError::Mismatch => invalid_client("client authentication failed", basic),
    }
}

enum AssertionKey<'a> {
    /// The shared secret as a key, and its length.
    Hmac(&'a DecodingKey, usize),
    Public(&'a Arc<RealmKeys>),
}

/// Shortest key for an HMAC algorithm: its hash output (RFC 7518 § 3.2).
fn hmac_min_key(alg: Algorithm) -> usize {
    match alg {
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => 32,
    }
}

/// RFC 7523 § 3, in order.
async fn check_assertion(
    cx: &AuthContext<'_>,
    jwt: &str,
    client: &Client,
    key: AssertionKey<'_>,
) -> Result<(), OAuthError> {
    let fail = |why: &str| {
        tracing::info!(
            client_id = client.client_id.as_str(),
            reason = why,
            "client assertion refused"
        );
        invalid_client("the client assertion is invalid", false)
    };
    if jwt.len() > MAX_ASSERTION_BYTES {
        return Err(fail("too large"));
    }
    let compact = jws::split(jwt).map_err(|_| fail("malformed"))?;
    let allowed: &[Algorithm] = match key {
        AssertionKey::Hmac(..) => &HMAC_ALGS,
        AssertionKey::Public(_) => &cx.realm.algorithms,
    };
    let header = jws::assertion_header(compact.header, allowed).map_err(|e| fail(e.reason()))?;
    match key {
        AssertionKey::Hmac(k, secret_len) => {
            let ok = jsonwebtoken::crypto::verify(compact.signature, compact.signing_input.as_bytes(), k, header.alg)
                .unwrap_or(false);
            if !ok {
                return Err(fail("bad signature"));
            }
            hmac_key_long_enough(client, header.alg, secret_len)?;
        }
        AssertionKey::Public(keys) => {
            jws::verify_signature(&compact, &header, keys)
                .await
                .map_err(|e| fail(e.reason()))?;
        }
    }
    let claims =
        Claims::parse(&jws::b64(compact.payload).map_err(|_| fail("malformed"))?).map_err(|e| fail(e.reason()))?;
    let id = client.client_id.as_str();
    // 1-2. iss and sub are the client_id.
    if claims.iss() != Some(id) || claims.sub() != Some(id) {
        return Err(fail("iss/sub is not the client_id"));
    }
    // 3. aud identifies the authorization server: its token endpoint URL or its issuer.
    if !claims.aud().any(|a| cx.audiences.iter().any(|x| x == a)) {
        return Err(fail("wrong aud"));
    }
    // 4-6. exp is required and not passed, nbf and iat not in the future; exp is bounded so
    // the replay memory stays bounded.
    let leeway = cx.realm.leeway;
    let exp = claims.check_lifetime(cx.now, leeway).map_err(|e| fail(e.reason()))?;
    if exp.saturating_sub(cx.now) > MAX_ASSERTION_LIFETIME {
        return Err(fail("exp too far in the future"));
    }
    // 7. jti: single use within the assertion's lifetime.
    let jti = claims.jti().ok_or_else(|| fail("no jti"))?;
    let key = format!("{}\u{0}{id}\u{0}{jti}", cx.realm.name);
    match cx.seen.first_use(&key, exp.saturating_add(leeway), cx.now).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(fail("jti replayed")),
        Err(e) => {
            tracing::error!(error = %e, client_id = id, "assertion replay check unavailable; refused");
            Err(OAuthError::TemporarilyUnavailable)
        }
    }
}

/// RFC 7518 § 3.2: "A key of the same size as the hash output ... or larger MUST be used with
/// this algorithm." Said precisely, and only to whoever holds the secret (the signature is
/// good), as the realm's metadata lists every HMAC alg.
fn hmac_key_long_enough(client: &Client, alg: Algorithm, secret_len: usize) -> Result<(), OAuthError> {
    let min = hmac_min_key(alg);
    if secret_len >= min {
        return Ok(());
    }
    let usable: Vec<&str> = HMAC_ALGS
        .iter()
        .filter(|a| secret_len >= hmac_min_key(**a))
        .map(|a| crate::jwks::alg_name(*a))
        .collect();
    tracing::info!(
        client_id = client.client_id.as_str(),
        reason = "HMAC key shorter than the hash output",
        "client assertion refused"
    );
    Err(invalid_client(
        &format!(
            "{} needs a client secret of at least {min} bytes (RFC 7518 § 3.2) and this \
             client's is shorter; sign with {}",
            crate::jwks::alg_name(alg),
            usable.join(" or ")
        ),
        false,
    ))
}
