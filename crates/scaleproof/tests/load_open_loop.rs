//! The open loop keeps its schedule against a fast server, and its
//! coordinated-omission correction shows a stall that the service time hides.

mod load_support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use load_support::TestServer;
use scaleproof::load::{LoadConfig, LoadMode, Mode, Rate, Stop, run};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

fn fast_router() -> Router {
    Router::new().route("/predict", post(|| async { "ok" }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_its_rate_within_five_percent() {
    let server = TestServer::start(fast_router()).await;
    let config = LoadConfig::open(
        Rate::constant(200.0),
        Stop::Duration(Duration::from_secs(3)),
    );

    let result = run(&config, &server.targets(), &CancellationToken::new())
        .await
        .unwrap();

    assert_eq!(result.mode, LoadMode::Open);
    assert_eq!(result.promised.requests, Some(600));
    assert_eq!(result.sent, 600, "{result}");
    assert_eq!(result.ok, 600);
    assert_eq!(result.dropped, 0);
    let rate = result.throughput_per_s;
    assert!(
        (190.0..=210.0).contains(&rate),
        "rate {rate} req/s, {result}"
    );
    for second in result.timeline.iter().take(3) {
        assert!(
            (180..=220).contains(&second.requests),
            "second {} had {} requests: {result}",
            second.t_s,
            second.requests
        );
    }
}

/// Stalls every request for one second once the 100th request arrives, like a
/// service pausing (GC, a noisy neighbour, a cold replica).
fn stall_once_router() -> Router {
    let received = Arc::new(AtomicU64::new(0));
    let stall_until: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    Router::new().route(
        "/predict",
        post(move || {
            let received = Arc::clone(&received);
            let stall_until = Arc::clone(&stall_until);
            async move {
                let until = {
                    let mut stall = stall_until.lock().expect("stall state");
                    if received.fetch_add(1, Ordering::SeqCst) == 100 {
                        *stall = Some(Instant::now() + Duration::from_secs(1));
                    }
                    *stall
                };
                if let Some(until) = until {
                    tokio::time::sleep_until(until).await;
                }
                "ok"
            }
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinated_omission_correction_shows_a_stall() {
    let server = TestServer::start(stall_once_router()).await;
    // Two connections, like a client with a small pool: during the stall the
    // schedule keeps running while no request can be sent.
    let config = LoadConfig {
        mode: Mode::Open {
            rate: Rate::constant(200.0),
            stop: Stop::Duration(Duration::from_secs(3)),
            max_in_flight: 2,
        },
        ..LoadConfig::default()
    };

    let result = run(&config, &server.targets(), &CancellationToken::new())
        .await
        .unwrap();

    let corrected = result.latency_ms.unwrap();
    let service = result.service_time_ms.unwrap();
    assert_eq!(result.sent, 600, "{result}");
    assert!(
        corrected.p99_ms >= 500.0,
        "corrected p99 hides the stall: {result}"
    );
    assert!(
        service.p99_ms * 5.0 < corrected.p99_ms,
        "service time p99 {} should be far below the corrected p99 {}: {result}",
        service.p99_ms,
        corrected.p99_ms
    );
    assert!(
        service.max_ms >= 900.0,
        "the stalled requests are timed too"
    );
    assert!(
        result.late > 100,
        "requests queued behind the stall are late: {result}"
    );
    let shortfall = result.shortfall.as_ref().expect("the engine fell behind");
    assert_eq!(shortfall.late, result.late);
    assert!(!result.delivered_as_promised());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ramp_delivers_the_integral_of_its_rate() {
    let server = TestServer::start(fast_router()).await;
    // 50 -> 150 req/s over 2 s: 200 requests.
    let config = LoadConfig::open(
        Rate::ramp(50.0, 150.0, Duration::from_secs(2)),
        Stop::Duration(Duration::from_secs(2)),
    );

    let result = run(&config, &server.targets(), &CancellationToken::new())
        .await
        .unwrap();

    assert_eq!(result.promised.requests, Some(200));
    assert_eq!(result.sent, 200);
    assert_eq!(result.promised.ramp_to_per_s, Some(150.0));
    let first = result.timeline[0].requests;
    let second = result.timeline[1].requests;
    assert!(second > first, "the rate rises: {first} then {second}");
}
