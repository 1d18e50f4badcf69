//! Every route over real HTTP on 127.0.0.1, including each kind of bad input.

mod common;

use std::time::Duration;

use common::{TestServer, client, metric_value, setosa};
use iris_server::{AppState, Config, router};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt as _;

async fn started() -> TestServer {
    TestServer::start(Config::default()).await
}

async fn get_json(server: &TestServer, path: &str) -> (u16, Value) {
    let response = client()
        .get(server.url(path))
        .send()
        .await
        .expect("GET answered");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

/// POSTs `body` as raw bytes with an optional content type.
async fn post_raw(
    server: &TestServer,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let mut request = client().post(server.url(path)).body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.send().await.expect("POST answered");
    let status = response.status().as_u16();
    let text = response.text().await.expect("text body");
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
    (status, body)
}

async fn post_json(server: &TestServer, path: &str, body: &Value) -> (u16, Value) {
    post_raw(server, path, Some("application/json"), body.to_string()).await
}

#[tokio::test]
async fn root_names_the_service_and_reports_the_model() {
    let server = started().await;
    let (status, body) = get_json(&server, "/").await;
    assert_eq!(status, 200);
    assert_eq!(body["name"], "iris-server");
    assert_eq!(body["message"], "Iris classifier API");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["model_loaded"], true);
}

#[tokio::test]
async fn health_and_ready_answer_200_when_serving() {
    let server = started().await;
    assert_eq!(
        get_json(&server, "/health").await,
        (200, json!({"status": "healthy"}))
    );
    assert_eq!(
        get_json(&server, "/ready").await,
        (200, json!({"status": "ready"}))
    );
}

#[tokio::test]
async fn predict_classifies_a_known_setosa_with_full_confidence() {
    let server = started().await;
    let (status, body) = post_json(&server, "/predict", &setosa()).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"species": "setosa", "confidence": 1.0}));
}

