//! Stopping the server: at once, or by draining for a rolling deploy.
//!
//! A drain goes in three steps (docs/operations.md):
//! 1. `/readyz` answers 503 at once, while the listener keeps accepting for
//!    the `grace` period, long enough for load balancers to see the 503
//!    and stop sending new clients here;
//! 2. the listener closes; open connections carry on until their clients
//!    leave, for at most `timeout`;
//! 3. the connections left are closed with 1001 (going away), the rooms'
//!    storage writes are flushed, and [`Server::run_until`] returns.
//!
//! A request to stop at once ([`StopRequest::Now`]) during a drain cuts it
//! short and goes straight to step 3.
//!
//! [`Server::run_until`]: crate::Server::run_until

use std::sync::Arc;
use std::time::Duration;

use switchboard_net::NetStats;
use tokio::sync::watch;
use tracing::info;

use crate::readiness::Readiness;

/// What the server is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopRequest {
    /// Keep serving.
    Serve,
    /// Drain (see the module docs), then stop.
    Drain,
    /// Close every connection with 1001 now, flush storage, stop.
    Now,
}

/// How a drain is timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainConfig {
    /// How long the listener keeps accepting after `/readyz` turned 503.
    /// 5 s: a load balancer probing every 1-2 s with a failure threshold of
    /// 2-3 has stopped sending new clients by then.
    pub grace: Duration,
    /// How long open connections may stay after the listener closed before
    /// they are closed with 1001. 20 s: with the grace that stays within
    /// the 30 s a container orchestrator (Kubernetes' default
    /// `terminationGracePeriodSeconds`) waits before it kills the process.
    pub timeout: Duration,
}

impl Default for DrainConfig {
    fn default() -> Self {
        DrainConfig { grace: Duration::from_secs(5), timeout: Duration::from_secs(20) }
    }
}

/// The listener's two stop signals (stop accepting; close everything), set
/// as `requests` and the drain's clock say.
pub(crate) struct Control {
    pub(crate) requests: watch::Receiver<StopRequest>,
    pub(crate) config: DrainConfig,
    pub(crate) readiness: Arc<Readiness>,
    pub(crate) net: Arc<NetStats>,
    pub(crate) stop_accepting: watch::Sender<bool>,
    pub(crate) shut_down: watch::Sender<bool>,
}

/// How often a drain looks whether every connection has left.
const LEFT_POLL: Duration = Duration::from_millis(50);

impl Control {
    /// Runs until the server is told to close every connection.
    pub(crate) async fn run(mut self) {
        // A dropped sender means nobody can ask any more: stop now.
        let first = match self.requests.wait_for(|r| *r != StopRequest::Serve).await {
            Ok(request) => *request,
            Err(_) => StopRequest::Now,
        };
        if first == StopRequest::Drain {
            self.drain().await;
        }
        info!("shutting down: closing connections with 1001");
        let _ = self.stop_accepting.send(true);
        self.readiness.stop_accepting();
        let _ = self.shut_down.send(true);
    }

    async fn drain(&mut self) {
        let DrainConfig { grace, timeout } = self.config;
        self.readiness.begin_drain();
        info!(grace_s = grace.as_secs_f64(), "draining: /readyz answers 503; still accepting connections during the grace period");
        let mut now = self.requests.clone();
        let stop_now = async move {
            let _ = now.wait_for(|r| *r == StopRequest::Now).await;
        };
        tokio::pin!(stop_now);
        tokio::select! {
            () = tokio::time::sleep(grace) => {}
            () = &mut stop_now => return,
        }
        let _ = self.stop_accepting.send(true);
        self.readiness.stop_accepting();
        let open = self.net.snapshot().connections_open;
        info!(connections = open, timeout_s = timeout.as_secs_f64(), "draining: listener closed; waiting for open connections to leave");
        let net = self.net.clone();
        let all_left = async move {
            while net.snapshot().connections_open > 0 {
                tokio::time::sleep(LEFT_POLL).await;
            }
        };
        tokio::select! {
            () = all_left => info!("draining: every connection left"),
            () = tokio::time::sleep(timeout) => info!(connections = self.net.snapshot().connections_open, "draining: timeout reached"),
            () = &mut stop_now => {}
        }
    }
}
