//! The actor that owns one room: its mailbox, its connections, its alarms,
//! and the room object that hibernation drops and rebuilds.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use switchboard_proto::Message;
use switchboard_store::Store;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::warn;

use crate::conn::{ConnId, ConnRecord, ConnSink, MAX_ATTACHMENT_LEN};
use crate::context::{Ctx, Held, RoomStorage};
use crate::room::{Closed, ConnectRequest, Decision, Room, RoomFactory, RoomRequest, RoomResponse};

/// Settings of room actors.
#[derive(Debug, Clone, Copy)]
pub struct RoomConfig {
    /// Idle time after which the room object is dropped. Default 10 s: long
    /// enough that a chatty room never pays for rebuilding, short enough
    /// that thousands of quiet rooms cost only their connection tables.
    pub hibernate_after: Duration,
    /// Events queued per room before senders wait. Default 1024: a burst
    /// from every member of a busy room fits; a flood makes senders (and so
    /// their sockets' reads) wait instead of growing memory.
    pub mailbox: usize,
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig { hibernate_after: Duration::from_secs(10), mailbox: 1024 }
    }
}

/// An input to a room.
pub enum RoomEvent {
    /// A connection asks to join; the answer comes before the 101.
    Connect {
        /// Who asks.
        request: ConnectRequest,
        /// Where the decision goes.
        reply: oneshot::Sender<Decision>,
    },
    /// An accepted connection is open.
    Open {
        /// Its id (the one in the `ConnectRequest`).
        conn: ConnId,
        /// Its outbound side (boxed, not shared: the room's table holds
        /// one per connection; a sink that others must see too can be an
        /// `Arc`, which is a `ConnSink` as well).
        sink: Box<dyn ConnSink>,
        /// Tags from the decision.
        tags: Vec<String>,
        /// Attachment from the decision.
        attachment: Option<Vec<u8>>,
    },
    /// A message from a connection.
    Message {
        /// From whom.
        conn: ConnId,
        /// What.
        message: Message,
    },
    /// Several messages from one connection, in order (one read's worth:
    /// one mailbox slot and one wake-up instead of one per message).
    Messages {
        /// From whom.
        conn: ConnId,
        /// What, in arrival order.
        messages: Vec<Message>,
    },
    /// A connection failed.
    Error {
        /// Which.
        conn: ConnId,
        /// Why.
        error: String,
    },
    /// A connection ended.
    Close {
        /// Which.
        conn: ConnId,
        /// How.
        closed: Closed,
        /// Told once `on_close` returned, i.e. once everything the room sent
        /// before it is queued on the connection (the close reply waits for it).
        done: Option<oneshot::Sender<()>>,
    },
    /// HTTP to the room.
    Request {
        /// The request.
        request: RoomRequest,
        /// Where the response goes.
        reply: oneshot::Sender<RoomResponse>,
    },
    /// Reports counters without waking the room.
    Stats {
        /// Where they go.
        reply: oneshot::Sender<RoomStats>,
    },
}

/// Counters of one room actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomStats {
    /// Open connections.
    pub connections: usize,
    /// Times the room object was built (first use and every wake-up).
    pub wakeups: u64,
    /// Whether the room object is in memory now.
    pub awake: bool,
}

/// The mailbox of a room actor.
#[derive(Clone)]
pub struct RoomHandle {
    tx: mpsc::Sender<Mail>,
}

/// A [`RoomEvent`] in the mailbox: the per-message events as they are,
/// every other event boxed. The channel allocates its slots 32 at a time
/// and keeps them for the room's life, hibernated or not; at 48 bytes a
/// slot instead of the 168 of the largest event, a block is 1.5 KiB
/// instead of 5.4 KiB. The boxed events happen about twice per connection.
enum Mail {
    Message { conn: ConnId, message: Message },
    Messages { conn: ConnId, messages: Vec<Message> },
    Other(Box<RoomEvent>),
}

impl From<RoomEvent> for Mail {
    fn from(event: RoomEvent) -> Mail {
        match event {
            RoomEvent::Message { conn, message } => Mail::Message { conn, message },
            RoomEvent::Messages { conn, messages } => Mail::Messages { conn, messages },
            other => Mail::Other(Box::new(other)),
        }
    }
}

impl From<Mail> for RoomEvent {
    fn from(mail: Mail) -> RoomEvent {
        match mail {
            Mail::Message { conn, message } => RoomEvent::Message { conn, message },
            Mail::Messages { conn, messages } => RoomEvent::Messages { conn, messages },
            Mail::Other(event) => *event,
        }
    }
}

/// The room actor has stopped (it had no connections, no alarms, no work).
#[derive(Debug)]
pub struct RoomGone(pub RoomEvent);

