//! The store: what must survive a restart and be shared by replicas. Revocations, client
//! assertion `jti`s, managed entities and the change log that orders them, in SQLite (the
//! embedded default, a file created on first start) or PostgreSQL (what several replicas
//! share). One interface, the same SQL on both engines where they agree; the schema is
//! migrated at start from migrations embedded in the binary.
//!
//! Every write takes the next version from one counter row inside its transaction, so
//! versions commit in order: a follower that has applied everything up to version N and
//! reads "after N" never misses a change committed later with a smaller number.
//!
//! NB: the request path never reads the store. It reads memory that the [`follower`] keeps
//! current; only writes (revocations, management) and the assertion replay check, which
//! must be shared to mean anything, wait on it. Every call is bounded by [`CALL_TIMEOUT`].

pub mod follower;
mod migrations;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{Connection, Row};
use thiserror::Error;

pub use follower::{Follower, StoreHealth};

/// The PostgreSQL notification channel a committed change is announced on.
pub const CHANNEL: &str = "portcullis_changes";

/// Bound on any one store call (connecting included): past it the call fails as
/// unavailable, so a store that hangs never holds a request or a reload.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a store call failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The URL is not one this build can open.
    #[error("store url {0:?}: expected sqlite://PATH, sqlite::memory: or postgres://…")]
    BadUrl(String),
    /// The engine could not be reached or refused the call.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The schema could not be brought up to date.
    #[error("store migration failed: {0}")]
    Migration(String),
    /// A write validated against the store at one version found it at another: something
    /// else was committed meanwhile, so the validation must be done again.
    #[error("the store changed since the write was validated")]
    Moved,
    /// A conditional write found another version than the one it was based on.
    #[error("the entity changed (now at version {current:?})")]
    Conflict {
        /// The entity's version now; `None` when it does not exist (any more).
        current: Option<i64>,
    },
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::Unavailable(crate::chain::error_chain(&e))
    }
}

/// A handle on the store; cheap to clone (the pools are shared).
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// Assertion `jti` records, written in group commits.
    jtis: Arc<jtis::GroupCommit>,
}

#[derive(Clone)]
enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("engine", &self.engine()).finish()
    }
}

/// Runs `$body` with `$pool` bound to whichever engine's pool the store has: the same code,
/// compiled once per driver.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        on_backend!(&$store.backend, $pool => $body)
    };
}

/// As [`on_pool`], for a bare backend.
macro_rules! on_backend {
    ($backend:expr, $pool:ident => $body:expr) => {
        match $backend {
            Backend::Sqlite($pool) => $body,
            Backend::Postgres($pool) => $body,
        }
    };
}

mod jtis;

/// Takes the next version inside the transaction `$tx` (row-locked until it ends).
macro_rules! next_version {
    ($tx:ident) => {
        sqlx::query("UPDATE store_version SET version = version + 1 WHERE id = 1 RETURNING version")
            .fetch_one(&mut *$tx)
            .await?
            .try_get::<i64, _>("version")?
    };
}

/// Appends a change-log entry inside `$tx`.
macro_rules! log_change {
    ($tx:ident, $version:expr, $at:expr, $kind:expr, $realm:expr, $id:expr, $action:expr, $actor:expr) => {
        sqlx::query(
            "INSERT INTO changes (version, at, kind, realm, entity_id, action, actor) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind($version)
        .bind($at)
        .bind($kind)
        .bind($realm)
        .bind($id)
        .bind($action)
        .bind($actor)
        .execute(&mut *$tx)
        .await?
    };
}

/// Announces version `$version` to listening replicas when `$tx` commits (PostgreSQL
/// delivers a notification only then, so nobody is woken for a change they cannot read).
macro_rules! notify {
    ($tx:ident, $version:expr) => {
        if <_ as IsPostgres>::is_postgres(&*$tx) {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind($version.to_string())
                .execute(&mut *$tx)
                .await?;
        }
    };
}

/// One revoked token as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRevocation {
    /// The token's identity ([`crate::token::RevocationKey`] bytes).
    pub key: [u8; 32],
    /// Its realm.
    pub realm: String,
    /// Unix seconds after which the token is dead anyway (its `exp` plus leeway).
    pub expires_at: i64,
    /// The change that recorded it.
    pub version: i64,
}

/// One entry of the change log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Its version (strictly increasing, in commit order).
    pub version: i64,
    /// Unix seconds.
    pub at: i64,
    /// `revocation` or an entity kind (`resource_server`, `protected_resource`, `client`).
    pub kind: String,
    /// The realm it concerns.
    pub realm: String,
    /// The entity's id, for entity changes.
    pub entity_id: Option<String>,
    /// `revoke`, `create`, `update` or `delete`.
    pub action: String,
    /// Who: a client id, or `static-token`.
    pub actor: String,
}

