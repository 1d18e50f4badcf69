//! scaleproof: prove that a service autoscales, and gate pull requests on it.

pub mod cluster;
pub mod manifests;
pub mod timeline;
