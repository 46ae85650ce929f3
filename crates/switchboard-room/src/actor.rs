//! The actor that owns one room: its mailbox, its connections, its alarms,
//! and the room object that hibernation drops and rebuilds.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use switchboard_proto::Message;
use switchboard_store::{Store, StoreResult, Write};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::warn;

use crate::auto_response::AutoResponses;
use crate::batch::put_batch;
use crate::census;
use crate::conn::{ConnId, ConnRecord, ConnSink, Local, LocalSink, MAX_ATTACHMENT_LEN};
use crate::conn_table::ConnTable;
use crate::context::{Ctx, Held};
use crate::name::RoomName;
use crate::room::{Closed, ConnectRequest, Decision, Published, Room, RoomFactory, RoomRequest, RoomResponse};
use crate::storage::{CommitSlot, Deferred, RoomStorage, WriteBehind};

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

/// An input to a room. Private: the server reaches a room through
/// [`RoomHandle`]'s methods, which build these.
pub(crate) enum RoomEvent {
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
    /// A message published over HTTP.
    Publish {
        /// The message.
        message: Message,
        /// Where the room's answer goes.
        reply: oneshot::Sender<Published>,
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

/// The mailbox of a room actor, and the way to its state for a connection
/// that finds the room free (see [`RoomHandle::try_deliver`]).
#[derive(Clone)]
pub struct RoomHandle {
    tx: mpsc::Sender<Mail>,
    shared: Arc<Shared>,
}

/// What the actor's task shares with the connections that handle their
/// messages themselves while the room is free.
struct Shared {
    /// Locked by whoever runs a handler: the actor's task for each batch
    /// from its mailbox, a connection's task for its own read. Never held
    /// across an `.await`; connections only ever `try_lock` it.
    actor: Mutex<Actor>,
    /// Events sent to the mailbox and not yet handled (counted before they
    /// are sent, uncounted once handled). While any is, messages take the
    /// mailbox too, so nothing overtakes an event sent before it.
    queued: AtomicUsize,
    /// The room's auto-response, answered by connections' readers without
    /// the lock.
    auto: Arc<AutoResponses>,
    /// The room's name, for whoever holds a handle (logs).
    name: RoomName,
}

/// Counts an event as queued until it is sent (then the actor uncounts it)
/// or the send fails or is abandoned (then this does).
struct Counted<'a>(Option<&'a AtomicUsize>);

impl<'a> Counted<'a> {
    fn new(queued: &'a AtomicUsize) -> Counted<'a> {
        queued.fetch_add(1, Ordering::SeqCst);
        Counted(Some(queued))
    }

    fn sent(mut self) {
        self.0 = None;
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        if let Some(queued) = self.0 {
            queued.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// A [`RoomEvent`] in the mailbox: the per-message events as they are,
/// every other event boxed. The channel allocates its slots 32 at a time
/// and keeps them for the room's life, hibernated or not, so a slot is kept
/// to the size of a message event, far below the largest event's (the test
/// `mailbox_slots_stay_small` pins it). The boxed events happen about twice
/// per connection (a join and a leave).
enum Mail {
    Message {
        conn: ConnId,
        message: Message,
    },
    Messages {
        conn: ConnId,
        messages: Vec<Message>,
    },
    Other(Box<RoomEvent>),
    /// Nothing to handle: a connection that ran the room woke its object or
    /// changed its alarms, and the actor's task must plan its timers again.
    Replan,
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
            Mail::Replan => unreachable!("a replan is sent only by the room's own handle and never returned"),
        }
    }
}

/// The room actor has stopped (it had no connections, no alarms, no work):
/// its owner starts a new one for the next event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomGone;

impl std::fmt::Display for RoomGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the room's actor has stopped")
    }
}

impl std::error::Error for RoomGone {}

/// Why [`RoomHandle::try_deliver`] did not deliver messages.
#[derive(Debug)]
pub enum TryDeliverError {
    /// The mailbox is full: the messages come back, for
    /// [`RoomHandle::deliver`], which waits for room.
    Full(Vec<Message>),
    /// The room's actor has stopped.
    Gone,
}

/// Why an event did not reach the mailbox now; the event comes back by
/// value (as with tokio's `try_send`): boxing it would cost an allocation
/// on the path that is taken when the room is busy.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum TrySendError {
    Full(RoomEvent),
    Gone,
}

