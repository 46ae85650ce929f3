//! Helpers of the identity-at-the-edge tests: tokens signed as an issuer
//! would, and WebSocket handshakes with chosen headers and subprotocols
//! whose refusals come back as status and body.

#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The HS256 secret the tests give the server (in a temp file).
pub const SECRET: &str = "test-secret-0123456789abcdefghijklmnopqrstuvwxyz";

/// Waits at most this long for any one answer.
pub const WAIT: Duration = Duration::from_secs(10);

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// An HS256 token with these claims.
pub fn hs256(claims: Value, secret: &str) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.as_bytes()).unwrap()).unwrap()
}

/// A token signed with the private half of a test key pair
/// (tests/support/{ed25519,es256,rs256}-test-private.pem).
pub fn signed_with_test_key(algorithm: Algorithm, claims: Value) -> String {
    let key = match algorithm {
        Algorithm::EdDSA => EncodingKey::from_ed_pem(include_bytes!("ed25519-test-private.pem")),
        Algorithm::ES256 => EncodingKey::from_ec_pem(include_bytes!("es256-test-private.pem")),
        Algorithm::RS256 => EncodingKey::from_rsa_pem(include_bytes!("rs256-test-private.pem")),
        other => panic!("no test key for {other:?}"),
    };
    jsonwebtoken::encode(&Header::new(algorithm), &claims, &key.unwrap()).unwrap()
}

/// Path of a test key pair's public half: `ed25519`, `es256` or `rs256`.
pub fn test_public_key_path(name: &str) -> String {
    format!("{}/tests/support/{name}-test-public.pem", env!("CARGO_MANIFEST_DIR"))
}

/// A token for `sub` valid for an hour.
pub fn good(sub: &str) -> String {
    hs256(serde_json::json!({ "sub": sub, "exp": now() + 3600 }), SECRET)
}

/// A refused handshake: the status and the body's text.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    pub status: u16,
    pub body: String,
}

/// Opens `url` with extra headers and offered subprotocols; the socket and
/// the protocol the server selected, or the refusal.
pub async fn open(url: &str, headers: &[(&str, &str)], protocols: &[&str]) -> Result<(Ws, Option<String>), Refused> {
    open_from(None, url, headers, protocols).await
}

/// Like [`open`], from a chosen local address (`127.0.0.2`, say: loopback
/// has all of 127.0.0.0/8).
pub async fn open_from(local: Option<&str>, url: &str, headers: &[(&str, &str)], protocols: &[&str]) -> Result<(Ws, Option<String>), Refused> {
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
    }
    if !protocols.is_empty() {
        request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_str(&protocols.join(", ")).unwrap());
    }
    let authority = request.uri().authority().unwrap().as_str().to_owned();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{}:0", local.unwrap_or("127.0.0.1")).parse().unwrap()).unwrap();
    let stream = socket.connect(authority.parse().unwrap()).await.unwrap();
    let handshake = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream));
    match tokio::time::timeout(WAIT, handshake).await.expect("handshake in time") {
        Ok((ws, response)) => {
            let protocol = response.headers().get("sec-websocket-protocol").map(|v| v.to_str().unwrap().to_owned());
            Ok((ws, protocol))
        }
        Err(tungstenite::Error::Http(response)) => {
            let body = response.body().as_deref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
            Err(Refused { status: response.status().as_u16(), body })
        }
        Err(e) => panic!("handshake failed: {e}"),
    }
}

/// The next JSON text message.
pub async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(WAIT, ws.next()).await.expect("a message in time").expect("open").expect("no error");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// The chat's welcome: the name the room gave this member.
pub async fn chat_name(ws: &mut Ws) -> String {
    let welcome = next_json(ws).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    welcome["name"].as_str().unwrap().to_owned()
}

/// Sends a text and waits for the echo room's answer.
pub async fn echo_round_trip(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.unwrap();
    loop {
        let message = tokio::time::timeout(WAIT, ws.next()).await.expect("an echo in time").expect("open").expect("no error");
        if let Message::Text(echoed) = message {
            assert_eq!(echoed.as_str(), text);
            return;
        }
    }
}

/// Waits for the server's close frame; its code and reason.
pub async fn close_frame(ws: &mut Ws, within: Duration) -> (CloseCode, String) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let message = tokio::time::timeout_at(deadline, ws.next()).await.expect("closed in time").expect("a close frame").expect("no error");
        if let Message::Close(frame) = message {
            let frame = frame.expect("a close code");
            return (frame.code, frame.reason.to_string());
        }
    }
}
