//! Limits and timers of the connection layer, each with its reason.

use std::time::Duration;

use switchboard_proto::deflate::DeflateOptions;
use switchboard_proto::timers::TimerConfig;
use switchboard_proto::Config;

/// Settings of the connection layer.
#[derive(Debug, Clone, Copy)]
pub struct NetConfig {
    /// Frame and message size limits of every connection.
    pub protocol: Config,
    /// What permessage-deflate we agree to.
    pub deflate: DeflateOptions,
    /// Time allowed from accept to the end of the handshake: the
    /// transport's (TLS), a complete request head and the room's answer
    /// together. Default 10 s: generous for slow mobile links, short enough
    /// that idle half-open sockets do not pile up.
    pub handshake_timeout: Duration,
    /// Longest request head. Default 16 KiB, the common limit of HTTP
    /// servers; cookies beyond that are refused with 431.
    pub max_head_len: usize,
    /// How long we wait for the peer's close frame after sending ours, and
    /// for a blocked write to make progress while closing. Default 5 s.
    /// Like the heartbeat, checked once per [`NetConfig::timer_tick`].
    pub close_timeout: Duration,
    /// Silence after which the server pings a connection. Any frame from the
    /// peer counts as a sign of life. Default 30 s: below the idle timeouts
    /// of common proxies and NATs (60 s and up), so it also keeps paths open.
    /// Checked once per [`NetConfig::timer_tick`], so the ping goes out up
    /// to one tick later than this (never earlier).
    pub ping_interval: Duration,
    /// How long a pinged peer has to answer (with anything) before the
    /// connection is dropped as dead. Default 10 s: generous for a
    /// congested mobile link; a dead peer is noticed within 40 s (plus up
    /// to two timer ticks).
    pub pong_timeout: Duration,
    /// Bytes other tasks (rooms) may queue for one connection before it is
    /// cut off with 1008. Default 4 MiB: absorbs a burst of broadcasts to a
    /// reader on a slow link. The worst case is this times the number of
    /// stuck readers, so lower it on servers with many connections.
    pub max_outbound_queue: usize,
    /// Bytes waiting for the socket above which the connection stops reading
    /// and stops taking outbound frames. Default 256 KiB: a few socket
    /// buffers' worth; a peer that reads its replies never reaches it.
    pub max_pending_write: usize,
    /// Bytes read per system call. Default 64 KiB: one read takes a full
    /// batch of small pipelined messages, or several messages of a few KiB
    /// (each read costs a system call and, on TCP, often an ACK, so fewer
    /// and larger reads cost the kernel less). The buffer exists only while
    /// bytes are being processed: an idle connection holds none, and one
    /// waiting with part of a frame keeps only those bytes.
    pub read_chunk: usize,
    /// Quiet time after which an idle plain-TCP connection parks: its task
    /// ends and its socket leaves tokio's reactor for the listener's
    /// parking lot, which roughly halves what an idle connection costs in
    /// memory. Quiet means no message in either direction (pings and pongs
    /// do not count). Connections are asked once per this interval, so one
    /// parks between one and two of it after its last message. Resuming
    /// costs two `epoll_ctl` calls and a task spawn, once per wake-up of a
    /// parked connection. `None`: never park. Default 10 s.
    pub park_after: Option<Duration>,
}

impl NetConfig {
    /// How often the listener checks its connections' deadlines: a quarter
    /// of the shortest of `ping_interval`, `pong_timeout` and
    /// `close_timeout`, between 10 ms and 1 s. One sweep per tick replaces
    /// a timer per connection (see the `timers` module); a second is the
    /// precision a heartbeat needs, and shorter timers (tests) get
    /// proportionally finer ticks.
    pub fn timer_tick(&self) -> Duration {
        let shortest = self.ping_interval.min(self.pong_timeout).min(self.close_timeout);
        (shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }

    /// The engine's timers: heartbeat and closing handshake.
    #[inline]
    pub fn timers(&self) -> TimerConfig {
        TimerConfig { ping_interval: self.ping_interval, pong_timeout: self.pong_timeout, close_timeout: self.close_timeout }
    }
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            protocol: Config::default(),
            deflate: DeflateOptions::default(),
            handshake_timeout: Duration::from_secs(10),
            max_head_len: 16 * 1024,
            close_timeout: Duration::from_secs(5),
            max_outbound_queue: 4 << 20,
            max_pending_write: 256 << 10,
            ping_interval: Duration::from_secs(30),
            pong_timeout: Duration::from_secs(10),
            read_chunk: 64 * 1024,
            park_after: Some(Duration::from_secs(10)),
        }
    }
}
