//! Access-token claims (RFC 7519 § 4.1, RFC 9068 § 2.2) and the checks on them, written as
//! numbered steps of the gateway's authorize phase.
//!
//! Checks split in two: [`Claims::check_issuer`] depends only on the token and its realm,
//! so a cached verified token need not repeat it; [`Claims::check_request`] depends on the
//! route and the clock and runs on every request, cache hit or not.

use http::HeaderValue;
use serde_json::{Map, Value};

use super::TokenError;
use crate::model::{ProtectedResource, ResourceServer};

/// The claims of a verified token.
///
/// The string claims are packed into one buffer with offsets, not one allocation each: a
/// cached token costs a few hundred bytes of claims instead of twice that (README,
/// Performance). Read them through the accessors.
#[derive(Clone, Default, PartialEq)]
pub struct Claims {
    /// `exp`.
    pub exp: Option<i64>,
    /// `nbf`.
    pub nbf: Option<i64>,
    /// `iat`.
    pub iat: Option<i64>,
    /// `auth_time` (OIDC Core § 2; RFC 9470 § 4).
    pub auth_time: Option<i64>,
    /// The claims the realm's resource servers pass upstream (their `claim_headers`),
    /// rendered once, when the token is verified, instead of on every request; and only
    /// those, so a cached token holds no more than the gateway uses.
    pub forwarded: Box<[ForwardedClaim]>,
    /// `iss`, `sub`, `client_id`, `jti`, then each `aud` entry, then each scope.
    text: Box<str>,
    iss: Option<Span>,
    sub: Option<Span>,
    client_id: Option<Span>,
    jti: Option<Span>,
    /// Where in `text` each `aud` entry, then each scope, ends; each starts where the one
    /// before it ends (the first at `lists_start`).
    ends: Box<[u32]>,
    lists_start: u32,
    /// How many of `ends` are `aud` entries.
    n_aud: u32,
    /// For a token without `jti`: the SHA-256 of its JWS signing input
    /// (`header.payload`, of the inner JWS for an encrypted token), its identity for
    /// revocation. Boxed, as most tokens have a `jti` and a cached entry should stay small.
    signed: Option<Box<[u8; 32]>>,
}

/// A byte range of [`Claims::text`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Span {
    start: u32,
    end: u32,
}

impl std::fmt::Debug for Claims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claims")
            .field("iss", &self.iss())
            .field("sub", &self.sub())
            .field("client_id", &self.client_id())
            .field("jti", &self.jti())
            .field("aud", &self.aud().collect::<Vec<_>>())
            .field("exp", &self.exp)
            .field("nbf", &self.nbf)
            .field("iat", &self.iat)
            .field("auth_time", &self.auth_time)
            .field("scopes", &self.scopes().collect::<Vec<_>>())
            .field("forwarded", &self.forwarded)
            .finish()
    }
}

/// Builds [`Claims::text`] and its offsets.
#[derive(Default)]
struct Packer {
    text: String,
    ends: Vec<u32>,
}

impl Packer {
    fn offset(&self) -> Result<u32, TokenError> {
        u32::try_from(self.text.len()).map_err(|_| TokenError::Malformed("claims too large"))
    }

    fn span(&mut self, s: Option<&str>) -> Result<Option<Span>, TokenError> {
        let Some(s) = s else { return Ok(None) };
        let start = self.offset()?;
        self.text.push_str(s);
        Ok(Some(Span {
            start,
            end: self.offset()?,
        }))
    }

