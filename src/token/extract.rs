//! Bearer token extraction (RFC 6750 § 2.1: `Authorization: Bearer <b64token>`).

use http::HeaderMap;
use http::header::AUTHORIZATION;

use super::TokenError;

/// The bearer token of a request, if any.
///
/// No `Authorization` header, or one with another scheme, is `Ok(None)`; several
/// `Authorization` headers are an `invalid_request` (RFC 6750 § 3.1), and a `Bearer`
/// credential that is not a `b64token` is a malformed token.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, TokenError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(TokenError::InvalidRequest("several Authorization headers"));
    }
    let Ok(value) = value.to_str() else {
        return Err(TokenError::Malformed("non-ASCII Authorization header"));
    };
    let Some((scheme, rest)) = value.split_once(' ') else {
        return Ok(None);
    };
    // RFC 9110 § 11.1: the scheme is case-insensitive.
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    let token = rest.trim_start_matches(' ').trim_end_matches(' ');
    if !is_b64token(token) {
        return Err(TokenError::Malformed("not a b64token"));
    }
    Ok(Some(token))
}

/// RFC 6750 § 2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn h(values: &[&str]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for v in values {
            m.append(
                AUTHORIZATION,
                HeaderValue::from_str(v).unwrap_or_else(|e| panic!("{e}")),
            );
        }
        m
    }

    #[test]
    fn forms() {
        assert_eq!(bearer(&h(&[])), Ok(None));
        assert_eq!(bearer(&h(&["Bearer abc.def.ghi"])), Ok(Some("abc.def.ghi")));
        assert_eq!(bearer(&h(&["bearer  abc"])), Ok(Some("abc")));
        assert_eq!(bearer(&h(&["Basic dXNlcjpwYXNz"])), Ok(None));
        assert_eq!(bearer(&h(&["Bearer"])), Ok(None));
        assert!(matches!(bearer(&h(&["Bearer a b"])), Err(TokenError::Malformed(_))));
        assert!(matches!(bearer(&h(&["Bearer "])), Err(TokenError::Malformed(_))));
        assert!(matches!(
            bearer(&h(&["Bearer a", "Bearer b"])),
            Err(TokenError::InvalidRequest(_))
        ));
    }
}
