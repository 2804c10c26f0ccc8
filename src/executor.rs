//! The runtime seam: everything taskweave does that needs a runtime goes through [`Executor`].
//!
//! # The model
//!
//! taskweave never names tokio, smol or async-std outside `runtimes/`. The client, the
//! scheduler driver, the transports and the workers ask an `Executor` to
//!
//! - [`spawn`](Executor::spawn) a future (async task bodies, background loops),
//! - [`spawn_blocking`](Executor::spawn_blocking) a closure that may block,
//! - [`spawn_dedicated`](Executor::spawn_dedicated) a long-lived loop that may block (a worker),
//! - [`sleep`](Executor::sleep) for a while (timeouts, back-off, heartbeats),
//! - tell the time with [`now`](Executor::now).
//!
//! Nothing else in the crate creates a thread, sleeps, reads the clock or blocks on a
//! channel (the caller's own thread in the blocking view aside). That is what lets one
//! implementation of this trait — a deterministic simulation with virtual time — run the
//! whole system unchanged, and what lets a user bring a runtime taskweave has never heard of.
//!
//! The trait is object safe: a client holds an `Arc<dyn Executor>`. Typed conveniences live in
//! [`ExecutorExt`], implemented for every executor.
//!
//! # Implementing an executor
//!
//! Four methods are required. This one runs every future on its own thread; it is slow but
//! complete, and the conformance suite runs a similar one (`examples/custom_runtime.rs`):
//!
//! ```
//! use std::time::Duration;
//! use taskweave::executor::{BoxFuture, Executor};
//! use taskweave::Error;
//!
//! #[derive(Debug)]
//! struct ThreadPerTask;
//!
//! impl Executor for ThreadPerTask {
//!     fn name(&self) -> &'static str {
//!         "thread-per-task"
//!     }
//!     fn spawn(&self, future: BoxFuture<()>) -> Result<(), Error> {
//!         self.spawn_dedicated("task", future)
//!     }
//!     fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) -> Result<(), Error> {
//!         self.spawn_dedicated("blocking", Box::pin(async move { work() }))
//!     }
//!     fn sleep(&self, duration: Duration) -> BoxFuture<()> {
//!         // A real runtime has a timer; this one parks a helper thread.
//!         let (done, wait) = futures::channel::oneshot::channel::<()>();
//!         let _ = self.spawn_blocking(Box::new(move || {
//!             std::thread::sleep(duration);
//!             let _ = done.send(());
//!         }));
//!         Box::pin(async move {
//!             let _ = wait.await;
//!         })
//!     }
//! }
//!
//! let client = taskweave::Client::builder()
//!     .executor(ThreadPerTask)
//!     .workers(1)
//!     .build_blocking()?;
//! let future = client.submit(|x: i64| x * 2, 21);
//! assert_eq!(future.result()?, 42);
//! # Ok::<(), taskweave::Error>(())
//! ```

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant, SystemTime};

use crate::Error;

