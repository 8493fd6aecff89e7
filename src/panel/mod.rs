//! The Admin Panel: a web console over the Management API, served at `/admin`. Its assets
//! (plain HTML, CSS and JavaScript modules, no build step) are embedded in the binary and
//! served here with a strict Content-Security-Policy and `ETag`s; it has no powers of its
//! own: everything it does is a Management API call with the operator's token, which it
//! keeps in memory only.
//!
//! Only the exact paths of its assets are the panel's ([`is_panel_path`]); everything else
//! under `/admin` is routed to protected resources as usual.

use std::sync::LazyLock;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;

use crate::config::management::{base_path, server_id};
use crate::model::IssuerEndpoint;
use crate::snapshot::Snapshot;

/// Where the panel lives.
pub const BASE: &str = "/admin";

/// The panel's policy: its own scripts, styles and images, calls to this origin only, never
/// framed, no inline script or style, no forms posted anywhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// Every file of the panel, by path.
const FILES: [Asset; 6] = [
    Asset {
        path: "/admin",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("assets/index.html"),
    },
    Asset {
        path: "/admin/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("assets/index.html"),
    },
    Asset {
        path: "/admin/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/app.js"),
    },
    Asset {
        path: "/admin/api.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/api.js"),
    },
    Asset {
        path: "/admin/ui.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/ui.js"),
    },
    Asset {
        path: "/admin/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("assets/style.css"),
    },
];

/// The realms' sign-in details: made from the snapshot at each request, never cached.
const CONFIG_PATH: &str = "/admin/config.json";

/// Each file's strong `ETag`: a digest of its bytes, computed once.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|a| {
            let digest = crate::token::sha256(a.body);
            let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
            HeaderValue::from_str(&format!("\"{hex}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
        })
        .collect()
});

/// Whether `path` is one of the panel's (checked before protected resources, as the
/// embedded issuers' endpoints are).
pub fn is_panel_path(path: &str) -> bool {
    path.starts_with(BASE) && (path == CONFIG_PATH || FILES.iter().any(|a| a.path == path))
}

/// The answer to `method path` ([`is_panel_path`] said it is the panel's).
pub fn answer(snap: &Snapshot, method: &Method, path: &str, headers: &HeaderMap) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        resp.headers_mut()
            .insert(http::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return secured(resp);
    }
    if path == CONFIG_PATH {
        let mut resp = crate::respond::json(StatusCode::OK, &config(snap));
        resp.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return secured(resp);
    }
    let Some((i, asset)) = FILES.iter().enumerate().find(|(_, a)| a.path == path) else {
        return secured(plain(StatusCode::NOT_FOUND, "not found\n"));
    };
    let etag = ETAGS.get(i).cloned().unwrap_or(HeaderValue::from_static("\"0\""));
    let fresh = headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == etag.to_str().unwrap_or_default()
        });
    let mut resp = if fresh {
        Response::new(Full::new(Bytes::new()))
    } else {
        Response::new(Full::new(Bytes::from_static(asset.body)))
    };
    if fresh {
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
    }
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    h.insert(ETAG, etag);
    // Revalidated every time: an upgraded gateway serves its new panel at once.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    secured(resp)
}

/// What the sign-in screen offers: each realm, where its token endpoint and Management API
/// are (paths on this origin), the audience to ask a token for, and what it accepts.
fn config(snap: &Snapshot) -> serde_json::Value {
    let realms: Vec<serde_json::Value> = snap
        .realms
        .iter()
        .map(|realm| {
            let name = realm.name.as_str();
            let audience = snap
                .resource_server(&server_id(name))
                .map(|(_, rs)| rs.audience.as_str().to_owned());
            let token_endpoint =
                (!realm.signing.is_empty()).then(|| format!("{}{}", realm.issuer_path, IssuerEndpoint::Token.suffix()));
            json!({
                "name": name,
                "api": base_path(name),
                "audience": audience,
                "token_endpoint": token_endpoint,
                "static_token": realm.management_token_hash.is_some(),
                "algorithms": realm.algorithms.iter().map(|a| crate::jwks::alg_name(*a)).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "realms": realms })
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

/// The headers every panel answer carries.
fn secured(mut resp: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    let h = resp.headers_mut();
    h.insert(http::header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(http::header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(http::header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(
        http::HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    resp
}
