//! A slow store holds up only the room whose writes it is committing: with
//! one room's commits stuck behind a gate (a disk that stopped answering),
//! that room still handles events and reads its own writes, other rooms of
//! the same kind get their acknowledgements, echo rooms keep answering, and
//! the stuck room's acknowledgement leaves once its commit returns.

use std::sync::Arc;
use std::time::Duration;

use switchboard_client::{Client, Message};
use switchboard_room::testing::GatedStore;
use switchboard_room::{ConnId, Ctx, Room, RoomStorage};
use switchboard_server::{Server, ServerConfig};
use switchboard_store::Store;
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(10);

/// `put K` stores K and answers `stored K` after the commit; `get K`
/// answers at once with what a read of K returns.
struct Ledger;

impl Room for Ledger {
    fn on_message(&mut self, ctx: &mut Ctx<'_>, conn: ConnId, message: Message) {
        let text = message.as_text().unwrap_or_default().to_owned();
        if let Some(key) = text.strip_prefix("put ") {
            ctx.storage().put(key, b"1");
            ctx.send_after_commit(conn, Message::text(format!("stored {key}")));
        } else if let Some(key) = text.strip_prefix("get ") {
            let found = ctx.storage().get(key).unwrap().is_some();
            ctx.send(conn, Message::text(format!("{key}: {found}")));
        }
    }
}

async fn reply(client: &mut Client) -> String {
    let message = tokio::time::timeout(WAIT, client.recv_message()).await.expect("a reply in time").unwrap();
    message.as_text().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_waiting_on_a_slow_store_holds_up_no_other_room() {
    let store = Arc::new(GatedStore::closed_for("ledger/slow"));
    let mut server = Server::bind_with_store("127.0.0.1:0".parse().unwrap(), ServerConfig::default(), store.clone()).await.unwrap();
    server.add_room_kind("ledger", &[], Arc::new(|_: &str, _: &RoomStorage<'_>| Box::new(Ledger) as Box<dyn Room>)).unwrap();
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(server.run(stopped));
    let url = |path: &str| format!("ws://{addr}{path}");

    let mut slow = Client::connect(&url("/rooms/ledger/slow")).await.unwrap();
    slow.send_text("put a").await.unwrap();
    slow.send_text("put b").await.unwrap();

    // The slow connection's messages reach the room on its own task, so the
    // reader asks until the room has handled them (bounded).
    let mut reader = Client::connect(&url("/rooms/ledger/slow")).await.unwrap();
    let mut seen = String::new();
    for _ in 0..200 {
        reader.send_text("get b").await.unwrap();
        seen = reply(&mut reader).await;
        if seen == "b: true" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen, "b: true", "the stuck room handles events and reads its own writes");

    let mut fast = Client::connect(&url("/rooms/ledger/fast")).await.unwrap();
    for i in 0..20 {
        fast.send_text(&format!("put k{i}")).await.unwrap();
        assert_eq!(reply(&mut fast).await, format!("stored k{i}"), "another room's commits are not stuck behind it");
    }
    let mut echo = Client::connect(&url("/rooms/echo/meanwhile")).await.unwrap();
    for i in 0..200 {
        echo.send_text(&format!("ping {i}")).await.unwrap();
        assert_eq!(reply(&mut echo).await, format!("ping {i}"));
    }
    assert!(tokio::time::timeout(Duration::from_millis(100), slow.recv_message()).await.is_err(), "no ack before the commit");
    assert!(store.committed().get("ledger/slow", "a").unwrap().is_none());

    store.open();
    assert_eq!(reply(&mut slow).await, "stored a");
    assert_eq!(reply(&mut slow).await, "stored b");
    assert!(store.committed().get("ledger/slow", "b").unwrap().is_some());

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(15), task).await.expect("server stopped").unwrap();
}
