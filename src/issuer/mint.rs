//! Minting a JWT access token per RFC 9068 § 2: header `typ: at+jwt`, claims `iss`, `sub`,
//! `client_id`, `aud`, `scope`, `iat`, `exp`, `jti`, `auth_time`.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
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

/// The JOSE header of an access token (RFC 9068 § 2.1).
#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    typ: &'static str,
    kid: &'a str,
}

/// Serializing either part.
mod erased {
    /// A value written as JSON.
    pub(super) trait Json {
        fn json(&self) -> Result<Vec<u8>, super::MintError>;
    }

    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> Result<Vec<u8>, super::MintError> {
            serde_json::to_vec(self).map_err(|e| super::MintError::Sign(e.to_string()))
        }
    }
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
    let header = Header {
        alg: crate::jwks::alg_name(key.alg),
        typ: "at+jwt",
        kid: &key.kid,
    };
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
    // JWS compact serialization (RFC 7515 § 7.1): the signing input, then its signature.
    let part = |v: &dyn erased::Json| v.json().map(|b| URL_SAFE_NO_PAD.encode(b));
    let mut token = part(&header)?;
    token.push('.');
    token.push_str(&part(&claims)?);
    let signature = key.signer.sign(token.as_bytes()).map_err(MintError::Sign)?;
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwks::SigningKeys;
    use josekit::jwk::Jwk;
    use josekit::jwk::alg::ec::EcCurve;
    use josekit::jwk::alg::ed::EdCurve;

    /// Every algorithm's token verifies with josekit (OpenSSL), a library apart from the
    /// signer, and carries the header RFC 9068 asks for.
    #[test]
    fn minted_tokens_verify_with_another_library() {
        for alg in [
            "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
        ] {
            let mut jwk = match alg {
                "ES256" => Jwk::generate_ec_key(EcCurve::P256),
                "ES384" => Jwk::generate_ec_key(EcCurve::P384),
                "EdDSA" => Jwk::generate_ed_key(EdCurve::Ed25519),
                _ => Jwk::generate_rsa_key(2048),
            }
            .unwrap_or_else(|e| panic!("{e}"));
            jwk.set_key_id("k1");
            jwk.set_algorithm(alg);
            let public = jwk.to_public_key().unwrap_or_else(|e| panic!("{e}"));
            let doc = serde_json::json!({ "keys": [serde_json::Value::Object(jwk.into())] });
            let keys = SigningKeys::parse(doc.to_string().as_bytes()).unwrap_or_else(|e| panic!("{alg}: {e}"));
            let key = keys.first().unwrap_or_else(|| panic!("{alg}: no key"));
            let req = MintRequest {
                issuer: "https://issuer.test",
                audience: "https://api.test",
                subject: "c",
                client_id: "c",
                scope: "a b",
                now: 1_800_000_000,
                ttl: Duration::from_secs(60),
                auth_time: 1_800_000_000,
            };
            let token = mint(&req, key).unwrap_or_else(|e| panic!("{alg}: {e}"));
            let verifier: Box<dyn josekit::jws::JwsVerifier> = match alg {
                "RS256" => Box::new(
                    josekit::jws::RS256
                        .verifier_from_jwk(&public)
                        .unwrap_or_else(|e| panic!("{e}")),
                ),
                "RS384" => Box::new(
                    josekit::jws::RS384
                        .verifier_from_jwk(&public)
                        .unwrap_or_else(|e| panic!("{e}")),
                ),
                "RS512" => Box::new(
                    josekit::jws::RS512
                        .verifier_from_jwk(&public)
                        .unwrap_or_else(|e| panic!("{e}")),
                ),
                "PS256" => Box::new(
                    josekit::jws::PS256
                        .verifier_from_jwk(&public)
                        .unwrap_or_else(|e| panic!("{e}")),
                ),
                "PS384" => Box::new(
                    josekit::jws::PS384
                        .verifier_from_jwk(&public)
                        .unwrap_or_else(|e| panic!("{e}")),
                ),
                "PS512" => Box::new(
                    josekit::jws::PS512
                        .verifier_from_jwk(&public)
                        .unwrap_or_else(|e| panic!("{e}")),
                ),
                "ES256" => Box::new(
                    josekit::jws::ES256
                        .verifier_from_jwk(&public)
                        .unwrap_or_else(|e| panic!("{e}")),
                ),
                "ES384" => Box::new(
                    josekit::jws::ES384
                        .verifier_from_jwk(&public)
                        .unwrap_or_else(|e| panic!("{e}")),
                ),
                _ => Box::new(
                    josekit::jws::EdDSA
                        .verifier_from_jwk(&public)
                        .unwrap_or_else(|e| panic!("{e}")),
                ),
            };
            let (payload, header) = josekit::jws::deserialize_compact(&token, &*verifier)
                .unwrap_or_else(|e| panic!("{alg}: josekit refuses the token: {e}"));
            assert_eq!(header.algorithm(), Some(alg));
            assert_eq!(header.token_type(), Some("at+jwt"));
            assert_eq!(header.key_id(), Some("k1"));
            let claims: serde_json::Value = serde_json::from_slice(&payload).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(claims["aud"], "https://api.test");
            assert_eq!(claims["exp"], 1_800_000_060_i64);
        }
    }
}
