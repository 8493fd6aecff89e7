//! Compact JWE (RFC 7516) access tokens: the outer layer of a nested JWT (RFC 7519 § 5.2).
//! josekit does the cryptography; the policy around it is ours:
//!
//! - the key-management and content algorithms are exactly the resource server's configured
//!   pair (an allow-list separate from the inner JWS one); `RSA1_5` (RFC 8725 § 3.2) and the
//!   password-based `PBES2-*` are refused at load and never reach a decrypter;
//! - compression (`zip`) and critical extensions are refused;
//! - the key is chosen by `kid`, or without one, every key of the configured algorithm is
//!   tried;
//! - the content must be a nested JWT (`cty` `JWT`, or `at+jwt` as some issuers send);
//! - every failure is the same `invalid_token` to the client; the precise reason is logged.

use std::borrow::Cow;
use std::fmt;

use josekit::jwe::{self, JweDecrypter, JweEncrypter, JweHeader};
use josekit::jwk::Jwk;
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::TokenError;
use super::jws::b64;

/// Key-management algorithms we accept: RSA-OAEP, ECDH-ES and AES key wrap families;
/// never RSA1_5 (padding oracle) or PBES2 (password-derived).
pub const KEY_ALGS: [&str; 8] = [
    "RSA-OAEP",
    "RSA-OAEP-256",
    "ECDH-ES",
    "ECDH-ES+A128KW",
    "ECDH-ES+A256KW",
    "A128KW",
    "A256KW",
    "dir",
];

/// Content-encryption algorithms we accept.
pub const CONTENT_ALGS: [&str; 6] = [
    "A128CBC-HS256",
    "A192CBC-HS384",
    "A256CBC-HS512",
    "A128GCM",
    "A192GCM",
    "A256GCM",
];

/// Most keys tried for a JWE without `kid`.
pub const MAX_KIDLESS_KEYS: usize = 4;

/// The content-encryption key length of `enc`, in bytes (RFC 7518 § 5.1).
pub fn content_key_len(enc: &str) -> Option<usize> {
    Some(match enc {
        "A128CBC-HS256" => 32,
        "A192CBC-HS384" => 48,
        "A256CBC-HS512" => 64,
        "A128GCM" => 16,
        "A192GCM" => 24,
        "A256GCM" => 32,
        _ => return None,
    })
}

/// The initialization vector and authentication tag lengths of `enc`, in bytes
/// (RFC 7518 § 5.2.3 to § 5.2.5: a 128-bit IV and a tag of half the MAC output; § 5.3: a
/// 96-bit IV and a 128-bit tag).
fn iv_and_tag_len(enc: &str) -> Option<(usize, usize)> {
    Some(match enc {
        "A128CBC-HS256" => (16, 16),
        "A192CBC-HS384" => (16, 24),
        "A256CBC-HS512" => (16, 32),
        "A128GCM" | "A192GCM" | "A256GCM" => (12, 16),
        _ => return None,
    })
}

/// Why a key-management algorithm was refused at load.
pub fn refused_key_alg(alg: &str) -> Option<&'static str> {
    if alg == "RSA1_5" {
        Some("RSA1_5 is refused (RFC 8725 § 3.2: padding-oracle attacks)")
    } else if alg.starts_with("PBES2") {
        Some("password-based key management is refused")
    } else if !KEY_ALGS.contains(&alg) {
        Some("not a supported key-management algorithm")
    } else {
        None
    }
}

/// `jwk` if it can serve `key_alg` with `content_alg` (a `dir` key of `key_len` bytes), else
/// why not.
fn suitable<'j>(jwk: &'j Jwk, key_alg: &str, content_alg: &str, key_len: usize) -> Result<Cow<'j, Jwk>, String> {
    // RFC 7520 § 5.6 labels a direct-encryption key with the content algorithm it serves;
    // for `dir` that means the same as "dir" (the only label josekit takes).
    let jwk = if key_alg == "dir" && jwk.algorithm() == Some(content_alg) {
        let mut k = jwk.clone();
        k.set_algorithm("dir");
        Cow::Owned(k)
    } else {
        Cow::Borrowed(jwk)
    };
    if jwk.key_use().is_some_and(|u| u != "enc") {
        return Err("use is not \"enc\"".into());
    }
    if let Some(alg) = jwk.algorithm()
        && alg != key_alg
    {
        return Err(format!("its alg is {alg:?}"));
    }
    if key_alg == "dir"
        && let Some(k) = jwk.key_value()
        && k.len() != key_len
    {
        return Err(format!("a dir key for {content_alg} must be {key_len} bytes"));
    }
    Ok(jwk)
}

