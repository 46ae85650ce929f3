//! The `serve` flags of permessage-deflate: the server's policy, a policy
//! per room kind, the threshold, level and window (docs/compression.md),
//! each overriding its key in `[compression]` or a kind's table.

use switchboard_server::Policy;

use crate::settings::{check_kind, parse_count, Settings};

/// permessage-deflate (docs/compression.md).
#[derive(clap::Args)]
pub struct CompressionArgs {
    /// What to agree to when a client offers permessage-deflate: off,
    /// shared (no context kept between messages; codecs per thread) or
    /// dedicated (our context kept, in state per connection) [default: shared].
    #[arg(long, env = "SWITCHBOARD_COMPRESSION", value_name = "POLICY")]
    compression: Option<Policy>,
    /// The policy of one room kind, `KIND=POLICY` (e.g. chat=dedicated);
    /// repeatable.
    #[arg(long = "compression-kind", env = "SWITCHBOARD_COMPRESSION_KIND", value_delimiter = ',', value_name = "KIND=POLICY", value_parser = parse_kind_policy)]
    compression_kinds: Vec<(String, Policy)>,
    /// Messages shorter than this many bytes go out uncompressed [default: 1024].
    #[arg(long, env = "SWITCHBOARD_COMPRESSION_THRESHOLD", value_name = "BYTES", value_parser = parse_count::<0, 4_294_967_295, usize>)]
    compression_threshold: Option<usize>,
    /// zlib compression level, 0-9 [default: 1].
    #[arg(long, env = "SWITCHBOARD_COMPRESSION_LEVEL", value_parser = parse_count::<0, 9, u32>)]
    compression_level: Option<u32>,
    /// Window of a dedicated compressor, in bits (9-15): its memory and its
    /// ratio [default: 12].
    #[arg(long, env = "SWITCHBOARD_COMPRESSION_WINDOW_BITS", value_parser = parse_count::<9, 15, u8>)]
    compression_window_bits: Option<u8>,
}

impl CompressionArgs {
    /// Overrides the settings' keys with the flags given.
    pub fn apply(&self, s: &mut Settings) -> Result<(), String> {
        let c = &mut s.compression;
        if let Some(policy) = self.compression {
            c.policy = policy;
        }
        if let Some(threshold) = self.compression_threshold {
            c.threshold = threshold;
        }
        if let Some(level) = self.compression_level {
            c.level = level;
        }
        if let Some(bits) = self.compression_window_bits {
            c.window_bits = bits;
        }
        for (kind, policy) in &self.compression_kinds {
            *s.kinds.edge_mut(kind)?.compression = Some(*policy);
        }
        Ok(())
    }
}

fn parse_kind_policy(text: &str) -> Result<(String, Policy), String> {
    let (kind, policy) = text.split_once('=').ok_or_else(|| format!("expected KIND=POLICY, got {text:?}"))?;
    check_kind(kind)?;
    Ok((kind.to_owned(), policy.parse()?))
}
