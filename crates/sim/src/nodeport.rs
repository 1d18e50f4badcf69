//! The NodePort in front of the pods: a loopback listener that hands each new
//! connection to a random ready endpoint, as kube-proxy does (iptables mode picks an
//! endpoint per connection at random), and copies bytes both ways until either side
//! closes. The load engine then talks to one URL, one request per connection,
//! exactly as it does on kind.

use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The ready endpoints of the Service, shared with the kubelet that keeps them.
#[derive(Debug, Clone, Default)]
pub struct Endpoints(Arc<RwLock<Vec<SocketAddr>>>);

impl Endpoints {
    pub fn set(&self, mut endpoints: Vec<SocketAddr>) {
        endpoints.sort();
        let mut current = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if *current != endpoints {
            *current = endpoints;
        }
    }

    pub fn snapshot(&self) -> Vec<SocketAddr> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The listener, until stopped or dropped.
pub struct NodePort {
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl NodePort {
    /// Listens on a free port of 127.0.0.1.
    pub async fn start(endpoints: Endpoints) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let task = tokio::spawn(accept(listener, endpoints, stop.clone()));
        Ok(NodePort {
            addr,
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

async fn accept(listener: TcpListener, endpoints: Endpoints, stop: CancellationToken) {
    let mut seed = seed();
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((client, _)) = accepted else { continue };
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
        let port = NodePort::start(endpoints.clone()).await.expect("listen");
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
}
