//! What went wrong with one connection or datagram: the [`Step`] that
//! failed, the [`Failure`] given to the server's `handle_error` hook, and
//! that hook's default, [`Failure::log`].

use std::any::Any;
use std::fmt;
use std::io;

use crate::Address;

/// The step of the life cycle in which a handler failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// [`RequestHandler::setup`](crate::RequestHandler::setup).
    Setup,
    /// [`RequestHandler::handle`](crate::RequestHandler::handle).
    Handle,
    /// [`RequestHandler::finish`](crate::RequestHandler::finish).
    Finish,
    /// Sending the output still buffered after `finish`.
    Flush,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Setup => "setup",
            Step::Handle => "handle",
            Step::Finish => "finish",
            Step::Flush => "flush",
        })
    }
}

/// What went wrong with one connection, as given to the server's
/// `handle_error` hook.
#[derive(Debug)]
#[non_exhaustive]
pub enum Failure {
    /// A step returned an error.
    Error {
        /// The step that failed.
        step: Step,
        /// Its error.
        error: io::Error,
    },
    /// A step panicked; the panic was caught and the server goes on.
    Panic {
        /// The step that panicked.
        step: Step,
        /// The panic's message, when it had one.
        message: String,
    },
}

impl Failure {
    /// The step that failed.
    pub fn step(&self) -> Step {
        match self {
            Failure::Error { step, .. } | Failure::Panic { step, .. } => *step,
        }
    }

    /// Logs the failure as the default `handle_error` hook does: one line
    /// with the peer's address, at a level that fits what happened (a
    /// panic is an error; a timeout or a peer gone, information; anything
    /// else, a warning). For a hook that does something more and still
    /// wants the usual line.
    pub fn log(&self, peer: &Address) {
        match self {
            Failure::Panic { .. } => log::error!("{peer}: {self}"),
            f if f.is_timeout() || f.is_disconnect() => log::info!("{peer}: {self}"),
            _ => log::warn!("{peer}: {self}"),
        }
    }

    /// True when the idle timeout ended the connection.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Failure::Error { error, .. } if error.kind() == io::ErrorKind::TimedOut)
    }

    /// True when the peer went away (reset, broken pipe, end of input in
    /// the middle of a message): the peer's doing more than the handler's.
    pub fn is_disconnect(&self) -> bool {
        matches!(self, Failure::Error { error, .. } if matches!(
            error.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof
                | io::ErrorKind::NotConnected
        ))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Error { step, error } => {
                write!(f, "{step} failed: {}", crate::describe(error))
            }
            Failure::Panic { step, message } => write!(f, "{step} panicked: {message}"),
        }
    }
}

pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_string()
    }
}
