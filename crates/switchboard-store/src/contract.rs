//! The behaviour every backend must show; each backend's tests call [`check`].

use crate::{Store, Write};

pub(crate) fn check(store: &dyn Store) {
    assert_eq!(store.get("r1", "a").unwrap(), None);
    store.put("r1", "a", b"1").unwrap();
    store.put("r1", "a", b"2").unwrap();
    store.put("r2", "a", b"other room").unwrap();
    assert_eq!(store.get("r1", "a").unwrap().as_deref(), Some(&b"2"[..]), "last write wins");
    assert_eq!(store.get("r2", "a").unwrap().as_deref(), Some(&b"other room"[..]), "rooms are separate");

    for key in ["msg/001", "msg/002", "msg/010", "msh", "msg", "m"] {
        store.put("r1", key, key.as_bytes()).unwrap();
    }
    let keys = |prefix: &str, limit| store.list("r1", prefix, limit).unwrap().into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(keys("msg/", 10), ["msg/001", "msg/002", "msg/010"]);
    assert_eq!(keys("msg/", 2), ["msg/001", "msg/002"]);
    assert_eq!(keys("msg", 10), ["msg", "msg/001", "msg/002", "msg/010"]);
    assert_eq!(keys("", 3), ["a", "m", "msg"]);
    assert!(keys("zzz", 10).is_empty());

    assert!(store.delete("r1", "msg").unwrap());
    assert!(!store.delete("r1", "msg").unwrap());
    store.write_batch("r1", &[Write::Put("b".into(), vec![0, 255]), Write::Delete("a".into())]).unwrap();
    assert_eq!(store.get("r1", "a").unwrap(), None);
    assert_eq!(store.get("r1", "b").unwrap(), Some(vec![0, 255]));

    store.set_alarm("r1", "tick", 300).unwrap();
    store.set_alarm("r2", "tock", 100).unwrap();
    store.set_alarm("r1", "tick", 200).unwrap();
    assert_eq!(store.pending_alarms().unwrap(), [("r2".into(), "tock".into(), 100), ("r1".into(), "tick".into(), 200)]);
    assert_eq!(store.room_alarms("r1").unwrap(), [("tick".into(), 200)]);
    assert!(store.delete_alarm("r2", "tock").unwrap());
    assert!(!store.delete_alarm("r2", "tock").unwrap());
    assert_eq!(store.pending_alarms().unwrap().len(), 1);
}
