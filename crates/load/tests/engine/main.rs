//! The load engine end to end: real HTTP on 127.0.0.1 against test servers that
//! stop when their guard drops. One test binary, one module per concern.

mod support;

mod counts;
mod errors;
mod http;
mod open_loop;
mod stages;
mod targets;