/// A managed entity as stored: its declaration (JSON) and version (its `ETag`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntity {
    /// `resource_server`, `protected_resource` or `client`.
    pub kind: String,
    /// Its id.
    pub id: String,
    /// Its realm.
    pub realm: String,
    /// The declaration, as JSON.
    pub body: String,
    /// The change that last wrote it.
    pub version: i64,
}

/// A write of one managed entity.
#[derive(Debug, Clone)]
pub struct EntityWrite<'a> {
    /// `resource_server`, `protected_resource` or `client`.
    pub kind: &'a str,
    /// Its id.
    pub id: &'a str,
    /// Its realm.
    pub realm: &'a str,
    /// The new declaration (JSON); `None` deletes.
    pub body: Option<&'a str>,
    /// The version it was based on (`If-Match`); `None` to create (it must not exist).
    pub based_on: Option<i64>,
    /// The store version the write was validated against; when set, the write fails with
    /// [`StoreError::Moved`] if anything was committed since.
    pub validated_at: Option<i64>,
    /// Who writes it (the change log's actor).
    pub actor: &'a str,
    /// Unix seconds.
    pub now: i64,
}

impl Store {
    /// Opens (creating when needed) the store at `url` and brings its schema up to date:
    /// `sqlite://PATH` (the file and its directory are created), `sqlite::memory:` (one
    /// process, nothing kept; for tests and trials) or `postgres://…`.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let store = Self::connect(url, true).await?;
        bounded(store.migrate()).await?;
        Ok(store)
    }

    /// Opens the store at `url` to read it, changing nothing: no file or directory is
    /// created, no migration runs, an SQLite file is opened read-only. `None` when an
    /// SQLite file does not exist yet (the first `serve` creates it). For `portcullis check`.
    pub async fn inspect(url: &str) -> Result<Option<Self>, StoreError> {
        if let Some(path) = sqlite_path(url)
            && !std::path::Path::new(path).exists()
        {
            return Ok(None);
        }
        Self::connect(url, false).await.map(Some)
    }

    /// A pool for `url`; `writable` creates an SQLite file (and its directory) when missing.
    async fn connect(url: &str, writable: bool) -> Result<Self, StoreError> {
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite(open_sqlite(url, writable).await?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url).map_err(|_| StoreError::BadUrl(redact(url)))?;
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(CALL_TIMEOUT)
                .connect_with(options)
                .await?;
            Backend::Postgres(pool)
        } else {
            return Err(StoreError::BadUrl(redact(url)));
        };
        Ok(Self {
            backend,
            jtis: Arc::new(jtis::GroupCommit::new()),
        })
    }

    /// `sqlite` or `postgres`.
    pub fn engine(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let result = match &self.backend {
            Backend::Sqlite(pool) => migrations::sqlite().run(pool).await,
            Backend::Postgres(pool) => migrations::postgres().run(pool).await,
        };
        result.map_err(|e| StoreError::Migration(crate::chain::error_chain(&e)))
    }

    /// The version of the last committed change (0 for none).
    pub async fn version(&self) -> Result<i64, StoreError> {
        bounded(async {
            on_pool!(self, pool => {
                let row = sqlx::query("SELECT version FROM store_version WHERE id = 1")
                    .fetch_one(pool)
                    .await?;
                Ok(row.try_get::<i64, _>("version")?)
            })
        })
        .await
    }

    /// Records a revocation; returns its version once committed. Revoking a token already
    /// revoked keeps the later expiry and still makes a change (replicas re-apply it).
    pub async fn revoke(
        &self,
        realm: &str,
        key: &[u8; 32],
        expires_at: i64,
        actor: &str,
        now: i64,
    ) -> Result<i64, StoreError> {
        bounded(async {
            on_pool!(self, pool => {
                let mut tx = pool.begin().await?;
                let version = next_version!(tx);
                log_change!(tx, version, now, "revocation", realm, None::<&str>, "revoke", actor);
                sqlx::query(
                    "INSERT INTO revocations (token_key, realm, expires_at, version) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (token_key) DO UPDATE SET expires_at = \
                     CASE WHEN excluded.expires_at > revocations.expires_at THEN excluded.expires_at \
                     ELSE revocations.expires_at END, version = excluded.version",
                )
                .bind(&key[..])
                .bind(realm)
                .bind(expires_at)
                .bind(version)
                .execute(&mut *tx)
                .await?;
                notify!(tx, version);
                tx.commit().await?;
                Ok(version)
            })
        })
        .await
    }

    /// Revocations recorded after `version` that are still in force at `now`.
    pub async fn revocations_after(&self, version: i64, now: i64) -> Result<Vec<StoredRevocation>, StoreError> {
        bounded(async {
            on_pool!(self, pool => {
                let rows = sqlx::query(
                    "SELECT token_key, realm, expires_at, version FROM revocations \
                     WHERE version > $1 AND expires_at > $2 ORDER BY version",
                )
                .bind(version)
                .bind(now)
                .fetch_all(pool)
                .await?;
                rows.iter().map(revocation_row).collect()
            })
        })
        .await
    }

    /// Records the first use of an assertion `jti` (by its digest) until `expires_at`: true
    /// the first time, false for a replay, on any replica. A record that has expired is
    /// taken over (its assertion could not be accepted any more anyway).
    pub async fn first_use(&self, key: &[u8; 32], expires_at: i64, now: i64) -> Result<bool, StoreError> {
        bounded(self.jtis.first_use(&self.backend, key, expires_at, now)).await
    }

    /// Deletes revocations and assertion records that expired by `now`; returns how many.
    pub async fn purge(&self, now: i64) -> Result<u64, StoreError> {
        bounded(async {
            on_pool!(self, pool => {
                let a = sqlx::query("DELETE FROM revocations WHERE expires_at <= $1")
                    .bind(now)
                    .execute(pool)
                    .await?;
                let b = sqlx::query("DELETE FROM assertion_jtis WHERE expires_at <= $1")
                    .bind(now)
                    .execute(pool)
                    .await?;
                Ok(a.rows_affected() + b.rows_affected())
            })
        })
        .await
    }

    /// The change log after `version`, oldest first, at most `limit` entries.
    pub async fn changes_after(&self, version: i64, limit: i64) -> Result<Vec<Change>, StoreError> {
        bounded(async {
            on_pool!(self, pool => {
                let rows = sqlx::query(
                    "SELECT version, at, kind, realm, entity_id, action, actor FROM changes \
                     WHERE version > $1 ORDER BY version LIMIT $2",
                )
                .bind(version)
                .bind(limit)
                .fetch_all(pool)
                .await?;
                rows.iter().map(change_row).collect()
            })
        })
        .await
    }

    /// The `limit` most recent changes of `realm`, newest first.
    pub async fn latest_changes(&self, realm: &str, limit: i64) -> Result<Vec<Change>, StoreError> {
        bounded(async {
            on_pool!(self, pool => {
                let rows = sqlx::query(
                    "SELECT version, at, kind, realm, entity_id, action, actor FROM changes \
                     WHERE realm = $1 ORDER BY version DESC LIMIT $2",
                )
                .bind(realm)
                .bind(limit)
                .fetch_all(pool)
                .await?;
                rows.iter().map(change_row).collect()
            })
        })
        .await
    }

    /// Every managed entity, and the store's version they are as of.
    pub async fn entities(&self) -> Result<(i64, Vec<StoredEntity>), StoreError> {
        bounded(async {
            on_pool!(self, pool => {
                let mut tx = pool.begin().await?;
                let version: i64 = sqlx::query("SELECT version FROM store_version WHERE id = 1")
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("version")?;
                let rows = sqlx::query("SELECT kind, id, realm, body, version FROM entities ORDER BY kind, id")
                    .fetch_all(&mut *tx)
                    .await?;
                tx.commit().await?;
                let entities = rows.iter().map(entity_row).collect::<Result<Vec<_>, _>>()?;
                Ok((version, entities))
            })
        })
        .await
    }

    /// Creates, replaces or deletes one managed entity if it is still at `based_on`;
    /// returns the new version. [`StoreError::Conflict`] when it is not (someone else wrote
    /// it), and nothing is written.
    pub async fn write_entity(&self, w: &EntityWrite<'_>) -> Result<i64, StoreError> {
        bounded(async {
            on_pool!(self, pool => {
                let mut tx = pool.begin().await?;
                // Taken first: it serializes writers, so the check below cannot race.
                let version = next_version!(tx);
                let current: Option<i64> = sqlx::query("SELECT version FROM entities WHERE kind = $1 AND id = $2")
                    .bind(w.kind)
                    .bind(w.id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|r| r.try_get("version"))
                    .transpose()?;
                if current != w.based_on {
                    return Err(StoreError::Conflict { current });
                }
                if w.validated_at.is_some_and(|at| at + 1 != version) {
                    return Err(StoreError::Moved);
                }
                let action = match (w.based_on, w.body) {
                    (None, _) => "create",
                    (Some(_), Some(_)) => "update",
                    (Some(_), None) => "delete",
                };
                log_change!(tx, version, w.now, w.kind, w.realm, Some(w.id), action, w.actor);
                match w.body {
                    Some(body) => {
                        sqlx::query(
                            "INSERT INTO entities (kind, id, realm, body, version) VALUES ($1, $2, $3, $4, $5) \
                             ON CONFLICT (kind, id) DO UPDATE SET realm = excluded.realm, body = excluded.body, \
                             version = excluded.version",
                        )
                        .bind(w.kind)
                        .bind(w.id)
                        .bind(w.realm)
                        .bind(body)
                        .bind(version)
                        .execute(&mut *tx)
                        .await?;
                    }
                    None => {
                        sqlx::query("DELETE FROM entities WHERE kind = $1 AND id = $2")
                            .bind(w.kind)
                            .bind(w.id)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                notify!(tx, version);
                tx.commit().await?;
                Ok(version)
            })
        })
        .await
    }

    /// A connection that receives a notification for every committed change, on engines
    /// that push (PostgreSQL); `None` where followers only poll (SQLite: one host).
    pub async fn listen(&self) -> Result<Option<sqlx::postgres::PgListener>, StoreError> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(None),
            Backend::Postgres(pool) => {
                bounded(async {
                    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
                    listener.listen(CHANNEL).await?;
                    Ok(Some(listener))
                })
                .await
            }
        }
    }

    /// Whether the engine answers now (a round trip).
    pub async fn ping(&self) -> Result<(), StoreError> {
        bounded(async {
            on_pool!(self, pool => {
                let mut conn = pool.acquire().await?;
                conn.ping().await?;
                Ok(())
            })
        })
        .await
    }
}

