//! The compiler's toolbox: where errors are collected and files read, and the per-entity
//! reporter every entity compiler writes through, so each error names its file, entity and
//! field without repeating them at every call.
//!
//! Imports nothing from the entity compilers: they all sit above it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::de::IntoDeserializer;
use serde::de::value::StrDeserializer;

use super::error::ConfigErrors;
use super::raw::RawTime;
use crate::inputs::Inputs;
use crate::model::{Scope, ScopeSet, Validity};

/// What every compiler writes to: the errors found so far and the files read.
pub(super) struct Ctx<'e> {
    errors: &'e mut ConfigErrors,
    /// Every file read while compiling goes through [`Ctx::read`], so the running
    /// configuration knows its inputs (watching, byte-identical reloads skipped).
    inputs: &'e mut Inputs,
    /// Entities already in error, by kind and id or name: a reference to one is not
    /// reported again ([`Entity::in_error`]), so one mistake is one error.
    in_error: std::collections::HashSet<(&'static str, String)>,
}

impl<'e> Ctx<'e> {
    /// A context collecting into `errors` and recording reads in `inputs`.
    pub(super) fn new(errors: &'e mut ConfigErrors, inputs: &'e mut Inputs) -> Self {
        Self {
            errors,
            inputs,
            in_error: std::collections::HashSet::new(),
        }
    }

    /// Records that entity `kind` `id` is in error (its own error said why).
    pub(super) fn mark_in_error(&mut self, kind: &'static str, id: &str) {
        self.in_error.insert((kind, id.to_owned()));
    }

    /// The reporter for entity `name` (`realm "demo"`, `resource_server #2`) of `file`,
    /// whose relative paths resolve against `dir`.
    pub(super) fn entity<'c>(&'c mut self, file: &'c Path, dir: &'c Path, name: &'c str) -> Entity<'c, 'e> {
        Entity {
            c: self,
            file,
            dir,
            name,
        }
    }

    /// An error about a whole file or configuration, with no field.
    pub(super) fn whole(&mut self, file: &Path, entity: &str, msg: impl Into<String>) {
        self.errors.push(file, entity, None, msg);
    }

    /// Whether no error was found so far.
    pub(super) fn clean(&self) -> bool {
        self.errors.is_empty()
    }

    /// Reads a file the configuration names.
    pub(super) fn read(&mut self, path: &Path) -> std::io::Result<Vec<u8>> {
        self.inputs.read(path)
    }
}

/// The reporter of one entity: errors name its file, itself and the field.
pub(super) struct Entity<'c, 'e> {
    c: &'c mut Ctx<'e>,
    file: &'c Path,
    dir: &'c Path,
    name: &'c str,
}

impl Entity<'_, '_> {
    /// Whether entity `kind` `id` is in error already: a reference to it is then no error
    /// of this entity's.
    pub(super) fn in_error(&self, kind: &'static str, id: &str) -> bool {
        self.c.in_error.contains(&(kind, id.to_owned()))
    }

    /// The file the entity is defined in.
    pub(super) fn file(&self) -> &Path {
        self.file
    }

    /// An error on `field`.
    pub(super) fn err(&mut self, field: &str, msg: impl Into<String>) {
        self.c.errors.push(self.file, self.name, Some(field), msg);
    }

    /// Reads a file the entity names (recorded as an input).
    pub(super) fn read(&mut self, path: &Path) -> std::io::Result<Vec<u8>> {
        self.c.read(path)
    }

    /// A path as written in the entity: relative paths resolve against its file's directory.
    pub(super) fn resolve(&self, p: &str) -> PathBuf {
        resolve(self.dir, p)
    }

