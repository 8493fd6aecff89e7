//! The admin listener, apart from the public port: `/healthz` (the process answers),
//! `/readyz` (a configuration is loaded and every realm has usable keys) and `/metrics`
//! (Prometheus).

pub mod metrics;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::respond;
use crate::store::StoreHealth;
use crate::verifier::Verifier;

/// Serves the admin endpoints on `listener` until `shutdown` resolves; `/metrics` encodes
/// `registry` (see [`metrics::registry`]).
pub async fn serve(listener: TcpListener, state: Arc<AdminState>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(answer(&state, &req)) }
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5));
            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

/// What the admin listener reports on.
#[derive(Debug)]
pub struct AdminState {
    /// Snapshot, keys and cache.
    pub verifier: Arc<Verifier>,
    /// The metrics exposed at `/metrics`.
    pub registry: Arc<Registry>,
    /// The store as this replica sees it, when there is one.
    pub store: Option<Arc<StoreHealth>>,
}

fn answer(state: &AdminState, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let AdminState { verifier, registry, .. } = state;
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return respond::json(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({ "error": "method not allowed" }),
        );
    }
    match req.uri().path() {
        "/healthz" => respond::json(StatusCode::OK, &json!({ "status": "ok" })),
        "/readyz" => {
            let snap = verifier.snapshot();
            let realms: Vec<Value> = snap
                .realms
                .iter()
                .map(|r| {
                    let h = r.keys.health();
                    json!({
                        "realm": r.name.as_str(),
                        "usable": h.usable,
                        "local_keys": h.local_keys,
                        "remote_keys": h.remote_keys,
                        "remote_age_seconds": h.remote_age,
                        "last_error": h.last_error,
                    })
                })
                .collect();
            let ready = snap.ready();
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            // A store that cannot be reached degrades this replica without making it unready:
            // it keeps serving what it knows, and every replica shares the same store, so
            // taking them out of rotation would turn an outage of writes into one of reads.
            let now = verifier.clock().now();
            let store = state.store.as_ref().map(|h| {
                json!({
                    "status": if h.is_ok() { "ok" } else { "degraded" },
                    "version": h.version(),
                    "age_seconds": h.age(now),
                    "last_error": h.last_error().as_deref(),
                })
            });
            respond::json(status, &json!({ "ready": ready, "realms": realms, "store": store }))
        }
        "/metrics" => match metrics::encode(registry) {
            Ok(text) => {
                let mut resp = Response::new(Full::new(Bytes::from(text)));
                resp.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static(metrics::CONTENT_TYPE));
                resp.headers_mut()
                    .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                resp
            }
            // Only a failing `fmt::Write` into a String, which does not fail; answered anyway.
            Err(_) => respond::json(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({ "error": "metrics could not be encoded" }),
            ),
        },
        _ => respond::json(StatusCode::NOT_FOUND, &json!({ "error": "not found" })),
    }
}
