//! The verb table: every verb the server knows, when it is allowed, what
//! `FEAT` says of it, and the method that runs it. The dispatch, `HELP`,
//! `FEAT` and the `502` of the verbs known but not implemented are all
//! read from it, so a verb is added (or dropped) in one place.

use std::io;

use socketserver::Stream;

use crate::ftp::control::{printable, reply_lines, split_command};
use crate::ftp::entry::Entry;
use crate::ftp::vfs::VPath;

use super::{answer, Flow, Session};
use Allowed::{Anytime, LoggedIn, LoggedInWithData, ToLogIn};
use Feature::{Computed, Line, Name, WithTls};

/// A command line, as the method of its verb gets it.
pub(super) struct Command<'l> {
    /// The verb, upper case: the table's name for it.
    pub(super) verb: &'static str,
    /// Everything after the first space, as sent.
    pub(super) arg: &'l [u8],
    /// `RNFR`'s source, if the command just before this one was a
    /// successful `RNFR` (`RNTO` must follow it at once).
    pub(super) rename_from: Option<(Entry, VPath)>,
}

/// What runs a verb.
type Handler = fn(&mut Session, &mut Stream, Command<'_>) -> io::Result<Flow>;

/// When a verb is allowed, and what is checked before it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Allowed {
    /// At any time, before login too.
    Anytime,
    /// At any time, but with `tls_required` only over TLS: the login's
    /// own verbs, so that no password crosses in clear.
    ToLogIn,
    /// After login (before it: `530`).
    LoggedIn,
    /// After login, and it opens a data connection, which with
    /// `tls_required` must be protected (`PROT P`; else `521`).
    LoggedInWithData,
}

