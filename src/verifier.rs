//! The embeddable verifier: snapshot + key store + checks → a typed verdict.
//!
//! The gateway's request pipeline uses exactly this for its `route → extract → verify →
//! authorize` phases, then forwards; a Rust resource server can use it directly to offload
//! its token checks without the proxy (see `examples/embed.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::model::{Auth, EntityRef, ProtectedResource, RealmRef, ResourceRef, ResourceServer, ResourceServerRef};
use crate::routing::{NormalizedPath, PathError, host_name, normalize};
use crate::snapshot::Snapshot;
use crate::time::SharedClock;
use crate::token::{self, Claims, Introspector, RequestContext, RevocationKey, Revocations, TokenCache, TokenError};

/// A request that may go through.
#[derive(Debug, Clone)]
pub struct Allowed {
    /// The matched protected resource.
    pub resource: ResourceRef,
    /// Its resource server.
    pub resource_server: ResourceServerRef,
    /// The verified claims; `None` when the resource is open (`auth = "none"`): no token
    /// was asked for or checked.
    pub claims: Option<Arc<Claims>>,
    /// The normalized path: what was matched, and what the upstream must receive.
    pub path: NormalizedPath,
    /// Claims to pass upstream, as the resource server's `claim_headers` name them.
    pub claim_headers: Vec<(HeaderName, HeaderValue)>,
    /// On a report-only resource (`enforce = false`): the refusal an enforcing one would
    /// have answered. The request goes through anyway, with claims (and claim headers) only
    /// when the token itself was good and only the route's demands failed. Boxed: the
    /// common allowed request carries one pointer's worth of it.
    pub would_refuse: Option<Box<TokenError>>,
}

impl Allowed {
    /// The matched protected resource.
    pub fn resource<'s>(&self, snapshot: &'s Snapshot) -> &'s ProtectedResource {
        &snapshot.resources[self.resource]
    }

    /// The resource server the request goes to.
    pub fn resource_server<'s>(&self, snapshot: &'s Snapshot) -> &'s ResourceServer {
        &snapshot.resource_servers[self.resource_server].resource_server
    }

    /// The verified claims, when a token was checked.
    pub fn claims(&self) -> Option<&Claims> {
        self.claims.as_deref()
    }

    /// How it went through, for logs and metrics: `allowed` (a token passed), `public` (an
    /// open resource) or `would_refuse_<reason>` (report-only).
    pub fn outcome(&self) -> &'static str {
        match (&self.would_refuse, &self.claims) {
            (Some(error), _) => error.would_refuse(),
            (None, Some(_)) => "allowed",
            (None, None) => "public",
        }
    }
}

/// A request that may not go through, and why. [`crate::rescue`] turns it into the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Denied {
    /// The path cannot be normalized safely: `400`.
    BadPath(PathError),
    /// No protected resource matches: the configured unmatched status (404 by default).
    NoRoute,
    /// The matched resource (or its resource server) is outside its validity window: `404`.
    NotInForce {
        /// The protected resource.
        resource: ResourceRef,
    },
    /// The token is missing or does not grant access.
    Token {
        /// The protected resource.
        resource: ResourceRef,
        /// Why.
        error: TokenError,
    },
}

impl Denied {
    /// A short label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::BadPath(_) => "bad_path",
            Self::NoRoute => "no_route",
            Self::NotInForce { .. } => "not_in_force",
            Self::Token { error, .. } => error.reason(),
        }
    }
}

/// Decides requests against the current snapshot.
pub struct Verifier {
    /// Shared with whatever must follow the configuration between requests (upstream
    /// trust), so a reload swaps this one thing.
    snapshot: Arc<ArcSwap<Snapshot>>,
    /// The last snapshot number handed out ([`Snapshot::epoch`]).
    epochs: AtomicU64,
    cache: TokenCache,
    /// Opaque tokens' introspection answers, kept across reloads.
    introspector: Introspector,
    revocations: Revocations,
    clock: SharedClock,
}

