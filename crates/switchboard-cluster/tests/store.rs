//! Room storage in JetStream against a real nats-server: the store
//! contract, hand-over between nodes, fencing, compaction, alarms and a
//! NATS restart.

use std::time::Duration;

use futures_util::StreamExt;

use switchboard_cluster::testing::NatsServer;
use switchboard_cluster::{Claim, Cluster, ClusterSettings, JetStreamStore, Lease, StoreOptions};
use switchboard_store::{Batch, Store, StoreResult, Write};

/// The default lease TTL (3 s): these tests hold leases while they work,
/// and a busy machine must not cost them a renewal.
async fn node(server: &NatsServer, name: &str) -> Cluster {
    Cluster::connect(ClusterSettings::new(vec![server.url()], name)).await.expect("connect")
}

async fn own(cluster: &Cluster, room: &str) -> Lease {
    for _ in 0..200 {
        if let Claim::Owned(lease) = cluster.claim(room).await.unwrap() {
            return lease;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} could not claim {room}", cluster.node());
}

async fn commit(store: &JetStreamStore, room: &str, writes: Vec<Write>) -> StoreResult<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    store.commit(
        Batch { room: room.into(), writes },
        Box::new(move |result| {
            let _ = tx.send(result);
        }),
    );
    tokio::time::timeout(Duration::from_secs(30), rx).await.expect("commit reported in time").expect("commit reported")
}

fn put(key: &str, value: &str) -> Write {
    Write::Put(key.into(), value.as_bytes().to_vec())
}

fn get(store: &JetStreamStore, room: &str, key: &str) -> Option<String> {
    store.get(room, key).unwrap().map(|v| String::from_utf8(v).unwrap())
}

