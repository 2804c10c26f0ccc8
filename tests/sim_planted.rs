//! Planted bugs (`taskweave::planted`): each is given, as a value, to the client and the
//! simulated Redis server of one test's runs, and the simulation must catch it within a few
//! thousand seeds. The
//! failing seed must replay to the same trace hash, and must pass once the bug is gone.
//!
//! The runner replays a planted bug too:
//! `TASKWEAVE_SIM_PLANT=<Bug> TASKWEAVE_SIM_SCENARIO=<name> TASKWEAVE_SIM_SEED=<seed> cargo test --all-features --test sim`.

// Shared with the runner, which reads what this file does not.
#[allow(dead_code)]
#[path = "sim/leases.rs"]
mod leases;
#[allow(dead_code)]
#[path = "sim/oracle.rs"]
mod oracle;
#[allow(dead_code)]
#[path = "sim/redis.rs"]
mod redis;
#[allow(dead_code)]
#[path = "sim/scenarios.rs"]
mod scenarios;
// Shared with the runner, which reads the fields this file does not.
#[allow(dead_code)]
#[path = "sim/workload.rs"]
mod workload;

use taskweave::planted::PlantedBug;

/// How many seeds a bug may take to be caught (a few seconds of simulation).
const MAX_SEEDS: u64 = 3000;

/// Runs `scenario` under seeds 0.. with `bug` planted until a run fails; the failure must
/// mention one of `expected`, replay to the same trace hash, and go away without the bug.
fn caught(bug: PlantedBug, scenario: &str, expected: &[&str]) -> u64 {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(workload::silence_planned_panics);
    let scenario = scenarios::by_name(scenario).expect("a known scenario");
    for seed in 0..MAX_SEEDS {
        let Err(failure) = scenario.run_planted(seed, Some(bug)) else { continue };
        assert!(
            expected.iter().any(|text| failure.message.contains(text)),
            "{bug:?} was caught by seed {seed}, but with an unexpected report: {}",
            failure.message
        );
        let replayed = scenario.run_planted(seed, Some(bug)).expect_err("the replay fails too");
        assert_eq!(replayed.trace_hash, failure.trace_hash, "the replay takes the same path");
        println!(
            "{bug:?} caught by seed {seed} of {}: {}\nreplay: TASKWEAVE_SIM_PLANT={bug:?} \
             TASKWEAVE_SIM_SCENARIO={} TASKWEAVE_SIM_SEED={seed} cargo test --all-features --test sim \
             (trace hash {:016x})",
            scenario.name(),
            failure.message,
            scenario.name(),
            failure.trace_hash
        );
        if let Err(failure) = scenario.run(seed) {
            panic!("seed {seed} fails even without {bug:?}: {}", failure.message);
        }
        return seed;
    }
    panic!("{bug:?} was not caught by {MAX_SEEDS} seeds of {}", scenario.name());
}

#[test]
fn a_forgotten_cancel_cascade_is_caught() {
    caught(PlantedBug::NoCancelCascade, "dependencies", &["should be cancelled"]);
}

#[test]
fn an_accepted_second_result_is_caught() {
    caught(
        PlantedBug::AcceptSecondResult,
        "dependencies",
        &["scheduler holds", "scheduler counted", "started after", "resolved twice"],
    );
}

#[test]
fn a_leaked_worker_slot_is_caught_as_a_deadlock() {
    caught(PlantedBug::LeakSlotOnFailure, "basics", &["deadlock"]);
}

#[test]
fn a_dependent_started_before_its_inputs_is_caught() {
    caught(
        PlantedBug::ReadyAfterFirstDependency,
        "dependencies",
        &["started before its input", "has no value"],
    );
}

#[test]
fn running_a_cancelled_queued_task_is_caught() {
    caught(PlantedBug::RunCancelledTask, "dependencies", &["started after it was cancelled"]);
}

#[test]
fn a_redis_ack_before_the_result_is_stored_is_caught() {
    // A command that fails (or a worker that dies) between the acknowledgement and the
    // result loses the result: the entry is gone with no outcome. The client's
    // reconciliation pass finds it missing and enqueues it again until it gives the task up
    // as lost, with no dead letter behind it (or the future never resolves).
    caught(
        PlantedBug::RedisAckBeforeResult,
        "redis_command_faults",
        &["did not resolve within", "dead letters for", "deliveries missing from the stream"],
    );
}

#[test]
fn a_redis_second_result_accepted_for_a_task_is_caught() {
    // A duplicated completion of a failed attempt is taken for the retry's.
    caught(
        PlantedBug::RedisAcceptSecondResult,
        "redis_retries",
        &["ran", "unexpected error", "resolved to", "scheduler counts"],
    );
}

#[test]
fn a_redis_completion_without_an_owner_check_is_caught() {
    // A slow worker's result is published after its entry was reclaimed and completed.
    caught(
        PlantedBug::RedisNoOwnerCheckOnComplete,
        "redis_slow_worker",
        &["completions were published for entries that had one already"],
    );
}

#[test]
fn a_lease_acquire_that_ignores_expiry_is_caught() {
    // The acquire drops live leases (it takes every lease that expires within one timeout
    // for expired) and grants theirs again: two live holders of one lock.
    caught(PlantedBug::RedisLeaseAcquireIgnoresExpiry, "lease_pauses", &["live holders at once"]);
}

#[test]
fn a_lease_refresh_that_revives_an_expired_lease_is_caught() {
    // A holder paused past its lease's expiry refreshes it on waking and gets it back,
    // although it went to another meanwhile: two live holders. Only a pause finds it.
    caught(PlantedBug::RedisLeaseRefreshRevives, "lease_pauses", &["live holders at once"]);
}