/// A boxed, sendable future: what crosses the object-safe [`Executor`] seam.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A runtime that taskweave can run on. See the [module docs](self) for the model and a
/// complete implementation.
pub trait Executor: Send + Sync + fmt::Debug + 'static {
    /// A short name for logs, `Debug` output and statistics, such as `"tokio"`.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskweave::Executor;
    /// use taskweave::runtimes::embedded::EmbeddedExecutor;
    ///
    /// assert_eq!(EmbeddedExecutor::global().name(), "embedded");
    /// // A client shows its executor's name in its statistics and its `Debug` output.
    /// let client = taskweave::Client::builder().executor(EmbeddedExecutor::global()).build_blocking()?;
    /// assert_eq!(client.stats().executor, "embedded");
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    fn name(&self) -> &'static str;

    /// Runs `future` to completion in the background.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskweave::Executor;
    /// use taskweave::runtimes::embedded::EmbeddedExecutor;
    ///
    /// let (report, reports) = flume::bounded(1);
    /// EmbeddedExecutor::global().spawn(Box::pin(async move {
    ///     let _ = report.send_async(6 * 7).await;
    /// }))?;
    /// assert_eq!(reports.recv_timeout(Duration::from_secs(10)).unwrap(), 42);
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::RuntimeShutDown`] when the runtime no longer accepts work.
    fn spawn(&self, future: BoxFuture<()>) -> Result<(), Error>;

    /// Runs `work`, which may block, away from the threads that drive async tasks.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskweave::Executor;
    /// use taskweave::runtimes::embedded::EmbeddedExecutor;
    ///
    /// let (report, reports) = flume::bounded(1);
    /// EmbeddedExecutor::global().spawn_blocking(Box::new(move || {
    ///     // Blocking is fine here: this is not a thread that drives async tasks.
    ///     let _ = report.send(std::fs::metadata(".").is_ok());
    /// }))?;
    /// assert!(reports.recv_timeout(Duration::from_secs(10)).unwrap());
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::RuntimeShutDown`] when the runtime no longer accepts work.
    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) -> Result<(), Error>;

    /// A future that completes after `duration`, measured by this executor's clock.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskweave::Executor;
    /// use taskweave::runtimes::embedded::EmbeddedExecutor;
    ///
    /// let executor = EmbeddedExecutor::global();
    /// let started = executor.now();
    /// futures::executor::block_on(executor.sleep(Duration::from_millis(2)));
    /// assert!(executor.now() - started >= Duration::from_millis(2));
    /// ```
    fn sleep(&self, duration: Duration) -> BoxFuture<()>;

    /// The current instant of this executor's monotonic clock.
    ///
    /// A simulated executor returns virtual time here; everything in taskweave that measures
    /// time asks this method.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskweave::Executor;
    /// use taskweave::runtimes::embedded::EmbeddedExecutor;
    ///
    /// // Measure with the executor's clock, not `Instant::now()`, so that a simulated executor's
    /// // virtual time is honoured.
    /// let executor = EmbeddedExecutor::global();
    /// let started = executor.now();
    /// futures::executor::block_on(executor.sleep(Duration::from_millis(1)));
    /// assert!(executor.now().duration_since(started) >= Duration::from_millis(1));
    /// ```
    fn now(&self) -> Instant {
        Instant::now()
    }

    /// The current wall-clock time (for time stamps that leave the process, such as expiry
    /// times in a broker). Kept apart from [`now`](Executor::now) so that a simulation can
    /// make the wall clock jump without disturbing timers.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use taskweave::Executor;
    /// use taskweave::runtimes::embedded::EmbeddedExecutor;
    ///
    /// // An expiry time to store in a broker, an hour from now.
    /// let expires = EmbeddedExecutor::global().wall_clock() + Duration::from_secs(3600);
    /// let expires_ms = expires.duration_since(UNIX_EPOCH).unwrap().as_millis();
    /// assert!(expires_ms > 1_700_000_000_000);
    /// ```
    fn wall_clock(&self) -> SystemTime {
        SystemTime::now()
    }

    /// True when [`now`](Executor::now) is the system's monotonic clock (`Instant::now`, as
    /// the default `now` is), so the client may read a cheaper equivalent clock directly.
    ///
    /// The client's task events then read the CPU's time-stamp counter where it is
    /// reliable, a few nanoseconds against tens for `Instant::now` through a `dyn Executor`,
    /// and place the readings on `now`'s timeline. The default is `false`, the safe answer
    /// for an executor that overrides `now` (a simulation's virtual time): its clock is then
    /// read through `now` for every event. The bundled embedded, tokio, smol and async-std
    /// executors return `true`.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskweave::Executor;
    /// use taskweave::runtimes::embedded::EmbeddedExecutor;
    ///
    /// assert!(EmbeddedExecutor::global().now_is_system_clock());
    /// ```
    fn now_is_system_clock(&self) -> bool {
        false
    }

    /// A random number, drawn afresh on every call, for what must differ between clients,
    /// processes and restarts (the seed of a client's generated task keys).
    ///
    /// The default draws from the operating system's randomness (through std's
    /// `RandomState`). A simulated executor returns numbers drawn from its seed instead, so
    /// that one seed replays one run exactly.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskweave::Executor;
    /// use taskweave::runtimes::embedded::EmbeddedExecutor;
    ///
    /// let executor = EmbeddedExecutor::global();
    /// assert_ne!(executor.random_seed(), executor.random_seed(), "drawn afresh on every call");
    /// ```
    fn random_seed(&self) -> u64 {
        use std::hash::BuildHasher;
        // Every `RandomState` has its own random keys; hashing nothing with them gives a
        // random number.
        std::hash::RandomState::new().hash_one(())
    }

    /// Runs a long-lived loop that may block between awaits (a worker running task bodies
    /// inline).
    ///
    /// The default gives the loop its own OS thread, named `name`, driven by a minimal
    /// `block_on` that, when the loop has nothing to do, keeps looking for a wake-up for up to
    /// [`DEDICATED_SPIN`] before it parks the thread: waking a parked thread costs whoever
    /// hands it work a system call and tens of microseconds, which would dominate the round
    /// trip of a short task. The thread counts as an async context (see
    /// [`enter_async_context`]). A simulated executor overrides this to run the loop as an
    /// ordinary task.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskweave::Executor;
    /// use taskweave::runtimes::embedded::EmbeddedExecutor;
    ///
    /// let (report, reports) = flume::bounded(1);
    /// EmbeddedExecutor::global().spawn_dedicated("example", Box::pin(async move {
    ///     // A dedicated loop has its thread to itself: it may block between awaits.
    ///     let thread = std::thread::current().name().map(str::to_owned);
    ///     let _ = report.send(thread);
    /// }))?;
    /// let thread = reports.recv_timeout(Duration::from_secs(10)).unwrap();
    /// assert_eq!(thread.as_deref(), Some("taskweave-example"));
    /// # Ok::<(), taskweave::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::ThreadSpawn`] when the operating system refuses a new thread.
    fn spawn_dedicated(&self, name: &str, future: BoxFuture<()>) -> Result<(), Error> {
        std::thread::Builder::new()
            .name(format!("taskweave-{name}"))
            .spawn(move || {
                let _marker = enter_async_context();
                drive_dedicated(future);
            })
            .map(drop)
            .map_err(Error::ThreadSpawn)
    }
}

