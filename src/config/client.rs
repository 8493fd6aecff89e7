//! Compiling `[[client]]` tables: credentials per auth method, allowed targets and scopes.

use std::collections::HashMap;
use std::sync::Arc;

use super::compile::CompileContext;
use super::jwks::{JwksTuning, read_jwks_file, remote_jwks};
use super::load::LoadedFile;
use super::raw::RawClient;
use super::report::{Ctx, Entity, is_client_id, label};
use crate::jwks::{KeySet, RealmKeys};
use crate::model::{Client, ClientAuth, Name, Realm, ResourceServer, ScopeSet};

/// Shortest shared secret for `client_secret_jwt`: RFC 7518 § 3.2 wants a key at least as
/// long as the hash output, and we allow HS256 and up.
const MIN_JWT_SECRET: usize = 32;

/// Compiles every client; returns them with their assertion keys (for `private_key_jwt`).
pub(super) fn compile_clients(
    c: &mut Ctx<'_>,
    files: &[LoadedFile],
    cx: &CompileContext<'_>,
    realm_index: &HashMap<String, usize>,
    realms: &[Realm],
    signing_present: &[bool],
    servers: &[ResourceServer],
) -> (Vec<Client>, Vec<Option<Arc<RealmKeys>>>) {
    let mut clients = Vec::new();
    let mut keys = Vec::new();
    let mut seen: HashMap<String, std::path::PathBuf> = HashMap::new();
    for f in files {
        for (i, raw) in f.raw.client.iter().enumerate() {
            let label = label("client", &raw.client_id, i);
            let mut e = c.entity(&f.path, &f.dir, &label);
            let Some((client, k)) = compile_client(&mut e, raw, cx, realm_index, realms, signing_present, servers)
            else {
                continue;
            };
            let id = client.client_id.as_str().to_owned();
            if let Some(first) = seen.get(&id) {
                e.err("client_id", format!("another client has this id ({})", first.display()));
                continue;
            }
            if servers
                .iter()
                .any(|rs| rs.credentials.as_ref().is_some_and(|cr| cr.client_id == id))
            {
                e.err(
                    "client_id",
                    "a resource server uses this client id for its own credentials",
                );
                continue;
            }
            seen.insert(id, f.path.clone());
            clients.push(client);
            keys.push(k);
        }
    }
    (clients, keys)
}

fn compile_client(
    e: &mut Entity<'_, '_>,
    raw: &RawClient,
    cx: &CompileContext<'_>,
    realm_index: &HashMap<String, usize>,
    realms: &[Realm],
    signing_present: &[bool],
    servers: &[ResourceServer],
) -> Option<(Client, Option<Arc<RealmKeys>>)> {
    let client_id = e.required("client_id", &raw.client_id);
    if let Some(id) = client_id
        && !is_client_id(id)
    {
        e.err("client_id", "must be printable ASCII 0x21-0x7E, at most 255 bytes");
    }
    let realm = e.required("realm", &raw.realm).and_then(|r| {
        let found = realm_index.get(r).copied();
        match found {
            None => e.err("realm", format!("no realm is named {r:?}")),
            Some(ri) if !signing_present[ri] => e.err(
                "realm",
                format!("realm {r:?} has no signing_keys, so it issues no tokens"),
            ),
            Some(_) => {}
        }
        found
    });
    let (auth, keys) = compile_auth(e, raw, cx, client_id, realm, realms)?;
    // Allowed resource servers, all in the client's realm.
    let resource_servers = raw.resource_servers.as_ref().map(|ids| {
        let mut out = Vec::new();
        for id in ids {
            match servers.iter().position(|rs| rs.id.as_str() == id) {
                Some(i) if Some(servers[i].realm) == realm => out.push(i),
                Some(_) => e.err("resource_servers", format!("{id:?} is in another realm")),
                None => e.err("resource_servers", format!("no resource server has id {id:?}")),
            }
        }
        out
    });
    // Allowed scopes: each must be defined by some resource server of the realm.
    let scopes = raw.scopes.as_ref().map(|_| e.scopes("scopes", &raw.scopes));
    if let (Some(scopes), Some(ri)) = (&scopes, realm) {
        for s in scopes.iter() {
            if !servers
                .iter()
                .any(|rs| rs.realm == ri && rs.scopes.contains(s.as_str()))
            {
                e.err(
                    "scopes",
                    format!("{s:?} is not a scope of any resource server of the realm"),
                );
            }
        }
    }
    let access_token_ttl = raw.access_token_ttl.as_ref().map(|_| {
        e.duration(
            "access_token_ttl",
            &raw.access_token_ttl,
            crate::model::defaults::ACCESS_TOKEN_TTL,
        )
    });
    if access_token_ttl.is_some_and(|t| t.is_zero()) {
        e.err("access_token_ttl", "must be positive");
    }
    let validity = e.validity(&raw.valid_from, &raw.disabled_on);
    let client_id = client_id?;
    Some((
        Client {
            client_id: Name::new(client_id),
            name: raw.name.clone().unwrap_or_else(|| client_id.to_owned()),
            realm: realm?,
            auth,
            scopes: scopes.map(|s: ScopeSet| s),
            resource_servers,
            access_token_ttl,
            validity,
            contacts: raw.contacts.clone().unwrap_or_default(),
            metadata: raw.metadata.clone().unwrap_or_default(),
            source: e.file().to_path_buf(),
        },
        keys,
    ))
}

