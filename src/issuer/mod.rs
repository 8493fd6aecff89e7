//! Token issuance. For now: minting RFC 9068 access tokens from a realm's signing keys
//! (used by `portcullis token`); the `client_credentials` endpoint builds on it.

mod error;
mod mint;
mod secrets;

pub use error::OAuthError;
pub use mint::{MintError, MintRequest, mint};
pub use secrets::{SecretChecker, SecretError, check_phc, hash_secret};
