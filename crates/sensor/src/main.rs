//! `peregrine-sensor`: the rule engine's command line (`validate`, `replay`) and live capture.

mod bpf;
mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
