//! Minting a JWT access token per RFC 9068 § 2: header `typ: at+jwt`, claims `iss`, `sub`,
//! `client_id`, `aud`, `scope`, `iat`, `exp`, `jti`, `auth_time`.

use std::time::Duration;

use josekit::jws::JwsHeader;
use rand::RngCore;
use serde::Serialize;
use thiserror::Error;

use crate::jwks::SigningKey;

/// What to put in a token.
#[derive(Debug, Clone)]
pub struct MintRequest<'a> {
    /// `iss`: the realm's issuer.
    pub issuer: &'a str,
    /// `aud`: the target resource server's audience.
    pub audience: &'a str,
    /// `sub`.
    pub subject: &'a str,
    /// `client_id`.
    pub client_id: &'a str,
    /// Granted scopes, space-separated; omitted when empty.
    pub scope: &'a str,
    /// Now, Unix seconds (`iat`).
    pub now: i64,
    /// Lifetime (`exp - iat`).
    pub ttl: Duration,
    /// `auth_time`: when the client authenticated.
    pub auth_time: i64,
}

/// Why minting failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MintError {
    /// The signer refused the key or the claims could not be written.
    #[error("signing failed: {0}")]
    Sign(String),
}

#[derive(Serialize)]
struct AccessTokenClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    client_id: &'a str,
    aud: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    scope: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
    auth_time: i64,
}

/// Signs an access token with `key`.
pub fn mint(req: &MintRequest<'_>, key: &SigningKey) -> Result<String, MintError> {
    let mut header = JwsHeader::new();
    header.set_token_type("at+jwt");
    header.set_key_id(&key.kid);
    let mut jti = [0u8; 16];
    rand::rng().fill_bytes(&mut jti);
    let claims = AccessTokenClaims {
        iss: req.issuer,
        sub: req.subject,
        client_id: req.client_id,
        aud: req.audience,
        scope: req.scope,
        iat: req.now,
        exp: req
            .now
            .saturating_add(i64::try_from(req.ttl.as_secs()).unwrap_or(i64::MAX)),
        jti: jti.iter().map(|b| format!("{b:02x}")).collect(),
        auth_time: req.auth_time,
    };
    let payload = serde_json::to_vec(&claims).map_err(|e| MintError::Sign(e.to_string()))?;
    // The signer sets `alg` from its own algorithm: the key's, as loaded.
    josekit::jws::serialize_compact(&payload, &header, &*key.signer).map_err(|e| MintError::Sign(e.to_string()))
}
