//! Compiling `[[protected_resource]]` tables: resource server, host, methods, paths, `auth`,
//! required scopes, `max_age` and the token lifetime cap.

use std::collections::{HashMap, HashSet};

use http::Method;

use super::declared::Declared;
use super::raw::RawProtectedResource;
use super::report::{Ctx, Entity, label};
use crate::model::{
    Auth, EntityRef, Name, ProtectedResource, ResourceRef, ResourceServerRef, ScopeMatch, ScopeSet, Table,
};
use crate::routing::{InsertError, Route, Router};
use crate::snapshot::ResourceServerEntry;

/// What a protected resource is compiled against.
pub(super) struct Known<'a> {
    /// The compiled resource servers by id (built-in ones left out).
    pub rs_index: HashMap<&'a str, ResourceServerRef>,
    /// The compiled resource servers.
    pub servers: &'a Table<ResourceServerRef, ResourceServerEntry>,
    /// Resource servers declared but in error: a reference to one is not an error of its own.
    pub failed: &'a HashSet<String>,
    /// `[server] extension_methods`.
    pub extension_methods: &'a [Method],
}

pub(super) fn compile_resource(
    e: &mut Entity<'_, '_>,
    raw: &RawProtectedResource,
    known: &Known<'_>,
) -> Option<ProtectedResource> {
    let servers = known.servers;
    let id = e.required("id", &raw.id);
    let rs = e.required("resource_server", &raw.resource_server).and_then(|r| {
        let found = known.rs_index.get(r).copied();
        if found.is_none() && !known.failed.contains(r) {
            let hint = super::suggest::did_you_mean(r, known.rs_index.keys().copied());
            e.err("resource_server", format!("no resource server has id {r:?}{hint}"));
        }
        found
    });
    let host = raw.host.as_deref().and_then(|h| host(e, h));
    let methods = raw.methods.as_deref().map(|ms| methods(e, ms, known.extension_methods));
    let paths = paths(e, raw.paths.as_deref());
    let auth: Auth = e.choice("auth", &raw.auth).unwrap_or_default();
    if auth == Auth::None {
        open_asks_nothing(e, raw);
    }
    let scopes = required_scopes(e, raw, rs.map(|ri| &servers[ri]));
    let scope_match: ScopeMatch = e.choice("scope_match", &raw.scope_match).unwrap_or_default();
    let max_age = e.seconds("max_age", &raw.max_age);
    let max_token_lifetime = e.seconds("max_token_lifetime", &raw.max_token_lifetime);
    let validity = e.validity(&raw.valid_from, &raw.disabled_on);
    Some(ProtectedResource {
        id: Name::new(id?),
        resource_server: rs?,
        host,
        methods,
        paths,
        auth,
        scopes,
        scope_match,
        max_age,
        max_token_lifetime,
        validity,
        enforce: raw.enforce,
        source: e.file().to_path_buf(),
    })
}

/// An open resource checks no token, so a token requirement written beside `auth = "none"`
/// would never be enforced: an error naming the field, not a silently weaker route.
fn open_asks_nothing(e: &mut Entity<'_, '_>, raw: &RawProtectedResource) {
    let written = [
        ("scopes", raw.scopes.as_ref().is_some_and(|s| !s.is_empty())),
        ("scope_match", raw.scope_match.is_some()),
        ("max_age", raw.max_age.is_some()),
        ("max_token_lifetime", raw.max_token_lifetime.is_some()),
    ];
    for (field, set) in written {
        if set {
            e.err(
                field,
                "an open resource (auth = \"none\") checks no token; remove this field or the auth setting",
            );
        }
    }
}

/// `host`: a lower-cased host name, without port or scheme.
fn host(e: &mut Entity<'_, '_>, h: &str) -> Option<String> {
    let h = h.trim().to_ascii_lowercase();
    let ok =
        !h.is_empty() && !h.contains(':') && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if !ok {
        e.err("host", format!("{h:?} is not a host name (no port, no scheme)"));
    }
    ok.then_some(h)
}

/// RFC 9110 § 9.3's methods and PATCH (RFC 5789): any other must be listed in
/// `[server] extension_methods`, so a typo such as `GTE` is an error, not a dead route.
const STANDARD_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// `methods`: at least one, each a standard or declared extension method, without repeats.
fn methods(e: &mut Entity<'_, '_>, ms: &[String], extension: &[Method]) -> Vec<Method> {
    let mut out = Vec::new();
    if ms.is_empty() {
        e.err(
            "methods",
            "must list at least one method, or be left out for any method",
        );
    }
    for m in ms {
        let upper = m.to_ascii_uppercase();
        let Ok(method) = Method::from_bytes(upper.as_bytes()) else {
            e.err("methods", format!("{m:?} is not a method token (RFC 9110 § 9.1)"));
            continue;
        };
        if !STANDARD_METHODS.contains(&upper.as_str()) && !extension.contains(&method) {
            let hint = super::suggest::did_you_mean(&upper, STANDARD_METHODS);
            e.err(
                "methods",
                format!(
                    "{m:?} is not an HTTP method{hint}; an extension method (PROPFIND, PURGE…) must be listed in [server] extension_methods"
                ),
            );
            continue;
        }
        if !out.contains(&method) {
            out.push(method);
        }
    }
    out
}

