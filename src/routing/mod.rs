//! Maps (host, method, path) to a protected resource. Pure: compiled once per snapshot,
//! no per-request allocation beyond path normalization, no regex. The host is validated by
//! [`host`], the path normalized by [`path`], before either is matched.
//!
//! Patterns: exact (`/health`), one segment (`/orders/*` or `/orders/{id}`), any depth
//! (`/orders/**`, as the last segment only; matches `/orders` too).
//!
//! Most specific wins:
//! 1. a resource naming the request's host beats one that names no host;
//! 2. then the path, compared segment by segment from the left: at the first position where
//!    two candidates differ, a literal segment beats a one-segment wildcard, which beats `**`;
//!    a pattern that ends exactly where the path ends beats a `**` that matches nothing;
//! 3. then a resource that lists the request's method beats one that allows any method.
//!
//! Two resources that would tie on all three are a configuration error.

pub mod host;
pub mod path;

use std::collections::HashMap;

use http::Method;
use thiserror::Error;

pub use host::{HostError, RequestHost, check_authority, host_name, request_host};
pub use path::{NormalizedPath, PathError, normalize};

/// One segment of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `*` or `{name}`: exactly one non-empty segment.
    One,
    /// `**`: zero or more segments; last only.
    Rest,
}

/// Why a path pattern was refused at load time.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PatternError {
    /// The pattern does not start with `/`.
    #[error("pattern must start with '/'")]
    NotAbsolute,
    /// `**` somewhere but last.
    #[error("'**' may only be the last segment")]
    RestNotLast,
    /// A `.` or `..` or empty segment, which a normalized path never has.
    #[error("pattern has an empty, '.' or '..' segment that no normalized path can match")]
    Unmatchable,
    /// A character the normalizer refuses or percent-encodes in paths (so no normalized path
    /// could match it), or a `*` inside a segment.
    #[error(
        "pattern segment {0:?} has a character normalized paths never carry raw (%, \\, ;, {{, }}, non-ASCII, or any other outside RFC 3986 pchar) or a '*' inside a segment"
    )]
    BadCharacter(String),
}

/// A route entry that a trie node holds.
#[derive(Debug, Clone)]
struct Entry {
    resource: usize,
    methods: Option<Vec<Method>>,
    pattern: String,
}

#[derive(Debug, Default, Clone)]
struct Node {
    literal: HashMap<Box<str>, Node>,
    one: Option<Box<Node>>,
    /// Patterns that end at this node.
    end: Vec<Entry>,
    /// `**` patterns whose prefix ends at this node.
    rest: Vec<Entry>,
}

/// Two resources that match the same requests with the same specificity.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("protected resources #{first} and #{second} both match {pattern:?} for the same host and methods")]
pub struct Overlap {
    /// Index of the resource added first.
    pub first: usize,
    /// Index of the resource that collided.
    pub second: usize,
    /// The pattern, as the second resource wrote it.
    pub pattern: String,
}

/// A compiled route table.
#[derive(Debug, Default, Clone)]
pub struct Router {
    by_host: HashMap<String, Node>,
    any_host: Node,
    routes: usize,
}

/// A route description for [`Router::insert`].
#[derive(Debug, Clone)]
pub struct Route<'a> {
    /// Index of the protected resource this route selects.
    pub resource: usize,
    /// Host, lowercase without port, or `None` for any.
    pub host: Option<&'a str>,
    /// Methods, or `None` for any.
    pub methods: Option<&'a [Method]>,
    /// The path pattern.
    pub pattern: &'a str,
}

impl Router {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of (resource, pattern) routes inserted.
    pub fn len(&self) -> usize {
        self.routes
    }

    /// Whether no route was inserted.
    pub fn is_empty(&self) -> bool {
        self.routes == 0
    }

    /// Checks a pattern without inserting it.
    pub fn check_pattern(pattern: &str) -> Result<(), PatternError> {
        parse_pattern(pattern).map(|_| ())
    }

