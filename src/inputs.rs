//! The files a configuration was compiled from, each with a digest of the bytes the compiler
//! read, so that the watcher reacts only to those files and a reload whose inputs are
//! byte-identical to the running ones is skipped (it would empty the token caches for
//! nothing).
//!
//! Every file the compiler reads goes through [`Inputs::read`]: the configuration files and
//! every file they name (key sets, signing and decryption keys, certificates, CAs).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};

/// A file's SHA-256, or `None` when it could not be read.
type Digest = Option<[u8; 32]>;

/// What a configuration was read from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inputs {
    /// Every file read, by the path the configuration gave it, with its digest.
    files: BTreeMap<PathBuf, Digest>,
    /// A configuration directory and the `*.toml` files it held: a file added to it or
    /// removed from it changes the configuration too.
    listing: Option<(PathBuf, Vec<PathBuf>)>,
}

impl Inputs {
    /// Reads `path` for the compiler, remembering what it held (or that it was unreadable:
    /// the file appearing later is then a change).
    pub fn read(&mut self, path: &Path) -> io::Result<Vec<u8>> {
        let result = std::fs::read(path);
        self.files
            .insert(path.to_path_buf(), result.as_ref().ok().map(|b| digest(b)));
        result
    }

    /// Records the `*.toml` files of configuration directory `dir`.
    pub fn listed(&mut self, dir: &Path, files: &[PathBuf]) {
        self.listing = Some((dir.to_path_buf(), files.to_vec()));
    }

    /// Whether reading every input again gives exactly what the compiler read.
    ///
    /// Blocking file I/O: call it off the runtime workers.
    pub fn unchanged(&self) -> bool {
        let same_files = self
            .files
            .iter()
            .all(|(path, d)| std::fs::read(path).ok().map(|b| digest(&b)) == *d);
        same_files
            && self
                .listing
                .as_ref()
                .is_none_or(|(dir, files)| list_toml(dir).ok().as_ref() == Some(files))
    }

    /// What to watch for this configuration.
    pub fn watch_set(&self) -> WatchSet {
        let mut set = WatchSet::default();
        for path in self.files.keys() {
            if let (Some(dir), Some(name)) = (parent(path), path.file_name()) {
                let dir = canonical(dir);
                set.files.insert(dir.join(name));
                set.dirs.insert(dir);
            }
        }
        if let Some((dir, _)) = &self.listing {
            let dir = canonical(dir);
            set.toml_dirs.insert(dir.clone());
            set.dirs.insert(dir);
        }
        set
    }
}

/// The directories to watch and the events in them that concern a configuration.
///
/// Paths are compared with the directory canonicalized and the file name as written, which
/// is how the watcher reports them for a canonical directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchSet {
    /// The directories holding inputs.
    pub dirs: BTreeSet<PathBuf>,
    files: BTreeSet<PathBuf>,
    toml_dirs: BTreeSet<PathBuf>,
}

impl WatchSet {
    /// Whether a change at `path` (as the watcher reports it) may change the configuration:
    /// an input itself, a `*.toml` file of a configuration directory, or the hidden `..data`
    /// entries through which Kubernetes swaps a mounted ConfigMap or Secret at once (the
    /// inputs are symlinks through them, so the inputs' own names see no event).
    pub fn concerns(&self, path: &Path) -> bool {
        let name = path.file_name().unwrap_or_default();
        let in_watched_dir = parent(path).is_some_and(|d| self.dirs.contains(d));
        self.files.contains(path)
            || (in_watched_dir && name.as_encoded_bytes().starts_with(b".."))
            || (parent(path).is_some_and(|d| self.toml_dirs.contains(d)) && is_toml(path))
    }
}

/// The `*.toml` files of `dir`, sorted by name.
pub fn list_toml(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| is_toml(p) && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

fn is_toml(path: &Path) -> bool {
    path.extension() == Some(OsStr::new("toml"))
}

/// The directory of `path`; `.` for a bare file name.
fn parent(path: &Path) -> Option<&Path> {
    match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Some(Path::new(".")),
        other => other,
    }
}

fn canonical(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_identical_inputs_are_unchanged_and_any_edit_is_not() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let a = dir.path().join("a.toml");
        let missing = dir.path().join("keys.json");
        std::fs::write(&a, "x = 1").unwrap_or_else(|e| panic!("{e}"));
        let mut inputs = Inputs::default();
        assert!(inputs.read(&a).is_ok());
        assert!(inputs.read(&missing).is_err());
        inputs.listed(dir.path(), std::slice::from_ref(&a));
        assert!(inputs.unchanged());
        // Rewritten with the same bytes: unchanged.
        std::fs::write(&a, "x = 1").unwrap_or_else(|e| panic!("{e}"));
        assert!(inputs.unchanged());
        // A file that could not be read appears: changed.
        std::fs::write(&missing, "{}").unwrap_or_else(|e| panic!("{e}"));
        assert!(!inputs.unchanged());
        std::fs::remove_file(&missing).unwrap_or_else(|e| panic!("{e}"));
        // Another *.toml in the directory: changed.
        std::fs::write(dir.path().join("b.toml"), "").unwrap_or_else(|e| panic!("{e}"));
        assert!(!inputs.unchanged());
        std::fs::remove_file(dir.path().join("b.toml")).unwrap_or_else(|e| panic!("{e}"));
        // A log beside the files: unchanged.
        std::fs::write(dir.path().join("gateway.log"), "line").unwrap_or_else(|e| panic!("{e}"));
        assert!(inputs.unchanged());
        std::fs::write(&a, "x = 2").unwrap_or_else(|e| panic!("{e}"));
        assert!(!inputs.unchanged());
    }

    #[test]
    fn the_watch_set_concerns_inputs_tomls_and_kubernetes_swaps_only() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let keys = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut inputs = Inputs::default();
        let _ = inputs.read(&dir.path().join("portcullis.toml"));
        let _ = inputs.read(&keys.path().join("jwks.json"));
        let set = inputs.watch_set();
        let d = canonical(dir.path());
        let k = canonical(keys.path());
        assert_eq!(set.dirs, BTreeSet::from([d.clone(), k.clone()]));
        assert!(set.concerns(&d.join("portcullis.toml")));
        assert!(set.concerns(&k.join("jwks.json")));
        assert!(set.concerns(&d.join("..data")));
        assert!(!set.concerns(&d.join("gateway.log")));
        assert!(!set.concerns(&d.join("other.toml")), "a file configuration is one file");
        assert!(!set.concerns(&k.join("other.json")));
        let mut listed = Inputs::default();
        listed.listed(dir.path(), &[]);
        assert!(listed.watch_set().concerns(&d.join("new.toml")));
        assert!(!listed.watch_set().concerns(&d.join("new.toml.swp")));
    }
}
