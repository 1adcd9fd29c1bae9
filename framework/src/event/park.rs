//! The seam between a conversation's code and its loop: which coroutine
//! runs on this thread now, how it parks, and how it asks its loop to
//! watch a descriptor for it.
//!
//! A coroutine's body records itself here when it starts; [`park`] takes
//! the record, suspends, and puts it back when the loop resumes it, so the
//! record is set exactly while a coroutine's own code runs. Everything
//! that may wait (a socket's receive or send, [`super::wait`],
//! [`super::blocking`]) asks [`in_coroutine`] first and parks instead of
//! blocking the loop's thread.

use std::cell::Cell;
use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Instant;

use corosensei::Yielder;
use mio::unix::SourceFd;
use mio::{Interest as MioInterest, Registry, Token};

use super::inbox::Inbox;

/// What a resumed coroutine is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Something it waits on may be ready (perhaps spuriously: it tries
    /// again and parks again if not).
    Event,
    /// Its deadline passed.
    TimedOut,
}

/// What a parking coroutine tells its loop: when to resume it at the
/// latest (`None`: only on an event).
pub(crate) type Park = Option<Instant>;

pub(crate) type Suspender = Yielder<Wake, Park>;

/// One loop's facilities, as the coroutines it runs reach them.
pub(crate) struct LoopContext {
    pub(crate) registry: Registry,
    pub(crate) inbox: Arc<Inbox>,
}

/// The coroutine running on this thread now.
#[derive(Clone, Copy)]
struct Current {
    yielder: NonNull<Suspender>,
    token: Token,
    context: NonNull<LoopContext>,
}

thread_local! {
    static CURRENT: Cell<Option<Current>> = const { Cell::new(None) };
}

/// Called first thing in a coroutine's body, with what the body was given:
/// from now on its code parks instead of blocking. `context` is owned by
/// the body (an `Arc` it holds), so it outlives every use through here.
pub(crate) fn enter(yielder: &Suspender, token: Token, context: &LoopContext) {
    CURRENT.set(Some(Current {
        yielder: NonNull::from(yielder),
        token,
        context: NonNull::from(context),
    }));
}

/// Called last thing in a coroutine's body.
pub(crate) fn leave() {
    CURRENT.set(None);
}

/// True while a coroutine's code runs on this thread: a wait must park.
pub(crate) fn in_coroutine() -> bool {
    CURRENT.get().is_some()
}

/// Suspends the running coroutine until its loop resumes it: on an event
/// for its token, or at `deadline`.
///
/// # Panics
/// Outside a coroutine (callers check [`in_coroutine`] first).
pub(crate) fn park(deadline: Park) -> Wake {
    let current = CURRENT.take().expect("park outside a coroutine");
    // SAFETY: `yielder` points to the `Yielder` that corosensei passed to
    // the body of the coroutine running now (we are on its stack, inside
    // that body, which borrows it for its whole run). CURRENT is taken
    // before the switch and restored after it, so no other coroutine's
    // code ever sees this pointer.
    let wake = unsafe { current.yielder.as_ref() }.suspend(deadline);
    CURRENT.set(Some(current));
    wake
}

/// Runs `f` with the running coroutine's loop and token.
fn with_loop<R>(f: impl FnOnce(&LoopContext, Token) -> R) -> Option<R> {
    let current = CURRENT.get()?;
    // SAFETY: the context is owned (through an `Arc`) by the body of the
    // coroutine running now, which outlives this call.
    let context = unsafe { current.context.as_ref() };
    Some(f(context, current.token))
}

/// Which way a descriptor is waited on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Interest {
    /// Until it may be read (or has hung up, or has an error).
    Readable,
    /// Until it may be written (or has an error).
    Writable,
    /// Until it may be read or written, whichever comes first: a TLS
    /// connection driven by hand that reads may have records of its own
    /// to send first, and must not wait for only one of the two.
    ReadableOrWritable,
}

impl Interest {
    fn mio(self) -> MioInterest {
        match self {
            Interest::Readable => MioInterest::READABLE,
            Interest::Writable => MioInterest::WRITABLE,
            Interest::ReadableOrWritable => MioInterest::READABLE | MioInterest::WRITABLE,
        }
    }
}

/// Registers `fd` with the running coroutine's loop for both directions,
/// for the rest of its life (the socket of a connection: registered at its
/// first wait, removed by the kernel when it closes).
pub(crate) fn register_for_life(fd: RawFd) -> io::Result<()> {
    with_loop(|context, token| {
        let interest = MioInterest::READABLE | MioInterest::WRITABLE;
        let source = &mut SourceFd(&fd);
        match context.registry.register(source, token, interest) {
            // A descriptor shared with another (dup) that is registered
            // already: point it at this coroutine.
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                context.registry.reregister(source, token, interest)
            }
            other => other,
        }
    })
    .unwrap_or(Ok(()))
}

/// Registers `fds` with the running coroutine's loop for one wait, parks
/// until an event or `deadline`, and deregisters them. A descriptor that
/// was registered already (the conversation's own socket, registered for
/// life at its first wait: a handler may watch it beside another, as FTP
/// watches its control connection during a transfer) gets its life's
/// registration back instead, or its later waits would never be woken.
pub(crate) fn park_on(fds: &[(RawFd, Interest)], deadline: Park) -> io::Result<Wake> {
    // Which of `fds` were registered before this wait.
    let mut kept = vec![false; fds.len()];
    let registered = with_loop(|context, token| -> io::Result<usize> {
        for (n, &(fd, interest)) in fds.iter().enumerate() {
            let source = &mut SourceFd(&fd);
            let result = match context.registry.register(source, token, interest.mio()) {
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                    kept[n] = true;
                    context.registry.reregister(source, token, interest.mio())
                }
                other => other,
            };
            if let Err(e) = result {
                restore(context, token, &fds[..n], &kept[..n]);
                return Err(e);
            }
        }
        Ok(fds.len())
    })
    .unwrap_or(Ok(0))?;
    let wake = park(deadline);
    with_loop(|context, token| {
        restore(context, token, &fds[..registered], &kept[..registered]);
    });
    Ok(wake)
}

/// Undoes [`park_on`]'s registrations: deregisters the descriptors it
/// registered, gives those that were registered before (`kept`) their
/// life's registration back.
fn restore(context: &LoopContext, token: Token, fds: &[(RawFd, Interest)], kept: &[bool]) {
    let life = MioInterest::READABLE | MioInterest::WRITABLE;
    for (&(fd, _), &kept) in fds.iter().zip(kept) {
        let source = &mut SourceFd(&fd);
        let _ = if kept {
            context.registry.reregister(source, token, life)
        } else {
            context.registry.deregister(source)
        };
    }
}

/// The running coroutine's loop and token, for a wake-up from another
/// thread ([`super::blocking`]).
pub(crate) fn waker() -> Option<(Arc<Inbox>, Token)> {
    with_loop(|context, token| (Arc::clone(&context.inbox), token))
}
