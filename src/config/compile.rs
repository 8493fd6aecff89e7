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
use crate::model::{EntityRef, IssuerEndpoint, RealmRef, ResourceServerRef, Table};
use crate::snapshot::{RealmEntry, ResourceServerEntry, Snapshot};
use crate::store::StoredEntity;
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
    /// The store's managed entities, compiled with the files' under the same rules.
    pub managed: &'a [StoredEntity],
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
    for (kind, id) in &declared.unparsed {
        c.mark_in_error(kind, id);
    }
    let settings = super::settings::compile_settings(&mut c, declared, cx.env);
    let tls = super::tls::compile(&mut c, declared, cx);
    let compiled = super::realm::compile_realms(&mut c, declared, cx);
    let mut resource_servers = super::resource_server::compile_resource_servers(&mut c, declared, &compiled);
    super::management::add_servers(&settings, &compiled.entries, &mut resource_servers);
    let Realms {
        entries: mut realms,
        index: realm_index,
        ..
    } = compiled;
    super::realm::collect_forwarded_claims(&mut realms, &resource_servers);
    let metadata_routes = describe_resource_servers(&settings.public_url, &realms, &mut resource_servers);
    let failed = super::resource_server::failed_ids(declared, &resource_servers);
    let clients =
        super::client::compile_clients(&mut c, declared, cx, &realm_index, &realms, &resource_servers, &failed);
    let issuer_routes = issuer_routes(&mut c, &realms);
    let builtin = super::management::resources(&resource_servers, &realms);
    let (resources, router) = super::resource::compile_resources(
        &mut c,
        declared,
        &resource_servers,
        builtin,
        &failed,
        &settings.extension_methods,
    );
    if realms.is_empty() && c.clean() && !declared.unparsed.iter().any(|(kind, _)| *kind == "realm") {
        c.whole(&declared.first_file(), "configuration", "defines no realm");
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let catalog = super::catalog::build(declared, &realms, &resource_servers, &resources, &clients);
    Ok(Snapshot {
        epoch: 0,
        settings,
        realms,
        resource_servers,
        resources,
        router,
        clients,
        issuer_routes,
        metadata_routes,
        catalog,
        sources: declared.origins.iter().map(|o| o.file.clone()).collect(),
        inputs: Inputs::default(),
        listener_tls: tls.listener,
        upstream_ca: tls.upstream_ca,
    })
}

