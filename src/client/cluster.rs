//! Cluster management from a client: [`Client::wait_for_workers`] (Dask's
//! `Client.wait_for_workers`), [`Client::retire_workers`] and their blocking twins.
//!
//! The in-process pool has a fixed size, known when the client is built: asking it for more
//! workers than it has is an error at once, never a wait. A distributed transport's workers
//! come and go (their heartbeats), so the client asks the transport for them
//! ([`Transport::workers`](crate::transport::Transport::workers)) until enough have joined or
//! the timeout is up.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Client;
use super::blocking::{BlockingClient, block_on_caller_thread};
use crate::error::Error;
use crate::task::Task;
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

impl Client {
    /// Runs the registered task `T` once on every worker serving this client, on `input`,
    /// and returns each worker's outcome by its name (Dask's `client.run(f)`): to read each
    /// worker's state, warm a cache, or check its environment.
    ///
    /// On Redis each live worker of the client's queue takes the request at its next
    /// heartbeat (a third of its [reclaim time](crate::worker::WorkerBuilder::reclaim_after),
    /// 10 s at most) and runs `T` on a thread of its own beside its task slots (it neither
    /// waits for a slot nor takes one); `T` must be registered on the workers. In-process the
    /// workers share this process: `T` runs once per worker of the pool, on the executor's
    /// blocking threads, keyed `worker-0`, `worker-1`, ...
    ///
    /// # Errors
    ///
    /// [`Error::Cluster`] when no worker serves the client (start some, or
    /// [`wait_for_workers`](Client::wait_for_workers) first); [`Error::Transport`] when
    /// Redis cannot be reached; [`Error::Serialization`] when `input` does not encode. A
    /// worker's own failure is its entry in the map: `Error::Cluster` naming the worker and
    /// saying what happened (the task failed or panicked, is not registered there, or the
    /// worker did not answer within `timeout`: it died, or is too busy to heartbeat), or
    /// `Error::Serialization` when its output does not decode.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// use std::time::Duration;
    /// use taskweave::Task;
    ///
    /// struct Pid;
    /// impl Task for Pid {
    ///     const NAME: &'static str = "pid";
    ///     type Input = ();
    ///     type Output = u32;
    ///     type Error = std::convert::Infallible;
    ///     fn run((): ()) -> Result<u32, Self::Error> {
    ///         Ok(std::process::id())
    ///     }
    /// }
    ///
    /// let client = taskweave::Client::builder().workers(2).build().await?;
    /// let pids = client.run_on_workers::<Pid>((), Duration::from_secs(10)).await?;
    /// assert_eq!(pids.len(), 2);
    /// assert_eq!(*pids["worker-0"].as_ref().unwrap(), std::process::id());
    /// # client.close().await }
    /// # futures::executor::block_on(run()).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops waiting; workers that took the request run it all the same.
    pub async fn run_on_workers<T: Task>(
        &self,
        input: T::Input,
        timeout: Duration,
    ) -> Result<BTreeMap<String, Result<T::Output, Error>>, Error> {
        self.refuse_if_closed("run_on_workers")?;
        let transport = &self.core().transport;
        let workers: Vec<String> =
            transport.workers().await?.into_iter().map(|worker| worker.name).collect();
        if workers.is_empty() {
            return Err(Error::Cluster {
                operation: "run_on_workers",
                problem: "no worker serves this client; start workers on its queue, or call \
                          wait_for_workers first"
                    .into(),
            });
        }
        if transport.name() == "in-process" {
            return self.run_in_process::<T>(input, workers).await;
        }
        self.run_remotely::<T>(input, workers, timeout).await
    }

