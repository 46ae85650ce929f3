//! The call's rules (docs/call.md) on a real room actor, through the room
//! test kit: who is told what when a peer joins, changes its state and
//! leaves (closed or dropped); signals relayed only to their target, with
//! the sender's id and the payload unchanged; every refusal, and that a
//! refused signal reaches nobody; the capacity; the ICE servers and TURN
//! credentials in `joined`; peers kept across a hibernation.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha1::Sha1;
use switchboard_apps::call::{factory, new_peer_id, IceConfig, TurnSecret};
use switchboard_apps::CallConfig;
use switchboard_room::testing::{TestConn, TestRoom};
use switchboard_room::{CloseCode, Closed, Message, RoomConfig};
use switchboard_store::MemoryStore;

mod support;
use support::{take, types};

fn call(id: &str, config: CallConfig) -> TestRoom {
    TestRoom::new("call", id, factory(config))
}

/// A peer in a test: its connection and id.
struct Peer {
    conn: TestConn,
    id: String,
}

/// Joins and reads the newcomer's `joined`.
async fn join(room: &TestRoom) -> (Peer, Value) {
    let conn = room.join().await;
    room.settle().await;
    let got = take(&conn);
    assert_eq!(types(&got), ["joined"], "{got:?}");
    let joined = got.into_iter().next().unwrap();
    let id = joined["id"].as_str().expect("an id").to_owned();
    (Peer { conn, id }, joined)
}

fn signal(to: &str, data: Value) -> String {
    json!({"type": "signal", "to": to, "data": data}).to_string()
}

/// The one `error` `conn` received since the last look.
fn the_error(conn: &TestConn) -> Value {
    let got = take(conn);
    assert_eq!(types(&got), ["error"], "{got:?}");
    let error = got.into_iter().next().unwrap();
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "an error says why: {error}");
    error
}

fn peer_json(id: &str, name: &str, muted: bool, camera_off: bool) -> Value {
    json!({"id": id, "name": name, "muted": muted, "cameraOff": camera_off})
}

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test]
async fn a_newcomer_gets_joined_with_the_peers_there_and_the_others_get_peer_joined() {
    let config = CallConfig { max_peers: 5, max_signal_bytes: 4000, per_second: 7, burst: 30, max_name_length: 20, ..CallConfig::default() };
    let room = call("standup", config);
    let (a, joined_a) = join(&room).await;
    let limits = json!({"maxPeers": 5, "maxSignalBytes": 4000, "perSecond": 7, "burst": 30, "maxNameLength": 20});
    let ice = json!({"iceServers": [], "expires": null});
    assert_eq!(joined_a, json!({"type": "joined", "id": a.id, "room": "standup", "peers": [], "ice": ice, "limits": limits}));
    assert!(a.id.len() == 32 && a.id.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "128 bits in hex: {}", a.id);

    let (b, joined_b) = join(&room).await;
    assert_ne!(a.id, b.id);
    assert_eq!(joined_b["peers"], json!([peer_json(&a.id, "", false, false)]));
    assert_eq!(take(&a.conn), [json!({"type": "peer-joined", "peer": peer_json(&b.id, "", false, false)})]);

    let (c, joined_c) = join(&room).await;
    assert_eq!(joined_c["peers"], json!([peer_json(&a.id, "", false, false), peer_json(&b.id, "", false, false)]), "in join order");
    for other in [&a, &b] {
        assert_eq!(take(&other.conn), [json!({"type": "peer-joined", "peer": peer_json(&c.id, "", false, false)})]);
    }
}

#[tokio::test]
async fn peer_ids_are_random_128_bit_numbers() {
    let ids: HashSet<String> = (0..10_000).map(|_| new_peer_id()).collect();
    assert_eq!(ids.len(), 10_000);
    assert!(ids.iter().all(|id| id.len() == 32 && u128::from_str_radix(id, 16).is_ok()));
    // Every hex digit position varies: not a counter with a random prefix.
    for position in 0..32 {
        let digits: HashSet<char> = ids.iter().map(|id| id.as_bytes()[position] as char).collect();
        assert_eq!(digits.len(), 16, "position {position}");
    }
}

