//! The clicks room on a real room actor, through the room test kit: who
//! may open a dashboard, the snapshot and the live clicks (a message per
//! group, `click` for a group of one), one storage
//! commit per group of clicks, the recent-click window, and the state after
//! hibernation and on a fresh actor over the same store.

mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use support::{take, types};
use switchboard_apps::clicks::{factory, LinkBook, LinkInfo, BLOCK, MAX_PER_MESSAGE, RECENT};
use switchboard_room::testing::{GatedStore, TestRoom};
use switchboard_room::{Decision, Identity, RoomConfig};
use switchboard_store::{commit_blocking, Batch, MemoryStore, Store, Write};

struct Book;

impl LinkBook for Book {
    fn links_of(&self, account: &str) -> Vec<LinkInfo> {
        vec![LinkInfo { slug: format!("{account}-link"), url: "https://example.com/".into(), ..LinkInfo::default() }]
    }
}

fn room_on(store: Arc<dyn switchboard_store::Store>, config: RoomConfig) -> TestRoom {
    TestRoom::with("clicks", "acme", factory(Arc::new(Book)), store, config)
}

fn config() -> RoomConfig {
    RoomConfig { hibernate_after: Duration::from_secs(60), ..RoomConfig::default() }
}

async fn dashboard(room: &TestRoom, account: &str) -> Result<switchboard_room::testing::TestConn, Decision> {
    let mut request = room.request();
    request.identity = Some(Identity { subject: account.to_owned(), claims: Vec::new() });
    room.try_join(request).await
}

