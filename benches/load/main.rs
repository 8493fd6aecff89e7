#![allow(missing_docs)]
//! Load harness: the real `portcullis` binary, an echo upstream and peers as separate
//! processes, loaded over loopback by `portcullis loadtest` (the project's one load
//! generator, run as a child process), one table out per suite.
//!
//! ```text
//! cargo bench --bench load                                    # the gateway suite, every row
//! cargo bench --bench load -- --seconds 3 --workers 1,2       # both worker sets
//! cargo bench --bench load -- --rows cache-on,unique          # rows whose name contains a filter
//! cargo bench --bench load -- --http2 --streams 16            # the same rows over h2c
//! cargo bench --bench load -- --suite issuer --workers 1      # token endpoint vs oidc-provider
//! cargo bench --bench load -- --pin-generator 1 --pin-gateway 0 --workers 1,2
//! ```
//!
//! To load a gateway you run yourself, use `portcullis loadtest` directly.

mod gateway;
mod issuer;
mod loadgen;
mod peers;
mod procs;
mod table;

use josekit::jwk::Jwk;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const HELP: &str = "\
cargo bench --bench load -- [options]

  --suite NAME          gateway (default), issuer (the token endpoint, and node oidc-provider
                        beside it when node and npm are installed) or all
  --connections N       keep-alive connections (default 32)
  --http2               h2c instead of HTTP/1.1 (gateway suite)
  --streams N           with --http2: concurrent streams per connection (default 1)
  --seconds T           seconds of load per row (default 5)
  --workers LIST        gateway --workers, comma-separated sets, e.g. 1,2 (default: the cores)
  --rows LIST           run only rows whose name contains one of these (comma-separated)
  --generator-threads N `portcullis loadtest --threads` (default: the cores)
  --pin-generator CPUS  run the generator under `taskset -c CPUS`
  --pin-gateway CPUS    run the gateway (and oidc-provider) under `taskset -c CPUS`
  --pin-upstream CPUS   run the echo upstream under `taskset -c CPUS`
  --unique-tokens N     distinct tokens of the unique-* rows (default 10000 x seconds);
                        a pool shorter than the row wraps around (noted in the table)
  --no-access-log       start the gateway with RUST_LOG=info,access=off

To load a gateway you run yourself: `portcullis loadtest --help`.
";

/// The harness's options.
pub(crate) struct Opts {
    pub(crate) suite: String,
    pub(crate) connections: usize,
    pub http2: bool,
    pub(crate) streams: usize,
    pub(crate) seconds: f64,
    pub(crate) workers: Vec<usize>,
    pub(crate) rows: Vec<String>,
    pub(crate) generator_threads: usize,
    pub(crate) pin_generator: Option<String>,
    pub(crate) pin_gateway: Option<String>,
    pub(crate) pin_upstream: Option<String>,
    pub(crate) unique_tokens: Option<usize>,
    pub(crate) access_log: bool,
}

pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Opts {
    fn parse(args: &[String]) -> Result<Self, BoxError> {
        let mut o = Self {
            suite: "gateway".into(),
            connections: 32,
            http2: false,
            streams: 1,
            seconds: 5.0,
            workers: vec![cores()],
            rows: Vec::new(),
            generator_threads: cores(),
            pin_generator: None,
            pin_gateway: None,
            pin_upstream: None,
            unique_tokens: None,
            access_log: true,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut val = || it.next().cloned().ok_or_else(|| format!("{a} needs a value"));
            match a.as_str() {
                // cargo bench passes --bench to harness = false targets.
                "--bench" => {}
                "--suite" => o.suite = val()?,
                "--connections" => o.connections = val()?.parse()?,
                "--http2" => o.http2 = true,
                "--streams" => o.streams = val()?.parse()?,
                "--seconds" => o.seconds = val()?.parse()?,
                "--workers" => {
                    o.workers = val()?
                        .split(',')
                        .map(|w| w.trim().parse::<usize>())
                        .collect::<Result<_, _>>()?;
                }
                "--rows" => o.rows = val()?.split(',').map(|s| s.trim().to_owned()).collect(),
                "--generator-threads" => o.generator_threads = val()?.parse()?,
                "--pin-generator" => o.pin_generator = Some(val()?),
                "--pin-gateway" => o.pin_gateway = Some(val()?),
                "--pin-upstream" => o.pin_upstream = Some(val()?),
                "--unique-tokens" => o.unique_tokens = Some(val()?.parse()?),
                "--no-access-log" => o.access_log = false,
                "-h" | "--help" => {
                    print!("{HELP}");
                    std::process::exit(0);
                }
                other => return Err(format!("unknown option {other:?}\n{HELP}").into()),
            }
        }
        if o.connections == 0 || o.streams == 0 || o.generator_threads == 0 || o.workers.contains(&0) {
            return Err("--connections, --streams, --generator-threads and --workers must be at least 1".into());
        }
        if !(o.seconds > 0.0 && o.seconds <= 3600.0) {
            return Err("--seconds must be in (0, 3600]".into());
        }
        if !["gateway", "issuer", "all"].contains(&o.suite.as_str()) {
            return Err(format!("--suite {:?}: gateway, issuer or all", o.suite).into());
        }
        Ok(o)
    }

    /// Whether row `name` was asked for.
    pub(crate) fn wanted(&self, name: &str) -> bool {
        self.rows.is_empty() || self.rows.iter().any(|f| name.contains(f.as_str()))
    }

    /// How the load generator runs.
    pub(crate) fn generator(&self) -> loadgen::Generator<'_> {
        loadgen::Generator {
            threads: self.generator_threads,
            cpus: self.pin_generator.as_deref(),
        }
    }

    /// `loadtest` arguments for a row against `url`: the shape of the load, then `extra`;
    /// `requests` instead of the row's seconds when given.
    pub(crate) fn load_args(&self, url: &str, extra: &[String], requests: Option<u64>) -> Vec<String> {
        let mut a = vec![
            "--target".to_owned(),
            url.to_owned(),
            "--connections".to_owned(),
            self.connections.to_string(),
        ];
        match requests {
            Some(n) => a.extend(["--requests".to_owned(), n.to_string()]),
            None => a.extend([
                "--duration".to_owned(),
                format!("{}ms", (self.seconds * 1000.0).round() as u64),
            ]),
        }
        if self.http2 {
            a.extend(["--http2".to_owned(), "--streams".to_owned(), self.streams.to_string()]);
        }
        a.extend(extra.iter().cloned());
        a
    }
}

/// A JWK as a JSON object, with `kid` and optionally `alg` and `use`.
pub(crate) fn jwk_json(mut jwk: Jwk, kid: &str, alg: Option<&str>, key_use: Option<&str>) -> serde_json::Value {
    jwk.set_key_id(kid);
    if let Some(alg) = alg {
        jwk.set_algorithm(alg);
    }
    if let Some(u) = key_use {
        jwk.set_key_use(u);
    }
    let map: serde_json::Map<String, serde_json::Value> = jwk.into();
    serde_json::Value::Object(map)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--upstream") {
        let addr = args.get(1).map_or("127.0.0.1:0", String::as_str);
        if let Err(e) = procs::run_upstream(addr) {
            eprintln!("upstream: {e}");
            std::process::exit(1);
        }
        return;
    }
    let result = Opts::parse(&args).and_then(|o| {
        if o.suite != "issuer" {
            gateway::run(&o)?;
        }
        if o.suite != "gateway" {
            issuer::run(&o)?;
        }
        Ok(())
    });
    if let Err(e) = result {
        eprintln!("load: {e}");
        std::process::exit(1);
    }
}
