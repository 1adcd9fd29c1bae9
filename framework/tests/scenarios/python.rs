//! CPython's Lib/test/test_socketserver.py, in Rust.
