//! "Why this answer": a request (and optionally a token) judged offline against a
//! configuration, with the route the router picks and why it beats the other resources that
//! match, what the resource requires, and each check's result. No network and no upstream:
//! remote key sets are not fetched, introspection is not called, revocations (held by a
//! running gateway and its store) are not known; each says so instead of guessing.
//!
//! Every rule is the gateway's own: [`crate::verifier::route`] and the router for matching,
//! [`token::verify`] for signature and issuer, [`token::REQUEST_CHECKS`] for the per-request
//! checks, the resource's `enforce` for report-only.

use std::sync::Arc;

use http::Method;
use serde::Serialize;

use crate::model::{Auth, ProtectedResource, ResourceRef};
use crate::routing::{Route, Router};
use crate::snapshot::Snapshot;
use crate::time::SharedClock;
use crate::token::{self, Claims, RequestContext, TokenCache, TokenError};

/// The whole explanation.
#[derive(Debug, Serialize)]
pub struct Explanation {
    /// The method.
    pub method: String,
    /// The host, as given.
    pub host: Option<String>,
    /// The normalized path; `None` when it is refused (400).
    pub path: Option<String>,
    /// Why the path is refused.
    pub path_error: Option<String>,
    /// The resource the router picks, if any.
    pub matched: Option<Matched>,
    /// Other resources that match the request too, and why each loses.
    pub also_matching: Vec<Loser>,
    /// With a token: each check, in the order the gateway runs them.
    pub checks: Vec<Check>,
    /// The answer the gateway would give, in words.
    pub verdict: String,
}

/// The resource that matches and what it requires.
#[derive(Debug, Serialize)]
pub struct Matched {
    /// Its id.
    pub resource: String,
    /// Its pattern that matched.
    pub pattern: String,
    /// Its resource server.
    pub resource_server: String,
    /// Its realm.
    pub realm: String,
    /// `token` or `none` (open).
    pub auth: &'static str,
    /// The audience a token must carry.
    pub audience: String,
    /// The issuer a token must carry (`iss`).
    pub issuer: String,
    /// How tokens are checked: `jwt` (keys), `introspection`, or `jwt or introspection`.
    pub tokens: &'static str,
    /// Required scopes, and whether all or any of them.
    pub scopes: Vec<String>,
    /// `all` or `any`.
    pub scope_match: &'static str,
    /// `max_age` in seconds.
    pub max_age: Option<i64>,
    /// `max_token_lifetime` in seconds.
    pub max_token_lifetime: Option<i64>,
    /// Whether refusals are answered (else report-only).
    pub enforce: bool,
    /// Whether the resource (and its resource server) are in force now.
    pub in_force: bool,
}

/// Another resource matching the request, and why the matched one wins.
#[derive(Debug, Serialize)]
pub struct Loser {
    /// Its id.
    pub resource: String,
    /// Its pattern that matches.
    pub pattern: String,
    /// The routing rule that decides.
    pub why: String,
}

/// One check's result.
#[derive(Debug, Serialize)]
pub struct Check {
    /// What is checked.
    pub name: &'static str,
    /// `pass`, `fail`, `unknown` (not knowable offline) or `not reached`.
    pub result: &'static str,
    /// The refusal reason, or why it is unknown.
    pub detail: Option<String>,
}

impl Check {
    fn new(name: &'static str, result: Result<(), TokenError>) -> Self {
        match result {
            Ok(()) => Self {
                name,
                result: "pass",
                detail: None,
            },
            Err(e) => Self {
                name,
                result: "fail",
                detail: Some(format!("{} ({})", e.reason(), e)),
            },
        }
    }

    fn unknown(name: &'static str, why: &str) -> Self {
        Self {
            name,
            result: "unknown",
            detail: Some(why.to_owned()),
        }
    }
}

