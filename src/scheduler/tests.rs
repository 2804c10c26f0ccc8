//! Scheduler unit tests: feed events, assert the exact actions, and that nothing else came
//! out. No runtime, no threads.

use proptest::prelude::*;

use super::*;
use crate::error::TaskError;

/// The payload is the task's number, so that expected actions read naturally.
type Payload = u64;

fn spec(id: u64, deps: &[u64]) -> TaskSpec<Payload> {
    TaskSpec {
        id: TaskId(id),
        key: TaskKey::named(format!("t{id}")),
        deps: deps.iter().map(|dep| TaskId(*dep)).collect(),
        priority: 0,
        retries: 0,
        allowed_failures: 0,
        uses_worker: true,
        pinned: false,
        shared_key: false,
        payload: id,
    }
}

fn dispatch(id: u64, attempt: u32) -> Action<Payload> {
    Action::Dispatch { id: TaskId(id), attempt, payload: id }
}

fn resolved(id: u64) -> Action<Payload> {
    Action::Resolve { id: TaskId(id), payload: id, outcome: Ok(()) }
}

fn failed_with(id: u64, error: TaskError) -> Action<Payload> {
    Action::Resolve { id: TaskId(id), payload: id, outcome: Err(error) }
}

fn forget(id: u64) -> Action<Payload> {
    Action::Forget { id: TaskId(id), payload: id }
}

fn reset(id: u64) -> Action<Payload> {
    Action::Reset { id: TaskId(id), payload: id }
}

fn discard(id: u64) -> Action<Payload> {
    Action::Discard { id: TaskId(id), payload: id }
}

fn abort(id: u64) -> Action<Payload> {
    Action::Abort { id: TaskId(id), payload: id }
}

fn withdraw(id: u64) -> Action<Payload> {
    Action::Withdraw { id: TaskId(id), payload: id }
}

fn key(id: u64) -> TaskKey {
    TaskKey::named(format!("t{id}"))
}

/// Feeds `events` one by one; after each, the scheduler's bookkeeping must hold. Returns
/// every action, in order.
fn run(scheduler: &mut Scheduler<Payload>, events: Vec<Event<Payload>>) -> Vec<Action<Payload>> {
    let mut actions = Vec::new();
    for event in events {
        scheduler.handle(event, &mut actions);
        scheduler.check_invariants().unwrap();
    }
    actions
}

/// Feeds `events` to a fresh scheduler with `capacity` slots and checks that exactly the
/// `expected` actions came out.
fn check(
    capacity: usize,
    events: Vec<Event<Payload>>,
    expected: Vec<Action<Payload>>,
) -> Scheduler<Payload> {
    let mut scheduler = Scheduler::new(capacity);
    let actions = run(&mut scheduler, events);
    assert_eq!(actions, expected);
    scheduler
}

#[test]
fn a_ready_task_is_dispatched_and_resolved_and_forgotten_after_release() {
    let scheduler = check(
        1,
        vec![
            Event::Submitted(spec(1, &[])),
            Event::Finished { id: TaskId(1) },
            Event::Released { id: TaskId(1) },
        ],
        vec![dispatch(1, 1), resolved(1), forget(1)],
    );
    assert_eq!(scheduler.counts().held(), 0);
    assert_eq!(scheduler.counts().total_finished, 1);
}

#[test]
fn a_dispatched_task_released_by_its_last_handle_is_withdrawn_then_forgotten() {
    let scheduler = check(
        1,
        vec![
            Event::Submitted(spec(1, &[])),
            Event::Submitted(spec(2, &[])),
            Event::Released { id: TaskId(1) },
            // The transport took it back before any worker began it: its slot goes to 2.
            Event::Withdrawn { id: TaskId(1) },
            // A late report of the withdrawn dispatch changes nothing.
            Event::Finished { id: TaskId(1) },
        ],
        vec![dispatch(1, 1), withdraw(1), forget(1), dispatch(2, 1)],
    );
    assert_eq!(scheduler.counts().held(), 1);
    assert_eq!(scheduler.counts().total_finished, 0);
}

#[test]
fn a_withdrawn_dispatch_reported_lost_is_forgotten_not_run_again() {
    // The transport's reconciliation may find the entry gone before its removal is heard of.
    let mut task = spec(1, &[]);
    task.allowed_failures = 3;
    let scheduler = check(
        1,
        vec![
            Event::Submitted(task),
            Event::Released { id: TaskId(1) },
            Event::Lost { id: TaskId(1) },
            Event::Withdrawn { id: TaskId(1) },
        ],
        vec![dispatch(1, 1), withdraw(1), forget(1)],
    );
    assert_eq!(scheduler.counts().held(), 0);
}

#[test]
fn a_withdrawn_task_that_began_runs_on_and_one_needed_again_runs_again() {
    let mut scheduler = check(
        1,
        vec![
            Event::Submitted(spec(1, &[])),
            Event::Released { id: TaskId(1) },
            // A worker had begun it: it reports as usual, and is forgotten then.
            Event::Finished { id: TaskId(1) },
        ],
        vec![dispatch(1, 1), withdraw(1), resolved(1), forget(1)],
    );
    assert_eq!(scheduler.counts().held(), 0);
    let mut shared = spec(2, &[]);
    shared.shared_key = true;
    let actions = run(
        &mut scheduler,
        vec![
            Event::Submitted(shared),
            Event::Released { id: TaskId(2) },
            // Needed again (a shared key's new handle) before the transport took it back.
            Event::Retained { id: TaskId(2) },
            Event::Withdrawn { id: TaskId(2) },
        ],
    );
    assert_eq!(actions, vec![dispatch(2, 1), withdraw(2), dispatch(2, 2)]);
    assert!(!scheduler.is_withdrawing(TaskId(2)), "the new dispatch is not withdrawn");
}

#[test]
fn a_dependent_waits_for_its_dependency_and_keeps_it_alive() {
    let scheduler = check(
        4,
        vec![
            Event::Submitted(spec(1, &[])),
            Event::Submitted(spec(2, &[1])),
            Event::Released { id: TaskId(1) },
            Event::Finished { id: TaskId(1) },
            Event::Finished { id: TaskId(2) },
        ],
        // 1 is released by the client but kept for 2, then forgotten once 2 has run.
        vec![dispatch(1, 1), resolved(1), dispatch(2, 1), resolved(2), forget(1)],
    );
    assert_eq!(scheduler.state(TaskId(2)), Some(TaskState::Finished));
    assert_eq!(scheduler.state(TaskId(1)), None);
}

