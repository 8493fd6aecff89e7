//! CORS (the Fetch standard's HTTP-side protocol, § 3.2): recognizing a preflight, deciding
//! it against a resource server's [`Cors`], and the headers of actual responses. Pure: the
//! server's pipeline calls it at `route` (preflights) and before `log` (every answer of a
//! resource server with CORS).

use bytes::Bytes;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;
use thiserror::Error;

use crate::model::{AllowedOrigins, Cors};

/// Why a preflight was refused (answered 403 without any `Access-Control-Allow-*`, so the
/// browser blocks the actual request).
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum PreflightError {
    /// The `Origin` is not among the resource server's origins.
    #[error("origin not allowed")]
    Origin,
    /// `Access-Control-Request-Method` names a method not allowed.
    #[error("method {0} not allowed")]
    Method(Method),
    /// `Access-Control-Request-Headers` names a header not allowed.
    #[error("request header {0:?} not allowed")]
    Header(String),
}

/// The requested method of a CORS preflight: an `OPTIONS` request with an `Origin` and an
/// `Access-Control-Request-Method` (Fetch § 3.2.2). Any other `OPTIONS` is an ordinary
/// request, routed and checked as any other.
pub fn preflight_method(method: &Method, headers: &HeaderMap) -> Option<Method> {
    if method != Method::OPTIONS || !headers.contains_key(ORIGIN) {
        return None;
    }
    let asked = headers.get(ACCESS_CONTROL_REQUEST_METHOD)?;
    Method::from_bytes(asked.as_bytes()).ok()
}

/// Decides a preflight: `204` with the `Access-Control-Allow-*` headers when the origin,
/// the method and every requested header are allowed; else why not.
pub fn preflight(cors: &Cors, headers: &HeaderMap, method: &Method) -> Result<Response<Full<Bytes>>, PreflightError> {
    let allow_origin = headers
        .get(ORIGIN)
        .and_then(|o| allow_origin(cors, o))
        .ok_or(PreflightError::Origin)?;
    // Fetch § 4.8 step 7: a browser lets a safelisted method through whatever the list says,
    // so refusing one would only hide the policy, not enforce it.
    if !cors.methods.contains(method) && !is_safelisted_method(method) {
        return Err(PreflightError::Method(method.clone()));
    }
    for asked in headers.get_all(ACCESS_CONTROL_REQUEST_HEADERS) {
        let asked = asked
            .to_str()
            .map_err(|_| PreflightError::Header("(not text)".into()))?;
        for name in asked.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let allowed =
                is_safelisted_header(name) || cors.headers.iter().any(|h| h.as_str().eq_ignore_ascii_case(name));
            if !allowed {
                return Err(PreflightError::Header(name.chars().take(64).collect()));
            }
        }
    }
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
    h.insert(ACCESS_CONTROL_ALLOW_METHODS, cors.allow_methods.clone());
    if let Some(v) = &cors.allow_headers {
        h.insert(ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
    }
    if let Some(v) = &cors.max_age {
        h.insert(ACCESS_CONTROL_MAX_AGE, v.clone());
    }
    if cors.credentials {
        h.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    }
    h.insert(VARY, PREFLIGHT_VARY);
    Ok(resp)
}

/// Sets the CORS headers of an actual response (any status: a 401 must be readable by the
/// app so it can fetch a token) of a resource server with `cors`, for a request from
/// `origin`.
///
/// NB: the upstream's own `Access-Control-*` headers are removed first, whatever the origin.
/// The gateway's policy is the one the operator configured and the one preflights were
/// answered with; an upstream that reflects every origin (a common framework default) would
/// otherwise open what the gateway's allow-list closes, or two `Allow-Origin` values would
/// make the browser refuse everything.
pub fn decorate(cors: &Cors, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
    for name in [
        ACCESS_CONTROL_ALLOW_ORIGIN,
        ACCESS_CONTROL_ALLOW_CREDENTIALS,
        ACCESS_CONTROL_EXPOSE_HEADERS,
        ACCESS_CONTROL_ALLOW_METHODS,
        ACCESS_CONTROL_ALLOW_HEADERS,
        ACCESS_CONTROL_MAX_AGE,
    ] {
        headers.remove(name);
    }
    // The answer depends on `Origin` whether or not this request had one: a cache must not
    // serve one origin's answer to another (Fetch § 3.2.3 "CORS protocol and HTTP caches").
    add_vary_origin(headers);
    let Some(allow) = origin.and_then(|o| allow_origin(cors, o)) else {
        return;
    };
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allow);
    if cors.credentials {
        headers.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    }
    if let Some(v) = &cors.expose_headers {
        headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
    }
}

/// `Vary` of a preflight answer, allowed or refused: it depends on all three request headers.
pub const PREFLIGHT_VARY: HeaderValue =
    HeaderValue::from_static("Origin, Access-Control-Request-Method, Access-Control-Request-Headers");

