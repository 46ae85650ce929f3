//! Rooms: single-threaded actors with an id, durable storage, alarms and a
//! set of live connections, in the spirit of a Durable Object with the
//! WebSocket Hibernation API.
//!
//! A room kind is a type implementing [`Room`], built by a [`RoomFactory`].
//! One actor task per live room handles its events strictly one at a time;
//! a connection that finds the room free handles its own messages on its
//! own task instead, under the same lock (see `RoomHandle::try_deliver`).
//! The room reaches its connections only through [`ConnSink`], a trait the
//! server implements over sockets: this crate knows nothing of sockets, so a
//! room can be tested with a recording fake.
//!
//! Hibernation: after `hibernate_after` without events the actor drops the
//! room object (its in-memory state); the connections, their tags and
//! attachments stay with the actor. The next event builds the room again
//! from its factory (which reloads what it needs from storage) and delivers
//! the event.

mod actor;
mod auto_response;
mod batch;
mod census;
mod conn;
mod conn_table;
mod context;
mod headers;
mod name;
mod room;
mod storage;
pub mod testing;

pub use actor::{spawn_room, spawn_room_notifying, RoomConfig, RoomGone, RoomHandle, RoomStats, TryDeliverError};
pub use auto_response::AutoResponse;
pub use batch::ReadBatch;
pub use census::RoomCensus;
pub use conn::{ConnId, ConnSink, LocalSink, Run, MAX_ATTACHMENT_LEN};
pub use context::{Ctx, Outgoing, HOLD_THRESHOLD};
pub use headers::Headers;
pub use name::{RoomId, RoomKind, RoomName, MAX_KIND_LEN, MAX_ROOM_ID_LEN};
pub use room::{Closed, ConnectRequest, Decision, Geo, Identity, Published, Room, RoomFactory, RoomRequest, RoomResponse};
pub use storage::RoomStorage;
pub use switchboard_proto::{CloseCode, Message, SendOutcome};
pub use switchboard_store::{StoreError, StoreResult, Write};
