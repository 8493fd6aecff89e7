//! Reading configuration: one TOML file, or every `*.toml` of a directory (sorted by name),
//! into the declared entities. Syntax errors name the file, the table they are in and the field.

use std::path::Path;

use super::declared::{Declared, Origin};
use super::error::ConfigErrors;
use super::raw::RawFile;
use crate::inputs::{Inputs, list_toml};

/// Reads `path` (a file or a directory of `*.toml` files), recording what it read in
/// `inputs`. Collects every error it can.
pub(super) fn read(path: &Path, inputs: &mut Inputs) -> (Declared, ConfigErrors) {
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
            Ok(text) => {
                // What could be read is declared, beside the errors of what could not: the
                // compiler's own errors about the rest are reported with them.
                let parsed = parse(&file, &text);
                errors.0.extend(parsed.errors);
                declared.unparsed.extend(parsed.unparsed);
                if let Some(raw) = parsed.raw {
                    declared.add(Origin::file(&file), raw);
                }
            }
            Err(e) => errors.push(&file, "file", None, format!("cannot read: {e}")),
        }
    }
    (declared, errors)
}

/// One file as far as it could be read.
struct Parsed {
    /// Its tables that could be read; `None` when it is not TOML at all.
    raw: Option<RawFile>,
    errors: Vec<super::ConfigError>,
    /// (table, id or name) of entries that could not be read.
    unparsed: Vec<(&'static str, String)>,
}

/// Parses one file's text. A syntax error stops the file; otherwise every table is read on
/// its own, so a wrong field in one does not hide a mistake in the next, and each error
/// names its table and field.
fn parse(file: &Path, text: &str) -> Parsed {
    let whole = match toml::from_str::<RawFile>(text) {
        Ok(raw) => {
            return Parsed {
                raw: Some(raw),
                errors: Vec::new(),
                unparsed: Vec::new(),
            };
        }
        Err(e) => e,
    };
    let Ok(table) = text.parse::<toml::Table>() else {
        return Parsed {
            raw: None,
            errors: vec![syntax_error(file, text, &whole)],
            unparsed: Vec::new(),
        };
    };
    let mut raw = RawFile::default();
    let mut errors = Vec::new();
    let mut unparsed = Vec::new();
    for (key, value) in table {
        // The id (or a realm's name) of every entry, so that one that cannot be read is still
        // known by it.
        if let Some((table, ids)) = entry_ids(&key, &value) {
            unparsed.extend(ids.into_iter().map(|id| (table, id)));
        }
        match key.as_str() {
            "server" => raw.server = entry(file, text, &key, None, value, &mut errors),
            "store" => raw.store = entry(file, text, &key, None, value, &mut errors),
            "realm" => raw.realm = entries(file, text, &key, value, &mut errors),
            "resource_server" => raw.resource_server = entries(file, text, &key, value, &mut errors),
            "protected_resource" => raw.protected_resource = entries(file, text, &key, value, &mut errors),
            "client" => raw.client = entries(file, text, &key, value, &mut errors),
            other => {
                let hint = super::suggest::did_you_mean(other, TABLES);
                errors.push(super::ConfigError {
                    file: file.to_path_buf(),
                    entity: "top level".into(),
                    field: Some(other.to_owned()),
                    message: match top_line(text, other) {
                        Some(line) => format!(
                            "unknown field `{other}`{hint}, expected one of {} (line {line})",
                            TABLES.join(", ")
                        ),
                        None => format!("unknown field `{other}`{hint}, expected one of {}", TABLES.join(", ")),
                    },
                });
            }
        }
    }
    if errors.is_empty() {
        // Whatever failed as a whole and not in parts: say it as the parser did.
        errors.push(syntax_error(file, text, &whole));
    }
    // Of the ids seen, only those of entries that were not read stay "unparsed".
    let read: std::collections::HashSet<(&'static str, String)> = raw
        .realm
        .iter()
        .filter_map(|r| r.name.clone().map(|n| ("realm", n)))
        .chain(
            raw.resource_server
                .iter()
                .filter_map(|r| r.id.clone().map(|n| ("resource_server", n))),
        )
        .collect();
    unparsed.retain(|k| !read.contains(k));
    Parsed {
        raw: Some(raw),
        errors,
        unparsed,
    }
}

/// The realm names or resource server ids written in `[[key]]` entries.
fn entry_ids(key: &str, value: &toml::Value) -> Option<(&'static str, Vec<String>)> {
    let (table, field) = match key {
        "realm" => ("realm", "name"),
        "resource_server" => ("resource_server", "id"),
        _ => return None,
    };
    let ids = value
        .as_array()?
        .iter()
        .filter_map(|v| v.get(field)?.as_str().map(str::to_owned))
        .collect();
    Some((table, ids))
}

/// The tables and arrays of tables a file may have.
const TABLES: [&str; 6] = [
    "server",
    "store",
    "realm",
    "resource_server",
    "protected_resource",
    "client",
];

/// Every `[[key]]` entry of `value`, each read on its own.
fn entries<T: serde::de::DeserializeOwned>(
    file: &Path,
    text: &str,
    key: &str,
    value: toml::Value,
    errors: &mut Vec<super::ConfigError>,
) -> Vec<T> {
    match value {
        toml::Value::Array(items) => items
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| entry(file, text, key, Some(i), item, errors))
            .collect(),
        other => {
            errors.push(super::ConfigError {
                file: file.to_path_buf(),
                entity: key.to_owned(),
                field: None,
                message: format!("must be written [[{key}]] (an array of tables), not {}", found(&other)),
            });
            Vec::new()
        }
    }
}

/// One table, `[key]` or the `index`th `[[key]]`: its value, or an error naming the field.
fn entry<T: serde::de::DeserializeOwned>(
    file: &Path,
    text: &str,
    key: &str,
    index: Option<usize>,
    value: toml::Value,
    errors: &mut Vec<super::ConfigError>,
) -> Option<T> {
    let entity = match index {
        Some(i) => format!("{key} #{}", i + 1),
        None => key.to_owned(),
    };
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => Some(v),
        Err(e) => {
            let path = e.path().to_string();
            // The deserializer appends "in `field`" on a line of its own: the field is said apart.
            let inner = e.into_inner().to_string();
            let inner = inner.lines().next().unwrap_or_default().to_owned();
            // `unknown field `x``: the path is the table; the field is in the message.
            let field = match inner.split('`').nth(1) {
                Some(f) if inner.starts_with("unknown field") || inner.starts_with("missing field") => {
                    if path == "." || path.is_empty() || path == f || path.ends_with(&format!(".{f}")) {
                        if path.ends_with(&format!(".{f}")) {
                            path.clone()
                        } else {
                            f.to_owned()
                        }
                    } else {
                        format!("{path}.{f}")
                    }
                }
                _ => path,
            };
            let field = Some(field).filter(|f| !f.is_empty() && f != ".");
            let top = field.as_deref().and_then(|f| f.split('.').next()).unwrap_or_default();
            let mut message = plain(&inner);
            if let Some(line) = line_of(text, key, index, top) {
                message = format!("{message} (line {line})");
            }
            errors.push(super::ConfigError {
                file: file.to_path_buf(),
                entity,
                field,
                message,
            });
            None
        }
    }
}

