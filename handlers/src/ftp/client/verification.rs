//! Verification: the server's MD5 of a file (`226`'s `MD5=`, `XMD5`,
//! `HASH`), compared with this client's.

use std::fs::File;
use std::io::{Seek, SeekFrom};

use crate::ftp::hash::{is_md5_hex, Algorithm};
use crate::ftp::pipeline::Pipeline;

use super::transfers::{finish, Transferred};
use super::{Client, Error};

/// How a transfer's MD5 compares with the server's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// Both have this MD5.
    Match(String),
    /// They differ.
    Mismatch {
        /// This client's MD5 of the file.
        local: String,
        /// The server's.
        server: String,
    },
    /// The server gave no digest.
    Unverified {
        /// This client's MD5 of the file.
        local: String,
        /// Why not.
        why: String,
    },
}

impl Client {
    /// The server's MD5 of `path`: `XMD5`, else `HASH` (after
    /// `OPTS HASH MD5`). `Ok(Err(why))` if the server gives none: it has
    /// neither command, or refuses (the file is too large to hash, the
    /// server is busy...).
    ///
    /// # Errors
    /// If the connection fails, or a reply is not FTP.
    pub fn remote_md5(&mut self, path: &str) -> Result<Result<String, String>, Error> {
        if !self.no_xmd5 {
            let line = format!("XMD5 {path}");
            let reply = self.command(&line)?;
            match reply.code {
                200..=299 => {
                    return find_md5(&reply.text)
                        .map(Ok)
                        .ok_or_else(|| Error::Protocol(format!("no MD5 in {reply}")))
                }
                500 | 502 | 504 => self.no_xmd5 = true,
                _ => return Ok(Err(format!("{line}: {reply}"))),
            }
        }
        if !self.no_hash {
            let opts = self.command("OPTS HASH MD5")?;
            if opts.code == 200 {
                let line = format!("HASH {path}");
                let reply = self.command(&line)?;
                match reply.code {
                    213 => {
                        // 213 MD5 0-SIZE HEX PATH
                        let mut words = reply.text.split_whitespace();
                        let algorithm = words.next().unwrap_or("");
                        let _range = words.next();
                        let hex = words.next().unwrap_or("");
                        if !algorithm.eq_ignore_ascii_case("MD5") || !is_md5_hex(hex) {
                            return Err(Error::Protocol(format!("no MD5 in {reply}")));
                        }
                        return Ok(Ok(hex.to_ascii_lowercase()));
                    }
                    500 | 502 | 504 => self.no_hash = true,
                    _ => return Ok(Err(format!("{line}: {reply}"))),
                }
            } else {
                self.no_hash = true;
            }
        }
        Ok(Err(
            "the server has no hash command (XMD5, HASH)".to_string()
        ))
    }

    /// Compares a transfer's MD5 with the server's: the `MD5=` of its
    /// `226` reply, for a whole download or any upload (this server gives
    /// the stored file's); else the server's digest of `remote` now.
    ///
    /// # Errors
    /// As [`Client::remote_md5`].
    pub fn check(&mut self, done: &Transferred, remote: &str) -> Result<Check, Error> {
        let server = match done.reply.md5() {
            Some(md5) if done.upload || done.offset == 0 => Ok(md5),
            _ => self.remote_md5(remote)?,
        };
        Ok(compare(&done.md5, server))
    }

    /// Compares the MD5 of a whole local file (hashed now) with the
    /// server's digest of `remote`: for a transfer found complete already.
    ///
    /// # Errors
    /// As [`Client::remote_md5`], or if `local` cannot be read.
    pub fn check_file(&mut self, local: &mut File, remote: &str) -> Result<Check, Error> {
        let mut pipe = Pipeline::new(Some(Algorithm::Md5.hasher()));
        local.seek(SeekFrom::Start(0))?;
        pipe.feed(local, u64::MAX)?;
        let md5 = finish(pipe);
        let server = self.remote_md5(remote)?;
        Ok(compare(&md5, server))
    }
}

fn compare(local: &str, server: Result<String, String>) -> Check {
    match server {
        Ok(server) if server == local => Check::Match(server),
        Ok(server) => Check::Mismatch {
            local: local.to_string(),
            server,
        },
        Err(why) => Check::Unverified {
            local: local.to_string(),
            why,
        },
    }
}

/// The first 32-hex-digit word of a reply's text.
fn find_md5(text: &str) -> Option<String> {
    text.split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_ascii_hexdigit()))
        .find(|w| is_md5_hex(w))
        .map(str::to_ascii_lowercase)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ftp::client::Reply;

    #[test]
    fn digests_in_replies() {
        let reply = Reply {
            code: 226,
            text: "Transfer complete. MD5=2EA763badcd027b0087306a3ef3ef95f".into(),
        };
        assert_eq!(
            reply.md5().as_deref(),
            Some("2ea763badcd027b0087306a3ef3ef95f")
        );
        let reply = Reply {
            code: 226,
            text: "Transfer complete.".into(),
        };
        assert_eq!(reply.md5(), None);
        assert_eq!(
            find_md5("2ea763badcd027b0087306a3ef3ef95f").as_deref(),
            Some("2ea763badcd027b0087306a3ef3ef95f")
        );
        assert_eq!(
            find_md5("file.txt 2ea763badcd027b0087306a3ef3ef95f").as_deref(),
            Some("2ea763badcd027b0087306a3ef3ef95f")
        );
        assert_eq!(find_md5("no digest here"), None);
    }

    #[test]
    fn comparisons() {
        assert_eq!(compare("ab", Ok("ab".into())), Check::Match("ab".into()));
        assert_eq!(
            compare("ab", Ok("cd".into())),
            Check::Mismatch {
                local: "ab".into(),
                server: "cd".into()
            }
        );
        assert!(matches!(
            compare("ab", Err("none".into())),
            Check::Unverified { .. }
        ));
    }
}
