//! The conformance suite, for any backend: ours or yours (feature `testing`).
//!
//! The suite is a list of cases, each an `async fn(Client)` that uses only taskweave's public
//! API and panics when the client misbehaves. [`conformance_suite!`](crate::conformance_suite)
//! turns the list into one `#[test]` per case for a backend of yours: you give a *runner*, a
//! function that builds a fresh [`Client`] on your transport and runtime, runs the [`Case`]
//! with it inside that runtime, and closes it. Each test fails if its case does not finish
//! within [`DEADLINE`], so a backend that hangs fails instead of hanging CI.
//!
//! ```
//! // tests/conformance.rs of a crate with a transport of its own
//! # use taskweave::transport::InProcessTransport as MyTransport;
//! fn run(case: taskweave::testing::Case) {
//!     let client = taskweave::Client::builder()
//!         .transport(MyTransport::new(2))
//!         .build_blocking()
//!         .expect("build a client");
//!     futures::executor::block_on(async {
//!         case(client.clone()).await;
//!         client.close().await.expect("close the client");
//!     });
//! }
//!
//! // List only what the backend has (`worker_gauges` too if it reports exact per-worker
//! // counts in `Client::stats`).
//! taskweave::conformance_suite!(run: run, capabilities: [closures, local_workers, bulk]);
//! # fn main() {}
//! ```
//!
//! The runner must drive the case to its end: a test whose case did not finish (a runner
//! that returns without awaiting `case(client)`) fails, saying so.
//!
//! Wrap the call in a module to name the tests `<module>::<case>`; call it once per runtime
//! or configuration to run the suite on each.
//!
//! # Capabilities
//!
//! Every case that does not need a capability runs on every backend: these are written with
//! registered [`Task`](crate::Task)s (the ones of [`tasks`], which a backend with remote
//! workers registers on them), and hold any transport to the scheduling semantics: values,
//! errors and panics, dependencies, retries, cancelling, closing, waiting, keys, releases.
//! The rest need something a backend may not have, and run only where the runner's
//! invocation declares it:
//!
//! - `closures`: the backend runs closures and async bodies submitted by the client, which
//!   cannot cross machines; their workers live in the client's process. The cases that test
//!   what only closures have (`submit_async`, [`TaskContext`](crate::TaskContext) and
//!   cooperative cancelling of a running body, values that are not serializable such as an
//!   `Arc` shared without copies, `try_unwrap` of a value that cannot be cloned, pure
//!   closures sharing one key), and those that still use a closure as a gate to hold a
//!   worker busy at a precise moment, need it.
//! - `local_workers`: the workers run in the client's process (they may still be fed through
//!   a broker, as the Redis tests' are), so a case can hold a worker at a precise moment with
//!   a [`tasks::Gate`] it opens later, or learn that a task ran when the task opens one of
//!   its gates ([`tasks::Opens`]): the cases of waiting with a timeout, `on_done`, `error`,
//!   `wait(FirstCompleted)` and gather's early error, completion order in `as_completed` and
//!   its batches, the blocking twins, and those that hold every worker while they cancel,
//!   close, release, `fire_and_forget` or read a task's status. They hold on a broker that sends tasks
//!   ahead of its workers too (a "queued" task may already be in the broker's queue): they
//!   wait for gates and outcomes, never for a task to be merely queued. A backend with remote
//!   workers has no way to share the gate. A backend that runs closures has it too: declare
//!   both.
//! - `bulk`: the backend is quick enough for the stress cases, which push 2,000 to 10,000
//!   registered tasks through it (from twenty threads, as a deep tree, as a chain of 10,000
//!   dependents, through `as_completed` with additions). Their subject is the scheduler under
//!   load, the same on every transport; a backend with a slow round trip (a broker) may run
//!   them in one configuration only, as taskweave's Redis tests do (the chain is 10,000
//!   sequential round trips: some 40 s through Redis in a debug build).
//! - `worker_gauges`: [`Client::stats`] reports one
//!   [`WorkerStats`](crate::WorkerStats) per worker, with exact live `running` and `completed`
//!   counts, and no stored bytes (values stay in the client's process): the statistics case
//!   checks them exactly while it holds every worker busy with closures, so it needs
//!   `closures` too.
//! - `run_reports`: the transport reports who ran each run and when
//!   ([`CompletionSink::complete_run`](crate::transport::CompletionSink::complete_run)), so
//!   [`Client::task_stream`] and [`Client::story`] show every run's worker and start (the
//!   in-process workers and the Redis workers do).
//!
//! - `remote_actors` (feature `redis`): `Client::remote_actor` works on the client, and its
//!   workers host the suite's actor (`tasks::Tally`, through `ActorHost<Tally>`, which
//!   `tasks::register` registers): calls in call order from several handles, a panicking
//!   call, the release of the last handle, and calls after a close. `remote_actor` needs
//!   the Redis transport today (other transports answer `Error::Coordination`), so only
//!   taskweave's Redis harnesses declare it.
//! - `coordination`: the client has a coordination backend (the in-process and the Redis
//!   transports do; any other answers `Error::Coordination`): published datasets outlive
//!   the futures that made them, are listed, read back (also through the blocking twins),
//!   unpublished, and refuse wrong input (a taken name, another type, an unknown name, a
//!   failed or cancelled future, a closed client) with errors naming the dataset.
//!
//! [`CASES_BY_CAPABILITY`] lists how many cases each group holds.
//!
//! # Why the `closures` cases need closures
//!
//! A case whose subject is scheduling semantics is written with registered tasks, so that
//! every transport runs it. The cases left in `closures` are of three kinds:
//!
//! - **The closure path itself**, each beside a registered twin that every backend runs:
//!   `submit_then_await_gives_value`, `map_then_gather_keeps_order`,
//!   `map_of_nothing_gives_nothing`, `ten_thousand_tasks_all_return`, the four `errors`
//!   cases on panics, failures, `gather`'s first error and huge error texts,
//!   `submit_after_close_gives_a_clear_error` (which also pins `map`'s name in the error),
//!   `released_tasks_are_forgotten`, `a_task_released_before_it_started_does_not_run`
//!   (twin: `a_released_registered_task_that_has_not_started_does_not_run`, in
//!   `local_workers`: on a broker the released task's entry is taken back before a worker
//!   begins it, [`Transport::withdraw`](crate::transport::Transport::withdraw)), the two
//!   dependency cases, the retry cases
//!   (`retries_rerun_a_flaky_task_until_it_succeeds`,
//!   `retrying_a_dependent_reruns_its_failed_dependency_first`,
//!   `a_failed_task_whose_dependency_was_released_can_be_retried`),
//!   `cancelling_a_finished_task_cancels_it_and_what_reads_it` and
//!   `a_key_given_to_an_impure_map_never_returns_another_maps_values` (a closure `map` under
//!   a key; its twin is `a_key_given_to_map_task_is_a_prefix_per_input`).
//! - **APIs that take closures or values that cannot be serialized**: `submit_async`
//!   (`async_body_runs_on_the_executor`, `cancel_of_many_and_of_a_queued_async_body`),
//!   [`TaskContext`](crate::TaskContext) and cooperative cancelling (the four `cancelling`
//!   cases), `pure` closures and keys by content (`a_long_map_keeps_order_and_shares_…`,
//!   `pure_submissions_…`, `identical_pure_maps_share_keys`,
//!   `a_key_given_to_a_pure_map_is_a_prefix_per_item`,
//!   `options_given_before_dependencies_are_kept`), `map_with_keys`, `map_after` and
//!   `map_after_each`, submissions made together
//!   (`submissions_made_together_keep_their_inputs_until_submitted`,
//!   `a_batch_submits_its_graph_together_and_its_futures_work_inside_it`), tasks that hold an
//!   actor's handle (`tasks_call_an_actor_and_depend_on_its_calls`; the other `actors` cases
//!   call the actor from the case body, and run everywhere: an actor lives in the client's
//!   process), tasks that launch tasks through their context (the five `subtasks`
//!   cases: lending a worker is the in-process transport's, so they build an in-process
//!   client on the case's executor), `delayed` graphs (`graphs_are_submitted_in_one_call_…`,
//!   `options_on_a_graph_…`), two clients on one in-process
//!   [`ClusterHandle`](crate::ClusterHandle) built on the case's executor (the three
//!   `clients` cases: results shared by key, cancels and releases per client, counted by
//!   closures), scattered `Arc`s shared without copies
//!   (`scattered_values_…`, `scatter_by_key_…`), and the four `values` cases (values that
//!   count their clones or cannot be cloned).
//! - **A case that cannot hold on a broker that sends tasks ahead of its workers**, where the
//!   client hands a task to the transport as soon as the transport has room (the Redis
//!   transport's room is its `max_in_flight`, 4,096 by default), so that a task "queued"
//!   behind busy workers is already *running* as far as the scheduler knows:
//!   `higher_priority_runs_first_with_one_worker`: priority orders only the tasks the
//!   scheduler holds back; a broker gets all five tasks at once, in submission order, and
//!   its queue is first in, first out. The case builds a one-worker in-process client of
//!   its own (it cannot build one on the case's transport), so it tests the in-process
//!   transport on every backend: a registered version would add nothing.
//!
//! # What a case may assume
//!
//! A fresh client with at least two worker slots (tasks its workers run at once), on an
//! executor the case reads with [`Client::executor`]; the case may close the client. The cases
//! that hold every worker busy learn how many slots there are from [`Client::workers`] (the
//! sum of the workers' [`concurrency`](crate::transport::WorkerInfo::concurrency)); a
//! transport that lists no workers must have exactly two slots for them. Cases do not sleep to let things
//! happen: they wait for the event they need with a bound.

