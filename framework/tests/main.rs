//! The framework's scenario tests: real sockets, real threads, every model
//! and both socket families.
//!
//! `python` is CPython's own `test_socketserver.py`, scenario by scenario;
//! the other modules test what goes beyond it.

mod util;

mod datagram;
mod isolation;
mod limits;
mod python;
mod resources;
mod shutdown;
mod stream;
mod tls;
