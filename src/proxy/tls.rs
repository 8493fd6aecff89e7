//! TLS to `https://` upstreams: rustls (aws-lc-rs) with SNI and hostname verification on, the
//! certificate checked against the platform's roots, or, when `[server] upstream_ca` is set,
//! against that file's CAs only.
//!
//! The pooled client lives as long as the gateway, but trust follows the configuration: the
//! connector's verifier reads the anchors of the current snapshot at every handshake, so a
//! reload swaps one thing, the snapshot. Connections already open stay as they were
//! verified; new ones use the new anchors.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use crate::snapshot::Snapshot;
use crate::tls::{UpstreamCa, platform_roots, provider};

/// The verifier every upstream handshake consults: the current snapshot's `upstream_ca`, or
/// the platform's roots.
pub(super) struct UpstreamTrust {
    snapshots: Arc<ArcSwap<Snapshot>>,
    platform: Arc<WebPkiServerVerifier>,
}

impl std::fmt::Debug for UpstreamTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTrust").finish_non_exhaustive()
    }
}

impl UpstreamTrust {
    /// Trusts what the current snapshot of `snapshots` says. `None` when no verifier can be
    /// built at all (no roots anywhere).
    pub(super) fn new(snapshots: Arc<ArcSwap<Snapshot>>) -> Option<Self> {
        let platform = WebPkiServerVerifier::builder_with_provider(platform_roots(), provider())
            .build()
            .map_err(|e| tracing::error!(error = %e, "no usable platform roots for upstream TLS"))
            .ok()?;
        Some(Self { snapshots, platform })
    }

    /// The verifier of the current snapshot.
    fn current(&self) -> Arc<WebPkiServerVerifier> {
        let snap = self.snapshots.load();
        snap.upstream_ca
            .as_ref()
            .map_or_else(|| self.platform.clone(), |c: &UpstreamCa| c.verifier.clone())
    }
}

/// NB: a pure delegation; every check (chain, validity, hostname, signatures) is
/// `WebPkiServerVerifier`'s. It sits behind rustls' `danger` API only because a custom
/// verifier is the way to swap anchors without rebuilding the pooled client.
impl ServerCertVerifier for UpstreamTrust {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.current()
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current().supported_verify_schemes()
    }
}

/// The client configuration of the upstream connector: TLS 1.2 and 1.3, SNI on (rustls'
/// default), no client certificate, certificates checked by `trust`.
pub(super) fn client_config(trust: Arc<UpstreamTrust>) -> Option<ClientConfig> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tracing::error!(error = %e, "cannot configure upstream TLS"))
        .ok()?
        .dangerous()
        .with_custom_certificate_verifier(trust)
        .with_no_client_auth();
    Some(config)
}
