//! Opaque tokens: RFC 7662 introspection of an external authorization server, its answers
//! cached by the token's digest.
//!
//! What is cached is the *claims* the endpoint vouched for (or that it said "inactive"),
//! never a verdict: the route's checks ([`Claims::check_request`], revocation, claim headers)
//! run on every request, cache hit or not, exactly as for a JWT. An active answer is reused
//! for min(`introspection_cache_ttl`, the token's remaining `exp`), an inactive one for
//! `introspection_negative_ttl`, by the injected clock. Concurrent lookups of one token share
//! one call. A failing endpoint is `IntrospectionUnavailable` (503), unless a cached active
//! answer is within `introspection_max_stale` past its TTL.
//!
//! NB: the token is sent only in the call's form body; it is never logged, and the cache
//! keys on a SHA-256 of it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::digest::{Context, SHA256};
use moka::sync::Cache;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde_json::{Map, Value};
use tokio::sync::{OnceCell, Semaphore};

use super::{Claims, TokenError};
use crate::jwks::{FetchError, Fetcher};
use crate::model::{Introspection, Name, Realm};
use crate::time::SharedClock;

/// The cache key of a token: SHA-256 over the realm, its endpoint and client, the claims it
/// forwards, and the token. A reload that changes any of them misses; one that does not
/// (a Management API write) keeps every answer.
type Key = [u8; 32];

/// Where one lookup of a token is being answered; waiters share its result.
type Flight = Arc<OnceCell<Result<Answer, CallError>>>;

/// What the endpoint said of a token.
#[derive(Debug, Clone)]
enum Answer {
    /// Active, with these claims, reusable until `fresh_until` (Unix seconds).
    Active { claims: Arc<Claims>, fresh_until: i64 },
    /// Not active, or refused on what it said (another issuer); reusable until `until`.
    Refused { error: TokenError, until: i64 },
}

impl Answer {
    fn fresh(&self, now: i64) -> bool {
        match self {
            Self::Active { fresh_until, .. } => now < *fresh_until,
            Self::Refused { until, .. } => now < *until,
        }
    }

    fn verdict(&self) -> Result<Arc<Claims>, TokenError> {
        match self {
            Self::Active { claims, .. } => Ok(claims.clone()),
            Self::Refused { error, .. } => Err(error.clone()),
        }
    }
}

/// Why a call gave no answer: each is one `outcome` label, and a 503 for the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallError {
    /// Connection or protocol failure.
    Transport,
    /// Slot, connect, request and body took longer than `introspection_timeout`.
    Timeout,
    /// A status other than 200.
    Status,
    /// Larger than `introspection_max_bytes`.
    TooLarge,
    /// Not a JSON object with a boolean `active`, or active with claims of the wrong types.
    BadAnswer,
}

impl CallError {
    fn label(self) -> &'static str {
        match self {
            Self::Transport => "transport_error",
            Self::Timeout => "timeout",
            Self::Status => "bad_status",
            Self::TooLarge => "too_large",
            Self::BadAnswer => "bad_answer",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    realm: Name,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RealmLabels {
    realm: Name,
}

/// Seconds, from 1 ms to ~16 s doubling: calls take milliseconds, the timeout defaults to 2 s.
fn call_latency() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// The introspection client and its answer cache: a live thing beside the snapshot (in the
/// [`Verifier`](crate::verifier::Verifier)), kept across reloads.
pub struct Introspector {
    answers: Cache<Key, Answer>,
    flights: Cache<Key, Flight>,
    /// Each realm's bound on calls in flight, by realm and bound.
    slots: Cache<(Name, usize), Arc<Semaphore>>,
    fetcher: Fetcher,
    clock: SharedClock,
    calls: Family<CallLabels, Counter>,
    durations: Family<RealmLabels, Histogram, fn() -> Histogram>,
    hits: Counter,
    misses: Counter,
    stale: Counter,
}

impl std::fmt::Debug for Introspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Introspector")
            .field("answers", &self.answers.entry_count())
            .finish_non_exhaustive()
    }
}

