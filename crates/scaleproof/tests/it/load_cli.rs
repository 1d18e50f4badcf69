//! `scaleproof load`: bad input exits 2 with a clear message and no panic; the
//! JSON output is the engine's result; an unreachable target exits 1.

use std::process::{Command, Output};

use crate::support::{TestServer, closed_port};
use axum::Router;
use axum::routing::post;
use serde_json::Value;

fn scaleproof(args: Vec<String>) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scaleproof"))
        .args(args)
        .output()
        .expect("run the scaleproof binary")
}

/// Runs the CLI off the async runtime, so test servers keep serving meanwhile.
async fn scaleproof_async(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || scaleproof(args))
        .await
        .expect("the CLI thread finishes")
}

#[test]
fn bad_input_exits_2_with_a_message() {
    let body_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(body_file.path(), "{not json").unwrap();
    let empty_bodies = tempfile::NamedTempFile::new().unwrap();
    let url = "http://127.0.0.1:9";
    let cases: Vec<Vec<&str>> = vec![
        vec!["load"],
        vec!["load", "not a url"],
        vec!["load", "https://127.0.0.1:9"],
        vec!["load", "-n", "0", url],
        vec!["load", "-n", "-5", url],
        vec!["load", "-n", "many", url],
        vec!["load", "-c", "0", url],
        vec!["load", "-z", "0s", url],
        vec!["load", "-z", "soon", url],
        vec!["load", "-q", "0", url],
        vec!["load", "-q", "-10", url],
        vec!["load", "-t", "0", url],
        vec!["load", "-n", "10", "-z", "1s", url],
        vec!["load", "--ramp-to", "10", url],
        vec!["load", "-q", "10", "--ramp-to", "20", url],
        vec!["load", "-d", "{}", "-D", "body.json", url],
        vec!["load", "-D", "/nonexistent/body.json", url],
        vec!["load", "-D", body_file.path().to_str().unwrap(), url],
        vec!["load", "-d", "{not json", url],
        vec!["load", "--bodies", body_file.path().to_str().unwrap(), url],
        vec![
            "load",
            "--bodies",
            empty_bodies.path().to_str().unwrap(),
            url,
        ],
        vec!["load", "-H", "Content-Length: 3", url],
        vec!["load", "-H", "no colon", url],
        vec!["load", "-m", "NOT A METHOD", url],
        vec!["load", "--out", "/nonexistent/dir/result.json", url],
    ];
    for args in cases {
        let output = scaleproof(args.iter().map(|a| (*a).to_owned()).collect());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("error"),
            "{args:?} gave no message: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    }
}

#[test]
fn help_teaches_with_examples() {
    let output = scaleproof(vec!["load".into(), "--help".into()]);
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8_lossy(&output.stdout);
    for expected in ["Examples:", "-q 200 -z 1m", "Exit status:", "--ramp-to"] {
        assert!(help.contains(expected), "help lacks {expected:?}:\n{help}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_is_the_result_and_out_writes_it_too() {
    let server = TestServer::start(Router::new().route("/predict", post(|| async { "ok" }))).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("result.json");
    let url = server.url();

    let output = scaleproof_async(&[
        "load",
        "-n",
        "50",
        "-c",
        "2",
        "--json",
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
        &url,
    ])
    .await;

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed["sent"], 50);
    assert_eq!(printed["ok"], 50);
    assert_eq!(printed["status_counts"]["200"], 50);
    assert_eq!(printed["success_rate"], 1.0);
    assert_eq!(printed["promised"]["concurrency"], 2);
    assert!(printed["latency_ms"]["p95_ms"].is_number());
    // The published shape (docs/report-schema.md, LoadReport): every field, with
    // units in the names.
    for field in [
        "mode",
        "promised",
        "sent",
        "ok",
        "failed",
        "status_counts",
        "errors",
        "success_rate",
        "throughput_per_s",
        "duration_s",
        "late",
        "dropped",
        "latency_ms",
        "service_time_ms",
        "timeline",
        "shortfall",
    ] {
        assert!(
            printed.get(field).is_some(),
            "missing field {field}: {printed}"
        );
    }
    assert_eq!(printed["mode"], "closed");
    assert_eq!(printed["errors"]["connection_refused"], 0);
    assert!(printed["timeline"][0]["p95_ms"].is_number());
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(written, printed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_names_throughput_percentiles_and_breakdown() {
    let server = TestServer::start(Router::new().route("/predict", post(|| async { "ok" }))).await;
    let url = server.url();

    let output = scaleproof_async(&["load", "-q", "100", "-n", "30", &url]).await;

    assert_eq!(output.status.code(), Some(0));
    let summary = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "Open loop, 100 req/s",
        "Sent 30: ok 30, failed 0, success rate 100.00 %",
        "throughput",
        "p99.9",
        "service time",
        "Status codes: 200: 30",
        "Errors: timeout 0",
        "Delivered as promised: yes",
    ] {
        assert!(
            summary.contains(expected),
            "summary lacks {expected:?}:\n{summary}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_target_is_measured_and_exits_1() {
    let url = format!("http://{}", closed_port().await);

    let output = scaleproof_async(&["load", "-n", "5", "--json", &url]).await;

    assert_eq!(output.status.code(), Some(1));
    let result: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["sent"], 5);
    assert_eq!(result["errors"]["connection_refused"], 5);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no request got an HTTP response"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_file_is_cycled_line_by_line() {
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = std::sync::Arc::clone(&received);
    let router = Router::new().route(
        "/predict",
        post(move |body: String| {
            let log = std::sync::Arc::clone(&log);
            async move {
                log.lock().expect("body log").push(body);
                "ok"
            }
        }),
    );
    let server = TestServer::start(router).await;
    let bodies = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bodies.path(), "{\"n\": 1}\n\n{\"n\": 2}\n").unwrap();
    let url = server.url();

    let output = scaleproof_async(&[
        "load",
        "-n",
        "4",
        "-c",
        "1",
        "--bodies",
        bodies.path().to_str().unwrap(),
        &url,
    ])
    .await;

    assert_eq!(output.status.code(), Some(0));
    let mut seen = received.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        ["{\"n\": 1}", "{\"n\": 1}", "{\"n\": 2}", "{\"n\": 2}"]
    );
}
