//! A load's results: req/s, latency percentiles from the HDR histogram, status counts and
//! errors, as a table or JSON, and the ratios of two targets.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::Plan;

/// One target's results.
pub(super) struct Outcome {
    /// The URL loaded.
    pub(super) target: String,
    /// From the first request to the last answer.
    pub(super) elapsed: Duration,
    /// Microseconds per answered request.
    pub(super) latency: Histogram<u64>,
    /// Answers by status.
    pub(super) statuses: BTreeMap<u16, u64>,
    /// Requests without an answer (connection failures, resets).
    pub(super) errors: u64,
    /// Distinct valid tokens sent in turn, when a pool was minted.
    pub(super) distinct_tokens: Option<usize>,
}

impl Outcome {
    fn count(&self) -> u64 {
        self.statuses.values().sum()
    }

    fn rps(&self) -> f64 {
        self.count() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Milliseconds at quantile `q`.
    fn ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }

    /// The JSON document `--json` prints.
    pub(super) fn json(&self, plan: &Plan) -> Value {
        json!({
            "target": self.target,
            "connections": plan.connections,
            "streams": plan.streams,
            "model": if plan.rate.is_some() { "open" } else { "closed" },
            "protocol": if plan.http2 { "h2c" } else { "http/1.1" },
            "rate": plan.rate,
            "duration_s": self.elapsed.as_secs_f64(),
            "requests": self.count(),
            "errors": self.errors,
            "rps": self.rps(),
            "distinct_tokens": self.distinct_tokens,
            "latency_ms": {
                "p50": self.ms(0.5), "p90": self.ms(0.9), "p99": self.ms(0.99), "p999": self.ms(0.999),
                "max": self.latency.max() as f64 / 1000.0,
            },
            "status": self.statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        })
    }

    /// The table printed on a terminal.
    pub(super) fn print(&self, plan: &Plan) {
        let protocol = match (plan.http2, plan.streams) {
            (false, _) => "HTTP/1.1".to_owned(),
            (true, 1) => "HTTP/2".to_owned(),
            (true, s) => format!("HTTP/2 × {s} streams"),
        };
        println!(
            "{}  {} {protocol} connections, {}  {:.1} s",
            self.target,
            plan.connections,
            match plan.rate {
                Some(r) => format!("open model at {r} req/s"),
                None => "closed model".to_owned(),
            },
            self.elapsed.as_secs_f64()
        );
        println!("| requests | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors |");
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
            self.count(),
            self.rps(),
            self.ms(0.5),
            self.ms(0.9),
            self.ms(0.99),
            self.ms(0.999),
            self.latency.max() as f64 / 1000.0,
            self.errors
        );
        let statuses: Vec<String> = self.statuses.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        println!("statuses: {}", statuses.join(", "));
        if let Some(n) = self.distinct_tokens
            && self.count() > n as u64
        {
            println!("note: {n} distinct tokens were sent in turn; later requests repeated them");
        }
    }
}

/// The first target's req/s and latencies over the second's.
pub(super) fn ratios(a: &Outcome, b: &Outcome) -> Value {
    let div = |x: f64, y: f64| if y > 0.0 { x / y } else { 0.0 };
    json!({
        "rps": div(a.rps(), b.rps()),
        "p50": div(a.ms(0.5), b.ms(0.5)),
        "p99": div(a.ms(0.99), b.ms(0.99)),
    })
}
