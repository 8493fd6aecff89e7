//! The configuration as written: serde structs mirroring the TOML, with every table
//! refusing unknown keys so a typo cannot silently weaken a check. Defaults live in the
//! compiler (`compile.rs`), documented in the README's configuration reference.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    /// `[server]`: at most one file of a directory may have it.
    pub server: Option<RawServer>,
    /// `[[realm]]` tables.
    #[serde(default)]
    pub realm: Vec<RawRealm>,
    /// `[[resource_server]]` tables.
    #[serde(default)]
    pub resource_server: Vec<RawResourceServer>,
    /// `[[protected_resource]]` tables.
    #[serde(default)]
    pub protected_resource: Vec<RawProtectedResource>,
    /// `[[client]]` tables.
    #[serde(default)]
    pub client: Vec<RawClient>,
    /// `[store]`: at most one file of a directory may have it.
    pub store: Option<RawStore>,
}

/// `[store]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    /// `sqlite://PATH`, `sqlite::memory:` or `postgres://…`.
    pub url: Option<String>,
    /// An environment variable holding the URL (a password stays out of the file).
    pub url_env: Option<String>,
    /// How often a replica reads the change log when nothing woke it.
    pub poll_interval: Option<String>,
}

/// `[server]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    /// Listen address.
    pub listen: Option<String>,
    /// Status for requests no protected resource matches.
    pub unmatched_status: Option<u16>,
    /// Verified-token cache on/off.
    pub token_cache: Option<bool>,
    /// Verified-token cache size.
    pub token_cache_capacity: Option<u64>,
    /// Slowloris bound on reading request headers.
    pub header_read_timeout: Option<String>,
    /// Bound on a request head's size (HTTP/1.1 buffer, HTTP/2 header list).
    pub max_header_bytes: Option<usize>,
    /// Bound on the number of request header fields (HTTP/1.1).
    pub max_headers: Option<usize>,
    /// How long a connection may sit with no request in flight and no bytes moving.
    pub idle_timeout: Option<String>,
    /// Bound on open connections to the public listener.
    pub max_connections: Option<usize>,
    /// Bound on connecting to an upstream.
    pub upstream_connect_timeout: Option<String>,
    /// Admin listener address.
    pub admin_listen: Option<String>,
    /// The origin clients reach the gateway at (`https://gw.example.com`): the Management
    /// API's audience is built from it, never from a request's `Host`.
    pub public_url: Option<String>,
    /// Whether the Admin Panel is served at `/admin`.
    pub admin_panel: Option<bool>,
    /// Methods beyond RFC 9110's and PATCH that protected resources may list.
    pub extension_methods: Option<Vec<String>>,
    /// PEM certificate chain of the public listener; TLS is on when set.
    pub tls_cert: Option<String>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<String>,
    /// PEM CA certificates client certificates must chain to (mTLS).
    pub tls_client_ca: Option<String>,
    /// `"required"` or `"optional"` client certificates.
    pub tls_client_auth: Option<String>,
    /// PEM CA certificates `https://` upstreams must chain to, instead of the platform's.
    pub upstream_ca: Option<String>,
    /// Peers (CIDR blocks) whose forwarding headers are believed.
    pub trusted_proxies: Option<Vec<String>>,
    /// Every connection starts with a PROXY protocol header (from a trusted proxy).
    pub proxy_protocol: Option<bool>,
    /// Prefix of decision mode's forward-auth endpoints; decision mode is off without it.
    pub decision_path: Option<String>,
    /// The header nginx sends the original URI in.
    pub decision_uri_header: Option<String>,
    /// The header nginx sends the original method in.
    pub decision_method_header: Option<String>,
}

/// `[[realm]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRealm {
    pub name: Option<String>,
    pub issuer: Option<String>,
    pub algorithms: Option<Vec<String>>,
    pub leeway: Option<String>,
    pub max_token_bytes: Option<usize>,
    pub require_at_jwt_typ: Option<bool>,
    pub jwks_file: Option<String>,
    pub signing_keys: Option<String>,
    pub jwks_uri: Option<String>,
    pub jwks_ttl: Option<String>,
    pub jwks_min_ttl: Option<String>,
    pub jwks_max_ttl: Option<String>,
    pub jwks_max_stale: Option<String>,
    pub jwks_refetch_cooldown: Option<String>,
    pub jwks_fetch_timeout: Option<String>,
    pub jwks_max_bytes: Option<usize>,
    pub danger_allow_http_jwks: Option<bool>,
    pub access_token_ttl: Option<String>,
    pub scope_source: Option<String>,
    pub decryption_keys: Option<String>,
    pub management_token_hash: Option<String>,
    pub introspection_endpoint: Option<String>,
    pub introspection_client_id: Option<String>,
    pub introspection_client_secret_env: Option<String>,
    pub introspection_client_secret_file: Option<String>,
    pub introspection_cache_ttl: Option<String>,
    pub introspection_negative_ttl: Option<String>,
    pub introspection_max_stale: Option<String>,
    pub introspection_timeout: Option<String>,
    pub introspection_max_bytes: Option<usize>,
    pub introspection_max_concurrency: Option<usize>,
    pub danger_allow_http_introspection: Option<bool>,
}

