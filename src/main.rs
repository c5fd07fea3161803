//! The `cliffprobe` binary: a thin shell over the library (see `cli.rs`).

use std::process::ExitCode;

fn main() -> ExitCode {
    cliffprobe::cli::main()
}
