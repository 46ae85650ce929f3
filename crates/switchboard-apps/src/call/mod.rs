//! `call`: the signaling room of a video call (wire format in docs/call.md).
//!
//! The media flows peer to peer, every peer connected to every other (a
//! mesh); the room only introduces the peers, relays their offers, answers
//! and ICE candidates, and tells everyone who joined, left, muted or
//! turned the camera off. It never reads a signal's payload.
//!
//! A peer is a connection whose attachment holds its [`Peer`] record (id,
//! name, media state), set when the room admits it. The attachment
//! survives hibernation, so the room keeps no peer list of its own and
//! nothing in storage: a call lasts as long as its connections. A
//! connection refused because the call is full never gets a record, so it
//! is never announced and never learns an id. Peer ids are 128 random bits
//! from the thread's cryptographic generator: knowing the room id is not
//! enough to address or impersonate a peer, and `from` on a relayed signal
//! is always the sender's own id.
//!
//! Every client message takes a token from the sender's bucket (signals
//! come in bursts of ICE candidates when a peer joins; state and name
//! changes are broadcast, so they are limited too). Buckets are in memory
//! only: a room hibernates after seconds without events, by which time
//! every bucket would have refilled anyway.

pub mod ice;
pub mod wire;

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use foldhash::{HashMap, HashMapExt};
use rand::Rng;
use switchboard_room::{CloseCode, Closed, ConnId, Ctx, Message, Published, Room, RoomFactory, RoomStorage};

use crate::rate::TokenBucket;
pub use ice::{IceConfig, IceServers, TurnSecret};
use wire::{ClientMessage, ErrorCode, Limits, Peer, ServerMessage};

/// The call's limits and ICE servers.
#[derive(Debug, Clone)]
pub struct CallConfig {
    /// Peers per call; the next one gets `room_full` and a 1008 close.
    pub max_peers: usize,
    /// Largest `data` of a signal, in bytes of JSON text.
    pub max_signal_bytes: usize,
    /// Messages per second per peer, sustained.
    pub per_second: u32,
    /// Messages a peer may send in a burst.
    pub burst: u32,
    /// Longest display name, in characters.
    pub max_name_length: usize,
    /// STUN and TURN servers handed to every peer.
    pub ice: IceConfig,
}

impl Default for CallConfig {
    /// Six peers: in a mesh each peer sends its video to every other, so
    /// its upload grows with the call; six is where a home connection still
    /// copes. 64 KiB of signal: an SDP offer with many codecs and
    /// transceivers is a few KiB, so this only stops abuse. 200 messages in
    /// a burst and 50 per second: a newcomer sends an offer and a few dozen
    /// candidates to each of five peers at once, and renegotiations later.
    /// 40 characters of name fit a tile's caption.
    fn default() -> CallConfig {
        CallConfig { max_peers: 6, max_signal_bytes: 64 << 10, per_second: 50, burst: 200, max_name_length: 40, ice: IceConfig::default() }
    }
}

impl CallConfig {
    fn limits(&self) -> Limits {
        Limits {
            max_peers: self.max_peers,
            max_signal_bytes: self.max_signal_bytes,
            per_second: self.per_second,
            burst: self.burst,
            max_name_length: self.max_name_length,
        }
    }
}

/// Bytes a signal's envelope (`type`, `to`, white space) may add to its
/// data before the message is refused unread.
const ENVELOPE_SLACK: usize = 1024;

/// A fresh peer id: 128 random bits as 32 lower-case hex digits.
pub fn new_peer_id() -> String {
    format!("{:032x}", rand::rng().random::<u128>())
}

/// One call.
pub struct Call {
    id: String,
    config: Arc<CallConfig>,
    buckets: HashMap<ConnId, TokenBucket>,
}

/// Why a client message was not accepted: the error code, the text shown
/// to the user, and for `unknown_target` the target named.
type Refused = (ErrorCode, String, Option<String>);

fn peer_of(attachment: Option<&[u8]>) -> Option<Peer> {
    attachment.and_then(|a| serde_json::from_slice(a).ok())
}

fn send(ctx: &mut Ctx<'_>, conn: ConnId, message: &ServerMessage<'_>) {
    ctx.send(conn, Message::text(message.to_json()));
}

impl Call {
    /// Call `id` with `config`.
    pub fn new(id: &str, config: Arc<CallConfig>) -> Call {
        Call { id: id.to_owned(), config, buckets: HashMap::new() }
    }

    /// The admitted peers, in join order.
    fn peers(ctx: &Ctx<'_>) -> Vec<(ConnId, Peer)> {
        ctx.connections(None).filter_map(|c| peer_of(ctx.attachment(c)).map(|p| (c, p))).collect()
    }

    /// Sends `message` to every peer but `except`.
    fn tell_others(ctx: &mut Ctx<'_>, except: ConnId, message: &ServerMessage<'_>) {
        let others: Vec<ConnId> = Call::peers(ctx).into_iter().map(|(c, _)| c).filter(|c| *c != except).collect();
        if !others.is_empty() {
            ctx.broadcast_where(&Message::text(message.to_json()), |c| others.contains(&c));
        }
    }