/// A timestamp written as an RFC 3339 string or a TOML datetime; written back as text.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawTime {
    /// `"2026-01-01T00:00:00Z"`.
    Text(String),
    /// `2026-01-01T00:00:00Z`.
    Toml(toml::value::Datetime),
}

/// `[[resource_server]]`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawResourceServer {
    pub id: Option<String>,
    pub name: Option<String>,
    pub realm: Option<String>,
    pub audience: Option<String>,
    pub upstream: Option<String>,
    pub scopes: Option<Vec<String>>,
    /// What each scope means, for people (consent screens, the Admin Panel).
    pub scope_descriptions: Option<BTreeMap<String, String>>,
    pub default_scopes: Option<Vec<String>>,
    pub access_token_ttl: Option<String>,
    pub signing_alg: Option<String>,
    pub default: Option<bool>,
    pub keep_authorization: Option<bool>,
    pub client_id: Option<String>,
    pub client_secret_hash: Option<String>,
    pub encryption: Option<String>,
    pub encryption_jwks_file: Option<String>,
    pub key_alg: Option<String>,
    pub content_alg: Option<String>,
    pub claim_headers: Option<BTreeMap<String, String>>,
    pub response_timeout: Option<String>,
    pub max_body_bytes: Option<u64>,
    pub valid_from: Option<RawTime>,
    pub disabled_on: Option<RawTime>,
    pub contacts: Option<Vec<String>>,
    /// `[resource_server.cors]`: CORS is off without it.
    pub cors: Option<RawCors>,
    pub metadata: Option<toml::Table>,
    /// `false`: report-only (refusals logged and counted, requests forwarded anyway).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enforce: Option<bool>,
}

/// `[resource_server.cors]`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCors {
    /// Exact origins, or `["*"]` for any (never with `credentials`).
    pub origins: Option<Vec<String>>,
    pub methods: Option<Vec<String>>,
    pub headers: Option<Vec<String>>,
    pub expose_headers: Option<Vec<String>>,
    pub credentials: Option<bool>,
    pub max_age: Option<String>,
}

/// `[[protected_resource]]`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProtectedResource {
    pub id: Option<String>,
    pub resource_server: Option<String>,
    pub host: Option<String>,
    pub methods: Option<Vec<String>>,
    pub paths: Option<Vec<String>>,
    /// `"token"` (the default) or `"none"`: an open resource.
    pub auth: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub scope_match: Option<String>,
    pub max_age: Option<String>,
    pub max_token_lifetime: Option<String>,
    pub valid_from: Option<RawTime>,
    pub disabled_on: Option<RawTime>,
    /// `false`: report-only; unset follows the resource server's `enforce`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enforce: Option<bool>,
}

/// `[[client]]`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClient {
    pub client_id: Option<String>,
    pub name: Option<String>,
    pub realm: Option<String>,
    pub token_endpoint_auth_method: Option<String>,
    pub client_secret_hash: Option<String>,
    pub client_secret_env: Option<String>,
    pub jwks_file: Option<String>,
    /// The client's public keys inline (a JWK Set), as the Management API takes them.
    pub jwks: Option<serde_json::Map<String, serde_json::Value>>,
    pub jwks_uri: Option<String>,
    pub danger_allow_http_jwks: Option<bool>,
    pub scopes: Option<Vec<String>>,
    pub resource_servers: Option<Vec<String>>,
    pub access_token_ttl: Option<String>,
    pub valid_from: Option<RawTime>,
    pub disabled_on: Option<RawTime>,
    pub contacts: Option<Vec<String>>,
    pub metadata: Option<toml::Table>,
}

impl Serialize for RawTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Text(t) => s.serialize_str(t),
            Self::Toml(t) => s.collect_str(t),
        }
    }
}
