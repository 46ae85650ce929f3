//! A test kit for room kinds: a room's real actor driven by recording
//! connections, with no sockets. Join, say, settle, then assert on what
//! each connection received and on the store.
//!
//! ```
//! # use std::sync::Arc;
//! # use switchboard_room::{testing::TestRoom, ConnId, Ctx, Message, Room, RoomFactory, RoomStorage};
//! struct Shout;
//! impl Room for Shout {
//!     fn on_message(&mut self, ctx: &mut Ctx<'_>, _conn: ConnId, message: Message) {
//!         let loud = message.as_text().unwrap_or_default().to_uppercase();
//!         ctx.broadcast(&Message::text(loud), None);
//!     }
//! }
//! # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! # runtime.block_on(async {
//! let factory: Arc<dyn RoomFactory> = Arc::new(|_: &str, _: &RoomStorage<'_>| Box::new(Shout) as Box<dyn Room>);
//! let room = TestRoom::new("shout", "r1", factory);
//! let (a, b) = (room.join().await, room.join().await);
//! a.say("hi").await;
//! room.settle().await;
//! assert_eq!(b.texts(), ["HI"]);
//! # });
//! ```
//!
//! The kit runs on the caller's tokio runtime (a `#[tokio::test]`). On a
//! single-threaded runtime the actor runs only while the test awaits, so
//! events queued with the `queue_*` methods and no await between them are
//! handled as one batch, as a burst from many sockets would be.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use switchboard_proto::{CloseCode, Message};
use switchboard_store::{Batch, Committed, Flushed, Intercepts, MemoryStore, Store, StoreError};

use crate::actor::{RoomEvent, RoomHandle, RoomStats};
use crate::conn::{ConnId, ConnSink, Run};
use crate::headers::Headers;
use crate::name::{RoomId, RoomKind, RoomName};
use crate::room::{Closed, ConnectRequest, Decision, RoomFactory, RoomRequest, RoomResponse};
use crate::SendOutcome;
use crate::{spawn_room, RoomConfig};

/// One room of a kind, on its real actor, with an in-memory store unless
/// another is given.
pub struct TestRoom {
    handle: RoomHandle,
    store: Arc<dyn Store>,
    next_conn: AtomicU64,
}

/// A connection to a [`TestRoom`] that records what the room sends it.
pub struct TestConn {
    id: ConnId,
    sink: Arc<RecordingSink>,
    room: RoomHandle,
}

/// A store for tests: an in-memory one whose commits wait behind a gate
/// until the test opens it (a slow disk), or fail (a full one); for every
/// room, or only for one.
#[derive(Default)]
pub struct GatedStore {
    inner: MemoryStore,
    only: Option<String>,
    state: Mutex<Gate>,
}

#[derive(Default)]
struct Gate {
    open: bool,
    fail: bool,
    waiting: Vec<(Batch, Committed)>,
    commits: usize,
}

impl GatedStore {
    /// Every room's commits wait until [`GatedStore::open`].
    pub fn closed() -> GatedStore {
        GatedStore::default()
    }

    /// Only the commits of the room with storage namespace `room`
    /// (`kind/id`) wait; other rooms' go through at once.
    pub fn closed_for(room: &str) -> GatedStore {
        GatedStore { only: Some(room.to_owned()), ..GatedStore::default() }
    }

    /// Every commit fails, as on a full disk.
    pub fn failing() -> GatedStore {
        let store = GatedStore::default();
        store.state.lock().expect("not poisoned").fail = true;
        store
    }

    /// Commits what waits, and from now on commits at once.
    pub fn open(&self) {
        let waiting = {
            let mut gate = self.state.lock().expect("not poisoned");
            gate.open = true;
            std::mem::take(&mut gate.waiting)
        };
        for (batch, done) in waiting {
            self.inner.commit(batch, done);
        }
    }

    /// How many batches were handed to this store.
    pub fn commits(&self) -> usize {
        self.state.lock().expect("not poisoned").commits
    }

    /// The store behind the gate: what is committed.
    pub fn committed(&self) -> &MemoryStore {
        &self.inner
    }
}

impl Intercepts for GatedStore {
    fn inner(&self) -> &dyn Store {
        &self.inner
    }

