//! One HTTP/1.1 keep-alive connection: write a pre-serialized request, read
//! the response's framing, discard its body, keep the connection for the next.
//!
//! Why not reqwest or hyper: measured side by side on the 2-core reference
//! machine (keep-alive POST to nginx `return 200`, 50 connections, closed loop,
//! see `bench/loadgen-compare.sh`), a reqwest 0.13 client reached about 64k
//! req/s at about 13 µs of CPU per request (a locked pool checkout and a task
//! hand-off per request). hyper's `client::conn::http1`, driven in the
//! worker's own task, reached oha's level (oha is built on it) but not beyond:
//! per request it still builds a `Request`, a `HeaderMap` for the request and
//! one for the response, and passes both through channels to its connection
//! dispatcher. A load generator only needs the status code and the framing, so
//! here a request is one `write` of bytes built once per run, and a response is
//! parsed in place (httparse) in a buffer reused for the connection's life: no
//! allocation and no task hand-off per request.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::response::ResponseReader;
use super::result::ErrorKind;

/// Read granularity; responses of a load test are small.
const READ_CHUNK: usize = 8 * 1024;
/// A response head (or unread data) larger than this is refused.
const MAX_BUFFERED: usize = 64 * 1024;

/// An open connection and the bytes read from it but not yet used.
pub(crate) struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
    /// `false` once the connection must not carry another request (the server
    /// asked to close it, an error, or a body delimited by the close).
    reusable: bool,
    /// Whether a request was already sent on it (a server may close an idle
    /// keep-alive connection; a fresh one that fails is a real failure).
    used: bool,
}

/// What one exchange on a connection ended with.
pub(crate) enum Exchange {
    /// A whole response was read.
    Response(u16),
    /// The connection turned out closed before the request went out (an idle
    /// keep-alive connection the server dropped): nothing was sent, retry on a
    /// new connection.
    Stale,
    /// The request was sent (or may have been) and failed.
    Failed(ErrorKind),
}

impl Connection {
    /// Opens a TCP connection (Nagle off: requests are small and latency matters).
    pub(crate) async fn open(address: &str, connect_timeout: Duration) -> Result<Self, ErrorKind> {
        let stream = match tokio::time::timeout(connect_timeout, TcpStream::connect(address)).await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(classify_io(&e)),
            Err(_elapsed) => return Err(ErrorKind::Timeout),
        };
        stream.set_nodelay(true).map_err(|e| classify_io(&e))?;
        Ok(Self {
            stream,
            buffer: Vec::with_capacity(READ_CHUNK),
            reusable: true,
            used: false,
        })
    }

    /// Whether the connection may carry another request.
    pub(crate) fn is_open(&self) -> bool {
        self.reusable
    }

    /// Sends `request` (a complete HTTP/1.1 message) and reads the whole
    /// response. `expects_body` is `false` for HEAD requests.
    pub(crate) async fn exchange(&mut self, request: &[u8], expects_body: bool) -> Exchange {
        if self.used && self.closed_while_idle() {
            self.reusable = false;
            return Exchange::Stale;
        }
        let reused = std::mem::replace(&mut self.used, true);
        if let Err(e) = self.stream.write_all(request).await {
            self.reusable = false;
            // A reused connection refusing the write was closed by the server
            // before our request: it never reached the service.
            return if reused {
                Exchange::Stale
            } else {
                Exchange::Failed(classify_io(&e))
            };
        }
        match self.read_response(expects_body).await {
            Ok(reader) => {
                self.reusable &= reader.keep_alive();
                Exchange::Response(reader.status())
            }
            Err(kind) => {
                self.reusable = false;
                Exchange::Failed(kind)
            }
        }
    }

    async fn read_response(&mut self, expects_body: bool) -> Result<ResponseReader, ErrorKind> {
        let mut reader = ResponseReader::new(expects_body);
        loop {
            let (used, complete) = reader
                .advance(&self.buffer)
                .map_err(|_malformed| ErrorKind::Other)?;
            self.buffer.drain(..used);
            if complete {
                return Ok(reader);
            }
            if self.buffer.len() >= MAX_BUFFERED {
                return Err(ErrorKind::Other);
            }
            self.buffer.reserve(READ_CHUNK);
            match self.stream.read_buf(&mut self.buffer).await {
                Ok(0) => {
                    // The server closed: either the end of a close-delimited
                    // body, or a response cut short.
                    reader.at_close().map_err(|_| ErrorKind::ConnectionReset)?;
                    self.reusable = false;
                    return Ok(reader);
                }
                Ok(_) => {}
                Err(e) => return Err(classify_io(&e)),
            }
        }
    }

    /// Whether the server closed (or wrote to) the connection while it sat idle.
    /// Free when nothing happened: tokio answers from its cached readiness
    /// without a system call.
    fn closed_while_idle(&mut self) -> bool {
        if !self.buffer.is_empty() {
            // Bytes nobody asked for: this connection's framing is not trustworthy.
            return true;
        }
        let mut probe = [0u8; 1];
        match self.stream.try_read(&mut probe) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Ok(_) | Err(_) => true,
        }
    }
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