#[test]
fn a_seceded_task_lends_its_slot_until_it_rejoins() {
    let mut scheduler = check(
        1,
        vec![
            Event::Submitted(spec(1, &[])),
            Event::Submitted(spec(2, &[])),
            Event::Submitted(spec(3, &[])),
            // Task 1 waits for others: its slot goes to task 2.
            Event::Seceded { id: TaskId(1) },
            // Seceding twice, or a task without a slot, changes nothing.
            Event::Seceded { id: TaskId(1) },
            Event::Seceded { id: TaskId(3) },
            // Back over capacity: task 2's report frees no slot for task 3.
            Event::Rejoined { id: TaskId(1) },
            Event::Finished { id: TaskId(2) },
        ],
        vec![dispatch(1, 1), dispatch(2, 1), resolved(2)],
    );
    assert_eq!(scheduler.in_flight(), 1);
    let actions = run(&mut scheduler, vec![Event::Finished { id: TaskId(1) }]);
    assert_eq!(actions, vec![resolved(1), dispatch(3, 1)]);
}

#[test]
fn a_seceded_task_cancelled_while_it_waits_is_aborted_and_takes_no_slot_back() {
    let mut scheduler = Scheduler::new(1);
    let actions = run(
        &mut scheduler,
        vec![
            Event::Submitted(spec(1, &[])),
            Event::Seceded { id: TaskId(1) },
            Event::CancelRequested { id: TaskId(1), reason: "stop".into() },
            Event::Rejoined { id: TaskId(1) },
        ],
    );
    assert!(actions.iter().any(|action| matches!(action, Action::Abort { id: TaskId(1), .. })));
    assert_eq!(scheduler.in_flight(), 0);
}

#[test]
fn capacity_limits_dispatch_and_priority_orders_the_queue() {
    let mut low = spec(2, &[]);
    low.priority = -5;
    let mut high = spec(3, &[]);
    high.priority = 5;
    check(
        1,
        vec![
            Event::Submitted(spec(1, &[])),
            Event::Submitted(low),
            Event::Submitted(high),
            Event::Submitted(spec(4, &[])),
            Event::Finished { id: TaskId(1) },
            Event::Finished { id: TaskId(3) },
            Event::Finished { id: TaskId(4) },
        ],
        vec![
            dispatch(1, 1),
            resolved(1),
            dispatch(3, 1),
            resolved(3),
            dispatch(4, 1),
            resolved(4),
            dispatch(2, 1),
        ],
    );
}

#[test]
fn a_task_that_becomes_ready_late_still_runs_in_submission_order() {
    // 2 waits for 1 while 3 and 4 queue up; once 1 finishes, 2 goes ahead of them because it
    // was submitted first.
    check(
        1,
        vec![
            Event::Submitted(spec(1, &[])),
            Event::Submitted(spec(2, &[1])),
            Event::Submitted(spec(3, &[])),
            Event::Submitted(spec(4, &[])),
            Event::Finished { id: TaskId(1) },
            Event::Finished { id: TaskId(2) },
            Event::Finished { id: TaskId(3) },
        ],
        vec![
            dispatch(1, 1),
            resolved(1),
            dispatch(2, 1),
            resolved(2),
            dispatch(3, 1),
            resolved(3),
            dispatch(4, 1),
        ],
    );
}

#[test]
fn a_failure_cascades_to_every_dependent_with_the_root_error() {
    let root = TaskError::Failed { key: key(1), message: "boom".into() };
    check(
        4,
        vec![
            Event::Submitted(spec(1, &[])),
            Event::Submitted(spec(2, &[1])),
            Event::Submitted(spec(3, &[2])),
            Event::Failed { id: TaskId(1), error: root.clone() },
        ],
        vec![
            dispatch(1, 1),
            failed_with(1, root.clone()),
            failed_with(
                2,
                TaskError::DependencyFailed { key: key(2), root: Box::new(root.clone()) },
            ),
            failed_with(3, TaskError::DependencyFailed { key: key(3), root: Box::new(root) }),
        ],
    );
}

#[test]
fn retries_redispatch_until_they_run_out() {
    let mut flaky = spec(1, &[]);
    flaky.retries = 1;
    let error = TaskError::Failed { key: key(1), message: "nope".into() };
    check(
        1,
        vec![
            Event::Submitted(flaky),
            Event::Failed { id: TaskId(1), error: error.clone() },
            Event::Failed { id: TaskId(1), error },
        ],
        vec![
            dispatch(1, 1),
            dispatch(1, 2),
            failed_with(
                1,
                TaskError::Failed {
                    key: key(1),
                    message: "nope (gave up after 2 attempts)".into(),
                },
            ),
        ],
    );
}

#[test]
fn lost_workers_redispatch_then_fail_with_worker_lost() {
    let mut task = spec(1, &[]);
    task.allowed_failures = 1;
    check(
        1,
        vec![Event::Submitted(task), Event::Lost { id: TaskId(1) }, Event::Lost { id: TaskId(1) }],
        vec![
            dispatch(1, 1),
            dispatch(1, 2),
            failed_with(1, TaskError::WorkerLost { key: key(1), attempts: 2 }),
        ],
    );
}

#[test]
fn cancelling_a_running_task_aborts_it_and_ignores_its_late_result() {
    let cancelled = TaskError::Cancelled { key: key(1), reason: "stop".into() };
    let scheduler = check(
        1,
        vec![
            Event::Submitted(spec(1, &[])),
            Event::Submitted(spec(2, &[])),
            Event::CancelRequested { id: TaskId(1), reason: "stop".into() },
            Event::Finished { id: TaskId(1) },
        ],
        vec![
            dispatch(1, 1),
            Action::Abort { id: TaskId(1), payload: 1 },
            failed_with(1, cancelled),
            // The slot frees only when the running body reports.
            dispatch(2, 1),
        ],
    );
    assert_eq!(scheduler.in_flight(), 1);
}

#[test]
fn cancelling_cascades_as_cancellation_not_failure() {
    check(
        1,
        vec![
            Event::Submitted(spec(1, &[])),
            Event::Submitted(spec(2, &[1])),
            Event::CancelRequested { id: TaskId(2), reason: "user".into() },
            Event::Submitted(spec(3, &[2])),
        ],
        vec![
            dispatch(1, 1),
            failed_with(2, TaskError::Cancelled { key: key(2), reason: "user".into() }),
            failed_with(
                3,
                TaskError::Cancelled {
                    key: key(3),
                    reason: "its dependency t2 was cancelled".into(),
                },
            ),
        ],
    );
}

