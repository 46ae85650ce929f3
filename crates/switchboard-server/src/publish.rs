//! The HTTP publish API, for backends: `POST /api/rooms/{kind}/{id}/publish`
//! delivers its body to one room's connections, `POST /api/publish` a list
//! of messages to many rooms; both answer how many connections they
//! reached. Both need `Authorization: Bearer KEY` with the server's
//! publish key (compared in constant time); without a configured key the
//! API is off.
//!
//! A publication goes through the room (`Room::on_publish`), which may
//! refuse or transform it. Only rooms whose actor runs are reached: a room
//! that runs has every connection it has; one that does not has none, so
//! the answer is 0 and nothing is started (anyone with the key could
//! otherwise fill the server with rooms). See docs/publish.md.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::value::RawValue;
use subtle::ConstantTimeEq;
use switchboard_room::{Message, Published, RoomGone};

use crate::http::{json, read_body, text, HttpSettings, MAX_ROOM_REQUEST_BODY};
use crate::registry::Registry;
use crate::routes::{ApiRoute, RoomId, RoomKind};

/// Most messages in one batch: a larger list is refused whole (413), so a
/// request costs a bounded amount of room work.
pub(crate) const MAX_BATCH: usize = 1000;

/// The bearer key publishers must present.
#[derive(Clone)]
pub struct PublishKey(String);

impl PublishKey {
    /// The key in a key file's text (white space around it ignored);
    /// `None` if it is empty.
    pub fn from_file_text(text: &str) -> Option<PublishKey> {
        let key = text.trim();
        (!key.is_empty()).then(|| PublishKey(key.to_owned()))
    }

    fn matches(&self, presented: &[u8]) -> bool {
        // Constant time in the content; only a length mismatch returns early.
        self.0.as_bytes().ct_eq(presented).into()
    }
}

impl std::fmt::Debug for PublishKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PublishKey(***)")
    }
}

/// 401 without the right key, 403 when the API is off, 405 for anything
/// but POST.
fn authorize(req: &Request<Incoming>, settings: &HttpSettings) -> Result<(), Box<Response<Full<Bytes>>>> {
    if req.method() != Method::POST {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "publish with POST\n");
        response.headers_mut().insert(hyper::header::ALLOW, HeaderValue::from_static("POST"));
        return Err(Box::new(response));
    }
    let Some(key) = &settings.publish_key else {
        return Err(Box::new(text(StatusCode::FORBIDDEN, "the publish API is off: start the server with --publish-key-file\n")));
    };
    let presented = req.headers().get(AUTHORIZATION).and_then(|v| {
        let v = v.as_bytes();
        (v.len() > 7 && v[..7].eq_ignore_ascii_case(b"bearer ")).then(|| v[7..].trim_ascii())
    });
    if presented.is_some_and(|p| key.matches(p)) {
        return Ok(());
    }
    let mut response = text(StatusCode::UNAUTHORIZED, "publishing needs Authorization: Bearer <publish key>\n");
    response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Err(Box::new(response))
}

/// What one publication came to.
enum Outcome {
    Reached(usize),
    Refused(StatusCode, String),
}

/// Publishes to one room if its actor runs.
async fn deliver(registry: &Registry, kind: &RoomKind, id: &RoomId, message: Message) -> Outcome {
    if !registry.has_kind(kind) {
        return Outcome::Refused(StatusCode::NOT_FOUND, format!("unknown room kind {:?}", kind.as_str()));
    }
    // In cluster mode the room runs on its owner, wherever that is.
    let published = match registry.cluster() {
        Some(cluster) => cluster.publish(&switchboard_room::RoomName::new(kind.clone(), id.clone()), message).await,
        None => match registry.live_room(kind, id.clone()) {
            Some(room) => room.publish(message).await,
            None => Err(RoomGone),
        },
    };
    match published {
        Ok(Published::Delivered(n)) => Outcome::Reached(n),
        Ok(Published::Refused { status, reason }) => Outcome::Refused(StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN), reason),
        // Not running, or it stopped in between: it had no connections left.
        Err(RoomGone) => Outcome::Reached(0),
    }
}

/// The body as a message: text for JSON (validated) and `text/*` (UTF-8),
/// binary for anything else.
fn body_message(content_type: Option<&str>, body: Bytes) -> Result<Message, String> {
    let media = content_type.unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let is_json = media == "application/json" || media.ends_with("+json");
    if is_json || media.starts_with("text/") {
        let text = String::from_utf8(body.to_vec()).map_err(|_| "the body is not UTF-8 text".to_owned())?;
        if is_json {
            serde_json::from_str::<&RawValue>(&text).map_err(|e| format!("the body is not JSON: {e}"))?;
        }
        return Ok(Message::text(text));
    }
    Ok(Message::binary(body))
}

