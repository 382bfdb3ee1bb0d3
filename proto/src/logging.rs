//! Log setup shared by the daemons: RUST_LOG filter (default info), to
//! stderr, colours only on a terminal so log files stay plain.

use std::io::IsTerminal;

pub fn init() {
    init_with("info");
}

/// As `init`, with another default level (ctl shows only warnings).
pub fn init_with(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
