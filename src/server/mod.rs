//! Listeners and the request pipeline.
//!
//! Every request flows one way through named phases; nothing calls back up:
//!
//! ```text
//!   accept ─▶ route ─▶ extract ─▶ verify ─▶ authorize ─▶ forward ─▶ log
//!             │         │          │          │            │
//!             └─────────┴──────────┴──────────┴─ refusal ──┴─ upstream failure
//!                                   ▼
//!                          rescue (one RFC answer each)
//! ```
//!
//! Decision mode's entries ([`crate::decision`]) are another way into the same phases: a
//! forward-auth request is answered allow/deny from the original request its proxy
//! describes, with `route`..`authorize` as below and the same `log`, and nothing is
//! forwarded.
//!
//! `route` starts here: the request's host is validated once
//! ([`routing::request_host`](crate::routing::request_host)), for every request, the
//! issuers' endpoints and the RFC 9728 metadata ([`crate::discovery`]) included;
//! `route`..`authorize` are then [`Verifier::check`](crate::verifier::Verifier::check) (an
//! open resource leaves it allowed at `route`, with no token asked for); `forward`
//! is [`Forwarder::forward`](crate::proxy::Forwarder::forward); `rescue` is
//! [`crate::rescue`]. The snapshot is loaded once per request, at the start. Each phase ends
//! in an `Exit` (how the request left, with what it learned); `log` writes the one access
//! line and counts the request's metrics from it (`access`), for every way out alike. Each
//! request carries an id ([`request_id`]) and a W3C trace context ([`trace`]).
//!
//! CORS ([`crate::cors`]) is a different entry and outcome of the same phases: at `route`,
//! a browser's preflight to a resource server with CORS is answered here, without a
//! token (outcome `preflight` or `preflight_refused`); any other `OPTIONS` goes on as any
//! request. Every other answer of such a resource server, allowed or refused, gets its
//! `Access-Control-*` headers just before `log`. `accept` applies the listener's
//! limits (`limits`: head size and count, header-read timeout, open connections) and
//! `conn` closes idle connections and drains on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, Uri};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::OwnedSemaphorePermit;

use crate::cors::PreflightError;
use crate::decision::{Asked, Decision, Entry, Refusal};
use crate::issuer::{Issuer, Outcome as IssuerOutcome};
use crate::management::Management;
use crate::metrics::Metrics;
use crate::model::{Cors, IssuerEndpoint, RealmRef, ResourceRef, ResourceServerRef};
use crate::proxy::{Forwarder, Provenance, UpstreamBody, UpstreamError};
use crate::rescue;
use crate::routing;
use crate::snapshot::Snapshot;
use crate::verifier::{Allowed, Denied, Verifier};
use access::{IssuerCall, Line};
use trace::TraceContext;

mod access;
mod client;
mod conn;
mod limits;
mod proxy_protocol;
pub mod request_id;
pub mod tls;
pub mod trace;
pub mod workers;

pub use limits::ConnectionLimit;
pub use tls::ClientCertificate;

/// The body of every answer: the upstream's stream, or a small synthetic body.
pub type Body = Either<Incoming, Full<Bytes>>;

/// What every connection shares.
#[derive(Debug)]
pub struct Shared {
    /// Decisions.
    pub verifier: Arc<Verifier>,
    /// Upstream connections.
    pub forwarder: Forwarder,
    /// The embedded issuers' endpoints (one for all workers: secret-check memory, throttles
    /// and seen assertions are gateway-wide).
    pub issuer: Arc<Issuer>,
    /// What the admin listener's `/metrics` reports.
    pub metrics: Arc<Metrics>,
    /// The realms' Management APIs (absent when embedded without a store).
    pub management: Option<Arc<Management>>,
    /// This server worker's accepted-connections counter (none outside the workers).
    pub accepted: Option<prometheus_client::metrics::counter::Counter>,
}

