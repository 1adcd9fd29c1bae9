//! Transfers: `get` and `put`, resumed from an offset (`SIZE`, `REST`,
//! `APPE`), hashed while they stream, at a limited rate if asked.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

use crate::ftp::hash::{Algorithm, Hasher};
use crate::ftp::pipeline::{read_full, Pipeline};

use super::control::Reply;
use super::{Client, Error};

/// A transfer that went through.
#[derive(Clone, Debug)]
pub struct Transferred {
    /// The remote path.
    pub remote: String,
    /// Bytes moved over the data connection.
    pub bytes: u64,
    /// Where it started (the resume offset; 0 for a whole file).
    pub offset: u64,
    /// How long the data connection took.
    pub elapsed: Duration,
    /// The MD5 of the whole file as this client has it: the bytes it
    /// received or sent, after the part already there when resuming.
    pub md5: String,
    /// The server's final reply.
    pub reply: Reply,
    /// True for an upload.
    pub upload: bool,
}

/// Called as bytes move with the position reached in the file (the resume
/// offset included).
pub type Progress<'a> = &'a mut dyn FnMut(u64);

impl Client {
    /// The size of the file `path`, or `None` if the server says there is
    /// none (`550`).
    ///
    /// # Errors
    /// If the server refuses otherwise, or the connection fails.
    pub fn size(&mut self, path: &str) -> Result<Option<u64>, Error> {
        let line = format!("SIZE {path}");
        let reply = self.command(&line)?;
        match reply.code {
            213 => reply
                .text
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| Error::Protocol(format!("cannot read the SIZE reply {reply}"))),
            550 => Ok(None),
            _ => Err(Error::Refused {
                command: line,
                reply,
            }),
        }
    }

    /// Downloads `remote` into `local` from byte `offset` on (`REST`):
    /// `local` must hold the file's first `offset` bytes, which are hashed
    /// first; the rest is appended as it comes, and hashed too.
    ///
    /// # Errors
    /// If the server refuses, a connection fails, or `local` cannot be
    /// read or written.
    pub fn get(
        &mut self,
        remote: &str,
        local: &mut File,
        offset: u64,
        progress: Progress<'_>,
    ) -> Result<Transferred, Error> {
        let mut pipe = hash_kept_part(local, offset, "not")?;
        local.set_len(offset)?;
        local.seek(SeekFrom::Start(offset))?;
        let mut data = self.data_connection()?;
        if offset > 0 {
            self.expect(&format!("REST {offset}"), &[350])?;
        }
        let line = format!("RETR {remote}");
        self.start_transfer(&line)?;
        let started = Instant::now();
        let bytes = copy(
            &mut pipe,
            &mut data,
            local,
            self.limit_rate,
            offset,
            progress,
        )
        .map_err(|(_, e)| Error::from(e))?;
        let elapsed = started.elapsed();
        drop(data);
        let reply = self.end_transfer(&line)?;
        Ok(Transferred {
            remote: remote.to_string(),
            bytes,
            offset,
            elapsed,
            md5: finish(pipe),
            reply,
            upload: false,
        })
    }

    /// Uploads `local` as `remote`, from byte `offset` on: the server's
    /// file must hold the first `offset` bytes already (`APPE` adds the
    /// rest); the whole local file is hashed.
    ///
    /// # Errors
    /// If the server refuses, a connection fails, or `local` cannot be
    /// read.
    pub fn put(
        &mut self,
        local: &mut File,
        remote: &str,
        offset: u64,
        progress: Progress<'_>,
    ) -> Result<Transferred, Error> {
        let mut pipe = hash_kept_part(local, offset, "fewer than the server's")?;
        let mut data = self.data_connection()?;
        let line = if offset > 0 {
            format!("APPE {remote}")
        } else {
            format!("STOR {remote}")
        };
        self.start_transfer(&line)?;
        let started = Instant::now();
        let copied = copy(
            &mut pipe,
            local,
            &mut data,
            self.limit_rate,
            offset,
            progress,
        );
        let bytes = match copied {
            Ok(bytes) => bytes,
            Err((Side::Read, e)) => return Err(e.into()),
            Err((Side::Write, e)) => {
                // The server's reply says more than a broken pipe.
                drop(data);
                return match self.reply() {
                    Ok(reply) if reply.code >= 400 => Err(Error::Refused {
                        command: line,
                        reply,
                    }),
                    _ => Err(e.into()),
                };
            }
        };
        let elapsed = started.elapsed();
        let _ = data.finish_sending();
        drop(data);
        let reply = self.end_transfer(&line)?;
        Ok(Transferred {
            remote: remote.to_string(),
            bytes,
            offset,
            elapsed,
            md5: finish(pipe),
            reply,
            upload: true,
        })
    }
}

/// A resume's first step, the same for `get` and `put`: the MD5 pipeline
/// with the local file's first `offset` bytes (the part both sides already
/// have) hashed into it. Fails if the local file is shorter; `compared`
/// says against what, in the message ("the local file has N bytes,
/// `compared` OFFSET").
fn hash_kept_part(
    local: &mut File,
    offset: u64,
    compared: &str,
) -> Result<Pipeline<Hasher>, Error> {
    let mut pipe = Pipeline::new(Some(Algorithm::Md5.hasher()));
    local.seek(SeekFrom::Start(0))?;
    let had = pipe.feed(local, offset)?;
    if had < offset {
        return Err(Error::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the local file has {had} bytes, {compared} {offset}"),
        )));
    }
    Ok(pipe)
}

pub(super) fn finish(pipe: Pipeline<Hasher>) -> String {
    pipe.finish()
        .unwrap_or_else(|| Algorithm::Md5.hasher())
        .hex()
}

/// Which end of a copy failed.
enum Side {
    Read,
    Write,
}

/// Copies `from` to `to` until `from` ends, through the hashing pipeline
/// (each buffer is hashed off this thread after it is written), reporting
/// `offset` + the bytes copied so far, at most `rate` bytes a second.
/// Returns the bytes copied, or which side failed.
fn copy(
    pipe: &mut Pipeline<Hasher>,
    from: &mut impl Read,
    to: &mut impl Write,
    rate: Option<u64>,
    offset: u64,
    progress: Progress<'_>,
) -> Result<u64, (Side, io::Error)> {
    let pace = Pace::new(rate);
    let mut bytes = 0u64;
    loop {
        let mut buf = pipe.take();
        let n = match read_full(from, &mut buf) {
            Ok(n) => n,
            Err(e) => {
                pipe.give(buf, 0, 0);
                return Err((Side::Read, e));
            }
        };
        if n == 0 {
            pipe.give(buf, 0, 0);
            return Ok(bytes);
        }
        if let Err(e) = to.write_all(&buf[..n]) {
            pipe.give(buf, 0, 0);
            return Err((Side::Write, e));
        }
        pipe.give(buf, 0, n);
        bytes += n as u64;
        progress(offset + bytes);
        pace.wait(bytes);
    }
}

/// Keeps a transfer at or under a rate: after each chunk, waits until the
/// bytes moved so far are due.
struct Pace {
    rate: Option<u64>,
    started: Instant,
}

impl Pace {
    fn new(rate: Option<u64>) -> Pace {
        Pace {
            rate,
            started: Instant::now(),
        }
    }

    fn wait(&self, bytes: u64) {
        let Some(rate) = self.rate else { return };
        let due = Duration::from_secs_f64(bytes as f64 / rate as f64);
        let spent = self.started.elapsed();
        if due > spent {
            std::thread::sleep(due - spent);
        }
    }
}
