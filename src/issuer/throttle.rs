//! Failed client authentications, counted per (client id, source address) and per source
//! on the injected clock. A failure is reserved *before* the secret is checked (so a burst of
//! concurrent guesses cannot all be paid for before the first one is counted) and given back
//! when the check succeeds. Failures from one address never throttle the same client at
//! another address.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moka::sync::Cache;

use crate::time::SharedClock;

/// Failures one (client id, source) pair may have within [`FAILURE_WINDOW`]; the next try from
/// that source is refused until the window ends.
pub(super) const MAX_FAILURES: u32 = 5;
/// Failures one source may have, over all client ids, within [`FAILURE_WINDOW`] (bounds how
/// many client ids one address can probe, and how much hashing it can cause).
pub(super) const MAX_SOURCE_FAILURES: u32 = 50;
/// The window failures are counted in, in seconds from the first failure.
pub(super) const FAILURE_WINDOW: u32 = 60;

/// Pairs and sources remembered at most; the least used are forgotten first.
const CAPACITY: u64 = 50_000;

/// Where a request came from, as throttling sees it: the IPv4 address, or the /64 prefix of
/// an IPv6 address (one host is routinely given a whole /64, so its single addresses are
/// free to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Source(IpAddr);

impl Source {
    /// The source of a peer at `ip` (IPv4-mapped IPv6 counts as the IPv4 address).
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                Self(IpAddr::V6(prefix.into()))
            }
        }
    }
}

/// A (client, source) pair's key: a digest of the client id (which may be any length an
/// attacker likes) and the source.
type PairKey = ([u8; 16], Source);

/// Failure counts with their windows.
#[derive(Clone)]
pub(super) struct Throttle {
    clock: SharedClock,
    /// Window starts are stored as seconds after this instant (so they fit 32 bits).
    base: i64,
    pairs: Cache<PairKey, Arc<AtomicU64>>,
    sources: Cache<Source, Arc<AtomicU64>>,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("pairs", &self.pairs.entry_count())
            .field("sources", &self.sources.entry_count())
            .finish_non_exhaustive()
    }
}

/// A failure held for one check: kept as a failure when dropped, unless the check
/// [succeeded](Reservation::succeeded) or was [never made](Reservation::release).
#[derive(Debug)]
#[must_use = "dropping a reservation counts a failure"]
pub(super) struct Reservation {
    pair: Arc<AtomicU64>,
    /// The source's own slot, once [`Throttle::reserve_source`] took it.
    source: Option<Arc<AtomicU64>>,
}

impl Reservation {
    /// The secret was right: this source's failures for this client start over, and this
    /// check no longer counts against the source.
    pub(super) fn succeeded(self) {
        self.pair.store(0, Ordering::Release);
        if let Some(source) = &self.source {
            give_back(source);
        }
    }

    /// The secret was not checked (no capacity, unusable stored hash, the source's bound):
    /// nothing is counted.
    pub(super) fn release(self) {
        give_back(&self.pair);
        if let Some(source) = &self.source {
            give_back(source);
        }
    }
}

impl Throttle {
    /// Empty counts, with windows on `clock`.
    pub(super) fn new(clock: SharedClock) -> Self {
        let base = clock.now();
        // NB: eviction by idle time only frees memory; windows are judged on the clock.
        let idle = Duration::from_secs(u64::from(FAILURE_WINDOW) * 2);
        Self {
            clock,
            base,
            pairs: Cache::builder().max_capacity(CAPACITY).time_to_idle(idle).build(),
            sources: Cache::builder().max_capacity(CAPACITY).time_to_idle(idle).build(),
        }
    }

    /// Reserves a failure for `client_id` from `source`; `Err(seconds)` when that pair has
    /// used up its failures, with the seconds until its window ends.
    pub(super) fn reserve(&self, client_id: &str, source: Source) -> Result<Reservation, u64> {
        let pair = self
            .pairs
            .get_with((digest(client_id), source), || Arc::new(AtomicU64::new(0)));
        take(&pair, self.now(), MAX_FAILURES)?;
        Ok(Reservation { pair, source: None })
    }

    /// Whether `client_id` from `source` may try now: `Err(seconds)` when that pair has used
    /// up its failures, with the seconds until its window ends. Takes nothing.
    pub(super) fn check(&self, client_id: &str, source: Source) -> Result<(), u64> {
        match self.pairs.get(&(digest(client_id), source)) {
            Some(pair) => used_up(pair.load(Ordering::Acquire), self.now(), MAX_FAILURES).map_or(Ok(()), Err),
            None => Ok(()),
        }
    }

    /// A remembered right secret from `source`: that pair's failures start over.
    pub(super) fn forgive(&self, client_id: &str, source: Source) {
        if let Some(pair) = self.pairs.get(&(digest(client_id), source)) {
            pair.store(0, Ordering::Release);
        }
    }

    /// Also reserves a failure against `source` as a whole, before a hash is paid (a
    /// remembered success needs none); `Err(seconds)` when the source has used up its
    /// failures over all client ids.
    pub(super) fn reserve_source(&self, reservation: &mut Reservation, source: Source) -> Result<(), u64> {
        if reservation.source.is_some() {
            return Ok(());
        }
        let cell = self.sources.get_with(source, || Arc::new(AtomicU64::new(0)));
        take(&cell, self.now(), MAX_SOURCE_FAILURES)?;
        reservation.source = Some(cell);
        Ok(())
    }

