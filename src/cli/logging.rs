//! Diagnostics on stderr, filtered by RUST_LOG, so that stdout carries only a
//! command's output (scores may go there).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// `default` is the filter when RUST_LOG is unset: `warn` for the offline commands,
/// `info` for the daemon (its status lines).
pub fn init(json: bool, default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
