//! `client ftp`: list, get, put, mkdir, rm, rmdir and md5 against an FTP
//! server, with a progress bar on a terminal, resume, and the tutorial's
//! MD5 check after every transfer (`md5 ok <hex>`).
//!
//! The protocol work is `socketserver_handlers::ftp::client`; this is the
//! command line around it: flags, local files, the bar, the lines printed.

use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use socketserver::error::describe;
use socketserver_handlers::ftp::client::{displayable, Check, Client, Error, Transferred};
use socketserver_handlers::ftp::parse_size;

use super::Failure;

/// Where the password comes from when `--user NAME` has none.
pub const PASSWORD_ENV: &str = "SOCKETSERVER_FTP_PASSWORD";

#[derive(Args, Debug)]
pub struct FtpArgs {
    /// The server, HOST:PORT or [IPV6]:PORT
    #[arg(default_value = "127.0.0.1:2121")]
    addr: String,

    /// Log in as NAME:PASSWORD, or NAME with the password in the
    /// SOCKETSERVER_FTP_PASSWORD environment variable [default: anonymous]
    #[arg(long, global = true, value_name = "NAME[:PASSWORD]")]
    user: Option<String>,

    /// Go on with a partial transfer: get appends to the local file what it
    /// lacks (REST), put appends to the server's file (SIZE, then APPE)
    #[arg(long, global = true)]
    resume: bool,

    /// Move at most RATE bytes a second (K, M, G: powers of 1024)
    #[arg(long, global = true, value_name = "RATE", value_parser = parse_rate)]
    limit_rate: Option<u64>,

    /// Explicit FTPS: AUTH TLS, then PROT P (every data connection TLS)
    #[command(flatten)]
    tls: crate::tls::TlsArgs,

    #[command(subcommand)]
    command: FtpCommand,
}

#[derive(Subcommand, Debug)]
pub enum FtpCommand {
    /// List a folder (or show a file), as `ls -l` does
    Ls {
        /// The remote path [default: the login folder]
        path: Option<String>,
    },
    /// Download REMOTE, then check its MD5 with the server's
    Get {
        /// The remote file
        remote: String,
        /// Where to write it [default: its name, in the current folder]
        local: Option<PathBuf>,
    },
    /// Upload LOCAL, then check its MD5 with the server's
    Put {
        /// The local file
        local: PathBuf,
        /// The remote name [default: the local file's name]
        remote: Option<String>,
    },
    /// Make a remote folder
    Mkdir {
        /// The remote path
        path: String,
    },
    /// Remove a remote file
    Rm {
        /// The remote path
        path: String,
    },
    /// Remove an empty remote folder
    Rmdir {
        /// The remote path
        path: String,
    },
    /// Print the server's MD5 of a remote file (XMD5, else HASH)
    Md5 {
        /// The remote path
        path: String,
    },
}

fn parse_rate(text: &str) -> Result<u64, String> {
    match parse_size(text)? {
        Some(rate) if rate > 0 => Ok(rate),
        _ => Err(format!("{text:?} is not a rate in bytes a second")),
    }
}

