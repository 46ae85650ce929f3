//! `chat`: the group chat (wire format in docs/chat.md).
//!
//! Who is online lives in the connections' attachments (name and country),
//! so it survives hibernation without storage; the message counter and the
//! recent history live in room storage and survive restarts. Rate-limit
//! buckets are in memory only: a room hibernates after seconds without
//! events, by which time every bucket would have refilled anyway.
//!
//! A sender's `ack` leaves only once its message is committed to storage
//! (`Ctx::send_after_commit`); the others receive the message at once.
//! Joins and leaves are announced once per batch of events: one `state`
//! with the member list, then an `admin` line each, so a thousand joins at
//! once cost a thousand small lines per member, not a thousand lists.

mod history;
mod moderation;
mod names;
pub mod wire;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use foldhash::{HashMap, HashMapExt};
use serde::{Deserialize, Serialize};
use switchboard_room::{CloseCode, Closed, ConnId, ConnectRequest, Ctx, Decision, Message, Room, RoomFactory, RoomStorage, StoreError};
use tracing::warn;

use crate::rate::TokenBucket;
use wire::{AckRef, AdminEvent, ChatMessage, ClientMessage, ErrorCode, HistoryEntry, Limits, ServerMessage, User, MAX_REF_LEN};

/// The chat's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatConfig {
    /// Longest message in characters (Unicode scalar values).
    pub max_length: usize,
    /// Sustained messages per second per user.
    pub per_second: u32,
    /// Messages a user may send in a burst.
    pub burst: u32,
    /// Users per room; the next one gets `room_full` and a 1008 close.
    pub max_users: usize,
    /// Messages kept in the history and sent to newcomers.
    pub history: usize,
}

impl Default for ChatConfig {
    fn default() -> ChatConfig {
        ChatConfig { max_length: 500, per_second: 5, burst: 10, max_users: 100, history: 50 }
    }
}

impl ChatConfig {
    fn limits(&self) -> Limits {
        Limits { max_length: self.max_length, per_second: self.per_second, burst: self.burst, max_users: self.max_users, history: self.history }
    }
}

/// What a connection's attachment holds: set in `on_connect` (country) and
/// completed in `on_open` (name), when every other member is visible.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Member {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    country: Option<String>,
}

impl Member {
    fn of(attachment: Option<&[u8]>) -> Member {
        attachment.and_then(|a| serde_json::from_slice(a).ok()).unwrap_or_default()
    }

    fn user(self, conn: ConnId) -> Option<User> {
        Some(User { id: conn.to_string(), name: self.name?, country: self.country })
    }
}

