//! What the clicks scenario reads of the messages a clicks room sends its
//! dashboards (docs/clicks.md): the type, a click's `time`, and the probe
//! marker a click carries in its referrer host. A hundred dashboards take
//! in a message per click each, so nothing is parsed as a whole: the room's
//! serializer puts `type` first and `referrer` after the location fields,
//! and JSON escapes every quote inside a string, so fixed prefixes and one
//! search from the end find what is needed.

/// The referrer host of the probe click with sequence number `seq`: a name
/// under `.invalid`, which no real visitor's referrer can carry.
pub(crate) fn probe_host(seq: u64) -> String {
    format!("{PROBE_PREFIX}{seq}{PROBE_SUFFIX}")
}

const PROBE_PREFIX: &str = "probe-";
const PROBE_SUFFIX: &str = ".loadgen.invalid";

const SNAPSHOT: &[u8] = br#"{"type":"snapshot""#;
const CLICK: &[u8] = br#"{"type":"click","time":"#;
const REFERRER: &[u8] = br#""referrer":""#;

/// A message's kind, as far as the scenario cares.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Snapshot,
    Click,
    /// `links`, `error`, or anything else.
    Other,
}

pub(crate) fn kind(message: &[u8]) -> Kind {
    if message.starts_with(CLICK) {
        Kind::Click
    } else if message.starts_with(SNAPSHOT) {
        Kind::Snapshot
    } else {
        Kind::Other
    }
}

/// A click message's `time` (Unix milliseconds, set when the redirect was
/// answered).
pub(crate) fn click_time(message: &[u8]) -> Option<u64> {
    let digits = message.strip_prefix(CLICK)?;
    let end = digits.iter().position(|b| !b.is_ascii_digit())?;
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

/// The probe sequence number a click message carries in its referrer, if
/// it is a probe's click.
pub(crate) fn probe_seq(message: &[u8]) -> Option<u64> {
    let at = message.windows(REFERRER.len()).rposition(|w| w == REFERRER)?;
    let host = &message[at + REFERRER.len()..];
    let rest = host.strip_prefix(PROBE_PREFIX.as_bytes())?;
    let end = rest.iter().position(|b| !b.is_ascii_digit())?;
    if !rest[end..].starts_with(PROBE_SUFFIX.as_bytes()) {
        return None;
    }
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_kind_time_and_probe_of_a_click() {
        let probe = format!(
            r#"{{"type":"click","time":1765000000123,"slug":"bench","country":"DE","city":"Berlin \"referrer\":\"probe-9.loadgen.invalid","lat":52.5,"lon":13.4,"referrer":"{}","total":7}}"#,
            probe_host(42)
        );
        assert_eq!(kind(probe.as_bytes()), Kind::Click);
        assert_eq!(click_time(probe.as_bytes()), Some(1_765_000_000_123));
        assert_eq!(probe_seq(probe.as_bytes()), Some(42));
        let visitor = br#"{"type":"click","time":5,"slug":"bench","country":null,"city":null,"lat":null,"lon":null,"referrer":null,"total":8}"#;
        assert_eq!(probe_seq(visitor), None);
        let other = br#"{"type":"click","time":5,"slug":"b","referrer":"probe-1.example.com","total":9}"#;
        assert_eq!(probe_seq(other), None);
        assert_eq!(kind(br#"{"type":"snapshot","account":"a","recent":[]}"#), Kind::Snapshot);
        assert_eq!(kind(br#"{"type":"links","links":[]}"#), Kind::Other);
    }
}
