//! Compiling `[server]`'s TLS fields: the listener's certificate, key and client CAs, and
//! the upstream trust anchors. The files are read and checked here (a key that is not the
//! certificate's, an unreadable CA), so `portcullis check` and a reload see every problem
//! before anything is swapped in.

use super::compile::CompileContext;
use super::declared::Declared;
use super::report::{Ctx, Entity};
use crate::tls::{self, ClientAuth, ListenerFiles, ListenerTls, UpstreamCa};

const ENTITY: &str = "server";

/// What the TLS fields compiled to.
#[derive(Default)]
pub(super) struct CompiledTls {
    /// The listener's configuration, when `tls_cert` is set.
    pub listener: Option<ListenerTls>,
    /// The upstream trust anchors, when `upstream_ca` is set.
    pub upstream_ca: Option<UpstreamCa>,
}

/// Compiles the TLS fields of the first file with a `[server]` table (a second one is
/// reported by the settings compiler).
pub(super) fn compile(c: &mut Ctx<'_>, declared: &Declared, cx: &CompileContext<'_>) -> CompiledTls {
    let Some(d) = declared.servers.first() else {
        if let Some(o) = declared.origins.first() {
            check_unchanged_mode(&mut c.entity(&o.file, &o.dir, ENTITY), false, cx);
        }
        return CompiledTls::default();
    };
    let raw = &d.raw;
    let mut e = c.entity(&d.origin.file, &d.origin.dir, ENTITY);
    let e = &mut e;
    let cert = e.non_empty("tls_cert", &raw.tls_cert);
    let key = e.non_empty("tls_key", &raw.tls_key);
    let client_ca = e.non_empty("tls_client_ca", &raw.tls_client_ca);
    let auth: ClientAuth = e.choice("tls_client_auth", &raw.tls_client_auth).unwrap_or_default();
    if raw.tls_client_auth.is_some() && raw.tls_client_ca.is_none() {
        e.err(
            "tls_client_auth",
            "needs tls_client_ca (the CA certificates client certificates must chain to)",
        );
    }
    if raw.tls_client_ca.is_some() && raw.tls_cert.is_none() {
        e.err(
            "tls_client_ca",
            "needs tls_cert and tls_key: client certificates are checked by the TLS listener",
        );
    }
    match (&raw.tls_cert, &raw.tls_key) {
        (Some(_), None) => e.err("tls_key", "is required with tls_cert"),
        (None, Some(_)) => e.err("tls_cert", "is required with tls_key"),
        _ => {}
    }
    check_unchanged_mode(e, raw.tls_cert.is_some(), cx);

    let mut out = CompiledTls::default();
    if let (Some(cert), Some(key)) = (cert, key) {
        let files = ListenerFiles {
            cert: e.resolve(cert),
            key: e.resolve(key),
            client_ca: client_ca.map(|p| (e.resolve(p), auth)),
        };
        match tls::server_config_with(&files, &mut |p| e.read(p)) {
            Ok(t) => out.listener = Some(t),
            Err(why) => e.err(why.field, why.error.to_string()),
        }
    }
    if let Some(ca) = e.non_empty("upstream_ca", &raw.upstream_ca) {
        let path = e.resolve(ca);
        match tls::upstream_ca_with(&path, &mut |p| e.read(p)) {
            Ok(u) => out.upstream_ca = Some(u),
            Err(why) => e.err("upstream_ca", why.to_string()),
        }
    }
    out
}

/// NB: the public listener speaks TLS or plain HTTP for its whole life: a reload that turned
/// TLS off would silently downgrade clients to cleartext, one that turned it on would cut
/// every plain client off. Both need a restart, like a new listen address.
fn check_unchanged_mode(e: &mut Entity<'_, '_>, tls_on: bool, cx: &CompileContext<'_>) {
    let Some(prev) = cx.previous else {
        return;
    };
    if prev.listener_tls.is_some() != tls_on {
        let was = if prev.listener_tls.is_some() { "on" } else { "off" };
        e.err(
            "tls_cert",
            format!("TLS on the listener is {was}: a reload cannot turn it on or off; restart to change it"),
        );
    }
}