impl Shared {
    /// The state of server worker `worker`: the same verifier, issuer and metrics, an
    /// upstream pool of its own (see [`Forwarder::sibling`]) and its own count of accepted
    /// connections.
    pub fn for_worker(&self, worker: usize) -> Self {
        Self {
            verifier: self.verifier.clone(),
            forwarder: self.forwarder.sibling(),
            issuer: self.issuer.clone(),
            metrics: self.metrics.clone(),
            management: self.management.clone(),
            accepted: Some(self.metrics.worker_connections(worker)),
        }
    }
}

/// Serves `listener` until `shutdown` resolves, then stops accepting and lets open
/// connections finish their in-flight requests, for at most `drain`. Accept loops sharing
/// one listener (the [`workers`]) share `slots` too.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    slots: ConnectionLimit,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    let draining = conn::Drain::new();
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(5);
    loop {
        // Accept, then wait for a slot. Each worker listens on a socket of its own (with
        // SO_REUSEPORT), so the kernel has already chosen which worker a connection goes
        // to: a worker waiting for a slot before accepting could hold the slot another
        // worker's queued connection needs. So at most one accepted connection per worker
        // waits here for a slot, beyond the `max_connections` being served.
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => {
                    backoff = Duration::from_millis(5);
                    pair
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of ending the server.
                    tracing::warn!(error = %e, "accept failed; backing off {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let slot = tokio::select! {
            slot = slots.acquire() => slot,
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // The PROXY header and the TLS handshake run in the connection's own task, so a slow
        // client never holds up the accept loop.
        tokio::spawn(accepted(shared.clone(), stream, remote, slot, draining.watcher()));
    }
    // From here on, connecting is refused.
    drop(listener);
    draining.shutdown(drain).await;
}

/// A new connection: its PROXY protocol header when the listener takes one, then its TLS
/// handshake when the listener has TLS (both bounded by `header_read_timeout`, as the
/// request head is), then its requests.
async fn accepted(
    shared: Arc<Shared>,
    mut stream: tokio::net::TcpStream,
    mut remote: SocketAddr,
    slot: Option<OwnedSemaphorePermit>,
    watcher: conn::DrainWatch,
) {
    let snap = shared.verifier.snapshot();
    let header_read_timeout = snap.settings.header_read_timeout;
    if snap.settings.proxy_protocol {
        match proxy_protocol::read(&mut stream, remote, &snap.settings.trusted_proxies, header_read_timeout).await {
            Ok(client) => remote = client,
            Err(e) => {
                tracing::debug!(error = %e, %remote, "connection closed");
                return;
            }
        }
    }
    let tls_config = snap.listener_tls.as_ref().map(|t| t.config.clone());
    // The connection's requests each load the snapshot current when they arrive.
    drop(snap);
    let Some(tls_config) = tls_config else {
        let conn = Conn {
            remote,
            proto: "http",
            alpn: tls::Alpn::None,
            client_cert: None,
            slot,
        };
        return connection(shared, stream, conn, watcher).await;
    };
    match tls::accept(tls_config, stream, header_read_timeout).await {
        Ok(accepted) => {
            let conn = Conn {
                remote,
                proto: "https",
                alpn: accepted.alpn,
                client_cert: accepted.client_cert,
                slot,
            };
            connection(shared, accepted.stream, conn, watcher).await;
        }
        Err(e) => tracing::debug!(error = %e, %remote, "TLS handshake refused"),
    }
}

/// What the requests of one connection know of it.
struct Conn {
    remote: SocketAddr,
    /// `X-Forwarded-Proto`: the listener's scheme.
    proto: &'static str,
    alpn: tls::Alpn,
    client_cert: Option<tls::ClientCertificate>,
    /// Its `max_connections` slot, held until it closes.
    slot: Option<OwnedSemaphorePermit>,
}

/// Serves one accepted (and, with TLS, handshaken) connection until it closes, sits idle
/// past `idle_timeout`, or a shutdown has drained it.
async fn connection<IO>(shared: Arc<Shared>, io: IO, conn: Conn, mut drain: conn::DrainWatch)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Conn {
        remote,
        proto,
        alpn,
        client_cert,
        slot: _slot,
    } = conn;
    let _open = shared.metrics.connection_opened();
    if let Some(accepted) = &shared.accepted {
        accepted.inc();
    }
    // Limits as of accept time: a reload applies to later connections.
    let (builder, idle_timeout) = {
        let snap = shared.verifier.snapshot();
        (limits::builder(&snap.settings), snap.settings.idle_timeout)
    };
    let activity = Arc::new(conn::Activity::default());
    let service = {
        let activity = activity.clone();
        service_fn(move |mut req: Request<Incoming>| {
            let shared = shared.clone();
            let in_flight = conn::InFlight::start(&activity);
            // Later phases (RFC 8705 certificate-bound tokens) read it from here.
            if let Some(cert) = &client_cert {
                req.extensions_mut().insert(cert.clone());
            }
            async move { Ok::<_, Infallible>(in_flight.until_sent(handle(&shared, req, remote, proto).await)) }
        })
    };
    // ALPN settled the protocol; only without it do the first bytes decide (h2c prior
    // knowledge, RFC 9113 § 3.3).
    let builder = match alpn {
        tls::Alpn::H2 => builder.http2_only(),
        tls::Alpn::Http11 => builder.http1_only(),
        tls::Alpn::None => builder,
    };
    let conn = builder.serve_connection(TokioIo::new(conn::Watched::new(io, &activity)), service);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, %remote, "connection ended with an error");
                }
                break;
            }
            () = drain.started(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            () = activity.idle_for(idle_timeout), if !closing => {
                tracing::debug!(%remote, "closing an idle connection");
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

/// One request: its id first, then the phases, then the `log` phase at the one way out.
/// Every answer carries the id back.
async fn handle(shared: &Shared, req: Request<Incoming>, remote: SocketAddr, proto: &'static str) -> Response<Body> {
    let started = Instant::now();
    let id = request_id::take(req.headers());
    let trace = TraceContext::take(req.headers());
    let snap = shared.verifier.snapshot();
    let method = req.method().clone();
    // A reference-counted copy of the client's bytes, read only if CORS is on.
    let origin = req.headers().get(http::header::ORIGIN).cloned();
    let client = client::client(&snap.settings.trusted_proxies, remote.ip(), proto, req.headers());
    let at = Arrival {
        remote,
        client,
        id: &id,
        trace: &trace,
    };
    let (mut resp, exit) = phases(shared, &snap, req, &at).await;
    if let Some(cors) = exit.cors(&snap) {
        crate::cors::decorate(cors, origin.as_ref(), resp.headers_mut());
    }
    log(shared, &snap, &exit, &method, &at, resp.status().as_u16(), started);
    resp.headers_mut().insert(request_id::HEADER, id);
    resp
}

/// Where a request came from.
struct Arrival<'a> {
    /// The connection's peer.
    remote: SocketAddr,
    /// The client, as far as it is vouched for ([`client::client`]), and its scheme
    /// (`X-Forwarded-Proto`).
    client: client::Client,
    /// The request's id ([`request_id::take`]).
    id: &'a HeaderValue,
    /// Its trace context ([`TraceContext::take`]).
    trace: &'a TraceContext,
}

impl Arrival<'_> {
    /// The client's address with the peer's port: what the issuer's throttles and the
    /// static admin token's count failures by (so clients behind one load balancer are not
    /// one source).
    fn client_addr(&self) -> SocketAddr {
        SocketAddr::new(self.client.ip, self.remote.port())
    }
}

