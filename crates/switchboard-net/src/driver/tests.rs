//! The driver against a scripted peer over an in-memory pipe, on a paused
//! clock: what the peer receives (decoded by the client engine), what the
//! handler is told, and what the listener's stats count.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use switchboard_proto::frame::{DataOp, OpCode, SharedFrame};
use switchboard_proto::{CloseCode, CloseFrame, Event, Message, ProtocolError};
use tokio::time::Instant;

use crate::spare;
use crate::testing::{on_time, Call, CountingPipe, Listening, Peer, Server, CATCH_UP};
use crate::NetConfig;
use switchboard_proto::SendOutcome;

fn close_event(code: CloseCode, reason: &str) -> Option<Event> {
    Some(Event::Close(CloseFrame { code: Some(code), reason: reason.into() }))
}

fn abnormal(reason: &str) -> Call {
    Call::Close { code: Some(CloseCode::ABNORMAL), reason: reason.into(), clean: false }
}

#[tokio::test(start_paused = true)]
async fn a_silent_peer_is_pinged_after_the_interval_then_dropped_after_the_pong_timeout() {
    let server = Server::start(NetConfig::default());
    let config = server.config();
    let (io, task) = server.connect();
    let mut peer = Peer::handshake(io, "/room").await;
    let opened = Instant::now();

    assert_eq!(peer.next_event().await, Some(Event::Ping(Bytes::new())));
    let pinged = Instant::now();
    assert!(on_time(pinged - opened, config.ping_interval, &config), "pinged after {:?}", pinged - opened);
    // The peer's engine queued a pong; the peer never sends it.
    assert_eq!(peer.next_event().await, None, "dropped without a close frame");
    assert!(on_time(Instant::now() - pinged, config.pong_timeout, &config), "dropped {:?} after the ping", Instant::now() - pinged);

    task.await.unwrap();
    assert_eq!(server.calls(), [Call::Open, abnormal("no answer to ping")]);
    let stats = server.stats();
    assert_eq!((stats.connections_opened, stats.connections_open, stats.closed_timeout), (1, 0, 1));
    assert_eq!(stats.closed_abnormal + stats.closed_clean, 0);
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_answers_pings_stays_open() {
    let server = Server::start(NetConfig::default());
    let config = server.config();
    let (io, task) = server.connect();
    let mut peer = Peer::handshake(io, "/room").await;
    let mut last = Instant::now();
    for _ in 0..3 {
        assert_eq!(peer.next_event().await, Some(Event::Ping(Bytes::new())));
        assert!(on_time(Instant::now() - last, config.ping_interval, &config), "pinged after {:?}", Instant::now() - last);
        // The pong the peer's engine queued.
        peer.flush().await;
        last = Instant::now();
    }
    assert_eq!(server.calls(), [Call::Open], "still open after three heartbeats");
    assert_eq!(server.stats().connections_open, 1);

    peer.close(CloseCode::NORMAL, "done").await;
    assert_eq!(peer.next_event().await, close_event(CloseCode::NORMAL, ""));
    assert_eq!(peer.next_event().await, None);
    task.await.unwrap();
    let stats = server.stats();
    assert_eq!((stats.closed_clean, stats.closed_timeout, stats.connections_open), (1, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_close_from_the_peer_is_echoed_and_ends_the_connection_cleanly() {
    let server = Server::start(NetConfig::default());
    let (io, task) = server.connect();
    let mut peer = Peer::handshake(io, "/room").await;
    peer.send(&Message::text("hello")).await;
    assert_eq!(peer.next_event().await, Some(Event::Message(Message::text("hello"))));

    peer.close(CloseCode::NORMAL, "bye").await;
    assert_eq!(peer.next_event().await, close_event(CloseCode::NORMAL, ""), "our code echoed");
    assert_eq!(peer.next_event().await, None, "then the server closes the stream");
    task.await.unwrap();
    let close = Call::Close { code: Some(CloseCode::NORMAL), reason: "bye".into(), clean: true };
    assert_eq!(server.calls(), [Call::Open, Call::Message(Message::text("hello")), Call::ReadEnd, close]);
    let stats = server.stats();
    assert_eq!((stats.closed_clean, stats.connections_open, stats.messages_in), (1, 0, 1));
    assert_eq!((stats.bytes_in, stats.bytes_out), (peer.sent as u64, peer.received as u64), "every byte after the handshake, both ways");
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_never_answers_our_close_is_dropped_after_the_close_timeout() {
    let server = Server::start(NetConfig::default());
    let config = server.config();
    let (io, task) = server.connect();
    let mut peer = Peer::handshake(io, "/room").await;
    // As a room closes a connection.
    server.outbound().close(4000, "room closed");
    assert_eq!(peer.next_event().await, close_event(CloseCode::new(4000).unwrap(), "room closed"));
    let closed = Instant::now();
    assert_eq!(peer.next_event().await, None);
    assert!(on_time(Instant::now() - closed, config.close_timeout, &config), "dropped {:?} after our close", Instant::now() - closed);

    task.await.unwrap();
    assert_eq!(server.calls(), [Call::Open, abnormal("closing handshake timed out")]);
    let stats = server.stats();
    assert_eq!((stats.closed_timeout, stats.closed_clean, stats.connections_open), (1, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_stops_reading_is_cut_off_at_the_outbound_queue_limit() {
    let config = NetConfig { max_outbound_queue: 64 << 10, max_pending_write: 16 << 10, ..NetConfig::default() };
    let server = Server::start(config);
    let (io, task) = server.connect();
    let mut peer = Peer::handshake(io, "/room").await;
    let outbound = server.outbound();

    // A room sends while the peer reads nothing; the connection runs
    // between pushes.
    let frame = SharedFrame::new(OpCode::Data(DataOp::Binary), false, &Bytes::from(vec![7; 1000]));
    let mut pushed = 0;
    while outbound.push(&frame) != SendOutcome::Dropped {
        pushed += 1;
        tokio::task::yield_now().await;
        assert!(pushed < 1000, "never cut off");
    }
    assert!(
        pushed * frame.len() > config.max_outbound_queue + config.max_pending_write,
        "the connection took frames until its own write queue was full ({pushed} pushed)"
    );
    assert_eq!(outbound.push(&frame), SendOutcome::Dropped, "nothing more after the cut-off");

    // The peer reads again: the frames that were written, in order, then
    // the 1008 close; it never answers, and the closing handshake times out.
    let mut received = 0;
    let close = loop {
        match peer.next_event().await {
            Some(Event::Message(message)) => {
                assert_eq!(message, Message::binary(vec![7; 1000]));
                received += 1;
            }
            other => break other,
        }
    };
    assert!(received > 0 && received < pushed, "{received} of {pushed} frames received: the queue was dropped at the cut-off");
    assert_eq!(close, close_event(CloseCode::POLICY_VIOLATION, "outbound queue limit exceeded: the client reads too slowly"));
    assert_eq!(peer.next_event().await, None);
    task.await.unwrap();
    assert_eq!(server.calls(), [Call::Open, Call::Close { code: Some(CloseCode::POLICY_VIOLATION), reason: "slow consumer".into(), clean: false }]);
    let stats = server.stats();
    assert_eq!((stats.closed_slow_consumer, stats.closed_timeout, stats.connections_open), (1, 0, 0), "counted once, as a slow consumer");
}

#[tokio::test(start_paused = true)]
async fn a_protocol_error_is_closed_with_1002_after_the_replies_before_it() {
    let server = Server::start(NetConfig::default());
    let (io, task) = server.connect();
    let mut peer = Peer::handshake(io, "/room").await;
    // A masked text frame, then the same unmasked, in one write.
    let mut bytes = vec![0x81, 0x82, 0, 0, 0, 0, b'h', b'i'];
    bytes.extend_from_slice(&[0x81, 0x02, b'h', b'i']);
    peer.write_raw(&bytes).await;

    assert_eq!(peer.next_event().await, Some(Event::Message(Message::text("hi"))), "the reply to the message before the error");
    let reason = ProtocolError::UnmaskedClientFrame.reason();
    assert_eq!(peer.next_event().await, close_event(CloseCode::PROTOCOL_ERROR, reason));
    assert_eq!(peer.next_event().await, None);
    task.await.unwrap();
    let close = Call::Close { code: Some(CloseCode::PROTOCOL_ERROR), reason: reason.into(), clean: false };
    assert_eq!(server.calls(), [Call::Open, Call::Message(Message::text("hi")), close], "no read end: on_close hears of the read's messages");
    let stats = server.stats();
    assert_eq!((stats.closed_protocol_error, stats.messages_in, stats.connections_open), (1, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn shutdown_closes_with_1001_and_waits_for_the_peer() {
    let server = Server::start(NetConfig::default());
    let (io, task) = server.connect();
    let mut peer = Peer::handshake(io, "/room").await;
    server.stop();
    assert_eq!(peer.next_event().await, close_event(CloseCode::GOING_AWAY, "server shutting down"));
    peer.close(CloseCode::GOING_AWAY, "").await;
    assert_eq!(peer.next_event().await, None);
    task.await.unwrap();
    assert_eq!(server.calls(), [Call::Open, Call::Close { code: Some(CloseCode::GOING_AWAY), reason: String::new(), clean: true }]);
    assert_eq!(server.stats().closed_clean, 1);
}

#[tokio::test(start_paused = true)]
async fn a_connection_waiting_for_bytes_leaves_its_read_buffer_to_the_thread() {
    let server = Server::start(NetConfig::default());
    let (io, _task) = server.connect();
    let mut peer = Peer::handshake(io, "/room").await;
    peer.send(&Message::text("hello")).await;
    assert_eq!(peer.next_event().await, Some(Event::Message(Message::text("hello"))));
    // The connection read, replied and waits again (on this thread: the
    // test's runtime has one).
    // What is left of it: a read takes the room a buffer has while that
    // is at least half a chunk.
    assert!(spare::take().capacity() >= server.config().read_chunk / 2, "the buffer it read into is the thread's spare now");
    assert_eq!(spare::take().capacity(), 0);
}

/// A connection that waits with part of a frame keeps only those bytes:
/// the read chunk it read them into is the thread's spare again, and the
/// message comes back whole once the rest arrives.
#[tokio::test(start_paused = true)]
async fn a_connection_waiting_mid_frame_keeps_only_the_bytes_of_that_frame() {
    let server = Server::start(NetConfig::default());
    let (io, _task) = server.connect();
    let mut peer = Peer::handshake(io, "/room").await;
    let message = Message::binary((0..3000).map(|b| (b % 251) as u8).collect::<Vec<u8>>());
    peer.queue(&message);
    let frame = peer.take_queued();
    // The thread's spare starts empty (the handshake's reads may have left one).
    drop(spare::take());
    peer.write_raw(&frame[..100]).await;
    // Paused time moves only once every task waits: the server has read
    // the 100 bytes and waits for the rest.
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(spare::take().capacity() >= server.config().read_chunk / 2, "the chunk read into went back to the thread");
    peer.write_raw(&frame[100..]).await;
    assert_eq!(peer.next_event().await, Some(Event::Message(message)));
}

/// A connection that gives its emptied buffer back holds none either way;
/// the thread keeps it only if a read could use it as it is, so the head's
/// small buffer of a new connection does not take the spare's place.
#[test]
fn only_a_buffer_large_enough_for_a_read_becomes_the_thread_spare() {
    let chunk = NetConfig::default().read_chunk;
    drop(spare::take());
    let mut small = bytes::BytesMut::with_capacity(1024);
    super::release(&mut small, chunk);
    assert_eq!(small.capacity(), 0);
    assert_eq!(spare::take().capacity(), 0, "too small to keep");
    let mut large = bytes::BytesMut::with_capacity(chunk);
    super::release(&mut large, chunk);
    assert_eq!(large.capacity(), 0);
    assert!(spare::take().capacity() >= chunk, "kept for the next read");
}

/// A connection woken for frames from another task, with nothing to read,
/// asks its socket before it takes a buffer: it writes the frames and the
/// thread's spare buffer stays where it is (none here, so none is made);
/// and what the peer sends after such wakes is read.
#[tokio::test]
async fn a_connection_woken_for_frames_alone_takes_no_read_buffer() {
    let server = Listening::start(NetConfig { park_after: None, ..NetConfig::default() }).await;
    let mut peer = server.connect("/room").await;
    peer.send(&Message::text("settle")).await;
    assert_eq!(peer.next_event().await, Some(Event::Message(Message::text("settle"))));
    // The runtime is this thread, so the connection's spare is this one.
    drop(spare::take());
    let frame = SharedFrame::new(OpCode::Data(DataOp::Text), false, &Bytes::from_static(b"from the room"));
    assert_eq!(server.outbound().push(&frame), SendOutcome::Queued);
    assert_eq!(peer.next_event().await, Some(Event::Message(Message::text("from the room"))));
    // Past the wait that ends the connection's pass.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(spare::take().capacity(), 0, "a read buffer was taken and given back");
    // Those waits asked the socket without storing the waker again: the
    // one stored before still brings the peer's next message.
    for n in 0..3 {
        assert_eq!(server.outbound().push(&frame), SendOutcome::Queued);
        assert_eq!(peer.next_event().await, Some(Event::Message(Message::text("from the room"))));
        let message = Message::text(format!("then the peer {n}"));
        peer.send(&message).await;
        // Bounded well below the heartbeat, whose wake would also read it.
        let echoed = tokio::time::timeout(Duration::from_secs(5), peer.next_event()).await.expect("the message was read");
        assert_eq!(echoed, Some(Event::Message(message)));
    }
    drop(peer);
    server.stop().await;
}

fn text(s: &str) -> SharedFrame {
    SharedFrame::new(OpCode::Data(DataOp::Text), false, &Bytes::from(s.to_owned()))
}

/// A connection whose pass only wrote frames from other tasks lets its
/// outbound queue write the next ones pushed on its thread straight to the
/// socket: they are on the wire before this thread, which also runs the
/// connection's task, yields to it. A frame pushed on another thread, and
/// every frame once the connection reads a message, goes through its task.
/// Every byte is counted either way.
#[tokio::test]
async fn frames_for_a_connection_that_only_receives_are_written_by_the_pusher_until_it_reads() {
    let server = Listening::start(NetConfig { park_after: None, ..NetConfig::default() }).await;
    let mut peer = server.connect("/room").await;
    assert_eq!(server.outbound().push(&text("first")), SendOutcome::Queued);
    assert_eq!(peer.next_event().await, Some(Event::Message(Message::text("first"))));
    // Past the wait that ends that pass.
    tokio::time::sleep(Duration::from_millis(20)).await;

    // One frame, then a room's run of two.
    let run = SharedFrame::run(Bytes::from([text("third").to_bytes(), text("fourth").to_bytes()].concat()));
    assert_eq!(server.outbound().push(&text("second")), SendOutcome::Queued);
    assert_eq!(server.outbound().push(&run), SendOutcome::Queued);
    for expected in ["second", "third", "fourth"] {
        assert_eq!(peer.event_now(), Some(Event::Message(Message::text(expected))), "written through");
    }
    // Pushed on another thread: left to the connection's task, on this one,
    // and so is the next frame pushed here, which must not overtake it.
    let outbound = server.outbound();
    let pushed = std::thread::spawn(move || outbound.push(&text("from another thread"))).join().unwrap();
    assert_eq!(pushed, SendOutcome::Queued);
    assert_eq!(server.outbound().push(&text("after it")), SendOutcome::Queued);
    assert_eq!(peer.event_now(), None, "left to the connection's task");
    for expected in ["from another thread", "after it"] {
        assert_eq!(peer.next_event().await, Some(Event::Message(Message::text(expected))));
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(server.outbound().push(&text("through again")), SendOutcome::Queued);
    assert_eq!(peer.event_now(), Some(Event::Message(Message::text("through again"))), "written through");

    peer.send(&Message::text("from the peer")).await;
    assert_eq!(peer.next_event().await, Some(Event::Message(Message::text("from the peer"))));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(server.outbound().push(&text("queued")), SendOutcome::Queued);
    assert_eq!(peer.event_now(), None, "left to the connection's task");
    assert_eq!(peer.next_event().await, Some(Event::Message(Message::text("queued"))));

    peer.close(CloseCode::NORMAL, "done").await;
    assert_eq!(peer.next_event().await, close_event(CloseCode::NORMAL, ""));
    assert_eq!(peer.next_event().await, None);
    assert_eq!(server.stats().bytes_out, peer.received as u64, "every byte written counted");
    server.stop().await;
}

/// A peer that stops reading while frames are written through: the first
/// frame the socket does not take whole ends write-through, its rest and
/// every later frame wait in the queue, and the connection's task writes
/// them in order once the peer reads again.
#[tokio::test]
async fn frames_past_a_full_socket_wait_in_the_queue_and_follow_in_order() {
    const FRAMES: usize = 128;
    const SIZE: usize = 256 << 10;
    let server = Listening::start(NetConfig { park_after: None, max_outbound_queue: 64 << 20, ..NetConfig::default() }).await;
    let mut peer = server.connect("/room").await;
    assert_eq!(server.outbound().push(&text("first")), SendOutcome::Queued);
    assert_eq!(peer.next_event().await, Some(Event::Message(Message::text("first"))));
    tokio::time::sleep(Duration::from_millis(20)).await;

    // 32 MiB, more than loopback's socket buffers hold.
    let frame = |n: usize| SharedFrame::new(OpCode::Data(DataOp::Binary), false, &Bytes::from(vec![n as u8; SIZE]));
    for n in 0..FRAMES {
        assert_ne!(server.outbound().push(&frame(n)), SendOutcome::Dropped);
    }
    let mut received = 0;
    while let Some(event) = peer.event_now() {
        assert_eq!(event, Event::Message(Message::binary(vec![received as u8; SIZE])));
        received += 1;
    }
    assert!((1..FRAMES).contains(&received), "{received} of {FRAMES} frames written through before the socket filled");
    for n in received..FRAMES {
        assert_eq!(peer.next_event().await, Some(Event::Message(Message::binary(vec![n as u8; SIZE]))), "frame {n}");
    }
    drop(peer);
    server.stop().await;
}

/// A reply larger than the copy threshold is queued as its header and its
/// payload, two slices.
async fn writes_for_a_large_reply(vectored: bool) -> usize {
    let server = Server::start(NetConfig::default());
    let (pipe, io) = CountingPipe::new(vectored);
    let writes = pipe.writes.clone();
    let _task = server.serve(pipe);
    let mut peer = Peer::handshake(io, "/room").await;
    let before = writes.load(Ordering::Relaxed);
    let large = Message::binary(vec![1; 2000]);
    peer.send(&large).await;
    assert_eq!(peer.next_event().await, Some(Event::Message(large)));
    writes.load(Ordering::Relaxed) - before
}

#[tokio::test(start_paused = true)]
async fn frames_leave_in_one_vectored_write_where_the_stream_takes_them_and_one_write_each_otherwise() {
    assert_eq!(writes_for_a_large_reply(true).await, 1);
    assert_eq!(writes_for_a_large_reply(false).await, 2);
}

#[tokio::test(start_paused = true)]
async fn a_reply_sent_straight_after_catching_up_follows_what_other_tasks_queued_before() {
    let server = Server::start(NetConfig::default());
    let (io, _task) = server.connect();
    let mut peer = Peer::handshake(io, "/room").await;
    peer.send(&Message::text(CATCH_UP)).await;
    for expected in ["queued before", "sent straight", CATCH_UP] {
        assert_eq!(peer.next_event().await, Some(Event::Message(Message::text(expected))));
    }
}

/// Frames around and beyond the read size are read with sized reads (the
/// rest of a large frame and the next header, see `read_size`), over a
/// pipe that hands over at most 8 KiB at a time: pipelined, text and
/// binary, a character split at every block edge, each comes back whole.
#[tokio::test(start_paused = true)]
async fn pipelined_frames_around_and_beyond_the_read_size_come_back_whole() {
    let chunk = 1024;
    let server = Server::start(NetConfig { read_chunk: chunk, ..NetConfig::default() });
    let (io, task) = server.connect();
    let mut peer = Peer::handshake(io, "/room").await;
    let sizes = [20, chunk - 1, chunk, chunk + 1, 3 * chunk + 5, 4 * chunk + 7, 1, 9 * chunk + 3, 2 * chunk, 125, 126];
    let messages: Vec<Message> = sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            if i % 2 == 0 {
                // Two-byte characters after an odd start: one straddles
                // every 64-byte block of the unmasking.
                let text: String = std::iter::once('a').chain(std::iter::repeat_n('é', size / 2)).collect();
                Message::text(text)
            } else {
                Message::binary((0..size).map(|b| (b * 31 % 251) as u8).collect::<Vec<u8>>())
            }
        })
        .collect();
    for message in &messages {
        peer.queue(message);
    }
    peer.flush().await;
    for message in &messages {
        assert_eq!(peer.next_event().await, Some(Event::Message(message.clone())), "{} bytes", message.payload().len());
    }
    peer.close(CloseCode::NORMAL, "done").await;
    assert_eq!(peer.next_event().await, close_event(CloseCode::NORMAL, ""));
    task.await.unwrap();
    assert_eq!(server.stats().messages_in, messages.len() as u64);
}
