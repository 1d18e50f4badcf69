//! Staged runs (k6's `stages`): the rate or the concurrency follows the stages,
//! in one run with one per-second series, and each stage is accounted for.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::support::TestServer;
use axum::Router;
use axum::routing::post;
use scaleproof_load::{LoadConfig, LoadMode, Ramped, Stage, Stages, run};
use tokio_util::sync::CancellationToken;

fn stage(ms: u64, target: f64) -> Stage {
    Stage {
        duration: Duration::from_millis(ms),
        target,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_ramps_up_holds_and_drops_in_one_run() {
    let server = TestServer::start(Router::new().route("/predict", post(|| async { "ok" }))).await;
    // 0 -> 100 req/s over 1 s (50), 100 for 1 s (100), 100 -> 10 over 1 s (55).
    let config = LoadConfig::staged(Stages {
        ramped: Ramped::Rate,
        start: 0.0,
        stages: vec![stage(1000, 100.0), stage(1000, 100.0), stage(1000, 10.0)],
    });
    let result = run(&config, &server.targets(), &CancellationToken::new())
        .await
        .expect("a valid run");

    assert_eq!(result.mode, LoadMode::Open);
    assert_eq!(result.promised.requests, Some(205), "{result}");
    assert_eq!(result.sent, 205, "{result}");
    assert!(result.delivered_as_promised(), "{result}");
    let per_stage: Vec<(Option<u64>, u64)> =
        result.stages.iter().map(|s| (s.promised, s.sent)).collect();
    assert_eq!(
        per_stage,
        vec![(Some(50), 50), (Some(100), 100), (Some(55), 55)],
        "{result}"
    );
    assert_eq!((result.stages[2].from, result.stages[2].to), (100.0, 10.0));
    // One per-second series across the stages: the middle second is the busiest.
    let counts: Vec<u64> = result.timeline.iter().map(|s| s.requests).collect();
    assert!(counts.len() >= 3, "{counts:?}");
    assert!(counts[1] > counts[0] && counts[1] > counts[2], "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_follows_the_stages() {
    // A slow server that remembers the most requests it held at once, per phase.
    let in_flight = Arc::new(AtomicU64::new(0));
    let peak = Arc::new(AtomicU64::new(0));
    let router = {
        let (in_flight, peak) = (Arc::clone(&in_flight), Arc::clone(&peak));
        Router::new().route(
            "/predict",
            post(move || {
                let (in_flight, peak) = (Arc::clone(&in_flight), Arc::clone(&peak));
                async move {
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    "ok"
                }
            }),
        )
    };
    let server = TestServer::start(router).await;
    // 4 workers at once for 1 s, then 1 worker for 1 s.
    let config = LoadConfig::staged(Stages {
        ramped: Ramped::Concurrency,
        start: 4.0,
        stages: vec![stage(1000, 4.0), stage(100, 1.0), stage(900, 1.0)],
    });
    let targets = server.targets();
    let running =
        tokio::spawn(async move { run(&config, &targets, &CancellationToken::new()).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let peak_early = peak.load(Ordering::SeqCst);
    // From 1.2 s on only the last stage's worker may send.
    tokio::time::sleep(Duration::from_millis(700)).await;
    peak.store(0, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let peak_late = peak.load(Ordering::SeqCst);
    let result = running.await.expect("load task").expect("a valid run");

    assert_eq!(result.mode, LoadMode::Closed);
    assert_eq!(peak_early, 4, "four workers in the first stage");
    assert_eq!(peak_late, 1, "one worker in the last stage");
    assert_eq!(result.errors.total(), 0, "{result}");
    assert_eq!(result.stages.len(), 3);
    // ~50 req/s per worker at 20 ms each: the first stage sends about four times
    // what the last one does.
    assert!(
        result.stages[0].sent > 2 * result.stages[2].sent,
        "{:?}",
        result.stages
    );
    assert!(result.delivered_as_promised(), "{result}");
}
