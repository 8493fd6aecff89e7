//! The entity collections: reads from the running snapshot's catalog, writes through one
//! path (shape check → compile with everything else → conditional commit → apply).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::{Map, Value, json};

use bytes::Bytes;

use super::{Call, Management, Problem, answer};
use crate::config::{RawClient, RawProtectedResource, RawResourceServer, management};
use crate::model::{EntityKind, EntitySource};
use crate::snapshot::CatalogEntry;
use crate::store::{EntityWrite, StoreError, StoredEntity};

/// Largest page of a list.
const MAX_PAGE: usize = 200;
/// A list's page when none is asked for.
const DEFAULT_PAGE: usize = 50;
/// Fields only files may use: they name files or environment variables of the host.
const FILE_ONLY: [&str; 4] = ["jwks_file", "encryption_jwks_file", "client_secret_env", "signing_keys"];
/// Fields the API generates: never taken from a caller.
const GENERATED: [&str; 1] = ["client_secret_hash"];
/// Read-only fields of a view, ignored when a caller sends them back.
const VIEW_ONLY: [&str; 2] = ["source", "version"];

/// `GET /{collection}`: a page of the realm's entities of `kind`, by id (`?limit=`,
/// `?cursor=` from the previous page's `next_cursor`).
pub(super) fn list(call: &Call<'_>, kind: EntityKind) -> Result<Response<Full<Bytes>>, Problem> {
    let mut limit = DEFAULT_PAGE;
    let mut cursor: Option<String> = None;
    for (k, v) in form_urlencoded::parse(call.query.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "limit" => {
                limit = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| Problem::bad_request(format!("limit must be 1 to {MAX_PAGE}")))?;
            }
            // The cursor is the last id of the previous page: entities after it, by id.
            "cursor" => cursor = Some(v.into_owned()),
            _ => {}
        }
    }
    let realm = call.realm_name();
    let mut items: Vec<Value> = call
        .snap
        .catalog
        .list(kind, realm, cursor.as_deref())
        .take(limit + 1)
        .map(|e| view(e))
        .collect();
    let next = (items.len() > limit).then(|| {
        items.truncate(limit);
        items
            .last()
            .and_then(|v| v[kind.id_field()].as_str())
            .unwrap_or_default()
            .to_owned()
    });
    Ok(answer(
        StatusCode::OK,
        &json!({ "items": items, "next_cursor": next }),
        None,
    ))
}

/// `GET /{collection}/{id}`.
pub(super) fn get(call: &Call<'_>, kind: EntityKind, id: &str) -> Result<Response<Full<Bytes>>, Problem> {
    let entry = find(call, kind, id)?;
    Ok(answer(StatusCode::OK, &view(entry), etag(entry)))
}

/// `GET /resource-servers/{id}/scopes`: name and description of each.
pub(super) fn scopes(call: &Call<'_>, id: &str) -> Result<Response<Full<Bytes>>, Problem> {
    let entry = find(call, EntityKind::ResourceServer, id)?;
    let descriptions = &entry.body["scope_descriptions"];
    let items: Vec<Value> = entry.body["scopes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|name| json!({ "name": name, "description": descriptions[name].as_str() }))
        .collect();
    Ok(answer(StatusCode::OK, &json!({ "items": items }), etag(entry)))
}

/// The entity of `kind` with `id` in the call's realm.
fn find<'s>(call: &Call<'s>, kind: EntityKind, id: &str) -> Result<&'s CatalogEntry, Problem> {
    call.snap
        .catalog
        .get(kind, id)
        .filter(|e| e.realm == call.realm_name())
        .map(AsRef::as_ref)
        .ok_or_else(|| Problem::not_found(format!("no {} {id:?} in this realm", kind.as_str())))
}

