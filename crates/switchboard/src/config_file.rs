//! Reading the configuration file: TOML into [`Settings`], with errors that
//! name the file, the line and the key.
//!
//! The file is parsed by `toml` and deserialized with `serde`, through
//! `serde_path_to_error` so that an error knows the dotted key it happened
//! at; `toml` knows the byte span, which gives the line. Keys the file
//! leaves out keep their defaults.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::settings::Settings;

/// Why a configuration file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line of the offending key or value, when known.
    pub line: Option<usize>,
    /// What is wrong, naming the key.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{} line {line}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// Reads and checks a configuration file: every key known, every value
/// valid, and the settings that need each other present together.
pub fn load(file: &Path) -> Result<Settings, ConfigError> {
    let settings = read(file)?;
    settings.validate().map_err(|message| ConfigError { file: file.to_owned(), line: None, message })?;
    Ok(settings)
}

/// Reads a configuration file: every key known, every value valid. What
/// the file leaves to the environment or flags (a secret for a mode the
/// file sets, say) is checked once they are applied.
pub fn read(file: &Path) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|e| ConfigError { file: file.to_owned(), line: None, message: format!("cannot read: {e}") })?;
    parse(&text).map_err(|(line, message)| ConfigError { file: file.to_owned(), line, message })
}

/// Checks that the files the settings name can be used (the TURN secret,
/// the TLS certificate and key), as the server would at start.
pub fn check_files(file: &Path, settings: &Settings) -> Result<(), ConfigError> {
    settings.check_files().map_err(|message| ConfigError { file: file.to_owned(), line: None, message })
}

/// Parses TOML text; an error is its line and a message naming the key.
fn parse(text: &str) -> Result<Settings, (Option<usize>, String)> {
    let line_of = |error: &toml::de::Error| error.span().map(|span| 1 + text[..span.start.min(text.len())].matches('\n').count());
    let deserializer = toml::Deserializer::parse(text).map_err(|e| (line_of(&e), format!("not valid TOML: {}", e.message())))?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let key = e.path().to_string();
        let error = e.into_inner();
        (line_of(&error), describe(&key, error.message()))
    })
}

/// Says what went wrong at `key`. serde reports an unknown key at its table
/// with the key in the message; that becomes the unknown key's full name.
fn describe(key: &str, message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some((name, expected)) = rest.split_once('`') {
            let full = match key.rsplit_once('.') {
                // The path ends at the unknown key itself.
                Some((table, last)) if last == name => format!("{table}.{name}"),
                _ if key == name || key == "." || key.is_empty() => name.to_owned(),
                _ => format!("{key}.{name}"),
            };
            let expected = expected.trim_start_matches(", ");
            return format!("unknown key `{full}` ({expected})");
        }
    }
    if key.is_empty() || key == "." {
        return message.to_owned();
    }
    format!("`{key}`: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> (Option<usize>, String) {
        parse(text).expect_err("refused")
    }

    #[test]
    fn an_empty_file_is_the_defaults() {
        let settings = parse("").unwrap();
        assert_eq!(toml::to_string(&settings).unwrap(), toml::to_string(&Settings::default()).unwrap());
    }

    #[test]
    fn an_unknown_key_is_named_in_full_with_its_line() {
        let (line, message) = error("listen = \"127.0.0.1:1\"\n\n[kinds.chat]\nmax_users = 5\nmax_user = 6\n");
        assert_eq!(line, Some(5));
        assert!(message.contains("unknown key `kinds.chat.max_user`"), "{message}");
        assert!(message.contains("max_users"), "{message}");
        let (line, message) = error("# comment\nlisten_on = \"x\"\n");
        assert_eq!(line, Some(2));
        assert!(message.contains("unknown key `listen_on`"), "{message}");
        let (_, message) = error("[kinds.video]\n");
        assert!(message.contains("unknown key `kinds.video`"), "{message}");
    }

    #[test]
    fn a_bad_value_names_its_key_and_line() {
        let (line, message) = error("[connections]\nping_interval = \"10x\"\n");
        assert_eq!(line, Some(2));
        assert!(message.contains("`connections.ping_interval`") && message.contains("unit"), "{message}");
        let (line, message) = error("\n\nlisten = \"nowhere\"\n");
        assert_eq!(line, Some(3));
        assert!(message.contains("`listen`"), "{message}");
        let (line, message) = error("[kinds.chat]\nhistory = \"many\"\n");
        assert_eq!(line, Some(2));
        assert!(message.contains("`kinds.chat.history`"), "{message}");
        let (_, message) = error("trusted_proxies = [\"10.0.0.0/8\", \"proxy\"]\n");
        assert!(message.contains("`trusted_proxies") && message.contains("\"proxy\""), "{message}");
    }

    #[test]
    fn broken_toml_is_reported_with_its_line() {
        let (line, message) = error("listen = \"127.0.0.1:1\"\nmemory = \n");
        assert_eq!(line, Some(2));
        assert!(message.contains("not valid TOML"), "{message}");
    }
}
