//! tokio-tungstenite peer: `/…broadcast…` paths join one shared room that
//! relays every message to every other member; any other path echoes.
//! Written the way a careful user of the library would: replies are fed and
//! flushed once per batch of ready messages, and room members are reached
//! through per-connection channels.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

type Members = Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Message>>>>;

#[tokio::main]
async fn main() {
    let listen = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = TcpListener::bind(&listen).await.expect("bind");
    println!("listening on http://{}", listener.local_addr().unwrap());
    let members: Members = Arc::default();
    let mut next_id = 0u64;
    loop {
        let (stream, _) = listener.accept().await.expect("accept");
        next_id += 1;
        tokio::spawn(serve(stream, next_id, members.clone()));
    }
}

async fn serve(stream: TcpStream, id: u64, members: Members) {
    let _ = stream.set_nodelay(true);
    let mut path = String::new();
    let callback = |req: &Request, resp: Response| {
        path = req.uri().path().to_owned();
        Ok(resp)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else { return };
    if path.contains("broadcast") {
        broadcast(ws, id, members).await;
    } else {
        echo(ws).await;
    }
}

async fn echo(mut ws: tokio_tungstenite::WebSocketStream<TcpStream>) {
    while let Some(Ok(message)) = ws.next().await {
        if message.is_text() || message.is_binary() {
            if ws.feed(message).await.is_err() {
                return;
            }
        }
        while let Some(Some(Ok(message))) = ws.next().now_or_never() {
            if (message.is_text() || message.is_binary()) && ws.feed(message).await.is_err() {
                return;
            }
        }
        if ws.flush().await.is_err() {
            return;
        }
    }
}

async fn broadcast(ws: tokio_tungstenite::WebSocketStream<TcpStream>, id: u64, members: Members) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    members.lock().unwrap().insert(id, tx);
    let (mut sink, mut stream) = ws.split();
    let writer = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            if sink.feed(message).await.is_err() {
                return;
            }
            while let Ok(message) = rx.try_recv() {
                if sink.feed(message).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    while let Some(Ok(message)) = stream.next().await {
        if message.is_text() || message.is_binary() {
            for (other, tx) in members.lock().unwrap().iter() {
                if *other != id {
                    let _ = tx.send(message.clone());
                }
            }
        }
    }
    members.lock().unwrap().remove(&id);
    writer.abort();
}
