//! The configuration file against the real binary: precedence of file,
//! environment and flags, every kind of bad file and its message,
//! `config check` and `config show` (secrets masked), and keys of the file
//! taking effect on real connections.

mod common;
#[path = "support/config_cli.rs"]
mod config_cli;
#[path = "support/edge.rs"]
mod edge;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use config_cli::{run, run_bounded, switchboard, table, write};

/// A server process, killed (by its handle) when dropped.
struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `serve` and returns the address from its `listening on` line.
fn serve_addr(command: &mut Command) -> (Serving, String) {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("start switchboard");
    let stdout = child.stdout.take().unwrap();
    let child = Serving(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("switchboard listening on http://").unwrap_or_else(|| panic!("unexpected line {line:?}")).to_owned();
    (child, addr)
}

#[test]
fn the_file_is_overridden_by_the_environment_and_that_by_a_flag() {
    let dir = tempfile::tempdir().unwrap();
    // Loopback addresses tell the three sources apart without racing for ports.
    let file = write(dir.path(), "s.toml", "listen = \"127.0.0.2:0\"\nmemory = true\n[kinds.chat]\nrate = 7\nburst = 8\nhistory = 9\n");
    let serve = |env: Option<&str>, flag: Option<&str>| {
        let mut command = switchboard();
        command.arg("serve").arg("--config").arg(&file);
        if let Some(env) = env {
            command.env("SWITCHBOARD_LISTEN", env);
        }
        if let Some(flag) = flag {
            command.args(["--listen", flag]);
        }
        serve_addr(&mut command)
    };
    let (_a, from_file) = serve(None, None);
    assert!(from_file.starts_with("127.0.0.2:"), "{from_file}");
    let (_b, from_env) = serve(Some("127.0.0.3:0"), None);
    assert!(from_env.starts_with("127.0.0.3:"), "{from_env}");
    let (_c, from_flag) = serve(Some("127.0.0.3:0"), Some("127.0.0.4:0"));
    assert!(from_flag.starts_with("127.0.0.4:"), "{from_flag}");

    // The same order for a kind's settings, as `config show` reports them.
    let (ok, shown, err) = run(switchboard()
        .args(["config", "show", "--config"])
        .arg(&file)
        .env("SWITCHBOARD_CHAT_BURST", "20")
        .env("SWITCHBOARD_CHAT_HISTORY", "30")
        .args(["--chat-history", "40"]));
    assert!(ok, "{err}");
    let chat = shown.split("[kinds.chat]").nth(1).expect("a chat table");
    for line in ["rate = 7", "burst = 20", "history = 40", "max_users = 100"] {
        assert!(chat.lines().any(|l| l.trim() == line), "{line:?} missing in\n{shown}");
    }
}

#[test]
fn serve_refuses_a_bad_file_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "bad.toml", "memory = true\n[connections]\nping_intervall = \"5s\"\n");
    let (ok, stdout, stderr) = run(switchboard().arg("serve").arg("--config").arg(&file));
    assert!(!ok);
    assert!(!stdout.contains("listening"), "{stdout}");
    assert!(stderr.contains("bad.toml line 3: unknown key `connections.ping_intervall`"), "{stderr}");
}

