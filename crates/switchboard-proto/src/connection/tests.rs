//! One test per RFC 6455 rule, fed raw bytes, each input also split at every
//! offset; and a two-peer harness that runs a client and a server engine
//! against each other in memory.

use super::*;
use crate::deflate::{negotiate_server, Compressor, DeflateOptions, DeflateParams, Policy};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A masked client frame with explicit header bits.
fn frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.push(first_byte);
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&KEY);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], KEY, 0);
    out
}

fn text(s: &str) -> Vec<u8> {
    frame(0x81, s.as_bytes())
}

#[derive(Debug, PartialEq)]
struct Outcome {
    events: Vec<Event>,
    error: Option<ProtocolError>,
    written: Vec<u8>,
    state: State,
}

fn run_chunks(config: Config, chunks: &[&[u8]]) -> Outcome {
    let mut conn = Connection::server(config, None);
    run_on(&mut conn, chunks)
}

fn run_on(conn: &mut Connection, chunks: &[&[u8]]) -> Outcome {
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    let mut error = None;
    'outer: for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match conn.handle_read(&mut buf) {
                Ok(Some(event)) => {
                    // As a server does once it has nothing more to send first.
                    if let Event::Close(_) = event {
                        conn.reply_close();
                    }
                    events.push(event);
                }
                Ok(None) => break,
                Err(e) => {
                    // As a server does once it has nothing more to send first.
                    conn.reply_close();
                    error = Some(e);
                    break 'outer;
                }
            }
        }
    }
    Outcome { events, error, written: drain(conn), state: conn.state() }
}

fn drain(conn: &mut Connection) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut slices = [IoSlice::new(&[]); 8];
        let n = conn.transmit_chunks(&mut slices);
        if n == 0 {
            return out;
        }
        let total: usize = slices[..n].iter().map(|s| s.len()).sum();
        for s in &slices[..n] {
            out.extend_from_slice(s);
        }
        conn.advance(total);
    }
}

/// Feeds `input` whole, then split at every offset, then byte by byte, and
/// asserts the outcome never depends on how the bytes arrived.
fn run(input: &[u8]) -> Outcome {
    run_with(Config::default(), input)
}