    fn item(&mut self, s: &str) -> Result<(), TokenError> {
        self.text.push_str(s);
        let end = self.offset()?;
        self.ends.push(end);
        Ok(())
    }
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
        let string = |name| claim_str(&raw, name);
        let time = |name| claim_time(&raw, name);
        let aud = audiences(&raw)?;
        let scopes = granted_scopes(&raw)?;
        let mut p = Packer::default();
        let iss = p.span(string("iss")?)?;
        let sub = p.span(string("sub")?)?;
        let client_id = p.span(string("client_id")?)?;
        let jti = p.span(string("jti")?)?;
        let lists_start = p.offset()?;
        for a in &aud {
            p.item(a)?;
        }
        for s in &scopes {
            p.item(s)?;
        }
        Ok(Self {
            exp: time("exp")?,
            nbf: time("nbf")?,
            iat: time("iat")?,
            auth_time: time("auth_time")?,
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
            text: p.text.into_boxed_str(),
            iss,
            sub,
            client_id,
            jti,
            ends: p.ends.into_boxed_slice(),
            lists_start,
            n_aud: u32::try_from(aud.len()).map_err(|_| TokenError::BadClaim("aud"))?,
            signed: None,
        })
    }

    fn get(&self, span: Option<Span>) -> Option<&str> {
        let span = span?;
        self.text.get(span.start as usize..span.end as usize)
    }

    /// Entry `i` of the `aud` entries followed by the scopes.
    fn item(&self, i: usize) -> &str {
        let start = match i.checked_sub(1) {
            None => self.lists_start,
            Some(prev) => self.ends.get(prev).copied().unwrap_or(0),
        };
        let end = self.ends.get(i).copied().unwrap_or(0);
        self.text.get(start as usize..end as usize).unwrap_or_default()
    }

    /// `iss`.
    pub fn iss(&self) -> Option<&str> {
        self.get(self.iss)
    }

    /// `sub`.
    pub fn sub(&self) -> Option<&str> {
        self.get(self.sub)
    }

    /// `client_id` (RFC 9068 § 2.2).
    pub fn client_id(&self) -> Option<&str> {
        self.get(self.client_id)
    }

    /// `jti`.
    pub fn jti(&self) -> Option<&str> {
        self.get(self.jti)
    }

    /// The SHA-256 of the JWS signing input, recorded at verification for tokens without
    /// `jti` (see [`Self::set_signing_input`]).
    pub fn signed_digest(&self) -> Option<&[u8; 32]> {
        self.signed.as_deref()
    }

    /// Records the JWS signing input this token was verified over, when it has no `jti`:
    /// then that, not the token text, is what identifies it. NB: the text is not an identity,
    /// an ECDSA signature `(r, s)` also verifies as `(r, n − s)`, and a JWE can be re-encrypted.
    pub fn set_signing_input(&mut self, signing_input: &str) {
        if self.jti.is_none() {
            self.signed = Some(Box::new(super::sha256(signing_input.as_bytes())));
        }
    }

    /// `aud`, a string or an array of strings (RFC 7519 § 4.1.3), as a list.
    pub fn aud(&self) -> impl Iterator<Item = &str> {
        (0..self.n_aud as usize).map(|i| self.item(i))
    }

    /// Whether `aud` contains `audience`.
    pub fn has_aud(&self, audience: &str) -> bool {
        self.aud().any(|a| a == audience)
    }

    /// Granted scopes: `scope` (space-separated, RFC 8693 § 4.2) or else `scp` (array).
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        (self.n_aud as usize..self.ends.len()).map(|i| self.item(i))
    }

    /// Route-independent checks: `iss` is the realm's issuer (RFC 9068 § 4 step 3) and
    /// `exp` is present (RFC 9068 § 2.2 makes it required).
    pub fn check_issuer(&self, issuer: &str) -> Result<(), TokenError> {
        match self.iss() {
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
        self.scopes().any(|s| s == scope)
    }

    /// Whether the token is live at `now` (seconds), with `leeway`: the one check of the time
    /// claims, for access tokens, client assertions and introspection alike. Returns `exp`.
    pub fn check_lifetime(&self, now: i64, leeway: i64) -> Result<i64, TokenError> {
        // 1. exp is required and "MUST NOT be accepted on or after" it (RFC 7519 § 4.1.4).
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
        Ok(exp)
    }

    /// Per-request checks, in order; the first failure is the answer. The steps are
    /// [`REQUEST_CHECKS`]'s, called directly on the hot path (a unit test holds the two
    /// orders equal).
    pub fn check_request(&self, cx: &RequestContext<'_>) -> Result<(), TokenError> {
        self.step_lifetime(cx)?;
        self.step_auth_time(cx)?;
        self.step_audience(cx)?;
        self.step_lifetime_cap(cx)?;
        self.step_scopes(cx)?;
        self.step_max_age(cx)
    }

    /// 1-3. exp, nbf, iat ([`Self::check_lifetime`]).
    fn step_lifetime(&self, cx: &RequestContext<'_>) -> Result<(), TokenError> {
        self.check_lifetime(cx.now, cx.leeway).map(|_| ())
    }

    /// 3b. auth_time in the future, likewise: checked whether or not the route has a
    /// max_age, since a token from the future is wrong everywhere.
    fn step_auth_time(&self, cx: &RequestContext<'_>) -> Result<(), TokenError> {
        if let Some(auth_time) = self.auth_time
            && auth_time > cx.now.saturating_add(cx.leeway)
        {
            return Err(TokenError::AuthenticatedInFuture);
        }
        Ok(())
    }

    /// 4. aud must contain the resource server's audience (RFC 9068 § 4 step 4).
    fn step_audience(&self, cx: &RequestContext<'_>) -> Result<(), TokenError> {
        if !self.has_aud(cx.resource_server.audience.as_str()) {
            return Err(TokenError::WrongAudience);
        }
        Ok(())
    }

    /// 5. token lifetime cap (`max_token_lifetime`).
    fn step_lifetime_cap(&self, cx: &RequestContext<'_>) -> Result<(), TokenError> {
        if let Some(cap) = cx.resource.max_token_lifetime {
            let exp = self.exp.ok_or(TokenError::MissingClaim("exp"))?;
            let iat = self.iat.ok_or(TokenError::MissingClaim("iat"))?;
            if exp.saturating_sub(iat) > cap {
                return Err(TokenError::LifetimeTooLong);
            }
        }
        Ok(())
    }

    /// 6. scopes (RFC 6750 § 3.1 insufficient_scope).
    fn step_scopes(&self, cx: &RequestContext<'_>) -> Result<(), TokenError> {
        let resource = cx.resource;
        if !resource.scope_match.satisfied(&resource.scopes, |s| self.has_scope(s)) {
            return Err(TokenError::InsufficientScope);
        }
        Ok(())
    }

    /// 7. max_age against auth_time (RFC 9470 § 3). No leeway: the age is the policy.
    fn step_max_age(&self, cx: &RequestContext<'_>) -> Result<(), TokenError> {
        if let Some(max_age) = cx.resource.max_age {
            let Some(auth_time) = self.auth_time else {
                return Err(TokenError::AuthenticationTooOld(max_age));
            };
            if cx.now.saturating_sub(auth_time) > max_age {
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
        match self.forwarded.get(i).map(|c| &c.value) {
            Some(Some(v)) => Ok(Some(v)),
            Some(None) => Err(TokenError::UnrepresentableClaim(name.to_owned())),
            None => Ok(None),
        }
    }
}

/// One per-request check of [`Claims::check_request`].
pub type RequestCheck = fn(&Claims, &RequestContext<'_>) -> Result<(), TokenError>;

/// The per-request checks by name, in the order [`Claims::check_request`] runs them (and
/// stops at the first failure); `portcullis explain` runs each and shows every result.
pub const REQUEST_CHECKS: [(&str, RequestCheck); 6] = [
    ("lifetime (exp, nbf, iat)", Claims::step_lifetime),
    ("auth_time not in the future", Claims::step_auth_time),
    ("audience", Claims::step_audience),
    ("max_token_lifetime", Claims::step_lifetime_cap),
    ("scopes", Claims::step_scopes),
    ("max_age", Claims::step_max_age),
];

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

/// A string claim, absent or a string.
fn claim_str<'v>(raw: &'v Map<String, Value>, name: &'static str) -> Result<Option<&'v str>, TokenError> {
    match raw.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(TokenError::BadClaim(name)),
    }
}

/// A NumericDate claim (RFC 7519 § 2: seconds, possibly non-integer), absent or a number.
fn claim_time(raw: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, TokenError> {
    match raw.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f.floor() as i64))
            .map(Some)
            .ok_or(TokenError::BadClaim(name)),
        Some(_) => Err(TokenError::BadClaim(name)),
    }
}

