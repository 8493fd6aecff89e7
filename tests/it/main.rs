//! One integration test binary (as ripgrep does): real sockets on loopback, real keys,
//! real tokens, the real gateway.

// A test reports a failure by panicking, so `unwrap` and `expect` are how a test says "this
// must hold" (the crate-wide lints that forbid them guard the product, not its tests).
// `unreachable_pub` guards the library's API; a test binary's helpers have no API.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod support;

mod admin;
mod config;
mod cors;
mod decision;
mod discovery;
mod explain;
mod forwarding;
mod gateway;
mod issuer_auth;
mod issuer_limits;
mod issuer_token;
mod jwe;
mod jwks_remote;
mod lifecycle;
mod loadtest;
mod management;
mod opaque;
mod open_resources;
mod ops;
mod ops_artifacts;
mod panel;
mod properties;
mod proxy_protocol;
mod refusals;
mod reload;
mod report_only;
mod store;
mod tls;
mod trace;
mod workers;
