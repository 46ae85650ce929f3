//! Chat: R rooms of U users on the chat room kind (docs/chat.md), each user
//! one connection that, once welcomed, sends chat messages at `--rate` per
//! second on a steady interval. It measures what a chat server does with
//! them: messages acknowledged per second, the latency from a message's
//! send to its `ack` (matched by the `ref` the message carried), deliveries
//! of other users' messages per second, and every `error` by its code.
//!
//! Users join `--concurrency` at a time (handshake and `welcome`), room by
//! room in turn; each starts sending as soon as it is welcomed, at an offset
//! within one interval of its own so the users do not send in step. The
//! measurement window opens once every user has joined and sent at least
//! once, so joining never counts. It closes after `--seconds` whatever
//! happens: a server that stops answering still gets its table, with the
//! messages left unanswered.
//!
//! Server messages are parsed as JSON at the edge. `welcome`, `history`,
//! `state` and `admin` are read and dropped; a message that is not JSON, a
//! binary frame or an unknown `type` counts as the error `unparseable`, and
//! an `ack` or `error` whose `ref` this user has no message waiting for as
//! `unknown_ref` (both labels are the load generator's, not server codes).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use switchboard_client::{Client, ClientOptions, Event, Message};
use tokio::time::MissedTickBehavior;

use crate::idle::room_url;
use crate::joining::{join_all, JoinArgs};
use crate::report::{grouped, latency_row, print_cpu};
use crate::target::Sources;
use crate::{cpu, fd_limit, Target};

/// Extra wait after every user has sent once, before the window opens, so
/// the first messages of the last users to join are answered outside it.
const WARM_UP: Duration = Duration::from_millis(500);
/// A message left unanswered longer than this at the end fails the run: the
/// server stopped answering, or fell that far behind the offered rate.
const STALL_LIMIT: Duration = Duration::from_secs(2);

/// Options of the chat scenario.
#[derive(Args, Clone)]
pub(crate) struct Options {
    #[command(flatten)]
    pub(crate) target: Target,
    /// Rooms; the URL is their common prefix: room i is `{url}-{i}`.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    rooms: u32,
    /// Users per room. Above the server's users per room (switchboard's
    /// --chat-max-users, 100 by default) the joins are refused.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    users: u32,
    /// Messages per second per user. 5 is switchboard's default limit
    /// (--chat-rate), so at that rate no message should be refused.
    #[arg(long, default_value_t = 5.0, value_parser = parse_rate)]
    rate: f64,
    /// Measurement time in seconds, after every user has joined; at most 240.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=240))]
    seconds: u64,
    #[command(flatten)]
    joins: JoinArgs,
}

/// `--rate`: 0.1 to 1,000 messages per second. The lower bound keeps the
/// send interval, and so the warm-up, within 10 s.
fn parse_rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.1..=1000.0).contains(&rate) {
        Ok(rate)
    } else {
        Err("the rate must be between 0.1 and 1000 messages per second".into())
    }
}

/// The one thing a user sends.
#[derive(Serialize)]
#[serde(tag = "type", rename = "message")]
struct Say<'a> {
    text: &'a str,
    r#ref: &'a str,
}

/// The top-level fields of a server message that this scenario reads; the
/// rest (names, texts, user lists, nested history) is skipped unread.
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: Kind,
    #[serde(default)]
    r#ref: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

/// Every `type` the chat sends; anything else fails the parse.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Welcome,
    History,
    State,
    Admin,
    Message,
    Ack,
    Error,
}

/// What the joining tasks, the users and the run share (one thread: cells,
/// no locks).
struct Shared {
    /// Users stop sending when this turns false.
    running: Cell<bool>,
    sent: Cell<u64>,
    acked: Cell<u64>,
    /// `message`s received: other users' messages delivered to this one.
    received: Cell<u64>,
    /// Errors by code, over the whole run.
    errors: RefCell<BTreeMap<String, u64>>,
    /// The first message counted as `unparseable`, shortened.
    first_unparseable: RefCell<Option<String>>,
    /// Send time of each user's messages not yet answered, by sequence
    /// number, oldest first (the room answers in order).
    waiting: Box<[RefCell<Waiting>]>,
    /// Send-to-ack time, microseconds.
    latency_us: RefCell<Histogram<u64>>,
    /// Users whose connection ended during the run, and why the first did.
    lost: Cell<usize>,
    first_loss: RefCell<Option<String>>,
}