/// Runs one `client ftp` command.
pub fn run(args: &FtpArgs, timeout: Option<Duration>) -> Result<(), Failure> {
    let addr = args.addr.as_str();
    let (user, password) = credentials(args.user.as_deref())?;
    let failed = |e: Error| Failure(format!("{addr}: {e}"));
    let tls = crate::tls::settings(addr, &args.tls)?;
    let mut ftp = Client::connect(addr, timeout)
        .map_err(|e| Failure(format!("cannot connect to {addr}: {e}")))?;
    if let Some((config, name)) = tls {
        ftp.auth_tls(config, name).map_err(|e| match e {
            Error::Io(e) => crate::tls::handshake_failed(addr, &e),
            other => failed(other),
        })?;
    }
    ftp.limit_rate(args.limit_rate);
    ftp.login(&user, &password).map_err(failed)?;
    match &args.command {
        FtpCommand::Ls { path } => {
            let listing = ftp.list(path.as_deref().unwrap_or("")).map_err(failed)?;
            use std::io::Write;
            let mut out = io::stdout().lock();
            // The server's bytes go to a terminal: escaped, never trusted.
            let _ = out.write_all(&displayable(&listing));
            let _ = out.flush();
        }
        FtpCommand::Get { remote, local } => {
            let local = match local {
                Some(local) => local.clone(),
                None => PathBuf::from(base_name(remote)?),
            };
            get(&mut ftp, addr, remote, &local, args.resume)?;
        }
        FtpCommand::Put { local, remote } => {
            let remote = match remote {
                Some(remote) => remote.clone(),
                None => local
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .ok_or_else(|| Failure(format!("{} names no file", local.display())))?,
            };
            put(&mut ftp, addr, local, &remote, args.resume)?;
        }
        FtpCommand::Mkdir { path } => {
            ftp.mkdir(path).map_err(failed)?;
        }
        FtpCommand::Rm { path } => {
            ftp.delete(path).map_err(failed)?;
        }
        FtpCommand::Rmdir { path } => {
            ftp.rmdir(path).map_err(failed)?;
        }
        FtpCommand::Md5 { path } => match ftp.remote_md5(path).map_err(failed)? {
            Ok(md5) => println!("{md5}  {path}"),
            Err(why) => return Err(Failure(format!("{addr}: {why}"))),
        },
    }
    // The work is done; a server that drops the connection at QUIT is no
    // failure.
    let _ = ftp.quit();
    Ok(())
}

/// `NAME:PASSWORD`, `NAME` (password from the environment), or anonymous.
fn credentials(user: Option<&str>) -> Result<(String, String), Failure> {
    match user {
        None => Ok(("anonymous".into(), "anonymous@".into())),
        Some(user) => match user.split_once(':') {
            Some((name, password)) => Ok((name.into(), password.into())),
            None => match std::env::var(PASSWORD_ENV) {
                Ok(password) => Ok((user.into(), password)),
                Err(_) => Err(Failure(format!(
                    "no password for {user}: give --user {user}:PASSWORD or set {PASSWORD_ENV}"
                ))),
            },
        },
    }
}

/// The last name of a remote path.
fn base_name(remote: &str) -> Result<String, Failure> {
    remote
        .rsplit('/')
        .find(|n| !n.is_empty() && *n != "." && *n != "..")
        .map(str::to_string)
        .ok_or_else(|| Failure(format!("{remote:?} names no file: give a local name")))
}

fn get(
    ftp: &mut Client,
    addr: &str,
    remote: &str,
    local: &Path,
    resume: bool,
) -> Result<(), Failure> {
    let failed = |e: Error| Failure(format!("{addr}: {e}"));
    let local_error = |e: io::Error| {
        Failure(format!(
            "cannot write {}: {}",
            local.display(),
            describe(&e)
        ))
    };
    let size = ftp.size(remote).map_err(failed)?;
    let created = !local.exists();
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(local)
        .map_err(local_error)?;
    let have = if resume {
        file.metadata().map_err(local_error)?.len()
    } else {
        0
    };
    if let Some(size) = size {
        if have > size {
            return Err(Failure(format!(
                "cannot resume: {} has {have} bytes, more than the server's {size}",
                local.display()
            )));
        }
        if resume && have == size {
            println!(
                "get {remote} -> {}: complete already, {size} bytes",
                local.display()
            );
            let check = ftp.check_file(&mut file, remote).map_err(failed)?;
            return verdict(check, remote, Some(local));
        }
    }
    let bar = bar(size, have);
    let reached = std::cell::Cell::new(have);
    let done = ftp.get(remote, &mut file, have, &mut |position| {
        bar.set_position(position);
        reached.set(position);
    });
    bar.finish_and_clear();
    if done.is_err() && created && file.metadata().is_ok_and(|m| m.len() == 0) {
        // Nothing came (no such file, say): leave nothing behind.
        let _ = std::fs::remove_file(local);
    }
    let done = done.map_err(|e| match (&e, size) {
        (Error::Io(io), Some(size)) if server_gone(io) && reached.get() < size => Failure(format!(
            "the server closed the connection after {} of {size} bytes; \
             run the same command with --resume to go on",
            reached.get()
        )),
        _ => failed(e),
    })?;
    summary(&done, &format!("get {remote} -> {}", local.display()));
    let check = ftp.check(&done, remote).map_err(failed)?;
    verdict(check, remote, Some(local))
}

