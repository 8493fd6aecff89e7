//! Validated domain types: realms, resource servers and protected resources as the
//! configuration compiler produces them. Pure data; no I/O.

mod client;
mod cors;
pub mod defaults;
mod ids;
mod proxies;
mod scope;
pub mod secret;
mod table;

pub use client::{Client, ClientAuth, ResourceServerCredentials};
pub use cors::{AllowedOrigins, Cors};
pub use ids::{Audience, Name};
pub use proxies::{Cidr, CidrError, TrustedProxies};
pub use scope::{Scope, ScopeMatch, ScopeSet};
pub use table::{ClientRef, EntityRef, RealmRef, ResourceRef, ResourceServerRef, Table};

use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;
use jsonwebtoken::Algorithm;

/// A window of time in which an entity is in force.
///
/// Every entity may have a `valid_from` and a `disabled_on`; outside the window it
/// neither gets nor accepts tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Validity {
    /// First second (Unix time) at which the entity is in force. Defaults to always.
    pub valid_from: Option<i64>,
    /// First second (Unix time) at which the entity is no longer in force. Defaults to never.
    pub disabled_on: Option<i64>,
}

impl Validity {
    /// Whether the entity is in force at `now` (Unix seconds).
    pub fn in_force(&self, now: i64) -> bool {
        self.valid_from.is_none_or(|from| now >= from) && self.disabled_on.is_none_or(|off| now < off)
    }
}

/// Where a realm's remote key set lives and how it is kept fresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteJwks {
    /// The `jwks_uri` of the external authorization server.
    pub uri: http::Uri,
    /// How long fetched keys are used before a background refetch, when the response has
    /// no `Cache-Control: max-age`.
    pub ttl: Duration,
    /// Lower bound applied to a server-sent `max-age`.
    pub min_ttl: Duration,
    /// Upper bound applied to a server-sent `max-age`.
    pub max_ttl: Duration,
    /// How long the last good keys keep serving after the endpoint starts failing.
    pub max_stale: Duration,
    /// Minimum time between two refetches triggered by an unknown `kid`.
    pub refetch_cooldown: Duration,
    /// Bound on one fetch: connect, request and body together.
    pub fetch_timeout: Duration,
    /// Bound on the size of the key set document.
    pub max_bytes: usize,
}

/// One trust domain: an issuer identity and the keys its tokens are checked with.
#[derive(Debug, Clone)]
pub struct Realm {
    /// The realm's name; also the `realm` parameter of `WWW-Authenticate` challenges.
    pub name: Name,
    /// The exact `iss` value its tokens carry.
    pub issuer: String,
    /// Accepted JWS algorithms (RFC 8725 § 3.1: an explicit allow-list). Never `none`, never HMAC.
    pub algorithms: Vec<Algorithm>,
    /// Clock leeway for `exp`, `nbf` and `iat`. Defaults to 60 s.
    pub leeway: i64,
    /// Tokens longer than this are refused before any parsing. Defaults to 8 KiB.
    pub max_token_bytes: usize,
    /// Local verification key set (public or private JWKS; only public parts are used).
    pub jwks_file: Option<PathBuf>,
    /// Private signing keys (for `portcullis token` and the embedded issuer).
    pub signing_keys_file: Option<PathBuf>,
    /// Remote key set of an external authorization server.
    pub jwks_remote: Option<RemoteJwks>,
    /// Whether the inner token must carry `typ: at+jwt` (RFC 9068 § 4). Defaults to false.
    pub require_at_jwt_typ: bool,
    /// Every claim its resource servers pass upstream (`claim_headers`), sorted: what a
    /// verified token keeps beyond the registered claims.
    pub forwarded_claims: Vec<Box<str>>,
    /// Default lifetime of tokens the embedded issuer mints (the realm's client default).
    /// Defaults to 1 h; a resource server's `access_token_ttl` overrides it.
    pub access_token_ttl: Duration,
    /// Where the embedded issuer takes grantable scopes from. Defaults to the target only.
    pub scope_source: ScopeSource,
    /// The issuer URL's path ("" for a bare origin): the embedded issuer's endpoints live
    /// under it.
    pub issuer_path: String,
    /// The argon2id PHC hash of the realm's static admin token, if it has one: a bearer
    /// token for its Management API only, with every management scope, for automation that
    /// cannot run an OAuth client.
    pub management_token_hash: Option<Box<str>>,
    /// The RFC 7662 introspection endpoint of its authorization server, for tokens that
    /// are not JWS/JWE (every token, when the realm has no key source). Defaults to none.
    pub introspection: Option<Introspection>,
    /// Where this realm was defined, for messages.
    pub source: PathBuf,
}

