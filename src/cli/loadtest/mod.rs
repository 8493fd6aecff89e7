//! `portcullis loadtest`: HTTP/1.1 or h2c load over N keep-alive connections (and M streams
//! per HTTP/2 connection) for a time or a number of requests, as fast as possible (closed
//! model) or at a fixed rate (open model). Resource requests carry bearer tokens from a fixed
//! value, a realm's signing key or a token endpoint, with a share of invalid ones; or each
//! request is a client_credentials token request, to load a token endpoint. Reports req/s,
//! latency percentiles (HDR histogram), status counts and errors, as a table or JSON;
//! `--compare` runs the same load against a second target and prints the ratios.

mod conn;
mod drive;
mod grant;
mod report;
mod tokens;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};

use grant::Grant;
use tokens::Tokens;

/// What `loadtest` was asked for: its command-line arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Params {
    /// The URL to load (http://).
    #[arg(long)]
    pub target: String,
    /// Run the same load against this URL next and print the ratios.
    #[arg(long)]
    pub compare: Option<String>,
    /// Keep-alive connections.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Concurrent streams per connection (HTTP/2 only).
    #[arg(long, default_value_t = 1, requires = "http2")]
    pub streams: usize,
    /// How long, e.g. 10s (default 10s unless --requests is given).
    #[arg(long)]
    pub duration: Option<String>,
    /// Stop after this many requests.
    #[arg(long)]
    pub requests: Option<u64>,
    /// Requests per second in all (open model: latency from when each was due); default
    /// as fast as possible (closed model).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Request method (POST with --client-credentials).
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// An extra request header, `Name: value` (repeatable).
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// A fixed bearer token.
    #[arg(long, conflicts_with_all = ["config", "token_url", "client_credentials"])]
    pub token: Option<String>,
    /// Mint tokens from this configuration's realm key (with --resource-server).
    #[arg(long, requires = "resource_server", conflicts_with_all = ["token_url", "client_credentials"])]
    pub config: Option<PathBuf>,
    /// The resource server minted tokens are for; with --token-url or
    /// --client-credentials, the `resource` (RFC 8707) requested.
    #[arg(long)]
    pub resource_server: Option<String>,
    /// The algorithm of the realm key that mints (default: the resource server's
    /// `signing_alg`, else the realm's first key).
    #[arg(long, requires = "config")]
    pub alg: Option<String>,
    /// Scopes of minted, fetched or requested tokens.
    #[arg(long)]
    pub scope: Option<String>,
    /// Mint this many distinct tokens (on every core, before the load) and send them in
    /// turn (default: one, a cache hit after the first request).
    #[arg(long, requires = "config")]
    pub unique: Option<usize>,
    /// Fetch tokens from this token endpoint by client_credentials (refreshed before
    /// they expire).
    #[arg(long, requires_all = ["client_id", "client_secret"], conflicts_with = "client_credentials")]
    pub token_url: Option<String>,
    /// Load a token endpoint: every request is a client_credentials token request to
    /// --target as --client-id, with `client_secret_basic` (--client-secret) or
    /// `private_key_jwt` (--client-key: a fresh assertion per request).
    #[arg(long, requires = "client_id")]
    pub client_credentials: bool,
    /// The client of --token-url or --client-credentials.
    #[arg(long)]
    pub client_id: Option<String>,
    /// Its secret.
    #[arg(long, conflicts_with = "client_key")]
    pub client_secret: Option<String>,
    /// Its private JWK (or a JWK set whose first key is used), for `private_key_jwt`.
    #[arg(long, requires = "client_credentials")]
    pub client_key: Option<PathBuf>,
    /// Mint this many client assertions before the load starts (each is sent once, and
    /// valid for 5 minutes), so the generator spends the load sending, not signing; when
    /// they run out, one is minted per request.
    #[arg(long, requires = "client_key")]
    pub premint: Option<usize>,
    /// The `aud` of client assertions (default: the target URL).
    #[arg(long, requires = "client_key")]
    pub assertion_audience: Option<String>,
    /// The share of requests (0 to 1) that are invalid: for resource requests a bad
    /// signature, an expired token and a wrong audience in turn (only a bad signature for
    /// fixed or fetched tokens); for token requests an unknown `resource` (refused after the
    /// client authenticated: bad credentials would throttle the client).
    #[arg(long, default_value_t = 0.0)]
    pub invalid_share: f64,
    /// HTTP/2 over cleartext with prior knowledge (h2c) instead of HTTP/1.1.
    #[arg(long)]
    pub http2: bool,
    /// Load generator threads (default: the cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// An exit code and a message.
