//! The `serve` flags of permessage-deflate: the server's policy, a policy
//! per room kind, the threshold, level and window (docs/compression.md).

use switchboard_server::{DeflateOptions, Policy, ServerConfig};

/// permessage-deflate (docs/compression.md).
#[derive(clap::Args)]
pub struct CompressionArgs {
    /// What to agree to when a client offers permessage-deflate: off,
    /// shared (no context kept between messages; codecs per thread) or
    /// dedicated (our context kept, in state per connection).
    #[arg(long, value_name = "POLICY", default_value = "shared")]
    compression: Policy,
    /// The policy of one room kind, `KIND=POLICY` (e.g. chat=dedicated);
    /// repeatable.
    #[arg(long = "compression-kind", value_name = "KIND=POLICY", value_parser = parse_kind_policy)]
    compression_kinds: Vec<(String, Policy)>,
    /// Messages shorter than this many bytes go out uncompressed.
    #[arg(long, value_name = "BYTES", default_value_t = DeflateOptions::default().threshold)]
    compression_threshold: usize,
    /// zlib compression level, 0-9.
    #[arg(long, default_value_t = DeflateOptions::default().level, value_parser = clap::value_parser!(u32).range(0..=9))]
    compression_level: u32,
    /// Window of a dedicated compressor, in bits (9-15): its memory and its ratio.
    #[arg(long, default_value_t = DeflateOptions::default().server_max_window_bits, value_parser = clap::value_parser!(u8).range(9..=15))]
    compression_window_bits: u8,
}

impl CompressionArgs {
    pub fn apply(&self, config: &mut ServerConfig) {
        config.net.deflate = DeflateOptions {
            policy: self.compression,
            threshold: self.compression_threshold,
            level: self.compression_level,
            server_max_window_bits: self.compression_window_bits,
            ..DeflateOptions::default()
        };
        config.compression_kinds = self.compression_kinds.iter().cloned().collect();
    }
}

fn parse_kind_policy(text: &str) -> Result<(String, Policy), String> {
    let (kind, policy) = text.split_once('=').ok_or_else(|| format!("expected KIND=POLICY, got {text:?}"))?;
    if !switchboard_server::is_kind_name(kind) {
        return Err(format!("{kind:?} is not a room kind name"));
    }
    Ok((kind.to_owned(), policy.parse()?))
}
