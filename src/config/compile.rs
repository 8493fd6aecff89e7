//! Raw files → [`Snapshot`]. Every rule of PRODUCT.md's validation paragraph that concerns
//! realms, resource servers and protected resources is checked here, and every violation is
//! reported (not just the first), each naming file, entity and field.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, Method, StatusCode, Uri};
use jsonwebtoken::Algorithm;

use super::error::ConfigErrors;
use super::load::LoadedFile;
use super::raw::{RawProtectedResource, RawRealm, RawResourceServer, RawTime};
use crate::jwks::{Fetcher, KeySet, RealmKeys, SigningKeys, parse_alg};
use crate::model::{
    Audience, ClaimHeader, Encryption, IssuerEndpoint, Name, ProtectedResource, Realm, RemoteJwks, ResourceServer,
    ResourceServerCredentials, Scope, ScopeMatch, ScopeSet, ScopeSource, Upstream, Validity,
};
use crate::routing::{InsertError, Route, Router};
use crate::snapshot::{Settings, Snapshot};
use crate::time::SharedClock;

/// What compiling needs besides the files.
#[derive(Clone)]
pub struct CompileContext<'a> {
    /// The clock remote key sets judge freshness with.
    pub clock: SharedClock,
    /// The client remote key sets are fetched with.
    pub fetcher: Fetcher,
    /// The running snapshot, whose realm keys are reused where their sources are unchanged.
    pub previous: Option<&'a Snapshot>,
}

/// Headers a claim may never be passed as: hop-by-hop, framing, routing and forwarding
/// headers the proxy itself owns.
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "connection",
    "content-length",
    "content-type",
    "cookie",
    "forwarded",
    "host",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
];

pub(super) struct Ctx<'e> {
    errors: &'e mut ConfigErrors,
    /// Every file read while compiling goes through [`Ctx::read`], so the running
    /// configuration knows its inputs (watching, byte-identical reloads skipped).
    inputs: &'e mut crate::inputs::Inputs,
}

impl Ctx<'_> {
    /// Reads a file the configuration names.
    pub(super) fn read(&mut self, path: &Path) -> std::io::Result<Vec<u8>> {
        self.inputs.read(path)
    }

    pub(super) fn err(&mut self, file: &Path, entity: &str, field: &str, msg: impl Into<String>) {
        self.errors.push(file, entity, Some(field), msg);
    }

    pub(super) fn required<'v>(
        &mut self,
        file: &Path,
        entity: &str,
        field: &str,
        v: &'v Option<String>,
    ) -> Option<&'v str> {
        match v.as_deref().map(str::trim) {
            Some(s) if !s.is_empty() => Some(s),
            Some(_) => {
                self.err(file, entity, field, "must not be empty");
                None
            }
            None => {
                self.err(file, entity, field, "is required");
                None
            }
        }
    }

    pub(super) fn duration(
        &mut self,
        file: &Path,
        entity: &str,
        field: &str,
        v: &Option<String>,
        default: Duration,
    ) -> Duration {
        match v {
            None => default,
            Some(text) => match super::parse_duration(text) {
                Ok(d) => d,
                Err(e) => {
                    self.err(file, entity, field, e);
                    default
                }
            },
        }
    }

    pub(super) fn seconds(&mut self, file: &Path, entity: &str, field: &str, v: &Option<String>) -> Option<i64> {
        let text = v.as_ref()?;
        match super::parse_duration(text) {
            Ok(d) => Some(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
            Err(e) => {
                self.err(file, entity, field, e);
                None
            }
        }
    }

    pub(super) fn time(&mut self, file: &Path, entity: &str, field: &str, v: &Option<RawTime>) -> Option<i64> {
        let text = match v.as_ref()? {
            RawTime::Text(s) => s.clone(),
            RawTime::Toml(d) => d.to_string(),
        };
        match humantime::parse_rfc3339_weak(&text) {
            Ok(t) => t
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .and_then(|d| i64::try_from(d.as_secs()).ok()),
            Err(e) => {
                self.err(file, entity, field, format!("{text:?} is not an RFC 3339 time: {e}"));
                None
            }
        }
    }

    pub(super) fn validity(
        &mut self,
        file: &Path,
        entity: &str,
        from: &Option<RawTime>,
        off: &Option<RawTime>,
    ) -> Validity {
        let v = Validity {
            valid_from: self.time(file, entity, "valid_from", from),
            disabled_on: self.time(file, entity, "disabled_on", off),
        };
        if let (Some(a), Some(b)) = (v.valid_from, v.disabled_on)
            && b <= a
        {
            self.err(file, entity, "disabled_on", "is not after valid_from");
        }
        v
    }

    pub(super) fn scopes(&mut self, file: &Path, entity: &str, field: &str, v: &Option<Vec<String>>) -> ScopeSet {
        let mut out = Vec::new();
        for s in v.iter().flatten() {
            match Scope::parse(s) {
                Some(sc) => out.push(sc),
                None => self.err(
                    file,
                    entity,
                    field,
                    format!("{s:?} is not a scope token (RFC 6749 § 3.3)"),
                ),
            }
        }
        ScopeSet::new(out)
    }
}

