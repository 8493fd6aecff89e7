//! Key sets a configuration names, shared by realms and `private_key_jwt` clients: local
//! JWKS files and remote `jwks_uri` sources with their refresh tuning.

use std::path::Path;
use std::str::FromStr;

use http::Uri;

use super::report::Entity;
use crate::jwks::KeySet;
use crate::model::{RemoteJwks, defaults};

/// Reads a local `jwks_file` (realms and `private_key_jwt` clients): every skipped key, an
/// empty set, an unreadable or unparsable file is an error on the field `jwks_file`.
pub(super) fn read_jwks_file(e: &mut Entity<'_, '_>, path: &Path) -> Option<KeySet> {
    let bytes = match e.read(path) {
        Ok(b) => b,
        Err(why) => {
            e.err("jwks_file", format!("cannot read {}: {why}", path.display()));
            return None;
        }
    };
    let (set, skipped) = match KeySet::parse(&bytes) {
        Ok(parsed) => parsed,
        Err(why) => {
            e.err("jwks_file", format!("{}: {why}", path.display()));
            return None;
        }
    };
    for s in skipped {
        e.err("jwks_file", format!("{}: {s}", path.display()));
    }
    if set.is_empty() {
        e.err(
            "jwks_file",
            format!("{}: holds no usable signature key", path.display()),
        );
    }
    Some(set)
}

/// The tuning fields of a remote key set, as written (all optional).
pub(super) struct JwksTuning<'a> {
    pub ttl: &'a Option<String>,
    pub min_ttl: &'a Option<String>,
    pub max_ttl: &'a Option<String>,
    pub max_stale: &'a Option<String>,
    pub refetch_cooldown: &'a Option<String>,
    pub fetch_timeout: &'a Option<String>,
    pub max_bytes: Option<usize>,
}

impl JwksTuning<'_> {
    /// Every field at its default.
    pub(super) const DEFAULT: JwksTuning<'static> = JwksTuning {
        ttl: &None,
        min_ttl: &None,
        max_ttl: &None,
        max_stale: &None,
        refetch_cooldown: &None,
        fetch_timeout: &None,
        max_bytes: None,
    };
}

/// An outbound endpoint's URL (`field`): absolute, https, or http when the entity sets its
/// `danger` flag (loopback tests only).
pub(super) fn endpoint_url(
    e: &mut Entity<'_, '_>,
    (field, danger): (&str, &str),
    text: &str,
    allow_http: bool,
) -> Option<Uri> {
    let uri = match Uri::from_str(text) {
        Ok(uri) => uri,
        Err(why) => {
            e.err(field, format!("{text:?} is not a URL: {why}"));
            return None;
        }
    };
    let https = uri.scheme_str() == Some("https");
    let http = uri.scheme_str() == Some("http");
    if uri.host().is_none() || !(https || http) {
        e.err(field, format!("{text:?} is not an absolute http(s) URL"));
        return None;
    }
    if http && !allow_http {
        e.err(
            field,
            format!("must be https (set {danger} = true only for loopback tests)"),
        );
        return None;
    }
    Some(uri)
}

/// A remote key set source: https (or http with the danger flag) plus refresh tuning.
pub(super) fn remote_jwks(
    e: &mut Entity<'_, '_>,
    text: &str,
    allow_http: bool,
    t: &JwksTuning<'_>,
) -> Option<RemoteJwks> {
    let uri = endpoint_url(e, ("jwks_uri", "danger_allow_http_jwks"), text, allow_http)?;
    let ttl = e.duration("jwks_ttl", t.ttl, defaults::JWKS_TTL);
    let min_ttl = e.duration("jwks_min_ttl", t.min_ttl, defaults::JWKS_MIN_TTL);
    let max_ttl = e.duration("jwks_max_ttl", t.max_ttl, defaults::JWKS_MAX_TTL);
    if min_ttl > max_ttl {
        e.err("jwks_min_ttl", "is greater than jwks_max_ttl");
    }
    Some(RemoteJwks {
        uri,
        ttl,
        min_ttl,
        max_ttl,
        max_stale: e.duration("jwks_max_stale", t.max_stale, defaults::JWKS_MAX_STALE),
        refetch_cooldown: e.duration(
            "jwks_refetch_cooldown",
            t.refetch_cooldown,
            defaults::JWKS_REFETCH_COOLDOWN,
        ),
        fetch_timeout: e.duration("jwks_fetch_timeout", t.fetch_timeout, defaults::JWKS_FETCH_TIMEOUT),
        max_bytes: t.max_bytes.unwrap_or(defaults::JWKS_MAX_BYTES),
    })
}
