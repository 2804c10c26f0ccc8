//! Several clients on one cluster: [`ClusterHandle`] (Dask's several `Client`s connected to
//! one scheduler), and the view a client gets of a task whose key it shares with others.
//!
//! The clients of a `ClusterHandle` share its core: one scheduler, one task table, one pool
//! of workers. A task with a shared key (pure, or given with [`key`](super::TaskBuilder::key))
//! is computed once, as the *shared task*; every submission of that key, by any client, gets
//! a *view* of it: a task of its own (a [`MirrorBody`]) that depends on the shared task,
//! copies its value (an `Arc`, not the value), and holds it with one client handle while the
//! view lives. So a cancel reaches one client's view (and its dependents) only; the shared
//! task is cancelled when the last view holding it is; and its value lives until the last
//! view is gone. A client of its own (not made by a `ClusterHandle`) never makes a view: the
//! core looks for the cluster only on the way of a shared key.

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use super::core::{Body, Core, Job, Value};
use super::{Client, ClientBuilder, Shared};
use crate::error::{Error, TaskError};
use crate::executor::BoxFuture;
use crate::job::TaskFailure;
use crate::scheduler::Event;

/// A cluster (workers and a scheduler) that several independently made [`Client`]s attach
/// to, as several Dask `Client`s connect to one scheduler: they share the workers and find
/// each other's results by key.
///
/// Build it once with [`ClientBuilder::build_cluster`] (the builder's executor, workers and
/// transport are the cluster's); it is cheap to clone. [`client`](ClusterHandle::client)
/// makes a client attached to it. Between its clients:
///
/// - a task with a shared key — [`pure`](super::TaskBuilder::pure), or with an explicit
///   [`key`](super::TaskBuilder::key), or a keyed [`scatter`](super::TaskBuilder::scatter) —
///   is computed once: a second client's submission finds the first one's task, finished or
///   running, instead of running it again;
/// - a [`cancel`](super::TaskFuture::cancel) by one client cancels that client's future (and
///   its dependents) only; the shared task goes on while another client holds its key, and
///   is cancelled when the last client holding it cancels;
/// - a shared key's value lives until the last client releases it (drops its futures, or
///   closes);
/// - tasks with generated keys stay each client's own.
///
/// [`Client::close`] on an attached client cancels that client's unfinished tasks (not a
/// shared task another client holds) and gives up its holds; the workers keep serving the
/// others. [`Client::restart`] on any attached client restarts the cluster's workers: the
/// unfinished tasks of every attached client fail with the restart's error, as in Dask.
/// [`close`](ClusterHandle::close) stops the cluster and every client attached to
/// it; so does dropping the handle and every attached client.
///
/// The coordination primitives are the cluster's: every attached client reaches the same
/// [`Lock`](crate::Lock)s, semaphores, events, queues, variables, published datasets and
/// topics by name, as Dask's clients of one scheduler do; closing one client ends only that
/// client's waits. Futures of one client are not dependencies of another client's tasks:
/// submit by key, or publish a dataset, instead.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), taskweave::Error> {
/// use std::sync::atomic::{AtomicU32, Ordering};
///
/// static RUNS: AtomicU32 = AtomicU32::new(0);
/// fn square(x: u64) -> u64 {
///     RUNS.fetch_add(1, Ordering::SeqCst);
///     x * x
/// }
///
/// let cluster = taskweave::Client::builder().workers(2).build_cluster()?;
/// let web_a = cluster.client();
/// let web_b = cluster.client();
/// let a = web_a.task().pure().submit(square, 12);
/// assert_eq!(a.result()?, 144);
/// // B finds A's result by key: no second run.
/// let b = web_b.task().pure().submit(square, 12);
/// assert_eq!(b.result()?, 144);
/// assert_eq!(RUNS.load(Ordering::SeqCst), 1);
/// // A's cancel is A's: B's future keeps its value.
/// a.cancel();
/// assert_eq!(b.result()?, 144);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ClusterHandle {
    inner: Arc<ClusterInner>,
}

