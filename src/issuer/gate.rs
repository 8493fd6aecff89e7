//! The gate in front of slow hashing: at most one argon2 verification per core at a time
//! (each holds 19 MiB while it runs), a bounded queue of checks waiting for a turn, and
//! beyond that an immediate refusal, so the memory and threads client authentication can
//! take are bounded whatever the number of concurrent requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Semaphore;

/// Checks that may wait for a turn, per running one.
pub(super) const QUEUE_PER_PERMIT: usize = 32;

/// Why the gate did not run the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refused {
    /// Every turn is taken and the queue is full.
    Busy,
    /// The work panicked or its thread was lost.
    Lost,
}

/// A semaphore with a bounded queue, running work on blocking threads.
#[derive(Debug, Clone)]
pub struct Gate {
    permits: Arc<Semaphore>,
    /// How many may run at once.
    turns: usize,
    /// Running plus waiting.
    admitted: Arc<AtomicUsize>,
    capacity: usize,
}

/// One admitted check; leaves the count when dropped (after its work ran, or when its
/// request gave up waiting).
struct Admitted(Arc<AtomicUsize>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Gate {
    /// `permits` at a time (at least one), and `queue` more waiting.
    pub fn new(permits: usize, queue: usize) -> Self {
        let permits = permits.max(1);
        Self {
            permits: Arc::new(Semaphore::new(permits)),
            turns: permits,
            admitted: Arc::new(AtomicUsize::new(0)),
            capacity: permits.saturating_add(queue),
        }
    }

    /// One turn per core (`std::thread::available_parallelism`, else one), with
    /// [`QUEUE_PER_PERMIT`] waiting per turn.
    pub fn per_core() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::new(cores, cores.saturating_mul(QUEUE_PER_PERMIT))
    }

    /// How many may run at once.
    pub fn turns(&self) -> usize {
        self.turns
    }

    /// Checks running or waiting now.
    pub fn admitted(&self) -> usize {
        self.admitted.load(Ordering::Acquire)
    }

    /// Runs `work` on a blocking thread when a turn is free; [`Refused::Busy`] at once when
    /// the queue is full.
    pub async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, Refused> {
        let admitted = self.admitted.fetch_add(1, Ordering::AcqRel);
        let slot = Admitted(self.admitted.clone());
        if admitted >= self.capacity {
            return Err(Refused::Busy);
        }
        let permit = self.permits.clone().acquire_owned().await.map_err(|_| Refused::Lost)?;
        // NB: the permit and the slot move into the blocking task, so a request that goes away
        // mid-hash does not free its turn before the hash (and its memory) is done.
        tokio::task::spawn_blocking(move || {
            let out = work();
            drop(permit);
            drop(slot);
            out
        })
        .await
        .map_err(|_| Refused::Lost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_frees_up() {
        let gate = Gate::new(1, 1);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        // One running (held until told), one waiting.
        let running = tokio::spawn({
            let gate = gate.clone();
            async move { gate.run(move || rx.recv().is_ok()).await }
        });
        let waiting = tokio::spawn({
            let gate = gate.clone();
            async move { gate.run(|| 2).await }
        });
        for _ in 0..10_000 {
            if gate.admitted() == 2 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(gate.admitted(), 2);
        assert_eq!(gate.run(|| 3).await, Err(Refused::Busy));
        assert_eq!(gate.admitted(), 2, "a refusal leaves no trace");
        let _ = tx.send(());
        assert_eq!(running.await.ok(), Some(Ok(true)));
        assert_eq!(waiting.await.ok(), Some(Ok(2)));
        assert_eq!(gate.admitted(), 0);
        assert_eq!(gate.run(|| 4).await, Ok(4));
    }

    #[tokio::test]
    async fn a_dropped_waiter_leaves_the_queue() {
        let gate = Gate::new(1, 1);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let running = tokio::spawn({
            let gate = gate.clone();
            async move { gate.run(move || rx.recv().is_ok()).await }
        });
        let waiting = tokio::spawn({
            let gate = gate.clone();
            async move { gate.run(|| ()).await }
        });
        for _ in 0..10_000 {
            if gate.admitted() == 2 {
                break;
            }
            tokio::task::yield_now().await;
        }
        waiting.abort();
        let _ = waiting.await;
        assert_eq!(gate.admitted(), 1);
        let _ = tx.send(());
        assert_eq!(running.await.ok(), Some(Ok(true)));
    }
}
