//! Task events (`task_stream`, `story`) on every transport, with registered tasks. A
//! transport that does not say who ran a task or when it started leaves `worker` and
//! `start` empty; everything else is the client's own record.

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