/// Found by the simulation (`dependencies 0` in `tests/sim-seeds.txt`): a task submitted
/// after its dependency was cancelled was counted as failed, not cancelled.
#[test]
fn submitting_after_a_cancelled_dependency_is_a_cancellation_not_a_failure() {
    let scheduler = check(
        1,
        vec![
            Event::Submitted(spec(1, &[])),
            Event::CancelRequested { id: TaskId(1), reason: "user".into() },
            Event::Submitted(spec(2, &[1])),
        ],
        vec![
            dispatch(1, 1),
            Action::Abort { id: TaskId(1), payload: 1 },
            failed_with(1, TaskError::Cancelled { key: key(1), reason: "user".into() }),
            failed_with(
                2,
                TaskError::Cancelled {
                    key: key(2),
                    reason: "its dependency t1 was cancelled".into(),
                },
            ),
        ],
    );
    assert_eq!(scheduler.state(TaskId(2)), Some(TaskState::Cancelled));
    assert_eq!(scheduler.counts().cancelled, 2);
    assert_eq!(scheduler.counts().total_failed, 0);
}

/// Issue 13: retrying a task that failed through a dependency re-runs the dependency first
/// (it was a no-op).
#[test]
fn retrying_a_dependent_reruns_its_failed_dependency_first() {
    let boom = TaskError::Failed { key: key(1), message: "boom".into() };
    let scheduler = check(
        1,
        vec![
            Event::Submitted(spec(1, &[])),
            Event::Submitted(spec(2, &[1])),
            Event::Failed { id: TaskId(1), error: boom.clone() },
            Event::RetryRequested { id: TaskId(2) },
            Event::Finished { id: TaskId(1) },
            Event::Finished { id: TaskId(2) },
        ],
        vec![
            dispatch(1, 1),
            failed_with(1, boom.clone()),
            failed_with(2, TaskError::DependencyFailed { key: key(2), root: Box::new(boom) }),
            reset(1),
            reset(2),
            dispatch(1, 2),
            resolved(1),
            dispatch(2, 1),
            resolved(2),
        ],
    );
    assert_eq!(scheduler.state(TaskId(1)), Some(TaskState::Finished));
    assert_eq!(scheduler.retry_outcome(TaskId(2)), RetryOutcome::NotFailed);
}

/// Issue 13: a failed task whose dependency's handle was dropped keeps that dependency, so
/// that a retry reads it (the dependency was forgotten and the retry ignored).
#[test]
fn a_failed_task_keeps_a_released_dependency_for_its_retry() {
    let error = TaskError::Failed { key: key(2), message: "flaky".into() };
    let mut scheduler = check(
        1,
        vec![
            Event::Submitted(spec(1, &[])),
            Event::Submitted(spec(2, &[1])),
            Event::Released { id: TaskId(1) },
            Event::Finished { id: TaskId(1) },
            Event::Failed { id: TaskId(2), error: error.clone() },
        ],
        vec![dispatch(1, 1), resolved(1), dispatch(2, 1), failed_with(2, error)],
    );
    assert_eq!(scheduler.retry_outcome(TaskId(2)), RetryOutcome::Rerunning);
    let actions = run(
        &mut scheduler,
        vec![Event::RetryRequested { id: TaskId(2) }, Event::Finished { id: TaskId(2) }],
    );
    // Once the retry has its value, the released dependency goes.
    assert_eq!(actions, vec![reset(2), dispatch(2, 2), resolved(2), forget(1)]);
}

#[test]
fn a_retry_reruns_a_shared_failed_ancestor_once_and_waits_for_running_dependencies() {
    // 1 fails; 2 and 3 read it, 4 reads both; 5 is still running and 4 reads it too.
    let boom = TaskError::Failed { key: key(1), message: "boom".into() };
    let inherited = |id| TaskError::DependencyFailed { key: key(id), root: Box::new(boom.clone()) };
    let mut scheduler = check(
        4,
        vec![
            Event::Submitted(spec(5, &[])),
            Event::Submitted(spec(1, &[])),
            Event::Submitted(spec(2, &[1])),
            Event::Submitted(spec(3, &[1])),
            Event::Submitted(spec(4, &[2, 3, 5])),
            Event::Failed { id: TaskId(1), error: boom.clone() },
        ],
        vec![
            dispatch(5, 1),
            dispatch(1, 1),
            failed_with(1, boom.clone()),
            failed_with(2, inherited(2)),
            failed_with(3, inherited(3)),
            failed_with(4, inherited(4)),
        ],
    );
    let actions = run(
        &mut scheduler,
        vec![
            Event::RetryRequested { id: TaskId(4) },
            Event::Finished { id: TaskId(1) },
            Event::Finished { id: TaskId(2) },
            Event::Finished { id: TaskId(3) },
            Event::Finished { id: TaskId(5) },
            Event::Finished { id: TaskId(4) },
        ],
    );
    assert_eq!(
        actions,
        vec![
            reset(1),
            reset(3),
            reset(2),
            reset(4),
            dispatch(1, 2),
            resolved(1),
            dispatch(2, 1),
            dispatch(3, 1),
            resolved(2),
            resolved(3),
            resolved(5),
            dispatch(4, 1),
            resolved(4),
        ]
    );
}

#[test]
fn a_retry_says_what_it_did_and_leaves_other_tasks_alone() {
    let mut scheduler = check(
        1,
        vec![
            Event::Submitted(spec(1, &[])),
            Event::Submitted(spec(2, &[])),
            Event::Finished { id: TaskId(1) },
            Event::CancelRequested { id: TaskId(2), reason: "user".into() },
        ],
        vec![
            dispatch(1, 1),
            resolved(1),
            dispatch(2, 1),
            abort(2),
            failed_with(2, TaskError::Cancelled { key: key(2), reason: "user".into() }),
        ],
    );
    assert_eq!(scheduler.retry_outcome(TaskId(1)), RetryOutcome::NotFailed);
    assert_eq!(scheduler.retry_outcome(TaskId(2)), RetryOutcome::Cancelled);
    let nothing = run(
        &mut scheduler,
        vec![Event::RetryRequested { id: TaskId(1) }, Event::RetryRequested { id: TaskId(2) }],
    );
    assert_eq!(nothing, vec![]);
    run(&mut scheduler, vec![Event::Finished { id: TaskId(2) }, Event::Closed]);
    assert_eq!(scheduler.retry_outcome(TaskId(1)), RetryOutcome::ClientClosed);
}

