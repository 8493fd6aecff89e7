//! Configuration: raw TOML (serde) → compiled, validated [`Snapshot`](crate::snapshot::Snapshot).
//!
//! Two stages, as in ripgrep: `raw` mirrors the files and refuses unknown keys, and every
//! source's entities are gathered as the `declared` set; `compile` checks every validation rule and produces the immutable snapshot, or every error it
//! found, each naming file, entity and field. A bad configuration never replaces a good one.

pub(crate) mod catalog;
mod client;
mod compile;
mod cors;
mod decision;
mod declared;
mod encryption;
mod error;
mod introspection;
mod jwks;
mod limits;
mod load;
pub mod management;
mod raw;
mod realm;
mod report;
mod resource;
mod resource_server;
mod settings;
mod suggest;
mod tls;
mod warnings;
mod watch;

use std::path::Path;

pub use compile::{CompileContext, Env, process_env};
pub use error::{ConfigError, ConfigErrors};
pub(crate) use raw::{RawClient, RawProtectedResource, RawResourceServer};
pub use warnings::{Warning, warnings};
pub use watch::ConfigWatch;

use crate::inputs::Inputs;
use crate::snapshot::Snapshot;

/// Reads and compiles the configuration at `path` (a file or a directory).
pub fn load(path: &Path, cx: &CompileContext<'_>) -> Result<Snapshot, ConfigErrors> {
    let mut inputs = Inputs::default();
    let (mut declared, mut errors) = load::read(path, &mut inputs);
    if let Err(e) = declared.add_managed(cx.managed) {
        errors.0.extend(e.0);
    }
    // What could be read is compiled even beside errors: every independent mistake is
    // reported in one go.
    match compile::compile(&declared, cx, &mut inputs) {
        Ok(mut snap) if errors.is_empty() => {
            snap.inputs = inputs;
            Ok(snap)
        }
        Ok(_) => Err(errors),
        Err(e) => {
            errors.0.extend(e.0);
            Err(errors)
        }
    }
}

/// Parses a duration such as `90s`, `5m`, `1h` or `1h 30m`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration like \"90s\", \"5m\" or \"1h\": {e}"))
}
