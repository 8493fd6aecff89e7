//! What the criterion benches share: the clock they run at and the tokens they send.

use std::time::Duration;

use portcullis::Snapshot;
use portcullis::issuer::{MintRequest, mint};
use portcullis::jwks::SigningKey;
use portcullis::model::{EntityRef, RealmRef};

/// The benches' fixed "now" (a `ManualClock`), so tokens never expire mid-run.
pub(crate) const NOW: i64 = 1_780_272_000;

/// An access token of the bench realm (issuer `https://issuer.bench`, audience
/// `https://api.bench`, scope `read`), signed with the realm's key `kid`.
pub(crate) fn token(snap: &Snapshot, kid: &str) -> String {
    let key = snap.realms[RealmRef::at(0)]
        .signing
        .keys()
        .iter()
        .find(|k| k.kid == kid)
        .unwrap_or_else(|| panic!("no key {kid}"));
    mint_for(key, "https://api.bench", "read")
}

/// An access token of the bench realm for `audience` with `scope`, signed with `key`.
pub(crate) fn mint_for(key: &SigningKey, audience: &str, scope: &str) -> String {
    mint(
        &MintRequest {
            issuer: "https://issuer.bench",
            audience,
            subject: "bench",
            client_id: "bench",
            scope,
            now: NOW,
            ttl: Duration::from_secs(3600),
            auth_time: NOW,
        },
        key,
    )
    .unwrap_or_else(|e| panic!("minting a bench token: {e}"))
}