/// Lives as long as the handle or an attached client does; stops the cluster when the last
/// one goes.
struct ClusterInner {
    core: Arc<Core>,
    /// The coordination primitives every attached client reaches by name (each through a
    /// [`MemberBackend`](super::coordination::member::MemberBackend) view with its own close).
    coordination: Option<Arc<dyn super::coordination::backend::Backend>>,
}

impl Drop for ClusterInner {
    fn drop(&mut self) {
        drop(self.core.shut_down());
        if let Some(coordination) = &self.coordination {
            coordination.close();
        }
    }
}

impl fmt::Debug for ClusterHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterHandle")
            .field("executor", &self.inner.core.executor.name())
            .field("transport", &self.inner.core.transport.name())
            .field("closed", &self.inner.core.is_closed())
            .finish()
    }
}

impl ClusterHandle {
    /// Starts a cluster on a core made by the builder.
    pub(super) fn start(core: Arc<Core>) -> ClusterHandle {
        core.serve_cluster();
        let coordination = super::coordination::backend_for(&core);
        ClusterHandle { inner: Arc::new(ClusterInner { core, coordination }) }
    }

    /// A new client attached to this cluster: it shares the workers and the tasks of shared
    /// keys with every other client of the cluster, and has its own futures, cancels and
    /// close. See [`ClusterHandle`].
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), taskweave::Error> {
    /// let cluster = taskweave::Client::builder().workers(1).build_cluster()?;
    /// let first = cluster.client();
    /// let second = cluster.client();
    /// let shared = first.task().key("config").scatter(String::from("v1"));
    /// // The second client reads the first one's value by key.
    /// let seen = second.task().key("config").scatter(String::from("ignored"));
    /// assert_eq!(seen.result()?, "v1");
    /// # drop(shared);
    /// // Closing one client leaves the cluster to the others.
    /// first.blocking().close()?;
    /// assert_eq!(second.submit(|x: u8| x + 1, 1).result()?, 2);
    /// # Ok(()) }
    /// ```
    pub fn client(&self) -> Client {
        let coordination = std::sync::OnceLock::new();
        let member = self.inner.coordination.as_ref().map(|shared| {
            Arc::new(super::coordination::member::MemberBackend::new(Arc::clone(shared)))
                as Arc<dyn super::coordination::backend::Backend>
        });
        let _ = coordination.set(member);
        Client {
            shared: Arc::new(Shared {
                core: Arc::clone(&self.inner.core),
                coordination,
                member: Some(Member {
                    cluster: Arc::clone(&self.inner),
                    closed: AtomicBool::new(false),
                    jobs: Mutex::new(Vec::new()),
                }),
            }),
            parent: None,
        }
    }

    /// Whether the cluster was closed ([`close`](ClusterHandle::close)).
    ///
    /// # Examples
    ///
    /// ```
    /// let cluster = taskweave::Client::builder().workers(1).build_cluster()?;
    /// assert!(!cluster.is_closed());
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        self.inner.core.is_closed()
    }

    /// Stops the cluster: every attached client is closed (their unfinished tasks resolve to
    /// [`TaskError::Cancelled`], new work is refused) and the workers stop. Resolves when
    /// they have; calling it again returns at once.
    ///
    /// # Errors
    ///
    /// None today; the `Result` leaves room for transports whose shutdown can fail.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// let cluster = taskweave::Client::builder().workers(1).build_cluster()?;
    /// let client = cluster.client();
    /// cluster.close().await?;
    /// assert!(client.is_closed());
    /// # Ok(()) }
    /// # futures::executor::block_on(run()).unwrap();
    /// ```
    pub async fn close(&self) -> Result<(), Error> {
        if let Some(coordination) = &self.inner.coordination {
            coordination.close();
        }
        if let Some(stopped) = self.inner.core.shut_down() {
            stopped.await;
        }
        Ok(())
    }
}