    /// Seconds since `base`, clamped into 32 bits.
    fn now(&self) -> u32 {
        u32::try_from(self.clock.now().saturating_sub(self.base).max(0)).unwrap_or(u32::MAX)
    }
}

fn digest(client_id: &str) -> [u8; 16] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, client_id.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&d.as_ref()[..16]);
    out
}

/// A window packed in one word, so taking a failure is one compare-and-swap: the high half
/// is the window's start, the low half the failures in it.
fn unpack(v: u64) -> (u32, u32) {
    ((v >> 32) as u32, v as u32)
}

fn pack(start: u32, count: u32) -> u64 {
    (u64::from(start) << 32) | u64::from(count)
}

/// The seconds until the window of `v` ends if its failures reached `limit` at `now`.
fn used_up(v: u64, now: u32, limit: u32) -> Option<u64> {
    let (start, count) = unpack(v);
    let ended = count == 0 || now < start || now >= start.saturating_add(FAILURE_WINDOW);
    (!ended && count >= limit).then(|| u64::from(start.saturating_add(FAILURE_WINDOW) - now).max(1))
}

/// Takes one failure from `cell` at `now`, starting a new window when the last one ended.
fn take(cell: &AtomicU64, now: u32, limit: u32) -> Result<(), u64> {
    let mut current = cell.load(Ordering::Acquire);
    loop {
        if let Some(wait) = used_up(current, now, limit) {
            return Err(wait);
        }
        let (start, count) = unpack(current);
        let ended = count == 0 || now < start || now >= start.saturating_add(FAILURE_WINDOW);
        let next = if ended { pack(now, 1) } else { pack(start, count + 1) };
        match cell.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Ok(()),
            Err(seen) => current = seen,
        }
    }
}

/// Gives one failure back (never below zero).
fn give_back(cell: &AtomicU64) {
    let _ = cell.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
        let (start, count) = unpack(v);
        (count > 0).then(|| pack(start, count - 1))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::ManualClock;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn sources_group_ipv6_by_64_and_unmap_ipv4() {
        assert_eq!(Source::of(ip("2001:db8::1")), Source::of(ip("2001:db8::ffff:1")));
        assert_ne!(Source::of(ip("2001:db8::1")), Source::of(ip("2001:db8:0:1::1")));
        assert_eq!(Source::of(ip("::ffff:192.0.2.1")), Source::of(ip("192.0.2.1")));
        assert_ne!(Source::of(ip("192.0.2.1")), Source::of(ip("192.0.2.2")));
    }

    #[test]
    fn reserved_failures_throttle_the_pair_until_the_window_ends() {
        let clock = ManualClock::new(1_000);
        let t = Throttle::new(clock.clone());
        let (a, b) = (Source::of(ip("192.0.2.1")), Source::of(ip("192.0.2.2")));
        for _ in 0..MAX_FAILURES {
            drop(t.reserve("c", a).unwrap_or_else(|w| panic!("throttled early ({w})")));
        }
        clock.advance(10);
        assert_eq!(t.reserve("c", a).err(), Some(u64::from(FAILURE_WINDOW) - 10));
        // Another source, and another client from the same source, are not throttled.
        t.reserve("c", b).unwrap_or_else(|w| panic!("{w}")).succeeded();
        t.reserve("d", a).unwrap_or_else(|w| panic!("{w}")).release();
        clock.advance(i64::from(FAILURE_WINDOW) - 10);
        t.reserve("c", a).unwrap_or_else(|w| panic!("{w}")).succeeded();
    }

    #[test]
    fn success_and_release_give_failures_back() {
        let t = Throttle::new(ManualClock::new(1_000));
        let a = Source::of(ip("192.0.2.1"));
        for _ in 0..MAX_FAILURES - 1 {
            drop(t.reserve("c", a).unwrap_or_else(|w| panic!("{w}")));
        }
        // Unchecked tries do not count; a success starts the pair over.
        for _ in 0..10 {
            t.reserve("c", a).unwrap_or_else(|w| panic!("{w}")).release();
        }
        t.reserve("c", a).unwrap_or_else(|w| panic!("{w}")).succeeded();
        for _ in 0..MAX_FAILURES {
            drop(t.reserve("c", a).unwrap_or_else(|w| panic!("{w}")));
        }
        assert!(t.reserve("c", a).is_err());
    }

    #[test]
    fn one_source_has_a_bound_over_all_client_ids() {
        let t = Throttle::new(ManualClock::new(1_000));
        let a = Source::of(ip("192.0.2.1"));
        let full = |id: &str, s: Source| -> Result<Reservation, u64> {
            let mut r = t.reserve(id, s)?;
            match t.reserve_source(&mut r, s) {
                Ok(()) => Ok(r),
                Err(w) => {
                    r.release();
                    Err(w)
                }
            }
        };
        for i in 0..MAX_SOURCE_FAILURES {
            drop(full(&format!("id-{i}"), a).unwrap_or_else(|w| panic!("{i}: {w}")));
        }
        assert!(full("yet-another", a).is_err());
        // The pair bound alone (what a remembered success needs) still admits that source, and
        // the refusals above took nothing from it.
        for _ in 0..MAX_FAILURES {
            t.reserve("yet-another", a).unwrap_or_else(|w| panic!("{w}")).release();
        }
        // Another source is not affected.
        assert!(full("yet-another", Source::of(ip("192.0.2.9"))).is_ok());
    }
}