pub(super) fn resolve(dir: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() { p.to_path_buf() } else { dir.join(p) }
}

pub(super) fn label(kind: &str, id: &Option<String>, index: usize) -> String {
    match id.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(id) => format!("{kind} {id:?}"),
        None => format!("{kind} #{}", index + 1),
    }
}

/// RFC 6749 § A.1 / seed 003: a client id is printable ASCII 0x21–0x7E (no space).
pub(super) fn is_client_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// A name usable in `WWW-Authenticate: Bearer realm="…"` and in logs.
pub(super) fn is_simple_name(s: &str) -> bool {
    s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\')
}

/// Compiles loaded files into a snapshot.
///
/// Every file read on the way is recorded in `inputs`.
pub fn compile(
    files: &[LoadedFile],
    cx: &CompileContext<'_>,
    inputs: &mut crate::inputs::Inputs,
) -> Result<Snapshot, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let mut c = Ctx {
        errors: &mut errors,
        inputs,
    };

    let settings = compile_settings(&mut c, files);
    let tls = super::tls::compile(&mut c, files, cx);

    // Realms.
    let mut realms = Vec::new();
    let mut realm_keys = Vec::new();
    let mut signing_keys = Vec::new();
    let mut realm_index: HashMap<String, usize> = HashMap::new();
    // Realm decryption keys (for resource servers with encryption = "realm"), and every kid
    // a realm already uses, which resource-server encryption keys must not reuse.
    let mut realm_dec_docs: Vec<Option<Vec<u8>>> = Vec::new();
    let mut realm_kids: Vec<Vec<String>> = Vec::new();
    for f in files {
        for (i, raw) in f.raw.realm.iter().enumerate() {
            let entity = label("realm", &raw.name, i);
            if let Some((realm, keys, signing)) = compile_realm(&mut c, f, &entity, raw, cx) {
                // NB: check before inserting, so the first realm's index is kept (the
                // duplicate is never pushed, and an index past the end would panic later).
                if realm_index.contains_key(realm.name.as_str()) {
                    c.err(&f.path, &entity, "name", "another realm has this name");
                    continue;
                }
                realm_index.insert(realm.name.as_str().to_owned(), realms.len());
                let (doc, mut kids) =
                    super::encryption::realm_decryption(&mut c, f, &entity, raw.decryption_keys.as_deref());
                kids.extend(keys.local_kids());
                realm_dec_docs.push(doc);
                realm_kids.push(kids);
                realms.push(realm);
                realm_keys.push(keys);
                signing_keys.push(signing);
            }
        }
    }

    // Resource servers.
    let mut resource_servers: Vec<ResourceServer> = Vec::new();
    let mut rs_jwe = Vec::new();
    let mut rs_index: HashMap<String, usize> = HashMap::new();
    for f in files {
        for (i, raw) in f.raw.resource_server.iter().enumerate() {
            let entity = label("resource_server", &raw.id, i);
            let Some(mut rs) = compile_resource_server(&mut c, f, &entity, raw, &realm_index, &realms, &signing_keys)
            else {
                continue;
            };
            let (encryption, jwe) = super::encryption::resource_server_encryption(
                &mut c,
                f,
                &entity,
                raw,
                &realms[rs.realm],
                realm_dec_docs.get(rs.realm).and_then(Option::as_deref),
                realm_kids.get(rs.realm).map_or(&[][..], Vec::as_slice),
                !signing_keys[rs.realm].is_empty(),
            );
            rs.encryption = encryption;
            // NB: as for realms, keep the first server's index.
            if rs_index.contains_key(rs.id.as_str()) {
                c.err(&f.path, &entity, "id", "another resource server has this id");
                continue;
            }
            rs_index.insert(rs.id.as_str().to_owned(), resource_servers.len());
            if rs.default
                && let Some(other) = resource_servers.iter().find(|o| o.default && o.realm == rs.realm)
            {
                c.err(
                    &f.path,
                    &entity,
                    "default",
                    format!(
                        "realm {:?} already has a default resource server ({:?})",
                        realms[rs.realm].name.as_str(),
                        other.id.as_str()
                    ),
                );
            }
            resource_servers.push(rs);
            rs_jwe.push(jwe);
        }
    }
    for rs in &resource_servers {
        if let Some(realm) = realms.get_mut(rs.realm) {
            realm
                .forwarded_claims
                .extend(rs.claim_headers.iter().map(|ch| Box::from(ch.claim.as_str())));
        }
    }
    for realm in &mut realms {
        realm.forwarded_claims.sort_unstable();
        realm.forwarded_claims.dedup();
    }

    // Clients of the embedded issuers.
    let signing_present: Vec<bool> = signing_keys.iter().map(|s| !s.is_empty()).collect();
    let (clients, client_keys) = super::client::compile_clients(
        &mut c,
        files,
        cx,
        &realm_index,
        &realms,
        &signing_present,
        &resource_servers,
    );

    // Embedded issuer endpoints, by exact path.
    let mut issuer_routes: HashMap<String, (usize, IssuerEndpoint)> = HashMap::new();
    for (ri, realm) in realms.iter().enumerate() {
        if !signing_present[ri] {
            continue;
        }
        let p = &realm.issuer_path;
        let mut paths: Vec<(String, IssuerEndpoint)> = [
            IssuerEndpoint::Jwks,
            IssuerEndpoint::Token,
            IssuerEndpoint::Introspect,
            IssuerEndpoint::Revoke,
            IssuerEndpoint::Metadata,
        ]
        .iter()
        .map(|e| (format!("{p}{}", e.suffix()), *e))
        .collect();
        // RFC 8414 § 3.1: the well-known segment goes between host and path.
        paths.push((
            format!("/.well-known/oauth-authorization-server{p}"),
            IssuerEndpoint::Metadata,
        ));
        for (path, ep) in paths {
            if let Some((other, _)) = issuer_routes.insert(path.clone(), (ri, ep))
                && other != ri
            {
                c.err(
                    &realm.source,
                    &format!("realm {:?}", realm.name.as_str()),
                    "issuer",
                    format!(
                        "its endpoint {path} collides with realm {:?}'s",
                        realms[other].name.as_str()
                    ),
                );
            }
        }
    }

    // Protected resources and their routes.
    let mut resources: Vec<ProtectedResource> = Vec::new();
    let mut router = Router::new();
    let mut seen_ids = HashSet::new();
    for f in files {
        for (i, raw) in f.raw.protected_resource.iter().enumerate() {
            let entity = label("protected_resource", &raw.id, i);
            let Some(pr) = compile_resource(&mut c, f, &entity, raw, &rs_index, &resource_servers) else {
                continue;
            };
            if !seen_ids.insert(pr.id.as_str().to_owned()) {
                c.err(&f.path, &entity, "id", "another protected resource has this id");
                continue;
            }
            let index = resources.len();
            for pattern in &pr.paths {
                let route = Route {
                    resource: index,
                    host: pr.host.as_deref(),
                    methods: pr.methods.as_deref(),
                    pattern,
                };
                match router.insert(route) {
                    Ok(()) => {}
                    Err(InsertError::Pattern(e)) => c.err(&f.path, &entity, "paths", format!("{pattern:?}: {e}")),
                    Err(InsertError::Overlap(o)) => {
                        let other = &resources[o.first];
                        c.err(
                            &f.path,
                            &entity,
                            "paths",
                            format!(
                                "{pattern:?} matches the same requests as protected_resource {:?} ({}); make one more specific (host, methods or path)",
                                other.id.as_str(),
                                other.source.display()
                            ),
                        );
                    }
                }
            }
            resources.push(pr);
        }
    }

    if realms.is_empty() && errors_empty(&c) {
        let file = files.first().map_or_else(PathBuf::new, |f| f.path.clone());
        c.errors.push(&file, "configuration", None, "defines no realm");
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Snapshot {
        settings,
        realms,
        realm_keys,
        signing_keys,
        resource_servers,
        resources,
        router,
        rs_jwe,
        clients,
        client_keys,
        issuer_routes,
        sources: files.iter().map(|f| f.path.clone()).collect(),
        inputs: crate::inputs::Inputs::default(),
        listener_tls: tls.listener,
        upstream_ca: tls.upstream_ca,
    })
}

