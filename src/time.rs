//! Injected time: every expiry, `max_age`, cache and key-refresh decision reads a [`Clock`],
//! so tests move time forward instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock time, in whole seconds since the Unix epoch.
///
/// JWT times (`exp`, `nbf`, `iat`, `auth_time`) are NumericDate values in seconds
/// (RFC 7519 § 2), so seconds are the unit everywhere the product compares times.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Seconds since the Unix epoch.
    fn now(&self) -> i64;
}

/// A shared, type-erased clock.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // NB: the one sanctioned read of the system clock.
    fn now(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(_) => 0,
        }
    }
}

/// A clock that only moves when told to; for tests and deterministic tools.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicI64,
}

impl ManualClock {
    /// A clock stopped at `now` (seconds since the epoch).
    pub fn new(now: i64) -> Arc<Self> {
        Arc::new(Self {
            now: AtomicI64::new(now),
        })
    }

    /// Moves the clock forward (or backward, with a negative value) by `secs`.
    pub fn advance(&self, secs: i64) {
        self.now.fetch_add(secs, Ordering::SeqCst);
    }

    /// Sets the clock to `now`.
    pub fn set(&self, now: i64) {
        self.now.store(now, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }
}

/// The system clock as a [`SharedClock`].
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A cached value that knows how long it may be kept (a token until its `exp`, a revocation
/// until its token's `exp`, an assertion `jti` until the assertion's).
pub trait Ttl {
    /// How long from insertion.
    fn ttl(&self) -> std::time::Duration;
}

impl Ttl for std::time::Duration {
    fn ttl(&self) -> std::time::Duration {
        *self
    }
}

impl<T: Ttl> Ttl for Arc<T> {
    fn ttl(&self) -> std::time::Duration {
        (**self).ttl()
    }
}

/// The moka expiry policy of every cache whose entries carry their own [`Ttl`].
#[derive(Debug, Clone, Copy, Default)]
pub struct OwnTtl;

impl<K, V: Ttl> moka::Expiry<K, V> for OwnTtl {
    fn expire_after_create(&self, _key: &K, value: &V, _created_at: std::time::Instant) -> Option<std::time::Duration> {
        Some(value.ttl())
    }
}