pub mod recursion;
pub mod tasks;

#[doc(hidden)]
#[allow(missing_docs)]
pub mod cases;

use std::time::Duration;

use crate::Client;
use crate::executor::BoxFuture;

/// How long any one case may take before it counts as hung.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A case: an async test body given a fresh client.
pub type Case = fn(Client) -> BoxFuture<()>;

/// How many cases each group of the suite holds: the always-run group first, then one entry
/// per capability, by the name [`conformance_suite!`](crate::conformance_suite) takes.
pub const CASES_BY_CAPABILITY: &[(&str, usize)] = &[
    ("(every backend)", count_always()),
    ("closures", count_closures()),
    ("local_workers", count_local_workers()),
    ("bulk", count_bulk()),
    ("worker_gauges", count_worker_gauges()),
    ("run_reports", count_run_reports()),
    ("remote_actors", count_remote_actors()),
    ("coordination", count_coordination()),
];

const fn count_always() -> usize {
    crate::__conformance_always!(@count)
}

const fn count_closures() -> usize {
    crate::__conformance_closures!(@count)
}

const fn count_local_workers() -> usize {
    crate::__conformance_local_workers!(@count)
}

const fn count_bulk() -> usize {
    crate::__conformance_bulk!(@count)
}

const fn count_worker_gauges() -> usize {
    crate::__conformance_worker_gauges!(@count)
}

