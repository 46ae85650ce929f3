//! The server's settings as the configuration file spells them: one typed
//! tree with every default, read from TOML (`config_file`), overridden by
//! environment variables and flags (`main`), printed by `config show`, and
//! turned into the server's [`ServerConfig`] here.
//!
//! Every table rejects keys it does not know (`deny_unknown_fields`), and
//! every value is checked while it is read, so an error can name the key
//! and the line. Room kinds have a table each under `[kinds]`; a setting
//! every kind has (an Origin list, an auth mode) is a field in each kind's
//! table, next to that kind's own settings. The full list of keys is in
//! docs/configuration.md.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use switchboard_server::call::ice::{check_url, DEFAULT_TURN_TTL};
use switchboard_server::call::{IceConfig, TurnSecret};
use switchboard_server::{CallConfig, ChatConfig, DrainConfig, GeoDb, IpNet, ServerConfig, TlsFiles, TrustedProxies};

use crate::cluster_settings::Cluster;
use crate::duration;
use crate::edge_settings::{Auth, Compression, Limits, Origins, Publish};
use crate::kind_table::{kind_table, KindEdge, KindEdgeMut};
use crate::secret::Secret;

/// Everything `serve` can be told.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Plain HTTP and `ws://`.
    pub listen: SocketAddr,
    /// Directory of the room database.
    pub data_dir: PathBuf,
    /// Room storage in memory only.
    pub memory: bool,
    /// Idle time before a room's state is dropped from memory.
    #[serde(with = "duration::text")]
    pub hibernate_after: Duration,
    /// Keep the kernel's transparent huge pages.
    pub huge_pages: bool,
    /// How threads serve connections.
    pub runtime: Runtime,
    /// Threads serving connections; 0: one per core the process may use.
    pub threads: usize,
    /// Log lines as text or JSON.
    pub log_format: LogFormat,
    /// MaxMind-format databases, first match wins.
    pub geo_dbs: Vec<PathBuf>,
    /// Proxies whose forwarding headers name the client.
    #[serde(with = "networks")]
    pub trusted_proxies: Vec<IpNet>,
    /// Heartbeat of WebSocket connections.
    pub connections: Connections,
    /// How a SIGTERM drains.
    pub drain: Drain,
    /// The HTTPS / `wss://` listener.
    pub tls: Tls,
    /// Identity at the edge.
    pub auth: Auth,
    /// `Origin` allow-lists.
    pub origins: Origins,
    /// Limits against noisy clients.
    pub limits: Limits,
    /// The publish API's key.
    pub publish: Publish,
    /// permessage-deflate.
    pub compression: Compression,
    /// Settings per room kind.
    pub kinds: Kinds,
    /// Cluster mode.
    pub cluster: Cluster,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            memory: false,
            hibernate_after: Duration::from_secs(10),
            huge_pages: false,
            runtime: Runtime::EventLoops,
            threads: 0,
            log_format: LogFormat::Text,
            geo_dbs: Vec::new(),
            trusted_proxies: Vec::new(),
            connections: Connections::default(),
            drain: Drain::default(),
            tls: Tls::default(),
            auth: Auth::default(),
            origins: Origins::default(),
            limits: Limits::default(),
            publish: Publish::default(),
            compression: Compression::default(),
            kinds: Kinds::default(),
            cluster: Cluster::default(),
        }
    }
}

/// How threads serve connections (docs/architecture.md, "Event loops").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Runtime {
    /// One event loop per thread, each with listening sockets of its own;
    /// a connection stays on the loop that accepted it.
    EventLoops,
    /// One tokio runtime whose worker threads share every task and steal
    /// work from each other; the server accepts on its main thread.
    WorkStealing,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable text.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// `[drain]`: what a SIGTERM does (docs/configuration.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Drain {
    /// How long the listener keeps accepting after /readyz turned 503.
    #[serde(with = "duration::text_or_zero")]
    pub grace: Duration,
    /// How long open connections may stay after the listener closed.
    #[serde(with = "duration::text_or_zero")]
    pub timeout: Duration,
}

