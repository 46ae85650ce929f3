//! A room's identity, parsed once at the edge: its kind, its id, and the
//! two together. Past the edge nothing splits `"kind/id"` strings back
//! apart; the joined form exists only as the storage namespace and in logs.

use std::fmt;

/// Longest room kind name.
pub const MAX_KIND_LEN: usize = 32;

/// Longest room id accepted.
pub const MAX_ROOM_ID_LEN: usize = 128;

/// A validated room kind name: 1-32 of `a-z 0-9 - _`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomKind(String);

impl RoomKind {
    /// Validates a kind name.
    pub fn parse(name: &str) -> Option<RoomKind> {
        let valid =
            !name.is_empty() && name.len() <= MAX_KIND_LEN && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_'));
        valid.then(|| RoomKind(name.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated room id: 1-128 of `A-Z a-z 0-9 - _ .`, safe in paths, logs
/// and storage keys without escaping.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomId(String);

impl RoomId {
    /// Validates a room id.
    pub fn parse(id: &str) -> Option<RoomId> {
        let valid = !id.is_empty() && id.len() <= MAX_ROOM_ID_LEN && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        valid.then(|| RoomId(id.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One room: a kind and an id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomName {
    /// The room's kind.
    pub kind: RoomKind,
    /// The room's id within its kind.
    pub id: RoomId,
}

impl RoomName {
    /// The room `id` of `kind`.
    pub fn new(kind: RoomKind, id: RoomId) -> RoomName {
        RoomName { kind, id }
    }

    /// The room whose storage namespace (`kind/id`) this is; `None` for a
    /// namespace no room of today's rules would have.
    pub fn from_namespace(namespace: &str) -> Option<RoomName> {
        let (kind, id) = namespace.split_once('/')?;
        Some(RoomName { kind: RoomKind::parse(kind)?, id: RoomId::parse(id)? })
    }

    /// The storage namespace, `kind/id` (a kind has no `/`, so it is unambiguous).
    pub fn namespace(&self) -> String {
        format!("{}/{}", self.kind.as_str(), self.id.as_str())
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.as_str(), self.id.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_ids_are_checked_and_namespaces_round_trip() {
        assert!(RoomKind::parse("chat").is_some());
        assert!(RoomKind::parse("my_kind-2").is_some());
        for bad in ["", "Chat", "a/b", "a.b", &"k".repeat(MAX_KIND_LEN + 1)] {
            assert!(RoomKind::parse(bad).is_none(), "{bad:?}");
        }
        assert!(RoomId::parse("Lobby-1_x.y").is_some());
        for bad in ["", "a/b", "a b", "é", &"i".repeat(MAX_ROOM_ID_LEN + 1)] {
            assert!(RoomId::parse(bad).is_none(), "{bad:?}");
        }
        let name = RoomName::new(RoomKind::parse("chat").unwrap(), RoomId::parse("lobby").unwrap());
        assert_eq!(name.namespace(), "chat/lobby");
        assert_eq!(RoomName::from_namespace(&name.namespace()), Some(name));
        assert_eq!(RoomName::from_namespace("chat"), None);
        assert_eq!(RoomName::from_namespace("chat/a/b"), None);
    }
}
