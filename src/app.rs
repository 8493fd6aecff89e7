//! Composition root: load the snapshot, start key refresh, bind the listener, serve until
//! told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus_client::metrics::counter::Counter;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::activity::Activity;
use crate::config::{self, CompileContext, ConfigErrors, ConfigWatch};
use crate::issuer::Issuer;
use crate::jwks::Fetcher;
use crate::management::{Control, Management, StaticToken};
use crate::metrics::Metrics;
use crate::proxy::Forwarder;
use crate::server::{self, Shared};
use crate::snapshot::Snapshot;
use crate::store::{Follower, Store, StoreError, StoredEntity};
use crate::time::SharedClock;
use crate::verifier::Verifier;

/// How to start a gateway.
#[derive(Debug, Clone)]
pub struct Options {
    /// A TOML file or a directory of them.
    pub config: PathBuf,
    /// Overrides `[server] listen` (tests use `127.0.0.1:0`).
    pub listen: Option<SocketAddr>,
    /// The clock every time-based decision reads.
    pub clock: SharedClock,
    /// How long shutdown waits for in-flight requests. Defaults to 30 s.
    pub drain: Duration,
    /// Serve on this many dedicated worker threads ([`server::workers`]); `None` serves on
    /// the runtime that calls [`Gateway::start`] (tests, embedding).
    pub workers: Option<NonZeroUsize>,
}

impl Options {
    /// Options for `config` with the system clock.
    pub fn new(config: impl Into<PathBuf>) -> Self {
        Self {
            config: config.into(),
            listen: None,
            clock: crate::time::system(),
            drain: Duration::from_secs(30),
            workers: None,
        }
    }
}

