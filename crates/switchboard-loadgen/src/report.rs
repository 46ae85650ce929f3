//! The final table of a run, with the bottleneck check, and the number
//! formats the tables and progress lines share.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::cpu::CpuTime;

/// What one run measured.
pub(crate) struct Report {
    pub(crate) scenario: &'static str,
    pub(crate) connections: usize,
    pub(crate) in_flight: usize,
    pub(crate) size: usize,
    pub(crate) elapsed: Duration,
    /// Messages received by the load generator during the measurement.
    pub(crate) messages: u64,
    /// Latency from send to receipt, microseconds.
    pub(crate) latency_us: Option<Histogram<u64>>,
    /// Bytes the receivers read off the wire during the measurement.
    pub(crate) wire_bytes: Option<u64>,
    pub(crate) client_cpu: Option<CpuTime>,
    pub(crate) server_cpu: Option<CpuTime>,
}

impl Report {
    pub(crate) fn print(&self) {
        let secs = self.elapsed.as_secs_f64();
        let rate = self.messages as f64 / secs;
        let mbps = rate * self.size as f64 / 1e6;
        println!("scenario      {}", self.scenario);
        println!("connections   {}", self.connections);
        println!("in flight     {}", self.in_flight);
        println!("payload       {} B", self.size);
        println!("duration      {secs:.2} s");
        println!("messages/s    {rate:.0}");
        println!("MB/s          {mbps:.1}");
        if let (Some(wire), 1..) = (self.wire_bytes, self.messages) {
            println!("wire B/msg    {:.1} (frames as received, per message)", wire as f64 / self.messages as f64);
        }
        if let Some(h) = &self.latency_us {
            println!("latency us    {}", latency_row(h));
        }
        print_cpu(secs, self.client_cpu, self.server_cpu, (self.messages, "message"));
    }
}

/// `p50 N  p99 N  p999 N  max N` of a latency histogram, the row the
/// scenarios that time round trips print after `latency us`.
pub(crate) fn latency_row(h: &Histogram<u64>) -> String {
    format!("p50 {}  p99 {}  p999 {}  max {}", h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.value_at_quantile(0.999), h.max())
}

/// The CPU rows and the verdict, shared by every scenario's table: CPU
/// time used over `secs` of wall time by the load generator and the
/// server (the server's split into its own code and the kernel), and the
/// server's CPU time per unit of `work` (count, unit). That last figure
/// stays a fair comparison of servers when the load generator, not the
/// server, set the pace: it is the inverse of the rate the server would
/// reach on a whole core of its own, kernel time included.
pub(crate) fn print_cpu(secs: f64, client_cpu: Option<CpuTime>, server_cpu: Option<CpuTime>, work: (u64, &str)) {
    let share = |cpu: Option<CpuTime>| cpu.map(|c| c.total() / secs * 100.0);
    if let Some(c) = share(client_cpu) {
        println!("loadgen CPU   {c:.0} % of one core");
    }
    if let (Some(s), Some(cpu)) = (share(server_cpu), server_cpu) {
        println!("server CPU    {s:.0} % of one core (user {:.0} %, system {:.0} %)", cpu.user / secs * 100.0, cpu.system / secs * 100.0);
    }
    if let (Some(cpu), (count @ 1.., unit)) = (server_cpu, work) {
        let per_unit = |seconds: f64| seconds * 1e6 / count as f64;
        println!("server cost   {:.2} us of CPU per {unit}", per_unit(cpu.total()));
        println!("  of which    {:.2} us user, {:.2} us system", per_unit(cpu.user), per_unit(cpu.system));
    }
    println!("verdict       {}", verdict(share(client_cpu), share(server_cpu)));
}

/// Which side set the pace, from the two CPU shares (percent of a core).
fn verdict(client: Option<f64>, server: Option<f64>) -> String {
    match (client, server) {
        (Some(c), Some(s)) if c >= 90.0 && c > s => "LOAD-GENERATOR BOUND: this is not a server figure".into(),
        (Some(c), _) if c >= 90.0 => format!("the load generator was busy too ({c:.0} %); read with care"),
        (Some(c), Some(s)) if s < 90.0 => {
            format!("neither side used its core ({c:.0} % and {s:.0} %): the round trips set the pace; compare the server cost")
        }
        (_, Some(_)) => "server bound".into(),
        _ => "unknown (pass --server-pid to compare CPU use)".into(),
    }
}

/// `12345678` as `12,345,678`.
pub(crate) fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// KiB as MiB with one decimal, e.g. `61.2 MiB`.
pub(crate) fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_names_the_side_that_set_the_pace() {
        assert!(verdict(Some(96.0), Some(80.0)).starts_with("LOAD-GENERATOR BOUND"));
        assert!(verdict(Some(92.0), Some(99.0)).contains("read with care"));
        assert_eq!(verdict(Some(70.0), Some(99.0)), "server bound");
        assert!(verdict(Some(85.0), Some(83.0)).starts_with("neither side"));
        assert!(verdict(None, None).starts_with("unknown"));
    }

    #[test]
    fn groups_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(19_000), "19,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }
}