/// A connection's messages as one event: one message as itself, several as
/// a list.
fn messages_event(conn: ConnId, mut messages: Vec<Message>) -> RoomEvent {
    if messages.len() == 1 {
        let message = messages.pop().expect("one message");
        put_batch(messages);
        RoomEvent::Message { conn, message }
    } else {
        RoomEvent::Messages { conn, messages }
    }
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
            RoomEvent::Publish { .. } => "Publish",
            RoomEvent::Stats { .. } => "Stats",
        };
        f.write_str(name)
    }
}

impl RoomHandle {
    /// Delivers an event, waiting while the mailbox is full.
    pub(crate) async fn send(&self, event: RoomEvent) -> Result<(), RoomGone> {
        let counted = Counted::new(&self.shared.queued);
        self.tx.send(event.into()).await.map_err(|_| RoomGone)?;
        counted.sent();
        Ok(())
    }

    /// Delivers a join or a leave: handled on the caller's task, at the
    /// call, when the room is free and nothing waits in its mailbox (see
    /// [`Self::try_deliver`]), through the mailbox otherwise. The wait for a
    /// busy room's mailbox is boxed: every handshake moves the future of
    /// its join a few times, and the common case needs none of that state.
    fn send_or_handle(&self, event: RoomEvent) -> impl Future<Output = Result<(), RoomGone>> + Send + '_ {
        let queued = self.try_handle(event).map(|event| Box::pin(self.send(event)));
        async move {
            match queued {
                Some(queued) => queued.await,
                None => Ok(()),
            }
        }
    }

    /// Handles `event` on the caller's task as one batch, if the room is
    /// free and no event waits in its mailbox (so none is overtaken);
    /// gives it back otherwise. A connection's join and leave then cost no
    /// trip through the actor's task, as its messages do not.
    fn try_handle(&self, event: RoomEvent) -> Option<RoomEvent> {
        let Ok(mut actor) = self.shared.actor.try_lock() else { return Some(event) };
        // Read under the lock: the actor uncounts events under it too.
        if actor.stopped || self.shared.queued.load(Ordering::SeqCst) != 0 {
            return Some(event);
        }
        let plan = actor.plan();
        actor.handle(event);
        actor.end_batch();
        actor.last_active = Instant::now();
        let replan = actor.plan() != plan;
        drop(actor);
        if replan {
            self.replan();
        }
        None
    }

    /// Wakes the actor's task to plan its timers again (a batch handled
    /// elsewhere changed its alarms, its wake or whether it is awake).
    fn replan(&self) {
        // Full means the actor's task runs soon anyway and plans then.
        let counted = Counted::new(&self.shared.queued);
        if self.tx.try_send(Mail::Replan).is_ok() {
            counted.sent();
        }
    }

    /// A connection asks to join: the room's answer, given before the 101.
    /// The request goes to the room at the call (see `send_or_handle`), so
    /// the future holds only the wait for the answer, not the request.
    pub fn connect(&self, request: ConnectRequest) -> impl Future<Output = Result<Decision, RoomGone>> + Send + '_ {
        let (reply, decision) = oneshot::channel();
        let sent = self.send_or_handle(RoomEvent::Connect { request, reply });
        async move {
            sent.await?;
            decision.await.map_err(|_| RoomGone)
        }
    }

    /// An accepted connection is open: `sink` is its outbound side (boxed,
    /// not shared: the room's table holds one per connection; a sink that
    /// others must see too can be an `Arc`, which is a `ConnSink` as well),
    /// with the tags and attachment of the room's decision.
    pub async fn open(&self, conn: ConnId, sink: Box<dyn ConnSink>, tags: Vec<String>, attachment: Option<Vec<u8>>) -> Result<(), RoomGone> {
        self.send_or_handle(RoomEvent::Open { conn, sink, tags, attachment }).await
    }

    /// Delivers a connection's messages, in order, waiting while the
    /// mailbox is full (never handled on the caller's task).
    pub async fn deliver(&self, conn: ConnId, messages: Vec<Message>) -> Result<(), RoomGone> {
        if messages.is_empty() {
            return Ok(());
        }
        self.send(messages_event(conn, messages)).await
    }

    /// A connection failed (protocol error, dead peer); its close follows.
    pub async fn error(&self, conn: ConnId, error: String) -> Result<(), RoomGone> {
        self.send(RoomEvent::Error { conn, error }).await
    }

    /// A connection ended. With `wait`, waits (at most that long) until the
    /// room has handled it, i.e. until everything the room sent before it
    /// is queued on the connection (a clean close's reply waits for that).
    pub async fn close(&self, conn: ConnId, closed: Closed, wait: Option<Duration>) -> Result<(), RoomGone> {
        let Some(wait) = wait else { return self.send_or_handle(RoomEvent::Close { conn, closed, done: None }).await };
        let (done, handled) = oneshot::channel();
        self.send_or_handle(RoomEvent::Close { conn, closed, done: Some(done) }).await?;
        let _ = tokio::time::timeout(wait, handled).await;
        Ok(())
    }

    /// Tells the room that a connection ended, from code that cannot wait
    /// (a `Drop`): the event is sent by a task of the current runtime, if
    /// there is one.
    pub fn close_detached(&self, conn: ConnId, closed: Closed) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let room = self.clone();
            runtime.spawn(async move {
                let _ = room.send(RoomEvent::Close { conn, closed, done: None }).await;
            });
        }
    }

    /// HTTP to the room.
    pub async fn request(&self, request: RoomRequest) -> Result<RoomResponse, RoomGone> {
        let (reply, response) = oneshot::channel();
        self.send(RoomEvent::Request { request, reply }).await?;
        response.await.map_err(|_| RoomGone)
    }

    /// A message published over HTTP: the room's answer (by default, how
    /// many connections it was broadcast to).
    pub async fn publish(&self, message: Message) -> Result<Published, RoomGone> {
        let (reply, answer) = oneshot::channel();
        self.send(RoomEvent::Publish { message, reply }).await?;
        answer.await.map_err(|_| RoomGone)
    }

    /// Delivers an event if the mailbox has room now. The event comes back
    /// by value in the error, as with tokio's `try_send`.
    #[allow(clippy::result_large_err)]
    pub(crate) fn try_send(&self, event: RoomEvent) -> Result<(), TrySendError> {
        let counted = Counted::new(&self.shared.queued);
        self.tx.try_send(event.into()).map_err(|e| match e {
            mpsc::error::TrySendError::Full(mail) => TrySendError::Full(mail.into()),
            mpsc::error::TrySendError::Closed(_) => TrySendError::Gone,
        })?;
        counted.sent();
        Ok(())
    }

    /// Delivers a connection's messages without waiting: when the room is
    /// free, that is no handler is running and nothing sent to it is
    /// waiting, they are handled at once on the caller's task as one batch,
    /// frames and `on_batch_end` included; otherwise they go to the
    /// mailbox if it has room. Handlers still run one at a time and each
    /// sender's events in order; what is saved is the hop to the actor's
    /// task and back (a mailbox slot, two wake-ups and two task switches
    /// per read). What the room sends `conn` during that batch goes to
    /// `local` (straight into the caller's own connection), not through
    /// `conn`'s sink, which is for other tasks; `local` must keep it after
    /// whatever that sink queued before. A handler that panics here unwinds the caller's task, and
    /// the room's actor stops at its next event (the lock is poisoned), as
    /// when one panics on the actor's task.
    pub fn try_deliver(&self, conn: ConnId, messages: Vec<Message>, local: &mut dyn LocalSink) -> Result<(), TryDeliverError> {
        if messages.is_empty() {
            return Ok(());
        }
        let event = messages_event(conn, messages);
        let queue = |event| match self.try_send(event) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(RoomEvent::Message { message, .. })) => Err(TryDeliverError::Full(vec![message])),
            Err(TrySendError::Full(RoomEvent::Messages { messages, .. })) => Err(TryDeliverError::Full(messages)),
            Err(_) => Err(TryDeliverError::Gone),
        };
        let mut actor = match self.shared.actor.try_lock() {
            Ok(actor) => actor,
            Err(TryLockError::WouldBlock | TryLockError::Poisoned(_)) => return queue(event),
        };
        // Read under the lock: the actor uncounts events under it too.
        if actor.stopped || self.shared.queued.load(Ordering::SeqCst) != 0 {
            drop(actor);
            return queue(event);
        }
        let plan = actor.plan();
        let mut local = local.is_direct().then_some(Local { conn, sink: local });
        actor.handle_in(event, &mut local);
        actor.end_batch_in(&mut local);
        actor.last_active = Instant::now();
        let replan = actor.plan() != plan;
        drop(actor);
        if replan {
            self.replan();
        }
        Ok(())
    }

    /// The room's auto-response to `message` from `conn`, if the room set
    /// one and this is its request (see `Ctx::set_auto_response`): the
    /// connection's reader answers it itself, and the room, hibernated or
    /// not, is not involved. Records the answer for
    /// `Ctx::last_auto_response`. For a room without one this is a single
    /// atomic load.
    #[inline]
    pub fn auto_answer(&self, conn: ConnId, message: &Message) -> Option<Message> {
        self.shared.auto.answer(conn, message)
    }

    /// Whether [`RoomHandle::auto_answer`] would answer `message` (nothing
    /// is recorded).
    #[inline]
    pub fn is_auto_request(&self, message: &Message) -> bool {
        self.shared.auto.would_answer(message)
    }

    /// True when both handles reach the same actor.
    pub fn same_actor(&self, other: &RoomHandle) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// The room's kind and id.
    pub fn name(&self) -> &RoomName {
        &self.shared.name
    }

    /// True once the actor stopped; the owner should start a new one.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// True when the room has no storage write that is not yet committed
    /// and no reply waiting for one; false while it has, or while a handler
    /// runs. The server polls this at shutdown before flushing the store.
    pub fn is_settled(&self) -> bool {
        match self.shared.actor.try_lock() {
            Ok(actor) => actor.pending.is_idle(),
            Err(TryLockError::Poisoned(_)) => true,
            Err(TryLockError::WouldBlock) => false,
        }
    }

    /// When the room asked to be woken (`Ctx::wake_after`), if it did and
    /// no handler runs now.
    pub(crate) fn pending_wake(&self) -> Option<Instant> {
        self.shared.actor.try_lock().ok().and_then(|actor| actor.wake)
    }

    /// The actor's counters.
    pub async fn stats(&self) -> Option<RoomStats> {
        let (reply, rx) = oneshot::channel();
        self.send(RoomEvent::Stats { reply }).await.ok()?;
        rx.await.ok()
    }
}

