//! Header rules for forwarding, in the order [`prepare_request`] applies them:
//!
//! 1. what the client sent that does not go on is removed: hop-by-hop headers and every
//!    header `Connection` names (RFC 9110 § 7.6.1), every header whose name has a `_`, and
//!    `Host`;
//! 2. then the gateway's own are set: `X-Forwarded-*`, `X-Request-Id`, `traceparent` (and
//!    a client's `tracestate` removed when its trace was not continued), the claim headers;
//!    being set last, none of them can be removed or forged by anything the client sent
//!    (not even a `Connection` token naming it);
//! 3. `Authorization` goes when the resource server does not keep it.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::model::ResourceServer;

/// `X-Request-Id`: the request's id, passed upstream and returned to the client.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// `traceparent` (W3C Trace Context § 3.2).
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// `tracestate` (W3C Trace Context § 3.3).
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// What the gateway itself vouches for about a request it forwards.
#[derive(Debug)]
pub struct Provenance<'a> {
    /// The client's address: appended to `X-Forwarded-For`.
    pub client: IpAddr,
    /// The listener's scheme: `X-Forwarded-Proto`.
    pub proto: &'static str,
    /// The request's validated host, as sent (`Host` or the target's authority):
    /// `X-Forwarded-Host`. `None` removes a client-sent one.
    pub host: Option<HeaderValue>,
    /// The request's id: `X-Request-Id`.
    pub request_id: &'a HeaderValue,
    /// The W3C `traceparent` naming the gateway's span (`server::trace`).
    pub traceparent: &'a HeaderValue,
    /// Whether the client's trace was continued; if not, its `tracestate` is dropped.
    pub keep_tracestate: bool,
    /// Whether the peer is a trusted proxy: its `X-Forwarded-Host` and `Forwarded` are
    /// passed on (its `X-Forwarded-Proto` is `proto` already).
    pub via_trusted_proxy: bool,
}

/// Turns the client's headers into the upstream's: see the module's rules.
pub(super) fn prepare_request(
    headers: &mut HeaderMap,
    from: &Provenance<'_>,
    rs: &ResourceServer,
    claim_headers: &[(HeaderName, HeaderValue)],
) {
    strip_hop_by_hop(headers);
    drop_underscored(headers);
    // The client reaches the upstream by its own name; hyper sets Host from the URI.
    headers.remove(header::HOST);
    set_forwarded(headers, from);
    headers.insert(X_REQUEST_ID, from.request_id.clone());
    headers.insert(TRACEPARENT, from.traceparent.clone());
    if !from.keep_tracestate {
        headers.remove(TRACESTATE);
    }
    for ch in &rs.claim_headers {
        headers.remove(&ch.header);
    }
    for (name, value) in claim_headers {
        headers.insert(name.clone(), value.clone());
    }
    if !rs.keep_authorization {
        headers.remove(header::AUTHORIZATION);
    }
}

/// Removes every header whose name has a `_` (as nginx does by default,
/// `underscores_in_headers off`). CGI, WSGI and many frameworks map `-` and `_` alike to
/// `_` (`HTTP_X_AUTH_SCOPE`), so `X_Auth_Scope` would pass as the claim header
/// `X-Auth-Scope`, and `Transfer_Encoding` or `Content_Length` as framing.
pub fn drop_underscored(headers: &mut HeaderMap) {
    fn underscored(name: &HeaderName) -> bool {
        name.as_str().as_bytes().contains(&b'_')
    }
    // The common case: one pass over the names, nothing allocated.
    if !headers.keys().any(underscored) {
        return;
    }
    let names: Vec<HeaderName> = headers.keys().filter(|n| underscored(n)).cloned().collect();
    for name in names {
        headers.remove(name);
    }
}

/// Hop-by-hop headers (RFC 9110 § 7.6.1, plus the legacy ones proxies still see).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Removes hop-by-hop headers and every header the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

