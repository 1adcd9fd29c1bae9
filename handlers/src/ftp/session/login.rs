//! Login: `USER` and `PASS`, the throttle's delays, anonymous access.
//!
//! The delays are [`socketserver::event::sleep`]s: in the event model the
//! session parks, and its event loop serves the other sessions meanwhile
//! (a `thread::sleep` would stop them all for the guesser's penalty).

use std::io;
use std::time::Instant;

use socketserver::Stream;

use crate::ftp::auth::{is_anonymous_name, Access};
use crate::ftp::config::MAX_LOGIN_FAILURES;
use crate::ftp::control::{printable, reply};

use super::verbs::Command;
use super::{answer, Flow, Login, Session, LINGER};

impl Session {
    pub(super) fn user(&mut self, stream: &mut Stream, command: Command<'_>) -> io::Result<Flow> {
        let arg = command.arg;
        if arg.is_empty() {
            return answer(stream, 501, "USER needs a name.");
        }
        let name = String::from_utf8_lossy(arg).into_owned();
        if self.login.take().is_some() {
            // Logged out: a new login gets the usual time.
            self.login_deadline = Instant::now() + self.config.login_timeout;
        }
        let text = if is_anonymous_name(&name) && self.config.anonymous {
            "Anonymous login ok, send your e-mail address as password.".to_string()
        } else {
            format!("Password required for {}.", printable(arg))
        };
        self.user = Some(name);
        answer(stream, 331, &text)
    }

    pub(super) fn pass(&mut self, stream: &mut Stream, command: Command<'_>) -> io::Result<Flow> {
        let password = command.arg;
        let Some(name) = self.user.take() else {
            return answer(stream, 503, "Login with USER first.");
        };
        if is_anonymous_name(&name) && self.config.anonymous {
            log::info!("{}: anonymous login (read-only)", self.peer);
            self.log_in(stream, "anonymous", Access::ReadOnly)?;
            return answer(stream, 230, "Anonymous access granted: read-only.");
        }
        // Guessing is slowed per account, per address and server-wide.
        let (throttle, ip) = (&self.config.throttle, Some(self.peer.ip()));
        let wait = throttle.before_attempt(&name, ip);
        if !wait.is_zero() {
            log::info!("{}: login for {name:?} waits {wait:.1?}", self.peer);
            socketserver::event::sleep(wait);
        }
        if self.config.users.check(&name, password) {
            throttle.succeeded(&name);
            let access = if self.config.read_only {
                Access::ReadOnly
            } else {
                Access::ReadWrite
            };
            log::info!("{}: {name:?} logged in", self.peer);
            self.log_in(stream, &name, access)?;
            return answer(stream, 230, "Login successful.");
        }
        self.failures += 1;
        log::warn!(
            "{}: failed login for {name:?} ({} of {MAX_LOGIN_FAILURES})",
            self.peer,
            self.failures
        );
        stream.flush()?;
        socketserver::event::sleep(throttle.failed(&name, ip));
        reply(stream, 530, "Login incorrect.")?;
        if self.failures >= MAX_LOGIN_FAILURES {
            log::warn!("{}: too many failed logins; closing", self.peer);
            stream.lingering_close(LINGER)?;
            return Ok(Flow::Close);
        }
        Ok(Flow::Continue)
    }

    fn log_in(&mut self, stream: &mut Stream, name: &str, access: Access) -> io::Result<()> {
        self.login = Some(Login {
            name: name.to_string(),
            access,
        });
        // The anonymous user sees only what everyone may read.
        self.vfs.set_world_readable_only(name == "anonymous");
        stream.set_read_timeout(self.idle)
    }

    /// Who is logged in, as the log lines of changes, transfers and hashes
    /// say it: `-` for no one.
    pub(super) fn user_in_logs(&self) -> &str {
        self.login.as_ref().map_or("-", |l| l.name.as_str())
    }

    pub(super) fn writable(&self) -> bool {
        self.login
            .as_ref()
            .is_some_and(|l| l.access == Access::ReadWrite)
    }
}
