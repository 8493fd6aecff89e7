//! `portcullis check`: validate and summarize a configuration.

use std::path::Path;
use std::process::ExitCode;

use portcullis::jwks::alg_name;
use portcullis::model::{Auth, ProtectedResource, RealmRef};
use portcullis::snapshot::{RealmEntry, Snapshot};
use portcullis::store::Store;

pub(super) fn run(config: &Path, with_store: bool) -> ExitCode {
    let clock = portcullis::time::system();
    let files = match portcullis::app::load_snapshot(config, clock.clone(), None) {
        Ok(s) => s,
        Err(errors) => {
            eprintln!("{} error(s) in {}:", errors.0.len(), config.display());
            eprintln!("{errors}");
            return ExitCode::from(super::EXIT_CONFIG);
        }
    };
    let (snap, store_line) = if with_store {
        match with_managed(config, files, clock) {
            Ok(pair) => pair,
            Err(code) => return code,
        }
    } else {
        (
            files,
            "store not read (--no-store): the files were checked alone".to_owned(),
        )
    };
    println!(
        "configuration OK: {}",
        snap.sources
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("listen {}", snap.settings.listen);
    if let Some(d) = &snap.settings.decision {
        println!("decision {0}/nginx {0}/forwarded {0}/envoy/…", d.path);
    }
    if !snap.settings.trusted_proxies.is_empty() {
        println!("trusted_proxies {}", snap.settings.trusted_proxies);
    }
    if let Some(tls) = &snap.listener_tls {
        println!(
            "tls {} (client certificates: {})",
            tls.files.cert.display(),
            tls.files.client_ca.as_ref().map_or("off", |(_, auth)| auth.as_str())
        );
    }
    if let Some(ca) = &snap.upstream_ca {
        println!("upstream_ca {}", ca.file.display());
    }
    println!("{store_line}");
    for (i, realm) in snap.realms.entries() {
        print_realm(&snap, i, realm);
    }
    for warning in portcullis::config::warnings(&snap) {
        eprintln!("warning: {warning}");
    }
    ExitCode::SUCCESS
}

/// The files' snapshot compiled again with the managed entities of the store it names, as
/// `serve` would, and a line saying what was read. The store is only read: nothing is
/// created or migrated. A store that cannot be read is a warning, not a failure, so a
/// configuration can be checked where the store is out of reach.
fn with_managed(
    config: &Path,
    files: Snapshot,
    clock: portcullis::time::SharedClock,
) -> Result<(Snapshot, String), ExitCode> {
    let url = files.settings.store_url.clone();
    let shown = portcullis::store::redact(&url);
    let read = async {
        match Store::inspect(&url).await? {
            None => Ok(None),
            Some(store) => store.entities().await.map(Some),
        }
    };
    let read = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt.block_on(read),
        Err(e) => Err(portcullis::store::StoreError::Unavailable(e.to_string())),
    };
    let (version, managed) = match read {
        Ok(Some(found)) => found,
        Ok(None) => {
            return Ok((
                files,
                format!("store {shown}: not created yet (the first `serve` creates it)"),
            ));
        }
        Err(e) => {
            eprintln!("warning: store {shown} not read ({e}); the files were checked alone");
            return Ok((files, format!("store {shown}: not read")));
        }
    };
    if managed.is_empty() {
        return Ok((files, format!("store {shown}: no managed entities (version {version})")));
    }
    match portcullis::app::load_snapshot_with(config, clock, None, &managed) {
        Ok(snap) => Ok((
            snap,
            format!("store {shown}: {} managed entities (version {version})", managed.len()),
        )),
        Err(errors) => {
            eprintln!(
                "{} error(s) in {} with the {} managed entities of store {shown} (version {version}):",
                errors.0.len(),
                config.display(),
                managed.len()
            );
            eprintln!("{errors}");
            Err(ExitCode::from(super::EXIT_CONFIG))
        }
    }
}

/// A realm and, indented below it, its resource servers and their protected resources.
fn print_realm(snap: &Snapshot, i: RealmRef, realm: &RealmEntry) {
    let health = realm.keys.health();
    let algs: Vec<&str> = realm.algorithms.iter().map(|a| alg_name(*a)).collect();
    println!(
        "realm {}  issuer {}  algorithms {}  local keys {}  signing keys {}{}{}",
        realm.name,
        realm.issuer,
        algs.join(","),
        health.local_keys,
        realm.signing.keys().len(),
        realm
            .jwks_remote
            .as_ref()
            .map(|r| format!("  jwks_uri {}", r.uri))
            .unwrap_or_default(),
        realm
            .introspection
            .as_ref()
            .map(|i| format!("  introspection {} as {}", i.endpoint, i.client_id))
            .unwrap_or_default()
    );
    for (ri, rs) in snap.resource_servers.entries().filter(|(_, rs)| rs.realm == i) {
        println!(
            "  resource server {}{}{}  aud {}  → {}://{}{}{}",
            rs.id,
            if rs.default { " (default)" } else { "" },
            if rs.enforce { "" } else { " (report-only)" },
            rs.audience,
            rs.upstream.scheme,
            rs.upstream.authority,
            rs.upstream.base_path,
            rs.metadata
                .as_ref()
                .map(|m| format!("  metadata {}", m.url))
                .unwrap_or_default()
        );
        for pr in snap.resources.iter().filter(|pr| pr.resource_server == ri) {
            print_resource(pr);
        }
    }
}

/// One protected resource: what it matches and what a token needs to reach it.
fn print_resource(pr: &ProtectedResource) {
    let methods = pr
        .methods
        .as_ref()
        .map(|m| m.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(","))
        .unwrap_or_else(|| "*".into());
    let scopes = pr.scopes.to_space_separated();
    let rule = format!("{} of", pr.scope_match.as_str());
    println!(
        "    {}  {} {}{}  needs {}{}{}{}",
        pr.id,
        methods,
        pr.host.as_deref().map(|h| format!("host {h} ")).unwrap_or_default(),
        pr.paths.join(" "),
        if pr.auth == Auth::None {
            "nothing (open: auth = \"none\")".to_owned()
        } else if scopes.is_empty() {
            "a valid token".to_owned()
        } else {
            format!("{rule} [{scopes}]")
        },
        pr.max_age.map(|a| format!("  max_age {a}s")).unwrap_or_default(),
        pr.max_token_lifetime
            .map(|a| format!("  max lifetime {a}s"))
            .unwrap_or_default(),
        match pr.enforce {
            Some(false) => "  (report-only)",
            Some(true) => "  (enforcing)",
            None => "",
        },
    );
}
