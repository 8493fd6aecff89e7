//! The optional static admin token of a realm (`management_token_hash`): a bearer token
//! for that realm's Management API only, for automation that cannot run an OAuth client.
//!
//! It is not a JWT, so the verifier refuses it as malformed; only such a refusal, on one of
//! the Management API's own routes, in a realm that has a hash, is looked at again here.
//! The presented token is checked against the argon2id hash by the issuer's secret checker,
//! so the same gate, failure throttle and success memory bound it as client secrets: a
//! stranger guessing tokens cannot make the gateway hash without limit. A match becomes a
//! caller holding every management scope, named [`ACTOR`] in the change log; the route's
//! own checks (audience, scope) still run on it, as on any token.

use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderMap;

use crate::config::management;
use crate::issuer::{SecretChecker, Source};
use crate::model::ResourceRef;
use crate::routing::normalize;
use crate::snapshot::Snapshot;
use crate::token::{self, Claims, RequestContext, TokenError};
use crate::verifier::{Allowed, Denied};

/// Who the static token's calls are, in the change log and the access line.
pub const ACTOR: &str = "static-token";

/// How long the claims made for one call say they live: they are never handed out, only
/// checked once on the way in.
const CLAIMS_TTL: i64 = 60;

/// The static token's check: the secret checker it shares with client authentication.
#[derive(Debug, Clone)]
pub struct StaticToken {
    secrets: SecretChecker,
}

impl StaticToken {
    /// Checks static tokens with `secrets` (the issuer's, so one gate bounds every argon2 run).
    pub fn new(secrets: SecretChecker) -> Self {
        Self { secrets }
    }

    /// The call `denied` refused, allowed after all when its bearer token is the realm's
    /// static admin token. `None` for every other refusal, at no cost beyond a few
    /// comparisons: the argon2 check runs only for a malformed token on a Management API
    /// route of a realm that has a static token.
    pub async fn admit(
        &self,
        snap: &Snapshot,
        denied: &Denied,
        path: &str,
        headers: &HeaderMap,
        peer: IpAddr,
        now: i64,
    ) -> Option<Allowed> {
        let &Denied::Token {
            resource,
            error: TokenError::Malformed(_),
        } = denied
        else {
            return None;
        };
        let pr = &snap.resources[resource];
        let rs = &snap.resource_servers[pr.resource_server];
        if !rs.management {
            return None;
        }
        let realm = &snap.realms[rs.realm];
        let hash = realm.management_token_hash.as_deref()?;
        let presented = token::bearer(headers).ok().flatten()?;
        // The throttle keys failures by (realm, source): a guess in one realm does not lock
        // out another's automation.
        let throttle_id = format!("{ACTOR}:{}", realm.name.as_str());
        if let Err(why) = self
            .secrets
            .verify(&throttle_id, presented, hash, Source::of(peer))
            .await
        {
            tracing::info!(realm = %realm.name.as_str(), reason = %why, "static admin token refused");
            return None;
        }
        let claims = caller(snap, resource, now)?;
        Some(Allowed {
            resource,
            resource_server: pr.resource_server,
            claims: Some(Arc::new(claims)),
            path: normalize(path).ok()?,
            claim_headers: Vec::new(),
            would_refuse: None,
        })
    }
}

/// The claims the static token stands for on `resource`: the realm's issuer, the Management
/// API's audience, every management scope; checked by the route's own rules like any token's.
fn caller(snap: &Snapshot, resource: ResourceRef, now: i64) -> Option<Claims> {
    let pr = &snap.resources[resource];
    let rs = &snap.resource_servers[pr.resource_server];
    let realm = &snap.realms[rs.realm];
    let body = serde_json::json!({
        "iss": realm.issuer,
        "sub": ACTOR,
        "client_id": ACTOR,
        "aud": rs.audience.as_str(),
        "scope": management::scopes().join(" "),
        "iat": now,
        "exp": now.saturating_add(CLAIMS_TTL),
    });
    let claims = Claims::parse(body.to_string().as_bytes()).ok()?;
    claims
        .check_request(&RequestContext {
            now,
            leeway: realm.leeway,
            resource_server: rs,
            resource: pr,
        })
        .ok()?;
    Some(claims)
}