/// Explains `method` `host` `raw_path` (with `token`, if given) under `snap` at `clock`'s now.
pub async fn explain(
    snap: &Snapshot,
    clock: SharedClock,
    method: &Method,
    host: Option<&str>,
    raw_path: &str,
    token: Option<&str>,
) -> Explanation {
    let mut out = Explanation {
        method: method.to_string(),
        host: host.map(str::to_owned),
        path: None,
        path_error: None,
        matched: None,
        also_matching: Vec::new(),
        checks: Vec::new(),
        verdict: String::new(),
    };
    let (path, found) = match crate::verifier::route(snap, method, host, raw_path) {
        Ok(r) => r,
        Err(e) => {
            out.path_error = Some(e.to_string());
            out.verdict = "400 invalid_request: the path is not acceptable".into();
            return out;
        }
    };
    out.path = Some(path.as_str().to_owned());
    let Some(found) = found else {
        out.verdict = format!(
            "{} not_found: no protected resource matches",
            snap.settings.unmatched_status.as_u16()
        );
        return out;
    };
    let resource = found.resource;
    let pr = &snap.resources[resource];
    let rs = &snap.resource_servers[pr.resource_server];
    let realm = &snap.realms[rs.realm];
    let now = clock.now();
    let in_force = pr.validity.in_force(now) && rs.validity.in_force(now);
    let enforce = pr.enforced(rs);
    out.also_matching = losers(snap, resource, method, host, &path);
    out.matched = Some(Matched {
        resource: pr.id.as_str().to_owned(),
        pattern: found.pattern.to_owned(),
        resource_server: rs.id.as_str().to_owned(),
        realm: realm.name.as_str().to_owned(),
        auth: pr.auth.as_str(),
        audience: rs.audience.as_str().to_owned(),
        issuer: realm.issuer.clone(),
        tokens: match (&realm.introspection, realm.introspection_only()) {
            (None, _) => "jwt",
            (Some(_), true) => "introspection",
            (Some(_), false) => "jwt, or introspection for tokens that are not JWS/JWE",
        },
        scopes: pr.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
        scope_match: pr.scope_match.as_str(),
        max_age: pr.max_age,
        max_token_lifetime: pr.max_token_lifetime,
        enforce,
        in_force,
    });
    if !in_force {
        out.verdict = "404 not_found: the resource or its resource server is not in force".into();
        return out;
    }
    if pr.auth == Auth::None {
        out.verdict = "forwarded: an open resource (auth = \"none\") checks no token".into();
        return out;
    }
    let Some(token) = token else {
        out.verdict = "without a token: 401 with a Bearer challenge (pass --token to check one)".into();
        return out;
    };
    let (checks, refused) = check_token(snap, &clock, resource, token).await;
    out.checks = checks;
    out.verdict = match (refused, enforce) {
        (Verdict::Allowed, _) => "allowed: forwarded with the claim headers (revocation not known offline)".into(),
        (Verdict::Unknown, _) => "not knowable offline (see the checks marked unknown)".into(),
        (Verdict::Refused(e), true) => format!("refused: {} ({})", e.reason(), answer_of(&e)),
        (Verdict::Refused(e), false) => format!(
            "forwarded anyway (report-only, enforce = false), logged and counted as {}",
            e.would_refuse()
        ),
    };
    out
}

/// How the token came out.
enum Verdict {
    Allowed,
    Refused(TokenError),
    Unknown,
}

/// The status and error code a refusal is answered with.
fn answer_of(e: &TokenError) -> &'static str {
    match e.answer() {
        token::Answer::NoToken => "401",
        token::Answer::InvalidRequest => "400 invalid_request",
        token::Answer::InvalidToken => "401 invalid_token",
        token::Answer::InsufficientScope => "403 insufficient_scope",
        token::Answer::InsufficientUserAuthentication { .. } => "401 insufficient_user_authentication",
        _ => "503 temporarily_unavailable",
    }
}

/// Each check of `token` for `resource`: verification (signature and key, issuer), then
/// every per-request check, then revocation (unknown offline) and the claim headers.
async fn check_token(
    snap: &Snapshot,
    clock: &SharedClock,
    resource: ResourceRef,
    token: &str,
) -> (Vec<Check>, Verdict) {
    let pr = &snap.resources[resource];
    let rs = &snap.resource_servers[pr.resource_server];
    let realm = &snap.realms[rs.realm];
    let mut checks = Vec::new();
    if realm.introspects(token).is_some() {
        checks.push(Check::unknown(
            "introspection",
            "the realm introspects this token at its authorization server; not called offline, so its claims are unknown",
        ));
        return (checks, Verdict::Unknown);
    }
    let claims = match verified(snap, clock, pr.resource_server, token).await {
        Ok(claims) => {
            checks.push(Check::new("signature and key", Ok(())));
            checks.push(Check::new("issuer", Ok(())));
            claims
        }
        Err(Unverified::Remote(claims)) => {
            checks.push(Check::unknown(
                "signature and key",
                "the realm's keys come from jwks_uri, which is not fetched offline; the claims below are read unverified",
            ));
            let issuer = claims.check_issuer(&realm.issuer);
            let failed = issuer.as_ref().err().cloned();
            checks.push(Check::new("issuer", issuer));
            let verdict = per_request(&mut checks, snap, clock, pr, &claims);
            return match failed {
                Some(e) => (checks, Verdict::Refused(e)),
                None => (checks, verdict.map_or(Verdict::Unknown, Verdict::Refused)),
            };
        }
        Err(Unverified::Refused(e)) => {
            let issuer_step = matches!(e, TokenError::WrongIssuer | TokenError::MissingClaim("iss" | "exp"));
            if issuer_step {
                checks.push(Check::new("signature and key", Ok(())));
                checks.push(Check::new("issuer", Err(e.clone())));
            } else {
                checks.push(Check::new("signature and key", Err(e.clone())));
            }
            return (checks, Verdict::Refused(e));
        }
    };
    let refused = per_request(&mut checks, snap, clock, pr, &claims);
    checks.push(Check::unknown(
        "revocation",
        "revocations live in a running gateway's memory and its store; not knowable offline",
    ));
    let headers = crate::verifier::claim_headers(rs, &claims).map(|_| ());
    let header_error = headers.as_ref().err().cloned();
    checks.push(Check::new("claim headers", headers));
    match refused.or(header_error) {
        Some(e) => (checks, Verdict::Refused(e)),
        None => (checks, Verdict::Allowed),
    }
}

