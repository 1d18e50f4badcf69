//! kube-proxy's NodePorts in front of the pods: for every node port a Service
//! claims, a loopback listener that hands each new connection to a random ready
//! endpoint of that Service, as kube-proxy does (iptables mode picks an endpoint per
//! connection at random), and copies bytes both ways until either side closes. The
//! load engine then talks to one URL per Service, one request per connection, exactly
//! as it does on kind.
//!
//! A node port is one number on the node, so on loopback it is one listener on a
//! free port of 127.0.0.1, found by its node port ([`NodePorts::url`]), much as
//! kind's `extraPortMappings` map a node port to a host port.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What one node port forwards to: the Service that holds it and that Service's
/// ready endpoints, kept by the kubelet.
#[derive(Debug, Clone, Default)]
pub struct Endpoints(Arc<RwLock<Backends>>);

#[derive(Debug, Default)]
struct Backends {
    /// `namespace/name` of the Service holding the port.
    service: Option<String>,
    addrs: Vec<SocketAddr>,
    /// Whether a connection came in since `service` took the port.
    used: bool,
}

impl Endpoints {
    /// Sets the ready endpoints, the holder unchanged.
    pub fn set(&self, mut endpoints: Vec<SocketAddr>) {
        endpoints.sort();
        let mut current = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if current.addrs != endpoints {
            current.addrs = endpoints;
        }
    }

    /// Sets the Service holding the port (`namespace/name`, `None` when none does)
    /// and its ready endpoints. A new holder has had no connection yet.
    pub fn assign(&self, service: Option<String>, endpoints: Vec<SocketAddr>) {
        {
            let mut current = self.0.write().unwrap_or_else(PoisonError::into_inner);
            if current.service != service {
                current.service = service;
                current.used = false;
            }
        }
        self.set(endpoints);
    }

    pub fn snapshot(&self) -> Vec<SocketAddr> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .addrs
            .clone()
    }

    /// The holder, the first time a connection arrives since it took the port.
    fn first_connection(&self) -> Option<String> {
        let mut current = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if current.used {
            return None;
        }
        current.used = true;
        current.service.clone()
    }
}

/// Where a node port reports the first connection to each Service that holds it
/// (`namespace/name`): the start of a scenario's load, as the cluster sees it.
pub type Arrivals = tokio::sync::mpsc::UnboundedSender<String>;

/// Every node port's listener, opened when a Service first claims the port (the
/// kubelet publishes its endpoints) or someone first asks for its URL, whichever
/// comes first; a port no Service claims any more keeps its listener with no
/// endpoints, so its connections are refused as kube-proxy's are.
#[derive(Clone, Default)]
pub struct NodePorts {
    ports: Arc<Mutex<BTreeMap<u16, NodePort>>>,
    arrivals: Option<Arrivals>,
}

impl NodePorts {
    /// Node ports that report each Service's first connection to `arrivals`.
    pub fn reporting_to(arrivals: Arrivals) -> Self {
        NodePorts {
            ports: Arc::default(),
            arrivals: Some(arrivals),
        }
    }

    /// The URL of node port `node_port` on loopback (its listener opened if needed).
    pub fn url(&self, node_port: u16) -> std::io::Result<String> {
        let mut ports = self.ports.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(port) = ports.get(&node_port) {
            return Ok(port.url());
        }
        let port = NodePort::open(Endpoints::default(), self.arrivals.clone())?;
        let url = port.url();
        tracing::debug!("node port {node_port} listens at {url}");
        ports.insert(node_port, port);
        Ok(url)
    }

    /// Sets every node port's holder and ready endpoints: `by_port` holds each port
    /// a Service claims (`namespace/name`, with no endpoints when none is ready);
    /// ports not in it are held by none.
    pub fn publish(&self, by_port: &BTreeMap<u16, (String, Vec<SocketAddr>)>) {
        for node_port in by_port.keys() {
            if let Err(e) = self.url(*node_port) {
                tracing::warn!("node port {node_port}: cannot listen on loopback: {e}");
            }
        }
        let ports = self.ports.lock().unwrap_or_else(PoisonError::into_inner);
        for (node_port, port) in ports.iter() {
            match by_port.get(node_port) {
                Some((service, addrs)) => {
                    port.endpoints.assign(Some(service.clone()), addrs.clone())
                }
                None => port.endpoints.assign(None, Vec::new()),
            }
        }
    }

    /// The node ports with a listener, and where each listens.
    pub fn listening(&self) -> BTreeMap<u16, SocketAddr> {
        let ports = self.ports.lock().unwrap_or_else(PoisonError::into_inner);
        ports.iter().map(|(n, p)| (*n, p.addr)).collect()
    }

    /// Stops every listener.
    pub async fn stop(&self) {
        let ports: Vec<NodePort> = {
            let mut ports = self.ports.lock().unwrap_or_else(PoisonError::into_inner);
            std::mem::take(&mut *ports).into_values().collect()
        };
        for port in ports {
            port.stop().await;
        }
    }
}

