//! The endpoints a run spreads its requests over, round-robin per worker. One URL
//! is the usual case (a Service's NodePort balances behind it, as kube-proxy does);
//! several are for a user who wants the client to balance over fixed endpoints.
//! The set is fixed for the run: balancing over pods that come and go is the
//! NodePort's job, on kind and in the local backend's simulated cluster alike.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

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

/// A fixed, non-empty set of endpoints; cloning is cheap.
#[derive(Clone)]
pub struct Targets {
    endpoints: Arc<[Endpoint]>,
}

impl Targets {
    /// A set of endpoints (duplicates are dropped, order kept).
    pub fn new(endpoints: Vec<Endpoint>) -> Result<Self, LoadError> {
        Ok(Self {
            endpoints: dedup(endpoints)?,
        })
    }

    /// A set of one endpoint.
    pub fn single(endpoint: Endpoint) -> Self {
        Self {
            endpoints: Arc::from(vec![endpoint]),
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

    /// The endpoints, in order.
    pub fn snapshot(&self) -> Arc<[Endpoint]> {
        Arc::clone(&self.endpoints)
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
    fn a_set_drops_duplicates_and_is_never_empty() {
        let a = endpoint("http://127.0.0.1:1");
        let b = endpoint("http://127.0.0.1:2");
        let targets = Targets::new(vec![a.clone(), b.clone(), a.clone()]).unwrap();
        assert_eq!(
            targets.snapshot().to_vec(),
            vec![a, b],
            "duplicates dropped, order kept"
        );
        assert!(matches!(Targets::new(vec![]), Err(LoadError::EmptyTargets)));
    }
}