/// `POST /api/rooms/{kind}/{id}/publish`: `{"reached":N}`.
pub(crate) async fn one(req: Request<Incoming>, api: ApiRoute, registry: &Registry, settings: &HttpSettings) -> Response<Full<Bytes>> {
    if let Err(refused) = authorize(&req, settings) {
        return *refused;
    }
    let content_type = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = match read_body(req.into_body(), MAX_ROOM_REQUEST_BODY, settings.body_timeout).await {
        Ok(body) => body,
        Err(refused) => return *refused,
    };
    let message = match body_message(content_type.as_deref(), body) {
        Ok(message) => message,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    match deliver(registry, &api.kind, &api.id, message).await {
        Outcome::Reached(n) => json(format!(r#"{{"reached":{n}}}"#)),
        Outcome::Refused(status, reason) => error(status, &reason),
    }
}

/// One entry of a batch.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry<'a> {
    kind: String,
    id: String,
    /// A JSON string is sent as its text; any other JSON value as the JSON.
    #[serde(borrow)]
    data: &'a RawValue,
}

/// `POST /api/publish` with `[{"kind","id","data"}, ...]`: publishes each
/// in order and answers `{"reached":TOTAL,"results":[{"reached":N} or
/// {"status":S,"error":"..."}]}`, one result per entry.
pub(crate) async fn batch(req: Request<Incoming>, registry: &Registry, settings: &HttpSettings) -> Response<Full<Bytes>> {
    if let Err(refused) = authorize(&req, settings) {
        return *refused;
    }
    let body = match read_body(req.into_body(), MAX_ROOM_REQUEST_BODY, settings.body_timeout).await {
        Ok(body) => body,
        Err(refused) => return *refused,
    };
    let entries: Vec<Entry<'_>> = match serde_json::from_slice(&body) {
        Ok(entries) => entries,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("expected [{{\"kind\":..,\"id\":..,\"data\":..}}, ...]: {e}")),
    };
    if entries.len() > MAX_BATCH {
        return error(StatusCode::PAYLOAD_TOO_LARGE, &format!("at most {MAX_BATCH} messages per batch"));
    }
    let mut total = 0;
    let mut results = Vec::with_capacity(entries.len());
    for entry in entries {
        let outcome = match (RoomKind::parse(&entry.kind), RoomId::parse(&entry.id)) {
            (Some(kind), Some(id)) => {
                let data = match serde_json::from_str::<String>(entry.data.get()) {
                    Ok(text) => text,
                    Err(_) => entry.data.get().to_owned(),
                };
                deliver(registry, &kind, &id, Message::text(data)).await
            }
            (None, _) => Outcome::Refused(StatusCode::NOT_FOUND, format!("unknown room kind {:?}", entry.kind)),
            (_, None) => Outcome::Refused(StatusCode::BAD_REQUEST, "bad room id".to_owned()),
        };
        results.push(match outcome {
            Outcome::Reached(n) => {
                total += n;
                format!(r#"{{"reached":{n}}}"#)
            }
            Outcome::Refused(status, reason) => format!(r#"{{"status":{},"error":{}}}"#, status.as_u16(), json_string(&reason)),
        });
    }
    json(format!(r#"{{"reached":{total},"results":[{}]}}"#, results.join(",")))
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

fn error(status: StatusCode, reason: &str) -> Response<Full<Bytes>> {
    let mut response = json(format!(r#"{{"error":{}}}"#, json_string(reason)));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_become_text_or_binary_by_content_type() {
        let text = |m: Message| m.as_text().map(str::to_owned);
        assert_eq!(text(body_message(Some("application/json"), Bytes::from_static(b"{\"a\":1}")).unwrap()).as_deref(), Some("{\"a\":1}"));
        assert_eq!(text(body_message(Some("text/plain; charset=utf-8"), Bytes::from_static(b"hi")).unwrap()).as_deref(), Some("hi"));
        assert!(body_message(Some("application/json"), Bytes::from_static(b"{nope")).is_err());
        assert!(body_message(Some("text/plain"), Bytes::from_static(b"\xff")).is_err());
        assert_eq!(body_message(Some("application/octet-stream"), Bytes::from_static(b"\xff")).unwrap(), Message::binary(vec![0xff]));
    }

    #[test]
    fn keys_match_exactly() {
        let key = PublishKey::from_file_text("  s3cret\n").unwrap();
        assert!(key.matches(b"s3cret"));
        assert!(!key.matches(b"s3cre"));
        assert!(!key.matches(b"s3cret2"));
        assert!(PublishKey::from_file_text(" \n").is_none());
        assert_eq!(format!("{key:?}"), "PublishKey(***)");
    }
}
