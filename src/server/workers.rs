//! Server workers: `--workers N` threads, each with its own single-threaded runtime, its own
//! accept loop on the shared listening socket and its own upstream connection pool.
//!
//! A connection lives on the worker that accepted it, from first byte to close, and so do
//! the upstream connections its requests use: no task hops between threads on the request
//! path. On the load harness this serves a proxied request with about a quarter less CPU
//! than one work-stealing runtime of the same size (README, Benches). A busy worker gets to
//! its accept later than an idle one, so new connections tend to go where there is room.
//!
//! The control plane (signals, reloads, key refresh, the admin listener) stays on the
//! runtime that started the gateway; the verifier, snapshot, caches, issuer and metrics are
//! shared by everyone.

use std::future::Future;
use std::io;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::{ConnectionLimit, Shared, serve};

/// Starts `n` workers on `listener`; each stops accepting once its `shutdown()` future
/// resolves, drains its connections (at most `drain`) and ends. The returned future
/// resolves when every worker has ended.
pub fn spawn<S, F>(
    n: NonZeroUsize,
    listener: std::net::TcpListener,
    shared: &Shared,
    slots: &ConnectionLimit,
    shutdown: S,
    drain: Duration,
) -> io::Result<impl Future<Output = ()> + Send + 'static>
where
    S: Fn() -> F,
    F: Future<Output = ()> + Send + 'static,
{
    // Registered with each worker's own reactor; the kernel wakes them all on a new
    // connection and one of them wins the accept.
    listener.set_nonblocking(true)?;
    let mut ended = Vec::with_capacity(n.get());
    for i in 0..n.get() {
        let listener = listener.try_clone()?;
        let shared = Arc::new(shared.for_worker());
        let slots = slots.clone();
        let shutdown = shutdown();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (done, end) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(format!("portcullis-worker-{i}"))
            .spawn(move || {
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(listener) => serve(listener, shared, slots, shutdown, drain).await,
                        Err(e) => tracing::error!(error = %e, worker = i, "worker cannot listen"),
                    }
                });
                // Dropping the runtime cancels what is left: idle pooled upstream connections.
                drop(runtime);
                let _ = done.send(());
            })?;
        ended.push(end);
    }
    Ok(async move {
        for end in ended {
            // A worker that panicked drops its sender: it has ended all the same.
            let _ = end.await;
        }
    })
}
