//! Durations on the command line and in the configuration file: `500ms`,
//! `30s`, `2m`, `1h`.

use std::time::Duration;

/// Parses a number followed by `ms`, `s`, `m` or `h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 500ms, 30s, 2m"))?;
    let millis = match unit {
        "ms" => n,
        "s" => n * 1000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        _ => return Err(format!("{text:?}: the unit must be ms, s, m or h")),
    };
    if millis == 0 {
        return Err("a duration must be more than zero".into());
    }
    Ok(Duration::from_millis(millis))
}

/// Writes a duration in the largest unit that divides it, so that what
/// [`parse_duration`] read is printed back the same (`90s`, not `1.5m`).
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1000)] {
        if millis > 0 && millis.is_multiple_of(size) {
            return format!("{}{unit}", millis / size);
        }
    }
    format!("{millis}ms")
}

/// `#[serde(with = "duration::text")]`: a duration as a string like `30s`.
pub mod text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_duration(*duration))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// `#[serde(with = "duration::text_or_zero")]`: like [`text`], and `"0s"`
/// for none at all.
pub mod text_or_zero {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        let text = if duration.is_zero() { "0s".to_owned() } else { super::format_duration(*duration) };
        serializer.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_duration_or_zero(&text).map_err(serde::de::Error::custom)
    }
}

/// Like [`parse_duration`], and `0s` (or `0ms`, ...) for none at all.
pub fn parse_duration_or_zero(text: &str) -> Result<Duration, String> {
    let zero = text.trim().trim_start_matches('0');
    if text.trim().starts_with('0') && ["ms", "s", "m", "h"].contains(&zero) {
        return Ok(Duration::ZERO);
    }
    parse_duration(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_parse_and_bad_input_is_explained() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("30").unwrap_err().contains("unit"));
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("0s").is_err());
        assert_eq!(parse_duration_or_zero("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration_or_zero("00ms"), Ok(Duration::ZERO));
        assert_eq!(parse_duration_or_zero("5s"), Ok(Duration::from_secs(5)));
        assert!(parse_duration_or_zero("0").is_err());
    }

    #[test]
    fn formatting_reads_back_as_the_same_duration() {
        for text in ["250ms", "1500ms", "30s", "90s", "2m", "1h", "25h"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }
}
