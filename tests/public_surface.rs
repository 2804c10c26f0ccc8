//! The public surface: auto traits, "no runtime" messages, bad configuration, the blocking
//! view's refusal inside async code.

use taskweave::{BlockingClient, Client, ClientBuilder, Error, TaskError, TaskFuture};

fn assert_send_sync<T: Send + Sync>() {}
fn assert_clone<T: Clone>() {}

#[test]
fn public_types_are_send_and_sync() {
    assert_send_sync::<Client>();
    assert_send_sync::<ClientBuilder>();
    assert_send_sync::<TaskFuture<i64>>();
    assert_send_sync::<TaskFuture<String>>();
    assert_send_sync::<BlockingClient<'static>>();
    assert_send_sync::<Error>();
    assert_send_sync::<TaskError>();
    assert_send_sync::<taskweave::AsCompleted<i64>>();
    assert_send_sync::<taskweave::client::AsCompletedWithResults<String>>();
    assert_send_sync::<taskweave::client::AsCompletedBatches<String>>();
    assert_send_sync::<taskweave::client::AsCompletedResultBatches<String>>();
    assert_send_sync::<taskweave::client::AsCompletedAdder<String>>();
    assert_send_sync::<taskweave::client::BlockingAsCompleted<taskweave::AsCompleted<u8>>>();
    assert_send_sync::<taskweave::WaitOutcome<String>>();
    assert_send_sync::<taskweave::Gathered<String>>();
    assert_send_sync::<taskweave::client::AsCompletedTimeout<String>>();
    assert_send_sync::<taskweave::client::BlockingAsCompletedTimeout<String>>();
    assert_send_sync::<taskweave::CancelOutcome>();
    assert_send_sync::<taskweave::RetryOutcome>();
    assert_clone::<taskweave::client::AsCompletedAdder<String>>();
    assert_clone::<Client>();
    assert_clone::<TaskFuture<Vec<u8>>>();
    assert_send_sync::<taskweave::TaskContext>();
    assert_clone::<taskweave::TaskContext>();
    assert_send_sync::<taskweave::client::Cancelled>();
    assert_send_sync::<taskweave::CancelOnDrop<String>>();
    assert_send_sync::<taskweave::Actor<std::cell::Cell<u8>>>();
    assert_clone::<taskweave::Actor<std::cell::Cell<u8>>>();
}

