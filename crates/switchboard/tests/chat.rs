//! The chat room kind through real sockets against the real binary: every
//! message type of docs/chat.md, unique names, profanity never reaching
//! anyone else, limits, history across restarts, leaves (closed or found
//! dead by the heartbeat), and countries from the geo database, directly
//! and through a trusted proxy.

mod common;
#[path = "support/geo_fixture.rs"]
mod geo_fixture;
#[path = "support/json_client.rs"]
mod json_client;

use std::collections::HashSet;

use common::ServerProcess;
use json_client::{next, next_of, WAIT};
use serde_json::{json, Value};
use switchboard_client::{Client, ClientOptions, Event, Message};

struct Chatter {
    client: Client,
    id: String,
    name: String,
    country: Value,
}

fn options(headers: &[(&str, &str)]) -> ClientOptions {
    ClientOptions { protocols: vec!["json".into()], headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(), ..ClientOptions::default() }
}

/// Joins `room` and reads the newcomer's four messages, checking their order.
async fn join_with(server: &ServerProcess, room: &str, headers: &[(&str, &str)]) -> (Chatter, Vec<Value>) {
    let mut client = Client::connect_with(&server.ws(&format!("/rooms/chat/{room}")), options(headers)).await.unwrap();
    assert_eq!(client.protocol(), Some("json"));
    let welcome = next(&mut client).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let history = next(&mut client).await;
    assert_eq!(history["type"], "history", "{history}");
    let state = next(&mut client).await;
    assert_eq!(state["type"], "state", "{state}");
    let admin = next(&mut client).await;
    assert_eq!(admin["type"], "admin", "{admin}");
    assert_eq!(admin["event"], "joined");
    assert_eq!(admin["user"]["id"], welcome["id"]);
    let id = welcome["id"].as_str().unwrap().to_owned();
    assert!(state["users"].as_array().unwrap().iter().any(|u| u["id"] == id.as_str()), "the newcomer is in the state");
    let chatter = Chatter { client, id, name: welcome["name"].as_str().unwrap().to_owned(), country: welcome["country"].clone() };
    (chatter, vec![welcome, history, state, admin])
}

async fn join(server: &ServerProcess, room: &str) -> Chatter {
    join_with(server, room, &[]).await.0
}

async fn say(chatter: &mut Chatter, text: &str, r#ref: &str) {
    let message = json!({"type": "message", "text": text, "ref": r#ref}).to_string();
    chatter.client.send_text(&message).await.unwrap();
}

fn geo_server(extra: &[&str]) -> (ServerProcess, tempfile::TempPath) {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut file, &geo_fixture::database()).unwrap();
    let path = file.into_temp_path();
    let mut flags = vec!["--memory", "--geo-db", path.to_str().unwrap()];
    flags.extend_from_slice(extra);
    (ServerProcess::start_with(&flags), path)
}

#[tokio::test]
async fn joining_sends_welcome_history_state_and_admin_to_the_right_people() {
    let (server, _db) = geo_server(&[]);
    let (mut a, first) = join_with(&server, "hall", &[]).await;
    let welcome = &first[0];
    assert_eq!(welcome["room"], "hall");
    assert_eq!(welcome["country"], "NZ", "loopback is in NZ in the test database");
    assert_eq!(welcome["limits"], json!({"maxLength": 500, "perSecond": 5, "burst": 10, "maxUsers": 100, "history": 50}));
    let words: Vec<&str> = a.name.split(' ').collect();
    assert_eq!(words.len(), 2, "two-word name {:?}", a.name);
    assert!(words.iter().all(|w| w.chars().next().unwrap().is_ascii_uppercase()));
    assert_eq!(first[1], json!({"type": "history", "messages": []}));
    assert_eq!(first[2], json!({"type": "state", "count": 1, "users": [{"id": a.id, "name": a.name, "country": "NZ"}]}));
    assert_eq!(first[3]["text"], format!("{} joined", a.name));

    let b = join(&server, "hall").await;
    let state = next(&mut a.client).await;
    assert_eq!(state["count"], 2);
    assert_eq!(state["users"], json!([{"id": a.id, "name": a.name, "country": "NZ"}, {"id": b.id, "name": b.name, "country": "NZ"}]), "in join order");
    let admin = next(&mut a.client).await;
    assert_eq!((admin["event"].as_str(), admin["user"]["name"].as_str()), (Some("joined"), Some(b.name.as_str())));
    assert!(admin["time"].as_u64().unwrap() > 1_700_000_000_000);
}

#[tokio::test]
async fn names_are_unique_within_a_room() {
    let server = ServerProcess::start();
    let mut chatters = Vec::new();
    for _ in 0..40 {
        chatters.push(join(&server, "crowd").await);
    }
    let names: HashSet<&str> = chatters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names.len(), chatters.len(), "every name differs");
    assert!(chatters.iter().all(|c| c.country.is_null()), "no geo database: country unknown");
}

