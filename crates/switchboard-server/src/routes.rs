//! Paths to typed routes, parsed once at the edge.
//!
//! `ws(s)://host/rooms/{kind}/{id}` connects to room `{id}` of kind `{kind}`.
//! Room ids are 1–128 characters of `A-Z a-z 0-9 - _ .`: safe in paths, logs
//! and storage keys without escaping.

use switchboard_room::MAX_ROOM_ID_LEN;
pub use switchboard_room::{RoomId, RoomKind};

/// True for a well-formed kind name: 1-32 of `a-z 0-9 - _`.
pub fn is_kind_name(name: &str) -> bool {
    RoomKind::parse(name).is_some()
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A room of a kind (whether the kind exists is the server's to say).
    Room {
        /// The kind's name.
        kind: RoomKind,
        /// The room.
        id: RoomId,
    },
}

/// Why a path has no WebSocket route; becomes the 404 body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// Not under `/rooms/`.
    NotFound,
    /// `/rooms/{kind}` with a kind the server does not have.
    UnknownKind(String),
    /// An id with characters outside the allowed set, empty, or too long.
    BadRoomId,
}

impl std::fmt::Display for RouteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteError::NotFound => f.write_str("no WebSocket endpoint at this path; rooms are at /rooms/{kind}/{id}"),
            RouteError::UnknownKind(kind) => write!(f, "unknown room kind {kind:?}"),
            RouteError::BadRoomId => write!(f, "room ids are 1-{MAX_ROOM_ID_LEN} characters of A-Z a-z 0-9 - _ ."),
        }
    }
}

impl Route {
    /// Parses a request target (the query string is ignored here).
    pub fn parse(target: &str) -> Result<Route, RouteError> {
        // Bytes, not chars: both delimiters are ASCII, and a search for
        // either of two chars decodes every char of the target.
        let end = target.bytes().position(|b| b == b'?' || b == b'#').unwrap_or(target.len());
        let mut parts = target[..end].trim_start_matches('/').split('/');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("rooms"), Some(kind), Some(id), None) => {
                let kind = RoomKind::parse(kind).ok_or_else(|| RouteError::UnknownKind(kind.to_owned()))?;
                let id = RoomId::parse(id).ok_or(RouteError::BadRoomId)?;
                Ok(Route::Room { kind, id })
            }
            _ => Err(RouteError::NotFound),
        }
    }
}

/// HTTP to a room: `/api/rooms/{kind}/{id}/{rest}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRoute {
    /// The room's kind.
    pub kind: RoomKind,
    /// The room.
    pub id: RoomId,
    /// What follows the id, starting with `/` (just `/` when nothing does).
    pub rest: String,
}

impl ApiRoute {
    /// `None` when the path is not under `/api/rooms/`.
    pub fn parse(path: &str) -> Option<Result<ApiRoute, RouteError>> {
        let tail = path.strip_prefix("/api/rooms/")?;
        let mut parts = tail.splitn(3, '/');
        let (Some(kind), Some(id)) = (parts.next(), parts.next()) else { return Some(Err(RouteError::NotFound)) };
        let rest = format!("/{}", parts.next().unwrap_or(""));
        Some((|| {
            let kind = RoomKind::parse(kind).ok_or_else(|| RouteError::UnknownKind(kind.to_owned()))?;
            let id = RoomId::parse(id).ok_or(RouteError::BadRoomId)?;
            Ok(ApiRoute { kind, id, rest })
        })())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_paths_parse() {
        assert_eq!(
            Route::parse("/rooms/echo/autobahn?agent=x"),
            Ok(Route::Room { kind: RoomKind::parse("echo").unwrap(), id: RoomId::parse("autobahn").unwrap() })
        );
    }

    #[test]
    fn api_paths_parse() {
        let route = ApiRoute::parse("/api/rooms/broadcast/r1/events/x").unwrap().unwrap();
        assert_eq!((route.kind.as_str(), route.id.as_str(), route.rest.as_str()), ("broadcast", "r1", "/events/x"));
        assert_eq!(ApiRoute::parse("/api/rooms/echo/r1").unwrap().unwrap().rest, "/");
        assert_eq!(ApiRoute::parse("/api/rooms/No!/r1"), Some(Err(RouteError::UnknownKind("No!".into()))));
        assert_eq!(ApiRoute::parse("/healthz"), None);
    }

    #[test]
    fn bad_paths_are_explained() {
        assert_eq!(Route::parse("/"), Err(RouteError::NotFound));
        assert_eq!(Route::parse("/rooms/echo"), Err(RouteError::NotFound));
        assert_eq!(Route::parse("/rooms/echo/a/b"), Err(RouteError::NotFound));
        assert_eq!(Route::parse("/rooms/Bad.Kind/x"), Err(RouteError::UnknownKind("Bad.Kind".into())));
        assert_eq!(Route::parse("/rooms/echo/"), Err(RouteError::BadRoomId));
        assert_eq!(Route::parse("/rooms/echo/a%20b"), Err(RouteError::BadRoomId));
        assert_eq!(Route::parse(&format!("/rooms/echo/{}", "a".repeat(129))), Err(RouteError::BadRoomId));
    }
}
