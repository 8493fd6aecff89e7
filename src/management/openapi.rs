//! The Management API's OpenAPI 3.1 document, per realm, built from the same constants the
//! routes and scopes are (so it cannot describe another API than the one served).

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

use crate::config::management::{ACTIVITY_SCOPE, CHANGES_SCOPE, COLLECTIONS, REVOKE_SCOPE, base_path, scopes};
use crate::model::RealmRef;
use crate::snapshot::Snapshot;

/// `GET /api/v1/<realm>/openapi.json`.
pub(super) fn response(snap: &Snapshot, realm: RealmRef) -> Response<Full<Bytes>> {
    crate::respond::json(StatusCode::OK, &document(snap, realm))
}

/// The document for `realm`.
pub fn document(snap: &Snapshot, realm: RealmRef) -> Value {
    let name = snap.realms[realm].name.as_str();
    let base = format!("{}{}", snap.settings.public_url, base_path(name));
    let mut paths = serde_json::Map::new();
    for (segment, entity) in COLLECTIONS {
        let schema = json!({ "$ref": format!("#/components/schemas/{}", schema_name(segment)) });
        paths.insert(
            format!("/{segment}"),
            json!({
                "get": op(&format!("List {entity}"), &format!("read:{entity}"), &[
                    query("limit", json!({ "type": "integer", "minimum": 1, "maximum": 200 })),
                    query("cursor", json!({ "type": "string" })),
                ], None, &[("200", "A page", Some(json!({ "$ref": "#/components/schemas/Page" })))]),
                "post": op(&format!("Create one of {entity}"), &format!("create:{entity}"), &[], Some(schema.clone()), &[
                    ("201", "Created; generated secrets appear here once", Some(schema.clone())),
                    ("409", "It exists", None),
                    ("422", "Invalid, or the configuration would be", None),
                ]),
            }),
        );
        let id = id_param();
        paths.insert(
            format!("/{segment}/{{id}}"),
            json!({
                "get": op(&format!("Read one of {entity}"), &format!("read:{entity}"), std::slice::from_ref(&id), None, &[
                    ("200", "The entity", Some(schema.clone())), ("404", "No such entity", None),
                ]),
                "patch": op(&format!("Change one of {entity} (JSON Merge Patch)"), &format!("update:{entity}"),
                    &[id.clone(), if_match()], Some(json!({ "$ref": format!("#/components/schemas/{}Patch", schema_name(segment)) })), &[
                    ("200", "Changed", Some(schema.clone())), ("404", "No such entity", None),
                    ("409", "Declared in a file", None), ("412", "Changed since read", None),
                    ("422", "Invalid, or the configuration would be", None), ("428", "If-Match missing", None),
                ]),
                "delete": op(&format!("Delete one of {entity}"), &format!("delete:{entity}"), &[id.clone(), if_match()], None, &[
                    ("204", "Deleted", None), ("404", "No such entity", None), ("409", "Declared in a file", None),
                    ("412", "Changed since read", None), ("422", "Something still needs it", None), ("428", "If-Match missing", None),
                ]),
            }),
        );
    }
    let id = id_param();
    paths.insert(
        "/clients/{id}/secret".into(),
        json!({ "post": op("A new client secret, shown once", "update:clients", &[id.clone(), if_match()], None, &[
            ("200", "The client with its new secret", Some(json!({ "$ref": "#/components/schemas/Client" }))),
            ("404", "No such client", None), ("409", "Declared in a file", None), ("412", "Changed since read", None),
            ("422", "The client has no secret", None), ("428", "If-Match missing", None),
        ]) }),
    );
    paths.insert(
        "/revocations".into(),
        json!({ "post": op("Revoke an access token", REVOKE_SCOPE, &[], Some(json!({
            "type": "object", "required": ["token"], "properties": { "token": { "type": "string" } },
        })), &[("204", "Revoked (or not a valid token: RFC 7009)", None)]) }),
    );
    paths.insert(
        "/changes".into(),
        json!({ "get": op("The change log", CHANGES_SCOPE, &[
            query("after", json!({ "type": "integer", "format": "int64", "minimum": 0, "maximum": i64::MAX })),
            query("limit", json!({ "type": "integer", "minimum": 1, "maximum": 200 })),
            query("newest", json!({ "type": "integer", "minimum": 1, "maximum": 200 })),
        ], None, &[("200", "Changes after a version, or the newest first", Some(json!({ "type": "object" })))]) }),
    );
    paths.insert(
        "/activity".into(),
        json!({ "get": op("This gateway's recent requests per resource server and outcome", ACTIVITY_SCOPE, &[], None, &[
            ("200", "Counts per sampling interval over the last minutes", Some(json!({
                "type": "object",
                "required": ["interval_seconds", "buckets", "totals"],
                "properties": {
                    "interval_seconds": { "type": "integer" },
                    "buckets": { "type": "array", "items": { "type": "object" } },
                    "totals": { "type": "object" },
                },
            }))),
        ]) }),
    );
    paths.insert(
        "/match".into(),
        json!({ "get": op("Which protected resource a request would reach", "read:protected_resources", &[
            query("method", json!({ "type": "string", "pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$" })),
            query_required("path", json!({ "type": "string" })),
            query("host", json!({ "type": "string" })),
        ], None, &[("200", "The matching resource, or none", Some(json!({
            "type": "object", "required": ["matched"], "properties": { "matched": { "type": ["object", "null"] } },
        })))]) }),
    );
    json!({
        "openapi": "3.1.0",
        "info": { "title": format!("portcullis Management API ({name})"), "version": "1" },
        "servers": [{ "url": base }],
        "security": [{ "bearer": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                    "description": format!(
                        "An access token from the realm's issuer for the audience {base}, with the scope each operation names (one of: {})",
                        scopes().join(", ")
                    ),
                },
            },
            "schemas": {
                "ResourceServer": entity_schema(RESOURCE_SERVER, false),
                "ProtectedResource": entity_schema(PROTECTED_RESOURCE, false),
                "Client": entity_schema(CLIENT, false),
                "ResourceServerPatch": entity_schema(RESOURCE_SERVER, true),
                "ProtectedResourcePatch": entity_schema(PROTECTED_RESOURCE, true),
                "ClientPatch": entity_schema(CLIENT, true),
                "Page": {
                    "type": "object",
                    "properties": {
                        "items": { "type": "array", "items": { "type": "object" } },
                        "next_cursor": { "type": ["string", "null"] },
                    },
                },
                "Problem": {
                    "type": "object",
                    "description": "RFC 9457 problem details",
                    "properties": {
                        "type": { "type": "string" }, "title": { "type": "string" },
                        "status": { "type": "integer" }, "detail": { "type": "string" },
                        "errors": { "type": "array", "items": { "type": "object" } },
                    },
                },
            },
        },
    })
}

