//! The open loop keeps its schedule against a fast server, and its
//! coordinated-omission correction shows a stall that the service time hides.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::TestServer;
use axum::Router;
use axum::routing::post;
use scaleproof_load::{LoadConfig, LoadMode, Mode, Rate, Stop, run};
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

/// Stalls every request that arrives between 0.5 s and 1.5 s after the first one
/// until 1.5 s, and counts the requests that arrived during that window.
fn stall_window_router(arrived_in_stall: Arc<AtomicU64>) -> Router {
    let first: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    Router::new().route(
        "/predict",
        post(move || {
            let first = Arc::clone(&first);
            let arrived_in_stall = Arc::clone(&arrived_in_stall);
            async move {
                let now = Instant::now();
                let first = *first.lock().expect("first arrival").get_or_insert(now);
                let (from, until) = (
                    first + Duration::from_millis(500),
                    first + Duration::from_millis(1500),
                );
                if (from..until).contains(&now) {
                    arrived_in_stall.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep_until(until).await;
                }
                "ok"
            }
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_sending_on_schedule_while_the_service_stalls() {
    let arrived_in_stall = Arc::new(AtomicU64::new(0));
    let server = TestServer::start(stall_window_router(Arc::clone(&arrived_in_stall))).await;
    let config = LoadConfig::open(
        Rate::constant(200.0),
        Stop::Duration(Duration::from_secs(2)),
    );

    let result = run(&config, &server.targets(), &CancellationToken::new())
        .await
        .unwrap();

    // An open loop does not wait for answers: about 200 requests arrive during
    // the one-second stall, each on a connection of its own.
    let arrived = arrived_in_stall.load(Ordering::SeqCst);
    assert!(
        (180..=220).contains(&arrived),
        "{arrived} arrived in the stall: {result}"
    );
    assert_eq!(result.sent, 400);
    assert_eq!(result.dropped, 0, "{result}");
    // Starting ~200 workers and connections on a busy 2-core machine may make
    // a few of them late; far fewer than a stalled closed loop would.
    assert!(result.late < 20, "{result}");
    let service = result.service_time_ms.unwrap();
    assert!(
        service.p90_ms >= 300.0,
        "the stall is service time here: {result}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_cannot_start_in_time_are_dropped_and_reported() {
    let slow = Router::new().route(
        "/predict",
        post(|| async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            "ok"
        }),
    );
    let server = TestServer::start(slow).await;
    // One request in flight at a time can serve about 3 of the 50 per second.
    let config = LoadConfig {
        mode: Mode::Open {
            rate: Rate::constant(50.0),
            stop: Stop::Requests(50),
            max_in_flight: 1,
        },
        timeout: Duration::from_millis(700),
        ..LoadConfig::default()
    };

    let result = run(&config, &server.targets(), &CancellationToken::new())
        .await
        .unwrap();

    assert!(result.dropped > 0, "{result}");
    assert_eq!(
        result.sent + result.dropped,
        50,
        "every request is accounted for once"
    );
    assert_eq!(result.errors.total(), 0, "{result}");
    let shortfall = result.shortfall.as_ref().expect("the engine fell behind");
    assert_eq!(shortfall.dropped, result.dropped);
    assert_eq!(shortfall.missing, result.dropped);
    assert!(result.to_string().contains("Delivered as promised: NO"));
}
