//! What a refused token says about itself, for the operator's log line: its `kid` and
//! `alg`, and the `iss`, `aud`, `client_id` and `scope` it claims. Read without verifying
//! anything, only after the token was refused, and never used to decide: these are claims,
//! which is how the log line labels them. The token itself is never kept or logged.

use serde::Deserialize;

use super::jws::b64;

/// The parts of a refused token worth logging.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Peek {
    /// The header's `kid`.
    pub kid: Option<String>,
    /// The header's `alg`.
    pub alg: Option<String>,
    /// The claimed `iss`.
    pub iss: Option<String>,
    /// The claimed `aud` entries.
    pub aud: Vec<String>,
    /// The claimed `client_id`.
    pub client_id: Option<String>,
    /// The claimed scopes.
    pub scope: Option<String>,
}

#[derive(Deserialize)]
struct Header {
    kid: Option<String>,
    alg: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Aud {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Payload {
    iss: Option<String>,
    aud: Option<Aud>,
    client_id: Option<String>,
    scope: Option<String>,
}

/// Longest token peeked at: more is refused unread anyway.
const MAX: usize = 16 * 1024;

/// The header of a compact JWS or JWE and, for a JWS, its payload's claims. Fields that are
/// absent or not strings are left out; a token that is not even that yields what it can.
pub fn peek(token: &str) -> Peek {
    let mut out = Peek::default();
    if token.len() > MAX {
        return out;
    }
    let mut parts = token.split('.');
    if let Some(header) = parts.next().and_then(|h| b64(h).ok())
        && let Ok(h) = serde_json::from_slice::<Header>(&header)
    {
        out.kid = h.kid;
        out.alg = h.alg;
    }
    // Three parts: a JWS, whose payload is readable. A JWE's (five) is encrypted.
    let payload = parts.next();
    if parts.clone().count() == 1
        && let Some(payload) = payload.and_then(|p| b64(p).ok())
        && let Ok(p) = serde_json::from_slice::<Payload>(&payload)
    {
        out.iss = p.iss;
        out.aud = match p.aud {
            Some(Aud::One(a)) => vec![a],
            Some(Aud::Many(v)) => v,
            None => Vec::new(),
        };
        out.client_id = p.client_id;
        out.scope = p.scope;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn part(json: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn reads_header_and_claims_of_a_jws_and_only_the_header_of_a_jwe() {
        let jws = format!(
            "{}.{}.sig",
            part(r#"{"alg":"ES256","kid":"k9"}"#),
            part(r#"{"iss":"https://idp","aud":["a","b"],"client_id":"c","scope":"x y","exp":1}"#)
        );
        let p = peek(&jws);
        assert_eq!(p.kid.as_deref(), Some("k9"));
        assert_eq!(p.iss.as_deref(), Some("https://idp"));
        assert_eq!(p.aud, ["a", "b"]);
        assert_eq!(p.scope.as_deref(), Some("x y"));
        let jwe = format!(
            "{}.k.iv.ct.tag",
            part(r#"{"alg":"RSA-OAEP","enc":"A256GCM","kid":"e1"}"#)
        );
        let p = peek(&jwe);
        assert_eq!((p.kid.as_deref(), p.iss), (Some("e1"), None));
        assert_eq!(peek("not a token"), Peek::default());
    }
}
