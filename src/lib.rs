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
//!
//! # Module map
//!
//! One line per module: its job, and the modules of ours it may import. Arrows only point
//! down this list's layers (composition → request path → state → leaves); none runs back up
//! and there is no circle.
//!
//! | module | job | may import |
//! |---|---|---|
//! | `app` | composition root: snapshot, keys, listeners, watcher, reloads, shutdown | everything below |
//! | `panel` | the Admin Panel's embedded assets and their serving (no logic of its own) | `config`, `jwks`, `model`, `respond`, `snapshot`, `token` |
//! | `admin` | admin listener: health, readiness, metrics exposition | `metrics`, `respond`, `verifier` |
//! | `management` | each realm's Management API: entity collections, conditional writes compiled before commit, problem details, OpenAPI | `activity`, `config`, `issuer`, `metrics`, `model`, `respond`, `routing`, `snapshot`, `store`, `token`, `verifier` |
//! | `server` | listeners, TLS handshakes, workers, the request pipeline and its access line, trace context | `cors`, `decision`, `discovery`, `issuer`, `management`, `metrics`, `panel`, `model`, `proxy`, `rescue`, `routing`, `snapshot`, `tls`, `verifier` |
//! | `decision` | forward-auth entry points (nginx, Traefik/Caddy, Envoy): the original request read from a trusted proxy, decided by the verifier, answered allow/deny | `respond`, `rescue`, `routing`, `snapshot`, `verifier` |
//! | `explain` | `portcullis explain`: a request and token judged offline, each check's result | `model`, `routing`, `snapshot`, `time`, `token`, `verifier` |
//! | `issuer` | the embedded authorization server's endpoints and client authentication | `jwks`, `model`, `respond`, `snapshot`, `time`, `token`, `verifier` |
//! | `rescue` | every refusal and failure → one HTTP answer | `cors`, `model`, `proxy`, `respond`, `routing`, `snapshot`, `token`, `verifier` |
//! | `proxy` | forwarding, header rules, upstream TLS trust | `chain`, `model`, `snapshot`, `tls`, `verifier` |
//! | `verifier` | route → extract → verify → authorize: the embeddable decision | `model`, `routing`, `snapshot`, `time`, `token` |
//! | `store` | durable shared state: SQLite or PostgreSQL, migrations, change log; the replica follower | `chain`, `time`, `token` |
//! | `config` | sources → one compiled snapshot (errors name file, entity, field), warnings; watching | `discovery`, `inputs`, `jwks`, `model`, `routing`, `snapshot`, `time`, `tls`, `token` |
//! | `snapshot` | the immutable configuration: one entry per entity, its epoch | `discovery`, `inputs`, `jwks`, `model`, `routing`, `tls`, `token` |
//! | `discovery` | RFC 9728 protected resource metadata: each resource server's document, path and challenge URL | `model`, `respond`, `routing` |
//! | `token` | bearer extraction, JWS/JWE verification, claims checks, caches, revocations | `jwks`, `model`, `time` |
//! | `jwks` | key sets, remote fetch and refresh, signing keys | `chain`, `model`, `time`, `tls` |
//! | `activity` | recent request counts sampled from the metrics, for the Admin Panel | `metrics`, `model`, `time` |
//! | `metrics` | counters and histograms | `model` |
//! | `cors` | the Fetch standard's CORS protocol: preflights decided, actual answers' headers; pure | `model` |
//! | `routing` | path normalization, Host validation, the route table; pure | — |
//! | `model` | validated domain types, typed references, defaults; pure | — |
//! | `inputs` | the files a configuration was read from, with digests | — |
//! | `chain` | an error told with its causes, for logs | — |
//! | `respond` | the one builder of the gateway's own JSON answers | — |
//! | `tls` | PEM material → rustls configurations, the platform's trust store | — |
//! | `time` | the injectable clock | — |

pub mod activity;
pub mod admin;
pub mod app;
pub mod chain;
pub mod config;
pub mod cors;
pub mod decision;
pub mod discovery;
pub mod explain;
#[doc(hidden)]
pub mod fuzzing;
pub mod inputs;
pub mod issuer;
pub mod jwks;
pub mod management;
pub mod metrics;
pub mod model;
pub mod panel;
pub mod proxy;
pub mod rescue;
pub mod respond;
pub mod routing;
pub mod server;
pub mod snapshot;
pub mod store;
pub mod time;
pub mod tls;
pub mod token;
pub mod verifier;

pub use snapshot::Snapshot;
pub use verifier::{Allowed, Denied, Verifier};