    /// Adds a route. Fails on a bad pattern or on an overlap with an existing route.
    pub fn insert(&mut self, route: Route<'_>) -> Result<(), InsertError> {
        let segments = parse_pattern(route.pattern)?;
        let root = match route.host {
            Some(h) => self.by_host.entry(h.to_ascii_lowercase()).or_default(),
            None => &mut self.any_host,
        };
        let mut node = root;
        let mut is_rest = false;
        for seg in segments {
            node = match seg {
                Segment::Literal(s) => node.literal.entry(s.into_boxed_str()).or_default(),
                Segment::One => node.one.get_or_insert_with(Box::default),
                Segment::Rest => {
                    is_rest = true;
                    break;
                }
            };
        }
        let list = if is_rest { &mut node.rest } else { &mut node.end };
        for existing in list.iter() {
            if methods_overlap(existing.methods.as_deref(), route.methods) {
                return Err(InsertError::Overlap(Overlap {
                    first: existing.resource,
                    second: route.resource,
                    pattern: route.pattern.to_owned(),
                }));
            }
        }
        list.push(Entry {
            resource: route.resource,
            methods: route.methods.map(<[Method]>::to_vec),
            pattern: route.pattern.to_owned(),
        });
        // Entries that name methods come first so `pick` prefers them.
        list.sort_by_key(|e| e.methods.is_none());
        self.routes += 1;
        Ok(())
    }

    /// Finds the most specific resource for a request; `None` when nothing matches.
    pub fn find(&self, host: Option<&str>, method: &Method, path: &NormalizedPath) -> Option<Match<'_>> {
        if let Some(node) = host.and_then(|h| self.by_host.get(h))
            && let Some(e) = search(node, path, 0, method)
        {
            return Some(Match {
                resource: e.resource,
                pattern: &e.pattern,
            });
        }
        search(&self.any_host, path, 0, method).map(|e| Match {
            resource: e.resource,
            pattern: &e.pattern,
        })
    }
}

/// The result of a route lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match<'a> {
    /// Index of the protected resource.
    pub resource: usize,
    /// The pattern that matched, as configured.
    pub pattern: &'a str,
}

/// Why a route could not be added.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum InsertError {
    /// The pattern is malformed.
    #[error(transparent)]
    Pattern(#[from] PatternError),
    /// Another route already matches the same requests.
    #[error(transparent)]
    Overlap(#[from] Overlap),
}

/// A request both `winner` and `loser` match and `winner` gets, by the rules above: the
/// method, host (`None` for any) and path of one such request, or `None` when there is none
/// (they match no request in common, or `loser` wins every one of them). For warnings
/// about configurations, not for requests: it builds a table of its own.
pub fn takes_over(winner: &Route<'_>, loser: &Route<'_>) -> Option<(Method, Option<String>, String)> {
    let host = match (winner.host, loser.host) {
        (Some(a), Some(b)) if !a.eq_ignore_ascii_case(b) => return None,
        (a, b) => a.or(b).map(str::to_ascii_lowercase),
    };
    let method = match (winner.methods, loser.methods) {
        (None, None) => Method::GET,
        (Some(only), None) | (None, Some(only)) => only.first()?.clone(),
        (Some(a), Some(b)) => a.iter().find(|m| b.contains(m))?.clone(),
    };
    let path = common_path(
        &parse_pattern(winner.pattern).ok()?,
        &parse_pattern(loser.pattern).ok()?,
    )?;
    let mut table = Router::new();
    for (resource, route) in [(0, winner), (1, loser)] {
        table
            .insert(Route {
                resource,
                ..route.clone()
            })
            .ok()?;
    }
    let normalized = normalize(&path).ok()?;
    let found = table.find(host.as_deref(), &method, &normalized)?;
    (found.resource == 0).then_some((method, host, path))
}

/// A path both patterns match, if there is one: wildcards meet literals as the literal, two
/// one-segment wildcards as `x`, and `**` takes whatever the other pattern still has.
fn common_path(a: &[Segment], b: &[Segment]) -> Option<String> {
    fn rest(out: &mut String, tail: &[Segment]) {
        for seg in tail {
            match seg {
                Segment::Literal(s) => {
                    out.push('/');
                    out.push_str(s);
                }
                Segment::One => out.push_str("/x"),
                Segment::Rest => break,
            }
        }
    }
    let mut out = String::new();
    for i in 0.. {
        let seg = match (a.get(i), b.get(i)) {
            (None, None) => break,
            (Some(Segment::Rest), _) => {
                rest(&mut out, &b[i..]);
                break;
            }
            (_, Some(Segment::Rest)) => {
                rest(&mut out, &a[i..]);
                break;
            }
            (None, Some(_)) | (Some(_), None) => return None,
            (Some(Segment::Literal(x)), Some(Segment::Literal(y))) => (x == y).then_some(x.as_str())?,
            (Some(Segment::Literal(x)), Some(Segment::One)) | (Some(Segment::One), Some(Segment::Literal(x))) => {
                (!x.is_empty()).then_some(x.as_str())?
            }
            (Some(Segment::One), Some(Segment::One)) => "x",
        };
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() {
        out.push('/');
    }
    Some(out)
}

fn methods_overlap(a: Option<&[Method]>, b: Option<&[Method]>) -> bool {
    match (a, b) {
        (None, None) => true,
        // One names methods, the other does not: the named one is more specific, no tie.
        (None, Some(_)) | (Some(_), None) => false,
        (Some(a), Some(b)) => a.iter().any(|m| b.contains(m)),
    }
}

fn pick<'a>(entries: &'a [Entry], method: &Method) -> Option<&'a Entry> {
    entries.iter().find(|e| match &e.methods {
        Some(ms) => ms.contains(method),
        None => true,
    })
}