    /// Checks a message and takes its token; `Ok` holds it parsed.
    fn check<'m>(&mut self, conn: ConnId, message: &'m Message) -> Result<ClientMessage<'m>, Refused> {
        let config = &self.config;
        let bad = || (ErrorCode::BadMessage, "send a JSON object such as {\"type\":\"signal\",\"to\":\"PEER\",\"data\":{...}}".to_owned(), None);
        let too_large = || (ErrorCode::TooLarge, format!("signal data is limited to {} bytes", config.max_signal_bytes), None);
        // Refused unread, before it costs a parse.
        if message.payload().len() > config.max_signal_bytes.saturating_add(ENVELOPE_SLACK) {
            return Err(too_large());
        }
        let now = Instant::now();
        let bucket = self.buckets.entry(conn).or_insert_with(|| TokenBucket::new(config.burst, now));
        if !bucket.take(config.per_second, config.burst, now) {
            return Err((ErrorCode::RateLimited, "too many messages: slow down".to_owned(), None));
        }
        let Message::Text(payload) = message else { return Err(bad()) };
        let parsed = ClientMessage::parse(payload).ok_or_else(bad)?;
        match &parsed {
            ClientMessage::Signal { data, .. } if data.get().len() > config.max_signal_bytes => Err(too_large()),
            ClientMessage::Name { name } if name.trim().chars().count() > config.max_name_length => {
                Err((ErrorCode::TooLarge, format!("names are limited to {} characters", config.max_name_length), None))
            }
            ClientMessage::Name { name } if name.chars().any(char::is_control) => {
                Err((ErrorCode::BadMessage, "a name cannot contain control characters".to_owned(), None))
            }
            _ => Ok(parsed),
        }
    }

    /// Relays a signal from `me` to the peer named `to`.
    fn relay(ctx: &mut Ctx<'_>, conn: ConnId, me: &Peer, to: &str, data: &serde_json::value::RawValue) -> Result<(), Refused> {
        let target = Call::peers(ctx).into_iter().find(|(c, p)| p.id == to && *c != conn).map(|(c, _)| c);
        let Some(target) = target else {
            return Err((ErrorCode::UnknownTarget, "that peer is not in this call (it may have just left)".to_owned(), Some(to.to_owned())));
        };
        send(ctx, target, &ServerMessage::Signal { from: &me.id, data });
        Ok(())
    }

    /// Stores `me` changed and tells the others, if anything changed.
    fn update(ctx: &mut Ctx<'_>, conn: ConnId, before: &Peer, me: Peer) {
        if me == *before {
            return;
        }
        // A record of a 40-character name is far below the attachment limit.
        if ctx.set_attachment(conn, serde_json::to_vec(&me).ok()).is_err() {
            ctx.close(conn, CloseCode::INTERNAL_ERROR, "cannot keep the peer's state");
            return;
        }
        Call::tell_others(ctx, conn, &ServerMessage::PeerState { peer: &me });
    }
}

impl Room for Call {
    /// A call carries only its peers' signaling: anything else on the
    /// socket would reach the call page as a protocol error.
    fn on_publish(&mut self, _ctx: &mut Ctx<'_>, _message: Message) -> Published {
        Published::Refused { status: 403, reason: "call rooms carry only their peers' signaling; they take no published messages".into() }
    }

    fn on_open(&mut self, ctx: &mut Ctx<'_>, conn: ConnId) {
        let peers: Vec<Peer> = Call::peers(ctx).into_iter().map(|(_, p)| p).collect();
        if peers.len() >= self.config.max_peers {
            let message = format!("this call is full ({} people)", self.config.max_peers);
            send(ctx, conn, &ServerMessage::Error { code: ErrorCode::RoomFull, message: &message, to: None });
            // Policy, so clients do not retry in a loop.
            ctx.close(conn, CloseCode::POLICY_VIOLATION, "call is full");
            return;
        }
        let me = Peer { id: new_peer_id(), name: String::new(), muted: false, camera_off: false };
        if ctx.set_attachment(conn, serde_json::to_vec(&me).ok()).is_err() {
            ctx.close(conn, CloseCode::INTERNAL_ERROR, "cannot keep the peer's id");
            return;
        }
        let ice = self.config.ice.servers(&me.id, SystemTime::now());
        let joined = ServerMessage::Joined { id: &me.id, room: &self.id, peers: &peers, ice: &ice, limits: self.config.limits() };
        send(ctx, conn, &joined);
        Call::tell_others(ctx, conn, &ServerMessage::PeerJoined { peer: &me });
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, conn: ConnId, message: Message) {
        // A connection without a record was refused (call full) and is closing.
        let Some(me) = peer_of(ctx.attachment(conn)) else { return };
        let result = self.check(conn, &message).and_then(|parsed| match parsed {
            ClientMessage::Signal { to, data } => Call::relay(ctx, conn, &me, &to, data),
            ClientMessage::State { muted, camera_off } => {
                let next = Peer { muted: muted.unwrap_or(me.muted), camera_off: camera_off.unwrap_or(me.camera_off), ..me.clone() };
                Call::update(ctx, conn, &me, next);
                Ok(())
            }
            ClientMessage::Name { name } => {
                Call::update(ctx, conn, &me, Peer { name: name.trim().to_owned(), ..me.clone() });
                Ok(())
            }
        });
        if let Err((code, why, to)) = result {
            send(ctx, conn, &ServerMessage::Error { code, message: &why, to: to.as_deref() });
        }
    }

    fn on_close(&mut self, ctx: &mut Ctx<'_>, conn: ConnId, closed: &Closed) {
        self.buckets.remove(&conn);
        if let Some(peer) = peer_of(closed.attachment.as_deref()) {
            Call::tell_others(ctx, conn, &ServerMessage::PeerLeft { id: &peer.id });
        }
    }
}

/// Builds call rooms with `config`.
pub fn factory(config: CallConfig) -> Arc<dyn RoomFactory> {
    let config = Arc::new(config);
    Arc::new(move |id: &str, _storage: &RoomStorage<'_>| Box::new(Call::new(id, config.clone())) as Box<dyn Room>)
}