fn errors_empty(c: &Ctx<'_>) -> bool {
    c.errors.is_empty()
}

fn compile_settings(c: &mut Ctx<'_>, files: &[LoadedFile]) -> Settings {
    let mut settings = Settings::default();
    let mut seen: Option<&Path> = None;
    for f in files {
        let Some(raw) = &f.raw.server else { continue };
        if let Some(first) = seen {
            c.err(
                &f.path,
                "server",
                "server",
                format!("[server] is already defined in {}", first.display()),
            );
            continue;
        }
        seen = Some(&f.path);
        if let Some(listen) = &raw.listen {
            match SocketAddr::from_str(listen) {
                Ok(a) => settings.listen = a,
                Err(e) => c.err(
                    &f.path,
                    "server",
                    "listen",
                    format!("{listen:?} is not an address like 127.0.0.1:8080: {e}"),
                ),
            }
        }
        if let Some(admin) = &raw.admin_listen {
            match SocketAddr::from_str(admin) {
                Ok(a) => settings.admin_listen = Some(a),
                Err(e) => c.err(
                    &f.path,
                    "server",
                    "admin_listen",
                    format!("{admin:?} is not an address: {e}"),
                ),
            }
        }
        if let Some(code) = raw.unmatched_status {
            match StatusCode::from_u16(code) {
                Ok(s) if s.is_client_error() || s.is_server_error() => settings.unmatched_status = s,
                _ => c.err(
                    &f.path,
                    "server",
                    "unmatched_status",
                    format!("{code} is not a 4xx or 5xx status"),
                ),
            }
        }
        if raw.token_cache == Some(false) {
            settings.token_cache_capacity = 0;
        } else if let Some(cap) = raw.token_cache_capacity {
            settings.token_cache_capacity = cap;
        }
        settings.header_read_timeout = c.duration(
            &f.path,
            "server",
            "header_read_timeout",
            &raw.header_read_timeout,
            settings.header_read_timeout,
        );
        super::limits::server(c, &f.path, raw, &mut settings);
        settings.upstream_connect_timeout = c.duration(
            &f.path,
            "server",
            "upstream_connect_timeout",
            &raw.upstream_connect_timeout,
            settings.upstream_connect_timeout,
        );
    }
    settings
}

