//! `gather` over structures: tuples of different types, maps, nested vectors.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::testing::tasks::{Add, EvenOnly, Upper, Verbose};
use crate::{Client, Error, TaskError};

use super::eventually;

pub async fn gather_takes_tuples_maps_and_nested_vectors(client: Client) {
    let number = client.submit_task::<Add>((1, 1));
    let text = client.submit_task::<Upper>("two".to_owned());
    let list = client.map_task::<Add>((0..3).map(|x| (x, x)));
    let (n, t, l) = client.gather((&number, &text, &list)).await.unwrap();
    assert_eq!((n, t.as_str(), l), (2, "TWO", vec![0, 2, 4]));

    let by_name: HashMap<String, _> =
        (0..20).map(|i| (format!("k{i}"), client.submit_task::<Add>((i, i * i)))).collect();
    let values = client.gather(&by_name).await.unwrap();
    assert_eq!(values.len(), 20);
    assert_eq!(values["k7"], 56);
    let ordered: BTreeMap<u8, _> =
        (0..5).map(|i| (i, client.submit_task::<Add>((i64::from(i), 100)))).collect();
    assert_eq!(client.gather(&ordered).await.unwrap()[&4], 104);

    let grid: Vec<Vec<_>> =
        (0..4).map(|row| client.map_task::<Add>((0..3).map(move |x| (row * 10, x)))).collect();
    let values = client.gather(&grid).await.unwrap();
    assert_eq!(values[3], vec![30, 31, 32]);

    // One future alone, and an owned vector.
    assert_eq!(client.gather(&number).await.unwrap(), 2);
    assert_eq!(client.gather(list).await.unwrap(), vec![0, 2, 4]);
}

pub async fn gather_of_a_tuple_raises_the_first_error_in_order(client: Client) {
    let fine = client.submit_task::<Add>((1, 0));
    let broken = client.submit_task::<EvenOnly>(3);
    let also_broken = client.submit_task::<Verbose>(10);
    match client.gather((&fine, &broken, &also_broken)).await {
        Err(Error::Task(TaskError::Failed { key, message })) => {
            assert_eq!(&key, broken.key());
            assert_eq!(message, "odd 3");
        }
        other => panic!("expected the first failure, got {other:?}"),
    }
}

/// Scatter with an explicit key, by content (`pure`), and of a collection one future per
/// element.
pub async fn scatter_by_key_by_content_and_per_element(client: Client) {
    let table = client.task().key("table").scatter(vec![1, 2, 3]);
    assert_eq!(table.key().to_string(), "table");
    let again = client.task().key("table").scatter(vec![9]);
    assert_eq!(again.await.unwrap(), vec![1, 2, 3], "a held key keeps its value");
    let reader = client.task().key("table").submit(|_: ()| vec![0], ());
    assert_eq!(reader.await.unwrap(), vec![1, 2, 3], "a submission finds the scattered key");

    let first = client.task().pure().scatter(String::from("settings"));
    let same = client.task().pure().scatter(String::from("settings"));
    let other = client.task().pure().scatter(String::from("other"));
    assert_eq!(first.key(), same.key());
    assert_ne!(first.key(), other.key());
    assert!(first.key().to_string().starts_with("String-"), "{}", first.key());
    let plain_a = client.scatter(String::from("settings"));
    let plain_b = client.scatter(String::from("settings"));
    assert_ne!(plain_a.key(), plain_b.key(), "without pure, every scatter is its own");

    let parts = client.scatter_each(vec![vec![1u8, 2], vec![3]]);
    assert_eq!(parts.len(), 2);
    let sizes = client.map_after(&parts, |part: Vec<u8>| part.len());
    assert_eq!(client.gather(&sizes).await.unwrap(), vec![2, 1]);
    let hashed = client.task().pure().scatter_each([7u32, 7, 8]);
    assert_eq!(hashed[0].key(), hashed[1].key());
    assert_ne!(hashed[0].key(), hashed[2].key());
    drop(table);
}

