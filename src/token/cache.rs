//! The verified-token cache: tokens that passed signature verification and the
//! route-independent checks, keyed by the SHA-256 digest of the whole token, each entry
//! living no longer than the token's `exp`.
//!
//! Why a digest and not the token text: 32 bytes instead of hundreds to thousands per entry
//! (a full cache of 100 000 tokens is tens of MiB smaller), and a cheaper hash per lookup.
//! Two different tokens share an entry only if they collide under SHA-256, the function
//! that RS256, PS256 and ES256 signatures are already computed over: finding such a pair
//! would forge those signatures directly, cache or no cache.
//!
//! NB: the key covers the whole text, signature included, and never only the token's
//! identity (`jti`, or its signed part): a hit answers without verifying, so a key without
//! the signature would let a forged signature ride on a verified token. A variant spelling of
//! a valid token (an ECDSA `(r, n − s)`, a re-encryption) is therefore verified on its own,
//! and meets revocation, which is keyed by identity.
//!
//! An entry remembers what it was judged under ([`Judged`]): the realm, the configuration
//! snapshot, the realm's key generation and the decryption context; a lookup under anything
//! else is a miss. Route- and time-dependent checks (`exp`, `nbf`, `aud`, scopes,
//! `max_age`, revocation) still run on every hit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moka::sync::Cache;

use super::Claims;
use crate::model::Name;
use crate::time::{OwnTtl, SharedClock, Ttl};

/// Capacity of the refusal cache.
pub(super) const REFUSED_CAPACITY: u64 = 10_000;
/// How long a refusal is remembered.
pub(super) const REFUSED_TTL: Duration = Duration::from_secs(30);

/// What a token was judged under. A cached verdict answers only a lookup under the same.
#[derive(Debug, Clone, Copy)]
pub struct Judged<'a> {
    /// The realm.
    pub realm: &'a Name,
    /// The configuration snapshot, as the verifier numbers them
    /// ([`crate::snapshot::Snapshot::epoch`]): a verification that started before a reload
    /// and finished after it never answers under the new rules.
    pub epoch: u64,
    /// The realm's key generation: a key change ends every verdict made before it.
    pub generation: u64,
    /// The decryption context: 0 for a plain JWS, else the identity of the JWE keys that
    /// decrypted it ([`super::jwe::JweKeys::id`]), so an encrypted token verified for one
    /// resource server is never a hit for another whose outer layer it has not passed.
    pub outer: u64,
}

/// [`Judged`], as stored with a verdict.
#[derive(Debug)]
struct Tag {
    realm: Name,
    epoch: u64,
    generation: u64,
    outer: u64,
}

impl Tag {
    fn of(j: &Judged<'_>) -> Self {
        Self {
            realm: j.realm.clone(),
            epoch: j.epoch,
            generation: j.generation,
            outer: j.outer,
        }
    }

    fn matches(&self, j: &Judged<'_>) -> bool {
        self.epoch == j.epoch && self.generation == j.generation && self.outer == j.outer && self.realm == *j.realm
    }
}

/// A remembered refusal.
#[derive(Debug)]
struct Refusal {
    tag: Tag,
    error: super::TokenError,
}

/// A cached verification result.
#[derive(Debug)]
struct Entry {
    tag: Tag,
    claims: Arc<Claims>,
    ttl: Duration,
}

impl Ttl for Entry {
    fn ttl(&self) -> Duration {
        self.ttl
    }
}

/// What entries are keyed by: the SHA-256 digest of the whole token (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenKey([u8; 32]);

impl TokenKey {
    /// The key of `token` (its compact serialization, JWS or JWE).
    pub fn of(token: &str) -> Self {
        Self(super::sha256(token.as_bytes()))
    }
}

/// A bounded cache of verified tokens; a no-op when disabled.
#[derive(Clone)]
pub struct TokenCache {
    inner: Option<Cache<TokenKey, Arc<Entry>>>,
    clock: SharedClock,
    /// Recently refused tokens, by SHA-256 of the token: a separate, small, short-lived
    /// cache, so floods of bad tokens cost no signature work and cannot evict good entries.
    refused: Option<Cache<TokenKey, Arc<Refusal>>>,
    /// Lookups answered from the cache and not, for metrics (read at scrape time).
    hits: Arc<AtomicU64>,
    misses: Arc<AtomicU64>,
    refusal_hits: Arc<AtomicU64>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("enabled", &self.inner.is_some())
            .field("entries", &self.inner.as_ref().map(Cache::entry_count))
            .finish()
    }
}

