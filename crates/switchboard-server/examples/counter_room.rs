//! The example room of docs/rooms.md: `cargo run -p switchboard-server --example counter_room`,
//! then connect to ws://127.0.0.1:8080/rooms/counter/x?name=ann and send `bump`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use switchboard_room::{ConnId, ConnectRequest, Ctx, Decision, Message, Room, RoomStorage};
use switchboard_server::{Server, ServerConfig};

struct Counter {
    value: u64,
}

impl Counter {
    /// Called on first use and after every hibernation: reload from storage.
    fn load(storage: &RoomStorage<'_>) -> Counter {
        let value = storage.get("value").ok().flatten().and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok()).map_or(0, u64::from_be_bytes);
        Counter { value }
    }
}

impl Room for Counter {
    fn on_connect(&mut self, _ctx: &mut Ctx<'_>, request: &ConnectRequest) -> Decision {
        let name = request.query.strip_prefix("name=").unwrap_or("anonymous");
        // The attachment stays with the connection while the room hibernates.
        Decision::Accept { tags: vec!["member".into()], attachment: Some(name.as_bytes().to_vec()) }
    }

    fn on_open(&mut self, ctx: &mut Ctx<'_>, conn: ConnId) {
        let name = String::from_utf8_lossy(ctx.attachment(conn).unwrap_or_default()).into_owned();
        ctx.send(conn, Message::text(format!("hello {name}, the count is {}", self.value)));
        // Alarms are stored durably and fire after a restart too.
        ctx.set_alarm("nightly-reset", SystemTime::now() + Duration::from_secs(86_400));
        // Answered on each connection's own task, without waking the room.
        ctx.set_auto_response(Some(("ping", "pong")));
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, _conn: ConnId, message: Message) {
        if message.as_text() == Some("bump") {
            self.value += 1;
            // Committed with the rest of this batch of events, off the runtime.
            ctx.storage().put("value", &self.value.to_be_bytes());
            // Encoded once, shared by every recipient.
            ctx.broadcast(Message::text(self.value.to_string()), None);
        }
    }

    fn on_alarm(&mut self, ctx: &mut Ctx<'_>, _name: &str) {
        self.value = 0;
        ctx.storage().put("value", &0u64.to_be_bytes());
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let config = ServerConfig { data_dir: Some("./data".into()), ..ServerConfig::default() };
    let mut server = Server::bind("127.0.0.1:8080".parse().unwrap(), config).await?;
    server
        .add_room_kind("counter", &["json"], Arc::new(|_id: &str, storage: &RoomStorage<'_>| Box::new(Counter::load(storage)) as Box<dyn Room>))
        .expect("a valid kind name");
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    server.run(stopped).await;
    Ok(())
}
