#![allow(unreachable_pub)]
//! The coordination primitives (`Lock`, `Semaphore`, `Event`, `Queue`, `Variable`, datasets,
//! topics) from the user's side, on every executor: the embedded one, tokio (current- and
//! multi-thread), smol, and the deterministic simulation (several seeds).
//!
//! Each case is an `async fn(Client)`; the harnesses below list them. Every wait in a case is
//! bounded ([`within`]), and every case runs under a deadline, so a lost wake-up fails
//! instead of hanging.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use taskweave::{Client, Error, ExecutorExt, TaskFuture};

/// How long any one case may take before it counts as hung.
const DEADLINE: Duration = Duration::from_secs(60);
/// How long a case waits for something that must happen.
const BOUND: Duration = Duration::from_secs(20);
/// A wait that is meant to run out.
const SHORT: Duration = Duration::from_millis(30);

type Case = fn(Client) -> BoxFuture<'static, ()>;

/// Awaits `future` for at most [`BOUND`] on the client's executor, or fails the case.
async fn within<F: Future>(client: &Client, what: &str, future: F) -> F::Output {
    match client.executor().timeout(BOUND, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what} did not happen within {BOUND:?}"),
    }
}

/// Gives other tasks a turn: makes races between a read and a write likely.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

/// Awaits `wait`, setting `announce` once `wait` has begun: `wait` is polled first, so its
/// first look at the primitive precedes the announcement (in process it happens in that
/// poll; on Redis its command is sent first on the client's one command connection, whose
/// commands Redis runs in order). A case that waits for `announce` then knows the wait began
/// before anything the case does next; a pause could not promise that on a loaded machine.
async fn begun_then_announced<T>(wait: impl Future<Output = T>, announce: &taskweave::Event) -> T {
    let (output, ()) = futures::join!(wait, async { announce.set().await.unwrap() });
    output
}

/// The problem text of an [`Error::Coordination`], or a failure naming what came instead.
fn problem_of<T: std::fmt::Debug>(result: Result<T, Error>) -> String {
    match result {
        Err(Error::Coordination { problem, .. }) => problem,
        other => panic!("expected a coordination error, got {other:?}"),
    }
}

mod cases {
    use super::*;

    /// 20 tasks each add 25 times to a counter with a read, a yield and a write, under one
    /// lock: no update is lost, and nobody is ever inside with another.
    pub async fn lock_gives_mutual_exclusion_to_twenty_tasks(client: Client) {
        let counter = Arc::new(AtomicU64::new(0));
        let inside = Arc::new(AtomicU32::new(0));
        let tasks: Vec<TaskFuture<u32>> = (0..20)
            .map(|_| {
                let (lock, counter, inside) =
                    (client.lock("counter"), Arc::clone(&counter), Arc::clone(&inside));
                client.submit_async(
                    move |_: ()| {
                        let (lock, counter, inside) =
                            (lock.clone(), Arc::clone(&counter), Arc::clone(&inside));
                        async move {
                            let mut overlaps = 0;
                            for _ in 0..25 {
                                let _guard = lock.acquire().await.unwrap();
                                overlaps += inside.fetch_add(1, Ordering::SeqCst);
                                let seen = counter.load(Ordering::SeqCst);
                                yield_now().await;
                                counter.store(seen + 1, Ordering::SeqCst);
                                inside.fetch_sub(1, Ordering::SeqCst);
                            }
                            overlaps
                        }
                    },
                    (),
                )
            })
            .collect();
        let overlaps = within(&client, "20 tasks", client.gather(&tasks)).await.unwrap();
        assert_eq!(overlaps.iter().sum::<u32>(), 0, "two holders were inside at once");
        assert_eq!(counter.load(Ordering::SeqCst), 20 * 25, "an update was lost");
        assert!(!client.lock("counter").is_locked().await.unwrap(), "every guard released");
    }

    /// 20 tasks share a semaphore of 3: never more than 3 inside, every task gets in.
    pub async fn semaphore_never_exceeds_max_leases(client: Client) {
        let inside = Arc::new(AtomicU32::new(0));
        let most = Arc::new(AtomicU32::new(0));
        let semaphore = client.semaphore("pool", 3).unwrap();
        let tasks: Vec<TaskFuture<()>> = (0..20)
            .map(|_| {
                let (semaphore, inside, most) =
                    (semaphore.clone(), Arc::clone(&inside), Arc::clone(&most));
                client.submit_async(
                    move |_: ()| {
                        let (semaphore, inside, most) =
                            (semaphore.clone(), Arc::clone(&inside), Arc::clone(&most));
                        async move {
                            for _ in 0..5 {
                                let lease = semaphore.acquire().await.unwrap();
                                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                                most.fetch_max(now, Ordering::SeqCst);
                                yield_now().await;
                                inside.fetch_sub(1, Ordering::SeqCst);
                                drop(lease);
                            }
                        }
                    },
                    (),
                )
            })
            .collect();
        within(&client, "20 tasks", client.gather(&tasks)).await.unwrap();
        let most = most.load(Ordering::SeqCst);
        assert!((1..=3).contains(&most), "{most} holders at once with max_leases 3");
        assert_eq!(semaphore.held().await.unwrap(), 0);
    }

    /// Two leases given back at once wake two waiters: each release wakes a waiter of its
    /// own (a second wake-up must not be merged into the first, still pending one).
    pub async fn releases_back_to_back_wake_a_waiter_each(client: Client) {
        let semaphore = client.semaphore("pair", 2).unwrap();
        let (first, second) = (semaphore.acquire().await.unwrap(), semaphore.acquire().await);
        let (waiting, granted, finish) =
            (client.queue::<u8>("waiting"), client.queue::<u8>("granted"), client.event("finish"));
        let waiters: Vec<TaskFuture<()>> = (0..2_u8)
            .map(|i| {
                let (semaphore, waiting, granted, finish) =
                    (semaphore.clone(), waiting.clone(), granted.clone(), finish.clone());
                client.submit_async(
                    move |_: ()| {
                        let (semaphore, waiting, granted, finish) =
                            (semaphore.clone(), waiting.clone(), granted.clone(), finish.clone());
                        async move {
                            waiting.put(i).await.unwrap();
                            // Holds its lease until told to finish, so it cannot pass a
                            // wake-up on by releasing.
                            let _lease = semaphore.acquire().await.unwrap();
                            granted.put(i).await.unwrap();
                            finish.wait().await.unwrap();
                        }
                    },
                    (),
                )
            })
            .collect();
        within(&client, "two waiters", waiting.get_batch(2)).await.unwrap();
        // Give both a turn to reach their wait (this can only make the bug show, never hide).
        for _ in 0..50 {
            yield_now().await;
        }
        drop(first);
        drop(second);
        let got = within(&client, "a lease for each waiter", granted.get_batch(2)).await;
        assert_eq!(got.unwrap().len(), 2);
        finish.set().await.unwrap();
        within(&client, "the waiters", client.gather(&waiters)).await.unwrap();
    }

