//! The replica follower: keeps this process's memory current with the store. A committed
//! change wakes it (PostgreSQL `LISTEN/NOTIFY`), a periodic poll is the safety net (and the
//! only way on SQLite), and the change log says what it missed: revocations are applied to
//! the in-memory set the request path reads; entity changes ask for a recompile. While the
//! store is unreachable the process keeps serving what it knows, [`StoreHealth`] says since
//! when, and on reconnect it catches up from the log.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::sync::watch;

use super::{Store, StoreError};
use crate::time::SharedClock;
use crate::token::{RevocationKey, Revocations};

/// How many log entries one catch-up round reads (it repeats until it has all).
const PAGE: i64 = 1_000;

/// Expired revocations and assertion records are deleted this often (by every replica:
/// the delete is idempotent and cheap).
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// How the store looks from this process: reachable or not, and since when.
#[derive(Debug, Default)]
pub struct StoreHealth {
    /// Unix seconds of the last successful catch-up; 0 before the first.
    last_ok: AtomicI64,
    /// Unix seconds since which calls fail; 0 while they succeed.
    failing_since: AtomicI64,
    /// The last failure, in words.
    last_error: ArcSwapOption<String>,
    /// The last change version applied here.
    version: AtomicI64,
}

impl StoreHealth {
    /// Records a successful round at `now` that brought this process to `version`.
    pub fn ok(&self, now: i64, version: i64) {
        self.last_ok.store(now, Ordering::Relaxed);
        self.failing_since.store(0, Ordering::Relaxed);
        self.version.store(version, Ordering::Relaxed);
        self.last_error.store(None);
    }

    /// Records a failure at `now`.
    pub fn failed(&self, now: i64, error: &StoreError) {
        let _ = self
            .failing_since
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        self.last_error.store(Some(Arc::new(error.to_string())));
    }

    /// Whether the last round succeeded.
    pub fn is_ok(&self) -> bool {
        self.failing_since.load(Ordering::Relaxed) == 0 && self.last_ok.load(Ordering::Relaxed) > 0
    }

    /// Seconds since the last successful round, at `now`; `None` before the first.
    pub fn age(&self, now: i64) -> Option<i64> {
        let last = self.last_ok.load(Ordering::Relaxed);
        (last > 0).then(|| now.saturating_sub(last))
    }

    /// The last change version applied here.
    pub fn version(&self) -> i64 {
        self.version.load(Ordering::Relaxed)
    }

    /// The last failure, if the store is failing now.
    pub fn last_error(&self) -> Option<Arc<String>> {
        if self.failing_since.load(Ordering::Relaxed) == 0 {
            return None;
        }
        self.last_error.load_full()
    }
}

/// What the follower changes in this process.
#[derive(Clone)]
pub struct Follower {
    store: Store,
    revocations: Revocations,
    clock: SharedClock,
    health: Arc<StoreHealth>,
    /// Told the version of an entity change; the composition root recompiles.
    entities_changed: watch::Sender<i64>,
    poll: Duration,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("store", &self.store)
            .field("poll", &self.poll)
            .finish_non_exhaustive()
    }
}

impl Follower {
    /// A follower applying `store`'s revocations to `revocations`, polling every `poll`.
    /// The receiver sees the version of every entity change it reads.
    pub fn new(
        store: Store,
        revocations: Revocations,
        clock: SharedClock,
        poll: Duration,
    ) -> (Self, watch::Receiver<i64>) {
        let (entities_changed, rx) = watch::channel(0);
        let follower = Self {
            store,
            revocations,
            clock,
            health: Arc::new(StoreHealth::default()),
            entities_changed,
            poll,
        };
        (follower, rx)
    }

    /// How the store looks from here.
    pub fn health(&self) -> &Arc<StoreHealth> {
        &self.health
    }

    /// Loads every revocation in force (at start: all of them, from version 0) and notes the
    /// store's version, so that later rounds read only what is new.
    pub async fn load(&self) -> Result<(), StoreError> {
        let now = self.clock.now();
        let version = self.store.version().await?;
        for r in self.store.revocations_after(0, now).await? {
            self.revocations
                .revoke_until(RevocationKey::from_bytes(r.key), r.expires_at);
        }
        self.health.ok(now, version);
        Ok(())
    }

    /// One catch-up: every change after the last applied one, until none is left.
    pub async fn catch_up(&self) -> Result<(), StoreError> {
        loop {
            let from = self.health.version();
            let changes = self.store.changes_after(from, PAGE).await?;
            let now = self.clock.now();
            let Some(last) = changes.last().map(|c| c.version) else {
                self.health.ok(now, from);
                return Ok(());
            };
            if changes.iter().any(|c| c.kind == "revocation") {
                for r in self.store.revocations_after(from, now).await? {
                    self.revocations
                        .revoke_until(RevocationKey::from_bytes(r.key), r.expires_at);
                }
            }
            if changes.iter().any(|c| c.kind != "revocation") {
                self.entities_changed.send_replace(last);
            }
            self.health.ok(now, last);
            if i64::try_from(changes.len()).unwrap_or(PAGE) < PAGE {
                return Ok(());
            }
        }
    }

    /// Follows the store until `stop` turns true: woken by notifications where the engine
    /// pushes, every `poll` regardless.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut listener = None;
        let mut last_purge = self.clock.now();
        loop {
            if listener.is_none() {
                listener = self.store.listen().await.ok().flatten();
            }
            let woken = async {
                match listener.as_mut() {
                    Some(l) => l.recv().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            let pushed = tokio::select! {
                ok = woken => Some(ok),
                () = tokio::time::sleep(self.poll) => None,
                _ = stop.wait_for(|s| *s) => return,
            };
            if pushed == Some(false) {
                // The push connection broke; polling covers the gap until it is back.
                listener = None;
            }
            let now = self.clock.now();
            let was_ok = self.health.is_ok();
            match self.catch_up().await {
                Ok(()) if !was_ok => tracing::info!(
                    version = self.health.version(),
                    "the store is reachable again; caught up"
                ),
                Ok(()) => {}
                Err(e) => {
                    if self.health.is_ok() {
                        tracing::warn!(error = %e, "the store is unreachable; serving what is known");
                    }
                    self.health.failed(now, &e);
                    continue;
                }
            }
            if now.saturating_sub(last_purge) >= i64::try_from(PURGE_EVERY.as_secs()).unwrap_or(60) {
                last_purge = now;
                if let Err(e) = self.store.purge(now).await {
                    tracing::debug!(error = %e, "purging expired store records failed");
                }
            }
        }
    }
}
