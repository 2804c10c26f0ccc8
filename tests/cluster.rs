//! Cluster management on the in-process backend, from the user's side:
//! `wait_for_workers` answers at once (the pool never grows) and refuses what cannot be.

use std::time::{Duration, Instant};

use taskweave::{Client, Error};

#[test]
fn wait_for_workers_answers_at_once_with_the_pool_when_it_is_big_enough() {
    let client = Client::builder().workers(3).build_blocking().unwrap();
    let workers = client.blocking().wait_for_workers(2, Duration::from_secs(5)).unwrap();
    assert_eq!(workers.len(), 3, "all the workers, at least the two asked for");
    assert!(workers.iter().all(|worker| worker.queue == "in-process"));
    client.blocking().close().unwrap();
}

#[test]
fn wait_for_more_workers_than_the_pool_has_fails_at_once_saying_how_to_fix_it() {
    let client = Client::builder().workers(2).build_blocking().unwrap();
    let started = Instant::now();
    let error = client.blocking().wait_for_workers(3, Duration::from_secs(60)).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "an error at once, not a wait");
    let message = error.to_string();
    assert!(matches!(error, Error::Cluster { operation: "wait_for_workers", .. }), "{error:?}");
    assert!(message.contains("has 2 workers") && message.contains(".workers(3)"), "{message}");
    client.blocking().close().unwrap();
}

#[test]
fn wait_for_zero_workers_is_refused() {
    let client = Client::builder().workers(1).build_blocking().unwrap();
    let error = client.blocking().wait_for_workers(0, Duration::from_secs(1)).unwrap_err();
    assert!(matches!(error, Error::InvalidConfig { .. }), "{error:?}");
    assert!(error.to_string().contains("wait_for_workers(0)"), "{error}");
    client.blocking().close().unwrap();
}

#[test]
fn wait_for_workers_on_a_closed_client_is_refused() {
    let client = Client::builder().workers(1).build_blocking().unwrap();
    client.blocking().close().unwrap();
    let error = client.blocking().wait_for_workers(1, Duration::from_secs(1)).unwrap_err();
    assert!(matches!(error, Error::Closed { .. }), "{error:?}");
}

/// A registered task (the in-process pool runs it as a closure).
struct Double;

impl taskweave::Task for Double {
    const NAME: &'static str = "double";
    type Input = u32;
    type Output = u32;
    type Error = std::convert::Infallible;
    fn run(x: u32) -> Result<u32, Self::Error> {
        Ok(x * 2)
    }
}

#[test]
fn a_task_that_needs_a_resource_fails_at_once_in_process_naming_it() {
    let client = Client::builder().workers(2).build_blocking().unwrap();
    let registered = client.task().resources("GPU", 1).submit_task::<Double>(4);
    let error = registered.result().unwrap_err().to_string();
    assert!(error.contains("\"GPU\"") && error.contains("in-process pool"), "{error}");
    let closure = client.task().resources("GPU", 1).submit(|x: u32| x, 1);
    let error = closure.result().unwrap_err().to_string();
    assert!(error.contains("closure"), "{error}");
    let none = client.task().resources("GPU", 0).submit_task::<Double>(4);
    assert!(none.result().unwrap_err().to_string().contains("0 of the resource"));
    // Without resources the same task runs.
    assert_eq!(client.submit_task::<Double>(4).result().unwrap(), 8);
    client.blocking().close().unwrap();
}

#[test]
fn the_in_process_pool_refuses_to_retire_its_workers() {
    let client = Client::builder().workers(2).build_blocking().unwrap();
    let error =
        client.blocking().retire_workers(&["worker-0"], Duration::from_secs(1)).unwrap_err();
    assert!(matches!(error, Error::Cluster { operation: "retire_workers", .. }), "{error:?}");
    assert!(error.to_string().contains("close the client"), "{error}");
    assert_eq!(client.submit(|x: u32| x + 1, 1).result().unwrap(), 2, "the pool still works");
    client.blocking().close().unwrap();
}

#[test]
fn run_on_workers_runs_once_per_in_process_worker() {
    let client = Client::builder().workers(3).build_blocking().unwrap();
    let doubled =
        futures::executor::block_on(client.run_on_workers::<Double>(21, Duration::from_secs(10)))
            .unwrap();
    let names: Vec<&str> = doubled.keys().map(String::as_str).collect();
    assert_eq!(names, ["worker-0", "worker-1", "worker-2"]);
    assert!(doubled.values().all(|value| *value.as_ref().unwrap() == 42));
    client.blocking().close().unwrap();
}
