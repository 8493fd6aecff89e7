//! Compiling `[[realm]]` tables: algorithms, key sources (local, signing, remote), the
//! embedded issuer's path and token defaults.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use http::Uri;
use jsonwebtoken::Algorithm;

use super::compile::CompileContext;
use super::declared::Declared;
use super::jwks::{JwksTuning, read_jwks_file, remote_jwks};
use super::raw::RawRealm;
use super::report::{Ctx, Entity, is_simple_name, label};
use crate::jwks::{KeySet, RealmKeys, SigningKeys, VerifyKey, parse_alg};
use crate::model::{Name, Realm, RealmRef, RemoteJwks, ResourceServerRef, ScopeSource, Table, defaults};
use crate::snapshot::{RealmEntry, ResourceServerEntry};

/// Compiles one `[[realm]]`: its rules, its verification keys (local, signing, remote) and
/// the embedded issuer's path when it has signing keys.
pub(super) fn compile_realm(
    e: &mut Entity<'_, '_>,
    raw: &RawRealm,
    cx: &CompileContext<'_>,
) -> Option<(Realm, Arc<RealmKeys>, Arc<SigningKeys>)> {
    let name = e.required("name", &raw.name);
    if let Some(n) = name
        && !is_simple_name(n)
    {
        e.err("name", "must be printable ASCII without spaces, quotes or backslashes");
    }
    let issuer = e.required("issuer", &raw.issuer);
    let algorithms = algorithms(e, raw);
    let leeway = e.duration("leeway", &raw.leeway, defaults::LEEWAY);
    let max_token_bytes = raw.max_token_bytes.unwrap_or(defaults::MAX_TOKEN_BYTES);
    if !defaults::MAX_TOKEN_BYTES_RANGE.contains(&max_token_bytes) {
        e.err("max_token_bytes", "must be between 256 and 65536");
    }
    let jwks_file = raw.jwks_file.as_deref().map(|p| e.resolve(p));
    let mut local = local_keys(e, jwks_file.as_deref(), &algorithms);
    let signing_file = raw.signing_keys.as_deref().map(|p| e.resolve(p));
    let signing = signing_file
        .as_deref()
        .map(|path| signing_keys(e, path, &algorithms, &mut local))
        .unwrap_or_default();
    let remote = remote(e, raw);
    let introspection = super::introspection::compile(e, raw, cx);
    if jwks_file.is_none() && signing_file.is_none() && raw.jwks_uri.is_none() && raw.introspection_endpoint.is_none() {
        e.err(
            "jwks_file",
            "the realm has no key source: set jwks_file, signing_keys, jwks_uri or introspection_endpoint",
        );
    }
    let access_token_ttl = e.duration("access_token_ttl", &raw.access_token_ttl, defaults::ACCESS_TOKEN_TTL);
    if access_token_ttl.is_zero() {
        e.err("access_token_ttl", "must be positive");
    }
    let scope_source: ScopeSource = e.choice("scope_source", &raw.scope_source).unwrap_or_default();
    let issuer_path = issuer
        .map(|iss| issuer_path(e, iss, !signing.is_empty()))
        .unwrap_or_default();
    if let Some(hash) = &raw.management_token_hash
        && let Err(why) = crate::model::secret::check_phc(hash)
    {
        e.err(
            "management_token_hash",
            format!("{why} (make one with `portcullis hash-secret --generate`)"),
        );
    }
    let name = Name::new(name?);
    let local = KeySet::from_keys(local);
    let keys = reuse_keys(cx, &name, &local, remote.as_ref()).unwrap_or_else(|| {
        Arc::new(RealmKeys::new(
            name.clone(),
            local,
            remote.clone().map(|r| (r, cx.fetcher.clone())),
            cx.clock.clone(),
        ))
    });
    let realm = Realm {
        name,
        issuer: issuer?.to_owned(),
        algorithms,
        leeway: i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX),
        max_token_bytes,
        jwks_file,
        signing_keys_file: signing_file,
        jwks_remote: remote,
        require_at_jwt_typ: raw.require_at_jwt_typ.unwrap_or(false),
        // Filled in once the resource servers are compiled.
        forwarded_claims: Vec::new(),
        access_token_ttl,
        scope_source,
        issuer_path,
        management_token_hash: raw.management_token_hash.as_deref().map(Box::from),
        introspection,
        source: e.file().to_path_buf(),
    };
    Some((realm, keys, Arc::new(signing)))
}

