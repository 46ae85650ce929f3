//! The actor driven with a recording fake sink and the in-memory store.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;

use switchboard_store::MemoryStore;

use crate::testing::GatedStore;
use crate::{CloseCode, Headers, LocalSink, Run, SendOutcome};

use super::*;

/// What a fake sink was handed: one message, or a run (and which run, by
/// address, to see that recipients of one flush share it).
#[derive(Debug)]
enum Got {
    One(Message),
    Run(usize, Vec<Message>),
}

#[derive(Default, Debug)]
struct FakeSink {
    got: Mutex<Vec<Got>>,
    closed: Mutex<Option<(CloseCode, String)>>,
    /// What sends report (`Queued` if unset).
    outcome: Mutex<Option<SendOutcome>>,
}

impl ConnSink for FakeSink {
    fn send(&self, message: &Message) -> SendOutcome {
        self.got.lock().unwrap().push(Got::One(message.clone()));
        self.outcome.lock().unwrap().unwrap_or(SendOutcome::Queued)
    }
    fn send_all(&self, messages: &[Message]) -> SendOutcome {
        self.got.lock().unwrap().push(Got::Run(0, messages.to_vec()));
        self.outcome.lock().unwrap().unwrap_or(SendOutcome::Queued)
    }
    fn send_run(&self, run: &Run) -> SendOutcome {
        self.got.lock().unwrap().push(Got::Run(run as *const Run as usize, run.messages().to_vec()));
        self.outcome.lock().unwrap().unwrap_or(SendOutcome::Queued)
    }
    fn close(&self, code: CloseCode, reason: &str) {
        *self.closed.lock().unwrap() = Some((code, reason.to_owned()));
    }
}

impl FakeSink {
    /// Texts of the messages received.
    fn texts(&self) -> Vec<String> {
        let got = self.got.lock().unwrap();
        let messages = got.iter().flat_map(|g| match g {
            Got::One(m) => std::slice::from_ref(m),
            Got::Run(_, ms) => ms.as_slice(),
        });
        messages.map(|m| m.as_text().unwrap().to_owned()).collect()
    }

    /// How many messages each push carried.
    fn pushes(&self) -> Vec<usize> {
        self.got.lock().unwrap().iter().map(|g| if let Got::Run(_, ms) = g { ms.len() } else { 1 }).collect()
    }

    /// The address of the run of push `i`, and its first payload's.
    fn run(&self, i: usize) -> (usize, *const u8) {
        match &self.got.lock().unwrap()[i] {
            Got::Run(at, ms) => (*at, ms[0].payload().as_ptr()),
            Got::One(_) => panic!("push {i} was a single message"),
        }
    }
}

/// A small room: counts messages in memory, relays, answers commands.
struct Counter {
    count: u64,
}