/// How a request left the phases: what the `log` phase writes and counts for it. Each phase
/// ends in one of these, so no phase writes a line of its own.
enum Exit {
    /// `route`: the Host (or `:authority`) is not acceptable.
    BadHost { error: routing::HostError, uri: Uri },
    /// An embedded issuer's endpoint answered.
    Issuer {
        uri: Uri,
        realm: RealmRef,
        endpoint: IssuerEndpoint,
        outcome: IssuerOutcome,
    },
    /// The Admin Panel's assets answered.
    Panel { uri: Uri },
    /// A forward-auth decision was answered ([`crate::decision`]); what a refused token
    /// said, for the operator. Boxed: proxy mode's exits stay the size they were.
    Decision {
        decision: Box<Decision>,
        detail: Option<String>,
    },
    /// A resource server's RFC 9728 metadata answered.
    Metadata {
        uri: Uri,
        resource_server: ResourceServerRef,
    },
    /// `route` .. `authorize` refused; what the token said, for the operator
    /// ([`access::refusal_detail`]).
    Denied {
        denied: Denied,
        uri: Uri,
        detail: Option<String>,
    },
    /// `route`: a CORS preflight to a resource server with CORS, answered here; why it was
    /// refused, if it was.
    Preflight {
        uri: Uri,
        resource: ResourceRef,
        refused: Option<PreflightError>,
    },
    /// `forward`: the body announced more than the resource server takes.
    BodyTooLarge(Allowed),
    /// `forward`: the upstream answered, after `upstream`.
    Forwarded { allowed: Allowed, upstream: Duration },
    /// `forward`: the request did not make it through (upstream fault, or the client's body).
    Failed {
        allowed: Allowed,
        upstream: Duration,
        error: UpstreamError,
    },
}

