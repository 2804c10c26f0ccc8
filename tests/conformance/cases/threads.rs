use taskweave::Client;

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
