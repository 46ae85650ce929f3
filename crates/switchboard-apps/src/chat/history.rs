//! The chat's durable state in room storage: the message counter and the
//! most recent messages.
//!
//! Keys: `seq` holds the last message number (u64, big-endian); `h/` and the
//! number as 20 decimal digits holds that message as JSON, so a prefix list
//! returns them oldest first. Each new message and the removal of the one
//! that falls out of the window are written together, in the transaction
//! of the room's batch of events.

use switchboard_room::RoomStorage;
use switchboard_room::{StoreResult, Write};

use super::wire::ChatMessage;

const SEQ: &str = "seq";
const PREFIX: &str = "h/";

fn key(seq: u64) -> String {
    format!("{PREFIX}{seq:020}")
}

/// The last message number used in this room (0 before the first).
pub fn last_seq(storage: &RoomStorage<'_>) -> StoreResult<u64> {
    Ok(storage.get(SEQ)?.and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok()).map_or(0, u64::from_be_bytes))
}

/// Stores message number `seq` and forgets the one `keep` messages older
/// (committed with the rest of the batch's writes).
pub fn append(storage: &mut RoomStorage<'_>, seq: u64, message: &ChatMessage, keep: usize) {
    let json = serde_json::to_vec(message).unwrap_or_default();
    let mut writes = vec![Write::Put(SEQ.to_owned(), seq.to_be_bytes().to_vec()), Write::Put(key(seq), json)];
    if let Some(old) = seq.checked_sub(keep as u64).filter(|old| *old > 0) {
        writes.push(Write::Delete(key(old)));
    }
    storage.write_all(writes);
}

/// The most recent `keep` messages, oldest first. Entries that do not parse
/// (written by a future version, or damaged) are skipped.
pub fn recent(storage: &RoomStorage<'_>, keep: usize) -> StoreResult<Vec<ChatMessage>> {
    // At most `keep` entries exist unless the limit was lowered since they
    // were written; read a few more and keep the newest.
    let entries = storage.list(PREFIX, keep.saturating_mul(2).max(keep + 16))?;
    let skip = entries.len().saturating_sub(keep);
    Ok(entries.into_iter().skip(skip).filter_map(|(_, v)| serde_json::from_slice(&v).ok()).collect())
}
