//! The text of one access line, written without the generic event
//! formatter: the two access lines are the only events a busy server emits
//! per connection and per request, so they are built here with integer
//! writes and a timestamp cached per second, in exactly the shapes
//! tracing-subscriber's `fmt` (no colours) and `json` (flattened) formats
//! give every other event. A test holds the two to the same bytes.

use std::cell::RefCell;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How an access line is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFormat {
    /// `<timestamp>  INFO access: <message> key=value …`
    Text,
    /// One JSON object, the fields at the top level.
    Json,
}

/// One field's value.
#[derive(Clone, Copy)]
pub(crate) enum Value<'a> {
    /// A string as tracing records a `&str` field: quoted in text.
    Str(&'a str),
    /// A value recorded with `%` (Display): bare in text, a string in JSON.
    Shown(&'a str),
    Ip(IpAddr),
    U64(u64),
    /// Milliseconds as a float, from a duration (microsecond precision).
    Millis(Duration),
}

/// Appends one line (with its newline) for an event of target `access` at
/// level INFO, stamped `now`.
pub(crate) fn write(out: &mut Vec<u8>, format: LineFormat, now: SystemTime, message: &str, fields: &[(&str, Value)]) {
    match format {
        LineFormat::Text => {
            timestamp(out, now);
            out.extend_from_slice(b"  INFO access: ");
            out.extend_from_slice(message.as_bytes());
            for (key, value) in fields {
                out.push(b' ');
                out.extend_from_slice(key.as_bytes());
                out.push(b'=');
                match *value {
                    Value::Str(s) => debug_str(out, s),
                    Value::Shown(s) => out.extend_from_slice(s.as_bytes()),
                    Value::Ip(ip) => write_ip(out, ip),
                    Value::U64(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
                    Value::Millis(d) => millis(out, d),
                }
            }
        }
        LineFormat::Json => {
            out.extend_from_slice(b"{\"timestamp\":\"");
            timestamp(out, now);
            out.extend_from_slice(b"\",\"level\":\"INFO\",\"message\":");
            json_str(out, message);
            for (key, value) in fields {
                out.extend_from_slice(b",\"");
                out.extend_from_slice(key.as_bytes());
                out.extend_from_slice(b"\":");
                match *value {
                    Value::Str(s) | Value::Shown(s) => json_str(out, s),
                    Value::Ip(ip) => {
                        out.push(b'"');
                        write_ip(out, ip);
                        out.push(b'"');
                    }
                    Value::U64(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
                    Value::Millis(d) => millis(out, d),
                }
            }
            out.extend_from_slice(b",\"target\":\"access\"}");
        }
    }
    out.push(b'\n');
}

/// `2026-12-06T07:18:15.326542Z`: RFC 3339 in UTC with microseconds, the
/// date and time of day formatted once per second per thread.
fn timestamp(out: &mut Vec<u8>, now: SystemTime) {
    thread_local! {
        static SECOND: RefCell<(u64, [u8; 19])> = const { RefCell::new((u64::MAX, [0; 19])) };
    }
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    SECOND.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != secs {
            *cached = (secs, date_time(secs));
        }
        out.extend_from_slice(&cached.1);
    });
    out.push(b'.');
    padded(out, since.subsec_micros(), 6);
    out.push(b'Z');
}

/// `YYYY-MM-DDTHH:MM:SS` of Unix seconds, in the proleptic Gregorian
/// calendar.
fn date_time(secs: u64) -> [u8; 19] {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_date(days);
    let mut text = [0u8; 19];
    let two = |out: &mut [u8], n: u64| {
        out[0] = b'0' + (n / 10) as u8;
        out[1] = b'0' + (n % 10) as u8;
    };
    two(&mut text[0..2], year / 100 % 100);
    two(&mut text[2..4], year % 100);
    text[4] = b'-';
    two(&mut text[5..7], month);
    text[7] = b'-';
    two(&mut text[8..10], day);
    text[10] = b'T';
    two(&mut text[11..13], rest / 3600);
    text[13] = b':';
    two(&mut text[14..16], rest / 60 % 60);
    text[16] = b':';
    two(&mut text[17..19], rest % 60);
    text
}

/// (year, month 1-12, day 1-31) of a count of days since 1970-01-01.
/// Counts in 400-year eras from 0000-03-01, so that a leap day is the last
/// day of its year and every era has the same 146,097 days.
fn civil_date(days: u64) -> (u64, u64, u64) {
    let from_era_start = days + 719_468;
    let era = from_era_start / 146_097;
    let day_of_era = from_era_start % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Milliseconds with the microseconds as the fraction, as Rust prints the
/// `f64` `micros / 1000.0`: no trailing zeros, at least one digit after
/// the point.
fn millis(out: &mut Vec<u8>, took: Duration) {
    let micros = took.as_micros();
    out.extend_from_slice(itoa::Buffer::new().format(micros / 1000).as_bytes());
    out.push(b'.');
    let mut fraction = (micros % 1000) as u32;
    if fraction == 0 {
        out.push(b'0');
        return;
    }
    let mut width = 3;
    while fraction.is_multiple_of(10) {
        fraction /= 10;
        width -= 1;
    }
    padded(out, fraction, width);
}

/// The last `width` decimal digits of `n`, zeros in front.
fn padded(out: &mut Vec<u8>, mut n: u32, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for digit in out[start..].iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

fn write_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(itoa::Buffer::new().format(octet).as_bytes());
            }
        }
        IpAddr::V6(v6) => {
            use std::io::Write;
            let _ = write!(out, "{v6}");
        }
    }
}