/// A field's JSON type in a declaration.
#[derive(Clone, Copy)]
enum Field {
    Text,
    Texts,
    TextMap,
    Flag,
    Count,
    Object,
    Choice(&'static [&'static str]),
    /// `[resource_server.cors]`: an object of its own fields.
    Cors,
}

/// The fields a resource server's declaration may have through the API (as in a file, less
/// the ones naming files or holding hashes).
const RESOURCE_SERVER: &[(&str, Field)] = &[
    ("id", Field::Text),
    ("name", Field::Text),
    ("realm", Field::Text),
    ("audience", Field::Text),
    ("upstream", Field::Text),
    ("scopes", Field::Texts),
    ("scope_descriptions", Field::TextMap),
    ("default_scopes", Field::Texts),
    ("access_token_ttl", Field::Text),
    ("signing_alg", Field::Text),
    ("default", Field::Flag),
    ("keep_authorization", Field::Flag),
    ("client_id", Field::Text),
    ("encryption", Field::Choice(&["none", "realm", "own"])),
    ("key_alg", Field::Text),
    ("content_alg", Field::Text),
    ("claim_headers", Field::TextMap),
    ("response_timeout", Field::Text),
    ("max_body_bytes", Field::Count),
    ("valid_from", Field::Text),
    ("disabled_on", Field::Text),
    ("cors", Field::Cors),
    ("contacts", Field::Texts),
    ("metadata", Field::Object),
    ("enforce", Field::Flag),
];

