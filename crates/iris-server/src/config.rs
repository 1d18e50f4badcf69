//! Command-line flags (with environment fallbacks) and the server settings built from them.

use std::net::IpAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::memory::MAX_PER_REQUEST_MIB;

/// Largest accepted `--cpu-cost-ms`: one minute of CPU per request is already absurd.
const MAX_CPU_COST_MS: f64 = 60_000.0;

/// How the server behaves, independent of where it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// CPU time burned per prediction request (see [`crate::cost`]); zero disables it.
    pub cpu_cost: Duration,
    /// Longest time to keep serving after a shutdown signal before giving up on
    /// in-flight requests.
    pub drain_timeout: Duration,
    /// How many requests may run the simulated-cost model at the same time.
    pub model_threads: usize,
    /// Bytes held per in-flight prediction request (see [`crate::memory`]); zero
    /// disables it.
    pub memory_cost_bytes: u64,
    /// How long a request keeps its memory cost before answering, without using CPU.
    pub memory_hold: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cpu_cost: Duration::ZERO,
            drain_timeout: Duration::from_secs(20),
            model_threads: 1,
            memory_cost_bytes: 0,
            memory_hold: Duration::ZERO,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Iris classifier HTTP service: a depth-3 decision tree trained at start-up on the
/// Iris data set, served over a FastAPI-compatible JSON API.
///
/// Routes: GET / , GET /health (liveness), GET /ready (readiness), POST /predict,
/// POST /predict/batch, GET /model/info, GET /metrics (Prometheus).
/// On SIGTERM or Ctrl-C, /ready turns 503 at once, in-flight requests finish (up to
/// --drain-timeout-s) and the process exits 0. Log verbosity follows RUST_LOG
/// (default: info).
#[derive(Debug, Clone, Parser)]
// A repeated flag overrides the earlier one, so a container image whose entrypoint sets
// `--host 0.0.0.0` still accepts a manifest's `args: ["--host", ...]`.
#[command(
    name = "iris-server",
    version,
    about,
    long_about,
    args_override_self = true
)]
pub struct Cli {
    /// Address to listen on. The loopback default keeps a developer's server private;
    /// containers pass `--host 0.0.0.0` to be reachable from outside.
    #[arg(long, env = "IRIS_HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,

    /// TCP port to listen on; 0 picks a free port. The bound address is logged as
    /// `listening on HOST:PORT`.
    #[arg(long, env = "IRIS_PORT", default_value_t = 8000)]
    pub port: u16,

    /// Simulated model cost: milliseconds of CPU time (of the thread doing the work, not
    /// wall time, not sleep) burned once per /predict or /predict/batch request, so that
    /// a CPU-limited pod feels load at a modest request rate. 0 disables it.
    #[arg(long, env = "IRIS_CPU_COST_MS", default_value_t = 0.0, value_parser = parse_cpu_cost_ms, allow_negative_numbers = true)]
    pub cpu_cost_ms: f64,

    /// Simulated model memory: MiB each /predict or /predict/batch request holds while
    /// it is in flight (allocated and written, so it counts in the working set the
    /// HPA's memory metric reads), freed when the request ends. 0 disables it. At most
    /// 1024 per request; all requests together hold at most 4 GiB (beyond that a
    /// request holds nothing and a warning is logged).
    #[arg(long, env = "IRIS_MEMORY_COST_MIB", default_value_t = 0.0, value_parser = parse_memory_cost_mib, allow_negative_numbers = true)]
    pub memory_cost_mib: f64,

    /// Milliseconds a prediction request keeps its --memory-cost-mib before answering,
    /// sleeping (no CPU), like a request waiting on a downstream call: a light CPU
    /// load then holds memory. Only matters when --memory-cost-mib is above 0.
    #[arg(long, env = "IRIS_MEMORY_HOLD_MS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub memory_hold_ms: u64,

    /// Seconds to keep serving in-flight requests after SIGTERM/Ctrl-C before exiting
    /// anyway. Keep it below the pod's terminationGracePeriodSeconds.
    #[arg(long, env = "IRIS_DRAIN_TIMEOUT_S", default_value_t = 20)]
    pub drain_timeout_s: u64,

    /// Log format: `human` for terminals, `json` for log collectors.
    #[arg(long, env = "IRIS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    /// Threads of the async runtime that handle connections. 1 (the default) runs a
    /// single-threaded runtime: under a fractional CPU limit such as 200m there is no
    /// second core to use (measured: as fast as 2 workers, or slightly faster). Raise it
    /// for servers with whole cores to spare.
    #[arg(long, env = "IRIS_WORKER_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub worker_threads: u16,

