//! Test servers for the load engine's tests: real HTTP on 127.0.0.1, port 0,
//! stopped when their guard drops (also when a test fails).

#![allow(dead_code)] // Each test crate uses a different part of this module.

use std::net::SocketAddr;

use axum::Router;
use scaleproof_load::{Endpoint, Targets};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// An axum server on a free loopback port.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl TestServer {
    pub async fn start(router: Router) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("bound address");
        let stop = CancellationToken::new();
        let shutdown = stop.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await
                .expect("test server failed");
        });
        Self { addr, stop, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn endpoint(&self) -> Endpoint {
        Endpoint::parse(&self.url()).expect("test server URL")
    }

    pub fn targets(&self) -> Targets {
        Targets::single(self.endpoint())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.cancel();
        self.task.abort();
    }
}

/// A raw TCP server that accepts connections and closes each one as soon as a
/// request starts arriving, without answering.
pub struct HangUpServer {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl HangUpServer {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("bound address");
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                use tokio::io::AsyncReadExt;
                let mut buffer = [0u8; 64];
                let _ = stream.read(&mut buffer).await;
                drop(stream);
            }
        });
        Self { addr, task }
    }

    pub fn targets(&self) -> Targets {
        Targets::parse([format!("http://{}", self.addr)]).expect("test server URL")
    }
}

impl Drop for HangUpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A loopback address nothing listens on (bound, then released).
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    listener.local_addr().expect("bound address")
}
