//! The async-std adapter (feature `async-std`).
//!
//! async-std is discontinued upstream (RUSTSEC-2025-0052) and its maintainers recommend smol.
//! This adapter stays for the applications that are still on it; new code should use the
//! `smol` feature.

use std::time::Duration;

use crate::Error;
use crate::executor::{BoxFuture, Executor};

/// Runs taskweave on async-std's global executor.
///
/// # Examples
///
/// ```
/// use taskweave::runtimes::async_std::AsyncStdExecutor;
///
/// async_std::task::block_on(async {
///     let client = taskweave::Client::builder().executor(AsyncStdExecutor::new()).build().await?;
///     assert_eq!(client.submit(|x: i64| x + 1, 10).await?, 11);
///     client.close().await
/// })?;
/// # Ok::<(), taskweave::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct AsyncStdExecutor {
    _private: (),
}

impl AsyncStdExecutor {
    /// async-std's global executor.
    pub fn new() -> AsyncStdExecutor {
        AsyncStdExecutor { _private: () }
    }

    /// Whether the current code runs inside an async-std task.
    pub fn is_inside_task() -> bool {
        async_std::task::try_current().is_some()
    }
}

impl Executor for AsyncStdExecutor {
    fn name(&self) -> &'static str {
        "async-std"
    }

    fn now_is_system_clock(&self) -> bool {
        // `now` is the default, `Instant::now`.
        true
    }

    fn spawn(&self, future: BoxFuture<()>) -> Result<(), Error> {
        drop(async_std::task::spawn(future));
        Ok(())
    }

    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) -> Result<(), Error> {
        drop(async_std::task::spawn_blocking(work));
        Ok(())
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<()> {
        Box::pin(async_std::task::sleep(duration))
    }
}