/// Messages the stream holds on `room`'s subject.
async fn messages_of(cluster: &Cluster, room: &str) -> u64 {
    let subject = format!("switchboard.store.{}", switchboard_cluster::names::encode_room(room));
    let stream = cluster.jetstream().get_stream("switchboard_store").await.unwrap();
    let mut subjects = stream.info_with_subjects(subject.as_str()).await.unwrap();
    let mut count = 0;
    while let Some(entry) = subjects.next().await {
        let (name, n) = entry.unwrap();
        if name == subject {
            count = n as u64;
        }
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jetstream_store_meets_the_store_contract() {
    let server = NatsServer::start();
    let cluster = node(&server, "a").await;
    let store = JetStreamStore::new(&cluster);
    let mut leases = Vec::new();
    for room in switchboard_store::contract::ROOMS {
        let lease = own(&cluster, room).await;
        store.load_room(&lease).await.unwrap();
        leases.push(lease);
    }
    let checked = store.clone();
    tokio::task::spawn_blocking(move || switchboard_store::contract::check(&checked)).await.unwrap();
    assert!(leases.iter().all(Lease::is_held));
    assert!(cluster.stats().round_trips > 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_that_are_not_loaded_refuse_reads_and_writes() {
    let server = NatsServer::start();
    let cluster = node(&server, "a").await;
    let store = JetStreamStore::new(&cluster);
    let err = store.get("chat/x", "k").unwrap_err();
    assert!(err.0.contains("not loaded"), "{err}");
    assert!(commit(&store, "chat/x", vec![put("k", "v")]).await.unwrap_err().0.contains("not loaded"));
    let lease = own(&cluster, "chat/x").await;
    store.load_room(&lease).await.unwrap();
    assert!(store.is_loaded("chat/x"));
    assert_eq!(store.get("chat/x", "k").unwrap(), None);
    store.forget_room("chat/x");
    assert!(store.get("chat/x", "k").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_tells_a_room_with_messages_from_one_never_written_without_claiming_it() {
    let server = NatsServer::start();
    let (a, b) = (node(&server, "a").await, node(&server, "b").await);
    let (store_a, store_b) = (JetStreamStore::new(&a), JetStreamStore::new(&b));
    assert!(!store_b.has_messages("chat/written").await.unwrap());
    let lease = own(&a, "chat/written").await;
    store_a.load_room(&lease).await.unwrap();
    commit(&store_a, "chat/written", vec![put("k", "v")]).await.unwrap();
    assert!(store_b.has_messages("chat/written").await.unwrap());
    assert!(!store_b.has_messages("chat/never").await.unwrap());
    assert_eq!(messages_of(&b, "chat/never").await, 0, "asking wrote nothing");
    assert_eq!(b.owner("chat/never").await.unwrap(), None, "and claimed nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_acknowledged_on_one_node_is_read_on_the_next_owner() {
    let server = NatsServer::start();
    let (a, b) = (node(&server, "a").await, node(&server, "b").await);
    let (store_a, store_b) = (JetStreamStore::new(&a), JetStreamStore::new(&b));
    let lease = own(&a, "chat/lobby").await;
    store_a.load_room(&lease).await.unwrap();
    commit(&store_a, "chat/lobby", vec![put("msg/1", "hello"), put("msg/2", "world"), Write::SetAlarm("tick".into(), 42)])
        .await
        .unwrap();
    commit(&store_a, "chat/lobby", vec![Write::Delete("msg/2".into()), put("msg/3", "again")]).await.unwrap();
    assert_eq!(get(&store_a, "chat/lobby", "msg/3").as_deref(), Some("again"), "an acknowledged write shows in reads at once");
    store_a.forget_room("chat/lobby");
    lease.release().await.unwrap();

    let lease = own(&b, "chat/lobby").await;
    store_b.load_room(&lease).await.unwrap();
    let keys: Vec<_> = store_b.list("chat/lobby", "msg/", 10).unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["msg/1", "msg/3"]);
    assert_eq!(get(&store_b, "chat/lobby", "msg/1").as_deref(), Some("hello"));
    assert_eq!(store_b.room_alarms("chat/lobby").unwrap(), [("tick".to_owned(), 42)]);
    assert_eq!(store_b.pending_alarms().unwrap(), [("chat/lobby".to_owned(), "tick".to_owned(), 42)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_refuses_a_stale_owners_write_after_a_new_owner_loaded() {
    let server = NatsServer::start();
    let a = node(&server, "a").await;
    let lease = own(&a, "chat/fence").await;
    // Two stores that both believe they own the room: what a paused owner
    // that has not yet noticed its loss looks like to JetStream.
    let (stale, fresh) = (JetStreamStore::new(&a), JetStreamStore::new(&a));
    stale.load_room(&lease).await.unwrap();
    commit(&stale, "chat/fence", vec![put("k", "1")]).await.unwrap();
    fresh.load_room(&lease).await.unwrap();
    assert_eq!(get(&fresh, "chat/fence", "k").as_deref(), Some("1"));
    commit(&fresh, "chat/fence", vec![put("k", "2")]).await.unwrap();

    let refused = commit(&stale, "chat/fence", vec![put("k", "stale"), put("other", "stale")]).await.unwrap_err();
    assert!(refused.0.contains("another owner"), "{refused}");
    assert_eq!(get(&stale, "chat/fence", "k").as_deref(), Some("1"), "a refused write is not applied");
    let later = commit(&stale, "chat/fence", vec![put("k", "later")]).await.unwrap_err();
    assert!(later.0.contains("loaded again"), "once fenced, nothing more is written: {later}");
    assert!(stale.unwritable("chat/fence").is_some_and(|why| why.contains("another owner")));
    assert_eq!(fresh.unwritable("chat/fence"), None);
    assert_eq!(a.stats().fenced_writes, 1);

    let check = JetStreamStore::new(&a);
    check.load_room(&lease).await.unwrap();
    assert_eq!(get(&check, "chat/fence", "k").as_deref(), Some("2"));
    assert_eq!(get(&check, "chat/fence", "other"), None, "the refused batch left nothing behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_that_lost_its_lease_writes_nothing_the_new_owner_sees() {
    let server = NatsServer::start();
    let (a, b) = (node(&server, "a").await, node(&server, "b").await);
    let (store_a, store_b) = (JetStreamStore::new(&a), JetStreamStore::new(&b));
    let old = own(&a, "chat/paused").await;
    store_a.load_room(&old).await.unwrap();
    commit(&store_a, "chat/paused", vec![put("k", "before")]).await.unwrap();
    old.stop_renewing();
    let new = own(&b, "chat/paused").await;
    store_b.load_room(&new).await.unwrap();
    assert!(!old.is_held());
    let refused = commit(&store_a, "chat/paused", vec![put("k", "after")]).await.unwrap_err();
    assert!(refused.0.contains("lease"), "{refused}");
    commit(&store_b, "chat/paused", vec![put("n", "1")]).await.unwrap();
    let check = JetStreamStore::new(&b);
    check.load_room(&new).await.unwrap();
    assert_eq!(get(&check, "chat/paused", "k").as_deref(), Some("before"));
    assert!(matches!(store_a.load_room(&old).await, Err(switchboard_cluster::ClusterError::LeaseLost(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_the_state_and_bounds_the_messages() {
    let server = NatsServer::start();
    let (a, b) = (node(&server, "a").await, node(&server, "b").await);
    let store = JetStreamStore::with_options(&a, StoreOptions { compact_after: 4 });
    let lease = own(&a, "chat/long").await;
    store.load_room(&lease).await.unwrap();
    for i in 0..30 {
        commit(&store, "chat/long", vec![put(&format!("msg/{i:03}"), &i.to_string()), put("last", &i.to_string())]).await.unwrap();
        if i % 3 == 0 {
            commit(&store, "chat/long", vec![Write::Delete(format!("msg/{i:03}"))]).await.unwrap();
        }
    }
    commit(&store, "chat/long", vec![Write::SetAlarm("a".into(), 7)]).await.unwrap();
    let stored = messages_of(&a, "chat/long").await;
    assert!(stored <= 5, "the subject holds a snapshot and what came after it, not every batch: {stored}");
    store.forget_room("chat/long");
    lease.release().await.unwrap();

    let lease = own(&b, "chat/long").await;
    let reloaded = JetStreamStore::new(&b);
    reloaded.load_room(&lease).await.unwrap();
    assert_eq!(reloaded.list("chat/long", "msg/", 100).unwrap().len(), 20);
    assert_eq!(get(&reloaded, "chat/long", "msg/002").as_deref(), Some("2"));
    assert_eq!(get(&reloaded, "chat/long", "msg/003"), None);
    assert_eq!(get(&reloaded, "chat/long", "last").as_deref(), Some("29"));
    assert_eq!(reloaded.room_alarms("chat/long").unwrap(), [("a".to_owned(), 7)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_of_many_rooms_go_out_together_and_keep_each_rooms_order() {
    let server = NatsServer::start();
    let a = node(&server, "a").await;
    let store = JetStreamStore::new(&a);
    let mut leases = Vec::new();
    for r in 0..10 {
        let lease = own(&a, &format!("chat/r{r}")).await;
        store.load_room(&lease).await.unwrap();
        leases.push(lease);
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..300u32 {
        let tx = tx.clone();
        let batch = Batch { room: format!("chat/r{}", i % 10), writes: vec![Write::Put("last".into(), i.to_be_bytes().to_vec())] };
        store.commit(batch, Box::new(move |result| tx.send((i, result)).unwrap()));
    }
    drop(tx);
    let mut done = 0;
    while let Some((i, result)) = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.expect("commits report in time") {
        result.unwrap_or_else(|e| panic!("commit {i}: {e}"));
        done += 1;
    }
    assert_eq!(done, 300);
    for r in 0..10u32 {
        let last = (0..300u32).filter(|i| i % 10 == r).max().unwrap();
        assert_eq!(store.get(&format!("chat/r{r}"), "last").unwrap(), Some(last.to_be_bytes().to_vec()));
    }
    // Batches queued behind a room's message in flight share the next one.
    assert!(messages_of(&a, "chat/r0").await < 31, "queued batches were coalesced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_finds_rooms_with_due_alarms() {
    let server = NatsServer::start();
    let (a, b) = (node(&server, "a").await, node(&server, "b").await);
    let (store_a, store_b) = (JetStreamStore::new(&a), JetStreamStore::new(&b));
    assert!(store_b.due_alarms(u64::MAX).await.unwrap().is_empty());
    let (l1, l2) = (own(&a, "chat/soon").await, own(&a, "chat/later").await);
    store_a.load_room(&l1).await.unwrap();
    store_a.load_room(&l2).await.unwrap();
    commit(&store_a, "chat/soon", vec![Write::SetAlarm("x".into(), 2_000), Write::SetAlarm("y".into(), 1_000)]).await.unwrap();
    commit(&store_a, "chat/later", vec![Write::SetAlarm("z".into(), 9_000)]).await.unwrap();
    assert_eq!(store_b.due_alarms(5_000).await.unwrap(), [("chat/soon".to_owned(), 1_000)]);
    assert_eq!(store_b.due_alarms(10_000).await.unwrap().len(), 2);
    commit(&store_a, "chat/soon", vec![Write::DeleteAlarm("y".into())]).await.unwrap();
    assert_eq!(store_b.due_alarms(5_000).await.unwrap(), [("chat/soon".to_owned(), 2_000)]);
    commit(&store_a, "chat/soon", vec![Write::DeleteAlarm("x".into())]).await.unwrap();
    assert_eq!(store_b.due_alarms(u64::MAX).await.unwrap(), [("chat/later".to_owned(), 9_000)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_nats_restart_the_node_reconnects_and_commits_again() {
    let mut server = NatsServer::start();
    let (a, b) = (node(&server, "a").await, node(&server, "b").await);
    let store = JetStreamStore::new(&a);
    assert_eq!(a.stats().reconnects, 0);
    let lease = own(&a, "chat/restart").await;
    store.load_room(&lease).await.unwrap();
    commit(&store, "chat/restart", vec![put("k", "before")]).await.unwrap();

    tokio::task::block_in_place(|| server.restart());
    for _ in 0..200 {
        if a.is_connected() && b.is_connected() && a.stats().reconnects >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(a.is_connected() && b.is_connected(), "the clients reconnect");
    assert_eq!(a.stats().reconnects, 1, "{:?}", a.stats());
    // The lease may or may not have outlived the outage; either way the
    // node can own the room again and write.
    let lease = if lease.is_held() { lease } else { own(&a, "chat/restart").await };
    if !lease.is_held() || commit(&store, "chat/restart", vec![put("k", "after")]).await.is_err() {
        store.load_room(&lease).await.unwrap();
        commit(&store, "chat/restart", vec![put("k", "after")]).await.unwrap();
    }
    store.forget_room("chat/restart");
    lease.release().await.unwrap();
    let lease = own(&b, "chat/restart").await;
    let other = JetStreamStore::new(&b);
    other.load_room(&lease).await.unwrap();
    assert_eq!(get(&other, "chat/restart", "k").as_deref(), Some("after"), "what was acknowledged survived the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_larger_than_one_nats_message_fails_alone() {
    let server = NatsServer::start();
    let a = node(&server, "a").await;
    let store = JetStreamStore::new(&a);
    let lease = own(&a, "chat/big").await;
    store.load_room(&lease).await.unwrap();
    let huge = Write::Put("blob".into(), vec![7; a.client().max_payload() + 1]);
    let refused = commit(&store, "chat/big", vec![huge]).await.unwrap_err();
    assert!(refused.0.contains("more than NATS takes in one message"), "{refused}");
    commit(&store, "chat/big", vec![put("small", "fine")]).await.unwrap();
    assert_eq!(get(&store, "chat/big", "small").as_deref(), Some("fine"));
    assert_eq!(get(&store, "chat/big", "blob"), None);
}

#[test]
fn every_commit_is_answered_once_even_when_the_runtime_and_the_store_stop() {
    let server = NatsServer::start();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (store, lease) = runtime.block_on(async {
        let a = node(&server, "a").await;
        let store = JetStreamStore::new(&a);
        let lease = own(&a, "chat/stop").await;
        store.load_room(&lease).await.unwrap();
        (store, lease)
    });
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 0..50u32 {
        let tx = tx.clone();
        let batch = Batch { room: "chat/stop".into(), writes: vec![Write::Put(format!("k{i}"), vec![1])] };
        store.commit(batch, Box::new(move |result| tx.send((i, result.is_ok())).unwrap()));
    }
    drop(tx);
    runtime.shutdown_timeout(Duration::from_millis(1));
    drop((store, lease));
    let mut answered = Vec::new();
    while let Ok((i, _)) = rx.recv_timeout(Duration::from_secs(5)) {
        answered.push(i);
    }
    answered.sort();
    assert_eq!(answered, (0..50).collect::<Vec<_>>(), "each commit answered exactly once");
}
