//! CPU time of a process from /proc, to tell which side was the bottleneck.

/// User + system CPU seconds used so far by `pid` (or this process).
pub(crate) fn seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may contain spaces) start at ") ".
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // The kernel reports clock ticks; USER_HZ is 100 on every Linux we run on.
    Some(ticks as f64 / 100.0)
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
