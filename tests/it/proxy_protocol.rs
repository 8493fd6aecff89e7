//! The PROXY protocol on the public listener (`proxy_protocol = true`): a trusted balancer's
//! v1 or v2 header gives the client's address (logged, appended to `X-Forwarded-For`);
//! a connection without one, or from a peer that is not a trusted proxy, is closed unanswered.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

use crate::support::*;

/// Sends `bytes` from `from` and reads until the gateway closes.
async fn send_from(from: IpAddr, to: SocketAddr, bytes: &[u8]) -> String {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let mut stream = socket.connect(to).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    // A reset is as good as a close here: either way nothing was answered.
    let _ = stream.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn request(token: &str, id: &str) -> String {
    format!(
        "GET /items/1 HTTP/1.1\r\nhost: api.test\r\nauthorization: Bearer {token}\r\nx-request-id: {id}\r\nconnection: close\r\n\r\n"
    )
}

#[tokio::test]
async fn a_trusted_balancers_header_names_the_client() {
    let config = config_with("trusted_proxies = [\"127.0.0.1/32\"]\nproxy_protocol = true");
    let h = Harness::builder().config(config).start().await;
    let gw = h.gateway.local_addr();
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    // One access line before capturing (see `Logs::capture`).
    send_from(
        local,
        gw,
        format!("PROXY UNKNOWN\r\n{}", request("x", "warm")).as_bytes(),
    )
    .await;
    let logs = Logs::capture();
    let token = h.key.sign(&claims("read"));

    let v1 = format!(
        "PROXY TCP4 198.51.100.7 127.0.0.1 51234 443\r\n{}",
        request(&token, "pp-v1")
    );
    let answer = send_from(local, gw, v1.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let seen = h.upstream.last().await;
    assert_eq!(
        seen.headers.get("x-forwarded-for").map(|v| v.as_bytes()),
        Some(&b"198.51.100.7"[..])
    );
    assert_eq!(logs.access_line("pp-v1")["remote"], "198.51.100.7");

    // v2, binary: PROXY over TCP/IPv4 from 203.0.113.9:51201 to 10.0.0.1:443.
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    v2.extend([0x21, 0x11, 0, 12, 203, 0, 113, 9, 10, 0, 0, 1, 0xC8, 0x01, 1, 187]);
    v2.extend(request(&token, "pp-v2").as_bytes());
    let answer = send_from(local, gw, &v2).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(logs.access_line("pp-v2")["remote"], "203.0.113.9");

    // No header: closed unanswered, and nothing reaches the upstream.
    let before = h.upstream.hits();
    let answer = send_from(local, gw, request(&token, "pp-none").as_bytes()).await;
    assert_eq!(answer, "", "a connection without a PROXY header is closed");
    // From a peer that is not a trusted proxy, even with a header.
    let answer = send_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), gw, v1.as_bytes()).await;
    assert_eq!(answer, "", "an untrusted peer's PROXY header is not believed");
    assert_eq!(h.upstream.hits(), before);
}
