//! Reading an OAuth request: bounded `application/x-www-form-urlencoded` body (RFC 6749
//! § 3.2: parameters sent without a value are treated as omitted; none may repeat, except
//! `resource`, RFC 8707 § 2).

use std::collections::HashMap;

use bytes::Bytes;
use http::HeaderMap;
use http::header::CONTENT_TYPE;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::OAuthError;

/// Largest form body accepted.
pub(crate) const MAX_FORM_BYTES: usize = 64 * 1024;

/// Parsed form parameters.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Form {
    single: HashMap<String, String>,
    /// Every `resource` value, in order.
    pub resources: Vec<String>,
}

impl Form {
    /// A parameter's value; empty values count as absent.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.single.get(name).map(String::as_str)
    }

    /// Parses a form body.
    pub(crate) fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let mut form = Self::default();
        for (k, v) in form_urlencoded::parse(body) {
            if v.is_empty() {
                continue;
            }
            if k == "resource" {
                form.resources.push(v.into_owned());
                continue;
            }
            if form.single.insert(k.clone().into_owned(), v.into_owned()).is_some() {
                return Err(OAuthError::InvalidRequest(format!("parameter {k:?} is repeated")));
            }
        }
        Ok(form)
    }
}

/// Reads and parses the body of a form POST, bounded by [`MAX_FORM_BYTES`].
pub(crate) async fn read(headers: &HeaderMap, body: Incoming) -> Result<Form, OAuthError> {
    let is_form = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(OAuthError::InvalidRequest(
            "the body must be application/x-www-form-urlencoded".into(),
        ));
    }
    let bytes: Bytes = Limited::new(body, MAX_FORM_BYTES)
        .collect()
        .await
        .map_err(|_| {
            OAuthError::InvalidRequest(format!("the body is unreadable or larger than {MAX_FORM_BYTES} bytes"))
        })?
        .to_bytes();
    Form::parse(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_and_empties() {
        let f = Form::parse(b"grant_type=client_credentials&scope=&resource=a&resource=b")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.get("grant_type"), Some("client_credentials"));
        assert_eq!(f.get("scope"), None);
        assert_eq!(f.resources, vec!["a", "b"]);
        assert!(Form::parse(b"scope=a&scope=b").is_err());
    }
}
