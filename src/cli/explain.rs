//! `portcullis explain`: print [`portcullis::explain`]'s answer, as text or JSON.

use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

use http::{Method, Uri};
use portcullis::explain::{Explanation, explain};

pub(super) struct Params {
    pub config: PathBuf,
    pub method: String,
    pub url: String,
    pub token: Option<String>,
    pub json: bool,
}

pub(super) fn run(p: &Params) -> ExitCode {
    let clock = portcullis::time::system();
    let snap = match portcullis::app::load_snapshot(&p.config, clock.clone(), None) {
        Ok(s) => s,
        Err(errors) => {
            eprintln!("{} error(s) in {}:", errors.0.len(), p.config.display());
            eprintln!("{errors}");
            return ExitCode::from(super::EXIT_CONFIG);
        }
    };
    let Ok(method) = Method::from_str(&p.method.to_ascii_uppercase()) else {
        eprintln!("portcullis explain: {:?} is not an HTTP method", p.method);
        return ExitCode::from(super::EXIT_USAGE);
    };
    let uri = match Uri::from_str(&p.url) {
        Ok(u) if u.path().starts_with('/') => u,
        _ => {
            eprintln!("portcullis explain: {:?} is not a URL or absolute path", p.url);
            return ExitCode::from(super::EXIT_USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("portcullis explain: {e}");
            return ExitCode::FAILURE;
        }
    };
    let host = uri.authority().map(|a| a.as_str());
    let x = runtime.block_on(explain(&snap, clock, &method, host, uri.path(), p.token.as_deref()));
    if p.json {
        match serde_json::to_string_pretty(&x) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("portcullis explain: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", text(&x));
    }
    ExitCode::SUCCESS
}

/// The explanation for people.
fn text(x: &Explanation) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    let host = x.host.as_deref().unwrap_or("(any host)");
    match (&x.path, &x.path_error) {
        (Some(path), _) => line(format!("{} {host} {path}", x.method)),
        (None, why) => line(format!(
            "{} {host}: path refused: {}",
            x.method,
            why.as_deref().unwrap_or("?")
        )),
    }
    if let Some(m) = &x.matched {
        line(format!(
            "matched: {} (pattern {:?}) of resource server {} in realm {}",
            m.resource, m.pattern, m.resource_server, m.realm
        ));
        for l in &x.also_matching {
            line(format!("  beats {} (pattern {:?}): {}", l.resource, l.pattern, l.why));
        }
        if m.auth == "none" {
            line("requires: nothing (auth = \"none\")".into());
        } else {
            let scopes = if m.scopes.is_empty() {
                "no scope".to_owned()
            } else {
                format!("{} of [{}]", m.scope_match, m.scopes.join(" "))
            };
            line(format!(
                "requires: a bearer token ({}) from issuer {} for audience {}; scopes: {scopes}",
                m.tokens, m.issuer, m.audience
            ));
            if let Some(age) = m.max_age {
                line(format!("  max_age: {age} s since authentication"));
            }
            if let Some(cap) = m.max_token_lifetime {
                line(format!("  max_token_lifetime: {cap} s"));
            }
        }
        if !m.enforce {
            line("enforce: false (report-only: refusals are logged and counted, the request is forwarded)".into());
        }
    }
    if !x.checks.is_empty() {
        line("checks:".into());
        for c in &x.checks {
            let detail = c.detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default();
            line(format!("  {:<8} {}{detail}", c.result, c.name));
        }
    }
    line(format!("verdict: {}", x.verdict));
    out
}
