//! A user-defined room kind on a real server and real sockets: attachments
//! across hibernation, auto-responses that do not wake the room, alarms that
//! fire after a restart, HTTP to the room, tags and rejections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use switchboard_client::{Client, ClientError, Message};
use switchboard_room::{ConnId, ConnectRequest, Ctx, Decision, Room, RoomRequest, RoomResponse, RoomStorage};
use switchboard_server::{Server, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// A room that exposes each room feature through a text command.
struct Lab;

fn query_value<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
}

impl Room for Lab {
    fn on_connect(&mut self, _ctx: &mut Ctx<'_>, request: &ConnectRequest) -> Decision {
        if query_value(&request.query, "banned").is_some() {
            return Decision::Reject { status: 403, reason: "not welcome here".into() };
        }
        Decision::Accept {
            tags: query_value(&request.query, "tag").map(|t| vec![t.to_owned()]).unwrap_or_default(),
            attachment: query_value(&request.query, "name").map(|n| n.as_bytes().to_vec()),
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, conn: ConnId, message: Message) {
        let text = message.as_text().unwrap_or_default().to_owned();
        let mut words = text.split(' ');
        match (words.next(), words.next()) {
            (Some("whoami"), _) => {
                let name = String::from_utf8_lossy(ctx.attachment(conn).unwrap_or_default()).into_owned();
                ctx.send(conn, Message::text(name));
            }
            (Some("alarm"), Some(ms)) => {
                let at = SystemTime::now() + Duration::from_millis(ms.parse().unwrap());
                ctx.set_alarm("a", at);
                ctx.send(conn, Message::text("alarm set"));
            }
            (Some("auto"), _) => {
                ctx.set_auto_response(Some(("ping", "pong")));
                ctx.send(conn, Message::text("auto set"));
            }
            (Some("lastauto"), _) => {
                let answered = ctx.last_auto_response(conn).is_some();
                ctx.send(conn, Message::text(answered.to_string()));
            }
            (Some("tagged"), Some(tag)) => {
                let ids: Vec<String> = ctx.connections(Some(tag)).map(|c| c.to_string()).collect();
                ctx.send(conn, Message::text(ids.len().to_string()));
            }
            _ => {
                ctx.send(conn, Message::text(format!("unknown: {text}")));
            }
        }
    }

    fn on_error(&mut self, ctx: &mut Ctx<'_>, _conn: ConnId, error: &str) {
        ctx.storage().put("error", error.as_bytes());
    }

    fn on_alarm(&mut self, ctx: &mut Ctx<'_>, name: &str) {
        ctx.storage().put("fired", name.as_bytes());
    }

    fn on_request(&mut self, ctx: &mut Ctx<'_>, request: RoomRequest) -> RoomResponse {
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/error") => {
                let error = ctx.storage().get("error").unwrap().unwrap_or_default();
                RoomResponse::json(200, format!("{{\"error\":\"{}\"}}", String::from_utf8_lossy(&error)))
            }
            ("GET", "/fired") => {
                let fired = ctx.storage().get("fired").unwrap().unwrap_or_default();
                RoomResponse::json(200, format!("{{\"fired\":\"{}\"}}", String::from_utf8_lossy(&fired)))
            }
            ("POST", "/say") => {
                ctx.broadcast(Message::Text(request.body), None);
                RoomResponse::json(202, "{}")
            }
            _ => RoomResponse::not_found(),
        }
    }
}

struct Running {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn start(config: ServerConfig) -> Running {
        let mut server = Server::bind("127.0.0.1:0".parse().unwrap(), config).await.unwrap();
        server.add_room_kind("lab", &["json"], Arc::new(|_: &str, _: &RoomStorage<'_>| Box::new(Lab) as Box<dyn Room>)).unwrap();
        let addr = server.local_addr().unwrap();
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(server.run(stopped));
        Running { addr, stop, task }
    }

    fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(15), self.task).await.expect("server stopped").unwrap();
    }

