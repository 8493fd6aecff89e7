//! The immutable, validated configuration a request is served with: domain entities, their
//! keys and the compiled route table. One `ArcSwap<Snapshot>` holds the current one; each
//! request loads it once and keeps it to the end.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, StatusCode};

use crate::discovery::ResourceMetadata;
use crate::jwks::{RealmKeys, SigningKeys};
use crate::model::{
    Client, ClientRef, IssuerEndpoint, ProtectedResource, Realm, RealmRef, ResourceRef, ResourceServer,
    ResourceServerRef, Table, TrustedProxies, defaults,
};
use crate::routing::Router;
use crate::token::jwe::JweKeys;

/// Listener-wide settings (`[server]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Listen address. Defaults to `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Status answered when no protected resource matches. Defaults to 404.
    pub unmatched_status: StatusCode,
    /// Methods beyond RFC 9110's and PATCH (WebDAV's `PROPFIND`, caches' `PURGE`…) that
    /// protected resources may list. Defaults to none: an unknown method is a typo.
    pub extension_methods: Vec<http::Method>,
    /// Verified-token cache capacity; 0 turns the cache off. Defaults to 100 000.
    pub token_cache_capacity: u64,
    /// Bound on receiving a request's headers (slowloris). Defaults to 10 s.
    pub header_read_timeout: Duration,
    /// Bound on a request head in bytes: HTTP/1.1 read buffer (431 past it), HTTP/2 header
    /// list size. At least 8192 (hyper's floor). Defaults to 64 KiB.
    pub max_header_bytes: usize,
    /// Bound on the number of HTTP/1.1 request header fields (431 past it). Defaults to 100.
    pub max_headers: usize,
    /// How long a connection may stay open with no request in flight and no bytes moving.
    /// Defaults to 60 s.
    pub idle_timeout: Duration,
    /// Bound on open connections to the public listener; `None` for no bound. Defaults to
    /// none.
    pub max_connections: Option<usize>,
    /// Bound on opening a connection to an upstream. Defaults to 5 s.
    pub upstream_connect_timeout: Duration,
    /// The admin listener (`/healthz`, `/readyz`); off when `None`. Defaults to off.
    pub admin_listen: Option<SocketAddr>,
    /// The origin clients reach the gateway at, without a trailing slash: each realm's
    /// Management API audience is `<public_url>/api/v1/<realm>`. Defaults to
    /// `http://<listen>`.
    pub public_url: String,
    /// Whether the Admin Panel is served at `/admin` on the public listener. Defaults to on.
    pub admin_panel: bool,
    /// The store: its URL (`sqlite://…` or `postgres://…`). Defaults to
    /// `sqlite://data/portcullis.db`. Read at start; a change takes effect on restart.
    pub store_url: String,
    /// How often a replica reads the store's change log when nothing woke it. Defaults to
    /// 1 s.
    pub store_poll_interval: Duration,
    /// The peers whose forwarding headers are believed (`trusted_proxies`). Defaults to none.
    pub trusted_proxies: TrustedProxies,
    /// Whether every connection on the public listener starts with a PROXY protocol header
    /// (v1 or v2) from one of `trusted_proxies`, giving the client's address. Defaults to
    /// off.
    pub proxy_protocol: bool,
    /// Decision mode's forward-auth endpoints on the public listener; off when `None`.
    /// Defaults to off.
    pub decision: Option<DecisionSettings>,
}

/// Decision mode (`[server] decision_path`): where the forward-auth endpoints are, and which
/// headers carry nginx's original request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionSettings {
    /// The endpoints' common prefix, without a trailing slash: `<path>/nginx`,
    /// `<path>/forwarded` (Traefik, Caddy) and `<path>/envoy/<original path>`.
    pub path: String,
    /// The header nginx puts the original URI in (`decision_uri_header`). Defaults to
    /// `X-Original-URI`.
    pub uri_header: HeaderName,
    /// The header nginx puts the original method in (`decision_method_header`). Defaults to
    /// `X-Original-Method`.
    pub method_header: HeaderName,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(defaults::LISTEN),
            unmatched_status: StatusCode::NOT_FOUND,
            extension_methods: Vec::new(),
            token_cache_capacity: defaults::TOKEN_CACHE_CAPACITY,
            header_read_timeout: defaults::HEADER_READ_TIMEOUT,
            max_header_bytes: defaults::MAX_HEADER_BYTES,
            max_headers: defaults::MAX_HEADERS,
            idle_timeout: defaults::IDLE_TIMEOUT,
            max_connections: None,
            upstream_connect_timeout: defaults::UPSTREAM_CONNECT_TIMEOUT,
            admin_listen: None,
            public_url: format!("http://{}", SocketAddr::from(defaults::LISTEN)),
            admin_panel: true,
            store_url: defaults::STORE_URL.to_owned(),
            store_poll_interval: defaults::STORE_POLL_INTERVAL,
            trusted_proxies: TrustedProxies::default(),
            proxy_protocol: false,
            decision: None,
        }
    }
}

