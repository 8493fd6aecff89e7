//! Client secrets: stored only as argon2id PHC strings, checked in constant time off the
//! runtime threads, with a short-lived memory of successful checks (keyed by an HMAC of
//! client id, presented secret and stored hash under a per-process key, so the memory
//! holds nothing usable) and a per-client throttle on failures.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use aws_lc_rs::hmac;
use moka::sync::Cache;
use thiserror::Error;

/// How long a successful check is remembered.
pub const REMEMBER_SUCCESS: Duration = Duration::from_secs(300);
/// Failures within [`FAILURE_WINDOW`] after which a client is throttled.
pub const MAX_FAILURES: u32 = 5;
/// The window failures are counted in (from the first failure).
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Why a secret check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SecretError {
    /// The secret does not match.
    #[error("secret does not match")]
    Mismatch,
    /// Too many recent failures for this client.
    #[error("too many failures")]
    Throttled,
    /// The stored hash is not a PHC string we can check.
    #[error("stored secret hash is unusable")]
    BadHash,
}

/// Hashes a secret for the configuration (`portcullis hash-secret`): argon2id with the
/// crate's default parameters (OWASP-recommended m=19 MiB, t=2, p=1) and a random salt.
pub fn hash_secret(secret: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(secret.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `phc` is a PHC string argon2 can verify against.
pub fn check_phc(phc: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(phc).map_err(|e| format!("not a PHC string: {e}"))?;
    if !parsed.algorithm.as_str().starts_with("argon2") {
        return Err(format!("algorithm {} is not argon2", parsed.algorithm));
    }
    Ok(())
}

/// Secret verification with success memory and failure throttling.
#[derive(Clone)]
pub struct SecretChecker {
    /// `None` when the OS RNG failed: then nothing is remembered.
    key: Option<Arc<hmac::Key>>,
    remembered: Cache<[u8; 32], ()>,
    failures: Cache<Arc<str>, Arc<AtomicU32>>,
}

impl std::fmt::Debug for SecretChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretChecker").finish_non_exhaustive()
    }
}

impl Default for SecretChecker {
    fn default() -> Self {
        Self::new()
    }
}

impl SecretChecker {
    /// A checker with a fresh random key and empty memory.
    pub fn new() -> Self {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).ok().map(Arc::new);
        Self {
            key,
            remembered: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(REMEMBER_SUCCESS)
                .build(),
            failures: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(FAILURE_WINDOW)
                .build(),
        }
    }

    /// Forgets every remembered success (configuration reload).
    pub fn forget(&self) {
        self.remembered.invalidate_all();
    }

    /// Checks `presented` against the stored `phc` for `client_id`.
    pub async fn verify(&self, client_id: &str, presented: &str, phc: &str) -> Result<(), SecretError> {
        if self
            .failures
            .get(client_id)
            .is_some_and(|n| n.load(Ordering::Relaxed) >= MAX_FAILURES)
        {
            return Err(SecretError::Throttled);
        }
        let tag = self.key.as_ref().map(|key| {
            let mut ctx = hmac::Context::with_key(key);
            for part in [client_id, presented, phc] {
                ctx.update(&(part.len() as u64).to_be_bytes());
                ctx.update(part.as_bytes());
            }
            let mut tag = [0u8; 32];
            tag.copy_from_slice(ctx.sign().as_ref());
            tag
        });
        if tag.is_some_and(|t| self.remembered.contains_key(&t)) {
            return Ok(());
        }
        let (presented, phc_owned) = (presented.to_owned(), phc.to_owned());
        // NB: argon2 is deliberately slow; never on a runtime worker.
        let outcome = tokio::task::spawn_blocking(move || {
            let parsed = PasswordHash::new(&phc_owned).map_err(|_| SecretError::BadHash)?;
            Argon2::default()
                .verify_password(presented.as_bytes(), &parsed)
                .map_err(|_| SecretError::Mismatch)
        })
        .await
        .unwrap_or(Err(SecretError::BadHash));
        match outcome {
            Ok(()) => {
                if let Some(tag) = tag {
                    self.remembered.insert(tag, ());
                }
                self.failures.invalidate(client_id);
                Ok(())
            }
            Err(e) => {
                self.failures
                    .get_with(Arc::from(client_id), || Arc::new(AtomicU32::new(0)))
                    .fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verify_remember_throttle() {
        let phc = hash_secret("s3cret").unwrap_or_else(|e| panic!("{e}"));
        assert!(check_phc(&phc).is_ok());
        assert!(check_phc("plain").is_err());
        let c = SecretChecker::new();
        assert_eq!(c.verify("a", "s3cret", &phc).await, Ok(()));
        assert_eq!(c.verify("a", "s3cret", &phc).await, Ok(()));
        assert_eq!(c.verify("a", "wrong", &phc).await, Err(SecretError::Mismatch));
        for _ in 1..MAX_FAILURES {
            let _ = c.verify("b", "wrong", &phc).await;
        }
        assert_eq!(c.verify("b", "wrong", &phc).await, Err(SecretError::Mismatch));
        // Throttled even with the right secret now.
        assert_eq!(c.verify("b", "s3cret", &phc).await, Err(SecretError::Throttled));
        // A remembered success never answers for another secret.
        assert_eq!(c.verify("a", "s3cret ", &phc).await, Err(SecretError::Mismatch));
    }
}