impl Exit {
    /// The CORS policy of the resource server that answered (or refused) the request, when
    /// it has one. None for a preflight: its answer is CORS already.
    fn cors<'s>(&self, snap: &'s Snapshot) -> Option<&'s Cors> {
        let rs = match self {
            Self::Denied {
                denied: Denied::Token { resource, .. } | Denied::NotInForce { resource },
                ..
            } => snap.resources[*resource].resource_server,
            Self::BodyTooLarge(allowed) | Self::Forwarded { allowed, .. } | Self::Failed { allowed, .. } => {
                snap.resources[allowed.resource].resource_server
            }
            _ => return None,
        };
        snap.resource_servers[rs].cors.as_ref()
    }
}

/// `route` → (issuer endpoint | `extract` → `verify` → `authorize` → `forward`).
async fn phases(shared: &Shared, snap: &Snapshot, req: Request<Incoming>, at: &Arrival<'_>) -> (Response<Body>, Exit) {
    // The host, validated once for every request: routing and X-Forwarded-Host use this one.
    let host = match routing::request_host(req.version(), req.uri(), req.headers()) {
        Ok(host) => host,
        Err(error) => {
            let resp = rescue::bad_host(&error);
            let uri = req.into_parts().0.uri;
            return (resp.map(Either::Right), Exit::BadHost { error, uri });
        }
    };
    // Decision mode's endpoints come first: their prefix is reserved while it is on.
    if let Some(entry) = Entry::of(snap, req.uri().path()) {
        let asked = Asked {
            method: req.method(),
            uri: req.uri(),
            headers: req.headers(),
            host: host.map(|h| h.as_str()),
            peer: at.remote.ip(),
        };
        let decision = crate::decision::decide(&shared.verifier, snap, entry, &asked).await;
        let detail = match &decision.verdict {
            Err(Refusal::Denied(denied)) => access::refusal_detail(snap, denied, req.headers()),
            Err(Refusal::Original(e)) => Some(e.to_string()),
            Ok(_) => None,
        };
        let resp = decision.answer(snap);
        let decision = Box::new(decision);
        return (resp.map(Either::Right), Exit::Decision { decision, detail });
    }
    // The embedded issuers' endpoints are exact paths and come before protected resources.
    if let Some(&(realm, endpoint)) = snap.issuer_routes.get(req.uri().path()) {
        let uri = req.uri().clone();
        let (resp, outcome) = shared.issuer.handle(snap, realm, endpoint, req, at.client_addr()).await;
        let exit = Exit::Issuer {
            uri,
            realm,
            endpoint,
            outcome,
        };
        return (resp.map(Either::Right), exit);
    }
    // RFC 9728 metadata: exact paths too, built with the snapshot; the host only picks
    // among resource servers whose audiences share a path.
    if let Some((resource_server, m)) = snap.metadata_at(req.uri().path(), host.map(|h| h.as_str())) {
        let uri = req.uri().clone();
        let resp = crate::discovery::answer(req.method(), m);
        return (resp.map(Either::Right), Exit::Metadata { uri, resource_server });
    }
    if snap.settings.admin_panel && crate::panel::is_panel_path(req.uri().path()) {
        let uri = req.uri().clone();
        let resp = crate::panel::answer(snap, req.method(), uri.path(), req.headers());
        return (resp.map(Either::Right), Exit::Panel { uri });
    }
    let host_name = host.map(|h| h.as_str());
    if let Some(asked) = crate::cors::preflight_method(req.method(), req.headers())
        && let Some(answered) = preflight(snap, &req, &asked, host_name)
    {
        return answered;
    }
    let allowed = match shared
        .verifier
        .check(snap, req.method(), host_name, req.uri().path(), req.headers())
        .await
    {
        Ok(allowed) => allowed,
        Err(denied) => {
            if let Some(allowed) = static_admin(shared, snap, &denied, &req, at.client_addr()).await {
                return manage(shared, snap, req, allowed).await;
            }
            let resp = rescue::refusal(&denied, snap);
            let detail = access::refusal_detail(snap, &denied, req.headers());
            let uri = req.into_parts().0.uri;
            return (resp.map(Either::Right), Exit::Denied { denied, uri, detail });
        }
    };
    if allowed.resource_server(snap).management {
        return manage(shared, snap, req, allowed).await;
    }
    let from = Provenance {
        client: at.remote.ip(),
        proto: at.client.proto,
        host: host.and_then(|h| h.to_header_value()),
        request_id: at.id,
        traceparent: at.trace.traceparent(),
        keep_tracestate: at.trace.continued(),
        via_trusted_proxy: at.client.via_trusted_proxy,
    };
    forward(shared, snap, req, allowed, &from).await
}

