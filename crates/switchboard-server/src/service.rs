//! The server's [`Service`]: upgrades go to rooms (the edge checks who the
//! client is, then the room decides, both before the 101), everything else
//! to the HTTP routes.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use switchboard_apps::call::IceConfig;
use switchboard_net::{Accept, Policy, PrefixedIo, Refusal, Service, Shutdown, UpgradeInfo};
use switchboard_proto::handshake::RequestHead;
use switchboard_room::{ConnId, ConnectRequest, Decision, Headers, RoomGone, RoomName};

use crate::auth::{self, Gate, Presented};
use crate::client_ip::TrustedProxies;
use crate::cluster::{Cluster, RemoteConnection};
use crate::conn_handler::ConnHandler;
use crate::geo::GeoDb;
use crate::http;
use crate::kinds::Kinds;
use crate::limits::EdgeLimits;
use crate::ops::Ops;
use crate::origin::OriginCheck;
use crate::registry::{Registry, RoomUnavailable};
use crate::room_conn::{Joining, RoomConnection};
use crate::routes::{Route, RouteError};

pub(crate) struct SwitchboardService {
    pub(crate) registry: Registry,
    pub(crate) kinds: Arc<Kinds>,
    pub(crate) next_conn: AtomicU64,
    pub(crate) close_wait: Duration,
    pub(crate) geo: Option<Arc<GeoDb>>,
    pub(crate) trusted_proxies: TrustedProxies,
    /// The call's ICE servers, for `GET /api/call/ice`.
    pub(crate) call_ice: Arc<IceConfig>,
    /// Room kinds whose permessage-deflate policy is not the server's.
    pub(crate) compression_kinds: BTreeMap<String, Policy>,
    /// Per-IP and server-wide connection limits.
    pub(crate) limits: Arc<EdgeLimits>,
    /// Which pages may open WebSockets to which kinds.
    pub(crate) origins: OriginCheck,
    /// Plain HTTP's bounds and the publish API's key.
    pub(crate) http: Arc<http::HttpSettings>,
    /// Metrics and readiness, for their HTTP routes.
    pub(crate) ops: Arc<Ops>,
    /// Who clients are, per room kind and for the HTTP API.
    pub(crate) auth: Arc<Gate>,
    /// In cluster mode, the node: rooms are joined through their owners.
    pub(crate) cluster: Option<Arc<Cluster>>,
}

/// Attempts to reach a room whose actor stopped between lookup and send.
const ROOM_ATTEMPTS: usize = 3;

/// `Retry-After` when the rooms cap is reached: rooms stop once their last
/// connection leaves, so places free up, but not on a client's schedule.
const ROOMS_RETRY: u64 = 10;

impl Service for SwitchboardService {
    type Handler = ConnHandler;

