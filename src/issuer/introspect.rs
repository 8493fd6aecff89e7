//! RFC 7662 introspection, authenticated with a resource server's own credentials, and
//! RFC 7009 revocation, by a resource server for tokens of its audience or by the client a
//! token was issued to.

use http::HeaderMap;
use serde_json::{Map, Value, json};

use super::OAuthError;
use super::client_auth::{self, AuthContext};
use super::form::Form;
use crate::model::{ClientRef, RealmRef, ResourceServerRef};
use crate::snapshot::Snapshot;
use crate::store::Store;
use crate::verifier::Verifier;

/// Who called introspection or revocation, authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Caller {
    /// A resource server (its index), with its own credentials.
    ResourceServer(ResourceServerRef),
    /// A client of the realm (its index), with its registered authentication method.
    Client(ClientRef),
}

/// Authenticates the caller at introspection (`clients_too` false: resource servers only,
/// `client_secret_basic` or `client_secret_post` with their own credentials) or revocation
/// (`clients_too` true: also the realm's clients, each with its registered method, RFC 7009
/// § 2.1). Resource-server and client ids never collide (the configuration refuses it).
pub(super) async fn authenticate_caller(
    cx: &AuthContext<'_>,
    snap: &Snapshot,
    realm: RealmRef,
    headers: &HeaderMap,
    form: &Form,
    clients_too: bool,
) -> Result<Caller, OAuthError> {
    let presented = client_auth::presented(headers, form)?;
    let basic = presented.is_basic();
    let message = if clients_too {
        "client authentication failed"
    } else {
        "resource server authentication failed"
    };
    let fail = || OAuthError::InvalidClient {
        message: message.into(),
        basic,
    };
    let id = presented.claimed_id().ok_or_else(fail)?;
    let rs = snap
        .resource_servers
        .entries()
        .find_map(|(i, rs)| match &rs.credentials {
            Some(c) if rs.realm == realm && c.client_id == id => Some((i, c.secret_hash.as_str())),
            _ => None,
        });
    if let Some((i, hash)) = rs {
        let Some(secret) = presented.secret() else {
            return Err(fail());
        };
        client_auth::check_secret(cx, &id, secret, hash, basic).await?;
        return Ok(Caller::ResourceServer(i));
    }
    if clients_too && let Some((ci, client)) = snap.client(realm, &id) {
        client_auth::authenticate(cx, &presented, client, snap.clients[ci].keys.as_ref()).await?;
        if !client.validity.in_force(cx.now) {
            return Err(OAuthError::InvalidClient {
                message: "the client is not active".into(),
                basic,
            });
        }
        return Ok(Caller::Client(ci));
    }
    Err(client_auth::refuse_unknown(cx, &presented, message).await)
}

/// RFC 7662 § 2.2: `{"active": false}` for anything invalid, expired, revoked or meant for
/// another audience; otherwise the token's claims, with `scope` cut to the asking resource
/// server's scopes.
pub(super) async fn introspect(
    verifier: &Verifier,
    snap: &Snapshot,
    asking: ResourceServerRef,
    form: &Form,
) -> Result<Value, OAuthError> {
    let token = form
        .get("token")
        .ok_or_else(|| OAuthError::InvalidRequest("token is required".into()))?;
    let rs = &snap.resource_servers[asking];
    let claims = match verifier.active(snap, asking, token).await {
        Ok(claims) => claims,
        Err(e) => {
            tracing::debug!(reason = e.reason(), "introspected token is not active");
            return Ok(json!({ "active": false }));
        }
    };
    let mut out = Map::new();
    out.insert("active".into(), true.into());
    let scope: Vec<&str> = claims.scopes().filter(|s| rs.scopes.contains(s)).collect();
    if !scope.is_empty() {
        out.insert("scope".into(), scope.join(" ").into());
    }
    for (name, value) in [
        ("client_id", claims.client_id().map(Value::from)),
        ("sub", claims.sub().map(Value::from)),
        ("iss", claims.iss().map(Value::from)),
        ("jti", claims.jti().map(Value::from)),
        ("exp", claims.exp.map(Value::from)),
        ("iat", claims.iat.map(Value::from)),
        ("nbf", claims.nbf.map(Value::from)),
    ] {
        if let Some(v) = value {
            out.insert(name.into(), v);
        }
    }
    out.insert("aud".into(), rs.audience.as_str().into());
    out.insert("token_type".into(), "Bearer".into());
    Ok(Value::Object(out))
}

/// RFC 7009 § 2.1: "The authorization server first validates the client credentials ...
/// and then verifies whether the token was issued to the client making the revocation
/// request. If this validation fails, the request is refused and the client is informed of
/// the error." A resource server may revoke the tokens for its audience, a client the tokens
/// issued to it; a valid token of anyone else is refused (`unauthorized_client`). An invalid,
/// expired or unknown token is answered as revoked (§ 2.2).
pub(super) async fn revoke(
    verifier: &Verifier,
    store: Option<&Store>,
    snap: &Snapshot,
    realm: RealmRef,
    caller: Caller,
    form: &Form,
) -> Result<(), OAuthError> {
    let token = form
        .get("token")
        .ok_or_else(|| OAuthError::InvalidRequest("token is required".into()))?;
    let first = match caller {
        Caller::ResourceServer(i) => Some(i),
        Caller::Client(_) => None,
    };
    let Ok(claims) = verifier.verify_in_realm(snap, realm, first, token).await else {
        return Ok(());
    };
    let (may, who) = match caller {
        Caller::ResourceServer(i) => {
            let rs = &snap.resource_servers[i];
            (claims.has_aud(rs.audience.as_str()), rs.id.as_str())
        }
        Caller::Client(ci) => {
            let id = snap.clients[ci].client_id.as_str();
            (claims.client_id() == Some(id), id)
        }
    };
    if !may {
        tracing::info!(caller = who, "revocation of another party's token refused");
        return Err(OAuthError::UnauthorizedClient(match caller {
            Caller::ResourceServer(_) => "the token is not for this resource server".into(),
            Caller::Client(_) => "the token was not issued to this client".into(),
        }));
    }
    let (key, until) = verifier.revocation_of(snap, realm, token, &claims);
    // Committed to the store before it is answered: every replica, and this one after a
    // restart, refuses the token; a store that cannot take it is a 503, never a revocation
    // silently kept in one process's memory.
    if let Some(store) = store {
        let realm_name = snap.realms[realm].name.as_str();
        let now = verifier.clock().now();
        if let Err(e) = store.revoke(realm_name, key.as_bytes(), until, who, now).await {
            tracing::error!(error = %e, caller = who, "revocation not recorded: the store is unavailable");
            return Err(OAuthError::TemporarilyUnavailable);
        }
    }
    verifier.apply_revocation(key, until, token);
    tracing::info!(
        caller = who,
        client_id = claims.client_id().unwrap_or("-"),
        "token revoked"
    );
    Ok(())
}