/// Why the gateway could not start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration is invalid.
    #[error("invalid configuration:\n{0}")]
    Config(#[from] ConfigErrors),
    /// The server workers could not be started.
    #[error("cannot start the server workers: {0}")]
    Workers(std::io::Error),
    /// The store could not be opened or read.
    #[error("store {url}: {source}")]
    Store {
        /// Its URL, without a password.
        url: String,
        /// The cause.
        source: StoreError,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// Loads and compiles the configuration at `path`.
pub fn load_snapshot(
    path: &std::path::Path,
    clock: SharedClock,
    previous: Option<&Snapshot>,
) -> Result<Snapshot, ConfigErrors> {
    load_snapshot_with(path, clock, previous, &[])
}

/// Loads and compiles the configuration at `path` together with the store's managed
/// entities, under the same rules.
pub fn load_snapshot_with(
    path: &std::path::Path,
    clock: SharedClock,
    previous: Option<&Snapshot>,
    managed: &[StoredEntity],
) -> Result<Snapshot, ConfigErrors> {
    let cx = CompileContext {
        clock,
        fetcher: Fetcher::new(),
        previous,
        env: crate::config::process_env,
        managed,
    };
    config::load(path, &cx)
}

/// Fetches every remote key set once (concurrently, each bounded by its fetch timeout) and
/// starts the background refreshers. Failures are logged; the realm is then not ready and
/// answers 503 until a fetch succeeds.
pub async fn start_keys(snap: &Snapshot) {
    let mut set = tokio::task::JoinSet::new();
    // Keys carried over from the previous snapshot are already live: no refetch storm.
    for keys in snap
        .realms
        .iter()
        .map(|r| &r.keys)
        .chain(snap.clients.iter().filter_map(|c| c.keys.as_ref()))
        .filter(|k| !k.is_started())
    {
        let keys = keys.clone();
        set.spawn(async move {
            // Errors are logged by the key store itself.
            let _ = keys.refresh().await;
            keys.spawn_refresher();
        });
    }
    while set.join_next().await.is_some() {}
}

/// A verifier for embedding: loads `path`, fetches remote keys, starts their refresh.
pub async fn verifier(path: &std::path::Path, clock: SharedClock) -> Result<Verifier, ConfigErrors> {
    let snap = load_snapshot(path, clock.clone(), None)?;
    start_keys(&snap).await;
    Ok(Verifier::new(snap, clock))
}

/// Opens the store the configuration names, and compiles the snapshot again with its
/// managed entities when it has any.
async fn open_store(opts: &Options, files_only: Snapshot) -> Result<(Snapshot, Store, Vec<StoredEntity>), StartError> {
    let url = files_only.settings.store_url.clone();
    let failed = |source| StartError::Store {
        url: crate::store::redact(&url),
        source,
    };
    let store = Store::open(&url).await.map_err(failed)?;
    let (_, managed) = store.entities().await.map_err(failed)?;
    if managed.is_empty() {
        return Ok((files_only, store, managed));
    }
    let snap = load_snapshot_with(&opts.config, opts.clock.clone(), None, &managed)?;
    Ok((snap, store, managed))
}

/// A listener bound to `addr`, and the address it got (port 0 picks one). With
/// `SO_REUSEPORT` (where the platform has it), so each server worker can bind a listening
/// socket of its own to the same address and the kernel spreads connections over them.
async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let listener =
        crate::server::workers::reuseport_listener(addr).map_err(|source| StartError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| StartError::Bind { addr, source })?;
    Ok((listener, bound))
}

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    reloader: Arc<Reloader>,
    verifier: Arc<Verifier>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Gateway {
    /// Loads the configuration, fetches keys, binds and starts serving.
    pub async fn start(opts: Options) -> Result<Self, StartError> {
        let files_only = load_snapshot(&opts.config, opts.clock.clone(), None)?;
        let (snap, store, managed) = open_store(&opts, files_only).await?;
        let (listener, addr) = bind(opts.listen.unwrap_or(snap.settings.listen)).await?;
        let (admin, admin_addr) = match snap.settings.admin_listen {
            Some(a) => {
                let (l, a) = bind(a).await?;
                (Some(l), Some(a))
            }
            None => (None, None),
        };
        let poll = snap.settings.store_poll_interval;
        start_keys(&snap).await;
        log_warnings(&snap);
        let connect_timeout = snap.settings.upstream_connect_timeout;
        let verifier = Arc::new(Verifier::new(snap, opts.clock.clone()));
        let issuer = Arc::new(Issuer::new(verifier.clone(), Some(store.clone())));
        let metrics = Arc::new(Metrics::new());
        let (stop, stopped) = watch::channel(false);
        let drain = opts.drain;
        // Revocations in force are loaded before the first request is served.
        let (follower, entity_changes) =
            Follower::new(store.clone(), verifier.revocations().clone(), opts.clock.clone(), poll);
        follower.load().await.map_err(|source| StartError::Store {
            url: crate::store::redact(&verifier.snapshot().settings.store_url),
            source,
        })?;
        let store_health = follower.health().clone();
        tokio::spawn(follower.run(stopped.clone()));
        let reloader = Arc::new(Reloader {
            config: opts.config.clone(),
            clock: opts.clock.clone(),
            verifier: verifier.clone(),
            issuer: issuer.clone(),
            store: store.clone(),
            managed: ArcSwap::from_pointee(managed),
            lock: tokio::sync::Mutex::new(()),
            reloads: metrics.reloads.clone(),
            failures: metrics.reload_failures.clone(),
        });
        reload_on_store_change(entity_changes, reloader.clone(), stopped.clone());
        let activity = Arc::new(Activity::new(metrics.clone(), opts.clock.clone()));
        tokio::spawn(activity.clone().run(stopped.clone()));
        let management = Management::new(
            store,
            reloader.clone(),
            verifier.clone(),
            metrics.clone(),
            StaticToken::new(issuer.secrets().clone()),
            activity.clone(),
        );
        let shared = Arc::new(Shared {
            verifier: verifier.clone(),
            forwarder: Forwarder::new(connect_timeout, verifier.snapshots()),
            issuer,
            metrics: metrics.clone(),
            management: Some(Arc::new(management)),
            accepted: None,
        });
        // Every input is watched where it lives: certificates and keys often live apart from
        // the configuration (a mounted secret), and a rotated one is picked up without SIGHUP.
        match ConfigWatch::start(verifier.snapshot().inputs.watch_set()) {
            Ok(w) => reload_on_change(w, reloader.clone(), stopped.clone()),
            Err(e) => tracing::warn!(error = %e, "cannot watch the configuration; reload with SIGHUP"),
        }
        if let Some(admin) = admin {
            let mut stopped = stopped.clone();
            let state = Arc::new(crate::admin::AdminState {
                registry: Arc::new(crate::admin::metrics::registry(&metrics, verifier.clone())),
                verifier: verifier.clone(),
                store: Some(store_health),
            });
            tokio::spawn(async move {
                crate::admin::serve(admin, state, async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await;
            });
        }
        let slots = server::ConnectionLimit::new(verifier.snapshot().settings.max_connections);
        let stop_signal = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        let task = match opts.workers {
            None => tokio::spawn(server::serve(listener, shared, slots, stop_signal(), drain)),
            Some(n) => {
                let listener = listener.into_std().map_err(StartError::Workers)?;
                let ended = server::workers::spawn(n, listener, &shared, &slots, stop_signal, drain)
                    .map_err(StartError::Workers)?;
                tokio::spawn(ended)
            }
        };
        let admin = admin_addr.map_or_else(|| "off".to_owned(), |a| a.to_string());
        tracing::info!(%addr, %admin, "portcullis listening");
        Ok(Self {
            addr,
            admin_addr,
            reloader,
            verifier,
            stop,
            task,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Re-reads the configuration now (what SIGHUP does). On any error the running
    /// configuration stays in place.
    pub async fn reload(&self) -> Result<(), ConfigErrors> {
        self.reloader.reload(Trigger::Asked).await.map(|_| ())
    }

    /// Successful and failed reloads so far.
    pub fn reload_counts(&self) -> (u64, u64) {
        (self.reloader.reloads.get(), self.reloader.failures.get())
    }

    /// The admin listener's address, if `[server] admin_listen` is set.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The gateway's verifier (snapshot, keys, cache).
    pub fn verifier(&self) -> &Arc<Verifier> {
        &self.verifier
    }

    /// Stops accepting, lets in-flight requests finish (up to the drain bound), returns.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let _ = (&mut self.task).await;
    }

    /// Waits until the server task ends.
    pub async fn wait(mut self) {
        let _ = (&mut self.task).await;
    }
}

/// Reloads whenever `watch` reports a settled change, until `stopped` turns true; after
/// each reload, watches what the new configuration reads.
/// What `portcullis check` warns about, in the log of a configuration being served (a
/// resource created through the Management API is never seen by `check`).
fn log_warnings(snap: &Snapshot) {
    for w in crate::config::warnings(snap) {
        tracing::warn!(warning = %w, "configuration warning");
    }
}

fn reload_on_change(mut watch: ConfigWatch, reloader: Arc<Reloader>, mut stopped: watch::Receiver<bool>) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                changed = watch.changed() => {
                    if !changed { break }
                    // Errors are logged and counted by the reloader; the running snapshot stays.
                    if let Ok(Reloaded::Applied) = reloader.reload(Trigger::Watch).await {
                        let set = reloader.verifier.snapshot().inputs.watch_set();
                        if let Err(e) = watch.follow(set) {
                            tracing::warn!(error = %e, "cannot watch the new configuration's files; reload with SIGHUP");
                        }
                    }
                }
                () = async { let _ = stopped.wait_for(|s| *s).await; } => break,
            }
        }
    });
}

