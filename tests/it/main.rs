//! One integration test binary (as ripgrep does): real sockets on loopback, real keys,
//! real tokens, the real gateway.

// `unreachable_pub` guards the library's API; a test binary's helpers have no API.
#![allow(unreachable_pub)]

mod support;

mod admin;
mod config;
mod forwarding;
mod gateway;
mod issuer_auth;
mod issuer_limits;
mod issuer_token;
mod jwe;
mod jwks_remote;
mod lifecycle;
mod ops;
mod properties;
mod refusals;
mod reload;
mod tls;
mod workers;
