//! Endpoint role and protocol limits.

/// Which end of the connection this engine is. The role decides masking:
/// clients must mask every frame, servers must never mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Accepts connections; expects masked frames, sends unmasked ones.
    Server,
    /// Opens connections; expects unmasked frames, sends masked ones.
    Client,
}

/// Limits of one connection. Every field is a named limit with a default that
/// says why it is what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Largest single frame payload accepted (close 1009 above it).
    /// Default 16 MiB: a frame is buffered whole before it is delivered, so
    /// this bounds the read buffer of one connection.
    pub max_frame_size: usize,
    /// Largest message accepted after reassembly and inflation (close 1009
    /// above it). Default 16 MiB: large enough for Autobahn's 16 MiB cases and
    /// real file transfers in one message, small enough that a few hundred
    /// hostile peers cannot exhaust a server's memory.
    pub max_message_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config { max_frame_size: 16 << 20, max_message_size: 16 << 20 }
    }
}