/// Starts the actor of room `name`, stored under its namespace (`kind/id`).
/// Pending alarms of the room are loaded from the store.
pub fn spawn_room(name: RoomName, factory: Arc<dyn RoomFactory>, store: Arc<dyn Store>, config: RoomConfig) -> RoomHandle {
    spawn_room_notifying(name, factory, store, config, Box::new(|| {}))
}

/// Like [`spawn_room`]; `on_stop` runs on the actor's task once it has
/// stopped (or panicked), so an owner can forget the room at once
/// instead of finding a closed handle later.
pub fn spawn_room_notifying(
    name: RoomName,
    factory: Arc<dyn RoomFactory>,
    store: Arc<dyn Store>,
    config: RoomConfig,
    on_stop: Box<dyn FnOnce() + Send>,
) -> RoomHandle {
    let room = name.namespace();
    let name_for_handle = name.clone();
    let (tx, rx) = mpsc::channel(config.mailbox.max(1));
    let reports = Arc::new(CommitSlot::default());
    let alarms = match store.room_alarms(&room) {
        Ok(list) => list.into_iter().map(|(name, at)| (name, UNIX_EPOCH + Duration::from_millis(at))).collect(),
        Err(e) => {
            warn!(%room, error = %e, "cannot load alarms");
            BTreeMap::new()
        }
    };
    let auto = Arc::new(AutoResponses::default());
    let actor = Actor {
        room,
        name,
        factory,
        store,
        object: None,
        conns: ConnTable::default(),
        accepted: BTreeSet::new(),
        alarms,
        auto_response: auto.clone(),
        held: Held::default(),
        pending: WriteBehind::new(reports.clone()),
        wakeups: 0,
        wake: None,
        last_active: Instant::now(),
        stopped: false,
    };
    let shared = Arc::new(Shared { actor: Mutex::new(actor), queued: AtomicUsize::new(0), auto, name: name_for_handle });
    let running = run(shared.clone(), rx, reports, config);
    let census = census::Running::start();
    tokio::spawn(async move {
        let _stopped = OnDrop(Some(on_stop));
        running.await;
        drop(census);
    });
    RoomHandle { tx, shared }
}

