//! Hands the clicks that redirects record to the owning accounts' clicks
//! rooms, in groups.
//!
//! A redirect queues its click here and answers at once: it never waits for
//! a room or a dashboard (only, when [`QUEUE`] clicks are already waiting,
//! for room in the queue, which slows visitors down instead of losing
//! clicks). One task takes every click waiting, at most [`MAX_GROUP`],
//! splits them by account and hands each account's share to its room as
//! one request; the room counts them, pushes them to its dashboards, and
//! its storage writes for the whole share are committed in one
//! transaction. The clicks that arrive meanwhile form the next group, which
//! leaves once the previous one has been handed over and at least
//! [`GROUP_INTERVAL`] after it: a lone click goes at once, and under load
//! groups grow instead of dashboard messages and transactions multiplying
//! (each group is one message to every dashboard of its account and one
//! transaction). At shutdown, after the last request has been
//! answered, [`ClickRecorder::flush`] waits until every queued click is in
//! its room, and the rooms' writes are then committed before the process
//! exits, so a graceful shutdown loses no click.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use switchboard_apps::clicks::{Click, KIND};
use switchboard_room::{RoomId, RoomKind, RoomName, RoomRequest};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::warn;

use crate::cluster::{Reach, RoomAnswer};
use crate::links::Link;
use crate::registry::Registry;

/// Clicks that may wait for the recorder before redirects wait for room.
pub const QUEUE: usize = 65_536;

/// Most clicks in one group: bounds one room request's size and how long
/// one room's handler runs.
pub const MAX_GROUP: usize = switchboard_apps::clicks::MAX_PER_MESSAGE;

/// Least time from one group to the next. Under load it sets how many
/// messages each dashboard gets a second (and transactions each account
/// commits): each group costs a socket write per dashboard and a
/// transaction, which under a stream of redirects weigh more than the
/// redirects' own work when groups come every few milliseconds. 100 groups
/// a second is still more updates than a dashboard can show; it adds at
/// most this much to a click's way to the dashboards, and nothing to a
/// click that comes after a quiet spell.
pub const GROUP_INTERVAL: Duration = Duration::from_millis(10);

/// Attempts to reach a room whose actor stopped between lookup and send.
const ROOM_ATTEMPTS: usize = 3;

enum Item {
    /// A click on `link`, for its account's room.
    Click {
        link: Arc<Link>,
        click: Click,
    },
    Flush(oneshot::Sender<()>),
}

/// The queue of clicks on their way to the rooms; cheap to clone.
#[derive(Clone)]
pub(crate) struct ClickRecorder {
    tx: mpsc::Sender<Item>,
}

impl ClickRecorder {
    /// Starts the recorder's task.
    pub(crate) fn start(registry: Registry) -> ClickRecorder {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(rx, registry));
        ClickRecorder { tx }
    }

    /// Queues a click on `link` for its account's room.
    pub(crate) async fn record(&self, link: Arc<Link>, click: Click) {
        if self.tx.send(Item::Click { link, click }).await.is_err() {
            warn!("the click recorder has stopped; a click is lost");
        }
    }

    /// Waits until every click queued before this call is in its room.
    pub(crate) async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        if self.tx.send(Item::Flush(done)).await.is_ok() {
            let _ = flushed.await;
        }
    }
}

async fn run(mut rx: mpsc::Receiver<Item>, registry: Registry) {
    let kind = RoomKind::parse(KIND).expect("a valid kind name");
    let mut group = Vec::with_capacity(MAX_GROUP);
    let mut last: Option<Instant> = None;
    while rx.recv_many(&mut group, MAX_GROUP).await > 0 {
        let flushing = group.iter().any(|item| matches!(item, Item::Flush(_)));
        if let Some(next) = last.map(|last| last + GROUP_INTERVAL).filter(|next| *next > Instant::now() && !flushing) {
            tokio::time::sleep_until(next).await;
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(item) => group.push(item),
                    Err(_) => break,
                }
            }
        }
        last = Some(Instant::now());
        let mut by_account: HashMap<String, Vec<Click>> = HashMap::new();
        let mut flushed = Vec::new();
        for item in group.drain(..) {
            match item {
                // The account's name is copied once a group, not once a click.
                Item::Click { link, click } => match by_account.get_mut(link.account.as_str()) {
                    Some(clicks) => clicks.push(click),
                    None => {
                        by_account.insert(link.account.clone(), vec![click]);
                    }
                },
                Item::Flush(done) => flushed.push(done),
            }
        }
        let mut deliveries = JoinSet::new();
        for (account, clicks) in by_account {
            let registry = registry.clone();
            let kind = kind.clone();
            deliveries.spawn(async move { deliver(&registry, &kind, &account, clicks).await });
        }
        while deliveries.join_next().await.is_some() {}
        for done in flushed {
            let _ = done.send(());
        }
    }
}

async fn deliver(registry: &Registry, kind: &RoomKind, account: &str, clicks: Vec<Click>) {
    let Some(id) = RoomId::parse(account) else {
        warn!(account, clicks = clicks.len(), "clicks for an account name that is no room id are lost");
        return;
    };
    let body = Bytes::from(serde_json::to_vec(&clicks).expect("clicks serialize"));
    // In cluster mode the account's room runs on its owner, wherever that is.
    if let Some(cluster) = registry.cluster() {
        let request = RoomRequest { method: "POST".into(), path: "/clicks".into(), body };
        match cluster.room_request(&RoomName::new(kind.clone(), id), Reach::Started, request).await {
            RoomAnswer::Response { status: 200, .. } => {}
            RoomAnswer::Response { status, .. } => warn!(account, status, clicks = clicks.len(), "the clicks room refused clicks"),
            RoomAnswer::Unavailable { why } => {
                warn!(account, clicks = clicks.len(), why, "the clicks room did not take clicks; they are lost unless its node took them")
            }
            RoomAnswer::NoRoom | RoomAnswer::Stats(_) | RoomAnswer::Gone => {
                warn!(account, clicks = clicks.len(), "the clicks room is unavailable; clicks are lost")
            }
        }
        return;
    }
    for _ in 0..ROOM_ATTEMPTS {
        let Ok(room) = registry.owned_room(kind, id.clone()) else { break };
        let request = RoomRequest { method: "POST".into(), path: "/clicks".into(), body: body.clone() };
        match room.request(request).await {
            Ok(response) if response.status == 200 => return,
            Ok(response) => {
                warn!(account, status = response.status, clicks = clicks.len(), "the clicks room refused clicks");
                return;
            }
            Err(_) => continue,
        }
    }
    warn!(account, clicks = clicks.len(), "the clicks room is unavailable; clicks are lost");
}