/// Whether a connection is PostgreSQL's (the one engine that notifies).
trait IsPostgres {
    fn is_postgres(&self) -> bool;
}

impl IsPostgres for sqlx::SqliteConnection {
    fn is_postgres(&self) -> bool {
        false
    }
}

impl IsPostgres for sqlx::PgConnection {
    fn is_postgres(&self) -> bool {
        true
    }
}

/// The file an `sqlite:` URL names; `None` for another engine or an in-memory database.
fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite:")?;
    if rest == ":memory:" || rest.starts_with(":memory:?") {
        return None;
    }
    // `sqlite://data/x.db` and `sqlite:data/x.db` both name the file `data/x.db`.
    let path = rest.trim_start_matches("//");
    Some(path.split('?').next().unwrap_or(path))
}

async fn open_sqlite(url: &str, writable: bool) -> Result<SqlitePool, StoreError> {
    let memory = sqlite_path(url).is_none();
    if writable
        && let Some(path) = sqlite_path(url)
        && let Some(dir) = std::path::Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
    }
    let options = SqliteConnectOptions::from_str(url).map_err(|_| StoreError::BadUrl(url.to_owned()))?;
    let options = if writable {
        options.create_if_missing(true).journal_mode(SqliteJournalMode::Wal)
    } else {
        // Read-only: the journal mode is the file's own (WAL, set when it was created).
        options.read_only(true)
    }
    .busy_timeout(CALL_TIMEOUT);
    // An in-memory database lives in its connection: one connection, or each would see
    // its own empty database.
    let max = if memory { 1 } else { 4 };
    Ok(SqlitePoolOptions::new()
        .max_connections(max)
        .min_connections(if memory { 1 } else { 0 })
        .idle_timeout(None::<Duration>)
        .max_lifetime(None::<Duration>)
        .acquire_timeout(CALL_TIMEOUT)
        .connect_with(options)
        .await?)
}