/// Runs `future` to its end on the current thread, as the default
/// [`Executor::spawn_dedicated`] does on the thread it starts: the thread counts as an async
/// context (blocking taskweave calls are refused on it), spins briefly for a wake-up
/// ([`DEDICATED_SPIN`]) and parks after. For an executor that starts its dedicated threads
/// itself (to name them, pin them, or enter its runtime's context on them) and wants the
/// same driving loop.
///
/// # Examples
///
/// ```
/// let (done, finished) = std::sync::mpsc::channel();
/// let thread = std::thread::spawn(move || {
///     taskweave::executor::drive_on_current_thread(Box::pin(async move {
///         done.send(taskweave::executor::is_async_context()).unwrap();
///     }));
/// });
/// thread.join().unwrap();
/// assert!(finished.recv().unwrap(), "the thread counts as an async context while it drives");
/// ```
pub fn drive_on_current_thread(future: BoxFuture<()>) {
    let _marker = enter_async_context();
    drive_dedicated(future);
}

/// How long the default [`Executor::spawn_dedicated`] thread keeps looking for a wake-up
/// before it parks.
///
/// Long enough to bridge the gap between one task's result and the next submission of a
/// caller that awaits each result in turn; short enough that an idle worker gives its core
/// back quickly. Measured with `benches/overhead.rs` (round trip): without it the median round
/// trip was two thread wake-ups, 10–35 µs on the 2-core benchmark machine; with it, about 1 µs.
pub const DEDICATED_SPIN: Duration = Duration::from_micros(50);

