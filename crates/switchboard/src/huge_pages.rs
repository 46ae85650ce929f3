//! Transparent huge pages for the server's heap: off unless asked for.
//!
//! Where the kernel allows them, mimalloc backs its heap with 2 MiB pages,
//! and such a page is resident as a whole once one byte of it is touched.
//! A server's long-lived heap is many small blocks, a few per open
//! connection, so huge pages mostly add resident memory per idle
//! connection and at start, with the same echo throughput (the figures are
//! in docs/benchmarks.md). `--huge-pages` keeps the kernel's default.

/// Turns transparent huge pages off for this process (and what it starts).
/// Called before the runtime's threads exist; a kernel that refuses only
/// costs memory, so that is a warning.
#[cfg(target_os = "linux")]
pub(crate) fn disable() {
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::warn!(error = %e, "cannot turn transparent huge pages off; idle connections will take more memory");
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn disable() {}
