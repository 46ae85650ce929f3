//! The built-in room kinds, written only against the public room API like
//! any user's room: `echo` (the conformance target), `broadcast` (welcome,
//! visitor count, relay) and `chat` (the group chat of docs/chat.md).
//!
//! Each kind comes as a [`KindDef`]: its name, the subprotocols it speaks
//! and the factory that builds its rooms. The server registers them all.

pub mod broadcast;
pub mod chat;
pub mod echo;

use std::sync::Arc;

use switchboard_room::RoomFactory;

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
}

/// Every built-in kind.
pub fn built_in(config: &AppsConfig) -> Vec<KindDef> {
    vec![
        KindDef { name: "echo", subprotocols: &["json"], factory: echo::factory() },
        KindDef { name: "broadcast", subprotocols: &["json"], factory: broadcast::factory() },
        KindDef { name: "chat", subprotocols: &["json"], factory: chat::factory(config.chat) },
    ]
}
