//! Compact JWS (RFC 7515 § 7.1): split, header checks, signature verification against a
//! realm's keys. The crypto is jsonwebtoken's; the policy around it is ours.
//!
//! NB: never trust `kid` or `alg` from the token to choose *how* to verify beyond looking a
//! key up: the algorithm must be on the realm's allow-list and the key must allow it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::TokenError;
use crate::jwks::{RealmKeys, parse_alg};

/// Most keys tried for a token without `kid`; bounds the work one token can cause.
pub const MAX_KIDLESS_CANDIDATES: usize = 4;

/// The three parts of a compact JWS.
#[derive(Debug, Clone, Copy)]
pub struct Compact<'a> {
    /// `BASE64URL(header) || '.' || BASE64URL(payload)`: what the signature covers.
    pub signing_input: &'a str,
    /// The encoded header.
    pub header: &'a str,
    /// The encoded payload.
    pub payload: &'a str,
    /// The encoded signature.
    pub signature: &'a str,
}

/// Splits a three-part compact serialization.
pub fn split(token: &str) -> Result<Compact<'_>, TokenError> {
    let mut it = token.splitn(3, '.');
    let (Some(header), Some(payload), Some(signature)) = (it.next(), it.next(), it.next()) else {
        return Err(TokenError::Malformed("not three parts"));
    };
    if signature.contains('.') {
        return Err(TokenError::Malformed("not three parts"));
    }
    if header.is_empty() || payload.is_empty() || signature.is_empty() {
        return Err(TokenError::Malformed("empty part"));
    }
    let signing_input = &token[..header.len() + 1 + payload.len()];
    Ok(Compact {
        signing_input,
        header,
        payload,
        signature,
    })
}

/// The JOSE header fields the gateway looks at. Duplicate members are refused by serde.
#[derive(Debug, Deserialize)]
struct RawHeader {
    alg: Option<String>,
    kid: Option<String>,
    typ: Option<String>,
    crit: Option<IgnoredAny>,
    jku: Option<IgnoredAny>,
    jwk: Option<IgnoredAny>,
    x5u: Option<IgnoredAny>,
    x5c: Option<IgnoredAny>,
}

/// A checked JWS header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The algorithm, already on the realm's allow-list.
    pub alg: Algorithm,
    /// The key id, if any.
    pub kid: Option<String>,
    /// The declared type, if any.
    pub typ: Option<String>,
}

/// Decodes base64url without padding (RFC 7515 § 2), refusing padding and stray bits.
pub fn b64(part: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed("bad base64url"))
}

/// Decodes and checks the header against the realm's algorithm list and type rule.
pub fn header(encoded: &str, allowed: &[Algorithm], require_at_jwt: bool) -> Result<Header, TokenError> {
    let raw = checked_header(encoded)?;
    let alg_name = raw.alg.ok_or(TokenError::Malformed("no alg"))?;
    // `none` and HMAC are not in `parse_alg`'s vocabulary at all (RFC 8725 § 3.1, § 2.1).
    let alg = parse_alg(&alg_name)
        .filter(|a| allowed.contains(a))
        .ok_or_else(|| TokenError::AlgorithmRefused(alg_name.chars().take(16).collect()))?;
    check_typ(raw.typ.as_deref(), require_at_jwt)?;
    Ok(Header {
        alg,
        kid: raw.kid,
        typ: raw.typ,
    })
}

/// The header of a client assertion (RFC 7523): the same refusals, but HMAC is allowed
/// when `allowed` lists it (`client_secret_jwt`), and `typ` is not an access-token type.
pub fn assertion_header(encoded: &str, allowed: &[Algorithm]) -> Result<Header, TokenError> {
    let raw = checked_header(encoded)?;
    let alg_name = raw.alg.ok_or(TokenError::Malformed("no alg"))?;
    let alg = allowed
        .iter()
        .copied()
        .find(|a| crate::jwks::alg_name(*a) == alg_name)
        .ok_or_else(|| TokenError::AlgorithmRefused(alg_name.chars().take(16).collect()))?;
    Ok(Header {
        alg,
        kid: raw.kid,
        typ: raw.typ,
    })
}

