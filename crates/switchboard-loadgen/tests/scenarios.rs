//! The idle, churn, chat, call and clicks scenarios through real sockets: the built load
//! generator against the real server binary, each test with its own server
//! on a free loopback port. They check exit statuses and that the final
//! table has its rows with plausible figures, never how fast anything was.
//!
//! The server binary is the `switchboard` beside this package's binary in
//! the target directory: `cargo test --workspace` and `cargo nextest run
//! --workspace` build it first (a test cannot depend on another package's
//! binary on stable Cargo).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

/// The `switchboard` server process of one test, killed (by its own
/// handle) when the test ends.
struct Server {
    child: Child,
    /// `127.0.0.1:PORT`
    addr: String,
}

impl Server {
    fn start() -> Server {
        Server::start_with(&[])
    }

    /// A server with `serve` options of its own after the defaults.
    fn start_with(extra: &[&str]) -> Server {
        Server::start_storing(&["--memory"], extra)
    }

    /// A server keeping its data where `storage` says (`--memory` or
    /// `--data-dir DIR`), with `extra` options.
    fn start_storing(storage: &[&str], extra: &[&str]) -> Server {
        let mut child = Command::new(server_binary())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(storage)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the switchboard binary");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut line).expect("read the address line");
        let addr = line
            .trim()
            .strip_prefix("switchboard listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Server { child, addr }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `switchboard` binary beside the load generator's.
fn server_binary() -> PathBuf {
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_switchboard-loadgen")).with_file_name(format!("switchboard{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "the server binary {} is missing: build it first (`cargo build -p switchboard`), or run the tests with --workspace",
        binary.display()
    );
    binary
}

fn loadgen<A: AsRef<std::ffi::OsStr>>(args: &[A]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchboard-loadgen")).args(args).output().expect("run switchboard-loadgen")
}

/// The rest of the table row that starts with `label`.
fn row<'a>(table: &'a str, label: &str) -> &'a str {
    table.lines().find_map(|l| l.strip_prefix(label)).unwrap_or_else(|| panic!("no {label:?} row in\n{table}")).trim()
}

/// The first number in `text`, thousands separators allowed (`19,000`).
fn number(text: &str) -> u64 {
    let digits: String = text
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap_or_else(|_| panic!("no number in {text:?}"))
}

fn table(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "exit status {}\nstdout:\n{stdout}\nstderr:\n{}", output.status, String::from_utf8_lossy(&output.stderr));
    stdout
}

#[test]
fn idle_opens_and_holds_connections_over_rooms() {
    let server = Server::start();
    let url = format!("ws://{}/rooms/echo/idle", server.addr);
    let out = table(&loadgen(&["idle", "--url", &url, "--connections", "200", "--rooms", "4", "--server-pid", &server.pid(), "--hibernate-wait", "1"]));
    assert_eq!(row(&out, "scenario"), "idle");
    assert!(row(&out, "connections").starts_with("200 over 4 rooms, from 127.0.0.1-127.0.0.16"), "{out}");
    assert!(number(row(&out, "handshakes/s")) > 0, "{out}");
    let fds = row(&out, "server fds");
    let (before, open) = (number(fds), number(fds.split_once("open").expect("open count").1));
    assert!(open >= before + 200, "{out}");
    assert!(row(&out, "server RSS").contains("B per connection"), "{out}");
    assert!(number(row(&out, "after wait")) == 1, "{out}");
    assert!(!out.contains("lost"), "{out}");
}

#[test]
fn idle_makes_the_browsers_offer_and_echoes_once_under_each_policy() {
    for policy in ["shared", "dedicated", "off"] {
        let server = Server::start_with(&["--compression", policy]);
        let url = format!("ws://{}/rooms/echo/idle", server.addr);
        let args = ["idle", "--url", &url, "--connections", "50", "--rooms", "2", "--server-pid", &server.pid(), "--deflate", "--echo-once", "3000"];
        let out = table(&loadgen(&args));
        assert_eq!(row(&out, "offer"), "permessage-deflate; client_max_window_bits (a browser's)", "{out}");
        assert!(row(&out, "echo once").starts_with("3,000 bytes each"), "{out}");
        assert!(row(&out, "server RSS").contains("B per connection"), "{out}");
        assert!(!out.contains("lost"), "--compression {policy}: {out}");
    }
}

