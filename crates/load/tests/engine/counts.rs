//! The engine counts exactly: every request once, by status, with the default
//! request being the Iris sample POSTed to /predict.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::support::TestServer;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use scaleproof_load::{IRIS_SAMPLE, LoadConfig, LoadMode, Stop, run};
use tokio_util::sync::CancellationToken;

/// Answers request n (in arrival order) with 200, 500 or 503 by n % 10:
/// seven 200s, two 500s and one 503 in every ten; 400 for an unexpected body.
fn mixed_status_router(received: Arc<AtomicU64>) -> Router {
    Router::new().route(
        "/predict",
        post(move |body: String| {
            let received = Arc::clone(&received);
            async move {
                if body != IRIS_SAMPLE {
                    return StatusCode::BAD_REQUEST;
                }
                match received.fetch_add(1, Ordering::SeqCst) % 10 {
                    0..=6 => StatusCode::OK,
                    7 | 8 => StatusCode::INTERNAL_SERVER_ERROR,
                    _ => StatusCode::SERVICE_UNAVAILABLE,
                }
            }
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_and_status_codes_are_exact() {
    let received = Arc::new(AtomicU64::new(0));
    let server = TestServer::start(mixed_status_router(Arc::clone(&received))).await;
    let config = LoadConfig::closed(10, Stop::Requests(1000));

    let result = run(&config, &server.targets(), &CancellationToken::new())
        .await
        .unwrap();

    assert_eq!(received.load(Ordering::SeqCst), 1000);
    assert_eq!(result.mode, LoadMode::Closed);
    assert_eq!(result.sent, 1000);
    assert_eq!(result.ok, 700);
    assert_eq!(result.failed, 300);
    let statuses: Vec<(u16, u64)> = result.status_counts.clone().into_iter().collect();
    assert_eq!(statuses, vec![(200, 700), (500, 200), (503, 100)]);
    assert_eq!(result.errors.total(), 0);
    assert!((result.success_rate - 0.7).abs() < 1e-9);
    assert!(result.delivered_as_promised(), "{:?}", result.shortfall);
    assert_eq!(result.promised.requests, Some(1000));
    assert_eq!((result.late, result.dropped), (0, 0));

    let timeline_requests: u64 = result.timeline.iter().map(|s| s.requests).sum();
    let timeline_errors: u64 = result.timeline.iter().map(|s| s.errors).sum();
    assert_eq!((timeline_requests, timeline_errors), (1000, 300));

    let latency = result.latency_ms.expect("responses were timed");
    let service = result.service_time_ms.expect("responses were timed");
    assert_eq!(
        latency, service,
        "closed loop: intended time is the send time"
    );
    assert!(latency.min_ms <= latency.p50_ms && latency.p50_ms <= latency.p99_ms);
    assert!(latency.p99_ms <= latency.p99_9_ms && latency.p99_9_ms <= latency.max_ms);
    assert!(result.throughput_per_s > 0.0 && result.duration_s > 0.0);
}

/// Counts the bodies it receives, by body.
async fn body_counting_server() -> (TestServer, Arc<std::sync::Mutex<Vec<String>>>) {
    let received = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = Arc::clone(&received);
    let router = Router::new().route(
        "/predict",
        post(move |body: String| {
            let log = Arc::clone(&log);
            async move {
                log.lock().expect("body log").push(body);
                StatusCode::OK
            }
        }),
    );
    (TestServer::start(router).await, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_cycle_over_every_endpoint() {
    let (a, a_bodies) = body_counting_server().await;
    let (b, b_bodies) = body_counting_server().await;
    let targets = scaleproof_load::Targets::new(vec![a.endpoint(), b.endpoint()]).unwrap();
    let mut config = LoadConfig::closed(1, Stop::Requests(40));
    config.request.bodies = vec![r#"{"n":1}"#.into(), r#"{"n":2}"#.into()];

    let result = run(&config, &targets, &CancellationToken::new())
        .await
        .unwrap();

    assert_eq!(result.ok, 40);
    for bodies in [a_bodies, b_bodies] {
        let bodies = bodies.lock().unwrap();
        assert_eq!(bodies.len(), 20, "round robin over the endpoints");
        let ones = bodies.iter().filter(|b| *b == r#"{"n":1}"#).count();
        assert_eq!((ones, bodies.len() - ones), (10, 10), "{bodies:?}");
    }
}