/// What a read shows: the declaration, where it comes from and its version.
fn view(entry: &CatalogEntry) -> Value {
    let mut body = entry.body.clone();
    if let Some(o) = body.as_object_mut() {
        for hidden in crate::config::catalog::HIDDEN {
            o.remove(hidden);
        }
        let (source, version) = match &entry.source {
            EntitySource::File(_) => ("file", Value::Null),
            EntitySource::Store { version } => ("store", json!(version)),
        };
        o.insert("source".into(), source.into());
        o.insert("version".into(), version);
    }
    body
}

/// The `ETag` of a stored entity (a file's has none: it cannot be written here).
fn etag(entry: &CatalogEntry) -> Option<String> {
    match entry.source {
        EntitySource::Store { version } => Some(format!("\"{version}\"")),
        EntitySource::File(_) => None,
    }
}

/// 428 when a write comes without `If-Match` (checked before anything else: RFC 6585 § 3).
fn require_if_match(call: &Call<'_>) -> Result<(), Problem> {
    match call.headers.get(http::header::IF_MATCH) {
        Some(_) => Ok(()),
        None => Err(Problem::precondition_required()),
    }
}

/// The version `If-Match` names, or the 428/412 answer.
fn if_match(call: &Call<'_>, current: i64, what: &str) -> Result<i64, Problem> {
    let header = call
        .headers
        .get(http::header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(Problem::precondition_required)?;
    let matches = header
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/").trim_matches('"').parse::<i64>().ok() == Some(current));
    if matches {
        Ok(current)
    } else {
        Err(Problem::precondition_failed(what))
    }
}

/// A body as a JSON object.
fn object(call: &Call<'_>) -> Result<Map<String, Value>, Problem> {
    let ct = call
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let media = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if media != "application/json" && media != "application/merge-patch+json" {
        return Err(Problem::unsupported_media_type("application/json"));
    }
    match serde_json::from_slice::<Value>(&call.body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(Problem::bad_request("the body must be a JSON object")),
        Err(e) => Err(Problem::bad_request(format!("the body is not JSON: {e}"))),
    }
}

/// Checks the shape of a declaration of `kind`: every field known and of its type (each
/// field is tried alone, so the answer names the one at fault), none that only files may
/// use or that the API generates.
fn check_shape(kind: EntityKind, body: &Map<String, Value>, generated_ok: bool) -> Result<(), Problem> {
    for (field, value) in body {
        if FILE_ONLY.contains(&field.as_str()) {
            return Err(Problem::invalid_field(
                field,
                "names a file or an environment variable of the gateway's host; only configuration files may",
            ));
        }
        if !generated_ok && GENERATED.contains(&field.as_str()) {
            return Err(Problem::invalid_field(field, "is generated by the API, never sent"));
        }
        if let Some(why) = super::openapi::field_error(kind, field, value) {
            return Err(Problem::invalid_field(field, why));
        }
        let alone = Value::Object(Map::from_iter([(field.clone(), value.clone())]));
        let parsed = match kind {
            EntityKind::ResourceServer => serde_json::from_value::<RawResourceServer>(alone).map(|_| ()),
            EntityKind::ProtectedResource => serde_json::from_value::<RawProtectedResource>(alone).map(|_| ()),
            EntityKind::Client => serde_json::from_value::<RawClient>(alone).map(|_| ()),
        };
        if let Err(e) = parsed {
            let why = e.to_string();
            let why = why.split(" at line ").next().unwrap_or(&why).to_owned();
            return Err(Problem::invalid_field(field, why));
        }
    }
    Ok(())
}

/// What a write does to one entity.
enum Edit {
    /// Store this declaration.
    Put(Map<String, Value>),
    /// Remove it.
    Delete,
}

/// A committed write: the new version and the declaration stored.
struct Written {
    version: i64,
    body: Map<String, Value>,
}

impl Management {
    /// `POST /{collection}`: creates an entity; generated credentials are in the answer,
    /// once, and never again.
    pub(super) async fn create(&self, call: &Call<'_>, kind: EntityKind) -> Result<Response<Full<Bytes>>, Problem> {
        let mut body = object(call)?;
        for f in VIEW_ONLY {
            body.remove(f);
        }
        check_shape(kind, &body, false)?;
        self.claim_realm(call, kind, &mut body)?;
        let mut shown_once = Map::new();
        let id = match kind {
            EntityKind::Client => {
                let id = match body.get("client_id").and_then(Value::as_str) {
                    Some(id) => id.to_owned(),
                    None => {
                        let id = random_token(16);
                        body.insert("client_id".into(), id.clone().into());
                        id
                    }
                };
                self.client_secret(&mut body, &mut shown_once).await?;
                id
            }
            EntityKind::ResourceServer => {
                let id = required_id(&body, "id")?;
                self.resource_server_credentials(&id, &mut body, &mut shown_once)
                    .await?;
                id
            }
            EntityKind::ProtectedResource => required_id(&body, "id")?,
        };
        if call.snap.catalog.get(kind, &id).is_some() {
            return Err(Problem::exists(&format!("{} {id:?}", kind.as_str())));
        }
        let written = self.write(call, kind, &id, None, Edit::Put(body)).await?;
        let mut resp = written_view(written, StatusCode::CREATED, shown_once);
        let location = format!(
            "{}/{}/{}",
            management::base_path(call.realm_name()),
            kind.collection(),
            utf8_percent(&id)
        );
        if let Ok(v) = http::HeaderValue::from_str(&location) {
            resp.headers_mut().insert(http::header::LOCATION, v);
        }
        Ok(resp)
    }

    /// `PATCH /{collection}/{id}` with a JSON Merge Patch (RFC 7396).
    pub(super) async fn patch(
        &self,
        call: &Call<'_>,
        kind: EntityKind,
        id: &str,
    ) -> Result<Response<Full<Bytes>>, Problem> {
        require_if_match(call)?;
        let (mut body, version) = self.stored(call, kind, id)?;
        let patch = object(call)?;
        let mut patch_shape = patch.clone();
        for f in VIEW_ONLY {
            patch_shape.remove(f);
        }
        check_shape(
            kind,
            &patch_shape
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            false,
        )?;
        let based_on = if_match(call, version, &describe(kind, id))?;
        for (k, v) in patch_shape {
            if v.is_null() {
                body.remove(&k);
            } else {
                body.insert(k, v);
            }
        }
        if body.get(kind.id_field()).and_then(Value::as_str) != Some(id) {
            return Err(Problem::invalid_field(kind.id_field(), "cannot be changed"));
        }
        self.claim_realm(call, kind, &mut body)?;
        let written = self.write(call, kind, id, Some(based_on), Edit::Put(body)).await?;
        Ok(written_view(written, StatusCode::OK, Map::new()))
    }

    /// `DELETE /{collection}/{id}`.
    pub(super) async fn delete(
        &self,
        call: &Call<'_>,
        kind: EntityKind,
        id: &str,
    ) -> Result<Response<Full<Bytes>>, Problem> {
        require_if_match(call)?;
        let (_, version) = self.stored(call, kind, id)?;
        let based_on = if_match(call, version, &describe(kind, id))?;
        self.write(call, kind, id, Some(based_on), Edit::Delete).await?;
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::NO_CONTENT;
        Ok(resp)
    }

    /// `POST /clients/{id}/secret`: a new secret, shown once; the old one stops working.
    pub(super) async fn new_secret(&self, call: &Call<'_>, id: &str) -> Result<Response<Full<Bytes>>, Problem> {
        require_if_match(call)?;
        let (mut body, version) = self.stored(call, EntityKind::Client, id)?;
        let based_on = if_match(call, version, &describe(EntityKind::Client, id))?;
        let mut shown_once = Map::new();
        body.remove("client_secret_hash");
        self.client_secret(&mut body, &mut shown_once).await?;
        if shown_once.is_empty() {
            return Err(Problem::invalid_field(
                "token_endpoint_auth_method",
                "this client authenticates without a secret",
            ));
        }
        let written = self
            .write(call, EntityKind::Client, id, Some(based_on), Edit::Put(body))
            .await?;
        // The one time the new secret is ever shown.
        Ok(written_view(written, StatusCode::OK, shown_once))
    }

    /// `POST /resource-servers/{id}/scopes` with `{"name", "description"}`.
    pub(super) async fn add_scope(&self, call: &Call<'_>, id: &str) -> Result<Response<Full<Bytes>>, Problem> {
        require_if_match(call)?;
        let (mut body, version) = self.stored(call, EntityKind::ResourceServer, id)?;
        let req = object(call)?;
        let name = req
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| Problem::invalid_field("name", "is required"))?
            .to_owned();
        let based_on = if_match(call, version, &describe(EntityKind::ResourceServer, id))?;
        let scopes = body.entry("scopes").or_insert_with(|| json!([]));
        if let Some(list) = scopes.as_array_mut()
            && !list.iter().any(|s| s.as_str() == Some(&name))
        {
            list.push(name.clone().into());
        }
        if let Some(d) = req.get("description").and_then(Value::as_str) {
            let descriptions = body.entry("scope_descriptions").or_insert_with(|| json!({}));
            if let Some(map) = descriptions.as_object_mut() {
                map.insert(name, d.into());
            }
        }
        let written = self
            .write(call, EntityKind::ResourceServer, id, Some(based_on), Edit::Put(body))
            .await?;
        Ok(written_view(written, StatusCode::OK, Map::new()))
    }

    /// `DELETE /resource-servers/{id}/scopes/{name}`: from its scopes, default scopes and
    /// descriptions (a protected resource or client still needing it makes it a 422).
    pub(super) async fn remove_scope(
        &self,
        call: &Call<'_>,
        id: &str,
        name: &str,
    ) -> Result<Response<Full<Bytes>>, Problem> {
        require_if_match(call)?;
        let (mut body, version) = self.stored(call, EntityKind::ResourceServer, id)?;
        let based_on = if_match(call, version, &describe(EntityKind::ResourceServer, id))?;
        for list in ["scopes", "default_scopes"] {
            if let Some(items) = body.get_mut(list).and_then(Value::as_array_mut) {
                items.retain(|s| s.as_str() != Some(name));
            }
        }
        if let Some(map) = body.get_mut("scope_descriptions").and_then(Value::as_object_mut) {
            map.remove(name);
        }
        let written = self
            .write(call, EntityKind::ResourceServer, id, Some(based_on), Edit::Put(body))
            .await?;
        Ok(written_view(written, StatusCode::OK, Map::new()))
    }

    /// `POST /revocations` with `{"token"}`: revoked across replicas (RFC 7009's meaning: an
    /// invalid or unknown token is answered as done).
    pub(super) async fn revoke(&self, call: &Call<'_>) -> Result<Response<Full<Bytes>>, Problem> {
        let req = object(call)?;
        let token = req
            .get("token")
            .and_then(Value::as_str)
            .ok_or_else(|| Problem::invalid_field("token", "is required"))?;
        if let Ok(claims) = self.verifier.verify_in_realm(call.snap, call.realm, None, token).await {
            let (key, until) = self.verifier.revocation_of(call.snap, call.realm, token, &claims);
            let now = self.verifier.clock().now();
            self.store
                .revoke(call.realm_name(), key.as_bytes(), until, call.actor(), now)
                .await
                .map_err(|_| Problem::store_unavailable())?;
            self.verifier.apply_revocation(key, until, token);
            self.metrics
                .management_write(&call.snap.realms[call.realm].name, "revocation", "revoke");
            tracing::info!(target: "management", actor = call.actor(), realm = call.realm_name(), "token revoked");
        }
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::NO_CONTENT;
        Ok(resp)
    }

    /// `GET /changes?after=&limit=`: the realm's change log (who changed what, when).
    pub(super) async fn changes(&self, call: &Call<'_>) -> Result<Response<Full<Bytes>>, Problem> {
        let mut after = 0i64;
        let mut limit = DEFAULT_PAGE;
        let mut newest = None;
        for (k, v) in form_urlencoded::parse(call.query.unwrap_or_default().as_bytes()) {
            match k.as_ref() {
                "newest" => {
                    newest = Some(
                        v.parse::<usize>()
                            .ok()
                            .filter(|n| (1..=MAX_PAGE).contains(n))
                            .ok_or_else(|| Problem::invalid_query("newest", format!("must be 1 to {MAX_PAGE}")))?,
                    );
                }
                "after" => {
                    after = v
                        .parse()
                        .ok()
                        .filter(|n: &i64| *n >= 0)
                        .ok_or_else(|| Problem::bad_request("after must be a version (0 or more)"))?;
                }
                "limit" => {
                    limit = v
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=MAX_PAGE).contains(n))
                        .ok_or_else(|| Problem::bad_request(format!("limit must be 1 to {MAX_PAGE}")))?;
                }
                _ => {}
            }
        }
        let realm = call.realm_name();
        if let Some(n) = newest {
            return self.newest_changes(realm, n).await;
        }
        let mut items = Vec::new();
        let mut from = after;
        // Other realms' changes are skipped page by page until this one's fill the answer.
        while items.len() < limit {
            let page = self
                .store
                .changes_after(from, i64::try_from(MAX_PAGE).unwrap_or(200))
                .await
                .map_err(|_| Problem::store_unavailable())?;
            let Some(last) = page.last().map(|c| c.version) else {
                break;
            };
            from = last;
            items.extend(page.iter().filter(|c| c.realm == realm).map(change_view));
        }
        items.truncate(limit);
        let next = items.last().map(|c| c["version"].clone());
        Ok(answer(
            StatusCode::OK,
            &json!({ "items": items, "next_after": next }),
            None,
        ))
    }

    /// `GET /changes?newest=N`: the realm's N most recent changes, newest first.
    async fn newest_changes(&self, realm: &str, n: usize) -> Result<Response<Full<Bytes>>, Problem> {
        let page = self
            .store
            .latest_changes(realm, i64::try_from(n).unwrap_or(200))
            .await
            .map_err(|_| Problem::store_unavailable())?;
        let items: Vec<Value> = page.iter().map(change_view).collect();
        Ok(answer(
            StatusCode::OK,
            &json!({ "items": items, "next_after": null }),
            None,
        ))
    }

    /// The stored declaration of an entity and its version; 409 for a file's, 404 for none.
    fn stored(&self, call: &Call<'_>, kind: EntityKind, id: &str) -> Result<(Map<String, Value>, i64), Problem> {
        let entry = find(call, kind, id)?;
        match &entry.source {
            EntitySource::File(file) => Err(Problem::read_only(&describe(kind, id), &file.display().to_string())),
            EntitySource::Store { version } => {
                let body = entry.body.as_object().cloned().unwrap_or_default();
                Ok((body, *version))
            }
        }
    }

    /// The realm a written entity belongs to is the URL's: `realm` (where the kind has it)
    /// is set to it, and a protected resource's resource server must be in it.
    fn claim_realm(&self, call: &Call<'_>, kind: EntityKind, body: &mut Map<String, Value>) -> Result<(), Problem> {
        let realm = call.realm_name();
        match kind {
            EntityKind::ResourceServer | EntityKind::Client => {
                match body.get("realm").and_then(Value::as_str) {
                    Some(r) if r != realm => {
                        return Err(Problem::invalid_field(
                            "realm",
                            format!("must be {realm:?}, this API's realm"),
                        ));
                    }
                    _ => {}
                }
                body.insert("realm".into(), realm.into());
            }
            EntityKind::ProtectedResource => {
                if let Some(rs) = body.get("resource_server").and_then(Value::as_str)
                    && let Some((_, entry)) = call.snap.resource_server(rs)
                    && (entry.realm != call.realm || entry.management)
                {
                    return Err(Problem::invalid_field(
                        "resource_server",
                        format!("{rs:?} is not a resource server of realm {realm:?}"),
                    ));
                }
            }
        }
        if kind == EntityKind::Client {
            self.no_more_than_the_caller(call, body)?;
        }
        Ok(())
    }

    /// A caller never grants more than it has: a client it writes may hold a Management API
    /// scope only if the caller's own token holds it.
    fn no_more_than_the_caller(&self, call: &Call<'_>, body: &Map<String, Value>) -> Result<(), Problem> {
        let management = management::scopes();
        for scope in body.get("scopes").and_then(Value::as_array).into_iter().flatten() {
            let Some(s) = scope.as_str() else { continue };
            if management.iter().any(|m| m == s) && !call.caller.has_scope(s) {
                return Err(Problem::invalid_field(
                    "scopes",
                    format!("{s:?} is a Management API scope your token does not hold"),
                ));
            }
        }
        Ok(())
    }

    /// For a client that authenticates with a secret: a new one, its hash in `body`, the
    /// secret itself in `shown_once`.
    async fn client_secret(
        &self,
        body: &mut Map<String, Value>,
        shown_once: &mut Map<String, Value>,
    ) -> Result<(), Problem> {
        let method = body
            .get("token_endpoint_auth_method")
            .and_then(Value::as_str)
            .unwrap_or("client_secret_basic");
        match method {
            "client_secret_basic" | "client_secret_post" => {
                let (secret, hash) = new_secret().await?;
                body.insert("client_secret_hash".into(), hash.into());
                shown_once.insert("client_secret".into(), secret.into());
                Ok(())
            }
            "client_secret_jwt" => Err(Problem::invalid_field(
                "token_endpoint_auth_method",
                "client_secret_jwt needs the secret itself on the gateway (client_secret_env); declare such clients in a file",
            )),
            _ => Ok(()),
        }
    }

    /// A resource server's own credentials (for introspection and revocation), generated
    /// unless the body names a `client_id` of its own without a secret.
    async fn resource_server_credentials(
        &self,
        id: &str,
        body: &mut Map<String, Value>,
        shown_once: &mut Map<String, Value>,
    ) -> Result<(), Problem> {
        let client_id = body
            .get("client_id")
            .and_then(Value::as_str)
            .map_or_else(|| format!("{id}.{}", random_token(6)), str::to_owned);
        let (secret, hash) = new_secret().await?;
        body.insert("client_id".into(), client_id.into());
        body.insert("client_secret_hash".into(), hash.into());
        shown_once.insert("client_secret".into(), secret.into());
        Ok(())
    }

    /// The one write path: compile the change with the files and every other stored entity,
    /// commit it if the entity is still at `based_on` and nothing else was committed since
    /// the compile (else compile again), apply it here, log and count it.
    async fn write(
        &self,
        call: &Call<'_>,
        kind: EntityKind,
        id: &str,
        based_on: Option<i64>,
        edit: Edit,
    ) -> Result<Written, Problem> {
        let _one_at_a_time = self.writes.lock().await;
        let realm = call.realm_name();
        let what = describe(kind, id);
        let text = match &edit {
            Edit::Put(body) => Some(Value::Object(body.clone()).to_string()),
            Edit::Delete => None,
        };
        for _ in 0..3 {
            let (at, mut managed) = self.store.entities().await.map_err(|_| Problem::store_unavailable())?;
            let current = managed
                .iter()
                .find(|m| m.kind == kind.as_str() && m.id == id)
                .map(|m| m.version);
            if current != based_on {
                return Err(match based_on {
                    None => Problem::exists(&what),
                    Some(_) => Problem::precondition_failed(&what),
                });
            }
            managed.retain(|m| !(m.kind == kind.as_str() && m.id == id));
            if let Some(body) = &text {
                managed.push(StoredEntity {
                    kind: kind.as_str().to_owned(),
                    id: id.to_owned(),
                    realm: realm.to_owned(),
                    body: body.clone(),
                    version: at + 1,
                });
            }
            self.control
                .check(managed)
                .await
                .map_err(|errors| Problem::invalid_configuration(&errors))?;
            let now = self.verifier.clock().now();
            let committed = self
                .store
                .write_entity(&EntityWrite {
                    kind: kind.as_str(),
                    id,
                    realm,
                    body: text.as_deref(),
                    based_on,
                    validated_at: Some(at),
                    actor: call.actor(),
                    now,
                })
                .await;
            match committed {
                Ok(version) => {
                    self.control.apply().await;
                    let action = match (based_on, &edit) {
                        (None, _) => "create",
                        (Some(_), Edit::Put(_)) => "update",
                        (Some(_), Edit::Delete) => "delete",
                    };
                    self.metrics
                        .management_write(&call.snap.realms[call.realm].name, kind.as_str(), action);
                    tracing::info!(
                        target: "management",
                        actor = call.actor(),
                        realm,
                        kind = kind.as_str(),
                        id,
                        action,
                        version,
                        "management change"
                    );
                    let body = match edit {
                        Edit::Put(body) => body,
                        Edit::Delete => Map::new(),
                    };
                    return Ok(Written { version, body });
                }
                // Something else was committed after the compile: compile again.
                Err(StoreError::Moved) => {}
                Err(StoreError::Conflict { .. }) => return Err(Problem::precondition_failed(&what)),
                Err(e) => {
                    tracing::error!(error = %e, "management write not committed: the store is unavailable");
                    return Err(Problem::store_unavailable());
                }
            }
        }
        Err(Problem::store_unavailable())
    }
}

