//! Declared entities → [`Snapshot`], in named phases: settings and TLS, realms, resource servers,
//! clients, issuer endpoints, protected resources with their routes. Each entity's rules
//! live in its own compiler; every violation is reported (not just the first), each naming
//! file, entity and field.

use std::collections::HashMap;

use super::declared::Declared;
use super::error::ConfigErrors;
use super::realm::Realms;
use super::report::Ctx;
use crate::inputs::Inputs;
use crate::jwks::Fetcher;
use crate::model::{IssuerEndpoint, RealmRef, Table};
use crate::snapshot::{RealmEntry, Snapshot};
use crate::time::SharedClock;

/// What compiling needs besides the files.
#[derive(Clone)]
pub struct CompileContext<'a> {
    /// The clock remote key sets judge freshness with.
    pub clock: SharedClock,
    /// The client remote key sets are fetched with.
    pub fetcher: Fetcher,
    /// The running snapshot, whose realm keys are reused where their sources are unchanged.
    pub previous: Option<&'a Snapshot>,
    /// The process environment (`client_secret_env`), passed in so compiling reads no
    /// global state: [`std::env::var`] in the binary, a map in tests.
    pub env: Env,
}

/// Looks an environment variable up.
pub type Env = fn(&str) -> Option<String>;

/// The process environment, as [`Env`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Compiles the declared entities into a snapshot.
///
/// Every file read on the way is recorded in `inputs`.
pub(super) fn compile(
    declared: &Declared,
    cx: &CompileContext<'_>,
    inputs: &mut Inputs,
) -> Result<Snapshot, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let mut c = Ctx::new(&mut errors, inputs);
    let settings = super::settings::compile_settings(&mut c, declared);
    let tls = super::tls::compile(&mut c, declared, cx);
    let compiled = super::realm::compile_realms(&mut c, declared, cx);
    let resource_servers = super::resource_server::compile_resource_servers(&mut c, declared, &compiled);
    let Realms {
        entries: mut realms,
        index: realm_index,
        ..
    } = compiled;
    super::realm::collect_forwarded_claims(&mut realms, &resource_servers);
    let clients = super::client::compile_clients(&mut c, declared, cx, &realm_index, &realms, &resource_servers);
    let issuer_routes = issuer_routes(&mut c, &realms);
    let (resources, router) = super::resource::compile_resources(&mut c, declared, &resource_servers);
    if realms.is_empty() && c.clean() {
        c.whole(&declared.first_file(), "configuration", "defines no realm");
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Snapshot {
        epoch: 0,
        settings,
        realms,
        resource_servers,
        resources,
        router,
        clients,
        issuer_routes,
        sources: declared.origins.iter().map(|o| o.file.clone()).collect(),
        inputs: Inputs::default(),
        listener_tls: tls.listener,
        upstream_ca: tls.upstream_ca,
    })
}

/// The embedded issuers' endpoints by exact path; two realms may not share one.
fn issuer_routes(c: &mut Ctx<'_>, realms: &Table<RealmRef, RealmEntry>) -> HashMap<String, (RealmRef, IssuerEndpoint)> {
    let mut routes: HashMap<String, (RealmRef, IssuerEndpoint)> = HashMap::new();
    for (ri, realm) in realms.entries() {
        if realm.signing.is_empty() {
            continue;
        }
        let p = &realm.issuer_path;
        let mut paths: Vec<(String, IssuerEndpoint)> = [
            IssuerEndpoint::Jwks,
            IssuerEndpoint::Token,
            IssuerEndpoint::Introspect,
            IssuerEndpoint::Revoke,
            IssuerEndpoint::Metadata,
        ]
        .iter()
        .map(|e| (format!("{p}{}", e.suffix()), *e))
        .collect();
        // RFC 8414 § 3.1: the well-known segment goes between host and path.
        paths.push((
            format!("/.well-known/oauth-authorization-server{p}"),
            IssuerEndpoint::Metadata,
        ));
        let label = format!("realm {:?}", realm.name.as_str());
        for (path, ep) in paths {
            if let Some((other, _)) = routes.insert(path.clone(), (ri, ep))
                && other != ri
            {
                let msg = format!(
                    "its endpoint {path} collides with realm {:?}'s",
                    realms[other].name.as_str()
                );
                c.entity(&realm.source, &realm.source, &label).err("issuer", msg);
            }
        }
    }
    routes
}