impl Default for Drain {
    fn default() -> Drain {
        let drain = DrainConfig::default();
        Drain { grace: drain.grace, timeout: drain.timeout }
    }
}

/// `[connections]`: timers of every WebSocket connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Connections {
    /// Ping after this much silence.
    #[serde(with = "duration::text")]
    pub ping_interval: Duration,
    /// Drop a pinged connection that stays silent this long.
    #[serde(with = "duration::text")]
    pub pong_timeout: Duration,
    /// Park a plain connection after this long without a message either
    /// way (its task and reactor registration are freed until its next
    /// news); 0 never parks.
    #[serde(with = "duration::text_or_zero")]
    pub park_after: Duration,
}

impl Default for Connections {
    fn default() -> Connections {
        Connections { ping_interval: Duration::from_secs(30), pong_timeout: Duration::from_secs(10), park_after: Duration::from_secs(10) }
    }
}

/// `[tls]`: an HTTPS / `wss://` listener beside the plain one (docs/tls.md).
/// Off while `listen` is unset; `cert` and `key` are then required.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    /// Address of the TLS listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// PEM certificate chain, leaf first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

/// `[kinds.NAME]`: one table per built-in room kind.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Kinds {
    /// `/rooms/echo/{id}`.
    pub echo: EchoKind,
    /// `/rooms/broadcast/{id}`.
    pub broadcast: BroadcastKind,
    /// `/rooms/chat/{id}`.
    pub chat: ChatKind,
    /// `/rooms/call/{id}`.
    pub call: CallKind,
    /// `/rooms/clicks/{id}` (docs/clicks.md).
    pub clicks: ClicksKind,
}

/// The names of the room kinds the binary serves, in the order of [`Kinds`].
pub const KIND_NAMES: [&str; 5] = ["echo", "broadcast", "chat", "call", "clicks"];

/// Checks that a flag names a room kind this server has; the error names
/// the kind and the kinds there are.
pub fn check_kind(kind: &str) -> Result<(), String> {
    if KIND_NAMES.contains(&kind) {
        return Ok(());
    }
    Err(format!("unknown room kind {kind:?} (the kinds are {})", KIND_NAMES.join(", ")))
}

impl Kinds {
    /// Every kind's name and shared keys.
    pub fn edges(&self) -> Vec<(&'static str, KindEdge)> {
        let edges = [self.echo.edge(), self.broadcast.edge(), self.chat.edge(), self.call.edge(), self.clicks.edge()];
        KIND_NAMES.into_iter().zip(edges).collect()
    }

    /// One kind's shared keys, to override; an unknown kind is an error
    /// naming the kinds there are.
    pub fn edge_mut(&mut self, kind: &str) -> Result<KindEdgeMut<'_>, String> {
        check_kind(kind)?;
        Ok(match kind {
            "echo" => self.echo.edge_mut(),
            "broadcast" => self.broadcast.edge_mut(),
            "chat" => self.chat.edge_mut(),
            "call" => self.call.edge_mut(),
            _ => self.clicks.edge_mut(),
        })
    }
}

kind_table! {
    /// `[kinds.echo]`: only the keys every kind has.
    EchoKind {}
}

kind_table! {
    /// `[kinds.broadcast]`: only the keys every kind has.
    BroadcastKind {}
}

kind_table! {
    /// `[kinds.clicks]`: only the keys every kind has. Its rooms are in
    /// token mode unless `auth` says otherwise, and a room id is always the
    /// identity's subject (a clicks room is one account's dashboard).
    ClicksKind (room_is_subject = true) {}
}

kind_table! {
    /// `[kinds.chat]`: the chat's limits.
    ChatKind {
        /// Users per room.
        #[serde(deserialize_with = "count::<_, 1, 100_000, _>")]
        max_users: usize = ChatConfig::default().max_users,
        /// Longest message, in characters.
        #[serde(deserialize_with = "count::<_, 1, 65_536, _>")]
        max_length: usize = ChatConfig::default().max_length,
        /// Sustained messages per second per user.
        #[serde(deserialize_with = "count::<_, 1, 10_000, _>")]
        rate: u32 = ChatConfig::default().per_second,
        /// Messages per burst.
        #[serde(deserialize_with = "count::<_, 1, 10_000, _>")]
        burst: u32 = ChatConfig::default().burst,
        /// Messages kept per room for newcomers.
        #[serde(deserialize_with = "count::<_, 0, 10_000, _>")]
        history: usize = ChatConfig::default().history,
    }
}