fn compile_realm(
    c: &mut Ctx<'_>,
    f: &LoadedFile,
    entity: &str,
    raw: &RawRealm,
    cx: &CompileContext<'_>,
) -> Option<(Realm, Arc<RealmKeys>, Arc<SigningKeys>)> {
    let file = &f.path;
    let name = c.required(file, entity, "name", &raw.name);
    if let Some(n) = name
        && !is_simple_name(n)
    {
        c.err(
            file,
            entity,
            "name",
            "must be printable ASCII without spaces, quotes or backslashes",
        );
    }
    let issuer = c.required(file, entity, "issuer", &raw.issuer);
    let mut algorithms = Vec::new();
    match &raw.algorithms {
        None => c.err(
            file,
            entity,
            "algorithms",
            "is required: list the JWS algorithms this realm accepts (RFC 8725 § 3.1)",
        ),
        Some(list) if list.is_empty() => c.err(file, entity, "algorithms", "must list at least one algorithm"),
        Some(list) => {
            for a in list {
                match parse_alg(a) {
                    Some(alg) if !algorithms.contains(&alg) => algorithms.push(alg),
                    Some(_) => {}
                    None => c.err(
                        file,
                        entity,
                        "algorithms",
                        format!("{a:?} is refused: accepted are RS256/384/512, PS256/384/512, ES256, ES384 and EdDSA (never none or HMAC)"),
                    ),
                }
            }
        }
    }
    let leeway = c.duration(file, entity, "leeway", &raw.leeway, Duration::from_secs(60));
    let max_token_bytes = raw.max_token_bytes.unwrap_or(8 * 1024);
    if !(256..=64 * 1024).contains(&max_token_bytes) {
        c.err(file, entity, "max_token_bytes", "must be between 256 and 65536");
    }

    // Local verification keys.
    let mut local = Vec::new();
    let jwks_file = raw.jwks_file.as_deref().map(|p| resolve(&f.dir, p));
    if let Some(path) = &jwks_file
        && let Some(set) = read_jwks_file(c, file, entity, path)
    {
        for k in set.keys() {
            if !k.algs.iter().any(|a| algorithms.contains(a)) {
                c.err(
                    file,
                    entity,
                    "jwks_file",
                    format!(
                        "{}: key {:?} fits none of the realm's algorithms",
                        path.display(),
                        k.kid
                    ),
                );
            }
        }
        local.extend(set.keys().iter().cloned());
    }

    // Signing keys (their public halves verify too).
    let signing_file = raw.signing_keys.as_deref().map(|p| resolve(&f.dir, p));
    let mut signing = SigningKeys::default();
    if let Some(path) = &signing_file {
        match c.read(path) {
            Ok(bytes) => match SigningKeys::parse(&bytes) {
                Ok(keys) => {
                    for k in keys.keys() {
                        if !algorithms.contains(&k.alg) {
                            c.err(
                                file,
                                entity,
                                "signing_keys",
                                format!(
                                    "key {:?} has alg {} which `algorithms` does not accept",
                                    k.kid,
                                    crate::jwks::alg_name(k.alg)
                                ),
                            );
                        }
                        if local.iter().any(|l| l.kid.as_deref() == Some(k.kid.as_str())) {
                            c.err(
                                file,
                                entity,
                                "signing_keys",
                                format!("kid {:?} is also in jwks_file", k.kid),
                            );
                        }
                    }
                    match keys.verification_keys() {
                        Ok(v) => local.extend(v),
                        Err(e) => c.err(file, entity, "signing_keys", format!("{}: {e}", path.display())),
                    }
                    signing = keys;
                }
                Err(e) => c.err(file, entity, "signing_keys", format!("{}: {e}", path.display())),
            },
            Err(e) => c.err(
                file,
                entity,
                "signing_keys",
                format!("cannot read {}: {e}", path.display()),
            ),
        }
    }

    // Remote key set.
    let tuning = JwksTuning {
        ttl: &raw.jwks_ttl,
        min_ttl: &raw.jwks_min_ttl,
        max_ttl: &raw.jwks_max_ttl,
        max_stale: &raw.jwks_max_stale,
        refetch_cooldown: &raw.jwks_refetch_cooldown,
        fetch_timeout: &raw.jwks_fetch_timeout,
        max_bytes: raw.jwks_max_bytes,
    };
    let remote = raw
        .jwks_uri
        .as_deref()
        .and_then(|text| remote_jwks(c, file, entity, text, raw.danger_allow_http_jwks == Some(true), &tuning));
    if raw.danger_allow_http_jwks.is_some() && raw.jwks_uri.is_none() {
        c.err(file, entity, "danger_allow_http_jwks", "set without jwks_uri");
    }
    if jwks_file.is_none() && signing_file.is_none() && raw.jwks_uri.is_none() {
        c.err(
            file,
            entity,
            "jwks_file",
            "the realm has no key source: set jwks_file, signing_keys or jwks_uri",
        );
    }

    let access_token_ttl = c.duration(
        file,
        entity,
        "access_token_ttl",
        &raw.access_token_ttl,
        Duration::from_secs(3600),
    );
    if access_token_ttl.is_zero() {
        c.err(file, entity, "access_token_ttl", "must be positive");
    }
    let scope_source = match raw.scope_source.as_deref() {
        None | Some("target") => ScopeSource::Target,
        Some("any_resource_server") => ScopeSource::AnyResourceServer,
        Some(other) => {
            c.err(
                file,
                entity,
                "scope_source",
                format!("{other:?}: expected \"target\" or \"any_resource_server\""),
            );
            ScopeSource::Target
        }
    };
    // The embedded issuer serves under its issuer URL's path, so with signing keys the
    // issuer must be an absolute http(s) URL without query or fragment (RFC 8414 § 2).
    let mut issuer_path = String::new();
    if let (Some(iss), false) = (issuer, signing.is_empty()) {
        match Uri::from_str(iss) {
            Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() && u.query().is_none() => {
                issuer_path = u.path().trim_end_matches('/').to_owned();
            }
            _ => c.err(
                file,
                entity,
                "issuer",
                "with signing_keys the realm runs an embedded issuer, whose issuer must be an http(s) URL without query",
            ),
        }
    }
    let (name, issuer) = (name?, issuer?);
    let name = Name::new(name);
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
        issuer: issuer.to_owned(),
        algorithms,
        leeway: i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX),
        max_token_bytes,
        jwks_file,
        signing_keys_file: signing_file,
        jwks_remote: remote,
        require_at_jwt_typ: raw.require_at_jwt_typ.unwrap_or(false),
        // Filled in once the resource servers are compiled.
        forwarded_claims: Vec::new(),
        cache_epoch: 0,
        access_token_ttl,
        scope_source,
        issuer_path,
        source: file.clone(),
    };
    Some((realm, keys, Arc::new(signing)))
}

