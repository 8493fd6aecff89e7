//! Compiling `[[resource_server]]` tables: realm, audience, upstream, scopes, token
//! settings, claim headers and the resource server's own credentials.

use std::collections::HashSet;
use std::str::FromStr;

use http::{HeaderName, Uri};
use jsonwebtoken::Algorithm;

use super::declared::Declared;
use super::encryption::RealmSide;
use super::raw::RawResourceServer;
use super::realm::Realms;
use super::report::{Ctx, Entity, is_client_id, is_simple_name, label};
use crate::jwks::{SigningKeys, parse_alg};
use crate::model::{
    Audience, ClaimHeader, Encryption, Name, Realm, ResourceServer, ResourceServerCredentials, ResourceServerRef,
    ScopeSet, Table, Upstream, defaults,
};
use crate::snapshot::{RealmEntry, ResourceServerEntry};

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
    // W3C Trace Context: the gateway sets them (`server::trace`).
    "traceparent",
    "tracestate",
    // The gateway's own request id (`crate::proxy::X_REQUEST_ID`): a claim sent as it would
    // overwrite the id the access log and the upstream correlate on.
    "x-request-id",
];

/// Compiles one `[[resource_server]]` (its encryption is compiled apart).
pub(super) fn compile_resource_server(
    e: &mut Entity<'_, '_>,
    raw: &RawResourceServer,
    realms: &Realms,
) -> Option<ResourceServer> {
    let Realms {
        entries: realms,
        index: realm_index,
        ..
    } = realms;
    let id = e.required("id", &raw.id);
    if let Some(id) = id
        && !is_simple_name(id)
    {
        e.err("id", "must be printable ASCII without spaces, quotes or backslashes");
    }
    if let Some(id) = id
        && id.starts_with("management:")
    {
        e.err(
            "id",
            "ids starting with \"management:\" are the built-in Management APIs'",
        );
    }
    let realm = e
        .required("realm", &raw.realm)
        .and_then(|r| super::realm::find_realm(e, realm_index, r));
    let audience = e.required("audience", &raw.audience).map(Audience::new);
    let upstream = e
        .required("upstream", &raw.upstream)
        .and_then(|u| match parse_upstream(u) {
            Ok(up) => Some(up),
            Err(why) => {
                e.err("upstream", why);
                None
            }
        });
    let (scopes, default_scopes) = scope_sets(e, raw);
    let scope_descriptions = scope_descriptions(e, raw, &scopes);
    let realm_ttl = realm.map_or(defaults::ACCESS_TOKEN_TTL, |ri| realms[ri].access_token_ttl);
    let access_token_ttl = e.duration("access_token_ttl", &raw.access_token_ttl, realm_ttl);
    if access_token_ttl.is_zero() {
        e.err("access_token_ttl", "must be positive");
    }
    let signing_alg = raw
        .signing_alg
        .as_deref()
        .and_then(|a| signing_alg(e, a, realm.map(|ri| &realms[ri])));
    let claim_headers = claim_headers(e, raw);
    let response_timeout = e.duration("response_timeout", &raw.response_timeout, defaults::RESPONSE_TIMEOUT);
    let max_body_bytes = super::limits::body(e, raw.max_body_bytes);
    let validity = e.validity(&raw.valid_from, &raw.disabled_on);
    let credentials = credentials(e, raw, id);
    let cors = super::cors::compile(e, raw.cors.as_ref());
    let id = id?;
    Some(ResourceServer {
        id: Name::new(id),
        name: raw.name.clone().unwrap_or_else(|| id.to_owned()),
        realm: realm?,
        audience: audience?,
        upstream: upstream?,
        scopes,
        scope_descriptions,
        default_scopes,
        access_token_ttl,
        signing_alg,
        default: raw.default.unwrap_or(false),
        claim_headers,
        keep_authorization: raw.keep_authorization.unwrap_or(defaults::KEEP_AUTHORIZATION),
        credentials,
        encryption: Encryption::None,
        response_timeout,
        max_body_bytes,
        validity,
        cors,
        contacts: raw.contacts.clone().unwrap_or_default(),
        metadata: raw.metadata.clone().unwrap_or_default(),
        source: e.file().to_path_buf(),
        management: false,
        enforce: raw.enforce.unwrap_or(defaults::ENFORCE),
    })
}

/// `scopes` and `default_scopes`, a subset of them.
fn scope_sets(e: &mut Entity<'_, '_>, raw: &RawResourceServer) -> (ScopeSet, ScopeSet) {
    let scopes = e.scopes("scopes", &raw.scopes);
    let default_scopes = e.scopes("default_scopes", &raw.default_scopes);
    for s in default_scopes.iter() {
        if !scopes.contains(s.as_str()) {
            e.err(
                "default_scopes",
                format!(
                    "{:?} is not one of the resource server's scopes{}",
                    s.as_str(),
                    super::suggest::did_you_mean(s.as_str(), scopes.iter().map(|x| x.as_str()))
                ),
            );
        }
    }
    (scopes, default_scopes)
}

/// `scope_descriptions`: each names one of the resource server's scopes.
fn scope_descriptions(
    e: &mut Entity<'_, '_>,
    raw: &RawResourceServer,
    scopes: &ScopeSet,
) -> std::collections::BTreeMap<String, String> {
    let descriptions = raw.scope_descriptions.clone().unwrap_or_default();
    for name in descriptions.keys() {
        if !scopes.contains(name) {
            e.err(
                "scope_descriptions",
                format!("{name:?} is not one of the resource server's scopes"),
            );
        }
    }
    descriptions
}

