//! One connection's permessage-deflate: which codec each direction uses.
//!
//! A direction without context takeover uses the thread's shared codec
//! (see `pool`) and keeps nothing per connection. A direction with context
//! takeover needs its own state, made on the first compressed message. Our
//! own compressor may also be dropped at any time ([`Outgoing::release`]):
//! a message compressed from a fresh state refers to nothing earlier, which
//! every peer decodes whatever window it keeps.

use bytes::Bytes;

use super::codec::{Compressor, Decompressor};
use super::{pool, DeflateParams};
use crate::config::Role;
use crate::error::ProtocolError;

/// How our side compresses its messages on one connection.
pub struct Outgoing {
    window_bits: u8,
    level: u8,
    /// We keep our context between messages (no `*_no_context_takeover` for our side).
    takeover: bool,
    threshold: u32,
    own: Option<Box<Compressor>>,
}

impl Outgoing {
    /// The compressor of `role`'s messages under `params`.
    pub fn new(params: &DeflateParams, role: Role) -> Outgoing {
        let config = &params.config;
        let (window_bits, no_takeover) = match role {
            Role::Server => (config.server_max_window_bits, config.server_no_context_takeover),
            Role::Client => (config.client_max_window_bits, config.client_no_context_takeover),
        };
        Outgoing {
            window_bits,
            level: params.level.min(9) as u8,
            takeover: !no_takeover,
            threshold: params.threshold.try_into().unwrap_or(u32::MAX),
            own: None,
        }
    }

    /// The compressed payload of a message, or `None` when it is below the
    /// threshold and goes out as it is (RSV1 clear).
    pub fn compress(&mut self, payload: &[u8]) -> Option<Bytes> {
        if payload.len() < self.threshold as usize {
            return None;
        }
        Some(match self.takeover {
            false => pool::compress(self.window_bits, u32::from(self.level), payload),
            true => {
                let (bits, level) = (self.window_bits, u32::from(self.level));
                self.own.get_or_insert_with(|| Box::new(Compressor::with_window(bits, level, false))).compress(payload)
            }
        })
    }

    /// For a compressor without context: a key equal for every connection
    /// whose compressed messages are byte for byte the same, so a message
    /// to many is compressed once. `None` under context takeover.
    pub fn shared_key(&self) -> Option<u64> {
        (!self.takeover).then(|| u64::from(self.window_bits) << 40 | u64::from(self.level) << 32 | u64::from(self.threshold))
    }

    /// A second handle on a compressor without context (it keeps nothing
    /// per connection, so two handles compress alike, each message on its
    /// own); `None` under context takeover, whose state cannot be shared.
    pub fn shared_copy(&self) -> Option<Outgoing> {
        (!self.takeover).then(|| Outgoing { own: None, ..*self })
    }

    /// True while this connection holds its own compressor.
    pub fn holds_state(&self) -> bool {
        self.own.is_some()
    }

    /// True when it keeps nothing between messages and holds no codec:
    /// a copy of its settings compresses alike.
    pub(crate) fn is_stateless(&self) -> bool {
        !self.takeover && self.own.is_none()
    }

    /// Drops our own compressor; the next message starts from a fresh one.
    pub fn release(&mut self) {
        self.own = None;
    }
}

/// How we inflate the peer's messages on one connection.
pub struct Incoming {
    /// The peer keeps its context between messages.
    takeover: bool,
    own: Option<Box<Decompressor>>,
}

impl Incoming {
    /// The decompressor of messages from `role`'s peer under `params`.
    pub fn new(params: &DeflateParams, role: Role) -> Incoming {
        let no_takeover = match role {
            Role::Server => params.config.client_no_context_takeover,
            Role::Client => params.config.server_no_context_takeover,
        };
        Incoming { takeover: !no_takeover, own: None }
    }

    /// Inflates one message, at most `max_size` bytes.
    pub fn decompress(&mut self, payload: &[u8], max_size: usize) -> Result<Bytes, ProtocolError> {
        match self.takeover {
            false => pool::decompress(payload, max_size),
            true => self.own.get_or_insert_with(|| Box::new(Decompressor::with_takeover(false))).decompress(payload, max_size),
        }
    }

    /// True while this connection holds its own decompressor.
    pub fn holds_state(&self) -> bool {
        self.own.is_some()
    }

    /// True when the peer keeps no context and no decompressor is held.
    pub(crate) fn is_stateless(&self) -> bool {
        !self.takeover && self.own.is_none()
    }

    /// The decompressor of a peer that keeps no context.
    pub(crate) fn stateless() -> Incoming {
        Incoming { takeover: false, own: None }
    }
}
