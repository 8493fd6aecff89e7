//! Compiling `[[client]]` tables: credentials per auth method, allowed targets and scopes.

use std::collections::HashMap;
use std::sync::Arc;

use super::compile::CompileContext;
use super::declared::Declared;
use super::jwks::{JwksTuning, read_jwks_file, remote_jwks};
use super::raw::RawClient;
use super::report::{Ctx, Entity, is_client_id, label};
use crate::jwks::{KeySet, RealmKeys};
use crate::model::{Client, ClientAuth, ClientRef, Name, RealmRef, ResourceServerRef, ScopeSet, Table};
use crate::snapshot::{ClientEntry, RealmEntry, ResourceServerEntry};

/// Shortest shared secret for `client_secret_jwt`: RFC 7518 § 3.2 wants a key at least as
/// long as the hash output, and we allow HS256 and up.
const MIN_JWT_SECRET: usize = 32;

/// Compiles every client, with its assertion keys (for `private_key_jwt`).
pub(super) fn compile_clients(
    c: &mut Ctx<'_>,
    declared: &Declared,
    cx: &CompileContext<'_>,
    realm_index: &HashMap<String, RealmRef>,
    realms: &Table<RealmRef, RealmEntry>,
    servers: &Table<ResourceServerRef, ResourceServerEntry>,
    failed: &std::collections::HashSet<String>,
) -> Table<ClientRef, ClientEntry> {
    let mut clients = Table::default();
    let mut seen: HashMap<String, std::path::PathBuf> = HashMap::new();
    for d in &declared.clients {
        {
            let (raw, i) = (&d.raw, d.position);
            let label = label("client", &raw.client_id, i);
            let mut e = c.entity(&d.origin.file, &d.origin.dir, &label);
            let Some((client, keys)) = compile_client(&mut e, raw, cx, realm_index, realms, servers, failed) else {
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
            seen.insert(id, d.origin.file.clone());
            clients.push(ClientEntry { client, keys });
        }
    }
    clients
}

fn compile_client(
    e: &mut Entity<'_, '_>,
    raw: &RawClient,
    cx: &CompileContext<'_>,
    realm_index: &HashMap<String, RealmRef>,
    realms: &Table<RealmRef, RealmEntry>,
    servers: &Table<ResourceServerRef, ResourceServerEntry>,
    failed: &std::collections::HashSet<String>,
) -> Option<(Client, Option<Arc<RealmKeys>>)> {
    let client_id = e.required("client_id", &raw.client_id);
    if let Some(id) = client_id
        && !is_client_id(id)
    {
        e.err("client_id", "must be printable ASCII 0x21-0x7E, at most 255 bytes");
    }
    let realm = e
        .required("realm", &raw.realm)
        .and_then(|r| issuing_realm(e, r, realm_index, realms));
    let keys_label = format!(
        "client:{}:{}",
        realm.map_or("", |r| realms[r].name.as_str()),
        client_id.unwrap_or("")
    );
    let (auth, keys) = compile_auth(e, raw, cx, &keys_label)?;
    let resource_servers = raw
        .resource_servers
        .as_ref()
        .map(|ids| allowed_resource_servers(e, ids, realm, servers, failed));
    let scopes = raw
        .scopes
        .as_ref()
        .map(|_| allowed_scopes(e, &raw.scopes, realm, servers, failed));
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
            scopes,
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

/// The realm named `name`, which must issue tokens (have signing keys).
fn issuing_realm(
    e: &mut Entity<'_, '_>,
    name: &str,
    realm_index: &HashMap<String, RealmRef>,
    realms: &Table<RealmRef, RealmEntry>,
) -> Option<RealmRef> {
    let found = super::realm::find_realm(e, realm_index, name)?;
    if realms[found].signing.is_empty() {
        e.err(
            "realm",
            format!("realm {name:?} has no signing_keys, so it issues no tokens"),
        );
    }
    Some(found)
}

/// `resource_servers`: each must exist, in the client's realm.
fn allowed_resource_servers(
    e: &mut Entity<'_, '_>,
    ids: &[String],
    realm: Option<RealmRef>,
    servers: &Table<ResourceServerRef, ResourceServerEntry>,
    failed: &std::collections::HashSet<String>,
) -> Vec<ResourceServerRef> {
    let mut out = Vec::new();
    for id in ids {
        match servers.find(|rs| rs.id.as_str() == id) {
            Some((i, rs)) if Some(rs.realm) == realm => out.push(i),
            Some(_) => e.err("resource_servers", format!("{id:?} is in another realm")),
            // Declared but in error: that error is the one to fix.
            None if failed.contains(id) => {}
            None => {
                let hint = super::suggest::did_you_mean(id, servers.iter().map(|rs| rs.id.as_str()));
                e.err("resource_servers", format!("no resource server has id {id:?}{hint}"));
            }
        }
    }
    out
}

/// `scopes`: each must be defined by some resource server of the client's realm.
fn allowed_scopes(
    e: &mut Entity<'_, '_>,
    raw: &Option<Vec<String>>,
    realm: Option<RealmRef>,
    servers: &Table<ResourceServerRef, ResourceServerEntry>,
    failed: &std::collections::HashSet<String>,
) -> ScopeSet {
    let scopes = e.scopes("scopes", raw);
    // With a resource server in error, a scope only it defines would be reported twice.
    if let Some(ri) = realm.filter(|_| failed.is_empty()) {
        for s in scopes.iter() {
            if !servers
                .iter()
                .any(|rs| rs.realm == ri && rs.scopes.contains(s.as_str()))
            {
                e.err(
                    "scopes",
                    format!(
                        "{:?} is not a scope of any resource server of the realm{}",
                        s.as_str(),
                        super::suggest::did_you_mean(
                            s.as_str(),
                            servers
                                .iter()
                                .filter(|rs| rs.realm == ri)
                                .flat_map(|rs| rs.scopes.iter().map(|x| x.as_str()))
                        )
                    ),
                );
            }
        }
    }
    scopes
}

/// `token_endpoint_auth_method` (RFC 7591 § 2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum AuthMethod {
    /// HTTP Basic with the client secret (the default).
    #[default]
    ClientSecretBasic,
    /// The client secret in the form body.
    ClientSecretPost,
    /// A JWT assertion signed with the shared secret (HMAC).
    ClientSecretJwt,
    /// A JWT assertion signed with the client's private key.
    PrivateKeyJwt,
}

impl AuthMethod {
    /// The credential fields this method uses; the others must be absent.
    fn fields(self) -> &'static [&'static str] {
        match self {
            Self::ClientSecretBasic | Self::ClientSecretPost => &["client_secret_hash"],
            Self::ClientSecretJwt => &["client_secret_env"],
            Self::PrivateKeyJwt => &["jwks_file", "jwks", "jwks_uri"],
        }
    }
}

