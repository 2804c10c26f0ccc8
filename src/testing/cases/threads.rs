use std::time::Duration;

use crate::Client;
use crate::testing::tasks::Add;

use super::eventually;

pub async fn submit_from_twenty_threads_loses_nothing(client: Client) {
    let threads: Vec<_> = (0..20i64)
        .map(|thread| {
            let client = client.clone();
            std::thread::spawn(move || {
                let futures: Vec<_> = (0..200i64)
                    .map(|i| client.submit_task::<Add>((thread * 1_000 + i, 1)))
                    .collect();
                client.blocking().gather(&futures).unwrap()
            })
        })
        .collect();
    // The threads' answers are awaited, not joined: joining would block this executor's
    // thread, which may be the one driving the transport's I/O (a current-thread runtime).
    let (report, answers) = futures::channel::oneshot::channel();
    std::thread::spawn(move || {
        let values: Vec<_> = threads.into_iter().map(std::thread::JoinHandle::join).collect();
        let _ = report.send(values);
    });
    let answers = answers.await.expect("the joining thread reports");
    for (thread, values) in answers.into_iter().enumerate() {
        let values = values.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let expected: Vec<i64> = (0..200).map(|i| thread as i64 * 1_000 + i + 1).collect();
        assert_eq!(values, expected);
    }
    assert_eq!(client.stats().tasks.held(), 0, "every handle was dropped");
}

pub async fn futures_resolve_when_awaited_from_another_runtime(client: Client) {
    let futures = client.map_task::<Add>((0..10).map(|x| (x, 2 * x)));
    // A plain thread with its own little executor awaits what this client runs.
    let elsewhere = futures.clone();
    let (report, answer) = futures::channel::oneshot::channel();
    std::thread::spawn(move || {
        let values = futures::executor::block_on(async move {
            let mut values = Vec::new();
            for future in elsewhere {
                values.push(future.await.unwrap());
            }
            values
        });
        let _ = report.send(values);
    });
    let values = answer.await.expect("the thread reports");
    assert_eq!(values, (0..10).map(|x| x * 3).collect::<Vec<_>>());
}

pub async fn shared_keys_held_and_dropped_from_many_threads_are_released(client: Client) {
    // Eight threads submit three shared keys over and over, and keep, clone, await or drop
    // the handles while other threads do the same: the last handle of a key can go at the
    // very moment another thread submits that key again. Every handle must see the value, and
    // once all are dropped nothing may stay held (a lost or doubled release would show here).
    let threads: Vec<_> = (0..8i64)
        .map(|thread| {
            let client = client.clone();
            std::thread::spawn(move || {
                let mut kept = Vec::new();
                for i in 0..300i64 {
                    let key = format!("shared-{}", (thread + i) % 3);
                    let future = client.task().key(key).submit_task::<Add>((21, 21));
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
    // Joined on a thread of its own and awaited, as above.
    let (report, joined) = futures::channel::oneshot::channel();
    std::thread::spawn(move || {
        let results: Vec<_> = threads.into_iter().map(std::thread::JoinHandle::join).collect();
        let _ = report.send(results);
    });
    for result in joined.await.expect("the joining thread reports") {
        result.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    }
    let stats_client = client.clone();
    eventually(&client, Duration::from_secs(10), "release of every shared key", move || {
        stats_client.stats().tasks.held() == 0
    })
    .await;
}
