//! `peregrine-sensor`: the rule engine's command line (`validate`, `replay`) and live capture.

mod bpf;
mod cli;
mod container;
mod event;
mod names;
mod proctable;
mod render;
mod rules;
mod run;
mod runtime;
mod sink;
mod status;
mod users;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
