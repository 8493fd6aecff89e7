//! The Management API: each realm's built-in resource server, answered by the gateway under
//! `/api/v1/<realm>/`. The verifier has already checked the caller's token and the scope
//! the call needs (the built-in protected resources say which); this module only does what
//! was asked.
//!
//! JSON REST over the collections `resource-servers`, `protected-resources` and `clients`:
//! an entity's body is its declaration in the configuration's own shape. Every write is
//! conditional (`If-Match` with the entity's `ETag`; 428 without, 412 when stale), compiled
//! with the files and the rest of the store before it is committed (a write that would make
//! the configuration invalid is a 422 naming the field and the entity at fault, and nothing
//! is written), committed to the store, then applied here at once; the other replicas follow
//! the store. Entities from files are shown with `"source": "file"` and cannot be written
//! (409). Refusals are RFC 9457 problem details.

mod entities;
mod matching;
pub mod openapi;
mod problem;
mod static_token;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

pub use problem::{Invalid, Problem};
pub use static_token::{ACTOR as STATIC_TOKEN_ACTOR, StaticToken};

use crate::activity::Activity;
use crate::config::ConfigErrors;
use crate::metrics::Metrics;
use crate::model::{EntityKind, RealmRef, defaults};
use crate::snapshot::Snapshot;
use crate::store::{Store, StoredEntity};
use crate::token::Claims;
use crate::verifier::Verifier;

/// What the Management API needs from the composition root: compiling a candidate
/// configuration, and applying the store's entities after a commit.
pub trait Control: Send + Sync {
    /// Compiles the configuration files with `managed` as the store's entities; the errors
    /// are what committing them would cause.
    fn check(&self, managed: Vec<StoredEntity>) -> Pin<Box<dyn Future<Output = Result<(), ConfigErrors>> + Send + '_>>;

