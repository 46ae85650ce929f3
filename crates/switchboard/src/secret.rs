//! Secrets in the configuration: read like any string, never shown.
//!
//! A [`Secret`] prints as `********` in `Debug` and when serialized, so
//! neither `config show` nor a log line can leak it. Only [`Secret::expose`]
//! hands out the text, for the one place that uses it.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a secret prints as.
pub const MASK: &str = "********";

/// A secret string (a shared key, a signing secret, an API key).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(MASK)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(MASK)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.trim().is_empty() {
            return Err(serde::de::Error::custom("a secret must not be empty"));
        }
        Ok(Secret(text))
    }
}

impl std::str::FromStr for Secret {
    type Err = String;

    fn from_str(text: &str) -> Result<Secret, String> {
        if text.trim().is_empty() {
            return Err("a secret must not be empty".into());
        }
        Ok(Secret(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_masked_in_debug_and_serialized_output() {
        let secret: Secret = "hunter2".parse().unwrap();
        assert_eq!(format!("{secret:?}"), MASK);
        #[derive(Serialize)]
        struct Holder {
            key: Secret,
        }
        let text = toml::to_string(&Holder { key: secret.clone() }).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(secret.expose(), "hunter2");
        assert!(" ".parse::<Secret>().is_err());
    }
}
