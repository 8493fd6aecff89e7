//! Minting a JWT access token per RFC 9068 § 2: header `typ: at+jwt`, claims `iss`, `sub`,
//! `client_id`, `aud`, `scope`, `iat`, `exp`, `jti`, `auth_time`.

use std::time::Duration;

use jsonwebtoken::Header;
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
    /// The signer refused the key.
    #[error("signing failed: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
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
    let mut header = Header::new(key.alg);
    header.typ = Some("at+jwt".to_owned());
    header.kid = Some(key.kid.clone());
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
    Ok(jsonwebtoken::encode(&header, &claims, &key.key)?)
}
