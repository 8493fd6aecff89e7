//! Who sent a request. The connection's peer, unless the peer is one of `trusted_proxies`
//! (a TLS-terminating load balancer, an ingress): then the forwarding headers it set are
//! believed, and the client is the first hop, counted from the right of `X-Forwarded-For`
//! (else RFC 7239 `Forwarded`), that is not itself a trusted proxy. Each proxy appends the
//! address it got the request from, so only the hops our own proxies appended are vouched
//! for; anything further left came from the client and may be invented (RFC 7239 § 8.3).
//! From a trusted peer, `X-Forwarded-Proto` (else `Forwarded: proto=`) is believed too.

use std::net::IpAddr;

use http::header::FORWARDED;
use http::{HeaderMap, HeaderName};

use crate::model::TrustedProxies;

/// Where a request came from, as far as the gateway can vouch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Client {
    /// The client's address: logged, throttled by, and appended upstream as the hop before
    /// us when the peer is a proxy.
    pub ip: IpAddr,
    /// The scheme the client used: the listener's, or a trusted proxy's `X-Forwarded-Proto`.
    pub proto: &'static str,
    /// Whether the peer is a trusted proxy (its forwarding headers are passed on).
    pub via_trusted_proxy: bool,
}

/// The client of a request from `peer` on a listener of scheme `proto`.
pub(crate) fn client(trusted: &TrustedProxies, peer: IpAddr, proto: &'static str, headers: &HeaderMap) -> Client {
    // NB: the common case (no trusted proxies) reads no header.
    if trusted.is_empty() || !trusted.trusts(peer) {
        return Client {
            ip: peer,
            proto,
            via_trusted_proxy: false,
        };
    }
    let xff = HeaderName::from_static("x-forwarded-for");
    let hops: Vec<Option<IpAddr>> = if headers.contains_key(&xff) {
        headers
            .get_all(&xff)
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("?").split(','))
            .map(|h| h.trim().parse().ok())
            .collect()
    } else {
        headers
            .get_all(FORWARDED)
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("for=?").split(','))
            .filter_map(|element| param(element, "for"))
            .map(|node| forwarded_node(&node))
            .collect()
    };
    let ip = first_untrusted(trusted, peer, &hops);
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            headers
                .get_all(FORWARDED)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .filter_map(|v| v.split(',').next_back())
                .find_map(|e| param(e, "proto"))
        })
        .and_then(|p| scheme(p.trim()))
        .unwrap_or(proto);
    Client {
        ip,
        proto,
        via_trusted_proxy: true,
    }
}

/// From the right: the first hop that is not a trusted proxy. An unreadable hop ends the
/// walk at the last one read (it cannot be vouched for, nor can anything left of it); when
/// every hop is trusted, the leftmost one.
fn first_untrusted(trusted: &TrustedProxies, peer: IpAddr, hops: &[Option<IpAddr>]) -> IpAddr {
    let mut last = peer;
    for hop in hops.iter().rev() {
        match hop {
            Some(ip) if trusted.trusts(*ip) => last = *ip,
            Some(ip) => return *ip,
            None => return last,
        }
    }
    last
}

/// The value of parameter `name` in one `Forwarded` element (`for=…;proto=…`), unquoted.
fn param(element: &str, name: &str) -> Option<String> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// A `Forwarded` node (`192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]:4711`) as an address;
/// `None` for `unknown`, an obfuscated `_name` or anything else.
fn forwarded_node(node: &str) -> Option<IpAddr> {
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    let host = match node.split_once(':') {
        Some((h, _)) if !node[h.len() + 1..].contains(':') => h,
        _ => node,
    };
    host.parse().ok()
}

/// `http` or `https`, case-insensitively.
fn scheme(p: &str) -> Option<&'static str> {
    if p.eq_ignore_ascii_case("https") {
        Some("https")
    } else if p.eq_ignore_ascii_case("http") {
        Some("http")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn trusted(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().filter_map(|c| c.parse().ok()).collect())
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let t = trusted(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "1.2.3.4"), ("x-forwarded-proto", "https")]);
        let c = client(&t, ip("192.0.2.9"), "http", &h);
        assert_eq!((c.ip, c.proto, c.via_trusted_proxy), (ip("192.0.2.9"), "http", false));
    }

    #[test]
    fn behind_trusted_proxies_the_first_untrusted_hop_from_the_right() {
        let t = trusted(&["10.0.0.0/8"]);
        // The client invented 6.6.6.6; 198.51.100.7 reached our first proxy, 10.1.1.1 the next.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 198.51.100.7"),
            ("x-forwarded-for", "10.1.1.1"),
            ("x-forwarded-proto", "HTTPS"),
        ]);
        let c = client(&t, ip("10.0.0.5"), "http", &h);
        assert_eq!(
            (c.ip, c.proto, c.via_trusted_proxy),
            (ip("198.51.100.7"), "https", true)
        );
    }

    #[test]
    fn all_hops_trusted_gives_the_leftmost_and_garbage_stops_the_walk() {
        let t = trusted(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "10.9.9.9, 10.1.1.1")]);
        assert_eq!(client(&t, ip("10.0.0.5"), "http", &h).ip, ip("10.9.9.9"));
        let h = headers(&[("x-forwarded-for", "203.0.113.1, not-an-ip, 10.1.1.1")]);
        assert_eq!(client(&t, ip("10.0.0.5"), "http", &h).ip, ip("10.1.1.1"));
        // No header at all: the proxy itself.
        assert_eq!(client(&t, ip("10.0.0.5"), "http", &HeaderMap::new()).ip, ip("10.0.0.5"));
    }

    #[test]
    fn rfc_7239_forwarded_when_there_is_no_x_forwarded_for() {
        let t = trusted(&["10.0.0.0/8", "2001:db8:ffff::/48"]);
        let h = headers(&[(
            "forwarded",
            "for=192.0.2.60;proto=http, for=\"[2001:db8:cafe::17]:4711\";proto=https",
        )]);
        let c = client(&t, ip("10.0.0.5"), "http", &h);
        assert_eq!((c.ip, c.proto), (ip("2001:db8:cafe::17"), "https"));
        let h = headers(&[("forwarded", "for=unknown, for=10.2.2.2")]);
        assert_eq!(client(&t, ip("10.0.0.5"), "http", &h).ip, ip("10.2.2.2"));
        let h = headers(&[("forwarded", "for=\"_hidden\";proto=ftp")]);
        let c = client(&t, ip("10.0.0.5"), "https", &h);
        assert_eq!((c.ip, c.proto), (ip("10.0.0.5"), "https"));
    }
}
