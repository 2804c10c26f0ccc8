//! [`Lock`], [`Semaphore`] and their [`Lease`] guard.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::task::Context;
use std::time::Duration;

use super::backend::{Kind, LeaseId, problem};
use super::{Blocking, Ctx, run_now};
use crate::client::blocking::block_on_caller_thread;
use crate::error::Error;
use crate::executor::ExecutorExt;

/// How long a lease lasts without a refresh when its holder can no longer refresh it, unless
/// changed with [`Semaphore::with_lease_timeout`]: Dask's default lease timeout.
pub const DEFAULT_LEASE_TIMEOUT: Duration = Duration::from_secs(30);

/// A cluster-wide semaphore: at most `max_leases` holders at once (Dask's `Semaphore`), for
/// rate limits and bounded access to a shared resource. Get one with
/// [`Client::semaphore`](crate::Client::semaphore); clones are handles on the same semaphore.
///
/// Acquiring gives a [`Lease`], a guard that gives the lease back when dropped (so a task
/// body that ends, returns early, panics or is cancelled gives it back). A lease can also be
/// given back explicitly, [`Lease::release`], or detached from its guard
/// ([`Lease::detach`]) and released later by id, perhaps from another task
/// ([`Semaphore::release`]); giving back a lease that is not held is an error.
///
/// # Leases and their timeout
///
/// Each lease has a timeout ([`with_lease_timeout`](Semaphore::with_lease_timeout), default
/// [`DEFAULT_LEASE_TIMEOUT`]) after which it ends if its holder stops refreshing it: the
/// guard keeps it alive while it lives ([`Lease::refresh`]). On a backend in another process
/// (Redis) this frees the leases of a holder that died: the guard refreshes its lease in the
/// background every third of the timeout (one script call), so a holder whose process is
/// killed, or cut off from Redis, loses the lease within the timeout, and a holder that
/// pauses longer than the timeout (a stalled executor) may lose it while it still works:
/// choose a timeout above the holder's longest pause. In-process a holder cannot die without this
/// process, so a lease lasts exactly as long as it is held: the timeout is kept for
/// portability and never cuts a live holder short.
///
/// # Examples
///
/// ```
/// # async fn run() -> Result<(), taskweave::Error> {
/// use std::time::Duration;
///
/// let client = taskweave::Client::builder().workers(1).build().await?;
/// let slots = client.semaphore("downloads", 2)?;
/// let a = slots.acquire().await?;
/// let b = slots.acquire().await?;
/// assert!(slots.acquire_timeout(Duration::from_millis(10)).await?.is_none());
/// assert_eq!(slots.held().await?, 2);
/// a.release().await?;
/// let c = slots.acquire().await?;
/// drop((b, c));
/// assert_eq!(slots.held().await?, 0);
/// # client.close().await }
/// # futures::executor::block_on(run()).unwrap();
/// ```
#[derive(Clone)]
pub struct Semaphore {
    ctx: Ctx,
    kind: Kind,
    name: Arc<str>,
    max_leases: u32,
    lease_timeout: Duration,
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(if self.kind == Kind::Lock { "Lock" } else { "Semaphore" })
            .field("name", &self.name)
            .field("max_leases", &self.max_leases)
            .field("lease_timeout", &self.lease_timeout)
            .finish()
    }
}

impl Semaphore {
    pub(super) fn new(ctx: Ctx, name: String, max_leases: u32) -> Result<Semaphore, Error> {
        if max_leases == 0 {
            return Err(problem(
                Kind::Semaphore,
                &name,
                "max_leases is 0, so nothing could ever acquire it; give at least 1",
            ));
        }
        Ok(Semaphore {
            ctx,
            kind: Kind::Semaphore,
            name: name.into(),
            max_leases,
            lease_timeout: DEFAULT_LEASE_TIMEOUT,
        })
    }

