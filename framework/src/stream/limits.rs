//! [`StreamLimits`]: what a server gives each of its streams.

use std::time::Duration;

use crate::defaults;

/// The limits a server gives each of its streams: the longest line and
/// frame, and the idle and message timeouts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StreamLimits {
    pub(crate) max_line: usize,
    pub(crate) max_frame: usize,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) message_timeout: Option<Duration>,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_line: defaults::MAX_LINE,
            max_frame: defaults::MAX_FRAME,
            idle_timeout: None,
            message_timeout: None,
        }
    }
}
