//! `TCP_NODELAY` on accepted sockets, with as few system calls as the
//! kernel allows.
//!
//! Every WebSocket connection wants Nagle's algorithm off (a small frame
//! must not wait for the previous one's acknowledgement). Linux gives an
//! accepted socket the options of its listening socket, `TCP_NODELAY`
//! included, so a listener bound with it (the server's is) hands out
//! sockets that already have it, and a `setsockopt` per connection would be
//! a system call for nothing. Whether that holds is learned once per
//! listener, from its first accepted socket (one `getsockopt`); where it
//! does not (another kernel, a listener bound without the option), every
//! socket gets the `setsockopt`.

use std::sync::OnceLock;

use tokio::net::TcpStream;

/// One listener's knowledge of its accepted sockets' `TCP_NODELAY`.
#[derive(Default)]
pub(crate) struct NoDelay {
    /// Whether accepted sockets come with it set; unknown until the first.
    inherited: OnceLock<bool>,
}

impl NoDelay {
    /// Makes sure `stream` has `TCP_NODELAY`.
    pub(crate) fn apply(&self, stream: &TcpStream) {
        let inherited = *self.inherited.get_or_init(|| stream.nodelay().unwrap_or(false));
        if !inherited {
            let _ = stream.set_nodelay(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::{TcpListener, TcpSocket, TcpStream};

    use super::NoDelay;

    async fn listener(nodelay: bool) -> TcpListener {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_nodelay(nodelay).unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        socket.listen(16).unwrap()
    }

    /// Every accepted socket ends up with `TCP_NODELAY`, whether the
    /// listening socket had it or not, the first one and those after it.
    #[tokio::test]
    async fn every_accepted_socket_gets_nodelay() {
        for listener_has_it in [true, false] {
            let listener = listener(listener_has_it).await;
            let addr = listener.local_addr().unwrap();
            let nodelay = NoDelay::default();
            for _ in 0..3 {
                let _client = TcpStream::connect(addr).await.unwrap();
                let (accepted, _) = listener.accept().await.unwrap();
                nodelay.apply(&accepted);
                assert!(accepted.nodelay().unwrap(), "listener with TCP_NODELAY: {listener_has_it}");
            }
        }
    }
}