    /// Refuses this handle when its name exists with another `max_leases` (see
    /// [`Client::semaphore`](crate::Client::semaphore)). A backend that cannot answer at once
    /// from an async context leaves the check to `acquire`.
    pub(super) fn check_max_leases(&self) -> Result<(), Error> {
        let Ok(backend) = self.ctx.any_backend(self.kind, &self.name) else {
            return Ok(()); // no backend: every operation says so
        };
        let mut check =
            std::pin::pin!(backend.check_max_leases(self.kind, &self.name, self.max_leases));
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        match check.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(outcome) => outcome,
            std::task::Poll::Pending => block_on_caller_thread(check).unwrap_or(Ok(())),
        }
    }

    /// The name it was obtained under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many leases it grants at once.
    pub fn max_leases(&self) -> u32 {
        self.max_leases
    }

    /// The lease timeout of the leases this handle acquires (see
    /// [Leases and their timeout](Semaphore#leases-and-their-timeout)).
    pub fn lease_timeout(&self) -> Duration {
        self.lease_timeout
    }

    /// This handle with another lease timeout for the leases it acquires. A zero timeout is
    /// refused when acquiring.
    pub fn with_lease_timeout(mut self, lease_timeout: Duration) -> Semaphore {
        self.lease_timeout = lease_timeout;
        self
    }

    /// Waits for a lease, for as long as it takes.
    ///
    /// # Errors
    ///
    /// [`Error::Coordination`] when another handle of the name has another `max_leases`, or
    /// the lease timeout is zero; [`Error::Closed`] after the client closed.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes leaves no lease behind.
    pub async fn acquire(&self) -> Result<Lease, Error> {
        let lease = self.acquire_within(None, "acquire").await?;
        Ok(lease.expect("a wait without a limit ends with a lease"))
    }

    /// Waits up to `timeout` for a lease; `Ok(None)` when none came free in time (Dask's
    /// `acquire(timeout=..)` answering `False`).
    ///
    /// # Errors
    ///
    /// As [`acquire`](Semaphore::acquire); running out of time is not an error.
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Semaphore::acquire).
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Option<Lease>, Error> {
        self.acquire_within(Some(timeout), "acquire_timeout").await
    }

    /// A lease if one is free now, without waiting.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Semaphore::acquire).
    pub async fn try_acquire(&self) -> Result<Option<Lease>, Error> {
        self.acquire_within(Some(Duration::ZERO), "try_acquire").await
    }

    async fn acquire_within(
        &self,
        wait: Option<Duration>,
        operation: &'static str,
    ) -> Result<Option<Lease>, Error> {
        let backend = self.ctx.backend(self.kind, &self.name, operation)?;
        if self.lease_timeout.is_zero() {
            return Err(problem(
                self.kind,
                &self.name,
                "its lease timeout is zero, so every lease would end as it began; give a \
                 timeout longer than the holder's longest pause",
            ));
        }
        let granted = backend
            .acquire_lease(self.kind, &self.name, self.max_leases, self.lease_timeout, wait)
            .await?;
        Ok(granted.map(|id| {
            let refresher = self.keep_refreshed(backend, id);
            Lease { semaphore: self.clone(), id, held: true, refresher }
        }))
    }

    /// On a backend whose leases expire, refreshes lease `id` every third of its timeout
    /// until the returned handle aborts it (the guard's release, drop or detach) or the
    /// client closes; `None` where leases do not expire.
    fn keep_refreshed(
        &self,
        backend: &Arc<dyn super::Backend>,
        id: LeaseId,
    ) -> Option<futures::future::AbortHandle> {
        if !backend.expires_leases() {
            return None;
        }
        let (abort, registration) = futures::future::AbortHandle::new_pair();
        let (backend, core) = (Arc::clone(backend), Arc::clone(&self.ctx.core));
        let (kind, name, timeout) = (self.kind, Arc::clone(&self.name), self.lease_timeout);
        let every = (timeout / 3).max(Duration::from_millis(1));
        let refresh = async move {
            loop {
                core.executor.sleep(every).await;
                if core.is_closed() {
                    return;
                }
                match backend.refresh_lease(kind, &name, id, timeout).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(
                            primitive = kind.as_str(),
                            %name,
                            lease = %id,
                            "a lease expired while its guard held it (it was not refreshed in \
                             time); the work it guards is no longer exclusive"
                        );
                        return;
                    }
                    // Tried again at the next tick; the lease expires if that keeps failing.
                    Err(error) => tracing::debug!(%error, %name, "a lease refresh failed"),
                }
            }
        };
        let spawned = self.ctx.core.executor.spawn_task(async move {
            let _ = futures::future::Abortable::new(refresh, registration).await;
        });
        spawned.ok().map(|()| abort)
    }

    /// Gives back a lease detached from its guard with [`Lease::detach`] (perhaps by another
    /// task than the one that acquired it). Still done after the client closed: a lease is
    /// never left held by nobody.
    ///
    /// # Errors
    ///
    /// [`Error::Coordination`] when `lease` is not held (it was given back already, or never
    /// was a lease of this name): releasing more often than acquiring is a bug.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn run() -> Result<(), taskweave::Error> {
    /// let client = taskweave::Client::builder().workers(1).build().await?;
    /// let lock = client.lock("handover");
    /// let id = lock.acquire().await?.detach(); // still held, without a guard
    /// lock.release(id).await?;
    /// assert!(lock.release(id).await.is_err(), "released twice");
    /// # client.close().await }
    /// # futures::executor::block_on(run()).unwrap();
    /// ```
    pub async fn release(&self, lease: LeaseId) -> Result<(), Error> {
        let backend = self.ctx.any_backend(self.kind, &self.name)?;
        if backend.release_lease(self.kind, &self.name, lease).await? {
            return Ok(());
        }
        Err(problem(
            self.kind,
            &self.name,
            format!(
                "lease {lease} is not held (released already, or never acquired here), so it \
                 cannot be released; release each lease once"
            ),
        ))
    }

    /// How many of its leases are held now (Dask's `get_value`).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after the client closed.
    pub async fn held(&self) -> Result<u32, Error> {
        self.count("held").await
    }

    async fn count(&self, operation: &'static str) -> Result<u32, Error> {
        let backend = self.ctx.backend(self.kind, &self.name, operation)?;
        backend.count_leases(self.kind, &self.name).await
    }

    /// The blocking twin of this semaphore's methods.
    pub fn blocking(&self) -> Blocking<'_, Semaphore> {
        Blocking { primitive: self }
    }
}

