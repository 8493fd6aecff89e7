//! `portcullis check`: validate and summarize a configuration.

use std::path::Path;
use std::process::ExitCode;

use portcullis::jwks::alg_name;
use portcullis::model::ScopeMatch;

pub(super) fn run(config: &Path) -> ExitCode {
    let clock = portcullis::time::system();
    let snap = match portcullis::app::load_snapshot(config, clock, None) {
        Ok(s) => s,
        Err(errors) => {
            eprintln!("{} error(s) in {}:", errors.0.len(), config.display());
            eprintln!("{errors}");
            return ExitCode::from(super::EXIT_CONFIG);
        }
    };
    println!(
        "configuration OK: {}",
        snap.sources
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("listen {}", snap.settings.listen);
    if let Some(tls) = &snap.listener_tls {
        println!(
            "tls {} (client certificates: {})",
            tls.files.cert.display(),
            tls.files.client_ca.as_ref().map_or("off", |(_, auth)| auth.as_str())
        );
    }
    if let Some(ca) = &snap.upstream_ca {
        println!("upstream_ca {}", ca.file.display());
    }
    for (i, realm) in snap.realms.entries() {
        let health = realm.keys.health();
        let algs: Vec<&str> = realm.algorithms.iter().map(|a| alg_name(*a)).collect();
        println!(
            "realm {}  issuer {}  algorithms {}  local keys {}  signing keys {}{}",
            realm.name,
            realm.issuer,
            algs.join(","),
            health.local_keys,
            realm.signing.keys().len(),
            realm
                .jwks_remote
                .as_ref()
                .map(|r| format!("  jwks_uri {}", r.uri))
                .unwrap_or_default()
        );
        for rs in snap.resource_servers.iter().filter(|rs| rs.realm == i) {
            println!(
                "  resource server {}{}  aud {}  → {}://{}{}",
                rs.id,
                if rs.default { " (default)" } else { "" },
                rs.audience,
                rs.upstream.scheme,
                rs.upstream.authority,
                rs.upstream.base_path
            );
            for pr in snap
                .resources
                .iter()
                .filter(|pr| snap.resource_servers[pr.resource_server].id == rs.id)
            {
                let methods = pr
                    .methods
                    .as_ref()
                    .map(|m| m.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(","))
                    .unwrap_or_else(|| "*".into());
                let scopes = pr.scopes.to_space_separated();
                let rule = match pr.scope_match {
                    ScopeMatch::All => "all of",
                    ScopeMatch::Any => "any of",
                };
                println!(
                    "    {}  {} {}{}  needs {}{}{}",
                    pr.id,
                    methods,
                    pr.host.as_deref().map(|h| format!("host {h} ")).unwrap_or_default(),
                    pr.paths.join(" "),
                    if scopes.is_empty() {
                        "a valid token".to_owned()
                    } else {
                        format!("{rule} [{scopes}]")
                    },
                    pr.max_age.map(|a| format!("  max_age {a}s")).unwrap_or_default(),
                    pr.max_token_lifetime
                        .map(|a| format!("  max lifetime {a}s"))
                        .unwrap_or_default(),
                );
            }
        }
    }
    ExitCode::SUCCESS
}
