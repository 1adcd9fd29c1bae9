//! [`WhenDraining`]: what a conversation does when its server drains.
//!
//! A graceful shutdown closes the listening socket at once and then waits
//! for the live conversations. The framework cannot see where one request
//! ends and the next begins in a chat, a shell or any protocol of its own,
//! so it never decides that a conversation is over: by default each goes
//! on until it ends or the drain timeout runs out (Python's
//! `block_on_close`, Perl's Net::Server). A handler that knows its safe
//! points says so, read by read, with [`Stream::set_when_draining`], and
//! tells a drain's end of input from a client's hang-up with
//! [`Stream::is_draining`].
//!
//! [`Stream::set_when_draining`]: crate::Stream::set_when_draining
//! [`Stream::is_draining`]: crate::Stream::is_draining

/// What a conversation's reads do when the server starts draining (after
/// [`ShutdownHandle::shutdown`](crate::ShutdownHandle::shutdown), or a
/// signal given to [`Builder::stop_when_readable`](crate::Builder::stop_when_readable)).
///
/// Set per stream, and as often as the protocol needs, with
/// [`Stream::set_when_draining`](crate::Stream::set_when_draining): an FTP
/// session asks for [`EndWaitingRead`](WhenDraining::EndWaitingRead) while
/// it waits for the next command, and for [`Finish`](WhenDraining::Finish)
/// while a transfer runs, so that the transfer completes before it says
/// `421` and closes.
///
/// ```
/// use socketserver::{RequestHandler, Stream, WhenDraining};
///
/// #[derive(Clone)]
/// struct Polite;
///
/// impl RequestHandler for Polite {
///     fn handle(&mut self, stream: &mut Stream) -> std::io::Result<()> {
///         // Every line is a whole request: between two, ending is safe.
///         stream.set_when_draining(WhenDraining::EndWaitingRead);
///         while let Some(line) = stream.next_line()? {
///             stream.write_all(line.to_uppercase().as_bytes())?;
///         }
///         if stream.is_draining() {
///             stream.write_all(b"bye: the server is shutting down\n")?;
///         }
///         Ok(())
///     }
/// }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WhenDraining {
    /// The conversation goes on as if nothing happened, until it ends (the
    /// client hangs up, the handler returns) or the drain timeout runs out
    /// and the connection is cut. The default: right for any conversation
    /// whose request boundaries the framework cannot see.
    #[default]
    Finish,
    /// A read that waits for the next message returns end of input at once
    /// when the server drains: one waiting when the drain begins, and any
    /// begun after it. "Waiting for the next message" means nothing is
    /// buffered and everything received has been answered (written after),
    /// so a request received in part is never ended: its read waits for
    /// the rest, as under [`Finish`](WhenDraining::Finish). Writes still go
    /// out, so the handler can say goodbye.
    EndWaitingRead,
}
