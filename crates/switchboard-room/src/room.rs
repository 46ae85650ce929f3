//! The trait a room kind implements, and what its handlers receive.

use std::net::IpAddr;

use bytes::Bytes;
use switchboard_proto::{CloseCode, Message};

use crate::conn::ConnId;
use crate::context::Ctx;
use crate::headers::Headers;
use crate::storage::RoomStorage;
use switchboard_store::StoreError;

/// What the room learns about a connection before accepting it.
#[derive(Debug, Clone)]
pub struct ConnectRequest {
    /// The connection's id, if accepted.
    pub conn: ConnId,
    /// The query string of the upgrade request (without `?`).
    pub query: String,
    /// Request headers (lower-case names) the server passes on.
    pub headers: Headers,
    /// The client's IP (from the socket or a trusted proxy).
    pub ip: IpAddr,
    /// Where the IP is, from the server's geo database; `None` without a
    /// database or for addresses it does not know.
    pub geo: Option<Geo>,
    /// Who the client is, as verified at the edge (a token, a trusted
    /// gateway's header, an auth backend); `None` when the room kind is
    /// public. Rooms decide what an identity may enter.
    pub identity: Option<Identity>,
}

/// A client identity verified by the server before the room is asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The subject: an account or user id (a token's `sub`, the gateway
    /// header's value, the auth backend's answer).
    pub subject: String,
    /// Further claims the edge passes on (name and value, as text).
    pub claims: Vec<(String, String)>,
}

/// The location of a client IP, as far as the geo database knows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Geo {
    /// ISO 3166-1 alpha-2 country code, upper case (`"NZ"`).
    pub country: Option<String>,
    /// City name (English where the database has several).
    pub city: Option<String>,
    /// Latitude in degrees.
    pub latitude: Option<f64>,
    /// Longitude in degrees.
    pub longitude: Option<f64>,
}

/// A room's answer to a connection attempt, given before the 101.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Accept, with tags (for `Ctx::connections`) and an attachment.
    Accept {
        /// Tags to find the connection by.
        tags: Vec<String>,
        /// Initial attachment (at most `MAX_ATTACHMENT_LEN` bytes).
        attachment: Option<Vec<u8>>,
    },
    /// Refuse with an HTTP status and a reason.
    Reject {
        /// HTTP status, e.g. 403 or 503.
        status: u16,
        /// Shown to the client as the response body.
        reason: String,
    },
}

impl Decision {
    /// Accept with no tags and no attachment.
    pub fn accept() -> Decision {
        Decision::Accept { tags: Vec::new(), attachment: None }
    }
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// The close code (the peer's, ours on a protocol error, 1006 when the
    /// TCP connection dropped), `None` when the close frame had no code.
    pub code: Option<CloseCode>,
    /// The reason.
    pub reason: String,
    /// True when the closing handshake completed.
    pub clean: bool,
    /// The connection's attachment when it closed. The room layer fills
    /// this in (whatever the sender of the event put here is replaced), so
    /// `on_close` can tell who left even after the room hibernated.
    pub attachment: Option<Vec<u8>>,
}

/// An HTTP request to a room (`/api/rooms/{kind}/{id}/...`).
#[derive(Debug, Clone)]
pub struct RoomRequest {
    /// Method, e.g. `POST`.
    pub method: String,
    /// The path below the room, e.g. `/events`.
    pub path: String,
    /// The body.
    pub body: Bytes,
}

/// A room's HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomResponse {
    /// HTTP status.
    pub status: u16,
    /// Content type of the body.
    pub content_type: &'static str,
    /// The body.
    pub body: Bytes,
}

impl RoomResponse {
    /// A 404 for paths the room does not serve.
    pub fn not_found() -> RoomResponse {
        RoomResponse { status: 404, content_type: "text/plain; charset=utf-8", body: Bytes::from_static(b"not found\n") }
    }

    /// A JSON response.
    pub fn json(status: u16, body: impl Into<Bytes>) -> RoomResponse {
        RoomResponse { status, content_type: "application/json", body: body.into() }
    }
}