kind_table! {
    /// `[kinds.call]`: the call's limits and ICE servers.
    CallKind {
        /// Peers per call.
        #[serde(deserialize_with = "count::<_, 2, 100, _>")]
        max_peers: usize = CallConfig::default().max_peers,
        /// `stun:` URLs.
        #[serde(deserialize_with = "stun_urls")]
        stun: Vec<String> = Vec::new(),
        /// `turn:` / `turns:` URLs.
        #[serde(deserialize_with = "turn_urls")]
        turn: Vec<String> = Vec::new(),
        /// File holding the TURN shared secret.
        #[serde(skip_serializing_if = "Option::is_none")]
        turn_secret_file: Option<PathBuf> = None,
        /// The TURN shared secret itself (masked when shown).
        #[serde(skip_serializing_if = "Option::is_none")]
        turn_secret: Option<Secret> = None,
        /// Lifetime of TURN credentials.
        #[serde(with = "turn_ttl_text")]
        turn_ttl: Duration = DEFAULT_TURN_TTL,
    }
}

impl Settings {
    /// Checks what no single value shows: settings that need each other.
    /// The message names the keys.
    pub fn validate(&self) -> Result<(), String> {
        let call = &self.kinds.call;
        let has_secret = call.turn_secret_file.is_some() || call.turn_secret.is_some();
        if call.turn_secret_file.is_some() && call.turn_secret.is_some() {
            return Err("kinds.call.turn_secret and kinds.call.turn_secret_file (--call-turn-secret-file) are both set; give one".into());
        }
        if !call.turn.is_empty() && !has_secret {
            return Err(
                "kinds.call.turn (--call-turn) needs the TURN secret: kinds.call.turn_secret_file (--call-turn-secret-file) or kinds.call.turn_secret".into()
            );
        }
        if call.turn.is_empty() && has_secret {
            return Err("a TURN secret is set but kinds.call.turn (--call-turn) lists no TURN server".into());
        }
        if !self.kinds.clicks.room_is_subject {
            return Err("kinds.clicks.room_is_subject cannot be false: a clicks room is one account's dashboard, entered only by that account".into());
        }
        self.auth.validate(&self.kinds.edges(), !self.trusted_proxies.is_empty(), self.memory)?;
        self.publish.validate()?;
        self.cluster.validate()?;
        let tls = &self.tls;
        match (tls.listen, &tls.cert, &tls.key) {
            (Some(_), Some(_), Some(_)) | (None, None, None) => Ok(()),
            (Some(_), _, _) => Err("tls.listen (--listen-tls) needs tls.cert (--tls-cert) and tls.key (--tls-key)".into()),
            (None, _, _) => Err("tls.cert and tls.key are set but tls.listen (--listen-tls) is not: give the address of the TLS listener".into()),
        }
    }

