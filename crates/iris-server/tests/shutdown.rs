//! Graceful shutdown: of the real binary on SIGTERM, and the drain timeout in-process.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{TestServer, client, metric_value, setosa};
use iris_server::Config;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Kills the child on drop unless it already exited, so a failing test leaves no process.
struct ChildGuard(Child);

impl ChildGuard {
    /// Waits up to `limit` for the child to exit on its own.
    fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts the binary on an ephemeral loopback port and returns it with its address, read
/// from the `listening on` log line.
fn spawn_server(args: &[&str]) -> (ChildGuard, SocketAddr) {
    let mut child = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_iris-server"))
            .args(["--host", "127.0.0.1", "--port", "0", "--log-format", "json"])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn iris-server"),
    );
    let stdout = child.0.stdout.take().expect("piped stdout");
    let (lines, received) = mpsc::channel();
    // Keeps draining the pipe (so the server never writes into a closed one) and ends
    // by itself when the child's stdout closes.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let line = received
            .recv_timeout(remaining)
            .expect("a `listening on` line within 20 s");
        if let Some(rest) = line.split("listening on ").nth(1) {
            let address: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                .collect();
            return (
                child,
                address.parse().expect("socket address in the log line"),
            );
        }
    }
}

async fn wait_for_status(url: &str, wanted: u16, limit: Duration) {
    let client = client();
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(response) = client.get(url).send().await
            && response.status() == wanted
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} did not answer {wanted} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until at least `count` requests are in flight, as `/metrics` reports.
async fn wait_for_in_flight(base: &str, count: f64, limit: Duration) {
    let client = client();
    let deadline = Instant::now() + limit;
    loop {
        let text = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("GET /metrics answered")
            .text()
            .await
            .expect("metrics text");
        if metric_value(&text, "iris_http_requests_in_flight").unwrap_or(0.0) >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never saw {count} requests in flight"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn sigterm_turns_ready_503_finishes_the_in_flight_request_and_exits_0() {
    // One request burns a full second of CPU, so it is surely in flight at SIGTERM.
    let (mut server, address) = spawn_server(&["--cpu-cost-ms", "1000", "--drain-timeout-s", "20"]);
    let base = format!("http://{address}");
    wait_for_status(&format!("{base}/ready"), 200, Duration::from_secs(20)).await;

    let slow = tokio::spawn({
        let url = format!("{base}/predict");
        async move { client().post(url).json(&setosa()).send().await }
    });
    // The slow request plus the metrics scrape itself.
    wait_for_in_flight(&base, 2.0, Duration::from_secs(10)).await;

    kill(Pid::from_raw(server.0.id() as i32), Signal::SIGTERM).expect("send SIGTERM");
    wait_for_status(&format!("{base}/ready"), 503, Duration::from_secs(5)).await;
    assert!(
        !slow.is_finished(),
        "the slow request ended before /ready turned 503"
    );

    let response = tokio::time::timeout(Duration::from_secs(60), slow)
        .await
        .expect("slow request finished within 60 s")
        .expect("request task did not panic")
        .expect("slow request got an answer");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["species"], "setosa");

    let status = server
        .wait_exit(Duration::from_secs(30))
        .expect("server exited within 30 s of draining");
    assert_eq!(status.code(), Some(0), "{status}");
}

#[tokio::test]
async fn idle_server_exits_0_promptly_on_sigterm() {
    let (mut server, address) = spawn_server(&[]);
    wait_for_status(
        &format!("http://{address}/ready"),
        200,
        Duration::from_secs(20),
    )
    .await;
    kill(Pid::from_raw(server.0.id() as i32), Signal::SIGTERM).expect("send SIGTERM");
    // Far below the 20 s drain timeout: an idle server has nothing to wait for.
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("idle server exited within 10 s");
    assert_eq!(status.code(), Some(0), "{status}");
}

#[tokio::test]
async fn drain_gives_up_on_a_request_that_outlasts_the_timeout() {
    let mut server = TestServer::start(Config {
        cpu_cost: Duration::from_millis(1500),
        drain_timeout: Duration::from_millis(200),
        ..Config::default()
    })
    .await;
    let slow = tokio::spawn({
        let url = server.url("/predict");
        async move { client().post(url).json(&setosa()).send().await }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.state.metrics().in_flight() == 0 {
        assert!(Instant::now() < deadline, "request never got in flight");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.begin_shutdown();
    server
        .shutdown_within(Duration::from_secs(10))
        .await
        .expect("serve returns Ok after abandoning the request");
    assert!(!slow.is_finished(), "serve waited for the slow request");
    slow.abort();
}
