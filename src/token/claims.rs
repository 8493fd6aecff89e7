//! Access-token claims (RFC 7519 § 4.1, RFC 9068 § 2.2) and the checks on them, written as
//! the steps of PRODUCT.md "Requests through the gateway", step 4.
//!
//! Checks split in two: [`Claims::check_issuer`] depends only on the token and its realm,
//! so a cached verified token need not repeat it; [`Claims::check_request`] depends on the
//! route and the clock and runs on every request, cache hit or not.

use http::HeaderValue;
use serde_json::{Map, Value};

use super::TokenError;
use crate::model::{ProtectedResource, ResourceServer};

/// The claims of a verified token.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claims {
    /// `iss`.
    pub iss: Option<String>,
    /// `sub`.
    pub sub: Option<String>,
    /// `client_id` (RFC 9068 § 2.2).
    pub client_id: Option<String>,
    /// `jti`.
    pub jti: Option<String>,
    /// `aud`, a string or an array of strings (RFC 7519 § 4.1.3).
    pub aud: Vec<String>,
    /// `exp`.
    pub exp: Option<i64>,
    /// `nbf`.
    pub nbf: Option<i64>,
    /// `iat`.
    pub iat: Option<i64>,
    /// `auth_time` (OIDC Core § 2; RFC 9470 § 4).
    pub auth_time: Option<i64>,
    /// Granted scopes: `scope` (space-separated, RFC 8693 § 4.2) or else `scp` (array).
    pub scopes: Vec<String>,
    /// The claims the realm's resource servers pass upstream (their `claim_headers`),
    /// rendered once, when the token is verified, instead of on every request; and only
    /// those, so a cached token holds no more than the gateway uses.
    pub forwarded: Box<[ForwardedClaim]>,
}

/// A claim as a header value.
#[derive(Debug, Clone, PartialEq)]
pub struct ForwardedClaim {
    /// The claim's name.
    pub name: Box<str>,
    /// Its rendering; `None` when it cannot be a header value (control characters, non-ASCII).
    pub value: Option<HeaderValue>,
}

/// The per-request context claims are checked against.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext<'a> {
    /// Now, in Unix seconds.
    pub now: i64,
    /// The realm's leeway in seconds.
    pub leeway: i64,
    /// The resource server the request goes to.
    pub resource_server: &'a ResourceServer,
    /// The protected resource it matched.
    pub resource: &'a ProtectedResource,
}

impl Claims {
    /// Parses a JWT claims set. Registered claims must have their registered types.
    pub fn parse(json: &[u8]) -> Result<Self, TokenError> {
        Self::parse_forwarding(json, &[])
    }

