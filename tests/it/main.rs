//! One integration test binary (as ripgrep does): real sockets on loopback, real keys,
//! real tokens, the real gateway.

mod support;

mod config;
mod forwarding;
mod gateway;
mod jwks_remote;
mod refusals;
mod admin;
mod jwe;
mod reload;
mod issuer_token;
mod issuer_auth;
