//! Forking from a process with threads: the process models refuse it
//! unless the builder opts out (`unsafe`), and what a forked child may do
//! once forked here: log through the application's logger (a lock-free
//! [`FileLogger`]) and allocate.

use std::path::PathBuf;
use std::thread;

use socketserver::Error;

use super::{
    append, ask, bind, lines_of, logged_line, temp_path, KillChildrenOnFailure, Script,
    PROCESS_MODELS, SCRIPT_TARGET,
};
use crate::util::{self, child_processes, isolated, serve, wait_until, Family, LineEcho, TIMEOUT};

/// A process model refuses to fork from a process with other threads: a
/// forked child would inherit, held for ever, any lock another thread held
/// at that instant. `build` says so with `Error::ForkWithThreads` (how many
/// threads, and what to do); with the `unsafe` opt-out it builds and
/// serves.
#[test]
fn forking_refuses_a_process_with_threads() {
    if !isolated("processes::fork_safety::forking_refuses_a_process_with_threads") {
        return;
    }
    let _cleanup = KillChildrenOnFailure;
    // A second thread for certain, whatever libtest does with its own.
    let (stop, parked) = std::sync::mpsc::channel::<()>();
    let other = thread::spawn(move || {
        let _ = parked.recv();
    });
    for model in PROCESS_MODELS {
        let refused = util::bind(Family::Tcp, LineEcho).model(model).build();
        match refused {
            Err(Error::ForkWithThreads {
                model: name,
                threads,
            }) => {
                assert_eq!(name, model.to_string(), "{model:?}");
                assert!(threads >= 2, "{model:?}: {threads} threads");
                let message = Error::ForkWithThreads {
                    model: name,
                    threads,
                }
                .to_string();
                assert!(
                    message.contains(&format!("this process has {threads} threads"))
                        && message.contains("allow_fork_with_threads"),
                    "{model:?}: {message}"
                );
            }
            other => panic!("{model:?}: built a forking server with threads: {other:?}"),
        }
        let running = serve(bind(Family::Tcp, LineEcho).model(model));
        let mut client = running.connect();
        assert_eq!(client.round_trip("hello\n"), "hello\n", "{model:?}");
        drop(client);
        running.shutdown();
        assert_eq!(child_processes(), [], "{model:?}");
    }
    drop(stop);
    other.join().expect("the parked thread");
}

/// A logger that appends each record, with the pid of the process that
/// logged it, to a file: one `write` per record, no lock, so that it works
/// the same in forked children.
struct FileLogger {
    path: PathBuf,
}

impl log::Log for FileLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            append(
                &self.path,
                &format!(
                    "{} {} {}: {}\n",
                    std::process::id(),
                    record.level(),
                    record.target(),
                    record.args()
                ),
            );
        }
    }

    fn flush(&self) {}
}

/// A handler in a forked child (and in a prefork worker) can log through
/// the logger the application installed, and allocate: it fills 1 MiB and
/// logs its sum; the log file has that line from the child's pid, once,
/// next to the parent's own lines.
#[test]
fn a_child_can_log_and_allocate() {
    if !isolated("processes::fork_safety::a_child_can_log_and_allocate") {
        return;
    }
    let _cleanup = KillChildrenOnFailure;
    let path = temp_path("log.txt");
    log::set_boxed_logger(Box::new(FileLogger { path: path.clone() })).expect("set the logger");
    log::set_max_level(log::LevelFilter::Info);
    let me = std::process::id();
    for model in PROCESS_MODELS {
        let running = serve(
            bind(Family::Tcp, Script::default())
                .model(model)
                .idle_timeout(Some(TIMEOUT)),
        );
        let (mut client, pid) = ask(&running.addr, "log");
        assert_eq!(client.rest(), b"");
        // The child logs before it answers.
        let expected = format!("{pid} INFO {SCRIPT_TARGET}: {}", logged_line(pid));
        let lines = lines_of(&path);
        assert_eq!(
            lines.iter().filter(|l| **l == expected).count(),
            1,
            "{model:?}: {expected:?} in {lines:#?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("{me} INFO socketserver"))
                    && l.contains(&format!("serving on {}", running.addr))),
            "{model:?}: the parent's own line in {lines:#?}"
        );
        let stats = running.stats.clone();
        wait_until(&format!("{model:?}: ended"), TIMEOUT, || {
            let c = stats.snapshot();
            c.completed == 1 && c.active == 0
        });
        let report = running.shutdown();
        assert_eq!((report.drained, report.cut), (0, 0), "{model:?}");
    }
    std::fs::remove_file(&path).expect("remove the log");
}