impl Introspector {
    /// An introspector keeping at most `capacity` answers, judging their age by `clock`.
    pub fn new(capacity: u64, clock: SharedClock) -> Self {
        Self {
            answers: Cache::new(capacity),
            // Lookups in flight; far more than any endpoint's concurrency, so none is evicted
            // while it runs (an evicted one only costs a second call).
            flights: Cache::new(100_000),
            slots: Cache::new(1_000),
            fetcher: Fetcher::new(),
            clock,
            calls: Family::default(),
            durations: Family::new_with_constructor(call_latency),
            hits: Counter::default(),
            misses: Counter::default(),
            stale: Counter::default(),
        }
    }

    /// The claims `realm`'s endpoint `i` vouches for `token`: from the cache while fresh,
    /// else from one call shared by every concurrent lookup of it. `Inactive` when the
    /// endpoint says so; `IntrospectionUnavailable` when it fails and no cached answer may
    /// serve.
    pub async fn claims(&self, realm: &Realm, i: &Introspection, token: &str) -> Result<Arc<Claims>, TokenError> {
        if token.len() > realm.max_token_bytes {
            return Err(TokenError::TooLarge(realm.max_token_bytes));
        }
        let key = key_of(realm, i, token);
        if let Some(answer) = self.answers.get(&key)
            && answer.fresh(self.clock.now())
        {
            self.hits.inc();
            return answer.verdict();
        }
        self.misses.inc();
        let flight = self.flights.get_with(key, || Arc::new(OnceCell::new()));
        let outcome = flight
            .get_or_init(|| async {
                // A flight that ended since our lookup may have answered already.
                let answered = self.answers.get(&key).filter(|a| a.fresh(self.clock.now()));
                let outcome = match answered {
                    Some(answer) => Ok(answer),
                    None => self.call(realm, i, token).await,
                };
                if let Ok(answer) = &outcome {
                    self.answers.insert(key, answer.clone());
                }
                // Later lookups start a flight of their own (and find the answer above).
                self.flights.invalidate(&key);
                outcome
            })
            .await;
        match outcome {
            Ok(answer) => answer.verdict(),
            Err(_) => self.stale_or_unavailable(&key, i),
        }
    }

    /// The endpoint failed: a cached active answer within `max_stale` past its TTL still
    /// serves (the operator chose availability over prompt revocation), else 503.
    fn stale_or_unavailable(&self, key: &Key, i: &Introspection) -> Result<Arc<Claims>, TokenError> {
        let max_stale = i64::try_from(i.max_stale.as_secs()).unwrap_or(i64::MAX);
        if max_stale > 0
            && let Some(Answer::Active { claims, fresh_until }) = self.answers.get(key)
            && self.clock.now() < fresh_until.saturating_add(max_stale)
        {
            self.stale.inc();
            return Ok(claims);
        }
        Err(TokenError::IntrospectionUnavailable)
    }

    /// One call to the endpoint, within the realm's concurrency bound and timeout, counted
    /// by outcome and timed.
    async fn call(&self, realm: &Realm, i: &Introspection, token: &str) -> Result<Answer, CallError> {
        let started = Instant::now();
        let slots = self.slots.get_with((realm.name.clone(), i.max_concurrency), || {
            Arc::new(Semaphore::new(i.max_concurrency))
        });
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("token", token)
            .append_pair("token_type_hint", "access_token")
            .finish();
        let called = tokio::time::timeout(i.timeout, async {
            let _slot = slots.acquire().await.map_err(|_| CallError::Timeout)?;
            self.fetcher
                .post_form(&i.endpoint, &i.authorization, form, i.timeout, i.max_bytes)
                .await
                .map_err(|e| {
                    tracing::warn!(realm = realm.name.as_str(), endpoint = %i.endpoint, error = %e, "introspection failed");
                    match e {
                        FetchError::Timeout(_) => CallError::Timeout,
                        FetchError::Status(_) => CallError::Status,
                        FetchError::TooLarge(_) => CallError::TooLarge,
                        _ => CallError::Transport,
                    }
                })
        })
        .await
        .unwrap_or(Err(CallError::Timeout));
        let outcome = called.and_then(|body| self.read(realm, i, &body));
        let label = match &outcome {
            Ok(Answer::Active { .. }) => "active",
            Ok(Answer::Refused { .. }) => "inactive",
            Err(e) => e.label(),
        };
        let realm_label = realm.name.clone();
        self.calls
            .get_or_create(&CallLabels {
                realm: realm_label.clone(),
                outcome: label,
            })
            .inc();
        self.durations
            .get_or_create(&RealmLabels { realm: realm_label })
            .observe(started.elapsed().as_secs_f64());
        outcome
    }

