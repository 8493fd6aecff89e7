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
//! `route` starts here: the request's host is validated once
//! ([`routing::request_host`](crate::routing::request_host)), for every request, the
//! issuers' endpoints included; `route`..`authorize` are then
//! [`Verifier::check`](crate::verifier::Verifier::check); `forward`
//! is [`Forwarder::forward`](crate::proxy::Forwarder::forward); `rescue` is
//! [`crate::rescue`]. The snapshot is loaded once per request, at the start. `log` (one
//! access line and the request's metrics, at every way out, refusals included) is
//! `access`; each request carries an id ([`request_id`]). `accept` applies the listener's
//! limits (`limits`: head size and count, header-read timeout, open connections) and
//! `conn` closes idle connections and drains on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::OwnedSemaphorePermit;

use crate::issuer::Issuer;
use crate::metrics::Metrics;
use crate::model::IssuerEndpoint;
use crate::proxy::{Forwarder, Provenance, UpstreamBody};
use crate::rescue;
use crate::routing;
use crate::verifier::{Denied, Verifier};
use access::{IssuerCall, Line};

mod access;
mod conn;
mod limits;
pub mod request_id;
pub mod tls;
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
}

impl Shared {
    /// The state of one more server worker: the same verifier, issuer and metrics, and an
    /// upstream pool of its own (see [`Forwarder::sibling`]).
    pub fn for_worker(&self) -> Self {
        Self {
            verifier: self.verifier.clone(),
            forwarder: self.forwarder.sibling(),
            issuer: self.issuer.clone(),
            metrics: self.metrics.clone(),
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
        let slot = tokio::select! {
            slot = slots.acquire() => slot,
            () = &mut shutdown => break,
        };
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
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let snap = shared.verifier.snapshot();
        let header_read_timeout = snap.settings.header_read_timeout;
        let watcher = draining.watcher();
        let Some(tls_config) = snap.listener_tls.as_ref().map(|t| t.config.clone()) else {
            let conn = Conn {
                remote,
                proto: "http",
                alpn: tls::Alpn::None,
                client_cert: None,
                slot,
            };
            tokio::spawn(connection(shared, stream, conn, watcher));
            continue;
        };
        // The handshake runs in the connection's own task, so a slow client never holds up
        // the accept loop; header_read_timeout bounds it as it bounds the request head.
        tokio::spawn(async move {
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
        });
    }
    // From here on, connecting is refused.
    drop(listener);
    draining.shutdown(drain).await;
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

/// One request: its id first, then the pipeline. Every answer carries the id back.
async fn handle(shared: &Shared, req: Request<Incoming>, remote: SocketAddr, proto: &'static str) -> Response<Body> {
    let started = Instant::now();
    let id = request_id::take(req.headers());
    let mut resp = pipeline(shared, req, remote, proto, &id, started).await;
    resp.headers_mut().insert(request_id::HEADER, id);
    resp
}

/// The phases; each way out writes the `log` phase's access line.
async fn pipeline(
    shared: &Shared,
    req: Request<Incoming>,
    remote: SocketAddr,
    proto: &'static str,
    id: &HeaderValue,
    started: Instant,
) -> Response<Body> {
    let snap = shared.verifier.snapshot();
    let method = req.method().clone();
    // Ids are ASCII by construction (`request_id::take`).
    let request_id = id.to_str().unwrap_or("-");
    // The host, validated once for every request: routing and X-Forwarded-Host use this one.
    let host = match routing::request_host(req.version(), req.uri(), req.headers()) {
        Ok(host) => host,
        Err(e) => {
            let resp = rescue::bad_host(&e);
            let detail = e.to_string();
            access::finish(
                &shared.metrics,
                &Line {
                    outcome: "bad_host",
                    status: resp.status().as_u16(),
                    detail: Some(&detail),
                    ..Line::new(&method, req.uri().path(), request_id, remote, started)
                },
            );
            return resp.map(Either::Right);
        }
    };
    // The embedded issuers' endpoints are exact paths and come before protected resources.
    if let Some((path, &(realm, endpoint))) = snap.issuer_routes.get_key_value(req.uri().path()) {
        let (resp, outcome) = shared.issuer.handle(&snap, realm, endpoint, req, remote).await;
        let resource_server = outcome
            .resource_server
            .as_deref()
            .and_then(|id| snap.resource_server(id))
            .map(|(_, rs)| &rs.id);
        let success = if matches!(endpoint, IssuerEndpoint::Token) {
            "issued"
        } else {
            "ok"
        };
        access::finish(
            &shared.metrics,
            &Line {
                issuer: Some(IssuerCall {
                    realm: &snap.realms[realm].name,
                    endpoint: endpoint.name(),
                    error: outcome.error,
                }),
                resource_server,
                outcome: outcome.error.unwrap_or(success),
                status: resp.status().as_u16(),
                client: outcome.client_id.as_deref(),
                detail: outcome.detail.as_deref(),
                ..Line::new(&method, path, request_id, remote, started)
            },
        );
        return resp.map(Either::Right);
    }
    let decision = shared
        .verifier
        .check(
            &snap,
            &method,
            host.map(|h| h.as_str()),
            req.uri().path(),
            req.headers(),
        )
        .await;
    let allowed = match decision {
        Ok(a) => a,
        Err(denied) => {
            let resp = rescue::refusal(&denied, &snap);
            let matched = match &denied {
                Denied::Token { resource, .. } | Denied::NotInForce { resource } => {
                    let pr = &snap.resources[*resource];
                    Some((&pr.id, &snap.resource_servers[pr.resource_server].id))
                }
                Denied::BadPath(_) | Denied::NoRoute => None,
            };
            access::finish(
                &shared.metrics,
                &Line {
                    resource: matched.map(|(pr, _)| pr),
                    resource_server: matched.map(|(_, rs)| rs),
                    outcome: denied.reason(),
                    status: resp.status().as_u16(),
                    ..Line::new(&method, req.uri().path(), request_id, remote, started)
                },
            );
            return resp.map(Either::Right);
        }
    };
    let rs = allowed.resource_server(&snap);
    let detail: String;
    let mut line = Line {
        resource: Some(&allowed.resource(&snap).id),
        resource_server: Some(&rs.id),
        client: allowed.claims.client_id().or(allowed.claims.sub()),
        ..Line::new(&method, allowed.path.as_str(), request_id, remote, started)
    };
    // forward. A body announcing more than the resource server takes never reaches it; one
    // without a length is cut while it streams (the upstream then sees an aborted request).
    if let Some(max) = rs.max_body_bytes
        && limits::announces_more_than(req.body(), max)
    {
        let resp = rescue::body_too_large();
        line.outcome = "body_too_large";
        line.status = resp.status().as_u16();
        access::finish(&shared.metrics, &line);
        return resp.map(Either::Right);
    }
    let from = Provenance {
        client: remote.ip(),
        proto,
        host: host.and_then(|h| h.to_header_value()),
        request_id: id,
    };
    let req = req.map(|body| UpstreamBody::new(body, rs.max_body_bytes));
    let upstream_started = Instant::now();
    let forwarded = shared.forwarder.forward(req, &allowed, &snap, &from).await;
    line.upstream = Some(upstream_started.elapsed());
    match forwarded {
        Ok(resp) => {
            line.outcome = "allowed";
            line.status = resp.status().as_u16();
            access::finish(&shared.metrics, &line);
            resp.map(Either::Left)
        }
        Err(e) => {
            let resp = rescue::upstream_failure(&e);
            if e.is_clients() {
                line.outcome = e.kind();
            } else {
                line.outcome = "upstream_error";
                shared.metrics.upstream_error(&rs.id, e.kind());
            }
            detail = e.to_string();
            line.detail = Some(&detail);
            line.status = resp.status().as_u16();
            access::finish(&shared.metrics, &line);
            resp.map(Either::Right)
        }
    }
}
