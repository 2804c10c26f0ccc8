//! The smol adapter (feature `smol`).

use std::sync::Arc;
use std::time::Duration;

use crate::Error;
use crate::executor::{BoxFuture, Executor};

/// Runs taskweave on smol: on an executor of yours, or on smol's global executor.
///
/// # Examples
///
/// ```
/// use taskweave::runtimes::smol::SmolExecutor;
///
/// smol::block_on(async {
///     let client = taskweave::Client::builder().executor(SmolExecutor::global()).build().await?;
///     assert_eq!(client.submit(|x: i64| x + 1, 10).await?, 11);
///     client.close().await
/// })?;
/// # Ok::<(), taskweave::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SmolExecutor {
    executor: Option<Arc<smol::Executor<'static>>>,
}

impl SmolExecutor {
    /// smol's global executor (`smol::spawn`), whose threads smol starts itself.
    pub fn global() -> SmolExecutor {
        SmolExecutor { executor: None }
    }

    /// An executor of yours. Something must run it (for example threads calling
    /// `smol::block_on(executor.run(..))`), or spawned futures never make progress.
    pub fn from_executor(executor: Arc<smol::Executor<'static>>) -> SmolExecutor {
        SmolExecutor { executor: Some(executor) }
    }
}

impl Executor for SmolExecutor {
    fn name(&self) -> &'static str {
        "smol"
    }

    fn now_is_system_clock(&self) -> bool {
        // `now` is the default, `Instant::now`.
        true
    }

    fn spawn(&self, future: BoxFuture<()>) -> Result<(), Error> {
        match &self.executor {
            Some(executor) => executor.spawn(future).detach(),
            None => smol::spawn(future).detach(),
        }
        Ok(())
    }

    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) -> Result<(), Error> {
        smol::unblock(work).detach();
        Ok(())
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<()> {
        Box::pin(async move {
            smol::Timer::after(duration).await;
        })
    }
}
