//! The server's [`Service`]: upgrades go to rooms (the edge checks who the
//! client is, then the room decides, both before the 101), everything else
//! to the HTTP routes. The room is joined per [`Mode`]: on this node
//! ([`Local`]) or through its owner in a cluster ([`Clustered`]), each
//! with its own handler type.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use switchboard_apps::call::IceConfig;
use switchboard_net::{Accept, Handler, Policy, PrefixedIo, Refusal, Service, Shutdown, UpgradeInfo};
use switchboard_proto::handshake::RequestHead;
use switchboard_room::{ConnId, ConnectRequest, Decision, Headers, RoomGone, RoomId, RoomKind, RoomName};

use crate::auth::{self, Gate, Presented};
use crate::client_ip::TrustedProxies;
use crate::cluster::{Cluster, RemoteConnection};
use crate::conn_handler::ClusterHandler;
use crate::geo::GeoDb;
use crate::http;
use crate::kinds::Kinds;
use crate::limits::ConnPermit;
use crate::limits::EdgeLimits;
use crate::ops::Ops;
use crate::origin::OriginCheck;
use crate::registry::{Registry, RoomUnavailable};
use crate::room_conn::{Joining, RoomConnection};
use crate::routes::{Route, RouteError};

/// The edge's state: what every upgrade is checked against, and the HTTP
/// routes' shared parts.
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
}

/// Attempts to reach a room whose actor stopped between lookup and send.
const ROOM_ATTEMPTS: usize = 3;

/// `Retry-After` when the rooms cap is reached: rooms stop once their last
/// connection leaves, so places free up, but not on a client's schedule.
const ROOMS_RETRY: u64 = 10;

/// A listener's service: the edge's checks ([`SwitchboardService`]), then
/// the room joined the mode's way. The mode decides the listener's handler
/// type, so a plain server's connections carry nothing of cluster mode:
/// every connection's task and box are as large as the largest handler
/// (and handler future) its type may hold.
pub(crate) struct Served<M> {
    pub(crate) edge: SwitchboardService,
    pub(crate) mode: M,
}

/// How an admitted connection joins its room.
pub(crate) trait Mode: Send + Sync + 'static {
    /// The handler of this mode's connections.
    type Handler: Handler;

    /// Asks the room; its handler if the room accepts the connection.
    fn join(&self, edge: &SwitchboardService, admitted: Admitted<'_>) -> impl Future<Output = Result<Self::Handler, Refusal>> + Send;
}

/// A connection the edge admitted, on its way to its room.
pub(crate) struct Admitted<'a> {
    kind: RoomKind,
    id: RoomId,
    conn: ConnId,
    ip: IpAddr,
    permit: ConnPermit,
    expires: Option<SystemTime>,
    /// The room's request, once per attempt (a retry follows a room that
    /// stopped meanwhile).
    request: &'a mut (dyn FnMut() -> ConnectRequest + Send),
}

/// Rooms run on this node.
pub(crate) struct Local;

impl Mode for Local {
    type Handler = RoomConnection;

    async fn join(&self, edge: &SwitchboardService, admitted: Admitted<'_>) -> Result<RoomConnection, Refusal> {
        let Admitted { kind, id, conn, ip, permit, expires, request } = admitted;
        for _ in 0..ROOM_ATTEMPTS {
            let room = match edge.registry.room(&kind, id.clone()) {
                Ok(room) => room,
                Err(RoomUnavailable::UnknownKind) => break,
                Err(RoomUnavailable::Full) => {
                    edge.limits.count_rooms_refusal();
                    return Err(Refusal { status: 503, reason: "the server is at its room limit; try again later".into(), retry_after: Some(ROOMS_RETRY) });
                }
            };
            match room.connect(request()).await {
                Ok(Decision::Accept { tags, attachment }) => {
                    return Ok(RoomConnection::new(room, conn, Joining { tags, attachment, permit, expires }, edge.close_wait, ip));
                }
                Ok(Decision::Reject { status, reason }) => return Err(Refusal::new(status, reason)),
                Err(RoomGone) => continue,
            }
        }
        Err(Refusal::new(503, "room unavailable, try again"))
    }
}

/// Cluster mode: every room is joined through its owner, over NATS.
pub(crate) struct Clustered(pub(crate) Arc<Cluster>);

