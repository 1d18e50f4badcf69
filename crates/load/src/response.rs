//! HTTP/1.1 response framing, fed with bytes as they arrive: where the head
//! ends, how long the body is (Content-Length, chunked, or until the server
//! closes), and whether the connection may carry another request.
//!
//! A pure state machine (no I/O, no allocation), so every framing rule is unit
//! tested with responses split at every byte.

use httparse::{EMPTY_HEADER, Status};

/// Response heads with more header fields than this are refused.
const MAX_HEADERS: usize = 64;

/// The response broke HTTP/1.1 framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed(pub(crate) &'static str);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Head,
    /// Body bytes still to skip.
    Sized(u64),
    ChunkSize,
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd,
    Trailers,
    /// No length given: the body ends when the server closes the connection.
    UntilClose,
    Done,
}

/// Tracks one response.
#[derive(Debug)]
pub(crate) struct ResponseReader {
    phase: Phase,
    /// `false` for the response to a HEAD request, which has no body.
    expects_body: bool,
    status: u16,
    keep_alive: bool,
}

impl ResponseReader {
    pub(crate) fn new(expects_body: bool) -> Self {
        Self {
            phase: Phase::Head,
            expects_body,
            status: 0,
            keep_alive: false,
        }
    }

    /// The final status code (valid once the head was read).
    pub(crate) fn status(&self) -> u16 {
        self.status
    }

