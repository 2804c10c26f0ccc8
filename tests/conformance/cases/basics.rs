use taskweave::Client;

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

pub async fn ten_thousand_tasks_all_return(client: Client) {
    let futures: Vec<_> = (0..10_000u64).map(|i| client.submit(|x: u64| x * 2, i)).collect();
    let values = client.gather(&futures).await.unwrap();
    assert_eq!(values.len(), 10_000);
    assert!(values.iter().enumerate().all(|(i, value)| *value == 2 * i as u64));
}

pub async fn new_future_is_not_done_until_its_task_ran(client: Client) {
    let (release, gate) = flume::bounded::<()>(1);
    let future = client.submit(
        move |x: i32| {
            gate.recv().unwrap();
            x
        },
        7,
    );
    assert!(!future.is_done());
    assert!(future.try_result().is_none());
    release.send(()).unwrap();
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