    /// Two items taken one after the other from a full queue wake two waiting producers.
    pub async fn gets_back_to_back_wake_a_producer_each(client: Client) {
        let queue = client.bounded_queue::<u8>("full", 2).unwrap();
        queue.put(0).await.unwrap();
        queue.put(1).await.unwrap();
        let waiting = client.queue::<u8>("producing");
        let producers: Vec<TaskFuture<()>> = (2..4_u8)
            .map(|i| {
                let (queue, waiting) = (queue.clone(), waiting.clone());
                client.submit_async(
                    move |_: ()| {
                        let (queue, waiting) = (queue.clone(), waiting.clone());
                        async move {
                            waiting.put(i).await.unwrap();
                            queue.put(i).await.unwrap();
                        }
                    },
                    (),
                )
            })
            .collect();
        within(&client, "two producers", waiting.get_batch(2)).await.unwrap();
        for _ in 0..50 {
            yield_now().await;
        }
        assert_eq!(queue.get().await.unwrap(), 0);
        assert_eq!(queue.get().await.unwrap(), 1);
        within(&client, "both producers' puts", client.gather(&producers)).await.unwrap();
        let mut rest = queue.get_batch(2).await.unwrap();
        rest.sort_unstable();
        assert_eq!(rest, [2, 3]);
    }

    /// An item put while a batch consumer (waiting for 2) and a single consumer wait goes to
    /// the single one: the batch consumer must not swallow its wake-up.
    pub async fn a_waiting_batch_does_not_strand_a_single_consumer(client: Client) {
        let queue = client.queue::<u8>("mixed");
        let waiting = client.queue::<u8>("consumers");
        let batch = {
            let (queue, waiting) = (queue.clone(), waiting.clone());
            client.submit_async(
                move |_: ()| {
                    let (queue, waiting) = (queue.clone(), waiting.clone());
                    async move {
                        waiting.put(0).await.unwrap();
                        queue.get_batch(2).await.unwrap()
                    }
                },
                (),
            )
        };
        within(&client, "the batch consumer", waiting.get()).await.unwrap();
        for _ in 0..50 {
            yield_now().await;
        }
        let single = {
            let (queue, waiting) = (queue.clone(), waiting.clone());
            client.submit_async(
                move |_: ()| {
                    let (queue, waiting) = (queue.clone(), waiting.clone());
                    async move {
                        waiting.put(1).await.unwrap();
                        queue.get().await.unwrap()
                    }
                },
                (),
            )
        };
        within(&client, "the single consumer", waiting.get()).await.unwrap();
        for _ in 0..50 {
            yield_now().await;
        }
        queue.put(7).await.unwrap();
        assert_eq!(within(&client, "the single consumer's item", single).await.unwrap(), 7);
        queue.put(8).await.unwrap();
        queue.put(9).await.unwrap();
        assert_eq!(within(&client, "the batch", batch).await.unwrap(), [8, 9]);
    }

    /// Ten tasks wait on one event; one `set` wakes them all.
    pub async fn event_wakes_every_waiter(client: Client) {
        let event = client.event("go");
        assert!(!event.wait_timeout(SHORT).await.unwrap(), "a new event is clear");
        let started = client.queue::<u32>("started");
        let waiters: Vec<TaskFuture<bool>> = (0..10)
            .map(|i| {
                let (event, started) = (event.clone(), started.clone());
                client.submit_async(
                    move |_: ()| {
                        let (event, started) = (event.clone(), started.clone());
                        async move {
                            started.put(i).await.unwrap();
                            event.wait().await.is_ok()
                        }
                    },
                    (),
                )
            })
            .collect();
        // Every waiter has started (and is waiting, or about to) before the set.
        let ready = within(&client, "ten waiters", started.get_batch(10)).await.unwrap();
        assert_eq!(ready.len(), 10);
        event.set().await.unwrap();
        let woken = within(&client, "every waiter woken", client.gather(&waiters)).await;
        assert_eq!(woken.unwrap(), vec![true; 10]);
        assert!(event.is_set().await.unwrap());
        event.clear().await.unwrap();
        assert!(!event.is_set().await.unwrap());
        assert!(!event.wait_timeout(SHORT).await.unwrap(), "cleared again");
    }

    /// Three producers put 40 items each into a queue of 4; one consumer sees each
    /// producer's items in order and the queue never holds more than 4.
    pub async fn queue_pushes_back_and_keeps_each_producers_order(client: Client) {
        let queue = client.bounded_queue::<(u32, u32)>("work", 4).unwrap();
        let producers: Vec<TaskFuture<()>> = (0..3)
            .map(|producer| {
                let queue = queue.clone();
                client.submit_async(
                    move |_: ()| {
                        let queue = queue.clone();
                        async move {
                            for sequence in 0..40 {
                                queue.put((producer, sequence)).await.unwrap();
                            }
                        }
                    },
                    (),
                )
            })
            .collect();
        let mut next = [0_u32; 3];
        for _ in 0..120 {
            let length = queue.len().await.unwrap();
            assert!(length <= 4, "a queue of 4 held {length}");
            let (producer, sequence) = within(&client, "an item", queue.get()).await.unwrap();
            assert_eq!(sequence, next[producer as usize], "producer {producer} out of order");
            next[producer as usize] += 1;
        }
        within(&client, "the producers", client.gather(&producers)).await.unwrap();
        assert_eq!(next, [40; 3]);
        assert!(queue.is_empty().await.unwrap());
        // Full: a put with a timeout gives the value back, and nothing was queued.
        for i in 0..4 {
            queue.put((9, i)).await.unwrap();
        }
        assert_eq!(queue.put_timeout((9, 99), SHORT).await.unwrap(), Err((9, 99)));
        assert_eq!(queue.len().await.unwrap(), 4);
        assert_eq!(queue.get_batch(4).await.unwrap(), vec![(9, 0), (9, 1), (9, 2), (9, 3)]);
    }

