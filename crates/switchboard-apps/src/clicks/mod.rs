//! `clicks`: one room per account (`clicks/{account}`) that counts the
//! clicks on the account's short links and shows them live on the
//! account's dashboards.
//!
//! The server records a visitor's click when it redirects them and hands
//! the room a group of clicks at a time (`POST /clicks`, an internal
//! request; the public HTTP-to-room path does not reach this kind). The
//! room counts them ([`Stats`]), keeps the latest [`RECENT`] clicks, and
//! pushes the group to every dashboard as one message: `{"type":"clicks",
//! "clicks":[...],...}`, or `{"type":"click",...}` for a group of one. Its storage
//! writes of a group are committed in one transaction after the group,
//! whatever its size: a stream of clicks costs a transaction per group,
//! not per click. A dashboard that connects gets `{"type":"snapshot",...}`.
//!
//! Who may connect: only a connection whose identity, verified by the
//! server's edge, names this room's account. The room id comes from the
//! path the browser chose, so it is never enough on its own: without an
//! identity the answer is 401, with another account's it is 403.
//!
//! Storage: `stats` (account totals, JSON), `link/{slug}` (one link's
//! counts, JSON), `rb/{block}` (recent clicks, [`BLOCK`] to a key as a JSON
//! array, 20-digit block number), so that a group of clicks costs a few
//! writes, not one per click. Rooms stored before blocks kept one click
//! per key under `r/{seq}`; they are read, and moved into blocks by the
//! room's next group.

mod stats;
mod wire;

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use switchboard_room::{ConnId, ConnectRequest, Ctx, Decision, Message, Room, RoomFactory, RoomRequest, RoomResponse, RoomStorage};
use tracing::warn;

pub use stats::{LinkStats, Stats, MAX_CITIES_PER_LINK, OTHER_CITIES, SERIES_MINUTES, UNKNOWN_COUNTRY};
pub use wire::{Click, LinkInfo};
use wire::{LinkTotal, ToDashboard};

/// The room kind's name.
pub const KIND: &str = "clicks";

/// Clicks kept for the dashboards' feed.
pub const RECENT: usize = 1000;

/// Most clicks in one `clicks` message: the server's recorder hands a room
/// at most this many at a time, and a longer list is split.
pub const MAX_PER_MESSAGE: usize = 4096;

/// The tag of dashboard connections.
const DASHBOARD: &str = "dashboard";

const STATS_KEY: &str = "stats";
const LINK_PREFIX: &str = "link/";
const BLOCK_PREFIX: &str = "rb/";
/// Where rooms stored before blocks kept their recent clicks, one a key.
const LEGACY_PREFIX: &str = "r/";

/// Recent clicks stored under one key.
pub const BLOCK: u64 = 64;

/// Blocks kept: enough to hold the last [`RECENT`] clicks wherever the
/// newest block ends.
const BLOCKS_KEPT: u64 = (RECENT as u64).div_ceil(BLOCK) + 1;

/// Most links whose counts a room loads (an account's links are bounded
/// well below this by the server).
const MAX_LINKS: usize = 100_000;

/// Where a clicks room learns its account's links (the server's link
/// table, held in memory: asking must not wait on a disk).
pub trait LinkBook: Send + Sync + 'static {
    /// The account's links, oldest first.
    fn links_of(&self, account: &str) -> Vec<LinkInfo>;
}

/// A clicks room.
pub struct Clicks {
    account: String,
    stats: Stats,
    /// Slugs whose counts changed since they were last stored.
    dirty_links: BTreeSet<String>,
    /// The account's counts changed since they were last stored.
    dirty: bool,
    /// The latest clicks, oldest first; the newest is number `next_seq - 1`
    /// of the room's clicks, and click `n` is stored in block `n / BLOCK`.
    recent: VecDeque<Click>,
    next_seq: u64,
    /// Keys of clicks stored one a key before blocks, to delete once
    /// they are in blocks.
    legacy: Vec<String>,
    book: Arc<dyn LinkBook>,
}

