//! An error told with its causes: what the outbound clients (key fetches, upstreams) put in
//! logs, since hyper's top-level errors ("client error (Connect)") say little on their own.

/// `e` and its sources, `: `-separated.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}