/// `signing_alg`: an asymmetric JWS algorithm the realm (when known) has a key for.
fn signing_alg(e: &mut Entity<'_, '_>, text: &str, realm: Option<&RealmEntry>) -> Option<Algorithm> {
    let Some(alg) = parse_alg(text) else {
        e.err("signing_alg", format!("{text:?} is not an asymmetric JWS algorithm"));
        return None;
    };
    if let Some(realm) = realm {
        check_signing_alg(e, alg, realm, &realm.signing);
    }
    Some(alg)
}

/// The claims passed upstream as headers: never as a header the proxy owns, each header
/// for one claim only.
fn claim_headers(e: &mut Entity<'_, '_>, raw: &RawResourceServer) -> Vec<ClaimHeader> {
    let mut out = Vec::new();
    let mut used = HashSet::new();
    for (claim, header) in raw.claim_headers.iter().flatten() {
        match HeaderName::from_str(header) {
            Ok(h) if RESERVED_HEADERS.contains(&h.as_str()) => {
                e.err("claim_headers", format!("{header:?} is a header the proxy owns"))
            }
            Ok(h) => {
                if !used.insert(h.clone()) {
                    e.err("claim_headers", format!("{header:?} is used for two claims"));
                }
                out.push(ClaimHeader {
                    claim: claim.clone(),
                    header: h,
                });
            }
            Err(_) => e.err("claim_headers", format!("{header:?} is not a header name")),
        }
    }
    out
}

/// The resource server's own credentials (introspection, revocation): a usable secret
/// hash, and a client id that defaults to the resource server's id.
fn credentials(e: &mut Entity<'_, '_>, raw: &RawResourceServer, id: Option<&str>) -> Option<ResourceServerCredentials> {
    match (&raw.client_secret_hash, &raw.client_id) {
        (Some(hash), client_id) => {
            if let Err(why) = crate::model::secret::check_phc(hash) {
                e.err(
                    "client_secret_hash",
                    format!("{why} (make one with `portcullis hash-secret`)"),
                );
            }
            let client_id = client_id.clone().or_else(|| id.map(str::to_owned)).unwrap_or_default();
            if !is_client_id(&client_id) {
                e.err("client_id", "must be printable ASCII (0x21-0x7E)");
            }
            Some(ResourceServerCredentials {
                client_id,
                secret_hash: hash.clone(),
            })
        }
        (None, Some(_)) => {
            e.err("client_secret_hash", "is required with client_id");
            None
        }
        (None, None) => None,
    }
}

fn check_signing_alg(e: &mut Entity<'_, '_>, alg: Algorithm, realm: &Realm, signing: &SigningKeys) {
    let name = crate::jwks::alg_name(alg);
    if !realm.algorithms.contains(&alg) {
        e.err(
            "signing_alg",
            format!("realm {:?} does not accept {name}", realm.name.as_str()),
        );
    } else if signing.active(alg).is_none() {
        e.err(
            "signing_alg",
            format!("realm {:?} has no signing key with alg {name}", realm.name.as_str()),
        );
    }
}

fn parse_upstream(text: &str) -> Result<Upstream, String> {
    let uri = Uri::from_str(text).map_err(|why| format!("{text:?} is not a URL: {why}"))?;
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

/// Compiles every `[[resource_server]]` with its encryption settings; ids are unique and a
/// realm has at most one default resource server.
pub(super) fn compile_resource_servers(
    c: &mut Ctx<'_>,
    declared: &Declared,
    realms: &Realms,
) -> Table<ResourceServerRef, ResourceServerEntry> {
    let mut servers: Table<ResourceServerRef, ResourceServerEntry> = Table::default();
    let mut seen: HashSet<String> = HashSet::new();
    for d in &declared.resource_servers {
        {
            let (raw, i) = (&d.raw, d.position);
            let label = label("resource_server", &raw.id, i);
            let mut e = c.entity(&d.origin.file, &d.origin.dir, &label);
            let Some(mut rs) = compile_resource_server(&mut e, raw, realms) else {
                continue;
            };
            let realm = &realms.entries[rs.realm];
            let dec = &realms.decryption[rs.realm];
            let side = RealmSide {
                realm,
                doc: dec.doc.as_deref(),
                kids: &dec.kids,
                issues: !realm.signing.is_empty(),
            };
            let (encryption, jwe) = super::encryption::resource_server_encryption(&mut e, raw, &side);
            rs.encryption = encryption;
            // NB: a duplicate is never added, so the first resource server of an id keeps it.
            if !seen.insert(rs.id.as_str().to_owned()) {
                e.err("id", "another resource server has this id");
                continue;
            }
            if rs.default
                && let Some(other) = servers.iter().find(|o| o.default && o.realm == rs.realm)
            {
                let msg = format!(
                    "realm {:?} already has a default resource server ({:?})",
                    realm.name.as_str(),
                    other.id.as_str()
                );
                e.err("default", msg);
            }
            servers.push(ResourceServerEntry {
                resource_server: rs,
                jwe,
                // Described once the realms' issuers are known (`discovery`).
                metadata: None,
            });
        }
    }
    servers
}

/// The ids of resource servers declared but not compiled (each in error): references to
/// them are not reported again, so one mistake is one error.
pub(super) fn failed_ids(
    declared: &Declared,
    servers: &Table<ResourceServerRef, ResourceServerEntry>,
) -> std::collections::HashSet<String> {
    declared
        .resource_servers
        .iter()
        .filter_map(|d| d.raw.id.as_deref())
        .filter(|id| servers.find(|rs| rs.id.as_str() == *id).is_none())
        .map(str::to_owned)
        .chain(
            declared
                .unparsed
                .iter()
                .filter(|(kind, _)| *kind == "resource_server")
                .map(|(_, id)| id.clone()),
        )
        .collect()
}