impl Blocking<'_, Semaphore> {
    /// Blocks until a lease is granted; see [`Semaphore::acquire`].
    ///
    /// # Errors
    ///
    /// As [`Semaphore::acquire`]; [`Error::BlockingInAsyncContext`] in async code.
    pub fn acquire(&self) -> Result<Lease, Error> {
        block_on_caller_thread(self.primitive.acquire())?
    }

    /// Blocks up to `timeout` for a lease; see [`Semaphore::acquire_timeout`].
    ///
    /// # Errors
    ///
    /// As [`Semaphore::acquire`]; [`Error::BlockingInAsyncContext`] in async code.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Option<Lease>, Error> {
        block_on_caller_thread(self.primitive.acquire_timeout(timeout))?
    }

    /// A lease if one is free now; see [`Semaphore::try_acquire`].
    ///
    /// # Errors
    ///
    /// As [`Semaphore::acquire`]. It never waits, so it works in async code and in task bodies
    /// too (see [`Blocking`]).
    pub fn try_acquire(&self) -> Result<Option<Lease>, Error> {
        run_now(self.primitive.try_acquire())?
    }

    /// Gives back a detached lease; see [`Semaphore::release`].
    ///
    /// # Errors
    ///
    /// As [`Semaphore::release`]. It never waits, so it works in async code and in task bodies
    /// too (see [`Blocking`]).
    pub fn release(&self, lease: LeaseId) -> Result<(), Error> {
        run_now(self.primitive.release(lease))?
    }

    /// How many leases are held; see [`Semaphore::held`].
    ///
    /// # Errors
    ///
    /// As [`Semaphore::held`]. It never waits, so it works in async code and in task bodies
    /// too (see [`Blocking`]).
    pub fn held(&self) -> Result<u32, Error> {
        run_now(self.primitive.held())?
    }
}

