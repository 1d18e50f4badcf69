//! scaleproof: prove that a service autoscales, and gate pull requests on it.
//!
//! Data flows one way: a [`scenario`] drives the load engine (`scaleproof-load`)
//! while a [`backend`] records the autoscaler's [`timeline`]; [`verdict`] judges both
//! against the scenario's expectations and [`report`] writes what people and machines
//! read. [`gate`] runs it all: the orchestrator (`scaleproof stress`) and the
//! scenario tests it hands the prepared backend to.

pub mod backend;
pub mod baseline_fetch;
pub mod calibrate;
pub mod cluster;
pub mod compile;
pub mod gate;
pub mod logging;
pub mod manifests;
pub mod report;
pub mod scenario;
pub mod timeline;
pub mod verdict;

/// Hand-made measurements for the tests of verdicts, reports and the cluster code.
#[doc(hidden)]
pub mod fixtures;
