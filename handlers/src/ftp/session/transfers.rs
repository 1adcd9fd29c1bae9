//! Transfers: `RETR`, `STOR`, `APPE`; `REST`, where the next one starts;
//! `ABOR` between transfers; and the reply and log line that end a
//! transfer (a listing's too).

use std::io::{self, Seek, SeekFrom};
use std::time::{Duration, SystemTime};

use socketserver::error::describe;
use socketserver::Stream;

use crate::ftp::config::HashTransfers;
use crate::ftp::control::{printable, reply};
use crate::ftp::entry::Entry;
use crate::ftp::hash::{Algorithm, FileKey, Hasher};
use crate::ftp::kept::{copy_and_observe, KeptCopy};
use crate::ftp::pipeline::Pipeline;
use crate::ftp::transfer::{End, Report, Watch};
use crate::ftp::upload::TempFile;
use crate::ftp::vfs::{PathError, VPath};

use crate::ftp::data::DataPlan;

use super::security::Way;
use super::verbs::Command;
use super::{answer, Flow, Session};

/// How a transfer went, for its reply and log line.
pub(super) struct Outcome {
    end: End,
    bytes: u64,
    elapsed: Duration,
    quit: bool,
    /// The MD5 that the `226` reply gives.
    md5: Option<String>,
}

impl Outcome {
    pub(super) fn of<O>(report: Report<O>, md5: Option<String>) -> Outcome {
        Outcome {
            end: report.end,
            bytes: report.bytes,
            elapsed: report.elapsed,
            quit: report.quit,
            md5,
        }
    }
}

impl Session {
    pub(super) fn rest(&mut self, stream: &mut Stream, command: Command<'_>) -> io::Result<Flow> {
        let offset = std::str::from_utf8(command.arg)
            .ok()
            .and_then(|a| a.parse::<u64>().ok());
        let Some(offset) = offset else {
            return answer(stream, 501, "REST needs a byte offset.");
        };
        self.rest = offset;
        answer(
            stream,
            350,
            &format!("Restart position accepted ({offset})."),
        )
    }

    /// `ABOR` with no transfer running (during one, the transfer itself
    /// answers it): the data connection prepared is dropped.
    pub(super) fn abor(&mut self, stream: &mut Stream, _: Command<'_>) -> io::Result<Flow> {
        self.data = DataPlan::None;
        answer(stream, 225, "No transfer to abort.")
    }

    pub(super) fn retr(&mut self, stream: &mut Stream, command: Command<'_>) -> io::Result<Flow> {
        let rest = std::mem::take(&mut self.rest);
        let opened = self.vfs.resolve(command.arg).and_then(|path| {
            let (file, meta) = self.vfs.open_file(&path)?;
            Ok((path, file, meta))
        });
        let (path, mut file, meta) = match opened {
            Ok(found) => found,
            Err(e) => return answer(stream, 550, &e.message()),
        };
        if rest > 0 {
            if let Err(e) = file.seek(SeekFrom::Start(rest)) {
                return answer(stream, 550, &format!("Cannot seek: {}.", describe(&e)));
            }
        }
        // The MD5 of a whole file may be known already: then, unless told
        // to hash always, the download goes at full copy speed.
        let key = FileKey::of(&meta);
        let cached = if rest == 0 {
            self.digests.get(&key, Algorithm::Md5)
        } else {
            None
        };
        let hash = match self.config.hash_transfers {
            HashTransfers::Always => true,
            HashTransfers::Auto => cached.is_none(),
            HashTransfers::Off => false,
        };
        let text = format!(
            "Opening {} mode data connection for {} ({} bytes).",
            if self.ascii { "ASCII" } else { "BINARY" },
            printable(path.name().unwrap_or(b"/")),
            meta.len()
        );
        let Some(data) = self.open_data(stream, &text, Way::Out)? else {
            return Ok(Flow::Continue);
        };
        let started = SystemTime::now();
        let mut outcome = if hash || self.ascii {
            let pipe = Pipeline::new(hash.then(|| Algorithm::Md5.hasher()));
            let report = self.transfer(stream, data).send(&mut file, pipe);
            let md5 = report.observer.clone().map(Hasher::hex);
            Outcome::of(report, md5)
        } else {
            Outcome::of(self.transfer(stream, data).send_file(&mut file), None)
        };
        // The digest of what was sent is the file's if it was all of it
        // and the file did not change meanwhile: cache it. A cached digest
        // is given only if the file stayed that version throughout.
        let unchanged = file.metadata().is_ok_and(|m| FileKey::of(&m) == key);
        if let (Some(md5), End::Complete, 0, true) = (&outcome.md5, &outcome.end, rest, unchanged) {
            self.digests.put(key, Algorithm::Md5, md5, started);
        }
        if outcome.md5.is_none() && unchanged {
            outcome.md5 = cached;
        }
        self.finish(stream, "RETR", &path, outcome, "Transfer complete.")
    }

