//! Server workers (`--workers N`, as the binary serves): N threads with their own event
//! loops, listening sockets (SO_REUSEPORT) and upstream pools share one configuration, one
//! set of caches, one connection bound and one set of metrics; and no other gateway can
//! join their address.

use std::net::SocketAddr;
use std::num::NonZeroUsize;

use http::Version;
use tokio::net::TcpStream;

use crate::support::*;

const TWO: NonZeroUsize = NonZeroUsize::new(2).unwrap();

fn with_admin(server: &str) -> String {
    config_with(&format!("admin_listen = \"127.0.0.1:0\"\n{server}"))
}

/// One request on a connection of its own (`Connection: close`): its status.
async fn on_new_connection(addr: SocketAddr, path: &str, token: &str) -> u16 {
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n");
    raw_send(addr, request.as_bytes(), End::Open).await.status.as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_serve_one_configuration_and_all_see_a_reload() {
    let h = Harness::builder().config(with_admin("")).workers(TWO).start().await;
    let addr = h.gateway.local_addr();
    let read = h.key.sign(&claims("read"));
    let write = h.key.sign(&claims("read write"));

    // Many connections at once, so both workers accept some of them.
    let round = |path: &'static str, token: String| {
        let tasks: Vec<_> = (0..24)
            .map(|_| {
                let token = token.clone();
                tokio::spawn(async move { on_new_connection(addr, path, &token).await })
            })
            .collect();
        async move {
            let mut statuses = Vec::new();
            for t in tasks {
                statuses.push(within("a request", t).await.unwrap());
            }
            statuses
        }
    };
    assert!(round("/items/1", read.clone()).await.iter().all(|s| *s == 200));
    assert!(round("/items/1", "not.a.token".into()).await.iter().all(|s| *s == 401));
    assert!(round("/extra", write.clone()).await.iter().all(|s| *s == 404));
    assert_eq!(h.upstream.hits(), 24);

    // One reload reaches every worker: the new resource is served on every connection.
    h.write_config(&format!(
        "{}\n[[protected_resource]]\nid = \"extra\"\nresource_server = \"api\"\npaths = [\"/extra\"]\nscopes = [\"write\"]\n",
        with_admin("")
    ));
    h.gateway.reload().await.unwrap();
    assert!(round("/extra", write).await.iter().all(|s| *s == 200));
    assert!(round("/extra", read).await.iter().all(|s| *s == 403));
    assert_eq!(h.upstream.hits(), 48);

    // The workers count into the one registry.
    let (_, text) = scrape(&h).await;
    let series = |pr: &str, outcome: &str, class: &str| {
        format!(
            "portcullis_requests_total{{resource_server=\"api\",resource=\"{pr}\",outcome=\"{outcome}\",status=\"{class}\"}}"
        )
    };
    assert_eq!(must(&text, &series("read", "allowed", "2xx")), 24.0);
    assert_eq!(must(&text, &series("read", "malformed", "4xx")), 24.0);
    assert_eq!(must(&text, &series("extra", "allowed", "2xx")), 24.0);
    assert_eq!(must(&text, &series("extra", "insufficient_scope", "4xx")), 24.0);

    within("the workers stopping", h.gateway.shutdown()).await;
    // Every worker dropped its copy of the listening socket.
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_share_one_connection_bound() {
    let h = Harness::builder()
        .config(with_admin("max_connections = 1"))
        .workers(TWO)
        .start()
        .await;
    let addr = h.gateway.local_addr();
    let token = h.key.sign(&claims("read"));
    let request = format!("GET /items/1 HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer {token}\r\n\r\n");
    // The first connection takes the only slot and is kept alive.
    let mut first = RawConn::open(addr).await;
    let answer = first.exchange(request.as_bytes(), "the first answer").await;
    assert_eq!(
        (answer.version, answer.status.as_u16()),
        (Version::HTTP_11, 200),
        "{answer:?}"
    );
    // The second waits in the accept queue, whichever worker would take it.
    let second = tokio::spawn({
        let token = token.clone();
        async move { on_new_connection(addr, "/items/1", &token).await }
    });
    // A second exchange on the first connection: by its answer the other worker has had
    // every chance to take the waiting connection, had the bound been per worker.
    let answer = first
        .exchange(request.as_bytes(), "the first connection's second answer")
        .await;
    assert_eq!(
        (answer.version, answer.status.as_u16()),
        (Version::HTTP_11, 200),
        "{answer:?}"
    );
    assert!(!second.is_finished());
    let (_, text) = scrape(&h).await;
    assert_eq!(must(&text, "portcullis_connections_open"), 1.0);
    drop(first);
    let status = within("the second answer", second).await.unwrap();
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_gateway_on_a_taken_address_does_not_start() {
    let h = Harness::builder().workers(TWO).start().await;
    // Each worker's socket has SO_REUSEPORT; another gateway must not join them and share
    // the traffic: it fails to start, as it would without.
    let second = portcullis::app::Gateway::start(portcullis::app::Options {
        listen: Some(h.gateway.local_addr()),
        workers: Some(TWO),
        ..portcullis::app::Options::new(h.config_path())
    })
    .await;
    match second {
        Err(e) => assert!(e.to_string().contains(&h.gateway.local_addr().to_string()), "{e}"),
        Ok(_) => panic!("a second gateway started on {}", h.gateway.local_addr()),
    }
    // The first still serves.
    let token = h.key.sign(&claims("read"));
    assert_eq!(h.get("/items/1", &token).await.status, http::StatusCode::OK);
}
