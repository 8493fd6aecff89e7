//! Header rules for forwarding: hop-by-hop removal (RFC 9110 § 7.6.1), `X-Forwarded-*`,
//! claim headers.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

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

/// Appends the client address to `X-Forwarded-For` and sets `X-Forwarded-Proto` and
/// `X-Forwarded-Host` (overwriting client-sent values, which nobody vouches for); removes a
/// client-sent `Forwarded`.
pub fn set_forwarded(headers: &mut HeaderMap, client: IpAddr, proto: &'static str, host: Option<&HeaderValue>) {
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
        HeaderValue::from_static(proto),
    );
    // RFC 7239 `Forwarded` from the client is as unvouched as X-Forwarded-*; we do not
    // emit it, so drop it rather than pass a lie upstream.
    headers.remove(http::header::FORWARDED);
    let xfh = HeaderName::from_static("x-forwarded-host");
    match host {
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
    fn forwarded_for_appends() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        h.insert("forwarded", HeaderValue::from_static("for=1.2.3.4;host=admin.test"));
        set_forwarded(
            &mut h,
            "127.0.0.1".parse().unwrap_or_else(|_| unreachable!()),
            "http",
            None,
        );
        assert_eq!(
            h.get("x-forwarded-for").map(|v| v.as_bytes()),
            Some(&b"10.0.0.1, 127.0.0.1"[..])
        );
        assert!(h.get("forwarded").is_none());
        assert_eq!(h.get("x-forwarded-proto").map(|v| v.as_bytes()), Some(&b"http"[..]));
    }
}