/// Runs every per-request check (not stopping at the first failure, as the gateway does)
/// and returns the first failure, which is the gateway's answer.
fn per_request(
    checks: &mut Vec<Check>,
    snap: &Snapshot,
    clock: &SharedClock,
    pr: &ProtectedResource,
    claims: &Claims,
) -> Option<TokenError> {
    let rs = &snap.resource_servers[pr.resource_server];
    let cx = RequestContext {
        now: clock.now(),
        leeway: snap.realms[rs.realm].leeway,
        resource_server: rs,
        resource: pr,
    };
    let mut first = None;
    for (name, check) in token::REQUEST_CHECKS {
        let result = check(claims, &cx);
        if let Err(e) = &result {
            first.get_or_insert_with(|| e.clone());
        }
        checks.push(Check::new(name, result));
    }
    first
}

/// Why a token's claims are not verified offline.
enum Unverified {
    /// The realm's keys are remote: the claims as written, unverified.
    Remote(Claims),
    /// Verification refused it.
    Refused(TokenError),
}

/// The token verified as the gateway verifies it (no cache), or its unverified claims when
/// the keys could only come from the network.
async fn verified(
    snap: &Snapshot,
    clock: &SharedClock,
    rs: crate::model::ResourceServerRef,
    token: &str,
) -> Result<Arc<Claims>, Unverified> {
    let judge = snap
        .judge(rs)
        .ok_or(Unverified::Refused(TokenError::ResourceServerNotInForce))?;
    if judge.realm.jwks_remote.is_some() && token::jws::split(token).is_ok() {
        // NB: verifying could refetch the remote set (unknown kid): no network here.
        let claims = token::jws::split(token)
            .and_then(|c| token::jws::b64(c.payload))
            .and_then(|json| Claims::parse_forwarding(&json, &judge.realm.forwarded_claims))
            .map_err(Unverified::Refused)?;
        return Err(Unverified::Remote(claims));
    }
    let cache = TokenCache::new(0, clock.clone());
    token::verify(token, &judge, &cache).await.map_err(Unverified::Refused)
}

/// The other resources matching the request, each tested alone with the router, and the
/// rule by which `winner` beats it (see [`crate::routing`]'s "most specific wins").
fn losers(
    snap: &Snapshot,
    winner: ResourceRef,
    method: &Method,
    host: Option<&str>,
    path: &crate::routing::NormalizedPath,
) -> Vec<Loser> {
    let host = host.map(crate::routing::host_name);
    let w = &snap.resources[winner];
    let w_pattern = alone(w, 0)
        .find(host.as_deref(), method, path)
        .map(|m| m.pattern.to_owned())
        .unwrap_or_default();
    let mut out = Vec::new();
    for (i, pr) in snap.resources.entries() {
        if i == winner {
            continue;
        }
        let table = alone(pr, 0);
        let Some(m) = table.find(host.as_deref(), method, path) else {
            continue;
        };
        let why = if w.host.is_some() && pr.host.is_none() {
            format!(
                "{} names the request's host; {} names none",
                w.id.as_str(),
                pr.id.as_str()
            )
        } else if m.pattern == w_pattern {
            format!(
                "same pattern; {} lists the request's method, {} allows any",
                w.id.as_str(),
                pr.id.as_str()
            )
        } else {
            format!(
                "{w_pattern:?} is more specific than {:?} (at the first segment where they differ, a literal beats `*`, which beats `**`)",
                m.pattern
            )
        };
        out.push(Loser {
            resource: pr.id.as_str().to_owned(),
            pattern: m.pattern.to_owned(),
            why,
        });
    }
    out
}

/// A route table of `pr`'s routes alone.
fn alone(pr: &ProtectedResource, index: usize) -> Router {
    let mut table = Router::new();
    for pattern in &pr.paths {
        // Patterns compiled already; a resource's own patterns never overlap each other.
        let _ = table.insert(Route {
            resource: index,
            host: pr.host.as_deref(),
            methods: pr.methods.as_deref(),
            pattern,
        });
    }
    table
}
