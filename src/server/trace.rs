//! W3C Trace Context (Recommendation, 2021): the `traceparent` a request is forwarded with.
//!
//! The gateway takes part in the trace as one span of its own (§ 3.2, "a vendor receiving a
//! `traceparent` … MUST modify `parent-id`"):
//! - the client's `traceparent`, when valid, keeps its trace id and sampled flag and gets the
//!   gateway's own new parent id; its `tracestate` goes on untouched;
//! - when it is absent or invalid (§ 3.2.2.3: not `00`, a zero or non-lowercase-hex id, a
//!   repeated header…), a new trace starts: random trace and parent ids, sampled (the access
//!   line records every request, so the gateway did record it); the client's `tracestate`
//!   is dropped (§ 3.3.1: it is only read with the `traceparent` it belongs to).
//!
//! A higher version than `00` is read by its `00` prefix and sent on as `00` (§ 3.2.4).
//! The header is formatted in a fixed buffer; its `HeaderValue` is the only allocation.

use http::{HeaderMap, HeaderName, HeaderValue};

/// `traceparent`.
pub const TRACEPARENT: HeaderName = crate::proxy::TRACEPARENT;

/// `00-` + 32 + `-` + 16 + `-` + 2.
const LEN: usize = 55;

/// A request's place in its trace, as the gateway passes it on.
#[derive(Debug, Clone)]
pub struct TraceContext {
    /// The `traceparent` sent upstream: the trace id and the gateway's own span.
    traceparent: HeaderValue,
    /// Whether the client's trace was continued (and its `tracestate` goes on).
    continued: bool,
}

impl TraceContext {
    /// The context of a request with `headers`: the client's trace continued when its
    /// `traceparent` is valid, else a new one; either way a new span id of the gateway's.
    pub fn take(headers: &HeaderMap) -> Self {
        let mut sent = headers.get_all(TRACEPARENT).iter();
        let parsed = match (sent.next(), sent.next()) {
            (Some(v), None) => parse(v.as_bytes()),
            _ => None,
        };
        let span = nonzero_u64();
        match parsed {
            Some((trace_id, flags)) => Self {
                traceparent: render(&trace_id, span, flags),
                continued: true,
            },
            None => {
                let mut trace_id = [0u8; 32];
                hex(&nonzero_u128().to_be_bytes(), &mut trace_id);
                Self {
                    traceparent: render(&trace_id, span, SAMPLED),
                    continued: false,
                }
            }
        }
    }

    /// The `traceparent` to send upstream.
    pub fn traceparent(&self) -> &HeaderValue {
        &self.traceparent
    }

    /// Whether the client's trace was continued, so its `tracestate` goes on with it.
    pub fn continued(&self) -> bool {
        self.continued
    }

    /// The 32 hex digits of the trace id, for the access line.
    pub fn trace_id(&self) -> &str {
        // Rendered from hex digits only (`render`), so always ASCII.
        self.traceparent.to_str().ok().and_then(|s| s.get(3..35)).unwrap_or("-")
    }
}

/// The `sampled` flag (§ 3.2.2.5).
const SAMPLED: u8 = 0x01;

/// The trace id (as lowercase hex) and the flags of a valid `traceparent` (§ 3.2.2).
fn parse(v: &[u8]) -> Option<([u8; 32], u8)> {
    if v.len() < LEN || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let version = unhex(&v[0..2])?;
    // Version 00 is exactly 55 bytes; a later one may add fields after a `-`; ff is invalid.
    match version {
        0x00 if v.len() == LEN => {}
        0xff | 0x00 => return None,
        _ if v.len() > LEN && v[LEN] != b'-' => return None,
        _ => {}
    }
    let trace_id = &v[3..35];
    let parent_id = &v[36..52];
    let flags = unhex(&v[53..55])?;
    if !is_lower_hex(trace_id) || !is_lower_hex(parent_id) {
        return None;
    }
    if trace_id.iter().all(|b| *b == b'0') || parent_id.iter().all(|b| *b == b'0') {
        return None;
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(trace_id);
    // Only the flag version 00 defines goes on: unknown bits are not ours to vouch for.
    Some((out, flags & SAMPLED))
}

/// `00-{trace_id}-{span}-{flags}` as a header value, formatted on the stack.
fn render(trace_id: &[u8; 32], span: u64, flags: u8) -> HeaderValue {
    let mut buf = [0u8; LEN];
    buf[..3].copy_from_slice(b"00-");
    buf[3..35].copy_from_slice(trace_id);
    buf[35] = b'-';
    hex(&span.to_be_bytes(), &mut buf[36..52]);
    buf[52] = b'-';
    hex(&[flags], &mut buf[53..55]);
    // Hex digits and dashes are always a valid header value.
    HeaderValue::from_bytes(&buf).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// `bytes` as lowercase hex into `out` (twice as long); request ids are made with it too.
pub(super) fn hex(bytes: &[u8], out: &mut [u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0xf)];
    }
}

/// Two lowercase hex digits as a byte.
fn unhex(two: &[u8]) -> Option<u8> {
    if !is_lower_hex(two) {
        return None;
    }
    let digit = |b: u8| if b.is_ascii_digit() { b - b'0' } else { b - b'a' + 10 };
    Some(digit(two[0]) << 4 | digit(two[1]))
}

/// Lowercase hex only (§ 3.2.2: `HEXDIGLC`; uppercase is invalid).
fn is_lower_hex(s: &[u8]) -> bool {
    s.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// A random id that is not all zeros (all zeros is invalid, § 3.2.2.3).
fn nonzero_u128() -> u128 {
    rand::random::<u128>().max(1)
}

fn nonzero_u64() -> u64 {
    rand::random::<u64>().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn with(values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(TRACEPARENT, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn a_valid_parent_keeps_its_trace_id_and_gets_a_new_span() {
        let t = TraceContext::take(&with(&[VALID]));
        assert!(t.continued());
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let v = t.traceparent().to_str().unwrap_or_default();
        assert_eq!(v.len(), LEN);
        assert!(v.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(v.ends_with("-01"));
        assert_ne!(&v[36..52], "00f067aa0ba902b7");
        assert!(parse(v.as_bytes()).is_some());
    }

    #[test]
    fn a_later_version_is_read_by_its_prefix() {
        let t = TraceContext::take(&with(&[
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-extra",
        ]));
        assert!(t.continued());
        assert!(t.traceparent().to_str().unwrap_or_default().starts_with("00-4bf9"));
        assert!(t.traceparent().to_str().unwrap_or_default().ends_with("-01"));
    }

    #[test]
    fn anything_invalid_starts_a_new_trace() {
        for bad in [
            &[][..],
            &["garbage"],
            &["01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x"],
            &["ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],
            &["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-"],
            &["00-00000000000000000000000000000000-00f067aa0ba902b7-01"],
            &["00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"],
            &["00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"],
            &["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g"],
            &[VALID, VALID],
        ] {
            let t = TraceContext::take(&with(bad));
            assert!(!t.continued(), "{bad:?}");
            assert_ne!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
            let v = t.traceparent().to_str().unwrap_or_default();
            assert!(parse(v.as_bytes()).is_some(), "{v}");
        }
    }
}
