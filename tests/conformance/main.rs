#![allow(unreachable_pub)]
//! The conformance suite: the same test bodies (`cases/`) run against every executor.
//!
//! A case is an ordinary `async fn case(client: Client)`. Each harness below builds a client
//! on its executor, runs the case inside its runtime, and fails the test if the case does not
//! finish within [`DEADLINE`], so that a bug fails instead of hanging CI. Test names read
//! `<harness>::<case>`, e.g. `tokio_multi_thread::submit_then_await_gives_value`.
//!
//! Cases that use closures run on the in-process transport only (a closure cannot cross
//! machines); the registered-task cases (`for_each_registered_case!`) run on every harness,
//! and also on the Redis transport for each runtime (`redis_*`, feature `redis`).

mod cases;
mod harness;
#[cfg(feature = "redis")]
#[path = "../support/redis_server.rs"]
mod redis_server;
#[path = "../../examples/support/thread_pool_executor.rs"]
mod thread_pool_executor;

/// Lists every case once; `instantiate!` turns the list into one `#[test]` per case.
macro_rules! for_each_case {
    ($instantiate:ident, $harness:path) => {
        $instantiate!(
            $harness;
            waiting::gather_skip_returns_the_values_that_succeeded_with_their_indices,
            waiting::wait_all_completed_waits_for_every_future_failed_or_not,
            waiting::wait_first_completed_returns_while_the_others_are_blocked,
            waiting::wait_first_exception_returns_as_soon_as_one_fails,
            waiting::wait_timeout_gives_timeout_and_cancels_nothing,
            waiting::as_completed_yields_ten_thousand_exactly_once_with_additions,
            waiting::as_completed_follows_completion_order,
            waiting::as_completed_with_results_gives_values_and_errors,
            waiting::as_completed_batches_yield_everything_already_done,
            waiting::as_completed_adder_adds_from_another_thread,
            waiting::blocking_twins_work_from_a_plain_thread,
            waiting::result_timeout_gives_timeout_and_cancels_nothing,
            waiting::error_reads_the_error_without_waiting_or_consuming,
            waiting::on_done_calls_back_once_when_the_task_is_done,
            waiting::as_completed_timeout_yields_what_finished_then_a_timeout,
            basics::submit_then_await_gives_value,
            basics::map_then_gather_keeps_order,
            basics::map_of_nothing_gives_nothing,
            basics::a_long_map_keeps_order_and_shares_repeated_pure_items,
            basics::a_tree_of_sums_sees_every_value_as_soon_as_it_is_reported,
            basics::ten_thousand_tasks_all_return,
            basics::new_future_is_not_done_until_its_task_ran,
            basics::async_body_runs_on_the_executor,
            errors::panicking_task_gives_panicked_and_next_task_still_runs,
            errors::failing_task_gives_failed_with_its_message,
            errors::gather_raises_the_first_error_in_input_order,
            errors::gather_reports_an_error_without_waiting_for_later_tasks,
            errors::blocking_call_inside_async_is_refused,
            errors::a_huge_error_text_is_bounded,
            threads::submit_from_twenty_threads_loses_nothing,
            threads::futures_resolve_when_awaited_from_another_runtime,
            threads::shared_keys_held_and_dropped_from_many_threads_are_released,
            lifecycle::close_twice_is_fine,
            lifecycle::submit_after_close_gives_a_clear_error,
            lifecycle::close_resolves_pending_tasks_with_an_error,
            lifecycle::cancel_gives_cancelled,
            lifecycle::released_tasks_are_forgotten,
            semantics::dependents_receive_their_dependencies_values,
            semantics::a_failed_dependency_fails_dependents_with_the_root_error,
            semantics::a_chain_of_ten_thousand_tasks_runs_without_overflowing,
            semantics::pure_submissions_share_one_key_and_one_result,
            semantics::identical_pure_maps_share_keys,
            semantics::an_explicit_key_is_shared_and_a_released_key_recomputes,
            semantics::cancelling_the_middle_of_a_chain_cancels_what_follows,
            semantics::cancel_of_many_and_of_a_queued_async_body,
            semantics::retries_rerun_a_flaky_task_until_it_succeeds,
            semantics::higher_priority_runs_first_with_one_worker,
            semantics::scattered_values_feed_dependents_without_copies,
            semantics::fire_and_forget_runs_to_completion_without_a_handle,
            semantics::a_task_released_before_it_started_does_not_run,
            semantics::graphs_are_submitted_in_one_call_and_shared_nodes_run_once,
            semantics::retry_reruns_a_failed_task_on_demand,
            semantics::map_over_futures_and_over_zipped_iterables,
            semantics::retrying_a_dependent_reruns_its_failed_dependency_first,
            semantics::a_failed_task_whose_dependency_was_released_can_be_retried,
            semantics::cancelling_a_finished_task_cancels_it_and_what_reads_it,
            semantics::debug_shows_the_key_and_the_status,
            stats::stats_count_tasks_by_state_and_by_worker,
            stats::stats_stream_yields_at_once_and_ends_after_close,
            keys::a_key_given_to_a_pure_map_is_a_prefix_per_item,
            keys::a_key_given_to_an_impure_map_never_returns_another_maps_values,
            keys::map_with_keys_uses_each_key_verbatim,
            keys::generated_keys_differ_between_clients,
            keys::options_given_before_dependencies_are_kept,
            keys::options_on_a_graph_apply_to_its_nodes_and_the_key_to_its_output,
            shapes::gather_takes_tuples_maps_and_nested_vectors,
            shapes::gather_of_a_tuple_raises_the_first_error_in_order,
            shapes::scatter_by_key_by_content_and_per_element,
            shapes::map_after_each_zips_futures_and_values,
            cancelling::cancel_stops_a_running_blocking_body_that_polls_its_context,
            cancelling::a_dropped_cancel_on_drop_guard_stops_its_running_body,
            cancelling::close_stops_running_bodies_that_poll_their_context,
            cancelling::a_context_knows_its_key_and_can_be_awaited,
            values::into_value_moves_the_last_handles_value_and_clones_a_shared_one,
            values::try_unwrap_moves_a_value_that_cannot_be_cloned_or_gives_the_handle_back,
            values::try_unwrap_leaves_a_value_a_waiting_dependent_needs,
            values::into_result_moves_the_value_from_a_plain_thread,
        );
    };
}

