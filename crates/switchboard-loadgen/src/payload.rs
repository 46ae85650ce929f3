//! The payloads the echo and broadcast scenarios send: filler bytes by
//! default, or with `--json` a JSON document of the kind realtime apps
//! send (a list of records with repeated keys and similar values), so that
//! a compressing server and client see text that compresses as app
//! traffic does, not a run of one byte.

/// A JSON object of about `size` bytes (never less than its one record):
/// `{"stamp":"<stamp>","items":[{...},...]}`. The records differ in their
/// numbers and names, so the text is not one repeated string.
pub(crate) fn json(stamp: &str, size: usize) -> Vec<u8> {
    let mut out = format!("{{\"stamp\":\"{stamp}\",\"items\":[").into_bytes();
    let mut i = 0u64;
    loop {
        let record = format!(
            "{}{{\"id\":{},\"user\":\"user-{}\",\"status\":\"{}\",\"score\":{},\"room\":\"lobby-{}\",\"updated\":\"2026-12-06T10:{:02}:{:02}Z\"}}",
            if i == 0 { "" } else { "," },
            1000 + i * 7,
            (i * 37) % 1000,
            ["online", "away", "busy"][(i % 3) as usize],
            (i * 7919) % 10_000,
            i % 16,
            (i * 13) % 60,
            (i * 29) % 60,
        );
        if i > 0 && out.len() + record.len() + 2 > size {
            break;
        }
        out.extend_from_slice(record.as_bytes());
        i += 1;
    }
    out.extend_from_slice(b"]}");
    out
}

/// The stamp of a payload made by [`json`], if it is one.
pub(crate) fn json_stamp(payload: &[u8]) -> Option<&[u8]> {
    let rest = payload.strip_prefix(b"{\"stamp\":\"")?;
    let end = rest.iter().position(|&b| b == b'"')?;
    Some(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_payloads_are_json_of_about_the_size_asked_and_carry_their_stamp() {
        for size in [10, 300, 1024, 4096, 16_384] {
            let payload = json("00ff", size);
            let value: serde_json::Value = serde_json::from_slice(&payload).expect("valid JSON");
            assert_eq!(value["stamp"], "00ff");
            assert!(payload.len() <= size.max(200), "{size}: {} bytes", payload.len());
            assert!(payload.len() + 200 > size, "{size}: only {} bytes", payload.len());
            assert_eq!(json_stamp(&payload), Some(&b"00ff"[..]));
        }
        assert_eq!(json_stamp(b"{\"type\":\"count\",\"online\":3}"), None);
    }
}
