//! Every configuration default, stated once: the compiler applies these, the snapshot's
//! [`Settings::default`](crate::snapshot::Settings) is built from them, and the README's
//! configuration reference quotes them.

use std::time::Duration;

/// `[server] listen`: loopback, port 8080.
pub const LISTEN: ([u8; 4], u16) = ([127, 0, 0, 1], 8080);
/// Longest lifetime of a Management API token (the realm's, if shorter).
pub const MANAGEMENT_TOKEN_TTL: Duration = Duration::from_secs(900);
/// Bound on a Management API request body.
pub const MANAGEMENT_MAX_BODY: u64 = 256 * 1024;
/// `[store] url`: an SQLite file under the working directory, created on first start.
pub const STORE_URL: &str = "sqlite://data/portcullis.db";
/// `[store] poll_interval`: how often a replica reads the change log when nothing woke it.
pub const STORE_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// `[server] token_cache_capacity`: verified tokens kept.
pub const TOKEN_CACHE_CAPACITY: u64 = 100_000;
/// `[server] header_read_timeout`: bound on receiving a request head (slowloris).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// `[server] max_header_bytes`.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// `[server] max_headers`: header fields of an HTTP/1.1 request.
pub const MAX_HEADERS: usize = 100;
/// `[server] idle_timeout`: a connection with no request in flight and no bytes moving.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// `[server] upstream_connect_timeout`.
pub const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// `[[realm]] leeway`: clock skew allowed on `exp`, `nbf`, `iat` and `auth_time`.
pub const LEEWAY: Duration = Duration::from_secs(60);
/// `[[realm]] max_token_bytes`: longer tokens are refused before parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// The range `max_token_bytes` may be set in.
pub const MAX_TOKEN_BYTES_RANGE: std::ops::RangeInclusive<usize> = 256..=64 * 1024;
/// `[[realm]] access_token_ttl`: lifetime of minted tokens (a resource server's or a
/// client's own value overrides it).
pub const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// `jwks_ttl`: how long fetched keys are used without `Cache-Control: max-age`.
pub const JWKS_TTL: Duration = Duration::from_secs(300);
/// `jwks_min_ttl`: lower bound on a server-sent `max-age`.
pub const JWKS_MIN_TTL: Duration = Duration::from_secs(60);
/// `jwks_max_ttl`: upper bound on a server-sent `max-age`.
pub const JWKS_MAX_TTL: Duration = Duration::from_secs(86_400);
/// `jwks_max_stale`: how long the last good keys serve while the endpoint fails.
pub const JWKS_MAX_STALE: Duration = Duration::from_secs(3600);
/// `jwks_refetch_cooldown`: minimum time between refetches for an unknown `kid`.
pub const JWKS_REFETCH_COOLDOWN: Duration = Duration::from_secs(30);
/// `jwks_fetch_timeout`: bound on one fetch (connect, request and body).
pub const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// `jwks_max_bytes`: bound on a key set document.
pub const JWKS_MAX_BYTES: usize = 256 * 1024;

/// `[[resource_server]] response_timeout`: bound on waiting for the upstream's response head.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// `[[resource_server]] content_alg`: JWE content encryption.
pub const CONTENT_ALG: &str = "A128CBC-HS256";
/// `[[resource_server]] keep_authorization`: the `Authorization` header goes upstream.
pub const KEEP_AUTHORIZATION: bool = true;

/// `introspection_cache_ttl`: longest time an active introspection answer is reused (never
/// past the token's `exp`).
pub const INTROSPECTION_CACHE_TTL: Duration = Duration::from_secs(60);
/// `introspection_negative_ttl`: how long an inactive answer is reused.
pub const INTROSPECTION_NEGATIVE_TTL: Duration = Duration::from_secs(10);
/// `introspection_timeout`: bound on one introspection call (waiting for a slot, connect,
/// request and body together).
pub const INTROSPECTION_TIMEOUT: Duration = Duration::from_secs(2);
/// `introspection_max_bytes`: bound on an introspection answer.
pub const INTROSPECTION_MAX_BYTES: usize = 64 * 1024;
/// `introspection_max_concurrency`: introspection calls of one realm in flight at once.
pub const INTROSPECTION_MAX_CONCURRENCY: usize = 32;
/// `introspection_max_stale`: how long past its TTL a cached active answer may serve while
/// the endpoint fails. Zero: never (the endpoint down is a 503).
pub const INTROSPECTION_MAX_STALE: Duration = Duration::ZERO;
/// `enforce` of resource servers and protected resources: refusals are answered.
pub const ENFORCE: bool = true;