/// A cluster-wide lock: one holder at a time (Dask's `Lock`). A [`Semaphore`] of one lease,
/// with names of its own (a lock `"a"` and a semaphore `"a"` are two things). Get one with
/// [`Client::lock`](crate::Client::lock).
///
/// # Examples
///
/// ```
/// # async fn run() -> Result<(), taskweave::Error> {
/// let client = taskweave::Client::builder().workers(1).build().await?;
/// let lock = client.lock("config");
/// {
///     let _guard = lock.acquire().await?;
///     assert!(lock.is_locked().await?);
/// } // released here
/// assert!(!lock.is_locked().await?);
/// # client.close().await }
/// # futures::executor::block_on(run()).unwrap();
/// ```
#[derive(Clone)]
pub struct Lock {
    semaphore: Semaphore,
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.semaphore.fmt(f)
    }
}

impl Lock {
    pub(super) fn new(ctx: Ctx, name: String) -> Lock {
        Lock {
            semaphore: Semaphore {
                ctx,
                kind: Kind::Lock,
                name: name.into(),
                max_leases: 1,
                lease_timeout: DEFAULT_LEASE_TIMEOUT,
            },
        }
    }

    /// The name it was obtained under.
    pub fn name(&self) -> &str {
        self.semaphore.name()
    }

    /// This handle with another lease timeout; see [`Semaphore::with_lease_timeout`].
    pub fn with_lease_timeout(self, lease_timeout: Duration) -> Lock {
        Lock { semaphore: self.semaphore.with_lease_timeout(lease_timeout) }
    }

    /// Waits for the lock, for as long as it takes; see [`Semaphore::acquire`].
    ///
    /// # Errors
    ///
    /// [`Error::Coordination`] for a zero lease timeout; [`Error::Closed`] after the client
    /// closed.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes leaves the lock as it was.
    pub async fn acquire(&self) -> Result<Lease, Error> {
        self.semaphore.acquire().await
    }

    /// Waits up to `timeout` for the lock; `Ok(None)` when it stayed held.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Lock::acquire); running out of time is not an error.
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Lock::acquire).
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Option<Lease>, Error> {
        self.semaphore.acquire_timeout(timeout).await
    }

    /// The lock if it is free now, without waiting.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Lock::acquire).
    pub async fn try_acquire(&self) -> Result<Option<Lease>, Error> {
        self.semaphore.try_acquire().await
    }

    /// Releases a lease detached with [`Lease::detach`]; see [`Semaphore::release`].
    ///
    /// # Errors
    ///
    /// [`Error::Coordination`] when `lease` is not held.
    pub async fn release(&self, lease: LeaseId) -> Result<(), Error> {
        self.semaphore.release(lease).await
    }

    /// Whether someone holds the lock now (Dask's `locked`).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after the client closed.
    pub async fn is_locked(&self) -> Result<bool, Error> {
        Ok(self.semaphore.count("is_locked").await? > 0)
    }

    /// The blocking twin of this lock's methods.
    pub fn blocking(&self) -> Blocking<'_, Lock> {
        Blocking { primitive: self }
    }
}

impl Blocking<'_, Lock> {
    /// Blocks until the lock is acquired; see [`Lock::acquire`].
    ///
    /// # Errors
    ///
    /// As [`Lock::acquire`]; [`Error::BlockingInAsyncContext`] in async code.
    ///
    /// # Examples
    ///
    /// ```
    /// let client = taskweave::Client::new()?;
    /// let lock = client.lock("file");
    /// let guard = lock.blocking().acquire()?;
    /// assert!(lock.blocking().try_acquire()?.is_none());
    /// drop(guard);
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    pub fn acquire(&self) -> Result<Lease, Error> {
        block_on_caller_thread(self.primitive.acquire())?
    }

    /// Blocks up to `timeout` for the lock; see [`Lock::acquire_timeout`].
    ///
    /// # Errors
    ///
    /// As [`Lock::acquire`]; [`Error::BlockingInAsyncContext`] in async code.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Option<Lease>, Error> {
        block_on_caller_thread(self.primitive.acquire_timeout(timeout))?
    }

    /// The lock if it is free now; see [`Lock::try_acquire`].
    ///
    /// # Errors
    ///
    /// As [`Lock::acquire`]. It never waits, so it works in async code and in task bodies
    /// too (see [`Blocking`]).
    pub fn try_acquire(&self) -> Result<Option<Lease>, Error> {
        run_now(self.primitive.try_acquire())?
    }

    /// Releases a detached lease; see [`Lock::release`].
    ///
    /// # Errors
    ///
    /// As [`Lock::release`]. It never waits, so it works in async code and in task bodies
    /// too (see [`Blocking`]).
    pub fn release(&self, lease: LeaseId) -> Result<(), Error> {
        run_now(self.primitive.release(lease))?
    }

    /// Whether the lock is held; see [`Lock::is_locked`].
    ///
    /// # Errors
    ///
    /// As [`Lock::is_locked`]. It never waits, so it works in async code and in task bodies
    /// too (see [`Blocking`]).
    pub fn is_locked(&self) -> Result<bool, Error> {
        run_now(self.primitive.is_locked())?
    }
}

