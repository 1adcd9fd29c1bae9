//! The authentication gate of one connection: `auth TOKEN`, three strikes,
//! and the [`Throttle`](crate::throttle::Throttle)'s growing delays, shared
//! by all connections of the server. The delays are
//! [`socketserver::event::sleep`]s: in the event model the conversation
//! parks, and its loop serves the others meanwhile.

use super::protocol::Status;
use super::token::same_token;
use super::{Reply, Session, MAX_AUTH_FAILURES};

/// The account every token failure counts against: a shell has one token.
const ACCOUNT: &str = "shell token";

impl Session<'_> {
    /// Answers `auth TOKEN`. A wrong token waits before its reply, longer
    /// after each failure on the server (see the throttle), and so does any
    /// attempt while the token is being guessed.
    pub(super) fn auth(&mut self, given: &[u8]) -> Reply {
        let Some(token) = &self.shell.token else {
            return Reply::done("authentication not required\n", Status::Exit(0));
        };
        if self.authenticated {
            return Reply::done("already authenticated\n", Status::Exit(0));
        }
        let throttle = &self.shell.throttle;
        let wait = throttle.before_attempt(ACCOUNT, self.peer_ip);
        if !wait.is_zero() {
            log::info!(
                "{}: auth waits {:.1} s (the token is being guessed)",
                self.peer,
                wait.as_secs_f64()
            );
            socketserver::event::sleep(wait);
        }
        if same_token(given, token) {
            throttle.succeeded(ACCOUNT);
            self.authenticated = true;
            log::info!("{}: authenticated", self.peer);
            return Reply::done("authenticated\n", Status::Exit(0));
        }
        let hold = throttle.failed(ACCOUNT, self.peer_ip);
        socketserver::event::sleep(hold);
        self.refuse("error: wrong token")
    }

    /// Counts a failure (a wrong token, or a request before `auth`) and
    /// answers it; the third closes the connection.
    pub(super) fn refuse(&mut self, why: &str) -> Reply {
        self.failures += 1;
        log::warn!(
            "{}: authentication failed ({} of {MAX_AUTH_FAILURES})",
            self.peer,
            self.failures
        );
        if self.failures >= MAX_AUTH_FAILURES {
            let body = format!("{why} ({MAX_AUTH_FAILURES} failures: closing the connection)\n");
            let mut reply = Reply::done(body, Status::Error);
            reply.close = true;
            reply
        } else {
            Reply::done(format!("{why}\n"), Status::Error)
        }
    }
}
