//! Cases of the coordination primitives (the `coordination` capability), written with
//! registered tasks so that they run on the in-process and the Redis backends alike:
//! published datasets.

use crate::testing::tasks::{Add, EvenOnly};
use crate::{Client, Error};

/// The name and the problem of an [`Error::Coordination`] about a dataset, or a failure
/// naming what came instead.
fn dataset_problem<T: std::fmt::Debug>(result: Result<T, Error>) -> (String, String) {
    match result {
        Err(Error::Coordination { primitive: "dataset", name, problem }) => (name, problem),
        other => panic!("expected a dataset's coordination error, got {other:?}"),
    }
}

/// A published dataset outlives the future that made it (in-process the task, on Redis a
/// copy of its value), is listed, read back (with the blocking twins too, from a plain
/// thread), and is gone once unpublished; futures read before keep their values.
pub async fn a_published_dataset_outlives_its_future_until_unpublished(client: Client) {
    let answer = client.submit_task::<Add>((40, 2));
    client.publish_dataset("answer", &answer).await.unwrap();
    drop(answer);
    let words = client.scatter(vec!["a".to_owned(), "b".to_owned()]);
    client.publish_dataset("words", &words).await.unwrap();
    drop(words);
    assert_eq!(client.list_datasets().await.unwrap(), ["answer", "words"]);
    let read = client.dataset::<i64>("answer").await.unwrap();
    assert_eq!((&read).await.unwrap(), 42);

    // The blocking twins, from a plain thread; its answer is awaited, not joined (joining
    // would block the thread that may drive the transport's I/O).
    let (report, answer) = futures::channel::oneshot::channel();
    let reader = client.clone();
    std::thread::spawn(move || {
        let blocking = reader.blocking();
        let words = blocking.dataset::<Vec<String>>("words").and_then(|words| words.result());
        let more = reader.submit_task::<Add>((1, 1));
        let published = blocking.publish_dataset("more", &more);
        let listed = blocking.list_datasets();
        let unpublished = blocking.unpublish_dataset("more");
        let _ = report.send((words, published, listed, unpublished));
    });
    let (words, published, listed, unpublished) = answer.await.expect("the thread reports");
    assert_eq!(words.unwrap(), ["a", "b"]);
    published.unwrap();
    assert_eq!(listed.unwrap(), ["answer", "more", "words"]);
    unpublished.unwrap();

    client.unpublish_dataset("answer").await.unwrap();
    assert_eq!(client.list_datasets().await.unwrap(), ["words"]);
    let (name, gone) = dataset_problem(client.dataset::<i64>("answer").await);
    assert_eq!(name, "answer");
    assert!(gone.contains("no dataset"), "{gone}");
    assert_eq!(read.await.unwrap(), 42, "a future read before the unpublish keeps its value");
    client.unpublish_dataset("words").await.unwrap();
    assert!(client.list_datasets().await.unwrap().is_empty());
}

/// Datasets given wrong input get errors that name the dataset and say what to do: a taken
/// name (and its replacement), another type, a name never published, a failed or cancelled
/// future, and any call after the client closed.
pub async fn datasets_given_wrong_input_get_clear_errors(client: Client) {
    let three = client.submit_task::<Add>((1, 2));
    client.publish_dataset("taken", &three).await.unwrap();
    let (name, twice) = dataset_problem(client.publish_dataset("taken", &three).await);
    assert_eq!(name, "taken");
    assert!(twice.contains("published already") && twice.contains("replace_dataset"), "{twice}");
    client.replace_dataset("taken", &client.submit_task::<Add>((2, 2))).await.unwrap();
    assert_eq!(client.dataset::<i64>("taken").await.unwrap().await.unwrap(), 4);

    let (name, wrong) = dataset_problem(client.dataset::<String>("taken").await);
    assert_eq!(name, "taken");
    assert!(wrong.contains("i64") && wrong.contains("String"), "{wrong}");

    let (_, unknown) = dataset_problem(client.dataset::<i64>("never").await);
    assert!(unknown.contains("no dataset") && unknown.contains("list_datasets"), "{unknown}");
    let (_, nothing) = dataset_problem(client.unpublish_dataset("never").await);
    assert!(nothing.contains("nothing to unpublish"), "{nothing}");

    let odd = client.submit_task::<EvenOnly>(3);
    assert!((&odd).await.is_err());
    let (name, failed) = dataset_problem(client.publish_dataset("odd", &odd).await);
    assert_eq!(name, "odd");
    let key = odd.key().to_string();
    assert!(failed.contains(&key) && failed.contains("odd 3"), "{failed}");
    let cancelled = client.submit_task::<Add>((5, 5));
    cancelled.cancel();
    let (_, refused) = dataset_problem(client.publish_dataset("cancelled", &cancelled).await);
    assert!(refused.contains("cancelled") && refused.contains("retry"), "{refused}");
    assert_eq!(client.list_datasets().await.unwrap(), ["taken"], "nothing failed is listed");
    client.unpublish_dataset("taken").await.unwrap();

    client.close().await.unwrap();
    let closed = client.publish_dataset("late", &three).await;
    assert!(matches!(closed, Err(Error::Closed { .. })), "{closed:?}");
    assert!(matches!(client.dataset::<i64>("taken").await, Err(Error::Closed { .. })));
    assert!(matches!(client.list_datasets().await, Err(Error::Closed { .. })));
    assert!(matches!(client.unpublish_dataset("taken").await, Err(Error::Closed { .. })));
}