const fn count_run_reports() -> usize {
    crate::__conformance_run_reports!(@count)
}

const fn count_remote_actors() -> usize {
    crate::__conformance_remote_actors!(@count)
}

const fn count_coordination() -> usize {
    crate::__conformance_coordination!(@count)
}

/// Runs `body` on its own thread and fails if it does not finish within [`DEADLINE`];
/// re-raises a panic from the body (a failed assertion) on the calling thread.
///
/// # Panics
///
/// When `body` panics (with its panic), or does not finish within [`DEADLINE`] (naming
/// `name`). The thread of a hung body is left behind.
pub fn with_deadline(name: &str, body: impl FnOnce() + Send + 'static) {
    let (done, finished) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(format!("case {name}"))
        .spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
            let _ = done.send(());
            result
        })
        .expect("spawn a thread for the case");
    match finished.recv_timeout(DEADLINE) {
        Ok(()) => {
            if let Err(panic) = thread.join().expect("the case thread reports") {
                std::panic::resume_unwind(panic);
            }
        }
        Err(_) => panic!("case {name} did not finish within {DEADLINE:?}: it hangs"),
    }
}

/// Runs `case` with `runner` under [`with_deadline`]: what each test of
/// [`conformance_suite!`](crate::conformance_suite) calls.
///
/// # Panics
///
/// When the case fails or hangs.
pub fn run_case(name: &str, runner: fn(Case), case: Case) {
    with_deadline(name, move || runner(case));
}

