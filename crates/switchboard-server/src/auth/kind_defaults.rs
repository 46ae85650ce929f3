//! Auth defaults of built-in kinds: a clicks room is an account's
//! dashboard, so the `clicks` kind is in `token` mode with its room id
//! required to equal the token's subject, unless the operator named a mode
//! for it; and `token` mode gets keys without setup.

use std::path::Path;

use rand::Rng;

use super::config::{AuthConfig, AuthMode};
use super::secret_file::{load_or_create_secret, SECRET_FILE};
use super::token::{JwtKeys, KeyError};

/// The clicks kind's name (as in `switchboard_apps::clicks::KIND`).
const CLICKS: &str = switchboard_apps::clicks::KIND;

/// Fills in what the operator left open: the clicks kind's mode and room
/// rule, and, when some kind is in `token` mode without keys, the secret of
/// `DATA_DIR/jwt-secret` (made on first use) or, without a data directory,
/// a random secret that lives as long as the process.
pub fn apply_kind_defaults(config: &mut AuthConfig, data_dir: Option<&Path>) -> Result<(), KeyError> {
    if !config.kinds.iter().any(|(kind, _)| kind == CLICKS) {
        config.kinds.insert(0, (CLICKS.to_owned(), AuthMode::Token));
    }
    if !config.subject_rooms.iter().any(|kind| kind == CLICKS) {
        config.subject_rooms.push(CLICKS.to_owned());
    }
    if config.jwt.is_none() && config.mode_for(CLICKS) == AuthMode::Token {
        let keys = match data_dir {
            Some(dir) => load_or_create_secret(&dir.join(SECRET_FILE))?,
            None => {
                let bytes: [u8; 32] = rand::rng().random();
                let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                JwtKeys::from_secret(hex.as_bytes())?
            }
        };
        config.jwt = Some(std::sync::Arc::new(keys));
    }
    Ok(())
}

/// Whether [`apply_kind_defaults`] would make keys: the clicks kind is in
/// `token` mode (the operator's choice or the default) and no keys are set.
pub(crate) fn wants_default_keys(config: &AuthConfig) -> bool {
    config.jwt.is_none() && config.kinds.iter().rev().find(|(kind, _)| kind == CLICKS).is_none_or(|(_, mode)| *mode == AuthMode::Token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn clicks_defaults_to_token_mode_with_its_room_as_the_subject() {
        let mut config = AuthConfig::default();
        apply_kind_defaults(&mut config, None).unwrap();
        assert_eq!(config.mode_for(CLICKS), AuthMode::Token);
        assert_eq!(config.mode_for("chat"), AuthMode::Public);
        assert_eq!(config.subject_rooms, vec![CLICKS.to_owned()]);
        assert!(config.jwt.as_ref().is_some_and(|k| k.can_mint()), "a random secret without a data directory");
        assert!(config.check(false).is_ok());
    }

    #[test]
    fn an_operators_mode_for_clicks_is_kept() {
        let mut config = AuthConfig { kinds: vec![("clicks".into(), AuthMode::TrustedHeader)], ..AuthConfig::default() };
        apply_kind_defaults(&mut config, None).unwrap();
        assert_eq!(config.mode_for(CLICKS), AuthMode::TrustedHeader);
        assert!(config.jwt.is_none(), "no keys where no kind verifies tokens");
        assert_eq!(config.subject_rooms, vec![CLICKS.to_owned()]);
    }

    #[test]
    fn the_default_secret_is_kept_in_the_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = AuthConfig::default();
        apply_kind_defaults(&mut first, Some(dir.path())).unwrap();
        assert!(dir.path().join(SECRET_FILE).exists());
        let mut second = AuthConfig::default();
        apply_kind_defaults(&mut second, Some(dir.path())).unwrap();
        let token = first.jwt.unwrap().mint("acme", Duration::from_secs(60)).unwrap();
        let target = format!("/rooms/clicks/acme?token={token}");
        let request = crate::auth::Presented { peer: "127.0.0.1:1".parse().unwrap(), headers: &switchboard_room::Headers::new(), target: &target };
        assert!(second.jwt.unwrap().admit(&request, "c", &[]).is_ok(), "a restarted server takes the tokens it minted before");
    }
}
