//! Failures are measurements, never crashes: timeouts, refused and reset
//! connections are counted by kind.

use std::time::Duration;

use crate::support::{HangUpServer, TestServer, closed_port};
use axum::Router;
use axum::routing::post;
use scaleproof_load::{LoadConfig, Rate, Stop, Targets, run};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalling_server_yields_timeouts() {
    let stalling = Router::new().route(
        "/predict",
        post(|| async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            "too late"
        }),
    );
    let server = TestServer::start(stalling).await;
    let mut config = LoadConfig::closed(4, Stop::Requests(12));
    config.timeout = Duration::from_millis(200);

    let result = run(&config, &server.targets(), &CancellationToken::new())
        .await
        .unwrap();

    assert_eq!(result.sent, 12);
    assert_eq!(result.errors.timeout, 12);
    assert_eq!(result.errors.total(), 12);
    assert_eq!((result.ok, result.failed), (0, 12));
    assert!(result.status_counts.is_empty());
    assert_eq!(
        result.latency_ms, None,
        "requests without a response are not timed"
    );
    assert!(
        result.duration_s < 2.0,
        "timeouts must cut requests short, took {} s",
        result.duration_s
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_yields_connection_refused_in_both_modes() {
    let targets = Targets::parse([format!("http://{}", closed_port().await)]).unwrap();

    let closed = run(
        &LoadConfig::closed(3, Stop::Requests(30)),
        &targets,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(closed.sent, 30);
    assert_eq!(closed.errors.connection_refused, 30);
    assert_eq!(closed.success_rate, 0.0);

    let open = run(
        &LoadConfig::open(Rate::constant(100.0), Stop::Requests(20)),
        &targets,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(open.sent, 20);
    assert_eq!(open.errors.connection_refused, 20);
    assert_eq!(open.dropped, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_hanging_up_yields_connection_resets() {
    let server = HangUpServer::start().await;

    let result = run(
        &LoadConfig::closed(2, Stop::Requests(10)),
        &server.targets(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();

    assert_eq!(result.sent, 10);
    assert_eq!(result.errors.connection_reset, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_still_returns_its_result() {
    let slow = Router::new().route(
        "/predict",
        post(|| async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            "ok"
        }),
    );
    let server = TestServer::start(slow).await;
    let cancel = CancellationToken::new();
    let stopper = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            cancel.cancel();
        })
    };

    let result = run(
        &LoadConfig::closed(2, Stop::Duration(Duration::from_secs(30))),
        &server.targets(),
        &cancel,
    )
    .await
    .unwrap();
    stopper.await.unwrap();

    assert!(result.cancelled);
    assert!(result.duration_s < 5.0);
    assert!(result.sent > 0);
    assert_eq!(
        result.sent, result.ok,
        "requests in flight complete and count"
    );
    assert!(!result.delivered_as_promised());
}
