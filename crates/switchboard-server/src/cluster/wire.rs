//! The binary encoding of what crosses NATS between nodes: a connection's
//! events on their way to its room's owner, and the owner's effects on
//! their way back to the connection's node (docs/cluster.md, "Wire
//! format"). Integers are LEB128 varints, strings and byte strings are a
//! varint length and the bytes, a list is a varint count and its items;
//! every record starts with a one-byte tag.

use bytes::{BufMut, Bytes, BytesMut};
use switchboard_proto::{CloseCode, Message};
use switchboard_room::{Closed, ConnId, ConnectRequest, Decision, Geo, Headers, Identity, Published, RoomRequest, RoomStats};

/// A connection's event, sent to the owner of its room. `node` is the
/// connection's node, `conn` its id there: together they name the
/// connection across the cluster.
#[derive(Debug)]
pub(crate) enum Event {
    /// Asks to join; the answer is a [`Reply`] (NATS request/reply).
    /// (The request is boxed: it is several times any other event.)
    Connect { node: String, conn: u64, room: String, request: Box<ConnectRequest> },
    /// The accepted connection is open, with the decision's tags and attachment.
    Open { node: String, conn: u64, tags: Vec<String>, attachment: Option<Vec<u8>> },
    /// Messages, in order.
    Messages { node: String, conn: u64, messages: Vec<Message> },
    /// The connection failed; its close follows.
    Error { node: String, conn: u64, error: String },
    /// The connection ended.
    Close { node: String, conn: u64, code: Option<u16>, reason: String, clean: bool },
}

/// The owner's answer to [`Event::Connect`].
#[derive(Debug, PartialEq)]
pub(crate) enum Reply {
    /// The room's decision.
    Decided(Decision),
    /// The node does not (or no longer) hold the room's lease.
    NotOwner,
}

/// What the owner's room did to connections of one node.
#[derive(Debug, PartialEq)]
pub(crate) enum Effect {
    /// Messages for one connection, in order.
    Send { conn: u64, messages: Vec<Message> },
    /// The same messages for several connections of the node: a broadcast
    /// crosses once per node, with its recipients.
    Run { conns: Vec<u64>, messages: Vec<Message> },
    /// Close the connection.
    Close { conn: u64, code: u16, reason: String },
    /// The owner no longer holds the room: the connection must attach to
    /// the room's new owner.
    Moved { conn: u64 },
}

/// Bytes that do not decode as what they claim to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed;

const CONNECT: u8 = 1;
const OPEN: u8 = 2;
const MESSAGES: u8 = 3;
const ERROR: u8 = 4;
const CLOSE: u8 = 5;

const ACCEPT: u8 = 1;
const REJECT: u8 = 2;
const NOT_OWNER: u8 = 3;

const SEND: u8 = 1;
const RUN: u8 = 2;
const CLOSE_CONN: u8 = 3;
const MOVED: u8 = 4;

const TEXT: u8 = 0;
const BINARY: u8 = 1;

struct Writer(BytesMut);

impl Writer {
    fn new() -> Writer {
        Writer(BytesMut::with_capacity(64))
    }