/// A protected resource's fields.
const PROTECTED_RESOURCE: &[(&str, Field)] = &[
    ("id", Field::Text),
    ("resource_server", Field::Text),
    ("host", Field::Text),
    ("methods", Field::Texts),
    ("paths", Field::Texts),
    ("auth", Field::Choice(&["token", "none"])),
    ("scopes", Field::Texts),
    ("scope_match", Field::Choice(&["all", "any"])),
    ("max_age", Field::Text),
    ("max_token_lifetime", Field::Text),
    ("valid_from", Field::Text),
    ("disabled_on", Field::Text),
    ("enforce", Field::Flag),
];

/// A client's fields.
const CLIENT: &[(&str, Field)] = &[
    ("client_id", Field::Text),
    ("name", Field::Text),
    ("realm", Field::Text),
    (
        "token_endpoint_auth_method",
        Field::Choice(&["client_secret_basic", "client_secret_post", "private_key_jwt"]),
    ),
    ("jwks", Field::Object),
    ("jwks_uri", Field::Text),
    ("danger_allow_http_jwks", Field::Flag),
    ("scopes", Field::Texts),
    ("resource_servers", Field::Texts),
    ("access_token_ttl", Field::Text),
    ("valid_from", Field::Text),
    ("disabled_on", Field::Text),
    ("contacts", Field::Texts),
    ("metadata", Field::Object),
];

/// The JSON Schema of a declaration: its fields, no others; `source`, `version` and a
/// generated `client_secret` appear in answers only. As a JSON Merge Patch (RFC 7396)
/// (`patch`), every field may also be `null`: remove it.
fn entity_schema(fields: &[(&str, Field)], patch: bool) -> Value {
    let mut properties = serde_json::Map::new();
    for (name, field) in fields {
        let schema = match field {
            Field::Text => json!({ "type": "string" }),
            Field::Texts => json!({ "type": "array", "items": { "type": "string" } }),
            Field::TextMap => json!({ "type": "object", "additionalProperties": { "type": "string" } }),
            Field::Flag => json!({ "type": "boolean" }),
            Field::Count => json!({ "type": "integer", "minimum": 0 }),
            Field::Object => json!({ "type": "object" }),
            Field::Choice(options) => json!({ "type": "string", "enum": options }),
            Field::Cors => cors_schema(),
        };
        let schema = if patch {
            json!({ "anyOf": [schema, { "type": "null" }] })
        } else {
            schema
        };
        properties.insert((*name).to_owned(), schema);
    }
    properties.insert(
        "source".into(),
        json!({ "type": "string", "enum": ["file", "store"], "readOnly": true }),
    );
    properties.insert(
        "version".into(),
        json!({ "type": ["integer", "null"], "readOnly": true }),
    );
    properties.insert("client_secret".into(), json!({ "type": "string", "readOnly": true }));
    json!({
        "type": "object",
        "description": "The entity's declaration, in the configuration's own shape",
        "properties": properties,
        "additionalProperties": false,
    })
}

/// What is wrong with `value` as the field `name` of a `kind` declaration, by the same
/// tables the document is made of (so the document and the checks never disagree).
pub(super) fn field_error(kind: crate::model::EntityKind, name: &str, value: &Value) -> Option<String> {
    let fields = match kind {
        crate::model::EntityKind::ResourceServer => RESOURCE_SERVER,
        crate::model::EntityKind::ProtectedResource => PROTECTED_RESOURCE,
        crate::model::EntityKind::Client => CLIENT,
    };
    let Some((_, field)) = fields.iter().find(|(n, _)| *n == name) else {
        return Some(format!(
            "unknown field; the fields are {}",
            fields.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
        ));
    };
    let strings = |v: &Value| v.as_array().is_some_and(|a| a.iter().all(Value::is_string));
    let ok = match field {
        Field::Text => value.is_string(),
        Field::Texts => strings(value),
        Field::TextMap => value.as_object().is_some_and(|o| o.values().all(Value::is_string)),
        Field::Flag => value.is_boolean(),
        Field::Count => value.is_u64(),
        Field::Object | Field::Cors => value.is_object(),
        Field::Choice(options) => value.as_str().is_some_and(|s| options.contains(&s)),
    };
    (!ok).then(|| match field {
        Field::Text => "must be a string".to_owned(),
        Field::Texts => "must be an array of strings".to_owned(),
        Field::TextMap => "must be an object of strings".to_owned(),
        Field::Flag => "must be true or false".to_owned(),
        Field::Count => "must be a whole number, 0 or more".to_owned(),
        Field::Object | Field::Cors => "must be an object".to_owned(),
        Field::Choice(options) => format!("must be one of {}", options.join(", ")),
    })
}

