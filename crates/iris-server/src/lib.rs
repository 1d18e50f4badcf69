//! iris-server: an Iris classifier behind HTTP, the service under test.
//!
//! A depth-3 Gini decision tree ([`model`], built on the small CART in [`cart`]) is
//! trained at start-up on the Iris data set embedded in the binary ([`dataset`]) and
//! served over a FastAPI-compatible JSON API ([`api`]). [`cost`] can add simulated CPU
//! work per prediction so a CPU-limited pod feels load, and [`memory`] memory held per
//! in-flight prediction so a pod's working set grows with load; [`server`] adds the graceful
//! drain Kubernetes needs; [`startup`] is what the binary runs.
//!
//! In-process use: bind a `tokio::net::TcpListener` and call [`serve`] with a
//! [`Config`] and a shutdown future; or build a [`router`] over an [`AppState`] and
//! drive it as a `tower::Service`.

pub mod api;
pub mod cart;
pub mod config;
pub mod cost;
pub mod dataset;
pub mod inference;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod server;
pub mod startup;
pub mod state;

pub use api::router;
pub use config::{Cli, Config, LogFormat};
pub use model::{IrisModel, Prediction};
pub use server::{serve, serve_with_state};
pub use state::{AppState, Readiness};
