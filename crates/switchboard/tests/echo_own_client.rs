//! The echo room through our own client, with and without compression.

mod common;

use common::ServerProcess;
use switchboard_client::{Client, ClientOptions, CloseCode, Event, Message};
use switchboard_proto::deflate::DeflateOptions;

fn options(deflate: bool) -> ClientOptions {
    ClientOptions { deflate: deflate.then(DeflateOptions::default), ..ClientOptions::default() }
}

#[tokio::test]
async fn echoes_text_and_binary_of_every_size_with_and_without_compression() {
    let server = ServerProcess::start();
    for deflate in [false, true] {
        let mut client = Client::connect_with(&server.ws("/rooms/echo/sizes"), options(deflate)).await.unwrap();
        assert_eq!(client.is_compressed(), deflate);
        for len in [0usize, 1, 125, 126, 65535, 65536, 1 << 20] {
            let text: String = (0..len).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            client.send_text(&text).await.unwrap();
            assert_eq!(client.recv_message().await.unwrap(), Message::text(text));
            let binary: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            client.send_binary(binary.clone()).await.unwrap();
            assert_eq!(client.recv_message().await.unwrap(), Message::binary(binary));
        }
        let reply = client.close(Some(CloseCode::NORMAL), "done").await.unwrap();
        assert_eq!(reply.code, Some(CloseCode::NORMAL));
    }
}

#[tokio::test]
async fn pipelined_messages_come_back_in_order() {
    let server = ServerProcess::start();
    for deflate in [false, true] {
        let mut client = Client::connect_with(&server.ws("/rooms/echo/pipeline"), options(deflate)).await.unwrap();
        for i in 0..500 {
            client.queue(&Message::text(format!("message {i}"))).unwrap();
        }
        client.flush().await.unwrap();
        for i in 0..500 {
            assert_eq!(client.recv_message().await.unwrap().as_text(), Some(format!("message {i}").as_str()));
        }
    }
}

#[tokio::test]
async fn pings_are_answered_with_the_same_payload() {
    let server = ServerProcess::start();
    let mut client = Client::connect(&server.ws("/rooms/echo/ping")).await.unwrap();
    client.ping(b"hello?").await.unwrap();
    assert_eq!(client.recv().await.unwrap(), Some(Event::Pong(bytes::Bytes::from_static(b"hello?"))));
}

#[tokio::test]
async fn the_json_subprotocol_is_chosen_only_when_offered() {
    let server = ServerProcess::start();
    let offer = |protocols: &[&str]| ClientOptions { protocols: protocols.iter().map(|p| p.to_string()).collect(), ..ClientOptions::default() };
    let client = Client::connect_with(&server.ws("/rooms/echo/p"), offer(&["xml", "json"])).await.unwrap();
    assert_eq!(client.protocol(), Some("json"));
    let client = Client::connect_with(&server.ws("/rooms/echo/p"), offer(&["xml"])).await.unwrap();
    assert_eq!(client.protocol(), None);
    let client = Client::connect_with(&server.ws("/rooms/echo/p"), offer(&[])).await.unwrap();
    assert_eq!(client.protocol(), None);
}

#[tokio::test]
async fn sigterm_closes_open_connections_with_going_away() {
    let mut server = ServerProcess::start();
    let mut client = Client::connect(&server.ws("/rooms/echo/bye")).await.unwrap();
    client.send_text("still here").await.unwrap();
    assert_eq!(client.recv_message().await.unwrap(), Message::text("still here"));
    let exit = tokio::task::spawn_blocking(move || server.terminate());
    match client.recv().await.unwrap() {
        Some(Event::Close(frame)) => assert_eq!(frame.code, Some(CloseCode::GOING_AWAY)),
        other => panic!("expected a close frame, got {other:?}"),
    }
    assert_eq!(client.recv().await.unwrap(), None, "the server ends the TCP connection after the handshake");
    let exit = exit.await.unwrap();
    assert!(exit.success(), "exit status {exit:?}");
}