/// serde's words in the configuration's: `invalid type: string "404", expected u16` →
/// `expected a whole number, found the string "404"`.
fn plain(message: &str) -> String {
    let Some(rest) = message.strip_prefix("invalid type: ") else {
        return message.trim().to_owned();
    };
    let Some((found, expected)) = rest.split_once(", expected ") else {
        return message.trim().to_owned();
    };
    let expected = match expected.trim() {
        "u8" | "u16" | "u32" | "u64" | "usize" | "i32" | "i64" => "a whole number",
        "a boolean" | "bool" => "true or false",
        "a sequence" => "an array, e.g. [\"a\", \"b\"]",
        "a string" => "a string in quotes",
        e if e.starts_with("struct ") || e == "a map" => "a table",
        e => e,
    };
    let found = found
        .replacen("string ", "the string ", 1)
        .replacen("integer `", "the number `", 1)
        .replacen("boolean `", "`", 1)
        .replace("sequence", "an array")
        .replace(" map", " table");
    format!("expected {expected}, found {found}")
}

fn found(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::Table(_) => "a single table [..]",
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) | toml::Value::Float(_) => "a number",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "an array",
    }
}

/// The line of `field` in the `index`th `[[key]]` (or in `[key]`), found by reading the text
/// as written: the table's header, then the first `field =` before the next header.
fn line_of(text: &str, key: &str, index: Option<usize>, field: &str) -> Option<usize> {
    let header = match index {
        Some(_) => format!("[[{key}]]"),
        None => format!("[{key}]"),
    };
    let mut seen = 0usize;
    let mut inside = false;
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            let compact: String = t.chars().filter(|c| !c.is_whitespace()).collect();
            let is_ours = compact == header;
            if is_ours {
                inside = index.is_none_or(|i| seen == i);
                seen += 1;
                if inside && field.is_empty() {
                    return Some(n + 1);
                }
            } else if inside && !compact.starts_with(&format!("[{key}.")) && !compact.starts_with(&format!("[[{key}."))
            {
                inside = false;
            }
            continue;
        }
        if inside && !field.is_empty() && t.strip_prefix(field).is_some_and(|r| r.trim_start().starts_with('=')) {
            return Some(n + 1);
        }
    }
    None
}

