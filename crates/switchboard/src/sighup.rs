//! `SIGHUP` reloads the TLS certificate, the way operators and certificate
//! renewal hooks (certbot's `--deploy-hook`, `systemctl reload`) expect.
//! Only installed when there is a TLS listener; otherwise `SIGHUP` keeps
//! its default meaning and stops the process.

use switchboard_server::{log_tls_reload, TlsReloader};
use tokio::signal::unix::{signal, SignalKind};

/// Reloads the certificate on every `SIGHUP`, for as long as the runtime runs.
pub fn reload_tls_on_sighup(reloader: TlsReloader, cert: std::path::PathBuf) {
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; the certificate is still reloaded when its files change");
            return;
        }
    };
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            let reloader = reloader.clone();
            // File reads stay off the async workers.
            let outcome = tokio::task::spawn_blocking(move || reloader.reload()).await.unwrap_or_else(|e| Err(e.to_string()));
            log_tls_reload(&cert, "SIGHUP", outcome);
        }
    });
}