type Fail = (u8, String);

pub(super) fn run(p: &Params) -> ExitCode {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = p.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("portcullis loadtest: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run_all(p)) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, e)) => {
            eprintln!("portcullis loadtest: {e}");
            ExitCode::from(code)
        }
    }
}

/// How to load.
struct Plan {
    connections: usize,
    /// Streams per connection (1 for HTTP/1.1).
    streams: usize,
    duration: Option<Duration>,
    requests: Option<u64>,
    rate: Option<f64>,
    method: Method,
    headers: Vec<(HeaderName, HeaderValue)>,
    content_type: Option<HeaderValue>,
    invalid_share: f64,
    /// HTTP/2 over cleartext (prior knowledge) instead of HTTP/1.1.
    http2: bool,
}

/// What each request carries.
enum Load {
    /// A resource request with a bearer token (or none).
    Bearer(Tokens),
    /// A client_credentials token request.
    Grant(Grant),
}

impl Load {
    /// Request `i`'s `Authorization` and body.
    fn request(&self, i: u64, share: f64) -> Result<(Option<HeaderValue>, Bytes), Fail> {
        match self {
            Self::Bearer(t) => Ok((t.for_request(i, share), Bytes::new())),
            Self::Grant(g) => g.for_request(i, share),
        }
    }

    fn distinct(&self) -> Option<usize> {
        match self {
            Self::Bearer(t) => t.distinct(),
            Self::Grant(_) => None,
        }
    }
}

/// The plan `p` describes, or a usage error.
fn plan(p: &Params) -> Result<Plan, Fail> {
    let usage = |m: String| (super::EXIT_CONFIG, m);
    if p.connections == 0 || p.streams == 0 {
        return Err(usage("--connections and --streams must be at least 1".into()));
    }
    if !(0.0..=1.0).contains(&p.invalid_share) {
        return Err(usage("--invalid-share must be between 0 and 1".into()));
    }
    let duration = match (&p.duration, p.requests) {
        (Some(d), _) => Some(portcullis::config::parse_duration(d).map_err(usage)?),
        (None, Some(_)) => None,
        (None, None) => Some(Duration::from_secs(10)),
    };
    let method = if p.client_credentials {
        Method::POST
    } else {
        Method::from_bytes(p.method.as_bytes()).map_err(|_| usage(format!("{:?} is not a method", p.method)))?
    };
    let headers = p
        .headers
        .iter()
        .map(|h| {
            let (k, v) = h
                .split_once(':')
                .ok_or_else(|| usage(format!("--header {h:?}: not `Name: value`")))?;
            let name = HeaderName::from_bytes(k.trim().as_bytes())
                .map_err(|_| usage(format!("--header {h:?}: {k:?} is not a header name")))?;
            let value = HeaderValue::from_str(v.trim()).map_err(|_| usage(format!("--header {h:?}: bad value")))?;
            Ok((name, value))
        })
        .collect::<Result<_, Fail>>()?;
    Ok(Plan {
        connections: p.connections,
        streams: if p.http2 { p.streams } else { 1 },
        duration,
        requests: p.requests,
        rate: p.rate,
        method,
        headers,
        content_type: p.client_credentials.then(Grant::content_type),
        invalid_share: p.invalid_share,
        http2: p.http2,
    })
}

async fn run_all(p: &Params) -> Result<(), Fail> {
    let plan = Arc::new(plan(p)?);
    let load = Arc::new(if p.client_credentials {
        Load::Grant(Grant::new(p)?)
    } else {
        Load::Bearer(Tokens::new(p).await?)
    });
    let first = drive::drive(&p.target, &plan, &load, !p.json).await?;
    let second = match &p.compare {
        Some(url) => Some(drive::drive(url, &plan, &load, !p.json).await?),
        None => None,
    };
    if p.json {
        let mut out = first.json(&plan);
        if let Some(s) = &second {
            out["compare"] = s.json(&plan);
            out["ratios"] = report::ratios(&first, s);
        }
        println!("{out}");
    } else {
        first.print(&plan);
        if let Some(s) = &second {
            s.print(&plan);
            let r = report::ratios(&first, s);
            println!(
                "ratio {} / {}: req/s {:.3}, p50 {:.2}x, p99 {:.2}x",
                first.target, s.target, r["rps"], r["p50"], r["p99"]
            );
        }
    }
    Ok(())
}
