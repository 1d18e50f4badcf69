//! The harness end to end, in one test binary: the cluster code against a mocked
//! API server and against the local backend's simulated cluster (real pods), the
//! manifests, the workflows, and the CLI.

mod support;

mod baseline_fetch;
mod cluster_api;
mod load_cli;
mod outside_workspace;
mod sim;

mod manifests;
mod workflows;