/// Why [`RoomHandle::try_send`] did not deliver an event; the event comes back.
#[derive(Debug)]
pub enum TrySendError {
    /// The mailbox is full: wait with [`RoomHandle::send`].
    Full(RoomEvent),
    /// The room actor has stopped.
    Gone(RoomEvent),
}

impl std::fmt::Debug for RoomEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            RoomEvent::Connect { .. } => "Connect",
            RoomEvent::Open { .. } => "Open",
            RoomEvent::Message { .. } => "Message",
            RoomEvent::Messages { .. } => "Messages",
            RoomEvent::Error { .. } => "Error",
            RoomEvent::Close { .. } => "Close",
            RoomEvent::Request { .. } => "Request",
            RoomEvent::Stats { .. } => "Stats",
        };
        f.write_str(name)
    }
}

impl RoomHandle {
    /// Delivers an event, waiting while the mailbox is full.
    pub async fn send(&self, event: RoomEvent) -> Result<(), RoomGone> {
        self.tx.send(event.into()).await.map_err(|e| RoomGone(e.0.into()))
    }

    /// Delivers an event if the mailbox has room now. A sender on a hot
    /// path tries this first and awaits [`RoomHandle::send`] (whose future
    /// is several hundred bytes) only when the mailbox is full. The event
    /// comes back by value in the error, as with tokio's `try_send`.
    #[allow(clippy::result_large_err)]
    pub fn try_send(&self, event: RoomEvent) -> Result<(), TrySendError> {
        self.tx.try_send(event.into()).map_err(|e| match e {
            mpsc::error::TrySendError::Full(mail) => TrySendError::Full(mail.into()),
            mpsc::error::TrySendError::Closed(mail) => TrySendError::Gone(mail.into()),
        })
    }

    /// True once the actor stopped; the owner should start a new one.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// The actor's counters.
    pub async fn stats(&self) -> Option<RoomStats> {
        let (reply, rx) = oneshot::channel();
        self.send(RoomEvent::Stats { reply }).await.ok()?;
        rx.await.ok()
    }
}

/// Starts the actor of room `id`, stored under namespace `room` (`kind/id`).
/// Pending alarms of the room are loaded from the store.
pub fn spawn_room(room: String, id: String, factory: Arc<dyn RoomFactory>, store: Arc<dyn Store>, config: RoomConfig) -> RoomHandle {
    let (tx, rx) = mpsc::channel(config.mailbox.max(1));
    let alarms = match store.room_alarms(&room) {
        Ok(list) => list.into_iter().map(|(name, at)| (name, UNIX_EPOCH + Duration::from_millis(at))).collect(),
        Err(e) => {
            warn!(%room, error = %e, "cannot load alarms");
            BTreeMap::new()
        }
    };
    let actor = Actor {
        room,
        id,
        factory,
        store,
        object: None,
        conns: BTreeMap::new(),
        alarms,
        auto_response: None,
        held: Held::default(),
        wakeups: 0,
    };
    tokio::spawn(actor.run(rx, config));
    RoomHandle { tx }
}

/// Events handled per wake-up of the actor: a busy room drains its mailbox
/// in batches instead of being woken once per event.
const EVENTS_PER_WAKE: usize = 64;

struct Actor {
    room: String,
    id: String,
    factory: Arc<dyn RoomFactory>,
    store: Arc<dyn Store>,
    /// The room object; `None` while hibernating.
    object: Option<Box<dyn Room>>,
    conns: BTreeMap<ConnId, ConnRecord>,
    alarms: BTreeMap<String, SystemTime>,
    auto_response: Option<Arc<(Bytes, Bytes)>>,
    /// Frames held back until the end of the batch (see `Ctx::send`, `Ctx::broadcast`).
    held: Held,
    wakeups: u64,
}

