//! Request-path normalization: one canonical path that both the route matcher and the
//! upstream see, so no spelling of a path can reach what a stricter resource protects.
//!
//! The rules, in order (RFC 3986 § 6.2.2 and § 5.2.4, plus the refusals proxies learned the
//! hard way):
//! 1. the path must start with `/`;
//! 2. percent-encoded unreserved characters are decoded (`%2e` → `.`, `%7E` → `~`), every
//!    other escape is kept with uppercase hex;
//! 3. a byte a path may not carry raw (RFC 3986 § 3.3: anything but `pchar` and `/`) is
//!    percent-encoded once, uppercase: raw UTF-8 (`é` → `%C3%A9`), `"`, `{`, `|` and the
//!    like; so a raw byte and its escape are one path;
//! 4. an encoded `/` or `\` (`%2F`, `%5C`), a control character (raw or encoded), a raw
//!    `\`, a bad escape, or a `;` raw or encoded (`%3B`: path parameters, which
//!    Tomcat-style servers strip, after decoding or before) is refused;
//! 5. empty segments (`//`) are merged and `.` segments removed;
//! 6. `..` removes the previous segment; one that would climb above the root is refused.
//!
//! The result is a fixed point: normalizing a normalized path gives it back, so what the
//! matcher saw is what the upstream gets.

use thiserror::Error;

/// Why a request path was refused. Every variant is answered `400 Bad Request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
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
    /// A `;` or `%3B`, which some servers treat as the start of path parameters (some after
    /// decoding the path).
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
    if raw.as_bytes().first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    resolve_segments(&decode(raw)?)
}

/// Stage 1: decodes unreserved escapes, refusing the dangerous ones, and escapes what may not
/// stay raw.
#[inline]
fn decode(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut decoded = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        // The common case: a run of bytes that stay as they are (ASCII, so the run's ends are
        // char boundaries), copied at once.
        let run = bytes[i..]
            .iter()
            .position(|&b| !is_raw_path_byte(b))
            .unwrap_or(bytes.len() - i);
        if run > 0
            && let Some(s) = raw.get(i..i + run)
        {
            decoded.push_str(s);
            i += run;
            continue;
        }
        let b = bytes[i];
        match b {
            b'%' => {
                decode_escape(bytes.get(i + 1..i + 3), &mut decoded)?;
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            b';' => return Err(PathError::Semicolon),
            _ if b < 0x20 || b == 0x7f => return Err(PathError::ControlCharacter),
            _ if is_raw_path_byte(b) => {
                decoded.push(char::from(b));
                i += 1;
            }
            _ => {
                // Raw UTF-8 (HTTP parsers pass it through) and ASCII outside `pchar`: encoded
                // once, byte by byte, as their escapes would be kept.
                push_escape(&mut decoded, b);
                i += 1;
            }
        }
    }
    Ok(decoded)
}

/// One `%XX` escape (`hex` is the two bytes after `%`): unreserved characters are decoded,
/// separators, controls and `;` refused, everything else kept escaped (upper-case).
#[inline]
fn decode_escape(hex_digits: Option<&[u8]>, decoded: &mut String) -> Result<(), PathError> {
    let (Some(hi), Some(lo)) = (hex_digits.and_then(|h| hex(h[0])), hex_digits.and_then(|h| hex(h[1]))) else {
        return Err(PathError::BadEscape);
    };
    let v = hi << 4 | lo;
    if v == b'/' || v == b'\\' {
        return Err(PathError::EncodedSeparator);
    }
    if v < 0x20 || v == 0x7f {
        return Err(PathError::ControlCharacter);
    }
    // An upstream that decodes before it splits off path parameters sees `;`.
    if v == b';' {
        return Err(PathError::Semicolon);
    }
    if is_unreserved(v) {
        decoded.push(char::from(v));
    } else {
        push_escape(decoded, v);
    }
    Ok(())
}

/// Stage 2: segments, dropping empty and `.`, resolving `..`.
#[inline]
fn resolve_segments(decoded: &str) -> Result<NormalizedPath, PathError> {
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

/// Whether a path may carry `b` raw after normalization: RFC 3986 § 3.3 `pchar` (unreserved,
/// sub-delims, `:`, `@`) and `/`, but not `%` (escapes are rewritten) nor `;` (refused).
/// Every other byte is percent-encoded, so a pattern literal holding one never matches.
pub(crate) fn is_raw_path_byte(b: u8) -> bool {
    RAW_PATH_BYTES[usize::from(b)]
}

/// [`is_raw_path_byte`] as a table: the normalizer asks once per byte.
static RAW_PATH_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < t.len() {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b'='
                    | b':'
                    | b'@'
                    | b'/'
            );
        i += 1;
    }
    t
};