/// Decodes a header and applies the refusals every JWS gets: no key material or key URLs,
/// no critical extensions.
fn checked_header(encoded: &str) -> Result<RawHeader, TokenError> {
    let bytes = b64(encoded)?;
    // RFC 7515 § 5.2 step 4: the header is UTF-8 JSON. NB: serde_json skips the members
    // `RawHeader` ignores without checking their UTF-8, so the whole text is checked first.
    let text = std::str::from_utf8(&bytes).map_err(|_| TokenError::Malformed("header is not UTF-8"))?;
    let raw: RawHeader =
        serde_json::from_str(text).map_err(|_| TokenError::Malformed("header is not a JOSE header"))?;
    // RFC 8725 § 3.10: key material and key URLs in the header are never used.
    for (present, name) in [
        (raw.jku.is_some(), "jku"),
        (raw.jwk.is_some(), "jwk"),
        (raw.x5u.is_some(), "x5u"),
        (raw.x5c.is_some(), "x5c"),
    ] {
        if present {
            return Err(TokenError::KeyHeaderRefused(name));
        }
    }
    // RFC 7515 § 4.1.11: we understand no extension, so any `crit` fails.
    if raw.crit.is_some() {
        return Err(TokenError::UnknownCritical);
    }
    Ok(raw)
}

/// RFC 8725 § 3.11 explicit typing: accept no `typ`, `JWT` or `at+jwt` (RFC 9068 § 2.1);
/// refuse every other type so that, say, a logout or DPoP JWT is never taken for an access
/// token.
fn check_typ(typ: Option<&str>, require_at_jwt: bool) -> Result<(), TokenError> {
    let is_at_jwt = |t: &str| t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt");
    match typ {
        Some(t) if is_at_jwt(t) => Ok(()),
        Some(t) if !require_at_jwt && (t.eq_ignore_ascii_case("JWT") || t.eq_ignore_ascii_case("application/jwt")) => {
            Ok(())
        }
        None if !require_at_jwt => Ok(()),
        other => Err(TokenError::TypeRefused(other.unwrap_or("").chars().take(32).collect())),
    }
}

/// Verifies the signature with the realm's keys, refetching the remote set once (rate
/// limited) when the `kid` is unknown.
pub async fn verify_signature(compact: &Compact<'_>, header: &Header, keys: &RealmKeys) -> Result<(), TokenError> {
    match try_keys(compact, header, keys) {
        Err(TokenError::UnknownKey) if header.kid.is_some() => {
            if keys.refetch_for_unknown_kid().await {
                try_keys(compact, header, keys)
            } else {
                Err(TokenError::UnknownKey)
            }
        }
        other => other,
    }
}

