//! Several endpoints: requests are spread over all of them, and none is lost or
//! counted twice (what the servers received is exactly what the engine sent).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::support::TestServer;
use axum::Router;
use axum::routing::post;
use scaleproof_load::{LoadConfig, LoadResult, Rate, Stop, Targets, run};
use tokio_util::sync::CancellationToken;

/// A server that counts the requests it answered; each takes a few milliseconds,
/// so several are in flight at once.
async fn counting_server() -> (TestServer, Arc<AtomicU64>) {
    let answered = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&answered);
    let router = Router::new().route(
        "/predict",
        post(move || {
            let counter = Arc::clone(&counter);
            async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                counter.fetch_add(1, Ordering::SeqCst);
                "ok"
            }
        }),
    );
    (TestServer::start(router).await, answered)
}

/// Runs `config` against two endpoints.
async fn run_against_two(config: LoadConfig) -> (LoadResult, u64, u64) {
    let (a, a_answered) = counting_server().await;
    let (b, b_answered) = counting_server().await;
    let targets = Targets::new(vec![a.endpoint(), b.endpoint()]).expect("two endpoints");
    let result = run(&config, &targets, &CancellationToken::new())
        .await
        .expect("a valid run");
    (
        result,
        a_answered.load(Ordering::SeqCst),
        b_answered.load(Ordering::SeqCst),
    )
}

fn assert_counted_once(result: &LoadResult, a: u64, b: u64) {
    assert_eq!(result.errors.total(), 0, "{result}");
    assert_eq!(a + b, result.sent, "servers answered {a} + {b}: {result}");
    assert_eq!(result.sent, result.ok);
    assert!(a > 0 && b > 0, "both endpoints served: {a} and {b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_spreads_over_every_endpoint() {
    let config = LoadConfig::closed(4, Stop::Duration(Duration::from_millis(1000)));
    let (result, a, b) = run_against_two(config).await;
    assert_counted_once(&result, a, b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_spreads_over_every_endpoint() {
    let config = LoadConfig::open(
        Rate::constant(300.0),
        Stop::Duration(Duration::from_millis(1000)),
    );
    let (result, a, b) = run_against_two(config).await;
    assert_counted_once(&result, a, b);
    assert_eq!(result.sent, 300);
}