impl Realm {
    /// Whether `token` is checked by introspection rather than locally: the realm has an
    /// introspection endpoint and either no key source at all, or a token that is not a
    /// compact JWS or JWE (two or four dots, RFC 7515 § 7.1 and RFC 7516 § 7.1).
    pub fn introspects(&self, token: &str) -> Option<&Introspection> {
        let i = self.introspection.as_ref()?;
        if self.introspection_only() {
            return Some(i);
        }
        let dots = token.bytes().filter(|b| *b == b'.').count();
        (dots != 2 && dots != 4).then_some(i)
    }

    /// Whether the realm has an introspection endpoint and no key source: every token is
    /// introspected, and it needs no keys to be ready.
    pub fn introspection_only(&self) -> bool {
        self.introspection.is_some()
            && self.jwks_file.is_none()
            && self.signing_keys_file.is_none()
            && self.jwks_remote.is_none()
    }
}

/// An external authorization server's RFC 7662 introspection endpoint and how its answers
/// are used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Introspection {
    /// The endpoint (https, or http with `danger_allow_http_introspection`).
    pub endpoint: http::Uri,
    /// The client id the gateway authenticates as.
    pub client_id: String,
    /// `Authorization: Basic …` of the client id and secret (RFC 6749 § 2.3.1,
    /// `client_secret_basic`); marked sensitive, so it never prints.
    pub authorization: http::HeaderValue,
    /// Longest reuse of an active answer; never past `exp`. Defaults to 60 s.
    pub cache_ttl: Duration,
    /// Reuse of an inactive answer. Defaults to 10 s.
    pub negative_ttl: Duration,
    /// How long past `cache_ttl` an active answer may still serve while the endpoint fails.
    /// Defaults to zero: never (the endpoint down is a 503).
    pub max_stale: Duration,
    /// Bound on one call. Defaults to 2 s.
    pub timeout: Duration,
    /// Bound on an answer's size. Defaults to 64 KiB.
    pub max_bytes: usize,
    /// Calls in flight at once. Defaults to 32.
    pub max_concurrency: usize,
}

/// An endpoint of a realm's embedded issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IssuerEndpoint {
    /// RFC 8414 authorization server metadata.
    Metadata,
    /// The public JWKS.
    Jwks,
    /// The token endpoint (`client_credentials`).
    Token,
    /// RFC 7662 introspection.
    Introspect,
    /// RFC 7009 revocation.
    Revoke,
    /// The authorization endpoint (RFC 6749 § 3.1): there only so the metadata names one, as
    /// clients require; every request is refused with `unsupported_response_type`.
    Authorize,
}

impl IssuerEndpoint {
    /// The path suffix under the issuer path (metadata has its own well-known paths).
    pub fn suffix(self) -> &'static str {
        match self {
            Self::Metadata => "/.well-known/oauth-authorization-server",
            Self::Jwks => "/jwks",
            Self::Token => "/token",
            Self::Introspect => "/introspect",
            Self::Revoke => "/revoke",
            Self::Authorize => "/authorize",
        }
    }

    /// The methods it answers, as an `Allow` value: RFC 6749 § 3.2 (token), RFC 7662 § 2.1
    /// and RFC 7009 § 2.1 take `POST`; § 3.1 has the authorization endpoint take `GET` and
    /// allows `POST`; documents are read with `GET` and `HEAD`.
    pub fn allow(self) -> &'static str {
        match self {
            Self::Token | Self::Introspect | Self::Revoke => "POST",
            Self::Authorize => "GET, POST",
            Self::Metadata | Self::Jwks => "GET, HEAD",
        }
    }

    /// A short, stable label for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Metadata => "metadata",
            Self::Jwks => "jwks",
            Self::Token => "token",
            Self::Introspect => "introspect",
            Self::Revoke => "revoke",
            Self::Authorize => "authorize",
        }
    }
}

