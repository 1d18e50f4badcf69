//! The simulated model cost really spends CPU time.

mod common;

use std::time::Duration;

use common::{TestServer, client, setosa};
use iris_server::Config;
use nix::time::{ClockId, clock_gettime};
use serde_json::json;

fn process_cpu_time() -> Duration {
    Duration::from(clock_gettime(ClockId::CLOCK_PROCESS_CPUTIME_ID).expect("process CPU clock"))
}

#[tokio::test]
async fn each_prediction_request_burns_at_least_the_configured_cpu_time() {
    let cost = Duration::from_millis(150);
    let server = TestServer::start(Config {
        cpu_cost: cost,
        ..Config::default()
    })
    .await;
    let client = client();

    for (path, body) in [
        ("/predict", setosa()),
        ("/predict/batch", json!({"samples": [setosa(), setosa()]})),
    ] {
        let before = process_cpu_time();
        let response = client
            .post(server.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        let spent = process_cpu_time() - before;
        assert_eq!(response.status(), 200, "{path}");
        assert!(
            spent >= cost,
            "{path}: the process spent only {spent:?} of CPU, cost is {cost:?}"
        );
    }
}
