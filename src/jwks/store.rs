//! One realm's verification keys: the local set, plus the remote set with its refresh
//! policy. Readers take a lock-free view; fetches are serialized per realm.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use jsonwebtoken::Algorithm;

use super::fetch::{FetchError, Fetcher};
use super::keyset::{KeySet, VerifyKey};
use crate::model::{Name, RemoteJwks};
use crate::time::SharedClock;

/// A realm's keys. Shared by every snapshot in which the realm's key sources are unchanged,
/// so a reload does not refetch.
#[derive(Debug)]
pub struct RealmKeys {
    realm: Name,
    local: KeySet,
    remote: Option<Remote>,
    clock: SharedClock,
    /// Bumped whenever the usable key material changes; verified-token cache entries
    /// remember the generation they were verified under.
    generation: AtomicU64,
    /// Whether the background refresher runs.
    started: AtomicBool,
}

#[derive(Debug)]
struct Remote {
    cfg: RemoteJwks,
    fetcher: Fetcher,
    current: ArcSwapOption<Current>,
    /// Serializes fetches: at most one in flight per realm.
    lock: tokio::sync::Mutex<()>,
    last_kid_refetch: AtomicI64,
    fetches: AtomicU64,
    failures: AtomicU64,
    last_error: ArcSwapOption<String>,
}

#[derive(Debug)]
struct Current {
    keys: KeySet,
    fingerprint: Vec<u64>,
    fetched_at: i64,
    fresh_until: i64,
}

/// A consistent read of a realm's usable keys at one instant.
#[derive(Debug)]
pub struct KeysView<'a> {
    local: &'a KeySet,
    remote: Option<Arc<Current>>,
}

impl KeysView<'_> {
    /// Whether there is at least one usable key.
    pub fn is_usable(&self) -> bool {
        !self.local.is_empty() || self.remote.as_ref().is_some_and(|c| !c.keys.is_empty())
    }

    /// Keys that may verify a token with this `kid` and `alg`, local keys first.
    pub fn candidates<'b>(
        &'b self,
        kid: Option<&'b str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'b Arc<VerifyKey>> + 'b {
        let remote = self.remote.as_ref().map(|c| c.keys.candidates(kid, alg));
        self.local.candidates(kid, alg).chain(remote.into_iter().flatten())
    }
}

/// What readiness and metrics report about a realm's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHealth {
    /// Whether tokens can be verified right now.
    pub usable: bool,
    /// Keys from local files.
    pub local_keys: usize,
    /// Keys from the remote set, if it has been fetched and is not too stale.
    pub remote_keys: Option<usize>,
    /// Seconds since the last successful fetch.
    pub remote_age: Option<i64>,
    /// Fetch attempts so far.
    pub fetches: u64,
    /// Failed fetches so far.
    pub failures: u64,
    /// The last fetch error, if the last fetch failed.
    pub last_error: Option<String>,
}

impl RealmKeys {
    /// Keys for `realm`: the local set, and the remote source if there is one (not fetched
    /// yet: call [`refresh`](Self::refresh) or [`spawn_refresher`](Self::spawn_refresher)).
    pub fn new(realm: Name, local: KeySet, remote: Option<(RemoteJwks, Fetcher)>, clock: SharedClock) -> Self {
        let remote = remote.map(|(cfg, fetcher)| Remote {
            cfg,
            fetcher,
            current: ArcSwapOption::empty(),
            lock: tokio::sync::Mutex::new(()),
            last_kid_refetch: AtomicI64::new(i64::MIN),
            fetches: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            last_error: ArcSwapOption::empty(),
        });
        Self {
            realm,
            local,
            remote,
            clock,
            generation: AtomicU64::new(0),
            started: AtomicBool::new(false),
        }
    }

    /// The realm these keys belong to.
    pub fn realm(&self) -> &Name {
        &self.realm
    }

    /// Whether the keys come from an equal configuration (used to carry them across reloads).
    pub fn same_sources(&self, remote: Option<&RemoteJwks>) -> bool {
        self.remote.as_ref().map(|r| &r.cfg) == remote
    }

    /// The `kid`s of the local keys.
    pub fn local_kids(&self) -> Vec<String> {
        self.local.keys().iter().filter_map(|k| k.kid.clone()).collect()
    }

    /// Whether the local keys are the same material as `local`.
    pub fn same_local(&self, local: &KeySet) -> bool {
        fingerprint(&self.local) == fingerprint(local)
    }

    /// The generation of the usable key material.
    ///
    /// Remote keys ageing past their freshness plus `max_stale` also change the usable
    /// material (they leave [`view`](Self::view)), so the lowest bit says whether they have:
    /// verified-token cache entries made while they served must not answer once they no
    /// longer do.
    pub fn generation(&self) -> u64 {
        let changes = self.generation.load(Ordering::Acquire);
        let aged_out = self.remote.as_ref().is_some_and(|r| {
            r.current
                .load()
                .as_ref()
                .is_some_and(|c| self.clock.now() > c.fresh_until.saturating_add(secs(r.cfg.max_stale)))
        });
        changes.wrapping_shl(1) | u64::from(aged_out)
    }

