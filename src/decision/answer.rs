//! A decision as the forward-auth answer every supported proxy reads the same way.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;

use super::{Decision, Refusal};
use crate::rescue;
use crate::respond;
use crate::snapshot::Snapshot;
use crate::verifier::Denied;

impl Decision {
    /// The answer: `200` with the claim headers (none for an open resource) when allowed;
    /// a token refusal exactly as proxy mode answers it (`401`/`403` with its
    /// `WWW-Authenticate`, `503` without usable keys); `403` for everything else.
    pub fn answer(&self, snap: &Snapshot) -> Response<Full<Bytes>> {
        match &self.verdict {
            Ok(allowed) => {
                let mut resp = Response::new(Full::new(Bytes::new()));
                let headers = resp.headers_mut();
                for (name, value) in &allowed.claim_headers {
                    headers.append(name.clone(), value.clone());
                }
                resp
            }
            Err(Refusal::Denied(denied @ Denied::Token { .. })) => rescue::refusal(denied, snap),
            // No resource to check the request against (or a path that cannot be one): not
            // allowed. A 404 would be an nginx 500, and 400 is a client's fault the proxy
            // would have to explain; a forward-auth answer is allow or deny.
            Err(Refusal::Denied(_)) => respond::error(
                StatusCode::FORBIDDEN,
                "access_denied",
                "no protected resource matches this request",
            ),
            // Details go to the log: a client must not learn how to describe a request.
            Err(Refusal::Original(_)) => respond::error(
                StatusCode::FORBIDDEN,
                "access_denied",
                "the forwarded request was not described by a trusted proxy",
            ),
        }
    }
}
