//! The server's [`Service`]: upgrades go to rooms (the room decides before
//! the 101), everything else to the HTTP routes.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use switchboard_apps::call::IceConfig;
use switchboard_net::{Accept, Policy, PrefixedIo, Refusal, Service, Shutdown, UpgradeInfo};
use switchboard_room::{ConnId, ConnectRequest, Decision, RoomGone};

use crate::client_ip::TrustedProxies;
use crate::geo::GeoDb;
use crate::http;
use crate::kinds::Kinds;
use crate::registry::Registry;
use crate::room_conn::RoomConnection;
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
}

/// Attempts to reach a room whose actor stopped between lookup and send.
const ROOM_ATTEMPTS: usize = 3;

impl Service for SwitchboardService {
    type Handler = RoomConnection;

    async fn upgrade(&self, info: UpgradeInfo<'_>) -> Result<Accept<RoomConnection>, Refusal> {
        let not_found = |e: RouteError| Refusal { status: 404, reason: e.to_string() };
        let Route::Room { kind, id } = Route::parse(&info.request.path).map_err(not_found)?;
        let spec = self.kinds.get(kind.as_str()).ok_or_else(|| not_found(RouteError::UnknownKind(kind.as_str().to_owned())))?;
        let conn = ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed));
        // Made again only for a retry: the headers are copied into it.
        let connect_request = || {
            let headers: Vec<(String, String)> =
                info.head.headers.iter().map(|(n, v)| (n.to_ascii_lowercase(), String::from_utf8_lossy(v).into_owned())).collect();
            let ip = self.trusted_proxies.client_ip(info.peer, &headers);
            ConnectRequest {
                conn,
                query: info.request.path.split_once('?').map(|(_, q)| q.to_owned()).unwrap_or_default(),
                headers,
                ip,
                geo: self.geo.as_ref().and_then(|db| db.lookup(ip)),
                identity: None,
            }
        };
        for _ in 0..ROOM_ATTEMPTS {
            let Some(room) = self.registry.room(&kind, id.clone()) else { break };
            match room.connect(connect_request()).await {
                Ok(Decision::Accept { tags, attachment }) => {
                    let supported: Vec<&str> = spec.subprotocols.iter().map(String::as_str).collect();
                    let protocol = info.request.select_protocol(&supported).map(str::to_owned);
                    let handler = RoomConnection::new(room, conn, tags, attachment, self.close_wait);
                    let compression = self.compression_kinds.get(kind.as_str()).copied();
                    return Ok(Accept { handler, protocol, compression });
                }
                Ok(Decision::Reject { status, reason }) => return Err(Refusal { status, reason }),
                Err(RoomGone) => continue,
            }
        }
        Err(Refusal { status: 503, reason: "room unavailable, try again".into() })
    }

    fn http(&self, io: PrefixedIo, peer: SocketAddr, shutdown: Shutdown) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(http::serve_connection(io, peer, self.registry.clone(), self.call_ice.clone(), shutdown))
    }
}
