//! The `[server]` protocol and connection limits and the per-resource-server body limit:
//! defaults live in [`Settings::default`]; here each written value is checked against the
//! bounds the listener can honour.

use super::raw::RawServer;
use super::report::Entity;
use crate::snapshot::Settings;

/// hyper refuses (by panicking) an HTTP/1.1 read buffer under 8 KiB.
const MIN_HEADER_BYTES: usize = 8 * 1024;
/// HTTP/2 carries the header list size as a 32-bit SETTINGS value (RFC 9113 § 6.5.2);
/// a few MiB is already far beyond any legitimate request head.
const MAX_HEADER_BYTES: usize = 16 * 1024 * 1024;

/// Applies `max_header_bytes`, `max_headers`, `idle_timeout` and `max_connections`.
pub(super) fn server(e: &mut Entity<'_, '_>, raw: &RawServer, settings: &mut Settings) {
    if let Some(n) = raw.max_header_bytes {
        if (MIN_HEADER_BYTES..=MAX_HEADER_BYTES).contains(&n) {
            settings.max_header_bytes = n;
        } else {
            e.err(
                "max_header_bytes",
                format!("{n} is outside {MIN_HEADER_BYTES}..={MAX_HEADER_BYTES}"),
            );
        }
    }
    if let Some(n) = raw.max_headers {
        if (1..=10_000).contains(&n) {
            settings.max_headers = n;
        } else {
            e.err("max_headers", format!("{n} is outside 1..=10000"));
        }
    }
    settings.idle_timeout = e.duration("idle_timeout", &raw.idle_timeout, settings.idle_timeout);
    if settings.idle_timeout.is_zero() {
        e.err("idle_timeout", "must be positive");
    }
    match raw.max_connections {
        // tokio's semaphore holds at most `Semaphore::MAX_PERMITS` (usize::MAX >> 3).
        Some(n) if n == 0 || n > tokio::sync::Semaphore::MAX_PERMITS => {
            e.err("max_connections", "must be positive (leave it out for no bound)")
        }
        Some(n) => settings.max_connections = Some(n),
        None => {}
    }
}

/// Checks a resource server's `max_body_bytes` (`None`: no bound).
pub(super) fn body(e: &mut Entity<'_, '_>, raw: Option<u64>) -> Option<u64> {
    match raw {
        Some(0) => {
            e.err("max_body_bytes", "must be positive (leave it out for no bound)");
            None
        }
        other => other,
    }
}