/// Appends the peer's address to `X-Forwarded-For` and sets `X-Forwarded-Proto` and
/// `X-Forwarded-Host`, overwriting client-sent values, which nobody vouches for, and removes
/// a client-sent `Forwarded`; from a trusted proxy, its `X-Forwarded-Host` and `Forwarded`
/// are kept.
pub fn set_forwarded(headers: &mut HeaderMap, from: &Provenance<'_>) {
    let client = from.client;
    let xff = HeaderName::from_static("x-forwarded-for");
    let prior: Vec<&str> = headers.get_all(&xff).iter().filter_map(|v| v.to_str().ok()).collect();
    let value = if prior.is_empty() {
        client.to_string()
    } else {
        format!("{}, {client}", prior.join(", "))
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(xff, v);
    }
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static(from.proto),
    );
    let xfh = HeaderName::from_static("x-forwarded-host");
    if from.via_trusted_proxy {
        if !headers.contains_key(&xfh)
            && let Some(h) = &from.host
        {
            headers.insert(xfh, h.clone());
        }
        return;
    }
    // RFC 7239 `Forwarded` from the client is as unvouched as X-Forwarded-*; we do not
    // emit it, so drop it rather than pass a lie upstream.
    headers.remove(http::header::FORWARDED);
    match &from.host {
        Some(h) => {
            headers.insert(xfh, h.clone());
        }
        None => {
            headers.remove(xfh);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("close, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert!(h.get("x-secret").is_none());
        assert!(h.get("keep-alive").is_none());
        assert!(h.get(header::TE).is_none());
        assert!(h.get(header::CONNECTION).is_none());
        assert!(h.get("x-kept").is_some());
    }

    #[test]
    fn underscored_names_are_dropped() {
        let mut h = HeaderMap::new();
        for name in ["x_auth_scope", "transfer_encoding", "content_length", "_", "a_b_c"] {
            h.append(name, HeaderValue::from_static("x"));
            h.append(name, HeaderValue::from_static("y"));
        }
        h.insert("x-auth-scope", HeaderValue::from_static("read"));
        drop_underscored(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h.get("x-auth-scope").map(|v| v.as_bytes()), Some(&b"read"[..]));
    }

    #[test]
    fn forwarded_for_appends() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        h.insert("forwarded", HeaderValue::from_static("for=1.2.3.4;host=admin.test"));
        let id = HeaderValue::from_static("r1");
        let mut from = Provenance {
            client: "127.0.0.1".parse().unwrap_or_else(|_| unreachable!()),
            proto: "http",
            host: None,
            request_id: &id,
            traceparent: &id,
            keep_tracestate: false,
            via_trusted_proxy: false,
        };
        let mut untrusted = h.clone();
        set_forwarded(&mut untrusted, &from);
        assert_eq!(
            untrusted.get("x-forwarded-for").map(|v| v.as_bytes()),
            Some(&b"10.0.0.1, 127.0.0.1"[..])
        );
        assert!(untrusted.get("forwarded").is_none());
        assert_eq!(
            untrusted.get("x-forwarded-proto").map(|v| v.as_bytes()),
            Some(&b"http"[..])
        );
        // From a trusted proxy: its Forwarded and X-Forwarded-Host stay; the proto is the
        // one it vouched for (resolved before, and passed in).
        h.insert("x-forwarded-host", HeaderValue::from_static("api.example"));
        from.via_trusted_proxy = true;
        from.proto = "https";
        set_forwarded(&mut h, &from);
        assert_eq!(
            h.get("forwarded").map(|v| v.as_bytes()),
            Some(&b"for=1.2.3.4;host=admin.test"[..])
        );
        assert_eq!(
            h.get("x-forwarded-host").map(|v| v.as_bytes()),
            Some(&b"api.example"[..])
        );
        assert_eq!(h.get("x-forwarded-proto").map(|v| v.as_bytes()), Some(&b"https"[..]));
    }
}
