//! Writes the test geo database (see tests/support/geo_fixture.rs) to the
//! path given, for tests outside Rust (the browser tests):
//!
//! ```sh
//! cargo run --release -p switchboard --example geo_fixture -- target/geo-test.mmdb
//! ```

#[path = "../tests/support/geo_fixture.rs"]
mod geo_fixture;

fn main() -> std::process::ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: geo_fixture OUT.mmdb");
        return std::process::ExitCode::from(2);
    };
    if let Err(e) = std::fs::write(&path, geo_fixture::database()) {
        eprintln!("geo_fixture: cannot write {}: {e}", std::path::Path::new(&path).display());
        return std::process::ExitCode::FAILURE;
    }
    println!("wrote {} ({:?})", std::path::Path::new(&path).display(), geo_fixture::COUNTRIES);
    std::process::ExitCode::SUCCESS
}