    /// A required, non-blank string field.
    pub(super) fn required<'v>(&mut self, field: &str, v: &'v Option<String>) -> Option<&'v str> {
        match v.as_deref().map(str::trim) {
            Some(s) if !s.is_empty() => Some(s),
            Some(_) => {
                self.err(field, "must not be empty");
                None
            }
            None => {
                self.err(field, "is required");
                None
            }
        }
    }

    /// An optional string field that, when present, must not be blank.
    pub(super) fn non_empty<'v>(&mut self, field: &str, v: &'v Option<String>) -> Option<&'v str> {
        match v.as_deref().map(str::trim) {
            Some("") => {
                self.err(field, "must not be empty");
                None
            }
            other => other,
        }
    }

    /// One of an enum's snake_case names (serde matches it): its default when absent,
    /// `None` (reported, listing the accepted names) when it is none of them.
    pub(super) fn choice<T: DeserializeOwned + Default>(&mut self, field: &str, v: &Option<String>) -> Option<T> {
        let Some(text) = v.as_deref() else {
            return Some(T::default());
        };
        let de: StrDeserializer<'_, serde::de::value::Error> = text.into_deserializer();
        match T::deserialize(de) {
            Ok(t) => Some(t),
            Err(why) => {
                self.err(field, format!("{text:?}: {why}"));
                None
            }
        }
    }

    /// A duration field (`"90s"`, `"5m"`), `default` when absent or wrong.
    pub(super) fn duration(&mut self, field: &str, v: &Option<String>, default: Duration) -> Duration {
        match v {
            None => default,
            Some(text) => match super::parse_duration(text) {
                Ok(d) => d,
                Err(e) => {
                    self.err(field, e);
                    default
                }
            },
        }
    }

    /// A duration field in whole seconds, `None` when absent or wrong.
    pub(super) fn seconds(&mut self, field: &str, v: &Option<String>) -> Option<i64> {
        let text = v.as_ref()?;
        match super::parse_duration(text) {
            Ok(d) => Some(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
            Err(e) => {
                self.err(field, e);
                None
            }
        }
    }

    /// An RFC 3339 time field, in Unix seconds.
    pub(super) fn time(&mut self, field: &str, v: &Option<RawTime>) -> Option<i64> {
        let text = match v.as_ref()? {
            RawTime::Text(s) => s.clone(),
            RawTime::Toml(d) => d.to_string(),
        };
        match humantime::parse_rfc3339_weak(&text) {
            Ok(t) => t
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .and_then(|d| i64::try_from(d.as_secs()).ok()),
            Err(e) => {
                self.err(field, format!("{text:?} is not an RFC 3339 time: {e}"));
                None
            }
        }
    }

    /// `valid_from` and `disabled_on`; the second must come after the first.
    pub(super) fn validity(&mut self, from: &Option<RawTime>, off: &Option<RawTime>) -> Validity {
        let v = Validity {
            valid_from: self.time("valid_from", from),
            disabled_on: self.time("disabled_on", off),
        };
        if let (Some(a), Some(b)) = (v.valid_from, v.disabled_on)
            && b <= a
        {
            self.err("disabled_on", "is not after valid_from");
        }
        v
    }

    /// A list of scope tokens (RFC 6749 § 3.3).
    pub(super) fn scopes(&mut self, field: &str, v: &Option<Vec<String>>) -> ScopeSet {
        let mut out = Vec::new();
        for s in v.iter().flatten() {
            match Scope::parse(s) {
                Some(sc) => out.push(sc),
                None => self.err(field, format!("{s:?} is not a scope token (RFC 6749 § 3.3)")),
            }
        }
        ScopeSet::new(out)
    }
}

/// `p` against `dir` unless absolute.
pub(super) fn resolve(dir: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() { p.to_path_buf() } else { dir.join(p) }
}

/// An entity's label for messages: `kind "id"`, or `kind #n` (1-based) without an id.
pub(super) fn label(kind: &str, id: &Option<String>, index: usize) -> String {
    match id.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(id) => format!("{kind} {id:?}"),
        None => format!("{kind} #{}", index + 1),
    }
}

/// A client id is printable ASCII 0x21–0x7E, no space (RFC 6749 § A.1).
pub(super) fn is_client_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// A name usable in `WWW-Authenticate: Bearer realm="…"` and in logs.
pub(super) fn is_simple_name(s: &str) -> bool {
    s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\')
}
