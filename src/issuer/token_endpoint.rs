//! The token endpoint: `grant_type=client_credentials` (RFC 6749 § 4.4) with the target,
//! scope and lifetime rules of the embedded issuer.

use http::HeaderMap;

use super::OAuthError;
use super::client_auth::{self, AuthContext};
use super::form::Form;
use super::mint::{MintRequest, mint};
use crate::model::{Client, RealmRef, ResourceServer, ResourceServerRef, Scope, ScopeSource};
use crate::snapshot::{ResourceServerEntry, Snapshot};

/// A successful token response's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The access token.
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// The client it went to (for logs and metrics).
    pub client_id: String,
    /// The resource server it is for.
    pub resource_server: String,
}

/// Handles one token request.
pub(super) async fn token(
    cx: &AuthContext<'_>,
    snap: &Snapshot,
    realm: RealmRef,
    headers: &HeaderMap,
    form: &Form,
) -> Result<Issued, OAuthError> {
    let presented = client_auth::presented(headers, form)?;
    let basic = presented.is_basic();
    let id = presented.claimed_id().ok_or_else(|| OAuthError::InvalidClient {
        message: "the client could not be identified".into(),
        basic,
    })?;
    let Some((ci, client)) = snap.client(realm, &id) else {
        return Err(client_auth::refuse_unknown(cx, &presented, "client authentication failed").await);
    };
    client_auth::authenticate(cx, &presented, client, snap.clients[ci].keys.as_ref()).await?;
    if !client.validity.in_force(cx.now) {
        return Err(OAuthError::InvalidClient {
            message: "the client is not active".into(),
            basic,
        });
    }
    match form.get("grant_type") {
        None => return Err(OAuthError::InvalidRequest("grant_type is required".into())),
        Some("client_credentials") => {}
        Some(_) => return Err(OAuthError::UnsupportedGrantType),
    }
    let target = select_target(snap, realm, form)?;
    let rs = &snap.resource_servers[target];
    if !rs.validity.in_force(cx.now) {
        return Err(OAuthError::InvalidTarget("the resource server is not available".into()));
    }
    if client
        .resource_servers
        .as_ref()
        .is_some_and(|allowed| !allowed.contains(&target))
    {
        return Err(OAuthError::InvalidTarget(
            "the client may not get tokens for this resource server".into(),
        ));
    }
    let scopes = grant_scopes(snap, realm, client, rs, form.get("scope"))?;
    // The client's TTL if set, never above the target's.
    let ttl = client
        .access_token_ttl
        .map_or(rs.access_token_ttl, |t| t.min(rs.access_token_ttl));
    let signing = &snap.realms[realm].signing;
    let key = match rs.signing_alg {
        Some(alg) => signing.active(alg),
        None => signing.first(),
    }
    .ok_or(OAuthError::ServerError)?;
    let scope = scopes.join(" ");
    let r = &snap.realms[realm];
    let access_token = mint(
        &MintRequest {
            issuer: &r.issuer,
            audience: rs.audience.as_str(),
            subject: client.client_id.as_str(),
            client_id: client.client_id.as_str(),
            scope: &scope,
            now: cx.now,
            ttl,
            // RFC 9068 § 2.2.1 ties `auth_time` to an end user's authentication; with
            // client_credentials the subject is the client itself (`sub` = `client_id`), so the
            // subject's authentication time is when the client proved its credentials here.
            // Kept so that a protected resource's `max_age` bounds how long ago a machine
            // client last authenticated, as it does for users.
            auth_time: cx.now,
        },
        key,
    )
    .map_err(|e| {
        tracing::error!(error = %e, "minting failed");
        OAuthError::ServerError
    })?;
    // Per the target's `encryption`: sent as is, or nested in a compact JWE (RFC 7519 § 5.2)
    // to the realm's key or the resource server's own.
    let access_token = match snap.resource_servers[target].jwe.as_deref() {
        None => access_token,
        Some(keys) => keys.encrypt(&access_token).map_err(|e| {
            tracing::error!(error = %e, "encrypting the token failed");
            OAuthError::ServerError
        })?,
    };
    Ok(Issued {
        access_token,
        expires_in: ttl.as_secs(),
        scope,
        client_id: client.client_id.as_str().to_owned(),
        resource_server: rs.id.as_str().to_owned(),
    })
}

/// The target: `resource` (RFC 8707, the audience URI), else `resourceServer` (its id,
/// as other admin APIs name it), else the realm's default resource server.
pub(super) fn select_target(snap: &Snapshot, realm: RealmRef, form: &Form) -> Result<ResourceServerRef, OAuthError> {
    let in_realm = |rs: &ResourceServerEntry| rs.realm == realm;
    let by_resource = match form.resources.as_slice() {
        [] => None,
        [first, rest @ ..] => {
            if rest.iter().any(|r| r != first) {
                return Err(OAuthError::InvalidTarget("one resource per token request".into()));
            }
            let (i, _) = snap
                .resource_servers
                .find(|rs| in_realm(rs) && rs.audience.as_str() == first)
                .ok_or_else(|| OAuthError::InvalidTarget("unknown resource".into()))?;
            Some(i)
        }
    };
    let by_id = match form.get("resourceServer") {
        None => None,
        Some(id) => Some(
            snap.resource_servers
                .find(|rs| in_realm(rs) && rs.id.as_str() == id)
                .map(|(i, _)| i)
                .ok_or_else(|| OAuthError::InvalidTarget("unknown resourceServer".into()))?,
        ),
    };
    match (by_resource, by_id) {
        (Some(a), Some(b)) if a != b => Err(OAuthError::InvalidTarget("resource and resourceServer disagree".into())),
        (Some(a), _) | (None, Some(a)) => Ok(a),
        (None, None) => snap
            .resource_servers
            .find(|rs| in_realm(rs) && rs.default)
            .map(|(i, _)| i)
            .ok_or_else(|| {
                OAuthError::InvalidTarget("no resource given and the realm has no default resource server".into())
            }),
    }
}

/// Requested ∩ the client's allowed ∩ the target's scopes (or, with `scope_source =
/// "any_resource_server"`, any resource server's of the realm). No `scope`: the target's
/// default scopes the client may have. A requested scope that cannot be granted fails.
pub(super) fn grant_scopes(
    snap: &Snapshot,
    realm: RealmRef,
    client: &Client,
    rs: &ResourceServer,
    requested: Option<&str>,
) -> Result<Vec<String>, OAuthError> {
    let client_may = |s: &str| client.scopes.as_ref().is_none_or(|allowed| allowed.contains(s));
    let defined = |s: &str| match snap.realms[realm].scope_source {
        ScopeSource::Target => rs.scopes.contains(s),
        ScopeSource::AnyResourceServer => snap
            .resource_servers
            .iter()
            .any(|other| other.realm == realm && other.scopes.contains(s)),
    };
    let Some(text) = requested else {
        return Ok(rs
            .default_scopes
            .iter()
            .map(Scope::as_str)
            .filter(|s| client_may(s))
            .map(str::to_owned)
            .collect());
    };
    let mut out: Vec<String> = Vec::new();
    for s in text.split(' ').filter(|s| !s.is_empty()) {
        if Scope::parse(s).is_none() {
            return Err(OAuthError::InvalidScope("malformed scope".into()));
        }
        if !defined(s) || !client_may(s) {
            return Err(OAuthError::InvalidScope(format!("scope {s:?} cannot be granted")));
        }
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    Ok(out)
}
