//! The gateway's metrics: counters and histograms recorded where things happen (the request
//! pipeline, the embedded issuers, the accept loop, reloads), encoded by the admin listener.
//! Figures read at scrape time (key health, cache counters) are collected there
//! ([`crate::admin`]), not here.
//!
//! Label values are bounded: configured names (realms, resource servers, protected
//! resources), fixed reason and error strings, status classes. Nothing a client sends
//! becomes a label value, so a scanner cannot blow up the series count.

use std::fmt;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::model::Name;

/// The label value of requests no protected resource (or resource server) matched.
pub const UNMATCHED: &str = "-";

/// Every metric recorded outside scrape time. Cheap to share (`Arc<Metrics>`); each
/// recording is an atomic add after a read-locked map lookup keyed by shared names.
#[derive(Debug)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    request_duration: Family<ServerLabels, Histogram, fn() -> Histogram>,
    upstream_duration: Family<ServerLabels, Histogram, fn() -> Histogram>,
    upstream_errors: Family<UpstreamErrorLabels, Counter>,
    tokens_issued: Family<IssuedLabels, Counter>,
    issuer_errors: Family<IssuerErrorLabels, Counter>,
    management_writes: Family<ManagementLabels, Counter>,
    /// Every label set of `requests` recorded so far, for [`Metrics::request_totals`] (the
    /// family cannot be iterated). Written once per new label set, never on the hot path.
    request_series: arc_swap::ArcSwap<std::collections::HashSet<RequestLabels>>,
    connections_open: Gauge,
    connections: Counter,
    worker_connections: Family<WorkerLabels, Counter>,
    /// Configuration reloads that replaced the running snapshot.
    pub reloads: Counter,
    /// Configuration reloads refused (the running snapshot stayed).
    pub reload_failures: Counter,
    unmatched: Name,
}

