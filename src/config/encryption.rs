//! Compiling token encryption (seed 001, issue 4): a realm's decryption keys and each
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

/// A resource server's encryption settings and keys.
#[allow(clippy::too_many_arguments)]
pub(super) fn resource_server_encryption(
    e: &mut Entity<'_, '_>,
    raw: &RawResourceServer,
    realm: &Realm,
    realm_doc: Option<&[u8]>,
    realm_kids: &[String],
    realm_issues: bool,
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
    let Some(key_alg) = raw.key_alg.as_deref() else {
        e.err("key_alg", "is required with encryption");
        return (mode, None);
    };
    if let Some(why) = jwe::refused_key_alg(key_alg) {
        e.err("key_alg", format!("{key_alg:?}: {why}"));
        return (mode, None);
    }
    let content_alg = raw.content_alg.as_deref().unwrap_or(defaults::CONTENT_ALG);
    if jwe::content_key_len(content_alg).is_none() {
        e.err(
            "content_alg",
            format!("{content_alg:?}: expected one of {}", jwe::CONTENT_ALGS.join(", ")),
        );
        return (mode, None);
    }
    let (field, doc, own) = match mode {
        Encryption::ResourceServer => {
            if raw.encryption_jwks_file.is_none() {
                e.err(
                    "encryption_jwks_file",
                    "is required with encryption = \"resource_server\"",
                );
                return (mode, None);
            }
            let path = e.resolve(raw.encryption_jwks_file.as_deref().unwrap_or_default());
            match e.read(&path) {
                Ok(d) => ("encryption_jwks_file", d, true),
                Err(why) => {
                    e.err("encryption_jwks_file", format!("cannot read {}: {why}", path.display()));
                    return (mode, None);
                }
            }
        }
        _ => {
            if raw.encryption_jwks_file.is_some() {
                e.err(
                    "encryption_jwks_file",
                    "with encryption = \"realm\" the realm's decryption_keys are used",
                );
            }
            match realm_doc {
                Some(d) => ("encryption", d.to_vec(), false),
                None => {
                    e.err(
                        "encryption",
                        format!("realm {:?} has no decryption_keys", realm.name.as_str()),
                    );
                    return (mode, None);
                }
            }
        }
    };
    let (keys, kids) = match JweKeys::from_jwks(&doc, key_alg, content_alg) {
        Ok(k) => k,
        // Seed 001 only finds out when issuing fails; we refuse at load.
        Err(why) => {
            e.err(if own { field } else { "key_alg" }, why);
            return (mode, None);
        }
    };
    if own {
        // Seed 001 reserves kids for its own keys; we forbid any collision with the realm's.
        for kid in &kids {
            if realm_kids.contains(kid) {
                e.err(
                    "encryption_jwks_file",
                    format!("kid {kid:?} is also a key of realm {:?}", realm.name.as_str()),
                );
            }
        }
    }
    if !keys.can_decrypt() {
        e.err(
            field,
            "holds only public keys: the gateway must decrypt, so it needs the private keys",
        );
        return (mode, None);
    }
    if realm_issues && !keys.can_encrypt() {
        e.err(field, "no key can encrypt for the embedded issuer");
    }
    (mode, Some(Arc::new(keys)))
}
