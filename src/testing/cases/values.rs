//! Moving a value out of its task: `into_value`, `into_result`, `try_unwrap`,
//! `try_into_value`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::{Client, ExecutorExt, TaskError};

/// A value that counts its clones.
#[derive(Debug)]
struct Counted {
    payload: u64,
    clones: Arc<AtomicUsize>,
}

impl Clone for Counted {
    fn clone(&self) -> Counted {
        self.clones.fetch_add(1, Ordering::SeqCst);
        Counted { payload: self.payload, clones: Arc::clone(&self.clones) }
    }
}

/// A value that cannot be cloned at all.
#[derive(Debug, PartialEq)]
struct Unique(String);

pub async fn into_value_moves_the_last_handles_value_and_clones_a_shared_one(client: Client) {
    let clones = Arc::new(AtomicUsize::new(0));
    let made = Arc::clone(&clones);
    let make = move |payload: u64| Counted { payload, clones: Arc::clone(&made) };

    // The only handle: moved, no clone.
    let value = client.submit(make.clone(), 1).into_value().await.unwrap();
    assert_eq!(value.payload, 1);
    assert_eq!(clones.load(Ordering::SeqCst), 0, "the only handle's value was cloned");

    // Two handles: the first to leave clones, the last one moves.
    let first = client.submit(make.clone(), 2);
    let second = first.clone();
    assert_eq!(first.into_value().await.unwrap().payload, 2);
    assert_eq!(clones.load(Ordering::SeqCst), 1, "a shared value is cloned once");
    assert_eq!(second.into_value().await.unwrap().payload, 2);
    assert_eq!(clones.load(Ordering::SeqCst), 1, "the last handle's value was cloned");

    // Plain `.await` keeps cloning (the documented cost).
    assert_eq!(client.submit(make, 3).await.unwrap().payload, 3);
    assert_eq!(clones.load(Ordering::SeqCst), 2);

    // An error comes through as it does with `.await`.
    let failing = client.try_submit(|_: ()| Err::<Counted, _>("no rows"), ());
    let error = failing.into_value().await.unwrap_err();
    assert!(matches!(&error, TaskError::Failed { message, .. } if message.contains("no rows")));
}

pub async fn try_unwrap_moves_a_value_that_cannot_be_cloned_or_gives_the_handle_back(
    client: Client,
) {
    let (release, gate) = flume::bounded::<()>(1);
    let future = client.submit(
        move |text: String| {
            gate.recv().unwrap();
            Unique(text)
        },
        "rows".to_owned(),
    );
    // No outcome yet: the handle comes back, still working.
    let future = future.try_unwrap().expect_err("not finished, yet unwrapped");
    release.send(()).unwrap();
    // Another handle: the handle comes back.
    let other = future.clone();
    let future = future.try_into_value().await.expect_err("shared, yet unwrapped");
    assert!(future.is_done());
    drop(other);
    assert_eq!(future.try_into_value().await.unwrap().unwrap(), Unique("rows".into()));

    // An error needs no value: it is given whether the handle is shared or not.
    let failing = client.try_submit(|_: ()| Err::<Unique, _>("no rows"), ());
    let _shared = failing.clone();
    let outcome = failing.try_into_value().await.expect("an error is never shared");
    assert!(outcome.is_err());
}

pub async fn try_unwrap_leaves_a_value_a_waiting_dependent_needs(client: Client) {
    let (release, gate) = flume::bounded::<()>(1);
    let value = client.submit(|text: String| text, "rows".to_owned());
    let gated = client.submit(move |_: ()| gate.recv().is_ok(), ());
    let reader = client.after((&value, &gated)).submit(|(text, _): (String, bool)| text.len());
    let value = match value.try_into_value().await {
        Ok(_) => panic!("moved a value that a waiting dependent still needs"),
        Err(value) => value,
    };
    assert!(value.is_done());
    release.send(()).unwrap();
    assert_eq!(reader.await.unwrap(), 4);
    // The dependent finished: the value is the last handle's to take.
    assert_eq!(value.try_into_value().await.unwrap().unwrap(), "rows");
}

pub async fn into_result_moves_the_value_from_a_plain_thread(client: Client) {
    let clones = Arc::new(AtomicUsize::new(0));
    let made = Arc::clone(&clones);
    let future =
        client.submit(move |payload: u64| Counted { payload, clones: Arc::clone(&made) }, 5);
    let value = std::thread::spawn(move || future.into_result().unwrap()).join().unwrap();
    assert_eq!(value.payload, 5);
    assert_eq!(clones.load(Ordering::SeqCst), 0);
}

/// Says when it is dropped.
struct Marker(flume::Sender<()>);

impl Drop for Marker {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

pub async fn a_value_read_by_a_dependent_is_freed_with_its_last_handle(client: Client) {
    // The worker that ran the dependent keeps nothing of its inputs (it reuses their list
    // from one run to the next, emptied): once every handle is gone, the value is dropped.
    let (dropped, freed) = flume::unbounded();
    let marker = Arc::new(Marker(dropped));
    let input = client.submit(move |_: ()| Arc::clone(&marker), ());
    let read = client.after(&input).submit(|marker: Arc<Marker>| Arc::strong_count(&marker));
    assert!(read.clone().await.unwrap() >= 2, "the dependent holds a copy while it runs");
    drop((input, read));
    let limit = std::time::Duration::from_secs(30);
    let outcome = client.executor().timeout(limit, freed.recv_async()).await;
    assert!(
        matches!(outcome, Ok(Ok(()))),
        "the value was still held {limit:?} after its last handle went"
    );
}