    fn u8(&mut self, v: u8) {
        self.0.put_u8(v);
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.put_u8((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.put_u8(v as u8);
    }

    fn bytes(&mut self, b: &[u8]) {
        self.varint(b.len() as u64);
        self.0.put_slice(b);
    }

    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    fn opt_bytes(&mut self, b: Option<&[u8]>) {
        match b {
            None => self.u8(0),
            Some(b) => {
                self.u8(1);
                self.bytes(b);
            }
        }
    }

    fn opt_str(&mut self, s: Option<&str>) {
        self.opt_bytes(s.map(str::as_bytes));
    }

    fn strs(&mut self, list: &[String]) {
        self.varint(list.len() as u64);
        for s in list {
            self.str(s);
        }
    }

    fn pairs(&mut self, list: &[(String, String)]) {
        self.varint(list.len() as u64);
        for (a, b) in list {
            self.str(a);
            self.str(b);
        }
    }

    /// A request's headers, as `pairs` writes a list.
    fn headers(&mut self, headers: &Headers) {
        self.varint(headers.len() as u64);
        for (name, value) in headers.iter() {
            self.str(name);
            self.str(value);
        }
    }

    fn messages(&mut self, messages: &[Message]) {
        self.varint(messages.len() as u64);
        for message in messages {
            let (kind, payload) = match message {
                Message::Text(b) => (TEXT, b),
                Message::Binary(b) => (BINARY, b),
            };
            self.u8(kind);
            self.bytes(payload);
        }
    }

    fn finish(self) -> Bytes {
        self.0.freeze()
    }
}

struct Reader {
    buf: Bytes,
    at: usize,
}

impl Reader {
    fn new(buf: Bytes) -> Reader {
        Reader { buf, at: 0 }
    }

    fn done(&self) -> bool {
        self.at >= self.buf.len()
    }

    fn u8(&mut self) -> Result<u8, Malformed> {
        let v = *self.buf.get(self.at).ok_or(Malformed)?;
        self.at += 1;
        Ok(v)
    }

    fn varint(&mut self) -> Result<u64, Malformed> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Malformed)
    }

    fn len(&mut self) -> Result<usize, Malformed> {
        let n = usize::try_from(self.varint()?).map_err(|_| Malformed)?;
        if n > self.buf.len() - self.at.min(self.buf.len()) {
            return Err(Malformed);
        }
        Ok(n)
    }

    fn bytes(&mut self) -> Result<Bytes, Malformed> {
        let n = self.len()?;
        let b = self.buf.slice(self.at..self.at + n);
        self.at += n;
        Ok(b)
    }

    fn str(&mut self) -> Result<String, Malformed> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| Malformed)
    }

    fn flag(&mut self) -> Result<bool, Malformed> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Malformed),
        }
    }

    fn opt_bytes(&mut self) -> Result<Option<Bytes>, Malformed> {
        Ok(if self.flag()? { Some(self.bytes()?) } else { None })
    }

    fn opt_str(&mut self) -> Result<Option<String>, Malformed> {
        Ok(if self.flag()? { Some(self.str()?) } else { None })
    }

    /// A count of items, each at least one byte long.
    fn count(&mut self) -> Result<usize, Malformed> {
        self.len()
    }

    fn strs(&mut self) -> Result<Vec<String>, Malformed> {
        (0..self.count()?).map(|_| self.str()).collect()
    }

    fn pairs(&mut self) -> Result<Vec<(String, String)>, Malformed> {
        (0..self.count()?).map(|_| Ok((self.str()?, self.str()?))).collect()
    }

    fn headers(&mut self) -> Result<Headers, Malformed> {
        let mut headers = Headers::new();
        for _ in 0..self.count()? {
            headers.push(&self.str()?, &self.str()?);
        }
        Ok(headers)
    }

    fn messages(&mut self) -> Result<Vec<Message>, Malformed> {
        (0..self.count()?)
            .map(|_| {
                let kind = self.u8()?;
                let payload = self.bytes()?;
                match kind {
                    TEXT if std::str::from_utf8(&payload).is_ok() => Ok(Message::Text(payload)),
                    BINARY => Ok(Message::Binary(payload)),
                    _ => Err(Malformed),
                }
            })
            .collect()
    }
}

fn write_f64(w: &mut Writer, v: Option<f64>) {
    match v {
        None => w.u8(0),
        Some(v) => {
            w.u8(1);
            w.0.put_f64_le(v);
        }
    }
}

fn read_f64(r: &mut Reader) -> Result<Option<f64>, Malformed> {
    if !r.flag()? {
        return Ok(None);
    }
    let end = r.at + 8;
    let raw: [u8; 8] = r.buf.get(r.at..end).ok_or(Malformed)?.try_into().map_err(|_| Malformed)?;
    r.at = end;
    Ok(Some(f64::from_le_bytes(raw)))
}

