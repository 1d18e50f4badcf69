//! The harness end to end, in one test binary: the cluster code against a mocked
//! API server, the local backend with real replicas, the manifests, and the CLI.

mod support;

mod cluster_api;
mod load_cli;
mod local_backend;
mod manifests;
mod workflows;
