//! Helpers shared by the integration tests: an in-process server that is always stopped,
//! and small HTTP conveniences.

// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use iris_server::{AppState, Config, serve_with_state};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server running on 127.0.0.1 inside the test process; aborted on drop if the test
/// did not shut it down.
pub struct TestServer {
    pub address: SocketAddr,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    /// Starts a server with `config` on an ephemeral port and waits until it is ready.
    pub async fn start(config: Config) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let address = listener.local_addr().expect("local address");
        let state = AppState::new(&config);
        let (shutdown, signal) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_with_state(
            listener,
            state.clone(),
            config.drain_timeout,
            async move {
                let _ = signal.await;
            },
        ));
        let server = TestServer {
            address,
            state,
            shutdown: Some(shutdown),
            task: Some(task),
        };
        server.wait_ready().await;
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    async fn wait_ready(&self) {
        let client = client();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(response) = client.get(self.url("/ready")).send().await
                && response.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "server did not become ready in 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends the shutdown signal; the drain proceeds in the background.
    pub fn begin_shutdown(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }

    /// Signals shutdown and waits (at most `limit`) for `serve` to return.
    pub async fn shutdown_within(mut self, limit: Duration) -> anyhow::Result<()> {
        self.begin_shutdown();
        let task = self.task.take().expect("server task present");
        tokio::time::timeout(limit, task)
            .await
            .expect("serve returned within the limit")
            .expect("serve task did not panic")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// An HTTP client with a timeout, so a hung server fails the test instead of hanging it.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build reqwest client")
}

/// The measurements of the first flower in the data set (a setosa).
pub fn setosa() -> Value {
    json!({"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2})
}

/// Reads one sample value from Prometheus text: the line starting with `series ` exactly.
pub fn metric_value(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        line.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
    })
}
