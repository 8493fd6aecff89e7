//! The Management API's OpenAPI 3.1 document, per realm, built from the same constants the
//! routes and scopes are (so it cannot describe another API than the one served).

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

use crate::config::management::{CHANGES_SCOPE, COLLECTIONS, REVOKE_SCOPE, base_path, scopes};
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
        let schema = json!({ "$ref": "#/components/schemas/Entity" });
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
        let id = json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } });
        paths.insert(
            format!("/{segment}/{{id}}"),
            json!({
                "get": op(&format!("Read one of {entity}"), &format!("read:{entity}"), std::slice::from_ref(&id), None, &[
                    ("200", "The entity", Some(schema.clone())), ("404", "No such entity", None),
                ]),
                "patch": op(&format!("Change one of {entity} (JSON Merge Patch)"), &format!("update:{entity}"),
                    &[id.clone(), if_match()], Some(schema.clone()), &[
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
    let id = json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } });
    paths.insert(
        "/clients/{id}/secret".into(),
        json!({ "post": op("A new client secret, shown once", "update:clients", &[id.clone(), if_match()], None, &[
            ("200", "The client with its new secret", Some(json!({ "$ref": "#/components/schemas/Entity" }))),
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
            query("after", json!({ "type": "integer" })),
            query("limit", json!({ "type": "integer", "minimum": 1, "maximum": 200 })),
        ], None, &[("200", "Changes after a version", Some(json!({ "type": "object" })))]) }),
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
                "Entity": {
                    "type": "object",
                    "description": "The entity's declaration, in the configuration's own shape; `source` and `version` are read-only",
                    "additionalProperties": true,
                },
                "Page": {
                    "type": "object",
                    "properties": {
                        "items": { "type": "array", "items": { "$ref": "#/components/schemas/Entity" } },
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

fn query(name: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "schema": schema })
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
