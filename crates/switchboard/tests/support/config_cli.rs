//! Running the binary's configuration commands from a test: a clean
//! environment, files in a temporary directory, the output read back.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary, with no `SWITCHBOARD_` variable of the test's own
/// environment leaking settings in.
pub fn switchboard() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    for (name, _) in std::env::vars() {
        if name.starts_with("SWITCHBOARD_") {
            command.env_remove(name);
        }
    }
    command
}

/// Writes `text` to `dir/name`.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs to the end: (success, stdout, stderr).
pub fn run(command: &mut Command) -> (bool, String, String) {
    let Output { status, stdout, stderr } = command.output().expect("run switchboard");
    (status.success(), String::from_utf8(stdout).unwrap(), String::from_utf8(stderr).unwrap())
}

/// Runs a server that should refuse to start to its end: (exit code,
/// stdout, stderr). Kills it (by its handle) and fails if it still runs
/// after 20 s, as a server that accepted what it should refuse would.
pub fn run_bounded(command: &mut Command) -> (Option<i32>, String, String) {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start switchboard");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("switchboard was still running after 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let Output { status, stdout, stderr } = child.wait_with_output().unwrap();
    (status.code(), String::from_utf8_lossy(&stdout).into_owned(), String::from_utf8_lossy(&stderr).into_owned())
}

/// The lines of one table in `config show`'s output.
pub fn table<'a>(shown: &'a str, name: &str) -> Vec<&'a str> {
    let header = format!("[{name}]");
    shown.lines().skip_while(|l| l.trim() != header).skip(1).take_while(|l| !l.starts_with('[')).map(str::trim).collect()
}
