//! Reading a room's JSON messages with the project's client in a test,
//! each within a bound.

#![allow(dead_code)]

use std::time::Duration;

use serde_json::Value;
use switchboard_client::Client;

/// The longest a test waits for one message.
pub const WAIT: Duration = Duration::from_secs(10);

/// The next message, parsed; fails the test if none comes within [`WAIT`].
pub async fn next(client: &mut Client) -> Value {
    let message = tokio::time::timeout(WAIT, client.recv_message()).await.expect("a message in time").expect("a message");
    serde_json::from_str(message.as_text().expect("text frames only")).expect("JSON")
}

/// The next message of `kind`, skipping others (e.g. `state` while waiting
/// for `admin`).
pub async fn next_of(client: &mut Client, kind: &str) -> Value {
    for _ in 0..1000 {
        let message = next(client).await;
        if message["type"] == kind {
            return message;
        }
    }
    panic!("no {kind} message");
}