impl ClientBuilder {
    /// Starts a cluster that several clients attach to (see [`ClusterHandle`]) instead of a
    /// client of its own: the builder's executor, workers and transport serve every client
    /// made by [`ClusterHandle::client`].
    ///
    /// # Errors
    ///
    /// As [`build_blocking`](ClientBuilder::build_blocking): [`Error::InvalidConfig`] for a
    /// bad configuration, or the transport's error when it cannot start. Also
    /// [`Error::InvalidConfig`] for the Redis transport or
    /// [`coordination_redis`](ClientBuilder::coordination_redis): clients sharing results
    /// across processes through Redis are not supported yet.
    ///
    /// # Examples
    ///
    /// ```
    /// let cluster = taskweave::Client::builder().workers(2).build_cluster()?;
    /// let client = cluster.client();
    /// assert_eq!(client.submit(|x: u32| x * 2, 21).result()?, 42);
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn build_cluster(self) -> Result<ClusterHandle, Error> {
        self.build_cluster_now()
    }
}

/// What a client attached to a [`ClusterHandle`] has of its own.
pub(super) struct Member {
    /// Keeps the cluster running while the client lives.
    cluster: Arc<ClusterInner>,
    closed: AtomicBool,
    /// The tasks this client submitted, for its close (cancelled if unfinished, holds given
    /// up). Pruned of the gone ones as it grows.
    jobs: Mutex<Vec<Weak<Job>>>,
}

impl Member {
    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire) || self.cluster.core.is_closed()
    }

    /// Notes a task this client submitted.
    pub(super) fn track(&self, job: &Arc<Job>) {
        let mut jobs = self.jobs.lock();
        if jobs.len() == jobs.capacity() && jobs.len() >= 64 {
            jobs.retain(|job| job.strong_count() > 0);
        }
        jobs.push(Arc::downgrade(job));
    }

    /// Closes this client (once): cancels its unfinished tasks, gives up its holds on shared
    /// tasks.
    pub(super) fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let jobs = std::mem::take(&mut *self.jobs.lock());
        for job in jobs.iter().filter_map(Weak::upgrade) {
            self.cluster.core.leave(&job);
        }
    }
}

/// A view of a shared task (see the module's docs): its body copies the shared task's value,
/// and it holds the shared task with one client handle until it is dropped, cancelled, or
/// its client closes.
pub(crate) struct MirrorBody {
    source: Arc<Job>,
    /// Whether the hold (one of `source.handles`) is still this view's to give up.
    held: AtomicBool,
    core: Weak<Core>,
}

impl MirrorBody {
    /// A view of `source` that takes over one client handle counted in `source.handles`.
    pub(crate) fn new(source: Arc<Job>, core: Weak<Core>) -> MirrorBody {
        MirrorBody { source, held: AtomicBool::new(true), core }
    }

    /// The shared task.
    pub(crate) fn source(&self) -> &Arc<Job> {
        &self.source
    }

    /// The shared task, if its hold was still this view's: the caller gives it up.
    pub(crate) fn take_hold(&self) -> Option<&Arc<Job>> {
        self.held.swap(false, Ordering::AcqRel).then_some(&self.source)
    }
}

impl Drop for MirrorBody {
    fn drop(&mut self) {
        // As a dropped `TaskFuture` gives its handle back. Never under the scheduler lock:
        // the scheduler hands the jobs it lets go to its caller, which drops them after.
        if self.take_hold().is_some()
            && self.source.handles.fetch_sub(1, Ordering::AcqRel) == 1
            && let Some(core) = self.core.upgrade()
        {
            core.feed(Event::Released { id: self.source.id });
        }
    }
}

impl Body for MirrorBody {
    fn is_async(&self) -> bool {
        true
    }

    fn call_blocking(&self, _: &[Value]) -> Result<Value, TaskFailure> {
        Err(TaskFailure::new("internal error: a view of a shared task was run as a blocking one"))
    }

    fn call_async(&self, inputs: Vec<Value>) -> BoxFuture<Result<Value, TaskFailure>> {
        let key = self.source.key.clone();
        let value = inputs.into_iter().next().ok_or_else(|| {
            TaskFailure::new(format!(
                "internal error: the view of shared task {key} got no value; please report this"
            ))
        });
        Box::pin(std::future::ready(value))
    }

    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }
}

/// The error a submission through a closed attached client resolves to.
pub(super) fn closed_error(job: &Job, operation: &'static str) -> TaskError {
    TaskError::ClientClosed { key: job.key.clone(), operation }
}