    /// How many threads serve connections: `threads`, or one per core the
    /// process may run on (its CPU affinity, e.g. `taskset`, included).
    pub fn thread_count(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            threads => threads,
        }
    }

    /// The server's configuration. Reads the files the settings name (the
    /// TURN secret, the geo databases); an error names the file and why,
    /// never a secret's content.
    pub fn server_config(&self) -> Result<ServerConfig, String> {
        self.validate()?;
        let mut config = ServerConfig { data_dir: (!self.memory).then(|| self.data_dir.clone()), ..ServerConfig::default() };
        config.event_loops = match self.runtime {
            Runtime::EventLoops => self.thread_count(),
            Runtime::WorkStealing => 1,
        };
        config.net.ping_interval = self.connections.ping_interval;
        config.net.pong_timeout = self.connections.pong_timeout;
        config.net.park_after = Some(self.connections.park_after).filter(|after| !after.is_zero());
        config.rooms.hibernate_after = self.hibernate_after;
        let chat = &self.kinds.chat;
        config.apps.chat =
            ChatConfig { max_users: chat.max_users, max_length: chat.max_length, per_second: chat.rate, burst: chat.burst, history: chat.history };
        config.apps.call = self.call_config()?;
        config.trusted_proxies = TrustedProxies::new(self.trusted_proxies.clone());
        config.drain = DrainConfig { grace: self.drain.grace, timeout: self.drain.timeout };
        config.geo = load_geo(&self.geo_dbs);
        if let (Some(listen), Some(cert), Some(key)) = (self.tls.listen, &self.tls.cert, &self.tls.key) {
            config.tls = Some(TlsFiles { listen, cert: cert.clone(), key: key.clone() });
        }
        let kinds = self.kinds.edges();
        config.auth = self.auth.config(&kinds, config.data_dir.as_deref())?;
        config.auth.check(!config.trusted_proxies.is_empty())?;
        config.edge = crate::edge_settings::edge_config(&self.origins, &self.limits, &self.publish, &kinds)?;
        config.net.deflate = self.compression.options();
        config.cluster = self.cluster.config(self.listen.port());
        config.compression_kinds = kinds.iter().filter_map(|(kind, edge)| Some((kind.to_string(), edge.compression?))).collect();
        Ok(config)
    }

    /// Reads the files the settings name, as [`Settings::server_config`]
    /// would, without starting anything.
    pub fn check_files(&self) -> Result<(), String> {
        self.call_config()?;
        if let (Some(cert), Some(key)) = (&self.tls.cert, &self.tls.key) {
            switchboard_server::check_tls_files(cert, key)?;
        }
        self.auth.named_keys()?;
        self.publish.key()?;
        Ok(())
    }

    fn call_config(&self) -> Result<CallConfig, String> {
        let call = &self.kinds.call;
        let turn_secret = match (&call.turn_secret_file, &call.turn_secret) {
            (Some(path), _) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the TURN secret file {}: {e}", path.display()))?;
                Some(TurnSecret::from_file_text(&text).ok_or_else(|| format!("the TURN secret file {} is empty", path.display()))?)
            }
            (None, Some(secret)) => Some(TurnSecret::from_file_text(secret.expose()).ok_or("kinds.call.turn_secret is empty")?),
            (None, None) => None,
        };
        let ice = IceConfig { stun: call.stun.clone(), turn: call.turn.clone(), turn_secret, turn_ttl: call.turn_ttl };
        Ok(CallConfig { max_peers: call.max_peers, ice, ..CallConfig::default() })
    }
}

/// Loads every readable geo database. A missing file must not keep the
/// server from starting (countries are a nicety), so it is reported loudly
/// and skipped.
fn load_geo(paths: &[PathBuf]) -> Option<Arc<GeoDb>> {
    let mut db = GeoDb::new();
    for path in paths {
        match db.add(path) {
            Ok(kind) => tracing::info!(path = %path.display(), kind, "geo database loaded"),
            Err(e) => tracing::warn!("{e}; skipped"),
        }
    }
    if db.is_empty() && !paths.is_empty() {
        tracing::warn!("no geo database could be read: client countries will be unknown");
    }
    (!db.is_empty()).then(|| Arc::new(db))
}

/// A count between `MIN` and `MAX`, for flags (`value_parser`).
pub fn parse_count<const MIN: u64, const MAX: u64, T: TryFrom<u64>>(text: &str) -> Result<T, String> {
    let n: u64 = text.trim().parse().map_err(|_| format!("{text:?} is not a whole number"))?;
    check_count::<MIN, MAX, T>(n)
}

fn check_count<const MIN: u64, const MAX: u64, T: TryFrom<u64>>(n: u64) -> Result<T, String> {
    if !(MIN..=MAX).contains(&n) {
        return Err(format!("{n} is out of range: must be {MIN} to {MAX}"));
    }
    T::try_from(n).map_err(|_| format!("{n} is too large"))
}

