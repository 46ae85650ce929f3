//! What the clicks scenario reads of the messages a clicks room sends its
//! dashboards (docs/clicks.md): the type, how many clicks a message holds,
//! the first click's `time`, and the probe markers the clicks carry in
//! their referrer host. A hundred dashboards take in every click, so
//! nothing is parsed as a whole. The room's serializer puts `type` first and
//! each click's `time` first, and JSON escapes every quote inside a string,
//! so `{"time":` and `"referrer":"` occur only where a click starts and
//! where its referrer is: fixed prefixes and substring searches find them.

use memchr::memmem;

/// The referrer host of the probe click with sequence number `seq`: a name
/// under `.invalid`, which no real visitor's referrer can carry.
pub(crate) fn probe_host(seq: u64) -> String {
    format!("{PROBE_PREFIX}{seq}{PROBE_SUFFIX}")
}

const PROBE_PREFIX: &str = "probe-";
const PROBE_SUFFIX: &str = ".loadgen.invalid";

const SNAPSHOT: &[u8] = br#"{"type":"snapshot""#;
const CLICK: &[u8] = br#"{"type":"click","time":"#;
const CLICKS: &[u8] = br#"{"type":"clicks","clicks":[{"time":"#;
/// Where each click of a `clicks` message starts.
const CLICK_START: &[u8] = br#"{"time":"#;
const PROBE_REFERRER: &[u8] = br#""referrer":"probe-"#;

/// A message's kind, as far as the scenario cares.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum Kind {
    Snapshot,
    /// One click.
    Click,
    /// A group of clicks.
    Clicks,
    /// `links`, `error`, or anything else.
    Other,
}

pub(crate) fn kind(message: &[u8]) -> Kind {
    if message.starts_with(CLICK) {
        Kind::Click
    } else if message.starts_with(CLICKS) {
        Kind::Clicks
    } else if message.starts_with(SNAPSHOT) {
        Kind::Snapshot
    } else {
        Kind::Other
    }
}

/// The clicks in a `click` or `clicks` message.
pub(crate) fn click_count(kind: Kind, message: &[u8]) -> u64 {
    match kind {
        Kind::Click => 1,
        Kind::Clicks => memmem::find_iter(message, CLICK_START).count() as u64,
        Kind::Snapshot | Kind::Other => 0,
    }
}

/// The `time` of a `click` message's click, or of a `clicks` message's
/// first (Unix milliseconds, set when the redirect was answered).
pub(crate) fn first_time(kind: Kind, message: &[u8]) -> Option<u64> {
    let digits = match kind {
        Kind::Click => message.strip_prefix(CLICK)?,
        Kind::Clicks => message.strip_prefix(CLICKS)?,
        Kind::Snapshot | Kind::Other => return None,
    };
    leading_number(digits)
}

/// The probe sequence numbers the clicks of a message carry in their
/// referrers, in the message's order.
pub(crate) fn probe_seqs(message: &[u8]) -> impl Iterator<Item = u64> + '_ {
    memmem::find_iter(message, PROBE_REFERRER).filter_map(|at| {
        let rest = &message[at + PROBE_REFERRER.len()..];
        let end = rest.iter().position(|b| !b.is_ascii_digit())?;
        rest[end..].starts_with(PROBE_SUFFIX.as_bytes()).then(|| leading_number(rest)).flatten()
    })
}

fn leading_number(digits: &[u8]) -> Option<u64> {
    let end = digits.iter().position(|b| !b.is_ascii_digit())?;
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_kind_time_and_probe_of_a_click() {
        let probe = format!(
            r#"{{"type":"click","time":1765000000123,"slug":"bench","country":"DE","city":"Berlin \"referrer\":\"probe-9.loadgen.invalid {{\"time\":","lat":52.5,"lon":13.4,"referrer":"{}","total":7}}"#,
            probe_host(42)
        );
        let probe = probe.as_bytes();
        assert_eq!(kind(probe), Kind::Click);
        assert_eq!(click_count(Kind::Click, probe), 1);
        assert_eq!(first_time(Kind::Click, probe), Some(1_765_000_000_123));
        assert_eq!(probe_seqs(probe).collect::<Vec<_>>(), [42]);
        let visitor = br#"{"type":"click","time":5,"slug":"bench","country":null,"city":null,"lat":null,"lon":null,"referrer":null,"total":8}"#;
        assert_eq!(probe_seqs(visitor).count(), 0);
        let other = br#"{"type":"click","time":5,"slug":"b","referrer":"probe-1.example.com","total":9}"#;
        assert_eq!(probe_seqs(other).count(), 0);
        assert_eq!(kind(br#"{"type":"snapshot","account":"a","recent":[]}"#), Kind::Snapshot);
        assert_eq!(kind(br#"{"type":"links","links":[]}"#), Kind::Other);
    }

    #[test]
    fn counts_the_clicks_of_a_group_and_finds_its_probes_in_order() {
        let click = |time: u64, city: &str, referrer: Option<String>| {
            let referrer = referrer.map_or_else(|| "null".to_owned(), |r| format!("\"{r}\""));
            format!(r#"{{"time":{time},"slug":"bench","country":"DE","city":"{city}","lat":52.5,"lon":13.4,"referrer":{referrer}}}"#)
        };
        let clicks = [
            click(1_765_000_000_100, "Berlin", None),
            click(1_765_000_000_101, r#"Look \"referrer\":\"probe-1.loadgen.invalid {\"time\":"#, Some(probe_host(7))),
            click(1_765_000_000_102, "Bonn", Some("news.example".into())),
            click(1_765_000_000_103, "Köln", Some(probe_host(8))),
        ];
        let message = format!(r#"{{"type":"clicks","clicks":[{}],"total":40}}"#, clicks.join(","));
        let message = message.as_bytes();
        assert_eq!(kind(message), Kind::Clicks);
        assert_eq!(click_count(Kind::Clicks, message), 4);
        assert_eq!(first_time(Kind::Clicks, message), Some(1_765_000_000_100));
        assert_eq!(probe_seqs(message).collect::<Vec<_>>(), [7, 8]);
    }
}