impl Room for Counter {
    fn on_connect(&mut self, _ctx: &mut Ctx<'_>, request: &ConnectRequest) -> Decision {
        match request.query.as_str() {
            "banned" => Decision::Reject { status: 403, reason: "banned".into() },
            "huge" => Decision::Accept { tags: vec![], attachment: Some(vec![0; MAX_ATTACHMENT_LEN + 1]) },
            query => Decision::Accept { tags: vec![query.to_owned()], attachment: Some(format!("user-{}", request.conn.0).into_bytes()) },
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, conn: ConnId, message: Message) {
        self.count += 1;
        let text = message.as_text().unwrap_or_default().to_owned();
        match text.as_str() {
            "count" => {
                ctx.send(conn, Message::text(format!("count={}", self.count)));
            }
            "whoami" => {
                let me = String::from_utf8(ctx.attachment(conn).unwrap_or_default().to_vec()).unwrap();
                ctx.send(conn, Message::text(me));
            }
            "alarm" => ctx.set_alarm("ring", SystemTime::now() + Duration::from_millis(50)),
            "wake" => ctx.wake_after(Duration::from_millis(30)),
            "auto" => ctx.set_auto_response(Some(("ping", "pong"))),
            t if t.starts_with("tag:") => {
                let members: Vec<String> = ctx.connections(Some(&t[4..])).map(|c| c.to_string()).collect();
                ctx.send(conn, Message::text(members.join(",")));
            }
            _ => {
                ctx.broadcast(&message, Some(conn));
            }
        }
    }

    fn on_alarm(&mut self, ctx: &mut Ctx<'_>, name: &str) {
        ctx.storage().put("fired", name.as_bytes());
        ctx.broadcast(Message::text(format!("alarm:{name}")), None);
    }

    fn on_wake(&mut self, ctx: &mut Ctx<'_>) {
        ctx.broadcast(Message::text("woke"), None);
    }
}

fn factory() -> Arc<dyn RoomFactory> {
    Arc::new(|_id: &str, _storage: &RoomStorage<'_>| Box::new(Counter { count: 0 }) as Box<dyn Room>)
}

/// Room `id` of kind `t`.
fn name(id: &str) -> RoomName {
    RoomName::new(crate::RoomKind::parse("t").unwrap(), crate::RoomId::parse(id).unwrap())
}

fn config() -> RoomConfig {
    RoomConfig { hibernate_after: Duration::from_millis(100), mailbox: 16 }
}

async fn join(room: &RoomHandle, id: u64, query: &str) -> Result<Arc<FakeSink>, Decision> {
    let (reply, rx) = oneshot::channel();
    let request =
        ConnectRequest { conn: ConnId(id), query: query.into(), headers: Headers::new(), ip: IpAddr::V4(Ipv4Addr::LOCALHOST), geo: None, identity: None };
    room.send(RoomEvent::Connect { request, reply }).await.unwrap();
    match rx.await.unwrap() {
        Decision::Accept { tags, attachment } => {
            let sink = Arc::new(FakeSink::default());
            room.send(RoomEvent::Open { conn: ConnId(id), sink: Box::new(sink.clone()), tags, attachment }).await.unwrap();
            Ok(sink)
        }
        reject => Err(reject),
    }
}

/// A text message from connection `conn`.
fn message(conn: u64, text: &str) -> RoomEvent {
    RoomEvent::Message { conn: ConnId(conn), message: Message::text(text) }
}

async fn say(room: &RoomHandle, id: u64, text: &str) {
    room.send(message(id, text)).await.unwrap();
}

/// Waits (bounded) until the room has processed everything sent so far.
async fn settle(room: &RoomHandle) -> RoomStats {
    room.stats().await.expect("room alive")
}

#[tokio::test]
async fn a_broadcast_skips_the_sender_and_goes_out_as_one_shared_run() {
    let room = spawn_room(name("a"), factory(), Arc::new(MemoryStore::new()), config());
    let a = join(&room, 1, "x").await.unwrap();
    let b = join(&room, 2, "x").await.unwrap();
    let c = join(&room, 3, "y").await.unwrap();
    say(&room, 1, "hello").await;
    settle(&room).await;
    assert!(a.texts().is_empty());
    assert_eq!(b.texts(), ["hello"]);
    assert_eq!(c.texts(), ["hello"]);
    assert_eq!(b.run(0), c.run(0), "one run handed to both (so encoded once), the payload shared");
}

#[tokio::test]
async fn events_are_handled_in_arrival_order() {
    let room = spawn_room(name("o"), factory(), Arc::new(MemoryStore::new()), config());
    let _a = join(&room, 1, "").await.unwrap();
    let b = join(&room, 2, "").await.unwrap();
    for i in 0..200 {
        say(&room, 1, &format!("m{i}")).await;
    }
    settle(&room).await;
    let expected: Vec<String> = (0..200).map(|i| format!("m{i}")).collect();
    assert_eq!(b.texts(), expected);
}

#[tokio::test]
async fn tags_select_connections() {
    let room = spawn_room(name("t"), factory(), Arc::new(MemoryStore::new()), config());
    let a = join(&room, 1, "red").await.unwrap();
    let _b = join(&room, 2, "blue").await.unwrap();
    let _c = join(&room, 3, "red").await.unwrap();
    say(&room, 1, "tag:red").await;
    settle(&room).await;
    assert_eq!(a.texts(), ["c1,c3"]);
}

#[tokio::test]
async fn rejections_and_oversized_attachments_refuse_the_connection() {
    let room = spawn_room(name("r"), factory(), Arc::new(MemoryStore::new()), config());
    assert_eq!(join(&room, 1, "banned").await.unwrap_err(), Decision::Reject { status: 403, reason: "banned".into() });
    assert!(matches!(join(&room, 2, "huge").await.unwrap_err(), Decision::Reject { status: 500, .. }));
}

#[tokio::test]
async fn a_hibernated_room_wakes_with_its_connections_and_attachments() {
    let room = spawn_room(name("h"), factory(), Arc::new(MemoryStore::new()), config());
    let a = join(&room, 7, "").await.unwrap();
    say(&room, 7, "x").await;
    say(&room, 7, "count").await;
    assert_eq!(settle(&room).await, RoomStats { connections: 1, wakeups: 1, awake: true });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(settle(&room).await, RoomStats { connections: 1, wakeups: 1, awake: false }, "hibernated, stats did not wake it");
    say(&room, 7, "whoami").await;
    say(&room, 7, "count").await;
    assert_eq!(settle(&room).await, RoomStats { connections: 1, wakeups: 2, awake: true });
    // In-memory state was dropped (the count restarted); the attachment was kept.
    assert_eq!(a.texts(), ["count=2", "user-7", "count=2"]);
}

#[tokio::test]
async fn alarms_fire_once_and_are_removed_from_storage() {
    let store = Arc::new(MemoryStore::new());
    let room = spawn_room(name("al"), factory(), store.clone(), config());
    let a = join(&room, 1, "").await.unwrap();
    say(&room, 1, "alarm").await;
    settle(&room).await;
    assert_eq!(store.room_alarms("t/al").unwrap().len(), 1, "persisted when set");
    for _ in 0..100 {
        if !a.texts().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(a.texts(), ["alarm:ring"]);
    assert!(store.room_alarms("t/al").unwrap().is_empty());
}

#[tokio::test]
async fn a_stored_alarm_fires_when_the_room_starts_after_a_restart() {
    let store = Arc::new(MemoryStore::new());
    switchboard_store::commit_blocking(&*store, switchboard_store::Batch { room: "t/rs".into(), writes: vec![Write::SetAlarm("cleanup".into(), 1)] }).unwrap();
    let room = spawn_room(name("rs"), factory(), store.clone(), config());
    for _ in 0..100 {
        if store.get("t/rs", "fired").unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(store.get("t/rs", "fired").unwrap().as_deref(), Some(&b"cleanup"[..]));
    assert!(store.room_alarms("t/rs").unwrap().is_empty());
    // With nothing left (no connections, no alarms, asleep) the actor stops.
    for _ in 0..100 {
        if room.is_closed() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(room.is_closed());
}

#[tokio::test]
async fn auto_responses_are_answered_for_every_connection_without_the_room() {
    let room = spawn_room(name("ar"), factory(), Arc::new(MemoryStore::new()), config());
    let a = join(&room, 1, "").await.unwrap();
    let ping = Message::text("ping");
    assert_eq!(room.auto_answer(ConnId(1), &ping), None, "none set yet");
    say(&room, 1, "auto").await;
    settle(&room).await;
    let b = join(&room, 2, "").await.unwrap();
    settle(&room).await;
    for conn in [ConnId(1), ConnId(2)] {
        assert!(room.is_auto_request(&ping));
        assert_eq!(room.auto_answer(conn, &ping), Some(Message::text("pong")));
    }
    assert_eq!(room.auto_answer(ConnId(1), &Message::text("pong")), None, "only the request");
    assert!(a.texts().is_empty() && b.texts().is_empty(), "the answer is the reader's to send, not the room's");
    say(&room, 1, "count").await;
    settle(&room).await;
    assert_eq!(a.texts(), ["count=2"], "the room's handler saw only `auto` and `count`");
    assert!(room.shared.auto.last_answered(ConnId(2)).is_some(), "the answer is recorded per connection");
    room.send(RoomEvent::Close {
        conn: ConnId(2),
        closed: Closed { code: Some(CloseCode::NORMAL), reason: String::new(), clean: true, attachment: None },
        done: None,
    })
    .await
    .unwrap();
    settle(&room).await;
    assert_eq!(room.shared.auto.last_answered(ConnId(2)), None, "forgotten when the connection leaves");
}

#[tokio::test]
async fn a_closed_connection_leaves_the_room() {
    let room = spawn_room(name("c"), factory(), Arc::new(MemoryStore::new()), config());
    let _a = join(&room, 1, "").await.unwrap();
    let b = join(&room, 2, "").await.unwrap();
    room.send(RoomEvent::Close {
        conn: ConnId(1),
        closed: Closed { code: Some(CloseCode::NORMAL), reason: String::new(), clean: true, attachment: None },
        done: None,
    })
    .await
    .unwrap();
    say(&room, 1, "ghost").await;
    assert_eq!(settle(&room).await.connections, 1);
    assert!(b.texts().is_empty(), "messages from a closed connection are ignored");
}

#[tokio::test]
async fn small_broadcasts_of_one_batch_reach_each_member_as_one_run_in_order() {
    let room = spawn_room(name("r"), factory(), Arc::new(MemoryStore::new()), config());
    let a = join(&room, 1, "").await.unwrap();
    let b = join(&room, 2, "").await.unwrap();
    let c = join(&room, 3, "").await.unwrap();
    // Queued without awaiting, so the actor takes them as one batch: a send
    // and a join in the middle each end a run.
    let late = Arc::new(FakeSink::default());
    for event in [message(1, "m1"), message(1, "m2"), message(2, "count"), message(1, "m3")] {
        room.try_send(event).unwrap();
    }
    room.try_send(RoomEvent::Open { conn: ConnId(4), sink: Box::new(late.clone()), tags: vec![], attachment: None }).unwrap();
    room.try_send(message(1, "m4")).unwrap();
    room.try_send(message(1, "m5")).unwrap();
    settle(&room).await;
    assert!(a.texts().is_empty(), "the sender is skipped");
    assert_eq!(b.texts(), ["m1", "m2", "count=3", "m3", "m4", "m5"]);
    assert_eq!(c.texts(), ["m1", "m2", "m3", "m4", "m5"]);
    assert_eq!(late.texts(), ["m4", "m5"], "nothing from before the join");
    assert_eq!(c.pushes(), [2, 1, 2], "runs end at the send and at the join");
    assert_eq!(b.run(0), c.run(0), "one run, shared by every member");
}

/// Answers each message to its sender (or, for "all", to everyone) and
/// records what each send reported.
struct Replier {
    outcomes: Arc<Mutex<Vec<SendOutcome>>>,
}

impl Room for Replier {
    fn on_message(&mut self, ctx: &mut Ctx<'_>, conn: ConnId, message: Message) {
        if message.as_text() == Some("all") {
            ctx.broadcast(&message, None);
        } else {
            let outcome = ctx.send(conn, &message);
            self.outcomes.lock().unwrap().push(outcome);
        }
    }
}

#[tokio::test]
async fn small_sends_to_one_connection_after_the_first_join_one_run_and_report_its_outcome() {
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let recorded = outcomes.clone();
    let factory: Arc<dyn RoomFactory> =
        Arc::new(move |_id: &str, _storage: &RoomStorage<'_>| Box::new(Replier { outcomes: recorded.clone() }) as Box<dyn Room>);
    let room = spawn_room(name("s"), factory, Arc::new(MemoryStore::new()), config());
    let (a, b) = (Arc::new(FakeSink::default()), Arc::new(FakeSink::default()));
    *a.outcome.lock().unwrap() = Some(SendOutcome::Backpressure);
    for (id, sink) in [(1, &a), (2, &b)] {
        room.send(RoomEvent::Open { conn: ConnId(id), sink: Box::new(sink.clone()), tags: vec![], attachment: None }).await.unwrap();
    }
    // One batch: a send to another connection and a broadcast each end a run.
    for event in [
        message(1, "1"),
        message(1, "2"),
        message(1, "3"),
        message(2, "x"),
        message(1, "4"),
        message(1, "all"),
        message(1, "5"),
        message(1, "6"),
        message(1, "7"),
    ] {
        room.try_send(event).unwrap();
    }
    settle(&room).await;
    assert_eq!(a.texts(), ["1", "2", "3", "4", "all", "5", "6", "7"]);
    assert_eq!(b.texts(), ["x", "all"]);
    assert_eq!(a.pushes(), [1, 2, 1, 1, 1, 2], "the first send of each stretch goes at once, the rest as one run");
    use SendOutcome::{Backpressure, Queued};
    assert_eq!(
        *outcomes.lock().unwrap(),
        [Backpressure, Backpressure, Backpressure, Queued, Backpressure, Backpressure, Backpressure, Backpressure],
        "held sends report what the first one's push did"
    );
}

/// Counts joins and, at the end of each batch, tells everyone how many it saw.
struct Batches {
    opened: u64,
}

impl Room for Batches {
    fn on_open(&mut self, _ctx: &mut Ctx<'_>, _conn: ConnId) {
        self.opened += 1;
    }

    fn on_message(&mut self, _ctx: &mut Ctx<'_>, _conn: ConnId, _message: Message) {}

    fn on_batch_end(&mut self, ctx: &mut Ctx<'_>) {
        ctx.broadcast(Message::text(format!("batch:{}", self.opened)), None);
    }
}

#[tokio::test]
async fn events_waiting_together_end_in_one_batch_and_a_hibernated_room_has_none() {
    let factory: Arc<dyn RoomFactory> = Arc::new(|_id: &str, _storage: &RoomStorage<'_>| Box::new(Batches { opened: 0 }) as Box<dyn Room>);
    let room = spawn_room(name("b"), factory, Arc::new(MemoryStore::new()), config());
    // On this single-threaded runtime the actor runs only once the test
    // awaits something that is not ready, so these ten joins wait together.
    let sinks: Vec<Arc<FakeSink>> = (1..=10).map(|_| Arc::new(FakeSink::default())).collect();
    for (i, sink) in sinks.iter().enumerate() {
        room.try_send(RoomEvent::Open { conn: ConnId(i as u64 + 1), sink: Box::new(sink.clone()), tags: vec![], attachment: None })
            .unwrap();
    }
    settle(&room).await;
    for sink in &sinks {
        assert_eq!(sink.texts(), ["batch:10"], "one batch end for ten joins");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = settle(&room).await;
    assert!(!before.awake, "hibernated");
    settle(&room).await;
    assert_eq!(sinks[0].texts().len(), 1, "no batch end without the room object");
    assert_eq!(settle(&room).await.wakeups, before.wakeups);
    room.try_send(RoomEvent::Open { conn: ConnId(11), sink: Box::new(Arc::new(FakeSink::default())), tags: vec![], attachment: None })
        .unwrap();
    settle(&room).await;
    assert_eq!(sinks[0].texts().last().map(String::as_str), Some("batch:1"), "a woken room's batch ends too (its count restarted with the object)");
}

#[tokio::test]
async fn a_free_room_handles_delivered_messages_on_the_callers_task() {
    let room = spawn_room(name("d"), factory(), Arc::new(MemoryStore::new()), config());
    let a = join(&room, 1, "").await.unwrap();
    let b = join(&room, 2, "").await.unwrap();
    settle(&room).await;
    // No await in between: on this single-threaded runtime the actor's task
    // cannot have run, so the replies were made by `try_deliver` itself.
    let mut straight = Straight::default();
    room.try_deliver(ConnId(1), vec![Message::text("hello")], &mut straight).unwrap();
    room.try_deliver(ConnId(1), vec![Message::text("count"), Message::text("again")], &mut straight).unwrap();
    assert_eq!(b.texts(), ["hello", "again"], "other connections through their sinks");
    assert!(a.texts().is_empty(), "nothing through the delivering connection's own sink");
    assert_eq!(straight.0, [Message::text("count=2")], "its reply went straight to it");
}

/// A wake asked for on a connection's own task reaches the actor's timers,
/// comes once however often it was asked for, and no storage write is
/// made for it; the room stays awake for it.
#[tokio::test(start_paused = true)]
async fn a_wake_asked_for_on_a_connections_task_comes_once_and_is_not_stored() {
    let store = Arc::new(MemoryStore::new());
    let room = spawn_room(name("w"), factory(), store.clone(), RoomConfig { hibernate_after: Duration::from_millis(10), ..config() });
    let a = join(&room, 1, "").await.unwrap();
    settle(&room).await;
    let mut straight = Straight::default();
    room.try_deliver(ConnId(1), vec![Message::text("wake"), Message::text("wake")], &mut straight).unwrap();
    assert!(a.texts().is_empty());
    tokio::time::sleep(Duration::from_millis(29)).await;
    assert!(a.texts().is_empty(), "not before its time");
    tokio::time::sleep(Duration::from_millis(5)).await;
    settle(&room).await;
    assert_eq!(a.texts(), ["woke"]);
    assert!(store.room_alarms("t/w").unwrap().is_empty(), "nothing stored");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(a.texts(), ["woke"], "once");
}

/// A local sink that records what reached it.
#[derive(Default)]
struct Straight(Vec<Message>);

impl LocalSink for Straight {
    fn send(&mut self, message: &Message) -> SendOutcome {
        self.0.push(message.clone());
        SendOutcome::Queued
    }
    fn send_all(&mut self, messages: &[Message]) -> SendOutcome {
        self.0.extend_from_slice(messages);
        SendOutcome::Queued
    }
    fn send_run(&mut self, run: &Run) -> SendOutcome {
        self.0.extend_from_slice(run.messages());
        SendOutcome::Queued
    }
}

#[tokio::test]
async fn delivered_messages_wait_behind_events_still_in_the_mailbox() {
    let room = spawn_room(name("q"), factory(), Arc::new(MemoryStore::new()), config());
    let b = join(&room, 2, "").await.unwrap();
    settle(&room).await;
    // The join is queued, not handled yet: handling the message at once
    // would find no connection 1 and drop it.
    let a = Arc::new(FakeSink::default());
    room.try_send(RoomEvent::Open { conn: ConnId(1), sink: Box::new(a.clone()), tags: vec![], attachment: None }).unwrap();
    room.try_deliver(ConnId(1), vec![Message::text("count")], &mut &*a).unwrap();
    room.try_deliver(ConnId(1), vec![Message::text("after")], &mut &*a).unwrap();
    assert!(a.texts().is_empty() && b.texts().is_empty(), "nothing handled before the actor ran");
    settle(&room).await;
    assert_eq!(a.texts(), ["count=1"]);
    assert_eq!(b.texts(), ["after"]);
    // Once the mailbox is empty again, delivery is immediate.
    room.try_deliver(ConnId(1), vec![Message::text("count")], &mut &*a).unwrap();
    assert_eq!(a.texts(), ["count=1", "count=3"]);
}

#[tokio::test]
async fn a_join_behind_events_in_the_mailbox_waits_its_turn_there_and_is_answered() {
    let room = spawn_room(name("busy-join"), factory(), Arc::new(MemoryStore::new()), config());
    let a = join(&room, 1, "").await.unwrap();
    settle(&room).await;
    // A message waits in the mailbox: the join cannot be handled on this
    // task without overtaking it, so `connect` queues it (the boxed wait).
    room.try_send(messages_event(ConnId(1), vec![Message::text("count")])).unwrap();
    let request =
        ConnectRequest { conn: ConnId(2), query: String::new(), headers: Headers::new(), ip: IpAddr::V4(Ipv4Addr::LOCALHOST), geo: None, identity: None };
    let decision = tokio::time::timeout(Duration::from_secs(5), room.connect(request)).await.expect("answered in time");
    assert!(matches!(decision, Ok(Decision::Accept { .. })));
    assert_eq!(a.texts(), ["count=1"], "the message queued first was handled first");
}

#[tokio::test]
async fn a_room_run_by_a_connection_still_hibernates_and_fires_its_alarms() {
    let room = spawn_room(name("p"), factory(), Arc::new(MemoryStore::new()), config());
    let a = join(&room, 1, "").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(settle(&room).await, RoomStats { connections: 1, wakeups: 1, awake: false });
    // Woken by a delivered message, not by its mailbox: the actor's task
    // must learn of it to hibernate the room again, and of the alarm the
    // message sets to fire it.
    room.try_deliver(ConnId(1), vec![Message::text("alarm")], &mut &*a).unwrap();
    for _ in 0..100 {
        if !a.texts().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(a.texts(), ["alarm:ring"], "the alarm set by a delivered message fired");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(settle(&room).await, RoomStats { connections: 1, wakeups: 2, awake: false }, "hibernated again");
}

#[tokio::test]
async fn asking_for_the_counters_does_not_keep_an_idle_room_awake() {
    let room = spawn_room(name("q"), factory(), Arc::new(MemoryStore::new()), config());
    let _a = join(&room, 1, "").await.unwrap();
    // Asked for its counters more often than it may stay idle, for three
    // times that long: the room hibernates all the same.
    let mut stats = settle(&room).await;
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        stats = settle(&room).await;
    }
    assert_eq!(stats, RoomStats { connections: 1, wakeups: 1, awake: false });
}

/// Records the text of every message, in the order handlers saw them.
struct Recorder {
    seen: Arc<Mutex<Vec<(ConnId, String)>>>,
}

impl Room for Recorder {
    fn on_message(&mut self, _ctx: &mut Ctx<'_>, conn: ConnId, message: Message) {
        self.seen.lock().unwrap().push((conn, message.as_text().unwrap_or_default().to_owned()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_lose_nothing_and_keep_each_connections_order() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorded = seen.clone();
    let factory: Arc<dyn RoomFactory> = Arc::new(move |_id: &str, _storage: &RoomStorage<'_>| Box::new(Recorder { seen: recorded.clone() }) as Box<dyn Room>);
    // A small mailbox, so that deliveries also meet a full one.
    let config = RoomConfig { hibernate_after: Duration::from_secs(10), mailbox: 4 };
    let room = spawn_room(name("m"), factory, Arc::new(MemoryStore::new()), config);
    let senders: Vec<_> = (1..=4u64)
        .map(|id| {
            let room = room.clone();
            tokio::spawn(async move {
                // Only queued when this returns: the messages right after it
                // must not overtake it (the room would not know connection `id`).
                let sink = Arc::new(FakeSink::default());
                room.send(RoomEvent::Open { conn: ConnId(id), sink: Box::new(sink.clone()), tags: vec![], attachment: None }).await.unwrap();
                for read in 0..500 {
                    let messages = (0..3).map(|i| Message::text((read * 3 + i).to_string())).collect();
                    match room.try_deliver(ConnId(id), messages, &mut &*sink) {
                        Ok(()) => {}
                        Err(TryDeliverError::Full(messages)) => room.deliver(ConnId(id), messages).await.unwrap(),
                        Err(TryDeliverError::Gone) => panic!("the room stopped"),
                    }
                    if read % 25 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }
    settle(&room).await;
    let seen = seen.lock().unwrap();
    let expected: Vec<String> = (0..1500).map(|n| n.to_string()).collect();
    for id in 1..=4 {
        let texts: Vec<String> = seen.iter().filter(|(conn, _)| *conn == ConnId(id)).map(|(_, text)| text.clone()).collect();
        assert_eq!(texts, expected, "connection {id}");
    }
}

/// Panics on every message.
struct Boom;

impl Room for Boom {
    fn on_message(&mut self, _ctx: &mut Ctx<'_>, _conn: ConnId, _message: Message) {
        panic!("a handler bug");
    }
}

#[tokio::test]
async fn a_handler_panicking_on_a_connections_task_stops_the_room() {
    let factory: Arc<dyn RoomFactory> = Arc::new(|_id: &str, _storage: &RoomStorage<'_>| Box::new(Boom) as Box<dyn Room>);
    let room = spawn_room(name("x"), factory, Arc::new(MemoryStore::new()), config());
    let _a = join(&room, 1, "").await.unwrap();
    settle(&room).await;
    let delivering = room.clone();
    let outcome = tokio::spawn(async move { delivering.try_deliver(ConnId(1), vec![Message::text("x")], &mut Straight::default()).is_ok() }).await;
    assert!(outcome.unwrap_err().is_panic(), "the panic unwound the delivering task");
    // The next event finds the room's state poisoned: the actor stops, as
    // it would had the handler panicked on its own task.
    assert!(room.stats().await.is_none());
    assert!(room.is_closed());
}

/// `w:KEY` stores KEY, answers `seen KEY` at once and `stored KEY` after
/// the commit; `r:KEY` answers what a read of KEY returns.
struct Journal;

impl Room for Journal {
    fn on_message(&mut self, ctx: &mut Ctx<'_>, conn: ConnId, message: Message) {
        let text = message.as_text().unwrap_or_default().to_owned();
        if let Some(key) = text.strip_prefix("w:") {
            ctx.storage().put(key, b"v");
            ctx.send(conn, Message::text(format!("seen {key}")));
            ctx.send_after_commit(conn, Message::text(format!("stored {key}")));
        } else if let Some(key) = text.strip_prefix("r:") {
            let value = ctx.storage().get(key).unwrap();
            ctx.send(conn, Message::text(format!("{key}={value:?}")));
        }
    }

    fn on_commit_failed(&mut self, ctx: &mut Ctx<'_>, error: &switchboard_store::StoreError, unsent: &[(ConnId, Message)]) {
        for (conn, reply) in unsent {
            ctx.send(*conn, Message::text(format!("{}: not stored: {error}", reply.as_text().unwrap())));
        }
    }
}

fn journal() -> Arc<dyn RoomFactory> {
    Arc::new(|_id: &str, _storage: &RoomStorage<'_>| Box::new(Journal) as Box<dyn Room>)
}

async fn wait_for(sink: &FakeSink, count: usize) -> Vec<String> {
    for _ in 0..200 {
        if sink.texts().len() >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sink.texts()
}

#[tokio::test]
async fn replies_after_commit_wait_for_the_writes_before_them_and_keep_the_connections_order() {
    let store = Arc::new(GatedStore::closed());
    let room = spawn_room(name("j"), journal(), store.clone(), config());
    let a = join(&room, 1, "").await.unwrap();
    let b = join(&room, 2, "").await.unwrap();
    say(&room, 1, "w:one").await;
    settle(&room).await;
    // The first batch is in flight; the next two wait for it and go together.
    say(&room, 1, "w:two").await;
    say(&room, 1, "w:three").await;
    say(&room, 2, "r:one").await;
    settle(&room).await;
    assert_eq!(a.texts(), ["seen one"], "what follows a reply that waits for a commit waits behind it");
    assert_eq!(b.texts(), ["one=Some([118])"], "other connections are not held up, and reads see the room's own writes");
    assert_eq!(store.committed().get("t/j", "one").unwrap(), None, "nothing committed behind the gate");
    assert!(!room.is_settled());
    store.open();
    let texts = wait_for(&a, 6).await;
    assert_eq!(texts, ["seen one", "stored one", "seen two", "stored two", "seen three", "stored three"]);
    assert_eq!(store.commits(), 2, "two batches: the first, then the two written while it was in flight");
    assert_eq!(store.committed().list("t/j", "", 10).unwrap().len(), 3);
    settle(&room).await;
    assert!(room.is_settled());
}

#[tokio::test]
async fn a_failed_commit_sends_no_reply_and_tells_the_room_whom_it_was_for() {
    let store = Arc::new(GatedStore::failing());
    let room = spawn_room(name("f"), journal(), store.clone(), config());
    let a = join(&room, 1, "").await.unwrap();
    say(&room, 1, "w:lost").await;
    let texts = wait_for(&a, 2).await;
    assert_eq!(texts, ["seen lost", "stored lost: not stored: storage error: disk full"]);
    say(&room, 1, "r:lost").await;
    assert_eq!(wait_for(&a, 3).await[2], "lost=None", "a failed write is no longer read back");
}

/// Stores a visit per newcomer and welcomes it once the visit is stored.
struct Welcomer;

impl Room for Welcomer {
    fn on_open(&mut self, ctx: &mut Ctx<'_>, conn: ConnId) {
        ctx.storage().put(&format!("visit {conn}"), b"1");
        ctx.send_after_commit(conn, Message::text(format!("welcome {conn}")));
    }

    fn on_message(&mut self, _ctx: &mut Ctx<'_>, _conn: ConnId, _message: Message) {}
}

#[tokio::test]
async fn a_store_that_commits_at_once_releases_the_replies_with_their_batch() {
    let welcomer: Arc<dyn RoomFactory> = Arc::new(|_id: &str, _storage: &RoomStorage<'_>| Box::new(Welcomer) as Box<dyn Room>);
    let open = |room: RoomHandle| async move {
        let request =
            ConnectRequest { conn: ConnId(1), query: String::new(), headers: Headers::new(), ip: IpAddr::V4(Ipv4Addr::LOCALHOST), geo: None, identity: None };
        assert!(matches!(room.connect(request).await, Ok(Decision::Accept { .. })));
        // The room is free: the open is handled on this task, as one batch.
        settle(&room).await;
        let sink = Arc::new(FakeSink::default());
        room.open(ConnId(1), Box::new(sink.clone()), vec![], None).await.unwrap();
        // No await since: the actor's task has not run.
        (sink.texts(), sink)
    };
    let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let room = spawn_room(name("w"), welcomer.clone(), memory.clone(), config());
    let (at_once, _) = open(room.clone()).await;
    assert_eq!(at_once, ["welcome c1"], "the memory store commits in `commit`: the welcome leaves with the open");
    assert_eq!(memory.get("t/w", "visit c1").unwrap(), Some(b"1".to_vec()));
    let gated = Arc::new(GatedStore::closed());
    let room = spawn_room(name("w"), welcomer, gated.clone(), config());
    let (at_once, sink) = open(room.clone()).await;
    assert!(at_once.is_empty(), "a store that commits later holds the welcome: {at_once:?}");
    gated.open();
    assert_eq!(wait_for(&sink, 1).await, ["welcome c1"]);
}

#[test]
fn mailbox_slots_stay_small() {
    // A slot holds a message event itself; every larger event is boxed.
    let slot = std::mem::size_of::<Mail>();
    assert!(slot <= 48, "{slot}");
    assert!(std::mem::size_of::<RoomEvent>() > 2 * slot, "boxing the other events is what keeps slots small");
}

#[tokio::test]
async fn a_publication_is_broadcast_by_default_and_its_reach_reported() {
    let room = spawn_room(name("pub"), factory(), Arc::new(MemoryStore::new()), config());
    let a = join(&room, 1, "x").await.unwrap();
    let b = join(&room, 2, "y").await.unwrap();
    assert_eq!(room.publish(Message::text("news")).await, Ok(Published::Delivered(2)));
    settle(&room).await;
    assert_eq!((a.texts(), b.texts()), (vec!["news".to_owned()], vec!["news".to_owned()]));
}

#[tokio::test]
async fn the_owner_hears_when_an_actor_stops() {
    let (tx, rx) = oneshot::channel();
    let on_stop = Box::new(move || {
        let _ = tx.send(());
    });
    let room = spawn_room_notifying(name("stops"), factory(), Arc::new(MemoryStore::new()), config(), on_stop);
    let a = join(&room, 1, "x").await.unwrap();
    room.close(ConnId(1), Closed { code: None, reason: String::new(), clean: true, attachment: None }, None).await.unwrap();
    // No connection left: it hibernates after 100 ms, then stops.
    tokio::time::timeout(Duration::from_secs(5), rx).await.expect("stopped in time").unwrap();
    assert!(room.is_closed());
    drop(a);
}

#[tokio::test]
async fn an_accepted_connection_keeps_the_actor_until_it_opens_or_closes() {
    let room = spawn_room(name("slow-open"), factory(), Arc::new(MemoryStore::new()), config());
    let request =
        ConnectRequest { conn: ConnId(1), query: "x".into(), headers: Headers::new(), ip: IpAddr::V4(Ipv4Addr::LOCALHOST), geo: None, identity: None };
    assert!(matches!(room.connect(request).await, Ok(Decision::Accept { .. })));
    // The 101 takes longer than the room's idle time: it hibernates, and
    // must not stop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!room.is_closed());
    let sink = Arc::new(FakeSink::default());
    room.open(ConnId(1), Box::new(sink.clone()), vec![], None).await.expect("the room is still there");
    assert_eq!(settle(&room).await.connections, 1);
    // An accepted connection that never opens is given up by a close.
    let request =
        ConnectRequest { conn: ConnId(2), query: "x".into(), headers: Headers::new(), ip: IpAddr::V4(Ipv4Addr::LOCALHOST), geo: None, identity: None };
    assert!(matches!(room.connect(request).await, Ok(Decision::Accept { .. })));
    for id in [1, 2] {
        room.close(ConnId(id), Closed { code: None, reason: String::new(), clean: false, attachment: None }, None).await.unwrap();
    }
    for _ in 0..100 {
        if room.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the actor did not stop once nothing was left");
}