    /// A future in a queue keeps its task (and value) alive after every other handle went.
    pub async fn a_queued_future_keeps_its_task_alive(client: Client) {
        let queue = client.queue::<TaskFuture<u64>>("futures");
        let future = client.submit(|x: u64| x * 3, 14);
        let key = future.key().clone();
        queue.put(future).await.unwrap(); // the only handle now
        let taken = within(&client, "the future", queue.get()).await.unwrap();
        assert_eq!(taken.key(), &key);
        assert_eq!(within(&client, "its value", taken).await.unwrap(), 42);
    }

    /// A `get` waits until the variable is set, then every reader sees the value.
    pub async fn variable_get_waits_for_set(client: Client) {
        let variable = client.variable::<String>("model");
        assert_eq!(variable.get_timeout(SHORT).await.unwrap(), None, "never set");
        let reader = {
            let variable = variable.clone();
            client.submit_async(
                move |_: ()| {
                    let variable = variable.clone();
                    async move { variable.get().await.unwrap() }
                },
                (),
            )
        };
        variable.set("v1".to_owned()).await.unwrap();
        assert_eq!(within(&client, "the reader", reader).await.unwrap(), "v1");
        variable.set("v2".to_owned()).await.unwrap();
        assert_eq!(variable.get().await.unwrap(), "v2");
    }

    /// A variable holding a future keeps its task alive (in process only: a future cannot
    /// cross processes).
    pub async fn a_variable_holding_a_future_keeps_its_task_alive(client: Client) {
        let futures = client.variable::<TaskFuture<u32>>("future");
        futures.set(client.submit(|x: u32| x + 1, 1)).await.unwrap();
        let future = futures.get().await.unwrap();
        assert_eq!(within(&client, "its value", future).await.unwrap(), 2);
    }

    /// A published dataset outlives the future that made it; unpublishing ends that.
    pub async fn dataset_outlives_the_future_handle_that_made_it(client: Client) {
        let future = client.submit(|n: u64| (1..=n).sum::<u64>(), 10);
        client.publish_dataset("total", &future).await.unwrap();
        drop(future);
        assert_eq!(client.list_datasets().await.unwrap(), ["total"]);
        let again = client.dataset::<u64>("total").await.unwrap();
        assert_eq!(within(&client, "the dataset", again).await.unwrap(), 55);
        // A clone of the client (say, in a task) sees it too.
        let other = client.clone();
        assert!(other.dataset::<u64>("total").await.is_ok());
        client.unpublish_dataset("total").await.unwrap();
        assert!(client.list_datasets().await.unwrap().is_empty());
        let missing = problem_of(client.dataset::<u64>("total").await);
        assert!(missing.contains("no dataset"), "{missing}");
    }

    /// Every subscriber gets every message, in the order logged, from a task and the client.
    pub async fn topics_deliver_in_order_to_every_subscriber(client: Client) {
        let mut subscribers = Vec::new();
        for _ in 0..3 {
            subscribers.push(client.subscribe::<u32>("steps").await.unwrap());
        }
        let logger = {
            let inner = client.clone();
            client.submit_async(
                move |_: ()| {
                    let client = inner.clone();
                    async move {
                        for step in 0..50_u32 {
                            client.log_event("steps", step).await.unwrap();
                        }
                    }
                },
                (),
            )
        };
        within(&client, "the logger", logger).await.unwrap();
        for subscriber in &mut subscribers {
            let seen: Vec<u32> =
                within(&client, "50 messages", subscriber.by_ref().take(50).collect()).await;
            assert_eq!(seen, (0..50).collect::<Vec<_>>());
            assert_eq!(subscriber.next_timeout(SHORT).await, None, "nothing more");
        }
    }

    /// Every wait that runs out answers "no": `None`, `false`, the value back, a short batch.
    pub async fn every_timeout_answers_no_rather_than_an_error(client: Client) {
        let lock = client.lock("held");
        let _guard = lock.acquire().await.unwrap();
        assert!(lock.acquire_timeout(SHORT).await.unwrap().is_none());
        assert!(lock.try_acquire().await.unwrap().is_none());
        let semaphore = client.semaphore("one", 1).unwrap();
        let _lease = semaphore.acquire().await.unwrap();
        assert!(semaphore.acquire_timeout(SHORT).await.unwrap().is_none());
        assert!(!client.event("never").wait_timeout(SHORT).await.unwrap());
        let queue = client.bounded_queue::<u8>("slow", 2).unwrap();
        assert_eq!(queue.get_timeout(SHORT).await.unwrap(), None);
        queue.put(1).await.unwrap();
        assert_eq!(queue.get_batch_timeout(2, SHORT).await.unwrap(), vec![1], "what was there");
        queue.put(2).await.unwrap();
        queue.put(3).await.unwrap();
        assert_eq!(queue.put_timeout(4, SHORT).await.unwrap(), Err(4));
        assert_eq!(client.variable::<u8>("unset").get_timeout(SHORT).await.unwrap(), None);
        let mut quiet = client.subscribe::<u8>("quiet").await.unwrap();
        assert_eq!(quiet.next_timeout(SHORT).await, None);
        // A zero timeout looks once.
        assert!(lock.acquire_timeout(Duration::ZERO).await.unwrap().is_none());
    }

