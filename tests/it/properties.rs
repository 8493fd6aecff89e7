//! Property tests (proptest): the path normalizer's promises over generated paths, and the
//! router's choice against a reference model of the specificity rules, over generated route
//! tables and requests.

use http::Method;
use portcullis::routing::{NormalizedPath, Route, Router, normalize};
use proptest::prelude::*;
use proptest::sample::Index;

// ---------------------------------------------------------------------------------------
// The path normalizer
// ---------------------------------------------------------------------------------------

/// Pieces a path is built from: plain names, dot segments raw and escaped, escapes of
/// every kind the normalizer treats apart, and the bytes it refuses.
const PIECES: &[&str] = &[
    "a",
    "b",
    "Zz9",
    "~u",
    "-_",
    ".",
    "..",
    "",
    "%2e",
    "%2E",
    "%2e%2E",
    "%41",
    "%7e",
    "%20",
    "%25",
    "%3a",
    "%2f",
    "%2F",
    "%5c",
    "%3b",
    "%3B",
    ";",
    "\\",
    "%",
    "%zz",
    "%4",
    "%00",
    "%1f",
    "%7F",
    "\t",
    "é",
    " ",
    "!$&'()*+,=:@",
    "{x}",
    "|",
    "?",
];

/// A request path: pieces joined by `/` (sometimes twice), usually with a leading `/`.
fn raw_path() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => proptest::sample::select(PIECES).prop_map(str::to_owned),
        1 => "[a-zA-Z0-9._~%-]{0,4}",
    ];
    let separator = prop_oneof![6 => Just("/"), 1 => Just("//")];
    (
        prop::bool::weighted(0.95),
        prop::collection::vec((separator, piece), 0..8),
        prop::bool::ANY,
    )
        .prop_map(|(absolute, parts, trailing)| {
            let mut path = String::new();
            for (i, (sep, piece)) in parts.iter().enumerate() {
                if i > 0 || absolute {
                    path.push_str(sep);
                }
                path.push_str(piece);
            }
            if trailing || (absolute && path.is_empty()) {
                path.push('/');
            }
            path
        })
}

/// RFC 3986 § 2.3 `unreserved`.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Byte offsets of the unreserved characters of `path` that are not inside an escape.
fn unreserved_positions(path: &str) -> Vec<usize> {
    let bytes = path.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let escape = bytes
            .get(i..i + 3)
            .is_some_and(|e| e[0] == b'%' && e[1].is_ascii_hexdigit() && e[2].is_ascii_hexdigit());
        if escape {
            i += 3;
            continue;
        }
        if is_unreserved(bytes[i]) {
            out.push(i);
        }
        i += 1;
    }
    out
}

/// `path` with the unreserved character at byte `at` written as its escape.
fn escape_at(path: &str, at: usize, lowercase: bool) -> String {
    let b = path.as_bytes()[at];
    let escape = if lowercase {
        format!("%{b:02x}")
    } else {
        format!("%{b:02X}")
    };
    format!("{}{escape}{}", &path[..at], &path[at + 1..])
}

