//! Call: R rooms of P peers on the call room kind (docs/call.md), each peer
//! one connection. Once every peer of every room has joined, each sends
//! `signal`s to the next peer of its room (a ring) at `--rate` per second,
//! each one's `data` shaped like an ICE candidate and carrying a sequence
//! number and its send time. It measures what a signaling server does with
//! them: signals relayed per second, the latency from a signal's send to
//! the receipt of the relayed `signal` (one process, one clock), every
//! `error` by its code, the signals never relayed, and with `--server-pid`
//! the server's CPU per relayed signal and its resident memory per call
//! room (growth over the joins and the run, divided by the rooms).
//!
//! Peers join `--concurrency` at a time (handshake and `joined`); peer i
//! joins room `i mod R`, whose ring follows the join order. Sending starts
//! only when all have joined (a peer's target must be there), each peer at
//! an offset within one interval of its own; the measurement window opens
//! one interval and a warm-up later. It closes after `--seconds` whatever
//! happens; the peers then stop sending and the run waits at most
//! DRAIN_LIMIT for the signals still on their way.
//!
//! `joined`, `peer-joined`, `peer-left` and `peer-state` are read and
//! dropped. A message that is not JSON, a binary frame or an unknown `type`
//! counts as the error `unparseable`; a signal from another peer than the
//! previous one of the ring as `wrong_sender`, and one whose sequence
//! number is not above the last one received as `out_of_order` (labels of
//! the load generator, not server codes).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use serde::Deserialize;
use switchboard_client::{Client, ClientOptions, Event, Message};
use tokio::time::MissedTickBehavior;

use crate::idle::room_url;
use crate::joining::{join_all, JoinArgs};
use crate::proc_stats::anon_kib;
use crate::report::{grouped, latency_row, mib, print_cpu};
use crate::target::Sources;
use crate::{cpu, fd_limit, Target};

/// Extra wait after every peer has sent once, before the window opens.
const WARM_UP: Duration = Duration::from_millis(500);
/// Longest wait, once the peers stop sending, for the signals still on
/// their way; any not relayed by then count as lost and fail the run.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);
/// What makes a signal's `data` look like an ICE candidate, about 200 bytes
/// after the sequence number and send time.
const CANDIDATE: &str = r#""candidate":"candidate:842163049 1 udp 1677729535 198.51.100.23 54321 typ srflx raddr 10.0.0.5 rport 54321 generation 0 ufrag EsAw network-id 1 network-cost 10","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"EsAw""#;

/// Options of the call scenario.
#[derive(Args, Clone)]
pub(crate) struct Options {
    #[command(flatten)]
    pub(crate) target: Target,
    /// Rooms; the URL is their common prefix: room i is `{url}-{i}`.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    rooms: u32,
    /// Peers per room, at least 2 (a ring of one has no one to signal).
    /// Above the server's peers per call (switchboard's --call-max-peers, 6
    /// by default) the joins are refused.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(2..))]
    peers: u32,
    /// Signals per second per peer, 1 to 1,000. Switchboard lets a peer send
    /// 50 a second (bursts of 200), so at the default none is refused.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    rate: u32,
    /// Measurement time in seconds, after every peer has joined; at most 240.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=240))]
    seconds: u64,
    #[command(flatten)]
    joins: JoinArgs,
}

/// The top-level fields of a server message that this scenario reads.
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: Kind,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    data: Option<Stamp>,
    #[serde(default)]
    code: Option<String>,
}

/// Every `type` the call sends; anything else fails the parse.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Kind {
    Joined,
    PeerJoined,
    PeerLeft,
    PeerState,
    Signal,
    Error,
}

/// The part of a signal's `data` this scenario wrote and reads back.
#[derive(Deserialize)]
struct Stamp {
    seq: u64,
    /// Send time, microseconds since [`Shared::epoch`].
    t: u64,
}

