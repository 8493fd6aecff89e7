//! Configuration, end to end: validation (every error names the file,
//! the entity and the field; every error of a load is reported; a directory of files
//! merges), validity windows at request time, and the `check`, `keygen` and `token`
//! commands of the real binary.
//!
//! Each refused configuration is a one-line edit of a base configuration that loads, so a
//! test fails if the check it names were removed (the edit would then be accepted).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use portcullis::config::{ConfigError, ConfigErrors};
use portcullis::snapshot::Snapshot;
use portcullis::time::Clock;
use serde_json::{Value, json};

use crate::support::*;

// ---------------------------------------------------------------------------------------
// Helpers (local to this file: support.rs is shared).
// ---------------------------------------------------------------------------------------

/// A base configuration that loads: one realm with an ES256 signing key (`signing.json`)
/// and a local verification key (`keys.json`), one resource server, two protected
/// resources.
const BASE: &str = r#"
[server]
listen = "127.0.0.1:0"

[[realm]]
name = "r"
issuer = "https://issuer.test/realms/r"
algorithms = ["ES256", "RS256"]
leeway = "30s"
jwks_file = "keys.json"
signing_keys = "signing.json"

[[resource_server]]
id = "api"
realm = "r"
audience = "https://api.test"
upstream = "http://127.0.0.1:9"
scopes = ["read", "write"]
default_scopes = ["read"]
access_token_ttl = "10m"
signing_alg = "ES256"
default = true

[resource_server.claim_headers]
sub = "x-auth-sub"

[[protected_resource]]
id = "read"
resource_server = "api"
methods = ["GET"]
paths = ["/items", "/items/**"]
scopes = ["read"]

[[protected_resource]]
id = "write"
resource_server = "api"
methods = ["POST"]
paths = ["/items", "/items/**"]
scopes = ["write"]
max_age = "5m"
"#;

/// A second resource server for [`BASE`], to append.
const SECOND_RS: &str = r#"
[[resource_server]]
id = "api2"
realm = "r"
audience = "https://api2.test"
upstream = "http://127.0.0.1:9"
scopes = ["x"]
"#;

/// A temporary configuration directory holding the key files [`BASE`] names.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let fx = Self { dir };
        let verify = TestKey::es256("v1");
        let sign = TestKey::es256("s1");
        fx.write("keys.json", &public_jwks(&[&verify]));
        fx.write("signing.json", &private_jwks(&[&sign]));
        fx
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
        }
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }
}

fn load(path: &Path) -> Result<Snapshot, ConfigErrors> {
    portcullis::app::load_snapshot(path, portcullis::time::system(), None)
}

/// Loads `path`, which must load.
fn load_ok(path: &Path) -> Snapshot {
    load(path).unwrap_or_else(|e| panic!("{} should load, but:\n{e}", path.display()))
}

/// Loads `path`, which must fail; returns every error.
fn load_err(path: &Path) -> Vec<ConfigError> {
    match load(path) {
        Ok(_) => panic!("{} should be refused, but it loaded", path.display()),
        Err(e) => {
            assert!(!e.0.is_empty(), "an Err with no error");
            e.0
        }
    }
}

/// The error naming exactly `file`, `entity` and `field`; panics listing all when none does.
fn find<'e>(errors: &'e [ConfigError], file: &Path, entity: &str, field: &str) -> &'e ConfigError {
    errors
        .iter()
        .find(|e| e.file == file && e.entity == entity && e.field.as_deref() == Some(field))
        .unwrap_or_else(|| {
            panic!(
                "no error names ({}, {entity}, {field}); got:\n{}",
                file.display(),
                ConfigErrors(errors.to_vec())
            )
        })
}

/// Writes `text` as `portcullis.toml` in a fresh fixture and asserts that loading it fails
/// with an error naming that file, `entity` and `field`, whose message contains `needle`.
/// Returns all errors for further checks.
fn refused(text: &str, entity: &str, field: &str, needle: &str) -> Vec<ConfigError> {
    let fx = Fixture::new();
    let path = fx.write("portcullis.toml", text);
    let errors = load_err(&path);
    let e = find(&errors, &path, entity, field);
    assert!(
        e.message.contains(needle),
        "message of ({entity}, {field}) lacks {needle:?}: {}",
        e.message
    );
    // Display carries all three too (that is what `check` and the reload log print).
    let shown = e.to_string();
    assert!(shown.contains(&path.display().to_string()), "{shown}");
    assert!(shown.contains(entity), "{shown}");
    assert!(shown.contains(&format!("field `{field}`")), "{shown}");
    errors
}

/// Asserts that `text` loads in a fresh fixture (the control of a refusal).
fn accepted(text: &str) -> Snapshot {
    let fx = Fixture::new();
    let path = fx.write("portcullis.toml", text);
    load_ok(&path)
}

const RS: &str = r#"resource_server "api""#;
const REALM: &str = r#"realm "r""#;
const PR_READ: &str = r#"protected_resource "read""#;

// ---------------------------------------------------------------------------------------
// A) Validation at load time.
// ---------------------------------------------------------------------------------------

#[test]
fn base_config_loads() {
    let snap = accepted(BASE);
    assert_eq!(snap.realms.len(), 1);
    assert_eq!(declared_servers(&snap), 1, "besides the built-in Management API");
    assert_eq!(declared_resources(&snap), 2);
    assert_eq!(snap.realms[RealmRef::at(0)].issuer, "https://issuer.test/realms/r");
    let rs = &snap.resource_servers[ResourceServerRef::at(0)];
    assert_eq!(rs.audience.as_str(), "https://api.test");
    assert!(rs.default);
    assert_eq!(rs.access_token_ttl, std::time::Duration::from_secs(600));
    assert_eq!(snap.resources[ResourceRef::at(1)].max_age, Some(300));
    // Verification keys: the jwks_file key and the signing key's public half.
    assert_eq!(snap.realms[RealmRef::at(0)].keys.health().local_keys, 2);
    assert_eq!(snap.realms[RealmRef::at(0)].signing.keys().len(), 1);
}

#[test]
fn unknown_key_at_top_level_is_refused() {
    let errors = refused(&format!("bogus = 1\n{BASE}"), "top level", "bogus", "unknown field");
    assert!(errors[0].message.contains("line 1"), "{}", errors[0].message);
}

#[test]
fn unknown_key_in_server_is_refused() {
    refused(
        &edit(BASE, "listen = ", "listn = \"127.0.0.1:1\"\nlisten = "),
        "server",
        "listn",
        "unknown field",
    );
}

#[test]
fn typo_in_realm_is_refused_not_ignored() {
    // `issur` for `issuer`: never silently accepted (it would leave the realm without the
    // issuer check it was meant to configure).
    refused(
        &edit(BASE, "issuer = ", "issur = "),
        "realm #1",
        "issur",
        "unknown field",
    );
    // Even next to a correct `issuer`.
    refused(
        &edit(BASE, "leeway = ", "issur = \"https://x\"\nleeway = "),
        "realm #1",
        "issur",
        "unknown field",
    );
}

