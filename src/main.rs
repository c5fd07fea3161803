//! The `cliffprobe` binary: the command line (`cli/`: parsing, dispatch, printing) over the
//! library. `cli` is this crate's module, not part of the library's API, so the library neither
//! sees clap nor anyhow nor depends on how a command prints.
//!
//! mimalloc is the global allocator: a sweep allocates and frees small buffers for every case
//! on several threads at once (rendering, request bodies, HTTP, grading, store rows), and
//! glibc's malloc spent a fifth of the sweep's CPU there. It is built with `no_thp`: on
//! transparent huge pages its arenas are backed by 2 MiB pages, which doubled a sweep's peak
//! RSS. Freed memory goes back to the OS after 10 ms (`purge_delay`), not mimalloc v3's default
//! second: a report on a big run lets go of its per-variant tallies before it reads the flips'
//! evidence, and with the longer delay both stayed resident together; purging at once cost
//! the report time in madvise calls. `MIMALLOC_PURGE_DELAY` in the environment still wins. The
//! figures are in docs/performance.md.

mod cli;

use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc v3's index of `mi_option_purge_delay` in `mi_option_e` (libmimalloc-sys exports
/// no constant for it; the test below checks the index still names that option).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mimalloc's options are plain integers; setting one is only unsafe when
        // racing other threads, and no other thread has been started yet.
        #[allow(unsafe_code)]
        unsafe {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 10)
        };
    }
    cli::main()
}

#[cfg(test)]
mod tests {
    use super::MI_OPTION_PURGE_DELAY;

    /// The index still names `purge_delay`: its documented default is 1000 ms in mimalloc v3,
    /// and no neighbouring option has that default.
    #[test]
    fn the_purge_delay_option_index_is_mimallocs() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: reads one option; nothing sets options in this test binary.
        #[allow(unsafe_code)]
        let delay = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(delay, 1000);
    }
}