/// Runs `case` with `runner` as [`run_case`] does, then fails unless the case ran to its end:
/// `finished` is set by the case's last step (the wrapper
/// [`conformance_suite!`](crate::conformance_suite) generates), so a runner that returns
/// without running the case (or without awaiting it to the end) cannot pass.
///
/// # Panics
///
/// When the case fails or hangs, or did not finish.
#[doc(hidden)]
pub fn run_case_to_its_end(
    name: &str,
    runner: fn(Case),
    case: Case,
    finished: &'static std::sync::atomic::AtomicBool,
) {
    run_case(name, runner, case);
    assert!(
        finished.load(std::sync::atomic::Ordering::SeqCst),
        "case {name} never ran to its end: the runner returned without finishing it; a runner \
         must call `case(client)` and await the future it returns (inside the backend's \
         runtime) before it returns"
    );
}

/// Turns the conformance suite into one `#[test]` per case, run by `runner`.
///
/// `run: <path>` names a `fn(taskweave::testing::Case)` that builds a fresh client on the
/// backend under test, runs the case with it inside the backend's runtime and closes it;
/// `capabilities: [..]` lists what the backend supports beyond the cases every backend runs
/// (see [the module docs](crate::testing#capabilities)): `closures`, `local_workers`, `bulk`,
/// `worker_gauges`, `run_reports`, `remote_actors`, `coordination`. A name
/// that is not a capability fails the build.
///
/// Each generated test fails unless its case ran to its end, so a runner must await
/// `case(client)` to completion before it returns; the client needs at least two worker slots
/// (see [What a case may assume](crate::testing#what-a-case-may-assume)).
///
/// # Examples
///
/// ```
/// mod my_backend {
///     fn run(case: taskweave::testing::Case) {
///         let client = taskweave::Client::builder().workers(2).build_blocking().unwrap();
///         futures::executor::block_on(case(client.clone()));
///         client.blocking().close().unwrap();
///     }
///     // The cases every backend runs, and those that need closures.
///     taskweave::conformance_suite!(run: run, capabilities: [closures, local_workers]);
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! conformance_suite {
    (run: $run:path $(, capabilities: [$($capability:ident),* $(,)?])? $(,)?) => {
        $crate::__conformance_always!(@tests $run);
        $($($crate::__conformance_group!($capability, $run);)*)?
    };
}

/// One capability's cases, for [`conformance_suite!`]; not for direct use.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_group {
    (closures, $run:path) => {
        $crate::__conformance_closures!(@tests $run);
    };
    (local_workers, $run:path) => {
        $crate::__conformance_local_workers!(@tests $run);
    };
    (bulk, $run:path) => {
        $crate::__conformance_bulk!(@tests $run);
    };
    (worker_gauges, $run:path) => {
        $crate::__conformance_worker_gauges!(@tests $run);
    };
    (run_reports, $run:path) => {
        $crate::__conformance_run_reports!(@tests $run);
    };
    (remote_actors, $run:path) => {
        $crate::__conformance_remote_actors!(@tests $run);
    };
    (coordination, $run:path) => {
        $crate::__conformance_coordination!(@tests $run);
    };
    ($other:ident, $run:path) => {
        ::core::compile_error!(::core::concat!(
            "`",
            ::core::stringify!($other),
            "` is not a conformance capability; the capabilities are `closures`, `local_workers`, `bulk`, `worker_gauges`, `run_reports`, `remote_actors` and `coordination`"
        ));
    };
}

