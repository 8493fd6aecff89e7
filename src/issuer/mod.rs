//! Token issuance. For now: minting RFC 9068 access tokens from a realm's signing keys
//! (used by `portcullis token`); the `client_credentials` endpoint builds on it.

mod mint;

pub use mint::{MintError, MintRequest, mint};
