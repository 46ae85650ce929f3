//! The chat's rules (docs/chat.md) on a real room actor, through the room
//! test kit: who is told what on a join, a leave and a message, and in
//! which order; acks that wait for the commit; every refusal; the limits;
//! announcements once per batch of events; history across rebuilds of the
//! room; countries from the connect request.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use switchboard_apps::chat::factory;
use switchboard_apps::ChatConfig;
use switchboard_room::testing::{GatedStore, TestConn, TestRoom};
use switchboard_room::{CloseCode, Geo, Message, RoomConfig};
use switchboard_store::{MemoryStore, Store};

/// The room's settings in every test: no hibernation mid-test.
fn room_config() -> RoomConfig {
    RoomConfig { hibernate_after: Duration::from_secs(60), ..RoomConfig::default() }
}

mod support;
use support::{take, types};

fn chat(id: &str, config: ChatConfig) -> TestRoom {
    TestRoom::new("chat", id, factory(config))
}

/// A client's `message`, with a `ref` when `r#ref` is not empty.
fn message(text: &str, r#ref: &str) -> String {
    if r#ref.is_empty() {
        json!({"type": "message", "text": text}).to_string()
    } else {
        json!({"type": "message", "text": text, "ref": r#ref}).to_string()
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Joins and reads the newcomer's welcome; the user as others see it.
async fn join(room: &TestRoom) -> (TestConn, Value) {
    let conn = room.join().await;
    room.settle().await;
    let welcome = conn.texts().first().map(|t| serde_json::from_str::<Value>(t).unwrap()).expect("a welcome");
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let user = json!({"id": welcome["id"], "name": welcome["name"], "country": welcome["country"]});
    (conn, user)
}

/// The one `error` `conn` received since the last look.
fn the_error(conn: &TestConn) -> Value {
    let got = take(conn);
    assert_eq!(types(&got), ["error"], "{got:?}");
    let error = got.into_iter().next().unwrap();
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "an error says why: {error}");
    error
}

#[tokio::test]
async fn a_newcomer_gets_welcome_and_history_then_everyone_gets_state_and_admin() {
    let config = ChatConfig { max_length: 300, per_second: 4, burst: 8, max_users: 20, history: 7 };
    let room = chat("lobby", config);
    let started = now_ms();

    let a = room.join().await;
    room.settle().await;
    let got = take(&a);
    assert_eq!(types(&got), ["welcome", "history", "state", "admin"]);
    let name_a = got[0]["name"].as_str().expect("a name").to_owned();
    let words: Vec<&str> = name_a.split(' ').collect();
    assert!(words.len() == 2 && words.iter().all(|w| w.chars().next().is_some_and(char::is_uppercase)), "two capitalised words: {name_a}");
    let limits = json!({"maxLength": 300, "perSecond": 4, "burst": 8, "maxUsers": 20, "history": 7});
    assert_eq!(got[0], json!({"type": "welcome", "id": "c1", "name": name_a, "country": null, "room": "lobby", "limits": limits}));
    assert_eq!(got[1], json!({"type": "history", "messages": []}));
    let user_a = json!({"id": "c1", "name": name_a, "country": null});
    assert_eq!(got[2], json!({"type": "state", "count": 1, "users": [user_a]}));
    let time = got[3]["time"].as_u64().expect("a time");
    assert!(time >= started && time <= now_ms(), "server time in ms: {time}");
    assert_eq!(got[3], json!({"type": "admin", "event": "joined", "user": user_a, "text": format!("{name_a} joined"), "time": time}));

    a.say(&message("first", "")).await;
    room.settle().await;
    let ack = take(&a);
    assert_eq!(types(&ack), ["ack"]);

    // The second newcomer hears the history; the first hears only the
    // member list and the line about the newcomer.
    let (b, user_b) = join(&room).await;
    let got_b = take(&b);
    assert_eq!(types(&got_b), ["welcome", "history", "state", "admin"]);
    assert_eq!(got_b[0]["id"], "c2");
    let entry = json!({"type": "message", "id": "m1", "from": user_a, "text": "first", "time": ack[0]["time"]});
    assert_eq!(got_b[1], json!({"type": "history", "messages": [entry]}));
    let state = json!({"type": "state", "count": 2, "users": [user_a, user_b]});
    assert_eq!(got_b[2], state);
    assert_eq!(got_b[3]["user"], user_b);
    assert_eq!(got_b[3]["text"], format!("{} joined", user_b["name"].as_str().unwrap()));
    let got_a = take(&a);
    assert_eq!(got_a, [state, got_b[3].clone()], "members hear the new list and the line, nothing else");

    // A leave: everyone left hears the new list and a line; the one who
    // left hears nothing more.
    b.leave(CloseCode::NORMAL).await;
    room.settle().await;
    let got_a = take(&a);
    assert_eq!(types(&got_a), ["state", "admin"]);
    assert_eq!(got_a[0], json!({"type": "state", "count": 1, "users": [user_a]}));
    assert_eq!(got_a[1]["event"], "left");
    assert_eq!(got_a[1]["user"], user_b);
    assert_eq!(got_a[1]["text"], format!("{} left", user_b["name"].as_str().unwrap()));
    assert!(take(&b).is_empty());
}

#[tokio::test]
async fn names_are_unique_among_the_users_online() {
    // 300 users drawing from 4,096 names would all but surely share one if
    // the room did not check (the chance of no repeat is about 1 in 50,000).
    let room = chat("crowd", ChatConfig { max_users: 400, ..ChatConfig::default() });
    let mut conns: Vec<TestConn> = Vec::new();
    let mut names = HashSet::new();
    for _ in 0..6 {
        let batch: Vec<TestConn> = (0..50).map(|_| room.queue_open()).collect();
        room.settle().await;
        for conn in &batch {
            let welcome: Value = serde_json::from_str(conn.texts().first().expect("a welcome")).unwrap();
            assert_eq!(welcome["type"], "welcome");
            let name = welcome["name"].as_str().unwrap().to_owned();
            assert!(names.insert(name.clone()), "{name} handed out twice");
        }
        conns.extend(batch);
        let last = take(&conns[0]);
        for conn in &conns[1..] {
            let _ = conn.take_texts();
        }
        let state = last.iter().find(|m| m["type"] == "state").expect("a state");
        let listed: HashSet<&str> = state["users"].as_array().unwrap().iter().map(|u| u["name"].as_str().unwrap()).collect();
        assert_eq!(listed.len(), conns.len(), "the member list has every name once");
    }
    assert_eq!(names.len(), 300);
}

#[tokio::test]
async fn a_message_goes_to_everyone_else_and_its_sender_gets_an_ack() {
    let room = chat("talk", ChatConfig::default());
    let (a, user_a) = join(&room).await;
    let (b, _) = join(&room).await;
    let (c, _) = join(&room).await;
    for conn in [&a, &b, &c] {
        let _ = conn.take_texts();
    }

    let before = now_ms();
    a.say(&message("hello there", "r7")).await;
    room.settle().await;
    let ack = take(&a);
    assert_eq!(types(&ack), ["ack"], "the sender does not get its own message back");
    let time = ack[0]["time"].as_u64().unwrap();
    assert!(time >= before && time <= now_ms());
    assert_eq!(ack[0], json!({"type": "ack", "ref": "r7", "id": "m1", "time": time}));
    let relayed = json!({"type": "message", "id": "m1", "from": user_a, "text": "hello there", "time": time});
    for other in [&b, &c] {
        assert_eq!(take(other), std::slice::from_ref(&relayed));
    }

    // No ref: the ack's is null. Ids grow by one per message in the room.
    b.say(&message("hi", "")).await;
    a.say(&message("again", "r8")).await;
    room.settle().await;
    let ack_b = take(&b);
    assert_eq!(types(&ack_b), ["ack", "message"]);
    assert_eq!(ack_b[0]["ref"], Value::Null);
    assert_eq!(ack_b[0]["id"], "m2");
    assert_eq!(ack_b[1]["id"], "m3");
    let got_a = take(&a);
    assert_eq!(types(&got_a), ["message", "ack"]);
    assert_eq!((&got_a[0]["id"], &got_a[0]["text"]), (&json!("m2"), &json!("hi")));
    assert_eq!((&got_a[1]["ref"], &got_a[1]["id"]), (&json!("r8"), &json!("m3")));
    assert_eq!(types(&take(&c)), ["message", "message"]);
}

#[tokio::test]
async fn the_ack_waits_for_the_commit_and_what_the_sender_is_sent_meanwhile_waits_behind_it() {
    let store = Arc::new(GatedStore::closed());
    let room = TestRoom::with("chat", "gate", factory(ChatConfig::default()), store.clone(), room_config());
    let (a, _) = join(&room).await;
    let (b, _) = join(&room).await;
    let _ = (a.take_texts(), b.take_texts());

    a.say(&message("hello", "r1")).await;
    room.settle().await;
    assert_eq!(types(&take(&b)), ["message"], "the others hear it at once");
    assert!(a.texts().is_empty(), "no ack before the commit");
    assert!(store.committed().list("chat/gate", "", 10).unwrap().is_empty(), "nothing committed behind the gate");

    // Meanwhile the sender is due a state, an admin line and an error:
    // they wait behind the ack; the others get theirs.
    let (c, user_c) = join(&room).await;
    a.say(&message(" ", "r2")).await;
    room.settle().await;
    assert!(a.texts().is_empty(), "what follows the ack waits behind it");
    assert_eq!(types(&take(&b)), ["state", "admin"]);
    let _ = c.take_texts();

    store.open();
    room.settle().await;
    let got = take(&a);
    assert_eq!(types(&got), ["ack", "state", "admin", "error"]);
    assert_eq!((&got[0]["ref"], &got[0]["id"]), (&json!("r1"), &json!("m1")));
    assert_eq!(got[2]["user"], user_c);
    assert_eq!((&got[3]["code"], &got[3]["ref"]), (&json!("empty"), &json!("r2")));
    let stored = store.committed().list("chat/gate", "h/", 10).unwrap();
    assert_eq!(stored.len(), 1, "acked once stored");
    assert_eq!(serde_json::from_slice::<Value>(&stored[0].1).unwrap()["text"], "hello");

    // Once nothing waits, the ack comes with the commit, as before.
    a.say(&message("later", "r3")).await;
    room.settle().await;
    assert_eq!(types(&take(&a)), ["ack"]);
    assert_eq!(types(&take(&b)), ["message"]);
}

#[tokio::test]
async fn a_failed_commit_gives_the_sender_not_stored_instead_of_an_ack_and_others_still_got_the_message() {
    let store = Arc::new(GatedStore::failing());
    let room = TestRoom::with("chat", "broken", factory(ChatConfig::default()), store.clone(), room_config());
    let (a, user_a) = join(&room).await;
    let (b, _) = join(&room).await;
    let _ = (a.take_texts(), b.take_texts());

    a.say(&message("lost", "r1")).await;
    room.settle().await;
    let got_b = take(&b);
    assert_eq!(types(&got_b), ["message"]);
    assert_eq!((&got_b[0]["from"], &got_b[0]["text"]), (&user_a, &json!("lost")));
    let error = the_error(&a);
    assert_eq!((&error["code"], &error["ref"]), (&json!("not_stored"), &json!("r1")));

    a.say(&message("lost too", "")).await;
    room.settle().await;
    let error = the_error(&a);
    assert_eq!((&error["code"], &error["ref"]), (&json!("not_stored"), &Value::Null));
    assert_eq!(types(&take(&b)), ["message"]);

    let (c, _) = join(&room).await;
    assert_eq!(take(&c)[1], json!({"type": "history", "messages": []}), "nothing reached the history");
}

#[tokio::test]
async fn refused_messages_get_the_sender_an_error_and_reach_nobody() {
    let room = chat("strict", ChatConfig { max_length: 16, ..ChatConfig::default() });
    let (a, _) = join(&room).await;
    let (b, _) = join(&room).await;
    let _ = (a.take_texts(), b.take_texts());

    let long_ref = "r".repeat(65);
    let refused: Vec<(String, &str, Value)> = vec![
        ("hello".into(), "bad_message", Value::Null),
        ("[1,2]".into(), "bad_message", Value::Null),
        (r#"{"type":"message"}"#.into(), "bad_message", Value::Null),
        (r#"{"type":"message","text":5,"ref":"r1"}"#.into(), "bad_message", Value::Null),
        (r#"{"type":"hello","text":"hi","ref":"r1"}"#.into(), "bad_message", Value::Null),
        (r#"{"type":"message","text":"hi","ref":5}"#.into(), "bad_message", Value::Null),
        (r#"{"type":"message","text":"hi","ref":"r1","extra":true}"#.into(), "bad_message", Value::Null),
        (json!({"type": "message", "text": "hi", "ref": long_ref}).to_string(), "bad_message", Value::Null),
        (message("", "r2"), "empty", json!("r2")),
        (message(" \n\t ", "r3"), "empty", json!("r3")),
        (message("this is too long!", "r4"), "too_long", json!("r4")),
        (message(&"é".repeat(17), ""), "too_long", Value::Null),
        (message("fuck you", "r5"), "profanity", json!("r5")),
        (message("kill yourself", "r6"), "profanity", json!("r6")),
    ];
    for (text, code, r#ref) in &refused {
        a.say(text).await;
        room.settle().await;
        let error = the_error(&a);
        assert_eq!((&error["code"], &error["ref"]), (&json!(code), r#ref), "{text}");
    }
    a.send(Message::binary(b"{\"type\":\"message\",\"text\":\"hi\"}".to_vec())).await;
    room.settle().await;
    assert_eq!(the_error(&a)["code"], "bad_message", "a binary frame");
    assert!(b.texts().is_empty(), "no one else hears of a refused message");

    // At the limits: sixteen characters (not bytes), a ref of 64.
    let at_limit = "é".repeat(16);
    a.say(&json!({"type": "message", "text": at_limit, "ref": "r".repeat(64)}).to_string()).await;
    room.settle().await;
    let ack = take(&a);
    assert_eq!(types(&ack), ["ack"]);
    assert_eq!(ack[0]["ref"], "r".repeat(64));
    assert_eq!(take(&b)[0]["text"], at_limit);

    let (c, _) = join(&room).await;
    let history = &take(&c)[1]["messages"];
    assert_eq!(history.as_array().map(Vec::len), Some(1), "only the accepted message is in the history: {history}");
    assert_eq!(history[0]["id"], "m1", "refused messages take no id");
}

// The clock stands still: a refill during a slow run would change the count.
#[tokio::test(start_paused = true)]
async fn the_rate_limit_allows_the_burst_then_refuses() {
    let room = chat("fast", ChatConfig { per_second: 1, burst: 3, ..ChatConfig::default() });
    let (a, _) = join(&room).await;
    let (b, _) = join(&room).await;
    let _ = (a.take_texts(), b.take_texts());

    for i in 1..=5 {
        a.queue_say(&message(&format!("n{i}"), &format!("r{i}")));
    }
    room.settle().await;
    let got = take(&a);
    assert_eq!(types(&got), ["ack", "ack", "ack", "error", "error"]);
    assert_eq!((&got[3]["code"], &got[3]["ref"]), (&json!("rate_limited"), &json!("r4")));
    assert_eq!((&got[4]["code"], &got[4]["ref"]), (&json!("rate_limited"), &json!("r5")));
    let texts: Vec<Value> = take(&b).into_iter().map(|m| m["text"].clone()).collect();
    assert_eq!(texts, ["n1", "n2", "n3"], "only accepted messages go out");

    // Each user has a bucket of their own.
    b.say(&message("mine", "")).await;
    room.settle().await;
    assert_eq!(types(&take(&b)), ["ack"]);
}

#[tokio::test]
async fn the_rate_limit_refills_at_the_sustained_rate() {
    let room = chat("refill", ChatConfig { per_second: 2, burst: 1, ..ChatConfig::default() });
    // Another user's message first: the profanity filter builds its tables
    // on first use, which in a debug build takes long enough to refill a
    // bucket between two messages of one batch.
    let (warm, _) = join(&room).await;
    warm.say(&message("warming up", "")).await;
    let (a, _) = join(&room).await;
    room.settle().await;
    let _ = a.take_texts();
    a.queue_say(&message("one", ""));
    a.queue_say(&message("two", ""));
    room.settle().await;
    let got = take(&a);
    assert_eq!(types(&got), ["ack", "error"], "{got:?}");
    // 2 per second: a token is back within 500 ms.
    tokio::time::sleep(Duration::from_millis(600)).await;
    a.say(&message("three", "")).await;
    room.settle().await;
    assert_eq!(types(&take(&a)), ["ack"]);
}

// The clock stands still: a refill during a slow run would change the count.
#[tokio::test(start_paused = true)]
async fn checks_run_in_order_shape_length_rate_profanity() {
    let room = chat("order", ChatConfig { max_length: 10, per_second: 1, burst: 2, ..ChatConfig::default() });
    let (a, _) = join(&room).await;
    let _ = a.take_texts();
    let sent = [
        // Refused before the rate is counted: they cost no token.
        ("", "empty"),
        ("much too long", "too_long"),
        // Counted, then refused.
        ("shit", "profanity"),
        ("fine", "ack"),
        // Out of tokens: refused for the rate before anything else is judged.
        ("shit", "rate_limited"),
        ("fine", "rate_limited"),
        ("much too long", "too_long"),
    ];
    for (text, _) in sent {
        a.queue_say(&message(text, ""));
    }
    room.settle().await;
    let got: Vec<String> = take(&a).iter().map(|m| m["code"].as_str().or(m["type"].as_str()).unwrap().to_owned()).collect();
    let expected: Vec<&str> = sent.iter().map(|(_, outcome)| *outcome).collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn a_full_room_refuses_the_next_user_with_room_full_and_a_policy_close() {
    let room = chat("small", ChatConfig { max_users: 2, ..ChatConfig::default() });
    let (a, _) = join(&room).await;
    let (b, _) = join(&room).await;
    let _ = (a.take_texts(), b.take_texts());

    let c = room.join().await;
    room.settle().await;
    let error = the_error(&c);
    assert_eq!((&error["code"], &error["ref"]), (&json!("room_full"), &Value::Null));
    assert_eq!(c.closed().map(|(code, _)| code), Some(CloseCode::POLICY_VIOLATION));
    assert!(a.texts().is_empty() && b.texts().is_empty(), "no one hears of a refused user");

    // Until its close arrives, what it sends is ignored; its leave is not announced.
    c.say(&message("let me in", "r1")).await;
    c.leave(CloseCode::POLICY_VIOLATION).await;
    room.settle().await;
    assert!(c.texts().is_empty());
    assert!(a.texts().is_empty() && b.texts().is_empty());

    // A place frees up.
    b.leave(CloseCode::NORMAL).await;
    let (d, user_d) = join(&room).await;
    assert!(d.closed().is_none());
    assert_eq!(types(&take(&d)), ["welcome", "history", "state", "admin"]);
    let got_a = take(&a);
    assert_eq!(types(&got_a), ["state", "admin", "state", "admin"]);
    assert_eq!(got_a[3]["user"], user_d);
}

#[tokio::test]
async fn joins_and_leaves_in_one_batch_are_announced_once_per_member_then_a_line_each() {
    let room = chat("burst", ChatConfig::default());
    let (a, user_a) = join(&room).await;
    let (x, user_x) = join(&room).await;
    let _ = (a.take_texts(), x.take_texts());

    // On this single-threaded runtime the room runs only when the test
    // awaits: two joins and a leave, one batch.
    let b = room.queue_open();
    let c = room.queue_open();
    x.leave(CloseCode::NORMAL).await;
    room.settle().await;

    let got_b = take(&b);
    let got_c = take(&c);
    let got_a = take(&a);
    assert_eq!(types(&got_b), ["welcome", "history", "state", "admin", "admin", "admin"]);
    assert_eq!(types(&got_c), ["welcome", "history", "state", "admin", "admin"], "a newcomer hears the lines from its own join on");
    assert_eq!(types(&got_a), ["state", "admin", "admin", "admin"]);
    assert!(take(&x).is_empty());
    let user_b = json!({"id": "c3", "name": got_b[0]["name"], "country": null});
    let user_c = json!({"id": "c4", "name": got_c[0]["name"], "country": null});
    let state = json!({"type": "state", "count": 3, "users": [user_a, user_b, user_c]});
    let lines: Vec<(Value, Value)> = got_a[1..].iter().map(|m| (m["event"].clone(), m["user"].clone())).collect();
    assert_eq!(lines, [(json!("joined"), user_b), (json!("joined"), user_c), (json!("left"), user_x)]);
    assert_eq!(got_a[0], state);
    assert_eq!(got_b[2..], got_a[..]);
    assert_eq!(got_c[2..], [got_a[0].clone(), got_a[2].clone(), got_a[3].clone()]);

    // Someone who joins and leaves within one batch is announced both
    // ways and is not in the list.
    let y = room.queue_open();
    y.leave(CloseCode::NORMAL).await;
    room.settle().await;
    assert_eq!(types(&take(&y)), ["welcome", "history"]);
    let got_a = take(&a);
    assert_eq!(types(&got_a), ["state", "admin", "admin"]);
    assert_eq!(got_a[0], state);
    assert_eq!((&got_a[1]["event"], &got_a[2]["event"]), (&json!("joined"), &json!("left")));
    assert_eq!(got_a[1]["user"]["id"], y.id().to_string());
    assert_eq!(got_a[1]["user"], got_a[2]["user"]);
    assert_eq!(take(&b), got_a);
    assert_eq!(take(&c), got_a);

    // A batch of messages alone announces nothing.
    a.queue_say(&message("one", ""));
    b.queue_say(&message("two", ""));
    room.settle().await;
    assert_eq!(types(&take(&c)), ["message", "message"]);
}

#[tokio::test]
async fn history_survives_a_rebuild_of_the_room_capped_at_its_size_and_ids_continue() {
    let store = Arc::new(MemoryStore::new());
    let open = |history: usize| TestRoom::with("chat", "keep", factory(ChatConfig { history, ..ChatConfig::default() }), store.clone(), room_config());
    let user_a;
    {
        let room = open(3);
        let (a, user) = join(&room).await;
        user_a = user;
        for word in ["one", "two", "three", "four", "five"] {
            a.say(&message(word, "")).await;
        }
        room.settle().await;
        let ids: Vec<Value> = take(&a).into_iter().filter(|m| m["type"] == "ack").map(|m| m["id"].clone()).collect();
        assert_eq!(ids, ["m1", "m2", "m3", "m4", "m5"]);
        assert_eq!(store.list("chat/keep", "h/", 100).unwrap().len(), 3, "storage keeps only the history's size");
    }

    // A new actor on the same store: the room is built again from storage.
    let room = open(3);
    let (b, _) = join(&room).await;
    let history = take(&b)[1]["messages"].clone();
    let kept: Vec<(Value, Value)> = history.as_array().unwrap().iter().map(|m| (m["id"].clone(), m["text"].clone())).collect();
    assert_eq!(kept, [(json!("m3"), json!("three")), (json!("m4"), json!("four")), (json!("m5"), json!("five"))], "oldest first");
    for entry in history.as_array().unwrap() {
        assert_eq!((&entry["type"], &entry["from"]), (&json!("message"), &user_a));
        assert!(entry["time"].as_u64().is_some());
    }
    b.say(&message("six", "")).await;
    room.settle().await;
    assert_eq!(take(&b)[0]["id"], "m6", "ids continue across the rebuild");
    drop((room, b));

    // Rebuilt with a smaller history: newcomers get only that many.
    let room = open(2);
    let (c, _) = join(&room).await;
    let kept: Vec<Value> = take(&c)[1]["messages"].as_array().unwrap().iter().map(|m| m["id"].clone()).collect();
    assert_eq!(kept, ["m5", "m6"]);
}

#[tokio::test]
async fn ids_continue_after_the_room_hibernates() {
    let config = RoomConfig { hibernate_after: Duration::from_millis(20), ..RoomConfig::default() };
    let room = TestRoom::with("chat", "sleepy", factory(ChatConfig::default()), Arc::new(MemoryStore::new()), config);
    let (a, _) = join(&room).await;
    a.say(&message("before", "")).await;
    room.settle().await;
    let _ = a.take_texts();
    assert!(room.wait_until_hibernated(Duration::from_millis(60)).await, "the room hibernates");
    let (b, _) = join(&room).await;
    assert_eq!(take(&b)[1]["messages"][0]["text"], "before");
    let _ = a.take_texts();
    a.say(&message("after", "")).await;
    room.settle().await;
    let ack = take(&a);
    assert_eq!((&ack[0]["type"], &ack[0]["id"]), (&json!("ack"), &json!("m2")));
    assert!(room.settle().await.wakeups >= 2);
}

#[tokio::test]
async fn the_country_comes_from_the_connect_requests_geo_lookup() {
    let room = chat("world", ChatConfig::default());
    let mut request = room.request();
    request.geo = Some(Geo { country: Some("NZ".into()), city: Some("Wellington".into()), ..Geo::default() });
    let a = room.try_join(request).await.expect("accepted");
    room.settle().await;
    let got_a = take(&a);
    assert_eq!(got_a[0]["country"], "NZ");
    let user_a = json!({"id": "c1", "name": got_a[0]["name"], "country": "NZ"});
    assert_eq!(got_a[2]["users"], json!([user_a]));

    // A lookup without a country, and no lookup at all: unknown.
    let mut request = room.request();
    request.geo = Some(Geo { city: Some("Nowhere".into()), ..Geo::default() });
    let b = room.try_join(request).await.expect("accepted");
    let (c, _) = join(&room).await;
    room.settle().await;
    assert_eq!(take(&b)[0]["country"], Value::Null);
    let got_c = take(&c);
    assert_eq!(got_c[0]["country"], Value::Null);
    let countries: Vec<Value> = got_c[2]["users"].as_array().unwrap().iter().map(|u| u["country"].clone()).collect();
    assert_eq!(countries, [json!("NZ"), Value::Null, Value::Null]);

    a.say(&message("kia ora", "")).await;
    room.settle().await;
    assert_eq!(take(&c)[0]["from"], user_a);
}
