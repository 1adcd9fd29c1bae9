//! `serve`: runs one of the handlers on a socket.
//!
//! ```text
//! serve --handler echo                      # 127.0.0.1:9999, event loops
//! serve --handler echo --bind [::]:9999 --mode pool --workers 8
//! ```
//!
//! The first line on standard output is exactly
//! `serving HANDLER on ADDRESS (MODE)`, with the real address, so scripts
//! can bind port 0 and read the port. SIGINT and SIGTERM drain and exit 0;
//! a second SIGINT exits at once. The shell, when it generates its token,
//! prints the token file's path on the second line.

// The options' doc comments are clap's --help text, written for a terminal:
// `[IPV6]:PORT` and `<hex>` there are words, not rustdoc links or HTML.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

// The parts, one concept per file: this one runs the server (the model,
// logging, the first line, the end); `serve/cli.rs` holds the flags,
// `serve/address.rs` the address to bind and the builders,
// `serve/shell_handler.rs` and `serve/ftp_handler.rs` each make their
// handler from the flags after its safety checks (`serve/secret_files.rs`
// warns about a file of secrets others can read), `serve/signals.rs` turns
// SIGINT and SIGTERM into a drain, `serve/tls.rs` loads the certificate
// (TLS for echo and shell, FTPS for ftp), `serve/implicit_tls.rs` makes
// ftp's second listener, for implicit FTPS.
mod address;
mod cli;
mod ftp_handler;
mod implicit_tls;
mod secret_files;
mod shell_handler;
mod signals;
mod tls;

use std::process::ExitCode;

use clap::Parser;
use socketserver::{Builder, Model};
use socketserver_handlers::echo::Echo;
use socketserver_handlers::shell::token_file::TokenFile;
use socketserver_handlers::{ftp, shell};

use crate::address::{bind_address, bind_failed, datagram_builder, exposed, stream_builder};
use crate::cli::{Cli, HandlerKind, Mode};
use crate::ftp_handler::ftp_handler;
use crate::shell_handler::shell_handler;
use crate::signals::stop_on_signals;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    let model = match model(&cli) {
        Ok(model) => model,
        Err(message) => {
            eprintln!("serve: {message}");
            return ExitCode::from(2);
        }
    };
    if cli.udp && cli.handler != HandlerKind::Echo {
        eprintln!(
            "serve: --udp works with --handler echo only; {} is a stream protocol",
            cli.handler.name()
        );
        return ExitCode::from(2);
    }
    if cli.udp && matches!(cli.mode(), Mode::Prefork | Mode::Event) {
        eprintln!(
            "serve: --udp serves with --mode sync, threading, pool or forking, not {}",
            cli.mode()
        );
        return ExitCode::from(2);
    }
    let tls = match tls::load(&cli.tls, cli.udp) {
        Ok(tls) => tls,
        Err((code, message)) => {
            eprintln!("serve: {message}");
            return ExitCode::from(code);
        }
    };
    match cli.handler {
        HandlerKind::Echo => {
            let echo = Echo::default()
                .greeting(&cli.echo.greeting)
                .suffix(&cli.echo.suffix)
                .max_line(cli.echo.max_line);
            if cli.udp {
                let builder = datagram_builder(&cli, echo);
                run(&cli, model, tls, builder, no_token_file, None)
            } else {
                let builder = stream_builder(&cli, echo);
                run(&cli, model, tls, builder, no_token_file, None)
            }
        }
        HandlerKind::Shell => match shell_handler(&cli) {
            Ok((shell, generated)) => {
                let exposed = exposed(&cli);
                if let (Some(exposed), None) = (exposed, &tls) {
                    log::warn!(
                        "shell on {exposed} without TLS: the token and every command travel \
                         in clear; serve with --tls-cert FILE --tls-key FILE"
                    );
                }
                // Probed (and logged) once here, before any fork, so that
                // forked children inherit the answer.
                shell::containment();
                let announce = |address: &socketserver::Address| match generated {
                    Some(token) => TokenFile::create(address, &token).map(Some).map_err(|e| {
                        format!(
                            "cannot write the shell's token file: {}",
                            socketserver::error::describe(&e)
                        )
                    }),
                    None => Ok(None),
                };
                run(
                    &cli,
                    model,
                    tls,
                    stream_builder(&cli, shell),
                    announce,
                    None,
                )
            }
            Err((code, message)) => {
                eprintln!("serve: {message}");
                ExitCode::from(code)
            }
        },
        // FTPS starts in clear (AUTH TLS): the certificate goes to the
        // handler, not to the server.
        HandlerKind::Ftp => match ftp_handler(&cli, tls) {
            Ok(ftp) => match implicit_tls::implicit_builder(&cli, &ftp) {
                Ok(implicit) => {
                    let builder = stream_builder(&cli, ftp);
                    run(&cli, model, None, builder, no_token_file, implicit)
                }
                Err(code) => code,
            },
            Err((code, message)) => {
                eprintln!("serve: {message}");
                ExitCode::from(code)
            }
        },
    }
}

