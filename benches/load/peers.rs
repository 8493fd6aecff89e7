//! The gateway suite's peers, when installed: nginx and HAProxy as plain reverse proxies to
//! the same upstream, and HAProxy's `jwt_verify` enforcing the same policy as the gateway
//! (algorithm, signature, issuer, audience, expiry, scope) on the same tokens. Each runs as
//! this user from a configuration written into the row's directory, one worker/thread (as
//! the gateway's `--workers 1`), in the foreground, killed after its row.

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;

use crate::BoxError;
use crate::procs::{self, Proc, pinned};

/// A peer row: which server, and for `jwt_verify` the algorithm and its PEM key file.
pub(crate) enum Peer {
    NginxProxy,
    HaproxyProxy,
    HaproxyJwt { alg: &'static str, pem: std::path::PathBuf },
}

/// Where the installed binary is, or `None`.
fn find(binary: &str) -> Option<std::path::PathBuf> {
    ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(binary))
        .find(|p| p.exists())
}

impl Peer {
    /// The binary it needs.
    pub(crate) fn binary(&self) -> &'static str {
        match self {
            Self::NginxProxy => "nginx",
            _ => "haproxy",
        }
    }

    /// Starts it in `dir` in front of `upstream`, the policy's issuer and audience given;
    /// `Ok(None)` when its binary is not installed.
    pub(crate) fn start(
        &self,
        dir: &Path,
        upstream: SocketAddr,
        issuer: &str,
        audience: &str,
        cpus: Option<&str>,
    ) -> Result<Option<(Proc, SocketAddr)>, BoxError> {
        let Some(binary) = find(self.binary()) else {
            return Ok(None);
        };
        let port = procs::free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut cmd = pinned(cpus, &binary);
        match self {
            Self::NginxProxy => {
                let conf = dir.join("nginx.conf");
                fs::write(&conf, nginx_conf(dir, addr, upstream))?;
                cmd.arg("-p")
                    .arg(dir)
                    .arg("-e")
                    .arg(dir.join("error.log"))
                    .arg("-c")
                    .arg(&conf);
            }
            Self::HaproxyProxy => {
                let conf = dir.join("haproxy.cfg");
                fs::write(&conf, haproxy_conf(addr, upstream, None))?;
                cmd.arg("-db").arg("-f").arg(&conf);
            }
            Self::HaproxyJwt { alg, pem } => {
                let conf = dir.join("haproxy.cfg");
                let policy = jwt_policy(alg, pem, issuer, audience);
                fs::write(&conf, haproxy_conf(addr, upstream, Some(&policy)))?;
                cmd.arg("-db").arg("-f").arg(&conf);
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("stderr.log"))?)
            .spawn()?;
        let mut proc = Proc {
            name: self.binary(),
            child,
        };
        procs::wait_for_port(addr, self.binary(), &mut proc).map_err(|e| {
            let log = fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
            format!("{e}: {log}")
        })?;
        Ok(Some((proc, addr)))
    }
}

/// nginx: one worker, keep-alive to the upstream, an access log to a file (as ours).
fn nginx_conf(dir: &Path, listen: SocketAddr, upstream: SocketAddr) -> String {
    let d = dir.display();
    format!(
        r#"worker_processes 1;
daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 4096; }}
http {{
  access_log {d}/access.log;
  keepalive_requests 1000000;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  upstream up {{ server {upstream}; keepalive 64; }}
  server {{
    listen {listen};
    location / {{
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"#
    )
}

/// HAProxy 2.6 `jwt_verify` with the gateway's policy: a bearer token, the one algorithm,
/// a good signature, the issuer, the audience, not expired, the `read` scope. (Everything
/// refused is answered 401; HAProxy has no verified-token cache, so every request pays the
/// signature: compare with the gateway's `cache-off-*` rows.)
fn jwt_policy(alg: &str, pem: &Path, issuer: &str, audience: &str) -> String {
    let pem = pem.display();
    format!(
        r#"  http-request set-var(txn.bearer) http_auth_bearer
  http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('$.alg')
  http-request set-var(txn.now) date()
  http-request deny deny_status 401 unless {{ var(txn.alg) -m str {alg} }}
  http-request deny deny_status 401 unless {{ var(txn.bearer),jwt_verify(txn.alg,"{pem}") -m int 1 }}
  http-request deny deny_status 401 unless {{ var(txn.bearer),jwt_payload_query('$.iss') -m str {issuer} }}
  http-request deny deny_status 401 unless {{ var(txn.bearer),jwt_payload_query('$.aud') -m str {audience} }}
  http-request deny deny_status 401 unless {{ var(txn.bearer),jwt_payload_query('$.exp','int'),sub(txn.now) -m int gt 0 }}
  http-request deny deny_status 403 unless {{ var(txn.bearer),jwt_payload_query('$.scope') -m reg (^|\ )read(\ |$) }}
"#
    )
}

/// HAProxy: one thread, keep-alive both sides, `policy` in the frontend when given. No
/// access log (it logs through syslog, which the harness does not run).
fn haproxy_conf(listen: SocketAddr, upstream: SocketAddr, policy: Option<&str>) -> String {
    format!(
        r#"global
  nbthread 1
  maxconn 8192
defaults
  mode http
  option http-keep-alive
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe
  bind {listen}
{policy}  default_backend up
backend up
  http-reuse always
  server up {upstream}
"#,
        policy = policy.unwrap_or("")
    )
}
