//! Paths to typed routes, parsed once at the edge.
//!
//! `ws(s)://host/rooms/{kind}/{id}` connects to room `{id}` of kind `{kind}`.
//! Room ids are 1–128 characters of `A-Z a-z 0-9 - _ .`: safe in paths, logs
//! and storage keys without escaping.

/// Longest room kind name.
pub const MAX_KIND_LEN: usize = 32;

/// True for a well-formed kind name: 1-32 of `a-z 0-9 - _`.
pub fn is_kind_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_KIND_LEN && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_'))
}

/// A validated room id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoomId(String);

/// Longest room id accepted.
pub const MAX_ROOM_ID_LEN: usize = 128;

impl RoomId {
    /// Validates a room id.
    pub fn parse(id: &str) -> Option<RoomId> {
        let valid = !id.is_empty()
            && id.len() <= MAX_ROOM_ID_LEN
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        valid.then(|| RoomId(id.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A room of a kind (whether the kind exists is the server's to say).
    Room {
        /// The kind's name.
        kind: String,
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
        let path = target.split(['?', '#']).next().unwrap_or_default();
        let mut parts = path.trim_start_matches('/').split('/');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("rooms"), Some(kind), Some(id), None) => {
                if !is_kind_name(kind) {
                    return Err(RouteError::UnknownKind(kind.to_owned()));
                }
                let id = RoomId::parse(id).ok_or(RouteError::BadRoomId)?;
                Ok(Route::Room { kind: kind.to_owned(), id })
            }
            _ => Err(RouteError::NotFound),
        }
    }
}

/// HTTP to a room: `/api/rooms/{kind}/{id}/{rest}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRoute {
    /// The room's kind.
    pub kind: String,
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
            if !is_kind_name(kind) {
                return Err(RouteError::UnknownKind(kind.to_owned()));
            }
            let id = RoomId::parse(id).ok_or(RouteError::BadRoomId)?;
            Ok(ApiRoute { kind: kind.to_owned(), id, rest })
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
            Ok(Route::Room { kind: "echo".into(), id: RoomId("autobahn".into()) })
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
