//! The handler of an accepted WebSocket: in its room on this node
//! ([`RoomConnection`]), or, in cluster mode, joined to its room through
//! the room's owner ([`RemoteConnection`]). One enum, so the listener keeps
//! one handler type; the remote one is boxed, so a plain connection's box
//! does not grow, and so are its futures: they wait on NATS and are far
//! larger than a room connection's, and every connection's task is as
//! large as the largest future it may await (see `switchboard_net::Handler`).

use std::future::Future;

use futures_util::future::Either;
use switchboard_net::{Handler, Outbox, Traffic};
use switchboard_proto::{CloseCode, Message};

use crate::cluster::RemoteConnection;
use crate::room_conn::RoomConnection;

pub(crate) enum ConnHandler {
    Local(RoomConnection),
    Remote(Box<RemoteConnection>),
}

impl Handler for ConnHandler {
    fn on_open(&mut self, out: Outbox<'_>) -> impl Future<Output = ()> + Send {
        match self {
            ConnHandler::Local(c) => Either::Left(c.on_open(out)),
            ConnHandler::Remote(c) => Either::Right(Box::pin(c.on_open(out))),
        }
    }

    fn on_message(&mut self, message: Message, out: Outbox<'_>) -> impl Future<Output = ()> + Send {
        match self {
            ConnHandler::Local(c) => Either::Left(c.on_message(message, out)),
            ConnHandler::Remote(c) => Either::Right(Box::pin(c.on_message(message, out))),
        }
    }

    fn take_message(&mut self, message: Message) -> Result<(), Message> {
        match self {
            ConnHandler::Local(c) => c.take_message(message),
            ConnHandler::Remote(c) => c.take_message(message),
        }
    }

    fn on_read_end(&mut self, out: Outbox<'_>) -> impl Future<Output = ()> + Send {
        match self {
            ConnHandler::Local(c) => Either::Left(c.on_read_end(out)),
            ConnHandler::Remote(c) => Either::Right(Box::pin(c.on_read_end(out))),
        }
    }

    fn on_close(&mut self, code: Option<CloseCode>, reason: &str, clean: bool) -> impl Future<Output = ()> + Send {
        match self {
            ConnHandler::Local(c) => Either::Left(c.on_close(code, reason, clean)),
            ConnHandler::Remote(c) => Either::Right(Box::pin(c.on_close(code, reason, clean))),
        }
    }

    fn on_end(&mut self, traffic: Traffic) {
        match self {
            ConnHandler::Local(c) => c.on_end(traffic),
            ConnHandler::Remote(c) => c.on_end(traffic),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ConnHandler;
    use crate::room_conn::RoomConnection;

    /// The remote variant costs a plain connection nothing: the enum fits
    /// in the local handler's size (see `room_conn`'s size tests).
    #[test]
    fn the_handler_is_no_larger_than_a_room_connection() {
        assert_eq!(std::mem::size_of::<ConnHandler>(), std::mem::size_of::<RoomConnection>());
    }
}
