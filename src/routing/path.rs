//! Request-path normalization: one canonical path that both the route matcher and the
//! upstream see, so no spelling of a path can reach what a stricter resource protects.
//!
//! The rules, in order (RFC 3986 § 6.2.2 and § 5.2.4, plus the refusals proxies learned the
//! hard way):
//! 1. the path must start with `/`;
//! 2. percent-encoded unreserved characters are decoded (`%2e` → `.`, `%7E` → `~`), every
//!    other escape is kept with uppercase hex;
//! 3. an encoded `/` or `\` (`%2F`, `%5C`), an encoded control character, a raw `\`, a bad
//!    escape, or a `;` (path parameters, which Tomcat-style servers strip) is refused;
//! 4. empty segments (`//`) are merged and `.` segments removed;
//! 5. `..` removes the previous segment; one that would climb above the root is refused.

use thiserror::Error;

/// Why a request path was refused. Every variant is answered `400 Bad Request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PathError {
    /// The path does not start with `/` (e.g. `*` or an absolute-form leftover).
    #[error("path does not start with '/'")]
    NotAbsolute,
    /// `%` not followed by two hex digits.
    #[error("malformed percent-escape")]
    BadEscape,
    /// `%2F` or `%5C`: an encoded separator upstreams may decode differently.
    #[error("encoded path separator")]
    EncodedSeparator,
    /// An encoded control character or NUL.
    #[error("encoded control character")]
    ControlCharacter,
    /// A raw backslash, which some servers treat as `/`.
    #[error("backslash in path")]
    Backslash,
    /// A `;`, which some servers treat as the start of path parameters.
    #[error("semicolon in path")]
    Semicolon,
    /// A `..` segment that climbs above the root.
    #[error("path climbs above the root")]
    AboveRoot,
    /// More segments than the bound allows.
    #[error("too many path segments")]
    TooDeep,
}

/// Most segments a path may have; bounds matcher work per request.
pub const MAX_SEGMENTS: usize = 128;

/// A normalized path: the text forwarded upstream and the segments the matcher walks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedPath {
    text: String,
    /// Byte ranges of each segment within `text` (after the leading `/`).
    segments: Vec<(usize, usize)>,
}

impl NormalizedPath {
    /// The normalized path, starting with `/`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The segments between slashes; a trailing slash yields a final empty segment.
    pub fn segments(&self) -> impl ExactSizeIterator<Item = &str> + Clone {
        self.segments.iter().map(|&(a, b)| &self.text[a..b])
    }

    /// Number of segments.
    pub fn len(&self) -> usize {
        self.segments.len()
    }

    /// Whether there are no segments (never true: `/` has one empty segment).
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// The segment at `i`.
    pub fn segment(&self, i: usize) -> Option<&str> {
        self.segments.get(i).map(|&(a, b)| &self.text[a..b])
    }
}

/// Normalizes `raw` (the path part of a request target, without query).
pub fn normalize(raw: &str) -> Result<NormalizedPath, PathError> {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    // Stage 1: decode unreserved escapes into `decoded`, refusing the dangerous ones.
    let mut decoded = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|c| hex(*c));
                let lo = bytes.get(i + 2).and_then(|c| hex(*c));
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(PathError::BadEscape);
                };
                let v = hi << 4 | lo;
                if v == b'/' || v == b'\\' {
                    return Err(PathError::EncodedSeparator);
                }
                if v < 0x20 || v == 0x7f {
                    return Err(PathError::ControlCharacter);
                }
                if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') {
                    decoded.push(char::from(v));
                } else {
                    decoded.push('%');
                    decoded.push(char::from(HEX[usize::from(hi)]));
                    decoded.push(char::from(HEX[usize::from(lo)]));
                }
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            b';' => return Err(PathError::Semicolon),
            _ if b < 0x20 || b == 0x7f => return Err(PathError::ControlCharacter),
            _ => {
                // Non-ASCII never appears in a parsed URI; copy the byte's char as is.
                decoded.push(char::from(b));
                i += 1;
            }
        }
    }
    // Stage 2: segments, dropping empty and `.`, resolving `..`.
    let trailing_slash = decoded.len() > 1 && decoded.ends_with('/');
    let mut stack: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if stack.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
            }
            s => stack.push(s),
        }
    }
    let dir_like = trailing_slash || decoded.ends_with("/.") || decoded.ends_with("/..");
    if stack.len() + 1 > MAX_SEGMENTS {
        return Err(PathError::TooDeep);
    }
    let mut text = String::with_capacity(decoded.len());
    let mut segments = Vec::with_capacity(stack.len() + 1);
    for s in &stack {
        text.push('/');
        let start = text.len();
        text.push_str(s);
        segments.push((start, text.len()));
    }
    if stack.is_empty() || dir_like {
        text.push('/');
        segments.push((text.len(), text.len()));
    }
    Ok(NormalizedPath { text, segments })
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(p: &str) -> Result<String, PathError> {
        normalize(p).map(|p| p.as_str().to_owned())
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(n("/").as_deref(), Ok("/"));
        assert_eq!(n("/a/b").as_deref(), Ok("/a/b"));
        assert_eq!(n("//a///b").as_deref(), Ok("/a/b"));
        assert_eq!(n("/a/./b").as_deref(), Ok("/a/b"));
        assert_eq!(n("/a/b/../c").as_deref(), Ok("/a/c"));
        assert_eq!(n("/a/%2e%2E/c").as_deref(), Ok("/c"));
        assert_eq!(n("/a/%2e/c").as_deref(), Ok("/a/c"));
        assert_eq!(n("/%7euser").as_deref(), Ok("/~user"));
        assert_eq!(n("/a%20b").as_deref(), Ok("/a%20b"));
        assert_eq!(n("/a%3ab").as_deref(), Ok("/a%3Ab"));
        assert_eq!(n("/a/").as_deref(), Ok("/a/"));
        assert_eq!(n("/a/b/..").as_deref(), Ok("/a/"));
        assert_eq!(n("/a/.").as_deref(), Ok("/a/"));
    }

    #[test]
    fn refusals() {
        assert_eq!(n("a"), Err(PathError::NotAbsolute));
        assert_eq!(n("*"), Err(PathError::NotAbsolute));
        assert_eq!(n("/a%2fb"), Err(PathError::EncodedSeparator));
        assert_eq!(n("/a%5Cb"), Err(PathError::EncodedSeparator));
        assert_eq!(n("/a\\b"), Err(PathError::Backslash));
        assert_eq!(n("/a%00"), Err(PathError::ControlCharacter));
        assert_eq!(n("/a%zz"), Err(PathError::BadEscape));
        assert_eq!(n("/a%2"), Err(PathError::BadEscape));
        assert_eq!(n("/admin;x=1"), Err(PathError::Semicolon));
        assert_eq!(n("/.."), Err(PathError::AboveRoot));
        assert_eq!(n("/a/../../b"), Err(PathError::AboveRoot));
        assert_eq!(n("/%2e%2e/x"), Err(PathError::AboveRoot));
        let deep = "/a".repeat(MAX_SEGMENTS + 1);
        assert_eq!(n(&deep), Err(PathError::TooDeep));
    }

    #[test]
    fn segments() {
        let p = normalize("/orders/12/").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.segments().collect::<Vec<_>>(), vec!["orders", "12", ""]);
        let root = normalize("/").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(root.segments().collect::<Vec<_>>(), vec![""]);
    }
}
