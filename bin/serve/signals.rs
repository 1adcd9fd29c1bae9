//! How `serve` stops: SIGINT and SIGTERM.

/// The first SIGINT or SIGTERM starts a graceful shutdown; a second SIGINT
/// (an impatient Ctrl-C) exits at once, with status 130.
///
/// No thread waits for signals: the handlers write to a socket pair whose
/// other end the server polls, so the process stays single-threaded, as the
/// forking models want. Returns that other end.
pub fn stop_on_signals() -> std::io::Result<std::os::unix::net::UnixStream> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::{flag, low_level::pipe};
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    let (stop, signalled) = std::os::unix::net::UnixStream::pair()?;
    let interrupted = Arc::new(AtomicBool::new(false));
    // Order matters: on a second SIGINT the flag is already set, and the
    // process exits before anything else runs.
    flag::register_conditional_shutdown(SIGINT, 130, Arc::clone(&interrupted))?;
    flag::register(SIGINT, interrupted)?;
    pipe::register(SIGINT, signalled.try_clone()?)?;
    pipe::register(SIGTERM, signalled)?;
    Ok(stop)
}
