//! The event model's machinery: a conversation's handler runs unchanged
//! on a stackful coroutine, and a few event-loop threads drive all of
//! them through epoll.
//!
//! A handler written the simple way, with blocking reads and writes on
//! its [`Stream`](crate::Stream), does not know it runs here. Under
//! [`Model::Event`](crate::Model::Event) every connection's socket is
//! non-blocking; a receive or send that would block parks the
//! conversation's coroutine instead, and its loop resumes it when the
//! socket is ready or its timeout passes. One loop thread runs thousands
//! of conversations, each costing a small stack (the pages it touched) and
//! no thread, and a message costs no context switch.
//!
//! The one rule: **a loop thread waits on nothing but its poller.** What a
//! handler does through its `Stream`s (lines, frames, TLS, timeouts) and
//! through [`wait`] (any descriptor: a second socket, a pipe) parks.
//! Anything else that may block (a slow disk, `waitpid`, DNS, a library's
//! blocking call) goes through [`blocking`], which runs it on a small pool
//! of threads while the conversation waits. A handler that blocks its
//! thread directly holds every conversation of its loop meanwhile; the
//! log names it when that lasts more than a second.
//!
//! Outside the event model both functions do the plain thing ([`wait`]
//! is `poll(2)`, [`blocking`] runs its work in place), so a handler that
//! uses them runs in every model.
//!
//! Inside: `scheduler.rs` is one loop (a `mio::Poll`, its coroutines,
//! their deadlines, a pool of stacks); `park.rs` the seam between a
//! coroutine's code and its loop; `inbox.rs` how other threads reach a
//! loop; `buffers.rs` the read and write buffers a loop lends to the
//! conversation that runs; `stacks.rs` the stack pool. The model itself,
//! how the accept loop hands connections to the loops, is
//! `model/event.rs`.

mod blocking;
pub(crate) mod buffers;
pub(crate) mod inbox;
pub(crate) mod park;
pub(crate) mod scheduler;
mod stacks;
mod wait;

pub use blocking::blocking;
pub use park::Interest;
pub(crate) use wait::wait_socket;
pub use wait::{sleep, wait, yield_now};

/// The default virtual size of a conversation's stack: 256 KiB, which the
/// shipped handlers (FTP and its TLS included) fit in with room to spare.
/// Only the pages a conversation touches cost memory.
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;
