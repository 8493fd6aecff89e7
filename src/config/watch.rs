//! Watching the configuration for changes (notify). The file's directory is watched, not the
//! file, so replacements by rename and symlink swaps (how Kubernetes updates a ConfigMap)
//! are seen as well as edits in place.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// How long to wait for a burst of file events to end before reloading.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// A running watch; dropping it stops watching.
pub struct ConfigWatch {
    _watcher: RecommendedWatcher,
    events: mpsc::Receiver<()>,
}

impl std::fmt::Debug for ConfigWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigWatch").finish_non_exhaustive()
    }
}

impl ConfigWatch {
    /// Watches `path` (a file or a directory of files).
    pub fn start(path: &Path) -> Result<Self, notify::Error> {
        let dir: PathBuf = if path.is_dir() {
            path.to_path_buf()
        } else {
            match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            }
        };
        // Capacity 1: events coalesce while a reload is pending.
        let (tx, events) = mpsc::channel(1);
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(event) = res
                && !event.kind.is_access()
            {
                let _ = tx.try_send(());
            }
        })?;
        watcher.watch(&dir, RecursiveMode::NonRecursive)?;
        Ok(Self {
            _watcher: watcher,
            events,
        })
    }

    /// Waits for the next change, then for the burst to settle.
    pub async fn changed(&mut self) -> bool {
        if self.events.recv().await.is_none() {
            return false;
        }
        loop {
            match tokio::time::timeout(DEBOUNCE, self.events.recv()).await {
                Ok(Some(())) => continue,
                Ok(None) => return false,
                Err(_) => return true,
            }
        }
    }
}
