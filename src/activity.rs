//! Recent activity: the request counters ([`Metrics::request_totals`]) sampled every
//! [`INTERVAL`] and kept for [`KEEP`] samples, so the Admin Panel can show what each
//! resource server allowed and refused, and why, over the last minutes. One gateway's own
//! counts (each replica keeps its own), read from the counters the metrics already keep:
//! nothing is added to the request path.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use arc_swap::ArcSwap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::metrics::Metrics;
use crate::model::Name;
use crate::time::SharedClock;

/// How often the counters are sampled.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// Samples kept: ten minutes.
pub const KEEP: usize = 60;

/// The totals at one instant.
#[derive(Debug, Clone)]
struct Sample {
    /// Unix seconds.
    at: i64,
    totals: HashMap<(Name, &'static str), u64>,
}

/// The sampled counters.
#[derive(Debug)]
pub struct Activity {
    metrics: Arc<Metrics>,
    clock: SharedClock,
    /// Written by the one sampling task (copy, push, swap); read by reports.
    samples: ArcSwap<VecDeque<Sample>>,
}

impl Activity {
    /// Sampling `metrics`, timed by `clock`; the first sample is taken now.
    pub fn new(metrics: Arc<Metrics>, clock: SharedClock) -> Self {
        let activity = Self {
            metrics,
            clock,
            samples: ArcSwap::default(),
        };
        activity.sample();
        activity
    }

    /// Takes a sample now, forgetting the oldest beyond [`KEEP`].
    pub fn sample(&self) {
        let sample = self.now();
        self.samples.rcu(|samples| {
            let mut samples = VecDeque::clone(samples);
            samples.push_back(sample.clone());
            while samples.len() > KEEP {
                samples.pop_front();
            }
            samples
        });
    }

    fn now(&self) -> Sample {
        Sample {
            at: self.clock.now(),
            totals: self.metrics.request_totals(),
        }
    }

    /// Samples every [`INTERVAL`] until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => self.sample(),
                _ = stop.changed() => return,
            }
        }
    }

    /// The requests of the resource servers `servers` between consecutive samples, the last
    /// bucket ending now: `{"interval_seconds", "buckets": [{"from", "to", "counts":
    /// {server: {outcome: n}}}], "totals": {server: {outcome: n}}}` (totals over the buckets).
    pub fn report(&self, servers: &[&str]) -> Value {
        let mut points: Vec<Sample> = self.samples.load().iter().cloned().collect();
        points.push(self.now());
        let mut totals: BTreeMap<String, BTreeMap<&'static str, u64>> = BTreeMap::new();
        let buckets: Vec<Value> = points
            .windows(2)
            .filter_map(|pair| match pair {
                [from, to] => Some((from, to)),
                _ => None,
            })
            .map(|(from, to)| {
                let mut counts: BTreeMap<String, BTreeMap<&'static str, u64>> = BTreeMap::new();
                for ((server, outcome), n) in &to.totals {
                    if !servers.contains(&server.as_str()) {
                        continue;
                    }
                    let before = from.totals.get(&(server.clone(), *outcome)).copied().unwrap_or(0);
                    let delta = n.saturating_sub(before);
                    if delta > 0 {
                        *counts
                            .entry(server.as_str().to_owned())
                            .or_default()
                            .entry(outcome)
                            .or_default() += delta;
                        *totals
                            .entry(server.as_str().to_owned())
                            .or_default()
                            .entry(outcome)
                            .or_default() += delta;
                    }
                }
                json!({ "from": from.at, "to": to.at, "counts": counts })
            })
            .collect();
        json!({
            "interval_seconds": INTERVAL.as_secs(),
            "window_buckets": KEEP,
            "buckets": buckets,
            "totals": totals,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::RequestRecord;
    use crate::time::ManualClock;

    fn record(m: &Metrics, rs: &Name, outcome: &'static str) {
        m.request(&RequestRecord {
            resource_server: Some(rs),
            resource: None,
            outcome,
            status: 200,
            duration: Duration::ZERO,
            upstream: None,
        });
    }

    #[test]
    fn buckets_hold_what_happened_between_samples_for_the_servers_asked() {
        let metrics = Arc::new(Metrics::new());
        let clock = ManualClock::new(1_000);
        let activity = Activity::new(metrics.clone(), clock.clone());
        let (orders, other) = (Name::new("orders"), Name::new("other"));
        record(&metrics, &orders, "allowed");
        record(&metrics, &orders, "allowed");
        record(&metrics, &other, "allowed");
        clock.advance(10);
        activity.sample();
        record(&metrics, &orders, "insufficient_scope");
        clock.advance(3);
        let report = activity.report(&["orders"]);
        assert_eq!(report["buckets"][0]["counts"], json!({"orders": {"allowed": 2}}));
        assert_eq!(
            report["buckets"][1],
            json!({"from": 1010, "to": 1013, "counts": {"orders": {"insufficient_scope": 1}}})
        );
        assert_eq!(
            report["totals"],
            json!({"orders": {"allowed": 2, "insufficient_scope": 1}})
        );
    }
}
