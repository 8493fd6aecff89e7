//! Small synthetic JSON answers: every JSON body the gateway writes itself (refusals, the
//! issuers' answers, the admin listener's) goes through [`json`], so they all carry the same
//! type and caching headers.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

/// `application/json`.
pub const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// `body` as JSON with `status`, never stored by a cache: `Cache-Control: no-store` and
/// `Pragma: no-cache` (RFC 6749 § 5.1 asks both of token answers; the others gain nothing
/// from being cached and may carry state).
pub fn json(status: StatusCode, body: &impl Serialize) -> Response<Full<Bytes>> {
    typed_json(status, JSON, body)
}

/// [`json`] with another JSON media type (e.g. `application/problem+json`, RFC 9457).
pub fn typed_json(status: StatusCode, content_type: HeaderValue, body: &impl Serialize) -> Response<Full<Bytes>> {
    // Serializing our own values cannot fail (no maps with non-string keys); an empty
    // object is still valid JSON if it ever did.
    let mut body = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    // A line of its own: `curl` prints the next prompt on a new line, and logs stay tidy.
    body.push(b'\n');
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, content_type);
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

/// An OAuth-style error body, `{"error": …, "error_description": …}` (RFC 6749 § 5.2,
/// RFC 6750 § 3).
pub fn error(status: StatusCode, error: &str, description: &str) -> Response<Full<Bytes>> {
    #[derive(Serialize)]
    struct Body<'a> {
        error: &'a str,
        error_description: &'a str,
    }
    json(
        status,
        &Body {
            error,
            error_description: description,
        },
    )
}