    fn intercept_commit(&self, batch: Batch, done: Committed) {
        let mut gate = self.state.lock().expect("not poisoned");
        gate.commits += 1;
        if gate.fail {
            drop(gate);
            return done(Err(StoreError("disk full".into())));
        }
        let gated = self.only.as_ref().is_none_or(|room| *room == batch.room);
        if gate.open || !gated {
            drop(gate);
            return self.inner.commit(batch, done);
        }
        gate.waiting.push((batch, done));
    }

    fn intercept_flush(&self, done: Flushed) {
        done()
    }
}

/// A [`ConnSink`] that records every message and the close it is given.
#[derive(Default, Debug)]
pub struct RecordingSink {
    messages: Mutex<Vec<Message>>,
    /// How many messages each push carried (a run is one push).
    pushes: Mutex<Vec<usize>>,
    closed: Mutex<Option<(CloseCode, String)>>,
    outcome: Mutex<Option<SendOutcome>>,
}

impl TestRoom {
    /// Room `id` of kind `kind` with an in-memory store; hibernation after a
    /// minute (so it does not happen mid-test unless a test asks for it).
    pub fn new(kind: &str, id: &str, factory: Arc<dyn RoomFactory>) -> TestRoom {
        let config = RoomConfig { hibernate_after: Duration::from_secs(60), ..RoomConfig::default() };
        TestRoom::with(kind, id, factory, Arc::new(MemoryStore::new()), config)
    }

    /// Room `id` of kind `kind` on `store` with `config`.
    pub fn with(kind: &str, id: &str, factory: Arc<dyn RoomFactory>, store: Arc<dyn Store>, config: RoomConfig) -> TestRoom {
        let kind = RoomKind::parse(kind).expect("a valid kind name");
        let id = RoomId::parse(id).expect("a valid room id");
        let handle = spawn_room(RoomName::new(kind, id), factory, store.clone(), config);
        TestRoom { handle, store, next_conn: AtomicU64::new(1) }
    }

    /// The room's store.
    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// The room's handle, for what the kit does not cover.
    pub fn handle(&self) -> &RoomHandle {
        &self.handle
    }

    /// A connect request for the next connection id, from 127.0.0.1, with
    /// no query, headers or location; change its fields before
    /// [`TestRoom::try_join`].
    pub fn request(&self) -> ConnectRequest {
        let conn = ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed));
        ConnectRequest { conn, query: String::new(), headers: Headers::new(), ip: IpAddr::V4(Ipv4Addr::LOCALHOST), geo: None, identity: None }
    }

    /// Joins with a default request; panics if the room refuses.
    pub async fn join(&self) -> TestConn {
        match self.try_join(self.request()).await {
            Ok(conn) => conn,
            Err(decision) => panic!("the room refused the connection: {decision:?}"),
        }
    }

    /// Asks to join with `request` and, if the room accepts, opens the
    /// connection; otherwise returns the room's rejection.
    pub async fn try_join(&self, request: ConnectRequest) -> Result<TestConn, Decision> {
        let id = request.conn;
        match self.handle.connect(request).await.expect("the room is running") {
            Decision::Accept { tags, attachment } => {
                let sink = Arc::new(RecordingSink::default());
                self.handle.open(id, Box::new(sink.clone()), tags, attachment).await.expect("the room is running");
                Ok(TestConn { id, sink, room: self.handle.clone() })
            }
            reject => Err(reject),
        }
    }

    /// Opens a connection without asking the room first (as if accepted
    /// with no tags or attachment) and without waiting: with other
    /// `queue_*` calls and no await between them, one batch of events.
    pub fn queue_open(&self) -> TestConn {
        let id = ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed));
        let sink = Arc::new(RecordingSink::default());
        let event = RoomEvent::Open { conn: id, sink: Box::new(sink.clone()), tags: Vec::new(), attachment: None };
        self.handle.try_send(event).expect("the mailbox has room");
        TestConn { id, sink, room: self.handle.clone() }
    }

    /// Waits until the room has handled every event sent to it so far (and
    /// the commits those events' writes led to, when the store reports at
    /// once, as the in-memory one does, and the wake it asked for, if any);
    /// its counters.
    pub async fn settle(&self) -> RoomStats {
        let mut stats = self.handle.stats().await.expect("the room is running");
        for _ in 0..1000 {
            if let Some(wake) = self.handle.pending_wake() {
                tokio::time::sleep_until(wake).await;
            } else if self.handle.is_settled() {
                break;
            }
            tokio::task::yield_now().await;
            stats = self.handle.stats().await.expect("the room is running");
        }
        stats
    }

    /// Waits (at most 50 polls, `poll` apart) until the room has
    /// hibernated; false if it never did. Asking for the room's counters is
    /// an event too, so `poll` must be longer than its `hibernate_after`.
    pub async fn wait_until_hibernated(&self, poll: Duration) -> bool {
        for _ in 0..50 {
            tokio::time::sleep(poll).await;
            if !self.settle().await.awake {
                return true;
            }
        }
        false
    }

    /// HTTP to the room.
    pub async fn http(&self, method: &str, path: &str, body: &str) -> RoomResponse {
        let request = RoomRequest { method: method.to_owned(), path: path.to_owned(), body: Bytes::copy_from_slice(body.as_bytes()) };
        self.handle.request(request).await.expect("the room is running")
    }
}

