//! Revoked tokens (RFC 7009), remembered only until they would have expired anyway.
//!
//! Keyed by realm and `jti` when the token has one, else by a SHA-256 of the token text,
//! so a revocation reaches every copy of the token however it was cached.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;

use super::Claims;
use crate::time::SharedClock;

/// The revocation key of a token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RevocationKey(Arc<str>);

impl RevocationKey {
    /// The key for a token of `realm` with these claims and text.
    pub fn of(realm: &str, claims: &Claims, token: &str) -> Self {
        let id = match claims.jti() {
            Some(jti) => format!("{realm}\u{0}jti\u{0}{jti}"),
            None => {
                let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
                let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
                format!("{realm}\u{0}sha256\u{0}{hex}")
            }
        };
        Self(Arc::from(id))
    }
}

struct UntilExp;

impl Expiry<RevocationKey, Duration> for UntilExp {
    fn expire_after_create(&self, _key: &RevocationKey, ttl: &Duration, _created_at: Instant) -> Option<Duration> {
        Some(*ttl)
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
            inner: Cache::builder().max_capacity(capacity).expire_after(UntilExp).build(),
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

    /// Whether the token is revoked.
    pub fn is_revoked(&self, key: &RevocationKey) -> bool {
        self.inner.contains_key(key)
    }

    /// Whether no revocation was ever recorded (lets the hot path skip building keys).
    pub fn never_used(&self) -> bool {
        !self.used.load(Ordering::Acquire)
    }
}
