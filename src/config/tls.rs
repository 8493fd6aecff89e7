//! Compiling `[server]`'s TLS fields: the listener's certificate, key and client CAs, and
//! the upstream trust anchors. The files are read and checked here (a key that is not the
//! certificate's, an unreadable CA), so `portcullis check` and a reload see every problem
//! before anything is swapped in.

use std::path::Path;

use super::compile::{CompileContext, Ctx, resolve};
use super::load::LoadedFile;
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
pub(super) fn compile(c: &mut Ctx<'_>, files: &[LoadedFile], cx: &CompileContext<'_>) -> CompiledTls {
    let Some((f, raw)) = files.iter().find_map(|f| f.raw.server.as_ref().map(|r| (f, r))) else {
        check_unchanged_mode(c, files.first().map(|f| f.path.as_path()), false, cx);
        return CompiledTls::default();
    };
    let file = f.path.as_path();
    let cert = non_empty(c, file, "tls_cert", &raw.tls_cert);
    let key = non_empty(c, file, "tls_key", &raw.tls_key);
    let client_ca = non_empty(c, file, "tls_client_ca", &raw.tls_client_ca);
    let auth = match raw.tls_client_auth.as_deref() {
        None => ClientAuth::Required,
        Some("required") => ClientAuth::Required,
        Some("optional") => ClientAuth::Optional,
        Some(other) => {
            c.err(
                file,
                ENTITY,
                "tls_client_auth",
                format!("{other:?}: expected \"required\" or \"optional\""),
            );
            ClientAuth::Required
        }
    };
    if raw.tls_client_auth.is_some() && raw.tls_client_ca.is_none() {
        c.err(
            file,
            ENTITY,
            "tls_client_auth",
            "needs tls_client_ca (the CA certificates client certificates must chain to)",
        );
    }
    if raw.tls_client_ca.is_some() && raw.tls_cert.is_none() {
        c.err(
            file,
            ENTITY,
            "tls_client_ca",
            "needs tls_cert and tls_key: client certificates are checked by the TLS listener",
        );
    }
    match (&raw.tls_cert, &raw.tls_key) {
        (Some(_), None) => c.err(file, ENTITY, "tls_key", "is required with tls_cert"),
        (None, Some(_)) => c.err(file, ENTITY, "tls_cert", "is required with tls_key"),
        _ => {}
    }
    check_unchanged_mode(c, Some(file), raw.tls_cert.is_some(), cx);

    let mut out = CompiledTls::default();
    if let (Some(cert), Some(key)) = (cert, key) {
        let files = ListenerFiles {
            cert: resolve(&f.dir, cert),
            key: resolve(&f.dir, key),
            client_ca: client_ca.map(|p| (resolve(&f.dir, p), auth)),
        };
        match tls::server_config_with(&files, &mut |p| c.read(p)) {
            Ok(t) => out.listener = Some(t),
            Err(e) => c.err(file, ENTITY, e.field, e.error.to_string()),
        }
    }
    if let Some(ca) = non_empty(c, file, "upstream_ca", &raw.upstream_ca) {
        match tls::upstream_ca_with(&resolve(&f.dir, ca), &mut |p| c.read(p)) {
            Ok(u) => out.upstream_ca = Some(u),
            Err(e) => c.err(file, ENTITY, "upstream_ca", e.to_string()),
        }
    }
    out
}

/// NB: the public listener speaks TLS or plain HTTP for its whole life: a reload that turned
/// TLS off would silently downgrade clients to cleartext, one that turned it on would cut
/// every plain client off. Both need a restart, like a new listen address.
fn check_unchanged_mode(c: &mut Ctx<'_>, file: Option<&Path>, tls_on: bool, cx: &CompileContext<'_>) {
    let (Some(prev), Some(file)) = (cx.previous, file) else {
        return;
    };
    if prev.listener_tls.is_some() != tls_on {
        let was = if prev.listener_tls.is_some() { "on" } else { "off" };
        c.err(
            file,
            ENTITY,
            "tls_cert",
            format!("TLS on the listener is {was}: a reload cannot turn it on or off; restart to change it"),
        );
    }
}

fn non_empty<'v>(c: &mut Ctx<'_>, file: &Path, field: &str, v: &'v Option<String>) -> Option<&'v str> {
    match v.as_deref().map(str::trim) {
        Some("") => {
            c.err(file, ENTITY, field, "must not be empty");
            None
        }
        other => other,
    }
}
