//! The tracing subscriber every binary of the project installs: a human format on a
//! terminal, plain lines in CI logs, `RUST_LOG` respected (default `info`). The
//! cluster module's entry points are debug spans: with `RUST_LOG=info,scaleproof=debug`
//! each prints its name and time when it ends, which shows which cluster code a run
//! went through (on the local backend too).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the subscriber (once; later calls do nothing). Writes to stderr, so
/// stdout stays for results (`--json`, the plan of `--dry-run`, the summary table).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let terminal = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        // Spans close with their timing, when enabled: `RUST_LOG=info,scaleproof=debug`
        // lists every cluster call a run made (`cluster::reset::reset` ...).
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(terminal);
    // On a terminal, time of day keeps long runs readable; CI logs carry their own
    // timestamps, so there the lines stay short.
    let _ = if terminal {
        builder.compact().try_init()
    } else {
        builder.without_time().try_init()
    };
}