    /// RFC 7662 § 2.2: `active` is required; when true, the claims are the token's (types as
    /// RFC 7519 registers them). An `iss` present must be the realm's issuer; `exp`, when
    /// present, bounds the answer's reuse (and [`Claims::check_request`] requires it).
    fn read(&self, realm: &Realm, i: &Introspection, body: &[u8]) -> Result<Answer, CallError> {
        let now = self.clock.now();
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        let refused = |error| Answer::Refused {
            error,
            until: now.saturating_add(secs(i.negative_ttl)),
        };
        let doc: Map<String, Value> = serde_json::from_slice(body).map_err(|_| CallError::BadAnswer)?;
        match doc.get("active") {
            Some(Value::Bool(true)) => {}
            Some(Value::Bool(false)) => return Ok(refused(TokenError::Inactive)),
            _ => return Err(CallError::BadAnswer),
        }
        let claims = Claims::parse_forwarding(body, &realm.forwarded_claims).map_err(|_| CallError::BadAnswer)?;
        if claims.iss().is_some()
            && let Err(error) = claims.check_issuer(&realm.issuer)
        {
            return Ok(refused(error));
        }
        let ttl_end = now.saturating_add(secs(i.cache_ttl));
        let fresh_until = claims.exp.map_or(ttl_end, |exp| exp.min(ttl_end));
        Ok(Answer::Active {
            claims: Arc::new(claims),
            fresh_until,
        })
    }

    /// Lookups answered from the cache so far.
    pub fn hits(&self) -> u64 {
        self.hits.get()
    }

    /// Lookups that waited for a call so far (every concurrent one of a token counted, though
    /// they share the call).
    pub fn misses(&self) -> u64 {
        self.misses.get()
    }

    /// Registers the introspection metrics (calls by realm and outcome, their durations, and
    /// the answer cache's hits, misses and stale answers served).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "introspection_calls",
            "RFC 7662 introspection calls, by realm and outcome (active, inactive, timeout, transport_error, bad_status, too_large, bad_answer)",
            self.calls.clone(),
        );
        registry.register(
            "introspection_call_duration_seconds",
            "Time an introspection call took, waiting for a slot included, by realm",
            self.durations.clone(),
        );
        registry.register(
            "introspection_cache_hits",
            "Opaque-token lookups answered from the introspection cache",
            self.hits.clone(),
        );
        registry.register(
            "introspection_cache_misses",
            "Opaque-token lookups that waited for an introspection call (one call serves every concurrent lookup of a token)",
            self.misses.clone(),
        );
        registry.register(
            "introspection_stale_answers",
            "Requests judged on a cached answer past its TTL because the endpoint failed (introspection_max_stale)",
            self.stale.clone(),
        );
    }
}

