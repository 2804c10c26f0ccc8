use crate::Client;
use crate::testing::tasks::{Add, Gate, Gated};

pub async fn submit_then_await_gives_value(client: Client) {
    let future = client.submit(|x: i64| x + 1, 10);
    assert_eq!(future.await.unwrap(), 11);
}

pub async fn map_then_gather_keeps_order(client: Client) {
    // Later items finish first: gather must still return input order.
    let futures = client.map(
        |x: u64| {
            std::thread::sleep(std::time::Duration::from_micros(50 * (20 - x)));
            x * 10
        },
        0..20,
    );
    let values = client.gather(&futures).await.unwrap();
    assert_eq!(values, (0..20).map(|x| x * 10).collect::<Vec<_>>());
}

pub async fn map_of_nothing_gives_nothing(client: Client) {
    let futures = client.map(|x: i32| x, Vec::<i32>::new());
    assert!(futures.is_empty());
    assert_eq!(client.gather(&futures).await.unwrap(), Vec::<i32>::new());
}

pub async fn a_long_map_keeps_order_and_shares_repeated_pure_items(client: Client) {
    // Long enough to be submitted in several batches under the scheduler lock.
    let futures = client.map(|x: u64| x + 1, 0..1_000);
    let values = client.gather(&futures).await.unwrap();
    assert_eq!(values, (1..=1_000).collect::<Vec<_>>());
    // A pure map shares one task between equal items, also within one batch.
    fn double(x: u64) -> u64 {
        x * 2
    }
    let items: Vec<u64> = (0..200).map(|i| i % 7).collect();
    let futures = client.task().pure().map(double, items.clone());
    for (future, item) in futures.iter().zip(&items) {
        assert_eq!(future.key(), futures[*item as usize].key());
    }
    let values = client.gather(&futures).await.unwrap();
    assert_eq!(values, items.iter().map(|x| x * 2).collect::<Vec<_>>());
}

pub async fn a_tree_of_sums_sees_every_value_as_soon_as_it_is_reported(client: Client) {
    // Two workers finishing siblings at the same moment: the dependent runs as soon as the
    // second report reaches the scheduler, possibly before the first reporter has published
    // its value. (A regression test: that gap once gave "dependency ... has no value".)
    for _ in 0..4 {
        let mut level = client.map_task::<Add>((0..512).map(|i| (i, 1)));
        while level.len() > 1 {
            level = level
                .chunks(2)
                .map(|pair| client.after((&pair[0], &pair[1])).submit_task::<Add>())
                .collect();
        }
        assert_eq!(level[0].clone().await.unwrap(), 512 * 513 / 2);
    }
}

pub async fn ten_thousand_tasks_all_return(client: Client) {
    let futures: Vec<_> = (0..10_000u64).map(|i| client.submit(|x: u64| x * 2, i)).collect();
    let values = client.gather(&futures).await.unwrap();
    assert_eq!(values.len(), 10_000);
    assert!(values.iter().enumerate().all(|(i, value)| *value == 2 * i as u64));
}

pub async fn new_future_is_not_done_until_its_task_ran(client: Client) {
    let gate = Gate::new();
    let future = client.submit_task::<Gated>(gate.input(7));
    assert!(!future.is_done());
    assert!(future.try_result().is_none());
    gate.open();
    assert_eq!((&future).await.unwrap(), 7);
    assert!(future.is_done());
    assert_eq!(future.try_result(), Some(Ok(7)));
}

pub async fn async_body_runs_on_the_executor(client: Client) {
    let executor = client.executor().clone();
    let future = client.submit_async(
        move |ms: u64| {
            let executor = executor.clone();
            async move {
                executor.sleep(std::time::Duration::from_millis(ms)).await;
                ms + 1
            }
        },
        5,
    );
    assert_eq!(future.await.unwrap(), 6);
}