impl Control for Reloader {
    fn check(&self, managed: Vec<StoredEntity>) -> Pin<Box<dyn Future<Output = Result<(), ConfigErrors>> + Send + '_>> {
        Box::pin(async move {
            let path = self.config.clone();
            let clock = self.clock.clone();
            let current = self.verifier.snapshot();
            // File reads and key parsing: off the runtime workers.
            tokio::task::spawn_blocking(move || load_snapshot_with(&path, clock, Some(&current), &managed).map(|_| ()))
                .await
                .unwrap_or_else(|e| {
                    Err(ConfigErrors(vec![crate::config::ConfigError {
                        file: PathBuf::from("store"),
                        entity: "configuration".into(),
                        field: None,
                        message: format!("compile task failed: {e}"),
                    }]))
                })
        })
    }

    fn apply(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            // Errors are logged and counted by the reload; the follower retries.
            let _ = self.reload(Trigger::Store).await;
        })
    }
}

/// Recompiles whenever the follower reads an entity change in the store, until `stopped`.
fn reload_on_store_change(
    mut changes: watch::Receiver<i64>,
    reloader: Arc<Reloader>,
    mut stopped: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() { break }
                    let version = *changes.borrow_and_update();
                    tracing::debug!(version, "managed entities changed; recompiling");
                    // Errors are logged and counted by the reloader; the running snapshot stays.
                    let _ = reloader.reload(Trigger::Store).await;
                }
                () = async { let _ = stopped.wait_for(|s| *s).await; } => break,
            }
        }
    });
}

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// The file watcher: skipped when every input is byte-identical to the running ones.
    Watch,
    /// An operator (`SIGHUP`) or the embedding program: always compiled and swapped in.
    Asked,
    /// The store's managed entities changed: read again, then compiled with the files.
    Store,
}

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reloaded {
    /// A new snapshot is serving.
    Applied,
    /// The inputs were byte-identical to the running ones; nothing was swapped.
    Unchanged,
}

