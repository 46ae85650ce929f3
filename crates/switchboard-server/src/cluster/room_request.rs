//! HTTP to a room, and the server's own requests to rooms (recorded
//! clicks), in cluster mode: they reach the room on its owner, the node
//! holding its lease, so that each room runs as one actor in the cluster.
//! This node runs the request itself when it holds the lease; otherwise it
//! sends it to the owner (`<prefix>.node.<owner>.req`, request/reply),
//! which runs it as a single node would and answers with the room's
//! response, or with "gone" when it no longer holds the lease, and the
//! request goes to whoever holds it now.
//!
//! What may be started is as on one node: HTTP reaches a room that runs or
//! has stored data ([`Reach::Existing`]), so a room that no node owns is
//! claimed for it only when JetStream holds messages of it, and a request
//! to a made-up room leaves no lease; `_stats` starts nothing anywhere; the
//! server's own records claim and start the room ([`Reach::Started`]), as a
//! connection joining does.

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use switchboard_room::{RoomGone, RoomName, RoomRequest, RoomStats};
use tracing::{debug, warn};

use super::wire::{self, RoomCall};
pub(crate) use super::wire::{Reach, RoomAnswer};
use super::{Cluster, REQUEST};
use crate::http::text;
use crate::registry::RoomUnavailable;

/// Owners asked in turn when the room changes owners under an HTTP
/// request (each answered "gone", or none could be found or claimed yet);
/// its client can try again.
const OWNER_ATTEMPTS: usize = 5;
/// For the server's own records, which have no client to try again: the
/// owners asked within this many lease TTLs, long enough for a dead
/// owner's lease to expire and the room to be claimed again.
const RECORD_TTLS: u32 = 2;
/// The wait before asking again after a change of owners: a lease being
/// released or claimed settles within a few NATS round trips.
const OWNER_RETRY: Duration = Duration::from_millis(100);
/// Attempts to reach a room whose actor stopped between lookup and send.
const ROOM_ATTEMPTS: usize = 3;

impl Cluster {
    /// `request` to the room on its owner: the room's answer, `NoRoom`,
    /// or `Unavailable` (the owner did not answer in time, or the room kept
    /// changing owners); never `Gone`.
    pub(crate) async fn room_request(self: &Arc<Self>, room: &RoomName, reach: Reach, request: RoomRequest) -> RoomAnswer {
        self.call(room, RoomCall::Request { reach, request }).await
    }

    /// The room actor's counters on its owner; `None` when no actor runs
    /// anywhere; why not, when the owner could not be asked.
    pub(crate) async fn room_stats(self: &Arc<Self>, room: &RoomName) -> Result<Option<RoomStats>, String> {
        match self.call(room, RoomCall::Stats).await {
            RoomAnswer::Stats(stats) => Ok(Some(stats)),
            RoomAnswer::NoRoom => Ok(None),
            RoomAnswer::Unavailable { why } => Err(why),
            RoomAnswer::Response { .. } | RoomAnswer::Gone => Err("the room's node answered something else".into()),
        }
    }