#[test]
fn churn_completes_connections_and_finds_no_leak() {
    let server = Server::start();
    let url = format!("ws://{}/rooms/echo/churn", server.addr);
    let out = table(&loadgen(&["churn", "--url", &url, "--concurrency", "4", "--seconds", "1", "--server-pid", &server.pid()]));
    assert_eq!(row(&out, "scenario"), "churn");
    assert!(number(row(&out, "completed")) > 0, "{out}");
    assert!(number(row(&out, "conns/s")) > 0, "{out}");
    assert_eq!(row(&out, "failures"), "0");
    assert!(row(&out, "leak check").starts_with("ok"), "{out}");
    assert!(row(&out, "server CPU").contains("% of one core (user "), "{out}");
    assert!(row(&out, "server cost").ends_with("us of CPU per connection"), "{out}");
    // The split adds up to the whole, to the printed precision.
    let cost: f64 = row(&out, "server cost").split(' ').next().unwrap().parse().unwrap();
    let split: Vec<f64> = row(&out, "  of which").split(' ').filter_map(|word| word.parse().ok()).collect();
    assert_eq!(split.len(), 2, "{out}");
    assert!((split[0] + split[1] - cost).abs() <= 0.011, "{out}");
}

#[test]
fn churn_fails_when_nothing_answers() {
    // A port that was free a moment ago: every connect is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("ws://127.0.0.1:{port}/rooms/echo/churn");
    let output = loadgen(&["churn", "--url", &url, "--concurrency", "2", "--seconds", "1"]);
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(number(row(&stdout, "failures")) > 0, "{stdout}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("connections failed"));
}

#[test]
fn idle_refuses_more_connections_than_files_and_says_how_to_go_further() {
    let output = loadgen(&["idle", "--url", "ws://127.0.0.1:9/rooms/echo/idle", "--connections", "4000000000"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("open files") && stderr.contains("ulimit -Hn"), "{stderr}");
}

#[test]
fn chat_messages_are_acknowledged_and_delivered_without_errors() {
    let server = Server::start();
    let url = format!("ws://{}/rooms/chat/load", server.addr);
    let out = table(&loadgen(&["chat", "--url", &url, "--rooms", "2", "--users", "5", "--seconds", "2", "--server-pid", &server.pid()]));
    assert_eq!(row(&out, "scenario"), "chat");
    assert!(row(&out, "users").starts_with("10 in 2 rooms of 5"), "{out}");
    assert!(number(row(&out, "sent/s")) > 0, "{out}");
    assert!(number(row(&out, "acked/s")) > 0, "{out}");
    assert!(number(row(&out, "received/s")) > 0, "{out}");
    assert!(row(&out, "latency us").starts_with("p50 ") && row(&out, "latency us").ends_with("(send to ack)"), "{out}");
    assert_eq!(row(&out, "errors"), "0");
    assert!(!out.contains("lost"), "{out}");
    assert!(row(&out, "server cost").ends_with("us of CPU per acked message"), "{out}");
}

#[test]
fn chat_fails_when_a_room_refuses_its_users() {
    let server = Server::start_with(&["--chat-max-users", "3"]);
    let url = format!("ws://{}/rooms/chat/full", server.addr);
    let output = loadgen(&["chat", "--url", &url, "--rooms", "1", "--users", "5", "--seconds", "1"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("refused with room_full"), "{stderr}");
}

#[test]
fn chat_ends_on_time_and_reports_what_it_saw_when_the_server_stops_answering() {
    let server = Server::start();
    let url = format!("ws://{}/rooms/chat/stall", server.addr);
    let started = std::time::Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard-loadgen"))
        .args(["chat", "--url", &url, "--rooms", "1", "--users", "4", "--seconds", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run switchboard-loadgen");
    let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
    let mut seen = String::new();
    while !seen.contains("users joined in") {
        assert!(stderr.read_line(&mut seen).expect("read the progress") > 0, "the load generator ended before the users joined:\n{seen}");
    }
    // Stopped, the server answers nothing and closes nothing.
    assert!(Command::new("kill").args(["-STOP", &server.pid()]).status().expect("run kill").success());
    let output = child.wait_with_output().expect("wait for switchboard-loadgen");
    std::io::Read::read_to_string(&mut stderr, &mut seen).expect("read the rest of stderr");
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "took {:?}", started.elapsed());
    assert!(!output.status.success());
    let out = String::from_utf8_lossy(&output.stdout);
    assert_eq!(number(row(&out, "acked/s")), 0, "{out}");
    assert!(number(row(&out, "sent/s")) > 0, "{out}");
    assert!(number(row(&out, "unanswered")) > 0, "{out}");
    assert!(seen.contains("no message was acknowledged"), "{seen}");
}

#[test]
fn call_relays_signals_around_each_room() {
    let server = Server::start();
    let url = format!("ws://{}/rooms/call/ring", server.addr);
    let out = table(&loadgen(&["call", "--url", &url, "--rooms", "2", "--peers", "3", "--seconds", "2", "--server-pid", &server.pid()]));
    assert_eq!(row(&out, "scenario"), "call");
    assert!(row(&out, "peers").starts_with("6 in 2 rooms of 3"), "{out}");
    assert!(number(row(&out, "relayed/s")) > 0, "{out}");
    assert!(row(&out, "latency us").starts_with("p50 ") && row(&out, "latency us").ends_with("(send to relayed signal)"), "{out}");
    assert_eq!(row(&out, "errors"), "0");
    assert_eq!(number(row(&out, "not relayed")), 0, "{out}");
    assert!(!out.contains("lost"), "{out}");
    assert!(row(&out, "memory/room").ends_with("(RSS growth / rooms)"), "{out}");
}

/// A data directory of one test, removed when the test ends.
struct DataDir(PathBuf);

impl DataDir {
    fn new(name: &str) -> DataDir {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("a clock after 1970").as_nanos();
        let dir = std::env::temp_dir().join(format!("switchboard-loadgen-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the data directory");
        DataDir(dir)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temp path")
    }

    /// Runs `switchboard ARGS --data-dir DIR` and returns its stdout, trimmed.
    fn switchboard(&self, args: &[&str]) -> String {
        let output = Command::new(server_binary()).args(args).args(["--data-dir", self.path()]).output().expect("run switchboard");
        assert!(output.status.success(), "switchboard {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).expect("UTF-8 output").trim().to_owned()
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `POST /api/links` of `server` with an account's API key; panics unless
/// the link is created.
fn create_link(server: &Server, key: &str, slug: &str) {
    use std::io::{Read, Write};
    let body = format!(r#"{{"url":"https://example.com/{slug}","slug":"{slug}"}}"#);
    let mut stream = std::net::TcpStream::connect(&server.addr).expect("connect to the server");
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("set a read timeout");
    let request = format!(
        "POST /api/links HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.addr,
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send the request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    assert!(answer.starts_with("HTTP/1.1 201"), "creating {slug}: {answer}");
}

/// Two accounts with a link each, on a server with a data directory; the
/// returned token file holds a dashboard token of each, in that order.
fn two_accounts(dir: &DataDir) -> (Server, PathBuf) {
    let keys = [dir.switchboard(&["accounts", "add", "ada"]), dir.switchboard(&["accounts", "add", "bob"])];
    let server = Server::start_storing(&["--data-dir", dir.path()], &[]);
    create_link(&server, &keys[0], "ada-link");
    create_link(&server, &keys[1], "bob-link");
    // The token secret is made by the server's first start.
    let tokens = [dir.switchboard(&["token", "--account", "ada"]), dir.switchboard(&["token", "--account", "bob"])];
    let file = dir.0.join("tokens");
    std::fs::write(&file, format!("{}\n{}\n", tokens[0], tokens[1])).expect("write the token file");
    (server, file)
}

/// The clicks scenario's arguments for both accounts' links and tokens, then `more`.
fn clicks_args(server: &Server, tokens: &std::path::Path, more: &[&str]) -> Vec<String> {
    let url = format!("ws://{}/rooms/clicks", server.addr);
    let tokens = tokens.to_str().expect("a UTF-8 path");
    let mut args: Vec<String> =
        ["clicks", "--url", &url, "--link", "ada/ada-link", "--link", "bob/bob-link", "--token-file", tokens].map(String::from).to_vec();
    args.extend(more.iter().map(|arg| arg.to_string()));
    args
}

#[test]
fn clicks_probes_reach_every_dashboard_of_their_account() {
    let dir = DataDir::new("clicks");
    let (server, tokens) = two_accounts(&dir);
    let pid = server.pid();
    let out = table(&loadgen(&clicks_args(&server, &tokens, &["--dashboards", "5", "--probe-rate", "20/s", "--seconds", "1", "--server-pid", &pid])));
    assert_eq!(row(&out, "scenario"), "clicks");
    assert!(row(&out, "dashboards").starts_with("5 over 2 accounts"), "{out}");
    let probes = number(row(&out, "probes"));
    assert!(probes >= 2, "{out}");
    // ada has dashboards 0, 2 and 4, bob 1 and 3; probes alternate, ada first.
    let expected = probes.div_ceil(2) * 3 + probes / 2 * 2;
    let deliveries = row(&out, "deliveries");
    assert_eq!((number(deliveries), number(deliveries.split_once(" of ").expect("N of M").1)), (expected, expected), "{out}");
    let complete = row(&out, "complete");
    assert_eq!(number(complete.split_once(" of ").expect("N of M").1), probes, "{out}");
    assert_eq!(number(complete), probes, "{out}");
    assert_eq!(row(&out, "disordered"), "0");
    assert!(row(&out, "latency us").starts_with("p50 "), "{out}");
    assert!(number(row(&out, "clicks/s")) > 0, "{out}");
    assert!(!out.contains("lost"), "{out}");
}

#[test]
fn clicks_fails_when_a_token_is_for_another_account() {
    let dir = DataDir::new("clicks-refused");
    let (server, tokens) = two_accounts(&dir);
    let bob_token = std::fs::read_to_string(&tokens).expect("read the tokens").lines().nth(1).expect("bob's token").to_owned();
    let url = format!("ws://{}/rooms/clicks", server.addr);
    let output = loadgen(&["clicks", "--url", &url, "--link", "ada/ada-link", "--token", &bob_token, "--dashboards", "2", "--seconds", "1"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("403"), "{stderr}");
}

/// Visits `/l/{slug}` of `server` from `threads` threads at once, each a
/// request per connection, until `stop` is set (at most 20 s); returns how
/// many visits were answered 302.
fn visit_until(server: &Server, slug: &str, threads: usize, stop: &std::sync::atomic::AtomicBool) -> u64 {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    std::thread::scope(|scope| {
        let visitors: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut answered = 0;
                    while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < deadline {
                        let mut stream = std::net::TcpStream::connect(&server.addr).expect("connect to the server");
                        stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("set a read timeout");
                        write!(stream, "GET /l/{slug} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", server.addr).expect("send the request");
                        let mut answer = String::new();
                        stream.read_to_string(&mut answer).expect("read the answer");
                        assert!(answer.starts_with("HTTP/1.1 302"), "{answer}");
                        answered += 1;
                    }
                    answered
                })
            })
            .collect();
        visitors.into_iter().map(|v| v.join().expect("a visitor thread")).sum()
    })
}

#[test]
fn clicks_with_the_browsers_offer_reads_groups_of_clicks_among_other_visitors() {
    let dir = DataDir::new("clicks-groups");
    let (server, tokens) = two_accounts(&dir);
    let args = clicks_args(&server, &tokens, &["--dashboards", "4", "--probe-rate", "50/s", "--seconds", "2", "--deflate"]);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (output, visits) = std::thread::scope(|scope| {
        let visitors = scope.spawn(|| visit_until(&server, "ada-link", 8, &stop));
        let output = loadgen(&args);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (output, visitors.join().expect("the visitors"))
    });
    let out = table(&output);
    assert!(visits > 0);
    assert_eq!(row(&out, "offer"), "permessage-deflate; client_max_window_bits (a browser's)");
    let probes = number(row(&out, "probes"));
    let deliveries = row(&out, "deliveries");
    // Two dashboards of each account: every probe is expected twice.
    assert_eq!((number(deliveries), number(deliveries.split_once(" of ").expect("N of M").1)), (probes * 2, probes * 2), "{out}");
    assert_eq!(row(&out, "disordered"), "0");
    let clicks = number(row(&out, "clicks/s"));
    let messages = number(row(&out, "messages/s"));
    assert!(messages > 0 && clicks >= messages, "{out}");
    assert!(!out.contains("lost"), "{out}");
}