/// Reads a local `jwks_file` (realms and `private_key_jwt` clients): every skipped key, an
/// empty set, an unreadable or unparsable file is an error on the field `jwks_file`.
pub(super) fn read_jwks_file(c: &mut Ctx<'_>, file: &Path, entity: &str, path: &Path) -> Option<KeySet> {
    let bytes = match c.read(path) {
        Ok(b) => b,
        Err(e) => {
            c.err(
                file,
                entity,
                "jwks_file",
                format!("cannot read {}: {e}", path.display()),
            );
            return None;
        }
    };
    let (set, skipped) = match KeySet::parse(&bytes) {
        Ok(parsed) => parsed,
        Err(e) => {
            c.err(file, entity, "jwks_file", format!("{}: {e}", path.display()));
            return None;
        }
    };
    for s in skipped {
        c.err(file, entity, "jwks_file", format!("{}: {s}", path.display()));
    }
    if set.is_empty() {
        c.err(
            file,
            entity,
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
    pub const DEFAULT: JwksTuning<'static> = JwksTuning {
        ttl: &None,
        min_ttl: &None,
        max_ttl: &None,
        max_stale: &None,
        refetch_cooldown: &None,
        fetch_timeout: &None,
        max_bytes: None,
    };
}

/// A remote key set source: https (or http with the danger flag) plus refresh tuning.
pub(super) fn remote_jwks(
    c: &mut Ctx<'_>,
    file: &Path,
    entity: &str,
    text: &str,
    allow_http: bool,
    t: &JwksTuning<'_>,
) -> Option<RemoteJwks> {
    let uri = match Uri::from_str(text) {
        Ok(uri) => uri,
        Err(e) => {
            c.err(file, entity, "jwks_uri", format!("{text:?} is not a URL: {e}"));
            return None;
        }
    };
    let https = uri.scheme_str() == Some("https");
    let http = uri.scheme_str() == Some("http");
    if uri.host().is_none() || !(https || http) {
        c.err(
            file,
            entity,
            "jwks_uri",
            format!("{text:?} is not an absolute http(s) URL"),
        );
        return None;
    }
    if http && !allow_http {
        c.err(
            file,
            entity,
            "jwks_uri",
            "must be https (set danger_allow_http_jwks = true only for loopback tests)",
        );
        return None;
    }
    let ttl = c.duration(file, entity, "jwks_ttl", t.ttl, Duration::from_secs(300));
    let min_ttl = c.duration(file, entity, "jwks_min_ttl", t.min_ttl, Duration::from_secs(60));
    let max_ttl = c.duration(file, entity, "jwks_max_ttl", t.max_ttl, Duration::from_secs(86_400));
    if min_ttl > max_ttl {
        c.err(file, entity, "jwks_min_ttl", "is greater than jwks_max_ttl");
    }
    Some(RemoteJwks {
        uri,
        ttl,
        min_ttl,
        max_ttl,
        max_stale: c.duration(file, entity, "jwks_max_stale", t.max_stale, Duration::from_secs(3600)),
        refetch_cooldown: c.duration(
            file,
            entity,
            "jwks_refetch_cooldown",
            t.refetch_cooldown,
            Duration::from_secs(30),
        ),
        fetch_timeout: c.duration(
            file,
            entity,
            "jwks_fetch_timeout",
            t.fetch_timeout,
            Duration::from_secs(5),
        ),
        max_bytes: t.max_bytes.unwrap_or(256 * 1024),
    })
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
    let (i, _) = prev.realm(name.as_str())?;
    let keys = prev.realm_keys.get(i)?;
    (keys.same_sources(remote) && keys.same_local(local)).then(|| keys.clone())
}

fn compile_resource_server(
    c: &mut Ctx<'_>,
    f: &LoadedFile,
    entity: &str,
    raw: &RawResourceServer,
    realm_index: &HashMap<String, usize>,
    realms: &[Realm],
    signing: &[Arc<SigningKeys>],
) -> Option<ResourceServer> {
    let file = &f.path;
    let id = c.required(file, entity, "id", &raw.id);
    if let Some(id) = id
        && !is_simple_name(id)
    {
        c.err(
            file,
            entity,
            "id",
            "must be printable ASCII without spaces, quotes or backslashes",
        );
    }
    let realm = c.required(file, entity, "realm", &raw.realm).and_then(|r| {
        let found = realm_index.get(r).copied();
        if found.is_none() {
            c.err(file, entity, "realm", format!("no realm is named {r:?}"));
        }
        found
    });
    let audience = c.required(file, entity, "audience", &raw.audience).map(Audience::new);
    let upstream = c
        .required(file, entity, "upstream", &raw.upstream)
        .and_then(|u| match parse_upstream(u) {
            Ok(up) => Some(up),
            Err(e) => {
                c.err(file, entity, "upstream", e);
                None
            }
        });
    let scopes = c.scopes(file, entity, "scopes", &raw.scopes);
    let default_scopes = c.scopes(file, entity, "default_scopes", &raw.default_scopes);
    for s in default_scopes.iter() {
        if !scopes.contains(s.as_str()) {
            c.err(
                file,
                entity,
                "default_scopes",
                format!("{s:?} is not one of the resource server's scopes"),
            );
        }
    }
    let realm_ttl = realm.map_or(Duration::from_secs(3600), |ri| realms[ri].access_token_ttl);
    let access_token_ttl = c.duration(file, entity, "access_token_ttl", &raw.access_token_ttl, realm_ttl);
    if access_token_ttl.is_zero() {
        c.err(file, entity, "access_token_ttl", "must be positive");
    }
    let signing_alg = raw.signing_alg.as_deref().and_then(|a| {
        let alg = parse_alg(a);
        if alg.is_none() {
            c.err(
                file,
                entity,
                "signing_alg",
                format!("{a:?} is not an asymmetric JWS algorithm"),
            );
        }
        alg
    });
    if let (Some(alg), Some(ri)) = (signing_alg, realm) {
        check_signing_alg(c, file, entity, alg, &realms[ri], &signing[ri]);
    }
    let mut claim_headers = Vec::new();
    let mut used = HashSet::new();
    for (claim, header) in raw.claim_headers.iter().flatten() {
        match HeaderName::from_str(header) {
            Ok(h) if RESERVED_HEADERS.contains(&h.as_str()) => c.err(
                file,
                entity,
                "claim_headers",
                format!("{header:?} is a header the proxy owns"),
            ),
            Ok(h) => {
                if !used.insert(h.clone()) {
                    c.err(
                        file,
                        entity,
                        "claim_headers",
                        format!("{header:?} is used for two claims"),
                    );
                }
                claim_headers.push(ClaimHeader {
                    claim: claim.clone(),
                    header: h,
                });
            }
            Err(_) => c.err(
                file,
                entity,
                "claim_headers",
                format!("{header:?} is not a header name"),
            ),
        }
    }
    let response_timeout = c.duration(
        file,
        entity,
        "response_timeout",
        &raw.response_timeout,
        Duration::from_secs(30),
    );
    let max_body_bytes = super::limits::body(c, file, entity, raw.max_body_bytes);
    let validity = c.validity(file, entity, &raw.valid_from, &raw.disabled_on);
    let credentials = match (&raw.client_secret_hash, &raw.client_id) {
        (Some(hash), client_id) => {
            if let Err(e) = crate::issuer::check_phc(hash) {
                c.err(
                    file,
                    entity,
                    "client_secret_hash",
                    format!("{e} (make one with `portcullis hash-secret`)"),
                );
            }
            let client_id = client_id.clone().or_else(|| id.map(str::to_owned)).unwrap_or_default();
            if !is_client_id(&client_id) {
                c.err(file, entity, "client_id", "must be printable ASCII (0x21-0x7E)");
            }
            Some(ResourceServerCredentials {
                client_id,
                secret_hash: hash.clone(),
            })
        }
        (None, Some(_)) => {
            c.err(file, entity, "client_secret_hash", "is required with client_id");
            None
        }
        (None, None) => None,
    };
    let id = id?;
    Some(ResourceServer {
        id: Name::new(id),
        name: raw.name.clone().unwrap_or_else(|| id.to_owned()),
        realm: realm?,
        audience: audience?,
        upstream: upstream?,
        scopes,
        default_scopes,
        access_token_ttl,
        signing_alg,
        default: raw.default.unwrap_or(false),
        claim_headers,
        keep_authorization: raw.keep_authorization.unwrap_or(true),
        credentials,
        encryption: Encryption::None,
        response_timeout,
        max_body_bytes,
        validity,
        contacts: raw.contacts.clone().unwrap_or_default(),
        metadata: raw.metadata.clone().unwrap_or_default(),
        source: file.clone(),
    })
}

fn check_signing_alg(c: &mut Ctx<'_>, file: &Path, entity: &str, alg: Algorithm, realm: &Realm, signing: &SigningKeys) {
    let name = crate::jwks::alg_name(alg);
    if !realm.algorithms.contains(&alg) {
        c.err(
            file,
            entity,
            "signing_alg",
            format!("realm {:?} does not accept {name}", realm.name.as_str()),
        );
    } else if signing.active(alg).is_none() {
        c.err(
            file,
            entity,
            "signing_alg",
            format!("realm {:?} has no signing key with alg {name}", realm.name.as_str()),
        );
    }
}

fn parse_upstream(text: &str) -> Result<Upstream, String> {
    let uri = Uri::from_str(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    let scheme = uri.scheme().cloned().ok_or_else(|| format!("{text:?} has no scheme"))?;
    if scheme != http::uri::Scheme::HTTP && scheme != http::uri::Scheme::HTTPS {
        return Err(format!("{text:?}: the scheme must be http or https"));
    }
    let authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| format!("{text:?} has no host"))?;
    if uri.query().is_some() {
        return Err(format!("{text:?}: an upstream URL takes no query"));
    }
    let base_path = uri.path().trim_end_matches('/').to_owned();
    Ok(Upstream {
        scheme,
        authority,
        base_path,
    })
}

fn compile_resource(
    c: &mut Ctx<'_>,
    f: &LoadedFile,
    entity: &str,
    raw: &RawProtectedResource,
    rs_index: &HashMap<String, usize>,
    servers: &[ResourceServer],
) -> Option<ProtectedResource> {
    let file = &f.path;
    let id = c.required(file, entity, "id", &raw.id);
    let rs = c
        .required(file, entity, "resource_server", &raw.resource_server)
        .and_then(|r| {
            let found = rs_index.get(r).copied();
            if found.is_none() {
                c.err(
                    file,
                    entity,
                    "resource_server",
                    format!("no resource server has id {r:?}"),
                );
            }
            found
        });
    let host = raw.host.as_ref().and_then(|h| {
        let h = h.trim().to_ascii_lowercase();
        let ok =
            !h.is_empty() && !h.contains(':') && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !ok {
            c.err(
                file,
                entity,
                "host",
                format!("{h:?} is not a host name (no port, no scheme)"),
            );
        }
        ok.then_some(h)
    });
    let methods = raw.methods.as_ref().map(|ms| {
        let mut out = Vec::new();
        if ms.is_empty() {
            c.err(
                file,
                entity,
                "methods",
                "must list at least one method, or be left out for any method",
            );
        }
        for m in ms {
            match Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
                Ok(m) if !out.contains(&m) => out.push(m),
                Ok(_) => {}
                Err(_) => c.err(file, entity, "methods", format!("{m:?} is not a method")),
            }
        }
        out
    });
    let paths = match &raw.paths {
        None => {
            c.err(file, entity, "paths", "is required");
            Vec::new()
        }
        Some(p) if p.is_empty() => {
            c.err(file, entity, "paths", "must list at least one path pattern");
            Vec::new()
        }
        Some(p) => p.clone(),
    };
    let scopes = c.scopes(file, entity, "scopes", &raw.scopes);
    if let Some(ri) = rs {
        let server = &servers[ri];
        if !server.scopes.is_empty() {
            for s in scopes.iter() {
                if !server.scopes.contains(s.as_str()) {
                    c.err(
                        file,
                        entity,
                        "scopes",
                        format!("{s:?} is not a scope of resource server {:?}", server.id.as_str()),
                    );
                }
            }
        }
    }
    let scope_match = match raw.scope_match.as_deref() {
        None | Some("all") => ScopeMatch::All,
        Some("any") => ScopeMatch::Any,
        Some(other) => {
            c.err(
                file,
                entity,
                "scope_match",
                format!("{other:?}: expected \"all\" or \"any\""),
            );
            ScopeMatch::All
        }
    };
    let max_age = c.seconds(file, entity, "max_age", &raw.max_age);
    let max_token_lifetime = c.seconds(file, entity, "max_token_lifetime", &raw.max_token_lifetime);
    let validity = c.validity(file, entity, &raw.valid_from, &raw.disabled_on);
    Some(ProtectedResource {
        id: Name::new(id?),
        resource_server: rs?,
        host,
        methods,
        paths,
        scopes,
        scope_match,
        max_age,
        max_token_lifetime,
        validity,
        source: file.clone(),
    })
}
