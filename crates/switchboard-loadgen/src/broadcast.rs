//! Broadcast: S subscribers in one room and one publisher that keeps W
//! broadcasts not yet received by every subscriber. Each payload carries its
//! sequence number and send time, so subscribers record publish-to-receipt
//! latency. Messages the room itself sends (JSON starting with `{`) are
//! ignored.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use hdrhistogram::Histogram;
use switchboard_client::{Client, Event, Message};
use tokio::sync::Notify;

use crate::echo::measure;
use crate::report::Report;
use crate::Common;

/// Sequence number and send time (microseconds since the run began), as 32
/// hex digits, so that text and binary payloads carry them the same way.
const STAMP: usize = 32;

struct Window {
    /// (sequence, receipts so far) of broadcasts not yet received by all.
    pending: VecDeque<(u64, usize)>,
    first_seq: u64,
}

pub(crate) async fn run(common: &Common, subscribers: usize) -> Result<Report, String> {
    let size = common.size.max(STAMP);
    let epoch = Instant::now();
    let window = Rc::new(RefCell::new(Window { pending: VecDeque::new(), first_seq: 0 }));
    let progress = Rc::new(Notify::new());
    let counted = Rc::new(Cell::new(0u64));
    let running = Rc::new(Cell::new(true));
    let failures = Rc::new(Cell::new(0u32));
    let latency = Rc::new(RefCell::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")));

    for i in 0..subscribers {
        let mut client = Client::connect(&common.target.url).await.map_err(|e| format!("subscriber {i}: {e}"))?;
        let (window, progress, counted, running, failures, latency) =
            (window.clone(), progress.clone(), counted.clone(), running.clone(), failures.clone(), latency.clone());
        tokio::task::spawn_local(async move {
            while running.get() {
                let message = match client.recv().await {
                    Ok(Some(Event::Message(m))) => m,
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => {
                        if running.get() {
                            failures.set(failures.get() + 1);
                        }
                        return;
                    }
                };
                let Some((seq, sent_us)) = parse_stamp(message.payload()) else { continue };
                let now_us = epoch.elapsed().as_micros() as u64;
                let _ = latency.borrow_mut().record(now_us.saturating_sub(sent_us).max(1));
                counted.set(counted.get() + 1);
                let mut w = window.borrow_mut();
                let first = w.first_seq;
                if let Some(entry) = seq.checked_sub(first).and_then(|i| w.pending.get_mut(i as usize)) {
                    entry.1 += 1;
                }
                while w.pending.front().is_some_and(|(_, n)| *n >= subscribers) {
                    w.pending.pop_front();
                    w.first_seq += 1;
                    progress.notify_one();
                }
            }
        });
        if (i + 1) % 500 == 0 {
            eprintln!("loadgen: {} / {subscribers} subscribers", i + 1);
        }
    }
    let mut publisher = Client::connect(&common.target.url).await.map_err(|e| format!("publisher: {e}"))?;
    eprintln!("loadgen: {subscribers} subscribers and a publisher open");
    {
        let (window, progress, running, failures) = (window.clone(), progress.clone(), running.clone(), failures.clone());
        let (binary, in_flight) = (common.binary, common.in_flight.max(1));
        tokio::task::spawn_local(async move {
            let mut seq = 0u64;
            while running.get() {
                while window.borrow().pending.len() < in_flight {
                    let stamp = format!("{seq:016x}{:016x}", epoch.elapsed().as_micros() as u64);
                    let mut payload = stamp.into_bytes();
                    payload.resize(size, b'.');
                    let message = if binary { Message::Binary(Bytes::from(payload)) } else { Message::Text(Bytes::from(payload)) };
                    window.borrow_mut().pending.push_back((seq, 0));
                    seq += 1;
                    if publisher.queue(&message).is_err() {
                        failures.set(failures.get() + 1);
                        return;
                    }
                }
                if publisher.flush().await.is_err() {
                    failures.set(failures.get() + 1);
                    return;
                }
                progress.notified().await;
            }
        });
    }
    let mut report = measure(common, subscribers, "broadcast", counted, running, failures, Some(latency)).await?;
    report.size = size;
    Ok(report)
}

fn parse_stamp(payload: &[u8]) -> Option<(u64, u64)> {
    if payload.len() < STAMP || payload[0] == b'{' {
        return None;
    }
    let text = std::str::from_utf8(&payload[..STAMP]).ok()?;
    Some((u64::from_str_radix(&text[..16], 16).ok()?, u64::from_str_radix(&text[16..], 16).ok()?))
}
