//! Watching the configuration's files for changes (notify).
//!
//! Directories are watched, not files, so replacements by rename and symlink swaps (how
//! Kubernetes updates a ConfigMap) are seen as well as edits in place; but only events on the
//! configuration's own inputs count ([`WatchSet::concerns`]): a log written beside the
//! configuration never causes a reload. Each changed path is debounced on its own, so a file
//! that keeps changing cannot hold back a reload for an edit elsewhere.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::inputs::WatchSet;

/// How long a changed path must stay quiet before its change counts (editors and
/// ConfigMap updates write in bursts).
pub(super) const DEBOUNCE: Duration = Duration::from_millis(250);

/// The longest a path that keeps changing can put its reload off.
pub(super) const MAX_SETTLE: Duration = Duration::from_secs(2);

/// Changed paths queued between the watcher's thread and the reload task. Dropping one
/// when full loses nothing: a full queue is a pending change, and a reload re-reads every
/// input whichever path announced it.
const QUEUE: usize = 256;

/// A running watch; dropping it stops watching.
pub struct ConfigWatch {
    watcher: RecommendedWatcher,
    set: Arc<ArcSwap<WatchSet>>,
    watched: BTreeSet<PathBuf>,
    events: mpsc::Receiver<PathBuf>,
}

impl std::fmt::Debug for ConfigWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigWatch")
            .field("watched", &self.watched)
            .finish_non_exhaustive()
    }
}

impl ConfigWatch {
    /// Watches the inputs in `set`.
    pub fn start(set: WatchSet) -> Result<Self, notify::Error> {
        let (tx, events) = mpsc::channel(QUEUE);
        let shared = Arc::new(ArcSwap::from_pointee(WatchSet::default()));
        let filter = shared.clone();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(event) = res else { return };
            if event.kind.is_access() {
                return;
            }
            let set = filter.load();
            for path in event.paths {
                if set.concerns(&path) {
                    let _ = tx.try_send(path);
                }
            }
        })?;
        let mut watch = Self {
            watcher,
            set: shared,
            watched: BTreeSet::new(),
            events,
        };
        watch.follow(set)?;
        Ok(watch)
    }

    /// Switches to the inputs of a newly loaded configuration: directories it names are
    /// watched from now on, directories it no longer needs are not.
    pub fn follow(&mut self, set: WatchSet) -> Result<(), notify::Error> {
        for dir in set.dirs.difference(&self.watched) {
            self.watcher.watch(dir, RecursiveMode::NonRecursive)?;
        }
        for dir in self.watched.difference(&set.dirs) {
            // A directory that disappeared is no longer watched anyway.
            let _ = self.watcher.unwatch(dir);
        }
        self.watched = set.dirs.clone();
        self.set.store(Arc::new(set));
        Ok(())
    }

    /// Waits for a change to an input, then until some changed path has been quiet for
    /// [`DEBOUNCE`] (or changing for [`MAX_SETTLE`]). `false` when the watch has ended.
    pub async fn changed(&mut self) -> bool {
        let Some(first) = self.events.recv().await else {
            return false;
        };
        // Per path: when it first changed in this round and when it last changed.
        let mut pending: HashMap<PathBuf, (Instant, Instant)> = HashMap::new();
        let now = Instant::now();
        pending.insert(first, (now, now));
        loop {
            let due = pending
                .values()
                .map(|&(first, last)| (last + DEBOUNCE).min(first + MAX_SETTLE))
                .min()
                .unwrap_or_else(Instant::now);
            tokio::select! {
                event = self.events.recv() => match event {
                    None => return false,
                    Some(path) => {
                        let now = Instant::now();
                        pending.entry(path).and_modify(|e| e.1 = now).or_insert((now, now));
                    }
                },
                () = tokio::time::sleep_until(due) => return true,
            }
        }
    }
}