/// Most revocations remembered at once (each only until its token's `exp`).
pub const MAX_REVOCATIONS: u64 = 1_000_000;

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier over `snapshot`, with a token cache sized by its settings.
    pub fn new(mut snapshot: Snapshot, clock: SharedClock) -> Self {
        let cache = TokenCache::new(snapshot.settings.token_cache_capacity, clock.clone());
        let introspector = Introspector::new(snapshot.settings.token_cache_capacity, clock.clone());
        snapshot.epoch = 1;
        Self {
            snapshot: Arc::new(ArcSwap::from_pointee(snapshot)),
            epochs: AtomicU64::new(1),
            cache,
            introspector,
            revocations: Revocations::new(MAX_REVOCATIONS, clock.clone()),
            clock,
        }
    }

    /// The handle the current snapshot is swapped in, for parts that read it outside a
    /// request (upstream TLS trust).
    pub fn snapshots(&self) -> Arc<ArcSwap<Snapshot>> {
        self.snapshot.clone()
    }

    /// The current snapshot. Load it once per request and use it to the end.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Replaces the snapshot; requests in flight finish on the one they loaded.
    ///
    /// The verified-token cache is emptied: entries are tagged with key generations and
    /// resource-server positions that a new configuration may reuse for other keys.
    /// Verdicts are also tagged with the snapshot's number, so one that a request still on
    /// the old snapshot stores after the swap never answers under the new one.
    pub fn replace(&self, mut snapshot: Snapshot) {
        snapshot.epoch = self.epochs.fetch_add(1, Ordering::Relaxed) + 1;
        self.snapshot.store(Arc::new(snapshot));
        self.cache.clear();
    }

    /// Revoked tokens.
    pub fn revocations(&self) -> &Revocations {
        &self.revocations
    }

    /// Revokes a verified token of `realm` (RFC 7009): refused from now on, cache entry
    /// dropped, remembered until it would have expired anyway. (The issuer records it in the
    /// store first, with [`Self::revocation_of`], then applies it here.)
    pub fn revoke(&self, snap: &Snapshot, realm: RealmRef, token: &str, claims: &Claims) {
        let (key, until) = self.revocation_of(snap, realm, token, claims);
        self.apply_revocation(key, until, token);
    }

    /// What revoking a verified token of `realm` records: its identity, and the Unix second
    /// until which it must stay refused (its `exp` plus the realm's leeway, so a token still
    /// accepted under leeway stays revoked).
    pub fn revocation_of(
        &self,
        snap: &Snapshot,
        realm: RealmRef,
        token: &str,
        claims: &Claims,
    ) -> (RevocationKey, i64) {
        let r = &snap.realms[realm];
        let exp = claims.exp.unwrap_or_else(|| self.clock.now());
        (
            RevocationKey::of(r.name.as_str(), claims, token),
            exp.saturating_add(r.leeway),
        )
    }

    /// Applies a revocation here: refused from now on, the token's cache entry dropped.
    pub fn apply_revocation(&self, key: RevocationKey, until: i64, token: &str) {
        self.revocations.revoke_until(key, until);
        self.cache.invalidate(token);
    }

    /// The verified-token cache.
    pub fn cache(&self) -> &TokenCache {
        &self.cache
    }

    /// The introspection client and its answer cache (for its metrics).
    pub fn introspector(&self) -> &Introspector {
        &self.introspector
    }

    /// The clock decisions are made with.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The whole decision for one request: route, extract, verify, authorize. A request for
    /// an open resource (`auth = "none"`) is allowed at route, with no claims. On a
    /// report-only resource (`enforce = false`) a token refusal is the same judgement turned
    /// into an allowed outcome ([`Allowed::would_refuse`]).
    pub async fn check(
        &self,
        snap: &Snapshot,
        method: &Method,
        host: Option<&str>,
        raw_path: &str,
        headers: &HeaderMap,
    ) -> Result<Allowed, Denied> {
        let (path, found) = route(snap, method, host, raw_path).map_err(Denied::BadPath)?;
        let resource = found.ok_or(Denied::NoRoute)?.resource;
        let pr = &snap.resources[resource];
        let rs = &snap.resource_servers[pr.resource_server];
        let now = self.clock.now();
        if !pr.validity.in_force(now) {
            return Err(Denied::NotInForce { resource });
        }
        if pr.auth == Auth::None {
            return open(resource, pr.resource_server, rs.validity.in_force(now), path);
        }
        let allowed = |claims, claim_headers, would_refuse| Allowed {
            resource,
            resource_server: pr.resource_server,
            claims,
            path,
            claim_headers,
            would_refuse,
        };
        match self.authorize(snap, pr, rs, headers, now).await {
            Ok((claims, claim_headers)) => Ok(allowed(Some(claims), claim_headers, None)),
            Err(Refusal { error, .. }) if pr.enforced(rs) => Err(Denied::Token { resource, error }),
            Err(Refusal { error, claims }) => {
                // Report-only: claims only from a token that was good in itself.
                let claims = claims.filter(|_| {
                    matches!(
                        error.answer(),
                        token::Answer::InsufficientScope | token::Answer::InsufficientUserAuthentication { .. }
                    )
                });
                let headers = claims
                    .as_ref()
                    .and_then(|c| claim_headers(rs, c).ok())
                    .unwrap_or_default();
                Ok(allowed(claims, headers, Some(Box::new(error))))
            }
        }
    }

    /// `extract` → `verify` → `authorize` for a resource that requires a token: its claims
    /// and claim headers, or why not (with the claims when the token verified).
    async fn authorize(
        &self,
        snap: &Snapshot,
        pr: &ProtectedResource,
        rs: &ResourceServer,
        headers: &HeaderMap,
        now: i64,
    ) -> Result<(Arc<Claims>, Vec<(HeaderName, HeaderValue)>), Refusal> {
        if !rs.validity.in_force(now) {
            return Err(TokenError::ResourceServerNotInForce.into());
        }
        // extract
        let raw = token::bearer(headers)?.ok_or(TokenError::Missing)?;
        // verify: here (JWS/JWE), or, for a token its realm introspects, as its authorization
        // server vouches for it (cached).
        let realm = &snap.realms[rs.realm];
        let claims = match realm.introspects(raw) {
            None => self.verify_for(snap, pr.resource_server, raw).await?,
            Some(i) => self.introspector.claims(realm, i, raw).await?,
        };
        // authorize: the same checks whether the claims were verified here or introspected.
        let checked = self
            .refuse_revoked(snap, rs.realm, raw, &claims)
            .and_then(|()| {
                claims.check_request(&RequestContext {
                    now,
                    leeway: realm.leeway,
                    resource_server: rs,
                    resource: pr,
                })
            })
            .and_then(|()| claim_headers(rs, &claims));
        match checked {
            Ok(headers) => Ok((claims, headers)),
            Err(error) => Err(Refusal {
                error,
                claims: Some(claims),
            }),
        }
    }

    /// Verifies a token for a resource server (signature, issuer, cache), without the
    /// per-route checks. Embedders call [`Claims::check_request`] or [`Self::check`] next.
    pub async fn verify_for(
        &self,
        snap: &Snapshot,
        resource_server: ResourceServerRef,
        token: &str,
    ) -> Result<Arc<Claims>, TokenError> {
        let judge = snap
            .judge(resource_server)
            .ok_or(TokenError::ResourceServerNotInForce)?;
        token::verify(token, &judge, &self.cache).await
    }
}

