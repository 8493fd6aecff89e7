//! Where `serve` writes its logs: stderr, with the access lines batched.
//!
//! One access line per request, each written by itself, costs a `write(2)` on the request
//! path; on the load harness that was a fifth of the gateway's CPU per proxied request.
//! Access lines (target `access`) are therefore appended to a buffer that a background
//! thread writes out every [`FLUSH_EVERY`], or as soon as [`HIGH_WATER`] bytes wait, as
//! Envoy and nginx buffer theirs. Every other line (start-up, reloads, warnings, errors) is
//! written at once, after whatever access lines are waiting, so the log stays in order.
//!
//! Nothing is dropped: past [`HARD_CAP`] buffered bytes (stderr stalled) the request that
//! adds a line writes the buffer itself, as an unbuffered logger would. [`LogWriter::flush`]
//! runs before the process exits.

#![allow(clippy::disallowed_types)] // a plain thread and sub-microsecond critical sections, never across an .await
use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::Thread;
use std::time::Duration;

use tracing::Metadata;
use tracing_subscriber::fmt::MakeWriter;

/// The longest an access line waits in the buffer.
pub(super) const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Buffered bytes at which the writer thread is woken early.
pub(super) const HIGH_WATER: usize = 64 * 1024;
/// Buffered bytes past which a request writes the buffer itself.
pub(super) const HARD_CAP: usize = 4 * 1024 * 1024;

/// A [`MakeWriter`] for `tracing_subscriber::fmt`: access lines buffered, the rest direct.
#[derive(Clone)]
pub(super) struct LogWriter {
    inner: Arc<Inner>,
}

/// The buffer the workers append to and the writer thread empties.
pub(super) struct Inner {
    pending: Mutex<Vec<u8>>,
    /// The background writer, woken early at [`HIGH_WATER`].
    writer: Option<Thread>,
}

impl LogWriter {
    /// A writer to stderr with its background thread started (without one, if the thread
    /// cannot be started: every access line is then written at once).
    pub(super) fn stderr() -> Self {
        let inner = Arc::new_cyclic(|weak: &std::sync::Weak<Inner>| {
            let weak = weak.clone();
            let writer = std::thread::Builder::new()
                .name("portcullis-log".into())
                .spawn(move || {
                    loop {
                        std::thread::park_timeout(FLUSH_EVERY);
                        let Some(inner) = weak.upgrade() else { return };
                        // Nothing to do on a failed write: stderr is where we would report it.
                        let _ = inner.write_out(&mut io::stderr().lock());
                    }
                })
                .ok()
                .map(|h| h.thread().clone());
            Inner {
                pending: Mutex::new(Vec::with_capacity(HIGH_WATER)),
                writer,
            }
        });
        Self { inner }
    }

    /// Writes every buffered line now.
    pub(super) fn flush(&self) {
        let _ = self.inner.write_out(&mut io::stderr().lock());
    }
}

impl Inner {
    fn pending(&self) -> MutexGuard<'_, Vec<u8>> {
        // A panic while holding it can only leave whole lines behind; keep going.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes the buffer to `out`. Callers hold `out`'s lock while they take the buffer, so
    /// batches reach stderr in the order they were taken.
    fn write_out(&self, out: &mut impl Write) -> io::Result<()> {
        let batch = std::mem::take(&mut *self.pending());
        if batch.is_empty() {
            return Ok(());
        }
        out.write_all(&batch)
    }

    fn append(&self, line: &[u8]) -> io::Result<()> {
        let waiting = {
            let mut pending = self.pending();
            pending.extend_from_slice(line);
            pending.len()
        };
        match &self.writer {
            Some(writer) if waiting < HARD_CAP => {
                if waiting >= HIGH_WATER {
                    writer.unpark();
                }
                Ok(())
            }
            _ => self.write_out(&mut io::stderr().lock()),
        }
    }
}

/// One line's destination.
pub(super) enum LineWriter<'a> {
    /// Appended to the buffer.
    Access(&'a Inner),
    /// Written at once, after the buffer.
    Direct(&'a Inner),
}

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Self::Access(inner) => inner.append(buf),
            Self::Direct(inner) => {
                let mut out = io::stderr().lock();
                inner.write_out(&mut out)?;
                out.write_all(buf)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter::Direct(&self.inner)
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        if meta.target() == "access" {
            LineWriter::Access(&self.inner)
        } else {
            LineWriter::Direct(&self.inner)
        }
    }
}
