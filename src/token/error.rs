//! Why a token was refused. Each variant maps to exactly one RFC 6750 / RFC 9470 answer in
//! [`crate::rescue`]; the variant itself (never the token) goes to the log.

use thiserror::Error;

/// The answer class a [`TokenError`] gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Answer {
    /// `401` with a bare `Bearer` challenge (RFC 6750 § 3.1: no error code when no token).
    NoToken,
    /// `400` `invalid_request`.
    InvalidRequest,
    /// `401` `invalid_token`.
    InvalidToken,
    /// `403` `insufficient_scope` (RFC 6750 § 3.1).
    InsufficientScope,
    /// `401` `insufficient_user_authentication` with the `max_age` the resource requires
    /// (RFC 9470 § 3).
    InsufficientUserAuthentication {
        /// Seconds, as the challenge's `max_age` parameter.
        max_age: i64,
    },
    /// `503`: no token can be judged now: the realm has no usable keys, or its introspection
    /// endpoint does not answer.
    KeysUnavailable,
}

/// Why a bearer token (or its absence) does not grant access.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TokenError {
    /// No bearer credentials in the request.
    #[error("no bearer token")]
    Missing,
    /// The credentials are ambiguous (several `Authorization` headers).
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// Longer than the realm's bound; refused before parsing.
    #[error("token longer than {0} bytes")]
    TooLarge(usize),
    /// Not a compact JWS (or JWE), bad base64url, bad JSON.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// A five-part token that could not be decrypted to a signed JWT: refused algorithm,
    /// unknown `kid`, another resource server's key, tampered tag, unsigned content... All
    /// look the same to the client (no decryption oracle); the reason is for the log only.
    #[error("encrypted token refused: {0}")]
    Decryption(&'static str),
    /// A plain JWS where the resource server requires encrypted tokens.
    #[error("the resource server requires encrypted tokens")]
    EncryptionRequired,
    /// A five-part (JWE) token where none is accepted.
    #[error("encrypted tokens are not accepted for this resource server")]
    EncryptedNotAccepted,
    /// `alg` is `none`, HMAC, unknown, or outside the realm's allow-list.
    #[error("algorithm {0:?} refused")]
    AlgorithmRefused(String),
    /// The header carries a key or key reference (`jwk`, `jku`, `x5u`, `x5c`); we never use
    /// them (RFC 8725 § 3.10) and refuse tokens that try.
    #[error("header parameter {0:?} refused")]
    KeyHeaderRefused(&'static str),
    /// `crit` lists extensions we do not understand (RFC 7515 § 4.1.11).
    #[error("critical header extension not understood")]
    UnknownCritical,
    /// `typ` names another kind of JWT (RFC 8725 § 3.11), or `at+jwt` is required.
    #[error("token type {0:?} refused")]
    TypeRefused(String),
    /// No usable key has the token's `kid` (after the rate-limited refetch).
    #[error("no key matches the token's kid/alg")]
    UnknownKey,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// The realm has no usable key at all (remote set never fetched or too stale).
    #[error("realm has no usable keys")]
    NoUsableKeys,
    /// A required claim is absent.
    #[error("missing claim {0:?}")]
    MissingClaim(&'static str),
    /// A claim has the wrong type.
    #[error("claim {0:?} has the wrong type")]
    BadClaim(&'static str),
    /// `iss` is not the realm's issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` does not contain the resource server's audience.
    #[error("wrong audience")]
    WrongAudience,
    /// `exp` has passed (beyond leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `iat` is in the future (beyond leeway).
    #[error("token issued in the future")]
    IssuedInFuture,
    /// `auth_time` is in the future (beyond leeway): no authentication happened then, and
    /// such a token would pass any `max_age` for years.
    #[error("authentication time in the future")]
    AuthenticatedInFuture,
    /// `exp - iat` exceeds the protected resource's lifetime cap.
    #[error("token lifetime exceeds the resource's cap")]
    LifetimeTooLong,
    /// The token was revoked.
    #[error("token revoked")]
    Revoked,
    /// A claim to pass upstream cannot be a header value.
    #[error("claim {0:?} cannot be sent as a header")]
    UnrepresentableClaim(String),
    /// The resource server behind the route is not in force.
    #[error("resource server not in force")]
    ResourceServerNotInForce,
    /// The token lacks required scopes.
    #[error("insufficient scope")]
    InsufficientScope,
    /// `auth_time` is missing or older than `max_age` allows.
    #[error("authentication older than max_age {0} s")]
    AuthenticationTooOld(i64),
    /// The realm's introspection endpoint answered `"active": false` (RFC 7662 § 2.2).
    #[error("the authorization server says the token is not active")]
    Inactive,
    /// The realm's introspection endpoint failed, timed out, was busy or answered something
    /// that is not an RFC 7662 answer, and no cached answer may serve: nothing can be said
    /// about the token, so not 401 (the client's token may well be good) but 503.
    #[error("introspection unavailable")]
    IntrospectionUnavailable,
}

/// `reason` and `would_refuse` from one table, so a report-only label can never drift from
/// the refusal it stands for.
macro_rules! labels {
    ($($variant:pat => $reason:literal,)*) => {
        /// A short, stable label for logs and metrics.
        pub fn reason(&self) -> &'static str {
            match self {
                $($variant => $reason,)*
            }
        }

        /// The outcome of a request this would refuse on a report-only resource (`enforce =
        /// false`): `would_refuse_<reason>`, for logs and metrics.
        pub fn would_refuse(&self) -> &'static str {
            match self {
                $($variant => concat!("would_refuse_", $reason),)*
            }
        }
    };
}

impl TokenError {
    /// The answer this refusal gets.
    pub fn answer(&self) -> Answer {
        match self {
            Self::Missing => Answer::NoToken,
            Self::InvalidRequest(_) => Answer::InvalidRequest,
            Self::NoUsableKeys | Self::IntrospectionUnavailable => Answer::KeysUnavailable,
            Self::InsufficientScope => Answer::InsufficientScope,
            Self::AuthenticationTooOld(max_age) => Answer::InsufficientUserAuthentication { max_age: *max_age },
            _ => Answer::InvalidToken,
        }
    }

    /// Whether the refusal depends only on the token and the realm's keys and rules (not
    /// on time, the route or a fetch in progress), so it may be remembered briefly.
    pub fn is_deterministic(&self) -> bool {
        matches!(
            self,
            Self::Malformed(_)
                | Self::AlgorithmRefused(_)
                | Self::KeyHeaderRefused(_)
                | Self::UnknownCritical
                | Self::TypeRefused(_)
                | Self::BadSignature
                | Self::Decryption(_)
                | Self::MissingClaim(_)
                | Self::BadClaim(_)
                | Self::WrongIssuer
        )
    }

    labels! {
        Self::Missing => "missing_token",
        Self::InvalidRequest(_) => "invalid_request",
        Self::TooLarge(_) => "token_too_large",
        Self::Malformed(_) => "malformed",
        Self::EncryptedNotAccepted => "encrypted_not_accepted",
        Self::Decryption(_) => "decryption_failed",
        Self::EncryptionRequired => "encryption_required",
        Self::AlgorithmRefused(_) => "algorithm_refused",
        Self::KeyHeaderRefused(_) => "key_header_refused",
        Self::UnknownCritical => "unknown_crit",
        Self::TypeRefused(_) => "type_refused",
        Self::UnknownKey => "unknown_key",
        Self::BadSignature => "bad_signature",
        Self::NoUsableKeys => "no_usable_keys",
        Self::MissingClaim(_) => "missing_claim",
        Self::BadClaim(_) => "bad_claim",
        Self::WrongIssuer => "wrong_issuer",
        Self::WrongAudience => "wrong_audience",
        Self::Expired => "expired",
        Self::NotYetValid => "not_yet_valid",
        Self::IssuedInFuture => "issued_in_future",
        Self::AuthenticatedInFuture => "auth_time_in_future",
        Self::LifetimeTooLong => "lifetime_too_long",
        Self::Revoked => "revoked",
        Self::UnrepresentableClaim(_) => "unrepresentable_claim",
        Self::ResourceServerNotInForce => "resource_server_not_in_force",
        Self::InsufficientScope => "insufficient_scope",
        Self::AuthenticationTooOld(_) => "insufficient_user_authentication",
        Self::Inactive => "inactive",
        Self::IntrospectionUnavailable => "introspection_unavailable",
    }

    /// What the client is told in `error_description`. Deliberately coarse: the precise
    /// reason is logged, not handed to someone probing the verifier.
    pub fn description(&self) -> &'static str {
        match self {
            Self::Missing => "a bearer token is required",
            Self::InvalidRequest(_) => "the request carries ambiguous credentials",
            Self::Expired => "the access token expired",
            Self::NoUsableKeys => "token verification keys are unavailable",
            Self::InsufficientScope => "the access token lacks a required scope",
            Self::AuthenticationTooOld(_) => "a more recent authentication is required",
            Self::WrongAudience => "the access token is not meant for this resource",
            Self::Revoked => "the access token was revoked",
            Self::IntrospectionUnavailable => "the access token cannot be checked right now",
            _ => "the access token is invalid",
        }
    }
}
