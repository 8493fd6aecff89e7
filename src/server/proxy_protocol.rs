//! The PROXY protocol (HAProxy's v1 text and v2 binary headers), opt-in per listener
//! (`[server] proxy_protocol = true`): a load balancer that speaks it sends, before anything
//! else on the connection, the address of the client it accepted. Only peers in
//! `trusted_proxies` may send it; with the option on, a connection without a valid header
//! is closed (a listener cannot guess which connections carry one). The header is read with
//! `peek` and then consumed exactly, so the TLS handshake or HTTP that follows gets the
//! stream as it is: nothing read ahead needs handing back.

use std::net::SocketAddr;
use std::time::Duration;

use ppp::{HeaderResult, PartialResult, v1, v2};
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

/// Longest header accepted: a v1 header is at most 107 bytes; a v2 header with an IPv6
/// address and the TLVs load balancers add (TLS details, a VPC endpoint id) fits well
/// within this. Longer is refused rather than buffered.
const MAX_HEADER: usize = 1024;

/// Why a connection's PROXY header was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyHeaderError {
    /// The peer is not one of `trusted_proxies`.
    #[error("a PROXY header from {0}, which is not a trusted proxy")]
    Untrusted(std::net::IpAddr),
    /// Not a PROXY header, or a malformed one.
    #[error("no valid PROXY protocol header")]
    Invalid,
    /// Longer than [`MAX_HEADER`].
    #[error("PROXY protocol header longer than {MAX_HEADER} bytes")]
    TooLong,
    /// The header did not arrive within the header read timeout.
    #[error("no PROXY protocol header within {0:?}")]
    Timeout(Duration),
    /// The connection failed or closed first.
    #[error("reading the PROXY protocol header: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads and consumes the PROXY header at the start of `stream` from `peer`: the client's
/// address it gives, or `peer` for a `LOCAL` header (the balancer's own health check) or
/// an `UNKNOWN`/unspecified one.
pub(crate) async fn read(
    stream: &mut TcpStream,
    peer: SocketAddr,
    trusted: &crate::model::TrustedProxies,
    timeout: Duration,
) -> Result<SocketAddr, ProxyHeaderError> {
    if !trusted.trusts(peer.ip()) {
        return Err(ProxyHeaderError::Untrusted(peer.ip()));
    }
    tokio::time::timeout(timeout, read_header(stream, peer))
        .await
        .map_err(|_| ProxyHeaderError::Timeout(timeout))?
}

async fn read_header(stream: &mut TcpStream, peer: SocketAddr) -> Result<SocketAddr, ProxyHeaderError> {
    let mut buf = [0u8; MAX_HEADER];
    let mut seen = 0;
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Err(ProxyHeaderError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        let (len, client) = match parse(&buf[..n], peer) {
            Parsed::Done { len, client } => (len, client),
            Parsed::Incomplete if n < MAX_HEADER => {
                if n == seen {
                    // Peeking again would return at once with the same bytes. A balancer
                    // sends its header in one segment; one split in two is waited for
                    // briefly (the whole wait is bounded by the header read timeout).
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                seen = n;
                continue;
            }
            Parsed::Incomplete => return Err(ProxyHeaderError::TooLong),
            Parsed::Invalid => return Err(ProxyHeaderError::Invalid),
        };
        let mut header = vec![0u8; len];
        stream.read_exact(&mut header).await?;
        return Ok(client);
    }
}

/// What the bytes so far say.
enum Parsed {
    Done { len: usize, client: SocketAddr },
    Incomplete,
    Invalid,
}

fn parse(bytes: &[u8], peer: SocketAddr) -> Parsed {
    let result = HeaderResult::parse(bytes);
    if result.is_incomplete() {
        return Parsed::Incomplete;
    }
    match result {
        HeaderResult::V1(Ok(h)) => {
            let client = match h.addresses {
                v1::Addresses::Tcp4(a) => SocketAddr::from((a.source_address, a.source_port)),
                v1::Addresses::Tcp6(a) => SocketAddr::from((a.source_address, a.source_port)),
                v1::Addresses::Unknown => peer,
            };
            Parsed::Done {
                len: h.header.len(),
                client,
            }
        }
        HeaderResult::V2(Ok(h)) => {
            let client = match (h.command, h.addresses) {
                (v2::Command::Proxy, v2::Addresses::IPv4(a)) => SocketAddr::from((a.source_address, a.source_port)),
                (v2::Command::Proxy, v2::Addresses::IPv6(a)) => SocketAddr::from((a.source_address, a.source_port)),
                _ => peer,
            };
            Parsed::Done { len: h.len(), client }
        }
        _ => Parsed::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 5], 40000))
    }

    #[test]
    fn v1_and_v2_headers_give_the_client_and_their_length() {
        let v1 = b"PROXY TCP4 198.51.100.7 10.0.0.1 51234 443\r\nGET / HTTP/1.1\r\n";
        match parse(v1, peer()) {
            Parsed::Done { len, client } => {
                assert_eq!(len, 44);
                assert_eq!(client, SocketAddr::from(([198, 51, 100, 7], 51234)));
            }
            _ => panic!("v1 not parsed"),
        }
        let mut v2 = Vec::from(v2::PROTOCOL_PREFIX);
        v2.extend([0x21, 0x11, 0, 12, 203, 0, 113, 9, 10, 0, 0, 1, 0xC8, 0x01, 1, 187]);
        v2.extend(b"\x16\x03\x01");
        match parse(&v2, peer()) {
            Parsed::Done { len, client } => {
                assert_eq!(len, 28);
                assert_eq!(client, SocketAddr::from(([203, 0, 113, 9], 0xC801)));
            }
            _ => panic!("v2 not parsed"),
        }
    }

    #[test]
    fn local_unknown_partial_and_garbage() {
        let mut local = Vec::from(v2::PROTOCOL_PREFIX);
        local.extend([0x20, 0x00, 0, 0]);
        assert!(matches!(parse(&local, peer()), Parsed::Done { len: 16, client } if client == peer()));
        assert!(matches!(parse(b"PROXY UNKNOWN\r\n", peer()), Parsed::Done { len: 15, client } if client == peer()));
        assert!(matches!(parse(b"PROXY TCP4 198.51", peer()), Parsed::Incomplete));
        assert!(matches!(parse(b"GET / HTTP/1.1\r\n\r\n", peer()), Parsed::Invalid));
    }
}