/// How a resource server's access tokens are protected in transit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encryption {
    /// A signed JWT, not encrypted (the default).
    #[default]
    None,
    /// Encrypted to the realm's key (its `decryption_keys`).
    Realm,
    /// Encrypted to the resource server's own key.
    ResourceServer,
}

/// Which scopes a token request may be granted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeSource {
    /// Only scopes the target resource server defines.
    #[default]
    Target,
    /// Any scope some resource server of the realm defines; the token is
    /// still built for the target.
    AnyResourceServer,
}

/// What a protected resource asks of a request before it is forwarded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Auth {
    /// A bearer token that passes every check of the resource (the default).
    #[default]
    Token,
    /// Nothing (`auth = "none"`): an open resource, for health checks, documentation or an
    /// upstream's own `/.well-known/*`. Still normalized, routed, forwarded and logged; no
    /// token is asked for or checked.
    None,
}

impl Auth {
    /// The configuration's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::None => "none",
        }
    }
}

/// Where requests for a resource server are forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// `http` or `https` (certificates checked against `upstream_ca` or the platform roots).
    pub scheme: http::uri::Scheme,
    /// Host and port.
    pub authority: http::uri::Authority,
    /// Path prefix prepended to every forwarded path ("" for none).
    pub base_path: String,
}

/// A claim passed to the upstream as a request header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimHeader {
    /// The claim's name in the token, e.g. `sub`.
    pub claim: String,
    /// The header it is sent as, e.g. `x-auth-subject`.
    pub header: HeaderName,
}

/// The kinds of entity that can come from the store as well as from files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntityKind {
    /// A resource server.
    ResourceServer,
    /// A protected resource.
    ProtectedResource,
    /// A client of the embedded issuer.
    Client,
}

impl EntityKind {
    /// Every kind.
    pub const ALL: [Self; 3] = [Self::ResourceServer, Self::ProtectedResource, Self::Client];

    /// The configuration's name for it (`resource_server`, …), as the store keeps it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ResourceServer => "resource_server",
            Self::ProtectedResource => "protected_resource",
            Self::Client => "client",
        }
    }

    /// Its Management API collection (`resource-servers`, …).
    pub fn collection(self) -> &'static str {
        match self {
            Self::ResourceServer => "resource-servers",
            Self::ProtectedResource => "protected-resources",
            Self::Client => "clients",
        }
    }

    /// The kind of a Management API collection.
    pub fn of_collection(segment: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.collection() == segment)
    }

    /// The name of its id field (`id`, or `client_id` for clients).
    pub fn id_field(self) -> &'static str {
        match self {
            Self::Client => "client_id",
            _ => "id",
        }
    }
}

/// Where a declared entity came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntitySource {
    /// A configuration file: read-only at run time.
    File(PathBuf),
    /// The store, at this version (its `ETag`).
    Store {
        /// The change that last wrote it.
        version: i64,
    },
}

