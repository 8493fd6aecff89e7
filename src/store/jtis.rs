//! Assertion `jti` records, committed in groups: concurrent first-use checks are written in
//! one transaction, so one durable commit (one WAL fsync on SQLite) serves every check that
//! arrived while the previous commit ran, instead of one commit each. Durability is
//! unchanged: each check is answered only after the transaction holding it committed.
//!
//! There is no background task: a caller queues its record, then either finds it answered
//! or takes the commit turn and writes everything queued (its own and others'). The write
//! runs as a task of its own, so a caller that goes away mid-commit does not abort the
//! others' answers.

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
#[derive(Default)]
pub(super) struct GroupCommit {
    queue: Mutex<Vec<Pending>>,
    turn: Mutex<()>,
}

impl GroupCommit {
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
            let write = tokio::spawn(async move { commit(&backend, batch).await });
            // NB: the turn is held until the write ended, whether or not we are still here.
            let _ = write.await;
            drop(turn);
        }
    }
}

fn lost() -> StoreError {
    StoreError::Unavailable("the commit holding this check did not finish".into())
}

/// Writes `batch` in one transaction and answers each check.
async fn commit(backend: &Backend, batch: Vec<Pending>) {
    let outcome = super::bounded(async {
        on_backend!(backend, pool => {
            let mut tx = pool.begin().await?;
            let mut firsts = Vec::with_capacity(batch.len());
            for p in &batch {
                let done = sqlx::query(
                    "INSERT INTO assertion_jtis (jti_key, expires_at) VALUES ($1, $2) \
                     ON CONFLICT (jti_key) DO UPDATE SET expires_at = excluded.expires_at \
                     WHERE assertion_jtis.expires_at <= $3",
                )
                .bind(&p.key[..])
                .bind(p.expires_at)
                .bind(p.now)
                .execute(&mut *tx)
                .await?;
                firsts.push(done.rows_affected() == 1);
            }
            tx.commit().await?;
            Ok(firsts)
        })
    })
    .await;
    match outcome {
        Ok(firsts) => {
            for (p, first) in batch.into_iter().zip(firsts) {
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
