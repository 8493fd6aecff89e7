//! `GET /match?method=&path=&host=`: which protected resource a request would reach, routed
//! exactly as the gateway routes requests ([`crate::verifier::route`]), and what a token
//! needs there. For operators (and the Admin Panel's "which resource matches?" box).

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

use super::{Call, Problem, answer};
use crate::model::{EntityKind, EntitySource};

/// Answers `GET /match`.
pub(super) fn matching(call: &Call<'_>) -> Result<Response<Full<Bytes>>, Problem> {
    let (mut method, mut path, mut host) = (None, None, None);
    for (k, v) in form_urlencoded::parse(call.query.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "method" => method = Some(v.into_owned()),
            "path" => path = Some(v.into_owned()),
            "host" if !v.is_empty() => host = Some(v.into_owned()),
            _ => {}
        }
    }
    let method = match method.as_deref() {
        None => Method::GET,
        Some(m) => Method::from_bytes(m.as_bytes())
            .map_err(|_| Problem::invalid_query("method", "must be an HTTP method token such as GET"))?,
    };
    let path =
        path.ok_or_else(|| Problem::invalid_query("path", "is required: the request path, such as /orders/7"))?;
    let (normalized, found) = match crate::verifier::route(call.snap, &method, host.as_deref(), &path) {
        Ok(routed) => routed,
        // The gateway refuses such a request before routing: that is the answer.
        Err(e) => {
            let body = json!({
                "method": method.as_str(), "path": path, "normalized_path": null, "host": host,
                "realm": call.realm_name(), "matched": null,
                "detail": format!("the gateway answers 400: the path cannot be routed ({e})"),
            });
            return Ok(answer(StatusCode::OK, &body, None));
        }
    };
    let realm_name = call.realm_name();
    let matched = found.and_then(|routed| {
        let pr = &call.snap.resources[routed.resource];
        let rs = &call.snap.resource_servers[pr.resource_server];
        // Another realm's resource is not this API's to describe.
        (rs.realm == call.realm).then(|| described(call, pr, rs.id.as_str(), routed.pattern))
    });
    let other_realm = matched.is_none() && found.is_some();
    let body = json!({
        "method": method.as_str(),
        "path": path,
        "normalized_path": normalized.as_str(),
        "host": host,
        "realm": realm_name,
        "matched": matched,
        "detail": match (&matched, other_realm) {
            (Some(_), _) => Value::Null,
            (None, true) => json!("a protected resource of another realm matches"),
            (None, false) => json!("no protected resource matches: the gateway answers its unmatched status"),
        },
    });
    Ok(answer(StatusCode::OK, &body, None))
}

/// The matched resource: what a token needs there, and where it is declared.
fn described(call: &Call<'_>, pr: &crate::model::ProtectedResource, server: &str, pattern: &str) -> Value {
    let source = match call.snap.catalog.get(EntityKind::ProtectedResource, pr.id.as_str()) {
        Some(entry) => match entry.source {
            EntitySource::File(_) => "file",
            EntitySource::Store { .. } => "store",
        },
        None => "built-in",
    };
    let now = call.now;
    json!({
        "id": pr.id.as_str(),
        "resource_server": server,
        "pattern": pattern,
        "auth": pr.auth.as_str(),
        "scopes": pr.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "scope_match": pr.scope_match.as_str(),
        "max_age": pr.max_age,
        "max_token_lifetime": pr.max_token_lifetime,
        "in_force": pr.validity.in_force(now),
        "source": source,
    })
}