    /// Waits that run out while others release and put leave nothing behind: no lease held
    /// by nobody, no item taken and lost.
    pub async fn timed_out_waits_leave_nothing_behind(client: Client) {
        let lock = client.lock("contested");
        let queue = client.queue::<u32>("trickle");
        let waiters: Vec<TaskFuture<(u32, Vec<u32>)>> = (0..6)
            .map(|_| {
                let (lock, queue) = (lock.clone(), queue.clone());
                client.submit_async(
                    move |_: ()| {
                        let (lock, queue) = (lock.clone(), queue.clone());
                        async move {
                            let (mut leases, mut items) = (0, Vec::new());
                            for _ in 0..30 {
                                let short = Duration::from_micros(200);
                                if let Some(lease) = lock.acquire_timeout(short).await.unwrap() {
                                    leases += 1;
                                    yield_now().await;
                                    drop(lease);
                                }
                                if let Some(item) = queue.get_timeout(short).await.unwrap() {
                                    items.push(item);
                                }
                            }
                            (leases, items)
                        }
                    },
                    (),
                )
            })
            .collect();
        for item in 0..60 {
            queue.put(item).await.unwrap();
            yield_now().await;
        }
        let outcomes = within(&client, "the waiters", client.gather(&waiters)).await.unwrap();
        assert!(!lock.is_locked().await.unwrap(), "a lease was left to nobody");
        assert!(lock.try_acquire().await.unwrap().is_some());
        let mut seen: Vec<u32> = outcomes.into_iter().flat_map(|(_, items)| items).collect();
        while let Some(item) = queue.get_timeout(Duration::ZERO).await.unwrap() {
            seen.push(item);
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..60).collect::<Vec<_>>(), "an item was lost or taken twice");
    }

    /// Closing the client ends every wait in progress with `Error::Closed` (and ends
    /// subscriptions), instead of leaving it to wait forever.
    pub async fn close_ends_every_wait(client: Client) {
        let lock = client.lock("held");
        let guard = lock.acquire().await.unwrap();
        let queue = client.queue::<u8>("empty");
        let full = client.bounded_queue::<u8>("full", 1).unwrap();
        full.put(0).await.unwrap();
        let (variable, event) = (client.variable::<u8>("unset"), client.event("never"));
        let mut subscription = client.subscribe::<u8>("quiet").await.unwrap();
        let closing = async {
            for _ in 0..50 {
                yield_now().await;
            }
            client.close().await.unwrap();
        };
        let (acquired, got, put, read, waited, message, ()) =
            within(&client, "every wait", async {
                futures::join!(
                    lock.acquire(),
                    queue.get(),
                    full.put(1),
                    variable.get(),
                    event.wait(),
                    subscription.next(),
                    closing
                )
            })
            .await;
        assert!(matches!(acquired, Err(Error::Closed { .. })), "{acquired:?}");
        assert!(matches!(got, Err(Error::Closed { .. })), "{got:?}");
        assert!(matches!(put, Err(Error::Closed { .. })), "{put:?}");
        assert!(matches!(read, Err(Error::Closed { .. })), "{read:?}");
        assert!(matches!(waited, Err(Error::Closed { .. })), "{waited:?}");
        assert_eq!(message, None, "the subscription ended");
        drop(guard); // releasing after the close is fine
    }

    /// Misuse is a clear `Error::Coordination` saying what to do.
    pub async fn wrong_input_gets_a_clear_error(client: Client) {
        let zero = problem_of(client.semaphore("none", 0));
        assert!(zero.contains("max_leases is 0"), "{zero}");
        let _three = client.semaphore("pool", 3).unwrap().acquire().await.unwrap();
        // Refused when made where the backend knows the size at once (in process), else at
        // the first acquire (Redis: making a handle is no round trip).
        let other = match client.semaphore("pool", 5) {
            Err(error) => problem_of::<()>(Err(error)),
            Ok(five) => problem_of(five.acquire().await),
        };
        assert!(other.contains("same max_leases"), "{other}");

        let lock = client.lock("twice");
        let id = lock.acquire().await.unwrap().detach();
        lock.release(id).await.unwrap();
        let again = problem_of(lock.release(id).await);
        assert!(again.contains("not held"), "{again}");
        let lease = lock.acquire().await.unwrap();
        let stray = problem_of(client.lock("other").release(lease.id()).await);
        assert!(stray.contains("not held"), "{stray}");
        drop(lease);

        let variable = client.variable::<u32>("gone");
        variable.set(1).await.unwrap();
        variable.delete().await.unwrap();
        let deleted = problem_of(variable.get().await);
        assert!(deleted.contains("deleted"), "{deleted}");
        variable.set(2).await.unwrap();
        assert_eq!(variable.get().await.unwrap(), 2, "set again after a delete");

        client.queue::<u32>("numbers").put(1).await.unwrap();
        let typed = problem_of(client.queue::<String>("numbers").get_timeout(SHORT).await);
        assert!(typed.contains("u32") && typed.contains("String"), "{typed}");
        assert_eq!(client.queue::<u32>("numbers").len().await.unwrap(), 1, "nothing lost");
        let empty = problem_of(client.bounded_queue::<u32>("empty", 0));
        assert!(empty.contains("capacity of 0"), "{empty}");
        let bounded = client.bounded_queue::<u32>("small", 2).unwrap();
        bounded.put(1).await.unwrap(); // the first bound given fixes the queue's
        let batch = problem_of(bounded.get_batch(3).await);
        assert!(batch.contains("at most 2"), "{batch}");
        let rebound = problem_of(client.bounded_queue::<u32>("small", 5).unwrap().put(1).await);
        assert!(rebound.contains("same capacity"), "{rebound}");

        let _subscription = client.subscribe::<u32>("typed").await.unwrap();
        let topic = problem_of(client.log_event("typed", "text".to_owned()).await);
        assert!(topic.contains("u32"), "{topic}");

        // After close, every primitive refuses new work.
        client.close().await.unwrap();
        assert!(matches!(lock.try_acquire().await, Err(Error::Closed { .. })));
    }

    /// Datasets given wrong input: a taken name, another type, nothing to unpublish, a closed
    /// client.
    pub async fn wrong_dataset_input_gets_a_clear_error(client: Client) {
        let future = client.submit(|x: u8| x, 1);
        client.publish_dataset("one", &future).await.unwrap();
        let taken = problem_of(client.publish_dataset("one", &future).await);
        assert!(taken.contains("published already"), "{taken}");
        let wrong = problem_of(client.dataset::<String>("one").await);
        assert!(wrong.contains("u8"), "{wrong}");
        client.unpublish_dataset("one").await.unwrap();
        let nothing = problem_of(client.unpublish_dataset("one").await);
        assert!(nothing.contains("nothing to unpublish"), "{nothing}");
        client.close().await.unwrap();
        assert!(matches!(client.list_datasets().await, Err(Error::Closed { .. })));
    }

    /// A lease's guard releases it however the task holding it ends: returning, panicking,
    /// being cancelled.
    pub async fn a_lease_ends_with_the_task_that_holds_it(client: Client) {
        let lock = client.lock("task");
        let panicking = {
            let lock = lock.clone();
            client.submit_async(
                move |_: ()| {
                    let lock = lock.clone();
                    async move {
                        let _guard = lock.acquire().await.unwrap();
                        panic!("the body fails while it holds the lock");
                    }
                },
                (),
            )
        };
        assert!(within(&client, "the panic", panicking).await.is_err());
        // The panicking body's guard released the lock (at once in process; on Redis the
        // release is sent as the guard drops, and may land a moment after the failure).
        let first = within(&client, "the panicking body's release", async {
            loop {
                if let Some(lease) = lock.try_acquire().await.unwrap() {
                    break lease;
                }
                client.executor().sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
        drop(first);
        let holding = client.event("holding");
        let stuck = {
            let (lock, holding) = (lock.clone(), holding.clone());
            client.submit_async(
                move |_: ()| {
                    let (lock, holding) = (lock.clone(), holding.clone());
                    async move {
                        let _guard = lock.acquire().await.unwrap();
                        holding.set().await.unwrap();
                        std::future::pending::<()>().await;
                    }
                },
                (),
            )
        };
        within(&client, "the stuck task's lease", holding.wait()).await.unwrap();
        assert!(lock.try_acquire().await.unwrap().is_none(), "the stuck task holds it");
        stuck.cancel();
        let after = within(&client, "the lock, after the cancel", lock.acquire()).await;
        assert!(after.is_ok());
    }

    /// A set followed at once by a clear still wakes the waiters that were waiting before
    /// the set, with `true` (as Dask's, asyncio's and `threading`'s events do); `wait` too.
    ///
    /// Each waiter says so once its own wait has begun ([`begun_then_announced`]); the case
    /// sets and clears only after both have: a pause would not do, as a loaded machine may
    /// start a waiter later than any pause (the untimed one here begins late on purpose).
    pub async fn a_set_then_clear_wakes_waiters_already_waiting(client: Client) {
        let blink = client.event("blink");
        let (timed_began, untimed_began) =
            (client.event("blink-timed-began"), client.event("blink-untimed-began"));
        let timed = {
            let (blink, began) = (blink.clone(), timed_began.clone());
            client.submit_async(
                move |_: ()| {
                    let (blink, began) = (blink.clone(), began.clone());
                    async move {
                        let wait = blink.wait_timeout(BOUND);
                        begun_then_announced(wait, &began).await.unwrap()
                    }
                },
                (),
            )
        };
        let untimed = {
            let (blink, began, executor) =
                (blink.clone(), untimed_began.clone(), client.executor().clone());
            client.submit_async(
                move |_: ()| {
                    let (blink, began, executor) = (blink.clone(), began.clone(), executor.clone());
                    async move {
                        // Late, as a waiter on a busy machine may be (later than the pause
                        // this case once took instead of waiting for it): the set must wait.
                        executor.sleep(2 * SHORT).await;
                        begun_then_announced(blink.wait(), &began).await.is_ok()
                    }
                },
                (),
            )
        };
        within(&client, "the timed waiter begins", timed_began.wait()).await.unwrap();
        within(&client, "the untimed waiter begins", untimed_began.wait()).await.unwrap();
        blink.set().await.unwrap();
        blink.clear().await.unwrap();
        assert!(
            within(&client, "the timed waiter", timed).await.unwrap(),
            "a waiter that was waiting when the event was set answered false"
        );
        assert!(within(&client, "the untimed waiter", untimed).await.unwrap());
        assert!(!blink.is_set().await.unwrap(), "cleared");
    }

    /// A blocking task body (on a worker thread) can make the calls that never wait; a call
    /// that would wait is refused with advice that fits a blocking body.
    pub async fn a_blocking_body_makes_the_calls_that_never_wait(client: Client) {
        let (event, queue, variable, lock) = (
            client.event("from-body"),
            client.queue::<u32>("from-body"),
            client.variable::<u32>("from-body"),
            client.lock("from-body"),
        );
        let mut logged = client.subscribe::<u32>("from-body").await.unwrap();
        let body = {
            let (event, queue, variable, lock, client) =
                (event.clone(), queue.clone(), variable.clone(), lock.clone(), client.clone());
            move |_: ()| -> Result<String, String> {
                let show = |e: Error| e.to_string();
                event.blocking().set().map_err(show)?;
                queue.blocking().put(1).map_err(show)?;
                variable.blocking().set(2).map_err(show)?;
                client.blocking().log_event("from-body", 3_u32).map_err(show)?;
                let lease = lock.blocking().try_acquire().map_err(show)?.ok_or("lock held")?;
                assert!(lock.blocking().is_locked().map_err(show)?);
                lock.blocking().release(lease.detach()).map_err(show)?;
                assert_eq!(queue.blocking().len().map_err(show)?, 1);
                match queue.blocking().get_timeout(SHORT) {
                    Err(refused @ Error::BlockingInAsyncContext) => Ok(refused.to_string()),
                    other => Err(format!("a wait in a blocking body gave {other:?}")),
                }
            }
        };
        let refusal = within(&client, "the body", client.submit(body, ())).await.unwrap();
        let refusal = refusal.unwrap_or_else(|error| panic!("the body failed: {error}"));
        assert!(refusal.contains("submit_async"), "no advice for a blocking body: {refusal}");
        assert!(
            refusal.contains("context.secede()"),
            "no advice for a body that must stay blocking: {refusal}"
        );
        assert!(event.is_set().await.unwrap());
        assert_eq!(queue.get_timeout(BOUND).await.unwrap(), Some(1));
        assert_eq!(variable.get_timeout(BOUND).await.unwrap(), Some(2));
        assert_eq!(within(&client, "the message", logged.next()).await, Some(3));
        assert!(!lock.is_locked().await.unwrap());
    }

    /// A plain handle on a name bounded by another handle obeys the bound: a batch larger
    /// than it is refused (rather than waited for forever, or timed out silently).
    pub async fn a_plain_handle_knows_the_bound_of_its_name(client: Client) {
        let bounded = client.bounded_queue::<u32>("work", 4).unwrap();
        bounded.put(1).await.unwrap();
        let plain = client.queue::<u32>("work");
        let waiting = problem_of(within(&client, "get_batch(5)", plain.get_batch(5)).await);
        assert!(waiting.contains("at most 4"), "{waiting}");
        let timed = problem_of(plain.get_batch_timeout(5, SHORT).await);
        assert!(timed.contains("at most 4"), "{timed}");
        assert_eq!(plain.get_batch(1).await.unwrap(), vec![1], "a batch within the bound");
    }

    /// Names used and let go leave no state behind: a name per request stays flat. Names in
    /// use (a held lease, a set event, queued items, a waiter) are kept.
    pub async fn names_in_no_use_are_let_go(client: Client) {
        assert_eq!(client.coordination_live_names(), 0);
        for i in 0..2_000 {
            let name = format!("request-{i}");
            drop(client.lock(name.as_str()).acquire().await.unwrap());
            let semaphore = client.semaphore(name.as_str(), 2).unwrap();
            semaphore.acquire().await.unwrap().release().await.unwrap();
            assert!(semaphore.acquire_timeout(Duration::ZERO).await.unwrap().is_some());
            let event = client.event(name.as_str());
            event.set().await.unwrap();
            event.clear().await.unwrap();
            assert!(!event.wait_timeout(Duration::ZERO).await.unwrap());
            let queue = client.bounded_queue::<u32>(name.as_str(), 2).unwrap();
            queue.put(i).await.unwrap();
            assert_eq!(queue.get().await.unwrap(), i);
            assert_eq!(queue.get_timeout(Duration::ZERO).await.unwrap(), None);
            let variable = client.variable::<u32>(name.as_str());
            assert_eq!(variable.get_timeout(Duration::ZERO).await.unwrap(), None);
            variable.delete().await.unwrap();
            let subscription = client.subscribe::<u32>(&name).await.unwrap();
            client.log_event(&name, i).await.unwrap();
            drop(subscription);
            client.log_event(&name, i).await.unwrap();
        }
        assert_eq!(client.coordination_live_names(), 0, "names in no use were kept");
        // A wait that runs out, or is dropped, lets go too.
        assert!(!client.event("timed").wait_timeout(SHORT).await.unwrap());
        drop(client.executor().timeout(SHORT, client.queue::<u8>("dropped").get()).await);
        assert_eq!(client.coordination_live_names(), 0);
        // In use: kept, then let go.
        let guard = client.lock("held").acquire().await.unwrap();
        client.event("set").set().await.unwrap();
        assert_eq!(client.coordination_live_names(), 2);
        drop(guard);
        client.event("set").clear().await.unwrap();
        assert_eq!(client.coordination_live_names(), 0);
        // A topic whose subscribers are all gone starts afresh: another type is welcome.
        drop(client.subscribe::<u32>("retyped").await.unwrap());
        let mut text = client.subscribe::<String>("retyped").await.unwrap();
        client.log_event("retyped", "now text".to_owned()).await.unwrap();
        assert_eq!(within(&client, "the message", text.next()).await.as_deref(), Some("now text"));
    }

    /// Deleting a variable that was never set does nothing: its waiter keeps waiting and gets
    /// the value set later, and a read after the delete waits rather than failing.
    pub async fn deleting_a_never_set_variable_does_nothing(client: Client) {
        let (variable, started) = (client.variable::<u32>("never-set"), client.event("started"));
        let waiter = {
            let (variable, started) = (variable.clone(), started.clone());
            client.submit_async(
                move |_: ()| {
                    let (variable, started) = (variable.clone(), started.clone());
                    async move {
                        let wait = variable.get_timeout(BOUND);
                        begun_then_announced(wait, &started).await.map_err(|e| e.to_string())
                    }
                },
                (),
            )
        };
        within(&client, "the waiter begins", started.wait()).await.unwrap();
        variable.delete().await.unwrap();
        assert_eq!(variable.get_timeout(SHORT).await.unwrap(), None, "still never set");
        variable.set(5).await.unwrap();
        assert_eq!(within(&client, "the waiter", waiter).await.unwrap(), Ok(Some(5)));
    }

    /// A lease id travels through a queue (serde) to the task that gives the lease back, and
    /// reads back from its text.
    pub async fn a_lease_id_travels_to_the_task_that_releases_it(client: Client) {
        let (lock, ids) = (client.lock("travel"), client.queue::<taskweave::LeaseId>("ids"));
        let id = lock.acquire().await.unwrap().detach();
        assert_eq!(id.to_string().parse::<taskweave::LeaseId>().unwrap(), id);
        assert!(problem_of("not hex".parse::<taskweave::LeaseId>()).contains("lease id"));
        ids.put(id).await.unwrap();
        let releaser = {
            let (lock, ids) = (lock.clone(), ids.clone());
            client.submit_async(
                move |_: ()| {
                    let (lock, ids) = (lock.clone(), ids.clone());
                    async move { lock.release(ids.get().await.unwrap()).await.is_ok() }
                },
                (),
            )
        };
        assert!(within(&client, "the release", releaser).await.unwrap());
        assert!(!lock.is_locked().await.unwrap());
    }

    /// A semaphore handle with another max_leases than its name's is refused when it is made.
    pub async fn a_semaphore_of_another_size_is_refused_when_made(client: Client) {
        let three = client.semaphore("api", 3).unwrap();
        let _lease = three.acquire().await.unwrap();
        let refused = problem_of(client.semaphore("api", 5));
        assert!(refused.contains("max_leases 3"), "{refused}");
        assert_eq!(client.semaphore("api", 3).unwrap().held().await.unwrap(), 1);
    }

    /// After close, each refused operation names itself; a lease released after the close
    /// is given back, and the release answers `Ok`, as the module docs say.
    pub async fn after_close_each_operation_names_itself(client: Client) {
        let (lock, queue, variable, event) = (
            client.lock("closing"),
            client.queue::<u8>("closing"),
            client.variable::<u8>("closing"),
            client.event("closing"),
        );
        let semaphore = client.semaphore("closing", 2).unwrap();
        let lease = lock.acquire().await.unwrap();
        let detached = semaphore.acquire().await.unwrap().detach();
        client.close().await.unwrap();
        fn operation<T: std::fmt::Debug>(result: Result<T, Error>) -> &'static str {
            match result {
                Err(Error::Closed { operation }) => operation,
                other => panic!("expected Closed, got {other:?}"),
            }
        }
        assert_eq!(operation(lock.is_locked().await), "is_locked");
        assert_eq!(operation(lock.try_acquire().await), "try_acquire");
        assert_eq!(operation(lock.acquire_timeout(SHORT).await), "acquire_timeout");
        assert_eq!(operation(semaphore.held().await), "held");
        assert_eq!(operation(queue.is_empty().await), "is_empty");
        assert_eq!(operation(queue.get_timeout(SHORT).await), "get_timeout");
        assert_eq!(operation(queue.get_batch(2).await), "get_batch");
        assert_eq!(operation(queue.put_timeout(1, SHORT).await), "put_timeout");
        assert_eq!(operation(variable.get_timeout(SHORT).await), "get_timeout");
        assert_eq!(operation(event.wait_timeout(SHORT).await), "wait_timeout");
        assert!(lease.release().await.is_ok(), "a lease released after close is given back");
        assert!(semaphore.release(detached).await.is_ok());
    }

    /// Type names read the same, short way in errors and in `Debug`.
    pub async fn type_names_are_short_in_errors_and_debug(client: Client) {
        client.variable::<String>("typed").set("text".to_owned()).await.unwrap();
        let wrong = problem_of(client.variable::<Vec<u64>>("typed").get().await);
        assert!(wrong.contains("String") && wrong.contains("Vec<u64>"), "{wrong}");
        assert!(!wrong.contains("alloc::"), "module paths in an error: {wrong}");
        let debug = format!("{:?}", client.queue::<Vec<String>>("typed"));
        assert!(debug.contains("\"Vec<String>\""), "{debug}");
    }
}

/// A case that needs threads of its own (not under the one-thread simulation).
mod threaded_cases {
    use super::*;

    /// The blocking twins work from a plain thread, and refuse inside async code.
    pub async fn blocking_twins_work_from_a_plain_thread(client: Client) {
        let (lock, queue, variable, event) = (
            client.lock("blocking"),
            client.queue::<u32>("blocking"),
            client.variable::<u32>("blocking"),
            client.event("blocking"),
        );
        let on_thread = client.clone();
        let (done, finished) = futures::channel::oneshot::channel();
        std::thread::spawn(move || {
            let client = on_thread;
            let guard = lock.blocking().acquire().unwrap();
            assert!(lock.blocking().is_locked().unwrap());
            drop(guard);
            queue.blocking().put(7).unwrap();
            assert_eq!(queue.blocking().get().unwrap(), 7);
            variable.blocking().set(8).unwrap();
            assert_eq!(variable.blocking().get().unwrap(), 8);
            event.blocking().set().unwrap();
            assert!(event.blocking().wait_timeout(BOUND).unwrap());
            let future = client.submit(|x: u8| x, 9);
            client.blocking().publish_dataset("b", &future).unwrap();
            assert_eq!(client.blocking().list_datasets().unwrap(), ["b"]);
            let mut topic = client.blocking().subscribe::<u8>("b").unwrap();
            client.blocking().log_event("b", 1_u8).unwrap();
            assert_eq!(topic.blocking_next(BOUND).unwrap(), Some(1));
            let _ = done.send(());
        });
        within(&client, "the thread", finished).await.unwrap();
        // Inside a task body running on the executor, a blocking twin that would wait
        // refuses (one that never waits answers: see
        // `a_blocking_body_makes_the_calls_that_never_wait`).
        let lock = client.lock("refused");
        let refused = client.submit_async(
            move |_: ()| {
                let lock = lock.clone();
                async move {
                    matches!(
                        lock.blocking().acquire_timeout(SHORT),
                        Err(Error::BlockingInAsyncContext)
                    )
                }
            },
            (),
        );
        assert!(within(&client, "the refusal", refused).await.unwrap());
    }
}

/// Runs `body` on its own thread and fails if it does not finish within [`DEADLINE`].
fn with_deadline(name: &str, body: impl FnOnce() + Send + 'static) {
    let (done, finished) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
        let _ = done.send(());
        result
    });
    match finished.recv_timeout(DEADLINE) {
        Ok(()) => {
            if let Err(panic) = thread.join().expect("the case thread reports") {
                std::panic::resume_unwind(panic);
            }
        }
        Err(_) => panic!("case {name} did not finish within {DEADLINE:?}: it hangs"),
    }
}

