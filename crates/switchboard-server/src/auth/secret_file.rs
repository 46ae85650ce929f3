//! The HS256 secret's file: read, or made once in the data directory so
//! that `serve` and `switchboard token` agree on it without setup.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rand::Rng;

use super::token::{JwtKeys, KeyError};

/// The secret's file name inside the data directory.
pub const SECRET_FILE: &str = "jwt-secret";

/// Keys from the secret in `path`, which is made (32 random bytes as hex,
/// readable by its owner only) when it does not exist yet.
pub fn load_or_create_secret(path: &Path) -> Result<JwtKeys, KeyError> {
    if !path.exists() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| KeyError(format!("cannot create {}: {e}", dir.display())))?;
        }
        let bytes: [u8; 32] = rand::rng().random();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let made = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut file| file.write_all(hex.as_bytes()));
        match made {
            Ok(()) => tracing::info!(path = %path.display(), "made a new JWT secret"),
            // Another process made it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(KeyError(format!("cannot write the JWT secret file {}: {e}", path.display()))),
        }
    }
    JwtKeys::from_files(Some(path), &[], None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_made_secret_is_kept_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(SECRET_FILE);
        let first = load_or_create_secret(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 64);
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        let second = load_or_create_secret(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        // Both load the same secret: one's token passes the other.
        let token = first.mint("acme", Duration::from_secs(60)).unwrap();
        let target = format!("/?token={token}");
        let request = crate::auth::Presented { peer: "127.0.0.1:1".parse().unwrap(), headers: &switchboard_room::Headers::new(), target: &target };
        assert!(second.admit(&request, "c", &[]).is_ok());
    }
}
