//! Cluster management from a client: [`Client::wait_for_workers`] (Dask's
//! `Client.wait_for_workers`), [`Client::retire_workers`] and their blocking twins.
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

impl Client {
    /// Retires the workers named `names` gracefully (Dask's `retire_workers`) and waits until
    /// they have left: each stops taking tasks, finishes the ones it runs, and hands the
    /// ones it took but did not start back to the queue for the other workers — what a
    /// SIGTERM does. Returns the names once none of them is listed by
    /// [`workers`](Client::workers) any more.
    ///
    /// On Redis the client sets a flag per worker, which the worker reads at its next
    /// heartbeat (a third of its [reclaim time](crate::worker::WorkerBuilder::reclaim_after),
    /// 10 s at most). The worker's [`run`](crate::worker::WorkerBuilder::run) then returns
    /// as after a signal. Names come from [`workers`](Client::workers).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for no names; [`Error::Cluster`] when a name is not a live
    /// worker of this client's queue (nobody is asked then; the message lists the live
    /// ones), on the in-process pool (its workers are the client's own threads: close the
    /// client, or build it with fewer workers), on a transport that cannot retire workers,
    /// or when a worker is still there after `timeout` (its running tasks have not
    /// finished; it goes on retiring); [`Error::Transport`] when Redis cannot be reached.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(client: taskweave::Client) -> Result<(), taskweave::Error> {
    /// use std::time::Duration;
    ///
    /// let workers = client.wait_for_workers(2, Duration::from_secs(30)).await?;
    /// // Scale down by one: its queued work moves to the other.
    /// let retired = client.retire_workers(&[&workers[0].name], Duration::from_secs(60)).await?;
    /// assert_eq!(retired, [workers[0].name.clone()]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops waiting; the workers already asked retire all the same.
    pub async fn retire_workers<S: AsRef<str>>(
        &self,
        names: &[S],
        timeout: Duration,
    ) -> Result<Vec<String>, Error> {
        let names: Vec<String> = names.iter().map(|name| name.as_ref().to_owned()).collect();
        if names.is_empty() {
            return Err(Error::InvalidConfig {
                message: "retire_workers with no worker names retires nobody; pass the names \
                          workers() lists"
                    .into(),
            });
        }
        self.refuse_if_closed("retire_workers")?;
        let transport = &self.core().transport;
        if transport.name() == "in-process" {
            return Err(Error::Cluster {
                operation: "retire_workers",
                problem: "the in-process pool's workers are this client's own threads and \
                          cannot be retired one by one; close the client, or build it with \
                          fewer workers"
                    .into(),
            });
        }
        let live = transport.workers().await?;
        let unknown: Vec<&String> =
            names.iter().filter(|name| !live.iter().any(|worker| &worker.name == *name)).collect();
        if !unknown.is_empty() {
            let live: Vec<&str> = live.iter().map(|worker| worker.name.as_str()).collect();
            return Err(Error::Cluster {
                operation: "retire_workers",
                problem: format!(
                    "no live worker of this client's queue is named {unknown:?} (live: \
                     {live:?}), so nobody was asked to retire; pass names that workers() lists"
                ),
            });
        }
        self.ask_to_retire(&names, timeout).await?;
        let executor = self.executor();
        let deadline = executor.now() + timeout;
        let mut pause = FIRST_POLL;
        loop {
            let remaining: Vec<String> = match transport.workers().await {
                Ok(live) => names
                    .iter()
                    .filter(|name| live.iter().any(|worker| &worker.name == *name))
                    .cloned()
                    .collect(),
                Err(_) => names.clone(),
            };
            if remaining.is_empty() {
                return Ok(names);
            }
            let now = executor.now();
            if now >= deadline {
                return Err(Error::Cluster {
                    operation: "retire_workers",
                    problem: format!(
                        "{remaining:?} still ran {timeout:?} after being asked to retire (their \
                         running tasks have not finished); they go on retiring: wait longer, \
                         or stop their processes"
                    ),
                });
            }
            executor.sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(MAX_POLL);
        }
    }

    /// Sets the retire flag of each of `names` (they are live workers of the transport).
    async fn ask_to_retire(&self, names: &[String], timeout: Duration) -> Result<(), Error> {
        #[cfg(feature = "redis")]
        if let Some(redis) = self
            .core()
            .transport
            .as_any()
            .and_then(|any| any.downcast_ref::<crate::transport::redis::RedisTransport>())
        {
            // The flag outlives the wait, and a worker's next heartbeat, by far.
            let ttl = timeout.max(RETIRE_FLAG_MIN_TTL);
            for name in names {
                redis.request_retire(name, ttl).await?;
            }
            return Ok(());
        }
        let _ = (names, timeout);
        Err(Error::Cluster {
            operation: "retire_workers",
            problem: format!(
                "the {} transport cannot retire its workers; stop their processes instead \
                 (a SIGTERM retires a Redis worker gracefully)",
                self.core().transport.name()
            ),
        })
    }
}

/// How long a retire flag lives at least: longer than any worker's heartbeat interval.
#[cfg(feature = "redis")]
const RETIRE_FLAG_MIN_TTL: Duration = Duration::from_secs(60);

impl BlockingClient<'_> {
    /// Retires the workers named `names` and waits until they left; see
    /// [`Client::retire_workers`].
    ///
    /// # Errors
    ///
    /// As [`Client::retire_workers`]; [`Error::BlockingInAsyncContext`] from async code.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let client = taskweave::Client::builder().workers(2).build_blocking()?;
    /// // The in-process pool's workers are the client's own threads.
    /// let refused = client.blocking().retire_workers(&["worker-0"], Duration::from_secs(1));
    /// assert!(matches!(refused, Err(taskweave::Error::Cluster { .. })));
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn retire_workers<S: AsRef<str>>(
        &self,
        names: &[S],
        timeout: Duration,
    ) -> Result<Vec<String>, Error> {
        block_on_caller_thread(self.client.retire_workers(names, timeout))?
    }

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
