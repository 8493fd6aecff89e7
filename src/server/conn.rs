//! Connection lifetime: the idle timer and the drain. A connection is closed gracefully
//! when it has been idle too long or when the server drains.
//!
//! Idle means no request in flight (a response counts until its body has been sent) and no
//! bytes moving either way. A graceful close lets hyper finish what is in flight; for
//! HTTP/2 it sends GOAWAY first (RFC 9113 § 6.8).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Response;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;

use super::Body;

/// Tells connections to finish up, and waits until they have.
#[derive(Debug)]
pub(super) struct Drain {
    tx: watch::Sender<bool>,
}

/// A connection's view of [`Drain`]; the drain waits until every watcher is dropped.
#[derive(Debug)]
pub(super) struct DrainWatch {
    rx: watch::Receiver<bool>,
}

impl Drain {
    /// Nothing draining yet.
    pub(super) fn new() -> Self {
        Self {
            tx: watch::channel(false).0,
        }
    }

    /// A watcher for a new connection.
    pub(super) fn watcher(&self) -> DrainWatch {
        DrainWatch {
            rx: self.tx.subscribe(),
        }
    }

    /// Tells every connection to close once its in-flight requests are answered, then waits
    /// for all of them, for at most `deadline`. Connections still open past it are left to
    /// the runtime's shutdown.
    pub(super) async fn shutdown(self, deadline: Duration) {
        self.tx.send_replace(true);
        tokio::select! {
            () = self.tx.closed() => tracing::info!("all connections drained"),
            () = tokio::time::sleep(deadline) => {
                tracing::warn!(open = self.tx.receiver_count(), "drain deadline passed; closing remaining connections");
            }
        }
    }
}

impl DrainWatch {
    /// Resolves once draining has begun.
    pub(super) async fn started(&mut self) {
        // An error means the drain itself is gone: close as well.
        let _ = self.rx.wait_for(|d| *d).await;
    }
}

/// What the idle timer looks at: one per connection, shared by its byte stream
/// ([`Watched`]) and its requests ([`InFlight`]).
#[derive(Debug, Default)]
pub(super) struct Activity {
    /// Bytes moved since the timer last looked.
    moved: AtomicBool,
    /// Requests whose response body has not been sent to the end.
    in_flight: AtomicUsize,
}

impl Activity {
    /// Resolves once a whole `period` passed with nothing in flight and no bytes moving.
    /// Checking a flag once per period (instead of stamping times on every read) keeps the
    /// I/O path to one relaxed store; the close then comes between one and two periods
    /// after the last activity.
    pub(super) async fn idle_for(&self, period: Duration) {
        loop {
            tokio::time::sleep(period).await;
            let moved = self.moved.swap(false, Ordering::Relaxed);
            if !moved && self.in_flight.load(Ordering::Acquire) == 0 {
                return;
            }
        }
    }
}

/// Keeps a request counted in flight until dropped (with the response body).
#[derive(Debug)]
pub(super) struct InFlight(Arc<Activity>);

impl InFlight {
    /// Counts a request from its head on.
    pub(super) fn start(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(activity.clone())
    }

    /// Keeps counting until `resp`'s body has been sent (or abandoned).
    pub(super) fn until_sent(self, resp: Response<Body>) -> Response<Counted> {
        resp.map(|body| Counted { body, _in_flight: self })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.moved.store(true, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted in flight until hyper drops it (sent, or
/// abandoned).
#[derive(Debug)]
pub(super) struct Counted {
    body: Body,
    _in_flight: InFlight,
}

impl HttpBody for Counted {
    type Data = <Body as HttpBody>::Data;
    type Error = <Body as HttpBody>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The connection's byte stream, noting that bytes moved.
pub(super) struct Watched<I> {
    io: I,
    activity: Arc<Activity>,
}

impl<I> Watched<I> {
    /// `io`, reporting to `activity`.
    pub(super) fn new(io: I, activity: &Arc<Activity>) -> Self {
        Self {
            io,
            activity: activity.clone(),
        }
    }

    fn moved(&self) {
        self.activity.moved.store(true, Ordering::Relaxed);
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.moved();
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_needs_a_quiet_period_with_nothing_in_flight() {
        let a = Arc::new(Activity::default());
        let period = Duration::from_secs(10);
        let started = tokio::time::Instant::now();
        a.idle_for(period).await;
        assert!(started.elapsed() >= period, "quiet from the start: one period");

        // A request in flight keeps the connection open however long it takes.
        let req = InFlight::start(&a);
        let waiting = tokio::spawn({
            let a = a.clone();
            async move { a.idle_for(period).await }
        });
        tokio::time::sleep(period * 5).await;
        assert!(!waiting.is_finished());
        // Its end counts as activity: a whole quiet period must follow (the close comes
        // one to two periods later).
        drop(req);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiting.is_finished());
        tokio::time::sleep(period * 2).await;
        assert!(waiting.is_finished());
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_moving_postpone_idleness() {
        let a = Arc::new(Activity::default());
        let period = Duration::from_secs(10);
        let waiting = tokio::spawn({
            let a = a.clone();
            async move { a.idle_for(period).await }
        });
        for _ in 0..5 {
            tokio::time::sleep(period / 2).await;
            a.moved.store(true, Ordering::Relaxed);
        }
        assert!(!waiting.is_finished());
        tokio::time::sleep(period * 2 + Duration::from_secs(1)).await;
        assert!(waiting.is_finished());
    }

    #[tokio::test]
    async fn drain_waits_for_every_watcher() {
        let drain = Drain::new();
        let mut w = drain.watcher();
        let conn = tokio::spawn(async move {
            w.started().await;
            // Dropping the watcher is what the drain waits for.
        });
        drain.shutdown(Duration::from_secs(60)).await;
        assert!(conn.await.is_ok());
    }
}