fn check_normal_form(raw: &str, normalized: &NormalizedPath) -> Result<(), TestCaseError> {
    let text = normalized.as_str();
    prop_assert!(text.starts_with('/'), "{raw:?} → {text:?}");
    prop_assert!(!text.contains("//"), "{raw:?} → {text:?}");
    let segments: Vec<&str> = normalized.segments().collect();
    let last = segments.len() - 1;
    for (i, segment) in segments.iter().enumerate() {
        prop_assert!(*segment != "." && *segment != "..", "{raw:?} → {text:?}");
        prop_assert!(i == last || !segment.is_empty(), "{raw:?} → {text:?}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Normalizing a normalized path gives it back, and it has no dot or empty segment.
    #[test]
    fn normalized_paths_are_fixed_points_without_dot_segments(raw in raw_path()) {
        if let Ok(once) = normalize(&raw) {
            check_normal_form(&raw, &once)?;
            prop_assert_eq!(normalize(once.as_str()), Ok(once.clone()), "{:?}", raw);
        }
    }

    /// Escaping an unreserved character spells the same path: a refused path stays refused
    /// (for the same reason) and an accepted one normalizes to the same text.
    #[test]
    fn escaping_unreserved_characters_changes_nothing(
        raw in raw_path(),
        pick in any::<Index>(),
        lowercase in any::<bool>(),
    ) {
        let positions = unreserved_positions(&raw);
        prop_assume!(!positions.is_empty());
        let respelled = escape_at(&raw, positions[pick.index(positions.len())], lowercase);
        prop_assert_eq!(normalize(&respelled), normalize(&raw), "{:?} spelled {:?}", raw, respelled);
    }

    /// The same with every unreserved character escaped at once.
    #[test]
    fn escaping_every_unreserved_character_changes_nothing(raw in raw_path()) {
        let mut respelled = raw.clone();
        for at in unreserved_positions(&raw).into_iter().rev() {
            respelled = escape_at(&respelled, at, at % 2 == 0);
        }
        prop_assert_eq!(normalize(&respelled), normalize(&raw), "{:?} spelled {:?}", raw, respelled);
    }
}

// ---------------------------------------------------------------------------------------
// Routing specificity against a reference model
// ---------------------------------------------------------------------------------------

/// A pattern segment of the model.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Literal(&'static str),
    /// `*` or `{id}` (`braces` says which spelling the pattern uses).
    One {
        braces: bool,
    },
    Rest,
}

/// A route of the model.
#[derive(Debug, Clone)]
struct Spec {
    host: Option<&'static str>,
    methods: Option<Vec<Method>>,
    segments: Vec<Seg>,
}

impl Spec {
    fn pattern(&self) -> String {
        let parts: Vec<&str> = self
            .segments
            .iter()
            .map(|s| match s {
                Seg::Literal(l) => *l,
                Seg::One { braces: true } => "{id}",
                Seg::One { braces: false } => "*",
                Seg::Rest => "**",
            })
            .collect();
        format!("/{}", parts.join("/"))
    }

    /// Two patterns with the same shape match the same paths (`*` and `{id}` are one).
    fn shape(&self) -> Vec<Seg> {
        self.segments
            .iter()
            .map(|s| match s {
                Seg::One { .. } => Seg::One { braces: false },
                other => other.clone(),
            })
            .collect()
    }

    /// How specifically the pattern matches `path`, smaller being more specific; `None`
    /// when it does not match. Position by position from the left: a literal (0) beats a
    /// one-segment wildcard (1), which beats `**` (2); at the path's end, a pattern ending
    /// there (0) beats a `**` matching nothing (2).
    fn path_rank(&self, path: &[&str]) -> Option<Vec<u8>> {
        let mut rank = Vec::with_capacity(path.len() + 1);
        for (i, seg) in self.segments.iter().enumerate() {
            match seg {
                Seg::Rest => {
                    rank.push(2);
                    return Some(rank);
                }
                Seg::Literal(l) => {
                    if path.get(i)? != l {
                        return None;
                    }
                    rank.push(0);
                }
                Seg::One { .. } => {
                    if path.get(i)?.is_empty() {
                        return None;
                    }
                    rank.push(1);
                }
            }
        }
        (self.segments.len() == path.len()).then(|| {
            rank.push(0);
            rank
        })
    }

    /// The model's full ranking for a request, or `None` when the route does not apply:
    /// a named host first, then the path, then a method list.
    fn rank(&self, host: Option<&str>, method: &Method, path: &[&str]) -> Option<(bool, Vec<u8>, bool)> {
        if self.host.is_some() && self.host != host {
            return None;
        }
        if self.methods.as_ref().is_some_and(|ms| !ms.contains(method)) {
            return None;
        }
        Some((self.host.is_none(), self.path_rank(path)?, self.methods.is_none()))
    }

    /// Whether the router must refuse `self` beside `other`: same host and shape, and
    /// methods that tie (both any, or a method in common).
    fn ties_with(&self, other: &Self) -> bool {
        let methods_tie = match (&self.methods, &other.methods) {
            (None, None) => true,
            (Some(a), Some(b)) => a.iter().any(|m| b.contains(m)),
            _ => false,
        };
        self.host == other.host && self.shape() == other.shape() && methods_tie
    }
}

fn spec() -> impl Strategy<Value = Spec> {
    let host = prop_oneof![Just(None), Just(Some("a.test")), Just(Some("b.test"))];
    let methods = prop_oneof![
        2 => Just(None),
        1 => Just(Some(vec![Method::GET])),
        1 => Just(Some(vec![Method::POST])),
        1 => Just(Some(vec![Method::GET, Method::POST])),
        1 => Just(Some(vec![Method::DELETE])),
    ];
    let body = prop_oneof![
        Just(Seg::Literal("a")),
        Just(Seg::Literal("b")),
        any::<bool>().prop_map(|braces| Seg::One { braces }),
    ];
    // The last segment: none, `**`, or the empty literal of a trailing slash.
    let tail = prop_oneof![Just(None), Just(Some(Seg::Rest)), Just(Some(Seg::Literal("")))];
    (host, methods, prop::collection::vec(body, 0..4), tail).prop_map(|(host, methods, mut segments, tail)| {
        match tail {
            Some(t) => segments.push(t),
            // `/` is the empty literal alone.
            None if segments.is_empty() => segments.push(Seg::Literal("")),
            None => {}
        }
        Spec {
            host,
            methods,
            segments,
        }
    })
}

fn request() -> impl Strategy<Value = (Option<&'static str>, Method, String)> {
    let host = prop_oneof![
        Just(None),
        Just(Some("a.test")),
        Just(Some("b.test")),
        Just(Some("c.test"))
    ];
    let method = prop_oneof![
        Just(Method::GET),
        Just(Method::POST),
        Just(Method::DELETE),
        Just(Method::PUT)
    ];
    let segment = prop_oneof![Just("a"), Just("b"), Just("c")];
    let path = (prop::collection::vec(segment, 0..5), any::<bool>()).prop_map(|(segments, trailing)| {
        let mut path = format!("/{}", segments.join("/"));
        if trailing && !segments.is_empty() {
            path.push('/');
        }
        path
    });
    (host, method, path)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The router refuses exactly the routes that tie with one it holds, and for every
    /// request picks the route the model ranks first (and the model never sees a tie).
    #[test]
    fn the_router_picks_what_the_specificity_model_picks(
        specs in prop::collection::vec(spec(), 1..12),
        requests in prop::collection::vec(request(), 1..16),
    ) {
        let mut router = Router::new();
        let mut held: Vec<(usize, &Spec)> = Vec::new();
        for (resource, spec) in specs.iter().enumerate() {
            let pattern = spec.pattern();
            let inserted = router.insert(Route {
                resource,
                host: spec.host,
                methods: spec.methods.as_deref(),
                pattern: &pattern,
            });
            let ties = held.iter().any(|(_, h)| spec.ties_with(h));
            prop_assert_eq!(inserted.is_err(), ties, "{} {:?}: {:?}", pattern, spec, inserted);
            if inserted.is_ok() {
                held.push((resource, spec));
            }
        }
        for (host, method, raw) in &requests {
            let path = normalize(raw).map_err(|e| TestCaseError::fail(format!("{raw}: {e}")))?;
            let segments: Vec<&str> = path.segments().collect();
            let mut ranked: Vec<_> = held
                .iter()
                .filter_map(|(resource, spec)| Some((spec.rank(*host, method, &segments)?, *resource)))
                .collect();
            ranked.sort();
            if let [(first, _), (second, _), ..] = ranked.as_slice() {
                prop_assert_ne!(first, second, "the model ties for {:?} {} {}", host, method, raw);
            }
            let expected = ranked.first().map(|(_, resource)| *resource);
            let found = router.find(*host, method, &path).map(|m| m.resource);
            prop_assert_eq!(found, expected, "{:?} {} {}: ranked {:?}", host, method, raw, ranked);
        }
    }
}