/// Builds the rooms of the `clicks` kind.
pub fn factory(book: Arc<dyn LinkBook>) -> Arc<dyn RoomFactory> {
    Arc::new(move |id: &str, storage: &RoomStorage<'_>| Box::new(Clicks::load(id, book.clone(), storage)) as Box<dyn Room>)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn block_key(block: u64) -> String {
    format!("{BLOCK_PREFIX}{block:020}")
}

impl Clicks {
    /// Loads the account's counts and recent clicks from storage.
    pub fn load(account: &str, book: Arc<dyn LinkBook>, storage: &RoomStorage<'_>) -> Clicks {
        let read = |what: &str, result: Result<Vec<(String, Vec<u8>)>, _>| {
            result.unwrap_or_else(|e| {
                warn!(account, error = %e, "cannot read the clicks room's {what}");
                Vec::new()
            })
        };
        let mut stats: Stats = match storage.get(STATS_KEY) {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes).unwrap_or_default(),
            Ok(None) => Stats::default(),
            Err(e) => {
                warn!(account, error = %e, "cannot read the clicks room's totals");
                Stats::default()
            }
        };
        for (key, bytes) in read("links", storage.list(LINK_PREFIX, MAX_LINKS)) {
            if let (Some(slug), Ok(link)) = (key.strip_prefix(LINK_PREFIX), serde_json::from_slice::<LinkStats>(&bytes)) {
                stats.links.insert(slug.to_owned(), link);
            }
        }
        let mut recent = VecDeque::new();
        let mut next_seq = 0;
        for (key, bytes) in read("recent clicks", storage.list(BLOCK_PREFIX, BLOCKS_KEPT as usize + 1)) {
            let (Some(block), Ok(clicks)) = (key.strip_prefix(BLOCK_PREFIX).and_then(|b| b.parse::<u64>().ok()), serde_json::from_slice::<Vec<Click>>(&bytes))
            else {
                continue;
            };
            next_seq = block * BLOCK + clicks.len() as u64;
            recent.extend(clicks);
        }
        let mut legacy = Vec::new();
        if recent.is_empty() {
            for (key, bytes) in read("recent clicks", storage.list(LEGACY_PREFIX, RECENT)) {
                if let Ok(click) = serde_json::from_slice::<Click>(&bytes) {
                    recent.push_back(click);
                }
                legacy.push(key);
            }
            next_seq = recent.len() as u64;
        }
        while recent.len() > RECENT {
            recent.pop_front();
        }
        Clicks { account: account.to_owned(), stats, dirty_links: BTreeSet::new(), dirty: false, recent, next_seq, legacy, book }
    }

    /// Stores the blocks of the clicks from number `from` on, and drops
    /// the blocks that hold none of the last [`RECENT`].
    fn store_recent(&mut self, ctx: &mut Ctx<'_>, from: u64) {
        let mut storage = ctx.storage();
        for key in self.legacy.drain(..) {
            storage.delete(&key);
        }
        // The newest block is whole in memory (RECENT is more than a
        // block); of a group larger than RECENT, only what is still in
        // memory is stored.
        let oldest_in_memory = self.next_seq - self.recent.len() as u64;
        for block in from.max(oldest_in_memory) / BLOCK..self.next_seq.div_ceil(BLOCK) {
            let start = (block * BLOCK).max(oldest_in_memory);
            let end = ((block + 1) * BLOCK).min(self.next_seq);
            let clicks: Vec<&Click> = self.recent.range((start - oldest_in_memory) as usize..(end - oldest_in_memory) as usize).collect();
            storage.put(&block_key(block), &serde_json::to_vec(&clicks).expect("clicks serialize"));
        }
        // Blocks older than those kept go; each is deleted once, when the
        // newest block number passes it.
        let newest = (self.next_seq - 1) / BLOCK;
        for block in (from / BLOCK)..=newest {
            if let Some(old) = block.checked_sub(BLOCKS_KEPT) {
                storage.delete(&block_key(old));
            }
        }
    }

    fn links(&self) -> Vec<LinkInfo> {
        self.book.links_of(&self.account)
    }

    fn link_totals<'a>(&self, links: &'a [LinkInfo]) -> Vec<LinkTotal<'a>> {
        links.iter().map(|link| LinkTotal { link, clicks: self.stats.links.get(&link.slug).map_or(0, |s| s.total) }).collect()
    }

    fn snapshot(&mut self) -> String {
        self.stats.prune(now_ms());
        let links = self.links();
        ToDashboard::Snapshot {
            account: &self.account,
            total: self.stats.total,
            countries: &self.stats.countries,
            series: self.stats.minutes.iter().map(|(m, c)| (*m, *c)).collect(),
            links: self.link_totals(&links),
            recent: self.recent.iter().collect(),
        }
        .to_json()
    }

    fn record(&mut self, ctx: &mut Ctx<'_>, clicks: Vec<Click>) {
        let dashboards = ctx.connection_count() > 0;
        // Clicks stored one a key move into blocks with this group.
        let from = if self.legacy.is_empty() { self.next_seq } else { self.next_seq - self.recent.len() as u64 };
        let mut rest = clicks;
        while !rest.is_empty() {
            let group: Vec<Click> = if rest.len() > MAX_PER_MESSAGE { rest.drain(..MAX_PER_MESSAGE).collect() } else { std::mem::take(&mut rest) };
            for click in &group {
                self.stats.record(click);
                if !self.dirty_links.contains(&click.slug) {
                    self.dirty_links.insert(click.slug.clone());
                }
            }
            if dashboards {
                // One message per group: a broadcast is framed (and, for the
                // dashboards that compress, compressed) once for them all,
                // so a dashboard costs per group, not per click.
                let total = self.stats.total;
                let message = match group.as_slice() {
                    [click] => ToDashboard::Click { click, total },
                    clicks => ToDashboard::Clicks { clicks, total },
                };
                ctx.broadcast(Message::text(message.to_json()), None);
            }
            for click in group {
                self.next_seq += 1;
                if self.recent.len() == RECENT {
                    self.recent.pop_front();
                }
                self.recent.push_back(click);
            }
        }
        if self.next_seq > from {
            self.store_recent(ctx, from);
        }
        self.dirty = true;
    }

    fn announce_links(&self, ctx: &mut Ctx<'_>) {
        let links = self.links();
        let message = ToDashboard::Links { links: self.link_totals(&links) }.to_json();
        ctx.broadcast(Message::text(message), None);
    }
}

