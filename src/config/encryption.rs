//! Compiling token encryption: a realm's decryption keys and each
//! resource server's `encryption`, `key_alg`, `content_alg` and keys.

use std::sync::Arc;

use super::raw::RawResourceServer;
use super::report::Entity;
use crate::model::{Encryption, Realm, defaults};
use crate::token::jwe::{self, JweKeys};

/// Reads a realm's `decryption_keys` file: a JWKS of private keys. Returns the document and
/// its kids (empty when there is none).
pub(super) fn realm_decryption(e: &mut Entity<'_, '_>, path: Option<&str>) -> (Option<Vec<u8>>, Vec<String>) {
    let Some(p) = path else { return (None, Vec::new()) };
    let path = e.resolve(p);
    let doc = match e.read(&path) {
        Ok(d) => d,
        Err(why) => {
            e.err("decryption_keys", format!("cannot read {}: {why}", path.display()));
            return (None, Vec::new());
        }
    };
    let set = match josekit::jwk::JwkSet::from_bytes(&doc) {
        Ok(s) => s,
        Err(why) => {
            e.err("decryption_keys", format!("{}: not a JWK set: {why}", path.display()));
            return (None, Vec::new());
        }
    };
    let mut kids = Vec::new();
    for (i, k) in set.keys().into_iter().enumerate() {
        if k.parameter("d").is_none() && k.key_type() != "oct" {
            e.err(
                "decryption_keys",
                format!(
                    "{}: key #{i} has no private part; the gateway cannot decrypt with it",
                    path.display()
                ),
            );
        }
        if let Some(kid) = k.key_id() {
            kids.push(kid.to_owned());
        }
    }
    (Some(doc), kids)
}

/// What a resource server's encryption needs of its realm.
pub(super) struct RealmSide<'a> {
    /// The realm.
    pub realm: &'a Realm,
    /// Its `decryption_keys` document, if any.
    pub doc: Option<&'a [u8]>,
    /// Every kid the realm's keys use.
    pub kids: &'a [String],
    /// Whether the realm runs an embedded issuer (which must be able to encrypt).
    pub issues: bool,
}

/// A resource server's encryption settings and keys.
pub(super) fn resource_server_encryption(
    e: &mut Entity<'_, '_>,
    raw: &RawResourceServer,
    realm: &RealmSide<'_>,
) -> (Encryption, Option<Arc<JweKeys>>) {
    let Some(mode) = e.choice::<Encryption>("encryption", &raw.encryption) else {
        return (Encryption::None, None);
    };
    if mode == Encryption::None {
        for (field, set) in [
            ("key_alg", raw.key_alg.is_some()),
            ("content_alg", raw.content_alg.is_some()),
            ("encryption_jwks_file", raw.encryption_jwks_file.is_some()),
        ] {
            if set {
                e.err(field, "applies only with encryption = \"realm\" or \"resource_server\"");
            }
        }
        return (mode, None);
    }
    let keys = algorithms(e, raw)
        .and_then(|(key_alg, content_alg)| keys(e, raw, mode, realm, key_alg, content_alg))
        .map(Arc::new);
    (mode, keys)
}

/// `key_alg` (required, never a refused one) and `content_alg`.
fn algorithms<'r>(e: &mut Entity<'_, '_>, raw: &'r RawResourceServer) -> Option<(&'r str, &'r str)> {
    let Some(key_alg) = raw.key_alg.as_deref() else {
        e.err("key_alg", "is required with encryption");
        return None;
    };
    if let Some(why) = jwe::refused_key_alg(key_alg) {
        e.err("key_alg", format!("{key_alg:?}: {why}"));
        return None;
    }
    let content_alg = raw.content_alg.as_deref().unwrap_or(defaults::CONTENT_ALG);
    if jwe::content_key_len(content_alg).is_none() {
        e.err(
            "content_alg",
            format!("{content_alg:?}: expected one of {}", jwe::CONTENT_ALGS.join(", ")),
        );
        return None;
    }
    Some((key_alg, content_alg))
}

/// The keys tokens are encrypted to: the resource server's own `encryption_jwks_file`, or
/// its realm's `decryption_keys`. Refused at load when no key can do `key_alg`, when the
/// gateway could not decrypt, or when an own kid collides with the realm's.
fn keys(
    e: &mut Entity<'_, '_>,
    raw: &RawResourceServer,
    mode: Encryption,
    realm: &RealmSide<'_>,
    key_alg: &str,
    content_alg: &str,
) -> Option<JweKeys> {
    let (field, doc, own) = key_document(e, raw, mode, realm)?;
    let (keys, kids) = match JweKeys::from_jwks(&doc, key_alg, content_alg) {
        Ok(k) => k,
        // Refused at load, not found out when the first token is issued.
        Err(why) => {
            e.err(if own { field } else { "key_alg" }, why);
            return None;
        }
    };
    if own {
        // A kid of the resource server's may not be one of the realm's: a token's `kid`
        // must name one key.
        for kid in &kids {
            if realm.kids.contains(kid) {
                e.err(
                    "encryption_jwks_file",
                    format!("kid {kid:?} is also a key of realm {:?}", realm.realm.name.as_str()),
                );
            }
        }
    }
    if !keys.can_decrypt() {
        e.err(
            field,
            "holds only public keys: the gateway must decrypt, so it needs the private keys",
        );
        return None;
    }
    if realm.issues && !keys.can_encrypt() {
        e.err(field, "no key can encrypt for the embedded issuer");
    }
    Some(keys)
}

/// The JWKS document the keys come from, the field it is named by, and whether it is the
/// resource server's own.
fn key_document(
    e: &mut Entity<'_, '_>,
    raw: &RawResourceServer,
    mode: Encryption,
    realm: &RealmSide<'_>,
) -> Option<(&'static str, Vec<u8>, bool)> {
    if mode == Encryption::ResourceServer {
        let Some(file) = raw.encryption_jwks_file.as_deref() else {
            e.err(
                "encryption_jwks_file",
                "is required with encryption = \"resource_server\"",
            );
            return None;
        };
        let path = e.resolve(file);
        return match e.read(&path) {
            Ok(d) => Some(("encryption_jwks_file", d, true)),
            Err(why) => {
                e.err("encryption_jwks_file", format!("cannot read {}: {why}", path.display()));
                None
            }
        };
    }
    if raw.encryption_jwks_file.is_some() {
        e.err(
            "encryption_jwks_file",
            "with encryption = \"realm\" the realm's decryption_keys are used",
        );
    }
    match realm.doc {
        Some(d) => Some(("encryption", d.to_vec(), false)),
        None => {
            e.err(
                "encryption",
                format!("realm {:?} has no decryption_keys", realm.realm.name.as_str()),
            );
            None
        }
    }
}
