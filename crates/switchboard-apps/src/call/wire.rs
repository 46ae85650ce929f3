//! The call's JSON messages (docs/call.md is their reference): what the
//! server sends, and the three messages a client sends, parsed once into
//! [`ClientMessage`].

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::ice::IceServers;

/// A peer as the others see it; also what its connection's attachment
/// holds, so the room knows its peers after hibernating.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Peer {
    /// The peer id: 128 random bits, 32 hex digits.
    pub id: String,
    /// The display name the peer chose; empty until it sends one.
    pub name: String,
    /// The microphone is off.
    pub muted: bool,
    /// The camera is off.
    pub camera_off: bool,
}

/// The limits a client is told in `joined`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Peers per call.
    pub max_peers: usize,
    /// Largest `data` of a signal, in bytes of JSON text.
    pub max_signal_bytes: usize,
    /// Messages per second per peer, sustained.
    pub per_second: u32,
    /// Messages a peer may send in a burst.
    pub burst: u32,
    /// Longest name, in characters.
    pub max_name_length: usize,
}

/// Why a message was refused; the `code` of an `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not a well-formed client message.
    BadMessage,
    /// A signal's `to` is not another peer of this call.
    UnknownTarget,
    /// A signal's data or a name over its limit.
    TooLarge,
    /// Over the rate limit.
    RateLimited,
    /// The call has as many peers as it may; the connection is closed.
    RoomFull,
}

