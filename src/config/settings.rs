//! Compiling `[server]`: listen addresses, the unmatched status, the token cache and the
//! timeouts and limits (`limits.rs`); at most one file may define it.

use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;

use http::StatusCode;

use super::declared::{Declaration, Declared};
use super::raw::{RawServer, RawStore};
use super::report::{Ctx, Entity};
use crate::snapshot::Settings;

pub(super) fn compile_settings(c: &mut Ctx<'_>, declared: &Declared, env: super::Env) -> Settings {
    let mut settings = Settings::default();
    one_table(c, &declared.servers, "server", |e, raw| server(e, raw, &mut settings));
    one_table(c, &declared.stores, "store", |e, raw| store(e, raw, env, &mut settings));
    settings
}

/// Compiles the one `[name]` table of a configuration; a second one (in another file of a
/// directory) is an error naming the first's file.
fn one_table<T>(
    c: &mut Ctx<'_>,
    tables: &[Declaration<T>],
    name: &str,
    mut compile: impl FnMut(&mut Entity<'_, '_>, &T),
) {
    let mut seen: Option<&Path> = None;
    for d in tables {
        let mut e = c.entity(&d.origin.file, &d.origin.dir, name);
        if let Some(first) = seen {
            e.err(name, format!("[{name}] is already defined in {}", first.display()));
            continue;
        }
        seen = Some(&d.origin.file);
        compile(&mut e, &d.raw);
    }
}

/// `public_url`: an `http(s)` origin, without query or fragment; a path is kept (a gateway
/// behind a path prefix), without its trailing slash.
fn public_origin(url: &str) -> Result<String, &'static str> {
    let uri: http::Uri = url.parse().map_err(|_| "is not a URL")?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err("must be an http:// or https:// URL with a host");
    }
    if uri.query().is_some() || url.contains('#') {
        return Err("must have no query or fragment");
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// `[store]`: the URL (written, or from the environment) of an engine this build has.
fn store(e: &mut Entity<'_, '_>, raw: &RawStore, env: super::Env, settings: &mut Settings) {
    let url = match (&raw.url, raw.url_env.as_deref()) {
        (Some(_), Some(_)) => {
            e.err("url_env", "set either url or url_env, not both");
            None
        }
        (Some(url), None) => Some(url.clone()),
        (None, Some(var)) => {
            let found = env(var);
            if found.is_none() {
                e.err("url_env", format!("the environment variable {var:?} is not set"));
            }
            found
        }
        (None, None) => None,
    };
    if let Some(url) = url {
        let known = url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://");
        if known {
            settings.store_url = url;
        } else {
            let shown = crate::store::redact(&url);
            let field = if raw.url.is_some() { "url" } else { "url_env" };
            e.err(
                field,
                format!("{shown:?} is not sqlite://PATH, sqlite::memory: or postgres://…"),
            );
        }
    }
    settings.store_poll_interval = e.duration("poll_interval", &raw.poll_interval, settings.store_poll_interval);
    if settings.store_poll_interval < std::time::Duration::from_millis(100) {
        e.err("poll_interval", "must be at least 100ms");
    }
}

/// One `[server]` table over the defaults.
fn server(e: &mut Entity<'_, '_>, raw: &RawServer, settings: &mut Settings) {
    if let Some(listen) = &raw.listen {
        match SocketAddr::from_str(listen) {
            Ok(a) => settings.listen = a,
            Err(why) => e.err(
                "listen",
                format!("{listen:?} is not an address like 127.0.0.1:8080: {why}"),
            ),
        }
    }
    match &raw.public_url {
        Some(url) => match public_origin(url) {
            Ok(origin) => settings.public_url = origin,
            Err(why) => e.err("public_url", format!("{url:?} {why}")),
        },
        None => settings.public_url = format!("http://{}", settings.listen),
    }
    if let Some(on) = raw.admin_panel {
        settings.admin_panel = on;
    }
    if let Some(admin) = &raw.admin_listen {
        match SocketAddr::from_str(admin) {
            Ok(a) => settings.admin_listen = Some(a),
            Err(why) => e.err("admin_listen", format!("{admin:?} is not an address: {why}")),
        }
    }
    for m in raw.extension_methods.iter().flatten() {
        match http::Method::from_bytes(m.as_bytes()) {
            Ok(method) if !settings.extension_methods.contains(&method) => settings.extension_methods.push(method),
            Ok(_) => {}
            Err(_) => e.err(
                "extension_methods",
                format!("{m:?} is not a method token (RFC 9110 § 9.1)"),
            ),
        }
    }
    if let Some(code) = raw.unmatched_status {
        match StatusCode::from_u16(code) {
            Ok(s) if s.is_client_error() || s.is_server_error() => settings.unmatched_status = s,
            _ => e.err("unmatched_status", format!("{code} is not a 4xx or 5xx status")),
        }
    }
    if raw.token_cache == Some(false) {
        settings.token_cache_capacity = 0;
    } else if let Some(cap) = raw.token_cache_capacity {
        settings.token_cache_capacity = cap;
    }
    settings.header_read_timeout = e.duration(
        "header_read_timeout",
        &raw.header_read_timeout,
        settings.header_read_timeout,
    );
    super::limits::server(e, raw, settings);
    super::decision::server(e, raw, settings);
    settings.upstream_connect_timeout = e.duration(
        "upstream_connect_timeout",
        &raw.upstream_connect_timeout,
        settings.upstream_connect_timeout,
    );
}