/// Issue 13: cancelling a finished task cancels it, as in Dask (it stayed finished and
/// usable as a dependency): its value is discarded, its dependents are cancelled whatever
/// their state, and a task submitted on it later is cancelled at once.
#[test]
fn cancelling_a_finished_task_discards_it_and_cancels_every_dependent() {
    let via = |id, parent| TaskError::Cancelled {
        key: key(id),
        reason: format!("its dependency t{parent} was cancelled"),
    };
    let mut scheduler = check(
        4,
        vec![
            Event::Submitted(spec(1, &[])),
            Event::Finished { id: TaskId(1) },
            Event::Submitted(spec(2, &[1])),
            Event::Finished { id: TaskId(2) },
            Event::Submitted(spec(3, &[2])),
        ],
        vec![dispatch(1, 1), resolved(1), dispatch(2, 1), resolved(2), dispatch(3, 1)],
    );
    assert_eq!(scheduler.cancel_outcome(TaskId(1)), CancelOutcome::CancelledAfterFinishing);
    let actions = run(
        &mut scheduler,
        vec![
            Event::CancelRequested { id: TaskId(1), reason: "user".into() },
            Event::Submitted(spec(4, &[1])),
            Event::Finished { id: TaskId(3) },
            Event::CancelRequested { id: TaskId(1), reason: "again".into() },
        ],
    );
    assert_eq!(
        actions,
        vec![
            discard(1),
            failed_with(1, TaskError::Cancelled { key: key(1), reason: "user".into() }),
            discard(2),
            failed_with(2, via(2, 1)),
            abort(3),
            failed_with(3, via(3, 2)),
            failed_with(4, via(4, 1)),
        ]
    );
    assert_eq!(scheduler.cancel_outcome(TaskId(1)), CancelOutcome::AlreadyCancelled);
    assert_eq!(scheduler.counts().cancelled, 4);
    assert_eq!(scheduler.counts().total_finished, 2);
}

#[test]
fn cancelling_a_failed_task_discards_its_error_and_gives_its_inputs_back() {
    let error = TaskError::Failed { key: key(2), message: "nope".into() };
    check(
        1,
        vec![
            Event::Submitted(spec(1, &[])),
            Event::Submitted(spec(2, &[1])),
            Event::Released { id: TaskId(1) },
            Event::Finished { id: TaskId(1) },
            Event::Failed { id: TaskId(2), error: error.clone() },
            Event::CancelRequested { id: TaskId(2), reason: "user".into() },
        ],
        vec![
            dispatch(1, 1),
            resolved(1),
            dispatch(2, 1),
            failed_with(2, error),
            discard(2),
            failed_with(2, TaskError::Cancelled { key: key(2), reason: "user".into() }),
            forget(1),
        ],
    );
}

#[test]
fn a_released_queued_task_is_forgotten_without_running() {
    check(
        1,
        vec![
            Event::Submitted(spec(1, &[])),
            Event::Submitted(spec(2, &[])),
            Event::Released { id: TaskId(2) },
            Event::Finished { id: TaskId(1) },
        ],
        vec![dispatch(1, 1), forget(2), resolved(1)],
    );
}

#[test]
fn a_pinned_task_runs_although_released() {
    check(
        1,
        vec![
            Event::Submitted(spec(1, &[])),
            Event::Pinned { id: TaskId(1) },
            Event::Released { id: TaskId(1) },
            Event::Finished { id: TaskId(1) },
        ],
        vec![dispatch(1, 1), resolved(1), forget(1)],
    );
}

#[test]
fn shared_keys_are_found_until_forgotten() {
    let mut shared = spec(1, &[]);
    shared.shared_key = true;
    let mut scheduler = check(1, vec![Event::Submitted(shared)], vec![dispatch(1, 1)]);
    assert_eq!(scheduler.lookup(&key(1)), Some(TaskId(1)));
    run(&mut scheduler, vec![Event::Finished { id: TaskId(1) }, Event::Released { id: TaskId(1) }]);
    assert_eq!(scheduler.lookup(&key(1)), None);
}

#[test]
fn closing_cancels_everything_unfinished_in_submission_order() {
    let closed = |id| TaskError::Cancelled { key: key(id), reason: "the client was closed".into() };
    let mut scheduler = check(
        1,
        vec![Event::Submitted(spec(1, &[])), Event::Submitted(spec(2, &[1])), Event::Closed],
        vec![
            dispatch(1, 1),
            Action::Abort { id: TaskId(1), payload: 1 },
            failed_with(1, closed(1)),
            failed_with(2, closed(2)),
        ],
    );
    let late = run(&mut scheduler, vec![Event::Submitted(spec(3, &[]))]);
    assert!(matches!(
        &late[..],
        [Action::Resolve { outcome: Err(TaskError::ClientClosed { operation: "submit", .. }), .. }]
    ));
}

#[test]
fn a_long_chain_is_released_without_recursion() {
    let mut scheduler = Scheduler::new(1);
    let mut actions = Vec::new();
    scheduler.handle(Event::Submitted(spec(0, &[])), &mut actions);
    for id in 1..100_000 {
        scheduler.handle(Event::Submitted(spec(id, &[id - 1])), &mut actions);
        scheduler.handle(Event::Released { id: TaskId(id - 1) }, &mut actions);
    }
    scheduler.handle(Event::Released { id: TaskId(99_999) }, &mut actions);
    // Everything but the running head is forgotten at once; the head when it reports.
    assert_eq!(scheduler.counts().held(), 1);
    scheduler.handle(Event::Finished { id: TaskId(0) }, &mut actions);
    assert_eq!(scheduler.counts().held(), 0);
    scheduler.check_invariants().unwrap();
}

/// One step of a random schedule; task numbers are taken modulo what exists.
#[derive(Debug, Clone)]
enum Step {
    Submit {
        deps: Vec<usize>,
        retries: u32,
        priority: i8,
    },
    Finish(usize),
    Fail(usize),
    Lose(usize),
    Cancel(usize),
    Release(usize),
    Retry(usize),
    Secede(usize),
    Rejoin(usize),
    /// The transport took back a dispatch the scheduler asked it to withdraw.
    Withdraw(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (prop::collection::vec(0usize..64, 0..3), 0u32..2, -2i8..3)
            .prop_map(|(deps, retries, priority)| Step::Submit { deps, retries, priority }),
        3 => (0usize..64).prop_map(Step::Finish),
        1 => (0usize..64).prop_map(Step::Fail),
        1 => (0usize..64).prop_map(Step::Lose),
        1 => (0usize..64).prop_map(Step::Cancel),
        2 => (0usize..64).prop_map(Step::Release),
        1 => (0usize..64).prop_map(Step::Retry),
        1 => (0usize..64).prop_map(Step::Secede),
        1 => (0usize..64).prop_map(Step::Rejoin),
        1 => (0usize..64).prop_map(Step::Withdraw),
    ]
}

