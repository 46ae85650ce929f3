//! Cluster mode's connection handler: a [`RemoteConnection`] (joined to
//! its room through the room's owner) behind a box, with its futures boxed
//! too. They wait on NATS and are far larger than a room connection's,
//! and a connection's task is as large as the largest future it may await
//! (see `switchboard_net::Handler`). A plain server's listener has
//! [`RoomConnection`](crate::room_conn::RoomConnection) as its handler
//! type and carries none of this (`service`'s modes).

use std::future::Future;

use switchboard_net::{Handler, Outbox, Traffic};
use switchboard_proto::{CloseCode, Message};

use crate::cluster::RemoteConnection;

pub(crate) struct ClusterHandler(pub(crate) Box<RemoteConnection>);

impl Handler for ClusterHandler {
    fn on_open(&mut self, out: Outbox<'_>) -> impl Future<Output = ()> + Send {
        Box::pin(self.0.on_open(out))
    }

    fn on_message(&mut self, message: Message, out: Outbox<'_>) -> impl Future<Output = ()> + Send {
        Box::pin(self.0.on_message(message, out))
    }

    fn take_message(&mut self, message: Message) -> Result<(), Message> {
        self.0.take_message(message)
    }

    fn on_read_end(&mut self, out: Outbox<'_>) -> impl Future<Output = ()> + Send {
        Box::pin(self.0.on_read_end(out))
    }

    fn on_close(&mut self, code: Option<CloseCode>, reason: &str, clean: bool) -> impl Future<Output = ()> + Send {
        Box::pin(self.0.on_close(code, reason, clean))
    }

    fn on_end(&mut self, traffic: Traffic) {
        self.0.on_end(traffic)
    }
}

#[cfg(test)]
mod tests {
    use super::ClusterHandler;

    /// A cluster connection's handler is one pointer in its connection's box.
    #[test]
    fn the_cluster_handler_is_one_pointer() {
        assert_eq!(std::mem::size_of::<ClusterHandler>(), std::mem::size_of::<usize>());
    }
}
