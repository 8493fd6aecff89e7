//! Bearer tokens: extraction, JWS verification against a realm's keys, claims checks and
//! the verified-token cache.
//!
//! [`verify`] does the route-independent part (signature, `iss`, `exp` present) and is
//! cached; [`Claims::check_request`] does the per-request part.

mod cache;
mod claims;
mod error;
mod extract;
pub mod jwe;
pub mod jws;
mod revocation;

use std::sync::Arc;

pub use cache::{Judged, TokenCache, TokenKey};
pub use claims::{Claims, ForwardedClaim, RequestContext};
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
    outer: Option<Outer<'_>>,
) -> Result<Arc<Claims>, TokenError> {
    if token.len() > realm.max_token_bytes {
        return Err(TokenError::TooLarge(realm.max_token_bytes));
    }
    let generation = keys.generation();
    let judged = Judged {
        realm: &realm.name,
        epoch: realm.cache_epoch,
        generation,
        outer: outer.map_or(0, |o| o.tag),
    };
    let Some(key) = cache.is_enabled().then(|| TokenKey::of(token)) else {
        return verify_uncached(token, realm, keys, outer).await.map(Arc::new);
    };
    if let Some(claims) = cache.get(&key, &judged) {
        return Ok(claims);
    }
    // A token refused a moment ago under the same keys is refused again without crypto.
    // NB: refusals also remember which decryption keys judged them (their address: the
    // epoch changes with every snapshot, so an address is never reused within one).
    let keys_id = outer.map_or(0, |o| std::ptr::from_ref(o.keys) as usize);
    if let Some(error) = cache.refused(&key, &judged, keys_id) {
        return Err(error);
    }
    match verify_uncached(token, realm, keys, outer).await {
        Ok(claims) => {
            let claims = Arc::new(claims);
            // Cache only when no key change raced the verification, so an entry's
            // generation is always one whose keys verified it.
            if keys.generation() == generation {
                cache.insert(&key, &judged, claims.clone());
            }
            Ok(claims)
        }
        Err(error) => {
            if error.is_deterministic() && keys.generation() == generation {
                cache.remember_refusal(&key, &judged, keys_id, &error);
            }
            Err(error)
        }
    }
}

/// The verification work behind [`verify`]'s caches.
async fn verify_uncached(
    token: &str,
    realm: &Realm,
    keys: &RealmKeys,
    outer: Option<Outer<'_>>,
) -> Result<Claims, TokenError> {
    let decrypted;
    let inner = match (token.bytes().filter(|b| *b == b'.').count(), outer) {
        (2, None) => token,
        // A resource server that encrypts its tokens takes no plain ones.
        (2, Some(_)) => return Err(TokenError::EncryptionRequired),
        // RFC 7516 § 7.1: five parts is a compact JWE.
        (4, None) => return Err(TokenError::EncryptedNotAccepted),
        (4, Some(o)) => {
            decrypted = o.keys.decrypt(token)?;
            decrypted.as_str()
        }
        _ => return Err(TokenError::Malformed("not a compact JWS or JWE")),
    };
    let compact = jws::split(inner)?;
    let header = jws::header(compact.header, &realm.algorithms, realm.require_at_jwt_typ)?;
    jws::verify_signature(&compact, &header, keys).await?;
    let mut claims = Claims::parse_forwarding(&jws::b64(compact.payload)?, &realm.forwarded_claims)?;
    claims.check_issuer(&realm.issuer)?;
    claims.set_signing_input(compact.signing_input);
    Ok(claims)
}

/// The outer (JWE) layer a resource server's tokens have.
#[derive(Debug, Clone, Copy)]
pub struct Outer<'a> {
    /// Its keys and algorithms.
    pub keys: &'a jwe::JweKeys,
    /// A cache tag unique to the resource server (never 0).
    pub tag: u32,
}

impl<'a> Outer<'a> {
    /// The outer layer of resource server `index` in `snap`, if it encrypts.
    pub fn of(snap: &'a crate::snapshot::Snapshot, index: usize) -> Option<Self> {
        let keys = snap.rs_jwe.get(index)?.as_deref()?;
        Some(Self {
            keys,
            tag: u32::try_from(index).unwrap_or(u32::MAX - 1).saturating_add(1),
        })
    }
}