/// The accepted algorithms: required, an explicit allow-list (RFC 8725 § 3.1), never `none`
/// or HMAC.
fn algorithms(e: &mut Entity<'_, '_>, raw: &RawRealm) -> Vec<Algorithm> {
    let mut algorithms = Vec::new();
    let introspection_only = raw.introspection_endpoint.is_some()
        && raw.jwks_file.is_none()
        && raw.signing_keys.is_none()
        && raw.jwks_uri.is_none();
    match &raw.algorithms {
        // A realm that only introspects verifies no signature: it accepts no algorithm.
        None if introspection_only => {}
        None => e.err(
            "algorithms",
            "is required: list the JWS algorithms this realm accepts (RFC 8725 § 3.1)",
        ),
        Some(list) if list.is_empty() => e.err("algorithms", "must list at least one algorithm"),
        Some(list) => {
            for a in list {
                match parse_alg(a) {
                    Some(alg) if !algorithms.contains(&alg) => algorithms.push(alg),
                    Some(_) => {}
                    None => e.err(
                        "algorithms",
                        format!("{a:?} is refused: accepted are RS256/384/512, PS256/384/512, ES256, ES384 and EdDSA (never none or HMAC)"),
                    ),
                }
            }
        }
    }
    algorithms
}

/// The keys of `jwks_file`; each must fit one of the realm's algorithms.
fn local_keys(e: &mut Entity<'_, '_>, jwks_file: Option<&Path>, algorithms: &[Algorithm]) -> Vec<Arc<VerifyKey>> {
    let Some(path) = jwks_file else { return Vec::new() };
    let Some(set) = read_jwks_file(e, path) else {
        return Vec::new();
    };
    for k in set.keys() {
        if !k.algs.iter().any(|a| algorithms.contains(a)) {
            e.err(
                "jwks_file",
                format!(
                    "{}: key {:?} fits none of the realm's algorithms",
                    path.display(),
                    k.kid
                ),
            );
        }
    }
    set.keys().to_vec()
}

/// The private signing keys at `path`; their public halves are added to `local`, since
/// they verify too. A kid may not also be in `jwks_file`.
fn signing_keys(
    e: &mut Entity<'_, '_>,
    path: &Path,
    algorithms: &[Algorithm],
    local: &mut Vec<Arc<VerifyKey>>,
) -> SigningKeys {
    let keys = match e.read(path).map(|bytes| SigningKeys::parse(&bytes)) {
        Ok(Ok(keys)) => keys,
        Ok(Err(why)) => {
            e.err("signing_keys", format!("{}: {why}", path.display()));
            return SigningKeys::default();
        }
        Err(why) => {
            e.err("signing_keys", format!("cannot read {}: {why}", path.display()));
            return SigningKeys::default();
        }
    };
    for k in keys.keys() {
        if !algorithms.contains(&k.alg) {
            e.err(
                "signing_keys",
                format!(
                    "key {:?} has alg {} which `algorithms` does not accept",
                    k.kid,
                    crate::jwks::alg_name(k.alg)
                ),
            );
        }
        if local.iter().any(|l| l.kid.as_deref() == Some(k.kid.as_str())) {
            e.err("signing_keys", format!("kid {:?} is also in jwks_file", k.kid));
        }
    }
    match keys.verification_keys() {
        Ok(v) => local.extend(v),
        Err(why) => e.err("signing_keys", format!("{}: {why}", path.display())),
    }
    keys
}

/// The remote key set (`jwks_uri` and its tuning).
fn remote(e: &mut Entity<'_, '_>, raw: &RawRealm) -> Option<RemoteJwks> {
    let tuning = JwksTuning {
        ttl: &raw.jwks_ttl,
        min_ttl: &raw.jwks_min_ttl,
        max_ttl: &raw.jwks_max_ttl,
        max_stale: &raw.jwks_max_stale,
        refetch_cooldown: &raw.jwks_refetch_cooldown,
        fetch_timeout: &raw.jwks_fetch_timeout,
        max_bytes: raw.jwks_max_bytes,
    };
    if raw.danger_allow_http_jwks.is_some() && raw.jwks_uri.is_none() {
        e.err("danger_allow_http_jwks", "set without jwks_uri");
    }
    raw.jwks_uri
        .as_deref()
        .and_then(|text| remote_jwks(e, text, raw.danger_allow_http_jwks == Some(true), &tuning))
}