#[tokio::test]
async fn a_message_reaches_everyone_else_and_the_sender_gets_an_ack() {
    let server = ServerProcess::start();
    let mut a = join(&server, "talk").await;
    let mut b = join(&server, "talk").await;
    let mut c = join(&server, "talk").await;
    next_of(&mut a.client, "admin").await; // b joined
    next_of(&mut a.client, "admin").await; // c joined
    next_of(&mut b.client, "admin").await; // c joined

    say(&mut a, "hello there", "r1").await;
    let ack = next(&mut a.client).await;
    assert_eq!(ack["type"], "ack");
    assert_eq!(ack["ref"], "r1");
    for other in [&mut b, &mut c] {
        let message = next(&mut other.client).await;
        assert_eq!(message["type"], "message");
        assert_eq!(message["text"], "hello there");
        assert_eq!(message["from"], json!({"id": a.id, "name": a.name, "country": null}));
        assert_eq!((&message["id"], &message["time"]), (&ack["id"], &ack["time"]));
    }
    // No echo for the sender: its next message is b's, not its own.
    b.client.send_text(r#"{"type":"message","text":"hi a"}"#).await.unwrap();
    let ack = next(&mut b.client).await;
    assert_eq!((ack["type"].as_str(), &ack["ref"]), (Some("ack"), &Value::Null), "no ref sent, null returned");
    let message = next(&mut a.client).await;
    assert_eq!((message["text"].as_str(), message["from"]["id"].as_str()), (Some("hi a"), Some(b.id.as_str())));
}

#[tokio::test]
async fn a_profane_message_is_refused_to_its_sender_and_seen_by_nobody() {
    let server = ServerProcess::start();
    let mut a = join(&server, "clean").await;
    let mut b = join(&server, "clean").await;
    next_of(&mut a.client, "admin").await;

    say(&mut a, "what the fuck is this shit", "bad").await;
    let error = next(&mut a.client).await;
    assert_eq!((error["type"].as_str(), error["code"].as_str(), error["ref"].as_str()), (Some("error"), Some("profanity"), Some("bad")));
    assert!(!error["message"].as_str().unwrap().is_empty());
    say(&mut a, "sorry, all good", "good").await;
    assert_eq!(next(&mut a.client).await["type"], "ack");
    // b's very next message is the clean one: the profane one never came.
    let message = next(&mut b.client).await;
    assert_eq!(message["text"], "sorry, all good");
    // Nor is it in the history a newcomer gets.
    let (_c, first) = join_with(&server, "clean", &[]).await;
    let texts: Vec<&str> = first[1]["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["sorry, all good"]);
}

#[tokio::test]
async fn malformed_empty_and_long_messages_get_clear_errors() {
    let server = ServerProcess::start_with(&["--memory", "--chat-max-length", "20"]);
    let mut a = join(&server, "rules").await;
    let cases: [(Message, &str); 7] = [
        (Message::text("not json"), "bad_message"),
        (Message::text(r#"{"type":"shout","text":"hi"}"#), "bad_message"),
        (Message::text(r#"{"type":"message","text":42}"#), "bad_message"),
        (Message::text(json!({"type": "message", "text": "hi", "ref": "x".repeat(65)}).to_string()), "bad_message"),
        (Message::binary(&b"{\"type\":\"message\",\"text\":\"hi\"}"[..]), "bad_message"),
        (Message::text(r#"{"type":"message","text":"   ","ref":"blank"}"#), "empty"),
        (Message::text(json!({"type": "message", "text": "é".repeat(21), "ref": "long"}).to_string()), "too_long"),
    ];
    for (message, code) in cases {
        a.client.send(&message).await.unwrap();
        let error = next(&mut a.client).await;
        assert_eq!((error["type"].as_str(), error["code"].as_str()), (Some("error"), Some(code)), "for {message:?}");
    }
    // Exactly the limit, counted in characters, not bytes, is fine.
    say(&mut a, &"é".repeat(20), "edge").await;
    assert_eq!(next(&mut a.client).await["type"], "ack");
}

#[tokio::test]
async fn a_user_sending_too_fast_is_rate_limited_and_only_accepted_messages_go_out() {
    let server = ServerProcess::start_with(&["--memory", "--chat-rate", "1", "--chat-burst", "3"]);
    let mut a = join(&server, "fast").await;
    let mut b = join(&server, "fast").await;
    next_of(&mut a.client, "admin").await;
    for i in 0..12 {
        a.client.queue(&Message::text(json!({"type": "message", "text": format!("n{i}"), "ref": format!("r{i}")}).to_string())).unwrap();
    }
    a.client.flush().await.unwrap();
    let (mut acked, mut limited) = (Vec::new(), 0);
    for _ in 0..12 {
        let reply = next(&mut a.client).await;
        match reply["type"].as_str() {
            Some("ack") => acked.push(reply["ref"].as_str().unwrap().trim_start_matches('r').to_owned()),
            Some("error") => {
                assert_eq!(reply["code"], "rate_limited");
                limited += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(limited >= 12 - 3 - 2, "a burst of 3 plus at most a couple refilled; {limited} limited");
    assert!(acked.len() >= 3);
    for n in &acked {
        assert_eq!(next(&mut b.client).await["text"], format!("n{n}"), "b sees exactly the accepted ones, in order");
    }
    say(&mut b, "b is not limited by a's rate", "b").await;
    assert_eq!(next(&mut b.client).await["type"], "ack");
}

#[tokio::test]
async fn a_full_room_refuses_the_next_user_with_an_error_and_1008() {
    let server = ServerProcess::start_with(&["--memory", "--chat-max-users", "2"]);
    let mut a = join(&server, "small").await;
    let _b = join(&server, "small").await;
    next_of(&mut a.client, "admin").await;
    let mut c = Client::connect_with(&server.ws("/rooms/chat/small"), options(&[])).await.unwrap();
    let error = next(&mut c).await;
    assert_eq!((error["type"].as_str(), error["code"].as_str()), (Some("error"), Some("room_full")));
    match tokio::time::timeout(WAIT, c.recv()).await.unwrap() {
        Ok(Some(Event::Close(frame))) => assert_eq!(frame.code.map(|c| c.as_u16()), Some(1008)),
        other => panic!("expected a close frame, got {other:?}"),
    }
    // a heard nothing about the refused connection: its next message is from b.
    say(&mut a, "still two of us", "x").await;
    assert_eq!(next(&mut a.client).await["type"], "ack");
}

#[tokio::test]
async fn history_is_kept_in_storage_across_a_restart_and_capped() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let mut server = ServerProcess::start_with(&["--data-dir", data, "--chat-history", "5"]);
    let mut a = join(&server, "log").await;
    for i in 1..=8 {
        say(&mut a, &format!("line {i}"), "r").await;
        let ack = next(&mut a.client).await;
        assert_eq!(ack["id"], format!("m{i}"));
    }
    server.terminate();

    let server = ServerProcess::start_with(&["--data-dir", data, "--chat-history", "5"]);
    let (mut b, first) = join_with(&server, "log", &[]).await;
    let messages = first[1]["messages"].as_array().unwrap();
    let texts: Vec<&str> = messages.iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["line 4", "line 5", "line 6", "line 7", "line 8"], "the newest five, oldest first");
    assert!(messages.iter().all(|m| m["type"] == "message" && m["from"]["name"] == a.name.as_str()));
    say(&mut b, "after the restart", "r").await;
    assert_eq!(next(&mut b.client).await["id"], "m9", "message ids continue across restarts");
}

#[tokio::test]
async fn leaving_is_announced_whether_closed_or_found_dead_by_the_heartbeat() {
    let server = ServerProcess::start_with(&["--memory", "--ping-interval", "200ms", "--pong-timeout", "300ms"]);
    let mut a = join(&server, "exits").await;
    let b = join(&server, "exits").await;
    let silent = join(&server, "exits").await;
    next_of(&mut a.client, "admin").await;
    next_of(&mut a.client, "admin").await;

    b.client.close(None, "bye").await.unwrap();
    let state = next(&mut a.client).await;
    assert_eq!(state["type"], "state");
    assert_eq!(state["count"], 2);
    let admin = next(&mut a.client).await;
    assert_eq!((admin["event"].as_str(), admin["user"]["id"].as_str()), (Some("left"), Some(b.id.as_str())));
    assert_eq!(admin["text"], format!("{} left", b.name));

    // `silent` never reads again, so it never answers the server's ping. `a`
    // keeps reading (and answering pings) while it waits.
    let admin = next_of(&mut a.client, "admin").await;
    assert_eq!((admin["event"].as_str(), admin["user"]["id"].as_str()), (Some("left"), Some(silent.id.as_str())));
    drop(silent);
}

#[tokio::test]
async fn countries_come_from_the_socket_or_a_trusted_proxy_only() {
    let (server, _db) = geo_server(&["--trusted-proxy", "127.0.0.0/8"]);
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[], "NZ"),
        (&[("X-Forwarded-For", "192.0.2.1, 203.0.113.7")], "DE"),
        (&[("X-Forwarded-For", "198.51.100.9")], "JP"),
        (&[("Forwarded", "for=\"[2001:db8::1]:443\";proto=https")], "FR"),
    ];
    for (headers, country) in cases {
        let (c, _) = join_with(&server, "geo", headers).await;
        assert_eq!(c.country, country, "headers {headers:?}");
    }
    // An unknown address is unknown, not an error.
    let (c, _) = join_with(&server, "geo", &[("X-Forwarded-For", "192.0.2.1")]).await;
    assert!(c.country.is_null());

    // Without --trusted-proxy the header is the client's own claim: ignored.
    let (untrusting, _db2) = geo_server(&[]);
    let (c, _) = join_with(&untrusting, "geo", &[("X-Forwarded-For", "203.0.113.7")]).await;
    assert_eq!(c.country, "NZ");
}

#[tokio::test]
async fn a_missing_geo_database_means_unknown_countries_not_a_failure() {
    let server = ServerProcess::start_with(&["--memory", "--geo-db", "/nonexistent/geo.mmdb"]);
    let c = join(&server, "nogeo").await;
    assert!(c.country.is_null());
    // An unreadable file among several is skipped; the others still answer.
    let (server, _db) = geo_server(&["--geo-db", "/nonexistent/geo-ipv6.mmdb"]);
    assert_eq!(join(&server, "somegeo").await.country, "NZ");
}

#[tokio::test]
async fn every_acknowledged_message_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let flags = ["--data-dir", data, "--chat-history", "5000", "--chat-rate", "10000", "--chat-burst", "10000"];
    let mut server = ServerProcess::start_with(&flags);
    let mut sender = join(&server, "crash").await;
    let _listener = join(&server, "crash").await;
    // Far more messages than are read back before the kill, so the kill
    // lands while messages are still being handled, stored and acked.
    const SENT: usize = 2000;
    for i in 0..SENT {
        say(&mut sender, &format!("line {i}"), &i.to_string()).await;
    }
    let mut acked = Vec::new();
    while acked.len() < 300 {
        let message = next(&mut sender.client).await;
        match message["type"].as_str() {
            Some("ack") => acked.push((message["ref"].as_str().unwrap().to_owned(), message["id"].as_str().unwrap().to_owned())),
            Some("state" | "admin") => {}
            _ => panic!("unexpected {message}"),
        }
    }
    server.kill9();

    let server = ServerProcess::start_with(&flags);
    let (_reader, first) = join_with(&server, "crash", &[]).await;
    let history: HashSet<(String, String)> = first[1]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["text"].as_str().unwrap().to_owned(), m["id"].as_str().unwrap().to_owned()))
        .collect();
    for (r#ref, id) in &acked {
        assert!(history.contains(&(format!("line {ref}"), id.clone())), "acked message {id} (ref {ref}) is in the history after kill -9");
    }
    assert!(history.len() >= acked.len() && history.len() <= SENT);
}
