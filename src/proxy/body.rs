//! The client's request body on its way upstream: cut at the resource server's bound, and
//! its failures marked as the client's, so an upstream request that fails because of them
//! is never blamed on the upstream.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use thiserror::Error;

/// A forwarded request's body: the client's, streamed, cut at the resource server's
/// `max_body_bytes` (no bound without one).
#[derive(Debug)]
pub struct UpstreamBody {
    inner: Incoming,
    /// Bytes still allowed.
    remaining: u64,
}

impl UpstreamBody {
    /// `inner`, cut once more than `max` bytes have streamed (never with `None`).
    pub fn new(inner: Incoming, max: Option<u64>) -> Self {
        Self {
            inner,
            remaining: max.unwrap_or(u64::MAX),
        }
    }
}

/// Why the client's body stopped: the upstream request fails with this in its error chain,
/// where [`super::UpstreamError`]'s classification finds it.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClientBodyError {
    /// More than `max_body_bytes` streamed (a body without `Content-Length`).
    #[error("request body longer than max_body_bytes")]
    TooLarge,
    /// The body's framing is broken (a bad chunk size or chunk end, an HTTP/2 stream error).
    #[error("malformed request body")]
    Malformed(#[source] hyper::Error),
    /// The client stopped sending before the body's end: it closed or reset the connection,
    /// or ended its half of it early.
    #[error("request body ended early")]
    Aborted(#[source] hyper::Error),
}

impl ClientBodyError {
    fn of(e: hyper::Error) -> Self {
        if ended_early(&e) {
            Self::Aborted(e)
        } else {
            Self::Malformed(e)
        }
    }
}

/// Whether a body read failed because the client's bytes stopped coming, rather than
/// because the ones that came were wrong.
fn ended_early(e: &hyper::Error) -> bool {
    if e.is_incomplete_message() {
        return true;
    }
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
            return matches!(
                io.kind(),
                UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
            );
        }
        src = s.source();
    }
    false
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let frame = match ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
            None => return Poll::Ready(None),
            Some(Err(e)) => return Poll::Ready(Some(Err(ClientBodyError::of(e)))),
            Some(Ok(frame)) => frame,
        };
        if let Some(data) = frame.data_ref() {
            let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
            if len > self.remaining {
                self.remaining = 0;
                return Poll::Ready(Some(Err(ClientBodyError::TooLarge)));
            }
            self.remaining -= len;
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        // As http-body-util's `Limited`: an exact length within the bound stays exact, so a
        // `Content-Length` body is forwarded with its length, not chunked.
        let mut hint = self.inner.size_hint();
        let n = self.remaining;
        if hint.lower() >= n {
            hint.set_exact(n);
        } else if let Some(max) = hint.upper() {
            hint.set_upper(n.min(max));
        } else if n != u64::MAX {
            hint.set_upper(n);
        }
        hint
    }
}
