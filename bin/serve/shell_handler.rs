//! The Shell handler from the flags, after its safety checks.

use socketserver_handlers::shell::token_file;
use socketserver_handlers::shell::{self, Shell};

use crate::address::exposed;
use crate::cli::Cli;
use crate::secret_files::warn_if_readable_by_others;

/// The Shell handler from the flags, after the safety checks: it runs
/// whatever it is sent, so it wants a token (given, or generated when none
/// is: then returned too, for its file), refuses to listen beyond loopback
/// without one, and refuses root unless --allow-root. Errors carry the
/// exit code.
pub fn shell_handler(cli: &Cli) -> Result<(Shell, Option<String>), (u8, String)> {
    let options = &cli.shell;
    if let Some(path) = &options.token_file {
        warn_if_readable_by_others(path);
    }
    let given = match (&options.token, &options.token_file) {
        (Some(token), _) => Some(token.clone()),
        (None, Some(path)) => Some(token_file::read(path).map_err(|e| {
            let why = socketserver::error::describe(&e);
            (
                1,
                format!("cannot read the token file {}: {why}", path.display()),
            )
        })?),
        (None, None) => None,
    };
    if let Some(token) = &given {
        if token.len() < shell::MIN_TOKEN_LEN {
            return Err((
                2,
                format!(
                    "the token is {} bytes long: use at least {} (e.g. `head -c 32 /dev/urandom \
                     | base64`), or give no token and one is generated",
                    token.len(),
                    shell::MIN_TOKEN_LEN
                ),
            ));
        }
    }
    if options.no_token {
        if let Some(exposed) = exposed(cli) {
            return Err((
                2,
                format!(
                    "refusing to serve shell on {exposed} without a token: anyone who can \
                     reach it could run commands as this user; bind 127.0.0.1, or drop \
                     --no-token (clients then send \"auth TOKEN\" first)"
                ),
            ));
        }
        log::warn!(
            "shell: no token (--no-token): any local process can run commands as this user; \
             only loopback clients are served"
        );
    }
    if !options.allow_root && shell::running_as_root() {
        return Err((
            2,
            "refusing to serve shell as root: every client would run commands as root; \
             run it as another user, or pass --allow-root if you mean it"
                .to_string(),
        ));
    }
    let generated = match (&given, options.no_token) {
        (None, false) => Some(shell::generate_token().map_err(|e| {
            let why = socketserver::error::describe(&e);
            (1, format!("cannot generate a token: {why}"))
        })?),
        _ => None,
    };
    let limit = Some(options.command_timeout.0).filter(|t| !t.is_zero());
    let mut shell = Shell::default()
        .command_timeout(limit)
        .login_timeout(cli.login_timeout.unwrap_or(shell::DEFAULT_LOGIN_TIMEOUT))
        .max_output(options.max_output)
        .allow_no_token(options.no_token)
        .allow_root(options.allow_root);
    if let Some(token) = given.as_ref().or(generated.as_ref()) {
        shell = shell.token(token);
    }
    // The flags were checked above with friendlier words; this is the
    // handler's own check, which must agree.
    shell.check().map_err(|why| (2, why.to_string()))?;
    Ok((shell, generated))
}