/// `map` over several lists of futures (and scattered values): one task per zipped item,
/// the shortest list wins; a key is a prefix per item.
pub async fn map_after_each_zips_futures_and_values(client: Client) {
    let xs = client.map(|x: i64| x + 1, 0..3);
    let ys = client.scatter_each([10_i64, 20, 30, 40]);
    fn add((x, y): (i64, i64)) -> i64 {
        x + y
    }
    let sums = client.map_after_each(add, xs.iter().zip(&ys));
    assert_eq!(client.gather(&sums).await.unwrap(), vec![11, 22, 33]);
    assert!(sums[0].key().to_string().starts_with("add-"), "{}", sums[0].key());
    let keyed = client.task().key("sum").map_after_each(add, xs.iter().zip(&ys));
    let again =
        client.task().key("sum").map_after_each(|(x, y): (i64, i64)| x * y, xs.iter().zip(&ys));
    assert_eq!(client.gather(&keyed).await.unwrap(), vec![11, 22, 33]);
    assert_eq!(client.gather(&again).await.unwrap(), vec![10, 40, 90], "a prefix shares nothing");
    assert!(keyed.iter().all(|f| f.key().to_string().starts_with("sum-")));
}

/// `map_after` and `persist` hand their tasks to the scheduler together, after the last one
/// is made: dependents still find their inputs (nodes shared in a graph too), values arrive
/// in order, and every task is forgotten once its futures are gone.
pub async fn submissions_made_together_keep_their_inputs_until_submitted(client: Client) {
    let inputs = client.map(|x: i64| x * 2, 0..100_i64);
    let outputs = client.map_after(&inputs, |x: i64| x + 1);
    drop(inputs);
    let expected: Vec<i64> = (0..100).map(|i| i * 2 + 1).collect();
    assert_eq!(client.gather(&outputs).await.unwrap(), expected);
    let shared = crate::delayed(|x: i64| x + 1, 1);
    let graph = crate::delayed_after((&shared, &shared.then(|x: i64| x * 10)), |(a, b)| a + b);
    assert_eq!(client.compute(&graph).await.unwrap(), 22);
    drop(outputs);
    let stats_client = client.clone();
    eventually(&client, Duration::from_secs(10), "release of every task", move || {
        stats_client.stats().tasks.held() == 0
    })
    .await;
}

/// `client.batch` submits what it builds together, at its end: dependents find their
/// inputs, a future dropped inside is released once the batch is in, and a future used
/// inside — its state asked, a cancel, a blocking wait from a plain thread — is known to the
/// scheduler by then (what is held back goes first).
pub async fn a_batch_submits_its_graph_together_and_its_futures_work_inside_it(client: Client) {
    let root = client.batch(|client| {
        let mut level = client.map_task::<Add>((0..64).map(|i| (i, 1)));
        let dropped = client.after((&level[0], &level[1])).submit_task::<Add>();
        drop(dropped);
        while level.len() > 1 {
            level = level
                .chunks(2)
                .map(|pair| client.after((&pair[0], &pair[1])).submit_task::<Add>())
                .collect();
        }
        level.pop().expect("one root")
    });
    assert_eq!(root.await.unwrap(), 64 * 65 / 2);

    // A cancel inside the batch cancels the task (without the held-back part reaching the
    // scheduler first, it would cancel nothing, and the task would run at the batch's end).
    let (cancelled, state) = client.batch(|client| {
        let input = client.submit_task::<Add>((1, 2));
        let sum = client.after((&input, &input)).submit_task::<Add>();
        sum.cancel();
        let state = sum.state();
        (sum, state)
    });
    assert_eq!(state, Some(crate::scheduler::TaskState::Cancelled));
    let outcome = cancelled.await;
    assert!(matches!(&outcome, Err(error) if error.is_cancelled()), "{outcome:?}");

    // A blocking wait inside a batch (from a plain thread) waits for a task that runs.
    let thread_client = client.clone();
    let (finished, thread_finished) = futures::channel::oneshot::channel::<i64>();
    let thread = std::thread::spawn(move || {
        let value = thread_client.batch(|client| {
            let input = client.submit_task::<Add>((20, 1));
            let doubled = client.after((&input, &input)).submit_task::<Add>();
            doubled.result().unwrap()
        });
        let _ = finished.send(value);
    });
    // Await rather than join: on a current-thread runtime, blocking here would stall the
    // async tasks the thread waits for.
    assert_eq!(thread_finished.await.unwrap(), 42);
    thread.join().unwrap();

    let stats_client = client.clone();
    eventually(&client, Duration::from_secs(10), "release of every task", move || {
        stats_client.stats().tasks.held() == 0
    })
    .await;
}
