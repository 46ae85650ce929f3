//! The server turns transparent huge pages off for itself unless
//! `--huge-pages` is given (the kernel reports the flag in /proc).

mod common;

use common::ServerProcess;

/// The `THP_enabled` field of the process's status: `Some(false)` once the
/// process turned huge pages off.
fn thp_enabled(pid: u32) -> Option<bool> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("THP_enabled:"))?;
    Some(line.split_whitespace().nth(1)? == "1")
}

#[test]
fn huge_pages_are_off_unless_asked_for() {
    let Some(ours) = thp_enabled(std::process::id()) else {
        eprintln!("this kernel does not report THP_enabled; nothing to check");
        return;
    };
    if !ours {
        eprintln!("huge pages are already off for this process (inherited); nothing to tell apart");
        return;
    }
    let mut server = ServerProcess::start();
    assert_eq!(thp_enabled(server.pid()), Some(false));
    server.terminate();
    let mut server = ServerProcess::start_with(&["--memory", "--huge-pages"]);
    assert_eq!(thp_enabled(server.pid()), Some(true));
    server.terminate();
}
