//! The engine's HTTP/1.1 client against a real server: bodies of every
//! framing are read completely, connections closed by the server are
//! replaced, and every request is counted once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::support::TestServer;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use scaleproof_load::{LoadConfig, LoadResult, Stop, Targets, run};
use tokio_util::sync::CancellationToken;

async fn load(targets: &Targets, method: Method, path: &str, requests: u64) -> LoadResult {
    let mut config = LoadConfig::closed(4, Stop::Requests(requests));
    config.request.method = method;
    config.request.path = path.to_owned();
    run(&config, targets, &CancellationToken::new())
        .await
        .expect("a valid run")
}

fn assert_all_ok(result: &LoadResult, requests: u64) {
    assert_eq!(result.sent, requests, "{result}");
    assert_eq!(result.ok, requests, "{result}");
    assert_eq!(result.errors.total(), 0, "{result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_sized_chunked_and_empty_bodies_completely() {
    let router = Router::new()
        .route("/large", post(|| async { vec![b'x'; 256 * 1024] }))
        .route(
            "/chunked",
            post(|| async {
                let chunks =
                    (0..5).map(|i| Ok::<_, std::io::Error>(Bytes::from(vec![b'a' + i; 1000])));
                Body::from_stream(futures::stream::iter(chunks))
            }),
        )
        .route("/empty", get(|| async { "" }))
        .route("/text", get(|| async { "some text" }));
    let server = TestServer::start(router).await;
    let targets = server.targets();

    assert_all_ok(&load(&targets, Method::POST, "/large", 40).await, 40);
    assert_all_ok(&load(&targets, Method::POST, "/chunked", 40).await, 40);
    assert_all_ok(&load(&targets, Method::GET, "/empty", 40).await, 40);
    // HEAD responses announce a length but carry no body.
    assert_all_ok(&load(&targets, Method::HEAD, "/text", 40).await, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_server_closes_are_replaced() {
    let answered = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&answered);
    let router = Router::new().route(
        "/predict",
        post(move || {
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                let mut response: Response = "bye".into_response();
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                response
            }
        }),
    );
    let server = TestServer::start(router).await;

    let result = load(&server.targets(), Method::POST, "/predict", 200).await;

    assert_all_ok(&result, 200);
    assert_eq!(
        answered.load(Ordering::SeqCst),
        200,
        "no request sent twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_closed_by_the_server_are_not_errors() {
    use scaleproof_load::{Mode, Rate};
    let server = RawServer::start(AfterResponse::CloseWhenIdle).await;
    let targets = Targets::parse([format!("http://{}", server.addr)]).unwrap();
    // One connection, a request every 200 ms: the server has closed the
    // previous connection by the time the next request is due.
    let config = LoadConfig {
        mode: Mode::Open {
            rate: Rate::constant(5.0),
            stop: Stop::Requests(8),
            max_in_flight: 1,
        },
        ..LoadConfig::default()
    };

    let result = run(&config, &targets, &CancellationToken::new())
        .await
        .unwrap();

    assert_all_ok(&result, 8);
    assert_eq!(
        server.connections.load(Ordering::SeqCst),
        8,
        "one per request"
    );
}

/// What a [`RawServer`] does with a connection after answering a request.
#[derive(Clone, Copy, PartialEq)]
enum AfterResponse {
    /// Keep serving requests until the client closes the connection.
    KeepServing,
    /// Answer as if keeping the connection alive, then close it once it has sat
    /// idle for 50 ms (like a server's keep-alive timeout).
    CloseWhenIdle,
}

/// A raw HTTP/1.1 server that counts the connections it accepts.
struct RawServer {
    addr: std::net::SocketAddr,
    connections: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RawServer {
    async fn start(after: AfterResponse) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("bound address");
        let connections = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&connections);
        let task = tokio::spawn(async move {
            let mut handlers = tokio::task::JoinSet::new();
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                handlers.spawn(async move {
                    let mut pending = Vec::new();
                    let mut buffer = [0u8; 4096];
                    loop {
                        // One request: its head, then content-length bytes of body.
                        let head_end = loop {
                            if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                                break i + 4;
                            }
                            match stream.read(&mut buffer).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => pending.extend_from_slice(&buffer[..n]),
                            }
                        };
                        let head = String::from_utf8_lossy(&pending[..head_end]).to_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        while pending.len() < head_end + length {
                            match stream.read(&mut buffer).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => pending.extend_from_slice(&buffer[..n]),
                            }
                        }
                        pending.drain(..head_end + length);
                        if stream
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                            .await
                            .is_err()
                        {
                            return;
                        }
                        if after == AfterResponse::CloseWhenIdle {
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            return;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            connections,
            task,
        }
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts the handlers.
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_per_connection_bounds_what_one_connection_carries() {
    let server = RawServer::start(AfterResponse::KeepServing).await;
    let targets = Targets::parse([format!("http://{}", server.addr)]).unwrap();
    // One worker, so the counts are exact (two workers may split 40 as 21 + 19).
    // Unbounded keep-alive: one connection for everything.
    let result = run(
        &LoadConfig::closed(1, Stop::Requests(40)),
        &targets,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_all_ok(&result, 40);
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);

    // 40 requests, 10 per connection: 4 connections.
    let before = server.connections.load(Ordering::SeqCst);
    let config = LoadConfig {
        requests_per_connection: Some(10),
        ..LoadConfig::closed(1, Stop::Requests(40))
    };
    let result = run(&config, &targets, &CancellationToken::new())
        .await
        .unwrap();
    assert_all_ok(&result, 40);
    assert_eq!(server.connections.load(Ordering::SeqCst) - before, 4);

    // One request per connection: no keep-alive at all, whatever the split.
    let before = server.connections.load(Ordering::SeqCst);
    let config = LoadConfig {
        requests_per_connection: Some(1),
        ..LoadConfig::closed(2, Stop::Requests(30))
    };
    let result = run(&config, &targets, &CancellationToken::new())
        .await
        .unwrap();
    assert_all_ok(&result, 30);
    assert_eq!(server.connections.load(Ordering::SeqCst) - before, 30);
}