/// One `#[test]` per listed case (`@tests`), or how many cases are listed (`@count`), for
/// [`conformance_suite!`]; not for direct use.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_apply {
    (@count; $($module:ident :: $case:ident),* $(,)?) => {
        [$(::core::stringify!($case)),*].len()
    };
    (@tests $run:path; $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                static FINISHED: ::std::sync::atomic::AtomicBool =
                    ::std::sync::atomic::AtomicBool::new(false);
                $crate::testing::run_case_to_its_end(
                    ::core::stringify!($case),
                    $run,
                    |client| {
                        ::std::boxed::Box::pin(async move {
                            $crate::testing::cases::$module::$case(client).await;
                            FINISHED.store(true, ::std::sync::atomic::Ordering::SeqCst);
                        })
                    },
                    &FINISHED,
                );
            }
        )*
    };
}

/// The cases every backend runs (registered tasks only).
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_always {
    (@$mode:ident $($run:path)?) => {
        $crate::__conformance_apply! {
            @$mode $($run)?;
            registered::registered_task_gives_its_value,
            registered::map_task_then_gather_keeps_order,
            registered::registered_errors_and_panics_reach_the_future,
            registered::gather_raises_the_first_registered_error_in_input_order,
            registered::registered_dependents_receive_their_dependencies_outputs,
            registered::registered_retries_rerun_and_then_give_up,
            registered::wait_and_as_completed_work_on_registered_tasks,
            registered::released_registered_tasks_are_forgotten,
            registered::registered_tasks_from_a_plain_thread_with_the_blocking_view,
            registered::close_cancels_what_is_unfinished_and_later_submits,
            registered::cancelling_a_registered_task_cancels_it_and_its_dependents,
            keys::a_key_given_to_map_task_is_a_prefix_per_input,
            errors::a_huge_registered_error_text_is_bounded,
            registered::retrying_a_registered_dependent_reruns_its_failed_dependency,
            registered::cancelling_a_finished_registered_task_cancels_it_and_its_dependents,
            errors::blocking_call_inside_async_is_refused,
            threads::futures_resolve_when_awaited_from_another_runtime,
            threads::shared_keys_held_and_dropped_from_many_threads_are_released,
            lifecycle::close_twice_is_fine,
            lifecycle::registered_submit_after_close_gives_a_clear_error,
            waiting::gather_skip_returns_the_values_that_succeeded_with_their_indices,
            waiting::as_completed_with_results_gives_values_and_errors,
            shapes::gather_takes_tuples_maps_and_nested_vectors,
            shapes::gather_of_a_tuple_raises_the_first_error_in_order,
            stats::stats_stream_yields_at_once_and_ends_after_close,
            events::task_stream_has_each_run_once_and_story_tells_a_task_in_order,
            events::story_of_a_failed_dependent_names_the_root_task,
            actors::actor_calls_run_in_call_order_and_keep_state,
            actors::actor_calls_from_many_callers_never_overlap,
            actors::a_panic_in_an_actor_call_fails_that_call_and_the_actor_goes_on,
            actors::dropping_the_last_actor_handle_runs_pending_calls_then_releases_it,
            actors::a_pending_actor_call_can_be_cancelled,
            actors::an_actor_call_after_close_gives_a_clear_error,
            semantics::an_explicit_key_is_shared_and_a_released_key_recomputes,
            semantics::retry_reruns_a_failed_task_on_demand,
            keys::generated_keys_differ_between_clients,
        }
    };
}

