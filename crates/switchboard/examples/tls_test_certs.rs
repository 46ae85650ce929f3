//! Writes a throwaway CA and a server certificate it signs (for `localhost`
//! and `127.0.0.1`; see tests/support/test_ca.rs) into the directory given,
//! for the TLS tests outside Rust (Node and the browser):
//!
//! ```sh
//! cargo run --release -p switchboard --example tls_test_certs -- target/tls-test
//! ```
//!
//! Files: `ca.pem` (the CA to trust), `cert.pem` (the chain: server, CA),
//! `key.pem` (the server's key).

#[allow(dead_code)] // the root store is for the Rust tests
#[path = "../tests/support/test_ca.rs"]
mod test_ca;

fn main() -> std::process::ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(std::path::PathBuf::from) else {
        eprintln!("usage: tls_test_certs OUT_DIR");
        return std::process::ExitCode::from(2);
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("tls_test_certs: cannot create {}: {e}", dir.display());
        return std::process::ExitCode::FAILURE;
    }
    let ca = test_ca::TestCa::new("switchboard test CA");
    let server = ca.server_cert("switchboard test server");
    if let Err(e) = std::fs::write(dir.join("ca.pem"), &ca.pem) {
        eprintln!("tls_test_certs: cannot write into {}: {e}", dir.display());
        return std::process::ExitCode::FAILURE;
    }
    server.write(&dir);
    println!("wrote ca.pem, cert.pem and key.pem into {}", dir.display());
    std::process::ExitCode::SUCCESS
}
