//! Revoked tokens (RFC 7009), remembered only until they would have expired anyway.
//!
//! Keyed by the token's identity, never by its text: the realm and `jti` when the token has
//! one (a realm has one issuer, so this is RFC 7519's (`iss`, `jti`)), else the SHA-256 of
//! the JWS signing input it was verified over. NB: the text is not an identity: an ECDSA
//! signature `(r, s)` verifies as `(r, n − s)` too, and an encrypted token can be encrypted
//! again; either would otherwise walk past a revocation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_lc_rs::digest::{Context, SHA256};
use moka::sync::Cache;

use super::Claims;
use crate::time::{OwnTtl, SharedClock};

/// The revocation key of a token: a SHA-256 over its realm and identity, a fixed 32 bytes
/// built without allocating (it is built on every request once a revocation exists).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RevocationKey([u8; 32]);

impl RevocationKey {
    /// The key's bytes, as the store keeps them.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A key read back from the store.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key of a verified token of `realm` with these claims; `token` is its text, used
    /// only for claims that were not built by verification (then the signing input is
    /// taken from the text's first two parts).
    pub fn of(realm: &str, claims: &Claims, token: &str) -> Self {
        let mut ctx = Context::new(&SHA256);
        ctx.update(&(realm.len() as u64).to_be_bytes());
        ctx.update(realm.as_bytes());
        match (claims.jti(), claims.signed_digest()) {
            (Some(jti), _) => {
                ctx.update(b"j");
                ctx.update(jti.as_bytes());
            }
            (None, Some(signed)) => {
                ctx.update(b"s");
                ctx.update(signed);
            }
            (None, None) => {
                let signing_input = super::jws::split(token).map_or(token, |c| c.signing_input);
                ctx.update(b"s");
                ctx.update(&super::sha256(signing_input.as_bytes()));
            }
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        Self(out)
    }
}

/// The set of revoked tokens that have not expired yet.
#[derive(Clone)]
pub struct Revocations {
    inner: Cache<RevocationKey, Duration>,
    clock: SharedClock,
    used: Arc<AtomicBool>,
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocations")
            .field("entries", &self.inner.entry_count())
            .finish()
    }
}

impl Revocations {
    /// An empty set holding at most `capacity` revocations.
    pub fn new(capacity: u64, clock: SharedClock) -> Self {
        Self {
            inner: Cache::builder().max_capacity(capacity).expire_after(OwnTtl).build(),
            clock,
            used: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Records a revocation until `exp` (plus `leeway`, so a token still accepted under
    /// clock leeway stays revoked).
    pub fn revoke(&self, key: RevocationKey, exp: i64, leeway: i64) {
        let left = exp.saturating_add(leeway).saturating_sub(self.clock.now());
        if let Ok(left) = u64::try_from(left)
            && left > 0
        {
            self.used.store(true, Ordering::Release);
            self.inner.insert(key, Duration::from_secs(left));
        }
    }

    /// Records a revocation until `expires_at` (Unix seconds; the store keeps it so, with
    /// the leeway already added).
    pub fn revoke_until(&self, key: RevocationKey, expires_at: i64) {
        self.revoke(key, expires_at, 0);
    }

    /// Whether the token is revoked.
    pub fn is_revoked(&self, key: &RevocationKey) -> bool {
        self.inner.contains_key(key)
    }

    /// Whether no revocation was ever recorded (lets the hot path skip building keys).
    pub fn never_used(&self) -> bool {
        !self.used.load(Ordering::Acquire)
    }
}
