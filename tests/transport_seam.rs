//! The `Transport` seam from a third party's side: a transport written against the public API
//! alone reports each kind of `TaskOutcome`, and the client's futures say what happened.

use std::collections::BTreeMap;
use std::error::Error as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use taskweave::executor::BoxFuture;
use taskweave::transport::{
    CompletionSink, ReadyTask, TaskFailure, TaskOutcome, Transport, TransportStats, WorkerInfo,
};
use taskweave::{Client, Error, Executor, ExecutorExt, Task, TaskError};

fn assert_send_sync<T: Send + Sync>() {}
fn assert_clone<T: Clone>() {}

#[test]
fn the_seam_types_can_be_carried_to_any_thread() {
    assert_send_sync::<ReadyTask>();
    assert_send_sync::<CompletionSink>();
    assert_send_sync::<TaskOutcome>();
    assert_send_sync::<TaskFailure>();
    assert_send_sync::<TransportStats>();
    assert_send_sync::<WorkerInfo>();
    assert_clone::<ReadyTask>();
    assert_clone::<CompletionSink>();
    assert_clone::<TaskOutcome>();
}

/// What the scripted transport does with each run of a task, by attempt.
type Script = fn(&ReadyTask) -> Option<TaskOutcome>;

/// Runs every body on the executor, unless `script` answers an outcome of its own for a run.
#[derive(Debug)]
struct Scripted {
    script: Script,
    started: OnceLock<(Arc<dyn Executor>, CompletionSink)>,
    attempts: Arc<Mutex<Vec<u32>>>,
}

impl Scripted {
    fn new(script: Script) -> Scripted {
        Scripted { script, started: OnceLock::new(), attempts: Arc::default() }
    }
}

impl Transport for Scripted {
    fn name(&self) -> &'static str {
        "scripted"
    }

    fn capacity(&self) -> usize {
        2
    }

    fn start(&self, executor: Arc<dyn Executor>, sink: CompletionSink) -> Result<(), Error> {
        let _ = self.started.set((executor, sink));
        Ok(())
    }

    fn dispatch(&self, task: ReadyTask) {
        let (executor, sink) = self.started.get().expect("started").clone();
        self.attempts.lock().unwrap().push(task.attempt());
        if let Some(outcome) = (self.script)(&task) {
            return sink.complete(&task, outcome);
        }
        let spawned = executor.spawn_blocking(Box::new(move || {
            let outcome = task.run();
            sink.complete(&task, outcome);
        }));
        spawned.expect("the executor runs blocking work");
    }

    fn close(&self) -> BoxFuture<()> {
        Box::pin(async {})
    }
}

fn client_on(transport: Scripted) -> Client {
    Client::builder().transport(transport).build_blocking().expect("the client starts")
}

#[test]
fn a_task_reported_lost_runs_again_as_its_next_attempt() {
    let transport = Scripted::new(|task| (task.attempt() == 1).then_some(TaskOutcome::Lost));
    let attempts = Arc::clone(&transport.attempts);
    let client = client_on(transport);
    let future = client.submit(|x: u32| x * 2, 21);
    assert_eq!(future.result().expect("the second attempt runs"), 42);
    assert_eq!(*attempts.lock().unwrap(), [1, 2]);
}

#[test]
fn a_task_lost_more_often_than_allowed_fails_as_lost() {
    let client = client_on(Scripted::new(|_| Some(TaskOutcome::Lost)));
    let future = client.task().allowed_failures(1).submit(|x: u32| x, 1);
    let error = future.result().expect_err("lost twice");
    assert!(matches!(error, Error::Task(TaskError::WorkerLost { attempts: 2, .. })), "{error:?}");
}

#[test]
fn a_task_reported_not_run_without_a_cancel_fails_saying_so() {
    let client = client_on(Scripted::new(|_| Some(TaskOutcome::NotRun)));
    let error = client.submit(|x: u32| x, 1).result().expect_err("never ran");
    let Error::Task(TaskError::Failed { message, .. }) = &error else {
        panic!("expected a failure, got {error:?}")
    };
    assert!(message.contains("not run") && message.contains("scripted"), "{message}");
    // The slot was given back: the next task runs.
    let client = client_on(Scripted::new(|task| {
        (task.key().to_string() == "first").then_some(TaskOutcome::NotRun)
    }));
    let first = client.task().key("first").submit(|x: u32| x, 1);
    let second = client.submit(|x: u32| x + 1, 1);
    assert!(first.result().is_err());
    assert_eq!(second.result().expect("the slot was freed"), 2);
}