impl Actor {
    async fn run(mut self, mut rx: mpsc::Receiver<Mail>, config: RoomConfig) {
        let idle = tokio::time::sleep(config.hibernate_after);
        tokio::pin!(idle);
        // Grows to the largest batch a wake-up took, and is freed when the
        // room hibernates.
        let mut batch = Vec::new();
        loop {
            let next_alarm = self.alarms.values().min().map(|at| {
                Instant::now() + at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO)
            });
            tokio::select! {
                received = rx.recv_many(&mut batch, EVENTS_PER_WAKE) => {
                    if received == 0 {
                        return;
                    }
                    for mail in batch.drain(..) {
                        self.handle(mail.into());
                    }
                    self.end_batch();
                    idle.as_mut().reset(Instant::now() + config.hibernate_after);
                }
                () = &mut idle, if self.object.is_some() => {
                    // Hibernate: connections, tags and attachments stay here.
                    self.object = None;
                    batch = Vec::new();
                }
                () = tokio::time::sleep_until(next_alarm.unwrap_or_else(Instant::now)), if next_alarm.is_some() => {
                    self.fire_due_alarms();
                    self.end_batch();
                    idle.as_mut().reset(Instant::now() + config.hibernate_after);
                }
            }
            if self.object.is_none() && self.conns.is_empty() && self.alarms.is_empty() && rx.is_empty() {
                // Nothing left to wait for: stop; the owner starts a new actor on demand.
                return;
            }
        }
    }

    /// Runs `f` with the room object (building it if hibernated) and a context.
    fn with_room<R>(&mut self, f: impl FnOnce(&mut dyn Room, &mut Ctx<'_>) -> R) -> R {
        let Actor { room, id, factory, store, object, conns, alarms, auto_response, held, wakeups } = self;
        let object = object.get_or_insert_with(|| {
            *wakeups += 1;
            factory.create(id, &RoomStorage { store: &**store, room })
        });
        let mut ctx = Ctx { room, conns, store: &**store, alarms, auto_response, held };
        f(object.as_mut(), &mut ctx)
    }

    /// The held frames go out, then `on_batch_end` runs if the room
    /// object is awake (a batch of stats requests alone does not wake it),
    /// then what it broadcast goes out. Flushing first keeps the batch's
    /// messages from waiting on whatever `on_batch_end` does (a storage
    /// write, say).
    fn end_batch(&mut self) {
        self.held.flush(&self.conns);
        if self.object.is_some() {
            self.with_room(|room, ctx| room.on_batch_end(ctx));
            self.held.flush(&self.conns);
        }
    }

    fn handle(&mut self, event: RoomEvent) {
        if !matches!(event, RoomEvent::Message { .. } | RoomEvent::Messages { .. }) {
            // A join or a leave changes who held frames are for; other
            // events may reach connections in ways that must come after them.
            self.held.flush(&self.conns);
        }
        match event {
            RoomEvent::Connect { request, reply } => {
                let mut decision = self.with_room(|room, ctx| room.on_connect(ctx, &request));
                if let Decision::Accept { attachment: Some(a), .. } = &decision {
                    if a.len() > MAX_ATTACHMENT_LEN {
                        decision = Decision::Reject { status: 500, reason: "room attachment too large".into() };
                    }
                }
                let _ = reply.send(decision);
            }
            RoomEvent::Open { conn, sink, tags, attachment } => {
                if self.auto_response.is_some() {
                    sink.set_auto_response(self.auto_response.clone());
                }
                self.conns.insert(conn, ConnRecord::new(sink, tags, attachment));
                self.with_room(|room, ctx| room.on_open(ctx, conn));
            }
            RoomEvent::Message { conn, message } => {
                if self.conns.contains_key(&conn) {
                    self.with_room(|room, ctx| room.on_message(ctx, conn, message));
                }
            }
            RoomEvent::Messages { conn, messages } => {
                if self.conns.contains_key(&conn) {
                    self.with_room(|room, ctx| {
                        for message in messages {
                            room.on_message(ctx, conn, message);
                        }
                    });
                }
            }
            RoomEvent::Error { conn, error } => {
                if self.conns.contains_key(&conn) {
                    self.with_room(|room, ctx| room.on_error(ctx, conn, &error));
                }
            }
            RoomEvent::Close { conn, mut closed, done } => {
                if let Some(record) = self.conns.remove(&conn) {
                    closed.attachment = record.into_attachment();
                    self.with_room(|room, ctx| room.on_close(ctx, conn, &closed));
                }
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            RoomEvent::Request { request, reply } => {
                let response = self.with_room(|room, ctx| room.on_request(ctx, request));
                let _ = reply.send(response);
            }
            RoomEvent::Stats { reply } => {
                let _ = reply.send(RoomStats { connections: self.conns.len(), wakeups: self.wakeups, awake: self.object.is_some() });
            }
        }
    }

    /// Runs `on_alarm` for every due alarm. An alarm is removed from storage
    /// after its handler returns (unless the handler set it again), so an
    /// alarm interrupted by a crash fires again after the restart.
    fn fire_due_alarms(&mut self) {
        let now = SystemTime::now();
        let due: Vec<(String, SystemTime)> = self.alarms.iter().filter(|(_, at)| **at <= now).map(|(n, at)| (n.clone(), *at)).collect();
        for (name, at) in due {
            self.with_room(|room, ctx| room.on_alarm(ctx, &name));
            if self.alarms.get(&name) == Some(&at) {
                self.alarms.remove(&name);
                if let Err(e) = self.store.delete_alarm(&self.room, &name) {
                    warn!(room = %self.room, alarm = %name, error = %e, "cannot delete a fired alarm");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
