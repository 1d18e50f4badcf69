//! Request metrics in the Prometheus text exposition format (version 0.0.4).
//!
//! Hand-rolled because the service needs three series and a `Mutex` over a small map
//! costs tens of nanoseconds per request; a metrics framework would add dependencies
//! and its own overhead to the hot path this project benchmarks.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::{Method, StatusCode};
use tokio::sync::Notify;

/// Route label for requests that matched no route, so unknown paths cannot create
/// unbounded label values.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Upper bounds (seconds) of the latency histogram buckets: from a fast in-memory
/// prediction (well under 1 ms) to a CPU-starved one under a 200m quota (seconds).
const BUCKET_BOUNDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Counters, a latency histogram and the in-flight gauge for one server.
#[derive(Debug, Default)]
pub struct Metrics {
    routes: Mutex<BTreeMap<String, RouteStats>>,
    in_flight: Arc<InFlight>,
}

#[derive(Debug, Default)]
struct InFlight {
    count: AtomicUsize,
    /// Woken whenever the count drops to zero (for the shutdown drain).
    idle: Notify,
}

#[derive(Debug, Default)]
struct RouteStats {
    /// (method, status, count); a handful of entries per route, so a Vec scan is fastest.
    responses: Vec<(&'static str, StatusCode, u64)>,
    /// Non-cumulative counts per bucket of [`BUCKET_BOUNDS`], plus one for +Inf.
    buckets: [u64; BUCKET_BOUNDS.len() + 1],
    sum_seconds: f64,
    count: u64,
}

/// Marks one request as in flight until dropped (also when the request is cancelled).
#[derive(Debug)]
#[must_use = "the request counts as in flight only while the guard lives"]
pub struct InFlightGuard {
    in_flight: Arc<InFlight>,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.in_flight.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.in_flight.idle.notify_waiters();
        }
    }
}

impl Metrics {
    /// Counts a request as in flight for the lifetime of the returned guard.
    pub fn request_started(&self) -> InFlightGuard {
        self.in_flight.count.fetch_add(1, Ordering::AcqRel);
        InFlightGuard {
            in_flight: Arc::clone(&self.in_flight),
        }
    }

    /// Requests currently being handled.
    pub fn in_flight(&self) -> usize {
        self.in_flight.count.load(Ordering::Acquire)
    }