/// Each resource server's RFC 9728 metadata, and the resource servers by the path it is
/// served at.
fn describe_resource_servers(
    public_url: &str,
    realms: &Table<RealmRef, RealmEntry>,
    servers: &mut Table<ResourceServerRef, ResourceServerEntry>,
) -> HashMap<Box<str>, Vec<ResourceServerRef>> {
    let mut routes: HashMap<Box<str>, Vec<ResourceServerRef>> = HashMap::new();
    for (i, entry) in servers.iter_mut().enumerate() {
        let issuer = &realms[entry.realm].issuer;
        entry.metadata = crate::discovery::describe(public_url, &entry.resource_server, issuer);
        if let Some(m) = &entry.metadata {
            routes.entry(m.path.clone()).or_default().push(ResourceServerRef::at(i));
        }
    }
    routes
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
            IssuerEndpoint::Authorize,
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

#[cfg(test)]
mod tests {
    //! The compiler's rules on declarations given as text: no sockets, no files on disk.

    use std::path::Path;

    use super::*;
    use crate::config::declared::Origin;

    const REALM: &str = r#"
        [[realm]]
        name = "demo"
        issuer = "https://idp.test"
        jwks_uri = "https://idp.test/jwks"
        algorithms = ["RS256", "ES256"]
    "#;

    const API: &str = r#"
        [[resource_server]]
        id = "orders"
        realm = "demo"
        audience = "https://api.test/orders"
        upstream = "http://127.0.0.1:9000"
        scopes = ["orders:read", "orders:write"]
    "#;

    /// Compiles `texts` as the files `a.toml`, `b.toml`, ….
    fn compile_texts(texts: &[&str]) -> Result<Snapshot, ConfigErrors> {
        let mut declared = Declared::default();
        for (i, text) in texts.iter().enumerate() {
            let raw = toml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let name = format!("{}.toml", char::from(b'a' + u8::try_from(i).unwrap_or(0)));
            declared.add(Origin::file(Path::new(&name)), raw);
        }
        let cx = CompileContext {
            clock: crate::time::ManualClock::new(1_000_000),
            fetcher: Fetcher::new(),
            previous: None,
            env: |_| None,
            managed: &[],
        };
        compile(&declared, &cx, &mut Inputs::default())
    }

    /// The (file, entity, field) of every error, and its message.
    fn errors(texts: &[&str]) -> Vec<(String, String, Option<String>, String)> {
        match compile_texts(texts) {
            Ok(_) => panic!("should not compile"),
            Err(errors) => errors
                .0
                .into_iter()
                .map(|e| (e.file.display().to_string(), e.entity, e.field, e.message))
                .collect(),
        }
    }

    /// The message of the one error, which must be on `field` of `entity`.
    fn field_of(texts: &[&str], entity: &str, field: &str) -> String {
        let all = errors(texts);
        assert_eq!(all.len(), 1, "one error, no cascade: {all:?}");
        all.iter()
            .find(|(_, en, f, _)| en == entity && f.as_deref() == Some(field))
            .map(|(_, _, _, m)| m.clone())
            .unwrap_or_else(|| panic!("no error on {entity} {field}: {all:?}"))
    }

    #[test]
    fn a_minimal_configuration_compiles() {
        let snap = compile_texts(&[REALM, API]).unwrap_or_else(|e| panic!("{e}"));
        let ids: Vec<&str> = snap.resource_servers.iter().map(|rs| rs.id.as_str()).collect();
        assert_eq!(
            ids,
            ["orders", "management:demo"],
            "the realm's Management API is built in"
        );
        let m = snap
            .resource_server("management:demo")
            .map(|(_, rs)| rs)
            .unwrap_or_else(|| panic!("built in"));
        assert_eq!(m.audience.as_str(), "http://127.0.0.1:8080/api/v1/demo");
        assert!(m.management && m.scopes.contains("update:clients"));
        assert_eq!(snap.sources, [Path::new("a.toml"), Path::new("b.toml")]);
    }

    #[test]
    fn a_static_admin_token_is_stored_as_an_argon2id_hash() {
        let plain = REALM.replace("[[realm]]", "[[realm]]\nmanagement_token_hash = \"let-me-in\"");
        let msg = field_of(&[&plain, API], r#"realm "demo""#, "management_token_hash");
        assert!(msg.contains("hash-secret"), "{msg}");
    }

    #[test]
    fn a_default_scope_must_be_assigned() {
        let api = format!("{API}default_scopes = [\"orders:admin\"]\n");
        let msg = field_of(&[REALM, &api], r#"resource_server "orders""#, "default_scopes");
        assert!(msg.contains("orders:admin"), "{msg}");
    }

    #[test]
    fn a_realm_has_at_most_one_default_resource_server() {
        let one = format!("{API}default = true\n");
        let two = one.replace("\"orders\"", "\"billing\"").replace("/orders", "/billing");
        let msg = field_of(&[REALM, &one, &two], r#"resource_server "billing""#, "default");
        assert!(msg.contains("already has a default"), "{msg}");
    }

    #[test]
    fn a_protected_resource_names_an_existing_resource_server_and_its_scopes() {
        let pr = r#"
            [[protected_resource]]
            id = "list"
            resource_server = "ordrs"
            paths = ["/orders"]
        "#;
        let msg = field_of(&[REALM, API, pr], r#"protected_resource "list""#, "resource_server");
        assert!(msg.contains(r#""ordrs" (did you mean "orders"?)"#), "{msg}");
        let pr = pr.replace("ordrs", "orders") + "scopes = [\"orders:wrte\"]\n";
        let msg = field_of(&[REALM, API, &pr], r#"protected_resource "list""#, "scopes");
        // The value as written, not a Rust type's debug form, and the near miss.
        assert!(
            msg.starts_with(
                r#""orders:wrte" is not a scope of resource server "orders" (did you mean "orders:write"?)"#
            ),
            "{msg}"
        );
    }

    #[test]
    fn methods_are_rfc_9110_tokens_unless_declared_as_extensions() {
        let pr = r#"
            [[protected_resource]]
            id = "list"
            resource_server = "orders"
            paths = ["/orders"]
            methods = ["GTE"]
        "#;
        let msg = field_of(&[REALM, API, pr], r#"protected_resource "list""#, "methods");
        assert!(
            msg.contains(r#""GTE" is not an HTTP method (did you mean "GET"?)"#),
            "{msg}"
        );
        let purge = pr.replace("GTE", "PURGE");
        field_of(&[REALM, API, &purge], r#"protected_resource "list""#, "methods");
        let allowed = format!("[server]\nextension_methods = [\"PURGE\"]\n{REALM}");
        compile_texts(&[&allowed, API, &purge]).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn a_resource_server_in_error_is_one_error_not_one_per_reference() {
        let bad = API.replace("http://127.0.0.1:9000", "ftp://nowhere");
        let refs = r#"
            [[protected_resource]]
            id = "list"
            resource_server = "orders"
            paths = ["/orders"]
            scopes = ["orders:read"]
        "#;
        let all = errors(&[REALM, &bad, refs]);
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(all[0].1, r#"resource_server "orders""#);
        assert_eq!(all[0].2.as_deref(), Some("upstream"));
    }

    #[test]
    fn the_request_id_header_is_the_gateways_own() {
        let api = format!("{API}[resource_server.claim_headers]\nsub = \"X-Request-Id\"\n");
        field_of(&[REALM, &api], r#"resource_server "orders""#, "claim_headers");
    }

    #[test]
    fn ids_are_unique_across_files_and_the_error_names_the_second_file() {
        let all = errors(&[REALM, API, API]);
        let dup = all
            .iter()
            .find(|(_, _, f, _)| f.as_deref() == Some("id"))
            .unwrap_or_else(|| panic!("{all:?}"));
        assert_eq!(dup.0, "c.toml");
    }

    #[test]
    fn two_realms_may_not_share_a_name_and_every_error_is_reported() {
        let bad_api = API.replace("http://127.0.0.1:9000", "ftp://x");
        let all = errors(&[REALM, REALM, &bad_api]);
        assert!(all.iter().any(|(_, _, f, _)| f.as_deref() == Some("name")), "{all:?}");
        assert!(
            all.iter().any(|(_, _, f, _)| f.as_deref() == Some("upstream")),
            "{all:?}"
        );
    }

    #[test]
    fn no_realm_at_all_is_an_error_about_the_configuration() {
        let all = errors(&["[server]\nlisten = \"127.0.0.1:0\"\n"]);
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(all[0].1, "configuration");
    }
}