/// A realm with its live key stores: one entry, read through to the [`Realm`].
#[derive(Debug)]
pub struct RealmEntry {
    /// The realm.
    pub realm: Realm,
    /// Its verification keys.
    pub keys: Arc<RealmKeys>,
    /// Its private signing keys (empty when it runs no embedded issuer).
    pub signing: Arc<SigningKeys>,
}

impl std::ops::Deref for RealmEntry {
    type Target = Realm;

    fn deref(&self) -> &Realm {
        &self.realm
    }
}

/// A resource server with its token encryption keys.
#[derive(Debug)]
pub struct ResourceServerEntry {
    /// The resource server.
    pub resource_server: ResourceServer,
    /// Its JWE keys (`None` without encryption).
    pub jwe: Option<Arc<JweKeys>>,
    /// Its RFC 9728 metadata (`None` when its audience is no `http(s)` URL).
    pub metadata: Option<ResourceMetadata>,
}

impl std::ops::Deref for ResourceServerEntry {
    type Target = ResourceServer;

    fn deref(&self) -> &ResourceServer {
        &self.resource_server
    }
}

/// A client of an embedded issuer with its assertion keys.
#[derive(Debug)]
pub struct ClientEntry {
    /// The client.
    pub client: Client,
    /// Its assertion verification keys (`private_key_jwt` only).
    pub keys: Option<Arc<RealmKeys>>,
}

impl std::ops::Deref for ClientEntry {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

/// A complete, validated configuration.
#[derive(Debug)]
pub struct Snapshot {
    /// Its number, given by the verifier that swaps it in (0 until then). Verdicts in the
    /// token caches carry it, so one reached under an older configuration never answers
    /// under this one.
    pub epoch: u64,
    /// Listener-wide settings.
    pub settings: Settings,
    /// Realms, with their keys.
    pub realms: Table<RealmRef, RealmEntry>,
    /// Resource servers, with their encryption keys.
    pub resource_servers: Table<ResourceServerRef, ResourceServerEntry>,
    /// Protected resources.
    pub resources: Table<ResourceRef, ProtectedResource>,
    /// The route table over `resources`.
    pub router: Router,
    /// Clients of the embedded issuers, with their assertion keys.
    pub clients: Table<ClientRef, ClientEntry>,
    /// Embedded issuer endpoints by exact path.
    pub issuer_routes: HashMap<String, (RealmRef, IssuerEndpoint)>,
    /// Resource servers by the exact path of their RFC 9728 metadata (several when their
    /// audiences differ only in host).
    pub metadata_routes: HashMap<Box<str>, Vec<ResourceServerRef>>,
    /// Every declared resource server, protected resource and client as written.
    pub catalog: Catalog,
    /// The configuration files this snapshot was compiled from.
    pub sources: Vec<PathBuf>,
    /// Every file read to compile it (configuration files and the files they name), with
    /// what each held.
    pub inputs: crate::inputs::Inputs,
    /// TLS on the public listener (`tls_cert`, `tls_key`, `tls_client_ca`); plain HTTP when
    /// `None`. New connections handshake with the snapshot current when they are accepted.
    pub listener_tls: Option<crate::tls::ListenerTls>,
    /// The only trust anchors for `https://` upstreams (`upstream_ca`); the platform's roots
    /// when `None`.
    pub upstream_ca: Option<crate::tls::UpstreamCa>,
}

impl Snapshot {
    /// A resource server by id.
    pub fn resource_server(&self, id: &str) -> Option<(ResourceServerRef, &ResourceServerEntry)> {
        self.resource_servers.find(|rs| rs.id.as_str() == id)
    }