/// `paths`: required, at least one pattern (the router checks each).
fn paths(e: &mut Entity<'_, '_>, paths: Option<&[String]>) -> Vec<String> {
    match paths {
        None => {
            e.err("paths", "is required");
            Vec::new()
        }
        Some([]) => {
            e.err("paths", "must list at least one path pattern");
            Vec::new()
        }
        Some(p) => p.to_vec(),
    }
}

/// `scopes`: each one of the resource server's, when it lists any.
fn required_scopes(
    e: &mut Entity<'_, '_>,
    raw: &RawProtectedResource,
    server: Option<&ResourceServerEntry>,
) -> ScopeSet {
    let scopes = e.scopes("scopes", &raw.scopes);
    if let Some(server) = server
        && !server.scopes.is_empty()
    {
        for s in scopes.iter() {
            if !server.scopes.contains(s.as_str()) {
                e.err(
                    "scopes",
                    format!(
                        "{:?} is not a scope of resource server {:?}{}",
                        s.as_str(),
                        server.id.as_str(),
                        super::suggest::did_you_mean(s.as_str(), server.scopes.iter().map(|x| x.as_str()))
                    ),
                );
            }
        }
    }
    scopes
}

/// Compiles every `[[protected_resource]]` and builds the route table over them: ids are
/// unique, and two resources that would match the same requests are an error naming both.
pub(super) fn compile_resources(
    c: &mut Ctx<'_>,
    declared: &Declared,
    servers: &Table<ResourceServerRef, ResourceServerEntry>,
    builtin: Vec<ProtectedResource>,
    failed: &HashSet<String>,
    extension_methods: &[Method],
) -> (Table<ResourceRef, ProtectedResource>, Router) {
    let known = Known {
        rs_index: servers
            .entries()
            .filter(|(_, rs)| !rs.management)
            .map(|(r, rs)| (rs.id.as_str(), r))
            .collect(),
        servers,
        failed,
        extension_methods,
    };
    let mut resources: Table<ResourceRef, ProtectedResource> = Table::default();
    let mut router = Router::new();
    let mut seen_ids = HashSet::new();
    for d in &declared.resources {
        {
            let (raw, i) = (&d.raw, d.position);
            let label = label("protected_resource", &raw.id, i);
            let mut e = c.entity(&d.origin.file, &d.origin.dir, &label);
            let Some(pr) = compile_resource(&mut e, raw, &known) else {
                continue;
            };
            if !seen_ids.insert(pr.id.as_str().to_owned()) {
                e.err("id", "another protected resource has this id");
                continue;
            }
            add_routes(&mut e, &mut router, &pr, resources.len(), &resources);
            resources.push(pr);
        }
    }
    // The built-in Management APIs' routes, after the declared ones (whose positions then
    // follow the declarations); a declared resource matching the same requests as one of
    // them is reported on the built-in one, naming the declared resource and its file.
    for pr in builtin {
        let label = format!("protected_resource {:?}", pr.id.as_str());
        let mut e = c.entity(&pr.source, &pr.source, &label);
        seen_ids.insert(pr.id.as_str().to_owned());
        add_routes(&mut e, &mut router, &pr, resources.len(), &resources);
        resources.push(pr);
    }
    (resources, router)
}

/// Adds the routes of `pr` (to be resource `index`) to `router`.
fn add_routes(
    e: &mut Entity<'_, '_>,
    router: &mut Router,
    pr: &ProtectedResource,
    index: usize,
    resources: &Table<ResourceRef, ProtectedResource>,
) {
    for pattern in &pr.paths {
        let route = Route {
            resource: index,
            host: pr.host.as_deref(),
            methods: pr.methods.as_deref(),
            pattern,
        };
        match router.insert(route) {
            Ok(()) => {}
            Err(InsertError::Pattern(why)) => e.err("paths", format!("{pattern:?}: {why}")),
            Err(InsertError::Overlap(o)) => {
                let other = &resources[ResourceRef::at(o.first)];
                e.err(
                    "paths",
                    format!(
                        "{pattern:?} matches the same requests as protected_resource {:?} ({}); make one more specific (host, methods or path)",
                        other.id.as_str(),
                        other.source.display()
                    ),
                );
            }
        }
    }
}