/// The client's authentication method and its credentials.
fn compile_auth(
    e: &mut Entity<'_, '_>,
    raw: &RawClient,
    cx: &CompileContext<'_>,
    keys_label: &str,
) -> Option<(ClientAuth, Option<Arc<RealmKeys>>)> {
    let method: AuthMethod = e.choice("token_endpoint_auth_method", &raw.token_endpoint_auth_method)?;
    // Credentials that do not belong to the method are errors: a half-migrated client must
    // not keep a second way in.
    for (field, present) in [
        ("client_secret_hash", raw.client_secret_hash.is_some()),
        ("client_secret_env", raw.client_secret_env.is_some()),
        ("jwks_file", raw.jwks_file.is_some()),
        ("jwks", raw.jwks.is_some()),
        ("jwks_uri", raw.jwks_uri.is_some()),
    ] {
        if present && !method.fields().contains(&field) {
            let name = raw
                .token_endpoint_auth_method
                .as_deref()
                .unwrap_or("client_secret_basic");
            e.err(field, format!("does not apply to token_endpoint_auth_method {name:?}"));
        }
    }
    match method {
        AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost => {
            let hash = e.required("client_secret_hash", &raw.client_secret_hash)?;
            if let Err(why) = crate::model::secret::check_phc(hash) {
                e.err(
                    "client_secret_hash",
                    format!("{why} (make one with `portcullis hash-secret`)"),
                );
            }
            let hash = hash.to_owned();
            let auth = if method == AuthMethod::ClientSecretBasic {
                ClientAuth::SecretBasic { hash }
            } else {
                ClientAuth::SecretPost { hash }
            };
            Some((auth, None))
        }
        AuthMethod::ClientSecretJwt => shared_secret(e, raw, cx).map(|secret| (ClientAuth::SecretJwt { secret }, None)),
        AuthMethod::PrivateKeyJwt => {
            private_key_jwt(e, raw, cx, keys_label).map(|keys| (ClientAuth::PrivateKeyJwt, Some(keys)))
        }
    }
}

/// The `client_secret_jwt` secret, from the environment variable `client_secret_env` names.
fn shared_secret(e: &mut Entity<'_, '_>, raw: &RawClient, cx: &CompileContext<'_>) -> Option<Vec<u8>> {
    let var = e.required("client_secret_env", &raw.client_secret_env)?;
    match (cx.env)(var) {
        Some(secret) if secret.len() >= MIN_JWT_SECRET => Some(secret.into_bytes()),
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

/// `jwks`: an inline JWK Set of signature keys, each usable.
fn inline_jwks(e: &mut Entity<'_, '_>, doc: &serde_json::Map<String, serde_json::Value>) -> Option<KeySet> {
    let text = serde_json::Value::Object(doc.clone()).to_string();
    let (set, skipped) = match KeySet::parse(text.as_bytes()) {
        Ok(parsed) => parsed,
        Err(why) => {
            e.err("jwks", why.to_string());
            return None;
        }
    };
    for s in skipped {
        e.err("jwks", s.to_string());
    }
    if set.is_empty() {
        e.err("jwks", "holds no usable signature key");
    }
    Some(set)
}

/// The `private_key_jwt` verification keys: a local JWKS, a remote one, or both.
fn private_key_jwt(
    e: &mut Entity<'_, '_>,
    raw: &RawClient,
    cx: &CompileContext<'_>,
    keys_label: &str,
) -> Option<Arc<RealmKeys>> {
    if raw.jwks_file.is_none() && raw.jwks.is_none() && raw.jwks_uri.is_none() {
        e.err("jwks_file", "private_key_jwt needs jwks_file, jwks or jwks_uri");
        return None;
    }
    let mut local = Vec::new();
    if let Some(p) = &raw.jwks_file {
        let path = e.resolve(p);
        if let Some(set) = read_jwks_file(e, &path) {
            local.extend(set.keys().iter().cloned());
        }
    }
    if let Some(set) = raw.jwks.as_ref().and_then(|doc| inline_jwks(e, doc)) {
        local.extend(set.keys().iter().cloned());
    }
    let remote = raw
        .jwks_uri
        .as_deref()
        .and_then(|text| remote_jwks(e, text, raw.danger_allow_http_jwks == Some(true), &JwksTuning::DEFAULT));
    if raw.danger_allow_http_jwks.is_some() && raw.jwks_uri.is_none() {
        e.err("danger_allow_http_jwks", "set without jwks_uri");
    }
    Some(Arc::new(RealmKeys::new(
        Name::new(keys_label),
        KeySet::from_keys(local),
        remote.map(|r| (r, cx.fetcher.clone())),
        cx.clock.clone(),
    )))
}
