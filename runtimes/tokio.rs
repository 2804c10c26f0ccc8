//! The tokio adapter (feature `tokio`).

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::runtime::Handle;

use crate::Error;
use crate::executor::{BoxFuture, Executor};

/// Runs taskweave on a tokio runtime.
///
/// Picked automatically when a client is built inside a tokio runtime with the `tokio`
/// feature on. Timers use tokio's timer when the runtime has it enabled, and the embedded
/// timer otherwise, so a runtime built without `enable_time` still works.
///
/// # Examples
///
/// ```
/// use taskweave::runtimes::tokio::TokioExecutor;
///
/// #[tokio::main]
/// async fn main() -> Result<(), taskweave::Error> {
///     let client = taskweave::Client::builder().executor(TokioExecutor::current()?).build().await?;
///     assert_eq!(client.submit(|x: i64| x + 1, 10).await?, 11);
///     client.close().await
/// }
/// ```
#[derive(Debug, Clone)]
pub struct TokioExecutor {
    handle: Handle,
    timer_enabled: bool,
}

impl TokioExecutor {
    /// The runtime this thread is running in.
    ///
    /// # Errors
    ///
    /// [`Error::NoRuntime`] outside a tokio runtime.
    pub fn current() -> Result<TokioExecutor, Error> {
        Handle::try_current()
            .map(TokioExecutor::from_handle)
            .map_err(|_| Error::NoRuntime { runtime: "tokio" })
    }

    /// The runtime behind `handle` (for example `runtime.handle().clone()`).
    pub fn from_handle(handle: Handle) -> TokioExecutor {
        // Creating a `Sleep` panics when the runtime has no timer; find out once, here,
        // instead of at the first timeout.
        let timer_enabled = {
            let _entered = handle.enter();
            std::panic::catch_unwind(|| drop(tokio::time::sleep(Duration::ZERO))).is_ok()
        };
        TokioExecutor { handle, timer_enabled }
    }

    /// Whether this thread is inside a tokio runtime. taskweave's own dedicated threads
    /// (its worker loops and Redis runners) do not count: they enter the runtime's context
    /// only so that libraries used on them may spawn on it, and whether they drive async
    /// work is marked by taskweave itself.
    pub fn is_inside_runtime() -> bool {
        Handle::try_current().is_ok() && !DEDICATED_THREAD.with(Cell::get)
    }

    /// Spawns and tells whether the runtime took the task: a shut-down runtime drops the task
    /// at once, unpolled.
    fn spawn_checked<F: Future<Output = ()> + Send + 'static>(
        &self,
        future: F,
    ) -> Result<(), Error> {
        let started = Arc::new(AtomicBool::new(false));
        let started_in_task = Arc::clone(&started);
        let join = self.handle.spawn(async move {
            started_in_task.store(true, Ordering::Release);
            future.await;
        });
        if join.is_finished() && !started.load(Ordering::Acquire) {
            return Err(Error::RuntimeShutDown { runtime: "tokio" });
        }
        Ok(())
    }
}

thread_local! {
    /// Set on the dedicated threads of [`TokioExecutor::spawn_dedicated`].
    static DEDICATED_THREAD: Cell<bool> = const { Cell::new(false) };
}

impl Executor for TokioExecutor {
    fn name(&self) -> &'static str {
        "tokio"
    }

    fn now_is_system_clock(&self) -> bool {
        // `now` is the default, `Instant::now`.
        true
    }

    /// A thread of its own that runs inside the runtime's context: code on it may use tokio
    /// (the redis crate, for one, reconnects by spawning on the runtime its connection was
    /// made on; a Redis worker's runners call it from their own threads).
    fn spawn_dedicated(&self, name: &str, future: BoxFuture<()>) -> Result<(), Error> {
        let handle = self.handle.clone();
        std::thread::Builder::new()
            .name(format!("taskweave-{name}"))
            .spawn(move || {
                let _runtime = handle.enter();
                DEDICATED_THREAD.with(|dedicated| dedicated.set(true));
                crate::executor::drive_on_current_thread(future);
            })
            .map(drop)
            .map_err(Error::ThreadSpawn)
    }

    fn spawn(&self, future: BoxFuture<()>) -> Result<(), Error> {
        self.spawn_checked(future)
    }

    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) -> Result<(), Error> {
        drop(self.handle.spawn_blocking(work));
        Ok(())
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<()> {
        if self.timer_enabled {
            let _entered = self.handle.enter();
            Box::pin(tokio::time::sleep(duration))
        } else {
            Box::pin(async move {
                async_io::Timer::after(duration).await;
            })
        }
    }
}
