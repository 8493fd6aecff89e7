//! Assertion `jti` records, committed in groups: concurrent first-use checks are written in
//! one statement, so one durable commit (one WAL fsync on SQLite) serves every check that
//! arrived while the previous commit ran, instead of one commit each. Durability is
//! unchanged: each check is answered only after the transaction holding it committed.
//!
//! There is no background task: a caller queues its record, then either finds it answered
//! or takes the commit turn and writes everything queued (its own and others'). The write
//! runs as a task of its own, so a caller that goes away mid-commit does not abort the
//! others' answers.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::{Mutex, oneshot};

use super::{Backend, StoreError};

/// Records one commit takes at most; the rest wait for the next turn.
const MAX_BATCH: usize = 512;

/// One check waiting for its commit.
struct Pending {
    key: [u8; 32],
    expires_at: i64,
    now: i64,
    answer: oneshot::Sender<Result<bool, StoreError>>,
}

/// The queue and the commit turn of one store.
pub(super) struct GroupCommit {
    queue: Mutex<Vec<Pending>>,
    turn: Mutex<()>,
    /// The runtime the store was opened on (the gateway's control thread), where the writes
    /// run: on a server worker's runtime, a write would wait for that worker to finish what
    /// it is busy with (say, a burst of RSA signatures) while the other workers' checks
    /// wait for the write.
    runtime: Option<tokio::runtime::Handle>,
}

impl GroupCommit {
    /// An empty queue whose writes run on the current runtime, if there is one.
    pub(super) fn new() -> Self {
        Self {
            queue: Mutex::default(),
            turn: Mutex::default(),
            runtime: tokio::runtime::Handle::try_current().ok(),
        }
    }

    /// Records `key` until `expires_at` unless a record in force at `now` exists; true when
    /// this was its first use.
    pub(super) async fn first_use(
        self: &Arc<Self>,
        backend: &Backend,
        key: &[u8; 32],
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (answer, mut answered) = oneshot::channel();
        self.queue.lock().await.push(Pending {
            key: *key,
            expires_at,
            now,
            answer,
        });
        loop {
            let turn = tokio::select! {
                biased;
                a = &mut answered => return a.unwrap_or_else(|_| Err(lost())),
                turn = self.turn.lock() => turn,
            };
            let batch: Vec<Pending> = {
                let mut queue = self.queue.lock().await;
                let n = queue.len().min(MAX_BATCH);
                queue.drain(..n).collect()
            };
            if batch.is_empty() {
                // Ours was in the commit that just ended: its answer is sent.
                drop(turn);
                return answered.await.unwrap_or_else(|_| Err(lost()));
            }
            let backend = backend.clone();
            let write = async move { commit(&backend, batch).await };
            let write = match &self.runtime {
                Some(rt) => rt.spawn(write),
                None => tokio::spawn(write),
            };
            // NB: the turn is held until the write ended, whether or not we are still here.
            let _ = write.await;
            drop(turn);
        }
    }
}

fn lost() -> StoreError {
    StoreError::Unavailable("the commit holding this check did not finish".into())
}

/// Writes `batch` in one statement (one transaction) and answers each check: a key is
/// recorded when it is new or its record has expired, and `RETURNING` names the keys that
/// were. A key twice in one batch is a replay the second time (and one statement may not
/// touch a row twice).
async fn commit(backend: &Backend, batch: Vec<Pending>) {
    let mut seen = HashSet::with_capacity(batch.len());
    let unique: Vec<&Pending> = batch.iter().filter(|p| seen.insert(p.key)).collect();
    // The earliest `now` of the batch (they differ by the time the batch took to gather):
    // a record expired then has expired for every check in it.
    let now = batch.iter().map(|p| p.now).min().unwrap_or(0);
    let mut sql = String::from("INSERT INTO assertion_jtis (jti_key, expires_at) VALUES ");
    for i in 0..unique.len() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("(${}, ${})", 2 * i + 2, 2 * i + 3));
    }
    sql.push_str(
        " ON CONFLICT (jti_key) DO UPDATE SET expires_at = excluded.expires_at \
         WHERE assertion_jtis.expires_at <= $1 RETURNING jti_key",
    );
    let outcome = super::bounded(async {
        on_backend!(backend, pool => {
            let mut query = sqlx::query(&sql).bind(now);
            for p in &unique {
                query = query.bind(&p.key[..]).bind(p.expires_at);
            }
            let rows = query.fetch_all(pool).await?;
            let mut recorded = HashSet::with_capacity(rows.len());
            for row in rows {
                let key: Vec<u8> = sqlx::Row::try_get(&row, "jti_key")?;
                recorded.insert(key);
            }
            Ok::<_, StoreError>(recorded)
        })
    })
    .await;
    match outcome {
        Ok(mut recorded) => {
            for p in batch {
                // The first check of a key gets the statement's verdict; a repeat is a replay.
                let first = recorded.remove(&p.key[..]);
                let _ = p.answer.send(Ok(first));
            }
        }
        Err(e) => {
            let why = e.to_string();
            for p in batch {
                let _ = p.answer.send(Err(StoreError::Unavailable(why.clone())));
            }
        }
    }
}
