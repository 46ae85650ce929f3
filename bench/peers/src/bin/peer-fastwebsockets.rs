//! fastwebsockets peer (hyper upgrade): `/…broadcast…` paths join one shared
//! room that relays every message to every other member; any other path
//! echoes. Same path rule and room shape as the tokio-tungstenite peer.
//!
//! Written the way a careful user of the library would. Echo writes each
//! reply straight back, as the crate's own echo example does. Broadcast splits
//! the socket (the crate's `unstable-split` API): a writer task per member
//! owns the write half behind a `BufWriter`, writes every frame that is ready
//! and flushes once, since fastwebsockets otherwise issues one system call
//! per frame. The relayed payload is a `Bytes` taken from the read buffer
//! without copying and shared by every recipient; fastwebsockets has no
//! pre-encoded frame type, so each write formats its own 2-byte header.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use fastwebsockets::{upgrade, FragmentCollectorRead, Frame, OpCode, Payload, WebSocketError};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::BufWriter;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// What a member's writer task sends: a relayed message, or a frame the
/// protocol obliges the reader to answer with (pong, close echo).
enum Outgoing {
    Message(OpCode, Bytes),
    Control(Frame<'static>),
}

type Members = Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Outgoing>>>>;

#[tokio::main]
async fn main() {
    let listen = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = TcpListener::bind(&listen).await.expect("bind");
    println!("listening on http://{}", listener.local_addr().unwrap());
    let members: Members = Arc::default();
    let mut next_id = 0u64;
    loop {
        let (stream, _) = listener.accept().await.expect("accept");
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let (id, members) = (next_id, members.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req| upgrade_request(req, id, members.clone()));
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service).with_upgrades();
            let _ = conn.await;
        });
    }
}

async fn upgrade_request(mut req: Request<Incoming>, id: u64, members: Members) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let joins_room = req.uri().path().contains("broadcast");
    let (response, fut) = upgrade::upgrade(&mut req)?;
    tokio::spawn(async move {
        let _ = if joins_room { broadcast(fut, id, members).await } else { echo(fut).await };
    });
    Ok(response)
}

async fn echo(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = fut.await?;
    ws.set_auto_close(true);
    ws.set_auto_pong(true);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => return Ok(()),
            // A new frame: the received one still carries the client's mask,
            // and servers must not mask.
            OpCode::Text | OpCode::Binary => ws.write_frame(Frame::new(true, frame.opcode, None, frame.payload)).await?,
            _ => {}
        }
    }
}

async fn broadcast(fut: upgrade::UpgradeFut, id: u64, members: Members) -> Result<(), WebSocketError> {
    let ws = fut.await?;
    let (read, mut write) = ws.split(|io| {
        let (read, write) = tokio::io::split(io);
        (read, BufWriter::new(write))
    });
    let mut read = FragmentCollectorRead::new(read);
    let (tx, mut rx) = mpsc::unbounded_channel();
    members.lock().unwrap().insert(id, tx.clone());
    let writer = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut next = Some(first);
            while let Some(outgoing) = next {
                let frame = match &outgoing {
                    Outgoing::Message(opcode, payload) => Frame::new(true, *opcode, None, Payload::Borrowed(payload)),
                    Outgoing::Control(frame) => Frame::new(true, frame.opcode, None, Payload::Borrowed(&frame.payload)),
                };
                if write.write_frame(frame).await.is_err() {
                    return;
                }
                next = rx.try_recv().ok();
            }
            if write.flush().await.is_err() {
                return;
            }
        }
    });
    // Pongs and the close echo go through the writer task, in order with the
    // relayed messages.
    let mut obligated = |frame: Frame<'static>| {
        let sent = tx.send(Outgoing::Control(frame)).map_err(|_| WebSocketError::ConnectionClosed);
        std::future::ready(sent)
    };
    let result = loop {
        let frame = match read.read_frame(&mut obligated).await {
            Ok(frame) => frame,
            Err(e) => break Err(e),
        };
        match frame.opcode {
            OpCode::Close => break Ok(()),
            OpCode::Text | OpCode::Binary => {
                let payload = match frame.payload {
                    Payload::Bytes(bytes) => bytes.freeze(),
                    other => Bytes::from(Vec::from(other)),
                };
                for (other, member) in members.lock().unwrap().iter() {
                    if *other != id {
                        let _ = member.send(Outgoing::Message(frame.opcode, payload.clone()));
                    }
                }
            }
            _ => {}
        }
    };
    members.lock().unwrap().remove(&id);
    drop(tx);
    // Let the writer send the close echo, if any, before the socket goes.
    let mut writer = writer;
    if tokio::time::timeout(std::time::Duration::from_secs(1), &mut writer).await.is_err() {
        writer.abort();
    }
    result
}
