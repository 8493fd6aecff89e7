//! Each realm's built-in Management API: a resource server the gateway answers itself, with
//! audience `<public_url>/api/v1/<realm>` and `action:entity` scopes, and the protected
//! resources that say which scope each of its calls needs. Built here, as any other entity
//! is, so the same verifier, routes and issuer serve it: tokens for it come from the realm's
//! token endpoint (`resource=<its audience>`), and a call without the scope it needs gets
//! the same 401/403 as any protected resource.

use std::time::Duration;

use http::Method;

use crate::model::{
    Audience, Auth, Encryption, Name, ProtectedResource, RealmRef, ResourceServer, ResourceServerRef, Scope,
    ScopeMatch, ScopeSet, Table, Upstream, Validity, defaults,
};
use crate::snapshot::{RealmEntry, ResourceServerEntry, Settings};

/// The managed collections: (URL segment, scope suffix).
pub const COLLECTIONS: [(&str, &str); 3] = [
    ("resource-servers", "resource_servers"),
    ("protected-resources", "protected_resources"),
    ("clients", "clients"),
];

/// The scope that revokes tokens through the Management API.
pub const REVOKE_SCOPE: &str = "revoke:tokens";

/// The scope that reads the change log (who changed what).
pub const CHANGES_SCOPE: &str = "read:changes";

/// The scope that reads the gateway's recent activity (requests allowed and refused).
pub const ACTIVITY_SCOPE: &str = "read:activity";

/// The id of `realm`'s Management API resource server.
pub fn server_id(realm: &str) -> String {
    format!("management:{realm}")
}

/// The path prefix of `realm`'s Management API.
pub fn base_path(realm: &str) -> String {
    format!("/api/v1/{realm}")
}

/// Every scope of a Management API.
pub fn scopes() -> Vec<String> {
    let mut out: Vec<String> = COLLECTIONS
        .iter()
        .flat_map(|(_, entity)| ["read", "create", "update", "delete"].map(|action| format!("{action}:{entity}")))
        .collect();
    out.push(REVOKE_SCOPE.to_owned());
    out.push(CHANGES_SCOPE.to_owned());
    out.push(ACTIVITY_SCOPE.to_owned());
    out
}

/// Adds each realm's Management API resource server to `servers` (ids and audiences are
/// the gateway's own; a declared one with the same id or audience is reported by the
/// resource-server compiler's uniqueness rules, which run first).
pub(super) fn add_servers(
    settings: &Settings,
    realms: &Table<RealmRef, RealmEntry>,
    servers: &mut Table<ResourceServerRef, ResourceServerEntry>,
) {
    for (ri, realm) in realms.entries() {
        let name = realm.name.as_str();
        let scopes = scope_set(&scopes());
        servers.push(ResourceServerEntry {
            resource_server: ResourceServer {
                id: Name::new(&server_id(name)),
                name: format!("Management API ({name})"),
                realm: ri,
                audience: Audience::new(&format!("{}{}", settings.public_url, base_path(name))),
                upstream: Upstream {
                    scheme: http::uri::Scheme::HTTP,
                    authority: http::uri::Authority::from_static("127.0.0.1"),
                    base_path: String::new(),
                },
                scope_descriptions: scopes
                    .iter()
                    .map(|s| (s.as_str().to_owned(), describe(s.as_str())))
                    .collect(),
                scopes,
                // A token asked for without `scope` holds every scope of the API its client
                // may have (the issuer filters defaults by the client's own list).
                default_scopes: scope_set(&self::scopes()),
                access_token_ttl: realm.access_token_ttl.min(defaults::MANAGEMENT_TOKEN_TTL),
                signing_alg: None,
                default: false,
                claim_headers: Vec::new(),
                keep_authorization: false,
                credentials: None,
                encryption: Encryption::None,
                response_timeout: Duration::from_secs(30),
                max_body_bytes: Some(defaults::MANAGEMENT_MAX_BODY),
                validity: Validity::default(),
                cors: None,
                contacts: Vec::new(),
                metadata: toml::Table::new(),
                source: "built-in".into(),
                management: true,
                enforce: true,
            },
            jwe: None,
            // Described once the realms' issuers are known (`discovery`).
            metadata: None,
        });
    }
}

