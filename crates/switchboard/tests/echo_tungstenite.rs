//! The echo room through an independent client library (tokio-tungstenite).

mod common;

use common::ServerProcess;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn text_binary_ping_and_close_round_trip() {
    let server = ServerProcess::start();
    let (mut ws, response) = tokio_tungstenite::connect_async(server.ws("/rooms/echo/tt")).await.unwrap();
    assert_eq!(response.status(), 101);
    ws.send(Message::text("héllo")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("héllo"));
    let big: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
    ws.send(Message::binary(big.clone())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(big));
    ws.send(Message::Ping(b"p1".to_vec().into())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::Pong(b"p1".to_vec().into()));
    ws.send(Message::Close(Some(CloseFrame { code: CloseCode::Library(4001), reason: "bye".into() }))).await.unwrap();
    match ws.next().await.unwrap().unwrap() {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Library(4001), "the close code is echoed"),
        other => panic!("expected close, got {other:?}"),
    }
    assert!(ws.next().await.is_none(), "then the server ends the connection");
}

#[tokio::test]
async fn many_concurrent_clients_each_get_their_own_echoes() {
    let server = ServerProcess::start();
    let mut tasks = Vec::new();
    for c in 0..50 {
        let url = server.ws(&format!("/rooms/echo/room{}", c % 5));
        tasks.push(tokio::spawn(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
            for i in 0..100 {
                ws.feed(Message::text(format!("{c}:{i}"))).await.unwrap();
            }
            ws.flush().await.unwrap();
            for i in 0..100 {
                assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(format!("{c}:{i}")));
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test]
async fn subprotocol_is_negotiated_with_an_independent_client() {
    let server = ServerProcess::start();
    let mut request = server.ws("/rooms/echo/sp").into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "chat, json".parse().unwrap());
    let (_ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.headers().get("sec-websocket-protocol").unwrap(), "json");
}