/// Builds and swaps in new snapshots.
#[derive(Debug)]
struct Reloader {
    config: PathBuf,
    clock: SharedClock,
    verifier: Arc<Verifier>,
    issuer: Arc<Issuer>,
    store: Store,
    /// The store's managed entities as last read: compiled with the files at every reload.
    managed: ArcSwap<Vec<StoredEntity>>,
    /// One reload at a time.
    lock: tokio::sync::Mutex<()>,
    reloads: Counter,
    failures: Counter,
}

impl Reloader {
    /// Compiles the configuration completely, then swaps it in. Requests in flight finish on
    /// the snapshot they loaded; realms whose key sources are unchanged keep their keys.
    async fn reload(&self, trigger: Trigger) -> Result<Reloaded, ConfigErrors> {
        let _one_at_a_time = self.lock.lock().await;
        if trigger == Trigger::Store {
            match self.store.entities().await {
                Ok((_, managed)) => self.managed.store(Arc::new(managed)),
                Err(e) => {
                    // The follower retries: its next round sees the same change again.
                    tracing::warn!(error = %e, "cannot read the managed entities; the running configuration stays");
                    return Ok(Reloaded::Unchanged);
                }
            }
        }
        let current = self.verifier.snapshot();
        let path = self.config.clone();
        let clock = self.clock.clone();
        let prev = current.clone();
        let managed = self.managed.load_full();
        // File reads and key parsing: off the runtime workers.
        let compiled = tokio::task::spawn_blocking(move || {
            // A reload of byte-identical inputs would only empty the token caches.
            if trigger == Trigger::Watch && prev.inputs.unchanged() {
                return None;
            }
            Some(load_snapshot_with(&path, clock, Some(&prev), &managed))
        })
        .await;
        let compiled = match compiled {
            Ok(None) => {
                tracing::debug!(config = %self.config.display(), "configuration files unchanged; not reloaded");
                return Ok(Reloaded::Unchanged);
            }
            Ok(Some(r)) => r,
            Err(e) => Err(ConfigErrors(vec![crate::config::ConfigError {
                file: self.config.clone(),
                entity: "configuration".into(),
                field: None,
                message: format!("reload task failed: {e}"),
            }])),
        };
        match compiled {
            Ok(snap) => {
                if snap.settings.listen != current.settings.listen
                    || snap.settings.admin_listen != current.settings.admin_listen
                {
                    tracing::warn!("listen addresses changed; they take effect on restart");
                }
                // The accept loop sizes its connection semaphore once, at start.
                if snap.settings.max_connections != current.settings.max_connections {
                    tracing::warn!("max_connections changed; it takes effect on restart");
                }
                start_keys(&snap).await;
                log_warnings(&snap);
                self.verifier.replace(snap);
                self.issuer.forget_secrets();
                self.reloads.inc();
                tracing::info!(config = %self.config.display(), "configuration reloaded");
                Ok(Reloaded::Applied)
            }
            Err(errors) => {
                self.failures.inc();
                for e in &errors.0 {
                    tracing::error!(error = %e, "configuration reload refused; the running configuration stays");
                }
                Err(errors)
            }
        }
    }
}
