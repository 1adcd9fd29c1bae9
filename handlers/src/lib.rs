//! The request handlers that ship with [`socketserver`]: the programs of the
//! Python socket tutorial this project grew from, made into real servers.
//!
//! * [`Echo`]: the tutorial's chat bot. Greets, answers every message with
//!   the message and a suffix ("好"), ends on "q".
//!
//! Each handler is a plain [`socketserver::RequestHandler`]: serve it with
//! any model, on any socket the framework offers.
//!
//! ```no_run
//! use socketserver::Server;
//! use socketserver_handlers::Echo;
//!
//! let mut server = Server::bind("127.0.0.1:9999", Echo::default())?.build()?;
//! server.serve_forever()?;
//! # Ok::<(), socketserver::Error>(())
//! ```
#![deny(missing_docs)]

pub mod echo;

pub use echo::Echo;
