//! The broadcast room on a real room actor, through the room test kit:
//! what a newcomer is told, and when, relative to the visit counter in
//! storage.

use switchboard_room::testing::TestRoom;

#[tokio::test]
async fn newcomers_are_welcomed_after_the_visit_is_stored_and_hear_only_what_follows() {
    let room = TestRoom::new("broadcast", "r", switchboard_apps::broadcast::factory());

    let a = room.queue_open();
    room.settle().await;
    assert_eq!(a.texts(), [r#"{"type":"welcome","id":"c1","online":1,"visits":1}"#, r#"{"type":"count","online":1}"#]);

    // On this single-threaded runtime the actor runs only when the test
    // awaits, so these four events are one batch.
    a.queue_say("before");
    let b = room.queue_open();
    a.queue_say("during");
    let c = room.queue_open();
    room.settle().await;
    let stored = room.store().get("broadcast/r", "visits").unwrap().expect("visits stored");
    assert_eq!(stored, 3u64.to_be_bytes(), "stored before anyone is told visit 3");
    let welcome_b = r#"{"type":"welcome","id":"c2","online":3,"visits":2}"#;
    let welcome_c = r#"{"type":"welcome","id":"c3","online":3,"visits":3}"#;
    let count = r#"{"type":"count","online":3}"#;
    assert_eq!(b.texts(), [welcome_b, count], "nothing before the welcome, then one count for the batch");
    assert_eq!(c.texts(), [welcome_c, count]);
    assert_eq!(a.texts()[2..], [count], "the sender hears none of its own messages, and one count");

    a.say("after").await;
    room.settle().await;
    assert_eq!(b.texts().last().map(String::as_str), Some("after"));
    assert_eq!(c.texts().last().map(String::as_str), Some("after"));
}
