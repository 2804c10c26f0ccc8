//! `wait` and `as_completed` under the deterministic simulation: many seeds, so many
//! interleavings of task completions, additions and stream polls; each seed replays exactly.
#![cfg(feature = "sim")]

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use taskweave::runtimes::sim::{SimConfig, SimExecutor};
use taskweave::{Client, Error, ReturnWhen, TaskFuture};

const SEEDS: u64 = 24;

/// A task that gives `value` after `millis` of virtual time.
fn sleeper(client: &Client, sim: &SimExecutor, value: u64, millis: u64) -> TaskFuture<u64> {
    let sim = sim.clone();
    client.submit_async(
        move |(value, millis): (u64, u64)| {
            let sim = sim.clone();
            async move {
                taskweave::Executor::sleep(&sim, Duration::from_millis(millis)).await;
                value
            }
        },
        (value, millis),
    )
}

/// A task that fails at once on a worker.
fn failing_task(client: &Client, value: u64) -> TaskFuture<u64> {
    client.try_submit(|value: u64| Err::<u64, _>(format!("trial {value} failed")), value)
}

/// Runs `scenario` on a fresh simulation of `seed`, then shuts it down.
fn simulate<R>(seed: u64, scenario: impl AsyncFnOnce(Client, SimExecutor) -> R) -> R {
    let sim = SimExecutor::new(SimConfig::new(seed));
    let client = Client::builder().executor(sim.clone()).workers(3).build_blocking().unwrap();
    let output = sim
        .block_on(scenario(client.clone(), sim.clone()))
        .unwrap_or_else(|error| panic!("seed {seed}: {error}"));
    drop(client);
    sim.run_until_idle().unwrap();
    sim.shutdown();
    output
}

/// Yields every future exactly once, with additions, whatever the interleaving; returns the
/// completion order.
async fn as_completed_with_additions(client: Client, sim: SimExecutor) -> Vec<u64> {
    let mut workload = sim.rng("workload");
    let first: Vec<_> = (0..40).map(|i| sleeper(&client, &sim, i, workload.below(50))).collect();
    let mut completed = client.as_completed(first);
    let mut next = 40;
    let mut order = Vec::new();
    let mut keys = HashSet::new();
    while let Some(future) = completed.next().await {
        assert!(keys.insert(future.key().clone()), "{} yielded twice", future.key());
        order.push(future.await.unwrap());
        for _ in 0..workload.below(3) {
            if next < 200 {
                completed.add(sleeper(&client, &sim, next, workload.below(50)));
                next += 1;
            }
        }
    }
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..next).collect::<Vec<_>>(), "every added future exactly once");
    order
}

#[test]
fn as_completed_yields_each_future_once_under_every_seed_and_replays() {
    for seed in 0..SEEDS {
        let order = simulate(seed, as_completed_with_additions);
        let replay = simulate(seed, as_completed_with_additions);
        assert_eq!(order, replay, "seed {seed} replays the same completion order");
    }
}

#[test]
fn wait_first_exception_stops_at_the_first_failure_under_every_seed() {
    for seed in 0..SEEDS {
        simulate(seed, async |client: Client, sim: SimExecutor| {
            let mut workload = sim.rng("workload");
            let failing = workload.below(20);
            let futures: Vec<_> = (0..20)
                .map(|i| {
                    if i == failing {
                        failing_task(&client, i)
                    } else {
                        sleeper(&client, &sim, i, 100 + workload.below(100))
                    }
                })
                .collect();
            let outcome = client.wait(&futures, ReturnWhen::FirstException, None).await.unwrap();
            let failed: Vec<_> = outcome.failed().map(|(future, _)| future.key().clone()).collect();
            assert_eq!(failed, vec![futures[failing as usize].key().clone()], "seed {seed}");
            assert!(!outcome.not_done.is_empty(), "seed {seed}: it returned before the rest");
            // A short timeout on the rest passes first; nothing is cancelled by it.
            let rest = outcome.not_done;
            let timed_out =
                client.wait(&rest, ReturnWhen::AllCompleted, Some(Duration::from_millis(1))).await;
            assert!(matches!(timed_out, Err(Error::Timeout { .. })), "seed {seed}: {timed_out:?}");
            let all = client.wait(&rest, ReturnWhen::AllCompleted, None).await.unwrap();
            assert_eq!(all.done.len(), rest.len());
            assert_eq!(all.failed().count(), 0, "seed {seed}");
        });
    }
}
