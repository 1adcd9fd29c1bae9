//! ftp's second listener: implicit FTPS, TLS from the first byte (the
//! old way, port 990 by convention), for the clients that speak only it.

use std::process::ExitCode;

use socketserver::{Builder, Server};
use socketserver_handlers::Ftp;

use crate::address::with_default_port;
use crate::cli::{Cli, Mode};

/// The port implicit FTPS is known on.
const IMPLICIT_PORT: u16 = 990;

/// The implicit FTPS listener of `--implicit-tls-bind`, serving the same
/// folder and users as `ftp`, if asked for. It runs in a thread beside
/// the main listener, so the process models, which fork, are refused.
pub fn implicit_builder(cli: &Cli, ftp: &Ftp) -> Result<Option<Builder<Ftp>>, ExitCode> {
    let Some(bind) = &cli.ftp.implicit_tls_bind else {
        return Ok(None);
    };
    if matches!(cli.mode(), Mode::Forking | Mode::Prefork) {
        eprintln!(
            "serve: --implicit-tls-bind serves beside --bind in a thread: use --mode \
             threading, pool, sync or event"
        );
        return Err(ExitCode::from(2));
    }
    let addr = with_default_port(bind, IMPLICIT_PORT);
    Ok(Some(Server::bind(
        addr.as_str(),
        ftp.clone().implicit_tls(true),
    )))
}
