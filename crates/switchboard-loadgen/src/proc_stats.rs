//! What /proc says about the server process: resident anonymous memory,
//! open files and the open-file limit. These are the figures the idle and churn
//! scenarios report per connection and compare before and after a run.
//! Reading them costs a few system calls (a directory listing of up to one
//! entry per connection for the open files), so they are sampled between
//! phases, never in a loop that carries load.

/// Memory and open files of a process at one moment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    /// Resident anonymous memory (RssAnon), KiB: see [`anon_kib`].
    pub(crate) anon_kib: u64,
    /// Entries in /proc/PID/fd.
    pub(crate) fds: u64,
}

impl Sample {
    /// Reads both figures of `pid`; `None` when the process is gone or its
    /// /proc entries are not readable by this user.
    pub(crate) fn take(pid: u32) -> Option<Sample> {
        Some(Sample { anon_kib: anon_kib(pid)?, fds: open_files(pid)? })
    }
}

/// Resident anonymous memory of `pid` in KiB, from the `RssAnon:` line of
/// /proc/PID/status: the heap and stacks, where a server keeps its
/// connections. Not VmRSS, which also counts the program's own code and
/// read-only data as its pages are first touched: a run that reaches code
/// the server had not run before grows it by as much, once, and spread over
/// ten thousand connections that read as tens of bytes each.
pub(crate) fn anon_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_field(&status, "RssAnon:")
}

/// Open file descriptors of `pid` (sockets included).
pub(crate) fn open_files(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// The soft open-file limit of `pid`, from /proc/PID/limits; `None` when
/// unreadable or unlimited.
pub(crate) fn open_files_limit(pid: u32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    limits_soft(&limits, "Max open files")
}

/// The number after `key` in a /proc/PID/status text (`VmRSS:   61234 kB`).
fn status_field(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|l| l.strip_prefix(key))?.split_whitespace().next()?.parse().ok()
}

/// The soft limit (first number after the name) of one line of a
/// /proc/PID/limits text: `Max open files    20000    20000    files`.
fn limits_soft(limits: &str, name: &str) -> Option<u64> {
    limits.lines().find_map(|l| l.strip_prefix(name))?.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_status_and_limits_formats() {
        let status = "Name:\tswitchboard\nVmPeak:\t  90000 kB\nVmRSS:\t   61234 kB\nRssAnon:\t   40960 kB\nThreads:\t3\n";
        assert_eq!(status_field(status, "VmRSS:"), Some(61234));
        assert_eq!(status_field(status, "RssAnon:"), Some(40960));
        assert_eq!(status_field(status, "VmSwap:"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             95000                95000                processes \n\
                      Max open files            1024                 20000                files     \n\
                      Max locked memory         unlimited            unlimited            bytes     \n";
        assert_eq!(limits_soft(limits, "Max open files"), Some(1024));
        assert_eq!(limits_soft(limits, "Max locked memory"), None);
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        let sample = Sample::take(me).expect("own /proc entries");
        assert!(sample.anon_kib > 0 && sample.fds >= 3, "{sample:?}");
        assert!(open_files_limit(me).is_some_and(|l| l >= sample.fds));
    }
}