/// A count between `MIN` and `MAX`, in the file.
pub(crate) fn count<'de, D: Deserializer<'de>, const MIN: u64, const MAX: u64, T: TryFrom<u64>>(deserializer: D) -> Result<T, D::Error> {
    let n = i64::deserialize(deserializer)?;
    let n = u64::try_from(n).map_err(|_| serde::de::Error::custom(format!("{n} is out of range: must be {MIN} to {MAX}")))?;
    check_count::<MIN, MAX, T>(n).map_err(serde::de::Error::custom)
}

/// `10.0.0.0/8`, or a single address (`10.0.0.5`, `::1`).
pub fn parse_network(text: &str) -> Result<IpNet, String> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is neither an IP address nor a CIDR network like 10.0.0.0/8"))
}

/// A STUN server URL, for flags.
pub fn parse_stun_url(url: &str) -> Result<String, String> {
    check_url(url, &["stun", "stuns"]).map(|()| url.to_owned())
}

/// A TURN server URL, for flags.
pub fn parse_turn_url(url: &str) -> Result<String, String> {
    check_url(url, &["turn", "turns"]).map(|()| url.to_owned())
}

fn stun_urls<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Vec::<String>::deserialize(deserializer)?.into_iter().map(|url| parse_stun_url(&url).map_err(serde::de::Error::custom)).collect()
}

fn turn_urls<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Vec::<String>::deserialize(deserializer)?.into_iter().map(|url| parse_turn_url(&url).map_err(serde::de::Error::custom)).collect()
}

/// A TURN credential lifetime: whole seconds (the expiry in the username
/// is in seconds), at least one.
pub fn parse_turn_ttl(text: &str) -> Result<Duration, String> {
    let ttl = duration::parse_duration(text)?;
    if ttl < Duration::from_secs(1) {
        return Err(format!("TURN credentials must live at least 1s (default {}s)", DEFAULT_TURN_TTL.as_secs()));
    }
    Ok(ttl)
}

mod turn_ttl_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ttl: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        crate::duration::text::serialize(ttl, serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        super::parse_turn_ttl(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// Networks as strings: `["10.0.0.0/8", "::1"]`.
mod networks {
    use serde::{Deserialize, Deserializer, Serializer};
    use switchboard_server::IpNet;

    pub fn serialize<S: Serializer>(networks: &[IpNet], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(networks.iter().map(ToString::to_string))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNet>, D::Error> {
        Vec::<String>::deserialize(deserializer)?
            .iter()
            .map(|text| super::parse_network(text).map_err(serde::de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_serialize_and_read_back_unchanged() {
        let text = toml::to_string(&Settings::default()).unwrap();
        let again: Settings = toml::from_str(&text).unwrap();
        assert_eq!(toml::to_string(&again).unwrap(), text);
    }

    #[test]
    fn counts_out_of_range_are_refused_with_the_range() {
        assert_eq!(parse_count::<1, 10, u32>("10"), Ok(10));
        assert!(parse_count::<1, 10, u32>("0").unwrap_err().contains("1 to 10"));
        assert!(parse_count::<1, 10, u32>("x").is_err());
        let err = toml::from_str::<Settings>("[kinds.chat]\nmax_users = -1\n").unwrap_err();
        assert!(err.message().contains("1 to 100000"), "{err}");
    }

    #[test]
    fn turn_servers_and_their_secret_come_together() {
        let mut settings = Settings::default();
        settings.kinds.call.turn = vec!["turn:example.org".into()];
        assert!(settings.validate().unwrap_err().contains("kinds.call.turn_secret_file"));
        settings.kinds.call.turn_secret = Some("s".parse().unwrap());
        assert_eq!(settings.validate(), Ok(()));
        settings.kinds.call.turn_secret_file = Some("f".into());
        assert!(settings.validate().unwrap_err().contains("both"));
    }

    #[test]
    fn a_tls_listener_needs_its_certificate_and_key() {
        let mut settings = Settings::default();
        settings.tls.listen = Some("127.0.0.1:0".parse().unwrap());
        assert!(settings.validate().unwrap_err().contains("tls.cert"));
        settings.tls.cert = Some("c.pem".into());
        settings.tls.key = Some("k.pem".into());
        assert_eq!(settings.validate(), Ok(()));
        settings.tls.listen = None;
        assert!(settings.validate().unwrap_err().contains("tls.listen"));
    }
}