/// `fut`, or [`StoreError::Unavailable`] once [`CALL_TIMEOUT`] has passed.
async fn bounded<T>(fut: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Unavailable(format!("no answer within {CALL_TIMEOUT:?}"))),
    }
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

fn revocation_row<R: Row>(row: &R) -> Result<StoredRevocation, StoreError>
where
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
{
    let bytes: Vec<u8> = row.try_get("token_key")?;
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|_| StoreError::Unavailable("a revocation key is not 32 bytes".into()))?;
    Ok(StoredRevocation {
        key,
        realm: row.try_get("realm")?,
        expires_at: row.try_get("expires_at")?,
        version: row.try_get("version")?,
    })
}

fn change_row<R: Row>(row: &R) -> Result<Change, StoreError>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
{
    Ok(Change {
        version: row.try_get("version")?,
        at: row.try_get("at")?,
        kind: row.try_get("kind")?,
        realm: row.try_get("realm")?,
        entity_id: row.try_get("entity_id")?,
        action: row.try_get("action")?,
        actor: row.try_get("actor")?,
    })
}

fn entity_row<R: Row>(row: &R) -> Result<StoredEntity, StoreError>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
{
    Ok(StoredEntity {
        kind: row.try_get("kind")?,
        id: row.try_get("id")?,
        realm: row.try_get("realm")?,
        body: row.try_get("body")?,
        version: row.try_get("version")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(redact("postgres://u:secret@db:5432/x"), "postgres://u:***@db:5432/x");
        assert_eq!(redact("sqlite://data/p.db"), "sqlite://data/p.db");
    }
}
