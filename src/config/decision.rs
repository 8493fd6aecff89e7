//! Compiling `[server]`'s `trusted_proxies`, the PROXY protocol they may speak
//! (`proxy_protocol`) and decision mode (`decision_path`, `decision_uri_header`,
//! `decision_method_header`).

use std::str::FromStr;

use http::HeaderName;

use super::raw::RawServer;
use super::report::Entity;
use crate::model::{Cidr, TrustedProxies};
use crate::snapshot::{DecisionSettings, Settings};

/// Applies `trusted_proxies` and the decision-mode fields.
pub(super) fn server(e: &mut Entity<'_, '_>, raw: &RawServer, settings: &mut Settings) {
    let mut blocks = Vec::new();
    for block in raw.trusted_proxies.iter().flatten() {
        match Cidr::from_str(block) {
            Ok(c) => blocks.push(c),
            Err(why) => e.err("trusted_proxies", format!("{block:?} {why}")),
        }
    }
    settings.trusted_proxies = TrustedProxies::new(blocks);
    if raw.proxy_protocol == Some(true) {
        // NB: a PROXY header names the client; from anyone but our own balancers it would
        // let a client choose the address it is logged and throttled as.
        if settings.trusted_proxies.is_empty() {
            e.err(
                "proxy_protocol",
                "needs trusted_proxies: the addresses of the balancers that send the header",
            );
        }
        settings.proxy_protocol = true;
    }
    let header = |e: &mut Entity<'_, '_>, field: &str, raw: &Option<String>, default: &'static str| match raw {
        None => Some(HeaderName::from_static(default)),
        Some(name) => HeaderName::from_str(name)
            .inspect_err(|_| e.err(field, format!("{name:?} is not a header name")))
            .ok(),
    };
    let uri_header = header(e, "decision_uri_header", &raw.decision_uri_header, "x-original-uri");
    let method_header = header(
        e,
        "decision_method_header",
        &raw.decision_method_header,
        "x-original-method",
    );
    let Some(path) = &raw.decision_path else {
        for (field, set) in [
            ("decision_uri_header", raw.decision_uri_header.is_some()),
            ("decision_method_header", raw.decision_method_header.is_some()),
        ] {
            if set {
                e.err(field, "has no effect without decision_path");
            }
        }
        return;
    };
    let path = path.trim_end_matches('/');
    // The prefix is compared with the raw request path, so it must be one that needs no
    // normalizing: what an operator writes is what matches.
    let plain = path.starts_with('/')
        && crate::routing::normalize(path).is_ok_and(|n| n.as_str() == path)
        && !path.contains(['*', '{', '}', '?', '#', '%']);
    if !plain {
        e.err(
            "decision_path",
            format!("{path:?} must be a plain absolute path like \"/_portcullis/auth\""),
        );
        return;
    }
    // NB: decision endpoints believe the original request their caller describes; with
    // nobody trusted to describe it, every decision would be a refusal.
    if settings.trusted_proxies.is_empty() {
        e.err(
            "decision_path",
            "decision mode needs trusted_proxies: the addresses of the proxies that ask",
        );
    }
    if let (Some(uri_header), Some(method_header)) = (uri_header, method_header) {
        settings.decision = Some(DecisionSettings {
            path: path.to_owned(),
            uri_header,
            method_header,
        });
    }
}