/// RFC 3986 § 2.3 `unreserved`: the characters whose escapes decode without changing meaning.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn push_escape(out: &mut String, b: u8) {
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0xf)]));
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
        // Bytes a path may not carry raw are encoded once, as their escapes are kept.
        assert_eq!(n("/orders/café").as_deref(), Ok("/orders/caf%C3%A9"));
        assert_eq!(n("/orders/caf%c3%a9").as_deref(), Ok("/orders/caf%C3%A9"));
        assert_eq!(n("/日本").as_deref(), Ok("/%E6%97%A5%E6%9C%AC"));
        assert_eq!(n("/a b").as_deref(), Ok("/a%20b"));
        assert_eq!(
            n("/{\"a\"}|^[]`<>").as_deref(),
            Ok("/%7B%22a%22%7D%7C%5E%5B%5D%60%3C%3E")
        );
        assert_eq!(n("/!$&'()*+,=:@").as_deref(), Ok("/!$&'()*+,=:@"));
    }

    /// Spellings of `path` an upstream may take for the same one: escapes in either case,
    /// each unreserved character escaped, `;` and its escape swapped, `.` and empty
    /// segments inserted.
    fn spellings(path: &str) -> Vec<String> {
        let mut out = vec![path.to_owned(), path.to_ascii_lowercase(), path.to_ascii_uppercase()];
        out.retain(|p| p.starts_with('/'));
        out.push(path.replace(';', "%3B"));
        out.push(path.replace(';', "%3b"));
        out.push(path.replace("%3B", ";").replace("%3b", ";"));
        out.push(path.replacen('/', "/./", 1));
        out.push(path.replacen('/', "//", 1));
        for (i, c) in path.char_indices() {
            if c.is_ascii() && is_unreserved(c as u8) {
                out.push(format!("{}%{:02X}{}", &path[..i], c as u32, &path[i + 1..]));
                out.push(format!("{}%{:02x}{}", &path[..i], c as u32, &path[i + 1..]));
            }
        }
        out
    }

    #[test]
    fn every_spelling_of_a_refused_path_is_refused() {
        let refused = [
            "/admin;x=1",
            "/admin%3Bx=1/y",
            "/items;/admin",
            "/a%2fb",
            "/a%5cb",
            "/a\\b",
            "/a%00b",
            "/a%7fb",
            "/a%1Fb",
            "/..",
            "/a/../../b",
            "/a%zz",
        ];
        for path in refused {
            assert!(normalize(path).is_err(), "{path}");
            for spelling in spellings(path) {
                assert!(normalize(&spelling).is_err(), "{path} spelled {spelling:?} passed");
            }
        }
        // Every byte: refused raw means refused escaped, in either case. (A raw `%` is a
        // broken escape, not a spelling of `%`; `%25` is its spelling, and is kept.)
        for b in 0u8..0x80 {
            let raw = format!("/a{}b", char::from(b));
            if b == b'%' || normalize(&raw).is_ok() {
                continue;
            }
            for escaped in [format!("/a%{b:02X}b"), format!("/a%{b:02x}b")] {
                assert!(normalize(&escaped).is_err(), "{raw:?} is refused but {escaped} passes");
            }
        }
    }

    #[test]
    fn normalized_paths_are_fixed_points() {
        let mut paths: Vec<String> = [
            "/",
            "/a/./b/../c//d/",
            "/%7euser/%41%62",
            "/orders/café/x",
            "/caf%c3%a9",
            "/a%20b%3ac",
            "/{\"json\"}|^",
            "/a/%2e%2E/b",
            "/%25/%2525",
        ]
        .iter()
        .map(|p| (*p).to_owned())
        .collect();
        paths.extend((0u8..0x80).map(|b| format!("/a{}b", char::from(b))));
        paths.extend((0u8..=0xff).map(|b| format!("/a%{b:02x}b")));
        for path in paths {
            let Ok(once) = normalize(&path) else { continue };
            let twice = normalize(once.as_str()).unwrap_or_else(|e| panic!("{path:?} → {once:?} → {e}"));
            assert_eq!(once, twice, "{path:?}");
            // Nothing the normalizer refuses survives into its output.
            let text = once.as_str();
            assert!(
                text.is_ascii() && !text.contains(';') && !text.contains('\\'),
                "{path:?} → {text}"
            );
            for bad in ["%2F", "%5C", "%3B", "%00"] {
                assert!(!text.contains(bad), "{path:?} → {text}");
            }
        }
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
        assert_eq!(n("/admin%3Bx=1"), Err(PathError::Semicolon));
        assert_eq!(n("/admin%3b/x"), Err(PathError::Semicolon));
        assert_eq!(n("/%3B"), Err(PathError::Semicolon));
        assert_eq!(n("/a\tb"), Err(PathError::ControlCharacter));
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