/// A `&str` field as tracing's text format shows it: Rust's `Debug`.
fn debug_str(out: &mut Vec<u8>, s: &str) {
    if !quoted_as_is(out, s) {
        use std::io::Write;
        let _ = write!(out, "{s:?}");
    }
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    if !quoted_as_is(out, s) {
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// Appends `"s"` when `s` is printable ASCII without a quote or a
/// backslash, which both `Debug` and JSON write unchanged; false (and
/// nothing appended) when it needs escaping.
fn quoted_as_is(out: &mut Vec<u8>, s: &str) -> bool {
    let plain = s.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\');
    if plain {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
    plain
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::net::Ipv6Addr;
    use std::sync::{Arc, Mutex};

    /// What tracing-subscriber writes, gathered in memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The line tracing-subscriber writes for the session event, with its
    /// own clock: compared from the character after the timestamp.
    fn by_tracing(format: LineFormat, client: IpAddr, took: Duration, path: &str) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let builder = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone());
        let event = || {
            tracing::info!(target: "access", kind = "websocket", %client, room = %"echo/x", duration_ms = took.as_micros() as f64 / 1000.0,
                bytes_in = 34u64, bytes_out = 26u64, close_code = %"1000", "websocket session");
            tracing::info!(target: "access", kind = "http", peer = %"127.0.0.1:4000", method = %"GET", path, status = 200u64,
                duration_ms = took.as_micros() as f64 / 1000.0, "http request");
        };
        match format {
            LineFormat::Text => tracing::subscriber::with_default(builder.finish(), event),
            LineFormat::Json => tracing::subscriber::with_default(builder.json().flatten_event(true).finish(), event),
        }
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        text
    }

    fn by_us(format: LineFormat, client: IpAddr, took: Duration, path: &str) -> String {
        let mut out = Vec::new();
        let now = SystemTime::now();
        write(
            &mut out,
            format,
            now,
            "websocket session",
            &[
                ("kind", Value::Str("websocket")),
                ("client", Value::Ip(client)),
                ("room", Value::Shown("echo/x")),
                ("duration_ms", Value::Millis(took)),
                ("bytes_in", Value::U64(34)),
                ("bytes_out", Value::U64(26)),
                ("close_code", Value::Shown("1000")),
            ],
        );
        write(
            &mut out,
            format,
            now,
            "http request",
            &[
                ("kind", Value::Str("http")),
                ("peer", Value::Shown("127.0.0.1:4000")),
                ("method", Value::Shown("GET")),
                ("path", Value::Str(path)),
                ("status", Value::U64(200)),
                ("duration_ms", Value::Millis(took)),
            ],
        );
        String::from_utf8(out).unwrap()
    }

    /// Each line from the end of its timestamp on.
    fn after_timestamps(text: &str) -> Vec<String> {
        text.lines()
            .map(|line| {
                let at = line.find("Z").expect("a timestamp");
                line[at..].to_owned()
            })
            .collect()
    }

    #[test]
    fn lines_match_the_event_formatter_byte_for_byte() {
        let clients = [IpAddr::from([127, 0, 0, 1]), IpAddr::from([10, 200, 3, 44]), IpAddr::V6(Ipv6Addr::LOCALHOST), "2001:db8::7".parse().unwrap()];
        let durations = [0, 1, 49, 1000, 1500, 1234, 10_010, 52_000, 3_600_000_123].map(Duration::from_micros);
        let paths = ["/readyz", "/apps/chat/", "/l/a\"b\\c", "/caf\u{e9}/\u{1}x"];
        for format in [LineFormat::Text, LineFormat::Json] {
            for (i, &took) in durations.iter().enumerate() {
                let (client, path) = (clients[i % clients.len()], paths[i % paths.len()]);
                let theirs = by_tracing(format, client, took, path);
                let ours = by_us(format, client, took, path);
                assert_eq!(after_timestamps(&ours), after_timestamps(&theirs), "{format:?} {took:?} {client} {path:?}");
                assert_eq!(ours.lines().count(), 2);
            }
        }
    }

    #[test]
    fn timestamps_are_rfc3339_in_utc_with_microseconds() {
        let at = |secs: u64, micros: u64| {
            let mut out = Vec::new();
            timestamp(&mut out, UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros));
            String::from_utf8(out).unwrap()
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 7), "2000-02-29T00:00:00.000007Z");
        assert_eq!(at(951_868_799, 999_999), "2000-02-29T23:59:59.999999Z");
        assert_eq!(at(4_107_542_400, 120), "2100-03-01T00:00:00.000120Z");
        assert_eq!(at(1_796_541_495, 326_542), "2026-12-06T07:18:15.326542Z");
        // The cached second is per second: the next one is formatted anew.
        assert_eq!(at(1_796_541_496, 0), "2026-12-06T07:18:16.000000Z");
    }

    #[test]
    fn the_date_is_right_on_every_day_of_four_centuries() {
        // Walks day by day from 1970 for 400 years, counting the calendar
        // by hand, and checks each day's date.
        let (mut year, mut month, mut day) = (1970u64, 1u64, 1u64);
        for days in 0..146_097u64 {
            assert_eq!(civil_date(days), (year, month, day), "day {days}");
            let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
            let length = match month {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            day += 1;
            if day > length {
                day = 1;
                month += 1;
                if month > 12 {
                    month = 1;
                    year += 1;
                }
            }
        }
    }
}
