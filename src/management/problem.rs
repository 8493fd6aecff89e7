//! RFC 9457 problem details: every Management API refusal is one, naming the field (and,
//! for a configuration rule, the entity) at fault.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

use crate::config::ConfigErrors;
use crate::respond;

/// `application/problem+json` (RFC 9457 § 3).
const PROBLEM_JSON: HeaderValue = HeaderValue::from_static("application/problem+json");

/// One thing wrong with a request.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Invalid {
    /// The field at fault, when one is (`scopes`, `paths`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The entity it concerns, when it is not the one written (`resource_server "orders"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// Where that entity is declared (a file, or `store`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// A problem answer.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// A URI naming the problem type (`about:blank` for plain HTTP meanings).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Short, the same for every occurrence of the type.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// This occurrence, in words.
    pub detail: String,
    /// Each field at fault.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<Invalid>,
    /// The methods a 405's resource takes.
    #[serde(skip)]
    pub allow: Option<&'static str>,
}

impl Problem {
    fn new(status: StatusCode, kind: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            kind,
            title,
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            allow: None,
        }
    }

    /// 400: the body is not what the operation takes.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "about:blank", "Bad Request", detail)
    }

    /// 400 on the query parameter `name`, named as a field.
    pub fn invalid_query(name: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut p = Self::bad_request(format!("{name}: {message}"));
        p.errors.push(Invalid {
            field: Some(name.to_owned()),
            entity: None,
            source: None,
            message,
        });
        p
    }

    /// 422 on `field`.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut p = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "urn:portcullis:problem:invalid-entity",
            "The entity is not valid",
            format!("{field}: {message}"),
        );
        p.errors.push(Invalid {
            field: Some(field.to_owned()),
            entity: None,
            source: None,
            message,
        });
        p
    }

    /// 422: the configuration the write would make does not compile; every error is listed,
    /// each naming its entity and field.
    pub fn invalid_configuration(errors: &ConfigErrors) -> Self {
        let mut p = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "urn:portcullis:problem:invalid-configuration",
            "The change would make the configuration invalid",
            errors.0.first().map_or_else(String::new, ToString::to_string),
        );
        p.errors = errors
            .0
            .iter()
            .map(|e| Invalid {
                field: e.field.clone(),
                entity: Some(e.entity.clone()),
                source: Some(e.file.display().to_string()),
                message: e.message.clone(),
            })
            .collect();
        p
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "about:blank", "Not Found", detail)
    }

    /// 405; `allow` lists the methods it takes (RFC 9110 § 15.5.6: sent as `Allow`).
    pub fn method_not_allowed(allow: &'static str) -> Self {
        let mut p = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "about:blank",
            "Method Not Allowed",
            format!("this resource takes {allow}"),
        );
        p.allow = Some(allow);
        p
    }

    /// 409: a file's entity, read-only here.
    pub fn read_only(what: &str, file: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "urn:portcullis:problem:read-only",
            "The entity is declared in a configuration file",
            format!("{what} is declared in {file}; change it there"),
        )
    }

    /// 409: creating what exists.
    pub fn exists(what: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "urn:portcullis:problem:exists",
            "The entity exists",
            format!("{what} exists"),
        )
    }

    /// 428: a write without `If-Match` (RFC 6585 § 3).
    pub fn precondition_required() -> Self {
        Self::new(
            StatusCode::PRECONDITION_REQUIRED,
            "urn:portcullis:problem:if-match-required",
            "If-Match is required",
            "send the ETag you read in If-Match, so a concurrent change is never overwritten",
        )
    }

    /// 412: someone else changed it.
    pub fn precondition_failed(what: &str) -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "urn:portcullis:problem:changed",
            "The entity changed",
            format!("{what} was changed since that ETag was read; read it again"),
        )
    }

    /// 415.
    pub fn unsupported_media_type(expected: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "about:blank",
            "Unsupported Media Type",
            format!("send {expected}"),
        )
    }

    /// 503: the store cannot take the write now.
    pub fn store_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "urn:portcullis:problem:store-unavailable",
            "The store is unavailable",
            "nothing was written; try again shortly",
        )
    }

    /// The HTTP answer.
    pub fn response(&self) -> Response<Full<Bytes>> {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = respond::typed_json(status, PROBLEM_JSON, self);
        if let Some(allow) = self.allow {
            resp.headers_mut()
                .insert(http::header::ALLOW, HeaderValue::from_static(allow));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}
