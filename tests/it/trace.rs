//! W3C Trace Context, end to end: a `traceparent` created when absent or malformed, the
//! client's trace continued with the gateway's own span, `tracestate` passed only with a
//! valid parent, and the trace id on the access line.

use http::{Method, StatusCode};

use crate::support::*;

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// `00-<32 hex>-<16 hex>-<2 hex>`, neither id all zeros: (trace id, parent id, flags).
#[track_caller]
fn valid(v: &str) -> (String, String, String) {
    let parts: Vec<&str> = v.split('-').collect();
    assert_eq!(parts.len(), 4, "{v}");
    assert_eq!(parts[0], "00", "{v}");
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    assert!(hex(parts[1], 32) && parts[1] != "0".repeat(32), "{v}");
    assert!(hex(parts[2], 16) && parts[2] != "0".repeat(16), "{v}");
    assert!(hex(parts[3], 2), "{v}");
    (parts[1].into(), parts[2].into(), parts[3].into())
}

async fn upstream_traceparent(h: &Harness, headers: &[(&str, &str)]) -> (String, Option<String>) {
    let token = bearer(&h.key.sign(&claims("read")));
    let mut all = vec![("authorization", token.as_str())];
    all.extend_from_slice(headers);
    let a = h.send(Method::GET, "/items/1", &all, "").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let seen = h.upstream.last().await;
    let values: Vec<String> = seen
        .headers
        .get_all("traceparent")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(values.len(), 1, "{values:?}");
    let state = seen.headers.get("tracestate").map(|v| v.to_str().unwrap().to_owned());
    (values[0].clone(), state)
}

#[tokio::test]
async fn a_traceparent_is_created_when_the_client_sent_none() {
    let h = Harness::start().await;
    let (first, _) = upstream_traceparent(&h, &[]).await;
    let (second, _) = upstream_traceparent(&h, &[]).await;
    let (a, _, flags) = valid(&first);
    let (b, _, _) = valid(&second);
    assert_ne!(a, b, "each request starts its own trace");
    assert_eq!(flags, "01");
}

#[tokio::test]
async fn a_valid_traceparent_keeps_its_trace_id_with_the_gateways_span_and_its_tracestate() {
    let h = Harness::start().await;
    let (tp, state) = upstream_traceparent(
        &h,
        &[
            ("traceparent", PARENT),
            ("tracestate", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
        ],
    )
    .await;
    let (trace, parent, flags) = valid(&tp);
    assert_eq!(trace, TRACE_ID);
    assert_ne!(
        parent, "00f067aa0ba902b7",
        "the gateway's own span is the upstream's parent"
    );
    assert_eq!(flags, "01");
    assert_eq!(state.as_deref(), Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"));
    // Not sampled stays not sampled.
    let unsampled = PARENT.replace("-01", "-00");
    let (tp, _) = upstream_traceparent(&h, &[("traceparent", &unsampled)]).await;
    assert_eq!(valid(&tp).2, "00");
}

#[tokio::test]
async fn a_malformed_traceparent_is_replaced_and_its_tracestate_dropped() {
    let h = Harness::start().await;
    for bad in [
        "garbage",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
    ] {
        let (tp, state) = upstream_traceparent(&h, &[("traceparent", bad), ("tracestate", "congo=t61rcWkgMzE")]).await;
        let (trace, _, _) = valid(&tp);
        assert_ne!(trace, TRACE_ID, "{bad}");
        assert_eq!(state, None, "{bad}: a tracestate without its parent is not passed");
    }
}

#[tokio::test]
async fn the_trace_id_is_on_the_access_line() {
    let h = Harness::start().await;
    // One access line before capturing (see `Logs::capture`).
    let _ = h.send(Method::GET, "/items/1", &[], "").await;
    let logs = Logs::capture();
    let token = bearer(&h.key.sign(&claims("read")));
    let a = h
        .send(
            Method::GET,
            "/items/1",
            &[
                ("authorization", &token),
                ("traceparent", PARENT),
                ("x-request-id", "tr-1"),
            ],
            "",
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(logs.access_line("tr-1")["trace_id"], TRACE_ID);

    // A refusal is logged with its trace id too; a new trace's id is the one sent upstream.
    let a = h.send(Method::GET, "/items/1", &[("x-request-id", "tr-2")], "").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let line = logs.access_line("tr-2");
    assert_eq!(line["trace_id"].as_str().map(str::len), Some(32), "{line}");
    let _ = h
        .send(
            Method::GET,
            "/items/1",
            &[("authorization", &token), ("x-request-id", "tr-3")],
            "",
        )
        .await;
    let (sent, _, _) = valid(h.upstream.last().await.headers["traceparent"].to_str().unwrap());
    assert_eq!(logs.access_line("tr-3")["trace_id"], sent);
}
