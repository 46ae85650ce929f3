//! Joining the members of many rooms for a scenario (chat users, call
//! peers): at most `concurrency` handshakes at a time, member i in room
//! `i mod R` from the i-th source address, with a progress line a second,
//! a time limit, and the first failure ending the joining.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Args;
use switchboard_client::ClientOptions;
use tokio::sync::Notify;

use crate::report::grouped;
use crate::target::Sources;

/// How a scenario's members join: the options the chat, call and clicks
/// scenarios share.
#[derive(Args, Clone)]
pub(crate) struct JoinArgs {
    /// Joins (the handshake and the room's first message) under way at
    /// once, as in the idle scenario.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub(crate) concurrency: u32,
    /// Connect from 127.0.0.1 … 127.0.0.N in turn (IPv4 loopback targets
    /// only), as in the idle scenario.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u8).range(1..))]
    pub(crate) source_addrs: u8,
}

/// Longest the members of a scenario may take to join; with the warm-up and
/// at most 240 s of measurement a run stays within 300 s like the others.
pub(crate) const JOIN_LIMIT: Duration = Duration::from_secs(45);

/// What the joining tasks share (one thread: cells, no locks).
#[derive(Default)]
struct Joining {
    /// Index of the next member to join.
    next: Cell<usize>,
    joined: Cell<usize>,
    /// Joining tasks still running.
    joiners: Cell<usize>,
    /// The first failed join; it stops the joining.
    error: RefCell<Option<String>>,
    /// Wakes the waiting run when the joining ends.
    done: Notify,
}

/// Joins `total` members (`noun`, e.g. "user"), `concurrency` at a time:
/// member i joins `urls[i % urls.len()]` with `join(url, options)` and is
/// handed to `joined(i, member)`. Returns how long the joining took, or the
/// first failure (with how many had joined), or the time limit passing.
pub(crate) async fn join_all<T, F, Fut>(
    total: usize,
    concurrency: usize,
    urls: Rc<[String]>,
    sources: Rc<Sources>,
    noun: &'static str,
    join: F,
    joined: impl Fn(usize, T) + 'static,
) -> Result<Duration, String>
where
    T: 'static,
    F: Fn(String, ClientOptions) -> Fut + 'static,
    Fut: Future<Output = Result<T, String>> + 'static,
{
    let state = Rc::new(Joining::default());
    let (join, joined) = (Rc::new(join), Rc::new(joined));
    let joiners = concurrency.clamp(1, total.max(1));
    state.joiners.set(joiners);
    let start = Instant::now();
    for _ in 0..joiners {
        tokio::task::spawn_local(join_some(state.clone(), urls.clone(), sources.clone(), total, noun, join.clone(), joined.clone()));
    }
    loop {
        let woken = tokio::time::timeout(Duration::from_secs(1), state.done.notified()).await.is_ok();
        if let Some(error) = state.error.borrow().as_ref() {
            return Err(format!("{error} ({} of {total} {noun}s had joined)", state.joined.get()));
        }
        if state.joiners.get() == 0 {
            break;
        }
        if !woken {
            eprintln!("loadgen: {} / {} {noun}s joined", grouped(state.joined.get() as u64), grouped(total as u64));
        }
        if start.elapsed() >= JOIN_LIMIT {
            return Err(format!("only {} of {total} {noun}s joined within {} s", state.joined.get(), JOIN_LIMIT.as_secs()));
        }
    }
    let took = start.elapsed();
    eprintln!("loadgen: {} {noun}s joined in {:.2} s", grouped(total as u64), took.as_secs_f64());
    Ok(took)
}

/// One of the joining tasks: joins members until all have joined or one
/// join fails.
async fn join_some<T, F, Fut>(
    state: Rc<Joining>,
    urls: Rc<[String]>,
    sources: Rc<Sources>,
    total: usize,
    noun: &'static str,
    join: Rc<F>,
    joined: Rc<impl Fn(usize, T)>,
) where
    F: Fn(String, ClientOptions) -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    loop {
        let i = state.next.get();
        if i >= total || state.error.borrow().is_some() {
            break;
        }
        state.next.set(i + 1);
        let url = urls[i % urls.len()].clone();
        let options = ClientOptions { local_addr: sources.nth(i), ..crate::tls::client_options() };
        match join(url.clone(), options).await {
            Ok(member) => {
                state.joined.set(state.joined.get() + 1);
                joined(i, member);
            }
            Err(e) => {
                state.error.borrow_mut().get_or_insert_with(|| format!("{noun} {i} joining {url}: {e}"));
                state.done.notify_one();
                break;
            }
        }
    }
    state.joiners.set(state.joiners.get() - 1);
    if state.joiners.get() == 0 {
        state.done.notify_one();
    }
}
