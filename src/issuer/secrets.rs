//! Client secrets: stored only as argon2id PHC strings, checked in constant time off the
//! runtime threads. Checking is bounded three ways, since each argon2 run holds 19 MiB for
//! tens of milliseconds: failures are reserved per (client, source) before the hash is paid
//! ([`Throttle`]), at most one hash per core runs with a bounded queue behind ([`Gate`]), and
//! identical checks in flight share one run. A successful check is remembered for a while.
//! Both the memory and the in-flight map are keyed by an HMAC of client id, presented secret
//! and stored hash under a per-process key, so they hold nothing usable.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, PasswordHasher, Version};
use aws_lc_rs::hmac;
use moka::sync::Cache;
use thiserror::Error;
use tokio::sync::OnceCell;

use super::gate::{Gate, Refused};
use super::throttle::{Source, Throttle};
pub use crate::model::secret::check_phc;
use crate::time::SharedClock;

/// How long a successful check is remembered.
pub(super) const REMEMBER_SUCCESS: Duration = Duration::from_secs(300);

/// What an unknown client id is checked against, so that it costs what a known one costs
/// (argon2id with the parameters [`hash_secret`] uses; its secret is of no use to anyone, as
/// an unknown id is refused whatever the outcome).
const DUMMY_PHC: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$CcIlFm7wchhpwOPMr4Vwxw$nQzqldKq/2YNrtp6iXJ4nZNGNX6ixqXwruNoogVb1nw";

/// argon2 blocks (1 KiB each) a check with [`hash_secret`]'s parameters needs.
const DEFAULT_BLOCKS: usize = Params::DEFAULT.block_count();

/// Why a secret check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The secret does not match, or the client id is unknown.
    #[error("secret does not match")]
    Mismatch,
    /// Too many recent failures for this client from this source; retry after the seconds
    /// given.
    #[error("too many failures; retry after {0} s")]
    Throttled(u64),
    /// Every verification turn is taken and the queue is full.
    #[error("too many secret checks at once")]
    Busy,
    /// The stored hash is not a PHC string we can check.
    #[error("stored secret hash is unusable")]
    BadHash,
}

/// Hashes a secret for the configuration (`portcullis hash-secret`): argon2id with the
/// crate's default parameters (OWASP-recommended m=19 MiB, t=2, p=1) and a random salt.
pub fn hash_secret(secret: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(secret.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Secret verification: throttled, gated, coalesced, with success memory.
#[derive(Clone)]
pub struct SecretChecker {
    /// `None` when the OS RNG failed: then nothing is remembered or shared.
    key: Option<Arc<hmac::Key>>,
    remembered: Cache<[u8; 32], ()>,
    /// Checks running now, by tag; later identical checks await the same outcome.
    in_flight: Cache<[u8; 32], Arc<OnceCell<Result<(), SecretError>>>>,
    throttle: Throttle,
    gate: Gate,
    /// argon2's working memory, one per turn of the gate, allocated once and reused.
    memory: Memory,
    /// argon2 verifications run (for tests and metrics).
    runs: Arc<AtomicU64>,
}

impl std::fmt::Debug for SecretChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretChecker")
            .field("gate", &self.gate)
            .field("throttle", &self.throttle)
            .finish_non_exhaustive()
    }
}

impl SecretChecker {
    /// A checker with a fresh random key, empty memory, failure windows on `clock`, and one
    /// verification per core.
    pub fn new(clock: SharedClock) -> Self {
        Self::with_gate(clock, Gate::per_core())
    }

