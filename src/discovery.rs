//! RFC 9728 protected resource metadata: for each resource server, the document clients
//! discover its authorization server from, the local path it is served at, and the URL every
//! challenge of the resource server points to (`resource_metadata`, RFC 9728 § 5.1). Built
//! once per snapshot from the compiled configuration, never from a request: the origin is
//! `[server] public_url`, never `Host`.

use bytes::Bytes;
use http::header::ALLOW;
use http::{HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

use crate::model::ResourceServer;
use crate::respond;
use crate::routing::host_name;

/// The well-known suffix (RFC 9728 § 3).
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// One resource server's metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceMetadata {
    /// The absolute URL of the document: `public_url` + [`Self::path`]. Every challenge of
    /// the resource server carries it as `resource_metadata`.
    pub url: Box<str>,
    /// Where the gateway serves it: [`WELL_KNOWN`] inserted before the audience's path
    /// (RFC 9728 § 3.1), so `https://gw.example.com/mcp` is described at
    /// `/.well-known/oauth-protected-resource/mcp`.
    pub path: Box<str>,
    /// The audience's host name (lowercase, no port): which of several resource servers whose
    /// audiences share a path a request for that path means.
    pub host: Box<str>,
    /// The document (RFC 9728 § 2).
    pub document: Value,
}

/// The metadata of `rs`, a resource server whose tokens `issuer` issues, served under
/// `public_url`; `None` when its audience is not an `http(s)` URL without query or fragment
/// (RFC 9728 § 1.2: a resource identifier is such a URL), so there is no path to describe
/// it at.
pub fn describe(public_url: &str, rs: &ResourceServer, issuer: &str) -> Option<ResourceMetadata> {
    let aud = rs.audience.as_str();
    let uri: http::Uri = aud.parse().ok()?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    if !scheme_ok || uri.query().is_some() || aud.contains('#') {
        return None;
    }
    let host = host_name(uri.authority()?.as_str()).into_owned();
    // § 3.1: "any terminating slash (/) following the path component MUST be removed before
    // inserting /.well-known/ and the well-known URI suffix".
    let path = format!("{WELL_KNOWN}{}", uri.path().trim_end_matches('/'));
    let mut document = json!({
        // § 3.3: identical to the resource identifier, which is the audience exactly, so a
        // client's check of one against the other, and the token's `aud`, agree.
        "resource": aud,
        "authorization_servers": [issuer],
        // The gateway reads tokens from `Authorization: Bearer` only (RFC 6750 § 2.1).
        "bearer_methods_supported": ["header"],
    });
    if !rs.scopes.is_empty() {
        document["scopes_supported"] = rs.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().into();
    }
    if !rs.name.is_empty() {
        document["resource_name"] = rs.name.as_str().into();
    }
    // NB: `resource_signing_alg_values_supported` (§ 2) lists the algorithms the resource
    // signs its *responses* with, not those of the tokens it accepts; the gateway signs no
    // response, so it is left out rather than filled with the token algorithms.
    Some(ResourceMetadata {
        url: format!("{public_url}{path}").into(),
        path: path.into(),
        host: host.into(),
        document,
    })
}

/// The answer to a request for metadata `m`: the document to `GET` and `HEAD`, `405`
/// otherwise.
pub fn answer(method: &Method, m: &ResourceMetadata) -> Response<Full<Bytes>> {
    if method == Method::GET || method == Method::HEAD {
        return respond::json(StatusCode::OK, &m.document);
    }
    let mut resp = respond::error(StatusCode::METHOD_NOT_ALLOWED, "invalid_request", "method not allowed");
    resp.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://idp.test";

    fn server(aud: &str, scopes: &[&str]) -> ResourceServer {
        ResourceServer {
            name: "Orders API".into(),
            ..ResourceServer::example(aud, scopes)
        }
    }

    fn described(aud: &str, scopes: &[&str]) -> ResourceMetadata {
        describe("https://gw.test", &server(aud, scopes), ISSUER).unwrap_or_else(|| panic!("{aud}: no metadata"))
    }

    #[test]
    fn the_well_known_suffix_goes_before_the_audience_path_without_its_final_slash() {
        let m = described("https://GW.test:8443/mcp/", &["read"]);
        assert_eq!(&*m.path, "/.well-known/oauth-protected-resource/mcp");
        assert_eq!(&*m.url, "https://gw.test/.well-known/oauth-protected-resource/mcp");
        assert_eq!(&*m.host, "gw.test");
        assert_eq!(
            m.document,
            json!({
                "resource": "https://GW.test:8443/mcp/",
                "authorization_servers": [ISSUER],
                "bearer_methods_supported": ["header"],
                "scopes_supported": ["read"],
                "resource_name": "Orders API",
            })
        );
        assert_eq!(&*described("https://api.test", &[]).path, WELL_KNOWN);
        assert_eq!(&*described("https://api.test/", &[]).path, WELL_KNOWN);
    }

    #[test]
    fn an_audience_that_is_no_http_url_has_no_metadata() {
        for aud in [
            "urn:example:orders",
            "orders",
            "https://api.test/x?y=1",
            "ftp://api.test/x",
        ] {
            assert_eq!(describe("https://gw.test", &server(aud, &[]), ISSUER), None, "{aud}");
        }
    }

    #[test]
    fn scopes_are_listed_only_when_there_are_some() {
        assert_eq!(
            described("https://api.test/a", &[]).document.get("scopes_supported"),
            None
        );
    }
}
