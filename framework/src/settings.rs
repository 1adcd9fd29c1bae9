//! What the [`Builder`](crate::Builder) hands the loop that serves: the
//! accept loop's settings and the hooks that run in it. A leaf module, so
//! that the builder, the loop and the models share these types without
//! importing one another.

use std::os::fd::OwnedFd;
use std::time::Duration;

use crate::{Address, Stream};

type VerifyHook = Box<dyn FnMut(&Address) -> bool + Send>;
type RefuseHook = Box<dyn FnMut(&mut Stream) + Send>;
type ActionHook = Box<dyn FnMut() + Send>;

/// Hooks that run in the serving thread (the accept loop's).
#[derive(Default)]
pub(crate) struct LoopHooks {
    pub(crate) verify_request: Option<VerifyHook>,
    pub(crate) on_refused: Option<RefuseHook>,
    pub(crate) service_actions: Option<ActionHook>,
    pub(crate) handle_timeout: Option<ActionHook>,
}

/// The accept loop's settings.
pub(crate) struct LoopSettings {
    /// The longest datagram served; longer ones are dropped.
    pub(crate) max_datagram: usize,
    pub(crate) nodelay: bool,
    /// How long `handle_request` waits for a request.
    pub(crate) request_timeout: Option<Duration>,
    /// The longest wait between two calls of `service_actions`.
    pub(crate) service_interval: Duration,
    /// Readable means "shut down" (a signal's self-pipe).
    pub(crate) stop_fd: Option<OwnedFd>,
}