/// Wakes a dedicated thread: sets `notified`, and unparks the thread only if it may be
/// parked (an unpark of a running thread is an atomic operation, not a system call).
struct DedicatedWaker {
    thread: std::thread::Thread,
    notified: AtomicBool,
}

impl Wake for DedicatedWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.notified.swap(true, Ordering::AcqRel) {
            self.thread.unpark();
        }
    }
}

/// Runs `future` to completion on the current thread: polls it, and when it is pending looks
/// for a wake-up for [`DEDICATED_SPIN`] before parking.
fn drive_dedicated(future: BoxFuture<()>) {
    let mut future = future;
    let waker_state = Arc::new(DedicatedWaker {
        thread: std::thread::current(),
        notified: AtomicBool::new(false),
    });
    let waker = Waker::from(Arc::clone(&waker_state));
    let mut cx = Context::from_waker(&waker);
    loop {
        if future.as_mut().poll(&mut cx).is_ready() {
            return;
        }
        if !spin_until_notified(&waker_state.notified) {
            while !waker_state.notified.swap(false, Ordering::AcqRel) {
                std::thread::park();
            }
        }
    }
}

/// Looks at `notified` for up to [`DEDICATED_SPIN`]; consumes the notification and returns
/// `true` if it came.
fn spin_until_notified(notified: &AtomicBool) -> bool {
    let started = Instant::now();
    loop {
        // Read the clock only every so often: it costs more than a look at the flag.
        for _ in 0..64 {
            if notified.load(Ordering::Acquire) && notified.swap(false, Ordering::AcqRel) {
                return true;
            }
            std::hint::spin_loop();
        }
        if started.elapsed() >= DEDICATED_SPIN {
            return false;
        }
        // Let a thread that waits for this core run: the caller about to submit the next
        // task may be it (with more workers than cores, pure spinning would starve it).
        std::thread::yield_now();
    }
}

impl<E: Executor + ?Sized> Executor for Arc<E> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn spawn(&self, future: BoxFuture<()>) -> Result<(), Error> {
        (**self).spawn(future)
    }
    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) -> Result<(), Error> {
        (**self).spawn_blocking(work)
    }
    fn sleep(&self, duration: Duration) -> BoxFuture<()> {
        (**self).sleep(duration)
    }
    fn now(&self) -> Instant {
        (**self).now()
    }
    fn wall_clock(&self) -> SystemTime {
        (**self).wall_clock()
    }
    fn now_is_system_clock(&self) -> bool {
        (**self).now_is_system_clock()
    }
    fn random_seed(&self) -> u64 {
        (**self).random_seed()
    }
    fn spawn_dedicated(&self, name: &str, future: BoxFuture<()>) -> Result<(), Error> {
        (**self).spawn_dedicated(name, future)
    }
}

/// Typed conveniences over any [`Executor`], including `dyn Executor`.
pub trait ExecutorExt: Executor {
    /// Spawns a typed future; while it is polled the thread counts as an async context, so
    /// that a blocking taskweave call made from inside it is refused instead of stalling the
    /// runtime.
    ///
    /// # Errors
    ///
    /// As [`Executor::spawn`].
    fn spawn_task<F>(&self, future: F) -> Result<(), Error>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.spawn(Box::pin(MarkAsyncContext { inner: future }))
    }

    /// Awaits `future` for at most `limit`, measured by this executor's timer.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when `limit` passes first; `future` is dropped then.
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future drops `future` and the timer.
    fn timeout<F: Future>(
        &self,
        limit: Duration,
        future: F,
    ) -> impl Future<Output = Result<F::Output, Error>> {
        let timer = self.sleep(limit);
        async move {
            let future = std::pin::pin!(future);
            match futures::future::select(future, timer).await {
                futures::future::Either::Left((output, _)) => Ok(output),
                futures::future::Either::Right(((), _)) => Err(Error::Timeout { after: limit }),
            }
        }
    }
}