/// Each kind of mistake, and the message `config check` gives for it.
#[test]
fn config_check_names_the_line_and_key_of_each_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "unknown.toml",
            "listen = \"127.0.0.1:80\"\n\n[kinds.chat]\nmax_user = 6\n",
            "unknown.toml line 4: unknown key `kinds.chat.max_user` (expected one of `max_users`",
        ),
        ("kind.toml", "[kinds.video]\nmax_users = 1\n", "kind.toml line 1: unknown key `kinds.video`"),
        ("type.toml", "memory = true\n[kinds.chat]\nhistory = \"lots\"\n", "type.toml line 3: `kinds.chat.history`: invalid type: string \"lots\""),
        ("range.toml", "[kinds.call]\nmax_peers = 1\n", "range.toml line 2: `kinds.call.max_peers`: 1 is out of range: must be 2 to 100"),
        (
            "duration.toml",
            "\n[connections]\npong_timeout = \"10 seconds\"\n",
            "duration.toml line 3: `connections.pong_timeout`: \"10 seconds\": the unit must be ms, s, m or h",
        ),
        ("zero.toml", "hibernate_after = \"0s\"\n", "zero.toml line 1: `hibernate_after`: a duration must be more than zero"),
        ("addr.toml", "listen = \"localhost\"\n", "addr.toml line 1: `listen`: invalid socket address syntax"),
        ("proxy.toml", "trusted_proxies = [\"10.0.0.0/8\", \"gateway\"]\n", "proxy.toml line 1: `trusted_proxies"),
        ("syntax.toml", "memory = true\nlisten = 127.0.0.1\n", "syntax.toml line 2: not valid TOML"),
        (
            "turn.toml",
            "[kinds.call]\nturn = [\"turn:turn.example.org\"]\n",
            "turn.toml: kinds.call.turn (--call-turn) needs the TURN secret: kinds.call.turn_secret_file",
        ),
        (
            "secretfile.toml",
            "[kinds.call]\nturn = [\"turn:t.example.org\"]\nturn_secret_file = \"/nonexistent/secret\"\n",
            "cannot read the TURN secret file /nonexistent/secret",
        ),
        ("mode.toml", "[auth]\nmode = \"sometimes\"\n", "mode.toml line 2: `auth.mode`: \"sometimes\" is not an auth mode"),
        ("kindauth.toml", "memory = true\n[kinds.echo]\nauth = \"tokens\"\n", "kindauth.toml line 3: `kinds.echo.auth`: \"tokens\" is not an auth mode"),
        (
            "kindkey.toml",
            "[kinds.echo]\nauth_mode = \"token\"\n",
            "kindkey.toml line 2: unknown key `kinds.echo.auth_mode` (expected one of `auth`, `room_is_subject`",
        ),
        ("origin.toml", "[origins]\nallowed = [\"app.example\"]\n", "origin.toml line 2: `origins.allowed"),
        (
            "kindorigin.toml",
            "[kinds.chat]\nmax_users = 5\nallowed_origins = [\"https://app.example/chat\"]\n",
            "kindorigin.toml line 3: `kinds.chat.allowed_origins",
        ),
        ("policy.toml", "[kinds.chat]\ncompression = \"max\"\n", "policy.toml line 2: `kinds.chat.compression`: unknown compression policy \"max\""),
        ("level.toml", "[compression]\nlevel = 10\n", "level.toml line 2: `compression.level`: 10 is out of range: must be 0 to 9"),
        ("burst.toml", "[limits]\nhandshake_burst_per_ip = 0\n", "burst.toml line 2: `limits.handshake_burst_per_ip`: 0 is out of range: must be 1 to"),
        ("limit.toml", "[limits]\nmax_rooms = -1\n", "limit.toml line 2: `limits.max_rooms`: -1 is out of range"),
        ("body.toml", "[limits]\nhttp_body_timeout = \"0s\"\n", "body.toml line 2: `limits.http_body_timeout`: a duration must be more than zero"),
        (
            "forward.toml",
            "[auth]\nforward_url = \"https://auth.example/check\"\n",
            "forward.toml line 2: `auth.forward_url`: \"https://auth.example/check\": the auth backend URL must be http://",
        ),
        ("shortjwt.toml", "[auth]\njwt_secret = \"too-short\"\n", "shortjwt.toml: auth.jwt_secret: the HS256 secret must be at least 32 bytes"),
        (
            "twojwt.toml",
            "[auth]\njwt_secret = \"0123456789abcdef0123456789abcdef\"\njwt_secret_file = \"/etc/secret\"\n",
            "twojwt.toml: auth.jwt_secret and auth.jwt_secret_file (--jwt-secret-file) are both set",
        ),
        ("jwtfile.toml", "[auth]\njwt_secret_file = \"/nonexistent/jwt\"\n", "cannot read the JWT secret file /nonexistent/jwt"),
        ("header.toml", "[auth]\nheader = \"x user\"\n", "header.toml line 2: `auth.header`: \"x user\" is not a header name"),
        ("cookie.toml", "\n[auth]\ncookie = \"a;b\"\n", "cookie.toml line 3: `auth.cookie`: \"a;b\" is not a cookie name"),
        (
            "gateway.toml",
            "[kinds.chat]\nauth = \"trusted-header\"\n",
            "gateway.toml: trusted-header mode believes the header only from trusted proxies: set trusted_proxies",
        ),
        ("nobackend.toml", "[auth]\napi = \"forward\"\n", "nobackend.toml: forward mode needs the auth backend: auth.forward_url"),
        ("nokeys.toml", "memory = true\n[auth]\nmode = \"token\"\n", "nokeys.toml: token mode with storage in memory needs keys"),
        ("publish.toml", "[publish]\nkey_file = \"/nonexistent/key\"\n", "publish.toml: cannot read the publish key file /nonexistent/key"),
        ("subject.toml", "[kinds.clicks]\nroom_is_subject = false\n", "subject.toml: kinds.clicks.room_is_subject cannot be false"),
    ];
    for (name, text, expected) in cases {
        let file = write(dir.path(), name, text);
        let (ok, _, stderr) = run(switchboard().args(["config", "check"]).arg(&file));
        assert!(!ok, "{name} was accepted");
        assert!(stderr.contains(expected), "{name}: expected {expected:?} in {stderr:?}");
    }
    let (ok, _, stderr) = run(switchboard().args(["config", "check"]).arg(dir.path().join("missing.toml")));
    assert!(!ok);
    assert!(stderr.contains("missing.toml: cannot read"), "{stderr}");
}

