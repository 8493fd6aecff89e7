//! `portcullis token`: mint a test access token from a realm's signing key.

use std::path::PathBuf;
use std::process::ExitCode;

use portcullis::issuer::{MintRequest, mint};

pub(super) struct Params {
    pub config: PathBuf,
    pub resource_server: String,
    pub scope: Option<String>,
    pub ttl: Option<String>,
    pub auth_age: String,
    pub client_id: String,
}

pub(super) fn run(p: &Params) -> ExitCode {
    match mint_token(p) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err((code, e)) => {
            eprintln!("portcullis token: {e}");
            ExitCode::from(code)
        }
    }
}

fn mint_token(p: &Params) -> Result<String, (u8, String)> {
    let clock = portcullis::time::system();
    let snap = portcullis::app::load_snapshot(&p.config, clock.clone(), None)
        .map_err(|e| (super::EXIT_CONFIG, format!("invalid configuration:\n{e}")))?;
    let (_, rs) = snap.resource_server(&p.resource_server).ok_or_else(|| {
        (
            super::EXIT_CONFIG,
            format!("no resource server has id {:?}", p.resource_server),
        )
    })?;
    let realm = &snap.realms[rs.realm];
    let signing = &snap.realms[rs.realm].signing;
    let key = match rs.signing_alg {
        Some(alg) => signing.active(alg),
        None => signing.first(),
    }
    .ok_or_else(|| {
        (
            1,
            format!("realm {:?} has no signing key (set signing_keys)", realm.name.as_str()),
        )
    })?;
    let ttl = match &p.ttl {
        Some(t) => portcullis::config::parse_duration(t).map_err(|e| (64, e))?,
        None => rs.access_token_ttl,
    };
    let age = portcullis::config::parse_duration(&p.auth_age).map_err(|e| (64, e))?;
    let scope = p
        .scope
        .clone()
        .unwrap_or_else(|| rs.default_scopes.to_space_separated());
    let now = clock.now();
    let req = MintRequest {
        issuer: &realm.issuer,
        audience: rs.audience.as_str(),
        subject: &p.client_id,
        client_id: &p.client_id,
        scope: &scope,
        now,
        ttl,
        auth_time: now - i64::try_from(age.as_secs()).unwrap_or(0),
    };
    mint(&req, key).map_err(|e| (1, e.to_string()))
}