/// A decrypter for a private `jwk`, without its kid: `decrypt_content` matches the kid
/// itself, and a decrypter keeping it would make josekit demand it in every header, so a
/// JWE without kid never decrypted.
fn unlabelled_decrypter(key_alg: &str, jwk: &Jwk) -> Result<Box<dyn JweDecrypter>, String> {
    let mut unlabelled = jwk.clone();
    unlabelled.set_parameter("kid", None).map_err(|e| e.to_string())?;
    make_decrypter(key_alg, &unlabelled)
}

fn make_decrypter(alg: &str, jwk: &Jwk) -> Result<Box<dyn JweDecrypter>, String> {
    let e = |e: josekit::JoseError| e.to_string();
    Ok(match alg {
        "RSA-OAEP" => Box::new(jwe::RSA_OAEP.decrypter_from_jwk(jwk).map_err(e)?),
        "RSA-OAEP-256" => Box::new(jwe::RSA_OAEP_256.decrypter_from_jwk(jwk).map_err(e)?),
        "ECDH-ES" => Box::new(jwe::ECDH_ES.decrypter_from_jwk(jwk).map_err(e)?),
        "ECDH-ES+A128KW" => Box::new(jwe::ECDH_ES_A128KW.decrypter_from_jwk(jwk).map_err(e)?),
        "ECDH-ES+A256KW" => Box::new(jwe::ECDH_ES_A256KW.decrypter_from_jwk(jwk).map_err(e)?),
        "A128KW" => Box::new(jwe::A128KW.decrypter_from_jwk(jwk).map_err(e)?),
        "A256KW" => Box::new(jwe::A256KW.decrypter_from_jwk(jwk).map_err(e)?),
        "dir" => Box::new(jwe::Dir.decrypter_from_jwk(jwk).map_err(e)?),
        other => return Err(format!("{other} is not accepted")),
    })
}

fn make_encrypter(alg: &str, jwk: &Jwk) -> Result<Box<dyn JweEncrypter>, String> {
    let e = |e: josekit::JoseError| e.to_string();
    Ok(match alg {
        "RSA-OAEP" => Box::new(jwe::RSA_OAEP.encrypter_from_jwk(jwk).map_err(e)?),
        "RSA-OAEP-256" => Box::new(jwe::RSA_OAEP_256.encrypter_from_jwk(jwk).map_err(e)?),
        "ECDH-ES" => Box::new(jwe::ECDH_ES.encrypter_from_jwk(jwk).map_err(e)?),
        "ECDH-ES+A128KW" => Box::new(jwe::ECDH_ES_A128KW.encrypter_from_jwk(jwk).map_err(e)?),
        "ECDH-ES+A256KW" => Box::new(jwe::ECDH_ES_A256KW.encrypter_from_jwk(jwk).map_err(e)?),
        "A128KW" => Box::new(jwe::A128KW.encrypter_from_jwk(jwk).map_err(e)?),
        "A256KW" => Box::new(jwe::A256KW.encrypter_from_jwk(jwk).map_err(e)?),
        "dir" => Box::new(jwe::Dir.encrypter_from_jwk(jwk).map_err(e)?),
        other => return Err(format!("{other} is not accepted")),
    })
}

/// Whether a JWK holds private (or secret) material.
fn is_private(jwk: &Jwk) -> bool {
    jwk.parameter("d").is_some() || jwk.key_type() == "oct"
}