/// One chat room.
pub struct Chat {
    id: String,
    config: ChatConfig,
    seq: u64,
    buckets: HashMap<ConnId, TokenBucket>,
    /// Joins and leaves of the current batch, announced at its end.
    announcements: Vec<(AdminEvent, User, ConnId)>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn send(ctx: &mut Ctx<'_>, conn: ConnId, message: &ServerMessage<'_>) {
    ctx.send(conn, Message::text(message.to_json()));
}

fn send_error(ctx: &mut Ctx<'_>, conn: ConnId, code: ErrorCode, message: &str, r#ref: Option<&str>) {
    send(ctx, conn, &ServerMessage::Error { code, message, r#ref });
}

/// Why a client message was not accepted: the error code, the text shown to
/// the user, and the client's `ref` to echo so it can mark its message.
type Refused = (ErrorCode, &'static str, Option<String>);

impl Chat {
    /// Loads the message counter of room `id`.
    pub fn load(id: &str, config: ChatConfig, storage: &RoomStorage<'_>) -> Chat {
        let seq = history::last_seq(storage).unwrap_or_else(|e| {
            // Without the counter, new ids could repeat stored ones; start
            // past anything a day of chatting could have written.
            warn!(room = id, error = %e, "cannot read the chat's message counter");
            now_ms()
        });
        Chat { id: id.to_owned(), config, seq, buckets: HashMap::new(), announcements: Vec::new() }
    }

    /// Named members, in join order (connection ids grow with time).
    fn users(ctx: &Ctx<'_>) -> Vec<User> {
        let conns: Vec<ConnId> = ctx.connections(None).collect();
        conns.into_iter().filter_map(|c| Member::of(ctx.attachment(c)).user(c)).collect()
    }

    /// The batch's joins and leaves: the member list once, then a line each.
    /// A newcomer hears the lines from its own join on: not those of
    /// members who left, or joined, before it in the same batch (the
    /// `state` before the lines already lists who is there).
    fn announce(ctx: &mut Ctx<'_>, announcements: Vec<(AdminEvent, User, ConnId)>) {
        let users = Chat::users(ctx);
        let state = ServerMessage::State { count: users.len(), users: &users }.to_json();
        ctx.broadcast(Message::text(state), None);
        let time = now_ms();
        let joins: Vec<(usize, ConnId)> = announcements
            .iter()
            .enumerate()
            .filter(|(_, (event, _, _))| *event == AdminEvent::Joined)
            .map(|(i, (_, _, conn))| (i, *conn))
            .collect();
        for (i, (event, user, _)) in announcements.into_iter().enumerate() {
            let verb = match event {
                AdminEvent::Joined => "joined",
                AdminEvent::Left => "left",
            };
            let admin = Message::text(ServerMessage::Admin { event, user: &user, text: format!("{} {verb}", user.name), time }.to_json());
            let later: Vec<ConnId> = joins.iter().filter(|(j, _)| *j > i).map(|(_, conn)| *conn).collect();
            if later.is_empty() {
                ctx.broadcast(admin, None);
            } else {
                ctx.broadcast_where(&admin, |conn| !later.contains(&conn));
            }
        }
    }

    /// Checks a client message; `Ok` holds the text and ref to accept.
    fn check(&mut self, conn: ConnId, message: &Message) -> Result<(String, Option<String>), Refused> {
        let bad = |r| (ErrorCode::BadMessage, "send a JSON object like {\"type\":\"message\",\"text\":\"hello\"}", r);
        let Message::Text(_) = message else { return Err(bad(None)) };
        let Ok(ClientMessage::Message { text, r#ref }) = serde_json::from_slice::<ClientMessage>(message.payload()) else {
            return Err(bad(None));
        };
        if r#ref.as_ref().is_some_and(|r| r.chars().count() > MAX_REF_LEN) {
            return Err(bad(None));
        }
        if text.trim().is_empty() {
            return Err((ErrorCode::Empty, "that message is empty", r#ref));
        }
        if text.chars().count() > self.config.max_length {
            return Err((ErrorCode::TooLong, "that message is too long", r#ref));
        }
        // tokio's clock, so that tests can stop it; the same as the
        // system's monotonic clock otherwise.
        let now = tokio::time::Instant::now().into_std();
        let bucket = self.buckets.entry(conn).or_insert_with(|| TokenBucket::new(self.config.burst, now));
        if !bucket.take(self.config.per_second, self.config.burst, now) {
            return Err((ErrorCode::RateLimited, "you are sending messages too fast; wait a moment", r#ref));
        }
        if moderation::is_refused(&text) {
            return Err((ErrorCode::Profanity, "that message was not sent: it contains language this room does not allow", r#ref));
        }
        Ok((text, r#ref))
    }
}

impl Room for Chat {
    fn on_connect(&mut self, _ctx: &mut Ctx<'_>, request: &ConnectRequest) -> Decision {
        let country = request.geo.as_ref().and_then(|g| g.country.clone());
        // A verified identity (a token's subject, a gateway's account) is
        // the member's name; anonymous members get a random one on open.
        let member = Member { name: request.identity.as_ref().map(|i| i.subject.clone()), country };
        Decision::Accept { tags: Vec::new(), attachment: serde_json::to_vec(&member).ok() }
    }

    fn on_open(&mut self, ctx: &mut Ctx<'_>, conn: ConnId) {
        let mut member = Member::of(ctx.attachment(conn));
        let others = Chat::users(ctx);
        if others.len() >= self.config.max_users {
            let message = format!("this room is full ({} users)", self.config.max_users);
            send_error(ctx, conn, ErrorCode::RoomFull, &message, None);
            // Policy, so clients do not retry in a loop.
            ctx.close(conn, CloseCode::POLICY_VIOLATION, "room is full");
            return;
        }
        if member.name.is_none() {
            member.name = Some(names::unique_name(&mut rand::rng(), |n| others.iter().any(|u| u.name == n)));
        }
        if ctx.set_attachment(conn, serde_json::to_vec(&member).ok()).is_err() {
            ctx.close(conn, CloseCode::INTERNAL_ERROR, "cannot keep the member's name");
            return;
        }
        let Some(user) = member.user(conn) else { return };
        let welcome = ServerMessage::Welcome { id: &user.id, name: &user.name, country: user.country.as_deref(), room: &self.id, limits: self.config.limits() };
        send(ctx, conn, &welcome);
        let messages = history::recent(&ctx.storage(), self.config.history).unwrap_or_else(|e| {
            warn!(room = ctx.room(), error = %e, "cannot read the chat history");
            Vec::new()
        });
        let messages = messages.into_iter().map(|message| HistoryEntry { message }).collect();
        send(ctx, conn, &ServerMessage::History { messages });
        self.announcements.push((AdminEvent::Joined, user, conn));
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, conn: ConnId, message: Message) {
        // A connection without a name was refused (room full) and is closing.
        let Some(from) = Member::of(ctx.attachment(conn)).user(conn) else { return };
        let (text, r#ref) = match self.check(conn, &message) {
            Ok(accepted) => accepted,
            Err((code, why, r#ref)) => return send_error(ctx, conn, code, why, r#ref.as_deref()),
        };
        self.seq += 1;
        let message = ChatMessage { id: format!("m{}", self.seq), from, text, time: now_ms() };
        history::append(&mut ctx.storage(), self.seq, &message, self.config.history);
        // Others see it at once; the sender's ack promises it is stored.
        ctx.broadcast(Message::text(ServerMessage::Message(&message).to_json()), Some(conn));
        let ack = ServerMessage::Ack { r#ref: r#ref.as_deref(), id: &message.id, time: message.time };
        ctx.send_after_commit(conn, Message::text(ack.to_json()));
    }

    fn on_close(&mut self, _ctx: &mut Ctx<'_>, conn: ConnId, closed: &Closed) {
        self.buckets.remove(&conn);
        if let Some(user) = Member::of(closed.attachment.as_deref()).user(conn) {
            self.announcements.push((AdminEvent::Left, user, conn));
        }
    }

    fn on_batch_end(&mut self, ctx: &mut Ctx<'_>) {
        if !self.announcements.is_empty() {
            Chat::announce(ctx, std::mem::take(&mut self.announcements));
        }
    }

    fn on_commit_failed(&mut self, ctx: &mut Ctx<'_>, _error: &StoreError, unsent: &[(ConnId, Message)]) {
        // Delivering beats dropping: the message went out live and only the
        // history misses it; its sender learns so instead of an ack.
        for (conn, ack) in unsent {
            let r#ref = serde_json::from_slice::<AckRef>(ack.payload()).ok().and_then(|a| a.r#ref);
            send_error(ctx, *conn, ErrorCode::NotStored, "that message was sent but could not be saved to the history", r#ref.as_deref());
        }
    }
}

/// Builds chat rooms with `config`.
pub fn factory(config: ChatConfig) -> Arc<dyn RoomFactory> {
    Arc::new(move |id: &str, storage: &RoomStorage<'_>| Box::new(Chat::load(id, config, storage)) as Box<dyn Room>)
}
