//! The declared entities: every `[server]` table, realm, resource server, protected resource
//! and client a configuration declares, each with where it was declared. This is the
//! compiler's one input, whatever the source: configuration files are read into it, and any
//! other source of entities adds its declarations to the same set, so one compiler checks
//! them all with the same rules and a reference from one source to another resolves like
//! any other.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::store::StoredEntity;

use super::error::ConfigErrors;
use super::raw::{RawClient, RawFile, RawProtectedResource, RawRealm, RawResourceServer, RawServer, RawStore};

/// Where a declaration came from: what its errors name, and what its relative paths
/// resolve against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Origin {
    /// The file (or, for a source that is not a file, its name).
    pub file: PathBuf,
    /// The directory relative paths in it resolve against.
    pub dir: PathBuf,
}

impl Origin {
    /// The origin of declarations read from the file at `path`.
    pub(super) fn file(path: &Path) -> Self {
        Self {
            file: path.to_path_buf(),
            dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        }
    }
}

/// One declared entity, as written.
#[derive(Debug)]
pub(super) struct Declaration<T> {
    /// Where it was declared.
    pub origin: Arc<Origin>,
    /// Its position among the entities of its kind in its origin, from 0: what names it
    /// (`resource_server #2`) when it has no id.
    pub position: usize,
    /// The entity as written.
    pub raw: T,
    /// Its version in the store (its `ETag`); `None` for a file's.
    pub version: Option<i64>,
}

/// Every entity of a configuration, in declaration order.
#[derive(Debug, Default)]
pub(super) struct Declared {
    /// The origins, in the order they were added.
    pub origins: Vec<Arc<Origin>>,
    /// `[server]` tables (at most one is allowed; the compiler says so).
    pub servers: Vec<Declaration<RawServer>>,
    /// Realms.
    pub realms: Vec<Declaration<RawRealm>>,
    /// Resource servers.
    pub resource_servers: Vec<Declaration<RawResourceServer>>,
    /// Protected resources.
    pub resources: Vec<Declaration<RawProtectedResource>>,
    /// Clients.
    pub clients: Vec<Declaration<RawClient>>,
    /// `[store]` tables (at most one is allowed; the compiler says so).
    pub stores: Vec<Declaration<RawStore>>,
    /// Entities whose table could not be read (its error is already reported), by table and
    /// id or name: a reference to one is not reported again.
    pub unparsed: std::collections::HashSet<(&'static str, String)>,
}

impl Declared {
    /// Adds what one parsed source declares.
    pub(super) fn add(&mut self, origin: Origin, raw: RawFile) {
        let origin = Arc::new(origin);
        self.origins.push(origin.clone());
        let RawFile {
            server,
            realm,
            resource_server,
            protected_resource,
            client,
            store,
        } = raw;
        push(&mut self.servers, &origin, server);
        push(&mut self.realms, &origin, realm);
        push(&mut self.resource_servers, &origin, resource_server);
        push(&mut self.resources, &origin, protected_resource);
        push(&mut self.clients, &origin, client);
        push(&mut self.stores, &origin, store);
    }

    /// Adds the store's managed entities. Each is a declaration in the files' own shape,
    /// as JSON; one that does not parse (written by a newer version, or by hand) is an
    /// error naming it.
    pub(super) fn add_managed(&mut self, managed: &[StoredEntity]) -> Result<(), ConfigErrors> {
        let origin = Arc::new(Origin {
            file: PathBuf::from("store"),
            dir: PathBuf::new(),
        });
        let mut errors = ConfigErrors::default();
        for (position, m) in managed.iter().enumerate() {
            let parsed = match m.kind.as_str() {
                "resource_server" => {
                    parse(&m.body).map(|raw| push_one(&mut self.resource_servers, &origin, position, raw, m.version))
                }
                "protected_resource" => {
                    parse(&m.body).map(|raw| push_one(&mut self.resources, &origin, position, raw, m.version))
                }
                "client" => parse(&m.body).map(|raw| push_one(&mut self.clients, &origin, position, raw, m.version)),
                other => Err(format!("unknown kind {other:?}")),
            };
            if let Err(why) = parsed {
                let entity = format!("{} {:?}", m.kind, m.id);
                errors.push(&origin.file, &entity, None, format!("cannot be read: {why}"));
            }
        }
        if !managed.is_empty() {
            self.origins.push(origin);
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    /// The first origin: what an error about the configuration as a whole names.
    pub(super) fn first_file(&self) -> PathBuf {
        self.origins.first().map(|o| o.file.clone()).unwrap_or_default()
    }
}

fn parse<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, String> {
    serde_json::from_str(json).map_err(|e| e.to_string())
}

fn push_one<T>(into: &mut Vec<Declaration<T>>, origin: &Arc<Origin>, position: usize, raw: T, version: i64) {
    into.push(Declaration {
        origin: origin.clone(),
        position,
        raw,
        version: Some(version),
    });
}

fn push<T>(into: &mut Vec<Declaration<T>>, origin: &Arc<Origin>, raws: impl IntoIterator<Item = T>) {
    into.extend(raws.into_iter().enumerate().map(|(position, raw)| Declaration {
        origin: origin.clone(),
        position,
        raw,
        version: None,
    }));
}
