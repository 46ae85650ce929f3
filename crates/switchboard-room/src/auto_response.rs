//! A room's auto-response: a text request that whoever reads a connection's
//! messages answers by itself, without the room's handlers and without
//! waking a hibernated room (an application-level `ping` → `pong`), and when
//! each connection was last answered.
//!
//! The room sets it from a handler (`Ctx::set_auto_response`); the reader
//! of a connection asks the room's handle (`RoomHandle::auto_answer`) for
//! each message it reads. That check must cost next to nothing for the
//! rooms that set none (nearly all), so it starts with one atomic flag.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use bytes::Bytes;
use switchboard_proto::Message;

use crate::conn::ConnId;

/// A text request answered with a text response by the connection's reader
/// itself. One is shared by every connection of a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoResponse {
    request: Bytes,
    response: Message,
}

impl AutoResponse {
    /// Answer the exact text `request` with `response`.
    pub fn new(request: &str, response: &str) -> AutoResponse {
        AutoResponse { request: Bytes::copy_from_slice(request.as_bytes()), response: Message::text(response) }
    }

    /// The request's text, as bytes.
    pub fn request(&self) -> &Bytes {
        &self.request
    }

    /// The response, a text message.
    pub fn response(&self) -> &Message {
        &self.response
    }

    /// Whether `message` is exactly the request.
    pub fn matches(&self, message: &Message) -> bool {
        matches!(message, Message::Text(text) if *text == self.request)
    }
}

/// The auto-response of one room and when its connections were last
/// answered; shared by the room's actor and its handle.
#[derive(Debug, Default)]
pub(crate) struct AutoResponses {
    /// Whether `current` holds one: the only thing read for a room without.
    armed: AtomicBool,
    current: RwLock<Option<Arc<AutoResponse>>>,
    /// Only connections that were answered at least once have an entry;
    /// it goes when the connection leaves the room.
    last: Mutex<HashMap<ConnId, SystemTime>>,
}

impl AutoResponses {
    /// Replaces the auto-response (`None`: none).
    pub(crate) fn set(&self, auto: Option<AutoResponse>) {
        let armed = auto.is_some();
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = auto.map(Arc::new);
        self.armed.store(armed, Ordering::Release);
    }

    /// The response to `message` from `conn` if it is the request; records
    /// the time of the answer.
    #[inline]
    pub(crate) fn answer(&self, conn: ConnId, message: &Message) -> Option<Message> {
        if !self.armed.load(Ordering::Acquire) {
            return None;
        }
        let response = {
            let current = self.current.read().unwrap_or_else(|p| p.into_inner());
            current.as_deref().filter(|auto| auto.matches(message))?.response.clone()
        };
        self.last.lock().unwrap_or_else(|p| p.into_inner()).insert(conn, SystemTime::now());
        Some(response)
    }

    /// Whether `message` would be answered (nothing is recorded).
    #[inline]
    pub(crate) fn would_answer(&self, message: &Message) -> bool {
        self.armed.load(Ordering::Acquire) && self.current.read().unwrap_or_else(|p| p.into_inner()).as_deref().is_some_and(|auto| auto.matches(message))
    }

    /// When `conn` was last answered.
    pub(crate) fn last_answered(&self, conn: ConnId) -> Option<SystemTime> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).get(&conn).copied()
    }

    /// `conn` left the room.
    pub(crate) fn forget(&self, conn: ConnId) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if !last.is_empty() {
            last.remove(&conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_text_request_is_answered_and_the_answer_is_recorded() {
        let auto = AutoResponses::default();
        assert_eq!(auto.answer(ConnId(1), &Message::text("ping")), None, "none set");
        auto.set(Some(AutoResponse::new("ping", "pong")));
        assert_eq!(auto.answer(ConnId(1), &Message::text("ping ")), None);
        assert_eq!(auto.answer(ConnId(1), &Message::Binary(Bytes::from_static(b"ping"))), None, "text only");
        assert_eq!(auto.last_answered(ConnId(1)), None);
        assert!(auto.would_answer(&Message::text("ping")));
        assert_eq!(auto.answer(ConnId(1), &Message::text("ping")), Some(Message::text("pong")));
        assert!(auto.last_answered(ConnId(1)).is_some());
        assert_eq!(auto.last_answered(ConnId(2)), None, "per connection");
        auto.forget(ConnId(1));
        assert_eq!(auto.last_answered(ConnId(1)), None);
        auto.set(None);
        assert!(!auto.would_answer(&Message::text("ping")));
        assert_eq!(auto.answer(ConnId(1), &Message::text("ping")), None, "turned off");
    }
}