    /// [`run_on_workers`](Client::run_on_workers) on the in-process pool: `T` once per
    /// worker, on the executor's blocking threads.
    async fn run_in_process<T: Task>(
        &self,
        input: T::Input,
        workers: Vec<String>,
    ) -> Result<BTreeMap<String, Result<T::Output, Error>>, Error> {
        let mut outcomes = BTreeMap::new();
        let mut running = Vec::new();
        for worker in workers {
            let (done, outcome) = flume::bounded(1);
            let input = input.clone();
            let run = Box::new(move || {
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| T::run(input)));
                let _ = done.send(
                    ran.map(|ran| ran.map_err(|error| error.to_string()))
                        .map_err(|panic| crate::job::panic_message(&*panic)),
                );
            });
            self.executor().spawn_blocking(run)?;
            running.push((worker, outcome));
        }
        for (worker, outcome) in running {
            let outcome = match outcome.recv_async().await {
                Ok(Ok(Ok(output))) => Ok(output),
                Ok(Ok(Err(message))) => Err(ran_badly(&worker, T::NAME, "failed", &message)),
                Ok(Err(message)) => Err(ran_badly(&worker, T::NAME, "panicked", &message)),
                Err(_) => Err(ran_badly(&worker, T::NAME, "was dropped", "its thread ended")),
            };
            outcomes.insert(worker, outcome);
        }
        Ok(outcomes)
    }

    /// [`run_on_workers`](Client::run_on_workers) on a transport whose workers live in
    /// other processes.
    async fn run_remotely<T: Task>(
        &self,
        input: T::Input,
        workers: Vec<String>,
        timeout: Duration,
    ) -> Result<BTreeMap<String, Result<T::Output, Error>>, Error> {
        #[cfg(feature = "redis")]
        if let Some(redis) = self
            .core()
            .transport
            .as_any()
            .and_then(|any| any.downcast_ref::<crate::transport::redis::RedisTransport>())
        {
            let input = serde_json::to_string(&input)
                .map_err(|error| Error::Serialization(Box::new(error)))?;
            let ttl = timeout.max(RETIRE_FLAG_MIN_TTL);
            let id =
                format!("{:016x}{:016x}", self.executor().random_seed(), self.core().fresh_token());
            let request = crate::transport::redis::RunRequest {
                id: id.clone(),
                task: T::NAME.to_owned(),
                input,
                ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            };
            redis.request_runs(&workers, &request, ttl).await?;
            let executor = self.executor();
            let deadline = executor.now() + timeout;
            let mut pause = FIRST_POLL;
            let mut answers: Vec<Option<crate::transport::redis::RunAnswer>> =
                vec![None; workers.len()];
            // The give-up rule: the timeout; a look that fails is tried again until then.
            loop {
                if let Ok(seen) = redis.run_answers(&id, &workers).await {
                    for (answer, seen) in answers.iter_mut().zip(seen) {
                        if answer.is_none() {
                            *answer = seen;
                        }
                    }
                }
                let now = executor.now();
                if answers.iter().all(Option::is_some) || now >= deadline {
                    break;
                }
                executor.sleep(pause.min(deadline - now)).await;
                pause = (pause * 2).min(MAX_POLL);
            }
            let mut outcomes = BTreeMap::new();
            for (worker, answer) in workers.into_iter().zip(answers) {
                let outcome = match answer {
                    None => Err(ran_badly(
                        &worker,
                        T::NAME,
                        "did not answer",
                        &format!(
                            "no answer within {timeout:?} (the worker died, or has not had a \
                             heartbeat since: wait longer)"
                        ),
                    )),
                    Some(answer) if answer.status == "ok" => serde_json::from_str(&answer.body)
                        .map_err(|error| Error::Serialization(Box::new(error))),
                    Some(answer) => Err(ran_badly(&worker, T::NAME, &answer.status, &answer.body)),
                };
                outcomes.insert(worker, outcome);
            }
            return Ok(outcomes);
        }
        let _ = (input, workers, timeout);
        Err(Error::Cluster {
            operation: "run_on_workers",
            problem: format!(
                "the {} transport cannot run functions on its workers",
                self.core().transport.name()
            ),
        })
    }
}

/// Why a task that [`Client::restart`] cancelled did not finish: the reason in its
/// [`TaskError::Cancelled`](crate::TaskError::Cancelled).
pub const RESTART_REASON: &str =
    "the client restarted its workers (Client::restart) before it finished; submit it again";