#[test]
fn the_example_file_in_the_repository_is_valid_and_holds_the_defaults() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../switchboard.example.toml");
    let (ok, stdout, stderr) = run(switchboard().args(["config", "check"]).arg(&example));
    assert!(ok, "{stderr}");
    assert!(stdout.ends_with(": ok\n"), "{stdout}");
    let (_, with_example, _) = run(switchboard().args(["config", "show", "--config"]).arg(&example));
    let (_, defaults, _) = run(switchboard().args(["config", "show"]));
    assert_eq!(with_example, defaults, "the example's values are the defaults");
}

#[test]
fn config_show_masks_secrets_and_never_reads_out_the_turn_secret_file() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = write(dir.path(), "turn-secret", "file-secret-value\n");
    let file =
        write(dir.path(), "s.toml", &format!("[kinds.call]\nturn = [\"turn:turn.example.org\"]\nturn_secret_file = {:?}\n", secret_file.display().to_string()));
    let (ok, shown, stderr) = run(switchboard().args(["config", "show", "--config"]).arg(&file));
    assert!(ok, "{stderr}");
    assert!(!shown.contains("file-secret-value"), "{shown}");
    assert!(shown.contains(&format!("turn_secret_file = {:?}", secret_file.display().to_string())), "{shown}");

    let (ok, shown, stderr) = run(switchboard()
        .args(["config", "show", "--call-turn", "turn:turn.example.org"])
        .env("SWITCHBOARD_CALL_TURN_SECRET", "env-secret-value"));
    assert!(ok, "{stderr}");
    assert!(!shown.contains("env-secret-value"), "{shown}");
    assert!(shown.contains("turn_secret = \"********\""), "{shown}");
    // What `config show` prints is itself a valid file.
    let shown_file = write(dir.path(), "shown.toml", &shown);
    let (ok, _, stderr) = run(switchboard().args(["config", "check"]).arg(&shown_file));
    assert!(ok, "{stderr}");
}

#[test]
fn a_flag_given_twice_over_the_file_replaces_the_files_list() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "s.toml", "trusted_proxies = [\"10.0.0.0/8\"]\n[kinds.call]\nstun = [\"stun:a.example.org\"]\n");
    let (ok, shown, stderr) = run(switchboard()
        .args(["config", "show", "--config"])
        .arg(&file)
        .args(["--call-stun", "stun:b.example.org", "--call-stun", "stun:c.example.org"])
        .env("SWITCHBOARD_TRUSTED_PROXY", "192.168.0.0/16,::1"));
    assert!(ok, "{stderr}");
    assert!(shown.contains("stun = [\"stun:b.example.org\", \"stun:c.example.org\"]"), "{shown}");
    assert!(shown.contains("trusted_proxies = [\"192.168.0.0/16\", \"::1/128\"]"), "{shown}");
}

#[test]
fn drain_and_log_settings_come_from_the_file_the_environment_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "s.toml", "log_format = \"text\"\n[drain]\ngrace = \"0s\"\ntimeout = \"5s\"\n");
    let (ok, shown, stderr) = run(switchboard()
        .args(["config", "show", "--config"])
        .arg(&file)
        .env("SWITCHBOARD_DRAIN_TIMEOUT", "1m")
        .args(["--log-format", "json"]));
    assert!(ok, "{stderr}");
    for line in ["log_format = \"json\"", "grace = \"0s\"", "timeout = \"1m\""] {
        assert!(shown.lines().any(|l| l.trim() == line), "{line:?} missing in\n{shown}");
    }
    let bad = write(dir.path(), "bad.toml", "log_format = \"xml\"\n");
    let (ok, _, stderr) = run(switchboard().args(["config", "check"]).arg(&bad));
    assert!(!ok);
    assert!(stderr.contains("bad.toml line 1: `log_format`: unknown variant `xml`"), "{stderr}");
}

