//! The chat's JSON messages (docs/chat.md is their reference): what the
//! server sends, and the one message a client sends.

use serde::{Deserialize, Serialize};

/// A user as others see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The connection id, e.g. `c12`.
    pub id: String,
    /// The two-word name.
    pub name: String,
    /// ISO country code, `None` when unknown.
    pub country: Option<String>,
}

/// A chat message as stored in the history and relayed to others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `m` and the room's message number.
    pub id: String,
    /// Who sent it.
    pub from: User,
    /// What they wrote.
    pub text: String,
    /// Server time, ms since the Unix epoch.
    pub time: u64,
}

/// The limits a client is told in `welcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Longest message, in characters.
    pub max_length: usize,
    /// Sustained messages per second.
    pub per_second: u32,
    /// Messages allowed in a burst.
    pub burst: u32,
    /// Users per room.
    pub max_users: usize,
    /// Messages kept in the history.
    pub history: usize,
}

/// Why a message was refused; the `code` of an `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not a well-formed client message.
    BadMessage,
    /// Empty or white space only.
    Empty,
    /// Longer than the limit.
    TooLong,
    /// Over the rate limit.
    RateLimited,
    /// Flagged by the profanity filter.
    Profanity,
    /// The room has as many users as it may.
    RoomFull,
    /// Relayed live, but the history could not store it (a storage
    /// failure): sent instead of the `ack`.
    NotStored,
}

/// Everything the server sends. The fields are the JSON fields of
/// docs/chat.md, which documents each one.
#[allow(missing_docs)]
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage<'a> {
    /// To the newcomer.
    Welcome { id: &'a str, name: &'a str, country: Option<&'a str>, room: &'a str, limits: Limits },
    /// To the newcomer, after `welcome`.
    History { messages: Vec<HistoryEntry> },
    /// To everyone once per batch of events with joins or leaves.
    State { count: usize, users: &'a [User] },
    /// To everyone for each join and leave, after that batch's `state`.
    Admin { event: AdminEvent, user: &'a User, text: String, time: u64 },
    /// To everyone but the sender.
    Message(&'a ChatMessage),
    /// To the sender of an accepted message, once it is stored.
    Ack { r#ref: Option<&'a str>, id: &'a str, time: u64 },
    /// To one client.
    Error { code: ErrorCode, message: &'a str, r#ref: Option<&'a str> },
}

/// A history entry: a `message` with its `type` field, as a client would
/// have received it live.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename = "message")]
pub struct HistoryEntry {
    /// The message.
    #[serde(flatten)]
    pub message: ChatMessage,
}

/// What an `admin` line announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminEvent {
    /// A user joined.
    Joined,
    /// A user left.
    Left,
}

impl ServerMessage<'_> {
    /// The JSON text.
    pub fn to_json(&self) -> String {
        // Serialising these types cannot fail: no maps with non-string keys,
        // no custom serialisers.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The one thing a client sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// A chat message.
    Message {
        /// What to say.
        text: String,
        /// The client's own id for it, returned in the ack or error.
        #[serde(default)]
        r#ref: Option<String>,
    },
}

/// The fields of an `ack` the room reads back when its commit failed, to
/// tell the sender with an `error` instead.
#[derive(Debug, Deserialize)]
pub struct AckRef {
    /// The client's `ref`.
    #[serde(default)]
    pub r#ref: Option<String>,
}

/// Longest `ref` a client may attach.
pub const MAX_REF_LEN: usize = 64;