impl Event {
    pub(crate) fn encode(&self) -> Bytes {
        let mut w = Writer::new();
        match self {
            Event::Connect { node, conn, room, request } => {
                w.u8(CONNECT);
                w.str(node);
                w.varint(*conn);
                w.str(room);
                w.str(&request.query);
                w.headers(&request.headers);
                w.str(&request.ip.to_string());
                match &request.geo {
                    None => w.u8(0),
                    Some(geo) => {
                        w.u8(1);
                        w.opt_str(geo.country.as_deref());
                        w.opt_str(geo.city.as_deref());
                        write_f64(&mut w, geo.latitude);
                        write_f64(&mut w, geo.longitude);
                    }
                }
                match &request.identity {
                    None => w.u8(0),
                    Some(identity) => {
                        w.u8(1);
                        w.str(&identity.subject);
                        w.pairs(&identity.claims);
                    }
                }
            }
            Event::Open { node, conn, tags, attachment } => {
                w.u8(OPEN);
                w.str(node);
                w.varint(*conn);
                w.strs(tags);
                w.opt_bytes(attachment.as_deref());
            }
            Event::Messages { node, conn, messages } => {
                w.u8(MESSAGES);
                w.str(node);
                w.varint(*conn);
                w.messages(messages);
            }
            Event::Error { node, conn, error } => {
                w.u8(ERROR);
                w.str(node);
                w.varint(*conn);
                w.str(error);
            }
            Event::Close { node, conn, code, reason, clean } => {
                w.u8(CLOSE);
                w.str(node);
                w.varint(*conn);
                w.varint(code.map_or(0, u64::from));
                w.str(reason);
                w.u8(u8::from(*clean));
            }
        }
        w.finish()
    }

    pub(crate) fn decode(buf: Bytes) -> Result<Event, Malformed> {
        let mut r = Reader::new(buf);
        let tag = r.u8()?;
        let node = r.str()?;
        let conn = r.varint()?;
        let event = match tag {
            CONNECT => {
                let room = r.str()?;
                let query = r.str()?;
                let headers = r.headers()?;
                let ip = r.str()?.parse().map_err(|_| Malformed)?;
                let geo = if r.flag()? {
                    Some(Geo { country: r.opt_str()?, city: r.opt_str()?, latitude: read_f64(&mut r)?, longitude: read_f64(&mut r)? })
                } else {
                    None
                };
                let identity = if r.flag()? { Some(Identity { subject: r.str()?, claims: r.pairs()? }) } else { None };
                // The owner gives the connection an id of its own.
                let request = ConnectRequest { conn: ConnId(0), query, headers, ip, geo, identity };
                Event::Connect { node, conn, room, request: Box::new(request) }
            }
            OPEN => Event::Open { node, conn, tags: r.strs()?, attachment: r.opt_bytes()?.map(|b| b.to_vec()) },
            MESSAGES => Event::Messages { node, conn, messages: r.messages()? },
            ERROR => Event::Error { node, conn, error: r.str()? },
            CLOSE => {
                let code = u16::try_from(r.varint()?).map_err(|_| Malformed)?;
                Event::Close { node, conn, code: (code != 0).then_some(code), reason: r.str()?, clean: r.flag()? }
            }
            _ => return Err(Malformed),
        };
        if !r.done() {
            return Err(Malformed);
        }
        Ok(event)
    }
}

/// A publication (the HTTP publish API) for a room, sent to its owner:
/// the room's name and the message.
pub(crate) fn encode_publication(room: &str, message: &Message) -> Bytes {
    let mut w = Writer::new();
    w.str(room);
    w.messages(std::slice::from_ref(message));
    w.finish()
}

pub(crate) fn decode_publication(buf: Bytes) -> Result<(String, Message), Malformed> {
    let mut r = Reader::new(buf);
    let room = r.str()?;
    let mut messages = r.messages()?;
    if messages.len() != 1 || !r.done() {
        return Err(Malformed);
    }
    Ok((room, messages.pop().ok_or(Malformed)?))
}

