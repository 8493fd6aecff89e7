//! Bearer tokens: extraction, JWS verification against a realm's keys, claims checks and
//! the verified-token cache.
//!
//! [`verify`] does the route-independent part (signature, `iss`, `exp` present) and is
//! cached; [`Claims::check_request`] does the per-request part.

mod cache;
mod claims;
mod error;
mod extract;
pub mod jws;
mod revocation;

use std::sync::Arc;

pub use cache::TokenCache;
pub use claims::{Claims, RequestContext};
pub use error::{Answer, TokenError};
pub use extract::bearer;
pub use revocation::{RevocationKey, Revocations};

use crate::jwks::RealmKeys;
use crate::model::Realm;

/// Verifies `token` for `realm`: size bound, shape, header policy, signature, `iss`.
/// Returns the claims, from the cache when this exact token was verified before under the
/// same keys.
pub async fn verify(
    token: &str,
    realm: &Realm,
    keys: &RealmKeys,
    cache: &TokenCache,
) -> Result<Arc<Claims>, TokenError> {
    if token.len() > realm.max_token_bytes {
        return Err(TokenError::TooLarge(realm.max_token_bytes));
    }
    let generation = keys.generation();
    if let Some(claims) = cache.get(token, &realm.name, generation) {
        return Ok(claims);
    }
    match token.bytes().filter(|b| *b == b'.').count() {
        2 => {}
        // RFC 7516 § 7.1: five parts is a compact JWE.
        4 => return Err(TokenError::EncryptedNotAccepted),
        _ => return Err(TokenError::Malformed("not a compact JWS")),
    }
    let compact = jws::split(token)?;
    let header = jws::header(compact.header, &realm.algorithms, realm.require_at_jwt_typ)?;
    jws::verify_signature(&compact, &header, keys).await?;
    let claims = Claims::parse(&jws::b64(compact.payload)?)?;
    claims.check_issuer(&realm.issuer)?;
    let claims = Arc::new(claims);
    // Cache only when no key change raced the verification, so an entry's generation is
    // always one whose keys verified it.
    if keys.generation() == generation {
        cache.insert(token, &realm.name, generation, claims.clone());
    }
    Ok(claims)
}