    async fn upgrade(&self, info: UpgradeInfo<'_>) -> Result<Accept<ConnHandler>, Refusal> {
        let not_found = |e: RouteError| Refusal::new(404, e.to_string());
        let Route::Room { kind, id } = Route::parse(&info.request.path).map_err(not_found)?;
        let spec = self.kinds.get(kind.as_str()).ok_or_else(|| not_found(RouteError::UnknownKind(kind.as_str().to_owned())))?;
        let header_list = || request_headers(info.head);
        let headers = header_list();
        let ip = self.trusted_proxies.client_ip_in(info.peer, &headers);
        // The edge's checks, cheapest first; none of them touches a room.
        let now = std::time::Instant::now();
        self.limits.check_handshake(ip, now)?;
        if let Err(refused) = self.origins.check(kind.as_str(), info.request.origin.as_deref(), Some(&info.request.host)) {
            self.limits.count_origin_refusal();
            return Err(Refusal::new(403, refused.to_string()));
        }
        let presented = Presented { peer: info.peer, headers: &headers, target: &info.request.path };
        let admitted = self.auth.admit_room(kind.as_str(), id.as_str(), &presented).await.map_err(|d| {
            self.limits.count_auth_refusal(d.status);
            Refusal::new(d.status, d.reason)
        })?;
        let permit = self.limits.acquire(ip, now)?;
        let conn = ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed));
        // A request per attempt (a retry follows a room that stopped
        // meanwhile); the first takes the headers already read, so a
        // handshake copies none.
        let mut headers = Some(headers);
        let mut connect_request = || ConnectRequest {
            conn,
            query: room_query(&info.request.path, admitted.token),
            headers: headers.take().unwrap_or_else(header_list),
            ip,
            geo: self.geo.as_ref().and_then(|db| db.lookup(ip)),
            identity: admitted.identity.clone(),
        };
        let protocol = |supported: &[String]| {
            let supported: Vec<&str> = supported.iter().map(String::as_str).collect();
            // The token itself is never the answer; the bare marker is,
            // when the kind speaks nothing else the client offered.
            let marker = admitted.via_protocol.then(|| info.request.select_protocol(&[auth::TOKEN_PROTOCOL])).flatten();
            info.request.select_protocol(&supported).or(marker).map(str::to_owned)
        };
        let compression = self.compression_kinds.get(kind.as_str()).copied();
        if let Some(cluster) = &self.cluster {
            let name = RoomName::new(kind.clone(), id.clone());
            let (tags, attachment, proxy) = cluster.join(&name, connect_request()).await.map_err(|e| Refusal::new(e.status, e.reason))?;
            let joining = Joining { tags, attachment, permit, expires: admitted.expires };
            let handler = ConnHandler::Remote(Box::new(RemoteConnection::new(cluster.clone(), proxy, name, joining, ip)));
            return Ok(Accept { handler, protocol: protocol(&spec.subprotocols), compression });
        }
        for _ in 0..ROOM_ATTEMPTS {
            let room = match self.registry.room(&kind, id.clone()) {
                Ok(room) => room,
                Err(RoomUnavailable::UnknownKind) => break,
                Err(RoomUnavailable::Full) => {
                    self.limits.count_rooms_refusal();
                    return Err(Refusal { status: 503, reason: "the server is at its room limit; try again later".into(), retry_after: Some(ROOMS_RETRY) });
                }
            };
            match room.connect(connect_request()).await {
                Ok(Decision::Accept { tags, attachment }) => {
                    let handler = RoomConnection::new(room, conn, Joining { tags, attachment, permit, expires: admitted.expires }, self.close_wait, ip);
                    return Ok(Accept { handler: ConnHandler::Local(handler), protocol: protocol(&spec.subprotocols), compression });
                }
                Ok(Decision::Reject { status, reason }) => return Err(Refusal::new(status, reason)),
                Err(RoomGone) => continue,
            }
        }
        Err(Refusal::new(503, "room unavailable, try again"))
    }

    fn http(&self, io: PrefixedIo, peer: SocketAddr, shutdown: Shutdown) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(http::serve_connection(
            io,
            peer,
            self.registry.clone(),
            self.call_ice.clone(),
            self.http.clone(),
            self.limits.stats().clone(),
            self.ops.clone(),
            shutdown,
        ))
    }
}

/// The request's headers as the edge and the room read them: one buffer
/// for all (two allocations per handshake, not two per header).
fn request_headers(head: &RequestHead) -> Headers {
    // The head's length bounds its names and values together: one pass.
    let mut headers = Headers::with_capacity(head.header_count(), head.head_len());
    for (name, value) in head.headers() {
        match std::str::from_utf8(value) {
            Ok(value) => headers.push(name, value),
            Err(_) => headers.push(name, &String::from_utf8_lossy(value)),
        }
    }
    headers
}

/// The query string a room sees: the request's, without the token when the
/// connection authenticated with one there.
fn room_query(path: &str, token: bool) -> String {
    let query = path.split_once('?').map(|(_, q)| q.to_owned()).unwrap_or_default();
    if token {
        auth::query_without_token(&query)
    } else {
        query
    }
}
