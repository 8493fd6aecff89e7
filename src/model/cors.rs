//! A resource server's compiled CORS policy (Fetch standard § 3.2): origins, methods and
//! headers as sets, the answer headers rendered once per snapshot.

use std::collections::HashSet;

use http::{HeaderName, HeaderValue, Method};

/// Which origins may read a resource server's answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// `*`: any origin, answered with `Access-Control-Allow-Origin: *`. Never with
    /// credentials (Fetch § 3.2.5: a credentialed request never matches `*`), so the
    /// compiler refuses the two together.
    Any,
    /// Exact serialized origins (`https://app.example.com`, `http://localhost:3000`),
    /// compared byte for byte with the request's `Origin`.
    Exact(HashSet<HeaderValue>),
}

/// CORS for one resource server; absent (the default) means CORS is off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    /// The origins allowed.
    pub origins: AllowedOrigins,
    /// Methods a preflight may ask for. Defaults to `GET, HEAD, POST`.
    pub methods: Vec<Method>,
    /// Request headers (lowercase) a preflight may ask for. Defaults to `authorization`
    /// and `content-type`.
    pub headers: Vec<HeaderName>,
    /// `Access-Control-Allow-Methods`, rendered from `methods`.
    pub allow_methods: HeaderValue,
    /// `Access-Control-Allow-Headers`, rendered from `headers` (none when empty).
    pub allow_headers: Option<HeaderValue>,
    /// `Access-Control-Expose-Headers` on actual responses. Defaults to none.
    pub expose_headers: Option<HeaderValue>,
    /// Whether `Access-Control-Allow-Credentials: true` is sent. Defaults to false.
    pub credentials: bool,
    /// `Access-Control-Max-Age` on preflight answers. Defaults to none (the browser's
    /// own, 5 s in Fetch).
    pub max_age: Option<HeaderValue>,
}