    /// As [`SecretChecker::new`], verifications bounded by `gate`.
    pub fn with_gate(clock: SharedClock, gate: Gate) -> Self {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).ok().map(Arc::new);
        Self {
            key,
            remembered: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(REMEMBER_SUCCESS)
                .build(),
            in_flight: Cache::builder().max_capacity(10_000).build(),
            throttle: Throttle::new(clock),
            memory: Memory::new(gate.turns()),
            gate,
            runs: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Forgets every remembered success (configuration reload).
    pub fn forget(&self) {
        self.remembered.invalidate_all();
    }

    /// argon2 verifications run so far.
    pub fn verifications(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    /// Checks `presented` against the stored `phc` for `client_id`, asked from `source`.
    pub async fn verify(&self, client_id: &str, presented: &str, phc: &str, source: Source) -> Result<(), SecretError> {
        // A pair that used up its failures is refused first, even with the right secret.
        self.throttle.check(client_id, source).map_err(SecretError::Throttled)?;
        let tag = self.tag(client_id, presented, phc);
        if tag.is_some_and(|t| self.remembered.contains_key(&t)) {
            self.throttle.forgive(client_id, source);
            return Ok(());
        }
        // The failure is reserved by the check that pays the hash, before it is paid, not by
        // every request: identical checks in flight share one run and are one try, so a
        // client's burst of concurrent requests with its right secret is not taken for
        // guessing, while concurrent distinct guesses past the limit never hash.
        let paid = async {
            let mut reservation = self
                .throttle
                .reserve(client_id, source)
                .map_err(SecretError::Throttled)?;
            if let Err(wait) = self.throttle.reserve_source(&mut reservation, source) {
                reservation.release();
                return Err(SecretError::Throttled(wait));
            }
            match self.hash(presented, phc).await {
                Ok(()) => {
                    reservation.succeeded();
                    Ok(())
                }
                Err(SecretError::Mismatch) => Err(SecretError::Mismatch),
                Err(e) => {
                    reservation.release();
                    Err(e)
                }
            }
        };
        self.shared(tag, true, paid).await
    }

    /// What checking `presented` for an unknown `client_id` from `source` comes to: always
    /// an error, after the same throttle and the same verification a known id gets, so the
    /// answer and its time do not tell known ids from unknown ones.
    pub async fn verify_unknown(&self, client_id: &str, presented: &str, source: Source) -> SecretError {
        let mut reservation = match self.throttle.reserve(client_id, source) {
            Ok(r) => r,
            Err(wait) => return SecretError::Throttled(wait),
        };
        if let Err(wait) = self.throttle.reserve_source(&mut reservation, source) {
            reservation.release();
            return SecretError::Throttled(wait);
        }
        let tag = self.tag(client_id, presented, DUMMY_PHC);
        match self.shared(tag, false, self.hash(presented, DUMMY_PHC)).await {
            // Whatever the dummy check says, an unknown id fails, and counts as a failure.
            Ok(()) | Err(SecretError::Mismatch) | Err(SecretError::BadHash) => {
                drop(reservation);
                SecretError::Mismatch
            }
            Err(e) => {
                reservation.release();
                e
            }
        }
    }

    /// An HMAC of the three inputs, each length-prefixed.
    fn tag(&self, client_id: &str, presented: &str, phc: &str) -> Option<[u8; 32]> {
        self.key.as_ref().map(|key| {
            let mut ctx = hmac::Context::with_key(key);
            for part in [client_id, presented, phc] {
                ctx.update(&(part.len() as u64).to_be_bytes());
                ctx.update(part.as_bytes());
            }
            let mut tag = [0u8; 32];
            tag.copy_from_slice(ctx.sign().as_ref());
            tag
        })
    }

    /// The argon2 verification of `presented` against `phc`, behind the gate.
    async fn hash(&self, presented: &str, phc: &str) -> Result<(), SecretError> {
        let (presented, phc) = (presented.to_owned(), phc.to_owned());
        let runs = self.runs.clone();
        let memory = self.memory.clone();
        // NB: argon2 is deliberately slow; never on a runtime worker.
        let outcome = self
            .gate
            .run(move || {
                runs.fetch_add(1, Ordering::Relaxed);
                memory.verify(presented.as_bytes(), &phc)
            })
            .await;
        match outcome {
            Ok(result) => result,
            Err(Refused::Busy) => Err(SecretError::Busy),
            Err(Refused::Lost) => Err(SecretError::BadHash),
        }
    }

    /// `check`'s outcome, shared by identical checks in flight (same `tag`): the first runs
    /// it, later ones await its outcome; a success is remembered when `remember`.
    async fn shared(
        &self,
        tag: Option<[u8; 32]>,
        remember: bool,
        check: impl Future<Output = Result<(), SecretError>>,
    ) -> Result<(), SecretError> {
        let Some(tag) = tag else {
            return check.await;
        };
        let cell = self.in_flight.get_with(tag, || Arc::new(OnceCell::new()));
        let outcome = *cell.get_or_init(|| check).await;
        if remember && outcome.is_ok() {
            self.remembered.insert(tag, ());
        }
        // The first to see the outcome retires the entry: later checks run afresh, and find a
        // success remembered.
        if self.in_flight.get(&tag).is_some_and(|c| Arc::ptr_eq(&c, &cell)) {
            self.in_flight.invalidate(&tag);
        }
        outcome
    }
}

/// argon2's working memory (19 MiB per verification with the default parameters), one
/// buffer per turn of the gate, so it is allocated once and reused instead of taken from and
/// given back to the allocator per check (which left up to one such block behind in each of
/// the allocator's per-thread arenas).
#[derive(Clone)]
struct Memory {
    buffers: Arc<[tokio::sync::Mutex<Vec<Block>>]>,
}

impl Memory {
    fn new(turns: usize) -> Self {
        Self {
            buffers: (0..turns.max(1)).map(|_| tokio::sync::Mutex::new(Vec::new())).collect(),
        }
    }

    /// Verifies `presented` against `phc` in a free buffer (there always is one: at most one
    /// verification per buffer runs at a time, under the gate). Blocking.
    fn verify(&self, presented: &[u8], phc: &str) -> Result<(), SecretError> {
        let parsed = PasswordHash::new(phc).map_err(|_| SecretError::BadHash)?;
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return Err(SecretError::BadHash);
        };
        let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).map_err(|_| SecretError::BadHash)?;
        let version = match parsed.version {
            Some(v) => Version::try_from(v).map_err(|_| SecretError::BadHash)?,
            None => Version::default(),
        };
        let params = Params::try_from(&parsed).map_err(|_| SecretError::BadHash)?;
        let blocks = params.block_count();
        let argon2 = Argon2::new(algorithm, version, params);
        let mut out = [0u8; 64];
        let out = out.get_mut(..expected.len()).ok_or(SecretError::BadHash)?;
        // Hashes dearer than the default use memory of their own for the one check, so the
        // kept buffers stay at the default size.
        let mut spare = Vec::new();
        let mut guard = (blocks <= DEFAULT_BLOCKS)
            .then(|| self.buffers.iter().find_map(|b| b.try_lock().ok()))
            .flatten();
        let buffer = guard.as_deref_mut().unwrap_or(&mut spare);
        if buffer.len() < blocks {
            buffer.resize(blocks, Block::default());
        }
        argon2
            .hash_password_into_with_memory(presented, salt.as_ref(), out, &mut buffer[..blocks])
            .map_err(|_| SecretError::Mismatch)?;
        // NB: compared in constant time.
        aws_lc_rs::constant_time::verify_slices_are_equal(out, expected.as_bytes()).map_err(|_| SecretError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issuer::throttle::MAX_FAILURES;
    use crate::time::ManualClock;

    fn source(last: u8) -> Source {
        Source::of(std::net::IpAddr::from([192, 0, 2, last]))
    }

    fn checker() -> SecretChecker {
        SecretChecker::new(ManualClock::new(1_000))
    }

    #[tokio::test]
    async fn verify_remember_throttle() {
        let phc = hash_secret("s3cret").unwrap_or_else(|e| panic!("{e}"));
        assert!(check_phc(&phc).is_ok());
        assert!(check_phc("plain").is_err());
        assert!(check_phc("$argon2id$v=19$m=19456,t=2,p=1").is_err(), "no salt, no hash");
        assert!(
            check_phc("$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E")
                .is_err()
        );
        let huge =
            "$argon2id$v=19$m=1048576,t=2,p=1$CcIlFm7wchhpwOPMr4Vwxw$nQzqldKq/2YNrtp6iXJ4nZNGNX6ixqXwruNoogVb1nw";
        assert!(
            check_phc(huge).err().unwrap_or_default().contains("memory cost"),
            "{huge}"
        );
        let c = checker();
        let s = source(1);
        assert_eq!(c.verify("a", "s3cret", &phc, s).await, Ok(()));
        assert_eq!(c.verify("a", "s3cret", &phc, s).await, Ok(()));
        assert_eq!(c.verifications(), 1, "the second check was remembered");
        assert_eq!(c.verify("a", "wrong", &phc, s).await, Err(SecretError::Mismatch));
        for _ in 1..MAX_FAILURES {
            let _ = c.verify("b", "wrong", &phc, s).await;
        }
        assert_eq!(c.verify("b", "wrong", &phc, s).await, Err(SecretError::Mismatch));
        // Throttled from that source even with the right secret now...
        assert!(matches!(
            c.verify("b", "s3cret", &phc, s).await,
            Err(SecretError::Throttled(_))
        ));
        // ...but not from another.
        assert_eq!(c.verify("b", "s3cret", &phc, source(2)).await, Ok(()));
        // A remembered success never answers for another secret.
        assert_eq!(c.verify("a", "s3cret ", &phc, s).await, Err(SecretError::Mismatch));
    }

    #[tokio::test]
    async fn identical_checks_in_flight_share_one_verification() {
        let phc = hash_secret("s3cret").unwrap_or_else(|e| panic!("{e}"));
        let c = checker();
        let mut tasks = Vec::new();
        for i in 0..8u8 {
            let (c, phc) = (c.clone(), phc.clone());
            tasks.push(tokio::spawn(
                async move { c.verify("a", "s3cret", &phc, source(i)).await },
            ));
        }
        for t in tasks {
            assert_eq!(t.await.ok(), Some(Ok(())));
        }
        assert_eq!(c.verifications(), 1);
    }

    #[tokio::test]
    async fn unknown_ids_pay_a_verification_and_the_throttle() {
        let c = checker();
        let s = source(1);
        assert_eq!(c.verify_unknown("nobody", "x", s).await, SecretError::Mismatch);
        assert_eq!(c.verifications(), 1);
        for _ in 1..MAX_FAILURES {
            assert_eq!(c.verify_unknown("nobody", "y", s).await, SecretError::Mismatch);
        }
        assert!(matches!(
            c.verify_unknown("nobody", "z", s).await,
            SecretError::Throttled(_)
        ));
        assert_eq!(c.verifications(), u64::from(MAX_FAILURES));
    }

    #[tokio::test]
    async fn a_full_gate_answers_busy_and_counts_no_failure() {
        let phc = hash_secret("s3cret").unwrap_or_else(|e| panic!("{e}"));
        // No turn at all can be had: every check is refused as busy.
        let gate = Gate::new(1, 0);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let hold = tokio::spawn({
            let gate = gate.clone();
            async move { gate.run(move || rx.recv().is_ok()).await }
        });
        for _ in 0..10_000 {
            if gate.admitted() == 1 {
                break;
            }
            tokio::task::yield_now().await;
        }
        let c = SecretChecker::with_gate(ManualClock::new(1_000), gate);
        for _ in 0..MAX_FAILURES * 2 {
            assert_eq!(c.verify("a", "s3cret", &phc, source(1)).await, Err(SecretError::Busy));
            assert_eq!(c.verify_unknown("b", "x", source(1)).await, SecretError::Busy);
        }
        let _ = tx.send(());
        let _ = hold.await;
        // Busy answers were not failures: the right secret passes.
        assert_eq!(c.verify("a", "s3cret", &phc, source(1)).await, Ok(()));
    }

    #[test]
    fn hashes_of_other_parameters_and_variants_verify_in_reused_memory() {
        let memory = Memory::new(1);
        for (alg, m, t, p) in [
            (Algorithm::Argon2id, 8, 1, 1),
            (Algorithm::Argon2id, 4096, 3, 2),
            (Algorithm::Argon2i, 1024, 2, 1),
            (Algorithm::Argon2d, 2048, 1, 1),
        ] {
            let params = Params::new(m, t, p, None).unwrap_or_else(|e| panic!("{e}"));
            let phc = Argon2::new(alg, Version::V0x13, params)
                .hash_password(b"s3cret")
                .unwrap_or_else(|e| panic!("{e}"))
                .to_string();
            assert_eq!(memory.verify(b"s3cret", &phc), Ok(()), "{phc}");
            assert_eq!(memory.verify(b"s3cret!", &phc), Err(SecretError::Mismatch), "{phc}");
        }
        assert_eq!(
            memory.verify(b"x", "$argon2id$v=19$m=8,t=1,p=1"),
            Err(SecretError::BadHash)
        );
        assert_eq!(memory.verify(b"x", "plain"), Err(SecretError::BadHash));
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_does() {
        let dummy = PasswordHash::new(DUMMY_PHC).unwrap_or_else(|e| panic!("{e}"));
        let real_phc = hash_secret("x").unwrap_or_else(|e| panic!("{e}"));
        let real = PasswordHash::new(&real_phc).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(dummy.params, real.params);
    }
}
