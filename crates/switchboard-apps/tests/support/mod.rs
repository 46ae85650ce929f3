//! Helpers the room-rule tests share: the JSON messages a test connection
//! received, and their types.

use serde_json::Value;
use switchboard_room::testing::TestConn;

/// What `conn` received since the last call, parsed.
pub fn take(conn: &TestConn) -> Vec<Value> {
    conn.take_texts().iter().map(|text| serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))).collect()
}

/// The `type` of each message (`?` for one without).
pub fn types(messages: &[Value]) -> Vec<&str> {
    messages.iter().map(|m| m["type"].as_str().unwrap_or("?")).collect()
}
