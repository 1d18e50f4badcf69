//! scaleproof: prove that a service autoscales, and gate pull requests on it.

pub mod load;
pub mod timeline;
