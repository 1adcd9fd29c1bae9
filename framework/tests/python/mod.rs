//! CPython's Lib/test/test_socketserver.py, in Rust.
//!
//! Every stream-socket scenario of that file (as of CPython 3.11), under
//! every model of [`MODELS`] and over both families of
//! [`FAMILIES`](crate::util::FAMILIES) where it applies. Each test names
//! the Python test it mirrors.
//!
//! Three scenarios count the process's descriptors or threads
//! (`test_tcpserver_bind_leak`, `test_context_manager`,
//! `test_threads_reaped`): they live in the module `counting`, each run
//! alone in a child process, so that their counts are exact.
//!
//! Not here, on purpose:
//! * the datagram scenarios (`test_UDPServer`, `test_UnixDatagramServer`
//!   and their threading/forking variants): this module covers stream
//!   sockets;
//! * the forking variants (`test_ForkingTCPServer`,
//!   `test_ForkingUnixStreamServer`, `test_forking_handled`,
//!   `test_forking_not_handled`): they are in the module
//!   `processes::cpython`, each run alone in a child process;
//! * `MiscTestCase.test_all` (every public name is in `__all__`): Rust's
//!   visibility rules and `#![deny(missing_docs)]` do that job.
//!
//! A submodule per CPython test class: `socket_server`
//! (`SocketServerTest`), `error_handler` (`ErrorHandlerTest`),
//! `socket_writer` (`SocketWriterTest`), `base_server` (`MiscTestCase` and
//! `BaseServer.handle_request`'s timeout). This module holds the model
//! constants and Python's `make_server` they share.

mod base_server;
mod error_handler;
mod socket_server;
mod socket_writer;

use socketserver::{Model, RequestHandler};

use crate::util::{bind_with_path, Family, MODELS};

const SYNC: Model = Model::Sync;
const THREADING: Model = Model::Threading;

/// The pool model of [`MODELS`].
fn pool() -> Model {
    MODELS
        .into_iter()
        .find(|m| matches!(m, Model::Pool { .. }))
        .expect("MODELS has a pool")
}

/// Python's `make_server`: [`bind_with_path`] with the model.
fn make_server<H: RequestHandler>(
    family: Family,
    model: Model,
    handler: H,
) -> (socketserver::Builder<H>, Option<std::path::PathBuf>) {
    let (builder, path) = bind_with_path(family, handler);
    (builder.model(model), path)
}