/// The encryption settings of a resource server: the algorithm pair and the keys.
pub struct JweKeys {
    /// Key-management algorithm (`alg`).
    pub key_alg: String,
    /// Content-encryption algorithm (`enc`).
    pub content_alg: String,
    decrypters: Vec<(Option<String>, Box<dyn JweDecrypter>)>,
    encrypter: Option<(Option<String>, Box<dyn JweEncrypter>)>,
    /// This key set's identity for the token caches, unique in the process (never 0).
    id: u64,
}

/// The identities handed out to key sets so far.
static KEY_SET_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl fmt::Debug for JweKeys {
    // NB: never print key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JweKeys")
            .field("key_alg", &self.key_alg)
            .field("content_alg", &self.content_alg)
            .field(
                "decryption_kids",
                &self.decrypters.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("encryption_kid", &self.encrypter.as_ref().map(|(k, _)| k))
            .finish()
    }
}

impl JweKeys {
    /// Builds the keys of `doc` (a JWKS) for `key_alg`/`content_alg`. Keys that cannot do
    /// `key_alg` are skipped; it is an error when none can. Private keys become decrypters
    /// (and, through their public half, the encrypter); public keys only the encrypter.
    /// `kids` returns every kid seen, for collision checks.
    pub fn from_jwks(doc: &[u8], key_alg: &str, content_alg: &str) -> Result<(Self, Vec<String>), String> {
        if let Some(why) = refused_key_alg(key_alg) {
            return Err(format!("key_alg {key_alg:?}: {why}"));
        }
        let key_len =
            content_key_len(content_alg).ok_or_else(|| format!("content_alg {content_alg:?} is not supported"))?;
        let set = josekit::jwk::JwkSet::from_bytes(doc).map_err(|e| format!("not a JWK set: {e}"))?;
        let mut kids = Vec::new();
        let mut decrypters = Vec::new();
        let mut encrypter = None;
        let mut why_not = Vec::new();
        for (i, jwk) in set.keys().into_iter().enumerate() {
            let kid = jwk.key_id().map(str::to_owned);
            if let Some(k) = &kid {
                kids.push(k.clone());
            }
            let jwk = match suitable(jwk, key_alg, content_alg, key_len) {
                Ok(jwk) => jwk,
                Err(why) => {
                    why_not.push(format!("key #{i}: {why}"));
                    continue;
                }
            };
            if is_private(&jwk) {
                match unlabelled_decrypter(key_alg, &jwk) {
                    Ok(d) => decrypters.push((kid.clone(), d)),
                    Err(e) => {
                        why_not.push(format!("key #{i}: {e}"));
                        continue;
                    }
                }
            }
            if encrypter.is_none() {
                let public = if jwk.key_type() == "oct" {
                    Ok(jwk.clone().into_owned())
                } else {
                    jwk.to_public_key()
                };
                match public
                    .map_err(|e| e.to_string())
                    .and_then(|p| make_encrypter(key_alg, &p))
                {
                    Ok(e) => encrypter = Some((kid.clone(), e)),
                    Err(e) => why_not.push(format!("key #{i}: {e}")),
                }
            }
        }
        if decrypters.is_empty() && encrypter.is_none() {
            return Err(format!("no key can perform {key_alg} ({})", why_not.join("; ")));
        }
        Ok((
            Self {
                key_alg: key_alg.to_owned(),
                content_alg: content_alg.to_owned(),
                decrypters,
                encrypter,
                id: KEY_SET_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
            },
            kids,
        ))
    }

    /// This key set's identity, unique in the process and never 0: a verdict reached
    /// through these keys is cached under it, so no other keys (another resource server's,
    /// a reload's) ever answer from it.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether the gateway can decrypt with these keys.
    pub fn can_decrypt(&self) -> bool {
        !self.decrypters.is_empty()
    }

    /// Whether the issuer can encrypt with these keys.
    pub fn can_encrypt(&self) -> bool {
        self.encrypter.is_some()
    }

