//! The deployment and observability files, held to the code they describe:
//!
//! - `docs/observability/`: the Grafana dashboard is a dashboard (JSON, panels, targets) and
//!   the Prometheus rules are rules (`groups:`, `- alert:`, `expr:`); every metric they name
//!   is in the `/metrics` of a real gateway that served requests, with the type their use
//!   needs (`rate` of a counter, `_bucket` of a histogram), and every label they group, match
//!   or print by is one that metric carries.
//! - `docs/kubernetes/`: the ConfigMap's `portcullis.toml` passes `portcullis check` as the
//!   pod would run it (its directory, the signing key beside it, the store URL in the
//!   environment), and the Deployment, Secret and Dockerfile agree with it.
//! - `docs/systemd/portcullis.service`: `systemd-analyze verify` passes, when installed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use http::{Method, StatusCode};
use serde_json::Value;

use crate::support::*;

const DASHBOARD: &str = "docs/observability/grafana-dashboard.json";
const ALERTS: &str = "docs/observability/prometheus-alerts.yaml";
const CONFIGMAP: &str = "docs/kubernetes/configmap.yaml";
const DEPLOYMENT: &str = "docs/kubernetes/deployment.yaml";
const SECRET: &str = "docs/kubernetes/secret.yaml";
const UNIT: &str = "docs/systemd/portcullis.service";
const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// Labels Prometheus attaches to every scraped series itself (the target's), not the gateway.
const TARGET_LABELS: [&str; 2] = ["instance", "job"];

/// `Err(message)` unless `cond`: the checkers below say why a file is wrong without
/// panicking, so the test can also show them refusing what is wrong.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

fn repo_file(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------
// The exposition.

/// What a `/metrics` answer holds: each family's type (`# TYPE` lines) and each sample name
/// with the label names seen on it.
struct Exposition {
    types: BTreeMap<String, String>,
    samples: BTreeMap<String, BTreeSet<String>>,
}

impl Exposition {
    fn parse(text: &str) -> Self {
        let mut types = BTreeMap::new();
        let mut samples: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut words = rest.split_whitespace();
                if let (Some(name), Some(ty)) = (words.next(), words.next()) {
                    types.insert(name.to_owned(), ty.to_owned());
                }
                continue;
            }
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            let labels = match line[end..].strip_prefix('{') {
                Some(rest) => sample_label_names(rest, line),
                None => Vec::new(),
            };
            samples.entry(line[..end].to_owned()).or_default().extend(labels);
        }
        Self { types, samples }
    }

    /// The family of sample name `sample` and its type: `_total` of a counter, `_bucket`,
    /// `_sum` and `_count` of a histogram (only where the family is one), else the name
    /// itself (a gauge).
    fn family(&self, sample: &str) -> Option<(&str, &str)> {
        for (suffix, ty) in [
            ("_total", "counter"),
            ("_bucket", "histogram"),
            ("_sum", "histogram"),
            ("_count", "histogram"),
        ] {
            if let Some(base) = sample.strip_suffix(suffix)
                && let Some((name, t)) = self.types.get_key_value(base)
                && t == ty
            {
                return Some((name.as_str(), t.as_str()));
            }
        }
        self.types
            .get_key_value(sample)
            .filter(|(_, t)| !matches!(t.as_str(), "counter" | "histogram"))
            .map(|(n, t)| (n.as_str(), t.as_str()))
    }
}