/// The owner's answer to a publication: delivered to N (tag 1), refused
/// with a status and reason (2), or the room does not run there (3).
pub(crate) fn encode_published(published: Option<&Published>) -> Bytes {
    let mut w = Writer::new();
    match published {
        Some(Published::Delivered(n)) => {
            w.u8(1);
            w.varint(*n as u64);
        }
        Some(Published::Refused { status, reason }) => {
            w.u8(2);
            w.varint(u64::from(*status));
            w.str(reason);
        }
        None => w.u8(3),
    }
    w.finish()
}

pub(crate) fn decode_published(buf: Bytes) -> Result<Option<Published>, Malformed> {
    let mut r = Reader::new(buf);
    let published = match r.u8()? {
        1 => Some(Published::Delivered(usize::try_from(r.varint()?).map_err(|_| Malformed)?)),
        2 => Some(Published::Refused { status: u16::try_from(r.varint()?).map_err(|_| Malformed)?, reason: r.str()? }),
        3 => None,
        _ => return Err(Malformed),
    };
    if !r.done() {
        return Err(Malformed);
    }
    Ok(published)
}

/// Which room a request may reach on its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// One that runs or has stored data (HTTP, which anyone can send: a
    /// made-up room is not created).
    Existing,
    /// Any room of the kind, started if need be (the server's own records,
    /// such as an account's clicks).
    Started,
}

/// What is asked of a room on its owner (NATS request/reply on the
/// owner's `<prefix>.node.<node>.req`).
#[derive(Debug, Clone)]
pub(crate) enum RoomCall {
    /// The room's `on_request`.
    Request { reach: Reach, request: RoomRequest },
    /// The actor's counters (`_stats`), never starting the room.
    Stats,
}

/// The owner's answer to a [`RoomCall`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RoomAnswer {
    /// The room's HTTP answer.
    Response { status: u16, content_type: String, body: Bytes },
    /// The actor's counters.
    Stats(RoomStats),
    /// No such room: none runs, and (for [`Reach::Existing`]) none has
    /// stored data; or the kind is unknown there.
    NoRoom,
    /// The node does not (or no longer) hold the room's lease: ask the
    /// room's owner again.
    Gone,
    /// The room could not take the request (it kept stopping, or the node
    /// is at its limits); `why` says so to the client.
    Unavailable { why: String },
}

const CALL_EXISTING: u8 = 1;
const CALL_STARTED: u8 = 2;
const CALL_STATS: u8 = 3;

const ANSWER_RESPONSE: u8 = 1;
const ANSWER_STATS: u8 = 2;
const ANSWER_NO_ROOM: u8 = 3;
const ANSWER_GONE: u8 = 4;
const ANSWER_UNAVAILABLE: u8 = 5;

/// A call for `room` (`kind/id`): tag, room, and for a request its
/// method, path and body.
pub(crate) fn encode_room_call(room: &str, call: &RoomCall) -> Bytes {
    let mut w = Writer::new();
    match call {
        RoomCall::Request { reach, request } => {
            w.u8(match reach {
                Reach::Existing => CALL_EXISTING,
                Reach::Started => CALL_STARTED,
            });
            w.str(room);
            w.str(&request.method);
            w.str(&request.path);
            w.bytes(&request.body);
        }
        RoomCall::Stats => {
            w.u8(CALL_STATS);
            w.str(room);
        }
    }
    w.finish()
}

pub(crate) fn decode_room_call(buf: Bytes) -> Result<(String, RoomCall), Malformed> {
    let mut r = Reader::new(buf);
    let tag = r.u8()?;
    let room = r.str()?;
    let reach = match tag {
        CALL_EXISTING => Reach::Existing,
        CALL_STARTED => Reach::Started,
        CALL_STATS if r.done() => return Ok((room, RoomCall::Stats)),
        _ => return Err(Malformed),
    };
    let request = RoomRequest { method: r.str()?, path: r.str()?, body: r.bytes()? };
    if !r.done() {
        return Err(Malformed);
    }
    Ok((room, RoomCall::Request { reach, request }))
}

