//! The behaviour every backend must show; each backend's tests call
//! [`check`]. Public with the `contract` feature, for backends in other
//! crates.

use crate::{commit_blocking, flush_blocking, Batch, Store, Write};

fn commit(store: &dyn Store, room: &str, writes: Vec<Write>) {
    commit_blocking(store, Batch { room: room.into(), writes }).unwrap();
}

fn put(key: &str, value: &[u8]) -> Write {
    Write::Put(key.into(), value.to_vec())
}

/// The rooms [`check`] writes to (a backend that must prepare rooms before
/// use prepares these).
pub const ROOMS: [&str; 9] = ["r1", "r2", "g0", "g1", "g2", "g3", "g4", "g5", "g6"];

/// Panics unless `store` (empty, or with none of [`ROOMS`] written) behaves
/// as every backend must.
pub fn check(store: &dyn Store) {
    assert_eq!(store.get("r1", "a").unwrap(), None);
    commit(store, "r1", vec![put("a", b"1")]);
    commit(store, "r1", vec![put("a", b"2")]);
    commit(store, "r2", vec![put("a", b"other room")]);
    assert_eq!(store.get("r1", "a").unwrap().as_deref(), Some(&b"2"[..]), "last write wins");
    assert_eq!(store.get("r2", "a").unwrap().as_deref(), Some(&b"other room"[..]), "rooms are separate");

    let keys = ["msg/001", "msg/002", "msg/010", "msh", "msg", "m"];
    commit(store, "r1", keys.iter().map(|k| put(k, k.as_bytes())).collect());
    let keys = |prefix: &str, limit| store.list("r1", prefix, limit).unwrap().into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(keys("msg/", 10), ["msg/001", "msg/002", "msg/010"]);
    assert_eq!(keys("msg/", 2), ["msg/001", "msg/002"]);
    assert_eq!(keys("msg", 10), ["msg", "msg/001", "msg/002", "msg/010"]);
    assert_eq!(keys("", 3), ["a", "m", "msg"]);
    assert!(keys("zzz", 10).is_empty());

    commit(store, "r1", vec![Write::Delete("msg".into()), Write::Delete("msg".into()), Write::Delete("absent".into())]);
    assert_eq!(keys("msg", 10), ["msg/001", "msg/002", "msg/010"]);
    commit(store, "r1", vec![put("b", &[0, 255]), Write::Delete("a".into()), put("c", b"1"), put("c", b"2")]);
    assert_eq!(store.get("r1", "a").unwrap(), None);
    assert_eq!(store.get("r1", "b").unwrap(), Some(vec![0, 255]));
    assert_eq!(store.get("r1", "c").unwrap().as_deref(), Some(&b"2"[..]), "writes apply in order");

    commit(store, "r1", vec![Write::SetAlarm("tick".into(), 300)]);
    commit(store, "r2", vec![Write::SetAlarm("tock".into(), 100)]);
    commit(store, "r1", vec![Write::SetAlarm("tick".into(), 200)]);
    assert_eq!(store.pending_alarms().unwrap(), [("r2".into(), "tock".into(), 100), ("r1".into(), "tick".into(), 200)]);
    assert_eq!(store.room_alarms("r1").unwrap(), [("tick".into(), 200)]);
    commit(store, "r2", vec![Write::DeleteAlarm("tock".into()), Write::DeleteAlarm("never".into())]);
    assert_eq!(store.pending_alarms().unwrap().len(), 1);

    // Many batches of many rooms in flight at once: each outcome arrives
    // once, and each room's batches apply in the order submitted.
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 0..200u32 {
        let tx = tx.clone();
        let batch = Batch { room: format!("g{}", i % 7), writes: vec![put("last", &i.to_be_bytes()), put(&format!("k/{i:03}"), b"x")] };
        store.commit(batch, Box::new(move |result| tx.send((i, result)).unwrap()));
    }
    flush_blocking(store);
    drop(tx);
    let mut outcomes: Vec<_> = rx.iter().collect();
    outcomes.sort_by_key(|(i, _)| *i);
    assert_eq!(outcomes.len(), 200, "every commit reported once, before the flush");
    assert!(outcomes.iter().all(|(_, r)| r.is_ok()));
    for room in 0..7u32 {
        let last = (0..200u32).filter(|i| i % 7 == room).max().unwrap();
        assert_eq!(store.get(&format!("g{room}"), "last").unwrap(), Some(last.to_be_bytes().to_vec()), "room g{room}: batches in order");
    }
    assert_eq!(store.list("g0", "k/", 1000).unwrap().len(), 29);
}
