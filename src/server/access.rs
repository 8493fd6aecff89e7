//! The `log` phase: one access-log line per request (target `access`) and the request's
//! metrics, written once the answer's head is known.
//!
//! NB: a line never carries a token, a secret, a key or the query string (which may hold
//! any of them); the path is the normalized one when a route matched.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::Method;

use crate::metrics::{Metrics, RequestRecord};
use crate::model::Name;
use crate::snapshot::Snapshot;
use crate::token::TokenError;
use crate::verifier::Denied;

/// What one request came to.
#[derive(Debug)]
pub(super) struct Line<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub request_id: &'a str,
    /// The W3C trace id the request was forwarded with (`server::trace`).
    pub trace_id: Option<&'a str>,
    /// The client ([`super::client`]): the peer, or the first untrusted hop behind a
    /// trusted proxy.
    pub remote: SocketAddr,
    /// The trusted proxy the request came through, when it did.
    pub peer: Option<std::net::IpAddr>,
    pub started: Instant,
    /// The matched protected resource.
    pub resource: Option<&'a Name>,
    /// The matched resource server, or the one a token was issued for.
    pub resource_server: Option<&'a Name>,
    /// For the embedded issuers' endpoints.
    pub issuer: Option<IssuerCall<'a>>,
    /// `decision` for a forward-auth answer ([`crate::decision`]); absent in proxy mode, so
    /// its lines cost nothing more.
    pub mode: Option<&'static str>,
    /// The forward-auth entry (`nginx`, `forwarded`, `envoy`) in decision mode.
    pub entry: Option<&'static str>,
    /// `allowed`, `public` (an open resource), `preflight` or `preflight_refused` (CORS), a refusal reason (`bad_host` among them), `upstream_error`, or a client
    /// body fault (`body_too_large`, `bad_request_body`, `client_aborted`); for the issuers
    /// `issued`, `ok` or the RFC error code.
    pub outcome: &'static str,
    pub status: u16,
    /// `client_id` (else `sub`) of the verified token, or the client a token was issued to.
    pub client: Option<&'a str>,
    pub upstream: Option<Duration>,
    /// A failure in words (upstream errors, issuer refusals).
    pub detail: Option<std::borrow::Cow<'a, str>>,
}

/// A request to an embedded issuer's endpoint.
#[derive(Debug, Clone, Copy)]
pub(super) struct IssuerCall<'a> {
    pub realm: &'a Name,
    /// [`IssuerEndpoint::name`](crate::model::IssuerEndpoint::name).
    pub endpoint: &'static str,
    /// The RFC 6749 § 5.2 error code answered, if any.
    pub error: Option<&'static str>,
}

impl<'a> Line<'a> {
    /// A line for a request; the caller fills in what it learned.
    pub(super) fn new(
        method: &'a Method,
        path: &'a str,
        request_id: &'a str,
        remote: SocketAddr,
        started: Instant,
    ) -> Self {
        Self {
            method,
            path,
            request_id,
            trace_id: None,
            remote,
            peer: None,
            started,
            resource: None,
            resource_server: None,
            issuer: None,
            mode: None,
            entry: None,
            outcome: "",
            status: 0,
            client: None,
            upstream: None,
            detail: None,
        }
    }
}

macro_rules! access_event {
    ($level:expr, $line:expr, $duration:expr) => {
        tracing::event!(
            target: "access",
            $level,
            method = %$line.method,
            path = $line.path,
            request_id = $line.request_id,
            trace_id = $line.trace_id,
            remote = %$line.remote.ip(),
            peer = $line.peer.map(tracing::field::display),
            resource = $line.resource.map(Name::as_str),
            resource_server = $line.resource_server.map(Name::as_str),
            realm = $line.issuer.map(|i| i.realm.as_str()),
            endpoint = $line.issuer.map(|i| i.endpoint),
            mode = $line.mode,
            entry = $line.entry,
            outcome = $line.outcome,
            status = $line.status,
            client = $line.client,
            duration_us = u64::try_from($duration.as_micros()).unwrap_or(u64::MAX),
            upstream_us = $line.upstream.map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
            detail = $line.detail.as_deref(),
            "request"
        )
    };
}

/// Writes the access line and records the metrics of `line`.
pub(super) fn finish(metrics: &Metrics, line: &Line<'_>) {
    let duration = line.started.elapsed();
    // Failures of our own or the upstream's are worth a warning; refusals are routine.
    if line.status >= 500 {
        access_event!(tracing::Level::WARN, line, duration);
    } else {
        access_event!(tracing::Level::INFO, line, duration);
    }
    match line.issuer {
        Some(call) => match (call.error, line.resource_server) {
            (Some(code), _) => metrics.issuer_error(call.realm, call.endpoint, code),
            // Only the token endpoint names a resource server on success.
            (None, Some(rs)) => metrics.token_issued(call.realm, rs),
            (None, None) => {}
        },
        None => metrics.request(&RequestRecord {
            resource_server: line.resource_server,
            resource: line.resource,
            outcome: line.outcome,
            status: line.status,
            duration,
            upstream: line.upstream,
        }),
    }
}

/// What the operator needs to see about a refused token, for the line's `detail`: the
/// `kid` and `alg` it names and the `iss`, `aud`, `client_id` and scopes it claims (read
/// unverified, after the refusal: never the token), and what the route wanted that it
/// lacks. Made only when access lines are written, and only for token refusals.
pub(super) fn refusal_detail(snap: &Snapshot, denied: &Denied, headers: &http::HeaderMap) -> Option<String> {
    let Denied::Token { resource, error } = denied else {
        return None;
    };
    if !tracing::enabled!(target: "access", tracing::Level::INFO) {
        return None;
    }
    let raw = crate::token::bearer(headers).ok().flatten()?;
    let p = crate::token::peek(raw);
    let pr = &snap.resources[*resource];
    let rs = &snap.resource_servers[pr.resource_server];
    let mut out = String::new();
    let mut put = |name: &str, value: &str| {
        let shown: String = value.chars().take(200).collect();
        out.push_str(&format!("{}{name}={shown:?}", if out.is_empty() { "" } else { " " }));
    };
    for (name, value) in [
        ("kid", &p.kid),
        ("alg", &p.alg),
        ("iss", &p.iss),
        ("client_id", &p.client_id),
        ("scope", &p.scope),
    ] {
        if let Some(v) = value {
            put(name, v);
        }
    }
    if !p.aud.is_empty() {
        put("aud", &p.aud.join(" "));
    }
    let held: Vec<&str> = p.scope.as_deref().unwrap_or_default().split(' ').collect();
    match error {
        TokenError::InsufficientScope => {
            let missing: Vec<&str> = pr
                .scopes
                .iter()
                .map(|s| s.as_str())
                .filter(|s| !held.contains(s))
                .collect();
            out.push_str(&format!(
                "; needs {} of [{}], missing [{}]",
                pr.scope_match.as_str(),
                pr.scopes.to_space_separated(),
                missing.join(" ")
            ));
        }
        TokenError::WrongAudience => out.push_str(&format!("; expected aud {:?}", rs.audience.as_str())),
        TokenError::WrongIssuer => out.push_str(&format!("; expected iss {:?}", snap.realms[rs.realm].issuer)),
        _ => {}
    }
    (!out.is_empty()).then_some(out)
}
