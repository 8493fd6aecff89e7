//! The catalog: every declared resource server, protected resource and client that
//! compiled, as written and with where it came from, for the Management API to show. The
//! body is the declaration itself (JSON, absent fields left out), so what a client reads is
//! what it can write back, and a file's entity reads the same way as a stored one.

use serde::Serialize;

use super::declared::{Declaration, Declared};
use crate::model::{
    ClientRef, EntityKind, EntitySource, ProtectedResource, RealmRef, ResourceRef, ResourceServerRef, Table,
};
use crate::snapshot::{Catalog, CatalogEntry, ClientEntry, RealmEntry, ResourceServerEntry};

/// Fields kept in the catalog (a write through the API keeps them) but never shown: a
/// secret's hash is not a secret, but nobody reading the API needs it.
pub(crate) const HIDDEN: [&str; 1] = ["client_secret_hash"];

/// The catalog of what compiled.
pub(super) fn build(
    declared: &Declared,
    realms: &Table<RealmRef, RealmEntry>,
    servers: &Table<ResourceServerRef, ResourceServerEntry>,
    resources: &Table<ResourceRef, ProtectedResource>,
    clients: &Table<ClientRef, ClientEntry>,
) -> Catalog {
    let mut catalog = Catalog::default();
    let realm_name = |r: RealmRef| realms[r].name.as_str().to_owned();
    for d in &declared.resource_servers {
        let compiled = d
            .raw
            .id
            .as_deref()
            .and_then(|id| servers.find(|rs| rs.id.as_str() == id));
        if let Some((_, rs)) = compiled {
            catalog.insert(entry(
                EntityKind::ResourceServer,
                rs.id.as_str(),
                realm_name(rs.realm),
                d,
            ));
        }
    }
    for d in &declared.resources {
        let compiled = d
            .raw
            .id
            .as_deref()
            .and_then(|id| resources.find(|pr| pr.id.as_str() == id));
        if let Some((_, pr)) = compiled {
            let realm = realm_name(servers[pr.resource_server].realm);
            catalog.insert(entry(EntityKind::ProtectedResource, pr.id.as_str(), realm, d));
        }
    }
    for d in &declared.clients {
        let compiled = d
            .raw
            .client_id
            .as_deref()
            .and_then(|id| clients.find(|c| c.client_id.as_str() == id));
        if let Some((_, c)) = compiled {
            catalog.insert(entry(EntityKind::Client, c.client_id.as_str(), realm_name(c.realm), d));
        }
    }
    catalog
}

fn entry<T: Serialize>(kind: EntityKind, id: &str, realm: String, d: &Declaration<T>) -> CatalogEntry {
    CatalogEntry {
        kind,
        id: id.to_owned(),
        realm,
        source: match d.version {
            Some(version) => EntitySource::Store { version },
            None => EntitySource::File(d.origin.file.clone()),
        },
        body: body(&d.raw),
    }
}

/// The declaration as a JSON object, without absent fields ([`HIDDEN`] ones are kept here
/// and left out where it is shown).
pub(crate) fn body<T: Serialize>(raw: &T) -> serde_json::Value {
    let mut value = serde_json::to_value(raw).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.retain(|_, v| !v.is_null());
    }
    value
}
