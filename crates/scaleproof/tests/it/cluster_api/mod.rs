//! The `cluster` module against a mocked Kubernetes API server: every request it
//! makes is asserted (method, path, query where it matters, body) and answered with
//! real-shaped JSON from `tests/fixtures/cluster/`, error paths included.

pub mod mock;

mod apply;
mod control_plane;
mod diagnostics;
mod metrics_server;
mod observer;
mod reset;
mod rollout;
mod setup;

use scaleproof::cluster::{HpaOverrides, Prepared, Target};
use scaleproof::manifests::Manifests;

/// The namespace every test deploys into.
pub const NS: &str = "scaleproof";
/// The image tag every test deploys.
pub const IMAGE: &str = "iris-server:abc1234";
/// The pods' label selector, URL-encoded as it appears in queries.
pub const SELECTOR_QUERY: &str = "labelSelector=app.kubernetes.io%2Fname%3Diris-classifier";

/// The repository's k8s/ manifests, prepared for [`NS`] and [`IMAGE`].
pub fn prepared(overrides: &HpaOverrides) -> Prepared {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../k8s");
    let manifests = Manifests::load(&dir).expect("k8s/ loads");
    Prepared::new(&manifests, NS, IMAGE, None, overrides).expect("k8s/ prepares")
}

pub fn target() -> Target {
    prepared(&HpaOverrides::default()).target
}