    /// How many requests may burn the simulated model cost at once (others wait their
    /// turn), like the worker count of a synchronous Python server. Only matters when
    /// --cpu-cost-ms is above 0.
    #[arg(long, env = "IRIS_MODEL_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub model_threads: u16,
}

impl Cli {
    /// The server settings these flags describe.
    pub fn config(&self) -> Config {
        Config {
            cpu_cost: Duration::from_secs_f64(self.cpu_cost_ms / 1000.0),
            drain_timeout: Duration::from_secs(self.drain_timeout_s),
            model_threads: usize::from(self.model_threads),
            memory_cost_bytes: (self.memory_cost_mib * 1024.0 * 1024.0).round() as u64,
            memory_hold: Duration::from_millis(self.memory_hold_ms),
        }
    }
}

fn parse_cpu_cost_ms(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of milliseconds"))?;
    if !(0.0..=MAX_CPU_COST_MS).contains(&value) {
        return Err(format!(
            "{text} is out of range: give 0 to {MAX_CPU_COST_MS} milliseconds"
        ));
    }
    Ok(value)
}

fn parse_memory_cost_mib(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of MiB"))?;
    if !(0.0..=MAX_PER_REQUEST_MIB).contains(&value) {
        return Err(format!(
            "{text} is out of range: give 0 to {MAX_PER_REQUEST_MIB} MiB per request"
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_loopback_port_8000_and_no_cost() {
        let cli = Cli::try_parse_from(["iris-server"]).unwrap();
        assert_eq!(cli.host.to_string(), "127.0.0.1");
        assert_eq!(cli.port, 8000);
        assert_eq!(cli.config(), Config::default());
        assert_eq!(cli.log_format, LogFormat::Human);
        assert_eq!(cli.worker_threads, 1);
    }

    #[test]
    fn flags_set_the_config() {
        let cli = Cli::try_parse_from([
            "iris-server",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--cpu-cost-ms",
            "2.5",
            "--drain-timeout-s",
            "3",
            "--log-format",
            "json",
            "--model-threads",
            "2",
        ])
        .unwrap();
        assert_eq!(cli.port, 0);
        assert_eq!(cli.log_format, LogFormat::Json);
        let config = cli.config();
        assert_eq!(config.cpu_cost, Duration::from_micros(2500));
        assert_eq!(config.drain_timeout, Duration::from_secs(3));
        assert_eq!(config.model_threads, 2);
    }

    #[test]
    fn bad_cost_values_are_refused_with_a_reason() {
        for bad in ["-1", "NaN", "inf", "abc", "1e9"] {
            let err = Cli::try_parse_from(["iris-server", "--cpu-cost-ms", bad]).unwrap_err();
            assert!(err.to_string().contains("cpu-cost-ms"), "{bad}: {err}");
        }
    }

    #[test]
    fn memory_flags_set_the_config() {
        let cli = Cli::try_parse_from([
            "iris-server",
            "--memory-cost-mib",
            "1.5",
            "--memory-hold-ms",
            "250",
        ])
        .unwrap();
        let config = cli.config();
        assert_eq!(config.memory_cost_bytes, 1_572_864);
        assert_eq!(config.memory_hold, Duration::from_millis(250));
    }

    #[test]
    fn bad_memory_values_are_refused_with_a_reason() {
        for bad in ["-1", "NaN", "inf", "abc", "1025"] {
            let err = Cli::try_parse_from(["iris-server", "--memory-cost-mib", bad]).unwrap_err();
            let text = err.to_string();
            assert!(text.contains("memory-cost-mib"), "{bad}: {text}");
        }
        let err = Cli::try_parse_from(["iris-server", "--memory-cost-mib", "4096"]).unwrap_err();
        assert!(err.to_string().contains("0 to 1024 MiB"), "{err}");
        assert!(Cli::try_parse_from(["iris-server", "--memory-hold-ms", "60001"]).is_err());
    }

    #[test]
    fn a_repeated_flag_overrides_the_earlier_one() {
        let cli = Cli::try_parse_from([
            "iris-server",
            "--host",
            "0.0.0.0",
            "--host",
            "127.0.0.2",
            "--port",
            "8000",
        ])
        .unwrap();
        assert_eq!(cli.host.to_string(), "127.0.0.2");
    }

    #[test]
    fn zero_threads_are_refused() {
        assert!(Cli::try_parse_from(["iris-server", "--worker-threads", "0"]).is_err());
        assert!(Cli::try_parse_from(["iris-server", "--model-threads", "0"]).is_err());
    }
}