/// The embedded issuer serves under its issuer URL's path, so with signing keys the issuer
/// must be an absolute http(s) URL without query or fragment (RFC 8414 § 2). "" otherwise.
fn issuer_path(e: &mut Entity<'_, '_>, issuer: &str, issues: bool) -> String {
    if !issues {
        return String::new();
    }
    match Uri::from_str(issuer) {
        Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() && u.query().is_none() => {
            u.path().trim_end_matches('/').to_owned()
        }
        _ => {
            e.err(
                "issuer",
                "with signing_keys the realm runs an embedded issuer, whose issuer must be an http(s) URL without query",
            );
            String::new()
        }
    }
}

/// The previous snapshot's keys for this realm, when its sources are unchanged: a reload
/// then neither refetches nor invalidates cached tokens.
fn reuse_keys(
    cx: &CompileContext<'_>,
    name: &Name,
    local: &KeySet,
    remote: Option<&RemoteJwks>,
) -> Option<Arc<RealmKeys>> {
    let prev = cx.previous?;
    let (_, entry) = prev.realm(name.as_str())?;
    let keys = &entry.keys;
    (keys.same_sources(remote) && keys.same_local(local)).then(|| keys.clone())
}

/// The compiled realms, with what later phases need of them.
pub(super) struct Realms {
    /// The realms with their keys.
    pub entries: Table<RealmRef, RealmEntry>,
    /// Realms by name.
    pub index: HashMap<String, RealmRef>,
    /// Their decryption keys and the kids they use.
    pub decryption: Table<RealmRef, RealmDecryption>,
}

/// A realm's decryption keys (for resource servers with `encryption = "realm"`) and every
/// kid the realm already uses, which resource-server encryption keys must not reuse.
pub(super) struct RealmDecryption {
    /// The `decryption_keys` JWKS document, if any.
    pub doc: Option<Vec<u8>>,
    /// Every kid of the realm's keys.
    pub kids: Vec<String>,
}

/// The realm named `name` (for an entity's `realm` field), reported when there is none.
pub(super) fn find_realm(e: &mut Entity<'_, '_>, index: &HashMap<String, RealmRef>, name: &str) -> Option<RealmRef> {
    let found = index.get(name).copied();
    if found.is_none() && !e.in_error("realm", name) {
        let hint = super::suggest::did_you_mean(name, index.keys().map(String::as_str));
        e.err("realm", format!("no realm is named {name:?}{hint}"));
    }
    found
}

/// Compiles every `[[realm]]`; names must be unique.
pub(super) fn compile_realms(c: &mut Ctx<'_>, declared: &Declared, cx: &CompileContext<'_>) -> Realms {
    let mut out = Realms {
        entries: Table::default(),
        index: HashMap::new(),
        decryption: Table::default(),
    };
    for d in &declared.realms {
        {
            let (raw, i) = (&d.raw, d.position);
            let label = label("realm", &raw.name, i);
            let mut e = c.entity(&d.origin.file, &d.origin.dir, &label);
            let Some((realm, keys, signing)) = compile_realm(&mut e, raw, cx) else {
                if let Some(name) = &raw.name {
                    c.mark_in_error("realm", name);
                }
                continue;
            };
            // NB: a duplicate is never added, so the first realm of a name keeps it.
            if out.index.contains_key(realm.name.as_str()) {
                e.err("name", "another realm has this name");
                continue;
            }
            let (doc, mut kids) = super::encryption::realm_decryption(&mut e, raw.decryption_keys.as_deref());
            kids.extend(keys.local_kids());
            out.decryption.push(RealmDecryption { doc, kids });
            let name = realm.name.as_str().to_owned();
            let r = out.entries.push(RealmEntry { realm, keys, signing });
            out.index.insert(name, r);
        }
    }
    out
}

/// Gives each realm the sorted list of claims its resource servers forward as headers: what
/// a verified token of the realm keeps beyond the registered claims.
pub(super) fn collect_forwarded_claims(
    realms: &mut Table<RealmRef, RealmEntry>,
    servers: &Table<ResourceServerRef, ResourceServerEntry>,
) {
    for rs in servers {
        if let Some(entry) = realms.get_mut(rs.realm) {
            entry
                .realm
                .forwarded_claims
                .extend(rs.claim_headers.iter().map(|ch| Box::from(ch.claim.as_str())));
        }
    }
    for entry in realms.iter_mut() {
        entry.realm.forwarded_claims.sort_unstable();
        entry.realm.forwarded_claims.dedup();
    }
}