/// Lists the cases written with registered tasks only: they run on every transport.
macro_rules! for_each_registered_case {
    ($instantiate:ident, $harness:path) => {
        $instantiate!(
            $harness;
            registered::registered_task_gives_its_value,
            registered::map_task_then_gather_keeps_order,
            registered::two_thousand_registered_tasks_all_return,
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
        );
    };
}

macro_rules! instantiate {
    ($harness:path; $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                use $harness as harness;
                harness::run(stringify!($case), |client| Box::pin(crate::cases::$module::$case(client)));
            }
        )*
    };
}

mod embedded {
    for_each_case!(instantiate, crate::harness::embedded);
    for_each_registered_case!(instantiate, crate::harness::embedded);
}

mod custom_thread_pool {
    for_each_case!(instantiate, crate::harness::custom);
    for_each_registered_case!(instantiate, crate::harness::custom);
}

#[cfg(feature = "tokio")]
mod tokio_current_thread {
    for_each_case!(instantiate, crate::harness::tokio_current_thread);
    for_each_registered_case!(instantiate, crate::harness::tokio_current_thread);
}

#[cfg(feature = "tokio")]
mod tokio_multi_thread {
    for_each_case!(instantiate, crate::harness::tokio_multi_thread);
    for_each_registered_case!(instantiate, crate::harness::tokio_multi_thread);
}

#[cfg(feature = "smol")]
mod smol {
    for_each_case!(instantiate, crate::harness::smol);
    for_each_registered_case!(instantiate, crate::harness::smol);
}

#[cfg(feature = "async-std")]
mod async_std {
    for_each_case!(instantiate, crate::harness::async_std);
    for_each_registered_case!(instantiate, crate::harness::async_std);
}

#[cfg(feature = "redis")]
mod redis_embedded {
    for_each_registered_case!(instantiate, crate::harness::redis_embedded);
}

#[cfg(all(feature = "redis", feature = "tokio"))]
mod redis_tokio_current_thread {
    for_each_registered_case!(instantiate, crate::harness::redis_tokio_current_thread);
}

#[cfg(all(feature = "redis", feature = "tokio"))]
mod redis_tokio_multi_thread {
    for_each_registered_case!(instantiate, crate::harness::redis_tokio_multi_thread);
}

#[cfg(all(feature = "redis", feature = "smol"))]
mod redis_smol {
    for_each_registered_case!(instantiate, crate::harness::redis_smol);
}

#[cfg(all(feature = "redis", feature = "async-std"))]
mod redis_async_std {
    for_each_registered_case!(instantiate, crate::harness::redis_async_std);
}