#[cfg(feature = "redis")]
#[path = "support/redis_server.rs"]
mod redis_server;

mod harness {
    use super::*;

    /// The case with its primitives in a real redis-server (one per case, on a free
    /// loopback port) and its tasks on in-process workers of the embedded executor
    /// ([`ClientBuilder::coordination_redis`](taskweave::ClientBuilder::coordination_redis)):
    /// the same bodies, each call a round trip to Redis, each wake-up through its pub/sub.
    #[cfg(feature = "redis")]
    pub fn redis(name: &str, case: Case) {
        use taskweave::transport::redis::RedisConfig;
        let server = crate::redis_server::RedisServer::start();
        let url = server.url();
        with_deadline(name, move || {
            futures::executor::block_on(async move {
                let client = Client::builder()
                    .executor(taskweave::runtimes::embedded::EmbeddedExecutor::global())
                    .workers(2)
                    .coordination_redis(RedisConfig::new(url))
                    .build()
                    .await
                    .expect("build a client");
                case(client).await;
            })
        });
        drop(server);
    }

    pub fn embedded(name: &str, case: Case) {
        with_deadline(name, move || {
            futures::executor::block_on(async move {
                let client = Client::builder()
                    .executor(taskweave::runtimes::embedded::EmbeddedExecutor::global())
                    .workers(2)
                    .build()
                    .await
                    .expect("build a client");
                case(client).await;
            })
        });
    }

