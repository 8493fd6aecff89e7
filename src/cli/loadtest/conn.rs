//! One load connection: HTTP/1.1, or HTTP/2 over cleartext with prior knowledge (h2c),
//! whose sender is cloned to run several streams at once.

use http::header::HOST;
use http::{HeaderValue, Request, Uri};
use hyper_util::rt::TokioIo;

use super::Fail;

/// A connection and the `Host` its requests carry.
pub(super) struct Conn<B> {
    /// Where requests go.
    pub(super) send: Sender<B>,
    /// The target's authority, for HTTP/1.1's `Host`.
    pub(super) host: HeaderValue,
}

/// The request sender of either protocol.
pub(super) enum Sender<B> {
    /// HTTP/1.1: one request at a time.
    H1(hyper::client::conn::http1::SendRequest<B>),
    /// HTTP/2: cloned for concurrent streams on the same connection.
    H2(hyper::client::conn::http2::SendRequest<B>),
}

impl<B> Sender<B>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// Sends `req`, waiting for the connection to be ready first (an HTTP/1.1 connection
    /// whose previous answer was not read to the end is not).
    pub(super) async fn send(&mut self, req: Request<B>) -> hyper::Result<http::Response<hyper::body::Incoming>> {
        match self {
            Self::H1(s) => {
                s.ready().await?;
                s.send_request(req).await
            }
            Self::H2(s) => {
                s.ready().await?;
                s.send_request(req).await
            }
        }
    }
}

impl<B> Conn<B>
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// Connects to `uri`'s authority (http:// only) and shakes hands.
    pub(super) async fn open(uri: &Uri, http2: bool) -> Result<Self, Fail> {
        if uri.scheme_str() != Some("http") {
            return Err((
                super::super::EXIT_CONFIG,
                format!("{uri}: only http:// targets are supported"),
            ));
        }
        let authority = uri
            .authority()
            .ok_or((super::super::EXIT_CONFIG, format!("{uri}: no host")))?;
        let port = authority.port_u16().unwrap_or(80);
        let stream = tokio::net::TcpStream::connect((authority.host(), port))
            .await
            .map_err(|e| (1, format!("cannot connect to {authority}: {e}")))?;
        let _ = stream.set_nodelay(true);
        let send = if http2 {
            let (send, conn) =
                hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), TokioIo::new(stream))
                    .await
                    .map_err(|e| (1, format!("{authority}: no HTTP/2 (h2c): {e}")))?;
            tokio::spawn(conn);
            Sender::H2(send)
        } else {
            let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| (1, e.to_string()))?;
            tokio::spawn(conn);
            Sender::H1(send)
        };
        let host = HeaderValue::from_str(authority.as_str()).map_err(|_| (1, "bad host".to_owned()))?;
        Ok(Self { send, host })
    }

    /// Another stream on the same HTTP/2 connection; `None` for HTTP/1.1.
    pub(super) fn stream(&self) -> Option<Self> {
        match &self.send {
            Sender::H2(s) => Some(Self {
                send: Sender::H2(s.clone()),
                host: self.host.clone(),
            }),
            Sender::H1(_) => None,
        }
    }

    /// A request builder for `uri`: HTTP/1.1 in origin form with `Host`, HTTP/2 with the
    /// whole URI (its `:authority`).
    pub(super) fn request(&self, method: &http::Method, uri: &Uri) -> http::request::Builder {
        match &self.send {
            Sender::H2(_) => Request::builder().method(method.clone()).uri(uri.clone()),
            Sender::H1(_) => Request::builder()
                .method(method.clone())
                .uri(uri.path_and_query().map_or("/", |p| p.as_str()))
                .header(HOST, self.host.clone()),
        }
    }
}
