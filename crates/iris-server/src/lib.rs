//! iris-server: an Iris classifier behind HTTP, the service under test.