fn click(slug: &str, country: Option<&str>, time: u64) -> Value {
    json!({"time": time, "slug": slug, "country": country, "city": country.map(|_| "Somewhere"), "lat": 1.5, "lon": 2.5, "referrer": null})
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

#[tokio::test]
async fn only_the_rooms_own_account_opens_a_dashboard() {
    let room = room_on(Arc::new(MemoryStore::new()), config());
    let refused = room.try_join(room.request()).await.err().expect("no identity, no dashboard");
    assert!(matches!(refused, Decision::Reject { status: 401, .. }), "{refused:?}");
    let refused = dashboard(&room, "other").await.err().expect("another account's identity");
    assert!(matches!(refused, Decision::Reject { status: 403, .. }), "{refused:?}");
    let conn = dashboard(&room, "acme").await.expect("its own account");
    room.settle().await;
    let snapshot = take(&conn);
    assert_eq!(types(&snapshot), ["snapshot"]);
    assert_eq!(snapshot[0]["account"], "acme");
    assert_eq!(snapshot[0]["links"], json!([{"slug": "acme-link", "url": "https://example.com/", "geo": {}, "created": 0, "clicks": 0}]));
}

#[tokio::test]
async fn a_group_of_clicks_is_pushed_live_and_committed_once() {
    let store = Arc::new(GatedStore::closed());
    store.open();
    let room = room_on(store.clone(), config());
    let a = dashboard(&room, "acme").await.unwrap();
    let b = dashboard(&room, "acme").await.unwrap();
    room.settle().await;
    take(&a);
    take(&b);
    let before = store.commits();
    let now = now_ms();
    let group: Vec<Value> = (0..50).map(|i| click("acme-link", Some(if i % 2 == 0 { "DE" } else { "JP" }), now)).collect();
    let response = room.http("POST", "/clicks", &Value::Array(group).to_string()).await;
    assert_eq!(response.status, 200);
    room.settle().await;
    assert_eq!(store.commits() - before, 1, "fifty clicks, one transaction");
    for conn in [&a, &b] {
        let got = take(conn);
        assert_eq!(types(&got), ["clicks"], "a group is one message");
        let clicks = got[0]["clicks"].as_array().unwrap();
        assert_eq!(clicks.len(), 50, "every click of the group is in it");
        assert_eq!(clicks[0], json!({"time": now, "slug": "acme-link", "country": "DE", "city": "Somewhere", "lat": 1.5, "lon": 2.5, "referrer": null}));
        assert_eq!(clicks[1]["country"], "JP");
        assert_eq!(got[0]["total"], 50, "the total after the group");
        assert_eq!(got[0].as_object().unwrap().len(), 3, "type, clicks and total: {:?}", got[0].as_object().unwrap().keys());
    }
    // A group of one keeps the `click` message.
    let one = room.http("POST", "/clicks", &json!([click("acme-link", Some("DE"), now + 1)]).to_string()).await;
    assert_eq!(one.status, 200);
    room.settle().await;
    assert_eq!(
        take(&a),
        [
            json!({"type": "click", "time": now + 1, "slug": "acme-link", "country": "DE", "city": "Somewhere", "lat": 1.5, "lon": 2.5, "referrer": null, "total": 51})
        ]
    );
    take(&b);
    // A list longer than one message may hold is split, in order.
    let long: Vec<Value> = (0..MAX_PER_MESSAGE as u64 + 4).map(|i| click("acme-link", Some("FR"), now + 10 + i)).collect();
    room.http("POST", "/clicks", &Value::Array(long).to_string()).await;
    room.settle().await;
    let got = take(&a);
    assert_eq!(types(&got), ["clicks", "clicks"]);
    assert_eq!(got[0]["clicks"].as_array().unwrap().len(), MAX_PER_MESSAGE);
    assert_eq!((got[0]["total"].as_u64(), got[1]["total"].as_u64()), (Some(51 + MAX_PER_MESSAGE as u64), Some(51 + MAX_PER_MESSAGE as u64 + 4)));
    let times: Vec<u64> = got.iter().flat_map(|m| m["clicks"].as_array().unwrap().iter().map(|c| c["time"].as_u64().unwrap())).collect();
    assert_eq!(times, (0..MAX_PER_MESSAGE as u64 + 4).map(|i| now + 10 + i).collect::<Vec<_>>());
    take(&b);

    let report: Value = serde_json::from_slice(&room.http("GET", "/links/acme-link", "").await.body).unwrap();
    let fr = MAX_PER_MESSAGE as u64 + 4;
    assert_eq!(report["total"], 51 + fr);
    assert_eq!(report["countries"], json!({"DE": 26, "JP": 25, "FR": fr}));
    assert_eq!(report["cities"], json!({"DE/Somewhere": 26, "JP/Somewhere": 25, "FR/Somewhere": fr}));
    let totals: Value = serde_json::from_slice(&room.http("GET", "/totals", "").await.body).unwrap();
    assert_eq!(totals, json!({"acme-link": 51 + fr}));
    let bad = room.http("POST", "/clicks", "{not json").await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn the_feed_keeps_the_last_thousand_and_everything_survives_hibernation_and_a_new_actor() {
    let store: Arc<MemoryStore> = Arc::new(MemoryStore::new());
    let short = RoomConfig { hibernate_after: Duration::from_millis(50), ..RoomConfig::default() };
    let room = room_on(store.clone(), short);
    // A dashboard stays connected while the room sleeps, as in a browser.
    let watching = dashboard(&room, "acme").await.unwrap();
    let now = now_ms();
    for chunk in 0..3 {
        let group: Vec<Value> = (0..500).map(|i| click("acme-link", Some("FR"), now + chunk * 500 + i)).collect();
        room.http("POST", "/clicks", &Value::Array(group).to_string()).await;
    }
    room.settle().await;
    // 1,500 clicks in blocks of 64: blocks 0-23; those holding none of
    // the last thousand go (the first 7, clicks 0-447).
    let blocks = store.list("clicks/acme", "rb/", 5000).unwrap();
    let stored: usize = blocks.iter().map(|(_, b)| serde_json::from_slice::<Vec<Value>>(b).unwrap().len()).sum();
    assert_eq!(blocks.len(), 17, "older blocks leave storage");
    assert!((RECENT..RECENT + BLOCK as usize).contains(&stored), "{stored} clicks stored");
    assert_eq!(blocks.first().unwrap().0, "rb/00000000000000000007");
    assert!(room.wait_until_hibernated(Duration::from_millis(120)).await);
    let seen = take(&watching);
    assert_eq!(types(&seen), ["snapshot", "clicks", "clicks", "clicks"], "the snapshot and a message per group");
    let times: Vec<u64> = seen[1..].iter().flat_map(|m| m["clicks"].as_array().unwrap().iter().map(|c| c["time"].as_u64().unwrap())).collect();
    assert_eq!(times, (0..1500).map(|i| now + i).collect::<Vec<_>>(), "every click, in order");

    let conn = dashboard(&room, "acme").await.unwrap();
    room.settle().await;
    let snapshot = take(&conn).remove(0);
    assert_eq!(snapshot["total"], 1500);
    assert_eq!(snapshot["countries"], json!({"FR": 1500}));
    let recent = snapshot["recent"].as_array().unwrap();
    assert_eq!(recent.len(), RECENT);
    assert_eq!(recent[0]["time"], now + 500, "oldest kept first");
    assert_eq!(recent[RECENT - 1]["time"], now + 1499);
    let series: u64 = snapshot["series"].as_array().unwrap().iter().map(|p| p[1].as_u64().unwrap()).sum();
    assert_eq!(series, 1500);
    assert_eq!(snapshot["links"][0]["clicks"], 1500);

    // A new actor over the same store, as after a restart.
    let again = room_on(store.clone(), config());
    let conn = dashboard(&again, "acme").await.unwrap();
    again.settle().await;
    let snapshot = take(&conn).remove(0);
    assert_eq!(snapshot["total"], 1500);
    assert_eq!(snapshot["recent"].as_array().unwrap().len(), RECENT);
    again.http("POST", "/clicks", &json!([click("acme-link", None, now + 2000)]).to_string()).await;
    again.settle().await;
    let live = take(&conn);
    assert_eq!((live[0]["type"].as_str(), live[0]["total"].as_u64()), (Some("click"), Some(1501)), "numbering goes on");
}

#[tokio::test]
async fn deleting_a_link_forgets_its_counts_and_tells_the_dashboards() {
    let room = room_on(Arc::new(MemoryStore::new()), config());
    let conn = dashboard(&room, "acme").await.unwrap();
    room.http("POST", "/clicks", &json!([click("gone", Some("DE"), now_ms())]).to_string()).await;
    room.settle().await;
    take(&conn);
    assert_eq!(room.http("DELETE", "/links/gone", "").await.status, 200);
    room.settle().await;
    assert_eq!(types(&take(&conn)), ["links"]);
    let report: Value = serde_json::from_slice(&room.http("GET", "/links/gone", "").await.body).unwrap();
    assert_eq!(report["total"], 0);
    assert_eq!(room.store().get("clicks/acme", "link/gone").unwrap(), None);
    conn.say("hello").await;
    room.settle().await;
    assert_eq!(types(&take(&conn)), ["error"], "dashboards only receive");
}

/// A room stored before recent clicks went into blocks (one click a key
/// under `r/`) shows them, and moves them into blocks with its next group.
#[tokio::test]
async fn recent_clicks_stored_one_a_key_move_into_blocks() {
    let store: Arc<MemoryStore> = Arc::new(MemoryStore::new());
    let now = now_ms();
    let writes = (0..3u64).map(|i| Write::Put(format!("r/{i:020}"), click("acme-link", Some("DE"), now + i).to_string().into_bytes())).collect();
    commit_blocking(&*store, Batch { room: "clicks/acme".into(), writes }).unwrap();
    let room = room_on(store.clone(), config());
    let conn = dashboard(&room, "acme").await.unwrap();
    room.settle().await;
    let snapshot = take(&conn).remove(0);
    let times: Vec<u64> = snapshot["recent"].as_array().unwrap().iter().map(|c| c["time"].as_u64().unwrap()).collect();
    assert_eq!(times, [now, now + 1, now + 2]);

    room.http("POST", "/clicks", &json!([click("acme-link", Some("FR"), now + 3)]).to_string()).await;
    room.settle().await;
    assert!(store.list("clicks/acme", "r/", 10).unwrap().is_empty(), "the old keys are gone");
    let blocks = store.list("clicks/acme", "rb/", 10).unwrap();
    assert_eq!(blocks.len(), 1);
    let stored: Vec<Value> = serde_json::from_slice(&blocks[0].1).unwrap();
    let times: Vec<u64> = stored.iter().map(|c| c["time"].as_u64().unwrap()).collect();
    assert_eq!(times, [now, now + 1, now + 2, now + 3]);

    // A new actor reads the blocks, and numbers new clicks after them.
    let again = room_on(store.clone(), config());
    again.http("POST", "/clicks", &json!([click("acme-link", Some("FR"), now + 4)]).to_string()).await;
    again.settle().await;
    let blocks = store.list("clicks/acme", "rb/", 10).unwrap();
    let stored: Vec<Value> = serde_json::from_slice(&blocks[0].1).unwrap();
    assert_eq!(stored.len(), 5, "all five in the first block of {BLOCK}");
}
