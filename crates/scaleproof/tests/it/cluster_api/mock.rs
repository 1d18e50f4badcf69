//! A scripted API server in the kube-rs style: `tower_test::mock::pair` gives a
//! `kube::Client` and a handle; a verifier task takes each request off the handle,
//! asserts what it must be, and answers with a real-shaped JSON fixture.

use std::future::Future;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tower_test::mock::{Handle, SendResponse};

pub type ApiHandle = Handle<Request<Body>, Response<Body>>;

/// Every verifier must be done within this, so a test never hangs.
pub const VERIFIER_LIMIT: Duration = Duration::from_secs(10);

/// A client whose requests go to the returned handle.
pub fn client() -> (Client, ApiHandle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), handle)
}

/// Runs `script` against the handle in a task bounded by [`VERIFIER_LIMIT`].
pub fn verifier<F, Fut>(handle: ApiHandle, script: F) -> Verifier
where
    F: FnOnce(ApiHandle) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Verifier(tokio::spawn(async move {
        tokio::time::timeout(VERIFIER_LIMIT, script(handle))
            .await
            .expect("the verifier's script did not finish in time (a request never came?)");
    }))
}

/// The verifier task; awaiting [`Verifier::done`] re-raises its assertion failures.
pub struct Verifier(JoinHandle<()>);

impl Verifier {
    pub async fn done(self) {
        match tokio::time::timeout(VERIFIER_LIMIT, self.0).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Ok(Err(e)) => panic!("verifier task failed: {e}"),
            Err(_) => panic!("verifier did not finish"),
        }
    }
}

/// One request taken off the handle.
pub struct Exchange {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: Value,
    send: SendResponse<Response<Body>>,
}

impl Exchange {
    /// Asserts the method and the path (without query).
    pub fn expect(self, method: Method, path: &str) -> Self {
        assert_eq!(
            (&self.method, self.path.as_str()),
            (&method, path),
            "unexpected request {} {}?{}",
            self.method,
            self.path,
            self.query
        );
        self
    }

    /// Asserts the request's content type (which kind of patch it is).
    pub fn content_type_is(self, expected: &str) -> Self {
        assert_eq!(
            self.content_type, expected,
            "content type of {} {}",
            self.method, self.path
        );
        self
    }

    /// Asserts that the query carries `pair` (`key=value`, URL-encoded as sent).
    pub fn query_has(self, pair: &str) -> Self {
        assert!(
            self.query.split('&').any(|p| p == pair),
            "query of {} {} lacks {pair}: {}",
            self.method,
            self.path,
            self.query
        );
        self
    }

    pub fn respond_json(self, status: StatusCode, value: &Value) {
        let body = serde_json::to_vec(value).expect("serializable");
        self.respond_raw(status, body);
    }

    pub fn respond_ok(self, value: &Value) {
        self.respond_json(StatusCode::OK, value);
    }

    /// Answers with a Kubernetes `Status` failure, as the API server does.
    pub fn respond_status(self, code: u16, reason: &str, message: &str) {
        let status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason, "code": code
        });
        self.respond_json(StatusCode::from_u16(code).expect("valid code"), &status);
    }

    /// Answers a watch with these events (one JSON object per line), then ends it.
    pub fn respond_watch(self, events: &[Value]) {
        let mut body = Vec::new();
        for event in events {
            body.extend(serde_json::to_vec(event).expect("serializable"));
            body.push(b'\n');
        }
        self.respond_raw(StatusCode::OK, body);
    }

    pub fn respond_text(self, text: &str) {
        self.respond_raw(StatusCode::OK, text.as_bytes().to_vec());
    }

    fn respond_raw(self, status: StatusCode, body: Vec<u8>) {
        let response = Response::builder()
            .status(status)
            .body(Body::from(body))
            .expect("valid response");
        self.send.send_response(response);
    }
}

/// Asserts the client made no further request (call after dropping the client).
pub async fn no_more_requests(handle: &mut ApiHandle) {
    if let Some((request, _)) = handle.next_request().await {
        panic!(
            "unexpected further request {} {}",
            request.method(),
            request.uri()
        );
    }
}

/// The next request, with its body parsed as JSON (`Null` when empty).
pub async fn next(handle: &mut ApiHandle) -> Exchange {
    try_next(handle)
        .await
        .expect("the client hung up before the expected request")
}

/// The next request, or `None` once the client is gone.
pub async fn try_next(handle: &mut ApiHandle) -> Option<Exchange> {
    let (request, send) = handle.next_request().await?;
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    let content_type = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = request
        .into_body()
        .collect_bytes()
        .await
        .expect("request body readable");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("request body is JSON")
    };
    Some(Exchange {
        method,
        path,
        query,
        content_type,
        body,
        send,
    })
}

/// A fixture from `tests/fixtures/cluster/`.
pub fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cluster")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A `List` of `items` as the API server returns it.
pub fn list(kind: &str, api_version: &str, items: Vec<Value>) -> Value {
    json!({
        "kind": kind, "apiVersion": api_version,
        "metadata": { "resourceVersion": "1000" },
        "items": items
    })
}

/// A watch event line.
pub fn event(kind: &str, object: &Value) -> Value {
    json!({ "type": kind, "object": object })
}

/// `value` with the JSON pointer `pointer` set to `new` (for variants of fixtures).
pub fn with(mut value: Value, pointer: &str, new: Value) -> Value {
    *value
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("fixture has no {pointer}")) = new;
    value
}
