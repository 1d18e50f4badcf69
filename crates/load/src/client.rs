//! A worker's HTTP client: round-robin over the current targets, one keep-alive
//! connection per endpoint, reconnect on close, a timeout around each call.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http::header::{CONTENT_LENGTH, HOST};
use tokio::time::{Instant, Sleep};

use super::config::LoadConfig;
use super::connection::{Connection, Exchange};
use super::result::ErrorKind;
use super::targets::{Endpoint, Targets};

/// The request of a run, serialized once per endpoint and body and shared by
/// all workers, so sending a request copies no header and allocates nothing.
pub(crate) struct RequestTemplate {
    /// Everything before the `Host` header: `METHOD /path HTTP/1.1\r\n`.
    request_line: Vec<u8>,
    /// The other header lines, each ending in CRLF (no Host, no Content-Length).
    header_lines: Vec<u8>,
    /// Whether the caller set its own Host header.
    has_host: bool,
    /// Whether to send `Content-Length` even for an empty body (methods whose
    /// requests normally carry one).
    length_when_empty: bool,
    expects_body: bool,
    bodies: Vec<Bytes>,
    /// Serialized requests per endpoint seen so far (endpoints come and go).
    by_endpoint: Mutex<Vec<(Endpoint, Arc<[Bytes]>)>>,
}

impl RequestTemplate {
    pub(crate) fn new(config: &LoadConfig) -> Self {
        let spec = &config.request;
        let mut request_line = Vec::new();
        request_line.extend_from_slice(spec.method.as_str().as_bytes());
        request_line.push(b' ');
        request_line.extend_from_slice(spec.path.as_bytes());
        request_line.extend_from_slice(b" HTTP/1.1\r\n");
        let mut header_lines = Vec::new();
        for (name, value) in &spec.headers {
            header_lines.extend_from_slice(name.as_str().as_bytes());
            header_lines.extend_from_slice(b": ");
            header_lines.extend_from_slice(value.as_bytes());
            header_lines.extend_from_slice(b"\r\n");
        }
        let method = &spec.method;
        Self {
            request_line,
            header_lines,
            has_host: spec.headers.contains_key(HOST),
            length_when_empty: [Method::POST, Method::PUT, Method::PATCH].contains(method),
            expects_body: *method != Method::HEAD,
            bodies: spec.bodies.clone(),
            by_endpoint: Mutex::new(Vec::new()),
        }
    }

    /// Whether responses to this request have a body (not for HEAD).
    pub(crate) fn expects_body(&self) -> bool {
        self.expects_body
    }