/// The `signal` a peer sends to `to`: sequence number `seq`, sent `t`
/// microseconds after the epoch.
fn signal(to: &str, seq: u64, t: u64) -> String {
    format!(r#"{{"type":"signal","to":"{to}","data":{{"seq":{seq},"t":{t},{CANDIDATE}}}}}"#)
}

/// What the joining tasks, the peers and the run share (one thread: cells,
/// no locks).
struct Shared {
    /// The clock the send times in signals are read against.
    epoch: Instant,
    /// Peers stop sending when this turns false.
    running: Cell<bool>,
    /// Each peer's connection and id once it has joined, until the run
    /// hands it to its task.
    clients: RefCell<Vec<Option<(Client, String)>>>,
    sent: Cell<u64>,
    relayed: Cell<u64>,
    /// Errors by code, over the whole run.
    errors: RefCell<BTreeMap<String, u64>>,
    /// The first message counted as `unparseable`, shortened.
    first_unparseable: RefCell<Option<String>>,
    /// Send to receipt of the relayed signal, microseconds.
    latency_us: RefCell<Histogram<u64>>,
    /// Peers whose connection ended during the run, and why the first did.
    lost: Cell<usize>,
    first_loss: RefCell<Option<String>>,
}

/// The counters the window is measured by, at one moment.
#[derive(Clone, Copy)]
struct Counts {
    sent: u64,
    relayed: u64,
    errors: u64,
}

/// What one peer's task knows of the ring: its own index, the id it sends
/// to and the id it should hear from.
struct Link {
    peer: usize,
    to: String,
    from: String,
}

impl Shared {
    fn new(peers: usize) -> Shared {
        Shared {
            epoch: Instant::now(),
            running: Cell::new(true),
            clients: RefCell::new((0..peers).map(|_| None).collect()),
            sent: Cell::new(0),
            relayed: Cell::new(0),
            errors: RefCell::new(BTreeMap::new()),
            first_unparseable: RefCell::new(None),
            latency_us: RefCell::new(Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")),
            lost: Cell::new(0),
            first_loss: RefCell::new(None),
        }
    }

    fn counts(&self) -> Counts {
        Counts { sent: self.sent.get(), relayed: self.relayed.get(), errors: self.errors.borrow().values().sum() }
    }

    fn count_error(&self, code: &str) {
        *self.errors.borrow_mut().entry(code.to_owned()).or_default() += 1;
    }

    fn micros(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_micros() as u64
    }

    /// Handles one message from the server to a peer that expects signals
    /// from `from`, received at `now`; `last` is the sequence number of the
    /// last signal it received (`None` before the first).
    fn handle_reply(&self, from: &str, last: &mut Option<u64>, message: &Message, now: Instant) {
        let envelope = match message {
            Message::Text(payload) => serde_json::from_slice::<Envelope>(payload).ok(),
            Message::Binary(_) => None,
        };
        let Some(envelope) = envelope.filter(|e| !matches!(e.kind, Kind::Signal) || e.data.is_some()) else {
            self.count_error("unparseable");
            self.first_unparseable
                .borrow_mut()
                .get_or_insert_with(|| String::from_utf8_lossy(&message.payload()[..message.payload().len().min(120)]).into_owned());
            return;
        };
        match envelope.kind {
            Kind::Joined | Kind::PeerJoined | Kind::PeerLeft | Kind::PeerState => {}
            Kind::Signal => {
                let stamp = envelope.data.expect("checked above");
                self.relayed.set(self.relayed.get() + 1);
                if envelope.from.as_deref() != Some(from) {
                    self.count_error("wrong_sender");
                }
                if last.is_some_and(|l| stamp.seq <= l) {
                    self.count_error("out_of_order");
                }
                *last = Some(stamp.seq);
                self.latency_us.borrow_mut().saturating_record(self.micros(now).saturating_sub(stamp.t).max(1));
            }
            Kind::Error => self.count_error(envelope.code.as_deref().unwrap_or("no_code")),
        }
    }
}

/// What one call run measured.
pub(crate) struct CallReport {
    rooms: u32,
    peers: u32,
    rate: u32,
    sources: String,
    joined_in: Duration,
    elapsed: Duration,
    window: Counts,
    latency_us: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    first_unparseable: Option<String>,
    /// Signals sent over the whole run that were never relayed, after the
    /// drain.
    not_relayed: u64,
    lost: usize,
    first_loss: Option<String>,
    /// The server's anonymous RSS (KiB) before the joins, once all had joined, and at
    /// the end of the run with every peer still connected.
    anon_kib: Option<(u64, u64, u64)>,
    client_cpu: Option<cpu::CpuTime>,
    server_cpu: Option<cpu::CpuTime>,
}

pub(crate) async fn run(options: &Options) -> Result<CallReport, String> {
    let total = options.rooms as usize * options.peers as usize;
    let sources = Rc::new(Sources::for_url(&options.target.url, options.joins.source_addrs)?);
    fd_limit::check(total)?;
    let urls: Rc<[String]> = (0..options.rooms).map(|room| room_url(&options.target.url, room)).collect();
    let period = Duration::from_secs_f64(1.0 / f64::from(options.rate));
    let shared = Rc::new(Shared::new(total));
    let pid = options.target.server_pid;
    let anon_before = pid.and_then(anon_kib);

    // A peer needs the next peer's id: every connection is held until all
    // have joined.
    let held = shared.clone();
    let keep = move |i: usize, joined: (Client, String)| held.clients.borrow_mut()[i] = Some(joined);
    let joined_in =
        join_all(total, options.joins.concurrency as usize, urls, sources.clone(), "peer", |url, options| async move { join(&url, options).await }, keep)
            .await?;
    let anon_joined = pid.and_then(anon_kib);

    // Peer i's ring: the peers of its room in join order, i + R after i.
    let clients: Vec<(Client, String)> = shared.clients.take().into_iter().map(|c| c.expect("every peer joined")).collect();
    let rooms = options.rooms as usize;
    let ids: Vec<String> = clients.iter().map(|(_, id)| id.clone()).collect();
    let ring = |i: usize, step: isize| {
        let (room, k, n) = (i % rooms, (i / rooms) as isize, options.peers as isize);
        room + (k + step).rem_euclid(n) as usize * rooms
    };
    let sending = Instant::now();
    for (i, (client, _)) in clients.into_iter().enumerate() {
        let link = Link { peer: i, to: ids[ring(i, 1)].clone(), from: ids[ring(i, -1)].clone() };
        // Offsets spread evenly over one interval.
        let first_send = sending + period.mul_f64(i as f64 / total as f64);
        tokio::task::spawn_local(peer(client, link, shared.clone(), period, first_send));
    }
    tokio::time::sleep(period + WARM_UP).await;

    let window_start = Instant::now();
    let before = shared.counts();
    shared.latency_us.borrow_mut().reset();
    let (client_cpu0, server_cpu0) = (cpu::seconds(None), pid.and_then(|p| cpu::seconds(Some(p))));
    let duration = Duration::from_secs(options.seconds);
    let mut last = before;
    while window_start.elapsed() < duration {
        tokio::time::sleep(Duration::from_secs(1).min(duration.saturating_sub(window_start.elapsed()))).await;
        let now = shared.counts();
        eprintln!(
            "loadgen: t={:>3.0}s  {} relayed/s, {} errors, {} peers lost",
            window_start.elapsed().as_secs_f64(),
            grouped(now.relayed - last.relayed),
            grouped(now.errors - before.errors),
            shared.lost.get()
        );
        last = now;
    }
    let elapsed = window_start.elapsed();
    let after = shared.counts();
    let delta = |before: Option<cpu::CpuTime>, pid| Some(cpu::seconds(pid)? - before?);
    let (client_cpu, server_cpu) = (delta(client_cpu0, None), delta(server_cpu0, pid));
    let latency_us = shared.latency_us.borrow().clone();
    let anon_end = pid.and_then(anon_kib);
    shared.running.set(false);
    // The peers stop at their next tick; what they sent before is relayed
    // within a round trip unless the server fell behind or dropped it. A
    // refused signal is answered by an error instead.
    let drain_start = Instant::now();
    let pending = |c: Counts| c.sent.saturating_sub(c.relayed + c.errors);
    while pending(shared.counts()) > 0 && drain_start.elapsed() < DRAIN_LIMIT {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let end = shared.counts();
    let window = Counts { sent: after.sent - before.sent, relayed: after.relayed - before.relayed, errors: after.errors - before.errors };
    let errors = shared.errors.borrow().clone();
    let (first_unparseable, first_loss) = (shared.first_unparseable.take(), shared.first_loss.take());
    Ok(CallReport {
        rooms: options.rooms,
        peers: options.peers,
        rate: options.rate,
        sources: sources.describe(),
        joined_in,
        elapsed,
        window,
        latency_us,
        errors,
        first_unparseable,
        not_relayed: end.sent.saturating_sub(end.relayed),
        lost: shared.lost.get(),
        first_loss,
        anon_kib: anon_before.zip(anon_joined).zip(anon_end).map(|((a, b), c)| (a, b, c)),
        client_cpu,
        server_cpu,
    })
}

/// Connects and waits for `joined`, which the call sends first, and returns
/// the connection with the peer id it gave; a refusal (`room_full`) comes
/// as an `error` instead.
async fn join(url: &str, options: ClientOptions) -> Result<(Client, String), String> {
    let mut client = Client::connect_with(url, options).await.map_err(|e| format!("connect: {e}"))?;
    let first = client.recv_message().await.map_err(|e| format!("waiting for joined: {e}"))?;
    let envelope = match &first {
        Message::Text(payload) => serde_json::from_slice::<Envelope>(payload).ok(),
        Message::Binary(_) => None,
    };
    match envelope {
        Some(Envelope { kind: Kind::Joined, id: Some(id), .. }) => Ok((client, id)),
        Some(Envelope { kind: Kind::Error, code, .. }) => Err(format!("refused with {}", code.as_deref().unwrap_or("an error without a code"))),
        _ => Err(format!("the first message was not joined: {:?}", String::from_utf8_lossy(&first.payload()[..first.payload().len().min(120)]))),
    }
}

/// One peer: a signal to the next peer of its ring every `period` from
/// `first_send` on while the run lasts, and every server message handled as
/// it arrives, until the connection is dropped when the run ends.
async fn peer(mut client: Client, link: Link, shared: Rc<Shared>, period: Duration, first_send: Instant) {
    let mut ticks = tokio::time::interval_at(first_send.into(), period);
    // As in the chat scenario: a late tick keeps the schedule rather than
    // sending the missed ones back to back into the rate limit.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let (mut seq, mut last) = (0u64, None);
    let why = loop {
        // Cancelling `recv` when the tick comes first loses nothing (see
        // the chat scenario).
        tokio::select! {
            event = client.recv() => match event {
                Ok(Some(Event::Message(message))) => shared.handle_reply(&link.from, &mut last, &message, Instant::now()),
                Ok(Some(Event::Close(frame))) => {
                    let code = frame.code.map_or_else(|| "no code".to_owned(), |c| c.as_u16().to_string());
                    break format!("closed by the server with {code} {:?}", frame.reason);
                }
                Ok(Some(_)) => {}
                Ok(None) => break "the server ended the TCP connection".to_owned(),
                Err(e) => break e.to_string(),
            },
            _ = ticks.tick(), if shared.running.get() => {
                let json = signal(&link.to, seq, shared.micros(Instant::now()));
                seq += 1;
                if let Err(e) = client.send(&Message::text(json)).await {
                    break format!("send: {e}");
                }
                shared.sent.set(shared.sent.get() + 1);
            }
        }
    };
    if shared.running.get() {
        shared.lost.set(shared.lost.get() + 1);
        shared.first_loss.borrow_mut().get_or_insert(format!("peer {}: {why}", link.peer));
    }
}

impl CallReport {
    pub(crate) fn print(&self) {
        let secs = self.elapsed.as_secs_f64();
        let per_second = |n: u64| grouped((n as f64 / secs).round() as u64);
        let total = u64::from(self.rooms) * u64::from(self.peers);
        println!("scenario      call");
        println!("peers         {} in {} rooms of {}, from {}", grouped(total), self.rooms, self.peers, self.sources);
        println!("rate          {} signals/s per peer ({} offered in all)", self.rate, grouped(total * u64::from(self.rate)));
        println!("join time     {:.2} s (before the window)", self.joined_in.as_secs_f64());
        println!("duration      {secs:.2} s");
        println!("sent/s        {}", per_second(self.window.sent));
        println!("relayed/s     {}", per_second(self.window.relayed));
        if !self.latency_us.is_empty() {
            println!("latency us    {} (send to relayed signal)", latency_row(&self.latency_us));
        }
        let errors: u64 = self.errors.values().sum();
        if errors == 0 {
            println!("errors        0");
        } else {
            let by_code: Vec<String> = self.errors.iter().map(|(code, n)| format!("{code} {}", grouped(*n))).collect();
            println!("errors        {} over the whole run, {} in the window ({})", grouped(errors), grouped(self.window.errors), by_code.join(", "));
        }
        if let Some(first) = &self.first_unparseable {
            println!("unparseable   first: {first:?}");
        }
        println!("not relayed   {} of the signals sent (after waiting up to {} s for them)", grouped(self.not_relayed), DRAIN_LIMIT.as_secs());
        if self.lost > 0 {
            println!("lost          {} peers' connections ended early (first: {})", grouped(self.lost as u64), self.first_loss.as_deref().unwrap_or("?"));
        }
        if let Some((before, joined, end)) = self.anon_kib {
            let per_room = |kib: u64| grouped((kib.saturating_sub(before) * 1024).div_ceil(u64::from(self.rooms)));
            println!("server RSS    anonymous: {} before the joins, {} joined, {} at the end", mib(before), mib(joined), mib(end));
            println!("memory/room   {} B per call room joined, {} B at the end (RSS growth / rooms)", per_room(joined), per_room(end));
        }
        print_cpu(secs, self.client_cpu, self.server_cpu, (self.window.relayed, "relayed signal"));
    }

    /// Err when the table above does not describe healthy signaling:
    /// errors, lost peers, nothing relayed, or signals never relayed.
    pub(crate) fn outcome(&self) -> Result<(), String> {
        let errors: u64 = self.errors.values().sum();
        if errors > 0 {
            return Err(format!("{errors} errors"));
        }
        if self.lost > 0 {
            return Err(format!("{} peers' connections ended before the run did", self.lost));
        }
        if self.window.relayed == 0 {
            return Err("no signal was relayed in the window".into());
        }
        if self.not_relayed > 0 {
            return Err(format!("{} signals were never relayed", self.not_relayed));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(shared: &Shared) -> Vec<(String, u64)> {
        shared.errors.borrow().iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    #[test]
    fn the_signal_a_peer_sends_looks_like_a_candidate() {
        let json = signal("ab12", 7, 1234);
        let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!((value["type"].as_str(), value["to"].as_str()), (Some("signal"), Some("ab12")));
        assert_eq!((value["data"]["seq"].as_u64(), value["data"]["t"].as_u64()), (Some(7), Some(1234)));
        assert!(value["data"]["candidate"].as_str().is_some_and(|c| c.starts_with("candidate:")));
        assert!((200..300).contains(&value["data"].to_string().len()), "{json}");
    }

    #[test]
    fn times_relayed_signals_and_checks_their_sender_and_order() {
        let s = Shared::new(2);
        let now = s.epoch + Duration::from_millis(10);
        let mut last = None;
        let relayed = |seq: u64, from: &str| format!(r#"{{"type":"signal","from":"{from}","data":{{"seq":{seq},"t":7000,"candidate":"x"}}}}"#);
        s.handle_reply("p1", &mut last, &Message::text(relayed(0, "p1")), now);
        let latency = s.latency_us.borrow();
        assert!(latency.equivalent(latency.max(), 3000), "{} us recorded for 3 ms", latency.max());
        drop(latency);
        assert!(errors(&s).is_empty());
        s.handle_reply("p1", &mut last, &Message::text(relayed(2, "p1")), now);
        s.handle_reply("p1", &mut last, &Message::text(relayed(1, "p1")), now);
        s.handle_reply("p1", &mut last, &Message::text(relayed(3, "p9")), now);
        s.handle_reply("p1", &mut last, &Message::text(r#"{"type":"error","code":"rate_limited","message":"slow down"}"#), now);
        assert_eq!(s.relayed.get(), 4);
        assert_eq!(errors(&s), [("out_of_order".to_owned(), 1), ("rate_limited".to_owned(), 1), ("wrong_sender".to_owned(), 1)]);
    }

    #[test]
    fn skips_room_news_and_flags_what_it_cannot_read() {
        let s = Shared::new(1);
        let (now, mut last) = (Instant::now(), None);
        for known in [
            r#"{"type":"joined","id":"a1","room":"b-0","peers":[],"ice":{"iceServers":[]},"limits":{"maxPeers":6,"maxSignalBytes":65536,"perSecond":50,"burst":200,"maxNameLength":40}}"#,
            r#"{"type":"peer-joined","peer":{"id":"b2","name":"","muted":false,"cameraOff":false}}"#,
            r#"{"type":"peer-state","peer":{"id":"b2","name":"Ann","muted":true,"cameraOff":false}}"#,
            r#"{"type":"peer-left","id":"b2"}"#,
        ] {
            s.handle_reply("b2", &mut last, &Message::text(known), now);
        }
        assert!(errors(&s).is_empty());
        for unknown in [r#"{"type":"offer"}"#, "not json", r#"{"type":"signal","from":"b2","data":{"sdp":"v=0"}}"#] {
            s.handle_reply("b2", &mut last, &Message::text(unknown), now);
        }
        s.handle_reply("b2", &mut last, &Message::binary(&b"\x00"[..]), now);
        assert_eq!(errors(&s), [("unparseable".to_owned(), 4)]);
        assert_eq!((s.relayed.get(), s.first_unparseable.borrow().as_deref()), (0, Some(r#"{"type":"offer"}"#)));
    }
}
