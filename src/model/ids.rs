//! Identifier newtypes, cheap to clone and compare.

use std::fmt;
use std::sync::Arc;

/// The name or id of a configured entity (realm, resource server, protected resource).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(Arc<str>);

impl Name {
    /// Wraps a name.
    pub fn new(name: &str) -> Self {
        Self(Arc::from(name))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A resource indicator URI used as the `aud` claim (RFC 8707 § 2, RFC 9068 § 3).
///
/// Compared as an exact string (RFC 7519 § 4.1.3: case-sensitive).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Audience(Arc<str>);

impl Audience {
    /// Wraps an audience value.
    pub fn new(aud: &str) -> Self {
        Self(Arc::from(aud))
    }

    /// The audience as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Audience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
