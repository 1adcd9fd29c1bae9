//! Hashes on demand: `XMD5`, `XSHA1`, `XSHA256`, `HASH`; and `SITE
//! CHKHASH`, the MD5 the next upload must have.

use std::io;
use std::time::SystemTime;

use socketserver::error::describe;
use socketserver::Stream;

use crate::ftp::control::{printable, reply, reply_lines};
use crate::ftp::hash::{is_md5_hex, Algorithm, FileKey, Hasher};
use crate::ftp::pipeline::Pipeline;
use crate::ftp::transfer::{self, End, Watch};

use super::transfers::{cut_by_server, local_error, CUT};
use super::verbs::Command;
use super::{answer, Flow, Session};

impl Session {
    /// `HASH`'s line in `FEAT`: the algorithms, the selected one starred.
    pub(super) fn hash_feature(&self) -> String {
        let names: Vec<String> = Algorithm::ALL
            .iter()
            .map(|&a| {
                let star = if a == self.hash { "*" } else { "" };
                format!("{}{star}", a.name())
            })
            .collect();
        format!("HASH {}", names.join(";"))
    }

    /// `XMD5`, `XSHA1`, `XSHA256` and `HASH`: a file's digest, from the
    /// cache or computed now (with the control connection watched, as
    /// during a transfer).
    pub(super) fn file_digest(
        &mut self,
        stream: &mut Stream,
        command: Command<'_>,
    ) -> io::Result<Flow> {
        let Command { verb, arg, .. } = command;
        let algorithm = match verb {
            "XMD5" => Algorithm::Md5,
            "XSHA1" => Algorithm::Sha1,
            "XSHA256" => Algorithm::Sha256,
            _ => self.hash,
        };
        if arg.is_empty() {
            return answer(stream, 501, &format!("{verb} needs a file name."));
        }
        let found = self.vfs.resolve(arg).and_then(|path| {
            let meta = self.vfs.metadata(&path)?;
            Ok((path, meta))
        });
        let (path, meta) = match found {
            Ok(found) => found,
            Err(e) => return answer(stream, 550, &e.message()),
        };
        if meta.is_dir() {
            return answer(stream, 553, "Is a directory: only files have a hash.");
        }
        if !meta.is_file() {
            return answer(stream, 553, "Not a regular file.");
        }
        let (file, meta) = match self.vfs.open_file(&path) {
            Ok(opened) => opened,
            Err(e) => return answer(stream, 550, &e.message()),
        };
        let key = FileKey::of(&meta);
        let size = meta.len();
        let give_digest = |stream: &mut Stream, hex: &str| match verb {
            "HASH" => {
                let text = format!("{} 0-{size} {hex} {}", algorithm.name(), printable(arg));
                reply(stream, 213, &text)
            }
            _ => reply(stream, 250, hex),
        };
        if let Some(hex) = self.digests.get(&key, algorithm) {
            give_digest(stream, &hex)?;
            return Ok(Flow::Continue);
        }
        if let Some(max) = self.config.hash_max_size.filter(|&max| size > max) {
            let text =
                format!("File too large to hash on demand ({size} bytes; the limit is {max}).");
            return answer(stream, 550, &text);
        }
        let Some(permit) = self.digests.permit(self.config.max_hashes) else {
            log::warn!("{}: {verb} refused: too many hashes running", self.peer);
            return answer(
                stream,
                450,
                "Too many hash computations running; try again later.",
            );
        };
        stream.flush()?;
        let started = SystemTime::now();
        let watch = Watch {
            stream,
            control: &mut self.control,
            busy_with: "Hashing",
        };
        let report = transfer::observe_file(watch, &file, Pipeline::new(Some(algorithm.hasher())));
        drop(permit);
        let unchanged = file.metadata().is_ok_and(|m| FileKey::of(&m) == key);
        let hex = report.observer.clone().map(Hasher::hex);
        let result = match (&report.end, unchanged, &hex) {
            (End::Complete, true, Some(hex)) => {
                self.digests.put(key, algorithm, hex, started);
                give_digest(stream, hex)?;
                "ok".to_string()
            }
            (End::Complete, _, _) => {
                reply(
                    stream,
                    450,
                    "The file changed while it was hashed; try again.",
                )?;
                "file changed".to_string()
            }
            (End::Aborted, _, _) => {
                reply(stream, 426, "Hashing aborted.")?;
                reply(stream, 226, "ABOR successful.")?;
                "aborted".to_string()
            }
            (End::ControlClosed, _, _) if cut_by_server(stream) => CUT.to_string(),
            (End::ControlClosed, _, _) => "client gone".to_string(),
            (End::File(e), _, _) => {
                reply(stream, 451, &local_error(e))?;
                format!("file: {}", describe(e))
            }
            (End::TimedOut | End::Data(_) | End::Mismatch(_), _, _) => "failed".to_string(),
        };
        log::info!(
            "hash {} user={} {verb} {} bytes={} seconds={:.3} {}={} result={result}",
            self.peer,
            self.user_in_logs(),
            printable(&path.to_bytes()),
            report.bytes,
            report.elapsed.as_secs_f64(),
            algorithm.name().to_ascii_lowercase(),
            hex.as_deref().unwrap_or("-"),
        );
        if matches!(report.end, End::ControlClosed) {
            return Ok(Flow::Close);
        }
        if report.quit {
            reply(stream, 221, "Goodbye.")?;
            return Ok(Flow::Close);
        }
        Ok(Flow::Continue)
    }

    pub(super) fn site(&mut self, stream: &mut Stream, command: Command<'_>) -> io::Result<Flow> {
        let arg = String::from_utf8_lossy(command.arg);
        let (site_verb, value) = arg.trim().split_once(' ').unwrap_or((arg.trim(), ""));
        match site_verb.to_ascii_uppercase().as_str() {
            "CHKHASH" => {
                let value = value.trim();
                if !is_md5_hex(value) {
                    return answer(
                        stream,
                        501,
                        "SITE CHKHASH needs an MD5 digest: 32 hexadecimal digits.",
                    );
                }
                let md5 = value.to_ascii_lowercase();
                let text = format!("The next STOR or APPE is kept only if its MD5 is {md5}.");
                self.check_md5 = Some(md5);
                answer(stream, 200, &text)
            }
            "HELP" => {
                reply_lines(
                stream,
                214,
                "SITE commands:",
                &[
                    "CHKHASH <md5>: the next STOR or APPE lands only if the stored file has this MD5"
                        .to_string(),
                    "HELP".to_string(),
                ],
                "End",
                )?;
                Ok(Flow::Continue)
            }
            _ => answer(stream, 502, "Unknown SITE command: see SITE HELP."),
        }
    }
}
