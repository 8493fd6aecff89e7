//! Bearer tokens: extraction, JWS verification against a realm's keys, RFC 7662
//! introspection of opaque tokens, claims checks and the verified-token cache.
//!
//! [`verify`] does the route-independent part (signature, `iss`, `exp` present) and is
//! cached; [`Claims::check_request`] does the per-request part.

mod cache;
mod claims;
mod error;
mod extract;
mod introspection;
pub mod jwe;
pub mod jws;
mod peek;
mod revocation;

use std::sync::Arc;

pub use cache::{Judged, TokenCache, TokenKey};
pub use claims::{Claims, ForwardedClaim, REQUEST_CHECKS, RequestCheck, RequestContext};
pub use error::{Answer, TokenError};
pub use extract::bearer;
pub use introspection::Introspector;
pub use peek::{Peek, peek};
pub use revocation::{RevocationKey, Revocations};

use crate::jwks::RealmKeys;
use crate::model::Realm;

/// What a token is judged under: its realm and keys, the configuration snapshot's number
/// and, for a resource server that encrypts, the outer layer. A cached verdict answers only
/// a lookup under the same.
#[derive(Debug, Clone, Copy)]
pub struct Judge<'a> {
    /// The realm (issuer, algorithms, bounds).
    pub realm: &'a Realm,
    /// Its verification keys.
    pub keys: &'a RealmKeys,
    /// The snapshot's number: a verification that started before a reload and finished
    /// after it never answers under the new rules.
    pub epoch: u64,
    /// The resource server's JWE layer, if it encrypts.
    pub outer: Option<Outer<'a>>,
}

impl Judge<'_> {
    /// What a cached verdict must have been reached under to answer under this judge: the
    /// realm, the snapshot, the key generation, the outer layer's identity.
    pub fn judged(&self) -> Judged<'_> {
        Judged {
            realm: &self.realm.name,
            epoch: self.epoch,
            generation: self.keys.generation(),
            outer: self.outer.map_or(0, |o| o.keys.id()),
        }
    }
}

/// Verifies `token` under `judge`: size bound, shape, header policy, signature, `iss`.
/// Returns the claims, from the cache when this exact token was verified before under the
/// same keys.
pub async fn verify(token: &str, judge: &Judge<'_>, cache: &TokenCache) -> Result<Arc<Claims>, TokenError> {
    let Judge {
        realm,
        keys,
        epoch: _,
        outer,
    } = *judge;
    if token.len() > realm.max_token_bytes {
        return Err(TokenError::TooLarge(realm.max_token_bytes));
    }
    let judged = judge.judged();
    let generation = judged.generation;
    let Some(key) = cache.is_enabled().then(|| TokenKey::of(token)) else {
        return verify_uncached(token, realm, keys, outer).await.map(Arc::new);
    };
    if let Some(claims) = cache.get(&key, &judged) {
        return Ok(claims);
    }
    // A token refused a moment ago under the same keys is refused again without crypto.
    if let Some(error) = cache.refused(&key, &judged) {
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
                cache.remember_refusal(&key, &judged, &error);
            }
            Err(error)
        }
    }
}

/// SHA-256 of `bytes`: the one digest token identities are made of (cache keys, the
/// signing-input identity, revocation keys).
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Whether `token` has the five parts of a compact JWE (RFC 7516 § 7.1) rather than a JWS's
/// three.
pub fn is_jwe(token: &str) -> bool {
    token.bytes().filter(|b| *b == b'.').count() == 4
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

/// The outer (JWE) layer a resource server's tokens have: its keys and algorithms, whose
/// identity ([`jwe::JweKeys::id`]) is the decryption context cached verdicts carry.
#[derive(Debug, Clone, Copy)]
pub struct Outer<'a> {
    /// Its keys and algorithms.
    pub keys: &'a jwe::JweKeys,
}
