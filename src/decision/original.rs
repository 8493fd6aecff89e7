//! Reading the original request a forward-auth caller describes, believed only from a
//! trusted proxy: whoever picks the method, host and path picks what gets checked.

use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, Method};

use super::{Asked, Entry};
use crate::routing::check_authority;
use crate::snapshot::Snapshot;

/// The request a proxy asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Original<'r> {
    /// Its method.
    pub method: Method,
    /// Its host (and port), validated as a `Host` is.
    pub host: Option<&'r str>,
    /// Its raw path, without the query: routed exactly as proxy mode routes one.
    pub path: &'r str,
}

/// Why the original request was not read. Every variant is answered `403`: a proxy that
/// cannot say what it forwards gets no permission for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OriginalError {
    /// The peer is not in `trusted_proxies`: its description of the original request
    /// would be the client's choice.
    #[error("the peer is not in trusted_proxies")]
    UntrustedPeer,
    /// A header the entry reads the original request from is absent.
    #[error("no {0} header")]
    Missing(HeaderName),
    /// That header is repeated, or not a method, an origin-form URI or a host.
    #[error("a malformed or repeated {0} header")]
    Malformed(HeaderName),
}

impl OriginalError {
    /// A short label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UntrustedPeer => "untrusted_peer",
            Self::Missing(_) => "no_original_request",
            Self::Malformed(_) => "bad_original_request",
        }
    }
}

const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The original request `asked` describes, as `entry` carries it.
pub(super) fn read<'r>(snap: &'r Snapshot, entry: Entry, asked: &Asked<'r>) -> Result<Original<'r>, OriginalError> {
    // `Entry::of` finds entries only while decision mode is on; were it off, nobody would
    // be trusted to describe a request.
    let d = snap.settings.decision.as_ref().ok_or(OriginalError::UntrustedPeer)?;
    if !snap.settings.trusted_proxies.trusts(asked.peer) {
        return Err(OriginalError::UntrustedPeer);
    }
    let headers = asked.headers;
    match entry {
        Entry::Nginx => Ok(Original {
            method: method(headers, &d.method_header)?,
            host: asked.host,
            path: path(one(headers, &d.uri_header)?, &d.uri_header)?,
        }),
        Entry::Forwarded => {
            let host = match headers.get(X_FORWARDED_HOST) {
                None => asked.host,
                Some(_) => {
                    let h = one(headers, &X_FORWARDED_HOST)?;
                    check_authority(h).map_err(|_| OriginalError::Malformed(X_FORWARDED_HOST))?;
                    Some(h)
                }
            };
            Ok(Original {
                method: method(headers, &X_FORWARDED_METHOD)?,
                host,
                path: path(one(headers, &X_FORWARDED_URI)?, &X_FORWARDED_URI)?,
            })
        }
        // Envoy's request is the original one with the prefix put before its path
        // (`path_prefix`), so only that prefix comes off.
        Entry::Envoy => Ok(Original {
            method: asked.method.clone(),
            host: asked.host,
            // `Entry::of` found it there; were it not, an empty path is refused as unroutable.
            path: super::envoy_original(&d.path, asked.uri.path()).unwrap_or_default(),
        }),
    }
}

/// The one value of header `name`, as text.
fn one<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Result<&'h str, OriginalError> {
    let mut all = headers.get_all(name).iter();
    match (all.next(), all.next()) {
        (None, _) => Err(OriginalError::Missing(name.clone())),
        (Some(v), None) => v.to_str().map_err(|_| OriginalError::Malformed(name.clone())),
        (Some(_), Some(_)) => Err(OriginalError::Malformed(name.clone())),
    }
}

fn method(headers: &HeaderMap, name: &HeaderName) -> Result<Method, OriginalError> {
    Method::from_bytes(one(headers, name)?.as_bytes()).map_err(|_| OriginalError::Malformed(name.clone()))
}

/// The path of an origin-form URI (`/a/b?q`, RFC 9112 § 3.2.1), as a request target's is
/// read; the routing's normalization comes after, as in proxy mode.
fn path<'h>(uri: &'h str, name: &HeaderName) -> Result<&'h str, OriginalError> {
    let bad = || OriginalError::Malformed(name.clone());
    if !uri.starts_with('/') || uri.contains('#') {
        return Err(bad());
    }
    PathAndQuery::try_from(uri).map_err(|_| bad())?;
    Ok(uri.split_once('?').map_or(uri, |(p, _)| p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_form_uri_gives_its_path_and_anything_else_is_refused() {
        let n = X_FORWARDED_URI;
        assert_eq!(path("/items/1?x=1", &n), Ok("/items/1"));
        assert_eq!(path("/items/../admin", &n), Ok("/items/../admin"));
        assert_eq!(path("/", &n), Ok("/"));
        for bad in ["items", "http://evil/items", "", "/a b", "/a#frag", "*"] {
            assert_eq!(path(bad, &n), Err(OriginalError::Malformed(n.clone())), "{bad:?}");
        }
    }

    #[test]
    fn a_header_must_be_there_once() {
        let mut h = HeaderMap::new();
        assert_eq!(
            one(&h, &X_FORWARDED_METHOD),
            Err(OriginalError::Missing(X_FORWARDED_METHOD))
        );
        h.append(X_FORWARDED_METHOD, http::HeaderValue::from_static("GET"));
        assert_eq!(method(&h, &X_FORWARDED_METHOD), Ok(Method::GET));
        h.append(X_FORWARDED_METHOD, http::HeaderValue::from_static("POST"));
        assert_eq!(
            method(&h, &X_FORWARDED_METHOD),
            Err(OriginalError::Malformed(X_FORWARDED_METHOD))
        );
    }
}