fn put(
    ftp: &mut Client,
    addr: &str,
    local: &Path,
    remote: &str,
    resume: bool,
) -> Result<(), Failure> {
    let failed = |e: Error| Failure(format!("{addr}: {e}"));
    let mut file = File::open(local)
        .map_err(|e| Failure(format!("cannot read {}: {}", local.display(), describe(&e))))?;
    let length = file
        .metadata()
        .map_err(|e| Failure(format!("cannot read {}: {}", local.display(), describe(&e))))?
        .len();
    let offset = if resume {
        ftp.size(remote).map_err(failed)?.unwrap_or(0)
    } else {
        0
    };
    if offset > length {
        return Err(Failure(format!(
            "cannot resume: the server's {remote} has {offset} bytes, more than {}'s {length}",
            local.display()
        )));
    }
    if resume && offset == length && length > 0 {
        println!(
            "put {} -> {remote}: complete already, {length} bytes",
            local.display()
        );
        let check = ftp.check_file(&mut file, remote).map_err(failed)?;
        return verdict(check, remote, None);
    }
    let bar = bar(Some(length), offset);
    let done = ftp
        .put(&mut file, remote, offset, &mut |position| {
            bar.set_position(position)
        })
        .map_err(failed);
    bar.finish_and_clear();
    let done = done?;
    summary(&done, &format!("put {} -> {remote}", local.display()));
    let check = ftp.check(&done, remote).map_err(failed)?;
    verdict(check, remote, None)
}

/// True for the errors of a connection that the server closed or reset.
fn server_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
    )
}

/// A progress bar on standard error when it is a terminal; a hidden one
/// otherwise (piped output stays clean).
fn bar(total: Option<u64>, position: u64) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(total) => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
            .with_style(
                ProgressStyle::with_template(
                    "{bar:40} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template("{spinner} {binary_bytes} {binary_bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_position(position);
    bar
}

/// `get a.bin -> a.bin: 104857600 bytes in 0.41 s (243.9 MiB/s)`.
fn summary(done: &Transferred, what: &str) {
    let secs = done.elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        done.bytes as f64 / secs / (1024.0 * 1024.0)
    } else {
        0.0
    };
    let resumed = if done.offset > 0 {
        format!(", resumed at byte {}", done.offset)
    } else {
        String::new()
    };
    println!(
        "{what}: {} bytes in {secs:.2} s ({rate:.1} MiB/s){resumed}",
        done.bytes
    );
}

/// Prints the MD5 verdict; a mismatch is a failure.
fn verdict(check: Check, remote: &str, local: Option<&Path>) -> Result<(), Failure> {
    match check {
        Check::Match(md5) => {
            println!("md5 ok {md5}");
            Ok(())
        }
        Check::Unverified { local, why } => {
            println!("md5 {local} (unverified)");
            eprintln!("client: warning: could not verify {remote}: {why}");
            Ok(())
        }
        Check::Mismatch {
            local: mine,
            server,
        } => {
            let what = match local {
                Some(path) => format!(
                    "{} is not the server's {remote} (md5 {mine}, the server's {server}): \
                     remove it and get it again",
                    path.display()
                ),
                None => format!(
                    "the server's {remote} is not what was sent (md5 {server}, sent {mine}): \
                     put it again"
                ),
            };
            Err(Failure(format!("md5 MISMATCH: {what}")))
        }
    }
}