#[tokio::test]
async fn batch_predicts_each_sample_in_order() {
    let server = started().await;
    let versicolor =
        json!({"sepal_length": 6.0, "sepal_width": 2.9, "petal_length": 4.5, "petal_width": 1.5});
    let virginica =
        json!({"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.8, "petal_width": 2.2});
    let body = json!({"samples": [setosa(), versicolor, virginica]});
    let (status, body) = post_json(&server, "/predict/batch", &body).await;
    assert_eq!(status, 200);
    let species: Vec<&str> = body["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["species"].as_str().unwrap())
        .collect();
    assert_eq!(species, ["setosa", "versicolor", "virginica"]);
    let confidence = body["predictions"][1]["confidence"].as_f64().unwrap();
    assert!((confidence - 47.0 / 48.0).abs() < 1e-9, "{confidence}");
}

#[tokio::test]
async fn model_info_describes_the_tree() {
    let server = started().await;
    let (status, body) = get_json(&server, "/model/info").await;
    assert_eq!(status, 200);
    assert_eq!(body["model_type"], "DecisionTreeClassifier");
    assert_eq!(body["criterion"], "gini");
    assert_eq!(body["tree_depth"], 3);
    assert_eq!(
        body["feature_names"],
        json!(["sepal_length", "sepal_width", "petal_length", "petal_width"])
    );
    assert_eq!(
        body["classes"],
        json!(["setosa", "versicolor", "virginica"])
    );
    assert_eq!(body["training_samples"], 150);
    assert!(body["training_accuracy"].as_f64().unwrap() >= 0.95);
}

/// One bad request and what the answer must say.
struct BadInput {
    name: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: String,
    status: u16,
    field: Option<&'static str>,
    detail_contains: &'static str,
}

fn with_field(field: &str, value: &str) -> String {
    let mut body = setosa();
    let text = format!("__{field}__");
    body[field] = json!(text);
    body.to_string().replace(&format!("\"{text}\""), value)
}

fn bad_inputs() -> Vec<BadInput> {
    let json = Some("application/json");
    let mut missing = setosa();
    missing
        .as_object_mut()
        .expect("setosa() is an object")
        .remove("sepal_width");
    let compact_sample = r#"{"sepal_length":5,"sepal_width":3,"petal_length":1,"petal_width":0}"#;
    let too_many = format!("{{\"samples\":[{}]}}", vec![compact_sample; 1001].join(","));
    let mut bad_third = vec![setosa(), setosa(), setosa()];
    bad_third[2]["sepal_length"] = json!(-3);
    vec![
        BadInput {
            name: "missing field",
            path: "/predict",
            content_type: json,
            body: missing.to_string(),
            status: 422,
            field: Some("sepal_width"),
            detail_contains: "field required",
        },
        BadInput {
            name: "wrong type",
            path: "/predict",
            content_type: json,
            body: with_field("petal_length", "\"long\""),
            status: 422,
            field: Some("petal_length"),
            detail_contains: "must be a number",
        },
        BadInput {
            name: "NaN as Python writes it",
            path: "/predict",
            content_type: json,
            body: with_field("sepal_length", "NaN"),
            status: 422,
            field: Some("sepal_length"),
            detail_contains: "finite",
        },
        BadInput {
            name: "Infinity",
            path: "/predict",
            content_type: json,
            body: with_field("petal_width", "Infinity"),
            status: 422,
            field: Some("petal_width"),
            detail_contains: "finite",
        },
        BadInput {
            name: "negative",
            path: "/predict",
            content_type: json,
            body: with_field("sepal_width", "-0.5"),
            status: 422,
            field: Some("sepal_width"),
            detail_contains: "negative",
        },
        BadInput {
            name: "over 100 cm",
            path: "/predict",
            content_type: json,
            body: with_field("petal_length", "250"),
            status: 422,
            field: Some("petal_length"),
            detail_contains: "at most 100",
        },
        BadInput {
            name: "not JSON",
            path: "/predict",
            content_type: json,
            body: "{\"sepal_length\": ".to_owned(),
            status: 422,
            field: None,
            detail_contains: "not valid JSON",
        },
        BadInput {
            name: "empty batch",
            path: "/predict/batch",
            content_type: json,
            body: r#"{"samples": []}"#.to_owned(),
            status: 422,
            field: Some("samples"),
            detail_contains: "at least 1",
        },
        BadInput {
            name: "batch over 1000",
            path: "/predict/batch",
            content_type: json,
            body: too_many,
            status: 422,
            field: Some("samples"),
            detail_contains: "at most 1000",
        },
        BadInput {
            name: "bad sample inside a batch",
            path: "/predict/batch",
            content_type: json,
            body: json!({ "samples": bad_third }).to_string(),
            status: 422,
            field: Some("samples[2].sepal_length"),
            detail_contains: "negative",
        },
        BadInput {
            name: "body over 64 KiB",
            path: "/predict",
            content_type: json,
            body: format!("{}{}", " ".repeat(65 * 1024), setosa()),
            status: 413,
            field: None,
            detail_contains: "65536 bytes",
        },
        BadInput {
            name: "wrong content type",
            path: "/predict",
            content_type: Some("text/plain"),
            body: setosa().to_string(),
            status: 415,
            field: None,
            detail_contains: "application/json",
        },
        BadInput {
            name: "no content type",
            path: "/predict/batch",
            content_type: None,
            body: json!({"samples": [setosa()]}).to_string(),
            status: 415,
            field: None,
            detail_contains: "application/json",
        },
    ]
}

#[tokio::test]
async fn bad_input_gets_a_4xx_json_error_naming_the_problem_and_field() {
    let server = started().await;
    for case in bad_inputs() {
        let (status, body) = post_raw(&server, case.path, case.content_type, case.body).await;
        assert_eq!(status, case.status, "{}: {body}", case.name);
        let detail = body["detail"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no detail in {body}", case.name));
        assert!(
            detail.contains(case.detail_contains),
            "{}: detail {detail:?} lacks {:?}",
            case.name,
            case.detail_contains
        );
        assert_eq!(body["field"].as_str(), case.field, "{}: {body}", case.name);
    }
    // The server took all of that without a 5xx on the prediction routes and still works
    // (the only 5xx allowed is /ready's 503 while the test server was starting).
    let metrics = client()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let server_errors: Vec<&str> = metrics
        .lines()
        .filter(|line| line.contains("route=\"/predict") && line.contains("status=\"5"))
        .collect();
    assert!(server_errors.is_empty(), "{server_errors:?}");
    assert_eq!(post_json(&server, "/predict", &setosa()).await.0, 200);
}

/// A chunked upload announces no length, so only counting the bytes can stop it.
#[tokio::test]
async fn chunked_body_over_the_limit_is_refused_with_413() {
    let server = started().await;
    let mut stream = tokio::net::TcpStream::connect(server.address)
        .await
        .unwrap();
    let head = "POST /predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
                Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = " ".repeat(16 * 1024);
    for _ in 0..5 {
        let framed = format!("{:x}\r\n{chunk}\r\n", chunk.len());
        // The server may answer and close before reading everything; that is the point.
        if stream.write_all(framed.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("answer within 10 s")
        .ok();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"detail\""), "{answer}");
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_json() {
    let server = started().await;
    assert_eq!(
        get_json(&server, "/no/such/route").await,
        (404, json!({"detail": "Not Found"}))
    );
    let response = client().get(server.url("/predict")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"detail": "Method Not Allowed"})
    );
}

#[tokio::test]
async fn metrics_counters_move_with_requests() {
    let server = started().await;
    let scrape = || async {
        let response = client().get(server.url("/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        response.text().await.unwrap()
    };
    let ok = r#"iris_http_requests_total{route="/predict",method="POST",status="200"}"#;
    let count = r#"iris_http_request_duration_seconds_count{route="/predict"}"#;
    let before = scrape().await;
    let ok_before = metric_value(&before, ok).unwrap_or(0.0);
    let count_before = metric_value(&before, count).unwrap_or(0.0);
    for _ in 0..3 {
        assert_eq!(post_json(&server, "/predict", &setosa()).await.0, 200);
    }
    let _ = get_json(&server, "/missing").await;
    let after = scrape().await;
    assert_eq!(metric_value(&after, ok), Some(ok_before + 3.0), "{after}");
    assert_eq!(
        metric_value(&after, count),
        Some(count_before + 3.0),
        "{after}"
    );
    assert_eq!(
        metric_value(
            &after,
            r#"iris_http_requests_total{route="unmatched",method="GET",status="404"}"#
        ),
        Some(1.0)
    );
    // The scrape itself is in flight while the text is rendered.
    assert_eq!(
        metric_value(&after, "iris_http_requests_in_flight"),
        Some(1.0),
        "{after}"
    );
    assert!(after.contains("# TYPE iris_http_request_duration_seconds histogram"));
}

/// Before training finishes the server is alive but not ready, and says why.
#[tokio::test]
async fn before_the_model_is_trained_ready_and_predict_answer_503() {
    let app = router(AppState::new(&Config::default()));
    let call = |request: http::Request<axum::body::Body>| {
        let app = app.clone();
        async move {
            let response = app.oneshot(request).await.unwrap();
            let status = response.status().as_u16();
            let bytes = http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap()
                .to_bytes();
            (status, serde_json::from_slice::<Value>(&bytes).unwrap())
        }
    };
    let get = |path: &str| {
        http::Request::get(path)
            .body(axum::body::Body::empty())
            .unwrap()
    };
    assert_eq!(call(get("/health")).await.0, 200);
    let (status, body) = call(get("/ready")).await;
    assert_eq!((status, body["status"].as_str()), (503, Some("starting")));
    assert_eq!(call(get("/")).await.1["model_loaded"], false);
    assert_eq!(call(get("/model/info")).await.0, 503);
    let predict = http::Request::post("/predict")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(setosa().to_string()))
        .unwrap();
    let (status, body) = call(predict).await;
    assert_eq!(status, 503);
    assert!(body["detail"].as_str().unwrap().contains("not trained"));
}
