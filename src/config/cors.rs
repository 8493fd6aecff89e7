//! Compiling `[resource_server.cors]`: origins, methods and headers checked and rendered
//! once, so a request only compares bytes (Fetch standard § 3.2).

use std::collections::HashSet;

use http::{HeaderName, HeaderValue, Method, Uri};

use super::raw::RawCors;
use super::report::Entity;
use crate::model::{AllowedOrigins, Cors};

/// Methods a preflight may ask for when `methods` is left out: the CORS-safelisted ones.
const DEFAULT_METHODS: [Method; 3] = [Method::GET, Method::HEAD, Method::POST];

/// Headers a preflight may ask for when `headers` is left out: a bearer token and a JSON
/// body, what a browser app calling a protected API sends.
const DEFAULT_HEADERS: [&str; 2] = ["authorization", "content-type"];

/// Compiles the `cors` table of a resource server; `None` when there is none (CORS off).
pub(super) fn compile(e: &mut Entity<'_, '_>, raw: Option<&RawCors>) -> Option<Cors> {
    let raw = raw?;
    let credentials = raw.credentials.unwrap_or(false);
    let origins = origins(e, raw.origins.as_deref(), credentials);
    let methods = match raw.methods.as_deref() {
        None => DEFAULT_METHODS.to_vec(),
        Some(ms) => methods(e, ms),
    };
    let headers = match raw.headers.as_deref() {
        None => DEFAULT_HEADERS.iter().map(|h| HeaderName::from_static(h)).collect(),
        Some(hs) => names(e, "cors.headers", hs),
    };
    let expose = names(
        e,
        "cors.expose_headers",
        raw.expose_headers.as_deref().unwrap_or_default(),
    );
    let max_age = e
        .seconds("cors.max_age", &raw.max_age)
        .map(|s| HeaderValue::from(s.max(0)));
    Some(Cors {
        origins: origins?,
        allow_methods: join(methods.iter().map(Method::as_str))?,
        allow_headers: join(headers.iter().map(HeaderName::as_str)),
        expose_headers: join(expose.iter().map(HeaderName::as_str)),
        methods,
        headers,
        credentials,
        max_age,
    })
}

/// `origins`: required; `["*"]` alone, or serialized origins as a browser sends them.
fn origins(e: &mut Entity<'_, '_>, list: Option<&[String]>, credentials: bool) -> Option<AllowedOrigins> {
    const FIELD: &str = "cors.origins";
    let Some(list) = list.filter(|l| !l.is_empty()) else {
        e.err(FIELD, "is required: list the origins allowed, or [\"*\"] for any");
        return None;
    };
    if list.iter().any(|o| o == "*") {
        if list.len() > 1 {
            e.err(FIELD, "\"*\" allows any origin and stands alone");
            return None;
        }
        // Fetch § 3.2.5: `Access-Control-Allow-Origin: *` never satisfies a credentialed
        // request, and reflecting any origin with credentials would let every site act as
        // the user.
        if credentials {
            e.err(
                FIELD,
                "\"*\" cannot be used with credentials = true (Fetch standard § 3.2.5); list the origins",
            );
            return None;
        }
        return Some(AllowedOrigins::Any);
    }
    let mut set = HashSet::new();
    for o in list {
        match origin(o) {
            Ok(v) => {
                set.insert(v);
            }
            Err(why) => e.err(FIELD, format!("{o:?} {why}")),
        }
    }
    Some(AllowedOrigins::Exact(set))
}

/// One origin, exactly as a browser serializes it (RFC 6454 § 6.1): lowercase scheme and
/// host, a port only when not the scheme's default, no path. Anything else could never
/// match a request's `Origin`, so it is an error rather than a dead entry.
fn origin(text: &str) -> Result<HeaderValue, String> {
    if text == "null" {
        // Sandboxed frames, file: pages and redirects all send `null`: allowing it allows
        // them all.
        return Err("is the opaque origin, which any sandboxed page can send".into());
    }
    let uri: Uri = text
        .parse()
        .map_err(|_| "is not an origin (scheme://host[:port])".to_owned())?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err("is not an origin (scheme://host[:port])".into());
    };
    if authority.as_str().contains('@') || !matches!(uri.path_and_query().map(|p| p.as_str()), None | Some("" | "/")) {
        return Err("is not an origin: no user, path or query".into());
    }
    let default_port = match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    };
    let port = authority.port_u16().filter(|p| Some(*p) != default_port);
    let host = authority.host().to_ascii_lowercase();
    let canonical = match port {
        Some(p) => format!("{}://{host}:{p}", scheme.to_ascii_lowercase()),
        None => format!("{}://{host}", scheme.to_ascii_lowercase()),
    };
    if canonical != text {
        return Err(format!("is not as a browser sends it; write {canonical:?}"));
    }
    HeaderValue::from_str(&canonical).map_err(|_| "is not a header value".to_owned())
}

/// `cors.methods`: method tokens (uppercased), without repeats.
fn methods(e: &mut Entity<'_, '_>, list: &[String]) -> Vec<Method> {
    let mut out = Vec::new();
    for m in list {
        match Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
            Ok(method) if !out.contains(&method) => out.push(method),
            Ok(_) => {}
            Err(_) => e.err("cors.methods", format!("{m:?} is not a method token (RFC 9110 § 9.1)")),
        }
    }
    if out.is_empty() {
        e.err("cors.methods", "must list at least one method, or be left out");
    }
    out
}

/// Header names (lowercased), without repeats; `*` is refused, the names are listed
/// (Fetch's `*` never covers `Authorization`, and means nothing with credentials).
fn names(e: &mut Entity<'_, '_>, field: &str, list: &[String]) -> Vec<HeaderName> {
    let mut out = Vec::new();
    for h in list {
        if h == "*" {
            e.err(field, "\"*\" is not supported: list the header names");
            continue;
        }
        match HeaderName::from_bytes(h.as_bytes()) {
            Ok(name) if !out.contains(&name) => out.push(name),
            Ok(_) => {}
            Err(_) => e.err(field, format!("{h:?} is not a header name")),
        }
    }
    out
}

/// `a, b, c` as a header value; `None` for an empty list. Tokens are valid header values.
fn join<'a>(items: impl Iterator<Item = &'a str>) -> Option<HeaderValue> {
    let text = items.collect::<Vec<_>>().join(", ");
    if text.is_empty() {
        return None;
    }
    HeaderValue::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_taken_only_as_a_browser_serializes_them() {
        for ok in [
            "https://app.test",
            "http://localhost:3000",
            "https://a.test:8443",
            "app-x://id",
        ] {
            assert_eq!(
                origin(ok).map(|v| v.to_str().map(str::to_owned).ok()),
                Ok(Some(ok.into())),
                "{ok}"
            );
        }
        for (bad, hint) in [
            ("https://app.test/", "\"https://app.test\""),
            ("https://APP.test", "\"https://app.test\""),
            ("https://app.test:443", "\"https://app.test\""),
            ("http://app.test:80", "\"http://app.test\""),
            ("https://app.test/path", "no user, path or query"),
            ("https://u@app.test", "no user"),
            ("app.test", "not an origin"),
            ("null", "opaque"),
        ] {
            let why = origin(bad).err().unwrap_or_default();
            assert!(why.contains(hint), "{bad}: {why}");
        }
    }
}