impl<E: Executor + ?Sized> ExecutorExt for E {}

thread_local! {
    /// How many [`AsyncContextGuard`]s are alive on this thread.
    static ASYNC_CONTEXT_DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Marks the current thread as driving async work until the guard is dropped.
///
/// While a guard lives, blocking taskweave calls on this thread (such as
/// [`TaskFuture::result`](crate::TaskFuture::result)) return
/// [`Error::BlockingInAsyncContext`] instead of blocking. Executors call this on the threads
/// they drive futures on; a custom executor should too.
pub fn enter_async_context() -> AsyncContextGuard {
    ASYNC_CONTEXT_DEPTH.with(|depth| depth.set(depth.get() + 1));
    AsyncContextGuard { _not_send: std::marker::PhantomData }
}

/// Keeps the current thread marked as an async context; see [`enter_async_context`].
#[derive(Debug)]
pub struct AsyncContextGuard {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for AsyncContextGuard {
    fn drop(&mut self) {
        ASYNC_CONTEXT_DEPTH.with(|depth| depth.set(depth.get().saturating_sub(1)));
    }
}

/// Lifts this thread's [`enter_async_context`] marks until the guard is dropped, for a
/// blocking task body that gave its worker back (`TaskContext::secede`): its worker thread is
/// marked, yet blocking it no longer stalls anyone.
pub(crate) fn suspend_async_context() -> SuspendedAsyncContext {
    let depth = ASYNC_CONTEXT_DEPTH.with(|depth| depth.replace(0));
    SuspendedAsyncContext { depth, _not_send: std::marker::PhantomData }
}

/// Restores the marks lifted by [`suspend_async_context`] when dropped.
#[derive(Debug)]
pub(crate) struct SuspendedAsyncContext {
    depth: u32,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for SuspendedAsyncContext {
    fn drop(&mut self) {
        ASYNC_CONTEXT_DEPTH.with(|depth| depth.set(depth.get() + self.depth));
    }
}

/// Tells whether the current thread is inside an ambient runtime's context (tokio, async-std);
/// installed by the layer that knows the runtime adapters (`runtimes`, through the client
/// builder), so that this module imports nothing above it.
static AMBIENT_RUNTIME_PROBE: std::sync::OnceLock<fn() -> bool> = std::sync::OnceLock::new();

/// Installs the ambient-runtime probe [`is_async_context`] consults; the first one stays.
pub(crate) fn install_ambient_runtime_probe(probe: fn() -> bool) {
    let _ = AMBIENT_RUNTIME_PROBE.set(probe);
}

/// Whether the current thread is driving async work: marked by [`enter_async_context`], or
/// (once a client was built) inside the ambient context of an enabled runtime adapter
/// (tokio, async-std).
pub fn is_async_context() -> bool {
    ASYNC_CONTEXT_DEPTH.with(|depth| depth.get() > 0)
        || AMBIENT_RUNTIME_PROBE.get().is_some_and(|in_ambient_runtime| in_ambient_runtime())
}

/// Marks the current thread as *not* driving async work until the guard is dropped (then
/// the marks it had come back): for blocking code a dedicated thread runs inline, such as a
/// registered task's body on a Redis worker's runner thread, which may block that thread.
#[cfg(feature = "redis")]
pub(crate) fn leave_async_context() -> LeftAsyncContext {
    let depth = ASYNC_CONTEXT_DEPTH.with(|depth| depth.replace(0));
    LeftAsyncContext { depth, _not_send: std::marker::PhantomData }
}

/// Restores the async-context marks on drop; see [`leave_async_context`].
#[cfg(feature = "redis")]
pub(crate) struct LeftAsyncContext {
    depth: u32,
    _not_send: std::marker::PhantomData<*const ()>,
}

#[cfg(feature = "redis")]
impl Drop for LeftAsyncContext {
    fn drop(&mut self) {
        ASYNC_CONTEXT_DEPTH.with(|depth| depth.set(self.depth));
    }
}

pin_project_lite::pin_project! {
    /// Wraps a future so that the thread counts as an async context while it is polled.
    struct MarkAsyncContext<F> {
        #[pin]
        inner: F,
    }
}

impl<F: Future> Future for MarkAsyncContext<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _marker = enter_async_context();
        self.project().inner.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A caller that waits for each answer parks its thread, sometimes for longer than the
    /// spin, so the dedicated loop is woken both while it still looks and after it parked.
    #[test]
    fn a_dedicated_loop_is_woken_whether_it_spins_or_parks() {
        #[derive(Debug)]
        struct DefaultsOnly;
        impl Executor for DefaultsOnly {
            fn name(&self) -> &'static str {
                "defaults-only"
            }
            fn spawn(&self, future: BoxFuture<()>) -> Result<(), Error> {
                self.spawn_dedicated("spawned", future)
            }
            fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send>) -> Result<(), Error> {
                self.spawn_dedicated("blocking", Box::pin(async move { work() }))
            }
            fn sleep(&self, _duration: Duration) -> BoxFuture<()> {
                Box::pin(std::future::pending())
            }
        }

        let (requests, incoming) = flume::unbounded::<u64>();
        let (outgoing, answers) = flume::unbounded::<u64>();
        DefaultsOnly
            .spawn_dedicated(
                "echo",
                Box::pin(async move {
                    while let Ok(value) = incoming.recv_async().await {
                        let _ = outgoing.send(value + 1);
                    }
                }),
            )
            .unwrap();
        for value in 0..500 {
            requests.send(value).unwrap();
            let answer = answers.recv_timeout(Duration::from_secs(10));
            assert_eq!(answer, Ok(value + 1), "the dedicated loop missed a wake-up");
            if value % 50 == 0 {
                // Outlast the spin so that the loop parks before the next request.
                let quiet_until = Instant::now() + 2 * DEDICATED_SPIN;
                while Instant::now() < quiet_until {
                    std::thread::yield_now();
                }
            }
        }
    }
}

