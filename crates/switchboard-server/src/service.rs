//! The server's [`Service`]: upgrades routed to room kinds, everything else
//! to the HTTP routes.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use switchboard_net::{Accept, PrefixedIo, Refusal, Service, UpgradeInfo};

use crate::echo::Echo;
use crate::http;
use crate::routes::{RoomKind, Route};

pub(crate) struct SwitchboardService;

impl SwitchboardService {
    pub(crate) fn new() -> Self {
        SwitchboardService
    }
}

impl Service for SwitchboardService {
    type Handler = Echo;

    fn upgrade(&self, info: UpgradeInfo<'_>) -> Result<Accept<Echo>, Refusal> {
        let route = Route::parse(&info.request.path).map_err(|e| Refusal { status: 404, reason: e.to_string() })?;
        match route {
            Route::Room { kind: kind @ RoomKind::Echo, .. } => {
                let protocol = info.request.select_protocol(kind.subprotocols()).map(str::to_owned);
                Ok(Accept { handler: Echo, protocol })
            }
        }
    }

    fn http(&self, io: PrefixedIo, peer: SocketAddr) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(http::serve_connection(io, peer))
    }
}