    async fn call(self: &Arc<Self>, room: &RoomName, call: RoomCall) -> RoomAnswer {
        let namespace = room.namespace();
        let mut last = "the room is changing nodes; try again".to_owned();
        let attempts = match call {
            RoomCall::Request { reach: Reach::Started, .. } => {
                let span = self.lease_ttl() * RECORD_TTLS;
                usize::try_from(span.as_millis() / OWNER_RETRY.as_millis()).unwrap_or(OWNER_ATTEMPTS).max(OWNER_ATTEMPTS)
            }
            _ => OWNER_ATTEMPTS,
        };
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(OWNER_RETRY).await;
            }
            let owner = match self.owner_for(&namespace, &call).await {
                Ok(Some(owner)) => owner,
                Ok(None) => return RoomAnswer::NoRoom,
                Err(e) => {
                    debug!(room = namespace, error = e, "no owner for a room request yet");
                    last = e;
                    continue;
                }
            };
            let answer = if owner == self.node() { self.answer_here(room, call.clone()).await } else { self.forward(&owner, &namespace, &call).await };
            match answer {
                RoomAnswer::Gone => {
                    self.metrics.room_requests_gone.inc();
                    last = format!("the room's node {owner} no longer owns it");
                }
                answer => return answer,
            }
        }
        RoomAnswer::Unavailable { why: last }
    }

    /// Who runs `call` for the room: this node while it holds the lease;
    /// else the lease's holder, or for a room nobody owns, this node once
    /// it has claimed it (only a room with stored data for HTTP, never for
    /// `_stats`); `None` when the call reaches no room.
    async fn owner_for(self: &Arc<Self>, room: &str, call: &RoomCall) -> Result<Option<String>, String> {
        if self.held(room).is_some() {
            return Ok(Some(self.node().to_owned()));
        }
        let claim = match call {
            RoomCall::Stats => false,
            RoomCall::Request { reach: Reach::Started, .. } => true,
            RoomCall::Request { reach: Reach::Existing, .. } => {
                if let Some(owner) = self.nats.owner(room).await.map_err(|e| e.to_string())? {
                    return Ok(Some(owner));
                }
                let stored = match &self.store {
                    Some(store) => store.has_messages(room).await.map_err(|e| e.to_string())?,
                    // An embedder's own store (`Server::bind_with_store`):
                    // the node that claims the room looks in it, and
                    // releases a room with nothing there soon after.
                    None => true,
                };
                // Nobody owns it and nothing of it is stored: no room, as
                // on one node (the owner was asked just now).
                if !stored {
                    return Ok(None);
                }
                true
            }
        };
        if claim {
            return self.owner_of(room).await.map(Some);
        }
        self.nats.owner(room).await.map_err(|e| e.to_string())
    }

    /// `call` sent to `owner`, answered within the forward timeout.
    async fn forward(&self, owner: &str, room: &str, call: &RoomCall) -> RoomAnswer {
        let payload = wire::encode_room_call(room, call);
        let max = self.client.server_info().max_payload;
        if max > 0 && payload.len() > max {
            return RoomAnswer::Response {
                status: 413,
                content_type: "text/plain; charset=utf-8".into(),
                body: format!("the request is larger than the {max} bytes NATS carries to the room's node\n").into(),
            };
        }
        self.metrics.room_requests_forwarded.inc();
        self.metrics.join_round_trips.inc();
        let request = self.client.request(self.subject(owner, REQUEST), payload);
        match tokio::time::timeout(self.forward_timeout, request).await {
            Ok(Ok(answer)) => RoomAnswer::decode(answer.payload).unwrap_or_else(|_| {
                warn!(room, owner, "a malformed answer to a room request");
                RoomAnswer::Unavailable { why: format!("the room's node {owner} answered nonsense") }
            }),
            // Nobody listens there: the request was not taken, so it may go
            // to whoever owns the room next (the owner's lease ends soon).
            Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => RoomAnswer::Gone,
            Ok(Err(e)) => RoomAnswer::Unavailable { why: format!("the room's node {owner} did not answer: {e}") },
            // The owner may have run it: not sent again, so nothing runs twice.
            Err(_) => RoomAnswer::Unavailable { why: format!("the room's node {owner} did not answer in time") },
        }
    }

    /// Runs `call` here if this node holds the room's lease; `Gone` if not.
    /// The lease is checked again right before each hand-over to the room,
    /// so a node that lost it meanwhile (by the clock, even while paused)
    /// answers "gone" and applies nothing.
    async fn answer_here(&self, room: &RoomName, call: RoomCall) -> RoomAnswer {
        let Some(held) = self.held(&room.namespace()) else { return RoomAnswer::Gone };
        let request = match call {
            RoomCall::Stats => {
                let stats = match self.registry.live_room(&room.kind, room.id.clone()) {
                    Some(handle) if held.is_held() => handle.stats().await,
                    Some(_) => return RoomAnswer::Gone,
                    None => None,
                };
                return stats.map_or(RoomAnswer::NoRoom, RoomAnswer::Stats);
            }
            RoomCall::Request { reach, request } => (reach, request),
        };
        let (reach, request) = request;
        for _ in 0..ROOM_ATTEMPTS {
            let handle = match reach {
                Reach::Existing => match self.registry.existing(&room.kind, room.id.clone()) {
                    Some(handle) => handle,
                    None => return RoomAnswer::NoRoom,
                },
                Reach::Started => match self.registry.owned_room(&room.kind, room.id.clone()) {
                    Ok(handle) => handle,
                    Err(RoomUnavailable::UnknownKind) => return RoomAnswer::NoRoom,
                    Err(RoomUnavailable::Full) => return RoomAnswer::Unavailable { why: "the room's node is at its room limit".into() },
                },
            };
            if !held.is_held() {
                return RoomAnswer::Gone;
            }
            match handle.request(request.clone()).await {
                Ok(response) => {
                    return RoomAnswer::Response { status: response.status, content_type: response.content_type.to_owned(), body: response.body };
                }
                Err(RoomGone) => continue,
            }
        }
        RoomAnswer::Unavailable { why: "room unavailable, try again".into() }
    }
}

