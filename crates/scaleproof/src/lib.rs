//! scaleproof: prove that a service autoscales, and gate pull requests on it.
//!
//! Data flows one way: a [`scenario`] drives [`load`] while a backend ([`local`] or
//! [`cluster`]) records the autoscaler's [`timeline`]; [`verdict`] judges both against
//! the scenario's expectations and [`report`] writes what people and machines read.

pub mod cluster;
pub mod gate;
pub mod local;
pub mod manifests;
pub mod report;
pub mod scenario;
pub mod timeline;
pub mod verdict;

#[cfg(test)]
mod fixtures;