/// The `Access-Control-Allow-Origin` for `origin`: `*` when any is allowed (never with
/// credentials: the compiler refuses that), the origin itself when it is listed, else none.
/// NB: the request's origin is only ever echoed after an exact match.
fn allow_origin(cors: &Cors, origin: &HeaderValue) -> Option<HeaderValue> {
    match &cors.origins {
        AllowedOrigins::Any => Some(HeaderValue::from_static("*")),
        AllowedOrigins::Exact(set) => set.get(origin).cloned(),
    }
}

/// Adds `Origin` to `Vary`, keeping what the upstream varies on.
fn add_vary_origin(headers: &mut HeaderMap) {
    let already = headers.get_all(VARY).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|t| matches!(t.trim(), "*") || t.trim().eq_ignore_ascii_case("origin"))
        })
    });
    if !already {
        headers.append(VARY, HeaderValue::from_static("Origin"));
    }
}

/// Fetch § 2.2.1: `GET`, `HEAD`, `POST`.
fn is_safelisted_method(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::POST)
}

/// Headers a browser never lists in `Access-Control-Request-Headers` unless their value is
/// unusual (Fetch § 2.2.2); listed, they are checked like any other, except these three
/// whose values are always safelisted.
fn is_safelisted_header(name: &str) -> bool {
    const ALWAYS: [HeaderName; 3] = [
        http::header::ACCEPT,
        http::header::ACCEPT_LANGUAGE,
        http::header::CONTENT_LANGUAGE,
    ];
    ALWAYS.iter().any(|h| h.as_str().eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn cors(origins: AllowedOrigins, credentials: bool) -> Cors {
        Cors {
            origins,
            methods: vec![Method::GET, Method::PUT],
            headers: vec![http::header::AUTHORIZATION],
            allow_methods: HeaderValue::from_static("GET, PUT"),
            allow_headers: Some(HeaderValue::from_static("authorization")),
            expose_headers: Some(HeaderValue::from_static("x-request-id")),
            credentials,
            max_age: Some(HeaderValue::from(600)),
        }
    }

    fn app() -> AllowedOrigins {
        AllowedOrigins::Exact(HashSet::from([HeaderValue::from_static("https://app.test")]))
    }

    fn asking(origin: &'static str, headers: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ORIGIN, HeaderValue::from_static(origin));
        h.insert(ACCESS_CONTROL_REQUEST_METHOD, HeaderValue::from_static("PUT"));
        h.insert(ACCESS_CONTROL_REQUEST_HEADERS, HeaderValue::from_static(headers));
        h
    }

    #[test]
    fn a_preflight_needs_options_origin_and_a_requested_method() {
        let h = asking("https://app.test", "");
        assert_eq!(preflight_method(&Method::OPTIONS, &h), Some(Method::PUT));
        assert_eq!(preflight_method(&Method::GET, &h), None);
        assert_eq!(preflight_method(&Method::OPTIONS, &HeaderMap::new()), None);
    }

    #[test]
    fn preflights_are_decided_by_origin_method_and_headers() {
        let c = cors(app(), true);
        let ok = preflight(&c, &asking("https://app.test", "Authorization, accept"), &Method::PUT);
        let ok = ok.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.status(), StatusCode::NO_CONTENT);
        assert_eq!(ok.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.test");
        assert_eq!(ok.headers()[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(ok.headers()[ACCESS_CONTROL_MAX_AGE], "600");
        let h = asking("https://evil.test", "");
        assert_eq!(preflight(&c, &h, &Method::PUT).err(), Some(PreflightError::Origin));
        let h = asking("https://app.test", "");
        assert_eq!(
            preflight(&c, &h, &Method::DELETE).err(),
            Some(PreflightError::Method(Method::DELETE))
        );
        assert!(preflight(&c, &h, &Method::POST).is_ok(), "safelisted");
        let h = asking("https://app.test", "authorization, x-secret");
        assert_eq!(
            preflight(&c, &h, &Method::PUT).err(),
            Some(PreflightError::Header("x-secret".into()))
        );
    }

    #[test]
    fn actual_answers_replace_the_upstreams_headers_and_vary_on_origin() {
        let c = cors(app(), false);
        let mut h = HeaderMap::new();
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        h.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
        let origin = HeaderValue::from_static("https://app.test");
        decorate(&c, Some(&origin), &mut h);
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.test");
        assert_eq!(h.get_all(VARY).iter().count(), 2);
        assert!(h.get(ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
        let mut h = HeaderMap::new();
        h.insert(
            ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("https://evil.test"),
        );
        decorate(&c, Some(&HeaderValue::from_static("https://evil.test")), &mut h);
        assert!(h.get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        assert_eq!(h[VARY], "Origin");
        let mut h = HeaderMap::new();
        decorate(&cors(AllowedOrigins::Any, false), Some(&origin), &mut h);
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    }
}
