//! Server workers: `--workers N` threads, each with its own single-threaded runtime, its own
//! listening socket and accept loop, and its own upstream connection pool.
//!
//! A connection lives on the worker that accepted it, from first byte to close, and so do
//! the upstream connections its requests use: no task hops between threads on the request
//! path. On the load harness this serves a proxied request with about a quarter less CPU
//! than one work-stealing runtime of the same size (docs/performance.md).
//!
//! Each worker listens on a socket of its own, bound to the same address with
//! `SO_REUSEPORT` (as nginx's `reuseport` and HAProxy do): the kernel spreads new
//! connections over the sockets by their addresses. One socket shared by every worker lets
//! whichever worker the kernel wakes first take every connection, and under load that was
//! nearly always the same one.
//!
//! The control plane (signals, reloads, key refresh, the admin listener) stays on the
//! runtime that started the gateway; the verifier, snapshot, caches, issuer and metrics are
//! shared by everyone.

use std::future::Future;
use std::io;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;

/// Pending connections each listening socket holds (the `listen(2)` backlog).
const BACKLOG: u32 = 1024;

/// A listening socket bound to `addr` with `SO_REUSEADDR` and, on Unix, `SO_REUSEPORT`.
/// Must be called within a Tokio runtime.
///
/// A port some other listener holds is refused first, as without `SO_REUSEPORT`: a second
/// gateway started on the same address (an old one still running, say) must fail to start,
/// not quietly share the traffic. A plain bind (no `SO_REUSEPORT`) conflicts with any
/// listener there, ours included, so it is the probe; it is closed at once.
pub fn reuseport_listener(addr: std::net::SocketAddr) -> io::Result<TcpListener> {
    if addr.port() != 0 {
        drop(std::net::TcpListener::bind(addr)?);
    }
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

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
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let mut first = Some(listener);
    let mut ended = Vec::with_capacity(n.get());
    for i in 0..n.get() {
        // The first worker takes the bound socket; each other one binds its own to the same
        // address (the port, when it was 0, is now known).
        let listener = match first.take() {
            Some(l) => l,
            None => own_listener(addr)?,
        };
        let shared = Arc::new(shared.for_worker(i));
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

/// Another `SO_REUSEPORT` socket on `addr`, as a standard listener (bound outside any
/// runtime: each worker registers its own with its own reactor).
fn own_listener(addr: std::net::SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(BACKLOG).unwrap_or(1024))?;
    Ok(socket.into())
}