impl RoomAnswer {
    pub(crate) fn encode(&self) -> Bytes {
        let mut w = Writer::new();
        match self {
            RoomAnswer::Response { status, content_type, body } => {
                w.u8(ANSWER_RESPONSE);
                w.varint(u64::from(*status));
                w.str(content_type);
                w.bytes(body);
            }
            RoomAnswer::Stats(stats) => {
                w.u8(ANSWER_STATS);
                w.varint(stats.connections as u64);
                w.varint(stats.wakeups);
                w.u8(u8::from(stats.awake));
            }
            RoomAnswer::NoRoom => w.u8(ANSWER_NO_ROOM),
            RoomAnswer::Gone => w.u8(ANSWER_GONE),
            RoomAnswer::Unavailable { why } => {
                w.u8(ANSWER_UNAVAILABLE);
                w.str(why);
            }
        }
        w.finish()
    }

    pub(crate) fn decode(buf: Bytes) -> Result<RoomAnswer, Malformed> {
        let mut r = Reader::new(buf);
        let answer = match r.u8()? {
            ANSWER_RESPONSE => {
                let status = u16::try_from(r.varint()?).ok().filter(|s| (100..1000).contains(s)).ok_or(Malformed)?;
                RoomAnswer::Response { status, content_type: r.str()?, body: r.bytes()? }
            }
            ANSWER_STATS => {
                let connections = usize::try_from(r.varint()?).map_err(|_| Malformed)?;
                RoomAnswer::Stats(RoomStats { connections, wakeups: r.varint()?, awake: r.flag()? })
            }
            ANSWER_NO_ROOM => RoomAnswer::NoRoom,
            ANSWER_GONE => RoomAnswer::Gone,
            ANSWER_UNAVAILABLE => RoomAnswer::Unavailable { why: r.str()? },
            _ => return Err(Malformed),
        };
        if !r.done() {
            return Err(Malformed);
        }
        Ok(answer)
    }
}

/// The `Closed` a room sees for a forwarded close.
pub(crate) fn closed(code: Option<u16>, reason: String, clean: bool) -> Closed {
    Closed { code: code.and_then(CloseCode::new), reason, clean, attachment: None }
}

impl Reply {
    pub(crate) fn encode(&self) -> Bytes {
        let mut w = Writer::new();
        match self {
            Reply::Decided(Decision::Accept { tags, attachment }) => {
                w.u8(ACCEPT);
                w.strs(tags);
                w.opt_bytes(attachment.as_deref());
            }
            Reply::Decided(Decision::Reject { status, reason }) => {
                w.u8(REJECT);
                w.varint(u64::from(*status));
                w.str(reason);
            }
            Reply::NotOwner => w.u8(NOT_OWNER),
        }
        w.finish()
    }

    pub(crate) fn decode(buf: Bytes) -> Result<Reply, Malformed> {
        let mut r = Reader::new(buf);
        let reply = match r.u8()? {
            ACCEPT => Reply::Decided(Decision::Accept { tags: r.strs()?, attachment: r.opt_bytes()?.map(|b| b.to_vec()) }),
            REJECT => {
                let status = u16::try_from(r.varint()?).map_err(|_| Malformed)?;
                Reply::Decided(Decision::Reject { status, reason: r.str()? })
            }
            NOT_OWNER => Reply::NotOwner,
            _ => return Err(Malformed),
        };
        if !r.done() {
            return Err(Malformed);
        }
        Ok(reply)
    }
}

