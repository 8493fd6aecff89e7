//! The host a request is addressed to, validated once: what routing matches and what
//! `X-Forwarded-Host` carries are the same value, so no spelling routes one way and is read
//! upstream another.
//!
//! RFC 9110 § 7.2: `Host = uri-host [ ":" port ]`. The rules:
//! 1. more than one `Host` field line is refused (RFC 9112 § 3.2), and so is an HTTP/1.1
//!    request without one, whatever its target's form;
//! 2. the target's authority (HTTP/1.1 absolute-form, HTTP/2 `:authority`) wins over `Host`
//!    (RFC 9112 § 3.2.2); a `Host` is still validated;
//! 3. HTTP/2: a `Host` that names another authority than `:authority` is refused
//!    (RFC 9113 § 8.3.1);
//! 4. the host is an IP-literal (`[` IPv6 `]`, no zone, no IPvFuture) or a name of RFC 3986
//!    `unreserved` characters (letters, digits, `-`, `.`, `_`, `~`; an IPv4 address is one
//!    too), then an optional port of 1 to 5 digits up to 65535. So `@`, `/`, `?`, `#`, `\`,
//!    `%`, spaces and quotes are refused, and so are the `reg-name` sub-delims (`,` `;` `!`
//!    `$` `&` `'` `(` `)` `*` `+` `=`): parsers downstream read `,` as a list and `;` as
//!    parameters, and no DNS name needs them;
//! 5. an empty `Host` (RFC 9110 § 7.2: a target without authority) and an HTTP/1.0 request
//!    without one have no host: they match only resources that name none.

use std::borrow::Cow;
use std::net::Ipv6Addr;

use http::header::{HOST, HeaderMap, HeaderValue};
use http::{Uri, Version};
use thiserror::Error;

/// Why a request's host was refused. Every variant is answered `400 Bad Request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HostError {
    /// An HTTP/1.1 request without `Host`.
    #[error("no Host header")]
    Missing,
    /// More than one `Host` field line.
    #[error("more than one Host header")]
    Repeated,
    /// A `Host` or target authority outside the grammar above.
    #[error("malformed Host or authority")]
    Malformed,
    /// An HTTP/2 `Host` naming another authority than `:authority`.
    #[error("Host differs from :authority")]
    Mismatch,
}

/// A request's validated host, as the client wrote it (any case, with its port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHost<'a> {
    text: &'a str,
    /// The `Host` field it came from, if it did: forwarded without a copy.
    field: Option<&'a HeaderValue>,
}

impl<'a> RequestHost<'a> {
    /// The host and optional port, as sent.
    pub fn as_str(&self) -> &'a str {
        self.text
    }

    /// The same as a header value, for `X-Forwarded-Host`.
    pub fn to_header_value(&self) -> Option<HeaderValue> {
        match self.field {
            Some(v) => Some(v.clone()),
            // Validated ASCII without controls: always a valid value.
            None => HeaderValue::from_str(self.text).ok(),
        }
    }
}

/// The host of a request with this `version`, target `uri` and `headers`; `None` when it
/// has none (see the module's rules).
pub fn request_host<'a>(
    version: Version,
    uri: &'a Uri,
    headers: &'a HeaderMap,
) -> Result<Option<RequestHost<'a>>, HostError> {
    let mut fields = headers.get_all(HOST).iter();
    let field = match (fields.next(), fields.next()) {
        (_, Some(_)) => return Err(HostError::Repeated),
        (field, None) => field,
    };
    let field_text = match field {
        Some(v) => Some(v.to_str().map_err(|_| HostError::Malformed)?),
        None => None,
    };
    if let Some(t) = field_text
        && !t.is_empty()
    {
        check(t)?;
    }
    if let Some(authority) = uri.authority() {
        let text = authority.as_str();
        check(text)?;
        if version == Version::HTTP_11 && field.is_none() {
            return Err(HostError::Missing);
        }
        if version == Version::HTTP_2
            && let Some(t) = field_text
            && !t.eq_ignore_ascii_case(text)
        {
            return Err(HostError::Mismatch);
        }
        return Ok(Some(RequestHost { text, field: None }));
    }
    match field_text {
        None if version == Version::HTTP_11 => Err(HostError::Missing),
        None | Some("") => Ok(None),
        Some(text) => Ok(Some(RequestHost { text, field })),
    }
}

/// Whether `authority` (`host[:port]`, as a forwarding header carries it) passes the same
/// rules as a request's own `Host`.
pub fn check_authority(authority: &str) -> Result<(), HostError> {
    check(authority)
}

/// `uri-host [ ":" port ]`, as the module's rule 4 narrows it.
fn check(authority: &str) -> Result<(), HostError> {
    let port = if let Some(rest) = authority.strip_prefix('[') {
        let (literal, after) = rest.split_once(']').ok_or(HostError::Malformed)?;
        // std's parser takes exactly RFC 3986's IPv6address forms: no zone id, no IPvFuture.
        literal.parse::<Ipv6Addr>().map_err(|_| HostError::Malformed)?;
        match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(HostError::Malformed)?),
        }
    } else {
        let (name, port) = match authority.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (authority, None),
        };
        let unreserved = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
        if name.is_empty() || !name.bytes().all(unreserved) {
            return Err(HostError::Malformed);
        }
        port
    };
    match port {
        None => Ok(()),
        // Digits only (`u16::from_str` would take a `+`), and a port that exists.
        Some(p) if (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok() => {
            Ok(())
        }
        Some(_) => Err(HostError::Malformed),
    }
}

