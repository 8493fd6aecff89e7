//! Reading configuration: one TOML file, or every `*.toml` of a directory (sorted by name),
//! into the declared entities. Syntax errors name the file, the table they are in and the field.

use std::path::Path;

use super::declared::{Declared, Origin};
use super::error::ConfigErrors;
use super::raw::RawFile;
use crate::inputs::{Inputs, list_toml};

/// Reads `path` (a file or a directory of `*.toml` files), recording what it read in
/// `inputs`. Collects every error it can.
pub(super) fn read(path: &Path, inputs: &mut Inputs) -> Result<Declared, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let files = if path.is_dir() {
        match list_toml(path) {
            Ok(v) => {
                inputs.listed(path, &v);
                if v.is_empty() {
                    errors.push(path, "directory", None, "holds no *.toml file");
                }
                v
            }
            Err(e) => {
                errors.push(path, "directory", None, format!("cannot read: {e}"));
                Vec::new()
            }
        }
    } else {
        vec![path.to_path_buf()]
    };
    let mut declared = Declared::default();
    for file in files {
        match inputs
            .read(&file)
            .and_then(|b| String::from_utf8(b).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
        {
            Ok(text) => match parse(&file, &text) {
                Ok(raw) => declared.add(Origin::file(&file), raw),
                Err(e) => errors.0.push(e),
            },
            Err(e) => errors.push(&file, "file", None, format!("cannot read: {e}")),
        }
    }
    if errors.is_empty() { Ok(declared) } else { Err(errors) }
}

/// Parses one file's text.
fn parse(file: &Path, text: &str) -> Result<RawFile, super::ConfigError> {
    toml::from_str::<RawFile>(text).map_err(|e| {
        let (entity, line) = match e.span() {
            Some(span) => locate(text, span.start),
            None => ("file".to_owned(), None),
        };
        let field = e
            .message()
            .split('`')
            .nth(1)
            .filter(|_| e.message().starts_with("unknown field") || e.message().starts_with("missing field"))
            .map(str::to_owned);
        let mut message = e.message().trim().to_owned();
        if let Some(line) = line {
            message = format!("{message} (line {line})");
        }
        super::ConfigError {
            file: file.to_path_buf(),
            entity,
            field,
            message,
        }
    })
}

/// Names the table that byte `offset` is in: `realm #2`, `server`, ...
fn locate(text: &str, offset: usize) -> (String, Option<usize>) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let mut counts: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut current = "top level".to_owned();
    for l in before.lines() {
        let t = l.trim();
        // A header without a name (`[`, `[[ ]]`) is the syntax error itself, not an entity:
        // the error stays with the table before it.
        if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim().to_owned();
            if name.is_empty() {
                continue;
            }
            let n = counts.entry(name.clone()).or_insert(0);
            *n += 1;
            current = format!("{name} #{n}");
        } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            let name = name.trim();
            if name.is_empty() {
                continue;
            }
            // A sub-table of an array entry (e.g. [resource_server.claim_headers]) stays in it.
            if !name.contains('.') {
                current = name.to_owned();
            }
        }
    }
    (current, Some(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_names_file_entity_field() {
        let text = "[[realm]]\nname = \"a\"\n\n[[realm]]\nname = \"b\"\nissur = \"x\"\n";
        let e = parse(Path::new("c.toml"), text)
            .err()
            .unwrap_or_else(|| panic!("should fail"));
        assert_eq!(e.entity, "realm #2");
        assert_eq!(e.field.as_deref(), Some("issur"));
        assert!(e.message.contains("line 6"), "{}", e.message);
    }

    #[test]
    fn a_header_without_a_name_leaves_the_error_in_the_table_before_it() {
        for (text, entity) in [
            ("[[realm]]\nname = \"r\"\n[\nname =\n", "realm #1"),
            ("[\nname =\n", "top level"),
            ("[server]\n[[ ]]\n", "server"),
        ] {
            let e = parse(Path::new("c.toml"), text)
                .err()
                .unwrap_or_else(|| panic!("{text:?} should fail"));
            assert_eq!(e.entity, entity, "{text:?}: {e}");
        }
    }
}
