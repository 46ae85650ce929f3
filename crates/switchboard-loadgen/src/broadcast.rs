//! Broadcast: S subscribers in one room and one publisher that keeps W
//! broadcasts not yet received by every subscriber. Each payload carries its
//! sequence number and send time, so subscribers record publish-to-receipt
//! latency. Messages the room itself sends (JSON starting with `{`) are
//! ignored. Subscribers connect 64 at a time, within 600 s, from
//! 127.0.0.1 … 127.0.0.16 in turn (loopback targets), as the idle and churn
//! scenarios do: a crowd comes from many addresses, and the server's per-IP
//! handshake limits are for one client, not for a crowd.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use switchboard_client::{Client, ClientOptions, Event, Message};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::echo::{measure, Probes};
use crate::payload;
use crate::report::Report;
use crate::target::Sources;
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
    let wire = Rc::new(Cell::new(0u64));

    let subscribe = |mut client: Client| {
        let (window, progress, counted, running, failures, latency, wire) =
            (window.clone(), progress.clone(), counted.clone(), running.clone(), failures.clone(), latency.clone(), wire.clone());
        tokio::task::spawn_local(async move {
            let mut read = client.bytes_read();
            while running.get() {
                let received = client.recv().await;
                wire.set(wire.get() + client.bytes_read() - read);
                read = client.bytes_read();
                let message = match received {
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
    };
    let joining = Instant::now();
    match tokio::time::timeout(CONNECT_LIMIT, connect_all(&common.target.url, common.target.client_options(), subscribers, subscribe)).await {
        Ok(result) => result?,
        Err(_) => return Err(format!("the {subscribers} subscribers did not all connect within {} s", CONNECT_LIMIT.as_secs())),
    }
    let mut publisher = Client::connect_with(&common.target.url, common.target.client_options()).await.map_err(|e| format!("publisher: {e}"))?;
    // How long the crowd took to join (every subscriber's handshake, then
    // the publisher's), which the report's rates leave out.
    eprintln!("loadgen: {subscribers} subscribers and a publisher open in {:.3} s", joining.elapsed().as_secs_f64());
    {
        let (window, progress, running, failures) = (window.clone(), progress.clone(), running.clone(), failures.clone());
        let (binary, json, in_flight) = (common.binary, common.json, common.in_flight.max(1));
        tokio::task::spawn_local(async move {
            let mut seq = 0u64;
            while running.get() {
                while window.borrow().pending.len() < in_flight {
                    let stamp = format!("{seq:016x}{:016x}", epoch.elapsed().as_micros() as u64);
                    let payload = if json {
                        payload::json(&stamp, size)
                    } else {
                        let mut payload = stamp.into_bytes();
                        payload.resize(size, b'.');
                        payload
                    };
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
    let probes = Probes { latency: Some(latency), wire: Some(wire) };
    let mut report = measure(common, subscribers, "broadcast", counted, running, failures, probes).await?;
    report.size = if common.json { payload::json(&"0".repeat(STAMP), size).len() } else { size };
    Ok(report)
}

/// Subscribers' handshakes under way at once: joins that arrive together
/// reach the room together, as when many clients connect at the same time,
/// and connecting 10,000 does not take 10,000 round trips.
const CONNECTS_IN_FLIGHT: usize = 64;

/// Source addresses the subscribers connect from, in turn.
const SOURCE_ADDRS: u8 = 16;

/// Longest the subscribers may take to connect, so the whole run stays
/// bounded (measuring adds at most 300 s more).
const CONNECT_LIMIT: Duration = Duration::from_secs(600);

/// Opens `total` connections to `url`, `CONNECTS_IN_FLIGHT` at a time, and
/// hands each to `subscribe` once open; stops at the first failure.
async fn connect_all(url: &str, options: ClientOptions, total: usize, subscribe: impl Fn(Client)) -> Result<(), String> {
    let sources = Sources::for_url(url, SOURCE_ADDRS)?;
    let mut opening = JoinSet::new();
    let (mut started, mut opened) = (0, 0);
    while opened < total {
        while started < total && opening.len() < CONNECTS_IN_FLIGHT {
            let (url, i) = (url.to_owned(), started);
            let options = ClientOptions { local_addr: sources.nth(i), ..options.clone() };
            opening.spawn_local(async move { Client::connect_with(&url, options).await.map_err(|e| format!("subscriber {i}: {e}")) });
            started += 1;
        }
        let client = opening.join_next().await.expect("a connect is under way").map_err(|e| format!("a connect task failed: {e}"))??;
        subscribe(client);
        opened += 1;
        if opened % 500 == 0 {
            eprintln!("loadgen: {opened} / {total} subscribers");
        }
    }
    Ok(())
}

/// The sequence number and send time of one of our payloads; `None` for
/// the room's own messages (JSON without our stamp).
fn parse_stamp(payload: &[u8]) -> Option<(u64, u64)> {
    let stamp = match payload.first() {
        Some(b'{') => payload::json_stamp(payload)?,
        _ => payload,
    };
    if stamp.len() < STAMP {
        return None;
    }
    let text = std::str::from_utf8(&stamp[..STAMP]).ok()?;
    Some((u64::from_str_radix(&text[..16], 16).ok()?, u64::from_str_radix(&text[16..], 16).ok()?))
}