    /// The keys usable now. Remote keys older than their freshness plus `max_stale` are
    /// left out (RFC 8725 does not bound this; we do, so a dead endpoint cannot pin
    /// revoked keys forever).
    pub fn view(&self) -> KeysView<'_> {
        let now = self.clock.now();
        let remote = self.remote.as_ref().and_then(|r| {
            let cur = r.current.load_full()?;
            let limit = cur.fresh_until.saturating_add(secs(r.cfg.max_stale));
            (now <= limit).then_some(cur)
        });
        KeysView {
            local: &self.local,
            remote,
        }
    }

    /// Readiness and metrics information.
    pub fn health(&self) -> KeyHealth {
        let view = self.view();
        let now = self.clock.now();
        let (fetches, failures, last_error, age) = match &self.remote {
            Some(r) => (
                r.fetches.load(Ordering::Relaxed),
                r.failures.load(Ordering::Relaxed),
                r.last_error.load_full().map(|s| s.as_ref().clone()),
                r.current.load().as_ref().map(|c| now - c.fetched_at),
            ),
            None => (0, 0, None, None),
        };
        KeyHealth {
            usable: view.is_usable(),
            local_keys: self.local.len(),
            remote_keys: view.remote.as_ref().map(|c| c.keys.len()),
            remote_age: age,
            fetches,
            failures,
            last_error,
        }
    }

    /// Fetches the remote set now (waiting for a fetch already in flight). Local-only
    /// realms succeed at once.
    pub async fn refresh(&self) -> Result<(), FetchError> {
        let Some(r) = &self.remote else { return Ok(()) };
        let _one_at_a_time = r.lock.lock().await;
        self.fetch_locked(r).await
    }

    /// Called when a token names a `kid` no usable key has. Refetches at most once per
    /// cooldown per realm, and callers that queue behind an in-flight fetch reuse its
    /// result, so forged kids cannot amplify traffic to the authorization server.
    /// Returns whether the key material may have changed (worth looking again).
    pub async fn refetch_for_unknown_kid(&self) -> bool {
        let Some(r) = &self.remote else { return false };
        let seen = self.generation();
        let _one_at_a_time = r.lock.lock().await;
        if self.generation() != seen {
            return true;
        }
        let now = self.clock.now();
        let last = r.last_kid_refetch.load(Ordering::Acquire);
        if last != i64::MIN && now.saturating_sub(last) < secs(r.cfg.refetch_cooldown) {
            return false;
        }
        r.last_kid_refetch.store(now, Ordering::Release);
        self.fetch_locked(r).await.is_ok() && self.generation() != seen
    }

    /// Starts the background refresh task (once; later calls do nothing). It stops by
    /// itself when these keys are dropped (a reload replaced the realm's key sources).
    pub fn spawn_refresher(self: &Arc<Self>) {
        if self.remote.is_none() || self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut delay = match weak.upgrade() {
                Some(keys) => keys.until_refresh(),
                None => return,
            };
            loop {
                tokio::time::sleep(delay).await;
                let Some(keys) = weak.upgrade() else { break };
                delay = match keys.refresh().await {
                    Ok(()) => keys.until_refresh(),
                    Err(_) => keys.retry_delay(),
                };
            }
        });
    }

    /// Whether the background refresher was started (these keys are live in a snapshot).
    pub fn is_started(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }

    /// Time until the current remote keys are due for refresh.
    fn until_refresh(&self) -> Duration {
        let Some(r) = &self.remote else { return Duration::MAX };
        let now = self.clock.now();
        match r.current.load().as_ref() {
            Some(c) => Duration::from_secs(u64::try_from(c.fresh_until - now).unwrap_or(0).max(1)),
            None => self.retry_delay(),
        }
    }

    /// Back-off after a failed fetch: a tenth of the TTL, between 1 s and 30 s.
    fn retry_delay(&self) -> Duration {
        let ttl = self.remote.as_ref().map_or(Duration::from_secs(60), |r| r.cfg.ttl);
        (ttl / 10).clamp(Duration::from_secs(1), Duration::from_secs(30))
    }

    async fn fetch_locked(&self, r: &Remote) -> Result<(), FetchError> {
        r.fetches.fetch_add(1, Ordering::Relaxed);
        match r.fetcher.fetch(&r.cfg.uri, r.cfg.fetch_timeout, r.cfg.max_bytes).await {
            Ok(fetched) => {
                for note in &fetched.skipped {
                    tracing::warn!(realm = %self.realm, uri = %r.cfg.uri, "jwks: skipped {note}");
                }
                let now = self.clock.now();
                let ttl = fetched
                    .max_age
                    .map_or(r.cfg.ttl, |a| a.clamp(r.cfg.min_ttl, r.cfg.max_ttl));
                let fingerprint = fingerprint(&fetched.keys);
                let changed = r.current.load().as_ref().is_none_or(|c| c.fingerprint != fingerprint);
                r.current.store(Some(Arc::new(Current {
                    keys: fetched.keys,
                    fingerprint,
                    fetched_at: now,
                    fresh_until: now.saturating_add(secs(ttl)),
                })));
                r.last_error.store(None);
                if changed {
                    self.generation.fetch_add(1, Ordering::AcqRel);
                }
                tracing::debug!(realm = %self.realm, uri = %r.cfg.uri, changed, "jwks: fetched");
                Ok(())
            }
            Err(e) => {
                r.failures.fetch_add(1, Ordering::Relaxed);
                r.last_error.store(Some(Arc::new(e.to_string())));
                tracing::warn!(realm = %self.realm, uri = %r.cfg.uri, error = %e, "jwks: fetch failed; last good keys keep serving");
                Err(e)
            }
        }
    }
}

fn fingerprint(keys: &KeySet) -> Vec<u64> {
    let mut v: Vec<u64> = keys.keys().iter().map(|k| k.material).collect();
    v.sort_unstable();
    v
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}