/// A held lease on a [`Lock`] or [`Semaphore`]; gives it back when dropped.
///
/// # Drop behaviour
///
/// Dropping the guard releases the lease at once (in-process, before `drop` returns; on a
/// backend in another process, on the client's executor right after). So a task body holding
/// it gives it back however it ends: returning, panicking, or being cancelled.
#[must_use = "dropping a Lease releases it at once; keep it (`let _guard = ...`) for as long \
              as you need the lock"]
pub struct Lease {
    semaphore: Semaphore,
    id: LeaseId,
    /// False once released or detached: the drop then does nothing.
    held: bool,
    /// Stops the background refresh (on backends whose leases expire).
    refresher: Option<futures::future::AbortHandle>,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("name", &self.semaphore.name)
            .field("id", &format_args!("{}", self.id))
            .finish()
    }
}

impl Lease {
    /// The lease's id, unique in the cluster.
    pub fn id(&self) -> LeaseId {
        self.id
    }

    /// Gives the lease back now, reporting whether it was still held. After the client
    /// closed this still gives it back (and answers `Ok`), as dropping the guard does.
    ///
    /// # Errors
    ///
    /// [`Error::Coordination`] when the lease had ended already (on a backend in another
    /// process: it expired because it was not refreshed in time).
    pub async fn release(mut self) -> Result<(), Error> {
        self.stop_refreshing();
        self.held = false;
        self.semaphore.release(self.id).await
    }

    /// Extends the lease by its timeout; `Ok(false)` when it had ended already (then another
    /// holder may have it, and the work it guarded is no longer exclusive). A guard is
    /// refreshed for you while it lives on backends where leases expire; call this to learn,
    /// between steps of a long critical section, that the lease is still yours.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after the client closed.
    pub async fn refresh(&self) -> Result<bool, Error> {
        let semaphore = &self.semaphore;
        let backend = semaphore.ctx.backend(semaphore.kind, &semaphore.name, "refresh")?;
        backend
            .refresh_lease(semaphore.kind, &semaphore.name, self.id, semaphore.lease_timeout)
            .await
    }

    /// Keeps the lease held without this guard, and returns its id: release it later with
    /// [`Semaphore::release`] or [`Lock::release`], from any task. Until then nothing gives
    /// it back (on a backend where leases expire, it expires after its timeout).
    pub fn detach(mut self) -> LeaseId {
        self.stop_refreshing();
        self.held = false;
        self.id
    }
}

impl Lease {
    fn stop_refreshing(&mut self) {
        if let Some(refresher) = self.refresher.take() {
            refresher.abort();
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.stop_refreshing();
        if !self.held {
            return;
        }
        let Some(backend) = self.semaphore.ctx.backend.clone() else { return };
        let (kind, name, id) = (self.semaphore.kind, Arc::clone(&self.semaphore.name), self.id);
        let mut release = Box::pin(async move {
            // A lease the guard holds is held, so the answer is `true`; nothing to report.
            let _ = backend.release_lease(kind, &name, id).await;
        });
        // In-process the release completes in its first poll: do it now, so the lease is free
        // when `drop` returns. A backend that must wait for a reply finishes it on the
        // executor.
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        if release.as_mut().poll(&mut cx).is_pending() {
            let _ = self.semaphore.ctx.core.executor.spawn(release);
        }
    }
}
