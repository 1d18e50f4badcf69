//! The set of endpoints a run spreads its requests over, which may change while
//! the run goes on (the local backend adds and removes replicas under load).
//!
//! Workers cache a snapshot and compare a generation counter before each request:
//! one relaxed atomic load on a cache line nobody writes during steady state, so
//! the hot path never takes the lock. The lock is only read when the set changed.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use http::HeaderValue;
use http::uri::{Authority, Scheme, Uri};

use super::LoadError;

/// One HTTP/1.1 endpoint: scheme `http`, a host and a port (no path; the path is
/// part of the request).
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port`, what the engine connects to.
    address: String,
    /// The `Host` header every request to this endpoint carries.
    host_header: HeaderValue,
}

impl Endpoint {
    /// Parses `http://host[:port]` (a trailing `/` is fine; any other path is not:
    /// give the path in the request instead).
    pub fn parse(url: &str) -> Result<Self, LoadError> {
        let (endpoint, path) = Self::parse_with_path(url)?;
        match path {
            None => Ok(endpoint),
            Some(path) => Err(invalid_target(
                url,
                format!("an endpoint has no path (got {path:?}); set the request path instead"),
            )),
        }
    }

    /// Parses a full URL into its endpoint and its path-and-query (`None` when the
    /// URL has no path beyond `/`). The CLI takes URLs in this form.
    pub fn parse_with_path(url: &str) -> Result<(Self, Option<String>), LoadError> {
        let uri: Uri = url
            .parse()
            .map_err(|e| invalid_target(url, format!("not a URL: {e}")))?;
        match uri.scheme() {
            Some(scheme) if *scheme == Scheme::HTTP => {}
            Some(scheme) => {
                return Err(invalid_target(
                    url,
                    format!("scheme {scheme} is not supported; the engine speaks plain http"),
                ));
            }
            None => {
                return Err(invalid_target(
                    url,
                    "missing scheme; write http://host:port",
                ));
            }
        }
        let authority = uri
            .authority()
            .ok_or_else(|| invalid_target(url, "missing host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid_target(url, "user info in URLs is not supported"));
        }
        let endpoint = Self::from_authority(authority, url)?;
        let path = uri
            .path_and_query()
            .map(|pq| pq.as_str())
            .filter(|pq| !pq.is_empty() && *pq != "/")
            .map(str::to_owned);
        Ok((endpoint, path))
    }

    fn from_authority(authority: &Authority, url: &str) -> Result<Self, LoadError> {
        let host = authority.host();
        if host.is_empty() {
            return Err(invalid_target(url, "missing host"));
        }
        let port = authority.port_u16().unwrap_or(80);
        let host_header = HeaderValue::from_str(authority.as_str())
            .map_err(|e| invalid_target(url, format!("host is not a valid header value: {e}")))?;
        Ok(Self {
            address: format!("{host}:{port}"),
            host_header,
        })
    }

    /// `host:port`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The endpoint as a URL, `http://host:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub(crate) fn host_header(&self) -> &HeaderValue {
        &self.host_header
    }
}

impl FromStr for Endpoint {
    type Err = LoadError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Endpoint({})", self.url())
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url())
    }
}

/// A shared, changeable set of endpoints; cloning is cheap and every clone sees
/// the same set. Never empty: a run always has somewhere to send.
#[derive(Clone)]
pub struct Targets {
    shared: Arc<Shared>,
}

struct Shared {
    /// Bumped after every change, so workers know when to re-read `current`.
    generation: AtomicU64,
    current: RwLock<Arc<[Endpoint]>>,
}

impl Targets {
    /// A set of endpoints (duplicates are dropped, order kept).
    pub fn new(endpoints: Vec<Endpoint>) -> Result<Self, LoadError> {
        let endpoints = dedup(endpoints)?;
        Ok(Self {
            shared: Arc::new(Shared {
                generation: AtomicU64::new(0),
                current: RwLock::new(endpoints),
            }),
        })
    }

    /// A set of one endpoint.
    pub fn single(endpoint: Endpoint) -> Self {
        Self {
            shared: Arc::new(Shared {
                generation: AtomicU64::new(0),
                current: RwLock::new(Arc::from(vec![endpoint])),
            }),
        }
    }

