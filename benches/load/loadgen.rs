//! The load generator: `portcullis loadtest --json` as a child process (the one load
//! generator the project has), pinned to its CPUs when asked, its JSON read back.

use std::path::Path;
use std::process::Stdio;

use serde_json::Value;

use crate::BoxError;
use crate::procs::pinned;

/// What the harness reads from one `loadtest` run.
#[derive(Debug, Default, Clone)]
pub(crate) struct Outcome {
    pub(crate) requests: u64,
    pub(crate) rps: f64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub(crate) errors: u64,
    /// Answers whose status was not the expected one.
    pub(crate) unexpected: u64,
    /// Those answers by status, e.g. `503 × 12`.
    pub(crate) unexpected_statuses: String,
    /// Distinct tokens sent in turn, when a pool was minted, and whether it wrapped around.
    pub(crate) wrapped_pool: Option<u64>,
}

/// How the generator runs.
pub(crate) struct Generator<'a> {
    pub(crate) threads: usize,
    pub(crate) cpus: Option<&'a str>,
}

/// Runs `portcullis loadtest --json ARGS` and reads what it printed; `expect` is the status
/// every answer should have.
pub(crate) fn run(g: &Generator<'_>, args: &[String], expect: u16) -> Result<Outcome, BoxError> {
    let out = pinned(g.cpus, Path::new(env!("CARGO_BIN_EXE_portcullis")))
        .arg("loadtest")
        .args(args)
        .args(["--json", "--threads", &g.threads.to_string()])
        .stdin(Stdio::null())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "loadtest {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let v: Value = serde_json::from_str(text.trim()).map_err(|e| format!("loadtest printed no JSON ({e}): {text}"))?;
    let requests = v["requests"].as_u64().unwrap_or(0);
    let expected = v["status"][expect.to_string()].as_u64().unwrap_or(0);
    let distinct = v["distinct_tokens"].as_u64();
    Ok(Outcome {
        requests,
        rps: v["rps"].as_f64().unwrap_or(0.0)
            * if requests == 0 {
                0.0
            } else {
                expected as f64 / requests as f64
            },
        p50: v["latency_ms"]["p50"].as_f64().unwrap_or(0.0),
        p99: v["latency_ms"]["p99"].as_f64().unwrap_or(0.0),
        p999: v["latency_ms"]["p999"].as_f64().unwrap_or(0.0),
        errors: v["errors"].as_u64().unwrap_or(0),
        unexpected: requests - expected,
        unexpected_statuses: v["status"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| **k != expect.to_string())
                    .map(|(k, n)| format!("{k} × {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default(),
        wrapped_pool: distinct.filter(|d| requests > *d),
    })
}
