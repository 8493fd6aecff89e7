//! What compiles but is probably not meant, for `portcullis check`: an open resource
//! (`auth = "none"`) that takes over requests a protected resource would otherwise get.
//! Specificity decides between them as between any two resources, so this is no error; but
//! a more specific open path inside a protected tree is the one mistake that silently drops
//! a token check, so it is said out loud.

use std::fmt;
use std::path::PathBuf;

use http::Method;

use crate::model::{Auth, Name, ProtectedResource};
use crate::routing::{Route, takes_over};
use crate::snapshot::Snapshot;

/// A configuration that compiles but deserves a word.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Warning {
    /// An open resource wins requests a protected resource also matches.
    OpenTakesOver {
        /// The open resource, and where it is declared.
        open: (Name, PathBuf),
        /// The protected resource it takes requests from, and where it is declared.
        protected: (Name, PathBuf),
        /// One such request: method, host (`None` for any) and path.
        example: (Method, Option<String>, String),
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OpenTakesOver {
                open,
                protected,
                example: (method, host, path),
            } => write!(
                f,
                "open protected_resource {:?} ({}) takes over requests protected_resource {:?} ({}) would otherwise get, e.g. {method} {}{path}: they reach the upstream without a token",
                open.0.as_str(),
                open.1.display(),
                protected.0.as_str(),
                protected.1.display(),
                host.as_deref().map(|h| format!("host {h} ")).unwrap_or_default(),
            ),
        }
    }
}

/// Every warning about `snap`: for each open resource and each protected one, the first of
/// their patterns where the open one wins a request both match.
pub fn warnings(snap: &Snapshot) -> Vec<Warning> {
    let mut out = Vec::new();
    for o in snap.resources.iter().filter(|pr| pr.auth == Auth::None) {
        for p in snap.resources.iter().filter(|pr| pr.auth != Auth::None) {
            let example = o
                .paths
                .iter()
                .find_map(|op| p.paths.iter().find_map(|pp| takes_over(&route(o, op), &route(p, pp))));
            if let Some(example) = example {
                out.push(Warning::OpenTakesOver {
                    open: (o.id.clone(), o.source.clone()),
                    protected: (p.id.clone(), p.source.clone()),
                    example,
                });
            }
        }
    }
    out
}

/// The route of `pr`'s `pattern`.
fn route<'a>(pr: &'a ProtectedResource, pattern: &'a str) -> Route<'a> {
    Route {
        resource: 0,
        host: pr.host.as_deref(),
        methods: pr.methods.as_deref(),
        pattern,
    }
}
