//! Shared helpers for tests that run real iris-server replicas.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use scaleproof::manifests::Manifests;

/// The repository's k8s/ manifests.
pub fn manifests() -> Manifests {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../k8s");
    Manifests::load(&dir).expect("k8s/ parses")
}

/// What the simulated kubelet runs for k8s/'s container: iris-server, as
/// stress.toml's `[backend.local.containers.iris-server]` says.
pub fn iris_containers() -> std::collections::BTreeMap<String, scaleproof_sim::LocalProgram> {
    std::collections::BTreeMap::from([(
        "iris-server".to_string(),
        scaleproof_sim::LocalProgram::executable(iris_server()),
    )])
}

/// The iris-server executable of this workspace, built once per test binary in the
/// profile the tests run in. (A dev-dependency gives the library, not the binary.)
pub fn iris_server() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "iris-server",
                "--bin",
                "iris-server",
            ])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building iris-server failed");
        // target/debug/deps/<test> -> target/debug/iris-server
        let exe = std::env::current_exe().expect("test executable path");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target profile dir");
        let bin = dir.join("iris-server");
        assert!(bin.exists(), "{} missing after build", bin.display());
        bin
    })
    .clone()
}

/// Cgroups of this process that still exist (should be none after a test).
pub fn leftover_cgroups() -> Vec<PathBuf> {
    leftover_cgroups_of(std::process::id())
}

/// Cgroups created by the harness process `owner` that still exist.
pub fn leftover_cgroups_of(owner: u32) -> Vec<PathBuf> {
    let prefix = format!("scaleproof-{owner}-");
    let mut found = Vec::new();
    for parent in [
        "/sys/fs/cgroup",
        "/sys/fs/cgroup/cpu",
        "/sys/fs/cgroup/cpuacct",
        "/sys/fs/cgroup/memory",
    ] {
        if let Ok(entries) = std::fs::read_dir(parent) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(&prefix) {
                    found.push(entry.path());
                }
            }
        }
    }
    found
}

/// Whether a process with this pid still runs (a zombie counts as gone).
pub fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// An axum server on a free loopback port, stopped when dropped.
pub struct TestServer {
    pub addr: std::net::SocketAddr,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub async fn start(router: axum::Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("bound address");
        let stop = tokio_util::sync::CancellationToken::new();
        let shutdown = stop.clone();
        let task = tokio::spawn(async move {
            let serving = axum::serve(listener, router)
                .with_graceful_shutdown(async move { shutdown.cancelled().await });
            serving.await.expect("test server failed");
        });
        Self { addr, stop, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.cancel();
        self.task.abort();
    }
}

/// A loopback address nothing listens on (bound, then released).
pub async fn closed_port() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    listener.local_addr().expect("bound address")
}

/// A stress config as a user's repository has it: the repository's `k8s/` by path,
/// iris-server as a `command` (no workspace needed), fast timing, then `extra`
/// (faults, scenarios).
pub fn user_config(extra: &str) -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    format!(
        r#"
[target]
namespace = "scaleproof"
deployment = "iris-classifier"
hpa = "iris-classifier-hpa"
manifests = {manifests:?}

[backend.local]
timing = "fast"

[backend.local.env]
IRIS_CPU_COST_MS = "5"

[backend.local.containers.iris-server]
command = [{server:?}]
{extra}"#,
        manifests = repo.join("k8s").display().to_string(),
        server = iris_server().display().to_string(),
    )
}

/// Runs `scaleproof stress --backend local --out out` in `dir` as CI does.
pub fn run_stress_in(dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_scaleproof"))
        .args(["stress", "--backend", "local", "--out", "out"])
        .current_dir(dir)
        .env("CI", "true")
        .output()
        .expect("run the scaleproof binary")
}
