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
//! `route`..`authorize` are [`Verifier::check`](crate::verifier::Verifier::check); `forward`
//! is [`Forwarder::forward`](crate::proxy::Forwarder::forward); `rescue` is
//! [`crate::rescue`]. The snapshot is loaded once per request, at the start.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::issuer::Issuer;
use crate::proxy::Forwarder;
use crate::rescue;
use crate::verifier::Verifier;

/// The body of every answer: the upstream's stream, or a small synthetic body.
pub type Body = Either<Incoming, Full<Bytes>>;

/// What every connection shares.
#[derive(Debug)]
pub struct Shared {
    /// Decisions.
    pub verifier: Arc<Verifier>,
    /// Upstream connections.
    pub forwarder: Forwarder,
    /// The embedded issuers' endpoints.
    pub issuer: Issuer,
}

/// Serves `listener` until `shutdown` resolves, then stops accepting and lets open
/// connections finish their in-flight requests, for at most `drain`.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, shutdown: impl Future<Output = ()>, drain: Duration) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(5);
    loop {
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
        let header_read_timeout = shared.verifier.snapshot().settings.header_read_timeout;
        let service = service_fn(move |req| {
            let shared = shared.clone();
            async move { Ok::<_, Infallible>(handle(&shared, req, remote).await) }
        });
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .keep_alive(true);
        builder.http2().timer(TokioTimer::new());
        let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %remote, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(drain) => tracing::warn!("drain deadline passed; closing remaining connections"),
    }
}

/// One request through the pipeline.
async fn handle(shared: &Shared, req: Request<Incoming>, remote: SocketAddr) -> Response<Body> {
    let started = Instant::now();
    let snap = shared.verifier.snapshot();
    // The embedded issuers' endpoints are exact paths and come before protected resources.
    if let Some(&(realm, endpoint)) = snap.issuer_routes.get(req.uri().path()) {
        return shared
            .issuer
            .handle(&snap, realm, endpoint, req)
            .await
            .map(Either::Right);
    }
    let method = req.method().clone();
    // RFC 9112 § 3.2.2: an absolute-form target's authority wins over Host; for HTTP/2 the
    // URI carries :authority.
    let host = req
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()))
        .map(str::to_owned);
    let decision = shared
        .verifier
        .check(&snap, &method, host.as_deref(), req.uri().path(), req.headers())
        .await;
    let allowed = match decision {
        Ok(a) => a,
        Err(denied) => {
            let resp = rescue::refusal(&denied, &snap);
            let (resource, rs) = match &denied {
                crate::verifier::Denied::Token { resource, .. } | crate::verifier::Denied::NotInForce { resource } => {
                    let pr = &snap.resources[*resource];
                    (pr.id.as_str(), snap.resource_servers[pr.resource_server].id.as_str())
                }
                _ => ("-", "-"),
            };
            tracing::info!(
                target: "access",
                %method,
                path = %req.uri().path(),
                resource,
                resource_server = rs,
                outcome = denied.reason(),
                status = resp.status().as_u16(),
                duration_us = started.elapsed().as_micros() as u64,
                "refused"
            );
            return resp.map(Either::Right);
        }
    };
    let pr = allowed.resource(&snap);
    let rs = allowed.resource_server(&snap);
    let subject = allowed
        .claims
        .client_id
        .clone()
        .or_else(|| allowed.claims.sub.clone())
        .unwrap_or_default();
    let upstream_started = Instant::now();
    let path = allowed.path.as_str().to_owned();
    match shared.forwarder.forward(req, &allowed, &snap, remote, "http").await {
        Ok(resp) => {
            tracing::info!(
                target: "access",
                %method,
                path,
                resource = pr.id.as_str(),
                resource_server = rs.id.as_str(),
                outcome = "allowed",
                status = resp.status().as_u16(),
                client = subject,
                duration_us = started.elapsed().as_micros() as u64,
                upstream_us = upstream_started.elapsed().as_micros() as u64,
                "forwarded"
            );
            resp.map(Either::Left)
        }
        Err(e) => {
            let resp = rescue::upstream_failure(&e);
            tracing::warn!(
                target: "access",
                %method,
                path,
                resource = pr.id.as_str(),
                resource_server = rs.id.as_str(),
                outcome = "upstream_error",
                status = resp.status().as_u16(),
                error = %e,
                duration_us = started.elapsed().as_micros() as u64,
                "upstream failed"
            );
            resp.map(Either::Right)
        }
    }
}
