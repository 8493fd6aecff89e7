//! Token-endpoint errors (RFC 6749 § 5.2, RFC 8707 § 2): one code and status each.

use bytes::Bytes;
use http::header::WWW_AUTHENTICATE;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use thiserror::Error;

use crate::respond;

/// Seconds a client is asked to wait when every secret-check turn is taken: the queue
/// drains within about that.
pub(super) const BUSY_RETRY_AFTER: u64 = 1;

/// An OAuth error answer. The message is the `error_description`; it never contains a
/// secret, an assertion or a token.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum OAuthError {
    /// Missing or repeated parameter, unsupported content type, malformed request.
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    /// Client authentication failed. `basic` says whether the client tried HTTP Basic
    /// (then the answer is 401 with `WWW-Authenticate: Basic`, RFC 6749 § 5.2).
    #[error("invalid_client: {message}")]
    InvalidClient {
        /// The description.
        message: String,
        /// Whether HTTP Basic was used.
        basic: bool,
    },
    /// The client may not use this grant or this resource server.
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(String),
    /// Not `client_credentials`.
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    /// Any request to the authorization endpoint (RFC 6749 § 4.1.2.1): no response type is
    /// served there.
    #[error("unsupported_response_type")]
    UnsupportedResponseType,
    /// A requested scope cannot be granted.
    #[error("invalid_scope: {0}")]
    InvalidScope(String),
    /// No resource server fits `resource` / `resourceServer` / the realm default.
    #[error("invalid_target: {0}")]
    InvalidTarget(String),
    /// Too many failed authentications for this client from this source: refused without
    /// checking until the failure window ends (`retry_after` seconds), answered as
    /// `invalid_client` with `Retry-After`.
    #[error("invalid_client: throttled for {retry_after} s")]
    SlowDown {
        /// Seconds until the source may try again.
        retry_after: u64,
        /// Whether HTTP Basic was used.
        basic: bool,
    },
    /// Too many client authentications are being checked at once: 503 with `Retry-After`.
    #[error("temporarily_unavailable")]
    TemporarilyUnavailable,
    /// Something on our side (e.g. signing failed).
    #[error("server_error")]
    ServerError,
}

impl OAuthError {
    /// The RFC error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidClient { .. } => "invalid_client",
            Self::UnauthorizedClient(_) => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope(_) => "invalid_scope",
            Self::InvalidTarget(_) => "invalid_target",
            Self::SlowDown { .. } => "invalid_client",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::ServerError => "server_error",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::InvalidClient { basic: true, .. } | Self::SlowDown { .. } => StatusCode::UNAUTHORIZED,
            // RFC 6749 § 5.2 allows 400 when the client did not use an Authorization header.
            Self::InvalidClient { basic: false, .. } => StatusCode::UNAUTHORIZED,
            Self::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn description(&self) -> String {
        match self {
            Self::InvalidRequest(m) | Self::UnauthorizedClient(m) | Self::InvalidScope(m) | Self::InvalidTarget(m) => {
                m.clone()
            }
            Self::InvalidClient { message, .. } => message.clone(),
            Self::UnsupportedGrantType => "only client_credentials is supported".into(),
            Self::UnsupportedResponseType => {
                "this authorization server has no interactive flows: ask its token endpoint with client_credentials"
                    .into()
            }
            Self::SlowDown { .. } => "too many failed authentications; try again later".into(),
            Self::TemporarilyUnavailable => "too many client authentications at once; try again shortly".into(),
            Self::ServerError => "the token could not be issued".into(),
        }
    }

    /// The HTTP answer: JSON body, `Cache-Control: no-store` (RFC 6749 § 5.1).
    pub fn response(&self, realm: &str) -> Response<Full<Bytes>> {
        let mut resp = respond::error(self.status(), self.code(), &self.description());
        let h = resp.headers_mut();
        // RFC 6749 § 5.2: a failed Basic authentication answers 401 with a challenge for the
        // scheme the client used; the error code rides along as an auth-param (RFC 9110
        // § 11.2), as clients read it from the challenge before the body.
        if matches!(
            self,
            Self::InvalidClient { basic: true, .. } | Self::SlowDown { basic: true, .. }
        ) && let Ok(v) = HeaderValue::from_str(&format!(r#"Basic realm="{realm}", error="invalid_client""#))
        {
            h.insert(WWW_AUTHENTICATE, v);
        }
        let retry_after = match self {
            Self::SlowDown { retry_after, .. } => Some(*retry_after),
            Self::TemporarilyUnavailable => Some(BUSY_RETRY_AFTER),
            _ => None,
        };
        if let Some(secs) = retry_after {
            h.insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}
