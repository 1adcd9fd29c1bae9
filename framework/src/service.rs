//! The seam between the server and the two kinds of handler.
//!
//! The accept loop and the models move [`Work`] around (a connection or a
//! packet) and hand it to a [`Service`]: the user's handler, wrapped once
//! when the server is built. So the models know nothing of handler types,
//! and one `Server` serves streams and datagrams alike.

use std::sync::{Arc, Mutex};

use crate::datagram::socket::Packet;
use crate::failure::panic_message;
use crate::lifecycle;
use crate::shared::Shared;
use crate::socket::Connection;
use crate::stats::{Ended, Outcome};
use crate::{Address, Refusal, RequestHandler, Stream};

/// One unit of work: a conversation on a connection, or one datagram.
#[derive(Debug)]
pub(crate) enum Work {
    Conversation(Arc<Connection>),
    Packet(Packet),
}

impl Work {
    /// Who the work came from.
    pub(crate) fn peer(&self) -> &Address {
        match self {
            Work::Conversation(conn) => &conn.peer,
            Work::Packet(packet) => &packet.peer,
        }
    }
}

/// Registered work (a connection or a packet) on its way to a handler.
pub(crate) struct Job {
    pub(crate) id: u64,
    pub(crate) work: Work,
}

/// Serves one registered connection or packet from start to end, counts
/// it, then releases its slot.
pub(crate) fn serve(shared: &Arc<Shared>, service: &dyn Service, job: Job) -> Ended {
    let Job { id, work } = job;
    let ended = service.run(shared, work);
    shared
        .stats
        .ended(ended.outcome, ended.bytes_read, ended.bytes_written);
    shared.release(id);
    ended
}

/// Runs one unit of work to its end, with a fresh clone of the handler.
pub(crate) trait Service: Send + Sync + 'static {
    fn run(&self, shared: &Shared, work: Work) -> Ended;

    /// Tells a refused client why, in the handler's words.
    fn refuse(&self, stream: &mut Stream, why: Refusal) {
        let _ = (stream, why);
    }
}

/// A stream handler as the server runs it. The handler need only be
/// `Send`: it sits behind a mutex that is held just long enough to clone it.
pub(crate) struct Streams<H>(Mutex<H>);

impl<H: RequestHandler> Streams<H> {
    pub(crate) fn new(handler: H) -> Self {
        Streams(Mutex::new(handler))
    }
}

impl<H: RequestHandler> Service for Streams<H> {
    fn run(&self, shared: &Shared, work: Work) -> Ended {
        match work {
            Work::Conversation(conn) => {
                let handler = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
                lifecycle::converse(shared, handler, conn)
            }
            Work::Packet(packet) => {
                log::error!("{}: a datagram reached a stream handler", packet.peer);
                Ended {
                    outcome: Outcome::Failed,
                    bytes_read: 0,
                    bytes_written: 0,
                }
            }
        }
    }

    fn refuse(&self, stream: &mut Stream, why: Refusal) {
        let mut handler = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let peer = stream.peer_addr().clone();
        // User code in the serving thread: a panic must not stop it.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler.refuse(stream, why)))
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => log::debug!("{peer}: telling it was refused: {}", crate::describe(&e)),
            Err(payload) => log::error!(
                "{peer}: refuse panicked: {}",
                panic_message(payload.as_ref())
            ),
        }
    }
}