/// Answers the room requests sent to this node, each on a task of its own
/// (one room's answer must not hold up another room's).
pub(crate) async fn serve(cluster: Weak<Cluster>, mut requests: async_nats::Subscriber) {
    while let Some(message) = requests.next().await {
        let Some(cluster) = cluster.upgrade() else { return };
        let Some(reply) = message.reply else { continue };
        let (room, call) = match wire::decode_room_call(message.payload) {
            Ok(decoded) => decoded,
            Err(_) => {
                warn!("a malformed room request was ignored");
                continue;
            }
        };
        tokio::spawn(async move {
            let answer = match RoomName::from_namespace(&room) {
                Some(name) => cluster.answer_here(&name, call).await,
                None => RoomAnswer::NoRoom,
            };
            let payload = fit(answer.encode(), cluster.client.server_info().max_payload);
            if let Err(e) = cluster.client.publish(reply, payload).await {
                debug!(room, error = %e, "cannot answer a room request");
            }
        });
    }
}

/// The answer, or, when it is larger than NATS carries, a 502 that says so
/// (rather than no answer and a timeout on the asking node).
fn fit(payload: Bytes, max: usize) -> Bytes {
    if max == 0 || payload.len() <= max {
        return payload;
    }
    let body = format!("the room's answer is larger than the {max} bytes NATS carries between nodes\n");
    RoomAnswer::Response { status: 502, content_type: "text/plain; charset=utf-8".into(), body: body.into() }.encode()
}

/// The HTTP response for what a request to a room came to.
pub(crate) fn http_answer(answer: RoomAnswer) -> Response<Full<Bytes>> {
    match answer {
        RoomAnswer::Response { status, content_type, body } => {
            let mut response = Response::new(Full::new(body));
            *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let content_type = HeaderValue::from_str(&content_type).unwrap_or(HeaderValue::from_static("application/octet-stream"));
            response.headers_mut().insert(CONTENT_TYPE, content_type);
            response
        }
        RoomAnswer::NoRoom => text(StatusCode::NOT_FOUND, "no such room\n"),
        RoomAnswer::Unavailable { why } => text(StatusCode::SERVICE_UNAVAILABLE, format!("room unavailable: {why}\n")),
        // Neither is what a request (rather than `_stats`) comes to.
        RoomAnswer::Stats(_) | RoomAnswer::Gone => text(StatusCode::SERVICE_UNAVAILABLE, "room unavailable\n"),
    }
}
