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

/// Members joining one after another, each in a batch of its own, faster
/// than the count's pace: the first join is announced at once, the rest
/// share announcements, and the last one tells everyone the final count.
#[tokio::test(start_paused = true)]
async fn counts_are_paced_while_members_pour_in() {
    let room = TestRoom::new("broadcast", "pace", switchboard_apps::broadcast::factory());
    let first = room.queue_open();
    room.settle().await;
    assert_eq!(first.texts()[1], r#"{"type":"count","online":1}"#, "a lone join to a quiet room is announced at once");
    // The clock stands still while nobody waits on it, so these 999 joins
    // (each handled alone: the actor runs at every yield) come within one
    // pace of the first announcement.
    let mut others = Vec::new();
    for _ in 1..1000 {
        others.push(room.queue_open());
        tokio::task::yield_now().await;
    }
    room.settle().await;
    let counts: Vec<String> = first.texts().into_iter().filter(|t| t.contains(r#""type":"count""#)).collect();
    assert_eq!(counts, [r#"{"type":"count","online":1}"#, r#"{"type":"count","online":1000}"#], "one announcement for the 999 joins");
    let last = others.last().unwrap().texts();
    assert_eq!(last.last().map(String::as_str), Some(r#"{"type":"count","online":1000}"#));
    // A leave after the pace has passed is announced at once again.
    tokio::time::advance(std::time::Duration::from_secs(1)).await;
    others.pop().unwrap().leave(switchboard_room::CloseCode::NORMAL).await;
    room.settle().await;
    assert_eq!(first.texts().last().map(String::as_str), Some(r#"{"type":"count","online":999}"#));
}
