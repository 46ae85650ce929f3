//! Room kinds: the table the server routes by. The built-in kinds come from
//! `switchboard-apps`; users add their own with `Server::add_room_kind`.

use std::sync::Arc;

use foldhash::HashMap;
use switchboard_apps::AppsConfig;
use switchboard_room::RoomFactory;

/// A room kind as the server knows it.
#[derive(Clone)]
pub struct RoomKindSpec {
    /// Builds the kind's rooms.
    pub factory: Arc<dyn RoomFactory>,
    /// Subprotocols the kind speaks, in order of preference.
    pub subprotocols: Vec<String>,
}

/// Every kind by name. Fixed once the server runs, then shared read-only.
pub(crate) type Kinds = HashMap<String, RoomKindSpec>;

pub(crate) fn built_in(config: &AppsConfig) -> Kinds {
    switchboard_apps::built_in(config)
        .into_iter()
        .map(|k| (k.name.to_owned(), RoomKindSpec { factory: k.factory, subprotocols: k.subprotocols.iter().map(|p| p.to_string()).collect() }))
        .collect()
}
