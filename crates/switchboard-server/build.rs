//! Rebuilds the crate when anything under `web/` changes: the pages are
//! embedded at compile time, and a new file would otherwise go unnoticed.

fn main() {
    println!("cargo:rerun-if-changed=../../web");
}
