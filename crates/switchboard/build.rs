//! Lays out the release binary's hot functions side by side.
//!
//! A connection's messages run through some three hundred functions of a
//! dozen crates; wherever the linker happens to put them, some of them
//! share the instruction cache's sets and evict each other on every
//! message, and which ones do changes with any edit anywhere. The linker
//! is handed `hot-functions.txt` (made by `scripts/hot-functions.sh` from
//! a profile of the benchmark loads) and puts those functions first, in
//! one run, the same way in every build (docs/benchmarks.md, "Code
//! layout").
//!
//! Only where the linker is known to take the list: release builds for
//! x86-64 Linux with rustc 1.90 or later, which links with its own lld
//! there. A name the build does not have (another toolchain mangles
//! differently) is skipped without a warning, so a stale list costs
//! nothing but its effect. `SWITCHBOARD_SYMBOL_ORDER=0` leaves the layout
//! to the linker, for another linker or a profile-guided build.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=hot-functions.txt");
    println!("cargo:rerun-if-env-changed=SWITCHBOARD_SYMBOL_ORDER");
    let var = |name: &str| env::var(name).unwrap_or_default();
    let wanted = var("SWITCHBOARD_SYMBOL_ORDER") != "0";
    let release = var("PROFILE") == "release";
    let target = var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ARCH") == "x86_64" && var("CARGO_CFG_TARGET_ENV") == "gnu";
    // A linker chosen in RUSTFLAGS may not know the option.
    let own_linker = !var("CARGO_ENCODED_RUSTFLAGS").contains("linker");
    if !(wanted && release && target && own_linker && links_with_lld()) {
        return;
    }
    let list = PathBuf::from(var("CARGO_MANIFEST_DIR")).join("hot-functions.txt");
    if list.exists() {
        println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}", list.display());
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}

/// True for rustc 1.90 and later, which link x86-64 Linux programs with
/// the lld it ships.
fn links_with_lld() -> bool {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(output) = Command::new(rustc).arg("-V").output() else { return false };
    let version = String::from_utf8_lossy(&output.stdout);
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let mut numbers = version.split_whitespace().nth(1).unwrap_or("").split('.').map(|n| n.parse::<u32>().unwrap_or(0));
    let (major, minor) = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    (major, minor) >= (1, 90)
}