/// What `FEAT` says of a verb.
#[derive(Clone, Copy)]
enum Feature {
    /// Nothing: RFC 959's verbs, which every server has.
    Unlisted,
    /// Its name.
    Name,
    /// This line.
    Line(&'static str),
    /// This line, when FTPS is on (RFC 4217).
    WithTls(&'static str),
    /// A line that says the session's choices (`HASH`'s algorithm,
    /// `MLST`'s facts).
    Computed(fn(&Session) -> String),
}

/// What the server does with a verb.
#[derive(Clone, Copy)]
enum Action {
    /// Runs this.
    Run(Handler),
    /// Answers `502 Command not implemented.` (a verb of FTP or of its
    /// extensions, which a client may try; an unknown verb gets `500`).
    NotImplemented,
}

/// One verb of the table.
#[derive(Clone, Copy)]
struct Verb {
    name: &'static str,
    allowed: Allowed,
    feature: Feature,
    action: Action,
}

impl Verb {
    const fn run(name: &'static str, allowed: Allowed, handler: Handler) -> Verb {
        Verb {
            name,
            allowed,
            feature: Feature::Unlisted,
            action: Action::Run(handler),
        }
    }

    const fn not_implemented(name: &'static str) -> Verb {
        Verb {
            name,
            allowed: Allowed::LoggedIn,
            feature: Feature::Unlisted,
            action: Action::NotImplemented,
        }
    }

    const fn listed(self, feature: Feature) -> Verb {
        Verb { feature, ..self }
    }

    /// The verb named `name` (upper case).
    fn find(name: &str) -> Option<&'static Verb> {
        VERBS.iter().find(|verb| verb.name == name)
    }
}

/// Every verb, grouped by the file that runs it.
const VERBS: &[Verb] = &[
    // The session (mod.rs) and this table.
    Verb::run("QUIT", Anytime, Session::quit),
    Verb::run("NOOP", Anytime, Session::noop),
    Verb::run("SYST", Anytime, Session::syst),
    Verb::run("HELP", Anytime, Session::help),
    Verb::run("FEAT", Anytime, Session::feat),
    // login.rs
    Verb::run("USER", ToLogIn, Session::user),
    Verb::run("PASS", ToLogIn, Session::pass),
    // settings.rs
    Verb::run("OPTS", Anytime, Session::opts),
    Verb::run("TYPE", LoggedIn, Session::representation_type),
    Verb::run("MODE", LoggedIn, Session::mode),
    Verb::run("STRU", LoggedIn, Session::stru),
    Verb::run("ALLO", LoggedIn, Session::allo),
    // security.rs
    Verb::run("AUTH", Anytime, Session::auth).listed(WithTls("AUTH TLS")),
    Verb::run("PBSZ", Anytime, Session::pbsz).listed(WithTls("PBSZ")),
    Verb::run("PROT", Anytime, Session::prot).listed(WithTls("PROT")),
    Verb::run("CCC", Anytime, Session::ccc),
    // navigation.rs
    Verb::run("PWD", LoggedIn, Session::pwd),
    Verb::run("XPWD", LoggedIn, Session::pwd),
    Verb::run("CWD", LoggedIn, Session::cwd),
    Verb::run("XCWD", LoggedIn, Session::cwd),
    Verb::run("CDUP", LoggedIn, Session::cdup),
    Verb::run("XCUP", LoggedIn, Session::cdup),
    Verb::run("SIZE", LoggedIn, Session::size).listed(Name),
    Verb::run("MDTM", LoggedIn, Session::mdtm).listed(Name),
    // data_connections.rs
    Verb::run("PASV", LoggedIn, Session::pasv).listed(Name),
    Verb::run("EPSV", LoggedIn, Session::epsv).listed(Name),
    Verb::run("PORT", LoggedIn, Session::active),
    Verb::run("EPRT", LoggedIn, Session::active).listed(Name),
    // listings.rs
    Verb::run("LIST", LoggedInWithData, Session::listing),
    Verb::run("NLST", LoggedInWithData, Session::listing),
    Verb::run("MLSD", LoggedInWithData, Session::listing),
    Verb::run("MLST", LoggedIn, Session::mlst).listed(Computed(Session::mlst_feature)),
    Verb::run("STAT", LoggedIn, Session::stat),
    // transfers.rs
    Verb::run("RETR", LoggedInWithData, Session::retr),
    Verb::run("STOR", LoggedInWithData, Session::store),
    Verb::run("APPE", LoggedInWithData, Session::store),
    Verb::run("REST", LoggedIn, Session::rest).listed(Line("REST STREAM")),
    Verb::run("ABOR", LoggedIn, Session::abor),
    // checksums.rs
    Verb::run("XMD5", LoggedIn, Session::file_digest).listed(Name),
    Verb::run("XSHA1", LoggedIn, Session::file_digest).listed(Name),
    Verb::run("XSHA256", LoggedIn, Session::file_digest).listed(Name),
    Verb::run("HASH", LoggedIn, Session::file_digest).listed(Computed(Session::hash_feature)),
    Verb::run("SITE", LoggedIn, Session::site),
    // changes.rs
    Verb::run("DELE", LoggedIn, Session::change),
    Verb::run("MKD", LoggedIn, Session::change),
    Verb::run("XMKD", LoggedIn, Session::change),
    Verb::run("RMD", LoggedIn, Session::change),
    Verb::run("XRMD", LoggedIn, Session::change),
    Verb::run("RNFR", LoggedIn, Session::change),
    Verb::run("RNTO", LoggedIn, Session::change),
    // Known, not implemented.
    Verb::not_implemented("ACCT"),
    Verb::not_implemented("SMNT"),
    Verb::not_implemented("REIN"),
    Verb::not_implemented("STOU"),
    Verb::not_implemented("ADAT"),
    Verb::not_implemented("MIC"),
    Verb::not_implemented("CONF"),
    Verb::not_implemented("ENC"),
    Verb::not_implemented("MFMT"),
    Verb::not_implemented("MFCT"),
    Verb::not_implemented("MFF"),
    Verb::not_implemented("LANG"),
    Verb::not_implemented("HOST"),
    Verb::not_implemented("XCRC"),
    Verb::not_implemented("XSHA"),
    Verb::not_implemented("XSHA512"),
    Verb::not_implemented("MD5"),
    Verb::not_implemented("MMD5"),
];

/// What `FEAT` lists that is no verb's: path names are a tree of `/`
/// (RFC 3659's TVFS), and always UTF-8 (RFC 2640).
const PROPERTIES: [&str; 2] = ["TVFS", "UTF8"];

/// How many verbs a line of `HELP` shows.
const HELP_PER_LINE: usize = 8;

impl Session {
    /// Runs one command line: its verb's method, if the verb is allowed
    /// now.
    pub(super) fn command(&mut self, stream: &mut Stream, line: &[u8]) -> io::Result<Flow> {
        let (verb, arg) = split_command(line);
        if verb == "PASS" {
            log::debug!("{} <- PASS ****", self.peer);
        } else {
            log::debug!("{} <- {}", self.peer, printable(line));
        }
        // RNFR must be followed at once by RNTO: any other command,
        // allowed or not, forgets its source.
        let rename_from = self.rename_from.take();
        let logged_in = self.login.is_some();
        let Some(found) = Verb::find(&verb) else {
            return if logged_in {
                answer(stream, 500, "Unknown command.")
            } else {
                answer(stream, 530, "Please log in with USER and PASS.")
            };
        };
        match found.allowed {
            ToLogIn if self.refuse_clear_login(stream)? => return Ok(Flow::Continue),
            LoggedIn | LoggedInWithData if !logged_in => {
                return answer(stream, 530, "Please log in with USER and PASS.");
            }
            LoggedInWithData if self.refuse_clear_data(stream)? => return Ok(Flow::Continue),
            _ => {}
        }
        match found.action {
            Action::Run(handler) => {
                let command = Command {
                    verb: found.name,
                    arg,
                    rename_from,
                };
                handler(self, stream, command)
            }
            Action::NotImplemented => answer(stream, 502, "Command not implemented."),
        }
    }