impl TokenCache {
    /// A cache holding at most `capacity` tokens; `capacity == 0` disables it.
    pub fn new(capacity: u64, clock: SharedClock) -> Self {
        let inner = (capacity > 0).then(|| Cache::builder().max_capacity(capacity).expire_after(OwnTtl).build());
        let refused = (capacity > 0).then(|| {
            Cache::builder()
                .max_capacity(REFUSED_CAPACITY)
                .time_to_live(REFUSED_TTL)
                .build()
        });
        Self {
            inner,
            refused,
            clock,
            hits: Arc::default(),
            misses: Arc::default(),
            refusal_hits: Arc::default(),
        }
    }

    /// The remembered refusal of `token` judged under `judged`, if any.
    pub fn refused(&self, token: &TokenKey, judged: &Judged<'_>) -> Option<super::TokenError> {
        let r = self.refused.as_ref()?.get(token)?;
        let hit = r.tag.matches(judged);
        if hit {
            self.refusal_hits.fetch_add(1, Ordering::Relaxed);
        }
        hit.then(|| r.error.clone())
    }

    /// Remembers a refusal for [`REFUSED_TTL`].
    pub fn remember_refusal(&self, token: &TokenKey, judged: &Judged<'_>, error: &super::TokenError) {
        if let Some(c) = &self.refused {
            let r = Refusal {
                tag: Tag::of(judged),
                error: error.clone(),
            };
            c.insert(*token, Arc::new(r));
        }
    }

    /// Refusals answered from memory so far, without verification work.
    pub fn refusal_hits(&self) -> u64 {
        self.refusal_hits.load(Ordering::Relaxed)
    }

    /// Lookups answered from the cache so far (0 while it is off).
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Lookups the cache could not answer so far (0 while it is off).
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// Whether the cache is on.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The claims of `token` if it was verified under `judged`.
    pub fn get(&self, token: &TokenKey, judged: &Judged<'_>) -> Option<Arc<Claims>> {
        let cache = self.inner.as_ref()?;
        let found = cache
            .get(token)
            .filter(|e| e.tag.matches(judged))
            .map(|e| e.claims.clone());
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Remembers a verified token until its `exp` (already-expired tokens are not kept).
    pub fn insert(&self, token: &TokenKey, judged: &Judged<'_>, claims: Arc<Claims>) {
        let Some(cache) = &self.inner else { return };
        let Some(exp) = claims.exp else { return };
        let left = exp.saturating_sub(self.clock.now());
        let Ok(left) = u64::try_from(left) else { return };
        if left == 0 {
            return;
        }
        let entry = Entry {
            tag: Tag::of(judged),
            claims,
            ttl: Duration::from_secs(left),
        };
        cache.insert(*token, Arc::new(entry));
    }

    /// Drops one token (revocation).
    pub fn invalidate(&self, token: &str) {
        if let Some(c) = &self.inner {
            c.invalidate(&TokenKey::of(token));
        }
    }

    /// Drops every entry (a new configuration: its keys, encryption settings or resource
    /// server order may differ, and entries are tagged with both).
    pub fn clear(&self) {
        if let Some(c) = &self.inner {
            c.invalidate_all();
        }
        // Refusals too: `iss`, algorithms and typ rules may have changed.
        if let Some(c) = &self.refused {
            c.invalidate_all();
        }
    }

    /// Drops every entry of `realm` (its rules changed on reload).
    pub fn invalidate_realm(&self, realm: &Name) {
        if let Some(c) = &self.inner {
            let realm = realm.clone();
            // Only fails when invalidation closures are not enabled; they are not needed
            // for correctness because lookups also compare realm and generation.
            let _ = c.invalidate_entries_if(move |_, e| e.tag.realm == realm);
        }
    }

    /// Number of entries (approximate; moka counts lazily).
    pub fn len(&self) -> u64 {
        self.inner.as_ref().map_or(0, |c| {
            c.run_pending_tasks();
            c.entry_count()
        })
    }

    /// Whether the cache has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
