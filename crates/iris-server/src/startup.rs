//! Everything `main` does, as a library function: logging, the async runtime, binding,
//! signals, serving.

use std::future::Future;
use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tracing::info;
use tracing_subscriber::EnvFilter;

use crate::config::{Cli, LogFormat};
use crate::server::serve;

/// How long to wait, after serving ends, for blocking model work to finish before the
/// process exits anyway (a burn is bounded, but not necessarily short).
const RUNTIME_SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Runs the server as the `iris-server` binary does, until a signal and drain end it.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    init_logging(cli.log_format);
    let runtime = build_runtime(cli.worker_threads)?;
    let result = runtime.block_on(bind_and_serve(cli));
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_GRACE);
    result
}

/// Logs to stdout; RUST_LOG filters (default `info`).
fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// One worker means a single-threaded runtime: under a fractional CPU quota there is no
/// second core to use, and cross-thread wake-ups only cost CPU.
fn build_runtime(worker_threads: u16) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = if worker_threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(usize::from(worker_threads));
        builder
    };
    builder
        .enable_all()
        .build()
        .context("building the tokio runtime")
}

async fn bind_and_serve(cli: Cli) -> anyhow::Result<()> {
    let address = SocketAddr::new(cli.host, cli.port);
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("binding {address}"))?;
    let bound = listener.local_addr().context("reading the bound address")?;
    let shutdown = shutdown_signal()?;
    let config = cli.config();
    info!(
        cpu_cost_ms = config.cpu_cost.as_secs_f64() * 1e3,
        worker_threads = cli.worker_threads,
        model_threads = config.model_threads,
        memory_cost_mib = config.memory_cost_bytes as f64 / (1024.0 * 1024.0),
        memory_hold_ms = config.memory_hold.as_millis() as u64,
        "listening on {bound}"
    );
    serve(listener, config, shutdown).await
}

/// Resolves on the first SIGTERM or SIGINT (Ctrl-C). Handlers are installed now, so a
/// signal arriving before the future is polled is not lost.
pub fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        info!(signal = name, "shutdown signal received");
    })
}