    async fn http(&self, method: &str, path: &str, body: &str) -> String {
        let mut stream = TcpStream::connect(self.addr).await.unwrap();
        let request = format!("{method} {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        out
    }

    async fn stats(&self, room: &str) -> String {
        let out = self.http("GET", &format!("/api/rooms/lab/{room}/_stats"), "").await;
        out.split_once("\r\n\r\n").unwrap().1.to_owned()
    }
}

fn wakeups(stats: &str) -> u64 {
    let at = stats.find("\"wakeups\":").expect("wakeups field") + 10;
    stats[at..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap()
}

fn quick_hibernation() -> ServerConfig {
    let mut config = ServerConfig::default();
    config.rooms.hibernate_after = Duration::from_millis(200);
    config
}

async fn ask(client: &mut Client, text: &str) -> String {
    client.send_text(text).await.unwrap();
    client.recv_message().await.unwrap().as_text().unwrap().to_owned()
}

#[tokio::test]
async fn an_attachment_survives_hibernation() {
    let server = Running::start(quick_hibernation()).await;
    let mut ann = Client::connect(&server.url("/rooms/lab/h?name=ann")).await.unwrap();
    assert_eq!(ask(&mut ann, "whoami").await, "ann");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let asleep = server.stats("h").await;
    assert!(asleep.ends_with(r#""awake":false}"#), "{asleep}");
    assert_eq!(ask(&mut ann, "whoami").await, "ann", "the attachment outlived the room object");
    let awake = server.stats("h").await;
    assert!(awake.ends_with(r#""awake":true}"#), "{awake}");
    assert_eq!(wakeups(&awake), wakeups(&asleep) + 1);
    server.stop().await;
}

#[tokio::test]
async fn auto_responses_are_answered_without_waking_the_room() {
    let server = Running::start(quick_hibernation()).await;
    let mut client = Client::connect(&server.url("/rooms/lab/auto")).await.unwrap();
    assert_eq!(ask(&mut client, "auto").await, "auto set");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let asleep = server.stats("auto").await;
    assert!(asleep.ends_with(r#""awake":false}"#), "{asleep}");
    for _ in 0..3 {
        assert_eq!(ask(&mut client, "ping").await, "pong");
    }
    assert_eq!(server.stats("auto").await, asleep, "still asleep, never woken");
    assert_eq!(ask(&mut client, "lastauto").await, "true", "the room can see when the connection layer answered");
    let awake = server.stats("auto").await;
    assert!(awake.ends_with(r#""awake":true}"#), "anything else wakes it: {awake}");
    assert_eq!(wakeups(&awake), wakeups(&asleep) + 1);
    server.stop().await;
}

#[tokio::test]
async fn an_alarm_set_before_a_restart_fires_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig { data_dir: Some(dir.path().to_owned()), ..ServerConfig::default() };
    let server = Running::start(config.clone()).await;
    let mut client = Client::connect(&server.url("/rooms/lab/al")).await.unwrap();
    assert_eq!(ask(&mut client, "alarm 500").await, "alarm set");
    drop(client);
    server.stop().await;

    let server = Running::start(config).await;
    let mut fired = String::new();
    for _ in 0..50 {
        fired = server.http("GET", "/api/rooms/lab/al/fired", "").await;
        if fired.ends_with(r#"{"fired":"a"}"#) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(fired.ends_with(r#"{"fired":"a"}"#), "{fired}");
    server.stop().await;
}

#[tokio::test]
async fn http_to_a_room_reaches_its_connections() {
    let server = Running::start(ServerConfig::default()).await;
    let mut client = Client::connect(&server.url("/rooms/lab/push")).await.unwrap();
    let answer = server.http("POST", "/api/rooms/lab/push/say", "from a backend").await;
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    assert_eq!(client.recv_message().await.unwrap(), Message::text("from a backend"));
    assert!(server.http("GET", "/api/rooms/lab/push/nothing", "").await.starts_with("HTTP/1.1 404"));
    assert!(server.http("GET", "/api/rooms/nokind/push/x", "").await.starts_with("HTTP/1.1 404"));
    server.stop().await;
}

#[tokio::test]
async fn tags_and_rejections() {
    let server = Running::start(ServerConfig::default()).await;
    let mut a = Client::connect(&server.url("/rooms/lab/t?tag=red")).await.unwrap();
    let _b = Client::connect(&server.url("/rooms/lab/t?tag=red")).await.unwrap();
    let _c = Client::connect(&server.url("/rooms/lab/t?tag=blue")).await.unwrap();
    assert_eq!(ask(&mut a, "tagged red").await, "2");
    assert_eq!(ask(&mut a, "tagged blue").await, "1");
    match Client::connect(&server.url("/rooms/lab/t?banned=1")).await {
        Err(ClientError::Handshake(e)) => assert_eq!(e.status, 403),
        other => panic!("expected a 403 refusal, got {:?}", other.map(|_| ())),
    }
    server.stop().await;
}

#[tokio::test]
async fn a_protocol_error_reaches_the_room_as_on_error() {
    let server = Running::start(ServerConfig::default()).await;
    let mut raw = TcpStream::connect(server.addr).await.unwrap();
    raw.write_all(b"GET /rooms/lab/err HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").await.unwrap();
    // An unmasked client frame: the server fails the connection with 1002.
    raw.write_all(&[0x81, 0x02, b'h', b'i']).await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), raw.read_to_end(&mut rest)).await.unwrap().unwrap();
    let body = server.http("GET", "/api/rooms/lab/err/error", "").await;
    assert!(body.ends_with(r#"{"error":"client frames must be masked"}"#), "{body}");
    server.stop().await;
}