/// Everything the server sends. The fields are the JSON fields of
/// docs/call.md, which documents each one.
#[allow(missing_docs)]
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ServerMessage<'a> {
    /// To the newcomer: who it is, who is there, how to reach them.
    Joined { id: &'a str, room: &'a str, peers: &'a [Peer], ice: &'a IceServers, limits: Limits },
    /// To the others when a peer joins.
    PeerJoined { peer: &'a Peer },
    /// To the others when a peer's connection ends, however it ends.
    PeerLeft { id: &'a str },
    /// To the one peer a signal is for; `from` is set by the server.
    Signal { from: &'a str, data: &'a RawValue },
    /// To the others when a peer changes its name or media state.
    PeerState { peer: &'a Peer },
    /// To one client.
    Error {
        code: ErrorCode,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        to: Option<&'a str>,
    },
}

impl ServerMessage<'_> {
    /// The JSON text.
    pub fn to_json(&self) -> String {
        // Strings, numbers, booleans and JSON already validated: serialising
        // cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What a client sends.
#[derive(Debug)]
pub enum ClientMessage<'a> {
    /// Relay `data` (an SDP description, an ICE candidate: anything JSON but
    /// `null`) to peer `to`, unchanged.
    Signal {
        /// The peer it is for.
        to: String,
        /// The payload, exactly as the client wrote it.
        data: &'a RawValue,
    },
    /// The client's media state; a field left out keeps its value.
    State {
        /// The microphone is off.
        muted: Option<bool>,
        /// The camera is off.
        camera_off: Option<bool>,
    },
    /// The client's display name.
    Name {
        /// The name, as sent (checked by the room).
        name: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Kind {
    Signal,
    State,
    Name,
}

/// Every field any client message has, so that `data` can be borrowed as
/// raw JSON (serde cannot hand a `RawValue` through an internally tagged
/// enum). [`ClientMessage::parse`] then checks that each type has only
/// its own fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: Kind,
    #[serde(default)]
    to: Option<String>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
    /// A sender cannot name itself: the server sets `from`. A client that
    /// echoes one back is not refused for it, and it is never read.
    #[serde(default)]
    #[allow(dead_code)]
    from: Option<IgnoredAny>,
    #[serde(default)]
    muted: Option<bool>,
    #[serde(default)]
    camera_off: Option<bool>,
    #[serde(default)]
    name: Option<String>,
}

impl<'a> ClientMessage<'a> {
    /// The message in `json`; `None` if it is not one of the three, or has
    /// fields its type does not.
    pub fn parse(json: &'a [u8]) -> Option<ClientMessage<'a>> {
        let Envelope { kind, to, data, from: _, muted, camera_off, name } = serde_json::from_slice(json).ok()?;
        match kind {
            Kind::Signal if muted.is_none() && camera_off.is_none() && name.is_none() => Some(ClientMessage::Signal { to: to?, data: data? }),
            Kind::State if to.is_none() && data.is_none() && name.is_none() => Some(ClientMessage::State { muted, camera_off }),
            Kind::Name if to.is_none() && data.is_none() && muted.is_none() && camera_off.is_none() => Some(ClientMessage::Name { name: name? }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_parse_with_their_own_fields_only() {
        let signal = br#"{"type":"signal","to":"ab","data":{"sdp":"v=0\r\n","type":"offer"}}"#;
        let Some(ClientMessage::Signal { to, data }) = ClientMessage::parse(signal) else { panic!("a signal") };
        assert_eq!((to.as_str(), data.get()), ("ab", r#"{"sdp":"v=0\r\n","type":"offer"}"#), "data is kept exactly as sent");
        assert!(matches!(ClientMessage::parse(br#"{"type":"state","muted":true}"#), Some(ClientMessage::State { muted: Some(true), camera_off: None })));
        let both = ClientMessage::parse(br#"{"type":"state","muted":false,"cameraOff":true}"#);
        assert!(matches!(both, Some(ClientMessage::State { muted: Some(false), camera_off: Some(true) })));
        assert!(matches!(ClientMessage::parse(br#"{"type":"name","name":"Ada"}"#), Some(ClientMessage::Name { name }) if name == "Ada"));
        // A `from` is accepted and never read.
        assert!(matches!(ClientMessage::parse(br#"{"type":"signal","to":"ab","from":"cd","data":1}"#), Some(ClientMessage::Signal { .. })));
        for bad in [
            &br#"{"type":"signal","to":"ab"}"#[..],
            br#"{"type":"signal","data":{}}"#,
            br#"{"type":"signal","to":"ab","data":null}"#,
            br#"{"type":"signal","to":"ab","data":{},"muted":true}"#,
            br#"{"type":"signal","to":7,"data":{}}"#,
            br#"{"type":"state","muted":"yes"}"#,
            br#"{"type":"state","name":"x"}"#,
            br#"{"type":"name"}"#,
            br#"{"type":"name","name":"x","to":"ab"}"#,
            br#"{"type":"hello"}"#,
            br#"{"type":"state","extra":1}"#,
            br#"{"to":"ab","data":{}}"#,
            b"[]",
            b"not json",
        ] {
            assert!(ClientMessage::parse(bad).is_none(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn server_messages_have_their_documented_shape() {
        let data = RawValue::from_string(r#"{"candidate":"x"}"#.into()).unwrap();
        assert_eq!(ServerMessage::Signal { from: "ab", data: &data }.to_json(), r#"{"type":"signal","from":"ab","data":{"candidate":"x"}}"#);
        let peer = Peer { id: "ab".into(), name: "Ada".into(), muted: true, camera_off: false };
        assert_eq!(
            ServerMessage::PeerState { peer: &peer }.to_json(),
            r#"{"type":"peer-state","peer":{"id":"ab","name":"Ada","muted":true,"cameraOff":false}}"#
        );
        assert_eq!(ServerMessage::PeerLeft { id: "ab" }.to_json(), r#"{"type":"peer-left","id":"ab"}"#);
        let error = ServerMessage::Error { code: ErrorCode::UnknownTarget, message: "m", to: Some("cd") };
        assert_eq!(error.to_json(), r#"{"type":"error","code":"unknown_target","message":"m","to":"cd"}"#);
        let error = ServerMessage::Error { code: ErrorCode::RateLimited, message: "m", to: None };
        assert_eq!(error.to_json(), r#"{"type":"error","code":"rate_limited","message":"m"}"#);
    }
}