#[test]
fn a_failure_keeps_its_text_and_its_source() {
    let client = client_on(Scripted::new(|_| {
        let cause = "x".parse::<u8>().expect_err("not a number");
        Some(TaskOutcome::Failed(TaskFailure::with_source("the worker could not parse", cause)))
    }));
    let error = client.submit(|x: u32| x, 1).result().expect_err("failed");
    assert!(
        error.to_string().contains("the worker could not parse: invalid digit found in string"),
        "{error}"
    );
}

/// A registered task whose input JSON cannot encode (a map with non-string keys).
struct Tally;

impl Task for Tally {
    const NAME: &'static str = "tally";
    type Input = BTreeMap<(u8, u8), u8>;
    type Output = u8;
    type Error = std::convert::Infallible;

    fn run(input: Self::Input) -> Result<u8, Self::Error> {
        Ok(input.values().sum())
    }
}

#[test]
fn an_input_that_does_not_encode_is_a_serialization_error_with_its_source() {
    // A transport for workers in other processes encodes each registered task's input.
    let client = client_on(Scripted::new(|task| {
        let error = task.encode_input().expect("a registered task").expect_err("tuple keys");
        assert!(matches!(error, Error::Serialization(_)), "{error:?}");
        let source = error.source().expect("the encoder's error is kept");
        assert!(source.to_string().contains("key must be a string"), "{source}");
        Some(TaskOutcome::Failed(TaskFailure::from_error(error)))
    }));
    let future = client.submit_task::<Tally>(BTreeMap::from([((1, 2), 3)]));
    let error = future.result().expect_err("the input does not encode");
    assert!(error.to_string().contains("key must be a string"), "{error}");
}

#[test]
fn bytes_that_do_not_decode_fail_the_task_with_the_decoders_error() {
    let client = client_on(Scripted::new(|task| Some(task.decode_output(b"\"not a number\""))));
    let future = client.submit_task::<Tally>(BTreeMap::new());
    let error = future.result().expect_err("the output does not decode");
    let text = error.to_string();
    assert!(text.contains("does not decode as the output of tally"), "{text}");
    assert!(text.contains("invalid type"), "{text}");
}

#[test]
fn an_async_body_cancelled_while_it_runs_is_stopped_and_reports_not_run() {
    /// Spawns async bodies on the executor and records what they report.
    #[derive(Debug)]
    struct AsyncOnly {
        started: OnceLock<(Arc<dyn Executor>, CompletionSink)>,
        reports: Mutex<std::sync::mpsc::Sender<String>>,
    }
    impl Transport for AsyncOnly {
        fn name(&self) -> &'static str {
            "async-only"
        }
        fn capacity(&self) -> usize {
            1
        }
        fn start(&self, executor: Arc<dyn Executor>, sink: CompletionSink) -> Result<(), Error> {
            let _ = self.started.set((executor, sink));
            Ok(())
        }
        fn dispatch(&self, task: ReadyTask) {
            let (executor, sink) = self.started.get().expect("started").clone();
            let reports = self.reports.lock().unwrap().clone();
            executor
                .spawn_task(async move {
                    let outcome = task.run_async().await;
                    let _ = reports.send(format!("{outcome:?}"));
                    sink.complete(&task, outcome);
                })
                .expect("spawned");
        }
        fn close(&self) -> BoxFuture<()> {
            Box::pin(async {})
        }
    }
    let (reports, reported) = std::sync::mpsc::channel();
    let transport = AsyncOnly { started: OnceLock::new(), reports: Mutex::new(reports) };
    let client = Client::builder().transport(transport).build_blocking().expect("started");
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let started_tx = Mutex::new(started_tx);
    let future = client.submit_async(
        move |_: ()| {
            let _ = started_tx.lock().unwrap().send(());
            futures::future::pending::<u8>()
        },
        (),
    );
    started_rx.recv_timeout(Duration::from_secs(10)).expect("the body started");
    future.cancel();
    let report = reported.recv_timeout(Duration::from_secs(10)).expect("the body was stopped");
    assert_eq!(report, "NotRun");
}