/// The protected resources of every Management API in `servers`: which scope each call
/// needs.
pub(super) fn resources(
    servers: &Table<ResourceServerRef, ResourceServerEntry>,
    realms: &Table<RealmRef, RealmEntry>,
) -> Vec<ProtectedResource> {
    let mut out = Vec::new();
    for (ri, rs) in servers.entries().filter(|(_, rs)| rs.management) {
        let realm = realms[rs.realm].name.as_str();
        let base = base_path(realm);
        let mut add = |what: &str, methods: &[Method], paths: Vec<String>, scope: Option<&str>| {
            out.push(ProtectedResource {
                id: Name::new(&format!("{}:{what}", server_id(realm))),
                resource_server: ri,
                host: None,
                // No methods: any (the catch-all below); the API answers 405 or 404 itself.
                methods: (!methods.is_empty()).then(|| methods.to_vec()),
                paths,
                auth: Auth::Token,
                scopes: scope_set(scope.as_slice()),
                scope_match: ScopeMatch::All,
                max_age: None,
                max_token_lifetime: None,
                validity: Validity::default(),
                // The Management API always answers its refusals.
                enforce: Some(true),
                source: "built-in".into(),
            });
        };
        for (segment, entity) in COLLECTIONS {
            let coll = format!("{base}/{segment}");
            let read = format!("read:{entity}");
            add(
                &format!("read-{segment}"),
                &[Method::GET, Method::HEAD],
                vec![coll.clone(), format!("{coll}/**")],
                Some(&read),
            );
            add(
                &format!("create-{segment}"),
                &[Method::POST],
                vec![coll.clone()],
                Some(&format!("create:{entity}")),
            );
            add(
                &format!("update-{segment}"),
                &[Method::PATCH],
                vec![format!("{coll}/*")],
                Some(&format!("update:{entity}")),
            );
            add(
                &format!("delete-{segment}"),
                &[Method::DELETE],
                vec![format!("{coll}/*")],
                Some(&format!("delete:{entity}")),
            );
        }
        add(
            "client-secret",
            &[Method::POST],
            vec![format!("{base}/clients/*/secret")],
            Some("update:clients"),
        );
        add(
            "scopes",
            &[Method::POST, Method::DELETE],
            vec![
                format!("{base}/resource-servers/*/scopes"),
                format!("{base}/resource-servers/*/scopes/*"),
            ],
            Some("update:resource_servers"),
        );
        add(
            "revocations",
            &[Method::POST],
            vec![format!("{base}/revocations")],
            Some(REVOKE_SCOPE),
        );
        add(
            "changes",
            &[Method::GET, Method::HEAD],
            vec![format!("{base}/changes")],
            Some(CHANGES_SCOPE),
        );
        add(
            "activity",
            &[Method::GET, Method::HEAD],
            vec![format!("{base}/activity")],
            Some(ACTIVITY_SCOPE),
        );
        add(
            "match",
            &[Method::GET, Method::HEAD],
            vec![format!("{base}/match")],
            Some("read:protected_resources"),
        );
        // The API's description: any valid token for it.
        add(
            "openapi",
            &[Method::GET, Method::HEAD],
            vec![format!("{base}/openapi.json")],
            None,
        );
        // Everything else below the API, any method, with any valid token for it: answered
        // 405 (with `Allow`) or 404 by the API itself, never by the gateway's unmatched rule.
        add("other", &[], vec![format!("{base}/**")], None);
    }
    out
}

fn scope_set(names: &[impl AsRef<str>]) -> ScopeSet {
    ScopeSet::new(names.iter().filter_map(|s| Scope::parse(s.as_ref())))
}

fn describe(scope: &str) -> String {
    let (action, entity) = scope.split_once(':').unwrap_or((scope, ""));
    let entity = entity.replace('_', " ");
    match action {
        "revoke" => "revoke access tokens".to_owned(),
        "read" if entity == "changes" => "read the change log".to_owned(),
        _ => format!("{action} {entity}"),
    }
}
