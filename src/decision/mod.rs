//! Decision mode: forward-auth entry points over the verifier, for a proxy that forwards
//! itself and only asks the gateway whether a request may go through.
//!
//! ```text
//!   entry (nginx | forwarded | envoy) ─▶ original request ─▶ route ─▶ extract ─▶ verify ─▶ authorize
//!          │                                   │                  (Verifier::check, as proxy mode)
//!          └─ peer not in trusted_proxies ─────┴─ refusal ──▶ answer: 200 + claim headers | 401/403/503
//! ```
//!
//! Each entry only says where the original method, host and URI are ([`original`]); the
//! decision itself is [`Verifier::check`], with its caches, and the server's `log` phase
//! writes the access line (`mode=decision`) and counts it as for proxy mode. The answers
//! ([`answer`]) are the ones every forward-auth client understands: `200` allows (Envoy
//! treats any other 2xx as a denial), refusals are proxy mode's `401`/`403` with their
//! `WWW-Authenticate`, a request no resource matches is `403` (nginx's `auth_request` turns a
//! `404` into a `500`), and no usable keys is `503`.

use std::net::IpAddr;

use http::{HeaderMap, Method, Uri};

use crate::snapshot::Snapshot;
use crate::verifier::{Allowed, Denied, Verifier};

mod answer;
mod original;

pub use original::{Original, OriginalError};

/// Which forward-auth convention a decision request follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// nginx `auth_request` (`<decision_path>/nginx`): the original method and URI in
    /// `X-Original-Method` / `X-Original-URI` (or the configured headers), the host in `Host`.
    Nginx,
    /// Traefik `forwardAuth` and Caddy `forward_auth` (`<decision_path>/forwarded`):
    /// `X-Forwarded-Method`, `X-Forwarded-Uri` and `X-Forwarded-Host`.
    Forwarded,
    /// Envoy `ext_authz` over HTTP (`path_prefix = <decision_path>/envoy`): the original
    /// method is the request's, the original path is what follows the prefix, the host is
    /// `Host`.
    Envoy,
}

impl Entry {
    /// The entry `path` (a request's raw path) is for, when decision mode is on and it is
    /// one: the one check proxy mode pays for decision mode.
    pub fn of(snap: &Snapshot, path: &str) -> Option<Self> {
        let prefix = snap.settings.decision.as_ref()?.path.as_str();
        match path.strip_prefix(prefix)? {
            "/nginx" => Some(Self::Nginx),
            "/forwarded" => Some(Self::Forwarded),
            _ if envoy_original(prefix, path).is_some() => Some(Self::Envoy),
            _ => None,
        }
    }

    /// Its name in the endpoint's path.
    pub fn name(self) -> &'static str {
        match self {
            Self::Nginx => "nginx",
            Self::Forwarded => "forwarded",
            Self::Envoy => "envoy",
        }
    }
}

/// The original path of an Envoy request to `path`: what follows `<prefix>/envoy` (Envoy
/// appends the original path, which always starts with a slash).
fn envoy_original<'p>(prefix: &str, path: &'p str) -> Option<&'p str> {
    path.strip_prefix(prefix)?
        .strip_prefix("/envoy")
        .filter(|rest| rest.starts_with('/'))
}

/// What a decision request came to.
#[derive(Debug)]
pub struct Decision {
    /// The entry it came through.
    pub entry: Entry,
    /// The original request's path as it was described (no query), for the log; empty when
    /// it could not be read.
    pub path: String,
    /// The verdict.
    pub verdict: Result<Allowed, Refusal>,
}

/// Why a decision request was answered with a refusal.
#[derive(Debug)]
pub enum Refusal {
    /// The original request could not be believed or read: `403`.
    Original(OriginalError),
    /// The verifier refused the original request, as it would in proxy mode.
    Denied(Denied),
}

impl Refusal {
    /// A short label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Original(e) => e.reason(),
            Self::Denied(d) => d.reason(),
        }
    }
}

/// A decision request as it arrived: what the entries read the original request from.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'r> {
    /// The decision request's method.
    pub method: &'r Method,
    /// Its target.
    pub uri: &'r Uri,
    /// Its headers (the original request's, as the proxy passed them on).
    pub headers: &'r HeaderMap,
    /// Its validated `Host` ([`crate::routing::request_host`]).
    pub host: Option<&'r str>,
    /// The connection's peer: the proxy, if it is one.
    pub peer: IpAddr,
}

/// The decision for one forward-auth request: the original request read as `entry` says
/// (believed only from `trusted_proxies`), then decided by `verifier` exactly as proxy mode
/// decides it.
pub async fn decide(verifier: &Verifier, snap: &Snapshot, entry: Entry, asked: &Asked<'_>) -> Decision {
    let original = match original::read(snap, entry, asked) {
        Ok(o) => o,
        Err(e) => {
            return Decision {
                entry,
                path: String::new(),
                verdict: Err(Refusal::Original(e)),
            };
        }
    };
    let verdict = verifier
        .check(snap, &original.method, original.host, original.path, asked.headers)
        .await
        .map_err(Refusal::Denied);
    Decision {
        entry,
        path: original.path.to_owned(),
        verdict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoys_original_path_is_what_follows_the_prefix() {
        let p = "/_portcullis/auth";
        assert_eq!(envoy_original(p, "/_portcullis/auth/envoy/items/1"), Some("/items/1"));
        assert_eq!(envoy_original(p, "/_portcullis/auth/envoy/"), Some("/"));
        assert_eq!(envoy_original(p, "/_portcullis/auth/envoy//x"), Some("//x"));
        assert_eq!(envoy_original(p, "/_portcullis/auth/envoy"), None);
        assert_eq!(envoy_original(p, "/_portcullis/auth/envoyx/items"), None);
        assert_eq!(envoy_original(p, "/_portcullis/authx/envoy/items"), None);
        assert_eq!(envoy_original(p, "/items"), None);
    }
}
