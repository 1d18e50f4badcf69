//! scaleproof: prove that a service autoscales, and gate pull requests on it.

pub mod manifests;
pub mod scenario;
pub mod timeline;