#[test]
fn edge_keys_follow_the_file_then_the_environment_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "s.toml",
        "[auth]\nmode = \"token\"\njwt_leeway = \"5s\"\n[limits]\nmax_rooms = 5\nmax_connections = 6\n[origins]\nallowed = [\"https://a.example\"]\n\
         [compression]\nlevel = 3\n[kinds.chat]\nauth = \"public\"\nallowed_origins = [\"https://chat.example\"]\n\
         [kinds.echo]\nallowed_origins = [\"https://echo.example\"]\ncompression = \"off\"\n",
    );
    let (ok, shown, err) = run(switchboard()
        .args(["config", "show", "--config"])
        .arg(&file)
        .env("SWITCHBOARD_MAX_ROOMS", "7")
        .env("SWITCHBOARD_MAX_CONNECTIONS", "8")
        .env("SWITCHBOARD_AUTH_KIND", "call=forward,chat=public")
        .env("SWITCHBOARD_AUTH_ROOM_IS_SUBJECT", "chat")
        .env("SWITCHBOARD_COMPRESSION_KIND", "broadcast=dedicated")
        .env("SWITCHBOARD_COMPRESSION_LEVEL", "4")
        .args(["--max-connections", "9", "--auth-kind", "chat=token", "--allowed-origin-kind", "chat=https://b.example"])
        .args(["--allowed-origin-kind", "chat=https://c.example"]));
    assert!(ok, "{err}");
    let expect = |name: &str, lines: &[&str]| {
        let table = table(&shown, name);
        for line in lines {
            assert!(table.contains(line), "{line:?} missing in [{name}] of\n{shown}");
        }
    };
    expect("auth", &["mode = \"token\"", "jwt_leeway = \"5s\""]);
    expect("limits", &["max_rooms = 7", "max_connections = 9"]);
    expect("origins", &["allowed = [\"https://a.example\"]"]);
    expect("compression", &["level = 4"]);
    // A per-kind flag overrides the kinds it names and no other.
    expect("kinds.chat", &["auth = \"token\"", "room_is_subject = true", "allowed_origins = [\"https://b.example\", \"https://c.example\"]"]);
    expect("kinds.echo", &["allowed_origins = [\"https://echo.example\"]", "compression = \"off\""]);
    expect("kinds.broadcast", &["compression = \"dedicated\""]);
    // clicks rooms are always their account's: shown as they apply.
    expect("kinds.clicks", &["room_is_subject = true"]);
    expect("kinds.echo", &["room_is_subject = false"]);
    // A flag's list replaces the variable's: call keeps the file's (no) mode.
    assert!(!table(&shown, "kinds.call").iter().any(|l| l.starts_with("auth")), "{shown}");
}

#[test]
fn config_show_masks_the_jwt_secret_and_the_publish_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "s.toml", "[auth]\njwt_secret = \"file-jwt-secret-0123456789abcdef0123\"\n");
    let (ok, shown, stderr) = run(switchboard().args(["config", "show", "--config"]).arg(&file).env("SWITCHBOARD_PUBLISH_KEY", "env-publish-key-value"));
    assert!(ok, "{stderr}");
    assert!(!shown.contains("file-jwt-secret") && !shown.contains("env-publish-key-value"), "{shown}");
    assert!(table(&shown, "auth").contains(&"jwt_secret = \"********\""), "{shown}");
    assert!(table(&shown, "publish").contains(&"key = \"********\""), "{shown}");
    // A flag's file replaces the file's inline secret.
    let (ok, shown, stderr) = run(switchboard().args(["config", "show", "--config"]).arg(&file).args(["--jwt-secret-file", "/etc/jwt"]));
    assert!(ok, "{stderr}");
    assert!(table(&shown, "auth").contains(&"jwt_secret_file = \"/etc/jwt\""), "{shown}");
    assert!(!shown.contains("jwt_secret ="), "{shown}");
    // What a file's setting needs may come from the environment.
    let token_mode = write(dir.path(), "token.toml", "memory = true\n[auth]\nmode = \"token\"\n");
    let (ok, _, stderr) = run(switchboard()
        .args(["config", "show", "--config"])
        .arg(&token_mode)
        .env("SWITCHBOARD_JWT_SECRET", "env-jwt-secret-0123456789abcdef0123"));
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = run(switchboard().args(["config", "show", "--config"]).arg(&token_mode));
    assert!(!ok && stderr.contains("token mode with storage in memory needs keys"), "{stderr}");
}

