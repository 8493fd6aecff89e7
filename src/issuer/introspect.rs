//! RFC 7662 introspection and RFC 7009 revocation, authenticated with a resource server's
//! own credentials.

use http::HeaderMap;
use serde_json::{Map, Value, json};

use super::OAuthError;
use super::client_auth::{self, Presented};
use super::form::Form;
use super::secrets::SecretChecker;
use crate::snapshot::Snapshot;
use crate::token::{self, Claims, RevocationKey};
use crate::verifier::Verifier;

/// Authenticates the calling resource server of `realm` (`client_secret_basic` or
/// `client_secret_post` with its own credentials); returns its index.
pub async fn authenticate_rs(
    secrets: &SecretChecker,
    snap: &Snapshot,
    realm: usize,
    headers: &HeaderMap,
    form: &Form,
) -> Result<usize, OAuthError> {
    let presented = client_auth::presented(headers, form)?;
    let basic = presented.is_basic();
    let fail = || OAuthError::InvalidClient {
        message: "resource server authentication failed".into(),
        basic,
    };
    let (id, secret) = match &presented {
        Presented::Basic { id, secret } | Presented::Post { id, secret } => (id, secret),
        Presented::Assertion { .. } => return Err(fail()),
    };
    let (i, rs) = snap
        .resource_servers
        .iter()
        .enumerate()
        .find(|(_, rs)| rs.realm == realm && rs.credentials.as_ref().is_some_and(|c| &c.client_id == id))
        .ok_or_else(fail)?;
    let hash = rs
        .credentials
        .as_ref()
        .map(|c| c.secret_hash.as_str())
        .ok_or_else(fail)?;
    client_auth::check_secret(secrets, id, secret, hash, basic).await?;
    Ok(i)
}

/// Verifies `token` as a token of `realm` valid now and not revoked; `None` for anything
/// else (the reason is logged).
async fn active_claims(
    verifier: &Verifier,
    snap: &Snapshot,
    realm: usize,
    asking: usize,
    token: &str,
) -> Option<std::sync::Arc<Claims>> {
    let r = &snap.realms[realm];
    let outer = token::Outer::of(snap, asking);
    let claims = match token::verify(token, r, &snap.realm_keys[realm], verifier.cache(), outer).await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(reason = e.reason(), "introspected token is not valid");
            return None;
        }
    };
    let now = verifier.clock().now();
    let live = claims.exp.is_some_and(|exp| now < exp.saturating_add(r.leeway))
        && claims.nbf.is_none_or(|nbf| now >= nbf.saturating_sub(r.leeway));
    let revoked = !verifier.revocations().never_used()
        && verifier
            .revocations()
            .is_revoked(&RevocationKey::of(r.name.as_str(), &claims, token));
    (live && !revoked).then_some(claims)
}

/// RFC 7662 § 2.2: `{"active": false}` for anything invalid, expired, revoked or meant for
/// another audience; otherwise the token's claims, with `scope` cut to the asking resource
/// server's scopes.
pub async fn introspect(
    verifier: &Verifier,
    snap: &Snapshot,
    realm: usize,
    asking: usize,
    form: &Form,
) -> Result<Value, OAuthError> {
    let token = form
        .get("token")
        .ok_or_else(|| OAuthError::InvalidRequest("token is required".into()))?;
    let rs = &snap.resource_servers[asking];
    let Some(claims) = active_claims(verifier, snap, realm, asking, token).await else {
        return Ok(json!({ "active": false }));
    };
    if !claims.has_aud(rs.audience.as_str()) {
        return Ok(json!({ "active": false }));
    }
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

/// RFC 7009 § 2.1: revokes a token of this realm meant for the asking resource server. The
/// answer is the same whether or not anything was revoked (§ 2.2).
pub async fn revoke(
    verifier: &Verifier,
    snap: &Snapshot,
    realm: usize,
    asking: usize,
    form: &Form,
) -> Result<(), OAuthError> {
    let token = form
        .get("token")
        .ok_or_else(|| OAuthError::InvalidRequest("token is required".into()))?;
    let rs = &snap.resource_servers[asking];
    let r = &snap.realms[realm];
    let outer = token::Outer::of(snap, asking);
    if let Ok(claims) = token::verify(token, r, &snap.realm_keys[realm], verifier.cache(), outer).await
        && claims.has_aud(rs.audience.as_str())
    {
        verifier.revoke(snap, realm, token, &claims);
        tracing::info!(
            resource_server = rs.id.as_str(),
            client_id = claims.client_id().unwrap_or("-"),
            "token revoked"
        );
    }
    Ok(())
}