/// The line of the top-level `key`: `key = …` before the first table, or its `[key]` header.
fn top_line(text: &str, key: &str) -> Option<usize> {
    let mut in_table = false;
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            in_table = true;
            let name = t.trim_start_matches('[').split(']').next().unwrap_or_default().trim();
            if name == key || name.starts_with(&format!("{key}.")) {
                return Some(n + 1);
            }
        } else if !in_table && t.strip_prefix(key).is_some_and(|r| r.trim_start().starts_with('=')) {
            return Some(n + 1);
        }
    }
    None
}

/// The parser's own error for a file that is not TOML, with the table it is in.
fn syntax_error(file: &Path, text: &str, e: &toml::de::Error) -> super::ConfigError {
    {
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
    }
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

    /// The one error of `text`.
    fn one(text: &str) -> super::super::ConfigError {
        let mut all = parse(Path::new("c.toml"), text).errors;
        assert_eq!(all.len(), 1, "{all:?}");
        all.remove(0)
    }

    #[test]
    fn unknown_field_names_file_entity_field() {
        let e = one("[[realm]]\nname = \"a\"\n\n[[realm]]\nname = \"b\"\nissur = \"x\"\n");
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
            assert_eq!(one(text).entity, entity, "{text:?}");
        }
    }

    #[test]
    fn a_wrong_type_names_its_field_in_the_configurations_words() {
        let e = one("[server]\nlisten = \"127.0.0.1:1\"\nunmatched_status = \"404\"\n");
        assert_eq!(e.entity, "server");
        assert_eq!(e.field.as_deref(), Some("unmatched_status"));
        assert_eq!(e.message, "expected a whole number, found the string \"404\" (line 3)");
    }

    #[test]
    fn every_table_in_error_is_reported_not_only_the_first() {
        let text = "[[realm]]\nname = \"a\"\nleeway = 5\n\n[[resource_server]]\nid = \"x\"\nscopes = \"read\"\n\n[[client]]\nclient_idd = \"c\"\n";
        let all = parse(Path::new("c.toml"), text).errors;
        let got: Vec<(&str, Option<&str>)> = all.iter().map(|e| (e.entity.as_str(), e.field.as_deref())).collect();
        assert_eq!(
            got,
            [
                ("client #1", Some("client_idd")),
                ("realm #1", Some("leeway")),
                ("resource_server #1", Some("scopes")),
            ]
        );
        assert!(all[2].message.starts_with("expected an array"), "{}", all[2].message);
    }
}