    /// As [`Self::parse`], keeping the claims named in `forward` (sorted, as
    /// [`crate::model::Realm::forwarded_claims`] is) rendered for [`Self::header_value`].
    pub fn parse_forwarding(json: &[u8], forward: &[Box<str>]) -> Result<Self, TokenError> {
        let raw: Map<String, Value> =
            serde_json::from_slice(json).map_err(|_| TokenError::Malformed("claims are not a JSON object"))?;
        let string = |name: &'static str| -> Result<Option<String>, TokenError> {
            match raw.get(name) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(TokenError::BadClaim(name)),
            }
        };
        let time = |name: &'static str| -> Result<Option<i64>, TokenError> {
            match raw.get(name) {
                None => Ok(None),
                Some(Value::Number(n)) => n
                    .as_i64()
                    // RFC 7519 § 2: NumericDate may be non-integer.
                    .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f.floor() as i64))
                    .map(Some)
                    .ok_or(TokenError::BadClaim(name)),
                Some(_) => Err(TokenError::BadClaim(name)),
            }
        };
        let aud = match raw.get("aud") {
            None => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned).ok_or(TokenError::BadClaim("aud")))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(TokenError::BadClaim("aud")),
        };
        let scopes = match (raw.get("scope"), raw.get("scp")) {
            (Some(Value::String(s)), _) => s.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
            (Some(_), _) => return Err(TokenError::BadClaim("scope")),
            (None, Some(Value::Array(items))) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned).ok_or(TokenError::BadClaim("scp")))
                .collect::<Result<_, _>>()?,
            // Some issuers send `scp` as a space-separated string.
            (None, Some(Value::String(s))) => s.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
            (None, Some(_)) => return Err(TokenError::BadClaim("scp")),
            (None, None) => Vec::new(),
        };
        Ok(Self {
            iss: string("iss")?,
            sub: string("sub")?,
            client_id: string("client_id")?,
            jti: string("jti")?,
            aud,
            exp: time("exp")?,
            nbf: time("nbf")?,
            iat: time("iat")?,
            auth_time: time("auth_time")?,
            scopes,
            forwarded: forward
                .iter()
                .filter_map(|name| {
                    let text = render(raw.get(&**name)?)?;
                    Some(ForwardedClaim {
                        name: name.clone(),
                        value: HeaderValue::from_str(&text).ok(),
                    })
                })
                .collect(),
        })
    }

    /// Route-independent checks: `iss` is the realm's issuer (RFC 9068 § 4 step 3) and
    /// `exp` is present (RFC 9068 § 2.2 makes it required).
    pub fn check_issuer(&self, issuer: &str) -> Result<(), TokenError> {
        match &self.iss {
            None => return Err(TokenError::MissingClaim("iss")),
            Some(iss) if iss != issuer => return Err(TokenError::WrongIssuer),
            Some(_) => {}
        }
        if self.exp.is_none() {
            return Err(TokenError::MissingClaim("exp"));
        }
        Ok(())
    }

    /// Whether the token grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Per-request checks, in order; the first failure is the answer.
    pub fn check_request(&self, cx: &RequestContext<'_>) -> Result<(), TokenError> {
        let RequestContext {
            now,
            leeway,
            resource_server,
            resource,
        } = *cx;
        // 1. exp: "MUST NOT be accepted on or after" it (RFC 7519 § 4.1.4), with leeway.
        let exp = self.exp.ok_or(TokenError::MissingClaim("exp"))?;
        if now >= exp.saturating_add(leeway) {
            return Err(TokenError::Expired);
        }
        // 2. nbf: "MUST NOT be accepted before" it (RFC 7519 § 4.1.5).
        if let Some(nbf) = self.nbf
            && now < nbf.saturating_sub(leeway)
        {
            return Err(TokenError::NotYetValid);
        }
        // 3. iat in the future is a clock or forgery problem (RFC 8725 § 3.10 spirit).
        if let Some(iat) = self.iat
            && iat > now.saturating_add(leeway)
        {
            return Err(TokenError::IssuedInFuture);
        }
        // 4. aud must contain the resource server's audience (RFC 9068 § 4 step 4).
        let audience = resource_server.audience.as_str();
        if !self.aud.iter().any(|a| a == audience) {
            return Err(TokenError::WrongAudience);
        }
        // 5. token lifetime cap (seed 002's maxPermissionDuration).
        if let Some(cap) = resource.max_token_lifetime {
            let iat = self.iat.ok_or(TokenError::MissingClaim("iat"))?;
            if exp.saturating_sub(iat) > cap {
                return Err(TokenError::LifetimeTooLong);
            }
        }
        // 6. scopes (RFC 6750 § 3.1 insufficient_scope).
        if !resource.scope_match.satisfied(&resource.scopes, |s| self.has_scope(s)) {
            return Err(TokenError::InsufficientScope);
        }
        // 7. max_age against auth_time (RFC 9470 § 3). No leeway: the age is the policy.
        if let Some(max_age) = resource.max_age {
            let Some(auth_time) = self.auth_time else {
                return Err(TokenError::AuthenticationTooOld(max_age));
            };
            if now.saturating_sub(auth_time) > max_age {
                return Err(TokenError::AuthenticationTooOld(max_age));
            }
        }
        Ok(())
    }

    /// The claim `name` as a header value, if the token has it and the realm forwards it;
    /// an error when it has it in a form no header can carry.
    pub fn header_value(&self, name: &str) -> Result<Option<&HeaderValue>, TokenError> {
        let Ok(i) = self.forwarded.binary_search_by(|c| (*c.name).cmp(name)) else {
            return Ok(None);
        };
        match &self.forwarded[i].value {
            Some(v) => Ok(Some(v)),
            None => Err(TokenError::UnrepresentableClaim(name.to_owned())),
        }
    }
}

/// A claim rendered as header text: strings as is, numbers and booleans as JSON, arrays of
/// strings space-separated, anything else as compact JSON; `null` as no header.
fn render(v: &Value) -> Option<String> {
    Some(match v {
        Value::String(s) => s.clone(),
        Value::Array(items) if items.iter().all(Value::is_string) => {
            items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" ")
        }
        Value::Null => return None,
        other => other.to_string(),
    })
}