/// A CORS preflight asking for `asked`, answered when the resource that method, host and
/// path route to belongs to a resource server with CORS; `None` (treated as any `OPTIONS`,
/// as without CORS) otherwise. Routed as the actual request will be, so the preflight and
/// the request it announces meet the same resource server.
fn preflight(
    snap: &Snapshot,
    req: &Request<Incoming>,
    asked: &Method,
    host: Option<&str>,
) -> Option<(Response<Body>, Exit)> {
    let (_, found) = crate::verifier::route(snap, asked, host, req.uri().path()).ok()?;
    let resource = found?.resource;
    let cors = snap.resource_servers[snap.resources[resource].resource_server]
        .cors
        .as_ref()?;
    let (resp, refused) = match crate::cors::preflight(cors, req.headers(), asked) {
        Ok(resp) => (resp, None),
        Err(error) => (rescue::preflight_refused(&error), Some(error)),
    };
    let exit = Exit::Preflight {
        uri: req.uri().clone(),
        resource,
        refused,
    };
    Some((resp.map(Either::Right), exit))
}

/// A refused Management API call that holds its realm's static admin token, allowed.
async fn static_admin(
    shared: &Shared,
    snap: &Snapshot,
    denied: &Denied,
    req: &Request<Incoming>,
    peer: SocketAddr,
) -> Option<Allowed> {
    let management = shared.management.as_ref()?;
    management
        .admit_static(snap, denied, req.uri().path(), req.headers(), peer.ip())
        .await
}