impl Mode for Clustered {
    type Handler = ClusterHandler;

    async fn join(&self, _edge: &SwitchboardService, admitted: Admitted<'_>) -> Result<ClusterHandler, Refusal> {
        let Admitted { kind, id, ip, permit, expires, request, .. } = admitted;
        let name = RoomName::new(kind, id);
        let (tags, attachment, proxy) = self.0.join(&name, request()).await.map_err(|e| Refusal::new(e.status, e.reason))?;
        let joining = Joining { tags, attachment, permit, expires };
        Ok(ClusterHandler(Box::new(RemoteConnection::new(self.0.clone(), proxy, name, joining, ip))))
    }
}

impl<M: Mode> Service for Served<M> {
    type Handler = M::Handler;

    async fn upgrade(&self, info: UpgradeInfo<'_>) -> Result<Accept<M::Handler>, Refusal> {
        let edge = &self.edge;
        let not_found = |e: RouteError| Refusal::new(404, e.to_string());
        let Route::Room { kind, id } = Route::parse(&info.request.path).map_err(not_found)?;
        let spec = edge.kinds.get(kind.as_str()).ok_or_else(|| not_found(RouteError::UnknownKind(kind.as_str().to_owned())))?;
        let header_list = || request_headers(info.head);
        let headers = header_list();
        let ip = edge.trusted_proxies.client_ip(info.peer, &headers);
        // The edge's checks, cheapest first; none of them touches a room.
        let now = std::time::Instant::now();
        let checked = edge.limits.check_handshake(ip, now)?;
        if let Err(refused) = edge.origins.check(kind.as_str(), info.request.origin.as_deref(), Some(&info.request.host)) {
            edge.limits.count_origin_refusal();
            return Err(Refusal::new(403, refused.to_string()));
        }
        let presented = Presented { peer: info.peer, headers: &headers, target: &info.request.path };
        let admitted = edge.auth.admit_room(kind.as_str(), id.as_str(), &presented).await.map_err(|d| {
            edge.limits.count_auth_refusal(d.status);
            Refusal::new(d.status, d.reason)
        })?;
        let permit = edge.limits.acquire(checked, ip, now)?;
        let conn = ConnId(edge.next_conn.fetch_add(1, Ordering::Relaxed));
        // The first request takes the headers already read, so a handshake
        // copies none.
        let mut headers = Some(headers);
        let mut connect_request = || ConnectRequest {
            conn,
            query: room_query(&info.request.path, admitted.token),
            headers: headers.take().unwrap_or_else(header_list),
            ip,
            geo: edge.geo.as_ref().and_then(|db| db.lookup(ip)),
            identity: admitted.identity.clone(),
        };
        let protocol = {
            let supported: Vec<&str> = spec.subprotocols.iter().map(String::as_str).collect();
            // The token itself is never the answer; the bare marker is,
            // when the kind speaks nothing else the client offered.
            let marker = admitted.via_protocol.then(|| info.request.select_protocol(&[auth::TOKEN_PROTOCOL])).flatten();
            info.request.select_protocol(&supported).or(marker).map(str::to_owned)
        };
        let compression = edge.compression_kinds.get(kind.as_str()).copied();
        let expires = admitted.expires;
        let handler = self.mode.join(edge, Admitted { kind, id, conn, ip, permit, expires, request: &mut connect_request }).await?;
        Ok(Accept { handler, protocol, compression })
    }

    fn http(&self, io: PrefixedIo, peer: SocketAddr, shutdown: Shutdown) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let edge = &self.edge;
        Box::pin(http::serve_connection(
            io,
            peer,
            edge.registry.clone(),
            edge.call_ice.clone(),
            edge.http.clone(),
            edge.limits.stats().clone(),
            edge.ops.clone(),
            shutdown,
        ))
    }
}

/// The request's headers as the edge and the room read them: one buffer
/// for all (two allocations per handshake, not two per header).
fn request_headers(head: &RequestHead) -> Headers {
    // A copy of the head as it came, its names lower-cased in place: one
    // copy of the whole rather than one per name and value.
    if let Some(headers) = head.text_fields().and_then(|(text, fields)| Headers::from_text(text.to_owned(), fields)) {
        return headers;
    }
    // The head's length bounds its names and values together.
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
