//! Micro-benchmarks: one tree prediction, training at start-up, and one POST /predict
//! through the full router (JSON parsing, validation, metrics) without sockets.

use std::hint::black_box;

use axum::body::Body;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt as _;
use iris_server::dataset::Measurements;
use iris_server::{AppState, Config, IrisModel, router};
use tower::ServiceExt as _;

fn model() -> IrisModel {
    IrisModel::train_embedded().expect("the embedded model trains")
}

fn predict_one(c: &mut Criterion) {
    let model = model();
    // Lands in the deepest, mixed leaf: the longest walk the tree has.
    let flower = Measurements::from_array([6.0, 2.9, 4.5, 1.5]);
    c.bench_function("model_predict", |b| {
        b.iter(|| model.predict(black_box(&flower)))
    });
}

fn train(c: &mut Criterion) {
    c.bench_function("model_train_embedded", |b| b.iter(model));
}

fn predict_through_router(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let app = router(AppState::with_model(&Config::default(), model()));
    let body = r#"{"sepal_length":5.1,"sepal_width":3.5,"petal_length":1.4,"petal_width":0.2}"#;
    c.bench_function("router_post_predict", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let request = http::Request::post("/predict")
                    .header("content-type", "application/json")
                    .body(Body::from(body))
                    .expect("valid request");
                let response = app.clone().oneshot(request).await.expect("infallible");
                assert_eq!(response.status(), 200);
                response
                    .into_body()
                    .collect()
                    .await
                    .expect("body")
                    .to_bytes()
            })
        })
    });
}

criterion_group!(benches, predict_one, train, predict_through_router);
criterion_main!(benches);
