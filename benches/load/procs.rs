//! Child processes of the harness (the echo upstream, gateways, peers), killed on drop, and
//! what /proc says about them.

use std::convert::Infallible;
use std::fs;
use std::io::{BufRead, BufReader, Write as _};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::BoxError;

/// A child process, killed when dropped (normal exit, error or panic).
pub(crate) struct Proc {
    pub(crate) name: &'static str,
    pub(crate) child: Child,
}

impl Proc {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Err(e) = self.child.kill() {
            eprintln!("load: killing {}: {e}", self.name);
        }
        let _ = self.child.wait();
    }
}

/// `cmd` prefixed with `taskset -c CPUS` when `cpus` is given.
pub(crate) fn pinned(cpus: Option<&str>, program: &Path) -> Command {
    match cpus {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", c]).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

/// The upstream: a minimal HTTP/1.1 and h2c server answering `ok`, run as this binary with
/// `--upstream ADDR`; it exits when its parent does (its stdin closes).
pub(crate) fn run_upstream(addr: &str) -> Result<(), BoxError> {
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        std::process::exit(0);
    });
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let mut out = std::io::stdout();
        writeln!(out, "{}", listener.local_addr()?)?;
        out.flush()?;
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(
                        TokioIo::new(stream),
                        service_fn(|_req: Request<Incoming>| async {
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok\n"))))
                        }),
                    )
                    .await;
            });
        }
    })
}

/// Starts the upstream (pinned to `cpus` if given) and reads its address.
pub(crate) fn spawn_upstream(cpus: Option<&str>) -> Result<(Proc, SocketAddr), BoxError> {
    let mut child = pinned(cpus, &std::env::current_exe()?)
        .args(["--upstream", "127.0.0.1:0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("upstream: no stdout")?;
    let proc = Proc {
        name: "upstream",
        child,
    };
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let addr: SocketAddr = line
        .trim()
        .parse()
        .map_err(|e| format!("upstream said {line:?}: {e}"))?;
    Ok((proc, addr))
}

/// A started gateway: the process, its listener and its admin listener, if any.
pub(crate) struct Gateway {
    pub(crate) proc: Proc,
    pub(crate) addr: SocketAddr,
    pub(crate) admin: Option<SocketAddr>,
}

/// How to start a gateway.
pub(crate) struct GatewayRun<'a> {
    pub(crate) config: &'a Path,
    pub(crate) log: &'a Path,
    pub(crate) workers: usize,
    pub(crate) access_log: bool,
    pub(crate) cpus: Option<&'a str>,
}

/// Starts `portcullis serve` and waits for its "listening" line.
pub(crate) fn spawn_gateway(run: &GatewayRun<'_>) -> Result<Gateway, BoxError> {
    let child = pinned(run.cpus, Path::new(env!("CARGO_BIN_EXE_portcullis")))
        .arg("serve")
        .arg("--config")
        .arg(run.config)
        .args(["--log-format", "json", "--workers", &run.workers.to_string()])
        .env("RUST_LOG", if run.access_log { "info" } else { "info,access=off" })
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // A file, not a pipe: the access log then costs the gateway its writes and us nothing.
        .stderr(fs::File::create(run.log)?)
        .spawn()?;
    let mut proc = Proc {
        name: "portcullis",
        child,
    };
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        let text = fs::read_to_string(run.log)?;
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if v["message"] == "portcullis listening" {
                let addr = v["addr"].as_str().ok_or("listening line without addr")?.parse()?;
                let admin = v["admin"].as_str().and_then(|a| a.parse().ok());
                return Ok(Gateway { proc, addr, admin });
            }
        }
        if let Some(status) = proc.child.try_wait()? {
            return Err(format!("portcullis exited ({status}):\n{text}").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err("portcullis did not start within 30 s".into())
}

/// utime + stime of `pid`, in clock ticks (/proc/<pid>/stat fields 14 and 15).
pub(crate) fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Peak resident set size of `pid` in KiB (VmHWM).
pub(crate) fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Clock ticks per second: `getconf CLK_TCK`, else 100 (Linux's USER_HZ everywhere in practice).
pub(crate) fn clk_tck() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// Waits until something accepts connections on `addr`.
pub(crate) fn wait_for_port(addr: SocketAddr, what: &str, proc: &mut Proc) -> Result<(), BoxError> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Some(status) = proc.child.try_wait()? {
            return Err(format!("{what} exited ({status})").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("{what} did not listen on {addr} within 30 s").into())
}

/// A free loopback port (bound, read, released: a peer that cannot be told port 0 binds it).
pub(crate) fn free_port() -> Result<u16, BoxError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
