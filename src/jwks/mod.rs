//! Realm key sets: local files, remote `jwks_uri` fetched and refreshed in the background,
//! unknown-`kid` refetch with a cooldown, and last good keys kept for a bounded staleness.

mod fetch;
mod keyset;
mod store;

pub use fetch::{FetchError, Fetcher};
pub use keyset::{ASYMMETRIC_ALGS, KeySet, KeySetError, VerifyKey, alg_name, parse_alg};
pub use store::{KeyHealth, KeysView, RealmKeys};

mod signing;
pub use signing::{Signer, SigningKey, SigningKeys};
