//! Running `switchboard accounts ...` from a test, as an operator does:
//! the action's arguments, then where the accounts live (`--data-dir DIR`
//! or `--cluster URL`).

#![allow(dead_code)]

use std::ffi::OsStr;
use std::process::Command;

/// Runs `switchboard accounts ARGS PLACE`: (success, stdout, stderr). No
/// config file from the environment takes part.
pub fn run(args: &[&str], place: &[&OsStr]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("accounts")
        .args(args)
        .args(place)
        .env_remove("SWITCHBOARD_CONFIG")
        .output()
        .expect("run the binary");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).trim().to_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Adds account `name` at `place`: its first API key.
pub fn add(place: &[&OsStr], name: &str) -> String {
    let (ok, key, err) = run(&["add", name], place);
    assert!(ok, "accounts add {name}: {err}");
    key
}
