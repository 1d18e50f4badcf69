//! Shared glue for the stress scenarios.
