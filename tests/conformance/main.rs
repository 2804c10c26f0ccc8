#![allow(unreachable_pub)]
//! The conformance suite (`taskweave::testing`) on every executor and transport of ours,
//! called exactly as a backend of a user's calls it: one `conformance_suite!` per harness.
//!
//! A harness (`harness.rs`) builds a client on its executor and transport, runs the case
//! inside its runtime and closes the client; the suite fails a case that does not finish
//! within `taskweave::testing::DEADLINE`. Test names read `<harness>::<case>`, e.g.
//! `tokio_multi_thread::submit_then_await_gives_value`.
//!
//! The in-process transport has every capability. The Redis transport (`redis_*`, feature
//! `redis`, a real `redis-server` per case and the worker library in this process) runs every
//! case that does not need closures on each runtime (its workers are in this process, so it
//! has `local_workers`; they report who ran each task and when, so it has `run_reports`; they
//! host the suite's remote actor, so it has `remote_actors`; its coordination primitives live
//! in Redis, so it has `coordination`), and
//! the `bulk` stress cases (some 30 s through a broker) on tokio's multi-thread runtime only,
//! to keep CI quick.

mod harness;
#[cfg(feature = "redis")]
#[path = "../support/redis_server.rs"]
mod redis_server;
#[path = "../../examples/support/thread_pool_executor.rs"]
mod thread_pool_executor;

/// The capabilities of the in-process transport: all of them.
macro_rules! in_process_suite {
    ($harness:ident) => {
        mod $harness {
            taskweave::conformance_suite!(
                run: crate::harness::$harness::run,
                capabilities: [closures, local_workers, bulk, worker_gauges, run_reports, coordination],
            );
        }
    };
}

in_process_suite!(embedded);
in_process_suite!(custom_thread_pool);
#[cfg(feature = "tokio")]
in_process_suite!(tokio_current_thread);
#[cfg(feature = "tokio")]
in_process_suite!(tokio_multi_thread);
#[cfg(feature = "smol")]
in_process_suite!(smol);
#[cfg(feature = "async-std")]
in_process_suite!(async_std);

#[cfg(feature = "redis")]
mod redis_embedded {
    taskweave::conformance_suite!(
        run: crate::harness::redis_embedded::run,
        capabilities: [local_workers, run_reports, remote_actors, coordination],
    );
}

#[cfg(all(feature = "redis", feature = "tokio"))]
mod redis_tokio_current_thread {
    taskweave::conformance_suite!(
        run: crate::harness::redis_tokio_current_thread::run,
        capabilities: [local_workers, run_reports, remote_actors, coordination],
    );
}

#[cfg(all(feature = "redis", feature = "tokio"))]
mod redis_tokio_multi_thread {
    taskweave::conformance_suite!(
        run: crate::harness::redis_tokio_multi_thread::run,
        capabilities: [local_workers, bulk, run_reports, remote_actors, coordination],
    );
}

#[cfg(all(feature = "redis", feature = "smol"))]
mod redis_smol {
    taskweave::conformance_suite!(
        run: crate::harness::redis_smol::run,
        capabilities: [local_workers, run_reports, remote_actors, coordination],
    );
}

#[cfg(all(feature = "redis", feature = "async-std"))]
mod redis_async_std {
    taskweave::conformance_suite!(
        run: crate::harness::redis_async_std::run,
        capabilities: [local_workers, run_reports, remote_actors, coordination],
    );
}

// Three worker slots instead of two: every case still holds.
in_process_suite!(embedded_three_workers);

/// The suite's size is explicit: what each group holds, as the module docs describe it.
#[test]
fn the_suite_counts_its_cases_by_capability() {
    let counts = taskweave::testing::CASES_BY_CAPABILITY;
    let total: usize = counts.iter().map(|(_, n)| n).sum();
    let sizes: Vec<usize> = counts.iter().map(|(_, n)| *n).collect();
    assert_eq!(sizes, [36, 55, 22, 5, 1, 1, 4, 2], "{counts:?}");
    assert_eq!(total, 126);
}

/// A runner that returns without running its case cannot pass: the generated test checks that
/// the case reached its end.
#[test]
fn a_runner_that_never_runs_the_case_fails_saying_so() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static FINISHED: AtomicBool = AtomicBool::new(false);
    fn run_nothing(_case: taskweave::testing::Case) {}
    let case: taskweave::testing::Case = |client| {
        Box::pin(async move {
            drop(client);
            FINISHED.store(true, Ordering::SeqCst);
        })
    };
    let outcome = std::panic::catch_unwind(|| {
        taskweave::testing::run_case_to_its_end("idle", run_nothing, case, &FINISHED)
    });
    let panic = outcome.expect_err("a runner that runs nothing passed");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("never ran to its end"), "{message}");
}
