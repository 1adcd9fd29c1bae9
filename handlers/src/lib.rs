//! The request handlers that ship with [`socketserver`]: the programs of the
//! Python socket tutorial this project grew from, made into real servers.
//!
//! * [`Echo`]: the tutorial's chat bot. Greets, answers every message with
//!   the message and a suffix ("好"), ends on "q".
//! * [`Ftp`]: the tutorial's file transfer made a real FTP server, for
//!   curl, ftplib, lftp, FileZilla; confined to its root, atomic uploads,
//!   the tutorial's MD5 check on every transfer (and [`ftp::client`], the
//!   client that verifies it).
//! * [`Shell`]: the tutorial's remote shell. Runs each command it is sent
//!   (`sh -c`) and replies with the output's length, then the output; time
//!   and output limits, the process group killed on timeout or hang-up,
//!   a token by default.
//! * [`throttle`]: the growing delays after failed logins that Ftp and
//!   Shell share.
//!
//! Each handler is a plain [`socketserver::RequestHandler`]: serve it with
//! any model, on any socket the framework offers.
//!
//! ```no_run
//! use socketserver::Server;
//! use socketserver_handlers::Echo;
//!
//! let mut server = Server::bind("127.0.0.1:9999", Echo::default()).build()?;
//! server.serve_forever()?;
//! # Ok::<(), socketserver::Error>(())
//! ```
#![deny(missing_docs)]

pub mod echo;
pub mod ftp;
pub mod shell;
pub mod throttle;

pub use echo::Echo;
pub use ftp::Ftp;
pub use shell::Shell;
