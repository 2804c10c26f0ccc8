use std::time::Duration;

use crate::Client;

use super::eventually;

pub async fn submit_from_twenty_threads_loses_nothing(client: Client) {
    let threads: Vec<_> = (0..20u64)
        .map(|thread| {
            let client = client.clone();
            std::thread::spawn(move || {
                let futures: Vec<_> = (0..200u64)
                    .map(|i| client.submit(|x: u64| x + 1, thread * 1_000 + i))
                    .collect();
                client.blocking().gather(&futures).unwrap()
            })
        })
        .collect();
    for (thread, handle) in threads.into_iter().enumerate() {
        let values = handle.join().unwrap();
        let expected: Vec<u64> = (0..200).map(|i| thread as u64 * 1_000 + i + 1).collect();
        assert_eq!(values, expected);
    }
    assert_eq!(client.stats().tasks.held(), 0, "every handle was dropped");
}

pub async fn futures_resolve_when_awaited_from_another_runtime(client: Client) {
    let futures = client.map(|x: i32| x * 3, 0..10);
    // A plain thread with its own little executor awaits what this client runs.
    let elsewhere = futures.clone();
    let values = std::thread::spawn(move || {
        futures::executor::block_on(async move {
            let mut values = Vec::new();
            for future in elsewhere {
                values.push(future.await.unwrap());
            }
            values
        })
    })
    .join()
    .unwrap();
    assert_eq!(values, (0..10).map(|x| x * 3).collect::<Vec<_>>());
}

pub async fn shared_keys_held_and_dropped_from_many_threads_are_released(client: Client) {
    // Eight threads submit three shared keys over and over, and keep, clone, await or drop
    // the handles while other threads do the same: the last handle of a key can go at the
    // very moment another thread submits that key again. Every handle must see the value, and
    // once all are dropped nothing may stay held (a lost or doubled release would show here).
    let threads: Vec<_> = (0..8u64)
        .map(|thread| {
            let client = client.clone();
            std::thread::spawn(move || {
                let mut kept = Vec::new();
                for i in 0..300u64 {
                    let key = format!("shared-{}", (thread + i) % 3);
                    let future = client.task().key(key).submit(|x: u64| x * 2, 21);
                    match i % 4 {
                        0 => {
                            let copy = future.clone();
                            drop(future);
                            assert_eq!(copy.result().unwrap(), 42);
                        }
                        1 => assert_eq!(future.result().unwrap(), 42),
                        2 => kept.push(future),
                        _ => drop(future),
                    }
                    if kept.len() > 5 {
                        drop(kept.remove(0));
                    }
                }
                for future in &kept {
                    assert_eq!(future.result().unwrap(), 42);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let stats_client = client.clone();
    eventually(&client, Duration::from_secs(10), "release of every shared key", move || {
        stats_client.stats().tasks.held() == 0
    })
    .await;
}
