//! OAuth clients of the embedded issuer (machines using `client_credentials`).

use std::path::PathBuf;
use std::time::Duration;

use super::{Name, ScopeSet, Validity};

/// How a client authenticates at the token endpoint (RFC 7591 § 2
/// `token_endpoint_auth_method`). A client must use exactly its registered method.
#[derive(Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic with the client secret (RFC 6749 § 2.3.1). Holds the argon2 PHC hash.
    SecretBasic {
        /// The stored hash; the secret itself is never kept.
        hash: String,
    },
    /// `client_id` and `client_secret` in the form body (RFC 6749 § 2.3.1).
    SecretPost {
        /// The stored hash.
        hash: String,
    },
    /// A JWT assertion MACed with the shared secret (RFC 7523, OIDC Core § 9). HMAC needs
    /// the secret itself, so it is read from an environment variable at load.
    SecretJwt {
        /// The shared secret.
        secret: Vec<u8>,
    },
    /// A JWT assertion signed with the client's private key (RFC 7523). The public keys
    /// are in the snapshot's `client_keys`.
    PrivateKeyJwt,
}

impl std::fmt::Debug for ClientAuth {
    // NB: never print a secret or its hash.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.method())
    }
}

impl ClientAuth {
    /// The registered method name.
    pub fn method(&self) -> &'static str {
        match self {
            Self::SecretBasic { .. } => "client_secret_basic",
            Self::SecretPost { .. } => "client_secret_post",
            Self::SecretJwt { .. } => "client_secret_jwt",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

/// A machine client of a realm's embedded issuer.
#[derive(Debug, Clone)]
pub struct Client {
    /// `client_id`: printable ASCII 0x21–0x7E (RFC 6749 § A.1 `client-id` alphabet, no space).
    pub client_id: Name,
    /// Display name.
    pub name: String,
    /// Its realm.
    pub realm: super::RealmRef,
    /// How it authenticates.
    pub auth: ClientAuth,
    /// Scopes it may be granted; `None` for any scope of its allowed resource servers.
    pub scopes: Option<ScopeSet>,
    /// Resource servers it may get tokens for; `None` for all of its realm.
    pub resource_servers: Option<Vec<super::ResourceServerRef>>,
    /// Lifetime of its tokens, never above the target's `access_token_ttl`.
    pub access_token_ttl: Option<Duration>,
    /// When it is in force.
    pub validity: Validity,
    /// Contact addresses (informational).
    pub contacts: Vec<String>,
    /// Free-form metadata (informational).
    pub metadata: toml::Table,
    /// Where it was defined.
    pub source: PathBuf,
}

/// A resource server's own credentials, for introspection and revocation.
#[derive(Clone, PartialEq, Eq)]
pub struct ResourceServerCredentials {
    /// Its client id. Defaults to the resource server's id.
    pub client_id: String,
    /// Argon2 PHC hash of its secret.
    pub secret_hash: String,
}

impl std::fmt::Debug for ResourceServerCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceServerCredentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}