    /// Whether the connection may carry another request afterwards.
    pub(crate) fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// Consumes what it can of `buf`: returns how many bytes belong to this
    /// response, and whether it is complete. Unconsumed bytes must be passed
    /// again, with more appended.
    pub(crate) fn advance(&mut self, buf: &[u8]) -> Result<(usize, bool), Malformed> {
        let mut used = 0;
        loop {
            let rest = &buf[used..];
            match self.phase {
                Phase::Head => match self.read_head(rest)? {
                    Some(n) => used += n,
                    None => return Ok((used, false)),
                },
                Phase::Sized(remaining) | Phase::ChunkData(remaining) => {
                    let take = remaining.min(rest.len() as u64);
                    used += take as usize;
                    let left = remaining - take;
                    self.phase = match (self.phase, left) {
                        (Phase::Sized(_), 0) => Phase::Done,
                        (Phase::Sized(_), _) => Phase::Sized(left),
                        (_, 0) => Phase::ChunkEnd,
                        _ => Phase::ChunkData(left),
                    };
                    if left > 0 {
                        return Ok((used, false));
                    }
                }
                Phase::ChunkSize => match httparse::parse_chunk_size(rest) {
                    Ok(Status::Complete((n, 0))) => {
                        used += n;
                        self.phase = Phase::Trailers;
                    }
                    Ok(Status::Complete((n, size))) => {
                        used += n;
                        self.phase = Phase::ChunkData(size);
                    }
                    Ok(Status::Partial) => return Ok((used, false)),
                    Err(_) => return Err(Malformed("invalid chunk size")),
                },
                Phase::ChunkEnd => {
                    if rest.len() < 2 {
                        return Ok((used, false));
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err(Malformed("chunk data not followed by CRLF"));
                    }
                    used += 2;
                    self.phase = Phase::ChunkSize;
                }
                Phase::Trailers => {
                    // Trailer fields, each a line, end with an empty line.
                    let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
                        return Ok((used, false));
                    };
                    used += end + 2;
                    if end == 0 {
                        self.phase = Phase::Done;
                    }
                }
                Phase::UntilClose => return Ok((buf.len(), false)),
                Phase::Done => return Ok((used, true)),
            }
        }
    }

    /// The server closed the connection: completes a body that runs until the
    /// close; anything else unfinished is an error.
    pub(crate) fn at_close(&mut self) -> Result<(), Malformed> {
        match self.phase {
            Phase::UntilClose | Phase::Done => {
                self.phase = Phase::Done;
                self.keep_alive = false;
                Ok(())
            }
            _ => Err(Malformed(
                "connection closed before the response was complete",
            )),
        }
    }

    /// Parses a head at the start of `buf`; `None` when it is not all there yet.
    fn read_head(&mut self, buf: &[u8]) -> Result<Option<usize>, Malformed> {
        let mut headers = [EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let length = match response.parse(buf) {
            Ok(Status::Complete(length)) => length,
            Ok(Status::Partial) => return Ok(None),
            Err(_) => return Err(Malformed("invalid response head")),
        };
        let status = response.code.ok_or(Malformed("missing status code"))?;
        match status {
            101 => return Err(Malformed("protocol upgrades are not supported")),
            // Informational responses precede the real one.
            100..=199 => return Ok(Some(length)),
            _ => {}
        }
        self.status = status;

        let mut connection_close = false;
        let mut connection_keep_alive = false;
        let mut chunked = false;
        let mut transfer_encoded = false;
        let mut content_length: Option<u64> = None;
        for header in response.headers.iter() {
            let name = header.name;
            if name.eq_ignore_ascii_case("connection") {
                for token in tokens(header.value) {
                    connection_close |= token.eq_ignore_ascii_case(b"close");
                    connection_keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                transfer_encoded = true;
                // Chunked only counts as the last coding applied.
                chunked = tokens(header.value)
                    .last()
                    .is_some_and(|coding| coding.eq_ignore_ascii_case(b"chunked"));
            } else if name.eq_ignore_ascii_case("content-length") {
                let length = std::str::from_utf8(header.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .ok_or(Malformed("invalid Content-Length"))?;
                if content_length.is_some_and(|previous| previous != length) {
                    return Err(Malformed("conflicting Content-Length headers"));
                }
                content_length = Some(length);
            }
        }
        let http_1_1 = response.version == Some(1);
        self.keep_alive = if http_1_1 {
            !connection_close
        } else {
            connection_keep_alive && !connection_close
        };
        self.phase = if !self.expects_body || status == 204 || status == 304 {
            Phase::Done
        } else if chunked {
            Phase::ChunkSize
        } else if transfer_encoded {
            self.keep_alive = false;
            Phase::UntilClose
        } else if let Some(length) = content_length {
            Phase::Sized(length)
        } else {
            self.keep_alive = false;
            Phase::UntilClose
        };
        Ok(Some(length))
    }
}

/// Comma-separated tokens of a header value, trimmed.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(|token| token.trim_ascii())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `response` in pieces of `step` bytes, as a socket might deliver
    /// it; returns status, keep-alive and the bytes left after the response.
    fn read_in_steps(response: &[u8], step: usize, expects_body: bool) -> (u16, bool, usize) {
        let mut reader = ResponseReader::new(expects_body);
        let mut buffer = Vec::new();
        let mut fed = 0;
        loop {
            let (used, done) = reader.advance(&buffer).unwrap();
            buffer.drain(..used);
            if done {
                let unread = buffer.len() + response.len() - fed;
                return (reader.status(), reader.keep_alive(), unread);
            }
            if fed == response.len() {
                reader.at_close().unwrap();
                return (reader.status(), reader.keep_alive(), buffer.len());
            }
            let end = (fed + step).min(response.len());
            buffer.extend_from_slice(&response[fed..end]);
            fed = end;
        }
    }

    fn read_all_ways(response: &[u8], expects_body: bool) -> (u16, bool, usize) {
        let whole = read_in_steps(response, response.len(), expects_body);
        for step in 1..response.len() {
            assert_eq!(
                read_in_steps(response, step, expects_body),
                whole,
                "step {step}"
            );
        }
        whole
    }

    #[test]
    fn content_length_bodies_end_exactly() {
        let response = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1";
        assert_eq!(
            read_all_ways(response, true),
            (200, true, 8),
            "leftover kept"
        );
        let empty = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(read_all_ways(empty, true), (503, true, 0));
    }

    #[test]
    fn chunked_bodies_with_extensions_and_trailers() {
        let response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
            5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n";
        assert_eq!(read_all_ways(response, true), (200, true, 0));
        let bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX";
        let mut reader = ResponseReader::new(true);
        assert!(reader.advance(bad).is_err());
    }

    #[test]
    fn connection_reuse_follows_version_and_connection_header() {
        let close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(read_all_ways(close, true), (200, false, 0));
        let old = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(read_all_ways(old, true), (200, false, 0));
        let old_kept = b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(read_all_ways(old_kept, true), (200, true, 0));
    }

    #[test]
    fn bodies_without_length_run_until_close() {
        let response = b"HTTP/1.1 200 OK\r\n\r\nstreamed until the end";
        assert_eq!(read_all_ways(response, true), (200, false, 0));
        let mut cut = ResponseReader::new(true);
        let (_, done) = cut
            .advance(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc")
            .unwrap();
        assert!(!done);
        assert!(
            cut.at_close().is_err(),
            "a short body is an error, not a response"
        );
    }

    #[test]
    fn responses_without_bodies() {
        let no_content = b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n";
        assert_eq!(read_all_ways(no_content, true), (204, true, 0));
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
        assert_eq!(read_all_ways(head, false), (200, true, 0));
    }

    #[test]
    fn informational_responses_are_skipped() {
        let response =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(read_all_ways(response, true), (201, true, 0));
    }

    #[test]
    fn malformed_heads_are_errors() {
        for bad in [
            &b"NOT HTTP\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
        ] {
            assert!(ResponseReader::new(true).advance(bad).is_err(), "{bad:?}");
        }
    }
}