fn model(cli: &Cli) -> Result<Model, String> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    match cli.mode() {
        Mode::Sync => Ok(Model::Sync),
        Mode::Threading => Ok(Model::Threading),
        Mode::Pool => {
            let workers = cli.workers.map_or(4 * cpus, |n| n as usize);
            Ok(Model::Pool {
                workers,
                queue: workers,
            })
        }
        Mode::Forking => Ok(Model::Forking {
            max_children: cli.max_children as usize,
        }),
        Mode::Prefork => Ok(Model::Prefork {
            workers: cli.workers.map_or(cpus, |n| n as usize),
            max_requests: cli.max_requests,
        }),
        Mode::Event => Ok(match (Model::event(), cli.threads) {
            (Model::Event { stack_size, .. }, Some(n)) => Model::Event {
                threads: n as usize,
                stack_size,
            },
            (model, _) => model,
        }),
    }
}

fn init_logging(cli: &Cli) {
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
}

/// For the handlers with no token file.
fn no_token_file(_: &socketserver::Address) -> Result<Option<TokenFile>, String> {
    Ok(None)
}

/// Builds and serves until a signal, over TLS with `tls`; the first line
/// names the transport when it is not a plain stream ("tls", "udp",
/// "datagram"). `announce` runs once the
/// address is known, before the first line: it writes the shell's
/// generated token file, whose path is printed on the second line and
/// which is removed when the server stops. `beside` is a second listener
/// (ftp's implicit FTPS), served in a thread with the same settings and
/// stopped by the same signals.
fn run<H: Send + 'static>(
    cli: &Cli,
    model: Model,
    tls: Option<std::sync::Arc<socketserver::tls::rustls::ServerConfig>>,
    builder: Builder<H>,
    announce: impl FnOnce(&socketserver::Address) -> Result<Option<TokenFile>, String>,
    beside: Option<Builder<H>>,
) -> ExitCode {
    let name = cli.handler.name();
    let idle = Some(cli.idle_timeout.0).filter(|t| !t.is_zero());
    let message = cli
        .message_timeout
        .map_or(idle, |t| (!t.is_zero()).then_some(t));
    let per_ip = match cli.max_per_ip {
        Some(0) => None,
        Some(n) => Some(n as usize),
        None => (cli.handler == HandlerKind::Ftp).then_some(ftp::DEFAULT_MAX_PER_IP),
    };
    let signals = match stop_on_signals() {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("serve: cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    let builder = match &tls {
        Some(config) => builder.tls(std::sync::Arc::clone(config)),
        None => builder,
    };
    let configure = |builder: Builder<H>, signals| {
        builder
            .stop_when_readable(signals)
            .model(model)
            .max_connections(cli.max_connections as usize)
            .max_per_ip(per_ip)
            .idle_timeout(idle)
            .message_timeout(message)
            .drain_timeout(cli.drain_timeout.0)
    };
    // The stop descriptor is watched, never read: both servers see it.
    let beside = match beside.map(|b| signals.try_clone().map(|s| configure(b, s))) {
        None => None,
        Some(Ok(builder)) => match builder.build() {
            Ok(server) => Some(server),
            Err(e) => {
                let bind = cli.ftp.implicit_tls_bind.as_deref().unwrap_or_default();
                return bind_failed(bind, e);
            }
        },
        Some(Err(e)) => {
            eprintln!("serve: cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    let mut server = match configure(builder, signals).build() {
        Ok(server) => server,
        Err(e) => return bind_failed(&bind_address(cli), e),
    };
    let transport = match (cli.udp, server.local_addr()) {
        (false, _) if tls.is_some() => ", tls",
        (false, _) => "",
        (true, socketserver::Address::Inet(_)) => ", udp",
        (true, _) => ", datagram",
    };
    let token_file = match announce(server.local_addr()) {
        Ok(file) => file,
        Err(message) => {
            eprintln!("serve: {message}");
            return ExitCode::from(1);
        }
    };
    println!(
        "serving {name} on {} ({}{transport})",
        server.local_addr(),
        cli.mode()
    );
    if let Some(file) = &token_file {
        println!(
            "token in {} (client shell reads it from there)",
            file.path().display()
        );
    }
    let beside = beside.map(|mut beside| {
        println!(
            "serving {name} (implicit TLS) on {} ({})",
            beside.local_addr(),
            cli.mode()
        );
        std::thread::spawn(move || serve_until_stopped(&mut beside))
    });
    let code = serve_until_stopped(&mut server);
    match beside.map(|thread| thread.join()) {
        Some(Ok(beside_code)) if code == ExitCode::SUCCESS => beside_code,
        Some(Err(_)) => ExitCode::from(1),
        _ => code,
    }
}

/// Serves until a signal; logs the drain, or says why it failed.
fn serve_until_stopped(server: &mut socketserver::Server) -> ExitCode {
    match server.serve_forever() {
        Ok(report) => {
            log::info!(
                "shut down: {} connections drained, {} cut",
                report.drained,
                report.cut
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("serve: {e}");
            ExitCode::from(1)
        }
    }
}
