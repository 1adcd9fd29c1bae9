//! [`RequestHandler`]: what to do with one connection.

use std::io;

use crate::{Refusal, Stream};

/// The conversation with one client: Python's `BaseRequestHandler`.
///
/// The server keeps the handler value it was given and clones it for each
/// connection, the way Python instantiates the handler class per request; so
/// configuration lives in the value's fields, and per-connection state can
/// too, since each connection gets a fresh copy. Share state between
/// connections through an `Arc` in a field.
///
/// For each connection the server calls, in order:
///
/// 1. [`setup`](RequestHandler::setup), to prepare (default: nothing);
/// 2. [`handle`](RequestHandler::handle), the conversation itself, skipped
///    if `setup` failed;
/// 3. [`finish`](RequestHandler::finish), to clean up, run even when
///    `setup` or `handle` failed or panicked, as Python's `try`/`finally`.
///
/// Then the server flushes the stream and closes the connection. An error
/// returned from any of them, or a panic, goes to the server's
/// `handle_error` hook with the peer's address; the server goes on serving.
///
/// ```
/// use socketserver::{RequestHandler, Stream};
///
/// /// Answers each line in upper case.
/// #[derive(Clone)]
/// struct Upper;
///
/// impl RequestHandler for Upper {
///     fn handle(&mut self, stream: &mut Stream) -> std::io::Result<()> {
///         while let Some(line) = stream.next_line()? {
///             stream.write_all(line.to_uppercase().as_bytes())?;
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait RequestHandler: Clone + Send + 'static {
    /// Runs before [`handle`](RequestHandler::handle): greet the client,
    /// adjust the stream's timeouts or limits, authenticate.
    ///
    /// # Errors
    /// An error skips `handle`; `finish` still runs.
    fn setup(&mut self, stream: &mut Stream) -> io::Result<()> {
        let _ = stream;
        Ok(())
    }

    /// Serves the connection: read requests from `stream`, write replies to
    /// it. Return when the conversation is over; the server closes the
    /// connection.
    ///
    /// # Errors
    /// Return any I/O error; the server reports it through its
    /// `handle_error` hook and goes on.
    fn handle(&mut self, stream: &mut Stream) -> io::Result<()>;

    /// Runs after [`handle`](RequestHandler::handle), whatever happened to
    /// it: release what `setup` took.
    ///
    /// # Errors
    /// An error is reported like one from `handle`.
    fn finish(&mut self, stream: &mut Stream) -> io::Result<()> {
        let _ = stream;
        Ok(())
    }

    /// Runs instead of the three steps above when the server refuses the
    /// connection before serving it, for the reason `why`: the client's
    /// address already has [`max_per_ip`](crate::Builder::max_per_ip)
    /// conversations, or the server is full under
    /// [`WhenFull::Refuse`](crate::WhenFull::Refuse). Say why in the
    /// protocol's words (an FTP server answers `421`); the stream is
    /// flushed and closed after. Default: nothing is said.
    ///
    /// It runs in the serving thread (the accept loop, or a prefork
    /// worker), on a fresh socket whose send buffer is empty, so a short
    /// message never blocks; keep it that short.
    ///
    /// # Errors
    /// An error is logged; the connection is closed either way.
    fn refuse(&mut self, stream: &mut Stream, why: Refusal) -> io::Result<()> {
        let _ = (stream, why);
        Ok(())
    }
}