/// The answer to a committed write: the stored declaration (secret hashes hidden), its
/// version and `ETag`, and `shown_once` (generated secrets).
fn written_view(written: Written, status: StatusCode, shown_once: Map<String, Value>) -> Response<Full<Bytes>> {
    let mut body = written.body;
    body.remove("client_secret_hash");
    body.insert("source".into(), "store".into());
    body.insert("version".into(), written.version.into());
    body.extend(shown_once);
    answer(status, &Value::Object(body), Some(format!("\"{}\"", written.version)))
}

/// One change as the API shows it.
fn change_view(c: &crate::store::Change) -> Value {
    json!({
        "version": c.version, "at": c.at, "kind": c.kind, "id": c.entity_id,
        "action": c.action, "actor": c.actor,
    })
}

/// `resource_server "orders"`.
fn describe(kind: EntityKind, id: &str) -> String {
    format!("{} {id:?}", kind.as_str())
}

fn required_id(body: &Map<String, Value>, field: &str) -> Result<String, Problem> {
    body.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(str::to_owned)
        .ok_or_else(|| Problem::invalid_field(field, "is required"))
}

/// `n` random bytes, base64url: generated client ids and secrets.
fn random_token(n: usize) -> String {
    let bytes: Vec<u8> = (0..n).map(|_| rand::random::<u8>()).collect();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A new secret (256 random bits) and its argon2id hash, hashed off the runtime workers.
async fn new_secret() -> Result<(String, String), Problem> {
    let secret = random_token(32);
    let for_hash = secret.clone();
    let hash = tokio::task::spawn_blocking(move || crate::issuer::hash_secret(&for_hash))
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(Problem::store_unavailable)?;
    Ok((secret, hash))
}

/// An id for a `Location` header: everything but unreserved characters escaped.
fn utf8_percent(id: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(id, SET).to_string()
}