/// Sequence numbers and send times of one user's unanswered messages.
type Waiting = VecDeque<(u64, Instant)>;

/// The counters the window is measured by, at one moment.
#[derive(Clone, Copy)]
struct Counts {
    sent: u64,
    acked: u64,
    received: u64,
    errors: u64,
}

impl Shared {
    fn new(users: usize) -> Shared {
        Shared {
            running: Cell::new(true),
            sent: Cell::new(0),
            acked: Cell::new(0),
            received: Cell::new(0),
            errors: RefCell::new(BTreeMap::new()),
            first_unparseable: RefCell::new(None),
            waiting: (0..users).map(|_| RefCell::new(VecDeque::new())).collect(),
            latency_us: RefCell::new(Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")),
            lost: Cell::new(0),
            first_loss: RefCell::new(None),
        }
    }

    fn counts(&self) -> Counts {
        Counts { sent: self.sent.get(), acked: self.acked.get(), received: self.received.get(), errors: self.errors.borrow().values().sum() }
    }

    fn count_error(&self, code: &str) {
        *self.errors.borrow_mut().entry(code.to_owned()).or_default() += 1;
    }

    /// Handles one message from the server to `user`, received at `now`.
    fn handle_reply(&self, user: usize, message: &Message, now: Instant) {
        let envelope = match message {
            Message::Text(payload) => serde_json::from_slice::<Envelope>(payload).ok(),
            Message::Binary(_) => None,
        };
        let Some(envelope) = envelope else {
            self.count_error("unparseable");
            self.first_unparseable
                .borrow_mut()
                .get_or_insert_with(|| String::from_utf8_lossy(&message.payload()[..message.payload().len().min(120)]).into_owned());
            return;
        };
        match envelope.kind {
            Kind::Welcome | Kind::History | Kind::State | Kind::Admin => {}
            Kind::Message => self.received.set(self.received.get() + 1),
            Kind::Ack => match self.answer(user, envelope.r#ref.as_deref()) {
                Some(sent) => {
                    self.acked.set(self.acked.get() + 1);
                    self.latency_us.borrow_mut().saturating_record((now.saturating_duration_since(sent).as_micros() as u64).max(1));
                }
                None => self.count_error("unknown_ref"),
            },
            Kind::Error => {
                self.count_error(envelope.code.as_deref().unwrap_or("no_code"));
                // A refusal answers its message too; one without a ref
                // (room_full) answers none.
                if envelope.r#ref.is_some() && self.answer(user, envelope.r#ref.as_deref()).is_none() {
                    self.count_error("unknown_ref");
                }
            }
        }
    }

    /// Takes the message that `reference` answers off `user`'s waiting list
    /// and returns its send time; `None` if the user has no such message
    /// waiting.
    fn answer(&self, user: usize, reference: Option<&str>) -> Option<Instant> {
        let (owner, seq) = reference?.split_once('.')?;
        if owner.parse::<usize>().ok()? != user {
            return None;
        }
        let seq: u64 = seq.parse().ok()?;
        let mut waiting = self.waiting[user].borrow_mut();
        let at = waiting.iter().position(|&(s, _)| s == seq)?;
        waiting.remove(at).map(|(_, sent)| sent)
    }
}

/// What one chat run measured.
pub(crate) struct ChatReport {
    rooms: u32,
    users: u32,
    rate: f64,
    sources: String,
    joined_in: Duration,
    elapsed: Duration,
    window: Counts,
    latency_us: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    first_unparseable: Option<String>,
    /// Messages with no answer when the run ended, and how long the oldest
    /// had waited.
    unanswered: (usize, Duration),
    lost: usize,
    first_loss: Option<String>,
    client_cpu: Option<cpu::CpuTime>,
    server_cpu: Option<cpu::CpuTime>,
}

