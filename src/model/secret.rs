//! Stored client secrets: argon2 PHC strings, checked when the configuration is compiled
//! (parse, don't validate: a hash that could never verify, or would cost unbounded memory at
//! every check, never reaches the issuer).

use argon2::{Algorithm, Params, PasswordHash};

/// The most argon2 memory a stored hash may ask for, in KiB (every check of it holds that
/// much while it runs, once per core).
pub const MAX_PHC_MEMORY_KIB: u32 = 256 * 1024;

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