    /// Parses each URL with [`Endpoint::parse`].
    pub fn parse<I, S>(urls: I) -> Result<Self, LoadError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let endpoints = urls
            .into_iter()
            .map(|url| Endpoint::parse(url.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(endpoints)
    }

    /// Replaces the whole set. Requests already in flight to endpoints no longer in
    /// the set complete on their connection and are counted once.
    pub fn set(&self, endpoints: Vec<Endpoint>) -> Result<(), LoadError> {
        let endpoints = dedup(endpoints)?;
        self.replace(|_| Some(endpoints)).map(|_| ())
    }

    /// Adds an endpoint; returns `false` when it was already in the set.
    pub fn add(&self, endpoint: Endpoint) -> bool {
        self.replace(|current| {
            if current.contains(&endpoint) {
                return None;
            }
            let mut next = current.to_vec();
            next.push(endpoint.clone());
            Some(Arc::from(next))
        })
        .unwrap_or(false)
    }

    /// Removes an endpoint; returns `false` when it was not in the set, and an
    /// error (leaving the set unchanged) when it is the last one.
    pub fn remove(&self, endpoint: &Endpoint) -> Result<bool, LoadError> {
        let mut would_empty = false;
        let changed = self.replace(|current| {
            if !current.contains(endpoint) {
                return None;
            }
            let next: Vec<Endpoint> = current.iter().filter(|e| *e != endpoint).cloned().collect();
            if next.is_empty() {
                would_empty = true;
                return None;
            }
            Some(Arc::from(next))
        })?;
        if would_empty {
            return Err(LoadError::EmptyTargets);
        }
        Ok(changed)
    }

    /// The current set.
    pub fn snapshot(&self) -> Arc<[Endpoint]> {
        Arc::clone(
            &self
                .shared
                .current
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Changes whenever the set changes; cheap to read on every request.
    pub(crate) fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// Applies `change` under the write lock; `None` from it means "no change".
    fn replace(
        &self,
        change: impl FnOnce(&Arc<[Endpoint]>) -> Option<Arc<[Endpoint]>>,
    ) -> Result<bool, LoadError> {
        let mut current = self
            .shared
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match change(&current) {
            Some(next) => {
                *current = next;
                // Published while still holding the lock, so a worker that sees the
                // new generation reads the new set (or a newer one).
                self.shared.generation.fetch_add(1, Ordering::Release);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

impl fmt::Debug for Targets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.snapshot().iter()).finish()
    }
}

fn dedup(endpoints: Vec<Endpoint>) -> Result<Arc<[Endpoint]>, LoadError> {
    let mut unique: Vec<Endpoint> = Vec::with_capacity(endpoints.len());
    for endpoint in endpoints {
        if !unique.contains(&endpoint) {
            unique.push(endpoint);
        }
    }
    if unique.is_empty() {
        return Err(LoadError::EmptyTargets);
    }
    Ok(Arc::from(unique))
}

fn invalid_target(url: &str, reason: impl Into<String>) -> LoadError {
    LoadError::InvalidTarget {
        url: url.to_owned(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str) -> Endpoint {
        Endpoint::parse(url).unwrap()
    }

    #[test]
    fn parses_endpoints_and_paths() {
        let e = endpoint("http://127.0.0.1:8000");
        assert_eq!(e.address(), "127.0.0.1:8000");
        assert_eq!(e.url(), "http://127.0.0.1:8000");
        assert_eq!(endpoint("http://localhost/").address(), "localhost:80");
        let (e, path) = Endpoint::parse_with_path("http://127.0.0.1:9/predict?x=1").unwrap();
        assert_eq!(e.address(), "127.0.0.1:9");
        assert_eq!(path.as_deref(), Some("/predict?x=1"));
        for bad in [
            "127.0.0.1:8000",
            "https://127.0.0.1",
            "http://",
            "not a url",
            "http://u@h",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad} should not parse");
        }
        assert!(Endpoint::parse("http://127.0.0.1:1/predict").is_err());
    }

    #[test]
    fn changes_are_seen_by_every_clone_and_bump_the_generation() {
        let a = endpoint("http://127.0.0.1:1");
        let b = endpoint("http://127.0.0.1:2");
        let targets = Targets::new(vec![a.clone(), a.clone()]).unwrap();
        assert_eq!(targets.snapshot().len(), 1, "duplicates are dropped");
        let clone = targets.clone();
        let g0 = clone.generation();

        assert!(targets.add(b.clone()));
        assert!(!targets.add(b.clone()), "adding twice is a no-op");
        assert_eq!(clone.snapshot().to_vec(), vec![a.clone(), b.clone()]);
        assert!(clone.generation() > g0);

        assert!(targets.remove(&a).unwrap());
        assert!(!targets.remove(&a).unwrap());
        assert!(matches!(targets.remove(&b), Err(LoadError::EmptyTargets)));
        assert_eq!(clone.snapshot().to_vec(), vec![b.clone()]);

        targets.set(vec![a.clone(), b.clone()]).unwrap();
        assert_eq!(clone.snapshot().len(), 2);
        assert!(matches!(targets.set(vec![]), Err(LoadError::EmptyTargets)));
        assert!(Targets::new(vec![]).is_err());
    }
}