/// The cases that need the `closures` capability.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_closures {
    (@$mode:ident $($run:path)?) => {
        $crate::__conformance_apply! {
            @$mode $($run)?;
            basics::submit_then_await_gives_value,
            basics::map_then_gather_keeps_order,
            basics::map_of_nothing_gives_nothing,
            basics::a_long_map_keeps_order_and_shares_repeated_pure_items,
            basics::ten_thousand_tasks_all_return,
            shapes::a_batch_submits_its_graph_together_and_its_futures_work_inside_it,
            basics::async_body_runs_on_the_executor,
            errors::panicking_task_gives_panicked_and_next_task_still_runs,
            errors::failing_task_gives_failed_with_its_message,
            errors::gather_raises_the_first_error_in_input_order,
            errors::a_huge_error_text_is_bounded,
            lifecycle::submit_after_close_gives_a_clear_error,
            lifecycle::released_tasks_are_forgotten,
            semantics::dependents_receive_their_dependencies_values,
            semantics::a_failed_dependency_fails_dependents_with_the_root_error,
            semantics::pure_submissions_share_one_key_and_one_result,
            semantics::identical_pure_maps_share_keys,
            semantics::cancel_of_many_and_of_a_queued_async_body,
            semantics::retries_rerun_a_flaky_task_until_it_succeeds,
            semantics::higher_priority_runs_first_with_one_worker,
            semantics::scattered_values_feed_dependents_without_copies,
            semantics::a_task_released_before_it_started_does_not_run,
            semantics::graphs_are_submitted_in_one_call_and_shared_nodes_run_once,
            semantics::map_over_futures_and_over_zipped_iterables,
            semantics::retrying_a_dependent_reruns_its_failed_dependency_first,
            semantics::a_failed_task_whose_dependency_was_released_can_be_retried,
            semantics::cancelling_a_finished_task_cancels_it_and_what_reads_it,
            keys::a_key_given_to_a_pure_map_is_a_prefix_per_item,
            keys::a_key_given_to_an_impure_map_never_returns_another_maps_values,
            keys::map_with_keys_uses_each_key_verbatim,
            keys::options_given_before_dependencies_are_kept,
            keys::options_on_a_graph_apply_to_its_nodes_and_the_key_to_its_output,
            shapes::scatter_by_key_by_content_and_per_element,
            shapes::map_after_each_zips_futures_and_values,
            shapes::submissions_made_together_keep_their_inputs_until_submitted,
            cancelling::cancel_stops_a_running_blocking_body_that_polls_its_context,
            cancelling::a_dropped_cancel_on_drop_guard_stops_its_running_body,
            cancelling::close_stops_running_bodies_that_poll_their_context,
            cancelling::a_context_knows_its_key_and_can_be_awaited,
            values::into_value_moves_the_last_handles_value_and_clones_a_shared_one,
            values::try_unwrap_moves_a_value_that_cannot_be_cloned_or_gives_the_handle_back,
            values::try_unwrap_leaves_a_value_a_waiting_dependent_needs,
            values::into_result_moves_the_value_from_a_plain_thread,
            values::a_value_read_by_a_dependent_is_freed_with_its_last_handle,
            subtasks::fib_of_20_through_blocking_sub_tasks_finishes_on_one_worker,
            subtasks::fib_of_20_through_async_sub_tasks_finishes_on_one_worker,
            subtasks::cancelling_the_root_cancels_every_sub_task,
            subtasks::a_panic_in_a_sub_task_reaches_its_parent_as_an_error,
            subtasks::a_blocking_body_that_secedes_may_block_on_a_sub_task,
            actors::tasks_call_an_actor_and_depend_on_its_calls,
            clients::two_clients_share_a_keyed_result_computed_once,
            clients::a_cancel_by_one_client_leaves_the_other_clients_future,
            clients::a_shared_key_lives_until_the_last_client_releases_it,
            clients::a_future_of_another_client_is_refused_as_a_dependency,
            clients::clients_of_one_cluster_share_coordination_and_a_close_ends_only_its_own_waits,
        }
    };
}

