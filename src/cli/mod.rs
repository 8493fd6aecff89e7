//! Command-line interface: `serve`, `check`, `keygen`, `hash-secret`, `token`, `completions`, `man`.

mod check;
mod explain;
mod keygen;
mod loadtest;
mod logs;
mod token;

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Exit code for a bad configuration (sysexits `EX_USAGE`).
pub(crate) const EXIT_CONFIG: u8 = 64;
/// A command line clap accepted but whose values are wrong (clap exits 2 for its own).
pub(crate) const EXIT_USAGE: u8 = 2;

/// The default configuration file.
pub(crate) const DEFAULT_CONFIG: &str = "config/portcullis.toml";

/// portcullis: an OAuth 2.0 protected-resource gateway.
#[derive(Debug, Parser)]
#[command(version, about)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// A TOML file or a directory of TOML files.
        #[arg(long, short, env = "PORTCULLIS_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Server worker threads, each with its own event loop (default: the number of cores).
        #[arg(long)]
        workers: Option<NonZeroUsize>,
        /// Log format.
        #[arg(long, value_enum, default_value_t = LogFormat::Compact)]
        log_format: LogFormat,
    },
    /// Validate a configuration and print a summary; exits 64 listing every error.
    Check {
        /// A TOML file or a directory of TOML files.
        #[arg(long, short, env = "PORTCULLIS_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Check the files alone, without reading the managed entities of the store they name.
        #[arg(long)]
        no_store: bool,
    },
    /// Explain the answer a request would get, offline: the resource that matches and why it
    /// beats the others, what it requires, and, with --token, each check's result. No
    /// network, no upstream (remote keys, introspection and revocations are marked unknown).
    Explain {
        /// A TOML file or a directory of TOML files.
        #[arg(long, short, env = "PORTCULLIS_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The request's method, e.g. GET.
        method: String,
        /// The request's URL, e.g. https://api.example.com/items/1 (its host is the Host).
        url: String,
        /// A bearer token to check (never sent anywhere).
        #[arg(long)]
        token: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Generate a signing key: writes a private JWKS, prints the public one.
    Keygen {
        /// Algorithm.
        #[arg(long, value_enum)]
        alg: keygen::KeyAlg,
        /// Key id.
        #[arg(long)]
        kid: String,
        /// Private JWKS file to write (or to add the key to, with --append). Defaults to
        /// `<kid>.private.jwks.json` in the current directory.
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// Add the key to an existing private JWKS instead of refusing to overwrite it.
        #[arg(long)]
        append: bool,
    },
    /// Hash a client secret for the configuration (argon2id PHC string). Reads the secret
    /// from standard input, or makes a random one with --generate.
    HashSecret {
        /// Generate a random secret (printed once, with its hash).
        #[arg(long)]
        generate: bool,
        /// The configuration field the hash goes in, printed with it: `client_secret_hash`
        /// (a client or resource server) or `management_token_hash` (a realm's static admin
        /// token).
        #[arg(long, value_enum, default_value_t = HashField::ClientSecretHash)]
        field: HashField,
    },
    /// Print a shell completion script (e.g. `portcullis completions bash >
    /// /etc/bash_completion.d/portcullis`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `portcullis man > portcullis.1`.
    Man,
    /// Load-test a URL (a gateway, or any HTTP/1.1 server): N keep-alive connections for a
    /// time or a number of requests, as fast as possible or at --rate; bearer tokens fixed,
    /// minted from a realm's key, or fetched from a token endpoint, with a share of invalid
    /// ones.
    Loadtest(Box<loadtest::Params>),
    /// Mint a test access token from a realm's signing key.
    Token {
        /// A TOML file or a directory of TOML files.
        #[arg(long, short, env = "PORTCULLIS_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The resource server the token is for (its audience becomes `aud`).
        #[arg(long)]
        resource_server: String,
        /// Space-separated scopes (default: the resource server's default scopes).
        #[arg(long)]
        scope: Option<String>,
        /// Lifetime, e.g. 10m (default: the resource server's access_token_ttl).
        #[arg(long)]
        ttl: Option<String>,
        /// How long ago the authentication happened (`auth_time = now - age`), e.g. 10m.
        #[arg(long, default_value = "0s")]
        auth_age: String,
        /// `sub` and `client_id`.
        #[arg(long, default_value = "portcullis-cli")]
        client_id: String,
    },
}

/// Where a hash from `hash-secret` goes.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum HashField {
    /// `client_secret_hash` of a `[[client]]` or `[[resource_server]]`.
    ClientSecretHash,
    /// `management_token_hash` of a `[[realm]]`.
    ManagementTokenHash,
}