proptest! {
    /// Random schedules keep the bookkeeping consistent, resolve every task at most once,
    /// (again only after a retry or a cancel took the outcome back), and hold nothing once every handle is released and every dispatched task reported.
    #[test]
    fn random_schedules_keep_the_invariants(steps in prop::collection::vec(step(), 1..120), capacity in 1usize..4) {
        let mut scheduler: Scheduler<u64> = Scheduler::new(capacity);
        let mut submitted: Vec<u64> = Vec::new();
        let mut held: Vec<bool> = Vec::new();
        let mut running: Vec<u64> = Vec::new();
        let mut resolutions = std::collections::HashMap::<u64, u32>::new();
        let mut actions = Vec::new();
        let mut feed = |scheduler: &mut Scheduler<u64>, event, running: &mut Vec<u64>, resolutions: &mut std::collections::HashMap<u64, u32>| {
            actions.clear();
            scheduler.handle(event, &mut actions);
            for action in &actions {
                match action {
                    Action::Dispatch { payload, .. } => running.push(*payload),
                    Action::Resolve { payload, .. } => {
                        let count = resolutions.entry(*payload).or_default();
                        *count += 1;
                        prop_assert!(*count == 1, "{payload} resolved twice");
                    }
                    // A retry or a cancel after the outcome takes the published outcome back.
                    Action::Reset { payload, .. } | Action::Discard { payload, .. } => {
                        let count = resolutions.entry(*payload).or_default();
                        prop_assert!(*count == 1, "{payload} taken back without an outcome");
                        *count -= 1;
                    }
                    _ => {}
                }
            }
            scheduler.check_invariants().map_err(TestCaseError::fail)
        };
        let pick = |index: usize, from: &[u64]| from.get(index % from.len().max(1)).copied();
        for step in steps {
            match step {
                Step::Submit { deps, retries, priority } => {
                    let id = submitted.len() as u64;
                    // Only depend on tasks the client still holds, as a real client does.
                    let live: Vec<u64> = submitted.iter().copied().filter(|t| held[*t as usize]).collect();
                    let mut deps: Vec<u64> = deps.iter().filter_map(|d| pick(*d, &live)).collect();
                    deps.sort_unstable();
                    deps.dedup();
                    let mut task = spec(id, &deps);
                    task.retries = retries;
                    task.priority = i32::from(priority);
                    submitted.push(id);
                    held.push(true);
                    feed(&mut scheduler, Event::Submitted(task), &mut running, &mut resolutions)?;
                }
                Step::Finish(index) | Step::Fail(index) | Step::Lose(index) if !running.is_empty() => {
                    let position = index % running.len();
                    let id = TaskId(running.swap_remove(position));
                    let event = match step {
                        Step::Finish(_) => Event::Finished { id },
                        Step::Fail(_) => Event::Failed { id, error: TaskError::Failed { key: key(id.0), message: "x".into() } },
                        _ => Event::Lost { id },
                    };
                    feed(&mut scheduler, event, &mut running, &mut resolutions)?;
                }
                Step::Cancel(index) => {
                    if let Some(id) = pick(index, &submitted) {
                        feed(&mut scheduler, Event::CancelRequested { id: TaskId(id), reason: "p".into() }, &mut running, &mut resolutions)?;
                    }
                }
                Step::Secede(index) | Step::Rejoin(index) if !running.is_empty() => {
                    let id = TaskId(running[index % running.len()]);
                    let event = match step {
                        Step::Secede(_) => Event::Seceded { id },
                        _ => Event::Rejoined { id },
                    };
                    feed(&mut scheduler, event, &mut running, &mut resolutions)?;
                }
                Step::Withdraw(index) => {
                    let withdrawing: Vec<u64> = running.iter().copied().filter(|t| scheduler.is_withdrawing(TaskId(*t))).collect();
                    if let Some(id) = pick(index, &withdrawing) {
                        let position = running.iter().position(|t| *t == id).expect("running");
                        running.swap_remove(position);
                        feed(&mut scheduler, Event::Withdrawn { id: TaskId(id) }, &mut running, &mut resolutions)?;
                    }
                }
                Step::Retry(index) => {
                    let live: Vec<u64> = submitted.iter().copied().filter(|t| held[*t as usize]).collect();
                    if let Some(id) = pick(index, &live) {
                        feed(&mut scheduler, Event::RetryRequested { id: TaskId(id) }, &mut running, &mut resolutions)?;
                    }
                }
                Step::Release(index) => {
                    let live: Vec<u64> = submitted.iter().copied().filter(|t| held[*t as usize]).collect();
                    if let Some(id) = pick(index, &live) {
                        held[id as usize] = false;
                        feed(&mut scheduler, Event::Released { id: TaskId(id) }, &mut running, &mut resolutions)?;
                    }
                }
                _ => {}
            }
        }
        prop_assert!(resolutions.values().all(|count| *count <= 1), "a task resolved twice: {resolutions:?}");
        // Release everything, let every dispatched task report: nothing may be held.
        for (id, still_held) in held.iter_mut().enumerate() {
            if *still_held {
                *still_held = false;
                feed(&mut scheduler, Event::Released { id: TaskId(id as u64) }, &mut running, &mut resolutions)?;
            }
        }
        while let Some(id) = running.pop() {
            feed(&mut scheduler, Event::Finished { id: TaskId(id) }, &mut running, &mut resolutions)?;
        }
        prop_assert_eq!(scheduler.counts().held(), 0);
        prop_assert_eq!(scheduler.in_flight(), 0);
        prop_assert!(resolutions.values().all(|count| *count <= 1), "a task resolved twice: {resolutions:?}");
    }
}

/// `Client::restart` cancels what `unfinished` lists, newest first: running, ready and
/// waiting tasks, never finished ones.
#[test]
fn unfinished_lists_running_ready_and_waiting_tasks_newest_first() {
    let mut scheduler = Scheduler::new(1);
    run(
        &mut scheduler,
        vec![
            Event::Submitted(spec(1, &[])),
            Event::Finished { id: TaskId(1) },
            Event::Submitted(spec(2, &[])),
            Event::Submitted(spec(3, &[])),
            Event::Submitted(spec(4, &[2])),
        ],
    );
    assert_eq!(scheduler.state(TaskId(2)), Some(TaskState::Running));
    assert_eq!(scheduler.unfinished(), vec![TaskId(4), TaskId(3), TaskId(2)]);
    run(&mut scheduler, vec![Event::Closed]);
    assert_eq!(scheduler.unfinished(), vec![]);
}

/// A spec whose payload is its key, for a scheduler that reads keys from payloads.
fn keyed_spec(id: u64, deps: &[u64]) -> TaskSpec<TaskKey> {
    let TaskSpec { id, key, deps, priority, retries, allowed_failures, .. } = spec(id, deps);
    TaskSpec {
        id,
        key: key.clone(),
        deps,
        priority,
        retries,
        allowed_failures,
        uses_worker: true,
        pinned: false,
        shared_key: true,
        payload: key,
    }
}

