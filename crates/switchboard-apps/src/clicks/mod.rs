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
//! counts, JSON), `r/{seq}` (one recent click each, 20-digit sequence).

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
const RECENT_PREFIX: &str = "r/";

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
    /// The latest clicks, oldest first, with their storage sequence.
    recent: VecDeque<(u64, Click)>,
    next_seq: u64,
    book: Arc<dyn LinkBook>,
}

/// Builds the rooms of the `clicks` kind.
pub fn factory(book: Arc<dyn LinkBook>) -> Arc<dyn RoomFactory> {
    Arc::new(move |id: &str, storage: &RoomStorage<'_>| Box::new(Clicks::load(id, book.clone(), storage)) as Box<dyn Room>)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn recent_key(seq: u64) -> String {
    format!("{RECENT_PREFIX}{seq:020}")
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
        let recent: VecDeque<(u64, Click)> = read("recent clicks", storage.list(RECENT_PREFIX, RECENT))
            .into_iter()
            .filter_map(|(key, bytes)| Some((key.strip_prefix(RECENT_PREFIX)?.parse().ok()?, serde_json::from_slice(&bytes).ok()?)))
            .collect();
        let next_seq = recent.back().map_or(0, |(seq, _)| seq + 1);
        Clicks { account: account.to_owned(), stats, dirty_links: BTreeSet::new(), dirty: false, recent, next_seq, book }
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
            recent: self.recent.iter().map(|(_, c)| c).collect(),
        }
        .to_json()
    }

    fn record(&mut self, ctx: &mut Ctx<'_>, clicks: Vec<Click>) {
        let dashboards = ctx.connection_count() > 0;
        let mut rest = clicks;
        while !rest.is_empty() {
            let group: Vec<Click> = if rest.len() > MAX_PER_MESSAGE { rest.drain(..MAX_PER_MESSAGE).collect() } else { std::mem::take(&mut rest) };
            for click in &group {
                self.stats.record(click);
                self.dirty_links.insert(click.slug.clone());
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
            let mut storage = ctx.storage();
            for click in group {
                let seq = self.next_seq;
                self.next_seq += 1;
                storage.put(&recent_key(seq), &serde_json::to_vec(&click).expect("clicks serialize"));
                if self.recent.len() == RECENT {
                    let (old, _) = self.recent.pop_front().expect("full");
                    storage.delete(&recent_key(old));
                }
                self.recent.push_back((seq, click));
            }
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
