//! `scaleproof load URL`: the command-line face of the engine, in the style of
//! hey and oha; replaces `python load_test.py <URL> <num_requests> <workers>`.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName};
use http::{HeaderValue, Method};
use tokio_util::sync::CancellationToken;

use scaleproof_load::{
    DEFAULT_CONCURRENCY, DEFAULT_MAX_IN_FLIGHT, DEFAULT_PATH, DEFAULT_REQUESTS, Endpoint,
    LoadConfig, LoadResult, Mode, Progress, Rate, RequestSpec, Stop, Targets,
};

/// Exit code for bad input (as clap uses for its own usage errors).
const EXIT_USAGE: u8 = 2;
/// Exit code when no request got any HTTP response: nothing was measured.
const EXIT_NOTHING_MEASURED: u8 = 1;
/// Exit code after a second Ctrl-C (the first one stops the run gracefully).
const EXIT_INTERRUPTED: u8 = 130;

const EXAMPLES: &str = "\
Examples:
  # What `python load_test.py http://127.0.0.1:8000 1000 10` did: 1000 POST /predict
  # with an Iris sample, 10 workers, closed loop
  scaleproof load http://127.0.0.1:8000

  # 2000 requests with 50 workers, result as JSON on stdout
  scaleproof load -n 2000 -c 50 --json http://127.0.0.1:8000

  # Closed loop for 30 seconds, JSON also written to a file
  scaleproof load -z 30s -c 20 --out load.json http://127.0.0.1:8000

  # Open loop: 200 requests per second for 1 minute, latency from the intended send
  # time (coordinated omission corrected)
  scaleproof load -q 200 -z 1m http://127.0.0.1:8000

  # Open loop ramping from 50 to 400 req/s over 2 minutes, then 400 req/s for 1 more
  scaleproof load -q 50 --ramp-to 400 --ramp-over 2m -z 3m http://127.0.0.1:8000

  # Another endpoint and body: GET /health without a body; POST bodies from a file
  scaleproof load -m GET http://127.0.0.1:8000/health
  scaleproof load -D sample.json -H 'X-Trace: on' http://127.0.0.1:8000
  scaleproof load --bodies samples.jsonl http://127.0.0.1:8000

Modes:
  Closed loop (default): -c workers each send the next request when the previous one
  ended. Open loop (-q): requests start at their scheduled times whatever the
  responses do; -c caps requests in flight (default 1000). Requests that start more
  than 10 ms late or cannot start within the timeout are reported as late/dropped.

Durations: 500ms, 10s, 2m, 1h, 1m30s, or a plain number of seconds.

Exit status:
  0  the run completed (failed requests are measurements, see the summary)
  1  no request got any HTTP response (target unreachable: nothing was measured)
  2  bad input (URL, numbers, flags, body file)
  130  interrupted twice with Ctrl-C (the first Ctrl-C stops the run and still
       prints the result)";

/// Send HTTP load to a service and measure throughput, success rate and latency.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct LoadArgs {
    /// Target, e.g. http://127.0.0.1:8000 (requests go to /predict) or
    /// http://127.0.0.1:8000/health (requests go to that path)
    #[arg(value_name = "URL", value_parser = parse_url)]
    pub url: (Endpoint, Option<String>),

    /// Number of requests to send [default: 1000 unless -z is given]
    #[arg(short = 'n', long, value_parser = clap::value_parser!(u64).range(1..), conflicts_with = "duration")]
    pub requests: Option<u64>,

    /// Closed loop: number of workers [default: 10]. Open loop: most requests in
    /// flight at once [default: 1000]
    #[arg(short = 'c', long, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: Option<u32>,

    /// Run for this long instead of a request count (e.g. 10s, 2m)
    #[arg(short = 'z', long, value_parser = parse_positive_duration)]
    pub duration: Option<Duration>,

    /// Open loop: send this many requests per second, whatever the responses do
    #[arg(short = 'q', long, value_name = "PER_S", value_parser = parse_rate)]
    pub rate: Option<f64>,

    /// Open loop: ramp the rate linearly from -q to this many requests per second
    #[arg(long, value_name = "PER_S", value_parser = parse_rate, requires = "rate", requires = "ramp_over")]
    pub ramp_to: Option<f64>,

    /// Length of the ramp (the run lasts this long unless -z or -n is given)
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration, requires = "ramp_to")]
    pub ramp_over: Option<Duration>,

    /// HTTP method [default: POST]
    #[arg(short = 'm', long, value_parser = parse_method)]
    pub method: Option<Method>,

    /// Extra header, "Name: value" (repeatable)
    #[arg(short = 'H', long = "header", value_name = "HEADER", value_parser = parse_header)]
    pub headers: Vec<(HeaderName, HeaderValue)>,

    /// Request body [default: the Iris sample when the method is POST]
    #[arg(short = 'd', long = "body", value_name = "BODY", group = "body_source")]
    pub body: Option<String>,

    /// Read the request body from a file
    #[arg(
        short = 'D',
        long = "body-file",
        value_name = "FILE",
        group = "body_source"
    )]
    pub body_file: Option<PathBuf>,

    /// Cycle through bodies, one JSON document per line of FILE
    #[arg(long, value_name = "FILE", group = "body_source")]
    pub bodies: Option<PathBuf>,

    /// Per-request timeout
    #[arg(short = 't', long, default_value = "10s", value_parser = parse_positive_duration)]
    pub timeout: Duration,

    /// Timeout for opening a connection
    #[arg(long, default_value = "3s", value_parser = parse_positive_duration)]
    pub connect_timeout: Duration,

    /// Close each connection after N requests and open a new one (1 = no keep-alive).
    /// Behind a Kubernetes Service, kube-proxy balances connections, not requests:
    /// reconnecting lets new pods receive traffic [default: keep connections]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub requests_per_connection: Option<u32>,

    /// Print the result as JSON on stdout instead of the summary
    #[arg(long)]
    pub json: bool,

    /// Also write the result as JSON to FILE
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Show no progress while running
    #[arg(long)]
    pub no_progress: bool,

    /// Threads that send requests [default: one per CPU core]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub threads: Option<u32>,
}

