use crate::testing::tasks::{Add, EvenOnly, Gate, Gated};
use crate::{Client, Error, ExecutorExt, TaskError};

pub async fn panicking_task_gives_panicked_and_next_task_still_runs(client: Client) {
    let boom = client.submit(|_: ()| -> i32 { panic!("boom at the worker") }, ());
    match boom.await {
        Err(TaskError::Panicked { key, message }) => {
            assert!(message.contains("boom at the worker"), "message: {message}");
            assert!(key.to_string().starts_with("closure-"), "key: {key}");
        }
        other => panic!("expected Panicked, got {other:?}"),
    }
    // Every worker is still there: more tasks than workers all run.
    let after = client.map(|x: i32| x + 1, 0..8);
    assert_eq!(client.gather(&after).await.unwrap(), (1..9).collect::<Vec<_>>());
}

pub async fn failing_task_gives_failed_with_its_message(client: Client) {
    let parsed = client.try_submit(|text: String| text.parse::<i32>(), "forty-two".to_string());
    let error = parsed.await.unwrap_err();
    match &error {
        TaskError::Failed { message, .. } => {
            assert!(message.contains("invalid digit"), "{message}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert!(error.to_string().starts_with("task closure-"), "{error}");
    // The client keeps working.
    assert_eq!(client.submit(|x: i32| x, 3).await.unwrap(), 3);
}

pub async fn gather_raises_the_first_error_in_input_order(client: Client) {
    let futures: Vec<_> = (0..6)
        .map(|i| {
            client.try_submit(|x: i32| if x % 2 == 1 { Err(format!("odd {x}")) } else { Ok(x) }, i)
        })
        .collect();
    match client.gather(&futures).await {
        Err(Error::Task(TaskError::Failed { message, .. })) => assert_eq!(message, "odd 1"),
        other => panic!("expected the error of item 1, got {other:?}"),
    }
}

pub async fn gather_reports_an_error_without_waiting_for_later_tasks(client: Client) {
    // The last task cannot finish until gather has returned: gather must report the first
    // task's error as soon as it is known, not wait for every task.
    let gate = Gate::new();
    let failing = client.submit_task::<EvenOnly>(1);
    let blocked = client.submit_task::<Gated>(gate.input(7));
    match client.gather(&[failing, blocked.clone()]).await {
        Err(Error::Task(TaskError::Failed { message, .. })) => assert_eq!(message, "odd 1"),
        other => panic!("expected the first task's error, got {other:?}"),
    }
    gate.open();
    assert_eq!(blocked.await.unwrap(), 7);
}

pub async fn blocking_call_inside_async_is_refused(client: Client) {
    let future = client.submit_task::<Add>((1, 0));
    let (report, reported) = futures::channel::oneshot::channel();
    let inside = future.clone();
    let inside_client = client.clone();
    client
        .executor()
        .spawn_task(async move {
            let from_result = inside.result();
            let from_view = inside_client.blocking().gather(std::slice::from_ref(&inside));
            let _ = report.send((from_result, from_view));
        })
        .unwrap();
    let (from_result, from_view) = reported.await.unwrap();
    assert!(matches!(from_result, Err(Error::BlockingInAsyncContext)), "{from_result:?}");
    assert!(matches!(from_view, Err(Error::BlockingInAsyncContext)), "{from_view:?}");
    let message = from_result.unwrap_err().to_string();
    assert!(message.contains("use the async method with .await"), "{message}");
    // The same calls work from a plain thread; awaited, not joined (joining would block this
    // executor's thread, which may be the one driving the transport's I/O).
    let outside = future.clone();
    let (report, answer) = futures::channel::oneshot::channel();
    std::thread::spawn(move || {
        let _ = report.send(outside.result());
    });
    assert_eq!(answer.await.expect("the thread reports").unwrap(), 1);
}

/// Checks that `error` is a bounded copy of a `FIRST…LAST` text far longer than the bound.
fn assert_bounded(error: &TaskError) {
    let text = match error {
        TaskError::Failed { message, .. } | TaskError::Panicked { message, .. } => message,
        other => panic!("expected a failure, got {other:?}"),
    };
    assert!(text.len() <= crate::MAX_ERROR_TEXT + 100, "{} bytes kept", text.len());
    assert!(text.starts_with("FIRST") && text.ends_with("LAST"), "start and end are kept");
    assert!(text.contains("bytes of this error cut"));
}

/// A 100,000-byte error (or panic message) is bounded before it is stored and logged; it
/// came back whole.
pub async fn a_huge_error_text_is_bounded(client: Client) {
    let long = || format!("FIRST{}LAST", "x".repeat(100_000));
    let failed = client.try_submit(|text: String| Err::<(), String>(text), long());
    assert_bounded(&failed.await.unwrap_err());
    let panicked = client.submit(|text: String| -> () { std::panic::panic_any(text) }, long());
    assert_bounded(&panicked.await.unwrap_err());
    // Short errors are untouched.
    let short = client.try_submit(|_: ()| Err::<(), _>("short"), ());
    assert!(matches!(short.await, Err(TaskError::Failed { message, .. }) if message == "short"));
}

/// The registered twin: on Redis the worker bounds the text before it is sent.
pub async fn a_huge_registered_error_text_is_bounded(client: Client) {
    let failed = client.submit_task::<crate::testing::tasks::Verbose>(100_000);
    assert_bounded(&failed.await.unwrap_err());
}
