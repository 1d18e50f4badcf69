//! Readiness probing, as the kubelet does it: an HTTP GET every period, a replica is
//! ready after one success and unready after `failure_threshold` failures in a row.
//!
//! Each replica gets its own prober task, so a replica that answers slowly (it is
//! CPU-throttled, which is the point of the exercise) never delays the controller loop.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Probe settings, from the container's `readinessProbe`.
#[derive(Debug, Clone)]
pub struct ProbeSpec {
    pub path: String,
    pub period: Duration,
    pub timeout: Duration,
    pub failure_threshold: u32,
    /// `initialDelaySeconds`.
    pub initial_delay: Duration,
    /// Probe on the period from the start, after the initial delay and a random part
    /// of a period (the kubelet's probe worker); otherwise every 100 ms until the
    /// first success (a local process is up in milliseconds).
    pub on_period: bool,
}

/// A running prober; stops when dropped.
#[derive(Debug)]
pub struct Prober {
    ready: watch::Receiver<bool>,
    failed: watch::Receiver<Failed>,
    task: JoinHandle<()>,
}

/// The failed probes so far: how many, and the last one's output in the kubelet's
/// words (what its `Unhealthy` event says after "Readiness probe failed: ").
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Failed {
    pub count: u64,
    pub output: String,
}

impl Prober {
    pub fn start(addr: SocketAddr, spec: ProbeSpec) -> Self {
        let (tx, rx) = watch::channel(false);
        let (failed_tx, failed_rx) = watch::channel(Failed::default());
        let task = tokio::spawn(probe_loop(addr, spec, tx, failed_tx));
        Prober {
            ready: rx,
            failed: failed_rx,
            task,
        }
    }

    /// The readiness the probes established so far.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// The failed probes so far.
    pub fn failed(&self) -> Failed {
        self.failed.borrow().clone()
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One probe's outcome: `Ok` for a success, else the kubelet's output for it
/// (kubernetes `pkg/probe/http/http.go`: a status from 200 to 399 is a success, any
/// other is "HTTP probe failed with statuscode: N"; a request that fails is the Go
/// client's error, `Get "URL": ...`).
async fn probe_once(client: &reqwest::Client, url: &str) -> Result<(), String> {
    match client.get(url).send().await {
        Ok(r) if (200..400).contains(&r.status().as_u16()) => Ok(()),
        Ok(r) => Err(format!(
            "HTTP probe failed with statuscode: {}",
            r.status().as_u16()
        )),
        Err(e) if e.is_timeout() => Err(format!(
            "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
        Err(e) => {
            // reqwest's chain ends with the OS error ("Connection refused (os error 111)").
            let mut cause: &dyn std::error::Error = &e;
            while let Some(next) = cause.source() {
                cause = next;
            }
            Err(format!("Get \"{url}\": {cause}"))
        }
    }
}

async fn probe_loop(
    addr: SocketAddr,
    spec: ProbeSpec,
    ready: watch::Sender<bool>,
    failed: watch::Sender<Failed>,
) {
    // A fresh connection per probe, like the kubelet: a keep-alive connection would
    // hide a server that stopped accepting.
    let Ok(client) = reqwest::Client::builder()
        .timeout(spec.timeout)
        .pool_max_idle_per_host(0)
        // A proxy from HTTP_PROXY would intercept even 127.0.0.1 and keep every
        // replica unready.
        .no_proxy()
        .build()
    else {
        tracing::error!("cannot build the readiness probe client; replica {addr} stays unready");
        return;
    };
    let url = format!("http://{addr}{}", spec.path);
    let mut failures = 0u32;
    let mut ever_ready = false;
    if spec.on_period {
        // The probe worker's ticker starts at a random point of its period.
        let jitter = spec.period.mul_f64(pseudo_random_fraction());
        tokio::time::sleep(spec.initial_delay + jitter).await;
    } else {
        tokio::time::sleep(spec.initial_delay).await;
    }
    loop {
        let outcome = probe_once(&client, &url).await;
        let ok = outcome.is_ok();
        if let Err(output) = outcome {
            failed.send_modify(|f| {
                f.count += 1;
                f.output = output;
            });
        }
        if ok {
            failures = 0;
            ever_ready = true;
            ready.send_replace(true);
        } else {
            failures += 1;
            if failures >= spec.failure_threshold {
                ready.send_replace(false);
            }
        }
        // Until the first success, probe quickly: a local process is up in
        // milliseconds, and waiting a whole period would only delay the scenario.
        // (The kubelet waits the period; on kind, image start dominates anyway.)
        let pause = if ever_ready || spec.on_period {
            spec.period
        } else {
            Duration::from_millis(100).min(spec.period)
        };
        if ready.is_closed() {
            return;
        }
        tokio::time::sleep(pause).await;
    }
}

/// A fraction in [0, 1) from the clock: enough spread for probe start times, no
/// crate needed for it.
fn pseudo_random_fraction() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1_000_000) / 1_000_000.0
}