// Depth-first in priority order (literal, one, rest) yields the most specific match first;
// each node sits at one depth, so a lookup visits every node at most once.
fn search<'a>(node: &'a Node, path: &NormalizedPath, i: usize, method: &Method) -> Option<&'a Entry> {
    let Some(seg) = path.segment(i) else {
        return pick(&node.end, method).or_else(|| pick(&node.rest, method));
    };
    if let Some(child) = node.literal.get(seg)
        && let Some(e) = search(child, path, i + 1, method)
    {
        return Some(e);
    }
    if !seg.is_empty()
        && let Some(child) = &node.one
        && let Some(e) = search(child, path, i + 1, method)
    {
        return Some(e);
    }
    pick(&node.rest, method)
}

fn parse_pattern(pattern: &str) -> Result<Vec<Segment>, PatternError> {
    let Some(body) = pattern.strip_prefix('/') else {
        return Err(PatternError::NotAbsolute);
    };
    let raw: Vec<&str> = body.split('/').collect();
    let last = raw.len() - 1;
    let mut out = Vec::with_capacity(raw.len());
    for (i, seg) in raw.iter().enumerate() {
        let s = match *seg {
            "**" if i == last => Segment::Rest,
            "**" => return Err(PatternError::RestNotLast),
            "*" => Segment::One,
            s if s.len() > 2 && s.starts_with('{') && s.ends_with('}') => {
                let name = &s[1..s.len() - 1];
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    return Err(PatternError::BadCharacter(s.to_owned()));
                }
                Segment::One
            }
            // A trailing slash is a literal empty last segment, as in normalized paths.
            "" if i == last => Segment::Literal(String::new()),
            "" | "." | ".." => return Err(PatternError::Unmatchable),
            s => {
                if s.bytes().any(|b| b == b'*' || !path::is_raw_path_byte(b)) {
                    return Err(PatternError::BadCharacter(s.to_owned()));
                }
                Segment::Literal(s.to_owned())
            }
        };
        out.push(s);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (resource, host, methods, pattern)
    type Spec<'a> = (usize, Option<&'a str>, Option<&'a [Method]>, &'a str);

    fn router(routes: &[Spec<'_>]) -> Router {
        let mut r = Router::new();
        for &(resource, host, methods, pattern) in routes {
            r.insert(Route {
                resource,
                host,
                methods,
                pattern,
            })
            .unwrap_or_else(|e| panic!("{pattern}: {e}"));
        }
        r
    }

    fn find(r: &Router, host: Option<&str>, method: Method, p: &str) -> Option<usize> {
        let path = normalize(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        r.find(host, &method, &path).map(|m| m.resource)
    }

    #[test]
    fn specificity() {
        let r = router(&[
            (0, None, None, "/orders/**"),
            (1, None, None, "/orders/*"),
            (2, None, None, "/orders/admin"),
            (3, None, None, "/orders"),
            (4, None, None, "/**"),
            (5, None, None, "/orders/{id}/items"),
            (6, None, None, "/a/*/c"),
            (7, None, None, "/a/b/*"),
        ]);
        assert_eq!(find(&r, None, Method::GET, "/orders/admin"), Some(2));
        assert_eq!(find(&r, None, Method::GET, "/orders/7"), Some(1));
        assert_eq!(find(&r, None, Method::GET, "/orders/7/x"), Some(0));
        assert_eq!(find(&r, None, Method::GET, "/orders"), Some(3));
        assert_eq!(find(&r, None, Method::GET, "/orders/7/items"), Some(5));
        assert_eq!(find(&r, None, Method::GET, "/elsewhere"), Some(4));
        assert_eq!(find(&r, None, Method::GET, "/a/b/c"), Some(7));
        assert_eq!(find(&r, None, Method::GET, "/a/x/c"), Some(6));
        // Path confusion: the normalized path is what is matched.
        assert_eq!(find(&r, None, Method::GET, "/orders/x/../admin"), Some(2));
        assert_eq!(find(&r, None, Method::GET, "//orders//admin"), Some(2));
        assert_eq!(find(&r, None, Method::GET, "/orders/%61dmin"), Some(2));
    }

    #[test]
    fn rest_matches_zero_segments_but_exact_wins() {
        let r = router(&[(0, None, None, "/orders/**")]);
        assert_eq!(find(&r, None, Method::GET, "/orders"), Some(0));
        assert_eq!(find(&r, None, Method::GET, "/order"), None);
        assert_eq!(find(&r, None, Method::GET, "/ordersX"), None);
    }

    #[test]
    fn one_segment_wildcards_need_a_segment() {
        let r = router(&[(0, None, None, "/orders/*")]);
        assert_eq!(find(&r, None, Method::GET, "/orders/"), None);
        assert_eq!(find(&r, None, Method::GET, "/orders"), None);
        assert_eq!(find(&r, None, Method::GET, "/orders/1/2"), None);
    }

    #[test]
    fn hosts_and_methods() {
        let get: &[Method] = &[Method::GET];
        let post: &[Method] = &[Method::POST];
        let r = router(&[
            (0, None, None, "/x/**"),
            (1, Some("api.example.com"), None, "/x/**"),
            (2, None, Some(get), "/y"),
            (3, None, Some(post), "/y"),
            (4, None, None, "/y"),
        ]);
        assert_eq!(find(&r, Some("api.example.com"), Method::GET, "/x/1"), Some(1));
        assert_eq!(find(&r, Some("other"), Method::GET, "/x/1"), Some(0));
        assert_eq!(find(&r, None, Method::GET, "/y"), Some(2));
        assert_eq!(find(&r, None, Method::POST, "/y"), Some(3));
        assert_eq!(find(&r, None, Method::DELETE, "/y"), Some(4));
    }

    #[test]
    fn method_mismatch_falls_back_to_less_specific_path() {
        let get: &[Method] = &[Method::GET];
        let r = router(&[(0, None, Some(get), "/a/b"), (1, None, None, "/a/*")]);
        assert_eq!(find(&r, None, Method::POST, "/a/b"), Some(1));
        let r = router(&[(0, None, Some(get), "/a/b")]);
        assert_eq!(find(&r, None, Method::POST, "/a/b"), None);
    }

    #[test]
    fn overlaps_are_errors() {
        let mut r = router(&[(0, None, None, "/orders/{id}")]);
        let err = r.insert(Route {
            resource: 1,
            host: None,
            methods: None,
            pattern: "/orders/*",
        });
        assert!(matches!(err, Err(InsertError::Overlap(_))));
        let get: &[Method] = &[Method::GET, Method::PUT];
        let put: &[Method] = &[Method::PUT];
        r.insert(Route {
            resource: 2,
            host: None,
            methods: Some(get),
            pattern: "/p",
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let err = r.insert(Route {
            resource: 3,
            host: None,
            methods: Some(put),
            pattern: "/p",
        });
        assert!(matches!(err, Err(InsertError::Overlap(_))));
    }

    #[test]
    fn takeovers_find_a_request_the_winner_gets() {
        let route = |pattern, host, methods| Route {
            resource: 9,
            host,
            methods,
            pattern,
        };
        let get: &[Method] = &[Method::GET];
        let post: &[Method] = &[Method::POST];
        let took = |w: Route<'_>, l: Route<'_>| takes_over(&w, &l).map(|(m, h, p)| format!("{m} {h:?} {p}"));
        // More specific paths win where they meet.
        assert_eq!(
            took(route("/orders/health", None, None), route("/orders/**", None, None)).as_deref(),
            Some("GET None /orders/health")
        );
        assert_eq!(
            took(route("/orders/*", None, None), route("/orders/**", None, None)).as_deref(),
            Some("GET None /orders/x")
        );
        assert_eq!(
            took(route("/**", None, None), route("/a/*/c", None, None)),
            None,
            "the less specific never wins"
        );
        assert_eq!(took(route("/a/*/c", None, None), route("/a/b/**", None, None)), None);
        assert_eq!(
            took(route("/a/b/**", None, None), route("/a/*/c", None, None)).as_deref(),
            Some("GET None /a/b/c")
        );
        // `/x/**` matches `/x` and beats `/**` there.
        assert_eq!(
            took(route("/docs/**", None, None), route("/**", None, None)).as_deref(),
            Some("GET None /docs")
        );
        // Disjoint paths, hosts or methods: nothing in common.
        assert_eq!(took(route("/a", None, None), route("/b", None, None)), None);
        assert_eq!(took(route("/a/*", None, None), route("/a/", None, None)), None);
        assert_eq!(
            took(route("/a", Some("x.test"), None), route("/a", Some("y.test"), None)),
            None
        );
        assert_eq!(took(route("/a", None, Some(get)), route("/a", None, Some(post))), None);
        // A named host or method beats none on the same path.
        assert_eq!(
            took(route("/a", Some("X.test"), None), route("/a", None, None)).as_deref(),
            Some("GET Some(\"x.test\") /a")
        );
        assert_eq!(
            took(route("/a", None, Some(post)), route("/a", None, None)).as_deref(),
            Some("POST None /a")
        );
        assert_eq!(took(route("/a", None, None), route("/a", None, Some(post))), None);
        // Root patterns.
        assert_eq!(
            took(route("/", None, None), route("/**", None, None)).as_deref(),
            Some("GET None /")
        );
    }

    #[test]
    fn bad_patterns() {
        assert_eq!(Router::check_pattern("orders"), Err(PatternError::NotAbsolute));
        assert_eq!(Router::check_pattern("/**/x"), Err(PatternError::RestNotLast));
        assert_eq!(Router::check_pattern("/a//b"), Err(PatternError::Unmatchable));
        assert_eq!(Router::check_pattern("/a/../b"), Err(PatternError::Unmatchable));
        assert!(matches!(
            Router::check_pattern("/a%2f"),
            Err(PatternError::BadCharacter(_))
        ));
        assert!(matches!(
            Router::check_pattern("/a*"),
            Err(PatternError::BadCharacter(_))
        ));
        for bad in ["/a;b", "/café", "/a b", "/a|b", "/a\"b", "/a^b", "/a[0]", "/a\\b"] {
            assert!(
                matches!(Router::check_pattern(bad), Err(PatternError::BadCharacter(_))),
                "{bad}"
            );
        }
        assert!(Router::check_pattern("/a!$&'()+,=:@~-._b").is_ok());
        assert!(Router::check_pattern("/").is_ok());
        assert!(Router::check_pattern("/**").is_ok());
    }
}