/// The allowed request is for a realm's Management API: answered here, not forwarded.
async fn manage(shared: &Shared, snap: &Snapshot, req: Request<Incoming>, allowed: Allowed) -> (Response<Body>, Exit) {
    let started = Instant::now();
    // The built-in resources all require a token (none is ever open), so claims are always
    // there.
    let resp = match (&shared.management, &allowed.claims) {
        (Some(m), Some(claims)) => {
            let realm = allowed.resource_server(snap).realm;
            m.handle(snap, realm, claims, allowed.path.as_str(), req).await
        }
        _ => crate::management::Problem::not_found("this gateway has no Management API").response(),
    };
    let exit = Exit::Forwarded {
        allowed,
        upstream: started.elapsed(),
    };
    (resp.map(Either::Right), exit)
}

/// `forward`: the allowed request to its resource server, its answer streamed back.
async fn forward(
    shared: &Shared,
    snap: &Snapshot,
    req: Request<Incoming>,
    allowed: Allowed,
    from: &Provenance<'_>,
) -> (Response<Body>, Exit) {
    let rs = allowed.resource_server(snap);
    // A body announcing more than the resource server takes never reaches it; one without a
    // length is cut while it streams (the upstream then sees an aborted request).
    if let Some(max) = rs.max_body_bytes
        && limits::announces_more_than(req.body(), max)
    {
        return (rescue::body_too_large().map(Either::Right), Exit::BodyTooLarge(allowed));
    }
    let req = req.map(|body| UpstreamBody::new(body, rs.max_body_bytes));
    let upstream_started = Instant::now();
    let forwarded = shared.forwarder.forward(req, &allowed, snap, from).await;
    let upstream = upstream_started.elapsed();
    match forwarded {
        Ok(resp) => (resp.map(Either::Left), Exit::Forwarded { allowed, upstream }),
        Err(error) => {
            let resp = rescue::upstream_failure(&error);
            let exit = Exit::Failed {
                allowed,
                upstream,
                error,
            };
            (resp.map(Either::Right), exit)
        }
    }
}

/// `log`: the one access line and the request's metrics, for every way out.
fn log(
    shared: &Shared,
    snap: &Snapshot,
    exit: &Exit,
    method: &Method,
    at: &Arrival<'_>,
    status: u16,
    started: Instant,
) {
    // Ids are ASCII by construction (`request_id::take`).
    let request_id = at.id.to_str().unwrap_or("-");
    let line = |path| Line {
        status,
        trace_id: Some(at.trace.trace_id()),
        peer: at.client.via_trusted_proxy.then(|| at.remote.ip()),
        ..Line::new(method, path, request_id, at.client_addr(), started)
    };
    let line = match exit {
        Exit::BadHost { error, uri } => Line {
            outcome: "bad_host",
            detail: Some(error.to_string().into()),
            ..line(uri.path())
        },
        Exit::Issuer {
            uri,
            realm,
            endpoint,
            outcome,
        } => issuer_line(snap, *realm, *endpoint, outcome, line(uri.path())),
        Exit::Panel { uri } => Line {
            outcome: "admin_panel",
            ..line(uri.path())
        },
        Exit::Decision { decision, detail } => decision_line(snap, decision, detail.as_deref(), line),
        Exit::Metadata { uri, resource_server } => Line {
            outcome: "resource_metadata",
            resource_server: Some(&snap.resource_servers[*resource_server].id),
            ..line(uri.path())
        },
        Exit::Denied { denied, uri, detail } => Line {
            detail: detail.as_deref().map(Into::into),
            ..denied_line(snap, denied, line(uri.path()))
        },
        Exit::Preflight { uri, resource, refused } => {
            let pr = &snap.resources[*resource];
            Line {
                outcome: if refused.is_some() {
                    "preflight_refused"
                } else {
                    "preflight"
                },
                resource: Some(&pr.id),
                resource_server: Some(&snap.resource_servers[pr.resource_server].id),
                detail: refused.as_ref().map(|e| e.to_string().into()),
                ..line(uri.path())
            }
        }
        Exit::BodyTooLarge(allowed) => Line {
            outcome: "body_too_large",
            ..allowed_line(snap, allowed, line(allowed.path.as_str()))
        },
        Exit::Forwarded { allowed, upstream } => Line {
            outcome: allowed.outcome(),
            upstream: Some(*upstream),
            // Report-only: what an enforcing resource would have refused, in words.
            detail: allowed.would_refuse.as_ref().map(|e| e.to_string().into()),
            ..allowed_line(snap, allowed, line(allowed.path.as_str()))
        },
        Exit::Failed {
            allowed,
            upstream,
            error,
        } => {
            let outcome = if error.is_clients() {
                error.kind()
            } else {
                shared
                    .metrics
                    .upstream_error(&allowed.resource_server(snap).id, error.kind());
                "upstream_error"
            };
            Line {
                outcome,
                upstream: Some(*upstream),
                detail: Some(error.to_string().into()),
                ..allowed_line(snap, allowed, line(allowed.path.as_str()))
            }
        }
    };
    access::finish(&shared.metrics, &line);
}