/// One finished request on the protected-resource path.
#[derive(Debug, Clone, Copy)]
pub struct RequestRecord<'a> {
    /// The matched resource server's id; `None` when nothing matched.
    pub resource_server: Option<&'a Name>,
    /// The matched protected resource's id; `None` when nothing matched.
    pub resource: Option<&'a Name>,
    /// `allowed`, a refusal reason, `upstream_error` or `body_too_large`.
    pub outcome: &'static str,
    /// The status answered.
    pub status: u16,
    /// From the request head to the response head.
    pub duration: Duration,
    /// From forwarding to the upstream's response head, when forwarded.
    pub upstream: Option<Duration>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    resource_server: Name,
    resource: Name,
    outcome: &'static str,
    status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    worker: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabels {
    resource_server: Name,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamErrorLabels {
    resource_server: Name,
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IssuedLabels {
    realm: Name,
    resource_server: Name,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ManagementLabels {
    realm: Name,
    kind: &'static str,
    action: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IssuerErrorLabels {
    realm: Name,
    endpoint: &'static str,
    error: &'static str,
}

impl EncodeLabelValue for Name {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> fmt::Result {
        fmt::Write::write_str(encoder, self.as_str())
    }
}

/// Seconds, from 0.5 ms to ~16 s doubling: token checks take microseconds to a millisecond,
/// upstreams milliseconds to seconds, and the response timeout defaults to 30 s.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The status class label of `status`.
pub fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty metrics.
    pub fn new() -> Self {
        Self {
            requests: Family::default(),
            request_duration: Family::new_with_constructor(latency),
            upstream_duration: Family::new_with_constructor(latency),
            upstream_errors: Family::default(),
            tokens_issued: Family::default(),
            issuer_errors: Family::default(),
            management_writes: Family::default(),
            request_series: arc_swap::ArcSwap::default(),
            connections_open: Gauge::default(),
            connections: Counter::default(),
            worker_connections: Family::default(),
            reloads: Counter::default(),
            reload_failures: Counter::default(),
            unmatched: Name::new(UNMATCHED),
        }
    }

    /// Registers every metric (under the registry's prefix, `portcullis` in the gateway).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "requests",
            "Requests to protected resources, by resource server, resource, outcome (allowed, public or the refusal reason) and status class",
            self.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from the request head to the response head, by resource server",
            self.request_duration.clone(),
        );
        registry.register(
            "upstream_duration_seconds",
            "Time from forwarding to the upstream's response head, by resource server",
            self.upstream_duration.clone(),
        );
        registry.register(
            "upstream_errors",
            "Forwarding failures, by resource server and kind",
            self.upstream_errors.clone(),
        );
        registry.register(
            "tokens_issued",
            "Access tokens issued by the embedded issuers, by realm and resource server",
            self.tokens_issued.clone(),
        );
        registry.register(
            "issuer_errors",
            "Embedded issuer error answers, by realm, endpoint and RFC error code",
            self.issuer_errors.clone(),
        );
        registry.register(
            "management_writes",
            "Committed Management API writes, by realm, entity kind and action",
            self.management_writes.clone(),
        );
        registry.register(
            "connections_open",
            "Open connections on the public listener",
            self.connections_open.clone(),
        );
        registry.register(
            "connections",
            "Connections accepted on the public listener",
            self.connections.clone(),
        );
        registry.register(
            "worker_connections",
            "Connections accepted on the public listener, by server worker (how evenly the kernel spreads them)",
            self.worker_connections.clone(),
        );
        registry.register(
            "config_reloads",
            "Configuration reloads that replaced the running configuration",
            self.reloads.clone(),
        );
        registry.register(
            "config_reload_failures",
            "Configuration reloads refused; the running configuration stayed",
            self.reload_failures.clone(),
        );
    }

    /// Records one finished request.
    pub fn request(&self, r: &RequestRecord<'_>) {
        let rs = r.resource_server.unwrap_or(&self.unmatched);
        let labels = RequestLabels {
            resource_server: rs.clone(),
            resource: r.resource.unwrap_or(&self.unmatched).clone(),
            outcome: r.outcome,
            status: status_class(r.status),
        };
        // The read-locked lookup `get_or_create` starts with; a new series is also listed.
        if let Some(counter) = self.requests.get(&labels) {
            counter.inc();
        } else {
            self.requests.get_or_create(&labels).inc();
            self.request_series.rcu(|series| {
                let mut series = std::collections::HashSet::clone(series);
                series.insert(labels.clone());
                series
            });
        }
        let server = ServerLabels {
            resource_server: rs.clone(),
        };
        self.request_duration
            .get_or_create(&server)
            .observe(r.duration.as_secs_f64());
        if let Some(up) = r.upstream {
            self.upstream_duration.get_or_create(&server).observe(up.as_secs_f64());
        }
    }

    /// Requests counted so far, summed by (resource server, outcome): what the Admin
    /// Panel's activity view samples.
    pub fn request_totals(&self) -> std::collections::HashMap<(Name, &'static str), u64> {
        let series = self.request_series.load();
        let mut out = std::collections::HashMap::new();
        for labels in series.iter() {
            if let Some(counter) = self.requests.get(labels) {
                *out.entry((labels.resource_server.clone(), labels.outcome)).or_insert(0) += counter.get();
            }
        }
        out
    }

    /// Records a forwarding failure of `kind`.
    pub fn upstream_error(&self, resource_server: &Name, kind: &'static str) {
        self.upstream_errors
            .get_or_create(&UpstreamErrorLabels {
                resource_server: resource_server.clone(),
                kind,
            })
            .inc();
    }

    /// Records an issued access token.
    pub fn token_issued(&self, realm: &Name, resource_server: &Name) {
        self.tokens_issued
            .get_or_create(&IssuedLabels {
                realm: realm.clone(),
                resource_server: resource_server.clone(),
            })
            .inc();
    }

    /// Records a committed Management API write (`kind`: an entity kind or `revocation`;
    /// `action`: `create`, `update`, `delete`, `revoke`).
    pub fn management_write(&self, realm: &Name, kind: &'static str, action: &'static str) {
        self.management_writes
            .get_or_create(&ManagementLabels {
                realm: realm.clone(),
                kind,
                action,
            })
            .inc();
    }

    /// Records an issuer error answer (`error` is the RFC 6749 § 5.2 code).
    pub fn issuer_error(&self, realm: &Name, endpoint: &'static str, error: &'static str) {
        self.issuer_errors
            .get_or_create(&IssuerErrorLabels {
                realm: realm.clone(),
                endpoint,
                error,
            })
            .inc();
    }

    /// The accepted-connections counter of server worker `worker`, resolved once per worker.
    pub fn worker_connections(&self, worker: usize) -> Counter {
        self.worker_connections
            .get_or_create(&WorkerLabels {
                worker: worker.to_string(),
            })
            .clone()
    }

    /// Counts an accepted connection as open until the guard drops.
    pub fn connection_opened(&self) -> ConnectionGuard {
        self.connections.inc();
        self.connections_open.inc();
        ConnectionGuard {
            open: self.connections_open.clone(),
        }
    }
}

/// Keeps a connection counted in `connections_open`.
#[derive(Debug)]
pub struct ConnectionGuard {
    open: Gauge,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.open.dec();
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    fn text(m: &Metrics) -> String {
        let mut registry = Registry::with_prefix("portcullis");
        m.register(&mut registry);
        let mut out = String::new();
        encode(&mut out, &registry).unwrap_or_else(|e| panic!("{e}"));
        out
    }

    #[test]
    fn requests_are_counted_with_bounded_labels() {
        let m = Metrics::new();
        let (rs, pr) = (Name::new("api"), Name::new("read"));
        let allowed = RequestRecord {
            resource_server: Some(&rs),
            resource: Some(&pr),
            outcome: "allowed",
            status: 200,
            duration: Duration::from_millis(3),
            upstream: Some(Duration::from_millis(2)),
        };
        m.request(&allowed);
        m.request(&allowed);
        m.request(&RequestRecord {
            resource_server: None,
            resource: None,
            outcome: "no_route",
            status: 404,
            duration: Duration::from_micros(20),
            upstream: None,
        });
        let out = text(&m);
        assert!(
            out.contains(
                r#"portcullis_requests_total{resource_server="api",resource="read",outcome="allowed",status="2xx"} 2"#
            ),
            "{out}"
        );
        assert!(
            out.contains(
                r#"portcullis_requests_total{resource_server="-",resource="-",outcome="no_route",status="4xx"} 1"#
            ),
            "{out}"
        );
        assert!(
            out.contains(r#"portcullis_upstream_duration_seconds_count{resource_server="api"} 2"#),
            "{out}"
        );
        assert!(
            out.contains(r#"portcullis_request_duration_seconds_count{resource_server="-"} 1"#),
            "{out}"
        );
    }

    #[test]
    fn connections_open_follows_guards() {
        let m = Metrics::new();
        let a = m.connection_opened();
        let b = m.connection_opened();
        drop(a);
        let out = text(&m);
        assert!(out.contains("portcullis_connections_open 1\n"), "{out}");
        assert!(out.contains("portcullis_connections_total 2\n"), "{out}");
        drop(b);
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(101), "1xx");
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(308), "3xx");
        assert_eq!(status_class(413), "4xx");
        assert_eq!(status_class(504), "5xx");
    }
}