    /// `HELP`: the verbs run, in alphabetical order.
    fn help(&mut self, stream: &mut Stream, _: Command<'_>) -> io::Result<Flow> {
        let (first, last) = ("The following commands are recognized:", "Help OK.");
        reply_lines(stream, 214, first, &help_lines(), last)?;
        Ok(Flow::Continue)
    }

    /// `FEAT`: FTPS's lines first when it is on (in RFC 4217's order),
    /// then the others in alphabetical order.
    fn feat(&mut self, stream: &mut Stream, _: Command<'_>) -> io::Result<Flow> {
        let tls = self.config.tls.is_some();
        let mut security = Vec::new();
        let mut others: Vec<String> = PROPERTIES.iter().map(|p| p.to_string()).collect();
        for verb in VERBS {
            match verb.feature {
                Feature::Unlisted => {}
                Name => others.push(verb.name.to_string()),
                Line(line) => others.push(line.to_string()),
                WithTls(line) if tls => security.push(line.to_string()),
                WithTls(_) => {}
                Computed(line) => others.push(line(self)),
            }
        }
        others.sort_unstable();
        security.extend(others);
        reply_lines(stream, 211, "Features:", &security, "End")?;
        Ok(Flow::Continue)
    }
}

/// The lines of `HELP`: the names of the verbs run, in alphabetical
/// order.
fn help_lines() -> Vec<String> {
    let mut names: Vec<&str> = VERBS
        .iter()
        .filter(|verb| matches!(verb.action, Action::Run(_)))
        .map(|verb| verb.name)
        .collect();
    names.sort_unstable();
    names.chunks(HELP_PER_LINE).map(|c| c.join(" ")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_upper_case_and_unique() {
        for (i, verb) in VERBS.iter().enumerate() {
            assert_eq!(verb.name, verb.name.to_ascii_uppercase());
            assert!(
                VERBS[..i].iter().all(|other| other.name != verb.name),
                "{} twice",
                verb.name
            );
        }
    }

    #[test]
    fn help_lists_every_verb_run() {
        assert_eq!(
            help_lines(),
            [
                "ABOR ALLO APPE AUTH CCC CDUP CWD DELE",
                "EPRT EPSV FEAT HASH HELP LIST MDTM MKD",
                "MLSD MLST MODE NLST NOOP OPTS PASS PASV",
                "PBSZ PORT PROT PWD QUIT REST RETR RMD",
                "RNFR RNTO SITE SIZE STAT STOR STRU SYST",
                "TYPE USER XCUP XCWD XMD5 XMKD XPWD XRMD",
                "XSHA1 XSHA256",
            ]
        );
    }

    #[test]
    fn not_implemented_verbs_wait_for_the_login() {
        for verb in VERBS {
            if let Action::NotImplemented = verb.action {
                assert_eq!(verb.allowed, LoggedIn, "{}", verb.name);
            }
        }
    }
}