    /// `STOR`, and `APPE`, which keeps the old file as the start of the
    /// new one.
    pub(super) fn store(&mut self, stream: &mut Stream, command: Command<'_>) -> io::Result<Flow> {
        let verb = command.verb;
        let rest = std::mem::take(&mut self.rest);
        let expected = self.check_md5.take();
        if !self.writable() {
            return answer(stream, 550, "Permission denied.");
        }
        let prepared = self.prepare_upload(verb, command.arg, rest);
        let Upload {
            path,
            target,
            mut temp,
            old,
        } = match prepared {
            Ok(found) => found,
            Err((code, text)) => return answer(stream, code, &text),
        };
        // The MD5 given is the stored file's, its kept part included. That
        // part is copied by the kernel, unread, while the new bytes arrive;
        // it is copied first, read back and hashed only when the digest is
        // needed (SITE CHKHASH) or asked for always; otherwise a resume's
        // 226 gives no MD5.
        let kept = old.as_ref().map_or(0, |(_, len)| *len);
        let hash = match self.config.hash_transfers {
            _ if expected.is_some() => true,
            HashTransfers::Always => true,
            HashTransfers::Auto => kept == 0,
            HashTransfers::Off => false,
        };
        let mut pipe = Pipeline::new(hash.then(|| Algorithm::Md5.hasher()));
        let mut copy = None;
        if let Some((old, len)) = old {
            let started = if hash {
                let done;
                (pipe, done) = copy_and_observe(old, len, temp.file(), pipe);
                done
            } else {
                KeptCopy::start(old, len, temp.file()).map(|started| copy = Some(started))
            };
            // The new bytes go after the kept part.
            let placed = started.and_then(|()| temp.file().seek(SeekFrom::Start(len)));
            if let Err(e) = placed {
                return answer(stream, 451, &local_error(&e));
            }
        }
        let text = format!(
            "Ok to send data for {}.",
            printable(path.name().unwrap_or(b""))
        );
        let Some(data) = self.open_data(stream, &text, Way::In)? else {
            return Ok(Flow::Continue);
        };
        let report = self.transfer(stream, data).receive(temp.file(), pipe);
        let md5 = report.observer.clone().map(Hasher::hex);
        let mut outcome = Outcome::of(report, md5);
        // The kept part must be all there before the file is made visible.
        if let (Some(copy), End::Complete) = (copy, &outcome.end) {
            if let Err(e) = copy.finish() {
                outcome.end = End::File(e);
            }
        }
        if let End::Complete = outcome.end {
            let mismatch = match (&expected, &outcome.md5) {
                (Some(want), Some(got)) => want != got,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if mismatch {
                outcome.end = End::Mismatch(expected.unwrap_or_default());
            } else if let Err(e) = temp.sync() {
                outcome.end = End::File(e);
            } else if let Err(end) = self.still_there(stream, outcome.bytes, &mut outcome.quit) {
                outcome.end = end;
            } else if let Err(e) = temp.commit(&target) {
                outcome.end = End::File(e);
            }
        }
        self.finish(stream, verb, &path, outcome, "Transfer complete.")
    }

    /// A last look at the control connection before an upload is made
    /// visible. A client killed mid-upload closes both its connections,
    /// and the end of the data connection may be seen first: its control
    /// connection's end has had the time of the fsync to arrive.
    fn still_there(&mut self, stream: &mut Stream, bytes: u64, quit: &mut bool) -> Result<(), End> {
        Watch {
            stream,
            control: &mut self.control,
            busy_with: "Transfer",
        }
        .check(bytes, quit)
    }

    /// Checks an upload's target and makes its temp file; returns the old
    /// file too, with how much of it is kept (`APPE`: all of it; `REST n`
    /// + `STOR`: its first n bytes), to be copied first.
    fn prepare_upload(&self, verb: &str, arg: &[u8], rest: u64) -> Result<Upload, (u16, String)> {
        let fail = |e: PathError| (550, e.message());
        let path = self.vfs.resolve(arg).map_err(fail)?;
        if arg.is_empty() {
            return Err((501, format!("{verb} needs a file name.")));
        }
        let target = self.vfs.entry(&path).map_err(fail)?;
        if target.is_dir() {
            return Err((550, "Is a directory.".to_string()));
        }
        let keep = if verb == "APPE" { u64::MAX } else { rest };
        let mut old = None;
        if keep > 0 {
            // The old file is opened beneath the root: a link leading out
            // of it is refused, not copied.
            old = match self.vfs.open_file(&path) {
                Ok((file, meta)) => Some((file, meta.len())),
                Err(PathError::NotFound) => None,
                Err(e) => return Err(fail(e)),
            };
            let length = old.as_ref().map_or(0, |(_, length)| *length);
            if verb == "STOR" && length < rest {
                return Err((
                    554,
                    format!(
                        "Restart position {rest} is beyond the end of the file ({length} bytes)."
                    ),
                ));
            }
        }
        let temp = TempFile::create(target.folder()).map_err(|e| (451, local_error(&e)))?;
        let old = old.map(|(file, length)| (file, length.min(keep)));
        Ok(Upload {
            path,
            target,
            temp,
            old,
        })
    }

    /// Replies to the end of a transfer and logs it.
    pub(super) fn finish(
        &mut self,
        stream: &mut Stream,
        verb: &str,
        path: &VPath,
        outcome: Outcome,
        done: &str,
    ) -> io::Result<Flow> {
        let result = match &outcome.end {
            End::Complete => "ok".to_string(),
            End::Aborted => "aborted".to_string(),
            End::ControlClosed if cut_by_server(stream) => CUT.to_string(),
            End::ControlClosed => "client gone".to_string(),
            End::TimedOut => "timed out".to_string(),
            End::Data(e) => format!("data connection: {}", describe(e)),
            End::File(e) => format!("file: {}", describe(e)),
            End::Mismatch(want) => format!("discarded: SITE CHKHASH expected md5={want}"),
        };
        let line = format!(
            "{} user={} {verb} {} bytes={} seconds={:.3} md5={} result={result}",
            self.peer,
            self.user_in_logs(),
            printable(&path.to_bytes()),
            outcome.bytes,
            outcome.elapsed.as_secs_f64(),
            outcome.md5.as_deref().unwrap_or("-"),
        );
        if matches!(verb, "RETR" | "STOR" | "APPE") {
            log::info!("transfer {line}");
        } else {
            log::debug!("listing {line}");
        }
        match outcome.end {
            End::Complete => match &outcome.md5 {
                Some(md5) => reply(stream, 226, &format!("{done} MD5={md5}"))?,
                None => reply(stream, 226, done)?,
            },
            End::Aborted => {
                reply(stream, 426, "Connection closed; transfer aborted.")?;
                reply(stream, 226, "ABOR successful.")?;
            }
            End::ControlClosed => return Ok(Flow::Close),
            End::TimedOut => reply(stream, 426, "Data connection timed out; transfer aborted.")?,
            End::Data(_) => reply(stream, 426, "Connection closed; transfer aborted.")?,
            End::File(e) if is_no_space(&e) => reply(stream, 452, "Insufficient storage space.")?,
            End::File(e) => reply(stream, 451, &local_error(&e))?,
            End::Mismatch(want) => {
                let text = format!(
                    "MD5 mismatch: received MD5={}, SITE CHKHASH expected {want}; \
                     the upload was discarded.",
                    outcome.md5.as_deref().unwrap_or("-")
                );
                reply(stream, 550, &text)?;
            }
        }
        if outcome.quit {
            reply(stream, 221, "Goodbye.")?;
            return Ok(Flow::Close);
        }
        Ok(Flow::Continue)
    }
}

/// An upload, ready to receive: its path, its target (folder and name),
/// its temp file, and the old file with how many of its bytes are kept.
struct Upload {
    path: VPath,
    target: Entry,
    temp: TempFile,
    old: Option<(std::fs::File, u64)>,
}

fn is_no_space(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

pub(super) fn local_error(e: &io::Error) -> String {
    format!("Local error: {}.", describe(e))
}

/// The result logged for a transfer or hash that the server's shutdown
/// cut (it was still running at the drain deadline).
pub(super) const CUT: &str = "cut by the shutdown";

/// Whether the server itself closed the control connection (a shutdown's
/// drain deadline cuts busy connections with `shutdown(2)`), rather than
/// the client: a send on a socket whose sending side is shut down fails
/// with `EPIPE` at once, even an empty one, which sends nothing; after the
/// client's close it succeeds, or fails with the reset the client sent.
pub(super) fn cut_by_server(stream: &Stream) -> bool {
    use std::io::Write;
    let Some(mut socket) = stream.as_tcp() else {
        return false;
    };
    matches!(socket.write(&[]), Err(e) if e.kind() == io::ErrorKind::BrokenPipe)
}