fn compile_auth(
    e: &mut Entity<'_, '_>,
    raw: &RawClient,
    cx: &CompileContext<'_>,
    client_id: Option<&str>,
    realm: Option<usize>,
    realms: &[Realm],
) -> Option<(ClientAuth, Option<Arc<RealmKeys>>)> {
    let method = raw
        .token_endpoint_auth_method
        .as_deref()
        .unwrap_or("client_secret_basic");
    // Credentials that do not belong to the method are errors: a half-migrated client must
    // not keep a second way in.
    let stray = |e: &mut Entity<'_, '_>, field: &str, present: bool| {
        if present {
            e.err(
                field,
                format!("does not apply to token_endpoint_auth_method {method:?}"),
            );
        }
    };
    let has_jwks = raw.jwks_file.is_some() || raw.jwks_uri.is_some();
    match method {
        "client_secret_basic" | "client_secret_post" => {
            stray(e, "client_secret_env", raw.client_secret_env.is_some());
            stray(e, "jwks_file", raw.jwks_file.is_some());
            stray(e, "jwks_uri", raw.jwks_uri.is_some());
            let hash = e.required("client_secret_hash", &raw.client_secret_hash)?;
            if let Err(why) = crate::issuer::check_phc(hash) {
                e.err(
                    "client_secret_hash",
                    format!("{why} (make one with `portcullis hash-secret`)"),
                );
            }
            let hash = hash.to_owned();
            let auth = if method == "client_secret_basic" {
                ClientAuth::SecretBasic { hash }
            } else {
                ClientAuth::SecretPost { hash }
            };
            Some((auth, None))
        }
        "client_secret_jwt" => {
            stray(e, "client_secret_hash", raw.client_secret_hash.is_some());
            stray(e, "jwks_file", raw.jwks_file.is_some());
            stray(e, "jwks_uri", raw.jwks_uri.is_some());
            let var = e.required("client_secret_env", &raw.client_secret_env)?;
            match (cx.env)(var) {
                Some(secret) if secret.len() >= MIN_JWT_SECRET => Some((
                    ClientAuth::SecretJwt {
                        secret: secret.into_bytes(),
                    },
                    None,
                )),
                Some(_) => {
                    e.err(
                        "client_secret_env",
                        format!("${var} holds fewer than {MIN_JWT_SECRET} bytes (RFC 7518 § 3.2)"),
                    );
                    None
                }
                None => {
                    e.err("client_secret_env", format!("environment variable ${var} is not set"));
                    None
                }
            }
        }
        "private_key_jwt" => {
            stray(e, "client_secret_hash", raw.client_secret_hash.is_some());
            stray(e, "client_secret_env", raw.client_secret_env.is_some());
            if !has_jwks {
                e.err("jwks_file", "private_key_jwt needs jwks_file or jwks_uri");
                return None;
            }
            let mut local = Vec::new();
            if let Some(p) = &raw.jwks_file
                && let Some(set) = {
                    let path = e.resolve(p);
                    read_jwks_file(e, &path)
                }
            {
                local.extend(set.keys().iter().cloned());
            }
            let remote = raw
                .jwks_uri
                .as_deref()
                .and_then(|text| remote_jwks(e, text, raw.danger_allow_http_jwks == Some(true), &JwksTuning::DEFAULT));
            if raw.danger_allow_http_jwks.is_some() && raw.jwks_uri.is_none() {
                e.err("danger_allow_http_jwks", "set without jwks_uri");
            }
            let label = format!(
                "client:{}:{}",
                realm.map_or("", |r| realms[r].name.as_str()),
                client_id.unwrap_or("")
            );
            let keys = Arc::new(RealmKeys::new(
                Name::new(&label),
                KeySet::from_keys(local),
                remote.map(|r| (r, cx.fetcher.clone())),
                cx.clock.clone(),
            ));
            Some((ClientAuth::PrivateKeyJwt, Some(keys)))
        }
        other => {
            e.err(
                "token_endpoint_auth_method",
                format!(
                    "{other:?}: expected client_secret_basic, client_secret_post, client_secret_jwt or private_key_jwt"
                ),
            );
            None
        }
    }
}