/// Runs a callback when dropped: at the end of the actor's task, whether
/// it returned or unwound.
struct OnDrop(Option<Box<dyn FnOnce() + Send>>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

/// Events handled per wake-up of the actor: a busy room drains its mailbox
/// in batches instead of being woken once per event.
const EVENTS_PER_WAKE: usize = 64;

struct Actor {
    /// The storage namespace, `kind/id`; also how logs name the room.
    room: String,
    name: RoomName,
    factory: Arc<dyn RoomFactory>,
    store: Arc<dyn Store>,
    /// The room object; `None` while hibernating.
    object: Option<Box<dyn Room>>,
    conns: ConnTable,
    /// Connections accepted and not yet opened (or closed): the 101 is on
    /// its way, so the actor must not stop before their `Open` arrives.
    accepted: BTreeSet<ConnId>,
    alarms: BTreeMap<String, SystemTime>,
    auto_response: Arc<AutoResponses>,
    /// Frames held back until the end of the batch (see `Ctx::send`, `Ctx::broadcast`).
    held: Held,
    /// Storage writes not yet committed, and replies waiting for them.
    pending: WriteBehind,
    wakeups: u64,
    /// When the room asked to be woken (`Ctx::wake_after`).
    wake: Option<Instant>,
    /// When a batch was last handled, by the actor's task or a connection's.
    last_active: Instant,
    /// The actor's task has ended; its handle's owner starts a new one.
    stopped: bool,
}

/// What the actor's task waits for besides its mailbox: whether the room
/// object is awake (so may hibernate) and the next alarm.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Plan {
    awake: bool,
    next_alarm: Option<SystemTime>,
    wake: Option<Instant>,
}