impl HashField {
    fn name(self) -> &'static str {
        match self {
            Self::ClientSecretHash => "client_secret_hash",
            Self::ManagementTokenHash => "management_token_hash",
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Compact,
    Json,
}

/// Runs the parsed command.
pub(crate) fn run(args: Args) -> ExitCode {
    match args.command {
        Command::Serve {
            config,
            workers,
            log_format,
        } => serve(config, workers, log_format),
        Command::Check { config, no_store } => check::run(&config, !no_store),
        Command::Explain {
            config,
            method,
            url,
            token,
            json,
        } => explain::run(&explain::Params {
            config,
            method,
            url,
            token,
            json,
        }),
        Command::Keygen { alg, kid, out, append } => {
            let out = out.unwrap_or_else(|| PathBuf::from(format!("{kid}.private.jwks.json")));
            keygen::run(alg, &kid, &out, append)
        }
        Command::HashSecret { generate, field } => hash_secret(generate, field),
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            clap_complete::generate(shell, &mut Args::command(), "portcullis", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Loadtest(params) => loadtest::run(&params),
        Command::Man => {
            use clap::CommandFactory as _;
            match clap_mangen::Man::new(Args::command()).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("portcullis man: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Token {
            config,
            resource_server,
            scope,
            ttl,
            auth_age,
            client_id,
        } => token::run(&token::Params {
            config,
            resource_server,
            scope,
            ttl,
            auth_age,
            client_id,
        }),
    }
}

fn hash_secret(generate: bool, field: HashField) -> ExitCode {
    let secret = if generate {
        use base64::Engine;
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    } else {
        use std::io::IsTerminal as _;
        if std::io::stdin().is_terminal() {
            eprint!("secret to hash (the line is read as typed): ");
        }
        let mut line = String::new();
        if std::io::stdin().read_line(&mut line).is_err() {
            eprintln!("portcullis hash-secret: cannot read the secret from standard input");
            return ExitCode::FAILURE;
        }
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if secret.is_empty() {
        eprintln!("portcullis hash-secret: empty secret");
        return ExitCode::from(EXIT_CONFIG);
    }
    match portcullis::issuer::hash_secret(&secret) {
        Ok(hash) => {
            if generate {
                // What to paste, in its field's own name; the secret itself goes to whoever
                // presents it and is shown this once.
                println!("# the secret, shown once (not stored anywhere): {secret}");
                println!("{} = \"{hash}\"", field.name());
            } else {
                println!("{hash}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("portcullis hash-secret: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Whether log lines get ANSI colours: only on a terminal, and never with `NO_COLOR` set to
/// anything (no-color.org), so files and journald get plain text.
fn colour() -> bool {
    use std::io::IsTerminal as _;
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// Installs the log subscriber for `serve`; the returned writer is flushed before exit.
fn init_logs(format: LogFormat) -> logs::LogWriter {
    let writer = logs::LogWriter::stderr();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour())
        .with_writer(writer.clone());
    let _ = match format {
        LogFormat::Compact => builder.compact().try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    writer
}

fn serve(config: PathBuf, workers: Option<NonZeroUsize>, log_format: LogFormat) -> ExitCode {
    let logs = init_logs(log_format);
    let code = serve_until_stopped(config, workers);
    logs.flush();
    code
}

fn serve_until_stopped(config: PathBuf, workers: Option<NonZeroUsize>) -> ExitCode {
    let workers = workers
        .or_else(|| std::thread::available_parallelism().ok())
        .unwrap_or(NonZeroUsize::MIN);
    // The control plane (signals, reloads, key refresh, admin listener) needs little; the
    // requests are served by the workers' own runtimes.
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("portcullis: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        // NB: before the gateway starts and says it listens: a SIGHUP or SIGTERM sent the
        // moment "listening" is logged must find its handler installed, not the default
        // action (which ends the process).
        let signals = Signals::install();
        let opts = portcullis::app::Options {
            workers: Some(workers),
            ..portcullis::app::Options::new(config)
        };
        let gateway = match portcullis::app::Gateway::start(opts).await {
            Ok(g) => g,
            Err(portcullis::app::StartError::Config(errors)) => {
                eprintln!("portcullis: invalid configuration:\n{errors}");
                return ExitCode::from(EXIT_CONFIG);
            }
            Err(e) => {
                eprintln!("portcullis: {e}");
                return ExitCode::FAILURE;
            }
        };
        signals.wait_for_stop(&gateway).await;
        tracing::info!("shutting down: draining in-flight requests");
        gateway.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// The signals the gateway answers, installed once at start.
struct Signals {
    #[cfg(unix)]
    streams: Option<[tokio::signal::unix::Signal; 3]>,
}

impl Signals {
    /// Installs the handlers for SIGINT, SIGTERM and SIGHUP.
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let streams = match (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            ) {
                (Ok(int), Ok(term), Ok(hup)) => Some([int, term, hup]),
                _ => None,
            };
            Self { streams }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Waits for SIGINT or SIGTERM; SIGHUP reloads the configuration meanwhile.
    async fn wait_for_stop(self, gateway: &portcullis::app::Gateway) {
        #[cfg(unix)]
        {
            let Some([mut int, mut term, mut hup]) = self.streams else {
                let _ = tokio::signal::ctrl_c().await;
                return;
            };
            loop {
                tokio::select! {
                    _ = int.recv() => return,
                    _ = term.recv() => return,
                    _ = hup.recv() => {
                        tracing::info!("SIGHUP: reloading the configuration");
                        // Errors are logged by the reloader; the running configuration stays.
                        let _ = gateway.reload().await;
                    }
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = gateway;
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
