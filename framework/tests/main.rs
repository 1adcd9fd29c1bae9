//! The framework's scenario tests: real sockets, real threads, every model
//! and both socket families; one test binary, a module per area.
//!
//! `python` is CPython's own `test_socketserver.py`, scenario by scenario;
//! the other modules test what goes beyond it. `processes` (the forking and
//! prefork models), `counting` (exact counts of descriptors and threads)
//! and the forking tests of `per_address` run each test alone in a child
//! process of this binary ([`util::isolated`]).

mod util;

mod counting;
mod datagram;
mod event;
mod isolation;
mod limits;
mod per_address;
mod processes;
mod python;
mod resources;
mod shutdown;
mod stream;
mod tls;
