//! The `cliffprobe` binary: a thin shell over the library (see `cli.rs`).
//!
//! mimalloc is the global allocator: a sweep allocates and frees small buffers for every case on
//! several threads at once (rendering, request bodies, HTTP, grading, store rows), and glibc's
//! malloc spent a fifth of the sweep's CPU on that (`perf record` of a 100,000-case sweep:
//! `_int_malloc`, `_int_free`, `malloc_consolidate`). Built with `no_thp`: with transparent
//! huge pages on (`always` on many distributions) its arenas are backed by 2 MiB pages and a
//! 10,000-case sweep's peak RSS went from 28 to 58 MB; without them it is ~40 MB. See README,
//! Performance.

use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    cliffprobe::cli::main()
}