/// The actor's task: handles its mailbox in batches, fires alarms and
/// hibernates the room once it has been idle for `hibernate_after`. It
/// stops when the room has no connections, alarms or object left, or when
/// a handler panicked (the lock is poisoned): the owner then starts a new
/// actor on demand.
async fn run(shared: Arc<Shared>, mut rx: mpsc::Receiver<Mail>, reports: Arc<CommitSlot>, config: RoomConfig) {
    let idle = tokio::time::sleep(config.hibernate_after);
    tokio::pin!(idle);
    // Grows to the largest batch a wake-up took, and is freed when the
    // room hibernates.
    let mut batch = Vec::new();
    let Ok(mut plan) = shared.actor.lock().map(|actor| actor.plan()) else { return };
    loop {
        let next_alarm = plan.next_alarm.map(|at| Instant::now() + at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO));
        let woke = tokio::select! {
            received = rx.recv_many(&mut batch, EVENTS_PER_WAKE) => Woke::Mail(received),
            () = reports.ready() => Woke::Committed,
            () = &mut idle, if plan.awake => Woke::Idle,
            () = tokio::time::sleep_until(next_alarm.unwrap_or_else(Instant::now)), if next_alarm.is_some() => Woke::Alarm,
            () = tokio::time::sleep_until(plan.wake.unwrap_or_else(Instant::now)), if plan.wake.is_some() => Woke::Wake,
        };
        let Ok(mut actor) = shared.actor.lock() else { return };
        match woke {
            Woke::Mail(0) => return,
            Woke::Mail(received) => {
                // A look at the room's counters is no activity: a monitor
                // asking for them must not keep an idle room awake.
                let mut active = false;
                for mail in batch.drain(..) {
                    match mail {
                        Mail::Replan => {}
                        Mail::Other(event) if matches!(*event, RoomEvent::Stats { .. }) => actor.handle(*event),
                        mail => {
                            active = true;
                            actor.handle(mail.into());
                        }
                    }
                }
                shared.queued.fetch_sub(received, Ordering::SeqCst);
                actor.end_batch();
                if active {
                    actor.last_active = Instant::now();
                }
            }
            Woke::Idle => {
                // Batches reset no timer; the deadline moves when it passes.
                let due = actor.last_active + config.hibernate_after;
                if let Some(wake) = actor.wake {
                    // A pending wake keeps the room awake past it.
                    idle.as_mut().reset(due.max(wake) + Duration::from_millis(1));
                } else if due > Instant::now() {
                    idle.as_mut().reset(due);
                } else {
                    // Hibernate: connections, tags and attachments stay here;
                    // what their sinks keep only for sending may go.
                    if actor.object.take().is_some() {
                        census::slept();
                        for (_, record) in actor.conns.iter() {
                            record.sink.hibernating();
                        }
                    }
                    batch = Vec::new();
                }
            }
            Woke::Alarm => {
                actor.fire_due_alarms();
                actor.end_batch();
                actor.last_active = Instant::now();
            }
            Woke::Wake => {
                if actor.wake.is_some_and(|wake| wake <= Instant::now()) {
                    actor.wake = None;
                    if actor.object.is_some() {
                        actor.with_room(|room, ctx| room.on_wake(ctx));
                    }
                    actor.end_batch();
                    actor.last_active = Instant::now();
                }
            }
            Woke::Committed => {
                if let Some((number, result)) = reports.take() {
                    actor.committed(number, result);
                    actor.end_batch();
                }
            }
        }
        if actor.object.is_none() && actor.conns.is_empty() && actor.accepted.is_empty() && actor.alarms.is_empty() && actor.pending.is_idle() && rx.is_empty()
        {
            // Nothing left to wait for: stop; the owner starts a new actor on demand.
            actor.stopped = true;
            return;
        }
        plan = actor.plan();
    }
}