    /// Wraps a signed JWT as a compact JWE (`cty: "JWT"`, RFC 7519 § 5.2).
    pub fn encrypt(&self, jws: &str) -> Result<String, String> {
        let (kid, enc) = self.encrypter.as_ref().ok_or("no encryption key")?;
        let mut header = JweHeader::new();
        header.set_content_encryption(&self.content_alg);
        header.set_content_type("JWT");
        if let Some(kid) = kid {
            header.set_key_id(kid);
        }
        jwe::serialize_compact(jws.as_bytes(), &header, enc.as_ref()).map_err(|e| e.to_string())
    }

    /// Decrypts a five-part token and returns the inner compact JWS.
    pub fn decrypt(&self, token: &str) -> Result<String, TokenError> {
        let content = self.decrypt_content(token)?;
        let inner = String::from_utf8(content).map_err(|_| TokenError::Decryption("content is not text"))?;
        // RFC 7519 § 5.2: the content of a nested JWT is itself a JWT; we accept only a
        // signed one (three parts).
        if inner.bytes().filter(|b| *b == b'.').count() != 2 {
            return Err(TokenError::Decryption("content is not a signed JWT"));
        }
        Ok(inner)
    }

    /// Decrypts a five-part token under the same header policy as [`Self::decrypt`] and
    /// returns its content as is, without requiring a nested JWT (e.g. RFC 7520's examples,
    /// whose content is plain text).
    pub fn decrypt_content(&self, token: &str) -> Result<Vec<u8>, TokenError> {
        let header_b64 = token.split('.').next().unwrap_or_default();
        let header = check_header(header_b64, &self.key_alg, &self.content_alg)?;
        check_parts(token, &self.content_alg)?;
        let candidates = self.decrypters.iter().filter(|(kid, _)| match (&header.kid, kid) {
            (Some(want), Some(have)) => want == have,
            (Some(_), None) => false,
            (None, _) => true,
        });
        let mut tried = 0;
        for (_, d) in candidates.take(MAX_KIDLESS_KEYS) {
            tried += 1;
            // NB: the token is attacker input handed to a C-backed library; a panic inside
            // it must cost this request, not the connection task.
            let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                jwe::deserialize_compact(token, d.as_ref())
            }));
            if let Ok(Ok((content, _))) = attempt {
                return Ok(content);
            }
        }
        Err(TokenError::Decryption(if tried == 0 {
            "no key matches"
        } else {
            "decryption failed"
        }))
    }
}

/// RFC 7516 § 5.2 step 1 and RFC 7518 § 5: five parts, and an initialization vector and a
/// tag of exactly the lengths `content_alg` uses. NB: checked before any key is tried, as
/// the openssl crate under josekit panics on a CBC IV shorter than a block.
fn check_parts(token: &str, content_alg: &str) -> Result<(), TokenError> {
    let parts: Vec<&str> = token.split('.').collect();
    let [_, _, iv, _, tag] = parts.as_slice() else {
        return Err(TokenError::Decryption("not five parts"));
    };
    let (iv_len, tag_len) =
        iv_and_tag_len(content_alg).ok_or(TokenError::Decryption("content-encryption algorithm refused"))?;
    if b64(iv).map(|v| v.len()) != Ok(iv_len) {
        return Err(TokenError::Decryption("bad initialization vector"));
    }
    if b64(tag).map(|t| t.len()) != Ok(tag_len) {
        return Err(TokenError::Decryption("bad authentication tag"));
    }
    Ok(())
}

#[derive(Deserialize)]
struct RawJweHeader {
    alg: Option<String>,
    enc: Option<String>,
    kid: Option<String>,
    cty: Option<String>,
    zip: Option<IgnoredAny>,
    crit: Option<IgnoredAny>,
    jku: Option<IgnoredAny>,
    jwk: Option<IgnoredAny>,
    x5u: Option<IgnoredAny>,
    x5c: Option<IgnoredAny>,
}

struct JweHeaderFacts {
    kid: Option<String>,
}

