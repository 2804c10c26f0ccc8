//! Cluster management from a client: [`Client::wait_for_workers`] (Dask's
//! `Client.wait_for_workers`) and its blocking twin.
//!
//! The in-process pool has a fixed size, known when the client is built: asking it for more
//! workers than it has is an error at once, never a wait. A distributed transport's workers
//! come and go (their heartbeats), so the client asks the transport for them
//! ([`Transport::workers`](crate::transport::Transport::workers)) until enough have joined or
//! the timeout is up.

use std::time::Duration;

use super::Client;
use super::blocking::{BlockingClient, block_on_caller_thread};
use crate::error::Error;
use crate::transport::WorkerInfo;

/// The first pause between two looks at the workers; each pause doubles, up to
/// [`MAX_POLL`].
const FIRST_POLL: Duration = Duration::from_millis(10);

/// The longest pause between two looks at the workers: a worker that joins is seen within it.
const MAX_POLL: Duration = Duration::from_millis(250);

impl Client {
    /// Waits until at least `n` workers serve this client, and returns them (all of them,
    /// maybe more than `n`): for a script that starts worker processes and must not submit
    /// before they are there, or a test that needs two workers to see work spread.
    ///
    /// The in-process pool never grows: with at least `n` workers it answers at once, with
    /// fewer it fails at once. A distributed transport's workers are those whose heartbeat
    /// is current ([`workers`](Client::workers)); the client looks again every 10 ms at
    /// first, then less often (at most every 250 ms), until `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for `n == 0` (nothing to wait for: call
    /// [`workers`](Client::workers) to see who is there); [`Error::Cluster`] when the
    /// in-process pool has fewer than `n` workers (build the client with
    /// [`workers(n)`](crate::ClientBuilder::workers)), or when fewer than `n` joined within
    /// `timeout` (the message says how many did and the last transport error, if any: start
    /// more workers on the client's queue, or wait longer); [`Error::Closed`] once the client
    /// is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// use std::time::Duration;
    ///
    /// let client = taskweave::Client::builder().workers(2).build().await?;
    /// let workers = client.wait_for_workers(2, Duration::from_secs(1)).await?;
    /// assert_eq!(workers.len(), 2);
    /// // The in-process pool never grows: asking for more fails at once, it does not wait.
    /// let more = client.wait_for_workers(3, Duration::from_secs(60)).await;
    /// assert!(matches!(more, Err(taskweave::Error::Cluster { .. })));
    /// # client.close().await }
    /// # futures::executor::block_on(run()).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops waiting; nothing else changes.
    pub async fn wait_for_workers(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<WorkerInfo>, Error> {
        if n == 0 {
            return Err(Error::InvalidConfig {
                message: "wait_for_workers(0) has nothing to wait for; ask for at least one \
                          worker, or call workers() to see who is there"
                    .into(),
            });
        }
        self.refuse_if_closed("wait_for_workers")?;
        let transport = &self.core().transport;
        let fixed = transport.name() == "in-process";
        let executor = self.executor();
        let deadline = executor.now() + timeout;
        let mut pause = FIRST_POLL;
        loop {
            let (workers, error) = match transport.workers().await {
                Ok(workers) => (workers, None),
                Err(error) => (Vec::new(), Some(error)),
            };
            if workers.len() >= n {
                return Ok(workers);
            }
            if fixed {
                return Err(Error::Cluster {
                    operation: "wait_for_workers",
                    problem: format!(
                        "the in-process pool has {} workers and never grows, so {n} will not \
                         join; build the client with .workers({n})",
                        workers.len()
                    ),
                });
            }
            let now = executor.now();
            // The give-up rule: the timeout, whatever the transport answers meanwhile.
            if now >= deadline {
                let why = error
                    .map_or_else(String::new, |error| format!(" (the last look failed: {error})"));
                return Err(Error::Cluster {
                    operation: "wait_for_workers",
                    problem: format!(
                        "{} of {n} workers joined within {timeout:?}{why}; start more workers \
                         on this client's queue, or wait longer",
                        workers.len()
                    ),
                });
            }
            executor.sleep(pause.min(deadline - now)).await;
            self.refuse_if_closed("wait_for_workers")?;
            pause = (pause * 2).min(MAX_POLL);
        }
    }
}

impl BlockingClient<'_> {
    /// Waits until at least `n` workers serve the client; see [`Client::wait_for_workers`].
    ///
    /// # Errors
    ///
    /// As [`Client::wait_for_workers`]; [`Error::BlockingInAsyncContext`] from async code.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let client = taskweave::Client::builder().workers(2).build_blocking()?;
    /// let workers = client.blocking().wait_for_workers(1, Duration::from_secs(1))?;
    /// assert_eq!(workers.len(), 2, "all of them, at least one");
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn wait_for_workers(&self, n: usize, timeout: Duration) -> Result<Vec<WorkerInfo>, Error> {
        block_on_caller_thread(self.client.wait_for_workers(n, timeout))?
    }
}