fn run_with(config: Config, input: &[u8]) -> Outcome {
    let whole = run_chunks(config, &[input]);
    for at in 0..=input.len() {
        let split = run_chunks(config, &[&input[..at], &input[at..]]);
        assert_eq!(split, whole, "split at {at}");
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(run_chunks(config, &bytes), whole, "byte by byte");
    whole
}

/// The unmasked server close frame for `code`.
fn server_close(code: u16) -> Vec<u8> {
    let mut conn = Connection::server(Config::default(), None);
    conn.close(CloseCode::new(code), "");
    drain(&mut conn)[..4].to_vec()
}

#[test]
fn after_a_protocol_error_replies_may_still_precede_the_close() {
    let mut conn = Connection::server(Config::default(), None);
    let mut input = text("valid");
    input.extend(frame(0x83, b""));
    let mut buf = BytesMut::from(&input[..]);
    assert_eq!(conn.handle_read(&mut buf), Ok(Some(msg("valid"))));
    assert_eq!(conn.handle_read(&mut buf), Err(ProtocolError::ReservedOpcode(3)));
    assert_eq!(conn.state(), State::CloseReceived);
    conn.send_text("valid").unwrap();
    conn.reply_close();
    let out = drain(&mut conn);
    assert_eq!(&out[..7], &[0x81, 5, b'v', b'a', b'l', b'i', b'd']);
    assert_eq!(&out[7..11], &[0x88, out[8], 0x03, 0xea], "then the close with 1002");
}

fn assert_failed(outcome: &Outcome, error: ProtocolError, code: u16) {
    assert_eq!(outcome.error, Some(error));
    assert_eq!(error.close_code().as_u16(), code);
    assert_eq!(outcome.state, State::Closed);
    assert_eq!(outcome.written[0], 0x88, "a close frame is the only thing written");
    assert_eq!(&outcome.written[2..4], &code.to_be_bytes());
    let reason_len = outcome.written[1] as usize - 2;
    assert_eq!(outcome.written.len(), 4 + reason_len);
}

fn msg(s: &str) -> Event {
    Event::Message(Message::text(s))
}

// ---- data frames and fragmentation (RFC 6455 §5.4) ----

#[test]
fn a_single_text_frame_is_one_message() {
    let out = run(&text("Hello"));
    assert_eq!(out.events, vec![msg("Hello")]);
    assert_eq!(out.error, None);
    assert!(out.written.is_empty());
}

#[test]
fn fragments_are_reassembled_with_control_frames_interleaved() {
    let mut input = frame(0x01, b"Hel");
    input.extend(frame(0x89, b"ping"));
    input.extend(frame(0x00, b"l"));
    input.extend(frame(0x8a, b"pong"));
    input.extend(frame(0x80, b"o"));
    let out = run(&input);
    assert_eq!(out.events, vec![Event::Ping(Bytes::from_static(b"ping")), Event::Pong(Bytes::from_static(b"pong")), msg("Hello")]);
    assert_eq!(out.written, vec![0x8a, 0x04, b'p', b'i', b'n', b'g'], "the pong echoes the ping payload");
}

#[test]
fn empty_fragments_and_empty_messages_are_valid() {
    let mut input = frame(0x01, b"");
    input.extend(frame(0x00, b""));
    input.extend(frame(0x80, b""));
    input.extend(frame(0x82, b""));
    let out = run(&input);
    assert_eq!(out.events, vec![msg(""), Event::Message(Message::binary(Bytes::new()))]);
}

#[test]
fn a_continuation_without_a_message_is_a_protocol_error() {
    assert_failed(&run(&frame(0x80, b"x")), ProtocolError::UnexpectedContinuation, 1002);
}

#[test]
fn a_new_message_inside_a_fragmented_one_is_a_protocol_error() {
    let mut input = frame(0x01, b"a");
    input.extend(frame(0x81, b"b"));
    assert_failed(&run(&input), ProtocolError::ExpectedContinuation, 1002);
}

/// Whole short frames take `read_short_message`; the same frames split
/// take the general path (`run` feeds both ways and compares): every
/// outcome of the short path, limits and errors included, must be the
/// general path's.
#[test]
fn short_frames_read_whole_match_the_general_path() {
    let cases: Vec<(Config, Vec<u8>)> = vec![
        (Config::default(), text("")),
        (Config::default(), text("κόσμε and ascii")),
        (Config::default(), frame(0x81, &[b'x'; 125])),
        (Config::default(), frame(0x82, &[0xff; 125])),
        (Config::default(), frame(0x81, &[b'a', 0xce, 0xba, 0xff])),
        (Config::default(), frame(0x81, &[0xe2, 0x82])),
        (Config { max_frame_size: 10, max_message_size: 1000 }, frame(0x82, &[1; 11])),
        (Config { max_frame_size: 1000, max_message_size: 10 }, frame(0x81, &[b'y'; 11])),
    ];
    let expected = [
        (Some(msg("")), None),
        (Some(msg("κόσμε and ascii")), None),
        (Some(msg(&"x".repeat(125))), None),
        (Some(Event::Message(Message::binary(vec![0xff; 125]))), None),
        (None, Some(ProtocolError::InvalidUtf8)),
        (None, Some(ProtocolError::InvalidUtf8)),
        (None, Some(ProtocolError::FrameTooBig)),
        (None, Some(ProtocolError::MessageTooBig)),
    ];
    for ((config, input), (event, error)) in cases.iter().zip(expected) {
        let mut twice = input.clone();
        twice.extend_from_slice(input);
        let out = run_with(*config, &twice);
        let events: Vec<Event> = event.into_iter().flat_map(|e| [e.clone(), e]).collect();
        assert_eq!((out.events, out.error), (events, error), "{input:02x?}");
    }
    // A short data frame inside a fragmented message is not a message.
    let mut input = frame(0x01, b"a");
    input.extend(text("b"));
    assert_failed(&run(&input), ProtocolError::ExpectedContinuation, 1002);
    // A client reads short unmasked frames the same way, and refuses masked ones.
    let mut client = Connection::client(Config::default(), None, Box::new(|| KEY));
    let out = run_on(&mut client, &[&[0x81, 2, b'h', b'i', 0x82, 1, 7]]);
    assert_eq!(out.events, vec![msg("hi"), Event::Message(Message::binary(vec![7]))]);
}

// ---- header rules (§5.2) ----

#[test]
fn client_frames_must_be_masked() {
    assert_failed(&run(&[0x81, 0x02, b'h', b'i']), ProtocolError::UnmaskedClientFrame, 1002);
}

#[test]
fn server_frames_must_not_be_masked() {
    let mut conn = Connection::client(Config::default(), None, Box::new(|| KEY));
    let out = run_on(&mut conn, &[&text("hi")]);
    assert_eq!(out.error, Some(ProtocolError::MaskedServerFrame));
    assert_eq!(out.written[0], 0x88);
    assert_eq!(out.written[1] & 0x80, 0x80, "the client's own close frame is masked");
}

#[test]
fn reserved_bits_without_an_extension_are_a_protocol_error() {
    for first in [0xc1, 0xa1, 0x91] {
        assert_failed(&run(&frame(first, b"x")), ProtocolError::ReservedBitsSet, 1002);
    }
}

#[test]
fn reserved_opcodes_are_a_protocol_error() {
    for op in [3u8, 7, 0xb, 0xf] {
        assert_failed(&run(&frame(0x80 | op, b"")), ProtocolError::ReservedOpcode(op), 1002);
    }
}

#[test]
fn control_frames_longer_than_125_bytes_are_a_protocol_error() {
    assert_failed(&run(&frame(0x89, &[0; 126])), ProtocolError::ControlFrameTooLong, 1002);
}

#[test]
fn fragmented_control_frames_are_a_protocol_error() {
    assert_failed(&run(&frame(0x09, b"x")), ProtocolError::FragmentedControlFrame, 1002);
}

#[test]
fn a_64_bit_length_with_the_top_bit_set_is_a_protocol_error() {
    let input = [0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
    assert_failed(&run(&input), ProtocolError::PayloadLengthOverflow, 1002);
}

#[test]
fn a_bad_frame_after_good_ones_still_delivers_the_good_ones_first() {
    let mut input = text("one");
    input.extend(text("two"));
    input.extend(frame(0x83, b""));
    let out = run(&input);
    assert_eq!(out.events, vec![msg("one"), msg("two")]);
    assert_failed(&out, ProtocolError::ReservedOpcode(3), 1002);
}

// ---- UTF-8 (§8.1) ----

#[test]
fn invalid_utf8_in_a_text_message_closes_with_1007() {
    assert_failed(&run(&frame(0x81, &[0xce, 0xba, 0xff])), ProtocolError::InvalidUtf8, 1007);
}

#[test]
fn invalid_utf8_fails_before_the_frame_is_complete() {
    // Only the header and the first bad bytes of a 1000-byte frame arrive.
    let mut payload = vec![b'a'; 1000];
    payload[10] = 0xff;
    let input = frame(0x81, &payload);
    // 2 header bytes, 2 of extended length, 4 of mask, then 11 payload bytes.
    let out = run_chunks(Config::default(), &[&input[..8 + 11]]);
    assert_eq!(out.error, Some(ProtocolError::InvalidUtf8));
}

#[test]
fn ascii_after_an_unfinished_character_in_a_later_read_is_invalid() {
    // The first read ends in the first byte of a two-byte character; the
    // second brings blocks of ASCII, which cannot finish it. The frame is
    // the first fragment of a message, so only the check as the bytes
    // arrive can fail it (not the one at the message's end).
    let mut payload = vec![b'a'; 300];
    payload[99] = 0xc3;
    let input = frame(0x01, &payload);
    let out = run_chunks(Config::default(), &[&input[..8 + 100], &input[8 + 100..]]);
    assert_eq!(out.error, Some(ProtocolError::InvalidUtf8));
    // Finished in the second read, it is valid.
    payload[100] = 0xa9;
    let input = frame(0x01, &payload);
    let out = run_chunks(Config::default(), &[&input[..8 + 100], &input[8 + 100..]]);
    assert_eq!(out.error, None);
}

#[test]
fn utf8_split_across_fragments_is_valid() {
    let bytes = "κόσμε".as_bytes();
    let mut input = frame(0x01, &bytes[..3]);
    input.extend(frame(0x80, &bytes[3..]));
    assert_eq!(run(&input).events, vec![msg("κόσμε")]);
}

#[test]
fn an_unfinished_character_at_the_end_of_a_message_closes_with_1007() {
    let mut input = frame(0x01, b"ok");
    input.extend(frame(0x80, &[0xe2, 0x82]));
    assert_failed(&run(&input), ProtocolError::InvalidUtf8, 1007);
}

#[test]
fn binary_messages_are_not_validated() {
    let out = run(&frame(0x82, &[0xff, 0xfe]));
    assert_eq!(out.events, vec![Event::Message(Message::binary(vec![0xff, 0xfe]))]);
}

// ---- limits ----

#[test]
fn a_frame_over_max_frame_size_closes_with_1009() {
    let config = Config { max_frame_size: 100, max_message_size: 1000 };
    assert_failed(&run_with(config, &frame(0x82, &[0; 101])), ProtocolError::FrameTooBig, 1009);
}

#[test]
fn a_message_over_max_message_size_closes_with_1009() {
    let config = Config { max_frame_size: 100, max_message_size: 150 };
    let mut input = frame(0x02, &[0; 100]);
    input.extend(frame(0x80, &[0; 51]));
    assert_failed(&run_with(config, &input), ProtocolError::MessageTooBig, 1009);
}

#[test]
fn many_small_fragments_are_fine_within_the_message_limit() {
    let mut input = frame(0x02, &[7; 64]);
    for _ in 0..1000 {
        input.extend(frame(0x00, &[7; 64]));
    }
    input.extend(frame(0x80, &[7; 64]));
    let out = run_chunks(Config::default(), &[&input]);
    assert_eq!(out.events, vec![Event::Message(Message::binary(vec![7u8; 64 * 1002]))]);
}

// ---- closing handshake (§5.5.1, §7.4) ----

#[test]
fn a_close_frame_is_echoed_with_its_code() {
    let out = run(&frame(0x88, &[0x03, 0xe8, b'b', b'y', b'e']));
    assert_eq!(out.events, vec![Event::Close(CloseFrame { code: Some(CloseCode::NORMAL), reason: "bye".into() })]);
    assert_eq!(out.written, server_close(1000));
    assert_eq!(out.state, State::Closed);
}

#[test]
fn after_the_peers_close_data_may_still_be_sent_before_the_reply() {
    let mut conn = Connection::server(Config::default(), None);
    let mut buf = BytesMut::from(&frame(0x88, &[0x03, 0xe8])[..]);
    assert!(matches!(conn.handle_read(&mut buf), Ok(Some(Event::Close(_)))));
    assert_eq!(conn.state(), State::CloseReceived);
    assert!(drain(&mut conn).is_empty(), "no automatic reply");
    conn.send_text("last words").unwrap();
    conn.reply_close();
    assert_eq!(conn.state(), State::Closed);
    assert_eq!(conn.send_text("too late"), Err(ConnectionClosed));
    let out = drain(&mut conn);
    assert_eq!(&out[..12], &[0x81, 10, b'l', b'a', b's', b't', b' ', b'w', b'o', b'r', b'd', b's']);
    assert_eq!(&out[12..], &server_close(1000)[..]);
}

#[test]
fn an_empty_close_frame_is_echoed_empty() {
    let out = run(&frame(0x88, b""));
    assert_eq!(out.events, vec![Event::Close(CloseFrame { code: None, reason: String::new() })]);
    assert_eq!(out.written, vec![0x88, 0x00]);
}

#[test]
fn input_after_the_close_frame_is_ignored() {
    let mut input = frame(0x88, b"");
    input.extend(text("late"));
    input.extend(frame(0x83, b""));
    let out = run(&input);
    assert_eq!(out.events.len(), 1);
    assert_eq!(out.error, None);
}

#[test]
fn a_one_byte_close_payload_is_a_protocol_error() {
    assert_failed(&run(&frame(0x88, &[0x03])), ProtocolError::CloseFrameTooShort, 1002);
}

#[test]
fn invalid_close_codes_are_a_protocol_error() {
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000] {
        let out = run(&frame(0x88, &code.to_be_bytes()));
        assert_failed(&out, ProtocolError::InvalidCloseCode(code), 1002);
    }
}

#[test]
fn a_close_reason_must_be_utf8() {
    assert_failed(&run(&frame(0x88, &[0x03, 0xe8, 0xff])), ProtocolError::InvalidUtf8, 1007);
}

#[test]
fn after_our_close_the_peers_close_completes_the_handshake() {
    let mut conn = Connection::server(Config::default(), None);
    conn.close(Some(CloseCode::GOING_AWAY), "shutdown");
    assert_eq!(conn.state(), State::CloseSent);
    assert_eq!(conn.send_text("late"), Err(ConnectionClosed));
    let sent = drain(&mut conn);
    assert_eq!(&sent[..4], &[0x88, 10, 0x03, 0xe9]);
    // Data may still arrive before the peer's close; it is delivered.
    let mut input = text("in flight");
    input.extend(frame(0x88, &[0x03, 0xe9]));
    let out = run_on(&mut conn, &[&input]);
    assert_eq!(out.events.len(), 2);
    assert!(out.written.is_empty(), "no second close frame");
    assert_eq!(out.state, State::Closed);
}

#[test]
fn pings_after_our_close_are_not_answered() {
    let mut conn = Connection::server(Config::default(), None);
    conn.close(None, "");
    drain(&mut conn);
    let out = run_on(&mut conn, &[&frame(0x89, b"p")]);
    assert!(out.written.is_empty());
}

// ---- output ----

#[test]
fn many_small_replies_coalesce_and_large_ones_are_not_copied() {
    let mut conn = Connection::server(Config::default(), None);
    for _ in 0..16 {
        conn.send_text("twenty bytes of text").unwrap();
    }
    let big = Bytes::from(vec![1u8; 64 * 1024]);
    conn.send(&Message::Binary(big.clone())).unwrap();
    let mut slices = [IoSlice::new(&[]); 8];
    let n = conn.transmit_chunks(&mut slices);
    assert_eq!(n, 2, "one buffer of 16 small frames + header, then the payload itself");
    assert_eq!(slices[1].as_ptr(), big.as_ptr(), "the large payload is shared, not copied");
    assert_eq!(conn.queued_bytes(), 16 * 22 + 10 + 64 * 1024);
}

#[test]
fn partial_writes_resume_where_they_stopped() {
    let mut conn = Connection::server(Config::default(), None);
    conn.send_text("abc").unwrap();
    conn.send_binary(&[9; 2000]).unwrap();
    let mut all = Vec::new();
    while conn.wants_write() {
        let mut slices = [IoSlice::new(&[]); 4];
        let n = conn.transmit_chunks(&mut slices);
        let first = &slices[..n][0];
        let take = first.len().min(7);
        all.extend_from_slice(&first[..take]);
        conn.advance(take);
    }
    assert_eq!(&all[..5], &[0x81, 3, b'a', b'b', b'c']);
    assert_eq!(&all[5..9], &[0x82, 126, 0x07, 0xd0]);
    assert_eq!(all.len(), 5 + 4 + 2000);
}

#[test]
fn the_byte_stream_keeps_its_order_through_partial_writes_and_every_kind_of_queueing() {
    // A fixed pseudo-random mix of small, large, prepared and coalesced
    // frames, written a few bytes at a time in between: what leaves must be
    // exactly the frames, in the order they were queued.
    let mut conn = Connection::server(Config::default(), None);
    let (mut expected, mut written) = (Vec::new(), Vec::new());
    let mut seed = 7u32;
    let mut next = move |bound: u32| {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        (seed >> 8) % bound
    };
    for step in 0..400u32 {
        let len = [3, 40, 900, 1500, 5000][next(5) as usize];
        let payload: Vec<u8> = (0..len).map(|i| (i as u32 + step) as u8).collect();
        let encoded = crate::frame::encode_frame(OpCode::Data(DataOp::Binary), false, &payload);
        match next(5) {
            0 => conn.send_binary(&payload).unwrap(),
            1 => conn.send(&Message::Binary(Bytes::from(payload))).unwrap(),
            2 => conn.send_prepared(encoded.clone()).unwrap(),
            3 => conn.send_uncompressed(&[Message::Binary(Bytes::from(payload))]).unwrap(),
            _ => conn.send_coalesced(encoded.to_vec()).unwrap(),
        }
        expected.extend_from_slice(&encoded);
        for _ in 0..next(3) {
            let mut slices = [IoSlice::new(&[]); 8];
            let n = conn.transmit_chunks(&mut slices);
            let mut budget = next(3000) as usize;
            let before = written.len();
            for slice in &slices[..n] {
                let take = slice.len().min(budget);
                written.extend_from_slice(&slice[..take]);
                budget -= take;
            }
            conn.advance(written.len() - before);
        }
    }
    written.extend_from_slice(&drain(&mut conn));
    assert_eq!(written.len(), expected.len());
    assert!(written == expected, "the bytes written differ from the frames queued");
    assert_eq!(conn.queued_bytes(), 0);
}

// ---- two peers in memory ----

struct Pair {
    client: Connection,
    server: Connection,
}

impl Pair {
    fn new(deflate: Option<DeflateParams>) -> Pair {
        let mut counter = 0u32;
        let client = Connection::client(
            Config::default(),
            deflate,
            Box::new(move || {
                counter = counter.wrapping_mul(1_103_515_245).wrapping_add(12345);
                counter.to_le_bytes()
            }),
        );
        Pair { client, server: Connection::server(Config::default(), deflate) }
    }

    fn deliver_to_server(&mut self) -> Vec<Event> {
        let bytes = drain(&mut self.client);
        feed(&mut self.server, &bytes)
    }

    fn deliver_to_client(&mut self) -> Vec<Event> {
        let bytes = drain(&mut self.server);
        feed(&mut self.client, &bytes)
    }
}

/// Feeds bytes and collects events, leaving what the connection queued.
fn feed(conn: &mut Connection, bytes: &[u8]) -> Vec<Event> {
    let mut buf = BytesMut::from(bytes);
    let mut events = Vec::new();
    while let Some(event) = conn.handle_read(&mut buf).expect("no protocol error") {
        if let Event::Close(_) = event {
            conn.reply_close();
        }
        events.push(event);
    }
    events
}

/// What `policy` agrees to for `offer`, every message compressed (no threshold).
fn agreed(offer: &str, policy: Policy) -> DeflateParams {
    let options = DeflateOptions { policy, threshold: 0, ..DeflateOptions::default() };
    DeflateParams::new(negotiate_server(&[offer], &options).expect("offer accepted").0, &options)
}

fn deflate_config(offer: &str) -> DeflateParams {
    agreed(offer, Policy::Shared)
}

#[test]
fn two_peers_exchange_messages_both_ways() {
    for deflate in [None, Some(deflate_config("permessage-deflate")), Some(agreed("permessage-deflate; client_max_window_bits", Policy::Dedicated))] {
        let mut pair = Pair::new(deflate);
        let texts = ["hello", "hello", "", "κόσμε", &"long text ".repeat(500)];
        for t in texts {
            pair.client.send_text(t).unwrap();
        }
        pair.client.send_binary(&[0, 1, 2, 255]).unwrap();
        let got = pair.deliver_to_server();
        assert_eq!(got.len(), texts.len() + 1);
        for (event, t) in got.iter().zip(texts) {
            assert_eq!(event, &msg(t));
            let Event::Message(m) = event else { unreachable!() };
            pair.server.send(m).unwrap();
        }
        assert_eq!(pair.deliver_to_client().len(), texts.len());

        pair.client.send_ping(b"are you there").unwrap();
        assert_eq!(pair.deliver_to_server(), vec![Event::Ping(Bytes::from_static(b"are you there"))]);
        assert_eq!(pair.deliver_to_client(), vec![Event::Pong(Bytes::from_static(b"are you there"))]);

        pair.client.close(Some(CloseCode::NORMAL), "done");
        assert_eq!(pair.deliver_to_server(), vec![Event::Close(CloseFrame { code: Some(CloseCode::NORMAL), reason: "done".into() })]);
        assert_eq!(pair.deliver_to_client(), vec![Event::Close(CloseFrame { code: Some(CloseCode::NORMAL), reason: String::new() })]);
        assert_eq!((pair.client.state(), pair.server.state()), (State::Closed, State::Closed));
    }
}

#[test]
fn compressed_frames_are_smaller_and_marked_rsv1() {
    let mut pair = Pair::new(Some(deflate_config("permessage-deflate")));
    pair.server.send_text(&"abc".repeat(1000)).unwrap();
    let bytes = drain(&mut pair.server);
    assert_eq!(bytes[0], 0xc1, "FIN + RSV1 + text");
    assert!(bytes.len() < 100);
}

#[test]
fn rsv1_on_a_continuation_is_a_protocol_error_with_deflate() {
    let mut conn = Connection::server(Config::default(), Some(deflate_config("permessage-deflate")));
    let mut input = frame(0x41, &[0xf2, 0x48]);
    input.extend(frame(0xc0, &[0xcd]));
    let out = run_on(&mut conn, &[&input]);
    assert_eq!(out.error, Some(ProtocolError::CompressedContinuation));
}

#[test]
fn a_compressed_message_split_over_fragments_inflates() {
    // RFC 7692 §7.2.3.1 "Hello", in two fragments.
    let mut conn = Connection::server(Config::default(), Some(deflate_config("permessage-deflate")));
    let mut input = frame(0x41, &[0xf2, 0x48, 0xcd]);
    input.extend(frame(0x80, &[0xc9, 0xc9, 0x07, 0x00]));
    let out = run_on(&mut conn, &[&input]);
    assert_eq!(out.events, vec![msg("Hello")]);
}

#[test]
fn a_compressed_message_that_inflates_past_the_limit_closes_with_1009() {
    let cfg = deflate_config("permessage-deflate");
    let mut compressor = Compressor::new(&cfg.config, Role::Client, 6);
    let bomb = compressor.compress(&vec![0u8; 1 << 20]);
    assert!(bomb.len() < 2048);
    let mut conn = Connection::server(Config { max_frame_size: 1 << 20, max_message_size: 64 << 10 }, Some(cfg));
    let out = run_on(&mut conn, &[&frame(0xc2, &bomb)]);
    assert_eq!(out.error, Some(ProtocolError::MessageTooBig));
    assert_eq!(&out.written[2..4], &1009u16.to_be_bytes());
}

#[test]
fn uncompressed_messages_reach_a_peer_that_negotiated_deflate_and_share_large_payloads() {
    let mut pair = Pair::new(Some(deflate_config("permessage-deflate")));
    let large = Bytes::from(vec![7; COPY_THRESHOLD + 1]);
    let messages = [msg_of("one"), Message::Binary(large.clone()), msg_of("two")];
    pair.server.send_uncompressed(&messages).unwrap();
    let mut slices = [IoSlice::new(&[]); 8];
    let n = pair.server.transmit_chunks(&mut slices);
    assert!(slices[..n].iter().any(|s| s.as_ptr() == large.as_ptr()), "the large payload is written from the message itself");
    let got = pair.deliver_to_client();
    assert_eq!(got, messages.map(Event::Message));
    pair.server.close(Some(CloseCode::NORMAL), "");
    assert_eq!(pair.server.send_uncompressed(&[msg_of("late")]), Err(ConnectionClosed));
}

fn msg_of(text: &str) -> Message {
    Message::text(text)
}

#[test]
fn messages_below_the_threshold_go_out_uncompressed() {
    let options = DeflateOptions { threshold: 64, ..DeflateOptions::default() };
    let params = DeflateParams::new(negotiate_server(&["permessage-deflate"], &options).unwrap().0, &options);
    let mut server = Connection::server(Config::default(), Some(params));
    server.send_text(&"a".repeat(63)).unwrap();
    let bytes = drain(&mut server);
    assert_eq!((bytes[0], bytes.len()), (0x81, 2 + 63), "FIN + text, RSV1 clear, as it is");
    server.send_text(&"a".repeat(64)).unwrap();
    let bytes = drain(&mut server);
    assert_eq!(bytes[0], 0xc1, "FIN + RSV1 + text");
    assert!(bytes.len() < 2 + 64);
}

#[test]
fn a_compressed_message_cut_inside_a_deflate_block_closes_with_1002() {
    let cfg = deflate_config("permessage-deflate");
    let whole = Compressor::new(&cfg.config, Role::Client, 6).compress(&b"abcdefgh, then more text that is not just repetition".repeat(8));
    for cut in [whole.len() / 2, whole.len() - 1] {
        let mut conn = Connection::server(Config::default(), Some(cfg));
        let mut input = frame(0xc1, &whole[..cut]);
        input.extend(frame(0xc1, &whole));
        let out = run_on(&mut conn, &[&input]);
        assert_eq!(out.error, Some(ProtocolError::BadCompressedData), "cut at {cut}");
        assert!(out.events.is_empty(), "nothing delivered after a cut at {cut}: {:?}", out.events);
        assert_eq!(&out.written[2..4], &1002u16.to_be_bytes());
    }
}

#[test]
fn shared_connections_keep_no_zlib_state_and_dedicated_ones_make_it_on_first_use() {
    let mut pair = Pair::new(Some(deflate_config("permessage-deflate; client_max_window_bits")));
    pair.client.send_text(&"shared ".repeat(100)).unwrap();
    pair.deliver_to_server();
    pair.server.send_text(&"shared ".repeat(100)).unwrap();
    pair.deliver_to_client();
    assert!(!pair.server.holds_deflate_state() && !pair.client.holds_deflate_state());

    let mut pair = Pair::new(Some(agreed("permessage-deflate; client_max_window_bits", Policy::Dedicated)));
    assert!(!pair.server.holds_deflate_state(), "nothing before the first compressed message");
    pair.client.send_text(&"dedicated ".repeat(100)).unwrap();
    pair.deliver_to_server();
    assert!(!pair.server.holds_deflate_state(), "the client keeps no context: inflating is shared");
    let first = "dedicated ".repeat(100);
    pair.server.send_text(&first).unwrap();
    let first_len = drain(&mut pair.server).len();
    assert!(pair.server.holds_deflate_state());
    pair.server.send_text(&first).unwrap();
    let second = drain(&mut pair.server);
    assert!(second.len() < first_len, "the second refers back to the first: {} then {}", first_len, second.len());
}

#[test]
fn a_shared_compressor_stays_in_the_engine_for_direct_sends_and_a_dedicated_one_is_taken() {
    let big = Message::text("{\"direct\":true} ".repeat(100));
    let small = Message::text("small");
    let mut pair = Pair::new(Some(deflate_config("permessage-deflate; client_max_window_bits")));
    let copy = pair.server.split_outgoing_deflate().expect("a copy for the framing of other tasks");
    assert!(copy.shared_key().is_some());
    assert!(pair.server.outgoing_deflate().is_some(), "the engine keeps compressing its own sends");
    pair.server.send_direct(&[big.clone(), small.clone()]).unwrap();
    let bytes = drain(&mut pair.server);
    assert!(bytes.len() < big.payload().len(), "the large one compressed: {} bytes on the wire", bytes.len());
    assert_eq!(bytes[0] & 0x40, 0x40, "RSV1 on the compressed frame");
    let events = feed(&mut pair.client, &bytes);
    assert!(matches!(&events[..], [Event::Message(a), Event::Message(b)] if a == &big && b == &small), "{events:?}");

    let mut pair = Pair::new(Some(agreed("permessage-deflate; client_max_window_bits", Policy::Dedicated)));
    let taken = pair.server.split_outgoing_deflate().expect("the one compressor");
    assert!(taken.shared_key().is_none());
    assert!(pair.server.outgoing_deflate().is_none() && pair.server.split_outgoing_deflate().is_none());
    pair.server.send_direct(std::slice::from_ref(&big)).unwrap();
    let bytes = drain(&mut pair.server);
    assert_eq!(bytes[0] & 0x40, 0, "sent plain once the compressor is taken");
    assert!(matches!(&feed(&mut pair.client, &bytes)[..], [Event::Message(m)] if m == &big));
}

/// An engine may be dropped and made anew only between messages, with
/// nothing queued and nothing negotiated: what `is_at_rest` says.
#[test]
fn an_engine_is_at_rest_only_between_messages_with_nothing_queued() {
    let fresh = || Connection::server(Config::default(), None);
    let mut conn = fresh();
    assert!(conn.is_at_rest(), "a new server engine");
    assert_eq!(run_on(&mut conn, &[&text("hello")]).events, vec![msg("hello")]);
    assert!(conn.is_at_rest(), "after a whole message");

    let whole = text("hello, world");
    let mut conn = fresh();
    let mut buf = BytesMut::from(&whole[..9]);
    assert_eq!(conn.handle_read(&mut buf), Ok(None));
    assert!(!conn.is_at_rest(), "a frame's payload still arriving");

    let mut conn = fresh();
    assert!(run_on(&mut conn, &[&frame(0x01, b"frag")]).events.is_empty());
    assert!(!conn.is_at_rest(), "a fragmented message begun");

    let mut conn = fresh();
    conn.send_text("queued").unwrap();
    assert!(!conn.is_at_rest(), "a frame queued");
    drain(&mut conn);
    assert!(conn.is_at_rest(), "once written");

    let mut conn = fresh();
    let mut buf = BytesMut::from(&frame(0x89, b"ping")[..]);
    assert_eq!(conn.handle_read(&mut buf), Ok(Some(Event::Ping(Bytes::from_static(b"ping")))));
    assert!(!conn.is_at_rest(), "the pong queued");

    let mut conn = fresh();
    run_on(&mut conn, &[&frame(0x88, &1000u16.to_be_bytes())]);
    assert!(!conn.is_at_rest(), "closed");

    let conn = Connection::server(Config::default(), Some(agreed("permessage-deflate; client_max_window_bits", Policy::Dedicated)));
    assert!(!conn.is_at_rest(), "with permessage-deflate keeping context");
    let conn = Connection::client(Config::default(), None, Box::new(|| KEY));
    assert!(!conn.is_at_rest(), "a client");
}

/// Under permessage-deflate without context either way (the `shared`
/// policy) an engine between messages is at rest too, and the engine made
/// anew from its settings compresses and inflates as the old one would.
#[test]
fn a_resting_engine_without_context_is_made_anew_with_its_compression() {
    let deflate = deflate_config("permessage-deflate");
    let text = "a resting engine compresses alike, ".repeat(20);
    let mut pair = Pair::new(Some(deflate));
    pair.client.send_text(&text).unwrap();
    assert_eq!(pair.deliver_to_server(), vec![msg(&text)]);
    pair.server.send_text(&text).unwrap();
    let before = drain(&mut pair.server);

    let config = pair.server.config();
    let resting = match std::mem::replace(&mut pair.server, Connection::server(config, None)).rest() {
        Ok(resting) => resting,
        Err(_) => panic!("a shared-policy engine between messages is at rest"),
    };
    pair.server = Connection::wake(resting, config);
    assert!(pair.server.is_compressed());
    pair.server.send_text(&text).unwrap();
    let after = drain(&mut pair.server);
    assert_eq!(after, before, "the same compressed frame");
    assert_eq!(feed(&mut pair.client, &after), vec![msg(&text)]);
    pair.client.send_text(&text).unwrap();
    assert_eq!(pair.deliver_to_server(), vec![msg(&text)], "the client's compressed message inflates");
}

#[test]
fn bytes_in_one_piece_are_offered_whole_and_in_several_pieces_not() {
    let mut server = Connection::server(Config::default(), None);
    assert_eq!(server.single_chunk(), None, "nothing waits");
    // Small frames gathered in one buffer: one piece, written in parts.
    server.send_uncompressed(&[msg_of("one"), msg_of("two")]).unwrap();
    let whole = server.single_chunk().expect("one piece").to_vec();
    assert_eq!(whole, [&[0x81, 3][..], b"one", &[0x81, 3], b"two"].concat());
    server.advance(3);
    assert_eq!(server.single_chunk(), Some(&whole[3..]), "what is left of it");
    server.advance(whole.len() - 3);
    assert_eq!(server.single_chunk(), None);
    // A large payload alone is its frame's header and the payload: two
    // pieces; once the header is written the payload alone is one.
    let large = Bytes::from(vec![7; COPY_THRESHOLD + 1]);
    server.send_uncompressed(&[Message::Binary(large.clone())]).unwrap();
    let (mut written, mut ways) = (Vec::new(), Vec::new());
    while server.wants_write() {
        let piece = match server.single_chunk() {
            Some(piece) => {
                ways.push("one");
                piece.to_vec()
            }
            None => {
                let mut slices = [IoSlice::new(&[]); 8];
                let n = server.transmit_chunks(&mut slices);
                ways.push("several");
                assert!(n > 1, "several pieces when not one");
                slices[0].to_vec()
            }
        };
        written.extend_from_slice(&piece);
        server.advance(piece.len());
    }
    assert_eq!(ways, ["several", "one"]);
    assert_eq!(&written[written.len() - large.len()..], &large[..]);
}

#[test]
fn the_handshake_response_goes_out_first_and_as_it_is() {
    let mut server = Connection::server(Config::default(), None);
    let head = b"HTTP/1.1 101 Switching Protocols\r\n\r\n";
    server.queue_handshake_response(head);
    server.send_uncompressed(&[msg_of("welcome")]).unwrap();
    let expected = [&head[..], &[0x81, 7], b"welcome"].concat();
    assert_eq!(server.single_chunk(), Some(&expected[..]));
    // Written in parts: the response's bytes are not counted as frames.
    assert_eq!(server.advance(10), 0);
    assert_eq!(server.advance(head.len() - 10 + 2), 2);
    assert_eq!(server.advance(7), 7);
    assert!(!server.wants_write());
    server.send_uncompressed(&[msg_of("next")]).unwrap();
    assert_eq!(server.advance(6), 6, "a later write is frames only");
}

#[test]
#[should_panic(expected = "the handshake response goes before any frame")]
fn a_handshake_response_after_a_frame_is_refused() {
    let mut server = Connection::server(Config::default(), None);
    server.send_uncompressed(&[msg_of("early")]).unwrap();
    server.queue_handshake_response(b"HTTP/1.1 101 Switching Protocols\r\n\r\n");
}
