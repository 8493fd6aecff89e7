//! OAuth scopes (RFC 6749 § 3.3) and the rule for checking them.

use std::fmt;
use std::sync::Arc;

/// One scope token: printable ASCII without space, `"` or `\` (RFC 6749 § 3.3 `scope-token`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(Arc<str>);

impl Scope {
    /// Parses a scope token, refusing characters RFC 6749 § 3.3 excludes.
    pub fn parse(s: &str) -> Option<Self> {
        let ok = !s.is_empty()
            && s.bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
        ok.then(|| Self(Arc::from(s)))
    }

    /// The scope as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An ordered set of scopes without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet(Vec<Scope>);

impl ScopeSet {
    /// Builds a set, dropping duplicates and keeping first-seen order.
    pub fn new(scopes: impl IntoIterator<Item = Scope>) -> Self {
        let mut v: Vec<Scope> = Vec::new();
        for s in scopes {
            if !v.contains(&s) {
                v.push(s);
            }
        }
        Self(v)
    }

    /// Whether the set holds `scope`.
    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s.as_str() == scope)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The scopes in order.
    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }

    /// Space-separated, as in the `scope` claim and the RFC 6750 `scope` attribute.
    pub fn to_space_separated(&self) -> String {
        let mut out = String::new();
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(s.as_str());
        }
        out
    }
}

/// Whether a protected resource needs all of its scopes or any one of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeMatch {
    /// Every listed scope must be granted (the default).
    #[default]
    All,
    /// At least one listed scope must be granted.
    Any,
}

impl ScopeMatch {
    /// The rule as the configuration writes it: `all` or `any`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Any => "any",
        }
    }

    /// Whether `granted` satisfies `required` under this rule. An empty requirement is met
    /// by any valid token.
    pub fn satisfied<'a>(self, required: &ScopeSet, mut granted: impl FnMut(&str) -> bool + 'a) -> bool {
        if required.is_empty() {
            return true;
        }
        match self {
            Self::All => required.iter().all(|s| granted(s.as_str())),
            Self::Any => required.iter().any(|s| granted(s.as_str())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &[&str]) -> ScopeSet {
        ScopeSet::new(s.iter().filter_map(|s| Scope::parse(s)))
    }

    #[test]
    fn scope_token_grammar() {
        assert!(Scope::parse("orders:read").is_some());
        assert!(Scope::parse("a b").is_none());
        assert!(Scope::parse("a\"b").is_none());
        assert!(Scope::parse("a\\b").is_none());
        assert!(Scope::parse("").is_none());
    }

    #[test]
    fn all_and_any() {
        let req = set(&["a", "b"]);
        let granted = ["a"];
        assert!(!ScopeMatch::All.satisfied(&req, |s| granted.contains(&s)));
        assert!(ScopeMatch::Any.satisfied(&req, |s| granted.contains(&s)));
        assert!(ScopeMatch::All.satisfied(&set(&[]), |_| false));
    }
}
