//! Request ids: the client's `X-Request-Id` when it is a sane, bounded token, else a new
//! random one. The id is logged on the access line, passed upstream and returned to the
//! client, so one request can be followed across systems.

use http::{HeaderMap, HeaderName, HeaderValue};

/// `X-Request-Id`.
pub const HEADER: HeaderName = crate::proxy::X_REQUEST_ID;

/// Longest client-sent id kept; longer ones are replaced (ids go into every log line).
pub const MAX_LEN: usize = 128;

/// The id for a request with `headers`: the client's single `X-Request-Id` if it is 1 to
/// [`MAX_LEN`] characters of `A-Z a-z 0-9 - _ . : / + = @`, else a new one (32 hex digits).
pub fn take(headers: &HeaderMap) -> HeaderValue {
    let mut sent = headers.get_all(&HEADER).iter();
    match (sent.next(), sent.next()) {
        (Some(v), None) if is_sane(v.as_bytes()) => v.clone(),
        _ => generate(),
    }
}

/// Whether a client-sent id may be kept: short, and nothing a log reader or parser could
/// mistake for structure (no spaces, quotes, commas, controls, non-ASCII).
fn is_sane(id: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&id.len()) && id.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(b))
}

/// 128 random bits as 32 lowercase hex digits.
fn generate() -> HeaderValue {
    let mut out = [0u8; 32];
    super::trace::hex(&rand::random::<u128>().to_be_bytes(), &mut out);
    // Hex digits are always a valid header value.
    HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(HEADER, HeaderValue::from_static(v));
        }
        h
    }

    fn is_generated(v: &HeaderValue) -> bool {
        v.len() == 32 && v.as_bytes().iter().all(|b| b.is_ascii_hexdigit())
    }

    #[test]
    fn a_sane_client_id_is_kept() {
        let id = "req-42_a.b:c/d+e=f@g";
        assert_eq!(take(&with(&[id])), id);
    }

    #[test]
    fn anything_else_gets_a_new_id() {
        let long: &'static str = Box::leak("a".repeat(MAX_LEN + 1).into_boxed_str());
        for bad in [
            &[][..],
            &[""],
            &["has space"],
            &["quote\""],
            &["comma,x"],
            &[long],
            &["a", "b"],
        ] {
            let v = take(&with(bad));
            assert!(is_generated(&v), "{bad:?} → {v:?}");
        }
        assert_eq!(take(&with(&["a".repeat(MAX_LEN).leak()])).len(), MAX_LEN);
    }

    #[test]
    fn generated_ids_differ() {
        let (a, b) = (generate(), generate());
        assert!(is_generated(&a) && is_generated(&b));
        assert_ne!(a, b);
    }
}