impl Client {
    /// Restarts the workers (Dask's `Client.restart`): every task of this client that has not
    /// finished fails with [`TaskError::Cancelled`](crate::TaskError::Cancelled) whose reason
    /// names the restart ([`RESTART_REASON`]; [`TaskError::is_cancelled`](crate::TaskError::is_cancelled)
    /// is true), the work queued for them is dropped, the tasks running are told to stop,
    /// and the workers go on serving: the client is usable at once. Returns the names of the
    /// workers that restarted.
    ///
    /// What stays: the values of the tasks that finished before (they are this client's,
    /// not the workers'; Dask drops them too, since they lived on its workers), the
    /// coordination primitives and the actors of [`Client::actor`]. Not a
    /// [remote actor](Client::remote_actor): its host is a task on a Redis worker, which the
    /// restart ends; its handle's calls then fail saying so (make a new actor).
    ///
    /// A running body cannot be killed (a thread cannot be stopped from outside): it is told
    /// through its [`TaskContext`](crate::TaskContext) (in-process) or its run's cancel
    /// signal (on Redis: its sub-tasks are cancelled and its waits through
    /// [`worker_client`](crate::worker_client) end), and whatever it returns is discarded.
    /// A body that ignores the signal holds its worker until it ends.
    ///
    /// On a client of a [`ClusterHandle`](crate::ClusterHandle), the restart is the
    /// cluster's, as in Dask: the unfinished tasks of every client attached to it fail so.
    ///
    /// In-process, that is all there is to do: the pool's threads serve the next tasks. On a
    /// transport of your own, too: the running tasks are aborted
    /// ([`Transport::abort`](crate::transport::Transport::abort)), and the workers it lists
    /// are returned; restarting them, if they need it, is yours to do.
    /// On Redis, every worker of the client's queue hears of it at once on the queue's
    /// control stream (not at its next heartbeat): it cancels the tasks it runs (of every
    /// client: a restart is the cluster's; other clients' tasks that ran there fail with
    /// [`TaskError::Failed`](crate::TaskError::Failed) saying they were cancelled while they
    /// ran, whatever their bodies returned), hands the entries it took ahead back to the
    /// queue, drops the client its tasks shared, and answers. This client's queued entries
    /// are removed as on [`cancel`](crate::TaskFuture::cancel).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the client is closed; [`Error::Transport`] when Redis cannot be
    /// reached (this client's tasks are cancelled all the same); [`Error::Cluster`] when
    /// some live Redis workers did not answer within `timeout` (the message names them:
    /// they died or cannot reach Redis; the cancels stand).
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// use std::time::Duration;
    ///
    /// let client = taskweave::Client::builder().workers(1).build().await?;
    /// let (release, wait) = flume::bounded::<()>(1);
    /// let stuck = client.submit(move |_: ()| { let _ = wait.recv(); }, ());
    /// let queued = client.submit(|x: u32| x + 1, 1);
    /// client.restart(Duration::from_secs(10)).await?;
    /// for error in [stuck.await.unwrap_err(), queued.await.unwrap_err()] {
    ///     assert!(error.is_cancelled());
    ///     assert!(error.to_string().contains("restart"));
    /// }
    /// drop(release);
    /// assert_eq!(client.submit(|x: u32| x + 1, 41).await?, 42); // usable after
    /// # client.close().await }
    /// # futures::executor::block_on(run()).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// The tasks are cancelled before the first await: dropping the future only stops
    /// waiting for the workers' answers; the workers asked restart all the same.
    pub async fn restart(&self, timeout: Duration) -> Result<Vec<String>, Error> {
        self.refuse_if_closed("restart")?;
        let cancelled = self.core().cancel_unfinished(RESTART_REASON);
        tracing::info!(cancelled, "restarting the workers");
        #[cfg(feature = "redis")]
        if let Some(redis) = self
            .core()
            .transport
            .as_any()
            .and_then(|any| any.downcast_ref::<crate::transport::redis::RedisTransport>())
        {
            let workers: Vec<String> =
                redis.workers().await?.into_iter().map(|worker| worker.name).collect();
            let id = format!(
                "restart-{:016x}{:016x}",
                self.executor().random_seed(),
                self.core().fresh_token()
            );
            redis.request_restart(&id, timeout.max(RETIRE_FLAG_MIN_TTL)).await?;
            let executor = self.executor();
            let deadline = executor.now() + timeout;
            let mut pause = FIRST_POLL;
            let mut answered = vec![false; workers.len()];
            // The give-up rule: the timeout; a look that fails is tried again until then.
            loop {
                if let Ok(seen) = redis.run_answers(&id, &workers).await {
                    for (answered, seen) in answered.iter_mut().zip(seen) {
                        *answered |= seen.is_some();
                    }
                }
                let now = executor.now();
                if answered.iter().all(|answered| *answered) || now >= deadline {
                    break;
                }
                executor.sleep(pause.min(deadline - now)).await;
                pause = (pause * 2).min(MAX_POLL);
            }
            let silent: Vec<&String> = workers
                .iter()
                .zip(&answered)
                .filter(|(_, answered)| !**answered)
                .map(|(worker, _)| worker)
                .collect();
            if !silent.is_empty() {
                return Err(Error::Cluster {
                    operation: "restart",
                    problem: format!(
                        "{silent:?} did not answer the restart within {timeout:?} (they died, or \
                         cannot reach Redis); this client's tasks were cancelled all the same: \
                         check those workers, or wait longer"
                    ),
                });
            }
            return Ok(workers);
        }
        // In-process, or a transport of the user's: the cancels (and `Transport::abort` for
        // the running tasks) are all a client can do.
        let _ = timeout;
        let workers = self.core().transport.workers().await?;
        Ok(workers.into_iter().map(|worker| worker.name).collect())
    }
}

