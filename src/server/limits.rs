//! Protocol and connection limits of the public listener: request-head size and field
//! count, the header-read (slowloris) timeout, the open-connection bound, and the
//! per-resource-server body bound.

use std::sync::Arc;

use hyper::body::Body as _;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::snapshot::Settings;

/// A connection builder with `settings`' limits (read per connection, so a reload applies
/// to connections accepted after it).
pub(super) fn builder(settings: &Settings) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // hyper times the head from the first poll, and again from the moment a kept-alive
        // connection goes idle, so this also ends idle HTTP/1.1 connections.
        .header_read_timeout(settings.header_read_timeout)
        .keep_alive(true)
        // The read buffer bounds the request head: 431 past it. The compiler keeps it at
        // or above hyper's 8 KiB floor, below which hyper would panic.
        .max_buf_size(settings.max_header_bytes.max(8 * 1024))
        .max_headers(settings.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        // RFC 9113 § 6.5.2 SETTINGS_MAX_HEADER_LIST_SIZE: the decoded head, counting 32
        // bytes per field, so this bounds the field count too.
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// `[server] max_connections`: a connection holds a permit from accept to close.
#[derive(Debug, Clone)]
pub struct ConnectionLimit(Option<Arc<Semaphore>>);

impl ConnectionLimit {
    /// At most `max` open connections; no bound with `None`.
    pub fn new(max: Option<usize>) -> Self {
        Self(max.map(|n| Arc::new(Semaphore::new(n.min(Semaphore::MAX_PERMITS)))))
    }

    /// Waits for a free slot. While every slot is taken the listener does not accept, so new
    /// connections wait in the kernel's accept queue (and are refused by the kernel once it
    /// is full) instead of being accepted and dropped.
    pub async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        match &self.0 {
            // Never closed, so acquiring only fails if it were; then: no bound.
            Some(s) => s.clone().acquire_owned().await.ok(),
            None => None,
        }
    }
}

/// Whether a body announces (by `Content-Length`) more than `max` bytes. Bodies without a
/// length are cut while they stream instead (see [`crate::proxy::UpstreamBody`]).
pub(super) fn announces_more_than(body: &hyper::body::Incoming, max: u64) -> bool {
    body.size_hint().lower() > max
}