/// Lowercase, without port or trailing dot (RFC 9110 § 7.2 `Host = uri-host [ ":" port ]`).
/// Borrowed when already so, as clients send it nearly always.
pub fn host_name(host: &str) -> Cow<'_, str> {
    let h = if host.starts_with('[') {
        host.split_once(']').map_or(host, |(a, _)| a).trim_start_matches('[')
    } else {
        host.rsplit_once(':').map_or(host, |(a, _)| a)
    };
    let h = h.trim_end_matches('.');
    if h.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(h.to_ascii_lowercase())
    } else {
        Cow::Borrowed(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_of(version: Version, target: &str, hosts: &[&str]) -> Result<Option<String>, HostError> {
        let uri: Uri = target.parse().unwrap_or_else(|e| panic!("{target}: {e}"));
        let mut headers = HeaderMap::new();
        for h in hosts {
            headers.append(HOST, HeaderValue::from_str(h).unwrap_or_else(|e| panic!("{h}: {e}")));
        }
        request_host(version, &uri, &headers).map(|h| h.map(|h| h.as_str().to_owned()))
    }

    fn h11(host: &str) -> Result<Option<String>, HostError> {
        host_of(Version::HTTP_11, "/", &[host])
    }

    #[test]
    fn well_formed_hosts_are_kept_as_sent() {
        for host in [
            "a",
            "Admin.Internal",
            "admin.internal.",
            "admin.internal:8443",
            "127.0.0.1",
            "127.0.0.1:1",
            "999.1.1.1",
            "[::1]",
            "[::1]:65535",
            "[2001:db8::a:1]",
            "[::ffff:10.0.0.1]:80",
            "under_score.test",
            "tilde~.test",
            "xn--caf-dma.test",
        ] {
            assert_eq!(h11(host), Ok(Some(host.to_owned())), "{host}");
        }
    }

    #[test]
    fn malformed_hosts_are_refused() {
        for host in [
            "a@b",
            "a/b",
            "a?b",
            "a#b",
            "a\\b",
            "a%2eb",
            "a,b",
            "a;b",
            "a b",
            "a!b",
            "a$b",
            "a&b",
            "a'b",
            "a(b)",
            "a*b",
            "a+b",
            "a=b",
            "\"a\"",
            ":80",
            "a:",
            "a:0x50",
            "a:+80",
            "a:65536",
            "a:000080",
            "a:80:80",
            "a:80@b",
            "[::1",
            "[::1]x",
            "[::1]:",
            "[::1]:x",
            "[a.b]",
            "[v1.a]",
            "[fe80::1%25eth0]",
            "[1.2.3.4]",
            "::1",
            "café.test",
        ] {
            assert_eq!(h11(host), Err(HostError::Malformed), "{host}");
        }
    }

    #[test]
    fn presence_and_repetition() {
        assert_eq!(host_of(Version::HTTP_11, "/", &[]), Err(HostError::Missing));
        assert_eq!(host_of(Version::HTTP_11, "/", &["a", "a"]), Err(HostError::Repeated));
        assert_eq!(host_of(Version::HTTP_2, "/", &["a", "b"]), Err(HostError::Repeated));
        // HTTP/1.0 may omit it; an empty Host names no host.
        assert_eq!(host_of(Version::HTTP_10, "/", &[]), Ok(None));
        assert_eq!(host_of(Version::HTTP_11, "/", &[""]), Ok(None));
        // HTTP/2 without :authority falls back to Host, or has none.
        assert_eq!(host_of(Version::HTTP_2, "/", &["a:1"]), Ok(Some("a:1".to_owned())));
        assert_eq!(host_of(Version::HTTP_2, "/", &[]), Ok(None));
    }

    #[test]
    fn the_targets_authority_wins_and_must_agree_in_http2() {
        // HTTP/1.1 absolute-form: the target's authority, though Host says otherwise...
        assert_eq!(
            host_of(Version::HTTP_11, "http://a.test/x", &["b.test"]),
            Ok(Some("a.test".to_owned()))
        );
        // ...but Host must still be there, once, and well-formed.
        assert_eq!(
            host_of(Version::HTTP_11, "http://a.test/x", &[]),
            Err(HostError::Missing)
        );
        assert_eq!(
            host_of(Version::HTTP_11, "http://a.test/x", &["b@c"]),
            Err(HostError::Malformed)
        );
        assert_eq!(
            host_of(Version::HTTP_11, "http://u@a.test/x", &["a.test"]),
            Err(HostError::Malformed)
        );
        // HTTP/2: :authority alone, or with a Host naming the same.
        assert_eq!(
            host_of(Version::HTTP_2, "http://a.test:8443/x", &[]),
            Ok(Some("a.test:8443".to_owned()))
        );
        assert_eq!(
            host_of(Version::HTTP_2, "http://a.test:8443/x", &["A.Test:8443"]),
            Ok(Some("a.test:8443".to_owned()))
        );
        assert_eq!(
            host_of(Version::HTTP_2, "http://a.test:8443/x", &["b.test"]),
            Err(HostError::Mismatch)
        );
        assert_eq!(
            host_of(Version::HTTP_2, "http://a.test/x", &["a.test:443"]),
            Err(HostError::Mismatch)
        );
    }

    #[test]
    fn a_host_field_is_forwarded_without_a_copy() {
        let uri: Uri = "/".parse().unwrap_or_else(|e| panic!("{e}"));
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("a.test:80"));
        let host = request_host(Version::HTTP_11, &uri, &headers)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no host"));
        assert_eq!(host.to_header_value(), Some(HeaderValue::from_static("a.test:80")));
    }

    #[test]
    fn host_names() {
        assert_eq!(host_name("API.Example.com:8443"), "api.example.com");
        assert_eq!(host_name("example.com."), "example.com");
        assert_eq!(host_name("[::1]:80"), "::1");
    }
}