    #[cfg(feature = "tokio")]
    pub fn tokio_current_thread(name: &str, case: Case) {
        with_deadline(name, move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            runtime.unwrap().block_on(async move {
                let client = Client::builder().workers(2).build().await.expect("build a client");
                assert_eq!(client.executor().name(), "tokio");
                case(client).await;
            });
        });
    }

    #[cfg(feature = "tokio")]
    pub fn tokio_multi_thread(name: &str, case: Case) {
        with_deadline(name, move || {
            let runtime =
                tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
            runtime.unwrap().block_on(async move {
                let client = Client::builder().workers(2).build().await.expect("build a client");
                assert_eq!(client.executor().name(), "tokio");
                case(client).await;
            });
        });
    }

    #[cfg(feature = "smol")]
    pub fn smol(name: &str, case: Case) {
        with_deadline(name, move || {
            ::smol::block_on(async move {
                let client = Client::builder()
                    .executor(taskweave::runtimes::smol::SmolExecutor::global())
                    .workers(2)
                    .build()
                    .await
                    .expect("build a client");
                case(client).await;
            });
        });
    }

    /// The case on the deterministic simulation, for several seeds: timeouts run in virtual
    /// time, and a wait nothing will end is reported as a deadlock rather than a hang.
    #[cfg(feature = "sim")]
    pub fn sim(name: &str, case: Case) {
        use taskweave::runtimes::sim::{SimConfig, SimExecutor};
        let name = name.to_owned();
        with_deadline(&name.clone(), move || {
            for seed in 0..6 {
                let sim = SimExecutor::new(SimConfig::new(seed));
                let client =
                    Client::builder().executor(sim.clone()).workers(2).build_blocking().unwrap();
                sim.block_on(case(client.clone()))
                    .unwrap_or_else(|error| panic!("{name}, seed {seed}: {error}"));
                drop(client);
                sim.run_until_idle().unwrap();
                sim.shutdown();
            }
        });
    }
}

