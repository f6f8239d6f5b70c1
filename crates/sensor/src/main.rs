//! `peregrine-sensor`: live capture and the rule engine's command line.
//!
//! The engine and the eBPF capture land in later changes; until then the binary says so plainly
//! instead of pretending to work.

use std::process::ExitCode;

fn main() -> ExitCode {
    let version = env!("CARGO_PKG_VERSION");
    eprintln!(
        "peregrine-sensor {version}: rule validation, replay and live capture are not built yet"
    );
    ExitCode::from(2)
}
