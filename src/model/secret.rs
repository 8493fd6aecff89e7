//! Stored client secrets: argon2 PHC strings, checked when the configuration is compiled
//! (parse, don't validate: a hash that could never verify, or would cost unbounded memory at
//! every check, never reaches the issuer).

use argon2::{Algorithm, Params, PasswordHash};
use base64::Engine as _;
use http::HeaderValue;

/// The most argon2 memory a stored hash may ask for, in KiB (every check of it holds that
/// much while it runs, once per core).
pub const MAX_PHC_MEMORY_KIB: u32 = 256 * 1024;

/// RFC 6749 § 2.3.1 `client_secret_basic`: `Authorization: Basic` of the client id and
/// secret, each form-urlencoded first, then Base64; marked sensitive, so it never prints.
/// `None` only if the result is not a header value (it always is: Base64 is ASCII).
pub fn basic_authorization(client_id: &str, secret: &str) -> Option<HeaderValue> {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(client_id), enc(secret)));
    let mut value = HeaderValue::from_str(&format!("Basic {credentials}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// Whether `phc` is a PHC string argon2 can verify against, with a salt, a hash, valid
/// parameters and at most [`MAX_PHC_MEMORY_KIB`] of memory.
pub fn check_phc(phc: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(phc).map_err(|e| format!("not a PHC string: {e}"))?;
    if Algorithm::try_from(parsed.algorithm.as_str()).is_err() {
        return Err(format!("algorithm {} is not argon2", parsed.algorithm));
    }
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err("the PHC string has no salt or no hash".into());
    }
    let params = Params::try_from(&parsed).map_err(|e| format!("bad argon2 parameters: {e}"))?;
    if params.m_cost() > MAX_PHC_MEMORY_KIB {
        return Err(format!(
            "argon2 memory cost m={} KiB is above {MAX_PHC_MEMORY_KIB} KiB (each check holds it while it runs)",
            params.m_cost()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_encodes_both_parts() {
        let v = basic_authorization("rs 1", "p:w").unwrap_or_else(|| panic!("no header"));
        assert!(v.is_sensitive());
        let b64 = v.to_str().unwrap_or_default().trim_start_matches("Basic ");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap_or_default();
        assert_eq!(decoded, b"rs+1:p%3Aw");
        assert_eq!(format!("{v:?}"), "Sensitive");
    }
}