fn check_header(encoded: &str, key_alg: &str, content_alg: &str) -> Result<JweHeaderFacts, TokenError> {
    let bytes = b64(encoded).map_err(|_| TokenError::Decryption("bad header encoding"))?;
    // RFC 7516 § 5.2 step 3: the header is UTF-8 JSON. NB: serde_json skips the members
    // `RawJweHeader` ignores without checking their UTF-8, so the whole text is checked first.
    let text = std::str::from_utf8(&bytes).map_err(|_| TokenError::Decryption("header is not UTF-8"))?;
    let raw: RawJweHeader =
        serde_json::from_str(text).map_err(|_| TokenError::Decryption("header is not a JOSE header"))?;
    if raw.jku.is_some() || raw.jwk.is_some() || raw.x5u.is_some() || raw.x5c.is_some() {
        return Err(TokenError::Decryption("key header parameter"));
    }
    if raw.crit.is_some() {
        return Err(TokenError::Decryption("crit"));
    }
    if raw.zip.is_some() {
        return Err(TokenError::Decryption("compression refused"));
    }
    if raw.alg.as_deref() != Some(key_alg) {
        return Err(TokenError::Decryption("key-management algorithm refused"));
    }
    if raw.enc.as_deref() != Some(content_alg) {
        return Err(TokenError::Decryption("content-encryption algorithm refused"));
    }
    // RFC 7519 § 5.2 says cty "JWT"; real issuers also send at+jwt (RFC 9068) or omit it.
    if let Some(cty) = raw.cty.as_deref()
        && !["JWT", "jwt", "at+jwt", "application/at+jwt", "application/jwt"].contains(&cty)
    {
        return Err(TokenError::Decryption("content type is not a JWT"));
    }
    Ok(JweHeaderFacts { kid: raw.kid })
}

#[cfg(test)]
mod tests {
    use super::*;
    use josekit::jwk::alg::ec::EcCurve;

    fn key_for(alg: &str, content_alg: &str, kid: &str) -> Jwk {
        let mut jwk = match alg {
            "RSA-OAEP" | "RSA-OAEP-256" => Jwk::generate_rsa_key(2048),
            "A128KW" => Jwk::generate_oct_key(16),
            "A256KW" => Jwk::generate_oct_key(32),
            "dir" => Jwk::generate_oct_key(u8::try_from(content_key_len(content_alg).unwrap_or(32)).unwrap_or(32)),
            _ => Jwk::generate_ec_key(EcCurve::P256),
        }
        .unwrap_or_else(|e| panic!("{e}"));
        jwk.set_key_id(kid);
        jwk.set_key_use("enc");
        jwk
    }

    fn doc(keys: &[&Jwk]) -> Vec<u8> {
        let keys: Vec<serde_json::Map<String, serde_json::Value>> = keys.iter().map(|k| (*k).clone().into()).collect();
        serde_json::json!({ "keys": keys }).to_string().into_bytes()
    }

    #[test]
    fn round_trip_every_algorithm() {
        let inner = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
        for alg in KEY_ALGS {
            for enc in CONTENT_ALGS {
                let key = key_for(alg, enc, "k1");
                let (keys, kids) =
                    JweKeys::from_jwks(&doc(&[&key]), alg, enc).unwrap_or_else(|e| panic!("{alg}/{enc}: {e}"));
                assert_eq!(kids, vec!["k1".to_owned()]);
                let token = keys.encrypt(inner).unwrap_or_else(|e| panic!("{alg}/{enc}: {e}"));
                assert_eq!(token.matches('.').count(), 4);
                assert_eq!(keys.decrypt(&token).as_deref(), Ok(inner), "{alg}/{enc}");
            }
        }
    }

