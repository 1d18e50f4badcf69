//! A worker's HTTP client: round-robin over the current targets, one keep-alive
//! connection per endpoint, reconnect on close, a timeout around each call.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::Full;
use tokio::time::{Instant, Sleep};

use super::LoadError;
use super::config::LoadConfig;
use super::connection::{Connection, Exchange};
use super::result::ErrorKind;
use super::targets::{Endpoint, Targets};

/// The parts of the request that are the same for every call, built once.
pub(crate) struct RequestTemplate {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    bodies: Vec<Bytes>,
}

impl RequestTemplate {
    pub(crate) fn new(config: &LoadConfig) -> Result<Self, LoadError> {
        let spec = &config.request;
        let uri = spec
            .path
            .parse::<Uri>()
            .map_err(|e| LoadError::InvalidConfig(format!("request path {:?}: {e}", spec.path)))?;
        Ok(Self {
            method: spec.method.clone(),
            uri,
            headers: spec.headers.clone(),
            bodies: spec.bodies.clone(),
        })
    }

    /// The headers for requests to `endpoint`: the template's plus `Host`.
    fn headers_for(&self, endpoint: &Endpoint) -> HeaderMap {
        let mut headers = self.headers.clone();
        headers.insert(HOST, endpoint.host_header().clone());
        headers
    }

    fn build(&self, headers: &HeaderMap, body_index: usize) -> Request<Full<Bytes>> {
        let body = match self.bodies.len() {
            0 => Bytes::new(),
            n => self.bodies[body_index % n].clone(),
        };
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = headers.clone();
        request
    }
}

/// The result of one call: when it started and how it ended.
pub(crate) struct Call {
    /// When the engine began this request (connecting first if needed).
    pub(crate) started: Instant,
    pub(crate) finished: Instant,
    pub(crate) outcome: Result<u16, ErrorKind>,
}

/// One worker's client. Not shared: no locks on the request path.
pub(crate) struct Client {
    targets: Targets,
    template: Arc<RequestTemplate>,
    timeout: Duration,
    connect_timeout: Duration,
    /// The target set this worker last saw, and its generation.
    generation: u64,
    endpoints: Arc<[Endpoint]>,
    /// Per entry of `endpoints`, same order: its connection and its headers
    /// (built once, so a request costs one header-map clone).
    connections: Vec<Option<Connection>>,
    headers: Vec<HeaderMap>,
    /// Round-robin position; starts at the worker's index so workers spread out.
    next_endpoint: usize,
    next_body: usize,
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
        let generation = targets.generation();
        let endpoints = targets.snapshot();
        let connections = endpoints.iter().map(|_| None).collect();
        let headers = endpoints.iter().map(|e| template.headers_for(e)).collect();
        Self {
            targets,
            template,
            timeout: config.timeout,
            connect_timeout: config.connect_timeout,
            generation,
            endpoints,
            connections,
            headers,
            next_endpoint: worker,
            next_body: worker,
            timer: Box::pin(tokio::time::sleep(config.timeout)),
        }
    }

    /// Sends the next request and waits for its whole response or its timeout.
    pub(crate) async fn call(&mut self) -> Call {
        self.follow_target_changes();
        let index = self.next_endpoint % self.endpoints.len();
        self.next_endpoint = self.next_endpoint.wrapping_add(1);
        let body_index = self.next_body;
        self.next_body = self.next_body.wrapping_add(1);

        let started = Instant::now();
        let request = self.template.build(&self.headers[index], body_index);
        let sending = send(
            &mut self.connections[index],
            &self.endpoints[index],
            request,
            self.connect_timeout,
        );
        let outcome = match within(&mut self.timer, started + self.timeout, sending).await {
            Some(outcome) => outcome,
            None => {
                // HTTP/1.1 cannot abandon one request and keep the connection.
                self.connections[index] = None;
                Err(ErrorKind::Timeout)
            }
        };
        Call {
            started,
            finished: Instant::now(),
            outcome,
        }
    }

    /// Re-reads the target set when its generation moved, keeping the open
    /// connections to endpoints that are still in it and closing the others.
    fn follow_target_changes(&mut self) {
        let generation = self.targets.generation();
        if generation == self.generation {
            return;
        }
        let endpoints = self.targets.snapshot();
        let mut old: Vec<(Endpoint, Option<Connection>)> = self
            .endpoints
            .iter()
            .cloned()
            .zip(self.connections.drain(..))
            .collect();
        self.headers = endpoints
            .iter()
            .map(|e| self.template.headers_for(e))
            .collect();
        self.connections = endpoints
            .iter()
            .map(|endpoint| {
                old.iter_mut()
                    .find(|(previous, _)| previous == endpoint)
                    .and_then(|(_, connection)| connection.take())
            })
            .collect();
        self.endpoints = endpoints;
        self.generation = generation;
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
    request: Request<Full<Bytes>>,
    connect_timeout: Duration,
) -> Result<u16, ErrorKind> {
    let mut request = request;
    let mut reconnected = false;
    loop {
        let connection = match slot {
            Some(connection) if connection.is_open() => connection,
            _ => {
                reconnected = true;
                slot.insert(Connection::open(endpoint.address(), connect_timeout).await?)
            }
        };
        match connection.exchange(request).await {
            Exchange::Response(status) => {
                if !connection.is_open() {
                    *slot = None;
                }
                return Ok(status.as_u16());
            }
            Exchange::Stale(unsent) if !reconnected => {
                *slot = None;
                request = *unsent;
            }
            // A fresh connection that closes before taking a request.
            Exchange::Stale(_) => {
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