pub(crate) async fn run(options: &Options) -> Result<ChatReport, String> {
    let total = options.rooms as usize * options.users as usize;
    let sources = Rc::new(Sources::for_url(&options.target.url, options.joins.source_addrs)?);
    fd_limit::check(total)?;
    let urls: Rc<[String]> = (0..options.rooms).map(|room| room_url(&options.target.url, room)).collect();
    let period = Duration::from_secs_f64(1.0 / options.rate);
    let shared = Rc::new(Shared::new(total));

    // Each user starts sending once welcomed, at an offset spread evenly
    // over one interval.
    let users = shared.clone();
    let start_user = move |i: usize, client: Client| {
        let first_send = Instant::now() + period.mul_f64(i as f64 / total as f64);
        tokio::task::spawn_local(chat(client, i, users.clone(), period, first_send));
    };
    let joining = {
        // The browser's offer with `--deflate`, on top of the joiner's options.
        let deflate = options.target.client_options().deflate;
        let join = move |url: String, options| async move { join(&url, ClientOptions { deflate, ..options }).await };
        join_all(total, options.joins.concurrency as usize, urls, sources.clone(), "user", join, start_user)
    };
    let joined_in = match joining.await {
        Ok(took) => took,
        Err(e) => {
            shared.running.set(false);
            return Err(e);
        }
    };

    // Every user's first message goes out within one interval of its welcome.
    tokio::time::sleep(period + WARM_UP).await;
    let pid = options.target.server_pid;
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
            "loadgen: t={:>3.0}s  {} acked/s, {} received/s, {} errors, {} users lost",
            window_start.elapsed().as_secs_f64(),
            grouped(now.acked - last.acked),
            grouped(now.received - last.received),
            grouped(now.errors - before.errors),
            shared.lost.get()
        );
        last = now;
    }
    let elapsed = window_start.elapsed();
    let after = shared.counts();
    let delta = |before: Option<cpu::CpuTime>, pid| Some(cpu::seconds(pid)? - before?);
    let (client_cpu, server_cpu) = (delta(client_cpu0, None), delta(server_cpu0, pid));
    shared.running.set(false);
    let latency_us = shared.latency_us.borrow().clone();
    let end = Instant::now();
    let unanswered = shared.waiting.iter().fold((0, Duration::ZERO), |(count, oldest), waiting| {
        let waiting = waiting.borrow();
        let age = waiting.front().map_or(Duration::ZERO, |&(_, sent)| end.saturating_duration_since(sent));
        (count + waiting.len(), oldest.max(age))
    });
    let window = Counts {
        sent: after.sent - before.sent,
        acked: after.acked - before.acked,
        received: after.received - before.received,
        errors: after.errors - before.errors,
    };
    let errors = shared.errors.borrow().clone();
    let (first_unparseable, first_loss) = (shared.first_unparseable.take(), shared.first_loss.take());
    Ok(ChatReport {
        rooms: options.rooms,
        users: options.users,
        rate: options.rate,
        sources: sources.describe(),
        joined_in,
        elapsed,
        window,
        latency_us,
        errors,
        first_unparseable,
        unanswered,
        lost: shared.lost.get(),
        first_loss,
        client_cpu,
        server_cpu,
    })
}

/// Connects and waits for the `welcome`, which the chat sends first; a
/// refusal (`room_full`) comes as an `error` instead.
async fn join(url: &str, options: ClientOptions) -> Result<Client, String> {
    let mut client = Client::connect_with(url, options).await.map_err(|e| format!("connect: {e}"))?;
    let first = client.recv_message().await.map_err(|e| format!("waiting for the welcome: {e}"))?;
    let envelope = match &first {
        Message::Text(payload) => serde_json::from_slice::<Envelope>(payload).ok(),
        Message::Binary(_) => None,
    };
    match envelope {
        Some(Envelope { kind: Kind::Welcome, .. }) => Ok(client),
        Some(Envelope { kind: Kind::Error, code, .. }) => Err(format!("refused with {}", code.as_deref().unwrap_or("an error without a code"))),
        _ => Err(format!("the first message was not a welcome: {:?}", String::from_utf8_lossy(&first.payload()[..first.payload().len().min(120)]))),
    }
}