/// An array claim whose items must all be strings.
fn claim_strings<'v>(name: &'static str, items: &'v [Value]) -> Result<Vec<&'v str>, TokenError> {
    items
        .iter()
        .map(|v| v.as_str().ok_or(TokenError::BadClaim(name)))
        .collect()
}

/// `aud`: a string or an array of strings (RFC 7519 § 4.1.3).
fn audiences(raw: &Map<String, Value>) -> Result<Vec<&str>, TokenError> {
    match raw.get("aud") {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.as_str()]),
        Some(Value::Array(items)) => claim_strings("aud", items),
        Some(_) => Err(TokenError::BadClaim("aud")),
    }
}

/// Granted scopes: `scope` (space-separated, RFC 8693 § 4.2), else `scp` (an array, or a
/// space-separated string as some issuers send it).
fn granted_scopes(raw: &Map<String, Value>) -> Result<Vec<&str>, TokenError> {
    match (raw.get("scope"), raw.get("scp")) {
        (Some(Value::String(s)), _) => Ok(s.split(' ').filter(|s| !s.is_empty()).collect()),
        (Some(_), _) => Err(TokenError::BadClaim("scope")),
        (None, Some(Value::Array(items))) => claim_strings("scp", items),
        (None, Some(Value::String(s))) => Ok(s.split(' ').filter(|s| !s.is_empty()).collect()),
        (None, Some(_)) => Err(TokenError::BadClaim("scp")),
        (None, None) => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    mod check_request {
        //! `check_request`'s steps, one at a time, on model values: no sockets, no files.

        use super::*;
        use crate::model::{
            EntityRef, Name, ProtectedResource, ResourceServer, ResourceServerRef, Scope, ScopeMatch, ScopeSet,
            Validity,
        };

        const NOW: i64 = 1_000_000;
        const AUD: &str = "https://api.test";

        fn scopes(list: &[&str]) -> ScopeSet {
            ScopeSet::new(list.iter().filter_map(|s| Scope::parse(s)))
        }

        fn resource_server() -> ResourceServer {
            ResourceServer::example(AUD, &["read", "write"])
        }

        fn resource(required: &[&str], rule: ScopeMatch, max_age: Option<i64>, cap: Option<i64>) -> ProtectedResource {
            ProtectedResource {
                id: Name::new("r"),
                resource_server: ResourceServerRef::at(0),
                host: None,
                methods: None,
                paths: vec!["/**".into()],
                auth: crate::model::Auth::Token,
                scopes: scopes(required),
                scope_match: rule,
                max_age,
                max_token_lifetime: cap,
                validity: Validity::default(),
                enforce: None,
                source: "t.toml".into(),
            }
        }

        /// A token for AUD with `read`, issued a minute ago for ten minutes, authenticated
        /// at issuance; `edit` changes what a step looks at.
        fn check(edit: impl FnOnce(&mut Value), pr: &ProtectedResource) -> Result<(), TokenError> {
            let mut v = serde_json::json!({
                "aud": AUD, "scope": "read", "iat": NOW - 60, "exp": NOW + 540, "auth_time": NOW - 60,
            });
            edit(&mut v);
            let claims = Claims::parse(v.to_string().as_bytes())?;
            let rs = resource_server();
            claims.check_request(&RequestContext {
                now: NOW,
                leeway: 30,
                resource_server: &rs,
                resource: pr,
            })
        }

        fn any() -> ProtectedResource {
            resource(&["read"], ScopeMatch::All, None, None)
        }

        #[test]
        fn a_good_token_passes() {
            assert_eq!(check(|_| {}, &any()), Ok(()));
        }

        #[test]
        fn step_1_exp_is_required_and_refused_from_exp_plus_leeway() {
            assert_eq!(
                check(|v| drop(v.as_object_mut().map(|o| o.remove("exp"))), &any()),
                Err(TokenError::MissingClaim("exp"))
            );
            assert_eq!(check(|v| v["exp"] = (NOW - 29).into(), &any()), Ok(()));
            assert_eq!(
                check(|v| v["exp"] = (NOW - 30).into(), &any()),
                Err(TokenError::Expired)
            );
        }

        #[test]
        fn step_2_nbf_in_the_future_beyond_leeway() {
            assert_eq!(check(|v| v["nbf"] = (NOW + 30).into(), &any()), Ok(()));
            assert_eq!(
                check(|v| v["nbf"] = (NOW + 31).into(), &any()),
                Err(TokenError::NotYetValid)
            );
        }

        #[test]
        fn step_3_iat_and_auth_time_in_the_future() {
            assert_eq!(
                check(|v| v["iat"] = (NOW + 31).into(), &any()),
                Err(TokenError::IssuedInFuture)
            );
            assert_eq!(
                check(|v| v["auth_time"] = (NOW + 31).into(), &any()),
                Err(TokenError::AuthenticatedInFuture)
            );
        }

        #[test]
        fn step_4_aud_must_contain_the_audience() {
            assert_eq!(
                check(|v| v["aud"] = serde_json::json!(["https://other.test", AUD]), &any()),
                Ok(())
            );
            assert_eq!(
                check(|v| v["aud"] = "https://other.test".into(), &any()),
                Err(TokenError::WrongAudience)
            );
        }

        #[test]
        fn step_5_lifetime_cap_needs_iat() {
            let capped = resource(&["read"], ScopeMatch::All, None, Some(600));
            assert_eq!(check(|_| {}, &capped), Ok(()), "600 s is within the cap");
            assert_eq!(
                check(|v| v["exp"] = (NOW + 541).into(), &capped),
                Err(TokenError::LifetimeTooLong)
            );
            assert_eq!(
                check(|v| drop(v.as_object_mut().map(|o| o.remove("iat"))), &capped),
                Err(TokenError::MissingClaim("iat"))
            );
        }

        #[test]
        fn step_6_scopes_all_or_any() {
            let all = resource(&["read", "write"], ScopeMatch::All, None, None);
            let one = resource(&["read", "write"], ScopeMatch::Any, None, None);
            assert_eq!(check(|_| {}, &all), Err(TokenError::InsufficientScope));
            assert_eq!(check(|_| {}, &one), Ok(()));
            assert_eq!(check(|v| v["scope"] = "read write".into(), &all), Ok(()));
            assert_eq!(
                check(|v| v["scope"] = "rea".into(), &one),
                Err(TokenError::InsufficientScope)
            );
        }

        #[test]
        fn step_7_max_age_without_leeway_and_auth_time_required() {
            let fresh = resource(&[], ScopeMatch::All, Some(60), None);
            assert_eq!(check(|_| {}, &fresh), Ok(()), "exactly max_age old passes");
            assert_eq!(
                check(|v| v["auth_time"] = (NOW - 61).into(), &fresh),
                Err(TokenError::AuthenticationTooOld(60))
            );
            assert_eq!(
                check(|v| drop(v.as_object_mut().map(|o| o.remove("auth_time"))), &fresh),
                Err(TokenError::AuthenticationTooOld(60))
            );
        }

        #[test]
        fn steps_run_in_order_the_first_failure_is_the_answer() {
            // Expired AND for another audience AND without the scope: expiry is step 1.
            let all = resource(&["write"], ScopeMatch::All, None, None);
            let edit = |v: &mut Value| {
                v["exp"] = (NOW - 100).into();
                v["aud"] = "https://other.test".into();
            };
            assert_eq!(check(edit, &all), Err(TokenError::Expired));
            assert_eq!(
                check(|v| v["aud"] = "https://other.test".into(), &all),
                Err(TokenError::WrongAudience)
            );
        }
    }

    fn parse(json: &str) -> Claims {
        Claims::parse(json.as_bytes()).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    #[test]
    fn packed_claims_read_back_as_sent() {
        let c = parse(
            r#"{"iss":"https://iss.test","sub":"ünïcode-sub","client_id":"","jti":"j-1",
                "aud":["https://a.test","","https://b.test"],"scope":"read  write admin",
                "exp":10,"nbf":1.9,"iat":2,"auth_time":3}"#,
        );
        assert_eq!(c.iss(), Some("https://iss.test"));
        assert_eq!(c.sub(), Some("ünïcode-sub"));
        assert_eq!(c.client_id(), Some(""), "present but empty is not absent");
        assert_eq!(c.jti(), Some("j-1"));
        assert_eq!(c.aud().collect::<Vec<_>>(), ["https://a.test", "", "https://b.test"]);
        assert!(c.has_aud("https://b.test") && !c.has_aud("https://c.test"));
        assert_eq!(c.scopes().collect::<Vec<_>>(), ["read", "write", "admin"]);
        assert!(c.has_scope("write") && !c.has_scope("rea"));
        assert_eq!(
            (c.exp, c.nbf, c.iat, c.auth_time),
            (Some(10), Some(1), Some(2), Some(3))
        );
    }

    #[test]
    fn absent_claims_and_every_scope_form() {
        let c = parse(r#"{"aud":"https://only.test","scp":["x","y"]}"#);
        assert_eq!((c.iss(), c.sub(), c.client_id(), c.jti()), (None, None, None, None));
        assert_eq!(c.aud().collect::<Vec<_>>(), ["https://only.test"]);
        assert_eq!(c.scopes().collect::<Vec<_>>(), ["x", "y"]);
        let c = parse(r#"{"scp":"p q"}"#);
        assert_eq!(c.aud().count(), 0);
        assert_eq!(c.scopes().collect::<Vec<_>>(), ["p", "q"]);
        let c = parse("{}");
        assert_eq!((c.aud().count(), c.scopes().count()), (0, 0));
        assert_eq!(c, Claims::default());
    }

    #[test]
    fn registered_claims_of_the_wrong_type_are_refused() {
        for json in [
            r#"{"sub":3}"#,
            r#"{"aud":["a",1]}"#,
            r#"{"aud":{}}"#,
            r#"{"scope":["a"]}"#,
            r#"{"scp":[1]}"#,
            r#"{"exp":"soon"}"#,
        ] {
            assert!(Claims::parse(json.as_bytes()).is_err(), "{json}");
        }
    }

    #[test]
    fn check_request_answers_as_the_first_failing_named_check() {
        use crate::model::EntityRef as _;
        let rs = ResourceServer::example("https://api.test", &["read", "write"]);
        let cases = [
            serde_json::json!({"aud": "https://api.test", "scope": "read", "exp": 2_000, "iat": 900, "auth_time": 950}),
            serde_json::json!({"aud": "https://other.test", "scope": "write", "exp": 500, "iat": 900}),
            serde_json::json!({"aud": "https://api.test", "scope": "write", "exp": 2_000, "iat": 900, "auth_time": 5_000}),
            serde_json::json!({"aud": "https://other.test", "scope": "write", "exp": 2_000, "iat": 0}),
            serde_json::json!({"aud": "https://api.test", "scope": "write", "exp": 2_000, "iat": 900}),
            serde_json::json!({"aud": "https://api.test", "scope": "read", "exp": 2_000, "iat": 900}),
        ];
        let pr = crate::model::ProtectedResource {
            id: crate::model::Name::new("r"),
            resource_server: crate::model::ResourceServerRef::at(0),
            host: None,
            methods: None,
            paths: vec!["/**".into()],
            auth: crate::model::Auth::Token,
            scopes: crate::model::ScopeSet::new(crate::model::Scope::parse("read")),
            scope_match: crate::model::ScopeMatch::All,
            max_age: Some(60),
            max_token_lifetime: Some(600),
            validity: crate::model::Validity::default(),
            enforce: None,
            source: "t.toml".into(),
        };
        for v in cases {
            let claims = Claims::parse(v.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"));
            let cx = RequestContext {
                now: 1_000,
                leeway: 0,
                resource_server: &rs,
                resource: &pr,
            };
            let named = REQUEST_CHECKS.iter().find_map(|(_, check)| check(&claims, &cx).err());
            assert_eq!(claims.check_request(&cx).err(), named, "{v}");
        }
    }
}
