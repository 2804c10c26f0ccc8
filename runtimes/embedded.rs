//! The embedded default executor: used when no runtime is named and none is running, so that
//! taskweave works with no cargo feature at all.
//!
//! It is built from smol's parts: an [`async_executor::Executor`] driven by a few background
//! threads under [`async_io::block_on`], [`async_io::Timer`] for sleeping, and the
//! [`blocking`] thread pool for blocking work.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::Error;
use crate::executor::{BoxFuture, Executor, enter_async_context};

/// The executor taskweave brings along. All handles share one process-wide pool of threads
/// (as many as cores, at most 4), started on first use and kept for the life of the process.
///
/// # Examples
///
/// ```
/// use taskweave::runtimes::embedded::EmbeddedExecutor;
///
/// let client = taskweave::Client::builder()
///     .executor(EmbeddedExecutor::global())
///     .build_blocking()?;
/// assert_eq!(client.submit(|x: i32| x - 1, 1).result()?, 0);
/// # Ok::<(), taskweave::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct EmbeddedExecutor {
    executor: Arc<async_executor::Executor<'static>>,
}

impl EmbeddedExecutor {
    /// The process-wide embedded executor, started on first use.
    pub fn global() -> EmbeddedExecutor {
        static GLOBAL: OnceLock<EmbeddedExecutor> = OnceLock::new();
        GLOBAL.get_or_init(EmbeddedExecutor::start).clone()
    }

    fn start() -> EmbeddedExecutor {
        let executor = Arc::new(async_executor::Executor::new());
        let threads = std::thread::available_parallelism().map_or(1, usize::from).clamp(1, 4);
        for index in 0..threads {
            let executor = Arc::clone(&executor);
            let spawned = std::thread::Builder::new()
                .name(format!("taskweave-embedded-{index}"))
                .spawn(move || {
                    let _marker = enter_async_context();
                    async_io::block_on(executor.run(futures::future::pending::<()>()));
                });
            if let Err(error) = spawned {
                // With fewer threads the executor still runs; with none, spawned futures
                // would never run, so say so loudly.
                tracing::error!(%error, "could not start an embedded executor thread");
            }
        }
        EmbeddedExecutor { executor }
    }
}

impl Executor for EmbeddedExecutor {
    fn name(&self) -> &'static str {
        "embedded"
    }

    fn now_is_system_clock(&self) -> bool {
        // `now` is the default, `Instant::now`.
        true
    }

    fn spawn(&self, future: BoxFuture<()>) -> Result<(), Error> {
        self.executor.spawn(future).detach();
        Ok(())
    }

    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) -> Result<(), Error> {
        blocking::unblock(work).detach();
        Ok(())
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<()> {
        Box::pin(async move {
            async_io::Timer::after(duration).await;
        })
    }
}
