//! The one place that turns a refusal or a failure into an HTTP answer: RFC 6750 § 3
//! challenges (with RFC 9728 § 5.1 `resource_metadata`), RFC 9470 § 3 step-up, and small
//! JSON bodies (`error`, `error_description`). Details go to the log; the client gets the
//! RFC answer and nothing that helps an attacker.

use bytes::Bytes;
use http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::cors::PreflightError;
use crate::model::ResourceRef;
use crate::proxy::UpstreamError;
use crate::respond;
use crate::routing::HostError;
use crate::snapshot::Snapshot;
use crate::token::{Answer, TokenError};
use crate::verifier::Denied;

/// The answer to a refused request.
pub fn refusal(denied: &Denied, snap: &Snapshot) -> Response<Full<Bytes>> {
    match denied {
        Denied::BadPath(_) => respond::error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the request path is not acceptable",
        ),
        Denied::NoRoute => respond::error(
            snap.settings.unmatched_status,
            "not_found",
            "no protected resource matches this request",
        ),
        Denied::NotInForce { .. } => respond::error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no protected resource matches this request",
        ),
        Denied::Token { resource, error } => token_refusal(error, *resource, snap),
    }
}

fn token_refusal(error: &TokenError, resource: ResourceRef, snap: &Snapshot) -> Response<Full<Bytes>> {
    let pr = &snap.resources[resource];
    let rs = &snap.resource_servers[pr.resource_server];
    let realm = snap.realms[rs.realm].name.as_str();
    let description = error.description();
    // Realm names are validated at load (no quotes, no backslashes), so they need no escaping.
    let (status, code, challenge) = match error.answer() {
        Answer::NoToken => (
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!("Bearer realm=\"{realm}\""),
        ),
        Answer::InvalidRequest => (
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("Bearer realm=\"{realm}\", error=\"invalid_request\", error_description=\"{description}\""),
        ),
        Answer::InvalidToken => (
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            format!("Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{description}\""),
        ),
        Answer::InsufficientScope => (
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            format!(
                "Bearer realm=\"{realm}\", error=\"insufficient_scope\", error_description=\"{description}\", scope=\"{}\"",
                pr.scopes.to_space_separated()
            ),
        ),
        Answer::InsufficientUserAuthentication { max_age } => (
            StatusCode::UNAUTHORIZED,
            "insufficient_user_authentication",
            format!(
                "Bearer realm=\"{realm}\", error=\"insufficient_user_authentication\", error_description=\"{description}\", max_age={max_age}"
            ),
        ),
        Answer::KeysUnavailable => {
            let mut resp = respond::error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", description);
            resp.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("5"));
            return resp;
        }
    };
    // RFC 9728 § 5.1: every challenge says where the resource's metadata is, so a client can
    // find the authorization server to ask for a token (the URL was built with the snapshot).
    let challenge = match &rs.metadata {
        Some(m) => format!("{challenge}, resource_metadata=\"{}\"", m.url),
        None => challenge,
    };
    let mut resp = respond::error(status, code, description);
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(WWW_AUTHENTICATE, v);
    }
    resp
}

/// The answer to a request without one well-formed host (RFC 9112 § 3.2: "A server MUST
/// respond with a 400 (Bad Request) status code to any HTTP/1.1 request message that lacks a
/// Host header field and to any request message that contains more than one Host header
/// field line or a Host header field with an invalid field value"). The precise reason goes
/// to the log.
pub fn bad_host(_error: &HostError) -> Response<Full<Bytes>> {
    respond::error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "the request's host is missing, repeated or malformed",
    )
}

/// The answer to a refused CORS preflight: `403` without any `Access-Control-Allow-*`, so
/// the browser never sends the actual request; an empty body (the browser shows its script
/// nothing of it). Why goes to the log.
pub fn preflight_refused(_error: &PreflightError) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::FORBIDDEN;
    resp.headers_mut()
        .insert(http::header::VARY, crate::cors::PREFLIGHT_VARY);
    resp
}

/// The answer to a failed forward: `504` when the upstream was too slow, `502` when it
/// failed otherwise; `413` or `400` when the client's body was the cause.
pub fn upstream_failure(error: &UpstreamError) -> Response<Full<Bytes>> {
    match error {
        UpstreamError::Timeout(_) | UpstreamError::ConnectTimeout => respond::error(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            "the upstream did not answer in time",
        ),
        // The client's fault, not the upstream's (pingora: the error's source picks the status).
        UpstreamError::BodyTooLarge => body_too_large(),
        UpstreamError::BadRequestBody(_) | UpstreamError::ClientAborted(_) => bad_body(),
        UpstreamError::Unreachable(_) | UpstreamError::Request(_) => respond::error(
            StatusCode::BAD_GATEWAY,
            "upstream_unavailable",
            "the upstream could not be reached",
        ),
    }
}

/// The answer to a request body longer than the resource server's `max_body_bytes`
/// (RFC 9110 § 15.5.14). The connection closes: the rest of the body is never read.
pub fn body_too_large() -> Response<Full<Bytes>> {
    let mut resp = respond::error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "request_too_large",
        "the request body is too large",
    );
    resp.headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// The answer to a request body that was malformed or ended early (RFC 9112 § 8, incomplete
/// messages). The connection closes: its framing can no longer be trusted. A client that
/// went away never reads it.
fn bad_body() -> Response<Full<Bytes>> {
    let mut resp = respond::error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "the request body is malformed or incomplete",
    );
    resp.headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    resp
}