    /// Reads the store's entities and swaps in the configuration they make, now.
    fn apply(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// The Management API of every realm.
pub struct Management {
    store: Store,
    control: Arc<dyn Control>,
    verifier: Arc<Verifier>,
    metrics: Arc<Metrics>,
    /// The realms' static admin tokens.
    static_token: StaticToken,
    /// Recent request counts, for `GET /activity`.
    activity: Arc<Activity>,
    /// One write at a time in this process; across replicas the store's conditional writes
    /// decide.
    writes: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Management {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Management")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// One call, as the handlers see it.
struct Call<'a> {
    snap: &'a Snapshot,
    realm: RealmRef,
    /// The caller's verified token.
    caller: &'a Claims,
    method: &'a Method,
    /// The path below `/api/v1/<realm>`, split into decoded segments.
    segments: Vec<String>,
    query: Option<&'a str>,
    headers: &'a HeaderMap,
    body: Bytes,
    /// Unix seconds, from the gateway's clock.
    now: i64,
}

impl Call<'_> {
    /// Who is calling, for the change log: the token's `client_id`, else its `sub`.
    fn actor(&self) -> &str {
        self.caller.client_id().or(self.caller.sub()).unwrap_or("-")
    }

    fn realm_name(&self) -> &str {
        self.snap.realms[self.realm].name.as_str()
    }
}

impl Management {
    /// The API over `store`, compiling and applying through `control`.
    pub fn new(
        store: Store,
        control: Arc<dyn Control>,
        verifier: Arc<Verifier>,
        metrics: Arc<Metrics>,
        static_token: StaticToken,
        activity: Arc<Activity>,
    ) -> Self {
        Self {
            store,
            control,
            verifier,
            metrics,
            static_token,
            activity,
            writes: tokio::sync::Mutex::new(()),
        }
    }

    /// The call `denied` refused, allowed after all when it holds its realm's static admin
    /// token ([`StaticToken::admit`]).
    pub async fn admit_static(
        &self,
        snap: &Snapshot,
        denied: &crate::verifier::Denied,
        path: &str,
        headers: &HeaderMap,
        peer: std::net::IpAddr,
    ) -> Option<crate::verifier::Allowed> {
        let now = self.verifier.clock().now();
        self.static_token.admit(snap, denied, path, headers, peer, now).await
    }

    /// Answers a call to `realm`'s Management API at `path` (normalized, below the
    /// gateway's root) by the holder of `caller`.
    pub async fn handle(
        &self,
        snap: &Snapshot,
        realm: RealmRef,
        caller: &Claims,
        path: &str,
        req: http::Request<Incoming>,
    ) -> Response<Full<Bytes>> {
        let base = crate::config::management::base_path(snap.realms[realm].name.as_str());
        let rest = path.strip_prefix(base.as_str()).unwrap_or_default();
        let (parts, body) = req.into_parts();
        let body = match Limited::new(
            body,
            usize::try_from(defaults::MANAGEMENT_MAX_BODY).unwrap_or(usize::MAX),
        )
        .collect()
        .await
        {
            Ok(b) => b.to_bytes(),
            Err(_) => return Problem::bad_request("the body could not be read, or is too large").response(),
        };
        let call = Call {
            snap,
            realm,
            caller,
            method: &parts.method,
            segments: rest
                .split('/')
                .filter(|s| !s.is_empty())
                .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned())
                .collect(),
            query: parts.uri.query(),
            headers: &parts.headers,
            body,
            now: self.verifier.clock().now(),
        };
        match self.route(&call).await {
            Ok(resp) => resp,
            Err(problem) => problem.response(),
        }
    }

    async fn route(&self, call: &Call<'_>) -> Result<Response<Full<Bytes>>, Problem> {
        let segs: Vec<&str> = call.segments.iter().map(String::as_str).collect();
        let m = call.method;
        let kind = segs.first().and_then(|s| EntityKind::of_collection(s));
        match (kind, segs.as_slice()) {
            (Some(kind), [_]) if m == Method::GET || m == Method::HEAD => entities::list(call, kind),
            (Some(kind), [_]) if m == Method::POST => self.create(call, kind).await,
            (Some(kind), [_, id]) if m == Method::GET || m == Method::HEAD => entities::get(call, kind, id),
            (Some(kind), [_, id]) if m == Method::PATCH => self.patch(call, kind, id).await,
            (Some(kind), [_, id]) if m == Method::DELETE => self.delete(call, kind, id).await,
            (Some(EntityKind::Client), [_, id, "secret"]) if m == Method::POST => self.new_secret(call, id).await,
            (Some(EntityKind::ResourceServer), [_, id, "scopes"]) if m == Method::GET || m == Method::HEAD => {
                entities::scopes(call, id)
            }
            (Some(EntityKind::ResourceServer), [_, id, "scopes"]) if m == Method::POST => {
                self.add_scope(call, id).await
            }
            (Some(EntityKind::ResourceServer), [_, id, "scopes", name]) if m == Method::DELETE => {
                self.remove_scope(call, id, name).await
            }
            (None, ["revocations"]) if m == Method::POST => self.revoke(call).await,
            (None, ["changes"]) if m == Method::GET || m == Method::HEAD => self.changes(call).await,
            (None, ["activity"]) if m == Method::GET || m == Method::HEAD => Ok(self.activity(call)),
            (None, ["match"]) if m == Method::GET || m == Method::HEAD => matching::matching(call),
            (None, ["openapi.json"]) if m == Method::GET || m == Method::HEAD => {
                Ok(openapi::response(call.snap, call.realm))
            }
            (Some(_), [_]) => Err(Problem::method_not_allowed("GET, HEAD, POST")),
            (Some(_), [_, _]) => Err(Problem::method_not_allowed("GET, HEAD, PATCH, DELETE")),
            (Some(EntityKind::Client), [_, _, "secret"]) | (None, ["revocations"]) => {
                Err(Problem::method_not_allowed("POST"))
            }
            (Some(EntityKind::ResourceServer), [_, _, "scopes"]) => Err(Problem::method_not_allowed("GET, HEAD, POST")),
            (Some(EntityKind::ResourceServer), [_, _, "scopes", _]) => Err(Problem::method_not_allowed("DELETE")),
            (None, ["changes" | "openapi.json" | "activity" | "match"]) => {
                Err(Problem::method_not_allowed("GET, HEAD"))
            }
            _ => Err(Problem::not_found("no such Management API resource")),
        }
    }
}

impl Management {
    /// `GET /activity`: this gateway's recent requests to the realm's resource servers.
    fn activity(&self, call: &Call<'_>) -> Response<Full<Bytes>> {
        let servers: Vec<&str> = call
            .snap
            .resource_servers
            .iter()
            .filter(|rs| rs.realm == call.realm)
            .map(|rs| rs.id.as_str())
            .collect();
        answer(StatusCode::OK, &self.activity.report(&servers), None)
    }
}

/// A successful JSON answer with `status`, and `etag` when there is one.
fn answer(status: StatusCode, body: &serde_json::Value, etag: Option<String>) -> Response<Full<Bytes>> {
    let mut resp = crate::respond::json(status, body);
    if let Some(tag) = etag.and_then(|t| http::HeaderValue::from_str(&t).ok()) {
        resp.headers_mut().insert(http::header::ETAG, tag);
    }
    resp
}