/// Runs `scaleproof load`; prints the result and returns the exit status.
pub fn main(args: LoadArgs) -> ExitCode {
    let prepared = match Prepared::from_args(&args) {
        Ok(prepared) => prepared,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        builder.worker_threads(threads as usize);
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let cancel = CancellationToken::new();
        let interrupts = tokio::spawn(stop_on_ctrl_c(cancel.clone()));
        let result = scaleproof_load::run(&prepared.config, &prepared.targets, &cancel).await;
        interrupts.abort();
        result
    });
    match result {
        Ok(result) => report(&result, &args, prepared.out),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The first Ctrl-C stops the run (in-flight requests finish and the result is
/// still printed); a second one exits at once.
async fn stop_on_ctrl_c(cancel: CancellationToken) {
    if tokio::signal::ctrl_c().await.is_err() {
        return;
    }
    eprintln!("stopping: waiting for requests in flight (Ctrl-C again to quit now)");
    cancel.cancel();
    if tokio::signal::ctrl_c().await.is_ok() {
        std::process::exit(i32::from(EXIT_INTERRUPTED));
    }
}

fn report(result: &LoadResult, args: &LoadArgs, out: Option<(PathBuf, File)>) -> ExitCode {
    let json = match serde_json::to_string_pretty(&scaleproof::report::LoadReport::from(result)) {
        Ok(json) => json,
        Err(e) => {
            eprintln!("error: cannot serialize the result: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.json {
        println!("{json}");
    } else {
        println!("{result}");
    }
    if let Some((path, mut file)) = out
        && let Err(e) = file
            .write_all(json.as_bytes())
            .and_then(|()| file.write_all(b"\n"))
    {
        eprintln!("error: cannot write {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    let got_a_response = result.status_counts.values().any(|count| *count > 0);
    if got_a_response {
        ExitCode::SUCCESS
    } else {
        eprintln!("error: no request got an HTTP response; is the target up?");
        ExitCode::from(EXIT_NOTHING_MEASURED)
    }
}

/// Everything checked and loaded before the run starts, so bad input never
/// costs a run.
struct Prepared {
    config: LoadConfig,
    targets: Targets,
    out: Option<(PathBuf, File)>,
}

impl Prepared {
    fn from_args(args: &LoadArgs) -> anyhow::Result<Self> {
        let (endpoint, url_path) = args.url.clone();
        let mode = mode(args)?;
        let request = request(args, url_path)?;
        let config = LoadConfig {
            mode,
            request,
            timeout: args.timeout,
            connect_timeout: args.connect_timeout,
            requests_per_connection: args.requests_per_connection,
            progress: if args.no_progress {
                Progress::Quiet
            } else {
                Progress::Auto
            },
            ..LoadConfig::default()
        };
        config.validate()?;
        // Created now so an unwritable path fails before the run, not after it.
        let out = match &args.out {
            Some(path) => Some((
                path.clone(),
                File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
            )),
            None => None,
        };
        Ok(Self {
            config,
            targets: Targets::single(endpoint),
            out,
        })
    }
}

fn mode(args: &LoadArgs) -> anyhow::Result<Mode> {
    let stop = match (args.requests, args.duration) {
        (Some(n), None) => Stop::Requests(n),
        (None, Some(d)) => Stop::Duration(d),
        (None, None) => match args.ramp_over {
            Some(over) if args.rate.is_some() => Stop::Duration(over),
            _ => Stop::Requests(DEFAULT_REQUESTS),
        },
        (Some(_), Some(_)) => bail!("give either -n (requests) or -z (duration), not both"),
    };
    Ok(match args.rate {
        None => Mode::Closed {
            concurrency: args.concurrency.unwrap_or(DEFAULT_CONCURRENCY),
            stop,
        },
        Some(rate) => Mode::Open {
            rate: match (args.ramp_to, args.ramp_over) {
                (Some(to), Some(over)) => Rate::ramp(rate, to, over),
                _ => Rate::constant(rate),
            },
            stop,
            max_in_flight: args.concurrency.unwrap_or(DEFAULT_MAX_IN_FLIGHT),
        },
    })
}

fn request(args: &LoadArgs, url_path: Option<String>) -> anyhow::Result<RequestSpec> {
    let mut spec = RequestSpec::iris_predict();
    spec.path = url_path.unwrap_or_else(|| DEFAULT_PATH.to_owned());
    if let Some(method) = &args.method {
        spec.method = method.clone();
    }
    for (name, value) in &args.headers {
        spec.headers.insert(name.clone(), value.clone());
    }
    let explicit_bodies = if let Some(body) = &args.body {
        Some(vec![Bytes::from(body.clone())])
    } else if let Some(path) = &args.body_file {
        Some(vec![Bytes::from(read_file(path)?)])
    } else if let Some(path) = &args.bodies {
        Some(json_lines(path)?)
    } else {
        None
    };
    spec.bodies = match explicit_bodies {
        Some(bodies) => bodies,
        // The Iris sample only makes sense for the default POST.
        None if spec.method == Method::POST => spec.bodies,
        None => Vec::new(),
    };
    if is_json(&spec) {
        for (index, body) in spec.bodies.iter().enumerate() {
            serde_json::from_slice::<serde::de::IgnoredAny>(body).with_context(|| {
                format!(
                    "body {} is not valid JSON (set another Content-Type with -H to send it anyway)",
                    index + 1
                )
            })?;
        }
    }
    Ok(spec)
}

fn is_json(spec: &RequestSpec) -> bool {
    spec.headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"))
}

fn read_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read body file {}", path.display()))
}

fn json_lines(path: &Path) -> anyhow::Result<Vec<Bytes>> {
    let text = String::from_utf8(read_file(path)?)
        .with_context(|| format!("{} is not UTF-8 text", path.display()))?;
    let bodies: Vec<Bytes> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| Bytes::from(line.to_owned()))
        .collect();
    if bodies.is_empty() {
        bail!(
            "{} has no bodies (one JSON document per line)",
            path.display()
        );
    }
    Ok(bodies)
}

fn parse_url(url: &str) -> Result<(Endpoint, Option<String>), String> {
    Endpoint::parse_with_path(url).map_err(|e| e.to_string())
}

fn parse_method(method: &str) -> Result<Method, String> {
    Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("{method:?} is not an HTTP method"))
}

fn parse_header(header: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = header
        .split_once(':')
        .ok_or_else(|| format!("{header:?} is not \"Name: value\""))?;
    let name = HeaderName::try_from(name.trim())
        .map_err(|e| format!("header name {:?}: {e}", name.trim()))?;
    let value = HeaderValue::try_from(value.trim())
        .map_err(|e| format!("header value {:?}: {e}", value.trim()))?;
    Ok((name, value))
}

fn parse_rate(rate: &str) -> Result<f64, String> {
    match rate.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "{rate:?} is not a positive number of requests per second"
        )),
    }
}

fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err(format!("{text:?} must be longer than zero"));
    }
    Ok(duration)
}

/// Parses `500ms`, `10s`, `2m`, `1h`, `1m30s`, `1.5s` or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration (examples: 500ms, 10s, 2m, 1m30s)");
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(bad());
    }
    if let Ok(seconds) = trimmed.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).map_err(|_| bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = trimmed;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (number, after) = rest.split_at(number_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let value: f64 = number.parse().map_err(|_| bad())?;
        let seconds_per_unit = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += Duration::try_from_secs_f64(value * seconds_per_unit).map_err(|_| bad())?;
        rest = after;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_humantime() {
        let ok = |text: &str| parse_duration(text).unwrap();
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("10s"), Duration::from_secs(10));
        assert_eq!(ok("2m"), Duration::from_secs(120));
        assert_eq!(ok("1h"), Duration::from_secs(3600));
        assert_eq!(ok("1m30s"), Duration::from_secs(90));
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok("3"), Duration::from_secs(3));
        for bad in ["", "s", "10x", "-1s", "1..5s", "ten seconds", "-3"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should not parse");
        }
        assert!(parse_positive_duration("0s").is_err());
    }

    #[test]
    fn headers_rates_and_methods_are_checked() {
        let (name, value) = parse_header("X-Trace:  on ").unwrap();
        assert_eq!(name.as_str(), "x-trace");
        assert_eq!(value, "on");
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("bad name: x").is_err());
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("-5").is_err());
        assert!(parse_rate("inf").is_err());
        assert_eq!(parse_rate("2.5").unwrap(), 2.5);
        assert_eq!(parse_method("get").unwrap(), Method::GET);
        assert!(parse_method("NOT A METHOD").is_err());
    }
}
