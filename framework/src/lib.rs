//! Python's `socketserver`, done right in Rust: a **server** owns the
//! listening socket and the concurrency, a **request handler** owns one
//! conversation.
//!
//! # The pattern
//!
//! Writing a network server by hand mixes two jobs: accepting connections
//! (binding, threads, limits, shutdown, errors) and talking to one client
//! (the protocol). This crate does the first; you write the second as a
//! [`RequestHandler`]:
//!
//! ```no_run
//! use socketserver::{RequestHandler, Server, Stream};
//!
//! /// The tutorial's "phone": answers every line in upper case.
//! #[derive(Clone)]
//! struct Upper;
//!
//! impl RequestHandler for Upper {
//!     fn handle(&mut self, stream: &mut Stream) -> std::io::Result<()> {
//!         while let Some(line) = stream.next_line()? {
//!             stream.write_all(line.to_uppercase().as_bytes())?;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! fn main() -> Result<(), socketserver::Error> {
//!     let mut server = Server::bind("127.0.0.1:9999", Upper).threading().build()?;
//!     server.serve_forever()?;
//!     Ok(())
//! }
//! ```
//!
//! Try it with `nc 127.0.0.1 9999`.
//!
//! # The axes of variation
//!
//! As in Python, a server varies along two axes, chosen independently:
//!
//! * **the socket family**: TCP over IPv4 or IPv6 ([`Server::bind`]),
//!   Unix-domain stream sockets ([`Server::bind_unix`]), a socket you
//!   bound yourself ([`Server::from_listener`]), or datagrams: UDP
//!   ([`Server::bind_udp`]) and Unix datagram sockets
//!   ([`Server::bind_unix_datagram`]), served by a [`DatagramHandler`];
//! * **the concurrency [`Model`]**: one connection at a time
//!   ([`Model::Sync`], Python's `TCPServer`), a thread per connection
//!   ([`Model::Threading`], `ThreadingMixIn`, the default), a fixed
//!   pool of threads ([`Model::Pool`]), a process per connection
//!   ([`Model::Forking`], `ForkingMixIn`), a fixed set of processes
//!   ([`Model::Prefork`]), or a few event loops running every connection
//!   on a coroutine of its own ([`Model::Event`], [`event`]).
//!
//! ```text
//!             Builder ──build()──▶ Server ──serve_forever()──▶ accept loop
//!                                    │                              │
//!              ShutdownHandle ◀──────┤  Model: Sync | Threading | Pool | Forking | Prefork | Event
//!              Stats          ◀──────┘                              │
//!                   ▲                             H::clone() ─▶ setup ▶ handle ▶ finish
//!                   └──────── Stream::server() ◀─────────────────────── on a Stream
//! ```
//!
//! Choosing: `Event` runs the same blocking-style handler the way a tokio
//! server runs async code: thousands of conversations per loop thread, a
//! few KiB each while they wait, no context switch per message; it is the
//! fastest and leanest model, for any handler that waits only through its
//! `Stream`s and the [`event`] helpers (a handler that calls a blocking
//! function directly holds every conversation of its loop meanwhile: give
//! such work to [`event::blocking`]). `Threading` suits any handler at
//! all, blocking calls included, at a thread per conversation; `Pool`
//! bounds threads and memory under heavy load of short requests;
//! `Forking` isolates each conversation in its own process (a crash or a
//! leak dies with it); `Prefork` gets that isolation per worker at the
//! cost of a thread pool; `Sync` is for tests, teaching and strictly
//! sequential work. The process models fork, so they
//! refuse a process that has other threads ([`Error::ForkWithThreads`]):
//! build and serve them before starting any.
//!
//! # The life of a connection
//!
//! 1. The accept loop waits, in `poll`, for the listener and a waker; it
//!    stops polling the listener while the connection limit is reached, so
//!    that excess clients wait in the kernel's backlog. (Under
//!    [`Model::Prefork`] each worker process runs an accept loop of its
//!    own.)
//! 2. `verify_request` may refuse the peer.
//! 3. The connection gets its socket options (idle timeout, `TCP_NODELAY`),
//!    a slot in the registry and, with [`max_per_ip`](Builder::max_per_ip),
//!    a place in its client's count (an IPv4 address, an IPv6 /64), kept
//!    across threads, forked children and prefork workers alike; over a
//!    limit it is refused at once, the handler's
//!    [`refuse`](RequestHandler::refuse) saying why. Then it is handed to
//!    the model.
//! 4. With [TLS](#tls), the handshake runs, on the connection's own thread,
//!    process or coroutine. The handler value is cloned; `setup`, `handle` and
//!    `finish` run on a [`Stream`]; errors and panics go to
//!    `handle_error`.
//! 5. Buffered output is flushed, the socket closed, the slot freed.
//!
//! # Beyond Python
//!
//! * **Prompt shutdown**: [`ShutdownHandle::shutdown`] wakes the loop at
//!   once (no poll interval) and may be called from a handler
//!   ([`Stream::server`]), in every model.
//! * **Graceful drain**: the listening socket closes at once; every live
//!   conversation goes on until it ends (and the server returns as soon as
//!   the last one has) or the drain timeout runs out and it is cut. A
//!   handler that knows its safe points may end sooner and say goodbye:
//!   see [`WhenDraining`] and [`Stream::is_draining`].
//! * **Limits on by default**: connections, idle time, line and frame
//!   length, and the total time of a line or frame (the [message
//!   timeout](Builder::message_timeout): a client trickling a byte at a
//!   time cannot hold a connection for ever); [`Builder`] lists the
//!   defaults. Connections per client address on request
//!   ([`Builder::max_per_ip`]); deadlines for a phase of a conversation,
//!   such as a login ([`Stream::set_deadline`]).
//! * **Isolation**: a panic in one handler is caught and reported; accept
//!   errors never end the loop.
//! * **Framing**: [`Stream`] reads lines and length-prefixed frames with
//!   size limits, the proper cure for the tutorial's "sticky packets".
//! * **Counters**: [`Stats`].
//! * **TLS** for any stream handler, in every model: see [TLS](#tls).
//!
//! # TLS
//!
//! Any stream handler can be served over TLS ([`rustls`], with
//! the *ring* provider): give the builder a rustls `ServerConfig`
//! ([`Builder::tls`]) or PEM files ([`Builder::tls_files`], e.g. Let's
//! Encrypt's `fullchain.pem` and `privkey.pem`). Each connection's handshake
//! runs on its own thread or process, before `setup`, bounded by the idle
//! and message timeouts; one that fails is logged, counted
//! ([`Counters::tls_failures`]) and closed, and the handler never sees it.
//! The handler gets the same [`Stream`], reading and writing plaintext with
//! the same framing and limits; [`Stream::is_tls`] and
//! [`Stream::tls_version`] say what was negotiated. A handler can also
//! turn a plain conversation into TLS in its middle
//! ([`Stream::upgrade_tls`], for `STARTTLS` or FTP's `AUTH TLS`), and a
//! client can speak it ([`Stream::connect_tls`],
//! [`Stream::upgrade_client_tls`]). See the [`tls`] module.
//!
//! ```
//! use std::sync::Arc;
//! use socketserver::tls::rustls::{self, pki_types::PrivatePkcs8KeyDer};
//! use socketserver::{tls, RequestHandler, Server, Stream};
//!
//! #[derive(Clone)]
//! struct Hello;
//! impl RequestHandler for Hello {
//!     fn handle(&mut self, stream: &mut Stream) -> std::io::Result<()> {
//!         let version = stream.tls_version().expect("a TLS conversation");
//!         stream.write_all(format!("hello over {version:?}\n").as_bytes())
//!     }
//! }
//!
//! // A self-signed certificate for the example (a real server reads its
//! // files: `.tls_files("fullchain.pem", "privkey.pem")?`).
//! let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
//! let key = PrivatePkcs8KeyDer::from(made.signing_key.serialize_der());
//! let config = rustls::ServerConfig::builder_with_provider(tls::provider())
//!     .with_safe_default_protocol_versions()?
//!     .with_no_client_auth()
//!     .with_single_cert(vec![made.cert.der().clone()], key.into())?;
//! let mut server = Server::bind("127.0.0.1:0", Hello)
//!     .sync()
//!     .tls(Arc::new(config))
//!     .build()?;
//! let addr = server.local_addr().as_inet().unwrap();
//!
//! // A client that trusts that certificate.
//! let mut roots = rustls::RootCertStore::empty();
//! roots.add(made.cert.der().clone())?;
//! let client = rustls::ClientConfig::builder_with_provider(tls::provider())
//!     .with_safe_default_protocol_versions()?
//!     .with_root_certificates(roots)
//!     .with_no_client_auth();
//! let talk = std::thread::spawn(move || -> std::io::Result<Option<String>> {
//!     let name = "localhost".try_into().expect("a DNS name");
//!     let tcp = std::net::TcpStream::connect(addr)?;
//!     tcp.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
//!     let mut stream = Stream::try_from(tcp)?;
//!     stream.upgrade_client_tls(Arc::new(client), name)?;
//!     stream.next_line()
//! });
//! server.handle_request()?;
//! assert_eq!(talk.join().unwrap()?.as_deref(), Some("hello over TLSv1_3\n"));
//! assert_eq!(server.stats().snapshot().tls_failures, 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Hooks
//!
//! Python's overridable methods are closures given to the [`Builder`]:
//! [`verify_request`](Builder::verify_request),
//! [`handle_error`](Builder::handle_error),
//! [`service_actions`](Builder::service_actions),
//! [`handle_timeout`](Builder::handle_timeout), and
//! [`on_refused`](Builder::on_refused). The handler itself has one step
//! besides `setup`, `handle` and `finish`:
//! [`refuse`](RequestHandler::refuse), which tells a client refused before
//! it was served (over [`max_per_ip`](Builder::max_per_ip), or a full
//! server) why, in the protocol's words.
//!
//! ```
//! use socketserver::{Address, RequestHandler, Server, Stream};
//! use std::io::{BufRead, Write};
//!
//! #[derive(Clone)]
//! struct Echo;
//! impl RequestHandler for Echo {
//!     fn handle(&mut self, stream: &mut Stream) -> std::io::Result<()> {
//!         let mut line = Vec::new();
//!         while stream.read_line_into(&mut line)? > 0 {
//!             stream.write_all(&line)?;
//!             line.clear();
//!         }
//!         Ok(())
//!     }
//! }
//!
//! let mut server = Server::bind("127.0.0.1:0", Echo)
//!     .sync()
//!     .verify_request(|peer: &Address| peer.as_inet().is_some_and(|a| a.ip().is_loopback()))
//!     .build()?;
//! let addr = server.local_addr().as_inet().unwrap();
//!
//! let client = std::thread::spawn(move || -> std::io::Result<String> {
//!     let mut s = std::net::TcpStream::connect(addr)?;
//!     s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
//!     s.write_all(b"hello\n")?;
//!     let mut reply = String::new();
//!     std::io::BufReader::new(s).read_line(&mut reply)?;
//!     Ok(reply)
//! });
//! server.handle_request()?;
//! assert_eq!(client.join().unwrap()?, "hello\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A handler reaches its server as Python's does `self.server`, with
//! [`Stream::server`]: a [`ShutdownHandle`] that stops the server (without
//! deadlock: it never waits) and reads its [`Stats`]. In the process
//! models it asks the parent process, which stops the whole server.
//!
//! ```
//! use socketserver::{RequestHandler, Server, Stream};
//! use std::io::{BufRead, Write};
//!
//! /// Answers how many clients came so far; "stop" stops the server.
//! #[derive(Clone)]
//! struct Counter;
//! impl RequestHandler for Counter {
//!     fn handle(&mut self, stream: &mut Stream) -> std::io::Result<()> {
//!         let server = stream.server().expect("served by a server").clone();
//!         while let Some(line) = stream.next_line()? {
//!             if line == "stop\n" {
//!                 server.shutdown();
//!                 return stream.write_all(b"bye\n");
//!             }
//!             let accepted = server.stats().snapshot().accepted;
//!             stream.write_all(format!("client {accepted}\n").as_bytes())?;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! let mut server = Server::bind("127.0.0.1:0", Counter).build()?;
//! let addr = server.local_addr().as_inet().unwrap();
//! let client = std::thread::spawn(move || -> std::io::Result<Vec<String>> {
//!     let mut s = std::net::TcpStream::connect(addr)?;
//!     s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
//!     s.write_all(b"hello\nstop\n")?;
//!     std::io::BufReader::new(s).lines().collect()
//! });
//! server.serve_forever()?; // returns once the handler has stopped it
//! assert_eq!(client.join().unwrap()?, ["client 1", "bye"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![warn(rust_2018_idioms)]

mod accept_loop;
mod address;
mod builder;
mod child_pipe;
mod conversation;
mod datagram;
pub mod defaults;
mod draining;
pub mod error;
pub mod event;
mod failure;
mod fork;
mod handler;
mod listener;
mod model;
mod model_loop;
mod per_ip;
mod read_clock;
mod server;
mod settings;
mod shared;
mod shutdown_handle;
mod socket;
mod stats;
mod stream;
pub mod tls;
mod waker;

pub use address::Address;
pub use builder::{Builder, WhenFull};
pub use datagram::{Datagram, DatagramHandler};
pub use draining::WhenDraining;
pub use error::Error;
// Inside the crate, as everywhere errors are logged: `crate::describe`.
pub(crate) use error::describe;
pub use failure::{Failure, Step};
pub use handler::RequestHandler;
pub use listener::Listener;
pub use model::Model;
pub use per_ip::Refusal;
pub use server::Server;
pub use shared::DrainReport;
pub use shutdown_handle::ShutdownHandle;
pub use stats::{Counters, Stats};
pub use stream::{LimitExceeded, NotConnected, Stream};