/// The per-link answer to `GET /links/{slug}`.
#[derive(Serialize)]
struct LinkReport<'a> {
    total: u64,
    countries: &'a std::collections::BTreeMap<String, u64>,
    cities: &'a std::collections::BTreeMap<String, u64>,
    series: Vec<(u64, u64)>,
}

fn json_error(status: u16, error: &str) -> RoomResponse {
    RoomResponse::json(status, serde_json::json!({ "error": error }).to_string())
}

impl Room for Clicks {
    fn on_connect(&mut self, _ctx: &mut Ctx<'_>, request: &ConnectRequest) -> Decision {
        match &request.identity {
            Some(identity) if identity.subject == self.account => Decision::Accept { tags: vec![DASHBOARD.to_owned()], attachment: None },
            Some(_) => Decision::Reject { status: 403, reason: "this identity may not open another account's dashboard".into() },
            None => Decision::Reject { status: 401, reason: "a dashboard needs a verified identity for its account (docs/clicks.md)".into() },
        }
    }

    fn on_open(&mut self, ctx: &mut Ctx<'_>, conn: ConnId) {
        let snapshot = self.snapshot();
        ctx.send(conn, Message::text(snapshot));
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, conn: ConnId, _message: Message) {
        let error = ToDashboard::Error { error: "dashboards only receive; nothing is accepted from them" }.to_json();
        ctx.send(conn, Message::text(error));
    }

    fn on_request(&mut self, ctx: &mut Ctx<'_>, request: RoomRequest) -> RoomResponse {
        match (request.method.as_str(), request.path.as_str()) {
            ("POST", "/clicks") => match serde_json::from_slice::<Vec<Click>>(&request.body) {
                Ok(clicks) => {
                    let count = clicks.len();
                    self.record(ctx, clicks);
                    RoomResponse::json(200, format!(r#"{{"recorded":{count}}}"#))
                }
                Err(e) => json_error(400, &format!("clicks must be a JSON array of clicks: {e}")),
            },
            ("GET", "/totals") => {
                let totals: std::collections::BTreeMap<&str, u64> = self.stats.links.iter().map(|(slug, s)| (slug.as_str(), s.total)).collect();
                RoomResponse::json(200, serde_json::to_string(&totals).expect("totals serialize"))
            }
            ("POST", "/links-changed") => {
                self.announce_links(ctx);
                RoomResponse::json(200, "{}")
            }
            (method, path) => match (method, path.strip_prefix("/links/")) {
                ("GET", Some(slug)) => {
                    self.stats.prune(now_ms());
                    let empty = LinkStats::default();
                    let link = self.stats.links.get(slug).unwrap_or(&empty);
                    let report = LinkReport {
                        total: link.total,
                        countries: &link.countries,
                        cities: &link.cities,
                        series: link.minutes.iter().map(|(m, c)| (*m, *c)).collect(),
                    };
                    RoomResponse::json(200, serde_json::to_string(&report).expect("reports serialize"))
                }
                ("DELETE", Some(slug)) => {
                    if self.stats.forget_link(slug) {
                        self.dirty_links.remove(slug);
                        ctx.storage().delete(&format!("{LINK_PREFIX}{slug}"));
                    }
                    self.announce_links(ctx);
                    RoomResponse::json(200, "{}")
                }
                _ => RoomResponse::not_found(),
            },
        }
    }

    fn on_batch_end(&mut self, ctx: &mut Ctx<'_>) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        self.stats.prune(now_ms());
        let mut storage = ctx.storage();
        storage.put(STATS_KEY, &serde_json::to_vec(&self.stats).expect("stats serialize"));
        for slug in std::mem::take(&mut self.dirty_links) {
            if let Some(link) = self.stats.links.get(&slug) {
                storage.put(&format!("{LINK_PREFIX}{slug}"), &serde_json::to_vec(link).expect("stats serialize"));
            }
        }
    }
}