#[test]
fn a_per_kind_flag_naming_an_unknown_room_kind_stops_the_server() {
    // Flags, and environment variables.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);
    let cases: [Case; 5] = [
        (&["--auth-kind", "nope=token"], &[]),
        (&["--allowed-origin-kind", "nope=https://app.example"], &[]),
        (&["--compression-kind", "nope=off"], &[]),
        (&["--auth-room-is-subject", "nope"], &[]),
        (&[], &[("SWITCHBOARD_AUTH_KIND", "chat=token,nope=public")]),
    ];
    for (flags, env) in cases {
        let mut command = switchboard();
        command.args(["serve", "--memory", "--listen", "127.0.0.1:0"]).args(flags).envs(env.iter().copied());
        let (code, stdout, stderr) = run_bounded(&mut command);
        assert!(code.is_some_and(|c| c != 0), "{flags:?} {env:?}: exit {code:?}");
        assert!(!stdout.contains("listening"), "{flags:?} {env:?}: {stdout}");
        assert!(stderr.contains("unknown room kind \"nope\" (the kinds are echo, broadcast, chat, call, clicks)"), "{flags:?} {env:?}: {stderr}");
    }
}

/// A file giving chat token mode and echo its own Origin list and no
/// compression: a real client is refused, let in and answered
/// accordingly, and the other kinds keep the defaults.
#[tokio::test]
async fn per_kind_identity_and_origins_from_the_file_apply_to_real_connections() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "s.toml",
        &format!(
            "[auth]\njwt_secret = {:?}\n[kinds.chat]\nauth = \"token\"\n[kinds.echo]\nallowed_origins = [\"https://app.example\"]\ncompression = \"off\"\n",
            edge::SECRET
        ),
    );
    let config = file.display().to_string();
    let server = common::ServerProcess::start_with(&["--memory", "--config", &config]);
    let status = |result: Result<(edge::Ws, Option<String>), edge::Refused>| result.map(|_| 101).unwrap_or_else(|refused| refused.status);

    // Token mode from the file: nothing without a token, in with one
    // signed by the file's secret.
    assert_eq!(status(edge::open(&server.ws("/rooms/chat/lobby"), &[], &["json"]).await), 401);
    let with_token = server.ws(&format!("/rooms/chat/lobby?token={}", edge::good("ada")));
    assert_eq!(status(edge::open(&with_token, &[], &["json"]).await), 101);
    assert_eq!(status(edge::open(&server.ws("/rooms/echo/x"), &[], &[]).await), 101, "echo stays public");

    // echo's own allow-list; broadcast keeps the default (local pages only).
    let from = |origin: &'static str| [("Origin", origin)];
    assert_eq!(status(edge::open(&server.ws("/rooms/echo/x"), &from("https://app.example"), &[]).await), 101);
    assert_eq!(status(edge::open(&server.ws("/rooms/echo/x"), &from("https://evil.example"), &[]).await), 403);
    assert_eq!(status(edge::open(&server.ws("/rooms/echo/x"), &from("http://localhost:3000"), &[]).await), 403, "the list replaces the default");
    assert_eq!(status(edge::open(&server.ws("/rooms/broadcast/x"), &from("https://app.example"), &[]).await), 403);
    assert_eq!(status(edge::open(&server.ws("/rooms/broadcast/x"), &from("http://localhost:3000"), &[]).await), 101);

    // echo declines permessage-deflate; broadcast agrees (the default policy).
    assert_eq!(deflate_answer(&server.addr, "/rooms/echo/x").await, None);
    assert!(deflate_answer(&server.addr, "/rooms/broadcast/x").await.is_some_and(|v| v.starts_with("permessage-deflate")));
}

/// Offers permessage-deflate on a raw upgrade; the server's
/// `Sec-WebSocket-Extensions` answer, if any.
async fn deflate_answer(addr: &str, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(edge::WAIT, stream.read(&mut byte)).await.expect("an answer in time").unwrap();
        assert_eq!(n, 1, "closed before the end of the head: {}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    head.lines()
        .find_map(|line| line.split_once(':').filter(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-extensions")).map(|(_, v)| v.trim().to_owned()))
}