/// What a room made of a message published to it over HTTP
/// (`POST /api/rooms/{kind}/{id}/publish`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// Delivered (as it was, or transformed) to this many connections.
    Delivered(usize),
    /// Not taken: the publisher gets this HTTP status and reason.
    Refused {
        /// HTTP status, e.g. 403 or 422.
        status: u16,
        /// Why, shown to the publisher.
        reason: String,
    },
}

/// A room kind. Handlers run one at a time, on the room's actor task or on
/// the task of the connection whose messages they handle. They are plain
/// computation: storage writes are recorded and committed after the batch
/// of events, off the runtime (reads are short and synchronous).
pub trait Room: Send + 'static {
    /// A connection asks to join. Default: accept.
    fn on_connect(&mut self, _ctx: &mut Ctx<'_>, _request: &ConnectRequest) -> Decision {
        Decision::accept()
    }
    /// An accepted connection is open.
    fn on_open(&mut self, _ctx: &mut Ctx<'_>, _conn: ConnId) {}
    /// A message from a connection.
    fn on_message(&mut self, ctx: &mut Ctx<'_>, conn: ConnId, message: Message);
    /// A connection ended; it is no longer in `ctx.connections`.
    fn on_close(&mut self, _ctx: &mut Ctx<'_>, _conn: ConnId, _closed: &Closed) {}
    /// A connection failed (protocol error, dead peer). `on_close` follows.
    fn on_error(&mut self, _ctx: &mut Ctx<'_>, _conn: ConnId, _error: &str) {}
    /// HTTP to the room, e.g. a backend pushing an event. Default: 404.
    fn on_request(&mut self, _ctx: &mut Ctx<'_>, _request: RoomRequest) -> RoomResponse {
        RoomResponse::not_found()
    }
    /// A backend published `message` to the room (text for a JSON or text
    /// body, binary otherwise). Default: broadcast it to every connection
    /// as it is. A kind may refuse it, or wrap it in its own protocol.
    fn on_publish(&mut self, ctx: &mut Ctx<'_>, message: Message) -> Published {
        Published::Delivered(ctx.broadcast(message, None))
    }
    /// A named alarm fired.
    fn on_alarm(&mut self, _ctx: &mut Ctx<'_>, _name: &str) {}
    /// The time given to `Ctx::wake_after` has passed.
    fn on_wake(&mut self, _ctx: &mut Ctx<'_>) {}
    /// The actor handled the events that were waiting (up to 64 per wake)
    /// or the alarms that were due, or a connection handled its read's
    /// messages itself (`RoomHandle::try_deliver`), and the room is about
    /// to wait for more. Work that each event of a burst would repeat,
    /// such as announcing the member count or storing a counter, can be
    /// done once here: when a thousand clients join at once, a room that
    /// announces its count here sends it once per batch instead of once per
    /// join. Not called while the room hibernates.
    fn on_batch_end(&mut self, _ctx: &mut Ctx<'_>) {}
    /// A batch of this room's storage writes could not be committed (the
    /// disk is full, say): none of its writes were stored, reads no longer
    /// show them, and the messages queued with `Ctx::send_after_commit`
    /// after them were not sent: `unsent` holds them with their
    /// connections, in order, so the room can tell those clients. The
    /// actor has logged the error. Default: nothing more.
    fn on_commit_failed(&mut self, _ctx: &mut Ctx<'_>, _error: &StoreError, _unsent: &[(ConnId, Message)]) {}
}

/// Builds a room of one kind, on first use and after every hibernation.
pub trait RoomFactory: Send + Sync + 'static {
    /// A fresh room object for room `id`; load durable state from `storage`.
    fn create(&self, id: &str, storage: &RoomStorage<'_>) -> Box<dyn Room>;
}

impl<F> RoomFactory for F
where
    F: Fn(&str, &RoomStorage<'_>) -> Box<dyn Room> + Send + Sync + 'static,
{
    fn create(&self, id: &str, storage: &RoomStorage<'_>) -> Box<dyn Room> {
        self(id, storage)
    }
}