#[test]
fn keys_read_from_the_payload_name_errors_and_shared_keys_as_stored_keys_do() {
    let events = || {
        vec![
            Event::Submitted(keyed_spec(1, &[])),
            Event::Submitted(keyed_spec(2, &[1])),
            Event::Submitted(keyed_spec(3, &[2])),
            Event::Submitted(TaskSpec { allowed_failures: 1, ..keyed_spec(4, &[]) }),
            Event::Lost { id: TaskId(4) },
            Event::Failed {
                id: TaskId(1),
                error: TaskError::Failed { key: key(1), message: "boom".into() },
            },
            Event::CancelRequested { id: TaskId(4), reason: "no longer needed".into() },
        ]
    };
    let mut outcomes = Vec::new();
    for mut scheduler in [Scheduler::new(2), Scheduler::with_keys_in_payload(2, |key| key)] {
        let mut actions = Vec::new();
        for event in events() {
            scheduler.handle(event, &mut actions);
            scheduler.check_invariants().unwrap();
        }
        let found: Vec<_> = (1..=4).map(|id| scheduler.lookup(&key(id))).collect();
        assert_eq!(found, [1, 2, 3, 4].map(|id| Some(TaskId(id))), "held shared keys are found");
        for id in 1..=4 {
            scheduler.handle(Event::Released { id: TaskId(id) }, &mut actions);
            scheduler.check_invariants().unwrap();
        }
        // The cancelled task 4 holds its worker slot until its run reports.
        scheduler.handle(Event::Finished { id: TaskId(4) }, &mut actions);
        assert!((1..=4).all(|id| scheduler.lookup(&key(id)).is_none()), "forgotten keys are gone");
        assert_eq!(scheduler.counts().held(), 0);
        outcomes.push(actions);
    }
    assert_eq!(outcomes[0], outcomes[1], "both ways of keeping keys act alike");
    let root = TaskError::Failed { key: key(1), message: "boom".into() };
    let dependency_failed =
        |id| TaskError::DependencyFailed { key: key(id), root: Box::new(root.clone()) };
    let errors: Vec<_> = outcomes[0]
        .iter()
        .filter_map(|action| match action {
            Action::Resolve { id, outcome: Err(error), .. } => Some((id.0, error.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        errors,
        [
            (1, root.clone()),
            (2, dependency_failed(2)),
            (3, dependency_failed(3)),
            (4, TaskError::Cancelled { key: key(4), reason: "no longer needed".into() }),
        ]
    );
}

#[test]
fn a_short_list_of_dependencies_leaves_its_buffer_for_the_next_spec() {
    let mut scheduler: Scheduler<Payload> = Scheduler::new(1);
    let mut actions = Vec::new();
    scheduler.handle(Event::Submitted(spec(1, &[])), &mut actions);
    assert_eq!(scheduler.spare_ids().capacity(), 0, "nothing to hand back yet");
    let mut deps = Vec::with_capacity(4);
    deps.push(TaskId(1));
    scheduler.handle(Event::Submitted(TaskSpec { deps, ..spec(2, &[]) }), &mut actions);
    let spare = scheduler.spare_ids();
    assert!(spare.is_empty() && spare.capacity() == 4, "the buffer comes back emptied");
    // The task still waits for its dependency, which the list named.
    assert_eq!(scheduler.state(TaskId(2)), Some(TaskState::Waiting));
    scheduler.handle(Event::Finished { id: TaskId(1) }, &mut actions);
    assert_eq!(scheduler.state(TaskId(2)), Some(TaskState::Running));
    scheduler.check_invariants().unwrap();
}

// ---------------------------------------------------------------------------------------------
// The sharded scheduler (`sharded.rs`)

/// The id of the `index`th task of a sharded test: spread so that neighbours often fall in
/// different shards (a shard holds chunks of 128 ids).
fn spread_id(index: usize) -> u64 {
    index as u64 * 53 + 1
}

/// Every action about `id`, in order.
fn actions_of(actions: &[Action<Payload>], id: u64) -> Vec<Action<Payload>> {
    actions
        .iter()
        .filter(|action| action_task(action) == id)
        .cloned()
        .map(inherited_as_any)
        .collect()
}

/// Each task's actions, in order.
fn by_task(actions: &[Action<Payload>]) -> std::collections::BTreeMap<u64, Vec<Action<Payload>>> {
    let mut by_task = std::collections::BTreeMap::<u64, Vec<Action<Payload>>>::new();
    for action in actions {
        by_task.entry(action_task(action)).or_default().push(inherited_as_any(action.clone()));
    }
    by_task
}

/// `action`, with an error inherited from a dependency naming none in particular: a task
/// with two inputs cancelled (or failed) in one cascade inherits the error of the first to
/// reach it, which in a sharded scheduler may be the other one (the cascade crosses shards
/// in another order).
fn inherited_as_any(action: Action<Payload>) -> Action<Payload> {
    match action {
        Action::Resolve { id, payload, outcome: Err(TaskError::Cancelled { key, reason }) }
            if reason.starts_with("its dependency ") =>
        {
            let reason = "its dependency … was cancelled".into();
            Action::Resolve { id, payload, outcome: Err(TaskError::Cancelled { key, reason }) }
        }
        Action::Resolve { id, payload, outcome: Err(TaskError::DependencyFailed { key, .. }) } => {
            let root = Box::new(TaskError::Failed { key: key.clone(), message: "…".into() });
            Action::Resolve { id, payload, outcome: Err(TaskError::DependencyFailed { key, root }) }
        }
        other => other,
    }
}

fn action_task(action: &Action<Payload>) -> u64 {
    match action {
        Action::Dispatch { id, .. }
        | Action::Resolve { id, .. }
        | Action::Abort { id, .. }
        | Action::Withdraw { id, .. }
        | Action::Reset { id, .. }
        | Action::Discard { id, .. }
        | Action::Forget { id, .. } => id.0,
    }
}

proptest! {
    /// Fed one event at a time with slots to spare (so that no choice of which ready task
    /// runs first can differ), the sharded scheduler does to every task exactly what one
    /// scheduler does, across shards (proxies, cascades, retries of inputs in other shards),
    /// and counts the same; its bookkeeping between shards holds after every event.
    #[test]
    fn sharded_acts_on_every_task_as_one_scheduler_does(
        steps in prop::collection::vec(step(), 1..120),
        shards in 1usize..5,
    ) {
        let mut one: Scheduler<u64> = Scheduler::new(1000);
        let sharded: ShardedScheduler<u64> = ShardedScheduler::new(1000, shards);
        let mut submitted: Vec<u64> = Vec::new();
        let mut held: Vec<bool> = Vec::new();
        let mut running: Vec<u64> = Vec::new();
        let (mut all_one, mut all_sharded) = (Vec::new(), Vec::new());
        let pick = |index: usize, from: &[u64]| from.get(index % from.len().max(1)).copied();
        for step in steps {
            let live: Vec<u64> = submitted
                .iter()
                .enumerate()
                .filter(|(index, _)| held[*index])
                .map(|(_, id)| *id)
                .collect();
            let event = match step {
                Step::Submit { deps, retries, priority } => {
                    let id = spread_id(submitted.len());
                    let mut deps: Vec<u64> = deps.iter().filter_map(|d| pick(*d, &live)).collect();
                    deps.sort_unstable();
                    deps.dedup();
                    let mut task = spec(id, &deps);
                    task.retries = retries;
                    task.priority = i32::from(priority);
                    submitted.push(id);
                    held.push(true);
                    Event::Submitted(task)
                }
                Step::Finish(index) | Step::Fail(index) | Step::Lose(index) if !running.is_empty() => {
                    let id = TaskId(running.swap_remove(index % running.len()));
                    match step {
                        Step::Finish(_) => Event::Finished { id },
                        Step::Fail(_) => Event::Failed { id, error: TaskError::Failed { key: key(id.0), message: "x".into() } },
                        _ => Event::Lost { id },
                    }
                }
                Step::Cancel(index) => match pick(index, &submitted) {
                    Some(id) => Event::CancelRequested { id: TaskId(id), reason: "p".into() },
                    None => continue,
                },
                Step::Secede(index) | Step::Rejoin(index) if !running.is_empty() => {
                    let id = TaskId(running[index % running.len()]);
                    match step {
                        Step::Secede(_) => Event::Seceded { id },
                        _ => Event::Rejoined { id },
                    }
                }
                Step::Withdraw(index) => {
                    let withdrawing: Vec<u64> = running.iter().copied().filter(|t| one.is_withdrawing(TaskId(*t))).collect();
                    prop_assert_eq!(&withdrawing, &running.iter().copied().filter(|t| sharded.is_withdrawing(TaskId(*t))).collect::<Vec<_>>());
                    let Some(id) = pick(index, &withdrawing) else { continue };
                    running.retain(|t| *t != id);
                    Event::Withdrawn { id: TaskId(id) }
                }
                Step::Retry(index) => match pick(index, &live) {
                    Some(id) => {
                        prop_assert_eq!(one.retry_outcome(TaskId(id)), sharded.retry_outcome(TaskId(id)));
                        Event::RetryRequested { id: TaskId(id) }
                    }
                    None => continue,
                },
                Step::Release(index) => match pick(index, &live) {
                    Some(id) => {
                        let at = submitted.iter().position(|t| *t == id).expect("submitted");
                        held[at] = false;
                        Event::Released { id: TaskId(id) }
                    }
                    None => continue,
                },
                _ => continue,
            };
            let (from_one, from_sharded) = (all_one.len(), all_sharded.len());
            one.handle(event.clone(), &mut all_one);
            sharded.handle(event, &mut all_sharded);
            for action in &all_one[from_one..] {
                if let Action::Dispatch { id, .. } = action {
                    running.push(id.0);
                }
            }
            prop_assert_eq!(by_task(&all_one[from_one..]), by_task(&all_sharded[from_sharded..]), "the same actions on each task");
            one.check_invariants().map_err(TestCaseError::fail)?;
            sharded.check_invariants().map_err(TestCaseError::fail)?;
            prop_assert_eq!(one.counts(), sharded.counts());
            prop_assert_eq!(one.in_flight(), sharded.in_flight());
            prop_assert_eq!(one.unfinished(), sharded.unfinished());
            for &id in &submitted {
                prop_assert_eq!(one.state(TaskId(id)), sharded.state(TaskId(id)), "state of {}", id);
                prop_assert_eq!(one.cancel_outcome(TaskId(id)), sharded.cancel_outcome(TaskId(id)));
            }
        }
    }
}

#[test]
fn closing_a_sharded_scheduler_cancels_every_shard_and_refuses_submissions() {
    let scheduler: ShardedScheduler<Payload> = ShardedScheduler::new(1, 3);
    let mut actions = Vec::new();
    let (a, b) = (spread_id(0), spread_id(5));
    assert_ne!(scheduler.shard_of(TaskId(a)), scheduler.shard_of(TaskId(b)));
    scheduler.handle(Event::Submitted(spec(a, &[])), &mut actions);
    scheduler.handle(Event::Submitted(spec(b, &[a])), &mut actions);
    scheduler.handle(Event::Closed, &mut actions);
    scheduler.check_invariants().unwrap();
    let closed = |id| TaskError::Cancelled { key: key(id), reason: "the client was closed".into() };
    assert_eq!(actions_of(&actions, a), [dispatch(a, 1), abort(a), failed_with(a, closed(a))]);
    assert_eq!(actions_of(&actions, b), [failed_with(b, closed(b))]);
    let mut late = Vec::new();
    scheduler.handle(Event::Submitted(spec(spread_id(9), &[])), &mut late);
    assert!(matches!(
        &late[..],
        [Action::Resolve { outcome: Err(TaskError::ClientClosed { operation: "submit", .. }), .. }]
    ));
    for id in [a, b] {
        scheduler.handle(Event::Released { id: TaskId(id) }, &mut actions);
    }
    scheduler.handle(Event::Finished { id: TaskId(a) }, &mut actions);
    scheduler.check_invariants().unwrap();
    assert_eq!(scheduler.counts().held(), 0);
    assert_eq!(scheduler.in_flight(), 0);
}

/// A slot freed in one shard goes to a ready task of another.
#[test]
fn a_slot_freed_in_one_shard_dispatches_a_ready_task_of_another() {
    let scheduler: ShardedScheduler<Payload> = ShardedScheduler::new(1, 2);
    let mut actions = Vec::new();
    let (a, b) = (1, 129);
    assert_ne!(scheduler.shard_of(TaskId(a)), scheduler.shard_of(TaskId(b)));
    scheduler.handle(Event::Submitted(spec(a, &[])), &mut actions);
    scheduler.handle(Event::Submitted(spec(b, &[])), &mut actions);
    assert_eq!(actions, [dispatch(a, 1)]);
    scheduler.check_invariants().unwrap();
    actions.clear();
    scheduler.handle(Event::Finished { id: TaskId(a) }, &mut actions);
    assert_eq!(actions, [resolved(a), dispatch(b, 1)]);
    scheduler.check_invariants().unwrap();
}

/// Several threads drive one sharded scheduler at once with random graphs (submissions
/// reading tasks of other shards, reports that finish or fail, cancels, releases, retries):
/// at quiescence the bookkeeping holds within and between shards, every task was resolved
/// at most once net of outcomes taken back (exactly once unless it was forgotten unrun),
/// forgotten exactly once, and never dispatched before each of its inputs reported a value.
#[test]
fn threads_driving_one_sharded_scheduler_keep_every_rule() {
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

    const THREADS: usize = 4;
    const STEPS: usize = 3000;
    const MAX_TASKS: usize = THREADS * STEPS;

    struct Shared {
        scheduler: ShardedScheduler<Payload>,
        next: AtomicU64,
        /// Per task index: its inputs' indexes, set before it is submitted.
        inputs: Vec<Mutex<Vec<usize>>>,
        /// Per task index: a report that it finished was fed (set before the feeding).
        reported_value: Vec<AtomicBool>,
        /// Per task index: resolutions, net of outcomes taken back.
        resolved: Vec<AtomicI64>,
        forgotten: Vec<AtomicI64>,
        dispatched: Mutex<VecDeque<u64>>,
        violations: Mutex<Vec<String>>,
    }
    let index_of = |id: u64| ((id - 1) / 53) as usize;
    let shared = Shared {
        scheduler: ShardedScheduler::new(3, 4),
        next: AtomicU64::new(0),
        inputs: (0..MAX_TASKS).map(|_| Mutex::new(Vec::new())).collect(),
        reported_value: (0..MAX_TASKS).map(|_| AtomicBool::new(false)).collect(),
        resolved: (0..MAX_TASKS).map(|_| AtomicI64::new(0)).collect(),
        forgotten: (0..MAX_TASKS).map(|_| AtomicI64::new(0)).collect(),
        dispatched: Mutex::new(VecDeque::new()),
        violations: Mutex::new(Vec::new()),
    };
    let feed = |shared: &Shared, event: Event<Payload>, actions: &mut Vec<Action<Payload>>| {
        actions.clear();
        shared.scheduler.handle(event, actions);
        for action in actions.iter() {
            let index = index_of(action_task(action));
            match action {
                Action::Dispatch { id, .. } => {
                    for &input in shared.inputs[index].lock().unwrap().iter() {
                        if !shared.reported_value[input].load(Ordering::SeqCst) {
                            shared.violations.lock().unwrap().push(format!(
                                "{id:?} dispatched before its input {} reported a value",
                                spread_id(input)
                            ));
                        }
                    }
                    shared.dispatched.lock().unwrap().push_back(id.0);
                }
                Action::Resolve { .. } => {
                    shared.resolved[index].fetch_add(1, Ordering::SeqCst);
                }
                Action::Reset { .. } | Action::Discard { .. } => {
                    shared.resolved[index].fetch_sub(1, Ordering::SeqCst);
                }
                Action::Forget { .. } => {
                    shared.forgotten[index].fetch_add(1, Ordering::SeqCst);
                }
                Action::Abort { .. } | Action::Withdraw { .. } => {}
            }
        }
    };
    let report = |shared: &Shared, id: u64, fail: bool, actions: &mut Vec<Action<Payload>>| {
        let event = if fail {
            Event::Failed {
                id: TaskId(id),
                error: TaskError::Failed { key: key(id), message: "x".into() },
            }
        } else {
            shared.reported_value[index_of(id)].store(true, Ordering::SeqCst);
            Event::Finished { id: TaskId(id) }
        };
        feed(shared, event, actions);
    };
    let mut leftover: Vec<Vec<u64>> = Vec::new();
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..THREADS)
            .map(|thread| {
                let shared = &shared;
                scope.spawn(move || {
                    let mut random = 0x9E37_79B9_7F4A_7C15_u64
                        ^ (thread as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
                    let mut next = move || {
                        random ^= random << 13;
                        random ^= random >> 7;
                        random ^= random << 17;
                        random
                    };
                    let mut held: Vec<u64> = Vec::new();
                    let mut actions = Vec::new();
                    for _ in 0..STEPS {
                        match next() % 16 {
                            0..=5 => {
                                let index = shared.next.fetch_add(1, Ordering::SeqCst) as usize;
                                let id = spread_id(index);
                                let inputs = if held.is_empty() { 0 } else { next() % 3 };
                                let mut deps: Vec<u64> = (0..inputs)
                                    .map(|_| held[next() as usize % held.len()])
                                    .collect();
                                deps.sort_unstable();
                                deps.dedup();
                                *shared.inputs[index].lock().unwrap() =
                                    deps.iter().map(|d| index_of(*d)).collect();
                                let mut task = spec(id, &deps);
                                task.retries = (next() % 4 == 0) as u32;
                                held.push(id);
                                feed(shared, Event::Submitted(task), &mut actions);
                            }
                            6..=10 => {
                                let id = shared.dispatched.lock().unwrap().pop_front();
                                if let Some(id) = id {
                                    report(shared, id, next() % 5 == 0, &mut actions);
                                }
                            }
                            11 if !held.is_empty() => {
                                let id = held[next() as usize % held.len()];
                                feed(
                                    shared,
                                    Event::CancelRequested { id: TaskId(id), reason: "r".into() },
                                    &mut actions,
                                );
                            }
                            12 if !held.is_empty() => {
                                let id = held[next() as usize % held.len()];
                                feed(
                                    shared,
                                    Event::RetryRequested { id: TaskId(id) },
                                    &mut actions,
                                );
                            }
                            13..=15 if !held.is_empty() => {
                                let id = held.swap_remove(next() as usize % held.len());
                                feed(shared, Event::Released { id: TaskId(id) }, &mut actions);
                            }
                            _ => {}
                        }
                    }
                    held
                })
            })
            .collect();
        for thread in threads {
            leftover.push(thread.join().expect("a driving thread panicked"));
        }
    });
    // Quiescent: every dispatched task reports a value, then every handle goes.
    let mut actions = Vec::new();
    loop {
        let id = shared.dispatched.lock().unwrap().pop_front();
        let Some(id) = id else { break };
        report(&shared, id, false, &mut actions);
    }
    shared.scheduler.check_invariants().unwrap();
    assert_eq!(shared.scheduler.in_flight(), 0);
    let counts = shared.scheduler.counts();
    assert_eq!(counts.waiting + counts.ready + counts.running, 0, "everything ran: {counts:?}");
    for id in leftover.into_iter().flatten() {
        feed(&shared, Event::Released { id: TaskId(id) }, &mut actions);
    }
    shared.scheduler.check_invariants().unwrap();
    assert_eq!(shared.scheduler.counts().held(), 0);
    let violations = shared.violations.lock().unwrap();
    assert!(violations.is_empty(), "{violations:?}");
    let submitted = shared.next.load(Ordering::SeqCst) as usize;
    let mut forgotten_unresolved = 0;
    for index in 0..submitted {
        let resolved = shared.resolved[index].load(Ordering::SeqCst);
        assert!(
            resolved == 0 || resolved == 1,
            "task {} resolved {resolved} times",
            spread_id(index)
        );
        assert_eq!(
            shared.forgotten[index].load(Ordering::SeqCst),
            1,
            "task {} forgotten once",
            spread_id(index)
        );
        forgotten_unresolved += usize::from(resolved == 0);
    }
    assert!(
        forgotten_unresolved < submitted / 2,
        "most tasks ran: {forgotten_unresolved} of {submitted} did not"
    );
    let shards_used: std::collections::HashSet<usize> =
        (0..submitted).map(|index| shared.scheduler.shard_of(TaskId(spread_id(index)))).collect();
    assert_eq!(shards_used.len(), 4);
}
