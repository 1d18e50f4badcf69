//! Bounded retries of the API requests the harness makes: a flaky API server (429
//! while it throttles, 500/503 while etcd or an aggregated API hiccups, a refused
//! connection while it restarts) must not turn a run red, and a broken one must end
//! the run in a bounded time, as infrastructure (exit 2), not hang it.
//!
//! kube's own default retry is switched off for this one: kube-client 5
//! (`client/retry.rs`, `RetryPolicy::server_retry`, on by `Config::default_retry`)
//! retries 429/503/504 up to 15 times with a backoff growing towards 1000 s and
//! sleeps whatever `Retry-After` says, so one request may wait for many minutes, and
//! it leaves 500 and refused connections alone. Here every request gets at most
//! [`MAX_RETRIES`] retries within [`RETRY_BUDGET`]; `Retry-After` is honoured up to
//! [`MAX_RETRY_AFTER`].

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use tokio::time::Instant;
use tower::retry::Policy;

/// Retries of one request, at most.
pub const MAX_RETRIES: u32 = 5;
/// Time from a request's first failure after which it is not retried again.
pub const RETRY_BUDGET: Duration = Duration::from_secs(20);
/// The longest `Retry-After` followed; a longer one is cut to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);
/// How long one request (not a watch) may wait for its answer before it counts as
/// failed and is retried. Our requests are small (one namespace, a handful of
/// objects) and kube-apiserver answers them in milliseconds; its own bound for
/// non-long-running requests is `--request-timeout` 1 min. kube's client waits 295 s.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// The first backoff without `Retry-After`; it doubles each retry (0.25 .. 4 s).
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// Statuses that say "not now" rather than "no": throttled (429), the server failed
/// (500: `NewInternalError`, e.g. etcd unreachable), a proxy or aggregated API is
/// down (502, 503), a server-side timeout (504).
pub fn is_transient(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504)
}

/// Requests that are not retried here: the metrics API's. Every reader of it polls
/// on its own cadence (the observer each sample, the metrics and reset waits each
/// second) and copes with a failed read; retrying inside one poll would only delay
/// the next sample by up to the budget and swap the aggregator's words ("503
/// ServiceUnavailable") for a timeout in the gap the timeline records.
pub fn is_polled(path: &str) -> bool {
    path.starts_with("/apis/metrics.k8s.io/")
}

/// A request that got no answer within [`REQUEST_TIMEOUT`].
#[derive(Debug, thiserror::Error)]
#[error("no answer within {} s (the API server is overloaded or unreachable)", after.as_secs())]
pub struct NoAnswer {
    pub after: Duration,
}

/// Requests the API server holds open on purpose: watches and followed logs
/// (kube-apiserver's long-running request check looks at the same verbs).
pub fn is_long_running(uri: &http::Uri) -> bool {
    uri.query().is_some_and(|q| {
        q.split('&')
            .any(|pair| matches!(pair, "watch=true" | "watch=1" | "follow=true"))
    })
}

/// What a "not now" status that outlasted the retries means, with their bounds.
pub fn exhausted_hint() -> String {
    format!(
        " (it persisted through scaleproof's bounded retries, at most {MAX_RETRIES} within {} s: \
         the cluster's API is failing or overloaded; infrastructure, not the service)",
        RETRY_BUDGET.as_secs()
    )
}

/// The retry policy of every client the harness makes ([`super::connect`]).
#[derive(Debug, Clone, Default)]
pub struct BoundedRetry {
    attempt: u32,
    first_failure: Option<Instant>,
}

impl BoundedRetry {
    /// How long to wait before retry number `self.attempt` (1-based), or `None` when
    /// the count or time budget is spent.
    fn next_delay(&mut self, retry_after: Option<Duration>) -> Option<Duration> {
        let now = Instant::now();
        let first = *self.first_failure.get_or_insert(now);
        if self.attempt >= MAX_RETRIES {
            return None;
        }
        let backoff = FIRST_BACKOFF * 2u32.pow(self.attempt);
        let delay = retry_after.map_or(backoff, |after| after.min(MAX_RETRY_AFTER));
        if now + delay > first + RETRY_BUDGET {
            return None;
        }
        self.attempt += 1;
        Some(delay)
    }
}

