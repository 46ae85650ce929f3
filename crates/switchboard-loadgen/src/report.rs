//! The final table of a run, with the bottleneck check.

use std::time::Duration;

use hdrhistogram::Histogram;

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
    pub(crate) client_cpu: Option<f64>,
    pub(crate) server_cpu: Option<f64>,
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
        if let Some(h) = &self.latency_us {
            println!(
                "latency us    p50 {}  p99 {}  p999 {}  max {}",
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
                h.max()
            );
        }
        let share = |cpu: Option<f64>| cpu.map(|c| c / secs * 100.0);
        if let Some(c) = share(self.client_cpu) {
            println!("loadgen CPU   {c:.0} % of one core");
        }
        if let Some(s) = share(self.server_cpu) {
            println!("server CPU    {s:.0} % of one core");
        }
        match (share(self.client_cpu), share(self.server_cpu)) {
            (Some(c), Some(s)) if c >= 90.0 && c > s => {
                println!("verdict       LOAD-GENERATOR BOUND: this is not a server figure")
            }
            (Some(c), _) if c >= 90.0 => println!("verdict       the load generator was busy too ({c:.0} %); read with care"),
            (_, Some(_)) => println!("verdict       server bound"),
            _ => println!("verdict       unknown (pass --server-pid to compare CPU use)"),
        }
    }
}