impl TestConn {
    /// The connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Sends a text message to the room, waiting for mailbox space.
    pub async fn say(&self, text: &str) {
        self.send(Message::text(text.to_owned())).await;
    }

    /// Sends a message to the room, waiting for mailbox space.
    pub async fn send(&self, message: Message) {
        self.room.deliver(self.id, vec![message]).await.expect("the room is running");
    }

    /// Sends a text message without waiting (see [`TestRoom::queue_open`]).
    pub fn queue_say(&self, text: &str) {
        let event = RoomEvent::Message { conn: self.id, message: Message::text(text.to_owned()) };
        self.room.try_send(event).expect("the mailbox has room");
    }

    /// The connection ends (the peer closed with `code`); waits until the
    /// room has handled it.
    pub async fn leave(&self, code: CloseCode) {
        let closed = Closed { code: Some(code), reason: String::new(), clean: true, attachment: None };
        self.room.close(self.id, closed, Some(Duration::from_secs(10))).await.expect("the room is running");
    }

    /// Every message received so far, as text (lossy for binary ones).
    pub fn texts(&self) -> Vec<String> {
        self.sink.texts()
    }

    /// The messages received since the last call, as text.
    pub fn take_texts(&self) -> Vec<String> {
        let taken = std::mem::take(&mut *self.sink.messages.lock().expect("not poisoned"));
        taken.iter().map(|m| String::from_utf8_lossy(m.payload()).into_owned()).collect()
    }

    /// The close the room started, if it did.
    pub fn closed(&self) -> Option<(CloseCode, String)> {
        self.sink.closed.lock().expect("not poisoned").clone()
    }

    /// Makes later sends to this connection report `outcome` (a slow
    /// reader: `Backpressure`; one being cut off: `Dropped`).
    pub fn set_outcome(&self, outcome: SendOutcome) {
        *self.sink.outcome.lock().expect("not poisoned") = Some(outcome);
    }
}

impl RecordingSink {
    /// Every message received so far, as text (lossy for binary ones).
    pub fn texts(&self) -> Vec<String> {
        self.messages.lock().expect("not poisoned").iter().map(|m| String::from_utf8_lossy(m.payload()).into_owned()).collect()
    }

    /// Every message received so far.
    pub fn messages(&self) -> Vec<Message> {
        self.messages.lock().expect("not poisoned").clone()
    }

    /// How many messages each push carried, in order (a run is one push).
    pub fn pushes(&self) -> Vec<usize> {
        self.pushes.lock().expect("not poisoned").clone()
    }

    fn record(&self, messages: &[Message]) -> SendOutcome {
        let outcome = self.outcome.lock().expect("not poisoned").unwrap_or(SendOutcome::Queued);
        if outcome != SendOutcome::Dropped {
            self.messages.lock().expect("not poisoned").extend_from_slice(messages);
            self.pushes.lock().expect("not poisoned").push(messages.len());
        }
        outcome
    }
}

impl ConnSink for RecordingSink {
    fn send(&self, message: &Message) -> SendOutcome {
        self.record(std::slice::from_ref(message))
    }

    fn send_all(&self, messages: &[Message]) -> SendOutcome {
        self.record(messages)
    }

    fn send_run(&self, run: &Run) -> SendOutcome {
        self.record(run.messages())
    }

    fn close(&self, code: CloseCode, reason: &str) {
        *self.closed.lock().expect("not poisoned") = Some((code, reason.to_owned()));
    }
}