/// The cases that need the `local_workers` capability.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_local_workers {
    (@$mode:ident $($run:path)?) => {
        $crate::__conformance_apply! {
            @$mode $($run)?;
            basics::new_future_is_not_done_until_its_task_ran,
            errors::gather_reports_an_error_without_waiting_for_later_tasks,
            waiting::wait_first_completed_returns_while_the_others_are_blocked,
            waiting::wait_timeout_gives_timeout_and_cancels_nothing,
            waiting::result_timeout_gives_timeout_and_cancels_nothing,
            waiting::error_reads_the_error_without_waiting_or_consuming,
            waiting::on_done_calls_back_once_when_the_task_is_done,
            waiting::as_completed_timeout_yields_what_finished_then_a_timeout,
            waiting::wait_all_completed_waits_for_every_future_failed_or_not,
            waiting::wait_first_exception_returns_as_soon_as_one_fails,
            waiting::as_completed_adder_adds_from_another_thread,
            cluster::restart_fails_unfinished_tasks_keeps_finished_ones_and_the_client_works_after,
            cluster::a_key_cancelled_by_restart_or_cancel_computes_anew_when_submitted_again,
            waiting::as_completed_follows_completion_order,
            waiting::as_completed_batches_yield_everything_already_done,
            waiting::blocking_twins_work_from_a_plain_thread,
            lifecycle::close_resolves_pending_tasks_with_an_error,
            lifecycle::cancel_gives_cancelled,
            semantics::cancelling_the_middle_of_a_chain_cancels_what_follows,
            semantics::fire_and_forget_runs_to_completion_without_a_handle,
            semantics::debug_shows_the_key_and_the_status,
            semantics::a_released_registered_task_that_has_not_started_does_not_run,
        }
    };
}

/// The cases that need the `bulk` capability.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_bulk {
    (@$mode:ident $($run:path)?) => {
        $crate::__conformance_apply! {
            @$mode $($run)?;
            registered::two_thousand_registered_tasks_all_return,
            threads::submit_from_twenty_threads_loses_nothing,
            waiting::as_completed_yields_ten_thousand_exactly_once_with_additions,
            basics::a_tree_of_sums_sees_every_value_as_soon_as_it_is_reported,
            semantics::a_chain_of_ten_thousand_tasks_runs_without_overflowing,
        }
    };
}

/// The cases that need the `worker_gauges` capability.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_worker_gauges {
    (@$mode:ident $($run:path)?) => {
        $crate::__conformance_apply! {
            @$mode $($run)?;
            stats::stats_count_tasks_by_state_and_by_worker,
        }
    };
}

/// The cases that need the `run_reports` capability.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_run_reports {
    (@$mode:ident $($run:path)?) => {
        $crate::__conformance_apply! {
            @$mode $($run)?;
            events::every_run_names_its_worker_and_start_in_the_stream_and_the_story,
        }
    };
}

/// The cases that need the `remote_actors` capability (feature `redis`).
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_remote_actors {
    (@$mode:ident $($run:path)?) => {
        $crate::__conformance_apply! {
            @$mode $($run)?;
            remote_actors::remote_actor_calls_run_in_call_order_and_keep_state,
            remote_actors::a_panic_in_a_remote_actor_call_fails_that_call_and_the_actor_goes_on,
            remote_actors::dropping_the_last_remote_actor_handle_runs_pending_calls_then_releases_it,
            remote_actors::a_remote_actor_after_close_gives_a_clear_error,
        }
    };
}

/// The cases that need the `coordination` capability.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_coordination {
    (@$mode:ident $($run:path)?) => {
        $crate::__conformance_apply! {
            @$mode $($run)?;
            coordination::a_published_dataset_outlives_its_future_until_unpublished,
            coordination::datasets_given_wrong_input_get_clear_errors,
        }
    };
}