/// One user: a message every `period` from `first_send` on while the run
/// lasts, and every server message handled as it arrives.
async fn chat(mut client: Client, user: usize, shared: Rc<Shared>, period: Duration, first_send: Instant) {
    let mut ticks = tokio::time::interval_at(first_send.into(), period);
    // A late tick is sent at once and the next one keeps the schedule; the
    // default (Burst) would send the missed ones back to back to catch up,
    // more than a server's rate limit lets through.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut seq = 0u64;
    let why = loop {
        // `recv` may be dropped when the tick comes first: it loses nothing
        // while it waits for the socket to become readable (tokio's
        // `read_buf` is cancel safe), and before returning an event it
        // writes only a pong or a close reply, which complete at once into
        // a socket buffer this light traffic never fills.
        tokio::select! {
            event = client.recv() => match event {
                Ok(Some(Event::Message(message))) => shared.handle_reply(user, &message, Instant::now()),
                Ok(Some(Event::Close(frame))) => {
                    let code = frame.code.map_or_else(|| "no code".to_owned(), |c| c.as_u16().to_string());
                    break format!("closed by the server with {code} {:?}", frame.reason);
                }
                Ok(Some(_)) => {}
                Ok(None) => break "the server ended the TCP connection".to_owned(),
                Err(e) => break e.to_string(),
            },
            _ = ticks.tick() => {
                if !shared.running.get() {
                    return;
                }
                let reference = format!("{user}.{seq}");
                let text = format!("load message {seq}");
                let json = serde_json::to_string(&Say { text: &text, r#ref: &reference }).expect("a struct of two strings serialises");
                shared.waiting[user].borrow_mut().push_back((seq, Instant::now()));
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
        shared.first_loss.borrow_mut().get_or_insert(why);
    }
}

impl ChatReport {
    pub(crate) fn print(&self) {
        let secs = self.elapsed.as_secs_f64();
        let per_second = |n: u64| grouped((n as f64 / secs).round() as u64);
        let total = u64::from(self.rooms) * u64::from(self.users);
        println!("scenario      chat");
        println!("users         {} in {} rooms of {}, from {}", grouped(total), self.rooms, self.users, self.sources);
        println!("rate          {} messages/s per user ({} offered in all)", self.rate, grouped((total as f64 * self.rate).round() as u64));
        println!("join time     {:.2} s (before the window)", self.joined_in.as_secs_f64());
        println!("duration      {secs:.2} s");
        println!("sent/s        {}", per_second(self.window.sent));
        println!("acked/s       {}", per_second(self.window.acked));
        println!("received/s    {} (other users' messages delivered)", per_second(self.window.received));
        if !self.latency_us.is_empty() {
            println!("latency us    {} (send to ack)", latency_row(&self.latency_us));
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
        let (count, oldest) = self.unanswered;
        println!("unanswered    {} at the end (oldest sent {} ms before)", grouped(count as u64), grouped(oldest.as_millis() as u64));
        if self.lost > 0 {
            println!("lost          {} users' connections ended early (first: {})", grouped(self.lost as u64), self.first_loss.as_deref().unwrap_or("?"));
        }
        print_cpu(secs, self.client_cpu, self.server_cpu, (self.window.acked, "acked message"));
    }

    /// Err when the table above does not describe a healthy chat: errors,
    /// lost users, nothing acknowledged, or messages left unanswered for
    /// longer than STALL_LIMIT.
    pub(crate) fn outcome(&self) -> Result<(), String> {
        let errors: u64 = self.errors.values().sum();
        if errors > 0 {
            return Err(format!("{errors} errors"));
        }
        if self.lost > 0 {
            return Err(format!("{} users' connections ended before the run did", self.lost));
        }
        if self.window.acked == 0 {
            return Err("no message was acknowledged in the window".into());
        }
        if self.unanswered.1 > STALL_LIMIT {
            return Err(format!(
                "the server left messages unanswered for more than {} s (it stopped answering, or fell that far behind)",
                STALL_LIMIT.as_secs()
            ));
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
    fn the_message_a_user_sends() {
        let json = serde_json::to_string(&Say { text: "load message 3", r#ref: "7.3" }).unwrap();
        assert_eq!(json, r#"{"type":"message","text":"load message 3","ref":"7.3"}"#);
    }

    #[test]
    fn acks_and_errors_answer_the_message_with_their_ref() {
        let s = Shared::new(2);
        let sent = Instant::now();
        s.waiting[1].borrow_mut().extend([(0, sent), (1, sent), (2, sent)]);
        let later = sent + Duration::from_millis(3);
        s.handle_reply(1, &Message::text(r#"{"type":"ack","ref":"1.1","id":"m9","time":1763800000000}"#), later);
        s.handle_reply(1, &Message::text(r#"{"type":"error","code":"rate_limited","message":"slow down","ref":"1.0"}"#), later);
        let latency = s.latency_us.borrow();
        assert_eq!((s.acked.get(), latency.len()), (1, 1));
        assert!(latency.equivalent(latency.max(), 3000), "{} us recorded for 3 ms", latency.max());
        drop(latency);
        assert_eq!(s.waiting[1].borrow().iter().map(|&(seq, _)| seq).collect::<Vec<_>>(), [2]);
        assert_eq!(errors(&s), [("rate_limited".to_owned(), 1)]);
        // Answered already, another user's, not ours at all, or none.
        for reply in [
            r#"{"type":"ack","ref":"1.1","id":"m10","time":0}"#,
            r#"{"type":"ack","ref":"0.2","id":"m11","time":0}"#,
            r#"{"type":"ack","ref":"r7","id":"m12","time":0}"#,
            r#"{"type":"ack","ref":null,"id":"m13","time":0}"#,
        ] {
            s.handle_reply(1, &Message::text(reply), later);
        }
        assert_eq!(errors(&s), [("rate_limited".to_owned(), 1), ("unknown_ref".to_owned(), 4)]);
        assert_eq!((s.acked.get(), s.waiting[1].borrow().len()), (1, 1));
    }

    #[test]
    fn counts_deliveries_skips_room_news_and_flags_what_it_cannot_read() {
        let s = Shared::new(1);
        let now = Instant::now();
        for known in [
            r#"{"type":"welcome","id":"c1","name":"Brave Otter","country":null,"room":"b-0","limits":{"maxLength":500,"perSecond":5,"burst":10,"maxUsers":100,"history":50}}"#,
            r#"{"type":"history","messages":[{"type":"message","id":"m1","from":{"id":"c3","name":"Calm Heron","country":null},"text":"hi","time":1}]}"#,
            r#"{"type":"state","count":1,"users":[{"id":"c1","name":"Brave Otter","country":"NZ"}]}"#,
            r#"{"type":"admin","event":"joined","user":{"id":"c1","name":"Brave Otter","country":null},"text":"Brave Otter joined","time":1}"#,
            r#"{"type":"message","id":"m42","from":{"id":"c12","name":"Brave Otter","country":"NZ"},"text":"hello","time":1763800000000}"#,
        ] {
            s.handle_reply(0, &Message::text(known), now);
        }
        assert_eq!(s.received.get(), 1);
        assert!(errors(&s).is_empty());
        for unknown in [r#"{"type":"typing","id":"c3"}"#, "not json", r#"{"id":"m1"}"#] {
            s.handle_reply(0, &Message::text(unknown), now);
        }
        s.handle_reply(0, &Message::binary(&b"\x00\x01"[..]), now);
        assert_eq!(errors(&s), [("unparseable".to_owned(), 4)]);
        assert_eq!(s.first_unparseable.borrow().as_deref(), Some(r#"{"type":"typing","id":"c3"}"#));
    }

    #[test]
    fn rates_outside_the_bounds_are_refused() {
        assert_eq!(parse_rate("5"), Ok(5.0));
        assert_eq!(parse_rate("0.5"), Ok(0.5));
        assert!(parse_rate("0").is_err() && parse_rate("0.01").is_err() && parse_rate("5000").is_err() && parse_rate("fast").is_err());
    }
}