    /// Resolves once no request is in flight.
    pub async fn wait_idle(&self) {
        loop {
            let idle = self.in_flight.idle.notified();
            let mut idle = std::pin::pin!(idle);
            // Register interest before checking, so a drop to zero in between is not missed.
            idle.as_mut().enable();
            if self.in_flight() == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Records one answered request under its route template (or [`UNMATCHED_ROUTE`]).
    pub fn record(&self, route: &str, method: &Method, status: StatusCode, elapsed: Duration) {
        let method = method_label(method);
        let seconds = elapsed.as_secs_f64();
        let bucket = BUCKET_BOUNDS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(BUCKET_BOUNDS.len());
        // A panic while holding the lock cannot leave the counters inconsistent in a way
        // that matters for monitoring, so keep counting after poisoning.
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        let stats = match routes.get_mut(route) {
            Some(stats) => stats,
            None => routes.entry(route.to_owned()).or_default(),
        };
        match stats
            .responses
            .iter_mut()
            .find(|(m, s, _)| *m == method && *s == status)
        {
            Some((_, _, count)) => *count += 1,
            None => stats.responses.push((method, status, 1)),
        }
        stats.buckets[bucket] += 1;
        stats.sum_seconds += seconds;
        stats.count += 1;
    }

    /// The exposition text for `GET /metrics`.
    pub fn render(&self) -> String {
        let routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail; the results are ignored for that reason.
        let _ = writeln!(
            out,
            "# HELP iris_http_requests_total HTTP requests answered, by route template, method and status code.\n\
             # TYPE iris_http_requests_total counter"
        );
        for (route, stats) in routes.iter() {
            let mut responses = stats.responses.clone();
            responses.sort_by_key(|&(method, status, _)| (method, status));
            for (method, status, count) in responses {
                let _ = writeln!(
                    out,
                    "iris_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{}\"}} {count}",
                    escape(route),
                    method,
                    status.as_u16()
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP iris_http_request_duration_seconds Time from receiving a request to sending its response headers.\n\
             # TYPE iris_http_request_duration_seconds histogram"
        );
        for (route, stats) in routes.iter() {
            let route = escape(route);
            let mut cumulative = 0;
            for (bound, count) in BUCKET_BOUNDS.iter().zip(&stats.buckets) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "iris_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "iris_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}\n\
                 iris_http_request_duration_seconds_sum{{route=\"{route}\"}} {}\n\
                 iris_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                stats.count, stats.sum_seconds, stats.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP iris_http_requests_in_flight Requests being handled right now.\n\
             # TYPE iris_http_requests_in_flight gauge\n\
             iris_http_requests_in_flight {}",
            self.in_flight()
        );
        out
    }
}

/// Standard methods keep their name; anything else a client invents becomes `OTHER`,
/// so clients cannot create unbounded label values.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::HEAD, "HEAD"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::DELETE, "DELETE"),
        (Method::PATCH, "PATCH"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::CONNECT, "CONNECT"),
        (Method::TRACE, "TRACE"),
    ];
    KNOWN
        .iter()
        .find(|(known, _)| known == method)
        .map_or("OTHER", |(_, label)| label)
}

/// Escapes a label value per the exposition format.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histogram_render_in_prometheus_format() {
        let metrics = Metrics::default();
        metrics.record(
            "/predict",
            &Method::POST,
            StatusCode::OK,
            Duration::from_micros(300),
        );
        metrics.record(
            "/predict",
            &Method::POST,
            StatusCode::OK,
            Duration::from_millis(20),
        );
        metrics.record(
            "/predict",
            &Method::POST,
            StatusCode::UNPROCESSABLE_ENTITY,
            Duration::from_secs(30),
        );
        let text = metrics.render();
        assert!(text.contains(
            "iris_http_requests_total{route=\"/predict\",method=\"POST\",status=\"200\"} 2\n"
        ));
        assert!(text.contains(
            "iris_http_requests_total{route=\"/predict\",method=\"POST\",status=\"422\"} 1\n"
        ));
        assert!(text.contains(
            "iris_http_request_duration_seconds_bucket{route=\"/predict\",le=\"0.0005\"} 1\n"
        ));
        assert!(text.contains(
            "iris_http_request_duration_seconds_bucket{route=\"/predict\",le=\"0.025\"} 2\n"
        ));
        assert!(text.contains(
            "iris_http_request_duration_seconds_bucket{route=\"/predict\",le=\"10\"} 2\n"
        ));
        assert!(text.contains(
            "iris_http_request_duration_seconds_bucket{route=\"/predict\",le=\"+Inf\"} 3\n"
        ));
        assert!(text.contains("iris_http_request_duration_seconds_count{route=\"/predict\"} 3\n"));
        assert!(text.contains("# TYPE iris_http_request_duration_seconds histogram\n"));
    }

    #[test]
    fn in_flight_gauge_follows_guards() {
        let metrics = Metrics::default();
        let first = metrics.request_started();
        let second = metrics.request_started();
        assert_eq!(metrics.in_flight(), 2);
        assert!(
            metrics
                .render()
                .contains("iris_http_requests_in_flight 2\n")
        );
        drop(first);
        drop(second);
        assert_eq!(metrics.in_flight(), 0);
    }

    #[tokio::test]
    async fn wait_idle_resolves_when_the_last_request_ends() {
        let metrics = Arc::new(Metrics::default());
        metrics.wait_idle().await;
        let guard = metrics.request_started();
        let waiter = tokio::spawn({
            let metrics = Arc::clone(&metrics);
            async move { metrics.wait_idle().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(guard);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("wait_idle resolved")
            .unwrap();
    }

    #[test]
    fn invented_methods_and_odd_routes_are_tamed() {
        let metrics = Metrics::default();
        let odd = Method::from_bytes(b"BREW").unwrap();
        metrics.record("a\"b", &odd, StatusCode::NOT_FOUND, Duration::ZERO);
        let text = metrics.render();
        assert!(text.contains("route=\"a\\\"b\",method=\"OTHER\",status=\"404\"} 1"));
    }
}
