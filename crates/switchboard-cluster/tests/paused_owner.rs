//! A real owner process paused with SIGSTOP past its lease TTL: when it
//! resumes it no longer holds the room and cannot write, and the node that
//! took the room over keeps what it wrote.
//!
//! The owner is this test binary run again as a child (the ignored test
//! `holder`), driven over stdin and stdout.

use std::io::{BufRead, BufReader, Write as _};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use switchboard_cluster::testing::NatsServer;
use switchboard_cluster::{Claim, Cluster, ClusterSettings, JetStreamStore};
use switchboard_store::{Batch, Store, StoreResult, Write};

/// Short, so losses show quickly; long enough that a busy machine does not
/// cost a renewal.
const TTL: Duration = Duration::from_secs(2);
const ROOM: &str = "chat/paused";
/// Starts the holder's own lines (its test harness prints lines too, and
/// begins the first without a line break).
const MARK: &str = "@@ ";

fn settings(url: String, node: &str) -> ClusterSettings {
    let mut settings = ClusterSettings::new(vec![url], node);
    settings.lease_ttl = TTL;
    settings
}

async fn commit(store: &JetStreamStore, value: &str) -> StoreResult<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let batch = Batch { room: ROOM.into(), writes: vec![Write::Put("k".into(), value.as_bytes().to_vec())] };
    store.commit(
        batch,
        Box::new(move |result| {
            let _ = tx.send(result);
        }),
    );
    tokio::time::timeout(Duration::from_secs(30), rx).await.expect("commit reported in time").expect("commit reported")
}

/// The child: owns the room and answers `commit VALUE` and `held` lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the owner process of an_owner_paused_past_its_ttl_resumes_without_the_room, which runs it"]
async fn holder() {
    let url = std::env::var("SB_HOLDER_NATS").expect("SB_HOLDER_NATS: the NATS URL");
    let cluster = Cluster::connect(settings(url, "paused")).await.unwrap();
    let Claim::Owned(lease) = cluster.claim(ROOM).await.unwrap() else { panic!("the holder must own the room") };
    let store = JetStreamStore::new(&cluster);
    store.load_room(&lease).await.unwrap();
    commit(&store, "before").await.unwrap();
    println!("{MARK}READY");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = rx.recv().await {
        let answer = match line.split_once(' ') {
            Some(("commit", value)) => match commit(&store, value).await {
                Ok(()) => "OK".to_owned(),
                Err(e) => format!("ERR {e}"),
            },
            _ if line == "held" => format!("HELD {}", lease.is_held()),
            _ => format!("ERR unknown command {line:?}"),
        };
        println!("{MARK}{answer}");
    }
}

struct Holder {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Holder {
    fn start(url: &str) -> Holder {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "holder", "--ignored", "--nocapture", "--test-threads", "1"])
            .env("SB_HOLDER_NATS", url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut holder = Holder { child, stdin, lines };
        assert_eq!(holder.next_line(), "READY");
        holder
    }

    /// The holder's next line of its own.
    fn next_line(&mut self) -> String {
        loop {
            let line = self.lines.recv_timeout(Duration::from_secs(30)).expect("the holder answers in time");
            if let Some((_, own)) = line.split_once(MARK) {
                return own.to_owned();
            }
        }
    }

    fn ask(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").unwrap();
        self.next_line()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill {signal}");
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_paused_past_its_ttl_resumes_without_the_room() {
    let server = NatsServer::start();
    let url = server.url();
    let mut holder = tokio::task::spawn_blocking(move || Holder::start(&url)).await.unwrap();
    let holder_ok = tokio::task::block_in_place(|| holder.ask("commit still-owner"));
    assert_eq!(holder_ok, "OK");

    let other = Cluster::connect(settings(server.url(), "other")).await.unwrap();
    holder.signal("-STOP");
    let lease = {
        let mut claimed = None;
        for _ in 0..100 {
            if let Claim::Owned(lease) = other.claim(ROOM).await.unwrap() {
                claimed = Some(lease);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        claimed.expect("the room moves to the other node once the paused owner's TTL passes")
    };
    let store = JetStreamStore::new(&other);
    store.load_room(&lease).await.unwrap();
    assert_eq!(store.get(ROOM, "k").unwrap().as_deref(), Some(&b"still-owner"[..]), "every acknowledged write is there");
    commit(&store, "new-owner").await.unwrap();

    holder.signal("-CONT");
    let (held, stale) = tokio::task::block_in_place(|| (holder.ask("held"), holder.ask("commit stale")));
    assert_eq!(held, "HELD false", "the resumed owner knows at once it lost the room");
    assert!(stale.starts_with("ERR") && stale.contains("lease"), "{stale}");

    let check = JetStreamStore::new(&other);
    check.load_room(&lease).await.unwrap();
    assert_eq!(check.get(ROOM, "k").unwrap().as_deref(), Some(&b"new-owner"[..]), "nothing from the stale owner");
    assert!(lease.is_held());
}
