//! The immutable, validated configuration a request is served with: domain entities, their
//! keys and the compiled route table. One `ArcSwap<Snapshot>` holds the current one; each
//! request loads it once and keeps it to the end.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

use crate::jwks::{RealmKeys, SigningKeys};
use crate::model::{Client, IssuerEndpoint, ProtectedResource, Realm, ResourceServer, defaults};
use crate::routing::Router;
use crate::token::jwe::JweKeys;

/// Listener-wide settings (`[server]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Listen address. Defaults to `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Status answered when no protected resource matches. Defaults to 404.
    pub unmatched_status: StatusCode,
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
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(defaults::LISTEN),
            unmatched_status: StatusCode::NOT_FOUND,
            token_cache_capacity: defaults::TOKEN_CACHE_CAPACITY,
            header_read_timeout: defaults::HEADER_READ_TIMEOUT,
            max_header_bytes: defaults::MAX_HEADER_BYTES,
            max_headers: defaults::MAX_HEADERS,
            idle_timeout: defaults::IDLE_TIMEOUT,
            max_connections: None,
            upstream_connect_timeout: defaults::UPSTREAM_CONNECT_TIMEOUT,
            admin_listen: None,
        }
    }
}

/// A complete, validated configuration.
#[derive(Debug)]
pub struct Snapshot {
    /// Listener-wide settings.
    pub settings: Settings,
    /// Realms.
    pub realms: Vec<Realm>,
    /// Verification keys, parallel to `realms`.
    pub realm_keys: Vec<Arc<RealmKeys>>,
    /// Private signing keys, parallel to `realms` (empty for realms without).
    pub signing_keys: Vec<Arc<SigningKeys>>,
    /// Resource servers.
    pub resource_servers: Vec<ResourceServer>,
    /// Protected resources.
    pub resources: Vec<ProtectedResource>,
    /// The route table over `resources`.
    pub router: Router,
    /// Token encryption keys, parallel to `resource_servers` (`None` without encryption).
    pub rs_jwe: Vec<Option<Arc<JweKeys>>>,
    /// Clients of the embedded issuers.
    pub clients: Vec<Client>,
    /// Assertion verification keys, parallel to `clients` (`private_key_jwt` only).
    pub client_keys: Vec<Option<Arc<RealmKeys>>>,
    /// Embedded issuer endpoints by exact path: (realm index, endpoint).
    pub issuer_routes: HashMap<String, (usize, IssuerEndpoint)>,
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
    pub fn resource_server(&self, id: &str) -> Option<(usize, &ResourceServer)> {
        self.resource_servers
            .iter()
            .enumerate()
            .find(|(_, rs)| rs.id.as_str() == id)
    }

    /// A realm by name.
    pub fn realm(&self, name: &str) -> Option<(usize, &Realm)> {
        self.realms.iter().enumerate().find(|(_, r)| r.name.as_str() == name)
    }

    /// A client by id within a realm.
    pub fn client(&self, realm: usize, client_id: &str) -> Option<(usize, &Client)> {
        self.clients
            .iter()
            .enumerate()
            .find(|(_, c)| c.realm == realm && c.client_id.as_str() == client_id)
    }

    /// Whether every realm has usable keys (readiness).
    pub fn ready(&self) -> bool {
        self.realm_keys.iter().all(|k| k.health().usable)
    }
}