/// The label names of a sample line's `{…}` (`rest` starts after the brace).
fn sample_label_names(rest: &str, line: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut chars = rest.chars();
    loop {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert!(!name.is_empty(), "bad labels in {line:?}");
        names.push(name.trim_start_matches(',').to_owned());
        assert_eq!(chars.next(), Some('"'), "bad labels in {line:?}");
        let mut escaped = false;
        for c in chars.by_ref() {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '"') => break,
                _ => escaped = false,
            }
        }
        match chars.next() {
            Some(',') if chars.as_str().starts_with('}') => return names,
            Some(',') => {}
            Some('}') => return names,
            other => panic!("bad labels in {line:?} at {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Expressions (PromQL as the files write it).

/// Every `portcullis_…` metric name in `text`, in order of appearance.
fn metric_names(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find("portcullis_") {
        let start = from + at;
        let before = text[..start].chars().next_back();
        let name: String = text[start..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        from = start + name.len();
        // Part of a longer identifier is not a metric name.
        if before.is_some_and(is_ident) {
            continue;
        }
        out.push(name.trim_end_matches('_').to_owned());
    }
    out
}

/// `expr` with the inside of every string literal blanked, so that a label value is never
/// read as syntax.
fn blank_strings(expr: &str) -> Result<String, String> {
    let mut out = String::with_capacity(expr.len());
    let mut quote = None;
    let mut escaped = false;
    for c in expr.chars() {
        match quote {
            None => {
                if c == '"' || c == '\'' || c == '`' {
                    quote = Some(c);
                }
                out.push(c);
            }
            Some(q) => {
                if escaped {
                    escaped = false;
                    out.push(' ');
                } else if c == '\\' {
                    escaped = true;
                    out.push(' ');
                } else if c == q {
                    quote = None;
                    out.push(c);
                } else {
                    out.push(' ');
                }
            }
        }
    }
    ensure!(quote.is_none(), "unterminated string in {expr:?}");
    Ok(out)
}

/// Brackets balance and strings close.
fn balanced(expr: &str) -> Result<(), String> {
    let mut stack = Vec::new();
    for c in blank_strings(expr)?.chars() {
        match c {
            '(' | '[' | '{' => stack.push(c),
            ')' | ']' | '}' => {
                let open = stack.pop();
                let fits = matches!((open, c), (Some('('), ')') | (Some('['), ']') | (Some('{'), '}'));
                ensure!(fits, "unbalanced {c:?} in {expr:?}");
            }
            _ => {}
        }
    }
    ensure!(stack.is_empty(), "unclosed {stack:?} in {expr:?}");
    Ok(())
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The label names `expr` groups or matches by: the lists of `by`, `without`, `on`,
/// `ignoring`, `group_left` and `group_right`, and the names of `{…}` matchers.
fn expr_labels(expr: &str) -> Result<BTreeSet<String>, String> {
    let text = blank_strings(expr)?;
    let mut labels = BTreeSet::new();
    let mut idents = Vec::new();
    let mut i = 0;
    let chars: Vec<char> = text.chars().collect();
    while i < chars.len() {
        if is_ident(chars[i]) && (i == 0 || !is_ident(chars[i - 1])) {
            let start = i;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
            idents.push((chars[start..i].iter().collect::<String>(), i));
        } else {
            i += 1;
        }
    }
    let list_after = |mut at: usize| -> Option<Vec<String>> {
        while at < chars.len() && chars[at].is_whitespace() {
            at += 1;
        }
        if chars.get(at) != Some(&'(') {
            return None;
        }
        let close = chars[at..].iter().position(|c| *c == ')')? + at;
        let inner: String = chars[at + 1..close].iter().collect();
        Some(
            inner
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        )
    };
    for (word, end) in &idents {
        if matches!(
            word.as_str(),
            "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
        ) && let Some(list) = list_after(*end)
        {
            labels.extend(list);
        }
    }
    let mut from = 0;
    while let Some(open) = text[from..].find('{') {
        let open = from + open;
        let close = text[open..].find('}').map(|c| open + c).unwrap_or(text.len());
        for matcher in text[open + 1..close].split(',') {
            let name: String = matcher.trim().chars().take_while(|c| is_ident(*c)).collect();
            if !name.is_empty() {
                labels.insert(name);
            }
        }
        from = close;
    }
    Ok(labels)
}

/// Checks one expression against the exposition: its metrics are samples of it, `rate` and
/// `increase` apply to counters (or histogram series), `histogram_quantile` to buckets, and
/// every label it groups or matches by is on one of its metrics (`le` on a bucket). Returns
/// the labels the expression may carry or print (for legends and annotations).
fn check_expr(exp: &Exposition, expr: &str) -> Result<BTreeSet<String>, String> {
    balanced(expr)?;
    let names = metric_names(expr);
    ensure!(!names.is_empty(), "no portcullis metric in {expr:?}");
    let text = blank_strings(expr)?;
    let mut carried: BTreeSet<String> = TARGET_LABELS.iter().map(|l| (*l).to_owned()).collect();
    for name in &names {
        let Some(labels) = exp.samples.get(name) else {
            return Err(format!(
                "{name} is not a sample of the gateway's /metrics; it has:\n{}",
                exp.samples.keys().cloned().collect::<Vec<_>>().join("\n")
            ));
        };
        let Some((family, ty)) = exp.family(name) else {
            return Err(format!("no # TYPE line fits {name}"));
        };
        carried.extend(labels.iter().cloned());
        // `rate`, `irate` and `increase` only make sense of counters (and histogram series).
        for f in ["rate(", "increase("] {
            ensure!(
                !text.contains(&format!("{f}{name}")) || matches!(ty, "counter" | "histogram"),
                "{f}{name}…) but {family} is a {ty}"
            );
        }
    }
    if text.contains("histogram_quantile(") {
        ensure!(
            names.iter().any(|n| n.ends_with("_bucket")),
            "histogram_quantile of no _bucket series in {expr:?}"
        );
    }
    for label in expr_labels(expr)? {
        let ok = if label == "le" {
            names.iter().any(|n| n.ends_with("_bucket"))
        } else {
            carried.contains(&label)
        };
        ensure!(
            ok,
            "label {label:?} is on none of {names:?} (labels: {carried:?}) in {expr:?}"
        );
    }
    Ok(carried)
}

/// The labels a template prints: `{{label}}` (Grafana legends) and `{{ $labels.label }}`
/// (Prometheus annotations).
fn template_labels(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(at) = rest.find("{{") {
        let after = &rest[at + 2..];
        let end = after.find("}}").unwrap_or(after.len());
        let inner = after[..end].trim();
        if let Some(l) = inner.strip_prefix("$labels.") {
            out.push(l.chars().take_while(|c| is_ident(*c)).collect());
        } else if !inner.is_empty() && inner.chars().all(is_ident) {
            out.push(inner.to_owned());
        }
        rest = &after[end..];
    }
    out
}

// ---------------------------------------------------------------------------------------
// The files' structure.

/// One query of the dashboard: its panel's title, the expression and the legend.
struct Target {
    panel: String,
    expr: String,
    legend: String,
}

/// The dashboard's targets, after checking it is a dashboard Grafana imports: a title and a
/// uid, a schema version, panels with unique ids and places on the 24-column grid, each
/// (rows apart) with Prometheus targets through the `datasource` variable.
fn dashboard_targets(doc: &Value) -> Vec<Target> {
    assert!(doc["title"].as_str().is_some_and(|t| !t.is_empty()), "no title");
    assert!(doc["uid"].as_str().is_some_and(|t| !t.is_empty()), "no uid");
    assert!(doc["schemaVersion"].as_u64().is_some(), "no schemaVersion");
    let variables = doc["templating"]["list"].as_array().expect("templating.list");
    let datasource_var = variables
        .iter()
        .find(|v| v["type"] == "datasource" && v["query"] == "prometheus")
        .and_then(|v| v["name"].as_str())
        .expect("a Prometheus datasource variable");
    let datasource = format!("${{{datasource_var}}}");
    let panels = doc["panels"].as_array().expect("panels");
    assert!(!panels.is_empty(), "no panels");
    let mut ids = BTreeSet::new();
    let mut targets = Vec::new();
    for p in panels {
        let title = p["title"].as_str().expect("panel title").to_owned();
        let id = p["id"].as_u64().unwrap_or_else(|| panic!("{title}: no id"));
        assert!(ids.insert(id), "{title}: id {id} twice");
        let ty = p["type"].as_str().unwrap_or_else(|| panic!("{title}: no type"));
        let g = &p["gridPos"];
        let [h, w, x, _y] =
            ["h", "w", "x", "y"].map(|k| g[k].as_u64().unwrap_or_else(|| panic!("{title}: gridPos.{k}")));
        assert!(h > 0 && w > 0 && x + w <= 24, "{title}: gridPos {g}");
        if ty == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], datasource.as_str(), "{title}: datasource");
        let list = p["targets"].as_array().unwrap_or_else(|| panic!("{title}: no targets"));
        assert!(!list.is_empty(), "{title}: no targets");
        let mut refs = BTreeSet::new();
        for t in list {
            let r = t["refId"]
                .as_str()
                .unwrap_or_else(|| panic!("{title}: a target without refId"));
            assert!(refs.insert(r.to_owned()), "{title}: refId {r} twice");
            assert_eq!(t["datasource"]["type"], "prometheus", "{title}: target datasource");
            targets.push(Target {
                panel: title.clone(),
                expr: t["expr"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{title}: no expr"))
                    .to_owned(),
                legend: t["legendFormat"].as_str().unwrap_or_default().to_owned(),
            });
        }
    }
    targets
}

/// One alerting rule as the YAML file writes it.
#[derive(Debug, Default)]
struct Rule {
    alert: String,
    expr: String,
    keys: BTreeSet<String>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

/// The rules of a Prometheus rule file, read line by line (no YAML crate in the tree): a
/// `groups:` document of `- name:` groups with `rules:` of `- alert:` entries, whose keys are
/// `expr` (one line or a `|` block), `for`, `labels` and `annotations`. Anything else at a
/// rule's level, a tab, or a rule outside a group fails.
fn alert_rules(text: &str) -> Result<Vec<Rule>, String> {
    ensure!(!text.contains('\t'), "YAML does not allow tabs");
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let significant = |l: &&str| !l.trim().is_empty() && !l.trim_start().starts_with('#');
    ensure!(
        lines.iter().copied().find(|l| significant(l)) == Some("groups:"),
        "the document is not `groups:`"
    );
    let unquote = |v: &str| {
        let v = v.trim();
        v.strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(v)
            .to_owned()
    };
    let (mut groups, mut in_rules) = (0, false);
    let mut rules: Vec<Rule> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        if !significant(&line) || line == "groups:" {
            continue;
        }
        let content = line.trim();
        if content.starts_with("- name:") {
            groups += 1;
            in_rules = false;
            continue;
        }
        if content == "rules:" {
            ensure!(groups > 0, "rules: outside a group");
            in_rules = true;
            continue;
        }
        let Some(name) = content.strip_prefix("- alert:") else {
            return Err(format!("unexpected line {i}: {line:?}"));
        };
        ensure!(in_rules, "line {i}: an alert outside a group's rules");
        let key_indent = indent(line) + 2;
        let mut rule = Rule {
            alert: name.trim().to_owned(),
            ..Rule::default()
        };
        let mut section: Option<String> = None;
        while i < lines.len() {
            let l = lines[i];
            if l.trim().is_empty() || l.trim_start().starts_with('#') {
                i += 1;
                continue;
            }
            if indent(l) < key_indent || l.trim_start().starts_with("- ") {
                break;
            }
            i += 1;
            let Some((key, value)) = l.trim().split_once(':') else {
                return Err(format!("line {i}: not `key: value`: {l:?}"));
            };
            let value = value.trim();
            if indent(l) > key_indent {
                let map = match section.as_deref() {
                    Some("labels") => &mut rule.labels,
                    Some("annotations") => &mut rule.annotations,
                    _ => return Err(format!("line {i}: {l:?} is under no labels: or annotations:")),
                };
                map.insert(key.to_owned(), unquote(value));
                continue;
            }
            ensure!(
                matches!(key, "expr" | "for" | "labels" | "annotations" | "keep_firing_for"),
                "line {i}: {key:?} is not a key of an alerting rule"
            );
            ensure!(rule.keys.insert(key.to_owned()), "line {i}: {key} twice");
            section = Some(key.to_owned());
            match key {
                "expr" if matches!(value, "|" | "|-" | ">" | ">-") => {
                    let mut block = Vec::new();
                    while i < lines.len() && (lines[i].trim().is_empty() || indent(lines[i]) > key_indent) {
                        block.push(lines[i].trim());
                        i += 1;
                    }
                    rule.expr = block.join("\n").trim().to_owned();
                }
                "expr" => rule.expr = unquote(value),
                "for" | "keep_firing_for" => {
                    let digits = value.trim_end_matches(['s', 'm', 'h', 'd']);
                    ensure!(
                        !digits.is_empty() && digits.len() < value.len() && digits.chars().all(|c| c.is_ascii_digit()),
                        "{}: {key}: {value:?} is not a duration",
                        rule.alert
                    );
                }
                _ => ensure!(value.is_empty(), "line {i}: {key} takes a map"),
            }
        }
        rules.push(rule);
    }
    ensure!(groups > 0, "no group");
    Ok(rules)
}

#[test]
fn the_dashboard_and_the_alert_rules_are_well_formed() {
    let doc: Value =
        serde_json::from_str(&repo_file(DASHBOARD)).unwrap_or_else(|e| panic!("{DASHBOARD} is not JSON: {e}"));
    let targets = dashboard_targets(&doc);
    assert!(targets.len() >= 10, "{} targets", targets.len());
    for t in &targets {
        balanced(&t.expr).unwrap_or_else(|e| panic!("{DASHBOARD}: {:?}: {e}", t.panel));
    }

    let rules = alert_rules(&repo_file(ALERTS)).unwrap_or_else(|e| panic!("{ALERTS}: {e}"));
    assert!(rules.len() >= 5, "{rules:?}");
    let mut names = BTreeSet::new();
    for r in &rules {
        assert!(
            r.alert.starts_with("Portcullis") && r.alert.chars().all(|c| c.is_ascii_alphanumeric()),
            "{:?}",
            r.alert
        );
        assert!(names.insert(r.alert.clone()), "{} twice", r.alert);
        assert!(!r.expr.is_empty(), "{}: no expr", r.alert);
        balanced(&r.expr).unwrap_or_else(|e| panic!("{ALERTS}: {}: {e}", r.alert));
        assert!(
            matches!(
                r.labels.get("severity").map(String::as_str),
                Some("critical" | "warning" | "info")
            ),
            "{}: severity {:?}",
            r.alert,
            r.labels
        );
        assert!(r.annotations.contains_key("summary"), "{}: no summary", r.alert);
    }

    // The checker itself: a rule file that is not one is refused, for the reason it is not.
    let rule = "groups:\n  - name: g\n    rules:\n      - alert: A\n";
    for (broken, why) in [
        ("rules:\n  - alert: A\n    expr: x\n".to_owned(), "not `groups:`"),
        (format!("{rule}        expresion: x\n"), "\"expresion\" is not a key"),
        (format!("{rule}\texpr: x\n"), "tabs"),
        (format!("{rule}        for: soon\n"), "not a duration"),
        (format!("{rule}        expr: x\n        expr: y\n"), "expr twice"),
        (format!("{rule}          severity: x\n"), "under no labels"),
    ] {
        match alert_rules(&broken) {
            Ok(rules) => panic!("accepted {rules:?}:\n{broken}"),
            Err(e) => assert!(e.contains(why), "{e:?}, not {why:?}, for:\n{broken}"),
        }
    }
    assert!(alert_rules(&format!("{rule}        expr: up\n")).is_ok());
}

/// The `/metrics` of a gateway that did a bit of everything the dashboard and the rules
/// watch: a token issued and one refused, requests allowed and refused, one no resource
/// matches, an upstream that refuses connections, a realm on a remote JWKS (fetched at
/// start) and a reload.
async fn busy_gateway_metrics() -> String {
    let secret = "ops-artifacts-Secret-5120";
    let hash = portcullis::issuer::hash_secret(secret).unwrap();
    let key = TestKey::es256("k1");
    let remote = TestKey::es256("r1");
    let jwks = Upstream::serving(public_jwks(&[&remote])).await;
    let down = closed_port();
    let config = edit(
        &config_with("admin_listen = \"127.0.0.1:0\""),
        "jwks_file = \"{keys}\"",
        "signing_keys = \"{dir}/signing.json\"",
    ) + &format!(
        r#"
[[client]]
client_id = "c1"
realm = "t"
client_secret_hash = "{hash}"

[[realm]]
name = "remote"
issuer = "https://remote.test"
algorithms = ["ES256"]
jwks_uri = "{jwks_uri}"
danger_allow_http_jwks = true

[[resource_server]]
id = "down"
realm = "t"
audience = "https://down.test"
upstream = "http://{down}"

[[protected_resource]]
id = "down"
resource_server = "down"
paths = ["/down/**"]
"#,
        jwks_uri = jwks.url("/jwks.json"),
    );
    let h = Harness::builder()
        .config(config)
        .file("signing.json", private_jwks(&[&key]))
        .key(key)
        .start()
        .await;

    let form = ("content-type", "application/x-www-form-urlencoded");
    let body = "grant_type=client_credentials&scope=read&resource=https%3A%2F%2Fapi.test";
    let a = h
        .send(
            Method::POST,
            "/realms/t/token",
            &[form, ("authorization", &basic("c1", secret))],
            body,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let token = access_token(&a);
    let a = h
        .send(
            Method::POST,
            "/realms/t/token",
            &[form, ("authorization", &basic("c1", "no"))],
            body,
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);

    assert_eq!(h.get("/items/1", &token).await.status, StatusCode::OK);
    assert_eq!(h.get("/items/1", &token).await.status, StatusCode::OK);
    assert_eq!(
        h.send(Method::GET, "/items/1", &[], "").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(h.post("/items", &token, "").await.status, StatusCode::FORBIDDEN);
    assert_eq!(h.get("/nowhere", &token).await.status, StatusCode::NOT_FOUND);
    let mut to_down = claims("read");
    to_down["aud"] = "https://down.test".into();
    let a = h.get("/down/1", &h.key.sign(&to_down)).await;
    assert_eq!(a.status, StatusCode::BAD_GATEWAY, "{}", a.body);
    h.gateway.reload().await.unwrap();

    let (a, text) = scrape(&h).await;
    assert_eq!(a.status, StatusCode::OK);
    text
}

#[tokio::test]
async fn the_dashboard_and_the_alert_rules_use_only_what_the_gateway_exports() {
    let dashboard_text = repo_file(DASHBOARD);
    let doc: Value = serde_json::from_str(&dashboard_text).unwrap();
    let targets = dashboard_targets(&doc);
    let alerts_text = repo_file(ALERTS);
    let rules = alert_rules(&alerts_text).unwrap_or_else(|e| panic!("{ALERTS}: {e}"));

    let text = busy_gateway_metrics().await;
    let exp = Exposition::parse(&text);

    // Every query: its metrics, their types for the functions applied, the labels grouped
    // and matched by, and the labels its legend prints.
    let mut in_dashboard = BTreeSet::new();
    for t in &targets {
        let at = format!("{DASHBOARD}: {:?}", t.panel);
        let carried = check_expr(&exp, &t.expr).unwrap_or_else(|e| panic!("{at}: {e}"));
        for l in template_labels(&t.legend) {
            assert!(carried.contains(&l), "{at}: legend {:?} prints {l:?}", t.legend);
        }
        in_dashboard.extend(metric_names(&t.expr));
    }
    let mut in_alerts = BTreeSet::new();
    for r in &rules {
        let at = format!("{ALERTS}: {}", r.alert);
        let carried = check_expr(&exp, &r.expr).unwrap_or_else(|e| panic!("{at}: {e}"));
        for (k, v) in &r.annotations {
            for l in template_labels(v) {
                assert!(carried.contains(&l), "{at}: annotation {k} prints $labels.{l}");
            }
        }
        in_alerts.extend(metric_names(&r.expr));
    }
    // Names in prose (descriptions, comments) exist too, as samples or as families.
    for (file, whole) in [(DASHBOARD, &dashboard_text), (ALERTS, &alerts_text)] {
        for name in metric_names(whole) {
            assert!(
                exp.samples.contains_key(&name) || exp.types.contains_key(&name),
                "{file}: {name} is neither a sample nor a family of /metrics"
            );
        }
    }

    // What the brief of each file is: without these the files watch too little.
    for name in [
        "portcullis_requests_total",
        "portcullis_request_duration_seconds_bucket",
        "portcullis_upstream_errors_total",
        "portcullis_tokens_issued_total",
        "portcullis_issuer_errors_total",
        "portcullis_jwks_usable",
        "portcullis_config_reloads_total",
        "portcullis_config_reload_failures_total",
        "portcullis_connections_open",
    ] {
        assert!(in_dashboard.contains(name), "the dashboard does not show {name}");
    }
    for name in [
        "portcullis_requests_total",
        "portcullis_jwks_usable",
        "portcullis_upstream_errors_total",
        "portcullis_config_reload_failures_total",
        "portcullis_request_duration_seconds_bucket",
    ] {
        assert!(in_alerts.contains(name), "no alert watches {name}");
    }

    // The checker itself: a name, a label or a use the gateway does not have is refused, for
    // the reason it is wrong.
    for (wrong, why) in [
        ("sum(rate(portcullis_request_total[5m]))", "not a sample"),
        ("sum(rate(portcullis_requests[5m]))", "not a sample"),
        (
            "sum by (reason) (rate(portcullis_requests_total[5m]))",
            "label \"reason\"",
        ),
        ("portcullis_requests_total{reason=\"expired\"}", "label \"reason\""),
        ("rate(portcullis_jwks_usable[5m])", "is a gauge"),
        ("portcullis_requests_total{outcome=\"allowed\"", "unclosed"),
        (
            "histogram_quantile(0.99, sum by (le) (rate(portcullis_requests_total[5m])))",
            "no _bucket",
        ),
        ("sum by (realm) (portcullis_connections_open)", "label \"realm\""),
    ] {
        match check_expr(&exp, wrong) {
            Ok(_) => panic!("accepted {wrong:?}"),
            Err(e) => assert!(e.contains(why), "{wrong:?}: {e:?}, not {why:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Kubernetes and the Dockerfile.

/// The block scalar under `key: |` in `yaml`, de-indented.
fn block_scalar(yaml: &str, key: &str) -> String {
    let lines: Vec<&str> = yaml.lines().collect();
    let head = format!("{key}: |");
    let at = lines
        .iter()
        .position(|l| l.trim() == head)
        .unwrap_or_else(|| panic!("no `{head}` block"));
    let key_indent = lines[at].len() - lines[at].trim_start().len();
    let body: Vec<&str> = lines[at + 1..]
        .iter()
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > key_indent)
        .copied()
        .collect();
    let indent = body
        .iter()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .unwrap_or_else(|| panic!("`{head}` is empty"));
    let mut out: String = body
        .iter()
        .map(|l| l.get(indent..).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    out
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn describe(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The port of a `host:port` listen address.
fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("{addr:?} has no port"))
}

/// The value of the first `key:` line after the first line that is `marker` (trimmed).
fn value_after(yaml: &str, marker: &str, key: &str) -> String {
    let mut lines = yaml.lines().skip_while(|l| l.trim() != marker);
    assert!(lines.next().is_some(), "no {marker:?}");
    lines
        .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix(':'))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("no {key}: after {marker:?}"))
}

#[test]
fn the_kubernetes_configuration_passes_portcullis_check() {
    let configmap = repo_file(CONFIGMAP);
    let text = block_scalar(&configmap, "portcullis.toml");
    let doc: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("the ConfigMap's TOML: {e}\n{text}"));
    let server = doc["server"].as_table().expect("[server]");
    let listen = server["listen"].as_str().expect("listen");
    let admin = server["admin_listen"].as_str().expect("admin_listen");
    assert_eq!((listen, admin), ("0.0.0.0:8080", "0.0.0.0:9090"));
    assert!(server.contains_key("public_url"), "no public_url");
    let store_env = doc["store"]["url_env"].as_str().expect("[store] url_env");
    let realm = &doc["realm"][0];
    let servers = doc["resource_server"].as_array().expect("resource servers");
    assert_eq!(servers.len(), 1);
    assert_eq!(doc["protected_resource"].as_array().map(Vec::len), Some(2));

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("portcullis.toml"), &text).unwrap();
    // The key the Secret holds: a new one, as secret.yaml says to make it.
    let key_file = ["signing_keys", "jwks_file"]
        .iter()
        .find_map(|k| Some((*k, realm.get(*k)?.as_str()?)));
    if let Some((field, file)) = key_file {
        assert!(
            Path::new(file).is_relative(),
            "{field} {file:?}: the key is projected beside the TOML"
        );
        let alg = servers[0]
            .get("signing_alg")
            .or_else(|| realm["algorithms"].get(0))
            .and_then(|a| a.as_str())
            .expect("an algorithm");
        let out = dir.path().join(file);
        let private = if field == "signing_keys" {
            out.clone()
        } else {
            dir.path().join("unused.private.jwks.json")
        };
        let o = run(Command::new(BIN)
            .args(["keygen", "--alg", alg, "--kid", "k8s-test", "--out"])
            .arg(&private));
        assert!(o.status.success(), "keygen: {}", describe(&o));
        if field == "jwks_file" {
            std::fs::write(&out, &o.stdout).unwrap();
        }
        // The Deployment projects it under that name, from the Secret's key of that name.
        assert!(
            repo_file(DEPLOYMENT).contains(&format!("path: {file}")),
            "{DEPLOYMENT}: {file}"
        );
        assert!(repo_file(SECRET).contains(&format!("{file}: |")), "{SECRET}: {file}");
    }

    // As the pod runs it: the directory (`serve --config /etc/portcullis`), the store URL in
    // the environment. `--no-store`: the database is not contacted.
    let check = |env: Option<&str>| {
        let mut cmd = Command::new(BIN);
        cmd.args(["check", "--no-store", "--config"])
            .arg(dir.path())
            .env_remove("RUST_LOG")
            .env_remove(store_env);
        if let Some(url) = env {
            cmd.env(store_env, url);
        }
        run(&mut cmd)
    };
    let o = check(Some("postgres://portcullis:placeholder@127.0.0.1:1/portcullis"));
    assert!(o.status.success(), "{}", describe(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("configuration OK"), "{out}");
    assert!(out.contains("listen 0.0.0.0:8080"), "{out}");
    // The same files without the variable are refused: the check read this [store].
    let o = check(None);
    assert_eq!(o.status.code(), Some(64), "{}", describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("url_env"),
        "{}",
        describe(&o)
    );

    // The Deployment and the Secret agree with the configuration.
    let deployment = repo_file(DEPLOYMENT);
    assert_eq!(
        value_after(&deployment, "- name: http", "containerPort"),
        port_of(listen).to_string()
    );
    assert_eq!(
        value_after(&deployment, "- name: admin", "containerPort"),
        port_of(admin).to_string()
    );
    assert_eq!(value_after(&deployment, "readinessProbe:", "path"), "/readyz");
    assert_eq!(value_after(&deployment, "readinessProbe:", "port"), "admin");
    assert_eq!(value_after(&deployment, "livenessProbe:", "path"), "/healthz");
    assert_eq!(value_after(&deployment, "livenessProbe:", "port"), "admin");
    assert_eq!(
        value_after(&deployment, &format!("- name: {store_env}"), "key"),
        "store-url"
    );
    assert!(repo_file(SECRET).contains("\n  store-url: "), "{SECRET}: store-url");
    for needle in [
        "replicas: 2",
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "mountPath: /etc/portcullis",
        r#"args: ["serve", "--config", "/etc/portcullis""#,
    ] {
        assert!(deployment.contains(needle), "{DEPLOYMENT}: no {needle:?}");
    }
    // And the image: its command, and the ports it exposes.
    let dockerfile = repo_file("Dockerfile");
    for line in [
        r#"ENTRYPOINT ["portcullis"]"#.to_owned(),
        r#"CMD ["serve", "--config", "/etc/portcullis"]"#.to_owned(),
        format!("EXPOSE {} {}", port_of(listen), port_of(admin)),
    ] {
        assert!(dockerfile.lines().any(|l| l == line), "Dockerfile: no {line:?}");
    }
}

// ---------------------------------------------------------------------------------------
// systemd.

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let unit = repo_file(UNIT);
    // SIGHUP reloads (README: Signals); SIGTERM drains.
    assert!(
        unit.lines().any(|l| l == "ExecReload=/bin/kill -HUP $MAINPID"),
        "{UNIT}: ExecReload"
    );
    let installed = "/usr/local/bin/portcullis";
    let exec: Vec<&str> = unit.lines().filter(|l| l.starts_with("ExecStart=")).collect();
    assert_eq!(exec.len(), 1, "{exec:?}");
    assert!(
        exec[0].starts_with(&format!("ExecStart={installed} serve ")),
        "{exec:?}"
    );
    for needle in [
        "ProtectSystem=strict",
        "CapabilityBoundingSet=",
        "SystemCallFilter=@system-service",
        "StateDirectory=portcullis",
        "ConfigurationDirectory=portcullis",
        "Restart=on-failure",
    ] {
        assert!(unit.lines().any(|l| l == needle), "{UNIT}: no {needle:?}");
    }

    let Some(analyze) = on_path("systemd-analyze") else {
        eprintln!("skipped: systemd-analyze is not installed; {UNIT} was not verified");
        return;
    };
    // `verify` requires ExecStart's program to exist: where the unit installs it, else this
    // build's binary in its place (the unit is otherwise unchanged).
    let text = if Path::new(installed).is_file() {
        unit.clone()
    } else {
        unit.replace(&format!("ExecStart={installed} "), &format!("ExecStart={BIN} "))
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.service");
    std::fs::write(&path, text).unwrap();
    let o = run(Command::new(analyze).arg("verify").arg(&path).current_dir(dir.path()));
    assert!(o.status.success(), "{}", describe(&o));
    // Unknown keys and unparsable values are only warnings to `verify`: none may name the unit.
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let about: Vec<&str> = said.lines().filter(|l| l.contains("portcullis.service")).collect();
    assert!(about.is_empty(), "systemd-analyze verify:\n{}", about.join("\n"));
}