#[test]
fn zero_workers_is_a_clear_configuration_error() {
    let error = Client::builder().workers(0).build_blocking().unwrap_err();
    assert!(matches!(error, Error::InvalidConfig { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "invalid configuration: workers(0): a client needs at least one worker; use workers(1) or more"
    );
}

#[cfg(feature = "tokio")]
#[test]
fn tokio_current_outside_a_runtime_says_what_to_do() {
    let error = taskweave::runtimes::tokio::TokioExecutor::current().unwrap_err();
    assert!(matches!(error, Error::NoRuntime { runtime: "tokio" }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "no tokio runtime is running on this thread; call this from inside the runtime (for \
         example from the async main function it runs) or pass an executor with \
         ClientBuilder::executor"
    );
}

#[cfg(feature = "tokio")]
#[test]
fn a_dropped_tokio_runtime_refuses_new_work_with_an_error() {
    use taskweave::Executor;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let executor = taskweave::runtimes::tokio::TokioExecutor::from_handle(runtime.handle().clone());
    drop(runtime);
    let error = executor.spawn(Box::pin(async {})).unwrap_err();
    assert!(matches!(error, Error::RuntimeShutDown { runtime: "tokio" }), "{error:?}");
    assert!(error.to_string().contains("has shut down"), "{error}");
}

#[cfg(feature = "tokio")]
#[test]
fn blocking_inside_a_tokio_runtime_is_refused_not_deadlocked() {
    let client = Client::new().unwrap();
    let future = client.submit(|x: i32| x + 1, 1);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        assert!(matches!(future.result(), Err(Error::BlockingInAsyncContext)));
        assert!(matches!(client.blocking().close(), Err(Error::BlockingInAsyncContext)));
        assert!(matches!(Client::builder().build_blocking(), Err(Error::BlockingInAsyncContext)));
        assert_eq!((&future).await.unwrap(), 2);
    });
    client.blocking().close().unwrap();
}

#[test]
fn dropping_every_client_clone_shuts_the_cluster_down() {
    let client = Client::builder().workers(1).build_blocking().unwrap();
    let (release, gate) = flume::bounded::<()>(0);
    let running = client.submit(move |_: ()| gate.recv().is_ok(), ());
    let queued = client.submit(|x: i32| x, 1);
    drop(client);
    let error = queued.result().unwrap_err();
    assert!(error.to_string().contains("client was closed"), "{error}");
    drop(release);
    assert!(running.result().is_err(), "a running task is cancelled by the shutdown too");
}

/// A body's context reaches its client without keeping it alive: dropping the last user
/// clone still closes the client, which cancels the body that waits on it.
#[test]
fn a_task_holding_its_context_does_not_keep_its_client_open() {
    let client = Client::builder().workers(1).build_blocking().unwrap();
    let (started, has_started) = flume::bounded::<()>(1);
    let (stopped, has_stopped) = flume::bounded::<bool>(1);
    let running = client.submit_with_context(
        move |context: &taskweave::TaskContext, _: ()| {
            let _ = started.send(());
            while !context.is_cancelled() {
                std::thread::yield_now();
            }
            // The client is gone: no new client from the context.
            let _ = stopped.send(context.client().is_err());
        },
        (),
    );
    has_started.recv_timeout(std::time::Duration::from_secs(30)).unwrap();
    drop(client);
    let refused = has_stopped.recv_timeout(std::time::Duration::from_secs(30));
    assert_eq!(refused, Ok(true), "the body saw the close and the context no client");
    assert!(running.result().is_err(), "the running task is cancelled by the shutdown");
}

#[test]
fn debug_output_names_the_executor_and_transport() {
    let client = Client::builder().workers(1).build_blocking().unwrap();
    let shown = format!("{client:?}");
    assert!(shown.contains("executor: \"embedded\""), "{shown}");
    assert!(shown.contains("InProcessTransport"), "{shown}");
}

#[test]
fn statistics_and_progress_types_cross_threads() {
    fn assert_send<T: Send>() {}
    assert_send_sync::<taskweave::ClientStats>();
    assert_send_sync::<taskweave::WorkerStats>();
    assert_send_sync::<taskweave::transport::TransportStats>();
    assert_clone::<taskweave::ClientStats>();
    // A stream of snapshots can be moved to the task that serves a dashboard.
    assert_send::<taskweave::StatsStream>();
    #[cfg(feature = "progress")]
    {
        assert_send_sync::<taskweave::Progress>();
        assert_send_sync::<taskweave::ProgressSummary>();
    }
}

/// The first generated keys of a fresh process: what a web service hands out first after
/// every restart.
fn first_keys_of_a_new_client() -> Vec<String> {
    let client = Client::new().unwrap();
    let futures = client.map(|x: u8| x, 0..3);
    let keys = futures.iter().map(|future| future.key().to_string()).collect();
    client.blocking().close().unwrap();
    keys
}

/// Generated keys differ between processes (they came from a counter with a fixed mix, so
/// the first job of every run had the same key), and within a process none repeats.
#[test]
fn generated_keys_differ_between_processes() {
    if std::env::var_os("TASKWEAVE_PRINT_FIRST_KEYS").is_some() {
        println!("KEYS={}", first_keys_of_a_new_client().join(","));
        return;
    }
    let run_child = || {
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["generated_keys_differ_between_processes", "--exact", "--nocapture"])
            .env("TASKWEAVE_PRINT_FIRST_KEYS", "1")
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let stdout = String::from_utf8(output.stdout).unwrap();
        let line = stdout.lines().find_map(|line| line.strip_prefix("KEYS=")).unwrap().to_owned();
        line.split(',').map(str::to_owned).collect::<Vec<_>>()
    };
    let first = run_child();
    let second = run_child();
    assert_eq!(first.len(), 3);
    for key in first.iter().chain(&second) {
        assert!(key.starts_with("closure-"), "{key}");
    }
    assert!(first.iter().all(|key| !second.contains(key)), "{first:?} vs {second:?}");
    let here = first_keys_of_a_new_client();
    assert!(here.iter().all(|key| !first.contains(key) && !second.contains(key)));
}

/// The default `allowed_failures` is Dask's (3), and the code, docs and README say so; it was
/// 2 while a comment said "as in Dask".
#[test]
fn allowed_failures_defaults_to_dask_s_three() {
    assert_eq!(taskweave::scheduler::DEFAULT_ALLOWED_FAILURES, 3);
    let readme = include_str!("../README.md");
    assert!(readme.contains("`allowed_failures` defaults to 3, as in Dask"));
}

/// A dedicated thread of the tokio executor runs inside the runtime's context, so that code on
/// it may spawn on tokio: a Redis worker's runner thread reconnecting through the redis crate
/// (which spawns on the runtime its connection was made on) once panicked with "there is no
/// reactor running" and left its task hanging. The thread still counts as taskweave's async
/// context by taskweave's own mark, not by the runtime's.
#[cfg(feature = "tokio")]
#[test]
fn a_tokio_dedicated_thread_may_spawn_on_its_runtime() {
    use taskweave::Executor;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
    let executor = taskweave::runtimes::tokio::TokioExecutor::from_handle(runtime.handle().clone());
    let (answer, answered) = std::sync::mpsc::channel();
    executor
        .spawn_dedicated(
            "probe",
            Box::pin(async move {
                let spawned =
                    tokio::runtime::Handle::try_current().map(|handle| handle.spawn(async { 7 }));
                let _ = answer.send((
                    spawned.is_ok(),
                    taskweave::runtimes::tokio::TokioExecutor::is_inside_runtime(),
                    taskweave::executor::is_async_context(),
                ));
            }),
        )
        .unwrap();
    let (spawned, inside, marked) =
        answered.recv_timeout(std::time::Duration::from_secs(10)).expect("the thread answers");
    assert!(spawned, "tokio::spawn works on a dedicated thread");
    assert!(!inside, "a dedicated thread is not an ambient tokio runtime for taskweave");
    assert!(marked, "a dedicated thread counts as an async context by taskweave's mark");
}
