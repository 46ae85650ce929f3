//! The broadcast room on a real room actor, with recording sinks: what a
//! newcomer is told, and when, relative to the visit counter in storage.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use switchboard_proto::frame::SharedFrame;
use switchboard_room::{spawn_room, ConnId, ConnSink, Message, RoomConfig, RoomEvent, RoomHandle, SendOutcome};
use switchboard_store::{MemoryStore, Store};

/// Records the text of every frame queued on it.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl ConnSink for Recorder {
    fn send_frame(&self, frame: &SharedFrame) -> SendOutcome {
        let texts = frame.payloads().into_iter().map(|p| String::from_utf8(p.to_vec()).unwrap());
        self.0.lock().unwrap().extend(texts);
        SendOutcome::Queued
    }
    fn close(&self, _code: u16, _reason: &str) {}
    fn set_auto_response(&self, _pair: Option<Arc<(bytes::Bytes, bytes::Bytes)>>) {}
    fn last_auto_response(&self) -> Option<SystemTime> {
        None
    }
}

impl Recorder {
    fn texts(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

fn open(room: &RoomHandle, id: u64) -> Arc<Recorder> {
    let sink = Arc::new(Recorder::default());
    room.try_send(RoomEvent::Open { conn: ConnId(id), sink: Box::new(sink.clone()), tags: vec![], attachment: None }).unwrap();
    sink
}

fn say(room: &RoomHandle, id: u64, text: &str) {
    room.try_send(RoomEvent::Message { conn: ConnId(id), message: Message::text(text.to_owned()) }).unwrap();
}

#[tokio::test]
async fn newcomers_are_welcomed_after_the_visit_is_stored_and_hear_only_what_follows() {
    let store = Arc::new(MemoryStore::new());
    let config = RoomConfig { hibernate_after: Duration::from_secs(60), mailbox: 16 };
    let room = spawn_room("broadcast/r".into(), "r".into(), switchboard_apps::broadcast::factory(), store.clone(), config);

    let a = open(&room, 1);
    room.stats().await.unwrap();
    assert_eq!(a.texts(), [r#"{"type":"welcome","id":"c1","online":1,"visits":1}"#, r#"{"type":"count","online":1}"#]);

    // On this single-threaded runtime the actor runs only when the test
    // awaits, so these four events are one batch.
    say(&room, 1, "before");
    let b = open(&room, 2);
    say(&room, 1, "during");
    let c = open(&room, 3);
    room.stats().await.unwrap();
    let stored = store.get("broadcast/r", "visits").unwrap().expect("visits stored");
    assert_eq!(stored, 3u64.to_be_bytes(), "stored before anyone is told visit 3");
    let welcome_b = r#"{"type":"welcome","id":"c2","online":3,"visits":2}"#;
    let welcome_c = r#"{"type":"welcome","id":"c3","online":3,"visits":3}"#;
    let count = r#"{"type":"count","online":3}"#;
    assert_eq!(b.texts(), [welcome_b, count], "nothing before the welcome, then one count for the batch");
    assert_eq!(c.texts(), [welcome_c, count]);
    assert_eq!(a.texts()[2..], [count], "the sender hears none of its own messages, and one count");

    say(&room, 1, "after");
    room.stats().await.unwrap();
    assert_eq!(b.texts().last().map(String::as_str), Some("after"));
    assert_eq!(c.texts().last().map(String::as_str), Some("after"));
}
