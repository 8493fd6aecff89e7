//! Bounded HTTPS calls to identity providers: one timeout over connect, request and body; a
//! size cap. Remote key sets are fetched with `Cache-Control: max-age` read for the refresh
//! interval; RFC 7662 introspection posts a form ([`Fetcher::post_form`]).

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use thiserror::Error;

use super::keyset::KeySet;

/// Why a fetch failed. The last good keys keep serving meanwhile.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FetchError {
    /// Connection or protocol failure.
    #[error("request failed: {0}")]
    Transport(String),
    /// The whole fetch took longer than its bound.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// A status other than 200.
    #[error("answered {0}")]
    Status(StatusCode),
    /// The document exceeded the size bound.
    #[error("answer larger than {0} bytes")]
    TooLarge(usize),
    /// The document is not a JWK set.
    #[error("{0}")]
    Parse(#[from] super::keyset::KeySetError),
    /// The document parsed but held no usable key.
    #[error("no usable key in the set ({0})")]
    NoUsableKey(String),
}

/// A fetched key set and the freshness the server asked for.
#[derive(Debug)]
pub struct Fetched {
    /// The usable keys.
    pub keys: KeySet,
    /// Notes on keys that were skipped.
    pub skipped: Vec<String>,
    /// `Cache-Control: max-age`, if sent.
    pub max_age: Option<Duration>,
}

/// A shared HTTP(S) client for key set fetches and introspection calls.
#[derive(Clone, Debug)]
pub struct Fetcher {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Fetcher {
    /// Builds a client trusting the platform's roots ([`crate::tls::platform_roots`]).
    pub fn new() -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(5)));
        // NB: key servers are identity providers, trusted through the platform's roots
        // (`[server] upstream_ca` is the trust of upstream APIs, a different party).
        let builder = match crate::tls::platform_client_config() {
            Some(config) => hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config),
            None => hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots(),
        };
        // Plain http is refused at config load unless the realm says danger_allow_http_jwks.
        let https = builder.https_or_http().enable_http1().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Self { client }
    }

    /// Fetches and parses `uri`, bounded by `timeout` and `max_bytes`.
    pub async fn fetch(&self, uri: &Uri, timeout: Duration, max_bytes: usize) -> Result<Fetched, FetchError> {
        match tokio::time::timeout(timeout, self.fetch_inner(uri, max_bytes)).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::Timeout(timeout)),
        }
    }

    async fn fetch_inner(&self, uri: &Uri, max_bytes: usize) -> Result<Fetched, FetchError> {
        let req = Request::get(uri.clone())
            .header(header::ACCEPT, "application/jwk-set+json, application/json")
            .header(header::USER_AGENT, USER_AGENT)
            .body(Full::default())
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        let (max_age, body) = self.call(req, max_bytes).await?;
        let (keys, skipped) = KeySet::parse(&body)?;
        if keys.is_empty() {
            return Err(FetchError::NoUsableKey(skipped.join("; ")));
        }
        Ok(Fetched { keys, skipped, max_age })
    }

    /// POSTs `form` (`application/x-www-form-urlencoded`) to `uri` with `authorization`,
    /// bounded by `timeout` and `max_bytes`: the body of a 200 answer (RFC 7662 § 2.1).
    pub async fn post_form(
        &self,
        uri: &Uri,
        authorization: &HeaderValue,
        form: String,
        timeout: Duration,
        max_bytes: usize,
    ) -> Result<Bytes, FetchError> {
        let req = Request::post(uri.clone())
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::AUTHORIZATION, authorization.clone())
            .header(header::USER_AGENT, USER_AGENT)
            .body(Full::new(Bytes::from(form)))
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        match tokio::time::timeout(timeout, self.call(req, max_bytes)).await {
            Ok(r) => r.map(|(_, body)| body),
            Err(_) => Err(FetchError::Timeout(timeout)),
        }
    }

    /// One request: a 200 answer's `Cache-Control: max-age` and body of at most `max_bytes`.
    async fn call(&self, req: Request<Full<Bytes>>, max_bytes: usize) -> Result<(Option<Duration>, Bytes), FetchError> {
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| FetchError::Transport(crate::chain::error_chain(&e)))?;
        if resp.status() != StatusCode::OK {
            return Err(FetchError::Status(resp.status()));
        }
        let max_age = resp
            .headers()
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age);
        let body = Limited::new(resp.into_body(), max_bytes)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    FetchError::TooLarge(max_bytes)
                } else {
                    FetchError::Transport(e.to_string())
                }
            })?
            .to_bytes();
        Ok((max_age, body))
    }
}

/// `User-Agent` of every outbound call to an identity provider.
const USER_AGENT: &str = concat!("portcullis/", env!("CARGO_PKG_VERSION"));

impl Default for Fetcher {
    fn default() -> Self {
        Self::new()
    }
}

/// The `max-age` directive of a `Cache-Control` value (RFC 9111 § 5.2.2.1); `no-store` and
/// `no-cache` count as zero.
fn max_age(value: &str) -> Option<Duration> {
    let mut out = None;
    for directive in value.split(',') {
        let d = directive.trim();
        let lower = d.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(v) = lower.strip_prefix("max-age=") {
            out = v.trim_matches('"').parse::<u64>().ok().map(Duration::from_secs);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control() {
        assert_eq!(max_age("public, max-age=300"), Some(Duration::from_secs(300)));
        assert_eq!(max_age("Max-Age=\"60\""), Some(Duration::from_secs(60)));
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=abc"), None);
    }
}