macro_rules! tests_on {
    ($harness:ident, $cfg:meta; $($module:ident :: $case:ident),* $(,)?) => {
        tests_on!($harness as $harness, $cfg; $($module :: $case),*);
    };
    ($harness:ident as $test_module:ident, $cfg:meta; $($module:ident :: $case:ident),* $(,)?) => {
        #[$cfg]
        mod $test_module {
            $(
                #[test]
                fn $case() {
                    crate::harness::$harness(
                        stringify!($case),
                        |client| Box::pin(crate::$module::$case(client)),
                    );
                }
            )*
        }
    };
}

/// The cases that hold only in process: futures in queues and variables (a future cannot
/// cross processes); blocking calls inside async code that complete at once there
/// (on Redis every call is a round trip, which async code must await); a semaphore's size
/// refused when the handle is made (on Redis, at its first acquire); names let go of in
/// this process's memory.
macro_rules! in_process_cases {
    ($harness:ident as $module:ident, $cfg:meta) => {
        tests_on!($harness as $module, $cfg;
            cases::a_queued_future_keeps_its_task_alive,
            cases::a_variable_holding_a_future_keeps_its_task_alive,
            cases::a_blocking_body_makes_the_calls_that_never_wait,
            cases::a_semaphore_of_another_size_is_refused_when_made,
            cases::names_in_no_use_are_let_go,
        );
    };
}

