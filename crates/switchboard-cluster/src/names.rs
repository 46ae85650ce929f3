//! Every name this crate puts on NATS: how a room name becomes a subject
//! token and a key, and the names of the buckets, the stream and subjects
//! under a prefix.
//!
//! Room names (`chat/lobby`) may hold any character, including ones NATS
//! gives meaning to in subjects and keys (`.`, `*`, `>`, spaces), so every
//! room is written as the unpadded base64url of its UTF-8 bytes
//! ([`encode_room`]): only letters, digits, `-` and `_`, valid both as one
//! subject token and as a key-value key.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// The one encoding of a room name on NATS: unpadded base64url of its bytes
/// (`chat/lobby` → `Y2hhdC9sb2JieQ`).
pub fn encode_room(room: &str) -> String {
    URL_SAFE_NO_PAD.encode(room.as_bytes())
}

/// The room name back from [`encode_room`]'s output, if it is one.
pub fn decode_room(encoded: &str) -> Option<String> {
    String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).ok()?).ok()
}

/// The names under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    prefix: String,
}

impl Names {
    pub(crate) fn new(prefix: &str) -> Self {
        Self { prefix: prefix.to_owned() }
    }

    /// Key-value bucket of the room leases (key: encoded room).
    pub(crate) fn lease_bucket(&self) -> String {
        format!("{}_leases", self.prefix)
    }

    /// Key-value bucket of each room's earliest alarm (key: encoded room).
    pub(crate) fn alarm_bucket(&self) -> String {
        format!("{}_alarms", self.prefix)
    }

    /// The stream that holds every room's storage messages.
    pub(crate) fn store_stream(&self) -> String {
        format!("{}_store", self.prefix)
    }

    /// The subjects of [`Names::store_stream`].
    pub(crate) fn store_subjects(&self) -> String {
        format!("{}.store.>", self.prefix)
    }

    /// The subject of one room's storage messages.
    pub(crate) fn store_subject(&self, room: &str) -> String {
        format!("{}.store.{}", self.prefix, encode_room(room))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_become_single_safe_tokens_and_come_back() {
        for room in ["chat/lobby", "r1", "a.b c*>/ü", "", "x/../../y"] {
            let encoded = encode_room(room);
            assert!(encoded.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{encoded}");
            assert_eq!(decode_room(&encoded).as_deref(), Some(room));
        }
        assert_eq!(encode_room("chat/lobby"), "Y2hhdC9sb2JieQ");
        assert_eq!(decode_room("not base64!"), None);
    }

    #[test]
    fn names_share_the_prefix() {
        let n = Names::new("sb");
        assert_eq!(n.lease_bucket(), "sb_leases");
        assert_eq!(n.store_stream(), "sb_store");
        assert_eq!(n.store_subject("chat/lobby"), "sb.store.Y2hhdC9sb2JieQ");
    }
}
