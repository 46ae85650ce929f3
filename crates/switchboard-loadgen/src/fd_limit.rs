//! The open-file limit of this process. Every connection is an open file,
//! and the usual soft limit (1024) stops a load run long before the machine
//! does, so [`raise`] lifts it to the hard limit at start (which needs no
//! privilege) and [`check`] refuses a run that cannot fit, saying how to get
//! further, rather than failing half-way through with "too many open files".
//!
//! It does not touch the server's limit: that is set where the server is
//! started (`ulimit -n` in its shell, `LimitNOFILE=` in its unit).

/// Files this process holds besides its connections: stdio, the runtime's
/// epoll and wake-up descriptors, and the /proc files read between phases.
pub(crate) const SPARE: u64 = 32;

/// Raises the soft RLIMIT_NOFILE to the hard limit. Failure is not fatal
/// here: [`check`] reports the limit that is actually in force.
#[cfg(unix)]
pub(crate) fn raise() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    // `None` is "unlimited": nothing to raise, or nothing to raise it to.
    if let (Some(soft), Some(hard)) = (limit.current, limit.maximum) {
        if soft < hard {
            if let Err(e) = setrlimit(Resource::Nofile, Rlimit { current: Some(hard), maximum: Some(hard) }) {
                eprintln!("loadgen: cannot raise the open-file limit from {soft} to {hard}: {e}");
            }
        }
    }
}

/// Not a Unix: the limit stays as it is.
#[cfg(not(unix))]
pub(crate) fn raise() {}

/// The soft and hard open-file limits in force (`None`: unlimited or unknown).
fn current() -> (Option<u64>, Option<u64>) {
    #[cfg(unix)]
    {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        (limit.current, limit.maximum)
    }
    #[cfg(not(unix))]
    {
        (None, None)
    }
}

/// Ok when `connections` open at once fit under this process's limit.
pub(crate) fn check(connections: usize) -> Result<(), String> {
    let (Some(soft), hard) = current() else { return Ok(()) };
    let need = connections as u64 + SPARE;
    if need <= soft {
        return Ok(());
    }
    let hard = hard.map_or_else(|| "unlimited".to_owned(), |h| h.to_string());
    Err(format!(
        "{connections} connections need about {need} open files, but this process may open {soft} (hard limit {hard}); at most {} connections fit. \
         To go further, raise the hard limit of both this process and the server (as root: `ulimit -Hn 1048576` in the shell that starts them, \
         `LimitNOFILE=` in a systemd unit, or `nofile` in /etc/security/limits.conf; the kernel's ceiling is /proc/sys/fs/nr_open), \
         and keep --source-addrs times the ephemeral port range (/proc/sys/net/ipv4/ip_local_port_range) above the connection count",
        soft.saturating_sub(SPARE)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_cannot_fit_and_says_how_to_go_further() {
        raise();
        assert!(check(1).is_ok());
        let why = check(usize::MAX / 2).unwrap_err();
        assert!(why.contains("connections fit") && why.contains("ulimit -Hn"), "{why}");
    }
}
