//! Compiling a realm's `introspection_*` fields: the external authorization server's
//! RFC 7662 endpoint, the gateway's credentials there, and how its answers are cached.

use super::compile::CompileContext;
use super::raw::RawRealm;
use super::report::Entity;
use crate::model::{Introspection, defaults};

/// The realm's introspection endpoint, when it names one; every `introspection_*` field
/// without `introspection_endpoint` is an error, as is a secret that cannot be read.
pub(super) fn compile(e: &mut Entity<'_, '_>, raw: &RawRealm, cx: &CompileContext<'_>) -> Option<Introspection> {
    let Some(text) = raw.introspection_endpoint.as_deref() else {
        for (field, set) in [
            ("introspection_client_id", raw.introspection_client_id.is_some()),
            (
                "introspection_client_secret_env",
                raw.introspection_client_secret_env.is_some(),
            ),
            (
                "introspection_client_secret_file",
                raw.introspection_client_secret_file.is_some(),
            ),
            (
                "danger_allow_http_introspection",
                raw.danger_allow_http_introspection.is_some(),
            ),
        ] {
            if set {
                e.err(field, "set without introspection_endpoint");
            }
        }
        return None;
    };
    let endpoint = super::jwks::endpoint_url(
        e,
        ("introspection_endpoint", "danger_allow_http_introspection"),
        text,
        raw.danger_allow_http_introspection == Some(true),
    );
    let client_id = e.required("introspection_client_id", &raw.introspection_client_id);
    let secret = secret(e, raw, cx);
    let [cache_ttl, negative_ttl, max_stale, timeout] = [
        (
            "introspection_cache_ttl",
            &raw.introspection_cache_ttl,
            defaults::INTROSPECTION_CACHE_TTL,
        ),
        (
            "introspection_negative_ttl",
            &raw.introspection_negative_ttl,
            defaults::INTROSPECTION_NEGATIVE_TTL,
        ),
        (
            "introspection_max_stale",
            &raw.introspection_max_stale,
            defaults::INTROSPECTION_MAX_STALE,
        ),
        (
            "introspection_timeout",
            &raw.introspection_timeout,
            defaults::INTROSPECTION_TIMEOUT,
        ),
    ]
    .map(|(field, value, default)| e.duration(field, value, default));
    if timeout.is_zero() {
        e.err("introspection_timeout", "must be positive");
    }
    let max_bytes = raw.introspection_max_bytes.unwrap_or(defaults::INTROSPECTION_MAX_BYTES);
    if max_bytes < 256 {
        e.err("introspection_max_bytes", "must be at least 256");
    }
    let max_concurrency = raw
        .introspection_max_concurrency
        .unwrap_or(defaults::INTROSPECTION_MAX_CONCURRENCY);
    if max_concurrency == 0 {
        e.err("introspection_max_concurrency", "must be at least 1");
    }
    let (client_id, secret) = (client_id?, secret?);
    let authorization = crate::model::secret::basic_authorization(client_id, &secret).or_else(|| {
        e.err(
            "introspection_client_secret_env",
            "the credentials cannot be sent as an Authorization header",
        );
        None
    })?;
    Some(Introspection {
        endpoint: endpoint?,
        client_id: client_id.to_owned(),
        authorization,
        cache_ttl,
        negative_ttl,
        max_stale,
        timeout,
        max_bytes,
        max_concurrency,
    })
}

/// The client secret: from the environment variable `introspection_client_secret_env`
/// names, or the file `introspection_client_secret_file` names (a trailing newline dropped);
/// exactly one of them.
fn secret(e: &mut Entity<'_, '_>, raw: &RawRealm, cx: &CompileContext<'_>) -> Option<String> {
    match (
        &raw.introspection_client_secret_env,
        &raw.introspection_client_secret_file,
    ) {
        (Some(var), None) => match (cx.env)(var) {
            Some(s) if !s.is_empty() => Some(s),
            _ => {
                e.err(
                    "introspection_client_secret_env",
                    format!("environment variable ${var} is not set"),
                );
                None
            }
        },
        (None, Some(file)) => {
            let path = e.resolve(file);
            match e.read(&path) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(s) if !s.trim_end_matches(['\r', '\n']).is_empty() => {
                        Some(s.trim_end_matches(['\r', '\n']).to_owned())
                    }
                    _ => {
                        e.err(
                            "introspection_client_secret_file",
                            format!("{}: holds no secret (empty or not UTF-8)", path.display()),
                        );
                        None
                    }
                },
                Err(why) => {
                    e.err(
                        "introspection_client_secret_file",
                        format!("cannot read {}: {why}", path.display()),
                    );
                    None
                }
            }
        }
        (Some(_), Some(_)) => {
            e.err(
                "introspection_client_secret_env",
                "set either introspection_client_secret_env or introspection_client_secret_file, not both",
            );
            None
        }
        (None, None) => {
            e.err(
                "introspection_client_secret_env",
                "is required with introspection_endpoint (or introspection_client_secret_file)",
            );
            None
        }
    }
}
