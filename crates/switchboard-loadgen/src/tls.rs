//! `wss://` targets: the CA the load generator trusts (`--tls-ca`), set once
//! at start and used by every connection of the run, so each scenario's
//! clients are made the same way for `ws://` and `wss://`. Session
//! resumption is off: every connection runs a full handshake, the server's
//! worst case, so the churn scenario's rate is that of full handshakes.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use switchboard_client::{tls_config, ClientOptions, RootCertStore, TlsConfig};

static TLS: OnceLock<Arc<TlsConfig>> = OnceLock::new();

/// Trusts the CA certificates in the PEM file `ca` for this run.
pub(crate) fn trust(ca: &Path) -> Result<(), String> {
    let pem = std::fs::read(ca).map_err(|e| format!("cannot read {}: {e}", ca.display()))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("{}: {e}", ca.display()))?;
        roots.add(cert).map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("no certificate in {}", ca.display()));
    }
    let mut config = Arc::unwrap_or_clone(tls_config(roots));
    config.resumption = rustls::client::Resumption::disabled();
    let _ = TLS.set(Arc::new(config));
    Ok(())
}

/// Options for a new connection: the defaults, with the trusted CA.
pub(crate) fn client_options() -> ClientOptions {
    ClientOptions { tls: TLS.get().cloned(), ..ClientOptions::default() }
}
