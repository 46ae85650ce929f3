//! CPU time of a process from /proc, to tell which side was the bottleneck
//! and where a server's time went (its own code or the kernel).

use std::ops::Sub;

/// CPU seconds of a process, in user space and in the kernel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CpuTime {
    pub(crate) user: f64,
    pub(crate) system: f64,
}

impl CpuTime {
    /// User and system time together.
    pub(crate) fn total(self) -> f64 {
        self.user + self.system
    }
}

impl Sub for CpuTime {
    type Output = CpuTime;

    fn sub(self, earlier: CpuTime) -> CpuTime {
        CpuTime { user: self.user - earlier.user, system: self.system - earlier.system }
    }
}

/// CPU time used so far by `pid` (or this process).
pub(crate) fn seconds(pid: Option<u32>) -> Option<CpuTime> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    parse_stat(&std::fs::read_to_string(path).ok()?)
}

/// The user and system time of a /proc/PID/stat line.
fn parse_stat(stat: &str) -> Option<CpuTime> {
    // Fields after the command name (which may contain spaces) start at ") ".
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here. The
    // kernel reports clock ticks; USER_HZ is 100 on every Linux we run on.
    let ticks = |i: usize| Some(fields.get(i)?.parse::<u64>().ok()? as f64 / 100.0);
    Some(CpuTime { user: ticks(11)?, system: ticks(12)? })
}

/// Seconds the threads of `pid` (or this process) have spent so far ready
/// to run but waiting for a core, summed over the threads alive now (the
/// second field of /proc/PID/task/TID/schedstat, nanoseconds). On a
/// machine with other work this is what turns into latency that neither
/// side's CPU use shows.
pub(crate) fn run_queue_wait(pid: Option<u32>) -> Option<f64> {
    let dir = match pid {
        Some(pid) => format!("/proc/{pid}/task"),
        None => "/proc/self/task".to_owned(),
    };
    let mut total_ns = 0u64;
    for task in std::fs::read_dir(dir).ok()? {
        let Ok(stat) = std::fs::read_to_string(task.ok()?.path().join("schedstat")) else { continue };
        total_ns += stat.split_whitespace().nth(1)?.parse::<u64>().ok()?;
    }
    Some(total_ns as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_user_and_system_time_after_a_command_name_with_spaces() {
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 300 0 0 0 250 75 0 0 20 0 1 0 100 1000000 200";
        assert_eq!(parse_stat(stat), Some(CpuTime { user: 2.5, system: 0.75 }));
        assert_eq!(parse_stat("4242 (x) S 1"), None);
        let own = seconds(None).expect("this process's own times");
        assert!(own.user >= 0.0 && own.system >= 0.0);
    }

    /// A one-thread process's wait only grows (this test process's own sum
    /// can fall when another test's thread ends between two reads).
    #[test]
    fn reads_a_process_s_wait_for_a_core() {
        let mut child = std::process::Command::new("sleep").arg("5").spawn().expect("sleep runs");
        let before = super::run_queue_wait(Some(child.id())).expect("schedstat of the child");
        assert!(super::run_queue_wait(Some(child.id())).expect("schedstat again") >= before);
        assert!(super::run_queue_wait(None).is_some());
        let _ = child.kill();
        let _ = child.wait();
    }
}
