//! One HTTP/1.1 keep-alive connection, driven inside the worker's own task.
//!
//! Why hyper's low-level `client::conn::http1` and not reqwest: reqwest's pooled
//! client checks a connection out of a shared, locked pool per request and runs
//! every connection in a separately spawned task, so each request costs a pool
//! lock plus cross-task wake-ups. Measured on the 2-core reference machine against
//! nginx (see `bench/loadgen-compare.sh`), that overhead kept the engine well
//! below oha. Here each worker owns its connections and polls the connection
//! driver in the same task as the request, so a request is a write, a read and
//! no task hand-off, which is what lets the engine match oha.

use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::result::ErrorKind;

type Driver = http1::Connection<TokioIo<TcpStream>, Full<Bytes>>;

/// An open connection: the handle to send on and the future that does its I/O.
pub(crate) struct Connection {
    sender: http1::SendRequest<Full<Bytes>>,
    /// `None` once the connection has closed (server sent `Connection: close`,
    /// an error, or EOF); such a connection is replaced before the next request.
    driver: Option<Pin<Box<Driver>>>,
}

/// What one exchange on a connection ended with.
pub(crate) enum Exchange {
    /// A whole response was read.
    Response(StatusCode),
    /// The connection was already closed before the request went out (an idle
    /// keep-alive connection the server dropped): nothing was sent, so the
    /// request comes back to be retried on a new connection.
    Stale(Box<Request<Full<Bytes>>>),
    /// The request was sent (or may have been) and failed.
    Failed(ErrorKind),
}

impl Connection {
    /// Opens a TCP connection (Nagle off: requests are small and latency matters)
    /// and performs the HTTP/1.1 handshake.
    pub(crate) async fn open(address: &str, connect_timeout: Duration) -> Result<Self, ErrorKind> {
        let stream = match tokio::time::timeout(connect_timeout, TcpStream::connect(address)).await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(classify_io(&e)),
            Err(_elapsed) => return Err(ErrorKind::Timeout),
        };
        stream.set_nodelay(true).map_err(|e| classify_io(&e))?;
        let (sender, driver) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| classify_hyper(&e))?;
        Ok(Self {
            sender,
            driver: Some(Box::pin(driver)),
        })
    }

    /// Whether the connection may carry another request.
    pub(crate) fn is_open(&self) -> bool {
        self.driver.is_some() && !self.sender.is_closed()
    }

    /// Sends `request` and reads the whole response body (discarding it), driving
    /// the connection's I/O in this task.
    pub(crate) async fn exchange(&mut self, request: Request<Full<Bytes>>) -> Exchange {
        let Self { sender, driver } = self;
        if drive(driver, sender.ready()).await.is_err() {
            return Exchange::Stale(Box::new(request));
        }
        let response = match drive(driver, sender.send_request(request)).await {
            Ok(response) => response,
            Err(e) => return Exchange::Failed(classify_hyper(&e)),
        };
        let status = response.status();
        let mut body = response.into_body();
        let read_body = async {
            while let Some(frame) = body.frame().await {
                frame?;
            }
            Ok::<(), hyper::Error>(())
        };
        match drive(driver, read_body).await {
            Ok(()) => Exchange::Response(status),
            Err(e) => Exchange::Failed(classify_hyper(&e)),
        }
    }
}

/// Polls `work` and, alongside it, the connection driver (which performs the
/// actual reads and writes). When the driver finishes the connection is closed;
/// `work` then resolves on its own (with what was received, or an error).
async fn drive<F: Future>(driver: &mut Option<Pin<Box<Driver>>>, work: F) -> F::Output {
    let mut work = std::pin::pin!(work);
    poll_fn(|cx| {
        if let Poll::Ready(output) = work.as_mut().poll(cx) {
            return Poll::Ready(output);
        }
        if let Some(running) = driver.as_mut()
            && running.as_mut().poll(cx).is_ready()
        {
            *driver = None;
            // The driver's end changed `work`'s state (response delivered or
            // channel closed): poll it again so it cannot be left waiting.
            return work.as_mut().poll(cx);
        }
        Poll::Pending
    })
    .await
}

fn classify_io(error: &io::Error) -> ErrorKind {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => ErrorKind::ConnectionRefused,
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof
        | io::ErrorKind::NotConnected => ErrorKind::ConnectionReset,
        io::ErrorKind::TimedOut => ErrorKind::Timeout,
        _ => ErrorKind::Other,
    }
}

fn classify_hyper(error: &hyper::Error) -> ErrorKind {
    // An I/O error underneath says most precisely what happened.
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io_error) = cause.downcast_ref::<io::Error>() {
            return classify_io(io_error);
        }
        source = cause.source();
    }
    if error.is_incomplete_message() || error.is_canceled() || error.is_closed() {
        // The server closed the connection before a complete response.
        ErrorKind::ConnectionReset
    } else if error.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Other
    }
}
