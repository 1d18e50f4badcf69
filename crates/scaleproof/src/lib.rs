//! scaleproof: prove that a service autoscales, and gate pull requests on it.

pub mod hpa;
pub mod timeline;
