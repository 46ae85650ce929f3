//! Echo: N connections, each keeping W messages in flight. Every reply read
//! in one go is answered in one write, so the generator's cost per message
//! stays low.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchboard_client::{Client, Event, Message};

use crate::report::Report;
use crate::{cpu, Common};

pub(crate) async fn run(common: &Common, connections: usize) -> Result<Report, String> {
    let body = if common.json {
        crate::payload::json("", common.size)
    } else if common.binary {
        vec![0x5a; common.size]
    } else {
        vec![b'x'; common.size]
    };
    let message = if common.binary { Message::Binary(Bytes::from(body)) } else { Message::Text(Bytes::from(body)) };
    let mut clients = Vec::with_capacity(connections);
    for _ in 0..connections {
        clients.push(Client::connect_with(&common.target.url, common.target.client_options()).await.map_err(|e| format!("connect: {e}"))?);
    }
    eprintln!("loadgen: {connections} connections open");
    let counted = Rc::new(Cell::new(0u64));
    let running = Rc::new(Cell::new(true));
    let failures = Rc::new(Cell::new(0u32));
    for mut client in clients {
        let (message, counted, running, failures) = (message.clone(), counted.clone(), running.clone(), failures.clone());
        let in_flight = common.in_flight.max(1);
        tokio::task::spawn_local(async move {
            if let Err(e) = pump(&mut client, &message, in_flight, &counted, &running).await {
                if running.get() {
                    eprintln!("loadgen: connection failed: {e}");
                    failures.set(failures.get() + 1);
                }
            }
        });
    }
    measure(common, connections, "echo", counted, running, failures, Probes::default()).await
}

async fn pump(client: &mut Client, message: &Message, in_flight: usize, counted: &Cell<u64>, running: &Cell<bool>) -> Result<(), String> {
    for _ in 0..in_flight {
        client.queue(message).map_err(|e| e.to_string())?;
    }
    client.flush().await.map_err(|e| e.to_string())?;
    while running.get() {
        let mut event = client.recv().await.map_err(|e| e.to_string())?;
        while let Some(e) = event {
            if let Event::Message(_) = e {
                counted.set(counted.get() + 1);
                client.queue(message).map_err(|e| e.to_string())?;
            }
            event = client.try_recv().map_err(|e| e.to_string())?;
        }
        client.flush().await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// What a scenario records beside its message count: receipt latency,
/// and the bytes its receivers read off the wire.
#[derive(Default)]
pub(crate) struct Probes {
    pub(crate) latency: Option<Rc<std::cell::RefCell<hdrhistogram::Histogram<u64>>>>,
    pub(crate) wire: Option<Rc<Cell<u64>>>,
}

/// Waits out the measurement, printing progress each second, and builds the
/// report. Counting starts after a short warm-up.
pub(crate) async fn measure(
    common: &Common,
    connections: usize,
    scenario: &'static str,
    counted: Rc<Cell<u64>>,
    running: Rc<Cell<bool>>,
    failures: Rc<Cell<u32>>,
    probes: Probes,
) -> Result<Report, String> {
    let Probes { latency, wire } = probes;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start = Instant::now();
    let start_count = counted.get();
    let start_wire = wire.as_ref().map(|w| w.get());
    if let Some(h) = &latency {
        h.borrow_mut().reset();
    }
    let (client_cpu0, server_cpu0) = (cpu::seconds(None), common.target.server_pid.and_then(|p| cpu::seconds(Some(p))));
    let mut last = start_count;
    while start.elapsed() < common.duration() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = counted.get();
        eprintln!("loadgen: t={:>3.0}s  {:>10.0} msg/s", start.elapsed().as_secs_f64(), (now - last) as f64);
        last = now;
        if failures.get() > 0 {
            running.set(false);
            return Err(format!("{} connections failed during the run", failures.get()));
        }
    }
    let elapsed = start.elapsed();
    let messages = counted.get() - start_count;
    let wire_bytes = wire.zip(start_wire).map(|(w, start)| w.get() - start);
    running.set(false);
    let delta = |before: Option<cpu::CpuTime>, pid| Some(cpu::seconds(pid)? - before?);
    Ok(Report {
        scenario,
        connections,
        in_flight: common.in_flight,
        size: common.size,
        elapsed,
        messages,
        latency_us: latency.map(|h| h.borrow().clone()),
        wire_bytes,
        client_cpu: delta(client_cpu0, None),
        server_cpu: delta(server_cpu0, common.target.server_pid),
    })
}