/// The cases that hold on every backend.
macro_rules! every_case {
    ($harness:ident, $cfg:meta) => {
        tests_on!($harness, $cfg;
            cases::lock_gives_mutual_exclusion_to_twenty_tasks,
            cases::semaphore_never_exceeds_max_leases,
            cases::releases_back_to_back_wake_a_waiter_each,
            cases::gets_back_to_back_wake_a_producer_each,
            cases::a_waiting_batch_does_not_strand_a_single_consumer,
            cases::event_wakes_every_waiter,
            cases::queue_pushes_back_and_keeps_each_producers_order,
            cases::variable_get_waits_for_set,
            cases::topics_deliver_in_order_to_every_subscriber,
            cases::every_timeout_answers_no_rather_than_an_error,
            cases::wrong_input_gets_a_clear_error,
            cases::timed_out_waits_leave_nothing_behind,
            cases::close_ends_every_wait,
            cases::a_lease_ends_with_the_task_that_holds_it,
            cases::a_set_then_clear_wakes_waiters_already_waiting,
            cases::a_plain_handle_knows_the_bound_of_its_name,
            cases::deleting_a_never_set_variable_does_nothing,
            cases::a_lease_id_travels_to_the_task_that_releases_it,
            cases::after_close_each_operation_names_itself,
            cases::type_names_are_short_in_errors_and_debug,
            cases::dataset_outlives_the_future_handle_that_made_it,
            cases::wrong_dataset_input_gets_a_clear_error,
        );
    };
}

every_case!(embedded, cfg(all()));
every_case!(tokio_current_thread, cfg(feature = "tokio"));
every_case!(tokio_multi_thread, cfg(feature = "tokio"));
every_case!(smol, cfg(feature = "smol"));
every_case!(sim, cfg(feature = "sim"));
every_case!(redis, cfg(feature = "redis"));

in_process_cases!(embedded as embedded_in_process, cfg(all()));
in_process_cases!(tokio_current_thread as tokio_current_thread_in_process, cfg(feature = "tokio"));
in_process_cases!(tokio_multi_thread as tokio_multi_thread_in_process, cfg(feature = "tokio"));
in_process_cases!(smol as smol_in_process, cfg(feature = "smol"));
in_process_cases!(sim as sim_in_process, cfg(feature = "sim"));

tests_on!(embedded as embedded_threaded, cfg(all());
    threaded_cases::blocking_twins_work_from_a_plain_thread);
tests_on!(tokio_multi_thread as tokio_multi_thread_threaded, cfg(feature = "tokio");
    threaded_cases::blocking_twins_work_from_a_plain_thread);

/// Every handle can be moved into a task body and shared between threads.
#[test]
fn handles_are_send_sync_and_clone() {
    fn assert_send_sync_clone<T: Send + Sync + Clone>() {}
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync_clone::<taskweave::Lock>();
    assert_send_sync_clone::<taskweave::Semaphore>();
    assert_send_sync_clone::<taskweave::Event>();
    assert_send_sync_clone::<taskweave::Queue<String>>();
    assert_send_sync_clone::<taskweave::Queue<TaskFuture<u8>>>();
    assert_send_sync_clone::<taskweave::Variable<u64>>();
    assert_send_sync::<taskweave::Lease>();
    fn assert_send<T: Send>() {}
    assert_send::<taskweave::Subscription<u32>>();
}
