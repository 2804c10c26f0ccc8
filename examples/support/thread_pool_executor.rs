// A minimal executor written by hand against taskweave's public `Executor` trait: a few std
// threads pulling boxed futures from a channel, woken through `futures`' `ArcWake`. Shared by
// `examples/custom_runtime.rs` and the conformance suite (included with `#[path]`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::task::{ArcWake, waker_ref};
use taskweave::executor::{BoxFuture, Executor, enter_async_context};

/// A pool of `threads` OS threads running futures; blocking work gets a thread of its own.
#[derive(Debug, Clone)]
pub(crate) struct ThreadPoolExecutor {
    queue: flume::Sender<Arc<PoolTask>>,
}

/// One spawned future; re-queued on wake.
struct PoolTask {
    future: Mutex<Option<BoxFuture<()>>>,
    queue: flume::Sender<Arc<PoolTask>>,
}

impl ArcWake for PoolTask {
    fn wake_by_ref(task: &Arc<Self>) {
        let _ = task.queue.send(Arc::clone(task));
    }
}

impl ThreadPoolExecutor {
    /// Starts `threads` threads that run until the process exits.
    pub(crate) fn new(threads: usize) -> ThreadPoolExecutor {
        let (queue, incoming) = flume::unbounded::<Arc<PoolTask>>();
        for index in 0..threads {
            let incoming = incoming.clone();
            std::thread::Builder::new()
                .name(format!("pool-{index}"))
                .spawn(move || {
                    let _marker = enter_async_context();
                    while let Ok(task) = incoming.recv() {
                        let mut slot = task.future.lock().unwrap();
                        if let Some(mut future) = slot.take() {
                            let waker = waker_ref(&task);
                            let mut context = std::task::Context::from_waker(&waker);
                            if future.as_mut().poll(&mut context).is_pending() {
                                *slot = Some(future);
                            }
                        }
                    }
                })
                .expect("start a pool thread");
        }
        ThreadPoolExecutor { queue }
    }
}

impl Executor for ThreadPoolExecutor {
    fn name(&self) -> &'static str {
        "custom-thread-pool"
    }

    fn spawn(&self, future: BoxFuture<()>) -> Result<(), taskweave::Error> {
        let task =
            Arc::new(PoolTask { future: Mutex::new(Some(future)), queue: self.queue.clone() });
        self.queue
            .send(task)
            .map_err(|_| taskweave::Error::RuntimeShutDown { runtime: "custom-thread-pool" })
    }

    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) -> Result<(), taskweave::Error> {
        std::thread::Builder::new().spawn(work).map(drop).map_err(taskweave::Error::ThreadSpawn)
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<()> {
        // No timer wheel here: a helper thread sleeps and completes a oneshot.
        let (done, wait) = futures::channel::oneshot::channel::<()>();
        let _ = self.spawn_blocking(Box::new(move || {
            std::thread::sleep(duration);
            let _ = done.send(());
        }));
        Box::pin(async move {
            let _ = wait.await;
        })
    }
}