/// See [`Key`]. Lengths are hashed before each part, so no two inputs collide by shifting
/// bytes between parts.
fn key_of(realm: &Realm, i: &Introspection, token: &str) -> Key {
    let mut ctx = Context::new(&SHA256);
    let mut part = |bytes: &[u8]| {
        ctx.update(&(bytes.len() as u64).to_be_bytes());
        ctx.update(bytes);
    };
    part(realm.name.as_str().as_bytes());
    part(realm.issuer.as_bytes());
    part(i.endpoint.scheme_str().unwrap_or_default().as_bytes());
    part(i.endpoint.authority().map_or("", |a| a.as_str()).as_bytes());
    part(i.endpoint.path_and_query().map_or("", |p| p.as_str()).as_bytes());
    part(i.client_id.as_bytes());
    for claim in &realm.forwarded_claims {
        part(claim.as_bytes());
    }
    part(token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use http::HeaderValue;

    use super::*;
    use crate::model::Name;

    fn realm(forwarded: &[&str]) -> Realm {
        Realm {
            name: Name::new("ext"),
            issuer: "https://as.test".into(),
            algorithms: Vec::new(),
            leeway: 60,
            max_token_bytes: 8192,
            jwks_file: None,
            signing_keys_file: None,
            jwks_remote: None,
            require_at_jwt_typ: false,
            forwarded_claims: forwarded.iter().map(|c| Box::from(*c)).collect(),
            access_token_ttl: Duration::from_secs(3600),
            scope_source: Default::default(),
            issuer_path: String::new(),
            management_token_hash: None,
            introspection: None,
            source: PathBuf::from("t.toml"),
        }
    }

    fn endpoint(uri: &'static str) -> Introspection {
        Introspection {
            endpoint: http::Uri::from_static(uri),
            client_id: "gw".into(),
            authorization: HeaderValue::from_static("Basic x"),
            cache_ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(10),
            max_stale: Duration::ZERO,
            timeout: Duration::from_secs(2),
            max_bytes: 65536,
            max_concurrency: 4,
        }
    }

    #[test]
    fn the_key_changes_with_the_token_and_everything_an_answer_depends_on() {
        let (r, i) = (realm(&["sub"]), endpoint("https://as.test/introspect"));
        let k = key_of(&r, &i, "t1");
        assert_eq!(k, key_of(&r, &i, "t1"));
        assert_ne!(k, key_of(&r, &i, "t2"));
        assert_ne!(k, key_of(&realm(&[]), &i, "t1"), "forwarded claims");
        assert_ne!(k, key_of(&r, &endpoint("https://as.test/other"), "t1"), "endpoint");
        let other_client = Introspection {
            client_id: "gw2".into(),
            ..endpoint("https://as.test/introspect")
        };
        assert_ne!(k, key_of(&r, &other_client, "t1"), "client");
    }

    #[test]
    fn an_answer_is_reused_until_min_of_ttl_and_exp_and_read_strictly() {
        let clock = crate::time::ManualClock::new(1_000);
        let x = Introspector::new(10, clock.clone());
        let (r, i) = (realm(&[]), endpoint("https://as.test/introspect"));
        let read = |body: &str| x.read(&r, &i, body.as_bytes());
        let fresh_until = |a: Result<Answer, CallError>| match a {
            Ok(Answer::Active { fresh_until, .. }) => fresh_until,
            other => panic!("{other:?}"),
        };
        assert_eq!(fresh_until(read(r#"{"active":true,"exp":5000}"#)), 1_060, "the TTL");
        assert_eq!(fresh_until(read(r#"{"active":true,"exp":1030}"#)), 1_030, "exp first");
        assert!(matches!(
            read(r#"{"active":false}"#),
            Ok(Answer::Refused {
                error: TokenError::Inactive,
                until: 1_010
            })
        ));
        assert!(matches!(
            read(r#"{"active":true,"iss":"https://evil.test","exp":5000}"#),
            Ok(Answer::Refused {
                error: TokenError::WrongIssuer,
                ..
            })
        ));
        for bad in [r#"{"active":"yes"}"#, "[]", "not json", r#"{"active":true,"aud":5}"#] {
            assert_eq!(read(bad).err(), Some(CallError::BadAnswer), "{bad}");
        }
        let answer = Answer::Refused {
            error: TokenError::Inactive,
            until: 1_010,
        };
        assert!(answer.fresh(1_009));
        assert!(!answer.fresh(1_010));
    }
}
