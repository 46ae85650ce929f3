//! Shared tables against a real nats-server: one winner of racing
//! creates, compare-and-set updates and deletes, a follower's replay and
//! live changes, and a follower that carries on after a NATS restart.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchboard_cluster::testing::NatsServer;
use switchboard_cluster::{Change, ClusterSettings, Table, Tables};

/// How long a change may take to reach a follower.
const SPREAD: Duration = Duration::from_secs(5);

async fn table(server: &NatsServer, name: &str) -> Table {
    let tables = Tables::connect(ClusterSettings::new(vec![server.url()], "tables-test")).await.expect("connect");
    tables.open(name).await.expect("open")
}

/// A follower's copy: key → (value, revision).
type Copy = Arc<Mutex<BTreeMap<String, (String, u64)>>>;

fn copying(copy: &Copy) -> impl FnMut(Change) + Send + 'static {
    let copy = copy.clone();
    move |change| {
        let mut copy = copy.lock().unwrap();
        match change {
            Change::Put { key, value, revision } => drop(copy.insert(key, (String::from_utf8(value.to_vec()).unwrap(), revision))),
            Change::Delete { key, .. } => drop(copy.remove(&key)),
        }
    }
}

fn value(copy: &Copy, key: &str) -> Option<String> {
    copy.lock().unwrap().get(key).map(|(v, _)| v.clone())
}

#[tokio::test]
async fn of_racing_creates_of_one_key_exactly_one_wins() {
    let server = NatsServer::start();
    let tables: Vec<Table> = futures_util::future::join_all((0..2).map(|_| table(&server, "race"))).await;
    for round in 0..5 {
        let key = format!("k{round}");
        let creates = (0..10).map(|i| tables[i % 2].create(&key, format!("v{i}").into_bytes().into()));
        let results = futures_util::future::join_all(creates).await;
        let won: Vec<u64> = results.into_iter().filter_map(Result::unwrap).collect();
        assert_eq!(won.len(), 1, "round {round}: {won:?}");
    }
}

#[tokio::test]
async fn updates_and_deletes_expect_the_revision_read_and_a_deleted_key_can_be_created_again() {
    let server = NatsServer::start();
    let table = table(&server, "cas").await;
    let first = table.create("k", "a".as_bytes().into()).await.unwrap().unwrap();
    assert_eq!(table.create("k", "b".as_bytes().into()).await.unwrap(), None, "taken");
    let second = table.update("k", "b".as_bytes().into(), first).await.unwrap().expect("at the revision read");
    assert_eq!(table.update("k", "c".as_bytes().into(), first).await.unwrap(), None, "a stale revision");
    assert!(!table.delete("k", first).await.unwrap(), "a stale revision");
    assert_eq!(table.entry("k").await.unwrap(), Some(("b".as_bytes().into(), second)));
    assert!(table.delete("k", second).await.unwrap());
    assert_eq!(table.entry("k").await.unwrap(), None);
    assert!(table.create("k", "d".as_bytes().into()).await.unwrap().is_some(), "free again after a delete");
}

#[tokio::test]
async fn a_follower_replays_the_table_then_follows_it_through_a_nats_restart() {
    let mut server = NatsServer::start();
    let writer = table(&server, "follow").await;
    for key in ["a", "b", "c"] {
        writer.create(key, key.as_bytes().into()).await.unwrap().unwrap();
    }
    let (_, b) = writer.entry("b").await.unwrap().unwrap();
    assert!(writer.delete("b", b).await.unwrap());

    let copy = Copy::default();
    let follower = table(&server, "follow").await.follow(copying(&copy)).await.unwrap();
    let replayed: Vec<String> = copy.lock().unwrap().keys().cloned().collect();
    assert_eq!(replayed, ["a", "c"], "everything stored before `follow` is there when it returns");

    let revision = writer.create("d", "d".as_bytes().into()).await.unwrap().unwrap();
    assert!(follower.wait_until(SPREAD, |applied| applied >= revision).await);
    assert_eq!(value(&copy, "d").as_deref(), Some("d"));

    server.restart();
    let started = tokio::time::Instant::now();
    let revision = loop {
        match writer.create("e", "e".as_bytes().into()).await {
            Ok(Some(revision)) => break revision,
            other => assert!(started.elapsed() < Duration::from_secs(15), "writing after the restart: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(follower.wait_until(SPREAD, |applied| applied >= revision).await, "the follower carries on after the restart");
    assert_eq!(value(&copy, "e").as_deref(), Some("e"));
    assert_eq!(value(&copy, "a").as_deref(), Some("a"));
}
