//! Forwarding an allowed request to its resource server: pooled HTTP/1.1 connections
//! (TLS for `https://` upstreams), bodies streamed both ways, bounded waits.

mod body;
mod headers;
mod tls;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use http::uri::PathAndQuery;
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use thiserror::Error;

pub use body::{ClientBodyError, UpstreamBody};
pub use headers::{
    Provenance, TRACEPARENT, TRACESTATE, X_REQUEST_ID, drop_underscored, set_forwarded, strip_hop_by_hop,
};

use crate::snapshot::Snapshot;
use crate::verifier::Allowed;

/// Why forwarding failed. Each maps to one answer in [`crate::rescue`].
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// Connection refused, reset, DNS failure, TLS failure: `502`.
    #[error("upstream unreachable: {0}")]
    Unreachable(String),
    /// The connection could not be opened in time: `504`.
    #[error("upstream connect timed out")]
    ConnectTimeout,
    /// No response head within the resource server's `response_timeout`: `504`.
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    /// The forwarded request could not be built: `502`.
    #[error("cannot build upstream request: {0}")]
    Request(String),
    /// The request body grew past the resource server's `max_body_bytes` while it streamed
    /// (a body without `Content-Length`); the upstream request was cut: `413`. The client's
    /// fault.
    #[error("request body longer than max_body_bytes")]
    BodyTooLarge,
    /// The client's body was malformed (bad chunked encoding); the upstream request was cut:
    /// `400`. The client's fault.
    #[error("{0}")]
    BadRequestBody(String),
    /// The client stopped sending mid-body (closed, reset, ended early); the upstream request
    /// was cut: `400`, if the client still listens. The client's fault.
    #[error("{0}")]
    ClientAborted(String),
}

impl UpstreamError {
    /// A short, stable label for logs and metrics; for the client's faults, the request's
    /// outcome.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unreachable(_) => "unreachable",
            Self::ConnectTimeout => "connect_timeout",
            Self::Timeout(_) => "timeout",
            Self::Request(_) => "request",
            Self::BodyTooLarge => "body_too_large",
            Self::BadRequestBody(_) => "bad_request_body",
            Self::ClientAborted(_) => "client_aborted",
        }
    }

    /// Whether the client, not the upstream, failed the request (pingora: the error's source
    /// picks the status, 4xx for downstream faults).
    pub fn is_clients(&self) -> bool {
        matches!(
            self,
            Self::BodyTooLarge | Self::BadRequestBody(_) | Self::ClientAborted(_)
        )
    }
}

/// The pooled upstream client.
#[derive(Clone, Debug)]
pub struct Forwarder {
    client: Client<HttpsConnector<HttpConnector>, UpstreamBody>,
    /// The anchors `https://` upstreams are verified against; `None` only when no verifier
    /// could be built, and then hyper-rustls' own Mozilla roots verify (without `upstream_ca`).
    trust: Option<Arc<tls::UpstreamTrust>>,
    connect_timeout: Duration,
}

impl Forwarder {
    /// A client with `TCP_NODELAY`, a connect bound and keep-alive pooling, verifying
    /// `https://` upstreams against the `upstream_ca` of the current snapshot of `snapshots`
    /// (the platform's roots without one).
    pub fn new(connect_timeout: Duration, snapshots: Arc<ArcSwap<Snapshot>>) -> Self {
        Self::with_trust(connect_timeout, tls::UpstreamTrust::new(snapshots).map(Arc::new))
    }

    /// A forwarder with its own connection pool and the same upstream trust as this one.
    /// Each server worker has one, so a pooled connection is only ever used on the runtime
    /// that drives it.
    pub fn sibling(&self) -> Self {
        Self::with_trust(self.connect_timeout, self.trust.clone())
    }

    fn with_trust(connect_timeout: Duration, trust: Option<Arc<tls::UpstreamTrust>>) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let builder = match trust.clone().and_then(tls::client_config) {
            Some(config) => hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config),
            // Unreachable with aws-lc-rs' default provider; still, fail safe rather than open.
            None => hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots(),
        };
        let https = builder.https_or_http().enable_http1().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .build(https);
        Self {
            client,
            trust,
            connect_timeout,
        }
    }

    /// Sends `req` (already allowed) to its resource server and returns the response head
    /// with the body still streaming. The headers the client sent are cleaned first, then
    /// the gateway's own are set from `from` and `allowed` (see [`headers`]).
    pub async fn forward(
        &self,
        mut req: Request<UpstreamBody>,
        allowed: &Allowed,
        snap: &Snapshot,
        from: &Provenance<'_>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let rs = allowed.resource_server(snap);
        let up = &rs.upstream;
        let query = req.uri().query();
        let mut pq =
            String::with_capacity(up.base_path.len() + allowed.path.as_str().len() + query.map_or(0, |q| q.len() + 1));
        pq.push_str(&up.base_path);
        pq.push_str(allowed.path.as_str());
        if let Some(q) = query {
            pq.push('?');
            pq.push_str(q);
        }
        let pq = PathAndQuery::try_from(pq).map_err(|e| UpstreamError::Request(e.to_string()))?;
        let uri = Uri::builder()
            .scheme(up.scheme.clone())
            .authority(up.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|e| UpstreamError::Request(e.to_string()))?;
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_11;
        headers::prepare_request(req.headers_mut(), from, rs, &allowed.claim_headers);
        let resp = match tokio::time::timeout(rs.response_timeout, self.client.request(req)).await {
            Err(_) => return Err(UpstreamError::Timeout(rs.response_timeout)),
            Ok(Err(e)) => return Err(classify(&e)),
            Ok(Ok(resp)) => resp,
        };
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(parts, body))
    }
}

/// Picks the error's source: the client's body (found in the chain before any I/O error of
/// its own), a connect timeout, or the upstream.
fn classify(e: &hyper_util::client::legacy::Error) -> UpstreamError {
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        // hyper reports a failed request body as the cause of the send error.
        if let Some(body) = s.downcast_ref::<ClientBodyError>() {
            return match body {
                ClientBodyError::TooLarge => UpstreamError::BodyTooLarge,
                ClientBodyError::Malformed(_) => UpstreamError::BadRequestBody(crate::chain::error_chain(body)),
                ClientBodyError::Aborted(_) => UpstreamError::ClientAborted(crate::chain::error_chain(body)),
            };
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return UpstreamError::ConnectTimeout;
        }
        src = s.source();
    }
    UpstreamError::Unreachable(crate::chain::error_chain(e))
}
