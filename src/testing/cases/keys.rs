//! Keys: which submissions share a task and which never do (Dask's `key=` rules).

use std::collections::HashSet;

use crate::Client;

use crate::testing::tasks::Add;

fn inc(x: i64) -> i64 {
    x + 1
}

fn texts<T>(futures: &[crate::TaskFuture<T>]) -> Vec<String> {
    futures.iter().map(|future| future.key().to_string()).collect()
}

/// A `key` given to a pure `map` is a prefix: each item gets its own key and its own value
/// (it used to give every item the one key, and so the first item's value).
pub async fn a_key_given_to_a_pure_map_is_a_prefix_per_item(client: Client) {
    let futures = client.task().pure().key("inc").map(inc, 0..4);
    assert_eq!(client.gather(&futures).await.unwrap(), vec![1, 2, 3, 4]);
    let keys = texts(&futures);
    assert_eq!(keys.iter().collect::<HashSet<_>>().len(), 4, "{keys:?}");
    for key in &keys {
        assert!(key.starts_with("inc-") && key.len() == "inc-".len() + 16, "{key}");
    }
    // Pure: the same function and items under the same prefix share the tasks.
    let again = client.task().pure().key("inc").map(inc, 0..4);
    assert_eq!(texts(&again), keys);
}

/// A `key` given to an impure `map` is a prefix with a fresh token per item: a second map
/// under the same prefix, while the first is held, runs its own items (it used to return the
/// first map's values).
pub async fn a_key_given_to_an_impure_map_never_returns_another_maps_values(client: Client) {
    let first = client.task().key("inc").map(inc, [0, 1, 2, 3]);
    let second = client.task().key("inc").map(inc, [5, 6, 7, 8]);
    assert_eq!(client.gather(&first).await.unwrap(), vec![1, 2, 3, 4]);
    assert_eq!(client.gather(&second).await.unwrap(), vec![6, 7, 8, 9]);
    let all: HashSet<String> = texts(&first).into_iter().chain(texts(&second)).collect();
    assert_eq!(all.len(), 8, "every item has its own key: {all:?}");
    assert!(all.iter().all(|key| key.starts_with("inc-")), "{all:?}");
}

/// Explicit keys, one per item, are used verbatim and shared like any explicit key.
pub async fn map_with_keys_uses_each_key_verbatim(client: Client) {
    let futures = client.task().map_with_keys(inc, [("x-1", 1), ("x-2", 2)]);
    assert_eq!(texts(&futures), ["x-1", "x-2"]);
    assert_eq!(client.gather(&futures).await.unwrap(), vec![2, 3]);
    let shared = client.task().key("x-2").submit(inc, 100);
    assert_eq!(shared.await.unwrap(), 3, "an explicit key held by the map is shared");
}

/// Generated keys of two clients never meet, even for the same task and inputs in the same
/// order (on a broker, clients of one namespace share the key space). The other client is an
/// in-process one: each client makes its keys itself, whatever its transport.
pub async fn generated_keys_differ_between_clients(client: Client) {
    let other = Client::builder().shared_executor(client.executor().clone()).workers(1).build();
    let other = other.await.unwrap();
    let inputs = || (0..50).map(|x| (x, 1));
    let ours = client.map_task::<Add>(inputs());
    let theirs = other.map_task::<Add>(inputs());
    let ours_keys: HashSet<String> = texts(&ours).into_iter().collect();
    assert_eq!(ours_keys.len(), 50);
    assert!(texts(&theirs).iter().all(|key| !ours_keys.contains(key)));
    assert_eq!(other.gather(&theirs).await.unwrap(), client.gather(&ours).await.unwrap());
    other.close().await.unwrap();
}

/// The registered-task twin of the impure rule: a keyed `map_task` gives each input its own
/// task (on every transport).
pub async fn a_key_given_to_map_task_is_a_prefix_per_input(client: Client) {
    let first = client.task().key("add").map_task::<Add>([(1, 1), (2, 2)]);
    let second = client.task().key("add").map_task::<Add>([(10, 10), (20, 20)]);
    assert_eq!(client.gather(&first).await.unwrap(), vec![2, 4]);
    assert_eq!(client.gather(&second).await.unwrap(), vec![20, 40]);
    let keys: HashSet<String> = texts(&first).into_iter().chain(texts(&second)).collect();
    assert_eq!(keys.len(), 4, "{keys:?}");
}

/// Options may come before the dependencies: `client.task().key(..).after(&x)` keeps them.
pub async fn options_given_before_dependencies_are_kept(client: Client) {
    let x = client.submit(inc, 1);
    let y = client.task().key("y").priority(3).retries(1).after(&x).submit(|x: i64| x * 10);
    assert_eq!(y.key().to_string(), "y");
    assert_eq!((&y).await.unwrap(), 20);
    fn double(x: i64) -> i64 {
        x * 2
    }
    let first = client.task().pure().after(&x).submit(double);
    let second = client.after(&x).pure().submit(double);
    assert_eq!(first.key(), second.key(), "pure before or after `after`: one key");
    assert_eq!(second.await.unwrap(), 4);
}

/// Options on a graph: retries apply to every node (a flaky inner node succeeds), a key
/// names the output node only.
pub async fn options_on_a_graph_apply_to_its_nodes_and_the_key_to_its_output(client: Client) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    let calls = Arc::new(AtomicU32::new(0));
    let flaky = {
        let calls = Arc::clone(&calls);
        move |x: i64| {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("the first call fails");
            }
            x + 1
        }
    };
    let graph = crate::delayed(flaky, 1).then(|x: i64| x * 10);
    let value = client.task().key("graph-output").retries(1).compute(&graph).await.unwrap();
    assert_eq!(value, 20);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "the inner node was retried once");
    let future = client.task().key("graph-output").persist(&graph);
    assert_eq!(future.key().to_string(), "graph-output");
    // Without retries, the same flaky graph fails.
    let calls = Arc::new(AtomicU32::new(0));
    let flaky = move |x: i64| {
        if calls.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("the first call fails");
        }
        x + 1
    };
    let graph = crate::delayed(flaky, 1).then(|x: i64| x * 10);
    assert!(client.compute(&graph).await.is_err());
}