    #[test]
    fn refusals() {
        let key = key_for("RSA-OAEP", "A128CBC-HS256", "k1");
        let (keys, _) =
            JweKeys::from_jwks(&doc(&[&key]), "RSA-OAEP", "A128CBC-HS256").unwrap_or_else(|e| panic!("{e}"));
        let token = keys.encrypt("a.b.c").unwrap_or_else(|e| panic!("{e}"));
        // Another enc than configured.
        let (other, _) = JweKeys::from_jwks(&doc(&[&key]), "RSA-OAEP", "A256GCM").unwrap_or_else(|e| panic!("{e}"));
        assert!(other.decrypt(&token).is_err());
        // Tampered tag.
        let mut t = token.clone();
        let last = t.pop().unwrap_or('A');
        t.push(if last == 'A' { 'B' } else { 'A' });
        assert!(keys.decrypt(&t).is_err());
        // Another key.
        let key2 = key_for("RSA-OAEP", "A128CBC-HS256", "k1");
        let (keys2, _) =
            JweKeys::from_jwks(&doc(&[&key2]), "RSA-OAEP", "A128CBC-HS256").unwrap_or_else(|e| panic!("{e}"));
        assert!(keys2.decrypt(&token).is_err());
        // Non-JWS content.
        let t = keys.encrypt("not a jwt").unwrap_or_else(|e| panic!("{e}"));
        assert!(keys.decrypt(&t).is_err());
        // Load-time refusals.
        assert!(JweKeys::from_jwks(&doc(&[&key]), "RSA1_5", "A128CBC-HS256").is_err());
        assert!(JweKeys::from_jwks(&doc(&[&key]), "PBES2-HS256+A128KW", "A128CBC-HS256").is_err());
        assert!(
            JweKeys::from_jwks(&doc(&[&key]), "ECDH-ES", "A128CBC-HS256").is_err(),
            "RSA key cannot do ECDH-ES"
        );
        let public = key.to_public_key().unwrap_or_else(|e| panic!("{e}"));
        let (pub_only, _) =
            JweKeys::from_jwks(&doc(&[&public]), "RSA-OAEP", "A128CBC-HS256").unwrap_or_else(|e| panic!("{e}"));
        assert!(!pub_only.can_decrypt());
        assert!(pub_only.can_encrypt());
    }

    /// `token` with its compact part `i` replaced by the base64url of `bytes`.
    fn with_part(token: &str, i: usize, bytes: &[u8]) -> String {
        use base64::Engine;
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[i] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        parts.join(".")
    }

    #[test]
    fn an_iv_or_tag_of_the_wrong_length_is_refused_before_any_key() {
        // A CBC IV shorter than a block used to panic inside the openssl crate (caught, but
        // a panic per token); every content algorithm gets its exact lengths checked.
        for (alg, enc, iv, tag) in [
            ("ECDH-ES", "A128CBC-HS256", 16, 16),
            ("RSA-OAEP", "A256CBC-HS512", 16, 32),
            ("A128KW", "A128GCM", 12, 16),
        ] {
            let key = key_for(alg, enc, "k1");
            let (keys, _) = JweKeys::from_jwks(&doc(&[&key]), alg, enc).unwrap_or_else(|e| panic!("{e}"));
            let token = keys.encrypt("a.b.c").unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(keys.decrypt(&token).as_deref(), Ok("a.b.c"));
            for len in [0, 6, iv - 1, iv + 1] {
                assert_eq!(
                    keys.decrypt(&with_part(&token, 2, &vec![7; len])),
                    Err(TokenError::Decryption("bad initialization vector")),
                    "{alg}/{enc}: IV of {len} bytes"
                );
            }
            for len in [0, tag - 1, tag + 1] {
                assert_eq!(
                    keys.decrypt(&with_part(&token, 4, &vec![7; len])),
                    Err(TokenError::Decryption("bad authentication tag")),
                    "{alg}/{enc}: tag of {len} bytes"
                );
            }
        }
    }

    #[test]
    fn a_header_that_is_not_utf8_is_refused_before_any_key() {
        use base64::Engine;
        let key = key_for("A128KW", "A128GCM", "k1");
        let (keys, _) = JweKeys::from_jwks(&doc(&[&key]), "A128KW", "A128GCM").unwrap_or_else(|e| panic!("{e}"));
        let mut json = br#"{"alg":"A128KW","enc":"A128GCM","x":""#.to_vec();
        json.extend_from_slice(b"\xa1\"}");
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&json);
        assert_eq!(
            keys.decrypt(&format!("{header}.a.b.c.d")),
            Err(TokenError::Decryption("header is not UTF-8"))
        );
    }
}