/// The line of an embedded issuer's answer: its realm and endpoint, the client and resource
/// server a token went to, or the RFC 6749 error code.
fn issuer_line<'a>(
    snap: &'a Snapshot,
    realm: RealmRef,
    endpoint: IssuerEndpoint,
    outcome: &'a IssuerOutcome,
    line: Line<'a>,
) -> Line<'a> {
    let success = if matches!(endpoint, IssuerEndpoint::Token) {
        "issued"
    } else {
        "ok"
    };
    Line {
        issuer: Some(IssuerCall {
            realm: &snap.realms[realm].name,
            endpoint: endpoint.name(),
            error: outcome.error,
        }),
        resource_server: outcome
            .resource_server
            .as_deref()
            .and_then(|id| snap.resource_server(id))
            .map(|(_, rs)| &rs.id),
        outcome: outcome.error.unwrap_or(success),
        client: outcome.client_id.as_deref(),
        detail: outcome.detail.as_deref().map(Into::into),
        ..line
    }
}

/// The line of a forward-auth decision: as proxy mode's line for the same verdict, with
/// `mode=decision` and the entry.
fn decision_line<'a>(
    snap: &'a Snapshot,
    decision: &'a Decision,
    detail: Option<&'a str>,
    line: impl Fn(&'a str) -> Line<'a>,
) -> Line<'a> {
    let base = |path| Line {
        mode: Some("decision"),
        entry: Some(decision.entry.name()),
        detail: detail.map(Into::into),
        ..line(path)
    };
    match &decision.verdict {
        Ok(allowed) => Line {
            outcome: allowed.outcome(),
            ..allowed_line(snap, allowed, base(allowed.path.as_str()))
        },
        Err(Refusal::Denied(denied)) => denied_line(snap, denied, base(&decision.path)),
        Err(refusal @ Refusal::Original(_)) => Line {
            outcome: refusal.reason(),
            ..base(&decision.path)
        },
    }
}

/// The line of a refusal: the resource (and its server) when one matched, and the reason.
fn denied_line<'a>(snap: &'a Snapshot, denied: &Denied, line: Line<'a>) -> Line<'a> {
    let matched = match denied {
        Denied::Token { resource, .. } | Denied::NotInForce { resource } => {
            let pr = &snap.resources[*resource];
            Some((&pr.id, &snap.resource_servers[pr.resource_server].id))
        }
        _ => None,
    };
    Line {
        resource: matched.map(|(pr, _)| pr),
        resource_server: matched.map(|(_, rs)| rs),
        outcome: denied.reason(),
        ..line
    }
}

/// What every line of an allowed request says: the resource, its server and the client.
fn allowed_line<'a>(snap: &'a Snapshot, allowed: &'a Allowed, line: Line<'a>) -> Line<'a> {
    Line {
        resource: Some(&allowed.resource(snap).id),
        resource_server: Some(&allowed.resource_server(snap).id),
        client: allowed.claims().and_then(|c| c.client_id().or(c.sub())),
        ..line
    }
}
