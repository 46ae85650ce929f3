//! This process's resident memory, open files and CPU time, read from
//! /proc/self when `/metrics` is scraped (a few small reads and one
//! directory listing per scrape, never on a connection's path). Outside
//! Linux every figure is `None` and the metrics leave it out.

/// The figures at one moment; `None` where /proc did not say.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcessStats {
    /// Resident memory (VmRSS), bytes.
    pub(crate) resident_bytes: Option<u64>,
    /// Open file descriptors (sockets included).
    pub(crate) open_fds: Option<u64>,
    /// The soft limit on open file descriptors.
    pub(crate) max_fds: Option<u64>,
    /// User plus system CPU time, seconds.
    pub(crate) cpu_seconds: Option<f64>,
}

/// Clock ticks per second in /proc/PID/stat: Linux reports CPU times in
/// USER_HZ, which is 100 on every architecture it exposes to user space.
const USER_HZ: f64 = 100.0;

impl ProcessStats {
    /// Reads /proc/self.
    pub(crate) fn read() -> ProcessStats {
        let status = std::fs::read_to_string("/proc/self/status").ok();
        let limits = std::fs::read_to_string("/proc/self/limits").ok();
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        ProcessStats {
            resident_bytes: status.as_deref().and_then(|s| first_number_after(s, "VmRSS:")).map(|kib| kib * 1024),
            open_fds: std::fs::read_dir("/proc/self/fd").ok().map(|dir| dir.count() as u64),
            max_fds: limits.as_deref().and_then(|l| first_number_after(l, "Max open files")),
            cpu_seconds: stat.as_deref().and_then(cpu_ticks).map(|ticks| ticks as f64 / USER_HZ),
        }
    }
}

/// The first number after `key` on the line that starts with it, as in
/// `VmRSS:   61234 kB` or `Max open files  1024  4096  files`.
fn first_number_after(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(key))?.split_whitespace().next()?.parse().ok()
}

/// utime + stime (fields 14 and 15) of a /proc/PID/stat line. The command
/// name (field 2) is in parentheses and may hold spaces, so fields are
/// counted from the last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_proc_formats() {
        assert_eq!(first_number_after("Name:\tx\nVmRSS:\t  6123 kB\n", "VmRSS:"), Some(6123));
        assert_eq!(first_number_after("Max open files            1024                 4096                 files\n", "Max open files"), Some(1024));
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 30 0 0 20 0 3 0 100 0 0";
        assert_eq!(cpu_ticks(stat), Some(280));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        let stats = ProcessStats::read();
        assert!(stats.resident_bytes.is_some_and(|b| b > 0), "{stats:?}");
        assert!(stats.open_fds.is_some_and(|n| n >= 3) && stats.max_fds.is_some(), "{stats:?}");
        assert!(stats.cpu_seconds.is_some(), "{stats:?}");
    }
}
