//! The bytes of one storage message on a room's subject.
//!
//! Layout: a version byte (1), a kind byte, then the body. Kinds:
//! `0` writes (applied on top of the room's state), `1` snapshot (the whole
//! state, as writes applied to an empty room), `2` owner marker (a node
//! took the room over: node name and lease token, no writes). A write is a
//! tag byte (`0` put, `1` delete, `2` set alarm, `3` delete alarm), the key
//! or alarm name as a length-prefixed string, then the value
//! (length-prefixed bytes) for a put or the time (u64, big-endian Unix
//! milliseconds) for an alarm. Lengths and counts are u32 big-endian.

use switchboard_store::Write;

const VERSION: u8 = 1;

/// One decoded storage message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record {
    /// Writes applied on top of the state.
    Writes(Vec<Write>),
    /// The whole state: replaces everything before it.
    Snapshot(Vec<Write>),
    /// A new owner took the room; carries nothing to apply.
    Owner { node: String, token: u64 },
}

pub(crate) fn encode(record: &Record) -> Vec<u8> {
    let mut out = vec![VERSION];
    match record {
        Record::Writes(writes) | Record::Snapshot(writes) => {
            out.push(if matches!(record, Record::Writes(_)) { 0 } else { 1 });
            put_u32(&mut out, writes.len());
            for write in writes {
                encode_write(&mut out, write);
            }
        }
        Record::Owner { node, token } => {
            out.push(2);
            put_bytes(&mut out, node.as_bytes());
            out.extend_from_slice(&token.to_be_bytes());
        }
    }
    out
}

/// The encoded size of `writes` as one [`Record::Writes`] body, without
/// encoding them.
pub(crate) fn encoded_len(writes: &[Write]) -> usize {
    writes
        .iter()
        .map(|w| match w {
            Write::Put(k, v) => 1 + 4 + k.len() + 4 + v.len(),
            Write::Delete(k) | Write::DeleteAlarm(k) => 1 + 4 + k.len(),
            Write::SetAlarm(k, _) => 1 + 4 + k.len() + 8,
        })
        .sum()
}

fn encode_write(out: &mut Vec<u8>, write: &Write) {
    match write {
        Write::Put(key, value) => {
            out.push(0);
            put_bytes(out, key.as_bytes());
            put_bytes(out, value);
        }
        Write::Delete(key) => {
            out.push(1);
            put_bytes(out, key.as_bytes());
        }
        Write::SetAlarm(name, at_ms) => {
            out.push(2);
            put_bytes(out, name.as_bytes());
            out.extend_from_slice(&at_ms.to_be_bytes());
        }
        Write::DeleteAlarm(name) => {
            out.push(3);
            put_bytes(out, name.as_bytes());
        }
    }
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// Decodes a message; the error says what is wrong with it.
pub(crate) fn decode(bytes: &[u8]) -> Result<Record, String> {
    let mut r = Reader { bytes, at: 0 };
    let version = r.u8()?;
    if version != VERSION {
        return Err(format!("unknown storage message version {version}"));
    }
    let record = match r.u8()? {
        kind @ (0 | 1) => {
            let count = r.u32()? as usize;
            // Each write takes at least five bytes: a bad count cannot make us allocate much.
            let mut writes = Vec::with_capacity(count.min(r.left() / 5));
            for _ in 0..count {
                writes.push(r.write()?);
            }
            if kind == 0 {
                Record::Writes(writes)
            } else {
                Record::Snapshot(writes)
            }
        }
        2 => Record::Owner { node: r.string()?, token: r.u64()? },
        kind => return Err(format!("unknown storage message kind {kind}")),
    };
    if r.left() != 0 {
        return Err(format!("{} bytes after the end of a storage message", r.left()));
    }
    Ok(record)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.left() < n {
            return Err("storage message cut short".into());
        }
        self.at += n;
        Ok(&self.bytes[self.at - n..self.at])
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn bytes(&mut self) -> Result<Vec<u8>, String> {
        let len = self.u32()? as usize;
        Ok(self.take(len)?.to_vec())
    }

    fn string(&mut self) -> Result<String, String> {
        String::from_utf8(self.bytes()?).map_err(|_| "a key that is not UTF-8 in a storage message".to_owned())
    }

    fn write(&mut self) -> Result<Write, String> {
        Ok(match self.u8()? {
            0 => Write::Put(self.string()?, self.bytes()?),
            1 => Write::Delete(self.string()?),
            2 => Write::SetAlarm(self.string()?, self.u64()?),
            3 => Write::DeleteAlarm(self.string()?),
            tag => return Err(format!("unknown write tag {tag}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writes() -> Vec<Write> {
        vec![
            Write::Put("msg/001".into(), b"hello".to_vec()),
            Write::Put("empty".into(), vec![]),
            Write::Delete("gone".into()),
            Write::SetAlarm("tick".into(), 1_700_000_000_123),
            Write::DeleteAlarm("tock".into()),
        ]
    }

    #[test]
    fn every_record_round_trips() {
        for record in [Record::Writes(writes()), Record::Snapshot(writes()), Record::Writes(vec![]), Record::Owner { node: "n-1".into(), token: 42 }] {
            assert_eq!(decode(&encode(&record)), Ok(record));
        }
        let body = encode(&Record::Writes(writes()));
        assert_eq!(body.len(), 2 + 4 + encoded_len(&writes()));
    }

    #[test]
    fn damaged_messages_are_errors_not_panics() {
        let good = encode(&Record::Writes(writes()));
        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = good.clone();
        extra.push(0);
        assert!(decode(&extra).is_err());
        assert!(decode(&[2, 0]).is_err(), "unknown version");
        assert!(decode(&[1, 9]).is_err(), "unknown kind");
        assert!(decode(&[1, 0, 255, 255, 255, 255]).is_err(), "a huge count with no writes");
    }
}
