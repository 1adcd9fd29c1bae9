//! The counters cross the process boundary: connections served in child
//! processes are counted, whole and exact, in the parent.

use std::time::{Duration, Instant};

use super::{ask, bind, counts, KillChildrenOnFailure, Script, PROCESS_MODELS};
use crate::util::{
    child_processes, isolated, serve, stream_examine, wait_until, Family, TEST_STR, TIMEOUT,
};

/// The counters are whole in the parent, for connections served in other
/// processes: after two echoes of `hello world\n`, a handler that fails
/// (having sent its pid) and a client that stays silent past the idle
/// timeout of 200 ms (which applies inside the child: the client reads end
/// of input, no sooner than 200 ms), the parent counts exactly 4 accepted,
/// 2 completed, 1 failed, 1 timed out, none active, and the bytes each way.
#[test]
fn counters_in_the_parent_after_a_known_sequence() {
    if !isolated("processes::counters::counters_in_the_parent_after_a_known_sequence") {
        return;
    }
    let _cleanup = KillChildrenOnFailure;
    const IDLE: Duration = Duration::from_millis(200);
    for model in PROCESS_MODELS {
        let running = serve(
            bind(Family::Tcp, Script::default())
                .model(model)
                .idle_timeout(Some(IDLE)),
        );
        let stats = running.stats.clone();
        stream_examine(&running.addr);
        stream_examine(&running.addr);
        let (mut client, pid) = ask(&running.addr, "fail");
        assert_eq!(client.rest(), b"");
        let pid_line = format!("{pid}\n").len() as u64;

        let mut silent = running.connect();
        let connected = Instant::now();
        assert!(
            silent.closed_within(TIMEOUT),
            "{model:?}: the idle timeout ends it"
        );
        assert!(
            connected.elapsed() >= IDLE,
            "{model:?}: not before the idle timeout"
        );
        wait_until(&format!("{model:?}: all counted"), TIMEOUT, || {
            let c = stats.snapshot();
            c.completed + c.failed + c.timed_out == 4 && c.active == 0
        });
        let test_str = TEST_STR.len() as u64;
        assert_eq!(
            counts(stats.snapshot()),
            // accepted, active, refused, completed, timed_out, failed,
            // bytes_read, bytes_written, accept_errors
            [
                4,
                0,
                0,
                2,
                1,
                1,
                2 * test_str + "fail\n".len() as u64,
                2 * test_str + pid_line,
                0
            ],
            "{model:?}"
        );
        let report = running.shutdown();
        assert_eq!((report.drained, report.cut), (0, 0), "{model:?}");
        assert_eq!(child_processes(), [], "{model:?}");
    }
}
