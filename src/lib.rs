//! # portcullis
//!
//! A reverse-proxy gateway that enforces OAuth 2.0 protected resources in front of existing
//! APIs. Each request is matched to a protected resource, its bearer token verified against
//! the realm's keys, audience, scopes and `max_age` enforced, and only then forwarded.
//!
//! The library exposes the same decision the gateway makes, for resource servers that want
//! to check tokens themselves: load a [`Verifier`] with [`app::verifier`] and call
//! [`Verifier::check`] (see `examples/embed.rs`).
//!
//! Modules, in the direction data flows: [`server`] → [`routing`] → [`token`] → [`proxy`],
//! with [`rescue`] answering refusals, over an immutable [`snapshot`] compiled by [`config`].

pub mod admin;
pub mod app;
pub mod config;
#[doc(hidden)]
pub mod fuzzing;
pub mod inputs;
pub mod issuer;
pub mod jwks;
pub mod metrics;
pub mod model;
pub mod proxy;
pub mod rescue;
pub mod routing;
pub mod server;
pub mod snapshot;
pub mod time;
pub mod tls;
pub mod token;
pub mod verifier;

pub use snapshot::Snapshot;
pub use verifier::{Allowed, Denied, Verifier};