/// One node port's listener, until stopped or dropped.
pub struct NodePort {
    pub addr: SocketAddr,
    endpoints: Endpoints,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl NodePort {
    /// Listens on a free port of 127.0.0.1, handing connections to `endpoints`
    /// (and each holder's first to `arrivals`). Needs a tokio runtime (the
    /// cluster's), and says so instead of panicking.
    pub fn open(endpoints: Endpoints, arrivals: Option<Arrivals>) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?;
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let listener = {
            let _entered = runtime.enter();
            TcpListener::from_std(listener)?
        };
        let stop = CancellationToken::new();
        let task = runtime.spawn(accept(listener, endpoints.clone(), arrivals, stop.clone()));
        Ok(NodePort {
            addr,
            endpoints,
            stop,
            task: Some(task),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for NodePort {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn accept(
    listener: TcpListener,
    endpoints: Endpoints,
    arrivals: Option<Arrivals>,
    stop: CancellationToken,
) {
    let mut seed = seed();
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((client, _)) = accepted else { continue };
        if let (Some(arrivals), Some(service)) = (&arrivals, endpoints.first_connection()) {
            // Nobody listening any more (the cluster stopping) is no error here.
            let _ = arrivals.send(service);
        }
        let choices = endpoints.snapshot();
        if choices.is_empty() {
            // No ready endpoint: kube-proxy rejects the connection.
            drop(client);
            continue;
        }
        seed = xorshift(seed);
        let backend = choices[(seed % choices.len() as u64) as usize];
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = relay(client, backend) => {}
            }
        });
    }
}

async fn relay(mut client: TcpStream, backend: SocketAddr) {
    let _ = client.set_nodelay(true);
    let Ok(mut upstream) = TcpStream::connect(backend).await else {
        return; // the endpoint went away: the client sees the connection close
    };
    let _ = upstream.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0x2545_f491_4f6c_dd1d, |d| d.as_nanos() as u64)
        | 1
}

/// xorshift64: enough randomness to spread connections; no crate needed for it.
fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A server that answers every connection with its own name.
    async fn named(name: &'static str) -> (SocketAddr, JoinHandle<()>) {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let _ = s.write_all(name.as_bytes()).await;
            }
        });
        (addr, task)
    }

    #[tokio::test]
    async fn connections_spread_over_the_ready_endpoints_and_none_means_refused() {
        let (a, ta) = named("a").await;
        let (b, tb) = named("b").await;
        let endpoints = Endpoints::default();
        let port = NodePort::open(endpoints.clone(), None).expect("listen");
        let read = |addr: SocketAddr| async move {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            let mut text = String::new();
            let _ = s.read_to_string(&mut text).await;
            text
        };
        assert_eq!(read(port.addr).await, "", "no endpoint: closed at once");
        endpoints.set(vec![a, b]);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..40 {
            seen.insert(read(port.addr).await);
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["a", "b"]);
        endpoints.set(vec![b]);
        for _ in 0..10 {
            assert_eq!(read(port.addr).await, "b");
        }
        port.stop().await;
        ta.abort();
        tb.abort();
    }

    #[tokio::test]
    async fn each_node_port_serves_its_own_services_endpoints() {
        let (a, ta) = named("a").await;
        let (b, tb) = named("b").await;
        let (arrivals, mut arrived) = tokio::sync::mpsc::unbounded_channel();
        let ports = NodePorts::reporting_to(arrivals);
        let read = |url: String| async move {
            let addr = url.trim_start_matches("http://");
            let mut s = TcpStream::connect(addr).await.expect("connect");
            let mut text = String::new();
            let _ = s.read_to_string(&mut text).await;
            text
        };
        // Asked for before any Service claims it: listening, refusing.
        let first = ports.url(30080).expect("listen");
        assert_eq!(
            ports.url(30080).expect("again"),
            first,
            "one listener per port"
        );
        assert_eq!(read(first.clone()).await, "");
        let held = |service: &str, addrs: Vec<SocketAddr>| (service.to_string(), addrs);
        ports.publish(&BTreeMap::from([
            (30080, held("ns-a/web", vec![a])),
            (30081, held("ns-b/web", vec![b])),
        ]));
        let second = ports.url(30081).expect("opened by publish");
        assert_ne!(first, second);
        for _ in 0..10 {
            assert_eq!(read(first.clone()).await, "a");
            assert_eq!(read(second.clone()).await, "b");
        }
        // Each holder's first connection is reported once (the refused one before
        // any holder is not).
        let mut reported = vec![
            arrived.recv().await.expect("one"),
            arrived.recv().await.expect("two"),
        ];
        reported.sort();
        assert_eq!(reported, ["ns-a/web", "ns-b/web"]);
        assert!(arrived.try_recv().is_err(), "once per holder");
        // 30081's Service is gone: its port refuses, 30080's still serves; a new
        // holder of 30081 is reported at its first connection.
        ports.publish(&BTreeMap::from([(30080, held("ns-a/web", vec![a]))]));
        assert_eq!(read(second.clone()).await, "");
        assert_eq!(read(first).await, "a");
        ports.publish(&BTreeMap::from([
            (30080, held("ns-a/web", vec![a])),
            (30081, held("ns-c/web", vec![b])),
        ]));
        assert_eq!(read(second).await, "b");
        assert_eq!(arrived.recv().await.expect("three"), "ns-c/web");
        assert_eq!(ports.listening().len(), 2);
        ports.stop().await;
        assert!(ports.listening().is_empty());
        ta.abort();
        tb.abort();
    }
}