/// `Retry-After` in seconds (the API server writes whole seconds; an HTTP date is
/// not followed).
fn retry_after<B>(response: &Response<B>) -> Option<Duration> {
    response
        .headers()
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

impl<Res> Policy<Request<kube::client::Body>, Response<Res>, kube::Error> for BoundedRetry {
    type Future = Pin<Box<dyn Future<Output = ()> + Send>>;

    fn retry(
        &mut self,
        request: &mut Request<kube::client::Body>,
        result: &mut Result<Response<Res>, kube::Error>,
    ) -> Option<Self::Future> {
        if is_polled(request.uri().path()) {
            return None;
        }
        let (why, after) = match result {
            Ok(response) if is_transient(response.status()) => (
                format!("answered {}", response.status()),
                retry_after(response),
            ),
            Ok(_) => return None,
            // No response at all: refused or reset connection, read timeout.
            Err(kube::Error::HyperError(e)) => (format!("failed: {e}"), None),
            Err(kube::Error::Service(e)) => (format!("failed: {e}"), None),
            Err(_) => return None,
        };
        let what = format!("{} {}", request.method(), request.uri().path());
        match self.next_delay(after) {
            Some(delay) => {
                tracing::warn!(
                    "the API server {why} to {what}: retry {} of {MAX_RETRIES} in {:.2} s",
                    self.attempt,
                    delay.as_secs_f64()
                );
                Some(Box::pin(tokio::time::sleep(delay)))
            }
            None => {
                tracing::warn!(
                    "the API server {why} to {what}: giving up after {} retries",
                    self.attempt
                );
                None
            }
        }
    }

    fn clone_request(
        &mut self,
        request: &Request<kube::client::Body>,
    ) -> Option<Request<kube::client::Body>> {
        // Bodies the client built in memory clone; a streamed one is sent once.
        let body = request.body().try_clone()?;
        let mut copy = Request::builder()
            .method(request.method().clone())
            .uri(request.uri().clone())
            .version(request.version())
            .body(body)
            .ok()?;
        *copy.headers_mut() = request.headers().clone();
        *copy.extensions_mut() = request.extensions().clone();
        Some(copy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_and_stops_at_the_count() {
        let mut policy = BoundedRetry::default();
        let delays: Vec<f64> = std::iter::from_fn(|| policy.next_delay(None))
            .map(|d| d.as_secs_f64())
            .collect();
        assert_eq!(delays, vec![0.25, 0.5, 1.0, 2.0, 4.0]);
        assert!(delays.iter().sum::<f64>() < RETRY_BUDGET.as_secs_f64());
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_followed_up_to_its_cap_and_the_time_budget() {
        let mut policy = BoundedRetry::default();
        assert_eq!(
            policy.next_delay(Some(Duration::from_secs(1))),
            Some(Duration::from_secs(1))
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        // An hour becomes the cap, and the cap is spent against the budget.
        let mut total = Duration::from_secs(1);
        while let Some(d) = policy.next_delay(Some(Duration::from_secs(3600))) {
            assert_eq!(d, MAX_RETRY_AFTER);
            tokio::time::advance(d).await;
            total += d;
        }
        assert!(total <= RETRY_BUDGET, "{total:?}");
        assert!(policy.attempt <= MAX_RETRIES);
    }

    /// The hint the final error carries states these bounds in words.
    #[test]
    fn the_error_hint_states_the_bounds() {
        let hint = exhausted_hint();
        assert!(hint.contains(&format!("at most {MAX_RETRIES}")), "{hint}");
        assert!(
            hint.contains(&format!("within {} s", RETRY_BUDGET.as_secs())),
            "{hint}"
        );
    }

    #[test]
    fn watches_and_followed_logs_are_not_timed_out() {
        let uri = |u: &str| u.parse::<http::Uri>().expect("uri");
        assert!(is_long_running(&uri(
            "/apis/autoscaling/v2/namespaces/x/horizontalpodautoscalers?fieldSelector=metadata.name%3Dh&watch=true&timeoutSeconds=290"
        )));
        assert!(is_long_running(&uri(
            "/api/v1/namespaces/x/pods/p/log?follow=true"
        )));
        assert!(!is_long_running(&uri(
            "/api/v1/namespaces/x/pods?labelSelector=a%3Db"
        )));
        assert!(!is_long_running(&uri(
            "/api/v1/namespaces/x/pods/p/log?container=c"
        )));
    }

    #[test]
    fn the_polled_metrics_api_is_left_to_its_pollers() {
        assert!(is_polled("/apis/metrics.k8s.io/v1beta1/namespaces/x/pods"));
        assert!(!is_polled("/apis/apps/v1/namespaces/x/deployments/y"));
        assert!(!is_polled(
            "/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.metrics.k8s.io"
        ));
    }

    #[test]
    fn only_not_now_statuses_are_retried() {
        for code in [429, 500, 502, 503, 504] {
            assert!(
                is_transient(StatusCode::from_u16(code).unwrap_or_default()),
                "{code}"
            );
        }
        for code in [200, 400, 401, 403, 404, 409, 410, 422] {
            assert!(
                !is_transient(StatusCode::from_u16(code).unwrap_or_default()),
                "{code}"
            );
        }
    }
}