#[tokio::test]
async fn a_signal_goes_only_to_its_target_with_the_senders_id_and_the_data_unchanged() {
    let room = call("relay", CallConfig::default());
    let (a, _) = join(&room).await;
    let (b, _) = join(&room).await;
    let (c, _) = join(&room).await;
    for peer in [&a, &b, &c] {
        let _ = take(&peer.conn);
    }

    // Raw text, so the test sees that the data is relayed byte for byte
    // (key order, escapes and white space included).
    let data = r#"{"type":"offer", "sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n\u00e9"}"#;
    a.conn.say(&format!(r#"{{"type":"signal","to":"{}","data":{data}}}"#, b.id)).await;
    room.settle().await;
    assert_eq!(b.conn.take_texts(), [format!(r#"{{"type":"signal","from":"{}","data":{data}}}"#, a.id)]);
    assert!(take(&a.conn).is_empty(), "the sender hears nothing back");
    assert!(take(&c.conn).is_empty(), "a third peer hears nothing");

    // Any JSON but null is data: a candidate object, a string, a number.
    c.conn.say(&signal(&a.id, json!({"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host", "sdpMid": "0"}))).await;
    c.conn.say(&signal(&a.id, json!("end-of-candidates"))).await;
    room.settle().await;
    let got = take(&a.conn);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0]["data"]["sdpMid"], "0");
    assert_eq!((&got[1]["from"], &got[1]["data"]), (&json!(c.id), &json!("end-of-candidates")));
    assert!(take(&b.conn).is_empty());
}

#[tokio::test]
async fn no_peer_can_send_as_another() {
    let room = call("masks", CallConfig::default());
    let (a, _) = join(&room).await;
    let (b, _) = join(&room).await;
    let (c, _) = join(&room).await;
    for peer in [&a, &b, &c] {
        let _ = take(&peer.conn);
    }
    // C claims to be A: the `from` it wrote is ignored, B sees C's id.
    c.conn.say(&json!({"type": "signal", "to": b.id, "from": a.id, "data": {"type": "offer", "sdp": "x"}}).to_string()).await;
    room.settle().await;
    let got = take(&b.conn);
    assert_eq!(got, [json!({"type": "signal", "from": c.id, "data": {"type": "offer", "sdp": "x"}})]);
    assert!(take(&a.conn).is_empty() && take(&c.conn).is_empty());
}

#[tokio::test]
async fn unknown_targets_get_an_error_and_nothing_is_relayed() {
    let room = call("lost", CallConfig::default());
    let (a, _) = join(&room).await;
    let (b, _) = join(&room).await;
    let _ = take(&a.conn);
    for to in [new_peer_id(), a.id.clone(), String::new(), "x".repeat(300)] {
        a.conn.say(&signal(&to, json!({"type": "offer", "sdp": "x"}))).await;
        room.settle().await;
        let error = the_error(&a.conn);
        assert_eq!((&error["code"], &error["to"]), (&json!("unknown_target"), &json!(to)), "{error}");
    }
    // A peer that left is unknown from then on.
    b.conn.leave(CloseCode::NORMAL).await;
    room.settle().await;
    assert_eq!(take(&a.conn), [json!({"type": "peer-left", "id": b.id})]);
    a.conn.say(&signal(&b.id, json!({"candidate": ""}))).await;
    room.settle().await;
    assert_eq!(the_error(&a.conn)["code"], "unknown_target");
    assert!(take(&b.conn).is_empty(), "nothing reached the one who left");
}

#[tokio::test]
async fn oversized_signals_get_an_error_and_nothing_is_relayed() {
    let room = call("big", CallConfig { max_signal_bytes: 1000, ..CallConfig::default() });
    let (a, _) = join(&room).await;
    let (b, _) = join(&room).await;
    let _ = take(&a.conn);
    // The limit is on the data's JSON text: 1000 bytes pass, 1001 do not.
    let fits = json!("x".repeat(998));
    assert_eq!(fits.to_string().len(), 1000);
    a.conn.say(&signal(&b.id, fits.clone())).await;
    room.settle().await;
    assert_eq!(take(&b.conn), [json!({"type": "signal", "from": a.id, "data": fits})]);
    a.conn.say(&signal(&b.id, json!("x".repeat(999)))).await;
    room.settle().await;
    let error = the_error(&a.conn);
    assert_eq!(error["code"], "too_large");
    assert!(error["message"].as_str().unwrap().contains("1000"), "{error}");
    // Far over the limit: refused before it is parsed (it is not even JSON).
    a.conn.say(&format!("{{\"type\":\"signal\",\"to\":\"{}\",\"data\":\"{}", b.id, "y".repeat(100_000))).await;
    room.settle().await;
    assert_eq!(the_error(&a.conn)["code"], "too_large");
    assert!(take(&b.conn).is_empty(), "nothing oversized was relayed");
}

#[tokio::test]
async fn too_frequent_messages_get_an_error_after_the_burst_and_nothing_is_relayed() {
    let room = call("flood", CallConfig { per_second: 1, burst: 5, ..CallConfig::default() });
    let (a, _) = join(&room).await;
    let (b, _) = join(&room).await;
    let _ = take(&a.conn);
    for i in 0..8 {
        a.conn.say(&signal(&b.id, json!({"n": i}))).await;
    }
    room.settle().await;
    let relayed: Vec<Value> = take(&b.conn).into_iter().map(|m| m["data"]["n"].clone()).collect();
    assert_eq!(relayed, [0, 1, 2, 3, 4], "the burst, then nothing");
    let errors = take(&a.conn);
    assert_eq!(errors.len(), 3);
    assert!(errors.iter().all(|e| e["type"] == "error" && e["code"] == "rate_limited"), "{errors:?}");
    // State changes count too: they are broadcast to everyone.
    a.conn.say(r#"{"type":"state","muted":true}"#).await;
    room.settle().await;
    assert_eq!(the_error(&a.conn)["code"], "rate_limited");
    assert!(take(&b.conn).is_empty());
    // Another peer has a bucket of its own.
    b.conn.say(&signal(&a.id, json!({"n": "from b"}))).await;
    room.settle().await;
    assert_eq!(take(&a.conn)[0]["data"]["n"], "from b");
}

#[tokio::test]
async fn malformed_messages_get_bad_message_and_reach_nobody() {
    let room = call("junk", CallConfig::default());
    let (a, _) = join(&room).await;
    let (b, _) = join(&room).await;
    let _ = take(&a.conn);
    let cases = [
        "not json".to_owned(),
        "[]".to_owned(),
        json!({"type": "hello"}).to_string(),
        json!({"type": "signal", "to": b.id}).to_string(),
        json!({"type": "signal", "to": b.id, "data": null}).to_string(),
        json!({"type": "signal", "to": b.id, "data": {}, "extra": 1}).to_string(),
        json!({"type": "state", "muted": "yes"}).to_string(),
        json!({"type": "name", "name": "tab\there"}).to_string(),
    ];
    for case in &cases {
        a.conn.say(case).await;
        room.settle().await;
        assert_eq!(the_error(&a.conn)["code"], "bad_message", "{case}");
    }
    a.conn.send(Message::Binary(bytes_of(&signal(&b.id, json!({}))))).await;
    room.settle().await;
    assert_eq!(the_error(&a.conn)["code"], "bad_message", "binary messages are refused");
    assert!(take(&b.conn).is_empty());
}

fn bytes_of(text: &str) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(text.as_bytes())
}

#[tokio::test]
async fn state_and_name_changes_reach_the_others_and_newcomers() {
    let room = call("faces", CallConfig { max_name_length: 10, ..CallConfig::default() });
    let (a, _) = join(&room).await;
    let (b, _) = join(&room).await;
    let _ = take(&a.conn);

    a.conn.say(r#"{"type":"state","muted":true}"#).await;
    room.settle().await;
    assert_eq!(take(&b.conn), [json!({"type": "peer-state", "peer": peer_json(&a.id, "", true, false)})]);
    assert!(take(&a.conn).is_empty(), "no echo to the sender");

    a.conn.say(r#"{"type":"state","cameraOff":true}"#).await;
    a.conn.say(r#"{"type":"name","name":"  Ada L. "}"#).await;
    // Nothing changed: nothing is sent.
    a.conn.say(r#"{"type":"state","muted":true,"cameraOff":true}"#).await;
    room.settle().await;
    let got = take(&b.conn);
    assert_eq!(
        got,
        [
            json!({"type": "peer-state", "peer": peer_json(&a.id, "", true, true)}),
            json!({"type": "peer-state", "peer": peer_json(&a.id, "Ada L.", true, true)})
        ]
    );

    // Names: trimmed, at most 10 characters (not bytes).
    a.conn.say(r#"{"type":"name","name":"Ünïcødé ñä"}"#).await;
    room.settle().await;
    assert_eq!(take(&b.conn)[0]["peer"]["name"], "Ünïcødé ñä");
    a.conn.say(r#"{"type":"name","name":"eleven char"}"#).await;
    room.settle().await;
    let error = the_error(&a.conn);
    assert_eq!(error["code"], "too_large");
    assert!(take(&b.conn).is_empty());

    let (c, joined_c) = join(&room).await;
    assert_eq!(joined_c["peers"], json!([peer_json(&a.id, "Ünïcødé ñä", true, true), peer_json(&b.id, "", false, false)]));
    b.conn.say(r#"{"type":"state","cameraOff":true}"#).await;
    room.settle().await;
    let expected = json!({"type": "peer-state", "peer": peer_json(&b.id, "", false, true)});
    assert_eq!(take(&c.conn), std::slice::from_ref(&expected));
    assert_eq!(take(&a.conn), [json!({"type": "peer-joined", "peer": peer_json(&c.id, "", false, false)}), expected]);
}

#[tokio::test]
async fn a_full_call_refuses_the_next_peer_which_is_never_announced() {
    let room = call("small", CallConfig { max_peers: 2, ..CallConfig::default() });
    let (a, _) = join(&room).await;
    let (b, _) = join(&room).await;
    let _ = take(&a.conn);

    let late = room.join().await;
    room.settle().await;
    let got = take(&late);
    assert_eq!(got, [json!({"type": "error", "code": "room_full", "message": "this call is full (2 people)"})]);
    assert_eq!(late.closed().map(|(code, _)| code), Some(CloseCode::POLICY_VIOLATION));
    // The refused connection is still open until its close completes: it
    // cannot signal anyone meanwhile, and nobody hears of it.
    late.say(&signal(&a.id, json!({}))).await;
    room.settle().await;
    assert!(take(&late).is_empty());
    late.leave(CloseCode::POLICY_VIOLATION).await;
    room.settle().await;
    assert!(take(&a.conn).is_empty() && take(&b.conn).is_empty(), "no peer-joined or peer-left for a refused connection");

    // Many at once: only as many as there is room for are admitted.
    b.conn.leave(CloseCode::NORMAL).await;
    room.settle().await;
    assert_eq!(take(&a.conn), [json!({"type": "peer-left", "id": b.id})]);
    let burst: Vec<TestConn> = (0..4).map(|_| room.queue_open()).collect();
    room.settle().await;
    let admitted: Vec<&TestConn> = burst.iter().filter(|c| c.closed().is_none()).collect();
    assert_eq!(admitted.len(), 1);
    for refused in burst.iter().filter(|c| c.closed().is_some()) {
        assert_eq!(types(&take(refused)), ["error"], "a refused connection learns of no peer");
    }
    let first = take(admitted[0]);
    assert_eq!(types(&first), ["joined"]);
    assert_eq!(first[0]["peers"], json!([peer_json(&a.id, "", false, false)]));
    assert_eq!(types(&take(&a.conn)), ["peer-joined"]);
    // The refused ones, still open until their close completes, hear nothing.
    admitted[0].say(r#"{"type":"state","muted":true}"#).await;
    room.settle().await;
    assert_eq!(types(&take(&a.conn)), ["peer-state"]);
    assert!(burst.iter().all(|c| take(c).is_empty()));
}

#[tokio::test]
async fn peer_left_goes_to_the_others_whether_the_peer_closed_or_its_connection_died() {
    let room = call("exits", CallConfig::default());
    let (a, _) = join(&room).await;
    let (b, _) = join(&room).await;
    let (c, _) = join(&room).await;
    let _ = (take(&a.conn), take(&b.conn));

    b.conn.leave(CloseCode::NORMAL).await;
    room.settle().await;
    let left = json!({"type": "peer-left", "id": b.id});
    assert_eq!(take(&a.conn), std::slice::from_ref(&left));
    assert_eq!(take(&c.conn), [left]);

    // Found dead by the heartbeat: the server reports an abnormal close
    // with no close frame.
    let dead = Closed { code: Some(CloseCode::ABNORMAL), reason: String::new(), clean: false, attachment: None };
    room.handle().error(c.conn.id(), "no pong".into()).await.unwrap();
    room.handle().close(c.conn.id(), dead, Some(Duration::from_secs(10))).await.unwrap();
    room.settle().await;
    assert_eq!(take(&a.conn), [json!({"type": "peer-left", "id": c.id})]);
    let (_, joined_d) = join(&room).await;
    assert_eq!(joined_d["peers"], json!([peer_json(&a.id, "", false, false)]));
}

#[tokio::test]
async fn joined_carries_the_ice_servers_and_turn_credentials_for_the_peer() {
    let secret = "correct horse battery staple";
    let ice = IceConfig {
        stun: vec!["stun:stun.example.org:3478".into()],
        turn: vec!["turn:turn.example.org:3478".into(), "turns:turn.example.org:5349?transport=tcp".into()],
        turn_secret: TurnSecret::from_file_text(&format!("{secret}\n")),
        turn_ttl: Duration::from_secs(900),
    };
    let room = call("ice", CallConfig { ice, ..CallConfig::default() });
    let before = now_s();
    let (a, joined) = join(&room).await;
    let after = now_s();
    let servers = joined["ice"]["iceServers"].as_array().unwrap();
    assert_eq!(servers.len(), 2);
    assert_eq!(servers[0], json!({"urls": ["stun:stun.example.org:3478"]}));
    assert_eq!(servers[1]["urls"], json!(["turn:turn.example.org:3478", "turns:turn.example.org:5349?transport=tcp"]));
    let expires = joined["ice"]["expires"].as_u64().unwrap();
    assert!((before + 900..=after + 900).contains(&expires), "expires {expires}, joined between {before} and {after}");
    let username = servers[1]["username"].as_str().unwrap();
    assert_eq!(username, format!("{expires}:{}", a.id), "the username is expiry:peer");
    // The password, computed here from the secret as coturn does.
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(username.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(servers[1]["credential"], expected);

    // Each peer has credentials of its own.
    let (b, joined_b) = join(&room).await;
    let username_b = joined_b["ice"]["iceServers"][1]["username"].as_str().unwrap();
    assert!(username_b.ends_with(&format!(":{}", b.id)));
    assert_ne!(joined_b["ice"]["iceServers"][1]["credential"], servers[1]["credential"]);
}

#[tokio::test]
async fn peers_and_their_state_survive_a_hibernation() {
    let config = RoomConfig { hibernate_after: Duration::from_millis(20), ..RoomConfig::default() };
    let room = TestRoom::with("call", "sleepy", factory(CallConfig::default()), Arc::new(MemoryStore::new()), config);
    let (a, _) = join(&room).await;
    let (b, _) = join(&room).await;
    a.conn.say(r#"{"type":"name","name":"Ada"}"#).await;
    a.conn.say(r#"{"type":"state","muted":true}"#).await;
    room.settle().await;
    let _ = (take(&a.conn), take(&b.conn));
    assert!(room.wait_until_hibernated(Duration::from_millis(60)).await, "the room hibernates");

    b.conn.say(&signal(&a.id, json!({"type": "answer"}))).await;
    room.settle().await;
    assert_eq!(take(&a.conn), [json!({"type": "signal", "from": b.id, "data": {"type": "answer"}})]);
    let (_, joined_c) = join(&room).await;
    assert_eq!(joined_c["peers"], json!([peer_json(&a.id, "Ada", true, false), peer_json(&b.id, "", false, false)]));
    assert!(room.settle().await.wakeups >= 2);
}