#[test]
fn typo_in_second_realm_names_that_realm() {
    let text = format!(
        "{BASE}\n[[realm]]\nname = \"other\"\nissuer = \"https://o\"\nalgorithm = [\"ES256\"]\njwks_file = \"keys.json\"\n"
    );
    refused(&text, "realm #2", "algorithm", "unknown field");
}

#[test]
fn unknown_key_in_resource_server_is_refused() {
    refused(
        &edit(BASE, "default_scopes = ", "default_scope = "),
        "resource_server #1",
        "default_scope",
        "unknown field",
    );
}

#[test]
fn unknown_key_in_protected_resource_is_refused() {
    // `scope` for `scopes`: accepting it would leave the resource needing no scope at all.
    let text = edit(BASE, "scopes = [\"write\"]", "scope = [\"write\"]");
    refused(&text, "protected_resource #2", "scope", "unknown field");
}

#[test]
fn default_scope_outside_scopes_is_refused() {
    refused(
        &edit(
            BASE,
            r#"default_scopes = ["read"]"#,
            r#"default_scopes = ["read", "delete"]"#,
        ),
        RS,
        "default_scopes",
        "\"delete\"",
    );
}

#[test]
fn signing_alg_without_a_realm_key_of_that_alg_is_refused() {
    // RS256 is accepted by the realm, but its only signing key is ES256.
    refused(
        &edit(BASE, r#"signing_alg = "ES256""#, r#"signing_alg = "RS256""#),
        RS,
        "signing_alg",
        "no signing key",
    );
    // A realm with no signing keys at all.
    refused(
        &edit(BASE, "signing_keys = \"signing.json\"\n", ""),
        RS,
        "signing_alg",
        "no signing key",
    );
}

#[test]
fn signing_alg_the_realm_does_not_accept_is_refused() {
    refused(
        &edit(BASE, r#"signing_alg = "ES256""#, r#"signing_alg = "ES384""#),
        RS,
        "signing_alg",
        "does not accept",
    );
    // Symmetric or unknown algorithms are never a signing_alg.
    refused(
        &edit(BASE, r#"signing_alg = "ES256""#, r#"signing_alg = "HS256""#),
        RS,
        "signing_alg",
        "HS256",
    );
}

#[test]
fn two_default_resource_servers_in_a_realm_are_refused() {
    let text = format!(
        "{BASE}{}",
        edit(SECOND_RS, "scopes = [\"x\"]", "scopes = [\"x\"]\ndefault = true")
    );
    let errors = refused(&text, r#"resource_server "api2""#, "default", "\"api\"");
    // The control: the same second server, not default, is fine.
    accepted(&format!("{BASE}{SECOND_RS}"));
    assert_eq!(errors.len(), 1, "{}", ConfigErrors(errors.clone()));
}

#[test]
fn protected_resource_pointing_at_a_missing_resource_server_is_refused() {
    refused(
        &edit(BASE, "resource_server = \"api\"", "resource_server = \"apii\""),
        PR_READ,
        "resource_server",
        "\"apii\"",
    );
}

#[test]
fn resource_server_pointing_at_a_missing_realm_is_refused() {
    refused(&edit(BASE, "realm = \"r\"", "realm = \"rr\""), RS, "realm", "\"rr\"");
}

#[test]
fn duplicate_realm_names_are_refused() {
    let text = format!(
        "{BASE}\n[[realm]]\nname = \"r\"\nissuer = \"https://other\"\nalgorithms = [\"ES256\"]\njwks_file = \"keys.json\"\n"
    );
    // The resource server naming realm "r" resolves to the first one: one error, no panic.
    let errors = refused(&text, REALM, "name", "another realm");
    assert_eq!(errors.len(), 1, "{}", ConfigErrors(errors.clone()));
}

#[test]
fn duplicate_resource_server_ids_are_refused() {
    let text = format!("{BASE}{}", edit(SECOND_RS, "id = \"api2\"", "id = \"api\""));
    // The protected resources naming "api" resolve to the first one: one error, no panic.
    let errors = refused(&text, RS, "id", "another resource server");
    assert_eq!(errors.len(), 1, "{}", ConfigErrors(errors.clone()));
}

#[test]
fn duplicate_protected_resource_ids_are_refused() {
    let text =
        format!("{BASE}\n[[protected_resource]]\nid = \"read\"\nresource_server = \"api\"\npaths = [\"/other\"]\n");
    refused(&text, PR_READ, "id", "another protected resource");
}

#[test]
fn algorithms_missing_is_refused() {
    refused(
        &edit(BASE, "algorithms = [\"ES256\", \"RS256\"]\n", ""),
        REALM,
        "algorithms",
        "is required",
    );
    refused(
        &edit(BASE, "algorithms = [\"ES256\", \"RS256\"]", "algorithms = []"),
        REALM,
        "algorithms",
        "at least one",
    );
}

#[test]
fn algorithms_with_none_or_hmac_are_refused() {
    for bad in ["none", "HS256", "HS512"] {
        refused(
            &edit(
                BASE,
                "algorithms = [\"ES256\", \"RS256\"]",
                &format!("algorithms = [\"ES256\", \"{bad}\"]"),
            ),
            REALM,
            "algorithms",
            &format!("{bad:?}"),
        );
    }
}

#[test]
fn realm_without_key_source_is_refused() {
    let text = edit(BASE, "jwks_file = \"keys.json\"\nsigning_keys = \"signing.json\"\n", "");
    refused(&text, REALM, "jwks_file", "no key source");
    // Any one source is enough.
    let only_jwks = edit(BASE, "signing_keys = \"signing.json\"\n", "");
    accepted(&edit(&only_jwks, "signing_alg = \"ES256\"\n", ""));
    accepted(&edit(BASE, "jwks_file = \"keys.json\"\n", ""));
}

#[test]
fn plain_http_jwks_uri_needs_the_danger_flag() {
    let remote = edit(
        BASE,
        "jwks_file = \"keys.json\"\n",
        "jwks_uri = \"http://127.0.0.1:9/jwks.json\"\n",
    );
    refused(&remote, REALM, "jwks_uri", "https");
    // With the flag it loads (loading fetches nothing).
    let snap = accepted(&edit(
        &remote,
        "jwks_uri = ",
        "danger_allow_http_jwks = true\njwks_uri = ",
    ));
    assert!(snap.realms[RealmRef::at(0)].jwks_remote.is_some());
    // https needs no flag.
    accepted(&edit(&remote, "http://127.0.0.1:9", "https://127.0.0.1:9"));
    // The flag without a jwks_uri is itself an error.
    refused(
        &edit(BASE, "leeway = ", "danger_allow_http_jwks = true\nleeway = "),
        REALM,
        "danger_allow_http_jwks",
        "without jwks_uri",
    );
    // Not a URL a key set can come from.
    refused(
        &edit(&remote, "http://127.0.0.1:9/jwks.json", "ftp://example.com/jwks.json"),
        REALM,
        "jwks_uri",
        "not an absolute http(s) URL",
    );
}

#[test]
fn bad_durations_are_refused_where_they_are() {
    refused(
        &edit(BASE, "access_token_ttl = \"10m\"", "access_token_ttl = \"5 parsecs\""),
        RS,
        "access_token_ttl",
        "5 parsecs",
    );
    refused(
        &edit(BASE, "leeway = \"30s\"", "leeway = \"5 parsecs\""),
        REALM,
        "leeway",
        "5 parsecs",
    );
    refused(
        &edit(BASE, "max_age = \"5m\"", "max_age = \"5 parsecs\""),
        r#"protected_resource "write""#,
        "max_age",
        "5 parsecs",
    );
}

#[test]
fn overlapping_routes_are_refused_naming_both() {
    // Same paths, overlapping methods (GET in both).
    let text = format!(
        "{BASE}\n[[protected_resource]]\nid = \"read-too\"\nresource_server = \"api\"\nmethods = [\"GET\", \"DELETE\"]\npaths = [\"/items/**\"]\n"
    );
    refused(&text, r#"protected_resource "read-too""#, "paths", "\"read\"");
    // Two resources that allow any method on the same path tie too.
    let any = format!(
        "{BASE}\n[[protected_resource]]\nid = \"all-1\"\nresource_server = \"api\"\npaths = [\"/all/*\"]\n\
         \n[[protected_resource]]\nid = \"all-2\"\nresource_server = \"api\"\npaths = [\"/all/{{id}}\"]\n"
    );
    refused(&any, r#"protected_resource "all-2""#, "paths", "\"all-1\"");
    // A resource listing methods is more specific than one allowing any (the routing
    // rule), so those two do not tie: the control.
    accepted(&edit(&text, "methods = [\"GET\", \"DELETE\"]\n", ""));
    // Disjoint methods do not overlap: the control.
    accepted(&edit(&text, "[\"GET\", \"DELETE\"]", "[\"DELETE\"]"));
    // Nor does a more specific path.
    accepted(&edit(
        &text,
        "paths = [\"/items/**\"]\n",
        "paths = [\"/items/special\"]\n",
    ));
}

#[test]
fn bad_path_patterns_are_refused() {
    for bad in ["/a/**/b", "a/b", "/a/../b"] {
        refused(
            &edit(
                BASE,
                "paths = [\"/items\", \"/items/**\"]",
                &format!("paths = [{bad:?}]"),
            ),
            PR_READ,
            "paths",
            bad,
        );
    }
    refused(
        &edit(BASE, "paths = [\"/items\", \"/items/**\"]", "paths = []"),
        PR_READ,
        "paths",
        "at least one",
    );
}

#[test]
fn required_scope_the_resource_server_does_not_define_is_refused() {
    refused(
        &edit(
            BASE,
            "paths = [\"/items\", \"/items/**\"]\nscopes = [\"read\"]",
            "paths = [\"/items\", \"/items/**\"]\nscopes = [\"read\", \"delete\"]",
        ),
        PR_READ,
        "scopes",
        "\"delete\"",
    );
}

#[test]
fn claim_header_the_proxy_owns_is_refused() {
    for owned in [
        "authorization",
        "x-forwarded-for",
        "X-Forwarded-For",
        "Host",
        "cookie",
        "x-request-id",
    ] {
        refused(
            &edit(BASE, "sub = \"x-auth-sub\"", &format!("sub = \"{owned}\"")),
            RS,
            "claim_headers",
            owned,
        );
    }
    refused(
        &edit(
            BASE,
            "sub = \"x-auth-sub\"",
            "sub = \"x-auth-sub\"\nclient_id = \"x-auth-sub\"",
        ),
        RS,
        "claim_headers",
        "two claims",
    );
}

#[test]
fn unreadable_jwks_file_is_refused() {
    refused(
        &edit(BASE, "jwks_file = \"keys.json\"", "jwks_file = \"missing.json\""),
        REALM,
        "jwks_file",
        "cannot read",
    );
    // A directory is not readable as a file either.
    refused(
        &edit(BASE, "jwks_file = \"keys.json\"", "jwks_file = \".\""),
        REALM,
        "jwks_file",
        "cannot read",
    );
    // Same for the signing keys.
    refused(
        &edit(
            BASE,
            "signing_keys = \"signing.json\"",
            "signing_keys = \"missing.json\"",
        ),
        REALM,
        "signing_keys",
        "cannot read",
    );
}

#[test]
fn jwks_file_that_is_not_json_is_refused() {
    let fx = Fixture::new();
    fx.write("keys.json", "this is not { json");
    let path = fx.write("portcullis.toml", BASE);
    let errors = load_err(&path);
    find(&errors, &path, REALM, "jwks_file");
    // A private JWKS that is not JSON is refused as signing_keys.
    let fx = Fixture::new();
    fx.write("signing.json", "-----BEGIN PRIVATE KEY-----");
    let path = fx.write("portcullis.toml", BASE);
    let errors = load_err(&path);
    find(&errors, &path, REALM, "signing_keys");
}

#[test]
fn jwks_with_an_oct_key_is_refused() {
    let fx = Fixture::new();
    let good = TestKey::es256("v1");
    let doc = json!({ "keys": [good.public, { "kty": "oct", "k": "c2VjcmV0c2VjcmV0", "kid": "h", "alg": "HS256" }] });
    fx.write("keys.json", &doc.to_string());
    let path = fx.write("portcullis.toml", BASE);
    let errors = load_err(&path);
    let e = find(&errors, &path, REALM, "jwks_file");
    assert!(e.message.contains("oct"), "{}", e.message);
    // Without the oct key the same file loads.
    fx.write("keys.json", &public_jwks(&[&good]));
    load_ok(&path);
}

#[test]
fn jwks_file_with_public_key_as_signing_keys_is_refused() {
    // A public JWKS where a private one belongs: nothing to sign with.
    let fx = Fixture::new();
    fx.write("signing.json", &public_jwks(&[&TestKey::es256("s1")]));
    let path = fx.write("portcullis.toml", BASE);
    let errors = load_err(&path);
    let e = find(&errors, &path, REALM, "signing_keys");
    assert!(e.message.contains("private"), "{}", e.message);
}

#[test]
fn disabled_on_not_after_valid_from_is_refused() {
    let rs_window =
        "valid_from = \"2026-06-02T00:00:00Z\"\ndisabled_on = \"2026-06-01T00:00:00Z\"\naccess_token_ttl = ";
    refused(
        &edit(BASE, "access_token_ttl = ", rs_window),
        RS,
        "disabled_on",
        "not after valid_from",
    );
    // TOML datetimes (unquoted) are checked the same way, on a protected resource.
    let pr_window = "valid_from = 2026-06-02T00:00:00Z\ndisabled_on = 2026-06-02T00:00:00Z\nmax_age = ";
    refused(
        &edit(BASE, "max_age = ", pr_window),
        r#"protected_resource "write""#,
        "disabled_on",
        "not after valid_from",
    );
    // A time that is not RFC 3339.
    refused(
        &edit(
            BASE,
            "access_token_ttl = ",
            "valid_from = \"next tuesday\"\naccess_token_ttl = ",
        ),
        RS,
        "valid_from",
        "RFC 3339",
    );
    // The right order loads.
    let snap = accepted(&edit(
        BASE,
        "access_token_ttl = ",
        "valid_from = \"2026-06-01T00:00:00Z\"\ndisabled_on = 2026-06-02T00:00:00Z\naccess_token_ttl = ",
    ));
    let v = snap.resource_servers[ResourceServerRef::at(0)].validity;
    assert_eq!(v.valid_from, Some(NOW));
    assert_eq!(v.disabled_on, Some(NOW + 86_400));
}

#[test]
fn every_error_of_a_file_is_reported() {
    let mut text = BASE.to_owned();
    for (from, to) in [
        (r#"default_scopes = ["read"]"#, r#"default_scopes = ["nope"]"#),
        (r#"signing_alg = "ES256""#, r#"signing_alg = "ES384""#),
        (r#"access_token_ttl = "10m""#, r#"access_token_ttl = "5 parsecs""#),
        (r#"sub = "x-auth-sub""#, r#"sub = "authorization""#),
        (r#"leeway = "30s""#, r#"leeway = "soon""#),
        (r#"paths = ["/items", "/items/**"]"#, r#"paths = ["/a/**/b"]"#),
        (r#"scopes = ["write"]"#, r#"scopes = ["delete"]"#),
    ] {
        text = edit(&text, from, to);
    }
    text.push_str("\n[[protected_resource]]\nid = \"orphan\"\nresource_server = \"ghost\"\npaths = [\"/ghost\"]\n");
    let fx = Fixture::new();
    let path = fx.write("portcullis.toml", &text);
    let errors = load_err(&path);
    let write = r#"protected_resource "write""#;
    for (entity, field) in [
        (RS, "default_scopes"),
        (RS, "signing_alg"),
        (RS, "access_token_ttl"),
        (RS, "claim_headers"),
        (REALM, "leeway"),
        (PR_READ, "paths"),
        (write, "scopes"),
        (r#"protected_resource "orphan""#, "resource_server"),
    ] {
        find(&errors, &path, entity, field);
    }
    assert_eq!(errors.len(), 8, "{}", ConfigErrors(errors.clone()));
}

/// Writes `10-realm.toml` (server + realm, keys beside it) and `20-apis.toml` (resource
/// server + resources) into `fx`'s `conf.d/`.
fn split(fx: &Fixture, apis: &str) -> (PathBuf, PathBuf, PathBuf) {
    let (realm_part, apis_part) = BASE
        .split_once("[[resource_server]]")
        .expect("BASE has no resource server");
    let dir = fx.path("conf.d");
    let realm = fx.write("conf.d/10-realm.toml", realm_part);
    let second = fx.write("conf.d/20-apis.toml", &format!("[[resource_server]]{apis_part}{apis}"));
    // Relative key paths resolve against each file's own directory.
    fx.write("conf.d/keys.json", &public_jwks(&[&TestKey::es256("v1")]));
    fx.write("conf.d/signing.json", &private_jwks(&[&TestKey::es256("s1")]));
    // Not a *.toml file: ignored.
    fx.write("conf.d/README.md", "not = configuration");
    (dir, realm, second)
}

/// Applies [`edit`] to the file at `path`.
fn edit_file(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    std::fs::write(path, edit(&text, from, to)).unwrap();
}

#[test]
fn a_directory_of_files_merges() {
    let fx = Fixture::new();
    let (dir, realm, apis) = split(&fx, "");
    let snap = load_ok(&dir);
    assert_eq!(snap.sources, vec![realm.clone(), apis.clone()]);
    assert_eq!(snap.realms.len(), 1);
    assert_eq!(declared_servers(&snap), 1, "besides the built-in Management API");
    assert_eq!(declared_resources(&snap), 2);
    assert_eq!(snap.resource_servers[ResourceServerRef::at(0)].realm, RealmRef::at(0));
    assert_eq!(snap.realms[RealmRef::at(0)].source, realm);
    assert_eq!(snap.resource_servers[ResourceServerRef::at(0)].source, apis);
    assert_eq!(snap.resources[ResourceRef::at(0)].source, apis);
    assert_eq!(snap.settings.listen.port(), 0);
}

#[test]
fn an_error_in_the_second_file_of_a_directory_names_that_file() {
    let fx = Fixture::new();
    let (dir, _realm, apis) = split(&fx, "");
    edit_file(&apis, "realm = \"r\"", "realm = \"q\"");
    let errors = load_err(&dir);
    find(&errors, &apis, RS, "realm");
    assert!(
        errors.iter().all(|e| e.file == apis),
        "{}",
        ConfigErrors(errors.clone())
    );

    // A syntax-level error (a typo) in the second file names it too.
    let fx = Fixture::new();
    let (dir, _realm, apis) = split(&fx, "");
    edit_file(&apis, "upstream = ", "upstrem = ");
    let errors = load_err(&dir);
    find(&errors, &apis, "resource_server #1", "upstrem");

    // Overlapping routes across files name the other file in the message.
    let fx = Fixture::new();
    let extra = "\n[[protected_resource]]\nid = \"dup\"\nresource_server = \"api\"\nmethods = [\"GET\"]\npaths = [\"/items\"]\n";
    let (dir, _realm, apis) = split(&fx, "");
    let third = fx.write("conf.d/30-more.toml", extra);
    let errors = load_err(&dir);
    let e = find(&errors, &third, r#"protected_resource "dup""#, "paths");
    assert!(e.message.contains("\"read\""), "{}", e.message);
    assert!(e.message.contains(&apis.display().to_string()), "{}", e.message);
}

#[test]
fn typos_in_two_files_of_a_directory_are_both_reported() {
    let fx = Fixture::new();
    let (dir, realm, apis) = split(&fx, "");
    for (file, from, to) in [(&realm, "issuer = ", "issur = "), (&apis, "upstream = ", "upstrem = ")] {
        edit_file(file, from, to);
    }
    let errors = load_err(&dir);
    find(&errors, &realm, "realm #1", "issur");
    find(&errors, &apis, "resource_server #1", "upstrem");
    assert_eq!(errors.len(), 2, "{}", ConfigErrors(errors.clone()));
}

#[test]
fn server_in_two_files_of_a_directory_is_refused() {
    let fx = Fixture::new();
    let (dir, realm, apis) = split(&fx, "\n[server]\nunmatched_status = 403\n");
    let errors = load_err(&dir);
    let e = find(&errors, &apis, "server", "server");
    assert!(e.message.contains(&realm.display().to_string()), "{}", e.message);
    assert_eq!(errors.len(), 1, "{}", ConfigErrors(errors.clone()));
}

#[test]
fn an_empty_directory_is_refused() {
    let fx = Fixture::new();
    let dir = fx.path("empty");
    std::fs::create_dir_all(&dir).unwrap();
    let errors = load_err(&dir);
    assert_eq!(errors[0].file, dir);
    assert!(errors[0].message.contains("no *.toml"), "{}", errors[0].message);
}

// ---------------------------------------------------------------------------------------
// B) Validity windows at request time.
// ---------------------------------------------------------------------------------------

/// An access token valid at the harness clock's current time.
fn token_now(h: &Harness, scope: &str) -> String {
    let now = h.clock.now();
    let mut c = claims(scope);
    c["iat"] = json!(now);
    c["exp"] = json!(now + 300);
    c["auth_time"] = json!(now);
    h.key.sign(&c)
}

/// A gateway on the default configuration with `line` added to its resource server.
async fn start_with_rs_line(line: &str) -> Harness {
    let config = edit(&default_config(), API_RS, &format!("{API_RS}{line}\n"));
    Harness::builder().config(config).start().await
}

/// GET `path` with a `scope` token valid at the harness clock's current time.
async fn get_now(h: &Harness, path: &str, scope: &str) -> Answer {
    h.get(path, &token_now(h, scope)).await
}

const READ_RESOURCE: &str = "[[protected_resource]]\nid = \"read\"\n";
const API_RS: &str = "default_scopes = [\"read\"]\n";

#[tokio::test]
async fn protected_resource_outside_its_window_is_not_found() {
    // In force from NOW + 1 h until NOW + 1 day (one quoted, one TOML datetime).
    let config = edit(
        &default_config(),
        READ_RESOURCE,
        "[[protected_resource]]\nid = \"read\"\nvalid_from = \"2026-06-01T01:00:00Z\"\ndisabled_on = 2026-06-02T00:00:00Z\n",
    );
    let h = Harness::builder().config(config).start().await;

    // Not yet valid: 404, even with a good token, and no fall-through to `/**`.
    let a = get_now(&h, "/items/1", "read").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.body);
    assert_eq!(h.upstream.hits(), 0);
    // Other resources are unaffected.
    assert_eq!(get_now(&h, "/else", "read").await.status, StatusCode::OK);
    assert_eq!(h.upstream.hits(), 1);

    // One second before valid_from: still refused.
    h.clock.advance(3599);
    assert_eq!(get_now(&h, "/items/1", "read").await.status, StatusCode::NOT_FOUND);
    assert_eq!(h.upstream.hits(), 1);

    // At valid_from: in force.
    h.clock.advance(1);
    let a = get_now(&h, "/items/1", "read").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(h.upstream.hits(), 2);
    // Its scope rule applies again.
    assert_eq!(get_now(&h, "/items/1", "write").await.status, StatusCode::FORBIDDEN);

    // The last second before disabled_on: in force.
    h.clock.set(NOW + 86_399);
    assert_eq!(get_now(&h, "/items/1", "read").await.status, StatusCode::OK);
    assert_eq!(h.upstream.hits(), 3);

    // At disabled_on and after: refused, upstream untouched.
    h.clock.set(NOW + 86_400);
    let a = get_now(&h, "/items/1", "read").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.body);
    h.clock.advance(1_000_000);
    assert_eq!(get_now(&h, "/items/1", "read").await.status, StatusCode::NOT_FOUND);
    assert_eq!(h.upstream.hits(), 3);
}

#[tokio::test]
async fn disabled_resource_server_refuses_with_invalid_token() {
    // Disabled one minute after NOW.
    let h = start_with_rs_line("disabled_on = \"2026-06-01T00:01:00Z\"").await;
    let token = token_now(&h, "read");
    assert_eq!(h.get("/items/1", &token).await.status, StatusCode::OK);
    assert_eq!(h.upstream.hits(), 1);

    h.clock.advance(60);
    // The same token (cached as verified) and a fresh one are both refused.
    for t in [token.clone(), token_now(&h, "read")] {
        let a = h.get("/items/1", &t).await;
        assert_invalid_token(&a, "a disabled resource server");
        assert!(a.challenge().contains(r#"realm="t""#), "{}", a.challenge());
    }
    // Every route of that server.
    assert_eq!(get_now(&h, "/anything", "read").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(h.upstream.hits(), 1);
}

#[tokio::test]
async fn resource_server_not_yet_valid_refuses_with_invalid_token() {
    let h = start_with_rs_line("valid_from = 2026-06-01T00:10:00Z").await;
    let a = get_now(&h, "/items/1", "read").await;
    assert_invalid_token(&a, "a resource server not yet valid");
    assert_eq!(h.upstream.hits(), 0);
    h.clock.advance(600);
    assert_eq!(get_now(&h, "/items/1", "read").await.status, StatusCode::OK);
    assert_eq!(h.upstream.hits(), 1);
}

// ---------------------------------------------------------------------------------------
// C) The binary: check, keygen, token.
// ---------------------------------------------------------------------------------------

/// Runs the binary with `args`, from the crate root.
fn portcullis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .output()
        .unwrap_or_else(|e| panic!("cannot run portcullis {args:?}: {e}"))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn path_arg(p: &Path) -> &str {
    p.to_str().unwrap_or_else(|| panic!("non-UTF-8 path {}", p.display()))
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn check_accepts_the_default_config_and_summarizes_it() {
    let o = portcullis(&["check", "--config", "config/portcullis.toml"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{}", stderr(&o));
    for needle in [
        "configuration OK",
        "listen 127.0.0.1:8080",
        "realm demo",
        "issuer http://127.0.0.1:8080/realms/demo",
        "algorithms ES256,RS256",
        "resource server orders (default)",
        "aud https://orders.example.com",
        "http://127.0.0.1:9000",
        "orders-read  GET,HEAD /orders /orders/**  needs all of [orders:read]",
        "orders-write  POST,PUT,PATCH,DELETE /orders /orders/**  needs all of [orders:write]",
        "orders-admin  * /orders/admin/**  needs all of [orders:admin]  max_age 300s",
    ] {
        assert!(out.contains(needle), "check output lacks {needle:?}:\n{out}");
    }
}

#[test]
fn check_on_a_broken_config_exits_64_listing_every_error() {
    let fx = Fixture::new();
    let text = edit(
        &edit(
            &edit(BASE, r#"default_scopes = ["read"]"#, r#"default_scopes = ["nope"]"#),
            "resource_server = \"api\"",
            "resource_server = \"ghost\"",
        ),
        r#"leeway = "30s""#,
        r#"leeway = "5 parsecs""#,
    );
    let path = fx.write("portcullis.toml", &text);
    let o = portcullis(&["check", "--config", path_arg(&path)]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(64), "stdout:\n{}\nstderr:\n{err}", stdout(&o));
    assert!(err.contains("3 error(s)"), "{err}");
    let file = path.display().to_string();
    for (entity, field) in [(RS, "default_scopes"), (PR_READ, "resource_server"), (REALM, "leeway")] {
        let line = format!("{file}: {entity}: field `{field}`: ");
        assert!(err.contains(&line), "stderr lacks {line:?}:\n{err}");
    }
    assert!(!stdout(&o).contains("configuration OK"));

    // A typo is a configuration error as well.
    let path = fx.write("typo.toml", &edit(BASE, "issuer = ", "issur = "));
    let o = portcullis(&["check", "--config", path_arg(&path)]);
    assert_eq!(o.status.code(), Some(64), "{}", stderr(&o));
    assert!(stderr(&o).contains("realm #1: field `issur`"), "{}", stderr(&o));
}

const ALGS: [&str; 5] = ["ES256", "ES384", "RS256", "PS256", "EdDSA"];

/// Runs `keygen` and returns (private JWKS file, public JWKS printed).
fn keygen(alg: &str, kid: &str, out: &Path) -> (Value, Value) {
    let o = portcullis(&["keygen", "--alg", alg, "--kid", kid, "--out", path_arg(out)]);
    assert_eq!(o.status.code(), Some(0), "keygen {alg}: {}", stderr(&o));
    let private = json_of(&std::fs::read_to_string(out).unwrap_or_else(|e| panic!("{}: {e}", out.display())));
    (private, json_of(&stdout(&o)))
}

#[test]
fn keygen_writes_a_private_jwks_and_prints_the_public_one() {
    let dir = tempfile::tempdir().unwrap();
    for alg in ALGS {
        let out = dir.path().join(format!("{alg}.json"));
        let (private, public) = keygen(alg, "k", &out);

        let keys = private["keys"].as_array().unwrap_or_else(|| panic!("{alg}: {private}"));
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0]["kid"], "k");
        assert_eq!(keys[0]["alg"], alg);
        assert!(keys[0].get("d").is_some(), "{alg}: private key has no d");

        let pkeys = public["keys"].as_array().unwrap_or_else(|| panic!("{alg}: {public}"));
        assert_eq!(pkeys.len(), 1);
        assert_eq!(pkeys[0]["kid"], "k");
        assert_eq!(pkeys[0]["alg"], alg);
        // No private member of any key type (EC/OKP `d`, RSA `d p q dp dq qi`).
        for member in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(
                pkeys[0].get(member).is_none(),
                "{alg}: public JWKS has {member}: {public}"
            );
        }
        // The public key printed is the public half of the key written.
        for member in ["kty", "crv", "x", "y", "n", "e"] {
            assert_eq!(keys[0].get(member), pkeys[0].get(member), "{alg}: {member}");
        }

        // portcullis loads what it wrote, as signing keys and as a verification key set.
        let bytes = std::fs::read(&out).unwrap();
        let signing = portcullis::jwks::SigningKeys::parse(&bytes).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(signing.keys().len(), 1);
        assert_eq!(portcullis::jwks::alg_name(signing.keys()[0].alg), alg);
        let (set, skipped) =
            portcullis::jwks::KeySet::parse(public.to_string().as_bytes()).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert!(skipped.is_empty(), "{alg}: {skipped:?}");
        assert_eq!(set.len(), 1);

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&out).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{alg}: mode {:o}", mode & 0o777);
        }
    }
}

#[test]
fn keygen_refuses_to_overwrite_and_appends_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.json");
    let (first, _) = keygen("ES256", "k1", &out);
    let before = std::fs::read(&out).unwrap();

    // Without --append: refused, the file untouched.
    let o = portcullis(&["keygen", "--alg", "ES256", "--kid", "k2", "--out", path_arg(&out)]);
    assert_ne!(o.status.code(), Some(0), "overwrote {}", out.display());
    assert!(stderr(&o).contains("--append"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&out).unwrap(), before);

    // With --append: a second key, the first one kept as it was.
    let o = portcullis(&[
        "keygen",
        "--alg",
        "EdDSA",
        "--kid",
        "k2",
        "--out",
        path_arg(&out),
        "--append",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let doc = json_of(&std::fs::read_to_string(&out).unwrap());
    let keys = doc["keys"].as_array().unwrap_or_else(|| panic!("{doc}"));
    assert_eq!(keys.len(), 2, "{doc}");
    assert_eq!(keys[0], first["keys"][0]);
    assert_eq!(keys[1]["kid"], "k2");
    assert_eq!(keys[1]["alg"], "EdDSA");
    assert!(keys[1].get("d").is_some());
    // Only the new key is printed.
    let printed = json_of(&stdout(&o));
    assert_eq!(printed["keys"].as_array().map(Vec::len), Some(1));
    assert_eq!(printed["keys"][0]["kid"], "k2");
    let set = portcullis::jwks::SigningKeys::parse(doc.to_string().as_bytes()).unwrap();
    assert_eq!(set.keys().len(), 2);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {:o}", mode & 0o777);
    }

    // Appending a kid that is already there: refused, file untouched.
    let before = std::fs::read(&out).unwrap();
    let o = portcullis(&[
        "keygen",
        "--alg",
        "ES256",
        "--kid",
        "k1",
        "--out",
        path_arg(&out),
        "--append",
    ]);
    assert_ne!(o.status.code(), Some(0));
    assert_eq!(std::fs::read(&out).unwrap(), before);
}

/// Runs `token` and returns the JWT it printed.
fn cli_token(config: &Path, rs: &str, extra: &[&str]) -> String {
    let mut args = vec!["token", "--config", path_arg(config), "--resource-server", rs];
    args.extend_from_slice(extra);
    let o = portcullis(&args);
    assert_eq!(o.status.code(), Some(0), "token: {}", stderr(&o));
    let out = stdout(&o);
    let token = out.trim();
    assert_eq!(token.lines().count(), 1, "{out}");
    token.to_owned()
}

#[tokio::test]
async fn token_for_the_default_config_is_an_rfc9068_access_token() {
    let config = Path::new("config/portcullis.toml");
    let token = cli_token(config, "orders", &["--scope", "orders:read"]);
    let header = jwt_part(&token, 0);
    let payload = jwt_part(&token, 1);
    assert_eq!(header["typ"], "at+jwt", "{header}");
    assert_eq!(header["alg"], "ES256", "{header}");
    assert!(header["kid"].is_string(), "{header}");
    assert_eq!(payload["iss"], "http://127.0.0.1:8080/realms/demo", "{payload}");
    assert_eq!(payload["aud"], "https://orders.example.com", "{payload}");
    assert_eq!(payload["scope"], "orders:read", "{payload}");
    assert_eq!(payload["sub"], "portcullis-cli");
    assert_eq!(payload["client_id"], "portcullis-cli");
    let iat = payload["iat"].as_i64().unwrap_or_else(|| panic!("{payload}"));
    assert_eq!(payload["exp"].as_i64(), Some(iat + 3600), "access_token_ttl = 1h");
    assert_eq!(payload["auth_time"].as_i64(), Some(iat));
    assert!(payload["jti"].as_str().is_some_and(|j| !j.is_empty()));

    // The demo configuration's own verifier accepts it for GET /orders, and enforces it.
    let clock = portcullis::time::system();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(config);
    let verifier = portcullis::app::verifier(&root, clock).await.unwrap();
    let snap = verifier.snapshot();
    let mut headers = HeaderMap::new();
    let bearer = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    headers.insert(http::header::AUTHORIZATION, bearer);
    let allowed = verifier
        .check(&snap, &Method::GET, None, "/orders/42", &headers)
        .await
        .unwrap_or_else(|d| panic!("refused: {d:?}"));
    assert_eq!(allowed.resource(&snap).id.as_str(), "orders-read");
    let denied = verifier
        .check(&snap, &Method::POST, None, "/orders", &headers)
        .await
        .expect_err("a read token may not write");
    assert_eq!(denied.reason(), "insufficient_scope");

    // Without --scope: the resource server's default scopes; --ttl and --auth-age apply.
    let token = cli_token(
        config,
        "orders",
        &["--ttl", "5m", "--auth-age", "10m", "--client-id", "c-9"],
    );
    let payload = jwt_part(&token, 1);
    assert_eq!(payload["scope"], "orders:read");
    let iat = payload["iat"].as_i64().unwrap_or_else(|| panic!("{payload}"));
    assert_eq!(payload["exp"].as_i64(), Some(iat + 300));
    assert_eq!(payload["auth_time"].as_i64(), Some(iat - 600));
    assert_eq!(payload["sub"], "c-9");
}

#[test]
fn token_refuses_an_unknown_resource_server_or_a_broken_config() {
    let o = portcullis(&[
        "token",
        "--config",
        "config/portcullis.toml",
        "--resource-server",
        "nope",
    ]);
    assert_eq!(o.status.code(), Some(64), "{}", stderr(&o));
    assert!(stderr(&o).contains("\"nope\""), "{}", stderr(&o));
    assert!(o.stdout.is_empty());

    let fx = Fixture::new();
    let path = fx.write("portcullis.toml", &edit(BASE, "issuer = ", "issur = "));
    let o = portcullis(&["token", "--config", path_arg(&path), "--resource-server", "api"]);
    assert_eq!(o.status.code(), Some(64), "{}", stderr(&o));
    assert!(stderr(&o).contains("issur"), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
}

#[tokio::test]
async fn a_token_minted_by_the_cli_is_accepted_by_a_gateway_on_the_same_config() {
    let keys = tempfile::tempdir().unwrap();
    for alg in ALGS {
        let file = keys.path().join(format!("{alg}.private.json"));
        let (_, public) = keygen(alg, &format!("cli-{alg}"), &file);
        let config = edit(
            &edit(
                &default_config(),
                "jwks_file = \"{keys}\"",
                &format!("signing_keys = {:?}", file.display().to_string()),
            ),
            API_RS,
            &format!("default_scopes = [\"read\"]\nsigning_alg = \"{alg}\"\n"),
        );
        let h = Harness::builder().config(config).start().await;
        let config_path = h.config_dir().join("portcullis.toml");
        // The gateway loaded exactly this file.
        assert_eq!(h.gateway.verifier().snapshot().sources, vec![config_path.clone()]);

        let token = cli_token(&config_path, "api", &["--scope", "read write"]);
        let header = jwt_part(&token, 0);
        assert_eq!(header["alg"], alg);
        assert_eq!(header["kid"], public["keys"][0]["kid"]);
        // The CLI minted with the system clock; move the gateway's clock there.
        h.clock.set(portcullis::time::system().now());

        let a = h.get("/items/1", &token).await;
        assert_eq!(a.status, StatusCode::OK, "{alg}: {}", a.body);
        assert_eq!(h.upstream.hits(), 1);
        let seen = h.upstream.last().await;
        assert_eq!(
            seen.headers.get("x-auth-sub").map(|v| v.as_bytes()),
            Some(&b"portcullis-cli"[..])
        );
        assert_eq!(
            seen.headers.get("x-auth-scope").map(|v| v.as_bytes()),
            Some(&b"read write"[..])
        );
        // Scopes it was not given are still enforced.
        let a = h.get("/items/admin/x", &token).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{alg}: {}", a.body);
        // And a token the CLI signs with another key is not accepted.
        if alg == "ES256" {
            let other = keys.path().join("other.json");
            keygen("ES256", "cli-ES256", &other);
            let cfg2 = h.dir.path().join("other.toml");
            let text = std::fs::read_to_string(&config_path)
                .unwrap()
                .replace(&file.display().to_string(), &other.display().to_string());
            std::fs::write(&cfg2, text).unwrap();
            let forged = cli_token(&cfg2, "api", &["--scope", "read"]);
            let a = h.get("/items/1", &forged).await;
            assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
            assert_eq!(a.error(), "invalid_token");
        }
        assert_eq!(h.upstream.hits(), 1);
    }
}

#[test]
fn the_cli_ships_completions_a_man_page_and_reads_its_config_from_the_environment() {
    let o = portcullis(&["completions", "bash"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("_portcullis") && stdout(&o).contains("hash-secret"));
    let o = portcullis(&["man"]);
    assert!(
        stdout(&o).starts_with(".ie") || stdout(&o).contains(".TH portcullis"),
        "{}",
        stdout(&o)
    );

    let o = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["check", "--no-store"])
        .env("PORTCULLIS_CONFIG", "/nonexistent/portcullis.toml")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(64), "{}", stderr(&o));
    assert!(stderr(&o).contains("/nonexistent/portcullis.toml"), "{}", stderr(&o));

    let o = portcullis(&["hash-secret", "--generate", "--field", "management-token-hash"]);
    let out = stdout(&o);
    assert!(out.contains("\nmanagement_token_hash = \"$argon2id$"), "{out}");
    assert!(out.starts_with("# the secret, shown once"), "{out}");
}

#[test]
fn check_reports_each_independent_mistake_once_with_near_misses() {
    let fx = Fixture::new();
    let path = fx.write("bad.toml", include_str!("check_mistakes.toml"));
    let o = portcullis(&["check", "--no-store", "--config", path_arg(&path)]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(64), "{err}");
    let lines: Vec<&str> = err.lines().skip(1).collect();
    let file = path.display().to_string();
    let wanted = [
        "server: field `unmatched_status`: expected a whole number, found the string \"404\" (line 2)",
        "resource_server \"orders\": field `upstream`: \"ftp://nowhere\": the scheme must be http or https",
        "resource_server \"billing\": field `id`: another resource server has this id",
        "protected_resource \"o1\": field `methods`: \"GTE\" is not an HTTP method (did you mean \"GET\"?)",
        "protected_resource \"b1\": field `scopes`: \"billing:raed\" is not a scope of resource server \"billing\" (did you mean \"billing:read\"?)",
    ];
    assert_eq!(lines.len(), wanted.len(), "one line per mistake, no cascade:\n{err}");
    for (line, want) in lines.iter().zip(wanted) {
        assert!(line.starts_with(&format!("{file}: {want}")), "{line}\nwanted {want}");
    }
}

// ---------------------------------------------------------------------------------------
// Open resources (`auth = "none"`).
// ---------------------------------------------------------------------------------------

/// [`BASE`] with an open resource `health` at `path`, and `extra` in its table.
fn with_open(path: &str, extra: &str) -> String {
    format!(
        "{BASE}\n[[protected_resource]]\nid = \"health\"\nresource_server = \"api\"\npaths = [\"{path}\"]\nauth = \"none\"\n{extra}\n"
    )
}

const PR_HEALTH: &str = r#"protected_resource "health""#;

#[test]
fn an_open_resource_is_declared_with_auth_none_and_nothing_a_token_would_need() {
    let snap = accepted(&with_open("/health", ""));
    let (_, pr) = snap.resources.find(|pr| pr.id.as_str() == "health").unwrap();
    assert_eq!(pr.auth, portcullis::model::Auth::None);
    let (_, read) = snap.resources.find(|pr| pr.id.as_str() == "read").unwrap();
    assert_eq!(read.auth, portcullis::model::Auth::Token, "the default");
    for (field, line) in [
        ("scopes", "scopes = [\"read\"]"),
        ("scope_match", "scope_match = \"any\""),
        ("max_age", "max_age = \"5m\""),
        ("max_token_lifetime", "max_token_lifetime = \"1h\""),
    ] {
        refused(&with_open("/health", line), PR_HEALTH, field, "checks no token");
    }
    refused(
        &edit(
            BASE,
            "paths = [\"/items\", \"/items/**\"]\nscopes = [\"read\"]",
            "paths = [\"/items\", \"/items/**\"]\nscopes = [\"read\"]\nauth = \"public\"",
        ),
        PR_READ,
        "auth",
        "unknown variant",
    );
}

#[test]
fn check_warns_naming_both_when_an_open_resource_takes_over_a_protected_ones_requests() {
    let fx = Fixture::new();
    let text = with_open("/items/health", "")
        + "\n[[protected_resource]]\nid = \"docs\"\nresource_server = \"api\"\npaths = [\"/docs/**\"]\nauth = \"none\"\n";
    let path = fx.write("portcullis.toml", &text);
    let o = portcullis(&["check", "--no-store", "--config", path_arg(&path)]);
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(0), "a warning is no error:\n{err}");
    assert!(
        out.contains("health  * /items/health  needs nothing (open: auth = \"none\")"),
        "{out}"
    );
    let file = path.display();
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning: ")).collect();
    assert_eq!(
        warnings,
        [
            format!(
                "warning: open protected_resource \"health\" ({file}) takes over requests protected_resource \"read\" ({file}) would otherwise get, e.g. GET /items/health: they reach the upstream without a token"
            ),
            format!(
                "warning: open protected_resource \"health\" ({file}) takes over requests protected_resource \"write\" ({file}) would otherwise get, e.g. POST /items/health: they reach the upstream without a token"
            ),
        ],
        "{err}"
    );
    // Open paths no protected resource matches say nothing.
    let path = fx.write("quiet.toml", &with_open("/health", ""));
    let o = portcullis(&["check", "--no-store", "--config", path_arg(&path)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
}

// ---------------------------------------------------------------------------------------
// Decision mode: `trusted_proxies` and `decision_path`.
// ---------------------------------------------------------------------------------------

/// `BASE` with `lines` added to its `[server]` table.
fn with_server(lines: &str) -> String {
    edit(
        BASE,
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:0\"\n{lines}"),
    )
}

#[test]
fn decision_mode_compiles_its_endpoints_and_trusted_proxies() {
    let snap = accepted(&with_server(
        "trusted_proxies = [\"10.0.0.0/8\", \"::1\"]\ndecision_path = \"/_portcullis/auth/\"",
    ));
    let d = snap.settings.decision.as_ref().expect("decision mode on");
    assert_eq!(d.path, "/_portcullis/auth");
    assert_eq!(d.uri_header, "x-original-uri");
    assert_eq!(d.method_header, "x-original-method");
    assert!(snap.settings.trusted_proxies.trusts("10.9.8.7".parse().unwrap()));
    assert!(snap.settings.trusted_proxies.trusts("::1".parse().unwrap()));
    assert!(!snap.settings.trusted_proxies.trusts("127.0.0.1".parse().unwrap()));
    // `check` says where the endpoints are and whom they believe.
    let fx = Fixture::new();
    let path = fx.write(
        "portcullis.toml",
        &with_server("trusted_proxies = [\"10.0.0.0/8\", \"::1\"]\ndecision_path = \"/_portcullis/auth/\""),
    );
    let o = portcullis(&["check", "--no-store", "--config", path_arg(&path)]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{}", stderr(&o));
    for needle in [
        "decision /_portcullis/auth/nginx /_portcullis/auth/forwarded /_portcullis/auth/envoy/…",
        "trusted_proxies 10.0.0.0/8, ::1/128",
    ] {
        assert!(out.contains(needle), "check output lacks {needle:?}:\n{out}");
    }
    // Off by default, trusting nobody.
    let snap = accepted(BASE);
    assert_eq!(snap.settings.decision, None);
    assert!(snap.settings.trusted_proxies.is_empty());
}

#[test]
fn decision_mode_mistakes_name_the_field() {
    refused(
        &with_server("trusted_proxies = [\"10.1.0.0/8\"]"),
        "server",
        "trusted_proxies",
        "bits set past its prefix",
    );
    refused(
        &with_server("trusted_proxies = [\"localhost\"]"),
        "server",
        "trusted_proxies",
        "\"localhost\" is not an IP address",
    );
    refused(
        &with_server("decision_path = \"/auth\""),
        "server",
        "decision_path",
        "needs trusted_proxies",
    );
    refused(
        &with_server("proxy_protocol = true"),
        "server",
        "proxy_protocol",
        "needs trusted_proxies",
    );
    refused(
        &with_server("trusted_proxies = [\"127.0.0.1\"]\ndecision_path = \"/a/../b\""),
        "server",
        "decision_path",
        "plain absolute path",
    );
    refused(
        &with_server("trusted_proxies = [\"127.0.0.1\"]\ndecision_path = \"/a\"\ndecision_uri_header = \"bad header\""),
        "server",
        "decision_uri_header",
        "not a header name",
    );
    refused(
        &with_server("decision_method_header = \"X-M\""),
        "server",
        "decision_method_header",
        "without decision_path",
    );
}