/// Effects of the owner `from` for one node, in order, as one NATS message.
pub(crate) fn encode_effects(from: &str, effects: &[Effect]) -> Bytes {
    let mut w = Writer::new();
    w.str(from);
    for effect in effects {
        match effect {
            Effect::Send { conn, messages } => {
                w.u8(SEND);
                w.varint(*conn);
                w.messages(messages);
            }
            Effect::Run { conns, messages } => {
                w.u8(RUN);
                w.varint(conns.len() as u64);
                for conn in conns {
                    w.varint(*conn);
                }
                w.messages(messages);
            }
            Effect::Close { conn, code, reason } => {
                w.u8(CLOSE_CONN);
                w.varint(*conn);
                w.varint(u64::from(*code));
                w.str(reason);
            }
            Effect::Moved { conn } => {
                w.u8(MOVED);
                w.varint(*conn);
            }
        }
    }
    w.finish()
}

/// The owner that sent them, and the effects.
pub(crate) fn decode_effects(buf: Bytes) -> Result<(String, Vec<Effect>), Malformed> {
    let mut r = Reader::new(buf);
    let from = r.str()?;
    let mut effects = Vec::new();
    while !r.done() {
        effects.push(match r.u8()? {
            SEND => Effect::Send { conn: r.varint()?, messages: r.messages()? },
            RUN => {
                let conns = (0..r.count()?).map(|_| r.varint()).collect::<Result<_, _>>()?;
                Effect::Run { conns, messages: r.messages()? }
            }
            CLOSE_CONN => {
                let conn = r.varint()?;
                let code = u16::try_from(r.varint()?).map_err(|_| Malformed)?;
                Effect::Close { conn, code, reason: r.str()? }
            }
            MOVED => Effect::Moved { conn: r.varint()? },
            _ => return Err(Malformed),
        });
    }
    Ok((from, effects))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> ConnectRequest {
        ConnectRequest {
            conn: ConnId(0),
            query: "name=ann".into(),
            headers: [("user-agent", "t")].into_iter().collect(),
            ip: "10.1.2.3".parse().unwrap(),
            geo: Some(Geo { country: Some("NZ".into()), city: None, latitude: Some(-41.3), longitude: None }),
            identity: Some(Identity { subject: "u1".into(), claims: vec![("role".into(), "admin".into())] }),
        }
    }

    #[test]
    fn events_read_back_as_written() {
        let events = vec![
            Event::Connect { node: "a".into(), conn: 7, room: "chat/x".into(), request: Box::new(request()) },
            Event::Open { node: "a".into(), conn: 300, tags: vec!["ann".into()], attachment: Some(vec![1, 2]) },
            Event::Messages { node: "b".into(), conn: u64::MAX, messages: vec![Message::text("hi"), Message::Binary(Bytes::from_static(&[0, 255]))] },
            Event::Error { node: "b".into(), conn: 1, error: "bad".into() },
            Event::Close { node: "b".into(), conn: 1, code: Some(1000), reason: "bye".into(), clean: true },
            Event::Close { node: "b".into(), conn: 1, code: None, reason: String::new(), clean: false },
        ];
        for event in events {
            let back = Event::decode(event.encode()).unwrap();
            assert_eq!(format!("{back:?}"), format!("{event:?}"));
        }
    }

    #[test]
    fn replies_and_effects_read_back_as_written() {
        for reply in [
            Reply::NotOwner,
            Reply::Decided(Decision::Reject { status: 403, reason: "no".into() }),
            Reply::Decided(Decision::Accept { tags: vec![], attachment: None }),
        ] {
            assert_eq!(Reply::decode(reply.encode()), Ok(reply));
        }
        let effects = vec![
            Effect::Send { conn: 1, messages: vec![Message::text("a")] },
            Effect::Run { conns: vec![1, 2, 3], messages: vec![Message::text("b"), Message::text("c")] },
            Effect::Close { conn: 2, code: 1008, reason: "full".into() },
            Effect::Moved { conn: 3 },
        ];
        assert_eq!(decode_effects(encode_effects("a", &effects)), Ok(("a".to_owned(), effects)));
    }

    #[test]
    fn publications_and_their_answers_read_back_as_written() {
        let (room, message) = decode_publication(encode_publication("broadcast/x", &Message::text("{}"))).unwrap();
        assert_eq!((room.as_str(), message), ("broadcast/x", Message::text("{}")));
        for published in [Some(Published::Delivered(7)), Some(Published::Refused { status: 422, reason: "no".into() }), None] {
            assert_eq!(decode_published(encode_published(published.as_ref())), Ok(published));
        }
    }

    #[test]
    fn room_calls_and_their_answers_read_back_as_written() {
        let request = RoomRequest { method: "POST".into(), path: "/clicks".into(), body: Bytes::from_static(b"[1,2]") };
        for call in
            [RoomCall::Request { reach: Reach::Existing, request: request.clone() }, RoomCall::Request { reach: Reach::Started, request }, RoomCall::Stats]
        {
            let (room, back) = decode_room_call(encode_room_call("clicks/acme", &call)).unwrap();
            assert_eq!((room.as_str(), format!("{back:?}")), ("clicks/acme", format!("{call:?}")));
        }
        for answer in [
            RoomAnswer::Response { status: 201, content_type: "application/json".into(), body: Bytes::from_static(b"{}") },
            RoomAnswer::Stats(RoomStats { connections: 3, wakeups: u64::MAX, awake: true }),
            RoomAnswer::NoRoom,
            RoomAnswer::Gone,
            RoomAnswer::Unavailable { why: "busy".into() },
        ] {
            assert_eq!(RoomAnswer::decode(answer.encode()), Ok(answer));
        }
    }

    #[test]
    fn truncated_or_invalid_room_calls_and_answers_are_refused() {
        let call = encode_room_call(
            "chat/x",
            &RoomCall::Request { reach: Reach::Existing, request: RoomRequest { method: "GET".into(), path: "/a".into(), body: Bytes::from_static(b"xyz") } },
        );
        for cut in 0..call.len() {
            assert!(decode_room_call(call.slice(..cut)).is_err(), "cut at {cut}");
        }
        let answer = RoomAnswer::Response { status: 200, content_type: "text/plain".into(), body: Bytes::from_static(b"ok") }.encode();
        for cut in 0..answer.len() {
            assert!(RoomAnswer::decode(answer.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut trailing = call.to_vec();
        trailing.push(0);
        assert!(decode_room_call(Bytes::from(trailing)).is_err());
        assert!(decode_room_call(Bytes::from_static(&[3, 1, b'a', 0])).is_err(), "stats carry nothing after the room");
        assert!(decode_room_call(Bytes::from_static(&[9, 1, b'a'])).is_err(), "unknown tag");
        // A status outside HTTP's range, a huge length, a bad flag.
        assert!(RoomAnswer::decode(Bytes::from_static(&[1, 0x80, 0x80, 0x04, 0, 0])).is_err());
        assert!(RoomAnswer::decode(Bytes::from_static(&[1, 200, 1, 0xff, 0xff, 0xff, 0xff, 0x0f])).is_err());
        assert!(RoomAnswer::decode(Bytes::from_static(&[2, 1, 1, 2])).is_err());
        assert!(decode_room_call(Bytes::from_static(&[1, 2, 0xff, 0xfe, 0, 0, 0])).is_err(), "a room name that is not UTF-8");
    }

    #[test]
    fn truncated_or_invalid_input_is_refused() {
        let bytes = Event::Messages { node: "a".into(), conn: 1, messages: vec![Message::text("hello")] }.encode();
        for cut in 0..bytes.len() {
            assert!(Event::decode(bytes.slice(..cut)).is_err(), "cut at {cut}");
        }
        let not_utf8 = encode_effects("a", &[Effect::Send { conn: 1, messages: vec![Message::Binary(Bytes::from_static(&[0xff]))] }]);
        let mut tampered = not_utf8.to_vec();
        let kind = tampered.len() - 3;
        tampered[kind] = TEXT;
        assert_eq!(decode_effects(Bytes::from(tampered)), Err(Malformed));
        assert_eq!(decode_effects(Bytes::from_static(&[1, b'a', 9])), Err(Malformed));
    }
}
