//! The built-in room kinds, written only against the public room API like
//! any user's room: `echo` (the conformance target), `broadcast` (welcome,
//! visitor count, relay), `chat` (the group chat of docs/chat.md) and
//! `call` (the video-call signaling of docs/call.md); and `clicks` (the
//! live click dashboard of docs/clicks.md), which the server registers
//! itself since its rooms need the server's link table.
//!
//! Each kind comes as a [`KindDef`]: its name, the subprotocols it speaks
//! and the factory that builds its rooms. The server registers them all.

pub mod broadcast;
pub mod call;
pub mod chat;
pub mod clicks;
pub mod echo;
mod rate;

use std::sync::Arc;

use switchboard_room::RoomFactory;

pub use call::CallConfig;
pub use chat::ChatConfig;

/// A room kind ready to register with a server.
pub struct KindDef {
    /// The kind's name: rooms are at `/rooms/{name}/{id}`.
    pub name: &'static str,
    /// Subprotocols, in order of preference.
    pub subprotocols: &'static [&'static str],
    /// Builds the kind's rooms.
    pub factory: Arc<dyn RoomFactory>,
}

/// Settings of the built-in kinds.
#[derive(Debug, Clone, Default)]
pub struct AppsConfig {
    /// The chat's limits.
    pub chat: ChatConfig,
    /// The call's limits and ICE servers.
    pub call: CallConfig,
}

/// Every built-in kind.
pub fn built_in(config: &AppsConfig) -> Vec<KindDef> {
    vec![
        KindDef { name: "echo", subprotocols: &["json"], factory: echo::factory() },
        KindDef { name: "broadcast", subprotocols: &["json"], factory: broadcast::factory() },
        KindDef { name: "chat", subprotocols: &["json"], factory: chat::factory(config.chat) },
        KindDef { name: "call", subprotocols: &["json"], factory: call::factory(config.call.clone()) },
    ]
}
