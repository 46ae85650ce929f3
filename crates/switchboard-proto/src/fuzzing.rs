//! Fuzz harnesses with their invariants. The fuzz targets in `fuzz/` are
//! one-line calls into these functions, so the same checks also run from
//! ordinary tests and from any fuzzing engine.

use bytes::BytesMut;

use crate::config::{Config, Role};
use crate::connection::{Connection, Event, State};
use crate::deflate::{negotiate_server, Compressor, Decompressor, DeflateOptions, DeflateParams};
use crate::handshake::{RequestHead, UpgradeRequest};

/// Frame decoding on a server connection. The first byte chooses a split
/// point; the outcome must not depend on how the input is split, a failure
/// must leave exactly one close frame queued, and nothing may panic.
pub fn frame_decoder(data: &[u8]) {
    let Some((&selector, input)) = data.split_first() else { return };
    let config = Config { max_frame_size: 1 << 16, max_message_size: 1 << 17 };
    let options = DeflateOptions { threshold: 0, ..DeflateOptions::default() };
    let deflate = (selector & 1 == 1).then(|| DeflateParams::new(negotiate_server(&["permessage-deflate"], &options).expect("default offer").0, &options));
    let run = |chunks: &[&[u8]]| {
        let mut conn = Connection::server(config, deflate);
        let mut buf = BytesMut::new();
        let mut events: Vec<Event> = Vec::new();
        let mut error = None;
        'feed: for chunk in chunks {
            buf.extend_from_slice(chunk);
            loop {
                match conn.handle_read(&mut buf) {
                    Ok(Some(event)) => {
                        match &event {
                            Event::Message(m) => assert!(m.payload().len() <= config.max_message_size),
                            Event::Close(_) => conn.reply_close(),
                            _ => {}
                        }
                        events.push(event);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        assert_eq!(conn.state(), State::CloseReceived);
                        conn.reply_close();
                        error = Some(e);
                        break 'feed;
                    }
                }
            }
        }
        if error.is_some() {
            assert_eq!(conn.state(), State::Closed);
        }
        (events, error, conn.queued_bytes())
    };
    let whole = run(&[input]);
    let at = (selector as usize >> 1).min(input.len());
    let split = run(&[&input[..at], &input[at..]]);
    assert_eq!(whole, split, "outcome depends on the split at {at}");
}

/// Request head parsing and upgrade validation. A head found in a prefix must
/// be the same head found in the whole input, and a valid upgrade must yield
/// a well-formed 101 response.
pub fn handshake_request(data: &[u8]) {
    const MAX: usize = 16 * 1024;
    let Ok(parsed) = RequestHead::parse(data, MAX) else { return };
    let Some((head, consumed)) = parsed else { return };
    assert!(consumed <= data.len());
    // Parsing exactly the head gives the same answer.
    let again = RequestHead::parse(&data[..consumed], MAX).expect("same bytes parse").expect("complete");
    assert_eq!(again.1, consumed);
    assert_eq!(again.0.path, head.path);
    if let Ok(request) = UpgradeRequest::from_head(&head) {
        let protocol = request.select_protocol(&["json", "chat"]);
        if let Some(p) = protocol {
            assert!(request.protocols.iter().any(|offered| offered == p));
        }
        let response = request.accept_response(protocol, None, &[]);
        assert!(response.starts_with(b"HTTP/1.1 101"));
        assert!(response.ends_with(b"\r\n\r\n"));
    }
}

/// Inflating arbitrary data with the output capped: never more than the cap,
/// never a panic; what inflates re-compresses and inflates to the same bytes.
pub fn inflate(data: &[u8]) {
    const CAP: usize = 1 << 20;
    let config = negotiate_server(&["permessage-deflate"], &DeflateOptions::default()).expect("default offer").0;
    let mut decompressor = Decompressor::new(&config, Role::Server);
    if let Ok(out) = decompressor.decompress(data, CAP) {
        assert!(out.len() <= CAP);
        let mut compressor = Compressor::new(&config, Role::Client, 1);
        let again = compressor.compress(&out);
        let mut fresh = Decompressor::new(&config, Role::Server);
        assert_eq!(fresh.decompress(&again, CAP).expect("our own output inflates"), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harnesses_accept_assorted_inputs() {
        let mut frame = vec![0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        for selector in 0..=255u8 {
            frame.insert(0, selector);
            frame_decoder(&frame);
            frame.remove(0);
        }
        handshake_request(b"GET /rooms/echo/x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat\r\n\r\nextra");
        handshake_request(b"\x00\xff garbage");
        inflate(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        inflate(&[0xff; 64]);
    }
}