fn try_keys(compact: &Compact<'_>, header: &Header, keys: &RealmKeys) -> Result<(), TokenError> {
    let view = keys.view();
    if !view.is_usable() {
        return Err(TokenError::NoUsableKeys);
    }
    let signature = b64(compact.signature)?;
    let mut tried = 0;
    for key in view
        .candidates(header.kid.as_deref(), header.alg)
        .take(MAX_KIDLESS_CANDIDATES)
    {
        tried += 1;
        if key.verify(header.alg, compact.signing_input.as_bytes(), &signature) {
            return Ok(());
        }
    }
    if tried == 0 {
        Err(TokenError::UnknownKey)
    } else {
        Err(TokenError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    const ALL: &[Algorithm] = &[Algorithm::ES256, Algorithm::RS256];

    #[test]
    fn refuses_none_hmac_and_unlisted() {
        for alg in ["none", "None", "HS256", "PS256", ""] {
            let h = enc(&format!(r#"{{"alg":"{alg}"}}"#));
            assert!(
                matches!(header(&h, ALL, false), Err(TokenError::AlgorithmRefused(_))),
                "{alg}"
            );
        }
        assert!(header(&enc(r#"{"alg":"ES256"}"#), ALL, false).is_ok());
    }

    #[test]
    fn refuses_key_headers_and_crit() {
        for extra in [r#""jku":"https://evil""#, r#""jwk":{}"#, r#""x5u":"x""#, r#""x5c":[]"#] {
            let h = enc(&format!(r#"{{"alg":"ES256",{extra}}}"#));
            assert!(
                matches!(header(&h, ALL, false), Err(TokenError::KeyHeaderRefused(_))),
                "{extra}"
            );
        }
        let h = enc(r#"{"alg":"ES256","crit":["exp"],"exp":1}"#);
        assert_eq!(header(&h, ALL, false), Err(TokenError::UnknownCritical));
    }

    #[test]
    fn duplicate_members_are_malformed() {
        let h = enc(r#"{"alg":"ES256","alg":"none"}"#);
        assert!(matches!(header(&h, ALL, false), Err(TokenError::Malformed(_))));
    }

    #[test]
    fn a_header_that_is_not_utf8_is_malformed() {
        // Invalid UTF-8 in a member nobody reads: still not a JSON text (RFC 8259 § 8.1).
        let mut json = br#"{"alg":"ES256","x":""#.to_vec();
        json.extend_from_slice(b"\xa1\xff\"}");
        let h = URL_SAFE_NO_PAD.encode(&json);
        assert_eq!(
            header(&h, ALL, false),
            Err(TokenError::Malformed("header is not UTF-8"))
        );
        assert_eq!(
            assertion_header(&h, ALL),
            Err(TokenError::Malformed("header is not UTF-8"))
        );
    }

    #[test]
    fn members_we_ignore_may_hold_any_json() {
        // JSON allows what serde_json's `Value` refuses: a number beyond f64, nesting deeper
        // than 128, a lone surrogate escape. In a member the check ignores, it is taken.
        let deep = format!(r#"{{"alg":"ES256","x":{}1{}}}"#, "[".repeat(200), "]".repeat(200));
        for json in [
            r#"{"alg":"ES256","x":1E2000}"#,
            r#"{"alg":"ES256","x":"\ud800"}"#,
            deep.as_str(),
        ] {
            assert_eq!(
                header(&enc(json), ALL, false).map(|h| h.alg),
                Ok(Algorithm::ES256),
                "{json}"
            );
            assert_eq!(
                assertion_header(&enc(json), ALL).map(|h| h.alg),
                Ok(Algorithm::ES256),
                "{json}"
            );
        }
        // What is not JSON is refused there all the same.
        for json in [
            r#"{"alg":"ES256","x":1E}"#,
            r#"{"alg":"ES256","x":"\uZZ"}"#,
            r#"{"alg":"ES256","x":[}"#,
        ] {
            assert!(
                matches!(header(&enc(json), ALL, false), Err(TokenError::Malformed(_))),
                "{json}"
            );
        }
    }

    #[test]
    fn types() {
        assert!(header(&enc(r#"{"alg":"ES256","typ":"at+jwt"}"#), ALL, true).is_ok());
        assert!(header(&enc(r#"{"alg":"ES256","typ":"JWT"}"#), ALL, false).is_ok());
        assert!(header(&enc(r#"{"alg":"ES256","typ":"JWT"}"#), ALL, true).is_err());
        assert!(header(&enc(r#"{"alg":"ES256","typ":"dpop+jwt"}"#), ALL, false).is_err());
    }

    #[test]
    fn split_shapes() {
        assert!(split("a.b.c").is_ok());
        assert!(split("a.b").is_err());
        assert!(split("a.b.c.d").is_err());
        assert!(split("a..c").is_err());
    }
}