impl Drop for Actor {
    fn drop(&mut self) {
        if self.object.is_some() {
            census::slept();
        }
    }
}

/// What woke the actor's task.
enum Woke {
    /// This many events from the mailbox (0: every handle is gone).
    Mail(usize),
    /// The hibernation deadline passed.
    Idle,
    /// An alarm is due.
    Alarm,
    /// The time the room asked to be woken at has come.
    Wake,
    /// The store reported a commit of this room's writes.
    Committed,
}

impl Actor {
    #[inline]
    fn plan(&self) -> Plan {
        Plan { awake: self.object.is_some(), next_alarm: self.alarms.values().min().copied(), wake: self.wake }
    }

    /// Runs `f` with the room object (building it if hibernated) and a context.
    fn with_room<R>(&mut self, f: impl FnOnce(&mut dyn Room, &mut Ctx<'_>) -> R) -> R {
        self.with_room_in(&mut None, f)
    }

    /// As `with_room`, with the batch's local connection, if any.
    fn with_room_in<R>(&mut self, local: &mut Option<Local<'_>>, f: impl FnOnce(&mut dyn Room, &mut Ctx<'_>) -> R) -> R {
        let Actor { room, name, factory, store, object, conns, alarms, auto_response, held, pending, wakeups, wake, .. } = self;
        let object = object.get_or_insert_with(|| {
            *wakeups += 1;
            census::woke();
            factory.create(name.id.as_str(), &RoomStorage { store: &**store, room, pending })
        });
        let local = local.as_mut().map(Local::reborrow);
        let mut ctx = Ctx { room, conns, store: &**store, alarms, auto_response, held, pending, wake, local };
        f(object.as_mut(), &mut ctx)
    }

    /// The held frames go out, then `on_batch_end` runs if the room
    /// object is awake (a batch of stats requests alone does not wake it),
    /// then what it broadcast goes out, then the batch's storage writes go
    /// to the store as one transaction. Flushing first keeps the batch's
    /// messages from waiting on whatever `on_batch_end` does.
    fn end_batch(&mut self) {
        self.end_batch_in(&mut None)
    }

