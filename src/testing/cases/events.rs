//! Task events (`task_stream`, `story`) on every transport, with registered tasks. A
//! transport that does not say who ran a task or when it started leaves `worker` and
//! `start` empty; everything else is the client's own record. One that says
//! (`run_reports`) is held to it.

use std::collections::HashMap;

use crate::Client;
use crate::events::{RunStatus, TaskTransition};
use crate::testing::tasks::{Add, EvenOnly, Sum};

pub async fn task_stream_has_each_run_once_and_story_tells_a_task_in_order(client: Client) {
    let since = client.elapsed();
    let futures = client.map_task::<Add>((0..20).map(|i| (i, 1)));
    client.gather(&futures).await.unwrap();
    let mut runs = HashMap::new();
    for record in client.task_stream(since..) {
        assert!(record.stop >= since, "{record:?}");
        if let Some(start) = record.start {
            assert!(since <= start && start <= record.stop, "{record:?}");
        }
        if futures.iter().any(|future| future.key() == &record.key) {
            assert_eq!(record.status, RunStatus::Finished, "{record:?}");
            assert_eq!(&*record.name, "conformance.add");
            *runs.entry(record.key).or_insert(0) += 1;
        }
    }
    assert_eq!(runs.len(), 20, "one record per task");
    assert!(runs.values().all(|&count| count == 1), "{runs:?}");

    let story = client.story(&futures[3]);
    for pair in story.windows(2) {
        assert!(pair[0].at <= pair[1].at, "in time order: {story:#?}");
    }
    let steps: Vec<_> = story.into_iter().map(|event| event.transition).collect();
    assert_eq!(steps.first(), Some(&TaskTransition::Submitted), "{steps:#?}");
    assert!(steps.contains(&TaskTransition::Queued { attempt: 1 }), "{steps:#?}");
    assert!(
        matches!(steps.last(), Some(TaskTransition::Finished { attempt: 1, .. })),
        "{steps:#?}"
    );
}

pub async fn story_of_a_failed_dependent_names_the_root_task(client: Client) {
    let broken = client.submit_task::<EvenOnly>(1);
    let dependent = client.after(&broken).submit_task::<Sum>();
    assert!(dependent.clone().await.is_err());
    let steps: Vec<_> = client.story(&broken).into_iter().map(|event| event.transition).collect();
    assert!(
        matches!(steps.last(), Some(TaskTransition::RunFailed { attempt: 1, .. })),
        "{steps:#?}"
    );
    let steps: Vec<_> =
        client.story(&dependent).into_iter().map(|event| event.transition).collect();
    match steps.last() {
        Some(TaskTransition::Failed { error }) => assert_eq!(error.root().key(), broken.key()),
        other => panic!("expected the dependent to fail naming its root, got {other:?}"),
    }
}

pub async fn every_run_names_its_worker_and_start_in_the_stream_and_the_story(client: Client) {
    let since = client.elapsed();
    let futures = client.map_task::<Add>((0..10).map(|i| (i, 1)));
    let broken = client.submit_task::<EvenOnly>(1);
    client.gather(&futures).await.unwrap();
    assert!(broken.clone().await.is_err());
    let until = client.elapsed();
    let records = client.task_stream(since..);
    let mut keys: Vec<_> = futures.iter().map(|future| future.key()).collect();
    keys.push(broken.key());
    for key in keys {
        let record = records.iter().find(|record| &record.key == key);
        let record = record.unwrap_or_else(|| panic!("no record of {key}: {records:#?}"));
        let worker = record.worker.as_deref().unwrap_or_default();
        assert!(!worker.is_empty(), "a run without its worker: {record:?}");
        let start = record.start.unwrap_or_else(|| panic!("a run without its start: {record:?}"));
        assert!(since <= start && start <= record.stop && record.stop <= until, "{record:?}");
        let expected = if key == broken.key() { RunStatus::Failed } else { RunStatus::Finished };
        assert_eq!(record.status, expected, "{record:?}");
    }
    let story = client.story(&broken);
    for pair in story.windows(2) {
        assert!(pair[0].at <= pair[1].at, "in time order: {story:#?}");
    }
    let steps: Vec<_> = story.into_iter().map(|event| event.transition).collect();
    assert!(
        matches!(
            &steps[..],
            [
                TaskTransition::Submitted,
                TaskTransition::Queued { attempt: 1 },
                TaskTransition::Started { worker: Some(_), attempt: 1 },
                TaskTransition::RunFailed { worker: Some(_), attempt: 1, .. },
            ]
        ),
        "{steps:#?}"
    );
}