/// The system's monotonic clock read through the cheapest source that keeps its pace: the
/// CPU's time-stamp counter where it is invariant (through `quanta`), else the monotonic
/// clock itself. For the client's task events when its executor's
/// [`now`](Executor::now) is the system's clock ([`Executor::now_is_system_clock`]): kept
/// here, in the seam that alone reads clocks.
///
/// One calibration pair (a counter reading and an `Instant` taken back to back) places the
/// readings on the `Instant` timeline.
#[derive(Debug)]
pub(crate) struct SystemTicks {
    clock: quanta::Clock,
    /// The counter's reading at [`origin`](SystemTicks::origin).
    origin_raw: u64,
    origin: Instant,
}

impl SystemTicks {
    /// A clock whose time zero is now. The first in a process calibrates the counter
    /// against the monotonic clock (a busy loop of about a millisecond, at most 200).
    pub(crate) fn new() -> SystemTicks {
        let clock = quanta::Clock::new();
        let origin = Instant::now();
        let origin_raw = clock.raw();
        SystemTicks { clock, origin_raw, origin }
    }

    /// Time zero, on the `Instant` timeline.
    pub(crate) fn origin(&self) -> Instant {
        self.origin
    }

    /// Nanoseconds since [`origin`](SystemTicks::origin): one counter reading, a multiply
    /// and a shift.
    #[inline]
    pub(crate) fn nanos(&self) -> u64 {
        self.clock.delta_as_nanos(self.origin_raw, self.clock.raw())
    }
}