    /// A realm by name.
    pub fn realm(&self, name: &str) -> Option<(RealmRef, &RealmEntry)> {
        self.realms.find(|r| r.name.as_str() == name)
    }

    /// A client by id within a realm.
    pub fn client(&self, realm: RealmRef, client_id: &str) -> Option<(ClientRef, &ClientEntry)> {
        self.clients
            .find(|c| c.realm == realm && c.client_id.as_str() == client_id)
    }

    /// The outer (JWE) layer resource server `rs`'s tokens have, if it encrypts them.
    pub fn outer(&self, rs: ResourceServerRef) -> Option<crate::token::Outer<'_>> {
        let keys = self.resource_servers.get(rs)?.jwe.as_deref()?;
        Some(crate::token::Outer { keys })
    }

    /// What a token for resource server `rs` is judged under: its realm, keys, this
    /// snapshot's number and the resource server's outer layer.
    pub fn judge(&self, rs: ResourceServerRef) -> Option<crate::token::Judge<'_>> {
        let realm = &self.realms[self.resource_servers.get(rs)?.realm];
        Some(crate::token::Judge {
            realm: &realm.realm,
            keys: &realm.keys,
            epoch: self.epoch,
            outer: self.outer(rs),
        })
    }

    /// The RFC 9728 metadata served at `path` to a request for `host` (as sent): the one
    /// resource server described there, or, when several audiences share the path, the one
    /// whose audience names that host. The document's contents never depend on the request.
    pub fn metadata_at(&self, path: &str, host: Option<&str>) -> Option<(ResourceServerRef, &ResourceMetadata)> {
        // Most requests are not for metadata: one prefix test, no hashing.
        if !path.starts_with(crate::discovery::WELL_KNOWN) {
            return None;
        }
        let described = |rs: ResourceServerRef| self.resource_servers.get(rs)?.metadata.as_ref().map(|m| (rs, m));
        match self.metadata_routes.get(path)?.as_slice() {
            [one] => described(*one),
            several => {
                let host = crate::routing::host_name(host?);
                several
                    .iter()
                    .filter_map(|rs| described(*rs))
                    .find(|(_, m)| *m.host == *host)
            }
        }
    }

    /// Whether every realm has usable keys (readiness).
    pub fn ready(&self) -> bool {
        self.realms.iter().all(|r| r.keys.health().usable)
    }
}

/// One declared resource server, protected resource or client as written (JSON, the
/// configuration's own shape; secrets' hashes kept, so a write keeps them, but never shown)
/// and where it came from: what the Management API shows.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogEntry {
    /// Its kind.
    pub kind: crate::model::EntityKind,
    /// Its id.
    pub id: String,
    /// Its realm.
    pub realm: String,
    /// A file, or the store at a version.
    pub source: crate::model::EntitySource,
    /// The declaration.
    pub body: serde_json::Value,
}

/// Every declared entity that compiled, by kind and id.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    entries: std::collections::BTreeMap<(crate::model::EntityKind, String), std::sync::Arc<CatalogEntry>>,
}

impl Catalog {
    /// Adds an entry (a later one of the same kind and id replaces it).
    pub fn insert(&mut self, entry: CatalogEntry) {
        self.entries
            .insert((entry.kind, entry.id.clone()), std::sync::Arc::new(entry));
    }

    /// The entry of `kind` with `id`.
    pub fn get(&self, kind: crate::model::EntityKind, id: &str) -> Option<&std::sync::Arc<CatalogEntry>> {
        self.entries.get(&(kind, id.to_owned()))
    }

    /// The entries of `kind` in `realm` with an id after `after`, by id.
    pub fn list<'a>(
        &'a self,
        kind: crate::model::EntityKind,
        realm: &'a str,
        after: Option<&'a str>,
    ) -> impl Iterator<Item = &'a std::sync::Arc<CatalogEntry>> + 'a {
        let start = (kind, after.unwrap_or_default().to_owned());
        self.entries
            .range(start..)
            .take_while(move |((k, _), _)| *k == kind)
            .filter(move |((_, id), _)| after.is_none_or(|a| id.as_str() > a))
            .map(|(_, e)| e)
            .filter(move |e| e.realm == realm)
    }
}