impl Verifier {
    /// A token of `asking`'s realm, meant for it, live now and not revoked (RFC 7662 § 2.2's
    /// "active"): signature, issuer, `exp`/`nbf`/`iat` and revocation, the same checks as
    /// [`Self::check`] without a route's.
    pub async fn active(
        &self,
        snap: &Snapshot,
        asking: ResourceServerRef,
        token: &str,
    ) -> Result<Arc<Claims>, TokenError> {
        let claims = self.verify_for(snap, asking, token).await?;
        let rs = &snap.resource_servers[asking];
        claims.check_lifetime(self.clock.now(), snap.realms[rs.realm].leeway)?;
        self.refuse_revoked(snap, rs.realm, token, &claims)?;
        if !claims.has_aud(rs.audience.as_str()) {
            return Err(TokenError::WrongAudience);
        }
        Ok(claims)
    }

    /// Verifies a token of `realm` whoever it was issued for (for revocation): signed tokens
    /// as they are; encrypted ones with `first`'s decryption keys, then those of every other
    /// resource server of the realm that encrypts, so a token meant for someone else is
    /// recognised (and can be refused), not silently ignored.
    pub async fn verify_in_realm(
        &self,
        snap: &Snapshot,
        realm: RealmRef,
        first: Option<ResourceServerRef>,
        token: &str,
    ) -> Result<Arc<Claims>, TokenError> {
        let entry = &snap.realms[realm];
        let plain = token::Judge {
            realm: &entry.realm,
            keys: &entry.keys,
            epoch: snap.epoch,
            outer: None,
        };
        if !token::is_jwe(token) {
            return token::verify(token, &plain, &self.cache).await;
        }
        let others = snap
            .resource_servers
            .entries()
            .map(|(i, _)| i)
            .filter(|i| Some(*i) != first);
        let mut last = TokenError::EncryptedNotAccepted;
        for i in first.into_iter().chain(others) {
            if snap.resource_servers[i].realm != realm {
                continue;
            }
            let Some(outer) = snap.outer(i) else {
                continue;
            };
            let judge = token::Judge {
                outer: Some(outer),
                ..plain
            };
            match token::verify(token, &judge, &self.cache).await {
                Ok(claims) => return Ok(claims),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// The verified claims of `token` cached for `resource_server` under the current keys,
    /// if any: what a request would be answered from without signature work.
    pub fn cached(&self, snap: &Snapshot, resource_server: ResourceServerRef, token: &str) -> Option<Arc<Claims>> {
        let judge = snap.judge(resource_server)?;
        self.cache.get(&token::TokenKey::of(token), &judge.judged())
    }

    /// A revoked token is an invalid token, whatever the route needs (RFC 7009 § 2).
    fn refuse_revoked(&self, snap: &Snapshot, realm: RealmRef, token: &str, claims: &Claims) -> Result<(), TokenError> {
        if self.revocations.never_used() {
            return Ok(());
        }
        let key = RevocationKey::of(snap.realms[realm].name.as_str(), claims, token);
        if self.revocations.is_revoked(&key) {
            return Err(TokenError::Revoked);
        }
        Ok(())
    }
}

/// Why a token did not grant access, with its claims when it verified (report-only passes
/// them on when only the route's demands failed).
struct Refusal {
    error: TokenError,
    claims: Option<Arc<Claims>>,
}

impl From<TokenError> for Refusal {
    fn from(error: TokenError) -> Self {
        Self { error, claims: None }
    }
}

/// The outcome of an open resource (`auth = "none"`): allowed with no claims while its
/// resource server is in force, else as absent as a resource out of force (a challenge
/// would ask for a token that could not help).
///
/// NB: the `Authorization` header is neither checked nor refused here. An open resource
/// answers everyone, and clients that attach their token to every request (API clients,
/// MCP SDKs) must not be refused a health check because that token is expired or meant for
/// another API. It is forwarded as for any resource of the server (`keep_authorization`),
/// untouched: the upstream may read it for optional personalisation, but the gateway
/// vouches for nothing in it, and sends no claim headers (client-sent copies are still
/// removed by the forwarder's header rules).
fn open(
    resource: ResourceRef,
    resource_server: ResourceServerRef,
    server_in_force: bool,
    path: NormalizedPath,
) -> Result<Allowed, Denied> {
    if !server_in_force {
        return Err(Denied::NotInForce { resource });
    }
    Ok(Allowed {
        resource,
        resource_server,
        claims: None,
        path,
        claim_headers: Vec::new(),
        would_refuse: None,
    })
}

/// `route`: the request's path normalized, and the protected resource it matches with the
/// pattern that matched (`None` when nothing does), as every request is routed. The Management
/// API's "which resource matches?" answers with this too.
pub fn route<'s>(
    snap: &'s Snapshot,
    method: &Method,
    host: Option<&str>,
    raw_path: &str,
) -> Result<(NormalizedPath, Option<Routed<'s>>), PathError> {
    let path = normalize(raw_path)?;
    let host = host.map(host_name);
    let found = snap.router.find(host.as_deref(), method, &path).map(|m| Routed {
        resource: ResourceRef::at(m.resource),
        pattern: m.pattern,
    });
    Ok((path, found))
}

/// What [`route`] found.
#[derive(Debug, Clone, Copy)]
pub struct Routed<'s> {
    /// The protected resource.
    pub resource: ResourceRef,
    /// The pattern of its that matched, as configured.
    pub pattern: &'s str,
}

/// The claim headers `rs` sends for `claims`, or the claim that no header can carry.
pub(crate) fn claim_headers(
    rs: &ResourceServer,
    claims: &Claims,
) -> Result<Vec<(HeaderName, HeaderValue)>, TokenError> {
    let mut out = Vec::with_capacity(rs.claim_headers.len());
    for ch in &rs.claim_headers {
        if let Some(value) = claims.header_value(&ch.claim)? {
            // A reference-counted copy: the rendering was done when the token was verified.
            out.push((ch.header.clone(), value.clone()));
        }
    }
    Ok(out)
}