/// An upstream API and an OAuth client of its realm.
#[derive(Debug, Clone)]
pub struct ResourceServer {
    /// Stable identifier (`resourceServerId` in other products' admin APIs).
    pub id: Name,
    /// Human-readable name.
    pub name: String,
    /// Its realm.
    pub realm: RealmRef,
    /// The audience URI tokens for it carry in `aud` (RFC 8707 resource indicator).
    pub audience: Audience,
    /// Where allowed requests go.
    pub upstream: Upstream,
    /// Scopes this resource server defines.
    pub scopes: ScopeSet,
    /// What each scope means, for people; keys are among `scopes`.
    pub scope_descriptions: std::collections::BTreeMap<String, String>,
    /// Scopes a token gets when none is requested; a subset of `scopes`.
    pub default_scopes: ScopeSet,
    /// Lifetime of tokens minted for it. Defaults to the realm's `access_token_ttl`.
    pub access_token_ttl: Duration,
    /// Algorithm tokens minted for it are signed with; a realm signing key must have it.
    pub signing_alg: Option<Algorithm>,
    /// Whether this is its realm's default resource server.
    pub default: bool,
    /// Claims forwarded as headers (client-sent copies are removed first).
    pub claim_headers: Vec<ClaimHeader>,
    /// Whether the `Authorization` header is forwarded upstream. Defaults to true.
    pub keep_authorization: bool,
    /// Its own credentials, for introspection and revocation.
    pub credentials: Option<ResourceServerCredentials>,
    /// How its tokens are encrypted; the keys are beside it in its snapshot entry.
    pub encryption: Encryption,
    /// Bound on waiting for the upstream's response head. Defaults to 30 s.
    pub response_timeout: Duration,
    /// Bound on a request body (413 past it); `None` for no bound. Defaults to none.
    pub max_body_bytes: Option<u64>,
    /// When it is in force.
    pub validity: Validity,
    /// Its CORS policy; `None` (the default) leaves CORS off: preflights are routed as any
    /// `OPTIONS` request and answers get no `Access-Control-*` headers.
    pub cors: Option<Cors>,
    /// Contact addresses (informational).
    pub contacts: Vec<String>,
    /// Free-form metadata (informational).
    pub metadata: toml::Table,
    /// Where it was defined, for messages.
    pub source: PathBuf,
    /// Whether it is its realm's built-in Management API, answered by the gateway itself
    /// (`upstream` is then never used).
    pub management: bool,
    /// Whether refusals are answered (`true`) or only logged and counted as
    /// `would_refuse_<reason>` while the request is forwarded anyway (report-only rollout).
    /// Its protected resources may say otherwise. Defaults to true.
    pub enforce: bool,
}

#[cfg(test)]
impl ResourceServer {
    /// A resource server for unit tests: id `api` in the first realm, `audience`, `scopes`,
    /// everything else at its default.
    pub(crate) fn example(audience: &str, scopes: &[&str]) -> Self {
        Self {
            id: Name::new("api"),
            name: "api".into(),
            realm: RealmRef::at(0),
            audience: Audience::new(audience),
            upstream: Upstream {
                scheme: http::uri::Scheme::HTTP,
                authority: http::uri::Authority::from_static("127.0.0.1:1"),
                base_path: String::new(),
            },
            scopes: ScopeSet::new(scopes.iter().filter_map(|s| Scope::parse(s))),
            scope_descriptions: Default::default(),
            default_scopes: ScopeSet::default(),
            access_token_ttl: Duration::from_secs(300),
            signing_alg: None,
            default: false,
            claim_headers: Vec::new(),
            keep_authorization: true,
            credentials: None,
            encryption: Encryption::None,
            response_timeout: Duration::from_secs(30),
            max_body_bytes: None,
            validity: Validity::default(),
            cors: None,
            contacts: Vec::new(),
            metadata: toml::Table::new(),
            source: "t.toml".into(),
            management: false,
            enforce: true,
        }
    }
}

/// A set of request URIs on a resource server and what a token needs to reach them.
#[derive(Debug, Clone)]
pub struct ProtectedResource {
    /// Identifier (`resourceId` in other products' admin APIs).
    pub id: Name,
    /// Its resource server.
    pub resource_server: ResourceServerRef,
    /// Host it applies to (lowercase, no port); `None` for any host.
    pub host: Option<String>,
    /// Methods it applies to; `None` for any method.
    pub methods: Option<Vec<http::Method>>,
    /// Path patterns, as written.
    pub paths: Vec<String>,
    /// Whether a token is needed at all. Defaults to [`Auth::Token`].
    pub auth: Auth,
    /// Scopes a token must carry.
    pub scopes: ScopeSet,
    /// Whether all (default) or any of `scopes` are needed.
    pub scope_match: ScopeMatch,
    /// Longest time since the end user's authentication (`auth_time`) it accepts (RFC 9470).
    pub max_age: Option<i64>,
    /// Longest token lifetime (`exp - iat`) it accepts (`maxPermissionDuration` elsewhere).
    pub max_token_lifetime: Option<i64>,
    /// When it is in force.
    pub validity: Validity,
    /// Whether refusals are answered; `None` follows its resource server's `enforce`.
    pub enforce: Option<bool>,
    /// Where it was defined, for messages.
    pub source: PathBuf,
}

impl ProtectedResource {
    /// Whether its refusals are answered (else report-only): its own `enforce`, else its
    /// resource server's.
    pub fn enforced(&self, resource_server: &ResourceServer) -> bool {
        self.enforce.unwrap_or(resource_server.enforce)
    }
}
