//! The defaults of a [`Builder`](crate::Builder)'s settings, in one place.
//!
//! A handler author rarely needs them: a server built without a setting
//! gets its default. They are public for what shows them to people or
//! builds on them: a command line that prints `[default: 300]`, a handler
//! whose own limit should match the server's.

use std::time::Duration;

/// Most connections served at once
/// ([`Builder::max_connections`](crate::Builder::max_connections)).
pub const MAX_CONNECTIONS: usize = 1024;

/// Most children alive at once in the forking model, as in Python
/// ([`Model::Forking`](crate::Model::Forking)).
pub const MAX_CHILDREN: usize = 40;

/// How long a connection may stay silent (reading) or stalled (writing)
/// before it is closed ([`Builder::idle_timeout`](crate::Builder::idle_timeout));
/// also the default message timeout.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// How long a shutdown waits for busy connections before cutting them
/// ([`Builder::drain_timeout`](crate::Builder::drain_timeout)).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Interval between calls of the `service_actions` hook when no connection
/// arrives, Python's `poll_interval`
/// ([`Builder::service_interval`](crate::Builder::service_interval)).
pub const SERVICE_INTERVAL: Duration = Duration::from_millis(500);

/// Longest line, newline included, that a [`Stream`](crate::Stream)
/// accepts ([`Builder::max_line_len`](crate::Builder::max_line_len)):
/// 64 KiB.
pub const MAX_LINE: usize = 64 * 1024;

/// Largest payload of a length-prefixed frame
/// ([`Builder::max_frame_len`](crate::Builder::max_frame_len)): 16 MiB.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

/// Largest datagram served
/// ([`Builder::max_datagram_len`](crate::Builder::max_datagram_len)): the
/// largest payload of a UDP datagram over IPv4.
pub const MAX_DATAGRAM: usize = 65_507;