    /// As `end_batch`, with the batch's local connection, if any.
    fn end_batch_in(&mut self, local: &mut Option<Local<'_>>) {
        self.held.flush(&self.conns, local);
        if self.object.is_some() {
            self.with_room_in(local, |room, ctx| room.on_batch_end(ctx));
            self.held.flush(&self.conns, local);
        }
        let submitted = self.pending.submit(&*self.store, &self.room);
        // A store that commits before `commit` returns has reported
        // already: what waited for the batch goes out with it (a newcomer's
        // durable welcome in the same write as its handshake's response)
        // rather than after a wake-up of this task. Through the sinks, as
        // on a wake-up, so that they follow what the batch gave `local`.
        // Once per batch: what a failure's `on_commit_failed` writes goes to
        // the store here, and its report waits for the wake-up, so that a
        // room writing on every report cannot loop.
        if let Some((number, result)) = submitted.then(|| self.pending.take_report()).flatten() {
            self.committed(number, result);
            self.held.flush(&self.conns, &mut None);
            self.pending.submit(&*self.store, &self.room);
        }
    }

    /// The store reported batch `number`: the replies that waited for it go
    /// out, or, if it failed, the room hears whom they were for.
    fn committed(&mut self, number: u64, result: StoreResult<()>) {
        let released = self.pending.committed(number, result);
        self.held.flush(&self.conns, &mut None);
        let mut unsent = Vec::new();
        for (conn, what) in released.messages {
            let message = match what {
                Deferred::Durable(message) if released.failed.is_some() => {
                    unsent.push((conn, message));
                    continue;
                }
                Deferred::Durable(message) | Deferred::Behind(message) => message,
            };
            if let Some(record) = self.conns.get(conn) {
                record.sink.send(&message);
            }
        }
        if let Some(error) = released.failed {
            warn!(room = %self.room, error = %error, "a batch of room writes failed to commit");
            self.with_room(|room, ctx| room.on_commit_failed(ctx, &error, &unsent));
        }
    }

    fn handle(&mut self, event: RoomEvent) {
        self.handle_in(event, &mut None)
    }

    /// As `handle`, with the batch's local connection, if any (messages
    /// handled on their connection's task).
    fn handle_in(&mut self, event: RoomEvent, local: &mut Option<Local<'_>>) {
        if !matches!(event, RoomEvent::Message { .. } | RoomEvent::Messages { .. }) {
            // A join or a leave changes who held frames are for; other
            // events may reach connections in ways that must come after them.
            self.held.flush(&self.conns, local);
        }
        match event {
            RoomEvent::Connect { request, reply } => {
                let mut decision = self.with_room(|room, ctx| room.on_connect(ctx, &request));
                if let Decision::Accept { attachment: Some(a), .. } = &decision {
                    if a.len() > MAX_ATTACHMENT_LEN {
                        decision = Decision::Reject { status: 500, reason: "room attachment too large".into() };
                    }
                }
                let accepted = matches!(decision, Decision::Accept { .. });
                // A decision nobody waits for any more opens nothing.
                if reply.send(decision).is_ok() && accepted {
                    self.accepted.insert(request.conn);
                }
            }
            RoomEvent::Open { conn, sink, tags, attachment } => {
                self.accepted.remove(&conn);
                self.conns.insert(conn, ConnRecord::new(sink, tags, attachment));
                self.with_room(|room, ctx| room.on_open(ctx, conn));
            }
            RoomEvent::Message { conn, message } => {
                if self.conns.contains(conn) {
                    self.with_room_in(local, |room, ctx| room.on_message(ctx, conn, message));
                }
            }
            RoomEvent::Messages { conn, mut messages } => {
                if self.conns.contains(conn) {
                    self.with_room_in(local, |room, ctx| {
                        for message in messages.drain(..) {
                            room.on_message(ctx, conn, message);
                        }
                    });
                }
                put_batch(messages);
            }
            RoomEvent::Error { conn, error } => {
                if self.conns.contains(conn) {
                    self.with_room(|room, ctx| room.on_error(ctx, conn, &error));
                }
            }
            RoomEvent::Close { conn, mut closed, done } => {
                // Also the end of an accepted connection that never opened.
                self.accepted.remove(&conn);
                if let Some(record) = self.conns.remove(conn) {
                    self.auto_response.forget(conn);
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
            RoomEvent::Publish { message, reply } => {
                let published = self.with_room(|room, ctx| room.on_publish(ctx, message));
                let _ = reply.send(published);
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
                self.pending.record(Write::DeleteAlarm(name));
            }
        }
    }
}

#[cfg(test)]
mod tests;