    /// The serialized requests for `endpoint`, one per body (at least one).
    pub(crate) fn requests_for(&self, endpoint: &Endpoint) -> Arc<[Bytes]> {
        let mut cache = self
            .by_endpoint
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, requests)) = cache.iter().find(|(known, _)| known == endpoint) {
            return Arc::clone(requests);
        }
        let requests: Arc<[Bytes]> = if self.bodies.is_empty() {
            Arc::from(vec![self.serialize(endpoint, b"")])
        } else {
            self.bodies
                .iter()
                .map(|body| self.serialize(endpoint, body))
                .collect()
        };
        cache.push((endpoint.clone(), Arc::clone(&requests)));
        requests
    }

    fn serialize(&self, endpoint: &Endpoint, body: &[u8]) -> Bytes {
        let mut out =
            Vec::with_capacity(self.request_line.len() + self.header_lines.len() + 64 + body.len());
        out.extend_from_slice(&self.request_line);
        if !self.has_host {
            out.extend_from_slice(b"host: ");
            out.extend_from_slice(endpoint.host_header().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(&self.header_lines);
        if !body.is_empty() || self.length_when_empty {
            out.extend_from_slice(CONTENT_LENGTH.as_str().as_bytes());
            out.extend_from_slice(format!(": {}\r\n", body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        Bytes::from(out)
    }
}

/// The result of one call: when it started and how it ended.
pub(crate) struct Call {
    /// When the engine began this request (connecting first if needed).
    pub(crate) started: Instant,
    pub(crate) finished: Instant,
    pub(crate) outcome: Result<u16, ErrorKind>,
}

/// What a worker keeps per endpoint.
struct Slot {
    connection: Option<Connection>,
    /// The serialized requests for this endpoint, one per body.
    requests: Arc<[Bytes]>,
    /// Which body goes next, per endpoint so that every endpoint cycles
    /// through all bodies whatever the number of endpoints.
    next_body: usize,
    /// Requests the current connection has carried.
    carried: u32,
}

impl Slot {
    fn new(template: &RequestTemplate, endpoint: &Endpoint, first_body: usize) -> Self {
        Self {
            connection: None,
            requests: template.requests_for(endpoint),
            next_body: first_body,
            carried: 0,
        }
    }
}

/// One worker's client. Not shared: no locks on the request path.
pub(crate) struct Client {
    template: Arc<RequestTemplate>,
    timeout: Duration,
    connect_timeout: Duration,
    endpoints: Arc<[Endpoint]>,
    /// One per entry of `endpoints`, same order.
    slots: Vec<Slot>,
    /// Offsets this worker's round-robin so workers spread out.
    worker: usize,
    /// Calls made so far.
    calls: usize,
    /// Close a connection after this many requests (`None`: keep it).
    per_connection: Option<u32>,
    /// The timeout timer, shared by all calls; see [`within`].
    timer: Pin<Box<Sleep>>,
}

impl Client {
    pub(crate) fn new(
        worker: usize,
        targets: Targets,
        template: Arc<RequestTemplate>,
        config: &LoadConfig,
    ) -> Self {
        let endpoints = targets.snapshot();
        let slots = endpoints
            .iter()
            .map(|e| Slot::new(&template, e, worker))
            .collect();
        Self {
            template,
            timeout: config.timeout,
            connect_timeout: config.connect_timeout,
            endpoints,
            slots,
            worker,
            calls: 0,
            per_connection: config.requests_per_connection,
            timer: Box::pin(tokio::time::sleep(config.timeout)),
        }
    }

    /// Sends the next request and waits for its whole response or its timeout.
    pub(crate) async fn call(&mut self) -> Call {
        let index = self.worker.wrapping_add(self.calls) % self.endpoints.len();
        self.calls = self.calls.wrapping_add(1);
        let slot = &mut self.slots[index];
        let request = &slot.requests[slot.next_body % slot.requests.len()];
        slot.next_body = slot.next_body.wrapping_add(1);
        if slot.connection.is_none() {
            slot.carried = 0;
        }

        let started = Instant::now();
        let sending = send(
            &mut slot.connection,
            &self.endpoints[index],
            request,
            self.template.expects_body(),
            self.connect_timeout,
        );
        let outcome = match within(&mut self.timer, started + self.timeout, sending).await {
            Some(outcome) => outcome,
            None => {
                // HTTP/1.1 cannot abandon one request and keep the connection.
                self.slots[index].connection = None;
                Err(ErrorKind::Timeout)
            }
        };
        let slot = &mut self.slots[index];
        slot.carried = slot.carried.saturating_add(1);
        if self.per_connection.is_some_and(|max| slot.carried >= max) {
            // Dropping the connection closes it; the next request opens a new one.
            slot.connection = None;
        }
        Call {
            started,
            finished: Instant::now(),
            outcome,
        }
    }
}

/// Runs `work` until `deadline`; `None` when the deadline came first.
///
/// Re-arming a timer per request costs a lock on tokio's timer wheel, so the
/// worker's one timer stays armed at an earlier call's deadline, which is never
/// later than this call's (calls run one after another), and is re-armed only
/// when it fires early: about once per timeout period instead of per request.
async fn within<F: Future>(
    timer: &mut Pin<Box<Sleep>>,
    deadline: Instant,
    work: F,
) -> Option<F::Output> {
    let mut work = std::pin::pin!(work);
    poll_fn(|cx| {
        if let Poll::Ready(output) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        if timer.as_mut().poll(cx).is_ready() {
            if Instant::now() >= deadline {
                return Poll::Ready(None);
            }
            timer.as_mut().reset(deadline);
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
        }
        Poll::Pending
    })
    .await
}

/// Sends on the slot's connection, opening one first when there is none or the
/// server closed it while idle (then nothing was sent, so one retry is safe).
async fn send(
    slot: &mut Option<Connection>,
    endpoint: &Endpoint,
    request: &[u8],
    expects_body: bool,
    connect_timeout: Duration,
) -> Result<u16, ErrorKind> {
    let mut reconnected = false;
    loop {
        let connection = match slot {
            Some(connection) if connection.is_open() => connection,
            _ => {
                reconnected = true;
                slot.insert(Connection::open(endpoint.address(), connect_timeout).await?)
            }
        };
        match connection.exchange(request, expects_body).await {
            Exchange::Response(status) => {
                if !connection.is_open() {
                    *slot = None;
                }
                return Ok(status);
            }
            Exchange::Stale if !reconnected => *slot = None,
            // A fresh connection that closes before taking a request.
            Exchange::Stale => {
                *slot = None;
                return Err(ErrorKind::ConnectionReset);
            }
            Exchange::Failed(kind) => {
                *slot = None;
                return Err(kind);
            }
        }
    }
}