/// A resource server's CORS policy (its fields are checked by the compiler, as in a file).
fn cors_schema() -> Value {
    let texts = json!({ "type": "array", "items": { "type": "string" } });
    json!({
        "type": "object",
        "description": "CORS for browser apps; off without it. origins is required: exact origins, or [\"*\"] (never with credentials)",
        "required": ["origins"],
        "properties": {
            "origins": texts,
            "methods": texts,
            "headers": texts,
            "expose_headers": texts,
            "credentials": { "type": "boolean" },
            "max_age": { "type": "string" },
        },
        "additionalProperties": false,
    })
}

/// `{id}`: what ids may be in a path (printable, no separators the gateway refuses).
fn id_param() -> Value {
    json!({
        "name": "id", "in": "path", "required": true,
        "schema": { "type": "string", "pattern": "^[A-Za-z0-9._~:@!$&'()*+,=-]{1,255}$" },
    })
}

fn schema_name(segment: &str) -> &'static str {
    match segment {
        "resource-servers" => "ResourceServer",
        "protected-resources" => "ProtectedResource",
        _ => "Client",
    }
}

fn query(name: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "schema": schema })
}

fn query_required(name: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": true, "schema": schema })
}

fn if_match() -> Value {
    json!({ "name": "If-Match", "in": "header", "required": true, "schema": { "type": "string" } })
}

/// One operation: its summary, the scope it needs, parameters, body and answers (every
/// operation also answers 401/403 the RFC 6750 way, and problems as RFC 9457).
fn op(
    summary: &str,
    scope: &str,
    params: &[Value],
    body: Option<Value>,
    answers: &[(&str, &str, Option<Value>)],
) -> Value {
    let mut responses = serde_json::Map::new();
    for (code, description, schema) in answers {
        let mut r = json!({ "description": description });
        if let Some(schema) = schema {
            r["content"] = json!({ "application/json": { "schema": schema } });
        } else if code.starts_with('4') || code.starts_with('5') {
            r["content"] =
                json!({ "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } });
        }
        responses.insert((*code).to_owned(), r);
    }
    let problem = json!({ "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } });
    // A path the gateway itself refuses (RFC 6750-style JSON), or a body the API does.
    let bad = json!({
        "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } },
        "application/json": { "schema": { "type": "object" } },
    });
    responses
        .entry("400")
        .or_insert_with(|| json!({ "description": "A malformed request", "content": bad }));
    if body.is_some() {
        responses
            .entry("415")
            .or_insert_with(|| json!({ "description": "Not JSON", "content": problem.clone() }));
        responses
            .entry("422")
            .or_insert_with(|| json!({ "description": "Invalid", "content": problem.clone() }));
    }
    responses.insert("401".into(), json!({ "description": "No valid token" }));
    responses.insert(
        "403".into(),
        json!({ "description": format!("The token lacks {scope}") }),
    );
    let mut op = json!({
        "summary": summary,
        "security": [{ "bearer": [scope] }],
        "parameters": params,
        "responses": responses,
    });
    if let Some(schema) = body {
        op["requestBody"] = json!({
            "required": true,
            "content": {
                "application/json": { "schema": schema },
                "application/merge-patch+json": { "schema": schema },
            },
        });
    }
    op
}