impl BlockingClient<'_> {
    /// Restarts the workers; see [`Client::restart`].
    ///
    /// # Errors
    ///
    /// As [`Client::restart`]; [`Error::BlockingInAsyncContext`] from async code.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let client = taskweave::Client::builder().workers(2).build_blocking()?;
    /// let restarted = client.blocking().restart(Duration::from_secs(10))?;
    /// assert_eq!(restarted, ["worker-0", "worker-1"]);
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn restart(&self, timeout: Duration) -> Result<Vec<String>, Error> {
        block_on_caller_thread(self.client.restart(timeout))?
    }
}

/// A worker's failure to run `task` for `run_on_workers`.
fn ran_badly(worker: &str, task: &str, what: &str, detail: &str) -> Error {
    Error::Cluster {
        operation: "run_on_workers",
        problem: format!("worker {worker}: task {task:?} {what}: {detail}"),
    }
}

/// How long a retire flag, or a run request, lives at least: longer than any worker's
/// heartbeat interval.
#[cfg(feature = "redis")]
const RETIRE_FLAG_MIN_TTL: Duration = Duration::from_secs(60);

impl BlockingClient<'_> {
    /// Runs the registered task `T` once on every worker; see [`Client::run_on_workers`].
    ///
    /// # Errors
    ///
    /// As [`Client::run_on_workers`]; [`Error::BlockingInAsyncContext`] from async code.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskweave::Task;
    ///
    /// struct Ping;
    /// impl Task for Ping {
    ///     const NAME: &'static str = "ping";
    ///     type Input = ();
    ///     type Output = String;
    ///     type Error = std::convert::Infallible;
    ///     fn run((): ()) -> Result<String, Self::Error> {
    ///         Ok("pong".into())
    ///     }
    /// }
    ///
    /// let client = taskweave::Client::builder().workers(2).build_blocking()?;
    /// let answers = client.blocking().run_on_workers::<Ping>((), Duration::from_secs(10))?;
    /// assert!(answers.values().all(|answer| answer.as_deref().ok() == Some("pong")));
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn run_on_workers<T: Task>(
        &self,
        input: T::Input,
        timeout: Duration,
    ) -> Result<BTreeMap<String, Result<T::Output, Error>>, Error> {
        block_on_caller_thread(self.client.run_on_workers::<T>(input, timeout))?
    }

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
