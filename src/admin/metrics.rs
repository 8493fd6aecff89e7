//! `/metrics`: the gateway's [`Metrics`] plus figures read at scrape time from the current
//! snapshot (key health per realm, verified-token cache counters), in the OpenMetrics text
//! format that Prometheus scrapes.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::metrics::Metrics;
use crate::verifier::Verifier;

/// The content type of the exposition (OpenMetrics 1.0 text; Prometheus asks for it first).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric name starts with this.
pub const PREFIX: &str = "portcullis";

/// The registry `/metrics` encodes: `metrics` and a scrape-time collector over `verifier`.
pub fn registry(metrics: &Metrics, verifier: Arc<Verifier>) -> Registry {
    let mut registry = Registry::with_prefix(PREFIX);
    metrics.register(&mut registry);
    verifier.introspector().register(&mut registry);
    registry.register_collector(Box::new(Scrape { verifier }));
    registry
}

/// The exposition text.
pub fn encode(registry: &Registry) -> Result<String, fmt::Error> {
    let mut out = String::with_capacity(8 * 1024);
    prometheus_client::encoding::text::encode(&mut out, registry)?;
    Ok(out)
}

/// Reads key health and cache counters when scraped: they live in the key stores and the
/// cache already, and the realms are whatever the current snapshot has.
#[derive(Debug)]
struct Scrape {
    verifier: Arc<Verifier>,
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let snap = self.verifier.snapshot();
        let health: Vec<_> = snap.realms.iter().map(|r| (r.name.as_str(), r.keys.health())).collect();
        {
            let mut m = encoder.encode_descriptor(
                "jwks_fetches",
                "Remote JWKS fetch attempts, by realm",
                None,
                MetricType::Counter,
            )?;
            for (realm, h) in &health {
                ConstCounter::new(h.fetches).encode(m.encode_family(&[("realm", *realm)])?)?;
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "jwks_fetch_failures",
                "Failed remote JWKS fetches, by realm",
                None,
                MetricType::Counter,
            )?;
            for (realm, h) in &health {
                ConstCounter::new(h.failures).encode(m.encode_family(&[("realm", *realm)])?)?;
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "jwks_key_age_seconds",
                "Seconds since the realm's remote JWKS was last fetched successfully (remote realms after a first fetch)",
                None,
                MetricType::Gauge,
            )?;
            for (realm, h) in &health {
                if let Some(age) = h.remote_age {
                    ConstGauge::new(age).encode(m.encode_family(&[("realm", *realm)])?)?;
                }
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "jwks_usable",
                "1 when the realm has usable verification keys, else 0 (its routes answer 503)",
                None,
                MetricType::Gauge,
            )?;
            for (realm, h) in &health {
                ConstGauge::new(i64::from(h.usable)).encode(m.encode_family(&[("realm", *realm)])?)?;
            }
        }
        let cache = self.verifier.cache();
        ConstCounter::new(cache.hits()).encode(encoder.encode_descriptor(
            "token_cache_hits",
            "Verified-token cache lookups answered from the cache",
            None,
            MetricType::Counter,
        )?)?;
        ConstCounter::new(cache.misses()).encode(encoder.encode_descriptor(
            "token_cache_misses",
            "Verified-token cache lookups that had to verify the token",
            None,
            MetricType::Counter,
        )?)?;
        ConstGauge::new(i64::try_from(cache.len()).unwrap_or(i64::MAX)).encode(encoder.encode_descriptor(
            "token_cache_entries",
            "Verified tokens cached (approximate)",
            None,
            MetricType::Gauge,
        )?)?;
        Ok(())
    }
}
